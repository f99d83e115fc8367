//! Lists hold one page: with a bind account that has no size limit (the rootdn), a page far
//! into 20,000 users is found by a paged search that keeps only the page, so memory does not
//! grow with startIndex. Measured on the real binary's peak RSS, 8 clients at a time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

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

/// Entries slapd sent for the searches its stats log shows after `from` bytes.
fn entries_sent(log: &str, from: usize) -> usize {
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("SEARCH RESULT"))
        .filter_map(|l| l.split("nentries=").nth(1))
        .filter_map(|n| n.split_whitespace().next())
        .filter_map(|n| n.parse::<usize>().ok())
        .sum()
}

/// What a tenant can make the bridge read is bounded whatever it asks: a sorted list past the
/// first 10,000 matches is refused before anything is read (it used to ask the directory for
/// startIndex - 1 + count entries and hold them), a sorted page within reach holds only that
/// page, and a filter checked in memory stops reading at the bound instead of reading every
/// match before saying tooMany.
#[tokio::test(flavor = "multi_thread")]
async fn lists_that_would_read_past_the_bound_stop_there() {
    let tmp = tempfile::tempdir().unwrap();
    let slapd = Slapd::start_with_ldif_logging(&users_ldif(tmp.path()));
    let bridge = Bridge::start(&slapd).await;
    let ops = bridge.ldap_ops();
    let (s, e) = bridge
        .get("/Users?sortBy=userName&startIndex=2000000000&count=10")
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("tooMany")),
        "{e}"
    );
    assert_eq!(bridge.ldap_ops(), ops, "refused before any search");

    let (s, page) = bridge
        .get("/Users?sortBy=userName&sortOrder=descending&startIndex=9990&count=10")
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let names: Vec<&str> = page["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (USERS - 9999..=USERS - 9990)
        .rev()
        .map(|i| format!("u{i:05}"))
        .collect();
    assert_eq!(names, want);
    assert_eq!(page["totalResults"], USERS);

    let before = slapd.stats_log().len();
    let (s, e) = bridge
        .get(&format!(
            "/Users?filter={}&count=5",
            urlencode("title gt \"A\"")
        ))
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("tooMany")),
        "{e}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let sent = entries_sent(&slapd.stats_log(), before);
    assert!(
        (10_000..=11_000).contains(&sent),
        "the bridge read up to the bound and stopped there, not after all {USERS}: slapd sent {sent}"
    );
}
