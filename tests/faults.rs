//! The directory failing under the bridge, against a real slapd: a refused service account,
//! answers lost or held past the deadline (through a fault-injecting proxy), races between
//! writes, two bridges on one directory. Afterwards, every answer matches what the directory
//! holds, and nothing is half-done.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use ldap3::Mod;
use reqwest::StatusCode;

const READER: &str = "cn=reader,dc=example,dc=org";

async fn add_reader(slapd: &Slapd, password: &str) {
    let mut ldap = slapd.admin().await;
    ldap.add(
        READER,
        vec![
            (
                "objectClass",
                HashSet::from(["organizationalRole", "simpleSecurityObject"]),
            ),
            ("cn", HashSet::from(["reader"])),
            ("userPassword", HashSet::from([password])),
        ],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
}

/// The service account's password changes under a running bridge: one ERROR line, binds
/// retried with backoff (never one per request), 503s that say why, and recovery once the
/// password is right again.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_service_account_gets_bounded_binds_and_a_clear_error() {
    let mut slapd = Slapd::start();
    add_reader(&slapd, "first-pw").await;
    let cfg = test_config(&slapd, &[], "")
        .replace(
            "bind_dn = \"cn=admin,dc=example,dc=org\"",
            &format!("bind_dn = \"{READER}\""),
        )
        .replace(
            &format!("bind_password = \"{ADMIN_PW}\""),
            "bind_password = \"first-pw\"",
        );
    let bridge = Bridge::start_with(cfg.clone()).await;
    let server = ServerProcess::spawn(&cfg, None, &[]);
    let client = reqwest::Client::new();
    let get = |base: String| {
        let client = client.clone();
        async move {
            let r = client
                .get(format!("{base}/Users"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: serde_json::Value = r.json().await.unwrap();
            (status, body)
        }
    };
    assert_eq!(get(bridge.base.clone()).await.0, StatusCode::OK);
    assert_eq!(get(server.base.clone()).await.0, StatusCode::OK);

    // the password changes; the restart drops every pooled connection
    slapd
        .modify(
            READER,
            vec![Mod::Replace("userPassword", HashSet::from(["second-pw"]))],
        )
        .await;
    slapd.restart();
    let binds0 = bridge.directory.bind_attempts();
    let start = Instant::now();
    let mut answers = Vec::new();
    for _ in 0..21 {
        answers.push(get(bridge.base.clone()).await);
        let _ = get(server.base.clone()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = start.elapsed();
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("refused the bridge's service account"),
            "{body}"
        );
    }
    let binds = bridge.directory.bind_attempts() - binds0;
    println!("21 requests over {took:?}: {binds} bind attempts");
    assert!(
        binds <= 4,
        "backoff 1 s, 2 s, …: at most one bind per period, not one per request ({binds})"
    );
    let log = server.log_text();
    assert_eq!(
        log.matches("refused the service account's credentials")
            .count(),
        1,
        "one ERROR line:\n{log}"
    );

    // the password is right again: the bridge recovers on its own
    slapd
        .modify(
            READER,
            vec![Mod::Replace("userPassword", HashSet::from(["first-pw"]))],
        )
        .await;
    let start = Instant::now();
    loop {
        let (status, _) = get(bridge.base.clone()).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(70), "never recovered");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "recovered {:?} after the password was restored",
        start.elapsed()
    );
}
