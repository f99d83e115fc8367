//! The audit trail: one record for every write a caller asks for, saying who (tenant and
//! credential, never the secret), what (operation, resource, the LDAP changes that stayed
//! applied, by attribute name), and how it ended. Values are left out on purpose: they are in
//! the directory, and a trail full of phone numbers and passwords would be a second copy of
//! the data to protect.
//!
//! The write pipeline notes what it applies and undoes through a task-local `Trail`; the HTTP
//! layer opens the trail around each write request and turns it into a `Record`. Records go
//! to a file (one JSON object per line; reopened when log rotation moves it) or to the log
//! as events of target `audit`.

use std::cell::RefCell;
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use futures_util::FutureExt;
use serde::Serialize;
use tracing::{error, info};

use crate::auth::Credential;

/// One LDAP change a write made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub action: Action,
    pub dn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_dn: Option<String>,
    /// Names of the attributes set or changed (never their values).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Add,
    Modify,
    Rename,
    Delete,
}

/// How a write ended, as far as the directory is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done; `changes` lists what it changed.
    Applied,
    /// Succeeded without changing anything (it was already so).
    Unchanged,
    /// Refused before the directory was changed (bad input, not found, conflict, …).
    Refused,
    /// A step failed and the steps before it were undone: the directory is as it was.
    Undone,
    /// A step was sent and the directory never said whether it happened.
    Unknown,
    /// A step failed and some of the steps before it could not be undone: `changes` stay.
    Partial,
    /// Finished or undone from the write journal after the bridge that began it stopped.
    Recovered,
    /// Made by the repair sweep, which no request asked for.
    Repaired,
    /// A removal the safety valve held: nothing was changed.
    Held,
}

/// What the write pipeline did during one request.
#[derive(Debug, Default)]
pub struct Trail {
    /// Changes applied, by the (plan, step) that made them; removed again when undone.
    applied: Vec<((usize, usize), Change)>,
    undone: bool,
    /// The step the directory never confirmed, when one was not.
    unconfirmed: Option<String>,
    partial: bool,
    /// The safety valve held the request.
    held: bool,
    /// Plans run in this request (a step index is only unique within its plan).
    plans: usize,
}

tokio::task_local! {
    static TRAIL: RefCell<Trail>;
}

/// Runs `f` with a trail open; returns its output and what the trail recorded.
///
/// (Not an `async fn`: that would hold `f` twice, and the futures it wraps are a request's.)
pub fn tracing_writes<F: Future>(f: F) -> impl Future<Output = (F::Output, Trail)> {
    TRAIL.scope(
        RefCell::new(Trail::default()),
        f.map(|out| {
            let trail = TRAIL.with(|t| std::mem::take(&mut *t.borrow_mut()));
            (out, trail)
        }),
    )
}

fn with_trail(edit: impl FnOnce(&mut Trail)) {
    // outside a write request (tests of the pipeline alone) there is no trail: nothing to note
    let _ = TRAIL.try_with(|t| edit(&mut t.borrow_mut()));
}

/// The write pipeline starts a plan; returns its number, which `applied`/`undone` take.
pub fn plan_started() -> usize {
    let mut n = 0;
    with_trail(|t| {
        t.plans += 1;
        n = t.plans;
    });
    n
}

/// Step `step` of plan `plan` made `changes`.
pub fn applied(plan: usize, step: usize, changes: Vec<Change>) {
    with_trail(|t| {
        t.applied
            .extend(changes.into_iter().map(|c| ((plan, step), c)));
    });
}

/// Step `step` of plan `plan` was undone.
pub fn undone(plan: usize, step: usize) {
    with_trail(|t| {
        t.applied.retain(|(k, _)| *k != (plan, step));
        t.undone = true;
    });
}

/// The directory never said whether `step` happened.
pub fn unconfirmed(step: String) {
    with_trail(|t| t.unconfirmed = Some(step));
}

/// The safety valve held the request's removal.
pub fn held() {
    with_trail(|t| t.held = true);
}

/// Undoing a failed write left some of it applied.
pub fn partial() {
    with_trail(|t| t.partial = true);
}

impl Trail {
    /// The outcome, given whether the request succeeded.
    pub fn outcome(&self, succeeded: bool) -> Outcome {
        if self.unconfirmed.is_some() {
            Outcome::Unknown
        } else if self.held && self.applied.is_empty() {
            Outcome::Held
        } else if self.partial {
            Outcome::Partial
        } else if succeeded && self.applied.is_empty() {
            Outcome::Unchanged
        } else if succeeded {
            Outcome::Applied
        } else if self.undone {
            Outcome::Undone
        } else if self.applied.is_empty() {
            Outcome::Refused
        } else {
            // a failure after steps that were not undone (an earlier plan of the request)
            Outcome::Partial
        }
    }

    pub fn changes(&self) -> Vec<Change> {
        self.applied.iter().map(|(_, c)| c.clone()).collect()
    }

    pub fn unconfirmed_step(&self) -> Option<&str> {
        self.unconfirmed.as_deref()
    }
}

/// A record's time: RFC 3339, UTC, to the millisecond (records of one second stay ordered).
pub fn timestamp(t: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// One audit record.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    /// RFC 3339, UTC.
    pub time: String,
    pub request_id: &'a str,
    pub tenant: &'a str,
    pub credential: &'a Credential,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// create, replace, patch, delete.
    pub operation: &'static str,
    /// User or Group.
    pub resource_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub status: u16,
    pub outcome: Outcome,
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unconfirmed: Option<&'a str>,
    /// The error detail sent to the caller, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Where records go.
pub struct Auditor {
    sink: Sink,
}

enum Sink {
    /// `explain`: nothing is written, so there is nothing to record.
    Off,
    Log,
    File {
        path: PathBuf,
        /// The open file and the (device, inode) it was opened as.
        open: Mutex<Option<(File, (u64, u64))>>,
    },
}

impl Auditor {
    /// Records to the log (target `audit`).
    pub fn to_log() -> Auditor {
        Auditor { sink: Sink::Log }
    }

    /// No records (a dry run).
    pub fn off() -> Auditor {
        Auditor { sink: Sink::Off }
    }

    /// Records appended to `path`. Opened now, so that a path the service cannot write fails
    /// at start rather than at the first write.
    pub fn to_file(path: PathBuf) -> std::io::Result<Auditor> {
        let opened = open_append(&path)?;
        Ok(Auditor {
            sink: Sink::File {
                path,
                open: Mutex::new(Some(opened)),
            },
        })
    }

    /// Writes one record. A record that cannot be written is an error in the log (the write
    /// it describes has already happened; failing the request would not undo it).
    pub fn record(&self, record: &Record<'_>) {
        // room for a record (278–614 bytes in the user and lifecycle tests), so that the
        // buffer does not grow through a string of reallocations
        let mut bytes = Vec::with_capacity(1024);
        if serde_json::to_writer(&mut bytes, record).is_err() {
            return;
        }
        let Ok(mut line) = String::from_utf8(bytes) else {
            return;
        };
        match &self.sink {
            Sink::Off => {}
            // a str field is written as it is; `%line` was formatted into a copy first
            Sink::Log => info!(target: "audit", record = line.as_str(), "write"),
            Sink::File { path, open } => {
                line.push('\n');
                let Ok(mut open) = open.lock() else { return };
                if let Err(e) = append(path, &mut open, line.as_bytes()) {
                    error!(path = %path.display(), error = %e, "could not write the audit record; it follows here");
                    line.pop();
                    error!(target: "audit", record = %line, "write");
                }
            }
        }
    }
}

fn open_append(path: &std::path::Path) -> std::io::Result<(File, (u64, u64))> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let existed = path.exists();
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)?;
    if !existed {
        // made by root (check-config, a first start by hand): give it to the owner of its
        // directory, the service's log directory, so that the service can append to it
        if let Some(dir) = path.parent().and_then(|d| std::fs::metadata(d).ok()) {
            let _ = std::os::unix::fs::fchown(&f, Some(dir.uid()), Some(dir.gid()));
        }
    }
    let m = f.metadata()?;
    Ok((f, (m.dev(), m.ino())))
}

/// Appends `bytes` in one write, first reopening the file if rotation moved or removed it.
fn append(
    path: &std::path::Path,
    open: &mut Option<(File, (u64, u64))>,
    bytes: &[u8],
) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let current = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let stale = match open {
        Some((_, id)) => current != Some(*id),
        None => true,
    };
    if stale {
        *open = Some(open_append(path)?);
    }
    match open {
        Some((f, _)) => f.write_all(bytes),
        None => Err(std::io::Error::other("audit file not open")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(dn: &str) -> Change {
        Change {
            action: Action::Modify,
            dn: dn.to_owned(),
            new_dn: None,
            attributes: vec!["mail".to_owned()],
        }
    }

    #[tokio::test]
    async fn undone_steps_leave_the_trail_and_the_outcome_says_so() {
        let ((), trail) = tracing_writes(async {
            let plan = plan_started();
            applied(plan, 0, vec![change("cn=a")]);
            applied(plan, 1, vec![change("cn=b")]);
            undone(plan, 1);
            undone(plan, 0);
        })
        .await;
        assert!(trail.changes().is_empty());
        assert_eq!(trail.outcome(false), Outcome::Undone);
    }

    #[tokio::test]
    async fn outcomes_follow_what_the_pipeline_noted() {
        let ((), t) = tracing_writes(async {}).await;
        assert_eq!(t.outcome(true), Outcome::Unchanged);
        assert_eq!(t.outcome(false), Outcome::Refused);
        let ((), t) = tracing_writes(async {
            applied(plan_started(), 0, vec![change("cn=a")]);
        })
        .await;
        assert_eq!(t.outcome(true), Outcome::Applied);
        assert_eq!(t.changes(), vec![change("cn=a")]);
        let ((), t) = tracing_writes(async {
            unconfirmed("add cn=a".to_owned());
        })
        .await;
        assert_eq!(t.outcome(false), Outcome::Unknown);
        let ((), t) = tracing_writes(async { partial() }).await;
        assert_eq!(t.outcome(false), Outcome::Partial);
    }

    #[test]
    fn timestamps_are_utc_to_the_millisecond() {
        let t = time::macros::datetime!(2026-11-25 03:04:05.678_901 +01:00);
        assert_eq!(timestamp(t), "2026-11-25T02:04:05.678Z");
    }

    #[test]
    fn the_file_is_reopened_after_rotation_moves_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let auditor = Auditor::to_file(path.clone()).unwrap();
        let cred = Credential::Token {
            name: "idp".into(),
            prefix: None,
        };
        let rec = |id: &str| Record {
            time: "2026-11-25T00:00:00Z".into(),
            request_id: "r1",
            tenant: "acme",
            credential: &cred,
            client: None,
            operation: "create",
            resource_type: "User",
            id: Some(id.to_owned()),
            status: 201,
            outcome: Outcome::Applied,
            changes: vec![],
            unconfirmed: None,
            detail: None,
        };
        auditor.record(&rec("one"));
        std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
        auditor.record(&rec("two"));
        let old = std::fs::read_to_string(dir.path().join("audit.log.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert!(old.contains("\"id\":\"one\"") && !old.contains("two"));
        assert!(new.contains("\"id\":\"two\""));
        let v: serde_json::Value = serde_json::from_str(new.trim()).unwrap();
        assert_eq!(v["credential"]["kind"], "token");
        assert_eq!(v["outcome"], "applied");
    }
}
