//! Lists hold one page: with a bind account that has no size limit (the rootdn), a page far
//! into 20,000 users is found by a paged search that keeps only the page, so memory does not
//! grow with startIndex. Measured on the real binary's peak RSS, 8 clients at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::io::Write;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

const USERS: usize = 20_000;
const CLIENTS: usize = 8;

/// 20,000 inetOrgPerson entries under ou=people, for slapadd.
fn users_ldif(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("users.ldif");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..USERS {
        writeln!(
            f,
            "dn: uid=u{i:05},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: u{i:05}\ncn: User {i}\nsn: Number {i}\ndisplayName: User number {i}\nmail: u{i:05}@example.org\ntitle: Tester\n"
        )
        .unwrap();
    }
    path
}

/// Peak resident memory of a process, in KiB (VmHWM).
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_pages_and_long_lists_keep_memory_flat() {
    let tmp = tempfile::tempdir().unwrap();
    let slapd = Slapd::start_with_ldif(&users_ldif(tmp.path()));
    // the rootdn: no size limit, the case that used to read every entry before the page
    let server = ServerProcess::spawn(&test_config(&slapd, &[], ""), None, &[]);
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let get = move |path: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let r = client
                .get(format!("{base}{path}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            (status, body)
        }
    };
    let (s, first) = get("/Users?count=1".into()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(first["totalResults"], USERS);
    let idle = peak_rss_kib(server.pid());
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let get = get.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..3 {
                // pages far in, and lists of 200
                let start = USERS - 100 - (c * 1000 + round * 300);
                let (s, page) = get(format!("/Users?startIndex={start}&count=100")).await;
                assert_eq!(s, StatusCode::OK, "{page}");
                assert_eq!(page["Resources"].as_array().unwrap().len(), 100);
                assert_eq!(page["startIndex"], start);
                assert_eq!(page["totalResults"], USERS);
                let (s, list) = get("/Users?startIndex=1&count=200".to_owned()).await;
                assert_eq!(s, StatusCode::OK);
                assert_eq!(list["Resources"].as_array().unwrap().len(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let peak = peak_rss_kib(server.pid());
    println!(
        "{CLIENTS} clients, 24 pages deep into {USERS} users and 24 lists of 200 in {:?}: peak RSS {} MiB (after the first request: {} MiB)",
        started.elapsed(),
        peak / 1024,
        idle / 1024
    );
    assert!(peak < 64 * 1024, "peak RSS {} MiB", peak / 1024);
}
