//! Naming entries from resources: the RDN a resource's name gives (escaped, numbered when taken),
//! whether an entry's RDN still fits, and the new entry's DN and values.

use crate::scim::value::Resource;

use crate::directory::filter::{escape_dn_value, split_first_rdn, unescape_dn_value};
use crate::scim::{ScimError, ScimResult};

use super::translate::check_length;
use super::*;

impl Mapping {
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

    /// The RDN value (unescaped) from the first of `rdn` and `rdn_fallbacks` that renders,
    /// checked against the length limit.
    pub fn rdn_text(&self, res: &Resource) -> ScimResult<String> {
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
    pub fn rdn(&self, res: &Resource) -> ScimResult<String> {
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
    pub fn rdn_fits(&self, entry_dn: &str, res: &Resource) -> ScimResult<bool> {
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
    pub fn new_entry(&self, desired: &DesiredAttrs<'_>, rdn: &str) -> Vec<(String, Vec<String>)> {
        let mut attrs = vec![("objectClass".to_owned(), self.object_classes.clone())];
        for (a, d) in desired.iter() {
            match d {
                Desired::Set(v) => attrs.push((a.to_string(), vec![v.clone()])),
                Desired::Many(vs) => attrs.push((a.to_string(), vs.clone())),
                Desired::Bit(set) => {
                    if let Some(ValueKind::DisableBit { bit, base }) = self.kind_of(a) {
                        let flags = if *set { base | bit } else { *base };
                        attrs.push((a.to_string(), vec![flags.to_string()]));
                    }
                }
                Desired::Keep | Desired::Clear => {}
            }
        }
        // a DisableBit attribute the resource did not mention starts enabled
        for m in &self.attrs {
            if let ValueKind::DisableBit { base, .. } = m.kind {
                if !attrs.iter().any(|(a, _)| a.eq_ignore_ascii_case(&m.ldap)) {
                    attrs.push((m.ldap.to_string(), vec![base.to_string()]));
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
                attrs.push((self.rdn_attr.to_string(), vec![unescape_dn_value(v)]));
            }
        }
        attrs
    }

    /// Whether `entry`'s current RDN differs from `rdn`.
    pub fn needs_rename(entry_dn: &str, rdn: &str) -> bool {
        let (current, _) = split_first_rdn(entry_dn);
        current != rdn
    }
}
