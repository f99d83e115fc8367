//! The time one request may spend in the directory. Its steps (waiting for a pooled
//! connection, each LDAP operation) share one deadline; learning the outcome of a step whose
//! answer was lost, and undoing steps after a failure, may use a short reserve after it, so
//! the request still answers within its whole budget. Kept in a task-local, so that every pool
//! wait and operation a request makes is bounded without threading it through every call.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    static BUDGET: Budget;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Steps must be sent and answered before this.
    steps: Instant,
    /// Verification and compensation end by this; the request's answer follows at once.
    settle: Instant,
}

impl Budget {
    /// A budget of `total` from now, of which a reserve (a fifth, between 1 and 5 s) is kept
    /// for settling the outcome.
    pub fn new(total: Duration) -> Budget {
        let now = Instant::now();
        let reserve = (total / 5).clamp(Duration::from_secs(1), Duration::from_secs(5));
        let reserve = reserve.min(total / 2);
        Budget {
            steps: now + total.saturating_sub(reserve),
            settle: now + total,
        }
    }
}

/// Runs `f` with `budget` bounding every directory operation it makes.
///
/// (Not an `async fn`: that would hold `f` twice, and the futures it wraps are a request's.)
pub fn within<F: Future>(budget: Budget, f: F) -> impl Future<Output = F::Output> {
    BUDGET.scope(budget, f)
}

/// Runs `f` (reading back an outcome, undoing steps) on the reserve: until the settle time.
pub async fn settling<F: Future>(f: F) -> F::Output {
    match BUDGET.try_with(|b| *b) {
        Ok(b) => {
            BUDGET
                .scope(
                    Budget {
                        steps: b.settle,
                        settle: b.settle,
                    },
                    f,
                )
                .await
        }
        Err(_) => f.await,
    }
}

/// Time left for the current step; `None` outside any budget (start-up checks, the CLI).
pub fn remaining() -> Option<Duration> {
    BUDGET
        .try_with(|b| b.steps.saturating_duration_since(Instant::now()))
        .ok()
}

/// `configured` shortened to what the budget leaves.
pub fn bounded(configured: Duration) -> Duration {
    match remaining() {
        Some(left) => configured.min(left),
        None => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn steps_end_before_the_reserve_and_settling_gets_it() {
        let b = Budget::new(Duration::from_secs(10));
        within(b, async {
            let left = remaining().unwrap();
            assert!(
                left <= Duration::from_secs(8) && left > Duration::from_secs(7),
                "{left:?}"
            );
            let settle = settling(async { remaining().unwrap() }).await;
            assert!(settle > Duration::from_secs(9), "{settle:?}");
            assert_eq!(bounded(Duration::from_secs(3)), Duration::from_secs(3));
        })
        .await;
        assert_eq!(remaining(), None, "no budget outside a request");
    }
}
