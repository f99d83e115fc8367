//! One `[users.attributes]` entry compiled: its SCIM path, LDAP attribute, kind and selector
//! checked against the schema, with `active`'s own forms; every error names the key and the fix.

use crate::config::{AttrSpec, ConfigError, DeactivateConfig, TransformName};
use crate::mapping::*;
use crate::scim::filter::{parse_patch_path, CompValue, CompareOp, Filter, PatchPath};
use crate::scim::schema::{AttrType, Container, ResourceSchema};

/// Checks one `users.default_type` line: a multi-valued attribute with types, and a mapped
/// slot of that type for its untyped values to land in.
pub(super) fn default_type(
    sec: &str,
    attr: &str,
    ty: &str,
    attrs: &[AttrMapping],
    schema: &ResourceSchema,
) -> Result<(&'static AttrDef, String), ConfigError> {
    let key = format!("{sec}.default_type.{attr}");
    let def = schema
        .resolve(None, attr)
        .map(|(_, d)| d)
        .filter(|d| d.multi_valued && d.sub("type").is_some())
        .ok_or_else(|| {
            ConfigError::new(
                &key,
                format!("`{attr}` is not a multi-valued attribute with types"),
                "use emails, phoneNumbers, addresses, ims or photos",
            )
        })?;
    let mapped = attrs.iter().find_map(|m| match &m.target {
        Target::Element {
            attr: a,
            type_value: Some(t),
            ..
        } if *a == def && t.eq_ignore_ascii_case(ty) => Some(t.clone()),
        _ => None,
    });
    match mapped {
        Some(t) => Ok((def, t)),
        None => Err(ConfigError::new(
            &key,
            format!("no mapping stores {attr} of type \"{ty}\""),
            format!(
                "map one, e.g. '{attr}[type eq \"{ty}\"].value' = \"...\", or name a mapped type"
            ),
        )),
    }
}

pub(super) fn check_ldap_name(name: &str, key: &str) -> Result<(), ConfigError> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("`{name}` is not an LDAP attribute or object class name"),
            "use the name as the directory schema spells it, e.g. givenName",
        ))
    }
}

pub(super) fn parse_mapping(
    section: &str,
    scim: &str,
    spec: &AttrSpec,
    schema: &ResourceSchema,
    global_max: usize,
) -> Result<AttrMapping, ConfigError> {
    let key = format!("{section}.attributes.\"{scim}\"");
    let (ldap, primary, transform, max_length, country_name) = match spec {
        AttrSpec::Ldap(l) => (l.clone(), false, None, None, None),
        AttrSpec::Full(f) => (
            f.ldap.clone(),
            f.primary,
            f.transform,
            f.max_length,
            f.country_name.clone(),
        ),
    };
    if country_name.is_some() && transform != Some(TransformName::Country) {
        return Err(ConfigError::new(
            format!("{key}.country_name"),
            "country_name only goes with transform = \"country\"",
            "add transform = \"country\", or remove country_name",
        ));
    }
    if let Some(n) = &country_name {
        check_ldap_name(n, &format!("{key}.country_name"))?;
    }
    let max_len = max_len_of(&key, max_length, global_max)?;
    check_ldap_name(&ldap, &key)?;
    let path = parse_patch_path(scim).map_err(|e| {
        ConfigError::new(
            &key,
            format!("not a SCIM attribute path: {e}"),
            "e.g. \"name.givenName\" or 'emails[type eq \"work\"].value'",
        )
    })?;
    let (container, attr) = mappable_attribute(&key, &path, schema)?;
    let sub = sub_attribute(&key, &path, attr)?;
    let target = target_of(&key, &path, container, attr, sub, primary)?;
    let kind = kind_of(&key, &target, transform, country_name)?;
    Ok(AttrMapping {
        scim: scim.to_owned(),
        target,
        ldap: ldap.into(),
        kind,
        max_len,
    })
}

/// The most characters a value may have, and the key that says so.
fn max_len_of(
    key: &str,
    max_length: Option<usize>,
    global_max: usize,
) -> Result<(usize, String), ConfigError> {
    match max_length {
        None => Ok((global_max, "limits.max_value_length".to_owned())),
        Some(0) => Err(ConfigError::new(
            format!("{key}.max_length"),
            "must be at least 1",
            "e.g. max_length = 256, or remove it to use limits.max_value_length",
        )),
        Some(n) => Ok((n.min(global_max), format!("{key}.max_length"))),
    }
}

/// The schema attribute `path` names, when a mapping may store it (the server computes
/// some, and others are configured elsewhere).
fn mappable_attribute(
    key: &str,
    path: &PatchPath,
    schema: &ResourceSchema,
) -> Result<(Container, &'static AttrDef), ConfigError> {
    let (container, attr) = schema.resolve(path.attr.urn.as_deref(), &path.attr.name).ok_or_else(|| {
        ConfigError::new(
            key,
            format!("`{}` is not an attribute of the User schema or its extensions", path.attr),
            format!(
                "use one of: externalId, {}, or an enterprise extension attribute as \"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department\"",
                schema.core.attributes.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    match attr.name {
        "members" => Err(ConfigError::new(
            key,
            "`members` is stored through groups.member_attribute, not as an attribute",
            "remove this line (member_attribute defaults to \"member\")",
        )),
        "id" | "meta" | "groups" => Err(ConfigError::new(
            key,
            format!(
                "`{}` is computed by the server and cannot be mapped",
                attr.name
            ),
            "remove this line (id is the directory's entryUUID/objectGUID)",
        )),
        "active" => Err(ConfigError::new(
            key,
            "`active` is configured through [users.deactivate], not as an attribute",
            "remove this line and set users.deactivate.strategy",
        )),
        _ => Ok((container, attr)),
    }
}

/// The sub-attribute `path` names after the attribute or after its filter.
fn sub_attribute(
    key: &str,
    path: &PatchPath,
    attr: &'static AttrDef,
) -> Result<Option<&'static AttrDef>, ConfigError> {
    let Some(s) = path.attr.sub.as_ref().or(path.sub_after_filter.as_ref()) else {
        return Ok(None);
    };
    attr.sub(s).map(Some).ok_or_else(|| {
        ConfigError::new(
            key,
            format!("`{}` has no sub-attribute `{s}`", attr.name),
            format!(
                "use one of: {}",
                attr.sub_attributes
                    .iter()
                    .map(|a| a.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

/// Where in a resource the mapping's value sits.
fn target_of(
    key: &str,
    path: &PatchPath,
    container: Container,
    attr: &'static AttrDef,
    sub: Option<&'static AttrDef>,
    primary: bool,
) -> Result<Target, ConfigError> {
    let target = match (attr.multi_valued, attr.ty, sub) {
        (true, AttrType::Complex, Some(sub)) => {
            let (type_value, primary_sel) = match &path.filter {
                None => (None, false),
                Some(f) => selector(f).ok_or_else(|| bad_selector(key, attr, sub))?,
            };
            Target::Element {
                attr,
                type_value,
                primary: primary || primary_sel,
                sub,
                every: false,
            }
        }
        // `roles = "businessCategory"`: every value, one LDAP value each
        (true, AttrType::Complex, None) if path.filter.is_none() && attr.sub("value").is_some() => {
            Target::Element {
                attr,
                type_value: None,
                primary: false,
                sub: attr.sub("value").unwrap_or(attr),
                every: true,
            }
        }
        (true, _, _) => {
            return Err(ConfigError::new(
                key,
                format!(
                    "`{}` is multi-valued: say which value and which part",
                    attr.name
                ),
                format!("e.g. '{}[type eq \"work\"].value'", attr.name),
            ))
        }
        (false, AttrType::Complex, Some(sub)) => Target::Sub {
            container,
            attr,
            sub,
        },
        (false, AttrType::Complex, None) => return Err(no_sub_named(key, attr)),
        (false, _, None) => Target::Attr { container, attr },
        (false, _, Some(_)) => {
            return Err(ConfigError::new(
                key,
                format!("`{}` has no sub-attributes", attr.name),
                "remove the .part",
            ))
        }
    };
    if path.filter.is_some() && !matches!(target, Target::Element { .. }) {
        return Err(ConfigError::new(
            key,
            "a [filter] only applies to multi-valued attributes",
            "remove the [..] part",
        ));
    }
    Ok(target)
}

fn bad_selector(key: &str, attr: &AttrDef, sub: &AttrDef) -> ConfigError {
    ConfigError::new(
        key,
        "only [type eq \"…\"] (optionally `and primary eq true`) can select a value",
        format!("e.g. '{}[type eq \"work\"].{}'", attr.name, sub.name),
    )
}

fn no_sub_named(key: &str, attr: &AttrDef) -> ConfigError {
    ConfigError::new(
        key,
        format!("`{}` is complex: name the sub-attribute", attr.name),
        format!(
            "e.g. \"{}.{}\"",
            attr.name,
            attr.sub_attributes
                .first()
                .map(|s| s.name)
                .unwrap_or("value")
        ),
    )
}

/// How values convert, from the transform the admin named and the SCIM type.
fn kind_of(
    key: &str,
    target: &Target,
    transform: Option<TransformName>,
    country_name: Option<String>,
) -> Result<ValueKind, ConfigError> {
    let leaf = target.leaf();
    let password = target.top_name() == "password";
    let boolean = || ValueKind::Bool {
        when_true: Some("TRUE".into()),
        when_false: Some("FALSE".into()),
    };
    Ok(match transform {
        None if password => ValueKind::Password,
        Some(t) if password => {
            return Err(ConfigError::new(
                key,
                format!("transform `{t:?}` cannot apply to a password"),
                "remove the transform: passwords are set as the directory expects (users.password_hash)",
            ))
        }
        None if leaf.ty == AttrType::Boolean => boolean(),
        None => ValueKind::Text,
        Some(TransformName::Boolean) if leaf.ty == AttrType::Boolean => boolean(),
        Some(TransformName::UserDn) if leaf.ty == AttrType::String => ValueKind::UserDn,
        Some(TransformName::PostalAddress) if leaf.ty == AttrType::String => {
            ValueKind::PostalAddress
        }
        Some(TransformName::Country) if leaf.ty == AttrType::String => ValueKind::Country {
            name_attr: country_name.map(AttrName::from),
        },
        Some(t) => {
            return Err(ConfigError::new(
                key,
                format!(
                    "transform `{t:?}` does not fit a {} attribute",
                    leaf.ty.as_str()
                ),
                "user-dn is for ids of users (manager.value); boolean for boolean attributes",
            ))
        }
    })
}

/// `type eq "work"` → (Some("work"), false); `type eq "work" and primary eq true` → (…, true).
pub(in crate::mapping) fn selector(f: &Filter) -> Option<(Option<String>, bool)> {
    match f {
        Filter::Compare(p, CompareOp::Eq, CompValue::Str(v))
            if p.name.eq_ignore_ascii_case("type") && p.sub.is_none() =>
        {
            Some((Some(v.clone()), false))
        }
        Filter::Compare(p, CompareOp::Eq, CompValue::Bool(true))
            if p.name.eq_ignore_ascii_case("primary") =>
        {
            Some((None, true))
        }
        Filter::And(parts) => {
            let mut type_value = None;
            let mut primary = false;
            for part in parts {
                let (t, p) = selector(part)?;
                if t.is_some() {
                    if type_value.is_some() {
                        return None;
                    }
                    type_value = t;
                }
                primary |= p;
            }
            Some((type_value, primary))
        }
        _ => None,
    }
}

pub(super) fn active_mapping(
    cfg: &DeactivateConfig,
    global_max: usize,
) -> Result<AttrMapping, ConfigError> {
    let max_len = (global_max, "limits.max_value_length".to_owned());
    let active = crate::scim::schema::USER.attr("active").ok_or_else(|| {
        ConfigError::new("users.deactivate", "the User schema lacks `active`", "")
    })?;
    let (ldap, when_true, when_false) = match cfg {
        DeactivateConfig::AdAccountDisabled => {
            return Ok(AttrMapping {
                scim: "active".into(),
                target: Target::Attr {
                    container: Container::Core,
                    attr: active,
                },
                ldap: "userAccountControl".into(),
                kind: ValueKind::DisableBit {
                    bit: crate::directory::ad::UAC_ACCOUNTDISABLE,
                    base: crate::directory::ad::UAC_NORMAL_ACCOUNT,
                },
                max_len,
            })
        }
        DeactivateConfig::PpolicyLock => (
            "pwdAccountLockedTime".to_owned(),
            None,
            Some(PPOLICY_LOCKED.to_owned()),
        ),
        DeactivateConfig::Attribute {
            attribute,
            inactive_value,
            active_value,
        } => {
            check_ldap_name(attribute, "users.deactivate.attribute")?;
            if inactive_value.is_empty() {
                return Err(ConfigError::new(
                    "users.deactivate.inactive_value",
                    "empty",
                    "set the value that marks a disabled account, e.g. \"disabled\"",
                ));
            }
            (
                attribute.clone(),
                active_value.clone().filter(|v| !v.is_empty()),
                Some(inactive_value.clone()),
            )
        }
    };
    Ok(AttrMapping {
        scim: "active".into(),
        target: Target::Attr {
            container: Container::Core,
            attr: active,
        },
        ldap: ldap.into(),
        kind: ValueKind::Bool {
            when_true,
            when_false,
        },
        max_len,
    })
}
