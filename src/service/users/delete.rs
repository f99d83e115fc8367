//! DELETE of a user: disabled and moved to the archive (the default), or deleted, out of its groups
//! either way.

use tracing::info;

use crate::config::DeleteMode;
use crate::directory::filter::split_first_rdn;
use crate::directory::{DirectoryError, Dn, Entry, LdapFilter};
use crate::service::error::{ServiceError, ServiceResult};
use crate::service::write::{modify_step, Op, Plan, Step, StepKind, Undo};
use crate::service::RequestCtx;

use super::Users;

impl Users {
    /// DELETE. By default the account is deactivated and moved to the archive container
    /// (reversible; SCIM answers 404 for it from then on); with `delete_mode = "delete"` the
    /// entry is removed. Either way it leaves its groups first, since no group may list an
    /// entry that answers 404 (no search when its memberOf, read with it, names none), and
    /// the groups are swept again after the move for memberships a concurrent request added
    /// meanwhile. A failure undoes the steps before it.
    pub async fn delete(&self, ctx: &RequestCtx, id: &str) -> ServiceResult<()> {
        let container = &ctx.tenant.users_container;
        self.store.deleting(id);
        // the names an archive frees are read with the rest, so that an undo restores them
        let attrs = crate::directory::each_attribute_once(
            self.store
                .attrs()
                .into_iter()
                .chain(self.store.dir.unique_name_attributes().iter().copied()),
        );
        let e = match self.store.locate_opt(container, id, &attrs).await? {
            Some(e) => e,
            // an archived account (even this id, deleted before and retried now) answers 404
            // and nothing is written: the archive is shared by every tenant, and the name it
            // had may belong to a new account by now
            None => {
                return Err(ServiceError::NotFound(format!(
                    "no User with id \"{}\"",
                    crate::logging::shorten(id, 64)
                )))
            }
        };
        let assertion = self.store.precondition(ctx, &e)?;
        let plan = match (self.settings.delete_mode, &self.settings.archive_container) {
            (DeleteMode::Delete, _) => self.delete_plan(ctx, &e, assertion),
            (DeleteMode::Archive, None) => {
                return Err(ServiceError::Internal(
                    "delete_mode is archive but no archive_container is set".into(),
                ))
            }
            (DeleteMode::Archive, Some(archive)) => {
                self.archive_plan(ctx, &e, archive, assertion).await?
            }
        };
        let permit = self.admit_removal(ctx, &e).await?;
        match self.store.writer().run(plan).await {
            Ok(()) => permit.done(),
            Err(err) if matches!(err.failed_at(StepKind::Archive), Some(DirectoryError::NoSuchObject(_))) => {
                return Err(ServiceError::Internal(
                    "the archive container (users.archive_container) does not exist in the directory; the account was left as it was".into(),
                ))
            }
            Err(err) => return Err(err.into()),
        }
        self.store
            .cache
            .forget(&e.id, container, self.store.name_of(&e))
            .await;
        info!(tenant = %ctx.tenant.name, id = %e.id, mode = ?self.settings.delete_mode, "user deleted");
        Ok(())
    }

    /// Leave the groups, delete, sweep again. The delete cannot be undone, so a failure after
    /// it is reported as partly applied.
    pub(super) fn delete_plan(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        assertion: Option<LdapFilter>,
    ) -> Plan {
        let mut plan = Plan::new();
        if let Some(m) = &self.memberships {
            plan.steps.extend(m.leave_step(ctx, e));
        }
        plan.push(Step::new(
            StepKind::Delete,
            Op::Delete {
                dn: e.dn.clone(),
                assertion,
            },
            Undo::Irreversible,
        ));
        if let Some(m) = &self.memberships {
            plan.steps.extend(m.catch_up_step(ctx, vec![e.dn.clone()]));
        }
        plan
    }

    /// Deactivate (carrying `If-Match`), leave the groups, move to the archive, sweep the
    /// groups for both names. Every step but the last sweep is undone if a later one fails.
    pub(super) async fn archive_plan(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        archive: &Dn,
        assertion: Option<LdapFilter>,
    ) -> ServiceResult<Plan> {
        let mut lock = match self.mapping().active() {
            Some(m) => {
                let mut res = crate::scim::value::Resource::new();
                res.set(
                    crate::scim::schema::Container::Core,
                    "active",
                    crate::scim::value::ScimValue::boolean(false),
                );
                let mut inactive = self.mapping().to_ldap(&res, &|_| None)?;
                inactive.retain(|a, _| a == &m.ldap);
                self.mapping().changes(e, &Default::default(), &inactive)
            }
            None => vec![],
        };
        // an archived account holds no name a rehire needs (AD's userPrincipalName and
        // sAMAccountName are unique in the domain, wherever the account lies)
        lock.extend(self.store.dir.free_names(e));
        let (rdn, parent) = split_first_rdn(&e.dn);
        // an earlier archived account has this name: keep both, this one tagged by its id
        let archived_rdn = match self
            .store
            .dir
            .read(&Dn::new(format!("{rdn},{archive}")), &["objectClass"])
            .await?
        {
            Some(_) => format!("{rdn}-{}", e.id.chars().take(8).collect::<String>()),
            None => rdn.clone(),
        };
        let archived_dn = Dn::new(format!("{archived_rdn},{archive}"));
        let mut plan = Plan::new();
        let mut assertion = assertion;
        if !lock.is_empty() {
            plan.push(modify_step(StepKind::Lock, e, lock, None, assertion.take()));
        }
        if let Some(m) = &self.memberships {
            plan.steps.extend(m.leave_step(ctx, e));
        }
        plan.push(Step::new(
            StepKind::Archive,
            Op::Rename {
                dn: e.dn.clone(),
                rdn: archived_rdn,
                parent: Some(archive.clone()),
                assertion,
            },
            Undo::by(Op::Rename {
                dn: archived_dn.clone(),
                rdn,
                parent: Some(Dn::new(parent)),
                assertion: None,
            }),
        ));
        if let Some(m) = &self.memberships {
            plan.steps
                .extend(m.catch_up_step(ctx, vec![e.dn.clone(), archived_dn]));
        }
        Ok(plan)
    }
}
