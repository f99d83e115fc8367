use super::*;
use crate::config::{TenantConfig, TokenConfig};

fn raw(tenants: BTreeMap<String, TenantConfig>, store: &std::path::Path) -> RawConfig {
    let toml = format!(
        "[server]\ntoken_store = \"{}\"\n[ldap]\nurl='ldap://x'\nbind_dn='cn=a'\n[users]\ncontainer='ou=people,dc=example,dc=org'\nobject_classes=['inetOrgPerson']\nrdn='uid={{userName}}'\n[users.attributes]\nuserName='uid'\n",
        store.display()
    );
    use figment::providers::Format;
    let mut r: RawConfig = figment::Figment::from(figment::providers::Toml::string(&toml))
        .extract()
        .unwrap();
    r.tenants = tenants;
    r
}

fn with_token(token: &str, expires: Option<&str>) -> BTreeMap<String, TenantConfig> {
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
    tenants
}

#[tokio::test]
async fn accepts_the_token_whose_hash_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let t = new_token();
    let a =
        Authenticator::from_config(&raw(with_token(&t, None), &dir.path().join("t.json"))).unwrap();
    let caller = a
        .authenticate(Some(&format!("Bearer {t}")), OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(caller.tenant.name, "acme");
    assert_eq!(
        caller.tenant.users_container.as_str(),
        "ou=people,dc=example,dc=org"
    );
    assert_eq!(
        caller.credential,
        Credential::Token {
            name: "entra".into(),
            prefix: None
        }
    );
    assert!(a
        .authenticate(Some(&format!("bearer {t}")), OffsetDateTime::now_utc())
        .await
        .is_ok());
}

#[tokio::test]
async fn refuses_missing_wrong_and_expired_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let t = new_token();
    let a = Authenticator::from_config(&raw(
        with_token(&t, Some("2020-01-01T00:00:00Z")),
        &dir.path().join("t.json"),
    ))
    .unwrap();
    let now = OffsetDateTime::now_utc();
    assert_eq!(
        a.authenticate(None, now).await.unwrap_err(),
        AuthError::Missing
    );
    assert_eq!(
        a.authenticate(Some(&format!("Basic {t}")), now)
            .await
            .unwrap_err(),
        AuthError::NotBearer
    );
    assert_eq!(
        a.authenticate(Some("Bearer nope"), now).await.unwrap_err(),
        AuthError::Invalid
    );
    assert_eq!(
        a.authenticate(Some(&format!("Bearer {t}")), now)
            .await
            .unwrap_err(),
        AuthError::Expired
    );
}

#[test]
fn a_plain_token_in_the_hash_field_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut tenants = with_token("x", None);
    if let Some(t) = tenants.get_mut("acme") {
        if let Some(tok) = t.tokens.get_mut("entra") {
            tok.sha256 = "secret".into();
        }
    }
    let err = Authenticator::from_config(&raw(tenants, &dir.path().join("t.json")))
        .err()
        .unwrap();
    assert_eq!(err.key, "tenants.acme.tokens.entra.sha256");
}

#[tokio::test]
async fn store_tokens_work_after_a_reload_and_stop_after_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let a = Authenticator::from_config(&raw(with_token("unused", None), &path)).unwrap();
    let s = store::Store::new(&path);
    let now = OffsetDateTime::now_utc();
    let t = s.create("acme", "okta", None, now).unwrap();
    a.reload_store();
    let caller = a
        .authenticate(Some(&format!("Bearer {t}")), now)
        .await
        .unwrap();
    assert!(
        matches!(caller.credential, Credential::Token { ref name, prefix: Some(_) } if name == "okta")
    );
    a.flush_usage();
    assert!(s.list().unwrap()[0].last_used.is_some(), "use recorded");
    s.revoke("acme", "okta").unwrap();
    // a file rewritten within the same second may keep its mtime; the inode changed
    a.reload_store();
    assert_eq!(
        a.authenticate(Some(&format!("Bearer {t}")), now)
            .await
            .unwrap_err(),
        AuthError::Invalid
    );
}

/// A store secret whose expiry cannot be read fails closed (refused), where before it
/// meant "never expires".
#[tokio::test]
async fn a_store_secret_with_an_unreadable_expiry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let s = store::Store::new(&path);
    let now = OffsetDateTime::now_utc();
    let t = s.create("acme", "okta", None, now).unwrap();
    let good = s.create("acme", "entra", None, now).unwrap();
    let mut file = store::load(&path).unwrap();
    file.tokens[0].secrets[0].expires = Some("next tuesday".into());
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    let a = Authenticator::from_config(&raw(with_token("unused", None), &path)).unwrap();
    assert_eq!(
        a.authenticate(Some(&format!("Bearer {t}")), now)
            .await
            .unwrap_err(),
        AuthError::Invalid
    );
    assert!(a
        .authenticate(Some(&format!("Bearer {good}")), now)
        .await
        .is_ok());
}

#[test]
fn new_tokens_are_distinct_and_long() {
    let (a, b) = (new_token(), new_token());
    assert_ne!(a, b);
    assert_eq!(a.len(), "scim2ldap_".len() + 64);
}
