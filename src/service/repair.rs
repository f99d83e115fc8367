//! The repair sweep: finds and fixes, in one tenant's part of the directory, what breaks the
//! invariants the write pipeline keeps, whatever broke them (a crash before the journal
//! existed, an administrator's hand edit, an overlay's miss):
//!
//! - a group member DN under the tenant's users or groups container that does not exist (a
//!   deleted entry, or a renamed one still listed under its old name: its old DN is taken out,
//!   since a later account of that name would otherwise inherit the membership);
//! - a group member in the archive (a deleted user's membership);
//! - on Active Directory, an account in the users container whose names were already
//!   tombstoned by a delete that never moved it (the delete is finished: the names it holds
//!   cannot be used by anyone, so the IdP's delete is what it was).
//!
//! Members outside the tenant's containers and the archive are someone else's and left
//! alone. It reads at a bounded rate (`searches_per_second`) so that a background pass never
//! competes with the IdP's requests, and each fix is one modify of one group, audited.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use tracing::{info, warn};

use super::groups::Groups;
use super::users::Users;
use super::write::{Op, Values, Writer};
use super::RequestCtx;
use crate::audit::{self, Auditor};
use crate::auth::{Credential, Tenant};
use crate::directory::{Directory, DirectoryError, Dn, LdapFilter};

/// Entries per page of the walk over the tenant's groups.
const PAGE: usize = 100;

/// What a pass needs of the running service.
pub struct Repair<'a> {
    pub dir: &'a dyn Directory,
    pub users: &'a Users,
    pub groups: Option<&'a Groups>,
    pub audit: &'a Auditor,
    /// Directory reads per second at most.
    pub searches_per_second: u32,
}

/// Why a member is taken out of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// No entry has this DN.
    Missing,
    /// The member lies in the archive: a deleted user.
    Archived,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Problem::Missing => "does not exist",
            Problem::Archived => "is archived (a deleted user)",
        })
    }
}

/// One thing found, and whether it was fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Member {
        group: Dn,
        member: Dn,
        problem: Problem,
    },
    /// An account whose delete stopped after its names were tombstoned (AD).
    UnfinishedDelete { dn: Dn, id: String },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Member {
                group,
                member,
                problem,
            } => write!(f, "{group} lists {member}, which {problem}"),
            Finding::UnfinishedDelete { dn, .. } => write!(
                f,
                "{dn} holds the tombstoned names of a delete that never moved it to the archive"
            ),
        }
    }
}

/// What one pass found and did.
#[derive(Debug, Default)]
pub struct Report {
    pub groups: usize,
    pub members: usize,
    pub found: Vec<Finding>,
    pub fixed: usize,
    /// Fixes the directory refused, with why.
    pub failed: Vec<String>,
}

/// Reads spaced so that at most `per_second` go out each second.
struct Pace {
    every: Option<tokio::time::Interval>,
}

impl Pace {
    fn new(per_second: u32) -> Pace {
        let every = (per_second > 0).then(|| {
            let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(per_second)));
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        Pace { every }
    }

    async fn tick(&mut self) {
        if let Some(i) = &mut self.every {
            i.tick().await;
        }
    }
}

impl Repair<'_> {
    /// One pass over `tenant`'s groups and users; with `dry_run`, nothing is written.
    pub async fn run(&self, tenant: &Tenant, dry_run: bool) -> Result<Report, DirectoryError> {
        let mut report = Report::default();
        let mut pace = Pace::new(self.searches_per_second);
        if let Some(groups) = self.groups {
            self.members(tenant, groups, dry_run, &mut pace, &mut report)
                .await?;
        }
        self.unfinished_deletes(tenant, dry_run, &mut pace, &mut report)
            .await?;
        let m = crate::metrics::metrics();
        m.repair(&tenant.name, report.found.len(), report.fixed);
        if !report.found.is_empty() {
            info!(tenant = %tenant.name, found = report.found.len(), fixed = report.fixed, dry_run, "repair sweep");
        }
        Ok(report)
    }

    async fn members(
        &self,
        tenant: &Tenant,
        groups: &Groups,
        dry_run: bool,
        pace: &mut Pace,
        report: &mut Report,
    ) -> Result<(), DirectoryError> {
        let Some(container) = tenant.groups_container.as_ref() else {
            return Ok(());
        };
        let archive = groups.archive();
        let attr = groups.member_attr().to_owned();
        // whether a DN exists, asked once per pass
        let mut exists: HashMap<Dn, bool> = HashMap::new();
        pace.tick().await;
        let mut walk = self
            .dir
            .walk_open(container, &groups.class_filter(), &[attr.as_str()])
            .await?;
        loop {
            pace.tick().await;
            let (page, done) = self.dir.walk_next(&mut walk, PAGE).await?;
            for group in page {
                report.groups += 1;
                let mut bad = Vec::new();
                for member in group.values(&attr).iter().map(Dn::new) {
                    report.members += 1;
                    if groups.is_placeholder(&member) {
                        continue;
                    }
                    let problem = if archive.is_some_and(|a| member.is_under(a)) {
                        Some(Problem::Archived)
                    } else if member.is_under(&tenant.users_container) || member.is_under(container)
                    {
                        let known = match exists.get(&member) {
                            Some(k) => *k,
                            None => {
                                pace.tick().await;
                                let k = self.dir.read(&member, &["1.1"]).await?.is_some();
                                exists.insert(member.clone(), k);
                                k
                            }
                        };
                        (!known).then_some(Problem::Missing)
                    } else {
                        None
                    };
                    if let Some(problem) = problem {
                        report.found.push(Finding::Member {
                            group: group.dn.clone(),
                            member: member.clone(),
                            problem,
                        });
                        bad.push(member);
                    }
                }
                if bad.is_empty() || dry_run {
                    continue;
                }
                self.take_out(tenant, &group.dn, &attr, bad, report).await;
            }
            if done {
                return Ok(());
            }
        }
    }

    /// One modify taking `bad` out of `group` (a value gone meanwhile is no error).
    async fn take_out(
        &self,
        tenant: &Tenant,
        group: &Dn,
        attr: &str,
        bad: Vec<Dn>,
        report: &mut Report,
    ) {
        let n = bad.len();
        let op = Op::Modify {
            dn: group.clone(),
            changes: Vec::new(),
            values: Some(Values {
                attr: attr.to_owned(),
                adds: Vec::new(),
                deletes: bad,
            }),
            assertion: None,
        };
        match (Writer { dir: self.dir }).apply_once(&op).await {
            Ok(()) => {
                report.fixed += n;
                self.audited(tenant, "Group", group, vec![attr.to_owned()], None);
            }
            Err(e) => {
                warn!(group = %group, error = %e, "the repair sweep could not take members out");
                report.failed.push(format!("{group}: {e}"));
            }
        }
    }

    /// AD: accounts in the users container holding tombstoned names (a delete that stopped
    /// before it moved them): the delete is finished.
    async fn unfinished_deletes(
        &self,
        tenant: &Tenant,
        dry_run: bool,
        pace: &mut Pace,
        report: &mut Report,
    ) -> Result<(), DirectoryError> {
        let Some(tombstoned) = self.dir.tombstoned_names_filter() else {
            return Ok(());
        };
        let filter = LdapFilter::and(vec![self.users.class_filter(), tombstoned]);
        pace.tick().await;
        let (found, _) = self
            .dir
            .search_until(
                &tenant.users_container,
                &filter,
                &[self.dir.id_attribute()],
                1000,
            )
            .await?;
        let ctx = RequestCtx {
            tenant: std::sync::Arc::new(tenant.clone()),
            if_match: None,
        };
        for e in found {
            report.found.push(Finding::UnfinishedDelete {
                dn: e.dn.clone(),
                id: e.id.to_string(),
            });
            if dry_run {
                continue;
            }
            pace.tick().await;
            match self.users.delete(&ctx, e.id.as_str()).await {
                Ok(()) => {
                    report.fixed += 1;
                    self.audited(tenant, "User", &e.dn, Vec::new(), Some(e.id.to_string()));
                }
                Err(err) => {
                    warn!(dn = %e.dn, detail = %err.detail(), "the repair sweep could not finish a delete");
                    report.failed.push(format!("{}: {}", e.dn, err.detail()));
                }
            }
        }
        Ok(())
    }

    fn audited(
        &self,
        tenant: &Tenant,
        resource_type: &'static str,
        dn: &Dn,
        attributes: Vec<String>,
        id: Option<String>,
    ) {
        let delete = resource_type == "User";
        self.audit.record(&audit::Record {
            time: audit::timestamp(time::OffsetDateTime::now_utc()),
            request_id: "repair",
            tenant: &tenant.name,
            credential: &Credential::Service {
                name: "repair".into(),
            },
            client: None,
            operation: if delete { "delete" } else { "patch" },
            resource_type,
            id,
            status: 0,
            outcome: audit::Outcome::Repaired,
            changes: vec![audit::Change {
                action: if delete {
                    audit::Action::Rename
                } else {
                    audit::Action::Modify
                },
                dn: dn.to_string(),
                new_dn: None,
                attributes,
            }],
            unconfirmed: None,
            detail: Some(if delete {
                "the repair sweep finished a delete that had stopped".into()
            } else {
                "the repair sweep took out members that do not exist or are archived".into()
            }),
        });
    }
}
