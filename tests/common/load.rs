//! A load of IdP-like clients for failover tests: each creates a user, reads it back at
//! once and changes its title, over and over, recording every answer as it came (nothing is
//! retried), and what was acknowledged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use reqwest::StatusCode;

use super::{ServerProcess, TOKEN};

/// What one request of the load got, and when it ended.
#[derive(Debug, Clone)]
pub struct Answer {
    pub kind: &'static str,
    pub status: u16,
    pub ended: Instant,
}

/// Users the load created (201) and the title each acknowledged PATCH set.
#[derive(Default)]
pub struct Acked {
    /// userName → id of every 201.
    pub created: HashMap<String, String>,
    /// userName → title of every 200 PATCH.
    pub titles: HashMap<String, String>,
    /// The status of the GET sent right after each 201.
    pub get_after_create: Vec<u16>,
}

pub async fn send(
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

/// One client of the load: create a user (`body` of a userName), read it back at once,
/// change its title; until `stop`. Nothing is retried: every answer is recorded as it came.
async fn client_loop(
    base: String,
    worker: usize,
    body: fn(&str) -> Value,
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    acked: Arc<Mutex<Acked>>,
) {
    let client = reqwest::Client::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
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
            Some(body(&name)),
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
pub fn longest_failure_window(answers: &[Answer]) -> Duration {
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

/// Clients running until `stop`.
pub struct Load {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    acked: Arc<Mutex<Acked>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `workers` clients against `base` (…/scim/v2), userNames `{prefix}{worker}x{n}`.
    pub fn start(base: &str, workers: usize, body: fn(&str) -> Value) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let acked = Arc::new(Mutex::new(Acked::default()));
        let workers = (0..workers)
            .map(|w| {
                tokio::spawn(client_loop(
                    base.to_owned(),
                    w,
                    body,
                    stop.clone(),
                    answers.clone(),
                    acked.clone(),
                ))
            })
            .collect();
        Load {
            stop,
            answers,
            acked,
            workers,
        }
    }

    /// Stops the clients (each finishes the request it is in) and returns what they saw.
    pub async fn stop(self) -> (Vec<Answer>, Acked) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.unwrap();
        }
        let answers = self.answers.lock().unwrap().clone();
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        (answers, acked)
    }
}

/// A line of figures for the test's output: requests, failures by kind, the longest stretch
/// of only errors, how many GETs right after a create answered 200.
pub fn summary(answers: &[Answer], acked: &Acked) -> String {
    let mut failed: HashMap<(&str, u16), usize> = HashMap::new();
    for a in answers.iter().filter(|a| !(200..300).contains(&a.status)) {
        *failed.entry((a.kind, a.status)).or_default() += 1;
    }
    format!(
        "{} requests ({} creates acknowledged), failed {:?}; longest failure window {:?}; GET right after create: {} of {} 200",
        answers.len(),
        acked.created.len(),
        failed,
        longest_failure_window(answers),
        acked.get_after_create.iter().filter(|s| **s == 200).count(),
        acked.get_after_create.len(),
    )
}

/// What a failover must not do to IdPs: at least `min_created` creates acknowledged, no GET
/// right after a 201 answered 404, no stretch of only errors longer than 5 s, and every
/// failure a retryable 503.
pub fn held_up(answers: &[Answer], acked: &Acked, min_created: usize) {
    assert!(
        acked.created.len() >= min_created,
        "the load made too little progress: {}",
        summary(answers, acked)
    );
    assert!(
        !acked.get_after_create.contains(&404),
        "an id the bridge created answered 404: {}",
        summary(answers, acked)
    );
    let window = longest_failure_window(answers);
    assert!(
        window <= Duration::from_secs(5),
        "clients saw only errors for {window:?}"
    );
    let other: Vec<&Answer> = answers
        .iter()
        .filter(|a| !(200..300).contains(&a.status) && a.status != 503)
        .collect();
    assert!(
        other.is_empty(),
        "failures other than a retryable 503: {other:?}"
    );
}

pub async fn text(url: &str) -> (StatusCode, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// `scim2ldap_ldap_failovers_total{kind}` as the bridge counts it.
pub async fn moves(server: &ServerProcess, kind: &str) -> u64 {
    let (_, metrics) = text(&server.metrics_url()).await;
    let prefix = format!("scim2ldap_ldap_failovers_total{{kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// The server `/readyz` names as current.
pub async fn current(server: &ServerProcess) -> String {
    let (_, body) = text(&format!("http://{}/readyz", server.addr)).await;
    body.lines()
        .find_map(|l| l.strip_prefix("current: "))
        .unwrap_or_default()
        .to_owned()
}

/// Waits until `/readyz` names `want` as current: how long that took.
pub async fn wait_current(server: &ServerProcess, want: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if current(server).await == want {
            return start.elapsed();
        }
        if start.elapsed() >= within {
            let (status, body) = text(&format!("http://{}/readyz", server.addr)).await;
            panic!(
                "the current server is not {want} after {within:?}: /readyz {status} {body}\n{}",
                server.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each of `names` is POSTed through both bridges at once: one 201 and one 409 per name,
/// whichever bridge wins.
pub async fn create_through_both_at_once(
    bridges: [&ServerProcess; 2],
    names: &[String],
    body: fn(&str) -> Value,
) {
    let client = reqwest::Client::new();
    let mut calls = Vec::new();
    for name in names {
        for bridge in bridges {
            let (client, url, body) =
                (client.clone(), format!("{}/Users", bridge.base), body(name));
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
}
