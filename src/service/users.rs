//! SCIM Users against the directory: every operation reads what it must (through the DN
//! cache), computes one set of changes, and applies it so that a failure leaves nothing
//! half-done.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use tracing::{info, warn};

use crate::config::DeleteMode;
use crate::directory::filter::{is_under, split_first_rdn};
use crate::directory::{DirectoryError, Entry, LdapFilter};
use crate::mapping::{Mapping, ValueKind};
use crate::scim::filter::{CompValue, CompareOp, Filter};
use crate::scim::patch::{apply_patch, parse_patch_request};
use crate::scim::projection::Projection;
use crate::scim::resource::normalize_resource;
use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
use crate::scim::{ScimError, ScimResult};

use super::memberships::Memberships;
use super::store::Store;
use super::RequestCtx;

#[derive(Debug, Clone)]
pub struct UserSettings {
    pub delete_mode: DeleteMode,
    pub archive_container: Option<String>,
    /// The most resources a list returns (and the default `count`).
    pub max_results: usize,
    pub limits: crate::scim::Limits,
}

/// A list request after parsing: 1-based `start_index`, `count` already clamped.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub start_index: usize,
    pub count: Option<usize>,
    pub sort: Option<SortSpec>,
    /// Which attributes the response carries: only their LDAP attributes are read.
    pub projection: Projection,
}

/// `sortBy` / `sortOrder`.
#[derive(Debug, Clone)]
pub struct SortSpec {
    pub by: crate::scim::filter::AttrPath,
    pub descending: bool,
}

#[derive(Debug, Clone)]
pub struct ListPage {
    pub total_results: usize,
    pub start_index: usize,
    pub resources: Vec<Value>,
}

/// Referenced users: SCIM id → DN.
type Refs = HashMap<String, String>;

pub struct Users {
    store: Arc<Store>,
    settings: UserSettings,
    memberships: Option<Arc<Memberships>>,
}

impl Users {
    pub fn new(
        store: Arc<Store>,
        settings: UserSettings,
        memberships: Option<Arc<Memberships>>,
    ) -> Users {
        Users {
            store,
            settings,
            memberships,
        }
    }

    pub fn max_results(&self) -> usize {
        self.settings.max_results
    }

    fn mapping(&self) -> &Mapping {
        &self.store.mapping
    }

    async fn locate(&self, ctx: &RequestCtx, id: &str) -> ScimResult<Entry> {
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
    ) -> ScimResult<(Map<String, Value>, Refs)> {
        let mut ids = HashMap::new();
        for m in self
            .mapping()
            .attrs
            .iter()
            .filter(|m| m.kind == ValueKind::UserDn)
        {
            if let Some(dn) = e.first(&m.ldap) {
                if let Some(id) = self
                    .store
                    .id_for_dn(&ctx.tenant.users_container, dn)
                    .await?
                {
                    ids.insert(dn.to_owned(), id);
                }
            }
        }
        let res = self.mapping().to_scim(e, &|dn| ids.get(dn).cloned());
        Ok((res, ids.into_iter().map(|(dn, id)| (id, dn)).collect()))
    }

    /// The full resource: attributes plus `schemas`, `id`, `groups` and `meta`.
    async fn render(&self, ctx: &RequestCtx, e: &Entry) -> ScimResult<Value> {
        self.render_with(ctx, e, true).await
    }

    /// What a read of `p`'s attributes fetches: only what it will show.
    fn read_attrs(&self, p: &Projection) -> Vec<&str> {
        let member_of = match (&self.memberships, p.includes("groups")) {
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
    ) -> ScimResult<Value> {
        let (mut res, _) = self.scim_view(ctx, e).await?;
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
        out.insert("id".into(), Value::String(e.id.clone()));
        out.extend(res);
        if let (Some(m), true) = (&self.memberships, with_groups) {
            let groups = m.groups_of(ctx, e).await?;
            if !groups.is_empty() {
                out.insert("groups".into(), Value::Array(groups));
            }
        }
        out.insert("meta".into(), self.store.meta(&ctx.base_url, e));
        Ok(Value::Object(out))
    }

    /// DNs of the users that `res` references by id (e.g. its manager), added to `known`.
    /// Unknown ids are left out: `to_ldap` then reports them by name.
    async fn resolve_refs(
        &self,
        ctx: &RequestCtx,
        res: &Map<String, Value>,
        known: Refs,
    ) -> ScimResult<Refs> {
        let mut out = known;
        for id in self.mapping().referenced_ids(res) {
            if out.contains_key(&id) {
                continue;
            }
            match self.locate(ctx, &id).await {
                Ok(e) => {
                    out.insert(id, e.dn);
                }
                Err(e) if e.status == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Normalises a request body into a resource and checks what every write needs.
    fn parse_body(&self, body: &Value) -> ScimResult<Map<String, Value>> {
        let n = normalize_resource(body, self.mapping().schema)?;
        let mut res = n.resource;
        // Read-only attributes in a request are ignored (RFC 7643 §2.2).
        for k in ["id", "meta", "groups"] {
            res.remove(k);
        }
        self.mapping().check_unmapped(&res, &n.ignored)?;
        required_user_name(&res)?;
        Ok(res)
    }

    pub async fn create(&self, ctx: &RequestCtx, body: &Value) -> ScimResult<Value> {
        let container = &ctx.tenant.users_container;
        let res = self.parse_body(body)?;
        let user_name = required_user_name(&res)?.to_owned();
        let refs = self.resolve_refs(ctx, &res, Refs::new()).await?;
        let desired = self.mapping().to_ldap(&res, &|id| refs.get(id).cloned())?;
        let rdn = self.mapping().rdn(&res)?;
        let dn = format!("{rdn},{container}");
        self.store
            .ensure_unique(container, &user_name, None)
            .await?;
        match self
            .store
            .dir
            .add(&dn, self.mapping().new_entry(&desired, &rdn))
            .await
        {
            Ok(()) => {}
            Err(DirectoryError::AlreadyExists(_)) => {
                return Err(ScimError::uniqueness(format!(
                    "userName \"{user_name}\" is already taken (entry {dn} exists)"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        if let Err(err) = self.join_default_group(ctx, &dn).await {
            // all or nothing: the user is not left behind outside its tenant's group
            if let Err(e) = self.store.dir.delete(&dn).await {
                warn!(
                    dn,
                    error = %e,
                    "could not remove a user whose default group failed"
                );
            }
            return Err(err);
        }
        let e = self
            .store
            .dir
            .read(&dn, &self.store.attrs())
            .await?
            .ok_or_else(|| {
                ScimError::internal(format!("entry {dn} vanished right after it was added"))
            })?;
        self.remember(ctx, &e).await;
        info!(tenant = %ctx.tenant.name, id = %e.id, "user created");
        self.render(ctx, &e).await
    }

    /// Users created through a tenant with a default group join it (one member add).
    async fn join_default_group(&self, ctx: &RequestCtx, dn: &str) -> ScimResult<()> {
        match (&self.memberships, &ctx.tenant.default_group) {
            (Some(m), Some(group)) => m.modify(group, vec![], vec![dn.to_owned()], vec![]).await,
            _ => Ok(()),
        }
    }

    /// A user, reading only the LDAP attributes `p` lets through.
    pub async fn get(&self, ctx: &RequestCtx, id: &str, p: &Projection) -> ScimResult<Value> {
        let e = self
            .store
            .locate(&ctx.tenant.users_container, id, &self.read_attrs(p))
            .await?;
        self.render_with(ctx, &e, p.includes("groups")).await
    }

    pub async fn replace(&self, ctx: &RequestCtx, id: &str, body: &Value) -> ScimResult<Value> {
        let new_res = self.parse_body(body)?;
        let e = self.locate(ctx, id).await?;
        let (old_res, old_refs) = self.scim_view(ctx, &e).await?;
        self.write(ctx, e, old_res, old_refs, new_res).await
    }

    pub async fn patch(&self, ctx: &RequestCtx, id: &str, body: &Value) -> ScimResult<Value> {
        let ops = parse_patch_request(body, &self.settings.limits)?;
        let e = self.locate(ctx, id).await?;
        let (old_res, old_refs) = self.scim_view(ctx, &e).await?;
        let mut new_res = old_res.clone();
        apply_patch(&mut new_res, &ops, self.mapping().schema)?;
        self.mapping().check_unmapped(&new_res, &[])?;
        required_user_name(&new_res)?;
        self.write(ctx, e, old_res, old_refs, new_res).await
    }

    /// Takes the entry from `old_res` to `new_res`: one modify of the attributes whose
    /// directory state differs, then a rename if the RDN changed (groups follow the new DN);
    /// a failed rename undoes the modify.
    async fn write(
        &self,
        ctx: &RequestCtx,
        e: Entry,
        old_res: Map<String, Value>,
        old_refs: Refs,
        new_res: Map<String, Value>,
    ) -> ScimResult<Value> {
        let container = &ctx.tenant.users_container;
        let refs = self.resolve_refs(ctx, &new_res, old_refs).await?;
        let lookup = |id: &str| refs.get(id).cloned();
        let mapping = self.mapping();
        let old = mapping.to_ldap(&old_res, &lookup)?;
        let new = mapping.to_ldap(&new_res, &lookup)?;
        let mut changes = mapping.changes(&e, &old, &new);

        let new_name = required_user_name(&new_res)?;
        let old_name = self.store.name_of(&e).unwrap_or_default().to_owned();
        if !new_name.eq_ignore_ascii_case(&old_name) {
            self.store
                .ensure_unique(container, new_name, Some(&e.id))
                .await?;
        }
        let new_rdn = mapping.rdn(&new_res)?;
        let rename = Mapping::needs_rename(&e.dn, &new_rdn);
        if rename {
            // modrdn sets the naming attribute; the modify must leave it alone
            changes.retain(|c| !c.attr().eq_ignore_ascii_case(&mapping.rdn_attr));
        }
        let assertion = self.store.precondition(ctx, &e)?;
        if changes.is_empty() && !rename {
            return self.render(ctx, &e).await;
        }
        self.store
            .dir
            .modify_if(&e.dn, &changes, assertion.as_ref())
            .await?;
        let mut dn = e.dn.clone();
        if rename {
            let (old_rdn, parent) = split_first_rdn(&e.dn);
            if let Err(err) = self.store.dir.rename(&e.dn, &new_rdn, None).await {
                self.store.undo(&e, &changes).await;
                return Err(match err {
                    DirectoryError::AlreadyExists(_) => {
                        ScimError::uniqueness(format!("userName \"{new_name}\" is already taken"))
                    }
                    other => other.into(),
                });
            }
            dn = format!("{new_rdn},{parent}");
            if let Some(m) = &self.memberships {
                if let Err(err) = m.renamed(ctx, &e.dn, &dn).await {
                    // put everything back rather than leave groups pointing at nothing
                    let _ = m.renamed(ctx, &dn, &e.dn).await;
                    if let Err(back) = self.store.dir.rename(&dn, &old_rdn, None).await {
                        warn!(dn, error = %back, "could not undo a user rename");
                    }
                    self.store.undo(&e, &changes).await;
                    return Err(err);
                }
            }
            self.store.cache.forget_name(container, &old_name).await;
        }
        let updated = self
            .store
            .dir
            .read(&dn, &self.store.attrs())
            .await?
            .ok_or_else(|| {
                ScimError::conflict("the entry was moved or deleted while it was being updated")
            })?;
        self.remember(ctx, &updated).await;
        self.render(ctx, &updated).await
    }

    /// DELETE: by default disable and move to the archive container (reversible, and SCIM
    /// answers 404 from then on); with `delete_mode = "delete"`, remove the entry. Either
    /// way the user leaves its groups first (and rejoins them if the delete fails), since no
    /// group may list an id that answers 404.
    pub async fn delete(&self, ctx: &RequestCtx, id: &str) -> ScimResult<()> {
        let e = self.locate(ctx, id).await?;
        let assertion = self.store.precondition(ctx, &e)?;
        let container = &ctx.tenant.users_container;
        let groups = match (&self.memberships, ctx.tenant.groups_container.as_deref()) {
            (Some(m), Some(gc)) => m.parents(gc, &e.dn).await?,
            _ => Vec::new(),
        };
        if let Some(m) = &self.memberships {
            for g in &groups {
                m.modify(g, vec![], vec![], vec![e.dn.clone()]).await?;
            }
        }
        let done = match (self.settings.delete_mode, &self.settings.archive_container) {
            (DeleteMode::Delete, _) => self
                .store
                .dir
                .delete_if(&e.dn, assertion.as_ref())
                .await
                .map_err(ScimError::from),
            (DeleteMode::Archive, None) => Err(ScimError::internal(
                "delete_mode is archive but no archive_container is set",
            )),
            (DeleteMode::Archive, Some(archive)) => {
                self.archive(&e, archive, assertion.as_ref()).await
            }
        };
        if let Err(err) = done {
            if let Some(m) = &self.memberships {
                for g in &groups {
                    if let Err(e2) = m.modify(g, vec![], vec![e.dn.clone()], vec![]).await {
                        warn!(group = %g, error = %e2, "could not restore a membership after a failed delete");
                    }
                }
            }
            return Err(err);
        }
        self.store
            .cache
            .forget(&e.id, Some(&e.dn), container, self.store.name_of(&e))
            .await;
        info!(tenant = %ctx.tenant.name, id = %e.id, mode = ?self.settings.delete_mode, "user deleted");
        Ok(())
    }

    async fn archive(
        &self,
        e: &Entry,
        archive: &str,
        assertion: Option<&LdapFilter>,
    ) -> ScimResult<()> {
        // the change that deactivates the account, whatever the strategy
        let lock = match self.mapping().active() {
            Some(m) => {
                let mut res = Map::new();
                res.insert("active".into(), Value::Bool(false));
                let mut inactive = self.mapping().to_ldap(&res, &|_| None)?;
                inactive.retain(|a, _| a == &m.ldap);
                self.mapping().changes(e, &Default::default(), &inactive)
            }
            None => vec![],
        };
        self.store.dir.modify_if(&e.dn, &lock, assertion).await?;
        let (rdn, _) = split_first_rdn(&e.dn);
        let moved = match self.store.dir.rename(&e.dn, &rdn, Some(archive)).await {
            // An earlier archived account has this name: keep both, this one tagged by id.
            Err(DirectoryError::AlreadyExists(_)) => {
                let tagged = format!("{rdn}-{}", e.id.chars().take(8).collect::<String>());
                self.store.dir.rename(&e.dn, &tagged, Some(archive)).await
            }
            other => other,
        };
        if let Err(err) = moved {
            self.store.undo(e, &lock).await;
            return Err(err.into());
        }
        Ok(())
    }

    pub async fn list(&self, ctx: &RequestCtx, q: &ListQuery) -> ScimResult<ListPage> {
        let container = &ctx.tenant.users_container;
        let start = q.start_index.max(1);
        let count = q
            .count
            .unwrap_or(self.settings.max_results)
            .min(self.settings.max_results);
        if let Some(page) = self.list_by_cached_name(ctx, q, start, count).await? {
            return Ok(page);
        }
        let filter = match &q.filter {
            Some(f) => self
                .mapping()
                .ldap_filter(f, &|id| self.store.dir.id_filter(id))?,
            None => LdapFilter::True,
        };
        let attrs = self.read_attrs(&q.projection);
        let with_groups = q.projection.includes("groups");
        let (total, entries) = self
            .store
            .page_query(container, &filter, q, start, count, &attrs)
            .await?;
        let mut resources = Vec::with_capacity(entries.len());
        for e in &entries {
            self.remember(ctx, e).await;
            resources.push(self.render_with(ctx, e, with_groups).await?);
        }
        Ok(ListPage {
            total_results: total,
            start_index: start,
            resources,
        })
    }

    /// `userName eq "x"` (what Entra and Okta send before every create) answered from the
    /// DN cache with one read, when the cached entry still has that name.
    async fn list_by_cached_name(
        &self,
        ctx: &RequestCtx,
        q: &ListQuery,
        start: usize,
        count: usize,
    ) -> ScimResult<Option<ListPage>> {
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
            .dir
            .read(&dn, &self.read_attrs(&q.projection))
            .await?
        {
            Some(e)
                if is_under(&e.dn, container)
                    && e.values(self.mapping().username_attr())
                        .iter()
                        .any(|v| v.eq_ignore_ascii_case(name)) =>
            {
                Ok(Some(ListPage {
                    total_results: 1,
                    start_index: 1,
                    resources: vec![
                        self.render_with(ctx, &e, q.projection.includes("groups"))
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

fn required_user_name(res: &Map<String, Value>) -> ScimResult<&str> {
    match res.get("userName") {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        _ => Err(ScimError::invalid_value(
            "userName is required and must be a non-empty string",
        )),
    }
}
