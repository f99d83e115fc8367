use std::collections::HashMap;

use figment::providers::{Format, Toml};
use figment::Figment;
use serde_json::{json, Value};

use super::*;
use crate::config::{ConfigError, RawConfig};
use crate::directory::LdapFilter;
use crate::directory::{Change, Entry};
use crate::scim::filter::parse_filter;
use crate::scim::resource::normalize_resource;
use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, USER_RESOURCE};

const EXAMPLE: &str = include_str!("../../config.example.toml");

fn raw(toml: &str) -> RawConfig {
    Figment::from(Toml::string(toml)).extract().unwrap()
}

pub(super) fn example() -> Mapping {
    Mapping::from_config(&raw(EXAMPLE).users, ValueLimits::default(), &USER_RESOURCE).unwrap()
}

fn with_attributes(extra: &str) -> Result<Mapping, ConfigError> {
    let toml = format!(
        "[ldap]\nurl='ldap://x'\nbind_dn='cn=a'\n[users]\ncontainer='ou=p'\nobject_classes=['inetOrgPerson']\nrdn='uid={{userName}}'\n[users.attributes]\nuserName='uid'\n{extra}"
    );
    Mapping::from_config(&raw(&toml).users, ValueLimits::default(), &USER_RESOURCE)
}

pub(super) fn entry(attrs: &[(&str, &[&str])]) -> Entry {
    Entry {
        dn: "uid=bjensen,ou=people,dc=example,dc=org".into(),
        id: "3f2504e0-4f89-11d3-9a0c-0305e82c3301".into(),
        attrs: attrs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    v.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect(),
    }
}

fn user(body: Value) -> crate::scim::value::Resource {
    normalize_resource(&body, &USER_RESOURCE).unwrap().resource
}

#[test]
fn example_config_maps_every_seed_attribute() {
    let m = example();
    for scim in [
        "userName",
        "externalId",
        "name.givenName",
        "name.familyName",
        "name.formatted",
        "displayName",
        "nickName",
        "title",
        "preferredLanguage",
        "locale",
        "timezone",
        "active",
    ] {
        assert!(m.attrs.iter().any(|a| a.scim == scim), "{scim} not mapped");
    }
    assert_eq!(
        m.attrs
            .iter()
            .filter(|a| a.scim.starts_with("addresses"))
            .count(),
        7
    );
    assert_eq!(
        m.attrs
            .iter()
            .filter(|a| a.scim.starts_with("phoneNumbers"))
            .count(),
        5
    );
    assert_eq!(
        m.attrs
            .iter()
            .filter(|a| a.scim.starts_with(ENTERPRISE_USER_SCHEMA))
            .count(),
        5
    );
    assert_eq!(m.username_attr(), "uid");
}

#[test]
fn entry_becomes_scim_resource_with_typed_elements() {
    let m = example();
    let e = entry(&[
        ("uid", &["bjensen"]),
        ("givenName", &["Barbara"]),
        ("sn", &["Jensen"]),
        ("mail", &["bjensen@example.com", "babs@example.com"]),
        ("mobile", &["+1 555 0100"]),
        ("l", &["Hollywood"]),
        ("c", &["US"]),
        ("manager", &["uid=boss,ou=people,dc=example,dc=org"]),
        ("pwdAccountLockedTime", &[PPOLICY_LOCKED]),
    ]);
    let ids: HashMap<&str, &str> = [("uid=boss,ou=people,dc=example,dc=org", "boss-id")].into();
    let r = m
        .to_scim(&e, &|dn| ids.get(dn).map(|s| s.to_string()))
        .to_json();
    assert_eq!(r["userName"], "bjensen");
    assert_eq!(
        r["name"],
        json!({"givenName": "Barbara", "familyName": "Jensen"})
    );
    assert_eq!(
        r["emails"],
        json!([{"type": "work", "primary": true, "value": "bjensen@example.com"}])
    );
    assert_eq!(
        r["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555 0100"}])
    );
    assert_eq!(
        r["addresses"],
        json!([{"type": "work", "locality": "Hollywood", "country": "US"}])
    );
    assert_eq!(r[ENTERPRISE_USER_SCHEMA]["manager"]["value"], "boss-id");
    assert_eq!(r["active"], false);
}

#[test]
fn ppolicy_active_reads_true_unless_locked_by_admin() {
    let m = example();
    let r = m.to_scim(&entry(&[("uid", &["a"])]), &|_| None).to_json();
    assert_eq!(r["active"], true);
    // a temporary lockout after failed binds is not an administrative deactivation
    let r = m
        .to_scim(
            &entry(&[
                ("uid", &["a"]),
                ("pwdAccountLockedTime", &["20261124101010Z"]),
            ]),
            &|_| None,
        )
        .to_json();
    assert_eq!(r["active"], true);
}

#[test]
fn resource_becomes_desired_ldap_values_with_derived_cn_and_sn() {
    let m = example();
    let res = user(json!({
        "userName": "bjensen",
        "name": {"givenName": "Barbara"},
        "emails": [{"value": "b@example.com", "primary": true}],
        "active": false,
        ENTERPRISE_USER_SCHEMA: {"manager": "boss-id"}
    }));
    let d = m
        .to_ldap(&res, &|id| {
            (id == "boss-id").then(|| "uid=boss,dc=x".to_owned())
        })
        .unwrap();
    assert_eq!(
        *d.get(&AttrName::from("uid")).unwrap(),
        Desired::Set("bjensen".into())
    );
    assert_eq!(
        *d.get(&AttrName::from("mail")).unwrap(),
        Desired::Set("b@example.com".into()),
        "primary untyped email is the work email"
    );
    assert_eq!(
        *d.get(&AttrName::from("pwdAccountLockedTime")).unwrap(),
        Desired::Set(PPOLICY_LOCKED.into())
    );
    assert_eq!(
        *d.get(&AttrName::from("manager")).unwrap(),
        Desired::Set("uid=boss,dc=x".into())
    );
    assert_eq!(
        *d.get(&AttrName::from("sn")).unwrap(),
        Desired::Set("bjensen".into()),
        "sn falls back to userName"
    );
    assert_eq!(
        *d.get(&AttrName::from("cn")).unwrap(),
        Desired::Set("bjensen".into())
    );
    assert_eq!(*d.get(&AttrName::from("title")).unwrap(), Desired::Clear);
    let unresolved = m.to_ldap(&res, &|_| None).unwrap();
    assert_eq!(
        *unresolved.get(&AttrName::from("manager")).unwrap(),
        Desired::Keep,
        "an unknown reference is not stored"
    );
}

#[test]
fn absent_active_keeps_the_directory_state() {
    let m = example();
    let d = m
        .to_ldap(&user(json!({"userName": "a"})), &|_| None)
        .unwrap();
    assert_eq!(
        *d.get(&AttrName::from("pwdAccountLockedTime")).unwrap(),
        Desired::Keep
    );
    let e = entry(&[("uid", &["a"]), ("pwdAccountLockedTime", &[PPOLICY_LOCKED])]);
    let old = m.to_ldap(&m.to_scim(&e, &|_| None), &|_| None).unwrap();
    assert!(m.changes(&e, &old, &d).is_empty());
}

#[test]
fn changes_touch_only_what_differs_and_keep_extra_ldap_values() {
    let m = example();
    let e = entry(&[
        ("uid", &["bjensen"]),
        ("sn", &["Jensen"]),
        ("cn", &["Barbara Jensen", "Babs"]),
        ("mail", &["old@example.com", "alias@example.com"]),
        ("title", &["Boss"]),
    ]);
    let before = m.to_scim(&e, &|_| None);
    let mut after = before.clone();
    after.merge(user(
        json!({"emails": [{"type": "work", "value": "new@example.com"}]}),
    ));
    after.remove(crate::scim::schema::Container::Core, "title");
    let old = m.to_ldap(&before, &|_| None).unwrap();
    let new = m.to_ldap(&after, &|_| None).unwrap();
    let mut changes = m.changes(&e, &old, &new);
    changes.sort_by(|a, b| a.attr().cmp(b.attr()));
    assert_eq!(
        changes,
        vec![
            Change::Replace(
                "mail".into(),
                vec!["new@example.com".into(), "alias@example.com".into()]
            ),
            Change::Replace("title".into(), vec![]),
        ]
    );
}

#[test]
fn rdn_values_are_escaped() {
    let m = example();
    let rdn = m.rdn(&user(json!({"userName": "smith, john+1"}))).unwrap();
    assert_eq!(rdn, r"uid=smith\, john\+1");
    let add = m.new_entry(
        &m.to_ldap(&user(json!({"userName": "smith, john+1"})), &|_| None)
            .unwrap(),
        &rdn,
    );
    assert!(add.contains(&("uid".to_owned(), vec!["smith, john+1".to_owned()])));
    assert!(Mapping::needs_rename("uid=a,ou=p", "uid=b"));
    assert!(!Mapping::needs_rename("uid=a,ou=p", "uid=a"));
}

fn ldap(f: &str) -> String {
    let id_filter = |id: &str| Some(LdapFilter::eq("entryUUID", id));
    example()
        .ldap_filter(&parse_filter(f).unwrap(), &id_filter)
        .map(|f| f.to_string())
        .unwrap_or_else(|e| format!("ERROR {}", e.detail))
}

#[test]
fn filters_translate_through_the_mapping() {
    assert_eq!(ldap(r#"userName eq "bjensen""#), "(uid=bjensen)");
    assert_eq!(ldap(r#"externalId eq "00u1""#), "(scimExternalId=00u1)");
    assert_eq!(
        ldap(r#"emails.value eq "b@x.org""#),
        "(&(mail=*)(mail=b@x.org))"
    );
    assert_eq!(
        ldap(r#"emails[type eq "work" and value co "@x.org"]"#),
        "(&(mail=*)(mail=*@x.org*))"
    );
    assert_eq!(ldap(r#"emails[type eq "home"]"#), "(!(objectClass=*))");
    assert_eq!(
        ldap(r#"userName eq "a" or externalId eq "b""#),
        "(|(uid=a)(scimExternalId=b))"
    );
    assert_eq!(ldap(r#"name.familyName sw "Jen""#), "(sn=Jen*)");
    assert_eq!(ldap(r#"id eq "abc""#), "(entryUUID=abc)");
    assert_eq!(
        ldap(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "7""#),
        "(employeeNumber=7)"
    );
    assert_eq!(
        ldap("active eq false"),
        "(pwdAccountLockedTime=000001010000Z)"
    );
    assert_eq!(
        ldap("active eq true"),
        "(!(pwdAccountLockedTime=000001010000Z))"
    );
    assert_eq!(ldap(r#"phoneNumbers[type eq "mobile"]"#), "(mobile=*)");
    // Entra's form
    assert_eq!(
        ldap(r#"emails[type eq "work"].value eq "b@example.org""#),
        "(&(mail=*)(mail=b@example.org))"
    );
    assert_eq!(
        ldap(r#"phoneNumbers[type ne "fax"]"#),
        "(|(homePhone=*)(mobile=*)(pager=*)(telephoneNumber=*))"
    );
}

#[test]
fn filter_values_cannot_inject_ldap_syntax() {
    assert_eq!(ldap(r#"userName eq "*)(uid=*""#), r"(uid=\2a\29\28uid=\2a)");
    assert_eq!(ldap(r#"userName eq "a\\29""#), r"(uid=a\5c29)");
}

#[test]
fn unmapped_and_unknown_attributes_in_filters() {
    assert_eq!(ldap(r#"costCenter eq "x""#), "(!(objectClass=*))");
    assert_eq!(ldap(r#"costCenter ne "x""#), "(objectClass=*)");
    assert!(ldap(r#"shoeSize eq "x""#).contains("unknown attribute"));
    assert!(ldap(r#"name eq "x""#).contains("complex"));
}

#[test]
fn config_errors_name_the_key_and_fix() {
    let e = with_attributes("shoeSize = 'x'").unwrap_err();
    assert_eq!(e.key, "users.attributes.\"shoeSize\"");
    assert!(e.fix.contains("userName"));
    let e = with_attributes("active = 'x'").unwrap_err();
    assert!(e.fix.contains("users.deactivate"), "{e}");
    let e = with_attributes("displayName = 'uid'").unwrap_err();
    assert!(e.problem.contains("already mapped"), "{e}");
    let e = with_attributes("name = 'cn'").unwrap_err();
    assert!(e.fix.contains("name.formatted"), "{e}");
    let e = with_attributes("title = 'bad attr'").unwrap_err();
    assert!(e.problem.contains("not an LDAP attribute"), "{e}");
}

fn recheck(f: &str) -> bool {
    example().needs_recheck(&parse_filter(f).unwrap())
}

#[test]
fn inexact_comparisons_become_supersets_that_the_caller_rechecks() {
    assert_eq!(ldap(r#"title gt "m""#), "(title=*)");
    assert!(recheck(r#"title gt "m""#));
    // negated, a superset of the complement is everything
    assert_eq!(ldap(r#"not (title gt "m")"#), "(objectClass=*)");
    assert_eq!(ldap(r#"userName eq "a" and not (title lt "m")"#), "(uid=a)");
    // externalId is case-exact in SCIM; the LDAP side may ignore case
    assert_eq!(ldap(r#"externalId ne "x""#), "(objectClass=*)");
    assert!(recheck(r#"externalId eq "x""#));
    assert!(recheck(r#"emails[type eq "work" and not (value gt "m")]"#));
    assert!(!recheck(r#"userName eq "a" or emails.value co "x""#));
    assert!(!recheck(r#"id eq "3f2504e0-4f89-11d3-9a0c-0305e82c3301""#));
}

#[test]
fn meta_timestamps_filter_on_the_directorys_timestamps() {
    assert_eq!(
        ldap(r#"meta.lastModified gt "2026-01-01T00:00:00Z""#),
        "(&(modifyTimestamp>=20260101000000Z)(!(modifyTimestamp=20260101000000Z)))"
    );
    assert_eq!(
        ldap(r#"meta.created ge "2026-01-01T01:00:00+01:00""#),
        "(createTimestamp>=20260101000000Z)"
    );
    assert!(!recheck(r#"meta.created ge "2026-01-01T00:00:00Z""#));
    assert!(ldap(r#"meta.created ge "yesterday""#).contains("RFC 3339"));
    assert!(ldap(r#"meta.version eq "x""#).starts_with("ERROR"));
}

#[test]
fn values_longer_than_the_limits_are_refused_naming_the_attribute() {
    let m = example();
    let none = |_: &str| None;
    let long = "x".repeat(2049);
    let e = m
        .to_ldap(&user(json!({"userName": "b", "title": long})), &none)
        .unwrap_err();
    assert_eq!(e.scim_type, Some(crate::scim::ScimType::InvalidValue));
    assert!(
        e.detail.contains("'title' is 2049 characters long")
            && e.detail.contains("at most 2048 (limits.max_value_length)"),
        "{}",
        e.detail
    );
    // characters, not bytes: 2048 two-byte characters fit
    let wide = "é".repeat(2048);
    assert!(m
        .to_ldap(&user(json!({"userName": "b", "title": wide})), &none)
        .is_ok());
    // the RDN has its own, smaller limit, and the message names the SCIM attribute
    let e = m
        .rdn(&user(json!({"userName": "u".repeat(129)})))
        .unwrap_err();
    assert!(
        e.detail.contains("userName") && e.detail.contains("at most 128"),
        "{}",
        e.detail
    );
    assert!(m.rdn(&user(json!({"userName": "u".repeat(128)}))).is_ok());
}

#[test]
fn a_per_attribute_max_length_lowers_the_global_one() {
    let m = with_attributes("displayName = { ldap = \"displayName\", max_length = 5 }").unwrap();
    let e = m
        .to_ldap(
            &user(json!({"userName": "b", "displayName": "abcdef"})),
            &|_| None,
        )
        .unwrap_err();
    assert!(
        e.detail
            .contains("users.attributes.\"displayName\".max_length"),
        "{}",
        e.detail
    );
    let e =
        with_attributes("displayName = { ldap = \"displayName\", max_length = 0 }").unwrap_err();
    assert_eq!(e.key, "users.attributes.\"displayName\".max_length");
}

#[test]
fn untyped_values_are_stored_as_the_default_type() {
    let m = example();
    // OneLogin: an address and a phone number without a type
    let res = user(json!({
        "userName": "bjensen",
        "addresses": [{"streetAddress": "1 Main St", "locality": "Springfield"}],
        "phoneNumbers": [{"value": "555-0100"}, {"type": "fax", "value": "555-0199"}]
    }));
    let d = m.to_ldap(&res, &|_| None).unwrap();
    assert_eq!(
        *d.get(&AttrName::from("street")).unwrap(),
        Desired::Set("1 Main St".into())
    );
    assert_eq!(
        *d.get(&AttrName::from("l")).unwrap(),
        Desired::Set("Springfield".into())
    );
    assert_eq!(
        *d.get(&AttrName::from("telephoneNumber")).unwrap(),
        Desired::Set("555-0100".into())
    );
    assert_eq!(
        *d.get(&AttrName::from("facsimileTelephoneNumber")).unwrap(),
        Desired::Set("555-0199".into())
    );
}

#[test]
fn a_value_that_has_the_default_type_wins_over_an_untyped_one() {
    let m = example();
    let res = user(json!({
        "userName": "bjensen",
        "phoneNumbers": [{"value": "555-0100"}, {"type": "work", "value": "555-0111"}]
    }));
    let d = m.to_ldap(&res, &|_| None).unwrap();
    assert_eq!(
        *d.get(&AttrName::from("telephoneNumber")).unwrap(),
        Desired::Set("555-0111".into())
    );
}

#[test]
fn a_default_type_without_a_mapped_slot_is_a_config_error_naming_the_key() {
    let err = with_attributes("[users.default_type]\nemails = \"home\"").unwrap_err();
    assert_eq!(err.key, "users.default_type.emails");
    assert!(err.fix.contains("emails[type eq"), "{}", err.fix);
    let err = with_attributes("[users.default_type]\ntitle = \"work\"").unwrap_err();
    assert_eq!(err.key, "users.default_type.title");
}

#[test]
fn a_multi_valued_attribute_mapped_whole_keeps_every_value() {
    let m = with_attributes("roles = \"businessCategory\"").unwrap();
    let res = user(json!({"userName": "bjensen", "roles": [
        {"value": "Approver"}, {"value": "Auditor", "primary": true}, {"value": "approver"}, {"value": ""}
    ]}));
    let d = m.to_ldap(&res, &|_| None).unwrap();
    assert_eq!(
        *d.get(&AttrName::from("businessCategory")).unwrap(),
        Desired::Many(vec!["Approver".into(), "Auditor".into()])
    );
    let e = entry(&[
        ("uid", &["bjensen"]),
        ("businessCategory", &["Auditor", "Viewer"]),
    ]);
    assert_eq!(
        m.to_scim(&e, &|_| None).to_json()["roles"],
        json!([{"value": "Auditor"}, {"value": "Viewer"}])
    );
    let old = m.to_ldap(&m.to_scim(&e, &|_| None), &|_| None).unwrap();
    assert_eq!(
        m.changes(&e, &old, &d),
        vec![Change::Replace(
            "businessCategory".into(),
            vec!["Approver".into(), "Auditor".into()]
        )]
    );
    // the same values in another order or case change nothing
    let same =
        user(json!({"userName": "bjensen", "roles": [{"value": "viewer"}, {"value": "Auditor"}]}));
    let d = m.to_ldap(&same, &|_| None).unwrap();
    assert!(m.changes(&e, &old, &d).is_empty());
    let none = m
        .to_ldap(&user(json!({"userName": "bjensen"})), &|_| None)
        .unwrap();
    assert_eq!(
        m.changes(&e, &old, &none),
        vec![Change::Replace("businessCategory".into(), vec![])]
    );
    // filters: any value
    let f = parse_filter(r#"roles.value eq "Auditor""#).unwrap();
    let l = m.ldap_filter(&f, &|_| None).unwrap().to_string();
    assert!(l.contains("(businessCategory=Auditor)"), "{l}");
    let f = parse_filter(r#"roles[value eq "Auditor"]"#).unwrap();
    let l = m.ldap_filter(&f, &|_| None).unwrap().to_string();
    assert!(l.contains("(businessCategory=Auditor)"), "{l}");
}

#[test]
fn a_whole_mapping_and_a_typed_one_of_the_same_attribute_are_refused() {
    let err =
        with_attributes("emails = \"mail\"\n'emails[type eq \"work\"].value' = \"otherMailbox\"")
            .unwrap_err();
    assert!(err.problem.contains("mapped whole"), "{err}");
}

#[test]
fn postal_addresses_join_lines_with_dollars_and_escape_both_ways() {
    assert_eq!(
        to_postal("1 Main St\r\nSuite $5 \\ B\n\nSpringfield").as_deref(),
        Some(r"1 Main St$Suite \245 \5C B$Springfield")
    );
    assert_eq!(
        from_postal(r"1 Main St$Suite \245 \5C B$Springfield"),
        "1 Main St\nSuite $5 \\ B\nSpringfield"
    );
    assert_eq!(from_postal(r"a \5C24 b"), r"a \24 b");
    assert_eq!(to_postal(" \n "), None);
    let m = with_attributes(
        "'addresses[type eq \"home\"].formatted' = { ldap = \"homePostalAddress\", transform = \"postal-address\" }",
    )
    .unwrap();
    let d = m
        .to_ldap(
            &user(json!({"userName": "b", "addresses": [{"type": "home", "formatted": "1 Elm\nTown"}]})),
            &|_| None,
        )
        .unwrap();
    assert_eq!(
        *d.get(&AttrName::from("homePostalAddress")).unwrap(),
        Desired::Set("1 Elm$Town".into())
    );
    let e = entry(&[("uid", &["b"]), ("homePostalAddress", &["1 Elm$Town"])]);
    assert_eq!(
        m.to_scim(&e, &|_| None).to_json()["addresses"][0]["formatted"],
        "1 Elm\nTown"
    );
}
