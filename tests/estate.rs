//! A directory estate, not a server: the bridge in front of a multi-provider OpenLDAP pair
//! (syncprov and syncrepl both ways), found by URL list or in DNS. The preferred server is
//! killed with SIGKILL under load and comes back: requests move to the other within seconds,
//! no acknowledged write is lost, no id the bridge created answers 404, and requests go back
//! to the preferred server once it has answered long enough. Two bridges creating the same
//! names at once make one account each: both write to the same server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::load::*;
use common::proxy::FaultProxy;
use common::*;
use reqwest::StatusCode;
use serde_json::Value;

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

    let load = Load::start(&server.base, 4, entra_user);
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.kill();
    let moved_after = wait_current(&server, &second.ldapi_url(), Duration::from_secs(6)).await;
    // the load goes on against the second
    tokio::time::sleep(Duration::from_secs(4)).await;
    first.restart();
    let back_after = wait_current(&server, &first.ldapi_url(), Duration::from_secs(30)).await;
    // a few more seconds of load on the preferred server, with the second's writes in it
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (answers, acked) = load.stop().await;
    eprintln!(
        "estate: {}; failover seen by /readyz {moved_after:?} after the kill; fail-back {back_after:?} after the restart",
        summary(&answers, &acked)
    );
    held_up(&answers, &acked, 20);
    assert!(
        moved_after <= Duration::from_secs(4),
        "failover took {moved_after:?}"
    );
    assert!(
        back_after >= Duration::from_secs(4),
        "fail-back came before failback_after_secs: {back_after:?}"
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
    let names: Vec<String> = (0..20).map(|i| format!("twin{i}")).collect();
    create_through_both_at_once([&one, &other], &names, entra_user).await;
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

/// `check-config` binds to every listed server, not only the first: a failover must not be
/// the first time a wrong address is found.
#[tokio::test(flavor = "multi_thread")]
async fn check_config_checks_every_server_and_names_the_one_that_fails() {
    let (first, second) = Slapd::start_pair();
    let check = |config: String| {
        let (code, out, err) = check_config(&config);
        (code, out + &err)
    };
    let config = pair_config(&first, &second);
    let (code, text) = check(config.clone());
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&first.ldapi_url()) && text.contains(&second.ldapi_url()),
        "{text}"
    );
    second.stop();
    let (code, text) = check(config);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("ldap.urls[1]"), "{text}");
    assert!(!text.contains("ldap.urls[0]"), "{text}");
}

/// Behind a load balancer a cursor may reach another replica of the bridge. With a cursor
/// key they share, that replica recognises it and answers `expiredCursor` (start again: the
/// walk lives on the first); with keys of their own it could only say `invalidCursor`.
#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_from_another_replica_sharing_the_key_is_expired_not_invalid() {
    let slapd = Slapd::start();
    let mut admin = slapd.admin().await;
    for i in 0..5 {
        add_person(&mut admin, &format!("walker{i}"), "Walker").await;
    }
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key.path(), [42u8; 32]).unwrap();
    let shared = test_config(&slapd, &[], "").replace(
        "# cursor_key_file = \"/etc/scim2ldap/cursor.key\"",
        &format!("cursor_key_file = \"{}\"", key.path().display()),
    );
    let one = ServerProcess::spawn(&shared, None, &[]);
    let other = ServerProcess::spawn(&shared, None, &[]);
    let alone = ServerProcess::spawn(&test_config(&slapd, &[], ""), None, &[]);
    let client = reqwest::Client::new();
    let (status, page) = send(
        &client,
        reqwest::Method::GET,
        format!("{}/Users?count=2&cursor=", one.base),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let next = urlencode(page["nextCursor"].as_str().unwrap());
    let (status, body) = send(
        &client,
        reqwest::Method::GET,
        format!("{}/Users?count=2&cursor={next}", other.base),
        None,
    )
    .await;
    assert_eq!(
        (status, body["scimType"].as_str()),
        (400, Some("expiredCursor")),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("replica"),
        "{body}"
    );
    let (status, body) = send(
        &client,
        reqwest::Method::GET,
        format!("{}/Users?count=2&cursor={next}", alone.base),
        None,
    )
    .await;
    assert_eq!(
        (status, body["scimType"].as_str()),
        (400, Some("invalidCursor")),
        "{body}"
    );
    // the replica that began the walk goes on with it
    let (status, page) = send(
        &client,
        reqwest::Method::GET,
        format!("{}/Users?count=2&cursor={next}", one.base),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
}

/// A server that accepts connections and never answers (a hung host, a half-dead VM) is not
/// refused, so only time tells: the health check (2 s limit) or the first request's connection
/// attempt marks it down, and requests go to the next server within seconds.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_accepts_and_never_answers_is_left_within_seconds() {
    let slapd = Slapd::start();
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_url = format!("ldap://127.0.0.1:{}", hung.local_addr().unwrap().port());
    // accepts, holds every connection open, says nothing
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            held.push(socket);
        }
    });
    let config = via_plain_ldap(&test_config(&slapd, &[], ""), &slapd, "ldap://unused").replace(
        "url = \"ldap://unused\"",
        &format!(
            "urls = [\"{hung_url}\", \"{}\"]\nhealth_interval_secs = 1",
            slapd.url()
        ),
    );
    let started = Instant::now();
    let server = ServerProcess::spawn(&config, None, &[]);
    let client = reqwest::Client::new();
    let (status, body) = send(
        &client,
        reqwest::Method::GET,
        format!("{}/Users?count=1", server.base),
        None,
    )
    .await;
    let took = started.elapsed();
    eprintln!("hung first server: first list answered {status} {took:?} after the start");
    assert_eq!(status, 200, "{body}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(current(&server).await, slapd.url());
    let (_, ready) = text(&format!("http://{}/readyz", server.addr)).await;
    assert!(ready.contains(&format!("down: {hung_url}")), "{ready}");
}

/// A read-only replica listed first (or one that became read-only) takes the reads, and
/// refuses the first write ("shadow context"): that write goes to the next server within the
/// same request, so the IdP sees no error, and requests follow it there. The replica answers
/// health checks, so it is preferred again after failback_after_secs, and the next write
/// moves on the same way.
#[tokio::test(flavor = "multi_thread")]
async fn writes_a_read_only_replica_refuses_go_to_the_next_server_in_the_same_request() {
    let (provider, replica) = Slapd::start_provider_and_replica();
    let config = pair_config(&replica, &provider);
    let server = ServerProcess::spawn(&config, None, &[]);
    assert_eq!(current(&server).await, replica.ldapi_url());
    let client = reqwest::Client::new();
    let (status, body) = send(
        &client,
        reqwest::Method::POST,
        format!("{}/Users", server.base),
        Some(entra_user("through1")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(current(&server).await, provider.ldapi_url());
    assert!(provider.entry(&dn_of("through1")).await.is_some());
    // the replica answers its health checks: preferred again after failback_after_secs
    wait_current(&server, &replica.ldapi_url(), Duration::from_secs(20)).await;
    let (status, body) = send(
        &client,
        reqwest::Method::POST,
        format!("{}/Users", server.base),
        Some(entra_user("through2")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(provider.entry(&dn_of("through2")).await.is_some());
    // and the replica receives what the provider took
    let mut replicated = false;
    for _ in 0..50 {
        if replica.entry(&dn_of("through2")).await.is_some() {
            replicated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(replicated, "the replica never received the write");
}
