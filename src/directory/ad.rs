//! Active Directory dialect (tested against Samba's AD DC): ids are `objectGUID` (binary,
//! shown as the canonical GUID string), accounts are created disabled and enabled once they
//! have a password (`unicodePwd`, UTF-16LE in quotes, over TLS), `sAMAccountName` is derived
//! within AD's rules, and `member` is read in ranges so that large groups come back whole.

use std::borrow::Cow;
use std::collections::HashSet;

use async_trait::async_trait;
use ldap3::{Mod, Scope};
use rand::seq::{IndexedRandom, SliceRandom};
use tracing::warn;

use super::filter::{split_dn, unescape_dn_value};
use super::ldap::{Dialect, LdapDirectory};
use super::pool::{LdapPool, RawEntry};
use super::{guid, Change, DirResult, DirectoryKind, Entry, LdapFilter, Naming, Password};

/// `userAccountControl` bits.
pub const UAC_ACCOUNTDISABLE: u32 = 0x2;
pub const UAC_NORMAL_ACCOUNT: u32 = 0x200;

pub struct AdDialect {
    /// Values per ranged request for `member` (Windows AD answers at most 1500 unasked).
    pub range_step: usize,
    /// Give accounts created without a password a strong random one, so that they can be
    /// enabled (IdPs such as Entra never send passwords).
    pub random_passwords: bool,
    /// Where deleted accounts are archived (`users.archive_container`): an account there
    /// holds no name a new account needs.
    pub archive: Option<String>,
    /// The sAMAccountName a new user is given comes from `[users.derive]` (an expression),
    /// not from a SCIM attribute: it is made to fit AD's rules and numbered when taken,
    /// as the one derived from userPrincipalName is.
    pub sam_derived: bool,
}

/// The attributes holding an AD account's domain-wide unique names besides its DN.
const UNIQUE_NAMES: [&str; 2] = ["userPrincipalName", "sAMAccountName"];

/// What marks a tombstoned userPrincipalName (`bjensen+archived-3f2504e0@example.test`).
const ARCHIVED_MARK: &str = "+archived-";

/// The names an archived account keeps instead of its own, so that a rehire can take them:
/// `bjensen@example.test` → `bjensen+archived-ID8@example.test`, sAMAccountName `bjensen` →
/// `bjensen~ID8` (20 characters at most), ID8 being the first 8 hex digits of its objectGUID
/// (which itself does not change: the IdP's id stays findable for a restore).
fn tombstone_names(e: &Entry) -> Vec<Change> {
    let id8: String =
        e.id.chars()
            .filter(|c| c.is_ascii_hexdigit())
            .take(8)
            .collect();
    let mut out = Vec::new();
    if let Some(upn) = e.first("userPrincipalName") {
        if !upn.contains(ARCHIVED_MARK) {
            let tomb = match upn.rsplit_once('@') {
                Some((local, domain)) => format!("{local}{ARCHIVED_MARK}{id8}@{domain}"),
                None => format!("{upn}{ARCHIVED_MARK}{id8}"),
            };
            out.push(Change::Replace("userPrincipalName".into(), vec![tomb]));
        }
    }
    if let Some(sam) = e.first("sAMAccountName") {
        let suffix = format!("~{id8}");
        if !sam.ends_with(&suffix) {
            let keep: String = sam.chars().take(20 - suffix.len()).collect();
            out.push(Change::Replace(
                "sAMAccountName".into(),
                vec![format!("{keep}{suffix}")],
            ));
        }
    }
    out
}

pub type ActiveDirectory = LdapDirectory<AdDialect>;

pub fn active_directory(pool: LdapPool, dialect: AdDialect) -> ActiveDirectory {
    LdapDirectory::new(pool, dialect)
}

/// `"password"` as UTF-16LE, the form AD takes for `unicodePwd`.
pub fn encode_password(password: &str) -> Vec<u8> {
    zeroize::Zeroizing::new(format!("\"{password}\""))
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect()
}

/// A 24-character password with upper, lower, digit and symbol, from the OS RNG.
pub fn random_password() -> String {
    const SETS: [&[u8]; 4] = [
        b"ABCDEFGHJKLMNPQRSTUVWXYZ",
        b"abcdefghijkmnopqrstuvwxyz",
        b"23456789",
        b"!#%+-.:=?@_~",
    ];
    let mut rng = rand::rng();
    let all: Vec<u8> = SETS.concat();
    let mut chars: Vec<u8> = SETS
        .iter()
        .filter_map(|s| s.choose(&mut rng).copied())
        .collect();
    while chars.len() < 24 {
        if let Some(c) = all.choose(&mut rng) {
            chars.push(*c);
        }
    }
    chars.shuffle(&mut rng);
    String::from_utf8_lossy(&chars).into_owned()
}

/// AD's rules for a user's sAMAccountName: at most 20 characters, none of `"/\[]:;|=,+*?<>@`,
/// no control characters, not only dots and spaces, not ending in a dot.
pub fn sam_account_name(source: &str) -> Option<String> {
    const FORBIDDEN: &str = "\"/\\[]:;|=,+*?<>@";
    let cleaned: String = source
        .chars()
        .filter(|c| !FORBIDDEN.contains(*c) && !c.is_control())
        .take(20)
        .collect();
    let cleaned = cleaned.trim().trim_end_matches('.').to_owned();
    (!cleaned.is_empty() && cleaned.chars().any(|c| c != '.' && c != ' ')).then_some(cleaned)
}

/// What a sAMAccountName is made from when nothing gives one: the userPrincipalName's local
/// part, else the RDN's value.
fn sam_source(dn: &str, upn: Option<&str>) -> Option<String> {
    upn.map(|upn| upn.split('@').next().unwrap_or(upn).to_owned())
        .or_else(|| {
            split_dn(dn)
                .first()
                .and_then(|r| r.split_once('='))
                .map(|(_, v)| unescape_dn_value(v))
        })
}

/// The domain's naming context (`dc=…` RDNs at the end of `dn`).
fn domain_of(dn: &str) -> String {
    let parts = split_dn(dn);
    let domain: Vec<&str> = parts
        .iter()
        .skip_while(|r| !r.to_ascii_lowercase().starts_with("dc="))
        .map(String::as_str)
        .collect();
    domain.join(",")
}

fn take(attrs: &mut Vec<(String, Vec<String>)>, name: &str) -> Option<Vec<String>> {
    let i = attrs
        .iter()
        .position(|(a, _)| a.eq_ignore_ascii_case(name))?;
    Some(attrs.remove(i).1)
}

fn has_value(attrs: &[(String, Vec<String>)], name: &str, value: &str) -> bool {
    attrs.iter().any(|(a, v)| {
        a.eq_ignore_ascii_case(name) && v.iter().any(|x| x.eq_ignore_ascii_case(value))
    })
}

impl AdDialect {
    /// Archived accounts (archived before names were freed on archive) that hold `upn` or
    /// `sam` give them up: a name held only by an archived account is free.
    async fn free_archived_names(
        &self,
        pool: &LdapPool,
        upn: Option<&str>,
        sam: Option<&str>,
    ) -> DirResult<()> {
        let Some(archive) = &self.archive else {
            return Ok(());
        };
        let mut holding = Vec::new();
        if let Some(u) = upn {
            holding.push(LdapFilter::eq("userPrincipalName", u));
        }
        if let Some(s) = sam {
            holding.push(LdapFilter::eq("sAMAccountName", s));
        }
        if holding.is_empty() {
            return Ok(());
        }
        let filter = LdapFilter::and(vec![
            LdapFilter::eq("objectClass", "user"),
            LdapFilter::or(holding),
        ]);
        let mut attrs: Vec<&str> = UNIQUE_NAMES.to_vec();
        attrs.push("objectGUID");
        let (found, _) = pool
            .search(archive, Scope::Subtree, &filter, &attrs, 0)
            .await?;
        for se in found {
            let e = self.decode(se);
            let changes = tombstone_names(&e);
            if !changes.is_empty() {
                warn!(dn = %e.dn, "an archived account held a name a new account needs; it now holds its archived form");
                pool.modify(&e.dn, &changes, None).await?;
            }
        }
        Ok(())
    }

    /// A sAMAccountName no other object of the domain has: the derived one, else it with a
    /// number (deterministic: the first free of 2, 3, …). When the derived name belongs to an
    /// account with this very userPrincipalName, that is this user, made a moment ago by
    /// another request or another bridge: `AlreadyExists`, never a second account.
    async fn free_sam(
        &self,
        pool: &LdapPool,
        dn: &str,
        wanted: &str,
        upn: Option<&str>,
    ) -> DirResult<String> {
        let domain = domain_of(dn);
        for n in 1..100u32 {
            let candidate = if n == 1 {
                wanted.to_owned()
            } else {
                let suffix = n.to_string();
                let keep: String = wanted.chars().take(20 - suffix.len()).collect();
                format!("{keep}{suffix}")
            };
            let filter = LdapFilter::eq("sAMAccountName", candidate.clone());
            let (found, _) = pool
                .search(&domain, Scope::Subtree, &filter, &["userPrincipalName"], 1)
                .await?;
            let Some(holder) = found.first() else {
                return Ok(candidate);
            };
            let same_user = upn.is_some_and(|u| {
                holder
                    .attrs
                    .get("userprincipalname")
                    .is_some_and(|v| v.iter().any(|x| x.eq_ignore_ascii_case(u)))
            });
            if same_user {
                return Err(super::DirectoryError::AlreadyExists(holder.dn.clone()));
            }
        }
        Err(super::DirectoryError::AlreadyExists(format!(
            "sAMAccountName {wanted} (and 98 variants)"
        )))
    }
}

impl Naming for AdDialect {
    fn kind(&self) -> DirectoryKind {
        DirectoryKind::ActiveDirectory
    }

    fn id_attribute(&self) -> &'static str {
        "objectGUID"
    }

    fn version_attribute(&self) -> &'static str {
        "uSNChanged"
    }

    fn id_filter(&self, id: &str) -> Option<LdapFilter> {
        guid::to_bytes(id).map(|b| LdapFilter::EqBytes("objectGUID".into(), b.to_vec()))
    }

    fn unique_name_attributes(&self) -> &'static [&'static str] {
        &UNIQUE_NAMES
    }

    fn free_names(&self, e: &Entry) -> Vec<Change> {
        tombstone_names(e)
    }

    fn tombstoned_names_filter(&self) -> Option<LdapFilter> {
        Some(LdapFilter::Substring {
            attr: "userPrincipalName".into(),
            initial: None,
            any: vec![ARCHIVED_MARK.into()],
            last: None,
        })
    }
}

#[async_trait]
impl Dialect for AdDialect {
    fn decode(&self, mut se: RawEntry) -> Entry {
        let raw = match se.bin_attrs.remove("objectguid") {
            Some(v) => v.into_iter().next(),
            // 16 bytes that happen to be valid UTF-8 arrive as text
            None => se
                .attrs
                .get("objectguid")
                .and_then(|v| v.first().map(|s| s.as_bytes().to_vec())),
        };
        let mut attrs = se.attrs;
        attrs.remove("objectguid");
        Entry {
            dn: se.dn.into(),
            id: raw
                .and_then(|b| guid::to_string(&b))
                .unwrap_or_default()
                .into(),
            attrs,
        }
    }

    /// AD sorts with its own rules; the bridge sorts in memory.
    fn server_sort(&self) -> bool {
        false
    }

    /// Samba sends every match whatever the size limit.
    fn honours_size_limit(&self) -> bool {
        false
    }

    /// AD (and Samba) do not offer the RFC 4528 assertion control.
    fn assertions(&self) -> bool {
        false
    }

    /// `member` is always asked for by range, so that the ranged path is the only path.
    fn request_attr<'a>(&self, attr: &'a str) -> Cow<'a, str> {
        if attr.eq_ignore_ascii_case("member") {
            Cow::Owned(format!(
                "member;range=0-{}",
                self.range_step.saturating_sub(1)
            ))
        } else {
            Cow::Borrowed(attr)
        }
    }

    /// Follows `member;range=a-b` until the server answers `…-*`.
    async fn complete(&self, pool: &LdapPool, mut e: Entry) -> DirResult<Entry> {
        let ranged: Vec<String> = e
            .attrs
            .keys()
            .filter(|k| k.starts_with("member;range="))
            .map(str::to_owned)
            .collect();
        for key in ranged {
            // the values gather under `member`, the last attribute, where they are appended
            let first = e.attrs.remove(&key).unwrap_or_default();
            e.attrs.extend("member", first);
            let mut end = key.rsplit('-').next().unwrap_or("*").to_owned();
            while end != "*" {
                let Ok(last) = end.parse::<usize>() else {
                    break;
                };
                let next = format!("member;range={}-{}", last + 1, last + self.range_step);
                let (found, _) = pool
                    .search(&e.dn, Scope::Base, &LdapFilter::True, &[next.as_str()], 0)
                    .await?;
                let Some(part) = found.into_iter().next() else {
                    break;
                };
                let Some((k, v)) = part
                    .attrs
                    .iter()
                    .find(|(k, _)| k.starts_with("member;range="))
                else {
                    break;
                };
                e.attrs.extend("member", v);
                end = k.rsplit('-').next().unwrap_or("*").to_owned();
            }
        }
        Ok(e)
    }

    /// Users are added disabled, given their password, then enabled as asked: AD refuses an
    /// enabled account without a password. A failure after the add removes the entry, so no
    /// disabled half-account stays behind.
    async fn add(
        &self,
        pool: &LdapPool,
        dn: &str,
        mut attrs: Vec<(String, Vec<String>)>,
        password: Option<&Password>,
    ) -> DirResult<()> {
        let is_user = has_value(&attrs, "objectClass", "user");
        let given = attrs
            .iter()
            .position(|(a, _)| a.eq_ignore_ascii_case("sAMAccountName"));
        // a derived one is the wanted name, made free below like the default one
        let derived = match given {
            Some(i) if self.sam_derived && is_user => Some(attrs.remove(i).1),
            _ => None,
        };
        if given.is_none() || derived.is_some() {
            let upn = attrs
                .iter()
                .find(|(a, _)| a.eq_ignore_ascii_case("userPrincipalName"))
                .and_then(|(_, v)| v.first())
                .cloned();
            let source = derived
                .and_then(|v| v.into_iter().next())
                .or_else(|| sam_source(dn, upn.as_deref()));
            let sam = source.as_deref().and_then(sam_account_name);
            if is_user {
                self.free_archived_names(pool, upn.as_deref(), sam.as_deref())
                    .await?;
            }
            if let Some(sam) = sam {
                let sam = self.free_sam(pool, dn, &sam, upn.as_deref()).await?;
                attrs.push(("sAMAccountName".into(), vec![sam]));
            }
        }
        if !is_user {
            return pool.add(dn, attrs).await;
        }
        let random =
            (password.is_none() && self.random_passwords).then(|| Password::new(random_password()));
        let password = password.or(random.as_ref());
        let wanted = take(&mut attrs, "userAccountControl")
            .and_then(|v| v.first().and_then(|s| s.parse::<u32>().ok()))
            .unwrap_or(UAC_NORMAL_ACCOUNT);
        let disabled = wanted | UAC_ACCOUNTDISABLE;
        attrs.push(("userAccountControl".into(), vec![disabled.to_string()]));
        pool.add(dn, attrs).await?;
        let finish = async {
            if let Some(p) = password {
                self.set_password(pool, dn, p).await?;
            }
            if wanted != disabled {
                if password.is_none() {
                    warn!(
                        dn,
                        "account left disabled: no password given and random_passwords is off"
                    );
                    return Ok(());
                }
                let enable = [
                    Change::Delete("userAccountControl".into(), vec![disabled.to_string()]),
                    Change::Add("userAccountControl".into(), vec![wanted.to_string()]),
                ];
                pool.modify(dn, &enable, None).await?;
            }
            Ok(())
        };
        if let Err(e) = finish.await {
            if let Err(d) = pool.delete(dn, None).await {
                warn!(dn, error = %d, "could not remove a half-created account");
            }
            return Err(e);
        }
        Ok(())
    }

    /// `unicodePwd` replaced (an administrator's reset: no old password needed), over the
    /// encrypted connection AD requires.
    async fn set_password(&self, pool: &LdapPool, dn: &str, password: &Password) -> DirResult<()> {
        let set = Mod::Replace(
            b"unicodePwd".to_vec(),
            HashSet::from([encode_password(password.expose())]),
        );
        pool.modify_mods(dn, vec![set], None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_quoted_utf16le() {
        assert_eq!(
            encode_password("ab"),
            vec![b'"', 0, b'a', 0, b'b', 0, b'"', 0]
        );
    }

    #[test]
    fn random_passwords_have_every_class() {
        let p = random_password();
        assert_eq!(p.len(), 24);
        assert!(p.chars().any(|c| c.is_ascii_uppercase()));
        assert!(p.chars().any(|c| c.is_ascii_lowercase()));
        assert!(p.chars().any(|c| c.is_ascii_digit()));
        assert!(p.chars().any(|c| !c.is_ascii_alphanumeric()));
        assert_ne!(p, random_password());
    }

    #[test]
    fn sam_account_names_follow_ads_rules() {
        assert_eq!(sam_account_name("bjensen").as_deref(), Some("bjensen"));
        assert_eq!(
            sam_account_name("a.very.long.user.name.indeed").as_deref(),
            Some("a.very.long.user.nam")
        );
        assert_eq!(
            sam_account_name("we\"ird/na[me]:x").as_deref(),
            Some("weirdnamex")
        );
        assert_eq!(sam_account_name("trailing."), Some("trailing".into()));
        assert_eq!(sam_account_name("..."), None);
        assert_eq!(sam_account_name("@@"), None);
    }

    #[test]
    fn archived_accounts_keep_tombstone_names_that_stay_unique_and_within_ads_rules() {
        let e = Entry {
            dn: "CN=B,OU=A,DC=x".into(),
            id: "3f2504e0-4f89-11d3-9a0c-0305e82c3301".into(),
            attrs: [
                ("userprincipalname", "bjensen@example.test"),
                ("samaccountname", "a.very.long.user.nam"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), vec![v.to_owned()]))
            .collect(),
        };
        let changes = tombstone_names(&e);
        assert_eq!(
            changes,
            vec![
                Change::Replace(
                    "userPrincipalName".into(),
                    vec!["bjensen+archived-3f2504e0@example.test".into()]
                ),
                Change::Replace("sAMAccountName".into(), vec!["a.very.long~3f2504e0".into()]),
            ]
        );
        let Change::Replace(_, v) = &changes[1] else {
            unreachable!()
        };
        assert!(v[0].chars().count() <= 20);
        // already tombstoned: nothing to do
        let mut done = e.clone();
        for c in &changes {
            if let Change::Replace(a, v) = c {
                done.attrs.insert(&a.to_ascii_lowercase(), v);
            }
        }
        assert!(tombstone_names(&done).is_empty());
    }

    #[test]
    fn the_domain_is_the_dc_part() {
        assert_eq!(
            domain_of("CN=Jane,OU=Staff,DC=example,DC=test"),
            "DC=example,DC=test"
        );
    }
}
