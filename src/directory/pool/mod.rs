//! The directory's servers, each with a small pool of bound ldap3 connections (deadpool),
//! and the LDAP operations the `Directory` sends through them: per-operation timeouts, retries
//! of what never left, and where a server that cannot serve is left for the next.
//!
//! `connect` makes and binds connections, `servers` decides which server a request uses and
//! checks their health, `controls` builds the request controls, `codes` turns result codes
//! into errors, `search` and `write` are the operations.

mod ber;
mod codes;
mod connect;
mod controls;
mod entry;
mod filter_tag;
mod search;
mod servers;
mod write;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{Pool, PoolError};
use futures_util::FutureExt;
use ldap3::LdapError;
use tracing::warn;

pub use codes::{ad_reason, map_result_code, result_code_name};
pub use connect::LdapSettings;
pub use controls::{sort_control, to_mods};
pub use entry::{BinAttrMap, RawEntry};
pub use search::PagedWalk;
pub use servers::one_server;

use codes::cannot_serve;
use connect::{tls_config, BindGate, Manager, Shared};
use servers::*;

use super::estate::{Estate, EstateStatus};
use super::{budget, DirResult, DirectoryError};

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
    ///
    /// A combinator, not an `async fn`: an `async fn` would hold `run` twice (as its argument
    /// and as the future it awaits), and every caller's future would grow by that much.
    fn observed<'a, T: 'a>(
        &'a self,
        op: &'static str,
        run: impl Future<Output = DirResult<T>> + 'a,
    ) -> impl Future<Output = DirResult<T>> + 'a {
        let start = std::time::Instant::now();
        run.map(move |result| {
            let server = pinned().or_else(|| self.estate.current());
            crate::metrics::metrics().ldap(
                op,
                server.as_ref().map_or("-", |s| s.label),
                start.elapsed(),
                result.as_ref().err().map(DirectoryError::kind),
            );
            result
        })
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
            // boxed: deadpool's wait is about a kilobyte of state, which made every future
            // holding a connection's wait too large for malloc's per-thread cache (each
            // operation's boxed future went through malloc's slow path, consolidation included)
            let got = Box::pin(server.conn.timeout_get(&timeouts)).await;
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
