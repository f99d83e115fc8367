//! SCIM Users against the directory: every operation reads what it must (through the DN
//! cache), computes one set of changes, and applies it so that a failure leaves nothing
//! half-done.

use std::sync::Arc;

use crate::scim::value::Resource as ScimResource;

use crate::config::{DeleteMode, OnExisting, UnmappedPassword};
use crate::directory::filter::is_under;
use crate::directory::{Dn, Entry, LdapFilter};
use crate::mapping::Mapping;
use crate::safety::{Permit, Removal, Valve};
use crate::scim::filter::{CompValue, CompareOp, Filter};
use crate::scim::projection::Projection;
use crate::scim::schema::USER_SCHEMA;
use crate::scim::{ScimError, ScimResult};

use super::cursor::Cursors;
use super::error::{ServiceError, ServiceResult};
use super::list::{ListPage, ListQuery};
use super::listing::{self, Listed};
use super::memberships::Memberships;
use super::store::Store;
use super::{RequestCtx, View};

mod create;
mod delete;
mod render;
mod roles;
mod update;

use render::{collect_ref_values, Refs};

#[derive(Debug, Clone)]
pub struct UserSettings {
    pub delete_mode: DeleteMode,
    pub archive_container: Option<Dn>,
    /// The most resources a list returns (and the default `count`).
    pub max_results: usize,
    pub limits: crate::scim::Limits,
    /// LDAP attributes that find an existing account on create (`users.match_on`).
    pub match_on: Vec<String>,
    pub on_existing: OnExisting,
    /// What a password does when the mapping does not store passwords.
    pub password: UnmappedPassword,
}

pub struct Users {
    store: Arc<Store>,
    settings: UserSettings,
    memberships: Option<Arc<Memberships>>,
    cursors: Arc<Cursors>,
    /// Counts deletes and deactivations; holds them past the tenant's threshold.
    valve: Arc<Valve>,
}

/// 409 `uniqueness` for a userName `e` holds, naming it (so that an IdP can link to it).
fn taken(user_name: &str, e: &Entry) -> ServiceError {
    ServiceError::Taken(format!(
        "userName \"{}\" is already taken by User {}",
        crate::logging::shorten(user_name, 256),
        e.id
    ))
}

fn required_user_name(res: &ScimResource) -> ServiceResult<&str> {
    match res.core("userName").and_then(|v| v.as_str()) {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(ServiceError::invalid_value(
            "userName is required and must be a non-empty string",
        )),
    }
}

impl Users {
    /// Entries of this type: the users' structural class (the repair sweep's searches).
    pub fn class_filter(&self) -> LdapFilter {
        self.store.class_filter()
    }

    pub fn new(
        store: Arc<Store>,
        settings: UserSettings,
        memberships: Option<Arc<Memberships>>,
        cursors: Arc<Cursors>,
        valve: Arc<Valve>,
    ) -> Users {
        Users {
            store,
            settings,
            memberships,
            cursors,
            valve,
        }
    }

    /// Asks the safety valve to let the removal of `e` through (a delete or deactivation).
    async fn admit_removal(&self, ctx: &RequestCtx, e: &Entry) -> ServiceResult<Permit> {
        let who = Removal {
            id: e.id.as_str(),
            user_name: self.store.name_of(e).unwrap_or_default(),
        };
        let users = self.users_for_valve(ctx).await?;
        let now = time::OffsetDateTime::now_utc();
        Ok(self
            .valve
            .admit(&ctx.tenant.name, ctx.tenant.safety, users, who, now)?)
    }

    /// The tenant's number of users, when its threshold is a percentage of them: counted
    /// at most once per window (a search of every user's DN), kept by the valve.
    async fn users_for_valve(&self, ctx: &RequestCtx) -> ServiceResult<Option<usize>> {
        let limit = ctx.tenant.safety;
        if limit.percent.is_none() {
            return Ok(None);
        }
        if let Some(n) = self.valve.users(&ctx.tenant.name, limit.window) {
            return Ok(Some(n));
        }
        let (all, _) = self
            .store
            .dir
            .search(
                &ctx.tenant.users_container,
                &self.store.class_filter(),
                &["1.1"],
                0,
            )
            .await?;
        self.valve.counted_users(&ctx.tenant.name, all.len());
        Ok(Some(all.len()))
    }

    pub fn max_results(&self) -> usize {
        self.settings.max_results
    }

    fn mapping(&self) -> &Mapping {
        &self.store.mapping
    }

    async fn locate(&self, ctx: &RequestCtx, id: &str) -> ServiceResult<Entry> {
        self.store
            .locate(&ctx.tenant.users_container, id, &self.store.attrs())
            .await
    }

    async fn remember(&self, ctx: &RequestCtx, e: &Entry) {
        self.store.remember(&ctx.tenant.users_container, e).await;
    }

    /// A user, reading only the LDAP attributes `p` lets through.
    pub async fn get(&self, ctx: &RequestCtx, id: &str, p: &Projection) -> ServiceResult<View> {
        let e = self
            .store
            .locate(&ctx.tenant.users_container, id, &self.read_attrs(p))
            .await?;
        self.render_with(ctx, &e, p.includes("groups"), &Refs::new())
            .await
    }

    pub async fn list(&self, ctx: &RequestCtx, q: &ListQuery) -> ServiceResult<ListPage> {
        if q.cursor.is_none() {
            let start = q.start_index.max(1);
            let count = q
                .count
                .unwrap_or(self.max_results())
                .min(self.max_results());
            if let Some(page) = self.list_by_cached_name(ctx, q, start, count).await? {
                return Ok(page);
            }
        }
        listing::list(self, ctx, q).await
    }

    /// User filters: the mapping's attributes, plus references to users (`manager eq "id"`,
    /// `manager.value eq "id"`; Entra checks a manager this way), whose ids (or emails) are
    /// resolved to DNs first: the directory holds DNs.
    async fn ldap_filter(&self, ctx: &RequestCtx, f: &Filter) -> ServiceResult<LdapFilter> {
        let mapping = self.mapping();
        let mut refs = Vec::new();
        collect_ref_values(f, &|p| mapping.user_ref_attr(p).is_some(), &mut refs);
        let dns = self.dns_for_refs(ctx, &refs).await?;
        let hook = |node: &Filter| -> Option<ScimResult<LdapFilter>> {
            let Filter::Compare(p, op, value) = node else {
                return None;
            };
            let attr = mapping.user_ref_attr(p)?;
            let eq = |r: &str| {
                dns.dn(r)
                    .map(|dn| LdapFilter::eq(attr, dn.to_string()))
                    .unwrap_or(LdapFilter::False)
            };
            Some(match (op, value) {
                (CompareOp::Eq, CompValue::Str(r)) => Ok(eq(r)),
                (CompareOp::Ne, CompValue::Str(r)) => Ok(LdapFilter::negate(eq(r))),
                _ => Err(ScimError::invalid_filter(format!(
                    "'{p}' is a reference to a user: use eq or ne with the user's id, or pr"
                ))),
            })
        };
        mapping
            .ldap_filter_with(f, &|id| self.store.dir.id_filter(id), &hook)
            .map_err(ServiceError::from)
    }

    /// `userName eq "x"` (what Entra and Okta send before every create) answered from the
    /// DN cache with one read, when the cached entry still has that name.
    async fn list_by_cached_name(
        &self,
        ctx: &RequestCtx,
        q: &ListQuery,
        start: usize,
        count: usize,
    ) -> ServiceResult<Option<ListPage>> {
        let Some(Filter::Compare(p, CompareOp::Eq, CompValue::Str(name))) = &q.filter else {
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
        let Some(dn) = self.store.cache.dn_for_name(container, name).await else {
            return Ok(None);
        };
        match self
            .store
            .read_mine(&dn, &self.read_attrs(&q.projection))
            .await?
        {
            Some(e)
                if is_under(&e.dn, container)
                    && e.values(self.mapping().username_attr())
                        .iter()
                        .any(|v| v.eq_ignore_ascii_case(name)) =>
            {
                Ok(Some(ListPage {
                    cursor: None,
                    total_results: 1,
                    start_index: 1,
                    resources: vec![
                        self.render_with(ctx, &e, q.projection.includes("groups"), &Refs::new())
                            .await?,
                    ],
                }))
            }
            _ => {
                self.store.cache.forget_name(container, name).await;
                Ok(None)
            }
        }
    }
}

impl Listed for Users {
    fn store(&self) -> &Store {
        &self.store
    }

    fn cursors(&self) -> &Cursors {
        &self.cursors
    }

    fn max_results(&self) -> usize {
        self.settings.max_results
    }

    fn container<'c>(&self, ctx: &'c RequestCtx) -> ServiceResult<&'c Dn> {
        Ok(&ctx.tenant.users_container)
    }

    fn page_attrs(&self, q: &ListQuery, walk: bool) -> Vec<&str> {
        if walk {
            self.read_attrs(&Projection::default())
        } else {
            self.read_attrs(&q.projection)
        }
    }

    fn walk_kind(&self, _q: &ListQuery) -> &'static str {
        "Users"
    }

    async fn ldap_filter(&self, ctx: &RequestCtx, f: &Filter) -> ServiceResult<LdapFilter> {
        Users::ldap_filter(self, ctx, f).await
    }

    async fn views(
        &self,
        ctx: &RequestCtx,
        entries: &[Entry],
        q: &ListQuery,
    ) -> ServiceResult<Vec<View>> {
        self.render_page(ctx, entries, q.projection.includes("groups"))
            .await
    }
}
