//! Request plumbing: bearer-token authentication, the access log with a request id, and the
//! SCIM body extractor (media type, size limit, JSON syntax errors as SCIM errors).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use time::OffsetDateTime;
use tracing::{info, info_span, Instrument};

use super::response::HttpError;
use super::AppState;
use crate::auth::AuthError;
use crate::scim::ScimError;

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
    match state.auth.authenticate(header, OffsetDateTime::now_utc()) {
        Ok((tenant, _token_name)) => {
            let name = TenantName(tenant.name.clone());
            req.extensions_mut().insert(tenant);
            let mut resp = next.run(req).await;
            resp.extensions_mut().insert(name);
            resp
        }
        Err(e) => {
            // RFC 6750 §3: no error code when no credentials were sent.
            let challenge = match e {
                AuthError::Missing | AuthError::NotBearer => "Bearer realm=\"scim2ldap\"",
                AuthError::Invalid | AuthError::Expired => {
                    "Bearer realm=\"scim2ldap\", error=\"invalid_token\""
                }
            };
            let mut resp = HttpError(ScimError::unauthorized(e.to_string())).into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
            resp
        }
    }
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(1);

/// One log line per request: method, path, status, latency, tenant, request id. The id comes
/// from `X-Request-Id` when the caller sends a sane one, and is echoed back.
pub async fn access_log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
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
    let span = info_span!("request", request_id = %request_id);
    let mut resp = next.run(req).instrument(span.clone()).await;
    let tenant = resp
        .extensions()
        .get::<TenantName>()
        .map(|t| t.0.clone())
        .unwrap_or_else(|| "-".to_owned());
    info!(
        parent: &span,
        method = %method,
        path = %path,
        status = resp.status().as_u16(),
        latency_ms = format!("{:.1}", start.elapsed().as_secs_f64() * 1000.0),
        tenant = %tenant,
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// A SCIM request body: JSON with `application/scim+json` or `application/json` (or no
/// declared type), within the size limit.
pub struct ScimBody(pub Value);

impl FromRequest<Arc<AppState>> for ScimBody {
    type Rejection = HttpError;

    async fn from_request(
        req: Request<Body>,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            let mime = ct.split(';').next().unwrap_or("").trim();
            if mime != "application/scim+json" && mime != "application/json" {
                return Err(ScimError::new(
                    415,
                    None,
                    format!("unsupported Content-Type '{mime}': send application/scim+json"),
                )
                .into());
            }
        }
        let limit = state.max_body_bytes;
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                ScimError::new(413, None, format!("the request body exceeds {limit} bytes"))
            })?;
        if bytes.is_empty() {
            return Err(
                ScimError::invalid_syntax("the request body is empty; send a JSON object").into(),
            );
        }
        serde_json::from_slice(&bytes).map(ScimBody).map_err(|e| {
            ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}")).into()
        })
    }
}
