//! `scim2ldap safety`: the mass-removal safety valve as the bridges sharing this token store
//! see it (`status`), and letting a tenant's held removals through (`release`).

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Subcommand;
use time::OffsetDateTime;

use scim2ldap::config;
use scim2ldap::logging::escape_controls;
use scim2ldap::safety::{self, Threshold};

use crate::{config_failure, ConfigArg};

#[derive(Subcommand)]
pub(crate) enum SafetyCommand {
    /// Each tenant's removals in the window, whether they are held (since when), and the
    /// last removals refused, over every bridge sharing the token store.
    Status {
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Let a tenant's removals through again and start a new window: running bridges take
    /// it in within two seconds. Check the IdP's scoping first.
    Release {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

pub(crate) fn safety(cmd: SafetyCommand) -> ExitCode {
    let now = OffsetDateTime::now_utc();
    let (arg, tenant) = match &cmd {
        SafetyCommand::Status { tenant, config } => (config, tenant.as_deref()),
        SafetyCommand::Release { tenant, config } => (config, Some(tenant.as_str())),
    };
    let raw = match config::load_raw(&arg.config) {
        Ok(raw) => raw,
        Err(e) => return config_failure(&arg.config, &e),
    };
    if let Some(t) = tenant {
        if let Err(code) = crate::commands::token::known_tenant(&raw, &arg.config, t) {
            return code;
        }
    }
    let thresholds = match thresholds(&raw, tenant) {
        Ok(t) => t,
        Err(e) => return config_failure(&arg.config, &e),
    };
    let store = &raw.server.token_store;
    match cmd {
        SafetyCommand::Status { .. } => {
            print_status(&safety::shared::status(store, &thresholds, now));
            ExitCode::SUCCESS
        }
        SafetyCommand::Release { tenant, .. } => match safety::shared::release(store, &tenant, now)
        {
            Ok(()) => {
                println!("Released tenant {tenant}: running bridges let its removals through within two seconds, and count them again from now.");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "cannot write the safety valve's release beside {} ({e}); may this user write that directory?",
                    store.display()
                );
                ExitCode::FAILURE
            }
        },
    }
}

/// Each tenant's threshold (of `only`, when given).
fn thresholds(
    raw: &config::RawConfig,
    only: Option<&str>,
) -> Result<BTreeMap<String, Threshold>, config::ConfigError> {
    raw.tenants
        .iter()
        .filter(|(name, _)| only.is_none_or(|o| o == name.as_str()))
        .map(|(name, t)| Ok((name.clone(), raw.safety.threshold(name, t.safety.as_ref())?)))
        .collect()
}

/// `100`, `5%`, `100 or 5%`.
fn limit_text(t: &Threshold) -> String {
    match (t.max_removals, t.percent) {
        (0, Some(p)) => format!("{p}%"),
        (n, Some(p)) => format!("{n} or {p}%"),
        (n, None) => n.to_string(),
    }
}

fn print_status(rows: &[safety::TenantStatus]) {
    if rows.is_empty() {
        println!("no tenants in the config");
        return;
    }
    let time =
        |t: Option<OffsetDateTime>| t.map_or("never".to_owned(), safety::shared::display_time);
    println!(
        "{:<16} {:<8} {:<22} {:<21} {:<8} RELEASED",
        "TENANT", "STATE", "REMOVALS IN WINDOW", "HELD SINCE", "REFUSED"
    );
    for r in rows {
        let (state, window) = if r.threshold.is_off() {
            ("off", "-".to_owned())
        } else {
            (
                if r.held_since.is_some() {
                    "HELD"
                } else {
                    "open"
                },
                format!(
                    "{}/{} in {} s",
                    r.removals,
                    limit_text(&r.threshold),
                    r.threshold.window.as_secs()
                ),
            )
        };
        println!(
            "{:<16} {:<8} {:<22} {:<21} {:<8} {}",
            r.tenant,
            state,
            window,
            if r.held_since.is_some() {
                time(r.held_since)
            } else {
                "-".to_owned()
            },
            r.refused,
            time(r.released_at)
        );
        for refused in &r.last_refused {
            println!(
                "  refused {}  id {}  userName {}",
                safety::shared::display_at(&refused.at),
                escape_controls(&refused.id),
                escape_controls(&refused.user_name)
            );
        }
        if r.held_since.is_some() {
            println!(
                "  release with: scim2ldap safety release --tenant {}",
                r.tenant
            );
        }
    }
}
