//! Running it as a service: reload on SIGHUP (config, mapping, tokens, TLS certificate) with
//! no request dropped and a bad config refused, and the systemd notify protocol (ready,
//! reloading, stopping, watchdog). Against the real binary and slapd.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Waits until the server's log has `needle` `times` times.
fn wait_for_log(server: &ServerProcess, needle: &str, times: usize) -> String {
    let start = Instant::now();
    loop {
        let log = server.log_text();
        if log.matches(needle).count() >= times {
            return log;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no {needle:?} in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn patch(path: &str, value: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
           "Operations": [{"op": "replace", "path": path, "value": value}]})
}

/// While four clients read and write without pause, a SIGHUP with a changed config (a new
/// token, a remapped attribute, a restart-only key) takes effect for the next requests, and
/// one with an error is refused with the key and the fix while the running config keeps
/// serving; not one request fails.
#[tokio::test(flavor = "multi_thread")]
async fn reload_applies_a_good_config_refuses_a_bad_one_and_drops_no_request() {
    let slapd = Slapd::start();
    let config = test_config(&slapd, &[], "");
    let server = ServerProcess::spawn(&config, None, &[]);
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let created: Value = client
        .post(format!("{base}/Users"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(entra_user("reloaded").to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
        let (client, base, id) = (client.clone(), base.clone(), id.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let req = if (n + worker) % 2 == 0 {
                    client.get(format!("{base}/Users/{id}"))
                } else {
                    client
                        .patch(format!("{base}/Users/{id}"))
                        .header("content-type", "application/scim+json")
                        .body(patch("displayName", &format!("d{worker}-{n}")).to_string())
                };
                let ok = req
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                sent.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // a good config: a second token, title stored in roomNumber, a restart-only change
    let second = "scim2ldap_second-token-added-by-reload";
    let good = config
        .replace("title = \"title\"", "title = \"roomNumber\"")
        .replace("max_connections = 512", "max_connections = 256")
        + &format!(
            "\n[tenants.default.tokens.second]\nsha256 = \"{}\"\n",
            hex::encode(scim2ldap::auth::hash_token(second))
        );
    assert_ne!(good, config);
    let second_status = || async {
        client
            .get(format!("{base}/Users/{id}"))
            .bearer_auth(second)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(second_status().await, StatusCode::UNAUTHORIZED);
    std::fs::write(&server.config_path, &good).unwrap();
    server.signal("HUP");
    let log = wait_for_log(&server, "config reloaded", 1);
    assert!(
        log.contains("server.max_connections"),
        "restart-only key named:\n{log}"
    );
    assert_eq!(second_status().await, StatusCode::OK, "the new token works");
    let resp = client
        .patch(format!("{base}/Users/{id}"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(patch("title", "After Reload").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let entry = slapd.entry(&dn_of("reloaded")).await.unwrap();
    assert_eq!(
        entry.get("roomnumber").map(Vec::as_slice),
        Some(&["After Reload".to_owned()][..]),
        "the new mapping writes title to roomNumber: {entry:?}"
    );

    // a bad config: refused, naming the key and the fix; the running config keeps serving
    std::fs::write(
        &server.config_path,
        good.replace("max_results = 200", "max_results = 0"),
    )
    .unwrap();
    server.signal("HUP");
    let log = wait_for_log(&server, "the new config was refused", 1);
    let line = log
        .lines()
        .find(|l| l.contains("the new config was refused"))
        .unwrap();
    assert!(
        line.contains("server.max_results") && line.contains("fix="),
        "{line}"
    );
    assert_eq!(
        second_status().await,
        StatusCode::OK,
        "still the good config"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("{sent} requests across two reloads, {failed} failed");
    assert!(sent > 50, "the load ran: {sent}");
    assert_eq!(
        failed, 0,
        "no request failed or was dropped across the reloads"
    );
}

/// Makes a throwaway CA and server certificate in `dir`.
fn throwaway_ca(dir: &std::path::Path) {
    let out = std::process::Command::new(repo().join("deploy/throwaway-ca.sh"))
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether a TLS handshake with the server succeeds for a client trusting only `ca`.
async fn handshake_trusting(addr: std::net::SocketAddr, ca: &std::path::Path) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await.is_ok()
}

/// A renewed certificate is served to new connections after a reload, without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn reload_serves_a_renewed_tls_certificate() {
    let slapd = Slapd::start();
    let (old, new, live) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    throwaway_ca(old.path());
    throwaway_ca(new.path());
    let install = |from: &std::path::Path| {
        for f in ["server.pem", "server.key"] {
            std::fs::copy(from.join(f), live.path().join(f)).unwrap();
        }
    };
    install(old.path());
    let cfg = set(
        test_config(&slapd, &[], ""),
        "# tls",
        &format!(
            "{{ cert_file = \"{0}/server.pem\", key_file = \"{0}/server.key\" }}",
            live.path().display()
        ),
    )
    .replace("# tls = {", "tls = {");
    let server = ServerProcess::spawn(&cfg, None, &[]);
    assert!(handshake_trusting(server.addr, &old.path().join("ca.pem")).await);
    assert!(!handshake_trusting(server.addr, &new.path().join("ca.pem")).await);
    install(new.path());
    server.signal("HUP");
    wait_for_log(&server, "config reloaded", 1);
    assert!(handshake_trusting(server.addr, &new.path().join("ca.pem")).await);
    assert!(!handshake_trusting(server.addr, &old.path().join("ca.pem")).await);
}

/// Receives notify messages until one contains `want`; all received, in order.
fn receive_until(socket: &UnixDatagram, want: &str, seen: &mut Vec<String>) {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < Duration::from_secs(15) {
        if let Ok(n) = socket.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let found = msg.contains(want);
            seen.push(msg);
            if found {
                return;
            }
        }
    }
    panic!("no {want:?} from the service; got {seen:?}");
}

/// What systemd sees of a `Type=notify` service: READY=1 once it listens, RELOADING=1 (with
/// the monotonic time) then READY=1 around a reload, WATCHDOG=1 at half the watchdog
/// interval, STOPPING=1 on SIGTERM.
#[tokio::test(flavor = "multi_thread")]
async fn the_service_speaks_the_systemd_notify_protocol() {
    let slapd = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut server = ServerProcess::spawn(
        &test_config(&slapd, &[], ""),
        None,
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut seen = Vec::new();
    receive_until(&socket, "READY=1", &mut seen);
    let pings = seen.len();
    receive_until(&socket, "WATCHDOG=1", &mut seen);
    receive_until(&socket, "WATCHDOG=1", &mut seen);
    assert!(seen.len() >= pings + 2, "{seen:?}");
    server.signal("HUP");
    receive_until(&socket, "RELOADING=1", &mut seen);
    let reloading = seen.last().unwrap().clone();
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    receive_until(&socket, "READY=1", &mut seen);
    server.signal("TERM");
    receive_until(&socket, "STOPPING=1", &mut seen);
    assert!(server.wait_exit(Duration::from_secs(15)).is_some());
}

/// `log.format = "json"`: one JSON object per line, with the request id, tenant, SCIM
/// operation and DN; a reload that sets `log.level = "warn"` silences the request lines.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_request_id_tenant_operation_and_dn_and_follow_the_reloaded_level() {
    let slapd = Slapd::start();
    let config = test_config(&slapd, &[], "").replace("format = \"auto\"", "format = \"json\"");
    let server = ServerProcess::spawn(&config, None, &[]);
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/Users", server.base))
        .bearer_auth(TOKEN)
        .header("x-request-id", "json-log-1")
        .header("content-type", "application/scim+json")
        .body(entra_user("json.logged").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let log = wait_for_log(&server, "json-log-1", 1);
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let line = lines
        .iter()
        .find(|l| l["message"] == "request" && l["span"]["request_id"] == "json-log-1")
        .unwrap_or_else(|| panic!("no request line: {lines:#?}"));
    assert_eq!(line["tenant"], "default");
    assert_eq!(line["op"], "create User");
    assert_eq!(line["dn"], "uid=json.logged,ou=people,dc=example,dc=org");
    assert_eq!(line["status"], 201);
    assert_eq!(line["level"], "INFO");

    std::fs::write(
        &server.config_path,
        config.replace("level = \"info\"", "level = \"warn\""),
    )
    .unwrap();
    server.signal("HUP");
    wait_for_log(&server, "config reloaded", 1);
    // the level is set just after that line is written: a request or two may still be logged
    let quiet = {
        let mut quiet = false;
        for i in 0..20 {
            let id = format!("after-reload-{i}");
            let r = client
                .get(format!("{}/Users?count=1", server.base))
                .bearer_auth(TOKEN)
                .header("x-request-id", &id)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            // the access line is written before the response is sent
            if !server.log_text().contains(&format!("\"{id}\"")) {
                quiet = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        quiet
    };
    assert!(
        quiet,
        "at warn, requests are not logged:\n{}",
        server.log_text()
    );
}

async fn get_text(url: &str) -> (StatusCode, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// `/metrics` after a few requests: requests by route, method and status, LDAP operations by
/// kind, the pool, DN cache lookups, a failed authentication; on its own listener only, never
/// the API's (which anyone reaching the IdP-facing address could read).
/// The metrics' route labels are computed from the path, outside the router: each labelled
/// route must be one the router serves (a method it does not take is 405 or 501 there, never
/// the fallback's 404), and is counted under its own label.
#[tokio::test(flavor = "multi_thread")]
async fn every_route_label_names_a_route_the_router_serves() {
    let slapd = Slapd::start();
    let server = ServerProcess::spawn(&test_config(&slapd, &[], ""), None, &[]);
    let client = reqwest::Client::new();
    for route in scim2ldap::http::middleware::ROUTES {
        let url = format!("http://{}{}", server.addr, route.replace("{id}", "x"));
        let status = client
            .request(reqwest::Method::TRACE, &url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status();
        assert!(
            [StatusCode::METHOD_NOT_ALLOWED, StatusCode::NOT_IMPLEMENTED].contains(&status),
            "{route}: {status}"
        );
    }
    let (_, text) = get_text(&server.metrics_url()).await;
    for route in scim2ldap::http::middleware::ROUTES {
        let counted = format!("scim2ldap_http_requests_total{{route=\"{route}\",method=\"other\"");
        assert!(text.contains(&counted), "missing {counted}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_ldap_operations_the_pool_the_cache_and_refusals() {
    let slapd = Slapd::start();
    let cfg = set(
        test_config(&slapd, &[], ""),
        "header_read_timeout_secs",
        "1",
    );
    let server = ServerProcess::spawn(&cfg, None, &[]);
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{}/Users", server.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(entra_user("metered").to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    for _ in 0..2 {
        let r = client
            .get(format!("{}/Users/{id}", server.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = client
        .get(format!("{}/Users", server.base))
        .bearer_auth("scim2ldap_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (status, api) = get_text(&format!("http://{}/metrics", server.addr)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "not on the API's listener: {api}"
    );
    assert!(!api.contains("tenant"), "{api}");
    let (status, text) = get_text(&server.metrics_url()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(server.metrics_addr.unwrap().ip().is_loopback());
    for expected in [
        "scim2ldap_http_requests_total{route=\"/scim/v2/Users/{id}\",method=\"GET\",status=\"200\",tenant=\"default\"} 2",
        "scim2ldap_http_requests_total{route=\"/scim/v2/Users\",method=\"POST\",status=\"201\",tenant=\"default\"} 1",
        "scim2ldap_http_requests_total{route=\"/scim/v2/Users\",method=\"GET\",status=\"401\",tenant=\"-\"} 1",
        "scim2ldap_ldap_server_up{server=\"ldapi://",
        "scim2ldap_ldap_failovers_total",
        "scim2ldap_auth_failures_total{tenant=\"-\",reason=\"invalid_token\"} 1",
        "scim2ldap_ldap_pool_max_connections 8",
        "scim2ldap_http_request_duration_seconds_count{route=\"/scim/v2/Users/{id}\",method=\"GET\"} 2",
        "scim2ldap_dn_cache_lookups_total{lookup=\"id\",result=\"hit\"}",
        "scim2ldap_ldap_pool_connections{state=\"idle\"}",
    ] {
        assert!(text.contains(expected), "missing {expected}:\n{text}");
    }
    // operations are counted by kind and by the server that answered them
    assert!(
        text.lines().any(|l| l
            .starts_with("scim2ldap_ldap_operations_total{op=\"add\",server=\"ldapi://")
            && l.ends_with(" 1")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l
                .starts_with("scim2ldap_ldap_operations_total{op=\"search\",server=\"ldapi://")),
        "{text}"
    );
    assert!(!text.contains(TOKEN) && !text.contains("scim2ldap_wrong"));

    // the metrics listener has the API's front door: a client that sends no request is
    // cut off at the header timeout, and other paths get SCIM errors
    let (status, body) = get_text(&server.metrics_url().replace("/metrics", "/Users")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.contains("urn:ietf:params:scim:api:messages:2.0:Error"),
        "{body}"
    );
    let mut slow = raw_connection(server.metrics_addr.unwrap(), b"GET /metrics HTTP/1.1\r\n").await;
    let (closed, _) = read_until_closed(&mut slow, std::time::Duration::from_secs(4)).await;
    assert!(
        closed,
        "a half-sent request is cut off at the header timeout"
    );
}

/// `/readyz` follows the directory: 503 saying why while it is down, 200 once it is back;
/// `/healthz` stays 200 throughout. Neither needs a token.
#[tokio::test(flavor = "multi_thread")]
async fn readyz_follows_the_directory_down_and_up() {
    let mut slapd = Slapd::start();
    let server = ServerProcess::spawn(&test_config(&slapd, &[], ""), None, &[]);
    let ready = format!("http://{}/readyz", server.addr);
    let health = format!("http://{}/healthz", server.addr);
    assert_eq!(get_text(&ready).await.0, StatusCode::OK);
    slapd.stop();
    let start = Instant::now();
    let why = loop {
        let (status, body) = get_text(&ready).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(why.contains("directory"), "{why}");
    assert_eq!(get_text(&health).await.0, StatusCode::OK);
    slapd.restart();
    let start = Instant::now();
    while get_text(&ready).await.0 != StatusCode::OK {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never ready again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `server.worker_threads` sizes the runtime that serves requests (1: the least CPU per
/// request on a host shared with the directory); a reload cannot change it, and an absurd
/// value is refused at start naming the key.
#[tokio::test(flavor = "multi_thread")]
async fn worker_threads_size_the_runtime_and_need_a_restart() {
    let slapd = Slapd::start();
    let config = set(test_config(&slapd, &[], ""), "worker_threads", "1");
    let server = ServerProcess::spawn(&config, None, &[]);
    let log = server.log_text();
    assert!(
        log.contains("\"workers\":1") || log.contains("workers=1"),
        "{log}"
    );
    let r = reqwest::Client::new()
        .get(format!("{}/Users?count=1", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // a reload with another value says it waits for a restart
    let changed = std::fs::read_to_string(&server.config_path)
        .unwrap()
        .replace("worker_threads = 1", "worker_threads = 2");
    std::fs::write(&server.config_path, changed).unwrap();
    server.signal("HUP");
    let log = wait_for_log(&server, "config reloaded", 1);
    let warned = log
        .lines()
        .any(|l| l.contains("only after a restart") && l.contains("server.worker_threads"));
    assert!(warned, "{log}");

    let (code, _, err) = check_config(&set(test_config(&slapd, &[], ""), "worker_threads", "1000"));
    assert_ne!(code, Some(0));
    assert!(err.contains("server.worker_threads"), "{err}");
}
