//! The token store: bearer tokens an admin creates, lists, rotates and revokes with
//! `scim2ldap token …`, kept in one JSON file that holds only their SHA-256 hashes. The CLI
//! writes it atomically (a temp file renamed over it, under a lock, keeping its owner and
//! mode); a running server re-reads it when it changes. When each token was last used is kept
//! apart, one small file per host beside the store, written by the server in batches (never a
//! disk write per request, and never two writers of one file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{hash_token, new_token};
use crate::state_files::{self, read_no_follow, sibling, write_atomically};

/// The store file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoreFile {
    pub tokens: Vec<NamedToken>,
}

/// A token an admin named for one tenant (an IdP connection). After a rotation it has two
/// secrets for a while: the new one, and the old one until the overlap ends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NamedToken {
    pub tenant: String,
    pub name: String,
    /// RFC 3339.
    pub created: String,
    pub secrets: Vec<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Secret {
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// The token's first characters, to recognise it (`scim2ldap_1a2b3c`).
    pub prefix: String,
    pub created: String,
    /// RFC 3339; none: does not expire.
    #[serde(default)]
    pub expires: Option<String>,
}

/// Why a store operation failed, worded for the admin at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read the token store {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the token store {path} is not valid JSON ({source}); restore it from a backup")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write the token store {path}: {source} (does its directory exist and may this user write it? server.token_store names the file)")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tenant {tenant} already has a token named {name}: rotate it, or pick another name")]
    Exists { tenant: String, name: String },
    #[error("tenant {tenant} has no token named {name} (scim2ldap token list shows them)")]
    NotFound { tenant: String, name: String },
}

/// One line of `token list`: never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub tenant: String,
    pub name: String,
    pub prefix: String,
    pub created: String,
    pub expires: Option<String>,
    pub last_used: Option<String>,
}

/// The token store at a path, for the CLI.
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(path: impl Into<PathBuf>) -> Store {
        Store { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new token for `tenant` named `name`: returns the secret (shown once; only its hash
    /// is kept).
    pub fn create(
        &self,
        tenant: &str,
        name: &str,
        expires: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<String, StoreError> {
        self.change(|file| {
            if file
                .tokens
                .iter()
                .any(|t| t.tenant == tenant && t.name == name)
            {
                return Err(StoreError::Exists {
                    tenant: tenant.to_owned(),
                    name: name.to_owned(),
                });
            }
            let (token, secret) = new_secret(expires, now);
            file.tokens.push(NamedToken {
                tenant: tenant.to_owned(),
                name: name.to_owned(),
                created: rfc3339(now),
                secrets: vec![secret],
            });
            Ok(token)
        })
    }

    /// A new secret for the token `name`, valid at once; the secrets it had stay valid for
    /// `overlap` more (zero: they stop now), never longer than they were to.
    pub fn rotate(
        &self,
        tenant: &str,
        name: &str,
        overlap: Duration,
        expires: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<String, StoreError> {
        self.change(|file| {
            let t = find(file, tenant, name)?;
            let until = now + overlap;
            // secrets already past their end are dropped
            t.secrets.retain(|s| end_of(s).is_none_or(|e| e > now));
            for s in t.secrets.iter_mut() {
                let keep_until = end_of(s).map_or(until, |e| e.min(until));
                s.expires = Some(rfc3339(keep_until));
            }
            if overlap.is_zero() {
                t.secrets.clear();
            }
            let (token, secret) = new_secret(expires, now);
            t.secrets.insert(0, secret);
            Ok(token)
        })
    }

    /// Removes the token `name` and all its secrets: refused from the next reload on.
    pub fn revoke(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        self.change(|file| {
            let before = file.tokens.len();
            file.tokens
                .retain(|t| !(t.tenant == tenant && t.name == name));
            if file.tokens.len() == before {
                return Err(StoreError::NotFound {
                    tenant: tenant.to_owned(),
                    name: name.to_owned(),
                });
            }
            Ok(())
        })
    }

    /// Every token, newest secret first, with when any of its secrets was last used (as
    /// recorded by the servers that share this store).
    pub fn list(&self) -> Result<Vec<Listing>, StoreError> {
        let file = load(&self.path)?;
        let used = read_usage(&self.path);
        Ok(file
            .tokens
            .iter()
            .map(|t| {
                let newest = t.secrets.first();
                let last_used = t
                    .secrets
                    .iter()
                    .filter_map(|s| used.get(&s.sha256))
                    .max_by_key(|u| OffsetDateTime::parse(u, &Rfc3339).ok())
                    .cloned();
                Listing {
                    tenant: t.tenant.clone(),
                    name: t.name.clone(),
                    prefix: newest.map(|s| s.prefix.clone()).unwrap_or_default(),
                    created: t.created.clone(),
                    expires: newest.and_then(|s| s.expires.clone()),
                    last_used,
                }
            })
            .collect())
    }

    /// Read, change, write back atomically, all under the store's lock.
    fn change<T>(
        &self,
        edit: impl FnOnce(&mut StoreFile) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _lock = state_files::Lock::take(&self.path).map_err(|source| StoreError::Write {
            path: sibling(&self.path, ".lock"),
            source,
        })?;
        let mut file = load(&self.path)?;
        let out = edit(&mut file)?;
        save(&self.path, &file)?;
        Ok(out)
    }
}

fn find<'f>(
    file: &'f mut StoreFile,
    tenant: &str,
    name: &str,
) -> Result<&'f mut NamedToken, StoreError> {
    file.tokens
        .iter_mut()
        .find(|t| t.tenant == tenant && t.name == name)
        .ok_or_else(|| StoreError::NotFound {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
        })
}

fn new_secret(expires: Option<OffsetDateTime>, now: OffsetDateTime) -> (String, Secret) {
    let token = new_token();
    let secret = Secret {
        sha256: hex::encode(hash_token(&token)),
        prefix: token.chars().take("scim2ldap_".len() + 6).collect(),
        created: rfc3339(now),
        expires: expires.map(rfc3339),
    };
    (token, secret)
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn end_of(s: &Secret) -> Option<OffsetDateTime> {
    s.expires
        .as_deref()
        .and_then(|e| OffsetDateTime::parse(e, &Rfc3339).ok())
}

/// The store's contents; a missing file is an empty store. A symbolic link is refused (it
/// could point root's `token list` anywhere).
pub fn load(path: &Path) -> Result<StoreFile, StoreError> {
    match read_no_follow(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
            path: path.to_owned(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StoreFile::default()),
        Err(source) => Err(StoreError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn save(path: &Path, file: &StoreFile) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec_pretty(file).map_err(|e| StoreError::Write {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    })?;
    bytes.push(b'\n');
    write_atomically(path, &bytes).map_err(|source| StoreError::Write {
        path: path.to_owned(),
        source,
    })
}

/// This host's usage file: when each token (by hash) was last used here.
pub fn usage_path(store: &Path) -> PathBuf {
    sibling(store, &format!(".used.{}", state_files::host_name()))
}

/// Last use per token hash, merged over the usage files of every host sharing the store.
pub fn read_usage(store: &Path) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    let dir = store
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let prefix = format!(
        "{}.used.",
        store
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    );
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let Ok(bytes) = read_no_follow(&e.path()) else {
            continue;
        };
        let Ok(map) = serde_json::from_slice::<HashMap<String, String>>(&bytes) else {
            continue;
        };
        for (hash, when) in map {
            let newer = out.get(&hash).is_none_or(|old| parse(old) < parse(&when));
            if newer {
                out.insert(hash, when);
            }
        }
    }
    out
}

fn parse(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &Rfc3339).ok()
}

/// Writes this host's usage file (atomically).
pub fn write_usage(store: &Path, used: &HashMap<String, String>) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(used).map_err(std::io::Error::other)?;
    write_atomically(&usage_path(store), &bytes)
}

/// `90d`, `12h`, `30m`, `0`: a duration for `--expires` and `--overlap`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "d" => n.checked_mul(86_400)?,
        "h" => n.checked_mul(3_600)?,
        "m" => n.checked_mul(60)?,
        "s" => n,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// `--expires`: `90d` (from now), `2027-01-31` (the end of that day, UTC), an RFC 3339 time,
/// or `never`.
pub fn parse_expiry(s: &str, now: OffsetDateTime) -> Result<Option<OffsetDateTime>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    if let Some(d) = parse_duration(s) {
        return Ok(Some(now + d));
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(Some(t));
    }
    let day = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("\"{s}\" is not 90d, 2027-01-31, an RFC 3339 time or never"))?;
    Ok(Some(day.next_day().unwrap_or(day).midnight().assume_utc()))
}

#[cfg(test)]
mod tests;
