//! The write pipeline. Every SCIM write becomes a `Plan`: LDAP steps in an order chosen so
//! that a failure at any point can be undone, each with the step that undoes it. `Writer::run`
//! applies them in order. A step whose answer was lost (timeout, connection cut) is read back
//! to learn whether it happened, so the answer is what is true, not a guess. When a step
//! fails, the steps done are undone in reverse; an undo that fails is logged and reported in
//! the answer, never swallowed.

mod plan;

use tracing::{error, warn};

use crate::audit;
use crate::directory::budget;
use crate::directory::{Change, Directory, DirectoryError, Dn, Entry, LdapFilter};

use super::journal::{self, Event, ValuesRecord};

pub use plan::{NewPassword, Op, Plan, Step, StepKind, Undo, Values, WriteError};

use plan::said;

/// What a successful step did, for its undo.
enum Did {
    Plain,
    /// A sweep's changes, per entry: the `Values` that undo them.
    Swept(Vec<(Dn, Values)>),
}

/// The journal's record of a step done: a sweep's changes, so that recovery can undo them.
fn done_event(step: usize, did: &Did) -> Event {
    Event::Done {
        step,
        swept: match did {
            Did::Swept(changes) => changes
                .iter()
                .map(|(dn, v)| (dn.to_string(), ValuesRecord::of(v)))
                .collect(),
            Did::Plain => Vec::new(),
        },
    }
}

/// What a step changed, for the audit trail: attribute names, never values.
fn audited(op: &Op, did: &Did) -> Vec<audit::Change> {
    let change = |action, dn: &Dn, new_dn: Option<Dn>, attributes: Vec<String>| audit::Change {
        action,
        dn: dn.to_string(),
        new_dn: new_dn.map(|d| d.to_string()),
        attributes,
    };
    match (op, did) {
        (
            Op::Add {
                dn,
                attrs,
                password,
            },
            _,
        ) => vec![change(
            audit::Action::Add,
            dn,
            None,
            attrs
                .iter()
                .map(|(a, _)| a.clone())
                .chain(password.iter().map(|p| p.attr.clone()))
                .collect(),
        )],
        (Op::SetPassword { dn, new }, _) => vec![change(
            audit::Action::Modify,
            dn,
            None,
            vec![new.attr.clone()],
        )],
        (
            Op::Modify {
                dn,
                changes,
                values,
                ..
            },
            _,
        ) => {
            let mut attrs: Vec<String> = changes.iter().map(|c| c.attr().to_string()).collect();
            if let Some(v) = values.as_ref().filter(|v| !v.is_empty()) {
                attrs.push(v.attr.clone());
            }
            attrs.dedup();
            if attrs.is_empty() {
                return vec![];
            }
            vec![change(audit::Action::Modify, dn, None, attrs)]
        }
        (Op::Rename { dn, .. }, _) => {
            vec![change(audit::Action::Rename, dn, op.dn_after(), vec![])]
        }
        (Op::Delete { dn, .. }, _) => vec![change(audit::Action::Delete, dn, None, vec![])],
        (Op::Sweep { .. }, Did::Swept(groups)) => groups
            .iter()
            .map(|(dn, values)| change(audit::Action::Modify, dn, None, vec![values.attr.clone()]))
            .collect(),
        (Op::Sweep { .. }, Did::Plain) => vec![],
    }
}

/// Runs plans against a directory.
pub struct Writer<'d> {
    pub dir: &'d dyn Directory,
}

impl Writer<'_> {
    pub async fn run(&self, plan: Plan) -> Result<(), WriteError> {
        self.run_reading(plan, None).await.map(|_| ())
    }

    /// `run`; with `read = (i, attrs)`, also the entry as step `i` (an add or modify) left
    /// it, when the directory returns that with the write itself (RFC 4527 post-read): the
    /// caller reads it back only on `None`.
    pub async fn run_reading(
        &self,
        plan: Plan,
        read: Option<(usize, &[&str])>,
    ) -> Result<Option<Entry>, WriteError> {
        let plan_no = audit::plan_started();
        let journaled = journal::plan_started(&plan);
        let outcome = self.run_steps(&plan, read, plan_no, journaled).await;
        journal::note(journaled, Event::Finished);
        outcome
    }

    async fn run_steps(
        &self,
        plan: &Plan,
        read: Option<(usize, &[&str])>,
        plan_no: usize,
        journaled: Option<usize>,
    ) -> Result<Option<Entry>, WriteError> {
        let mut done: Vec<(usize, &Step, Did)> = Vec::with_capacity(plan.steps.len());
        let mut entry = None;
        for (i, step) in plan.steps.iter().enumerate() {
            let reading = read.filter(|(at, _)| *at == i).map(|(_, attrs)| attrs);
            // the plan on disk says its first step may be under way: one flush fewer
            if i > 0 {
                journal::note(journaled, Event::Sent { step: i });
            }
            match self.apply_reading(&step.op, reading).await {
                Ok((did, read)) => {
                    entry = entry.or(read);
                    audit::applied(plan_no, i, audited(&step.op, &did));
                    journal::note(journaled, done_event(i, &did));
                    done.push((i, step, did));
                }
                Err(DirectoryError::Unknown(_)) => {
                    match budget::settling(self.settle(&step.op)).await {
                        Ok(true) => {
                            audit::applied(plan_no, i, audited(&step.op, &Did::Plain));
                            journal::note(journaled, done_event(i, &Did::Plain));
                            done.push((i, step, Did::Plain));
                        }
                        Ok(false) => {
                            journal::note(journaled, Event::Failed { step: i });
                            let cause = DirectoryError::Unavailable(format!(
                                "the directory did not answer to: {}",
                                step.op
                            ));
                            return Err(self
                                .undo(plan_no, journaled, done, step.kind, cause)
                                .await);
                        }
                        Err(_) => {
                            audit::unconfirmed(step.op.to_string());
                            return Err(WriteError::Unknown {
                                step: step.kind,
                                done: done.iter().map(|(_, s, _)| s.kind).collect(),
                            });
                        }
                    }
                }
                Err(cause) => {
                    journal::note(journaled, Event::Failed { step: i });
                    return Err(self.undo(plan_no, journaled, done, step.kind, cause).await);
                }
            }
        }
        Ok(entry)
    }

    /// Undoes `done` in reverse after `step` failed with `error`.
    async fn undo(
        &self,
        plan_no: usize,
        journaled: Option<usize>,
        done: Vec<(usize, &Step, Did)>,
        step: StepKind,
        error: DirectoryError,
    ) -> WriteError {
        let mut left = Vec::new();
        let mut done = done;
        while let Some((i, s, did)) = done.pop() {
            let ops: Vec<Op> = match (&s.undo, did) {
                (Undo::Irreversible, _) => {
                    left.push(s.kind);
                    left.extend(
                        done.iter()
                            .rev()
                            .filter(|(_, d, _)| d.undo != Undo::Nothing)
                            .map(|(_, d, _)| d.kind),
                    );
                    break;
                }
                (Undo::Nothing, _) => continue,
                (Undo::Op(op), _) => vec![(**op).clone()],
                (Undo::Recorded, Did::Swept(changes)) => changes
                    .into_iter()
                    .map(|(dn, values)| Op::Modify {
                        dn,
                        changes: vec![],
                        values: Some(values),
                        assertion: None,
                    })
                    .collect(),
                (Undo::Recorded, Did::Plain) => continue,
            };
            let mut all_undone = true;
            for op in ops {
                let undone = match budget::settling(self.apply(&op)).await {
                    Ok(_) => true,
                    Err(DirectoryError::Unknown(_)) => {
                        budget::settling(self.settle(&op)).await.unwrap_or(false)
                    }
                    // putting a member back into a group deleted meanwhile: nothing to restore
                    Err(DirectoryError::NoSuchObject(_)) if op.changes_members_only() => true,
                    Err(_) => false,
                };
                if !undone {
                    error!(step = %s.kind, undo = %op, "could not undo a step of a failed write; it stays applied");
                    left.push(s.kind);
                    all_undone = false;
                    break;
                }
            }
            if all_undone {
                audit::undone(plan_no, i);
                journal::note(journaled, Event::Undone { step: i });
            }
        }
        if left.is_empty() {
            WriteError::Failed { step, error }
        } else {
            audit::partial();
            warn!(step = %step, error = %error, left = %said(&left), "a write failed and was not undone completely");
            WriteError::Partial { step, error, left }
        }
    }

    /// One operation on its own, outside a plan (recovery replays journaled steps so).
    pub async fn apply_once(&self, op: &Op) -> Result<(), DirectoryError> {
        self.apply(op).await.map(|_| ())
    }

    async fn apply(&self, op: &Op) -> Result<Did, DirectoryError> {
        self.apply_reading(op, None).await.map(|(did, _)| did)
    }

    /// `apply`; with `read`, an add or modify also returns the entry it left (post-read).
    async fn apply_reading(
        &self,
        op: &Op,
        read: Option<&[&str]>,
    ) -> Result<(Did, Option<Entry>), DirectoryError> {
        let plain = |()| Did::Plain;
        let did = match op {
            Op::Add {
                dn,
                attrs,
                password,
            } => {
                let password = password.as_ref().map(|p| &p.password);
                match read {
                    Some(read) => {
                        let entry = self.dir.add_read(dn, attrs.clone(), password, read).await?;
                        return Ok((Did::Plain, entry));
                    }
                    None => self.dir.add(dn, attrs.clone(), password).await.map(plain),
                }
            }
            Op::SetPassword { dn, new } => {
                self.dir.set_password(dn, &new.password).await.map(plain)
            }
            Op::Modify {
                dn,
                changes,
                values,
                assertion,
            } => {
                let entry = self
                    .modify(dn, changes, values.as_ref(), assertion.as_ref(), read)
                    .await?;
                return Ok((Did::Plain, entry));
            }
            Op::Rename {
                dn,
                rdn,
                parent,
                assertion,
            } => self
                .dir
                .rename_if(dn, rdn, parent.as_ref(), assertion.as_ref())
                .await
                .map(plain),
            Op::Delete { dn, assertion } => {
                self.dir.delete_if(dn, assertion.as_ref()).await.map(plain)
            }
            Op::Sweep {
                base,
                class,
                attr,
                members,
                to,
            } => self.sweep(base, class, attr, members, to.as_ref()).await,
        }?;
        Ok((did, None))
    }

    /// One modify of `changes` and `values`. A value add that is already there, or a delete
    /// of one that is not, is dropped after a compare and the modify retried: permissive
    /// modify covers adds on OpenLDAP, and Samba honours it for neither.
    async fn modify(
        &self,
        dn: &Dn,
        changes: &[Change],
        values: Option<&Values>,
        assertion: Option<&LdapFilter>,
        read: Option<&[&str]>,
    ) -> Result<Option<Entry>, DirectoryError> {
        let empty = Values::default();
        let values = values.unwrap_or(&empty);
        let mut adds = values.adds.clone();
        let mut deletes = values.deletes.clone();
        let text = |dns: &[Dn]| dns.iter().map(|d| d.to_string()).collect::<Vec<_>>();
        for attempt in 0..3 {
            let mut all = changes.to_vec();
            if !adds.is_empty() {
                all.push(Change::Add(values.attr.as_str().into(), text(&adds)));
            }
            if !deletes.is_empty() {
                all.push(Change::Delete(values.attr.as_str().into(), text(&deletes)));
            }
            if all.is_empty() {
                return Ok(None);
            }
            let done = match read {
                Some(read) => self.dir.modify_read(dn, &all, assertion, read).await,
                None => self.dir.modify_if(dn, &all, assertion).await.map(|()| None),
            };
            match done {
                Ok(entry) => return Ok(entry),
                Err(DirectoryError::NoSuchValue(_)) if !deletes.is_empty() && attempt < 2 => {
                    let mut present = Vec::new();
                    for d in deletes {
                        // a value this same change adds is deleted after it
                        if adds.contains(&d) || self.dir.contains(dn, &values.attr, &d).await? {
                            present.push(d);
                        }
                    }
                    deletes = present;
                }
                Err(DirectoryError::AlreadyExists(_)) if !adds.is_empty() && attempt < 2 => {
                    let mut missing = Vec::new();
                    for a in adds {
                        if !self.dir.contains(dn, &values.attr, &a).await? {
                            missing.push(a);
                        }
                    }
                    adds = missing;
                }
                Err(e) => return Err(e),
            }
        }
        Err(DirectoryError::Unavailable(
            "the entry's values kept changing during the update".into(),
        ))
    }

    async fn sweep(
        &self,
        base: &Dn,
        class: &LdapFilter,
        attr: &str,
        members: &[Dn],
        to: Option<&Dn>,
    ) -> Result<Did, DirectoryError> {
        let listing = LdapFilter::or(
            members
                .iter()
                .map(|m| LdapFilter::eq(attr, m.to_string()))
                .collect(),
        );
        let filter = LdapFilter::and(vec![class.clone(), listing]);
        let (holders, _) = self.dir.search(base, &filter, &[attr], 0).await?;
        let mut undo = Vec::new();
        for holder in holders {
            let listed: Vec<Dn> = holder.values(attr).iter().map(Dn::new).collect();
            let change = Values {
                attr: attr.to_owned(),
                adds: to
                    .filter(|t| !listed.contains(t))
                    .cloned()
                    .into_iter()
                    .collect(),
                deletes: listed.into_iter().filter(|v| members.contains(v)).collect(),
            };
            if change.is_empty() {
                continue;
            }
            match self
                .modify(&holder.dn, &[], Some(&change), None, None)
                .await
            {
                Ok(_) => undo.push((holder.dn.clone(), change.inverse())),
                // the group was deleted meanwhile: the member is out of it already
                Err(DirectoryError::NoSuchObject(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Did::Swept(undo))
    }

    /// Reads the directory to learn whether `op`, whose answer was lost, happened: `Ok(true)`
    /// it did, `Ok(false)` it did not, an error when the directory cannot tell.
    pub async fn settle(&self, op: &Op) -> Result<bool, DirectoryError> {
        match op {
            // the password cannot be read back: set once more when the entry is there
            Op::Add {
                dn,
                password: Some(new),
                ..
            } => match self.dir.read(dn, &["objectClass"]).await? {
                Some(_) => self
                    .dir
                    .set_password(dn, &new.password)
                    .await
                    .map(|()| true),
                None => Ok(false),
            },
            Op::Add { dn, .. } => Ok(self.dir.read(dn, &["objectClass"]).await?.is_some()),
            // setting a password again is harmless, and the only way to know it holds
            Op::SetPassword { dn, new } => self
                .dir
                .set_password(dn, &new.password)
                .await
                .map(|()| true),
            Op::Delete { dn, .. } => Ok(self.dir.read(dn, &["objectClass"]).await?.is_none()),
            Op::Rename { dn, .. } => {
                let Some(to) = op.dn_after() else {
                    return Err(DirectoryError::Unknown(format!("where {dn} was moved")));
                };
                if self.dir.read(&to, &["objectClass"]).await?.is_some() {
                    Ok(true)
                } else if self.dir.read(dn, &["objectClass"]).await?.is_some() {
                    Ok(false)
                } else {
                    Err(DirectoryError::Unknown(format!(
                        "neither {dn} nor {to} exists"
                    )))
                }
            }
            Op::Modify {
                dn,
                changes,
                values,
                ..
            } => {
                // a modify may name an attribute twice (a bit's delete and add)
                let attrs = crate::directory::each_attribute_once(
                    changes
                        .iter()
                        .map(|c| c.attr().as_str())
                        .chain(values.iter().map(|v| v.attr.as_str())),
                );
                let Some(e) = self.dir.read(dn, &attrs).await? else {
                    return Ok(false);
                };
                let holds: Vec<Option<bool>> = changes
                    .iter()
                    .map(|c| change_holds(&e, c))
                    .chain(values.iter().map(|v| Some(values_hold(&e, v))))
                    .collect();
                if holds.iter().all(|h| *h == Some(true)) {
                    Ok(true)
                } else if holds.iter().all(|h| *h == Some(false)) {
                    Ok(false)
                } else {
                    Err(DirectoryError::Unknown(format!(
                        "{dn} shows only part of the change, or values that cannot be read back"
                    )))
                }
            }
            // searches and idempotent modifies: run again
            Op::Sweep { .. } => Ok(self.apply(op).await.is_ok()),
        }
    }
}

/// The changes that undo `changes` made to `before` (read just before them): replaced
/// attributes get their old values back, added values are deleted and deleted ones added.
pub fn restore(before: &Entry, changes: &[Change]) -> Vec<Change> {
    changes
        .iter()
        .rev()
        .map(|c| match c {
            Change::Replace(a, _) => Change::Replace(a.clone(), before.values(a).to_vec()),
            Change::Add(a, v) => Change::Delete(a.clone(), v.clone()),
            Change::Delete(a, v) if v.is_empty() => {
                Change::Replace(a.clone(), before.values(a).to_vec())
            }
            Change::Delete(a, v) => Change::Add(a.clone(), v.clone()),
        })
        .collect()
}

/// A modify of `e` (`changes`, and member `values` when given) carrying `assertion`, undone
/// by restoring what `e` held and taking the values back.
pub fn modify_step(
    kind: StepKind,
    e: &Entry,
    changes: Vec<Change>,
    values: Option<Values>,
    assertion: Option<LdapFilter>,
) -> Step {
    let undo = Op::Modify {
        dn: e.dn.clone(),
        changes: restore(e, &changes),
        values: values.as_ref().map(Values::inverse),
        assertion: None,
    };
    let op = Op::Modify {
        dn: e.dn.clone(),
        changes,
        values,
        assertion,
    };
    Step::new(kind, op, Undo::by(undo))
}

/// A rename of `e` to `rdn`, under `parent` when it moves (so its DN becomes `new_dn`), carrying
/// `assertion`, undone by renaming it back.
pub fn rename_step(
    e: &Entry,
    rdn: String,
    new_dn: &Dn,
    parent: Option<Dn>,
    assertion: Option<LdapFilter>,
) -> Step {
    let (old_rdn, old_parent) = crate::directory::filter::split_first_rdn(&e.dn);
    let undo = Op::Rename {
        dn: new_dn.clone(),
        rdn: old_rdn,
        parent: parent.as_ref().map(|_| Dn::new(old_parent)),
        assertion: None,
    };
    let op = Op::Rename {
        dn: e.dn.clone(),
        rdn,
        parent,
        assertion,
    };
    Step::new(StepKind::Rename, op, Undo::by(undo))
}

/// Whether `e` shows the change; `None` for write-only attributes (passwords).
fn change_holds(e: &Entry, c: &Change) -> Option<bool> {
    if *c.attr() == "unicodePwd" || *c.attr() == "userPassword" {
        return None;
    }
    let has = |v: &String| e.values(c.attr()).iter().any(|x| x == v);
    Some(match c {
        Change::Replace(a, vals) => {
            let now = e.values(a);
            now.len() == vals.len() && vals.iter().all(has)
        }
        Change::Add(_, vals) => vals.iter().all(has),
        Change::Delete(a, vals) if vals.is_empty() => e.values(a).is_empty(),
        Change::Delete(_, vals) => !vals.iter().any(has),
    })
}

fn values_hold(e: &Entry, v: &Values) -> bool {
    let listed: Vec<Dn> = e.values(&v.attr).iter().map(Dn::new).collect();
    v.adds.iter().all(|a| listed.contains(a)) && !v.deletes.iter().any(|d| listed.contains(d))
}

#[cfg(test)]
mod tests;
