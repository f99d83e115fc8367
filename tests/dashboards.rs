//! The Grafana dashboard and the Prometheus alerts name only metrics the binary exports: every
//! `scim2ldap_*` name in `deploy/grafana/scim2ldap.json` and `deploy/prometheus/alerts.yml` is
//! in a real `/metrics` scrape of `scim2ldap serve` against a real slapd, with the labels the
//! panels group by. (`promtool check rules` and `promtool test rules` run in
//! `scripts/test.sh`.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use std::collections::BTreeSet;

use common::load::text;
use common::*;

/// Every `scim2ldap_…` name in `text`.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("scim2ldap_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// The series names an exposition offers: a counter's `_total`, a histogram's `_bucket`,
/// `_count` and `_sum`, a gauge's own name.
fn exported(scrape: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in scrape.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        match kind {
            "counter" => {
                out.insert(format!("{name}_total"));
            }
            "histogram" => {
                for s in ["_bucket", "_count", "_sum"] {
                    out.insert(format!("{name}{s}"));
                }
            }
            _ => {
                out.insert(name.to_owned());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_and_the_alerts_name_only_metrics_the_binary_exports() {
    let slapd = Slapd::start();
    // the repair sweep every second, so that its per-tenant series exist
    let config = set(test_config(&slapd, &[], ""), "interval_secs", "1");
    let server = ServerProcess::spawn(&config, None, &[]);
    // what makes the other series: a tenant's requests (with DN cache lookups), a wrong
    // token, a value the directory refuses (an LDAP error), a reload
    let client = reqwest::Client::new();
    let call =
        |method: reqwest::Method, path: &str, token: &str, body: Option<serde_json::Value>| {
            let mut req = client
                .request(method, format!("{}{path}", server.base))
                .bearer_auth(token);
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/scim+json")
                    .body(b.to_string());
            }
            req.send()
        };
    let made = call(
        reqwest::Method::POST,
        "/Users",
        TOKEN,
        Some(entra_user("dash")),
    )
    .await
    .unwrap();
    assert_eq!(made.status(), reqwest::StatusCode::CREATED);
    let id = made.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = call(reqwest::Method::GET, &format!("/Users/{id}"), TOKEN, None)
        .await
        .unwrap();
    assert!(r.status().is_success());
    let r = call(reqwest::Method::GET, "/Users", "scim2ldap_wrong", None)
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    let mut bad = entra_user("dash-bad");
    bad["phoneNumbers"] = serde_json::json!([{"type": "work", "value": "\u{260e} 555"}]);
    let r = call(reqwest::Method::POST, "/Users", TOKEN, Some(bad))
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        reqwest::StatusCode::BAD_REQUEST,
        "slapd refuses the syntax"
    );
    server.signal("HUP");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (_, scrape) = text(&server.metrics_url()).await;
    let have = exported(&scrape);
    assert!(have.len() > 15, "{scrape}");

    let repo = repo();
    let dashboard = std::fs::read_to_string(repo.join("deploy/grafana/scim2ldap.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(exprs.len() > 15, "the dashboard has its panels");
    let alerts = std::fs::read_to_string(repo.join("deploy/prometheus/alerts.yml")).unwrap();
    for (what, text) in [("dashboard", exprs.join("\n")), ("alerts", alerts.clone())] {
        let named = names_in(&text);
        assert!(named.len() > 5, "{what}");
        let missing: Vec<&String> = named.iter().filter(|n| !have.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "the {what} names metrics the binary does not export: {missing:?}\nexported: {have:?}"
        );
    }
    // what the panels and alerts group by is there
    for series in [
        "scim2ldap_http_requests_total{route=\"/scim/v2/Users/{id}\",method=\"GET\",status=\"200\",tenant=\"default\"} 1",
        "scim2ldap_config_reloads_total{result=\"applied\"} 1",
        "scim2ldap_auth_failures_total{tenant=\"-\",reason=\"invalid_token\"} 1",
        "scim2ldap_safety_held{tenant=\"default\"} 0",
        "scim2ldap_removals_held_total{tenant=\"default\"} 0",
        "scim2ldap_token_store_readable 1",
        "scim2ldap_ldap_failovers_total{kind=\"failover\"} 0",
    ] {
        assert!(scrape.contains(series), "missing {series}:\n{scrape}");
    }
    // each of the subjects has a panel and an alert
    for subject in [
        "safety_held",
        "ldap_server_up",
        "auth_failures",
        "config_reloads",
        "token_store_readable",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(subject)),
            "no panel for {subject}"
        );
        assert!(alerts.contains(subject), "no alert on {subject}");
    }
}
