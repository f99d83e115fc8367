//! Lists: a page by startIndex (sorted by the directory when it can, else here within a bound), a
//! page by cursor, and the filter a page shows.

use crate::scim::schema::Container;
use crate::scim::value::{Complex, Resource as ScimResource, ScimValue, Simple};

use crate::directory::{Dn, Entry, LdapFilter};
use crate::scim::filter::{compare_for_sort, matches, AttrPath};
use crate::scim::ScimType;
use crate::service::cursor::{CursorPage, Cursors, Position, WalkQuery};
use crate::service::error::{ServiceError, ServiceResult};
use crate::service::generalized_to_rfc3339;
use crate::service::list::ListQuery;

use super::Store;

/// Where a cursor page comes from: see `Store::cursor_page`.
pub struct CursorRequest<'a> {
    pub cursors: &'a Cursors,
    pub tenant: &'a str,
    /// What the walk's cursors are good for ("Users", …): part of what they are signed with.
    pub kind: &'a str,
    pub container: &'a Dn,
    /// The walk's LDAP filter: needed only to open one (`cursor` empty).
    pub filter: Option<&'a LdapFilter>,
    pub cursor: &'a str,
    pub count: usize,
    pub attrs: &'a [&'a str],
}

/// The most entries a list may check in memory (a filter LDAP cannot say exactly, or a
/// `sortBy`), and the furthest a sorted list reaches.
pub const MAX_SCAN: usize = 10_000;

/// In-memory scans (up to `MAX_SCAN` entries each) the process runs at once: what bounds
/// their memory, whatever the number of requests asking for one.
static IN_MEMORY_SCANS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

impl Store {
    /// One page of entries matching `filter` under `container` (1-based `start`), and the
    /// exact total. The first page is one search that stops where the page ends (and, when
    /// there is more, a paged count that keeps nothing). A page further in is a paged search
    /// that keeps only the page: memory stays one page whatever `start` and the bind
    /// account's size limit.
    pub async fn page(
        &self,
        container: &Dn,
        filter: &LdapFilter,
        start: usize,
        count: usize,
        attrs: &[&str],
    ) -> ServiceResult<(usize, Vec<Entry>)> {
        let filter = LdapFilter::and(vec![self.class_filter(), filter.clone()]);
        if filter == LdapFilter::False {
            return Ok((0, Vec::new()));
        }
        if count == 0 {
            return Ok((self.dir.count(container, &filter).await?, Vec::new()));
        }
        if start > 1 {
            return Ok(self
                .dir
                .search_window(container, &filter, attrs, start - 1, count)
                .await?);
        }
        let (entries, truncated) = self.dir.search(container, &filter, attrs, count).await?;
        if truncated && entries.len() < count {
            // the server's size limit ends before the page does: page through instead
            return Ok(self
                .dir
                .search_window(container, &filter, attrs, 0, count)
                .await?);
        }
        let total = if truncated {
            self.dir.count(container, &filter).await?
        } else {
            entries.len()
        };
        Ok((total, entries))
    }

    /// A page for a list request: straight from LDAP when the LDAP filter says exactly what
    /// the SCIM filter does (sorted by the directory when it can); otherwise the (superset)
    /// matches are read, up to `MAX_SCAN`, checked against the SCIM filter and sorted in
    /// memory.
    pub async fn page_query(
        &self,
        container: &Dn,
        ldap_filter: &LdapFilter,
        q: &ListQuery,
        start: usize,
        count: usize,
        attrs: &[&str],
    ) -> ServiceResult<(usize, Vec<Entry>)> {
        let recheck = q
            .filter
            .as_ref()
            .is_some_and(|f| self.mapping.needs_recheck(f));
        if !recheck && q.sort.is_none() {
            return self.page(container, ldap_filter, start, count, attrs).await;
        }
        let filter = LdapFilter::and(vec![self.class_filter(), ldap_filter.clone()]);
        if filter == LdapFilter::False {
            return Ok((0, Vec::new()));
        }
        if count == 0 && !recheck {
            return Ok((self.dir.count(container, &filter).await?, Vec::new()));
        }
        if q.sort.is_some() && start - 1 + count > MAX_SCAN {
            return Err(ServiceError::bad_request(
                ScimType::TooMany,
                format!(
                    "a sorted list reaches the first {MAX_SCAN} matches, and startIndex {start} with count {count} goes past them: narrow the filter, or page without sortBy (cursor paging walks any number)"
                ),
            ));
        }
        if let (false, Some(sort)) = (recheck, &q.sort) {
            if let Some(page) = self
                .sorted_by_directory(container, &filter, sort, start, count, attrs)
                .await?
            {
                return Ok(page);
            }
        }
        self.in_memory(container, &filter, q, start, count, attrs)
            .await
    }

    /// The directory sorts (RFC 2891) when the filter is exact and one attribute holds the
    /// sort value; it sends just as far as the page ends, and only the page is kept. `None`
    /// when it cannot (no such attribute, no sort control, a window it cut short).
    async fn sorted_by_directory(
        &self,
        container: &Dn,
        filter: &LdapFilter,
        sort: &crate::service::list::SortSpec,
        start: usize,
        count: usize,
        attrs: &[&str],
    ) -> ServiceResult<Option<(usize, Vec<Entry>)>> {
        let Some(key) = self.mapping.sort_key(&sort.by, sort.descending) else {
            return Ok(None);
        };
        let want = start - 1 + count;
        let Some(w) = self
            .dir
            .search_sorted(container, filter, attrs, start - 1, count, &key)
            .await?
        else {
            return Ok(None);
        };
        if w.truncated && w.sent < want {
            return Ok(None);
        }
        let total = if w.truncated {
            self.dir.count(container, filter).await?
        } else {
            w.sent
        };
        Ok(Some((total, w.entries)))
    }

    /// Filtered again and sorted in memory: a few such scans at once, each stopping at the
    /// bound, so no number of requests can make the process hold more than a few scans'
    /// entries.
    async fn in_memory(
        &self,
        container: &Dn,
        filter: &LdapFilter,
        q: &ListQuery,
        start: usize,
        count: usize,
        attrs: &[&str],
    ) -> ServiceResult<(usize, Vec<Entry>)> {
        let _scan = IN_MEMORY_SCANS.acquire().await.map_err(|_| {
            ServiceError::unavailable("the server is shutting down; retry later", 5)
        })?;
        let (entries, more) = self
            .dir
            .search_until(container, filter, attrs, MAX_SCAN)
            .await?;
        if more {
            return Err(ServiceError::bad_request(
                ScimType::TooMany,
                format!(
                    "the filter or sortBy needs more than {MAX_SCAN} entries checked in memory: narrow the filter"
                ),
            ));
        }
        let case_exact = |p: &AttrPath| self.case_exact(p);
        let mut rows: Vec<(ScimResource, Entry)> = entries
            .into_iter()
            .map(|e| (self.filter_view(&e), e))
            .collect();
        if let Some(f) = q.filter.as_ref().filter(|f| self.mapping.needs_recheck(f)) {
            rows.retain(|(v, _)| matches(f, v, &case_exact));
        }
        if let Some(sort) = &q.sort {
            let exact = case_exact(&sort.by);
            rows.sort_by(|(a, _), (b, _)| {
                let o = compare_for_sort(a, b, &sort.by, exact);
                if sort.descending {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        let total = rows.len();
        let page = rows
            .into_iter()
            .skip(start - 1)
            .take(count)
            .map(|(_, e)| e)
            .collect();
        Ok((total, page))
    }

    /// A page of a cursor walk (RFC 9865; `kind` names what its cursors are good for) over
    /// the entries under `container` matching
    /// `ldap_filter` (and `q`'s filter, where the directory's answer must be checked again
    /// in memory: such pages can come out short). `sortBy` cannot apply: the directory's
    /// paged search runs in its own order.
    pub async fn cursor_page(
        &self,
        q: &ListQuery,
        r: CursorRequest<'_>,
    ) -> ServiceResult<CursorPage> {
        let CursorRequest {
            cursors,
            tenant,
            kind,
            container,
            filter: ldap_filter,
            cursor,
            count,
            attrs,
        } = r;
        if q.sort.is_some() {
            return Err(ServiceError::invalid_value(
                "sortBy cannot be combined with cursor: the directory's paged search keeps its own order; sort with startIndex paging",
            ));
        }
        if q.start_index > 1 {
            return Err(ServiceError::invalid_value(
                "startIndex and cursor cannot be combined: use one way of paging",
            ));
        }
        let pos = cursors.parse(tenant, kind, cursor)?;
        if count == 0 {
            return Ok(CursorPage {
                entries: Vec::new(),
                next: (pos != Position::First).then(|| cursor.trim().to_owned()),
                previous: None,
                total: None,
                recheck: None,
            });
        }
        let query = ldap_filter.map(|f| WalkQuery {
            base: container,
            filter: LdapFilter::and(vec![self.class_filter(), f.clone()]),
            attrs: attrs.to_vec(),
            recheck: q.filter.clone().filter(|f| self.mapping.needs_recheck(f)),
        });
        let mut page = cursors
            .page(self.dir.as_ref(), tenant, kind, pos, count, query)
            .await?;
        if let Some(f) = page.recheck.take() {
            let case_exact = |p: &AttrPath| self.case_exact(p);
            page.entries
                .retain(|e| matches(&f, &self.filter_view(e), &case_exact));
            // what the directory counted may include entries the check dropped
            page.total = None;
        }
        Ok(page)
    }

    /// Whether the attribute at `p` compares case-exactly (its schema says so).
    pub(super) fn case_exact(&self, p: &AttrPath) -> bool {
        self.mapping.schema.case_exact(p)
    }

    /// What in-memory filtering and sorting see of an entry: its mapped attributes, `id`
    /// and `meta` timestamps (no directory reads).
    pub(super) fn filter_view(&self, e: &Entry) -> ScimResource {
        let mut r = self.mapping.to_scim(e, &|_| None);
        r.set(Container::Core, "id", ScimValue::string(e.id.to_string()));
        let mut meta = Complex::new();
        for (k, a) in [
            ("created", "createTimestamp"),
            ("lastModified", "modifyTimestamp"),
        ] {
            if let Some(t) = e.first(a).and_then(generalized_to_rfc3339) {
                meta.set(k, Simple::DateTime(t));
            }
        }
        r.set(Container::Core, "meta", ScimValue::Complex(meta));
        r
    }
}
