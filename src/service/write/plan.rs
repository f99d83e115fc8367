//! A write as data: the LDAP operations (`Op`) in the order they run, each with its kind and how it
//! is undone, and how a plan that did not complete is reported.

use std::fmt;

use crate::directory::{Change, DirectoryError, Dn, LdapFilter, Password};
use crate::service::error::ServiceError;

/// Idempotent changes of one DN-valued attribute (a group's members): adding a value that
/// is there, or deleting one that is not, succeeds. The caller names only values whose
/// presence it knows, so that the inverse change undoes exactly this one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Values {
    pub attr: String,
    pub adds: Vec<Dn>,
    pub deletes: Vec<Dn>,
}

impl Values {
    pub fn is_empty(&self) -> bool {
        self.adds.is_empty() && self.deletes.is_empty()
    }

    pub fn inverse(&self) -> Values {
        Values {
            attr: self.attr.clone(),
            adds: self.deletes.clone(),
            deletes: self.adds.clone(),
        }
    }
}

/// A new password and the attribute it lands in (named in the audit trail; the value never).
#[derive(Debug, Clone, PartialEq)]
pub struct NewPassword {
    pub attr: String,
    pub password: Password,
}

/// One LDAP write.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Add {
        dn: Dn,
        attrs: Vec<(String, Vec<String>)>,
        /// Set as the directory expects in the same step (AD enables the account after it).
        password: Option<NewPassword>,
    },
    /// The entry's password, set as the directory expects (never read back).
    SetPassword { dn: Dn, new: NewPassword },
    /// One modify: `changes` and `values` together, all or nothing, only while the entry
    /// matches `assertion` (its `If-Match` version).
    Modify {
        dn: Dn,
        changes: Vec<Change>,
        values: Option<Values>,
        assertion: Option<LdapFilter>,
    },
    Rename {
        dn: Dn,
        rdn: String,
        parent: Option<Dn>,
        assertion: Option<LdapFilter>,
    },
    Delete {
        dn: Dn,
        assertion: Option<LdapFilter>,
    },
    /// Takes the DNs `members` out of every entry of `class` under `base` that lists one in
    /// `attr` (a deleted user leaving its groups) and, with `to`, lists `to` there instead
    /// (a renamed member). Undone by putting back exactly what it changed; a `Sweep` with
    /// `to` is always a plan's last step.
    Sweep {
        base: Dn,
        class: LdapFilter,
        attr: String,
        members: Vec<Dn>,
        to: Option<Dn>,
    },
}

impl Op {
    /// Whether this op only adds or removes member values (of a group).
    pub(super) fn changes_members_only(&self) -> bool {
        matches!(self, Op::Modify { changes, values: Some(_), .. } if changes.is_empty())
    }

    /// The DN after this op (a rename moves it).
    pub(super) fn dn_after(&self) -> Option<Dn> {
        match self {
            Op::Rename {
                dn, rdn, parent, ..
            } => {
                let (_, old_parent) = crate::directory::filter::split_first_rdn(dn);
                Some(Dn::new(format!(
                    "{rdn},{}",
                    parent.as_deref().unwrap_or(&old_parent)
                )))
            }
            Op::Add { dn, .. }
            | Op::Modify { dn, .. }
            | Op::Delete { dn, .. }
            | Op::SetPassword { dn, .. } => Some(dn.clone()),
            Op::Sweep { .. } => None,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Add { dn, .. } => write!(f, "add {dn}"),
            Op::SetPassword { dn, .. } => write!(f, "set the password of {dn}"),
            Op::Modify { dn, .. } => write!(f, "modify {dn}"),
            Op::Rename { dn, .. } => match self.dn_after() {
                Some(to) => write!(f, "rename {dn} to {to}"),
                None => write!(f, "rename {dn}"),
            },
            Op::Delete { dn, .. } => write!(f, "delete {dn}"),
            Op::Sweep {
                members, to: None, ..
            } => write!(f, "remove {} from the groups listing it", joined(members)),
            Op::Sweep {
                members,
                to: Some(to),
                ..
            } => write!(f, "point the groups listing {} at {to}", joined(members)),
        }
    }
}

fn joined(dns: &[Dn]) -> String {
    dns.iter().map(Dn::as_str).collect::<Vec<_>>().join(", ")
}

/// How a step is undone.
#[derive(Debug, Clone, PartialEq)]
pub enum Undo {
    /// Nothing to undo (a step that only removes stale data), or the plan's last step.
    Nothing,
    Op(Box<Op>),
    /// Computed from what the step did (a `Sweep`).
    Recorded,
    /// It cannot be undone (a delete): once done, neither it nor the steps before it are,
    /// and a later failure is reported as partly applied.
    Irreversible,
}

/// What a step does: failures are matched by kind (`err.failed_at(StepKind::Add)`), and the
/// kind's text ("add the entry") is what messages and the journal show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Add,
    Modify,
    Rename,
    Delete,
    Lock,
    Archive,
    LeaveGroups,
    CatchUp,
    Stale,
    Follow,
    Join,
    Roles,
    Password,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Add => "add the entry",
            StepKind::Modify => "modify the entry",
            StepKind::Rename => "rename the entry",
            StepKind::Delete => "delete the entry",
            StepKind::Lock => "deactivate the account",
            StepKind::Archive => "move the entry to the archive",
            StepKind::LeaveGroups => "remove it from its groups",
            StepKind::CatchUp => "remove memberships added meanwhile",
            StepKind::Stale => "remove stale memberships of the new name",
            StepKind::Follow => "point its groups at the new name",
            StepKind::Join => "add it to the tenant's default group",
            StepKind::Roles => "change its role groups",
            StepKind::Password => "set its password",
        }
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub kind: StepKind,
    pub op: Op,
    pub undo: Undo,
}

impl Undo {
    /// Undone by running `op`.
    pub fn by(op: Op) -> Undo {
        Undo::Op(Box::new(op))
    }
}

impl Step {
    pub fn new(kind: StepKind, op: Op, undo: Undo) -> Step {
        Step { kind, op, undo }
    }
}

/// The steps of one SCIM write, in the order they run.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn new() -> Plan {
        Plan::default()
    }

    pub fn push(&mut self, step: Step) -> &mut Plan {
        self.steps.push(step);
        self
    }
}

/// Why a plan did not complete.
#[derive(Debug)]
pub enum WriteError {
    /// A step failed and every step before it was undone: the directory is as it was.
    Failed {
        step: StepKind,
        error: DirectoryError,
    },
    /// The directory never told whether `step` happened, even when asked afterwards.
    Unknown { step: StepKind, done: Vec<StepKind> },
    /// A step failed and undoing the steps before it failed too: `left` stay applied.
    Partial {
        step: StepKind,
        error: DirectoryError,
        left: Vec<StepKind>,
    },
}

impl WriteError {
    /// The failing step's directory error, when the plan was undone whole.
    pub fn failed_at(&self, kind: StepKind) -> Option<&DirectoryError> {
        match self {
            WriteError::Failed { step, error } if *step == kind => Some(error),
            _ => None,
        }
    }

    /// Whether step `kind` was refused because its entry's name is taken (the plan was
    /// undone whole): another request or bridge made that name first.
    pub fn name_taken_at(&self, kind: StepKind) -> bool {
        matches!(self.failed_at(kind), Some(DirectoryError::AlreadyExists(_)))
    }
}

/// The answer for a plan that did not complete (RFC 7644 §3.12). Undone plans answer as
/// their cause; the others say what stayed applied, with a 503 so that the IdP retries: every
/// plan converges when run again.
impl From<WriteError> for ServiceError {
    fn from(e: WriteError) -> ServiceError {
        match e {
            WriteError::Failed { error, .. } => error.into(),
            WriteError::Unknown { step, done } => ServiceError::unavailable(
                format!(
                    "the directory did not confirm whether it could {step}{}: read the resource before retrying",
                    if done.is_empty() {
                        String::new()
                    } else {
                        format!(" (done before it: {})", said(&done))
                    }
                ),
                5,
            ),
            WriteError::Partial { step, left, .. } => ServiceError::unavailable(
                format!(
                    "the change failed at \"{step}\" and could not be undone completely; still applied: {}. Retry the request to complete it",
                    said(&left)
                ),
                5,
            ),
        }
    }
}

/// Steps as a sentence lists them.
pub(super) fn said(kinds: &[StepKind]) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
