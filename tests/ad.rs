//! Active Directory, against a real Samba AD DC provisioned once for this test binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use std::collections::HashSet;

use common::samba::*;
use common::*;
use ldap3::{Mod, Scope, SearchEntry};
use reqwest::StatusCode;
use serde_json::{json, Value};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

async fn ad_bridge(replace: &[(&str, &str)]) -> Bridge {
    let dc = samba();
    ensure_ous(&mut dc.admin().await).await;
    Bridge::start_with(dc.config(replace, "")).await
}

fn ad_user(name: &str, display: &str) -> Value {
    json!({
        "userName": format!("{name}@example.test"),
        "displayName": display,
        "name": {"givenName": display.split(' ').next().unwrap_or(display), "familyName": "Tester"},
        "emails": [{"type": "work", "value": format!("{name}@example.test"), "primary": true}],
        "title": "Engineer",
        ENTERPRISE: {"department": "R&D", "employeeNumber": "42"}
    })
}

/// The entry at `dn`: text attributes (lowercased names) and its raw objectGUID.
async fn ad_entry(dn: &str) -> Option<(std::collections::HashMap<String, Vec<String>>, Vec<u8>)> {
    let mut ldap = samba().admin().await;
    let res = ldap
        .search(dn, Scope::Base, "(objectClass=*)", vec!["*", "objectGUID"])
        .await
        .ok()?;
    if res.1.rc != 0 {
        return None;
    }
    let e = SearchEntry::construct(res.0.into_iter().next()?);
    let guid = e
        .bin_attrs
        .get("objectGUID")
        .and_then(|v| v.first().cloned())
        .or_else(|| {
            e.attrs
                .get("objectGUID")
                .and_then(|v| v.first())
                .map(|s| s.as_bytes().to_vec())
        })
        .unwrap_or_default();
    let attrs = e
        .attrs
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    Some((attrs, guid))
}

fn uac(attrs: &std::collections::HashMap<String, Vec<String>>) -> u32 {
    attrs["useraccountcontrol"][0].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_created_with_a_password_is_enabled_and_its_id_is_the_object_guid() {
    let bridge = ad_bridge(&[]).await;
    let mut body = ad_user("alice", "Alice Tester");
    body["password"] = json!("Str0ng-Passw0rd!x");
    let (s, u) = bridge.post("/Users", &body).await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert!(u.get("password").is_none(), "write-only");
    assert_eq!(u["active"], true);
    let dn = format!("CN=Alice Tester,{AD_USERS}");
    let (attrs, raw_guid) = ad_entry(&dn).await.expect("entry in AD");
    assert_eq!(uac(&attrs), 0x200, "NORMAL_ACCOUNT, enabled");
    assert_eq!(attrs["samaccountname"], vec!["alice"]);
    assert_eq!(attrs["userprincipalname"], vec!["alice@example.test"]);
    assert_eq!(attrs["department"], vec!["R&D"]);
    // the SCIM id is objectGUID in AD's mixed-endian byte order
    let id = u["id"].as_str().unwrap();
    assert_eq!(
        scim2ldap::directory::guid::to_string(&raw_guid).as_deref(),
        Some(id)
    );
    let (s, got) = bridge.get(&format!("/Users/{id}")).await;
    assert_eq!(
        (s, got["userName"].as_str()),
        (StatusCode::OK, Some("alice@example.test"))
    );
    let (_, page) = bridge
        .get(&format!("/Users?filter=id%20eq%20%22{id}%22"))
        .await;
    assert_eq!(page["totalResults"], 1);
    // the password works
    samba()
        .bind("alice@example.test", "Str0ng-Passw0rd!x")
        .await
        .expect("user can bind");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_created_without_a_password_gets_a_random_one_and_is_enabled() {
    let bridge = ad_bridge(&[]).await;
    let (s, u) = bridge.post("/Users", &ad_user("bob", "Bob Tester")).await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert_eq!(u["active"], true);
    let (attrs, _) = ad_entry(&format!("CN=Bob Tester,{AD_USERS}"))
        .await
        .unwrap();
    assert_eq!(uac(&attrs), 0x200);

    // with random passwords off, such an account stays disabled (AD enables none without one)
    let strict = ad_bridge(&[("random_passwords = true", "random_passwords = false")]).await;
    let (s, u) = strict.post("/Users", &ad_user("bob2", "Bob Two")).await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert_eq!(u["active"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_the_domain_refuses_is_a_readable_400_and_leaves_no_account() {
    let bridge = ad_bridge(&[]).await;
    let mut body = ad_user("carol", "Carol Tester");
    body["password"] = json!("abc");
    let (s, e) = bridge.post("/Users", &body).await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalidValue")),
        "{e}"
    );
    assert!(
        e["detail"].as_str().unwrap().contains("password policy"),
        "{e}"
    );
    assert!(
        ad_entry(&format!("CN=Carol Tester,{AD_USERS}"))
            .await
            .is_none(),
        "no half-made account"
    );
}

/// A password change on AD is an administrator's reset of unicodePwd over LDAPS: the new one
/// logs in with `ldapsearch`, the old one no longer does; one the domain refuses undoes the
/// rest of the PATCH; the password can be neither filtered nor asked for.
#[tokio::test(flavor = "multi_thread")]
async fn a_password_change_logs_in_and_passwords_are_never_filtered_on_ad() {
    let bridge = ad_bridge(&[]).await;
    let mut body = ad_user("pwchange", "Pw Change");
    body["password"] = json!("First-Passw0rd!x");
    let (s, u) = bridge.post("/Users", &body).await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let id = u["id"].as_str().unwrap();
    let dc = samba();
    assert!(dc.ldapsearch_binds("pwchange@example.test", "First-Passw0rd!x"));
    let (s, b) = bridge
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "password", "value": "Second-Passw0rd!y"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.get("password").is_none());
    assert!(dc.ldapsearch_binds("pwchange@example.test", "Second-Passw0rd!y"));
    // (the first password may still bind for a while: Samba, like Windows AD, accepts the
    // previous one for its "old password allowed period", 60 minutes by default)
    // a password the domain refuses: the title change sent with it is undone
    let (s, e) = bridge
        .patch(
            &format!("/Users/{id}"),
            json!([
                {"op": "replace", "path": "title", "value": "Changed"},
                {"op": "replace", "path": "password", "value": "abc"}
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (attrs, _) = ad_entry(&format!("CN=Pw Change,{AD_USERS}")).await.unwrap();
    assert_eq!(attrs["title"], vec!["Engineer"], "undone whole");
    assert!(dc.ldapsearch_binds("pwchange@example.test", "Second-Passw0rd!y"));
    for query in [
        format!("filter={}", urlencode("password eq \"Second-Passw0rd!y\"")),
        format!("filter={}", urlencode("password pr")),
        "sortBy=password".to_owned(),
        "attributes=password".to_owned(),
    ] {
        let (s, e) = bridge.get(&format!("/Users?{query}")).await;
        assert_eq!(
            (s, e["scimType"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalidFilter")),
            "{query}: {e}"
        );
    }
}

/// The SCIM id of the AD entry at `dn`.
async fn guid_of(dn: &str) -> String {
    let (_, raw) = ad_entry(dn).await.unwrap_or_else(|| panic!("no {dn}"));
    scim2ldap::directory::guid::to_string(&raw).unwrap()
}

/// Users are entries of class `user` that are not computers, whatever order the admin lists
/// classes in (the example lists "top" first): a computer, a contact, a sub-OU, a group and the
/// OU itself, all under the tenant's users OU, are neither listed, nor read, changed,
/// deactivated or deleted through /Users, nor accepted as group members; the answers say so
/// in words, never with the directory's internals.
#[tokio::test(flavor = "multi_thread")]
async fn only_user_objects_are_users_on_ad_whatever_else_lies_in_the_ou() {
    // an OU of its own, so that other tests' users (added behind the bridge's back, some
    // without a userPrincipalName) do not share it
    const OU: &str = "OU=Ownership,DC=example,DC=test";
    let dc = samba();
    let mut ldap = dc.admin().await;
    ensure_ous(&mut ldap).await;
    let _ = ldap
        .add(
            OU,
            vec![
                ("objectClass", HashSet::from(["organizationalUnit"])),
                ("ou", HashSet::from(["Ownership"])),
            ],
        )
        .await;
    let bridge = Bridge::start_with(dc.config(
        &[(
            "[tenants.default]\n",
            &format!("[tenants.default]\nusers_container = \"{OU}\"\n"),
        )],
        "",
    ))
    .await;
    let (s, real) = bridge
        .post("/Users", &ad_user("owner", "Owner Tester"))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{real}");
    let computer = format!("CN=WS-OWN01,{OU}");
    let contact = format!("CN=Contact Own,{OU}");
    let sub_ou = format!("OU=Sub Own,{OU}");
    let group = format!("CN=Foreign Own,{OU}");
    for dn in [&computer, &contact, &group, &sub_ou] {
        let _ = ldap.delete(dn).await;
    }
    add_entry(
        &mut ldap,
        &computer,
        &[
            ("objectClass", &["computer"]),
            ("sAMAccountName", &["WS-OWN01$"]),
            ("userAccountControl", &["4096"]),
        ],
    )
    .await;
    add_entry(&mut ldap, &contact, &[("objectClass", &["contact"])]).await;
    add_entry(
        &mut ldap,
        &sub_ou,
        &[("objectClass", &["organizationalUnit"])],
    )
    .await;
    add_entry(
        &mut ldap,
        &group,
        &[
            ("objectClass", &["group"]),
            ("sAMAccountName", &["foreign-own"]),
        ],
    )
    .await;
    let (computer_uac, _) = ad_entry(&computer).await.unwrap();
    let foreign = [
        ("computer", guid_of(&computer).await),
        ("contact", guid_of(&contact).await),
        ("sub-OU", guid_of(&sub_ou).await),
        ("group", guid_of(&group).await),
        ("the users OU", guid_of(OU).await),
    ];

    let (s, page) = bridge.get("/Users?count=200").await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["totalResults"], 1, "only the user: {page}");
    assert_eq!(page["Resources"][0]["id"], real["id"]);
    assert_eq!(page["Resources"][0]["userName"], "owner@example.test");
    for (what, id) in &foreign {
        assert_not_a_user(&bridge, what, id).await;
    }
    let (after, _) = ad_entry(&computer)
        .await
        .expect("the computer is still there");
    assert_eq!(
        after["useraccountcontrol"],
        computer_uac["useraccountcontrol"]
    );
    assert!(ad_entry(&contact).await.is_some() && ad_entry(&group).await.is_some());
    // the real user is untouched by all this and still answers
    let (s, _) = bridge
        .get(&format!("/Users/{}", real["id"].as_str().unwrap()))
        .await;
    assert_eq!(s, StatusCode::OK);
    for dn in [&computer, &contact, &group, &sub_ou] {
        let _ = ldap.delete(dn).await;
    }
    let _ = bridge
        .delete(&format!("/Users/{}", real["id"].as_str().unwrap()))
        .await;
}

/// The entries under `base` whose attribute `attr` equals `value`: (DN, attributes).
async fn ad_find(
    base: &str,
    attr: &str,
    value: &str,
) -> Vec<(String, std::collections::HashMap<String, Vec<String>>)> {
    let mut ldap = samba().admin().await;
    let (found, _) = ldap
        .search(
            base,
            Scope::Subtree,
            &format!("({attr}={value})"),
            vec!["*"],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    found
        .into_iter()
        .map(SearchEntry::construct)
        .map(|e| {
            let attrs = e
                .attrs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            (e.dn, attrs)
        })
        .collect()
}

/// A rehire on AD: a deleted (archived) account gives up its userPrincipalName and
/// sAMAccountName for a tombstone form (its objectGUID, the IdP's id, unchanged), so the same
/// userName can be created again: after a delete, after a rename and a second delete, and
/// over an account archived before names were freed (which gives them up then).
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_user_can_be_rehired_under_the_same_name_on_ad() {
    let bridge = ad_bridge(&[]).await;
    let create = |name: &'static str, display: &'static str| {
        let bridge = &bridge;
        async move {
            let (s, u) = bridge.post("/Users", &ad_user(name, display)).await;
            assert_eq!(s, StatusCode::CREATED, "{name}: {u}");
            u["id"].as_str().unwrap().to_owned()
        }
    };
    let first = create("rehire", "Re Hire").await;
    assert_eq!(
        bridge.delete(&format!("/Users/{first}")).await,
        StatusCode::NO_CONTENT
    );
    let archived = ad_find(AD_ARCHIVE, "userPrincipalName", "rehire+archived-*").await;
    assert_eq!(archived.len(), 1, "{archived:?}");
    let id8: String = first.chars().take(8).collect();
    assert_eq!(
        archived[0].1["userprincipalname"],
        vec![format!("rehire+archived-{id8}@example.test")]
    );
    assert_eq!(
        archived[0].1["samaccountname"],
        vec![format!("rehire~{id8}")]
    );
    assert_eq!(
        guid_of(&archived[0].0).await,
        first,
        "the id stays findable"
    );

    let second = create("rehire", "Re Hire").await;
    assert_ne!(second, first);
    let (_, found) = bridge
        .get(&format!(
            "/Users?filter={}",
            urlencode("userName eq \"rehire@example.test\"")
        ))
        .await;
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["id"], second.as_str());
    let (attrs, _) = ad_entry(&format!("CN=Re Hire,{AD_USERS}")).await.unwrap();
    assert_eq!(
        attrs["samaccountname"],
        vec!["rehire"],
        "the name is its own again"
    );

    // renamed, deleted again, and both names rehired
    let (s, b) = bridge
        .patch(
            &format!("/Users/{second}"),
            json!([{"op": "replace", "path": "userName", "value": "rehired@example.test"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        bridge.delete(&format!("/Users/{second}")).await,
        StatusCode::NO_CONTENT
    );
    let third = create("rehire", "Re Hire").await;
    let fourth = create("rehired", "Re Hired").await;
    assert_eq!(
        bridge.delete(&format!("/Users/{third}")).await,
        StatusCode::NO_CONTENT
    );
    let fifth = create("rehire", "Re Hire").await;
    for id in [&first, &second, &third, &fourth, &fifth] {
        assert_eq!(
            [&first, &second, &third, &fourth, &fifth]
                .iter()
                .filter(|x| **x == id)
                .count(),
            1
        );
    }
    assert_eq!(
        ad_find(AD_ARCHIVE, "userPrincipalName", "rehire*+archived-*")
            .await
            .len(),
        3,
        "three archived accounts, each under its own tombstone names"
    );

    // an account archived by an earlier version still holds its names: it gives them up
    let mut ldap = samba().admin().await;
    let legacy = format!("CN=Legacy Hire,{AD_ARCHIVE}");
    let _ = ldap.delete(&legacy).await;
    add_entry(
        &mut ldap,
        &legacy,
        &[
            ("objectClass", &["user"]),
            ("sAMAccountName", &["legacyhire"]),
            ("userPrincipalName", &["legacyhire@example.test"]),
        ],
    )
    .await;
    let rehired = create("legacyhire", "Legacy Hire").await;
    let (attrs, _) = ad_entry(&legacy).await.unwrap();
    assert!(
        attrs["userprincipalname"][0].starts_with("legacyhire+archived-"),
        "{attrs:?}"
    );
    let (attrs, _) = ad_entry(&format!("CN=Legacy Hire,{AD_USERS}"))
        .await
        .unwrap();
    assert_eq!(attrs["samaccountname"], vec!["legacyhire"]);
    assert_eq!(
        bridge.delete(&format!("/Users/{rehired}")).await,
        StatusCode::NO_CONTENT
    );
}

/// A second POST of a userName that exists is a 409 naming the user on AD too, and its
/// different password is not half-applied: the first still logs in, the second does not.
#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_create_is_a_409_and_changes_nothing_on_ad() {
    let bridge = ad_bridge(&[]).await;
    let mut body = ad_user("dupe", "Dupe Tester");
    body["password"] = json!("First-Dupe-Pw1!");
    let (s, u) = bridge.post("/Users", &body).await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    body["password"] = json!("Second-Dupe-Pw2!");
    let (s, e) = bridge.post("/Users", &body).await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::CONFLICT, Some("uniqueness")),
        "{e}"
    );
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains(u["id"].as_str().unwrap()),
        "{e}"
    );
    let dc = samba();
    assert!(dc.ldapsearch_binds("dupe@example.test", "First-Dupe-Pw1!"));
    assert!(!dc.ldapsearch_binds("dupe@example.test", "Second-Dupe-Pw2!"));
}

/// Countries on AD as on OpenLDAP: by name or code, `c` the code and `co` the name.
#[tokio::test(flavor = "multi_thread")]
async fn countries_by_name_or_code_are_stored_as_codes_with_their_names_on_ad() {
    let bridge = ad_bridge(&[]).await;
    let mut body = ad_user("globe", "Globe Trotter");
    body["addresses"] = json!([{"type": "work", "locality": "Berlin", "country": "Germany"}]);
    let (s, u) = bridge.post("/Users", &body).await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert_eq!(u["addresses"][0]["country"], "DE");
    let dn = format!("CN=Globe Trotter,{AD_USERS}");
    let (attrs, _) = ad_entry(&dn).await.unwrap();
    assert_eq!(
        (attrs["c"].clone(), attrs["co"].clone()),
        (vec!["DE".to_owned()], vec!["Germany".to_owned()])
    );
    let (s, b) = bridge
        .patch(
            &format!("/Users/{}", u["id"].as_str().unwrap()),
            json!([{"op": "replace", "path": "addresses[type eq \"work\"].country", "value": "US"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (attrs, _) = ad_entry(&dn).await.unwrap();
    assert_eq!(attrs["c"], vec!["US"]);
    assert!(attrs["co"][0].contains("United States"), "{attrs:?}");
}

/// A typed value no mapping holds is 400 `noTarget` on AD too; mapped ones are stored.
#[tokio::test(flavor = "multi_thread")]
async fn a_value_path_no_mapping_can_hold_is_no_target_on_ad() {
    let bridge = ad_bridge(&[]).await;
    let (s, u) = bridge
        .post("/Users", &ad_user("typed", "Typed Tester"))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let (s, e) = bridge
        .patch(
            &path,
            json!([{"op": "replace", "path": "phoneNumbers[type eq \"assistant\"].value", "value": "1"}]),
        )
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("noTarget")),
        "{e}"
    );
    let (s, b) = bridge
        .patch(
            &path,
            json!([{"op": "replace", "path": "phoneNumbers[type eq \"other\"].value", "value": "4711"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (attrs, _) = ad_entry(&format!("CN=Typed Tester,{AD_USERS}"))
        .await
        .unwrap();
    assert_eq!(attrs["ipphone"], vec!["4711"]);
}

/// Samba sends every match whatever a search's size limit: a list page is cut to `count` in
/// the bridge and asked for as one page of paged results, so it holds no more than the page;
/// `totalResults` stays exact, and every resource listed has its required attributes.
#[tokio::test(flavor = "multi_thread")]
async fn count_bounds_every_list_page_on_ad() {
    const OU: &str = "OU=Paging,DC=example,DC=test";
    let dc = samba();
    let mut ldap = dc.admin().await;
    ensure_ous(&mut ldap).await;
    let _ = ldap
        .add(
            OU,
            vec![
                ("objectClass", HashSet::from(["organizationalUnit"])),
                ("ou", HashSet::from(["Paging"])),
            ],
        )
        .await;
    let bridge = Bridge::start_with(dc.config(
        &[(
            "[tenants.default]\n",
            &format!("[tenants.default]\nusers_container = \"{OU}\"\n"),
        )],
        "",
    ))
    .await;
    for i in 0..5 {
        let (s, u) = bridge
            .post(
                "/Users",
                &ad_user(&format!("pager{i}"), &format!("Pager {i}")),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
    }
    for (query, items) in [
        ("count=2", 2),
        ("count=2&startIndex=2", 2),
        ("count=2&startIndex=5", 1),
        ("count=200", 5),
        ("count=3&filter=userName%20sw%20%22pager%22", 3),
    ] {
        let (s, page) = bridge.get(&format!("/Users?{query}")).await;
        assert_eq!(s, StatusCode::OK, "{query}: {page}");
        let resources = page["Resources"].as_array().unwrap();
        assert_eq!(resources.len(), items, "{query}: {page}");
        assert_eq!(page["itemsPerPage"], items, "{query}");
        assert_eq!(page["totalResults"], 5, "{query}");
        for r in resources {
            assert!(
                r["userName"].is_string() && r["displayName"].is_string(),
                "{r}"
            );
        }
    }
    let (s, groups) = bridge.get("/Groups?count=1").await;
    assert_eq!(s, StatusCode::OK, "{groups}");
    let listed = groups["Resources"].as_array().unwrap();
    assert!(listed.len() <= 1, "{groups}");
    for g in listed {
        assert!(g["displayName"].is_string(), "{g}");
    }
    let (_, all) = bridge.get("/Users?count=200").await;
    for r in all["Resources"].as_array().unwrap() {
        bridge
            .delete(&format!("/Users/{}", r["id"].as_str().unwrap()))
            .await;
    }
}

/// A create the bridge applied on AD but could not answer (the IdP gave up waiting): the
/// identical retry gets 201 with the account it made, not a 409. Through the fault proxy on
/// plain LDAP (loopback), so without passwords: accounts stay disabled until an IdP sends one.
#[tokio::test(flavor = "multi_thread")]
async fn a_create_retried_after_the_client_gave_up_gets_what_it_made_on_ad() {
    use common::proxy::{Fault, FaultProxy, LdapOp};
    let dc = samba();
    ensure_ous(&mut dc.admin().await).await;
    let proxy = FaultProxy::start(389).await;
    let cfg = dc.config(
        &[
            (
                "url = \"ldaps://127.0.0.1:636\"",
                &format!("url = \"{}\"", proxy.url()),
            ),
            ("password = \"unicodePwd\"\n", ""),
            ("random_passwords = true", "random_passwords = false"),
            (
                "on_existing = \"conflict\"\n",
                "on_existing = \"conflict\"\npassword = \"ignore\"\n",
            ),
        ],
        "",
    );
    let bridge = Bridge::start_with(cfg).await;
    let body = ad_user("gaveup", "Gave Up");
    proxy.inject(Fault::Hold(
        LdapOp::Add,
        std::time::Duration::from_millis(1500),
    ));
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(400))
        .build()
        .unwrap();
    let sent = impatient
        .post(format!("{}/Users", bridge.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await;
    assert!(sent.is_err(), "the client gave up");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let dn = format!("CN=Gave Up,{AD_USERS}");
    assert!(ad_entry(&dn).await.is_some());
    let (s, made) = bridge.post("/Users", &body).await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    assert_eq!(made["id"].as_str().unwrap(), guid_of(&dn).await);
    let mut other = body.clone();
    other["title"] = json!("Someone else");
    let (s, e) = bridge.post("/Users", &other).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    bridge
        .delete(&format!("/Users/{}", made["id"].as_str().unwrap()))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deactivation_flips_only_the_disable_bit() {
    let bridge = ad_bridge(&[]).await;
    let u = bridge.create_user(ad_user("dave", "Dave Tester")).await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let dn = format!("CN=Dave Tester,{AD_USERS}");
    // an admin sets DONT_EXPIRE_PASSWORD (0x10000) meanwhile
    let mut ldap = samba().admin().await;
    ldap.modify(
        &dn,
        vec![Mod::Replace("userAccountControl", HashSet::from(["66048"]))],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let (s, p) = bridge
        .patch(
            &path,
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )
        .await;
    assert_eq!((s, &p["active"]), (StatusCode::OK, &json!(false)), "{p}");
    assert_eq!(uac(&ad_entry(&dn).await.unwrap().0), 0x10202);
    let (_, page) = bridge
        .get("/Users?filter=active%20eq%20false%20and%20userName%20eq%20%22dave@example.test%22")
        .await;
    assert_eq!(page["totalResults"], 1, "{page}");
    let (s, p) = bridge
        .patch(&path, json!([{"op": "replace", "value": {"active": true}}]))
        .await;
    assert_eq!((s, &p["active"]), (StatusCode::OK, &json!(true)));
    assert_eq!(uac(&ad_entry(&dn).await.unwrap().0), 0x10200);

    // delete archives: disabled, moved, 404
    assert_eq!(bridge.delete(&path).await, StatusCode::NO_CONTENT);
    assert_eq!(bridge.get(&path).await.0, StatusCode::NOT_FOUND);
    let (archived, _) = ad_entry(&format!("CN=Dave Tester,{AD_ARCHIVE}"))
        .await
        .expect("archived");
    assert_eq!(uac(&archived), 0x10202);
}

#[tokio::test(flavor = "multi_thread")]
async fn sam_account_names_stay_within_ads_rules_and_clashes_get_a_number() {
    let bridge = ad_bridge(&[]).await;
    bridge.create_user(ad_user("jsmith", "John Smith")).await;
    let mut other = ad_user("jsmith", "Jane Smith");
    other["userName"] = json!("jsmith@other.test");
    bridge.create_user(other).await;
    let (a, _) = ad_entry(&format!("CN=John Smith,{AD_USERS}"))
        .await
        .unwrap();
    let (b, _) = ad_entry(&format!("CN=Jane Smith,{AD_USERS}"))
        .await
        .unwrap();
    assert_eq!(a["samaccountname"], vec!["jsmith"]);
    assert_eq!(b["samaccountname"], vec!["jsmith2"]);
    let mut long = ad_user("a.very.long.user.name.indeed", "Long Name, Jr.");
    long["userName"] = json!("a.very.long.user.name.indeed@example.test");
    let (s, u) = bridge.post("/Users", &long).await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let (c, _) = ad_entry(&format!("CN=Long Name\\, Jr.,{AD_USERS}"))
        .await
        .expect("RDN escaped");
    assert_eq!(c["samaccountname"], vec!["a.very.long.user.nam"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_manager_is_a_dn_in_ad_and_an_id_in_scim() {
    let bridge = ad_bridge(&[]).await;
    let boss = bridge.create_user(ad_user("erin", "Erin Boss")).await;
    let u = bridge.create_user(ad_user("frank", "Frank Report")).await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let (s, p) = bridge
        .patch(
            &path,
            json!([{"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": boss["id"]}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p[ENTERPRISE]["manager"]["value"], boss["id"]);
    let (attrs, _) = ad_entry(&format!("CN=Frank Report,{AD_USERS}"))
        .await
        .unwrap();
    assert_eq!(attrs["manager"], vec![format!("CN=Erin Boss,{AD_USERS}")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_1600_member_group_is_read_completely_through_ranged_retrieval() {
    let bridge = ad_bridge(&[("range_step = 1500", "range_step = 100")]).await;
    let (s, g) = bridge
        .post("/Groups", &json!({"displayName": "Big AD Group"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let gdn = format!("CN=Big AD Group,{AD_GROUPS}");
    let (attrs, _) = ad_entry(&gdn).await.unwrap();
    assert_eq!(
        attrs["grouptype"],
        vec!["-2147483646"],
        "global security group"
    );
    // 1,600 members, added directly
    let mut ldap = samba().admin().await;
    let mut dns = Vec::new();
    for i in 0..1600 {
        let cn = format!("bulk{i:04}");
        let dn = format!("CN={cn},{AD_USERS}");
        ldap.add(
            &dn,
            vec![
                ("objectClass", HashSet::from(["user"])),
                ("cn", HashSet::from([cn.as_str()])),
                ("sAMAccountName", HashSet::from([cn.as_str()])),
            ],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
        dns.push(dn);
    }
    ldap.modify(
        &gdn,
        vec![Mod::Add("member", dns.iter().map(String::as_str).collect())],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let before = bridge.ldap_ops();
    let (s, full) = bridge
        .get(&format!("/Groups/{}", g["id"].as_str().unwrap()))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(bridge.ldap_ops() - before >= 16, "16 ranged reads of 100");
    let members = full["members"].as_array().unwrap();
    assert_eq!(members.len(), 1600, "every member, 100 at a time");
    let ids: HashSet<&str> = members
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1600);
}

#[tokio::test(flavor = "multi_thread")]
async fn ad_group_memberships_are_member_adds_and_deletes_and_show_on_the_user() {
    let bridge = ad_bridge(&[]).await;
    // AD keeps `member` pointing at the entries it names (a linked attribute, held by
    // GUID): no sweep for memberships left on the new name (8 operations before)
    let before = bridge.ldap_ops();
    let u = bridge.create_user(ad_user("gina", "Gina Member")).await;
    assert_eq!(bridge.ldap_ops() - before, 7, "a create on AD");
    let uid = u["id"].as_str().unwrap();
    let (s, g) = bridge
        .post(
            "/Groups",
            &json!({"displayName": "AD Team", "members": [{"value": uid}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let gpath = format!("/Groups/{}", g["id"].as_str().unwrap());
    let (_, got) = bridge.get(&format!("/Users/{uid}")).await;
    assert_eq!(got["groups"][0]["value"], g["id"], "memberOf: {got}");
    assert_eq!(got["groups"][0]["display"], "AD Team");
    let before = bridge.ldap_ops();
    let (s, b) = bridge
        .patch(
            &format!("/Users/{uid}"),
            json!([{"op": "replace", "path": "displayName", "value": "Gina Renamed"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // nor for the groups to follow a rename: the directory moves the link (8 before)
    assert_eq!(bridge.ldap_ops() - before, 6, "a rename on AD");
    let (attrs, _) = ad_entry(&format!("CN=AD Team,{AD_GROUPS}")).await.unwrap();
    assert_eq!(
        attrs["member"],
        vec![format!("CN=Gina Renamed,{AD_USERS}")],
        "the group follows the rename"
    );
    // idempotent add, then remove by filter (twice)
    for _ in 0..2 {
        let (s, b) = bridge
            .patch(
                &gpath,
                json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    }
    for _ in 0..2 {
        let (s, b) = bridge
            .patch(
                &gpath,
                json!([{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    }
    let (attrs, _) = ad_entry(&format!("CN=AD Team,{AD_GROUPS}")).await.unwrap();
    assert!(!attrs.contains_key("member"), "{attrs:?}");

    // an account an admin deletes behind the bridge's back leaves its groups with it: a new
    // account of the same name inherits none
    let ghost = bridge.create_user(ad_user("ghost", "Ghost Member")).await;
    let (s, b) = bridge
        .patch(
            &gpath,
            json!([{"op": "add", "path": "members", "value": [{"value": ghost["id"]}]}]),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let mut ldap = samba().admin().await;
    ldap.delete(&format!("CN=Ghost Member,{AD_USERS}"))
        .await
        .unwrap()
        .success()
        .unwrap();
    let again = bridge.create_user(ad_user("ghost", "Ghost Member")).await;
    assert_ne!(again["id"], ghost["id"]);
    let (_, got) = bridge
        .get(&format!("/Users/{}", again["id"].as_str().unwrap()))
        .await;
    assert_eq!(got["groups"], json!(null), "no groups: {got}");
    let (attrs, _) = ad_entry(&format!("CN=AD Team,{AD_GROUPS}")).await.unwrap();
    assert!(!attrs.contains_key("member"), "{attrs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_accepts_the_ad_example_against_samba() {
    let dc = samba();
    ensure_ous(&mut dc.admin().await).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, dc.config(&[], "")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scim2ldap"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        &path,
        dc.config(&[("title = \"title\"", "title = \"jobTitel\"")], ""),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scim2ldap"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("jobTitel"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn etags_work_on_ad_with_usn_changed() {
    let bridge = ad_bridge(&[]).await;
    let u = bridge.create_user(ad_user("etag", "Etag Tester")).await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let version = u["meta"]["version"].as_str().unwrap().to_owned();
    let send = |tag: &str| {
        bridge
            .client
            .patch(format!("{}{path}", bridge.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/scim+json")
            .header("if-match", tag)
            .body(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations": [{"op": "replace", "path": "title", "value": "Lead"}]})
                .to_string(),
            )
            .send()
    };
    let r = send(&version).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = send(&version).await.unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
}

/// Two bridges on one domain, each asked to create the same userNames at the same moment
/// (with different display names, so different DNs): one account per userPrincipalName, the
/// other request a 409.
#[tokio::test(flavor = "multi_thread")]
async fn two_bridges_creating_the_same_user_names_make_one_account_each() {
    let dc = samba();
    ensure_ous(&mut dc.admin().await).await;
    let cfg = dc.config(&[], "");
    let (a, b) = (
        ServerProcess::spawn(&cfg, None, &[]),
        ServerProcess::spawn(&cfg, None, &[]),
    );
    let client = reqwest::Client::new();
    let send = |base: String, body: Value| {
        let client = client.clone();
        async move {
            client
                .post(format!("{base}/Users"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/scim+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    for i in 0..10 {
        let name = format!("twin{i}");
        let (sa, sb) = tokio::join!(
            send(a.base.clone(), ad_user(&name, &format!("Twin {i} A"))),
            send(b.base.clone(), ad_user(&name, &format!("Twin {i} B")))
        );
        let mut got = [sa, sb];
        got.sort();
        assert_eq!(got, [StatusCode::CREATED, StatusCode::CONFLICT], "{name}");
        let mut ldap = dc.admin().await;
        let (found, _) = ldap
            .search(
                AD_USERS,
                Scope::Subtree,
                &format!("(userPrincipalName={name}@example.test)"),
                vec!["sAMAccountName"],
            )
            .await
            .unwrap()
            .success()
            .unwrap();
        assert_eq!(found.len(), 1, "{name}: one account");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cursor_walks_and_list_pages_with_nested_groups_work_on_ad() {
    let bridge = ad_bridge(&[]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let u = bridge
            .create_user(ad_user(&format!("adwalk{i}"), &format!("Ad Walker{i}")))
            .await;
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    let members: Vec<Value> = ids[..3].iter().map(|id| json!({"value": id})).collect();
    let (s, inner) = bridge
        .post(
            "/Groups",
            &json!({"displayName": "AD Walkers", "members": members}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{inner}");
    let (s, outer) = bridge
        .post(
            "/Groups",
            &json!({"displayName": "AD Walk All", "members": [{"value": inner["id"]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{outer}");

    let filter = "filter=userName%20sw%20%22adwalk%22";
    let mut path = format!("/Users?count=2&cursor=&{filter}");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (s, page) = bridge.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        pages += 1;
        for u in page["Resources"].as_array().unwrap() {
            seen.push(u["id"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(c) => path = format!("/Users?count=2&cursor={}", urlencode(c)),
            None => {
                assert_eq!(page["totalResults"], 5);
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    seen.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(seen, want, "every user once, through Samba's paged results");

    let before = bridge.ldap_ops();
    let (_, page) = bridge
        .get(&format!("/Users?{filter}&sortBy=userName&count=5"))
        .await;
    let ops = bridge.ldap_ops() - before;
    let first = &page["Resources"][0];
    let groups: Vec<(&str, &str)> = first["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["display"].as_str().unwrap(), g["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        groups,
        [("AD Walkers", "direct"), ("AD Walk All", "indirect")]
    );
    assert!(
        ops <= 4,
        "the page, its groups, their parents: {ops} LDAP operations"
    );
}

/// A delete that stopped after it tombstoned the account's names (no journal then) leaves an
/// account nobody can log in to or rehire under: the repair sweep finishes it.
#[tokio::test(flavor = "multi_thread")]
async fn the_repair_sweep_finishes_a_delete_that_stopped_half_way_on_ad() {
    let bridge = ad_bridge(&[]).await;
    let (s, u) = bridge
        .post("/Users", &ad_user("halfgone", "Half Gone"))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let id = u["id"].as_str().unwrap().to_owned();
    let dn = format!("CN=Half Gone,{AD_USERS}");
    let id8: String = id.chars().take(8).collect();
    let mut ldap = samba().admin().await;
    ldap.modify(
        &dn,
        vec![Mod::Replace(
            "userPrincipalName",
            HashSet::from([format!("halfgone+archived-{id8}@example.test").as_str()]),
        )],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scim2ldap"))
        // the shared DC may hold another test's 1,600-member group by now: at the default
        // 10 reads a second its members alone would take minutes
        .args([
            "repair",
            "--tenant",
            "default",
            "--searches-per-second",
            "2000",
            "--config",
        ])
        .arg(&bridge.config_path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("holds the tombstoned names of a delete that never moved it"),
        "{text}"
    );
    assert!(
        ad_entry(&dn).await.is_none(),
        "moved out of the users container:\n{text}"
    );
    let archived = ad_find(AD_ARCHIVE, "userPrincipalName", "halfgone+archived-*").await;
    assert_eq!(archived.len(), 1, "{archived:?}");
    assert_eq!(guid_of(&archived[0].0).await, id);
    assert_eq!(uac(&archived[0].1) & 2, 2, "and disabled");
    assert_eq!(
        bridge.get(&format!("/Users/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
}

/// The safety valve on AD: past the tenant's threshold a deactivation is held and the
/// account's userAccountControl is left alone; `safety release` lets the retry through.
#[tokio::test(flavor = "multi_thread")]
async fn the_safety_valve_holds_deactivations_on_ad_until_released() {
    let dc = samba();
    ensure_ous(&mut dc.admin().await).await;
    let bridge = Bridge::start_with(dc.config(
        &[],
        "[tenants.default.safety]\nmax_removals = 2\nwindow_secs = 600\n",
    ))
    .await;
    let mut paths = Vec::new();
    for name in ["valve1", "valve2", "valve3"] {
        let mut body = ad_user(name, &format!("Valve {name}"));
        body["password"] = json!("Str0ng-Passw0rd!x");
        let u = bridge.create_user(body).await;
        assert_eq!(u["active"], true);
        paths.push(format!("/Users/{}", u["id"].as_str().unwrap()));
    }
    let off = json!([{"op": "Replace", "path": "active", "value": "False"}]);
    let (s, p) = bridge.patch(&paths[0], off.clone()).await;
    assert_eq!((s, &p["active"]), (StatusCode::OK, &json!(false)), "{p}");
    assert_eq!(bridge.delete(&paths[1]).await, StatusCode::NO_CONTENT);

    let (s, p) = bridge.patch(&paths[2], off.clone()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("safety release --tenant default"),
        "{p}"
    );
    let dn = format!("CN=Valve valve3,{AD_USERS}");
    assert_eq!(
        uac(&ad_entry(&dn).await.unwrap().0) & 0x2,
        0,
        "still enabled"
    );

    let (ok, out, err) = cli(
        "safety",
        &["release", "--tenant", "default"],
        &bridge.config_path,
    );
    assert!(ok, "{out}{err}");
    let start = std::time::Instant::now();
    loop {
        let (s, p) = bridge.patch(&paths[2], off.clone()).await;
        if s == StatusCode::OK {
            assert_eq!(p["active"], false);
            break;
        }
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{p}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "not released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        uac(&ad_entry(&dn).await.unwrap().0) & 0x2,
        0x2,
        "disabled now"
    );
}

/// Placement rules on AD: a user goes to the OU of its department's rule, and moves (a
/// rename with a new parent; its group membership follows) when the department changes.
#[tokio::test(flavor = "multi_thread")]
async fn placement_rules_put_users_in_ous_by_department_on_ad() {
    let dc = samba();
    let mut ldap = dc.admin().await;
    ensure_ous(&mut ldap).await;
    let sales_ou = format!("OU=Placed Sales,{AD_USERS}");
    let r = ldap
        .add(
            &sales_ou,
            vec![
                ("objectClass", HashSet::from(["organizationalUnit"])),
                ("ou", HashSet::from(["Placed Sales"])),
            ],
        )
        .await
        .unwrap();
    assert!(r.rc == 0 || r.rc == 68, "{r:?}");
    let rules = format!(
        "\n[[users.placement]]\nwhen = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"Placed Sales\"'\ncontainer = \"{sales_ou}\"\n"
    );
    let bridge = Bridge::start_with(dc.config(&[], &rules)).await;
    // another Placed Pat already has the name in the tenant's OU
    let mut namesake = ad_user("placed.pat.other", "Placed Pat");
    namesake[ENTERPRISE]["department"] = json!("Support");
    let namesake = bridge.create_user(namesake).await;
    let mut body = ad_user("placed.pat", "Placed Pat");
    body[ENTERPRISE]["department"] = json!("Placed Sales");
    let u = bridge.create_user(body).await;
    let id = u["id"].as_str().unwrap();
    let in_sales = format!("CN=Placed Pat,{sales_ou}");
    assert!(ad_entry(&in_sales).await.is_some(), "placed by the rule");
    let (s, g) = bridge
        .post(
            "/Groups",
            &json!({"displayName": "Placed Sellers", "members": [{"value": id}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");

    let (s, p) = bridge
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Support"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["id"], json!(id), "objectGUID survives the move");
    // moved to the tenant's OU, numbered there as AD's clashing names are
    let home = format!("CN=Placed Pat 2,{AD_USERS}");
    assert!(ad_entry(&in_sales).await.is_none());
    assert!(
        ad_entry(&home).await.is_some(),
        "moved to the tenant's OU: {p}"
    );
    let (_, g) = bridge
        .get(&format!("/Groups/{}", g["id"].as_str().unwrap()))
        .await;
    assert_eq!(g["members"][0]["value"], json!(id), "{g}");
    bridge
        .delete(&format!("/Groups/{}", g["id"].as_str().unwrap()))
        .await;
    bridge.delete(&format!("/Users/{id}")).await;
    bridge
        .delete(&format!("/Users/{}", namesake["id"].as_str().unwrap()))
        .await;
}

/// An expression derives sAMAccountName from a name with diacritics (folded to ASCII,
/// lower-cased, cut to AD's 20 characters); a second person of that name gets it numbered,
/// as AD's own derivation does; and the account can log in with it.
#[tokio::test(flavor = "multi_thread")]
async fn an_expression_derives_sam_account_name_from_a_name_with_diacritics() {
    let dc = samba();
    ensure_ous(&mut dc.admin().await).await;
    let derive = "\n[users.derive]\nsAMAccountName = [\"{{ (name.givenName ~ '.' ~ name.familyName) | ascii | lower | replace(' ', '') | left(20) }}\"]\n";
    let bridge = Bridge::start_with(dc.config(&[], derive)).await;
    let mut made = Vec::new();
    for (upn, display) in [("jmuller", "José Müller"), ("jmuller2", "José Müller Zwei")] {
        let mut body = ad_user(upn, display);
        body["name"] = json!({"givenName": "José", "familyName": "Müller"});
        body["password"] = json!("Str0ng-Passw0rd!x");
        let u = bridge.create_user(body).await;
        made.push(u["id"].as_str().unwrap().to_owned());
    }
    let (first, _) = ad_entry(&format!("CN=José Müller,{AD_USERS}"))
        .await
        .unwrap();
    assert_eq!(first["samaccountname"], vec!["jose.muller"]);
    let (second, _) = ad_entry(&format!("CN=José Müller Zwei,{AD_USERS}"))
        .await
        .unwrap();
    assert_eq!(
        second["samaccountname"],
        vec!["jose.muller2"],
        "numbered when taken"
    );
    assert!(
        dc.ldapsearch_binds("EXAMPLE\\jose.muller", "Str0ng-Passw0rd!x"),
        "logs in with the derived name"
    );
    for id in made {
        bridge.delete(&format!("/Users/{id}")).await;
    }
}
