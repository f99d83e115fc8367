//! Connecting and binding to one directory server: the deadpool manager, TLS, and the bind
//! backoff after the service account's credentials are refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use ldap3::{LdapConnAsync, LdapConnSettings};
use tracing::{debug, error, info};

use super::codes::result_code_name;
use crate::directory::{budget, DirResult, DirectoryError};

/// How to reach and bind to the directory's servers.
#[derive(Clone)]
pub struct LdapSettings {
    /// The servers in order of preference; empty with `discover` (DNS fills it).
    pub urls: Vec<String>,
    pub discover: Option<crate::directory::discover::Discovery>,
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
pub(super) struct Shared {
    pub(super) settings: LdapSettings,
    pub(super) tls: Option<Arc<rustls::ClientConfig>>,
    pub(super) binds: BindGate,
}

pub(super) struct Manager {
    pub(super) url: String,
    /// Held while binding.
    pub(super) binding: tokio::sync::Mutex<()>,
    /// Addresses DNS discovery found for the URL's host; empty: the system resolver's.
    pub(super) addrs: Vec<std::net::SocketAddr>,
    pub(super) shared: Arc<Shared>,
}

/// Binds one at a time to each server, and after a server refuses the service account's
/// credentials, to none again until a backoff has passed (1 s, doubling to 60 s): a changed
/// password must not turn every request into a bind attempt that a password policy counts
/// against the account.
#[derive(Default)]
pub(super) struct BindGate {
    state: tokio::sync::Mutex<BindState>,
    pub(super) attempts: AtomicU64,
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

    /// Boxed: connecting (TCP, TLS, bind) is a future of some 9 KB that every request's
    /// `conn()` would otherwise carry inline and copy, though it runs only when the pool has
    /// no idle connection.
    async fn create(&self) -> Result<ldap3::Ldap, DirectoryError> {
        Box::pin(self.connect()).await
    }

    async fn recycle(&self, conn: &mut ldap3::Ldap, _: &Metrics) -> RecycleResult<DirectoryError> {
        if conn.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        Ok(())
    }
}

impl Manager {
    async fn connect(&self) -> Result<ldap3::Ldap, DirectoryError> {
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
}

pub(super) fn tls_config(ca_file: &std::path::Path) -> Result<rustls::ClientConfig, String> {
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
