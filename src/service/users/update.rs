//! PUT and PATCH of a user: the new resource computed once, its LDAP changes, a rename when the RDN
//! changes, roles and password, as one plan.

use crate::directory::budget;
use crate::directory::filter::split_first_rdn;
use crate::directory::{DirectoryError, Dn, Entry};
use crate::scim::patch::{apply_patch, PatchOperation};
use crate::scim::resource::Normalized;
use crate::scim::value::Resource as ScimResource;
use crate::service::error::{ServiceError, ServiceResult};
use crate::service::write::{restore, Op, Plan, Step, StepKind, Undo};
use crate::service::{RequestCtx, Resource};

use super::render::{dn_for, Refs};
use super::{required_user_name, Users};

impl Users {
    pub async fn replace(
        &self,
        ctx: &RequestCtx,
        id: &str,
        body: Normalized,
    ) -> ServiceResult<Resource> {
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
    ) -> ServiceResult<Resource> {
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
    ) -> ServiceResult<Resource> {
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
        extra: Vec<crate::directory::Change>,
    ) -> ServiceResult<Resource> {
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
        let old_name = self.store.name_of(&e).unwrap_or_default().to_owned();
        if !new_name.eq_ignore_ascii_case(&old_name) {
            self.store
                .ensure_unique(container, new_name, Some(&e.id))
                .await?;
        }
        let rename = !mapping.rdn_fits(&e.dn, &new_res)?;
        let new_rdn = match (rename, mapping.numbered_rdn) {
            (true, true) => {
                let base = mapping.rdn_text(&new_res)?;
                self.free_rdn(container, &base, Some(&e.dn)).await?
            }
            _ => mapping.rdn(&new_res)?,
        };
        if rename {
            // modrdn sets the naming attribute; the modify must leave it alone
            changes.retain(|c| !c.attr().eq_ignore_ascii_case(&mapping.rdn_attr));
        }
        let assertion = self.store.precondition(ctx, &e)?;
        let (old_rdn, parent) = split_first_rdn(&e.dn);
        let new_dn = Dn::new(format!("{new_rdn},{parent}"));
        let final_dn = if rename { &new_dn } else { &e.dn };
        let role_steps =
            self.role_steps(final_dn, &self.role_changes(ctx, &old_res, &new_res).await?);
        if changes.is_empty() && !rename && role_steps.is_empty() && password.is_none() {
            return self.render(ctx, &e, &refs).await;
        }
        let mut plan = Plan::new();
        if rename {
            if let Some(m) = &self.memberships {
                plan.steps.extend(m.stale_step(ctx, &new_dn));
            }
        }
        let modify_first = !changes.is_empty();
        if modify_first {
            plan.push(Step::new(
                StepKind::Modify,
                Op::Modify {
                    dn: e.dn.clone(),
                    changes: changes.clone(),
                    values: None,
                    assertion: assertion.clone(),
                },
                Undo::by(Op::Modify {
                    dn: e.dn.clone(),
                    changes: restore(&e, &changes),
                    values: None,
                    assertion: None,
                }),
            ));
        }
        if let Some(new) = password {
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
        if rename {
            plan.push(Step::new(
                StepKind::Rename,
                Op::Rename {
                    dn: e.dn.clone(),
                    rdn: new_rdn.clone(),
                    parent: None,
                    // the modify, when there is one, carried If-Match (and changed the version)
                    assertion: if modify_first { None } else { assertion },
                },
                Undo::by(Op::Rename {
                    dn: new_dn.clone(),
                    rdn: old_rdn,
                    parent: None,
                    assertion: None,
                }),
            ));
            if let Some(m) = &self.memberships {
                plan.steps.extend(m.follow_step(ctx, &e.dn, &new_dn));
            }
        }
        plan.steps.extend(role_steps);
        // the modify returns the entry (post-read) when it is the last step: later steps
        // (groups, memberOf) would change what it returned
        let attrs = self.store.attrs();
        let read = (modify_first && plan.steps.len() == 1).then_some((0, attrs.as_slice()));
        let written = match self.store.writer().run_reading(plan, read).await {
            Ok(entry) => entry,
            Err(err)
                if matches!(
                    err.failed_at(StepKind::Rename),
                    Some(DirectoryError::AlreadyExists(_))
                ) =>
            {
                return Err(ServiceError::uniqueness(format!(
                    "userName \"{new_name}\" is already taken"
                )))
            }
            Err(err) => return Err(err.into()),
        };
        let dn = if rename {
            self.store.cache.forget_name(container, &old_name).await;
            new_dn
        } else {
            e.dn.clone()
        };
        budget::settling(async {
            let updated = match written {
                Some(entry) => entry,
                None => self.store.read_back(&dn, &attrs).await?,
            };
            self.remember(ctx, &updated).await;
            self.render(ctx, &updated, &refs).await
        })
        .await
    }
}
