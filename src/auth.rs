//! Bearer-token authentication. Tokens are random, shown once by `scim2ldap token new`, and
//! stored in config only as their SHA-256 (a fast hash suffices: the tokens carry 256 random
//! bits, so there is nothing to brute-force). Each token belongs to one tenant, which fixes
//! the part of the directory its requests see.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::{ConfigError, TenantConfig};

/// A tenant: one IdP connection and the part of the directory it may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
    pub users_container: String,
    /// Where this tenant's groups live, when groups are configured.
    pub groups_container: Option<String>,
    /// DN of the group users created through this tenant join.
    pub default_group: Option<String>,
}

struct TokenEntry {
    tenant: Arc<Tenant>,
    name: String,
    sha256: [u8; 32],
    expires: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send 'Authorization: Bearer <token>'")]
    Missing,
    #[error("the Authorization header must use the Bearer scheme")]
    NotBearer,
    #[error("invalid bearer token")]
    Invalid,
    #[error("the bearer token has expired; create a new one with 'scim2ldap token new'")]
    Expired,
}

pub struct Authenticator {
    tokens: Vec<TokenEntry>,
}

impl Authenticator {
    pub fn from_config(
        tenants: &BTreeMap<String, TenantConfig>,
        default_users_container: &str,
        default_groups_container: Option<&str>,
    ) -> Result<Authenticator, ConfigError> {
        let mut tokens = Vec::new();
        for (tname, t) in tenants {
            let container = t
                .users_container
                .clone()
                .unwrap_or_else(|| default_users_container.to_owned());
            if !container.contains('=') {
                return Err(ConfigError::new(
                    format!("tenants.{tname}.users_container"),
                    format!("\"{container}\" is not a DN"),
                    "e.g. \"ou=people,dc=example,dc=org\"",
                ));
            }
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
            let tenant = Arc::new(Tenant {
                name: tname.clone(),
                users_container: container,
                groups_container,
                default_group: t.default_group.clone(),
            });
            for (name, tok) in &t.tokens {
                let key = format!("tenants.{tname}.tokens.{name}");
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
                tokens.push(TokenEntry {
                    tenant: tenant.clone(),
                    name: name.clone(),
                    sha256,
                    expires,
                });
            }
        }
        Ok(Authenticator { tokens })
    }

    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// Checks an `Authorization` header value; returns the token's tenant and token name.
    pub fn authenticate(
        &self,
        header: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(Arc<Tenant>, &str), AuthError> {
        let header = header.ok_or(AuthError::Missing)?.trim();
        let (scheme, token) = header.split_once(' ').ok_or(AuthError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::NotBearer);
        }
        let presented = hash_token(token.trim());
        // Compare against every stored hash, in constant time each, without stopping early.
        let mut found: Option<&TokenEntry> = None;
        for t in &self.tokens {
            if bool::from(t.sha256.ct_eq(&presented)) {
                found = Some(t);
            }
        }
        let t = found.ok_or(AuthError::Invalid)?;
        if t.expires.is_some_and(|e| now >= e) {
            return Err(AuthError::Expired);
        }
        Ok((t.tenant.clone(), t.name.as_str()))
    }
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
mod tests {
    use super::*;
    use crate::config::TokenConfig;

    fn auth(token: &str, expires: Option<&str>) -> Authenticator {
        let mut tokens = BTreeMap::new();
        tokens.insert(
            "entra".to_owned(),
            TokenConfig {
                sha256: hex::encode(hash_token(token)),
                expires: expires.map(str::to_owned),
            },
        );
        let mut tenants = BTreeMap::new();
        tenants.insert(
            "acme".to_owned(),
            TenantConfig {
                tokens,
                ..Default::default()
            },
        );
        Authenticator::from_config(&tenants, "ou=people,dc=example,dc=org", None).unwrap()
    }

    #[test]
    fn accepts_the_token_whose_hash_is_configured() {
        let t = new_token();
        let a = auth(&t, None);
        let (tenant, name) = a
            .authenticate(Some(&format!("Bearer {t}")), OffsetDateTime::now_utc())
            .unwrap();
        assert_eq!(tenant.name, "acme");
        assert_eq!(tenant.users_container, "ou=people,dc=example,dc=org");
        assert_eq!(name, "entra");
        assert!(a
            .authenticate(Some(&format!("bearer {t}")), OffsetDateTime::now_utc())
            .is_ok());
    }

    #[test]
    fn refuses_missing_wrong_and_expired_tokens() {
        let t = new_token();
        let a = auth(&t, Some("2020-01-01T00:00:00Z"));
        let now = OffsetDateTime::now_utc();
        assert_eq!(a.authenticate(None, now).unwrap_err(), AuthError::Missing);
        assert_eq!(
            a.authenticate(Some(&format!("Basic {t}")), now)
                .unwrap_err(),
            AuthError::NotBearer
        );
        assert_eq!(
            a.authenticate(Some("Bearer nope"), now).unwrap_err(),
            AuthError::Invalid
        );
        assert_eq!(
            a.authenticate(Some(&format!("Bearer {t}")), now)
                .unwrap_err(),
            AuthError::Expired
        );
    }

    #[test]
    fn a_plain_token_in_the_hash_field_is_a_config_error() {
        let mut tokens = BTreeMap::new();
        tokens.insert(
            "x".to_owned(),
            TokenConfig {
                sha256: "secret".into(),
                expires: None,
            },
        );
        let mut tenants = BTreeMap::new();
        tenants.insert(
            "t".to_owned(),
            TenantConfig {
                tokens,
                ..Default::default()
            },
        );
        let err = Authenticator::from_config(&tenants, "ou=p,dc=x", None)
            .err()
            .unwrap();
        assert_eq!(err.key, "tenants.t.tokens.x.sha256");
    }

    #[test]
    fn new_tokens_are_distinct_and_long() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), "scim2ldap_".len() + 64);
    }
}
