//! The mass-removal safety valve. An IdP whose scoping filter was changed by mistake
//! deprovisions a whole company in minutes, and every request it sends is well-formed: nothing
//! but a count can tell that from a normal day. So each tenant's removals (a user deleted or
//! deactivated) are counted in a sliding window; past the tenant's threshold, further removals
//! are held (503 with `Retry-After`, nothing changed) until an admin has looked and released
//! them with `scim2ldap safety release`. Creates, updates and reactivations go on meanwhile.
//!
//! A hold does not lift by itself when the window slides on: a mistake would otherwise go on
//! at `max_removals` per window. Several bridges sharing a token store share the valve
//! (`shared`): each writes what it counted to its own file beside the store, reads the
//! others' every second, and a release written by the CLI reaches all of them within seconds.

pub mod shared;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tracing::{error, info};

pub use shared::{Refusal, TenantStatus};

/// How many refused removals a tenant's state keeps by name, for `safety status`.
const KEEP_REFUSED: usize = 10;

/// Seconds an IdP is asked to wait before it retries a held removal. IdPs retry 503s with
/// backoff; a release takes a person, so there is no point in asking sooner.
pub const HELD_RETRY_AFTER_SECS: u32 = 600;

/// A tenant's threshold: more than `max_removals` removals (or `percent` of the tenant's
/// users, whichever is lower) within `window` are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    /// 0: no count limit.
    pub max_removals: u32,
    pub window: Duration,
    /// A limit as a percentage of the tenant's users.
    pub percent: Option<u8>,
}

impl Threshold {
    /// Neither limit: the valve is off for this tenant.
    pub fn is_off(&self) -> bool {
        self.max_removals == 0 && self.percent.is_none()
    }

    /// The removals allowed in a window for a tenant of `users` users (unknown: the count
    /// limit alone); `None`: no limit.
    pub fn limit(&self, users: Option<usize>) -> Option<u32> {
        let count = (self.max_removals > 0).then_some(self.max_removals);
        let share = self.percent.zip(users).map(|(p, n)| {
            let allowed = (n as u64 * u64::from(p)).div_ceil(100).max(1);
            u32::try_from(allowed).unwrap_or(u32::MAX)
        });
        lesser(count, share)
    }

    /// How the limit reads for the admin: `100`, `5% of 2000 users = 100`.
    fn describe(&self, users: Option<usize>) -> String {
        let limit = self.limit(users).unwrap_or(0);
        match (self.percent, users) {
            (Some(p), Some(n)) => format!(
                "{limit} (safety.max_removals {}, max_removals_percent {p}% of {n} users)",
                self.max_removals
            ),
            _ => format!("{limit} (safety.max_removals)"),
        }
    }
}

/// The lesser of two values, either of which may be missing: the lower limit, the earlier
/// time.
pub(crate) fn lesser<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The account a removal is about, for the admin who reads `safety status`.
#[derive(Debug, Clone, Copy)]
pub struct Removal<'a> {
    pub id: &'a str,
    pub user_name: &'a str,
}

/// A removal the valve holds: what the client and the log are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub tenant: String,
    pub since: OffsetDateTime,
    pub threshold: Threshold,
    /// The tenant's users, when the threshold has a percentage.
    pub users: Option<usize>,
}

impl Held {
    /// The SCIM `detail`: what happened, that nothing changed, and what releases it.
    pub fn detail(&self) -> String {
        format!(
            "the safety valve holds tenant {}'s removals: more than {} users were deleted or deactivated within {} s, so this removal was not made; an admin checks the IdP's scoping and runs `scim2ldap safety release --tenant {}` to let removals through",
            self.tenant,
            self.threshold.describe(self.users),
            self.threshold.window.as_secs(),
            self.tenant
        )
    }
}

/// One tenant's valve in this process.
#[derive(Debug, Default)]
struct TenantValve {
    /// When each removal made here happened, oldest first (those in the window).
    removals: VecDeque<OffsetDateTime>,
    /// Removals admitted and not yet finished: counted, so that concurrent requests cannot
    /// all pass at `max_removals - 1`.
    in_flight: u32,
    /// When this process began holding; cleared by a release.
    held_since: Option<OffsetDateTime>,
    /// Removals refused since the hold began.
    refused: u64,
    /// The last refused, newest last.
    last_refused: VecDeque<Refusal>,
    /// The last release an admin made (from the shared release file).
    released_at: Option<OffsetDateTime>,
    /// What the other bridges sharing the store counted, at the last sync.
    elsewhere: shared::Counted,
}

impl TenantValve {
    /// Removals before this do not count: out of the window, or before the last release.
    fn cutoff(&self, window: Duration, now: OffsetDateTime) -> OffsetDateTime {
        let start = now - window;
        self.released_at.map_or(start, |r| r.max(start))
    }

    fn is_held(&self) -> bool {
        self.held_since.is_some()
            || self
                .elsewhere
                .held_since
                .is_some_and(|h| self.released_at.is_none_or(|r| h > r))
    }

    fn counted(&self, window: Duration, now: OffsetDateTime) -> usize {
        let cutoff = self.cutoff(window, now);
        let here = self.removals.iter().filter(|t| **t > cutoff).count();
        let there = self
            .elsewhere
            .removals
            .iter()
            .filter(|t| **t > cutoff)
            .count();
        here + there + self.in_flight as usize
    }

    fn held_since(&self) -> Option<OffsetDateTime> {
        lesser(self.held_since, self.elsewhere.held_since)
    }
}

/// The valve of every tenant, for the life of the process (a reload keeps it).
pub struct Valve {
    tenants: Mutex<HashMap<String, TenantValve>>,
    /// Each tenant's number of users and when it was counted, for percentage limits.
    users: Mutex<HashMap<String, (usize, std::time::Instant)>>,
    /// The shared files; none when the bridge runs alone in a test or `explain`.
    files: Option<shared::Files>,
    dirty: AtomicBool,
}

impl Valve {
    /// A valve that shares its state through files beside the token store `store`.
    /// What this host counted before a restart is read back, so a hold outlives it.
    pub fn shared(store: &std::path::Path) -> Arc<Valve> {
        Valve::restored(shared::Files::beside(store))
    }

    fn restored(files: shared::Files) -> Arc<Valve> {
        let before = files.read_mine();
        let releases = files.releases();
        let valve = Valve::with_files(Some(files));
        {
            let mut state = valve.tenants();
            for (name, counted) in before {
                let t = state.entry(name.clone()).or_default();
                shared::restore(t, counted);
                if let Some(at) = releases.get(&name) {
                    valve.take_release(&name, t, *at);
                }
            }
        }
        valve
    }

    /// A valve of this process alone.
    pub fn local() -> Arc<Valve> {
        Valve::with_files(None)
    }

    fn with_files(files: Option<shared::Files>) -> Arc<Valve> {
        Arc::new(Valve {
            tenants: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            files,
            dirty: AtomicBool::new(false),
        })
    }

    fn tenants(&self) -> std::sync::MutexGuard<'_, HashMap<String, TenantValve>> {
        // a panic while holding the lock leaves counts, never a broken invariant
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks to remove `who` for `tenant`. A permit counts the removal when it is `done`;
    /// dropped without that (the removal failed), it counts nothing.
    pub fn admit(
        self: &Arc<Self>,
        tenant: &str,
        limit: Threshold,
        users: Option<usize>,
        who: Removal<'_>,
        now: OffsetDateTime,
    ) -> Result<Permit, Held> {
        let Some(max) = limit.limit(users) else {
            return Ok(Permit::free());
        };
        let mut tenants = self.tenants();
        let t = tenants.entry(tenant.to_owned()).or_default();
        let start = now - limit.window;
        while t.removals.front().is_some_and(|r| *r <= start) {
            t.removals.pop_front();
        }
        if !t.is_held() && t.counted(limit.window, now) >= max as usize {
            t.held_since = Some(now);
            error!(
                tenant = %tenant,
                limit = %limit.describe(users),
                window_secs = limit.window.as_secs(),
                release = %format!("scim2ldap safety release --tenant {tenant}"),
                "the safety valve now holds this tenant's removals: more users were deleted or deactivated in the window than its limit allows; check the IdP's scoping, then release"
            );
            crate::metrics::metrics().safety_held(tenant, true);
        }
        if t.is_held() {
            t.held_since.get_or_insert(now);
            t.refused += 1;
            t.last_refused.push_back(Refusal {
                at: shared::timestamp(now),
                id: who.id.to_owned(),
                user_name: crate::logging::shorten(who.user_name, 256).into_owned(),
            });
            while t.last_refused.len() > KEEP_REFUSED {
                t.last_refused.pop_front();
            }
            self.dirty.store(true, Ordering::Relaxed);
            crate::metrics::metrics().removal_held(tenant);
            return Err(Held {
                tenant: tenant.to_owned(),
                since: t.held_since().unwrap_or(now),
                threshold: limit,
                users,
            });
        }
        t.in_flight += 1;
        Ok(Permit {
            valve: Some(self.clone()),
            tenant: tenant.to_owned(),
            at: now,
        })
    }

    fn finish(&self, tenant: &str, at: Option<OffsetDateTime>) {
        let mut tenants = self.tenants();
        if let Some(t) = tenants.get_mut(tenant) {
            t.in_flight = t.in_flight.saturating_sub(1);
            if let Some(at) = at {
                t.removals.push_back(at);
                self.dirty.store(true, Ordering::Relaxed);
            }
        }
    }

    /// `tenant`'s number of users, when counted within `fresh`.
    pub fn users(&self, tenant: &str, fresh: Duration) -> Option<usize> {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users
            .get(tenant)
            .filter(|(_, at)| at.elapsed() < fresh)
            .map(|(n, _)| *n)
    }

    /// Notes `tenant`'s number of users (counted by the caller, who can search).
    pub fn counted_users(&self, tenant: &str, n: usize) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.insert(tenant.to_owned(), (n, std::time::Instant::now()));
    }

    /// Whether `tenant`'s removals are held now.
    pub fn is_held(&self, tenant: &str) -> bool {
        self.tenants().get(tenant).is_some_and(TenantValve::is_held)
    }

    /// Brings the shared state up to date: takes in releases and what the other bridges
    /// counted, and writes what this one counted when it changed. Blocking (files): run it
    /// off the async workers, every second.
    pub fn sync(&self, tenants: &[String]) {
        let Some(files) = &self.files else {
            return;
        };
        let releases = files.releases();
        let mut elsewhere = files.counted_elsewhere();
        let mine = {
            let mut state = self.tenants();
            for name in tenants {
                state.entry(name.clone()).or_default();
            }
            for (name, t) in state.iter_mut() {
                if let Some(at) = releases.get(name) {
                    self.take_release(name, t, *at);
                }
                t.elsewhere = elsewhere.remove(name).unwrap_or_default();
                crate::metrics::metrics().safety_held(name, t.is_held());
            }
            if !self.dirty.swap(false, Ordering::Relaxed) {
                return;
            }
            state
                .iter()
                .map(|(name, t)| (name.clone(), shared::snapshot(t)))
                .collect()
        };
        files.write_mine(&mine);
    }

    /// A release newer than the last one seen: the hold ends and the count starts again.
    fn take_release(&self, name: &str, t: &mut TenantValve, at: OffsetDateTime) {
        if t.released_at.is_some_and(|r| r >= at) {
            return;
        }
        t.released_at = Some(at);
        t.removals.retain(|r| *r > at);
        if t.held_since.is_some_and(|h| h <= at) {
            info!(tenant = %name, refused = t.refused, "the safety valve was released: removals go through again and the count starts from the release");
            t.held_since = None;
            t.refused = 0;
            t.last_refused.clear();
        }
        self.dirty.store(true, Ordering::Relaxed);
    }
}

/// A removal the valve let through; `done` counts it.
#[must_use = "a permit counts its removal only when done"]
pub struct Permit {
    valve: Option<Arc<Valve>>,
    tenant: String,
    at: OffsetDateTime,
}

impl Permit {
    /// A permit of a valve that is off: counts nothing.
    fn free() -> Permit {
        Permit {
            valve: None,
            tenant: String::new(),
            at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// The removal was made: it counts.
    pub fn done(mut self) {
        if let Some(v) = self.valve.take() {
            v.finish(&self.tenant, Some(self.at));
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(v) = self.valve.take() {
            v.finish(&self.tenant, None);
        }
    }
}

#[cfg(test)]
mod tests;
