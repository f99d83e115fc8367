//! The mass-removal safety valve against a real slapd: with the default threshold, a tenant's
//! 101st removal within the hour is held (503, Retry-After, nothing changed in LDAP) while
//! creates and reactivations go on; `scim2ldap safety status` shows it and `safety release`
//! lets the IdP's retry through. (Active Directory: `tests/ad.rs`.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Runs `scim2ldap safety ARGS` on `config`; (succeeded, stdout, stderr).
fn safety_cli(config: &Path, args: &[&str]) -> (bool, String, String) {
    cli("safety", args, config)
}

fn deactivate() -> Value {
    json!([{"op": "replace", "path": "active", "value": false}])
}

/// Waits up to five seconds for `safety status` to show what `want` says.
fn status_until(config: &Path, want: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let (ok, out, err) = safety_cli(config, &["status"]);
        assert!(ok, "{err}");
        if want(&out) || start.elapsed() > Duration::from_secs(5) {
            return out;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_101st_removal_is_held_until_an_admin_releases_it() {
    let slapd = Slapd::start();
    let audit = tempfile::tempdir().unwrap();
    let audit_file = audit.path().join("audit.log");
    let config = test_config(
        &slapd,
        &[(
            "# file = \"/var/log/scim2ldap/audit.log\"",
            &format!("file = \"{}\"", audit_file.display()),
        )],
        "",
    );
    assert!(
        config.contains("max_removals = 100"),
        "the default threshold"
    );
    let bridge = Bridge::start_with(config).await;

    let mut ids = Vec::new();
    for i in 0..102 {
        let u = bridge.create_user(entra_user(&format!("leaver{i}"))).await;
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    // 100 removals, deletes and deactivations mixed, all go through
    for (i, id) in ids.iter().take(100).enumerate() {
        if i % 2 == 0 {
            assert_eq!(
                bridge.delete(&format!("/Users/{id}")).await,
                StatusCode::NO_CONTENT
            );
        } else {
            let (s, b) = bridge.patch(&format!("/Users/{id}"), deactivate()).await;
            assert_eq!(s, StatusCode::OK, "{b}");
        }
    }

    // the 101st is held: 503, Retry-After, a detail that names the release
    let held = &ids[100];
    let (s, headers, body) = bridge
        .call(Method::DELETE, &format!("/Users/{held}"), None)
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(headers.get("retry-after").is_some(), "{headers:?}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("safety valve"), "{detail}");
    assert!(
        detail.contains("scim2ldap safety release --tenant default"),
        "{detail}"
    );
    assert_eq!(body["status"], "503");
    // a deactivation is held too
    let other = &ids[101];
    let (s, b) = bridge.patch(&format!("/Users/{other}"), deactivate()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");

    // nothing changed in LDAP: both accounts are where they were, not locked
    for name in ["leaver100", "leaver101"] {
        let e = slapd.entry(&dn_of(name)).await;
        let e = e.unwrap_or_else(|| panic!("{name} was moved"));
        assert!(!e.contains_key("pwdAccountLockedTime"), "{name}: {e:?}");
    }
    let (s, u) = bridge.get(&format!("/Users/{held}")).await;
    assert_eq!((s, &u["active"]), (StatusCode::OK, &json!(true)), "{u}");

    // creates, updates and reactivations go on
    bridge.create_user(entra_user("newhire")).await;
    let (s, b) = bridge
        .patch(
            &format!("/Users/{}", ids[1]),
            json!([{"op": "replace", "path": "active", "value": true}]),
        )
        .await;
    assert_eq!((s, &b["active"]), (StatusCode::OK, &json!(true)), "{b}");
    let (s, b) = bridge
        .patch(
            &format!("/Users/{held}"),
            json!([{"op": "replace", "path": "title", "value": "Still here"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // the admin sees it: status, metrics, the audit trail
    let out = status_until(&bridge.config_path, |o| {
        o.contains("HELD") && o.contains("leaver101")
    });
    assert!(out.contains("default") && out.contains("HELD"), "{out}");
    assert!(out.contains("100/100"), "{out}");
    assert!(
        out.contains(held.as_str()) && out.contains("leaver100"),
        "{out}"
    );
    assert!(out.contains("safety release --tenant default"), "{out}");
    let metrics = scim2ldap::metrics::metrics().render();
    assert!(
        metrics.contains("scim2ldap_safety_held{tenant=\"default\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("scim2ldap_removals_held_total{tenant=\"default\"} 2"),
        "{metrics}"
    );
    let trail = std::fs::read_to_string(&audit_file).unwrap();
    let held_records: Vec<Value> = trail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["outcome"] == "held")
        .collect();
    assert_eq!(held_records.len(), 2, "{trail}");
    assert!(held_records
        .iter()
        .all(|r| r["status"] == 503 && r["changes"] == json!([])));

    // release: the IdP's retry goes through within seconds
    let (ok, out, err) = safety_cli(&bridge.config_path, &["release", "--tenant", "default"]);
    assert!(ok, "{out}{err}");
    let start = Instant::now();
    loop {
        let s = bridge.delete(&format!("/Users/{held}")).await;
        if s == StatusCode::NO_CONTENT {
            break;
        }
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the release did not reach the bridge"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(slapd.entry(&dn_of("leaver100")).await.is_none(), "archived");
    let (s, b) = bridge.patch(&format!("/Users/{other}"), deactivate()).await;
    assert_eq!((s, &b["active"]), (StatusCode::OK, &json!(false)), "{b}");
    let out = status_until(&bridge.config_path, |o| o.contains("2/100"));
    assert!(
        out.contains("open") && out.contains("2/100"),
        "a new window: {out}"
    );
}

const SMALL: &str = "scim2ldap_test-token-for-the-small-tenant";

/// `path` called with the token of tenant `small`.
async fn small(
    bridge: &Bridge,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let (s, _, b) = bridge.call_as(Some(SMALL), method, path, body).await;
    (s, b)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_percentage_overrides_the_default_and_zero_turns_the_valve_off() {
    // its own tenant, so that the metrics of `default` in the test above stay its own
    let slapd = Slapd::start();
    for ou in ["small", "small-groups"] {
        slapd.add_ou(ou, "dc=example,dc=org").await;
    }
    let hash = hex::encode(scim2ldap::auth::hash_token(SMALL));
    let extra = format!(
        "\n[tenants.small]\nusers_container = \"ou=small,dc=example,dc=org\"\ngroups_container = \"ou=small-groups,dc=example,dc=org\"\n[tenants.small.tokens.test]\nsha256 = \"{hash}\"\n[tenants.small.safety]\nmax_removals_percent = 50\n"
    );
    let bridge =
        Bridge::start_with(set(test_config(&slapd, &[], &extra), "max_removals", "0")).await;
    let mut ids = Vec::new();
    for name in ["first", "second"] {
        let (s, u) = small(&bridge, Method::POST, "/Users", Some(&entra_user(name))).await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    let (s, _) = small(&bridge, Method::DELETE, &format!("/Users/{}", ids[0]), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = small(&bridge, Method::DELETE, &format!("/Users/{}", ids[1]), None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    let detail = b["detail"].as_str().unwrap();
    assert!(detail.contains("--tenant small"), "{b}");
    // half of the tenant's two users, counted in its own container
    assert!(detail.contains("50% of 2 users"), "{b}");

    // tenant default: [safety] max_removals = 0, no override: off
    for i in 0..5 {
        let u = bridge.create_user(entra_user(&format!("gone{i}"))).await;
        let id = u["id"].as_str().unwrap();
        assert_eq!(
            bridge.delete(&format!("/Users/{id}")).await,
            StatusCode::NO_CONTENT
        );
    }
}

#[test]
fn a_window_of_zero_is_refused_at_start_naming_the_key() {
    let slapd = Slapd::start();
    let config = format!(
        "{}\n[tenants.default.safety]\nwindow_secs = 0\n",
        test_config(&slapd, &[], "")
    );
    let (code, _, err) = check_config(&config);
    assert_ne!(code, Some(0));
    assert!(err.contains("tenants.default.safety.window_secs"), "{err}");
}
