//! The discovery endpoints (RFC 7644 §4): ServiceProviderConfig, Schemas and ResourceTypes, with
//! this server's base URL.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use crate::http::documents::with_base;
use crate::http::extract::ResourceId;
use crate::http::response::{scim_json, HttpResult};
use crate::http::AppState;
use crate::scim::{ScimError, LIST_RESPONSE_SCHEMA};

pub async fn service_provider_config(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> HttpResult {
    let base = state.base_url(&headers);
    Ok(scim_json(
        StatusCode::OK,
        &with_base(&state.discovery.service_provider_config, &base),
    ))
}

fn list_of(docs: &[Value], base: &str) -> Value {
    let resources: Vec<Value> = docs.iter().map(|d| with_base(d, base)).collect();
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

fn one_of(docs: &[Value], id: &str, base: &str, what: &str) -> HttpResult {
    docs.iter()
        .find(|d| d["id"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(id)))
        .map(|d| scim_json(StatusCode::OK, &with_base(d, base)))
        .ok_or_else(|| ScimError::not_found(format!("no {what} \"{id}\"")).into())
}

pub async fn schemas(State(state): State<Arc<AppState>>, headers: HeaderMap) -> HttpResult {
    Ok(scim_json(
        StatusCode::OK,
        &list_of(&state.discovery.schemas, &state.base_url(&headers)),
    ))
}

pub async fn schema(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ResourceId(id): ResourceId,
) -> HttpResult {
    one_of(
        &state.discovery.schemas,
        &id,
        &state.base_url(&headers),
        "schema",
    )
}

pub async fn resource_types(State(state): State<Arc<AppState>>, headers: HeaderMap) -> HttpResult {
    Ok(scim_json(
        StatusCode::OK,
        &list_of(&state.discovery.resource_types, &state.base_url(&headers)),
    ))
}

pub async fn resource_type(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ResourceId(id): ResourceId,
) -> HttpResult {
    one_of(
        &state.discovery.resource_types,
        &id,
        &state.base_url(&headers),
        "resource type",
    )
}
