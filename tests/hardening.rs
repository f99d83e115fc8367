//! The front door under hostile input, against a real slapd: inputs that once crashed the
//! process, slow and half-sent connections, a low open-file limit, SIGTERM, forged log
//! lines, oversized values, per-tenant rate limits, SCIM errors from every layer, HTTPS.
//! Process-level behaviour runs the real binary (`ServerProcess`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn assert_scim_error(status: StatusCode, headers: &reqwest::header::HeaderMap, body: &Value) {
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/scim+json"),
        "{status}: {body}"
    );
    assert_eq!(
        body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{body}"
    );
    assert_eq!(body["status"], status.as_u16().to_string(), "{body}");
}

/// Every input of the attack report that overflowed a worker's stack is a 400 now; the test
/// process hosts the bridge, so a stack overflow would abort it.
#[tokio::test(flavor = "multi_thread")]
async fn inputs_that_crashed_the_process_answer_400_and_it_keeps_serving() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let user = bridge.create_user(entra_user("victim")).await;
    let id = user["id"].as_str().unwrap().to_owned();
    let (s, group) = bridge
        .post("/Groups", &json!({"displayName": "Staff"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{group}");
    let gid = group["id"].as_str().unwrap();

    let parens = "(".repeat(1800);
    let ands = vec![r#"userName eq "x""#; 6000].join(" and ");
    let ors = vec!["userName pr"; 10_000].join(" or ");
    let nots = format!("{}userName pr", "not (".repeat(2000));
    let cases: Vec<(Method, String, Option<Value>, &str)> = vec![
        (
            Method::GET,
            format!("/Users?filter={}", enc(&parens)),
            None,
            "invalidFilter",
        ),
        (
            Method::POST,
            "/.search".into(),
            Some(json!({"filter": ands})),
            "invalidFilter",
        ),
        (
            Method::POST,
            "/Users/.search".into(),
            Some(json!({"filter": ors})),
            "invalidFilter",
        ),
        (
            Method::POST,
            "/Groups/.search".into(),
            Some(json!({"filter": nots})),
            "invalidFilter",
        ),
        (
            Method::POST,
            "/.search".into(),
            Some(json!({"filter": parens})),
            "invalidFilter",
        ),
        (
            Method::PATCH,
            format!("/Users/{id}"),
            Some(
                json!({"Operations": [{"op": "remove", "path": format!("emails[{}", "(".repeat(1800))}]}),
            ),
            "invalidPath",
        ),
        (
            Method::PATCH,
            format!("/Groups/{gid}"),
            Some(
                json!({"Operations": [{"op": "remove", "path": format!("members[{}", "(".repeat(1800))}]}),
            ),
            "invalidPath",
        ),
        (
            Method::PATCH,
            format!("/Groups/{gid}"),
            Some(
                json!({"Operations": [{"op": "remove", "path": format!("members[{}]", vec!["value eq \"a\""; 5000].join(" or "))}]}),
            ),
            "invalidPath",
        ),
    ];
    for (method, path, body, scim_type) in cases {
        let (s, h, b) = bridge.call(method.clone(), &path, body.as_ref()).await;
        assert_eq!(
            s,
            StatusCode::BAD_REQUEST,
            "{method} {}: {b}",
            &path[..40.min(path.len())]
        );
        assert_scim_error(s, &h, &b);
        assert_eq!(b["scimType"], scim_type, "{b}");
        assert!(
            b["detail"].as_str().unwrap().contains("limit"),
            "the detail names the limit: {b}"
        );
        assert!(b.to_string().len() < 1000, "the input is not echoed back");
    }
    // the 114 KB filter in a URL (198 KB encoded) is past the URI limit and past hyper's
    // 128 KiB head buffer: hyper's own 414 (errors_from_every_layer_are_scim_errors shows the
    // SCIM 414 for URLs up to that buffer)
    let request = format!(
        "GET /scim/v2/Users?filter={} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\n\r\n",
        enc(&ands)
    );
    let mut conn = raw_connection(bridge.addr(), request.as_bytes()).await;
    let (_, text) = read_until_closed(&mut conn, Duration::from_secs(2)).await;
    assert!(text.starts_with("HTTP/1.1 414"), "{text}");
    let (s, _) = bridge.get(&format!("/Users/{id}")).await;
    assert_eq!(s, StatusCode::OK, "still serving");
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_values_are_400_naming_the_attribute_and_nothing_is_written() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    for (n, limit) in [
        (10_000, "limits.max_value_length"),
        (250, "limits.max_rdn_value_length"),
    ] {
        let (s, h, b) = bridge
            .call(
                Method::POST,
                "/Users",
                Some(&json!({"userName": "u".repeat(n)})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert_scim_error(s, &h, &b);
        assert_eq!(b["scimType"], "invalidValue");
        let detail = b["detail"].as_str().unwrap();
        assert!(
            detail.contains("userName") && detail.contains(limit),
            "{n}: {detail}"
        );
    }
    let (s, b) = bridge
        .post(
            "/Users",
            &json!({"userName": "big", "displayName": "d".repeat(100_000)}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["detail"].as_str().unwrap().contains("'displayName'"),
        "{b}"
    );
    assert!(
        slapd
            .dns(PEOPLE, "(objectClass=inetOrgPerson)")
            .await
            .is_empty(),
        "no entry was made"
    );
    // at the limit it works
    bridge
        .create_user(json!({"userName": "u".repeat(128), "displayName": "d".repeat(2048)}))
        .await;
}

/// Member ids are bounded per request and resolved in batches, not one lookup each (and
/// checked again after the write in batches too).
/// `attributes` / `excludedAttributes` are bounded like filters (names and characters)
/// before they are split: a search body naming 100,000 attributes used to cost every resource
/// of the answer a compare with each.
#[tokio::test(flavor = "multi_thread")]
async fn attribute_lists_are_bounded_like_filters() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    bridge.create_user(json!({"userName": "proj"})).await;
    let names: Vec<String> = (0..100_000).map(|i| format!("a{i}")).collect();
    for key in ["attributes", "excludedAttributes"] {
        let (s, e) = bridge
            .post("/Users/.search", &json!({key: names.clone()}))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{key}: {e}");
        assert!(
            e["detail"]
                .as_str()
                .unwrap()
                .contains("limits.filter_max_length"),
            "{e}"
        );
    }
    let many = vec!["userName"; 101].join(",");
    let (s, e) = bridge.get(&format!("/Users?attributes={many}")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("limits.filter_max_terms"),
        "{e}"
    );
    let (s, _) = bridge.get("/Users?attributes=userName,emails").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn member_ids_are_bounded_and_resolved_in_batches() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let (s, group) = bridge
        .post("/Groups", &json!({"displayName": "Everyone"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{group}");
    let gid = group["id"].as_str().unwrap().to_owned();

    // 25,000 ids (under the 1 MB body limit): refused before any directory work
    let ids: Vec<Value> = (0..25_000)
        .map(|i| json!({"value": format!("id-{i:016}")}))
        .collect();
    let ops0 = bridge.ldap_ops();
    let (s, b) = bridge
        .patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "add", "path": "members", "value": ids}]),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["scimType"], "tooMany", "{b}");
    assert_eq!(bridge.ldap_ops() - ops0, 0, "no LDAP operation for it");

    // 1,000 real users added straight to LDAP, then one PATCH adding them all
    let mut ldap = slapd.admin().await;
    for i in 0..1000 {
        let uid = format!("m{i:04}");
        ldap.add(
            &format!("uid={uid},{PEOPLE}"),
            vec![
                (
                    "objectClass",
                    std::collections::HashSet::from(["inetOrgPerson"]),
                ),
                ("uid", std::collections::HashSet::from([uid.as_str()])),
                ("cn", std::collections::HashSet::from([uid.as_str()])),
                ("sn", std::collections::HashSet::from([uid.as_str()])),
            ],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    }
    let (entries, _) = ldap
        .search(
            PEOPLE,
            ldap3::Scope::OneLevel,
            "(uid=m*)",
            vec!["entryUUID"],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    let ids: Vec<Value> = entries
        .into_iter()
        .map(|e| json!({"value": ldap3::SearchEntry::construct(e).attrs["entryUUID"][0]}))
        .collect();
    assert_eq!(ids.len(), 1000);
    let ops0 = bridge.ldap_ops();
    let (s, b) = bridge
        .patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "add", "path": "members", "value": ids}]),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let ops = bridge.ldap_ops() - ops0;
    println!("a 1,000-member PATCH cost {ops} LDAP operations");
    assert!(
        ops <= 12,
        "1 group read + 4 searches of 250 ids + 1 modify + 4 searches checking the members \
         again after the write, not one per id: {ops}"
    );
    let members = slapd
        .entry(&format!("cn=Everyone,{}", "ou=groups,dc=example,dc=org"))
        .await
        .unwrap()["member"]
        .len();
    assert_eq!(members, 1001, "1,000 members and the placeholder");
}

/// With the example's defaults, one client sending as fast as it can to an idle server (a
/// conformance run, an IdP's replay) is never refused: no token bucket by default, only the
/// fair share of request slots, which a lone tenant has whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_lone_client_at_full_speed_gets_no_429_by_default() {
    let slapd = Slapd::start();
    let bridge = std::sync::Arc::new(Bridge::start(&slapd).await);
    let u = bridge.create_user(json!({"userName": "fast"})).await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let start = Instant::now();
    let mut refused = 0;
    for _ in 0..600 {
        let (s, _) = bridge.get(&path).await;
        refused += usize::from(s == StatusCode::TOO_MANY_REQUESTS);
        assert!(s.is_success() || s == StatusCode::TOO_MANY_REQUESTS, "{s}");
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (bridge, path) = (bridge.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            for _ in 0..150 {
                n += usize::from(bridge.get(&path).await.0 == StatusCode::TOO_MANY_REQUESTS);
            }
            n
        }));
    }
    for t in tasks {
        refused += t.await.unwrap();
    }
    println!("1,200 requests in {:?}", start.elapsed());
    assert_eq!(refused, 0, "a lone client was refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_tenant_has_its_own_rate_limit() {
    let slapd = Slapd::start();
    slapd.add_ou("acme", "dc=example,dc=org").await;
    slapd.add_ou("acme-groups", "dc=example,dc=org").await;
    let acme_token = "scim2ldap_acme-rate-limited-token";
    let cfg = test_config(
        &slapd,
        &[],
        &format!(
            "\n[tenants.acme]\nusers_container = \"ou=acme,dc=example,dc=org\"\ngroups_container = \"ou=acme-groups,dc=example,dc=org\"\nrate_limit = {{ per_second = 1, burst = 2 }}\n[tenants.acme.tokens.okta]\nsha256 = \"{}\"\n",
            hex::encode(scim2ldap::auth::hash_token(acme_token))
        ),
    );
    let bridge = Bridge::start_with(cfg).await;
    for _ in 0..2 {
        let (s, _, b) = bridge
            .call_as(Some(acme_token), Method::GET, "/Users", None)
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (s, h, b) = bridge
        .call_as(Some(acme_token), Method::GET, "/Users", None)
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert_scim_error(s, &h, &b);
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert!(b["detail"].as_str().unwrap().contains("acme"), "{b}");
    // the other tenant is not affected
    for _ in 0..20 {
        let (s, _) = bridge.get("/Users").await;
        assert_eq!(s, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _, _) = bridge
        .call_as(Some(acme_token), Method::GET, "/Users", None)
        .await;
    assert_eq!(s, StatusCode::OK, "a token is free again after a second");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_from_every_layer_are_scim_errors() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let client = reqwest::Client::new();
    let send = |req: reqwest::RequestBuilder| async move {
        let r = req.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null);
        (status, headers, body)
    };
    let auth = format!("Bearer {TOKEN}");
    let cases = [
        (
            client
                .get(format!("{}/Users/%FF", bridge.base))
                .header("authorization", &auth),
            StatusCode::NOT_FOUND,
        ),
        (
            client.get(format!("{}/Users/%FF", bridge.base)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            client
                .get(format!("{}/Nope", bridge.base))
                .header("authorization", &auth),
            StatusCode::NOT_FOUND,
        ),
        (
            client
                .get(format!("{}/Users?x={}", bridge.base, "a".repeat(20_000)))
                .header("authorization", &auth),
            StatusCode::URI_TOO_LONG,
        ),
        (
            client
                .get(format!("{}/Users", bridge.base))
                .header("authorization", &auth)
                .header("x-big", "b".repeat(40_000)),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ),
        (
            client
                .post(format!("{}/Users", bridge.base))
                .header("authorization", &auth)
                .header("content-type", "text/plain")
                .body("x"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            client
                .delete(format!("{}/ServiceProviderConfig", bridge.base))
                .header("authorization", &auth),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (req, expected) in cases {
        let (s, h, b) = send(req).await;
        assert_eq!(s, expected, "{b}");
        assert_scim_error(s, &h, &b);
    }
    // a 60 KB URL: a SCIM 414 saying what to do instead (from 64 KiB on, the http crate's
    // URI limit, hyper answers 414 itself, without a body)
    let request = format!(
        "GET /scim/v2/Users?filter={} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\n\r\n",
        "x".repeat(60 * 1024)
    );
    let mut conn = raw_connection(bridge.addr(), request.as_bytes()).await;
    let (_, text) = read_until_closed(&mut conn, Duration::from_secs(2)).await;
    assert!(text.starts_with("HTTP/1.1 414"), "{text}");
    assert!(
        text.contains("application/scim+json") && text.contains("POST /.search"),
        "{text}"
    );
}

/// A client that sends half a request holds its connection only for the header timeout, a
/// slow body gets a SCIM 408, and a request past the deadline a SCIM 503.
#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_and_slow_requests_are_cut_off_with_scim_errors() {
    let slapd = Slapd::start();
    let cfg = set(
        set(
            test_config(&slapd, &[], ""),
            "header_read_timeout_secs",
            "1",
        ),
        "body_read_timeout_secs",
        "1",
    );
    let bridge = Bridge::start_with(cfg).await;
    // half a header: closed after the header timeout
    let start = Instant::now();
    let mut half = raw_connection(bridge.addr(), b"GET /healthz HTTP/1.1\r\nHost: a\r\n").await;
    let (closed, _) = read_until_closed(&mut half, Duration::from_secs(5)).await;
    assert!(closed, "a half-sent header is not held forever");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // an idle keep-alive connection is closed the same way
    let mut idle = raw_connection(bridge.addr(), b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let start = Instant::now();
    let (closed, text) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(closed && text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(start.elapsed() < Duration::from_secs(3));
    // a body that stops arriving: SCIM 408
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/scim+json\r\nContent-Length: 100\r\n\r\n{{\"userName\""
    );
    let mut slow = raw_connection(bridge.addr(), head.as_bytes()).await;
    let (_, text) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.contains("application/scim+json") && text.contains("body_read_timeout_secs"),
        "{text}"
    );

    // a directory that never answers, and a deadline shorter than the LDAP timeouts
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let cfg = set(
        via_plain_ldap(
            &test_config(&slapd, &[], ""),
            &slapd,
            &format!("ldap://127.0.0.1:{port}"),
        ),
        "request_timeout_secs",
        "1",
    );
    let bridge = Bridge::start_with(cfg).await;
    // the request's budget bounds every LDAP wait, so the service answers before the
    // deadline; nothing reached the directory, so it says to retry
    for (method, body, says) in [
        (Method::GET, None, "retry later"),
        (
            Method::POST,
            Some(json!({"userName": "late"})),
            "retry later",
        ),
    ] {
        let start = Instant::now();
        let (s, h, b) = bridge.call(method, "/Users", body.as_ref()).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
        assert_scim_error(s, &h, &b);
        assert!(h.get("retry-after").is_some());
        assert!(b["detail"].as_str().unwrap().contains(says), "{b}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }
}

/// One tenant's slow requests do not take every request slot (and through them every
/// directory connection) from another: with 4 slots, acme's 24 requests against a slow part of
/// the directory keep running, and the default tenant's requests, arriving meanwhile, are
/// served as soon as a slot frees, well within the queue timeout. A tenant alone still uses
/// every slot.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_with_slow_requests_leaves_other_tenants_their_share() {
    use common::proxy::{FaultProxy, LdapOp};
    let slapd = Slapd::start();
    slapd.add_ou("acme", "dc=example,dc=org").await;
    slapd.add_ou("acme-groups", "dc=example,dc=org").await;
    let proxy = FaultProxy::start(slapd.port).await;
    let acme_token = "scim2ldap_acme-slow-tenant-token";
    let cfg = via_plain_ldap(
        &test_config(
            &slapd,
            &[],
            &format!(
                "\n[tenants.acme]\nusers_container = \"ou=acme,dc=example,dc=org\"\ngroups_container = \"ou=acme-groups,dc=example,dc=org\"\nrate_limit = {{ per_second = 0 }}\n[tenants.acme.tokens.okta]\nsha256 = \"{}\"\n",
                hex::encode(scim2ldap::auth::hash_token(acme_token))
            ),
        ),
        &slapd,
        &proxy.url(),
    );
    let cfg = set(
        set(cfg, "max_concurrent_requests", "4"),
        "queue_timeout_ms",
        "2500",
    );
    let bridge = std::sync::Arc::new(Bridge::start_with(cfg).await);
    let ours = bridge.create_user(json!({"userName": "steady"})).await;
    let ours_id = ours["id"].as_str().unwrap().to_owned();
    // every search under acme's OU takes 1.5 s
    proxy.slow_down(
        LdapOp::Search,
        "ou=acme,dc=example,dc=org",
        Duration::from_millis(1500),
    );
    let mut slow = Vec::new();
    for _ in 0..24 {
        let bridge = bridge.clone();
        slow.push(tokio::spawn(async move {
            bridge
                .call_as(Some(acme_token), Method::GET, "/Users?count=1", None)
                .await
                .0
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut waits = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let (s, b) = bridge.get(&format!("/Users/{ours_id}")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        waits.push(start.elapsed());
    }
    println!("the other tenant waited {waits:?} while acme's slow requests ran");
    assert!(
        waits.iter().all(|w| *w < Duration::from_millis(2000)),
        "{waits:?}"
    );
    let statuses: Vec<StatusCode> = futures_join(slow).await;
    assert!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count() >= 4,
        "acme keeps being served: {statuses:?}"
    );
    proxy.restore();
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<StatusCode>>) -> Vec<StatusCode> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Past `max_concurrent_requests`, a request waits `queue_timeout_ms`, then gets a 503.
#[tokio::test(flavor = "multi_thread")]
async fn requests_past_the_concurrency_cap_wait_briefly_then_get_503() {
    let slapd = Slapd::start();
    let cfg = set(
        set(test_config(&slapd, &[], ""), "max_concurrent_requests", "1"),
        "queue_timeout_ms",
        "300",
    );
    let bridge = Bridge::start_with(cfg).await;
    // a request in flight, its body still coming: it holds the only slot
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/scim+json\r\nContent-Length: 21\r\n\r\n{{\"userName\":"
    );
    let mut holder = raw_connection(bridge.addr(), head.as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let (s, h, b) = bridge.call(Method::GET, "/Users", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert_scim_error(s, &h, &b);
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .contains("max_concurrent_requests"),
        "{b}"
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
    let health = reqwest::get(format!("http://{}/healthz", bridge.addr()))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK, "health is not queued");
    holder.write_all(b"\"holder\"}").await.unwrap();
    let (_, text) = read_until_closed(&mut holder, Duration::from_millis(500)).await;
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    let (s, _) = bridge.get("/Users").await;
    assert_eq!(s, StatusCode::OK, "the slot is free again");
}

/// The real binary with 256 open files: 300 half-sent requests neither exhaust its file
/// descriptors nor keep /healthz down longer than the header timeout; extra connections get
/// a SCIM 503 at once.
#[tokio::test(flavor = "multi_thread")]
async fn three_hundred_partial_connections_under_256_files_do_not_take_the_service_down() {
    let slapd = Slapd::start();
    let cfg = set(
        test_config(&slapd, &[], ""),
        "header_read_timeout_secs",
        "2",
    );
    let mut server = ServerProcess::spawn(&cfg, Some(256), &[]);
    assert!(
        server.log_text().contains("max_connections lowered"),
        "the cap is fitted to the file limit:\n{}",
        server.log_text()
    );
    let mut attackers = Vec::new();
    for _ in 0..300 {
        attackers.push(raw_connection(server.addr, b"GET /healthz HTTP/1.1\r\nHost: a\r\n").await);
    }
    // connections over the cap were told so, in SCIM
    let (_, refused) =
        read_until_closed(attackers.last_mut().unwrap(), Duration::from_secs(2)).await;
    assert!(
        refused.starts_with("HTTP/1.1 503") && refused.contains("server.max_connections"),
        "{refused}"
    );
    let start = Instant::now();
    let health = format!("http://{}/healthz", server.addr);
    let client = reqwest::Client::new();
    let answered = loop {
        if let Ok(r) = client
            .get(&health)
            .timeout(Duration::from_secs(1))
            .send()
            .await
        {
            if r.status() == StatusCode::OK {
                break start.elapsed();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "/healthz never answered:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("/healthz answered {answered:?} after 300 partial connections");
    assert!(server.running());
    assert!(
        !server.log_text().contains("Too many open files"),
        "{}",
        server.log_text()
    );
    drop(attackers);
}

/// SIGTERM: idle and half-sent connections close at once, a request in flight still gets
/// its answer, and the process exits without waiting for the drain to run out.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_idle_connections_at_once_and_lets_in_flight_requests_finish() {
    let slapd = Slapd::start();
    let cfg = set(test_config(&slapd, &[], ""), "shutdown_drain_secs", "5");
    let mut server = ServerProcess::spawn(&cfg, None, &[]);
    let mut partial = raw_connection(server.addr, b"GET /healthz HTTP/1.1\r\nHost: a\r\n").await;
    let mut idle = raw_connection(server.addr, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let body = r#"{"userName":"finisher"}"#;
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..10]
    );
    let mut in_flight = raw_connection(server.addr, head.as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    server.signal("TERM");
    let (closed, _) = read_until_closed(&mut partial, Duration::from_secs(2)).await;
    assert!(
        closed && start.elapsed() < Duration::from_secs(1),
        "partial: {:?}",
        start.elapsed()
    );
    let (closed, _) = read_until_closed(&mut idle, Duration::from_secs(2)).await;
    assert!(
        closed && start.elapsed() < Duration::from_secs(1),
        "idle: {:?}",
        start.elapsed()
    );
    assert!(
        server.running(),
        "the request in flight is still being served"
    );
    in_flight.write_all(&body.as_bytes()[10..]).await.unwrap();
    let (_, text) = read_until_closed(&mut in_flight, Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    let status = server
        .wait_exit(Duration::from_secs(3))
        .expect("exits after the drain");
    assert!(status.success(), "{status:?}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(
        slapd.entry(&dn_of("finisher")).await.is_some(),
        "the write happened"
    );
}

/// A request that never completes cannot hold the process past the drain.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_exits_within_the_drain_whatever_a_client_does() {
    let slapd = Slapd::start();
    let cfg = set(test_config(&slapd, &[], ""), "shutdown_drain_secs", "2");
    let mut server = ServerProcess::spawn(&cfg, None, &[]);
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/scim+json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    let _stuck = raw_connection(server.addr, head.as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(5)).expect("exits");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(
        server.log_text().contains("end of the drain"),
        "{}",
        server.log_text()
    );
}

/// Request values with newlines land inside one quoted field of one log line.
#[tokio::test(flavor = "multi_thread")]
async fn a_forged_newline_in_a_request_value_stays_inside_one_log_line() {
    let slapd = Slapd::start();
    let mut server = ServerProcess::spawn(
        &test_config(&slapd, &[], ""),
        None,
        &[("SCIM2LDAP_LOG", "info,scim2ldap=debug")],
    );
    let forged = "2026-11-25T00:00:00.000000Z  INFO request{request_id=1}: scim2ldap::http::middleware: request method=DELETE path=/scim/v2/Users/1 status=204 tenant=globex";
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/Users", server.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body({
            let mut body = json!({
                "userName": "forger",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                    "manager": {"value": format!("nobody\n{forged}")}
                }
            });
            body[format!("x\n{forged}")] = json!("unmapped");
            body.to_string()
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log_text();
    assert!(log.contains("reference not stored"), "{log}");
    for line in log.lines() {
        assert!(
            line.starts_with("20") && !line.contains("\r"),
            "every line is one event: {line}"
        );
        assert!(!line.starts_with(forged), "forged line: {line}");
    }
    assert_eq!(
        log.matches(r"\n2026-11-25T00:00:00.000000Z").count(),
        2,
        "both values are logged, escaped, inside quotes:\n{log}"
    );
    assert!(server.running());
}

/// HTTPS served by rustls with a certificate from a throwaway CA; plain HTTP on a
/// non-loopback address is refused at start.
#[tokio::test(flavor = "multi_thread")]
async fn https_with_a_test_ca() {
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    let slapd = Slapd::start();
    let tls = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(repo().join("deploy/throwaway-ca.sh"))
        .arg(tls.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = set(
        test_config(&slapd, &[], ""),
        "# tls",
        &format!(
            "{{ cert_file = \"{0}/server.pem\", key_file = \"{0}/server.key\" }}",
            tls.path().display()
        ),
    )
    .replace("# tls = {", "tls = {");
    let bridge = Bridge::start_with(cfg).await;

    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(tls.path().join("ca.pem")).unwrap();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_cfg));
    let tcp = tokio::net::TcpStream::connect(bridge.addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = connector.connect(name, tcp).await.expect("TLS handshake");
    stream
        .write_all(b"GET /scim/v2/ServiceProviderConfig HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("ServiceProviderConfig"), "{text}");
    // plain HTTP to the TLS port gets no HTTP answer
    let mut plain =
        raw_connection(bridge.addr(), b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let (_, text) = read_until_closed(&mut plain, Duration::from_secs(2)).await;
    assert!(!text.contains("200 OK"), "{text}");

    // no TLS on a non-loopback address: refused at start, naming the key and the fix
    let cfg = test_config(&slapd, &[], "").replace("127.0.0.1:8080", "0.0.0.0:8080");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.toml"), cfg).unwrap();
    let raw = scim2ldap::config::load_raw(&dir.path().join("c.toml")).unwrap();
    let err = scim2ldap::app::build(&raw).err().expect("refused");
    assert_eq!(err.key, "server.listen");
    assert!(err.fix.contains("allow_plain_http"), "{err}");
}
