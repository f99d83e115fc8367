//! Route handlers: parse the HTTP request, call the service, shape the SCIM response.

mod discovery;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;

use crate::scim::filter::{parse_attr_path, parse_filter_with, top_paths};
use crate::scim::projection::Projection;
use crate::scim::schema::{ResourceSchema, GROUP_RESOURCE, USER_RESOURCE};
use crate::scim::ScimError;
use crate::service::creates::CreateKey;
use crate::service::list::{ListPage, ListQuery, SortSpec};
use crate::service::{etag_value, RequestCtx, View};

use super::extract::{
    BaseUrl, Ctx, GroupKind, IfNoneMatch, Params, PatchBody, ResourceBody, ResourceId, ScimBody,
    UserKind,
};
use super::render;
use super::response::{created, scim_json, HttpResult};
use super::AppState;

pub use discovery::{resource_type, resource_types, schema, schemas, service_provider_config};

/// A resource read: 304 when `If-None-Match` names its current version (RFC 7644 §3.14),
/// else 200 with its `ETag`. The header is a list of entity tags compared weakly (RFC 9110 §13.1.2);
/// our versions (entryCSN, uSNChanged) never contain a comma or a quote, so splitting on
/// commas is exact here and a typed-header crate would add dependencies for these lines.
fn read(inm: IfNoneMatch, base: &str, v: View, p: &Projection) -> axum::response::Response {
    if let (Some(version), Some(inm)) = (v.meta.version.as_deref(), inm.0.as_deref()) {
        if inm.trim() == "*" || inm.split(',').any(|t| etag_value(t) == version) {
            let tag = render::entity_tag(&v);
            return with_etag(StatusCode::NOT_MODIFIED.into_response(), tag.as_deref());
        }
    }
    written(base, v, p)
}

/// A resource answered with 200 and its `ETag`.
fn written(base: &str, v: View, p: &Projection) -> axum::response::Response {
    let tag = render::entity_tag(&v);
    with_etag(
        scim_json(StatusCode::OK, &render::Body::of(base, v, p)),
        tag.as_deref(),
    )
}

/// A resource just created: 201 with `Location` (RFC 7644 §3.3) and its `ETag`; the
/// create's receipt rides along for the layer that knows whether the answer got out.
fn made(base: &str, mut v: View, p: &Projection) -> axum::response::Response {
    let tag = render::entity_tag(&v);
    let location = render::location(base, v.kind, v.id.as_str());
    let receipt = v.created.take();
    let body = render::Body::of(base, v, p);
    let mut resp = with_etag(created(&body, &location), tag.as_deref());
    if let Some(receipt) = receipt {
        resp.extensions_mut().insert(receipt);
    }
    resp
}

fn with_etag(
    mut resp: axum::response::Response,
    version: Option<&str>,
) -> axum::response::Response {
    if let Some(h) = version.and_then(|v| axum::http::HeaderValue::from_str(v).ok()) {
        resp.headers_mut().insert(axum::http::header::ETAG, h);
    }
    resp
}

/// Which create a POST is (its tenant, type and body), and the id it made when this process
/// applied it but could not deliver the answer (see `service::creates`).
fn retried_create(
    state: &AppState,
    ctx: &RequestCtx,
    kind: &str,
    body: &Value,
) -> (CreateKey, Option<String>) {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let key = CreateKey::of(&ctx.tenant.name, kind, &bytes);
    let id = state.recent_creates.made_by(&key).map(|id| id.to_string());
    (key, id)
}

pub async fn create_user(
    State(state): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Params(params): Params,
    body: ResourceBody<UserKind>,
) -> HttpResult {
    let p = user_projection(&state, &params)?;
    let (key, made_before) = retried_create(&state, &ctx, "User", &body.json);
    if let Some(id) = made_before {
        // the IdP retries a create whose answer it never got: it learns the id it made
        if let Ok(user) = state.users.get(&ctx, &id, &p).await {
            tracing::info!(tenant = %ctx.tenant.name, id = %id, "a create retried after its answer was lost gets the user it made");
            return Ok(made(&base, user, &p));
        }
    }
    let user = state.users.create(&ctx, body.resource, key).await?;
    Ok(made(&base, user, &p))
}

pub async fn get_user(
    State(state): State<Arc<AppState>>,
    inm: IfNoneMatch,
    Ctx(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    ResourceId(id): ResourceId,
    Params(params): Params,
) -> HttpResult {
    let p = user_projection(&state, &params)?;
    let user = state.users.get(&ctx, &id, &p).await?;
    Ok(read(inm, &base, user, &p))
}

pub async fn replace_user(
    State(state): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    ResourceId(id): ResourceId,
    Params(params): Params,
    body: ResourceBody<UserKind>,
) -> HttpResult {
    let p = user_projection(&state, &params)?;
    let user = state.users.replace(&ctx, &id, body.resource).await?;
    Ok(written(&base, user, &p))
}

pub async fn patch_user(
    State(state): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    ResourceId(id): ResourceId,
    Params(params): Params,
    body: PatchBody<UserKind>,
) -> HttpResult {
    let p = user_projection(&state, &params)?;
    let user = state.users.patch(&ctx, &id, &body.ops).await?;
    Ok(written(&base, user, &p))
}

pub async fn delete_user(
    State(state): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    ResourceId(id): ResourceId,
) -> HttpResult {
    state.users.delete(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list_users(
    State(state): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Params(params): Params,
) -> HttpResult {
    users_page(&state, &ctx, &base, &params).await
}

async fn users_page(
    state: &AppState,
    ctx: &RequestCtx,
    base: &str,
    params: &HashMap<String, String>,
) -> HttpResult {
    let q = list_query(params, &state.limits, &USER_RESOURCE)?;
    let page = state.users.list(ctx, &q).await?;
    Ok(scim_json(
        StatusCode::OK,
        &list_response(base, page, &q.projection),
    ))
}

async fn groups_page(
    state: &AppState,
    ctx: &RequestCtx,
    base: &str,
    params: &HashMap<String, String>,
) -> HttpResult {
    let q = list_query(params, &state.limits, &GROUP_RESOURCE)?;
    let page = groups(state)?.list(ctx, &q).await?;
    Ok(scim_json(
        StatusCode::OK,
        &list_response(base, page, &q.projection),
    ))
}

/// `POST /Users/.search` (RFC 7644 §3.4.3): the query in the body.
pub async fn search_users(
    State(state): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    ScimBody(body): ScimBody,
) -> HttpResult {
    users_page(&state, &ctx, &base, &search_params(&body)?).await
}

pub async fn search_groups(
    State(state): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    ScimBody(body): ScimBody,
) -> HttpResult {
    groups_page(&state, &ctx, &base, &search_params(&body)?).await
}

/// `POST /.search`: Users, then Groups, paged as one list. A filter naming an attribute one
/// type does not have matches nothing of that type.
pub async fn search_all(
    State(state): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    ScimBody(body): ScimBody,
) -> HttpResult {
    let params = search_params(&body)?;
    // the password is the one write-only attribute either type has (Users')
    let q = list_query(&params, &state.limits, &USER_RESOURCE)?;
    let p = q.projection.clone();
    let count = q
        .count
        .unwrap_or(state.users.max_results())
        .min(state.users.max_results());
    let start = q.start_index.max(1);
    if q.cursor.is_some() {
        return Err(ScimError::invalid_value(
            "cursor paging is offered on /Users and /Groups, not on /.search across both",
        )
        .into());
    }
    let empty = |start| ListPage {
        total_results: 0,
        start_index: start,
        resources: vec![],
        cursor: None,
    };
    let users = if names_only_attributes_of(&q, &USER_RESOURCE) {
        state
            .users
            .list(
                &ctx,
                &ListQuery {
                    count: Some(count),
                    ..q.clone()
                },
            )
            .await?
    } else {
        empty(start)
    };
    let mut resources = users.resources;
    let mut total = users.total_results;
    if let Some(g) = &state.groups {
        let left = count - resources.len();
        let gq = ListQuery {
            projection: q.projection.clone(),
            sort: q.sort.clone(),
            filter: q.filter.clone(),
            start_index: start.saturating_sub(total).max(1),
            count: Some(left),
            cursor: None,
        };
        let groups = if names_only_attributes_of(&gq, &GROUP_RESOURCE) {
            g.list(&ctx, &gq).await?
        } else {
            empty(1)
        };
        total += groups.total_results;
        resources.extend(groups.resources);
    }
    let page = ListPage {
        total_results: total,
        start_index: start,
        resources,
        cursor: None,
    };
    Ok(scim_json(StatusCode::OK, &list_response(&base, page, &p)))
}

/// Whether every attribute `q`'s filter names exists in `schema` (a filter naming one a type
/// lacks matches nothing of that type).
fn names_only_attributes_of(q: &ListQuery, schema: &ResourceSchema) -> bool {
    q.filter.as_ref().is_none_or(|f| {
        top_paths(f)
            .iter()
            .all(|p| schema.resolve(p.urn.as_deref(), &p.name).is_some())
    })
}

/// A SearchRequest body as the query parameters of the equivalent GET.
fn search_params(body: &Value) -> Result<HashMap<String, String>, ScimError> {
    let Value::Object(obj) = body else {
        return Err(ScimError::invalid_syntax(
            "a SearchRequest must be a JSON object",
        ));
    };
    let mut params = HashMap::new();
    for (k, v) in obj {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Array(items) => items
                .iter()
                .map(|i| {
                    i.as_str().map(str::to_owned).ok_or_else(|| {
                        ScimError::invalid_value(format!(
                            "'{k}' must be an array of attribute names"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            Value::Null => continue,
            _ if k.eq_ignore_ascii_case("schemas") => continue,
            other => return Err(ScimError::invalid_value(format!("'{k}' cannot be {other}"))),
        };
        if !k.eq_ignore_ascii_case("schemas") {
            params.insert(k.clone(), text);
        }
    }
    Ok(params)
}

/// `filter`, `startIndex`, `count` (names matched case-insensitively). Out-of-range paging
/// values clamp (RFC 7644 §3.4.2.4); non-numbers are errors.
fn list_query(
    params: &HashMap<String, String>,
    limits: &crate::scim::Limits,
    schema: &ResourceSchema,
) -> Result<ListQuery, ScimError> {
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
        Some(f) if !f.trim().is_empty() => Some(parse_filter_with(f, limits).map_err(|e| {
            // a filter refused for its size is not echoed back
            match e.limit {
                Some(_) => ScimError::invalid_filter(format!("filter: {e}")),
                None => ScimError::invalid_filter(format!("filter \"{f}\": {e}")),
            }
        })?),
        _ => None,
    };
    let sort = match get("sortBy") {
        Some(by) if !by.trim().is_empty() => {
            let by = parse_attr_path(by)
                .map_err(|e| ScimError::invalid_value(format!("sortBy \"{by}\": {e}")))?;
            let write_only = schema
                .resolve(by.urn.as_deref(), &by.name)
                .is_some_and(|(_, d)| d.returned == crate::scim::schema::Returned::Never);
            if write_only {
                return Err(ScimError::invalid_filter(format!(
                    "sortBy: '{by}' is write-only (returned: never): it cannot be filtered, sorted or returned"
                )));
            }
            let descending = match get("sortOrder").map(str::to_ascii_lowercase).as_deref() {
                None | Some("") | Some("ascending") => false,
                Some("descending") => true,
                Some(other) => {
                    return Err(ScimError::invalid_value(format!(
                        "sortOrder must be \"ascending\" or \"descending\", got \"{other}\""
                    )))
                }
            };
            Some(SortSpec { by, descending })
        }
        _ => None,
    };
    Ok(ListQuery {
        filter,
        start_index: int("startIndex")?.unwrap_or(1).max(1) as usize,
        count: int("count")?.map(|c| c.max(0) as usize),
        sort,
        projection: projection(params, limits, schema)?,
        cursor: get("cursor").map(str::to_owned),
    })
}

/// `attributes` / `excludedAttributes` from query parameters (names case-insensitive), for
/// resources of `schema`: bounded, and never naming a write-only attribute.
fn projection(
    params: &HashMap<String, String>,
    limits: &crate::scim::Limits,
    schema: &ResourceSchema,
) -> Result<Projection, ScimError> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    Projection::parse(get("attributes"), get("excludedAttributes"), limits, schema)
}

/// `projection` for Users.
fn user_projection(
    state: &AppState,
    params: &HashMap<String, String>,
) -> Result<Projection, ScimError> {
    projection(params, &state.limits, &USER_RESOURCE)
}

/// `projection` for Groups.
fn group_projection(
    state: &AppState,
    params: &HashMap<String, String>,
) -> Result<Projection, ScimError> {
    projection(params, &state.limits, &GROUP_RESOURCE)
}

fn groups(state: &AppState) -> Result<&crate::service::groups::Groups, ScimError> {
    state
        .groups
        .as_ref()
        .ok_or_else(|| ScimError::not_found("groups are not configured on this server"))
}

fn list_response<'a>(base: &'a str, page: ListPage, projection: &Projection) -> render::List<'a> {
    let resources = page
        .resources
        .into_iter()
        .map(|v| render::Body::of(base, v, projection))
        .collect();
    render::List {
        total_results: page.total_results,
        start_index: page.start_index,
        cursor: page.cursor,
        resources,
    }
}

pub async fn create_group(
    State(state): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Params(params): Params,
    body: ResourceBody<GroupKind>,
) -> HttpResult {
    let p = group_projection(&state, &params)?;
    let (key, made_before) = retried_create(&state, &ctx, "Group", &body.json);
    if let Some(id) = made_before {
        if let Ok(group) = groups(&state)?.get(&ctx, &id, p.includes("members")).await {
            tracing::info!(tenant = %ctx.tenant.name, id = %id, "a create retried after its answer was lost gets the group it made");
            return Ok(made(&base, group, &p));
        }
    }
    let group = groups(&state)?
        .create(&ctx, body.resource, p.includes("members"), key)
        .await?;
    Ok(made(&base, group, &p))
}

pub async fn get_group(
    State(state): State<Arc<AppState>>,
    inm: IfNoneMatch,
    Ctx(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    ResourceId(id): ResourceId,
    Params(params): Params,
) -> HttpResult {
    let p = group_projection(&state, &params)?;
    let group = groups(&state)?
        .get(&ctx, &id, p.includes("members"))
        .await?;
    Ok(read(inm, &base, group, &p))
}

pub async fn list_groups(
    State(state): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Params(params): Params,
) -> HttpResult {
    groups_page(&state, &ctx, &base, &params).await
}

pub async fn replace_group(
    State(state): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    ResourceId(id): ResourceId,
    Params(params): Params,
    body: ResourceBody<GroupKind>,
) -> HttpResult {
    let p = group_projection(&state, &params)?;
    let group = groups(&state)?
        .replace(&ctx, &id, body.resource, p.includes("members"))
        .await?;
    Ok(written(&base, group, &p))
}

/// Group PATCH answers 204 (RFC 7644 §3.5.2 allows it) so that a membership change never
/// reads a large member list back; with `attributes`/`excludedAttributes` it answers 200
/// with the resource.
pub async fn patch_group(
    State(state): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    ResourceId(id): ResourceId,
    Params(params): Params,
    body: PatchBody<GroupKind>,
) -> HttpResult {
    let p = group_projection(&state, &params)?;
    let respond = p.is_set().then(|| p.includes("members"));
    match groups(&state)?.patch(&ctx, &id, body.ops, respond).await? {
        Some(group) => Ok(written(&base, group, &p)),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

pub async fn delete_group(
    State(state): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    ResourceId(id): ResourceId,
) -> HttpResult {
    groups(&state)?.delete(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests;
