//! One comparison of a SCIM filter as LDAP: by the attribute's kind (text, boolean, time,
//! reference, constant), `meta` times, values inside a multi-valued element, and what no LDAP
//! filter can say (false, or a recheck here).

use crate::directory::LdapFilter;
use crate::mapping::{AttrMapping, ValueKind};
use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::schema::AttrDef;
use crate::scim::{ScimError, ScimResult};

pub(super) fn in_element(
    def: &AttrDef,
    f: &Filter,
    type_value: Option<&str>,
    primary: bool,
    members: &[&AttrMapping],
    positive: bool,
) -> ScimResult<LdapFilter> {
    let rec = |x: &Filter, pos: bool| in_element(def, x, type_value, primary, members, pos);
    match f {
        Filter::And(parts) => each(parts, positive, &rec).map(LdapFilter::and),
        Filter::Or(parts) => each(parts, positive, &rec).map(LdapFilter::or),
        Filter::Not(a) => rec(a, !positive).map(LdapFilter::negate),
        Filter::ValuePath(..) => Err(ScimError::invalid_filter("value filters cannot be nested")),
        Filter::Present(p) | Filter::Compare(p, _, _) => {
            let cmp = match f {
                Filter::Compare(_, op, v) => Some((*op, v)),
                _ => None,
            };
            if p.urn.is_some() || p.sub.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "inside {}[…] name a sub-attribute, not '{p}'",
                    def.name
                )));
            }
            let sub = def.sub(&p.name).ok_or_else(|| {
                ScimError::invalid_filter(format!(
                    "'{}' has no sub-attribute '{}'",
                    def.name, p.name
                ))
            })?;
            match sub.name {
                "type" => Ok(constant(match (cmp, type_value) {
                    (None, t) => t.is_some(),
                    (Some((op, CompValue::Str(s))), Some(t)) => compare_str(t, op, s),
                    (Some((CompareOp::Ne, _)), None) => true,
                    _ => false,
                })),
                "primary" => Ok(constant(match cmp {
                    None => primary,
                    Some((CompareOp::Eq, CompValue::Bool(b))) => primary == *b,
                    Some((CompareOp::Ne, CompValue::Bool(b))) => primary != *b,
                    _ => false,
                })),
                _ => match members.iter().find(|m| m.target.leaf().name == sub.name) {
                    Some(m) => compare_mapped(m, cmp, positive),
                    None => Ok(unmapped(cmp)),
                },
            }
        }
    }
}

/// 400 for a filter on a write-only attribute: filtering on a password would test a guess
/// against every account at once.
pub(super) fn write_only(name: &str) -> ScimError {
    ScimError::invalid_filter(format!(
        "'{name}' is write-only (returned: never): it cannot be filtered, sorted or returned"
    ))
}

pub(super) fn constant(b: bool) -> LdapFilter {
    if b {
        LdapFilter::True
    } else {
        LdapFilter::False
    }
}

/// An attribute with no values: `ne` holds, everything else fails.
pub(super) fn unmapped(cmp: Option<(CompareOp, &CompValue)>) -> LdapFilter {
    constant(matches!(cmp, Some((CompareOp::Ne, _))))
}

pub(super) fn compare_str(value: &str, op: CompareOp, with: &str) -> bool {
    let (a, b) = (value.to_lowercase(), with.to_lowercase());
    match op {
        CompareOp::Eq => a == b,
        CompareOp::Ne => a != b,
        CompareOp::Co => a.contains(&b),
        CompareOp::Sw => a.starts_with(&b),
        CompareOp::Ew => a.ends_with(&b),
        CompareOp::Gt => a > b,
        CompareOp::Ge => a >= b,
        CompareOp::Lt => a < b,
        CompareOp::Le => a <= b,
    }
}

pub(super) fn is_ordering(op: CompareOp) -> bool {
    matches!(
        op,
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
    )
}

/// `meta.created` / `meta.lastModified` → the directory's timestamps (RFC 3339 → LDAP
/// GeneralizedTime, which LDAP orders exactly).
pub(super) fn meta_filter(
    p: &AttrPath,
    cmp: Option<(CompareOp, &CompValue)>,
) -> ScimResult<LdapFilter> {
    let attr = match p.sub.as_deref() {
        Some(s) if s.eq_ignore_ascii_case("created") => "createTimestamp",
        Some(s) if s.eq_ignore_ascii_case("lastModified") => "modifyTimestamp",
        _ => {
            return Err(ScimError::invalid_filter(format!(
                "'{p}': filter on meta.created or meta.lastModified"
            )))
        }
    };
    let Some((op, v)) = cmp else {
        return Ok(LdapFilter::Present(attr.to_owned()));
    };
    let CompValue::Str(t) = v else {
        return Err(ScimError::invalid_filter(format!(
            "'{p}' compares with a \"dateTime\" string"
        )));
    };
    let when = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            ScimError::invalid_filter(format!("'{p}': \"{t}\" is not an RFC 3339 dateTime ({e})"))
        })?
        .to_offset(time::UtcOffset::UTC);
    let g = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        when.year(),
        u8::from(when.month()),
        when.day(),
        when.hour(),
        when.minute(),
        when.second()
    );
    let a = attr.to_owned();
    Ok(match op {
        CompareOp::Eq => LdapFilter::Eq(a, g),
        CompareOp::Ne => LdapFilter::negate(LdapFilter::Eq(a, g)),
        CompareOp::Ge => LdapFilter::Ge(a, g),
        CompareOp::Le => LdapFilter::Le(a, g),
        CompareOp::Gt => LdapFilter::and(vec![
            LdapFilter::Ge(a.clone(), g.clone()),
            LdapFilter::negate(LdapFilter::Eq(a, g)),
        ]),
        CompareOp::Lt => LdapFilter::and(vec![
            LdapFilter::Present(a.clone()),
            LdapFilter::negate(LdapFilter::Ge(a, g)),
        ]),
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => {
            return Err(ScimError::invalid_filter(format!(
                "'{p}' is a dateTime: use eq, ne, gt, ge, lt or le"
            )))
        }
    })
}

pub(super) fn compare_mapped(
    m: &AttrMapping,
    cmp: Option<(CompareOp, &CompValue)>,
    positive: bool,
) -> ScimResult<LdapFilter> {
    let attr = m.ldap.to_string();
    if let Some(superset) = inexact_text(m, cmp, positive) {
        return Ok(superset);
    }
    let not_a_string = || {
        ScimError::invalid_filter(format!(
            "'{}' is a string: compare it with a \"quoted\" value",
            m.scim
        ))
    };
    match &m.kind {
        ValueKind::Password => Err(write_only(&m.scim)),
        // a name compares as its code, which is what the directory holds
        ValueKind::Country { .. } => match cmp {
            None => Ok(LdapFilter::Present(attr)),
            Some((op @ (CompareOp::Eq | CompareOp::Ne), CompValue::Str(v))) => {
                let eq = match crate::mapping::country::resolve(v) {
                    Some(c) => LdapFilter::Eq(attr, c.code),
                    None => LdapFilter::False,
                };
                Ok(if op == CompareOp::Eq {
                    eq
                } else {
                    LdapFilter::negate(eq)
                })
            }
            Some((op, CompValue::Str(v))) => Ok(text_compare(attr, op, v.clone())),
            Some(_) => Err(not_a_string()),
        },
        ValueKind::Text => match cmp {
            None => Ok(LdapFilter::Present(attr)),
            Some((op, CompValue::Null)) => Ok(match op {
                CompareOp::Eq => LdapFilter::negate(LdapFilter::Present(attr)),
                CompareOp::Ne => LdapFilter::Present(attr),
                _ => LdapFilter::False,
            }),
            Some((_, CompValue::Bool(_))) => Err(not_a_string()),
            Some((op, v)) => Ok(text_compare(attr, op, v.as_text().unwrap_or_default())),
        },
        ValueKind::Bool {
            when_true,
            when_false,
        } => {
            let inactive = match (when_false, when_true) {
                (Some(f), _) => LdapFilter::eq(&attr, f.clone()),
                (None, Some(t)) => LdapFilter::negate(LdapFilter::eq(&attr, t.clone())),
                (None, None) => LdapFilter::False,
            };
            boolean(m, inactive, cmp)
        }
        ValueKind::DisableBit { bit, .. } => boolean(m, LdapFilter::BitAnd(attr, *bit), cmp),
        ValueKind::PostalAddress => match cmp {
            None => Ok(LdapFilter::Present(attr)),
            Some((op, CompValue::Str(v))) => Ok(match crate::mapping::to_postal(v) {
                Some(p) => text_compare(attr, op, p),
                None => LdapFilter::False,
            }),
            Some(_) => Err(not_a_string()),
        },
        ValueKind::UserDn => match cmp {
            None => Ok(LdapFilter::Present(attr)),
            Some(_) => Err(ScimError::invalid_filter(format!(
                "comparing '{}' is not supported yet; use pr",
                m.scim
            ))),
        },
    }
}

/// For a text comparison LDAP cannot answer exactly (an ordering, which the attribute may
/// have no rule for; a case-exact attribute, which LDAP compares ignoring case), a superset
/// the in-memory recheck narrows: or, under a `not` (where a subset would become a
/// superset), nothing.
fn inexact_text(
    m: &AttrMapping,
    cmp: Option<(CompareOp, &CompValue)>,
    positive: bool,
) -> Option<LdapFilter> {
    let (ValueKind::Text, Some((op, _))) = (&m.kind, cmp) else {
        return None;
    };
    if !(is_ordering(op) || m.target.leaf().case_exact) {
        return None;
    }
    if !positive {
        return Some(LdapFilter::False);
    }
    match op {
        // LDAP may have no ordering rule for the attribute: fetch those that have one
        _ if is_ordering(op) => Some(LdapFilter::Present(m.ldap.to_string())),
        // not-equal ignoring case would drop case variants SCIM keeps
        CompareOp::Ne => Some(LdapFilter::True),
        // equality/substrings ignoring case are a superset of the case-exact answer
        _ => None,
    }
}

/// A boolean attribute stored as `inactive` (the filter matching false).
fn boolean(
    m: &AttrMapping,
    inactive: LdapFilter,
    cmp: Option<(CompareOp, &CompValue)>,
) -> ScimResult<LdapFilter> {
    match cmp {
        None => Ok(LdapFilter::True),
        Some((op @ (CompareOp::Eq | CompareOp::Ne), CompValue::Bool(b))) => {
            // `eq true` and `ne false` ask for the values that are not inactive
            Ok(if *b == (op == CompareOp::Eq) {
                LdapFilter::negate(inactive)
            } else {
                inactive
            })
        }
        Some(_) => Err(ScimError::invalid_filter(format!(
            "'{}' is a boolean: use eq or ne with true or false",
            m.scim
        ))),
    }
}

pub(super) fn text_compare(attr: String, op: CompareOp, s: String) -> LdapFilter {
    if s.is_empty() && matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
        return LdapFilter::Present(attr);
    }
    match op {
        CompareOp::Eq => LdapFilter::Eq(attr, s),
        CompareOp::Ne => LdapFilter::negate(LdapFilter::Eq(attr, s)),
        CompareOp::Co => LdapFilter::Substring {
            attr,
            initial: None,
            any: vec![s],
            last: None,
        },
        CompareOp::Sw => LdapFilter::Substring {
            attr,
            initial: Some(s),
            any: vec![],
            last: None,
        },
        CompareOp::Ew => LdapFilter::Substring {
            attr,
            initial: None,
            any: vec![],
            last: Some(s),
        },
        CompareOp::Ge => LdapFilter::Ge(attr, s),
        CompareOp::Le => LdapFilter::Le(attr, s),
        CompareOp::Gt => LdapFilter::and(vec![
            LdapFilter::Ge(attr.clone(), s.clone()),
            LdapFilter::negate(LdapFilter::Eq(attr, s)),
        ]),
        CompareOp::Lt => LdapFilter::and(vec![
            LdapFilter::Present(attr.clone()),
            LdapFilter::negate(LdapFilter::Ge(attr, s)),
        ]),
    }
}

/// `id eq "…"` and `id ne "…"`, through the dialect's id filter (`id pr` is every entry).
pub(super) fn id_term(
    cmp: Option<(CompareOp, &CompValue)>,
    id_filter: &dyn Fn(&str) -> Option<LdapFilter>,
) -> ScimResult<LdapFilter> {
    let by_id = |id: &str| id_filter(id).unwrap_or(LdapFilter::False);
    match cmp {
        None => Ok(LdapFilter::True),
        Some((CompareOp::Eq, CompValue::Str(id))) => Ok(by_id(id)),
        Some((CompareOp::Ne, CompValue::Str(id))) => Ok(LdapFilter::negate(by_id(id))),
        Some(_) => Err(ScimError::invalid_filter(
            "'id' supports only eq and ne with a string",
        )),
    }
}

/// The parts of an `and` or `or`, each translated by `rec` (told whether it stands under
/// an even number of `not`s).
pub(super) fn each(
    parts: &[Filter],
    positive: bool,
    rec: &dyn Fn(&Filter, bool) -> ScimResult<LdapFilter>,
) -> ScimResult<Vec<LdapFilter>> {
    parts.iter().map(|x| rec(x, positive)).collect()
}
