//! The repair sweep, on real slapd: what breaks the invariants without the bridge's doing (a
//! hand edit, an overlay's rewrite, a crash before the journal) is found, reported, and
//! fixed; what is not the tenant's is left alone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const GROUPS: &str = "ou=groups,dc=example,dc=org";

/// `scim2ldap repair` on `config`: exit status and standard output.
fn repair(config: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scim2ldap"))
        .arg("repair")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A group's member DNs, sorted.
async fn members(slapd: &Slapd, cn: &str) -> Vec<String> {
    let mut m = slapd.group_members(cn).await;
    m.sort();
    m
}

/// A group listing a live user, a deleted one, one moved to the archive by hand, one archived
/// DN (what memberOf's rewrite leaves) and an entry outside the tenant's containers: the dry
/// run names the three broken ones and writes nothing; the repair takes out exactly those.
#[tokio::test(flavor = "multi_thread")]
async fn repair_takes_out_missing_and_archived_members_and_leaves_the_rest() {
    let slapd = Slapd::start_without_memberof();
    let bridge = Bridge::start(&slapd).await;
    let mut ids = Vec::new();
    for name in ["stays", "vanished", "moved"] {
        ids.push(bridge.create_user(json!({"userName": name})).await["id"].clone());
    }
    let members_body: Vec<_> = ids.iter().map(|id| json!({"value": id})).collect();
    let (s, g) = bridge
        .post(
            "/Groups",
            &json!({"displayName": "mended", "members": members_body}),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{g}");
    let group_dn = format!("cn=mended,{GROUPS}");
    let mut ldap = slapd.admin().await;
    // behind the bridge's back: one entry deleted, one moved, two members added by hand
    ldap.delete(&dn_of("vanished"))
        .await
        .unwrap()
        .success()
        .unwrap();
    ldap.modifydn(&dn_of("moved"), "uid=moved", true, Some(ARCHIVE))
        .await
        .unwrap()
        .success()
        .unwrap();
    let archived = format!("uid=moved,{ARCHIVE}");
    slapd
        .modify(
            &group_dn,
            vec![ldap3::Mod::Add(
                "member",
                std::collections::HashSet::from([archived.as_str(), ADMIN_DN]),
            )],
        )
        .await;
    let before = members(&slapd, "mended").await;
    assert_eq!(before.len(), 5, "{before:?}");

    let (ok, out) = repair(&bridge.config_path, &["--tenant", "default", "--dry-run"]);
    assert!(ok, "{out}");
    for (dn, why) in [
        (dn_of("vanished"), "does not exist"),
        (dn_of("moved"), "does not exist"),
        (archived.clone(), "is archived"),
    ] {
        assert!(
            out.contains(&format!("{group_dn} lists {dn}, which {why}")),
            "{dn} {why}:\n{out}"
        );
    }
    assert!(out.contains("3 finding(s), nothing written"), "{out}");
    assert_eq!(
        members(&slapd, "mended").await,
        before,
        "a dry run writes nothing"
    );

    let (ok, out) = repair(&bridge.config_path, &["--tenant", "default"]);
    assert!(ok, "{out}");
    assert!(out.contains("3 finding(s), 3 fixed"), "{out}");
    let mut expected = vec![
        dn_of("stays").to_ascii_lowercase(),
        ADMIN_DN.to_ascii_lowercase(),
    ];
    expected.sort();
    assert_eq!(
        members(&slapd, "mended").await,
        expected,
        "the live member and the entry that is not the tenant's stay"
    );
    let (ok, out) = repair(&bridge.config_path, &["--tenant", "default"]);
    assert!(
        ok && out.contains("0 finding(s), 0 fixed"),
        "a second pass finds nothing: {out}"
    );

    let (ok, out) = repair(&bridge.config_path, &["--tenant", "nobody"]);
    assert!(!ok && out.contains("no tenant \"nobody\""), "{out}");
}

/// With `[repair] interval_secs`, the server sweeps on its own: a member DN deleted behind
/// its back is gone within a few seconds, counted in the metrics and audited.
#[tokio::test(flavor = "multi_thread")]
async fn the_server_sweeps_in_the_background_when_asked() {
    let slapd = Slapd::start_without_memberof();
    let cfg = set(test_config(&slapd, &[], ""), "interval_secs", "1");
    let cfg = set(cfg, "searches_per_second", "50");
    let server = ServerProcess::spawn(&cfg, None, &[]);
    let client = reqwest::Client::new();
    let user: serde_json::Value = client
        .post(format!("{}/Users", server.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(json!({"userName": "ghost"}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let status = client
        .post(format!("{}/Groups", server.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(json!({"displayName": "haunted", "members": [{"value": user["id"]}]}).to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, reqwest::StatusCode::CREATED);
    let mut ldap = slapd.admin().await;
    ldap.delete(&dn_of("ghost"))
        .await
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(members(&slapd, "haunted").await.len(), 1);
    let start = Instant::now();
    while !members(&slapd, "haunted").await.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not swept:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = reqwest::get(server.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("scim2ldap_repair_findings_total{tenant=\"default\",result=\"fixed\"} 1"),
        "{metrics}"
    );
    let log = server.log_text();
    assert!(
        log.contains("\\\"outcome\\\":\\\"repaired\\\"")
            || log.contains("\"outcome\":\"repaired\""),
        "audited:\n{log}"
    );
}
