//! What `check-config` and every start check before serving: tenants that cannot overlap, passwords
//! the mapping can store, DNs that parse, and the directory itself (servers, containers, schema,
//! extensions).

use crate::config::{ConfigError, DeleteMode, RawConfig};
use crate::directory::{Directory, DirectoryKind, Dn};
use crate::mapping::{Mapping, ValueLimits};
use crate::scim::schema::USER_RESOURCE;

use super::App;

/// Whether two DNs are the same entry or one lies below the other.
pub(super) fn overlap(a: &str, b: &str) -> bool {
    use crate::directory::filter::is_under;
    crate::directory::Dn::new(a) == crate::directory::Dn::new(b) || is_under(a, b) || is_under(b, a)
}

/// Each tenant sees and touches only its own part of the directory: no container of one
/// tenant (users, groups, role groups) may be, hold or lie in another tenant's, the shared
/// archive lies in none of them and holds none (an archived account must never be a live
/// one, and a search of the archive must never reach live accounts), and a tenant's default
/// group is one of its own groups.
pub(super) fn check_isolation(raw: &RawConfig) -> Result<(), ConfigError> {
    struct Part<'a> {
        tenant: &'a str,
        key: String,
        dn: &'a str,
    }
    let mut parts: Vec<Part> = Vec::new();
    for (name, t) in &raw.tenants {
        let groups = t
            .groups_container
            .as_deref()
            .or(raw.groups.as_ref().map(|g| g.container.as_str()));
        let roles = t
            .roles_container
            .as_deref()
            .or(raw.roles.as_ref().map(|r| r.container.as_str()));
        let mine = [
            (
                "users_container",
                Some(t.users_container.as_deref().unwrap_or(&raw.users.container)),
            ),
            ("groups_container", groups),
            ("roles_container", roles),
        ];
        for (what, dn) in mine {
            if let Some(dn) = dn {
                parts.push(Part {
                    tenant: name,
                    key: format!("tenants.{name}.{what}"),
                    dn,
                });
            }
        }
        if let (Some(group), Some(container)) = (&t.default_group, groups) {
            if !crate::directory::filter::is_under(group, container) {
                return Err(ConfigError::new(
                    format!("tenants.{name}.default_group"),
                    format!("{group} is not one of tenant {name}'s groups (under {container})"),
                    "name a group under the tenant's groups container",
                ));
            }
        }
    }
    for (i, a) in parts.iter().enumerate() {
        for b in parts.iter().take(i) {
            if a.tenant != b.tenant && overlap(a.dn, b.dn) {
                return Err(ConfigError::new(
                    &a.key,
                    format!(
                        "{} overlaps {} ({}): tenant {} would see or change tenant {}'s entries",
                        a.dn, b.dn, b.key, a.tenant, b.tenant
                    ),
                    format!(
                        "give each tenant its own OUs, e.g. {} = \"ou={},…\" (unset, a tenant takes users.container / groups.container / roles.container)",
                        a.key, a.tenant
                    ),
                ));
            }
        }
    }
    if let Some(archive) = &raw.users.archive_container {
        if let Some(p) = parts.iter().find(|p| overlap(archive, p.dn)) {
            return Err(ConfigError::new(
                "users.archive_container",
                format!(
                    "{archive} overlaps {} ({}): archived accounts would be live ones, or live ones archived",
                    p.dn, p.key
                ),
                "use an OU of its own for the archive, beside the tenants' containers",
            ));
        }
    }
    Ok(())
}

/// The LDAP attribute `users.attributes.password` names, if any.
pub(super) fn password_attribute(raw: &RawConfig) -> Option<&str> {
    raw.users
        .attributes
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("password"))
        .map(|(_, spec)| match spec {
            crate::config::AttrSpec::Ldap(l) => l.as_str(),
            crate::config::AttrSpec::Full(f) => f.ldap.as_str(),
        })
}

/// Passwords go where and how the directory expects them, and never in clear: a mapped
/// password needs TLS or ldapi:// to the directory, the attribute its dialect sets, and no
/// `users.password = "ignore"` beside it.
pub(super) fn check_passwords(raw: &RawConfig, mapping: &Mapping) -> Result<(), ConfigError> {
    use crate::config::UnmappedPassword;
    use crate::directory::PasswordStorage;
    let kind = raw.directory.kind;
    if kind == DirectoryKind::ActiveDirectory && raw.users.password_hash != PasswordStorage::Server
    {
        return Err(ConfigError::new(
            "users.password_hash",
            "Active Directory hashes passwords itself (unicodePwd)",
            "remove users.password_hash: it applies to OpenLDAP only",
        ));
    }
    let Some(attr) = mapping.password_attr() else {
        return Ok(());
    };
    let key = "users.attributes.password";
    if raw.users.password == UnmappedPassword::Ignore {
        return Err(ConfigError::new(
            "users.password",
            "\"ignore\" while users.attributes.password maps passwords",
            "keep one: remove users.password = \"ignore\" to store passwords, or the password mapping to drop them",
        ));
    }
    let expected = match (kind, raw.users.password_hash) {
        (DirectoryKind::ActiveDirectory, _) => Some("unicodePwd"),
        (DirectoryKind::Openldap, PasswordStorage::Server) => Some("userPassword"),
        (DirectoryKind::Openldap, _) => None,
    };
    if let Some(want) = expected.filter(|w| !attr.eq_ignore_ascii_case(w)) {
        return Err(ConfigError::new(
            key,
            format!("passwords are set as the directory expects, which stores them in {want}, not {attr}"),
            format!("map password = \"{want}\" (on OpenLDAP, users.password_hash = \"ssha512\" or \"argon2\" stores a hash made here in another attribute)"),
        ));
    }
    if !raw.ldap.protected() {
        return Err(ConfigError::new(
            "ldap.url",
            format!(
                "{} is not encrypted, and {key} maps passwords: they would reach the directory in clear",
                raw.ldap.describe()
            ),
            "use ldaps://, ldap:// with ldap.starttls = true, or ldapi:// (a local slapd's socket); or set users.password = \"ignore\" and remove the password mapping",
        ));
    }
    Ok(())
}

pub(super) fn check_dn(dn: &str, key: &str) -> Result<(), ConfigError> {
    let ok = !dn.trim().is_empty()
        && crate::directory::filter::split_dn(dn).iter().all(|rdn| {
            rdn.split_once('=')
                .is_some_and(|(a, v)| !a.trim().is_empty() && !v.trim().is_empty())
        });
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("\"{dn}\" is not a DN"),
            "write it as attribute=value pairs separated by commas, e.g. \"ou=people,dc=example,dc=org\"",
        ))
    }
}

/// What `check-config` verifies against the live directory: the bind works, the containers
/// exist, and the schema knows every object class and attribute the mapping names.
pub async fn check_directory(app: &App, raw: &RawConfig) -> Vec<ConfigError> {
    let dir = app.directory.as_ref();
    let mut problems = unreachable_servers(dir, raw).await;
    if !problems.is_empty() {
        return problems;
    }
    problems.extend(missing_containers(dir, raw).await);
    problems.extend(missing_password_modify(dir, raw).await);
    problems.extend(schema_gaps(dir, raw).await);
    problems
}

/// Every server answers and takes the bind, not only the first: a failover must not find a
/// wrong password or CA.
async fn unreachable_servers(dir: &dyn Directory, raw: &RawConfig) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    if let Err(e) = dir.check_servers().await {
        problems.push(ConfigError::new(
            "ldap.discover",
            e,
            "check the domain's SRV records, or list the servers in ldap.urls",
        ));
        return problems;
    }
    // every server, not only the first: a failover must not find a wrong password or CA
    let servers = dir.estate().servers;
    for (i, server) in servers.iter().enumerate() {
        if let Err(e) = dir.check_server(&server.url).await {
            let key = match (&raw.ldap.discover, servers.len()) {
                (Some(_), _) => "ldap.discover".to_owned(),
                (None, 1) if !raw.ldap.url.is_empty() => "ldap.url".to_owned(),
                (None, _) => format!("ldap.urls[{i}]"),
            };
            problems.push(ConfigError::new(
                key,
                format!("cannot reach or bind to {}: {e}", server.url),
                "check the server's address, ldap.bind_dn and the bind password (and ldap.ca_file for TLS)",
            ));
        }
    }
    if !problems.is_empty() {
        return problems;
    }
    if let Err(e) = dir.ping().await {
        problems.push(ConfigError::new(
            "ldap.url",
            format!("cannot reach or bind to the directory: {e}"),
            "check ldap.url, ldap.bind_dn and the bind password (and ldap.ca_file for TLS)",
        ));
        return problems;
    }
    problems
}

/// The containers, the archive and the default groups the config names exist.
async fn missing_containers(dir: &dyn Directory, raw: &RawConfig) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    let mut containers = vec![("users.container".to_owned(), raw.users.container.clone())];
    if let (DeleteMode::Archive, Some(a)) = (raw.users.delete_mode, &raw.users.archive_container) {
        containers.push(("users.archive_container".to_owned(), a.clone()));
    }
    if let Some(g) = &raw.groups {
        containers.push(("groups.container".to_owned(), g.container.clone()));
    }
    for (name, t) in &raw.tenants {
        if let Some(c) = &t.users_container {
            containers.push((format!("tenants.{name}.users_container"), c.clone()));
        }
        if let Some(c) = &t.groups_container {
            containers.push((format!("tenants.{name}.groups_container"), c.clone()));
        }
        if let Some(d) = &t.default_group {
            containers.push((format!("tenants.{name}.default_group"), d.clone()));
        }
        for (i, rule) in t.placement.iter().flatten().enumerate() {
            containers.push((
                format!("tenants.{name}.placement[{i}].container"),
                rule.container.clone(),
            ));
        }
    }
    for (i, rule) in raw.users.placement.iter().enumerate() {
        containers.push((
            format!("users.placement[{i}].container"),
            rule.container.clone(),
        ));
    }
    for (key, dn) in containers {
        match dir.read(&Dn::new(dn.as_str()), &["objectClass"]).await {
            Ok(Some(_)) => {}
            Ok(None) => problems.push(ConfigError::new(
                key,
                format!("{dn} does not exist in the directory"),
                "create it (e.g. an organizationalUnit) or correct the DN",
            )),
            Err(e) => problems.push(ConfigError::new(
                key,
                format!("cannot read {dn}: {e}"),
                "check the bind account's read rights",
            )),
        }
    }
    problems
}

/// With `password_hash = "server"` on OpenLDAP, the Password Modify extended operation is
/// offered.
async fn missing_password_modify(dir: &dyn Directory, raw: &RawConfig) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    let exop_passwords = raw.directory.kind == DirectoryKind::Openldap
        && raw.users.password_hash == crate::directory::PasswordStorage::Server
        && password_attribute(raw).is_some();
    if exop_passwords {
        const PASSWORD_MODIFY: &str = "1.3.6.1.4.1.4203.1.11.1";
        match dir.supports_extension(PASSWORD_MODIFY).await {
            Ok(true) => {}
            Ok(false) => problems.push(ConfigError::new(
                "users.password_hash",
                "the directory does not offer the Password Modify extended operation (RFC 3062) that \"server\" uses",
                "set users.password_hash = \"ssha512\" or \"argon2\", whichever scheme the directory verifies",
            )),
            Err(e) => problems.push(ConfigError::new(
                "ldap.bind_dn",
                format!("cannot read the root DSE: {e}"),
                "allow the bind account to read the root DSE",
            )),
        }
    }
    problems
}

/// The object classes and mapped attributes are in the directory's schema.
async fn schema_gaps(dir: &dyn Directory, raw: &RawConfig) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    match dir.schema_names().await {
        Ok((classes, attributes)) => {
            let group_classes = raw.groups.iter().flat_map(|g| {
                g.object_classes
                    .iter()
                    .map(|c| ("groups.object_classes", c))
            });
            let user_classes = raw
                .users
                .object_classes
                .iter()
                .map(|c| ("users.object_classes", c));
            for (key, oc) in user_classes.chain(group_classes) {
                if !classes.contains(&oc.to_ascii_lowercase()) {
                    problems.push(ConfigError::new(
                        key,
                        format!("the directory schema has no object class `{oc}`"),
                        "load the schema that defines it (for scim2ldapPerson: deploy/openldap/scim2ldap.ldif) or remove it",
                    ));
                }
            }
            let mapping = ValueLimits::from_config(&raw.limits, raw.directory.kind)
                .and_then(|l| Mapping::from_config(&raw.users, l, &USER_RESOURCE));
            if let Ok(mapping) = mapping {
                for m in &mapping.attrs {
                    let country_name = match &m.kind {
                        crate::mapping::ValueKind::Country { name_attr } => name_attr.as_deref(),
                        _ => None,
                    };
                    for ldap in std::iter::once(m.ldap.as_str()).chain(country_name) {
                        if !attributes.contains(&ldap.to_ascii_lowercase()) {
                            problems.push(ConfigError::new(
                                format!("users.attributes.\"{}\"", m.scim),
                                format!("the directory schema has no attribute `{ldap}`"),
                                "correct the attribute name or load the schema that defines it",
                            ));
                        }
                    }
                }
            }
        }
        Err(e) => problems.push(ConfigError::new(
            "ldap.bind_dn",
            format!("cannot read the directory schema: {e}"),
            "allow the bind account to read cn=Subschema",
        )),
    }
    problems
}

/// The settings that need no other section checked first: containers, the archive, and the
/// bounds that must be at least 1.
pub(super) fn check_basics(raw: &RawConfig) -> Result<(), ConfigError> {
    check_dn(&raw.users.container, "users.container")?;
    if raw.users.delete_mode == DeleteMode::Archive {
        match &raw.users.archive_container {
            None => {
                return Err(ConfigError::new(
                    "users.archive_container",
                    "delete_mode is \"archive\" but no archive container is set",
                    "set archive_container = \"ou=archive,dc=example,dc=org\" (an existing OU), or delete_mode = \"delete\"",
                ))
            }
            Some(a) => check_dn(a, "users.archive_container")?,
        }
    }
    if raw.repair.searches_per_second == 0 {
        return Err(ConfigError::new(
            "repair.searches_per_second",
            "must be at least 1: the repair sweep reads at a bounded rate",
            "e.g. 10 (the default)",
        ));
    }
    if raw.server.max_results == 0 {
        return Err(ConfigError::new(
            "server.max_results",
            "must be at least 1",
            "e.g. 200",
        ));
    }
    Ok(())
}

/// Every `users.match_on` attribute is one the mapping fills.
pub(super) fn check_match_on(raw: &RawConfig, mapping: &Mapping) -> Result<(), ConfigError> {
    for (i, attr) in raw.users.match_on.iter().enumerate() {
        if !mapping
            .attrs
            .iter()
            .any(|m| m.ldap.eq_ignore_ascii_case(attr))
        {
            return Err(ConfigError::new(
                format!("users.match_on[{i}]"),
                format!("`{attr}` is not mapped under [users.attributes]"),
                "name LDAP attributes the mapping fills, e.g. \"mail\" or \"employeeNumber\"",
            ));
        }
    }
    Ok(())
}

/// Roles as group memberships need `[groups]`, and are not also a mapped attribute.
pub(super) fn check_roles(raw: &RawConfig) -> Result<(), ConfigError> {
    if let Some(r) = &raw.roles {
        check_dn(&r.container, "roles.container")?;
        if raw.groups.is_none() {
            return Err(ConfigError::new(
                "roles.container",
                "roles as group memberships need [groups] (their classes and member attribute)",
                "add a [groups] section, or store roles in an attribute: roles = \"businessCategory\" under [users.attributes]",
            ));
        }
        if raw
            .users
            .attributes
            .keys()
            .any(|k| k.to_ascii_lowercase().starts_with("roles"))
        {
            return Err(ConfigError::new(
                "roles.container",
                "roles are both group memberships ([roles]) and an attribute (users.attributes.roles)",
                "keep one: remove [roles] or the roles line under [users.attributes]",
            ));
        }
    }
    Ok(())
}
