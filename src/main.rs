//! The `scim2ldap` command: serve, check a config, create tokens.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::{info, warn};

use scim2ldap::config::{self, DEFAULT_CONFIG_PATH};
use scim2ldap::{app, auth, http};

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
        #[arg(long, env = "SCIM2LDAP_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Validate the config (mapping, DNs, tokens), then bind and check the directory.
    CheckConfig {
        #[arg(long, env = "SCIM2LDAP_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token: prints it once, with the config lines that store its hash.
    New {
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long, default_value = "idp")]
        name: String,
        /// Days until the token expires.
        #[arg(long, default_value_t = 365)]
        expires_days: i64,
    },
    /// Print the SHA-256 of a token read from standard input (for scripts).
    Hash,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    scim2ldap::logging::init();
    match cli.command {
        Command::Serve { config } => run_async(serve(config)),
        Command::CheckConfig { config } => run_async(check_config(config)),
        Command::Token { command } => token(command),
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
    let (raw, app) = match load(&path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if app.state.auth.token_count() == 0 {
        warn!("no tenant has a token: every request will get 401; create one with `scim2ldap token new`");
    }
    if let Err(e) = app.directory.ping().await {
        warn!(error = %e, "directory not reachable at start; requests will get 503 until it is");
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
    info!("listening on http://{addr}{}", http::BASE_PATH);
    match http::serve(listener, app.state, shutdown_signal()).await {
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
        println!(
            "{}: OK ({} tenant token(s); directory reachable at {}; schema and containers present)",
            path.display(),
            app.state.auth.token_count(),
            raw.ldap.url
        );
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("{}: {p}", path.display());
        }
        ExitCode::from(2)
    }
}

fn token(cmd: TokenCommand) -> ExitCode {
    match cmd {
        TokenCommand::New {
            tenant,
            name,
            expires_days,
        } => {
            let token = auth::new_token();
            let hash = hex::encode(auth::hash_token(&token));
            let expires =
                time::OffsetDateTime::now_utc() + time::Duration::days(expires_days.max(1));
            let expires = expires
                .replace_nanosecond(0)
                .unwrap_or(expires)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            println!("Bearer token (shown once; give it to the IdP, do not store it here):\n\n  {token}\n");
            println!("Add to the config:\n\n[tenants.{tenant}.tokens.{name}]\nsha256 = \"{hash}\"\nexpires = \"{expires}\"");
            ExitCode::SUCCESS
        }
        TokenCommand::Hash => {
            let mut line = String::new();
            if std::io::stdin().read_line(&mut line).is_err() || line.trim().is_empty() {
                eprintln!("give the token on standard input");
                return ExitCode::FAILURE;
            }
            println!("{}", hex::encode(auth::hash_token(line.trim())));
            ExitCode::SUCCESS
        }
    }
}
