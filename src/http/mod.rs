//! The HTTP server: routes under `/scim/v2`, authentication, logging, and the translation of
//! requests into service calls and of results into SCIM responses.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::http::documents::Discovery;
use crate::scim::ScimError;
use crate::service::groups::Groups;
use crate::service::users::Users;

pub mod documents;
pub mod error;
pub mod extract;
pub mod fair;
mod handlers;
pub mod live;
pub mod middleware;
pub mod rate_limit;
mod render;
pub mod response;
pub mod server;

use rate_limit::RateLimits;
use response::HttpError;

pub const BASE_PATH: &str = "/scim/v2";

/// The front door's settings, from `[server]` (checked in `app::build`).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Where the server listens (a restart changes it, a reload does not).
    pub listen: std::net::SocketAddr,
    /// Open connections at most: `server.max_connections`, lowered to fit the open-file limit.
    pub max_connections: usize,
    /// `server.max_connections` as configured.
    pub configured_max_connections: usize,
    pub max_concurrent_requests: usize,
    /// `server.worker_threads` as the runtime was started with (0: one per CPU).
    pub worker_threads: usize,
    pub queue_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_read_timeout: Duration,
    pub request_timeout: Duration,
    pub shutdown_drain: Duration,
    pub max_uri_bytes: usize,
    pub max_header_bytes: usize,
    /// hyper's per-connection read buffer (it grows only as bytes arrive): above the head
    /// limits, so that heads well past them still reach `bounded_head` and get a SCIM answer;
    /// beyond it hyper answers 414/431 itself, with an empty body.
    pub max_buf_size: usize,
    /// HTTPS, when configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

pub struct AppState {
    pub users: Users,
    /// `None` when the config has no `[groups]`.
    pub groups: Option<Groups>,
    pub auth: Arc<Authenticator>,
    pub discovery: Discovery,
    /// Configured absolute URL of `/scim/v2`; when `None`, derived from `Host`.
    pub public_url: Option<String>,
    pub max_body_bytes: usize,
    /// Build URLs from `X-Forwarded-Proto`/`X-Forwarded-Host` (only behind a trusted proxy).
    pub trust_forwarded: bool,
    /// Bounds on what one request may make the server parse.
    pub limits: crate::scim::Limits,
    pub http: HttpSettings,
    /// Slots for the unauthenticated endpoints served at once (`server.max_concurrent_requests`).
    pub request_slots: Arc<Semaphore>,
    /// Slots for SCIM requests served at once (`server.max_concurrent_requests`), shared
    /// fairly between tenants when they compete.
    pub tenant_slots: Arc<fair::FairSlots>,
    /// Connections and detached writes: the shutdown drain waits for them.
    pub tasks: TaskTracker,
    /// Creates applied whose answers could not be delivered, for the IdP's retry.
    pub recent_creates: Arc<crate::service::creates::RecentCreates>,
    /// The write journal, once `serve` has opened it (commands such as `check-config` and
    /// `explain` write nothing and open none).
    pub journal: Arc<std::sync::OnceLock<Arc<crate::service::journal::Journal>>>,
    pub rate_limits: RateLimits,
    pub directory: Arc<dyn crate::directory::Directory>,
    /// The last readiness check and when it was made (`/readyz` is cached briefly, so a load
    /// balancer's probes cannot become load on the directory).
    /// Where the record of every write goes.
    pub audit: crate::audit::Auditor,
    /// The metrics listener the process opened at start (`metrics.listen`), if any: never
    /// the API's listener, which unauthenticated callers reach.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `[repair]`.
    pub repair: crate::config::RepairConfig,
    /// The mass-removal safety valve (kept across reloads).
    pub safety: Arc<crate::safety::Valve>,
    /// `log.level`, applied by the process when this generation becomes current.
    pub log_level: String,
    pub readiness: tokio::sync::Mutex<Option<(std::time::Instant, Result<(), ScimError>)>>,
}

impl AppState {
    /// The absolute base URL for `meta.location`.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(u) = &self.public_url {
            return u.trim_end_matches('/').to_owned();
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|h| h.to_str().ok())
                // the first hop's value, and only characters a host name can hold
                .map(|h| h.split(',').next().unwrap_or("").trim())
                .filter(|h| {
                    !h.is_empty()
                        && h.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
                })
        };
        let forwarded = |name: &str| {
            if self.trust_forwarded {
                header(name)
            } else {
                None
            }
        };
        let host = forwarded("x-forwarded-host")
            .or_else(|| header("host"))
            .unwrap_or("localhost");
        let scheme = match forwarded("x-forwarded-proto") {
            Some(p) if p.eq_ignore_ascii_case("https") => "https",
            _ => "http",
        };
        [scheme, "://", host, BASE_PATH].concat()
    }
}

/// The SCIM API, `/healthz` and `/readyz`, behind the front door (see `middleware`).
pub fn router(state: Arc<AppState>) -> middleware::FrontDoor {
    let scim = Router::new()
        .route(
            "/Users",
            get(handlers::list_users).post(handlers::create_user),
        )
        .route("/Users/.search", post(handlers::search_users))
        .route("/Groups/.search", post(handlers::search_groups))
        .route("/.search", post(handlers::search_all))
        .route(
            "/Users/{id}",
            get(handlers::get_user)
                .put(handlers::replace_user)
                .patch(handlers::patch_user)
                .delete(handlers::delete_user),
        )
        .route(
            "/Groups",
            get(handlers::list_groups).post(handlers::create_group),
        )
        .route(
            "/Groups/{id}",
            get(handlers::get_group)
                .put(handlers::replace_group)
                .patch(handlers::patch_group)
                .delete(handlers::delete_group),
        )
        .route(
            "/ServiceProviderConfig",
            get(handlers::service_provider_config),
        )
        .route("/Schemas", get(handlers::schemas))
        .route("/Schemas/{id}", get(handlers::schema))
        .route("/ResourceTypes", get(handlers::resource_types))
        .route("/ResourceTypes/{id}", get(handlers::resource_type))
        .route("/Bulk", any(not_implemented))
        .route("/Me", any(not_implemented))
        .method_not_allowed_fallback(method_not_allowed);
    let routes = Router::new()
        .route("/healthz", get(middleware::healthz))
        .route("/readyz", get(middleware::readyz))
        .nest(BASE_PATH, scim)
        .fallback(not_found)
        .with_state(state.clone());
    middleware::FrontDoor::api(state, routes)
}

async fn not_found() -> HttpError {
    HttpError(ScimError::not_found(
        "no such endpoint; the SCIM API is under /scim/v2",
    ))
}

async fn method_not_allowed() -> HttpError {
    HttpError(ScimError::new(
        405,
        None,
        "this endpoint does not support that HTTP method",
    ))
}

async fn not_implemented() -> impl IntoResponse {
    HttpError(ScimError::new(
        StatusCode::NOT_IMPLEMENTED.as_u16(),
        None,
        "not implemented by this server (see /ServiceProviderConfig)",
    ))
}

/// Serves `state` until `shutdown` completes, then drains (see `server::serve`).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_live(listener, Arc::new(live::Live::new(state)), shutdown).await
}

/// Serves whatever generation `live` holds (a reload replaces it) until `shutdown`
/// completes, then drains.
pub async fn serve_live(
    listener: TcpListener,
    live: Arc<live::Live>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // token store changes (create, rotate, revoke) take effect without a restart
    let watcher = tokio::spawn(watch_token_store(live.clone()));
    let served = server::serve(listener, live.clone(), shutdown).await;
    watcher.abort();
    let auth = live.current().state.auth.clone();
    let _ = tokio::task::spawn_blocking(move || auth.flush_usage()).await;
    served
}

/// `GET /metrics` (and SCIM 404s for anything else), for the metrics listener.
pub fn metrics_router(state: Arc<AppState>) -> middleware::FrontDoor {
    let routes = Router::new()
        .route("/metrics", get(middleware::metrics))
        .fallback(not_found)
        .with_state(state.clone());
    middleware::FrontDoor::metrics(state, routes)
}

/// Serves `GET /metrics` on its own listener (`metrics.listen`) until `shutdown` completes,
/// behind the same front door as the API: the connection cap, header, idle and shutdown
/// timeouts (see `server::serve`).
pub async fn serve_metrics(
    listener: TcpListener,
    live: Arc<live::Live>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve_routes(listener, live, server::Routes::Metrics, shutdown).await
}

/// Keeps the current generation's view of the token store fresh: a look at the file every
/// second, the usage file written every 30 s; and the safety valve's shared state, every
/// second (a release reaches this bridge within two).
async fn watch_token_store(live: Arc<live::Live>) {
    let mut ticks = 0u64;
    loop {
        tokio::time::sleep(crate::auth::STORE_POLL).await;
        ticks += 1;
        let flush = ticks % crate::auth::FLUSH_EVERY_POLLS == 0;
        let state = live.current().state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            state.auth.reload_store();
            if flush {
                state.auth.flush_usage();
            }
            state.safety.sync(&state.auth.tenant_names());
        })
        .await;
    }
}
