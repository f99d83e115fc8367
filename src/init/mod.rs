//! `scim2ldap init`: from a fresh package to a first sync. It connects with the bind account
//! it is given, tells Active Directory from OpenLDAP, finds the containers (or asks, on a
//! terminal), writes a commented config whose mapping fits this directory's schema and
//! overlays, and checks it as `check-config` does. Everything it asks can be given as a flag,
//! for configuration management; it never prompts when standard input is not a terminal.

mod probe;
mod render;

use std::path::{Path, PathBuf};

use crate::config::ConfigError;
use crate::directory::DirectoryKind;
use crate::directory::Dn;

pub use probe::Probe;

/// How to reach the directory.
#[derive(Debug, Clone)]
pub struct Connection {
    pub url: String,
    pub bind_dn: String,
    pub bind_password_file: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub starttls: bool,
}

/// What `init` is told.
#[derive(Debug, Clone)]
pub struct Options {
    pub connection: Connection,
    /// The naming context, when the root DSE's is not the one to use.
    pub base_dn: Option<String>,
    /// The kind, when it should not be detected.
    pub kind: Option<DirectoryKind>,
    /// The containers: a DN, or an OU's name under the naming context (`people`).
    pub users_ou: Option<String>,
    pub groups_ou: Option<String>,
    pub archive_ou: Option<String>,
    /// Serve no `/Groups`.
    pub no_groups: bool,
    pub output: PathBuf,
    /// Replace a config that exists.
    pub force: bool,
}

/// The containers chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choices {
    pub users: String,
    pub groups: Option<String>,
    pub archive: String,
}

/// Asks the admin to pick one of `ous` for `what` (the index), proposing `proposed`; `None`
/// when nobody can be asked (not a terminal).
pub type Ask<'a> = &'a mut dyn FnMut(&str, &[Dn], Option<usize>) -> Option<usize>;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0}")]
    Options(String),
    #[error("{0}")]
    Directory(String),
    #[error("{} exists; pass --force to replace it (the old one is kept as {}.bak)", .0.display(), .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What `init` did: the config written, and what `check-config` says of it.
pub struct Outcome {
    pub probe: Probe,
    pub choices: Choices,
    pub problems: Vec<ConfigError>,
}

/// Probes, chooses, writes and checks.
pub async fn run(opts: &Options, ask: Ask<'_>) -> Result<Outcome, InitError> {
    if opts.output.exists() && !opts.force {
        return Err(InitError::Exists(opts.output.clone()));
    }
    let probe = probe::probe(&opts.connection, opts.base_dn.as_deref(), opts.kind).await?;
    let choices = choose(opts, &probe, ask)?;
    let written = crate::auth::store::rfc3339(time::OffsetDateTime::now_utc());
    let text = render::render(&probe, &opts.connection, &choices, &written);
    write(&opts.output, &text)?;
    let problems = check(&opts.output).await;
    Ok(Outcome {
        probe,
        choices,
        problems,
    })
}

/// What `check-config` finds in the config at `path`.
pub async fn check(path: &Path) -> Vec<ConfigError> {
    let raw = match crate::config::load_raw(path) {
        Ok(raw) => raw,
        Err(e) => return vec![e],
    };
    match crate::app::build(&raw) {
        Ok(app) => crate::app::check_directory(&app, &raw).await,
        Err(e) => vec![e],
    }
}

/// Names for each container, the likeliest first.
const USERS: &[&str] = &[
    "people",
    "users",
    "scim users",
    "staff",
    "employees",
    "accounts",
];
const GROUPS: &[&str] = &["groups", "scim groups"];
const ARCHIVE: &[&str] = &[
    "archive",
    "scim archive",
    "disabled",
    "former employees",
    "leavers",
];

fn choose(opts: &Options, probe: &Probe, ask: Ask<'_>) -> Result<Choices, InitError> {
    let users = pick(
        probe,
        "users",
        "--users-ou",
        opts.users_ou.as_deref(),
        USERS,
        ask,
    )?;
    let archive = pick(
        probe,
        "archive",
        "--archive-ou",
        opts.archive_ou.as_deref(),
        ARCHIVE,
        ask,
    )?;
    let groups = match opts.no_groups {
        true => None,
        false => Some(pick(
            probe,
            "groups",
            "--groups-ou",
            opts.groups_ou.as_deref(),
            GROUPS,
            ask,
        )?),
    };
    if archive.eq_ignore_ascii_case(&users)
        || groups
            .as_deref()
            .is_some_and(|g| g.eq_ignore_ascii_case(&users))
    {
        return Err(InitError::Options(
            "the users, groups and archive containers must be three different OUs".into(),
        ));
    }
    Ok(Choices {
        users,
        groups,
        archive,
    })
}

/// The container for `what`: the flag's (a DN, or an OU name found under the base), else the
/// admin's pick on a terminal, else the one OU named like `names`.
fn pick(
    probe: &Probe,
    what: &str,
    flag: &str,
    given: Option<&str>,
    names: &[&str],
    ask: Ask<'_>,
) -> Result<String, InitError> {
    if let Some(g) = given {
        return resolve(probe, g, flag);
    }
    let proposed = names.iter().find_map(|n| {
        probe
            .ous
            .iter()
            .position(|ou| rdn_value(ou).eq_ignore_ascii_case(n))
    });
    if let Some(i) = ask(what, &probe.ous, proposed) {
        if let Some(ou) = probe.ous.get(i) {
            return Ok(ou.to_string());
        }
    }
    match proposed.and_then(|i| probe.ous.get(i)) {
        Some(ou) => Ok(ou.to_string()),
        None => Err(InitError::Options(format!(
            "no OU for the {what} was found by name: pass {flag} (an OU's name or DN); the OUs under {} are: {}",
            probe.base,
            list(&probe.ous)
        ))),
    }
}

/// `people` → the OU of that name under the base; a DN → itself, when it exists.
fn resolve(probe: &Probe, given: &str, flag: &str) -> Result<String, InitError> {
    let found = if given.contains('=') {
        probe.ous.iter().find(|ou| ***ou == *Dn::new(given))
    } else {
        probe
            .ous
            .iter()
            .find(|ou| rdn_value(ou).eq_ignore_ascii_case(given))
    };
    found.map(|ou| ou.to_string()).ok_or_else(|| {
        InitError::Options(format!(
            "{flag} {given}: no such OU under {}; create it (an organizationalUnit) or pick one of: {}",
            probe.base,
            list(&probe.ous)
        ))
    })
}

fn rdn_value(dn: &Dn) -> String {
    let (rdn, _) = crate::directory::filter::split_first_rdn(dn);
    rdn.split_once('=')
        .map(|(_, v)| crate::directory::filter::unescape_dn_value(v))
        .unwrap_or_default()
}

fn list(ous: &[Dn]) -> String {
    if ous.is_empty() {
        return "none".into();
    }
    ous.iter()
        .map(|o| o.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Writes the config atomically. A config already there (with --force) is kept as `.bak`,
/// and the new one keeps its owner and mode (the package's `root:scim2ldap 0640`, which the
/// service must read); a new one is mode 0640, owned as its directory is.
fn write(path: &Path, text: &str) -> Result<(), InitError> {
    let err = |source| InitError::Write {
        path: path.to_owned(),
        source,
    };
    if path.exists() {
        let mut bak = path.as_os_str().to_owned();
        bak.push(".bak");
        std::fs::copy(path, PathBuf::from(bak)).map_err(err)?;
    } else if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    crate::state_files::write_atomically(path, text.as_bytes()).map_err(err)
}

pub use render::container_lines;
