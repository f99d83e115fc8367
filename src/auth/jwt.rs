//! OAuth2 access tokens (JWTs, e.g. from a client-credentials grant) per tenant: the signature
//! checked against the issuer's published keys (asymmetric algorithms only: `none` and HMAC
//! are refused), `iss`, `aud`, `exp` and `nbf` with a small leeway, then the scope and claim
//! the tenant requires (403 without them). Keys come from a file or a URL, are cached, and are
//! fetched again when a token names a key not yet known (at most every 30 s).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::RwLock;

use super::{AuthError, Credential, Tenant};
use crate::config::{ConfigError, OAuthConfig, RequiredClaim};

/// The algorithms accepted: public-key signatures only.
const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The shortest time between two fetches of the keys.
const REFETCH_AFTER: Duration = Duration::from_secs(30);
/// After a fetch that failed, the next one may come sooner.
const RETRY_FAILED_FETCH_AFTER: Duration = Duration::from_secs(5);
/// The longest a fetch of the keys may take (only the request that started it waits).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// When the keys were last fetched (and why that fetch failed, if it did), and whether a
/// fetch is under way.
#[derive(Default)]
struct Fetches {
    last: Option<(Instant, Option<String>)>,
    in_flight: bool,
}

/// What a token naming an unknown key gets.
enum KeyWait {
    /// This request fetches the keys.
    Fetch,
    /// Another request is fetching them: no waiting in line behind it (503, retry shortly).
    Busy,
    /// The last fetch failed a moment ago.
    Failed(String),
    /// The keys are recent and do not have it.
    Unknown,
}

enum KeySource {
    File(PathBuf),
    Url(String, reqwest::Client),
}

pub struct Verifier {
    pub tenant: Arc<Tenant>,
    issuer: String,
    audience: String,
    required_scope: Option<String>,
    required_claim: Option<RequiredClaim>,
    leeway: u64,
    source: KeySource,
    keys: RwLock<JwkSet>,
    /// Held only to decide, never across a fetch: concurrent requests never queue behind one.
    fetched: std::sync::Mutex<Fetches>,
}

impl Verifier {
    /// From `[tenants.NAME.oauth]`; a key file is read now, a URL on first use.
    pub fn from_config(tenant: Arc<Tenant>, cfg: &OAuthConfig) -> Result<Verifier, ConfigError> {
        let key = |k: &str| format!("tenants.{}.oauth.{k}", tenant.name);
        let source = match (&cfg.jwks_file, &cfg.jwks_url) {
            (Some(f), None) => KeySource::File(f.clone()),
            (None, Some(u)) => {
                let url = url::Url::parse(u).map_err(|e| {
                    ConfigError::new(
                        key("jwks_url"),
                        format!("not a URL ({e})"),
                        "e.g. \"https://login.example.com/.well-known/jwks.json\"",
                    )
                })?;
                let loopback = url
                    .host_str()
                    .is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]");
                if url.scheme() != "https" && !loopback {
                    return Err(ConfigError::new(
                        key("jwks_url"),
                        "the issuer's keys must come over https",
                        "use the issuer's https:// JWKS URL (or jwks_file)",
                    ));
                }
                let client = reqwest::Client::builder()
                    .timeout(FETCH_TIMEOUT)
                    .build()
                    .map_err(|e| ConfigError::new(key("jwks_url"), e.to_string(), ""))?;
                KeySource::Url(u.clone(), client)
            }
            _ => return Err(ConfigError::new(
                key("jwks_file"),
                "set exactly one of jwks_file and jwks_url",
                "jwks_url = \"https://…/jwks.json\", or jwks_file = \"/etc/scim2ldap/jwks.json\"",
            )),
        };
        let keys = match &source {
            KeySource::File(path) => read_jwks(path).map_err(|e| {
                ConfigError::new(
                    key("jwks_file"),
                    e,
                    "point it at the issuer's JWKS document",
                )
            })?,
            KeySource::Url(..) => JwkSet { keys: vec![] },
        };
        Ok(Verifier {
            tenant,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            required_scope: cfg.required_scope.clone(),
            required_claim: cfg.required_claim.clone(),
            leeway: cfg.leeway_secs,
            source,
            keys: RwLock::new(keys),
            fetched: std::sync::Mutex::new(Fetches::default()),
        })
    }

    /// Whether a token claiming `iss` and `aud` is this tenant's to verify.
    pub fn is_for(&self, iss: &str, aud: &[String]) -> bool {
        self.issuer == iss && aud.contains(&self.audience)
    }

    pub fn issuer_and_audience(&self) -> (&str, &str) {
        (&self.issuer, &self.audience)
    }

    /// Verifies `token` and the tenant's requirements; the credential it stands for.
    pub async fn verify(&self, token: &str) -> Result<Credential, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::InvalidJwt(format!("unreadable header ({e})")))?;
        if !ASYMMETRIC.contains(&header.alg) {
            return Err(AuthError::InvalidJwt(format!(
                "algorithm {:?} is not accepted (only RS*, PS*, ES256/384 and EdDSA)",
                header.alg
            )));
        }
        let jwk = self.key(header.kid.as_deref()).await?;
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| AuthError::InvalidJwt(format!("the issuer's key is unusable ({e})")))?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::InvalidJwt(e.to_string()),
            }
        })?;
        let claims = data.claims;
        if let Some(scope) = &self.required_scope {
            if !scopes(&claims).contains(&scope.as_str()) {
                return Err(AuthError::InsufficientScope {
                    scope: Some(scope.clone()),
                    why: format!("the token does not grant the scope \"{scope}\""),
                });
            }
        }
        if let Some(req) = &self.required_claim {
            let holds = match claims.get(&req.name) {
                Some(Value::String(s)) => *s == req.value,
                Some(Value::Array(items)) => {
                    items.iter().any(|i| i.as_str() == Some(req.value.as_str()))
                }
                _ => false,
            };
            if !holds {
                return Err(AuthError::InsufficientScope {
                    scope: None,
                    why: format!(
                        "the token's \"{}\" claim does not hold \"{}\"",
                        req.name, req.value
                    ),
                });
            }
        }
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(Credential::Jwt {
            subject: text("sub"),
            client_id: text("client_id")
                .or_else(|| text("azp"))
                .or_else(|| text("appid")),
        })
    }

    /// The key `kid` names (or the only key, when the token names none), fetching the keys
    /// again when it is not known and the last fetch is old enough. One request fetches; the
    /// others that need a key meanwhile are answered at once (503 retry-shortly), so forged
    /// key ids cannot make requests pile up behind a slow issuer.
    async fn key(&self, kid: Option<&str>) -> Result<Jwk, AuthError> {
        if let Some(k) = pick(&*self.keys.read().await, kid) {
            return Ok(k);
        }
        match self.key_wait() {
            KeyWait::Busy => Err(AuthError::KeysUnavailable(
                "the issuer's keys are being fetched".into(),
            )),
            KeyWait::Failed(why) => Err(AuthError::KeysUnavailable(why)),
            KeyWait::Unknown => Err(AuthError::InvalidJwt(
                "signed with a key the issuer does not publish".into(),
            )),
            KeyWait::Fetch => {
                let _done = FetchDone(&self.fetched);
                let outcome = self.fetch().await;
                let failure = match outcome {
                    Ok(keys) => {
                        *self.keys.write().await = keys;
                        None
                    }
                    Err(AuthError::KeysUnavailable(why)) => Some(why),
                    Err(other) => Some(other.to_string()),
                };
                if let Ok(mut f) = self.fetched.lock() {
                    f.last = Some((Instant::now(), failure.clone()));
                }
                if let Some(why) = failure {
                    tracing::warn!(tenant = %self.tenant.name, reason = %why, "cannot verify access tokens: the issuer's keys are unavailable (next try in 5 s)");
                    return Err(AuthError::KeysUnavailable(why));
                }
                pick(&*self.keys.read().await, kid).ok_or_else(|| {
                    AuthError::InvalidJwt("signed with a key the issuer does not publish".into())
                })
            }
        }
    }

    /// Decides, under a short lock, what a request needing an unknown key does.
    fn key_wait(&self) -> KeyWait {
        let Ok(mut f) = self.fetched.lock() else {
            return KeyWait::Busy;
        };
        if f.in_flight {
            return KeyWait::Busy;
        }
        let due = match &f.last {
            None => true,
            Some((at, None)) => at.elapsed() >= REFETCH_AFTER,
            Some((at, Some(_))) => at.elapsed() >= RETRY_FAILED_FETCH_AFTER,
        };
        if due {
            f.in_flight = true;
            return KeyWait::Fetch;
        }
        match &f.last {
            Some((_, Some(why))) => KeyWait::Failed(why.clone()),
            _ => KeyWait::Unknown,
        }
    }

    async fn fetch(&self) -> Result<JwkSet, AuthError> {
        match &self.source {
            KeySource::File(path) => read_jwks(path).map_err(AuthError::KeysUnavailable),
            KeySource::Url(url, client) => {
                let resp = client
                    .get(url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| AuthError::KeysUnavailable(format!("fetching {url}: {e}")))?;
                let bytes = resp
                    .bytes()
                    .await
                    .map_err(|e| AuthError::KeysUnavailable(format!("reading {url}: {e}")))?;
                if bytes.len() > 1024 * 1024 {
                    return Err(AuthError::KeysUnavailable(format!(
                        "{url} answered more than 1 MiB"
                    )));
                }
                serde_json::from_slice(&bytes)
                    .map_err(|e| AuthError::KeysUnavailable(format!("{url} is not a JWKS ({e})")))
            }
        }
    }
}

/// Ends a fetch, however its request ends (a dropped request must not leave it "under way").
struct FetchDone<'a>(&'a std::sync::Mutex<Fetches>);

impl Drop for FetchDone<'_> {
    fn drop(&mut self) {
        if let Ok(mut f) = self.0.lock() {
            f.in_flight = false;
        }
    }
}

fn pick(keys: &JwkSet, kid: Option<&str>) -> Option<Jwk> {
    match kid {
        Some(kid) => keys.find(kid).cloned(),
        None if keys.keys.len() == 1 => keys.keys.first().cloned(),
        None => None,
    }
}

fn read_jwks(path: &std::path::Path) -> Result<JwkSet, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{} is not a JWKS: {e}", path.display()))
}

/// The scopes a token grants: `scope` (space-separated, RFC 8693) or `scp` (a list or a
/// string, as Entra and Okta write it).
fn scopes(claims: &Value) -> Vec<&str> {
    let mut all = Vec::new();
    for key in ["scope", "scp"] {
        match claims.get(key) {
            Some(Value::String(s)) => all.extend(s.split_whitespace()),
            Some(Value::Array(a)) => all.extend(a.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    all
}

/// Whether a bearer value is shaped like a JWT (three base64url parts, a JSON header).
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.matches('.').count() == 2
}

/// `iss` and `aud` (as a list) of a JWT, unverified: only to choose the tenant whose keys
/// then verify it.
pub fn peek_issuer_audience(token: &str) -> Option<(String, Vec<String>)> {
    let payload = token.split('.').nth(1)?;
    if payload.len() > 64 * 1024 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let iss = claims.get("iss")?.as_str()?.to_owned();
    let aud = match claims.get("aud")? {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => return None,
    };
    Some((iss, aud))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scopes_come_from_scope_or_scp() {
        let c = json!({"scope": "read admin"});
        assert!(scopes(&c).contains(&"admin"));
        let c = json!({"scp": ["admin"]});
        assert!(scopes(&c).contains(&"admin"));
        let c = json!({"scp": "read"});
        assert!(!scopes(&c).contains(&"admin"));
    }

    #[test]
    fn jwt_shapes_and_peeked_claims() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"iss": "https://i", "aud": ["a", "b"]}).to_string());
        let t = format!("eyJhbGciOiJFUzI1NiJ9.{payload}.sig");
        assert!(looks_like_jwt(&t));
        assert!(!looks_like_jwt("scim2ldap_abc"));
        assert_eq!(
            peek_issuer_audience(&t),
            Some(("https://i".into(), vec!["a".into(), "b".into()]))
        );
    }
}
