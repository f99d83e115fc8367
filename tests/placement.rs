//! Placement rules against a real slapd: a user goes to the container of the first rule its
//! attributes match; a change that matches another rule moves it (a rename in the write
//! pipeline: groups follow, If-Match holds); reads and lists find users in every container
//! under the tenant's; a rule outside the tenant is refused at start; `explain` names the
//! rule. (Active Directory: `tests/ad.rs`.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PEOPLE: &str = "ou=people,dc=example,dc=org";

fn rules() -> String {
    format!(
        "\n[[users.placement]]\nwhen = '{ENTERPRISE}:department eq \"Sales\"'\ncontainer = \"ou=sales,{PEOPLE}\"\n\
         [[users.placement]]\nwhen = 'addresses[type eq \"work\"].country eq \"DE\"'\ncontainer = \"ou=germany,{PEOPLE}\"\n"
    )
}

async fn placed_bridge(slapd: &Slapd) -> Bridge {
    for ou in ["sales", "germany", "contractors"] {
        slapd.add_ou(ou, PEOPLE).await;
    }
    Bridge::start_with(test_config(slapd, &[], &rules())).await
}

fn in_department(user_name: &str, department: &str) -> Value {
    let mut u = entra_user(user_name);
    u[ENTERPRISE]["department"] = json!(department);
    u
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_placed_by_rule_and_move_when_their_rule_changes() {
    let slapd = Slapd::start();
    let bridge = placed_bridge(&slapd).await;

    // on create: the first rule that matches
    let sales = bridge.create_user(in_department("sam", "Sales")).await;
    let sam = sales["id"].as_str().unwrap().to_owned();
    assert!(slapd
        .entry(&format!("uid=sam,ou=sales,{PEOPLE}"))
        .await
        .is_some());
    let other = bridge.create_user(in_department("rita", "R&D")).await;
    assert!(
        slapd.entry(&format!("uid=rita,{PEOPLE}")).await.is_some(),
        "no rule: the tenant's container"
    );

    // reads, filters and lists see every container under the tenant's
    let (s, u) = bridge.get(&format!("/Users/{sam}")).await;
    assert_eq!((s, &u["userName"]), (StatusCode::OK, &json!("sam")), "{u}");
    let (_, page) = bridge.get("/Users?filter=userName%20eq%20%22sam%22").await;
    assert_eq!(page["totalResults"], 1, "{page}");
    let (_, page) = bridge.get("/Users").await;
    assert_eq!(page["totalResults"], 2, "{page}");

    // sam is in a group; the move takes the membership along
    let (s, g) = bridge
        .post(
            "/Groups",
            &json!({"displayName": "Sellers", "members": [{"value": sam}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");

    // a stale If-Match: 412, nothing moves
    let (_, h, _) = bridge
        .call(Method::GET, &format!("/Users/{sam}"), None)
        .await;
    let etag = h["etag"].to_str().unwrap().to_owned();
    let (s, _) = bridge
        .patch(
            &format!("/Users/{sam}"),
            json!([{"op": "replace", "path": "title", "value": "Lead"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let to_rnd = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "R&D"}]
    });
    let resp = bridge
        .client
        .patch(format!("{}/Users/{sam}", bridge.base))
        .bearer_auth(TOKEN)
        .header("if-match", &etag)
        .header("content-type", "application/scim+json")
        .body(to_rnd.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    assert!(slapd
        .entry(&format!("uid=sam,ou=sales,{PEOPLE}"))
        .await
        .is_some());

    // the department changes: sam moves to the tenant's container, the group follows
    let (s, u) = bridge
        .patch(
            &format!("/Users/{sam}"),
            json!([{"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "R&D"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["id"], json!(sam), "the id survives the move");
    assert!(slapd
        .entry(&format!("uid=sam,ou=sales,{PEOPLE}"))
        .await
        .is_none());
    assert!(slapd.entry(&format!("uid=sam,{PEOPLE}")).await.is_some());
    assert_eq!(
        slapd.group_members("Sellers").await,
        vec![format!("uid=sam,{PEOPLE}")]
    );
    let (_, g) = bridge
        .get(&format!("/Groups/{}", g["id"].as_str().unwrap()))
        .await;
    assert_eq!(g["members"][0]["value"], json!(sam), "{g}");

    // the second rule, by a value filter on addresses: PUT moves rita to ou=germany
    let rita = other["id"].as_str().unwrap();
    let mut body = in_department("rita", "R&D");
    body["addresses"][0]["country"] = json!("DE");
    let (s, u) = bridge.put(&format!("/Users/{rita}"), &body).await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert!(slapd
        .entry(&format!("uid=rita,ou=germany,{PEOPLE}"))
        .await
        .is_some());

    // an account an admin put in an OU of their own stays there while its rule does not change
    let c = bridge.create_user(in_department("carl", "R&D")).await;
    let mut ldap = slapd.admin().await;
    ldap.modifydn(
        &format!("uid=carl,{PEOPLE}"),
        "uid=carl",
        true,
        Some(&format!("ou=contractors,{PEOPLE}")),
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let (s, _) = bridge
        .patch(
            &format!("/Users/{}", c["id"].as_str().unwrap()),
            json!([{"op": "replace", "path": "title", "value": "Contractor"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(slapd
        .entry(&format!("uid=carl,ou=contractors,{PEOPLE}"))
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_outside_the_tenant_or_on_an_unknown_attribute_is_refused_at_start() {
    let slapd = Slapd::start();
    let outside = test_config(
        &slapd,
        &[],
        "\n[[users.placement]]\nwhen = 'title eq \"x\"'\ncontainer = \"ou=groups,dc=example,dc=org\"\n",
    );
    let (code, _, err) = check_config(&outside);
    assert_ne!(code, Some(0));
    assert!(err.contains("users.placement[0].container"), "{err}");
    assert!(
        err.contains("not under tenant default's users container"),
        "{err}"
    );

    let unknown = test_config(
        &slapd,
        &[],
        "\n[[users.placement]]\nwhen = 'departmnt eq \"x\"'\ncontainer = \"ou=sales,ou=people,dc=example,dc=org\"\n",
    );
    let (code, _, err) = check_config(&unknown);
    assert_ne!(code, Some(0));
    assert!(err.contains("users.placement[0].when"), "{err}");

    // a container that does not exist: check-config says so
    let missing = test_config(&slapd, &[], &rules());
    let (code, _, err) = check_config(&missing);
    assert_ne!(code, Some(0));
    assert!(err.contains("users.placement[0].container"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_names_the_rule_that_placed_the_user() {
    let slapd = Slapd::start();
    let bridge = placed_bridge(&slapd).await;
    let body = in_department("sue", "Sales");
    let (ok, text, err) = explain_cli(&bridge.config_path, "POST", "/Users", Some(&body));
    assert!(ok, "{text}{err}");
    assert!(
        text.contains(&format!(
            "placed in ou=sales,{PEOPLE} by users.placement[0]"
        )),
        "{text}"
    );
    assert!(
        slapd
            .entry(&format!("uid=sue,ou=sales,{PEOPLE}"))
            .await
            .is_none(),
        "nothing written"
    );
}
