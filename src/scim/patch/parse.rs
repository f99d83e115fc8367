//! Reading a PatchOp request body: bounded operation count, value counts and path lengths, each
//! operation resolved against the schema and its value parsed into the typed model before any
//! is applied.

use serde_json::{Map, Value};

use crate::scim::error::{ScimError, ScimResult, ScimType};
use crate::scim::filter::{parse_patch_path, parse_patch_path_with, AttrPath, PatchPath};
use crate::scim::limits::Limits;
use crate::scim::resource::{normalize_element, normalize_simple, normalize_value};
use crate::scim::schema::ResourceSchema;
use crate::scim::value::ScimValue;

use super::{AttrTarget, OpKind, PatchOperation, PatchTarget};

/// Parses a PatchOp request against `schema`. Lenient where IdPs differ from the RFC: op
/// names in any case (Entra sends "Replace"), `Operations` in any case, an empty path meaning
/// no path. Bounded by `limits` before any operation is read further: the number of
/// operations, each path like a filter, and the values of each array (member ids by
/// `max_members`, others by `max_values_per_attribute`), so that applying them stays cheap.
pub fn parse_patch_request(
    body: &Value,
    schema: &ResourceSchema,
    limits: &Limits,
) -> ScimResult<Vec<PatchOperation>> {
    let Value::Object(obj) = body else {
        return Err(ScimError::invalid_syntax(
            "the PATCH body must be a JSON object",
        ));
    };
    let ops = get_ci(obj, "Operations").ok_or_else(|| {
        ScimError::invalid_syntax("the PATCH body needs an 'Operations' array (RFC 7644 §3.5.2)")
    })?;
    let Value::Array(ops) = ops else {
        return Err(ScimError::invalid_syntax("'Operations' must be an array"));
    };
    if ops.is_empty() {
        return Err(ScimError::invalid_value(
            "'Operations' must hold at least one operation",
        ));
    }
    if ops.len() > limits.patch_max_operations {
        return Err(ScimError::bad_request(
            ScimType::TooMany,
            format!(
                "{} operations in one PATCH; the server accepts at most {} (limits.patch_max_operations): send them in several requests",
                ops.len(),
                limits.patch_max_operations
            ),
        ));
    }
    let mut out = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        parse_operation(i, op, schema, limits, &mut out)?;
    }
    Ok(out)
}

/// A member of a JSON object by name in any case.
fn get_ci<'m>(map: &'m Map<String, Value>, key: &str) -> Option<&'m Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn parse_operation(
    i: usize,
    op: &Value,
    schema: &ResourceSchema,
    limits: &Limits,
    out: &mut Vec<PatchOperation>,
) -> ScimResult<()> {
    let Value::Object(o) = op else {
        return Err(ScimError::invalid_syntax(format!(
            "Operations[{i}] must be an object"
        )));
    };
    let kind = op_kind(i, o)?;
    let path = match get_ci(o, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(parse_patch_path_with(s, limits).map_err(|e| {
            // the path may be huge: quote only its start
            let shown: String = s.chars().take(64).collect();
            let more = if shown.len() < s.len() { "…" } else { "" };
            ScimError::invalid_path(format!("Operations[{i}].path \"{shown}{more}\": {e}"))
        })?),
        Some(_) => {
            return Err(ScimError::invalid_path(format!(
                "Operations[{i}].path must be a string"
            )))
        }
    };
    let value = get_ci(o, "value");
    if kind != OpKind::Remove && value.is_none() {
        return Err(ScimError::invalid_value(format!(
            "Operations[{i}] ({kind:?}) needs a 'value'"
        )));
    }
    if kind == OpKind::Remove && path.is_none() {
        return Err(ScimError::no_target(format!(
            "Operations[{i}]: 'remove' needs a 'path' naming what to remove"
        )));
    }
    check_value_counts(
        i,
        path.as_ref().map(|p| p.attr.name.as_str()),
        value,
        limits,
    )?;
    match path {
        Some(path) => resolve(kind, &path, value, schema, out),
        None => {
            let Some(Value::Object(obj)) = value else {
                return Err(ScimError::invalid_value(
                    "an operation without 'path' needs an object 'value' naming the attributes",
                ));
            };
            for (key, v) in obj {
                if key.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                // dotted paths, URN-qualified names and whole extensions alike
                let path = parse_patch_path(key)
                    .map_err(|e| ScimError::invalid_path(format!("value key \"{key}\": {e}")))?;
                resolve(kind, &path, Some(v), schema, out)?;
            }
            Ok(())
        }
    }
}

fn op_kind(i: usize, o: &Map<String, Value>) -> ScimResult<OpKind> {
    match get_ci(o, "op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
    {
        Some(k) if k == "add" => Ok(OpKind::Add),
        Some(k) if k == "replace" => Ok(OpKind::Replace),
        Some(k) if k == "remove" => Ok(OpKind::Remove),
        other => Err(ScimError::invalid_syntax(format!(
            "Operations[{i}].op must be \"add\", \"replace\" or \"remove\", got {}",
            other
                .map(|s| format!("\"{s}\""))
                .unwrap_or_else(|| "nothing".into())
        ))),
    }
}

/// Resolves `path` against the schema and parses `value` into the type it takes, pushing the
/// operations it makes (a whole extension's value makes one per attribute).
fn resolve(
    op: OpKind,
    path: &PatchPath,
    value: Option<&Value>,
    schema: &ResourceSchema,
    out: &mut Vec<PatchOperation>,
) -> ScimResult<()> {
    // A path naming a whole extension (`urn:…:enterprise:2.0:User`) targets its attributes.
    if let (Some(urn), None, None) = (&path.attr.urn, &path.attr.sub, &path.filter) {
        if let Some(ext) = schema.extension(&format!("{urn}:{}", path.attr.name)) {
            return resolve_extension(op, ext.id, value, schema, out);
        }
    }
    let (container, def) = schema
        .resolve(path.attr.urn.as_deref(), &path.attr.name)
        .ok_or_else(|| {
            ScimError::invalid_path(format!("no attribute '{}' in the schema", path.attr))
        })?;
    let sub = match path.attr.sub.as_ref().or(path.sub_after_filter.as_ref()) {
        Some(s) => Some(def.sub(s).ok_or_else(|| {
            ScimError::invalid_path(format!("'{}' has no sub-attribute '{s}'", def.name))
        })?),
        None => None,
    };
    if path.filter.is_some() && !def.multi_valued {
        return Err(ScimError::invalid_path(format!(
            "'{}' is single-valued: a value filter cannot select from it",
            def.name
        )));
    }
    let target = AttrTarget {
        container,
        def,
        filter: path.filter.clone(),
        sub,
        shown: display_path(path),
    };
    let value = match value {
        Some(v) => typed_value(op, &target, v)?,
        None => None,
    };
    out.push(PatchOperation {
        op,
        target: PatchTarget::Attribute(target),
        value,
    });
    Ok(())
}

/// An operation on a whole extension: a remove drops it, an add or replace is one
/// operation per attribute its value holds.
fn resolve_extension(
    op: OpKind,
    urn: &'static str,
    value: Option<&Value>,
    schema: &ResourceSchema,
    out: &mut Vec<PatchOperation>,
) -> ScimResult<()> {
    match (op, value) {
        (OpKind::Remove, _) => {
            out.push(PatchOperation {
                op,
                target: PatchTarget::Extension(urn),
                value: None,
            });
            Ok(())
        }
        (_, Some(Value::Object(attrs))) => {
            for (k, v) in attrs {
                if k.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                let sub_path = PatchPath {
                    attr: AttrPath {
                        urn: Some(urn.to_owned()),
                        name: k.clone(),
                        sub: None,
                    },
                    filter: None,
                    sub_after_filter: None,
                };
                resolve(op, &sub_path, Some(v), schema, out)?;
            }
            Ok(())
        }
        _ => Err(ScimError::invalid_value(format!(
            "'{urn}' needs an object holding the extension's attributes"
        ))),
    }
}

/// `v` in the type `t` takes: a simple value for a sub-attribute, one element for a filtered
/// path, the attribute's value otherwise. `None` is no value (null, `""`, `[]`).
fn typed_value(op: OpKind, t: &AttrTarget, v: &Value) -> ScimResult<Option<ScimValue>> {
    let (def, shown) = (t.def, t.shown.as_str());
    Ok(match (op, t.sub, &t.filter) {
        // a remove takes a value only for a whole multi-valued attribute (removal by value)
        (OpKind::Remove, Some(_), _) | (OpKind::Remove, None, Some(_)) => None,
        (OpKind::Remove, None, None) if !def.multi_valued => None,
        // a remove by value that names none removes none (not all)
        (OpKind::Remove, None, None) => {
            Some(normalize_value(def, v, shown)?.unwrap_or(ScimValue::Multi(Vec::new())))
        }
        (_, Some(sd), _) => normalize_simple(sd, v, shown)?
            .filter(|s| !s.is_empty_text())
            .map(ScimValue::Simple),
        // The value for a filtered multi-valued path is one element, not an array.
        (_, None, Some(_)) => normalize_element(def, v, shown)?.map(ScimValue::Complex),
        (_, None, None) => normalize_value(def, v, shown)?
            .filter(|v| v.as_simple().is_none_or(|s| !s.is_empty_text())),
    })
}

fn display_path(path: &PatchPath) -> String {
    let mut s = path.attr.to_string();
    if path.filter.is_some() {
        s.push_str("[…]");
    }
    if let Some(sub) = &path.sub_after_filter {
        s.push('.');
        s.push_str(sub);
    }
    s
}

/// Arrays in an operation's value stay within the limits: `members` by `max_members`, any
/// other attribute by `max_values_per_attribute` (a path-less value is checked per key).
fn check_value_counts(
    i: usize,
    attr: Option<&str>,
    value: Option<&Value>,
    limits: &Limits,
) -> ScimResult<()> {
    let check = |name: &str, v: &Value| -> ScimResult<()> {
        let Value::Array(items) = v else {
            return Ok(());
        };
        let (max, key) = if name.eq_ignore_ascii_case("members") {
            (limits.max_members, "limits.max_members_per_request")
        } else {
            (
                limits.max_values_per_attribute,
                "limits.max_values_per_attribute",
            )
        };
        if items.len() > max {
            return Err(ScimError::bad_request(
                ScimType::TooMany,
                format!(
                    "Operations[{i}]: {} values for '{name}'; the server accepts at most {max} in one request ({key}): split the change",
                    items.len()
                ),
            ));
        }
        Ok(())
    };
    match (attr, value) {
        (Some(name), Some(v)) => check(name, v),
        (None, Some(Value::Object(m))) => m.iter().try_for_each(|(k, v)| {
            // `urn:…:User:emails` names emails
            let name = k.rsplit(':').next().unwrap_or(k);
            check(name, v)
        }),
        _ => Ok(()),
    }
}
