//! Every input in `fuzz/seeds/` and `fuzz/regressions/` (where a crash a fuzzer finds goes),
//! replayed through what the fuzz targets exercise: parse under the default limits and under
//! the ceilings, evaluate, translate to LDAP, apply PATCH bodies. Each runs on a thread with a
//! tokio worker's 2 MiB stack, in this (debug) build whose frames are the largest.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use scim2ldap::directory::LdapFilter;
use scim2ldap::mapping::{Mapping, ValueLimits};
use scim2ldap::scim::filter::{matches, parse_filter_with, parse_patch_path_with};
use scim2ldap::scim::patch::{apply_patch, parse_patch_request};
use scim2ldap::scim::resource::normalize_resource;
use scim2ldap::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use scim2ldap::scim::Limits;
use serde_json::{json, Value};

const WORKER_STACK: usize = 2 * 1024 * 1024;

fn ceiling() -> Limits {
    Limits {
        filter_max_length: Limits::HARD_MAX_LENGTH,
        filter_max_depth: Limits::HARD_MAX_DEPTH,
        filter_max_terms: Limits::HARD_MAX_TERMS,
        ..Limits::default()
    }
}

fn mapping() -> Mapping {
    let raw: scim2ldap::config::RawConfig =
        figment::Figment::from(Toml::string(include_str!("../config.example.toml")))
            .extract()
            .unwrap();
    Mapping::from_config(&raw.users, ValueLimits::default(), &USER_RESOURCE).unwrap()
}

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in ["seeds", "regressions"] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) {
            files.extend(entries.flatten().map(|e| e.path()));
        }
    }
    files.sort();
    files
}

fn filter_case(text: &str, mapping: &Mapping) {
    for limits in [Limits::default(), ceiling()] {
        if let Ok(f) = parse_filter_with(text, &limits) {
            let user = json!({"userName": "b", "emails": [{"type": "work", "value": "b@x"}]});
            let user = normalize_resource(&user, &USER_RESOURCE).unwrap().resource;
            let _ = matches(&f, &user, &|_| false);
            let _ = mapping.needs_recheck(&f);
            if let Ok(l) = mapping.ldap_filter(&f, &|id| Some(LdapFilter::eq("entryUUID", id))) {
                let _ = l.to_string();
            }
        }
    }
}

fn patch_body_case(bytes: &[u8], mapping: &Mapping) {
    let Ok(body) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    // operations are resolved against a schema when parsed: once for each resource type
    if let Ok(ops) = parse_patch_request(&body, &USER_RESOURCE, &Limits::default()) {
        let user = json!({"userName": "b", "emails": [{"type": "work", "value": "b@x"}]});
        let mut res = normalize_resource(&user, &USER_RESOURCE).unwrap().resource;
        if apply_patch(&mut res, &ops, "id").is_ok() {
            let _ = mapping.to_ldap(&res, &|_| None);
        }
    }
    if let Ok(ops) = parse_patch_request(&body, &GROUP_RESOURCE, &Limits::default()) {
        let group = json!({"displayName": "g"});
        let mut res = normalize_resource(&group, &GROUP_RESOURCE)
            .unwrap()
            .resource;
        let _ = apply_patch(&mut res, &ops, "id");
    }
}

/// Runs `check` over each input of `target` on a worker-sized stack.
fn replay(target: &'static str, check: fn(&[u8], &Mapping)) -> usize {
    let files = inputs(target);
    let n = files.len();
    std::thread::Builder::new()
        .stack_size(WORKER_STACK)
        .spawn(move || {
            let mapping = mapping();
            for f in files {
                check(&std::fs::read(&f).unwrap(), &mapping);
            }
        })
        .unwrap()
        .join()
        .expect("an input crashed the parser or a walk over its result");
    n
}

#[test]
fn filter_inputs_never_crash() {
    let n = replay("filter", |b, m| {
        if let Ok(t) = std::str::from_utf8(b) {
            filter_case(t, m)
        }
    });
    assert!(n >= 10, "the seeds are there: {n}");
}

#[test]
fn patch_path_inputs_never_crash() {
    let n = replay("patch_path", |b, _| {
        if let Ok(t) = std::str::from_utf8(b) {
            let _ = parse_patch_path_with(t, &Limits::default());
            let _ = parse_patch_path_with(t, &ceiling());
        }
    });
    assert!(n >= 5, "{n}");
}

#[test]
fn patch_body_inputs_never_crash() {
    let n = replay("patch_body", patch_body_case);
    assert!(n >= 5, "{n}");
}

/// The deepest filter the ceilings allow, with the most terms, walked every way in a debug
/// build on a worker's stack: the margin the hard ceilings leave.
#[test]
fn the_deepest_filter_the_ceilings_allow_fits_a_worker_stack() {
    std::thread::Builder::new()
        .stack_size(WORKER_STACK)
        .spawn(|| {
            let mapping = mapping();
            let depth = Limits::HARD_MAX_DEPTH - 1;
            let text = format!(
                "emails[{}type eq \"work\" and not (value co \"x\"){}]",
                "(".repeat(depth - 2),
                ")".repeat(depth - 2)
            );
            assert!(
                parse_filter_with(&text, &ceiling()).is_ok(),
                "within the ceiling"
            );
            filter_case(&text, &mapping);
            let text = format!("{}title pr{}", "not (".repeat(depth), ")".repeat(depth));
            assert!(parse_filter_with(&text, &ceiling()).is_ok());
            filter_case(&text, &mapping);
        })
        .unwrap()
        .join()
        .expect("fits");
}
