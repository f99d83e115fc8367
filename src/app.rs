//! Wiring: from a loaded config to a ready `AppState` (every check that can run without the
//! directory), and the directory checks `check-config` adds.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Authenticator;
use crate::cache::DnCache;
use crate::config::{ConfigError, DeleteMode, GroupsConfig, RawConfig, ServerConfig};
use crate::directory::ad::{active_directory, AdDialect};
use crate::directory::openldap::{open_ldap, OpenLdapDialect};
use crate::directory::pool::{LdapPool, LdapSettings};
use crate::directory::{Directory, DirectoryKind, Dn};
use crate::http::live::Live;
use crate::http::rate_limit::RateLimits;
use crate::http::{AppState, HttpSettings};
use crate::mapping::{Mapping, MappingSpec, ValueLimits};
use crate::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use crate::service::cursor::Cursors;
use crate::service::discovery::Discovery;
use crate::service::groups::Groups;
use crate::service::memberships::Memberships;
use crate::service::store::Store;
use crate::service::users::{UserSettings, Users};

pub struct App {
    pub state: Arc<AppState>,
    pub directory: Arc<dyn Directory>,
}

/// Builds the application. Connections are made lazily, so this fails only on config errors.
pub fn build(raw: &RawConfig) -> Result<App, ConfigError> {
    build_after(raw, None)
}

/// Builds the application that replaces `previous` on reload: it keeps what lives as long as
/// the process (the request slots, the tasks the shutdown drain waits for, and the settings
/// only a restart changes).
pub fn build_after(raw: &RawConfig, previous: Option<&AppState>) -> Result<App, ConfigError> {
    build_on(raw, previous, |d| d)
}

/// Builds the application over the directory `wrap` makes of the configured one (`explain`
/// puts a dry run in front of it).
pub fn build_on(
    raw: &RawConfig,
    previous: Option<&AppState>,
    wrap: impl FnOnce(Arc<dyn Directory>) -> Arc<dyn Directory>,
) -> Result<App, ConfigError> {
    raw.log.checked()?;
    raw.ldap.check()?;
    check_dn(&raw.users.container, "users.container")?;
    if raw.users.delete_mode == DeleteMode::Archive {
        match &raw.users.archive_container {
            None => {
                return Err(ConfigError::new(
                    "users.archive_container",
                    "delete_mode is \"archive\" but no archive container is set",
                    "set archive_container = \"ou=archive,dc=example,dc=org\" (an existing OU), or delete_mode = \"delete\"",
                ))
            }
            Some(a) => check_dn(a, "users.archive_container")?,
        }
    }
    if raw.repair.searches_per_second == 0 {
        return Err(ConfigError::new(
            "repair.searches_per_second",
            "must be at least 1: the repair sweep reads at a bounded rate",
            "e.g. 10 (the default)",
        ));
    }
    if raw.server.max_results == 0 {
        return Err(ConfigError::new(
            "server.max_results",
            "must be at least 1",
            "e.g. 200",
        ));
    }
    let limits = raw.limits.limits()?;
    let value_limits = ValueLimits::from_config(&raw.limits, raw.directory.kind)?;
    let mut mapping = Mapping::from_config(&raw.users, value_limits, &USER_RESOURCE)?;
    if raw.roles.is_some() {
        mapping.served_elsewhere.push("roles");
    }
    for (i, attr) in raw.users.match_on.iter().enumerate() {
        if !mapping
            .attrs
            .iter()
            .any(|m| m.ldap.eq_ignore_ascii_case(attr))
        {
            return Err(ConfigError::new(
                format!("users.match_on[{i}]"),
                format!("`{attr}` is not mapped under [users.attributes]"),
                "name LDAP attributes the mapping fills, e.g. \"mail\" or \"employeeNumber\"",
            ));
        }
    }
    check_passwords(raw, &mapping)?;
    if raw.ldap.plain_to_network() {
        tracing::warn!(
            servers = %raw.ldap.describe(),
            "ldap.allow_plain_ldap: the bind password and every value cross the network in clear; use ldaps:// or StartTLS"
        );
    }
    check_isolation(raw)?;
    let mapping = Arc::new(mapping);
    let auth = Arc::new(Authenticator::from_config(raw)?);
    if let Some(u) = &raw.server.public_url {
        url::Url::parse(u).map_err(|e| {
            ConfigError::new(
                "server.public_url",
                format!("not an absolute URL ({e})"),
                "e.g. \"https://scim.example.org/scim/v2\"",
            )
        })?;
    }
    let directory = wrap(make_directory(raw)?);
    let cache = DnCache::new(
        raw.cache.max_entries,
        Duration::from_secs(raw.cache.ttl_secs.max(1)),
    );
    if let Some(r) = &raw.roles {
        check_dn(&r.container, "roles.container")?;
        if raw.groups.is_none() {
            return Err(ConfigError::new(
                "roles.container",
                "roles as group memberships need [groups] (their classes and member attribute)",
                "add a [groups] section, or store roles in an attribute: roles = \"businessCategory\" under [users.attributes]",
            ));
        }
        if raw
            .users
            .attributes
            .keys()
            .any(|k| k.to_ascii_lowercase().starts_with("roles"))
        {
            return Err(ConfigError::new(
                "roles.container",
                "roles are both group memberships ([roles]) and an attribute (users.attributes.roles)",
                "keep one: remove [roles] or the roles line under [users.attributes]",
            ));
        }
    }
    let (groups, memberships) = match &raw.groups {
        None => (None, None),
        Some(g) => {
            let (groups, memberships) = build_groups(g, raw, value_limits, &directory, &cache)?;
            (Some(groups), Some(memberships))
        }
    };
    let member_of: Vec<&str> = memberships
        .as_ref()
        .and_then(|m: &Arc<Memberships>| m.member_of_attr.as_deref())
        .into_iter()
        .collect();
    let user_store = Arc::new(Store::new(
        directory.clone(),
        mapping.clone(),
        cache,
        &member_of,
        "User",
        "Users",
    ));
    let cursors = Arc::new(Cursors::new(
        raw.limits.cursors()?,
        raw.server.cursor_key()?,
    ));
    let users = Users::new(
        user_store.clone(),
        UserSettings {
            delete_mode: raw.users.delete_mode,
            archive_container: raw.users.archive_container.as_deref().map(Dn::new),
            max_results: raw.server.max_results,
            limits,
            match_on: raw.users.match_on.clone(),
            on_existing: raw.users.on_existing,
            password: raw.users.password,
        },
        memberships.clone(),
        cursors.clone(),
    );
    let groups = match (groups, memberships) {
        (Some(store), Some(m)) => Some(Groups::new(
            store,
            user_store,
            m,
            raw.server.max_results,
            limits,
            cursors.clone(),
            match raw.users.delete_mode {
                DeleteMode::Archive => raw.users.archive_container.as_deref().map(Dn::new),
                DeleteMode::Delete => None,
            },
        )),
        _ => None,
    };
    let discovery = Discovery::new(
        &mapping,
        groups.as_ref().map(|g| g.mapping()),
        raw.server.max_results,
        raw.server.max_body_bytes,
        cursors.settings(),
    );
    let mut http = http_settings(&raw.server, raw.ldap.pool_size)?;
    if let Some(p) = previous {
        http.listen = p.http.listen;
        http.max_connections = p.http.max_connections;
        http.configured_max_connections = p.http.configured_max_connections;
        http.max_concurrent_requests = p.http.max_concurrent_requests;
        http.shutdown_drain = p.http.shutdown_drain;
    }
    let rate_limits = RateLimits::from_config(raw.server.rate_limit, &raw.tenants)?;
    let state = Arc::new(AppState {
        users,
        groups,
        auth,
        discovery,
        public_url: raw.server.public_url.clone(),
        max_body_bytes: raw.server.max_body_bytes,
        trust_forwarded: raw.server.trust_forwarded_headers,
        limits,
        tenant_slots: match previous {
            Some(p) => p.tenant_slots.clone(),
            None => crate::http::fair::FairSlots::new(http.max_concurrent_requests),
        },
        request_slots: match previous {
            Some(p) => p.request_slots.clone(),
            None => Arc::new(tokio::sync::Semaphore::new(http.max_concurrent_requests)),
        },
        http,
        tasks: previous.map(|p| p.tasks.clone()).unwrap_or_default(),
        recent_creates: previous
            .map(|p| p.recent_creates.clone())
            .unwrap_or_default(),
        journal: previous.map(|p| p.journal.clone()).unwrap_or_default(),
        rate_limits,
        directory: directory.clone(),
        audit: auditor(&raw.audit)?,
        log_level: raw.log.level.clone(),
        metrics_listen: match previous {
            Some(p) => p.metrics_listen,
            None => raw.metrics.enabled.then_some(raw.metrics.listen),
        },
        readiness: tokio::sync::Mutex::new(None),
        repair: raw.repair,
    });
    Ok(App { state, directory })
}

/// Whether two DNs are the same entry or one lies below the other.
fn overlap(a: &str, b: &str) -> bool {
    use crate::directory::filter::is_under;
    crate::directory::Dn::new(a) == crate::directory::Dn::new(b) || is_under(a, b) || is_under(b, a)
}

/// Each tenant sees and touches only its own part of the directory: no container of one
/// tenant (users, groups, role groups) may be, hold or lie in another tenant's, the shared
/// archive lies in none of them and holds none (an archived account must never be a live
/// one, and a search of the archive must never reach live accounts), and a tenant's default
/// group is one of its own groups.
fn check_isolation(raw: &RawConfig) -> Result<(), ConfigError> {
    struct Part<'a> {
        tenant: &'a str,
        key: String,
        dn: &'a str,
    }
    let mut parts: Vec<Part> = Vec::new();
    for (name, t) in &raw.tenants {
        let groups = t
            .groups_container
            .as_deref()
            .or(raw.groups.as_ref().map(|g| g.container.as_str()));
        let roles = t
            .roles_container
            .as_deref()
            .or(raw.roles.as_ref().map(|r| r.container.as_str()));
        let mine = [
            (
                "users_container",
                Some(t.users_container.as_deref().unwrap_or(&raw.users.container)),
            ),
            ("groups_container", groups),
            ("roles_container", roles),
        ];
        for (what, dn) in mine {
            if let Some(dn) = dn {
                parts.push(Part {
                    tenant: name,
                    key: format!("tenants.{name}.{what}"),
                    dn,
                });
            }
        }
        if let (Some(group), Some(container)) = (&t.default_group, groups) {
            if !crate::directory::filter::is_under(group, container) {
                return Err(ConfigError::new(
                    format!("tenants.{name}.default_group"),
                    format!("{group} is not one of tenant {name}'s groups (under {container})"),
                    "name a group under the tenant's groups container",
                ));
            }
        }
    }
    for (i, a) in parts.iter().enumerate() {
        for b in parts.iter().take(i) {
            if a.tenant != b.tenant && overlap(a.dn, b.dn) {
                return Err(ConfigError::new(
                    &a.key,
                    format!(
                        "{} overlaps {} ({}): tenant {} would see or change tenant {}'s entries",
                        a.dn, b.dn, b.key, a.tenant, b.tenant
                    ),
                    format!(
                        "give each tenant its own OUs, e.g. {} = \"ou={},…\" (unset, a tenant takes users.container / groups.container / roles.container)",
                        a.key, a.tenant
                    ),
                ));
            }
        }
    }
    if let Some(archive) = &raw.users.archive_container {
        if let Some(p) = parts.iter().find(|p| overlap(archive, p.dn)) {
            return Err(ConfigError::new(
                "users.archive_container",
                format!(
                    "{archive} overlaps {} ({}): archived accounts would be live ones, or live ones archived",
                    p.dn, p.key
                ),
                "use an OU of its own for the archive, beside the tenants' containers",
            ));
        }
    }
    Ok(())
}

/// The LDAP attribute `users.attributes.password` names, if any.
fn password_attribute(raw: &RawConfig) -> Option<&str> {
    raw.users
        .attributes
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("password"))
        .map(|(_, spec)| match spec {
            crate::config::AttrSpec::Ldap(l) => l.as_str(),
            crate::config::AttrSpec::Full(f) => f.ldap.as_str(),
        })
}

/// Passwords go where and how the directory expects them, and never in clear: a mapped
/// password needs TLS or ldapi:// to the directory, the attribute its dialect sets, and no
/// `users.password = "ignore"` beside it.
fn check_passwords(raw: &RawConfig, mapping: &Mapping) -> Result<(), ConfigError> {
    use crate::config::UnmappedPassword;
    use crate::directory::PasswordStorage;
    let kind = raw.directory.kind;
    if kind == DirectoryKind::ActiveDirectory && raw.users.password_hash != PasswordStorage::Server
    {
        return Err(ConfigError::new(
            "users.password_hash",
            "Active Directory hashes passwords itself (unicodePwd)",
            "remove users.password_hash: it applies to OpenLDAP only",
        ));
    }
    let Some(attr) = mapping.password_attr() else {
        return Ok(());
    };
    let key = "users.attributes.password";
    if raw.users.password == UnmappedPassword::Ignore {
        return Err(ConfigError::new(
            "users.password",
            "\"ignore\" while users.attributes.password maps passwords",
            "keep one: remove users.password = \"ignore\" to store passwords, or the password mapping to drop them",
        ));
    }
    let expected = match (kind, raw.users.password_hash) {
        (DirectoryKind::ActiveDirectory, _) => Some("unicodePwd"),
        (DirectoryKind::Openldap, PasswordStorage::Server) => Some("userPassword"),
        (DirectoryKind::Openldap, _) => None,
    };
    if let Some(want) = expected.filter(|w| !attr.eq_ignore_ascii_case(w)) {
        return Err(ConfigError::new(
            key,
            format!("passwords are set as the directory expects, which stores them in {want}, not {attr}"),
            format!("map password = \"{want}\" (on OpenLDAP, users.password_hash = \"ssha512\" or \"argon2\" stores a hash made here in another attribute)"),
        ));
    }
    if !raw.ldap.protected() {
        return Err(ConfigError::new(
            "ldap.url",
            format!(
                "{} is not encrypted, and {key} maps passwords: they would reach the directory in clear",
                raw.ldap.describe()
            ),
            "use ldaps://, ldap:// with ldap.starttls = true, or ldapi:// (a local slapd's socket); or set users.password = \"ignore\" and remove the password mapping",
        ));
    }
    Ok(())
}

/// The configured directory: its connection pool and dialect.
fn make_directory(raw: &RawConfig) -> Result<Arc<dyn Directory>, ConfigError> {
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
                },
            ))
        }
    })
}

/// Reads the config at `path` again and, when all of it is valid, makes it current: mapping,
/// tenants, tokens, OAuth issuers, limits, timeouts, TLS certificate, directory settings.
/// Requests in flight finish under the config they started with. A config with any error is
/// refused whole and the running one stays. Returns the keys that changed but take effect
/// only after a restart. Blocking (files, TLS keys): call it off the async workers.
pub fn reload(path: &std::path::Path, live: &Live) -> Result<Vec<&'static str>, ConfigError> {
    let raw = crate::config::load_raw(path)?;
    let running = live.current();
    let was = &running.state.http;
    let next = build_after(&raw, Some(&running.state))?;
    let mut restart = Vec::new();
    let asked = &raw.server;
    if asked.listen != was.listen {
        restart.push("server.listen");
    }
    if asked.max_connections != was.configured_max_connections {
        restart.push("server.max_connections");
    }
    if asked.max_concurrent_requests != was.max_concurrent_requests {
        restart.push("server.max_concurrent_requests");
    }
    if Duration::from_secs(asked.shutdown_drain_secs) != was.shutdown_drain {
        restart.push("server.shutdown_drain_secs");
    }
    if raw.metrics.enabled.then_some(raw.metrics.listen) != running.state.metrics_listen {
        restart.push("metrics.listen");
    }
    if let Some(journal) = running.state.journal.get() {
        if journal.dir() != asked.journal_dir {
            restart.push("server.journal_dir");
        }
    }
    let old = live.replace(next.state);
    // the token uses the old generation noted since its last write are not lost
    old.state.auth.flush_usage();
    Ok(restart)
}

/// `[audit]`: a file opened now (so that one the service cannot write fails at start), or the
/// log.
fn auditor(cfg: &crate::config::AuditConfig) -> Result<crate::audit::Auditor, ConfigError> {
    if cfg.off {
        return Ok(crate::audit::Auditor::off());
    }
    match &cfg.file {
        None => Ok(crate::audit::Auditor::to_log()),
        Some(path) => crate::audit::Auditor::to_file(path.clone()).map_err(|e| {
            ConfigError::new(
                "audit.file",
                format!("cannot open {} to append audit records: {e}", path.display()),
                "name a file in a directory the service user may write (e.g. /var/log/scim2ldap/audit.log), or remove the key to audit to the log",
            )
        }),
    }
}

/// Files the process needs besides client connections: the LDAP pool, the listener, logs,
/// TLS and config files, the runtime's own descriptors.
const RESERVED_FILES: u64 = 64;

/// hyper's read buffer at least this large, so that a request head of up to 128 KiB (a long
/// URL, a large header) still gets a SCIM 414/431 from `bounded_head`.
const MIN_HEAD_BUFFER: usize = 128 * 1024;

/// The front door's settings from `[server]`, checked: every timeout and cap positive, the
/// connection cap within the open-file limit, TLS loaded, plain HTTP only where safe.
fn http_settings(s: &ServerConfig, pool_size: usize) -> Result<HttpSettings, ConfigError> {
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
    let mut max_connections = positive("max_connections", s.max_connections as u64)? as usize;
    if let Some(files) = crate::http::server::open_file_limit() {
        let room = files
            .saturating_sub(RESERVED_FILES + pool_size as u64)
            .max(1) as usize;
        if room < max_connections {
            tracing::warn!(
                max_connections = room,
                configured = s.max_connections,
                open_file_limit = files,
                "server.max_connections lowered to fit the open-file limit (raise LimitNOFILE)"
            );
            max_connections = room;
        }
    }
    let tls = match &s.tls {
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
            None
        }
        Some(t) => Some(Arc::new(
            crate::http::server::tls_config(&t.cert_file, &t.key_file).map_err(|(key, e)| {
                ConfigError::new(
                    key,
                    e,
                    "point cert_file at the PEM certificate chain and key_file at its PEM private key",
                )
            })?,
        )),
    };
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

/// The groups store and the membership rules, from `[groups]`.
fn build_groups(
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
        "Group",
        "Groups",
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
    });
    Ok((store, memberships))
}

fn check_dn(dn: &str, key: &str) -> Result<(), ConfigError> {
    let ok = !dn.trim().is_empty()
        && crate::directory::filter::split_dn(dn).iter().all(|rdn| {
            rdn.split_once('=')
                .is_some_and(|(a, v)| !a.trim().is_empty() && !v.trim().is_empty())
        });
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("\"{dn}\" is not a DN"),
            "write it as attribute=value pairs separated by commas, e.g. \"ou=people,dc=example,dc=org\"",
        ))
    }
}

/// What `check-config` verifies against the live directory: the bind works, the containers
/// exist, and the schema knows every object class and attribute the mapping names.
pub async fn check_directory(app: &App, raw: &RawConfig) -> Vec<ConfigError> {
    let dir = &app.directory;
    let mut problems = Vec::new();
    if let Err(e) = dir.check_servers().await {
        problems.push(ConfigError::new(
            "ldap.discover",
            e,
            "check the domain's SRV records, or list the servers in ldap.urls",
        ));
        return problems;
    }
    // every server, not only the first: a failover must not find a wrong password or CA
    let servers = dir.estate().servers;
    for (i, server) in servers.iter().enumerate() {
        if let Err(e) = dir.check_server(&server.url).await {
            let key = match (&raw.ldap.discover, servers.len()) {
                (Some(_), _) => "ldap.discover".to_owned(),
                (None, 1) if !raw.ldap.url.is_empty() => "ldap.url".to_owned(),
                (None, _) => format!("ldap.urls[{i}]"),
            };
            problems.push(ConfigError::new(
                key,
                format!("cannot reach or bind to {}: {e}", server.url),
                "check the server's address, ldap.bind_dn and the bind password (and ldap.ca_file for TLS)",
            ));
        }
    }
    if !problems.is_empty() {
        return problems;
    }
    if let Err(e) = dir.ping().await {
        problems.push(ConfigError::new(
            "ldap.url",
            format!("cannot reach or bind to the directory: {e}"),
            "check ldap.url, ldap.bind_dn and the bind password (and ldap.ca_file for TLS)",
        ));
        return problems;
    }
    let mut containers = vec![("users.container".to_owned(), raw.users.container.clone())];
    if let (DeleteMode::Archive, Some(a)) = (raw.users.delete_mode, &raw.users.archive_container) {
        containers.push(("users.archive_container".to_owned(), a.clone()));
    }
    if let Some(g) = &raw.groups {
        containers.push(("groups.container".to_owned(), g.container.clone()));
    }
    for (name, t) in &raw.tenants {
        if let Some(c) = &t.users_container {
            containers.push((format!("tenants.{name}.users_container"), c.clone()));
        }
        if let Some(c) = &t.groups_container {
            containers.push((format!("tenants.{name}.groups_container"), c.clone()));
        }
        if let Some(d) = &t.default_group {
            containers.push((format!("tenants.{name}.default_group"), d.clone()));
        }
    }
    for (key, dn) in containers {
        match dir.read(&Dn::new(dn.as_str()), &["objectClass"]).await {
            Ok(Some(_)) => {}
            Ok(None) => problems.push(ConfigError::new(
                key,
                format!("{dn} does not exist in the directory"),
                "create it (e.g. an organizationalUnit) or correct the DN",
            )),
            Err(e) => problems.push(ConfigError::new(
                key,
                format!("cannot read {dn}: {e}"),
                "check the bind account's read rights",
            )),
        }
    }
    let exop_passwords = raw.directory.kind == DirectoryKind::Openldap
        && raw.users.password_hash == crate::directory::PasswordStorage::Server
        && password_attribute(raw).is_some();
    if exop_passwords {
        const PASSWORD_MODIFY: &str = "1.3.6.1.4.1.4203.1.11.1";
        match dir.supports_extension(PASSWORD_MODIFY).await {
            Ok(true) => {}
            Ok(false) => problems.push(ConfigError::new(
                "users.password_hash",
                "the directory does not offer the Password Modify extended operation (RFC 3062) that \"server\" uses",
                "set users.password_hash = \"ssha512\" or \"argon2\", whichever scheme the directory verifies",
            )),
            Err(e) => problems.push(ConfigError::new(
                "ldap.bind_dn",
                format!("cannot read the root DSE: {e}"),
                "allow the bind account to read the root DSE",
            )),
        }
    }
    match dir.schema_names().await {
        Ok((classes, attributes)) => {
            let group_classes = raw.groups.iter().flat_map(|g| {
                g.object_classes
                    .iter()
                    .map(|c| ("groups.object_classes", c))
            });
            let user_classes = raw
                .users
                .object_classes
                .iter()
                .map(|c| ("users.object_classes", c));
            for (key, oc) in user_classes.chain(group_classes) {
                if !classes.contains(&oc.to_ascii_lowercase()) {
                    problems.push(ConfigError::new(
                        key,
                        format!("the directory schema has no object class `{oc}`"),
                        "load the schema that defines it (for scim2ldapPerson: deploy/openldap/scim2ldap.ldif) or remove it",
                    ));
                }
            }
            let mapping = ValueLimits::from_config(&raw.limits, raw.directory.kind)
                .and_then(|l| Mapping::from_config(&raw.users, l, &USER_RESOURCE));
            if let Ok(mapping) = mapping {
                for m in &mapping.attrs {
                    let country_name = match &m.kind {
                        crate::mapping::ValueKind::Country { name_attr } => name_attr.as_deref(),
                        _ => None,
                    };
                    for ldap in std::iter::once(m.ldap.as_str()).chain(country_name) {
                        if !attributes.contains(&ldap.to_ascii_lowercase()) {
                            problems.push(ConfigError::new(
                                format!("users.attributes.\"{}\"", m.scim),
                                format!("the directory schema has no attribute `{ldap}`"),
                                "correct the attribute name or load the schema that defines it",
                            ));
                        }
                    }
                }
            }
        }
        Err(e) => problems.push(ConfigError::new(
            "ldap.bind_dn",
            format!("cannot read the directory schema: {e}"),
            "allow the bind account to read cn=Subschema",
        )),
    }
    problems
}

/// One recovery pass over the write journal with the current config (see
/// `service::recovery`): plans that stopped bridges left unfinished are finished or undone.
pub async fn recover(state: &AppState) -> crate::service::recovery::Summary {
    let Some(journal) = state.journal.get() else {
        return Default::default();
    };
    let auth = state.auth.clone();
    let tenant = move |name: &str| auth.tenant(name);
    crate::service::recovery::Recovery {
        dir: state.directory.as_ref(),
        journal,
        groups: state.groups.as_ref(),
        recent: &state.recent_creates,
        audit: &state.audit,
        tenant: &tenant,
    }
    .run()
    .await
}

/// One repair sweep over `tenant` with the current config (see `service::repair`); with
/// `dry_run`, it only reports. `searches_per_second` overrides `[repair]`'s.
pub async fn repair(
    state: &AppState,
    tenant: &str,
    dry_run: bool,
    searches_per_second: Option<u32>,
) -> Result<crate::service::repair::Report, RepairError> {
    let tenant = state
        .auth
        .tenant(tenant)
        .ok_or_else(|| RepairError::NoTenant(tenant.to_owned()))?;
    crate::service::repair::Repair {
        dir: state.directory.as_ref(),
        users: &state.users,
        groups: state.groups.as_ref(),
        audit: &state.audit,
        searches_per_second: searches_per_second.unwrap_or(state.repair.searches_per_second),
    }
    .run(&tenant, dry_run)
    .await
    .map_err(RepairError::Directory)
}

/// Why a repair sweep could not run.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("no tenant \"{0}\" in the config (tenants.NAME)")]
    NoTenant(String),
    #[error("{0}")]
    Directory(crate::directory::DirectoryError),
}

/// The tenants' names.
pub fn tenant_names(state: &AppState) -> Vec<String> {
    state.auth.tenant_names()
}
