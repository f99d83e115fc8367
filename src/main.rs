//! The `scim2ldap` command: serve, check a config, create tokens.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::sync::Arc;

use tracing::{error, info, warn};

use scim2ldap::config::{self, DEFAULT_CONFIG_PATH};
use scim2ldap::http::live::Live;
use scim2ldap::logging::{LogControl, LogFormat};
use scim2ldap::{app, http, systemd};

/// The binary's own modules, beside the library's (`src/commands/`).
mod commands {
    pub(crate) mod token;
}

use commands::token::{token, TokenCommand};

#[derive(Parser)]
#[command(
    name = "scim2ldap",
    version,
    about = "SCIM 2.0 server in front of OpenLDAP and Active Directory"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the SCIM API.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate the config (mapping, DNs, tokens), then bind and check the directory.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show what a SCIM request would do: the LDAP operations the current mapping turns it
    /// into (reading from the directory, writing nothing) and the answer the service would
    /// give. Passwords are masked.
    ///
    /// Example: scim2ldap explain PATCH /Users/2819c223-… patch.json
    Explain {
        #[command(flatten)]
        config: ConfigArg,
        /// The tenant to act as (needed when the config has several).
        #[arg(long)]
        tenant: Option<String>,
        /// GET, POST, PUT, PATCH or DELETE.
        method: String,
        /// e.g. /Users, /Users/ID, /Groups/ID?attributes=members (the /scim/v2 prefix is optional).
        path: String,
        /// A file with the request's JSON body, or - for standard input.
        body: Option<PathBuf>,
    },
    /// Find and fix, in one tenant's part of the directory, what breaks the invariants
    /// (group members that do not exist or are archived, deletes that stopped half-way on
    /// AD), at a bounded rate; prints each finding and what was done. Every fix is audited.
    Repair {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        tenant: String,
        /// Report only: write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Directory reads per second at most (default: [repair] searches_per_second).
        #[arg(long)]
        searches_per_second: Option<u32>,
    },
    /// Write the man pages (scim2ldap.1 and one per command) into DIR, for packaging.
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// Bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

/// `--config PATH`, or `SCIM2LDAP_CONFIG`. The token commands read only `server.token_store`
/// and the tenants from it.
#[derive(clap::Args)]
struct ConfigArg {
    #[arg(long, env = "SCIM2LDAP_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // `serve` sets up its log from the config
        Command::Serve { .. } => {}
        // its output is the explanation; only problems are logged
        Command::Explain { .. } => {
            let _ = scim2ldap::logging::init(LogFormat::Text, "warn");
        }
        _ => {
            let _ = scim2ldap::logging::init(LogFormat::Text, "info");
        }
    }
    match cli.command {
        Command::Serve { config } => run_async(serve(config.config)),
        Command::CheckConfig { config } => run_async(check_config(config.config)),
        Command::Repair {
            config,
            tenant,
            dry_run,
            searches_per_second,
        } => run_async(repair(config.config, tenant, dry_run, searches_per_second)),
        Command::Token { command } => token(command),
        Command::Man { dir } => man_pages(&dir),
        Command::Explain {
            config,
            tenant,
            method,
            path,
            body,
        } => run_async(explain(config.config, tenant, method, path, body)),
    }
}

fn run_async(fut: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads and checks the config and builds the app; on failure prints the error (key, fix).
fn load(path: &std::path::Path) -> Result<(config::RawConfig, app::App), ExitCode> {
    let raw = config::load_raw(path).map_err(|e| config_failure(path, &e))?;
    let app = app::build(&raw).map_err(|e| config_failure(path, &e))?;
    Ok((raw, app))
}

async fn serve(path: PathBuf) -> ExitCode {
    let raw = match config::load_raw(&path) {
        Ok(raw) => raw,
        Err(e) => return config_failure(&path, &e),
    };
    let format = match raw.log.checked() {
        Ok(f) => f,
        Err(e) => return config_failure(&path, &e),
    };
    let log = scim2ldap::logging::init(format, &raw.log.level);
    let app = match app::build(&raw) {
        Ok(app) => app,
        Err(e) => return config_failure(&path, &e),
    };
    if app.state.auth.credential_count() == 0 {
        warn!("no tenant has a token or an OAuth issuer: every request will get 401; create one with `scim2ldap token create`");
    }
    match scim2ldap::service::journal::Journal::open(&raw.server.journal_dir) {
        Ok(journal) => {
            let _ = app.state.journal.set(Arc::new(journal));
        }
        Err(e) => {
            eprintln!(
                "cannot open the write journal {} (server.journal_dir): {e}; make the directory writable by the service's user, or point server.journal_dir at one that is",
                raw.server.journal_dir.display()
            );
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = app.directory.check_servers().await {
        warn!(error = %e, "cannot find the directory servers at start; requests will get 503 until they are found");
    }
    log_estate(&app.directory.estate());
    if let Err(e) = app.directory.ping().await {
        warn!(error = %e, "directory not reachable at start; requests will get 503 until it is");
    }
    // what a stopped bridge left unfinished is settled before new requests can touch it
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
    let listener = match tokio::net::TcpListener::bind(raw.server.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "cannot listen on {} (server.listen): {e}",
                raw.server.listen
            );
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let scheme = if app.state.http.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let metrics_listen = app.state.metrics_listen;
    let live = Arc::new(Live::new(app.state));
    let metrics_stop = tokio_util::sync::CancellationToken::new();
    let metrics = match metrics_listen {
        None => None,
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                let bound = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
                info!("metrics on http://{bound}/metrics");
                let stop = metrics_stop.clone();
                Some(tokio::spawn(http::serve_metrics(
                    l,
                    live.clone(),
                    async move { stop.cancelled().await },
                )))
            }
            Err(e) => {
                eprintln!("cannot listen on {addr} (metrics.listen): {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    // announced once every listener is bound: whoever waits for this line (an admin's
    // script, the tests) finds the metrics address already logged
    info!("listening on {scheme}://{addr}{}", http::BASE_PATH);
    let reloader = tokio::spawn(reload_on_hangup(path, live.clone(), log));
    let watchdog = tokio::spawn(systemd::keep_watchdog_fed());
    let recoverer = tokio::spawn(recover_periodically(live.clone()));
    let repairer = tokio::spawn(repair_periodically(live.clone()));
    systemd::ready(&format!("serving on {addr}"));
    let served = http::serve_live(listener, live, async {
        shutdown_signal().await;
        systemd::stopping();
    })
    .await;
    reloader.abort();
    watchdog.abort();
    recoverer.abort();
    repairer.abort();
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

async fn explain(
    path: PathBuf,
    tenant: Option<String>,
    method: String,
    target: String,
    body: Option<PathBuf>,
) -> ExitCode {
    let raw = match config::load_raw(&path) {
        Ok(raw) => raw,
        Err(e) => return config_failure(&path, &e),
    };
    let body = match body {
        None => None,
        Some(file) => {
            let read = if file.as_os_str() == "-" {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map(|_| buf)
            } else {
                std::fs::read(&file)
            };
            match read {
                Ok(b) => Some(b),
                Err(e) => {
                    eprintln!("cannot read the body {}: {e}", file.display());
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    match scim2ldap::explain::explain(&raw, tenant.as_deref(), &method, &target, body).await {
        Ok(explained) => {
            print!("{explained}");
            ExitCode::SUCCESS
        }
        Err(scim2ldap::explain::ExplainError::Config(e)) => config_failure(&path, &e),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// The man pages: `scim2ldap.1`, then `scim2ldap-COMMAND.1` for each command and
/// `scim2ldap-token-COMMAND.1` for the token commands.
fn man_pages(dir: &std::path::Path) -> ExitCode {
    use clap::CommandFactory;
    fn write(dir: &std::path::Path, cmd: clap::Command, name: &str) -> std::io::Result<()> {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.name(name.to_owned()))
            .section("1")
            .manual("scim2ldap")
            .render(&mut page)?;
        std::fs::write(dir.join(format!("{name}.1")), page)
    }
    let top = Cli::command();
    let mut pages = vec![(top.clone(), "scim2ldap".to_owned())];
    for sub in top.get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = format!("scim2ldap-{}", sub.get_name());
        for inner in sub.get_subcommands().filter(|c| c.get_name() != "help") {
            pages.push((inner.clone(), format!("{name}-{}", inner.get_name())));
        }
        pages.push((sub.clone(), name));
    }
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        pages
            .into_iter()
            .try_for_each(|(cmd, name)| write(dir, cmd, &name))
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write the man pages to {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

fn config_failure(path: &std::path::Path, e: &config::ConfigError) -> ExitCode {
    eprintln!("{}: {e}", path.display());
    ExitCode::from(2)
}

async fn check_config(path: PathBuf) -> ExitCode {
    let (raw, app) = match load(&path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let problems = app::check_directory(&app, &raw).await;
    if problems.is_empty() {
        let servers: Vec<String> = app
            .directory
            .estate()
            .servers
            .into_iter()
            .map(|s| s.url)
            .collect();
        println!(
            "{}: OK ({} credential(s) (tokens and OAuth issuers); directory reachable at {}; schema and containers present)",
            path.display(),
            app.state.auth.credential_count(),
            servers.join(", ")
        );
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("{}: {p}", path.display());
        }
        ExitCode::from(2)
    }
}

async fn repair(
    path: PathBuf,
    tenant: String,
    dry_run: bool,
    searches_per_second: Option<u32>,
) -> ExitCode {
    let (_, app) = match load(&path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if searches_per_second == Some(0) {
        eprintln!("--searches-per-second must be at least 1");
        return ExitCode::from(2);
    }
    match app::repair(&app.state, &tenant, dry_run, searches_per_second).await {
        Ok(report) => {
            for f in &report.found {
                println!("{f}");
            }
            for f in &report.failed {
                eprintln!("not fixed: {f}");
            }
            println!(
                "tenant {tenant}: {} group(s), {} member value(s) read; {} finding(s), {}",
                report.groups,
                report.members,
                report.found.len(),
                if dry_run {
                    "nothing written (--dry-run)".to_owned()
                } else {
                    format!("{} fixed", report.fixed)
                }
            );
            if report.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
