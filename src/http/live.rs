//! The configuration a running server serves with, and its replacement on reload. Each
//! request takes the generation current when it arrives and keeps it to the end, so a reload
//! never changes the rules under a request in flight; the next request, on any connection,
//! gets the new ones. What lives as long as the process (the connection cap, the request
//! slots, the tasks the shutdown drain waits for) is carried from one generation to the next.

use std::sync::{Arc, RwLock};

use super::AppState;

/// The state built from one config, and the routers over it.
pub struct Generation {
    pub state: Arc<AppState>,
    /// The SCIM API, /healthz and /readyz.
    pub router: super::middleware::FrontDoor,
    /// `/metrics`, for its own listener (`metrics.listen`).
    pub metrics_router: super::middleware::FrontDoor,
}

impl Generation {
    pub fn new(state: Arc<AppState>) -> Generation {
        Generation {
            router: super::router(state.clone()),
            metrics_router: super::metrics_router(state.clone()),
            state,
        }
    }
}

/// The current generation.
pub struct Live {
    current: RwLock<Arc<Generation>>,
}

impl Live {
    pub fn new(state: Arc<AppState>) -> Live {
        Live {
            current: RwLock::new(Arc::new(Generation::new(state))),
        }
    }

    pub fn current(&self) -> Arc<Generation> {
        match self.current.read() {
            Ok(g) => g.clone(),
            // a writer cannot panic while holding the lock (it only swaps an Arc)
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Makes `state` current; returns the generation it replaces (requests in flight still
    /// hold it).
    pub fn replace(&self, state: Arc<AppState>) -> Arc<Generation> {
        let next = Arc::new(Generation::new(state));
        let mut current = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::replace(&mut *current, next)
    }
}
