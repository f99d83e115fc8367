//! Finishing or undoing the plans a dead bridge left in the journal, by the rules the write
//! pipeline uses when an answer is lost: a step that may have happened is read back from the
//! directory; then the plan rolls forward (the rest of its steps) or back (the steps done, in
//! reverse). Forward where it can: a request the IdP made and got no answer to is one it
//! will retry, and finishing it (a delete archived, a rename's groups following) is what it
//! asked for. Back where forward cannot go: a create whose add never happened (its values
//! are not kept), or happened with a password that may not have been set, is undone whole,
//! and the IdP's retry makes it again. What cannot be replayed or undone (attribute values
//! and passwords, which the journal never holds) is left as the crash left it (each modify
//! is atomic: the entry is as before it or after it) and logged: the IdP's retry of the
//! unanswered request, or its next sync, writes it again.

use std::sync::Arc;

use tracing::{info, warn};

use super::creates::{CreateKey, CreateReceipt, RecentCreates};
use super::groups::Groups;
use super::journal::{
    self, Event, Journal, OpRecord, PlanRecord, StepRecord, UndoRecord, ValuesRecord,
};
use super::write::{Op, Writer};
use super::{RequestCtx, ServiceError};
use crate::audit::{self, Auditor};
use crate::auth::Tenant;
use crate::directory::{Directory, DirectoryError, Dn, EntryId, LdapFilter};

/// What a recovery pass needs of the running service.
pub struct Recovery<'a> {
    pub dir: &'a dyn Directory,
    pub journal: &'a Journal,
    /// The groups' class (sweeps run over it) and the member checks owed.
    pub groups: Option<&'a Groups>,
    pub recent: &'a RecentCreates,
    pub audit: &'a Auditor,
    pub tenant: &'a (dyn Fn(&str) -> Option<Arc<Tenant>> + Sync),
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub recovered: usize,
    /// Plans that could not be finished now (the directory unavailable): tried again later.
    pub deferred: usize,
    /// The tenants whose plans were recovered (a repair sweep follows for them).
    pub tenants: std::collections::BTreeSet<String>,
}

/// How a step stands after the events the journal holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Planned,
    Sent,
    Done,
    Failed,
    Undone,
}

/// A plan read back, with what its events say.
struct Replay {
    record: PlanRecord,
    state: Vec<State>,
    swept: Vec<Vec<(String, ValuesRecord)>>,
    finished: bool,
    created: Option<CreateKey>,
    rechecks: Vec<(String, Vec<(String, String)>)>,
}

impl Replay {
    fn new(record: PlanRecord, events: Vec<Event>) -> Replay {
        let n = record.steps.len();
        let created = record.create_key.as_deref().and_then(CreateKey::from_hex);
        let mut state = vec![State::Planned; n];
        // a plan is written just before its first step is sent
        if let Some(first) = state.first_mut() {
            *first = State::Sent;
        }
        let mut r = Replay {
            record,
            state,
            swept: vec![Vec::new(); n],
            finished: false,
            created,
            rechecks: Vec::new(),
        };
        for e in events {
            let mut set = |step: usize, s: State| {
                if let Some(slot) = r.state.get_mut(step) {
                    *slot = s;
                }
            };
            match e {
                Event::Sent { step } => set(step, State::Sent),
                Event::Done { step, swept } => {
                    set(step, State::Done);
                    if let Some(slot) = r.swept.get_mut(step) {
                        *slot = swept;
                    }
                }
                Event::Failed { step } => set(step, State::Failed),
                Event::Undone { step } => set(step, State::Undone),
                Event::Finished => r.finished = true,
                Event::Recheck { group, members } => r.rechecks.push((group, members)),
            }
        }
        r
    }
}

impl Recovery<'_> {
    /// One pass over the journal: every plan no process holds (its bridge stopped, on this
    /// host or another sharing the journal) is taken, finished or undone, audited (outcome
    /// `recovered`) and removed.
    pub async fn run(&self) -> Summary {
        let mut summary = Summary::default();
        self.journal.sweep_partial();
        for path in self.journal.files() {
            let claimed = match journal::Claimed::take(&path) {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "a journal file cannot be read; left for the admin");
                    continue;
                }
            };
            let replay = Replay::new(claimed.record.clone(), claimed.events.clone());
            match self.recover(replay).await {
                Ok(()) => {
                    summary.recovered += 1;
                    summary.tenants.insert(claimed.record.meta.tenant.clone());
                    if let Err(e) = claimed.remove() {
                        warn!(path = %path.display(), error = %e, "a recovered plan could not be removed from the journal");
                    }
                }
                Err(e) => {
                    summary.deferred += 1;
                    warn!(path = %path.display(), error = %e, "an unfinished plan could not be recovered now; trying again later");
                }
            }
        }
        crate::metrics::metrics().journal_recovered(summary.recovered, summary.deferred);
        summary
    }

    async fn recover(&self, mut r: Replay) -> Result<(), DirectoryError> {
        let meta = r.record.meta.clone();
        let tenant = (self.tenant)(&meta.tenant);
        let class = self
            .groups
            .map(Groups::class_filter)
            .unwrap_or(LdapFilter::False);
        let writer = Writer { dir: self.dir };
        let mut changes: Vec<audit::Change> = Vec::new();
        if !r.finished {
            self.settle_and_replay(&mut r, &writer, &class, &mut changes)
                .await?;
        }
        // what the service owed after its plan: the check of added members, the create's id
        if let (Some(groups), Some(tenant)) = (self.groups, &tenant) {
            let ctx = RequestCtx {
                tenant: tenant.clone(),
                if_match: None,
            };
            for (group, members) in &r.rechecks {
                let group = Dn::new(group.as_str());
                // a group that is not there (its create undone, deleted since) owes nothing
                if self.dir.read(&group, &["objectClass"]).await?.is_none() {
                    continue;
                }
                let members: Vec<(EntryId, Dn)> = members
                    .iter()
                    .map(|(id, dn)| (EntryId::from(id.as_str()), Dn::new(dn.as_str())))
                    .collect();
                match groups.recheck_members(&ctx, &group, &members).await {
                    Ok(()) => {}
                    Err(ServiceError::Unavailable { detail, .. }) => {
                        return Err(DirectoryError::Unavailable(detail))
                    }
                    Err(e) => {
                        warn!(group = %group, detail = %e.detail(), "the check of members a stopped bridge added failed; left for the repair sweep");
                    }
                }
            }
        }
        if let Some(key) = r.created {
            let added = r.record.steps.iter().find_map(|s| match &s.op {
                OpRecord::Add { dn, .. } => Some(Dn::new(dn.as_str())),
                _ => None,
            });
            if let Some(dn) = added {
                if let Some(e) = self.dir.read(&dn, &["objectClass"]).await? {
                    // the IdP's retry of this create (within the window) learns its id
                    self.recent.unanswered(&CreateReceipt { key, id: e.id });
                }
            }
        }
        info!(request_id = %meta.request_id, tenant = %meta.tenant, operation = %meta.operation, "an unfinished write left by a stopped bridge was recovered");
        self.audit.record(&audit::Record {
            time: audit::timestamp(time::OffsetDateTime::now_utc()),
            request_id: &meta.request_id,
            tenant: &meta.tenant,
            credential: &meta.credential,
            client: None,
            operation: operation_name(&meta.operation),
            resource_type: if meta.resource_type == "Group" {
                "Group"
            } else {
                "User"
            },
            id: meta.resource_id.clone(),
            status: 0,
            outcome: audit::Outcome::Recovered,
            changes,
            unconfirmed: None,
            detail: Some(format!(
                "finished or undone after the bridge that began it stopped (plan of {} pid {})",
                r.record.owner.host, r.record.owner.pid
            )),
        });
        Ok(())
    }

    /// Settles the step a crash cut short, then rolls the plan forward or back.
    async fn settle_and_replay(
        &self,
        r: &mut Replay,
        writer: &Writer<'_>,
        class: &LdapFilter,
        changes: &mut Vec<audit::Change>,
    ) -> Result<(), DirectoryError> {
        // `state` and `swept` hold one entry per step (`Replay::new`)
        let steps = r.record.steps.clone();
        let Some(mut i) = r
            .state
            .iter()
            .position(|s| !matches!(s, State::Done | State::Undone))
        else {
            return Ok(());
        };
        let (Some(step), Some(&state)) = (steps.get(i), r.state.get(i)) else {
            return Ok(());
        };
        let mut forward = !(r.state.contains(&State::Undone) || state == State::Failed);
        // a step whose answer was lost: read whether it happened
        if state == State::Sent && self.happened(writer, class, &step.op).await? == Some(true) {
            if let Some(s) = r.state.get_mut(i) {
                *s = State::Done;
            }
            i += 1;
            // an add with a password may have stopped between the entry and its password
            // (AD: before the account was enabled): the password is not kept, so the entry
            // goes, and the IdP's retry makes it whole
            if matches!(step.op, OpRecord::Add { password: true, .. }) {
                forward = false;
            }
        }
        // (not sent, or the directory cannot tell: replayed forward, each step idempotent)
        let add_ahead = steps
            .iter()
            .zip(&r.state)
            .skip(i)
            .any(|(s, st)| matches!(s.op, OpRecord::Add { .. }) && *st != State::Done);
        let irreversible_done = steps
            .iter()
            .zip(&r.state)
            .take(i)
            .any(|(s, st)| *st == State::Done && s.undo == UndoRecord::Irreversible);
        if forward && add_ahead {
            forward = false;
        }
        if !forward && irreversible_done {
            forward = true;
        }
        if forward {
            replay_forward(writer, class, steps.get(i..).unwrap_or_default(), changes).await
        } else {
            undo_done(writer, class, r, &steps, i).await
        }
    }

    /// Whether a step the crash cut short happened, read from the directory as the pipeline
    /// settles a lost answer; `None` when the directory cannot tell (a password, which is
    /// never read, or an entry showing only part of a modify).
    async fn happened(
        &self,
        writer: &Writer<'_>,
        class: &LdapFilter,
        op: &OpRecord,
    ) -> Result<Option<bool>, DirectoryError> {
        let op = match op {
            OpRecord::Add { dn, .. } => {
                return Ok(Some(
                    self.dir
                        .read(&Dn::new(dn.as_str()), &["objectClass"])
                        .await?
                        .is_some(),
                ))
            }
            // idempotent: replaying it is settling it (and keeps what it changed for an undo)
            OpRecord::Sweep { .. } => return Ok(Some(false)),
            other => match other.replay(class) {
                Some(op) => op,
                None => return Ok(None),
            },
        };
        match writer.settle(&op).await {
            Ok(happened) => Ok(Some(happened)),
            Err(DirectoryError::Unknown(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// One replayed operation; an entry or group gone meanwhile is no reason to stop (what it
/// was to change is moot), a directory that does not answer is.
async fn apply(writer: &Writer<'_>, op: &Op) -> Result<(), DirectoryError> {
    match writer.apply_once(op).await {
        Ok(()) => Ok(()),
        Err(
            e @ (DirectoryError::Unavailable(_)
            | DirectoryError::Timeout
            | DirectoryError::Unknown(_)
            | DirectoryError::BindRefused { .. }),
        ) => Err(e),
        Err(e) => {
            warn!(op = %op, error = %e, "a step replayed from the journal was refused; left for the repair sweep");
            Ok(())
        }
    }
}

fn audit_of(op: &OpRecord) -> Vec<audit::Change> {
    let change = |action, dn: &str, attributes: Vec<String>| audit::Change {
        action,
        dn: dn.to_owned(),
        new_dn: None,
        attributes,
    };
    match op {
        OpRecord::Rename { dn, rdn, parent } => {
            let (_, old_parent) = crate::directory::filter::split_first_rdn(dn);
            vec![audit::Change {
                action: audit::Action::Rename,
                dn: dn.clone(),
                new_dn: Some(format!(
                    "{rdn},{}",
                    parent.as_deref().unwrap_or(&old_parent)
                )),
                attributes: Vec::new(),
            }]
        }
        OpRecord::Delete { dn } => vec![change(audit::Action::Delete, dn, Vec::new())],
        OpRecord::Modify {
            dn,
            changes,
            values,
        } => vec![change(
            audit::Action::Modify,
            dn,
            changes
                .iter()
                .map(|c| c.attr.clone())
                .chain(values.iter().map(|v| v.attr.clone()))
                .collect(),
        )],
        _ => Vec::new(),
    }
}

fn operation_name(op: &str) -> &'static str {
    match op {
        "create" => "create",
        "replace" => "replace",
        "patch" => "patch",
        "delete" => "delete",
        _ => "write",
    }
}

/// Writes the steps from the first unfinished one on.
async fn replay_forward(
    writer: &Writer<'_>,
    class: &LdapFilter,
    steps: &[StepRecord],
    changes: &mut Vec<audit::Change>,
) -> Result<(), DirectoryError> {
    for step in steps {
        match step.op.replay(class) {
            Some(op) => {
                apply(writer, &op).await?;
                changes.extend(audit_of(&step.op));
            }
            None => {
                warn!(step = %step.label, dn = step.op.dn().unwrap_or("-"), "left as the stopped bridge left it: the journal keeps no values to write again (the IdP's next sync writes them)")
            }
        }
    }
    Ok(())
}

/// Undoes the steps done before step `i`, the last first, up to an irreversible one.
async fn undo_done(
    writer: &Writer<'_>,
    class: &LdapFilter,
    r: &Replay,
    steps: &[StepRecord],
    i: usize,
) -> Result<(), DirectoryError> {
    let done = steps
        .iter()
        .zip(&r.state)
        .zip(&r.swept)
        .take(i)
        .rev()
        .filter(|((_, st), _)| **st == State::Done);
    for ((step, _), swept) in done {
        let ops: Vec<Op> = match &step.undo {
            UndoRecord::Op { op } => match op.replay(class) {
                Some(op) => vec![op],
                None => {
                    warn!(step = %step.label, "not undone: the journal keeps no values to restore");
                    continue;
                }
            },
            UndoRecord::Recorded => swept
                .iter()
                .map(|(dn, v)| Op::Modify {
                    dn: Dn::new(dn.as_str()),
                    changes: Vec::new(),
                    values: Some(v.values()),
                    assertion: None,
                })
                .collect(),
            UndoRecord::Nothing => continue,
            UndoRecord::Irreversible => break,
        };
        for op in ops {
            apply(writer, &op).await?;
        }
    }
    Ok(())
}
