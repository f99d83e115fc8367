//! Normalising incoming SCIM JSON against a schema: canonical attribute names, type checks,
//! and the coercions real IdPs need (`"False"` booleans, a manager given as a bare id).

use serde_json::{Map, Value};

use super::error::{ScimError, ScimResult};
use super::filter::parse_attr_path;
use super::schema::{container_mut, AttrDef, AttrType, Container, ResourceSchema};

/// A resource body with canonical attribute names and checked value types; `ignored` lists
/// attributes the schema does not know.
#[derive(Debug, Default)]
pub struct Normalized {
    pub resource: Map<String, Value>,
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
        let resolved = if key.len() > 4 && key[..4].eq_ignore_ascii_case("urn:") {
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
    resource: &mut Map<String, Value>,
    container: Container,
    def: &AttrDef,
    value: &Value,
    written_as: &str,
) -> ScimResult<()> {
    if let Some(v) = normalize_value(def, value, written_as)? {
        container_mut(resource, container).insert(def.name.to_owned(), v);
    }
    Ok(())
}

/// Checks and coerces one attribute value; `None` means "no value" (null, empty array).
pub fn normalize_value(def: &AttrDef, value: &Value, path: &str) -> ScimResult<Option<Value>> {
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
            if let Some(v) = normalize_single(def, item, &format!("{path}[{i}]"))? {
                out.push(v);
            }
        }
        return Ok((!out.is_empty()).then_some(Value::Array(out)));
    }
    if let Value::Array(a) = value {
        // A one-element array for a single-valued attribute is a common client slip.
        return match a.as_slice() {
            [] => Ok(None),
            [one] => normalize_single(def, one, path),
            _ => Err(ScimError::invalid_value(format!(
                "'{path}' is single-valued but {} values were sent",
                a.len()
            ))),
        };
    }
    normalize_single(def, value, path)
}

fn normalize_single(def: &AttrDef, value: &Value, path: &str) -> ScimResult<Option<Value>> {
    match def.ty {
        AttrType::String | AttrType::Reference | AttrType::DateTime => match value {
            Value::String(_) => Ok(Some(value.clone())),
            Value::Number(n) => Ok(Some(Value::String(n.to_string()))),
            Value::Null => Ok(None),
            other => Err(ScimError::invalid_value(format!(
                "'{path}' must be a string, got {}",
                kind(other)
            ))),
        },
        AttrType::Boolean => match value {
            Value::Bool(_) => Ok(Some(value.clone())),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Some(Value::Bool(true))),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Some(Value::Bool(false))),
            Value::String(s) if s.is_empty() => Ok(None),
            other => Err(ScimError::invalid_value(format!(
                "'{path}' must be a boolean (true or false), got {other}"
            ))),
        },
        AttrType::Complex => match value {
            Value::Object(obj) => {
                let mut out = Map::new();
                for (k, v) in obj {
                    // Unknown sub-attributes are dropped: nothing could store them.
                    let Some(sub) = def.sub(k) else { continue };
                    if let Some(v) = normalize_value(sub, v, &format!("{path}.{}", sub.name))? {
                        out.insert(sub.name.to_owned(), v);
                    }
                }
                Ok((!out.is_empty()).then_some(Value::Object(out)))
            }
            // Entra sends the enterprise manager as the bare id string.
            Value::String(s) if def.sub("value").is_some() => {
                let mut out = Map::new();
                out.insert("value".to_owned(), Value::String(s.clone()));
                Ok(Some(Value::Object(out)))
            }
            other => Err(ScimError::invalid_value(format!(
                "'{path}' must be an object with sub-attributes, got {}",
                kind(other)
            ))),
        },
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
        let r = Value::Object(n.resource);
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
        assert_eq!(n.resource[ENTERPRISE_USER_SCHEMA]["employeeNumber"], "42");
    }
}
