//! Prometheus metrics (OpenMetrics text at `/metrics`): requests and their latency by route,
//! LDAP operations, errors and latency by kind, the connection pool, the DN cache, failed
//! authentications by tenant, reloads. One set per process, so that counts survive a reload;
//! every label takes a bounded set of values (routes as matched, not as sent; tenants from
//! the config).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

mod handles;
#[cfg(test)]
use handles::HANDLES_PER_THREAD;
use handles::{with_handles, Handles};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
    /// The tenant the credential named; "-" before (or without) authentication.
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
    server: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpErrorLabels {
    op: &'static str,
    server: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    lookup: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    tenant: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepairLabels {
    tenant: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    /// Tells this set's handles from another's in the per-thread lists (tests make several).
    id: u64,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    ldap_ops: Family<OpLabels, Counter>,
    ldap_errors: Family<OpErrorLabels, Counter>,
    ldap_seconds: Family<OpLabels, Histogram, fn() -> Histogram>,
    pool_connections: Family<PoolLabels, Gauge>,
    pool_max: Gauge,
    pool_waiting: Gauge,
    pool_wait_seconds: Histogram,
    cache: Family<CacheLabels, Counter>,
    auth_failures: Family<AuthLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    recovered: Family<ResultLabels, Counter>,
    repairs: Family<RepairLabels, Counter>,
    server_up: Family<ServerLabels, Gauge>,
    server_changes: Family<KindLabels, Counter>,
    safety_held: Family<TenantLabels, Gauge>,
    removals_held: Family<TenantLabels, Counter>,
    token_store_readable: Gauge,
}

/// A server's URL as a label that lives as long as the process, so that counting an
/// operation allocates nothing. Each distinct URL is kept once: the servers configured or
/// discovered over the process's life, a handful.
pub fn server_label(url: &str) -> &'static str {
    static LABELS: OnceLock<std::sync::Mutex<std::collections::HashSet<&'static str>>> =
        OnceLock::new();
    let mut labels = LABELS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match labels.get(url) {
        Some(known) => known,
        None => {
            let label: &'static str = Box::leak(url.to_owned().into_boxed_str());
            labels.insert(label);
            label
        }
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("scim2ldap");
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let m = Metrics {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            ldap_ops: Family::default(),
            ldap_errors: Family::default(),
            ldap_seconds: Family::new_with_constructor(latency_histogram),
            pool_connections: Family::default(),
            pool_max: Gauge::default(),
            pool_waiting: Gauge::default(),
            pool_wait_seconds: latency_histogram(),
            cache: Family::default(),
            auth_failures: Family::default(),
            reloads: Family::default(),
            recovered: Family::default(),
            repairs: Family::default(),
            server_up: Family::default(),
            server_changes: Family::default(),
            safety_held: Family::default(),
            removals_held: Family::default(),
            token_store_readable: Gauge::default(),
            registry: Registry::default(),
        };
        m.register_http(&mut registry);
        m.register_ldap(&mut registry);
        m.register_operations(&mut registry);
        m.register_servers(&mut registry);
        m.register_safety(&mut registry);
        Metrics { registry, ..m }
    }

    /// The HTTP side: requests and their time.
    fn register_http(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "HTTP requests answered, by matched route, method, status and tenant",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request, by matched route and method",
            self.request_seconds.clone(),
        );
    }

    /// The LDAP side: operations, errors, their time and the pool.
    fn register_ldap(&self, registry: &mut Registry) {
        registry.register(
            "ldap_operations",
            "LDAP operations sent, by kind",
            self.ldap_ops.clone(),
        );
        registry.register(
            "ldap_errors",
            "LDAP operations that failed, by kind of operation and of error",
            self.ldap_errors.clone(),
        );
        registry.register(
            "ldap_operation_duration_seconds",
            "Time from asking for a connection to the directory's answer, by operation",
            self.ldap_seconds.clone(),
        );
        registry.register(
            "ldap_pool_connections",
            "Connections to the directory, in use and idle",
            self.pool_connections.clone(),
        );
        registry.register(
            "ldap_pool_max_connections",
            "The pool's size (ldap.pool_size)",
            self.pool_max.clone(),
        );
        registry.register(
            "ldap_pool_waiting",
            "Requests waiting for a connection now",
            self.pool_waiting.clone(),
        );
        registry.register(
            "ldap_pool_wait_duration_seconds",
            "Time waited for a pooled connection (connecting and binding included)",
            self.pool_wait_seconds.clone(),
        );
    }

    /// The directory servers: which answer, and moves between them.
    fn register_servers(&self, registry: &mut Registry) {
        registry.register(
            "ldap_server_up",
            "Whether each directory server answers (1) or is down (0)",
            self.server_up.clone(),
        );
        // both series exist from the start, so that an alert on their increase sees a 0 first
        for kind in ["failover", "failback"] {
            let _ = self.server_changes.get_or_create(&KindLabels { kind });
        }
        registry.register(
            "ldap_failovers",
            "Moves of the current directory server: failover (it failed) or failback (the preferred server took back)",
            self.server_changes.clone(),
        );
    }

    /// The bridge's own work: DN cache, authentication, reloads, recovery, repairs.
    fn register_operations(&self, registry: &mut Registry) {
        registry.register(
            "dn_cache_lookups",
            "DN cache lookups by id or userName, hits and misses",
            self.cache.clone(),
        );
        registry.register(
            "auth_failures",
            "Requests refused by authentication, by tenant (\"-\" when no tenant is known) and reason",
            self.auth_failures.clone(),
        );
        // readable until a read says otherwise
        self.token_store_readable.set(1);
        registry.register(
            "token_store_readable",
            "Whether the last read of the token store succeeded (1); 0: it is unreadable or corrupt, and the tokens read before it stay in use",
            self.token_store_readable.clone(),
        );
        // both exist from the start, so that an alert on a refused reload sees a 0 first
        for result in ["applied", "refused"] {
            let _ = self.reloads.get_or_create(&ResultLabels { result });
        }
        registry.register(
            "config_reloads",
            "Reloads (SIGHUP), applied or refused",
            self.reloads.clone(),
        );
        registry.register(
            "journal_plans",
            "Interrupted writes found in the journal: recovered (finished or undone) or deferred",
            self.recovered.clone(),
        );
        registry.register(
            "repair_findings",
            "What the repair sweep found (result=found) and fixed (result=fixed), by tenant",
            self.repairs.clone(),
        );
    }

    /// The mass-removal safety valve.
    fn register_safety(&self, registry: &mut Registry) {
        registry.register(
            "safety_held",
            "Whether the safety valve holds the tenant's removals (1) or lets them through (0)",
            self.safety_held.clone(),
        );
        registry.register(
            "removals_held",
            "Removals (user deletes and deactivations) the safety valve refused, by tenant",
            self.removals_held.clone(),
        );
    }

    /// Whether `tenant`'s removals are held now.
    pub fn safety_held(&self, tenant: &str, held: bool) {
        let labels = TenantLabels {
            tenant: tenant.to_owned(),
        };
        self.safety_held.get_or_create(&labels).set(i64::from(held));
        // the counter exists from the start too, so that an alert on its increase sees a 0
        let _ = self.removals_held.get_or_create(&labels);
    }

    /// A removal of `tenant`'s was held.
    pub fn removal_held(&self, tenant: &str) {
        self.removals_held
            .get_or_create(&TenantLabels {
                tenant: tenant.to_owned(),
            })
            .inc();
    }

    /// One request answered; `route` and `method` are labels from fixed sets (a route
    /// template, a method name). The series' handles are looked up once per thread
    /// (`with_handles`): the tenant's name is copied only then.
    pub fn request(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        tenant: &str,
        took: Duration,
    ) {
        thread_local! {
            static HANDLES: Handles<RequestLabels, (Counter, Histogram)> = const { RefCell::new(Vec::new()) };
        }
        with_handles(
            &HANDLES,
            self.id,
            |k| k.status == status && k.route == route && k.method == method && k.tenant == tenant,
            || {
                let labels = RequestLabels {
                    route,
                    method,
                    status,
                    tenant: tenant.to_owned(),
                };
                let count = self.requests.get_or_create(&labels).clone();
                let time = self
                    .request_seconds
                    .get_or_create(&RouteLabels { route, method })
                    .clone();
                (labels, (count, time))
            },
            |(count, time)| {
                count.inc();
                time.observe(took.as_secs_f64());
            },
        );
    }

    /// One LDAP operation `op` sent to `server` (a `server_label`) that took `took` and
    /// failed with `error`, if it did.
    pub fn ldap(
        &self,
        op: &'static str,
        server: &'static str,
        took: Duration,
        error: Option<&'static str>,
    ) {
        thread_local! {
            static HANDLES: Handles<OpLabels, (Counter, Histogram)> = const { RefCell::new(Vec::new()) };
        }
        with_handles(
            &HANDLES,
            self.id,
            |k| k.op == op && k.server == server,
            || {
                let labels = OpLabels { op, server };
                let count = self.ldap_ops.get_or_create(&labels).clone();
                let time = self.ldap_seconds.get_or_create(&labels).clone();
                (labels, (count, time))
            },
            |(count, time)| {
                count.inc();
                time.observe(took.as_secs_f64());
            },
        );
        if let Some(kind) = error {
            self.ldap_errors
                .get_or_create(&OpErrorLabels { op, server, kind })
                .inc();
        }
    }

    pub fn server_up(&self, server: &str, up: bool) {
        self.server_up
            .get_or_create(&ServerLabels {
                server: server.to_owned(),
            })
            .set(i64::from(up));
    }

    /// The current directory server moved: `kind` is failover or failback.
    pub fn server_change(&self, kind: &'static str) {
        self.server_changes
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    pub fn pool_wait(&self, took: Duration) {
        self.pool_wait_seconds.observe(took.as_secs_f64());
    }

    /// The pool as it is now (set when scraped).
    pub fn pool(&self, in_use: usize, idle: usize, max: usize, waiting: usize) {
        let set = |state, n: usize| {
            self.pool_connections
                .get_or_create(&PoolLabels { state })
                .set(n as i64);
        };
        set("in_use", in_use);
        set("idle", idle);
        self.pool_max.set(max as i64);
        self.pool_waiting.set(waiting as i64);
    }

    pub fn cache_lookup(&self, lookup: &'static str, hit: bool) {
        thread_local! {
            static HANDLES: Handles<CacheLabels, Counter> = const { RefCell::new(Vec::new()) };
        }
        let result = if hit { "hit" } else { "miss" };
        with_handles(
            &HANDLES,
            self.id,
            |k| k.lookup == lookup && k.result == result,
            || {
                let labels = CacheLabels { lookup, result };
                let count = self.cache.get_or_create(&labels).clone();
                (labels, count)
            },
            |count| {
                count.inc();
            },
        );
    }

    pub fn auth_failure(&self, tenant: Option<&str>, reason: &'static str) {
        self.auth_failures
            .get_or_create(&AuthLabels {
                tenant: tenant.unwrap_or("-").to_owned(),
                reason,
            })
            .inc();
    }

    /// A recovery pass over the write journal: plans finished or undone, and plans that had
    /// to wait (the directory unavailable).
    pub fn journal_recovered(&self, recovered: usize, deferred: usize) {
        self.recovered
            .get_or_create(&ResultLabels {
                result: "recovered",
            })
            .inc_by(recovered as u64);
        self.recovered
            .get_or_create(&ResultLabels { result: "deferred" })
            .inc_by(deferred as u64);
    }

    pub fn repair(&self, tenant: &str, found: usize, fixed: usize) {
        for (result, n) in [("found", found), ("fixed", fixed)] {
            self.repairs
                .get_or_create(&RepairLabels {
                    tenant: tenant.to_owned(),
                    result,
                })
                .inc_by(n as u64);
        }
    }

    /// Whether the token store could be read just now.
    pub fn token_store_read(&self, ok: bool) {
        self.token_store_readable.set(i64::from(ok));
    }

    pub fn reload(&self, applied: bool) {
        let result = if applied { "applied" } else { "refused" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // writing to a String cannot fail
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The content type of `render`'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_counted() {
        let m = Metrics::new();
        m.request(
            "/scim/v2/Users/{id}",
            "GET",
            200,
            "acme",
            Duration::from_millis(3),
        );
        m.ldap("search", "ldap://dc1", Duration::from_millis(1), None);
        m.ldap(
            "add",
            "ldap://dc1",
            Duration::from_millis(2),
            Some("already_exists"),
        );
        m.server_up("ldap://dc2", false);
        m.server_change("failover");
        m.auth_failure(Some("acme"), "invalid_token");
        m.cache_lookup("id", true);
        m.pool(1, 7, 8, 0);
        let text = m.render();
        assert!(text.contains(
            "scim2ldap_http_requests_total{route=\"/scim/v2/Users/{id}\",method=\"GET\",status=\"200\",tenant=\"acme\"} 1"
        ), "{text}");
        assert!(text.contains(
            "scim2ldap_ldap_errors_total{op=\"add\",server=\"ldap://dc1\",kind=\"already_exists\"} 1"
        ));
        assert!(text.contains("scim2ldap_ldap_server_up{server=\"ldap://dc2\"} 0"));
        assert!(text.contains("scim2ldap_ldap_failovers_total{kind=\"failover\"} 1"));
        assert!(text
            .contains("scim2ldap_auth_failures_total{tenant=\"acme\",reason=\"invalid_token\"} 1"));
        assert!(text.contains("scim2ldap_ldap_pool_connections{state=\"idle\"} 7"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn kept_handles_count_into_their_own_set_and_series() {
        let (a, b) = (Metrics::new(), Metrics::new());
        let count = |m: &Metrics, status: u16| {
            m.request("/r", "GET", status, "acme", Duration::from_millis(1));
            m.ldap("search", "ldap://dc1", Duration::from_millis(1), None);
            m.cache_lookup("id", status == 200);
        };
        count(&a, 200);
        count(&a, 200);
        count(&b, 200);
        // more series than a thread keeps handles for: the list starts again, counts stay
        for status in 300..(300 + HANDLES_PER_THREAD as u16 + 5) {
            count(&a, status);
        }
        count(&a, 200);
        let series = |m: &Metrics, line: &str| {
            let text = m.render();
            text.lines()
                .find_map(|l| l.strip_prefix(line))
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("{line} not in {text}"))
        };
        let ok = "scim2ldap_http_requests_total{route=\"/r\",method=\"GET\",status=\"200\",tenant=\"acme\"} ";
        let ops = "scim2ldap_ldap_operations_total{op=\"search\",server=\"ldap://dc1\"} ";
        let hits = "scim2ldap_dn_cache_lookups_total{lookup=\"id\",result=\"hit\"} ";
        assert_eq!(series(&a, ok), "3");
        assert_eq!(series(&b, ok), "1");
        assert_eq!(series(&a, ops), (3 + HANDLES_PER_THREAD + 5).to_string());
        assert_eq!(series(&b, ops), "1");
        assert_eq!(series(&a, hits), "3");
        assert_eq!(series(&b, hits), "1");
    }
}
