//! `scim2ldap explain`: the LDAP operations a request would make, reading the real directory
//! and writing nothing, with passwords masked.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use std::path::Path;

use common::*;
use serde_json::json;

/// Runs `scim2ldap explain ARGS [BODY]` on `config`; (succeeded, stdout, stderr).
fn explain(
    config: &Path,
    args: &[&str],
    body: Option<serde_json::Value>,
) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.json");
    let file_arg = file.display().to_string();
    let mut args = args.to_vec();
    if let Some(b) = body {
        std::fs::write(&file, b.to_string()).unwrap();
        args.push(&file_arg);
    }
    cli("explain", &args, config)
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_shows_the_ldap_operations_of_a_create_a_patch_and_a_membership_change_and_writes_nothing(
) {
    let slapd = Slapd::start();
    // the example maps the password (userPassword, set by Password Modify)
    let bridge = Bridge::start(&slapd).await;
    let cfg = bridge.config_path.clone();
    let existing = bridge.create_user(entra_user("alice")).await;
    let alice = existing["id"].as_str().unwrap();
    let (s, group) = bridge
        .post("/Groups", &json!({"displayName": "Staff"}))
        .await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{group}");
    let group_id = group["id"].as_str().unwrap();
    let before = slapd
        .dns("dc=example,dc=org", "(objectClass=*)")
        .await
        .len();
    let alice_before = slapd.entry(&dn_of("alice")).await.unwrap();

    // a create: the uniqueness search, the add with its attributes, the password masked
    let mut new_user = entra_user("new.hire");
    new_user["password"] = json!("Explain-Pw-1!");
    let (ok, out, err) = explain(&cfg, &["POST", "/Users"], Some(new_user));
    assert!(ok, "{err}");
    eprintln!("{out}");
    assert!(out.contains("As tenant default"), "{out}");
    assert!(out.contains("search  ou=people,dc=example,dc=org"), "{out}");
    let add = out
        .lines()
        .find(|l| l.contains("add     uid=new.hire,ou=people,dc=example,dc=org"))
        .unwrap_or_else(|| panic!("no add:\n{out}"));
    assert!(add.ends_with("(not sent)"), "{add}");
    assert!(out.contains("mail: \"new.hire@example.com\""), "{out}");
    assert!(
        out.contains("(password: ******, set as the directory expects)"),
        "{out}"
    );
    assert!(
        !out.contains("Explain-Pw-1!"),
        "the password is never shown"
    );
    assert!(out.contains("would give: 201"), "{out}");
    assert!(out.contains("\"userName\": \"new.hire\""), "{out}");
    assert!(
        slapd.entry(&dn_of("new.hire")).await.is_none(),
        "nothing was added"
    );

    // a PATCH: read, then one modify of the mapped attribute
    let (ok, out, err) = explain(
        &cfg,
        &["PATCH", &format!("/Users/{alice}")],
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "title", "value": "Director"}]}),
        ),
    );
    assert!(ok, "{err}");
    eprintln!("{out}");
    assert!(
        out.contains("modify  uid=alice,ou=people,dc=example,dc=org"),
        "{out}"
    );
    assert!(out.contains("replace title: \"Director\""), "{out}");
    assert!(out.contains("would give: 200"), "{out}");
    assert!(
        out.contains("\"title\": \"Director\""),
        "the answer shows the change: {out}"
    );
    assert_eq!(
        slapd.entry(&dn_of("alice")).await.unwrap(),
        alice_before,
        "alice unchanged"
    );

    // a membership change: the member's DN looked up, one modify adding it to the group
    let (ok, out, err) = explain(
        &cfg,
        &["PATCH", &format!("/scim/v2/Groups/{group_id}")],
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": alice}]}]}),
        ),
    );
    assert!(ok, "{err}");
    eprintln!("{out}");
    assert!(
        out.contains("modify  cn=Staff,ou=groups,dc=example,dc=org"),
        "{out}"
    );
    assert!(
        out.contains("add member: \"uid=alice,ou=people,dc=example,dc=org\""),
        "{out}"
    );
    assert!(out.contains("would give: 2"), "{out}");
    let (_, members) = bridge.get(&format!("/Groups/{group_id}")).await;
    assert!(
        members["members"].as_array().is_none_or(|m| m.is_empty()),
        "{members}"
    );
    assert_eq!(
        slapd
            .dns("dc=example,dc=org", "(objectClass=*)")
            .await
            .len(),
        before,
        "no entry added or removed"
    );

    // errors name the problem
    let (ok, _, err) = explain(&cfg, &["--tenant", "nobody", "GET", "/Users"], None);
    assert!(!ok && err.contains("there is no tenant nobody"), "{err}");
}
