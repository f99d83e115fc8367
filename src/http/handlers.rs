//! Route handlers: parse the HTTP request, call the service, shape the SCIM response.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Extension;
use serde_json::{json, Value};

use super::middleware::ScimBody;
use super::response::{created, scim_json, HttpResult};
use super::AppState;
use crate::auth::Tenant;
use crate::scim::filter::parse_filter;
use crate::scim::{ScimError, LIST_RESPONSE_SCHEMA};
use crate::service::discovery::with_base;
use crate::service::users::ListQuery;
use crate::service::RequestCtx;

fn ctx(state: &AppState, headers: &HeaderMap, tenant: Arc<Tenant>) -> RequestCtx {
    RequestCtx {
        tenant,
        base_url: state.base_url(headers),
    }
}

pub async fn create_user(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(tenant): Extension<Arc<Tenant>>,
    ScimBody(body): ScimBody,
) -> HttpResult {
    let user = state
        .users
        .create(&ctx(&state, &headers, tenant), &body)
        .await?;
    Ok(created(&user))
}

pub async fn get_user(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(id): Path<String>,
) -> HttpResult {
    let user = state.users.get(&ctx(&state, &headers, tenant), &id).await?;
    Ok(scim_json(StatusCode::OK, &user))
}

pub async fn replace_user(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> HttpResult {
    let user = state
        .users
        .replace(&ctx(&state, &headers, tenant), &id, &body)
        .await?;
    Ok(scim_json(StatusCode::OK, &user))
}

pub async fn patch_user(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> HttpResult {
    let user = state
        .users
        .patch(&ctx(&state, &headers, tenant), &id, &body)
        .await?;
    Ok(scim_json(StatusCode::OK, &user))
}

pub async fn delete_user(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(id): Path<String>,
) -> HttpResult {
    state
        .users
        .delete(&ctx(&state, &headers, tenant), &id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list_users(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(tenant): Extension<Arc<Tenant>>,
    Query(params): Query<HashMap<String, String>>,
) -> HttpResult {
    let q = list_query(&params)?;
    let page = state.users.list(&ctx(&state, &headers, tenant), &q).await?;
    Ok(scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_RESPONSE_SCHEMA],
            "totalResults": page.total_results,
            "startIndex": page.start_index,
            "itemsPerPage": page.resources.len(),
            "Resources": page.resources,
        }),
    ))
}

/// `filter`, `startIndex`, `count` (names matched case-insensitively). Out-of-range paging
/// values clamp (RFC 7644 §3.4.2.4); non-numbers are errors.
fn list_query(params: &HashMap<String, String>) -> Result<ListQuery, ScimError> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let int = |name: &str| -> Result<Option<i64>, ScimError> {
        get(name)
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    ScimError::invalid_value(format!("{name} must be an integer, got \"{v}\""))
                })
            })
            .transpose()
    };
    let filter = match get("filter") {
        Some(f) if !f.trim().is_empty() => Some(
            parse_filter(f)
                .map_err(|e| ScimError::invalid_filter(format!("filter \"{f}\": {e}")))?,
        ),
        _ => None,
    };
    Ok(ListQuery {
        filter,
        start_index: int("startIndex")?.unwrap_or(1).max(1) as usize,
        count: int("count")?.map(|c| c.max(0) as usize),
    })
}

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
    Path(id): Path<String>,
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
    Path(id): Path<String>,
) -> HttpResult {
    one_of(
        &state.discovery.resource_types,
        &id,
        &state.base_url(&headers),
        "resource type",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<ListQuery, ScimError> {
        list_query(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn paging_parameters_clamp_and_reject_garbage() {
        let l = q(&[("startIndex", "-4"), ("count", "-1")]).unwrap();
        assert_eq!((l.start_index, l.count), (1, Some(0)));
        let l = q(&[("startindex", "3"), ("COUNT", "10")]).unwrap();
        assert_eq!((l.start_index, l.count), (3, Some(10)));
        assert_eq!(q(&[("count", "ten")]).unwrap_err().status, 400);
    }

    #[test]
    fn malformed_filters_are_invalid_filter_errors_with_position() {
        let e = q(&[("filter", "userName eq")]).unwrap_err();
        assert_eq!(e.scim_type, Some(crate::scim::ScimType::InvalidFilter));
        assert!(e.detail.contains("character 12"), "{}", e.detail);
    }
}
