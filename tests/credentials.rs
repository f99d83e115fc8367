//! Credentials an enterprise can run: the token store managed by `scim2ldap token …` and
//! picked up by a running server without a restart; OAuth2 client-credentials JWTs checked
//! against the issuer's keys; and the audit record of every write. Against a real slapd and
//! the real binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

/// Runs `scim2ldap token ARGS` (split at spaces) on `config`; (succeeded, stdout, stderr).
fn token_cli(config: &Path, args: &str) -> (bool, String, String) {
    let args: Vec<&str> = args.split_whitespace().collect();
    cli("token", &args, config)
}

/// The secret a `token create|rotate` printed.
fn secret_in(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("  scim2ldap_"))
        .map(|rest| format!("scim2ldap_{}", rest.trim()))
        .unwrap_or_else(|| panic!("no token in:\n{stdout}"))
}

async fn status_with(base: &str, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{base}/Users?count=1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// Polls until `token` gets `want`; how long that took, or None after `within`.
async fn until_status(
    base: &str,
    token: &str,
    want: StatusCode,
    within: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if status_with(base, token).await == want {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// What the store-managed token lifecycle promises, on a running server: create, list,
/// rotate with overlap, expiry, revoke, all without a restart; config tokens keep working;
/// last use recorded in batches; no secret in the log or the store.
#[tokio::test]
async fn the_token_lifecycle_takes_effect_on_a_running_server_within_two_seconds() {
    let slapd = Slapd::start();
    let mut server = ServerProcess::spawn(&test_config(&slapd, &[], ""), None, &[]);
    let cfg = server.config_path.clone();
    let base = server.base.clone();
    let within = Duration::from_secs(2);

    // create: accepted within 2 s
    let (ok, out, err) = token_cli(
        &cfg,
        "create --tenant default --name entra-prod --expires 90d",
    );
    assert!(ok, "{err}");
    let first = secret_in(&out);
    assert!(
        first.len() >= "scim2ldap_".len() + 64,
        "256 random bits, hex"
    );
    let took = until_status(&base, &first, StatusCode::OK, within)
        .await
        .expect("a created token works within 2 s");
    eprintln!("created token accepted after {took:?}");

    // the same name twice is refused; an unknown tenant is refused; a past expiry is refused
    let (ok, _, err) = token_cli(&cfg, "create --tenant default --name entra-prod");
    assert!(
        !ok && err.contains("already has a token named entra-prod"),
        "{err}"
    );
    let (ok, _, err) = token_cli(&cfg, "create --tenant nobody --name x");
    assert!(!ok && err.contains("there is no tenant nobody"), "{err}");
    let (ok, _, err) = token_cli(
        &cfg,
        "create --tenant default --name x --expires 2020-01-01",
    );
    assert!(!ok && err.contains("already passed"), "{err}");

    // list: name, tenant, prefix, expiry; never the secret
    let (ok, listed, err) = token_cli(&cfg, "list --tenant default");
    assert!(ok, "{err}");
    assert!(
        listed.contains("entra-prod") && listed.contains(&first[..16]),
        "{listed}"
    );
    assert!(!listed.contains(&first), "list shows no secret:\n{listed}");
    let store_dir = cfg.parent().unwrap();
    let store_text = std::fs::read_to_string(store_dir.join("tokens.json")).unwrap();
    assert!(!store_text.contains(&first), "the store keeps hashes only");

    // rotate with a short overlap: the new secret works at once, the old one until the end
    let (ok, out, err) = token_cli(
        &cfg,
        "rotate --tenant default --name entra-prod --overlap 4s",
    );
    assert!(ok, "{err}");
    let second = secret_in(&out);
    until_status(&base, &second, StatusCode::OK, within)
        .await
        .expect("the rotated secret works within 2 s");
    assert_eq!(
        status_with(&base, &first).await,
        StatusCode::OK,
        "old secret still in its overlap"
    );
    let old_gone = until_status(
        &base,
        &first,
        StatusCode::UNAUTHORIZED,
        Duration::from_secs(8),
    )
    .await
    .expect("the old secret is refused after the overlap");
    eprintln!("old secret refused {old_gone:?} after rotation was picked up (overlap 4 s)");
    assert_eq!(status_with(&base, &second).await, StatusCode::OK);

    // a token created with a short life stops at its expiry, with a 401 saying so
    let (ok, out, err) = token_cli(&cfg, "create --tenant default --name short --expires 3s");
    assert!(ok, "{err}");
    let short = secret_in(&out);
    until_status(&base, &short, StatusCode::OK, within)
        .await
        .expect("short token works");
    until_status(
        &base,
        &short,
        StatusCode::UNAUTHORIZED,
        Duration::from_secs(6),
    )
    .await
    .expect("expired token refused");
    let resp = reqwest::Client::new()
        .get(format!("{base}/Users"))
        .bearer_auth(&short)
        .send()
        .await
        .unwrap();
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    // revoke: 401 within 2 s
    let (ok, _, err) = token_cli(&cfg, "revoke --tenant default --name entra-prod");
    assert!(ok, "{err}");
    let took = until_status(&base, &second, StatusCode::UNAUTHORIZED, within)
        .await
        .expect("a revoked token is refused within 2 s");
    eprintln!("revoked token refused after {took:?}");
    let (ok, _, err) = token_cli(&cfg, "revoke --tenant default --name entra-prod");
    assert!(
        !ok && err.contains("has no token named entra-prod"),
        "{err}"
    );

    // the token in the config file worked throughout
    assert_eq!(status_with(&base, TOKEN).await, StatusCode::OK);

    // last use is written in batches, at the latest when the server stops
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(15)).is_some());
    let (_, listed, _) = token_cli(&cfg, "list");
    let short_line = listed
        .lines()
        .find(|l| l.contains("short"))
        .unwrap()
        .to_owned();
    assert!(
        !short_line.trim_end().ends_with("never"),
        "last use recorded: {listed}"
    );

    let log = server.log_text();
    for secret in [
        &first,
        &second,
        &short,
        &TOKEN.to_owned(),
        &ADMIN_PW.to_owned(),
    ] {
        assert!(!log.contains(secret.as_str()), "a secret reached the log");
    }
    assert!(log.contains("token store loaded"), "{log}");
}

/// A token store edited while the server runs never locks anyone out: a store that cannot
/// be parsed keeps the tokens already loaded.
#[tokio::test]
async fn a_broken_token_store_keeps_the_tokens_already_loaded() {
    let slapd = Slapd::start();
    let server = ServerProcess::spawn(&test_config(&slapd, &[], ""), None, &[]);
    let cfg = server.config_path.clone();
    let (ok, out, err) = token_cli(&cfg, "create --tenant default --name okta");
    assert!(ok, "{err}");
    let secret = secret_in(&out);
    until_status(
        &server.base,
        &secret,
        StatusCode::OK,
        Duration::from_secs(2),
    )
    .await
    .expect("token works");
    std::fs::write(cfg.parent().unwrap().join("tokens.json"), "{ half a file").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(status_with(&server.base, &secret).await, StatusCode::OK);
    assert!(server
        .log_text()
        .contains("keeping the tokens already loaded"));
}

/// An OAuth2 issuer for the tests: an EC P-256 key (made here) and its JWKS.
struct Issuer {
    pkcs8: Vec<u8>,
    kid: String,
}

impl Issuer {
    fn new(kid: &str) -> Issuer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Issuer {
            pkcs8: pkcs8.as_ref().to_vec(),
            kid: kid.to_owned(),
        }
    }

    fn jwk(&self) -> Value {
        use base64::Engine;
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &self.pkcs8,
            &SystemRandom::new(),
        )
        .unwrap();
        // uncompressed point: 0x04 || x || y
        let point = pair.public_key().as_ref();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
               "x": b64(&point[1..33]), "y": b64(&point[33..65])})
    }

    /// Its JWKS written to a file in `dir`; the config line that names it.
    fn jwks_file(&self, dir: &Path) -> String {
        let path = dir.join("jwks.json");
        std::fs::write(&path, json!({"keys": [self.jwk()]}).to_string()).unwrap();
        format!("jwks_file = \"{}\"", path.display())
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }
}

const ISSUER: &str = "https://login.nauthera.test/";
const AUDIENCE: &str = "https://scim.example.org/scim/v2";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn claims(scope: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-provisioner", "client_id": "nauthera-scim",
           "scope": scope, "iat": now(), "exp": now() + 600})
}

fn oauth_tenant(keys: &str) -> String {
    format!(
        "\n[tenants.nauthera]\nusers_container = \"ou=nauthera,dc=example,dc=org\"\ngroups_container = \"ou=nauthera-groups,dc=example,dc=org\"\n[tenants.nauthera.oauth]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n{keys}\nrequired_scope = \"admin\"\nleeway_secs = 30\n"
    )
}

async fn with_bearer(
    bridge: &Bridge,
    token: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    bridge
        .call_as(Some(token), Method::GET, "/Users?count=1", None)
        .await
}

/// Every way a JWT can be wrong is a 401 (`invalid_token`), a missing scope a 403
/// (`insufficient_scope`) with a SCIM error body; a right one is accepted.
#[tokio::test]
async fn jwts_from_a_jwks_file_are_checked_for_signature_issuer_audience_time_and_scope() {
    let slapd = Slapd::start();
    slapd.add_ou("nauthera", "dc=example,dc=org").await;
    slapd.add_ou("nauthera-groups", "dc=example,dc=org").await;
    let issuer = Issuer::new("k1");
    let dir = tempfile::tempdir().unwrap();
    let tenant = oauth_tenant(&issuer.jwks_file(dir.path()));
    let bridge = Bridge::start_with(test_config(&slapd, &[], &tenant)).await;

    let good = issuer.sign(&claims("scim.read admin"));
    let (s, _, b) = with_bearer(&bridge, &good).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let refused = |claims: Value| issuer.sign(&claims);
    let mut c = claims("admin");
    c["aud"] = json!("https://other.example.org");
    let wrong_aud = refused(c);
    let mut c = claims("admin");
    c["iss"] = json!("https://evil.test/");
    let wrong_iss = refused(c);
    let mut c = claims("admin");
    c["exp"] = json!(now() - 600);
    let expired = refused(c);
    let mut c = claims("admin");
    c["nbf"] = json!(now() + 600);
    let not_yet = refused(c);
    let other_key = Issuer::new("k1").sign(&claims("admin"));
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims("admin"))
    );
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("k1".into());
    // the classic confusion: HMAC keyed with the public key's bytes
    let hs256 = jsonwebtoken::encode(
        &hs,
        &claims("admin"),
        &EncodingKey::from_secret(issuer.jwk()["x"].as_str().unwrap().as_bytes()),
    )
    .unwrap();
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut c = claims("admin");
        c["sub"] = json!("someone-else");
        parts[1] = b64(&c);
        parts.join(".")
    };
    for (what, token) in [
        ("wrong audience", &wrong_aud),
        ("wrong issuer", &wrong_iss),
        ("expired", &expired),
        ("not yet valid", &not_yet),
        ("signed by another key", &other_key),
        ("alg=none", &alg_none),
        ("HS256", &hs256),
        ("tampered claims", &tampered),
    ] {
        let (s, h, b) = with_bearer(&bridge, token).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{what}: {b}");
        let challenge = h["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
        assert_eq!(b["status"], "401", "{what}: SCIM error body {b}");
        if what != "expired" {
            // nothing a caller could map the configuration with (issuers, audiences, checks)
            assert!(
                b["detail"]
                    .as_str()
                    .unwrap()
                    .starts_with("invalid access token (the server's log says why"),
                "{what}: {b}"
            );
        }
    }
    // a JWT of an issuer and audience no tenant accepts says no more than any other
    let mut c = claims("admin");
    c["iss"] = json!("https://probe.test/");
    c["aud"] = json!("https://probe.test/aud");
    let (s, _, b) = with_bearer(&bridge, &refused(c)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(!b["detail"].as_str().unwrap().contains("issuer"), "{b}");

    let no_scope = issuer.sign(&claims("scim.read"));
    let (s, h, b) = with_bearer(&bridge, &no_scope).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let challenge = h["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"admin\""),
        "{challenge}"
    );
    assert_eq!(
        b["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(b["status"], "403");
    assert!(b["detail"].as_str().unwrap().contains("admin"), "{b}");

    // the JWT's tenant sees only its own container: not the default tenant's user, and what
    // it creates lands in its own
    let theirs = bridge.create_user(entra_user("default.only")).await;
    let theirs_id = theirs["id"].as_str().unwrap();
    let (s, _, b) = bridge
        .call_as(
            Some(&good),
            Method::GET,
            &format!("/Users/{theirs_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, _, b) = bridge
        .call_as(
            Some(&good),
            Method::DELETE,
            &format!("/Users/{theirs_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (_, _, list) = bridge
        .call_as(Some(&good), Method::GET, "/Users", None)
        .await;
    assert_eq!(list["totalResults"], 0, "{list}");
    let (s, _, b) = bridge
        .call_as(
            Some(&good),
            Method::POST,
            "/Users",
            Some(&entra_user("jwt.made")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert!(slapd
        .entry("uid=jwt.made,ou=nauthera,dc=example,dc=org")
        .await
        .is_some());
}

/// A loopback issuer publishing a JWKS at `url`: `published` (None: a 500), counting fetches.
struct JwksServer {
    url: String,
    published: Arc<Mutex<Option<Value>>>,
    hits: Arc<AtomicUsize>,
    /// How long each answer takes (a slow issuer).
    delay: Arc<Mutex<Duration>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl JwksServer {
    async fn start(published: Option<Value>) -> JwksServer {
        let published = Arc::new(Mutex::new(published));
        let hits = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let (p, h, d) = (published.clone(), hits.clone(), delay.clone());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                h.fetch_add(1, Ordering::SeqCst);
                let answer = p.lock().unwrap().clone();
                let wait = *d.lock().unwrap();
                async move {
                    use axum::response::IntoResponse;
                    tokio::time::sleep(wait).await;
                    match answer {
                        Some(jwks) => axum::Json(jwks).into_response(),
                        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                    }
                }
            }),
        );
        let task = tokio::spawn(async move { axum::serve(listener, app).await });
        JwksServer {
            url,
            published,
            hits,
            delay,
            task,
        }
    }

    fn publish(&self, jwks: Value) {
        *self.published.lock().unwrap() = Some(jwks);
    }

    fn fetches(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// A bridge whose `nauthera` tenant takes this issuer's tokens.
    async fn bridge(&self, slapd: &Slapd) -> Bridge {
        let keys = format!("jwks_url = \"{}\"", self.url);
        Bridge::start_with(test_config(slapd, &[], &oauth_tenant(&keys))).await
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Keys from the issuer's URL: fetched on first use and cached, fetched again for a key it
/// did not know, at most every 30 s (so made-up key ids cannot make the bridge hammer the
/// issuer).
#[tokio::test]
async fn jwks_from_a_url_are_fetched_cached_and_refetched_for_a_new_key() {
    let slapd = Slapd::start();
    slapd.add_ou("nauthera", "dc=example,dc=org").await;
    slapd.add_ou("nauthera-groups", "dc=example,dc=org").await;
    let k1 = Issuer::new("k1");
    let k2 = Issuer::new("k2");
    let issuer = JwksServer::start(Some(json!({"keys": [k1.jwk()]}))).await;
    let bridge = issuer.bridge(&slapd).await;

    for _ in 0..5 {
        let (s, _, b) = with_bearer(&bridge, &k1.sign(&claims("admin"))).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    assert_eq!(issuer.fetches(), 1, "keys cached");

    // the issuer adds k2; tokens naming k2 before the refetch interval is over are refused,
    // and do not make the bridge ask again
    issuer.publish(json!({"keys": [k1.jwk(), k2.jwk()]}));
    let t2 = k2.sign(&claims("admin"));
    for _ in 0..20 {
        assert_eq!(with_bearer(&bridge, &t2).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        issuer.fetches(),
        1,
        "unknown key ids do not cause a fetch each"
    );
    tokio::time::sleep(Duration::from_secs(31)).await;
    let (s, _, b) = with_bearer(&bridge, &t2).await;
    assert_eq!(s, StatusCode::OK, "new key fetched: {b}");
    assert_eq!(issuer.fetches(), 2);
    let (s, _, b) = with_bearer(&bridge, &k1.sign(&claims("admin"))).await;
    assert_eq!(s, StatusCode::OK, "the old key still works: {b}");
}

/// A fetch of the issuer's keys is made by one request; tokens naming keys the bridge does
/// not know that arrive meanwhile (forged ones, or a burst after the issuer rotated) are
/// answered at once with a 503 to retry, instead of waiting in line behind the fetch, so a
/// slow issuer cannot make unauthenticated requests pile up.
#[tokio::test(flavor = "multi_thread")]
async fn requests_do_not_queue_behind_a_slow_key_fetch() {
    let slapd = Slapd::start();
    slapd.add_ou("nauthera", "dc=example,dc=org").await;
    slapd.add_ou("nauthera-groups", "dc=example,dc=org").await;
    let k1 = Issuer::new("k1");
    let issuer = JwksServer::start(Some(json!({"keys": [k1.jwk()]}))).await;
    *issuer.delay.lock().unwrap() = Duration::from_secs(3);
    let bridge = Arc::new(issuer.bridge(&slapd).await);
    let first = {
        let bridge = bridge.clone();
        let token = k1.sign(&claims("admin"));
        tokio::spawn(async move { with_bearer(&bridge, &token).await.0 })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut others = Vec::new();
    for i in 0..10 {
        let bridge = bridge.clone();
        let forged = Issuer::new(&format!("forged-{i}")).sign(&claims("admin"));
        others.push(tokio::spawn(async move {
            let start = std::time::Instant::now();
            let (s, h, _) = with_bearer(&bridge, &forged).await;
            (s, h.contains_key("retry-after"), start.elapsed())
        }));
    }
    for o in others {
        let (s, retry, took) = o.await.unwrap();
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(retry);
        assert!(
            took < Duration::from_millis(1000),
            "waited {took:?} behind the fetch"
        );
    }
    assert_eq!(
        first.await.unwrap(),
        StatusCode::OK,
        "the fetching request got its key"
    );
    assert_eq!(issuer.fetches(), 1);
}

/// While the issuer's JWKS cannot be had, a token is a 503 with Retry-After (the client is
/// not at fault), and failed fetches are retried at most every 5 s.
#[tokio::test]
async fn an_unreachable_issuer_is_a_503_not_a_401() {
    let slapd = Slapd::start();
    slapd.add_ou("nauthera", "dc=example,dc=org").await;
    slapd.add_ou("nauthera-groups", "dc=example,dc=org").await;
    let issuer = JwksServer::start(None).await;
    let bridge = issuer.bridge(&slapd).await;
    let token = Issuer::new("k1").sign(&claims("admin"));
    for _ in 0..3 {
        let (s, h, b) = with_bearer(&bridge, &token).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
        assert!(h.contains_key("retry-after"));
        assert_eq!(b["status"], "503");
    }
    assert_eq!(issuer.fetches(), 1, "one fetch per 5 s after a failure");
}

fn audit_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// One JSON record per write: who (tenant, credential, client), what (operation, resource,
/// DNs, attribute names), how it ended; never a value, never a secret. Reads are not audited.
#[tokio::test]
async fn every_write_leaves_one_audit_record_naming_who_what_and_how_it_ended() {
    let slapd = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let bridge = Bridge::start_with(test_config(
        &slapd,
        &[(
            "# file = \"/var/log/scim2ldap/audit.log\"",
            &format!("file = \"{}\"", audit.display()),
        )],
        "",
    ))
    .await;
    let password = "Audit-Pw-9f3e1c!";
    let new_password = "Audit-Pw-2b7d44?";
    let send = |method: Method, path: &str, body: Option<Value>, request_id: &str| {
        let mut req = bridge
            .client
            .request(method, format!("{}{path}", bridge.base))
            .bearer_auth(TOKEN)
            .header("x-request-id", request_id);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    let mut user = entra_user("audited");
    user["password"] = json!(password);
    let (s, created) = send(Method::POST, "/Users", Some(user.clone()), "req-create").await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (s, _) = send(Method::GET, &format!("/Users/{id}"), None, "req-read").await;
    assert_eq!(s, StatusCode::OK);
    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    let (s, b) = send(
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(patch(
            json!([{"op": "replace", "path": "title", "value": "Director"},
                         {"op": "replace", "path": "password", "value": new_password}]),
        )),
        "req-patch",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = send(
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(patch(
            json!([{"op": "replace", "path": "userName", "value": "audited.renamed"}]),
        )),
        "req-rename",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = send(
        Method::POST,
        "/Users",
        Some(entra_user("audited.renamed")),
        "req-dup",
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (s, _) = send(Method::DELETE, &format!("/Users/{id}"), None, "req-delete").await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let records = audit_records(&audit);
    let by_id = |rid: &str| -> Value {
        let found: Vec<&Value> = records.iter().filter(|r| r["request_id"] == rid).collect();
        assert_eq!(found.len(), 1, "one record for {rid}: {records:#?}");
        found[0].clone()
    };
    assert!(
        records.iter().all(|r| r["request_id"] != "req-read"),
        "reads are not audited"
    );
    assert_eq!(records.len(), 5, "{records:#?}");
    for r in &records {
        assert_eq!(r["tenant"], "default");
        assert_eq!(r["credential"], json!({"kind": "token", "name": "test"}));
        assert_eq!(r["client"], "127.0.0.1");
        assert_eq!(r["resource_type"], "User");
        assert!(r["time"].as_str().unwrap().ends_with('Z'));
    }

    let c = by_id("req-create");
    assert_eq!(
        (
            c["operation"].as_str(),
            c["status"].as_u64(),
            c["outcome"].as_str()
        ),
        (Some("create"), Some(201), Some("applied"))
    );
    assert_eq!(c["id"], id.as_str());
    let add = &c["changes"][0];
    assert_eq!(add["action"], "add");
    assert_eq!(add["dn"], "uid=audited,ou=people,dc=example,dc=org");
    let names: Vec<&str> = add["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        names.contains(&"mail") && names.contains(&"userPassword"),
        "{names:?}"
    );

    let p = by_id("req-patch");
    assert_eq!(
        (
            p["operation"].as_str(),
            p["outcome"].as_str(),
            p["id"].as_str()
        ),
        (Some("patch"), Some("applied"), Some(id.as_str()))
    );
    // the title in the modify, the password in its own Password Modify operation
    let names: Vec<&str> = p["changes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["attributes"].as_array().unwrap().iter())
        .filter_map(Value::as_str)
        .collect();
    assert!(
        names.contains(&"title") && names.contains(&"userPassword"),
        "{names:?}"
    );

    let r = by_id("req-rename");
    let rename = r["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "rename")
        .expect("a rename");
    assert_eq!(rename["dn"], "uid=audited,ou=people,dc=example,dc=org");
    assert_eq!(
        rename["new_dn"],
        "uid=audited.renamed,ou=people,dc=example,dc=org"
    );

    let d = by_id("req-dup");
    assert_eq!(
        (d["status"].as_u64(), d["outcome"].as_str()),
        (Some(409), Some("refused"))
    );
    assert!(d["changes"].as_array().unwrap().is_empty());
    assert!(d["detail"].as_str().is_some_and(|t| !t.is_empty()));

    let del = by_id("req-delete");
    assert_eq!(
        (
            del["operation"].as_str(),
            del["status"].as_u64(),
            del["outcome"].as_str()
        ),
        (Some("delete"), Some(204), Some("applied"))
    );
    let actions: Vec<&str> = del["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"modify") && actions.contains(&"rename"),
        "locked then archived: {actions:?}"
    );
    let archived = del["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "rename")
        .unwrap();
    assert!(
        archived["new_dn"].as_str().unwrap().ends_with(ARCHIVE),
        "{archived}"
    );

    let text = std::fs::read_to_string(&audit).unwrap();
    for secret in [password, new_password, TOKEN] {
        assert!(!text.contains(secret), "a secret reached the audit file");
    }
    assert!(
        !text.contains("Director") && !text.contains("audited@example.com"),
        "values stay out of the audit file"
    );
}

/// Without `audit.file` the records go to the log, target `audit`, from a JWT caller too:
/// its subject and client id, not the token.
#[tokio::test]
async fn audit_records_go_to_the_log_and_name_the_jwt_client() {
    let slapd = Slapd::start();
    slapd.add_ou("nauthera", "dc=example,dc=org").await;
    slapd.add_ou("nauthera-groups", "dc=example,dc=org").await;
    let issuer = Issuer::new("k1");
    let dir = tempfile::tempdir().unwrap();
    let tenant = oauth_tenant(&issuer.jwks_file(dir.path()));
    let server = ServerProcess::spawn(&test_config(&slapd, &[], &tenant), None, &[]);
    let jwt = issuer.sign(&claims("admin"));
    let resp = reqwest::Client::new()
        .post(format!("{}/Users", server.base))
        .bearer_auth(&jwt)
        .header("content-type", "application/scim+json")
        .body(entra_user("from.jwt").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("audit") && l.contains("from.jwt"))
        .unwrap_or_else(|| panic!("no audit line:\n{log}"));
    assert!(
        line.contains("svc-provisioner")
            && line.contains("nauthera-scim")
            && line.contains("nauthera"),
        "{line}"
    );
    assert!(!log.contains(&jwt), "the JWT reached the log");
    let sig = jwt.rsplit('.').next().unwrap();
    assert!(!log.contains(sig));
}
