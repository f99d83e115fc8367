//! The service's views as SCIM JSON (RFC 7643): `schemas`, `id`, the typed attributes, the
//! `$ref`s of links and the manager, and `meta` with its location and entity tag. URLs are
//! made here, from the base URL of the request, which only the HTTP layer knows.
//!
//! A view is written straight to the response's bytes as it is serialized (`Rendered`): no
//! JSON tree is built for it, and no URL string is made for a link. Only a projection
//! (`attributes`, `excludedAttributes`) walks a tree (`Body::Tree`), made by the same
//! serializer, so the two are the same JSON.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::scim::projection::Projection;
use crate::scim::schema::ENTERPRISE_USER_SCHEMA;
use crate::scim::value::{ScimValue, Simple};
use crate::scim::LIST_RESPONSE_SCHEMA;
use crate::service::etag;
use crate::service::list::CursorLinks;
use crate::service::view::{GroupLink, Links, MemberLink, ResourceType, View};

/// Absolute URL of the resource.
pub fn location(base: &str, kind: ResourceType, id: &str) -> String {
    [base, "/", kind.endpoint(), "/", id].concat()
}

/// The entity tag of the view's version (`W/"…"`), when the directory keeps one.
pub fn entity_tag(v: &View) -> Option<String> {
    v.meta.version.as_deref().map(etag)
}

/// A resource as a response carries it: as it is written, or as the tree a projection left.
pub enum Body<'a> {
    Written(Rendered<'a>),
    Tree(Value),
}

impl Body<'_> {
    /// `v` for a response, with `p` applied; `base` is the absolute URL of `/scim/v2`.
    pub fn of<'a>(base: &'a str, v: View, p: &Projection) -> Body<'a> {
        let r = Rendered::new(base, v);
        if p.is_set() {
            Body::Tree(p.apply(r.to_value()))
        } else {
            Body::Written(r)
        }
    }
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Body::Written(r) => r.serialize(s),
            Body::Tree(v) => v.serialize(s),
        }
    }
}

/// A page of resources as a ListResponse (RFC 7644 §3.4.2); a page of a cursor walk
/// (RFC 9865) has no `startIndex`, and its total only once the walk has seen every match.
pub struct List<'a> {
    pub total_results: usize,
    pub start_index: usize,
    pub cursor: Option<CursorLinks>,
    pub resources: Vec<Body<'a>>,
}

impl Serialize for List<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("schemas", &[LIST_RESPONSE_SCHEMA])?;
        match &self.cursor {
            None => {
                m.serialize_entry("totalResults", &self.total_results)?;
                m.serialize_entry("startIndex", &self.start_index)?;
            }
            Some(c) => {
                if c.total_known {
                    m.serialize_entry("totalResults", &self.total_results)?;
                }
            }
        }
        m.serialize_entry("itemsPerPage", &self.resources.len())?;
        if let Some(c) = &self.cursor {
            if let Some(next) = &c.next {
                m.serialize_entry("nextCursor", next)?;
            }
            if let Some(previous) = &c.previous {
                m.serialize_entry("previousCursor", previous)?;
            }
        }
        m.serialize_entry("Resources", &self.resources)?;
        m.end()
    }
}

/// A view and the base URL its links are made from.
pub struct Rendered<'a> {
    base: &'a str,
    v: View,
}

impl<'a> Rendered<'a> {
    pub fn new(base: &'a str, mut v: View) -> Rendered<'a> {
        // the manager is a user: its `$ref` is that user's URL
        let enterprise = crate::scim::schema::Container::Extension(ENTERPRISE_USER_SCHEMA);
        if v.kind == ResourceType::User && v.attrs.extension(ENTERPRISE_USER_SCHEMA).is_some() {
            if let Some(ScimValue::Complex(mgr)) = v.attrs.attrs_mut(enterprise).get_mut("manager")
            {
                if let Some(mid) = mgr.str("value") {
                    let url = location(base, ResourceType::User, mid);
                    mgr.set("$ref", Simple::Reference(url));
                }
            }
        }
        Rendered { base, v }
    }

    fn to_value(&self) -> Value {
        // a map with string keys and JSON values: nothing here can fail to convert
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl Serialize for Rendered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (v, base) = (&self.v, self.base);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("schemas", &Schemas(v))?;
        m.serialize_entry("id", v.id.as_str())?;
        let (groups, members) = match &v.links {
            Some(Links::Groups(g)) if !g.is_empty() => (Some(g), None),
            Some(Links::Members(ms)) => (None, Some(ms)),
            _ => (None, None),
        };
        // the members written here are the view's own: the same names in the attributes
        // (`id` where a filter needed it) give way
        v.attrs.serialize_members(&mut m, |k| match k {
            "id" | "meta" | "schemas" => true,
            "groups" => groups.is_some(),
            "members" => members.is_some(),
            _ => false,
        })?;
        if let Some(groups) = groups {
            m.serialize_entry("groups", &Linked(base, groups))?;
        }
        if let Some(members) = members {
            m.serialize_entry("members", &Linked(base, members))?;
        }
        m.serialize_entry("meta", &MetaOut(v, base))?;
        m.end()
    }
}

/// The core schema's URN, then each extension's that holds attributes.
struct Schemas<'a>(&'a View);

impl Serialize for Schemas<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let core = std::iter::once(self.0.kind.schema().core.id);
        s.collect_seq(core.chain(self.0.attrs.extension_urns()))
    }
}

/// `base/Users/id`, written where it is serialized.
struct Url<'a>(&'a str, ResourceType, &'a str);

impl Serialize for Url<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Url(base, kind, id) = self;
        s.collect_str(&format_args!("{base}/{}/{id}", kind.endpoint()))
    }
}

/// A list of links, each written with `base`.
struct Linked<'a, T>(&'a str, &'a [T]);

impl Serialize for Linked<'_, GroupLink> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let base = self.0;
        s.collect_seq(self.1.iter().map(|g| Group { base, g }))
    }
}

impl Serialize for Linked<'_, MemberLink> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let base = self.0;
        s.collect_seq(self.1.iter().map(|l| Member { base, l }))
    }
}

/// A value of a user's `groups`: its id first, as clients read it.
struct Group<'a> {
    base: &'a str,
    g: &'a GroupLink,
}

impl Serialize for Group<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let g = self.g;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("value", g.id.as_str())?;
        m.serialize_entry("$ref", &Url(self.base, ResourceType::Group, g.id.as_str()))?;
        m.serialize_entry("type", if g.direct { "direct" } else { "indirect" })?;
        if let Some(name) = &g.display {
            m.serialize_entry("display", name)?;
        }
        m.end()
    }
}

/// A value of a group's `members`.
struct Member<'a> {
    base: &'a str,
    l: &'a MemberLink,
}

impl Serialize for Member<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.l;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("value", l.id.as_str())?;
        m.serialize_entry("$ref", &Url(self.base, l.kind, l.id.as_str()))?;
        m.serialize_entry("type", l.kind.name())?;
        m.end()
    }
}

struct MetaOut<'a>(&'a View, &'a str);

impl Serialize for MetaOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let MetaOut(v, base) = self;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("resourceType", v.kind.name())?;
        m.serialize_entry("location", &Url(base, v.kind, v.id.as_str()))?;
        if let Some(t) = &v.meta.created {
            m.serialize_entry("created", t)?;
        }
        if let Some(t) = &v.meta.last_modified {
            m.serialize_entry("lastModified", t)?;
        }
        if let Some(version) = &v.meta.version {
            m.serialize_entry("version", &etag(version))?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::EntryId;
    use crate::scim::schema::Container;
    use crate::scim::value::{Complex, Resource};
    use crate::service::view::Meta;
    use serde_json::json;

    const BASE: &str = "https://idp.example/scim/v2";

    fn user() -> View {
        let mut attrs = Resource::new();
        attrs.set(Container::Core, "userName", ScimValue::string("bjensen"));
        // set where a filter needed it: the view's own id is the one written
        attrs.set(Container::Core, "id", ScimValue::string("stale"));
        let mut manager = Complex::new();
        manager.set("value", Simple::String("m-1".into()));
        attrs.set(
            Container::Extension(ENTERPRISE_USER_SCHEMA),
            "manager",
            ScimValue::Complex(manager),
        );
        View {
            kind: ResourceType::User,
            id: EntryId::from("u-1"),
            attrs,
            links: Some(Links::Groups(vec![GroupLink {
                id: EntryId::from("g-1"),
                display: Some("Staff".into()),
                direct: true,
            }])),
            meta: Meta {
                created: Some("2026-12-07T00:00:00Z".into()),
                last_modified: None,
                version: Some("v1".into()),
            },
            created: None,
        }
    }

    #[test]
    fn a_view_is_written_with_its_schemas_links_manager_ref_and_meta() {
        let body = serde_json::to_vec(&Body::of(BASE, user(), &Projection::default())).unwrap();
        let text = String::from_utf8(body).unwrap();
        assert_eq!(text.matches("\"id\"").count(), 1, "one id member: {text}");
        let written: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            written,
            json!({
                "schemas": [
                    "urn:ietf:params:scim:schemas:core:2.0:User",
                    ENTERPRISE_USER_SCHEMA
                ],
                "id": "u-1",
                "userName": "bjensen",
                ENTERPRISE_USER_SCHEMA: {"manager": {
                    "value": "m-1",
                    "$ref": format!("{BASE}/Users/m-1")
                }},
                "groups": [{
                    "value": "g-1",
                    "$ref": format!("{BASE}/Groups/g-1"),
                    "type": "direct",
                    "display": "Staff"
                }],
                "meta": {
                    "resourceType": "User",
                    "location": format!("{BASE}/Users/u-1"),
                    "created": "2026-12-07T00:00:00Z",
                    "version": "W/\"v1\""
                }
            })
        );
    }

    #[test]
    fn a_projected_view_is_the_written_json_with_the_projection_applied() {
        let p = Projection::new(Some("userName"), None);
        let Body::Tree(tree) = Body::of(BASE, user(), &p) else {
            panic!("a projection walks a tree");
        };
        assert_eq!(
            tree,
            json!({
                "schemas": [
                    "urn:ietf:params:scim:schemas:core:2.0:User",
                    ENTERPRISE_USER_SCHEMA
                ],
                "id": "u-1",
                "userName": "bjensen"
            })
        );
    }

    #[test]
    fn a_cursor_page_has_no_start_index_and_its_total_only_once_known() {
        let page = |total_known| List {
            total_results: 7,
            start_index: 1,
            cursor: Some(CursorLinks {
                next: Some("n".into()),
                previous: None,
                total_known,
            }),
            resources: vec![Body::of(BASE, user(), &Projection::default())],
        };
        let open = serde_json::to_value(page(false)).unwrap();
        assert_eq!(open.get("startIndex"), None);
        assert_eq!(open.get("totalResults"), None);
        assert_eq!(open["nextCursor"], "n");
        assert_eq!(open["itemsPerPage"], 1);
        assert_eq!(open["Resources"][0]["id"], "u-1");
        let known = serde_json::to_value(page(true)).unwrap();
        assert_eq!(known["totalResults"], 7);
        let indexed = serde_json::to_value(List {
            cursor: None,
            ..page(true)
        })
        .unwrap();
        assert_eq!(indexed["startIndex"], 1);
        assert_eq!(indexed["totalResults"], 7);
    }
}
