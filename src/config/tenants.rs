//! `[tenants.NAME]`, `[oauth]` and `[tokens]`: who may call and which part of the directory each
//! caller sees.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::RateLimitConfig;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Where this tenant's users live; defaults to `users.container`.
    #[serde(default)]
    pub users_container: Option<String>,
    /// Where this tenant's groups live; defaults to `groups.container`.
    #[serde(default)]
    pub groups_container: Option<String>,
    /// DN of a group every user created through this tenant's tokens joins (one of its own
    /// groups, under its groups container).
    #[serde(default)]
    pub default_group: Option<String>,
    /// Where this tenant's role groups live (`[roles]`); defaults to `roles.container`. Each
    /// tenant has its own: a tenant can grant only its own roles.
    #[serde(default)]
    pub roles_container: Option<String>,
    #[serde(default)]
    pub tokens: BTreeMap<String, TokenConfig>,
    /// This tenant's token bucket, instead of `server.rate_limit`.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// OAuth2 access tokens (JWTs) from this issuer, instead of or beside static tokens.
    #[serde(default)]
    pub oauth: Option<OAuthConfig>,
    /// This tenant's safety valve, instead of `[safety]`'s.
    #[serde(default)]
    pub safety: Option<super::TenantSafetyConfig>,
    /// This tenant's placement rules (`[[tenants.NAME.placement]]`), instead of
    /// `[[users.placement]]`.
    #[serde(default)]
    pub placement: Option<Vec<super::PlacementConfig>>,
}

/// `[tenants.NAME.oauth]`: JWT bearer tokens an OAuth2 issuer signs (client credentials).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// `iss` the tokens must carry.
    pub issuer: String,
    /// `aud` the tokens must carry (one of, when it is a list).
    pub audience: String,
    /// The issuer's public keys (JWKS): a file, or a URL fetched and cached (refetched when a
    /// token names an unknown key, at most every 30 s).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// A scope the token must grant (in `scope` or `scp`), e.g. "admin"; 403 without it.
    #[serde(default)]
    pub required_scope: Option<String>,
    /// A claim the token must carry with this value (or a list holding it), e.g. groups =
    /// admins; 403 without it.
    #[serde(default)]
    pub required_claim: Option<RequiredClaim>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_leeway() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RequiredClaim {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Hex SHA-256 of the bearer token (`scim2ldap token new` prints it).
    pub sha256: String,
    /// RFC 3339 time after which the token is refused.
    #[serde(default)]
    pub expires: Option<String>,
}
