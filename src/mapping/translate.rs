//! Translating at run time with a compiled `Mapping`: directory entry → SCIM resource,
//! SCIM resource → LDAP values and the minimal changes between two states.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::*;
use crate::directory::filter::{escape_dn_value, split_first_rdn, unescape_dn_value};
use crate::directory::{Change, Entry, Password};
use crate::scim::schema::{container_mut, container_ref, Container, Mutability, Returned};
use crate::scim::{ScimError, ScimResult};

/// 400 `invalidValue` when `value` has more than `max` characters.
fn check_length(what: &str, value: &str, max: usize, key: &str) -> ScimResult<()> {
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

impl Mapping {
    /// The LDAP attributes a read must request to build the resource (never the password).
    pub fn ldap_attributes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.readable().map(|m| m.ldap.clone()).collect();
        // a country's name attribute is compared when the country changes
        v.extend(self.attrs.iter().filter_map(|m| match &m.kind {
            ValueKind::Country { name_attr } => name_attr.clone(),
            _ => None,
        }));
        v.push(self.rdn_attr.clone());
        v.extend(["createTimestamp".to_owned(), "modifyTimestamp".to_owned()]);
        v.sort_by_key(|a| a.to_ascii_lowercase());
        v.dedup_by_key(|a| a.to_ascii_lowercase());
        v
    }

    /// The mappings whose LDAP values a read may request: all but the write-only password.
    pub fn readable(&self) -> impl Iterator<Item = &AttrMapping> {
        self.attrs.iter().filter(|m| m.kind != ValueKind::Password)
    }

    /// The LDAP attribute a password lands in, when the mapping stores passwords.
    pub fn password_attr(&self) -> Option<&str> {
        self.attrs
            .iter()
            .find(|m| m.kind == ValueKind::Password)
            .map(|m| m.ldap.as_str())
    }

    /// The password `res` carries, when the mapping stores passwords: a non-empty string
    /// within the length limit.
    pub fn password(&self, res: &Map<String, Value>) -> ScimResult<Option<Password>> {
        let Some(m) = self.attrs.iter().find(|m| m.kind == ValueKind::Password) else {
            return Ok(None);
        };
        match res.get("password") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Err(ScimError::invalid_value(
                "password is empty: send the new password, or leave the attribute out",
            )),
            Some(Value::String(s)) => {
                // the length is checked, never the value echoed
                if s.chars().count() > m.max_len.0 {
                    return Err(ScimError::invalid_value(format!(
                        "password is longer than {} characters ({})",
                        m.max_len.0, m.max_len.1
                    )));
                }
                Ok(Some(Password::new(s.clone())))
            }
            Some(_) => Err(ScimError::invalid_value("password must be a string")),
        }
    }

    /// The LDAP attribute holding the required naming attribute (`userName`, `displayName`).
    pub fn username_attr(&self) -> &str {
        self.attrs
            .iter()
            .find(|m| matches!(m.target, Target::Attr { attr, .. } if attr.name == self.required))
            .map(|m| m.ldap.as_str())
            .unwrap_or("cn")
    }

    /// The naming value read off a DN, when the RDN is exactly the naming attribute
    /// (`cn={displayName}` with displayName mapped to cn): saves a read per group shown.
    pub fn name_from_dn(&self, dn: &str) -> Option<String> {
        let plain = self.rdn_attr.eq_ignore_ascii_case(self.username_attr())
            && self.rdn_value.source() == format!("{{{}}}", self.required);
        if !plain {
            return None;
        }
        let (rdn, _) = split_first_rdn(dn);
        rdn.split_once('=').map(|(_, v)| unescape_dn_value(v))
    }

    /// The LDAP sort key for `sortBy`, when one LDAP attribute holds exactly that SCIM
    /// value; `None` when only an in-memory sort can say it.
    pub fn sort_key(
        &self,
        by: &crate::scim::filter::AttrPath,
        descending: bool,
    ) -> Option<crate::directory::SortKey> {
        let (container, def) = self.schema.resolve(by.urn.as_deref(), &by.name)?;
        let key = |attr: &str, rule: &str| crate::directory::SortKey {
            attr: attr.to_owned(),
            ordering_rule: rule.to_owned(),
            reverse: descending,
        };
        if def.name == "meta" {
            return match by.sub.as_deref() {
                Some(s) if s.eq_ignore_ascii_case("created") => {
                    Some(key("createTimestamp", "generalizedTimeOrderingMatch"))
                }
                Some(s) if s.eq_ignore_ascii_case("lastModified") => {
                    Some(key("modifyTimestamp", "generalizedTimeOrderingMatch"))
                }
                _ => None,
            };
        }
        let sub = by.sub.as_deref().or(def.multi_valued.then_some("value"));
        let candidates: Vec<&AttrMapping> = self
            .attrs
            .iter()
            .filter(|m| m.kind == ValueKind::Text)
            .filter(|m| match (&m.target, sub) {
                (Target::Attr { container: c, attr }, None) => {
                    *c == container && attr.name == def.name
                }
                (
                    Target::Sub {
                        container: c,
                        attr,
                        sub: s,
                    },
                    Some(want),
                ) => *c == container && attr.name == def.name && s.name.eq_ignore_ascii_case(want),
                (Target::Element { attr, sub: s, .. }, Some(want)) => {
                    attr.name == def.name && s.name.eq_ignore_ascii_case(want)
                }
                _ => false,
            })
            .collect();
        match candidates.as_slice() {
            [m] => {
                let rule = if m.target.leaf().case_exact {
                    "caseExactOrderingMatch"
                } else {
                    "caseIgnoreOrderingMatch"
                };
                Some(key(&m.ldap, rule))
            }
            _ => None,
        }
    }

    /// The LDAP attribute of the user reference `p` names (`manager`, `manager.value`, with
    /// or without the extension's URN), when it is mapped with `transform = "user-dn"`.
    pub fn user_ref_attr(&self, p: &crate::scim::filter::AttrPath) -> Option<&str> {
        let (container, def) = self.schema.resolve(p.urn.as_deref(), &p.name)?;
        self.attrs
            .iter()
            .filter(|m| m.kind == ValueKind::UserDn)
            .find(|m| match &m.target {
                Target::Sub {
                    container: c,
                    attr,
                    sub,
                } => {
                    *c == container
                        && *attr == def
                        && p.sub
                            .as_deref()
                            .is_none_or(|s| s.eq_ignore_ascii_case(sub.name))
                }
                Target::Attr { container: c, attr } => {
                    *c == container && *attr == def && p.sub.is_none()
                }
                Target::Element { .. } => false,
            })
            .map(|m| m.ldap.as_str())
    }

    /// The LDAP attribute holding users' email (the primary `emails` slot, else the first):
    /// a reference given as an email address is looked up there.
    pub fn email_attr(&self) -> Option<&str> {
        let slots = || {
            self.attrs.iter().filter(|m| {
                matches!(&m.target, Target::Element { attr, sub, .. }
                    if attr.name == "emails" && sub.name == "value")
            })
        };
        slots()
            .find(|m| matches!(m.target, Target::Element { primary: true, .. }))
            .or_else(|| slots().next())
            .map(|m| m.ldap.as_str())
    }

    /// The mapping that stores `active`.
    pub fn active(&self) -> Option<&AttrMapping> {
        self.attrs
            .iter()
            .find(|m| matches!(m.target, Target::Attr { attr, .. } if attr.name == "active"))
    }

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
    fn with_default_types<'r>(&self, res: &'r Map<String, Value>) -> Cow<'r, Map<String, Value>> {
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

    /// The RDN value (unescaped) from the first of `rdn` and `rdn_fallbacks` that renders,
    /// checked against the length limit.
    pub fn rdn_text(&self, res: &Map<String, Value>) -> ScimResult<String> {
        let mut templates = std::iter::once(&self.rdn_value).chain(&self.rdn_fallbacks);
        let Some((t, value)) = templates.find_map(|t| t.render(res).map(|v| (t, v))) else {
            let tried: Vec<String> = std::iter::once(&self.rdn_value)
                .chain(&self.rdn_fallbacks)
                .map(|t| format!("\"{}\"", t.source()))
                .collect();
            return Err(ScimError::invalid_value(format!(
                "cannot name the directory entry: the RDN template{} {} need{} a value{}",
                if tried.len() > 1 { "s" } else { "" },
                tried.join(", "),
                if tried.len() > 1 { "" } else { "s" },
                if self.rdn_fallbacks.is_empty() {
                    format!(
                        " (the admin can add fallbacks: {}.rdn_fallbacks)",
                        self.section
                    )
                } else {
                    String::new()
                }
            )));
        };
        check_length(
            &format!(
                "{} (the entry's name, {}={})",
                t.source().trim_matches(['{', '}']),
                self.rdn_attr,
                t.source()
            ),
            &value,
            self.limits.max_rdn_value_length,
            "limits.max_rdn_value_length",
        )?;
        Ok(value)
    }

    /// The RDN (`uid=bjensen`, value escaped) the resource's entry must have.
    pub fn rdn(&self, res: &Map<String, Value>) -> ScimResult<String> {
        Ok(self.rdn_of(&self.rdn_text(res)?))
    }

    /// `attr=value`, the value escaped.
    pub fn rdn_of(&self, value: &str) -> String {
        format!("{}={}", self.rdn_attr, escape_dn_value(value))
    }

    /// The value `base` numbered `n` (`John Smith 2`), shortened to stay within the limit.
    pub fn numbered(&self, base: &str, n: u32) -> String {
        let suffix = format!(" {n}");
        let room = self
            .limits
            .max_rdn_value_length
            .saturating_sub(suffix.chars().count());
        let mut out: String = base.chars().take(room).collect();
        out.push_str(&suffix);
        out
    }

    /// Whether the entry at `entry_dn` is named right for `res`: its RDN is `rdn(res)`, or,
    /// where clashes are numbered, a numbered form of it (so that a PUT of the second John
    /// Smith does not try to rename him to the first one's name).
    pub fn rdn_fits(&self, entry_dn: &str, res: &Map<String, Value>) -> ScimResult<bool> {
        let base = self.rdn_text(res)?;
        let (current, _) = split_first_rdn(entry_dn);
        let Some((attr, value)) = current.split_once('=') else {
            return Ok(false);
        };
        if !attr.trim().eq_ignore_ascii_case(&self.rdn_attr) {
            return Ok(false);
        }
        let value = unescape_dn_value(value);
        if value == base {
            return Ok(true);
        }
        Ok(self.numbered_rdn
            && value
                .rsplit_once(' ')
                .and_then(|(_, n)| n.parse::<u32>().ok())
                .filter(|n| *n >= 2)
                .is_some_and(|n| self.numbered(&base, n) == value))
    }

    /// Attributes and values for an LDAP add.
    pub fn new_entry(
        &self,
        desired: &BTreeMap<String, Desired>,
        rdn: &str,
    ) -> Vec<(String, Vec<String>)> {
        let mut attrs = vec![("objectClass".to_owned(), self.object_classes.clone())];
        for (a, d) in desired {
            match d {
                Desired::Set(v) => attrs.push((a.clone(), vec![v.clone()])),
                Desired::Many(vs) => attrs.push((a.clone(), vs.clone())),
                Desired::Bit(set) => {
                    if let Some(ValueKind::DisableBit { bit, base }) = self.kind_of(a) {
                        let flags = if *set { base | bit } else { *base };
                        attrs.push((a.clone(), vec![flags.to_string()]));
                    }
                }
                Desired::Keep | Desired::Clear => {}
            }
        }
        // a DisableBit attribute the resource did not mention starts enabled
        for m in &self.attrs {
            if let ValueKind::DisableBit { base, .. } = m.kind {
                if !attrs.iter().any(|(a, _)| a.eq_ignore_ascii_case(&m.ldap)) {
                    attrs.push((m.ldap.clone(), vec![base.to_string()]));
                }
            }
        }
        for (a, v) in &self.defaults {
            if !attrs.iter().any(|(x, _)| x.eq_ignore_ascii_case(a)) {
                attrs.push((a.clone(), v.clone()));
            }
        }
        // The RDN value must be among the entry's values.
        if !attrs
            .iter()
            .any(|(a, _)| a.eq_ignore_ascii_case(&self.rdn_attr))
        {
            if let Some((_, v)) = rdn.split_once('=') {
                attrs.push((self.rdn_attr.clone(), vec![unescape_dn_value(v)]));
            }
        }
        attrs
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

    fn kind_of(&self, ldap_attr: &str) -> Option<&ValueKind> {
        self.attrs
            .iter()
            .find(|m| m.ldap.eq_ignore_ascii_case(ldap_attr))
            .map(|m| &m.kind)
    }

    /// Whether `entry`'s current RDN differs from `rdn`.
    pub fn needs_rename(entry_dn: &str, rdn: &str) -> bool {
        let (current, _) = split_first_rdn(entry_dn);
        current != rdn
    }

    /// SCIM attribute names the mapping does not store, found in a request resource.
    pub fn unmapped_in(&self, res: &Map<String, Value>) -> Vec<String> {
        let mut out = Vec::new();
        let mapped = |container: Container, name: &str| {
            self.attrs.iter().any(|m| match &m.target {
                Target::Attr { container: c, attr }
                | Target::Sub {
                    container: c, attr, ..
                } => *c == container && attr.name == name,
                Target::Element { attr, .. } => container == Container::Core && attr.name == name,
            })
        };
        for (k, v) in res {
            if let Some(ext) = self.schema.extension(k) {
                if let Value::Object(inner) = v {
                    for k2 in inner.keys() {
                        if !mapped(Container::Extension(ext.id), k2) {
                            out.push(format!("{}:{k2}", ext.id));
                        }
                    }
                }
            } else if !mapped(Container::Core, k)
                && !matches!(k.as_str(), "id" | "meta" | "groups" | "members")
                && !self.served_elsewhere.contains(&k.as_str())
            {
                out.push(k.clone());
            }
        }
        out
    }

    /// Whether a request that is about to be applied names only mapped attributes; the
    /// error lists the others (used when `reject_unmapped` is on).
    pub fn check_unmapped(
        &self,
        res: &Map<String, Value>,
        extra_ignored: &[String],
    ) -> ScimResult<()> {
        let mut unmapped = self.unmapped_in(res);
        unmapped.extend(extra_ignored.iter().cloned());
        if unmapped.is_empty() {
            return Ok(());
        }
        if self.reject_unmapped {
            return Err(ScimError::invalid_value(format!(
                "these attributes are not mapped to the directory: {} ({}.reject_unmapped is on)",
                unmapped.join(", "),
                self.section
            )));
        }
        tracing::debug!(attributes = %unmapped.join(", "), "ignoring unmapped attributes");
        Ok(())
    }
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
