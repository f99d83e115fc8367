//! Configuration: a TOML file plus `SCIM2LDAP_*` environment overrides (figment), parsed into
//! raw structs here and then into checked types by the modules that own them. Every error
//! names the config key and says how to fix it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

use crate::directory::DirectoryKind;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/scim2ldap/config.toml";
pub const DEFAULT_TOKEN_STORE: &str = "/var/lib/scim2ldap/tokens.json";
pub const DEFAULT_JOURNAL_DIR: &str = "/var/lib/scim2ldap/journal";

/// A configuration problem: which key, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
    pub fix: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config key `{}`: {}", self.key, self.problem)?;
        if !self.fix.is_empty() {
            write!(f, "\n  fix: {}", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: ServerConfig,
    pub ldap: LdapConfig,
    #[serde(default)]
    pub directory: DirectoryConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    pub users: UsersConfig,
    /// Optional: without it, `/Groups` is not served.
    #[serde(default)]
    pub groups: Option<GroupsConfig>,
    /// Optional: users' `roles` as memberships of the groups under a container (the other
    /// way is `roles = "ldapAttribute"` in `[users.attributes]`).
    #[serde(default)]
    pub roles: Option<RolesConfig>,
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub repair: RepairConfig,
}

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

/// `[roles]`: each role a user has is a group (of `[groups]`'s classes and member
/// attribute) under `container`, named by the role's value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesConfig {
    pub container: String,
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

/// `[limits]`: how much one request may make the server parse, walk and write. Every input
/// is bounded before it is parsed; past a bound the client gets a 400 naming it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Characters in a filter or a PATCH path.
    pub filter_max_length: usize,
    /// Nesting of parentheses, `not (…)` and value filters in one filter or path.
    pub filter_max_depth: usize,
    /// Comparisons in one filter.
    pub filter_max_terms: usize,
    /// Operations in one PATCH.
    pub patch_max_operations: usize,
    /// Member ids in one group request (POST, PUT, or one PATCH).
    pub max_members_per_request: usize,
    /// Values of one multi-valued attribute (emails, …) in one request.
    pub max_values_per_attribute: usize,
    /// Characters in any one attribute value (a mapping's `max_length` lowers it for one
    /// attribute).
    pub max_value_length: usize,
    /// Characters in the value that names an entry (its RDN). Unset: 64 on Active Directory
    /// (cn's limit there), 128 on OpenLDAP (its back-mdb refuses DNs over ~270 characters).
    pub max_rdn_value_length: Option<usize>,
    /// Seconds a cursor walk (RFC 9865) waits for its next page before it is closed.
    pub cursor_timeout_secs: u64,
    /// Cursor walks one tenant may hold open at once (each holds a directory connection);
    /// opening one more closes the tenant's oldest.
    pub max_open_cursors: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = crate::scim::Limits::default();
        LimitsConfig {
            filter_max_length: l.filter_max_length,
            filter_max_depth: l.filter_max_depth,
            filter_max_terms: l.filter_max_terms,
            patch_max_operations: l.patch_max_operations,
            max_members_per_request: l.max_members,
            max_values_per_attribute: l.max_values_per_attribute,
            max_value_length: 2048,
            max_rdn_value_length: None,
            cursor_timeout_secs: 120,
            max_open_cursors: 4,
        }
    }
}

impl LimitsConfig {
    /// The checked cursor settings.
    pub fn cursors(&self) -> Result<crate::service::cursor::CursorSettings, ConfigError> {
        let out_of_range = |key: &str, v: u64, max: u64| {
            ConfigError::new(
                format!("limits.{key}"),
                format!("{v} is out of range"),
                format!("set a value from 1 to {max}"),
            )
        };
        if !(1..=3600).contains(&self.cursor_timeout_secs) {
            return Err(out_of_range(
                "cursor_timeout_secs",
                self.cursor_timeout_secs,
                3600,
            ));
        }
        if !(1..=64).contains(&self.max_open_cursors) {
            return Err(out_of_range(
                "max_open_cursors",
                self.max_open_cursors as u64,
                64,
            ));
        }
        Ok(crate::service::cursor::CursorSettings {
            timeout: std::time::Duration::from_secs(self.cursor_timeout_secs),
            per_tenant: self.max_open_cursors,
        })
    }

    /// The checked limits: each at least 1 and at most its hard ceiling.
    pub fn limits(&self) -> Result<crate::scim::Limits, ConfigError> {
        use crate::scim::Limits;
        let range = |key: &str, v: usize, max: usize| {
            if (1..=max).contains(&v) {
                Ok(v)
            } else {
                Err(ConfigError::new(
                    format!("limits.{key}"),
                    format!("{v} is out of range"),
                    format!("set a value from 1 to {max}"),
                ))
            }
        };
        Ok(Limits {
            filter_max_length: range(
                "filter_max_length",
                self.filter_max_length,
                Limits::HARD_MAX_LENGTH,
            )?,
            filter_max_depth: range(
                "filter_max_depth",
                self.filter_max_depth,
                Limits::HARD_MAX_DEPTH,
            )?,
            filter_max_terms: range(
                "filter_max_terms",
                self.filter_max_terms,
                Limits::HARD_MAX_TERMS,
            )?,
            patch_max_operations: range(
                "patch_max_operations",
                self.patch_max_operations,
                100_000,
            )?,
            max_members: range(
                "max_members_per_request",
                self.max_members_per_request,
                1_000_000,
            )?,
            max_values_per_attribute: range(
                "max_values_per_attribute",
                self.max_values_per_attribute,
                100_000,
            )?,
        })
    }
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

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// One directory server (or use `urls`, or `discover`).
    #[serde(default)]
    pub url: String,
    /// Several servers, in order of preference: all bridges write to the first healthy one.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Find the servers in DNS SRV records instead.
    #[serde(default)]
    pub discover: Option<DiscoverConfig>,
    /// How long the preferred server must answer health checks before requests go back to it.
    #[serde(default = "default_failback")]
    pub failback_after_secs: u64,
    /// How often every server is checked.
    #[serde(default = "default_health_interval")]
    pub health_interval_secs: u64,
    pub bind_dn: String,
    #[serde(default)]
    pub bind_password: Option<String>,
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// A systemd credential holding the password (`LoadCredential=NAME:/path` in the unit):
    /// read from `$CREDENTIALS_DIRECTORY/NAME` when the service runs under systemd; otherwise
    /// `bind_password_file`, if set, is used (e.g. for `check-config` run by hand).
    #[serde(default)]
    pub bind_password_credential: Option<String>,
    #[serde(default)]
    pub starttls: bool,
    /// `ldap://` without StartTLS to a host other than loopback: refused at start unless
    /// this is set (a warning is logged at every start then).
    #[serde(default)]
    pub allow_plain_ldap: bool,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    #[serde(default = "default_op_timeout")]
    pub operation_timeout_secs: u64,
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

impl fmt::Debug for LdapConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapConfig")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field(
                "bind_password",
                &self.bind_password.as_ref().map(|_| "<redacted>"),
            )
            .field("bind_password_file", &self.bind_password_file)
            .field("bind_password_credential", &self.bind_password_credential)
            .finish_non_exhaustive()
    }
}

fn default_connect_timeout() -> u64 {
    5
}
fn default_failback() -> u64 {
    60
}
fn default_health_interval() -> u64 {
    2
}
fn default_ldaps_port() -> u16 {
    636
}

/// `[ldap] discover = { domain = "example.test" }`: the servers from DNS SRV records.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverConfig {
    pub domain: String,
    /// Active Directory site: its domain controllers first.
    #[serde(default)]
    pub site: Option<String>,
    /// A DNS server to ask (`"10.0.0.53"`, `"127.0.0.1:5353"`) instead of the system's.
    #[serde(default)]
    pub dns_server: Option<String>,
    /// Connect with LDAPS to `ldaps_port` on each server found (SRV records name port 389).
    #[serde(default)]
    pub ldaps: bool,
    #[serde(default = "default_ldaps_port")]
    pub ldaps_port: u16,
}

impl DiscoverConfig {
    pub fn to_discovery(
        &self,
        kind: DirectoryKind,
    ) -> Result<crate::directory::discover::Discovery, ConfigError> {
        if self.domain.trim().is_empty() || self.domain.contains(char::is_whitespace) {
            return Err(ConfigError::new(
                "ldap.discover.domain",
                format!("\"{}\" is not a DNS domain", self.domain),
                "set the domain whose SRV records list the servers, e.g. \"example.test\"",
            ));
        }
        let dns_server = self
            .dns_server
            .as_deref()
            .map(|s| {
                s.parse::<std::net::SocketAddr>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
                    .map_err(|_| {
                        ConfigError::new(
                            "ldap.discover.dns_server",
                            format!("\"{s}\" is not an IP address (with an optional :port)"),
                            "e.g. \"10.0.0.53\" or \"127.0.0.1:5353\"; leave it out to ask the system's resolvers",
                        )
                    })
            })
            .transpose()?;
        Ok(crate::directory::discover::Discovery {
            domain: self.domain.trim().to_owned(),
            active_directory: kind == DirectoryKind::ActiveDirectory,
            site: self.site.clone(),
            dns_server,
            ldaps: self.ldaps,
            ldaps_port: self.ldaps_port,
        })
    }
}
fn default_op_timeout() -> u64 {
    10
}
fn default_pool_size() -> usize {
    8
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    #[serde(default = "default_kind")]
    pub kind: DirectoryKind,
    /// Active Directory: values per ranged request when reading `member`.
    #[serde(default = "default_range_step")]
    pub range_step: usize,
    /// Active Directory: give users created without a password a random one, so that
    /// they can be enabled.
    #[serde(default)]
    pub random_passwords: bool,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            kind: default_kind(),
            range_step: default_range_step(),
            random_passwords: false,
        }
    }
}

fn default_range_step() -> usize {
    1500
}

fn default_kind() -> DirectoryKind {
    DirectoryKind::Openldap
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

/// What a create does when the person already has an account in the tenant's part of the
/// directory (matched on `users.match_on`): enterprises turn SCIM on over a directory that
/// already holds everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnExisting {
    /// 409 `uniqueness`, naming the account.
    #[default]
    Conflict,
    /// Take the account over: 201 with its id, the request's attributes applied, everything
    /// else it holds (groups, unmapped attributes) kept.
    Link,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DeleteMode {
    /// Disable the account and move it into `archive_container`.
    #[default]
    Archive,
    /// Remove the entry.
    Delete,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersConfig {
    pub container: String,
    pub object_classes: Vec<String>,
    /// The structural class that identifies users (default: the most specific known one in
    /// `object_classes`: user, inetOrgPerson, organizationalPerson, person, account).
    #[serde(default)]
    pub structural_class: Option<String>,
    pub rdn: String,
    /// Templates for the RDN value tried in order when `rdn`'s has no value (AD names users
    /// by display name, which Okta's and JumpCloud's requests may lack).
    #[serde(default)]
    pub rdn_fallbacks: Vec<String>,
    #[serde(default)]
    pub reject_unmapped: bool,
    #[serde(default)]
    pub delete_mode: DeleteMode,
    #[serde(default)]
    pub archive_container: Option<String>,
    #[serde(default)]
    pub deactivate: DeactivateConfig,
    pub attributes: BTreeMap<String, AttrSpec>,
    /// LDAP attribute → templates tried in order when the attribute would otherwise be empty
    /// (e.g. `cn`/`sn`, which inetOrgPerson requires).
    #[serde(default)]
    pub derive: BTreeMap<String, Vec<String>>,
    /// LDAP attribute → values every new user gets.
    #[serde(default)]
    pub defaults: BTreeMap<String, Vec<String>>,
    /// Multi-valued attribute → the type its untyped values are stored as (OneLogin sends
    /// `addresses` without `type`): `emails = "work"`.
    #[serde(default)]
    pub default_type: BTreeMap<String, String>,
    /// LDAP attributes (mapped under `attributes`) on which a create finds an account that
    /// already exists, besides the userName's; `on_existing` says what then.
    #[serde(default)]
    pub match_on: Vec<String>,
    #[serde(default)]
    pub on_existing: OnExisting,
    /// What a password does when `attributes` does not map `password`.
    #[serde(default)]
    pub password: UnmappedPassword,
    /// OpenLDAP: how a password reaches the directory ("server": Password Modify, so that
    /// the directory hashes it; "ssha512" or "argon2": hashed here).
    #[serde(default)]
    pub password_hash: crate::directory::PasswordStorage,
}

/// `users.password`: what a password an IdP sends does when the mapping stores none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UnmappedPassword {
    /// 400 naming the keys that decide it: an IdP's password sync must not create accounts
    /// nobody can log in to without anyone knowing.
    #[default]
    Refuse,
    /// Dropped, by the admin's choice (e.g. accounts log in through Kerberos or SSO only).
    Ignore,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupsConfig {
    pub container: String,
    pub object_classes: Vec<String>,
    /// The structural class that identifies groups (default: the most specific known one in
    /// `object_classes`: group, groupOfNames, groupOfUniqueNames, posixGroup, groupOfURLs).
    #[serde(default)]
    pub structural_class: Option<String>,
    pub rdn: String,
    /// The LDAP attribute listing members by DN.
    #[serde(default = "default_member_attribute")]
    pub member_attribute: String,
    /// A DN every group holds besides its real members, for classes such as groupOfNames
    /// that require at least one member. Never shown through SCIM. Unset: empty groups hold
    /// no member value (for classes that allow that).
    #[serde(default)]
    pub placeholder_member: Option<String>,
    /// The user attribute listing the groups a user is in (OpenLDAP memberof overlay, AD).
    /// Unset: found by searching the groups container.
    #[serde(default)]
    pub member_of_attribute: Option<String>,
    /// Also report groups reached through nested groups, as `type: "indirect"`.
    #[serde(default)]
    pub nested: bool,
    #[serde(default)]
    pub reject_unmapped: bool,
    pub attributes: BTreeMap<String, AttrSpec>,
    #[serde(default)]
    pub derive: BTreeMap<String, Vec<String>>,
    /// LDAP attribute → values every new group gets (AD: `groupType`).
    #[serde(default)]
    pub defaults: BTreeMap<String, Vec<String>>,
}

fn default_member_attribute() -> String {
    "member".to_owned()
}

/// How `active` is stored.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(tag = "strategy", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DeactivateConfig {
    /// OpenLDAP ppolicy: `pwdAccountLockedTime: 000001010000Z` locks the account for good;
    /// removing it unlocks.
    #[default]
    PpolicyLock,
    /// Active Directory: bit 0x2 (ACCOUNTDISABLE) of `userAccountControl`, the other bits kept.
    AdAccountDisabled,
    /// Set `attribute` to `inactive_value` to deactivate, and to `active_value` (or remove
    /// it, when unset) to activate.
    Attribute {
        attribute: String,
        inactive_value: String,
        #[serde(default)]
        active_value: Option<String>,
    },
}

/// A mapping target: just the LDAP attribute, or a table with options.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum AttrSpec {
    Ldap(String),
    Full(AttrSpecFull),
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AttrSpecFull {
    pub ldap: String,
    /// Show this value as `primary: true` and use the primary value when no value of the
    /// selected type is sent.
    #[serde(default)]
    pub primary: bool,
    #[serde(default)]
    pub transform: Option<TransformName>,
    /// Most characters a value may have (below `limits.max_value_length`), e.g. what the
    /// directory's schema allows for this attribute.
    #[serde(default)]
    pub max_length: Option<usize>,
    /// With `transform = "country"`: the LDAP attribute that also gets the country's name
    /// (`co`, friendlyCountryName).
    #[serde(default)]
    pub country_name: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TransformName {
    /// The LDAP value is a user's DN; SCIM shows that user's id (e.g. `manager`).
    UserDn,
    /// LDAP boolean (`TRUE`/`FALSE`).
    Boolean,
    /// RFC 4517 Postal Address (`postalAddress`, `homePostalAddress`): lines joined by `$`,
    /// shown as lines joined by newlines.
    PostalAddress,
    /// A country by name or ISO 3166 code (Entra sends "Germany", Okta "DE"): the LDAP value
    /// is the two-letter code (`c` holds nothing else), shown as that code (RFC 7643).
    Country,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Where this tenant's users live; defaults to `users.container`.
    #[serde(default)]
    pub users_container: Option<String>,
    /// Where this tenant's groups live; defaults to `groups.container`.
    #[serde(default)]
    pub groups_container: Option<String>,
    /// DN of a group every user created through this tenant's tokens joins (one of its own
    /// groups, under its groups container).
    #[serde(default)]
    pub default_group: Option<String>,
    /// Where this tenant's role groups live (`[roles]`); defaults to `roles.container`. Each
    /// tenant has its own: a tenant can grant only its own roles.
    #[serde(default)]
    pub roles_container: Option<String>,
    #[serde(default)]
    pub tokens: BTreeMap<String, TokenConfig>,
    /// This tenant's token bucket, instead of `server.rate_limit`.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// OAuth2 access tokens (JWTs) from this issuer, instead of or beside static tokens.
    #[serde(default)]
    pub oauth: Option<OAuthConfig>,
}

/// `[tenants.NAME.oauth]`: JWT bearer tokens an OAuth2 issuer signs (client credentials).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// `iss` the tokens must carry.
    pub issuer: String,
    /// `aud` the tokens must carry (one of, when it is a list).
    pub audience: String,
    /// The issuer's public keys (JWKS): a file, or a URL fetched and cached (refetched when a
    /// token names an unknown key, at most every 30 s).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// A scope the token must grant (in `scope` or `scp`), e.g. "admin"; 403 without it.
    #[serde(default)]
    pub required_scope: Option<String>,
    /// A claim the token must carry with this value (or a list holding it), e.g. groups =
    /// admins; 403 without it.
    #[serde(default)]
    pub required_claim: Option<RequiredClaim>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_leeway() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RequiredClaim {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Hex SHA-256 of the bearer token (`scim2ldap token new` prints it).
    pub sha256: String,
    /// RFC 3339 time after which the token is refused.
    #[serde(default)]
    pub expires: Option<String>,
}

/// Reads the TOML file and applies `SCIM2LDAP_*` overrides (`__` between levels).
pub fn load_raw(path: &Path) -> Result<RawConfig, ConfigError> {
    if !path.exists() {
        return Err(ConfigError::new(
            "(file)",
            format!("config file {} does not exist", path.display()),
            "pass --config PATH or set SCIM2LDAP_CONFIG; config.example.toml is a starting point",
        ));
    }
    Figment::new()
        .merge(Toml::file(path))
        .merge(
            Env::prefixed("SCIM2LDAP_")
                .ignore(&["config", "log", "demo_directory"])
                .split("__"),
        )
        .extract::<RawConfig>()
        .map_err(figment_error)
}

fn figment_error(e: figment::Error) -> ConfigError {
    let key = if e.path.is_empty() {
        "(top level)".to_owned()
    } else {
        e.path.join(".")
    };
    let fix = match &e.kind {
        figment::error::Kind::MissingField(f) if e.path.is_empty() => {
            format!("add a `[{f}]` section (see config.example.toml)")
        }
        figment::error::Kind::MissingField(f) => format!("add `{f}` under `[{key}]`"),
        figment::error::Kind::UnknownField(f, expected) => format!(
            "`{f}` is not a setting here; expected one of: {}",
            expected.join(", ")
        ),
        _ => "see config.example.toml for the expected form".to_owned(),
    };
    let mut problem = e.kind.to_string();
    if let Some(md) = &e.metadata {
        problem.push_str(&format!(" (from {})", md.name));
    }
    ConfigError::new(key, problem, fix)
}

impl LdapConfig {
    /// The bind password, from `bind_password` or `bind_password_file` (one of them).
    pub fn password(&self) -> Result<String, ConfigError> {
        self.password_with(std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from))
    }

    /// The bind password, given systemd's credentials directory when there is one.
    fn password_with(&self, credentials: Option<PathBuf>) -> Result<String, ConfigError> {
        let read = |key: &str, path: &Path, fix: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| {
                    ConfigError::new(key, format!("cannot read {}: {e}", path.display()), fix)
                })
        };
        let from_file = || {
            self.bind_password_file.as_ref().map(|path| {
                read(
                    "ldap.bind_password_file",
                    path,
                    "point it at a file readable by the service holding only the password",
                )
            })
        };
        match (&self.bind_password, &self.bind_password_credential) {
            (Some(_), _) if self.bind_password_file.is_some() || self.bind_password_credential.is_some() => {
                Err(ConfigError::new(
                    "ldap.bind_password",
                    "bind_password is set beside bind_password_file or bind_password_credential",
                    "keep one; a file or a systemd credential keeps the secret out of the config file",
                ))
            }
            (Some(p), _) => Ok(p.clone()),
            (None, Some(name)) => match credentials {
                Some(dir) => read(
                    "ldap.bind_password_credential",
                    &dir.join(name),
                    &format!("add LoadCredential={name}:/etc/scim2ldap/bind_password to the unit"),
                ),
                None => from_file().unwrap_or_else(|| {
                    Err(ConfigError::new(
                        "ldap.bind_password_credential",
                        format!("not running under systemd, so there is no credential \"{name}\""),
                        "run it as the service, or also set ldap.bind_password_file for use by hand",
                    ))
                }),
            },
            (None, None) => from_file().unwrap_or_else(|| {
                Err(ConfigError::new(
                    "ldap.bind_password_file",
                    "no bind password configured",
                    "set ldap.bind_password_file or ldap.bind_password_credential (or ldap.bind_password, or SCIM2LDAP_LDAP__BIND_PASSWORD)",
                ))
            }),
        }
    }

    /// The configured servers (`url` or `urls`), in order of preference, with the key each
    /// comes from; none with `discover`.
    pub fn servers(&self) -> Vec<(String, &str)> {
        if !self.url.is_empty() {
            return vec![("ldap.url".to_owned(), self.url.as_str())];
        }
        self.urls
            .iter()
            .enumerate()
            .map(|(i, u)| (format!("ldap.urls[{i}]"), u.as_str()))
            .collect()
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        let ways = [
            !self.url.is_empty(),
            !self.urls.is_empty(),
            self.discover.is_some(),
        ];
        match ways.iter().filter(|w| **w).count() {
            0 => {
                return Err(ConfigError::new(
                    "ldap.url",
                    "no directory server configured",
                    "set ldap.url = \"ldaps://host:636\", ldap.urls = [\"ldaps://dc1:636\", \"ldaps://dc2:636\"], or ldap.discover = { domain = \"example.test\" }",
                ))
            }
            1 => {}
            _ => {
                return Err(ConfigError::new(
                    "ldap.urls",
                    "more than one of ldap.url, ldap.urls and ldap.discover is set",
                    "keep one: url for one server, urls for several in order of preference, discover to read them from DNS",
                ))
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (key, url) in self.servers() {
            self.check_url(&key, url)?;
            if !seen.insert(url.to_ascii_lowercase()) {
                return Err(ConfigError::new(
                    key,
                    format!("{url} is listed twice"),
                    "list each server once, in order of preference",
                ));
            }
        }
        if self.servers().len() > 32 {
            return Err(ConfigError::new(
                "ldap.urls",
                "more than 32 servers",
                "list the servers the bridge should use, in order of preference",
            ));
        }
        if let Some(d) = &self.discover {
            if d.ldaps && self.starttls {
                return Err(ConfigError::new(
                    "ldap.starttls",
                    "StartTLS with ldap.discover.ldaps = true",
                    "use one: ldaps = true for LDAPS, or starttls = true on the discovered LDAP port",
                ));
            }
            if !d.ldaps && !self.starttls && !self.allow_plain_ldap {
                return Err(ConfigError::new(
                    "ldap.discover",
                    "servers found in DNS would be reached by plain LDAP: the bind password and every value would cross the network in clear",
                    "set ldap.discover.ldaps = true, or ldap.starttls = true; ldap.allow_plain_ldap = true accepts it (not recommended)",
                ));
            }
        }
        if self.health_interval_secs == 0 || self.health_interval_secs > 300 {
            return Err(ConfigError::new(
                "ldap.health_interval_secs",
                "must be between 1 and 300",
                "e.g. 2: a failed server is noticed within this time",
            ));
        }
        if let Some(ca) = &self.ca_file {
            if !ca.exists() {
                return Err(ConfigError::new(
                    "ldap.ca_file",
                    format!("{} does not exist", ca.display()),
                    "point it at the PEM file of the CA that signed the directory's certificate",
                ));
            }
        }
        if self.pool_size == 0 {
            return Err(ConfigError::new(
                "ldap.pool_size",
                "must be at least 1",
                "set e.g. 8",
            ));
        }
        Ok(())
    }
}

impl LdapConfig {
    /// One server's URL: an LDAP scheme, and never plain LDAP across the network unless
    /// the admin allowed it.
    fn check_url(&self, key: &str, text: &str) -> Result<(), ConfigError> {
        let url = url::Url::parse(text).map_err(|e| {
            ConfigError::new(
                key,
                format!("\"{text}\" is not a URL ({e})"),
                "use ldap://host:389 or ldaps://host:636",
            )
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::new(
                key,
                "the URL holds credentials",
                "remove them: the bind account is ldap.bind_dn with its password from ldap.bind_password_file",
            ));
        }
        match url.scheme() {
            "ldap" => {
                if !self.starttls && !self.allow_plain_ldap && !loopback_host(&url) {
                    return Err(ConfigError::new(
                        key,
                        format!(
                            "{text} is plain LDAP to another host without StartTLS: the bind password and every value would cross the network in clear"
                        ),
                        "use ldaps://host:636, or set ldap.starttls = true; ldap.allow_plain_ldap = true accepts it (not recommended)",
                    ));
                }
            }
            "ldaps" | "ldapi" if self.starttls => {
                return Err(ConfigError::new(
                    "ldap.starttls",
                    format!("StartTLS on an {}:// URL", url.scheme()),
                    "use ldap:// with starttls = true, or ldaps:// (or ldapi://) with starttls = false",
                ))
            }
            "ldaps" | "ldapi" => {}
            other => {
                return Err(ConfigError::new(
                    key,
                    format!("scheme `{other}` is not LDAP"),
                    "use ldaps://host:636, ldap://host:389 with starttls = true, or ldapi:// for a local slapd's socket",
                ))
            }
        }
        Ok(())
    }

    /// Whether what is sent to every server is protected on the way: TLS (ldaps://,
    /// StartTLS) or a local socket (ldapi://).
    pub fn protected(&self) -> bool {
        if let Some(d) = &self.discover {
            return d.ldaps || self.starttls;
        }
        let servers = self.servers();
        !servers.is_empty()
            && servers.iter().all(|(_, u)| match url::Url::parse(u) {
                Ok(u) => u.scheme() == "ldaps" || u.scheme() == "ldapi" || self.starttls,
                Err(_) => false,
            })
    }

    /// Plain LDAP the admin allowed to another host (warned about at every start).
    pub fn plain_to_network(&self) -> bool {
        if let Some(d) = &self.discover {
            return !d.ldaps && !self.starttls;
        }
        self.servers().iter().any(|(_, u)| {
            url::Url::parse(u)
                .is_ok_and(|u| u.scheme() == "ldap" && !self.starttls && !loopback_host(&u))
        })
    }

    /// The servers as the admin wrote them, for log lines and errors.
    pub fn describe(&self) -> String {
        match &self.discover {
            Some(d) => format!("the servers DNS lists for {}", d.domain),
            None => self
                .servers()
                .iter()
                .map(|(_, u)| *u)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// Whether the URL's host is this machine's loopback (127.0.0.0/8, ::1, localhost).
fn loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        // ldap:// is not a scheme the url crate knows, so an address arrives as text
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.is_loopback())
        }
        None => false,
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../config.example.toml");

    /// `[ldap]` with `url`, a bind DN and nothing else set.
    fn ldap_config(url: &str) -> LdapConfig {
        LdapConfig {
            url: url.into(),
            urls: Vec::new(),
            discover: None,
            failback_after_secs: 60,
            health_interval_secs: 2,
            bind_dn: "cn=a".into(),
            bind_password: None,
            bind_password_file: None,
            bind_password_credential: None,
            starttls: false,
            allow_plain_ldap: false,
            ca_file: None,
            connect_timeout_secs: 1,
            operation_timeout_secs: 1,
            pool_size: 1,
        }
    }

    #[test]
    fn several_servers_come_from_urls_or_the_environment_and_one_way_is_chosen() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("config.toml", EXAMPLE)?;
            jail.set_env(
                "SCIM2LDAP_LDAP__URLS",
                r#"["ldaps://dc1.example.org","ldaps://dc2.example.org:6360"]"#,
            );
            let err = match load_raw(Path::new("config.toml")) {
                Ok(raw) => raw.ldap.check().unwrap_err(),
                Err(e) => e,
            };
            assert_eq!(err.key, "ldap.urls", "url and urls both set: {err}");
            jail.set_env("SCIM2LDAP_LDAP__URL", "");
            let raw = load_raw(Path::new("config.toml")).map_err(|e| e.to_string())?;
            raw.ldap.check().map_err(|e| e.to_string())?;
            assert_eq!(
                raw.ldap.servers(),
                [
                    ("ldap.urls[0]".to_owned(), "ldaps://dc1.example.org"),
                    ("ldap.urls[1]".to_owned(), "ldaps://dc2.example.org:6360")
                ]
            );
            Ok(())
        });
    }

    #[test]
    fn every_listed_server_is_checked_and_named_by_its_index() {
        let mut l = ldap_config("");
        l.urls = vec!["ldaps://dc1".into(), "ldap://dc2.example.org".into()];
        let err = l.check().unwrap_err();
        assert_eq!(err.key, "ldap.urls[1]", "{err}");
        assert!(err.problem.contains("plain LDAP"), "{err}");
        l.urls = vec!["ldaps://dc1".into(), "ldaps://DC1".into()];
        assert_eq!(l.check().unwrap_err().key, "ldap.urls[1]");
        l.urls = vec!["ldaps://admin:secret@dc1".into()];
        let err = l.check().unwrap_err();
        assert!(
            err.problem.contains("credentials") && !err.to_string().contains("secret"),
            "{err}"
        );
        l.urls.clear();
        assert_eq!(l.check().unwrap_err().key, "ldap.url", "no server at all");
        l.urls = vec!["ldaps://dc1".into(), "ldap://127.0.0.2:389".into()];
        l.check().unwrap();
        assert!(
            !l.protected(),
            "one server in clear is enough to refuse passwords"
        );
    }

    #[test]
    fn discovery_needs_a_domain_and_tls_and_reads_a_dns_server_with_or_without_port() {
        let mut l = ldap_config("");
        l.discover = Some(DiscoverConfig {
            domain: "example.test".into(),
            site: None,
            dns_server: Some("127.0.0.2".into()),
            ldaps: false,
            ldaps_port: 636,
        });
        assert_eq!(l.check().unwrap_err().key, "ldap.discover", "plain LDAP");
        l.starttls = true;
        l.check().unwrap();
        assert!(l.protected());
        let d = l.discover.as_ref().unwrap();
        let found = d.to_discovery(DirectoryKind::ActiveDirectory).unwrap();
        assert_eq!(found.dns_server, Some("127.0.0.2:53".parse().unwrap()));
        assert!(found.active_directory);
        let mut bad = d.clone();
        bad.dns_server = Some("dns.example.test".into());
        assert_eq!(
            bad.to_discovery(DirectoryKind::Openldap).unwrap_err().key,
            "ldap.discover.dns_server"
        );
    }

    #[test]
    fn environment_overrides_nested_keys_and_adds_tokens() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("config.toml", EXAMPLE)?;
            jail.set_env("SCIM2LDAP_LDAP__URL", "ldaps://ldap.example.org");
            jail.set_env("SCIM2LDAP_SERVER__LISTEN", "127.0.0.1:9999");
            jail.set_env(
                "SCIM2LDAP_TENANTS__DEFAULT__TOKENS__CI__SHA256",
                "ab".repeat(32),
            );
            jail.set_env("SCIM2LDAP_CONFIG", "/not/a/setting");
            let raw = load_raw(Path::new("config.toml")).map_err(|e| e.to_string())?;
            assert_eq!(raw.ldap.url, "ldaps://ldap.example.org");
            assert_eq!(raw.server.listen.port(), 9999);
            assert_eq!(raw.tenants["default"].tokens["ci"].sha256, "ab".repeat(32));
            assert_eq!(raw.users.attributes.len(), 33, "dotted keys survive");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_named_with_the_expected_ones() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("config.toml", &EXAMPLE.replace("pool_size", "pool_sise"))?;
            let err = load_raw(Path::new("config.toml")).unwrap_err();
            assert_eq!(err.key, "ldap.pool_sise");
            assert!(err.problem.contains("pool_sise"), "{err}");
            assert!(err.fix.contains("pool_size"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn one_bind_password_source_is_required() {
        let mut l = ldap_config("ldap://x");
        assert_eq!(
            l.password_with(None).unwrap_err().key,
            "ldap.bind_password_file"
        );
        l.bind_password = Some("s3cret".into());
        assert_eq!(l.password().unwrap(), "s3cret");
        assert!(
            !format!("{l:?}").contains("s3cret"),
            "Debug never shows the password"
        );
        l.bind_password_file = Some("/x".into());
        assert!(l
            .password_with(None)
            .unwrap_err()
            .problem
            .contains("beside"));
        l.url = "http://x".into();
        assert_eq!(l.check().unwrap_err().key, "ldap.url");
    }

    #[test]
    fn plain_ldap_is_accepted_only_to_loopback_unless_allowed() {
        let mut l = ldap_config("");
        for (url, ok) in [
            ("ldap://127.0.0.1:389", true),
            ("ldap://127.1.2.3", true),
            ("ldap://[::1]:389", true),
            ("ldap://localhost", true),
            ("ldap://10.0.0.5", false),
            ("ldap://dc1.example.test", false),
            ("ldaps://dc1.example.test", true),
            ("ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi", true),
        ] {
            l.url = url.into();
            assert_eq!(l.check().is_ok(), ok, "{url}");
        }
        l.url = "ldap://dc1.example.test".into();
        l.starttls = true;
        assert!(l.check().is_ok() && l.protected() && !l.plain_to_network());
        l.starttls = false;
        l.allow_plain_ldap = true;
        assert!(l.check().is_ok() && !l.protected() && l.plain_to_network());
        l.url = "ldapi://%2Frun%2Fldapi".into();
        assert!(l.protected());
        l.starttls = true;
        assert_eq!(l.check().unwrap_err().key, "ldap.starttls");
    }

    #[test]
    fn the_bind_password_comes_from_the_systemd_credential_under_systemd() {
        let creds = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join("bind_password"), "from-systemd\n").unwrap();
        let by_hand = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(by_hand.path(), "from-file").unwrap();
        let mut l = LdapConfig {
            bind_password_credential: Some("bind_password".into()),
            ..ldap_config("ldap://x")
        };
        assert_eq!(
            l.password_with(Some(creds.path().to_owned())).unwrap(),
            "from-systemd"
        );
        let outside = l.password_with(None).unwrap_err();
        assert_eq!(outside.key, "ldap.bind_password_credential");
        l.bind_password_file = Some(by_hand.path().to_owned());
        assert_eq!(
            l.password_with(None).unwrap(),
            "from-file",
            "by hand: the file"
        );
        assert_eq!(
            l.password_with(Some(creds.path().to_owned())).unwrap(),
            "from-systemd"
        );
        let missing = l
            .password_with(Some(tempfile::tempdir().unwrap().path().to_owned()))
            .unwrap_err();
        assert!(
            missing.fix.contains("LoadCredential=bind_password:"),
            "{missing}"
        );
    }
}
