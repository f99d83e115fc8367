//! `scim2ldap init`: writes a first config for the directory it is pointed at (see
//! `scim2ldap::init`), then says what to run next.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use scim2ldap::config::DEFAULT_CONFIG_PATH;
use scim2ldap::directory::{DirectoryKind, Dn};
use scim2ldap::init::{self, Connection, Options};

#[derive(clap::Args)]
pub(crate) struct InitArgs {
    /// The directory: ldaps://dc1.example.test, ldap://host with --starttls, or ldapi://.
    #[arg(long)]
    url: String,
    /// The bridge's service account.
    #[arg(long)]
    bind_dn: String,
    /// A file holding its password (mode 0600); the config names it, never the password.
    #[arg(long)]
    bind_password_file: PathBuf,
    /// The PEM CA bundle that signed the directory's certificate (system roots when unset).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    #[arg(long)]
    starttls: bool,
    /// The naming context, when not the root DSE's default.
    #[arg(long)]
    base_dn: Option<String>,
    /// openldap or active-directory, when not detected.
    #[arg(long)]
    kind: Option<String>,
    /// The users' OU: its name (people) or DN. Asked on a terminal when not given.
    #[arg(long)]
    users_ou: Option<String>,
    #[arg(long)]
    groups_ou: Option<String>,
    /// Where deleted accounts are moved.
    #[arg(long)]
    archive_ou: Option<String>,
    /// Do not serve /Groups.
    #[arg(long)]
    no_groups: bool,
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    output: PathBuf,
    /// Replace a config that exists (kept as .bak).
    #[arg(long)]
    force: bool,
}

pub(crate) async fn init(args: InitArgs) -> ExitCode {
    let kind = match args.kind.as_deref() {
        None => None,
        Some("openldap") => Some(DirectoryKind::Openldap),
        Some("active-directory") => Some(DirectoryKind::ActiveDirectory),
        Some(other) => {
            eprintln!("--kind {other}: openldap or active-directory");
            return ExitCode::from(2);
        }
    };
    let opts = Options {
        connection: Connection {
            url: args.url,
            bind_dn: args.bind_dn,
            bind_password_file: args.bind_password_file,
            ca_file: args.ca_file,
            starttls: args.starttls,
        },
        base_dn: args.base_dn,
        kind,
        users_ou: args.users_ou,
        groups_ou: args.groups_ou,
        archive_ou: args.archive_ou,
        no_groups: args.no_groups,
        output: args.output,
        force: args.force,
    };
    let interactive = std::io::stdin().is_terminal();
    let mut ask = |what: &str, ous: &[Dn], proposed: Option<usize>| {
        interactive.then(|| prompt(what, ous, proposed)).flatten()
    };
    match init::run(&opts, &mut ask).await {
        Ok(outcome) => report(&opts, &outcome),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Lists the OUs and reads a number (empty: the proposed one).
fn prompt(what: &str, ous: &[Dn], proposed: Option<usize>) -> Option<usize> {
    if ous.is_empty() {
        return None;
    }
    println!("OUs for the {what}:");
    for (i, ou) in ous.iter().enumerate() {
        println!("  {:>3}. {ou}", i + 1);
    }
    let default = proposed
        .map(|p| format!(" [{}]", p + 1))
        .unwrap_or_default();
    loop {
        print!("Container for the {what}{default}: ");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).ok()? == 0 {
            return proposed;
        }
        match line.trim() {
            "" if proposed.is_some() => return proposed,
            n => match n.parse::<usize>() {
                Ok(k) if (1..=ous.len()).contains(&k) => return Some(k - 1),
                _ => println!("a number from 1 to {}", ous.len()),
            },
        }
    }
}

fn report(opts: &Options, outcome: &init::Outcome) -> ExitCode {
    let kind = match outcome.probe.kind {
        DirectoryKind::Openldap => "OpenLDAP",
        DirectoryKind::ActiveDirectory => "Active Directory",
    };
    println!(
        "{kind} at {}, naming context {}.",
        opts.connection.url, outcome.probe.base
    );
    for (what, dn) in init::container_lines(&outcome.choices) {
        println!("  {what:<8} {dn}");
    }
    println!("Wrote {} (commented; review it).", opts.output.display());
    if !outcome.problems.is_empty() {
        eprintln!("check-config found problems:");
        for p in &outcome.problems {
            eprintln!("  {p}");
        }
        return ExitCode::FAILURE;
    }
    let config = if opts.output.as_os_str() == DEFAULT_CONFIG_PATH {
        String::new()
    } else {
        format!(" --config {}", opts.output.display())
    };
    println!("check-config: the config is valid and the directory has everything it names.\n");
    println!("Next:");
    println!("  scim2ldap token create --tenant default --name entra-prod{config}   # give the token to the IdP");
    println!("  systemctl enable --now scim2ldap");
    ExitCode::SUCCESS
}
