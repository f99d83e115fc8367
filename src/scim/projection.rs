//! `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9): which attributes and
//! sub-attributes of a resource a response carries. `id` and `schemas` are always returned.

use serde_json::{Map, Value};

use super::filter::parse_attr_path;
use super::schema::{ResourceSchema, Returned};
use super::{Limits, ScimError, ScimResult};

/// One requested attribute: a top-level key of the JSON resource (an extension URN for
/// extension attributes) and optionally one of its sub-attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AttrRef {
    top: String,
    sub: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Projection {
    attributes: Option<Vec<AttrRef>>,
    excluded: Vec<AttrRef>,
}

fn parse_list(list: &str) -> Vec<AttrRef> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .filter_map(parse_ref)
        .collect()
}

/// `name.givenName` → (name, givenName); `urn:…:enterprise:2.0:User:department` → (the
/// extension URN, department); a core-schema URN prefix is dropped.
fn parse_ref(a: &str) -> Option<AttrRef> {
    let p = parse_attr_path(a).ok()?;
    match p.urn {
        Some(urn)
            if !urn
                .to_ascii_lowercase()
                .starts_with("urn:ietf:params:scim:schemas:core:") =>
        {
            Some(AttrRef {
                top: urn,
                sub: Some(p.name),
            })
        }
        _ => Some(AttrRef {
            top: p.name,
            sub: p.sub,
        }),
    }
}

/// 400 unless `list` is within the bounds filters have: `filter_max_length` characters and
/// `filter_max_terms` names, checked before it is split (a list of 250,000 names would cost
/// every response ~10⁹ comparisons).
fn bounded<'a>(param: &str, list: Option<&'a str>, limits: &Limits) -> ScimResult<Option<&'a str>> {
    let Some(list) = list else { return Ok(None) };
    if list.len() > limits.filter_max_length {
        return Err(ScimError::invalid_value(format!(
            "{param} is {} characters long; the server accepts at most {} (limits.filter_max_length)",
            list.len(),
            limits.filter_max_length
        )));
    }
    let names = list.split(',').filter(|a| !a.trim().is_empty()).count();
    if names > limits.filter_max_terms {
        return Err(ScimError::invalid_value(format!(
            "{param} names {names} attributes; the server accepts at most {} (limits.filter_max_terms)",
            limits.filter_max_terms
        )));
    }
    Ok(Some(list))
}

impl Projection {
    /// From comma-separated lists as in query parameters.
    pub fn new(attributes: Option<&str>, excluded: Option<&str>) -> Projection {
        Projection {
            attributes: attributes.map(parse_list),
            excluded: excluded.map(parse_list).unwrap_or_default(),
        }
    }

    /// `new`, for a request on resources of `schema`: each list within `limits`, and no
    /// write-only attribute (the password) asked for in `attributes` (400 `invalidFilter`:
    /// it is never returned, and asking for it is a mistake worth saying).
    pub fn parse(
        attributes: Option<&str>,
        excluded: Option<&str>,
        limits: &Limits,
        schema: &ResourceSchema,
    ) -> ScimResult<Projection> {
        let attributes = bounded("attributes", attributes, limits)?;
        let excluded = bounded("excludedAttributes", excluded, limits)?;
        let p = Projection::new(attributes, excluded);
        for a in p.attributes.iter().flatten() {
            let (urn, name) = match &a.sub {
                Some(sub) if a.top.contains(':') => (Some(a.top.as_str()), sub.as_str()),
                _ => (None, a.top.as_str()),
            };
            if let Some((_, def)) = schema.resolve(urn, name) {
                if def.returned == Returned::Never {
                    return Err(ScimError::invalid_filter(format!(
                        "'{}' is write-only (returned: never): it cannot be filtered, sorted or returned",
                        def.name
                    )));
                }
            }
        }
        Ok(p)
    }

    pub fn is_set(&self) -> bool {
        self.attributes.is_some() || !self.excluded.is_empty()
    }

    /// Whether every top-level attribute is returned (at least in part): no
    /// `attributes`, and only sub-attributes excluded.
    pub fn includes_every_attribute(&self) -> bool {
        self.attributes.is_none() && self.excluded.iter().all(|a| a.sub.is_some())
    }

    /// Whether any part of the top-level attribute `name` is returned (e.g. whether a
    /// group's members must be read at all).
    pub fn includes(&self, name: &str) -> bool {
        if matches!(name, "id" | "schemas") {
            return true;
        }
        match &self.attributes {
            Some(only) => only.iter().any(|a| a.top.eq_ignore_ascii_case(name)),
            None => !self
                .excluded
                .iter()
                .any(|a| a.sub.is_none() && a.top.eq_ignore_ascii_case(name)),
        }
    }

    pub fn apply(&self, mut v: Value) -> Value {
        let Value::Object(m) = &mut v else { return v };
        if let Some(only) = &self.attributes {
            m.retain(|k, _| self.includes(k));
            for (k, val) in m.iter_mut() {
                let wanted: Vec<&AttrRef> = only
                    .iter()
                    .filter(|a| a.top.eq_ignore_ascii_case(k))
                    .collect();
                if wanted.is_empty() || wanted.iter().any(|a| a.sub.is_none()) {
                    continue;
                }
                retain_subs(val, &|s| {
                    wanted
                        .iter()
                        .any(|a| a.sub.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(s)))
                });
            }
        }
        for ex in &self.excluded {
            let key = m.keys().find(|k| k.eq_ignore_ascii_case(&ex.top)).cloned();
            let Some(key) = key else { continue };
            match &ex.sub {
                None if !matches!(key.as_str(), "id" | "schemas") => {
                    m.remove(&key);
                }
                None => {}
                Some(sub) => {
                    if let Some(val) = m.get_mut(&key) {
                        retain_subs(val, &|s| !s.eq_ignore_ascii_case(sub));
                    }
                }
            }
        }
        v
    }
}

/// Keeps the sub-attributes `keep` accepts, in a complex value or in each value of a
/// multi-valued one.
fn retain_subs(v: &mut Value, keep: &dyn Fn(&str) -> bool) {
    let filter = |o: &mut Map<String, Value>| o.retain(|k, _| keep(k));
    match v {
        Value::Object(o) => filter(o),
        Value::Array(items) => {
            for it in items.iter_mut() {
                if let Value::Object(o) = it {
                    filter(o);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "1",
            "userName": "b",
            "name": {"givenName": "B", "familyName": "J"},
            "emails": [{"type": "work", "value": "b@x", "primary": true}],
            EXT: {"department": "R&D", "employeeNumber": "7"},
            "meta": {"resourceType": "User"}
        })
    }

    #[test]
    fn attributes_keep_only_what_is_named_plus_id_and_schemas() {
        let p = Projection::new(Some("userName,name.givenName,emails.value"), None);
        assert_eq!(
            p.apply(user()),
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": "1",
                "userName": "b",
                "name": {"givenName": "B"},
                "emails": [{"value": "b@x"}]
            })
        );
    }

    #[test]
    fn every_attribute_is_included_exactly_when_no_whole_attribute_is_left_out() {
        let names = ["userName", "name", "title", "emails", "groups", "meta", EXT];
        for (attributes, excluded) in [
            (None, None),
            (None, Some("name.givenName,emails.value")),
            (None, Some("title")),
            (None, Some(EXT)),
            (Some("userName"), None),
            (Some("userName,name,title,emails,groups,meta"), None),
        ] {
            let p = Projection::new(attributes, excluded);
            assert_eq!(
                p.includes_every_attribute(),
                attributes.is_none() && names.iter().all(|n| p.includes(n)),
                "{attributes:?} {excluded:?}"
            );
        }
        assert!(Projection::default().includes_every_attribute());
        assert!(!Projection::new(None, Some("title")).includes_every_attribute());
    }

    #[test]
    fn excluded_attributes_remove_attributes_and_sub_attributes() {
        let p = Projection::new(
            None,
            Some(&format!("name.familyName,meta,{EXT}:department,id")),
        );
        let v = p.apply(user());
        assert_eq!(v["name"], json!({"givenName": "B"}));
        assert!(v.get("meta").is_none());
        assert_eq!(v[EXT], json!({"employeeNumber": "7"}));
        assert_eq!(v["id"], "1", "id is always returned");
        assert!(p.includes("name"), "only a part of name is excluded");
    }

    #[test]
    fn write_only_attributes_cannot_be_asked_for_and_lists_are_bounded() {
        use crate::scim::schema::USER_RESOURCE;
        let limits = Limits::default();
        let e = Projection::parse(Some("userName,password"), None, &limits, &USER_RESOURCE)
            .unwrap_err();
        assert_eq!(e.scim_type, Some(crate::scim::ScimType::InvalidFilter));
        assert!(Projection::parse(
            Some("urn:ietf:params:scim:schemas:core:2.0:User:password"),
            None,
            &limits,
            &USER_RESOURCE
        )
        .is_err());
        assert!(
            Projection::parse(None, Some("password"), &limits, &USER_RESOURCE).is_ok(),
            "excluding it is harmless"
        );
        let many = vec!["userName"; 101].join(",");
        let e = Projection::parse(Some(&many), None, &limits, &USER_RESOURCE).unwrap_err();
        assert!(e.detail.contains("limits.filter_max_terms"), "{}", e.detail);
        let long = "a".repeat(5000);
        let e = Projection::parse(None, Some(&long), &limits, &USER_RESOURCE).unwrap_err();
        assert!(
            e.detail.contains("limits.filter_max_length"),
            "{}",
            e.detail
        );
    }

    #[test]
    fn extension_attributes_are_selected_by_urn() {
        let p = Projection::new(Some(&format!("{EXT}:department")), None);
        let v = p.apply(user());
        assert_eq!(v[EXT], json!({"department": "R&D"}));
        assert!(v.get("userName").is_none());
        assert!(p.includes(EXT) && !p.includes("members"));
        let p = Projection::new(
            Some("urn:ietf:params:scim:schemas:core:2.0:User:userName"),
            None,
        );
        assert_eq!(p.apply(user())["userName"], "b");
    }
}
