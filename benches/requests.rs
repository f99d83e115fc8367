//! Request cost against a real slapd: the bridge over HTTP versus the same LDAP operations
//! sent directly with ldap3. Prints rates and ratios; asserts nothing about speed.
//!   cargo bench --bench requests
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly
#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ldap3::{Mod, Scope};
use serde_json::json;

const CONCURRENCY: usize = 8;

/// Runs `n` jobs, `CONCURRENCY` at a time; returns the elapsed time.
async fn run<F, Fut>(n: usize, job: F) -> Duration
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let job = Arc::new(job);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let job = job.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                job(i).await;
                i += CONCURRENCY;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

fn report(what: &str, n: usize, bridge: Duration, direct: Duration, ldap_ops: f64) {
    let b = n as f64 / bridge.as_secs_f64();
    let d = n as f64 / direct.as_secs_f64();
    println!(
        "{what:<28} bridge {b:>8.0}/s  direct LDAP {d:>8.0}/s  ratio {:>5.2}  (bridge sends {ldap_ops:.1} LDAP ops per request)",
        d / b
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let slapd = Slapd::start();
    let bridge = Arc::new(Bridge::start(&slapd).await);
    let mut conns = Vec::new();
    for _ in 0..CONCURRENCY {
        conns.push(Arc::new(tokio::sync::Mutex::new(slapd.admin().await)));
    }
    let conns = Arc::new(conns);
    println!("scim2ldap request cost, {n} requests each, {CONCURRENCY} concurrent, slapd (mdb) on loopback");

    // create
    let ops0 = bridge.ldap_ops();
    let b = bridge.clone();
    let t_bridge = run(n, move |i| {
        let b = b.clone();
        async move {
            b.create_user(json!({"userName": format!("bench{i}"), "name": {"givenName": "B", "familyName": format!("N{i}")},
                "emails": [{"type": "work", "value": format!("bench{i}@example.com")}]})).await;
        }
    })
    .await;
    let per = (bridge.ldap_ops() - ops0) as f64 / n as f64;
    let c = conns.clone();
    let t_direct = run(n, move |i| {
        let c = c.clone();
        async move {
            let mut ldap = c[i % CONCURRENCY].lock().await;
            let uid = format!("direct{i}");
            let mail = format!("direct{i}@example.com");
            let sn = format!("N{i}");
            ldap.add(
                &format!("uid={uid},{PEOPLE}"),
                vec![
                    ("objectClass", HashSet::from(["inetOrgPerson"])),
                    ("uid", HashSet::from([uid.as_str()])),
                    ("cn", HashSet::from(["B"])),
                    ("sn", HashSet::from([sn.as_str()])),
                    ("mail", HashSet::from([mail.as_str()])),
                ],
            )
            .await
            .unwrap()
            .success()
            .unwrap();
        }
    })
    .await;
    report("POST /Users vs add", n, t_bridge, t_direct, per);

    // ids for reads
    let (_, page) = bridge.get(&format!("/Users?count={}", 200)).await;
    let ids: Arc<Vec<String>> = Arc::new(
        page["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect(),
    );
    let dns: Arc<Vec<String>> = Arc::new(
        page["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| dn_of(u["userName"].as_str().unwrap()))
            .collect(),
    );

    // cached GET by id
    let ops0 = bridge.ldap_ops();
    let (b, ids2) = (bridge.clone(), ids.clone());
    let t_bridge = run(n, move |i| {
        let (b, ids) = (b.clone(), ids2.clone());
        async move {
            let (s, _) = b.get(&format!("/Users/{}", ids[i % ids.len()])).await;
            assert!(s.is_success());
        }
    })
    .await;
    let per = (bridge.ldap_ops() - ops0) as f64 / n as f64;
    let (c, dns2) = (conns.clone(), dns.clone());
    let t_direct = run(n, move |i| {
        let (c, dns) = (c.clone(), dns2.clone());
        async move {
            let mut ldap = c[i % CONCURRENCY].lock().await;
            ldap.search(
                &dns[i % dns.len()],
                Scope::Base,
                "(objectClass=*)",
                vec![
                    "*",
                    "entryUUID",
                    "createTimestamp",
                    "modifyTimestamp",
                    "pwdAccountLockedTime",
                ],
            )
            .await
            .unwrap()
            .success()
            .unwrap();
        }
    })
    .await;
    report("GET /Users/{id} vs read", n, t_bridge, t_direct, per);

    // filter by userName (Entra's pre-create lookup)
    let ops0 = bridge.ldap_ops();
    let b = bridge.clone();
    let t_bridge = run(n, move |i| {
        let b = b.clone();
        async move {
            let (s, _) = b
                .get(&format!(
                    "/Users?filter=userName%20eq%20%22bench{}%22",
                    i % 200
                ))
                .await;
            assert!(s.is_success());
        }
    })
    .await;
    let per = (bridge.ldap_ops() - ops0) as f64 / n as f64;
    let c = conns.clone();
    let t_direct = run(n, move |i| {
        let c = c.clone();
        async move {
            let mut ldap = c[i % CONCURRENCY].lock().await;
            ldap.search(
                PEOPLE,
                Scope::Subtree,
                &format!("(&(objectClass=inetOrgPerson)(uid=bench{}))", i % 200),
                vec!["*", "entryUUID"],
            )
            .await
            .unwrap()
            .success()
            .unwrap();
        }
    })
    .await;
    report("GET ?filter=userName eq", n, t_bridge, t_direct, per);

    // PATCH one attribute
    let ops0 = bridge.ldap_ops();
    let (b, ids2) = (bridge.clone(), ids.clone());
    let t_bridge = run(n, move |i| {
        let (b, ids) = (b.clone(), ids2.clone());
        async move {
            let (s, _) = b
                .patch(
                    &format!("/Users/{}", ids[i % ids.len()]),
                    json!([{"op": "replace", "path": "title", "value": format!("t{i}")}]),
                )
                .await;
            assert!(s.is_success());
        }
    })
    .await;
    let per = (bridge.ldap_ops() - ops0) as f64 / n as f64;
    let (c, dns2) = (conns.clone(), dns.clone());
    let t_direct = run(n, move |i| {
        let (c, dns) = (c.clone(), dns2.clone());
        async move {
            let mut ldap = c[i % CONCURRENCY].lock().await;
            let t = format!("t{i}");
            ldap.modify(
                &dns[i % dns.len()],
                vec![Mod::Replace("title", HashSet::from([t.as_str()]))],
            )
            .await
            .unwrap()
            .success()
            .unwrap();
        }
    })
    .await;
    report("PATCH title vs modify", n, t_bridge, t_direct, per);

    // membership PATCH: a 10-member group versus a 10,000-member group
    let mut ldap = slapd.admin().await;
    for (name, size) in [("ten", 10usize), ("tenk", 10_000)] {
        let members: Vec<String> = (0..size).map(|i| format!("uid=x{i:05},{PEOPLE}")).collect();
        ldap.add(
            &format!("cn={name},ou=groups,dc=example,dc=org"),
            vec![
                ("objectClass", HashSet::from(["groupOfNames"])),
                ("cn", HashSet::from([name])),
                ("member", members.iter().map(String::as_str).collect()),
            ],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    }
    let mut per_group = Vec::new();
    for name in ["ten", "tenk"] {
        let (_, page) = bridge
            .get(&format!(
                "/Groups?filter=displayName%20eq%20%22{name}%22&excludedAttributes=members"
            ))
            .await;
        let gid = page["Resources"][0]["id"].as_str().unwrap().to_owned();
        let ops0 = bridge.ldap_ops();
        let (b, ids2) = (bridge.clone(), ids.clone());
        let m = n.min(ids.len() * 2);
        let t = run(m, move |i| {
            let (b, ids, gid) = (b.clone(), ids2.clone(), gid.clone());
            async move {
                // each worker adds then removes its own members: no two touch one value
                let id = &ids[i % ids.len()];
                let op = if i < ids.len() {
                    json!([{"op": "add", "path": "members", "value": [{"value": id}]}])
                } else {
                    json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}])
                };
                let (s, _) = b.patch(&format!("/Groups/{gid}"), op).await;
                assert!(s.is_success());
            }
        })
        .await;
        let per = (bridge.ldap_ops() - ops0) as f64 / m as f64;
        per_group.push((name, m, t, per));
    }
    for (name, m, t, per) in &per_group {
        println!(
            "PATCH members, {:<5} group   {:>8.0}/s  {:>7.2} ms/request  ({per:.1} LDAP ops per request)",
            if *name == "ten" { "10" } else { "10000" },
            *m as f64 / t.as_secs_f64(),
            t.as_secs_f64() * 1000.0 / *m as f64 * CONCURRENCY as f64,
        );
    }
    // the same member add/delete sent directly, to separate slapd's own cost of rewriting a
    // large entry from the bridge's
    let mut direct = Vec::new();
    for name in ["ten", "tenk"] {
        let m = n.min(dns.len() * 2);
        let (c, dns2) = (conns.clone(), dns.clone());
        let group = format!("cn={name},ou=groups,dc=example,dc=org");
        let t = run(m, move |i| {
            let (c, dns, group) = (c.clone(), dns2.clone(), group.clone());
            async move {
                let mut ldap = c[i % CONCURRENCY].lock().await;
                let dn = dns[i % dns.len()].as_str();
                let m = if i < dns.len() {
                    Mod::Add("member", HashSet::from([dn]))
                } else {
                    Mod::Delete("member", HashSet::from([dn]))
                };
                ldap.modify(&group, vec![m])
                    .await
                    .unwrap()
                    .success()
                    .unwrap();
            }
        })
        .await;
        direct.push(t.as_secs_f64() / m as f64);
    }
    println!(
        "direct LDAP member modify, 10,000-member / 10-member group: {:.2} (slapd rewrites the whole entry)",
        direct[1] / direct[0]
    );
    let ratio = per_group[1].2.as_secs_f64()
        / per_group[1].1 as f64
        / (per_group[0].2.as_secs_f64() / per_group[0].1 as f64);
    println!("membership PATCH time, 10,000-member group / 10-member group: {ratio:.2}");
}
