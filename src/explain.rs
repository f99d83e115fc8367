//! `scim2ldap explain`: what would this request do? The request runs through the same
//! router, authentication, mapping and write pipeline as in the service, against a dry-run
//! directory (`directory::dry_run`) that reads from the real one and sends no write. The
//! answer is every LDAP operation in order, writes marked as not sent, and the SCIM answer
//! the service would give. Passwords are masked.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Method, Request};
use tower::ServiceExt;

use crate::config::{ConfigError, RawConfig, TokenConfig};
use crate::directory::dry_run::{DryRun, Recorded};
use crate::directory::Directory;

/// What a request would do.
pub struct Explained {
    pub tenant: String,
    pub operations: Vec<Recorded>,
    pub status: u16,
    /// The answer's body (JSON when it is JSON).
    pub body: String,
    /// Which placement rule chose the container of each user added or moved.
    pub placement: Vec<String>,
}

/// Why a request could not be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("there is no tenant {0} (configured: {1})")]
    NoSuchTenant(String, String),
    #[error("the config has several tenants ({0}): say which with --tenant")]
    WhichTenant(String),
    #[error("the config has no tenant: add a [tenants.NAME] section")]
    NoTenant,
    #[error("{0} is not an HTTP method")]
    Method(String),
    #[error("cannot make the request: {0}")]
    Request(String),
}

/// Runs `method path` (with `body`) as `tenant` would send it, writing nothing.
pub async fn explain(
    raw: &RawConfig,
    tenant: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<Explained, ExplainError> {
    let tenant = which_tenant(raw, tenant)?;
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| ExplainError::Method(method.to_owned()))?;

    // a credential for this run only, of the tenant asked for
    let secret = crate::auth::new_token();
    let mut raw = raw.clone();
    raw.audit.off = true;
    if let Some(t) = raw.tenants.get_mut(&tenant) {
        t.tokens.insert(
            "scim2ldap-explain".to_owned(),
            TokenConfig {
                sha256: hex::encode(crate::auth::hash_token(&secret)),
                expires: None,
            },
        );
        t.rate_limit = None;
    }
    let dry: Arc<Mutex<Option<Arc<DryRun>>>> = Arc::new(Mutex::new(None));
    let keep = dry.clone();
    let app = crate::app::build_on(&raw, None, move |real| {
        let d = Arc::new(DryRun::new(real));
        if let Ok(mut k) = keep.lock() {
            *k = Some(d.clone());
        }
        d as Arc<dyn Directory>
    })?;

    let request = request_for(method, path, &secret, body)?;
    let response = crate::http::router(app.state.clone())
        .oneshot(request)
        .await
        .map_err(|e| ExplainError::Request(e.to_string()))?;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
        .await
        .map_err(|e| ExplainError::Request(e.to_string()))?;
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
    };
    let operations = dry
        .lock()
        .ok()
        .and_then(|d| d.as_ref().map(|d| d.recorded()))
        .unwrap_or_default();
    let placement = app
        .state
        .auth
        .tenant(&tenant)
        .map(|t| placement_notes(&t, &operations))
        .unwrap_or_default();
    Ok(Explained {
        tenant,
        operations,
        status,
        body,
        placement,
    })
}

/// For each user entry added or moved under the tenant's users container: the rules that
/// place users in its container (several rules may share one), or that none did.
fn placement_notes(tenant: &crate::auth::Tenant, ops: &[Recorded]) -> Vec<String> {
    use crate::directory::filter::{is_under, split_first_rdn};
    let rules = tenant.placement.rules();
    if rules.is_empty() {
        return Vec::new();
    }
    let home = &tenant.users_container;
    ops.iter()
        .filter_map(|op| match op {
            Recorded::Add { dn, .. } => Some((dn.clone(), split_first_rdn(dn).1)),
            Recorded::Rename {
                dn,
                new_parent: Some(p),
                ..
            } => Some((dn.clone(), p.clone())),
            _ => None,
        })
        .filter(|(_, parent)| {
            is_under(parent, home) || crate::directory::Dn::new(parent.as_str()) == *home
        })
        .map(|(dn, parent)| {
            let parent = crate::directory::Dn::new(parent);
            let by: Vec<String> = rules
                .iter()
                .filter(|r| r.container == parent)
                .map(|r| format!("{} (when = '{}')", r.key, r.when_text))
                .collect();
            if by.is_empty() {
                format!("{dn}: no placement rule matches; the tenant's container {home}")
            } else {
                format!("{dn}: placed in {parent} by {}", by.join(" or "))
            }
        })
        .collect()
}

/// The tenant asked for, or the only one.
fn which_tenant(raw: &RawConfig, tenant: Option<&str>) -> Result<String, ExplainError> {
    let names = || raw.tenants.keys().cloned().collect::<Vec<_>>().join(", ");
    match tenant {
        Some(t) if raw.tenants.contains_key(t) => Ok(t.to_owned()),
        Some(t) => Err(ExplainError::NoSuchTenant(t.to_owned(), names())),
        None if raw.tenants.len() == 1 => {
            Ok(raw.tenants.keys().next().cloned().unwrap_or_default())
        }
        None if raw.tenants.is_empty() => Err(ExplainError::NoTenant),
        None => Err(ExplainError::WhichTenant(names())),
    }
}

/// The request as a client would send it to `path` (under `/scim/v2` when it is not
/// already), with the run's own credential.
fn request_for(
    method: Method,
    path: &str,
    secret: &str,
    body: Option<Vec<u8>>,
) -> Result<Request<Body>, ExplainError> {
    let path = if path.starts_with(crate::http::BASE_PATH) {
        path.to_owned()
    } else {
        format!(
            "{}/{}",
            crate::http::BASE_PATH,
            path.trim_start_matches('/')
        )
    };
    let mut request = Request::builder()
        .method(method)
        .uri(&path)
        .header(header::HOST, "localhost")
        .header(header::AUTHORIZATION, format!("Bearer {secret}"));
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/scim+json");
    }
    request
        .body(Body::from(body.unwrap_or_default()))
        .map_err(|e| ExplainError::Request(e.to_string()))
}

impl std::fmt::Display for Explained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let writes = self.operations.iter().filter(|o| o.is_write()).count();
        writeln!(
            f,
            "As tenant {}: {} LDAP operation(s), {} of them write(s), none sent:\n",
            self.tenant,
            self.operations.len(),
            writes
        )?;
        for (i, op) in self.operations.iter().enumerate() {
            let text = op.to_string();
            let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
            let mark = if op.is_write() { "  (not sent)" } else { "" };
            writeln!(f, "{:>3}. {first}{mark}", i + 1)?;
            if !rest.is_empty() {
                writeln!(f, "{rest}")?;
            }
        }
        for note in &self.placement {
            writeln!(f, "\nPlacement: {note}")?;
        }
        writeln!(
            f,
            "\nThe answer the service would give: {}\n{}",
            self.status, self.body
        )?;
        if self
            .operations
            .iter()
            .any(|o| matches!(o, Recorded::Add { .. }))
        {
            writeln!(
                f,
                "(the directory assigns a new entry's id when it is added; shown here as zeros)"
            )?;
        }
        Ok(())
    }
}
