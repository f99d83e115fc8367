//! SCIM protocol features over real HTTP and slapd: POST .search, attribute projection.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

#[tokio::test(flavor = "multi_thread")]
async fn post_search_on_users_groups_and_root() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    for n in ["sa", "sb", "sc"] {
        bridge.create_user(entra_user(n)).await;
    }
    let (s, g) = bridge
        .post("/Groups", &json!({"displayName": "searchers"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");

    let (s, page) = bridge
        .post(
            "/Users/.search",
            &json!({"schemas": [SEARCH], "filter": "userName sw \"s\"", "startIndex": 2, "count": 1,
                    "attributes": ["userName", "emails.value"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["totalResults"], 3);
    assert_eq!(page["Resources"].as_array().unwrap().len(), 1);
    let r = &page["Resources"][0];
    assert!(r.get("name").is_none() && r.get("meta").is_none());
    assert_eq!(
        r["emails"][0].as_object().unwrap().len(),
        1,
        "only emails.value: {r}"
    );

    let (s, page) = bridge
        .post(
            "/Groups/.search",
            &json!({"schemas": [SEARCH], "filter": "displayName eq \"searchers\""}),
        )
        .await;
    assert_eq!((s, &page["totalResults"]), (StatusCode::OK, &json!(1)));

    // the root search spans both types; a userName filter matches no group
    let (s, page) = bridge
        .post("/.search", &json!({"schemas": [SEARCH], "count": 10}))
        .await;
    assert_eq!(
        (s, &page["totalResults"]),
        (StatusCode::OK, &json!(4)),
        "{page}"
    );
    let (_, page) = bridge
        .post(
            "/.search",
            &json!({"schemas": [SEARCH], "filter": "displayName eq \"searchers\""}),
        )
        .await;
    assert_eq!(page["totalResults"], 1);
    let (_, page) = bridge
        .post(
            "/.search",
            &json!({"schemas": [SEARCH], "filter": "userName eq \"sb\""}),
        )
        .await;
    assert_eq!(page["totalResults"], 1);
    let (s, e) = bridge
        .post("/Users/.search", &json!({"filter": "userName eq"}))
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalidFilter"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn attributes_and_excluded_attributes_shape_every_response() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let (s, _, created) = bridge
        .call(
            Method::POST,
            "/Users?attributes=userName",
            Some(&entra_user("proj")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, vec!["schemas", "id", "userName"]);
    let id = created["id"].as_str().unwrap();

    let (_, got) = bridge
        .get(&format!(
            "/Users/{id}?excludedAttributes=name.familyName,meta,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
        ))
        .await;
    assert!(got.get("meta").is_none());
    assert!(got["name"].get("familyName").is_none() && got["name"]["givenName"].is_string());
    let ext = &got["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
    assert!(ext.get("department").is_none() && ext["employeeNumber"] == "1001");

    let (_, _, patched) = bridge
        .call(
            Method::PATCH,
            &format!("/Users/{id}?attributes=title"),
            Some(
                &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                         "Operations": [{"op": "replace", "path": "title", "value": "CTO"}]}),
            ),
        )
        .await;
    let keys: Vec<&str> = patched
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, vec!["schemas", "id", "title"]);
    assert_eq!(patched["title"], "CTO");
}
