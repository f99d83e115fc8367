//! Request sequences IdPs send over an account's life, and what certification suites check of
//! them, on OpenLDAP (tests/ad.rs has the same on Samba): rehires, duplicate creates, a
//! create retried after its answer was lost, countries by name or code, typed values the
//! mapping cannot hold.
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

/// Rehires under the same userName: after a delete, after a rename and a second delete.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_user_can_be_rehired_under_the_same_name() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let create = |name: &'static str| {
        let bridge = &bridge;
        async move {
            let u = bridge.create_user(json!({"userName": name})).await;
            u["id"].as_str().unwrap().to_owned()
        }
    };
    let first = create("hire").await;
    assert_eq!(
        bridge.delete(&format!("/Users/{first}")).await,
        StatusCode::NO_CONTENT
    );
    let second = create("hire").await;
    assert_ne!(first, second);
    let (s, b) = bridge
        .patch(
            &format!("/Users/{second}"),
            json!([{"op": "replace", "path": "userName", "value": "hired"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        bridge.delete(&format!("/Users/{second}")).await,
        StatusCode::NO_CONTENT
    );
    let third = create("hire").await;
    let fourth = create("hired").await;
    assert_eq!(
        bridge.delete(&format!("/Users/{third}")).await,
        StatusCode::NO_CONTENT
    );
    let fifth = create("hire").await;
    let ids = [&first, &second, &third, &fourth, &fifth];
    for id in ids {
        assert_eq!(ids.iter().filter(|x| **x == id).count(), 1, "{ids:?}");
    }
    assert_eq!(slapd.dns(ARCHIVE, "(uid=hire*)").await.len(), 3);
}

/// A second POST of an existing userName is 409 `uniqueness` naming the user, with the same
/// values too (Okta's "Expect failure when recreating user with same values"), and for a
/// deactivated user; a second POST of a group name likewise.
#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_create_is_a_409_naming_the_existing_resource() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let body = entra_user("twice");
    let first = bridge.create_user(body.clone()).await;
    let id = first["id"].as_str().unwrap();
    let (s, e) = bridge.post("/Users", &body).await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::CONFLICT, Some("uniqueness")),
        "{e}"
    );
    assert!(e["detail"].as_str().unwrap().contains(id), "{e}");
    bridge
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "active", "value": false}]),
        )
        .await;
    let (s, e) = bridge.post("/Users", &body).await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "a deactivated user is not handed back as new: {e}"
    );
    assert_eq!(slapd.dns(PEOPLE, "(uid=twice)").await.len(), 1);

    let group = json!({"displayName": "Twice Team"});
    let (s, g) = bridge.post("/Groups", &group).await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let (s, e) = bridge.post("/Groups", &group).await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::CONFLICT, Some("uniqueness")),
        "{e}"
    );
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains(g["id"].as_str().unwrap()),
        "{e}"
    );
}

/// Entra sends country names, Okta ISO codes: both are stored as the code LDAP's `c` holds,
/// with the name in `co`, and shown as the code; a title changed beside a country name is no
/// longer lost; a value that names no country is a 400 naming `addresses.country`.
#[tokio::test(flavor = "multi_thread")]
async fn countries_by_name_or_code_are_stored_as_codes_with_their_names() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let mut body = entra_user("globe");
    body["addresses"][0]["country"] = json!("Germany");
    let u = bridge.create_user(body).await;
    assert_eq!(u["addresses"][0]["country"], "DE");
    let e = slapd.entry(&dn_of("globe")).await.unwrap();
    assert_eq!(
        (e["c"].clone(), e["co"].clone()),
        (vec!["DE".to_owned()], vec!["Germany".to_owned()])
    );
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let (s, b) = bridge
        .patch(
            &path,
            json!([
                {"op": "replace", "path": "title", "value": "Consul"},
                {"op": "replace", "path": "addresses[type eq \"work\"].country", "value": "United States"}
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["title"].as_str(), b["addresses"][0]["country"].as_str()),
        (Some("Consul"), Some("US"))
    );
    let e = slapd.entry(&dn_of("globe")).await.unwrap();
    assert_eq!(e["co"], vec!["United States"]);
    let (_, found) = bridge
        .get(&format!(
            "/Users?filter={}",
            urlencode("addresses.country eq \"United States\"")
        ))
        .await;
    assert_eq!(found["totalResults"], 1, "{found}");
    let (s, b) = bridge
        .patch(&path, json!([{"op": "replace", "path": "addresses[type eq \"work\"].country", "value": "fr"}]))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let e = slapd.entry(&dn_of("globe")).await.unwrap();
    assert_eq!(
        (e["c"].clone(), e["co"].clone()),
        (vec!["FR".to_owned()], vec!["France".to_owned()])
    );
    let (s, err) = bridge
        .patch(
            &path,
            json!([
                {"op": "replace", "path": "title", "value": "Emperor"},
                {"op": "replace", "path": "addresses[type eq \"work\"].country", "value": "Atlantis"}
            ]),
        )
        .await;
    assert_eq!(
        (s, err["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalidValue")),
        "{err}"
    );
    assert!(err["detail"].as_str().unwrap().contains("country"), "{err}");
    assert_eq!(
        slapd.entry(&dn_of("globe")).await.unwrap()["title"],
        vec!["Consul"]
    );
}

/// A value path that selects a type the mapping stores nothing for is 400 `noTarget`, so the
/// IdP hears the value was not kept (it used to answer 200 and store nothing); the mapped
/// types in the same kind of PATCH are stored as before (Entra's work email).
#[tokio::test(flavor = "multi_thread")]
async fn a_value_path_no_mapping_can_hold_is_no_target() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let u = bridge.create_user(entra_user("typed")).await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    for target in [
        "phoneNumbers[type eq \"assistant\"].value",
        "emails[type eq \"other\"].value",
        "addresses[type eq \"other\"].locality",
    ] {
        let (s, e) = bridge
            .patch(
                &path,
                json!([{"op": "replace", "path": target, "value": "x-1"}]),
            )
            .await;
        assert_eq!(
            (s, e["scimType"].as_str()),
            (StatusCode::BAD_REQUEST, Some("noTarget")),
            "{target}: {e}"
        );
    }
    let (s, b) = bridge
        .patch(
            &path,
            json!([
                {"op": "add", "path": "emails[type eq \"work\"].value", "value": "typed2@example.com"},
                {"op": "replace", "path": "phoneNumbers[type eq \"pager\"].value", "value": "+1 555 0177"}
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let e = slapd.entry(&dn_of("typed")).await.unwrap();
    assert_eq!(
        (e["mail"][0].as_str(), e["pager"][0].as_str()),
        ("typed2@example.com", "+1 555 0177")
    );
}
