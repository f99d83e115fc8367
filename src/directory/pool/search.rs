//! Searches: one page, every page (RFC 2696 paged results past any size limit), streamed with
//! controls (server-side sort), a walk a cursor continues, and compare.

use deadpool::managed::{self};
use ldap3::{LdapError, Scope, SearchOptions};
use tracing::debug;

use crate::directory::{DirResult, DirectoryError, LdapFilter};

use super::controls::*;
use super::entry::{decoded, RawEntry};
use super::filter_tag::filter_tag;
use super::{map_result_code, LdapPool};

/// A paged search that continues from page to page on its own connection (`open_walk`).
pub struct PagedWalk {
    ldap: ldap3::Ldap,
    base: String,
    filter: LdapFilter,
    attrs: Vec<String>,
    /// The server's cookie for the next page; empty before the first.
    cookie: Vec<u8>,
    done: bool,
}

/// A whole search: its entries (referrals and intermediate messages skipped) and its result.
/// `streaming_search` without the `EntriesOnly` adapter `Ldap::search` wraps every search in:
/// that is an `Arc<Mutex<Box<dyn Adapter>>>`, two vectors and a lock per search, for the
/// filter this loop applies.
async fn whole(
    ldap: &mut ldap3::Ldap,
    base: &str,
    scope: Scope,
    filter: &LdapFilter,
    attrs: &[&str],
) -> Result<ldap3::SearchResult, LdapError> {
    let opts = ldap.search_opts.take().unwrap_or_default();
    // boxed: the search's start is 900 bytes of state, which made this future too large
    // for malloc's per-thread cache (see `conn`)
    let mut stream = Box::pin(
        ldap.with_search_options(with_filter(opts, filter))
            .streaming_search(base, scope, "", attrs),
    )
    .await?;
    let mut entries = Vec::new();
    while let Some(entry) = stream.next().await? {
        if !entry.is_ref() && !entry.is_intermediate() {
            entries.push(entry);
        }
    }
    Ok(ldap3::SearchResult(entries, stream.finish().await))
}

/// `opts` with `filter` encoded from its type (`filter_tag`), not written as text for ldap3
/// to parse back; the text filter passed beside it is then empty, so that a search that
/// lost the encoded one fails instead of running on another filter.
fn with_filter(opts: SearchOptions, filter: &LdapFilter) -> SearchOptions {
    opts.filter(filter_tag(filter))
}

impl LdapPool {
    /// Subtree or base search. Retries once on a broken pooled connection: reads are safe
    /// to repeat.
    pub async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &LdapFilter,
        attrs: &[&str],
        size_limit: usize,
    ) -> DirResult<(Vec<RawEntry>, bool)> {
        self.search_with(base, scope, filter, attrs, size_limit, Vec::new())
            .await
    }

    /// `search` with request controls (e.g. server-side sort).
    pub async fn search_with(
        &self,
        base: &str,
        scope: Scope,
        filter: &LdapFilter,
        attrs: &[&str],
        size_limit: usize,
        controls: Vec<ldap3::controls::RawControl>,
    ) -> DirResult<(Vec<RawEntry>, bool)> {
        self.observed("search", async {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let mut conn = self.conn().await?;
                self.count();
                let opts = SearchOptions::new().sizelimit(size_limit.min(i32::MAX as usize) as i32);
                let ldap = conn
                    .with_timeout(self.op_timeout())
                    .with_search_options(opts)
                    .with_controls(controls.clone());
                // boxed, as the connection's wait is (`conn`): ldap3's search state would make
                // every read's future too large for malloc's per-thread cache
                let res = Box::pin(whole(ldap, base, scope, filter, attrs)).await;
                match res {
                    Ok(ldap3::SearchResult(entries, result)) => {
                        let truncated = result.rc == 4;
                        if result.rc != 0 && !truncated {
                            return Err(self.code(&conn, result.rc, &result.text, base));
                        }
                        match entries.into_iter().map(decoded).collect() {
                            Ok(entries) => return Ok((entries, truncated)),
                            Err(e) => return Err(self.broken(conn, e)),
                        }
                    }
                    Err(e) => {
                        let err = self.broken(conn, e);
                        if attempt >= 2 || !matches!(err, DirectoryError::Unavailable(_)) {
                            return Err(err);
                        }
                        debug!(error = %err, "retrying search on a fresh connection");
                    }
                }
            }
        })
        .await
    }

    /// The first `n` matches of a subtree search, as one page of Simple Paged Results
    /// (RFC 2696), and whether more match: for servers that send every match whatever the
    /// size limit (Samba), so that a list page reads only the page. The server's state for
    /// the rest of the search is released at once (a page of size 0, as RFC 2696 says).
    pub async fn search_page(
        &self,
        base: &str,
        filter: &LdapFilter,
        attrs: &[&str],
        n: usize,
    ) -> DirResult<(Vec<RawEntry>, bool)> {
        self.observed("search", async {
            let size = n.clamp(1, i32::MAX as usize) as i32;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let mut conn = self.conn().await?;
                self.count();
                let page = ldap3::controls::PagedResults {
                    size,
                    cookie: Vec::new(),
                };
                let ldap = conn
                    .with_timeout(self.op_timeout())
                    .with_controls(vec![page.into()]);
                let res = whole(ldap, base, Scope::Subtree, filter, attrs).await;
                let ldap3::SearchResult(entries, result) = match res {
                    Ok(r) => r,
                    Err(e) => {
                        let err = self.broken(conn, e);
                        if attempt >= 2 || !matches!(err, DirectoryError::Unavailable(_)) {
                            return Err(err);
                        }
                        continue;
                    }
                };
                if result.rc != 0 && result.rc != 4 {
                    return Err(self.code(&conn, result.rc, &result.text, base));
                }
                let cookie = result
                    .ctrls
                    .iter()
                    .find(|c| c.1.ctype == PAGED_RESULTS_OID)
                    .and_then(|c| c.1.val.as_deref())
                    .and_then(paged_cookie)
                    .unwrap_or_default();
                let more = !cookie.is_empty() || result.rc == 4;
                if !cookie.is_empty() {
                    self.count();
                    let release = ldap3::controls::PagedResults { size: 0, cookie };
                    let _ = conn
                        .with_timeout(self.op_timeout())
                        .with_controls(vec![release.into()])
                        .with_search_options(with_filter(SearchOptions::new(), filter))
                        .search(base, Scope::Subtree, "", vec!["1.1"])
                        .await;
                }
                let entries: Result<Vec<RawEntry>, _> =
                    entries.into_iter().take(n).map(decoded).collect();
                return match entries {
                    Ok(entries) => Ok((entries, more)),
                    Err(e) => Err(self.broken(conn, e)),
                };
            }
        })
        .await
    }

    /// A subtree search with Simple Paged Results (RFC 2696), so that no server size limit
    /// cuts it short; entries go to `each` as they arrive, so memory holds only what `each`
    /// keeps. Counted as one operation whatever the number of pages. A pooled connection
    /// found broken before the first entry (the server closed it while idle) is replaced
    /// once: nothing has reached `each` yet, so the search is repeated safely.
    pub async fn search_paged(
        &self,
        base: &str,
        filter: &LdapFilter,
        attrs: &[&str],
        mut each: impl FnMut(RawEntry) + Send,
    ) -> DirResult<()> {
        self.search_paged_while(base, filter, attrs, |e| {
            each(e);
            true
        })
        .await
        .map(|_| ())
    }

    /// `search_paged`, stopped as soon as `each` answers false (the connection is then
    /// dropped, which ends the search on the server too): whether it ran to its end.
    pub async fn search_paged_while(
        &self,
        base: &str,
        filter: &LdapFilter,
        attrs: &[&str],
        mut each: impl FnMut(RawEntry) -> bool + Send,
    ) -> DirResult<bool> {
        self.observed("search", async {
            use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
            const PAGE: i32 = 500;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let mut conn = self.conn().await?;
                self.count();
                let adapters: Vec<Box<dyn Adapter<'_, &str, Vec<&str>>>> = vec![
                    Box::new(EntriesOnly::new()),
                    Box::new(PagedResults::new(PAGE)),
                ];
                let started = conn
                    .with_timeout(self.op_timeout())
                    .with_search_options(with_filter(SearchOptions::new(), filter))
                    .streaming_search_with(adapters, base, Scope::Subtree, "", attrs.to_vec())
                    .await;
                let mut stream = match started {
                    Ok(s) => s,
                    Err(e) => {
                        let err = self.broken(conn, e);
                        if attempt >= 2 || !matches!(err, DirectoryError::Unavailable(_)) {
                            return Err(err);
                        }
                        debug!(error = %err, "retrying a paged search on a fresh connection");
                        continue;
                    }
                };
                let mut delivered = false;
                let mut stopped = false;
                let failed = loop {
                    match stream.next().await {
                        Ok(Some(entry)) => {
                            delivered = true;
                            match decoded(entry).map(&mut each) {
                                Ok(true) => {}
                                Ok(false) => {
                                    stopped = true;
                                    break None;
                                }
                                Err(e) => break Some(e),
                            }
                        }
                        Ok(None) => break None,
                        Err(e) => break Some(e),
                    }
                };
                if stopped {
                    drop(stream);
                    conn.discard();
                    return Ok(false);
                }
                if let Some(e) = failed {
                    drop(stream);
                    let err = self.broken(conn, e);
                    if delivered || attempt >= 2 || !matches!(err, DirectoryError::Unavailable(_)) {
                        return Err(err);
                    }
                    debug!(error = %err, "retrying a paged search on a fresh connection");
                    continue;
                }
                let res = stream.finish().await;
                return match res.rc {
                    0 => Ok(true),
                    4 => Err(DirectoryError::SizeLimit(res.text)),
                    rc => Err(self.code(&conn, rc, &res.text, base)),
                };
            }
        })
        .await
    }

    /// A subtree search with request `controls` (a server-side sort) whose entries go to
    /// `each` as they arrive, at most `size_limit` of them: memory holds only what `each`
    /// keeps. Whether the size limit cut it short.
    pub async fn search_streamed(
        &self,
        base: &str,
        filter: &LdapFilter,
        attrs: &[&str],
        size_limit: usize,
        controls: Vec<ldap3::controls::RawControl>,
        mut each: impl FnMut(RawEntry) + Send,
    ) -> DirResult<bool> {
        self.observed("search", async {
            use ldap3::adapters::{Adapter, EntriesOnly};
            let mut conn = self.conn().await?;
            self.count();
            let adapters: Vec<Box<dyn Adapter<'_, &str, Vec<&str>>>> =
                vec![Box::new(EntriesOnly::new())];
            let opts = SearchOptions::new().sizelimit(size_limit.min(i32::MAX as usize) as i32);
            let started = conn
                .with_timeout(self.op_timeout())
                .with_search_options(with_filter(opts, filter))
                .with_controls(controls)
                .streaming_search_with(adapters, base, Scope::Subtree, "", attrs.to_vec())
                .await;
            let mut stream = match started {
                Ok(s) => s,
                Err(e) => return Err(self.broken(conn, e)),
            };
            let failed = loop {
                match stream.next().await {
                    Ok(Some(entry)) => match decoded(entry) {
                        Ok(entry) => each(entry),
                        Err(e) => break Some(e),
                    },
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            if let Some(e) = failed {
                drop(stream);
                return Err(self.broken(conn, e));
            }
            let res = stream.finish().await;
            match res.rc {
                0 => Ok(false),
                4 => Ok(true),
                rc => Err(self.code(&conn, rc, &res.text, base)),
            }
        })
        .await
    }

    /// Opens a forward-only paged search (RFC 2696) on a connection of its own: servers keep
    /// a paged search's state per connection, so the connection stays with the walk between
    /// pages (cursor paging), and closes when the walk is dropped.
    pub async fn open_walk(
        &self,
        base: &str,
        filter: &LdapFilter,
        attrs: &[&str],
    ) -> DirResult<PagedWalk> {
        let (server, _) = self.route()?;
        let ldap = managed::Manager::create(server.conn.manager()).await?;
        Ok(PagedWalk {
            ldap,
            base: base.to_owned(),
            filter: filter.clone(),
            attrs: attrs.iter().map(|a| a.to_string()).collect(),
            cookie: Vec::new(),
            done: false,
        })
    }

    /// The walk's next page of at most `n` entries, and whether the walk is over. One LDAP
    /// search; after an error the walk is over.
    pub async fn walk_next(
        &self,
        walk: &mut PagedWalk,
        n: usize,
    ) -> DirResult<(Vec<RawEntry>, bool)> {
        if walk.done {
            return Ok((Vec::new(), true));
        }
        self.observed("search", async {
            self.count();
            let page = ldap3::controls::PagedResults {
                size: n.clamp(1, i32::MAX as usize) as i32,
                cookie: std::mem::take(&mut walk.cookie),
            };
            let attrs: Vec<&str> = walk.attrs.iter().map(String::as_str).collect();
            let ldap = walk
                .ldap
                .with_timeout(self.op_timeout())
                .with_controls(vec![page.into()]);
            let res = whole(ldap, &walk.base, Scope::Subtree, &walk.filter, &attrs).await;
            walk.done = true;
            let ldap3::SearchResult(entries, result) = res.map(Ok).unwrap_or_else(|e| {
                Err(match e {
                    LdapError::Timeout { .. } => DirectoryError::Timeout,
                    other => DirectoryError::Unavailable(other.to_string()),
                })
            })?;
            match result.rc {
                0 => {}
                4 => return Err(DirectoryError::SizeLimit(result.text)),
                rc => return Err(map_result_code(rc, &result.text, &walk.base)),
            }
            walk.cookie = result
                .ctrls
                .iter()
                .find(|c| c.1.ctype == PAGED_RESULTS_OID)
                .and_then(|c| c.1.val.as_deref())
                .and_then(paged_cookie)
                .unwrap_or_default();
            walk.done = walk.cookie.is_empty();
            let entries = entries
                .into_iter()
                .map(decoded)
                .collect::<Result<Vec<_>, _>>();
            match entries {
                Ok(entries) => Ok((entries, walk.done)),
                Err(e) => {
                    walk.done = true;
                    Err(DirectoryError::Unavailable(e.to_string()))
                }
            }
        })
        .await
    }

    pub async fn compare(&self, dn: &str, attr: &str, value: &str) -> DirResult<bool> {
        self.observed("compare", async {
            let mut conn = self.conn().await?;
            self.count();
            let res = conn
                .with_timeout(self.op_timeout())
                .compare(dn, attr, value)
                .await;
            match res {
                Ok(r) if r.0.rc == 6 => Ok(true),
                Ok(r) if r.0.rc == 5 || r.0.rc == 16 => Ok(false),
                Ok(r) => Err(self.code(&conn, r.0.rc, &r.0.text, dn)),
                Err(e) => Err(self.broken(conn, e)),
            }
        })
        .await
    }
}
