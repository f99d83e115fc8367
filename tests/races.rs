//! Writes racing each other on one real slapd, 50 rounds each. Afterwards, checked in LDAP:
//! no group lists a DN that is not a live member, and a user created later under a deleted
//! user's name inherits nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const ROUNDS: usize = 50;
const GROUPS: &str = "ou=groups,dc=example,dc=org";

/// A group's member DNs (lowercased), the placeholder left out.
async fn members_of(slapd: &Slapd, cn: &str) -> Vec<String> {
    slapd
        .entry(&format!("cn={cn},{GROUPS}"))
        .await
        .and_then(|e| e.get("member").cloned())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.to_ascii_lowercase())
        .filter(|d| !d.starts_with("cn=scim2ldap-placeholder"))
        .collect()
}

async fn new_group(bridge: &Bridge, name: &str) -> String {
    let (s, g) = bridge.post("/Groups", &json!({"displayName": name})).await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    g["id"].as_str().unwrap().to_owned()
}

/// A different head start for the second request each round (0 to 24 `step_us` steps,
/// spanning about the length of the first request), so that over the rounds it lands
/// before, during and after each step of the first.
fn stagger(round: usize, step_us: u64) -> Duration {
    Duration::from_micros(((round * 7919) % 25) as u64 * step_us)
}

fn add_member(id: &str) -> Value {
    json!([{"op": "add", "path": "members", "value": [{"value": id}]}])
}

/// The report: DELETE racing a membership add left the group pointing at the archived or
/// vanished DN in 27 of 50 rounds, and a user created later with the same name was listed.
#[tokio::test(flavor = "multi_thread")]
async fn a_delete_racing_a_membership_add_leaves_no_member_behind() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let gid = new_group(&bridge, "Racers").await;
    let group = format!("/Groups/{gid}");
    let mut adds_ok = 0;
    for round in 0..ROUNDS {
        let name = format!("racer{round}");
        let user = bridge.create_user(json!({"userName": name})).await;
        let uid = user["id"].as_str().unwrap().to_owned();
        let user_path = format!("/Users/{uid}");
        let (deleted, (added, body)) = tokio::join!(bridge.delete(&user_path), async {
            tokio::time::sleep(stagger(round, 200)).await;
            bridge.patch(&group, add_member(&uid)).await
        });
        assert_eq!(deleted, StatusCode::NO_CONTENT, "round {round}");
        // the add either happened first or found no such user
        assert!(
            added == StatusCode::NO_CONTENT || added == StatusCode::BAD_REQUEST,
            "round {round}: {added} {body}"
        );
        adds_ok += usize::from(added == StatusCode::NO_CONTENT);
        let left = members_of(&slapd, "Racers").await;
        assert!(
            left.is_empty(),
            "round {round}: the group still lists {left:?}"
        );
    }
    println!("{adds_ok} of {ROUNDS} adds succeeded before their delete");
    // new users with the same names inherit nothing
    for round in 0..ROUNDS {
        let user = bridge
            .create_user(json!({"userName": format!("racer{round}")}))
            .await;
        assert!(user.get("groups").is_none(), "round {round}: {user}");
    }
    assert!(members_of(&slapd, "Racers").await.is_empty());
}

/// A rename racing a membership add: the group ends listing the user under its new name,
/// never the old one.
#[tokio::test(flavor = "multi_thread")]
async fn a_rename_racing_a_membership_add_ends_with_the_new_name() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let gid = new_group(&bridge, "Movers").await;
    let group = format!("/Groups/{gid}");
    for round in 0..ROUNDS {
        let user = bridge
            .create_user(json!({"userName": format!("old{round}")}))
            .await;
        let uid = user["id"].as_str().unwrap().to_owned();
        let rename = json!([{"op": "replace", "path": "userName", "value": format!("new{round}")}]);
        let user_path = format!("/Users/{uid}");
        let ((renamed, rb), (added, ab)) = tokio::join!(bridge.patch(&user_path, rename), async {
            tokio::time::sleep(stagger(round, 200)).await;
            bridge.patch(&group, add_member(&uid)).await
        });
        assert_eq!(renamed, StatusCode::OK, "round {round}: {rb}");
        assert_eq!(added, StatusCode::NO_CONTENT, "round {round}: {ab}");
        let members = members_of(&slapd, "Movers").await;
        let new_dn = dn_of(&format!("new{round}")).to_ascii_lowercase();
        let old_dn = dn_of(&format!("old{round}")).to_ascii_lowercase();
        assert!(members.contains(&new_dn), "round {round}: {members:?}");
        assert!(!members.contains(&old_dn), "round {round}: stale {old_dn}");
    }
    assert_eq!(members_of(&slapd, "Movers").await.len(), ROUNDS);
}

/// A group delete racing its nesting into another group: the parent never keeps the
/// deleted group's DN.
#[tokio::test(flavor = "multi_thread")]
async fn a_group_delete_racing_its_nesting_leaves_no_member_behind() {
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let parent = format!("/Groups/{}", new_group(&bridge, "Parent").await);
    let mut adds_ok = 0;
    for round in 0..ROUNDS {
        let cid = new_group(&bridge, &format!("child{round}")).await;
        let child = format!("/Groups/{cid}");
        let (deleted, (added, body)) = tokio::join!(bridge.delete(&child), async {
            tokio::time::sleep(stagger(round, 60)).await;
            bridge.patch(&parent, add_member(&cid)).await
        });
        assert_eq!(deleted, StatusCode::NO_CONTENT, "round {round}");
        assert!(
            added == StatusCode::NO_CONTENT || added == StatusCode::BAD_REQUEST,
            "round {round}: {added} {body}"
        );
        adds_ok += usize::from(added == StatusCode::NO_CONTENT);
        let left = members_of(&slapd, "Parent").await;
        assert!(
            left.is_empty(),
            "round {round}: the parent still lists {left:?}"
        );
    }
    println!("{adds_ok} of {ROUNDS} nestings succeeded before their delete");
}
