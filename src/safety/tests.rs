use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn limit(max: u32) -> Threshold {
    Threshold {
        max_removals: max,
        window: HOUR,
        percent: None,
    }
}

fn who(id: &str) -> Removal<'_> {
    Removal { id, user_name: id }
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Makes `n` removals for `tenant`, one a second from `start`; returns the time after them.
fn remove_n(
    v: &Arc<Valve>,
    tenant: &str,
    max: u32,
    n: u32,
    start: OffsetDateTime,
) -> OffsetDateTime {
    let mut now = start;
    for i in 0..n {
        let p = v.admit(tenant, limit(max), None, who(&format!("u{i}")), now);
        assert!(p.is_ok(), "removal {i} of {n} was held");
        if let Ok(p) = p {
            p.done();
        }
        now += Duration::from_secs(1);
    }
    now
}

#[test]
fn the_removal_past_the_threshold_is_held_and_the_hold_names_the_release() {
    let v = Valve::local();
    let now = remove_n(&v, "acme", 100, 100, t0());
    let held = v.admit("acme", limit(100), None, who("u100"), now);
    let Err(held) = held else {
        panic!("the 101st removal went through")
    };
    assert_eq!(held.tenant, "acme");
    assert!(
        held.detail()
            .contains("scim2ldap safety release --tenant acme"),
        "{}",
        held.detail()
    );
    assert!(v.is_held("acme"));
    // other tenants are not held
    assert!(v.admit("other", limit(100), None, who("x"), now).is_ok());
}

#[test]
fn a_removal_that_fails_does_not_count() {
    let v = Valve::local();
    for i in 0..10 {
        // dropped without done: the delete failed
        let p = v.admit("acme", limit(2), None, who(&format!("u{i}")), t0());
        assert!(p.is_ok());
    }
    assert!(!v.is_held("acme"));
}

#[test]
fn removals_in_flight_count_so_concurrent_requests_cannot_all_pass() {
    let v = Valve::local();
    let a = v.admit("acme", limit(2), None, who("a"), t0());
    let b = v.admit("acme", limit(2), None, who("b"), t0());
    assert!(a.is_ok() && b.is_ok());
    assert!(v.admit("acme", limit(2), None, who("c"), t0()).is_err());
}

#[test]
fn removals_older_than_the_window_do_not_count() {
    let v = Valve::local();
    let later = remove_n(&v, "acme", 3, 3, t0()) + HOUR;
    assert!(remove_n(&v, "acme", 3, 3, later) > later);
}

#[test]
fn a_hold_stays_when_the_window_slides_on() {
    let v = Valve::local();
    let now = remove_n(&v, "acme", 3, 3, t0());
    assert!(v.admit("acme", limit(3), None, who("x"), now).is_err());
    // a mistake must not go on at max_removals per window
    assert!(v
        .admit("acme", limit(3), None, who("y"), now + 2 * HOUR)
        .is_err());
}

#[test]
fn a_valve_that_is_off_counts_nothing() {
    let v = Valve::local();
    remove_n(&v, "acme", 0, 1000, t0());
    assert!(!v.is_held("acme"));
}

#[test]
fn a_release_lets_removals_through_and_starts_a_new_window() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = dir.path().join("tokens.json");
    let v = Valve::shared(&store);
    let now = remove_n(
        &v,
        "acme",
        2,
        2,
        OffsetDateTime::now_utc() - Duration::from_secs(60),
    );
    assert!(v.admit("acme", limit(2), None, who("held"), now).is_err());
    v.sync(&["acme".to_owned()]);
    let thresholds = BTreeMap::from([("acme".to_owned(), limit(2))]);
    let status = shared::status(&store, &thresholds, now);
    assert!(status[0].held_since.is_some(), "{status:?}");
    assert_eq!(status[0].refused, 1);
    assert_eq!(status[0].last_refused[0].id, "held");
    assert_eq!(status[0].removals, 2);

    let released = OffsetDateTime::now_utc();
    shared::release(&store, "acme", released).unwrap_or_else(|e| panic!("{e}"));
    v.sync(&["acme".to_owned()]);
    assert!(!v.is_held("acme"));
    let after = released + Duration::from_secs(1);
    // a new window: two more go through, the third is held again
    remove_n(&v, "acme", 2, 2, after);
    assert!(v
        .admit("acme", limit(2), None, who("again"), after)
        .is_err());
    v.sync(&["acme".to_owned()]);
    let status = shared::status(&store, &thresholds, after);
    assert_eq!(
        (status[0].removals, status[0].refused),
        (2, 1),
        "{status:?}"
    );
}

#[test]
fn bridges_sharing_a_store_share_the_count_and_the_hold() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = dir.path().join("tokens.json");
    let one = Valve::with_files(Some(shared::Files::beside_as(&store, "one")));
    let two = Valve::with_files(Some(shared::Files::beside_as(&store, "two")));
    let tenants = ["acme".to_owned()];
    let now = OffsetDateTime::now_utc();
    remove_n(&one, "acme", 4, 3, now - Duration::from_secs(10));
    one.sync(&tenants);
    two.sync(&tenants);
    // three removals made by the other bridge count here
    assert!(two
        .admit("acme", limit(4), None, who("d"), now)
        .map(Permit::done)
        .is_ok());
    assert!(two.admit("acme", limit(4), None, who("e"), now).is_err());
    two.sync(&tenants);
    one.sync(&tenants);
    assert!(one.is_held("acme"), "the hold reaches the other bridge");
    shared::release(&store, "acme", OffsetDateTime::now_utc()).unwrap_or_else(|e| panic!("{e}"));
    one.sync(&tenants);
    two.sync(&tenants);
    assert!(!one.is_held("acme") && !two.is_held("acme"));
}

#[test]
fn a_hold_outlives_a_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = dir.path().join("tokens.json");
    let now = OffsetDateTime::now_utc();
    {
        let v = Valve::restored(shared::Files::beside_as(&store, "one"));
        remove_n(&v, "acme", 1, 1, now - Duration::from_secs(5));
        assert!(v.admit("acme", limit(1), None, who("x"), now).is_err());
        v.sync(&["acme".to_owned()]);
    }
    let again = Valve::restored(shared::Files::beside_as(&store, "one"));
    assert!(again.is_held("acme"));
    assert!(again.admit("acme", limit(1), None, who("y"), now).is_err());
    shared::release(&store, "acme", OffsetDateTime::now_utc()).unwrap_or_else(|e| panic!("{e}"));
    let released = Valve::restored(shared::Files::beside_as(&store, "one"));
    assert!(!released.is_held("acme"));
}

#[test]
fn a_percentage_of_the_tenants_users_holds_when_it_is_lower_than_the_count() {
    let pct = Threshold {
        max_removals: 100,
        window: HOUR,
        percent: Some(5),
    };
    assert_eq!(pct.limit(Some(200)), Some(10), "5% of 200");
    assert_eq!(pct.limit(Some(10_000)), Some(100), "the count is lower");
    assert_eq!(pct.limit(None), Some(100), "users unknown: the count");
    assert_eq!(pct.limit(Some(3)), Some(1), "never less than one");
    let only_pct = Threshold {
        max_removals: 0,
        ..pct
    };
    assert_eq!(only_pct.limit(None), None);
    assert!(!only_pct.is_off());
    let v = Valve::local();
    for i in 0..10 {
        let p = v.admit("acme", pct, Some(200), who(&format!("u{i}")), t0());
        assert!(p.map(Permit::done).is_ok(), "removal {i}");
    }
    let held = v.admit("acme", pct, Some(200), who("x"), t0());
    let detail = held.err().map(|h| h.detail()).unwrap_or_default();
    assert!(detail.contains("5% of 200 users"), "{detail}");
}
