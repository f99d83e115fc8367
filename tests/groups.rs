//! Groups and memberships end to end against a real slapd.
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

const GROUPS: &str = "ou=groups,dc=example,dc=org";
const PLACEHOLDER: &str = "cn=scim2ldap-placeholder,dc=example,dc=org";

fn group_dn(name: &str) -> String {
    format!("cn={name},{GROUPS}")
}

/// The member DNs of a group as LDAP has them, lowercased, placeholder included.
async fn ldap_members(slapd: &Slapd, dn: &str) -> HashSet<String> {
    slapd
        .entry(dn)
        .await
        .expect("group entry")
        .get("member")
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.to_lowercase())
        .collect()
}

fn set(dns: &[&str]) -> HashSet<String> {
    dns.iter().map(|d| d.to_lowercase()).collect()
}

async fn user(bridge: &Bridge, name: &str) -> String {
    let u = bridge.create_user(json!({"userName": name})).await;
    u["id"].as_str().unwrap().to_owned()
}

async fn group(bridge: &Bridge, name: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
    let (s, g) = bridge
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "externalId": format!("ext-{name}"), "members": members}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    g
}

fn member_ids(g: &Value) -> HashSet<String> {
    g["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["value"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn patch_status(bridge: &Bridge, path: &str, ops: Value) -> (StatusCode, Value) {
    bridge.patch(path, ops).await
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_are_created_with_members_and_users_show_their_groups() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let ann = user(&bridge, "ann").await;
    let ben = user(&bridge, "ben").await;
    let g = group(&bridge, "Sales, EMEA", &[&ann, &ben]).await;
    let gid = g["id"].as_str().unwrap();
    assert_eq!(member_ids(&g), HashSet::from([ann.clone(), ben.clone()]));
    assert!(g["members"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["type"] == "User"));
    assert_eq!(g["meta"]["resourceType"], "Group");

    let dn = r"cn=Sales\, EMEA,ou=groups,dc=example,dc=org";
    assert_eq!(
        ldap_members(&slapd, dn).await,
        set(&[&dn_of("ann"), &dn_of("ben"), PLACEHOLDER]),
        "members are DNs; the placeholder keeps groupOfNames valid"
    );
    assert_eq!(
        slapd.entry(dn).await.unwrap()["entryuuid"],
        vec![gid.to_owned()]
    );

    let (s, u) = bridge.get(&format!("/Users/{ann}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(u["groups"][0]["value"], gid);
    assert_eq!(u["groups"][0]["display"], "Sales, EMEA");
    assert_eq!(u["groups"][0]["type"], "direct");

    // an empty group holds only the placeholder, which SCIM never shows
    let empty = group(&bridge, "empty", &[]).await;
    assert_eq!(empty["members"], json!([]));
    assert_eq!(
        ldap_members(&slapd, &group_dn("empty")).await,
        set(&[PLACEHOLDER])
    );

    let (s, e) = bridge
        .post("/Groups", &json!({"displayName": "Sales, EMEA"}))
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::CONFLICT, Some("uniqueness"))
    );
    let (s, e) = bridge.post("/Groups", &json!({"members": []})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn membership_patches_in_every_idp_form_are_minimal_and_idempotent() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let ids: Vec<String> = futures_ids(&bridge, &["u1", "u2", "u3", "u4"]).await;
    let g = group(&bridge, "team", &[&ids[0]]).await;
    let path = format!("/Groups/{}", g["id"].as_str().unwrap());
    let dn = group_dn("team");

    // Okta/Entra: add members with a value array; sent twice (a retry) it still succeeds
    let add =
        json!([{"op": "Add", "path": "members", "value": [{"value": ids[1]}, {"value": ids[2]}]}]);
    for _ in 0..2 {
        let (s, b) = patch_status(&bridge, &path, add.clone()).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    }
    assert_eq!(
        ldap_members(&slapd, &dn).await,
        set(&[&dn_of("u1"), &dn_of("u2"), &dn_of("u3"), PLACEHOLDER])
    );

    // remove by value filter; twice is fine
    let rm = json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[0])}]);
    for _ in 0..2 {
        assert_eq!(
            patch_status(&bridge, &path, rm.clone()).await.0,
            StatusCode::NO_CONTENT
        );
    }
    // Entra: remove with a value array
    let (s, _) = patch_status(
        &bridge,
        &path,
        json!([{"op": "Remove", "path": "members", "value": [{"value": ids[1]}]}]),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        ldap_members(&slapd, &dn).await,
        set(&[&dn_of("u3"), PLACEHOLDER])
    );

    // replace members: the minimal adds and deletes
    let (s, _) = patch_status(&bridge, &path, json!([{"op": "replace", "path": "members", "value": [{"value": ids[2]}, {"value": ids[3]}]}])).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        ldap_members(&slapd, &dn).await,
        set(&[&dn_of("u3"), &dn_of("u4"), PLACEHOLDER])
    );

    // path-less replace with displayName and members together; the response is asked for
    let (s, _, g2) = bridge
        .call(
            Method::PATCH,
            &format!("{path}?excludedAttributes=members"),
            Some(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "replace", "value": {"displayName": "team-renamed", "members": [{"value": ids[0]}]}}
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{g2}");
    assert_eq!(g2["displayName"], "team-renamed");
    assert!(
        g2.get("members").is_none(),
        "excludedAttributes=members honoured"
    );
    assert!(slapd.entry(&dn).await.is_none(), "renamed");
    assert_eq!(
        ldap_members(&slapd, &group_dn("team-renamed")).await,
        set(&[&dn_of("u1"), PLACEHOLDER])
    );

    // remove all members
    let (s, _) = patch_status(&bridge, &path, json!([{"op": "remove", "path": "members"}])).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        ldap_members(&slapd, &group_dn("team-renamed")).await,
        set(&[PLACEHOLDER])
    );

    // add then remove the same member in one request: removed; remove then add: present
    let (s, _) = patch_status(
        &bridge,
        &path,
        json!([
            {"op": "add", "path": "members", "value": [{"value": ids[3]}]},
            {"op": "remove", "path": format!("members[value eq \"{}\"]", ids[3])},
            {"op": "remove", "path": format!("members[value eq \"{}\"]", ids[2])},
            {"op": "add", "path": "members", "value": [{"value": ids[2]}]}
        ]),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        ldap_members(&slapd, &group_dn("team-renamed")).await,
        set(&[&dn_of("u3"), PLACEHOLDER])
    );
}

async fn futures_ids(bridge: &Bridge, names: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for n in names {
        out.push(user(bridge, n).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_member_id_is_refused_and_nothing_of_the_request_applies() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let a = user(&bridge, "a").await;
    let b = user(&bridge, "b").await;
    let g = group(&bridge, "g", &[&a]).await;
    let path = format!("/Groups/{}", g["id"].as_str().unwrap());
    let ghost = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
    let (s, e) = patch_status(
        &bridge,
        &path,
        json!([
            {"op": "replace", "path": "displayName", "value": "g2"},
            {"op": "add", "path": "members", "value": [{"value": b}, {"value": ghost}]}
        ]),
    )
    .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalidValue")),
        "{e}"
    );
    assert!(e["detail"].as_str().unwrap().contains(ghost));
    assert_eq!(
        ldap_members(&slapd, &group_dn("g")).await,
        set(&[&dn_of("a"), PLACEHOLDER])
    );
    let (s, e) = bridge
        .post(
            "/Groups",
            &json!({"displayName": "h", "members": [{"value": ghost}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(slapd.entry(&group_dn("h")).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_membership_patches_both_take_effect() {
    let slapd = Slapd::start();
    let bridge = std::sync::Arc::new(Bridge::start(&slapd).await);
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(user(&bridge, &format!("c{i}")).await);
    }
    let g = group(&bridge, "busy", &[]).await;
    let path = format!("/Groups/{}", g["id"].as_str().unwrap());
    let mut tasks = Vec::new();
    for id in ids.clone() {
        let (bridge, path) = (bridge.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            bridge
                .patch(
                    &path,
                    json!([{"op": "add", "path": "members", "value": [{"value": id}]}]),
                )
                .await
                .0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::NO_CONTENT);
    }
    let (_, g) = bridge.get(&path).await;
    assert_eq!(
        member_ids(&g),
        ids.into_iter().collect::<HashSet<_>>(),
        "no add was lost"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_filter_by_name_external_id_and_member() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let a = user(&bridge, "fa").await;
    let b = user(&bridge, "fb").await;
    let g1 = group(&bridge, "one", &[&a]).await;
    let g2 = group(&bridge, "two", &[&a, &b]).await;
    let find = |f: &str| {
        format!(
            "/Groups?filter={}&excludedAttributes=members",
            f.replace(' ', "%20").replace('"', "%22")
        )
    };
    let ids = |page: &Value| -> HashSet<String> {
        page["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let id = |g: &Value| g["id"].as_str().unwrap().to_owned();
    let (s, p) = bridge.get(&find(r#"displayName eq "one""#)).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(ids(&p), HashSet::from([id(&g1)]));
    assert!(p["Resources"][0].get("members").is_none());
    let (_, p) = bridge.get(&find(r#"externalId eq "ext-two""#)).await;
    assert_eq!(ids(&p), HashSet::from([id(&g2)]));
    let (_, p) = bridge
        .get(&find(&format!(r#"members.value eq "{b}""#)))
        .await;
    assert_eq!(ids(&p), HashSet::from([id(&g2)]));
    let (_, p) = bridge
        .get(&find(&format!(r#"members[value eq "{a}"]"#)))
        .await;
    assert_eq!(ids(&p), HashSet::from([id(&g1), id(&g2)]));
    let (_, p) = bridge.get("/Groups?excludedAttributes=members").await;
    assert_eq!(p["totalResults"], 2);
    let (s, _) = bridge.get(&find(r#"members.display eq "x""#)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn nested_groups_show_group_members_and_indirect_memberships() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let u = user(&bridge, "nina").await;
    let inner = group(&bridge, "inner", &[&u]).await;
    let outer = group(&bridge, "outer", &[inner["id"].as_str().unwrap()]).await;
    assert_eq!(outer["members"][0]["type"], "Group");
    assert_eq!(outer["members"][0]["value"], inner["id"]);
    let (_, got) = bridge.get(&format!("/Users/{u}")).await;
    let groups: Vec<(String, String)> = got["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["value"].as_str().unwrap().to_owned(),
                g["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        groups.contains(&(inner["id"].as_str().unwrap().to_owned(), "direct".into())),
        "{groups:?}"
    );
    assert!(
        groups.contains(&(outer["id"].as_str().unwrap().to_owned(), "indirect".into())),
        "{groups:?}"
    );

    // renaming the inner group keeps it in the outer one
    let (s, _) = bridge
        .patch(
            &format!("/Groups/{}", inner["id"].as_str().unwrap()),
            json!([{"op": "replace", "path": "displayName", "value": "inner2"}]),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(ldap_members(&slapd, &group_dn("outer"))
        .await
        .contains(&group_dn("inner2").to_lowercase()));
    let (_, got) = bridge.get(&format!("/Users/{u}")).await;
    let direct: Vec<&Value> = got["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["type"] == "direct")
        .collect();
    assert_eq!(direct.len(), 1, "{got}");
    assert_eq!(
        direct[0]["value"], inner["id"],
        "memberOf follows the rename"
    );
    assert_eq!(direct[0]["display"], "inner2");

    // deleting the inner group removes it from the outer one
    assert_eq!(
        bridge
            .delete(&format!("/Groups/{}", inner["id"].as_str().unwrap()))
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        ldap_members(&slapd, &group_dn("outer")).await,
        set(&[PLACEHOLDER])
    );
    assert_eq!(
        bridge
            .get(&format!("/Groups/{}", inner["id"].as_str().unwrap()))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn user_lifecycle_keeps_groups_consistent() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let a = user(&bridge, "ua").await;
    let b = user(&bridge, "ub").await;
    let g = group(&bridge, "crew", &[&a, &b]).await;
    let gpath = format!("/Groups/{}", g["id"].as_str().unwrap());

    // deactivation leaves memberships alone
    bridge
        .patch(
            &format!("/Users/{a}"),
            json!([{"op": "replace", "path": "active", "value": false}]),
        )
        .await;
    assert!(ldap_members(&slapd, &group_dn("crew"))
        .await
        .contains(&dn_of("ua").to_lowercase()));

    // a userName change renames the entry and the group follows
    let (s, _) = bridge
        .patch(
            &format!("/Users/{b}"),
            json!([{"op": "replace", "path": "userName", "value": "ub2"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        ldap_members(&slapd, &group_dn("crew")).await,
        set(&[&dn_of("ua"), &dn_of("ub2"), PLACEHOLDER])
    );
    let (_, gv) = bridge.get(&gpath).await;
    assert_eq!(member_ids(&gv), HashSet::from([a.clone(), b.clone()]));

    // delete (archive) removes the user from its groups: no group lists an id that is 404
    assert_eq!(
        bridge.delete(&format!("/Users/{a}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        ldap_members(&slapd, &group_dn("crew")).await,
        set(&[&dn_of("ub2"), PLACEHOLDER])
    );
    let (_, gv) = bridge.get(&gpath).await;
    assert_eq!(member_ids(&gv), HashSet::from([b.clone()]));

    // and with delete_mode = "delete"
    let hard = Bridge::start_with(test_config(
        &slapd,
        &[("delete_mode = \"archive\"", "delete_mode = \"delete\"")],
        "",
    ))
    .await;
    assert_eq!(
        hard.delete(&format!("/Users/{b}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        ldap_members(&slapd, &group_dn("crew")).await,
        set(&[PLACEHOLDER])
    );
}

/// The directory's memberOf says which users and groups are in a group: deleting one in none
/// skips the search for its groups; one in a group still leaves it first.
#[tokio::test(flavor = "multi_thread")]
async fn a_delete_searches_the_groups_only_for_a_member_of_one() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let loner = user(&bridge, "loner").await;
    let joiner = user(&bridge, "joiner").await;
    group(&bridge, "club", &[&joiner]).await;

    let mut costs = Vec::new();
    for id in [&loner, &joiner] {
        let before = bridge.ldap_ops();
        assert_eq!(
            bridge.delete(&format!("/Users/{id}")).await,
            StatusCode::NO_CONTENT
        );
        costs.push(bridge.ldap_ops() - before);
    }
    // the read, the archive's check for the name, the lock, the move and the sweep after it;
    // for a member also the search for its groups and the group's modify
    assert_eq!(costs, vec![5, 7]);
    assert_eq!(
        ldap_members(&slapd, &group_dn("club")).await,
        set(&[PLACEHOLDER])
    );
    for name in ["loner", "joiner"] {
        assert!(slapd.entry(&dn_of(name)).await.is_none(), "{name} moved");
    }

    // groups alike: nested in none, or in one
    let alone = group(&bridge, "alone", &[]).await;
    let nested = group(&bridge, "nested", &[]).await;
    group(&bridge, "outer", &[nested["id"].as_str().unwrap()]).await;
    let mut costs = Vec::new();
    for g in [&alone, &nested] {
        let before = bridge.ldap_ops();
        let path = format!("/Groups/{}", g["id"].as_str().unwrap());
        assert_eq!(bridge.delete(&path).await, StatusCode::NO_CONTENT);
        costs.push(bridge.ldap_ops() - before);
    }
    // the read, the delete and the sweep after it; for a nested one also the search for its
    // groups and the modify of the one that held it
    assert_eq!(costs, vec![3, 5]);
    assert_eq!(
        ldap_members(&slapd, &group_dn("outer")).await,
        set(&[PLACEHOLDER])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_default_group_receives_its_new_users() {
    let slapd = Slapd::start();
    let mut ldap = slapd.admin().await;
    ldap.add(
        &group_dn("all-staff"),
        vec![
            ("objectClass", HashSet::from(["groupOfNames"])),
            ("cn", HashSet::from(["all-staff"])),
            ("member", HashSet::from([PLACEHOLDER])),
        ],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let cfg = test_config(
        &slapd,
        &[(
            "# default_group = \"cn=all-staff,ou=groups,dc=example,dc=org\"",
            "default_group = \"cn=all-staff,ou=groups,dc=example,dc=org\"",
        )],
        "",
    );
    let bridge = Bridge::start_with(cfg).await;
    let id = user(&bridge, "newbie").await;
    assert!(ldap_members(&slapd, &group_dn("all-staff"))
        .await
        .contains(&dn_of("newbie").to_lowercase()));
    let (_, u) = bridge.get(&format!("/Users/{id}")).await;
    assert_eq!(u["groups"][0]["display"], "all-staff");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_membership_patch_on_a_10000_member_group_is_one_modify() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let newcomer = user(&bridge, "newcomer").await;
    // a big group made directly in LDAP: 10,000 member DNs
    let members: Vec<String> = (0..10_000)
        .map(|i| format!("uid=m{i:05},{PEOPLE}"))
        .collect();
    let mut values: HashSet<&str> = members.iter().map(String::as_str).collect();
    values.insert(PLACEHOLDER);
    let mut ldap = slapd.admin().await;
    ldap.add(
        &group_dn("big"),
        vec![
            ("objectClass", HashSet::from(["groupOfNames"])),
            ("cn", HashSet::from(["big"])),
            ("member", values),
        ],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let small = group(&bridge, "small", &[]).await;
    let (_, page) = bridge
        .get("/Groups?filter=displayName%20eq%20%22big%22&excludedAttributes=members")
        .await;
    let big_path = format!("/Groups/{}", page["Resources"][0]["id"].as_str().unwrap());
    let small_path = format!("/Groups/{}", small["id"].as_str().unwrap());

    let add = json!([{"op": "add", "path": "members", "value": [{"value": newcomer}]}]);
    let mut costs = Vec::new();
    for path in [&small_path, &big_path] {
        let before = bridge.ldap_ops();
        let (s, b) = bridge.patch(path, add.clone()).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
        costs.push(bridge.ldap_ops() - before);
    }
    // a read of the group without its members, a search for the new member, one modify, and
    // one search checking the member is still who it was (a concurrent delete or rename
    // would leave a stale value otherwise)
    assert_eq!(costs, vec![4, 4], "the cost does not grow with the group");
    let big = ldap_members(&slapd, &group_dn("big")).await;
    assert_eq!(big.len(), 10_002);
    assert!(big.contains(&dn_of("newcomer").to_lowercase()));

    let rm = json!([{"op": "remove", "path": format!("members[value eq \"{newcomer}\"]")}]);
    let before = bridge.ldap_ops();
    assert_eq!(bridge.patch(&big_path, rm).await.0, StatusCode::NO_CONTENT);
    assert_eq!(bridge.ldap_ops() - before, 3);
    assert_eq!(ldap_members(&slapd, &group_dn("big")).await.len(), 10_001);

    // a listing that leaves members out never reads them
    let (s, p) = bridge.get("/Groups?excludedAttributes=members").await;
    assert_eq!(s, StatusCode::OK);
    assert!(p["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g.get("members").is_none()));
    // and one that includes them resolves ids 250 DNs to a search, not a read per member
    let before = bridge.ldap_ops();
    let (s, full) = bridge.get(&big_path).await;
    assert_eq!(s, StatusCode::OK);
    let ops = bridge.ldap_ops() - before;
    assert!(
        ops <= 1 + 10_001 / 250 + 1,
        "the group read and one search per 250 member DNs: {ops}"
    );
    assert_eq!(
        full["members"],
        json!([]),
        "dangling DNs (no such users) are not shown"
    );
    slapd
        .modify(
            &group_dn("big"),
            vec![Mod::Delete("member", HashSet::from([PLACEHOLDER]))],
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_tenant_sees_only_its_own_groups_and_members() {
    let slapd = Slapd::start();
    slapd.add_ou("acme", "dc=example,dc=org").await;
    slapd.add_ou("acme-groups", "dc=example,dc=org").await;
    let acme_token = "scim2ldap_acme-groups-token";
    let extra = format!(
        "\n[tenants.acme]\nusers_container = \"ou=acme,dc=example,dc=org\"\ngroups_container = \"ou=acme-groups,dc=example,dc=org\"\n[tenants.acme.tokens.okta]\nsha256 = \"{}\"\n",
        hex::encode(scim2ldap::auth::hash_token(acme_token))
    );
    let bridge = Bridge::start_with(test_config(&slapd, &[], &extra)).await;
    let ours_user = user(&bridge, "home").await;
    let ours = group(&bridge, "home-group", &[&ours_user]).await;

    let (s, _, _) = bridge
        .call_as(
            Some(acme_token),
            Method::GET,
            &format!("/Groups/{}", ours["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, _, page) = bridge
        .call_as(Some(acme_token), Method::GET, "/Groups", None)
        .await;
    assert_eq!(page["totalResults"], 0);
    // another tenant's user is not a member acme can add
    let (s, _, e) = bridge
        .call_as(
            Some(acme_token),
            Method::POST,
            "/Groups",
            Some(&json!({"displayName": "acme-team", "members": [{"value": ours_user}]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, _, g) = bridge
        .call_as(
            Some(acme_token),
            Method::POST,
            "/Groups",
            Some(&json!({"displayName": "acme-team"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    assert!(slapd
        .entry("cn=acme-team,ou=acme-groups,dc=example,dc=org")
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_1000_member_put_resolves_members_in_batches() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let mut ldap = slapd.admin().await;
    for i in 0..1000 {
        add_person(&mut ldap, &format!("m{i:04}"), "Member").await;
    }
    let mut ids = Vec::new();
    for start in [1, 201, 401, 601, 801] {
        let (_, page) = bridge
            .get(&format!(
                "/Users?filter=userName%20sw%20%22m%22&sortBy=userName&startIndex={start}&count=200&attributes=id"
            ))
            .await;
        ids.extend(
            page["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(ids.len(), 1000);
    let g = group(&bridge, "thousand", &[]).await;
    let path = format!(
        "/Groups/{}?excludedAttributes=members",
        g["id"].as_str().unwrap()
    );
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    let before = bridge.ldap_ops();
    let (s, b) = bridge
        .put(
            &path,
            &json!({"displayName": "thousand", "members": members}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.get("members").is_none());
    let ops = bridge.ldap_ops() - before;
    // the group, 4 searches for 1,000 ids, the modify, 4 searches checking them again (a
    // concurrent delete would leave a stale value), the read-back without members
    assert!(ops <= 11, "{ops} LDAP operations");
    let listed = ldap_members(&slapd, &group_dn("thousand")).await;
    assert_eq!(listed.len(), 1001, "1,000 members and the placeholder");

    // a POST of the same members: resolved, added, checked again, read back without them
    let before = bridge.ldap_ops();
    let (s, b) = bridge
        .post(
            "/Groups?excludedAttributes=members",
            &json!({"displayName": "thousand2", "members": members}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert!(b.get("members").is_none());
    let ops = bridge.ldap_ops() - before;
    assert!(ops <= 11, "{ops} LDAP operations");
    assert_eq!(
        ldap_members(&slapd, &group_dn("thousand2")).await.len(),
        1001,
        "1,000 members and the placeholder"
    );
}
