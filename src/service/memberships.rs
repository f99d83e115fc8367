//! Group membership in the directory: changes as LDAP adds and deletes of exactly the affected
//! member values (never a rewrite of the list, so concurrent changes do not lose each other),
//! a user's `groups`, and the plan steps that keep groups consistent when a member is
//! created, renamed or removed (no group may list a DN that is not a live member).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::directory::filter::{is_under, normalize_dn};
use crate::directory::{Entry, LdapFilter};
use crate::scim::ScimResult;

use super::store::Store;
use super::write::{Label, Op, Step, Undo, Values};
use super::RequestCtx;

pub struct Memberships {
    pub groups: Arc<Store>,
    pub member_attr: String,
    /// Held by every group (for classes that require a member); never shown.
    pub placeholder: Option<String>,
    /// A user attribute listing its groups (memberOf); else found by search.
    pub member_of_attr: Option<String>,
    /// Also report groups reached through nested groups (`type: indirect`).
    pub nested: bool,
}

/// Where a member DN points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberKind {
    User,
    Group,
}

impl Memberships {
    pub fn is_placeholder(&self, dn: &str) -> bool {
        self.placeholder
            .as_deref()
            .is_some_and(|p| normalize_dn(p) == normalize_dn(dn))
    }

    /// Member changes of one group, as plan values (placeholder left alone).
    pub fn values(&self, adds: Vec<String>, deletes: Vec<String>) -> Values {
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
    pub fn change_step(&self, label: Label, group: &str, values: Values) -> Step {
        let op = |v: Values| Op::Modify {
            dn: group.to_owned(),
            changes: vec![],
            values: Some(v),
            assertion: None,
        };
        Step::new(label, op(values.clone()), Undo::by(op(values.inverse())))
    }

    /// A sweep of the tenant's groups for `members` (pointing them at `to` when given).
    fn sweep(&self, ctx: &RequestCtx, members: Vec<String>, to: Option<String>) -> Option<Op> {
        let base = ctx.tenant.groups_container.clone()?;
        Some(Op::Sweep {
            base,
            class: self.groups.class_filter(),
            attr: self.member_attr.clone(),
            members,
            to,
        })
    }

    /// Before an entry takes the name `dn`: no group may list that name already (left by an
    /// earlier entry of the same name), or the new entry would inherit its memberships.
    pub fn stale_step(&self, ctx: &RequestCtx, dn: &str) -> Option<Step> {
        self.sweep(ctx, vec![dn.to_owned()], None)
            .map(|op| Step::new(Step::STALE, op, Undo::Nothing))
    }

    /// The entry at `dn` leaves every group of the tenant (undone by rejoining them).
    pub fn leave_step(&self, ctx: &RequestCtx, dn: &str) -> Option<Step> {
        self.sweep(ctx, vec![dn.to_owned()], None)
            .map(|op| Step::new(Step::LEAVE_GROUPS, op, Undo::Recorded))
    }

    /// After a delete or archive: memberships a concurrent request added between leaving the
    /// groups and the entry's move, under any of `dns`.
    pub fn catch_up_step(&self, ctx: &RequestCtx, dns: Vec<String>) -> Option<Step> {
        self.sweep(ctx, dns, None)
            .map(|op| Step::new(Step::CATCH_UP, op, Undo::Nothing))
    }

    /// After a rename: groups listing `old` list `new` instead (the plan's last step).
    pub fn follow_step(&self, ctx: &RequestCtx, old: &str, new: &str) -> Option<Step> {
        self.sweep(ctx, vec![old.to_owned()], Some(new.to_owned()))
            .map(|op| Step::new(Step::FOLLOW, op, Undo::Nothing))
    }

    /// The groups (of this tenant) the user at `user` belongs to, as SCIM `groups` values.
    pub async fn groups_of(&self, ctx: &RequestCtx, user: &Entry) -> ScimResult<Vec<Value>> {
        let Some(container) = ctx.tenant.groups_container.as_deref() else {
            return Ok(Vec::new());
        };
        let direct: Vec<String> = match &self.member_of_attr {
            Some(a) => user
                .values(a)
                .iter()
                .filter(|dn| is_under(dn, container))
                .cloned()
                .collect(),
            None => self.parents(container, &user.dn).await?,
        };
        let mut out = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut queue: VecDeque<(String, &str)> =
            direct.into_iter().map(|dn| (dn, "direct")).collect();
        while let Some((dn, kind)) = queue.pop_front() {
            if !seen.insert(normalize_dn(&dn)) {
                continue;
            }
            let Some(id) = self.groups.id_for_dn(container, &dn).await? else {
                continue;
            };
            let mut v = json!({
                "value": id,
                "$ref": format!("{}/Groups/{id}", ctx.base_url),
                "type": kind,
            });
            if let Some(name) = self.groups.mapping.name_from_dn(&dn) {
                v["display"] = Value::String(name);
            }
            out.push(v);
            if self.nested {
                for parent in self.parents(container, &dn).await? {
                    queue.push_back((parent, "indirect"));
                }
            }
        }
        Ok(out)
    }

    /// DNs of the groups under `container` that list `member_dn` directly.
    pub async fn parents(&self, container: &str, member_dn: &str) -> ScimResult<Vec<String>> {
        let filter = LdapFilter::and(vec![
            self.groups.class_filter(),
            LdapFilter::eq(&self.member_attr, member_dn),
        ]);
        let (found, _) = self
            .groups
            .dir
            .search(container, &filter, &[self.groups.dir.id_attribute()], 0)
            .await?;
        Ok(found.into_iter().map(|e| e.dn).collect())
    }

    /// (DN, SCIM id, user or group) for member DNs this tenant can see. A few unknown DNs are
    /// read one by one; many are resolved with one id-only search per container, so a large
    /// group never costs a read per member.
    pub async fn resolve_dns(
        &self,
        users: &Store,
        ctx: &RequestCtx,
        dns: &[String],
    ) -> ScimResult<Vec<(String, String, MemberKind)>> {
        const READ_ONE_BY_ONE: usize = 16;
        let groups_container = ctx.tenant.groups_container.clone().unwrap_or_default();
        let containers = [
            (users, ctx.tenant.users_container.as_str(), MemberKind::User),
            (&*self.groups, groups_container.as_str(), MemberKind::Group),
        ];
        let mut known: HashMap<String, String> = HashMap::new();
        let mut missing: Vec<&String> = Vec::new();
        for dn in dns {
            match users.cache.id_for_dn(dn).await {
                Some(id) => {
                    known.insert(normalize_dn(dn), id);
                }
                None => missing.push(dn),
            }
        }
        if missing.len() > READ_ONE_BY_ONE {
            for (store, container, _) in &containers {
                if container.is_empty() {
                    continue;
                }
                let (all, _) = store
                    .dir
                    .search(
                        container,
                        &store.class_filter(),
                        &[store.dir.id_attribute()],
                        0,
                    )
                    .await?;
                for e in all {
                    store.cache.remember(&e.id, &e.dn, container, None).await;
                    known.insert(normalize_dn(&e.dn), e.id);
                }
            }
        } else {
            for dn in missing {
                for (store, container, _) in &containers {
                    if !container.is_empty() && is_under(dn, container) {
                        if let Some(id) = store.id_for_dn(container, dn).await? {
                            known.insert(normalize_dn(dn), id);
                        }
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(dns.len());
        for dn in dns {
            if self.is_placeholder(dn) {
                continue;
            }
            let Some(id) = known.get(&normalize_dn(dn)) else {
                continue;
            };
            let kind = containers
                .iter()
                .find(|(_, c, _)| !c.is_empty() && is_under(dn, c))
                .map(|(_, _, k)| k.clone());
            if let Some(kind) = kind {
                out.push((dn.clone(), id.clone(), kind));
            }
        }
        Ok(out)
    }
}
