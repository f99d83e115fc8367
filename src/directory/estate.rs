//! The directory estate: several servers (configured, or discovered in DNS), of which one is
//! the current server every request uses. All bridge processes choose the same one, the first
//! healthy server in the configured (or SRV) order, so that writes from every replica of the
//! bridge serialize on one directory server and uniqueness checks see each other's adds
//! (AD does not enforce sAMAccountName or UPN across DCs before replication). When the
//! current server fails, the next healthy one takes over at once; the preferred one takes
//! back only after answering health checks for `failback_after`, so that a server rebooting
//! in stages does not bounce the writes back and forth.
//!
//! Generic over what is kept per server (a connection pool in production), so that the
//! rules are tested alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tracing::warn;

/// One directory server and what is kept for it.
pub struct Member<T> {
    /// The URL requests reach it by (never holds a secret: no userinfo is accepted).
    pub url: String,
    /// `url` as a metrics label.
    pub label: &'static str,
    pub conn: T,
    health: Mutex<Health>,
}

#[derive(Debug, Clone)]
struct Health {
    up: bool,
    /// When `up` last changed (or the member was added).
    since: Instant,
    /// Why it is down.
    why: Option<String>,
}

impl<T> Member<T> {
    pub fn new(url: String, conn: T) -> Member<T> {
        Member {
            label: crate::metrics::server_label(&url),
            url,
            conn,
            health: Mutex::new(Health {
                up: true,
                since: Instant::now(),
                why: None,
            }),
        }
    }

    fn health(&self) -> Health {
        match self.health.lock() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, up: bool, why: Option<String>) -> bool {
        let mut h = match self.health.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        let changed = h.up != up;
        if changed {
            h.since = Instant::now();
        }
        h.up = up;
        h.why = why;
        crate::metrics::metrics().server_up(&self.url, up);
        changed
    }

    pub fn is_up(&self) -> bool {
        self.health().up
    }
}

struct Topology<T> {
    members: Vec<Arc<Member<T>>>,
    current: usize,
}

/// The servers, in order of preference, and which one is current.
pub struct Estate<T> {
    topology: RwLock<Topology<T>>,
    failback_after: Duration,
    /// Changes whenever the current server does: a request that wrote under one generation
    /// and reads under another may be reading a server that has not received its write.
    generation: AtomicU64,
    failovers: AtomicU64,
}

/// One server as `/readyz` and `check-config` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    pub url: String,
    pub up: bool,
    pub current: bool,
    /// Why it is down.
    pub why: Option<String>,
}

/// The estate as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EstateStatus {
    pub servers: Vec<ServerStatus>,
    /// Changes with every failover and fail-back.
    pub generation: u64,
    pub failovers: u64,
}

impl EstateStatus {
    pub fn current(&self) -> Option<&ServerStatus> {
        self.servers.iter().find(|s| s.current)
    }

    pub fn down(&self) -> impl Iterator<Item = &ServerStatus> {
        self.servers.iter().filter(|s| !s.up)
    }
}

impl<T> Estate<T> {
    pub fn new(members: Vec<Member<T>>, failback_after: Duration) -> Estate<T> {
        for m in &members {
            crate::metrics::metrics().server_up(&m.url, true);
        }
        Estate {
            topology: RwLock::new(Topology {
                members: members.into_iter().map(Arc::new).collect(),
                current: 0,
            }),
            failback_after,
            generation: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Topology<T>> {
        self.topology.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Topology<T>> {
        self.topology.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The server requests use now; `None` while none is known (discovery found none yet).
    pub fn current(&self) -> Option<Arc<Member<T>>> {
        let t = self.read();
        t.members.get(t.current).cloned()
    }

    /// Every server, in order of preference.
    pub fn members(&self) -> Vec<Arc<Member<T>>> {
        self.read().members.clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// `member` failed (refused connections, answered that it cannot serve, failed a health
    /// check): marked down, and if it was current, the next healthy server takes over.
    pub fn failed(&self, member: &Arc<Member<T>>, why: &str) {
        member.set(false, Some(why.to_owned()));
        let mut t = self.write();
        let is_current = t
            .members
            .get(t.current)
            .is_some_and(|c| Arc::ptr_eq(c, member));
        if is_current {
            if let Some(next) = t.members.iter().position(|m| m.is_up()) {
                let from = member.url.clone();
                t.current = next;
                let to = t
                    .members
                    .get(next)
                    .map(|m| m.url.clone())
                    .unwrap_or_default();
                drop(t);
                self.moved("failover", &from, &to, why);
            }
        }
    }

    /// `member` answered a health check.
    pub fn answered(&self, member: &Arc<Member<T>>) {
        member.set(true, None);
    }

    /// After a round of health checks: a current server that is down gives way to the first
    /// healthy one; a healthier preferred server that has been up for `failback_after` takes
    /// back.
    pub fn settle(&self) {
        let mut t = self.write();
        let Some(current) = t.members.get(t.current).cloned() else {
            return;
        };
        let now = Instant::now();
        let wanted = if current.is_up() {
            t.members.iter().take(t.current).position(|m| {
                let h = m.health();
                h.up && now.duration_since(h.since) >= self.failback_after
            })
        } else {
            t.members.iter().position(|m| m.is_up())
        };
        if let Some(i) = wanted.filter(|i| *i != t.current) {
            t.current = i;
            let to = t.members.get(i).map(|m| m.url.clone()).unwrap_or_default();
            drop(t);
            if current.is_up() {
                self.moved(
                    "failback",
                    &current.url,
                    &to,
                    "the preferred server has answered health checks long enough",
                );
            } else {
                let why = current.health().why.unwrap_or_default();
                self.moved("failover", &current.url, &to, &why);
            }
        }
    }

    /// A new list of servers (DNS discovery refreshed): members already known keep their
    /// connections and health; the current server stays current while it is listed and up,
    /// otherwise the first healthy server in the new order is.
    pub fn replace(&self, members: Vec<Arc<Member<T>>>) {
        let mut t = self.write();
        let current_url = t.members.get(t.current).map(|m| m.url.clone());
        let keep = current_url
            .as_ref()
            .and_then(|u| members.iter().position(|m| &m.url == u && m.is_up()));
        let next = keep
            .or_else(|| members.iter().position(|m| m.is_up()))
            .unwrap_or(0);
        t.members = members;
        t.current = next;
        let to = t.members.get(next).map(|m| m.url.clone());
        drop(t);
        if let (Some(from), Some(to)) = (current_url, to) {
            if from != to {
                self.moved(
                    "failover",
                    &from,
                    &to,
                    "the server is no longer listed in DNS",
                );
            }
        }
    }

    /// Looks up a known member by URL (discovery reuses members it already has).
    pub fn member(&self, url: &str) -> Option<Arc<Member<T>>> {
        self.read().members.iter().find(|m| m.url == url).cloned()
    }

    fn moved(&self, kind: &'static str, from: &str, to: &str, why: &str) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        if kind == "failover" {
            self.failovers.fetch_add(1, Ordering::Relaxed);
        }
        crate::metrics::metrics().server_change(kind);
        warn!(from, to, why, "directory {kind}: requests now go to {to}");
    }

    pub fn status(&self) -> EstateStatus {
        let t = self.read();
        EstateStatus {
            servers: t
                .members
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let h = m.health();
                    ServerStatus {
                        url: m.url.clone(),
                        up: h.up,
                        current: i == t.current,
                        why: h.why,
                    }
                })
                .collect(),
            generation: self.generation(),
            failovers: self.failovers.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estate(n: usize, failback: Duration) -> Estate<()> {
        Estate::new(
            (1..=n)
                .map(|i| Member::new(format!("ldap://dc{i}"), ()))
                .collect(),
            failback,
        )
    }

    fn current(e: &Estate<()>) -> String {
        e.current().unwrap().url.clone()
    }

    #[test]
    fn the_first_server_is_current_and_a_failure_moves_to_the_next_healthy_one() {
        let e = estate(3, Duration::from_secs(60));
        assert_eq!(current(&e), "ldap://dc1");
        let m = e.members();
        e.failed(&m[1], "refused");
        assert_eq!(current(&e), "ldap://dc1", "a standby failing moves nothing");
        e.failed(&m[0], "refused");
        assert_eq!(current(&e), "ldap://dc3", "dc2 is down too");
        assert_eq!(e.status().failovers, 1);
        let g = e.generation();
        e.failed(&m[2], "refused");
        assert_eq!(
            current(&e),
            "ldap://dc3",
            "with none healthy, nothing moves"
        );
        assert_eq!(e.generation(), g);
    }

    #[test]
    fn the_preferred_server_takes_back_only_after_the_failback_delay() {
        let e = estate(2, Duration::from_millis(200));
        let m = e.members();
        e.failed(&m[0], "refused");
        assert_eq!(current(&e), "ldap://dc2");
        e.answered(&m[0]);
        e.settle();
        assert_eq!(current(&e), "ldap://dc2", "back up just now: not yet");
        std::thread::sleep(Duration::from_millis(250));
        e.settle();
        assert_eq!(current(&e), "ldap://dc1", "fail-back");
        assert_eq!(e.status().failovers, 1, "a fail-back is not a failover");
        assert_eq!(e.generation(), 2);
    }

    #[test]
    fn a_current_server_found_down_by_a_health_check_gives_way() {
        let e = estate(2, Duration::from_secs(60));
        let m = e.members();
        m[0].set(false, Some("timed out".into()));
        e.settle();
        assert_eq!(current(&e), "ldap://dc2");
        let s = e.status();
        assert_eq!(
            s.down().map(|d| d.url.as_str()).collect::<Vec<_>>(),
            ["ldap://dc1"]
        );
        assert_eq!(s.current().unwrap().url, "ldap://dc2");
    }

    #[test]
    fn a_new_server_list_keeps_the_current_server_while_it_is_listed() {
        let e = estate(2, Duration::from_secs(60));
        let m = e.members();
        e.failed(&m[0], "refused");
        let dc3 = Arc::new(Member::new("ldap://dc3".into(), ()));
        e.replace(vec![dc3.clone(), m[1].clone()]);
        assert_eq!(
            current(&e),
            "ldap://dc2",
            "dc2 stays current though dc3 comes first"
        );
        e.replace(vec![dc3]);
        assert_eq!(current(&e), "ldap://dc3");
        assert!(e.member("ldap://dc2").is_none());
    }
}
