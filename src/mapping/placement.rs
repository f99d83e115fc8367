//! Placement rules: the container under the tenant's where a user's entry lives, chosen by
//! the first rule whose SCIM filter matches the user (department, country, employee type),
//! the tenant's container when none does. The filters are parsed and their attributes
//! resolved against the User schema at start, so a rule that could never match is an error
//! naming its key, not a silent default.

use std::sync::Arc;

use crate::config::{ConfigError, PlacementConfig};
use crate::directory::filter::is_under;
use crate::directory::Dn;
use crate::scim::filter::{matches, parse_filter, AttrPath, Filter};
use crate::scim::schema::{AttrDef, Container, ResourceSchema};
use crate::scim::value::Resource;

/// One rule: users `when` matches live under `container`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its config key (`users.placement[2]`), for `explain` and errors.
    pub key: String,
    /// The filter as the admin wrote it.
    pub when_text: String,
    when: Filter,
    pub container: Dn,
}

/// A tenant's rules, in order.
#[derive(Debug, Clone)]
pub struct Placement {
    rules: Arc<[Rule]>,
    schema: &'static ResourceSchema,
}

/// Where a user goes, and which rule said so (none: the tenant's container).
#[derive(Debug, Clone, Copy)]
pub struct Placed<'a> {
    pub container: &'a Dn,
    pub rule: Option<&'a Rule>,
}

impl PartialEq for Placement {
    fn eq(&self, other: &Self) -> bool {
        self.rules.len() == other.rules.len()
            && self
                .rules
                .iter()
                .zip(other.rules.iter())
                .all(|(a, b)| a.when_text == b.when_text && a.container == b.container)
    }
}

impl Eq for Placement {}

impl Placement {
    /// No rules: every user lives in the tenant's container.
    pub fn none(schema: &'static ResourceSchema) -> Placement {
        Placement {
            rules: Arc::from(Vec::new()),
            schema,
        }
    }

    /// The rules at `key` (`users.placement`), each checked: its filter parses and names
    /// only attributes of the User schema, and its container lies under `tenant_container`.
    pub fn compile(
        key: &str,
        raw: &[PlacementConfig],
        tenant: &str,
        tenant_container: &Dn,
        schema: &'static ResourceSchema,
    ) -> Result<Placement, ConfigError> {
        let rules = raw
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let key = format!("{key}[{i}]");
                let mut when = parse_filter(&r.when).map_err(|e| {
                    ConfigError::new(
                        format!("{key}.when"),
                        format!("not a SCIM filter: {e}"),
                        "e.g. when = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"Sales\"'",
                    )
                })?;
                resolve_paths(&mut when, schema, &format!("{key}.when"))?;
                let container = Dn::new(r.container.trim());
                if !container.contains('=') {
                    return Err(ConfigError::new(
                        format!("{key}.container"),
                        format!("\"{}\" is not a DN", r.container),
                        format!("a container under {tenant_container}, e.g. \"ou=sales,{tenant_container}\""),
                    ));
                }
                if !is_under(&container, tenant_container) && container != *tenant_container {
                    return Err(ConfigError::new(
                        format!("{key}.container"),
                        format!(
                            "{container} is not under tenant {tenant}'s users container {tenant_container}: the tenant would place accounts where it cannot see them"
                        ),
                        format!("use a container under {tenant_container}, or give tenant {tenant} its own rules in [[tenants.{tenant}.placement]]"),
                    ));
                }
                Ok(Rule {
                    key,
                    when_text: r.when.clone(),
                    when,
                    container,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Placement {
            rules: Arc::from(rules),
            schema,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Where `user` goes: the first rule that matches it, else `default`.
    pub fn place<'a>(&'a self, user: &Resource, default: &'a Dn) -> Placed<'a> {
        let case_exact = |p: &AttrPath| self.schema.case_exact(p);
        match self
            .rules
            .iter()
            .find(|r| matches(&r.when, user, &case_exact))
        {
            Some(rule) => Placed {
                container: &rule.container,
                rule: Some(rule),
            },
            None => Placed {
                container: default,
                rule: None,
            },
        }
    }
}

/// Resolves every attribute `f` names against `schema`, in place: each path gets its
/// canonical name and, for an extension's attribute, its URN (the evaluator finds values by
/// those). An attribute the schema lacks is an error naming `key`.
fn resolve_paths(f: &mut Filter, schema: &ResourceSchema, key: &str) -> Result<(), ConfigError> {
    let unknown = |p: &AttrPath| {
        ConfigError::new(
            key,
            format!("the User schema has no attribute {p}"),
            "name a User attribute, e.g. title, userType, addresses[type eq \"work\"].country or urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        )
    };
    match f {
        Filter::And(parts) | Filter::Or(parts) => parts
            .iter_mut()
            .try_for_each(|p| resolve_paths(p, schema, key)),
        Filter::Not(inner) => resolve_paths(inner, schema, key),
        Filter::Present(p) | Filter::Compare(p, _, _) => {
            let def = canonical(p, schema).ok_or_else(|| unknown(p))?;
            if let Some(s) = &p.sub {
                let sub = def.sub(s).ok_or_else(|| unknown(p))?;
                p.sub = Some(sub.name.to_owned());
            }
            Ok(())
        }
        Filter::ValuePath(p, inner) => {
            let def = canonical(p, schema).ok_or_else(|| unknown(p))?;
            resolve_subs(inner, def).map_err(|sub| {
                unknown(&AttrPath {
                    urn: p.urn.clone(),
                    name: p.name.clone(),
                    sub: Some(sub),
                })
            })
        }
    }
}

/// Gives `p` its canonical name and URN; its definition, when the schema has it.
fn canonical(p: &mut AttrPath, schema: &ResourceSchema) -> Option<&'static AttrDef> {
    let (container, def) = schema.resolve(p.urn.as_deref(), &p.name)?;
    p.name = def.name.to_owned();
    p.urn = match container {
        Container::Core => None,
        Container::Extension(urn) => Some(urn.to_owned()),
    };
    Some(def)
}

/// Inside `attr[…]`, the paths are `def`'s sub-attributes: canonical names, or the one it
/// lacks.
fn resolve_subs(f: &mut Filter, def: &AttrDef) -> Result<(), String> {
    match f {
        Filter::And(parts) | Filter::Or(parts) => {
            parts.iter_mut().try_for_each(|p| resolve_subs(p, def))
        }
        Filter::Not(inner) => resolve_subs(inner, def),
        Filter::Present(p) | Filter::Compare(p, _, _) | Filter::ValuePath(p, _) => {
            match def.sub(&p.name) {
                Some(sub) => {
                    p.name = sub.name.to_owned();
                    Ok(())
                }
                None => Err(p.name.clone()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{Container, USER_RESOURCE};
    use crate::scim::value::ScimValue;

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn rules(rules: &[(&str, &str)]) -> Result<Placement, ConfigError> {
        let raw: Vec<PlacementConfig> = rules
            .iter()
            .map(|(w, c)| PlacementConfig {
                when: (*w).to_owned(),
                container: (*c).to_owned(),
            })
            .collect();
        Placement::compile(
            "users.placement",
            &raw,
            "default",
            &Dn::new("ou=people,dc=example,dc=org"),
            &USER_RESOURCE,
        )
    }

    fn in_department(d: &str) -> Resource {
        let mut r = Resource::new();
        r.set(Container::Core, "userName", ScimValue::string("u"));
        r.set(
            Container::Extension(ENTERPRISE),
            "department",
            ScimValue::string(d),
        );
        r
    }

    #[test]
    fn the_first_matching_rule_places_the_user_and_none_means_the_tenant_container() {
        let p = rules(&[
            (
                &format!("{ENTERPRISE}:department eq \"sales\""),
                "ou=sales,ou=people,dc=example,dc=org",
            ),
            ("department pr", "ou=staff,ou=people,dc=example,dc=org"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let default = Dn::new("ou=people,dc=example,dc=org");
        let placed = p.place(&in_department("Sales"), &default);
        assert_eq!(
            placed.container.as_str(),
            "ou=sales,ou=people,dc=example,dc=org"
        );
        assert_eq!(
            placed.rule.map(|r| r.key.as_str()),
            Some("users.placement[0]")
        );
        let placed = p.place(&in_department("R&D"), &default);
        assert_eq!(
            placed.container.as_str(),
            "ou=staff,ou=people,dc=example,dc=org"
        );
        let placed = p.place(&Resource::new(), &default);
        assert_eq!((placed.container, placed.rule.is_none()), (&default, true));
    }

    #[test]
    fn a_container_outside_the_tenant_is_refused_naming_the_key() {
        let e = rules(&[
            ("title pr", "ou=people,dc=example,dc=org"),
            ("title pr", "ou=sales,dc=example,dc=org"),
        ])
        .err()
        .map(|e| e.key);
        assert_eq!(e.as_deref(), Some("users.placement[1].container"));
    }

    #[test]
    fn a_filter_on_an_unknown_attribute_or_bad_syntax_is_refused_naming_the_key() {
        for when in [
            "departmnt eq \"x\"",
            "name.nickname pr",
            "emails[kind eq \"x\"]",
            "title eq",
        ] {
            let e = rules(&[(when, "ou=a,ou=people,dc=example,dc=org")]).err();
            assert_eq!(
                e.map(|e| e.key).as_deref(),
                Some("users.placement[0].when"),
                "{when}"
            );
        }
    }
}
