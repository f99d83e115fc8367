//! Who is calling. Each request carries a bearer credential that belongs to one tenant (an IdP
//! connection), which fixes the part of the directory it sees: a static token, from the config
//! file or from the token store (`store`), or an OAuth2 access token signed by the tenant's
//! issuer (`jwt`). Static tokens are random, shown once, and kept only as their SHA-256 (a fast
//! hash suffices: they carry 256 random bits, so there is nothing to brute-force).

pub mod jwt;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex, RwLock as StdRwLock};
use std::time::{Duration, SystemTime};

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracing::{error, info, warn};

use crate::config::{ConfigError, RawConfig};
use crate::directory::Dn;

/// A tenant: one IdP connection and the part of the directory it may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
    pub users_container: Dn,
    /// Where this tenant's groups live, when groups are configured.
    pub groups_container: Option<Dn>,
    /// DN of the group users created through this tenant join.
    pub default_group: Option<Dn>,
    /// Where this tenant's role groups live, when roles are group memberships.
    pub roles_container: Option<Dn>,
    /// How many removals this tenant may make before the safety valve holds them.
    pub safety: crate::safety::Threshold,
    /// Which container under `users_container` each user goes to.
    pub placement: crate::mapping::placement::Placement,
}

/// What authenticated a request: for the audit trail. Never a secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Credential {
    /// A static token, by its name (and, from the store, its recognisable prefix).
    Token {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    /// The bridge itself, for work no request asked for (the repair sweep).
    Service { name: String },
    /// An OAuth2 access token: its subject and client.
    Jwt {
        #[serde(skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: Arc<Tenant>,
    pub credential: Credential,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send 'Authorization: Bearer <token>'")]
    Missing,
    #[error("the Authorization header must use the Bearer scheme")]
    NotBearer,
    #[error("invalid bearer token")]
    Invalid,
    #[error("the bearer token has expired; the admin creates a new one (scim2ldap token create, or the issuer)")]
    Expired,
    /// A JWT that fails verification; the reason, never the token.
    #[error("invalid access token: {0}")]
    InvalidJwt(String),
    /// A valid JWT that lacks what the tenant requires (403).
    #[error("forbidden: {why}")]
    InsufficientScope { scope: Option<String>, why: String },
    /// The issuer's keys could not be read or fetched (503: not the client's fault).
    #[error("the token issuer's keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl AuthError {
    /// A short name for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::NotBearer => "not_bearer",
            AuthError::Invalid => "invalid_token",
            AuthError::Expired => "expired",
            AuthError::InvalidJwt(_) => "invalid_jwt",
            AuthError::InsufficientScope { .. } => "insufficient_scope",
            AuthError::KeysUnavailable(_) => "keys_unavailable",
        }
    }
}

/// A static token, as the authenticator keeps it.
#[derive(Debug, Clone)]
struct TokenEntry {
    tenant: Arc<Tenant>,
    name: String,
    prefix: Option<String>,
    expires: Option<OffsetDateTime>,
}

/// How often a running server looks at the token store (`reload_store`).
pub const STORE_POLL: Duration = Duration::from_secs(1);
/// Every how many looks it writes its usage file (`flush_usage`): every 30 s.
pub const FLUSH_EVERY_POLLS: u64 = 30;

/// The token store as a running server sees it: the tokens it held when last read, and when
/// each was last used here (written out in batches).
struct LiveStore {
    path: PathBuf,
    tokens: StdRwLock<Arc<HashMap<[u8; 32], TokenEntry>>>,
    /// (modified, length, inode) of the file last read: a rename over it changes the inode
    /// even when the time and size happen to match.
    seen: StdMutex<Option<(SystemTime, u64, u64)>>,
    /// When each store token (by hash) was last used here; formatted only when written out.
    used: StdMutex<HashMap<[u8; 32], OffsetDateTime>>,
    dirty: std::sync::atomic::AtomicBool,
}

pub struct Authenticator {
    tenants: BTreeMap<String, Arc<Tenant>>,
    /// Tokens from the config file, by hash.
    config_tokens: HashMap<[u8; 32], TokenEntry>,
    store: LiveStore,
    oauth: Vec<jwt::Verifier>,
}

/// A tenant's containers from its section, defaulting to `[users]`, `[groups]` and
/// `[roles]`; a key without the section it needs names both.
fn tenant_of(
    raw: &RawConfig,
    tname: &str,
    t: &crate::config::TenantConfig,
) -> Result<Tenant, ConfigError> {
    let container = t
        .users_container
        .clone()
        .unwrap_or_else(|| raw.users.container.clone());
    if !container.contains('=') {
        return Err(ConfigError::new(
            format!("tenants.{tname}.users_container"),
            format!("\"{container}\" is not a DN"),
            "e.g. \"ou=people,dc=example,dc=org\"",
        ));
    }
    let default_groups_container = raw.groups.as_ref().map(|g| g.container.as_str());
    let groups_container = match (&t.groups_container, default_groups_container) {
        (_, None) if t.groups_container.is_some() || t.default_group.is_some() => {
            return Err(ConfigError::new(
                format!("tenants.{tname}"),
                "groups_container / default_group need a [groups] section",
                "add [groups] (see config.example.toml) or remove these keys",
            ))
        }
        (Some(c), _) => Some(c.clone()),
        (None, d) => d.map(str::to_owned),
    };
    let roles_container = match (&t.roles_container, &raw.roles) {
        (Some(_), None) => {
            return Err(ConfigError::new(
                format!("tenants.{tname}.roles_container"),
                "roles_container needs a [roles] section",
                "add [roles] (see config.example.toml) or remove this key",
            ))
        }
        (Some(c), Some(_)) => Some(c.clone()),
        (None, r) => r.as_ref().map(|r| r.container.clone()),
    };
    let users_container = Dn::new(container);
    let placement = match &t.placement {
        Some(own) => (format!("tenants.{tname}.placement"), own.as_slice()),
        None => ("users.placement".to_owned(), raw.users.placement.as_slice()),
    };
    let placement = crate::mapping::placement::Placement::compile(
        &placement.0,
        placement.1,
        tname,
        &users_container,
        &crate::scim::schema::USER_RESOURCE,
    )?;
    Ok(Tenant {
        name: tname.to_owned(),
        users_container,
        placement,
        groups_container: groups_container.map(Dn::new),
        default_group: t.default_group.as_deref().map(Dn::new),
        roles_container: roles_container.map(Dn::new),
        safety: raw.safety.threshold(tname, t.safety.as_ref())?,
    })
}

impl Authenticator {
    pub fn from_config(raw: &RawConfig) -> Result<Authenticator, ConfigError> {
        let mut tenants = BTreeMap::new();
        let mut config_tokens = HashMap::new();
        let mut oauth = Vec::new();
        for (tname, t) in &raw.tenants {
            let tenant = Arc::new(tenant_of(raw, tname, t)?);
            tenants.insert(tname.clone(), tenant.clone());
            for (name, tok) in &t.tokens {
                let (sha256, expires) =
                    config_token(&format!("tenants.{tname}.tokens.{name}"), tok)?;
                config_tokens.insert(
                    sha256,
                    TokenEntry {
                        tenant: tenant.clone(),
                        name: name.clone(),
                        prefix: None,
                        expires,
                    },
                );
            }
            if let Some(o) = &t.oauth {
                let v = jwt::Verifier::from_config(tenant.clone(), o)?;
                let clash = oauth.iter().any(|other: &jwt::Verifier| {
                    other.issuer_and_audience() == v.issuer_and_audience()
                });
                if clash {
                    return Err(ConfigError::new(
                        format!("tenants.{tname}.oauth.audience"),
                        "another tenant accepts tokens of the same issuer and audience",
                        "give each tenant its own audience, so a token names one tenant",
                    ));
                }
                oauth.push(v);
            }
        }
        let auth = Authenticator {
            tenants,
            config_tokens,
            store: LiveStore {
                path: raw.server.token_store.clone(),
                tokens: StdRwLock::new(Arc::new(HashMap::new())),
                seen: StdMutex::new(None),
                used: StdMutex::new(HashMap::new()),
                dirty: std::sync::atomic::AtomicBool::new(false),
            },
            oauth,
        };
        auth.reload_store();
        auth.remember_usage();
        Ok(auth)
    }

    /// Every tenant's name.
    pub fn tenant_names(&self) -> Vec<String> {
        self.tenants.keys().cloned().collect()
    }

    /// The tenant named `name`.
    pub fn tenant(&self, name: &str) -> Option<Arc<Tenant>> {
        self.tenants.get(name).cloned()
    }

    /// How many credentials can authenticate now: config tokens, store tokens, and tenants
    /// that accept OAuth2 tokens.
    pub fn credential_count(&self) -> usize {
        let store = self.store.tokens.read().map(|t| t.len()).unwrap_or(0);
        self.config_tokens.len() + store + self.oauth.len()
    }

    /// Checks an `Authorization` header value. Refusals are counted in the metrics, by tenant
    /// where the credential names one.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Caller, AuthError> {
        self.check(header, now).await.map_err(|(error, tenant)| {
            crate::metrics::metrics()
                .auth_failure(tenant.as_ref().map(|t| t.name.as_str()), error.reason());
            error
        })
    }

    /// `authenticate`, with the tenant a refused credential belongs to when that is known (an
    /// expired token, a JWT from a tenant's issuer).
    async fn check(
        &self,
        header: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Caller, (AuthError, Option<Arc<Tenant>>)> {
        let anonymous = |e| (e, None);
        let header = header.ok_or(AuthError::Missing).map_err(anonymous)?.trim();
        let (scheme, token) = header
            .split_once(' ')
            .ok_or(AuthError::NotBearer)
            .map_err(anonymous)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(anonymous(AuthError::NotBearer));
        }
        let token = token.trim();
        if jwt::looks_like_jwt(token) && !self.oauth.is_empty() {
            let (iss, aud) = jwt::peek_issuer_audience(token)
                .ok_or_else(|| anonymous(AuthError::InvalidJwt("no iss or aud".into())))?;
            let verifier = self
                .oauth
                .iter()
                .find(|v| v.is_for(&iss, &aud))
                .ok_or_else(|| {
                    anonymous(AuthError::InvalidJwt(
                        "no tenant accepts this issuer and audience".into(),
                    ))
                })?;
            let credential = verifier
                .verify(token)
                .await
                .map_err(|e| (e, Some(verifier.tenant.clone())))?;
            return Ok(Caller {
                tenant: verifier.tenant.clone(),
                credential,
            });
        }
        let presented = hash_token(token);
        let store = self
            .store
            .tokens
            .read()
            .map(|t| t.clone())
            .unwrap_or_default();
        let entry = self
            .config_tokens
            .get_key_value(&presented)
            .or_else(|| store.get_key_value(&presented))
            // the map found it by hash; confirm in constant time all the same
            .filter(|(k, _)| bool::from(k.ct_eq(&presented)))
            .map(|(_, e)| e.clone())
            .ok_or(AuthError::Invalid)
            .map_err(anonymous)?;
        if entry.expires.is_some_and(|e| now >= e) {
            return Err((AuthError::Expired, Some(entry.tenant)));
        }
        if entry.prefix.is_some() {
            self.note_use(&presented, now);
        }
        Ok(Caller {
            tenant: entry.tenant,
            credential: Credential::Token {
                name: entry.name,
                prefix: entry.prefix,
            },
        })
    }

    /// Starts from the uses this host recorded before (a restart or reload), so that its
    /// next write of the usage file does not forget them.
    fn remember_usage(&self) {
        let before = store::read_usage(&self.store.path);
        let Ok(mut used) = self.store.used.lock() else {
            return;
        };
        for (hash, at) in before {
            if let (Some(h), Ok(t)) = (parse_hash(&hash), OffsetDateTime::parse(&at, &Rfc3339)) {
                used.insert(h, t);
            }
        }
    }

    fn note_use(&self, hash: &[u8; 32], now: OffsetDateTime) {
        if let Ok(mut used) = self.store.used.lock() {
            used.insert(*hash, now);
            self.store
                .dirty
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Reads the token store again if it changed since the last read. A store that cannot be
    /// read keeps the tokens already loaded (and says so once per change).
    pub fn reload_store(&self) {
        let stamp = std::fs::metadata(&self.store.path).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.len(),
                m.ino(),
            )
        });
        {
            let Ok(mut seen) = self.store.seen.lock() else {
                return;
            };
            if *seen == stamp {
                return;
            }
            *seen = stamp;
        }
        let file = match store::load(&self.store.path) {
            Ok(f) => f,
            Err(e) => {
                error!(error = %e, "the token store could not be read; keeping the tokens already loaded");
                crate::metrics::metrics().token_store_read(false);
                return;
            }
        };
        crate::metrics::metrics().token_store_read(true);
        let mut tokens = HashMap::new();
        for t in &file.tokens {
            let Some(tenant) = self.tenants.get(&t.tenant) else {
                warn!(tenant = %t.tenant, name = %t.name, "the token store names a tenant the config does not have; token ignored");
                continue;
            };
            for s in &t.secrets {
                let Some(hash) = parse_hash(&s.sha256) else {
                    warn!(tenant = %t.tenant, name = %t.name, "the token store holds a secret whose sha256 is not 64 hex digits; it is refused");
                    continue;
                };
                // an expiry that cannot be read is not "never": the secret is refused
                let expires = match s.expires.as_deref() {
                    None => None,
                    Some(e) => match OffsetDateTime::parse(e, &Rfc3339) {
                        Ok(t) => Some(t),
                        Err(_) => {
                            error!(tenant = %t.tenant, name = %t.name, prefix = %s.prefix, expires = %e, "the token store gives a secret an expiry that is not an RFC 3339 time; the secret is refused until `scim2ldap token rotate` replaces it");
                            continue;
                        }
                    },
                };
                tokens.insert(
                    hash,
                    TokenEntry {
                        tenant: tenant.clone(),
                        name: t.name.clone(),
                        prefix: Some(s.prefix.clone()),
                        expires,
                    },
                );
            }
        }
        let n = tokens.len();
        if let Ok(mut current) = self.store.tokens.write() {
            *current = Arc::new(tokens);
        }
        if stamp.is_some() {
            info!(path = %self.store.path.display(), secrets = n, "token store loaded");
        }
    }

    /// Writes this host's token usage file when uses were noted since the last write.
    pub fn flush_usage(&self) {
        if !self
            .store
            .dirty
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let current = self
            .store
            .tokens
            .read()
            .map(|t| t.clone())
            .unwrap_or_default();
        let used: HashMap<String, String> = match self.store.used.lock() {
            Ok(mut u) => {
                // revoked and expired-away secrets are forgotten, so the file stays small
                u.retain(|hash, _| current.contains_key(hash));
                u.iter()
                    .map(|(hash, at)| (hex::encode(hash), store::rfc3339(*at)))
                    .collect()
            }
            Err(_) => return,
        };
        if let Err(e) = store::write_usage(&self.store.path, &used) {
            warn!(error = %e, "could not record when tokens were last used");
        }
    }
}

/// A token written in the config: its hash and expiry, checked.
fn config_token(
    key: &str,
    tok: &crate::config::TokenConfig,
) -> Result<([u8; 32], Option<OffsetDateTime>), ConfigError> {
    let sha256 = parse_hash(&tok.sha256).ok_or_else(|| {
        ConfigError::new(
            format!("{key}.sha256"),
            "not a SHA-256 in hex (64 hex digits)",
            "paste the sha256 line printed by `scim2ldap token new`, not the token itself",
        )
    })?;
    let expires = match &tok.expires {
        None => None,
        Some(s) => Some(OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
            ConfigError::new(
                format!("{key}.expires"),
                format!("\"{s}\" is not an RFC 3339 time ({e})"),
                "e.g. expires = \"2027-11-24T00:00:00Z\"",
            )
        })?),
    };
    Ok((sha256, expires))
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_hash(hex_str: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_str.trim()).ok()?;
    bytes.try_into().ok()
}

/// A new random token: 32 bytes from the OS RNG, hex-encoded, with a recognisable prefix
/// (so that secret scanners can find leaked ones).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("scim2ldap_{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests;
