//! Wiring: from a loaded config to a ready `AppState` (every check that can run without the
//! directory), and the directory checks `check-config` adds.

mod checks;
mod parts;

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Authenticator;
use crate::cache::DnCache;
use crate::config::{ConfigError, DeleteMode, RawConfig};
use crate::directory::{Directory, Dn};
use crate::http::documents::Discovery;
use crate::http::live::Live;
use crate::http::rate_limit::RateLimits;
use crate::http::{AppState, HttpSettings};
use crate::mapping::{Mapping, ValueLimits};
use crate::scim::schema::USER_RESOURCE;
use crate::service::cursor::Cursors;
use crate::service::groups::Groups;
use crate::service::memberships::Memberships;
use crate::service::store::Store;
use crate::service::users::{UserSettings, Users};

pub use checks::check_directory;

use checks::{check_basics, check_isolation, check_match_on, check_passwords, check_roles};
use parts::{build_groups, http_settings, make_directory};

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
    check_basics(raw)?;
    let limits = raw.limits.limits()?;
    let value_limits = ValueLimits::from_config(&raw.limits, raw.directory.kind)?;
    let mapping = user_mapping(raw, value_limits)?;
    if raw.ldap.plain_to_network() {
        tracing::warn!(
            servers = %raw.ldap.describe(),
            "ldap.allow_plain_ldap: the bind password and every value cross the network in clear; use ldaps:// or StartTLS"
        );
    }
    check_isolation(raw)?;
    let mapping = Arc::new(mapping);
    let auth = Arc::new(Authenticator::from_config(raw)?);
    check_public_url(raw)?;
    let directory = wrap(make_directory(raw)?);
    let cache = DnCache::new(
        raw.cache.max_entries,
        Duration::from_secs(raw.cache.ttl_secs.max(1)),
    );
    check_roles(raw)?;
    // the valve's counts live as long as the process: a reload keeps them
    let safety = previous.map_or_else(
        || crate::safety::Valve::shared(&raw.server.token_store),
        |p| p.safety.clone(),
    );
    let (users, groups, discovery) = services(
        raw,
        &directory,
        &mapping,
        cache,
        limits,
        value_limits,
        safety.clone(),
    )?;
    let http = http_after(raw, previous)?;
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
        safety,
    });
    Ok(App { state, directory })
}

/// The users' mapping, checked against the rest of the config.
fn user_mapping(raw: &RawConfig, value_limits: ValueLimits) -> Result<Mapping, ConfigError> {
    let mut mapping = Mapping::from_config(&raw.users, value_limits, &USER_RESOURCE)?;
    if raw.roles.is_some() {
        mapping.served_elsewhere.push("roles");
    }
    check_match_on(raw, &mapping)?;
    check_passwords(raw, &mapping)?;
    Ok(mapping)
}

/// `server.public_url`, when set, is an absolute URL.
fn check_public_url(raw: &RawConfig) -> Result<(), ConfigError> {
    if let Some(u) = &raw.server.public_url {
        url::Url::parse(u).map_err(|e| {
            ConfigError::new(
                "server.public_url",
                format!("not an absolute URL ({e})"),
                "e.g. \"https://scim.example.org/scim/v2\"",
            )
        })?;
    }
    Ok(())
}

/// The HTTP settings, keeping from `previous` (on reload) what only a restart changes: the
/// listening socket, the connection and request caps, the shutdown drain.
fn http_after(raw: &RawConfig, previous: Option<&AppState>) -> Result<HttpSettings, ConfigError> {
    let mut http = http_settings(&raw.server, raw.ldap.pool_size)?;
    if let Some(p) = previous {
        http.listen = p.http.listen;
        http.max_connections = p.http.max_connections;
        http.configured_max_connections = p.http.configured_max_connections;
        http.max_concurrent_requests = p.http.max_concurrent_requests;
        http.worker_threads = p.http.worker_threads;
        http.shutdown_drain = p.http.shutdown_drain;
    }
    Ok(http)
}

/// The SCIM services over the directory: users, groups (when configured) and discovery.
fn services(
    raw: &RawConfig,
    directory: &Arc<dyn Directory>,
    mapping: &Arc<Mapping>,
    cache: DnCache,
    limits: crate::scim::Limits,
    value_limits: ValueLimits,
    safety: Arc<crate::safety::Valve>,
) -> Result<(Users, Option<Groups>, Discovery), ConfigError> {
    let (groups, memberships) = match &raw.groups {
        None => (None, None),
        Some(g) => {
            let (groups, memberships) = build_groups(g, raw, value_limits, directory, &cache)?;
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
        crate::service::view::ResourceType::User,
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
        safety,
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
        mapping,
        groups.as_ref().map(|g| g.mapping()),
        raw.server.max_results,
        raw.server.max_body_bytes,
        cursors.settings(),
    );
    Ok((users, groups, discovery))
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
    if asked.worker_threads != was.worker_threads {
        restart.push("server.worker_threads");
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
