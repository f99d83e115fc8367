//! Group membership in the directory: changes as LDAP adds and deletes of exactly the affected
//! member values (never a rewrite of the list, so concurrent changes do not lose each other),
//! a user's `groups`, and the plan steps that keep groups consistent when a member is
//! created, renamed or removed (no group may list a DN that is not a live member).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::directory::{Dn, Entry, EntryId, LdapFilter};
use crate::scim::ScimResult;

use super::store::Store;
use super::write::{Label, Op, Step, Undo, Values};
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
    /// Where the groups that stand for roles live (`[roles] container`), when roles are
    /// group memberships.
    pub roles: Option<Dn>,
}

/// Where a member DN points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberKind {
    User,
    Group,
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
    pub fn change_step(&self, label: Label, group: &Dn, values: Values) -> Step {
        let op = |v: Values| Op::Modify {
            dn: group.clone(),
            changes: vec![],
            values: Some(v),
            assertion: None,
        };
        Step::new(label, op(values.clone()), Undo::by(op(values.inverse())))
    }

    /// Sweeps of the tenant's groups, and of the role groups, for `members` (pointing them
    /// at `to` when given).
    fn sweeps(&self, ctx: &RequestCtx, members: Vec<Dn>, to: Option<Dn>) -> Vec<Op> {
        let mut bases: Vec<String> = ctx.tenant.groups_container.iter().cloned().collect();
        if let Some(r) = &self.roles {
            if !bases.iter().any(|b| r.is_under(b)) {
                bases.push(r.to_string());
            }
        }
        bases
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

    /// Before an entry takes the name `dn`: no group may list that name already (left by an
    /// earlier entry of the same name), or the new entry would inherit its memberships.
    pub fn stale_step(&self, ctx: &RequestCtx, dn: &Dn) -> Vec<Step> {
        self.sweeps(ctx, vec![dn.clone()], None)
            .into_iter()
            .map(|op| Step::new(Step::STALE, op, Undo::Nothing))
            .collect()
    }

    /// The entry at `dn` leaves every group of the tenant (undone by rejoining them).
    pub fn leave_step(&self, ctx: &RequestCtx, dn: &Dn) -> Vec<Step> {
        self.sweeps(ctx, vec![dn.clone()], None)
            .into_iter()
            .map(|op| Step::new(Step::LEAVE_GROUPS, op, Undo::Recorded))
            .collect()
    }

    /// After a delete or archive: memberships a concurrent request added between leaving the
    /// groups and the entry's move, under any of `dns`.
    pub fn catch_up_step(&self, ctx: &RequestCtx, dns: Vec<Dn>) -> Vec<Step> {
        self.sweeps(ctx, dns, None)
            .into_iter()
            .map(|op| Step::new(Step::CATCH_UP, op, Undo::Nothing))
            .collect()
    }

    /// After a rename: groups listing `old` list `new` instead (the plan's last steps).
    pub fn follow_step(&self, ctx: &RequestCtx, old: &Dn, new: &Dn) -> Vec<Step> {
        self.sweeps(ctx, vec![old.clone()], Some(new.clone()))
            .into_iter()
            .map(|op| Step::new(Step::FOLLOW, op, Undo::Nothing))
            .collect()
    }

    /// The roles of the user at `user`: the names of the role groups listing it.
    pub async fn roles_of(&self, user: &Dn) -> ScimResult<Vec<String>> {
        let Some(container) = &self.roles else {
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
            .search(container.as_str(), &filter, &[name_attr], 0)
            .await?;
        let mut names: Vec<String> = found
            .iter()
            .filter_map(|e| self.groups.name_of(e).map(str::to_owned))
            .collect();
        names.sort_by_key(|n| n.to_lowercase());
        Ok(names)
    }

    /// The role groups named `names` (one search), keyed by lowercased name.
    pub async fn role_groups(&self, names: &[String]) -> ScimResult<HashMap<String, Dn>> {
        let mut out = HashMap::new();
        let Some(container) = &self.roles else {
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
            .search(
                container.as_str(),
                &filter,
                &[name_attr],
                2 * names.len() + 1,
            )
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
    pub async fn groups_of(&self, ctx: &RequestCtx, user: &Entry) -> ScimResult<Vec<Value>> {
        let Some(container) = ctx.tenant.groups_container.as_deref() else {
            return Ok(Vec::new());
        };
        let direct: Vec<(Dn, EntryId)> = match &self.member_of_attr {
            Some(a) => {
                let dns: Vec<Dn> = user
                    .values(a)
                    .iter()
                    .map(Dn::new)
                    .filter(|dn| dn.is_under(container))
                    .collect();
                let ids = self.groups.ids_for_dns(container, &dns).await?;
                dns.into_iter()
                    .filter_map(|dn| ids.get(&dn).map(|id| (dn.clone(), id.clone())))
                    .collect()
            }
            None => {
                self.parents_of(container, std::slice::from_ref(&user.dn))
                    .await?
            }
        };
        let mut out = Vec::new();
        let mut seen: HashSet<Dn> = HashSet::new();
        let mut level = direct;
        let mut kind = "direct";
        // nesting deeper than this is a loop the seen-set already breaks; the bound is cheap
        for _ in 0..32 {
            level.retain(|(dn, _)| seen.insert(dn.clone()));
            if level.is_empty() {
                break;
            }
            for (dn, id) in &level {
                let mut v = json!({
                    "value": id,
                    "$ref": format!("{}/Groups/{id}", ctx.base_url),
                    "type": kind,
                });
                if let Some(name) = self.groups.mapping.name_from_dn(dn) {
                    v["display"] = Value::String(name);
                }
                out.push(v);
            }
            if !self.nested {
                break;
            }
            let dns: Vec<Dn> = level.into_iter().map(|(dn, _)| dn).collect();
            level = self.parents_of(container, &dns).await?;
            kind = "indirect";
        }
        Ok(out)
    }

    /// (DN, id) of the groups under `container` that list any of `members` directly.
    async fn parents_of(&self, container: &str, members: &[Dn]) -> ScimResult<Vec<(Dn, EntryId)>> {
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
    ) -> ScimResult<Vec<(Dn, EntryId, MemberKind)>> {
        let dns: Vec<Dn> = dns
            .iter()
            .filter(|d| !self.is_placeholder(d))
            .cloned()
            .collect();
        let users_container = ctx.tenant.users_container.as_str();
        let mut known = users.ids_for_dns(users_container, &dns).await?;
        let groups_container = ctx.tenant.groups_container.as_deref();
        if let Some(gc) = groups_container {
            known.extend(self.groups.ids_for_dns(gc, &dns).await?);
        }
        let mut out = Vec::with_capacity(dns.len());
        for dn in dns {
            let Some(id) = known.get(&dn).cloned() else {
                continue;
            };
            let kind = if dn.is_under(users_container) {
                MemberKind::User
            } else {
                MemberKind::Group
            };
            out.push((dn, id, kind));
        }
        Ok(out)
    }
}
