//! A directory estate, not a server: the bridge in front of a multi-provider OpenLDAP pair
//! (syncprov and syncrepl both ways), found by URL list or in DNS. The preferred server is
//! killed with SIGKILL under load and comes back: requests move to the other within seconds,
//! no acknowledged write is lost, no id the bridge created answers 404, and requests go back
//! to the preferred server once it has answered long enough. Two bridges creating the same
//! names at once make one account each: both write to the same server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::proxy::FaultProxy;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The bridge's config for the pair, `first` preferred: fail-back after 5 s, health checks
/// every second (the defaults are 60 s and 2 s).
fn pair_config(first: &Slapd, second: &Slapd) -> String {
    test_config(first, &[], "").replace(
        &format!("url = \"{}\"", first.ldapi_url()),
        &format!(
            "urls = [\"{}\", \"{}\"]\nfailback_after_secs = 5\nhealth_interval_secs = 1",
            first.ldapi_url(),
            second.ldapi_url()
        ),
    )
}

async fn text(url: &str) -> (StatusCode, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// `scim2ldap_ldap_failovers_total{kind}` as the bridge counts it.
async fn moves(server: &ServerProcess, kind: &str) -> u64 {
    let (_, metrics) = text(&server.metrics_url()).await;
    let prefix = format!("scim2ldap_ldap_failovers_total{{kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// The server `/readyz` names as current.
async fn current(server: &ServerProcess) -> String {
    let (_, body) = text(&format!("http://{}/readyz", server.addr)).await;
    body.lines()
        .find_map(|l| l.strip_prefix("current: "))
        .unwrap_or_default()
        .to_owned()
}

/// What one request of the load got, and when it ended.
#[derive(Debug, Clone)]
struct Answer {
    kind: &'static str,
    status: u16,
    ended: Instant,
}

/// Users the load created (201) and the title each acknowledged PATCH set.
#[derive(Default)]
struct Acked {
    created: HashMap<String, String>,
    titles: HashMap<String, String>,
    get_after_create: Vec<u16>,
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client
        .request(method, url)
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(40));
    if let Some(b) = body {
        req = req.json(&b);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// One client of the load: create a user, read it back at once, change its title; until
/// `stop`. Nothing is retried: every answer is recorded as it came.
async fn client_loop(
    base: String,
    worker: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    acked: Arc<Mutex<Acked>>,
) {
    let client = reqwest::Client::new();
    let mut i = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        i += 1;
        let name = format!("ha{worker}x{i}");
        let record = |kind, status| {
            answers.lock().unwrap().push(Answer {
                kind,
                status,
                ended: Instant::now(),
            })
        };
        let (status, made) = send(
            &client,
            reqwest::Method::POST,
            format!("{base}/Users"),
            Some(entra_user(&name)),
        )
        .await;
        record("create", status);
        if status != 201 {
            continue;
        }
        let id = made["id"].as_str().unwrap().to_owned();
        acked
            .lock()
            .unwrap()
            .created
            .insert(name.clone(), id.clone());
        let (status, _) = send(
            &client,
            reqwest::Method::GET,
            format!("{base}/Users/{id}"),
            None,
        )
        .await;
        record("get", status);
        acked.lock().unwrap().get_after_create.push(status);
        let title = format!("T{i}");
        let (status, _) = send(
            &client,
            reqwest::Method::PATCH,
            format!("{base}/Users/{id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "title", "value": title}]
            })),
        )
        .await;
        record("patch", status);
        if status == 200 {
            acked.lock().unwrap().titles.insert(name, title);
        }
    }
}

/// The longest stretch with no successful answer that holds a failed one: how long clients
/// saw only errors.
fn longest_failure_window(answers: &[Answer]) -> Duration {
    let mut sorted = answers.to_vec();
    sorted.sort_by_key(|a| a.ended);
    let mut longest = Duration::ZERO;
    let mut last_ok: Option<Instant> = None;
    let mut failed_since_ok = false;
    for a in &sorted {
        let ok = (200..300).contains(&a.status);
        if ok {
            if let (Some(prev), true) = (last_ok, failed_since_ok) {
                longest = longest.max(a.ended - prev);
            }
            last_ok = Some(a.ended);
            failed_since_ok = false;
        } else {
            failed_since_ok = true;
        }
    }
    longest
}

/// Waits until both servers hold every acknowledged user with its acknowledged title.
async fn converged(servers: [&Slapd; 2], acked: &Acked) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut missing = Vec::new();
        for (n, s) in servers.iter().enumerate() {
            let mut ldap = s.admin().await;
            let (entries, _) = ldap
                .search(
                    PEOPLE,
                    ldap3::Scope::OneLevel,
                    "(uid=ha*)",
                    vec!["uid", "title"],
                )
                .await
                .unwrap()
                .success()
                .unwrap();
            let found: HashMap<String, Vec<String>> = entries
                .into_iter()
                .map(ldap3::SearchEntry::construct)
                .map(|e| {
                    (
                        e.attrs["uid"][0].clone(),
                        e.attrs.get("title").cloned().unwrap_or_default(),
                    )
                })
                .collect();
            for name in acked.created.keys() {
                match (found.get(name), acked.titles.get(name)) {
                    (None, _) => missing.push(format!("server {}: {name} absent", n + 1)),
                    (Some(t), Some(want)) if !t.contains(want) => missing.push(format!(
                        "server {}: {name} has title {t:?}, not {want}",
                        n + 1
                    )),
                    _ => {}
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(missing.join("; "));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_preferred_server_killed_under_load_loses_no_acknowledged_write_and_takes_back_after_it_returns(
) {
    let (mut first, second) = Slapd::start_pair();
    let server = ServerProcess::spawn(&pair_config(&first, &second), None, &[]);
    assert_eq!(current(&server).await, first.ldapi_url());

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            tokio::spawn(client_loop(
                server.base.clone(),
                w,
                stop.clone(),
                answers.clone(),
                acked.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(3)).await;
    first.kill();
    let killed = Instant::now();
    let mut moved_after = None;
    while killed.elapsed() < Duration::from_secs(6) {
        if moved_after.is_none() && current(&server).await == second.ldapi_url() {
            moved_after = Some(killed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let moved_after = moved_after.expect("requests moved to the second server");
    first.restart();
    let back = Instant::now();
    let mut back_after = None;
    while back.elapsed() < Duration::from_secs(30) {
        if current(&server).await == first.ldapi_url() {
            back_after = Some(back.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // a few more seconds of load on the preferred server, with the second's writes in it
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let back_after = back_after.expect("requests went back to the preferred server");

    let answers = answers.lock().unwrap().clone();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let failed: Vec<&Answer> = answers
        .iter()
        .filter(|a| !(200..300).contains(&a.status))
        .collect();
    let window = longest_failure_window(&answers);
    let gets_not_found = acked.get_after_create.iter().filter(|s| **s == 404).count();
    let gets_ok = acked.get_after_create.iter().filter(|s| **s == 200).count();
    eprintln!(
        "estate: {} requests ({} creates acknowledged), {} failed {:?}; longest failure window {:?}; \
         failover seen by /readyz {:?} after the kill; fail-back {:?} after the restart; \
         GET right after create: {gets_ok} of {} 200",
        answers.len(),
        acked.created.len(),
        failed.len(),
        failed.iter().map(|a| (a.kind, a.status)).fold(
            HashMap::<(&str, u16), usize>::new(),
            |mut m, k| {
                *m.entry(k).or_default() += 1;
                m
            }
        ),
        window,
        moved_after,
        back_after,
        acked.get_after_create.len(),
    );
    assert!(
        acked.created.len() > 20,
        "the load made too little progress"
    );
    assert_eq!(gets_not_found, 0, "an id the bridge created answered 404");
    assert!(
        window <= Duration::from_secs(5),
        "clients saw only errors for {window:?}"
    );
    assert!(
        moved_after <= Duration::from_secs(4),
        "failover took {moved_after:?}"
    );
    assert!(
        back_after >= Duration::from_secs(4),
        "fail-back came before failback_after_secs: {back_after:?}"
    );
    assert!(
        failed.iter().all(|a| a.status == 503),
        "failures other than a retryable 503: {failed:?}"
    );
    converged([&first, &second], &acked)
        .await
        .unwrap_or_else(|e| panic!("an acknowledged write is missing: {e}"));
    assert!(moves(&server, "failover").await >= 1);
    assert!(moves(&server, "failback").await >= 1);
    let log = server.log_text();
    assert!(log.contains("directory failover"), "{log}");
    assert!(log.contains("directory failback"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_bridges_creating_the_same_user_names_at_once_make_one_account_each() {
    let (first, second) = Slapd::start_pair();
    let config = pair_config(&first, &second);
    let one = ServerProcess::spawn(&config, None, &[]);
    let other = ServerProcess::spawn(&config, None, &[]);
    let client = reqwest::Client::new();
    let names: Vec<String> = (0..20).map(|i| format!("twin{i}")).collect();
    let mut calls = Vec::new();
    for name in &names {
        for base in [&one.base, &other.base] {
            let (client, url, body) = (client.clone(), format!("{base}/Users"), entra_user(name));
            calls.push(tokio::spawn(async move {
                send(&client, reqwest::Method::POST, url, Some(body))
                    .await
                    .0
            }));
        }
    }
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.unwrap());
    }
    for (i, name) in names.iter().enumerate() {
        let mut pair = [statuses[2 * i], statuses[2 * i + 1]];
        pair.sort();
        assert_eq!(pair, [201, 409], "{name}: {pair:?}");
    }
    // once replicated, each name is one entry on both servers
    tokio::time::sleep(Duration::from_secs(1)).await;
    for s in [&first, &second] {
        let dns = s.dns(PEOPLE, "(uid=twin*)").await;
        assert_eq!(dns.len(), names.len(), "{dns:?}");
    }
}

/// An id the bridge created on the server that then died, before the other received it: the
/// bridge must not answer 404 (the IdP would create the account a second time) but a
/// retryable 503; once the first server is back and has replicated, the id answers 200.
#[tokio::test(flavor = "multi_thread")]
async fn an_id_created_on_a_server_that_died_before_replicating_answers_503_not_404() {
    // the second receives the first's changes through a proxy the test can cut
    let p1 = free_port();
    let link = FaultProxy::start(p1).await;
    let (mut first, second) = Slapd::start_pair_on(p1, &format!("{}/", link.url()));
    let server = ServerProcess::spawn(&pair_config(&first, &second), None, &[]);
    let client = reqwest::Client::new();
    // replication runs (an entry added on the first reaches the second), then the link
    // between the servers is cut
    add_person(&mut first.admin().await, "probe", "Probe").await;
    let mut settled = false;
    for _ in 0..100 {
        if !second.dns(PEOPLE, "(uid=probe)").await.is_empty() {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(settled, "the pair never replicated");
    link.partition();
    let (status, made) = send(
        &client,
        reqwest::Method::POST,
        format!("{}/Users", server.base),
        Some(entra_user("lagging")),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    assert!(
        second.dns(PEOPLE, "(uid=lagging)").await.is_empty(),
        "the partition let the entry through"
    );
    first.kill();
    let started = Instant::now();
    let r = client
        .get(format!("{}/Users/{id}", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("replication"),
        "{body}"
    );
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(15),
        "looked again for {waited:?}"
    );
    assert_eq!(current(&server).await, second.ldapi_url());
    // another id, never created here, is a plain 404 at once
    let (status, _) = send(
        &client,
        reqwest::Method::GET,
        format!("{}/Users/00000000-0000-0000-0000-000000000000", server.base),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // the first comes back, the link is healed, and the entry reaches the second
    first.restart();
    link.restore();
    let back = Instant::now();
    loop {
        let (status, got) = send(
            &client,
            reqwest::Method::GET,
            format!("{}/Users/{id}", server.base),
            None,
        )
        .await;
        if status == 200 {
            assert_eq!(got["userName"], "lagging");
            break;
        }
        assert_eq!(status, 503, "{got}");
        assert!(back.elapsed() < Duration::from_secs(30), "never found");
    }
}

/// A throwaway DNS server (dnsmasq, Debian's dnsmasq-base) on a loopback port answering
/// `_ldap._tcp.example.test` SRV records for the given (host, port, priority), each host
/// name resolving to 127.0.0.1.
struct Dns {
    port: u16,
    child: std::process::Child,
}

impl Dns {
    fn start(port: u16, servers: &[(&str, u16, u16)]) -> Dns {
        assert!(
            std::path::Path::new("/usr/sbin/dnsmasq").exists(),
            "dnsmasq is not installed: apt-get install -y dnsmasq-base (scripts/test.sh does)"
        );
        let mut cmd = std::process::Command::new("/usr/sbin/dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            &format!("--port={port}"),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--user=root",
            "--local-ttl=1",
        ]);
        for (host, p, priority) in servers {
            cmd.arg(format!(
                "--srv-host=_ldap._tcp.example.test,{host}.example.test,{p},{priority},100"
            ))
            .arg(format!("--host-record={host}.example.test,127.0.0.1"));
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let dns = Dns { port, child };
        // it answers once it listens
        for _ in 0..100 {
            if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
                return dns;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("dnsmasq did not start on port {port}");
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_current(server: &ServerProcess, want: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if current(server).await == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "current server is {}, not {want}",
            current(server).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The servers come from DNS SRV records, in priority order: the first is used, the second
/// takes over when it dies, the first takes back once it is up again, and a server removed
/// from DNS is left once the records' time to live has passed.
#[tokio::test(flavor = "multi_thread")]
async fn servers_found_in_dns_are_used_in_priority_order_and_followed_when_the_records_change() {
    let (mut first, second) = Slapd::start_pair();
    let dns_port = free_port();
    let both = [("ldap1", first.port, 10), ("ldap2", second.port, 20)];
    let mut dns = Dns::start(dns_port, &both);
    let config = via_plain_ldap(&test_config(&first, &[], ""), &first, "ldap://unused")
        .replace(
            "url = \"ldap://unused\"",
            &format!(
                "discover = {{ domain = \"example.test\", dns_server = \"127.0.0.1:{}\" }}\nallow_plain_ldap = true\nfailback_after_secs = 3\nhealth_interval_secs = 1",
                dns.port
            ),
        )
        .replace("# allow_plain_ldap = false\n", "");
    let server = ServerProcess::spawn(&config, None, &[]);
    let ldap1 = format!("ldap://ldap1.example.test:{}", first.port);
    let ldap2 = format!("ldap://ldap2.example.test:{}", second.port);
    assert_eq!(current(&server).await, ldap1);
    let client = reqwest::Client::new();
    let (status, body) = send(
        &client,
        reqwest::Method::POST,
        format!("{}/Users", server.base),
        Some(entra_user("found1")),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    first.kill();
    let took = wait_current(&server, &ldap2, Duration::from_secs(10)).await;
    eprintln!("discovered servers: failover to {ldap2} seen {took:?} after the kill");
    let (status, body) = send(
        &client,
        reqwest::Method::POST,
        format!("{}/Users", server.base),
        Some(entra_user("found2")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    first.restart();
    wait_current(&server, &ldap1, Duration::from_secs(20)).await;

    // the first is taken out of DNS: once the answer expires, requests leave it
    drop(dns);
    dns = Dns::start(dns_port, &both[1..]);
    let took = wait_current(&server, &ldap2, Duration::from_secs(20)).await;
    eprintln!("discovered servers: left the server removed from DNS {took:?} after the change");
    let (_, ready) = text(&format!("http://{}/readyz", server.addr)).await;
    assert!(!ready.contains("ldap1"), "{ready}");
    drop(dns);
    let log = server.log_text();
    assert!(log.contains("no longer listed in DNS"), "{log}");
}
