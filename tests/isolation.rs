//! What a tenant may touch: only entries of its resources' structural classes, only under its
//! own containers, only its own role groups; an archived account is nobody's to change; and
//! a config whose tenants would overlap is refused at start.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

const ACME_TOKEN: &str = "scim2ldap_test-token-for-the-acme-tenant";

fn acme_tenant(extra: &str) -> String {
    format!(
        "\n[tenants.acme]\nusers_container = \"ou=acme,dc=example,dc=org\"\ngroups_container = \"ou=acme-groups,dc=example,dc=org\"\n{extra}[tenants.acme.tokens.okta]\nsha256 = \"{}\"\n[tenants.acme.rate_limit]\nper_second = 0\n",
        hex::encode(scim2ldap::auth::hash_token(ACME_TOKEN))
    )
}

async fn entry_uuid(slapd: &Slapd, dn: &str) -> String {
    slapd.entry(dn).await.unwrap_or_else(|| panic!("no {dn}"))["entryuuid"][0].clone()
}

/// Users are inetOrgPersons even when the admin lists "top" and an auxiliary class first:
/// an organizationalRole carrying the auxiliary class, a stray group and a sub-OU under
/// ou=people (and the OU itself) are not users for any operation or as members.
#[tokio::test(flavor = "multi_thread")]
async fn only_entries_of_the_structural_class_are_users_whatever_order_classes_are_listed() {
    let slapd = Slapd::start();
    let bridge = Bridge::start_with(test_config(
        &slapd,
        &[(
            "object_classes = [\"inetOrgPerson\", \"scim2ldapPerson\"]",
            "object_classes = [\"top\", \"scim2ldapPerson\", \"inetOrgPerson\"]",
        )],
        "",
    ))
    .await;
    let real = bridge.create_user(json!({"userName": "realperson"})).await;
    let mut ldap = slapd.admin().await;
    let role = format!("cn=printer,{PEOPLE}");
    let stray = format!("cn=stray,{PEOPLE}");
    let sub = format!("ou=sub,{PEOPLE}");
    add_entry(
        &mut ldap,
        &role,
        &[
            ("objectClass", &["organizationalRole", "scim2ldapPerson"]),
            ("cn", &["printer"]),
        ],
    )
    .await;
    add_entry(
        &mut ldap,
        &stray,
        &[
            ("objectClass", &["groupOfNames"]),
            ("cn", &["stray"]),
            ("member", &["cn=nobody,dc=example,dc=org"]),
        ],
    )
    .await;
    add_entry(
        &mut ldap,
        &sub,
        &[("objectClass", &["organizationalUnit"]), ("ou", &["sub"])],
    )
    .await;
    let foreign = [
        ("organizationalRole", entry_uuid(&slapd, &role).await),
        ("group", entry_uuid(&slapd, &stray).await),
        ("sub-OU", entry_uuid(&slapd, &sub).await),
        ("ou=people itself", entry_uuid(&slapd, PEOPLE).await),
    ];
    let (s, page) = bridge.get("/Users?count=200").await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["totalResults"], 1, "only the real user: {page}");
    assert_eq!(page["Resources"][0]["id"], real["id"]);
    for (what, id) in &foreign {
        assert_not_a_user(&bridge, what, id).await;
    }
    let role_entry = slapd.entry(&role).await.expect("still there");
    assert!(
        !role_entry.contains_key("pwdaccountlockedtime"),
        "never locked"
    );
    assert!(slapd.entry(&stray).await.is_some() && slapd.entry(&sub).await.is_some());
}

/// Role groups belong to a tenant: acme grants roles from its own container only, and the
/// default tenant cannot grant acme's.
#[tokio::test(flavor = "multi_thread")]
async fn role_groups_are_each_tenants_own() {
    let slapd = Slapd::start();
    for ou in ["acme", "acme-groups", "roles", "acme-roles"] {
        slapd.add_ou(ou, "dc=example,dc=org").await;
    }
    let mut ldap = slapd.admin().await;
    for (role, container) in [("Approver", "roles"), ("Auditor", "acme-roles")] {
        add_entry(
            &mut ldap,
            &format!("cn={role},ou={container},dc=example,dc=org"),
            &[
                ("objectClass", &["groupOfNames", "scim2ldapGroup"]),
                ("cn", &[role]),
                ("member", &["cn=scim2ldap-placeholder,dc=example,dc=org"]),
            ],
        )
        .await;
    }
    // role groups instead of the example's roles attribute
    let bridge = Bridge::start_with(test_config(
        &slapd,
        &[("roles = \"businessCategory\"\n", "")],
        &(acme_tenant("roles_container = \"ou=acme-roles,dc=example,dc=org\"\n")
            + "\n[roles]\ncontainer = \"ou=roles,dc=example,dc=org\"\n"),
    ))
    .await;
    let as_acme = |body: serde_json::Value| {
        let bridge = &bridge;
        async move {
            bridge
                .call_as(
                    Some(ACME_TOKEN),
                    reqwest::Method::POST,
                    "/Users",
                    Some(&body),
                )
                .await
        }
    };
    // acme cannot take the default tenant's role
    let (s, _, e) = as_acme(json!({"userName": "acme-a", "roles": [{"value": "Approver"}]})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(e["detail"].as_str().unwrap().contains("acme-roles"), "{e}");
    let approver = slapd
        .entry("cn=Approver,ou=roles,dc=example,dc=org")
        .await
        .unwrap();
    assert_eq!(approver["member"].len(), 1, "only the placeholder");
    // its own role works
    let (s, _, u) = as_acme(json!({"userName": "acme-b", "roles": [{"value": "Auditor"}]})).await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert_eq!(u["roles"][0]["value"], "Auditor");
    let auditor = slapd
        .entry("cn=Auditor,ou=acme-roles,dc=example,dc=org")
        .await
        .unwrap();
    assert!(auditor["member"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case("uid=acme-b,ou=acme,dc=example,dc=org")));
    // and the default tenant cannot take acme's
    let (s, e) = bridge
        .post(
            "/Users",
            &json!({"userName": "dflt", "roles": [{"value": "Auditor"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, u) = bridge
        .post(
            "/Users",
            &json!({"userName": "dflt", "roles": [{"value": "Approver"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
}

/// A DELETE of an archived id (an IdP retrying an old DELETE) answers 404, to its tenant as
/// to any other, and changes nothing: a new account of the same name keeps its groups.
#[tokio::test(flavor = "multi_thread")]
async fn a_delete_of_an_archived_id_answers_404_and_touches_nothing() {
    let slapd = Slapd::start();
    for ou in ["acme", "acme-groups"] {
        slapd.add_ou(ou, "dc=example,dc=org").await;
    }
    let bridge = Bridge::start_with(test_config(&slapd, &[], &acme_tenant(""))).await;
    let old = bridge.create_user(json!({"userName": "dave"})).await;
    let old_id = old["id"].as_str().unwrap();
    assert_eq!(
        bridge.delete(&format!("/Users/{old_id}")).await,
        StatusCode::NO_CONTENT
    );
    // rehired under the same name, and in a group
    let new = bridge.create_user(json!({"userName": "dave"})).await;
    let (s, g) = bridge
        .post(
            "/Groups",
            &json!({"displayName": "Daves", "members": [{"value": new["id"]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let members = || async {
        slapd
            .entry("cn=Daves,ou=groups,dc=example,dc=org")
            .await
            .unwrap()["member"]
            .iter()
            .map(|m| m.to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    let before = members().await;
    assert!(before.contains(&dn_of("dave")));
    // the old DELETE retried, by its tenant and by another
    assert_eq!(
        bridge.delete(&format!("/Users/{old_id}")).await,
        StatusCode::NOT_FOUND
    );
    let (s, _, _) = bridge
        .call_as(
            Some(ACME_TOKEN),
            reqwest::Method::DELETE,
            &format!("/Users/{old_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(members().await, before, "the new dave keeps his group");
    assert!(slapd.entry(&dn_of("dave")).await.is_some());
}

/// Tenants whose containers are the same, nest, or meet the archive, and a default group
/// that is not the tenant's own, are refused at start with the key and the fix.
#[test]
fn configs_whose_tenants_overlap_are_refused_at_start() {
    let slapd = Slapd::start();
    let build = |extra: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let cfg = test_config(&slapd, &[("roles = \"businessCategory\"\n", "")], extra);
        std::fs::write(&path, cfg).unwrap();
        let raw = scim2ldap::config::load_raw(&path).unwrap();
        scim2ldap::app::build(&raw).map(|_| ()).err()
    };
    assert_eq!(build(&acme_tenant("")), None, "separate OUs are fine");
    let cases = [
        (
            "\n[tenants.acme]\n",
            "tenants.default.users_container",
            "both default to users.container",
        ),
        (
            "\n[tenants.acme]\nusers_container = \"ou=acme,ou=people,dc=example,dc=org\"\ngroups_container = \"ou=acme-groups,dc=example,dc=org\"\n",
            "users_container",
            "nested under the default tenant's",
        ),
        (
            "\n[tenants.acme]\nusers_container = \"ou=acme,dc=example,dc=org\"\n",
            "groups_container",
            "sharing groups.container",
        ),
        (
            "\n[roles]\ncontainer = \"ou=roles,dc=example,dc=org\"\n[tenants.acme]\nusers_container = \"ou=acme,dc=example,dc=org\"\ngroups_container = \"ou=acme-groups,dc=example,dc=org\"\n",
            "roles_container",
            "sharing roles.container",
        ),
    ];
    for (extra, key, why) in cases {
        let e = build(extra).unwrap_or_else(|| panic!("accepted: {why}"));
        assert!(
            e.key.contains(key) && e.key.starts_with("tenants."),
            "{why}: {e}"
        );
        assert!(e.fix.contains("its own"), "{why}: {e}");
    }
    let archive_inside = test_config(&slapd, &[], "").replace(
        "archive_container = \"ou=archive,dc=example,dc=org\"",
        "archive_container = \"ou=archive,ou=people,dc=example,dc=org\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, archive_inside).unwrap();
    let raw = scim2ldap::config::load_raw(&path).unwrap();
    let e = scim2ldap::app::build(&raw)
        .err()
        .expect("archive inside a tenant");
    assert_eq!(e.key, "users.archive_container", "{e}");
    let foreign_group = test_config(&slapd, &[], "").replace(
        "# default_group = \"cn=all-staff,ou=groups,dc=example,dc=org\"",
        "default_group = \"cn=all-staff,ou=acme-groups,dc=example,dc=org\"",
    );
    std::fs::write(&path, foreign_group).unwrap();
    let raw = scim2ldap::config::load_raw(&path).unwrap();
    let e = scim2ldap::app::build(&raw)
        .err()
        .expect("a foreign default group");
    assert_eq!(e.key, "tenants.default.default_group", "{e}");
}
