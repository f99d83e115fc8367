//! Group members: who a request names (ids, checked to be this tenant's users or groups), the exact
//! values to add and remove, and the check that added members are still there after the write.

use std::collections::{HashMap, HashSet};

use tracing::warn;

use crate::directory::{Dn, Entry, EntryId};
use crate::scim::filter::{matches, CompValue, CompareOp, Filter};
use crate::scim::patch::{OpKind, PatchOperation};
use crate::scim::schema::Container;
use crate::scim::value::{Complex, ScimValue, Simple};
use crate::service::error::{ServiceError, ServiceResult};
use crate::service::memberships::ResourceType;
use crate::service::write::{Op, Plan, Step, StepKind, Undo};
use crate::service::RequestCtx;

use super::Groups;

/// A member as this request resolved it: its id and the DN it had then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Member {
    pub(super) id: EntryId,
    pub(super) dn: Dn,
}

/// The member changes one request makes: members to add (with their ids, to check them again
/// after the write) and DNs to delete.
#[derive(Default)]
pub(super) struct MemberDelta {
    pub(super) adds: Vec<Member>,
    pub(super) deletes: Vec<Dn>,
    /// Each DN's latest change (true: add): a later change overrides an earlier one in O(1),
    /// so a 10,000-member PATCH stays linear; `adds`/`deletes` keep the request's order and
    /// are filtered by this on the way out.
    pub(super) last: HashMap<Dn, bool>,
}

impl MemberDelta {
    pub(super) fn add(&mut self, m: Member) {
        if self.last.insert(m.dn.clone(), true) != Some(true) {
            self.adds.push(m);
        }
    }

    pub(super) fn delete(&mut self, dn: Dn) {
        if self.last.insert(dn.clone(), false) != Some(false) {
            self.deletes.push(dn);
        }
    }

    /// Replaces the membership: from `current` to exactly `wanted`, in linear time.
    pub(super) fn replace(&mut self, current: &[Dn], wanted: Vec<Member>) {
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
    pub(super) fn add_members(&self) -> Vec<Member> {
        let mut seen = HashSet::new();
        self.adds
            .iter()
            .filter(|m| self.last.get(&m.dn) == Some(&true) && seen.insert(&m.dn))
            .cloned()
            .collect()
    }

    pub(super) fn add_dns(&self) -> Vec<Dn> {
        self.add_members().into_iter().map(|m| m.dn).collect()
    }

    /// The DNs to delete, each once, in the order first named.
    pub(super) fn delete_dns(&self) -> Vec<Dn> {
        let mut seen = HashSet::new();
        self.deletes
            .iter()
            .filter(|d| self.last.get(*d) == Some(&false) && seen.insert(*d))
            .cloned()
            .collect()
    }
}

/// How often the members a request added are looked up again after a correction.
pub(super) const MAX_MEMBER_CHECKS: usize = 8;

/// Ids from a `members` value (bare ids were made `{"value": id}` when it was parsed).
pub(super) fn member_ids(v: &ScimValue) -> ServiceResult<Vec<String>> {
    let one;
    let items: &[Complex] = match v {
        ScimValue::Multi(items) => items,
        ScimValue::Complex(c) => {
            one = [c.clone()];
            &one
        }
        ScimValue::Simple(_) => {
            return Err(ServiceError::invalid_value(
                "members must be objects like {\"value\": \"<id>\"}",
            ))
        }
    };
    items
        .iter()
        .map(|item| {
            item.str("value").map(str::to_owned).ok_or_else(|| {
                ServiceError::invalid_value("each member needs a \"value\" with the member's id")
            })
        })
        .collect()
}

/// Separates operations on `members` (applied as member adds/deletes) from the rest (applied
/// through the mapping). Path-less operations were split by key when they were parsed.
pub(super) fn split_member_ops(
    ops: Vec<PatchOperation>,
) -> (Vec<PatchOperation>, Vec<PatchOperation>) {
    ops.into_iter().partition(|op| {
        op.attr()
            .is_some_and(|t| t.container == Container::Core && t.def.name == "members")
    })
}

/// Whether a member operation needs the current member list (replace, remove-all, or a
/// filter other than `value eq "id"`).
pub(super) fn needs_member_list(op: &PatchOperation) -> bool {
    let filter = op.attr().and_then(|t| t.filter.as_ref());
    match (op.op, filter) {
        (OpKind::Replace, None) => true,
        (OpKind::Remove, None) => op.value.is_none(),
        (OpKind::Remove, Some(f)) => !simple_value_ids(f, &mut Vec::new()),
        _ => false,
    }
}

/// `value eq "a"` or `value eq "a" or value eq "b"`: collects the ids and says yes.
pub(super) fn simple_value_ids(f: &Filter, out: &mut Vec<String>) -> bool {
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
pub(super) fn collect_member_ids(f: &Filter, out: &mut Vec<String>) {
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

/// Members about to be added to `group`: the check `verify_added` makes after the write is
/// owed from the moment it is sent, so the journal records it with the plan (a bridge stopped
/// before the check leaves it to recovery).
pub(super) fn owe_check(group: &Dn, members: &[Member]) {
    if !members.is_empty() {
        let owed: Vec<(EntryId, Dn)> = members
            .iter()
            .map(|m| (m.id.clone(), m.dn.clone()))
            .collect();
        crate::service::journal::owe_recheck(group, &owed);
    }
}

impl Groups {
    /// The entry's current members (placeholder left out).
    pub(super) fn current_members(&self, e: &Entry) -> Vec<Dn> {
        e.values(self.member_attr())
            .iter()
            .map(Dn::new)
            .filter(|d| !self.members.is_placeholder(d))
            .collect()
    }

    /// The DN and kind of each User or Group among `ids`, in the tenant's view: users
    /// first, then groups for the ids left, each in batched searches.
    pub(super) async fn resolve_ids(
        &self,
        ctx: &RequestCtx,
        ids: &[String],
    ) -> ServiceResult<HashMap<EntryId, (Dn, ResourceType)>> {
        let id_only = [self.store.dir.id_attribute()];
        let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut out: HashMap<EntryId, (Dn, ResourceType)> = self
            .users
            .locate_many(&ctx.tenant.users_container, &wanted, &id_only)
            .await?
            .into_iter()
            .map(|(id, e)| (id, (e.dn, ResourceType::User)))
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
                    .map(|(id, e)| (id, (e.dn, ResourceType::Group))),
            );
        }
        Ok(out)
    }

    /// Members for ids, in order. `strict`: an unknown id is a 400 naming it (for adds);
    /// otherwise it is skipped (removing someone who no longer exists is already done).
    pub(super) async fn resolve_members(
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
    pub(super) async fn verify_added(
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
    pub(super) async fn archived_dns(&self, ids: &[&str]) -> ServiceResult<Vec<Dn>> {
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
    pub(super) fn check_member_count(&self, n: usize) -> ServiceResult<()> {
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

    pub(super) async fn member_op(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        op: &PatchOperation,
        delta: &mut MemberDelta,
    ) -> ServiceResult<()> {
        let filter = op.attr().and_then(|t| t.filter.as_ref());
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
                        let kind = if kind == ResourceType::User {
                            "User"
                        } else {
                            "Group"
                        };
                        let member = Complex::new()
                            .with("value", Simple::String(id.to_string()))
                            .with("type", Simple::String(kind.to_owned()));
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::patch::parse_patch_request;
    use crate::scim::resource::normalize_value;
    use crate::scim::schema::GROUP_RESOURCE;
    use serde_json::json;

    /// A `members` value as a body sends it, parsed.
    fn members(v: serde_json::Value) -> ScimValue {
        let (_, def) = GROUP_RESOURCE.resolve(None, "members").unwrap();
        normalize_value(def, &v, "members").unwrap().unwrap()
    }

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
            member_ids(&members(json!([{"value": "a"}, {"Value": "b"}, "c"]))).unwrap(),
            vec!["a", "b", "c"]
        );
        assert!(member_ids(&members(json!([{"display": "x"}]))).is_err());
    }

    #[test]
    fn pathless_ops_are_split_by_key() {
        let ops = parse_patch_request(
            &json!({"Operations": [
                {"op": "replace", "value": {"displayName": "New", "members": [{"value": "a"}]}},
                {"op": "remove", "path": "members[value eq \"b\"]"},
                {"op": "Add", "path": "members", "value": [{"value": "c"}]}
            ]}),
            &GROUP_RESOURCE,
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
