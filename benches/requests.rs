//! What a request costs against a real slapd: the bridge (its own process, as deployed)
//! over HTTP versus the same LDAP operations sent directly with ldap3. Prints rates,
//! latencies, LDAP operations per request, ratios, the bridge's memory, and the list,
//! membership and cursor figures; asserts nothing about speed.
//!   cargo bench --bench requests
//!   BENCH_N=5000 BENCH_WALK=100000 cargo bench --bench requests
//!   BENCH_WORKERS=1 cargo bench --bench requests     (server.worker_threads)
//!   BENCH_N=200 BENCH_CALLGRIND=200 cargo bench --bench requests   (instructions/request)
//!   BENCH_CALLGRIND_OUT=/tmp/cg ...   (keep the dumps for callgrind_annotate)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly
#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ldap3::{Mod, Scope};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const CONCURRENCY: usize = 8;
const GROUPS: &str = "ou=groups,dc=example,dc=org";
const WALK_OU: &str = "ou=walk,dc=example,dc=org";
const WALK_TOKEN: &str = "scim2ldap_bench-walk-tenant-token";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The bridge as its own process, reached over HTTP like an IdP reaches it.
struct Proc {
    server: ServerProcess,
    client: reqwest::Client,
}

impl Proc {
    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.server.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(serde_json::to_vec(b).unwrap());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(TOKEN, Method::GET, path, None).await
    }

    async fn patch(&self, path: &str, ops: Value) -> (StatusCode, Value) {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        self.call(TOKEN, Method::PATCH, path, Some(&body)).await
    }

    /// LDAP operations the bridge has sent, from its /metrics.
    async fn ldap_ops(&self) -> u64 {
        let text = self
            .client
            .get(self.server.metrics_url())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with("scim2ldap_ldap_operations_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// (VmRSS, VmHWM) of the bridge process in MiB.
    fn memory(&self) -> (f64, f64) {
        let (rss, peak, _) = self.memory_parts();
        (rss, peak)
    }

    /// (VmRSS, VmHWM, RssAnon) in MiB: most of an idle bridge's RSS is its binary's pages
    /// (file-backed, shared with the page cache), which move with code layout; RssAnon is
    /// the memory it allocated.
    fn memory_parts(&self) -> (f64, f64, f64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.server.pid())).unwrap();
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (
            kib("VmRSS:") / 1024.0,
            kib("VmHWM:") / 1024.0,
            kib("RssAnon:") / 1024.0,
        )
    }
}

/// The bridge's and slapd's pids, whose CPU time each run measures.
static PIDS: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();

/// CPU time (user + system, every thread) of process `pid` so far, in µs, from
/// `/proc/PID/stat` (clock ticks of `getconf CLK_TCK`).
fn cpu_us(pid: u32) -> f64 {
    static TICK_US: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let tick_us = *TICK_US.get_or_init(|| {
        let out = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output();
        let hz = out
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(100.0);
        1e6 / hz
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // the fields after the command name, which is in parentheses and may hold spaces
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the name
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 * tick_us
}

/// CPU µs the bridge and slapd spent over a run.
#[derive(Clone, Copy, Default)]
struct Cpu {
    bridge: f64,
    slapd: f64,
}

fn cpu_now() -> Cpu {
    match PIDS.get() {
        Some((b, s)) => Cpu {
            bridge: cpu_us(*b),
            slapd: cpu_us(*s),
        },
        None => Cpu::default(),
    }
}

/// Runs `n` jobs, `CONCURRENCY` at a time; the elapsed time, each job's latency, and the CPU
/// the bridge and slapd spent.
async fn run<F, Fut>(n: usize, job: F) -> (Duration, Vec<Duration>, Cpu)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    run_at(n, None, job).await
}

/// `run`, starting job `i` no sooner than `i / rate` seconds in when a rate is given: the
/// direct client at the bridge's pace, so that slapd's CPU per operation is compared at the
/// same load (a busier slapd spends less per operation on wake-ups).
/// What the bridge asks slapd for on a GET by id with the bench's config (the example
/// mapping), in its order: taken from its search request on the wire (`strace -e sendto`).
/// Update it with the example mapping.
const BRIDGE_READ_ATTRS: &[&str] = &[
    "homePostalAddress",
    "c",
    "physicalDeliveryOfficeName",
    "l",
    "postalCode",
    "st",
    "street",
    "displayName",
    "mail",
    "scimExternalId",
    "scimLocale",
    "sn",
    "cn",
    "givenName",
    "scimNickName",
    "facsimileTelephoneNumber",
    "homePhone",
    "mobile",
    "pager",
    "telephoneNumber",
    "preferredLanguage",
    "labeledURI",
    "businessCategory",
    "scimTimezone",
    "title",
    "departmentNumber",
    "ou",
    "employeeNumber",
    "manager",
    "o",
    "uid",
    "employeeType",
    "pwdAccountLockedTime",
    "entryCSN",
    "createTimestamp",
    "modifyTimestamp",
    "memberOf",
    "objectClass",
    "entryUUID",
];

async fn run_at<F, Fut>(n: usize, rate: Option<f64>, job: F) -> (Duration, Vec<Duration>, Cpu)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let job = Arc::new(job);
    let cpu0 = cpu_now();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let job = job.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = w;
            while i < n {
                if let Some(rate) = rate {
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let t = Instant::now();
                job(i).await;
                lat.push(t.elapsed());
                i += CONCURRENCY;
            }
            lat
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let took = start.elapsed();
    let cpu1 = cpu_now();
    let cpu = Cpu {
        bridge: cpu1.bridge - cpu0.bridge,
        slapd: cpu1.slapd - cpu0.slapd,
    };
    (took, all, cpu)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

struct Side {
    rate: f64,
    p50: f64,
    p99: f64,
    ops: f64,
    /// CPU µs per request of the bridge and of slapd.
    bridge_cpu: f64,
    slapd_cpu: f64,
}

fn side(n: usize, (took, lat, cpu): (Duration, Vec<Duration>, Cpu), ops: f64) -> Side {
    Side {
        rate: n as f64 / took.as_secs_f64(),
        p50: pct(&lat, 0.50),
        p99: pct(&lat, 0.99),
        ops,
        bridge_cpu: cpu.bridge / n as f64,
        slapd_cpu: cpu.slapd / n as f64,
    }
}

fn row(what: &str, b: &Side, d: &Side) {
    println!(
        "| {what} | {:.0} | {:.2} | {:.2} | {:.1} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} |",
        b.rate,
        b.p50,
        b.p99,
        b.ops,
        b.bridge_cpu,
        b.slapd_cpu,
        d.rate,
        d.p50,
        d.p99,
        d.slapd_cpu / d.ops.max(1.0),
        b.rate / d.rate,
        b.bridge_cpu / b.slapd_cpu.max(1.0),
    );
}

/// Runs a second bridge under callgrind on the same config and prints the instructions it
/// executes per request of each kind, `m` requests one after another (counters zeroed before,
/// dumped after, with callgrind_control).
async fn instructions_per_request(config: &str, ids: &[String], m: usize) {
    // BENCH_CALLGRIND_OUT=dir keeps the dumps (one per request type) for callgrind_annotate
    let out = tempfile::tempdir().unwrap();
    let dir = std::env::var("BENCH_CALLGRIND_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| out.path().to_owned());
    std::fs::create_dir_all(&dir).unwrap();
    let wrapper = format!(
        "valgrind --tool=callgrind --callgrind-out-file={}/cg.out",
        dir.display()
    );
    let server = ServerProcess::spawn(config, None, &[("TEST_EXEC_WRAPPER", &wrapper)]);
    let b = Proc {
        server,
        client: reqwest::Client::new(),
    };
    let pid = b.server.pid().to_string();
    let control = |flag: &str| {
        let ok = std::process::Command::new("callgrind_control")
            .args([flag, pid.as_str()])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            ok,
            "callgrind_control {flag} {pid} (Debian package valgrind)"
        );
    };
    let newest_total = || -> f64 {
        let mut dumps: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        dumps.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        let text = std::fs::read_to_string(dumps.last().unwrap()).unwrap();
        text.lines()
            .find_map(|l| {
                l.strip_prefix("totals:")
                    .or_else(|| l.strip_prefix("summary:"))
            })
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0)
    };
    println!("instructions per request under callgrind, {m} requests each, one at a time:\n");
    println!("| request | instructions/request |");
    println!("|---|---|");
    let kinds: [(&str, usize); 6] = [
        ("GET /healthz (HTTP alone)", 0),
        ("GET /Users/{id}", 1),
        ("GET ?filter=userName eq", 2),
        ("PATCH title", 3),
        ("POST /Users", 4),
        ("DELETE (archive)", 5),
    ];
    // the users each round of POSTs made, which that round of DELETEs removes
    let mut created: [Vec<String>; 2] = Default::default();
    for (what, kind) in kinds {
        // first every id once (the DN cache is warm in the timed runs too) and a few of the
        // others, so that lazily made state is not counted
        for round in [0usize, 1] {
            let n = match (round, kind) {
                (0, 1..=3) => ids.len(),
                (0, _) => 5,
                _ => m,
            };
            if round == 1 {
                control("-z");
            }
            for i in 0..n {
                let id = &ids[i % ids.len()];
                let (s, v) = match kind {
                    0 => {
                        let url = format!("http://{}/healthz", b.server.addr);
                        let s = b.client.get(url).send().await.unwrap().status();
                        (s, Value::Null)
                    }
                    1 => b.get(&format!("/Users/{id}")).await,
                    2 => {
                        b.get(&format!("/Users?filter=userName%20eq%20%22bench{}%22", i % 200))
                            .await
                    }
                    3 => {
                        b.patch(
                            &format!("/Users/{id}"),
                            json!([{"op": "replace", "path": "title", "value": format!("cg {round} {i}")}]),
                        )
                        .await
                    }
                    4 => {
                        let body = json!({"userName": format!("cg{round}-{i}"), "name": {"givenName": "C", "familyName": "G"}});
                        b.call(TOKEN, Method::POST, "/Users", Some(&body)).await
                    }
                    _ => {
                        let url = format!("/Users/{}", created[round][i]);
                        b.call(TOKEN, Method::DELETE, &url, None).await
                    }
                };
                assert!(s.is_success(), "{what}: {s}");
                if kind == 4 {
                    created[round].push(v["id"].as_str().unwrap().to_owned());
                }
            }
        }
        control("-d");
        println!("| {what} | {:.0} |", newest_total() / m as f64);
    }
}

type Conns = Arc<Vec<tokio::sync::Mutex<ldap3::Ldap>>>;

async fn add_people(conns: &Conns, base: &str, prefix: &str, n: usize) {
    let c = conns.clone();
    let (base, prefix) = (base.to_owned(), prefix.to_owned());
    run(n, move |i| {
        let (c, base, prefix) = (c.clone(), base.clone(), prefix.clone());
        async move {
            let mut ldap = c[i % CONCURRENCY].lock().await;
            let uid = format!("{prefix}{i:06}");
            let mail = format!("{uid}@example.com");
            ldap.add(
                &format!("uid={uid},{base}"),
                vec![
                    ("objectClass", HashSet::from(["inetOrgPerson"])),
                    ("uid", HashSet::from([uid.as_str()])),
                    ("cn", HashSet::from([uid.as_str()])),
                    ("sn", HashSet::from(["Bench"])),
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
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n = env_usize("BENCH_N", 2000);
    let walk_n = env_usize("BENCH_WALK", 100_000);
    let index_walk_n = env_usize("BENCH_INDEX_WALK", 10_000).min(walk_n);
    let slapd = Slapd::start();
    slapd.add_ou("walk", "dc=example,dc=org").await;
    slapd.add_ou("walk-groups", "dc=example,dc=org").await;
    let extra = format!(
        "\n[tenants.walk]\nusers_container = \"{WALK_OU}\"\ngroups_container = \"ou=walk-groups,dc=example,dc=org\"\n[tenants.walk.tokens.bench]\nsha256 = \"{}\"\n[tenants.walk.rate_limit]\nper_second = 0\n",
        hex::encode(scim2ldap::auth::hash_token(WALK_TOKEN))
    );
    let config = test_config(&slapd, &[], &extra);
    // BENCH_WORKERS=N: server.worker_threads (the example's 0: one per CPU)
    let workers = std::env::var("BENCH_WORKERS").unwrap_or_else(|_| "0".into());
    let config = set(config, "worker_threads", &workers);
    // the DELETE row removes BENCH_N users: the safety valve would hold it after 100
    let config = set(config, "max_removals", "0");
    let bridge = Arc::new(Proc {
        server: ServerProcess::spawn(&config, None, &[]),
        client: reqwest::Client::new(),
    });
    let mut conns = Vec::new();
    for _ in 0..CONCURRENCY {
        conns.push(tokio::sync::Mutex::new(slapd.admin().await));
    }
    let conns: Conns = Arc::new(conns);
    let _ = PIDS.set((bridge.server.pid(), slapd.pid()));
    let (idle_rss, _, idle_anon) = bridge.memory_parts();
    println!(
        "scim2ldap request cost: {n} requests each, {CONCURRENCY} concurrent, slapd (mdb) on loopback; \
         the bridge is its own process (server.worker_threads = {workers}); latencies in ms; ratio = bridge rate / direct rate; \
         CPU from /proc/PID/stat\n"
    );
    println!(
        "| request | bridge/s | p50 | p99 | LDAP ops | bridge CPU µs/req | slapd CPU µs/req | direct/s | p50 | p99 | slapd CPU µs/op | ratio | bridge/slapd CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");

    // POST /Users vs add
    let ops0 = bridge.ldap_ops().await;
    let b = bridge.clone();
    let t = run(n, move |i| {
        let b = b.clone();
        async move {
            let body = json!({"userName": format!("bench{i}"), "name": {"givenName": "B", "familyName": format!("N{i}")},
                "emails": [{"type": "work", "value": format!("bench{i}@example.com")}]});
            let (s, r) = b.call(TOKEN, Method::POST, "/Users", Some(&body)).await;
            assert_eq!(s, StatusCode::CREATED, "{r}");
        }
    })
    .await;
    let bs = side(n, t, (bridge.ldap_ops().await - ops0) as f64 / n as f64);
    let c = conns.clone();
    let t = run(n, move |i| {
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
    row("POST /Users vs add", &bs, &side(n, t, 1.0));

    let (_, page) = bridge.get("/Users?count=200&attributes=userName").await;
    let users = page["Resources"].as_array().unwrap();
    let ids: Arc<Vec<String>> = Arc::new(
        users
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect(),
    );
    let dns: Arc<Vec<String>> = Arc::new(
        users
            .iter()
            .map(|u| dn_of(u["userName"].as_str().unwrap()))
            .collect(),
    );

    // BENCH_CALLGRIND=N: instructions per request (valgrind's callgrind), a figure that does
    // not move with the machine's load; then stop
    if let Some(m) = std::env::var("BENCH_CALLGRIND")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        instructions_per_request(&config, &ids, m).await;
        return;
    }

    // BENCH_PROFILE_GET=secs (or _POST, _DELETE): only that request for that long, for a
    // profiler attached to the bridge (`perf record -e cpu-clock -g -p PID`)
    if let Some((what, secs)) = ["GET", "POST", "DELETE"].into_iter().find_map(|w| {
        std::env::var(format!("BENCH_PROFILE_{w}"))
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(|secs| (w, secs))
    }) {
        profile(&bridge, &ids, what, secs).await;
        return;
    }

    // the floor HTTP sets: /healthz does no LDAP, no auth, no JSON
    let b = bridge.clone();
    let health = format!("http://{}/healthz", bridge.server.addr);
    let t = run(n, move |_| {
        let (b, health) = (b.clone(), health.clone());
        async move {
            let s = b.client.get(&health).send().await.unwrap().status();
            assert!(s.is_success());
        }
    })
    .await;
    let floor = side(n, t, 0.0);

    // GET by id vs a base read
    let ops0 = bridge.ldap_ops().await;
    let (b, ids2) = (bridge.clone(), ids.clone());
    let t = run(n, move |i| {
        let (b, ids) = (b.clone(), ids2.clone());
        async move {
            let (s, _) = b.get(&format!("/Users/{}", ids[i % ids.len()])).await;
            assert!(s.is_success());
        }
    })
    .await;
    let bs = side(n, t, (bridge.ldap_ops().await - ops0) as f64 / n as f64);
    let reading = |attrs: &'static [&'static str]| {
        let (c, dns) = (conns.clone(), dns.clone());
        Arc::new(move |i: usize| {
            let (c, dns) = (c.clone(), dns.clone());
            async move {
                let mut ldap = c[i % CONCURRENCY].lock().await;
                ldap.search(
                    &dns[i % dns.len()],
                    Scope::Base,
                    "(objectClass=*)",
                    attrs.to_vec(),
                )
                .await
                .unwrap()
                .success()
                .unwrap();
            }
        })
    };
    let read = reading(&[
        "*",
        "entryUUID",
        "entryCSN",
        "createTimestamp",
        "modifyTimestamp",
        "pwdAccountLockedTime",
        "memberOf",
    ]);
    let r = read.clone();
    let t = run(n, move |i| r(i)).await;
    row("GET /Users/{id} vs read", &bs, &side(n, t, 1.0));
    let r = read.clone();
    let paced = side(n, run_at(n, Some(bs.rate), move |i| r(i)).await, 1.0);
    // the same read with the list the bridge sends for this config's GET (seen with strace:
    // one name per mapped attribute, then the operational ones): what the list costs slapd
    let listed = reading(BRIDGE_READ_ATTRS);
    let paced_listed = side(n, run_at(n, Some(bs.rate), move |i| listed(i)).await, 1.0);

    // filter by userName (Entra's and Okta's lookup before every create)
    let ops0 = bridge.ldap_ops().await;
    let b = bridge.clone();
    let t = run(n, move |i| {
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
    let bs = side(n, t, (bridge.ldap_ops().await - ops0) as f64 / n as f64);
    let c = conns.clone();
    let t = run(n, move |i| {
        let c = c.clone();
        async move {
            let mut ldap = c[i % CONCURRENCY].lock().await;
            ldap.search(
                PEOPLE,
                Scope::Subtree,
                &format!("(&(objectClass=inetOrgPerson)(uid=bench{}))", i % 200),
                vec![
                    "*",
                    "entryUUID",
                    "entryCSN",
                    "createTimestamp",
                    "modifyTimestamp",
                    "memberOf",
                ],
            )
            .await
            .unwrap()
            .success()
            .unwrap();
        }
    })
    .await;
    row("GET ?filter=userName eq", &bs, &side(n, t, 1.0));

    // PATCH one attribute vs a modify
    let ops0 = bridge.ldap_ops().await;
    let (b, ids2) = (bridge.clone(), ids.clone());
    let t = run(n, move |i| {
        let (b, ids) = (b.clone(), ids2.clone());
        async move {
            let (s, r) = b
                .patch(
                    &format!("/Users/{}", ids[i % ids.len()]),
                    json!([{"op": "replace", "path": "title", "value": format!("t{i}")}]),
                )
                .await;
            assert!(s.is_success(), "{r}");
        }
    })
    .await;
    let bs = side(n, t, (bridge.ldap_ops().await - ops0) as f64 / n as f64);
    let (c, dns2) = (conns.clone(), dns.clone());
    let t = run(n, move |i| {
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
    row("PATCH title vs modify", &bs, &side(n, t, 1.0));

    // DELETE (archive: disabled and moved, 404 to SCIM) vs an LDAP delete; the users are
    // made first, untimed
    let gone = users_to_delete(&bridge, n, "gone").await;
    let ops0 = bridge.ldap_ops().await;
    let (b, g) = (bridge.clone(), gone.clone());
    let t = run(n, move |i| {
        let (b, g) = (b.clone(), g.clone());
        async move {
            let id = &g[i];
            let (s, r) = b
                .call(TOKEN, Method::DELETE, &format!("/Users/{id}"), None)
                .await;
            assert_eq!(s, StatusCode::NO_CONTENT, "{r}");
        }
    })
    .await;
    let bs = side(n, t, (bridge.ldap_ops().await - ops0) as f64 / n as f64);
    let c = conns.clone();
    let t = run(n, move |i| {
        let c = c.clone();
        async move {
            let mut ldap = c[i % CONCURRENCY].lock().await;
            ldap.delete(&format!("uid=direct{i},{PEOPLE}"))
                .await
                .unwrap()
                .success()
                .unwrap();
        }
    })
    .await;
    row("DELETE (archive) vs delete", &bs, &side(n, t, 1.0));
    println!(
        "\nthe HTTP floor on this machine: GET /healthz (no LDAP, no auth) {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
        floor.rate, floor.p50, floor.p99
    );
    println!(
        "slapd's CPU per base read from the direct client paced to the bridge's GET rate ({:.0}/s): {:.0} µs asking for `*`, {:.0} µs asking for the bridge's {} attributes (unpaced, above: the direct side's own rate, `*`)",
        paced.rate, paced.slapd_cpu, paced_listed.slapd_cpu, BRIDGE_READ_ATTRS.len()
    );
    let (_, peak) = bridge.memory();
    println!("bridge memory: idle after start {idle_rss:.1} MiB ({idle_anon:.1} MiB of it anonymous, the rest the binary's pages); peak over the requests above {peak:.1} MiB");

    // lists: 200 users in 10 groups of 20, the groups nested in one parent
    let mut ldap = slapd.admin().await;
    let parent = format!("cn=bench-all,{GROUPS}");
    for g in 0..10 {
        let members: Vec<&str> = dns[g * 20..(g + 1) * 20]
            .iter()
            .map(String::as_str)
            .collect();
        let name = format!("bench-g{g}");
        ldap.add(
            &format!("cn={name},{GROUPS}"),
            vec![
                ("objectClass", HashSet::from(["groupOfNames"])),
                ("cn", HashSet::from([name.as_str()])),
                ("member", members.into_iter().collect()),
            ],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    }
    let children: Vec<String> = (0..10).map(|g| format!("cn=bench-g{g},{GROUPS}")).collect();
    ldap.add(
        &parent,
        vec![
            ("objectClass", HashSet::from(["groupOfNames"])),
            ("cn", HashSet::from(["bench-all"])),
            ("member", children.iter().map(String::as_str).collect()),
        ],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let list = "/Users?filter=userName%20sw%20%22bench%22&count=100";
    let (_, first) = bridge.get(list).await;
    assert_eq!(first["Resources"].as_array().unwrap().len(), 100);
    let shown = first["Resources"][0]["groups"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    let m = 200;
    let ops0 = bridge.ldap_ops().await;
    let b = bridge.clone();
    let t = run(m, move |_| {
        let b = b.clone();
        async move {
            let (s, _) = b.get(list).await;
            assert!(s.is_success());
        }
    })
    .await;
    let ls = side(m, t, (bridge.ldap_ops().await - ops0) as f64 / m as f64);
    println!(
        "\nlist page of 100 users with groups (each shows {shown}: direct and nested): {:.0} pages/s, p50 {:.1} ms, p99 {:.1} ms, {:.1} LDAP ops per page",
        ls.rate, ls.p50, ls.p99, ls.ops
    );

    // memory under 8 clients: lists of 200 with groups and deep index pages
    let b = bridge.clone();
    run(400, move |i| {
        let b = b.clone();
        async move {
            let path = if i % 2 == 0 {
                "/Users?count=200".to_owned()
            } else {
                format!("/Users?startIndex={}&count=200", 1500 + i % 500)
            };
            let (s, _) = b.get(&path).await;
            assert!(s.is_success());
        }
    })
    .await;
    let (rss, peak) = bridge.memory();
    println!("bridge memory after 400 lists of 200 users and deep pages, 8 clients: now {rss:.1} MiB, peak {peak:.1} MiB");

    // membership: a 1,000-member PUT, and member PATCHes on a 10- and a 10,000-member group
    let (_, many) = bridge.get("/Users?count=200&attributes=id").await;
    let mut member_ids: Vec<String> = many["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    // 1,000 members need 1,000 users: the direct adds above made them; find their ids in pages
    let mut start = 201;
    while member_ids.len() < 1000 {
        let (_, more) = bridge
            .get(&format!(
                "/Users?startIndex={start}&count=200&attributes=id"
            ))
            .await;
        let more = more["Resources"].as_array().unwrap();
        if more.is_empty() {
            break;
        }
        member_ids.extend(more.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        start += 200;
    }
    member_ids.truncate(1000);
    let (s, g) = bridge
        .call(
            TOKEN,
            Method::POST,
            "/Groups",
            Some(&json!({"displayName": "bench-put"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let gid = g["id"].as_str().unwrap().to_owned();
    let body = json!({"displayName": "bench-put", "members": member_ids.iter().map(|id| json!({"value": id})).collect::<Vec<_>>()});
    let ops0 = bridge.ldap_ops().await;
    let t = Instant::now();
    let (s, r) = bridge
        .call(
            TOKEN,
            Method::PUT,
            &format!("/Groups/{gid}?excludedAttributes=members"),
            Some(&body),
        )
        .await;
    assert!(s.is_success(), "{r}");
    println!(
        "\nPUT /Groups with {} members: {:.0} ms, {} LDAP ops",
        member_ids.len(),
        t.elapsed().as_secs_f64() * 1000.0,
        bridge.ldap_ops().await - ops0
    );
    for (name, size) in [("ten", 10usize), ("tenk", 10_000)] {
        let members: Vec<String> = (0..size).map(|i| format!("uid=x{i:05},{PEOPLE}")).collect();
        ldap.add(
            &format!("cn={name},{GROUPS}"),
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
        let ops0 = bridge.ldap_ops().await;
        let (b, ids2) = (bridge.clone(), ids.clone());
        let m = ids.len() * 2;
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
        per_group.push(side(
            m,
            t,
            (bridge.ldap_ops().await - ops0) as f64 / m as f64,
        ));
    }
    let mut direct = Vec::new();
    for name in ["ten", "tenk"] {
        let m = dns.len() * 2;
        let (c, dns2) = (conns.clone(), dns.clone());
        let group = format!("cn={name},{GROUPS}");
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
        direct.push(side(m, t, 1.0));
    }
    println!("\n| member PATCH (add or remove one) | bridge/s | p50 | LDAP ops | direct modify/s | p50 | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for (label, (b, d)) in ["10-member group", "10,000-member group"]
        .iter()
        .zip(per_group.iter().zip(&direct))
    {
        println!(
            "| {label} | {:.0} | {:.2} | {:.1} | {:.0} | {:.2} | {:.2} |",
            b.rate,
            b.p50,
            b.ops,
            d.rate,
            d.p50,
            b.rate / d.rate
        );
    }

    // cursor walk (RFC 9865) versus startIndex paging, in the walk tenant's own container
    let t = Instant::now();
    add_people(&conns, WALK_OU, "w", index_walk_n).await;
    println!(
        "\nloaded {index_walk_n} users into {WALK_OU} directly in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let walk_by_cursor = |count: usize| {
        let b = bridge.clone();
        async move {
            let ops0 = b.ldap_ops().await;
            let t = Instant::now();
            let (mut seen, mut pages) = (0usize, 0usize);
            let mut path = format!("/Users?count={count}&cursor=&attributes=userName");
            loop {
                let (s, page) = b.call(WALK_TOKEN, Method::GET, &path, None).await;
                assert_eq!(s, StatusCode::OK, "{page}");
                seen += page["Resources"].as_array().unwrap().len();
                pages += 1;
                match page["nextCursor"].as_str() {
                    Some(c) => {
                        path = format!(
                            "/Users?count={count}&cursor={}&attributes=userName",
                            urlencode(c)
                        )
                    }
                    None => break,
                }
            }
            (seen, pages, t.elapsed(), b.ldap_ops().await - ops0)
        }
    };
    let walk_by_index = |count: usize| {
        let b = bridge.clone();
        async move {
            let ops0 = b.ldap_ops().await;
            let t = Instant::now();
            let (mut seen, mut pages) = (0usize, 0usize);
            loop {
                let path = format!(
                    "/Users?count={count}&startIndex={}&attributes=userName",
                    seen + 1
                );
                let (s, page) = b.call(WALK_TOKEN, Method::GET, &path, None).await;
                assert_eq!(s, StatusCode::OK, "{page}");
                let got = page["Resources"].as_array().unwrap().len();
                seen += got;
                pages += 1;
                if got == 0 || seen >= page["totalResults"].as_u64().unwrap() as usize {
                    break;
                }
            }
            (seen, pages, t.elapsed(), b.ldap_ops().await - ops0)
        }
    };
    println!("\n| walk, pages of 100 | users | pages | time | LDAP ops | ms per page |");
    println!("|---|---|---|---|---|---|");
    let print = |how: &str, (seen, pages, took, ops): (usize, usize, Duration, u64)| {
        println!(
            "| {how} | {seen} | {pages} | {:.1} s | {ops} | {:.1} |",
            took.as_secs_f64(),
            took.as_secs_f64() * 1000.0 / pages as f64
        );
    };
    print("startIndex", walk_by_index(100).await);
    let (_, spc) = bridge.get("/ServiceProviderConfig").await;
    if spc["pagination"]["cursor"] != true {
        println!("(this build offers no cursor paging)");
        return;
    }
    print("cursor", walk_by_cursor(100).await);
    if walk_n > index_walk_n {
        let t = Instant::now();
        add_people(&conns, WALK_OU, "v", walk_n - index_walk_n).await;
        eprintln!(
            "loaded {} more users in {:.1} s",
            walk_n - index_walk_n,
            t.elapsed().as_secs_f64()
        );
        print("cursor", walk_by_cursor(100).await);
    }
    let (rss, peak) = bridge.memory();
    println!("\nbridge memory at the end: now {rss:.1} MiB, peak {peak:.1} MiB");
}

/// A load of one kind of request for `secs`, for a profiler: GETs of `ids`, creates, or
/// deletes (of users created first, about as many as the time allows).
async fn profile(bridge: &Arc<Proc>, ids: &Arc<Vec<String>>, what: &str, secs: u64) {
    let doomed = if what == "DELETE" {
        users_to_delete(bridge, secs as usize * 1_500, "doomed").await
    } else {
        Arc::new(Vec::new())
    };
    eprintln!("bridge pid {}: {what} for {secs} s", bridge.server.pid());
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let (b, ids, doomed) = (bridge.clone(), ids.clone(), doomed.clone());
        let what = what.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while Instant::now() < until {
                let ok = match what.as_str() {
                    "POST" => {
                        let body = json!({"userName": format!("profiled{i}"), "name": {"givenName": "P", "familyName": "R"}});
                        b.call(TOKEN, Method::POST, "/Users", Some(&body))
                            .await
                            .0
                            .is_success()
                    }
                    "DELETE" => match doomed.get(i) {
                        Some(id) => b
                            .call(TOKEN, Method::DELETE, &format!("/Users/{id}"), None)
                            .await
                            .0
                            .is_success(),
                        None => break,
                    },
                    _ => b.get(&format!("/Users/{}", ids[i % ids.len()])).await.0.is_success(),
                };
                assert!(ok);
                i += CONCURRENCY;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// `n` users made through the bridge (untimed), named `{prefix}{i}`: their ids, in order.
async fn users_to_delete(bridge: &Arc<Proc>, n: usize, prefix: &'static str) -> Arc<Vec<String>> {
    let made = Arc::new(std::sync::Mutex::new(vec![String::new(); n]));
    let (b, m) = (bridge.clone(), made.clone());
    run(n, move |i| {
        let (b, m) = (b.clone(), m.clone());
        async move {
            let body = json!({"userName": format!("{prefix}{i}"), "name": {"givenName": "G", "familyName": "N"}});
            let (s, r) = b.call(TOKEN, Method::POST, "/Users", Some(&body)).await;
            assert_eq!(s, StatusCode::CREATED, "{r}");
            m.lock().unwrap()[i] = r["id"].as_str().unwrap().to_owned();
        }
    })
    .await;
    let ids = std::mem::take(&mut *made.lock().unwrap());
    Arc::new(ids)
}
