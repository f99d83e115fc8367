//! PUT and PATCH of a user: the new resource computed once, its LDAP changes, a rename when the RDN
//! changes, roles and password, as one plan.

use crate::directory::budget;
use crate::directory::filter::split_first_rdn;
use crate::directory::{Change, Dn, Entry, LdapFilter};
use crate::scim::patch::{apply_patch, PatchOperation};
use crate::scim::resource::Normalized;
use crate::scim::value::Resource as ScimResource;
use crate::service::error::{ServiceError, ServiceResult};
use crate::service::write::{
    modify_step, rename_step, NewPassword, Op, Plan, Step, StepKind, Undo,
};
use crate::service::{RequestCtx, View};

use super::render::{dn_for, Refs};
use super::{required_user_name, Users};

impl Users {
    pub async fn replace(
        &self,
        ctx: &RequestCtx,
        id: &str,
        body: Normalized,
    ) -> ServiceResult<View> {
        let new_res = self.accept(body)?;
        let e = self.locate(ctx, id).await?;
        let (old_res, old_refs) = self.scim_view(ctx, &e, &Refs::new()).await?;
        self.write(ctx, e, old_res, old_refs, new_res).await
    }

    pub async fn patch(
        &self,
        ctx: &RequestCtx,
        id: &str,
        ops: &[PatchOperation],
    ) -> ServiceResult<View> {
        self.mapping().check_patch_targets(ops)?;
        let e = self.locate(ctx, id).await?;
        let (old_res, old_refs) = self.scim_view(ctx, &e, &Refs::new()).await?;
        let mut new_res = old_res.clone();
        apply_patch(&mut new_res, ops, e.id.as_str())?;
        self.screen_password(&mut new_res)?;
        self.mapping().check_unmapped(&new_res, &[])?;
        required_user_name(&new_res)?;
        self.write(ctx, e, old_res, old_refs, new_res).await
    }

    /// Takes the entry from `old_res` to `new_res`. The plan: if the name changes, clear
    /// stale memberships of the new DN; one modify of the attributes whose directory state
    /// differs (carrying `If-Match`); the rename; groups follow the new DN. A failure undoes
    /// the steps before it.
    pub(super) async fn write(
        &self,
        ctx: &RequestCtx,
        e: Entry,
        old_res: ScimResource,
        old_refs: Refs,
        new_res: ScimResource,
    ) -> ServiceResult<View> {
        self.write_with(ctx, e, old_res, old_refs, new_res, Vec::new())
            .await
    }

    /// `write`, with `extra` changes in the same modify (a linked account's missing classes).
    pub(super) async fn write_with(
        &self,
        ctx: &RequestCtx,
        e: Entry,
        old_res: ScimResource,
        old_refs: Refs,
        new_res: ScimResource,
        extra: Vec<Change>,
    ) -> ServiceResult<View> {
        let container = &ctx.tenant.users_container;
        let refs = self.resolve_refs(ctx, &new_res, old_refs).await?;
        let lookup = |id: &str| dn_for(&refs, id);
        let mapping = self.mapping();
        let old = mapping.to_ldap(&old_res, &lookup)?;
        let new = mapping.to_ldap(&new_res, &lookup)?;
        let mut changes = extra;
        changes.extend(mapping.changes(&e, &old, &new));
        let password = self.new_password(&new_res)?;

        let new_name = required_user_name(&new_res)?;
        let old_name = self.rename_to(container, &e, new_name).await?;
        let rename = self.new_place(ctx, &e, &old_res, &new_res).await?;
        if rename.as_ref().is_some_and(|m| m.renames(&e.dn)) {
            // modrdn sets the naming attribute; the modify must leave it alone
            changes.retain(|c| c.attr() != &mapping.rdn_attr);
        }
        // checked even when nothing changes: a stale If-Match is a 412 either way
        let assertion = self.store.precondition(ctx, &e)?;
        let final_dn = rename.as_ref().map_or(&e.dn, |m| &m.dn);
        let role_steps =
            self.role_steps(final_dn, &self.role_changes(ctx, &old_res, &new_res).await?);
        if changes.is_empty() && rename.is_none() && role_steps.is_empty() && password.is_none() {
            return self.render(ctx, &e, &refs).await;
        }
        let write = UserWrite {
            assertion,
            changes,
            password,
            rename,
            role_steps,
        };
        // a deactivation is a removal: the safety valve may hold it
        let permit = match deactivates(&old_res, &new_res) && mapping.active().is_some() {
            true => Some(self.admit_removal(ctx, &e).await?),
            false => None,
        };
        let modifies = !write.changes.is_empty();
        let new_dn = write.rename.as_ref().map(|m| m.dn.clone());
        let moves_to = write.rename.as_ref().and_then(|m| m.parent.clone());
        let plan = self.write_plan(ctx, &e, write);
        // the modify returns the entry (post-read) when it is the last step: later steps
        // (groups, memberOf) would change what it returned
        let attrs = self.store.attrs();
        let read = (modifies && plan.steps.len() == 1).then_some((0, attrs.as_slice()));
        let written = self
            .run_user_plan(plan, read, moves_to.as_ref(), new_name)
            .await?;
        if let Some(p) = permit {
            p.done();
        }
        let dn = match new_dn {
            Some(dn) => {
                self.store.cache.forget_name(container, &old_name).await;
                dn
            }
            None => e.dn.clone(),
        };
        budget::settling(async {
            let updated = match written {
                Some(entry) => entry,
                None => self.store.read_back(&dn, &attrs).await?,
            };
            self.store.remember_written(container, &e, &updated).await;
            self.render(ctx, &updated, &refs).await
        })
        .await
    }

    /// Runs the plan, reading the entry back at `read`; the failures a user write has its
    /// own answer for: a placement container that does not exist, a name taken meanwhile.
    async fn run_user_plan(
        &self,
        plan: Plan,
        read: Option<(usize, &[&str])>,
        moves_to: Option<&Dn>,
        new_name: &str,
    ) -> ServiceResult<Option<Entry>> {
        match (self.store.writer().run_reading(plan, read).await, moves_to) {
            (Ok(entry), _) => Ok(entry),
            (Err(err), Some(parent))
                if matches!(
                    err.failed_at(StepKind::Rename),
                    Some(crate::directory::DirectoryError::NoSuchObject(_))
                ) =>
            {
                Err(super::create::missing_container(parent))
            }
            (Err(err), _) if err.name_taken_at(StepKind::Rename) => Err(ServiceError::Taken(
                format!("userName \"{new_name}\" is already taken"),
            )),
            (Err(err), _) => Err(err.into()),
        }
    }

    /// Checks that `new_name` is free when the user changes name; returns the old name.
    async fn rename_to(&self, container: &Dn, e: &Entry, new_name: &str) -> ServiceResult<String> {
        let old_name = self.store.name_of(e).unwrap_or_default().to_owned();
        if !new_name.eq_ignore_ascii_case(&old_name) {
            self.store
                .ensure_unique(container, new_name, Some(&e.id))
                .await?;
        }
        Ok(old_name)
    }

    /// Where the entry moves when `new` names it otherwise or places it elsewhere: a new RDN
    /// (a free numbered name where clashes are numbered), a new parent when the placement
    /// rule that matches changes, or both; `None` when it stays. A user a rule never moved
    /// (an admin's own OU) stays where it is until its rule changes.
    async fn new_place(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        old: &ScimResource,
        new: &ScimResource,
    ) -> ServiceResult<Option<Move>> {
        let mapping = self.mapping();
        let (current_rdn, current_parent) = split_first_rdn(&e.dn);
        let current_parent = Dn::new(current_parent);
        let placement = &ctx.tenant.placement;
        let default = &ctx.tenant.users_container;
        let (was, now) = (placement.place(old, default), placement.place(new, default));
        let parent = match was.container == now.container {
            true => current_parent.clone(),
            false => now.container.clone(),
        };
        let moves = parent != current_parent;
        let fits = mapping.rdn_fits(&e.dn, new)?;
        let rdn = match (fits, moves, mapping.numbered_rdn) {
            (true, false, _) => return Ok(None),
            // where clashes are numbered, a name taken in the new container is numbered too
            (_, _, true) => {
                let base = mapping.rdn_text(new)?;
                self.free_rdn(&parent, &base, Some(&e.dn)).await?
            }
            (true, true, false) => current_rdn,
            (false, _, false) => mapping.rdn(new)?,
        };
        let dn = Dn::new(format!("{rdn},{parent}"));
        Ok(Some(Move {
            rdn,
            dn,
            parent: moves.then_some(parent),
        }))
    }

    /// The plan: if the name changes, clear stale memberships of the new DN; one modify of
    /// the attributes (carrying `If-Match`); the password; the rename; groups follow the new
    /// DN; role groups joined and left.
    fn write_plan(&self, ctx: &RequestCtx, e: &Entry, w: UserWrite) -> Plan {
        let mut plan = Plan::new();
        if let (Some(moved), Some(m)) = (&w.rename, &self.memberships) {
            plan.steps.extend(m.stale_step(ctx, &moved.dn));
        }
        let modify_first = !w.changes.is_empty();
        if modify_first {
            plan.push(modify_step(
                StepKind::Modify,
                e,
                w.changes,
                None,
                w.assertion.clone(),
            ));
        }
        if let Some(new) = w.password {
            // Right after the modify: refused by the directory's password policy, it undoes
            // the modify and nothing else was done. A password cannot be put back, so a later
            // step's failure leaves both and says so (503, retry to complete).
            plan.push(Step::new(
                StepKind::Password,
                Op::SetPassword {
                    dn: e.dn.clone(),
                    new,
                },
                Undo::Irreversible,
            ));
        }
        if let Some(Move {
            rdn: new_rdn,
            dn: new_dn,
            parent,
        }) = w.rename
        {
            // the modify, when there is one, carried If-Match (and changed the version)
            let assertion = if modify_first { None } else { w.assertion };
            plan.push(rename_step(e, new_rdn, &new_dn, parent, assertion));
            if let Some(m) = &self.memberships {
                plan.steps.extend(m.follow_step(ctx, &e.dn, &new_dn));
            }
        }
        plan.steps.extend(w.role_steps);
        plan
    }
}

/// Whether the write takes an active account (or one whose state is not set) to inactive.
fn deactivates(old: &ScimResource, new: &ScimResource) -> bool {
    let active = |r: &ScimResource| r.core("active").and_then(|v| v.as_bool());
    active(old) != Some(false) && active(new) == Some(false)
}

/// What a user write does to the entry, decided before the plan is made.
struct UserWrite {
    changes: Vec<Change>,
    password: Option<NewPassword>,
    /// Where the entry moves, when it is renamed or placed elsewhere.
    rename: Option<Move>,
    /// The request's `If-Match` as an LDAP assertion.
    assertion: Option<LdapFilter>,
    role_steps: Vec<Step>,
}

/// A rename of the entry: its new RDN and DN, and its new parent when it moves.
struct Move {
    rdn: String,
    dn: Dn,
    parent: Option<Dn>,
}

impl Move {
    /// Whether the RDN changes (not only the parent).
    fn renames(&self, old: &Dn) -> bool {
        let (old_rdn, _) = split_first_rdn(old);
        !old_rdn.eq_ignore_ascii_case(&self.rdn)
    }
}
