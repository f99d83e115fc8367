//! The journal's records: a plan, its steps and their operations as written to disk (DNs,
//! attribute names, member DNs; values only where a lock needs them), and the events that
//! follow; each converts from and back to the pipeline's types.

use serde::{Deserialize, Serialize};

use crate::directory::{AttrName, Change, Dn};
use crate::service::write::{Op, Undo, Values};

use super::{Meta, Owner};

/// The first line of a plan file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanRecord {
    /// Its number among the plans its process wrote, which its events carry (none in a file
    /// written before files were reused, whose lines are all its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<u64>,
    pub owner: Owner,
    /// RFC 3339.
    pub started: String,
    pub meta: Meta,
    /// For a create: its key (see `creates`), so that the IdP's retry learns the id it made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_key: Option<String>,
    pub steps: Vec<StepRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub label: String,
    pub op: OpRecord,
    pub undo: UndoRecord,
}

/// A step's LDAP operation: DNs, attribute names, member DNs, and (for a lock) values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OpRecord {
    Add {
        dn: String,
        attributes: Vec<String>,
        password: bool,
    },
    Modify {
        dn: String,
        changes: Vec<ChangeRecord>,
        values: Option<ValuesRecord>,
    },
    Rename {
        dn: String,
        rdn: String,
        parent: Option<String>,
    },
    Delete {
        dn: String,
    },
    /// A sweep of the groups (of the groups' class) under `base`.
    Sweep {
        base: String,
        attr: String,
        members: Vec<String>,
        to: Option<String>,
    },
    SetPassword {
        dn: String,
        attr: String,
    },
}

/// One change of a modify; `values` only where the step's values are kept (a lock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub kind: ChangeKind,
    pub attr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Replace,
    Add,
    Delete,
}

/// Attributes whose values never reach the journal, whatever the step.
fn is_password_attr(attr: &str) -> bool {
    ["userPassword", "unicodePwd", "clearTextPassword"]
        .iter()
        .any(|p| p.eq_ignore_ascii_case(attr))
}

impl ChangeRecord {
    pub(super) fn of(c: &Change, keep_values: bool) -> ChangeRecord {
        let (kind, attr, values) = match c {
            Change::Replace(a, v) => (ChangeKind::Replace, a, v),
            Change::Add(a, v) => (ChangeKind::Add, a, v),
            Change::Delete(a, v) => (ChangeKind::Delete, a, v),
        };
        ChangeRecord {
            kind,
            attr: attr.to_string(),
            values: (keep_values && !is_password_attr(attr)).then(|| values.clone()),
        }
    }

    /// The change again, when its values were kept.
    pub fn change(&self) -> Option<Change> {
        let (a, v) = (AttrName::from(self.attr.as_str()), self.values.clone()?);
        Some(match self.kind {
            ChangeKind::Replace => Change::Replace(a, v),
            ChangeKind::Add => Change::Add(a, v),
            ChangeKind::Delete => Change::Delete(a, v),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValuesRecord {
    pub attr: String,
    pub adds: Vec<String>,
    pub deletes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "snake_case")]
pub enum UndoRecord {
    Nothing,
    Op { op: OpRecord },
    Recorded,
    Irreversible,
}

/// One line after the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The step's request is about to leave.
    Sent {
        step: usize,
    },
    /// It happened; for a sweep, what it changed (group DN and the values that undo it).
    Done {
        step: usize,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        swept: Vec<(String, ValuesRecord)>,
    },
    /// It definitely did not happen.
    Failed {
        step: usize,
    },
    Undone {
        step: usize,
    },
    /// The plan ended (applied, undone or reported partial).
    Finished,
    /// Members a group change added, to be looked up again after it.
    Recheck {
        group: String,
        members: Vec<(String, String)>,
    },
}

/// An event as a line: with its plan's number (see `PlanRecord::plan`).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct EventLine<E = Event> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<u64>,
    #[serde(flatten)]
    pub event: E,
}

impl OpRecord {
    /// `op` as recorded; a modify's values only with `keep_values`.
    pub fn of(op: &Op, keep_values: bool) -> OpRecord {
        match op {
            Op::Add {
                dn,
                attrs,
                password,
            } => OpRecord::Add {
                dn: dn.to_string(),
                attributes: attrs.iter().map(|(a, _)| a.clone()).collect(),
                password: password.is_some(),
            },
            Op::Modify {
                dn,
                changes,
                values,
                ..
            } => OpRecord::Modify {
                dn: dn.to_string(),
                changes: changes
                    .iter()
                    .map(|c| ChangeRecord::of(c, keep_values))
                    .collect(),
                values: values.as_ref().map(ValuesRecord::of),
            },
            Op::Rename {
                dn, rdn, parent, ..
            } => OpRecord::Rename {
                dn: dn.to_string(),
                rdn: rdn.clone(),
                parent: parent.as_ref().map(Dn::to_string),
            },
            Op::Delete { dn, .. } => OpRecord::Delete { dn: dn.to_string() },
            Op::Sweep {
                base,
                attr,
                members,
                to,
                ..
            } => OpRecord::Sweep {
                base: base.to_string(),
                attr: attr.clone(),
                members: members.iter().map(Dn::to_string).collect(),
                to: to.as_ref().map(Dn::to_string),
            },
            Op::SetPassword { dn, new } => OpRecord::SetPassword {
                dn: dn.to_string(),
                attr: new.attr.clone(),
            },
        }
    }

    /// The operation again, when the record holds all it needs: renames, deletes, member
    /// changes, sweeps and locks; not an add or attribute modify (values not kept) or a
    /// password.
    pub fn replay(&self, groups_class: &crate::directory::LdapFilter) -> Option<Op> {
        match self {
            OpRecord::Rename { dn, rdn, parent } => Some(Op::Rename {
                dn: Dn::new(dn.as_str()),
                rdn: rdn.clone(),
                parent: parent.as_deref().map(Dn::new),
                assertion: None,
            }),
            OpRecord::Delete { dn } => Some(Op::Delete {
                dn: Dn::new(dn.as_str()),
                assertion: None,
            }),
            OpRecord::Modify {
                dn,
                changes,
                values,
            } => Some(Op::Modify {
                dn: Dn::new(dn.as_str()),
                changes: changes
                    .iter()
                    .map(ChangeRecord::change)
                    .collect::<Option<Vec<Change>>>()?,
                values: values.as_ref().map(ValuesRecord::values),
                assertion: None,
            }),
            OpRecord::Sweep {
                base,
                attr,
                members,
                to,
            } => Some(Op::Sweep {
                base: Dn::new(base.as_str()),
                class: groups_class.clone(),
                attr: attr.clone(),
                members: members.iter().map(|m| Dn::new(m.as_str())).collect(),
                to: to.as_deref().map(Dn::new),
            }),
            OpRecord::Add { .. } | OpRecord::SetPassword { .. } => None,
        }
    }

    /// The DN the operation works on.
    pub fn dn(&self) -> Option<&str> {
        match self {
            OpRecord::Add { dn, .. }
            | OpRecord::Modify { dn, .. }
            | OpRecord::Rename { dn, .. }
            | OpRecord::Delete { dn }
            | OpRecord::SetPassword { dn, .. } => Some(dn),
            OpRecord::Sweep { .. } => None,
        }
    }
}

impl ValuesRecord {
    pub fn of(v: &Values) -> ValuesRecord {
        ValuesRecord {
            attr: v.attr.clone(),
            adds: v.adds.iter().map(Dn::to_string).collect(),
            deletes: v.deletes.iter().map(Dn::to_string).collect(),
        }
    }

    pub fn values(&self) -> Values {
        Values {
            attr: self.attr.clone(),
            adds: self.adds.iter().map(|d| Dn::new(d.as_str())).collect(),
            deletes: self.deletes.iter().map(|d| Dn::new(d.as_str())).collect(),
        }
    }
}

impl UndoRecord {
    pub(super) fn of(undo: &Undo, keep_values: bool) -> UndoRecord {
        match undo {
            Undo::Nothing => UndoRecord::Nothing,
            Undo::Op(op) => UndoRecord::Op {
                op: OpRecord::of(op, keep_values),
            },
            Undo::Recorded => UndoRecord::Recorded,
            Undo::Irreversible => UndoRecord::Irreversible,
        }
    }
}

impl Event {
    /// Whether the bridge waits for this event to reach the disk before it goes on (so does
    /// an add done that set a password: recovery undoes an add it cannot tell was finished
    /// with its password; see `PlanFile::must_flush`). A step done (with nothing recorded for its undo) or a plan finished may be
    /// lost in a crash of the host:
    /// recovery then sees the step as sent and reads the directory to learn that it was done,
    /// as the pipeline does for a lost answer. Everything recovery could not learn from the
    /// directory is flushed: a step about to be sent, what a sweep changed, a failure, an undo,
    /// a check owed.
    pub(super) fn must_be_durable(&self) -> bool {
        match self {
            Event::Done { swept, .. } => !swept.is_empty(),
            Event::Finished => false,
            Event::Sent { .. }
            | Event::Failed { .. }
            | Event::Undone { .. }
            | Event::Recheck { .. } => true,
        }
    }
}
