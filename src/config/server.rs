//! `[server]`, `[metrics]`, `[log]`, `[audit]`, `[repair]` and `[cache]`: how the bridge listens,
//! reports and keeps its caches.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, DEFAULT_JOURNAL_DIR, DEFAULT_TOKEN_STORE};

/// `[repair]`: the repair sweep (README "Writes"), run in the background over every tenant
/// every `interval_secs` (0, the default: only at start after a recovery, and by
/// `scim2ldap repair`), reading at most `searches_per_second`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RepairConfig {
    pub interval_secs: u64,
    pub searches_per_second: u32,
}

impl Default for RepairConfig {
    fn default() -> RepairConfig {
        RepairConfig {
            interval_secs: 0,
            searches_per_second: 10,
        }
    }
}

/// `[metrics]`: Prometheus metrics at `/metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// The address `/metrics` is served on: its own listener, never the API's (metrics name
    /// tenants and say how the service runs; IdPs and the network they come from need not
    /// see that). Loopback by default, for a local Prometheus or agent. A restart changes it.
    pub listen: SocketAddr,
}

/// Prometheus' port for a process's own exporter (the "node"-style default, 9464 being
/// OpenTelemetry's Prometheus exporter port).
pub const DEFAULT_METRICS_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 9464);

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: SocketAddr::from(DEFAULT_METRICS_LISTEN),
        }
    }
}

/// `[log]`: how much the service logs, and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// "error", "warn", "info", "debug", or a per-module filter such as
    /// "info,scim2ldap::directory=debug". A reload applies it. `SCIM2LDAP_LOG` overrides it.
    pub level: String,
    /// "auto" (JSON under systemd, text on a terminal), "text" or "json". Read at start.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: "auto".to_owned(),
        }
    }
}

impl LogConfig {
    /// The format, and the level checked.
    pub fn checked(&self) -> Result<crate::logging::LogFormat, ConfigError> {
        crate::logging::parse_level(&self.level).map_err(|e| {
            ConfigError::new(
                "log.level",
                format!("\"{}\" is not a log level or filter ({e})", self.level),
                "use error, warn, info or debug (or e.g. \"info,scim2ldap::directory=debug\")",
            )
        })?;
        crate::logging::LogFormat::from_config(&self.format).ok_or_else(|| {
            ConfigError::new(
                "log.format",
                format!("\"{}\" is not a log format", self.format),
                "use \"auto\", \"text\" or \"json\"",
            )
        })
    }
}

/// `[audit]`: where the record of every write goes.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// A file the records are appended to, one JSON object per line. Unset: the log, as
    /// events of target `audit`.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Set by `explain`, whose writes are not made: no records. Not a config key.
    #[serde(skip)]
    pub off: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Absolute URL clients reach `/scim/v2` under, e.g. `https://scim.example.com/scim/v2`;
    /// when unset, built from the request's Host header.
    pub public_url: Option<String>,
    pub max_body_bytes: usize,
    pub max_results: usize,
    /// Behind a reverse proxy that sets them: take the scheme and host of `meta.location`
    /// from `X-Forwarded-Proto` / `X-Forwarded-Host`. Off, they are ignored (a client could
    /// forge them).
    pub trust_forwarded_headers: bool,
    /// HTTPS served by the bridge itself.
    pub tls: Option<ServerTlsConfig>,
    /// Plain HTTP on an address other than loopback (e.g. behind a proxy that terminates
    /// TLS on the same host or network). Off, such a config is refused at start.
    pub allow_plain_http: bool,
    /// Open client connections; more are answered 503 and closed. Lowered at start to fit
    /// the process's open-file limit.
    pub max_connections: usize,
    /// Requests served at once; more wait up to `queue_timeout_ms`, then get 503.
    pub max_concurrent_requests: usize,
    /// Threads that serve requests; 0: one per CPU. On a host shared with the directory, 1
    /// spends the least CPU per request (no hand-over between threads). Restart to change.
    pub worker_threads: usize,
    pub queue_timeout_ms: u64,
    /// A client must send a request's headers within this time of connecting or of its
    /// previous response (so it also closes idle keep-alive connections).
    pub header_read_timeout_secs: u64,
    /// A connection on which nothing moves either way for this long is closed (a stalled
    /// upload, a client that stopped reading).
    pub idle_timeout_secs: u64,
    /// The whole request body must arrive within this time.
    pub body_read_timeout_secs: u64,
    /// The most one request may take; past it the client gets 503 (a write already under
    /// way still completes; the detail says so).
    pub request_timeout_secs: u64,
    /// On SIGTERM: idle and half-sent connections close at once; requests in flight get
    /// this long to finish. Keep it below the unit's TimeoutStopSec.
    pub shutdown_drain_secs: u64,
    /// Longest request target (path and query) answered with a SCIM 414 beyond.
    pub max_uri_bytes: usize,
    /// Most header bytes answered with a SCIM 431 beyond.
    pub max_header_bytes: usize,
    /// Each tenant's token bucket (a tenant may override it).
    pub rate_limit: RateLimitConfig,
    /// The token store `scim2ldap token` manages; the server picks up its changes within a
    /// second or two.
    pub token_store: PathBuf,
    /// Where write requests record their unfinished plans (see README "Writes"); replicas
    /// may share it. Made (mode 0700) at start when missing.
    pub journal_dir: PathBuf,
    /// A secret (at least 32 bytes, e.g. from /dev/urandom) that every replica behind one
    /// load balancer shares, so that a cursor one replica issued is recognised by another
    /// (which answers `expiredCursor`: the walk lives on the first). Unset: a key per process.
    pub cursor_key_file: Option<PathBuf>,
}

impl ServerConfig {
    /// The key cursors are signed with, from `cursor_key_file` (hashed to 32 bytes); `None`
    /// when unset.
    pub fn cursor_key(&self) -> Result<Option<[u8; 32]>, ConfigError> {
        let Some(path) = &self.cursor_key_file else {
            return Ok(None);
        };
        let fix = "generate it once (head -c 32 /dev/urandom > FILE; chmod 0640, group scim2ldap) and copy the same file to every replica";
        let secret = std::fs::read(path).map_err(|e| {
            ConfigError::new(
                "server.cursor_key_file",
                format!("cannot read {}: {e}", path.display()),
                fix,
            )
        })?;
        if secret.len() < 32 {
            return Err(ConfigError::new(
                "server.cursor_key_file",
                format!(
                    "{} holds {} bytes; a key needs at least 32",
                    path.display(),
                    secret.len()
                ),
                fix,
            ));
        }
        use sha2::Digest;
        Ok(Some(sha2::Sha256::digest(&secret).into()))
    }
}

impl ServerConfig {
    /// `worker_threads`, checked: `None` is one per CPU.
    pub fn workers(&self) -> Result<Option<usize>, super::ConfigError> {
        match self.worker_threads {
            0 => Ok(None),
            n if n <= 256 => Ok(Some(n)),
            n => Err(super::ConfigError::new(
                "server.worker_threads",
                format!("{n} threads is more than a SCIM bridge can use"),
                "0 (one per CPU), or a number up to 256; 1 spends the least CPU per request",
            )),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            max_body_bytes: 1024 * 1024,
            max_results: 200,
            trust_forwarded_headers: false,
            tls: None,
            allow_plain_http: false,
            max_connections: 512,
            max_concurrent_requests: 64,
            worker_threads: 0,
            queue_timeout_ms: 2000,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            body_read_timeout_secs: 30,
            request_timeout_secs: 30,
            shutdown_drain_secs: 10,
            max_uri_bytes: 16 * 1024,
            max_header_bytes: 32 * 1024,
            rate_limit: RateLimitConfig::default(),
            token_store: PathBuf::from(DEFAULT_TOKEN_STORE),
            journal_dir: PathBuf::from(DEFAULT_JOURNAL_DIR),
            cursor_key_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// A token bucket: `per_second` requests on average, bursts of `burst`. `per_second = 0`
/// (the default) turns it off: what keeps one tenant from starving another is its fair share
/// of the request slots, which never refuses a lone client the directory keeps up with.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_second: 0,
            burst: 200,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
    #[serde(default = "default_cache_entries")]
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl_secs: default_ttl(),
            max_entries: default_cache_entries(),
        }
    }
}

fn default_ttl() -> u64 {
    300
}

fn default_cache_entries() -> u64 {
    100_000
}
