//! SCIM filter → LDAP filter through the mapping. Attributes that are not mapped hold no
//! value, so comparisons on them match nothing (and `ne` everything), as in LDAP. Values of a
//! multi-valued attribute are the mapping's typed elements: `type` and `primary` inside a
//! value filter are constants of each element.

use crate::directory::LdapFilter;
use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::schema::{AttrDef, AttrType, Returned};
use crate::scim::{ScimError, ScimResult};

use super::{AttrMapping, Mapping, Target, ValueKind};

impl Mapping {
    /// Translates a parsed SCIM filter. `id_filter` builds the dialect's filter for an id.
    pub fn ldap_filter(
        &self,
        f: &Filter,
        id_filter: &dyn Fn(&str) -> Option<LdapFilter>,
    ) -> ScimResult<LdapFilter> {
        self.ldap_filter_with(f, id_filter, &|_| None)
    }

    /// As `ldap_filter`, with `hook` translating the nodes it knows (e.g. group members,
    /// whose ids the caller resolved to DNs beforehand).
    ///
    /// Where LDAP cannot say exactly the same thing (ordering on attributes LDAP may not
    /// order, case-exact SCIM attributes on case-ignoring LDAP ones), the result is a
    /// superset and `needs_recheck` says so: the caller then evaluates the filter in memory.
    pub fn ldap_filter_with(
        &self,
        f: &Filter,
        id_filter: &dyn Fn(&str) -> Option<LdapFilter>,
        hook: &dyn Fn(&Filter) -> Option<ScimResult<LdapFilter>>,
    ) -> ScimResult<LdapFilter> {
        self.tr(f, true, id_filter, hook)
    }

    /// `positive`: whether `f` sits under an even number of `not`s. An inexact comparison
    /// becomes a superset of itself where positive and "nothing" where negated, so that the
    /// whole filter stays a superset of the truth.
    fn tr(
        &self,
        f: &Filter,
        positive: bool,
        id_filter: &dyn Fn(&str) -> Option<LdapFilter>,
        hook: &dyn Fn(&Filter) -> Option<ScimResult<LdapFilter>>,
    ) -> ScimResult<LdapFilter> {
        if let Some(done) = hook(f) {
            return done;
        }
        let rec = |x: &Filter, pos: bool| self.tr(x, pos, id_filter, hook);
        match f {
            Filter::And(parts) => Ok(LdapFilter::and(
                parts
                    .iter()
                    .map(|x| rec(x, positive))
                    .collect::<ScimResult<_>>()?,
            )),
            Filter::Or(parts) => Ok(LdapFilter::or(
                parts
                    .iter()
                    .map(|x| rec(x, positive))
                    .collect::<ScimResult<_>>()?,
            )),
            Filter::Not(a) => Ok(LdapFilter::negate(rec(a, !positive)?)),
            Filter::Present(p) => self.leaf(p, None, id_filter, positive),
            Filter::Compare(p, op, v) => self.leaf(p, Some((*op, v)), id_filter, positive),
            Filter::ValuePath(p, inner) => {
                let def = self.multi_valued(p)?;
                self.over_elements(def, inner, positive)
            }
        }
    }

    /// Whether the LDAP translation of `f` may match more than `f` does, so that results
    /// must be checked against `f` in memory.
    pub fn needs_recheck(&self, f: &Filter) -> bool {
        self.recheck_in(f, None)
    }

    /// `parent`: the multi-valued attribute whose value filter `f` is inside.
    fn recheck_in(&self, f: &Filter, parent: Option<&AttrDef>) -> bool {
        match f {
            Filter::And(parts) | Filter::Or(parts) => {
                parts.iter().any(|x| self.recheck_in(x, parent))
            }
            Filter::Not(a) => self.recheck_in(a, parent),
            Filter::Present(p) => self.inexact_leaf(p, None, parent),
            Filter::Compare(p, op, _) => self.inexact_leaf(p, Some(*op), parent),
            Filter::ValuePath(p, inner) => match self.schema.resolve(p.urn.as_deref(), &p.name) {
                Some((_, def)) => self.recheck_in(inner, Some(def)),
                None => false,
            },
        }
    }

    /// Ordering comparisons (LDAP may have no ordering rule) and case-exact attributes
    /// (LDAP may ignore case) are translated to supersets.
    fn inexact_leaf(&self, p: &AttrPath, op: Option<CompareOp>, parent: Option<&AttrDef>) -> bool {
        let def = match parent {
            Some(parent) => parent.sub(&p.name),
            None => self
                .schema
                .resolve(p.urn.as_deref(), &p.name)
                .map(|(_, d)| {
                    let sub = p.sub.as_deref().or(d.multi_valued.then_some("value"));
                    sub.and_then(|s| d.sub(s)).unwrap_or(d)
                }),
        };
        let Some(def) = def else { return false };
        if def.name == "id" || (parent.is_none() && p.name.eq_ignore_ascii_case("meta")) {
            return false;
        }
        def.case_exact || op.is_some_and(is_ordering)
    }

    fn multi_valued(&self, p: &AttrPath) -> ScimResult<&'static AttrDef> {
        let (_, def) = self.resolve(p)?;
        if !(def.multi_valued && def.ty == AttrType::Complex) {
            return Err(ScimError::invalid_filter(format!(
                "'{p}' is not multi-valued: a [value filter] cannot apply to it"
            )));
        }
        Ok(def)
    }

    fn resolve(
        &self,
        p: &AttrPath,
    ) -> ScimResult<(crate::scim::schema::Container, &'static AttrDef)> {
        self.schema
            .resolve(p.urn.as_deref(), &p.name)
            .ok_or_else(|| ScimError::invalid_filter(format!("unknown attribute '{p}'")))
    }

    fn leaf(
        &self,
        p: &AttrPath,
        cmp: Option<(CompareOp, &CompValue)>,
        id_filter: &dyn Fn(&str) -> Option<LdapFilter>,
        positive: bool,
    ) -> ScimResult<LdapFilter> {
        let (container, def) = self.resolve(p)?;
        if def.returned == Returned::Never {
            return Err(write_only(&p.to_string()));
        }
        match def.name {
            "id" => {
                return match cmp {
                    None => Ok(LdapFilter::True),
                    Some((CompareOp::Eq, CompValue::Str(id))) => {
                        Ok(id_filter(id).unwrap_or(LdapFilter::False))
                    }
                    Some((CompareOp::Ne, CompValue::Str(id))) => Ok(LdapFilter::negate(
                        id_filter(id).unwrap_or(LdapFilter::False),
                    )),
                    Some(_) => Err(ScimError::invalid_filter(
                        "'id' supports only eq and ne with a string",
                    )),
                }
            }
            "meta" => return meta_filter(p, cmp),
            "groups" => {
                return Err(ScimError::invalid_filter(format!(
                    "filtering on '{p}' is not supported yet"
                )))
            }
            _ => {}
        }
        let sub = match &p.sub {
            Some(s) => Some(def.sub(s).ok_or_else(|| {
                ScimError::invalid_filter(format!("'{}' has no sub-attribute '{s}'", def.name))
            })?),
            None => None,
        };
        if def.multi_valued && def.ty == AttrType::Complex {
            // `emails.value eq x` and `emails eq x` mean `emails[value eq x]`.
            let sub_path = AttrPath {
                urn: None,
                name: sub.map(|s| s.name).unwrap_or("value").to_owned(),
                sub: None,
            };
            let inner = match cmp {
                None => Filter::Present(sub_path),
                Some((op, v)) => Filter::Compare(sub_path, op, v.clone()),
            };
            return self.over_elements(def, &inner, positive);
        }
        let mappings: Vec<&AttrMapping> = self
            .attrs
            .iter()
            .filter(|m| match (&m.target, sub) {
                (Target::Attr { container: c, attr }, None) => {
                    *c == container && attr.name == def.name
                }
                (
                    Target::Sub {
                        container: c,
                        attr,
                        sub: ms,
                    },
                    Some(s),
                ) => *c == container && attr.name == def.name && ms.name == s.name,
                // `name pr`: any mapped part of the complex value
                (
                    Target::Sub {
                        container: c, attr, ..
                    },
                    None,
                ) => cmp.is_none() && *c == container && attr.name == def.name,
                _ => false,
            })
            .collect();
        if mappings.is_empty() {
            if def.ty == AttrType::Complex && sub.is_none() && cmp.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "'{}' is complex: compare one of its sub-attributes, e.g. {}.{}",
                    def.name,
                    def.name,
                    def.sub_attributes
                        .first()
                        .map(|s| s.name)
                        .unwrap_or("value")
                )));
            }
            return Ok(unmapped(cmp));
        }
        let parts = mappings
            .into_iter()
            .map(|m| compare_mapped(m, cmp, positive))
            .collect::<ScimResult<Vec<_>>>()?;
        Ok(LdapFilter::or(parts))
    }

    /// `attr[inner]`: some typed element of `attr` exists and satisfies `inner`.
    fn over_elements(
        &self,
        def: &'static AttrDef,
        inner: &Filter,
        positive: bool,
    ) -> ScimResult<LdapFilter> {
        let mut groups: Vec<(Option<&str>, bool, Vec<&AttrMapping>)> = Vec::new();
        for m in &self.attrs {
            if let Target::Element {
                attr,
                type_value,
                primary,
                ..
            } = &m.target
            {
                if attr.name != def.name {
                    continue;
                }
                match groups
                    .iter_mut()
                    .find(|(t, p, _)| *t == type_value.as_deref() && *p == *primary)
                {
                    Some(g) => g.2.push(m),
                    None => groups.push((type_value.as_deref(), *primary, vec![m])),
                }
            }
        }
        let mut alternatives = Vec::new();
        for (type_value, primary, members) in &groups {
            let exists = LdapFilter::or(
                members
                    .iter()
                    .map(|m| LdapFilter::Present(m.ldap.clone()))
                    .collect(),
            );
            let cond = in_element(def, inner, *type_value, *primary, members, positive)?;
            alternatives.push(LdapFilter::and(vec![exists, cond]));
        }
        // Validate the inner filter even when nothing is mapped, so typos still fail.
        if groups.is_empty() {
            in_element(def, inner, None, false, &[], positive)?;
        }
        Ok(LdapFilter::or(alternatives))
    }
}

fn in_element(
    def: &AttrDef,
    f: &Filter,
    type_value: Option<&str>,
    primary: bool,
    members: &[&AttrMapping],
    positive: bool,
) -> ScimResult<LdapFilter> {
    let rec = |x: &Filter, pos: bool| in_element(def, x, type_value, primary, members, pos);
    match f {
        Filter::And(parts) => Ok(LdapFilter::and(
            parts
                .iter()
                .map(|x| rec(x, positive))
                .collect::<ScimResult<_>>()?,
        )),
        Filter::Or(parts) => Ok(LdapFilter::or(
            parts
                .iter()
                .map(|x| rec(x, positive))
                .collect::<ScimResult<_>>()?,
        )),
        Filter::Not(a) => Ok(LdapFilter::negate(rec(a, !positive)?)),
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
fn write_only(name: &str) -> ScimError {
    ScimError::invalid_filter(format!(
        "'{name}' is write-only (returned: never): it cannot be filtered, sorted or returned"
    ))
}

fn constant(b: bool) -> LdapFilter {
    if b {
        LdapFilter::True
    } else {
        LdapFilter::False
    }
}

/// An attribute with no values: `ne` holds, everything else fails.
fn unmapped(cmp: Option<(CompareOp, &CompValue)>) -> LdapFilter {
    constant(matches!(cmp, Some((CompareOp::Ne, _))))
}

fn compare_str(value: &str, op: CompareOp, with: &str) -> bool {
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

fn is_ordering(op: CompareOp) -> bool {
    matches!(
        op,
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
    )
}

/// `meta.created` / `meta.lastModified` → the directory's timestamps (RFC 3339 → LDAP
/// GeneralizedTime, which LDAP orders exactly).
fn meta_filter(p: &AttrPath, cmp: Option<(CompareOp, &CompValue)>) -> ScimResult<LdapFilter> {
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

fn compare_mapped(
    m: &AttrMapping,
    cmp: Option<(CompareOp, &CompValue)>,
    positive: bool,
) -> ScimResult<LdapFilter> {
    let attr = m.ldap.clone();
    if let (ValueKind::Text, Some((op, _))) = (&m.kind, cmp) {
        let inexact = is_ordering(op) || m.target.leaf().case_exact;
        if inexact {
            if !positive {
                // under a `not`: a subset here is a superset once negated
                return Ok(LdapFilter::False);
            }
            match op {
                // LDAP may have no ordering rule for the attribute: fetch those that have one
                _ if is_ordering(op) => return Ok(LdapFilter::Present(attr)),
                // not-equal ignoring case would drop case variants SCIM keeps
                CompareOp::Ne => return Ok(LdapFilter::True),
                // equality/substrings ignoring case are a superset of the case-exact answer
                _ => {}
            }
        }
    }
    match &m.kind {
        ValueKind::Password => Err(write_only(&m.scim)),
        // a name compares as its code, which is what the directory holds
        ValueKind::Country { .. } => match cmp {
            None => Ok(LdapFilter::Present(attr)),
            Some((op @ (CompareOp::Eq | CompareOp::Ne), CompValue::Str(v))) => {
                let eq = match super::country::resolve(v) {
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
            Some(_) => Err(ScimError::invalid_filter(format!(
                "'{}' is a string: compare it with a \"quoted\" value",
                m.scim
            ))),
        },
        ValueKind::Text => {
            let Some((op, v)) = cmp else {
                return Ok(LdapFilter::Present(attr));
            };
            let s = match v {
                CompValue::Null => {
                    return Ok(match op {
                        CompareOp::Eq => LdapFilter::negate(LdapFilter::Present(attr)),
                        CompareOp::Ne => LdapFilter::Present(attr),
                        _ => LdapFilter::False,
                    })
                }
                CompValue::Bool(_) => {
                    return Err(ScimError::invalid_filter(format!(
                        "'{}' is a string: compare it with a \"quoted\" value",
                        m.scim
                    )))
                }
                other => other.as_text().unwrap_or_default(),
            };
            Ok(text_compare(attr, op, s))
        }
        ValueKind::Bool {
            when_true,
            when_false,
        } => {
            let false_filter = match (when_false, when_true) {
                (Some(f), _) => LdapFilter::eq(&attr, f.clone()),
                (None, Some(t)) => LdapFilter::negate(LdapFilter::eq(&attr, t.clone())),
                (None, None) => LdapFilter::False,
            };
            match cmp {
                None => Ok(LdapFilter::True),
                Some((CompareOp::Eq, CompValue::Bool(b))) => Ok(if *b {
                    LdapFilter::negate(false_filter)
                } else {
                    false_filter
                }),
                Some((CompareOp::Ne, CompValue::Bool(b))) => Ok(if *b {
                    false_filter
                } else {
                    LdapFilter::negate(false_filter)
                }),
                Some(_) => Err(ScimError::invalid_filter(format!(
                    "'{}' is a boolean: use eq or ne with true or false",
                    m.scim
                ))),
            }
        }
        ValueKind::PostalAddress => match cmp {
            None => Ok(LdapFilter::Present(attr)),
            Some((op, CompValue::Str(v))) => Ok(match super::to_postal(v) {
                Some(p) => text_compare(attr, op, p),
                None => LdapFilter::False,
            }),
            Some(_) => Err(ScimError::invalid_filter(format!(
                "'{}' is a string: compare it with a \"quoted\" value",
                m.scim
            ))),
        },
        ValueKind::UserDn => match cmp {
            None => Ok(LdapFilter::Present(attr)),
            Some(_) => Err(ScimError::invalid_filter(format!(
                "comparing '{}' is not supported yet; use pr",
                m.scim
            ))),
        },
        ValueKind::DisableBit { bit, .. } => {
            let disabled = LdapFilter::BitAnd(attr, *bit);
            match cmp {
                None => Ok(LdapFilter::True),
                Some((CompareOp::Eq, CompValue::Bool(b))) => Ok(if *b {
                    LdapFilter::negate(disabled)
                } else {
                    disabled
                }),
                Some((CompareOp::Ne, CompValue::Bool(b))) => Ok(if *b {
                    disabled
                } else {
                    LdapFilter::negate(disabled)
                }),
                Some(_) => Err(ScimError::invalid_filter(format!(
                    "'{}' is a boolean: use eq or ne with true or false",
                    m.scim
                ))),
            }
        }
    }
}

fn text_compare(attr: String, op: CompareOp, s: String) -> LdapFilter {
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
