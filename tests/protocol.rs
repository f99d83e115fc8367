//! SCIM protocol features over real HTTP and slapd: POST .search, attribute projection.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

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

async fn with_header(
    bridge: &Bridge,
    method: Method,
    path: &str,
    header: (&str, &str),
    body: Option<serde_json::Value>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = bridge
        .client
        .request(method, format!("{}{path}", bridge.base))
        .bearer_auth(TOKEN)
        .header(header.0, header.1);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/scim+json")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let (s, h) = (r.status(), r.headers().clone());
    (s, h, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn etags_make_reads_cheap_and_writes_conditional() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let (s, h, u) = bridge
        .call(Method::POST, "/Users", Some(&entra_user("etag")))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let v1 = u["meta"]["version"].as_str().unwrap().to_owned();
    assert!(v1.starts_with("W/\""), "{v1}");
    assert_eq!(h["etag"].to_str().unwrap(), v1);
    let path = format!("/Users/{}", u["id"].as_str().unwrap());

    let (s, h, body) = with_header(&bridge, Method::GET, &path, ("if-none-match", &v1), None).await;
    assert_eq!((s, body.as_str()), (StatusCode::NOT_MODIFIED, ""));
    assert_eq!(h["etag"].to_str().unwrap(), v1);
    let (s, _, _) = with_header(
        &bridge,
        Method::GET,
        &path,
        ("if-none-match", "W/\"other\""),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    let patch = |title: &str| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "replace", "path": "title", "value": title}]})
    };
    let (s, h, _) = with_header(
        &bridge,
        Method::PATCH,
        &path,
        ("if-match", &v1),
        Some(patch("First")),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let v2 = h["etag"].to_str().unwrap().to_owned();
    assert_ne!(v1, v2, "a write makes a new version");

    // the old version is stale now: the write is refused and nothing changes
    let (s, _, e) = with_header(
        &bridge,
        Method::PATCH,
        &path,
        ("if-match", &v1),
        Some(patch("Second")),
    )
    .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{e}");
    assert_eq!(
        slapd.entry(&dn_of("etag")).await.unwrap()["title"],
        vec!["First"]
    );
    let (s, _, _) = with_header(&bridge, Method::DELETE, &path, ("if-match", &v1), None).await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED);
    assert!(slapd.entry(&dn_of("etag")).await.is_some());
    let (s, _, _) = with_header(&bridge, Method::DELETE, &path, ("if-match", &v2), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let (_, _, spc) = bridge
        .call(Method::GET, "/ServiceProviderConfig", None)
        .await;
    assert_eq!(spc["etag"]["supported"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_version_check_travels_with_the_write_as_an_ldap_assertion() {
    use scim2ldap::directory::{Change, DirectoryError, LdapFilter};
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    bridge.create_user(json!({"userName": "asserted"})).await;
    let dn = dn_of("asserted");
    let change = [Change::Replace("title".into(), vec!["x".into()])];
    let stale = LdapFilter::eq("entryCSN", "20000101000000.000000Z#000000#000#000000");
    let err = bridge
        .directory
        .modify_if(&dn.as_str().into(), &change, Some(&stale))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::PreconditionFailed(_)),
        "{err:?}"
    );
    assert!(!slapd.entry(&dn).await.unwrap().contains_key("title"));
    let csn = slapd.entry(&dn).await.unwrap()["entrycsn"][0].clone();
    bridge
        .directory
        .modify_if(
            &dn.as_str().into(),
            &change,
            Some(&LdapFilter::eq("entryCSN", csn)),
        )
        .await
        .unwrap();
    assert_eq!(slapd.entry(&dn).await.unwrap()["title"], vec!["x"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_page_past_the_servers_size_limit_with_exact_totals() {
    use std::collections::HashSet;
    let slapd = Slapd::start();
    // a read-only service account, subject to slapd's size limit of 500 (root is not)
    let mut ldap = slapd.admin().await;
    ldap.add(
        "cn=reader,dc=example,dc=org",
        vec![
            (
                "objectClass",
                HashSet::from(["organizationalRole", "simpleSecurityObject"]),
            ),
            ("cn", HashSet::from(["reader"])),
            ("userPassword", HashSet::from(["reader-pw"])),
        ],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    for i in 0..620 {
        add_person(&mut ldap, &format!("bulk{i:03}"), "Bulk").await;
    }
    let cfg = test_config(&slapd, &[], "")
        .replace(
            "bind_dn = \"cn=admin,dc=example,dc=org\"",
            "bind_dn = \"cn=reader,dc=example,dc=org\"",
        )
        .replace(ADMIN_PW, "reader-pw");
    let bridge = Bridge::start_with(cfg).await;

    let (s, page) = bridge.get("/Users?count=0").await;
    assert_eq!(
        (s, &page["totalResults"]),
        (StatusCode::OK, &json!(620)),
        "{page}"
    );
    let (_, page) = bridge.get("/Users?startIndex=601&count=50").await;
    assert_eq!(page["totalResults"], 620);
    assert_eq!(
        page["Resources"].as_array().unwrap().len(),
        20,
        "the last 20, beyond the 500 limit"
    );
    let (_, page) = bridge
        .get("/Users?startIndex=10&count=5&filter=name.familyName%20eq%20%22Bulk%22")
        .await;
    assert_eq!(page["totalResults"], 620);
    assert_eq!(page["Resources"].as_array().unwrap().len(), 5);
    // every entry is reachable page by page, once
    let mut seen = HashSet::new();
    let mut start = 1;
    while start <= 620 {
        let (_, page) = bridge
            .get(&format!("/Users?startIndex={start}&count=200"))
            .await;
        for r in page["Resources"].as_array().unwrap() {
            assert!(seen.insert(r["id"].as_str().unwrap().to_owned()));
        }
        start += 200;
    }
    assert_eq!(seen.len(), 620);
}

async fn names(bridge: &Bridge, query: &str) -> (serde_json::Value, Vec<String>) {
    let (s, page) = bridge.get(&format!("/Users?{query}")).await;
    assert_eq!(s, StatusCode::OK, "{query}: {page}");
    let names = page["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_owned())
        .collect();
    (page, names)
}

fn q(s: &str) -> String {
    s.replace(' ', "%20").replace('"', "%22")
}

#[tokio::test(flavor = "multi_thread")]
async fn sorting_and_filters_ldap_cannot_say_exactly_are_answered_exactly() {
    let slapd = Slapd::start();
    // externalId on a case-ignoring LDAP attribute: LDAP equality is a superset here
    let cfg = test_config(
        &slapd,
        &[(
            "externalId = \"scimExternalId\"",
            "externalId = \"carLicense\"",
        )],
        "",
    );
    let bridge = Bridge::start_with(cfg).await;
    for (u, fam, title, ext) in [
        ("delta", "Zed", "Boss", "AbC"),
        ("alpha", "Young", "Clerk", "abc"),
        ("charlie", "Xu", "Analyst", "x"),
        ("bravo", "Walker", "", "y"),
    ] {
        let mut body = json!({"userName": u, "name": {"familyName": fam}, "externalId": ext});
        if !title.is_empty() {
            body["title"] = json!(title);
        }
        bridge.create_user(body).await;
    }
    let (_, n) = names(&bridge, "sortBy=userName").await;
    assert_eq!(n, ["alpha", "bravo", "charlie", "delta"]);
    let (_, n) = names(
        &bridge,
        "sortBy=name.familyName&sortOrder=descending&startIndex=2&count=2",
    )
    .await;
    assert_eq!(n, ["alpha", "charlie"], "Zed, [Young, Xu], Walker");
    let (page, n) = names(&bridge, "sortBy=title").await;
    assert_eq!(
        n,
        ["charlie", "delta", "alpha", "bravo"],
        "no title sorts last"
    );
    assert_eq!(page["totalResults"], 4);
    let (_, n) = names(&bridge, "sortBy=title&sortOrder=descending").await;
    assert_eq!(
        n,
        ["bravo", "alpha", "delta", "charlie"],
        "descending: no title first"
    );
    // the same order when the filter forces the in-memory path (externalId is rechecked)
    let (_, n) = names(
        &bridge,
        &format!(
            "sortBy=title&sortOrder=descending&filter={}",
            q(r#"externalId ne "zzz""#)
        ),
    )
    .await;
    assert_eq!(n, ["bravo", "alpha", "delta", "charlie"]);

    // uid has no LDAP ordering rule: (uid>=c) would match nothing
    let (_, mut n) = names(&bridge, &format!("filter={}", q(r#"userName gt "bravo""#))).await;
    n.sort();
    assert_eq!(n, ["charlie", "delta"]);
    let (_, mut n) = names(
        &bridge,
        &format!("filter={}", q(r#"not (title ge "Boss")"#)),
    )
    .await;
    n.sort();
    assert_eq!(
        n,
        ["bravo", "charlie"],
        "Analyst < Boss, and no title at all"
    );
    // externalId is case-exact in SCIM even where LDAP ignores case
    let (_, n) = names(&bridge, &format!("filter={}", q(r#"externalId eq "abc""#))).await;
    assert_eq!(n, ["alpha"]);
    let (_, mut n) = names(&bridge, &format!("filter={}", q(r#"externalId ne "abc""#))).await;
    n.sort();
    assert_eq!(n, ["bravo", "charlie", "delta"]);

    // meta.lastModified against the directory's modifyTimestamp
    let (page, _) = names(
        &bridge,
        &format!(
            "filter={}",
            q(r#"meta.lastModified gt "2020-01-01T00:00:00Z""#)
        ),
    )
    .await;
    assert_eq!(page["totalResults"], 4);
    let (page, _) = names(
        &bridge,
        &format!("filter={}", q(r#"meta.created ge "2999-01-01T00:00:00Z""#)),
    )
    .await;
    assert_eq!(page["totalResults"], 0);

    let (s, e) = bridge
        .get("/Users?sortBy=userName&sortOrder=sideways")
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalidValue"))
    );
    let (_, _, spc) = bridge
        .call(Method::GET, "/ServiceProviderConfig", None)
        .await;
    assert_eq!(spc["sort"]["supported"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_failure_is_a_scim_error() {
    let slapd = Slapd::start();
    let small = test_config(
        &slapd,
        &[("max_body_bytes = 1048576", "max_body_bytes = 2048")],
        "",
    );
    let bridge = Bridge::start_with(small).await;
    let big = json!({"userName": "x".repeat(4096)});
    let (s, h, e) = bridge.call(Method::POST, "/Users", Some(&big)).await;
    assert_eq!(
        (s, e["status"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("413")),
        "{e}"
    );
    assert_eq!(h["content-type"], "application/scim+json");
    let (_, _, spc) = bridge
        .call(Method::GET, "/ServiceProviderConfig", None)
        .await;
    assert_eq!(spc["bulk"]["maxPayloadSize"], 2048);
    for path in ["/Bulk", "/Me"] {
        let (s, _, e) = bridge.call(Method::POST, path, Some(&json!({}))).await;
        assert_eq!(
            (s, e["status"].as_str()),
            (StatusCode::NOT_IMPLEMENTED, Some("501")),
            "{path}"
        );
    }
    let (s, _, e) = bridge.call(Method::DELETE, "/Users", None).await;
    assert_eq!(
        (s, e["status"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("405"))
    );
    let (s, _, e) = bridge.call(Method::GET, "/Widgets", None).await;
    assert_eq!(
        (s, e["status"].as_str()),
        (StatusCode::NOT_FOUND, Some("404"))
    );
    let u = bridge.create_user(json!({"userName": "ro"})).await;
    let (s, e) = bridge
        .patch(
            &format!("/Users/{}", u["id"].as_str().unwrap()),
            json!([{"op": "replace", "path": "meta", "value": {}}]),
        )
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("mutability")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn locations_follow_forwarded_headers_only_when_trusted() {
    let slapd = Slapd::start();
    let send = |bridge: &Bridge| {
        bridge
            .client
            .post(format!("{}/Users", bridge.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/scim+json")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "scim.example.org")
    };
    let plain = Bridge::start(&slapd).await;
    let r = send(&plain)
        .body(json!({"userName": "fwd1"}).to_string())
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        loc.starts_with("http://127.0.0.1:"),
        "forwarded headers ignored by default: {loc}"
    );

    let trusting = Bridge::start_with(test_config(
        &slapd,
        &[(
            "# trust_forwarded_headers = true",
            "trust_forwarded_headers = true",
        )],
        "",
    ))
    .await;
    let r = send(&trusting)
        .body(json!({"userName": "fwd2"}).to_string())
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["meta"]["location"]
            .as_str()
            .unwrap()
            .starts_with("https://scim.example.org/scim/v2/Users/"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_directory_sorts_when_it_offers_server_side_sort() {
    use scim2ldap::directory::{LdapFilter, SortKey};
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    for n in ["kilo", "alpha", "mike"] {
        bridge.create_user(json!({"userName": n})).await;
    }
    let key = SortKey {
        attr: "uid".into(),
        ordering_rule: "caseIgnoreOrderingMatch".into(),
        reverse: true,
    };
    let w = bridge
        .directory
        .search_sorted(
            &PEOPLE.into(),
            &LdapFilter::eq("objectClass", "inetOrgPerson"),
            &["uid"],
            0,
            2,
            &key,
        )
        .await
        .unwrap()
        .expect("slapd with the sssvlv overlay sorts");
    let uids: Vec<&str> = w.entries.iter().map(|e| e.first("uid").unwrap()).collect();
    assert_eq!(
        uids,
        ["mike", "kilo"],
        "sorted by the server, cut at the size limit"
    );
    assert!(w.truncated);
    // a window further in keeps only itself
    let w = bridge
        .directory
        .search_sorted(
            &PEOPLE.into(),
            &LdapFilter::eq("objectClass", "inetOrgPerson"),
            &["uid"],
            1,
            1,
            &key,
        )
        .await
        .unwrap()
        .unwrap();
    let uids: Vec<&str> = w.entries.iter().map(|e| e.first("uid").unwrap()).collect();
    assert_eq!((uids, w.sent, w.truncated), (vec!["kilo"], 2, true));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projection_reads_only_what_it_returns() {
    use std::collections::HashSet;
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let u = bridge.create_user(entra_user("lean")).await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    // a group made behind the bridge's back: its id is not cached
    let mut ldap = slapd.admin().await;
    let member = dn_of("lean");
    ldap.add(
        "cn=outside,ou=groups,dc=example,dc=org",
        vec![
            ("objectClass", HashSet::from(["groupOfNames"])),
            ("cn", HashSet::from(["outside"])),
            ("member", HashSet::from([member.as_str()])),
        ],
    )
    .await
    .unwrap()
    .success()
    .unwrap();

    let before = bridge.ldap_ops();
    let (_, lean) = bridge.get(&format!("{path}?attributes=userName")).await;
    assert_eq!(bridge.ldap_ops() - before, 1, "one read, no group lookups");
    let keys: Vec<&str> = lean
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["schemas", "id", "userName"]);

    let before = bridge.ldap_ops();
    let (_, full) = bridge.get(&path).await;
    assert_eq!(
        bridge.ldap_ops() - before,
        2,
        "the read, then the group's id with its own memberOf (nested = true: its parents)"
    );
    assert_eq!(full["groups"][0]["display"], "outside");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_page_costs_the_same_searches_for_6_users_as_for_18() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let mut ids = Vec::new();
    for i in 0..24 {
        let u = bridge.create_user(entra_user(&format!("page{i:02}"))).await;
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    // everyone but the boss reports to page00; half are in "team", "team" is in "all"
    for id in &ids[1..] {
        let (s, _) = bridge
            .patch(
                &format!("/Users/{id}"),
                json!([{"op": "replace", "path": "manager", "value": ids[0]}]),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let members: Vec<serde_json::Value> = ids[..12].iter().map(|id| json!({"value": id})).collect();
    let (s, team) = bridge
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "team", "members": members}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, all) = bridge
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "all", "members": [{"value": team["id"]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    let mut costs = Vec::new();
    // 24 match: both pages are cut short, so both count the matches too
    for count in [6, 18] {
        let before = bridge.ldap_ops();
        let (s, page) = bridge
            .get(&format!(
                "/Users?filter=userName%20sw%20%22page%22&sortBy=userName&count={count}"
            ))
            .await;
        assert_eq!(s, StatusCode::OK);
        costs.push(bridge.ldap_ops() - before);
        let users = page["Resources"].as_array().unwrap();
        assert_eq!(users.len(), count);
        let second = &users[1];
        assert_eq!(second["userName"], "page01");
        let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        assert_eq!(second[enterprise]["manager"]["value"], ids[0].as_str());
        let groups: Vec<(&str, &str)> = second["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| (g["display"].as_str().unwrap(), g["type"].as_str().unwrap()))
            .collect();
        assert_eq!(groups, [("team", "direct"), ("all", "indirect")]);
        assert_eq!(second["groups"][1]["value"], all["id"]);
        if count == 18 {
            assert!(users[17].get("groups").is_none(), "page17 is in no group");
        }
    }
    assert_eq!(
        costs[0], costs[1],
        "managers, groups and nested groups are read for the page at once, not per user"
    );
    assert!(
        costs[1] <= 5,
        "count, page search, managers, groups, their parents: {costs:?}"
    );
}

/// Follows `nextCursor` from `first` to the end; returns every page.
async fn walk(bridge: &Bridge, first: &str) -> Vec<serde_json::Value> {
    let mut pages = Vec::new();
    let mut path = first.to_owned();
    loop {
        let (s, page) = bridge.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let next = page["nextCursor"].as_str().map(str::to_owned);
        pages.push(page);
        match next {
            Some(c) => path = format!("/Users?count=10&cursor={}", urlencode(&c)),
            None => return pages,
        }
    }
}

fn ids_of(page: &serde_json::Value) -> Vec<String> {
    page["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn cursor_paging_walks_every_user_once_at_one_search_a_page() {
    let slapd = Slapd::start();
    let acme_token = "scim2ldap_acme-cursor-token";
    slapd.add_ou("acme", "dc=example,dc=org").await;
    slapd.add_ou("acme-groups", "dc=example,dc=org").await;
    let extra = format!(
        "\n[tenants.acme]\nusers_container = \"ou=acme,dc=example,dc=org\"\ngroups_container = \"ou=acme-groups,dc=example,dc=org\"\n[tenants.acme.tokens.okta]\nsha256 = \"{}\"\n",
        hex::encode(scim2ldap::auth::hash_token(acme_token))
    );
    let bridge = Bridge::start_with(test_config(&slapd, &[], &extra)).await;
    let mut ldap = slapd.admin().await;
    for i in 0..25 {
        add_person(&mut ldap, &format!("walker{i:02}"), "Walker").await;
    }
    let (_, all) = bridge.get("/Users?count=0").await;
    let total = all["totalResults"].as_u64().unwrap() as usize;
    assert!(total >= 25);

    let (_, spc) = bridge.get("/ServiceProviderConfig").await;
    assert_eq!(spc["pagination"]["cursor"], true);
    assert_eq!(spc["pagination"]["index"], true);
    assert_eq!(spc["pagination"]["cursorTimeout"], 120);

    let before = bridge.ldap_ops();
    let pages = walk(&bridge, "/Users?count=10&cursor=").await;
    assert_eq!(pages.len(), total.div_ceil(10));
    assert_eq!(
        bridge.ldap_ops() - before,
        pages.len() as u64,
        "one LDAP search a page: the walk continues the directory's paged search"
    );
    let mut seen: Vec<String> = pages.iter().flat_map(ids_of).collect();
    assert_eq!(seen.len(), total);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), total, "every user exactly once");
    for (i, page) in pages.iter().enumerate() {
        assert!(
            page.get("startIndex").is_none(),
            "cursor pages have no startIndex"
        );
        let last = i == pages.len() - 1;
        assert_eq!(page.get("nextCursor").is_none(), last);
        assert_eq!(
            page.get("totalResults").and_then(|t| t.as_u64()),
            last.then_some(total as u64),
            "the total once the walk has seen every match"
        );
        assert_eq!(page.get("previousCursor").is_some(), i > 0);
    }

    // a fresh walk: a retried page comes again, previousCursor goes back one page
    let (_, p1) = bridge.get("/Users?count=10&cursor=").await;
    let c2 = p1["nextCursor"].as_str().unwrap().to_owned();
    let page2 = format!("/Users?count=10&cursor={}", urlencode(&c2));
    let (_, p2) = bridge.get(&page2).await;
    let c3 = p2["nextCursor"].as_str().unwrap().to_owned();
    let (_, p3) = bridge
        .get(&format!("/Users?count=10&cursor={}", urlencode(&c3)))
        .await;
    let (s, again) = bridge.get(&page2).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        ids_of(&again),
        ids_of(&p2),
        "a retried cursor gets its page again"
    );
    let back = p3["previousCursor"].as_str().unwrap();
    assert_eq!(back, c2);
    // page 1 is no longer held (two pages are)
    let c1 = p2["previousCursor"].as_str().unwrap();
    let (s, gone) = bridge
        .get(&format!("/Users?count=10&cursor={}", urlencode(c1)))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(gone["scimType"], "expiredCursor", "{gone}");

    // tampered, another tenant's, combined with sortBy or startIndex
    let mut tampered = c3.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let (s, e) = bridge
        .get(&format!("/Users?cursor={}", urlencode(&tampered)))
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalidCursor"))
    );
    let (s, _, e) = bridge
        .call_as(
            Some(acme_token),
            Method::GET,
            &format!("/Users?cursor={}", urlencode(&c3)),
            None,
        )
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalidCursor")),
        "a cursor is bound to its tenant"
    );
    for bad in [
        "/Users?cursor=&sortBy=userName",
        "/Users?cursor=&startIndex=5",
    ] {
        let (s, e) = bridge.get(bad).await;
        assert_eq!(
            (s, e["scimType"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalidValue")),
            "{bad}"
        );
    }
    // a filtered walk
    let pages = walk(
        &bridge,
        "/Users?count=10&cursor=&filter=userName%20sw%20%22walker1%22",
    )
    .await;
    let ids: Vec<String> = pages.iter().flat_map(ids_of).collect();
    assert_eq!(ids.len(), 10, "walker10..walker19");
}

#[tokio::test(flavor = "multi_thread")]
async fn cursor_walks_expire_and_a_tenant_holds_only_its_share() {
    let slapd = Slapd::start();
    let config = test_config(&slapd, &[], "");
    let config = set(config, "cursor_timeout_secs", "1");
    let config = set(config, "max_open_cursors", "1");
    let bridge = Bridge::start_with(config).await;
    for n in ["ca", "cb", "cc"] {
        bridge.create_user(entra_user(n)).await;
    }
    let next = |page: &serde_json::Value| {
        format!(
            "/Users?count=1&cursor={}",
            urlencode(page["nextCursor"].as_str().unwrap())
        )
    };
    let (_, first) = bridge.get("/Users?count=1&cursor=").await;
    let (_, second) = bridge.get("/Users?count=1&cursor=").await;
    let (s, e) = bridge.get(&next(&first)).await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("expiredCursor")),
        "the tenant's second walk closed its first (max_open_cursors = 1)"
    );
    let (s, _) = bridge.get(&next(&second)).await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (s, e) = bridge.get(&next(&second)).await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("expiredCursor")),
        "idle longer than cursor_timeout_secs: {e}"
    );
    assert!(e["detail"].as_str().unwrap().contains("cursor= (empty)"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_walk_checks_every_page_against_its_first_pages_filter() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    for (i, title) in ["M", "N", "M", "N", "M", "N"].iter().enumerate() {
        let mut u = entra_user(&format!("rc{i}"));
        u["title"] = json!(title);
        bridge.create_user(u).await;
    }
    // `gt` goes to LDAP as >= (LDAP has no >) and is checked again in memory; later pages
    // carry only the cursor, as RFC 9865 clients may send them
    let pages = walk(
        &bridge,
        "/Users?count=2&cursor=&filter=userName%20sw%20%22rc%22%20and%20title%20gt%20%22M%22",
    )
    .await;
    let titles: Vec<String> = pages
        .iter()
        .flat_map(|p| p["Resources"].as_array().unwrap().clone())
        .map(|u| u["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(titles, ["N", "N", "N"], "{pages:?}");
}
