//! What the mapping knows about attributes: which LDAP attributes to read, the password and name
//! attributes, sort keys, references to users, and SCIM attributes no mapping covers.

use crate::scim::value::{Resource, ScimValue, Simple};

use crate::directory::Password;
use crate::scim::schema::Container;
use crate::scim::{ScimError, ScimResult};

use super::*;

impl Mapping {
    /// The LDAP attributes a read must request to build the resource (never the password).
    pub fn ldap_attributes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.readable().map(|m| m.ldap.to_string()).collect();
        // a country's name attribute is compared when the country changes
        v.extend(self.attrs.iter().filter_map(|m| match &m.kind {
            ValueKind::Country { name_attr } => name_attr.as_ref().map(AttrName::to_string),
            _ => None,
        }));
        v.push(self.rdn_attr.to_string());
        v.extend(["createTimestamp".to_owned(), "modifyTimestamp".to_owned()]);
        v.sort_by_key(|a| a.to_ascii_lowercase());
        v.dedup_by_key(|a| a.to_ascii_lowercase());
        v
    }

    /// The mappings whose LDAP values a read may request: all but the write-only password.
    pub fn readable(&self) -> impl Iterator<Item = &AttrMapping> {
        self.attrs.iter().filter(|m| m.kind != ValueKind::Password)
    }

    /// `readable`, in the order of their LDAP names (`ldap_order`).
    pub fn readable_by_ldap_name(&self) -> impl Iterator<Item = &AttrMapping> {
        self.ldap_order
            .iter()
            .filter_map(|&i| self.attrs.get(i))
            .filter(|m| m.kind != ValueKind::Password)
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
    pub fn password(&self, res: &Resource) -> ScimResult<Option<Password>> {
        let Some(m) = self.attrs.iter().find(|m| m.kind == ValueKind::Password) else {
            return Ok(None);
        };
        match res.core("password") {
            None => Ok(None),
            Some(ScimValue::Simple(Simple::String(s))) if s.is_empty() => {
                Err(ScimError::invalid_value(
                    "password is empty: send the new password, or leave the attribute out",
                ))
            }
            Some(ScimValue::Simple(Simple::String(s))) => {
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

    /// SCIM attribute names the mapping does not store, found in a request resource.
    pub fn unmapped_in(&self, res: &Resource) -> Vec<String> {
        let mapped = |container: Container, name: &str| {
            self.attrs.iter().any(|m| match &m.target {
                Target::Attr { container: c, attr }
                | Target::Sub {
                    container: c, attr, ..
                } => *c == container && attr.name == name,
                Target::Element { attr, .. } => container == Container::Core && attr.name == name,
            })
        };
        res.iter()
            .filter(|(container, name, _)| !mapped(*container, name))
            .filter_map(|(container, name, _)| match container {
                Container::Extension(urn) => Some(format!("{urn}:{name}")),
                Container::Core => (!matches!(name, "id" | "meta" | "groups" | "members")
                    && !self.served_elsewhere.contains(&name))
                .then(|| name.to_owned()),
            })
            .collect()
    }

    /// Whether a request that is about to be applied names only mapped attributes; the
    /// error lists the others (used when `reject_unmapped` is on).
    pub fn check_unmapped(&self, res: &Resource, extra_ignored: &[String]) -> ScimResult<()> {
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
