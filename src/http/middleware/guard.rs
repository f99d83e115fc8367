//! The SCIM resource routes' own checks, inside the front door: authentication with the
//! tenant's rate limit and fair share of request slots, then one audit record per write.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use tracing::info;

use crate::auth::{AuthError, Caller, Tenant};
use crate::http::response::{ErrorDetail, HttpError};
use crate::http::AppState;
use crate::scim::ScimError;

use super::access_log::{RequestId, WrittenDn};
use super::ScimOperation;

/// The tenant a request authenticated as, on its response, for the access log and metrics.
#[derive(Clone, Debug)]
pub struct TenantName(pub Arc<Tenant>);

/// Authenticates the request, holds it to its tenant's rate limit and fair share of the
/// request slots, and runs `next` with the caller in the request's extensions.
pub async fn authenticate<F, Fut>(state: &AppState, mut req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = match state
        .auth
        .authenticate(header, OffsetDateTime::now_utc())
        .await
    {
        Ok(caller) => caller,
        Err(e) => return refusal(e),
    };
    let tenant = caller.tenant.clone();
    let mut resp = match state.rate_limits.check(&tenant.name) {
        Ok(()) => {
            let slots = &state.tenant_slots;
            match slots.acquire(&tenant.name, state.http.queue_timeout).await {
                Some(slot) => {
                    req.extensions_mut().insert(tenant.clone());
                    req.extensions_mut().insert(caller);
                    let resp = next(req).await;
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
    resp.extensions_mut().insert(TenantName(tenant));
    resp
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
pub async fn audit<F, Fut>(state: &AppState, op: ScimOperation, req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    if !op.is_write() {
        return next(req).await;
    }
    // the id as the handler reads it (percent-decoded); one that does not decode to text as
    // sent
    let id: Option<String> = ScimOperation::id_segment(req.uri().path()).map(|raw| {
        let decoded = percent_encoding::percent_decode_str(raw).decode_utf8();
        crate::logging::shorten(decoded.as_deref().unwrap_or(raw), 256).into_owned()
    });
    let caller = req.extensions().get::<Caller>().cloned();
    let request_id = req.extensions().get::<RequestId>().cloned();
    let client = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let work = next(req);
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
