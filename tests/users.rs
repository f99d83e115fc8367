//! Users end to end: real HTTP into the bridge, real slapd behind it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use std::collections::HashSet;

use common::*;
use ldap3::Mod;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn first<'a>(e: &'a std::collections::HashMap<String, Vec<String>>, attr: &str) -> Option<&'a str> {
    e.get(&attr.to_ascii_lowercase())
        .and_then(|v| v.first())
        .map(String::as_str)
}

#[tokio::test(flavor = "multi_thread")]
async fn create_makes_an_inetorgperson_entry_whose_entry_uuid_is_the_scim_id() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let (status, headers, user) = bridge
        .call(Method::POST, "/Users", Some(&entra_user("bjensen")))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(headers["content-type"], "application/scim+json");
    let id = user["id"].as_str().unwrap();
    assert_eq!(
        headers["location"].to_str().unwrap(),
        format!("{}/Users/{id}", bridge.base)
    );
    assert_eq!(
        user["meta"]["location"],
        format!("{}/Users/{id}", bridge.base)
    );
    assert_eq!(user["meta"]["resourceType"], "User");
    assert!(user["meta"]["created"].as_str().unwrap().ends_with('Z'));

    let e = slapd
        .entry(&dn_of("bjensen"))
        .await
        .expect("entry exists in LDAP");
    assert_eq!(
        first(&e, "entryUUID"),
        Some(id),
        "id is entryUUID, not the DN"
    );
    let oc: HashSet<&str> = e["objectclass"].iter().map(String::as_str).collect();
    assert!(oc.contains("inetOrgPerson") && oc.contains("scim2ldapPerson"));
    for (attr, want) in [
        ("uid", "bjensen"),
        ("scimExternalId", "ext-bjensen"),
        ("givenName", "Given bjensen"),
        ("sn", "Family"),
        ("cn", "Given bjensen Family"),
        ("displayName", "Display bjensen"),
        ("mail", "bjensen@example.com"),
        ("telephoneNumber", "+1 555 0100"),
        ("mobile", "+1 555 0199"),
        ("street", "1 Main St"),
        ("l", "Springfield"),
        ("st", "IL"),
        ("postalCode", "62701"),
        ("c", "US"),
        ("title", "Engineer"),
        ("preferredLanguage", "en-US"),
        ("scimLocale", "en-US"),
        ("scimTimezone", "Europe/Paris"),
        ("employeeNumber", "1001"),
        ("departmentNumber", "R&D"),
    ] {
        assert_eq!(first(&e, attr), Some(want), "LDAP attribute {attr}");
    }
    assert!(!e.contains_key("pwdaccountlockedtime"), "created active");

    // the response round-trips what was sent
    assert_eq!(
        user["emails"],
        json!([{"type": "work", "primary": true, "value": "bjensen@example.com"}])
    );
    assert_eq!(user["addresses"][0]["locality"], "Springfield");
    assert_eq!(user[ENTERPRISE]["department"], "R&D");
    assert_eq!(user["active"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_by_id_returns_the_user_and_a_cached_get_costs_one_ldap_read() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let created = bridge.create_user(entra_user("alice")).await;
    let id = created["id"].as_str().unwrap();
    let before = bridge.ldap_ops();
    let (s, got) = bridge.get(&format!("/Users/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        bridge.ldap_ops() - before,
        1,
        "a cached GET is one LDAP read"
    );
    assert_eq!(got["userName"], "alice");
    assert_eq!(got["id"], created["id"]);

    // a POST costs the uniqueness search, the search for stale memberships of the new DN
    // (a new user never inherits a deleted one's groups) and the add, which returns the new
    // entry (RFC 4527 post-read): no read-back
    let before = bridge.ldap_ops();
    let bob = bridge.create_user(json!({"userName": "bob"})).await;
    assert_eq!(bridge.ldap_ops() - before, 3);
    let (_, read) = bridge
        .get(&format!("/Users/{}", bob["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        bob, read,
        "the post-read answer is the entry as a read shows it"
    );

    let (s, err) = bridge
        .get("/Users/3f2504e0-4f89-11d3-9a0c-0305e82c3301")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(err["status"], "404");
    let (s, _) = bridge
        .get("/Users/uid=alice,ou=people,dc=example,dc=org")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a DN is not an id");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_pages_with_start_index_and_count_and_exact_totals() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    for i in 0..5 {
        bridge
            .create_user(json!({"userName": format!("user{i}")}))
            .await;
    }
    let (s, page) = bridge.get("/Users?startIndex=2&count=2").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        page["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    assert_eq!(page["totalResults"], 5);
    assert_eq!(page["startIndex"], 2);
    assert_eq!(page["itemsPerPage"], 2);
    assert_eq!(page["Resources"].as_array().unwrap().len(), 2);

    let (_, all) = bridge.get("/Users").await;
    assert_eq!(all["totalResults"], 5);
    let names: HashSet<&str> = all["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 5);

    let (_, only_total) = bridge.get("/Users?count=0").await;
    assert_eq!(only_total["totalResults"], 5);
    assert_eq!(only_total["Resources"].as_array().unwrap().len(), 0);

    let (_, beyond) = bridge.get("/Users?startIndex=9&count=3").await;
    assert_eq!(beyond["totalResults"], 5);
    assert_eq!(beyond["Resources"].as_array().unwrap().len(), 0);

    let (s, clamped) = bridge.get("/Users?startIndex=-3&count=-1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(clamped["startIndex"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_find_users_by_user_name_external_id_and_email() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let a = bridge.create_user(entra_user("ann")).await;
    let b = bridge.create_user(entra_user("ben")).await;
    bridge.create_user(entra_user("cat")).await;
    let id = |u: &Value| u["id"].as_str().unwrap().to_owned();
    assert_eq!(find(&bridge, r#"userName eq "ann""#).await, vec![id(&a)]);
    assert_eq!(
        find(&bridge, r#"USERNAME Eq "ANN""#).await,
        vec![id(&a)],
        "names and userName are case-insensitive"
    );
    assert_eq!(
        find(&bridge, r#"externalId eq "ext-ben""#).await,
        vec![id(&b)]
    );
    assert_eq!(
        find(&bridge, r#"externalId eq "EXT-BEN""#).await,
        Vec::<String>::new(),
        "externalId is caseExact"
    );
    assert_eq!(
        find(&bridge, r#"emails.value eq "ann@example.com""#).await,
        vec![id(&a)]
    );
    assert_eq!(
        find(
            &bridge,
            r#"emails[type eq "work" and value eq "ben@example.com"]"#
        )
        .await,
        vec![id(&b)]
    );
    let mut both = vec![id(&a), id(&b)];
    both.sort();
    assert_eq!(
        find(&bridge, r#"userName eq "ann" or externalId eq "ext-ben""#).await,
        both
    );
    assert_eq!(
        find(&bridge, r#"userName eq "ann" and externalId eq "ext-ben""#).await,
        Vec::<String>::new()
    );
    assert_eq!(
        find(&bridge, r#"userName eq "nobody""#).await,
        Vec::<String>::new()
    );
    assert_eq!(
        find(&bridge, r#"userName eq "*""#).await,
        Vec::<String>::new(),
        "values are escaped, not wildcards"
    );
    assert_eq!(
        find(&bridge, r#"userName eq "*)(uid=*""#).await,
        Vec::<String>::new()
    );

    // Entra's pre-create lookup by userName is answered from the DN cache with one read
    let before = bridge.ldap_ops();
    assert_eq!(find(&bridge, r#"userName eq "cat""#).await.len(), 1);
    assert_eq!(bridge.ldap_ops() - before, 1);

    let (s, err) = bridge
        .get(&format!("/Users?filter={}", urlencode("userName eq")))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(err["scimType"], "invalidFilter");
    assert!(
        err["detail"].as_str().unwrap().contains("character"),
        "{err}"
    );
}

async fn find(bridge: &Bridge, f: &str) -> Vec<String> {
    let (s, page) = bridge.get(&format!("/Users?filter={}", urlencode(f))).await;
    assert_eq!(s, StatusCode::OK, "{f}: {page}");
    let mut ids: Vec<String> = page["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(page["totalResults"], ids.len());
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn put_replaces_mapped_attributes_clears_absent_ones_and_keeps_unmapped_ldap_data() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let u = bridge.create_user(entra_user("carol")).await;
    let id = u["id"].as_str().unwrap();
    // data the mapping does not know about, written by someone else
    slapd
        .modify(
            &dn_of("carol"),
            vec![Mod::Add("description", HashSet::from(["kept by PUT"]))],
        )
        .await;

    let (s, put) = bridge
        .put(
            &format!("/Users/{id}"),
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": id,
                "userName": "carol",
                "name": {"givenName": "Carol", "familyName": "Danvers"},
                "emails": [{"type": "work", "value": "carol@new.example.com", "primary": true}],
                "active": true
            }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{put}");
    let e = slapd.entry(&dn_of("carol")).await.unwrap();
    assert_eq!(first(&e, "mail"), Some("carol@new.example.com"));
    assert_eq!(first(&e, "sn"), Some("Danvers"));
    assert_eq!(
        first(&e, "description"),
        Some("kept by PUT"),
        "unmapped attributes untouched"
    );
    for gone in [
        "title",
        "telephoneNumber",
        "mobile",
        "l",
        "employeeNumber",
        "scimExternalId",
        "displayName",
    ] {
        assert!(
            !e.contains_key(&gone.to_ascii_lowercase()),
            "{gone} should be cleared by PUT"
        );
    }
    assert_eq!(
        first(&e, "cn"),
        Some("Carol Danvers"),
        "cn derived when name.formatted is absent"
    );
    assert!(put.get("title").is_none());
    assert_eq!(put["id"], u["id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn changing_user_name_renames_the_entry_and_keeps_the_id() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let u = bridge.create_user(entra_user("dave")).await;
    let id = u["id"].as_str().unwrap();
    let mut body = entra_user("david");
    body["id"] = json!(id);
    let (s, put) = bridge.put(&format!("/Users/{id}"), &body).await;
    assert_eq!(s, StatusCode::OK, "{put}");
    assert_eq!(put["id"], u["id"]);
    assert!(slapd.entry(&dn_of("dave")).await.is_none());
    let e = slapd.entry(&dn_of("david")).await.expect("renamed entry");
    assert_eq!(first(&e, "entryUUID"), Some(id));
    assert_eq!(e["uid"], vec!["david"]);

    // and back again through PATCH
    let (s, p) = bridge
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "userName", "value": "dave"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert!(slapd.entry(&dn_of("dave")).await.is_some());
    let (s, got) = bridge.get(&format!("/Users/{id}")).await;
    assert_eq!(
        (s, got["userName"].as_str()),
        (StatusCode::OK, Some("dave"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rename_onto_a_taken_user_name_fails_whole_and_changes_nothing() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let u = bridge.create_user(entra_user("erin")).await;
    bridge.create_user(entra_user("frank")).await;
    let id = u["id"].as_str().unwrap();
    let mut body = entra_user("frank");
    body["title"] = json!("Changed title");
    let (s, err) = bridge.put(&format!("/Users/{id}"), &body).await;
    assert_eq!(s, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["scimType"], "uniqueness");
    let e = slapd.entry(&dn_of("erin")).await.unwrap();
    assert_eq!(first(&e, "title"), Some("Engineer"), "nothing applied");
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_in_the_dialects_idps_send() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let boss = bridge.create_user(entra_user("boss")).await;
    let boss_id = boss["id"].as_str().unwrap();
    let u = bridge
        .create_user(json!({"userName": "gina", "name": {"familyName": "G"}}))
        .await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());

    // Entra: capitalised ops, value paths, string booleans, the manager as a bare id
    let (s, p) = bridge
        .patch(
            &path,
            json!([
                {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "gina@example.com"},
                {"op": "Replace", "path": "addresses[type eq \"work\"].locality", "value": "Lyon"},
                {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+33 6 00 00 00 00"},
                {"op": "Replace", "path": "name.givenName", "value": "Gina"},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": boss_id},
                {"op": "Replace", "path": "active", "value": "False"}
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let e = slapd.entry(&dn_of("gina")).await.unwrap();
    assert_eq!(first(&e, "mail"), Some("gina@example.com"));
    assert_eq!(first(&e, "l"), Some("Lyon"));
    assert_eq!(first(&e, "mobile"), Some("+33 6 00 00 00 00"));
    assert_eq!(first(&e, "givenName"), Some("Gina"));
    assert_eq!(
        first(&e, "manager"),
        Some(dn_of("boss").as_str()),
        "manager stored as the DN"
    );
    assert_eq!(first(&e, "pwdAccountLockedTime"), Some("000001010000Z"));
    assert_eq!(p["active"], false);
    assert_eq!(
        p[ENTERPRISE]["manager"]["value"], boss_id,
        "manager shown as the SCIM id"
    );

    // a PATCH of a user with a manager costs the read, a read of the manager's id (a DN can
    // be reused by a new entry, so its id is never cached) and the modify, which returns the
    // entry as it left it (post-read): no read-back
    let before = bridge.ldap_ops();
    let (s, patched) = bridge
        .patch(
            &path,
            json!([{"op": "replace", "path": "title", "value": "Lead"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(bridge.ldap_ops() - before, 3);
    let (_, read) = bridge.get(&path).await;
    assert_eq!(
        patched, read,
        "the post-read answer is the entry as a read shows it"
    );
    assert_eq!(read["title"], "Lead");

    // Okta: path-less replace; dotted keys and extension URNs in the value object
    let (s, p) = bridge
        .patch(
            &path,
            json!([{"op": "replace", "value": {
                "active": true,
                "name.familyName": "Green",
                "displayName": "Gina Green",
                ENTERPRISE: {"department": "Ops", "manager": {"value": boss_id}}
            }}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let e = slapd.entry(&dn_of("gina")).await.unwrap();
    assert!(!e.contains_key("pwdaccountlockedtime"), "reactivated");
    assert_eq!(first(&e, "sn"), Some("Green"));
    assert_eq!(first(&e, "displayName"), Some("Gina Green"));
    assert_eq!(first(&e, "departmentNumber"), Some("Ops"));

    // empty strings clear; remove by path; remove the manager
    let (s, p) = bridge
        .patch(
            &path,
            json!([
                {"op": "replace", "path": "displayName", "value": ""},
                {"op": "remove", "path": "phoneNumbers[type eq \"mobile\"]"},
                {"op": "Remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let e = slapd.entry(&dn_of("gina")).await.unwrap();
    for gone in ["displayname", "mobile", "manager"] {
        assert!(!e.contains_key(gone), "{gone} cleared");
    }
    assert_eq!(
        first(&e, "mail"),
        Some("gina@example.com"),
        "other values untouched"
    );

    // one failing operation means none is applied
    let (s, err) = bridge
        .patch(
            &path,
            json!([
                {"op": "replace", "path": "title", "value": "Should not stick"},
                {"op": "replace", "path": "active", "value": "perhaps"}
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["detail"].as_str().unwrap().contains("active"));
    // a manager id that is no user of ours is not stored, and does not fail the request
    let (s, p) = bridge
        .patch(&path, json!([
            {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "value": "3f2504e0-4f89-11d3-9a0c-0305e82c3301"}
        ]))
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert!(!slapd
        .entry(&dn_of("gina"))
        .await
        .unwrap()
        .contains_key("manager"));
    assert_eq!(
        first(&slapd.entry(&dn_of("gina")).await.unwrap(), "title"),
        Some("Lead"),
        "the title from the failed request was not applied"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deactivation_locks_the_account_in_ldap_and_reactivation_unlocks_it() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let u = bridge.create_user(entra_user("hank")).await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let dn = dn_of("hank");
    slapd
        .modify(
            &dn,
            vec![Mod::Replace("userPassword", HashSet::from(["Hank-pw-1"]))],
        )
        .await;
    assert!(slapd.can_bind(&dn, "Hank-pw-1").await);

    let (s, p) = bridge
        .patch(
            &path,
            json!([{"op": "replace", "path": "active", "value": false}]),
        )
        .await;
    assert_eq!((s, &p["active"]), (StatusCode::OK, &json!(false)));
    assert_eq!(
        first(&slapd.entry(&dn).await.unwrap(), "pwdAccountLockedTime"),
        Some("000001010000Z")
    );
    assert!(
        !slapd.can_bind(&dn, "Hank-pw-1").await,
        "ppolicy refuses the locked account"
    );
    let (_, got) = bridge.get(&path).await;
    assert_eq!(got["active"], false);
    let (_, page) = bridge.get("/Users?filter=active%20eq%20false").await;
    assert_eq!(page["totalResults"], 1);

    // created inactive: locked from the start
    let mut body = entra_user("hank2");
    body["active"] = json!(false);
    let (s, created) = bridge.post("/Users", &body).await;
    assert_eq!(
        (s, &created["active"]),
        (StatusCode::CREATED, &json!(false))
    );
    assert_eq!(
        first(
            &slapd.entry(&dn_of("hank2")).await.unwrap(),
            "pwdAccountLockedTime"
        ),
        Some("000001010000Z")
    );

    // a PUT that does not mention active leaves the account locked
    let mut body = entra_user("hank");
    body.as_object_mut().unwrap().remove("active");
    let (s, _) = bridge.put(&path, &body).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!slapd.can_bind(&dn, "Hank-pw-1").await);

    let (s, p) = bridge
        .patch(&path, json!([{"op": "replace", "value": {"active": true}}]))
        .await;
    assert_eq!((s, &p["active"]), (StatusCode::OK, &json!(true)));
    assert!(!slapd
        .entry(&dn)
        .await
        .unwrap()
        .contains_key("pwdaccountlockedtime"));
    assert!(slapd.can_bind(&dn, "Hank-pw-1").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn attribute_strategy_stores_active_as_a_marker_value() {
    let slapd = Slapd::start();
    let cfg = test_config(
        &slapd,
        &[
            ("strategy = \"ppolicy-lock\"", "strategy = \"attribute\"\nattribute = \"employeeType\"\ninactive_value = \"disabled\"\nactive_value = \"enabled\""),
            // one LDAP attribute holds one SCIM attribute
            ("userType = \"employeeType\"\n", ""),
        ],
        "",
    );
    let bridge = Bridge::start_with(cfg).await;
    let u = bridge.create_user(entra_user("ivy")).await;
    assert_eq!(
        first(&slapd.entry(&dn_of("ivy")).await.unwrap(), "employeeType"),
        Some("enabled")
    );
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    bridge
        .patch(
            &path,
            json!([{"op": "replace", "path": "active", "value": "false"}]),
        )
        .await;
    assert_eq!(
        first(&slapd.entry(&dn_of("ivy")).await.unwrap(), "employeeType"),
        Some("disabled")
    );
    let (_, got) = bridge.get(&path).await;
    assert_eq!(got["active"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_archives_a_locked_account_and_scim_answers_404() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let u = bridge.create_user(entra_user("jack")).await;
    let id = u["id"].as_str().unwrap().to_owned();
    assert_eq!(
        bridge.delete(&format!("/Users/{id}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        bridge.get(&format!("/Users/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bridge.delete(&format!("/Users/{id}")).await,
        StatusCode::NOT_FOUND
    );
    let (_, page) = bridge.get("/Users?filter=userName%20eq%20%22jack%22").await;
    assert_eq!(page["totalResults"], 0);

    assert!(slapd.entry(&dn_of("jack")).await.is_none());
    let archived = slapd
        .entry(&format!("uid=jack,{ARCHIVE}"))
        .await
        .expect("kept in the archive");
    assert_eq!(first(&archived, "entryUUID"), Some(id.as_str()));
    assert_eq!(
        first(&archived, "pwdAccountLockedTime"),
        Some("000001010000Z")
    );
    assert_eq!(
        first(&archived, "mail"),
        Some("jack@example.com"),
        "data kept"
    );

    // an admin restores it as the README says: move it back and remove the lock
    let mut ldap = slapd.admin().await;
    ldap.modifydn(
        &format!("uid=jack,{ARCHIVE}"),
        "uid=jack",
        true,
        Some(PEOPLE),
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    slapd
        .modify(
            &dn_of("jack"),
            vec![Mod::Delete("pwdAccountLockedTime", HashSet::new())],
        )
        .await;
    let (s, back) = bridge.get(&format!("/Users/{id}")).await;
    assert_eq!(
        (s, &back["active"]),
        (StatusCode::OK, &json!(true)),
        "same id again"
    );
    assert_eq!(
        bridge.delete(&format!("/Users/{id}")).await,
        StatusCode::NO_CONTENT
    );

    // the IdP may create the same userName again, and delete it again
    let again = bridge.create_user(entra_user("jack")).await;
    let id2 = again["id"].as_str().unwrap();
    assert_ne!(id2, id);
    assert_eq!(
        bridge.delete(&format!("/Users/{id2}")).await,
        StatusCode::NO_CONTENT
    );
    let in_archive = slapd.dns(ARCHIVE, "(uid=jack*)").await;
    assert_eq!(in_archive.len(), 2, "both archived: {in_archive:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_mode_delete_removes_the_entry() {
    let slapd = Slapd::start();
    let cfg = test_config(
        &slapd,
        &[("delete_mode = \"archive\"", "delete_mode = \"delete\"")],
        "",
    );
    let bridge = Bridge::start_with(cfg).await;
    let u = bridge.create_user(entra_user("kim")).await;
    assert_eq!(
        bridge
            .delete(&format!("/Users/{}", u["id"].as_str().unwrap()))
            .await,
        StatusCode::NO_CONTENT
    );
    assert!(slapd.entry(&dn_of("kim")).await.is_none());
    assert!(slapd.dns("dc=example,dc=org", "(uid=kim)").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_scim_errors_and_leaves_no_entry_behind() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let send_raw = |body: &'static str, ct: &'static str| {
        let req = bridge
            .client
            .post(format!("{}/Users", bridge.base))
            .bearer_auth(TOKEN)
            .header("content-type", ct)
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            let s = r.status();
            let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
            (s, ct, r.json::<Value>().await.unwrap())
        }
    };
    let (s, ct, e) = send_raw("{\"userName\": \"x\",", "application/scim+json").await;
    assert_eq!(
        (s, ct.as_str(), e["scimType"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            "application/scim+json",
            Some("invalidSyntax")
        )
    );
    assert!(
        e["detail"].as_str().unwrap().contains("line 1"),
        "says where: {e}"
    );
    let (s, _, _) = send_raw("{\"userName\": \"x\"}", "text/plain").await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (s, e) = bridge
        .post("/Users", &json!({"displayName": "no user name"}))
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalidValue"))
    );
    assert!(e["detail"].as_str().unwrap().contains("userName"));
    let (s, e) = bridge
        .post("/Users", &json!({"userName": "x", "active": "perhaps"}))
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalidValue"))
    );
    assert!(e["detail"].as_str().unwrap().contains("active"));
    let (s, e) = bridge.post("/Users", &json!({"userName": ["x"]})).await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "a one-element array is accepted for a single value: {e}"
    );

    // a country that is none: 400 naming the SCIM attribute (never the LDAP one), no entry
    let mut body = entra_user("lena");
    body["addresses"][0]["country"] = json!("Atlantis");
    let (s, e) = bridge.post("/Users", &body).await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalidValue")),
        "{e}"
    );
    let detail = e["detail"].as_str().unwrap();
    assert!(
        detail.contains("addresses") && detail.contains("country"),
        "{e}"
    );
    assert!(
        !detail.contains(" c ") && !detail.contains("countryName"),
        "{e}"
    );
    assert!(
        slapd.dns(PEOPLE, "(uid=lena)").await.is_empty(),
        "no half-made entry"
    );

    bridge.create_user(entra_user("mia")).await;
    let (s, e) = bridge.post("/Users", &entra_user("MIA")).await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::CONFLICT, Some("uniqueness"))
    );
    assert_eq!(e["status"], "409");

    let (s, h, e) = bridge.call_as(None, Method::GET, "/Users", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{e}");
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let (s, h, _) = bridge
        .call_as(Some("wrong"), Method::GET, "/Users", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));

    let (s, _, e) = bridge.call(Method::GET, "/Nope", None).await;
    assert_eq!(
        (s, e["status"].as_str()),
        (StatusCode::NOT_FOUND, Some("404"))
    );
    let (s, _, e) = bridge
        .call(Method::POST, "/ServiceProviderConfig", Some(&json!({})))
        .await;
    assert_eq!(
        (s, e["status"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("405"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unmapped_attributes_are_ignored_or_rejected_as_configured() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let (s, u) = bridge
        .post(
            "/Users",
            &json!({"userName": "ned", "ims": [{"type": "xmpp", "value": "ned@chat"}], "shoeSize": 44}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert!(u.get("ims").is_none());

    let strict = test_config(
        &slapd,
        &[("reject_unmapped = false", "reject_unmapped = true")],
        "",
    );
    let strict = Bridge::start_with(strict).await;
    let (s, e) = strict
        .post(
            "/Users",
            &json!({"userName": "ola", "ims": [{"type": "xmpp", "value": "ola@chat"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(e["detail"].as_str().unwrap().contains("ims"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entry_moved_behind_the_bridges_back_is_found_again() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let u = bridge.create_user(entra_user("pat")).await;
    let id = u["id"].as_str().unwrap();
    // an admin moves the entry into a sub-OU; the cached DN is now stale
    let mut ldap = slapd.admin().await;
    slapd.add_ou("staff", "ou=people,dc=example,dc=org").await;
    ldap.modifydn(
        &dn_of("pat"),
        "uid=pat",
        true,
        Some("ou=staff,ou=people,dc=example,dc=org"),
    )
    .await
    .unwrap()
    .success()
    .unwrap();

    let (s, got) = bridge.get(&format!("/Users/{id}")).await;
    assert_eq!((s, got["userName"].as_str()), (StatusCode::OK, Some("pat")));
    let (s, p) = bridge
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "title", "value": "Moved"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let e = slapd
        .entry("uid=pat,ou=staff,ou=people,dc=example,dc=org")
        .await
        .unwrap();
    assert_eq!(first(&e, "title"), Some("Moved"));

    // deleted behind our back: 404, not a stale answer
    ldap.delete("uid=pat,ou=staff,ou=people,dc=example,dc=org")
        .await
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(
        bridge.get(&format!("/Users/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_down_gives_503_with_retry_after() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    bridge.create_user(json!({"userName": "quinn"})).await;
    slapd.stop();
    let (s, h, e) = bridge.call(Method::GET, "/Users", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{e}");
    assert!(h.get("retry-after").is_some());
    assert_eq!(e["status"], "503");
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_is_public_and_follows_the_mapping() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    for path in [
        "/ServiceProviderConfig",
        "/Schemas",
        "/ResourceTypes",
        "/ResourceTypes/User",
    ] {
        let (s, _, b) = bridge.call_as(None, Method::GET, path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {b}");
    }
    let (_, _, spc) = bridge
        .call_as(None, Method::GET, "/ServiceProviderConfig", None)
        .await;
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["filter"]["maxResults"], 200);
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
    let (_, _, schemas) = bridge.call_as(None, Method::GET, "/Schemas", None).await;
    assert_eq!(
        schemas["totalResults"], 3,
        "User, the enterprise extension, Group"
    );
    assert_eq!(
        schemas["Resources"][2]["id"],
        "urn:ietf:params:scim:schemas:core:2.0:Group"
    );
    let user_schema = &schemas["Resources"][0];
    let names: Vec<&str> = user_schema["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"userName") && names.contains(&"addresses") && names.contains(&"active")
    );
    assert!(
        !names.contains(&"ims") && !names.contains(&"nickname"),
        "unmapped attributes are not advertised"
    );
    assert!(names.contains(&"groups"), "groups are configured");
    let (_, _, rts) = bridge
        .call_as(None, Method::GET, "/ResourceTypes", None)
        .await;
    assert_eq!(rts["totalResults"], 2);

    // an admin who maps less sees less
    let small = test_config(
        &slapd,
        &[("\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber\" = \"employeeNumber\"\n\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department\" = \"departmentNumber\"\n\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:organization\" = \"o\"\n\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:division\" = \"ou\"\n\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value\" = { ldap = \"manager\", transform = \"user-dn\" }", ""),
          ("'addresses[type eq \"work\"].streetAddress' = \"street\"", "")],
        "",
    );
    let small = Bridge::start_with(small).await;
    let (_, schemas) = small.get("/Schemas").await;
    assert_eq!(
        schemas["totalResults"], 2,
        "no enterprise schema when nothing of it is mapped (User and Group only)"
    );
    let addresses = schemas["Resources"][0]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "addresses")
        .unwrap()
        .clone();
    let subs: Vec<&str> = addresses["subAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(
        !subs.contains(&"streetAddress") && subs.contains(&"locality"),
        "{subs:?}"
    );
    let (_, rt) = small.get("/ResourceTypes/User").await;
    assert_eq!(rt["schemaExtensions"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn each_tenant_sees_only_its_own_container() {
    let slapd = Slapd::start();
    slapd.add_ou("acme", "dc=example,dc=org").await;
    slapd.add_ou("acme-groups", "dc=example,dc=org").await;
    let acme_token = "scim2ldap_acme-tenant-token";
    let extra = format!(
        "\n[tenants.acme]\nusers_container = \"ou=acme,dc=example,dc=org\"\ngroups_container = \"ou=acme-groups,dc=example,dc=org\"\n[tenants.acme.tokens.okta]\nsha256 = \"{}\"\n",
        hex::encode(scim2ldap::auth::hash_token(acme_token))
    );
    let bridge = Bridge::start_with(test_config(&slapd, &[], &extra)).await;
    let ours = bridge.create_user(entra_user("rita")).await;
    let ours_id = ours["id"].as_str().unwrap();
    let (s, _, theirs) = bridge
        .call_as(
            Some(acme_token),
            Method::POST,
            "/Users",
            Some(&entra_user("rita")),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "same userName in another tenant is fine: {theirs}"
    );
    assert!(slapd
        .entry("uid=rita,ou=acme,dc=example,dc=org")
        .await
        .is_some());

    let (s, _, _) = bridge
        .call_as(
            Some(acme_token),
            Method::GET,
            &format!("/Users/{ours_id}"),
            None,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "another tenant's user does not exist for acme"
    );
    let (s, _, _) = bridge
        .call_as(
            Some(acme_token),
            Method::DELETE,
            &format!("/Users/{ours_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, _, page) = bridge
        .call_as(Some(acme_token), Method::GET, "/Users", None)
        .await;
    assert_eq!(page["totalResults"], 1);
    assert_eq!(page["Resources"][0]["id"], theirs["id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_binds_and_names_the_broken_key() {
    let slapd = Slapd::start();
    let (code, out, err) = check_config(&test_config(&slapd, &[], ""));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("OK"), "{out}");

    let (code, _, err) = check_config(&test_config(
        &slapd,
        &[("title = \"title\"", "title = \"jobTitel\"")],
        "",
    ));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("users.attributes.\"title\"") && err.contains("jobTitel"),
        "{err}"
    );

    let (code, _, err) = check_config(&test_config(&slapd, &[("bind_dn =", "bnd_dn =")], ""));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("ldap") && err.contains("bnd_dn") && err.contains("fix:"),
        "{err}"
    );

    let (code, _, err) = check_config(&test_config(&slapd, &[], "").replace(ADMIN_PW, "wrong"));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("ldap.url") && err.contains("invalidCredentials"),
        "{err}"
    );
    assert!(
        !err.contains("wrong"),
        "the password is never printed: {err}"
    );

    let (code, _, err) = check_config(&test_config(
        &slapd,
        &[(
            "archive_container = \"ou=archive,dc=example,dc=org\"",
            "archive_container = \"ou=attic,dc=example,dc=org\"",
        )],
        "",
    ));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("users.archive_container") && err.contains("does not exist"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_that_never_answers_times_out_into_503() {
    let slapd = Slapd::start();
    // a TCP peer that accepts connections and never says a word
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let cfg = via_plain_ldap(
        &test_config(
            &slapd,
            &[
                ("connect_timeout_secs = 5", "connect_timeout_secs = 1"),
                ("operation_timeout_secs = 10", "operation_timeout_secs = 1"),
            ],
            "",
        ),
        &slapd,
        &format!("ldap://127.0.0.1:{port}"),
    );
    let bridge = Bridge::start_with(cfg).await;
    let (s, h, e) = bridge.call(Method::GET, "/Users", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{e}");
    assert!(h.get("retry-after").is_some());
}
