//! `scim2ldap token`: tokens in the store (create, list, rotate, revoke), and printing a token
//! with the config lines that hold its hash. Secrets are printed once and never logged.

use std::process::ExitCode;

use clap::Subcommand;

use scim2ldap::auth;
use scim2ldap::config;

use crate::{config_failure, ConfigArg};

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a named token for a tenant in the token store; prints it once. A running
    /// server accepts it within two seconds, no restart.
    Create {
        #[arg(long)]
        tenant: String,
        /// A name that says who holds it, e.g. entra-prod.
        #[arg(long)]
        name: String,
        /// 90d, 2027-01-31 (through that day, UTC), an RFC 3339 time, or never.
        #[arg(long, default_value = "365d")]
        expires: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List the tokens in the store (never their secrets): tenant, name, prefix, expiry, last use.
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Give a token a new secret; the old one keeps working for --overlap (0: stops now).
    Rotate {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// How long the old secret stays valid: 24h, 7d, 0.
        #[arg(long, default_value = "24h")]
        overlap: String,
        #[arg(long, default_value = "365d")]
        expires: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Revoke a token: a running server refuses it within two seconds.
    Revoke {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print a token and the config lines that hold its hash (for configs kept in git or
    /// configuration management instead of the token store).
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

pub(crate) fn token(cmd: TokenCommand) -> ExitCode {
    let now = time::OffsetDateTime::now_utc();
    match cmd {
        TokenCommand::Create {
            tenant,
            name,
            expires,
            config,
        } => with_store(&config, Some(&tenant), |store| {
            let expires = parse_expiry(&expires, now)?;
            let secret = store
                .create(&tenant, &name, expires, now)
                .map_err(|e| e.to_string())?;
            print_secret(&secret, &tenant, &name, expires);
            Ok(())
        }),
        TokenCommand::List { tenant, config } => with_store(&config, None, |store| {
            print_tokens(store, tenant.as_deref())
        }),
        TokenCommand::Rotate {
            tenant,
            name,
            overlap,
            expires,
            config,
        } => with_store(&config, Some(&tenant), |store| {
            let overlap = auth::store::parse_duration(&overlap)
                .ok_or_else(|| format!("--overlap \"{overlap}\" is not 24h, 7d, 30m or 0"))?;
            let expires = parse_expiry(&expires, now)?;
            let secret = store
                .rotate(&tenant, &name, overlap, expires, now)
                .map_err(|e| e.to_string())?;
            print_secret(&secret, &tenant, &name, expires);
            if overlap.is_zero() {
                println!("The old secret is refused from now on.");
            } else {
                println!(
                    "The old secret keeps working until {}.",
                    auth::store::rfc3339(now + overlap)
                );
            }
            Ok(())
        }),
        TokenCommand::Revoke {
            tenant,
            name,
            config,
        } => with_store(&config, None, |store| {
            store.revoke(&tenant, &name).map_err(|e| e.to_string())?;
            println!("Revoked {tenant}/{name}: a running server refuses it within two seconds.");
            Ok(())
        }),
        TokenCommand::New {
            tenant,
            name,
            expires_days,
        } => {
            print_config_token(&tenant, &name, expires_days, now);
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

/// `token list`: the store's tokens (of `tenant`, when given), one line each.
fn print_tokens(store: &auth::store::Store, tenant: Option<&str>) -> Result<(), String> {
    let rows = store.list().map_err(|e| e.to_string())?;
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| tenant.is_none_or(|t| t == r.tenant))
        .collect();
    if rows.is_empty() {
        println!("no tokens in {}", store.path().display());
        return Ok(());
    }
    println!(
        "{:<16} {:<20} {:<18} {:<21} {:<21} LAST USED",
        "TENANT", "NAME", "PREFIX", "CREATED", "EXPIRES"
    );
    for r in rows {
        println!(
            "{:<16} {:<20} {:<18} {:<21} {:<21} {}",
            r.tenant,
            r.name,
            r.prefix,
            r.created,
            r.expires.as_deref().unwrap_or("never"),
            r.last_used.as_deref().unwrap_or("never")
        );
    }
    Ok(())
}

/// `token new`: a token for the config file (its hash and expiry), the secret shown once.
fn print_config_token(tenant: &str, name: &str, expires_days: i64, now: time::OffsetDateTime) {
    let token = auth::new_token();
    let hash = hex::encode(auth::hash_token(&token));
    let expires = auth::store::rfc3339(now + time::Duration::days(expires_days.max(1)));
    println!("Bearer token (shown once; give it to the IdP, do not store it here):\n\n  {token}\n");
    println!("Add to the config:\n\n[tenants.{tenant}.tokens.{name}]\nsha256 = \"{hash}\"\nexpires = \"{expires}\"");
}

/// Runs a token-store command: reads the config (only what locates the store and names the
/// tenants), checks the tenant exists, reports failure on standard error.
fn with_store(
    arg: &ConfigArg,
    tenant: Option<&str>,
    run: impl FnOnce(&auth::store::Store) -> Result<(), String>,
) -> ExitCode {
    let raw = match config::load_raw(&arg.config) {
        Ok(raw) => raw,
        Err(e) => return config_failure(&arg.config, &e),
    };
    if let Some(t) = tenant {
        if let Err(code) = known_tenant(&raw, &arg.config, t) {
            return code;
        }
    }
    let store = auth::store::Store::new(&raw.server.token_store);
    match run(&store) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether the config has tenant `t`; when not, says so (exit code 2).
pub(crate) fn known_tenant(
    raw: &config::RawConfig,
    path: &std::path::Path,
    t: &str,
) -> Result<(), ExitCode> {
    if raw.tenants.contains_key(t) {
        return Ok(());
    }
    let known: Vec<&str> = raw.tenants.keys().map(String::as_str).collect();
    eprintln!(
        "{}: there is no tenant {t}; add a [tenants.{t}] section first (configured: {})",
        path.display(),
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    );
    Err(ExitCode::from(2))
}

fn parse_expiry(
    s: &str,
    now: time::OffsetDateTime,
) -> Result<Option<time::OffsetDateTime>, String> {
    match auth::store::parse_expiry(s, now) {
        Ok(Some(t)) if t <= now => Err(format!(
            "--expires: {} has already passed",
            auth::store::rfc3339(t)
        )),
        Ok(t) => Ok(t),
        Err(e) => Err(format!("--expires: {e}")),
    }
}

fn print_secret(secret: &str, tenant: &str, name: &str, expires: Option<time::OffsetDateTime>) {
    println!("Bearer token for {tenant}/{name} (shown once; give it to the IdP, it cannot be shown again):\n\n  {secret}\n");
    match expires {
        Some(e) => println!("Expires {}.", auth::store::rfc3339(e)),
        None => println!("Does not expire."),
    }
}
