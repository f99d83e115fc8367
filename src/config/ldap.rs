//! `[ldap]` and `[directory]`: which servers to reach (listed or found in DNS), how to bind, and
//! the dialect.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use crate::directory::DirectoryKind;

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

impl LdapConfig {
    /// The bind password, from `bind_password` or `bind_password_file` (one of them).
    pub fn password(&self) -> Result<String, ConfigError> {
        self.password_with(std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from))
    }

    /// The bind password, given systemd's credentials directory when there is one.
    pub(super) fn password_with(
        &self,
        credentials: Option<PathBuf>,
    ) -> Result<String, ConfigError> {
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
        self.check_servers()?;
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
    /// Exactly one way of naming the servers (url, urls, discover), each URL once and usable,
    /// at most 32, and discovered servers reached over TLS.
    fn check_servers(&self) -> Result<(), ConfigError> {
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
        Ok(())
    }

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
