//! Finding the directory's servers in DNS SRV records (RFC 2782), the way Windows clients
//! find domain controllers: `_ldap._tcp.dc._msdcs.DOMAIN` for Active Directory (or the site's
//! `_ldap._tcp.SITE._sites.dc._msdcs.DOMAIN`, falling back to the domain's), `_ldap._tcp.DOMAIN`
//! otherwise.
//!
//! The order is deterministic (priority, then heavier weight first, then name) rather than
//! weighted-random as RFC 2782 suggests for load sharing: every bridge process must prefer
//! the same server, so that writes from all of them serialize on one (see `estate`).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;

/// What to look up (`[ldap] discover`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub domain: String,
    /// Active Directory's records (`dc._msdcs`) rather than the plain `_ldap._tcp`.
    pub active_directory: bool,
    pub site: Option<String>,
    /// Ask this DNS server instead of the system's resolvers.
    pub dns_server: Option<SocketAddr>,
    /// `ldaps` connects to `ldaps_port` on each server found (SRV records name the plain
    /// LDAP port); `ldap` to the port the record names.
    pub ldaps: bool,
    pub ldaps_port: u16,
}

/// A server found: its URL (by host name, so TLS checks the certificate against it) and the
/// addresses DNS gave for the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub url: String,
    pub addrs: Vec<SocketAddr>,
}

/// The shortest and longest time a discovery answer is kept.
const MIN_TTL: Duration = Duration::from_secs(5);
const MAX_TTL: Duration = Duration::from_secs(3600);

/// Most servers taken from one answer (a domain with more DCs than this lists the best ones).
const MAX_SERVERS: usize = 32;

impl Discovery {
    /// The SRV names to ask, in order: the site's first, then the domain's.
    pub fn names(&self) -> Vec<String> {
        let domain = self.domain.trim_end_matches('.');
        if !self.active_directory {
            return vec![format!("_ldap._tcp.{domain}.")];
        }
        let mut names = Vec::new();
        if let Some(site) = &self.site {
            names.push(format!("_ldap._tcp.{site}._sites.dc._msdcs.{domain}."));
        }
        names.push(format!("_ldap._tcp.dc._msdcs.{domain}."));
        names
    }

    fn resolver(&self) -> Result<TokioResolver, String> {
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        let builder = match self.dns_server {
            Some(addr) => TokioResolver::builder_with_config(
                ResolverConfig::from_parts(
                    None,
                    Vec::new(),
                    NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true),
                ),
                TokioConnectionProvider::default(),
            ),
            None => TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?,
        };
        Ok(builder.with_options(opts).build())
    }
}

/// The servers DNS names now, in order of preference, and how long the answer holds.
pub async fn lookup(d: &Discovery) -> Result<(Vec<Found>, Duration), String> {
    let resolver = d.resolver()?;
    let mut last_error = String::new();
    for name in d.names() {
        let srv = match resolver.srv_lookup(name.as_str()).await {
            Ok(srv) => srv,
            Err(e) => {
                last_error = format!("{name}: {e}");
                continue;
            }
        };
        let mut valid_until = srv.as_lookup().valid_until();
        let mut records: Vec<_> = srv
            .iter()
            .map(|r| {
                (
                    r.priority(),
                    std::cmp::Reverse(r.weight()),
                    r.target()
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                    r.port(),
                )
            })
            .filter(|(_, _, target, _)| !target.is_empty())
            .collect();
        records.sort();
        records.dedup_by(|a, b| a.2 == b.2 && a.3 == b.3);
        records.truncate(MAX_SERVERS);
        let mut found = Vec::with_capacity(records.len());
        for (_, _, host, port) in records {
            let port = if d.ldaps { d.ldaps_port } else { port };
            let ips: Vec<IpAddr> = match resolver.lookup_ip(format!("{host}.")).await {
                Ok(ips) => {
                    valid_until = valid_until.min(ips.valid_until());
                    ips.iter().collect()
                }
                Err(e) => {
                    last_error = format!("{host}: {e}");
                    continue;
                }
            };
            let scheme = if d.ldaps { "ldaps" } else { "ldap" };
            found.push(Found {
                url: format!("{scheme}://{host}:{port}"),
                addrs: ips
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect(),
            });
        }
        if !found.is_empty() {
            let ttl = valid_until
                .saturating_duration_since(Instant::now())
                .clamp(MIN_TTL, MAX_TTL);
            return Ok((found, ttl));
        }
    }
    Err(format!(
        "no directory server found in DNS ({last_error}); check ldap.discover.domain (and site, dns_server)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discovery(ad: bool, site: Option<&str>) -> Discovery {
        Discovery {
            domain: "example.test".into(),
            active_directory: ad,
            site: site.map(str::to_owned),
            dns_server: None,
            ldaps: false,
            ldaps_port: 636,
        }
    }

    #[test]
    fn active_directory_asks_the_sites_records_before_the_domains() {
        assert_eq!(
            discovery(true, Some("Berlin")).names(),
            [
                "_ldap._tcp.Berlin._sites.dc._msdcs.example.test.",
                "_ldap._tcp.dc._msdcs.example.test."
            ]
        );
        assert_eq!(discovery(false, None).names(), ["_ldap._tcp.example.test."]);
    }
}
