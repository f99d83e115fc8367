//! A small pool of bound ldap3 connections (deadpool), TLS setup, per-operation timeouts, and
//! the one place where LDAP result codes become `DirectoryError`s.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, Pool, PoolError, RecycleError, RecycleResult};
use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, Mod, Scope, SearchEntry, SearchOptions};
use tracing::{debug, error, info, warn};

use super::estate::{Estate, EstateStatus, Member};
use super::{budget, Change, DirResult, DirectoryError, LdapFilter};

/// How to reach and bind to the directory's servers.
#[derive(Clone)]
pub struct LdapSettings {
    /// The servers in order of preference; empty with `discover` (DNS fills it).
    pub urls: Vec<String>,
    pub discover: Option<super::discover::Discovery>,
    pub bind_dn: String,
    pub bind_password: String,
    pub starttls: bool,
    /// PEM file of CAs to trust for ldaps:// and StartTLS; the system roots when `None`.
    pub ca_file: Option<std::path::PathBuf>,
    pub connect_timeout: Duration,
    pub operation_timeout: Duration,
    /// Connections per server.
    pub pool_size: usize,
    /// How often every server is checked.
    pub health_interval: Duration,
    /// How long the preferred server must answer checks before requests go back to it.
    pub failback_after: Duration,
}

impl std::fmt::Debug for LdapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapSettings")
            .field("urls", &self.urls)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &"<redacted>")
            .field("starttls", &self.starttls)
            .finish_non_exhaustive()
    }
}

/// What every server's connections share: how to bind, TLS, and the bind backoff.
struct Shared {
    settings: LdapSettings,
    tls: Option<Arc<rustls::ClientConfig>>,
    binds: BindGate,
}

struct Manager {
    url: String,
    /// Held while binding.
    binding: tokio::sync::Mutex<()>,
    /// Addresses DNS discovery found for the URL's host; empty: the system resolver's.
    addrs: Vec<std::net::SocketAddr>,
    shared: Arc<Shared>,
}

/// One directory server and its connections.
type Server = Member<Pool<Manager>>;

/// Binds one at a time to each server, and after a server refuses the service account's
/// credentials, to none again until a backoff has passed (1 s, doubling to 60 s): a changed
/// password must not turn every request into a bind attempt that a password policy counts
/// against the account.
#[derive(Default)]
struct BindGate {
    state: tokio::sync::Mutex<BindState>,
    attempts: AtomicU64,
}

#[derive(Default)]
struct BindState {
    /// Refusals in a row.
    refusals: u32,
    retry_at: Option<std::time::Instant>,
    reason: String,
}

const MAX_BIND_BACKOFF: Duration = Duration::from_secs(60);

impl BindState {
    /// `BindRefused` while the backoff after a refusal lasts.
    fn refused(&self) -> Result<(), DirectoryError> {
        match self.retry_at {
            Some(at) if std::time::Instant::now() < at => Err(DirectoryError::BindRefused {
                reason: self.reason.clone(),
                retry_in: (at - std::time::Instant::now()).as_secs().max(1),
            }),
            _ => Ok(()),
        }
    }
}

impl Manager {
    /// A TCP connection to the addresses discovery found, so that TLS still checks the
    /// certificate against the host name in the URL.
    async fn stream(&self) -> DirResult<Option<ldap3::StdStream>> {
        if self.addrs.is_empty() {
            return Ok(None);
        }
        let timeout = budget::bounded(self.shared.settings.connect_timeout);
        let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&self.addrs[..]))
            .await
            .map_err(|_| {
                DirectoryError::Unavailable(format!("cannot connect to {}: timed out", self.url))
            })?
            .and_then(|s| s.into_std())
            .map_err(|e| {
                DirectoryError::Unavailable(format!("cannot connect to {}: {e}", self.url))
            })?;
        Ok(Some(ldap3::StdStream::Tcp(stream)))
    }
}

impl managed::Manager for Manager {
    type Type = ldap3::Ldap;
    type Error = DirectoryError;

    async fn create(&self) -> Result<ldap3::Ldap, DirectoryError> {
        let s = &self.shared.settings;
        let binds = &self.shared.binds;
        binds.state.lock().await.refused()?;
        // connecting holds no lock: a server that hangs must not hold up binds to the others
        let mut conn_settings = LdapConnSettings::new()
            .set_conn_timeout(budget::bounded(s.connect_timeout))
            .set_starttls(s.starttls);
        if let Some(tls) = &self.shared.tls {
            conn_settings = conn_settings.set_config(tls.clone());
        }
        if let Some(stream) = self.stream().await? {
            conn_settings = conn_settings.set_std_stream(stream);
        }
        let url = &self.url;
        let (conn, mut ldap) = LdapConnAsync::with_settings(conn_settings, url)
            .await
            .map_err(|e| DirectoryError::Unavailable(format!("cannot connect to {url}: {e}")))?;
        ldap3::drive!(conn);
        // one bind at a time to this server; a server that hangs holds up only its own
        let _one_at_a_time = self.binding.lock().await;
        // refused meanwhile, to another connection: not again before the backoff
        binds.state.lock().await.refused()?;
        binds.attempts.fetch_add(1, Ordering::Relaxed);
        let res = ldap
            .with_timeout(budget::bounded(s.operation_timeout))
            .simple_bind(&s.bind_dn, &s.bind_password)
            .await
            .map_err(|e| DirectoryError::Unavailable(format!("bind to {url} failed: {e}")))?;
        let mut gate = binds.state.lock().await;
        if res.rc == 49 {
            gate.refusals += 1;
            let backoff =
                Duration::from_secs(1u64 << (gate.refusals - 1).min(6)).min(MAX_BIND_BACKOFF);
            gate.retry_at = Some(std::time::Instant::now() + backoff);
            gate.reason = format!("invalidCredentials for {} at {url}", s.bind_dn);
            if gate.refusals == 1 {
                error!(
                    bind_dn = %s.bind_dn,
                    url = %url,
                    "the directory refused the service account's credentials (invalidCredentials): check ldap.bind_dn and its password; requests answer 503 and binds are retried with backoff up to 60 s"
                );
            }
            return Err(DirectoryError::BindRefused {
                reason: gate.reason.clone(),
                retry_in: backoff.as_secs(),
            });
        }
        if res.rc != 0 {
            return Err(DirectoryError::Unavailable(format!(
                "bind as {} to {url} failed: {} ({})",
                s.bind_dn,
                result_code_name(res.rc),
                res.text
            )));
        }
        if gate.refusals > 0 {
            info!(bind_dn = %s.bind_dn, "the directory accepts the service account again");
        }
        *gate = BindState::default();
        debug!(url = %url, "new LDAP connection bound");
        Ok(ldap)
    }

    async fn recycle(&self, conn: &mut ldap3::Ldap, _: &Metrics) -> RecycleResult<DirectoryError> {
        if conn.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        Ok(())
    }
}

tokio::task_local! {
    /// The server one request's operations go to, and whether a write has been sent to it.
    static PIN: RefCell<Pinned>;
}

#[derive(Default)]
struct Pinned {
    server: Option<Arc<Server>>,
    wrote: bool,
}

/// Runs `f` (one request) so that its reads and writes go to one server: a uniqueness check
/// reads the server the add then goes to. Before anything is written, a failed server is
/// left for the next one; after a write, the request stays with its server (the write
/// pipeline settles the outcome there, or answers a retryable 503).
pub async fn one_server<F: std::future::Future>(f: F) -> F::Output {
    PIN.scope(RefCell::new(Pinned::default()), f).await
}

/// A pooled connection and the server it leads to.
struct Conn {
    obj: Object<Manager>,
    server: Arc<Server>,
}

impl std::ops::Deref for Conn {
    type Target = ldap3::Ldap;
    fn deref(&self) -> &ldap3::Ldap {
        &self.obj
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut ldap3::Ldap {
        &mut self.obj
    }
}

impl Conn {
    /// Drops the connection instead of returning it to the pool.
    fn discard(self) {
        let _ = Object::take(self.obj);
    }
}

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
        probe_all(&self.estate, &self.shared.settings).await;
        Ok(())
    }

    /// Checks one server the way requests use it: connect, bind, read the root DSE.
    pub async fn check_server(&self, url: &str) -> DirResult<()> {
        let server = self
            .estate
            .member(url)
            .ok_or_else(|| DirectoryError::Unavailable(format!("{url} is not a known server")))?;
        probe(&server, &self.shared.settings).await
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
        let pin = PIN
            .try_with(|p| {
                let p = p.borrow();
                p.server.clone().map(|s| (s, p.wrote))
            })
            .ok()
            .flatten();
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
            for retry in [true, false] {
                let mut conn = self.conn().await?;
                self.count();
                let res = conn
                    .with_timeout(self.op_timeout())
                    .with_controls(controls.clone())
                    .add(dn, attrs.clone())
                    .await;
                if retry && (unsent(&res) || self.goes_elsewhere(&conn, &res)) {
                    conn.discard();
                    continue;
                }
                return self.finish(conn, res, dn).map(post_read_entry);
            }
            Err(DirectoryError::Unavailable(
                "no live LDAP connection".into(),
            ))
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
            for retry in [true, false] {
                let mut conn = self.conn().await?;
                self.count();
                let res = conn
                    .with_timeout(self.op_timeout())
                    .with_controls(controls.clone())
                    .modify(dn, mods.clone())
                    .await;
                if retry && (unsent(&res) || self.goes_elsewhere(&conn, &res)) {
                    conn.discard();
                    continue;
                }
                return self.finish(conn, res, dn).map(post_read_entry);
            }
            Err(DirectoryError::Unavailable(
                "no live LDAP connection".into(),
            ))
        })
        .await
    }

    /// The LDAP Password Modify extended operation (RFC 3062) for the entry at `dn`: the server
    /// hashes the new password with its own scheme and replaces every value the entry had.
    pub async fn password_modify(&self, dn: &str, password: &super::Password) -> DirResult<()> {
        self.observed("password_modify", async {
            for retry in [true, false] {
                let mut conn = self.conn().await?;
                self.count();
                let res = conn
                    .with_timeout(self.op_timeout())
                    .extended(ldap3::exop::PasswordModify {
                        user_id: Some(dn),
                        old_pass: None,
                        new_pass: Some(password.expose()),
                    })
                    .await
                    .map(|r| r.1);
                if retry && (unsent(&res) || self.goes_elsewhere(&conn, &res)) {
                    conn.discard();
                    continue;
                }
                return match self.finish(conn, res, dn) {
                    // slapd: "unsupported extended operation" (protocolError)
                    Err(DirectoryError::Other { code: 2, .. }) => {
                        Err(DirectoryError::Unsupported(
                            "the directory does not offer the Password Modify extended operation (RFC 3062): set users.password_hash = \"ssha512\" or \"argon2\", whichever scheme the directory verifies".into(),
                        ))
                    }
                    other => other.map(|_| ()),
                };
            }
            Err(DirectoryError::Unavailable(
                "no live LDAP connection".into(),
            ))
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
            for retry in [true, false] {
                let mut conn = self.conn().await?;
                self.count();
                let res = conn
                    .with_timeout(self.op_timeout())
                    .with_controls(controls.clone())
                    .modifydn(dn, new_rdn, true, new_parent)
                    .await;
                if retry && (unsent(&res) || self.goes_elsewhere(&conn, &res)) {
                    conn.discard();
                    continue;
                }
                return self.finish(conn, res, dn).map(|_| ());
            }
            Err(DirectoryError::Unavailable(
                "no live LDAP connection".into(),
            ))
        })
        .await
    }

    pub async fn delete(&self, dn: &str, assertion: Option<&LdapFilter>) -> DirResult<()> {
        self.observed("delete", async {
            let controls = assertion_control(assertion)?;
            for retry in [true, false] {
                let mut conn = self.conn().await?;
                self.count();
                let res = conn
                    .with_timeout(self.op_timeout())
                    .with_controls(controls.clone())
                    .delete(dn)
                    .await;
                if retry && (unsent(&res) || self.goes_elsewhere(&conn, &res)) {
                    conn.discard();
                    continue;
                }
                return self.finish(conn, res, dn).map(|_| ());
            }
            Err(DirectoryError::Unavailable(
                "no live LDAP connection".into(),
            ))
        })
        .await
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

/// The server the current request is pinned to, if any.
fn pinned() -> Option<Arc<Server>> {
    PIN.try_with(|p| p.borrow().server.clone()).ok().flatten()
}

fn pin(server: &Arc<Server>) {
    let _ = PIN.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.server.is_none() {
            p.server = Some(server.clone());
        }
    });
}

fn unpin() {
    let _ = PIN.try_with(|p| p.borrow_mut().server = None);
}

/// Whether this request has written to its server.
fn has_written() -> bool {
    PIN.try_with(|p| p.borrow().wrote).unwrap_or(false)
}

/// A write reached the pinned server: the request stays with it.
fn wrote() {
    let _ = PIN.try_with(|p| p.borrow_mut().wrote = true);
}

/// A server and its own pool of `pool_size` connections.
fn server(
    shared: &Arc<Shared>,
    url: String,
    addrs: Vec<std::net::SocketAddr>,
) -> Result<Server, String> {
    let pool = Pool::builder(Manager {
        url: url.clone(),
        binding: tokio::sync::Mutex::new(()),
        addrs,
        shared: shared.clone(),
    })
    .max_size(shared.settings.pool_size.max(1))
    .runtime(deadpool::Runtime::Tokio1)
    .build()
    .map_err(|e| e.to_string())?;
    Ok(Member::new(url, pool))
}

/// Checks every server each `health_interval` (and refreshes DNS discovery when its records'
/// time to live has passed, or sooner, every `RELOOK` at most, while every server it listed
/// is down) until the pool is dropped.
async fn check_servers(estate: std::sync::Weak<Estate<Pool<Manager>>>, shared: Arc<Shared>) {
    const RELOOK: Duration = Duration::from_secs(10);
    let mut next_lookup = tokio::time::Instant::now();
    let mut last_lookup: Option<tokio::time::Instant> = None;
    loop {
        let Some(estate) = estate.upgrade() else {
            return;
        };
        if let Some(d) = &shared.settings.discover {
            let now = tokio::time::Instant::now();
            let all_down = estate.members().iter().all(|m| !m.is_up());
            let relook = all_down && last_lookup.is_none_or(|at| now.duration_since(at) >= RELOOK);
            if now >= next_lookup || relook {
                last_lookup = Some(now);
                let ttl = match refresh(&estate, &shared, d).await {
                    Ok(ttl) => ttl,
                    Err(e) => {
                        warn!(error = %e, "DNS discovery of the directory servers failed; the servers found before stay in use");
                        Duration::from_secs(10)
                    }
                };
                next_lookup = tokio::time::Instant::now() + ttl;
            }
        }
        probe_all(&estate, &shared.settings).await;
        drop(estate);
        tokio::time::sleep(shared.settings.health_interval).await;
    }
}

/// Looks the servers up in DNS and puts them in the estate (known ones keep their
/// connections): how long the answer may be kept.
async fn refresh(
    estate: &Estate<Pool<Manager>>,
    shared: &Arc<Shared>,
    d: &super::discover::Discovery,
) -> Result<Duration, String> {
    let (found, ttl) = super::discover::lookup(d).await?;
    let mut members = Vec::with_capacity(found.len());
    for f in found {
        match estate.member(&f.url) {
            Some(known) if known.conn.manager().addrs == f.addrs => members.push(known),
            _ => members.push(Arc::new(server(shared, f.url, f.addrs)?)),
        }
    }
    let urls: Vec<&str> = members.iter().map(|m| m.url.as_str()).collect();
    debug!(servers = ?urls, ttl_secs = ttl.as_secs(), "directory servers discovered");
    estate.replace(members);
    Ok(ttl)
}

/// One round of health checks on every server, at once; then the current server is chosen.
async fn probe_all(estate: &Estate<Pool<Manager>>, settings: &LdapSettings) {
    let mut checks = tokio::task::JoinSet::new();
    for member in estate.members() {
        let settings = settings.clone();
        checks.spawn(async move {
            let r = probe(&member, &settings).await;
            (member, r)
        });
    }
    while let Some(done) = checks.join_next().await {
        let Ok((member, r)) = done else { continue };
        match r {
            Ok(()) => {
                if !member.is_up() {
                    info!(server = %member.url, "directory server answers again");
                }
                estate.answered(&member)
            }
            Err(e) => {
                if member.is_up() {
                    warn!(server = %member.url, error = %e, "directory server failed its health check");
                }
                estate.failed(&member, &e.to_string())
            }
        }
    }
    estate.settle();
}

/// A health check: a pooled connection (connecting and binding if needed) reads the root
/// DSE, within a short time.
async fn probe(server: &Server, settings: &LdapSettings) -> DirResult<()> {
    let limit = settings
        .connect_timeout
        .min(PROBE_TIMEOUT)
        .max(Duration::from_millis(100));
    let timeouts = deadpool::managed::Timeouts {
        wait: Some(limit),
        create: Some(limit),
        recycle: Some(limit),
    };
    let mut conn = match server.conn.timeout_get(&timeouts).await {
        Ok(c) => c,
        // the server answers; the credentials are wrong everywhere (readiness says so)
        Err(PoolError::Backend(DirectoryError::BindRefused { .. })) => return Ok(()),
        Err(PoolError::Backend(e)) => return Err(e),
        Err(PoolError::Timeout(deadpool::managed::TimeoutType::Wait)) => {
            // every connection is busy serving requests: it answers
            return Ok(());
        }
        Err(e) => return Err(DirectoryError::Unavailable(format!("{}: {e}", server.url))),
    };
    let res = conn
        .with_timeout(limit)
        .search("", Scope::Base, "(objectClass=*)", vec!["1.1"])
        .await;
    match res {
        Ok(ldap3::SearchResult(_, r)) if r.rc == 0 => Ok(()),
        Ok(ldap3::SearchResult(_, r)) => Err(DirectoryError::Unavailable(format!(
            "{}: {} {}",
            server.url,
            result_code_name(r.rc),
            r.text
        ))),
        Err(e) => {
            let _ = Object::take(conn);
            Err(DirectoryError::Unavailable(format!("{}: {e}", server.url)))
        }
    }
}

/// The longest a health check waits for a server.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether an answer says the server cannot serve writes now (it is read-only and refers
/// them elsewhere or refuses them, busy, or shutting down): another server should take the
/// requests.
fn cannot_serve(rc: u32, text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    matches!(rc, 10 | 51 | 52)
        || rc == 53
            && [
                "read-only",
                "read only",
                "readonly",
                "shutting down",
                "shadow context",
            ]
            .iter()
            .any(|w| t.contains(w))
}

/// Whether a write failed before it left: the pooled connection was already dead (the
/// server closed it while idle). Nothing reached the directory, so a fresh connection may
/// send it again.
fn unsent<T>(res: &Result<T, LdapError>) -> bool {
    matches!(res, Err(LdapError::OpSend { .. }))
}

/// LDAP_SERVER_PERMISSIVE_MODIFY_OID: adding a value that exists is not an error
/// (OpenLDAP and Active Directory both honour it), so membership adds are idempotent.
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

const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// The cookie of a paged-results response control (SEQUENCE { size, cookie }); `None` when
/// malformed (then the walk ends rather than trusting it).
fn paged_cookie(val: &[u8]) -> Option<Vec<u8>> {
    use ldap3::asn1::PL;
    let (_, tag) = ldap3::asn1::parse_tag(val).ok()?;
    let PL::C(parts) = tag.payload else {
        return None;
    };
    match parts.as_slice() {
        [_, cookie] => match &cookie.payload {
            PL::P(bytes) => Some(bytes.clone()),
            PL::C(_) => None,
        },
        _ => None,
    }
}

const POST_READ_OID: &str = "1.3.6.1.1.13.2";

/// RFC 4527 post-read: the write's answer carries the entry as the write left it.
fn post_read_control(attrs: &[&str]) -> ldap3::controls::RawControl {
    ldap3::controls::PostRead::new(attrs.to_vec())
}

/// The entry a post-read control returned, if the answer has one; a malformed one counts as
/// none (the caller then reads the entry back).
fn post_read_entry(res: ldap3::LdapResult) -> Option<SearchEntry> {
    let raw = res
        .ctrls
        .into_iter()
        .find(|c| c.1.ctype == POST_READ_OID)?
        .1
        .val?;
    let (_, tag) = ldap3::asn1::parse_tag(&raw).ok()?;
    well_formed_entry(&tag).then(|| SearchEntry::construct(ldap3::ResultEntry::new(tag)))
}

/// Whether `tag` has the shape of a SearchResultEntry ([APPLICATION 4] { dn, { { type,
/// { value… } }… } }), the shape `SearchEntry::construct` assumes (it panics on any other).
fn well_formed_entry(tag: &ldap3::asn1::StructureTag) -> bool {
    use ldap3::asn1::{StructureTag, PL};
    fn constructed(t: &StructureTag) -> Option<&[StructureTag]> {
        match &t.payload {
            PL::C(inner) => Some(inner),
            PL::P(_) => None,
        }
    }
    fn text(t: &StructureTag) -> bool {
        matches!(&t.payload, PL::P(bytes) if std::str::from_utf8(bytes).is_ok())
    }
    let Some([dn, attrs]) = constructed(tag).filter(|_| tag.id == 4) else {
        return false;
    };
    text(dn)
        && constructed(attrs).is_some_and(|attrs| {
            attrs.iter().all(|a| match constructed(a) {
                Some([name, values]) => {
                    text(name)
                        && constructed(values)
                            .is_some_and(|vs| vs.iter().all(|v| matches!(v.payload, PL::P(_))))
                }
                _ => false,
            })
        })
}

fn permissive_modify() -> ldap3::controls::RawControl {
    ldap3::controls::RawControl {
        ctype: "1.2.840.113556.1.4.1413".to_owned(),
        crit: false,
        val: None,
    }
}

/// The assertion control (RFC 4528), critical so that a server without it refuses rather
/// than writes unchecked.
fn assertion_control(
    assertion: Option<&LdapFilter>,
) -> DirResult<Vec<ldap3::controls::RawControl>> {
    let Some(filter) = assertion else {
        return Ok(Vec::new());
    };
    let text = filter.to_string();
    // ldap3 panics on a filter it cannot parse: check first (ours always parse).
    if ldap3::parse_filter(&text).is_err() {
        return Err(DirectoryError::Other {
            code: 87,
            message: format!("filterError: cannot encode the assertion {text}"),
        });
    }
    let mut control = ldap3::controls::Assertion::new(text);
    control.crit = true;
    Ok(vec![control])
}

/// The server-side sort request control (RFC 2891), critical: a server that cannot sort
/// this way refuses instead of answering unsorted.
pub fn sort_control(sort: &super::SortKey) -> ldap3::controls::RawControl {
    use ldap3::asn1::{ASNTag, Boolean, OctetString, Sequence, Tag, TagClass};
    let mut key = vec![
        Tag::OctetString(OctetString {
            inner: sort.attr.as_bytes().to_vec(),
            ..Default::default()
        }),
        Tag::OctetString(OctetString {
            id: 0,
            class: TagClass::Context,
            inner: sort.ordering_rule.as_bytes().to_vec(),
        }),
    ];
    if sort.reverse {
        key.push(Tag::Boolean(Boolean {
            id: 1,
            class: TagClass::Context,
            inner: true,
        }));
    }
    let list = Tag::Sequence(Sequence {
        inner: vec![Tag::Sequence(Sequence {
            inner: key,
            ..Default::default()
        })],
        ..Default::default()
    });
    let mut buf = bytes::BytesMut::new();
    // encoding into memory cannot fail
    let _ = ldap3::asn1::write::encode_into(&mut buf, list.into_structure());
    ldap3::controls::RawControl {
        ctype: "1.2.840.113556.1.4.473".to_owned(),
        crit: true,
        val: Some(buf.to_vec()),
    }
}

/// ldap3 takes value sets; a `Replace`/`Add` with several values is sent as one mod per value
/// so that the server stores them in our order (the first value is the one SCIM shows).
pub fn to_mods(changes: &[Change]) -> Vec<Mod<Vec<u8>>> {
    let bytes = |v: &String| v.as_bytes().to_vec();
    let mut mods = Vec::new();
    for c in changes {
        match c {
            Change::Replace(a, vals) => {
                let mut it = vals.iter();
                mods.push(Mod::Replace(
                    a.as_bytes().to_vec(),
                    it.next().map(bytes).into_iter().collect(),
                ));
                for v in it {
                    mods.push(Mod::Add(a.as_bytes().to_vec(), HashSet::from([bytes(v)])));
                }
            }
            Change::Add(a, vals) => {
                for v in vals {
                    mods.push(Mod::Add(a.as_bytes().to_vec(), HashSet::from([bytes(v)])));
                }
            }
            Change::Delete(a, vals) => mods.push(Mod::Delete(
                a.as_bytes().to_vec(),
                vals.iter().map(bytes).collect(),
            )),
        }
    }
    mods
}

fn tls_config(ca_file: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    let pem = std::fs::read(ca_file)
        .map_err(|e| format!("cannot read CA file {}: {e}", ca_file.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    let mut n = 0;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("CA file {}: {e}", ca_file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA file {}: {e}", ca_file.display()))?;
        n += 1;
    }
    if n == 0 {
        return Err(format!(
            "CA file {} holds no PEM certificate",
            ca_file.display()
        ));
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The one place where LDAP result codes (RFC 4511 §4.1.9) become directory errors.
pub fn map_result_code(rc: u32, text: &str, dn: &str) -> DirectoryError {
    let why = match (text.is_empty(), ad_reason(text)) {
        (_, Some(readable)) => readable,
        (true, None) => result_code_name(rc).to_owned(),
        (false, None) => format!("{}: {text}", result_code_name(rc)),
    };
    // AD: the sAMAccountName (or another account name) is taken, whatever the result code
    if ad_code(text) == Some("00000524") {
        return DirectoryError::AlreadyExists(dn.to_owned());
    }
    match rc {
        32 => DirectoryError::NoSuchObject(dn.to_owned()),
        16 => DirectoryError::NoSuchValue(why),
        // Samba's answers to deleting a member that is not there
        53 if text.contains("already deleted") || text.contains("doesn't exist for target") => {
            DirectoryError::NoSuchValue(why)
        }
        122 => DirectoryError::PreconditionFailed(why),
        68 => DirectoryError::AlreadyExists(dn.to_owned()),
        // adminLimitExceeded: the request is too large for the directory, not a server fault
        11 | 17..=21 | 34 | 53 | 64..=67 | 69 => DirectoryError::Rejected(why),
        50 => DirectoryError::InsufficientAccess(why),
        3 => DirectoryError::Timeout,
        49 | 51 | 52 => DirectoryError::Unavailable(why),
        _ => DirectoryError::Other {
            code: rc,
            message: why,
        },
    }
}

/// The Windows error code Active Directory (and Samba) put before the text: `0000052D`.
fn ad_code(text: &str) -> Option<&str> {
    let (code, _) = text.split_once(':')?;
    (code.len() == 8 && code.chars().all(|c| c.is_ascii_hexdigit())).then_some(code)
}

/// Active Directory (and Samba) put a Windows error code before the text
/// (`0000052D: Constraint violation - check_password_restrictions: …`): said in words.
pub fn ad_reason(text: &str) -> Option<String> {
    let code = ad_code(text)?;
    let (_, rest) = text.split_once(':')?;
    let detail = rest
        .rsplit_once(" - ")
        .map(|(_, d)| d)
        .unwrap_or(rest)
        .trim()
        .trim_start_matches("check_password_restrictions: ");
    let what = match code.to_ascii_uppercase().as_str() {
        "0000052D" => "the password does not meet the domain's password policy",
        "00000524" => "the account name is already in use in the domain",
        "00002071" => "an object with this name already exists",
        "00000005" => "access denied to the bridge's service account",
        "0000001F" | "00000057" => "the directory refused the value",
        _ => return Some(format!("{} ({code})", rest.trim())),
    };
    Some(format!("{what}: {detail} ({code})"))
}

pub fn result_code_name(rc: u32) -> &'static str {
    match rc {
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        11 => "adminLimitExceeded",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        18 => "inappropriateMatching",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        69 => "objectClassModsProhibited",
        80 => "other",
        122 => "assertionFailed",
        _ => "LDAP error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_keeps_value_order_by_sending_one_mod_per_value() {
        let mods = to_mods(&[Change::Replace("mail".into(), vec!["a".into(), "b".into()])]);
        assert_eq!(mods.len(), 2);
        assert!(
            matches!(&mods[0], Mod::Replace(a, v) if a == b"mail" && v.contains(&b"a".to_vec()) && v.len() == 1)
        );
        assert!(matches!(&mods[1], Mod::Add(a, v) if a == b"mail" && v.contains(&b"b".to_vec())));
        let mods = to_mods(&[Change::Replace("mail".into(), vec![])]);
        assert!(matches!(&mods[0], Mod::Replace(_, v) if v.is_empty()));
    }

    #[test]
    fn a_read_only_busy_or_stopping_server_is_one_that_cannot_serve() {
        assert!(cannot_serve(10, "")); // a consumer's referral
        assert!(cannot_serve(53, "shadow context; no update referral"));
        assert!(cannot_serve(52, ""));
        assert!(cannot_serve(51, ""));
        assert!(cannot_serve(53, "server is shutting down"));
        assert!(!cannot_serve(53, "0000052D: Constraint violation"));
        assert!(!cannot_serve(68, ""));
    }

    #[test]
    fn active_directory_codes_are_said_in_words() {
        let samba = "0000052D: Constraint violation - check_password_restrictions: the password is too short. It should be equal or longer than 7 characters!";
        let e = map_result_code(19, samba, "");
        assert!(
            matches!(&e, DirectoryError::Rejected(t)
            if t.starts_with("the password does not meet the domain's password policy: the password is too short")
            && t.ends_with("(0000052D)")),
            "{e:?}"
        );
        assert_eq!(ad_reason("plain text"), None);
    }

    #[test]
    fn result_codes_map_to_actionable_errors() {
        assert_eq!(
            map_result_code(68, "", "uid=a"),
            DirectoryError::AlreadyExists("uid=a".into())
        );
        assert!(
            matches!(map_result_code(65, "object class 'inetOrgPerson' requires attribute 'sn'", ""),
            DirectoryError::Rejected(t) if t.contains("objectClassViolation") && t.contains("'sn'"))
        );
        assert!(matches!(
            map_result_code(52, "", ""),
            DirectoryError::Unavailable(_)
        ));
        assert!(matches!(
            map_result_code(11, "", ""),
            DirectoryError::Rejected(t) if t == "adminLimitExceeded"
        ));
    }
}
