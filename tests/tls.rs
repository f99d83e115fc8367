//! TLS to the directory: ldaps:// and StartTLS, verified against a configured CA file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

fn tls_config(slapd: &Slapd, url: &str, starttls: bool, ca: bool) -> String {
    let mut cfg = test_config(
        slapd,
        &[("starttls = false", &format!("starttls = {starttls}"))],
        "",
    )
    .replace(
        &format!("url = \"{}\"", slapd.ldapi_url()),
        &format!("url = \"{url}\""),
    );
    if ca {
        cfg = cfg.replace(
            "# ca_file = \"/etc/scim2ldap/ldap-ca.pem\"",
            &format!("ca_file = \"{}\"", slapd.ca_file().display()),
        );
    }
    cfg
}

#[tokio::test(flavor = "multi_thread")]
async fn ldaps_with_the_configured_ca_works() {
    let slapd = Slapd::start_tls();
    let url = format!("ldaps://127.0.0.1:{}", slapd.tls_port.unwrap());
    let bridge = Bridge::start_with(tls_config(&slapd, &url, false, true)).await;
    let u = bridge.create_user(json!({"userName": "tls-user"})).await;
    let (s, got) = bridge
        .get(&format!("/Users/{}", u["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        (s, got["userName"].as_str()),
        (StatusCode::OK, Some("tls-user"))
    );
    assert!(slapd.entry(&dn_of("tls-user")).await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_with_the_configured_ca_works() {
    let slapd = Slapd::start_tls();
    let bridge = Bridge::start_with(tls_config(&slapd, &slapd.url(), true, true)).await;
    bridge
        .create_user(json!({"userName": "starttls-user"}))
        .await;
    assert!(slapd.entry(&dn_of("starttls-user")).await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_directory_certificate_is_refused() {
    let slapd = Slapd::start_tls();
    let url = format!("ldaps://127.0.0.1:{}", slapd.tls_port.unwrap());
    // no ca_file: the system roots do not know the throwaway CA
    let bridge = Bridge::start_with(tls_config(&slapd, &url, false, false)).await;
    let (s, e) = bridge.post("/Users", &json!({"userName": "nope"})).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{e}");
    assert!(slapd.dns(PEOPLE, "(uid=nope)").await.is_empty());
}
