//! SCIM filter → LDAP filter through the mapping. Attributes that are not mapped hold no
//! value, so comparisons on them match nothing (and `ne` everything), as in LDAP. Values of a
//! multi-valued attribute are the mapping's typed elements: `type` and `primary` inside a
//! value filter are constants of each element.

mod terms;

use crate::directory::LdapFilter;
use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::schema::{AttrDef, AttrType, Container, Returned};
use crate::scim::{ScimError, ScimResult};

use super::{AttrMapping, Mapping, Target};
use terms::{
    compare_mapped, each, id_term, in_element, is_ordering, meta_filter, unmapped, write_only,
};

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
            Filter::And(parts) => each(parts, positive, &rec).map(LdapFilter::and),
            Filter::Or(parts) => each(parts, positive, &rec).map(LdapFilter::or),
            Filter::Not(a) => rec(a, !positive).map(LdapFilter::negate),
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
            "id" => return id_term(cmp, id_filter),
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
        let mappings = self.mappings_at(container, def, sub, cmp.is_none());
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

    /// The mappings of a single-valued attribute (or its sub-attribute `sub`); for a
    /// presence test of a complex attribute (`name pr`), any mapped part of it.
    fn mappings_at(
        &self,
        container: Container,
        def: &AttrDef,
        sub: Option<&AttrDef>,
        presence: bool,
    ) -> Vec<&AttrMapping> {
        self.attrs
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
                (
                    Target::Sub {
                        container: c, attr, ..
                    },
                    None,
                ) => presence && *c == container && attr.name == def.name,
                _ => false,
            })
            .collect()
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
                    .map(|m| LdapFilter::Present(m.ldap.to_string()))
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
