use super::*;
use crate::scim::limits::Limits;
use crate::scim::schema::Container;
use crate::scim::value::{Complex, Resource, ScimValue, Simple};
use serde_json::{json, Value};

/// Any JSON resource as the typed model, without a schema (the RFC's examples use
/// attributes ours lacks, such as `ims`): names are leaked to be `'static`, an array of
/// strings (`schemas`) becomes values with `value`, a `urn:` key an extension.
fn typed(v: &Value) -> Resource {
    fn name(k: &str) -> &'static str {
        Box::leak(k.to_owned().into_boxed_str())
    }
    fn simple(v: &Value) -> Option<Simple> {
        match v {
            Value::String(s) => Some(Simple::String(s.clone())),
            Value::Bool(b) => Some(Simple::Boolean(*b)),
            Value::Number(n) => Some(Simple::String(n.to_string())),
            _ => None,
        }
    }
    fn complex(v: &Value) -> Complex {
        match v {
            Value::Object(m) => m.iter().fold(Complex::new(), |c, (k, v)| match simple(v) {
                Some(s) => c.with(name(k), s),
                None => c,
            }),
            other => simple(other)
                .map(|s| Complex::new().with("value", s))
                .unwrap_or_default(),
        }
    }
    fn value(v: &Value) -> Option<ScimValue> {
        match v {
            Value::Array(a) => Some(ScimValue::Multi(a.iter().map(complex).collect())),
            Value::Object(_) => Some(ScimValue::Complex(complex(v))),
            other => simple(other).map(ScimValue::Simple),
        }
    }
    let mut r = Resource::new();
    for (k, v) in v.as_object().into_iter().flatten() {
        match v {
            Value::Object(inner) if k.starts_with("urn:") => {
                for (k2, v2) in inner {
                    if let Some(x) = value(v2) {
                        r.set(Container::Extension(name(k)), name(k2), x);
                    }
                }
            }
            _ => {
                if let Some(x) = value(v) {
                    r.set(Container::Core, name(k), x);
                }
            }
        }
    }
    r
}

fn p(name: &str) -> AttrPath {
    AttrPath {
        urn: None,
        name: name.into(),
        sub: None,
    }
}

fn s(v: &str) -> CompValue {
    CompValue::Str(v.into())
}

#[test]
fn parses_simple_equality() {
    assert_eq!(
        parse_filter(r#"userName eq "bjensen""#).unwrap(),
        Filter::Compare(p("userName"), CompareOp::Eq, s("bjensen"))
    );
}

#[test]
fn entras_sub_attribute_after_a_value_filter_means_one_more_condition_on_the_value() {
    assert_eq!(
        parse_filter(r#"emails[type eq "work"].value eq "a@example.org""#).unwrap(),
        parse_filter(r#"emails[type eq "work" and value eq "a@example.org"]"#).unwrap()
    );
    assert_eq!(
        parse_filter(r#"emails[type eq "work" or primary eq true].value pr"#).unwrap(),
        Filter::ValuePath(
            p("emails"),
            Box::new(Filter::And(vec![
                Filter::Or(vec![
                    Filter::Compare(p("type"), CompareOp::Eq, s("work")),
                    Filter::Compare(p("primary"), CompareOp::Eq, CompValue::Bool(true)),
                ]),
                Filter::Present(p("value")),
            ]))
        )
    );
    assert!(parse_filter(r#"emails[type eq "work"].value"#).is_err());
    assert!(parse_filter(r#"emails[type eq "work"]. eq "x""#).is_err());
}

#[test]
fn operators_and_keywords_are_case_insensitive() {
    let f = parse_filter(r#"userName EQ "a" OR title Pr"#).unwrap();
    assert_eq!(
        f,
        Filter::Or(vec![
            Filter::Compare(p("userName"), CompareOp::Eq, s("a")),
            Filter::Present(p("title"))
        ])
    );
}

#[test]
fn and_binds_tighter_than_or() {
    let f = parse_filter(r#"a eq "1" or b eq "2" and c eq "3""#).unwrap();
    let Filter::Or(parts) = f else {
        panic!("expected or at the top: {f:?}")
    };
    assert!(matches!(&parts[1], Filter::And(ands) if ands.len() == 2));
}

#[test]
fn parentheses_and_not_group() {
    let f = parse_filter(r#"not (a eq "1" or b eq "2") and (c pr)"#).unwrap();
    let Filter::And(parts) = f else {
        panic!("expected and at the top")
    };
    assert!(matches!(parts[0], Filter::Not(_)));
    assert_eq!(parts[1], Filter::Present(p("c")));
}

#[test]
fn parses_sub_attribute_and_urn_qualified_names() {
    let f = parse_filter(r#"name.familyName co "O'Malley""#).unwrap();
    assert_eq!(
        f,
        Filter::Compare(
            AttrPath {
                urn: None,
                name: "name".into(),
                sub: Some("familyName".into())
            },
            CompareOp::Co,
            s("O'Malley")
        )
    );
    let f = parse_filter(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "42""#,
    )
    .unwrap();
    let Filter::Compare(path, _, _) = f else {
        panic!()
    };
    assert_eq!(
        path.urn.as_deref(),
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
    );
    assert_eq!(path.name, "employeeNumber");
    let path =
        parse_attr_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
            .unwrap();
    assert_eq!(
        (path.name.as_str(), path.sub.as_deref()),
        ("manager", Some("value"))
    );
}

#[test]
fn parses_value_path_with_logical_inner_filter() {
    let f = parse_filter(r#"emails[type eq "work" and value co "@example.com"]"#).unwrap();
    let Filter::ValuePath(path, inner) = f else {
        panic!()
    };
    assert_eq!(path, p("emails"));
    assert!(matches!(*inner, Filter::And(_)));
}

#[test]
fn parses_literals() {
    assert_eq!(
        parse_filter("active eq true").unwrap(),
        Filter::Compare(p("active"), CompareOp::Eq, CompValue::Bool(true))
    );
    assert_eq!(
        parse_filter("x gt 4.5").unwrap(),
        Filter::Compare(
            p("x"),
            CompareOp::Gt,
            CompValue::Num("4.5".parse().unwrap())
        )
    );
    assert_eq!(
        parse_filter(r#"x eq "a \"quoted\" \u00e9""#).unwrap(),
        Filter::Compare(p("x"), CompareOp::Eq, s("a \"quoted\" é"))
    );
}

#[test]
fn malformed_filters_report_the_position() {
    for (input, pos) in [
        (r#"userName eq"#, 11),
        (r#"userName xx "a""#, 9),
        (r#"userName eq "unterminated"#, 12),
        (r#"(userName eq "a""#, 16),
        (r#"userName eq "a" junk"#, 16),
        (r#"userName eq bare"#, 12),
        ("", 0),
    ] {
        let err = parse_filter(input).unwrap_err();
        assert_eq!(err.pos, pos, "{input}: {err}");
    }
}

/// Every example filter of RFC 7644 §3.4.2.2 parses, and evaluates as the RFC means.
#[test]
fn rfc_7644_example_filters() {
    let user = typed(&serde_json::json!({
        "userName": "John", "title": "Tour Guide", "userType": "Employee",
        "name": {"familyName": "O'Malley"},
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "emails": [{"type": "work", "value": "john@example.com"}],
        "meta": {"lastModified": "2011-05-13T04:42:34Z"}
    }));
    let ci = |_: &AttrPath| false;
    for (f, expected) in [
        (r#"userName Eq "john""#, true),
        (r#"name.familyName co "O'Malley""#, true),
        (r#"userName sw "J""#, true),
        (
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            true,
        ),
        ("title pr", true),
        (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
        (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
        (r#"meta.lastModified lt "2011-05-13T04:42:34Z""#, false),
        (r#"meta.lastModified le "2011-05-13T04:42:34Z""#, true),
        (r#"title pr and userType eq "Employee""#, true),
        (r#"title pr or userType eq "Intern""#, true),
        (
            r#"schemas eq "urn:ietf:params:scim:schemas:core:2.0:User""#,
            true,
        ),
        (
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            true,
        ),
        (
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            false,
        ),
        (
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            true,
        ),
        (
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            true,
        ),
        (
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
            true,
        ),
    ] {
        let parsed = parse_filter(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(matches(&parsed, &user, &ci), expected, "{f}");
    }
}

#[test]
fn parses_patch_paths() {
    let pp = parse_patch_path(r#"emails[type eq "work"].value"#).unwrap();
    assert_eq!(pp.attr, p("emails"));
    assert!(pp.filter.is_some());
    assert_eq!(pp.sub_after_filter.as_deref(), Some("value"));
    let pp = parse_patch_path("name.givenName").unwrap();
    assert_eq!(pp.attr.sub.as_deref(), Some("givenName"));
    assert!(parse_patch_path("emails[type eq \"work\"").is_err());
}

#[test]
fn top_paths_name_each_attribute_once_per_use() {
    let f =
        parse_filter(r#"userName eq "a" or not (emails[type eq "work"]) and title pr"#).unwrap();
    let names: Vec<String> = top_paths(&f).iter().map(|p| p.to_string()).collect();
    assert_eq!(names, vec!["userName", "emails", "title"]);
}

#[test]
fn a_chain_of_ands_is_one_node_however_long() {
    let chain = vec![r#"a eq "1""#; 50].join(" and ");
    let Filter::And(parts) = parse_filter(&chain).unwrap() else {
        panic!("one And node")
    };
    assert_eq!(parts.len(), 50);
}

/// Inputs that overflowed a worker's stack before the parser was bounded: each is now a
/// parse error naming the limit, found without deep recursion.
#[test]
fn hostile_filters_are_refused_by_limit_not_by_crash() {
    let limits = Limits::default();
    let refused = |input: &str| parse_filter_with(input, &limits).unwrap_err().limit;
    let depth = Some(LimitExceeded::Depth { max: 16 });
    assert_eq!(refused(&"(".repeat(1800)), depth);
    assert_eq!(refused(&format!("{}a pr", "not (".repeat(800))), depth);
    let terms = Some(LimitExceeded::Terms { max: 100 });
    assert_eq!(refused(&vec!["a pr"; 400].join(" and ")), terms);
    assert_eq!(refused(&vec!["a pr"; 101].join(" or ")), terms);
    let long = vec![r#"userName eq "x""#; 6000].join(" and ");
    assert_eq!(
        refused(&long),
        Some(LimitExceeded::Length { max: 4096 }),
        "a 100 KB filter is refused before it is read"
    );
    let e = parse_filter_with(&"(".repeat(1800), &limits).unwrap_err();
    assert!(
        e.to_string().contains("limit of 16 levels"),
        "the message names the limit and its value: {e}"
    );
    let e = parse_patch_path_with(&format!("emails[{}", "(".repeat(5000)), &limits).unwrap_err();
    assert_eq!(e.limit, Some(LimitExceeded::Length { max: 4096 }));
    let e = parse_patch_path_with(&format!("emails[{}", "(".repeat(100)), &limits).unwrap_err();
    assert_eq!(e.limit, depth);
}

#[test]
fn filters_within_the_limits_parse_at_the_edge() {
    let limits = Limits::default();
    let deepest = format!("{}a pr{}", "(".repeat(16), ")".repeat(16));
    assert!(parse_filter_with(&deepest, &limits).is_ok());
    let too_deep = format!("{}a pr{}", "(".repeat(17), ")".repeat(17));
    assert!(parse_filter_with(&too_deep, &limits).is_err());
    let most = vec!["a pr"; 100].join(" or ");
    assert!(parse_filter_with(&most, &limits).is_ok());
    // a value path and its parentheses count as levels
    let vp = format!("emails[{}type pr{}]", "(".repeat(15), ")".repeat(15));
    assert!(parse_filter_with(&vp, &limits).is_ok());
    let vp = format!("emails[{}type pr{}]", "(".repeat(16), ")".repeat(16));
    assert!(parse_filter_with(&vp, &limits).is_err());
}

#[test]
fn configured_limits_above_the_hard_ceiling_are_capped() {
    let generous = Limits {
        filter_max_depth: 1_000_000,
        filter_max_length: usize::MAX,
        filter_max_terms: usize::MAX,
        ..Limits::default()
    };
    let e = parse_filter_with(&"(".repeat(10_000), &generous).unwrap_err();
    assert_eq!(
        e.limit,
        Some(LimitExceeded::Depth {
            max: Limits::HARD_MAX_DEPTH
        })
    );
}

#[test]
fn sorts_by_value_primary_first_and_missing_as_greatest() {
    let a = typed(
        &json!({"userName": "b", "emails": [{"value": "z@x"}, {"value": "a@x", "primary": true}]}),
    );
    let b = typed(&json!({"userName": "A", "emails": [{"value": "m@x"}]}));
    let c = typed(&json!({"userName": "c"}));
    let by = |p: &str| parse_attr_path(p).unwrap();
    let mut v = vec![a.clone(), b.clone(), c.clone()];
    v.sort_by(|x, y| compare_for_sort(x, y, &by("userName"), false));
    assert_eq!(v, vec![b.clone(), a.clone(), c.clone()]);
    v.sort_by(|x, y| compare_for_sort(x, y, &by("emails"), false));
    assert_eq!(
        v,
        vec![a.clone(), b.clone(), c.clone()],
        "primary email a@x first, no email last"
    );
    v.sort_by(|x, y| compare_for_sort(x, y, &by("emails"), false).reverse());
    assert_eq!(v, vec![c, b, a], "descending: no email first");
}

#[test]
fn evaluates_against_a_typed_resource() {
    let user = typed(&json!({
        "userName": "BJensen",
        "active": true,
        "emails": [{"type": "work", "value": "b@example.com"}, {"type": "home", "value": "b@home.org"}],
        "name": {"familyName": "Jensen"}
    }));
    let ci = |_: &AttrPath| false;
    let t = |f: &str| matches(&parse_filter(f).unwrap(), &user, &ci);
    assert!(t(r#"userName eq "bjensen""#));
    assert!(t(r#"emails[type eq "work" and value ew "example.com"]"#));
    assert!(!t(r#"emails[type eq "work" and value ew "home.org"]"#));
    assert!(t(r#"emails.value co "home""#));
    assert!(t(r#"name.familyName sw "jen""#));
    assert!(t("active eq true and not (title pr)"));
    assert!(t(r#"title ne "x""#));
    let exact = |_: &AttrPath| true;
    assert!(!matches(
        &parse_filter(r#"userName eq "bjensen""#).unwrap(),
        &user,
        &exact
    ));
}
