//! SCIM Users against the directory: every operation reads what it must (through the DN
//! cache), computes one set of changes, and applies it so that a failure leaves nothing
//! half-done.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tracing::{debug, info, warn};

use crate::cache::DnCache;
use crate::config::DeleteMode;
use crate::directory::filter::{is_under, split_first_rdn};
use crate::directory::{Change, Directory, DirectoryError, Entry, LdapFilter};
use crate::mapping::{Desired, UserMapping};
use crate::scim::filter::{CompValue, CompareOp, Filter};
use crate::scim::patch::{apply_patch, parse_patch_request};
use crate::scim::resource::normalize_resource;
use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
use crate::scim::{ScimError, ScimResult};

use super::{generalized_to_rfc3339, RequestCtx};

#[derive(Debug, Clone)]
pub struct UserSettings {
    pub delete_mode: DeleteMode,
    pub archive_container: Option<String>,
    /// The most resources a list returns (and the default `count`).
    pub max_results: usize,
}

/// A list request after parsing: 1-based `start_index`, `count` already clamped.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub start_index: usize,
    pub count: Option<usize>,
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
    dir: Arc<dyn Directory>,
    mapping: Arc<UserMapping>,
    cache: DnCache,
    settings: UserSettings,
    read_attrs: Vec<String>,
}

impl Users {
    pub fn new(
        dir: Arc<dyn Directory>,
        mapping: Arc<UserMapping>,
        cache: DnCache,
        settings: UserSettings,
    ) -> Users {
        let read_attrs = mapping.ldap_attributes();
        Users {
            dir,
            mapping,
            cache,
            settings,
            read_attrs,
        }
    }

    pub fn mapping(&self) -> &UserMapping {
        &self.mapping
    }

    pub fn max_results(&self) -> usize {
        self.settings.max_results
    }

    fn attrs(&self) -> Vec<&str> {
        self.read_attrs.iter().map(String::as_str).collect()
    }

    /// Users are entries of the first configured object class.
    fn class_filter(&self) -> LdapFilter {
        LdapFilter::eq("objectClass", self.mapping.object_classes[0].clone())
    }

    fn user_name_of<'e>(&self, e: &'e Entry) -> Option<&'e str> {
        e.first(self.mapping.username_attr())
    }

    async fn remember(&self, ctx: &RequestCtx, e: &Entry) {
        self.cache
            .remember(
                &e.id,
                &e.dn,
                &ctx.tenant.users_container,
                self.user_name_of(e),
            )
            .await;
    }

    /// Finds the entry for `id` in the tenant's container: the cached DN is read and its id
    /// checked (one LDAP read); otherwise, or when stale, one search by id.
    async fn locate(&self, ctx: &RequestCtx, id: &str) -> ScimResult<Entry> {
        let container = &ctx.tenant.users_container;
        if let Some(dn) = self.cache.dn_for_id(id).await {
            if is_under(&dn, container) {
                if let Some(e) = self.dir.read(&dn, &self.attrs()).await? {
                    if e.id.eq_ignore_ascii_case(id) {
                        return Ok(e);
                    }
                }
            }
            debug!(id, dn, "stale DN cache entry; re-resolving");
            self.cache.forget(id, Some(&dn), container, None).await;
        }
        let not_found = || ScimError::not_found(format!("no User with id \"{id}\""));
        let by_id = self.dir.id_filter(id).ok_or_else(not_found)?;
        let filter = LdapFilter::and(vec![self.class_filter(), by_id]);
        let (entries, _) = self
            .dir
            .search(container, &filter, &self.attrs(), 2)
            .await?;
        let e = entries.into_iter().next().ok_or_else(not_found)?;
        self.remember(ctx, &e).await;
        Ok(e)
    }

    /// The SCIM id of the user at `dn`, if it is a user this tenant can see.
    async fn id_for_dn(&self, ctx: &RequestCtx, dn: &str) -> ScimResult<Option<String>> {
        if !is_under(dn, &ctx.tenant.users_container) {
            return Ok(None);
        }
        if let Some(id) = self.cache.id_for_dn(dn).await {
            return Ok(Some(id));
        }
        match self.dir.read(dn, &[self.dir.id_attribute()]).await? {
            Some(e) if !e.id.is_empty() => {
                self.cache
                    .remember(&e.id, &e.dn, &ctx.tenant.users_container, None)
                    .await;
                Ok(Some(e.id))
            }
            _ => Ok(None),
        }
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
            .mapping
            .attrs
            .iter()
            .filter(|m| m.kind == crate::mapping::ValueKind::UserDn)
        {
            if let Some(dn) = e.first(&m.ldap) {
                if let Some(id) = self.id_for_dn(ctx, dn).await? {
                    ids.insert(dn.to_owned(), id);
                }
            }
        }
        let res = self.mapping.to_scim(e, &|dn| ids.get(dn).cloned());
        Ok((res, ids.into_iter().map(|(dn, id)| (id, dn)).collect()))
    }

    /// The full resource: attributes plus `schemas`, `id` and `meta`.
    async fn render(&self, ctx: &RequestCtx, e: &Entry) -> ScimResult<Value> {
        let (mut res, _) = self.scim_view(ctx, e).await?;
        let location = format!("{}/Users/{}", ctx.base_url, e.id);
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
        let mut meta = json!({"resourceType": "User", "location": location});
        if let Some(t) = e.first("createTimestamp").and_then(generalized_to_rfc3339) {
            meta["created"] = Value::String(t);
        }
        if let Some(t) = e.first("modifyTimestamp").and_then(generalized_to_rfc3339) {
            meta["lastModified"] = Value::String(t);
        }
        let mut out = Map::new();
        out.insert("schemas".into(), Value::Array(schemas));
        out.insert("id".into(), Value::String(e.id.clone()));
        out.extend(res);
        out.insert("meta".into(), meta);
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
        for id in self.mapping.referenced_ids(res) {
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

    /// 409 when another user of this tenant has `user_name`.
    async fn ensure_unique(
        &self,
        ctx: &RequestCtx,
        user_name: &str,
        except_id: Option<&str>,
    ) -> ScimResult<()> {
        let filter = LdapFilter::and(vec![
            self.class_filter(),
            LdapFilter::eq(self.mapping.username_attr(), user_name),
        ]);
        let (found, _) = self
            .dir
            .search(
                &ctx.tenant.users_container,
                &filter,
                &[self.mapping.username_attr()],
                1,
            )
            .await?;
        match found.first() {
            Some(e) if Some(e.id.as_str()) != except_id => Err(ScimError::uniqueness(format!(
                "userName \"{user_name}\" is already taken by another user"
            ))),
            _ => Ok(()),
        }
    }

    /// Normalises a request body into a resource and checks what every write needs.
    fn parse_body(&self, body: &Value) -> ScimResult<Map<String, Value>> {
        let n = normalize_resource(body, self.mapping.schema)?;
        let mut res = n.resource;
        // Read-only attributes in a request are ignored (RFC 7643 §2.2).
        for k in ["id", "meta", "groups"] {
            res.remove(k);
        }
        self.mapping.check_unmapped(&res, &n.ignored)?;
        required_user_name(&res)?;
        Ok(res)
    }

    pub async fn create(&self, ctx: &RequestCtx, body: &Value) -> ScimResult<Value> {
        let res = self.parse_body(body)?;
        let user_name = required_user_name(&res)?.to_owned();
        let refs = self.resolve_refs(ctx, &res, Refs::new()).await?;
        let desired = self.mapping.to_ldap(&res, &|id| refs.get(id).cloned())?;
        let rdn = self.mapping.rdn(&res)?;
        let dn = format!("{rdn},{}", ctx.tenant.users_container);
        self.ensure_unique(ctx, &user_name, None).await?;
        match self
            .dir
            .add(&dn, self.mapping.new_entry(&desired, &rdn))
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
        let e = self.dir.read(&dn, &self.attrs()).await?.ok_or_else(|| {
            ScimError::internal(format!("entry {dn} vanished right after it was added"))
        })?;
        self.remember(ctx, &e).await;
        info!(tenant = %ctx.tenant.name, id = %e.id, "user created");
        self.render(ctx, &e).await
    }

    pub async fn get(&self, ctx: &RequestCtx, id: &str) -> ScimResult<Value> {
        let e = self.locate(ctx, id).await?;
        self.render(ctx, &e).await
    }

    pub async fn replace(&self, ctx: &RequestCtx, id: &str, body: &Value) -> ScimResult<Value> {
        let new_res = self.parse_body(body)?;
        let e = self.locate(ctx, id).await?;
        let (old_res, old_refs) = self.scim_view(ctx, &e).await?;
        self.write(ctx, e, old_res, old_refs, new_res).await
    }

    pub async fn patch(&self, ctx: &RequestCtx, id: &str, body: &Value) -> ScimResult<Value> {
        let ops = parse_patch_request(body)?;
        let e = self.locate(ctx, id).await?;
        let (old_res, old_refs) = self.scim_view(ctx, &e).await?;
        let mut new_res = old_res.clone();
        apply_patch(&mut new_res, &ops, self.mapping.schema)?;
        self.mapping.check_unmapped(&new_res, &[])?;
        required_user_name(&new_res)?;
        self.write(ctx, e, old_res, old_refs, new_res).await
    }

    /// Takes the entry from `old_res` to `new_res`: one modify of the attributes whose
    /// directory state differs, then a rename if the RDN changed; a failed rename undoes the
    /// modify.
    async fn write(
        &self,
        ctx: &RequestCtx,
        e: Entry,
        old_res: Map<String, Value>,
        old_refs: Refs,
        new_res: Map<String, Value>,
    ) -> ScimResult<Value> {
        let refs = self.resolve_refs(ctx, &new_res, old_refs).await?;
        let lookup = |id: &str| refs.get(id).cloned();
        let old = self.mapping.to_ldap(&old_res, &lookup)?;
        let new = self.mapping.to_ldap(&new_res, &lookup)?;
        let mut changes = self.mapping.changes(&e, &old, &new);

        let new_name = required_user_name(&new_res)?;
        let old_name = self.user_name_of(&e).unwrap_or_default().to_owned();
        if !new_name.eq_ignore_ascii_case(&old_name) {
            self.ensure_unique(ctx, new_name, Some(&e.id)).await?;
        }
        let new_rdn = self.mapping.rdn(&new_res)?;
        let rename = UserMapping::needs_rename(&e.dn, &new_rdn);
        if rename {
            // modrdn sets the naming attribute; the modify must leave it alone
            changes.retain(|c| !c.attr().eq_ignore_ascii_case(&self.mapping.rdn_attr));
        }
        if changes.is_empty() && !rename {
            return self.render(ctx, &e).await;
        }
        self.dir.modify(&e.dn, &changes).await?;
        let mut dn = e.dn.clone();
        if rename {
            if let Err(err) = self.dir.rename(&e.dn, &new_rdn, None).await {
                self.undo(&e, &changes).await;
                return Err(match err {
                    DirectoryError::AlreadyExists(_) => {
                        ScimError::uniqueness(format!("userName \"{new_name}\" is already taken"))
                    }
                    other => other.into(),
                });
            }
            let (_, parent) = split_first_rdn(&e.dn);
            dn = format!("{new_rdn},{parent}");
            self.cache
                .forget_name(&ctx.tenant.users_container, &old_name)
                .await;
        }
        let updated = self.dir.read(&dn, &self.attrs()).await?.ok_or_else(|| {
            ScimError::conflict("the entry was moved or deleted while it was being updated")
        })?;
        self.remember(ctx, &updated).await;
        self.render(ctx, &updated).await
    }

    /// Puts the attributes `changes` touched back to their values in `before`.
    async fn undo(&self, before: &Entry, changes: &[Change]) {
        let restore: Vec<Change> = changes
            .iter()
            .map(|c| Change::Replace(c.attr().to_owned(), before.values(c.attr()).to_vec()))
            .collect();
        if let Err(e) = self.dir.modify(&before.dn, &restore).await {
            warn!(dn = %before.dn, "could not undo a partial update: {e}");
        }
    }

    /// DELETE: by default disable and move to the archive container (reversible, and SCIM
    /// answers 404 from then on); with `delete_mode = "delete"`, remove the entry.
    pub async fn delete(&self, ctx: &RequestCtx, id: &str) -> ScimResult<()> {
        let e = self.locate(ctx, id).await?;
        let container = &ctx.tenant.users_container;
        match (self.settings.delete_mode, &self.settings.archive_container) {
            (DeleteMode::Delete, _) => self.dir.delete(&e.dn).await?,
            (DeleteMode::Archive, None) => {
                return Err(ScimError::internal(
                    "delete_mode is archive but no archive_container is set",
                ))
            }
            (DeleteMode::Archive, Some(archive)) => self.archive(&e, archive).await?,
        }
        self.cache
            .forget(&e.id, Some(&e.dn), container, self.user_name_of(&e))
            .await;
        info!(tenant = %ctx.tenant.name, id = %e.id, mode = ?self.settings.delete_mode, "user deleted");
        Ok(())
    }

    async fn archive(&self, e: &Entry, archive: &str) -> ScimResult<()> {
        let lock = match self.mapping.active() {
            Some(m) => {
                let mut res = Map::new();
                res.insert("active".into(), Value::Bool(false));
                match self.mapping.to_ldap(&res, &|_| None)?.remove(&m.ldap) {
                    Some(Desired::Set(v)) => vec![Change::Replace(m.ldap.clone(), vec![v])],
                    Some(Desired::Clear) => vec![Change::Replace(m.ldap.clone(), vec![])],
                    _ => vec![],
                }
            }
            None => vec![],
        };
        self.dir.modify(&e.dn, &lock).await?;
        let (rdn, _) = split_first_rdn(&e.dn);
        let moved = match self.dir.rename(&e.dn, &rdn, Some(archive)).await {
            // An earlier archived account has this name: keep both, this one tagged by id.
            Err(DirectoryError::AlreadyExists(_)) => {
                let tagged = format!("{rdn}-{}", e.id.chars().take(8).collect::<String>());
                self.dir.rename(&e.dn, &tagged, Some(archive)).await
            }
            other => other,
        };
        if let Err(err) = moved {
            self.undo(e, &lock).await;
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
        if let Some(page) = self
            .list_by_cached_name(ctx, q.filter.as_ref(), start, count)
            .await?
        {
            return Ok(page);
        }
        let scim_filter = match &q.filter {
            Some(f) => self.mapping.ldap_filter(f, &|id| self.dir.id_filter(id))?,
            None => LdapFilter::True,
        };
        let filter = LdapFilter::and(vec![self.class_filter(), scim_filter]);
        if filter == LdapFilter::False {
            return Ok(ListPage {
                total_results: 0,
                start_index: start,
                resources: vec![],
            });
        }
        let id_only = [self.dir.id_attribute()];
        if count == 0 {
            let (all, _) = self.dir.search(container, &filter, &id_only, 0).await?;
            return Ok(ListPage {
                total_results: all.len(),
                start_index: start,
                resources: vec![],
            });
        }
        // Fetch only as far as the page ends; count the rest by id only when cut short.
        let (entries, truncated) = self
            .dir
            .search(container, &filter, &self.attrs(), start - 1 + count)
            .await?;
        let total = if truncated {
            self.dir
                .search(container, &filter, &id_only, 0)
                .await?
                .0
                .len()
        } else {
            entries.len()
        };
        let mut resources = Vec::new();
        for e in entries.iter().skip(start - 1).take(count) {
            self.remember(ctx, e).await;
            resources.push(self.render(ctx, e).await?);
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
        filter: Option<&Filter>,
        start: usize,
        count: usize,
    ) -> ScimResult<Option<ListPage>> {
        let Some(Filter::Compare(p, CompareOp::Eq, CompValue::Str(name))) = filter else {
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
        let Some(dn) = self.cache.dn_for_name(container, name).await else {
            return Ok(None);
        };
        match self.dir.read(&dn, &self.attrs()).await? {
            Some(e)
                if is_under(&e.dn, container)
                    && e.values(self.mapping.username_attr())
                        .iter()
                        .any(|v| v.eq_ignore_ascii_case(name)) =>
            {
                Ok(Some(ListPage {
                    total_results: 1,
                    start_index: 1,
                    resources: vec![self.render(ctx, &e).await?],
                }))
            }
            _ => {
                self.cache.forget_name(container, name).await;
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
