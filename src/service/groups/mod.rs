//! SCIM Groups against the directory. Membership changes become LDAP adds and deletes of
//! exactly the affected member values, so they cost O(changed members) and concurrent
//! changes do not overwrite each other; the member list is read only when a request needs it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::directory::{Dn, Entry, EntryId, LdapFilter};
use crate::mapping::Mapping;
use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::resource::Normalized;
use crate::scim::schema::Container;
use crate::scim::value::Resource as ScimResource;
use crate::scim::{ScimError, ScimResult};

use super::cursor::Cursors;
use super::error::{ServiceError, ServiceResult};
use super::list::{ListPage, ListQuery};
use super::listing::{self, Listed};
use super::memberships::Memberships;
use super::store::Store;
use super::view::{Links, MemberLink, View};
use super::RequestCtx;

mod members;
mod write;

use members::{collect_member_ids, member_ids};

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
struct GroupBody {
    res: ScimResource,
    members: Option<Vec<String>>,
}

fn required_display_name(res: &ScimResource) -> ServiceResult<&str> {
    match res.core("displayName").and_then(|v| v.as_str()) {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(ServiceError::invalid_value(
            "displayName is required and must be a non-empty string",
        )),
    }
}

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
        ctx.tenant.groups_container.as_ref().ok_or_else(|| {
            ServiceError::NotFound("groups are not configured for this tenant".into())
        })
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

    /// Entries of this type: the groups' class (sweeps run over it).
    pub fn class_filter(&self) -> LdapFilter {
        self.store.class_filter()
    }

    /// The group, with its members (resolved to ids) when `with_members`.
    async fn answer(&self, ctx: &RequestCtx, e: &Entry, with_members: bool) -> ServiceResult<View> {
        let res = self.store.mapping.to_scim(e, &|_| None);
        let members = if with_members {
            let dns = self.current_members(e);
            let resolved = self.members.resolve_dns(&self.users, ctx, &dns).await?;
            let links = resolved
                .into_iter()
                .map(|(_, id, kind)| MemberLink { id, kind })
                .collect();
            Some(Links::Members(links))
        } else {
            None
        };
        Ok(self.store.view(e, res, members))
    }

    /// Checks a Group body; returns the resource without members and the member ids.
    fn accept(&self, body: Normalized) -> ServiceResult<GroupBody> {
        let Normalized {
            resource: mut res,
            ignored,
        } = body;
        for k in ["id", "meta"] {
            res.remove(Container::Core, k);
        }
        let members = res
            .remove(Container::Core, "members")
            .map(|v| member_ids(&v))
            .transpose()?;
        self.store.mapping.check_unmapped(&res, &ignored)?;
        required_display_name(&res)?;
        Ok(GroupBody { res, members })
    }

    pub async fn get(&self, ctx: &RequestCtx, id: &str, with_members: bool) -> ServiceResult<View> {
        let e = self
            .store
            .locate(self.container(ctx)?, id, &self.attrs(with_members))
            .await?;
        self.answer(ctx, &e, with_members).await
    }

    /// A page of groups; members (resolved to ids) when the projection includes them.
    pub async fn list(&self, ctx: &RequestCtx, q: &ListQuery) -> ServiceResult<ListPage> {
        listing::list(self, ctx, q).await
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

    async fn read_back(&self, dn: &Dn, with_members: bool) -> ServiceResult<Entry> {
        self.store.read_back(dn, &self.attrs(with_members)).await
    }
}

impl Listed for Groups {
    fn store(&self) -> &Store {
        &self.store
    }

    fn cursors(&self) -> &Cursors {
        &self.cursors
    }

    fn max_results(&self) -> usize {
        self.max_results
    }

    fn container<'c>(&self, ctx: &'c RequestCtx) -> ServiceResult<&'c Dn> {
        Groups::container(self, ctx)
    }

    fn page_attrs(&self, q: &ListQuery, _walk: bool) -> Vec<&str> {
        self.attrs(q.projection.includes("members"))
    }

    /// Whether a walk reads members is fixed by its first page (a large group's members
    /// are read only when asked for): its cursors serve only requests that ask the same.
    fn walk_kind(&self, q: &ListQuery) -> &'static str {
        if q.projection.includes("members") {
            "Groups"
        } else {
            "Groups without members"
        }
    }

    async fn ldap_filter(&self, ctx: &RequestCtx, f: &Filter) -> ServiceResult<LdapFilter> {
        Groups::ldap_filter(self, ctx, f).await
    }

    async fn views(
        &self,
        ctx: &RequestCtx,
        entries: &[Entry],
        q: &ListQuery,
    ) -> ServiceResult<Vec<View>> {
        let with_members = q.projection.includes("members");
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            out.push(self.answer(ctx, e, with_members).await?);
        }
        Ok(out)
    }
}
