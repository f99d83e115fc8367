//! The pieces a config builds: the directory for its dialect, the HTTP settings, the groups
//! service.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::DnCache;
use crate::config::{ConfigError, DeleteMode, GroupsConfig, RawConfig, ServerConfig};
use crate::directory::ad::{active_directory, AdDialect};
use crate::directory::openldap::{open_ldap, OpenLdapDialect};
use crate::directory::pool::{LdapPool, LdapSettings};
use crate::directory::{Directory, DirectoryKind};
use crate::http::HttpSettings;
use crate::mapping::{Mapping, MappingSpec, ValueLimits};
use crate::scim::schema::GROUP_RESOURCE;
use crate::service::memberships::Memberships;
use crate::service::store::Store;

use super::checks::{check_dn, password_attribute};

/// The configured directory: its connection pool and dialect.
pub(super) fn make_directory(raw: &RawConfig) -> Result<Arc<dyn Directory>, ConfigError> {
    let settings = LdapSettings {
        urls: raw
            .ldap
            .servers()
            .into_iter()
            .map(|(_, u)| u.to_owned())
            .collect(),
        discover: raw
            .ldap
            .discover
            .as_ref()
            .map(|d| d.to_discovery(raw.directory.kind))
            .transpose()?,
        health_interval: Duration::from_secs(raw.ldap.health_interval_secs.max(1)),
        failback_after: Duration::from_secs(raw.ldap.failback_after_secs),
        bind_dn: raw.ldap.bind_dn.clone(),
        bind_password: raw.ldap.password()?,
        starttls: raw.ldap.starttls,
        ca_file: raw.ldap.ca_file.clone(),
        connect_timeout: Duration::from_secs(raw.ldap.connect_timeout_secs.max(1)),
        operation_timeout: Duration::from_secs(raw.ldap.operation_timeout_secs.max(1)),
        pool_size: raw.ldap.pool_size,
    };
    let pool = LdapPool::new(settings).map_err(|e| {
        ConfigError::new(
            "ldap.ca_file",
            e,
            "point it at a readable PEM file with the CA certificate",
        )
    })?;
    Ok(match raw.directory.kind {
        DirectoryKind::Openldap => Arc::new(open_ldap(
            pool,
            OpenLdapDialect {
                password: raw.users.password_hash,
                password_attr: password_attribute(raw).unwrap_or("userPassword").to_owned(),
            },
        )),
        DirectoryKind::ActiveDirectory => {
            if raw.directory.range_step == 0 {
                return Err(ConfigError::new(
                    "directory.range_step",
                    "must be at least 1",
                    "e.g. 1500",
                ));
            }
            Arc::new(active_directory(
                pool,
                AdDialect {
                    range_step: raw.directory.range_step,
                    random_passwords: raw.directory.random_passwords,
                    archive: match raw.users.delete_mode {
                        DeleteMode::Archive => raw.users.archive_container.clone(),
                        DeleteMode::Delete => None,
                    },
                    sam_derived: derives_sam(raw),
                },
            ))
        }
    })
}

/// Whether a user's sAMAccountName comes from `[users.derive]` alone (no SCIM attribute maps
/// it).
fn derives_sam(raw: &RawConfig) -> bool {
    let is_sam = |a: &str| a.eq_ignore_ascii_case("sAMAccountName");
    let mapped = raw.users.attributes.values().any(|spec| match spec {
        crate::config::AttrSpec::Ldap(a) => is_sam(a),
        crate::config::AttrSpec::Full(f) => is_sam(&f.ldap),
    });
    raw.users.derive.keys().any(|k| is_sam(k)) && !mapped
}

/// Files the process needs besides client connections: the LDAP pool, the listener, logs,
/// TLS and config files, the runtime's own descriptors.
const RESERVED_FILES: u64 = 64;

/// hyper's read buffer at least this large, so that a request head of up to 128 KiB (a long
/// URL, a large header) still gets a SCIM 414/431 from `bounded_head`.
const MIN_HEAD_BUFFER: usize = 128 * 1024;

/// The front door's settings from `[server]`, checked: every timeout and cap positive, the
/// connection cap within the open-file limit, TLS loaded, plain HTTP only where safe.
pub(super) fn http_settings(
    s: &ServerConfig,
    pool_size: usize,
) -> Result<HttpSettings, ConfigError> {
    let positive = |key: &str, v: u64| {
        if v == 0 {
            Err(ConfigError::new(
                format!("server.{key}"),
                "must be at least 1",
                "see config.example.toml for the defaults",
            ))
        } else {
            Ok(v)
        }
    };
    let secs = |key: &str, v: u64| positive(key, v).map(Duration::from_secs);
    let request_timeout = secs("request_timeout_secs", s.request_timeout_secs)?;
    let idle_timeout = secs("idle_timeout_secs", s.idle_timeout_secs)?;
    if idle_timeout <= request_timeout {
        // the socket idles while a request is processed: it must outlast the request
        return Err(ConfigError::new(
            "server.idle_timeout_secs",
            format!(
                "{} s is not longer than request_timeout_secs ({} s)",
                s.idle_timeout_secs, s.request_timeout_secs
            ),
            "make idle_timeout_secs longer than request_timeout_secs, e.g. 60 and 30",
        ));
    }
    let max_connections = fit_open_files(
        positive("max_connections", s.max_connections as u64)? as usize,
        pool_size,
    );
    let tls = tls_settings(s)?;
    let max_uri_bytes = positive("max_uri_bytes", s.max_uri_bytes as u64)? as usize;
    let max_header_bytes = positive("max_header_bytes", s.max_header_bytes as u64)? as usize;
    Ok(HttpSettings {
        listen: s.listen,
        max_connections,
        configured_max_connections: s.max_connections,
        max_concurrent_requests: positive(
            "max_concurrent_requests",
            s.max_concurrent_requests as u64,
        )? as usize,
        worker_threads: s.workers()?.unwrap_or(0),
        queue_timeout: Duration::from_millis(s.queue_timeout_ms),
        header_read_timeout: secs("header_read_timeout_secs", s.header_read_timeout_secs)?,
        idle_timeout,
        body_read_timeout: secs("body_read_timeout_secs", s.body_read_timeout_secs)?,
        request_timeout,
        shutdown_drain: secs("shutdown_drain_secs", s.shutdown_drain_secs)?,
        max_uri_bytes,
        max_header_bytes,
        max_buf_size: (max_uri_bytes + max_header_bytes + 4096).max(MIN_HEAD_BUFFER),
        tls,
    })
}

/// `max_connections` lowered, with a warning, to what the open-file limit leaves beside
/// the LDAP pool and the process's own files.
fn fit_open_files(max_connections: usize, pool_size: usize) -> usize {
    let Some(files) = crate::http::server::open_file_limit() else {
        return max_connections;
    };
    let room = files
        .saturating_sub(RESERVED_FILES + pool_size as u64)
        .max(1) as usize;
    if room >= max_connections {
        return max_connections;
    }
    tracing::warn!(
        max_connections = room,
        configured = max_connections,
        open_file_limit = files,
        "server.max_connections lowered to fit the open-file limit (raise LimitNOFILE)"
    );
    room
}

/// `[server.tls]`, loaded; without it, plain HTTP only on loopback unless the admin says a
/// TLS proxy is in front (`allow_plain_http`).
fn tls_settings(s: &ServerConfig) -> Result<Option<Arc<rustls::ServerConfig>>, ConfigError> {
    match &s.tls {
        None => {
            if !s.listen.ip().is_loopback() && !s.allow_plain_http {
                return Err(ConfigError::new(
                    "server.listen",
                    format!(
                        "{} is not a loopback address and no [server.tls] is set: bearer tokens would cross the network in clear",
                        s.listen
                    ),
                    "set [server.tls] cert_file and key_file, or allow_plain_http = true when a TLS proxy on this host or network is in front",
                ));
            }
            Ok(None)
        }
        Some(t) => Ok(Some(Arc::new(
            crate::http::server::tls_config(&t.cert_file, &t.key_file).map_err(|(key, e)| {
                ConfigError::new(
                    key,
                    e,
                    "point cert_file at the PEM certificate chain and key_file at its PEM private key",
                )
            })?,
        ))),
    }
}

/// The groups store and the membership rules, from `[groups]`.
pub(super) fn build_groups(
    g: &GroupsConfig,
    raw: &RawConfig,
    value_limits: ValueLimits,
    directory: &Arc<dyn Directory>,
    cache: &DnCache,
) -> Result<(Arc<Store>, Arc<Memberships>), ConfigError> {
    check_dn(&g.container, "groups.container")?;
    if let Some(p) = &g.placeholder_member {
        check_dn(p, "groups.placeholder_member")?;
    }
    for (name, t) in &raw.tenants {
        if let Some(c) = &t.groups_container {
            check_dn(c, &format!("tenants.{name}.groups_container"))?;
        }
        if let Some(d) = &t.default_group {
            check_dn(d, &format!("tenants.{name}.default_group"))?;
        }
    }
    let mapping = Arc::new(Mapping::from_spec(
        &MappingSpec {
            section: "groups",
            object_classes: &g.object_classes,
            structural_class: g.structural_class.as_deref(),
            rdn: &g.rdn,
            rdn_fallbacks: &[],
            attributes: &g.attributes,
            derive: &g.derive,
            reject_unmapped: g.reject_unmapped,
            deactivate: None,
            required: "displayName",
            defaults: &g.defaults,
            limits: value_limits,
            default_type: None,
        },
        &GROUP_RESOURCE,
    )?);
    let store = Arc::new(Store::new(
        directory.clone(),
        mapping,
        cache.clone(),
        &[g.member_attribute.as_str()],
        crate::service::view::ResourceType::Group,
    ));
    let memberships = Arc::new(Memberships {
        roles: raw.roles.is_some(),
        groups: store.clone(),
        member_attr: g.member_attribute.clone(),
        placeholder: g
            .placeholder_member
            .as_deref()
            .map(crate::directory::Dn::new),
        member_of_attr: g.member_of_attribute.clone(),
        nested: g.nested,
        links_kept: directory.kind() == crate::directory::DirectoryKind::ActiveDirectory
            && g.member_attribute.eq_ignore_ascii_case("member"),
    });
    Ok((store, memberships))
}
