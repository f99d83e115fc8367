//! What `init` learns from the directory before it writes a config: its kind (the root DSE's
//! capabilities), its naming context, its OUs, its schema (which classes and attributes a
//! mapping may name) and the overlays and operations the bridge uses when present.

use std::collections::HashSet;
use std::sync::Arc;

use crate::directory::DirectoryKind;
use crate::directory::{Directory, Dn, LdapFilter};

use super::{Connection, InitError};

/// Active Directory's capability (`LDAP_CAP_ACTIVE_DIRECTORY_OID`; Samba's DC lists it too).
const AD_CAPABILITY: &str = "1.2.840.113556.1.4.800";
/// The Password Modify extended operation (RFC 3062).
const PASSWORD_MODIFY: &str = "1.3.6.1.4.1.4203.1.11.1";
/// The most OUs listed to choose from.
const MAX_OUS: usize = 500;

/// What the directory has.
#[derive(Debug, Clone)]
pub struct Probe {
    pub kind: DirectoryKind,
    /// The naming context the containers lie under.
    pub base: Dn,
    /// Every organizational unit under `base` (at most `MAX_OUS`), by DN.
    pub ous: Vec<Dn>,
    /// Object classes and attribute types the schema defines, lowercased.
    pub classes: HashSet<String>,
    pub attributes: HashSet<String>,
    /// The memberOf overlay (OpenLDAP) or attribute (AD): a user's groups in one read.
    /// `None`: OpenLDAP defines the attribute but no group shows whether the overlay runs.
    pub member_of: Option<bool>,
    /// The ppolicy overlay: accounts are locked with `pwdAccountLockedTime`.
    pub ppolicy: bool,
    /// slapd offers Password Modify, so it hashes passwords itself.
    pub password_modify: bool,
    /// The server's name for itself, when it gives one (`vendorName`, `dnsHostName`).
    pub server: Option<String>,
}

impl Probe {
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attributes.contains(&name.to_ascii_lowercase())
    }

    pub fn has_class(&self, name: &str) -> bool {
        self.classes.contains(&name.to_ascii_lowercase())
    }
}

/// Connects as `conn` says and reads what `Probe` holds; `base` overrides the naming context
/// found, `kind` the kind.
pub async fn probe(
    conn: &Connection,
    base: Option<&str>,
    kind: Option<DirectoryKind>,
) -> Result<Probe, InitError> {
    let dir = connect(conn)?;
    let servers = dir.servers();
    let root = servers
        .root_dse(&[
            "namingContexts",
            "defaultNamingContext",
            "supportedCapabilities",
            "vendorName",
            "dnsHostName",
        ])
        .await
        .map_err(|e| {
            InitError::Directory(format!("cannot read the root DSE of {}: {e}", conn.url))
        })?;
    let values = |name: &str| -> Vec<String> {
        root.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.iter().cloned())
            .collect()
    };
    let is_ad = values("supportedCapabilities")
        .iter()
        .any(|c| c == AD_CAPABILITY);
    let kind = kind.unwrap_or(if is_ad {
        DirectoryKind::ActiveDirectory
    } else {
        DirectoryKind::Openldap
    });
    let base = match base {
        Some(b) => Dn::new(b),
        None => naming_context(&values("defaultNamingContext"), &values("namingContexts"))
            .ok_or_else(|| {
                InitError::Directory("the root DSE names no naming context: pass --base-dn".into())
            })?,
    };
    let (classes, attributes) = servers
        .schema_names()
        .await
        .map_err(|e| InitError::Directory(format!("cannot read the schema: {e}")))?;
    let attributes: HashSet<String> = attributes.into_iter().collect();
    let password_modify = servers
        .supports_extension(PASSWORD_MODIFY)
        .await
        .unwrap_or(false);
    let ous = list_ous(dir.as_ref(), &base).await?;
    let member_of = match (attributes.contains("memberof"), kind) {
        (false, _) => Some(false),
        (true, DirectoryKind::ActiveDirectory) => Some(true),
        (true, DirectoryKind::Openldap) => member_of_runs(dir.as_ref(), &base).await,
    };
    Ok(Probe {
        kind,
        member_of,
        ppolicy: attributes.contains("pwdaccountlockedtime"),
        password_modify,
        server: values("dnsHostName")
            .into_iter()
            .chain(values("vendorName"))
            .next(),
        ous,
        base,
        classes: classes.into_iter().collect(),
        attributes,
    })
}

/// AD's default naming context, else the first naming context that holds entries (not
/// `cn=config` or a monitor).
fn naming_context(default: &[String], all: &[String]) -> Option<Dn> {
    default
        .first()
        .or_else(|| {
            all.iter().find(|c| {
                let c = c.to_ascii_lowercase();
                !c.is_empty() && !c.starts_with("cn=")
            })
        })
        .map(|c| Dn::new(c.as_str()))
}

/// Whether slapd's memberof overlay runs: a member of a group shows the group in its
/// memberOf. (The schema defines memberOf wherever the module is loaded, overlay or not, and
/// the bind account cannot be expected to read cn=config.) `None` when no group has members.
async fn member_of_runs(dir: &dyn Directory, base: &Dn) -> Option<bool> {
    let filter = LdapFilter::and(vec![
        LdapFilter::eq("objectClass", "groupOfNames"),
        LdapFilter::Present("member".into()),
    ]);
    let (groups, _) = dir.search(base, &filter, &["member"], 1).await.ok()?;
    let group = groups.into_iter().next()?;
    let member = Dn::new(group.values("member").first()?);
    let entry = dir.read(&member, &["memberOf"]).await.ok()??;
    Some(
        entry
            .values("memberOf")
            .iter()
            .any(|g| Dn::new(g) == group.dn),
    )
}

/// The organizational units under `base`.
async fn list_ous(dir: &dyn Directory, base: &Dn) -> Result<Vec<Dn>, InitError> {
    let filter = LdapFilter::eq("objectClass", "organizationalUnit");
    let (found, _) = dir
        .search(base, &filter, &["ou"], MAX_OUS)
        .await
        .map_err(|e| InitError::Directory(format!("cannot list the OUs under {base}: {e}")))?;
    let mut ous: Vec<Dn> = found.into_iter().map(|e| e.dn).collect();
    ous.sort_by_key(|d| d.len());
    Ok(ous)
}

/// A directory built from the connection alone: the smallest config the bridge accepts.
fn connect(conn: &Connection) -> Result<Arc<dyn Directory>, InitError> {
    let text = format!(
        "[ldap]\nurl = {}\nbind_dn = {}\nbind_password_file = {}\n{}starttls = {}\n\
         [users]\ncontainer = \"dc=invalid\"\ndelete_mode = \"delete\"\nobject_classes = [\"person\"]\nrdn = \"cn={{userName}}\"\n\
         [users.attributes]\nuserName = \"cn\"\n",
        toml_string(&conn.url),
        toml_string(&conn.bind_dn),
        toml_string(&conn.bind_password_file.display().to_string()),
        conn.ca_file
            .as_ref()
            .map(|c| format!("ca_file = {}\n", toml_string(&c.display().to_string())))
            .unwrap_or_default(),
        conn.starttls,
    );
    let raw = crate::config::parse_raw(&text).map_err(|e| InitError::Options(e.to_string()))?;
    crate::app::build(&raw)
        .map(|app| app.directory)
        .map_err(|e| InitError::Options(e.to_string()))
}

/// `s` as a TOML basic string.
pub(super) fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
