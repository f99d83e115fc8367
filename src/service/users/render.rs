//! A user as SCIM shows it: its attributes, group and manager references as ids, roles, and pages
//! of them read with as few directory round trips as the page allows.

use std::collections::{HashMap, HashSet};

use crate::scim::schema::Container;
use crate::scim::value::{Complex, Resource as ScimResource, ScimValue, Simple};

use crate::directory::{Dn, Entry, EntryId, LdapFilter};
use crate::mapping::ValueKind;
use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::projection::Projection;
use crate::service::error::ServiceResult;
use crate::service::view::{GroupLink, Links, View};
use crate::service::RequestCtx;

use super::Users;

/// The user references a request resolved: the DN each value the client sent names (an id,
/// or an email address), and the id of each of those DNs, so that a reference is read from
/// the directory once per request and shown as an id whatever form it came in.
#[derive(Debug, Default, Clone)]
pub(super) struct Refs {
    dn_of: HashMap<String, Dn>,
    id_of: HashMap<Dn, EntryId>,
    /// DNs a batched lookup found to be no user of this tenant: not read again one by one.
    absent: HashSet<Dn>,
    /// Roles of users, read for a whole page at once (from their memberOf).
    roles: HashMap<Dn, Vec<String>>,
}

impl Refs {
    pub(super) fn new() -> Refs {
        Refs::default()
    }

    pub(super) fn insert(&mut self, sent: &str, dn: Dn, id: EntryId) {
        self.dn_of.insert(sent.to_owned(), dn.clone());
        self.id_of.insert(dn, id);
    }

    pub(super) fn knows(&self, sent: &str) -> bool {
        self.dn_of.contains_key(sent)
    }

    pub(super) fn dn(&self, sent: &str) -> Option<&Dn> {
        self.dn_of.get(sent)
    }

    pub(super) fn id(&self, dn: &Dn) -> Option<&EntryId> {
        self.id_of.get(dn)
    }

    pub(super) fn extend(&mut self, other: Refs) {
        self.dn_of.extend(other.dn_of);
        self.id_of.extend(other.id_of);
        self.absent.extend(other.absent);
        self.roles.extend(other.roles);
    }
}

/// The DN `refs` holds for a user id, as the mapping wants it.
pub(super) fn dn_for(refs: &Refs, id: &str) -> Option<String> {
    refs.dn(id).map(|dn| dn.to_string())
}

/// The values `f` compares with eq/ne on the paths `is_ref` accepts.
pub(super) fn collect_ref_values(
    f: &Filter,
    is_ref: &dyn Fn(&AttrPath) -> bool,
    out: &mut Vec<String>,
) {
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

impl Users {
    /// The entry as SCIM attributes (no id/meta), with DN references turned into ids; also
    /// those references as id → DN, so that a write need not look them up again.
    pub(super) async fn scim_view(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        known: &Refs,
    ) -> ServiceResult<(ScimResource, Refs)> {
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
                let values = roles
                    .into_iter()
                    .map(|r| Complex::new().with("value", Simple::String(r)));
                res.set(Container::Core, "roles", ScimValue::Multi(values.collect()));
            }
        }
        let mut refs = Refs::new();
        for (dn, id) in ids {
            refs.insert(&id.to_string(), dn, id);
        }
        Ok((res, refs))
    }

    /// The full resource: attributes, `groups` and `meta`; `known` holds references
    /// (id → DN) the caller already resolved.
    pub(super) async fn render(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        known: &Refs,
    ) -> ServiceResult<View> {
        self.render_with(ctx, e, true, known).await
    }

    /// What a read of `p`'s attributes fetches: only what it will show.
    pub(super) fn read_attrs(&self, p: &Projection) -> Vec<&str> {
        let roles_by_member_of = self.role_groups().is_some() && p.includes("roles");
        let member_of = match (
            &self.memberships,
            p.includes("groups") || roles_by_member_of,
        ) {
            (Some(m), true) => m.member_of_attr.as_deref(),
            _ => None,
        };
        self.store.attrs_for(p, member_of.as_slice())
    }

    /// The resource; `groups` (which may cost directory reads) only when `with_groups`.
    pub(super) async fn render_with(
        &self,
        ctx: &RequestCtx,
        e: &Entry,
        with_groups: bool,
        known: &Refs,
    ) -> ServiceResult<View> {
        let (res, _) = self.scim_view(ctx, e, known).await?;
        let groups = match (&self.memberships, with_groups) {
            (Some(m), true) => Some(m.groups_of(ctx, e).await?),
            _ => None,
        };
        Ok(self.store.view(e, res, groups.map(Links::Groups)))
    }

    /// The resources of a list page. Costs do not grow with the page: the users' manager
    /// ids, groups and roles are read for the whole page at once (batched searches), not per
    /// user.
    pub(super) async fn render_page(
        &self,
        ctx: &RequestCtx,
        entries: &[Entry],
        with_groups: bool,
    ) -> ServiceResult<Vec<View>> {
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
        let groups: Vec<Option<Vec<GroupLink>>> = match (&self.memberships, with_groups) {
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
            out.push(self.store.view(e, res, groups.map(Links::Groups)));
        }
        Ok(out)
    }

    /// DNs of the users that `res` references (e.g. its manager), added to `known`.
    /// Unknown references are left out: `to_ldap` then leaves the attribute as it is.
    pub(super) async fn resolve_refs(
        &self,
        ctx: &RequestCtx,
        res: &ScimResource,
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
    pub(super) async fn dns_for_refs(
        &self,
        ctx: &RequestCtx,
        refs: &[String],
    ) -> ServiceResult<Refs> {
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
}
