//! Translating at run time with a compiled `Mapping`: directory entry → SCIM resource,
//! SCIM resource → LDAP values and the minimal changes between two states.

use super::*;
use crate::directory::{Change, Entry};
use crate::scim::schema::{container_mut, container_ref, Mutability, Returned};
use crate::scim::{ScimError, ScimResult};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

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
fn is_false(values: &[String], when_true: Option<&str>, when_false: Option<&str>) -> bool {
    let has = |m: &str| values.iter().any(|v| v.eq_ignore_ascii_case(m));
    match (when_false, when_true) {
        (Some(f), _) => has(f),
        (None, Some(t)) => !has(t),
        (None, None) => false,
    }
}

/// The SCIM value a mapping reads from a resource.
fn scim_value<'r>(res: &'r Map<String, Value>, target: &Target) -> Option<&'r Value> {
    match target {
        Target::Attr { container, attr } => container_ref(res, *container)?.get(attr.name),
        Target::Sub {
            container,
            attr,
            sub,
        } => container_ref(res, *container)?
            .get(attr.name)?
            .get(sub.name),
        Target::Element {
            attr,
            type_value,
            primary,
            sub,
            ..
        } => {
            let items = res.get(attr.name)?.as_array()?;
            let by_type = |t: &str| {
                items.iter().find(|it| {
                    it.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|x| x.eq_ignore_ascii_case(t))
                })
            };
            let element = match type_value {
                Some(t) => by_type(t).or_else(|| {
                    // The primary mapping also takes the primary value, or a lone untyped one.
                    if !*primary {
                        return None;
                    }
                    items
                        .iter()
                        .find(|it| it.get("primary") == Some(&Value::Bool(true)))
                        .or_else(|| match items.as_slice() {
                            [only] if only.get("type").is_none() => Some(only),
                            _ => None,
                        })
                }),
                None if *primary => items
                    .iter()
                    .find(|it| it.get("primary") == Some(&Value::Bool(true)))
                    .or(items.first()),
                None => items.first(),
            }?;
            element.get(sub.name)
        }
    }
}

/// `{name: value}`.
fn json_object(name: &str, value: Value) -> Value {
    let mut m = Map::new();
    m.insert(name.to_owned(), value);
    Value::Object(m)
}

/// The `sub` of every element of `attr` in `res` (a multi-valued attribute mapped whole),
/// each within the length limit.
fn every_value(
    res: &Map<String, Value>,
    attr: &str,
    sub: &str,
    m: &AttrMapping,
) -> ScimResult<Vec<String>> {
    let values = distinct_values(res, attr, sub)?;
    for v in &values {
        check_length(&m.scim, v, m.max_len.0, &m.max_len.1)?;
    }
    Ok(values)
}

/// The `sub` strings of the elements of multi-valued `attr` in `res`, in order, without
/// blank ones or case-insensitive repeats (one pass: a body's worth of values stays cheap).
pub fn distinct_values(res: &Map<String, Value>, attr: &str, sub: &str) -> ScimResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let Some(Value::Array(items)) = res.get(attr) else {
        return Ok(out);
    };
    for it in items {
        match it.get(sub) {
            Some(Value::String(v)) => {
                if !v.trim().is_empty() && seen.insert(v.to_lowercase()) {
                    out.push(v.clone());
                }
            }
            None | Some(Value::Null) => {}
            Some(other) => {
                return Err(ScimError::invalid_value(format!(
                    "{attr}.{sub}: expected a string, got {other}"
                )))
            }
        }
    }
    Ok(out)
}

/// Whether two value lists hold the same values, ignoring order and case.
fn same_values(cur: &[String], want: &[String]) -> bool {
    cur.len() == want.len()
        && want
            .iter()
            .all(|w| cur.iter().any(|c| c.eq_ignore_ascii_case(w)))
}

impl Mapping {
    /// Builds the SCIM view of an entry. `user_id_for_dn` resolves `UserDn` values.
    pub fn to_scim(
        &self,
        entry: &Entry,
        user_id_for_dn: &dyn Fn(&str) -> Option<String>,
    ) -> Map<String, Value> {
        let mut res = Map::new();
        // element index per (attribute, type, primary) so that subs of one value land together
        let mut elements: HashMap<(&str, Option<&str>, bool), usize> = HashMap::new();
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
                        .map(|v| json_object(sub.name, Value::String(v.clone())))
                        .collect();
                    res.insert(attr.name.to_owned(), Value::Array(items));
                }
                continue;
            }
            let value = match &m.kind {
                ValueKind::Text => entry.first(&m.ldap).map(|s| Value::String(s.to_owned())),
                ValueKind::PostalAddress => entry
                    .first(&m.ldap)
                    .map(|s| Value::String(super::from_postal(s))),
                ValueKind::Bool {
                    when_true,
                    when_false,
                } => Some(Value::Bool(!is_false(
                    entry.values(&m.ldap),
                    when_true.as_deref(),
                    when_false.as_deref(),
                ))),
                ValueKind::UserDn => entry
                    .first(&m.ldap)
                    .and_then(user_id_for_dn)
                    .map(Value::String),
                ValueKind::DisableBit { bit, .. } => entry
                    .first(&m.ldap)
                    .and_then(|v| v.parse::<u32>().ok())
                    .map(|flags| Value::Bool(flags & bit == 0)),
                ValueKind::Password => None,
                ValueKind::Country { .. } => entry
                    .first(&m.ldap)
                    .map(|s| Value::String(s.to_ascii_uppercase())),
            };
            let Some(value) = value else { continue };
            match &m.target {
                Target::Attr { container, attr } => {
                    container_mut(&mut res, *container).insert(attr.name.to_owned(), value);
                }
                Target::Sub {
                    container,
                    attr,
                    sub,
                } => {
                    let obj = container_mut(&mut res, *container)
                        .entry(attr.name.to_owned())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(o) = obj {
                        o.insert(sub.name.to_owned(), value);
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
                    let arr = res
                        .entry(attr.name.to_owned())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    let Value::Array(arr) = arr else { continue };
                    let idx = *elements.entry(key).or_insert_with(|| {
                        let mut el = Map::new();
                        if let Some(t) = type_value {
                            el.insert("type".into(), Value::String(t.clone()));
                        }
                        if *primary {
                            el.insert("primary".into(), Value::Bool(true));
                        }
                        arr.push(Value::Object(el));
                        arr.len() - 1
                    });
                    if let Some(Value::Object(el)) = arr.get_mut(idx) {
                        el.insert(sub.name.to_owned(), value);
                    }
                }
            }
        }
        res
    }

    /// The SCIM ids that `UserDn` mappings reference in `res` (to resolve before `to_ldap`).
    pub fn referenced_ids(&self, res: &Map<String, Value>) -> Vec<String> {
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
        res: &Map<String, Value>,
        dn_for_user_id: &dyn Fn(&str) -> Option<String>,
    ) -> ScimResult<BTreeMap<String, Desired>> {
        let res = &*self.with_default_types(res);
        let mut out = BTreeMap::new();
        for m in self.readable() {
            if m.target.top().mutability == Mutability::ReadOnly {
                continue;
            }
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
                out.insert(m.ldap.clone(), desired);
                continue;
            }
            let v = scim_value(res, &m.target);
            let desired = match (&m.kind, v) {
                (ValueKind::Bool { .. } | ValueKind::DisableBit { .. }, None) => Desired::Keep,
                (ValueKind::DisableBit { .. }, Some(Value::Bool(active))) => Desired::Bit(!active),
                (ValueKind::Country { name_attr: Some(n) }, None) => {
                    out.insert(n.clone(), Desired::Clear);
                    Desired::Clear
                }
                (_, None) => Desired::Clear,
                (
                    ValueKind::Bool {
                        when_true,
                        when_false,
                    },
                    Some(Value::Bool(b)),
                ) => match if *b { when_true } else { when_false } {
                    Some(v) => Desired::Set(v.clone()),
                    None => Desired::Clear,
                },
                (ValueKind::Text, Some(Value::String(s))) => {
                    if s.is_empty() {
                        Desired::Clear
                    } else {
                        check_length(&m.scim, s, m.max_len.0, &m.max_len.1)?;
                        Desired::Set(s.clone())
                    }
                }
                (ValueKind::Country { name_attr }, Some(Value::String(s))) => {
                    let (code, name) = if s.trim().is_empty() {
                        (Desired::Clear, Desired::Clear)
                    } else {
                        check_length(&m.scim, s, m.max_len.0, &m.max_len.1)?;
                        let c = super::country::resolve(s).ok_or_else(|| {
                            ScimError::invalid_value(format!(
                                "{}: \"{}\" is not a country: send an ISO 3166 code (\"DE\") or a country's name (\"Germany\")",
                                m.scim,
                                crate::logging::shorten(s, 64)
                            ))
                        })?;
                        (Desired::Set(c.code), Desired::Set(c.name))
                    };
                    if let Some(n) = name_attr {
                        out.insert(n.clone(), name);
                    }
                    code
                }
                (ValueKind::PostalAddress, Some(Value::String(s))) => {
                    check_length(&m.scim, s, m.max_len.0, &m.max_len.1)?;
                    match super::to_postal(s) {
                        Some(v) => Desired::Set(v),
                        None => Desired::Clear,
                    }
                }
                (ValueKind::UserDn, Some(Value::String(id))) => {
                    if id.is_empty() {
                        Desired::Clear
                    } else {
                        match dn_for_user_id(id) {
                            Some(dn) => Desired::Set(dn),
                            // IdPs send references to users not provisioned (yet), or in
                            // their own id space (Okta's managerId): the user is still
                            // provisioned and the directory's value is left as it is.
                            None => {
                                tracing::warn!(attribute = %m.scim, id = %id, "no user has this id; reference not stored");
                                Desired::Keep
                            }
                        }
                    }
                }
                (_, Some(other)) => {
                    return Err(ScimError::invalid_value(format!(
                        "{}: unexpected value {other}",
                        m.scim
                    )))
                }
            };
            out.insert(m.ldap.clone(), desired);
        }
        for (ldap, templates) in &self.derived {
            let empty = matches!(out.get(ldap), None | Some(Desired::Clear));
            if empty {
                if let Some((t, v)) = templates.iter().find_map(|t| t.render(res).map(|v| (t, v))) {
                    check_length(
                        &format!("{ldap} (made from \"{}\")", t.source()),
                        &v,
                        self.limits.max_value_length,
                        "limits.max_value_length",
                    )?;
                    out.insert(ldap.clone(), Desired::Set(v));
                }
            }
        }
        Ok(out)
    }

    /// `res` with the first untyped value of each `default_type` attribute given that type,
    /// unless a value already has it (that one is stored; the untyped one has no slot).
    pub(super) fn with_default_types<'r>(
        &self,
        res: &'r Map<String, Value>,
    ) -> Cow<'r, Map<String, Value>> {
        let untyped = |v: &Value| v.get("type").is_none_or(Value::is_null);
        let mut res = Cow::Borrowed(res);
        for (def, ty) in &self.default_types {
            let Some(Value::Array(items)) = res.get(def.name) else {
                continue;
            };
            let has_type = items.iter().any(|it| {
                it.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case(ty))
            });
            let Some(first) = items.iter().position(|it| it.is_object() && untyped(it)) else {
                continue;
            };
            if has_type {
                continue;
            }
            if let Some(Value::Object(el)) = res
                .to_mut()
                .get_mut(def.name)
                .and_then(|v| v.as_array_mut())
                .and_then(|items| items.get_mut(first))
            {
                el.insert("type".to_owned(), Value::String(ty.clone()));
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
        old: &BTreeMap<String, Desired>,
        new: &BTreeMap<String, Desired>,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        for (attr, want) in new {
            if old.get(attr) == Some(want) || *want == Desired::Keep {
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
                    if cur.first() == Some(v) && (cur.len() == 1 || kind == Some(&ValueKind::Text))
                    {
                        continue;
                    }
                    let mut vals = vec![v.clone()];
                    if kind == Some(&ValueKind::Text) || kind.is_none() {
                        vals.extend(
                            cur.iter()
                                .skip(1)
                                .filter(|c| !c.eq_ignore_ascii_case(v))
                                .cloned(),
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

    pub(super) fn kind_of(&self, ldap_attr: &str) -> Option<&ValueKind> {
        self.attrs
            .iter()
            .find(|m| m.ldap.eq_ignore_ascii_case(ldap_attr))
            .map(|m| &m.kind)
    }
}
