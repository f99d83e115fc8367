//! The service's views as SCIM JSON (RFC 7643): `schemas`, `id`, the typed attributes, the
//! `$ref`s of links and the manager, and `meta` with its location and entity tag. URLs are
//! made here, from the base URL of the request, which only the HTTP layer knows.

use serde_json::{Map, Value};

use crate::scim::schema::ENTERPRISE_USER_SCHEMA;
use crate::scim::value::{ScimValue, Simple};
use crate::service::etag;
use crate::service::view::{Links, ResourceType, View};

/// Absolute URL of the resource.
pub fn location(base: &str, kind: ResourceType, id: &str) -> String {
    format!("{base}/{}/{id}", kind.endpoint())
}

/// The entity tag of the view's version (`W/"…"`), when the directory keeps one.
pub fn entity_tag(v: &View) -> Option<String> {
    v.meta.version.as_deref().map(etag)
}

/// The resource as SCIM JSON; `base` is the absolute URL of `/scim/v2`.
pub fn resource(base: &str, v: View) -> Value {
    let View {
        kind,
        id,
        mut attrs,
        links,
        meta,
        ..
    } = v;
    let here = location(base, kind, id.as_str());
    let mut schemas = vec![Value::String(kind.schema().core.id.into())];
    schemas.extend(attrs.extension_urns().map(|u| Value::String(u.into())));
    // the manager is a user: its `$ref` is that user's URL
    let enterprise = crate::scim::schema::Container::Extension(ENTERPRISE_USER_SCHEMA);
    if kind == ResourceType::User && attrs.extension(ENTERPRISE_USER_SCHEMA).is_some() {
        if let Some(ScimValue::Complex(mgr)) = attrs.attrs_mut(enterprise).get_mut("manager") {
            if let Some(mid) = mgr.str("value") {
                let url = location(base, ResourceType::User, mid);
                mgr.set("$ref", Simple::Reference(url));
            }
        }
    }
    let mut out = Map::new();
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), Value::String(id.to_string()));
    attrs.write_json(&mut out);
    match links {
        Some(Links::Groups(groups)) if !groups.is_empty() => {
            let values = groups.into_iter().map(|g| {
                let mut o = Map::new();
                o.insert(
                    "$ref".into(),
                    Value::String(location(base, ResourceType::Group, g.id.as_str())),
                );
                o.insert(
                    "type".into(),
                    Value::String(if g.direct { "direct" } else { "indirect" }.into()),
                );
                if let Some(name) = g.display {
                    o.insert("display".into(), Value::String(name));
                }
                with_value(g.id.to_string(), o)
            });
            out.insert("groups".into(), Value::Array(values.collect()));
        }
        Some(Links::Members(members)) => {
            let values = members.into_iter().map(|m| {
                let mut o = Map::new();
                o.insert(
                    "$ref".into(),
                    Value::String(location(base, m.kind, m.id.as_str())),
                );
                o.insert("type".into(), Value::String(m.kind.name().into()));
                with_value(m.id.to_string(), o)
            });
            out.insert("members".into(), Value::Array(values.collect()));
        }
        Some(Links::Groups(_)) | None => {}
    }
    let mut m = Map::new();
    m.insert("resourceType".into(), Value::String(kind.name().into()));
    m.insert("location".into(), Value::String(here));
    if let Some(t) = meta.created {
        m.insert("created".into(), Value::String(t));
    }
    if let Some(t) = meta.last_modified {
        m.insert("lastModified".into(), Value::String(t));
    }
    if let Some(v) = meta.version {
        m.insert("version".into(), Value::String(etag(&v)));
    }
    out.insert("meta".into(), Value::Object(m));
    Value::Object(out)
}

/// `{"value": id, …rest}`: a link's id first, as clients read it.
fn with_value(id: String, rest: Map<String, Value>) -> Value {
    let mut o = Map::new();
    o.insert("value".into(), Value::String(id));
    o.extend(rest);
    Value::Object(o)
}
