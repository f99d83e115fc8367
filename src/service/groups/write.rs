//! POST, PUT, PATCH and DELETE of a group: one plan each, with membership changes as adds and
//! deletes of exactly the changed values.

use tracing::info;

use crate::directory::budget;
use crate::directory::filter::split_first_rdn;
use crate::directory::{Change, Dn, Entry, LdapFilter};
use crate::mapping::Mapping;
use crate::scim::patch::{apply_patch, PatchOperation};
use crate::scim::resource::Normalized;
use crate::scim::value::{Resource as ScimResource, ScimValue};
use crate::service::creates::{CreateKey, CreateReceipt};
use crate::service::error::{ServiceError, ServiceResult};
use crate::service::store::add_once;
use crate::service::write::{modify_step, rename_step, Op, Plan, Step, StepKind, Undo, Values};
use crate::service::{RequestCtx, View};

use super::members::{needs_member_list, owe_check, split_member_ops, MemberDelta};
use super::{required_display_name, GroupBody, Groups};

impl Groups {
    /// POST. The plan: clear stale memberships of the new DN, add the group with its members.
    /// POST. `with_members`: whether the answer shows members (resolved to ids only then).
    pub async fn create(
        &self,
        ctx: &RequestCtx,
        body: Normalized,
        with_members: bool,
        key: CreateKey,
    ) -> ServiceResult<View> {
        let container = self.container(ctx)?;
        crate::service::journal::creating(key);
        let GroupBody { res, members: ids } = self.accept(body)?;
        let members = self
            .resolve_members(ctx, &ids.unwrap_or_default(), true)
            .await?;
        let desired = self.store.mapping.to_ldap(&res, &|_| None)?;
        let rdn = self.store.mapping.rdn(&res)?;
        let dn = Dn::new(format!("{rdn},{container}"));
        let mut attrs = self.store.mapping.new_entry(&desired, &rdn);
        let mut values: Vec<String> = self
            .members
            .placeholder
            .iter()
            .map(|p| p.to_string())
            .collect();
        values.extend(members.iter().map(|m| m.dn.to_string()));
        if !values.is_empty() {
            attrs.push((self.member_attr().to_owned(), values));
        }
        owe_check(&dn, &members);
        let mut plan = Plan::new();
        plan.steps.extend(self.members.stale_step(ctx, &dn));
        plan.push(Step::new(
            StepKind::Add,
            Op::Add {
                dn: dn.clone(),
                attrs,
                password: None,
            },
            Undo::by(Op::Delete {
                dn: dn.clone(),
                assertion: None,
            }),
        ));
        match self.store.writer().run(plan).await {
            Ok(()) => {}
            Err(err) if err.name_taken_at(StepKind::Add) => {
                let name = required_display_name(&res)?;
                let holder = self
                    .store
                    .find_by_name(container, name, &[self.store.dir.id_attribute()])
                    .await?;
                return Err(ServiceError::Taken(match holder {
                    Some(g) => format!("a group named \"{name}\" already exists: Group {}", g.id),
                    None => format!("a group named \"{name}\" already exists"),
                }));
            }
            Err(err) => return Err(err.into()),
        }
        // the check and the answer run on the budget's reserve: the plan may have used its time
        budget::settling(async {
            self.verify_added(ctx, &dn, &members).await?;
            let e = self.store.read_back(&dn, &self.attrs(with_members)).await?;
            self.store.remember(container, &e).await;
            self.store.created(&e.id);
            info!(tenant = %ctx.tenant.name, id = %e.id, "group created");
            let mut made = self.answer(ctx, &e, with_members).await?;
            made.created = Some(CreateReceipt { key, id: e.id });
            Ok(made)
        })
        .await
    }

    /// PUT. `with_members`: whether the answer shows members (a large group's are resolved
    /// to ids only when asked for).
    pub async fn replace(
        &self,
        ctx: &RequestCtx,
        id: &str,
        body: Normalized,
        with_members: bool,
    ) -> ServiceResult<View> {
        let container = self.container(ctx)?;
        let GroupBody {
            res: new_res,
            members: ids,
        } = self.accept(body)?;
        let e = self.store.locate(container, id, &self.attrs(true)).await?;
        let old_res = self.store.mapping.to_scim(&e, &|_| None);
        let mut delta = MemberDelta::default();
        let wanted = self
            .resolve_members(ctx, &ids.unwrap_or_default(), true)
            .await?;
        delta.replace(&self.current_members(&e), wanted);
        let dn = self.write(ctx, &e, &old_res, &new_res, delta).await?;
        budget::settling(async {
            let updated = self.read_back(&dn, with_members).await?;
            self.store.remember_written(container, &e, &updated).await;
            self.answer(ctx, &updated, with_members).await
        })
        .await
    }

    /// PATCH. Returns the resource when asked for (`with_members`: whether it includes
    /// members), else `None` for a 204: a large group's member list is never read for it.
    pub async fn patch(
        &self,
        ctx: &RequestCtx,
        id: &str,
        ops: Vec<PatchOperation>,
        respond: Option<bool>,
    ) -> ServiceResult<Option<View>> {
        let container = self.container(ctx)?;
        let (member_ops, other_ops) = split_member_ops(ops);
        // every operation's ids count: many small ones cost as much as one big one
        let named: usize = member_ops
            .iter()
            .map(|op| match &op.value {
                Some(ScimValue::Multi(a)) => a.len(),
                Some(_) => 1,
                None => 0,
            })
            .sum();
        self.check_member_count(named)?;
        let needs_list = member_ops.iter().any(needs_member_list);
        let e = self
            .store
            .locate(container, id, &self.attrs(needs_list))
            .await?;
        let old_res = self.store.mapping.to_scim(&e, &|_| None);
        let mut new_res = old_res.clone();
        apply_patch(&mut new_res, &other_ops, e.id.as_str())?;
        self.store.mapping.check_unmapped(&new_res, &[])?;
        required_display_name(&new_res)?;

        let mut delta = MemberDelta::default();
        for op in &member_ops {
            self.member_op(ctx, &e, op, &mut delta).await?;
        }
        let dn = self.write(ctx, &e, &old_res, &new_res, delta).await?;
        match respond {
            None => Ok(None),
            Some(with_members) => {
                budget::settling(async {
                    let updated = self.read_back(&dn, with_members).await?;
                    self.store.remember_written(container, &e, &updated).await;
                    Ok(Some(self.answer(ctx, &updated, with_members).await?))
                })
                .await
            }
        }
    }

    /// Applies non-member changes and the member delta to `e`. The plan: if the name changes,
    /// clear stale memberships of the new DN; one modify of the attributes and members
    /// (carrying `If-Match`); the rename; groups containing this one follow it. Members added
    /// are checked again afterwards. Returns the DN.
    pub(super) async fn write(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        old_res: &ScimResource,
        new_res: &ScimResource,
        delta: MemberDelta,
    ) -> ServiceResult<Dn> {
        let assertion = self.store.precondition(ctx, e)?;
        let mapping = &self.store.mapping;
        let old = mapping.to_ldap(old_res, &|_| None)?;
        let new = mapping.to_ldap(new_res, &|_| None)?;
        let mut changes = mapping.changes(e, &old, &new);
        let new_rdn = mapping.rdn(new_res)?;
        let rename = Mapping::needs_rename(&e.dn, &new_rdn);
        if rename {
            changes.retain(|c| c.attr() != &mapping.rdn_attr);
        }
        let (_, parent) = split_first_rdn(&e.dn);
        let new_dn = Dn::new(format!("{new_rdn},{parent}"));
        let values = self.members.values(delta.add_dns(), delta.delete_dns());
        let plan = self.write_plan(
            ctx,
            e,
            changes,
            values,
            rename.then(|| (new_rdn, new_dn.clone())),
            assertion,
        );
        owe_check(if rename { &new_dn } else { &e.dn }, &delta.add_members());
        match self.store.writer().run(plan).await {
            Ok(()) => {}
            Err(err) if err.name_taken_at(StepKind::Rename) => {
                return Err(ServiceError::Taken(format!(
                    "a group named \"{}\" already exists",
                    required_display_name(new_res)?
                )))
            }
            Err(err) => return Err(err.into()),
        }
        let dn = if rename {
            self.store
                .cache
                .forget(&e.id, &Dn::new(parent), self.store.name_of(e))
                .await;
            new_dn
        } else {
            e.dn.clone()
        };
        budget::settling(self.verify_added(ctx, &dn, &delta.add_members())).await?;
        Ok(dn)
    }

    /// The plan: if the name changes, clear stale memberships of the new DN; one modify of
    /// the attributes and members (carrying `If-Match`); the rename; groups containing this
    /// one follow it.
    fn write_plan(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        changes: Vec<Change>,
        values: Values,
        rename: Option<(String, Dn)>,
        assertion: Option<LdapFilter>,
    ) -> Plan {
        let modify = !changes.is_empty() || !values.adds.is_empty() || !values.deletes.is_empty();
        let mut plan = Plan::new();
        if let Some((_, new_dn)) = &rename {
            plan.steps.extend(self.members.stale_step(ctx, new_dn));
        }
        if modify {
            plan.push(modify_step(
                StepKind::Modify,
                e,
                changes,
                Some(values),
                assertion.clone(),
            ));
        }
        if let Some((new_rdn, new_dn)) = rename {
            // the modify, when there is one, carried If-Match (and changed the version)
            let assertion = if modify { None } else { assertion };
            plan.push(rename_step(e, new_rdn, &new_dn, None, assertion));
            plan.steps
                .extend(self.members.follow_step(ctx, &e.dn, &new_dn));
        }
        plan
    }

    /// DELETE. The plan: leave the groups that contain this one (no search for them when
    /// its memberOf, read with it, names none), delete it, sweep again for nestings a
    /// concurrent request added meanwhile.
    pub async fn delete(&self, ctx: &RequestCtx, id: &str) -> ServiceResult<()> {
        let container = self.container(ctx)?;
        self.store.deleting(id);
        let mut attrs = self.attrs(false);
        if let Some(m) = self.members.member_of_attr.as_deref() {
            add_once(&mut attrs, m);
        }
        let e = self.store.locate(container, id, &attrs).await?;
        let assertion = self.store.precondition(ctx, &e)?;
        let mut plan = Plan::new();
        plan.steps.extend(self.members.leave_step(ctx, &e));
        plan.push(Step::new(
            StepKind::Delete,
            Op::Delete {
                dn: e.dn.clone(),
                assertion,
            },
            Undo::Irreversible,
        ));
        plan.steps
            .extend(self.members.catch_up_step(ctx, vec![e.dn.clone()]));
        self.store.writer().run(plan).await?;
        self.store
            .cache
            .forget(&e.id, container, self.store.name_of(&e))
            .await;
        info!(tenant = %ctx.tenant.name, id = %e.id, "group deleted");
        Ok(())
    }
}
