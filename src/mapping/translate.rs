//! Translating at run time with a compiled `Mapping`: directory entry → SCIM resource,
//! SCIM resource → LDAP values and the minimal changes between two states.

use super::*;
use crate::directory::{Change, Entry, Values};
use crate::scim::schema::{AttrType, Mutability, Returned};
use crate::scim::value::{Complex, Resource, ScimValue, Simple};
use crate::scim::{ScimError, ScimResult};
use std::borrow::Cow;
use std::collections::HashMap;

/// 400 `invalidValue` when `value` has more than `max` characters.
pub(super) fn check_length(what: &str, value: &str, max: usize, key: &str) -> ScimResult<()> {
    // bytes ≥ characters: short values need no count
    if value.len() <= max {
        return Ok(());
    }
    let n = value.chars().count();
    if n <= max {
        return Ok(());
    }
    Err(ScimError::invalid_value(format!(
        "'{what}' is {n} characters long; the server accepts at most {max} ({key})"
    )))
}

/// Whether the LDAP values say "inactive": the false marker is present, or (when "true" is a
/// marker and "false" is absence) the true marker is missing.
fn is_false(values: Values<'_>, when_true: Option<&str>, when_false: Option<&str>) -> bool {
    let has = |m: &str| values.iter().any(|v| v.eq_ignore_ascii_case(m));
    match (when_false, when_true) {
        (Some(f), _) => has(f),
        (None, Some(t)) => !has(t),
        (None, None) => false,
    }
}

/// The SCIM value a mapping reads from a resource.
fn scim_value<'r>(res: &'r Resource, target: &Target) -> Option<&'r Simple> {
    match target {
        Target::Attr { container, attr } => res.get(*container, attr.name)?.as_simple(),
        Target::Sub {
            container,
            attr,
            sub,
        } => res.get(*container, attr.name)?.as_complex()?.get(sub.name),
        Target::Element {
            attr,
            type_value,
            primary,
            sub,
            ..
        } => {
            let items = res.core(attr.name)?.elements();
            let by_type = |t: &str| {
                items
                    .iter()
                    .find(|it| it.str("type").is_some_and(|x| x.eq_ignore_ascii_case(t)))
            };
            let element = match type_value {
                Some(t) => by_type(t).or_else(|| {
                    // The primary mapping also takes the primary value, or a lone untyped one.
                    if !*primary {
                        return None;
                    }
                    items
                        .iter()
                        .find(|it| it.is_primary())
                        .or_else(|| match items {
                            [only] if only.get("type").is_none() => Some(only),
                            _ => None,
                        })
                }),
                None if *primary => items.iter().find(|it| it.is_primary()).or(items.first()),
                None => items.first(),
            }?;
            element.get(sub.name)
        }
    }
}

/// An LDAP value as the SCIM type `def` has.
fn typed(def: &AttrDef, text: String) -> Simple {
    match def.ty {
        AttrType::Reference => Simple::Reference(text),
        AttrType::DateTime => Simple::DateTime(text),
        _ => Simple::String(text),
    }
}

/// The `sub` of every element of `attr` in `res` (a multi-valued attribute mapped whole),
/// each within the length limit.
fn every_value(res: &Resource, attr: &str, sub: &str, m: &AttrMapping) -> ScimResult<Vec<String>> {
    let values = distinct_values(res, attr, sub)?;
    for v in &values {
        check_length(&m.scim, v, m.max_len.0, &m.max_len.1)?;
    }
    Ok(values)
}

/// The `sub` strings of the elements of multi-valued `attr` in `res`, in order, without
/// blank ones or case-insensitive repeats (one pass: a body's worth of values stays cheap).
pub fn distinct_values(res: &Resource, attr: &str, sub: &str) -> ScimResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let Some(items) = res.core(attr).map(ScimValue::elements) else {
        return Ok(out);
    };
    for it in items {
        let Some(v) = it.get(sub) else { continue };
        let Some(v) = v.as_str() else {
            return Err(ScimError::invalid_value(format!(
                "{attr}.{sub}: expected a string, got {}",
                v.to_json()
            )));
        };
        if !v.trim().is_empty() && seen.insert(v.to_lowercase()) {
            out.push(v.to_owned());
        }
    }
    Ok(out)
}

/// Whether two value lists hold the same values, ignoring order and case.
fn same_values(cur: Values<'_>, want: &[String]) -> bool {
    cur.len() == want.len()
        && want
            .iter()
            .all(|w| cur.iter().any(|c| c.eq_ignore_ascii_case(w)))
}

/// What the LDAP attribute of mapping `m` should hold for the SCIM `value` (any kind but
/// `Country`, which sets two attributes).
fn desired(
    m: &AttrMapping,
    value: Option<&Simple>,
    dn_for_user_id: &dyn Fn(&str) -> Option<String>,
) -> ScimResult<Desired> {
    let text = value.and_then(Simple::as_str);
    Ok(match (&m.kind, value, text) {
        (ValueKind::Bool { .. } | ValueKind::DisableBit { .. }, None, _) => Desired::Keep,
        (_, None, _) => Desired::Clear,
        (ValueKind::DisableBit { .. }, Some(Simple::Boolean(active)), _) => Desired::Bit(!active),
        (
            ValueKind::Bool {
                when_true,
                when_false,
            },
            Some(Simple::Boolean(b)),
            _,
        ) => match if *b { when_true } else { when_false } {
            Some(v) => Desired::Set(v.clone()),
            None => Desired::Clear,
        },
        (ValueKind::Text | ValueKind::UserDn, _, Some("")) => Desired::Clear,
        (ValueKind::Text, _, Some(s)) => {
            check_length(&m.scim, s, m.max_len.0, &m.max_len.1)?;
            Desired::Set(s.to_owned())
        }
        (ValueKind::PostalAddress, _, Some(s)) => {
            check_length(&m.scim, s, m.max_len.0, &m.max_len.1)?;
            match super::to_postal(s) {
                Some(v) => Desired::Set(v),
                None => Desired::Clear,
            }
        }
        (ValueKind::UserDn, _, Some(id)) => match dn_for_user_id(id) {
            Some(dn) => Desired::Set(dn),
            // IdPs send references to users not provisioned (yet), or in their own id
            // space (Okta's managerId): the user is still provisioned and the directory's
            // value is left as it is.
            None => {
                tracing::warn!(attribute = %m.scim, id = %id, "no user has this id; reference not stored");
                Desired::Keep
            }
        },
        (_, Some(other), _) => return Err(unexpected(m, other)),
    })
}

/// The country code and name a `Country` mapping stores for `value`.
fn country(m: &AttrMapping, value: Option<&Simple>) -> ScimResult<(Desired, Desired)> {
    let s = match value {
        None => return Ok((Desired::Clear, Desired::Clear)),
        Some(v) => v.as_str().ok_or_else(|| unexpected(m, v))?,
    };
    if s.trim().is_empty() {
        return Ok((Desired::Clear, Desired::Clear));
    }
    check_length(&m.scim, s, m.max_len.0, &m.max_len.1)?;
    let c = super::country::resolve(s).ok_or_else(|| {
        ScimError::invalid_value(format!(
            "{}: \"{}\" is not a country: send an ISO 3166 code (\"DE\") or a country's name (\"Germany\")",
            m.scim,
            crate::logging::shorten(s, 64)
        ))
    })?;
    Ok((Desired::Set(c.code), Desired::Set(c.name)))
}

fn unexpected(m: &AttrMapping, value: &Simple) -> ScimError {
    ScimError::invalid_value(format!("{}: unexpected value {}", m.scim, value.to_json()))
}

/// The element index of each (attribute, type, primary) in a resource being built, so that
/// the sub-attributes of one value land together. Keyed by the mapping's own names, so
/// foldhash, not SipHash (built for every entry shown).
type Elements<'m> = HashMap<(&'m str, Option<&'m str>, bool), usize, foldhash::fast::RandomState>;

/// Puts `value` where `target` says in `res`.
fn put<'m>(res: &mut Resource, target: &'m Target, value: Simple, elements: &mut Elements<'m>) {
    match target {
        Target::Attr { container, attr } => {
            res.set(*container, attr.name, ScimValue::Simple(value));
        }
        Target::Sub {
            container,
            attr,
            sub,
        } => {
            let attrs = res.attrs_mut(*container);
            match attrs.get_mut(attr.name) {
                Some(ScimValue::Complex(c)) => c.set(sub.name, value),
                _ => attrs.set(
                    attr.name,
                    ScimValue::Complex(Complex::new().with(sub.name, value)),
                ),
            }
        }
        Target::Element {
            attr,
            type_value,
            primary,
            sub,
            ..
        } => {
            let key = (attr.name, type_value.as_deref(), *primary);
            let attrs = res.attrs_mut(Container::Core);
            if !matches!(attrs.get(attr.name), Some(ScimValue::Multi(_))) {
                attrs.set(attr.name, ScimValue::Multi(Vec::new()));
            }
            let Some(ScimValue::Multi(arr)) = attrs.get_mut(attr.name) else {
                return;
            };
            let idx = *elements.entry(key).or_insert_with(|| {
                let mut el = Complex::new();
                if let Some(t) = type_value {
                    el.set("type", Simple::String(t.clone()));
                }
                if *primary {
                    el.set("primary", Simple::Boolean(true));
                }
                arr.push(el);
                arr.len() - 1
            });
            if let Some(el) = arr.get_mut(idx) {
                el.set(sub.name, value);
            }
        }
    }
}

impl Mapping {
    /// Builds the SCIM view of an entry. `user_id_for_dn` resolves `UserDn` values.
    pub fn to_scim(
        &self,
        entry: &Entry,
        user_id_for_dn: &dyn Fn(&str) -> Option<String>,
    ) -> Resource {
        let mut res = Resource::new();
        let mut elements = Elements::default();
        for m in &self.attrs {
            if m.target.leaf().returned == Returned::Never {
                continue;
            }
            if let Target::Element {
                attr,
                sub,
                every: true,
                ..
            } = &m.target
            {
                let values = entry.values(&m.ldap);
                if !values.is_empty() {
                    let items = values
                        .iter()
                        .map(|v| Complex::new().with(sub.name, typed(sub, v.to_owned())))
                        .collect();
                    res.set(Container::Core, attr.name, ScimValue::Multi(items));
                }
                continue;
            }
            if let Some(value) = self.scim_of(m, entry, user_id_for_dn) {
                put(&mut res, &m.target, value, &mut elements);
            }
        }
        res
    }

    /// The SCIM value of one (not whole multi-valued) mapping in `entry`.
    fn scim_of(
        &self,
        m: &AttrMapping,
        entry: &Entry,
        user_id_for_dn: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Simple> {
        let leaf = m.target.leaf();
        match &m.kind {
            ValueKind::Text => entry.first(&m.ldap).map(|s| typed(leaf, s.to_owned())),
            ValueKind::PostalAddress => entry
                .first(&m.ldap)
                .map(|s| typed(leaf, super::from_postal(s))),
            ValueKind::Bool {
                when_true,
                when_false,
            } => Some(Simple::Boolean(!is_false(
                entry.values(&m.ldap),
                when_true.as_deref(),
                when_false.as_deref(),
            ))),
            ValueKind::UserDn => entry
                .first(&m.ldap)
                .and_then(user_id_for_dn)
                .map(|id| typed(leaf, id)),
            ValueKind::DisableBit { bit, .. } => entry
                .first(&m.ldap)
                .and_then(|v| v.parse::<u32>().ok())
                .map(|flags| Simple::Boolean(flags & bit == 0)),
            ValueKind::Password => None,
            ValueKind::Country { .. } => entry
                .first(&m.ldap)
                .map(|s| typed(leaf, s.to_ascii_uppercase())),
        }
    }

    /// The SCIM ids that `UserDn` mappings reference in `res` (to resolve before `to_ldap`).
    pub fn referenced_ids(&self, res: &Resource) -> Vec<String> {
        self.attrs
            .iter()
            .filter(|m| m.kind == ValueKind::UserDn)
            .filter_map(|m| scim_value(res, &m.target))
            .filter_map(|v| v.as_str().map(str::to_owned))
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// What each mapped (and derived) LDAP attribute should hold for this resource.
    /// `dn_for_user_id` resolves `UserDn` values; an unknown id leaves the attribute alone.
    pub fn to_ldap(
        &self,
        res: &Resource,
        dn_for_user_id: &dyn Fn(&str) -> Option<String>,
    ) -> ScimResult<DesiredAttrs<'_>> {
        let res = &*self.with_default_types(res);
        let mut out = Vec::with_capacity(self.attrs.len() + self.derived.len());
        let writable = self
            .readable_by_ldap_name()
            .filter(|m| m.target.top().mutability != Mutability::ReadOnly);
        for m in writable {
            if let Target::Element {
                attr,
                sub,
                every: true,
                ..
            } = &m.target
            {
                let values = every_value(res, attr.name, sub.name, m)?;
                let desired = if values.is_empty() {
                    Desired::Clear
                } else {
                    Desired::Many(values)
                };
                out.push((&m.ldap, desired));
                continue;
            }
            let value = scim_value(res, &m.target);
            if let ValueKind::Country { name_attr } = &m.kind {
                let (code, name) = country(m, value)?;
                if let Some(n) = name_attr {
                    out.push((n, name));
                }
                out.push((&m.ldap, code));
                continue;
            }
            out.push((&m.ldap, desired(m, value, dn_for_user_id)?));
        }
        let mut out = DesiredAttrs::from_unsorted(out);
        self.derive_into(res, &mut out)?;
        Ok(out)
    }

    /// Derived attributes (`[users.derive]`) still empty get the first of their templates
    /// that renders.
    fn derive_into<'m>(&'m self, res: &Resource, out: &mut DesiredAttrs<'m>) -> ScimResult<()> {
        let mut derived: Vec<(&AttrName, Desired)> = Vec::new();
        for (ldap, templates) in &self.derived {
            let set = matches!(out.get(ldap), None | Some(Desired::Clear))
                && !derived.iter().any(|(n, _)| *n == ldap);
            if !set {
                continue;
            }
            if let Some((t, v)) = templates.iter().find_map(|t| t.render(res).map(|v| (t, v))) {
                check_length(
                    &format!("{ldap} (made from \"{}\")", t.source()),
                    &v,
                    self.limits.max_value_length,
                    "limits.max_value_length",
                )?;
                derived.push((ldap, Desired::Set(v)));
            }
        }
        out.extend(derived);
        Ok(())
    }

    /// `res` with the first untyped value of each `default_type` attribute given that type,
    /// unless a value already has it (that one is stored; the untyped one has no slot).
    pub(super) fn with_default_types<'r>(&self, res: &'r Resource) -> Cow<'r, Resource> {
        let mut res = Cow::Borrowed(res);
        for (def, ty) in &self.default_types {
            let Some(items) = res.core(def.name).map(ScimValue::elements) else {
                continue;
            };
            let has_type = items
                .iter()
                .any(|it| it.str("type").is_some_and(|t| t.eq_ignore_ascii_case(ty)));
            let Some(first) = items.iter().position(|it| it.get("type").is_none()) else {
                continue;
            };
            if has_type {
                continue;
            }
            if let Some(ScimValue::Multi(items)) =
                res.to_mut().attrs_mut(Container::Core).get_mut(def.name)
            {
                if let Some(el) = items.get_mut(first) {
                    el.set("type", Simple::String(ty.clone()));
                }
            }
        }
        res
    }

    /// The modify changes that take `entry` from `old` to `new` (both from `to_ldap`): only
    /// attributes whose desired state differs are touched, so values SCIM cannot show are
    /// kept. A single SCIM value replaces the first LDAP value and keeps the others.
    pub fn changes(
        &self,
        entry: &Entry,
        old: &DesiredAttrs<'_>,
        new: &DesiredAttrs<'_>,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        // both maps are ordered by name: walked side by side, not looked up name by name
        let mut old = old.iter().peekable();
        for (attr, want) in new.iter() {
            while old.next_if(|(name, _)| *name < attr).is_some() {}
            let was = old.next_if(|(name, _)| *name == attr).map(|(_, v)| v);
            if was == Some(want) || *want == Desired::Keep {
                continue;
            }
            let cur = entry.values(attr);
            let kind = self.kind_of(attr);
            match want {
                Desired::Bit(set) => {
                    let Some(ValueKind::DisableBit { bit, base }) = kind else {
                        continue;
                    };
                    match cur.first().and_then(|v| v.parse::<u32>().ok()) {
                        Some(flags) => {
                            let new = if *set { flags | bit } else { flags & !bit };
                            if new != flags {
                                changes.push(Change::Delete(attr.clone(), vec![flags.to_string()]));
                                changes.push(Change::Add(attr.clone(), vec![new.to_string()]));
                            }
                        }
                        None => {
                            let new = if *set { base | bit } else { *base };
                            changes.push(Change::Replace(attr.clone(), vec![new.to_string()]));
                        }
                    }
                }
                Desired::Set(v) => {
                    if cur.first() == Some(v.as_str())
                        && (cur.len() == 1 || kind == Some(&ValueKind::Text))
                    {
                        continue;
                    }
                    let mut vals = vec![v.clone()];
                    if kind == Some(&ValueKind::Text) || kind.is_none() {
                        vals.extend(
                            cur.iter()
                                .skip(1)
                                .filter(|c| !c.eq_ignore_ascii_case(v))
                                .map(str::to_owned),
                        );
                    }
                    changes.push(Change::Replace(attr.clone(), vals));
                }
                Desired::Many(vs) if !same_values(cur, vs) => {
                    changes.push(Change::Replace(attr.clone(), vs.clone()));
                }
                Desired::Clear if !cur.is_empty() => {
                    changes.push(Change::Replace(attr.clone(), Vec::new()))
                }
                _ => {}
            }
        }
        changes
    }

    pub(super) fn kind_of(&self, ldap_attr: &AttrName) -> Option<&ValueKind> {
        self.attrs
            .iter()
            .find(|m| &m.ldap == ldap_attr)
            .map(|m| &m.kind)
    }
}
