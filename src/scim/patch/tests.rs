use super::*;
use crate::scim::error::{ScimResult, ScimType};
use crate::scim::limits::Limits;
use crate::scim::resource::normalize_resource;
use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, GROUP_RESOURCE, USER_RESOURCE};
use serde_json::json;
use serde_json::{Map, Value};

/// A user as JSON, so the tests read as the wire does; `patch` parses it into the typed model,
/// applies the operations and writes the result back.
fn user() -> Map<String, Value> {
    let body = json!({
        "userName": "bjensen",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"type": "work", "value": "bjensen@example.com", "primary": true}],
        "phoneNumbers": [{"type": "work", "value": "555-1000"}],
        "active": true
    });
    let r = normalize_resource(&body, &USER_RESOURCE).unwrap().resource;
    r.to_json().as_object().cloned().unwrap_or_default()
}

fn patch(resource: &mut Map<String, Value>, ops: Value) -> ScimResult<()> {
    let ops = parse_patch_request(
        &json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops}),
        &USER_RESOURCE,
        &Limits::default(),
    )?;
    let mut typed = normalize_resource(&Value::Object(resource.clone()), &USER_RESOURCE)?.resource;
    apply_patch(&mut typed, &ops, "2819c223")?;
    if let Value::Object(m) = typed.to_json() {
        *resource = m;
    }
    Ok(())
}

/// The PATCH examples of RFC 7644 §3.5.2 (on a User).
#[test]
fn rfc_7644_patch_examples() {
    let mut u = user();
    u.insert("addresses".into(), json!([{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood"}]));
    u.insert(
        "emails".into(),
        json!([
            {"type": "work", "value": "bjensen@example.com", "primary": true},
            {"type": "home", "value": "babs@jensen.org"}
        ]),
    );
    // §3.5.2.1 add without path
    patch(&mut u, json!([{"op": "add", "value": {"emails": [{"value": "babs2@jensen.org", "type": "home"}], "nickname": "Babs"}}])).unwrap();
    assert_eq!(u["nickName"], "Babs");
    assert_eq!(u["emails"].as_array().unwrap().len(), 3);
    // §3.5.2.2 remove with a value filter
    patch(
        &mut u,
        json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}]),
    )
    .unwrap();
    assert!(u["emails"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["type"] == "home"));
    // §3.5.2.3 replace a selected complex value, then one of its sub-attributes
    patch(&mut u, json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": {
        "type": "work", "streetAddress": "911 Universal City Plaza", "locality": "Hollywood",
        "region": "CA", "postalCode": "91608", "country": "US", "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US", "primary": true
    }}])).unwrap();
    assert_eq!(u["addresses"][0]["postalCode"], "91608");
    patch(&mut u, json!([{"op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1010 Broadway Ave"}])).unwrap();
    assert_eq!(u["addresses"][0]["streetAddress"], "1010 Broadway Ave");
    assert_eq!(u["addresses"][0]["region"], "CA");
    // replace without path
    patch(&mut u, json!([{"op": "replace", "value": {"emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}], "nickname": "Babsy"}}])).unwrap();
    assert_eq!(
        u["emails"],
        json!([{"value": "bjensen@example.com", "type": "work", "primary": true}])
    );
    assert_eq!(u["nickName"], "Babsy");
    // remove all of a multi-valued attribute
    patch(&mut u, json!([{"op": "remove", "path": "emails"}])).unwrap();
    assert!(u.get("emails").is_none());
}

#[test]
fn replace_simple_and_sub_attribute_paths() {
    let mut u = user();
    patch(
        &mut u,
        json!([
            {"op": "replace", "path": "displayName", "value": "Babs"},
            {"op": "Replace", "path": "name.givenName", "value": "Barb"}
        ]),
    )
    .unwrap();
    assert_eq!(u["displayName"], "Babs");
    assert_eq!(
        u["name"],
        json!({"givenName": "Barb", "familyName": "Jensen"})
    );
}

#[test]
fn entra_string_booleans_and_capitalised_ops() {
    let mut u = user();
    patch(
        &mut u,
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
    )
    .unwrap();
    assert_eq!(u["active"], false);
    patch(
        &mut u,
        json!([{"op": "REPLACE", "path": "active", "value": "True"}]),
    )
    .unwrap();
    assert_eq!(u["active"], true);
}

#[test]
fn okta_pathless_replace_of_active() {
    let mut u = user();
    patch(
        &mut u,
        json!([{"op": "replace", "value": {"active": false}}]),
    )
    .unwrap();
    assert_eq!(u["active"], false);
}

#[test]
fn value_path_replaces_the_matching_element_only() {
    let mut u = user();
    patch(&mut u, json!([
        {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@new.example.com"}
    ]))
    .unwrap();
    assert_eq!(
        u["emails"],
        json!([{"type": "work", "value": "b@new.example.com", "primary": true}])
    );
}

#[test]
fn value_path_without_a_match_creates_the_element() {
    let mut u = user();
    patch(
        &mut u,
        json!([
            {"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "555-2000"},
            {"op": "replace", "path": "addresses[type eq \"work\"].locality", "value": "Hollywood"}
        ]),
    )
    .unwrap();
    assert_eq!(
        u["phoneNumbers"],
        json!([{"type": "work", "value": "555-1000"}, {"type": "mobile", "value": "555-2000"}])
    );
    assert_eq!(
        u["addresses"],
        json!([{"type": "work", "locality": "Hollywood"}])
    );
}

#[test]
fn pathless_replace_with_dotted_and_urn_keys() {
    let mut u = user();
    patch(
        &mut u,
        json!([{"op": "replace", "value": {
            "name.familyName": "Jensen-Smith",
            "emails[type eq \"work\"].value": "bjs@example.com",
            ENTERPRISE_USER_SCHEMA: {"department": "Sales"},
            format!("{ENTERPRISE_USER_SCHEMA}:employeeNumber"): "701984"
        }}]),
    )
    .unwrap();
    assert_eq!(u["name"]["familyName"], "Jensen-Smith");
    assert_eq!(u["name"]["givenName"], "Barbara");
    assert_eq!(u["emails"][0]["value"], "bjs@example.com");
    assert_eq!(u[ENTERPRISE_USER_SCHEMA]["department"], "Sales");
    assert_eq!(u[ENTERPRISE_USER_SCHEMA]["employeeNumber"], "701984");
}

#[test]
fn manager_as_bare_id_or_object_and_empty_clears() {
    let mut u = user();
    let path = format!("{ENTERPRISE_USER_SCHEMA}:manager");
    patch(
        &mut u,
        json!([{"op": "Add", "path": path, "value": "26118915-6090-4610-87e4-49d8ca9f808d"}]),
    )
    .unwrap();
    assert_eq!(
        u[ENTERPRISE_USER_SCHEMA]["manager"]["value"],
        "26118915-6090-4610-87e4-49d8ca9f808d"
    );
    patch(
        &mut u,
        json!([{"op": "replace", "path": path, "value": {"value": "m2"}}]),
    )
    .unwrap();
    assert_eq!(u[ENTERPRISE_USER_SCHEMA]["manager"]["value"], "m2");
    patch(&mut u, json!([{"op": "replace", "path": "displayName", "value": "x"}, {"op": "replace", "path": "displayName", "value": ""}])).unwrap();
    assert!(u.get("displayName").is_none());
    patch(&mut u, json!([{"op": "remove", "path": path}])).unwrap();
    assert!(u.get(ENTERPRISE_USER_SCHEMA).is_none(), "{u:?}");
}

#[test]
fn a_path_naming_the_extension_targets_its_attributes() {
    let mut u = user();
    patch(
        &mut u,
        json!([{"op": "add", "path": ENTERPRISE_USER_SCHEMA, "value": {
            "schemas": [ENTERPRISE_USER_SCHEMA], "employeeNumber": "7", "department": "Ops"
        }}]),
    )
    .unwrap();
    assert_eq!(
        u[ENTERPRISE_USER_SCHEMA],
        json!({"employeeNumber": "7", "department": "Ops"})
    );
    patch(
        &mut u,
        json!([{"op": "remove", "path": ENTERPRISE_USER_SCHEMA}]),
    )
    .unwrap();
    assert!(u.get(ENTERPRISE_USER_SCHEMA).is_none());
}

#[test]
fn remove_by_value_filter_and_by_value_array() {
    let mut u = user();
    patch(&mut u, json!([{"op": "add", "path": "emails", "value": [{"type": "home", "value": "b@home.org"}]}])).unwrap();
    assert_eq!(u["emails"].as_array().unwrap().len(), 2);
    patch(
        &mut u,
        json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
    )
    .unwrap();
    assert_eq!(u["emails"].as_array().unwrap().len(), 1);
    patch(
        &mut u,
        json!([{"op": "remove", "path": "emails", "value": [{"value": "BJENSEN@example.com"}]}]),
    )
    .unwrap();
    assert!(u.get("emails").is_none());
}

#[test]
fn adding_an_existing_value_is_idempotent() {
    let mut u = user();
    let op = json!([{"op": "add", "path": "emails", "value": [{"type": "work", "value": "bjensen@example.com"}]}]);
    patch(&mut u, op.clone()).unwrap();
    patch(&mut u, op).unwrap();
    assert_eq!(u["emails"].as_array().unwrap().len(), 1);
}

#[test]
fn a_new_primary_value_demotes_the_old_one() {
    let mut u = user();
    patch(&mut u, json!([{"op": "add", "path": "emails", "value": {"type": "home", "value": "h@x.org", "primary": true}}])).unwrap();
    assert_eq!(u["emails"][0]["primary"], false);
    assert_eq!(u["emails"][1]["primary"], true);
}

#[test]
fn a_read_only_id_that_agrees_with_the_resource_is_ignored_and_one_that_differs_refused() {
    // Okta's group rename: replace, no path, the group's own id beside the new name
    let mut u = user();
    patch(
        &mut u,
        json!([{"op": "replace", "value": {"id": "2819c223", "title": "Chief"}}]),
    )
    .unwrap();
    assert_eq!(u["title"], "Chief");
    assert!(!u.contains_key("id"));
    let e = patch(
        &mut u,
        json!([{"op": "replace", "value": {"id": "someone-else", "title": "CEO"}}]),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(crate::scim::ScimType::Mutability));
    assert!(e.detail.contains("'id' is read-only"), "{}", e.detail);
    let e = patch(&mut u, json!([{"op": "remove", "path": "id"}])).unwrap_err();
    assert_eq!(e.scim_type, Some(crate::scim::ScimType::Mutability));
}

#[test]
fn errors_name_the_operation_and_path() {
    let mut u = user();
    let e = patch(&mut u, json!([{"op": "explode", "path": "title"}])).unwrap_err();
    assert!(e.detail.contains("Operations[0].op"), "{}", e.detail);
    let e = patch(
        &mut u,
        json!([{"op": "replace", "path": "shoeSize", "value": 1}]),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(crate::scim::ScimType::InvalidPath));
    let e = patch(
        &mut u,
        json!([{"op": "replace", "path": "id", "value": "x"}]),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(crate::scim::ScimType::Mutability));
    let e = patch(&mut u, json!([{"op": "remove"}])).unwrap_err();
    assert_eq!(e.scim_type, Some(crate::scim::ScimType::NoTarget));
    let e = patch(
        &mut u,
        json!([{"op": "replace", "path": "emails[value co \"zzz\"].display", "value": "x"}]),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(crate::scim::ScimType::NoTarget));
    let e = patch(
        &mut u,
        json!([{"op": "replace", "path": "active", "value": "yes"}]),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(crate::scim::ScimType::InvalidValue));
}

#[test]
fn hostile_patches_are_refused_before_they_are_applied() {
    let limits = Limits::default();
    let parse = |ops: Value| {
        parse_patch_request(&json!({"Operations": ops}), &USER_RESOURCE, &limits).unwrap_err()
    };
    let parse_group = |ops: Value| {
        parse_patch_request(&json!({"Operations": ops}), &GROUP_RESOURCE, &limits).unwrap_err()
    };
    let e = parse(json!([{"op": "remove", "path": format!("emails[{}", "(".repeat(1800))}]));
    assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
    assert!(e.detail.contains("limit of 16 levels"), "{}", e.detail);
    assert!(e.detail.len() < 400, "the huge path is not echoed back");
    let e = parse_group(json!([{"op": "remove", "path": format!("members[{}", "(".repeat(1800))}]));
    assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
    let many = vec![json!({"op": "replace", "path": "title", "value": "x"}); 1001];
    let e = parse(Value::Array(many));
    assert_eq!(e.scim_type, Some(ScimType::TooMany));
    assert!(e.detail.contains("at most 1000"), "{}", e.detail);
    let emails: Vec<Value> = (0..101)
        .map(|i| json!({"value": format!("{i}@x")}))
        .collect();
    let e = parse(json!([{"op": "add", "path": "emails", "value": emails.clone()}]));
    assert!(
        e.detail.contains("'emails'") && e.detail.contains("at most 100"),
        "{}",
        e.detail
    );
    let e = parse(json!([{"op": "add", "value": {"emails": emails}}]));
    assert_eq!(e.scim_type, Some(ScimType::TooMany));
    let ids: Vec<Value> = (0..10_001)
        .map(|i| json!({"value": i.to_string()}))
        .collect();
    let e = parse_group(json!([{"op": "add", "path": "members", "value": ids}]));
    assert!(
        e.detail.contains("limits.max_members_per_request"),
        "{}",
        e.detail
    );
    let ids: Vec<Value> = (0..10_000)
        .map(|i| json!({"value": i.to_string()}))
        .collect();
    assert!(
        parse_patch_request(
            &json!({"Operations": [{"op": "add", "path": "members", "value": ids}]}),
            &GROUP_RESOURCE,
            &limits
        )
        .is_ok(),
        "10,000 members are within the default limit"
    );
}

#[test]
fn remove_by_value_takes_only_the_values_named_and_an_empty_list_takes_none() {
    let mut u = user();
    patch(&mut u, json!([{"op": "add", "path": "emails", "value": [{"type": "home", "value": "b@home.org"}]}])).unwrap();
    patch(
        &mut u,
        json!([{"op": "remove", "path": "emails", "value": [{"value": "B@HOME.org"}]}]),
    )
    .unwrap();
    assert_eq!(
        u["emails"],
        json!([{"type": "work", "value": "bjensen@example.com", "primary": true}])
    );
    patch(
        &mut u,
        json!([{"op": "remove", "path": "emails", "value": []}]),
    )
    .unwrap();
    assert_eq!(
        u["emails"].as_array().unwrap().len(),
        1,
        "[] names no value"
    );
}

#[test]
fn operations_are_resolved_and_typed_when_parsed() {
    let ops = parse_patch_request(
        &json!({"Operations": [
            {"op": "replace", "value": {"title": "Boss", "ACTIVE": "False",
                ENTERPRISE_USER_SCHEMA: {"department": "R&D"}}},
            {"op": "add", "path": "emails[type eq \"work\"].value", "value": "w@x"},
            {"op": "remove", "path": ENTERPRISE_USER_SCHEMA}
        ]}),
        &USER_RESOURCE,
        &Limits::default(),
    )
    .unwrap();
    let names: Vec<&str> = ops
        .iter()
        .filter_map(|o| o.attr())
        .map(|t| t.def.name)
        .collect();
    assert_eq!(names, ["title", "active", "department", "emails"]);
    assert_eq!(
        ops[1].value,
        Some(crate::scim::value::ScimValue::boolean(false))
    );
    assert_eq!(
        ops[3].attr().and_then(|t| t.sub).map(|s| s.name),
        Some("value")
    );
    assert_eq!(
        ops[4].target,
        PatchTarget::Extension(ENTERPRISE_USER_SCHEMA)
    );
    let e = parse_patch_request(
        &json!({"Operations": [{"op": "add", "path": "members", "value": []}]}),
        &USER_RESOURCE,
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{}", e.detail);
}

mod generated {
    //! Generated PATCH bodies from pieces IdPs send (paths with filters and sub-attributes,
    //! values of every JSON shape): parsing and applying never panic, and whatever applies
    //! leaves a resource that renders to JSON and parses back to itself.

    use super::*;
    use crate::scim::value::Resource;
    use proptest::prelude::*;

    fn path() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("title".to_owned()),
            Just("active".to_owned()),
            Just("name".to_owned()),
            Just("name.givenName".to_owned()),
            Just("emails".to_owned()),
            Just("emails.display".to_owned()),
            Just("emails[type eq \"work\"]".to_owned()),
            Just("emails[type eq \"work\"].value".to_owned()),
            Just("emails[value co \"@\" and primary eq true]".to_owned()),
            Just("phoneNumbers[type eq \"mobile\"].value".to_owned()),
            Just("roles".to_owned()),
            Just("id".to_owned()),
            Just("groups".to_owned()),
            Just(ENTERPRISE_USER_SCHEMA.to_owned()),
            Just(format!("{ENTERPRISE_USER_SCHEMA}:manager")),
            Just(format!("{ENTERPRISE_USER_SCHEMA}:manager.value")),
            Just("urn:ietf:params:scim:schemas:core:2.0:User:userName".to_owned()),
            "[a-zA-Z.\\[\\]\" ]{0,12}",
        ]
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            "[a-zA-Z@. ]{0,8}".prop_map(Value::String),
            Just(json!("True")),
            Just(json!("")),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just("value".to_owned()),
                            Just("type".to_owned()),
                            Just("primary".to_owned()),
                            Just("givenName".to_owned()),
                            Just("display".to_owned()),
                            Just("title".to_owned()),
                            Just("emails".to_owned()),
                            "[a-z]{1,6}",
                        ],
                        inner
                    ),
                    0..4
                )
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn operation() -> impl Strategy<Value = Value> {
        (
            prop_oneof![Just("add"), Just("Replace"), Just("remove"), Just("move")],
            prop::option::of(path()),
            prop::option::of(json()),
        )
            .prop_map(|(op, path, value)| {
                let mut o = serde_json::Map::new();
                o.insert("op".into(), json!(op));
                if let Some(p) = path {
                    o.insert("path".into(), json!(p));
                }
                if let Some(v) = value {
                    o.insert("value".into(), v);
                }
                Value::Object(o)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn any_patch_fails_cleanly_or_leaves_a_resource_that_round_trips(
            ops in prop::collection::vec(operation(), 1..5)
        ) {
            let body = json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops});
            let Ok(ops) = parse_patch_request(&body, &USER_RESOURCE, &Limits::default()) else {
                return Ok(());
            };
            let start = Value::Object(user());
            let mut r: Resource = normalize_resource(&start, &USER_RESOURCE).unwrap().resource;
            if apply_patch(&mut r, &ops, "2819c223").is_ok() {
                let again = normalize_resource(&r.to_json(), &USER_RESOURCE).unwrap();
                prop_assert!(again.ignored.is_empty(), "{:?}", again.ignored);
                prop_assert_eq!(again.resource.to_json(), r.to_json());
            }
        }
    }
}
