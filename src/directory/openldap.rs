//! OpenLDAP dialect: ids are `entryUUID` (RFC 4530), stored and compared as strings; the
//! version is `entryCSN`; the `sssvlv` overlay sorts; passwords are set with the Password
//! Modify extended operation (RFC 3062), so that slapd hashes them with its own scheme.

use async_trait::async_trait;

use super::ldap::{Dialect, LdapDirectory};
use super::pool::{LdapPool, RawEntry};
use super::{
    Change, DirResult, DirectoryError, DirectoryKind, Entry, LdapFilter, Naming, Password,
    PasswordStorage,
};

pub struct OpenLdapDialect {
    /// How a password reaches the directory (`users.password_hash`).
    pub password: PasswordStorage,
    /// The attribute a hash made here is stored in (`users.attributes.password`).
    pub password_attr: String,
}

impl Default for OpenLdapDialect {
    fn default() -> Self {
        OpenLdapDialect {
            password: PasswordStorage::Server,
            password_attr: "userPassword".to_owned(),
        }
    }
}

/// OpenLDAP behind the `Directory` trait.
pub type OpenLdap = LdapDirectory<OpenLdapDialect>;

pub fn open_ldap(pool: LdapPool, dialect: OpenLdapDialect) -> OpenLdap {
    LdapDirectory::new(pool, dialect)
}

/// entryUUID syntax (RFC 4530): the 36-character hyphenated hex form.
fn looks_like_uuid(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

impl Naming for OpenLdapDialect {
    fn kind(&self) -> DirectoryKind {
        DirectoryKind::Openldap
    }

    fn id_attribute(&self) -> &'static str {
        "entryUUID"
    }

    fn version_attribute(&self) -> &'static str {
        "entryCSN"
    }

    fn id_filter(&self, id: &str) -> Option<LdapFilter> {
        looks_like_uuid(id).then(|| LdapFilter::eq("entryUUID", id.to_ascii_lowercase()))
    }
}

#[async_trait]
impl Dialect for OpenLdapDialect {
    fn post_read(&self) -> bool {
        true
    }

    fn decode(&self, se: RawEntry) -> Entry {
        let mut attrs = se.attrs;
        let id = attrs
            .remove("entryuuid")
            .and_then(|v| v.into_iter().next())
            .unwrap_or_default();
        Entry {
            dn: se.dn.into(),
            id: id.into(),
            attrs,
        }
    }

    async fn set_password(&self, pool: &LdapPool, dn: &str, password: &Password) -> DirResult<()> {
        let hash = match self.password {
            PasswordStorage::Server => return pool.password_modify(dn, password).await,
            // argon2 takes tens of milliseconds of CPU: off the async workers
            scheme => {
                let p = password.clone();
                tokio::task::spawn_blocking(move || scheme.hash(&p))
                    .await
                    .map_err(|e| DirectoryError::Unavailable(format!("hashing failed: {e}")))?
                    .map_err(DirectoryError::Unavailable)?
            }
        };
        let Some(hash) = hash else {
            return pool.password_modify(dn, password).await;
        };
        // a replace: every value the attribute had goes
        let set = [Change::Replace(
            self.password_attr.as_str().into(),
            vec![hash],
        )];
        pool.modify(dn, &set, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_are_not_uuids_match_nothing() {
        assert!(looks_like_uuid("3f2504e0-4f89-11d3-9a0c-0305e82c3301"));
        assert!(!looks_like_uuid("3f2504e0-4f89-11d3-9a0c-0305e82c330*"));
        assert!(!looks_like_uuid("uid=admin,dc=example,dc=org"));
    }
}
