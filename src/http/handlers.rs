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
    Query(params): Query<HashMap<String, String>>,
) -> HttpResult {
    let user = state.users.get(&ctx(&state, &headers, tenant), &id).await?;
    Ok(scim_json(
        StatusCode::OK,
        &Projection::from_params(&params).apply(user),
    ))
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
        &list_response(page, &Projection::from_params(&params)),
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

/// `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5), at the level of top-level
/// attributes: `id` and `schemas` are always returned.
#[derive(Debug, Default)]
struct Projection {
    attributes: Option<Vec<String>>,
    excluded: Vec<String>,
}

impl Projection {
    fn from_params(params: &HashMap<String, String>) -> Projection {
        let list = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| {
                    v.split(',')
                        .map(|a| top_level_name(a.trim()))
                        .filter(|a| !a.is_empty())
                        .collect::<Vec<_>>()
                })
        };
        Projection {
            attributes: list("attributes"),
            excluded: list("excludedAttributes").unwrap_or_default(),
        }
    }

    fn is_set(&self) -> bool {
        self.attributes.is_some() || !self.excluded.is_empty()
    }

    fn includes(&self, name: &str) -> bool {
        let has = |l: &[String]| l.iter().any(|a| a.eq_ignore_ascii_case(name));
        if matches!(name, "id" | "schemas") {
            return true;
        }
        match &self.attributes {
            Some(only) => has(only),
            None => !has(&self.excluded),
        }
    }

    fn apply(&self, mut v: Value) -> Value {
        if let Value::Object(m) = &mut v {
            m.retain(|k, _| self.includes(k));
        }
        v
    }
}

/// `name.givenName` → `name`; `urn:…:User:department` → the extension URN.
fn top_level_name(a: &str) -> String {
    if a.to_ascii_lowercase().starts_with("urn:") {
        return match a.rfind(':') {
            Some(i)
                if a[i + 1..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase()) =>
            {
                a[..i].to_owned()
            }
            _ => a.to_owned(),
        };
    }
    a.split('.').next().unwrap_or("").to_owned()
}

fn groups(state: &AppState) -> Result<&crate::service::groups::Groups, ScimError> {
    state
        .groups
        .as_ref()
        .ok_or_else(|| ScimError::not_found("groups are not configured on this server"))
}

fn list_response(page: crate::service::users::ListPage, projection: &Projection) -> Value {
    let resources: Vec<Value> = page
        .resources
        .into_iter()
        .map(|r| projection.apply(r))
        .collect();
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": page.total_results,
        "startIndex": page.start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

pub async fn create_group(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(tenant): Extension<Arc<Tenant>>,
    ScimBody(body): ScimBody,
) -> HttpResult {
    let group = groups(&state)?
        .create(&ctx(&state, &headers, tenant), &body)
        .await?;
    Ok(created(&group))
}

pub async fn get_group(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> HttpResult {
    let p = Projection::from_params(&params);
    let group = groups(&state)?
        .get(&ctx(&state, &headers, tenant), &id, p.includes("members"))
        .await?;
    Ok(scim_json(StatusCode::OK, &p.apply(group)))
}

pub async fn list_groups(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(tenant): Extension<Arc<Tenant>>,
    Query(params): Query<HashMap<String, String>>,
) -> HttpResult {
    let q = list_query(&params)?;
    let p = Projection::from_params(&params);
    let page = groups(&state)?
        .list(&ctx(&state, &headers, tenant), &q, p.includes("members"))
        .await?;
    Ok(scim_json(StatusCode::OK, &list_response(page, &p)))
}

pub async fn replace_group(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    ScimBody(body): ScimBody,
) -> HttpResult {
    let p = Projection::from_params(&params);
    let group = groups(&state)?
        .replace(&ctx(&state, &headers, tenant), &id, &body)
        .await?;
    Ok(scim_json(StatusCode::OK, &p.apply(group)))
}

/// Group PATCH answers 204 (RFC 7644 §3.5.2 allows it) so that a membership change never
/// reads a large member list back; with `attributes`/`excludedAttributes` it answers 200
/// with the resource.
pub async fn patch_group(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    ScimBody(body): ScimBody,
) -> HttpResult {
    let p = Projection::from_params(&params);
    let respond = p.is_set().then(|| p.includes("members"));
    match groups(&state)?
        .patch(&ctx(&state, &headers, tenant), &id, &body, respond)
        .await?
    {
        Some(group) => Ok(scim_json(StatusCode::OK, &p.apply(group))),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

pub async fn delete_group(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(id): Path<String>,
) -> HttpResult {
    groups(&state)?
        .delete(&ctx(&state, &headers, tenant), &id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
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
    fn projection_keeps_id_and_schemas_and_honours_lists() {
        let p = Projection::from_params(
            &[("excludedAttributes".to_owned(), "members,meta".to_owned())].into(),
        );
        assert!(!p.includes("members") && !p.includes("meta") && p.includes("displayName"));
        let p = Projection::from_params(
            &[(
                "attributes".to_owned(),
                "userName,name.givenName".to_owned(),
            )]
            .into(),
        );
        assert!(
            p.includes("userName")
                && p.includes("name")
                && p.includes("id")
                && !p.includes("emails")
        );
        assert_eq!(
            top_level_name("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        );
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
