//! Evaluating a filter against a JSON resource (or one value of a multi-valued attribute),
//! and the ordering `sortBy` uses.

use serde_json::Value;

use super::{AttrPath, CompValue, CompareOp, Filter};

/// Evaluates `filter` against one JSON object (a resource, or one value of a multi-valued
/// attribute inside a value filter). `case_exact` tells, for a path, whether strings compare
/// case-sensitively.
pub fn matches(filter: &Filter, obj: &Value, case_exact: &dyn Fn(&AttrPath) -> bool) -> bool {
    match filter {
        // recursion depth is the filter's nesting, bounded by the parser
        Filter::And(parts) => parts.iter().all(|f| matches(f, obj, case_exact)),
        Filter::Or(parts) => parts.iter().any(|f| matches(f, obj, case_exact)),
        Filter::Not(a) => !matches(a, obj, case_exact),
        Filter::Present(p) => values_at(obj, p)
            .into_iter()
            .map(comparable)
            .any(|v| match v {
                Value::Null => false,
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                _ => true,
            }),
        Filter::Compare(p, op, cv) => {
            let exact = case_exact(p);
            let vals: Vec<&Value> = values_at(obj, p).into_iter().map(comparable).collect();
            if *op == CompareOp::Ne {
                return !vals.iter().any(|v| compare(v, CompareOp::Eq, cv, exact));
            }
            vals.iter().any(|v| compare(v, *op, cv, exact))
        }
        Filter::ValuePath(p, inner) => values_at(obj, p).iter().any(|v| {
            let nested = |sp: &AttrPath| {
                case_exact(&AttrPath {
                    urn: p.urn.clone(),
                    name: p.name.clone(),
                    sub: Some(sp.name.clone()),
                })
            };
            matches(inner, v, &nested)
        }),
    }
}

/// The value `sortBy` orders by (RFC 7644 §3.4.2.3): the attribute's value, or for a
/// multi-valued attribute the primary (else first) value's `value`.
pub fn sort_value<'v>(obj: &'v Value, path: &AttrPath) -> Option<&'v Value> {
    let vals = values_at(obj, path);
    let first = vals
        .iter()
        .find(|v| v.get("primary") == Some(&Value::Bool(true)))
        .or(vals.first())
        .copied()?;
    match first {
        Value::Object(m) if path.sub.is_none() => m.get("value"),
        other => Some(other),
    }
}

/// Orders two resources by `path` for `sortBy`. A resource without a value orders after
/// every value (RFC 7644 §3.4.2.3: last when ascending, first when descending), as LDAP's
/// server-side sort does.
pub fn compare_for_sort(
    a: &Value,
    b: &Value,
    path: &AttrPath,
    case_exact: bool,
) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let key = |v: &Value| -> Option<Value> {
        sort_value(v, path).map(|x| match x {
            Value::String(s) if !case_exact => Value::String(s.to_lowercase()),
            other => other.clone(),
        })
    };
    match (key(a), key(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(&y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(&y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        _ => Ordering::Equal,
    }
}

/// A complex value compares through its `value` sub-attribute (`emails co "x"` means
/// `emails.value co "x"`, RFC 7644 §3.4.2.2).
fn comparable(v: &Value) -> &Value {
    match v {
        Value::Object(m) => m.get("value").unwrap_or(v),
        other => other,
    }
}

/// Every value found at `path` in `obj`, flattening multi-valued attributes.
fn values_at<'v>(obj: &'v Value, path: &AttrPath) -> Vec<&'v Value> {
    let Some(map) = obj.as_object() else {
        return Vec::new();
    };
    let container = match &path.urn {
        Some(urn) => map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(urn))
            .map(|(_, v)| v)
            .and_then(Value::as_object)
            .or_else(|| {
                // core-schema URN: the attributes sit at the top level
                urn.to_ascii_lowercase()
                    .starts_with("urn:ietf:params:scim:schemas:core:")
                    .then_some(map)
            }),
        None => Some(map),
    };
    let Some(container) = container else {
        return Vec::new();
    };
    let Some(v) = get_ci(container, &path.name) else {
        return Vec::new();
    };
    let top: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    match &path.sub {
        None => top,
        Some(sub) => top
            .into_iter()
            .filter_map(|t| t.as_object().and_then(|m| get_ci(m, sub)))
            .flat_map(|v| match v {
                Value::Array(a) => a.iter().collect::<Vec<_>>(),
                other => vec![other],
            })
            .collect(),
    }
}

pub fn get_ci<'m>(map: &'m serde_json::Map<String, Value>, key: &str) -> Option<&'m Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn compare(v: &Value, op: CompareOp, cv: &CompValue, case_exact: bool) -> bool {
    use CompareOp::*;
    match (v, cv) {
        (Value::String(s), CompValue::Str(c)) => {
            let (s, c) = if case_exact {
                (s.clone(), c.clone())
            } else {
                (s.to_lowercase(), c.to_lowercase())
            };
            match op {
                Eq => s == c,
                Ne => s != c,
                Co => s.contains(&c),
                Sw => s.starts_with(&c),
                Ew => s.ends_with(&c),
                Gt => s > c,
                Ge => s >= c,
                Lt => s < c,
                Le => s <= c,
            }
        }
        (Value::Bool(b), CompValue::Bool(c)) => match op {
            Eq => b == c,
            Ne => b != c,
            _ => false,
        },
        (Value::Number(n), CompValue::Num(c)) => {
            let (Some(a), Some(b)) = (n.as_f64(), c.as_f64()) else {
                return false;
            };
            match op {
                Eq => a == b,
                Ne => a != b,
                Gt => a > b,
                Ge => a >= b,
                Lt => a < b,
                Le => a <= b,
                Co | Sw | Ew => false,
            }
        }
        (Value::Null, CompValue::Null) => op == Eq,
        _ => op == Ne,
    }
}
