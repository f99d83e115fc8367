//! Layers every request passes, outermost first: the access log with a request id; SCIM
//! bodies for any error that lacks one; bounds on the request head; a cap on requests served
//! at once; the request deadline; and, on the SCIM routes, authentication with the tenant's
//! rate limit. Everything before authentication is cheap, so anonymous load is shed early.

mod health;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use tracing::{info, info_span, Instrument};

use crate::auth::{AuthError, Caller};
use crate::directory::budget::{self, Budget};
use crate::scim::ScimError;
use crate::service::creates::CreateReceipt;

use super::response::{ErrorDetail, HttpError, SCIM_CONTENT_TYPE};
use super::AppState;

pub use health::{healthz, metrics, metrics_response, readyz};

/// The request's id (from `X-Request-Id` or made here), for the audit record.
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);

/// The tenant a request authenticated as, for the access log.
#[derive(Clone, Debug)]
pub struct TenantName(pub String);

pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state
        .auth
        .authenticate(header, OffsetDateTime::now_utc())
        .await
    {
        Ok(caller) => {
            let tenant = caller.tenant.clone();
            let name = TenantName(tenant.name.clone());
            let mut resp = match state.rate_limits.check(&tenant.name) {
                Ok(()) => {
                    let slots = &state.tenant_slots;
                    match slots.acquire(&tenant.name, state.http.queue_timeout).await {
                        Some(slot) => {
                            req.extensions_mut().insert(tenant);
                            req.extensions_mut().insert(caller);
                            let resp = next.run(req).await;
                            drop(slot);
                            resp
                        }
                        None => HttpError(ScimError::unavailable(
                            format!(
                                "the server is serving {} requests, its limit (server.max_concurrent_requests), shared fairly among the tenants that are busy; retry shortly",
                                slots.total()
                            ),
                            1,
                        ))
                        .into_response(),
                    }
                }
                Err((wait, cfg)) => {
                    let secs = wait.as_secs_f64().ceil().max(1.0) as u32;
                    HttpError(ScimError::too_many_requests(
                        format!(
                            "tenant {} sent more than {} requests per second (bursts of {}), its rate limit; retry after {secs} s",
                            tenant.name, cfg.per_second, cfg.burst
                        ),
                        secs,
                    ))
                    .into_response()
                }
            };
            resp.extensions_mut().insert(name);
            resp
        }
        Err(e) => refusal(e),
    }
}

/// The answer to a request that did not authenticate: 401 with the challenge RFC 6750 §3
/// asks for (no error code when no credentials were sent), 403 `insufficient_scope` for a
/// valid token without the required scope or claim, 503 when the issuer's keys cannot be had.
fn refusal(e: AuthError) -> Response {
    let (err, challenge) = match &e {
        AuthError::Missing | AuthError::NotBearer => (
            ScimError::unauthorized(e.to_string()),
            "Bearer realm=\"scim2ldap\"".to_owned(),
        ),
        AuthError::Invalid | AuthError::Expired => (
            ScimError::unauthorized(e.to_string()),
            "Bearer realm=\"scim2ldap\", error=\"invalid_token\"".to_owned(),
        ),
        // why a JWT was refused (which issuer or audience no tenant accepts, which check
        // failed) would let anyone map the configuration: it goes to the log only
        AuthError::InvalidJwt(why) => {
            info!(reason = %why, "an access token was refused");
            (
                ScimError::unauthorized(
                    "invalid access token (the server's log says why; its admin can look it up by this request's X-Request-Id)",
                ),
                "Bearer realm=\"scim2ldap\", error=\"invalid_token\"".to_owned(),
            )
        }
        AuthError::InsufficientScope { scope, .. } => (
            ScimError::new(403, None, e.to_string()),
            match scope {
                Some(s) => format!(
                    "Bearer realm=\"scim2ldap\", error=\"insufficient_scope\", scope=\"{s}\""
                ),
                None => "Bearer realm=\"scim2ldap\", error=\"insufficient_scope\"".to_owned(),
            },
        ),
        AuthError::KeysUnavailable(_) => {
            // logged once per failed fetch where it happens, not once per request
            return HttpError(ScimError::unavailable(
                "the access token's issuer keys cannot be fetched; retry later",
                5,
            ))
            .into_response();
        }
    };
    let mut resp = HttpError(err).into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// One audit record per write on `/Users` and `/Groups` (see `crate::audit`): runs inside
/// authentication, so it knows the caller, and inside the deadline's task, so it sees the
/// write to its end even when the client has stopped waiting.
pub async fn audit(
    State(state): State<Arc<AppState>>,
    decoded_id: Result<Path<String>, PathRejection>,
    req: Request,
    next: Next,
) -> Response {
    let Some(op) = ScimOperation::of(req.method(), req.uri().path()).filter(|o| o.is_write())
    else {
        return next.run(req).await;
    };
    // the id as the handler reads it; one it cannot decode (bad UTF-8) as sent
    let id: Option<String> = match decoded_id {
        Ok(Path(id)) => Some(id),
        Err(_) => op.id.clone(),
    }
    .map(|id| crate::logging::shorten(&id, 256).into_owned());
    let caller = req.extensions().get::<Caller>().cloned();
    let request_id = req.extensions().get::<RequestId>().cloned();
    let client = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let work = next.run(req);
    let (resp, trail) = match (state.journal.get(), &caller) {
        (Some(journal), Some(caller)) => {
            let meta = crate::service::journal::Meta {
                request_id: request_id
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |r| r.0.to_string()),
                tenant: caller.tenant.name.clone(),
                credential: caller.credential.clone(),
                operation: op.name.to_owned(),
                resource_type: op.resource_type.to_owned(),
                resource_id: id.clone(),
            };
            crate::audit::tracing_writes(crate::service::journal::scope(
                journal.clone(),
                meta,
                work,
            ))
            .await
        }
        _ => crate::audit::tracing_writes(work).await,
    };
    let Some(caller) = caller else { return resp };
    let status = resp.status();
    let id = id.or_else(|| {
        // a create: the new resource's id ends its Location
        resp.headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.rsplit('/').next())
            .map(|s| crate::logging::shorten(s, 256).into_owned())
    });
    let record = crate::audit::Record {
        time: crate::audit::timestamp(OffsetDateTime::now_utc()),
        request_id: request_id.as_ref().map_or("-", |r| &r.0),
        tenant: &caller.tenant.name,
        credential: &caller.credential,
        client,
        operation: op.name,
        resource_type: op.resource_type,
        id,
        status: status.as_u16(),
        outcome: trail.outcome(status.is_success()),
        changes: trail.changes(),
        unconfirmed: trail.unconfirmed_step(),
        detail: resp
            .extensions()
            .get::<ErrorDetail>()
            .map(|d| crate::logging::shorten(&d.0, 1024).into_owned()),
    };
    state.audit.record(&record);
    let mut resp = resp;
    if let Some(first) = record.changes.first() {
        resp.extensions_mut().insert(WrittenDn(first.dn.clone()));
    }
    resp
}

/// The SCIM operation a request asks for, from its method and path (not yet checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimOperation {
    /// create, replace, patch, delete (writes); get, list, search (reads).
    pub name: &'static str,
    /// User, Group, or `*` for a search across both.
    pub resource_type: &'static str,
    /// The id segment as sent (percent-encoded).
    pub id: Option<String>,
}

impl ScimOperation {
    pub fn of(method: &Method, path: &str) -> Option<ScimOperation> {
        // the router nests under BASE_PATH; accept the path with or without it
        let path = path.strip_prefix(super::BASE_PATH).unwrap_or(path);
        let mut parts = path.trim_start_matches('/').split('/');
        let resource_type = match parts.next()? {
            "Users" => "User",
            "Groups" => "Group",
            ".search" if *method == Method::POST => "*",
            _ => return None,
        };
        let id = parts.next().filter(|id| !id.is_empty());
        if parts.next().is_some() {
            return None;
        }
        let name = match (method.clone(), id) {
            (_, _) if resource_type == "*" => "search",
            (Method::POST, Some(".search")) => "search",
            (Method::POST, None) => "create",
            (Method::GET, None) => "list",
            (Method::GET, Some(_)) => "get",
            (Method::PUT, Some(_)) => "replace",
            (Method::PATCH, Some(_)) => "patch",
            (Method::DELETE, Some(_)) => "delete",
            _ => return None,
        };
        Some(ScimOperation {
            name,
            resource_type,
            id: id.filter(|i| *i != ".search").map(str::to_owned),
        })
    }

    pub fn is_write(&self) -> bool {
        matches!(self.name, "create" | "replace" | "patch" | "delete")
    }
}

/// The route a request matched (`/scim/v2/Users/{id}`), for metrics: bounded, unlike paths.
#[derive(Clone, Debug)]
pub struct Route(pub String);

/// Notes the matched route on the response (the access log runs outside the router, where
/// it is not known yet).
pub async fn matched_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| Route(m.as_str().to_owned()));
    let mut resp = next.run(req).await;
    if let Some(r) = route {
        resp.extensions_mut().insert(r);
    }
    resp
}

/// The DN a write changed first, for the access log.
#[derive(Clone, Debug)]
pub struct WrittenDn(pub String);

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(1);

/// One log line per request: method, path, status, latency, tenant, request id, the SCIM
/// operation, and for a write the DN it changed. The id comes from `X-Request-Id` when the
/// caller sends a sane one, and is echoed back.
///
/// Not tower-http's `SetRequestId`/`PropagateRequestId` and `TraceLayer`: they keep whatever
/// id a client sends (this refuses ids that are long or carry characters a log reader could be
/// fooled by), and this one pass makes the id, the span, the metrics and the log line that
/// three layers would make separately on every request.
pub async fn access_log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    // the path as sent (percent-encoded), bounded; the log formatter quotes what needs it
    let path = crate::logging::shorten(req.uri().path(), 256).into_owned();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "{:x}-{}",
                std::process::id(),
                REQUEST_SEQ.fetch_add(1, Ordering::Relaxed)
            )
        });
    let op = ScimOperation::of(req.method(), req.uri().path())
        .map(|o| format!("{} {}", o.name, o.resource_type));
    let span = info_span!("request", request_id = %request_id);
    let mut req = req;
    req.extensions_mut()
        .insert(RequestId(Arc::from(request_id.as_str())));
    let mut resp = next.run(req).instrument(span.clone()).await;
    // the standard methods by name; anything else a client invents is one label value
    let method_label = match method {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::HEAD
        | Method::OPTIONS => method.as_str(),
        _ => "other",
    };
    let tenant = resp
        .extensions()
        .get::<TenantName>()
        .map(|t| t.0.clone())
        .unwrap_or_else(|| "-".to_owned());
    crate::metrics::metrics().request(
        resp.extensions()
            .get::<Route>()
            .map_or("unmatched", |r| r.0.as_str()),
        method_label,
        resp.status().as_u16(),
        &tenant,
        start.elapsed(),
    );
    info!(
        parent: &span,
        method = %method,
        path = %path,
        status = resp.status().as_u16(),
        latency_ms = format!("{:.1}", start.elapsed().as_secs_f64() * 1000.0),
        tenant = %tenant,
        op = op.as_deref(),
        dn = resp.extensions().get::<WrittenDn>().map(|d| d.0.as_str()),
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Any error response that is not already a SCIM error (a rejection from a layer or an
/// extractor this code does not own) becomes one with the same status (RFC 7644 §3.12).
pub async fn scim_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
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
pub async fn bounded_head(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let http = &state.http;
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > http.max_uri_bytes {
        return HttpError(ScimError::new(
            414,
            None,
            format!(
                "the request URI is {target} bytes; the server accepts at most {} (server.max_uri_bytes): send a long filter with POST /.search",
                http.max_uri_bytes
            ),
        ))
        .into_response();
    }
    let head: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if head > http.max_header_bytes {
        return HttpError(ScimError::new(
            431,
            None,
            format!(
                "the request headers are {head} bytes; the server accepts at most {} (server.max_header_bytes)",
                http.max_header_bytes
            ),
        ))
        .into_response();
    }
    next.run(req).await
}

/// At most `server.max_concurrent_requests` requests are served at once; another waits up to
/// `queue_timeout_ms` for a slot (the wait is bounded by the connection cap), then gets 503.
/// `/healthz` and `/readyz` are exempt: they must answer while the service is busy. The SCIM
/// requests on /Users, /Groups and /.search take their slot after authentication instead,
/// from the tenants' fair share (`authenticate`), so that one tenant's requests waiting here
/// cannot keep another's from being served.
pub async fn concurrency(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/healthz" | "/readyz")
        || ScimOperation::of(req.method(), req.uri().path()).is_some()
    {
        return next.run(req).await;
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
    let resp = next.run(req).await;
    drop(permit);
    resp
}

/// The request deadline (`server.request_timeout_secs`): every directory operation the
/// request makes is bounded by its budget (see `directory::budget`), so the service answers
/// in time, learning the outcome of a write whose answer was lost before it does. The timer
/// here is a backstop a little after that. Reads are dropped when it fires. Writes run as
/// their own task, so that neither it nor a client hanging up can stop one between two of its
/// LDAP operations; the shutdown drain waits for them too.
pub async fn deadline(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
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
    let work = budget::within(
        Budget::new(limit),
        crate::directory::one_server(next.run(req)),
    );
    if !is_write {
        return tokio::time::timeout(backstop, work)
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
        async move {
            let resp = work.await;
            if let Err(lost) = tx.send(resp) {
                if let Some(receipt) = lost.extensions().get::<CreateReceipt>() {
                    info!(id = %receipt.id, "the answer to a create could not be delivered; a retry of it within the window gets it");
                    recent.unanswered(receipt);
                }
            }
        }
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
