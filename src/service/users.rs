//! SCIM Users against the directory: every operation reads what it must (through the DN
//! cache), computes one set of changes, and applies it so that a failure leaves nothing
//! half-done.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};
use tracing::info;

use crate::config::{DeleteMode, OnExisting, UnmappedPassword};
use crate::directory::budget;
use crate::directory::filter::{is_under, split_first_rdn};
use crate::directory::{DirectoryError, Dn, Entry, EntryId, LdapFilter};
use crate::mapping::{Mapping, ValueKind};
use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::patch::{apply_patch, parse_patch_request};
use crate::scim::projection::Projection;
use crate::scim::resource::normalize_resource;
use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
use crate::scim::{ScimError, ScimResult};

use super::creates::{CreateKey, CreateReceipt};
use super::cursor::Cursors;
use super::error::{ServiceError, ServiceResult};
use super::list::{ListPage, ListQuery};
use super::memberships::Memberships;
use super::store::{CursorRequest, Store};
use super::write::{restore, NewPassword, Op, Plan, Step, StepKind, Undo};
use super::{RequestCtx, Resource};

#[derive(Debug, Clone)]
pub struct UserSettings {
    pub delete_mode: DeleteMode,
    pub archive_container: Option<Dn>,
    /// The most resources a list returns (and the default `count`).
    pub max_results: usize,
    pub limits: crate::scim::Limits,
    /// LDAP attributes that find an existing account on create (`users.match_on`).
    pub match_on: Vec<String>,
    pub on_existing: OnExisting,
    /// What a password does when the mapping does not store passwords.
    pub password: UnmappedPassword,
}

/// Role groups a write joins and leaves (`[roles]`).
#[derive(Debug, Default)]
struct RoleChanges {
    join: Vec<Dn>,
    leave: Vec<Dn>,
}

/// The user references a request resolved: the DN each value the client sent names (an id,
/// or an email address), and the id of each of those DNs, so that a reference is read from
/// the directory once per request and shown as an id whatever form it came in.
#[derive(Debug, Default, Clone)]
struct Refs {
    dn_of: HashMap<String, Dn>,
    id_of: HashMap<Dn, EntryId>,
    /// DNs a batched lookup found to be no user of this tenant: not read again one by one.
    absent: HashSet<Dn>,
    /// Roles of users, read for a whole page at once (from their memberOf).
    roles: HashMap<Dn, Vec<String>>,
}

impl Refs {
    fn new() -> Refs {
        Refs::default()
    }

    fn insert(&mut self, sent: &str, dn: Dn, id: EntryId) {
        self.dn_of.insert(sent.to_owned(), dn.clone());
        self.id_of.insert(dn, id);
    }

    fn knows(&self, sent: &str) -> bool {
        self.dn_of.contains_key(sent)
    }

    fn dn(&self, sent: &str) -> Option<&Dn> {
        self.dn_of.get(sent)
    }

    fn id(&self, dn: &Dn) -> Option<&EntryId> {
        self.id_of.get(dn)
    }

    fn extend(&mut self, other: Refs) {
        self.dn_of.extend(other.dn_of);
        self.id_of.extend(other.id_of);
        self.absent.extend(other.absent);
        self.roles.extend(other.roles);
    }
}

pub struct Users {
    store: Arc<Store>,
    settings: UserSettings,
    memberships: Option<Arc<Memberships>>,
    cursors: Arc<Cursors>,
}

impl Users {
    /// Entries of this type: the users' structural class (the repair sweep's searches).
    pub fn class_filter(&self) -> LdapFilter {
        self.store.class_filter()
    }

    pub fn new(
        store: Arc<Store>,
        settings: UserSettings,
        memberships: Option<Arc<Memberships>>,
        cursors: Arc<Cursors>,
    ) -> Users {
        Users {
            store,
            settings,
            memberships,
            cursors,
        }
    }

    pub fn max_results(&self) -> usize {
        self.settings.max_results
    }

    fn mapping(&self) -> &Mapping {
        &self.store.mapping
    }

    /// The memberships, when users' roles are role-group memberships (`[roles]`).
    fn role_groups(&self) -> Option<&Memberships> {
        self.memberships.as_deref().filter(|m| m.roles)
    }

    /// The role groups to join and to leave going from the roles in `old` to those in `new`
    /// (one search). A role with no group is a 400 before anything is written; a role whose
    /// group is gone is left as it is.
    async fn role_changes(
        &self,
        ctx: &RequestCtx,
        old: &Map<String, Value>,
        new: &Map<String, Value>,
    ) -> ServiceResult<RoleChanges> {
        let Some(m) = self.role_groups() else {
            return Ok(RoleChanges::default());
        };
        let limit = self.settings.limits.max_values_per_attribute;
        let (old, new) = (role_names(old, limit)?, role_names(new, limit)?);
        let has = |list: &[String], r: &String| list.iter().any(|x| x.eq_ignore_ascii_case(r));
        let joins: Vec<String> = new.iter().filter(|r| !has(&old, r)).cloned().collect();
        let leaves: Vec<String> = old.iter().filter(|r| !has(&new, r)).cloned().collect();
        let mut all = joins.clone();
        all.extend(leaves.iter().cloned());
        let groups = m.role_groups(ctx, &all).await?;
        if let Some(missing) = joins
            .iter()
            .find(|r| !groups.contains_key(&r.to_lowercase()))
        {
            return Err(ServiceError::invalid_value(format!(
                "no role \"{missing}\": roles are the groups under {}; create the group first",
                m.roles_container(ctx)
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            )));
        }
        let dns = |names: Vec<String>| -> Vec<Dn> {
            names
                .iter()
                .filter_map(|r| groups.get(&r.to_lowercase()).cloned())
                .collect()
        };
        Ok(RoleChanges {
            join: dns(joins),
            leave: dns(leaves),
        })
    }

    /// The plan steps applying `changes` to the user at `dn`: one member add or delete per
    /// role group, each undone by its inverse.
    fn role_steps(&self, dn: &Dn, changes: &RoleChanges) -> Vec<Step> {
        let Some(m) = self.role_groups() else {
            return Vec::new();
        };
        let join = changes
            .join
            .iter()
            .map(|g| (g, m.values(vec![dn.clone()], vec![])));
        let leave = changes
            .leave
            .iter()
            .map(|g| (g, m.values(vec![], vec![dn.clone()])));
        join.chain(leave)
            .map(|(g, values)| m.change_step(StepKind::Roles, g, values))
            .collect()
    }

    async fn locate(&self, ctx: &RequestCtx, id: &str) -> ServiceResult<Entry> {
        self.store
            .locate(&ctx.tenant.users_container, id, &self.store.attrs())
            .await
    }

    async fn remember(&self, ctx: &RequestCtx, e: &Entry) {
        self.store.remember(&ctx.tenant.users_container, e).await;
    }

    /// The entry as SCIM attributes (no id/meta), with DN references turned into ids; also
    /// those references as id → DN, so that a write need not look them up again.
    async fn scim_view(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        known: &Refs,
    ) -> ServiceResult<(Map<String, Value>, Refs)> {
        let mut ids = HashMap::new();
        for m in self
            .mapping()
            .attrs
            .iter()
            .filter(|m| m.kind == ValueKind::UserDn)
        {
            let Some(dn) = e.first(&m.ldap) else { continue };
            // a DN this request just resolved needs no read; any other is read (a DN can be
            // reused by a new entry, so an id for it is never cached)
            let dn = Dn::new(dn);
            let id = match known.id(&dn) {
                Some(id) => Some(id.clone()),
                None if known.absent.contains(&dn) => None,
                None => {
                    self.store
                        .id_for_dn(&ctx.tenant.users_container, &dn)
                        .await?
                }
            };
            if let Some(id) = id {
                ids.insert(dn, id);
            }
        }
        let mut res = self
            .mapping()
            .to_scim(e, &|dn| ids.get(&Dn::new(dn)).map(|id| id.to_string()));
        if let Some(m) = self.role_groups() {
            let roles = match known.roles.get(&e.dn) {
                Some(roles) => roles.clone(),
                None => m.roles_of(ctx, &e.dn).await?,
            };
            if !roles.is_empty() {
                let values = roles.into_iter().map(|r| serde_json::json!({"value": r}));
                res.insert("roles".into(), Value::Array(values.collect()));
            }
        }
        let mut refs = Refs::new();
        for (dn, id) in ids {
            refs.insert(&id.to_string(), dn, id);
        }
        Ok((res, refs))
    }

    /// The full resource: attributes plus `schemas`, `id`, `groups` and `meta`; `known`
    /// holds references (id → DN) the caller already resolved.
    async fn render(&self, ctx: &RequestCtx, e: &Entry, known: &Refs) -> ServiceResult<Resource> {
        let body = self.render_with(ctx, e, true, known).await?;
        Ok(self.store.resource(&ctx.base_url, e, body))
    }

    /// What a read of `p`'s attributes fetches: only what it will show.
    fn read_attrs(&self, p: &Projection) -> Vec<&str> {
        let roles_by_member_of = self.role_groups().is_some() && p.includes("roles");
        let member_of = match (
            &self.memberships,
            p.includes("groups") || roles_by_member_of,
        ) {
            (Some(m), true) => m.member_of_attr.as_deref(),
            _ => None,
        };
        self.store
            .attrs_for(&|k| p.includes(k), member_of.as_slice())
    }

    /// The resource; `groups` (which may cost directory reads) only when `with_groups`.
    async fn render_with(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        with_groups: bool,
        known: &Refs,
    ) -> ServiceResult<Value> {
        let (res, _) = self.scim_view(ctx, e, known).await?;
        let groups = match (&self.memberships, with_groups) {
            (Some(m), true) => Some(m.groups_of(ctx, e).await?),
            _ => None,
        };
        Ok(self.assemble(ctx, e, res, groups))
    }

    /// The resources of a list page. Costs do not grow with the page: the users' manager
    /// ids, groups and roles are read for the whole page at once (batched searches), not per
    /// user.
    async fn render_page(
        &self,
        ctx: &RequestCtx,
        entries: &[Entry],
        with_groups: bool,
    ) -> ServiceResult<Vec<Value>> {
        let container = &ctx.tenant.users_container;
        let mut known = Refs::new();
        let referenced: Vec<Dn> = self
            .mapping()
            .attrs
            .iter()
            .filter(|m| m.kind == ValueKind::UserDn)
            .flat_map(|m| entries.iter().filter_map(|e| e.first(&m.ldap)))
            .map(Dn::new)
            .collect();
        if !referenced.is_empty() {
            let ids = self.store.ids_for_dns(container, &referenced).await?;
            for dn in referenced {
                match ids.get(&dn) {
                    Some(id) => {
                        known.id_of.insert(dn, id.clone());
                    }
                    None => {
                        known.absent.insert(dn);
                    }
                }
            }
        }
        if let Some(m) = self.role_groups() {
            for e in entries {
                if let Some(roles) = m.roles_from_member_of(ctx, e) {
                    known.roles.insert(e.dn.clone(), roles);
                }
            }
        }
        let groups: Vec<Option<Vec<Value>>> = match (&self.memberships, with_groups) {
            (Some(m), true) => {
                let users: Vec<&Entry> = entries.iter().collect();
                m.groups_of_many(ctx, &users)
                    .await?
                    .into_iter()
                    .map(Some)
                    .collect()
            }
            _ => vec![None; entries.len()],
        };
        let mut out = Vec::with_capacity(entries.len());
        for (e, groups) in entries.iter().zip(groups) {
            let (res, _) = self.scim_view(ctx, e, &known).await?;
            out.push(self.assemble(ctx, e, res, groups));
        }
        Ok(out)
    }

    /// The resource from its SCIM attributes: `schemas`, `id`, the attributes, `groups`
    /// (when read) and `meta`.
    fn assemble(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        mut res: Map<String, Value>,
        groups: Option<Vec<Value>>,
    ) -> Value {
        let mut schemas = vec![Value::String(USER_SCHEMA.into())];
        if let Some(Value::Object(ext)) = res.get_mut(ENTERPRISE_USER_SCHEMA) {
            schemas.push(Value::String(ENTERPRISE_USER_SCHEMA.into()));
            if let Some(Value::Object(mgr)) = ext.get_mut("manager") {
                if let Some(Value::String(mid)) = mgr.get("value").cloned() {
                    mgr.insert(
                        "$ref".into(),
                        Value::String(format!("{}/Users/{mid}", ctx.base_url)),
                    );
                }
            }
        }
        let mut out = Map::new();
        out.insert("schemas".into(), Value::Array(schemas));
        out.insert("id".into(), Value::String(e.id.to_string()));
        out.extend(res);
        if let Some(groups) = groups.filter(|g| !g.is_empty()) {
            out.insert("groups".into(), Value::Array(groups));
        }
        out.insert("meta".into(), self.store.meta(&ctx.base_url, e));
        Value::Object(out)
    }

    /// DNs of the users that `res` references (e.g. its manager), added to `known`.
    /// Unknown references are left out: `to_ldap` then leaves the attribute as it is.
    async fn resolve_refs(
        &self,
        ctx: &RequestCtx,
        res: &Map<String, Value>,
        known: Refs,
    ) -> ServiceResult<Refs> {
        let mut out = known;
        let wanted: Vec<String> = self
            .mapping()
            .referenced_ids(res)
            .into_iter()
            .filter(|id| !out.knows(id))
            .collect();
        out.extend(self.dns_for_refs(ctx, &wanted).await?);
        Ok(out)
    }

    /// The DNs of the tenant's users that `refs` name, each by its id or, when it has an
    /// `@` (Huntress's and some Entra mappings send the manager's email), by the mapped
    /// email attribute when exactly one user has it. One search for the ids and one for the
    /// emails, whatever their number.
    async fn dns_for_refs(&self, ctx: &RequestCtx, refs: &[String]) -> ServiceResult<Refs> {
        let mut out = Refs::new();
        if refs.is_empty() {
            return Ok(out);
        }
        let container = &ctx.tenant.users_container;
        let ids: Vec<&str> = refs.iter().map(String::as_str).collect();
        let found = self
            .store
            .locate_many(container, &ids, &[self.store.dir.id_attribute()])
            .await?;
        let mut emails = Vec::new();
        for r in refs {
            let id = EntryId::from(r.as_str());
            match found.get(&id) {
                Some(e) => out.insert(r, e.dn.clone(), id),
                None if r.contains('@') => emails.push(r.as_str()),
                None => {}
            }
        }
        let Some(mail_attr) = self.mapping().email_attr() else {
            return Ok(out);
        };
        if emails.is_empty() {
            return Ok(out);
        }
        let filter = LdapFilter::and(vec![
            self.store.class_filter(),
            LdapFilter::or(
                emails
                    .iter()
                    .map(|m| LdapFilter::eq(mail_attr, (*m).to_owned()))
                    .collect(),
            ),
        ]);
        let (entries, _) = self
            .store
            .dir
            .search(
                container,
                &filter,
                &[mail_attr, self.store.dir.id_attribute()],
                2 * emails.len() + 1,
            )
            .await?;
        for m in emails {
            let mut holders = entries.iter().filter(|e| {
                e.values(mail_attr)
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case(m))
            });
            match (holders.next(), holders.next()) {
                (Some(e), None) => out.insert(m, e.dn.clone(), e.id.clone()),
                (Some(_), Some(_)) => {
                    tracing::warn!(email = %m, "several users have this email; reference not stored")
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Normalises a request body into a resource and checks what every write needs.
    fn parse_body(&self, body: &Value) -> ServiceResult<Map<String, Value>> {
        let n = normalize_resource(body, self.mapping().schema)?;
        let mut res = n.resource;
        // Read-only attributes in a request are ignored (RFC 7643 §2.2).
        for k in ["id", "meta", "groups"] {
            res.remove(k);
        }
        self.screen_password(&mut res)?;
        self.mapping().check_unmapped(&res, &n.ignored)?;
        required_user_name(&res)?;
        Ok(res)
    }

    /// A password the mapping does not store is a decision the admin made visible: dropped
    /// when `users.password = "ignore"`, else a 400 naming the keys, so that an IdP's
    /// password sync never creates accounts nobody can log in to without anyone knowing.
    fn screen_password(&self, res: &mut Map<String, Value>) -> ServiceResult<()> {
        if self.mapping().password_attr().is_some() || !res.contains_key("password") {
            return Ok(());
        }
        match self.settings.password {
            UnmappedPassword::Ignore => {
                res.remove("password");
                tracing::debug!("password ignored (users.password = \"ignore\")");
                Ok(())
            }
            UnmappedPassword::Refuse => Err(ServiceError::invalid_value(
                "this server does not store passwords: its admin maps users.attributes.password (OpenLDAP: \"userPassword\", Active Directory: \"unicodePwd\") or sets users.password = \"ignore\"; or turn password sync off in the identity provider",
            )),
        }
    }

    /// The password in `res` and where it lands, when the mapping stores passwords.
    fn new_password(&self, res: &Map<String, Value>) -> ServiceResult<Option<NewPassword>> {
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
        body: &Value,
        key: CreateKey,
    ) -> ServiceResult<Resource> {
        let container = &ctx.tenant.users_container;
        super::journal::creating(key);
        let res = self.parse_body(body)?;
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
                OnExisting::Conflict => Err(ServiceError::uniqueness(format!(
                    "this person already has an account ({}) matching on {} (users.match_on); set users.on_existing = \"link\" to take such accounts over",
                    e.dn,
                    self.settings.match_on.join(", ")
                ))),
            };
        }
        let roles = self.role_changes(ctx, &Map::new(), &res).await?;
        let mut rdn = self.mapping().rdn_of(&base);
        // a name taken by another entry: numbered where the mapping allows it (AD's second
        // "John Smith"), a few times over if others take the numbers meanwhile
        let mut attempts = 0;
        let attrs = self.store.attrs();
        let (dn, written) = loop {
            attempts += 1;
            let dn = Dn::new(format!("{rdn},{container}"));
            let mut plan = self.create_plan(ctx, &dn, &desired, &rdn, password.as_ref());
            plan.steps.extend(self.role_steps(&dn, &roles));
            // the add returns the entry (post-read) when nothing after it changes memberOf
            let read = (plan.steps.last().map(|s| s.kind) == Some(StepKind::Add))
                .then(|| (plan.steps.len() - 1, attrs.as_slice()));
            let err = match self.store.writer().run_reading(plan, read).await {
                Ok(written) => break (dn, written),
                Err(err) => err,
            };
            if !matches!(
                err.failed_at(StepKind::Add),
                Some(DirectoryError::AlreadyExists(_))
            ) {
                return Err(err.into());
            }
            // another request (or another bridge) created this name first
            if let Some(e) = self
                .store
                .find_by_name(container, &user_name, &[self.mapping().username_attr()])
                .await?
            {
                return Err(taken(&user_name, &e));
            }
            if !self.mapping().numbered_rdn || attempts >= 3 {
                return Err(ServiceError::uniqueness(format!(
                    "userName \"{user_name}\" cannot be created: the directory entry {dn} already exists"
                )));
            }
            rdn = self.free_rdn(container, &base, None).await?;
        };
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

    /// The plan of a create at `dn`: clear stale memberships of the DN, add the entry, join
    /// the tenant's default group.
    fn create_plan(
        &self,
        ctx: &RequestCtx,
        dn: &Dn,
        desired: &std::collections::BTreeMap<String, crate::mapping::Desired>,
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
    async fn free_rdn(
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
                ServiceError::uniqueness(format!(
                    "no free directory name for \"{base}\" under {container}"
                ))
            })
    }

    /// The account of the tenant that `desired` matches on `users.match_on`, if exactly one
    /// does; two or more are a 409 (no guess which to take over).
    async fn find_existing(
        &self,
        ctx: &RequestCtx,
        desired: &std::collections::BTreeMap<String, crate::mapping::Desired>,
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
            [a, b, ..] => Err(ServiceError::uniqueness(format!(
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
    async fn link(
        &self,
        ctx: &RequestCtx,
        e: Entry,
        res: Map<String, Value>,
    ) -> ServiceResult<Resource> {
        let (old_res, old_refs) = self.scim_view(ctx, &e, &Refs::new()).await?;
        let mut new_res = old_res.clone();
        for (k, v) in res {
            match (new_res.get_mut(&k), v) {
                (Some(Value::Object(held)), Value::Object(sent)) => held.extend(sent),
                (_, v) => {
                    new_res.insert(k, v);
                }
            }
        }
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

    /// A user, reading only the LDAP attributes `p` lets through.
    pub async fn get(&self, ctx: &RequestCtx, id: &str, p: &Projection) -> ServiceResult<Resource> {
        let e = self
            .store
            .locate(&ctx.tenant.users_container, id, &self.read_attrs(p))
            .await?;
        let body = self
            .render_with(ctx, &e, p.includes("groups"), &Refs::new())
            .await?;
        Ok(self.store.resource(&ctx.base_url, &e, body))
    }

    pub async fn replace(
        &self,
        ctx: &RequestCtx,
        id: &str,
        body: &Value,
    ) -> ServiceResult<Resource> {
        let new_res = self.parse_body(body)?;
        let e = self.locate(ctx, id).await?;
        let (old_res, old_refs) = self.scim_view(ctx, &e, &Refs::new()).await?;
        self.write(ctx, e, old_res, old_refs, new_res).await
    }

    pub async fn patch(&self, ctx: &RequestCtx, id: &str, body: &Value) -> ServiceResult<Resource> {
        let ops = parse_patch_request(body, &self.settings.limits)?;
        self.mapping().check_patch_targets(&ops)?;
        let e = self.locate(ctx, id).await?;
        let (old_res, old_refs) = self.scim_view(ctx, &e, &Refs::new()).await?;
        let mut new_res = old_res.clone();
        apply_patch(&mut new_res, &ops, self.mapping().schema, &e.id)?;
        self.screen_password(&mut new_res)?;
        self.mapping().check_unmapped(&new_res, &[])?;
        required_user_name(&new_res)?;
        self.write(ctx, e, old_res, old_refs, new_res).await
    }

    /// Takes the entry from `old_res` to `new_res`. The plan: if the name changes, clear
    /// stale memberships of the new DN; one modify of the attributes whose directory state
    /// differs (carrying `If-Match`); the rename; groups follow the new DN. A failure undoes
    /// the steps before it.
    async fn write(
        &self,
        ctx: &RequestCtx,
        e: Entry,
        old_res: Map<String, Value>,
        old_refs: Refs,
        new_res: Map<String, Value>,
    ) -> ServiceResult<Resource> {
        self.write_with(ctx, e, old_res, old_refs, new_res, Vec::new())
            .await
    }

    /// `write`, with `extra` changes in the same modify (a linked account's missing classes).
    async fn write_with(
        &self,
        ctx: &RequestCtx,
        e: Entry,
        old_res: Map<String, Value>,
        old_refs: Refs,
        new_res: Map<String, Value>,
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

    /// DELETE. By default the account is deactivated and moved to the archive container
    /// (reversible; SCIM answers 404 for it from then on); with `delete_mode = "delete"` the
    /// entry is removed. Either way it leaves its groups first, since no group may list an
    /// entry that answers 404, and the groups are swept again after the move for memberships
    /// a concurrent request added meanwhile. A failure undoes the steps before it.
    pub async fn delete(&self, ctx: &RequestCtx, id: &str) -> ServiceResult<()> {
        let container = &ctx.tenant.users_container;
        self.store.deleting(id);
        // the names an archive frees are read with the rest, so that an undo restores them
        let mut attrs = self.store.attrs();
        attrs.extend_from_slice(self.store.dir.unique_name_attributes());
        let e = match self.store.locate_opt(container, id, &attrs).await? {
            Some(e) => e,
            // an archived account (even this id, deleted before and retried now) answers 404
            // and nothing is written: the archive is shared by every tenant, and the name it
            // had may belong to a new account by now
            None => {
                return Err(ServiceError::not_found(format!(
                    "no User with id \"{}\"",
                    crate::logging::shorten(id, 64)
                )))
            }
        };
        let assertion = self.store.precondition(ctx, &e)?;
        let plan = match (self.settings.delete_mode, &self.settings.archive_container) {
            (DeleteMode::Delete, _) => self.delete_plan(ctx, &e, assertion),
            (DeleteMode::Archive, None) => {
                return Err(ServiceError::internal(
                    "delete_mode is archive but no archive_container is set",
                ))
            }
            (DeleteMode::Archive, Some(archive)) => {
                self.archive_plan(ctx, &e, archive, assertion).await?
            }
        };
        match self.store.writer().run(plan).await {
            Ok(()) => {}
            Err(err) if matches!(err.failed_at(StepKind::Archive), Some(DirectoryError::NoSuchObject(_))) => {
                return Err(ServiceError::internal(
                    "the archive container (users.archive_container) does not exist in the directory; the account was left as it was",
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
    fn delete_plan(&self, ctx: &RequestCtx, e: &Entry, assertion: Option<LdapFilter>) -> Plan {
        let mut plan = Plan::new();
        if let Some(m) = &self.memberships {
            plan.steps.extend(m.leave_step(ctx, &e.dn));
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
    async fn archive_plan(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        archive: &Dn,
        assertion: Option<LdapFilter>,
    ) -> ServiceResult<Plan> {
        let mut lock = match self.mapping().active() {
            Some(m) => {
                let mut res = Map::new();
                res.insert("active".into(), Value::Bool(false));
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
            plan.push(Step::new(
                StepKind::Lock,
                Op::Modify {
                    dn: e.dn.clone(),
                    changes: lock.clone(),
                    values: None,
                    assertion: assertion.take(),
                },
                Undo::by(Op::Modify {
                    dn: e.dn.clone(),
                    changes: restore(e, &lock),
                    values: None,
                    assertion: None,
                }),
            ));
        }
        if let Some(m) = &self.memberships {
            plan.steps.extend(m.leave_step(ctx, &e.dn));
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

    pub async fn list(&self, ctx: &RequestCtx, q: &ListQuery) -> ServiceResult<ListPage> {
        let container = &ctx.tenant.users_container;
        let start = q.start_index.max(1);
        let count = q
            .count
            .unwrap_or(self.settings.max_results)
            .min(self.settings.max_results);
        if let Some(cursor) = &q.cursor {
            return self.list_by_cursor(ctx, q, cursor, count).await;
        }
        if let Some(page) = self.list_by_cached_name(ctx, q, start, count).await? {
            return Ok(page);
        }
        let filter = match &q.filter {
            Some(f) => self.ldap_filter(ctx, f).await?,
            None => LdapFilter::True,
        };
        let attrs = self.read_attrs(&q.projection);
        let with_groups = q.projection.includes("groups");
        let (total, entries) = self
            .store
            .page_query(container, &filter, q, start, count, &attrs)
            .await?;
        for e in &entries {
            self.remember(ctx, e).await;
        }
        let resources = self.render_page(ctx, &entries, with_groups).await?;
        Ok(ListPage {
            total_results: total,
            start_index: start,
            resources,
            cursor: None,
        })
    }

    /// A page of a cursor walk (RFC 9865). A walk reads every attribute a page may show,
    /// whatever the first page's projection: later pages may ask for more.
    async fn list_by_cursor(
        &self,
        ctx: &RequestCtx,
        q: &ListQuery,
        cursor: &str,
        count: usize,
    ) -> ServiceResult<ListPage> {
        let filter = match (&q.filter, cursor.trim().is_empty()) {
            (_, false) => None,
            (Some(f), true) => Some(self.ldap_filter(ctx, f).await?),
            (None, true) => Some(LdapFilter::True),
        };
        let attrs = self.read_attrs(&Projection::default());
        let page = self
            .store
            .cursor_page(
                q,
                CursorRequest {
                    cursors: &self.cursors,
                    tenant: &ctx.tenant.name,
                    kind: "Users",
                    container: &ctx.tenant.users_container,
                    filter: filter.as_ref(),
                    cursor,
                    count,
                    attrs: &attrs,
                },
            )
            .await?;
        // not remembered in the DN cache: a walk over every user (an IdP's reconciliation)
        // would push out the entries requests actually come back for
        let with_groups = q.projection.includes("groups");
        let resources = self.render_page(ctx, &page.entries, with_groups).await?;
        Ok(ListPage::of_walk(
            resources,
            page.next,
            page.previous,
            page.total,
        ))
    }

    /// User filters: the mapping's attributes, plus references to users (`manager eq "id"`,
    /// `manager.value eq "id"`; Entra checks a manager this way), whose ids (or emails) are
    /// resolved to DNs first: the directory holds DNs.
    async fn ldap_filter(&self, ctx: &RequestCtx, f: &Filter) -> ServiceResult<LdapFilter> {
        let mapping = self.mapping();
        let mut refs = Vec::new();
        collect_ref_values(f, &|p| mapping.user_ref_attr(p).is_some(), &mut refs);
        let dns = self.dns_for_refs(ctx, &refs).await?;
        let hook = |node: &Filter| -> Option<ScimResult<LdapFilter>> {
            let Filter::Compare(p, op, value) = node else {
                return None;
            };
            let attr = mapping.user_ref_attr(p)?;
            let eq = |r: &str| {
                dns.dn(r)
                    .map(|dn| LdapFilter::eq(attr, dn.to_string()))
                    .unwrap_or(LdapFilter::False)
            };
            Some(match (op, value) {
                (CompareOp::Eq, CompValue::Str(r)) => Ok(eq(r)),
                (CompareOp::Ne, CompValue::Str(r)) => Ok(LdapFilter::negate(eq(r))),
                _ => Err(ScimError::invalid_filter(format!(
                    "'{p}' is a reference to a user: use eq or ne with the user's id, or pr"
                ))),
            })
        };
        mapping
            .ldap_filter_with(f, &|id| self.store.dir.id_filter(id), &hook)
            .map_err(ServiceError::from)
    }

    /// `userName eq "x"` (what Entra and Okta send before every create) answered from the
    /// DN cache with one read, when the cached entry still has that name.
    async fn list_by_cached_name(
        &self,
        ctx: &RequestCtx,
        q: &ListQuery,
        start: usize,
        count: usize,
    ) -> ServiceResult<Option<ListPage>> {
        let Some(Filter::Compare(p, CompareOp::Eq, CompValue::Str(name))) = &q.filter else {
            return Ok(None);
        };
        let is_user_name = p.sub.is_none()
            && p.name.eq_ignore_ascii_case("userName")
            && p.urn
                .as_deref()
                .is_none_or(|u| u.eq_ignore_ascii_case(USER_SCHEMA));
        if !is_user_name || start != 1 || count == 0 {
            return Ok(None);
        }
        let container = &ctx.tenant.users_container;
        let Some(dn) = self.store.cache.dn_for_name(container, name).await else {
            return Ok(None);
        };
        match self
            .store
            .read_mine(&dn, &self.read_attrs(&q.projection))
            .await?
        {
            Some(e)
                if is_under(&e.dn, container)
                    && e.values(self.mapping().username_attr())
                        .iter()
                        .any(|v| v.eq_ignore_ascii_case(name)) =>
            {
                Ok(Some(ListPage {
                    cursor: None,
                    total_results: 1,
                    start_index: 1,
                    resources: vec![
                        self.render_with(ctx, &e, q.projection.includes("groups"), &Refs::new())
                            .await?,
                    ],
                }))
            }
            _ => {
                self.store.cache.forget_name(container, name).await;
                Ok(None)
            }
        }
    }
}

/// 409 `uniqueness` for a userName `e` holds, naming it (so that an IdP can link to it).
fn taken(user_name: &str, e: &Entry) -> ServiceError {
    ServiceError::uniqueness(format!(
        "userName \"{}\" is already taken by User {}",
        crate::logging::shorten(user_name, 256),
        e.id
    ))
}

/// The DN `refs` holds for a user id, as the mapping wants it.
fn dn_for(refs: &Refs, id: &str) -> Option<String> {
    refs.dn(id).map(|dn| dn.to_string())
}

fn required_user_name(res: &Map<String, Value>) -> ServiceResult<&str> {
    match res.get("userName") {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        _ => Err(ServiceError::invalid_value(
            "userName is required and must be a non-empty string",
        )),
    }
}

/// The values `f` compares with eq/ne on the paths `is_ref` accepts.
fn collect_ref_values(f: &Filter, is_ref: &dyn Fn(&AttrPath) -> bool, out: &mut Vec<String>) {
    match f {
        Filter::And(parts) | Filter::Or(parts) => {
            for x in parts {
                collect_ref_values(x, is_ref, out);
            }
        }
        Filter::Not(a) => collect_ref_values(a, is_ref, out),
        Filter::Compare(p, CompareOp::Eq | CompareOp::Ne, CompValue::Str(v)) if is_ref(p) => {
            out.push(v.clone())
        }
        _ => {}
    }
}

/// The role values of `res`, without empty or case-insensitive repeats; more than `limit`
/// is a 400.
fn role_names(res: &Map<String, Value>, limit: usize) -> ServiceResult<Vec<String>> {
    let count = res
        .get("roles")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if count > limit {
        return Err(ServiceError::bad_request(
            crate::scim::ScimType::TooMany,
            format!(
                "{count} roles in one request; the server accepts at most {limit} (limits.max_values_per_attribute)"
            ),
        ));
    }
    crate::mapping::distinct_values(res, "roles", "value").map_err(ServiceError::from)
}
