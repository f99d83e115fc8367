//! Value expressions: a `[users.derive]` value written as a MiniJinja template (`{{ … }}`),
//! for what `{a} {b}` templates cannot say: case, ASCII folding (`José Müller` →
//! `jose.muller`), the first N characters, replace, a default when empty, joins.
//!
//! The engine is a sandbox: an environment with no loader, no globals and only the filters
//! listed in `FILTERS`; a render runs on a fuel budget, and its source is bounded. Every
//! expression is compiled at start, the attributes it names are looked up in the User
//! schema, and it is rendered once against a sample user with every attribute set and once
//! against an empty one, so an unknown attribute or filter or a wrong argument stops the start
//! with an error naming the key, not the first request.
//!
//! What a template sees: the user's core attributes by name (`userName`, `name.givenName`,
//! `emails[0].value`) and the enterprise extension's as `enterprise.department`.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior, Value};

use crate::scim::schema::{AttrDef, AttrType, Container, ResourceSchema, ENTERPRISE_USER_SCHEMA};
use crate::scim::value::{Complex, Resource, ScimValue, Simple};

/// The longest expression source: an admin's one-liner, not a program.
pub const MAX_SOURCE: usize = 1024;

/// The work one render may do (about this many instructions); far more than any
/// expression over one user needs, far less than a loop that would stall a request.
const FUEL: u64 = 20_000;

/// The name under which the enterprise extension's attributes are seen.
const ENTERPRISE: &str = "enterprise";

/// The template name, for error messages.
const NAME: &str = "expression";

/// The filters an expression may use.
pub const FILTERS: &[&str] = &[
    "lower",
    "upper",
    "title",
    "capitalize",
    "trim",
    "replace",
    "default",
    "join",
    "ascii",
    "left",
];

/// Whether a derive value is an expression (else a `{a}` template).
pub fn is_expression(source: &str) -> bool {
    source.contains("{{") || source.contains("{%")
}

/// A compiled expression.
#[derive(Clone)]
pub struct Expression {
    source: String,
    env: Arc<Environment<'static>>,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

impl PartialEq for Expression {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Expression {
    /// Compiles and checks `source` against `schema`; the error says what is wrong.
    pub fn compile(source: &str, schema: &ResourceSchema) -> Result<Expression, String> {
        if source.len() > MAX_SOURCE {
            return Err(format!(
                "the expression is {} characters long; at most {MAX_SOURCE}",
                source.len()
            ));
        }
        let mut env = Environment::empty();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_fuel(Some(FUEL));
        add_filters(&mut env);
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|e| describe(&e))?;
        let template = env.get_template(NAME).map_err(|e| describe(&e))?;
        for var in template.undeclared_variables(true) {
            check_variable(&var, schema)?;
        }
        drop(template);
        let expr = Expression {
            source: source.to_owned(),
            env: Arc::new(env),
        };
        for sample in [sample_user(schema), Resource::new()] {
            expr.try_render(&sample)?;
        }
        Ok(expr)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The value for `user`, or `None` when it renders empty (or fails: a value the start
    /// check could not foresee; said in the log).
    pub fn render(&self, user: &Resource) -> Option<String> {
        match self.try_render(user) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(expression = %self.source, error = %e, "a derive expression failed for this user; the attribute gets no value from it");
                None
            }
        }
    }

    fn try_render(&self, user: &Resource) -> Result<Option<String>, String> {
        let template = self.env.get_template(NAME).map_err(|e| describe(&e))?;
        let out = template.render(context(user)).map_err(|e| describe(&e))?;
        let out = out.trim();
        Ok((!out.is_empty()).then(|| out.to_owned()))
    }
}

/// The enabled filters: MiniJinja's own string filters, and `ascii` and `left`.
fn add_filters(env: &mut Environment<'static>) {
    use minijinja::filters;
    env.add_filter("lower", filters::lower);
    env.add_filter("upper", filters::upper);
    env.add_filter("title", filters::title);
    env.add_filter("capitalize", filters::capitalize);
    env.add_filter("trim", filters::trim);
    env.add_filter("replace", filters::replace);
    env.add_filter("default", filters::default);
    env.add_filter("join", filters::join);
    // `José Müller` → `Jose Muller`: what AD's logon names and mail local parts can hold
    env.add_filter("ascii", |s: String| deunicode::deunicode(&s));
    // the first n characters (not bytes)
    env.add_filter("left", |s: String, n: usize| {
        s.chars().take(n).collect::<String>()
    });
}

/// A MiniJinja error as one line: what, and where in the expression.
fn describe(e: &minijinja::Error) -> String {
    let mut out = e.to_string();
    if e.kind() == minijinja::ErrorKind::UnknownFilter {
        out.push_str(&format!(" (the filters are: {})", FILTERS.join(", ")));
    }
    out
}

/// `name.givenName`, `enterprise.department`, `emails`: an attribute the schema has.
fn check_variable(var: &str, schema: &ResourceSchema) -> Result<(), String> {
    let mut parts = var.split('.');
    let first = parts.next().unwrap_or_default();
    let unknown = || {
        format!("the User has no attribute {var} (core attributes by name, e.g. name.givenName; the enterprise extension's as enterprise.department)")
    };
    let (def, sub): (&AttrDef, Option<&str>) = if first == ENTERPRISE {
        let Some(name) = parts.next() else {
            return Ok(());
        };
        let ext = schema
            .extension(ENTERPRISE_USER_SCHEMA)
            .ok_or_else(unknown)?;
        (ext.attr(name).ok_or_else(unknown)?, parts.next())
    } else {
        let (_, def) = schema.resolve(None, first).ok_or_else(unknown)?;
        (def, parts.next())
    };
    match sub {
        Some(s) if !def.multi_valued && def.sub(s).is_none() => Err(unknown()),
        _ => Ok(()),
    }
}

/// What a template sees of `user`.
fn context(user: &Resource) -> Value {
    let mut top: BTreeMap<String, Value> = user
        .core_attrs()
        .map(|a| a.iter().map(|(k, v)| (k.to_string(), value(v))).collect())
        .unwrap_or_default();
    if let Some(ext) = user.extension(ENTERPRISE_USER_SCHEMA) {
        let ext: BTreeMap<String, Value> =
            ext.iter().map(|(k, v)| (k.to_string(), value(v))).collect();
        top.insert(ENTERPRISE.to_owned(), Value::from(ext));
    }
    Value::from(top)
}

fn value(v: &ScimValue) -> Value {
    match v {
        ScimValue::Simple(s) => simple(s),
        ScimValue::Complex(c) => complex(c),
        ScimValue::Multi(items) => items.iter().map(complex).collect(),
    }
}

fn complex(c: &Complex) -> Value {
    let map: BTreeMap<String, Value> = c.iter().map(|(k, v)| (k.to_string(), simple(v))).collect();
    Value::from(map)
}

fn simple(s: &Simple) -> Value {
    match s {
        Simple::Boolean(b) => Value::from(*b),
        other => Value::from(other.as_str().unwrap_or_default()),
    }
}

/// A user with every string attribute of `schema` set (multi-valued ones with one value),
/// for the start check: an expression that fails on it would fail on real users.
fn sample_user(schema: &ResourceSchema) -> Resource {
    let sample = |d: &AttrDef| match d.ty {
        AttrType::Boolean => Simple::Boolean(true),
        _ => Simple::String(format!("Sample {}", d.name)),
    };
    let complex = |d: &'static AttrDef| {
        d.sub_attributes
            .iter()
            .fold(Complex::new(), |c, s| c.with(s.name, sample(s)))
    };
    let mut user = Resource::new();
    let containers = std::iter::once((Container::Core, schema.core)).chain(
        schema
            .extensions
            .iter()
            .map(|e| (Container::Extension(e.id), *e)),
    );
    for (container, def) in containers {
        for a in def.attributes {
            let v = match (a.multi_valued, a.ty) {
                (true, _) => ScimValue::Multi(vec![complex(a)]),
                (false, AttrType::Complex) => ScimValue::Complex(complex(a)),
                (false, _) => ScimValue::Simple(sample(a)),
            };
            user.set(container, a.name, v);
        }
    }
    user
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::resource::normalize_resource;
    use crate::scim::schema::USER_RESOURCE;
    use serde_json::json;

    fn user(v: serde_json::Value) -> Resource {
        normalize_resource(&v, &USER_RESOURCE)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .resource
    }

    fn compile(src: &str) -> Result<Expression, String> {
        Expression::compile(src, &USER_RESOURCE)
    }

    #[test]
    fn folds_diacritics_lowercases_and_cuts_to_twenty_characters() {
        let e = compile("{{ (name.givenName ~ '.' ~ name.familyName) | ascii | lower | replace(' ', '') | left(20) }}")
            .unwrap_or_else(|e| panic!("{e}"));
        let u =
            user(json!({"userName": "jm", "name": {"givenName": "José", "familyName": "Müller"}}));
        assert_eq!(e.render(&u).as_deref(), Some("jose.muller"));
        let u = user(
            json!({"userName": "x", "name": {"givenName": "Maximiliane", "familyName": "Oberstdorfer-Schmidt"}}),
        );
        assert_eq!(e.render(&u).as_deref(), Some("maximiliane.oberstdo"));
    }

    #[test]
    fn defaults_joins_and_the_enterprise_extension() {
        let e = compile("{{ enterprise.department | default('Staff') | upper }}")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            e.render(&user(json!({"userName": "a"}))).as_deref(),
            Some("STAFF")
        );
        let u = user(
            json!({"userName": "a", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales"}}),
        );
        assert_eq!(e.render(&u).as_deref(), Some("SALES"));
        let e = compile("{{ [name.givenName, name.familyName] | join(' ') }}")
            .unwrap_or_else(|e| panic!("{e}"));
        let u = user(json!({"userName": "a", "name": {"givenName": "Ann", "familyName": "Lee"}}));
        assert_eq!(e.render(&u).as_deref(), Some("Ann Lee"));
    }

    #[test]
    fn an_empty_result_is_no_value() {
        let e = compile("{{ nickName | lower }}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.render(&user(json!({"userName": "a"}))), None);
    }

    #[test]
    fn unknown_attributes_filters_and_bad_syntax_are_refused_at_compile() {
        for (src, says) in [
            ("{{ name.givenNam }}", "no attribute name.givenNam"),
            ("{{ departmen }}", "no attribute departmen"),
            ("{{ enterprise.dept }}", "no attribute enterprise.dept"),
            ("{{ userName | shout }}", "the filters are"),
            ("{{ userName | left('x') }}", ""),
            ("{{ userName ", ""),
        ] {
            let err = compile(src)
                .err()
                .unwrap_or_else(|| panic!("{src} compiled"));
            assert!(err.contains(says), "{src}: {err}");
        }
        let long = format!("{{{{ userName }}}}{}", " ".repeat(MAX_SOURCE));
        assert!(compile(&long).is_err());
    }

    #[test]
    fn a_runaway_expression_runs_out_of_fuel() {
        let src = "{% for a in userName * 100000 %}{% for b in userName * 100000 %}x{% endfor %}{% endfor %}";
        let err = compile(src).err().unwrap_or_default();
        assert!(err.contains("fuel"), "{err}");
        let src = "{% for a in emails %}{% for b in emails %}{{ a.value }}{% endfor %}{% endfor %}";
        assert!(compile(src).is_ok());
    }
}
