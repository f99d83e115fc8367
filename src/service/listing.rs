//! Listing, shared by Users and Groups: `startIndex` pages and RFC 9865 cursor walks over the
//! tenant's container, written once over what each type tells (`Listed`): where its entries
//! are, what a page reads, how a filter becomes LDAP and how entries become views.

use crate::directory::{Dn, Entry, LdapFilter};
use crate::scim::filter::Filter;

use super::error::ServiceResult;
use super::list::{ListPage, ListQuery};
use super::store::{CursorRequest, Store};
use super::{RequestCtx, View};

/// What a resource type tells the shared list code.
pub(super) trait Listed {
    fn store(&self) -> &Store;

    /// The cursor walks of this type.
    fn cursors(&self) -> &super::cursor::Cursors;

    fn max_results(&self) -> usize;

    /// The tenant's container of this type.
    fn container<'c>(&self, ctx: &'c RequestCtx) -> ServiceResult<&'c Dn>;

    /// The LDAP attributes a page of `q` reads. A walk (`walk`) reads what any of its pages
    /// may show, whatever the first page's projection: later pages may ask for more.
    fn page_attrs(&self, q: &ListQuery, walk: bool) -> Vec<&str>;

    /// What a walk's cursors are good for: a cursor serves only requests of the same kind.
    fn walk_kind(&self, q: &ListQuery) -> &'static str;

    /// The filter as LDAP, with this type's own references resolved.
    async fn ldap_filter(&self, ctx: &RequestCtx, f: &Filter) -> ServiceResult<LdapFilter>;

    /// The views of a page's entries.
    async fn views(
        &self,
        ctx: &RequestCtx,
        entries: &[Entry],
        q: &ListQuery,
    ) -> ServiceResult<Vec<View>>;
}

/// A page of `q`: by cursor when it has one, else from `startIndex`.
pub(super) async fn list<T: Listed>(
    t: &T,
    ctx: &RequestCtx,
    q: &ListQuery,
) -> ServiceResult<ListPage> {
    let container = t.container(ctx)?;
    let start = q.start_index.max(1);
    let count = q.count.unwrap_or(t.max_results()).min(t.max_results());
    if let Some(cursor) = &q.cursor {
        return by_cursor(t, ctx, q, cursor, count).await;
    }
    let filter = match &q.filter {
        Some(f) => t.ldap_filter(ctx, f).await?,
        None => LdapFilter::True,
    };
    let (total, entries) = t
        .store()
        .page_query(container, &filter, q, start, count, &t.page_attrs(q, false))
        .await?;
    for e in &entries {
        t.store().remember(container, e).await;
    }
    Ok(ListPage {
        total_results: total,
        start_index: start,
        resources: t.views(ctx, &entries, q).await?,
        cursor: None,
    })
}

/// A page of a cursor walk (RFC 9865).
async fn by_cursor<T: Listed>(
    t: &T,
    ctx: &RequestCtx,
    q: &ListQuery,
    cursor: &str,
    count: usize,
) -> ServiceResult<ListPage> {
    let filter = match (&q.filter, cursor.trim().is_empty()) {
        (_, false) => None,
        (Some(f), true) => Some(t.ldap_filter(ctx, f).await?),
        (None, true) => Some(LdapFilter::True),
    };
    let page = t
        .store()
        .cursor_page(
            q,
            CursorRequest {
                cursors: t.cursors(),
                tenant: &ctx.tenant.name,
                kind: t.walk_kind(q),
                container: t.container(ctx)?,
                filter: filter.as_ref(),
                cursor,
                count,
                attrs: &t.page_attrs(q, true),
            },
        )
        .await?;
    // not remembered in the DN cache: a walk over every entry (an IdP's reconciliation)
    // would push out the entries requests actually come back for
    let resources = t.views(ctx, &page.entries, q).await?;
    Ok(ListPage::of_walk(
        resources,
        page.next,
        page.previous,
        page.total,
    ))
}
