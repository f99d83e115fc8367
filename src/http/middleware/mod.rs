//! The front door every request passes, in this order: the access log with a request id;
//! SCIM bodies for any error that lacks one; bounds on the request head; a cap on requests
//! served at once; the request deadline; and, on the SCIM resource routes, authentication with
//! the tenant's rate limit and the audit of writes (`guard`). Then the routes. Everything
//! before authentication is cheap, so anonymous load is shed early.
//!
//! One service around the router, not a stack of `from_fn` layers: axum layers each route
//! separately and clones the layered stack for every request, which cost some 90 allocations
//! and frees a request with the nine layers this was; here they are plain calls in one future.

mod access_log;
mod guard;
mod health;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::FutureExt;
use tower::ServiceExt;
use tracing::{info, Instrument};

use crate::directory::budget::{self, Budget};
use crate::scim::ScimError;
use crate::service::creates::CreateReceipt;

use super::response::{HttpError, SCIM_CONTENT_TYPE};
use super::{AppState, HttpSettings, BASE_PATH};

pub use health::{healthz, metrics, metrics_response, readyz};

#[derive(Clone, Copy, Debug)]
enum Door {
    /// The SCIM API, `/healthz` and `/readyz`: every check.
    Api,
    /// `/metrics` on its own listener: the head bounds and SCIM errors only.
    Metrics,
}

/// The routes behind the front door's checks, as one service.
#[derive(Clone)]
pub struct FrontDoor {
    state: Arc<AppState>,
    routes: Router,
    door: Door,
}

impl FrontDoor {
    pub fn api(state: Arc<AppState>, routes: Router) -> FrontDoor {
        FrontDoor {
            state,
            routes,
            door: Door::Api,
        }
    }

    pub fn metrics(state: Arc<AppState>, routes: Router) -> FrontDoor {
        FrontDoor {
            state,
            routes,
            door: Door::Metrics,
        }
    }

    /// Answers one request.
    pub async fn serve(self, req: Request) -> Response {
        match self.door {
            Door::Metrics => {
                let resp = match bounded_head(&self.state.http, &req) {
                    Some(refused) => refused,
                    None => self.route(req).await,
                };
                scim_errors(resp).await
            }
            Door::Api => {
                // what the request asks for, worked out once for the log, the slots and auth
                let op = ScimOperation::of(req.method(), req.uri().path());
                access_log::access_log(req, op, |req| async move {
                    let state = self.state.clone();
                    let resp = match bounded_head(&state.http, &req) {
                        Some(refused) => refused,
                        None => {
                            concurrency(&state, op.is_some(), req, |req| {
                                deadline(&state, req, |req| self.guarded(op, req))
                            })
                            .await
                        }
                    };
                    scim_errors(resp).await
                })
                .await
            }
        }
    }

    /// The SCIM resource routes (`op`) authenticate and audit writes; the others do not.
    async fn guarded(self, op: Option<ScimOperation>, req: Request) -> Response {
        let Some(op) = op else {
            return self.route(req).await;
        };
        let state = self.state.clone();
        guard::authenticate(&state, req, |req| {
            guard::audit(&state, op, req, |req| self.route(req))
        })
        .await
    }

    async fn route(self, req: Request) -> Response {
        match self.routes.oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        }
    }
}

impl tower::Service<Request> for FrontDoor {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let door = self.clone();
        Box::pin(async move { Ok(door.serve(req).await) })
    }
}

/// The routes the router serves, as metrics name them (`route_label`): bounded, unlike
/// paths.
pub const ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/scim/v2/Users",
    "/scim/v2/Users/.search",
    "/scim/v2/Users/{id}",
    "/scim/v2/Groups",
    "/scim/v2/Groups/.search",
    "/scim/v2/Groups/{id}",
    "/scim/v2/.search",
    "/scim/v2/ServiceProviderConfig",
    "/scim/v2/Schemas",
    "/scim/v2/Schemas/{id}",
    "/scim/v2/ResourceTypes",
    "/scim/v2/ResourceTypes/{id}",
    "/scim/v2/Bulk",
    "/scim/v2/Me",
];

/// The route template `path` matches (one of `ROUTES`), or `unmatched`: a match on the
/// segments, not a search of the list (this runs for every request).
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/healthz" => return "/healthz",
        "/readyz" => return "/readyz",
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/scim/v2/") else {
        return "unmatched";
    };
    let (first, id) = match rest.split_once('/') {
        Some((first, id)) if !id.is_empty() && !id.contains('/') => (first, Some(id)),
        Some(_) => return "unmatched",
        None => (rest, None),
    };
    match (first, id) {
        ("Users", None) => "/scim/v2/Users",
        ("Users", Some(".search")) => "/scim/v2/Users/.search",
        ("Users", Some(_)) => "/scim/v2/Users/{id}",
        ("Groups", None) => "/scim/v2/Groups",
        ("Groups", Some(".search")) => "/scim/v2/Groups/.search",
        ("Groups", Some(_)) => "/scim/v2/Groups/{id}",
        (".search", None) => "/scim/v2/.search",
        ("ServiceProviderConfig", None) => "/scim/v2/ServiceProviderConfig",
        ("Schemas", None) => "/scim/v2/Schemas",
        ("Schemas", Some(_)) => "/scim/v2/Schemas/{id}",
        ("ResourceTypes", None) => "/scim/v2/ResourceTypes",
        ("ResourceTypes", Some(_)) => "/scim/v2/ResourceTypes/{id}",
        ("Bulk", None) => "/scim/v2/Bulk",
        ("Me", None) => "/scim/v2/Me",
        _ => "unmatched",
    }
}

/// The SCIM operation a request on a resource route asks for, from its method and path
/// (under `BASE_PATH`; not yet checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScimOperation {
    /// create, replace, patch, delete (writes); get, list, search (reads).
    pub name: &'static str,
    /// User, Group, or `*` for a search across both.
    pub resource_type: &'static str,
}

impl ScimOperation {
    /// `None` for anything the resource routes do not serve (other paths, methods they do not
    /// take), which the router then answers (404, 405) without asking for credentials.
    pub fn of(method: &Method, path: &str) -> Option<ScimOperation> {
        let rest = path.strip_prefix(BASE_PATH)?.strip_prefix('/')?;
        let mut parts = rest.split('/');
        let resource_type = match parts.next()? {
            "Users" => "User",
            "Groups" => "Group",
            ".search" => "*",
            _ => return None,
        };
        let id = parts.next();
        if parts.next().is_some() || id == Some("") {
            return None;
        }
        // HEAD is served as GET
        let name = match (method, id) {
            (&Method::POST, None) if resource_type == "*" => "search",
            (_, _) if resource_type == "*" => return None,
            (&Method::POST, Some(".search")) => "search",
            (_, Some(".search")) => return None,
            (&Method::POST, None) => "create",
            (&Method::GET | &Method::HEAD, None) => "list",
            (&Method::GET | &Method::HEAD, Some(_)) => "get",
            (&Method::PUT, Some(_)) => "replace",
            (&Method::PATCH, Some(_)) => "patch",
            (&Method::DELETE, Some(_)) => "delete",
            _ => return None,
        };
        Some(ScimOperation {
            name,
            resource_type,
        })
    }

    /// The id segment of a resource path, as sent (percent-encoded).
    pub fn id_segment(path: &str) -> Option<&str> {
        let rest = path.strip_prefix(BASE_PATH)?.strip_prefix('/')?;
        let (_, id) = rest.split_once('/')?;
        Some(id).filter(|id| !id.is_empty() && *id != ".search" && !id.contains('/'))
    }

    pub fn is_write(&self) -> bool {
        matches!(self.name, "create" | "replace" | "patch" | "delete")
    }

    /// `create User`, for the access log.
    pub fn label(self) -> &'static str {
        match (self.name, self.resource_type) {
            ("create", "User") => "create User",
            ("create", _) => "create Group",
            ("replace", "User") => "replace User",
            ("replace", _) => "replace Group",
            ("patch", "User") => "patch User",
            ("patch", _) => "patch Group",
            ("delete", "User") => "delete User",
            ("delete", _) => "delete Group",
            ("get", "User") => "get User",
            ("get", _) => "get Group",
            ("list", "User") => "list User",
            ("list", _) => "list Group",
            (_, "User") => "search User",
            (_, "Group") => "search Group",
            _ => "search *",
        }
    }
}

/// Any error response that is not already a SCIM error (a rejection from a layer or an
/// extractor this code does not own) becomes one with the same status (RFC 7644 §3.12).
async fn scim_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_scim = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(SCIM_CONTENT_TYPE.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_scim {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let detail = match text.trim() {
        "" => status.canonical_reason().unwrap_or("error").to_owned(),
        t => crate::logging::shorten(t, 200).into_owned(),
    };
    let mut out = HttpError(ScimError::new(status.as_u16(), None, detail)).into_response();
    for name in [header::RETRY_AFTER, header::WWW_AUTHENTICATE, header::ALLOW] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out.extensions_mut().extend(parts.extensions);
    out
}

/// The request target and headers within `server.max_uri_bytes` / `max_header_bytes`:
/// past them, a SCIM 414 or 431 saying what to do (hyper answers on its own, with an empty
/// body, only beyond its buffer, which is sized a little above these).
fn bounded_head(http: &HttpSettings, req: &Request) -> Option<Response> {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > http.max_uri_bytes {
        return Some(
            HttpError(ScimError::new(
                414,
                None,
                format!(
                    "the request URI is {target} bytes; the server accepts at most {} (server.max_uri_bytes): send a long filter with POST /.search",
                    http.max_uri_bytes
                ),
            ))
            .into_response(),
        );
    }
    let head: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if head > http.max_header_bytes {
        return Some(
            HttpError(ScimError::new(
                431,
                None,
                format!(
                    "the request headers are {head} bytes; the server accepts at most {} (server.max_header_bytes)",
                    http.max_header_bytes
                ),
            ))
            .into_response(),
        );
    }
    None
}

/// At most `server.max_concurrent_requests` requests are served at once; another waits up to
/// `queue_timeout_ms` for a slot (the wait is bounded by the connection cap), then gets 503.
/// `/healthz` and `/readyz` are exempt: they must answer while the service is busy. The SCIM
/// requests on /Users, /Groups and /.search (`scim`) take their slot after authentication instead,
/// from the tenants' fair share (`authenticate`), so that one tenant's requests waiting here
/// cannot keep another's from being served.
async fn concurrency<F, Fut>(state: &AppState, scim: bool, req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    if scim || matches!(req.uri().path(), "/healthz" | "/readyz") {
        return next(req).await;
    }
    let slots = state.request_slots.clone();
    let permit = match slots.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => match tokio::time::timeout(state.http.queue_timeout, slots.acquire_owned()).await
        {
            Ok(Ok(p)) => p,
            _ => {
                return HttpError(ScimError::unavailable(
                    format!(
                        "the server is serving {} requests, its limit (server.max_concurrent_requests); retry shortly",
                        state.http.max_concurrent_requests
                    ),
                    1,
                ))
                .into_response()
            }
        },
    };
    let resp = next(req).await;
    drop(permit);
    resp
}

/// The request deadline (`server.request_timeout_secs`): every directory operation the
/// request makes is bounded by its budget (see `directory::budget`), so the service answers
/// in time, learning the outcome of a write whose answer was lost before it does. The timer
/// here is a backstop a little after that. Reads are dropped when it fires. Writes run as
/// their own task, so that neither it nor a client hanging up can stop one between two of its
/// LDAP operations; the shutdown drain waits for them too.
async fn deadline<F, Fut>(state: &AppState, req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response> + Send + 'static,
{
    let limit = state.http.request_timeout;
    let backstop = limit + Duration::from_secs(1);
    // POST …/.search only reads: it is dropped at the deadline like a GET
    let is_write = !req.method().is_safe() && !req.uri().path().ends_with("/.search");
    let late = |write: bool| {
        let detail = if write {
            format!(
                "the request did not finish within {} s (server.request_timeout_secs); the change may still be applied: read the resource before retrying",
                limit.as_secs()
            )
        } else {
            format!(
                "the request did not finish within {} s (server.request_timeout_secs); retry later",
                limit.as_secs()
            )
        };
        HttpError(ScimError::unavailable(detail, 5)).into_response()
    };
    // the work is made where it runs, and wrapped by combinators, so that this future does
    // not hold the request's (large) one twice
    let work = |req| budget::within(Budget::new(limit), crate::directory::one_server(next(req)));
    if !is_write {
        return tokio::time::timeout(backstop, work(req))
            .await
            .unwrap_or_else(|_| late(false));
    }
    let span = tracing::Span::current();
    // the answer goes back through a channel nobody listens on once the client has gone or
    // the backstop has fired: a create whose answer is lost that way is remembered, so that
    // the IdP's retry of it learns the id it made (see `service::creates`)
    let (tx, rx) = tokio::sync::oneshot::channel::<Response>();
    let recent = state.recent_creates.clone();
    state.tasks.spawn(
        work(req)
            .map(move |resp| {
                if let Err(lost) = tx.send(resp) {
                    if let Some(receipt) = lost.extensions().get::<CreateReceipt>() {
                        info!(id = %receipt.id, "the answer to a create could not be delivered; a retry of it within the window gets it");
                        recent.unanswered(receipt);
                    }
                }
            })
            .instrument(span),
    );
    match tokio::time::timeout(backstop, rx).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(_)) => HttpError(ScimError::internal(
            "the request failed unexpectedly; see the server log",
        ))
        .into_response(),
        Err(_) => late(true),
    }
}

#[cfg(test)]
mod tests;
