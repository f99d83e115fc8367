//! `scim2ldap serve`: the config read and checked, the journal opened, the directory greeted,
//! what a stopped bridge left settled, the listeners bound, then requests served until a
//! signal, with the background work (reloads, recovery, repairs, the watchdog) beside them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tracing::{error, info, warn};

use scim2ldap::config;
use scim2ldap::http::live::Live;
use scim2ldap::logging::LogControl;
use scim2ldap::{app, http, systemd};

pub(crate) async fn serve(path: PathBuf) -> ExitCode {
    let raw = match config::load_raw(&path) {
        Ok(raw) => raw,
        Err(e) => return crate::config_failure(&path, &e),
    };
    let format = match raw.log.checked() {
        Ok(f) => f,
        Err(e) => return crate::config_failure(&path, &e),
    };
    let log = scim2ldap::logging::init(format, &raw.log.level);
    let app = match app::build(&raw) {
        Ok(app) => app,
        Err(e) => return crate::config_failure(&path, &e),
    };
    if app.state.auth.credential_count() == 0 {
        warn!("no tenant has a token or an OAuth issuer: every request will get 401; create one with `scim2ldap token create`");
    }
    if !open_journal(&raw, &app) {
        return ExitCode::FAILURE;
    }
    greet_directory(&app).await;
    recover_at_start(&app).await;
    let Some((listener, addr)) = listen_scim(raw.server.listen).await else {
        return ExitCode::FAILURE;
    };
    let scheme = if app.state.http.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let metrics_listen = app.state.metrics_listen;
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    info!(
        workers,
        "request threads (server.worker_threads; 0 is one per CPU)"
    );
    let live = Arc::new(Live::new(app.state));
    let metrics_stop = tokio_util::sync::CancellationToken::new();
    let metrics = match metrics_listen {
        None => None,
        Some(addr) => match listen_metrics(addr, &live, &metrics_stop).await {
            Some(task) => Some(task),
            None => return ExitCode::FAILURE,
        },
    };
    // announced once every listener is bound: whoever waits for this line (an admin's
    // script, the tests) finds the metrics address already logged
    info!("listening on {scheme}://{addr}{}", http::BASE_PATH);
    // the background tasks: reloads, the systemd watchdog, journal recovery, repairs
    let background = [
        tokio::spawn(reload_on_hangup(path, live.clone(), log)),
        tokio::spawn(systemd::keep_watchdog_fed()),
        tokio::spawn(recover_periodically(live.clone())),
        tokio::spawn(repair_periodically(live.clone())),
    ];
    systemd::ready(&format!("serving on {addr}"));
    let served = http::serve_live(listener, live, async {
        shutdown_signal().await;
        systemd::stopping();
    })
    .await;
    for task in background {
        task.abort();
    }
    metrics_stop.cancel();
    if let Some(m) = metrics {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), m).await;
    }
    match served {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The SCIM listener and the address it is bound to; `None` (said on stderr) when the
/// address cannot be bound.
async fn listen_scim(listen: std::net::SocketAddr) -> Option<(tokio::net::TcpListener, String)> {
    match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => {
            let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            Some((l, addr))
        }
        Err(e) => {
            eprintln!("cannot listen on {listen} (server.listen): {e}");
            None
        }
    }
}

/// Opens the write journal for the state; false (said on stderr) when it cannot be.
fn open_journal(raw: &config::RawConfig, app: &app::App) -> bool {
    match scim2ldap::service::journal::Journal::open(&raw.server.journal_dir) {
        Ok(journal) => {
            let _ = app.state.journal.set(Arc::new(journal));
            true
        }
        Err(e) => {
            eprintln!(
                "cannot open the write journal {} (server.journal_dir): {e}; make the directory writable by the service's user, or point server.journal_dir at one that is",
                raw.server.journal_dir.display()
            );
            false
        }
    }
}

/// Finds the directory servers and says which one requests go to; a directory not there
/// yet is a warning (requests get 503 until it is), not a reason to stop.
async fn greet_directory(app: &app::App) {
    if let Err(e) = app.directory.check_servers().await {
        warn!(error = %e, "cannot find the directory servers at start; requests will get 503 until they are found");
    }
    log_estate(&app.directory.estate());
    if let Err(e) = app.directory.ping().await {
        warn!(error = %e, "directory not reachable at start; requests will get 503 until it is");
    }
}

/// Settles what a stopped bridge left unfinished before new requests can touch it, waiting
/// at most `RECOVERY_AT_START` (the rest goes on while serving).
async fn recover_at_start(app: &app::App) {
    let state = app.state.clone();
    let mut recovery = tokio::spawn(async move {
        let s = app::recover(&state).await;
        log_recovered(&s);
        s
    });
    match tokio::time::timeout(RECOVERY_AT_START, &mut recovery).await {
        // what a crash before the journal, or an overlay, left is swept in the background
        Ok(Ok(s)) => spawn_repairs(app.state.clone(), s.tenants),
        Ok(Err(_)) => {}
        Err(_) => warn!("recovering the write journal is taking long; it goes on while serving"),
    }
}

/// Serves `/metrics` on its own listener until `stop`; `None` (said on stderr) when the
/// address cannot be bound.
async fn listen_metrics(
    addr: std::net::SocketAddr,
    live: &Arc<Live>,
    stop: &tokio_util::sync::CancellationToken,
) -> Option<tokio::task::JoinHandle<std::io::Result<()>>> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => {
            let bound = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            info!("metrics on http://{bound}/metrics");
            let stop = stop.clone();
            Some(tokio::spawn(http::serve_metrics(
                l,
                live.clone(),
                async move { stop.cancelled().await },
            )))
        }
        Err(e) => {
            eprintln!("cannot listen on {addr} (metrics.listen): {e}");
            None
        }
    }
}

/// One line naming the directory server requests go to and the ones down.
fn log_estate(estate: &scim2ldap::directory::EstateStatus) {
    let down: Vec<&str> = estate.down().map(|s| s.url.as_str()).collect();
    match estate.current() {
        Some(c) => info!(
            current = %c.url,
            servers = estate.servers.len(),
            down = ?down,
            "directory servers checked"
        ),
        None => warn!("no directory server is known"),
    }
}

/// How long the start waits for the write journal's recovery before it listens.
const RECOVERY_AT_START: std::time::Duration = std::time::Duration::from_secs(10);

/// Recovery passes while serving: plans deferred (the directory was down) and those of
/// bridges that stopped on other hosts sharing the journal.
async fn recover_periodically(live: Arc<Live>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let state = live.current().state.clone();
        let s = app::recover(&state).await;
        log_recovered(&s);
        spawn_repairs(state, s.tenants);
    }
}

fn log_recovered(s: &scim2ldap::service::recovery::Summary) {
    if s.recovered + s.deferred > 0 {
        info!(
            recovered = s.recovered,
            deferred = s.deferred,
            "write journal recovered"
        );
    }
}

/// A repair sweep of each of `tenants`, in the background.
fn spawn_repairs(state: Arc<http::AppState>, tenants: std::collections::BTreeSet<String>) {
    if tenants.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for tenant in tenants {
            if let Err(e) = app::repair(&state, &tenant, false, None).await {
                warn!(tenant = %tenant, error = %e, "the repair sweep did not finish");
            }
        }
    });
}

/// `[repair] interval_secs`: a sweep of every tenant that often (read from the current
/// config each time, so a reload turns it on, off or changes it).
async fn repair_periodically(live: Arc<Live>) {
    loop {
        let every = live.current().state.repair.interval_secs;
        if every == 0 {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            continue;
        }
        tokio::time::sleep(std::time::Duration::from_secs(every)).await;
        let state = live.current().state.clone();
        if state.repair.interval_secs == 0 {
            continue;
        }
        for tenant in app::tenant_names(&state) {
            if let Err(e) = app::repair(&state, &tenant, false, None).await {
                warn!(tenant = %tenant, error = %e, "the repair sweep did not finish");
            }
        }
    }
}

/// SIGHUP (`systemctl reload`): reads the config again and makes it current when all of it is
/// valid; otherwise logs the key and the fix and keeps serving with the running one.
async fn reload_on_hangup(path: PathBuf, live: Arc<Live>, log: LogControl) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        warn!("cannot listen for SIGHUP: reload needs a restart");
        return;
    };
    while hangups.recv().await.is_some() {
        systemd::reloading();
        let (path, live) = (path.clone(), live.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let restart = app::reload(&path, &live)?;
            Ok::<_, config::ConfigError>((restart, live.current().state.log_level.clone()))
        })
        .await;
        match outcome {
            Ok(Ok((restart, level))) => {
                scim2ldap::metrics::metrics().reload(true);
                info!("config reloaded; requests from now on use it");
                for key in restart {
                    warn!(
                        key,
                        "this setting changed but takes effect only after a restart"
                    );
                }
                if let Err(e) = log.set_level(&level) {
                    warn!(error = %e, "log.level not applied");
                }
            }
            Ok(Err(e)) => {
                scim2ldap::metrics::metrics().reload(false);
                error!(
                    key = %e.key,
                    problem = %e.problem,
                    fix = %e.fix,
                    "the new config was refused; still serving with the previous one"
                )
            }
            Err(_) => error!("the reload failed unexpectedly; still serving with the previous one"),
        }
        systemd::ready("serving");
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    info!("shutting down");
}
