//! Which server a request's operations go to, and the health checks that decide which one is
//! current: a request is pinned to one server (a task-local set by `one_server`), each server
//! has its own pool, every server is checked every `health_interval`, and DNS discovery is
//! refreshed as its records expire.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{Object, Pool, PoolError};
use ldap3::Scope;
use tracing::{debug, info, warn};

use super::codes::result_code_name;
use super::connect::{Manager, Shared};
use crate::directory::estate::{Estate, Member};
use crate::directory::{DirResult, DirectoryError};

/// One directory server and its connections.
pub(super) type Server = Member<Pool<Manager>>;

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
///
/// (Not an `async fn`: that would hold `f` twice, and the futures it wraps are a request's.)
pub fn one_server<F: std::future::Future>(f: F) -> impl std::future::Future<Output = F::Output> {
    PIN.scope(RefCell::new(Pinned::default()), f)
}

/// A pooled connection and the server it leads to.
pub(super) struct Conn {
    pub(super) obj: Object<Manager>,
    pub(super) server: Arc<Server>,
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
    pub(super) fn discard(self) {
        let _ = Object::take(self.obj);
    }
}

/// The server the current request is pinned to and whether it has written to it, if pinned.
pub(super) fn pinned_with_write() -> Option<(Arc<Server>, bool)> {
    PIN.try_with(|p| {
        let p = p.borrow();
        p.server.clone().map(|s| (s, p.wrote))
    })
    .ok()
    .flatten()
}

/// The server the current request is pinned to, if any.
pub(super) fn pinned() -> Option<Arc<Server>> {
    PIN.try_with(|p| p.borrow().server.clone()).ok().flatten()
}

pub(super) fn pin(server: &Arc<Server>) {
    let _ = PIN.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.server.is_none() {
            p.server = Some(server.clone());
        }
    });
}

pub(super) fn unpin() {
    let _ = PIN.try_with(|p| p.borrow_mut().server = None);
}

/// Whether this request has written to its server.
pub(super) fn has_written() -> bool {
    PIN.try_with(|p| p.borrow().wrote).unwrap_or(false)
}

/// A write reached the pinned server: the request stays with it.
pub(super) fn wrote() {
    let _ = PIN.try_with(|p| p.borrow_mut().wrote = true);
}

/// A server and its own pool of `pool_size` connections.
pub(super) fn server(
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
pub(super) async fn check_servers(
    estate: std::sync::Weak<Estate<Pool<Manager>>>,
    shared: Arc<Shared>,
) {
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
        probe_all(&estate, shared.settings.connect_timeout).await;
        drop(estate);
        tokio::time::sleep(shared.settings.health_interval).await;
    }
}

/// Looks the servers up in DNS and puts them in the estate (known ones keep their
/// connections): how long the answer may be kept.
pub(super) async fn refresh(
    estate: &Estate<Pool<Manager>>,
    shared: &Arc<Shared>,
    d: &crate::directory::discover::Discovery,
) -> Result<Duration, String> {
    let (found, ttl) = crate::directory::discover::lookup(d).await?;
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
pub(super) async fn probe_all(estate: &Estate<Pool<Manager>>, connect_timeout: Duration) {
    let mut checks = tokio::task::JoinSet::new();
    for member in estate.members() {
        checks.spawn(async move {
            let r = probe(&member, connect_timeout).await;
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
pub(super) async fn probe(server: &Server, connect_timeout: Duration) -> DirResult<()> {
    let limit = connect_timeout
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
