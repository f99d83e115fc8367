//! Evaluating a filter against a typed resource (or one value of a multi-valued attribute),
//! and the ordering `sortBy` uses.

use std::cmp::Ordering;

use crate::scim::value::{Attributes, Complex, Resource, ScimValue, Simple};

use super::{AttrPath, CompValue, CompareOp, Filter};

/// One value a path finds: a simple value, or an element of a multi-valued (or a complex)
/// attribute when the path names no sub-attribute.
#[derive(Debug, Clone, Copy)]
pub enum Found<'v> {
    Simple(&'v Simple),
    Complex(&'v Complex),
}

impl<'v> Found<'v> {
    /// A complex value compares through its `value` sub-attribute (`emails co "x"` means
    /// `emails.value co "x"`, RFC 7644 §3.4.2.2).
    fn comparable(self) -> Option<&'v Simple> {
        match self {
            Found::Simple(s) => Some(s),
            Found::Complex(c) => c.get("value"),
        }
    }
}

/// What a filter is evaluated against: a resource, or one value of a multi-valued attribute
/// inside a value filter (`emails[type eq "work"]`), whose paths name its sub-attributes.
pub trait Filterable {
    /// Every value at `path`, flattening multi-valued attributes.
    fn values_at(&self, path: &AttrPath) -> Vec<Found<'_>>;
}

impl Filterable for Complex {
    fn values_at(&self, path: &AttrPath) -> Vec<Found<'_>> {
        match (&path.sub, self.get(&path.name)) {
            (None, Some(v)) => vec![Found::Simple(v)],
            _ => Vec::new(),
        }
    }
}

impl Filterable for Resource {
    fn values_at(&self, path: &AttrPath) -> Vec<Found<'_>> {
        let attrs = match &path.urn {
            // core-schema URN: the attributes sit at the top level
            Some(urn)
                if !urn
                    .to_ascii_lowercase()
                    .starts_with("urn:ietf:params:scim:schemas:core:") =>
            {
                self.extension(urn)
            }
            _ => self.core_attrs(),
        };
        attrs.map_or_else(Vec::new, |a| values_in(a, path))
    }
}

fn values_in<'v>(attrs: &'v Attributes, path: &AttrPath) -> Vec<Found<'v>> {
    let Some(v) = attrs.get(&path.name) else {
        return Vec::new();
    };
    match (v, &path.sub) {
        (ScimValue::Simple(s), None) => vec![Found::Simple(s)],
        (ScimValue::Simple(_), Some(_)) => Vec::new(),
        (ScimValue::Complex(c), None) => vec![Found::Complex(c)],
        (ScimValue::Complex(c), Some(sub)) => c.get(sub).map(Found::Simple).into_iter().collect(),
        (ScimValue::Multi(items), None) => items.iter().map(Found::Complex).collect(),
        (ScimValue::Multi(items), Some(sub)) => items
            .iter()
            .filter_map(|c| c.get(sub))
            .map(Found::Simple)
            .collect(),
    }
}

/// Evaluates `filter` against `target`. `case_exact` tells, for a path, whether strings
/// compare case-sensitively.
pub fn matches<T: Filterable + ?Sized>(
    filter: &Filter,
    target: &T,
    case_exact: &dyn Fn(&AttrPath) -> bool,
) -> bool {
    match filter {
        // recursion depth is the filter's nesting, bounded by the parser
        Filter::And(parts) => parts.iter().all(|f| matches(f, target, case_exact)),
        Filter::Or(parts) => parts.iter().any(|f| matches(f, target, case_exact)),
        Filter::Not(a) => !matches(a, target, case_exact),
        Filter::Present(p) => target.values_at(p).into_iter().any(|v| match v {
            Found::Simple(s) => !s.is_empty_text(),
            Found::Complex(c) => c.get("value").map_or(!c.is_empty(), |s| !s.is_empty_text()),
        }),
        Filter::Compare(p, op, cv) => {
            let exact = case_exact(p);
            let vals: Vec<Option<&Simple>> = target
                .values_at(p)
                .into_iter()
                .map(Found::comparable)
                .collect();
            if *op == CompareOp::Ne {
                return !vals.iter().any(|v| compare(*v, CompareOp::Eq, cv, exact));
            }
            vals.iter().any(|v| compare(*v, *op, cv, exact))
        }
        Filter::ValuePath(p, inner) => target.values_at(p).into_iter().any(|v| {
            let nested = |sp: &AttrPath| {
                case_exact(&AttrPath {
                    urn: p.urn.clone(),
                    name: p.name.clone(),
                    sub: Some(sp.name.clone()),
                })
            };
            match v {
                Found::Complex(c) => matches(inner, c, &nested),
                Found::Simple(_) => false,
            }
        }),
    }
}

/// The value `sortBy` orders by (RFC 7644 §3.4.2.3): the attribute's value, or for a
/// multi-valued attribute the primary (else first) value's `value`.
pub fn sort_value<'v, T: Filterable>(target: &'v T, path: &AttrPath) -> Option<&'v Simple> {
    let vals = target.values_at(path);
    let first = vals
        .iter()
        .find(|v| matches!(v, Found::Complex(c) if c.is_primary()))
        .or(vals.first())
        .copied()?;
    first.comparable()
}

/// Orders two resources by `path` for `sortBy`. A resource without a value orders after
/// every value (RFC 7644 §3.4.2.3: last when ascending, first when descending), as LDAP's
/// server-side sort does.
pub fn compare_for_sort<T: Filterable>(
    a: &T,
    b: &T,
    path: &AttrPath,
    case_exact: bool,
) -> Ordering {
    let key = |v: &T| -> Option<Simple> {
        sort_value(v, path).map(|x| match x.as_str() {
            Some(s) if !case_exact => Simple::String(s.to_lowercase()),
            Some(s) => Simple::String(s.to_owned()),
            None => x.clone(),
        })
    };
    match (key(a), key(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(Simple::String(x)), Some(Simple::String(y))) => x.cmp(&y),
        (Some(Simple::Boolean(x)), Some(Simple::Boolean(y))) => x.cmp(&y),
        _ => Ordering::Equal,
    }
}

fn compare(v: Option<&Simple>, op: CompareOp, cv: &CompValue, case_exact: bool) -> bool {
    use CompareOp::*;
    match (v, cv) {
        (Some(Simple::Boolean(b)), CompValue::Bool(c)) => match op {
            Eq => b == c,
            Ne => b != c,
            _ => false,
        },
        (Some(s), CompValue::Str(c)) if s.as_str().is_some() => {
            let s = s.as_str().unwrap_or_default();
            let (s, c) = if case_exact {
                (s.to_owned(), c.clone())
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
        _ => op == Ne,
    }
}
