//! Whether a PATCH names values the mapping can hold. A value path selecting a type the
//! mapping stores nothing for (`phoneNumbers[type eq "pager"]` with no pager mapped) would
//! answer 200 and store nothing; RFC 7644 §3.5.2.3 has `noTarget` for it, so the IdP hears
//! that the value was not kept.

use crate::scim::patch::{OpKind, PatchOperation};
use crate::scim::schema::AttrType;
use crate::scim::{ScimError, ScimResult};

use super::{Mapping, Target};

impl Mapping {
    /// 400 `noTarget` for an add or replace whose path selects, by type, a value of a
    /// multi-valued attribute that no mapping stores.
    pub fn check_patch_targets(&self, ops: &[PatchOperation]) -> ScimResult<()> {
        for op in ops {
            if op.op == OpKind::Remove {
                continue;
            }
            let Some(t) = op.attr() else { continue };
            let Some(filter) = &t.filter else { continue };
            let def = t.def;
            if !(def.multi_valued && def.ty == AttrType::Complex)
                || self.served_elsewhere.contains(&def.name)
            {
                continue;
            }
            let Some((Some(wanted), _)) = super::compile::selector(filter) else {
                continue;
            };
            let mut stored = Vec::new();
            let mut whole = false;
            for m in &self.attrs {
                if let Target::Element {
                    attr,
                    type_value,
                    every,
                    ..
                } = &m.target
                {
                    if *attr == def {
                        whole |= *every;
                        stored.extend(type_value.iter().cloned());
                    }
                }
            }
            if whole || stored.iter().any(|t| t.eq_ignore_ascii_case(&wanted)) {
                continue;
            }
            stored.dedup();
            return Err(ScimError::no_target(format!(
                "{}[type eq \"{}\"]: this server stores no {} of that type ({}); the value would be lost",
                def.name,
                crate::logging::shorten(&wanted, 64),
                def.name,
                if stored.is_empty() {
                    format!("it keeps no {}", def.name)
                } else {
                    format!("it keeps {}", stored.join(", "))
                }
            )));
        }
        Ok(())
    }
}
