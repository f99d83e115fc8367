//! OpenLDAP dialect: ids are `entryUUID` (RFC 4530), stored and compared as strings.

use async_trait::async_trait;
use ldap3::{Scope, SearchEntry};

use super::pool::LdapPool;
use super::{
    Change, DirResult, Directory, DirectoryError, DirectoryKind, Entry, LdapFilter, SortKey,
};

pub struct OpenLdap {
    pool: LdapPool,
}

impl OpenLdap {
    pub fn new(pool: LdapPool) -> Self {
        OpenLdap { pool }
    }

    fn to_entry(se: SearchEntry) -> Entry {
        let mut attrs: std::collections::HashMap<String, Vec<String>> = se
            .attrs
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let id = attrs
            .get("entryuuid")
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_default();
        attrs.remove("entryuuid");
        Entry {
            dn: se.dn,
            id,
            attrs,
        }
    }

    fn with_id_attr<'a>(attrs: &[&'a str]) -> Vec<&'a str> {
        let mut v = attrs.to_vec();
        if !v.iter().any(|a| a.eq_ignore_ascii_case("entryUUID")) {
            v.push("entryUUID");
        }
        v
    }
}

/// entryUUID syntax (RFC 4530): the 36-character hyphenated hex form.
fn looks_like_uuid(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[async_trait]
impl Directory for OpenLdap {
    fn kind(&self) -> DirectoryKind {
        DirectoryKind::Openldap
    }

    fn id_attribute(&self) -> &'static str {
        "entryUUID"
    }

    fn id_filter(&self, id: &str) -> Option<LdapFilter> {
        looks_like_uuid(id).then(|| LdapFilter::eq("entryUUID", id.to_ascii_lowercase()))
    }

    fn operations(&self) -> u64 {
        self.pool.operations()
    }

    async fn read(&self, dn: &str, attrs: &[&str]) -> DirResult<Option<Entry>> {
        let attrs = Self::with_id_attr(attrs);
        match self
            .pool
            .search(dn, Scope::Base, "(objectClass=*)", &attrs, 0)
            .await
        {
            Ok((entries, _)) => Ok(entries.into_iter().next().map(Self::to_entry)),
            Err(super::DirectoryError::NoSuchObject(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn search(
        &self,
        base: &str,
        filter: &LdapFilter,
        attrs: &[&str],
        size_limit: usize,
    ) -> DirResult<(Vec<Entry>, bool)> {
        let attrs = Self::with_id_attr(attrs);
        let filter = filter.to_string();
        if size_limit == 0 {
            let mut all = Vec::new();
            self.pool
                .search_paged(base, &filter, &attrs, |e| all.push(Self::to_entry(e)))
                .await?;
            return Ok((all, false));
        }
        let (entries, truncated) = self
            .pool
            .search(base, Scope::Subtree, &filter, &attrs, size_limit)
            .await?;
        Ok((entries.into_iter().map(Self::to_entry).collect(), truncated))
    }

    async fn search_window(
        &self,
        base: &str,
        filter: &LdapFilter,
        attrs: &[&str],
        skip: usize,
        take: usize,
    ) -> DirResult<(usize, Vec<Entry>)> {
        let attrs = Self::with_id_attr(attrs);
        let (mut n, mut window) = (0, Vec::new());
        self.pool
            .search_paged(base, &filter.to_string(), &attrs, |e| {
                if n >= skip && n < skip + take {
                    window.push(Self::to_entry(e));
                }
                n += 1;
            })
            .await?;
        Ok((n, window))
    }

    async fn search_sorted(
        &self,
        base: &str,
        filter: &LdapFilter,
        attrs: &[&str],
        size_limit: usize,
        sort: &SortKey,
    ) -> DirResult<Option<(Vec<Entry>, bool)>> {
        let attrs = Self::with_id_attr(attrs);
        let res = self
            .pool
            .search_with(
                base,
                Scope::Subtree,
                &filter.to_string(),
                &attrs,
                size_limit,
                vec![super::pool::sort_control(sort)],
            )
            .await;
        match res {
            Ok((entries, truncated)) => Ok(Some((
                entries.into_iter().map(Self::to_entry).collect(),
                truncated,
            ))),
            // no sssvlv overlay (unavailableCriticalExtension), or no such ordering rule
            Err(DirectoryError::Other { code: 12, .. }) | Err(DirectoryError::Rejected(_)) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn count(&self, base: &str, filter: &LdapFilter) -> DirResult<usize> {
        let mut n = 0;
        self.pool
            .search_paged(base, &filter.to_string(), &["1.1"], |_| n += 1)
            .await?;
        Ok(n)
    }

    async fn add(&self, dn: &str, attrs: Vec<(String, Vec<String>)>) -> DirResult<()> {
        self.pool.add(dn, attrs).await
    }

    async fn modify_if(
        &self,
        dn: &str,
        changes: &[Change],
        assertion: Option<&LdapFilter>,
    ) -> DirResult<()> {
        self.pool.modify(dn, changes, assertion).await
    }

    async fn contains(&self, dn: &str, attr: &str, value: &str) -> DirResult<bool> {
        self.pool.compare(dn, attr, value).await
    }

    async fn rename(&self, dn: &str, new_rdn: &str, new_parent: Option<&str>) -> DirResult<()> {
        self.pool.rename(dn, new_rdn, new_parent).await
    }

    async fn delete_if(&self, dn: &str, assertion: Option<&LdapFilter>) -> DirResult<()> {
        self.pool.delete(dn, assertion).await
    }

    fn version_attribute(&self) -> &'static str {
        "entryCSN"
    }

    async fn ping(&self) -> DirResult<()> {
        self.pool
            .search("", Scope::Base, "(objectClass=*)", &["namingContexts"], 0)
            .await
            .map(|_| ())
    }

    async fn schema_names(&self) -> DirResult<(Vec<String>, Vec<String>)> {
        let (root, _) = self
            .pool
            .search(
                "",
                Scope::Base,
                "(objectClass=*)",
                &["subschemaSubentry"],
                0,
            )
            .await?;
        let sub = root
            .first()
            .and_then(|e| e.attrs.get("subschemaSubentry"))
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_else(|| "cn=Subschema".to_owned());
        let (schema, _) = self
            .pool
            .search(
                &sub,
                Scope::Base,
                "(objectClass=subschema)",
                &["objectClasses", "attributeTypes"],
                0,
            )
            .await?;
        let names = |attr: &str| -> Vec<String> {
            schema
                .first()
                .and_then(|e| e.attrs.get(attr))
                .map(|defs| defs.iter().flat_map(|d| schema_def_names(d)).collect())
                .unwrap_or_default()
        };
        Ok((names("objectClasses"), names("attributeTypes")))
    }
}

/// The NAMEs of one RFC 4512 definition: `NAME 'cn'` or `NAME ( 'cn' 'commonName' )`.
pub fn schema_def_names(def: &str) -> Vec<String> {
    let Some(i) = def.find(" NAME ") else {
        return Vec::new();
    };
    let rest = def[i + 6..].trim_start();
    let chunk = if rest.starts_with('(') {
        rest.split(')').next().unwrap_or("")
    } else {
        rest.split_whitespace().next().unwrap_or("")
    };
    chunk
        .split('\'')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, n)| n.to_ascii_lowercase())
        .collect()
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

    #[test]
    fn parses_schema_names() {
        assert_eq!(
            schema_def_names("( 2.5.4.3 NAME ( 'cn' 'commonName' ) DESC 'x' SUP name )"),
            vec!["cn", "commonname"]
        );
        assert_eq!(
            schema_def_names(
                "( 2.16.840.1.113730.3.2.2 NAME 'inetOrgPerson' SUP organizationalPerson )"
            ),
            vec!["inetorgperson"]
        );
    }
}
