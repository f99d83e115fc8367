//! Passwords on OpenLDAP: set the way OpenLDAP clients set them (RFC 3062 Password Modify,
//! so that slapd hashes them), never stored as sent, never read, filtered, sorted or
//! returned, every old value replaced, and never sent over a connection in clear.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn user_with_password(name: &str, password: &str) -> Value {
    json!({"userName": name, "displayName": format!("User {name}"), "password": password})
}

fn stored_passwords(entry: &std::collections::HashMap<String, Vec<String>>) -> Vec<String> {
    entry.get("userpassword").cloned().unwrap_or_default()
}

/// Okta's "sync password" on create and on change: slapd hashes what the bridge sends with
/// its own scheme ({SSHA} by default), the account logs in with `ldapsearch -x -D … -w …`,
/// and a new password replaces every value the attribute had.
#[tokio::test(flavor = "multi_thread")]
async fn a_scim_password_is_hashed_by_slapd_and_the_account_logs_in_with_it() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let first = "Winter-2025-first!";
    let u = bridge
        .create_user(user_with_password("okta-pw", first))
        .await;
    assert!(u.get("password").is_none(), "never returned: {u}");
    let dn = dn_of("okta-pw");
    let stored = stored_passwords(&slapd.entry(&dn).await.unwrap());
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(
        stored[0].starts_with("{SSHA}"),
        "slapd hashed it: {stored:?}"
    );
    assert_ne!(stored[0], first);
    assert!(slapd.ldapsearch_binds(&dn, first), "the account logs in");
    assert!(!slapd.ldapsearch_binds(&dn, "not-the-password"));

    // an old value left beside it by another tool must go too
    slapd
        .modify(
            &dn,
            vec![ldap3::Mod::Add(
                "userPassword",
                std::collections::HashSet::from(["Left-Over-Pw-1"]),
            )],
        )
        .await;
    assert!(slapd.ldapsearch_binds(&dn, "Left-Over-Pw-1"));
    let second = "Spring-2026-second?";
    let id = u["id"].as_str().unwrap();
    let (s, body) = bridge
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "password", "value": second}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.get("password").is_none());
    let stored = stored_passwords(&slapd.entry(&dn).await.unwrap());
    assert_eq!(stored.len(), 1, "every old value replaced: {stored:?}");
    assert!(stored[0].starts_with("{SSHA}") && stored[0] != second);
    assert!(slapd.ldapsearch_binds(&dn, second));
    assert!(
        !slapd.ldapsearch_binds(&dn, first),
        "the old password is gone"
    );
    assert!(!slapd.ldapsearch_binds(&dn, "Left-Over-Pw-1"));

    // PUT with a password (Okta's full updates) sets it too
    let third = "Summer-2026-third#";
    let (s, body) = bridge
        .put(
            &format!("/Users/{id}"),
            &user_with_password("okta-pw", third),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(slapd.ldapsearch_binds(&dn, third));
    assert!(!slapd.ldapsearch_binds(&dn, second));
}

/// Where slapd's Password Modify is not what the admin wants (or a server lacks it), the
/// bridge hashes: {ARGON2} (slapd's argon2 module) and {SSHA512} (pw-sha2) both log in.
#[tokio::test(flavor = "multi_thread")]
async fn passwords_hashed_by_the_bridge_log_in_and_are_never_stored_as_sent() {
    let slapd = Slapd::start();
    for (scheme, prefix) in [("argon2", "{ARGON2}$argon2id$"), ("ssha512", "{SSHA512}")] {
        let bridge = Bridge::start_with(test_config(
            &slapd,
            &[(
                "password_hash = \"server\"",
                &format!("password_hash = \"{scheme}\""),
            )],
            "",
        ))
        .await;
        let name = format!("hashed-{scheme}");
        let password = format!("Pw-{scheme}-9f3e1c!");
        let u = bridge
            .create_user(user_with_password(&name, &password))
            .await;
        let dn = dn_of(&name);
        let stored = stored_passwords(&slapd.entry(&dn).await.unwrap());
        assert_eq!(stored.len(), 1, "{stored:?}");
        assert!(stored[0].starts_with(prefix), "{scheme}: {stored:?}");
        assert!(!stored[0].contains(&password));
        assert!(slapd.ldapsearch_binds(&dn, &password), "{scheme} logs in");
        let changed = format!("Pw-{scheme}-changed-2b7d44?");
        let (s, b) = bridge
            .patch(
                &format!("/Users/{}", u["id"].as_str().unwrap()),
                json!([{"op": "replace", "path": "password", "value": changed}]),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert!(slapd.ldapsearch_binds(&dn, &changed));
        assert!(!slapd.ldapsearch_binds(&dn, &password));
    }
}

/// A filter on the password would test one guess against every account at once: 400
/// `invalidFilter`, like asking to sort on it or to be sent it. And the bridge never asks
/// slapd for the password attribute, on any read (slapd's own log of every search says so).
#[tokio::test(flavor = "multi_thread")]
async fn passwords_are_never_read_filtered_sorted_or_returned() {
    let slapd = Slapd::start_logging();
    let bridge = Bridge::start(&slapd).await;
    let u = bridge
        .create_user(user_with_password("oracle", "Winter2025!"))
        .await;
    let id = u["id"].as_str().unwrap();
    for query in [
        format!("filter={}", urlencode("password eq \"Winter2025!\"")),
        format!("filter={}", urlencode("password pr")),
        format!(
            "filter={}",
            urlencode("userName eq \"oracle\" and not (password sw \"W\")")
        ),
        format!(
            "filter={}",
            urlencode("urn:ietf:params:scim:schemas:core:2.0:User:password eq \"x\"")
        ),
        "sortBy=password".to_owned(),
        "attributes=userName,password".to_owned(),
    ] {
        let (s, e) = bridge.get(&format!("/Users?{query}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {e}");
        assert_eq!(e["scimType"], "invalidFilter", "{query}: {e}");
        assert!(
            !e.to_string().contains("Winter2025"),
            "the value is not echoed"
        );
    }
    let (s, e) = bridge
        .get(&format!("/Users/{id}?attributes=password"))
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalidFilter"))
    );
    let (s, e) = bridge
        .post(
            "/Users/.search",
            &json!({"filter": "password eq \"Winter2025!\""}),
        )
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalidFilter"))
    );

    // reads of every kind: get, list, filter, projection, after a write
    let (s, got) = bridge.get(&format!("/Users/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(got.get("password").is_none());
    bridge.get("/Users").await;
    bridge
        .get(&format!(
            "/Users?filter={}",
            urlencode("userName eq \"oracle\"")
        ))
        .await;
    bridge.get("/Users?sortBy=userName&count=5").await;
    bridge
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "title", "value": "Boss"}]),
        )
        .await;
    let log = slapd.stats_log();
    let searches: Vec<&str> = log.lines().filter(|l| l.contains(" SRCH attr=")).collect();
    assert!(searches.len() >= 5, "slapd logged the bridge's searches");
    for line in &searches {
        assert!(
            !line.to_ascii_lowercase().contains("userpassword"),
            "the bridge asked for the password: {line}"
        );
    }
    assert!(
        !log.to_ascii_lowercase().contains("(userpassword="),
        "no filter on it"
    );
}

/// The example maps passwords; without that mapping an IdP's password is a visible decision:
/// 400 naming the keys, or dropped when the admin chose `users.password = "ignore"`.
#[tokio::test(flavor = "multi_thread")]
async fn a_password_the_mapping_cannot_store_is_refused_unless_the_admin_ignores_it() {
    let slapd = Slapd::start();
    let unmapped = test_config(&slapd, &[("password = \"userPassword\"\n", "")], "");
    let bridge = Bridge::start_with(unmapped.clone()).await;
    let (s, e) = bridge
        .post("/Users", &user_with_password("no-pw-store", "Winter2025!"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let detail = e["detail"].as_str().unwrap();
    assert!(
        detail.contains("users.attributes.password") && detail.contains("users.password"),
        "{detail}"
    );
    assert!(slapd.dns(PEOPLE, "(uid=no-pw-store)").await.is_empty());
    // PATCH too
    let u = bridge.create_user(json!({"userName": "no-pw-patch"})).await;
    let (s, _) = bridge
        .patch(
            &format!("/Users/{}", u["id"].as_str().unwrap()),
            json!([{"op": "replace", "path": "password", "value": "Winter2025!"}]),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let ignoring = unmapped.replace(
        "on_existing = \"conflict\"\n",
        "on_existing = \"conflict\"\npassword = \"ignore\"\n",
    );
    let bridge = Bridge::start_with(ignoring).await;
    bridge
        .create_user(user_with_password("pw-ignored", "Winter2025!"))
        .await;
    let e = slapd.entry(&dn_of("pw-ignored")).await.unwrap();
    assert!(stored_passwords(&e).is_empty(), "nothing stored: {e:?}");
}

/// A password only ever travels encrypted (or over ldapi://): a config that would send one
/// over plain ldap:// is refused at start, naming the key and the fix; plain ldap:// to a
/// host other than loopback is refused whatever the mapping, unless allowed.
#[tokio::test(flavor = "multi_thread")]
async fn configs_that_would_send_secrets_in_clear_are_refused_at_start() {
    let slapd = Slapd::start();
    let build = |cfg: String| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, cfg).unwrap();
        let raw = scim2ldap::config::load_raw(&path).unwrap();
        scim2ldap::app::build(&raw).map(|_| ())
    };
    let plain = test_config(&slapd, &[], "").replace(&slapd.ldapi_url(), &slapd.url());
    let e = build(plain.clone()).unwrap_err();
    assert_eq!(e.key, "ldap.url", "{e}");
    assert!(
        e.problem.contains("in clear") && e.fix.contains("ldaps://"),
        "{e}"
    );
    // StartTLS makes it fine (the connection is upgraded before the bind)
    assert!(build(set(plain.clone(), "starttls", "true")).is_ok());
    // without passwords, loopback plain LDAP is accepted
    build(via_plain_ldap(
        &test_config(&slapd, &[], ""),
        &slapd,
        &slapd.url(),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    // another host in clear: refused whatever the mapping
    let remote = via_plain_ldap(
        &test_config(&slapd, &[], ""),
        &slapd,
        "ldap://ldap.example.org:389",
    );
    let e = build(remote.clone()).unwrap_err();
    assert_eq!(e.key, "ldap.url", "{e}");
    assert!(e.fix.contains("allow_plain_ldap"), "{e}");
    assert!(build(remote.replace("# allow_plain_ldap = false", "allow_plain_ldap = true")).is_ok());
}

/// An admin who allows plain LDAP to another host hears about it at every start.
#[test]
fn plain_ldap_to_another_host_is_warned_about_at_every_start() {
    let slapd = Slapd::start();
    let cfg = set(
        via_plain_ldap(
            &test_config(&slapd, &[], ""),
            &slapd,
            "ldap://192.0.2.10:389",
        )
        .replace("# allow_plain_ldap = false", "allow_plain_ldap = true"),
        "connect_timeout_secs",
        "1",
    );
    let server = ServerProcess::spawn(&cfg, None, &[]);
    let log = server.log_text();
    assert!(
        log.contains("allow_plain_ldap") && log.contains("in clear"),
        "{log}"
    );
}
