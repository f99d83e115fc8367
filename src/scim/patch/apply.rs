//! Applying PATCH operations to a resource (RFC 7644 §3.5.2): add, replace and remove at a path,
//! with value filters, on single-valued and multi-valued attributes, with the IdPs' own dialects.

use serde_json::{Map, Value};

use crate::scim::error::{ScimError, ScimResult};
use crate::scim::filter::{
    matches, parse_patch_path, AttrPath, CompValue, CompareOp, Filter, PatchPath,
};
use crate::scim::resource::normalize_value;
use crate::scim::schema::{container_mut, AttrDef, Mutability, ResourceSchema};

use super::{OpKind, PatchOperation};

/// Applies `ops` in order to `resource` (normalised, canonical names), whose id is `id`.
pub fn apply_patch(
    resource: &mut Map<String, Value>,
    ops: &[PatchOperation],
    schema: &ResourceSchema,
    id: &str,
) -> ScimResult<()> {
    for op in ops {
        match &op.path {
            Some(path) => apply_at(resource, op.op, path, op.value.as_ref(), schema, id)?,
            None => {
                let Some(Value::Object(obj)) = &op.value else {
                    return Err(ScimError::invalid_value(
                        "an operation without 'path' needs an object 'value' naming the attributes",
                    ));
                };
                for (key, v) in obj {
                    if key.eq_ignore_ascii_case("schemas") {
                        continue;
                    }
                    // dotted paths, URN-qualified names and whole extensions alike
                    let path = parse_patch_path(key).map_err(|e| {
                        ScimError::invalid_path(format!("value key \"{key}\": {e}"))
                    })?;
                    apply_at(resource, op.op, &path, Some(v), schema, id)?;
                }
            }
        }
    }
    // Drop extension objects the operations emptied.
    resource.retain(|_, v| !matches!(v, Value::Object(m) if m.is_empty()));
    Ok(())
}

fn apply_at(
    resource: &mut Map<String, Value>,
    op: OpKind,
    path: &PatchPath,
    value: Option<&Value>,
    schema: &ResourceSchema,
    id: &str,
) -> ScimResult<()> {
    // A path naming a whole extension (`urn:…:enterprise:2.0:User`) targets its attributes.
    if let (Some(urn), None, None) = (&path.attr.urn, &path.attr.sub, &path.filter) {
        if let Some(ext) = schema.extension(&format!("{urn}:{}", path.attr.name)) {
            return match (op, value) {
                (OpKind::Remove, _) => {
                    resource.remove(ext.id);
                    Ok(())
                }
                (_, Some(Value::Object(attrs))) => {
                    for (k, v) in attrs {
                        if k.eq_ignore_ascii_case("schemas") {
                            continue;
                        }
                        let sub_path = PatchPath {
                            attr: AttrPath {
                                urn: Some(ext.id.to_owned()),
                                name: k.clone(),
                                sub: None,
                            },
                            filter: None,
                            sub_after_filter: None,
                        };
                        apply_at(resource, op, &sub_path, Some(v), schema, id)?;
                    }
                    Ok(())
                }
                _ => Err(ScimError::invalid_value(format!(
                    "'{}' needs an object holding the extension's attributes",
                    ext.id
                ))),
            };
        }
    }
    let (container, def) = schema
        .resolve(path.attr.urn.as_deref(), &path.attr.name)
        .ok_or_else(|| {
            ScimError::invalid_path(format!("no attribute '{}' in the schema", path.attr))
        })?;
    if def.mutability == Mutability::ReadOnly {
        // Okta renames a group with `{"id": <its id>, "displayName": …}`: a read-only value
        // that agrees with the resource changes nothing and is ignored (RFC 7643 §2.2)
        let current = match def.name {
            "id" => Some(Value::String(id.to_owned())),
            _ => container_mut(resource, container).get(def.name).cloned(),
        };
        let agrees = op != OpKind::Remove
            && path.filter.is_none()
            && path.attr.sub.is_none()
            && value.is_some()
            && value.cloned() == current;
        if agrees {
            return Ok(());
        }
        return Err(ScimError::mutability(format!(
            "'{}' is read-only: it cannot be changed{}",
            def.name,
            if def.name == "id" {
                " (send the resource's own id, or leave it out)"
            } else {
                ""
            }
        )));
    }
    let sub_name = path.attr.sub.as_ref().or(path.sub_after_filter.as_ref());
    let sub = match sub_name {
        Some(s) => {
            let sd = def.sub(s).ok_or_else(|| {
                ScimError::invalid_path(format!("'{}' has no sub-attribute '{s}'", def.name))
            })?;
            if sd.mutability == Mutability::ReadOnly {
                return Err(ScimError::mutability(format!(
                    "'{}.{}' is read-only",
                    def.name, sd.name
                )));
            }
            Some(sd)
        }
        None => None,
    };
    if path.filter.is_some() && !def.multi_valued {
        return Err(ScimError::invalid_path(format!(
            "'{}' is single-valued: a value filter cannot select from it",
            def.name
        )));
    }
    let shown = display_path(path);
    let value = match (op, value) {
        (OpKind::Remove, _) | (_, None) => None,
        (_, Some(v)) => {
            let target_def = sub.unwrap_or(def);
            let v = if def.multi_valued && sub.is_none() && path.filter.is_some() {
                // The value for a filtered multi-valued path is one element, not an array.
                normalize_value(def, v, &shown)?.and_then(first_of_array)
            } else {
                normalize_value(target_def, v, &shown)?
            };
            v.filter(|v| !is_empty_string(v))
        }
    };
    let target = container_mut(resource, container);
    if def.multi_valued {
        apply_multi(target, op, def, path.filter.as_ref(), sub, value, &shown)
    } else {
        apply_single(target, op, def, sub, value);
        Ok(())
    }
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

fn first_of_array(v: Value) -> Option<Value> {
    match v {
        Value::Array(a) => a.into_iter().next(),
        other => Some(other),
    }
}

fn is_empty_string(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.is_empty())
}

fn apply_single(
    target: &mut Map<String, Value>,
    op: OpKind,
    def: &AttrDef,
    sub: Option<&AttrDef>,
    value: Option<Value>,
) {
    match (sub, value) {
        (None, None) => {
            target.remove(def.name);
        }
        (None, Some(Value::Object(new))) if op != OpKind::Remove => {
            // RFC 7644 §3.5.2.3: sub-attributes not given are left unchanged.
            match target.get_mut(def.name) {
                Some(Value::Object(existing)) => {
                    for (k, v) in new {
                        existing.insert(k, v);
                    }
                }
                _ => {
                    target.insert(def.name.to_owned(), Value::Object(new));
                }
            }
        }
        (None, Some(v)) => {
            target.insert(def.name.to_owned(), v);
        }
        (Some(sd), value) => {
            let obj = target
                .entry(def.name.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !obj.is_object() {
                *obj = Value::Object(Map::new());
            }
            if let Value::Object(m) = obj {
                match value {
                    Some(v) => {
                        m.insert(sd.name.to_owned(), v);
                    }
                    None => {
                        m.remove(sd.name);
                    }
                }
                if m.is_empty() {
                    target.remove(def.name);
                }
            }
        }
    }
}

fn apply_multi(
    target: &mut Map<String, Value>,
    op: OpKind,
    def: &AttrDef,
    filter: Option<&Filter>,
    sub: Option<&AttrDef>,
    value: Option<Value>,
    shown: &str,
) -> ScimResult<()> {
    let mut items: Vec<Value> = match target.remove(def.name) {
        Some(Value::Array(a)) => a,
        Some(other) => vec![other],
        None => Vec::new(),
    };
    let case_exact = |p: &AttrPath| def.sub(&p.name).map(|d| d.case_exact).unwrap_or(false);
    let mut touched: Vec<usize> = Vec::new();
    match (filter, sub) {
        (None, None) => match op {
            OpKind::Remove => {
                // Entra removes members by value: `{"op":"remove","path":"members","value":[…]}`.
                match value_for_removal(&value) {
                    Some(gone) => items.retain(|it| !gone.iter().any(|g| same_item(it, g))),
                    None => items.clear(),
                }
            }
            OpKind::Replace => {
                items = as_items(value);
                touched = (0..items.len()).collect();
            }
            OpKind::Add => {
                for new in as_items(value) {
                    match items.iter().position(|it| same_item(it, &new)) {
                        Some(i) => {
                            if let Some(it) = items.get_mut(i) {
                                merge_into(it, new);
                            }
                            touched.push(i);
                        }
                        None => {
                            items.push(new);
                            touched.push(items.len() - 1);
                        }
                    }
                }
            }
        },
        (None, Some(sd)) => {
            if items.is_empty() {
                if let Some(v) = value {
                    let mut m = Map::new();
                    m.insert(sd.name.to_owned(), v);
                    items.push(Value::Object(m));
                }
            } else {
                for it in items.iter_mut() {
                    set_sub(it, sd, value.clone());
                }
            }
            items.retain(|it| !is_hollow(it));
        }
        (Some(f), sub) => {
            let hits: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, it)| matches(f, it, &case_exact))
                .map(|(i, _)| i)
                .collect();
            match (op, sub, value) {
                (OpKind::Remove, None, _) => {
                    let mut i = 0;
                    items.retain(|_| {
                        i += 1;
                        !hits.contains(&(i - 1))
                    });
                }
                (_, Some(sd), None) => {
                    for &i in &hits {
                        if let Some(it) = items.get_mut(i) {
                            set_sub(it, sd, None);
                        }
                    }
                    items.retain(|it| !is_hollow(it));
                }
                (_, None, None) => {}
                (op, sub, Some(v)) => {
                    if hits.is_empty() {
                        // IdPs replace `emails[type eq "work"].value` on users that have no
                        // work email yet: create the value the filter describes.
                        let mut element = template_from(f).ok_or_else(|| {
                            ScimError::no_target(format!(
                                "no value of '{shown}' matches the filter"
                            ))
                        })?;
                        match sub {
                            Some(sd) => set_sub(&mut element, sd, Some(v)),
                            None => merge_into(&mut element, v),
                        }
                        items.push(element);
                        touched.push(items.len() - 1);
                    } else {
                        for &i in &hits {
                            let Some(it) = items.get_mut(i) else { continue };
                            match sub {
                                Some(sd) => set_sub(it, sd, Some(v.clone())),
                                None if op == OpKind::Replace => {
                                    let mut element =
                                        template_from(f).unwrap_or(Value::Object(Map::new()));
                                    merge_into(&mut element, v.clone());
                                    *it = element;
                                }
                                None => merge_into(it, v.clone()),
                            }
                            touched.push(i);
                        }
                    }
                }
            }
        }
    }
    // Only one value may be primary (RFC 7643 §2.4): the one just written wins.
    let newly_primary = touched
        .iter()
        .any(|&i| items.get(i).is_some_and(is_primary));
    if newly_primary {
        for (i, it) in items.iter_mut().enumerate() {
            if !touched.contains(&i) && is_primary(it) {
                if let Value::Object(m) = it {
                    m.insert("primary".into(), Value::Bool(false));
                }
            }
        }
    }
    if !items.is_empty() {
        target.insert(def.name.to_owned(), Value::Array(items));
    }
    Ok(())
}

fn as_items(value: Option<Value>) -> Vec<Value> {
    match value {
        Some(Value::Array(a)) => a,
        Some(v) => vec![v],
        None => Vec::new(),
    }
}

fn value_for_removal(value: &Option<Value>) -> Option<Vec<Value>> {
    match value {
        Some(Value::Array(a)) if !a.is_empty() => Some(a.clone()),
        Some(v @ Value::Object(_)) => Some(vec![v.clone()]),
        _ => None,
    }
}

/// Two values of a multi-valued attribute are the same when their `value` sub-attributes are,
/// or, lacking those, when they are equal.
fn same_item(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(Value::String(x)), Some(Value::String(y))) => x.eq_ignore_ascii_case(y),
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn merge_into(target: &mut Value, new: Value) {
    match (target, new) {
        (Value::Object(t), Value::Object(n)) => {
            for (k, v) in n {
                t.insert(k, v);
            }
        }
        (t, n) => *t = n,
    }
}

fn set_sub(item: &mut Value, sd: &AttrDef, value: Option<Value>) {
    if let Value::Object(m) = item {
        match value {
            Some(v) => {
                m.insert(sd.name.to_owned(), v);
            }
            None => {
                m.remove(sd.name);
            }
        }
    }
}

/// An element left with only labels (type, primary, display) holds no data any more.
fn is_hollow(item: &Value) -> bool {
    match item {
        Value::Object(m) => m
            .keys()
            .all(|k| matches!(k.as_str(), "type" | "primary" | "display")),
        _ => false,
    }
}

fn is_primary(item: &Value) -> bool {
    item.get("primary") == Some(&Value::Bool(true))
}

/// The element a filter like `type eq "work" and primary eq true` describes, if it is a
/// conjunction of equalities.
fn template_from(f: &Filter) -> Option<Value> {
    fn collect(f: &Filter, out: &mut Map<String, Value>) -> bool {
        match f {
            Filter::And(parts) => parts.iter().all(|x| collect(x, out)),
            Filter::Compare(p, CompareOp::Eq, v) if p.sub.is_none() => {
                let v = match v {
                    CompValue::Str(s) => Value::String(s.clone()),
                    CompValue::Bool(b) => Value::Bool(*b),
                    CompValue::Num(n) => Value::Number(n.clone()),
                    CompValue::Null => return false,
                };
                out.insert(p.name.clone(), v);
                true
            }
            _ => false,
        }
    }
    let mut m = Map::new();
    (collect(f, &mut m) && !m.is_empty()).then_some(Value::Object(m))
}
