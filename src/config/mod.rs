//! Configuration: a TOML file plus `SCIM2LDAP_*` environment overrides (figment), parsed into
//! raw structs here and then into checked types by the modules that own them. Every error
//! names the config key and says how to fix it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

mod ldap;
mod limits;
mod resources;
mod safety;
mod server;
mod tenants;

pub use ldap::*;
pub use limits::*;
pub use resources::*;
pub use safety::*;
pub use server::*;
pub use tenants::*;

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
    /// The mass-removal safety valve.
    #[serde(default)]
    pub safety: SafetyConfig,
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

/// A config given as TOML text (no environment overrides): `init` checks what it writes.
pub fn parse_raw(text: &str) -> Result<RawConfig, ConfigError> {
    Figment::new()
        .merge(Toml::string(text))
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

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests;
