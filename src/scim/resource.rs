//! Parsing incoming SCIM JSON into the typed model against a schema: canonical attribute
//! names, type checks, and the coercions real IdPs need (`"False"` booleans, a manager given as
//! a bare id, one value where an array belongs). This is where JSON becomes `Resource`.

use serde_json::Value;

use super::error::{ScimError, ScimResult};
use super::filter::parse_attr_path;
use super::schema::{AttrDef, AttrType, Container, ResourceSchema};
use super::value::{Complex, Resource, ScimValue, Simple};

/// A resource body with canonical attribute names and checked value types; `ignored` lists
/// attributes the schema does not know.
#[derive(Debug, Default)]
pub struct Normalized {
    pub resource: Resource,
    pub ignored: Vec<String>,
}

pub fn normalize_resource(body: &Value, schema: &ResourceSchema) -> ScimResult<Normalized> {
    let Value::Object(obj) = body else {
        return Err(ScimError::invalid_syntax(
            "the request body must be a JSON object holding the resource",
        ));
    };
    let mut out = Normalized::default();
    for (key, value) in obj {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(ext) = schema.extension(key) {
            let Value::Object(inner) = value else {
                if value.is_null() {
                    continue;
                }
                return Err(ScimError::invalid_value(format!(
                    "'{key}' must be an object holding the extension's attributes"
                )));
            };
            for (k, v) in inner {
                match ext.attr(k) {
                    Some(def) => put(&mut out.resource, Container::Extension(ext.id), def, v, k)?,
                    None => out.ignored.push(format!("{}:{k}", ext.id)),
                }
            }
            continue;
        }
        let resolved =
            if key.len() > 4 && key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
                parse_attr_path(key)
                    .ok()
                    .filter(|p| p.sub.is_none())
                    .and_then(|p| schema.resolve(p.urn.as_deref(), &p.name))
            } else {
                schema.resolve(None, key)
            };
        match resolved {
            Some((container, def)) => put(&mut out.resource, container, def, value, key)?,
            None => out.ignored.push(key.clone()),
        }
    }
    Ok(out)
}

fn put(
    resource: &mut Resource,
    container: Container,
    def: &'static AttrDef,
    value: &Value,
    written_as: &str,
) -> ScimResult<()> {
    if let Some(v) = normalize_value(def, value, written_as)? {
        resource.set(container, def.name, v);
    }
    Ok(())
}

/// Checks and coerces one attribute's value; `None` means "no value" (null, empty array).
pub fn normalize_value(
    def: &'static AttrDef,
    value: &Value,
    path: &str,
) -> ScimResult<Option<ScimValue>> {
    if value.is_null() {
        return Ok(None);
    }
    if def.multi_valued {
        let items: Vec<&Value> = match value {
            Value::Array(a) => a.iter().collect(),
            single => vec![single],
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            if let Some(v) = normalize_complex(def, item, &format!("{path}[{i}]"))? {
                out.push(v);
            }
        }
        return Ok((!out.is_empty()).then_some(ScimValue::Multi(out)));
    }
    let one = match value {
        // A one-element array for a single-valued attribute is a common client slip.
        Value::Array(a) => match a.as_slice() {
            [] => return Ok(None),
            [one] => one,
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "'{path}' is single-valued but {} values were sent",
                    a.len()
                )))
            }
        },
        one => one,
    };
    Ok(match def.ty {
        AttrType::Complex => normalize_complex(def, one, path)?.map(ScimValue::Complex),
        _ => normalize_simple(def, one, path)?.map(ScimValue::Simple),
    })
}

/// One value of a multi-valued attribute (the value of a filtered PATCH path such as
/// `emails[type eq "work"]`): a complex value, or `None` for null.
pub fn normalize_element(
    def: &'static AttrDef,
    value: &Value,
    path: &str,
) -> ScimResult<Option<Complex>> {
    match value {
        Value::Null => Ok(None),
        Value::Array(a) => match a.as_slice() {
            [] => Ok(None),
            [one, ..] => normalize_complex(def, one, path),
        },
        one => normalize_complex(def, one, path),
    }
}

/// A sub-attribute's value, or a simple attribute's.
pub fn normalize_simple(def: &AttrDef, value: &Value, path: &str) -> ScimResult<Option<Simple>> {
    let text = |s: String| match def.ty {
        AttrType::Reference => Simple::Reference(s),
        AttrType::DateTime => Simple::DateTime(s),
        _ => Simple::String(s),
    };
    match def.ty {
        AttrType::String | AttrType::Reference | AttrType::DateTime => match value {
            Value::String(s) => Ok(Some(text(s.clone()))),
            Value::Number(n) => Ok(Some(text(n.to_string()))),
            Value::Null => Ok(None),
            other => Err(ScimError::invalid_value(format!(
                "'{path}' must be a string, got {}",
                kind(other)
            ))),
        },
        AttrType::Boolean => match value {
            Value::Bool(b) => Ok(Some(Simple::Boolean(*b))),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Some(Simple::Boolean(true))),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Some(Simple::Boolean(false))),
            Value::String(s) if s.is_empty() => Ok(None),
            Value::Null => Ok(None),
            other => Err(ScimError::invalid_value(format!(
                "'{path}' must be a boolean (true or false), got {other}"
            ))),
        },
        AttrType::Complex => Err(ScimError::invalid_value(format!(
            "'{path}' must be an object with sub-attributes, got {}",
            kind(value)
        ))),
    }
}

fn normalize_complex(def: &AttrDef, value: &Value, path: &str) -> ScimResult<Option<Complex>> {
    match value {
        Value::Object(obj) => {
            let mut out = Complex::new();
            for (k, v) in obj {
                // Unknown sub-attributes are dropped: nothing could store them.
                let Some(sub) = def.sub(k) else { continue };
                let v = match v {
                    // a one-element array for a sub-attribute, as for an attribute
                    Value::Array(a) => match a.as_slice() {
                        [] => continue,
                        [one] => one,
                        _ => {
                            return Err(ScimError::invalid_value(format!(
                                "'{path}.{}' is single-valued but {} values were sent",
                                sub.name,
                                a.len()
                            )))
                        }
                    },
                    one => one,
                };
                if let Some(v) = normalize_simple(sub, v, &format!("{path}.{}", sub.name))? {
                    out.set(sub.name, v);
                }
            }
            Ok((!out.is_empty()).then_some(out))
        }
        // Entra sends the enterprise manager as the bare id string, and members as ids.
        Value::String(s) if def.sub("value").is_some() => Ok(Some(
            Complex::new().with("value", Simple::String(s.clone())),
        )),
        other => Err(ScimError::invalid_value(format!(
            "'{path}' must be an object with sub-attributes, got {}",
            kind(other)
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, USER_RESOURCE};
    use serde_json::json;

    #[test]
    fn canonicalises_names_and_coerces_idp_forms() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "USERNAME": "bjensen",
            "Active": "False",
            "emails": {"value": "b@example.com", "TYPE": "work"},
            "nonsense": 1,
            ENTERPRISE_USER_SCHEMA: {"manager": "abc-123", "department": "R&D", "shoeSize": 9}
        });
        let n = normalize_resource(&body, &USER_RESOURCE).unwrap();
        let r = n.resource.to_json();
        assert_eq!(r["userName"], "bjensen");
        assert_eq!(r["active"], false);
        assert_eq!(
            r["emails"],
            json!([{"value": "b@example.com", "type": "work"}])
        );
        assert_eq!(
            r[ENTERPRISE_USER_SCHEMA]["manager"],
            json!({"value": "abc-123"})
        );
        assert_eq!(r[ENTERPRISE_USER_SCHEMA]["department"], "R&D");
        assert_eq!(n.ignored.len(), 2, "{:?}", n.ignored);
    }

    #[test]
    fn rejects_wrong_types_naming_the_attribute() {
        let e = normalize_resource(&json!({"userName": {"a": 1}}), &USER_RESOURCE).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.detail.contains("'userName' must be a string"),
            "{}",
            e.detail
        );
        let e = normalize_resource(&json!({"active": "maybe"}), &USER_RESOURCE).unwrap_err();
        assert!(
            e.detail.contains("'active' must be a boolean"),
            "{}",
            e.detail
        );
        let e = normalize_resource(&json!([1]), &USER_RESOURCE).unwrap_err();
        assert_eq!(e.scim_type, Some(crate::scim::ScimType::InvalidSyntax));
    }

    #[test]
    fn accepts_urn_qualified_top_level_keys() {
        let body = json!({format!("{ENTERPRISE_USER_SCHEMA}:employeeNumber"): "42"});
        let n = normalize_resource(&body, &USER_RESOURCE).unwrap();
        assert_eq!(
            n.resource.to_json()[ENTERPRISE_USER_SCHEMA]["employeeNumber"],
            "42"
        );
    }
}
