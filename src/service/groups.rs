//! SCIM Groups against the directory. Membership changes become LDAP adds and deletes of
//! exactly the affected member values, so they cost O(changed members) and concurrent
//! changes do not overwrite each other; the member list is read only when a request needs it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};
use tracing::{info, warn};

use crate::directory::budget;
use crate::directory::filter::split_first_rdn;
use crate::directory::{DirectoryError, Dn, Entry, EntryId, LdapFilter};
use crate::mapping::Mapping;
use crate::scim::filter::{matches, AttrPath, CompValue, CompareOp, Filter, PatchPath};
use crate::scim::patch::{apply_patch, parse_patch_request, OpKind, PatchOperation};
use crate::scim::resource::normalize_resource;
use crate::scim::schema::{GROUP_RESOURCE, GROUP_SCHEMA};
use crate::scim::{ScimError, ScimResult};

use super::creates::{CreateKey, CreateReceipt};
use super::cursor::Cursors;
use super::error::{ServiceError, ServiceResult};
use super::list::{ListPage, ListQuery};
use super::memberships::{MemberKind, Memberships};
use super::store::{CursorRequest, Store};
use super::write::{restore, Op, Plan, Step, StepKind, Undo};
use super::{RequestCtx, Resource};

pub struct Groups {
    store: Arc<Store>,
    users: Arc<Store>,
    members: Arc<Memberships>,
    max_results: usize,
    limits: crate::scim::Limits,
    cursors: Arc<Cursors>,
    /// Where deleted users go (`users.archive_container`), when they are archived: a member
    /// that left for it may be listed there under its archived DN (memberOf's refint).
    archive: Option<Dn>,
}

/// A group request body: the resource without `members`, and the member ids if given.
type GroupBody = (Map<String, Value>, Option<Vec<String>>);

/// A member as this request resolved it: its id and the DN it had then.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    id: EntryId,
    dn: Dn,
}

/// The member changes one request makes: members to add (with their ids, to check them again
/// after the write) and DNs to delete.
#[derive(Default)]
struct MemberDelta {
    adds: Vec<Member>,
    deletes: Vec<Dn>,
    /// Each DN's latest change (true: add): a later change overrides an earlier one in O(1),
    /// so a 10,000-member PATCH stays linear; `adds`/`deletes` keep the request's order and
    /// are filtered by this on the way out.
    last: HashMap<Dn, bool>,
}

impl MemberDelta {
    fn add(&mut self, m: Member) {
        if self.last.insert(m.dn.clone(), true) != Some(true) {
            self.adds.push(m);
        }
    }

    fn delete(&mut self, dn: Dn) {
        if self.last.insert(dn.clone(), false) != Some(false) {
            self.deletes.push(dn);
        }
    }

    /// Replaces the membership: from `current` to exactly `wanted`, in linear time.
    fn replace(&mut self, current: &[Dn], wanted: Vec<Member>) {
        *self = MemberDelta::default();
        let want: HashSet<Dn> = wanted.iter().map(|m| m.dn.clone()).collect();
        let have: HashSet<&Dn> = current.iter().collect();
        for m in wanted {
            if !have.contains(&m.dn) {
                self.add(m);
            }
        }
        for d in current.iter().filter(|d| !want.contains(*d)) {
            self.delete(d.clone());
        }
    }

    /// The members to add, each once, in the order first named.
    fn add_members(&self) -> Vec<Member> {
        let mut seen = HashSet::new();
        self.adds
            .iter()
            .filter(|m| self.last.get(&m.dn) == Some(&true) && seen.insert(&m.dn))
            .cloned()
            .collect()
    }

    fn add_dns(&self) -> Vec<Dn> {
        self.add_members().into_iter().map(|m| m.dn).collect()
    }

    /// The DNs to delete, each once, in the order first named.
    fn delete_dns(&self) -> Vec<Dn> {
        let mut seen = HashSet::new();
        self.deletes
            .iter()
            .filter(|d| self.last.get(*d) == Some(&false) && seen.insert(*d))
            .cloned()
            .collect()
    }
}

/// How often the members a request added are looked up again after a correction.
const MAX_MEMBER_CHECKS: usize = 8;

impl Groups {
    pub fn new(
        store: Arc<Store>,
        users: Arc<Store>,
        members: Arc<Memberships>,
        max_results: usize,
        limits: crate::scim::Limits,
        cursors: Arc<Cursors>,
        archive: Option<Dn>,
    ) -> Groups {
        Groups {
            store,
            users,
            members,
            max_results,
            limits,
            cursors,
            archive,
        }
    }

    pub fn mapping(&self) -> &Mapping {
        &self.store.mapping
    }

    fn container<'c>(&self, ctx: &'c RequestCtx) -> ServiceResult<&'c Dn> {
        ctx.tenant
            .groups_container
            .as_ref()
            .ok_or_else(|| ServiceError::not_found("groups are not configured for this tenant"))
    }

    pub fn member_attr(&self) -> &str {
        &self.members.member_attr
    }

    /// Whether `dn` is the placeholder member an empty group of a class that needs one keeps.
    pub fn is_placeholder(&self, dn: &Dn) -> bool {
        self.members.is_placeholder(dn)
    }

    /// Where deleted users are archived, if they are.
    pub fn archive(&self) -> Option<&str> {
        self.archive.as_deref()
    }

    fn attrs(&self, with_members: bool) -> Vec<&str> {
        if with_members {
            self.store.attrs()
        } else {
            self.store.attrs_without(&self.members.member_attr)
        }
    }

    /// The entry's current members (placeholder left out).
    fn current_members(&self, e: &Entry) -> Vec<Dn> {
        e.values(self.member_attr())
            .iter()
            .map(Dn::new)
            .filter(|d| !self.members.is_placeholder(d))
            .collect()
    }

    /// The DN and kind of each User or Group among `ids`, in the tenant's view: users
    /// first, then groups for the ids left, each in batched searches.
    async fn resolve_ids(
        &self,
        ctx: &RequestCtx,
        ids: &[String],
    ) -> ServiceResult<HashMap<EntryId, (Dn, MemberKind)>> {
        let id_only = [self.store.dir.id_attribute()];
        let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut out: HashMap<EntryId, (Dn, MemberKind)> = self
            .users
            .locate_many(&ctx.tenant.users_container, &wanted, &id_only)
            .await?
            .into_iter()
            .map(|(id, e)| (id, (e.dn, MemberKind::User)))
            .collect();
        let left: Vec<&str> = wanted
            .into_iter()
            .filter(|id| !out.contains_key(&EntryId::from(*id)))
            .collect();
        if !left.is_empty() {
            let groups = self
                .store
                .locate_many(self.container(ctx)?, &left, &id_only)
                .await?;
            out.extend(
                groups
                    .into_iter()
                    .map(|(id, e)| (id, (e.dn, MemberKind::Group))),
            );
        }
        Ok(out)
    }

    /// Members for ids, in order. `strict`: an unknown id is a 400 naming it (for adds);
    /// otherwise it is skipped (removing someone who no longer exists is already done).
    async fn resolve_members(
        &self,
        ctx: &RequestCtx,
        ids: &[String],
        strict: bool,
    ) -> ServiceResult<Vec<Member>> {
        self.check_member_count(ids.len())?;
        let found = self.resolve_ids(ctx, ids).await?;
        let mut members = Vec::with_capacity(ids.len());
        for id in ids {
            let id = EntryId::from(id.as_str());
            match found.get(&id) {
                Some((dn, _)) => members.push(Member { id, dn: dn.clone() }),
                None if strict => {
                    return Err(ServiceError::invalid_value(format!(
                        "members: no User or Group has id \"{}\"",
                        crate::logging::shorten(&id, 64)
                    )))
                }
                None => {}
            }
        }
        Ok(members)
    }

    /// Entries of this type: the groups' class (sweeps run over it).
    pub fn class_filter(&self) -> LdapFilter {
        self.store.class_filter()
    }

    /// The check `verify_added` makes, for members (id, DN) a stopped bridge added and did
    /// not check (recovery).
    pub async fn recheck_members(
        &self,
        ctx: &RequestCtx,
        group_dn: &Dn,
        members: &[(EntryId, Dn)],
    ) -> ServiceResult<()> {
        let members: Vec<Member> = members
            .iter()
            .map(|(id, dn)| Member {
                id: id.clone(),
                dn: dn.clone(),
            })
            .collect();
        self.verify_added(ctx, group_dn, &members).await
    }

    /// Members this request added are checked again after the write: one deleted, archived
    /// or renamed meanwhile by a concurrent request is taken out again, or follows its new
    /// DN, so that no group lists a DN that is not a live member. (The delete side sweeps the
    /// groups after its move; between them, any interleaving ends clean.) A correction is
    /// checked again too: a member renamed once more while it was made (after that rename's
    /// groups followed) would otherwise stay listed under the name in between.
    async fn verify_added(
        &self,
        ctx: &RequestCtx,
        group_dn: &Dn,
        added: &[Member],
    ) -> ServiceResult<()> {
        let mut listed: Vec<Member> = added.to_vec();
        for _ in 0..MAX_MEMBER_CHECKS {
            if listed.is_empty() {
                return Ok(());
            }
            let ids: Vec<String> = listed.iter().map(|m| m.id.to_string()).collect();
            let now = self.resolve_ids(ctx, &ids).await?;
            let mut fix = self.members.values(vec![], vec![]);
            let mut moved = Vec::new();
            let mut gone = Vec::new();
            for m in &listed {
                match now.get(&m.id) {
                    Some((dn, _)) if *dn == m.dn => {}
                    Some((dn, _)) => {
                        fix.deletes.push(m.dn.clone());
                        fix.adds.push(dn.clone());
                        moved.push(Member {
                            id: m.id.clone(),
                            dn: dn.clone(),
                        });
                    }
                    None => {
                        fix.deletes.push(m.dn.clone());
                        gone.push(m.id.as_str());
                    }
                }
            }
            fix.deletes.extend(self.archived_dns(&gone).await?);
            if fix.is_empty() {
                return Ok(());
            }
            warn!(
                group = %group_dn,
                "members changed while they were being added; correcting"
            );
            let mut plan = Plan::new();
            plan.push(Step::new(
                StepKind::Modify,
                Op::Modify {
                    dn: group_dn.clone(),
                    changes: vec![],
                    values: Some(fix),
                    assertion: None,
                },
                Undo::Nothing,
            ));
            self.store.writer().run(plan).await?;
            // only the corrected ones can have moved again since
            listed = moved;
        }
        Err(ServiceError::unavailable(
            "members kept being renamed while they were added; retry the request",
            1,
        ))
    }

    /// The archived DNs of members `ids` that are no longer among the tenant's users: a
    /// directory whose memberOf overlay rewrites members on a rename lists a member archived
    /// after it was added under its archived DN.
    async fn archived_dns(&self, ids: &[&str]) -> ServiceResult<Vec<Dn>> {
        let Some(archive) = self.archive.as_ref().filter(|_| !ids.is_empty()) else {
            return Ok(Vec::new());
        };
        let found = self
            .users
            .locate_many(archive, ids, &[self.store.dir.id_attribute()])
            .await?;
        Ok(found.into_values().map(|e| e.dn).collect())
    }

    /// 400 `tooMany` past `limits.max_members_per_request`.
    fn check_member_count(&self, n: usize) -> ServiceResult<()> {
        if n > self.limits.max_members {
            return Err(ServiceError::bad_request(
                crate::scim::ScimType::TooMany,
                format!(
                    "{n} member ids in one request; the server accepts at most {} (limits.max_members_per_request): send the change in several PATCH requests",
                    self.limits.max_members
                ),
            ));
        }
        Ok(())
    }

    /// The resource with its version and location, for a single-resource answer.
    async fn answer(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        with_members: bool,
    ) -> ServiceResult<Resource> {
        let body = self.render(ctx, e, with_members).await?;
        Ok(self.store.resource(&ctx.base_url, e, body))
    }

    async fn render(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        with_members: bool,
    ) -> ServiceResult<Value> {
        let res = self.store.mapping.to_scim(e, &|_| None);
        let mut out = Map::new();
        out.insert(
            "schemas".into(),
            Value::Array(vec![Value::String(GROUP_SCHEMA.into())]),
        );
        out.insert("id".into(), Value::String(e.id.to_string()));
        out.extend(res);
        if with_members {
            let dns = self.current_members(e);
            let resolved = self.members.resolve_dns(&self.users, ctx, &dns).await?;
            let members: Vec<Value> = resolved
                .into_iter()
                .map(|(_, id, kind)| {
                    let (t, endpoint) = match kind {
                        MemberKind::User => ("User", "Users"),
                        MemberKind::Group => ("Group", "Groups"),
                    };
                    serde_json::json!({
                        "value": id,
                        "$ref": format!("{}/{endpoint}/{id}", ctx.base_url),
                        "type": t,
                    })
                })
                .collect();
            out.insert("members".into(), Value::Array(members));
        }
        out.insert("meta".into(), self.store.meta(&ctx.base_url, e));
        Ok(Value::Object(out))
    }

    /// Normalises a Group body; returns the resource without members and the member ids.
    fn parse_body(&self, body: &Value) -> ServiceResult<GroupBody> {
        let n = normalize_resource(body, &GROUP_RESOURCE)?;
        let mut res = n.resource;
        for k in ["id", "meta"] {
            res.remove(k);
        }
        let members = res.remove("members").map(|v| member_ids(&v)).transpose()?;
        self.store.mapping.check_unmapped(&res, &n.ignored)?;
        required_display_name(&res)?;
        Ok((res, members))
    }

    /// POST. The plan: clear stale memberships of the new DN, add the group with its members.
    /// POST. `with_members`: whether the answer shows members (resolved to ids only then).
    pub async fn create(
        &self,
        ctx: &RequestCtx,
        body: &Value,
        with_members: bool,
        key: CreateKey,
    ) -> ServiceResult<Resource> {
        let container = self.container(ctx)?;
        super::journal::creating(key);
        let (res, ids) = self.parse_body(body)?;
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
            Err(err)
                if matches!(
                    err.failed_at(StepKind::Add),
                    Some(DirectoryError::AlreadyExists(_))
                ) =>
            {
                let name = required_display_name(&res)?;
                let holder = self
                    .store
                    .find_by_name(container, name, &[self.store.dir.id_attribute()])
                    .await?;
                return Err(ServiceError::uniqueness(match holder {
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

    pub async fn get(
        &self,
        ctx: &RequestCtx,
        id: &str,
        with_members: bool,
    ) -> ServiceResult<Resource> {
        let e = self
            .store
            .locate(self.container(ctx)?, id, &self.attrs(with_members))
            .await?;
        self.answer(ctx, &e, with_members).await
    }

    pub async fn list(
        &self,
        ctx: &RequestCtx,
        q: &ListQuery,
        with_members: bool,
    ) -> ServiceResult<ListPage> {
        let container = self.container(ctx)?;
        let start = q.start_index.max(1);
        let count = q.count.unwrap_or(self.max_results).min(self.max_results);
        if let Some(cursor) = &q.cursor {
            return self
                .list_by_cursor(ctx, q, cursor, count, with_members)
                .await;
        }
        let filter = match &q.filter {
            Some(f) => self.ldap_filter(ctx, f).await?,
            None => LdapFilter::True,
        };
        let (total, entries) = self
            .store
            .page_query(
                container,
                &filter,
                q,
                start,
                count,
                &self.attrs(with_members),
            )
            .await?;
        let mut resources = Vec::with_capacity(entries.len());
        for e in &entries {
            self.store.remember(container, e).await;
            resources.push(self.render(ctx, e, with_members).await?);
        }
        Ok(ListPage {
            total_results: total,
            start_index: start,
            resources,
            cursor: None,
        })
    }

    /// A page of a cursor walk (RFC 9865). Whether a walk reads members is fixed by its first
    /// page (a large group's members are read only when asked for): its cursors serve only
    /// requests that ask the same.
    async fn list_by_cursor(
        &self,
        ctx: &RequestCtx,
        q: &ListQuery,
        cursor: &str,
        count: usize,
        with_members: bool,
    ) -> ServiceResult<ListPage> {
        let container = self.container(ctx)?;
        let filter = match (&q.filter, cursor.trim().is_empty()) {
            (_, false) => None,
            (Some(f), true) => Some(self.ldap_filter(ctx, f).await?),
            (None, true) => Some(LdapFilter::True),
        };
        let kind = if with_members {
            "Groups"
        } else {
            "Groups without members"
        };
        let page = self
            .store
            .cursor_page(
                q,
                CursorRequest {
                    cursors: &self.cursors,
                    tenant: &ctx.tenant.name,
                    kind,
                    container,
                    filter: filter.as_ref(),
                    cursor,
                    count,
                    attrs: &self.attrs(with_members),
                },
            )
            .await?;
        let mut resources = Vec::with_capacity(page.entries.len());
        // not remembered in the DN cache: see `Users::list_by_cursor`
        for e in &page.entries {
            resources.push(self.render(ctx, e, with_members).await?);
        }
        Ok(ListPage::of_walk(
            resources,
            page.next,
            page.previous,
            page.total,
        ))
    }

    /// Group filters: the mapping's attributes, plus `members.value eq "id"` (or
    /// `members[value eq "id"]`), resolved to the member's DN first.
    async fn ldap_filter(&self, ctx: &RequestCtx, f: &Filter) -> ServiceResult<LdapFilter> {
        let mut ids = Vec::new();
        collect_member_ids(f, &mut ids);
        let dns: HashMap<EntryId, Dn> = if ids.is_empty() {
            HashMap::new()
        } else {
            self.resolve_ids(ctx, &ids)
                .await?
                .into_iter()
                .map(|(id, (dn, _))| (id, dn))
                .collect()
        };
        let member_attr = self.member_attr().to_owned();
        let has_placeholder = self.members.placeholder.is_some();
        let hook = |node: &Filter| -> Option<ScimResult<LdapFilter>> {
            let is_members = |p: &AttrPath| p.name.eq_ignore_ascii_case("members");
            let eq = |id: &str| {
                dns.get(&EntryId::from(id))
                    .map(|dn| LdapFilter::eq(&member_attr, dn.to_string()))
                    .unwrap_or(LdapFilter::False)
            };
            match node {
                Filter::Compare(p, op, CompValue::Str(id))
                    if is_members(p)
                        && p.sub
                            .as_deref()
                            .is_none_or(|s| s.eq_ignore_ascii_case("value")) =>
                {
                    Some(match op {
                        CompareOp::Eq => Ok(eq(id)),
                        CompareOp::Ne => Ok(LdapFilter::negate(eq(id))),
                        _ => Err(ScimError::invalid_filter(
                            "members.value supports eq and ne",
                        )),
                    })
                }
                Filter::ValuePath(p, inner) if is_members(p) => Some(match inner.as_ref() {
                    Filter::Compare(sp, CompareOp::Eq, CompValue::Str(id))
                        if sp.name.eq_ignore_ascii_case("value") =>
                    {
                        Ok(eq(id))
                    }
                    _ => Err(ScimError::invalid_filter(
                        "inside members[…] only value eq \"id\" is supported",
                    )),
                }),
                Filter::Present(p) if is_members(p) && !has_placeholder => {
                    Some(Ok(LdapFilter::Present(member_attr.clone())))
                }
                Filter::Present(p) | Filter::Compare(p, _, _) if is_members(p) => {
                    Some(Err(ScimError::invalid_filter(
                        "members supports only value eq \"id\" and value ne \"id\"",
                    )))
                }
                _ => None,
            }
        };
        self.store
            .mapping
            .ldap_filter_with(f, &|id| self.store.dir.id_filter(id), &hook)
            .map_err(ServiceError::from)
    }

    /// PUT. `with_members`: whether the answer shows members (a large group's are resolved
    /// to ids only when asked for).
    pub async fn replace(
        &self,
        ctx: &RequestCtx,
        id: &str,
        body: &Value,
        with_members: bool,
    ) -> ServiceResult<Resource> {
        let container = self.container(ctx)?;
        let (new_res, ids) = self.parse_body(body)?;
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
            self.store.remember(container, &updated).await;
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
        body: &Value,
        respond: Option<bool>,
    ) -> ServiceResult<Option<Resource>> {
        let container = self.container(ctx)?;
        let (member_ops, other_ops) = split_member_ops(parse_patch_request(body, &self.limits)?);
        // every operation's ids count: many small ones cost as much as one big one
        let named: usize = member_ops
            .iter()
            .map(|op| match &op.value {
                Some(Value::Array(a)) => a.len(),
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
        apply_patch(&mut new_res, &other_ops, &GROUP_RESOURCE, &e.id)?;
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
                    self.store.remember(container, &updated).await;
                    Ok(Some(self.answer(ctx, &updated, with_members).await?))
                })
                .await
            }
        }
    }

    async fn member_op(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        op: &PatchOperation,
        delta: &mut MemberDelta,
    ) -> ServiceResult<()> {
        let filter = op.path.as_ref().and_then(|p| p.filter.as_ref());
        let ids = match &op.value {
            Some(v) => member_ids(v)?,
            None => Vec::new(),
        };
        match (op.op, filter) {
            (OpKind::Add, None) => {
                for m in self.resolve_members(ctx, &ids, true).await? {
                    delta.add(m);
                }
            }
            (OpKind::Replace, None) => {
                let wanted = self.resolve_members(ctx, &ids, true).await?;
                delta.replace(&self.current_members(e), wanted);
            }
            (OpKind::Remove, None) if op.value.is_some() => {
                for m in self.resolve_members(ctx, &ids, false).await? {
                    delta.delete(m.dn);
                }
            }
            (OpKind::Remove, None) => {
                for dn in self.current_members(e) {
                    delta.delete(dn);
                }
            }
            (OpKind::Remove, Some(f)) => {
                let mut wanted_ids = Vec::new();
                if simple_value_ids(f, &mut wanted_ids) {
                    for m in self.resolve_members(ctx, &wanted_ids, false).await? {
                        delta.delete(m.dn);
                    }
                } else {
                    // any other filter: evaluate it on the current members
                    let dns = self.current_members(e);
                    let resolved = self.members.resolve_dns(&self.users, ctx, &dns).await?;
                    for (dn, id, kind) in resolved {
                        let member = serde_json::json!({
                            "value": id,
                            "type": if kind == MemberKind::User { "User" } else { "Group" },
                        });
                        if matches(f, &member, &|_| false) {
                            delta.delete(dn);
                        }
                    }
                }
            }
            (_, Some(_)) => {
                return Err(ServiceError::invalid_path(
                    "members[…] selects members to remove; to add, use path \"members\" with a value array",
                ))
            }
        }
        Ok(())
    }

    /// Applies non-member changes and the member delta to `e`. The plan: if the name changes,
    /// clear stale memberships of the new DN; one modify of the attributes and members
    /// (carrying `If-Match`); the rename; groups containing this one follow it. Members added
    /// are checked again afterwards. Returns the DN.
    async fn write(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        old_res: &Map<String, Value>,
        new_res: &Map<String, Value>,
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
            changes.retain(|c| !c.attr().eq_ignore_ascii_case(&mapping.rdn_attr));
        }
        let (old_rdn, parent) = split_first_rdn(&e.dn);
        let new_dn = Dn::new(format!("{new_rdn},{parent}"));
        let values = self.members.values(delta.add_dns(), delta.delete_dns());
        let modify = !changes.is_empty() || !values.adds.is_empty() || !values.deletes.is_empty();
        let mut plan = Plan::new();
        if rename {
            plan.steps.extend(self.members.stale_step(ctx, &new_dn));
        }
        if modify {
            plan.push(Step::new(
                StepKind::Modify,
                Op::Modify {
                    dn: e.dn.clone(),
                    changes: changes.clone(),
                    values: Some(values.clone()),
                    assertion: assertion.clone(),
                },
                Undo::by(Op::Modify {
                    dn: e.dn.clone(),
                    changes: restore(e, &changes),
                    values: Some(values.inverse()),
                    assertion: None,
                }),
            ));
        }
        if rename {
            plan.push(Step::new(
                StepKind::Rename,
                Op::Rename {
                    dn: e.dn.clone(),
                    rdn: new_rdn,
                    parent: None,
                    assertion: if modify { None } else { assertion },
                },
                Undo::by(Op::Rename {
                    dn: new_dn.clone(),
                    rdn: old_rdn,
                    parent: None,
                    assertion: None,
                }),
            ));
            plan.steps
                .extend(self.members.follow_step(ctx, &e.dn, &new_dn));
        }
        owe_check(if rename { &new_dn } else { &e.dn }, &delta.add_members());
        match self.store.writer().run(plan).await {
            Ok(()) => {}
            Err(err)
                if matches!(
                    err.failed_at(StepKind::Rename),
                    Some(DirectoryError::AlreadyExists(_))
                ) =>
            {
                return Err(ServiceError::uniqueness(format!(
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

    async fn read_back(&self, dn: &Dn, with_members: bool) -> ServiceResult<Entry> {
        self.store.read_back(dn, &self.attrs(with_members)).await
    }

    /// DELETE. The plan: leave the groups that contain this one, delete it, sweep again for
    /// nestings a concurrent request added meanwhile.
    pub async fn delete(&self, ctx: &RequestCtx, id: &str) -> ServiceResult<()> {
        let container = self.container(ctx)?;
        self.store.deleting(id);
        let e = self.store.locate(container, id, &self.attrs(false)).await?;
        let assertion = self.store.precondition(ctx, &e)?;
        let mut plan = Plan::new();
        plan.steps.extend(self.members.leave_step(ctx, &e.dn));
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

/// Ids from a `members` value: `[{"value": id}, …]`, one object, or bare id strings.
fn member_ids(v: &Value) -> ServiceResult<Vec<String>> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => Ok(s.clone()),
            Value::Object(m) => m
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("value"))
                .and_then(|(_, v)| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| {
                    ServiceError::invalid_value(
                        "each member needs a \"value\" with the member's id",
                    )
                }),
            _ => Err(ServiceError::invalid_value(
                "members must be objects like {\"value\": \"<id>\"}",
            )),
        })
        .collect()
}

/// Separates operations on `members` (applied as member adds/deletes) from the rest (applied
/// through the mapping). Path-less operations are split by key.
fn split_member_ops(ops: Vec<PatchOperation>) -> (Vec<PatchOperation>, Vec<PatchOperation>) {
    let is_members = |name: &str| name.eq_ignore_ascii_case("members");
    let mut member_ops = Vec::new();
    let mut other_ops = Vec::new();
    for op in ops {
        match (&op.path, &op.value) {
            (Some(p), _)
                if is_members(&p.attr.name)
                    && p.attr
                        .urn
                        .as_deref()
                        .is_none_or(|u| u.eq_ignore_ascii_case(GROUP_SCHEMA)) =>
            {
                member_ops.push(op)
            }
            (None, Some(Value::Object(obj))) => {
                let mut rest = Map::new();
                for (k, v) in obj {
                    if is_members(k) {
                        member_ops.push(PatchOperation {
                            op: op.op,
                            path: Some(PatchPath {
                                attr: AttrPath {
                                    urn: None,
                                    name: "members".into(),
                                    sub: None,
                                },
                                filter: None,
                                sub_after_filter: None,
                            }),
                            value: Some(v.clone()),
                        });
                    } else {
                        rest.insert(k.clone(), v.clone());
                    }
                }
                if !rest.is_empty() {
                    other_ops.push(PatchOperation {
                        op: op.op,
                        path: None,
                        value: Some(Value::Object(rest)),
                    });
                }
            }
            _ => other_ops.push(op),
        }
    }
    (member_ops, other_ops)
}

/// Whether a member operation needs the current member list (replace, remove-all, or a
/// filter other than `value eq "id"`).
fn needs_member_list(op: &PatchOperation) -> bool {
    let filter = op.path.as_ref().and_then(|p| p.filter.as_ref());
    match (op.op, filter) {
        (OpKind::Replace, None) => true,
        (OpKind::Remove, None) => op.value.is_none(),
        (OpKind::Remove, Some(f)) => !simple_value_ids(f, &mut Vec::new()),
        _ => false,
    }
}

/// `value eq "a"` or `value eq "a" or value eq "b"`: collects the ids and says yes.
fn simple_value_ids(f: &Filter, out: &mut Vec<String>) -> bool {
    match f {
        Filter::Compare(p, CompareOp::Eq, CompValue::Str(id))
            if p.name.eq_ignore_ascii_case("value") && p.sub.is_none() =>
        {
            out.push(id.clone());
            true
        }
        Filter::Or(parts) => parts.iter().all(|x| simple_value_ids(x, out)),
        _ => false,
    }
}

/// Member ids a filter compares against, to resolve before translating it.
fn collect_member_ids(f: &Filter, out: &mut Vec<String>) {
    match f {
        Filter::And(parts) | Filter::Or(parts) => {
            for x in parts {
                collect_member_ids(x, out);
            }
        }
        Filter::Not(a) => collect_member_ids(a, out),
        Filter::Compare(p, _, CompValue::Str(id)) if p.name.eq_ignore_ascii_case("members") => {
            out.push(id.clone())
        }
        Filter::ValuePath(p, inner) if p.name.eq_ignore_ascii_case("members") => {
            simple_value_ids(inner, out);
        }
        _ => {}
    }
}

fn required_display_name(res: &Map<String, Value>) -> ServiceResult<&str> {
    match res.get("displayName") {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        _ => Err(ServiceError::invalid_value(
            "displayName is required and must be a non-empty string",
        )),
    }
}

/// Members about to be added to `group`: the check `verify_added` makes after the write is
/// owed from the moment it is sent, so the journal records it with the plan (a bridge stopped
/// before the check leaves it to recovery).
fn owe_check(group: &Dn, members: &[Member]) {
    if !members.is_empty() {
        let owed: Vec<(EntryId, Dn)> = members
            .iter()
            .map(|m| (m.id.clone(), m.dn.clone()))
            .collect();
        super::journal::owe_recheck(group, &owed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(dn: &str) -> Member {
        Member {
            id: EntryId::new(format!("id-{dn}")),
            dn: Dn::new(dn),
        }
    }

    #[test]
    fn member_deltas_cancel_in_request_order() {
        let mut d = MemberDelta::default();
        d.add(m("uid=a,ou=p"));
        d.delete(Dn::new("UID=A,ou=p"));
        assert!(d.add_dns().is_empty());
        assert_eq!(d.delete_dns(), vec![Dn::new("uid=a,ou=p")]);
        d.add(m("uid=a,ou=p"));
        assert_eq!(d.add_dns(), vec![Dn::new("uid=a,ou=p")]);
        assert!(d.delete_dns().is_empty());
    }

    #[test]
    fn replace_yields_the_minimal_adds_and_deletes() {
        let mut d = MemberDelta::default();
        d.replace(
            &[Dn::new("uid=a,ou=p"), Dn::new("UID=B,ou=p")],
            vec![m("uid=b,ou=p"), m("uid=c,ou=p"), m("uid=c,ou=p")],
        );
        assert_eq!(
            d.add_members(),
            vec![m("uid=c,ou=p")],
            "once, however often it is named"
        );
        assert_eq!(d.delete_dns(), vec![Dn::new("uid=a,ou=p")]);
    }

    #[test]
    fn a_large_delta_keeps_each_dns_last_change_once_in_order() {
        let mut d = MemberDelta::default();
        let dn = |i: usize| format!("uid=u{i},ou=p");
        for i in 0..10_000 {
            d.add(m(&dn(i)));
        }
        for i in (0..10_000).step_by(2) {
            d.delete(Dn::new(dn(i)));
        }
        for i in (0..10_000).step_by(4) {
            d.add(m(&dn(i)));
        }
        let adds = d.add_dns();
        let deletes = d.delete_dns();
        assert_eq!(adds.len(), 5_000 + 2_500);
        assert_eq!(deletes.len(), 2_500);
        assert_eq!(adds[0], Dn::new(dn(0)), "first named first");
        assert_eq!(adds[1], Dn::new(dn(1)));
        assert_eq!(deletes[0], Dn::new(dn(2)));
    }

    #[test]
    fn member_ids_accept_objects_and_bare_ids() {
        assert_eq!(
            member_ids(&json!([{"value": "a"}, {"Value": "b"}, "c"])).unwrap(),
            vec!["a", "b", "c"]
        );
        assert!(member_ids(&json!([{"display": "x"}])).is_err());
    }

    #[test]
    fn pathless_ops_are_split_by_key() {
        let ops = parse_patch_request(
            &json!({"Operations": [
                {"op": "replace", "value": {"displayName": "New", "members": [{"value": "a"}]}},
                {"op": "remove", "path": "members[value eq \"b\"]"},
                {"op": "Add", "path": "members", "value": [{"value": "c"}]}
            ]}),
            &crate::scim::Limits::default(),
        )
        .unwrap();
        let (members, others) = split_member_ops(ops);
        assert_eq!(members.len(), 3);
        assert_eq!(others.len(), 1);
        assert!(needs_member_list(&members[0]), "replace reads the list");
        assert!(!needs_member_list(&members[1]), "remove by id does not");
        assert!(!needs_member_list(&members[2]), "add does not");
    }
}
