//! The `Directory` over LDAP, shared by every dialect; what differs between OpenLDAP and
//! Active Directory (ids, creating accounts, ranged attributes, binary values) is the
//! `Dialect`, with one implementation per dialect.

use std::borrow::Cow;

use async_trait::async_trait;
use ldap3::Scope;
use tracing::warn;

use super::pool::{sort_control, to_mods, LdapPool, RawEntry};
use super::{
    Change, DirResult, Directory, DirectoryError, Dn, Entry, LdapFilter, Naming, Password,
    PoolStatus, Servers, SortKey, SortedWindow,
};

#[async_trait]
pub trait Dialect: Naming + Send + Sync + 'static {
    /// An entry as ldap3 returned it → our `Entry` with its SCIM id.
    fn decode(&self, se: RawEntry) -> Entry;

    /// Whether to ask the server to sort (RFC 2891).
    fn server_sort(&self) -> bool {
        true
    }

    /// Whether the server honours the assertion control (RFC 4528) that makes a write
    /// conditional on the version; without it the version is checked just before the write.
    fn assertions(&self) -> bool {
        true
    }

    /// Whether writes can return the entry they leave (RFC 4527 post-read).
    fn post_read(&self) -> bool {
        false
    }

    /// Whether the server stops at a search's size limit (Samba sends every match anyway:
    /// a page is then asked for as one page of paged results).
    fn honours_size_limit(&self) -> bool {
        true
    }

    /// The attribute to request for `attr` (AD asks for `member;range=…`).
    fn request_attr<'a>(&self, attr: &'a str) -> Cow<'a, str> {
        Cow::Borrowed(attr)
    }

    /// Completes an entry the first response left partial (AD's ranged retrieval).
    async fn complete(&self, _pool: &LdapPool, e: Entry) -> DirResult<Entry> {
        Ok(e)
    }

    /// Creates an entry and sets its password (AD: disabled first, then the password, then
    /// enabled).
    async fn add(
        &self,
        pool: &LdapPool,
        dn: &str,
        attrs: Vec<(String, Vec<String>)>,
        password: Option<&Password>,
    ) -> DirResult<()> {
        pool.add(dn, attrs).await?;
        self.password_or_remove(pool, dn, password).await
    }

    /// Sets the password of the entry at `dn` as this directory expects.
    async fn set_password(&self, pool: &LdapPool, dn: &str, password: &Password) -> DirResult<()>;

    /// The password of an entry just added; when the directory refuses it, the entry is
    /// removed again, so that no account stays without the password its creator sent.
    async fn password_or_remove(
        &self,
        pool: &LdapPool,
        dn: &str,
        password: Option<&Password>,
    ) -> DirResult<()> {
        let Some(p) = password else { return Ok(()) };
        if let Err(e) = self.set_password(pool, dn, p).await {
            if let Err(d) = pool.delete(dn, None).await {
                warn!(dn, error = %d, "could not remove an entry whose password was refused");
            }
            return Err(e);
        }
        Ok(())
    }
}

pub struct LdapDirectory<D: Dialect> {
    pool: LdapPool,
    dialect: D,
}

impl<D: Dialect> LdapDirectory<D> {
    pub fn new(pool: LdapPool, dialect: D) -> Self {
        LdapDirectory { pool, dialect }
    }

    /// The attributes to ask for: the caller's (each once already, see `Directory::read`)
    /// and the id unless they name it, in the dialect's form. Deduplicating the forty names
    /// of every read again here was 2% of a GET.
    fn wanted<'a>(&'a self, attrs: &[&'a str]) -> Vec<Cow<'a, str>> {
        let id = self.dialect.id_attribute();
        let id = (!attrs.iter().any(|a| a.eq_ignore_ascii_case(id))).then_some(id);
        let mut wanted = Vec::with_capacity(attrs.len() + 1);
        wanted.extend(
            attrs
                .iter()
                .copied()
                .chain(id)
                .map(|a| self.dialect.request_attr(a)),
        );
        wanted
    }

    /// The entry a post-read returned, decoded and completed.
    async fn finish_one(&self, se: Option<RawEntry>) -> DirResult<Option<Entry>> {
        match se {
            Some(se) => Ok(Some(
                self.dialect
                    .complete(&self.pool, self.dialect.decode(se))
                    .await?,
            )),
            None => Ok(None),
        }
    }

    async fn finish_all(&self, entries: Vec<RawEntry>) -> DirResult<Vec<Entry>> {
        let mut out = Vec::with_capacity(entries.len());
        for se in entries {
            out.push(
                self.dialect
                    .complete(&self.pool, self.dialect.decode(se))
                    .await?,
            );
        }
        Ok(out)
    }
}

fn refs<'a>(v: &'a [Cow<'_, str>]) -> Vec<&'a str> {
    v.iter().map(|a| a.as_ref()).collect()
}

#[async_trait]
impl<D: Dialect> Directory for LdapDirectory<D> {
    fn naming(&self) -> &dyn Naming {
        &self.dialect
    }

    fn servers(&self) -> &dyn Servers {
        &self.pool
    }

    async fn read(&self, dn: &Dn, attrs: &[&str]) -> DirResult<Option<Entry>> {
        let attrs = self.wanted(attrs);
        match self
            .pool
            .search(dn, Scope::Base, &LdapFilter::True, &refs(&attrs), 0)
            .await
        {
            Ok((entries, _)) => Ok(self.finish_all(entries).await?.into_iter().next()),
            Err(DirectoryError::NoSuchObject(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn search(
        &self,
        base: &Dn,
        filter: &LdapFilter,
        attrs: &[&str],
        size_limit: usize,
    ) -> DirResult<(Vec<Entry>, bool)> {
        let attrs = self.wanted(attrs);
        // the paged searches are boxed: their state is kilobytes, and inline it would make
        // every search's boxed future too large for malloc's per-thread cache
        if size_limit == 0 {
            let mut all = Vec::new();
            Box::pin(
                self.pool
                    .search_paged(base, filter, &refs(&attrs), |e| all.push(e)),
            )
            .await?;
            return Ok((self.finish_all(all).await?, false));
        }
        if !self.dialect.honours_size_limit() {
            let (entries, more) =
                Box::pin(
                    self.pool
                        .search_page(base, filter, &refs(&attrs), size_limit),
                )
                .await?;
            return Ok((self.finish_all(entries).await?, more));
        }
        let (mut entries, mut truncated) = self
            .pool
            .search(base, Scope::Subtree, filter, &refs(&attrs), size_limit)
            .await?;
        // a server that ignores the size limit still gives a page of at most that many
        if entries.len() > size_limit {
            entries.truncate(size_limit);
            truncated = true;
        }
        Ok((self.finish_all(entries).await?, truncated))
    }

    async fn search_window(
        &self,
        base: &Dn,
        filter: &LdapFilter,
        attrs: &[&str],
        skip: usize,
        take: usize,
    ) -> DirResult<(usize, Vec<Entry>)> {
        let attrs = self.wanted(attrs);
        let (mut n, mut window) = (0, Vec::new());
        self.pool
            .search_paged(base, filter, &refs(&attrs), |e| {
                if n >= skip && n < skip + take {
                    window.push(e);
                }
                n += 1;
            })
            .await?;
        Ok((n, self.finish_all(window).await?))
    }

    async fn search_sorted(
        &self,
        base: &Dn,
        filter: &LdapFilter,
        attrs: &[&str],
        skip: usize,
        take: usize,
        sort: &SortKey,
    ) -> DirResult<Option<SortedWindow>> {
        if !self.dialect.server_sort() {
            return Ok(None);
        }
        let attrs = self.wanted(attrs);
        let (mut sent, mut window) = (0, Vec::new());
        let res = self
            .pool
            .search_streamed(
                base,
                filter,
                &refs(&attrs),
                skip.saturating_add(take),
                vec![sort_control(sort)],
                |e| {
                    if sent >= skip && sent < skip + take {
                        window.push(e);
                    }
                    sent += 1;
                },
            )
            .await;
        match res {
            Ok(truncated) => Ok(Some(SortedWindow {
                entries: self.finish_all(window).await?,
                sent,
                truncated,
            })),
            // no sort overlay (unavailableCriticalExtension), or no such ordering rule
            Err(DirectoryError::Other { code: 12, .. }) | Err(DirectoryError::Rejected(_)) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn search_until(
        &self,
        base: &Dn,
        filter: &LdapFilter,
        attrs: &[&str],
        limit: usize,
    ) -> DirResult<(Vec<Entry>, bool)> {
        let attrs = self.wanted(attrs);
        let mut kept = Vec::new();
        let mut more = false;
        self.pool
            .search_paged_while(base, filter, &refs(&attrs), |e| {
                if kept.len() < limit {
                    kept.push(e);
                    true
                } else {
                    more = true;
                    false
                }
            })
            .await?;
        Ok((self.finish_all(kept).await?, more))
    }

    async fn count(&self, base: &Dn, filter: &LdapFilter) -> DirResult<usize> {
        let mut n = 0;
        self.pool
            .search_paged(base, filter, &["1.1"], |_| n += 1)
            .await?;
        Ok(n)
    }

    async fn add(
        &self,
        dn: &Dn,
        attrs: Vec<(String, Vec<String>)>,
        password: Option<&Password>,
    ) -> DirResult<()> {
        self.dialect.add(&self.pool, dn, attrs, password).await
    }

    async fn set_password(&self, dn: &Dn, password: &Password) -> DirResult<()> {
        self.dialect.set_password(&self.pool, dn, password).await
    }

    async fn modify_if(
        &self,
        dn: &Dn,
        changes: &[Change],
        assertion: Option<&LdapFilter>,
    ) -> DirResult<()> {
        let assertion = assertion.filter(|_| self.dialect.assertions());
        self.pool.modify_mods(dn, to_mods(changes), assertion).await
    }

    async fn add_read(
        &self,
        dn: &Dn,
        attrs: Vec<(String, Vec<String>)>,
        password: Option<&Password>,
        read: &[&str],
    ) -> DirResult<Option<Entry>> {
        if !self.dialect.post_read() {
            return self.add(dn, attrs, password).await.map(|()| None);
        }
        let wanted = self.wanted(read);
        let se = self
            .pool
            .add_reading(dn, attrs, Some(&refs(&wanted)))
            .await?;
        self.dialect
            .password_or_remove(&self.pool, dn, password)
            .await?;
        self.finish_one(se).await
    }

    async fn modify_read(
        &self,
        dn: &Dn,
        changes: &[Change],
        assertion: Option<&LdapFilter>,
        read: &[&str],
    ) -> DirResult<Option<Entry>> {
        if !self.dialect.post_read() {
            return self.modify_if(dn, changes, assertion).await.map(|()| None);
        }
        let assertion = assertion.filter(|_| self.dialect.assertions());
        let wanted = self.wanted(read);
        let se = self
            .pool
            .modify_reading(dn, to_mods(changes), assertion, Some(&refs(&wanted)))
            .await?;
        self.finish_one(se).await
    }

    async fn walk_open(
        &self,
        base: &Dn,
        filter: &LdapFilter,
        attrs: &[&str],
    ) -> DirResult<super::Walk> {
        let wanted = self.wanted(attrs);
        let walk = self.pool.open_walk(base, filter, &refs(&wanted)).await?;
        Ok(super::Walk(walk))
    }

    async fn walk_next(&self, walk: &mut super::Walk, n: usize) -> DirResult<(Vec<Entry>, bool)> {
        let (entries, done) = self.pool.walk_next(&mut walk.0, n).await?;
        Ok((self.finish_all(entries).await?, done))
    }

    async fn contains(&self, dn: &Dn, attr: &str, value: &str) -> DirResult<bool> {
        self.pool.compare(dn, attr, value).await
    }

    async fn rename_if(
        &self,
        dn: &Dn,
        new_rdn: &str,
        new_parent: Option<&Dn>,
        assertion: Option<&LdapFilter>,
    ) -> DirResult<()> {
        let assertion = assertion.filter(|_| self.dialect.assertions());
        self.pool
            .rename(dn, new_rdn, new_parent.map(Dn::as_str), assertion)
            .await
    }

    async fn delete_if(&self, dn: &Dn, assertion: Option<&LdapFilter>) -> DirResult<()> {
        let assertion = assertion.filter(|_| self.dialect.assertions());
        self.pool.delete(dn, assertion).await
    }
}

/// The pool is the servers a directory talks to: their health, checks and counts.
#[async_trait]
impl Servers for LdapPool {
    fn operations(&self) -> u64 {
        self.operations()
    }

    fn bind_attempts(&self) -> u64 {
        self.bind_attempts()
    }

    fn pool_status(&self) -> PoolStatus {
        self.status()
    }

    async fn ping(&self) -> DirResult<()> {
        self.search("", Scope::Base, &LdapFilter::True, &["namingContexts"], 0)
            .await
            .map(|_| ())
    }

    fn estate(&self) -> super::EstateStatus {
        self.estate()
    }

    fn request_server(&self) -> Option<String> {
        self.request_server()
    }

    async fn check_servers(&self) -> Result<(), String> {
        self.check_now().await
    }

    async fn check_server(&self, url: &str) -> DirResult<()> {
        self.check_server(url).await
    }

    async fn supports_extension(&self, oid: &str) -> DirResult<bool> {
        let (root, _) = self
            .search(
                "",
                Scope::Base,
                &LdapFilter::True,
                &["supportedExtension"],
                0,
            )
            .await?;
        Ok(root.first().is_some_and(|e| {
            e.attrs
                .get("supportedextension")
                .is_some_and(|v| v.iter().any(|x| x == oid))
        }))
    }

    async fn root_dse(&self, attrs: &[&str]) -> DirResult<Vec<(String, Vec<String>)>> {
        let (root, _) = self
            .search("", Scope::Base, &LdapFilter::True, attrs, 0)
            .await?;
        Ok(root
            .into_iter()
            .next()
            .map(|e| {
                e.attrs
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_vec()))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn schema_names(&self) -> DirResult<(Vec<String>, Vec<String>)> {
        let (root, _) = self
            .search(
                "",
                Scope::Base,
                &LdapFilter::True,
                &["subschemaSubentry"],
                0,
            )
            .await?;
        let sub = root
            .first()
            .and_then(|e| e.attrs.get("subschemasubentry"))
            .and_then(|v| v.first())
            .map(str::to_owned)
            .unwrap_or_else(|| "cn=Subschema".to_owned());
        let (schema, _) = self
            .search(
                &sub,
                Scope::Base,
                &LdapFilter::True,
                &["objectClasses", "attributeTypes"],
                0,
            )
            .await?;
        let names = |attr: &str| -> Vec<String> {
            schema
                .first()
                .and_then(|e| e.attrs.get(attr))
                .map(|defs| defs.iter().flat_map(schema_def_names).collect())
                .unwrap_or_default()
        };
        // a decoded entry's names are lowercase
        Ok((names("objectclasses"), names("attributetypes")))
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
