//! Compiling the admin's mapping (TOML) into a checked `Mapping`: every error names the
//! config key and says how to fix it.

mod attribute;

use std::collections::HashMap;

use crate::config::{ConfigError, UsersConfig};
use crate::scim::schema::ResourceSchema;

use super::expression::Expression;
use super::template::Template;
use super::Derivation;
use super::*;

pub(super) use attribute::selector;
use attribute::{active_mapping, check_ldap_name, default_type, parse_mapping};

impl ValueLimits {
    pub fn from_config(
        cfg: &crate::config::LimitsConfig,
        kind: crate::directory::DirectoryKind,
    ) -> Result<ValueLimits, ConfigError> {
        let rdn_default = match kind {
            crate::directory::DirectoryKind::ActiveDirectory => 64,
            crate::directory::DirectoryKind::Openldap => 128,
        };
        let positive = |key: &str, v: usize| {
            if v == 0 {
                Err(ConfigError::new(
                    format!("limits.{key}"),
                    "must be at least 1",
                    "e.g. 2048 for values, 64 for names",
                ))
            } else {
                Ok(v)
            }
        };
        Ok(ValueLimits {
            max_value_length: positive("max_value_length", cfg.max_value_length)?,
            max_rdn_value_length: positive(
                "max_rdn_value_length",
                cfg.max_rdn_value_length.unwrap_or(rdn_default),
            )?,
        })
    }
}

impl Mapping {
    pub fn from_config(
        cfg: &UsersConfig,
        limits: ValueLimits,
        schema: &'static ResourceSchema,
    ) -> Result<Mapping, ConfigError> {
        Self::from_spec(
            &MappingSpec {
                section: "users",
                object_classes: &cfg.object_classes,
                structural_class: cfg.structural_class.as_deref(),
                rdn: &cfg.rdn,
                rdn_fallbacks: &cfg.rdn_fallbacks,
                attributes: &cfg.attributes,
                derive: &cfg.derive,
                reject_unmapped: cfg.reject_unmapped,
                deactivate: Some(&cfg.deactivate),
                required: "userName",
                defaults: &cfg.defaults,
                limits,
                default_type: Some(&cfg.default_type),
            },
            schema,
        )
    }

    pub fn from_spec(
        spec: &MappingSpec<'_>,
        schema: &'static ResourceSchema,
    ) -> Result<Mapping, ConfigError> {
        let sec = spec.section;
        check_object_classes(spec)?;
        let identity = identity(sec, spec.object_classes, spec.structural_class)?;
        let (rdn_attr, rdn_value, rdn_fallbacks) = naming(spec, schema)?;
        // users named by anything but their unique userName may clash (two John Smiths);
        // groups keep answering 409 for a taken name
        let numbered_rdn = sec == "users" && rdn_value.source() != format!("{{{}}}", spec.required);
        let attrs = attributes(spec, schema)?;
        let derived = derived(spec, schema)?;
        let ldap_order = ldap_order(&attrs);
        let default_types = match spec.default_type {
            Some(table) => table
                .iter()
                .map(|(attr, ty)| default_type(sec, attr, ty, &attrs, schema))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        Ok(Mapping {
            schema,
            object_classes: spec.object_classes.to_vec(),
            identity,
            rdn_attr: rdn_attr.into(),
            rdn_value,
            rdn_fallbacks,
            numbered_rdn,
            attrs,
            ldap_order,
            derived,
            reject_unmapped: spec.reject_unmapped,
            section: sec.to_owned(),
            required: spec.required.to_owned(),
            defaults: spec
                .defaults
                .iter()
                .map(|(a, v)| (a.clone(), v.clone()))
                .collect(),
            limits: spec.limits,
            default_types,
            served_elsewhere: Vec::new(),
        })
    }
}

/// `attrs`' indices in the order of their LDAP names (`Mapping::ldap_order`).
fn ldap_order(attrs: &[AttrMapping]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..attrs.len()).collect();
    order.sort_by(|&a, &b| {
        let name = |i: usize| attrs.get(i).map(|m| &m.ldap);
        name(a).cmp(&name(b))
    });
    order
}

fn check_object_classes(spec: &MappingSpec<'_>) -> Result<(), ConfigError> {
    let sec = spec.section;
    if spec.object_classes.is_empty() {
        return Err(ConfigError::new(
            format!("{sec}.object_classes"),
            "no object classes",
            "list the classes new entries get, e.g. [\"inetOrgPerson\"] or [\"groupOfNames\"]",
        ));
    }
    for oc in spec.object_classes {
        check_ldap_name(oc, &format!("{sec}.object_classes"))?;
    }
    Ok(())
}

/// The RDN attribute, its value template and the fallbacks (`rdn`, `rdn_fallbacks`).
fn naming(
    spec: &MappingSpec<'_>,
    schema: &'static ResourceSchema,
) -> Result<(String, Template, Vec<Template>), ConfigError> {
    let sec = spec.section;
    let rdn_example = format!(
        "e.g. rdn = \"uid={{{}}}\" or \"cn={{{}}}\"",
        spec.required, spec.required
    );
    let (rdn_attr, rdn_template) = spec.rdn.split_once('=').ok_or_else(|| {
        ConfigError::new(
            format!("{sec}.rdn"),
            format!("\"{}\" is not of the form attribute={{template}}", spec.rdn),
            &rdn_example,
        )
    })?;
    let rdn_attr = rdn_attr.trim().to_owned();
    check_ldap_name(&rdn_attr, &format!("{sec}.rdn"))?;
    let rdn_value = Template::parse(rdn_template.trim(), schema)
        .map_err(|e| ConfigError::new(format!("{sec}.rdn"), e, &rdn_example))?;
    let rdn_fallbacks = spec
        .rdn_fallbacks
        .iter()
        .map(|t| Template::parse(t, schema))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ConfigError::new(
                format!("{sec}.rdn_fallbacks"),
                e,
                "list value templates, e.g. [\"{name.givenName} {name.familyName}\", \"{userName}\"]",
            )
        })?;
    Ok((rdn_attr, rdn_value, rdn_fallbacks))
}

/// The attribute mappings (and `active`'s), checked as a whole: a multi-valued attribute
/// mapped whole is mapped once, each LDAP attribute from one SCIM attribute, the required
/// attribute mapped.
fn attributes(
    spec: &MappingSpec<'_>,
    schema: &'static ResourceSchema,
) -> Result<Vec<AttrMapping>, ConfigError> {
    let sec = spec.section;
    let max = spec.limits.max_value_length;
    let mut attrs = spec
        .attributes
        .iter()
        .map(|(scim, attr_spec)| parse_mapping(sec, scim, attr_spec, schema, max))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(d) = spec.deactivate {
        attrs.push(active_mapping(d, max)?);
    }
    check_whole_mapped_once(sec, &attrs)?;
    check_ldap_mapped_once(sec, &attrs)?;
    if !attrs
        .iter()
        .any(|m| matches!(m.target, Target::Attr { attr, .. } if attr.name == spec.required))
    {
        return Err(ConfigError::new(
            format!("{sec}.attributes.{}", spec.required),
            format!("{} is not mapped", spec.required),
            format!("add e.g. {} = \"cn\"; SCIM requires it", spec.required),
        ));
    }
    Ok(attrs)
}

/// A multi-valued attribute mapped whole (`roles = "businessCategory"`) has no other
/// mapping of its values.
fn check_whole_mapped_once(sec: &str, attrs: &[AttrMapping]) -> Result<(), ConfigError> {
    for m in attrs {
        let Target::Element {
            attr, every: true, ..
        } = &m.target
        else {
            continue;
        };
        let other = attrs.iter().find(|o| {
            !std::ptr::eq(*o, m)
                && matches!(&o.target, Target::Element { attr: a, .. } if a == attr)
        });
        if let Some(o) = other {
            return Err(ConfigError::new(
                format!("{sec}.attributes.\"{}\"", o.scim),
                format!(
                    "`{}` is mapped whole to `{}`, so its values cannot also be mapped one by one",
                    attr.name, m.ldap
                ),
                format!("remove this line or `{} = \"{}\"`", m.scim, m.ldap),
            ));
        }
    }
    Ok(())
}

/// Each LDAP attribute (a country's name attribute too) is mapped from one SCIM attribute.
fn check_ldap_mapped_once(sec: &str, attrs: &[AttrMapping]) -> Result<(), ConfigError> {
    // attribute names compare without regard to case, as the directory compares them
    let mut seen: HashMap<AttrName, &str> = HashMap::new();
    let ldap_of = |m: &AttrMapping| -> Vec<AttrName> {
        let mut v = vec![m.ldap.clone()];
        if let ValueKind::Country { name_attr: Some(n) } = &m.kind {
            v.push(n.clone());
        }
        v
    };
    for (m, ldap) in attrs
        .iter()
        .flat_map(|m| ldap_of(m).into_iter().map(move |l| (m, l)))
    {
        if let Some(other) = seen.insert(ldap.clone(), &m.scim) {
            return Err(ConfigError::new(
                format!("{sec}.attributes.\"{}\"", m.scim),
                format!("LDAP attribute `{ldap}` is already mapped from `{other}`"),
                "map each LDAP attribute from one SCIM attribute only",
            ));
        }
    }
    Ok(())
}

/// `[users.derive]`: LDAP attributes made from templates or expressions when nothing maps
/// them a value. Each is compiled and checked here, so a wrong one stops the start.
fn derived(
    spec: &MappingSpec<'_>,
    schema: &'static ResourceSchema,
) -> Result<Vec<(AttrName, Vec<Derivation>)>, ConfigError> {
    let sec = spec.section;
    let mut derived = Vec::new();
    for (ldap, sources) in spec.derive {
        check_ldap_name(ldap, &format!("{sec}.derive.{ldap}"))?;
        let parsed = sources
            .iter()
            .enumerate()
            .map(|(i, source)| {
                let key = format!("{sec}.derive.{ldap}[{i}]");
                if crate::mapping::expression::is_expression(source) {
                    Expression::compile(source, schema)
                        .map(Derivation::Expression)
                        .map_err(|e| ConfigError::new(key, e, format!(
                            "an expression like \"{{{{ (name.givenName ~ '.' ~ name.familyName) | ascii | lower | left(20) }}}}\"; filters: {}",
                            crate::mapping::expression::FILTERS.join(", ")
                        )))
                } else {
                    Template::parse(source, schema)
                        .map(Derivation::Template)
                        .map_err(|e| ConfigError::new(
                            key,
                            e,
                            "use templates like \"{name.givenName} {name.familyName}\" or \"{userName}\", or an expression in {{ … }}",
                        ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        derived.push((AttrName::from(ldap.as_str()), parsed));
    }
    Ok(derived)
}

/// Structural classes of users and groups in the schemas the bridge is used with, the most
/// specific first: the first the admin lists identifies the entries (AD's `user` before
/// `person`, `inetOrgPerson` before `organizationalPerson`).
const KNOWN_STRUCTURAL: &[&str] = &[
    "user",
    "inetOrgPerson",
    "organizationalPerson",
    "person",
    "account",
    "group",
    "groupOfNames",
    "groupOfUniqueNames",
    "posixGroup",
    "groupOfURLs",
];

/// Classes derived from a structural class that stand for something else: AD's computers
/// (and managed service accounts, derived from `computer`) are `user`s.
fn excluded_below(structural: &str) -> Vec<String> {
    if structural.eq_ignore_ascii_case("user") {
        vec!["computer".to_owned()]
    } else {
        Vec::new()
    }
}

/// The identity of a section's entries: `structural_class`, else the most specific known
/// structural class among `object_classes`.
fn identity(sec: &str, classes: &[String], named: Option<&str>) -> Result<Identity, ConfigError> {
    let listed = |c: &str| classes.iter().find(|x| x.eq_ignore_ascii_case(c));
    let structural = match named {
        Some(n) => {
            check_ldap_name(n, &format!("{sec}.structural_class"))?;
            listed(n).cloned().ok_or_else(|| {
                ConfigError::new(
                    format!("{sec}.structural_class"),
                    format!("`{n}` is not among {sec}.object_classes"),
                    "name the structural class new entries get, one of object_classes",
                )
            })?
        }
        None => KNOWN_STRUCTURAL
            .iter()
            .find_map(|k| listed(k).cloned())
            .ok_or_else(|| {
                ConfigError::new(
                    format!("{sec}.structural_class"),
                    format!(
                        "{sec}.object_classes ({}) names no structural class the bridge knows ({})",
                        classes.join(", "),
                        KNOWN_STRUCTURAL.join(", ")
                    ),
                    format!("set {sec}.structural_class to the structural class that identifies these entries"),
                )
            })?,
    };
    Ok(Identity {
        excluded: excluded_below(&structural),
        structural,
    })
}
