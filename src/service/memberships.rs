//! Group membership in the directory: changes as LDAP adds and deletes of exactly the affected
//! member values (never a rewrite of the list, so concurrent changes do not lose each other),
//! a user's `groups`, and the plan steps that keep groups consistent when a member is
//! created, renamed or removed (no group may list a DN that is not a live member).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::directory::{Dn, Entry, EntryId, LdapFilter};

use super::error::ServiceResult;
use super::store::Store;
use super::view::GroupLink;
pub use super::view::ResourceType;
use super::write::{Op, Step, StepKind, Undo, Values};
use super::RequestCtx;

pub struct Memberships {
    pub groups: Arc<Store>,
    pub member_attr: String,
    /// Held by every group (for classes that require a member); never shown.
    pub placeholder: Option<Dn>,
    /// A user attribute listing its groups (memberOf); else found by search.
    pub member_of_attr: Option<String>,
    /// Also report groups reached through nested groups (`type: indirect`).
    pub nested: bool,
    /// Whether users' roles are memberships of role groups (`[roles]`); each tenant's live
    /// under its own `roles_container`.
    pub roles: bool,
    /// The directory keeps member values pointing at the entries they name: AD's `member` is
    /// a linked attribute, held by the member's GUID, so a deleted entry leaves its groups
    /// and a renamed one is followed by the directory itself. No group can then list a name
    /// no entry has, and the sweeps for stale and renamed names are not sent.
    pub links_kept: bool,
}

impl Memberships {
    pub fn is_placeholder(&self, dn: &Dn) -> bool {
        self.placeholder.as_ref() == Some(dn)
    }

    /// Member changes of one group, as plan values (placeholder left alone).
    pub fn values(&self, adds: Vec<Dn>, deletes: Vec<Dn>) -> Values {
        Values {
            attr: self.member_attr.clone(),
            adds,
            deletes: deletes
                .into_iter()
                .filter(|d| !self.is_placeholder(d))
                .collect(),
        }
    }

    /// A plan step changing `group`'s members, undone by the inverse change.
    pub fn change_step(&self, kind: StepKind, group: &Dn, values: Values) -> Step {
        let op = |v: Values| Op::Modify {
            dn: group.clone(),
            changes: vec![],
            values: Some(v),
            assertion: None,
        };
        Step::new(kind, op(values.clone()), Undo::by(op(values.inverse())))
    }

    /// Sweeps of the tenant's groups, and of the role groups, for `members` (pointing them
    /// at `to` when given).
    fn sweeps(&self, ctx: &RequestCtx, members: Vec<Dn>, to: Option<Dn>) -> Vec<Op> {
        self.sweep_bases(ctx)
            .into_iter()
            .map(|base| Op::Sweep {
                base,
                class: self.groups.class_filter(),
                attr: self.member_attr.clone(),
                members: members.clone(),
                to: to.clone(),
            })
            .collect()
    }

    /// Where sweeps search: the tenant's groups, and its role groups when they lie elsewhere.
    fn sweep_bases(&self, ctx: &RequestCtx) -> Vec<Dn> {
        let mut bases: Vec<Dn> = ctx.tenant.groups_container.iter().cloned().collect();
        if let Some(r) = self.roles_container(ctx) {
            if !bases.iter().any(|b| r.is_under(b) || r == *b) {
                bases.push(r);
            }
        }
        bases
    }

    /// Before an entry takes the name `dn`: no group may list that name already (left by an
    /// earlier entry of the same name), or the new entry would inherit its memberships.
    pub fn stale_step(&self, ctx: &RequestCtx, dn: &Dn) -> Vec<Step> {
        if self.links_kept {
            return Vec::new();
        }
        self.sweeps(ctx, vec![dn.clone()], None)
            .into_iter()
            .map(|op| Step::new(StepKind::Stale, op, Undo::Nothing))
            .collect()
    }

    /// `member` (a user or a group, read with its memberOf attribute when one is kept)
    /// leaves every group of the tenant (undone by rejoining them). Nothing when its memberOf
    /// names none of them: the search that would find that is saved (a delete's catch-up
    /// sweep still runs, for memberships added after the read).
    pub fn leave_step(&self, ctx: &RequestCtx, member: &Entry) -> Vec<Step> {
        if self.in_none_of_the_swept_groups(ctx, member) {
            return Vec::new();
        }
        self.sweeps(ctx, vec![member.dn.clone()], None)
            .into_iter()
            .map(|op| Step::new(StepKind::LeaveGroups, op, Undo::Recorded))
            .collect()
    }

    /// Whether `member`'s memberOf names no group a sweep would search; `false` when no
    /// memberOf attribute is kept: only a search can tell.
    fn in_none_of_the_swept_groups(&self, ctx: &RequestCtx, member: &Entry) -> bool {
        let Some(attr) = self.member_of_attr.as_deref() else {
            return false;
        };
        let bases = self.sweep_bases(ctx);
        !member
            .values(attr)
            .iter()
            .map(Dn::new)
            .any(|g| bases.iter().any(|b| g.is_under(b.as_str()) || g == *b))
    }

    /// After a delete or archive: memberships a concurrent request added between leaving the
    /// groups and the entry's move, under any of `dns`.
    pub fn catch_up_step(&self, ctx: &RequestCtx, dns: Vec<Dn>) -> Vec<Step> {
        self.sweeps(ctx, dns, None)
            .into_iter()
            .map(|op| Step::new(StepKind::CatchUp, op, Undo::Nothing))
            .collect()
    }

    /// After a rename: groups listing `old` list `new` instead (the plan's last steps).
    pub fn follow_step(&self, ctx: &RequestCtx, old: &Dn, new: &Dn) -> Vec<Step> {
        if self.links_kept {
            return Vec::new();
        }
        self.sweeps(ctx, vec![old.clone()], Some(new.clone()))
            .into_iter()
            .map(|op| Step::new(StepKind::Follow, op, Undo::Nothing))
            .collect()
    }

    /// The request's tenant's role groups container, when roles are group memberships.
    pub fn roles_container(&self, ctx: &RequestCtx) -> Option<Dn> {
        if !self.roles {
            return None;
        }
        ctx.tenant.roles_container.clone()
    }

    /// The roles of the user at `user`: the names of the tenant's role groups listing it.
    pub async fn roles_of(&self, ctx: &RequestCtx, user: &Dn) -> ServiceResult<Vec<String>> {
        let Some(container) = self.roles_container(ctx) else {
            return Ok(Vec::new());
        };
        let filter = LdapFilter::and(vec![
            self.groups.class_filter(),
            LdapFilter::eq(&self.member_attr, user.to_string()),
        ]);
        let name_attr = self.groups.mapping.username_attr();
        let (found, _) = self
            .groups
            .dir
            .search(&container, &filter, &[name_attr], 0)
            .await?;
        let mut names: Vec<String> = found
            .iter()
            .filter_map(|e| self.groups.name_of(e).map(str::to_owned))
            .collect();
        names.sort_by_key(|n| n.to_lowercase());
        Ok(names)
    }

    /// The roles of `user` read off its memberOf values (read with it), without a search:
    /// the names of the groups under the roles container. `None` when no memberOf attribute
    /// is kept or names cannot be read off DNs (the groups' RDN is not their name).
    pub fn roles_from_member_of(&self, ctx: &RequestCtx, user: &Entry) -> Option<Vec<String>> {
        let container = self.roles_container(ctx)?;
        let attr = self.member_of_attr.as_deref()?;
        let mut names = Vec::new();
        for dn in user.values(attr).iter().map(Dn::new) {
            if dn.is_under(container.as_str()) {
                names.push(self.groups.mapping.name_from_dn(&dn)?);
            }
        }
        names.sort_by_key(|n| n.to_lowercase());
        Some(names)
    }

    /// The tenant's role groups named `names` (one search), keyed by lowercased name.
    pub async fn role_groups(
        &self,
        ctx: &RequestCtx,
        names: &[String],
    ) -> ServiceResult<HashMap<String, Dn>> {
        let mut out = HashMap::new();
        let Some(container) = self.roles_container(ctx) else {
            return Ok(out);
        };
        if names.is_empty() {
            return Ok(out);
        }
        let name_attr = self.groups.mapping.username_attr();
        let filter = LdapFilter::and(vec![
            self.groups.class_filter(),
            LdapFilter::or(
                names
                    .iter()
                    .map(|n| LdapFilter::eq(name_attr, n.clone()))
                    .collect(),
            ),
        ]);
        let (found, _) = self
            .groups
            .dir
            .search(&container, &filter, &[name_attr], 2 * names.len() + 1)
            .await?;
        for e in &found {
            if let Some(n) = self.groups.name_of(e) {
                out.insert(n.to_lowercase(), e.dn.clone());
            }
        }
        Ok(out)
    }

    /// The groups (of this tenant) the user at `user` belongs to, as SCIM `groups` values:
    /// the direct ones, then (with `nested`) the groups containing those, level by level, one
    /// batched search per level.
    pub async fn groups_of(&self, ctx: &RequestCtx, user: &Entry) -> ServiceResult<Vec<GroupLink>> {
        Ok(self
            .groups_of_many(ctx, &[user])
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// `groups_of` for each of `users` (a list page), in their order. With `member_of_attr`
    /// the cost does not grow with the number of users: the groups their memberOf names are
    /// read together (ids, and with `nested` their own memberOf), one batched search per
    /// `LOCATE_BATCH` groups and nesting level. Without it, the directory must be asked who
    /// lists each user: one search per user and level.
    pub async fn groups_of_many(
        &self,
        ctx: &RequestCtx,
        users: &[&Entry],
    ) -> ServiceResult<Vec<Vec<GroupLink>>> {
        let Some(container) = ctx.tenant.groups_container.as_ref() else {
            return Ok(vec![Vec::new(); users.len()]);
        };
        let Some(member_of) = self.member_of_attr.as_deref() else {
            let mut out = Vec::with_capacity(users.len());
            for user in users {
                out.push(self.groups_asked_for(container, &user.dn).await?);
            }
            return Ok(out);
        };
        let listed = |e: &Entry| groups_listed(e, member_of, container);
        let direct: Vec<Vec<Dn>> = users.iter().map(|u| listed(u)).collect();
        let known = self
            .reach(
                container,
                member_of,
                direct.iter().flatten().cloned().collect(),
            )
            .await?;
        let with_id = |dns: &[Dn]| -> Vec<(Dn, EntryId)> {
            dns.iter()
                .filter_map(|dn| match known.get(dn) {
                    Some(Some((id, _))) => Some((dn.clone(), id.clone())),
                    _ => None,
                })
                .collect()
        };
        let mut out = Vec::with_capacity(users.len());
        for dns in direct {
            let mut levels = Levels::new(self, with_id(&dns));
            while let Some(level) = levels.next_parents() {
                let parents: Vec<Dn> = level
                    .iter()
                    .filter_map(|dn| match known.get(dn) {
                        Some(Some((_, parents))) => Some(parents.iter().cloned()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                levels.push(with_id(&parents));
            }
            out.push(levels.out);
        }
        Ok(out)
    }

    /// A user's groups without memberOf: the directory is asked who lists the user, then
    /// (nested) who lists those groups, level by level.
    async fn groups_asked_for(&self, container: &Dn, user: &Dn) -> ServiceResult<Vec<GroupLink>> {
        let direct = self
            .parents_of(container, std::slice::from_ref(user))
            .await?;
        let mut levels = Levels::new(self, direct);
        while let Some(level) = levels.next_parents() {
            let found = self.parents_of(container, &level).await?;
            levels.push(found);
        }
        Ok(levels.out)
    }

    /// Every group reached from `frontier` through memberOf: its id and (nested) the groups
    /// listing it; `None` when it is not a group this tenant can see. One batched search per
    /// `LOCATE_BATCH` groups and nesting level.
    async fn reach(
        &self,
        container: &Dn,
        member_of: &str,
        mut frontier: Vec<Dn>,
    ) -> ServiceResult<HashMap<Dn, Option<(EntryId, Vec<Dn>)>>> {
        let mut known: HashMap<Dn, Option<(EntryId, Vec<Dn>)>> = HashMap::new();
        let id_attr = self.groups.dir.id_attribute();
        let attrs: Vec<&str> = if self.nested {
            vec![id_attr, member_of]
        } else {
            vec![id_attr]
        };
        for _ in 0..MAX_NESTING {
            let mut once = HashSet::new();
            frontier.retain(|dn| !known.contains_key(dn) && once.insert(dn.clone()));
            if frontier.is_empty() {
                break;
            }
            let mut found = self
                .groups
                .entries_for_dns(container, &frontier, &attrs)
                .await?;
            let mut next = Vec::new();
            for dn in std::mem::take(&mut frontier) {
                let group = found.remove(&dn).map(|e| {
                    let parents = if self.nested {
                        groups_listed(&e, member_of, container)
                    } else {
                        Vec::new()
                    };
                    next.extend(parents.iter().cloned());
                    (e.id, parents)
                });
                known.insert(dn, group);
            }
            frontier = next;
        }
        Ok(known)
    }

    /// (DN, id) of the groups under `container` that list any of `members` directly.
    async fn parents_of(
        &self,
        container: &Dn,
        members: &[Dn],
    ) -> ServiceResult<Vec<(Dn, EntryId)>> {
        let mut out = Vec::new();
        for chunk in members.chunks(super::store::LOCATE_BATCH) {
            let listing = LdapFilter::or(
                chunk
                    .iter()
                    .map(|m| LdapFilter::eq(&self.member_attr, m.to_string()))
                    .collect(),
            );
            let filter = LdapFilter::and(vec![self.groups.class_filter(), listing]);
            let (found, _) = self
                .groups
                .dir
                .search(container, &filter, &[self.groups.dir.id_attribute()], 0)
                .await?;
            out.extend(found.into_iter().map(|e| (e.dn, e.id)));
        }
        Ok(out)
    }

    /// (DN, SCIM id, user or group) for member DNs this tenant can see, resolved in batched
    /// searches per container (see `Store::ids_for_dns`).
    pub async fn resolve_dns(
        &self,
        users: &Store,
        ctx: &RequestCtx,
        dns: &[Dn],
    ) -> ServiceResult<Vec<(Dn, EntryId, ResourceType)>> {
        let dns: Vec<Dn> = dns
            .iter()
            .filter(|d| !self.is_placeholder(d))
            .cloned()
            .collect();
        let users_container = &ctx.tenant.users_container;
        let mut known = users.ids_for_dns(users_container, &dns).await?;
        let groups_container = ctx.tenant.groups_container.as_ref();
        if let Some(gc) = groups_container {
            known.extend(self.groups.ids_for_dns(gc, &dns).await?);
        }
        let mut out = Vec::with_capacity(dns.len());
        for dn in dns {
            let Some(id) = known.get(&dn).cloned() else {
                continue;
            };
            let kind = if dn.is_under(users_container) {
                ResourceType::User
            } else {
                ResourceType::Group
            };
            out.push((dn, id, kind));
        }
        Ok(out)
    }
}

/// The groups under `container` that `e`'s memberOf lists.
fn groups_listed(e: &Entry, member_of: &str, container: &Dn) -> Vec<Dn> {
    e.values(member_of)
        .iter()
        .map(Dn::new)
        .filter(|dn| dn.is_under(container))
        .collect()
}

/// Nesting deeper than this is a loop the seen-set already breaks; the bound is cheap.
const MAX_NESTING: usize = 32;

/// A user's `groups`, built level by level: the direct groups, then (with `nested`) the
/// groups listing those, each group once, as the first level that reaches it.
struct Levels<'a> {
    memberships: &'a Memberships,
    seen: HashSet<Dn>,
    /// The newest level's groups, until their parents are asked for.
    pending: Vec<Dn>,
    depth: usize,
    out: Vec<GroupLink>,
}

impl<'a> Levels<'a> {
    fn new(memberships: &'a Memberships, direct: Vec<(Dn, EntryId)>) -> Self {
        let mut levels = Levels {
            memberships,
            seen: HashSet::new(),
            pending: Vec::new(),
            depth: 0,
            out: Vec::new(),
        };
        levels.push(direct);
        levels
    }

    /// Adds a level: the groups not seen before.
    fn push(&mut self, mut level: Vec<(Dn, EntryId)>) {
        level.retain(|(dn, _)| self.seen.insert(dn.clone()));
        let direct = self.depth == 0;
        self.depth += 1;
        for (dn, id) in &level {
            self.out.push(GroupLink {
                id: id.clone(),
                display: self.memberships.groups.mapping.name_from_dn(dn),
                direct,
            });
        }
        self.pending = level.into_iter().map(|(dn, _)| dn).collect();
    }

    /// The groups whose parents come next, or `None` when the walk is over (not nested, no
    /// new groups, or the nesting bound reached).
    fn next_parents(&mut self) -> Option<Vec<Dn>> {
        if !self.memberships.nested || self.pending.is_empty() || self.depth >= MAX_NESTING {
            return None;
        }
        Some(std::mem::take(&mut self.pending))
    }
}
