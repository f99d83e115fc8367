//! Reading a PatchOp request body: bounded operation count, value counts and path lengths, each
//! operation checked before any is applied.

use serde_json::Value;

use crate::scim::error::{ScimError, ScimResult, ScimType};
use crate::scim::filter::{get_ci, parse_patch_path_with};
use crate::scim::limits::Limits;

use super::{OpKind, PatchOperation};

/// Parses a PatchOp request. Lenient where IdPs differ from the RFC: op names in any case
/// (Entra sends "Replace"), `Operations` in any case, an empty path meaning no path. Bounded
/// by `limits` before any operation is applied: the number of operations, each path like a
/// filter, and the values of each array (member ids by `max_members`, others by
/// `max_values_per_attribute`), so that applying them stays cheap.
pub fn parse_patch_request(body: &Value, limits: &Limits) -> ScimResult<Vec<PatchOperation>> {
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
    ops.iter()
        .enumerate()
        .map(|(i, op)| parse_operation(i, op, limits))
        .collect()
}

fn parse_operation(i: usize, op: &Value, limits: &Limits) -> ScimResult<PatchOperation> {
    let Value::Object(o) = op else {
        return Err(ScimError::invalid_syntax(format!(
            "Operations[{i}] must be an object"
        )));
    };
    let kind = match get_ci(o, "op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
    {
        Some(k) if k == "add" => OpKind::Add,
        Some(k) if k == "replace" => OpKind::Replace,
        Some(k) if k == "remove" => OpKind::Remove,
        other => {
            return Err(ScimError::invalid_syntax(format!(
                "Operations[{i}].op must be \"add\", \"replace\" or \"remove\", got {}",
                other
                    .map(|s| format!("\"{s}\""))
                    .unwrap_or_else(|| "nothing".into())
            )))
        }
    };
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
    let value = get_ci(o, "value").cloned();
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
        value.as_ref(),
        limits,
    )?;
    Ok(PatchOperation {
        op: kind,
        path,
        value,
    })
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
