use super::*;
use crate::scim::limits::Limits;
use proptest::prelude::*;

/// A user to evaluate generated filters against.
fn one_user() -> crate::scim::value::Resource {
    use crate::scim::schema::Container;
    use crate::scim::value::{Complex, Resource, ScimValue, Simple};
    let mut r = Resource::new();
    r.set(Container::Core, "userName", ScimValue::string("x"));
    r.set(
        Container::Core,
        "emails",
        ScimValue::Multi(vec![
            Complex::new().with("value", Simple::String("y".into()))
        ]),
    );
    r
}

/// Pieces of filter syntax, so that generated inputs get deep into the grammar.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("userName".to_owned()),
        Just("emails".to_owned()),
        Just("name.familyName".to_owned()),
        Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value".to_owned()),
        Just(" eq ".to_owned()),
        Just(" co ".to_owned()),
        Just(" pr".to_owned()),
        Just(" and ".to_owned()),
        Just(" or ".to_owned()),
        Just("not ".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just("\"x\\\"y\"".to_owned()),
        Just("12.5e3".to_owned()),
        Just("true".to_owned()),
        Just(".".to_owned()),
        Just(":".to_owned()),
        "[a-zA-Z0-9 é$_-]{0,4}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_filter_parser_never_panics_on_any_text(s in "\\PC{0,64}") {
        let _ = parse_filter(&s);
        let _ = parse_patch_path(&s);
        let _ = parse_attr_path(&s);
    }

    /// Deep nesting and long chains, far past the limits (the shapes that once
    /// overflowed the stack): refused or parsed, never a crash, under the default limits
    /// and under the hard ceilings; what parses evaluates.
    #[test]
    fn deep_and_long_filters_never_crash(
        depth in 0usize..3000,
        width in 0usize..3000,
        opener in prop_oneof![Just("("), Just("not ("), Just("not("), Just("emails[(")],
        joiner in prop_oneof![Just(" and "), Just(" or "), Just(" AND ")],
        limits in prop_oneof![Just(Limits::default()), Just(Limits {
            filter_max_length: Limits::HARD_MAX_LENGTH,
            filter_max_depth: Limits::HARD_MAX_DEPTH,
            filter_max_terms: Limits::HARD_MAX_TERMS,
            ..Limits::default()
        })],
    ) {
        let chain = vec![r#"userName eq "x""#; width + 1].join(joiner);
        let s = format!("{}{}{}", opener.repeat(depth), chain, ")".repeat(depth));
        if let Ok(f) = parse_filter_with(&s, &limits) {
            let _ = matches(&f, &one_user(), &|_| false);
        }
        let _ = parse_patch_path_with(&format!("emails[{s}]"), &limits);
        let _ = parse_patch_path_with(&format!("members[{s}].value"), &limits);
    }

    #[test]
    fn the_filter_parser_never_panics_on_near_grammatical_input(parts in prop::collection::vec(token(), 0..16)) {
        let s: String = parts.concat();
        if let Ok(f) = parse_filter(&s) {
            // what parses can be evaluated without panicking
            let _ = matches(&f, &one_user(), &|_| false);
        }
        let _ = parse_patch_path(&s);
    }
}
