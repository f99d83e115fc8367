//! The directory's servers, each with a small pool of bound ldap3 connections (deadpool),
//! and the LDAP operations the `Directory` sends through them: per-operation timeouts, retries
//! of what never left, and where a server that cannot serve is left for the next.
//!
//! `connect` makes and binds connections, `servers` decides which server a request uses and
//! checks their health, `controls` builds the request controls, `codes` turns result codes
//! into errors.

mod codes;
mod connect;
mod controls;
mod servers;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Pool, PoolError};
use ldap3::{LdapError, Mod, Scope, SearchEntry, SearchOptions};
use tracing::{debug, warn};

pub use codes::{ad_reason, map_result_code, result_code_name};
pub use connect::LdapSettings;
pub use controls::{sort_control, to_mods};
pub use servers::one_server;

use codes::cannot_serve;
use connect::{tls_config, BindGate, Manager, Shared};
use controls::*;
use servers::*;

use super::estate::{Estate, EstateStatus};
use super::{budget, Change, DirResult, DirectoryError, LdapFilter};

/// The directory's servers with their connections, shared by all requests, with a count of
/// operations sent.
pub struct LdapPool {
    estate: Arc<Estate<Pool<Manager>>>,
    shared: Arc<Shared>,
    timeout: Duration,
    /// The longest wait for a pooled connection (connecting and binding included).
    wait: Duration,
    operations: AtomicU64,
    /// Ends the health checks (and DNS refreshes) when the pool goes (a reload).
    _checks: Option<tokio::task::AbortHandle>,
}

impl Drop for LdapPool {
    fn drop(&mut self) {
        if let Some(checks) = &self._checks {
            checks.abort();
        }
    }
}

impl LdapPool {
    pub fn new(settings: LdapSettings) -> Result<LdapPool, String> {
        let tls = match &settings.ca_file {
            Some(path) => Some(Arc::new(tls_config(path)?)),
            None => None,
        };
        let timeout = settings.operation_timeout;
        let wait = settings.connect_timeout + settings.operation_timeout;
        let failback_after = settings.failback_after;
        let shared = Arc::new(Shared {
            settings,
            tls,
            binds: BindGate::default(),
        });
        let members = shared
            .settings
            .urls
            .iter()
            .map(|url| server(&shared, url.clone(), Vec::new()))
            .collect::<Result<Vec<_>, _>>()?;
        let estate = Arc::new(Estate::new(members, failback_after));
        let checks = tokio::runtime::Handle::try_current().ok().map(|rt| {
            rt.spawn(check_servers(Arc::downgrade(&estate), shared.clone()))
                .abort_handle()
        });
        Ok(LdapPool {
            estate,
            shared,
            timeout,
            wait,
            operations: AtomicU64::new(0),
            _checks: checks,
        })
    }

    /// Binds attempted so far.
    pub fn bind_attempts(&self) -> u64 {
        self.shared.binds.attempts.load(Ordering::Relaxed)
    }

    /// This operation's timeout: the configured one, shortened to the request's budget.
    fn op_timeout(&self) -> Duration {
        budget::bounded(self.timeout).max(Duration::from_millis(1))
    }

    /// LDAP operations sent so far (searches, adds, modifies, renames, deletes).
    pub fn operations(&self) -> u64 {
        self.operations.load(Ordering::Relaxed)
    }

    /// The current server's connections.
    pub fn status(&self) -> super::PoolStatus {
        let Some(server) = self.estate.current() else {
            return super::PoolStatus::default();
        };
        let s = server.conn.status();
        super::PoolStatus {
            in_use: s.size.saturating_sub(s.available),
            idle: s.available,
            max: s.max_size,
            waiting: s.waiting,
        }
    }

    /// The servers, which one is current and which are down.
    pub fn estate(&self) -> EstateStatus {
        self.estate.status()
    }

    /// The server this request is pinned to, else the current one.
    pub fn request_server(&self) -> Option<String> {
        pinned()
            .or_else(|| self.estate.current())
            .map(|s| s.url.clone())
    }

    /// Discovers the servers (when DNS discovery is configured) and checks every server now,
    /// instead of waiting for the next round: at start, before the first request.
    pub async fn check_now(&self) -> Result<(), String> {
        if let Some(d) = &self.shared.settings.discover {
            refresh(&self.estate, &self.shared, d).await?;
        }
        probe_all(&self.estate, self.shared.settings.connect_timeout).await;
        Ok(())
    }

    /// Checks one server the way requests use it: connect, bind, read the root DSE.
    pub async fn check_server(&self, url: &str) -> DirResult<()> {
        let server = self
            .estate
            .member(url)
            .ok_or_else(|| DirectoryError::Unavailable(format!("{url} is not a known server")))?;
        probe(&server, self.shared.settings.connect_timeout).await
    }

    /// Runs one LDAP operation, counting it and its outcome and time in the metrics.
    async fn observed<T>(
        &self,
        op: &'static str,
        run: impl std::future::Future<Output = DirResult<T>>,
    ) -> DirResult<T> {
        let start = std::time::Instant::now();
        let result = run.await;
        let server = pinned().or_else(|| self.estate.current());
        crate::metrics::metrics().ldap(
            op,
            server.as_ref().map_or("-", |s| s.label),
            start.elapsed(),
            result.as_ref().err().map(DirectoryError::kind),
        );
        result
    }

    /// The server this request uses: the one it is pinned to, else the current one.
    fn route(&self) -> DirResult<(Arc<Server>, bool)> {
        let pin = pinned_with_write();
        match pin {
            Some(pinned) => Ok(pinned),
            None => self.estate.current().map(|s| (s, false)).ok_or_else(|| {
                DirectoryError::Unavailable(
                    "no directory server is known yet (DNS discovery found none)".into(),
                )
            }),
        }
    }

    /// A pooled connection, waiting no longer than the pool's wait and the request's budget.
    /// A server that cannot be reached is marked down and, while the request has written
    /// nothing, the next healthy server is tried.
    async fn conn(&self) -> DirResult<Conn> {
        let mut tried = 0;
        loop {
            let wait = budget::bounded(self.wait);
            if wait.is_zero() {
                return Err(DirectoryError::Timeout);
            }
            let timeouts = deadpool::managed::Timeouts {
                wait: Some(wait),
                create: Some(wait),
                recycle: Some(wait),
            };
            let (server, wrote) = self.route()?;
            let start = std::time::Instant::now();
            let got = server.conn.timeout_get(&timeouts).await;
            crate::metrics::metrics().pool_wait(start.elapsed());
            let err =
                match got {
                    Ok(obj) => {
                        pin(&server);
                        return Ok(Conn { obj, server });
                    }
                    Err(PoolError::Backend(e @ DirectoryError::Unavailable(_))) => e,
                    Err(PoolError::Timeout(deadpool::managed::TimeoutType::Create)) => {
                        DirectoryError::Unavailable(format!(
                            "timed out connecting to {} (directory slow or unreachable)",
                            server.url
                        ))
                    }
                    Err(PoolError::Backend(e)) => return Err(e),
                    Err(PoolError::Timeout(_)) => return Err(DirectoryError::Unavailable(
                        "timed out waiting for an LDAP connection (directory slow or unreachable)"
                            .into(),
                    )),
                    Err(other) => return Err(DirectoryError::Unavailable(other.to_string())),
                };
            self.estate.failed(&server, &err.to_string());
            tried += 1;
            let moved = self
                .estate
                .current()
                .is_some_and(|c| !Arc::ptr_eq(&c, &server));
            if wrote || !moved || tried >= self.estate.members().len() {
                return Err(err);
            }
            unpin();
        }
    }

    fn count(&self) {
        self.operations.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtree or base search. Retries once on a broken pooled connection: reads are safe
    /// to repeat.
    pub async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        size_limit: usize,
    ) -> DirResult<(Vec<SearchEntry>, bool)> {
        self.search_with(base, scope, filter, attrs, size_limit, Vec::new())
            .await
    }

    /// `search` with request controls (e.g. server-side sort).
    pub async fn search_with(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        size_limit: usize,
        controls: Vec<ldap3::controls::RawControl>,
    ) -> DirResult<(Vec<SearchEntry>, bool)> {
        self.observed("search", async {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let mut conn = self.conn().await?;
                self.count();
                let opts = SearchOptions::new().sizelimit(size_limit.min(i32::MAX as usize) as i32);
                let res = conn
                    .with_timeout(self.op_timeout())
                    .with_search_options(opts)
                    .with_controls(controls.clone())
                    .search(base, scope, filter, attrs.to_vec())
                    .await;
                match res {
                    Ok(ldap3::SearchResult(entries, result)) => {
                        let truncated = result.rc == 4;
                        if result.rc != 0 && !truncated {
                            return Err(self.code(&conn, result.rc, &result.text, base));
                        }
                        let entries = entries.into_iter().map(SearchEntry::construct).collect();
                        return Ok((entries, truncated));
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
        filter: &str,
        attrs: &[&str],
        n: usize,
    ) -> DirResult<(Vec<SearchEntry>, bool)> {
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
                let res = conn
                    .with_timeout(self.op_timeout())
                    .with_controls(vec![page.into()])
                    .search(base, Scope::Subtree, filter, attrs.to_vec())
                    .await;
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
                        .search(base, Scope::Subtree, filter, vec!["1.1"])
                        .await;
                }
                let mut entries: Vec<SearchEntry> = entries
                    .into_iter()
                    .filter(|e| !e.is_ref() && !e.is_intermediate())
                    .map(SearchEntry::construct)
                    .collect();
                entries.truncate(n);
                return Ok((entries, more));
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
        filter: &str,
        attrs: &[&str],
        mut each: impl FnMut(SearchEntry) + Send,
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
        filter: &str,
        attrs: &[&str],
        mut each: impl FnMut(SearchEntry) -> bool + Send,
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
                    .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs.to_vec())
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
                            if !each(SearchEntry::construct(entry)) {
                                stopped = true;
                                break None;
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
        filter: &str,
        attrs: &[&str],
        size_limit: usize,
        controls: Vec<ldap3::controls::RawControl>,
        mut each: impl FnMut(SearchEntry) + Send,
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
                .with_search_options(opts)
                .with_controls(controls)
                .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs.to_vec())
                .await;
            let mut stream = match started {
                Ok(s) => s,
                Err(e) => return Err(self.broken(conn, e)),
            };
            let failed = loop {
                match stream.next().await {
                    Ok(Some(entry)) => each(SearchEntry::construct(entry)),
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
        filter: &str,
        attrs: &[&str],
    ) -> DirResult<PagedWalk> {
        let (server, _) = self.route()?;
        let ldap = managed::Manager::create(server.conn.manager()).await?;
        Ok(PagedWalk {
            ldap,
            base: base.to_owned(),
            filter: filter.to_owned(),
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
    ) -> DirResult<(Vec<SearchEntry>, bool)> {
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
            let res = walk
                .ldap
                .with_timeout(self.op_timeout())
                .with_controls(vec![page.into()])
                .search(&walk.base, Scope::Subtree, &walk.filter, attrs)
                .await;
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
                .filter(|e| !e.is_ref() && !e.is_intermediate())
                .map(SearchEntry::construct)
                .collect();
            Ok((entries, walk.done))
        })
        .await
    }

    pub async fn add(&self, dn: &str, attrs: Vec<(String, Vec<String>)>) -> DirResult<()> {
        self.add_reading(dn, attrs, None).await.map(|_| ())
    }

    /// `add`; with `read`, the new entry's attributes come back in the same operation
    /// (RFC 4527 post-read), so no search follows it.
    pub async fn add_reading(
        &self,
        dn: &str,
        attrs: Vec<(String, Vec<String>)>,
        read: Option<&[&str]>,
    ) -> DirResult<Option<SearchEntry>> {
        self.observed("add", async {
            let controls: Vec<_> = read.map(post_read_control).into_iter().collect();
            let attrs: Vec<(String, HashSet<String>)> = attrs
                .into_iter()
                .map(|(a, v)| (a, v.into_iter().collect()))
                .collect();
            self.write(dn, &controls, Write::Add(&attrs))
                .await
                .map(post_read_entry)
        })
        .await
    }

    pub async fn modify(
        &self,
        dn: &str,
        changes: &[Change],
        assertion: Option<&LdapFilter>,
    ) -> DirResult<()> {
        self.modify_mods(dn, to_mods(changes), assertion).await
    }

    /// A modify of ready-made mods (binary values such as AD's unicodePwd).
    pub async fn modify_mods(
        &self,
        dn: &str,
        mods: Vec<Mod<Vec<u8>>>,
        assertion: Option<&LdapFilter>,
    ) -> DirResult<()> {
        self.modify_reading(dn, mods, assertion, None)
            .await
            .map(|_| ())
    }

    /// `modify_mods`; with `read`, the entry as the modify left it comes back in the same
    /// operation (RFC 4527 post-read), so no search follows it. No mods: nothing is sent.
    pub async fn modify_reading(
        &self,
        dn: &str,
        mods: Vec<Mod<Vec<u8>>>,
        assertion: Option<&LdapFilter>,
        read: Option<&[&str]>,
    ) -> DirResult<Option<SearchEntry>> {
        self.observed("modify", async {
            if mods.is_empty() {
                return Ok(None);
            }
            let mut controls = vec![permissive_modify()];
            controls.extend(assertion_control(assertion)?);
            controls.extend(read.map(post_read_control));
            self.write(dn, &controls, Write::Modify(&mods))
                .await
                .map(post_read_entry)
        })
        .await
    }

    /// The LDAP Password Modify extended operation (RFC 3062) for the entry at `dn`: the server
    /// hashes the new password with its own scheme and replaces every value the entry had.
    pub async fn password_modify(&self, dn: &str, password: &super::Password) -> DirResult<()> {
        self.observed("password_modify", async {
            let res = self.write(dn, &[], Write::Password(password)).await;
            match res {
                // slapd: "unsupported extended operation" (protocolError)
                Err(DirectoryError::Other { code: 2, .. }) => Err(DirectoryError::Unsupported(
                    "the directory does not offer the Password Modify extended operation (RFC 3062): set users.password_hash = \"ssha512\" or \"argon2\", whichever scheme the directory verifies".into(),
                )),
                other => other.map(|_| ()),
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

    pub async fn rename(
        &self,
        dn: &str,
        new_rdn: &str,
        new_parent: Option<&str>,
        assertion: Option<&LdapFilter>,
    ) -> DirResult<()> {
        self.observed("rename", async {
            let controls = assertion_control(assertion)?;
            self.write(
                dn,
                &controls,
                Write::Rename {
                    new_rdn,
                    new_parent,
                },
            )
            .await
            .map(|_| ())
        })
        .await
    }

    pub async fn delete(&self, dn: &str, assertion: Option<&LdapFilter>) -> DirResult<()> {
        self.observed("delete", async {
            let controls = assertion_control(assertion)?;
            self.write(dn, &controls, Write::Delete).await.map(|_| ())
        })
        .await
    }

    /// Sends one write with `send` and reads its result (`finish`). A write that never left
    /// (the pooled connection was dead), or that the server refused to serve while this
    /// request had written nothing to it (`goes_elsewhere`), is sent once more on a fresh
    /// connection.
    async fn write(
        &self,
        dn: &str,
        controls: &[ldap3::controls::RawControl],
        op: Write<'_>,
    ) -> DirResult<ldap3::LdapResult> {
        for retry in [true, false] {
            let mut conn = self.conn().await?;
            self.count();
            let ldap = conn.with_timeout(self.op_timeout());
            let res = match op {
                Write::Add(attrs) => {
                    ldap.with_controls(controls.to_vec())
                        .add(dn, attrs.to_vec())
                        .await
                }
                Write::Modify(mods) => {
                    ldap.with_controls(controls.to_vec())
                        .modify(dn, mods.to_vec())
                        .await
                }
                Write::Rename {
                    new_rdn,
                    new_parent,
                } => {
                    ldap.with_controls(controls.to_vec())
                        .modifydn(dn, new_rdn, true, new_parent)
                        .await
                }
                Write::Delete => ldap.with_controls(controls.to_vec()).delete(dn).await,
                Write::Password(password) => ldap
                    .extended(ldap3::exop::PasswordModify {
                        user_id: Some(dn),
                        old_pass: None,
                        new_pass: Some(password.expose()),
                    })
                    .await
                    .map(|r| r.1),
            };
            if retry && (unsent(&res) || self.goes_elsewhere(&conn, &res)) {
                conn.discard();
                continue;
            }
            return self.finish(conn, res, dn);
        }
        Err(DirectoryError::Unavailable(
            "no live LDAP connection".into(),
        ))
    }

    /// The result of a write. An answer lost after the request was sent (timeout, connection
    /// cut) is `Unknown`: the write may have been applied.
    fn finish(
        &self,
        conn: Conn,
        res: Result<ldap3::LdapResult, LdapError>,
        dn: &str,
    ) -> DirResult<ldap3::LdapResult> {
        // a server that refused to serve the write applied nothing
        if !matches!(&res, Ok(r) if cannot_serve(r.rc, &r.text)) {
            wrote();
        }
        match res {
            Ok(r) if r.rc == 0 => Ok(r),
            Ok(r) => Err(self.code(&conn, r.rc, &r.text, dn)),
            Err(
                e @ (LdapError::Timeout { .. }
                | LdapError::ResultRecv { .. }
                | LdapError::IdScrubSend { .. }),
            ) => {
                conn.discard();
                warn!(dn, error = %e, "the answer to a write was lost; its outcome will be read back");
                Err(DirectoryError::Unknown(e.to_string()))
            }
            Err(e) => Err(self.broken(conn, e)),
        }
    }

    /// A transport-level failure: the connection is dropped from the pool, not reused.
    fn broken(&self, conn: Conn, e: LdapError) -> DirectoryError {
        let err = match e {
            LdapError::Timeout { .. } => DirectoryError::Timeout,
            LdapError::LdapResult { result } => self.code(&conn, result.rc, &result.text, ""),
            other => {
                warn!(server = %conn.server.url, error = %other, "LDAP connection failed");
                // the idle connections to the same server most likely died with this one (it
                // restarted, or was killed): the retry opens a new connection instead of
                // finding the next dead one
                let _ = conn.server.conn.retain(|_, _| false);
                DirectoryError::Unavailable(other.to_string())
            }
        };
        conn.discard();
        err
    }

    /// Whether a write the server refused to serve (read-only, busy, stopping: nothing was
    /// applied) goes to the next server: when this request has written nothing to this one.
    /// The server is marked down, and the request leaves it.
    fn goes_elsewhere(&self, conn: &Conn, res: &Result<ldap3::LdapResult, LdapError>) -> bool {
        let Ok(r) = res else { return false };
        if !cannot_serve(r.rc, &r.text) || has_written() {
            return false;
        }
        let why = format!("{}: {}", result_code_name(r.rc), r.text);
        self.estate.failed(&conn.server, &why);
        unpin();
        true
    }

    /// A result code from `conn`'s server as a directory error. A server that says it cannot
    /// serve (busy, unavailable, read-only, shutting down) is marked down, so that the next
    /// request goes to another.
    fn code(&self, conn: &Conn, rc: u32, text: &str, dn: &str) -> DirectoryError {
        if cannot_serve(rc, text) {
            let why = format!("{}: {}", result_code_name(rc), text);
            self.estate.failed(&conn.server, &why);
            return DirectoryError::Unavailable(format!(
                "{} cannot serve now ({why})",
                conn.server.url
            ));
        }
        map_result_code(rc, text, dn)
    }
}

/// A write `LdapPool::write` sends (and may send twice).
#[derive(Clone, Copy)]
enum Write<'a> {
    Add(&'a [(String, HashSet<String>)]),
    Modify(&'a [Mod<Vec<u8>>]),
    Rename {
        new_rdn: &'a str,
        new_parent: Option<&'a str>,
    },
    Delete,
    /// The Password Modify extended operation (RFC 3062).
    Password(&'a super::Password),
}

/// Whether a write failed before it left: the pooled connection was already dead (the
/// server closed it while idle). Nothing reached the directory, so a fresh connection may
/// send it again.
fn unsent<T>(res: &Result<T, LdapError>) -> bool {
    matches!(res, Err(LdapError::OpSend { .. }))
}

/// A paged search that continues from page to page on its own connection (`open_walk`).
pub struct PagedWalk {
    ldap: ldap3::Ldap,
    base: String,
    filter: String,
    attrs: Vec<String>,
    /// The server's cookie for the next page; empty before the first.
    cookie: Vec<u8>,
    done: bool,
}
