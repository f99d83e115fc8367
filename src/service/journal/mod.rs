//! The write journal: what a write request is doing, kept on disk while it does it, so that
//! a bridge killed mid-plan (SIGKILL, OOM, a host reboot) leaves a record of the unfinished
//! work that the next start (or another replica sharing the state directory) finishes or
//! undoes by the rules the pipeline itself uses when an answer is lost: read the directory,
//! then roll forward or back (`recover`).
//!
//! One file per plan, in `server.journal_dir`: the plan as its first line, then one line per
//! event (a step sent, done, undone; a member check still owed; a create's key). An event
//! the directory itself cannot tell (`Event::must_be_durable`) is written and flushed to
//! disk (fdatasync) before the bridge goes on; the others are held and written with it, or
//! never when the plan ends first (`PlanFile::append`). When a request's work ends its files
//! are marked free (a NUL as their first byte) and kept, locked, for the next plans: a file
//! whose name is already on disk costs a plan one data flush, where a new one cost a create,
//! a rename, a flush of the directory, and an unlink (a discard, on a disk mounted so). A
//! reused file holds its earlier plans' lines after the current one's: every line carries
//! its plan's number, and each write ends with a NUL, so that the reader stops where the
//! plan does. Nothing secret and no attribute values are written: DNs, attribute names and
//! member DNs, and the values of one kind of step, the lock of a deleted account (its
//! inactive marker and, on AD, its tombstoned names: what a DN tells already), so that a
//! delete cut short can be finished or undone. A password step is recorded as such and
//! never replayed; what recovery does with a plan it cannot replay is in `recovery`. The
//! directory is mode 0700 and each file 0600, as the token store.
//!
//! The HTTP layer opens a `scope` around each write request; the write pipeline and the
//! services note into it through the task-local functions below, as they do for the audit.

use std::cell::RefCell;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use serde::{Deserialize, Serialize};
use tracing::{error, warn};

use crate::auth::Credential;
use crate::directory::{Dn, EntryId};

use super::creates::CreateKey;
use super::write::{Plan, StepKind, Undo};

mod records;

pub use records::*;

/// Where plans are kept, and who writes them here.
pub struct Journal {
    dir: PathBuf,
    owner: Owner,
    /// Names this process's files apart from those of an earlier process with its pid.
    started: u128,
    /// Numbers files and plans.
    seq: AtomicU64,
    /// Plan files between plans: marked free and still locked (see the module's comment).
    free: Mutex<Vec<Slot>>,
}

/// A plan file this process holds (its lock taken), whether or not a plan is in it.
struct Slot {
    path: PathBuf,
    file: File,
}

/// The process that wrote a plan (for the record of its recovery). Whether it still runs is
/// told by the lock it holds on the plan's file, not by this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
}

impl Owner {
    pub fn this_process() -> Owner {
        Owner {
            host: crate::state_files::host_name(),
            pid: std::process::id(),
        }
    }
}

/// What a plan's write request was, for the record of its recovery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub request_id: String,
    pub tenant: String,
    pub credential: Credential,
    /// create, replace, patch, delete.
    pub operation: String,
    /// User or Group.
    pub resource_type: String,
    pub resource_id: Option<String>,
}

impl Journal {
    /// The journal in `dir` (made, mode 0700, when missing).
    pub fn open(dir: &Path) -> std::io::Result<Journal> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        Ok(Journal {
            dir: dir.to_owned(),
            owner: Owner::this_process(),
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
            seq: AtomicU64::new(0),
            free: Mutex::new(Vec::new()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A plan file holding `record`, on disk before it returns, and locked for as long as
    /// this process holds it: recovery takes only files no one holds (the kernel drops the
    /// lock of a process that dies, however it dies).
    /// With `flush` false, the line is left for the first flushed event to take to disk (see
    /// `flushed_before_first_step`).
    fn create(&self, mut record: PlanRecord, flush: bool) -> std::io::Result<PlanFile> {
        let slot = match self.free.lock().ok().and_then(|mut f| f.pop()) {
            Some(slot) => slot,
            None => self.new_slot()?,
        };
        let number = self.seq.fetch_add(1, Ordering::Relaxed);
        record.plan = Some(number);
        let flushing = record.steps.iter().map(StepFlush::of).collect();
        let mut file = PlanFile {
            slot,
            number,
            at: 0,
            flushing,
            held: Vec::new(),
        };
        let written = file.write_plan(&record).and_then(|()| match flush {
            true => file.slot.file.sync_data(),
            false => Ok(()),
        });
        match written {
            Ok(()) => Ok(file),
            Err(e) => {
                // what it holds now is unknown: it goes, still locked
                let _ = std::fs::remove_file(&file.slot.path);
                Err(e)
            }
        }
    }

    /// A new, free plan file, its name on disk (the directory flushed) before a plan is
    /// written to it. Were the bridge killed before that plan is flushed, the file is empty
    /// or free, and recovery removes it.
    fn new_slot(&self) -> std::io::Result<Slot> {
        use std::os::unix::fs::OpenOptionsExt;
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{}-{}-{}-{n}.plan",
            self.owner.host, self.owner.pid, self.started
        );
        let path = self.dir.join(name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .mode(0o600)
            .open(&path)?;
        let made = rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(std::io::Error::from)
            .and_then(|()| File::open(&self.dir)?.sync_all());
        match made {
            Ok(()) => Ok(Slot { path, file }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// The plan in `file` ended: its file is marked free (no flush: were the mark lost in a
    /// crash of the host, recovery would settle a finished plan again, reading each step
    /// back, as it did when the file's removal was lost) and kept for the next plan.
    fn release(&self, file: PlanFile) {
        let slot = file.slot;
        match slot.file.write_all_at(&[0], 0) {
            Ok(()) => {
                if let Ok(mut free) = self.free.lock() {
                    free.push(slot);
                }
            }
            Err(e) => {
                // removed while still locked, so that no recovery takes a finished plan
                if let Err(e) = std::fs::remove_file(&slot.path) {
                    warn!(path = %slot.path.display(), error = %e, "could not remove a finished plan from the journal");
                } else {
                    warn!(path = %slot.path.display(), error = %e, "could not mark a finished plan's file free; removed it");
                }
            }
        }
    }

    /// Removes what a process of the earlier format (a plan written to a `.partial` file,
    /// then renamed) left when killed while it wrote a plan's first line (no step of that
    /// plan was sent): the `.partial` files no one holds.
    pub fn sweep_partial(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.extension().is_some_and(|e| e == "partial") {
                // one that is held is being written now: the lock fails and it stays
                let _ = File::open(&path).and_then(|f| {
                    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
                    std::fs::remove_file(&path)
                });
            }
        }
    }

    /// Plan files in the journal, in name order.
    pub fn files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "plan"))
            .collect();
        out.sort();
        out
    }
}

/// Room for a plan's first line and for an event's, so that most are written without the
/// buffer growing: in the user and lifecycle tests, plan lines were 774–1,595 bytes (median
/// 989) and events 29–36. Not more than 1,024, the largest block malloc serves from its
/// per-thread cache (a larger one takes its slow path).
const PLAN_LINE: usize = 1024;
const EVENT_LINE: usize = 64;

struct PlanFile {
    slot: Slot,
    /// The plan's number: its lines carry it.
    number: u64,
    /// Where its next line goes.
    at: u64,
    /// Per step, what its events need of the disk besides `Event::must_be_durable`.
    flushing: Vec<StepFlush>,
    /// Events not yet written: those recovery can do without (see `append`).
    held: Vec<Event>,
}

impl PlanFile {
    /// An event that must be on disk (`must_flush`) is written, after the events held before
    /// it, in one write, and flushed. Any other (a step done that the directory can tell, the
    /// plan's end) is held: written with the next, or never when the plan ends first. The
    /// file then holds what it would after a host crash that lost those lines, whatever
    /// kills the bridge: a prefix of the plan's events that ends with its last flushed one
    /// or later, which recovery settles by reading the directory back. A plan of a create
    /// writes three lines instead of six.
    fn append(&mut self, event: &Event) -> std::io::Result<()> {
        if !self.must_flush(event) {
            self.held.push(event.clone());
            return Ok(());
        }
        let mut lines = Vec::with_capacity(EVENT_LINE * (self.held.len() + 1));
        for e in self.held.iter().chain([event]) {
            let line = EventLine {
                plan: Some(self.number),
                event: e,
            };
            serde_json::to_writer(&mut lines, &line).map_err(std::io::Error::other)?;
            lines.push(b'\n');
        }
        self.held.clear();
        self.write_at_end(lines)?;
        self.slot.file.sync_data()
    }

    /// The plan's first line.
    fn write_plan(&mut self, record: &PlanRecord) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(PLAN_LINE);
        serde_json::to_writer(&mut line, record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.write_at_end(line)
    }

    /// `lines` (each ending in a newline) after the plan's lines, followed by a NUL: an
    /// earlier plan's lines after it are not read as this one's.
    fn write_at_end(&mut self, mut lines: Vec<u8>) -> std::io::Result<()> {
        lines.push(0);
        self.slot.file.write_all_at(&lines, self.at)?;
        // the next line is written over the NUL
        self.at += lines.len() as u64 - 1;
        Ok(())
    }

    /// `Event::must_be_durable`, with two exceptions by step:
    /// - The end of an add that set a password is flushed: recovery cannot read a password
    ///   back, so an add it sees only as sent is undone (and the IdP's retry makes the
    ///   account whole), while one recorded done stays. An add without a password recovery
    ///   reads back like any step (its entry is there or not): its end is not flushed, one
    ///   flush fewer for such a create.
    /// - The start of a sweep with nothing to undo (after a delete or a move, or of a new
    ///   name's stale memberships) is not. Lost, the file says the step before it may be
    ///   under way: recovery reads that step back, finds it done, and goes forward with the
    ///   sweep, which is what it does with the sweep's start on disk (a sweep is replayed,
    ///   never read back). A delete flushes twice instead of three times.
    fn must_flush(&self, event: &Event) -> bool {
        let flushing = |step: &usize| self.flushing.get(*step).copied();
        match event {
            Event::Done { step, .. } if flushing(step) == Some(StepFlush::PasswordAdd) => true,
            Event::Sent { step } if flushing(step) == Some(StepFlush::Sweep) => false,
            _ => event.must_be_durable(),
        }
    }
}

/// What a step's events need of the disk besides `Event::must_be_durable` (`must_flush`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepFlush {
    Events,
    /// An add that sets a password.
    PasswordAdd,
    /// A sweep with nothing to undo.
    Sweep,
}

impl StepFlush {
    fn of(step: &StepRecord) -> StepFlush {
        match (&step.op, &step.undo) {
            (OpRecord::Add { password: true, .. }, _) => StepFlush::PasswordAdd,
            (OpRecord::Sweep { .. }, UndoRecord::Nothing) => StepFlush::Sweep,
            _ => StepFlush::Events,
        }
    }
}

/// A request's open journal: its plans' files, removed when the request's work ends.
struct Scope {
    journal: Arc<Journal>,
    meta: Meta,
    /// Set by a create before its plans run.
    create_key: Option<CreateKey>,
    plans: Vec<Option<PlanFile>>,
    /// Set when a file could not be written: the request goes on, and the journal says so
    /// once.
    failed: bool,
    /// Events owed by the request, written with its next plan.
    owed: Vec<Event>,
}

tokio::task_local! {
    static SCOPE: RefCell<Option<Scope>>;
}

/// Runs a write request's work with the journal open; its plan files are removed when it
/// ends (however it ends: a request whose process dies leaves them for `recover`).
pub fn scope<F: std::future::Future>(
    journal: Arc<Journal>,
    meta: Meta,
    f: F,
) -> impl std::future::Future<Output = F::Output> {
    let scope = Scope {
        journal,
        meta,
        create_key: None,
        plans: Vec::new(),
        failed: false,
        owed: Vec::new(),
    };
    // a combinator, not an `async fn`, which would hold `f` twice
    SCOPE.scope(
        RefCell::new(Some(scope)),
        f.map(|out| {
            if let Some(scope) = SCOPE.with(|s| s.borrow_mut().take()) {
                for file in scope.plans.into_iter().flatten() {
                    scope.journal.release(file);
                }
            }
            out
        }),
    )
}

fn with_scope(edit: impl FnOnce(&mut Scope)) {
    // outside a write request (explain, tests of the pipeline alone) nothing is journaled
    let _ = SCOPE.try_with(|s| {
        if let Some(scope) = s.borrow_mut().as_mut() {
            edit(scope);
        }
    });
}

fn written(scope: &mut Scope, what: std::io::Result<()>) {
    if let Err(e) = what {
        if !scope.failed {
            error!(dir = %scope.journal.dir.display(), error = %e, "the write journal cannot be written: a crash now would leave unfinished work unrecorded (server.journal_dir)");
        }
        scope.failed = true;
    }
}

/// The pipeline starts `plan`: it is recorded (as about to send its first step) before that
/// step. Returns its number in the request, which the other calls take; `None` for a plan
/// that needs no record.
pub fn plan_started(plan: &Plan) -> Option<usize> {
    let mut number = None;
    with_scope(|scope| {
        // one LDAP operation is whole or not at all, and with no create key or member check
        // owed there is nothing to finish or undo after a crash: the IdP's retry does it
        if plan.steps.len() <= 1 && scope.create_key.is_none() && scope.owed.is_empty() {
            return;
        }
        let record = PlanRecord {
            plan: None,
            owner: scope.journal.owner.clone(),
            started: crate::audit::timestamp(time::OffsetDateTime::now_utc()),
            meta: scope.meta.clone(),
            create_key: scope.create_key.map(|k| k.to_hex()),
            steps: plan
                .steps
                .iter()
                .map(|s| {
                    // a lock's values are no one's personal data (see the module's comment)
                    let keep = s.kind == StepKind::Lock;
                    StepRecord {
                        label: s.kind.as_str().to_owned(),
                        op: OpRecord::of(&s.op, keep),
                        undo: UndoRecord::of(&s.undo, keep),
                    }
                })
                .collect(),
        };
        match scope
            .journal
            .create(record, flushed_before_first_step(plan))
        {
            Ok(mut file) => {
                let owed = std::mem::take(&mut scope.owed);
                let result = owed.iter().try_for_each(|e| file.append(e));
                scope.plans.push(Some(file));
                number = Some(scope.plans.len() - 1);
                written(scope, result);
            }
            Err(e) => {
                scope.plans.push(None);
                written(scope, Err(e));
            }
        }
    });
    number
}

/// Whether a plan's first line must be on disk before its first step is sent (the line
/// says that step may be under way). Not when that step is a sweep of stale memberships of
/// a name no entry holds yet (a create's, a rename's): it has no undo and finishes nothing
/// on its own, so a host crash that loses the line leaves the sweep done and the request as
/// if it had stopped just after it, for the IdP's retry to make again. The next step's
/// `Sent` is flushed, and takes the line to disk with it. (A process that dies leaves the
/// line in the page cache, where recovery reads it: only a host crash can lose it.)
fn flushed_before_first_step(plan: &Plan) -> bool {
    !plan
        .steps
        .first()
        .is_some_and(|s| s.kind == StepKind::Stale && matches!(s.undo, Undo::Nothing))
}

/// Something happened to a plan's step (or to the plan).
pub fn note(plan: Option<usize>, event: Event) {
    let Some(plan) = plan else { return };
    with_scope(|scope| {
        let result = match scope.plans.get_mut(plan) {
            Some(Some(file)) => file.append(&event),
            _ => return,
        };
        written(scope, result);
    });
}

/// The request is the create `key`: its plans carry the key, so that recovery tells the
/// IdP's retry the id it made.
pub fn creating(key: CreateKey) {
    with_scope(|scope| scope.create_key = Some(key));
}

/// Members the request's next plan adds to `group`, to be looked up again after it: owed
/// (and kept in the journal with that plan) until the request ends.
pub fn owe_recheck(group: &Dn, members: &[(EntryId, Dn)]) {
    let event = Event::Recheck {
        group: group.to_string(),
        members: members
            .iter()
            .map(|(id, dn)| (id.to_string(), dn.to_string()))
            .collect(),
    };
    with_scope(|scope| scope.owed.push(event));
}

/// A plan file taken for recovery: locked, so that no other process (a replica sharing the
/// journal, another pass) takes it too. Dropping it lets it go.
pub struct Claimed {
    path: PathBuf,
    _file: File,
    pub record: PlanRecord,
    pub events: Vec<Event>,
}

impl Claimed {
    /// The plan at `path`, when no one holds it: `Ok(None)` while its writer (or another
    /// recovery) holds it, or when it was removed meanwhile, or when it holds no plan (a
    /// free file a stopped bridge left, or one it was killed before it wrote: removed here).
    /// Its lines are read up to the first that is cut short by the crash, or is not the
    /// plan's (an earlier plan's, in a reused file).
    pub fn take(path: &Path) -> std::io::Result<Option<Claimed>> {
        use std::io::Read;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        // removed (and perhaps another made under its name) between the open and the lock
        let same = std::fs::symlink_metadata(path)
            .map(|now| now.ino() == file.metadata().map(|m| m.ino()).unwrap_or(0))
            .unwrap_or(false);
        if !same {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let text = bytes.split(|b| *b == 0).next().unwrap_or_default();
        let mut lines = text.split(|b| *b == b'\n');
        let first = lines.next().unwrap_or_default();
        if first.is_empty() {
            // free: its plan ended, or none was written (so no step of one was sent)
            Claimed::gone(path)?;
            return Ok(None);
        }
        let record: PlanRecord = serde_json::from_slice(first).map_err(std::io::Error::other)?;
        let events = lines
            .map_while(|l| serde_json::from_slice::<EventLine>(l).ok())
            .take_while(|l| l.plan == record.plan)
            .map(|l| l.event)
            .collect();
        Ok(Some(Claimed {
            path: path.to_owned(),
            _file: file,
            record,
            events,
        }))
    }

    /// The plan is settled: its file goes (still locked, so no one takes it meanwhile).
    pub fn remove(self) -> std::io::Result<()> {
        Claimed::gone(&self.path)
    }

    fn gone(path: &Path) -> std::io::Result<()> {
        std::fs::remove_file(path)?;
        File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
    }
}

#[cfg(test)]
mod tests;
