//! Request slots shared fairly between tenants. A lone tenant may use every slot; when others
//! are waiting, each tenant holds at most its share (the slots divided by the tenants that are
//! busy or waiting), so one IdP's initial sync or slow requests cannot hold all the slots,
//! and through them all the directory connections, while another IdP's requests time out.
//! A tenant over its share waits while another's request takes the next free slot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

pub struct FairSlots {
    total: usize,
    state: Mutex<State>,
    freed: Notify,
}

/// Counts by tenant name (the config's, not a client's: foldhash, not SipHash, for three
/// updates a request).
type ByTenant = HashMap<Arc<str>, usize, foldhash::fast::RandomState>;

#[derive(Default)]
struct State {
    used: usize,
    /// Slots held, by tenant.
    held: ByTenant,
    /// Requests waiting, by tenant.
    waiting: ByTenant,
}

impl State {
    /// Whether `tenant` may take a slot now.
    fn admits(&self, tenant: &str, total: usize) -> bool {
        if self.used >= total {
            return false;
        }
        let others_waiting = self.waiting.iter().any(|(t, n)| &**t != tenant && *n > 0);
        if !others_waiting {
            return true;
        }
        let active = self
            .held
            .keys()
            .chain(self.waiting.keys())
            .filter(|t| &***t != tenant)
            .collect::<std::collections::HashSet<_>>()
            .len()
            + 1;
        let share = (total / active).max(1);
        self.held.get(tenant).copied().unwrap_or(0) < share
    }

    fn count(map: &mut ByTenant, tenant: &Arc<str>, up: bool) {
        let n = map.entry(tenant.clone()).or_insert(0);
        if up {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(tenant);
            }
        }
    }
}

/// A slot, given back when dropped.
pub struct Slot {
    slots: Arc<FairSlots>,
    tenant: Arc<str>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut s) = self.slots.state.lock() {
            s.used = s.used.saturating_sub(1);
            State::count(&mut s.held, &self.tenant, false);
        }
        self.slots.freed.notify_waiters();
    }
}

/// Counts a waiting request until dropped (also when the wait is cancelled).
struct Waiting<'a> {
    slots: &'a FairSlots,
    tenant: &'a Arc<str>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.slots.state.lock() {
            State::count(&mut s.waiting, self.tenant, false);
        }
        // a tenant that stops waiting may let another one take more
        self.slots.freed.notify_waiters();
    }
}

impl FairSlots {
    pub fn new(total: usize) -> Arc<FairSlots> {
        Arc::new(FairSlots {
            total: total.max(1),
            state: Mutex::new(State::default()),
            freed: Notify::new(),
        })
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// A slot for `tenant`, waiting at most `wait`; `None` when none came in time.
    pub async fn acquire(self: &Arc<Self>, tenant: &str, wait: Duration) -> Option<Slot> {
        let tenant: Arc<str> = Arc::from(tenant);
        if let Some(slot) = self.try_take(&tenant) {
            return Some(slot);
        }
        if let Ok(mut s) = self.state.lock() {
            State::count(&mut s.waiting, &tenant, true);
        }
        let _waiting = Waiting {
            slots: self,
            tenant: &tenant,
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // registered before the check, so a slot freed in between wakes us
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(slot) = self.try_take_waiting(&tenant) {
                return Some(slot);
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return None;
            }
        }
    }

    fn try_take(self: &Arc<Self>, tenant: &Arc<str>) -> Option<Slot> {
        let mut s = self.state.lock().ok()?;
        // a newcomer does not jump ahead of its own tenant's waiting requests
        if s.waiting.get(tenant).copied().unwrap_or(0) > 0 || !s.admits(tenant, self.total) {
            return None;
        }
        Some(self.take(&mut s, tenant))
    }

    fn try_take_waiting(self: &Arc<Self>, tenant: &Arc<str>) -> Option<Slot> {
        let mut s = self.state.lock().ok()?;
        if !s.admits(tenant, self.total) {
            return None;
        }
        Some(self.take(&mut s, tenant))
    }

    fn take(self: &Arc<Self>, s: &mut State, tenant: &Arc<str>) -> Slot {
        s.used += 1;
        State::count(&mut s.held, tenant, true);
        Slot {
            slots: self.clone(),
            tenant: tenant.clone(),
        }
    }

    /// Slots in use, by tenant (for metrics and tests).
    pub fn held(&self) -> HashMap<String, usize> {
        self.state
            .lock()
            .map(|s| s.held.iter().map(|(t, n)| (t.to_string(), *n)).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lone_tenant_may_use_every_slot() {
        let slots = FairSlots::new(4);
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(slots.acquire("a", Duration::ZERO).await.unwrap());
        }
        assert!(slots
            .acquire("a", Duration::from_millis(10))
            .await
            .is_none());
        drop(held.pop());
        assert!(slots.acquire("a", Duration::ZERO).await.is_some());
    }

    /// Tenant a holds every slot and has more waiting; b's request takes the first slot a
    /// frees, and from then on a holds no more than its half.
    #[tokio::test]
    async fn a_waiting_tenant_gets_the_next_free_slot_and_then_its_share() {
        let slots = FairSlots::new(4);
        let mut a_held: Vec<Slot> = Vec::new();
        for _ in 0..4 {
            a_held.push(slots.acquire("a", Duration::ZERO).await.unwrap());
        }
        let more_a = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire("a", Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let b = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire("b", Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(a_held.pop());
        let b_slot = b.await.unwrap().expect("b got the freed slot");
        assert!(!more_a.is_finished(), "a is over its share while b waits");
        assert_eq!(slots.held().get("b"), Some(&1));
        // b stops; a's waiting request goes on
        drop(b_slot);
        let a_slot = more_a.await.unwrap();
        assert!(a_slot.is_some());
    }

    #[tokio::test]
    async fn a_cancelled_wait_is_not_counted() {
        let slots = FairSlots::new(1);
        let held = slots.acquire("a", Duration::ZERO).await.unwrap();
        assert!(slots
            .acquire("b", Duration::from_millis(10))
            .await
            .is_none());
        drop(held);
        // b no longer waits, so a alone takes the slot again at once
        assert!(slots.acquire("a", Duration::ZERO).await.is_some());
    }
}
