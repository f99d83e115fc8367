//! POST /Users: the checks, the plan (add, password, default group, roles), a free RDN, and
//! matching an existing account (`users.match_on`).

use tracing::info;

use crate::config::{OnExisting, UnmappedPassword};
use crate::directory::budget;
use crate::directory::filter::split_first_rdn;
use crate::directory::{Dn, Entry, LdapFilter};
use crate::mapping::DesiredAttrs;
use crate::scim::resource::Normalized;
use crate::scim::schema::Container;
use crate::scim::value::Resource as ScimResource;
use crate::service::creates::{CreateKey, CreateReceipt};
use crate::service::error::{ServiceError, ServiceResult};
use crate::service::write::{NewPassword, Op, Plan, Step, StepKind, Undo};
use crate::service::{RequestCtx, View};

use super::render::{dn_for, Refs};
use super::roles::RoleChanges;
use super::{required_user_name, taken, Users};

impl Users {
    /// Normalises a request body into a resource and checks what every write needs.
    pub(super) fn accept(&self, body: Normalized) -> ServiceResult<ScimResource> {
        let Normalized {
            resource: mut res,
            ignored,
        } = body;
        // Read-only attributes in a request are ignored (RFC 7643 §2.2).
        for k in ["id", "meta", "groups"] {
            res.remove(Container::Core, k);
        }
        self.screen_password(&mut res)?;
        self.mapping().check_unmapped(&res, &ignored)?;
        required_user_name(&res)?;
        Ok(res)
    }

    /// A password the mapping does not store is a decision the admin made visible: dropped
    /// when `users.password = "ignore"`, else a 400 naming the keys, so that an IdP's
    /// password sync never creates accounts nobody can log in to without anyone knowing.
    pub(super) fn screen_password(&self, res: &mut ScimResource) -> ServiceResult<()> {
        if self.mapping().password_attr().is_some() || res.core("password").is_none() {
            return Ok(());
        }
        match self.settings.password {
            UnmappedPassword::Ignore => {
                res.remove(Container::Core, "password");
                tracing::debug!("password ignored (users.password = \"ignore\")");
                Ok(())
            }
            UnmappedPassword::Refuse => Err(ServiceError::invalid_value(
                "this server does not store passwords: its admin maps users.attributes.password (OpenLDAP: \"userPassword\", Active Directory: \"unicodePwd\") or sets users.password = \"ignore\"; or turn password sync off in the identity provider",
            )),
        }
    }

    /// The password in `res` and where it lands, when the mapping stores passwords.
    pub(super) fn new_password(&self, res: &ScimResource) -> ServiceResult<Option<NewPassword>> {
        let Some(attr) = self.mapping().password_attr() else {
            return Ok(None);
        };
        Ok(self.mapping().password(res)?.map(|password| NewPassword {
            attr: attr.to_owned(),
            password,
        }))
    }

    /// POST. The plan: clear stale memberships of the new DN, add the entry, join the
    /// tenant's default group. A userName that exists is a 409 naming the user, whatever
    /// values come with it (RFC 7644 §3.3); a retry of a create whose answer was lost is
    /// recognised before this, by `key` (see `creates`), which the answer carries.
    pub async fn create(
        &self,
        ctx: &RequestCtx,
        body: Normalized,
        key: CreateKey,
    ) -> ServiceResult<View> {
        let container = &ctx.tenant.users_container;
        crate::service::journal::creating(key);
        let res = self.accept(body)?;
        let user_name = required_user_name(&res)?.to_owned();
        let password = self.new_password(&res)?;
        let refs = self.resolve_refs(ctx, &res, Refs::new()).await?;
        let desired = self.mapping().to_ldap(&res, &|id| dn_for(&refs, id))?;
        let base = self.mapping().rdn_text(&res)?;
        if let Some(e) = self
            .store
            .find_by_name(container, &user_name, &self.store.attrs())
            .await?
        {
            return match self.settings.on_existing {
                OnExisting::Link => self.link(ctx, e, res).await,
                OnExisting::Conflict => Err(taken(&user_name, &e)),
            };
        }
        if let Some(e) = self.find_existing(ctx, &desired).await? {
            return match self.settings.on_existing {
                OnExisting::Link => self.link(ctx, e, res).await,
                OnExisting::Conflict => Err(ServiceError::Taken(format!(
                    "this person already has an account ({}) matching on {} (users.match_on); set users.on_existing = \"link\" to take such accounts over",
                    e.dn,
                    self.settings.match_on.join(", ")
                ))),
            };
        }
        let roles = self.role_changes(ctx, &ScimResource::new(), &res).await?;
        let attrs = self.store.attrs();
        let placed = ctx.tenant.placement.place(&res, container);
        let new_user = NewUser {
            user_name: &user_name,
            parent: placed.container,
            base: &base,
            desired: &desired,
            password: password.as_ref(),
            roles: &roles,
        };
        let (dn, written) = self.add(ctx, &new_user, &attrs).await?;
        // the answer is made on the budget's reserve: the plan may have used its time
        budget::settling(async {
            let e = match written {
                Some(e) => e,
                None => self.store.read_back(&dn, &attrs).await?,
            };
            self.remember(ctx, &e).await;
            self.store.created(&e.id);
            info!(tenant = %ctx.tenant.name, id = %e.id, "user created");
            let mut made = self.render(ctx, &e, &refs).await?;
            made.created = Some(CreateReceipt { key, id: e.id });
            Ok(made)
        })
        .await
    }

    /// Adds the entry (with its password and roles) under a free name: a name taken by
    /// another entry is numbered where the mapping allows it (AD's second "John Smith"), a
    /// few times over if others take the numbers meanwhile. Returns its DN and, when the add
    /// could read it back, the entry.
    async fn add(
        &self,
        ctx: &RequestCtx,
        u: &NewUser<'_>,
        attrs: &[&str],
    ) -> ServiceResult<(Dn, Option<Entry>)> {
        let container = &ctx.tenant.users_container;
        let mut rdn = self.mapping().rdn_of(u.base);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let dn = Dn::new(format!("{rdn},{}", u.parent));
            let mut plan = self.create_plan(ctx, &dn, u.desired, &rdn, u.password);
            plan.steps.extend(self.role_steps(&dn, u.roles));
            // the add returns the entry (post-read) when nothing after it changes memberOf
            let read = (plan.steps.last().map(|s| s.kind) == Some(StepKind::Add))
                .then(|| (plan.steps.len() - 1, attrs));
            let err = match self.store.writer().run_reading(plan, read).await {
                Ok(written) => return Ok((dn, written)),
                Err(err) => err,
            };
            if matches!(
                err.failed_at(StepKind::Add),
                Some(crate::directory::DirectoryError::NoSuchObject(_))
            ) {
                return Err(missing_container(u.parent));
            }
            if !err.name_taken_at(StepKind::Add) {
                return Err(err.into());
            }
            // another request (or another bridge) created this name first
            if let Some(e) = self
                .store
                .find_by_name(container, u.user_name, &[self.mapping().username_attr()])
                .await?
            {
                return Err(taken(u.user_name, &e));
            }
            if !self.mapping().numbered_rdn || attempts >= 3 {
                return Err(ServiceError::Taken(format!(
                    "userName \"{}\" cannot be created: the directory entry {dn} already exists",
                    u.user_name
                )));
            }
            rdn = self.free_rdn(u.parent, u.base, None).await?;
        }
    }

    /// The plan of a create at `dn`: clear stale memberships of the DN, add the entry, join
    /// the tenant's default group.
    pub(super) fn create_plan(
        &self,
        ctx: &RequestCtx,
        dn: &Dn,
        desired: &DesiredAttrs<'_>,
        rdn: &str,
        password: Option<&NewPassword>,
    ) -> Plan {
        let mut plan = Plan::new();
        if let Some(m) = &self.memberships {
            plan.steps.extend(m.stale_step(ctx, dn));
        }
        plan.push(Step::new(
            StepKind::Add,
            Op::Add {
                dn: dn.clone(),
                attrs: self.mapping().new_entry(desired, rdn),
                password: password.cloned(),
            },
            Undo::by(Op::Delete {
                dn: dn.clone(),
                assertion: None,
            }),
        ));
        if let (Some(m), Some(group)) = (&self.memberships, &ctx.tenant.default_group) {
            plan.push(m.change_step(
                StepKind::Join,
                &Dn::new(group.as_str()),
                m.values(vec![dn.clone()], vec![]),
            ));
        }
        plan
    }

    /// The RDN for `base` under `container` that no entry but `except` has: `base` itself
    /// when free, else `base 2`, `base 3`, … (one search for the taken ones).
    pub(super) async fn free_rdn(
        &self,
        container: &Dn,
        base: &str,
        except: Option<&Dn>,
    ) -> ServiceResult<String> {
        let m = self.mapping();
        let attr = m.rdn_attr.as_str();
        let filter = LdapFilter::and(vec![
            self.store.class_filter(),
            LdapFilter::or(vec![
                LdapFilter::eq(attr, base),
                LdapFilter::Substring {
                    attr: attr.to_owned(),
                    initial: Some(format!("{base} ")),
                    any: Vec::new(),
                    last: None,
                },
            ]),
        ]);
        let (found, _) = self
            .store
            .dir
            .search(container, &filter, &[attr], 0)
            .await?;
        let taken: std::collections::HashSet<String> = found
            .iter()
            .filter(|e| Some(&e.dn) != except)
            .filter_map(|e| {
                let (rdn, _) = split_first_rdn(&e.dn);
                rdn.split_once('=')
                    .map(|(_, v)| crate::directory::filter::unescape_dn_value(v).to_lowercase())
            })
            .collect();
        let free = |v: &str| !taken.contains(&v.to_lowercase());
        if free(base) {
            return Ok(m.rdn_of(base));
        }
        let limit = u32::try_from(taken.len())
            .unwrap_or(u32::MAX)
            .saturating_add(2);
        (2..=limit)
            .map(|n| m.numbered(base, n))
            .find(|v| free(v))
            .map(|v| m.rdn_of(&v))
            .ok_or_else(|| {
                ServiceError::Taken(format!(
                    "no free directory name for \"{base}\" under {container}"
                ))
            })
    }

    /// The account of the tenant that `desired` matches on `users.match_on`, if exactly one
    /// does; two or more are a 409 (no guess which to take over).
    pub(super) async fn find_existing(
        &self,
        ctx: &RequestCtx,
        desired: &DesiredAttrs<'_>,
    ) -> ServiceResult<Option<Entry>> {
        let terms: Vec<LdapFilter> = self
            .settings
            .match_on
            .iter()
            .filter_map(|attr| {
                desired
                    .iter()
                    .find(|(a, _)| a.eq_ignore_ascii_case(attr))
                    .and_then(|(a, d)| match d {
                        crate::mapping::Desired::Set(v) => Some(LdapFilter::eq(a, v.clone())),
                        _ => None,
                    })
            })
            .collect();
        if terms.is_empty() {
            return Ok(None);
        }
        let filter = LdapFilter::and(vec![self.store.class_filter(), LdapFilter::or(terms)]);
        let (mut found, _) = self
            .store
            .dir
            .search(&ctx.tenant.users_container, &filter, &self.store.attrs(), 2)
            .await?;
        match found.as_slice() {
            [] => Ok(None),
            [_] => Ok(found.pop()),
            [a, b, ..] => Err(ServiceError::Taken(format!(
                "several accounts match this person on {} ({} and {}): fix the directory or users.match_on",
                self.settings.match_on.join(", "),
                a.dn,
                b.dn
            ))),
        }
    }

    /// Takes over the existing account `e` (users.on_existing = "link"): the request's
    /// attributes are applied over what it holds (sub-attributes merged), everything else
    /// (groups, attributes the request or the mapping does not name) is kept; 201 with its id.
    pub(super) async fn link(
        &self,
        ctx: &RequestCtx,
        e: Entry,
        res: ScimResource,
    ) -> ServiceResult<View> {
        let (old_res, old_refs) = self.scim_view(ctx, &e, &Refs::new()).await?;
        let mut new_res = old_res.clone();
        new_res.merge(res);
        // an account made by other tools may lack the classes the mapping's attributes need
        // (scim2ldapPerson for externalId): they join the same modify
        let classes = match self.store.dir.read(&e.dn, &["objectClass"]).await? {
            Some(c) => c.values("objectClass").to_vec(),
            None => Vec::new(),
        };
        let missing: Vec<String> = self
            .mapping()
            .object_classes
            .iter()
            .filter(|oc| !classes.iter().any(|c| c.eq_ignore_ascii_case(oc)))
            .cloned()
            .collect();
        let extra = if missing.is_empty() {
            Vec::new()
        } else {
            vec![crate::directory::Change::Add("objectClass".into(), missing)]
        };
        info!(tenant = %ctx.tenant.name, id = %e.id, "a create took over an existing account");
        self.write_with(ctx, e, old_res, old_refs, new_res, extra)
            .await
    }
}

/// What a create writes, decided before the add.
/// The add failed because the container it went to does not exist: the admin's to fix.
pub(super) fn missing_container(parent: &Dn) -> ServiceError {
    ServiceError::Internal(format!(
        "the container {parent} (users.container, or the placement rule that chose it) does not exist in the directory; nothing was written"
    ))
}

struct NewUser<'a> {
    user_name: &'a str,
    /// The container the placement rules chose.
    parent: &'a Dn,
    /// The RDN value before any number is added.
    base: &'a str,
    desired: &'a DesiredAttrs<'a>,
    password: Option<&'a NewPassword>,
    roles: &'a RoleChanges,
}
