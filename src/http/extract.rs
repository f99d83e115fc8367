//! Extractors: what every SCIM handler takes from a request (the caller's context, the id in
//! the path, the query, the body), each refusing with a SCIM error rather than axum's plain
//! text.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde_json::Value;

use super::response::HttpError;
use super::AppState;
use crate::auth::Tenant;
use crate::scim::patch::{parse_patch_request, PatchOperation};
use crate::scim::resource::{normalize_resource, Normalized};
use crate::scim::schema::{ResourceSchema, GROUP_RESOURCE, USER_RESOURCE};
use crate::scim::ScimError;
use crate::service::RequestCtx;

/// The authenticated caller: tenant (set by the `authenticate` layer) and `If-Match`.
pub struct Ctx(pub RequestCtx);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let tenant = parts
            .extensions
            .get::<Arc<Tenant>>()
            .cloned()
            .ok_or_else(|| ScimError::unauthorized("this endpoint needs a bearer token"))?;
        Ok(Ctx(RequestCtx {
            tenant,
            if_match: parts
                .headers
                .get(header::IF_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }))
    }
}

/// `If-None-Match` as sent, if it is text: only this header, where taking the `HeaderMap`
/// would copy every header of every read.
pub struct IfNoneMatch(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(IfNoneMatch(
            parts
                .headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ))
    }
}

/// The absolute URL of `/scim/v2` as this client reaches it (the configured public URL, or
/// one made from `Host`): `$ref`s, `meta.location` and `Location` are made from it, here in
/// the HTTP layer only.
pub struct BaseUrl(pub String);

impl FromRequestParts<Arc<AppState>> for BaseUrl {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(BaseUrl(state.base_url(&parts.headers)))
    }
}

/// The `{id}` of a resource URL. An id that is not valid text names no resource: 404.
pub struct ResourceId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ResourceId {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| ResourceId(id))
            .map_err(|_| {
                ScimError::not_found("no such resource: the id in the URL is not valid text").into()
            })
    }
}

/// Query parameters (names are matched case-insensitively by the handlers).
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Params(q))
            .map_err(|e| {
                ScimError::invalid_syntax(format!("the query string cannot be read: {e}")).into()
            })
    }
}

/// A SCIM request body: JSON with `application/scim+json` or `application/json` (or no
/// declared type), within the size limit and the body timeout.
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
                    format!(
                        "unsupported Content-Type '{}': send application/scim+json",
                        crate::logging::shorten(mime, 64)
                    ),
                )
                .into());
            }
        }
        let limit = state.max_body_bytes;
        let timeout = state.http.body_read_timeout;
        let read = axum::body::to_bytes(req.into_body(), limit);
        let bytes = match tokio::time::timeout(timeout, read).await {
            Err(_) => {
                return Err(ScimError::new(
                    408,
                    None,
                    format!(
                    "the request body did not arrive within {} s (server.body_read_timeout_secs)",
                    timeout.as_secs()
                ),
                )
                .into())
            }
            Ok(Err(e)) if is_too_long(&e) => {
                return Err(ScimError::new(
                    413,
                    None,
                    format!("the request body exceeds {limit} bytes (server.max_body_bytes)"),
                )
                .into())
            }
            Ok(Err(_)) => {
                return Err(ScimError::invalid_syntax(
                    "the request body could not be read (the connection broke or stalled)",
                )
                .into())
            }
            Ok(Ok(b)) => b,
        };
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

/// The resource type a body is parsed for: the schema that types its values.
pub trait ResourceKind {
    const SCHEMA: &'static ResourceSchema;
}

pub enum UserKind {}
pub enum GroupKind {}

impl ResourceKind for UserKind {
    const SCHEMA: &'static ResourceSchema = &USER_RESOURCE;
}

impl ResourceKind for GroupKind {
    const SCHEMA: &'static ResourceSchema = &GROUP_RESOURCE;
}

/// A POST or PUT body parsed into the typed model against `K`'s schema; nothing after this
/// sees JSON. The JSON is kept beside it because a create's retry key is made from it.
pub struct ResourceBody<K> {
    pub json: Value,
    pub resource: Normalized,
    kind: PhantomData<fn() -> K>,
}

impl<K: ResourceKind> FromRequest<Arc<AppState>> for ResourceBody<K> {
    type Rejection = HttpError;

    async fn from_request(
        req: Request<Body>,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let ScimBody(json) = ScimBody::from_request(req, state).await?;
        let resource = normalize_resource(&json, K::SCHEMA)?;
        Ok(ResourceBody {
            json,
            resource,
            kind: PhantomData,
        })
    }
}

/// A PatchOp body as typed operations, resolved against `K`'s schema and bounded by the
/// server's limits before any is applied.
pub struct PatchBody<K> {
    pub ops: Vec<PatchOperation>,
    kind: PhantomData<fn() -> K>,
}

impl<K: ResourceKind> FromRequest<Arc<AppState>> for PatchBody<K> {
    type Rejection = HttpError;

    async fn from_request(
        req: Request<Body>,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let ScimBody(json) = ScimBody::from_request(req, state).await?;
        let ops = parse_patch_request(&json, K::SCHEMA, &state.limits)?;
        Ok(PatchBody {
            ops,
            kind: PhantomData,
        })
    }
}

fn is_too_long(e: &axum::Error) -> bool {
    std::error::Error::source(e).is_some_and(|inner| inner.is::<http_body_util::LengthLimitError>())
}
