//! SCIM Groups against the directory. Membership changes become LDAP adds and deletes of
//! exactly the affected member values, so they cost O(changed members) and concurrent
//! changes do not overwrite each other; the member list is read only when a request needs it.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::directory::{Dn, Entry, EntryId, LdapFilter};
use crate::mapping::Mapping;
use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::resource::Normalized;
use crate::scim::schema::{Container, GROUP_SCHEMA};
use crate::scim::value::Resource as ScimResource;
use crate::scim::{ScimError, ScimResult};

use super::cursor::Cursors;
use super::error::{ServiceError, ServiceResult};
use super::list::{ListPage, ListQuery};
use super::memberships::{MemberKind, Memberships};
use super::store::{CursorRequest, Store};
use super::{RequestCtx, Resource};

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

    /// Entries of this type: the groups' class (sweeps run over it).
    pub fn class_filter(&self) -> LdapFilter {
        self.store.class_filter()
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
        res.write_json(&mut out);
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

    async fn read_back(&self, dn: &Dn, with_members: bool) -> ServiceResult<Entry> {
        self.store.read_back(dn, &self.attrs(with_members)).await
    }
}
