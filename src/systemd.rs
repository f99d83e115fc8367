//! Telling systemd what the service is doing (`Type=notify`): ready once it listens,
//! reloading while it reads a new config, stopping when it drains, and a watchdog keep-alive
//! from the async runtime itself, so that a process whose workers are stuck is restarted.
//! Outside systemd (no `NOTIFY_SOCKET`) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

fn notify(states: &[NotifyState]) {
    // best effort: the service runs the same whether or not anyone listens
    let _ = sd_notify::notify(false, states);
}

pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Reloading: systemd 253 and later want the monotonic time with it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("draining requests in flight"),
    ]);
}

/// Sends watchdog keep-alives at half the unit's `WatchdogSec` for as long as the runtime
/// runs this task; returns at once when the unit has no watchdog.
pub async fn keep_watchdog_fed() {
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let mut every = tokio::time::interval(Duration::from_micros(usec / 2));
    loop {
        every.tick().await;
        notify(&[NotifyState::Watchdog]);
    }
}
