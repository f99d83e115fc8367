//! Finding entries of this type: by id (the DN cache first, then a search, waiting out
//! replication), many ids at once, by DN, by name, and the uniqueness check.

use std::collections::{HashMap, HashSet};

use tracing::debug;

use crate::directory::filter::is_under;
use crate::directory::{Dn, Entry, EntryId, LdapFilter};
use crate::service::error::{ServiceError, ServiceResult};

use super::Store;

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

/// How long a created id is waited for on a server that has not received it yet.
const REPLICATION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

const REPLICATION_POLL: std::time::Duration = std::time::Duration::from_millis(250);

impl Store {
    /// `locate`, with 404 when there is no such entry.
    pub async fn locate(&self, container: &Dn, id: &str, attrs: &[&str]) -> ServiceResult<Entry> {
        self.locate_opt(container, id, attrs).await?.ok_or_else(|| {
            ServiceError::NotFound(format!("no {} with id \"{id}\"", self.kind.name()))
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
                self.kind.name()
            ),
            5,
        ))
    }

    /// Finds the entry for `id` under `container` on the server answering now: the cached DN
    /// is read and its id checked (one LDAP read); otherwise, or when stale, one search by id.
    pub(super) async fn locate_here(
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
            Some(e) if Some(e.id.as_str()) != except_id => Err(ServiceError::Taken(format!(
                "{} \"{name}\" is already taken by another {}",
                self.mapping.required,
                self.kind.name()
            ))),
            _ => Ok(()),
        }
    }
}
