//! The bridge killed with SIGKILL in the middle of a write, then started again on the same
//! journal: what it left unfinished is finished or undone before it serves, and the IdP's
//! retry of the unanswered request converges. Each step of each plan is cut two ways through
//! the fault proxy: its request swallowed (it never happened) or its answer held (it
//! happened, the bridge never heard). Then a soak: concurrent writes, ≥ 20 kills at random
//! points, every unanswered request retried once, and the directory's invariants checked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::proxy::{FaultProxy, LdapOp};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const GROUPS: &str = "ou=groups,dc=example,dc=org";

/// Where the bridge is cut.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// The request matching (op, pattern) never reaches the directory.
    Swallow(LdapOp, &'static str),
    /// The directory applies it; its answer never comes back.
    Hold(LdapOp, &'static str),
}

/// slapd, the fault proxy in front of it, the bridge process through the proxy.
struct Rig {
    slapd: Slapd,
    proxy: FaultProxy,
    server: Option<ServerProcess>,
    client: reqwest::Client,
}

impl Rig {
    async fn start() -> Rig {
        Self::on(Slapd::start()).await
    }

    async fn on(slapd: Slapd) -> Rig {
        let proxy = FaultProxy::start(slapd.port).await;
        let cfg = via_plain_ldap(&test_config(&slapd, &[], ""), &slapd, &proxy.url());
        let server = ServerProcess::spawn(&cfg, None, &[]);
        Rig {
            slapd,
            proxy,
            server: Some(server),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    fn server(&self) -> &ServerProcess {
        self.server.as_ref().unwrap()
    }

    fn request(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::RequestBuilder {
        let req = self
            .client
            .request(method, format!("{}{path}", self.server().base))
            .bearer_auth(TOKEN);
        match body {
            Some(b) => req
                .header("content-type", "application/scim+json")
                .body(b.to_string()),
            None => req,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let resp = self.request(method, path, body).send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn user(&self, name: &str) -> String {
        let (s, u) = self
            .call(Method::POST, "/Users", Some(json!({"userName": name})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
        u["id"].as_str().unwrap().to_owned()
    }

    async fn group(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        let (s, g) = self
            .call(
                Method::POST,
                "/Groups",
                Some(json!({"displayName": name, "members": members})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{g}");
        g["id"].as_str().unwrap().to_owned()
    }

    /// Sends the request, cuts the bridge at `cut`, kills it there, and starts it again (with
    /// the proxy clear); the request gets no answer.
    async fn crash_during(&mut self, cut: Cut, method: Method, path: &str, body: Option<Value>) {
        match cut {
            Cut::Swallow(op, pattern) => self.proxy.stall(op, pattern),
            Cut::Hold(op, pattern) => self.proxy.gate(op, pattern),
        }
        let (stalled, gated) = (self.proxy.stalled(), self.proxy.gated());
        let sent = tokio::spawn(self.request(method, path, body).send());
        match cut {
            Cut::Swallow(..) => self.proxy.wait_stalled(stalled + 1).await,
            Cut::Hold(..) => self.proxy.wait_gated(gated + 1).await,
        }
        let server = self.server.take().unwrap();
        let proxy = self.proxy.clone();
        let server =
            tokio::task::spawn_blocking(move || server.crash_and_restart(move || proxy.restore()))
                .await
                .unwrap();
        assert!(
            sent.await.unwrap().is_err(),
            "the bridge died before it answered"
        );
        let journal: Vec<_> = std::fs::read_dir(server.journal_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            journal.is_empty(),
            "recovery finished before the bridge listened: {journal:?}\n{}",
            server.log_text()
        );
        assert!(
            server.log_text().contains("write journal recovered"),
            "{}",
            server.log_text()
        );
        self.server = Some(server);
    }

    /// A group's member DNs (lowercased), the placeholder left out.
    async fn members(&self, cn: &str) -> Vec<String> {
        self.slapd
            .entry(&format!("cn={cn},{GROUPS}"))
            .await
            .and_then(|e| e.get("member").cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.to_ascii_lowercase())
            .filter(|d| !d.starts_with("cn=scim2ldap-placeholder"))
            .collect()
    }

    /// No group lists a DN that is missing or archived.
    async fn assert_no_dangling_member(&self, when: &str) {
        let live: HashSet<String> = self
            .slapd
            .dns(PEOPLE, "(objectClass=inetOrgPerson)")
            .await
            .into_iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        let mut ldap = self.slapd.admin().await;
        let (groups, _) = ldap
            .search(
                GROUPS,
                ldap3::Scope::OneLevel,
                "(objectClass=groupOfNames)",
                vec!["cn", "member"],
            )
            .await
            .unwrap()
            .success()
            .unwrap();
        for g in groups {
            let g = ldap3::SearchEntry::construct(g);
            for m in g.attrs.get("member").cloned().unwrap_or_default() {
                let m = m.to_ascii_lowercase();
                if m.starts_with("cn=scim2ldap-placeholder") || m.ends_with(GROUPS) {
                    continue;
                }
                assert!(
                    live.contains(&m),
                    "{when}: {} lists {m}, which is not a live user",
                    g.dn
                );
            }
        }
    }
}

fn locked(e: &HashMap<String, Vec<String>>) -> bool {
    e.contains_key("pwdaccountlockedtime")
}

/// A user in two groups is deleted (archived): cut at each step (lock, leave each group,
/// move to the archive), both ways. After the restart the account is whole one way or the
/// other; after the IdP's retry it is archived, locked and in no group.
#[tokio::test(flavor = "multi_thread")]
async fn a_delete_cut_at_any_step_is_finished_or_undone_and_its_retry_archives() {
    let cuts = [
        ("lock swallowed", Cut::Swallow(LdapOp::Modify, "uid=leaver")),
        ("lock applied", Cut::Hold(LdapOp::Modify, "uid=leaver")),
        (
            "first group left",
            Cut::Hold(LdapOp::Modify, "cn=crash-one"),
        ),
        (
            "second group swallowed",
            Cut::Swallow(LdapOp::Modify, "cn=crash-two"),
        ),
        ("move swallowed", Cut::Swallow(LdapOp::ModDn, "uid=leaver")),
        ("move applied", Cut::Hold(LdapOp::ModDn, "uid=leaver")),
    ];
    let mut rig = Rig::start().await;
    for (round, (what, cut)) in cuts.into_iter().enumerate() {
        let name = format!("leaver{round}");
        let id = rig.user(&name).await;
        let (one, two) = (format!("crash-one{round}"), format!("crash-two{round}"));
        rig.group(&one, &[&id]).await;
        rig.group(&two, &[&id]).await;
        let path = format!("/Users/{id}");
        rig.crash_during(cut, Method::DELETE, &path, None).await;

        let live = rig.slapd.entry(&dn_of(&name)).await;
        let archived = rig.slapd.entry(&format!("uid={name},{ARCHIVE}")).await;
        let me = dn_of(&name).to_ascii_lowercase();
        let in_one = rig.members(&one).await.contains(&me);
        let in_two = rig.members(&two).await.contains(&me);
        match (&live, &archived) {
            (Some(e), None) => assert!(
                !locked(e) && in_one && in_two,
                "{what}: undone means active and in both groups ({in_one}, {in_two}): {e:?}"
            ),
            (None, Some(e)) => assert!(
                locked(e) && !in_one && !in_two,
                "{what}: finished means locked and in no group ({in_one}, {in_two}): {e:?}"
            ),
            _ => panic!("{what}: the account is in one place: {live:?} {archived:?}"),
        }
        rig.assert_no_dangling_member(what).await;

        // the IdP retries the DELETE it got no answer to
        let (s, body) = rig.call(Method::DELETE, &path, None).await;
        assert!(
            s == StatusCode::NO_CONTENT || s == StatusCode::NOT_FOUND,
            "{what}: {s} {body}"
        );
        assert!(rig.slapd.entry(&dn_of(&name)).await.is_none(), "{what}");
        let e = rig
            .slapd
            .entry(&format!("uid={name},{ARCHIVE}"))
            .await
            .unwrap_or_else(|| panic!("{what}: archived"));
        assert!(locked(&e), "{what}: locked");
        assert!(rig.members(&one).await.is_empty(), "{what}");
        assert!(rig.members(&two).await.is_empty(), "{what}");
        assert_eq!(
            rig.call(Method::GET, &path, None).await.0,
            StatusCode::NOT_FOUND
        );
    }
}

/// A user in two groups is renamed: cut before and after the rename and in its groups'
/// following. After the restart every group lists the name the user has; after the retry,
/// the new one. Without the memberOf overlay, which would move the members itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_rename_cut_at_any_step_leaves_its_groups_on_the_users_name() {
    let cuts = [
        (
            "rename swallowed",
            Cut::Swallow(LdapOp::ModDn, "uid=before"),
        ),
        ("rename applied", Cut::Hold(LdapOp::ModDn, "uid=before")),
        (
            "first group followed",
            Cut::Hold(LdapOp::Modify, "cn=follow-one"),
        ),
        (
            "second group swallowed",
            Cut::Swallow(LdapOp::Modify, "cn=follow-two"),
        ),
    ];
    let mut rig = Rig::on(Slapd::start_without_memberof()).await;
    for (round, (what, cut)) in cuts.into_iter().enumerate() {
        let (old, new) = (format!("before{round}"), format!("after{round}"));
        let id = rig.user(&old).await;
        let (one, two) = (format!("follow-one{round}"), format!("follow-two{round}"));
        rig.group(&one, &[&id]).await;
        rig.group(&two, &[&id]).await;
        let path = format!("/Users/{id}");
        let rename = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "userName", "value": new}]});
        rig.crash_during(cut, Method::PATCH, &path, Some(rename.clone()))
            .await;

        let now = if rig.slapd.entry(&dn_of(&new)).await.is_some() {
            dn_of(&new)
        } else {
            assert!(rig.slapd.entry(&dn_of(&old)).await.is_some(), "{what}");
            dn_of(&old)
        };
        for g in [&one, &two] {
            assert_eq!(
                rig.members(g).await,
                vec![now.to_ascii_lowercase()],
                "{what}: {g} lists the name the user has"
            );
        }
        let (s, body) = rig.call(Method::PATCH, &path, Some(rename)).await;
        assert_eq!(s, StatusCode::OK, "{what}: {body}");
        for g in [&one, &two] {
            assert_eq!(
                rig.members(g).await,
                vec![dn_of(&new).to_ascii_lowercase()],
                "{what}: after the retry"
            );
        }
        rig.assert_no_dangling_member(what).await;
    }
}

/// POST /Groups cut after the directory made the group: the retry answers 201 with the
/// group made (not 409); cut before, the retry makes it. One group either way.
#[tokio::test(flavor = "multi_thread")]
async fn a_group_create_cut_at_its_add_is_answered_on_retry_with_the_group_made() {
    let mut rig = Rig::start().await;
    let member = rig.user("joiner").await;
    for (round, cut) in [
        Cut::Hold(LdapOp::Add, "cn=made"),
        Cut::Swallow(LdapOp::Add, "cn=made"),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("made{round}");
        let body = json!({"displayName": name, "members": [{"value": member}]});
        rig.crash_during(cut, Method::POST, "/Groups", Some(body.clone()))
            .await;
        let (s, made) = rig.call(Method::POST, "/Groups", Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{cut:?}: {made}");
        let dns = rig.slapd.dns(GROUPS, &format!("(cn={name})")).await;
        assert_eq!(dns.len(), 1, "{cut:?}: one group");
        let entry = rig.slapd.entry(&dns[0]).await.unwrap();
        assert_eq!(
            made["id"].as_str().unwrap(),
            entry["entryuuid"][0],
            "{cut:?}: the answer names the group in the directory"
        );
        assert_eq!(
            rig.members(&name).await,
            vec![dn_of("joiner").to_ascii_lowercase()]
        );
    }
}

/// A member add cut after the directory applied it, its check still owed, while the member
/// was archived by a delete whose sweep had already passed: recovery makes the check, and
/// the group keeps neither the DN the member left nor (where the memberOf overlay rewrote
/// it on the move) its archived DN.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_add_cut_before_its_check_is_checked_by_recovery() {
    for memberof in [false, true] {
        let slapd = if memberof {
            Slapd::start()
        } else {
            Slapd::start_without_memberof()
        };
        let mut rig = Rig::on(slapd).await;
        let id = rig.user("fleeting").await;
        let gid = rig.group("checked", &[]).await;
        let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]});
        let path = format!("/Groups/{gid}");
        rig.proxy.gate(LdapOp::Modify, "cn=checked");
        let sent = tokio::spawn(rig.request(Method::PATCH, &path, Some(add)).send());
        rig.proxy.wait_gated(1).await;
        // the delete that raced it: archived by hand, its groups untouched (its sweep ran
        // before the add landed)
        let mut ldap = rig.slapd.admin().await;
        ldap.modifydn(&dn_of("fleeting"), "uid=fleeting", true, Some(ARCHIVE))
            .await
            .unwrap()
            .success()
            .unwrap();
        let listed = if memberof {
            format!("uid=fleeting,{ARCHIVE}")
        } else {
            dn_of("fleeting")
        };
        assert_eq!(
            rig.members("checked").await,
            vec![listed.to_ascii_lowercase()],
            "the add landed after the member left (memberOf: {memberof})"
        );
        let server = rig.server.take().unwrap();
        let proxy = rig.proxy.clone();
        let server =
            tokio::task::spawn_blocking(move || server.crash_and_restart(move || proxy.restore()))
                .await
                .unwrap();
        assert!(sent.await.unwrap().is_err(), "no answer");
        rig.server = Some(server);
        assert!(
            rig.members("checked").await.is_empty(),
            "memberOf: {memberof}: recovery took the member out:\n{}",
            rig.server().log_text()
        );
        rig.assert_no_dangling_member("after recovery").await;
    }
}
