//! The directory failing under the bridge, against a real slapd: a refused service account,
//! answers lost or held past the deadline (through a fault-injecting proxy), races between
//! writes, two bridges on one directory. Afterwards, every answer matches what the directory
//! holds, and nothing is half-done.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::proxy::{Fault, FaultProxy, LdapOp};
use common::*;
use ldap3::Mod;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

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
    let ready = |addr: std::net::SocketAddr| async move {
        let r = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(ready(bridge.addr()).await.0, StatusCode::OK);

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
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, why) = ready(bridge.addr()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "not ready: {why}");
    assert!(
        why.contains("refused the bridge's service account"),
        "{why}"
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
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ready(bridge.addr()).await.0, StatusCode::OK, "ready again");
}

/// A bridge whose LDAP traffic passes the fault proxy, with a 3 s request deadline (steps
/// get about 2 s, learning outcomes and undoing the rest).
async fn behind_proxy(slapd: &Slapd) -> (Bridge, FaultProxy) {
    let proxy = FaultProxy::start(slapd.port).await;
    let cfg = set(
        via_plain_ldap(&test_config(slapd, &[], ""), slapd, &proxy.url()),
        "request_timeout_secs",
        "3",
    );
    (Bridge::start_with(cfg).await, proxy)
}

/// The deadline plus a small margin: no answer may come later.
const LATEST: Duration = Duration::from_millis(3800);

async fn group_with(bridge: &Bridge, name: &str, member_ids: &[&str]) -> String {
    let members: Vec<Value> = member_ids.iter().map(|id| json!({"value": id})).collect();
    let (s, g) = bridge
        .post("/Groups", &json!({"displayName": name, "members": members}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    g["id"].as_str().unwrap().to_owned()
}

async fn members_of(slapd: &Slapd, group: &str) -> Vec<String> {
    slapd
        .entry(&format!("cn={group},ou=groups,dc=example,dc=org"))
        .await
        .map(|e| e.get("member").cloned().unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.to_ascii_lowercase())
        .filter(|d| !d.starts_with("cn=scim2ldap-placeholder"))
        .collect()
}

/// A POST whose answer is held past the deadline, or whose connection is cut after the add
/// is sent: the bridge reads the directory, finds the entry and answers 201 (no duplicate).
#[tokio::test(flavor = "multi_thread")]
async fn a_create_whose_answer_is_lost_answers_what_happened() {
    let slapd = Slapd::start();
    let (bridge, proxy) = behind_proxy(&slapd).await;
    for (fault, name) in [
        (Fault::Hold(LdapOp::Add, Duration::from_secs(12)), "held"),
        (Fault::CutAfter(LdapOp::Add), "cut"),
    ] {
        proxy.inject(fault);
        let body = json!({"userName": name, "displayName": format!("User {name}")});
        let start = Instant::now();
        let (s, created) = bridge.post("/Users", &body).await;
        let took = start.elapsed();
        assert_eq!(proxy.pending(), 0, "the fault fired");
        assert_eq!(s, StatusCode::CREATED, "{name}: {created}");
        assert!(took < LATEST, "{name}: {took:?}");
        assert!(slapd.entry(&dn_of(name)).await.is_some());
        // that answer was delivered: the same POST again is a 409 naming the user
        let (s, again) = bridge.post("/Users", &body).await;
        assert_eq!(s, StatusCode::CONFLICT, "{again}");
        assert!(
            again["detail"]
                .as_str()
                .unwrap()
                .contains(created["id"].as_str().unwrap()),
            "{again}"
        );
        assert_eq!(slapd.dns(PEOPLE, &format!("(uid={name})")).await.len(), 1);
    }
    // a different user of the same name is still a conflict
    let (s, b) = bridge
        .post(
            "/Users",
            &json!({"userName": "held", "displayName": "Someone else"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
}

/// A create the bridge applied but could not answer, because the IdP stopped waiting: its
/// retry with the same body (within two minutes) gets 201 with the user or group it made,
/// never a 409 that leaves the IdP without the id; another body of the same name is a 409.
#[tokio::test(flavor = "multi_thread")]
async fn a_create_retried_after_the_client_gave_up_gets_what_it_made() {
    let slapd = Slapd::start();
    let (bridge, proxy) = behind_proxy(&slapd).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    for (path, body, dn) in [
        (
            "/Users",
            json!({"userName": "gaveup", "displayName": "Gave Up"}),
            dn_of("gaveup"),
        ),
        (
            "/Groups",
            json!({"displayName": "Gave Up Team"}),
            "cn=Gave Up Team,ou=groups,dc=example,dc=org".to_owned(),
        ),
    ] {
        proxy.inject(Fault::Hold(LdapOp::Add, Duration::from_millis(1500)));
        let sent = impatient
            .post(format!("{}{path}", bridge.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await;
        assert!(sent.is_err(), "the client gave up before the answer");
        // the write goes on without it
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert!(slapd.entry(&dn).await.is_some(), "{dn} was made");
        let (s, made) = bridge.post(path, &body).await;
        assert_eq!(
            s,
            StatusCode::CREATED,
            "{path}: the retry learns the id: {made}"
        );
        let again = slapd.entry(&dn).await.unwrap();
        assert_eq!(made["id"].as_str(), Some(again["entryuuid"][0].as_str()));
        // the window is for the identical request only
        let mut other = body.clone();
        other["externalId"] = json!("someone-else");
        let (s, e) = bridge.post(path, &other).await;
        assert_eq!(s, StatusCode::CONFLICT, "{path}: {e}");
    }
}

/// PATCH and PUT (with a rename) whose answers are lost: 200 with what the directory holds.
#[tokio::test(flavor = "multi_thread")]
async fn updates_whose_answers_are_lost_answer_what_happened() {
    let slapd = Slapd::start();
    let (bridge, proxy) = behind_proxy(&slapd).await;
    let user = bridge.create_user(entra_user("pat")).await;
    let id = user["id"].as_str().unwrap();
    let path = format!("/Users/{id}");
    group_with(&bridge, "Team", &[id]).await;
    for (fault, title) in [
        (Fault::Hold(LdapOp::Modify, Duration::from_secs(12)), "Held"),
        (Fault::CutAfter(LdapOp::Modify), "Cut"),
    ] {
        proxy.inject(fault);
        let start = Instant::now();
        let (s, b) = bridge
            .patch(
                &path,
                json!([{"op": "replace", "path": "title", "value": title}]),
            )
            .await;
        assert_eq!(proxy.pending(), 0);
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["title"], title);
        assert!(start.elapsed() < LATEST, "{:?}", start.elapsed());
        assert_eq!(
            slapd.entry(&dn_of("pat")).await.unwrap()["title"],
            vec![title]
        );
    }
    // a rename whose answer is lost: the entry and its group follow the new name
    proxy.inject(Fault::CutAfter(LdapOp::ModDn));
    let mut body = entra_user("patricia");
    body["id"] = json!(id);
    let (s, b) = bridge.put(&path, &body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["userName"], "patricia");
    assert!(slapd.entry(&dn_of("pat")).await.is_none());
    assert!(slapd.entry(&dn_of("patricia")).await.is_some());
    assert_eq!(
        members_of(&slapd, "Team").await,
        vec![dn_of("patricia").to_ascii_lowercase()]
    );
}

/// A DELETE whose archive move is cut: 204, and the account is locked, archived and out of
/// its groups. When the directory then goes away entirely, the bridge cannot learn the
/// outcome and says so; the IdP's retry finds the account archived, finishes the sweep and
/// gets 404.
#[tokio::test(flavor = "multi_thread")]
async fn deletes_whose_answers_are_lost_end_whole() {
    let slapd = Slapd::start();
    let (bridge, proxy) = behind_proxy(&slapd).await;
    let a = bridge.create_user(json!({"userName": "ann"})).await;
    let b = bridge.create_user(json!({"userName": "bob"})).await;
    let (aid, bid) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    group_with(&bridge, "Staff", &[aid, bid]).await;

    proxy.inject(Fault::CutAfter(LdapOp::ModDn));
    let start = Instant::now();
    assert_eq!(
        bridge.delete(&format!("/Users/{aid}")).await,
        StatusCode::NO_CONTENT
    );
    assert!(start.elapsed() < LATEST);
    let archived = slapd
        .entry(&format!("uid=ann,{ARCHIVE}"))
        .await
        .expect("archived");
    assert_eq!(archived["pwdaccountlockedtime"], vec!["000001010000Z"]);
    assert!(slapd.entry(&dn_of("ann")).await.is_none());
    assert_eq!(
        members_of(&slapd, "Staff").await,
        vec![dn_of("bob").to_ascii_lowercase()]
    );

    proxy.inject(Fault::Blackout(LdapOp::ModDn));
    let start = Instant::now();
    let (s, _, body) = bridge
        .call(Method::DELETE, &format!("/Users/{bid}"), None)
        .await;
    assert!(start.elapsed() < LATEST, "{:?}", start.elapsed());
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("read the resource before retrying"),
        "{body}"
    );
    proxy.restore();
    // the move had reached the directory; the retry completes the delete
    assert_eq!(
        bridge.delete(&format!("/Users/{bid}")).await,
        StatusCode::NOT_FOUND
    );
    assert!(slapd.entry(&format!("uid=bob,{ARCHIVE}")).await.is_some());
    assert!(
        members_of(&slapd, "Staff").await.is_empty(),
        "nobody left in the group"
    );
}

/// A step that definitely fails mid-plan: the steps before it are undone, and the account
/// is as it was (active, in its group, in place).
#[tokio::test(flavor = "multi_thread")]
async fn a_delete_that_fails_midway_is_undone_whole() {
    let slapd = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let bridge = Bridge::start_with(test_config(
        &slapd,
        &[(
            "# file = \"/var/log/scim2ldap/audit.log\"",
            &format!("file = \"{}\"", audit.display()),
        )],
        "",
    ))
    .await;
    let u = bridge.create_user(json!({"userName": "cara"})).await;
    let id = u["id"].as_str().unwrap();
    group_with(&bridge, "Crew", &[id]).await;
    // the archive container disappears: the move fails after the lock and the group exit
    let mut ldap = slapd.admin().await;
    ldap.delete(ARCHIVE).await.unwrap().success().unwrap();
    let (s, _, b) = bridge
        .call(Method::DELETE, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{b}");
    assert!(
        b["detail"].as_str().unwrap().contains("left as it was"),
        "{b}"
    );
    let entry = slapd.entry(&dn_of("cara")).await.expect("still in place");
    assert!(
        !entry.contains_key("pwdaccountlockedtime"),
        "unlocked again: {entry:?}"
    );
    assert_eq!(
        members_of(&slapd, "Crew").await,
        vec![dn_of("cara").to_ascii_lowercase()]
    );
    let (s, got) = bridge.get(&format!("/Users/{id}")).await;
    assert_eq!((s, got["active"].clone()), (StatusCode::OK, json!(true)));
    // the audit record says it was undone, with nothing left applied
    let text = std::fs::read_to_string(&audit).unwrap();
    let record: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["operation"] == "delete")
        .expect("an audit record for the delete");
    assert_eq!(record["outcome"], "undone", "{record}");
    assert_eq!(record["status"], 500);
    assert_eq!(record["changes"], json!([]), "{record}");
}

/// Group writes whose answers are lost: the membership change and the delete are what the
/// directory shows.
#[tokio::test(flavor = "multi_thread")]
async fn group_writes_whose_answers_are_lost_answer_what_happened() {
    let slapd = Slapd::start();
    let (bridge, proxy) = behind_proxy(&slapd).await;
    let u = bridge.create_user(json!({"userName": "dan"})).await;
    let uid = u["id"].as_str().unwrap();
    let gid = group_with(&bridge, "Ops", &[]).await;
    let parent = group_with(&bridge, "All", &[&gid]).await;
    proxy.inject(Fault::Hold(LdapOp::Modify, Duration::from_secs(12)));
    let (s, b) = bridge
        .patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(
        members_of(&slapd, "Ops").await,
        vec![dn_of("dan").to_ascii_lowercase()]
    );
    proxy.inject(Fault::CutAfter(LdapOp::Delete));
    let start = Instant::now();
    assert_eq!(
        bridge.delete(&format!("/Groups/{gid}")).await,
        StatusCode::NO_CONTENT
    );
    assert!(start.elapsed() < LATEST);
    assert!(slapd
        .entry("cn=Ops,ou=groups,dc=example,dc=org")
        .await
        .is_none());
    assert!(
        members_of(&slapd, "All").await.is_empty(),
        "the parent no longer lists it"
    );
    let (s, _) = bridge.get(&format!("/Groups/{parent}")).await;
    assert_eq!(s, StatusCode::OK);
}

/// Sends the same creates through two bridge processes at once; returns, per name, the two
/// statuses.
async fn create_through_both(
    a: &ServerProcess,
    b: &ServerProcess,
    path: &str,
    bodies: Vec<(Value, Value)>,
) -> Vec<(StatusCode, StatusCode)> {
    let client = reqwest::Client::new();
    let send = |base: String, body: Value| {
        let client = client.clone();
        async move {
            client
                .post(format!("{base}{path}"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/scim+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let mut out = Vec::new();
    for (ba, bb) in bodies {
        let (sa, sb) = tokio::join!(send(a.base.clone(), ba), send(b.base.clone(), bb));
        out.push((sa, sb));
    }
    out
}

/// Two bridges on one directory, each asked to create the same userNames (and group names)
/// at the same moment: one account each, the other request a 409 (or, when both asked for
/// exactly the same user, both answer with that one user).
#[tokio::test(flavor = "multi_thread")]
async fn two_bridges_creating_the_same_names_make_one_entry_each() {
    let slapd = Slapd::start();
    let cfg = test_config(&slapd, &[], "");
    let (a, b) = (
        ServerProcess::spawn(&cfg, None, &[]),
        ServerProcess::spawn(&cfg, None, &[]),
    );
    let names: Vec<String> = (0..20).map(|i| format!("twin{i}")).collect();
    let bodies = names
        .iter()
        .map(|n| {
            (
                json!({"userName": n, "displayName": "via A"}),
                json!({"userName": n, "displayName": "via B"}),
            )
        })
        .collect();
    for (i, (sa, sb)) in create_through_both(&a, &b, "/Users", bodies)
        .await
        .into_iter()
        .enumerate()
    {
        let mut got = [sa, sb];
        got.sort();
        assert_eq!(
            got,
            [StatusCode::CREATED, StatusCode::CONFLICT],
            "{}",
            names[i]
        );
    }
    for n in &names {
        assert_eq!(
            slapd.dns(PEOPLE, &format!("(uid={n})")).await.len(),
            1,
            "{n}"
        );
    }
    // the very same user through both: one entry, and the other answer is a 409 (neither
    // bridge lost an answer, so neither create is a retry)
    let same = json!({"userName": "same", "displayName": "Same"});
    let r = create_through_both(&a, &b, "/Users", vec![(same.clone(), same)]).await;
    let mut got = [r[0].0, r[0].1];
    got.sort();
    assert_eq!(got, [StatusCode::CREATED, StatusCode::CONFLICT]);
    assert_eq!(slapd.dns(PEOPLE, "(uid=same)").await.len(), 1);
    // groups
    let bodies = (0..10)
        .map(|i| {
            (
                json!({"displayName": format!("team{i}"), "externalId": "a"}),
                json!({"displayName": format!("team{i}"), "externalId": "b"}),
            )
        })
        .collect();
    for (sa, sb) in create_through_both(&a, &b, "/Groups", bodies).await {
        let mut got = [sa, sb];
        got.sort();
        assert_eq!(got, [StatusCode::CREATED, StatusCode::CONFLICT]);
    }
    assert_eq!(
        slapd
            .dns("ou=groups,dc=example,dc=org", "(cn=team*)")
            .await
            .len(),
        10
    );
}

/// A DN reused by a new entry, through another bridge: this bridge shows the new entry's id
/// at once (members and managers), never the old one from memory.
#[tokio::test(flavor = "multi_thread")]
async fn a_dn_reused_through_another_bridge_shows_the_new_id() {
    let slapd = Slapd::start();
    let (a, b) = (Bridge::start(&slapd).await, Bridge::start(&slapd).await);
    let old = a.create_user(json!({"userName": "reused"})).await;
    let old_id = old["id"].as_str().unwrap().to_owned();
    let gid = group_with(&a, "Reusers", &[&old_id]).await;
    let report = a
        .create_user(json!({
            "userName": "report",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": old_id}}
        }))
        .await;
    let rid = report["id"].as_str().unwrap().to_owned();
    // bridge A has seen the old user's DN as a member and as a manager
    let (_, g) = a.get(&format!("/Groups/{gid}")).await;
    assert_eq!(g["members"][0]["value"], old_id.as_str());
    // through bridge B: the user is deleted, a new one takes the name (and so the DN)
    assert_eq!(
        b.delete(&format!("/Users/{old_id}")).await,
        StatusCode::NO_CONTENT
    );
    let new = b.create_user(json!({"userName": "reused"})).await;
    let new_id = new["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, old_id);
    let (s, _) = b
        .patch(
            &format!("/Groups/{gid}"),
            json!([{"op": "add", "path": "members", "value": [{"value": new_id}]}]),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    slapd
        .modify(
            &dn_of("report"),
            vec![Mod::Replace(
                "manager",
                HashSet::from([dn_of("reused").as_str()]),
            )],
        )
        .await;
    // bridge A shows the new id, not the one it saw before
    let (_, g) = a.get(&format!("/Groups/{gid}")).await;
    assert_eq!(g["members"].as_array().unwrap().len(), 1, "{g}");
    assert_eq!(g["members"][0]["value"], new_id.as_str(), "{g}");
    let (_, r) = a.get(&format!("/Users/{rid}")).await;
    assert_eq!(
        r["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]["value"],
        new_id.as_str()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_page_whose_request_was_dropped_ends_its_walk_instead_of_ending_it_short() {
    let slapd = Slapd::start();
    let (bridge, proxy) = behind_proxy(&slapd).await;
    for n in ["wa", "wb", "wc", "wd"] {
        bridge.create_user(entra_user(n)).await;
    }
    let (s, first) = bridge.get("/Users?count=1&cursor=").await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let next = format!(
        "/Users?count=1&cursor={}",
        urlencode(first["nextCursor"].as_str().unwrap())
    );
    // the directory holds its answer to page 2, and the client hangs up meanwhile: the read
    // is dropped while the walk's paged search is under way
    proxy.inject(Fault::Hold(LdapOp::Search, Duration::from_secs(1)));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let gone = impatient
        .get(format!("{}{next}", bridge.base))
        .bearer_auth(TOKEN)
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up first");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();
    // where the directory's paging stands is unknown: the walk is over and says so, rather
    // than answer an empty last page as if every user had been seen
    let (s, again) = bridge.get(&next).await;
    assert_eq!(
        (s, again["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("expiredCursor")),
        "{again}"
    );
}
