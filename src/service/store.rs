//! What Users and Groups share: finding an entry by id through the DN cache, uniqueness of
//! the naming attribute, paged listing and `meta`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Value};
use tracing::debug;

use crate::cache::DnCache;
use crate::directory::filter::is_under;
use crate::directory::{Directory, Dn, Entry, EntryId, LdapFilter};
use crate::mapping::Mapping;
use crate::scim::filter::{compare_for_sort, matches, AttrPath};
use crate::scim::ScimType;

use super::cursor::{CursorPage, Cursors, Position, WalkQuery};
use super::error::{ServiceError, ServiceResult};
use super::list::ListQuery;
use super::write::Writer;
use super::{etag, etag_value, generalized_to_rfc3339, RequestCtx};

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

/// An equality filter on the RDN of `dn` (`uid=a,…` → `(uid=a)`): the first attribute of a
/// multi-valued RDN is enough, since the DN is compared afterwards.
fn rdn_filter(dn: &Dn) -> Option<LdapFilter> {
    let (rdn, _) = crate::directory::filter::split_first_rdn(dn);
    let (attr, value) = rdn.split_once('=')?;
    let mut end = value.len();
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '+' if !escaped => {
                end = i;
                break;
            }
            _ => escaped = false,
        }
    }
    Some(LdapFilter::eq(
        attr.trim(),
        crate::directory::filter::unescape_dn_value(&value[..end]),
    ))
}

/// Ids looked up by one search in `locate_many`: an OR of this many indexed equalities is
/// cheap for the directory, and the filter (about 15 KB of escaped GUIDs on AD) stays far
/// under any request size limit.
pub const LOCATE_BATCH: usize = 250;

pub struct Store {
    pub dir: Arc<dyn Directory>,
    pub mapping: Arc<Mapping>,
    pub cache: DnCache,
    read_attrs: Vec<String>,
    /// "User" or "Group".
    pub resource_type: &'static str,
    /// "Users" or "Groups".
    pub endpoint: &'static str,
    /// Ids this process created lately, with the server each was written to:
    /// read-your-writes across a failover.
    created: moka::sync::Cache<String, Option<String>>,
}

/// How long a created id is waited for on a server that has not received it yet.
const REPLICATION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
const REPLICATION_POLL: std::time::Duration = std::time::Duration::from_millis(250);

impl Store {
    /// `extra_attrs`: LDAP attributes every read needs besides the mapped ones.
    pub fn new(
        dir: Arc<dyn Directory>,
        mapping: Arc<Mapping>,
        cache: DnCache,
        extra_attrs: &[&str],
        resource_type: &'static str,
        endpoint: &'static str,
    ) -> Store {
        let mut read_attrs = mapping.ldap_attributes();
        read_attrs.extend(extra_attrs.iter().map(|a| a.to_string()));
        read_attrs.push(dir.version_attribute().to_owned());
        read_attrs.dedup_by_key(|a| a.to_ascii_lowercase());
        Store {
            dir,
            mapping,
            cache,
            read_attrs,
            resource_type,
            endpoint,
            created: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(super::creates::RETRY_WINDOW)
                .build(),
        }
    }

    /// This process created `id` just now, on the server this request writes to.
    pub fn created(&self, id: &str) {
        self.created
            .insert(id.to_ascii_lowercase(), self.dir.request_server());
    }

    /// `id` is being deleted: a later 404 for it is the truth, not replication lag.
    pub fn deleting(&self, id: &str) {
        self.created.invalidate(&id.to_ascii_lowercase());
    }

    /// Everything a full read requests.
    pub fn attrs(&self) -> Vec<&str> {
        self.read_attrs.iter().map(String::as_str).collect()
    }

    /// What a read must fetch to answer with only the top-level attributes `include` accepts
    /// (names, or extension URNs): their LDAP attributes, plus the naming attribute and the
    /// version, and the timestamps when `meta` is wanted. `extra` is added as is.
    pub fn attrs_for<'a>(
        &'a self,
        include: &dyn Fn(&str) -> bool,
        extra: &[&'a str],
    ) -> Vec<&'a str> {
        let mut v: Vec<&str> = self
            .mapping
            .readable()
            .filter(|m| match m.target.container() {
                crate::scim::schema::Container::Core => include(m.target.top_name()),
                crate::scim::schema::Container::Extension(urn) => include(urn),
            })
            .map(|m| m.ldap.as_str())
            .collect();
        v.push(self.mapping.username_attr());
        v.push(self.dir.version_attribute());
        if include("meta") {
            v.extend(["createTimestamp", "modifyTimestamp"]);
        }
        v.extend_from_slice(extra);
        v
    }

    /// A full read without these attributes (e.g. a group without its members).
    pub fn attrs_without(&self, skip: &str) -> Vec<&str> {
        self.read_attrs
            .iter()
            .map(String::as_str)
            .filter(|a| !a.eq_ignore_ascii_case(skip))
            .collect()
    }

    /// Entries of this type: of its structural class, and of none of the classes derived from
    /// it that are something else (see `mapping::Identity`).
    pub fn class_filter(&self) -> LdapFilter {
        let id = &self.mapping.identity;
        let mut parts = vec![LdapFilter::eq("objectClass", id.structural.clone())];
        parts.extend(
            id.excluded
                .iter()
                .map(|c| LdapFilter::negate(LdapFilter::eq("objectClass", c.clone()))),
        );
        LdapFilter::and(parts)
    }

    /// The entry at `dn` with `attrs`, when it is one of this type (its object classes are
    /// read with it and checked): a DN from a cache or a reference is never taken on trust.
    pub async fn read_mine(&self, dn: &Dn, attrs: &[&str]) -> ServiceResult<Option<Entry>> {
        let mut with_classes = attrs.to_vec();
        with_classes.push("objectClass");
        Ok(self
            .dir
            .read(dn, &with_classes)
            .await?
            .filter(|e| self.is_mine(e)))
    }

    /// The value of the naming attribute (`userName`, `displayName`).
    pub fn name_of<'e>(&self, e: &'e Entry) -> Option<&'e str> {
        e.first(self.mapping.username_attr())
    }

    pub async fn remember(&self, container: &Dn, e: &Entry) {
        self.cache
            .remember(&e.id, &e.dn, container, self.name_of(e))
            .await;
    }

    /// The entry a write just made or changed, read on the request budget's reserve: the
    /// write may have used its steps' time (an answer lost and read back), and its answer
    /// must still go out.
    pub async fn read_back(&self, dn: &Dn, attrs: &[&str]) -> ServiceResult<Entry> {
        crate::directory::budget::settling(self.dir.read(dn, attrs))
            .await?
            .ok_or_else(|| {
                ServiceError::conflict(format!(
                    "the {} was moved or deleted right after it was written; read it again",
                    self.resource_type
                ))
            })
    }

    /// A write plan runner over this store's directory.
    pub fn writer(&self) -> Writer<'_> {
        Writer { dir: &*self.dir }
    }

    /// `locate`, with 404 when there is no such entry.
    pub async fn locate(&self, container: &Dn, id: &str, attrs: &[&str]) -> ServiceResult<Entry> {
        self.locate_opt(container, id, attrs).await?.ok_or_else(|| {
            ServiceError::not_found(format!("no {} with id \"{id}\"", self.resource_type))
        })
    }

    /// Finds the entry for `id` under `container` (`locate_here`). An id this process created
    /// on another server than the one answering now (a failover since) may not have reached
    /// it yet: it is looked for again for a few seconds, then the answer is a retryable 503,
    /// never a 404 that would make the IdP create the account twice.
    pub async fn locate_opt(
        &self,
        container: &Dn,
        id: &str,
        attrs: &[&str],
    ) -> ServiceResult<Option<Entry>> {
        let found = self.locate_here(container, id, attrs).await?;
        if found.is_some() {
            return Ok(found);
        }
        let Some(written_on) = self.created.get(&id.to_ascii_lowercase()) else {
            return Ok(None);
        };
        if written_on == self.dir.request_server() {
            return Ok(None);
        }
        let wait = crate::directory::budget::bounded(REPLICATION_WAIT);
        let until = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() + REPLICATION_POLL < until {
            tokio::time::sleep(REPLICATION_POLL).await;
            if let Some(e) = self.locate_here(container, id, attrs).await? {
                debug!(id, "a created id reached the server answering now");
                return Ok(Some(e));
            }
        }
        Err(ServiceError::unavailable(
            format!(
                "{} {id} was created moments ago on another directory server, and the one answering now has not received it yet (replication); retry shortly",
                self.resource_type
            ),
            5,
        ))
    }

    /// Finds the entry for `id` under `container` on the server answering now: the cached DN
    /// is read and its id checked (one LDAP read); otherwise, or when stale, one search by id.
    async fn locate_here(
        &self,
        container: &Dn,
        id: &str,
        attrs: &[&str],
    ) -> ServiceResult<Option<Entry>> {
        // A cached DN outside `container` may be right for another tenant or resource type:
        // it is skipped, not evicted.
        if let Some(dn) = self
            .cache
            .dn_for_id(id)
            .await
            .filter(|dn| is_under(dn, container))
        {
            if let Some(e) = self.read_mine(&dn, attrs).await? {
                if e.id.eq_ignore_ascii_case(id) {
                    return Ok(Some(e));
                }
            }
            debug!(id, dn = %dn, "stale DN cache entry; re-resolving");
            self.cache.forget(id, container, None).await;
        }
        let Some(by_id) = self.dir.id_filter(id) else {
            return Ok(None);
        };
        let filter = LdapFilter::and(vec![self.class_filter(), by_id]);
        let (entries, _) = self.dir.search(container, &filter, attrs, 2).await?;
        let Some(e) = entries.into_iter().next() else {
            return Ok(None);
        };
        self.remember(container, &e).await;
        Ok(Some(e))
    }

    /// The entries of this type under `container` with these ids, keyed by id: one search
    /// per `LOCATE_BATCH` ids (an OR of id equalities), however many ids a request names. Ids
    /// that cannot be ids of this directory, or that match nothing, are absent.
    pub async fn locate_many(
        &self,
        container: &Dn,
        ids: &[&str],
        attrs: &[&str],
    ) -> ServiceResult<HashMap<EntryId, Entry>> {
        let mut found = HashMap::with_capacity(ids.len());
        let mut seen = HashSet::new();
        let wanted: Vec<LdapFilter> = ids
            .iter()
            .filter(|id| seen.insert(EntryId::from(**id)))
            .filter_map(|id| self.dir.id_filter(id))
            .collect();
        for chunk in wanted.chunks(LOCATE_BATCH) {
            let filter = LdapFilter::and(vec![self.class_filter(), LdapFilter::or(chunk.to_vec())]);
            let (entries, _) = self
                .dir
                .search(container, &filter, attrs, chunk.len() + 1)
                .await?;
            for e in entries {
                self.remember(container, &e).await;
                found.insert(e.id.clone(), e);
            }
        }
        Ok(found)
    }

    /// Whether an entry read with its object classes is of this type.
    fn is_mine(&self, e: &Entry) -> bool {
        self.mapping.identity.admits(e.values("objectClass"))
    }

    /// The SCIM id of the entry at `dn`, if it lies under `container` (one read: a DN can be
    /// reused by a new entry, by this bridge or another, so its id is never taken on trust).
    pub async fn id_for_dn(&self, container: &Dn, dn: &Dn) -> ServiceResult<Option<EntryId>> {
        if !is_under(dn, container) {
            return Ok(None);
        }
        match self.read_mine(dn, &[self.dir.id_attribute()]).await? {
            Some(e) if !e.id.is_empty() => Ok(Some(e.id)),
            _ => Ok(None),
        }
    }

    /// The SCIM ids of the entries at `dns` under `container`, keyed by DN: one
    /// search per `LOCATE_BATCH` DNs, by their (indexed) RDN values, so a group of thousands
    /// costs a handful of searches, and nothing is taken from a cache another bridge's writes
    /// could have made stale.
    pub async fn ids_for_dns(
        &self,
        container: &Dn,
        dns: &[Dn],
    ) -> ServiceResult<HashMap<Dn, EntryId>> {
        let found = self
            .entries_for_dns(container, dns, &[self.dir.id_attribute()])
            .await?;
        Ok(found.into_iter().map(|(dn, e)| (dn, e.id)).collect())
    }

    /// The entries at `dns` under `container` with `attrs`, keyed by DN, searched as
    /// `ids_for_dns` says.
    pub async fn entries_for_dns(
        &self,
        container: &Dn,
        dns: &[Dn],
        attrs: &[&str],
    ) -> ServiceResult<HashMap<Dn, Entry>> {
        let mut seen = HashSet::new();
        let wanted: Vec<(&Dn, LdapFilter)> = dns
            .iter()
            .filter(|dn| dn.is_under(container) && seen.insert(*dn))
            .filter_map(|dn| rdn_filter(dn).map(|f| (dn, f)))
            .collect();
        let mut out = HashMap::with_capacity(wanted.len());
        for chunk in wanted.chunks(LOCATE_BATCH) {
            let any = LdapFilter::or(chunk.iter().map(|(_, f)| f.clone()).collect());
            let filter = LdapFilter::and(vec![self.class_filter(), any]);
            let (found, _) = self.dir.search(container, &filter, attrs, 0).await?;
            for e in found {
                if !e.id.is_empty() && chunk.iter().any(|(w, _)| **w == e.dn) {
                    out.insert(e.dn.clone(), e);
                }
            }
        }
        Ok(out)
    }

    /// The entry under `container` with this naming value, if any.
    pub async fn find_by_name(
        &self,
        container: &Dn,
        name: &str,
        attrs: &[&str],
    ) -> ServiceResult<Option<Entry>> {
        let attr = self.mapping.username_attr();
        let filter = LdapFilter::and(vec![self.class_filter(), LdapFilter::eq(attr, name)]);
        let (found, _) = self.dir.search(container, &filter, attrs, 1).await?;
        Ok(found.into_iter().next())
    }

    /// 409 when another entry under `container` has this naming value.
    pub async fn ensure_unique(
        &self,
        container: &Dn,
        name: &str,
        except_id: Option<&str>,
    ) -> ServiceResult<()> {
        let attr = self.mapping.username_attr();
        let filter = LdapFilter::and(vec![self.class_filter(), LdapFilter::eq(attr, name)]);
        let (found, _) = self.dir.search(container, &filter, &[attr], 1).await?;
        match found.first() {
            Some(e) if Some(e.id.as_str()) != except_id => Err(ServiceError::uniqueness(format!(
                "{} \"{name}\" is already taken by another {}",
                self.mapping.required, self.resource_type
            ))),
            _ => Ok(()),
        }
    }

    /// `body`, the rendering of `e`, with the version and location the HTTP layer needs.
    pub fn resource(&self, base_url: &str, e: &Entry, body: Value) -> super::Resource {
        super::Resource {
            body,
            version: e.first(self.dir.version_attribute()).map(etag),
            location: format!("{base_url}/{}/{}", self.endpoint, e.id),
            created: None,
        }
    }

    /// `meta` of a resource (RFC 7643 §3.1) from the entry's timestamps.
    pub fn meta(&self, base_url: &str, e: &Entry) -> Value {
        let mut meta = json!({
            "resourceType": self.resource_type,
            "location": format!("{base_url}/{}/{}", self.endpoint, e.id),
        });
        let Some(m) = meta.as_object_mut() else {
            return meta;
        };
        if let Some(t) = e.first("createTimestamp").and_then(generalized_to_rfc3339) {
            m.insert("created".into(), Value::String(t));
        }
        if let Some(t) = e.first("modifyTimestamp").and_then(generalized_to_rfc3339) {
            m.insert("lastModified".into(), Value::String(t));
        }
        if let Some(v) = e.first(self.dir.version_attribute()) {
            m.insert("version".into(), Value::String(etag(v)));
        }
        meta
    }

    /// Checks the request's `If-Match` against `e`'s version (412 when stale) and returns the
    /// assertion that makes the write itself conditional on that version.
    pub fn precondition(&self, ctx: &RequestCtx, e: &Entry) -> ServiceResult<Option<LdapFilter>> {
        let Some(tags) = ctx.if_match.as_deref() else {
            return Ok(None);
        };
        if tags.trim() == "*" {
            return Ok(None);
        }
        let attr = self.dir.version_attribute();
        let current = e.first(attr).unwrap_or_default();
        if tags.split(',').any(|t| etag_value(t) == current) && !current.is_empty() {
            Ok(Some(LdapFilter::eq(attr, current)))
        } else {
            Err(ServiceError::precondition_failed(format!(
                "If-Match does not name the current version of this {} ({}); read it again",
                self.resource_type,
                etag(current)
            )))
        }
    }

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
        // the directory sorts (RFC 2891) when the filter is exact and one attribute holds
        // the sort value; it sends just as far as the page ends, and only the page is kept
        if let (false, Some(sort)) = (recheck, &q.sort) {
            if let Some(key) = self.mapping.sort_key(&sort.by, sort.descending) {
                let want = start - 1 + count;
                if let Some(w) = self
                    .dir
                    .search_sorted(container, &filter, attrs, start - 1, count, &key)
                    .await?
                {
                    if !w.truncated || w.sent >= want {
                        let total = if w.truncated {
                            self.dir.count(container, &filter).await?
                        } else {
                            w.sent
                        };
                        return Ok((total, w.entries));
                    }
                }
            }
        }
        // checked in memory: a few such scans at once, each stopping at the bound, so no
        // number of requests can make the process hold more than a few scans' entries
        let _scan = IN_MEMORY_SCANS.acquire().await.map_err(|_| {
            ServiceError::unavailable("the server is shutting down; retry later", 5)
        })?;
        let (entries, more) = self
            .dir
            .search_until(container, &filter, attrs, MAX_SCAN)
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
        let mut rows: Vec<(Value, Entry)> = entries
            .into_iter()
            .map(|e| (self.filter_view(&e), e))
            .collect();
        if let (true, Some(f)) = (recheck, &q.filter) {
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
    fn case_exact(&self, p: &AttrPath) -> bool {
        self.mapping
            .schema
            .resolve(p.urn.as_deref(), &p.name)
            .map(|(_, d)| {
                p.sub
                    .as_deref()
                    .and_then(|s| d.sub(s))
                    .unwrap_or(d)
                    .case_exact
            })
            .unwrap_or(false)
    }

    /// What in-memory filtering and sorting see of an entry: its mapped attributes, `id`
    /// and `meta` timestamps (no directory reads).
    fn filter_view(&self, e: &Entry) -> Value {
        let mut m = self.mapping.to_scim(e, &|_| None);
        m.insert("id".into(), Value::String(e.id.to_string()));
        let mut meta = serde_json::Map::new();
        for (k, a) in [
            ("created", "createTimestamp"),
            ("lastModified", "modifyTimestamp"),
        ] {
            if let Some(t) = e.first(a).and_then(generalized_to_rfc3339) {
                meta.insert(k.into(), Value::String(t));
            }
        }
        m.insert("meta".into(), Value::Object(meta));
        Value::Object(m)
    }
}
