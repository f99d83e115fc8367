//! The typed SCIM value model (RFC 7643 §2.3): a resource is its schema's attributes with typed
//! values, extensions keyed by their URN. Bodies are parsed into it once (`resource.rs`), PATCH
//! operations carry it, the mapping reads and writes it, and it becomes JSON again only when a
//! response is written. Attribute names are the schema's canonical `&'static str`s, so a name
//! in a `Resource` is always one the schema knows, spelled one way.
//!
//! Every multi-valued attribute of our schemas is complex (RFC 7643 defines none that is
//! not, apart from `schemas`, which is not an attribute here), and sub-attributes are simple:
//! the types say so, and `schema.rs`'s tests check the schemas keep to it.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::schema::Container;

/// A value that is not complex. `DateTime` and `Reference` keep the text the client or the
/// directory gave: the server stores them as they come and compares them as strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Simple {
    String(String),
    Boolean(bool),
    DateTime(String),
    Reference(String),
}

impl Simple {
    /// The text of a string, reference or date-time.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Simple::String(s) | Simple::DateTime(s) | Simple::Reference(s) => Some(s),
            Simple::Boolean(_) => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Simple::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// An empty string: IdPs send `""` to mean "no value".
    pub fn is_empty_text(&self) -> bool {
        self.as_str().is_some_and(str::is_empty)
    }

    pub fn to_json(&self) -> Value {
        match self {
            Simple::String(s) | Simple::DateTime(s) | Simple::Reference(s) => {
                Value::String(s.clone())
            }
            Simple::Boolean(b) => Value::Bool(*b),
        }
    }
}

/// A complex value: sub-attributes by canonical name, in the order they were set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Complex(Vec<(&'static str, Simple)>);

impl Complex {
    pub fn new() -> Complex {
        Complex::default()
    }

    /// The sub-attribute `name` (any case: filter paths are the client's spelling).
    pub fn get(&self, name: &str) -> Option<&Simple> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The text of sub-attribute `name`, when it is a string, reference or date-time.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Simple::as_str)
    }

    /// Sets `name`, replacing its value if it has one.
    pub fn set(&mut self, name: &'static str, value: Simple) {
        match self
            .0
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// `self` with `name` set: for building values in one expression.
    pub fn with(mut self, name: &'static str, value: Simple) -> Complex {
        self.set(name, value);
        self
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    /// Sets every sub-attribute `other` has (RFC 7644 §3.5.2: those not given stay).
    pub fn merge(&mut self, other: Complex) {
        for (k, v) in other.0 {
            self.set(k, v);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Simple)> {
        self.0.iter().map(|(k, v)| (*k, v))
    }

    /// Whether `primary` is true (RFC 7643 §2.4).
    pub fn is_primary(&self) -> bool {
        self.get("primary").and_then(Simple::as_bool) == Some(true)
    }

    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_json()))
                .collect(),
        )
    }
}

/// The value of one attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScimValue {
    Simple(Simple),
    Complex(Complex),
    /// A multi-valued attribute's values, never empty in a resource (no values is no
    /// attribute); empty only as a PATCH `remove`'s value that names no value.
    Multi(Vec<Complex>),
}

impl ScimValue {
    pub fn string(s: impl Into<String>) -> ScimValue {
        ScimValue::Simple(Simple::String(s.into()))
    }

    pub fn boolean(b: bool) -> ScimValue {
        ScimValue::Simple(Simple::Boolean(b))
    }

    pub fn as_simple(&self) -> Option<&Simple> {
        match self {
            ScimValue::Simple(s) => Some(s),
            _ => None,
        }
    }

    /// The text of a simple string, reference or date-time value.
    pub fn as_str(&self) -> Option<&str> {
        self.as_simple().and_then(Simple::as_str)
    }

    pub fn as_bool(&self) -> Option<bool> {
        self.as_simple().and_then(Simple::as_bool)
    }

    pub fn as_complex(&self) -> Option<&Complex> {
        match self {
            ScimValue::Complex(c) => Some(c),
            _ => None,
        }
    }

    /// The values of a multi-valued attribute (none for any other value).
    pub fn elements(&self) -> &[Complex] {
        match self {
            ScimValue::Multi(items) => items,
            _ => &[],
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            ScimValue::Simple(s) => s.to_json(),
            ScimValue::Complex(c) => c.to_json(),
            ScimValue::Multi(items) => Value::Array(items.iter().map(Complex::to_json).collect()),
        }
    }
}

/// The attributes of one container (the core schema's, or one extension's), by canonical
/// name, in the order they were set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes(Vec<(&'static str, ScimValue)>);

impl Attributes {
    pub fn get(&self, name: &str) -> Option<&ScimValue> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut ScimValue> {
        self.0
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn set(&mut self, name: &'static str, value: ScimValue) {
        match self.get_mut(name) {
            Some(slot) => *slot = value,
            None => self.0.push((name, value)),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<ScimValue> {
        let i = self
            .0
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(name))?;
        Some(self.0.remove(i).1)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &ScimValue)> {
        self.0.iter().map(|(k, v)| (*k, v))
    }

    fn write_json(&self, out: &mut Map<String, Value>) {
        for (k, v) in &self.0 {
            out.insert((*k).to_owned(), v.to_json());
        }
    }
}

/// A SCIM resource's attributes: the core schema's (with the common `externalId`) and each
/// extension's under its URN. `schemas` is derived when it is rendered; `id` and `meta` are
/// the server's, set only where a filter must see them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resource {
    core: Attributes,
    extensions: Vec<(&'static str, Attributes)>,
}

impl Resource {
    pub fn new() -> Resource {
        Resource::default()
    }

    /// The attributes of `container`, if it has any.
    pub fn attrs(&self, container: Container) -> Option<&Attributes> {
        match container {
            Container::Core => Some(&self.core),
            Container::Extension(urn) => self.extension(urn),
        }
    }

    /// The attributes of `container`, made when it has none yet.
    pub fn attrs_mut(&mut self, container: Container) -> &mut Attributes {
        let urn = match container {
            Container::Core => return &mut self.core,
            Container::Extension(urn) => urn,
        };
        let i = match self
            .extensions
            .iter()
            .position(|(u, _)| u.eq_ignore_ascii_case(urn))
        {
            Some(i) => i,
            None => {
                self.extensions.push((urn, Attributes::default()));
                self.extensions.len() - 1
            }
        };
        match self.extensions.get_mut(i) {
            Some((_, attrs)) => attrs,
            // `i` is an index just found or pushed
            None => &mut self.core,
        }
    }

    /// The core schema's attributes.
    pub fn core_attrs(&self) -> Option<&Attributes> {
        Some(&self.core)
    }

    /// The attributes of the extension with this URN (any case), if it has any.
    pub fn extension(&self, urn: &str) -> Option<&Attributes> {
        self.extensions
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(urn))
            .map(|(_, a)| a)
    }

    pub fn get(&self, container: Container, name: &str) -> Option<&ScimValue> {
        self.attrs(container)?.get(name)
    }

    /// A core attribute.
    pub fn core(&self, name: &str) -> Option<&ScimValue> {
        self.core.get(name)
    }

    pub fn set(&mut self, container: Container, name: &'static str, value: ScimValue) {
        self.attrs_mut(container).set(name, value);
    }

    pub fn remove(&mut self, container: Container, name: &str) -> Option<ScimValue> {
        match container {
            Container::Core => self.core.remove(name),
            Container::Extension(urn) => self
                .extensions
                .iter_mut()
                .find(|(u, _)| u.eq_ignore_ascii_case(urn))
                .and_then(|(_, a)| a.remove(name)),
        }
    }

    /// Drops an extension's attributes altogether.
    pub fn remove_extension(&mut self, urn: &str) {
        self.extensions
            .retain(|(u, _)| !u.eq_ignore_ascii_case(urn));
    }

    /// Drops extensions left without attributes.
    pub fn drop_empty_extensions(&mut self) {
        self.extensions.retain(|(_, a)| !a.is_empty());
    }

    /// Every attribute with its container: the core's first, then each extension's.
    pub fn iter(&self) -> impl Iterator<Item = (Container, &'static str, &ScimValue)> {
        let core = self.core.iter().map(|(k, v)| (Container::Core, k, v));
        let ext = self.extensions.iter().flat_map(|(urn, a)| {
            a.iter()
                .map(move |(k, v)| (Container::Extension(urn), k, v))
        });
        core.chain(ext)
    }

    /// The URNs of the extensions holding attributes.
    pub fn extension_urns(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.extensions
            .iter()
            .filter(|(_, a)| !a.is_empty())
            .map(|(u, _)| *u)
    }

    /// Sets every attribute `other` has; a complex value in both gets `other`'s
    /// sub-attributes added to its own (a create taking over an existing account keeps the
    /// name parts the request leaves out).
    pub fn merge(&mut self, other: Resource) {
        let containers = std::iter::once((Container::Core, other.core)).chain(
            other
                .extensions
                .into_iter()
                .map(|(urn, a)| (Container::Extension(urn), a)),
        );
        for (container, attrs) in containers {
            let mine = self.attrs_mut(container);
            for (k, v) in attrs.0 {
                match (mine.get_mut(k), v) {
                    (Some(ScimValue::Complex(held)), ScimValue::Complex(sent)) => held.merge(sent),
                    (_, v) => mine.set(k, v),
                }
            }
        }
    }

    /// The attributes as JSON members: the core's at the top, each extension's in an object
    /// under its URN (RFC 7643 §3.3).
    pub fn write_json(&self, out: &mut Map<String, Value>) {
        self.core.write_json(out);
        for (urn, attrs) in &self.extensions {
            if attrs.is_empty() {
                continue;
            }
            let mut inner = Map::new();
            attrs.write_json(&mut inner);
            out.insert((*urn).to_owned(), Value::Object(inner));
        }
    }

    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        self.write_json(&mut out);
        Value::Object(out)
    }
}

// Written straight to a response (no `Value` tree in between), in the order they were set;
// `to_json` above is the same JSON as a tree, for what walks one (projection, tests).

impl Serialize for Simple {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Simple::String(v) | Simple::DateTime(v) | Simple::Reference(v) => s.serialize_str(v),
            Simple::Boolean(b) => s.serialize_bool(*b),
        }
    }
}

/// Named values, in their order, as a JSON object.
fn serialize_named<S: Serializer, T: Serialize>(
    named: &[(&'static str, T)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(named.iter().map(|(k, v)| (k, v)))
}

impl Serialize for Complex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_named(&self.0, s)
    }
}

impl Serialize for ScimValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ScimValue::Simple(v) => v.serialize(s),
            ScimValue::Complex(c) => c.serialize(s),
            ScimValue::Multi(items) => items.serialize(s),
        }
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_named(&self.0, s)
    }
}

impl Resource {
    /// The attributes as members of an object being written (as `write_json`), but the core
    /// attributes `skip` names: the writer's own members (`id`, `meta`) win.
    pub fn serialize_members<M: SerializeMap>(
        &self,
        m: &mut M,
        skip: impl Fn(&str) -> bool,
    ) -> Result<(), M::Error> {
        for (k, v) in self.core.0.iter().filter(|(k, _)| !skip(k)) {
            m.serialize_entry(k, v)?;
        }
        for (urn, attrs) in self.extensions.iter().filter(|(_, a)| !a.is_empty()) {
            m.serialize_entry(urn, attrs)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::ENTERPRISE_USER_SCHEMA;
    use serde_json::json;

    #[test]
    fn renders_core_attributes_and_extensions_under_their_urn() {
        let mut r = Resource::new();
        r.set(Container::Core, "userName", ScimValue::string("bjensen"));
        r.set(Container::Core, "active", ScimValue::boolean(false));
        r.set(
            Container::Core,
            "emails",
            ScimValue::Multi(vec![Complex::new()
                .with("value", Simple::String("b@example.com".into()))
                .with("primary", Simple::Boolean(true))]),
        );
        r.set(
            Container::Extension(ENTERPRISE_USER_SCHEMA),
            "department",
            ScimValue::string("R&D"),
        );
        assert_eq!(
            r.to_json(),
            json!({
                "userName": "bjensen",
                "active": false,
                "emails": [{"value": "b@example.com", "primary": true}],
                ENTERPRISE_USER_SCHEMA: {"department": "R&D"}
            })
        );
    }

    #[test]
    fn names_are_found_in_any_case_and_set_replaces() {
        let mut r = Resource::new();
        r.set(Container::Core, "title", ScimValue::string("a"));
        r.set(Container::Core, "title", ScimValue::string("b"));
        assert_eq!(r.core("TITLE").and_then(ScimValue::as_str), Some("b"));
        assert_eq!(r.iter().count(), 1);
        assert!(r.remove(Container::Core, "Title").is_some());
        assert!(r.core("title").is_none());
    }

    #[test]
    fn emptied_extensions_are_dropped_and_not_rendered() {
        let ext = Container::Extension(ENTERPRISE_USER_SCHEMA);
        let mut r = Resource::new();
        r.set(ext, "department", ScimValue::string("R&D"));
        r.remove(ext, "department");
        assert_eq!(r.to_json(), json!({}));
        assert_eq!(r.extension_urns().count(), 0);
        r.drop_empty_extensions();
        assert!(r.attrs(ext).is_none());
    }

    #[test]
    fn merge_adds_sub_attributes_to_a_complex_value_and_replaces_the_rest() {
        let mut held = Resource::new();
        held.set(
            Container::Core,
            "name",
            ScimValue::Complex(Complex::new().with("givenName", Simple::String("Barbara".into()))),
        );
        held.set(Container::Core, "title", ScimValue::string("Clerk"));
        let mut sent = Resource::new();
        sent.set(
            Container::Core,
            "name",
            ScimValue::Complex(Complex::new().with("familyName", Simple::String("Jensen".into()))),
        );
        sent.set(Container::Core, "title", ScimValue::string("Boss"));
        held.merge(sent);
        assert_eq!(
            held.to_json(),
            json!({"name": {"givenName": "Barbara", "familyName": "Jensen"}, "title": "Boss"})
        );
    }

    #[test]
    fn merge_keeps_what_the_other_resource_does_not_set() {
        let ext = Container::Extension(ENTERPRISE_USER_SCHEMA);
        let mut held = Resource::new();
        held.set(ext, "department", ScimValue::string("R&D"));
        held.set(ext, "division", ScimValue::string("Labs"));
        let mut sent = Resource::new();
        sent.set(ext, "department", ScimValue::string("Sales"));
        held.merge(sent);
        assert_eq!(
            held.get(ext, "department").and_then(ScimValue::as_str),
            Some("Sales")
        );
        assert_eq!(
            held.get(ext, "division").and_then(ScimValue::as_str),
            Some("Labs")
        );
    }
}
