//! Applying PATCH operations to a resource (RFC 7644 §3.5.2): add, replace and remove at a path,
//! with value filters, on single-valued and multi-valued attributes, with the IdPs' own dialects.
//! The operations arrive resolved and typed (`parse.rs`), so this is about the rules alone.

use crate::scim::error::{ScimError, ScimResult};
use crate::scim::filter::{matches, AttrPath, CompValue, CompareOp, Filter};
use crate::scim::schema::{AttrDef, AttrType, Mutability};
use crate::scim::value::{Attributes, Complex, Resource, ScimValue, Simple};

use super::{AttrTarget, OpKind, PatchOperation, PatchTarget};

/// Applies `ops` in order to `resource`, whose id is `id`.
pub fn apply_patch(resource: &mut Resource, ops: &[PatchOperation], id: &str) -> ScimResult<()> {
    for op in ops {
        match &op.target {
            PatchTarget::Extension(urn) => resource.remove_extension(urn),
            PatchTarget::Attribute(t) => apply_at(resource, op.op, t, op.value.as_ref(), id)?,
        }
    }
    // Drop extensions the operations emptied.
    resource.drop_empty_extensions();
    Ok(())
}

fn apply_at(
    resource: &mut Resource,
    op: OpKind,
    t: &AttrTarget,
    value: Option<&ScimValue>,
    id: &str,
) -> ScimResult<()> {
    let def = t.def;
    if def.mutability == Mutability::ReadOnly {
        // Okta renames a group with `{"id": <its id>, "displayName": …}`: a read-only value
        // that agrees with the resource changes nothing and is ignored (RFC 7643 §2.2)
        let current = match def.name {
            "id" => Some(ScimValue::string(id)),
            _ => resource.get(t.container, def.name).cloned(),
        };
        let agrees = op != OpKind::Remove
            && t.filter.is_none()
            && t.sub.is_none()
            && value.is_some()
            && value.cloned() == current;
        if agrees {
            return Ok(());
        }
        return Err(ScimError::mutability(format!(
            "'{}' is read-only: it cannot be changed{}",
            def.name,
            if def.name == "id" {
                " (send the resource's own id, or leave it out)"
            } else {
                ""
            }
        )));
    }
    if let Some(sd) = t.sub.filter(|sd| sd.mutability == Mutability::ReadOnly) {
        return Err(ScimError::mutability(format!(
            "'{}.{}' is read-only",
            def.name, sd.name
        )));
    }
    let target = resource.attrs_mut(t.container);
    if def.multi_valued {
        apply_multi(target, op, t, value)
    } else {
        apply_single(target, op, def, t.sub, value);
        Ok(())
    }
}

fn apply_single(
    target: &mut Attributes,
    op: OpKind,
    def: &'static AttrDef,
    sub: Option<&'static AttrDef>,
    value: Option<&ScimValue>,
) {
    let value = value.filter(|_| op != OpKind::Remove);
    match (sub, value) {
        (None, None) => {
            target.remove(def.name);
        }
        (None, Some(ScimValue::Complex(new))) => {
            // RFC 7644 §3.5.2.3: sub-attributes not given are left unchanged.
            match target.get_mut(def.name) {
                Some(ScimValue::Complex(existing)) => existing.merge(new.clone()),
                _ => target.set(def.name, ScimValue::Complex(new.clone())),
            }
        }
        (None, Some(v)) => target.set(def.name, v.clone()),
        (Some(sd), value) => {
            let mut obj = match target.remove(def.name) {
                Some(ScimValue::Complex(c)) => c,
                _ => Complex::new(),
            };
            match value.and_then(ScimValue::as_simple) {
                Some(v) => obj.set(sd.name, v.clone()),
                None => obj.remove(sd.name),
            }
            if !obj.is_empty() {
                target.set(def.name, ScimValue::Complex(obj));
            }
        }
    }
}

fn apply_multi(
    target: &mut Attributes,
    op: OpKind,
    t: &AttrTarget,
    value: Option<&ScimValue>,
) -> ScimResult<()> {
    let def = t.def;
    let mut items: Vec<Complex> = match target.remove(def.name) {
        Some(ScimValue::Multi(a)) => a,
        Some(ScimValue::Complex(c)) => vec![c],
        _ => Vec::new(),
    };
    // which values this operation wrote, for the primary rule
    let touched = match (&t.filter, t.sub) {
        (None, None) => whole(&mut items, op, value),
        (None, Some(sd)) => {
            every_sub(&mut items, sd, value.and_then(ScimValue::as_simple));
            Vec::new()
        }
        (Some(f), sub) => filtered(&mut items, op, t, f, sub, value)?,
    };
    // Only one value may be primary (RFC 7643 §2.4): the one just written wins.
    let newly_primary = touched
        .iter()
        .any(|&i| items.get(i).is_some_and(Complex::is_primary));
    if newly_primary {
        for (i, it) in items.iter_mut().enumerate() {
            if !touched.contains(&i) && it.is_primary() {
                it.set("primary", Simple::Boolean(false));
            }
        }
    }
    if !items.is_empty() {
        target.set(def.name, ScimValue::Multi(items));
    }
    Ok(())
}

/// An operation on the whole attribute (`"path": "emails"`); returns the indexes written.
fn whole(items: &mut Vec<Complex>, op: OpKind, value: Option<&ScimValue>) -> Vec<usize> {
    let mut touched = Vec::new();
    match op {
        // Entra removes values by value: `{"op":"remove","path":"members","value":[…]}`.
        OpKind::Remove => match value {
            Some(v) => {
                let gone = as_items(Some(v));
                items.retain(|it| !gone.iter().any(|g| same_item(it, g)));
            }
            None => items.clear(),
        },
        OpKind::Replace => {
            *items = as_items(value);
            touched = (0..items.len()).collect();
        }
        OpKind::Add => {
            for new in as_items(value) {
                match items.iter().position(|it| same_item(it, &new)) {
                    Some(i) => {
                        if let Some(it) = items.get_mut(i) {
                            it.merge(new);
                        }
                        touched.push(i);
                    }
                    None => {
                        items.push(new);
                        touched.push(items.len() - 1);
                    }
                }
            }
        }
    }
    touched
}

/// A sub-attribute of every value (`"path": "emails.display"`), or a first value holding it.
fn every_sub(items: &mut Vec<Complex>, sd: &'static AttrDef, value: Option<&Simple>) {
    if items.is_empty() {
        if let Some(v) = value {
            items.push(Complex::new().with(sd.name, v.clone()));
        }
    } else {
        for it in items.iter_mut() {
            set_sub(it, sd, value);
        }
    }
    items.retain(|it| !is_hollow(it));
}

/// An operation on the values filter `f` selects (`emails[type eq "work"]`, maybe with a
/// sub-attribute after it); returns the indexes written.
fn filtered(
    items: &mut Vec<Complex>,
    op: OpKind,
    t: &AttrTarget,
    f: &Filter,
    sub: Option<&'static AttrDef>,
    value: Option<&ScimValue>,
) -> ScimResult<Vec<usize>> {
    let def = t.def;
    let case_exact = |p: &AttrPath| def.sub(&p.name).map(|d| d.case_exact).unwrap_or(false);
    let hits: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, it)| matches(f, *it, &case_exact))
        .map(|(i, _)| i)
        .collect();
    let mut touched = Vec::new();
    match (op, sub, value) {
        (OpKind::Remove, None, _) => {
            let mut i = 0;
            items.retain(|_| {
                i += 1;
                !hits.contains(&(i - 1))
            });
        }
        (_, Some(sd), None) => {
            for &i in &hits {
                if let Some(it) = items.get_mut(i) {
                    set_sub(it, sd, None);
                }
            }
            items.retain(|it| !is_hollow(it));
        }
        (_, None, None) => {}
        (_, sub, Some(v)) if hits.is_empty() => {
            // IdPs replace `emails[type eq "work"].value` on users that have no work email
            // yet: create the value the filter describes.
            let mut element = template_from(f, def).ok_or_else(|| {
                ScimError::no_target(format!("no value of '{}' matches the filter", t.shown))
            })?;
            match sub {
                Some(sd) => set_sub(&mut element, sd, v.as_simple()),
                None => element.merge(as_element(v)),
            }
            items.push(element);
            touched.push(items.len() - 1);
        }
        (op, sub, Some(v)) => {
            for &i in &hits {
                let Some(it) = items.get_mut(i) else { continue };
                match sub {
                    Some(sd) => set_sub(it, sd, v.as_simple()),
                    None if op == OpKind::Replace => {
                        let mut element = template_from(f, def).unwrap_or_default();
                        element.merge(as_element(v));
                        *it = element;
                    }
                    None => it.merge(as_element(v)),
                }
                touched.push(i);
            }
        }
    }
    Ok(touched)
}

/// The values a multi-valued attribute's operation carries.
fn as_items(value: Option<&ScimValue>) -> Vec<Complex> {
    match value {
        Some(ScimValue::Multi(a)) => a.clone(),
        Some(ScimValue::Complex(c)) => vec![c.clone()],
        _ => Vec::new(),
    }
}

/// The one element a filtered path's value is.
fn as_element(value: &ScimValue) -> Complex {
    match value {
        ScimValue::Complex(c) => c.clone(),
        ScimValue::Multi(a) => a.first().cloned().unwrap_or_default(),
        ScimValue::Simple(_) => Complex::new(),
    }
}

/// Two values of a multi-valued attribute are the same when their `value` sub-attributes are,
/// or, lacking those, when they are equal.
fn same_item(a: &Complex, b: &Complex) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => match (x.as_str(), y.as_str()) {
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
            _ => x == y,
        },
        _ => a == b,
    }
}

fn set_sub(item: &mut Complex, sd: &'static AttrDef, value: Option<&Simple>) {
    match value {
        Some(v) => item.set(sd.name, v.clone()),
        None => item.remove(sd.name),
    }
}

/// An element left with only labels (type, primary, display) holds no data any more.
fn is_hollow(item: &Complex) -> bool {
    item.iter()
        .all(|(k, _)| matches!(k, "type" | "primary" | "display"))
}

/// The element a filter like `type eq "work" and primary eq true` describes, if it is a
/// conjunction of equalities on sub-attributes `def` has.
fn template_from(f: &Filter, def: &'static AttrDef) -> Option<Complex> {
    fn collect(f: &Filter, def: &'static AttrDef, out: &mut Complex) -> bool {
        match f {
            Filter::And(parts) => parts.iter().all(|x| collect(x, def, out)),
            Filter::Compare(p, CompareOp::Eq, v) if p.sub.is_none() => {
                let Some(sd) = def.sub(&p.name) else {
                    return false;
                };
                let v = match (v, sd.ty) {
                    (CompValue::Bool(b), _) => Simple::Boolean(*b),
                    (CompValue::Str(s), AttrType::Boolean) => match s.to_ascii_lowercase().as_str()
                    {
                        "true" => Simple::Boolean(true),
                        "false" => Simple::Boolean(false),
                        _ => return false,
                    },
                    (CompValue::Str(s), AttrType::Reference) => Simple::Reference(s.clone()),
                    (CompValue::Str(s), _) => Simple::String(s.clone()),
                    (CompValue::Num(n), _) => Simple::String(n.to_string()),
                    (CompValue::Null, _) => return false,
                };
                out.set(sd.name, v);
                true
            }
            _ => false,
        }
    }
    let mut c = Complex::new();
    (collect(f, def, &mut c) && !c.is_empty()).then_some(c)
}
