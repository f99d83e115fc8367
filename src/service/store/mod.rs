//! What Users and Groups share: finding an entry by id through the DN cache, uniqueness of
//! the naming attribute, paged listing and `meta`.

use std::sync::Arc;

use crate::cache::DnCache;
use crate::directory::{each_attribute_once, Directory, Dn, Entry, LdapFilter};
use crate::mapping::Mapping;

use super::error::{ServiceError, ServiceResult};
use super::view::{Links, Meta, ResourceType, View};
use super::write::Writer;
use super::{etag, etag_value, generalized_to_rfc3339, RequestCtx};
use crate::scim::projection::Projection;
use crate::scim::value::Resource as ScimResource;

mod lookup;
mod pages;

pub use lookup::LOCATE_BATCH;
pub use pages::CursorRequest;

pub struct Store {
    pub dir: Arc<dyn Directory>,
    pub mapping: Arc<Mapping>,
    pub cache: DnCache,
    read_attrs: Vec<String>,
    /// What a read showing every attribute fetches.
    shown_attrs: Vec<String>,
    /// User or Group.
    pub kind: ResourceType,
    /// Ids this process created lately, with the server each was written to:
    /// read-your-writes across a failover.
    created: moka::sync::Cache<String, Option<String>>,
}

impl Store {
    /// `extra_attrs`: LDAP attributes every read needs besides the mapped ones.
    pub fn new(
        dir: Arc<dyn Directory>,
        mapping: Arc<Mapping>,
        cache: DnCache,
        extra_attrs: &[&str],
        kind: ResourceType,
    ) -> Store {
        let mapped = mapping.ldap_attributes();
        let read_attrs = each_attribute_once(
            mapped
                .iter()
                .map(String::as_str)
                .chain(extra_attrs.iter().copied())
                .chain([dir.version_attribute()]),
        )
        .into_iter()
        .map(str::to_owned)
        .collect();
        let shown_attrs = shown_attrs(&mapping, dir.as_ref(), &|_| true)
            .into_iter()
            .map(str::to_owned)
            .collect();
        Store {
            dir,
            mapping,
            cache,
            read_attrs,
            shown_attrs,
            kind,
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

    /// What a read must fetch to answer with only the top-level attributes `p` includes
    /// (names, or extension URNs): their LDAP attributes, plus the naming attribute and the
    /// version, and the timestamps when `meta` is wanted. `extra` is added as is.
    pub fn attrs_for<'a>(&'a self, p: &Projection, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v: Vec<&str> = if p.includes_every_attribute() {
            // most reads show everything: that list is built once (and copied with room for
            // `extra`)
            let mut v = Vec::with_capacity(self.shown_attrs.len() + extra.len());
            v.extend(self.shown_attrs.iter().map(String::as_str));
            v
        } else {
            shown_attrs(&self.mapping, self.dir.as_ref(), &|k| p.includes(k))
        };
        for e in extra {
            add_once(&mut v, e);
        }
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
        // sized for the extra name: growing a copied list of forty names went through
        // realloc and malloc's consolidation (2,615 instructions of a GET)
        let mut with_classes = Vec::with_capacity(attrs.len() + 1);
        with_classes.extend_from_slice(attrs);
        add_once(&mut with_classes, "objectClass");
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

    /// After a write: remembers `after` unless it kept `before`'s DN and name, which the
    /// locate before the write left in the cache (two more moka inserts were 3.7% of a
    /// PATCH). A rename or a new name is remembered.
    pub async fn remember_written(&self, container: &Dn, before: &Entry, after: &Entry) {
        if after.dn != before.dn || self.name_of(after) != self.name_of(before) {
            self.remember(container, after).await;
        }
    }

    /// The entry a write just made or changed, read on the request budget's reserve: the
    /// write may have used its steps' time (an answer lost and read back), and its answer
    /// must still go out.
    pub async fn read_back(&self, dn: &Dn, attrs: &[&str]) -> ServiceResult<Entry> {
        crate::directory::budget::settling(self.dir.read(dn, attrs))
            .await?
            .ok_or_else(|| {
                ServiceError::Conflict(format!(
                    "the {} was moved or deleted right after it was written; read it again",
                    self.kind.name()
                ))
            })
    }

    /// A write plan runner over this store's directory.
    pub fn writer(&self) -> Writer<'_> {
        Writer { dir: &*self.dir }
    }

    /// Whether an entry read with its object classes is of this type.
    fn is_mine(&self, e: &Entry) -> bool {
        self.mapping.identity.admits(e.values("objectClass"))
    }

    /// The view of `e` with its attributes and the resources it links to.
    pub fn view(&self, e: &Entry, attrs: ScimResource, links: Option<Links>) -> View {
        View {
            kind: self.kind,
            id: e.id.clone(),
            attrs,
            links,
            meta: self.meta(e),
            created: None,
        }
    }

    /// `meta` of a resource (RFC 7643 §3.1) from the entry's timestamps and version.
    pub fn meta(&self, e: &Entry) -> Meta {
        Meta {
            created: e.first("createTimestamp").and_then(generalized_to_rfc3339),
            last_modified: e.first("modifyTimestamp").and_then(generalized_to_rfc3339),
            version: e.first(self.dir.version_attribute()).map(str::to_owned),
        }
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
            Err(ServiceError::Stale(format!(
                "If-Match does not name the current version of this {} ({}); read it again",
                self.kind.name(),
                etag(current)
            )))
        }
    }
}

/// Adds `name` to an attribute list unless it names it already, in any case (lists name each
/// attribute once: `Directory::read`).
pub fn add_once<'a>(list: &mut Vec<&'a str>, name: &'a str) {
    if !list.iter().any(|a| a.eq_ignore_ascii_case(name)) {
        list.push(name);
    }
}

/// The LDAP attributes behind the top-level attributes `include` accepts (names, or extension
/// URNs), plus the naming attribute and the version, and the timestamps when `meta` is wanted;
/// each once (several SCIM attributes often map to one LDAP attribute).
fn shown_attrs<'a>(
    mapping: &'a Mapping,
    dir: &'a dyn Directory,
    include: &dyn Fn(&str) -> bool,
) -> Vec<&'a str> {
    let mapped = mapping
        .readable()
        .filter(|m| match m.target.container() {
            crate::scim::schema::Container::Core => include(m.target.top_name()),
            crate::scim::schema::Container::Extension(urn) => include(urn),
        })
        .map(|m| m.ldap.as_str());
    let meta = include("meta").then_some(["createTimestamp", "modifyTimestamp"]);
    let always = [mapping.username_attr(), dir.version_attribute()];
    each_attribute_once(mapped.chain(always).chain(meta.into_iter().flatten()))
}

#[cfg(test)]
mod tests {
    use super::add_once;

    #[test]
    fn a_name_is_added_to_an_attribute_list_only_when_absent_in_any_case() {
        let mut list = vec!["cn", "mail"];
        add_once(&mut list, "objectClass");
        add_once(&mut list, "MAIL");
        add_once(&mut list, "objectclass");
        assert_eq!(list, ["cn", "mail", "objectClass"]);
    }
}
