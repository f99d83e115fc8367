//! The safety valve's files beside the token store, so that bridges sharing the store share
//! the valve and `scim2ldap safety` sees it:
//! - `safety.json`: the releases, written by the CLI (under a lock, atomically);
//! - `safety.host.<host>.json`: what each bridge counted (its removals in the window, when it
//!   began holding, what it refused), written by that bridge alone, so no two writers share
//!   a file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracing::warn;

use super::{TenantValve, Threshold};
use crate::state_files::{self, read_no_follow, write_atomically};

const RELEASES: &str = "safety.json";
const HOST_PREFIX: &str = "safety.host.";

/// A removal the valve refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// RFC 3339.
    pub at: String,
    pub id: String,
    #[serde(rename = "userName")]
    pub user_name: String,
}

/// `safety.json`: when each tenant was last released (RFC 3339).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Releases {
    #[serde(default)]
    released: BTreeMap<String, String>,
}

/// `safety.host.<host>.json`: one bridge's count, by tenant.
#[derive(Debug, Default, Serialize, Deserialize)]
struct HostFile {
    #[serde(default)]
    tenants: BTreeMap<String, HostTenant>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(super) struct HostTenant {
    #[serde(default)]
    removals: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    held_since: Option<String>,
    #[serde(default)]
    refused: u64,
    #[serde(default)]
    last_refused: Vec<Refusal>,
}

/// What the other bridges counted for one tenant.
#[derive(Debug, Default, Clone)]
pub(super) struct Counted {
    pub removals: Vec<OffsetDateTime>,
    pub held_since: Option<OffsetDateTime>,
}

/// A time as the files keep it (to the nanosecond, so that a release and a removal in the
/// same second stay ordered).
pub(super) fn timestamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A time for the admin: to the second.
pub fn display_time(t: OffsetDateTime) -> String {
    crate::auth::store::rfc3339(t)
}

/// A time from the files, for the admin: to the second.
pub fn display_at(t: &str) -> String {
    parse(t).map_or_else(|| t.to_owned(), display_time)
}

fn parse(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &Rfc3339).ok()
}

pub(super) fn snapshot(t: &TenantValve) -> HostTenant {
    HostTenant {
        removals: t.removals.iter().map(|r| timestamp(*r)).collect(),
        held_since: t.held_since.map(timestamp),
        refused: t.refused,
        last_refused: t.last_refused.iter().cloned().collect(),
    }
}

/// Puts back what this host's file says it counted (after a restart).
pub(super) fn restore(t: &mut TenantValve, from: HostTenant) {
    t.removals = from.removals.iter().filter_map(|r| parse(r)).collect();
    t.removals.make_contiguous().sort();
    t.held_since = from.held_since.as_deref().and_then(parse);
    t.refused = from.refused;
    t.last_refused = from.last_refused.into_iter().collect();
}

/// The files of one token store's directory.
#[derive(Debug, Clone)]
pub(super) struct Files {
    dir: PathBuf,
    releases: PathBuf,
    mine: PathBuf,
}

impl Files {
    pub fn beside(store: &Path) -> Files {
        Files::beside_as(store, &state_files::host_name())
    }

    /// As the bridge on `host` sees them.
    pub fn beside_as(store: &Path, host: &str) -> Files {
        let dir = store
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        Files {
            releases: dir.join(RELEASES),
            mine: dir.join(format!("{HOST_PREFIX}{host}.json")),
            dir,
        }
    }

    /// The last release of each tenant; none readable: none (said in the log).
    pub fn releases(&self) -> HashMap<String, OffsetDateTime> {
        read_releases(&self.releases)
            .released
            .iter()
            .filter_map(|(t, at)| Some((t.clone(), parse(at)?)))
            .collect()
    }

    /// What the other bridges' files say, by tenant.
    pub fn counted_elsewhere(&self) -> HashMap<String, Counted> {
        let mut out: HashMap<String, Counted> = HashMap::new();
        for (path, file) in host_files(&self.dir) {
            if path == self.mine {
                continue;
            }
            for (tenant, t) in file.tenants {
                let c = out.entry(tenant).or_default();
                c.removals
                    .extend(t.removals.iter().filter_map(|r| parse(r)));
                let held = t.held_since.as_deref().and_then(parse);
                c.held_since = super::lesser(c.held_since, held);
            }
        }
        out
    }

    /// What this host's file says, by tenant (a restart reads it back).
    pub fn read_mine(&self) -> BTreeMap<String, HostTenant> {
        read_no_follow(&self.mine)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<HostFile>(&bytes).ok())
            .map(|f| f.tenants)
            .unwrap_or_default()
    }

    pub fn write_mine(&self, tenants: &BTreeMap<String, HostTenant>) {
        let file = HostFile {
            tenants: tenants.clone(),
        };
        let written = serde_json::to_vec(&file)
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_atomically(&self.mine, &bytes));
        if let Err(e) = written {
            warn!(path = %self.mine.display(), error = %e, "could not write the safety valve's count; other bridges sharing the store do not see this one's removals");
        }
    }
}

fn read_releases(path: &Path) -> Releases {
    match read_no_follow(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            warn!(path = %path.display(), error = %e, "the safety valve's release file is not valid JSON; no release is taken from it");
            Releases::default()
        }),
        Err(_) => Releases::default(),
    }
}

/// Every bridge's count file in `dir`.
fn host_files(dir: &Path) -> Vec<(PathBuf, HostFile)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(HOST_PREFIX) && name.ends_with(".json")
        })
        .filter_map(|e| {
            let bytes = read_no_follow(&e.path()).ok()?;
            Some((e.path(), serde_json::from_slice(&bytes).ok()?))
        })
        .collect()
}

/// Lets `tenant`'s removals through from `now` on, and starts a new window (`safety
/// release`). Running bridges take it in within two seconds.
pub fn release(store: &Path, tenant: &str, now: OffsetDateTime) -> std::io::Result<()> {
    let files = Files::beside(store);
    let _lock = state_files::Lock::take(&files.releases)?;
    let mut releases = read_releases(&files.releases);
    releases.released.insert(tenant.to_owned(), timestamp(now));
    let mut bytes = serde_json::to_vec_pretty(&releases).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write_atomically(&files.releases, &bytes)
}

/// One tenant's valve as `safety status` shows it, over every bridge sharing the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantStatus {
    pub tenant: String,
    pub threshold: Threshold,
    /// Removals counted in the window since the last release.
    pub removals: usize,
    pub held_since: Option<OffsetDateTime>,
    pub refused: u64,
    /// Newest last.
    pub last_refused: Vec<Refusal>,
    pub released_at: Option<OffsetDateTime>,
}

/// The valve of each tenant in `thresholds`, as the files beside `store` say.
pub fn status(
    store: &Path,
    thresholds: &BTreeMap<String, Threshold>,
    now: OffsetDateTime,
) -> Vec<TenantStatus> {
    let files = Files::beside(store);
    let releases = files.releases();
    let hosts = host_files(&files.dir);
    thresholds
        .iter()
        .map(|(tenant, threshold)| {
            let released_at = releases.get(tenant).copied();
            let start = now - threshold.window;
            let cutoff = released_at.map_or(start, |r| r.max(start));
            let after_release = |t: &OffsetDateTime| released_at.is_none_or(|r| *t > r);
            let mut s = TenantStatus {
                tenant: tenant.clone(),
                threshold: *threshold,
                removals: 0,
                held_since: None,
                refused: 0,
                last_refused: Vec::new(),
                released_at,
            };
            for (_, file) in &hosts {
                let Some(t) = file.tenants.get(tenant) else {
                    continue;
                };
                s.removals += t
                    .removals
                    .iter()
                    .filter_map(|r| parse(r))
                    .filter(|r| *r > cutoff)
                    .count();
                if let Some(h) = t
                    .held_since
                    .as_deref()
                    .and_then(parse)
                    .filter(after_release)
                {
                    s.held_since = super::lesser(s.held_since, Some(h));
                    s.refused += t.refused;
                    s.last_refused.extend(t.last_refused.iter().cloned());
                }
            }
            s.last_refused
                .sort_by_key(|r| parse(&r.at).unwrap_or(OffsetDateTime::UNIX_EPOCH));
            let keep = s.last_refused.len().saturating_sub(super::KEEP_REFUSED);
            s.last_refused.drain(..keep);
            s
        })
        .collect()
}
