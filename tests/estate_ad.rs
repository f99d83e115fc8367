//! Two Samba AD domain controllers of one domain, replicating with each other on loopback
//! (DC1 on 127.0.0.2, DC2 joined to it on 127.0.0.3), found by the bridge in the domain's
//! DNS SRV records (`_ldap._tcp.dc._msdcs.example.test`, answered by DC2's own DNS) and
//! reached by LDAPS. Two bridges creating the same names at once make one account each (both
//! write to DC1, so the sAMAccountName/UPN checks see each other's adds, which AD does not
//! enforce across DCs before replication); DC1 killed under load and started again:
//! requests move to DC2 within seconds, no acknowledged write is lost, no created id answers
//! 404, and requests go back to DC1 after it has answered long enough.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use std::time::{Duration, Instant};

use common::load::*;
use common::samba::*;
use common::*;
use serde_json::{json, Value};

const DC1: &str = "ldaps://dc1.example.test:636";
const DC2: &str = "ldaps://dc2.example.test:636";

fn ad_user(name: &str) -> Value {
    json!({
        "userName": format!("{name}@example.test"),
        "displayName": format!("Estate {name}"),
        "name": {"givenName": "Estate", "familyName": name},
        "emails": [{"type": "work", "value": format!("{name}@example.test"), "primary": true}],
        "title": "Engineer"
    })
}

/// Entries matching `filter` under the users OU on `dc` (0 while the OU has not reached it).
async fn count(dc: &Samba, filter: &str) -> usize {
    let mut ldap = dc.admin().await;
    let res = ldap
        .search(AD_USERS, ldap3::Scope::Subtree, filter, vec!["1.1"])
        .await
        .unwrap();
    match res.1.rc {
        0 => res.0.len(),
        32 => 0,
        rc => panic!("search on {}: {rc} {}", dc.url, res.1.text),
    }
}

/// Waits until `check` holds, up to `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(()) => return,
            Err(e) if start.elapsed() > within => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Every acknowledged user, with its acknowledged title, is on `dc`.
async fn holds(dc: &Samba, acked: &Acked) -> Result<(), String> {
    let mut ldap = dc.admin().await;
    let (entries, _) = ldap
        .search(
            AD_USERS,
            ldap3::Scope::Subtree,
            "(userPrincipalName=ha*)",
            vec!["userPrincipalName", "title"],
        )
        .await
        .map_err(|e| e.to_string())?
        .success()
        .map_err(|e| e.to_string())?;
    let found: std::collections::HashMap<String, Vec<String>> = entries
        .into_iter()
        .map(ldap3::SearchEntry::construct)
        .map(|e| {
            (
                e.attrs["userPrincipalName"][0].clone(),
                e.attrs.get("title").cloned().unwrap_or_default(),
            )
        })
        .collect();
    for name in acked.created.keys() {
        let upn = format!("{name}@example.test");
        match (found.get(&upn), acked.titles.get(name)) {
            (None, _) => return Err(format!("{} lacks {upn}", dc.url)),
            (Some(t), Some(want)) if !t.contains(want) => {
                return Err(format!("{}: {upn} has title {t:?}, not {want}", dc.url))
            }
            _ => {}
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_two_dc_domain_is_found_in_dns_written_through_one_dc_and_survives_losing_it() {
    let pair = SambaPair::start();
    let [dc1, dc2] = &pair.dcs;
    ensure_ous(&mut dc1.admin().await).await;
    eventually(Duration::from_secs(30), "the OUs reach DC2", || async {
        match count(dc2, "(objectClass=*)").await {
            0 => Err("not yet".into()),
            _ => Ok(()),
        }
    })
    .await;
    // DC2's DNS (it outlives DC1 here) lists both DCs once DC2's records are in
    let discovery = scim2ldap::directory::discover::Discovery {
        domain: "example.test".into(),
        active_directory: true,
        site: None,
        dns_server: Some("127.0.0.3:53".parse().unwrap()),
        ldaps: true,
        ldaps_port: 636,
    };
    eventually(Duration::from_secs(30), "DNS lists both DCs", || async {
        let (found, _) = scim2ldap::directory::discover::lookup(&discovery).await?;
        let urls: Vec<String> = found.into_iter().map(|f| f.url).collect();
        match urls == [DC1, DC2] {
            true => Ok(()),
            false => Err(format!("{urls:?}")),
        }
    })
    .await;
    let config = dc1.config(
        &[(
            "url = \"ldaps://127.0.0.1:636\"",
            "discover = { domain = \"example.test\", dns_server = \"127.0.0.3:53\", ldaps = true }\nfailback_after_secs = 5\nhealth_interval_secs = 1",
        )],
        "",
    );
    let one = ServerProcess::spawn(&config, None, &[]);
    let other = ServerProcess::spawn(&config, None, &[]);
    assert_eq!(current(&one).await, DC1);
    assert_eq!(current(&other).await, DC1);
    let (_, ready) = text(&format!("http://{}/readyz", one.addr)).await;
    assert!(!ready.contains("down:"), "both DCs answer: {ready}");

    // one writer: two bridges create the same names at once
    let names: Vec<String> = (0..8).map(|i| format!("twin{i}")).collect();
    create_through_both_at_once([&one, &other], &names, ad_user).await;
    for dc in [dc1, dc2] {
        eventually(
            Duration::from_secs(30),
            "one account per name on each DC",
            || async {
                match count(dc, "(userPrincipalName=twin*)").await {
                    n if n == names.len() => Ok(()),
                    n => Err(format!("{}: {n} accounts", dc.url)),
                }
            },
        )
        .await;
    }

    // DC1 dies under load and comes back
    let load = Load::start(&one.base, 3, ad_user);
    tokio::time::sleep(Duration::from_secs(4)).await;
    pair.kill(1);
    let moved_after = wait_current(&one, DC2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    pair.start_dc(1);
    let back_after = wait_current(&one, DC1, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (answers, acked) = load.stop().await;
    eprintln!(
        "estate on AD: {}; failover seen by /readyz {moved_after:?} after the kill; fail-back {back_after:?} after DC1 answered LDAP again",
        summary(&answers, &acked)
    );
    held_up(&answers, &acked, 10);
    for dc in [dc1, dc2] {
        eventually(
            Duration::from_secs(60),
            "every acknowledged write on both DCs",
            || holds(dc, &acked),
        )
        .await;
    }
    assert!(moves(&one, "failover").await >= 1);
    assert!(moves(&one, "failback").await >= 1);
}
