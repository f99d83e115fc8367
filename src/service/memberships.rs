//! Group membership in the directory: changes as LDAP adds and deletes of exactly the affected
//! member values (never a rewrite of the list, so concurrent changes do not lose each other),
//! a user's `groups`, and keeping groups consistent when a member is renamed or removed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::directory::filter::{is_under, normalize_dn};
use crate::directory::{Change, DirectoryError, Entry, LdapFilter};
use crate::scim::ScimResult;

use super::store::Store;
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

    /// One modify of the group at `dn`: `changes`, then the member `adds` and `deletes`.
    /// Adding a present member succeeds (permissive modify, or where the server ignores it, a
    /// compare of each add and a retry without those present); a delete whose value is already
    /// gone is dropped the same way, so IdP retries are idempotent and the cost stays
    /// O(changed members).
    pub async fn modify(
        &self,
        dn: &str,
        changes: Vec<Change>,
        adds: Vec<String>,
        deletes: Vec<String>,
    ) -> ScimResult<()> {
        self.modify_if(dn, changes, adds, deletes, None).await
    }

    /// `modify`, only while the group matches `assertion` (its `If-Match` version).
    pub async fn modify_if(
        &self,
        dn: &str,
        changes: Vec<Change>,
        adds: Vec<String>,
        deletes: Vec<String>,
        assertion: Option<&LdapFilter>,
    ) -> ScimResult<()> {
        let dir = &self.groups.dir;
        let mut deletes: Vec<String> = deletes
            .into_iter()
            .filter(|d| !self.is_placeholder(d))
            .collect();
        let mut adds = adds;
        for attempt in 0..3 {
            let mut all = changes.clone();
            if !adds.is_empty() {
                all.push(Change::Add(self.member_attr.clone(), adds.clone()));
            }
            if !deletes.is_empty() {
                all.push(Change::Delete(self.member_attr.clone(), deletes.clone()));
            }
            if all.is_empty() {
                return Ok(());
            }
            match dir.modify_if(dn, &all, assertion).await {
                Ok(()) => return Ok(()),
                Err(DirectoryError::NoSuchValue(_)) if !deletes.is_empty() && attempt < 2 => {
                    let mut present = Vec::new();
                    for d in deletes {
                        // a value added by this same request is still to be deleted after it
                        let added_here = adds.iter().any(|a| normalize_dn(a) == normalize_dn(&d));
                        if added_here || dir.contains(dn, &self.member_attr, &d).await? {
                            present.push(d);
                        }
                    }
                    deletes = present;
                }
                // Samba ignores permissive modify for linked attributes such as member and
                // answers entryAlreadyExists: drop the adds that are already there
                Err(DirectoryError::AlreadyExists(_)) if !adds.is_empty() && attempt < 2 => {
                    let mut missing = Vec::new();
                    for a in adds {
                        if !dir.contains(dn, &self.member_attr, &a).await? {
                            missing.push(a);
                        }
                    }
                    adds = missing;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(crate::scim::ScimError::conflict(
            "the group's members kept changing during the update; retry",
        ))
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

    /// Removes `member_dn` from every group of the tenant (a deleted user or group must not
    /// stay listed under an id that answers 404).
    pub async fn remove_everywhere(&self, ctx: &RequestCtx, member_dn: &str) -> ScimResult<()> {
        let Some(container) = ctx.tenant.groups_container.as_deref() else {
            return Ok(());
        };
        for group in self.parents(container, member_dn).await? {
            self.modify(&group, vec![], vec![], vec![member_dn.to_owned()])
                .await?;
        }
        Ok(())
    }

    /// Points the tenant's groups at a renamed member's new DN.
    pub async fn renamed(&self, ctx: &RequestCtx, old_dn: &str, new_dn: &str) -> ScimResult<()> {
        let Some(container) = ctx.tenant.groups_container.as_deref() else {
            return Ok(());
        };
        for group in self.parents(container, old_dn).await? {
            self.modify(
                &group,
                vec![],
                vec![new_dn.to_owned()],
                vec![old_dn.to_owned()],
            )
            .await?;
        }
        Ok(())
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
