//! The `scim2ldap` command: serve, check a config, create tokens.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use scim2ldap::app;
use scim2ldap::config::{self, DEFAULT_CONFIG_PATH};
use scim2ldap::logging::LogFormat;

/// The binary's own modules, beside the library's (`src/commands/`).
mod commands {
    pub(crate) mod init;
    pub(crate) mod safety;
    pub(crate) mod serve;
    pub(crate) mod token;
}

use commands::safety::{safety, SafetyCommand};
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
    /// Write a first config for a directory: reads its root DSE and schema, finds the
    /// containers, fits the mapping, runs check-config.
    Init(commands::init::InitArgs),
    /// The mass-removal safety valve: see which tenants' removals are held, release them.
    Safety {
        #[command(subcommand)]
        command: SafetyCommand,
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
        Command::Serve { config } => {
            let workers = serve_workers(&config.config);
            run_on(workers, commands::serve::serve(config.config))
        }
        Command::CheckConfig { config } => run_async(check_config(config.config)),
        Command::Repair {
            config,
            tenant,
            dry_run,
            searches_per_second,
        } => run_async(repair(config.config, tenant, dry_run, searches_per_second)),
        Command::Token { command } => token(command),
        Command::Safety { command } => safety(command),
        Command::Init(args) => run_async(commands::init::init(args)),
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
    run_on(None, fut)
}

/// `server.worker_threads` of the config `serve` is about to load; a config that cannot be
/// read gets the default here, and `serve` reports what is wrong with it.
fn serve_workers(path: &std::path::Path) -> Option<usize> {
    config::load_raw(path)
        .ok()
        .and_then(|raw| raw.server.workers().ok().flatten())
}

/// Runs `fut` on a runtime of `workers` threads (`None`: one per CPU).
fn run_on(workers: Option<usize>, fut: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    match builder.enable_all().build() {
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
