//! Whole PATCH bodies: JSON in, parsed within the limits, applied to a user and to a group,
//! and the result translated to LDAP values by the example mapping.
#![no_main]

mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use scim2ldap::mapping::Mapping;
use scim2ldap::scim::patch::{apply_patch, parse_patch_request};
use scim2ldap::scim::resource::normalize_resource;
use scim2ldap::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use serde_json::Value;

static MAPPING: OnceLock<Mapping> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let mapping = MAPPING.get_or_init(common::example_mapping);
    let limits = scim2ldap::scim::Limits::default();
    let user = serde_json::json!({
        "userName": "bjensen", "active": true, "displayName": "Babs",
        "emails": [{"type": "work", "value": "b@example.com", "primary": true}],
        "phoneNumbers": [{"type": "work", "value": "555"}],
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}
    });
    // operations are resolved against a schema when parsed: once for each resource type
    if let (Ok(ops), Ok(n)) = (
        parse_patch_request(&body, &USER_RESOURCE, &limits),
        normalize_resource(&user, &USER_RESOURCE),
    ) {
        let mut res = n.resource;
        if apply_patch(&mut res, &ops, "id").is_ok() {
            let _ = mapping.to_ldap(&res, &|_| None);
            let _ = mapping.rdn(&res);
        }
    }
    let group = serde_json::json!({"displayName": "Staff", "members": [{"value": "a"}]});
    if let (Ok(ops), Ok(n)) = (
        parse_patch_request(&body, &GROUP_RESOURCE, &limits),
        normalize_resource(&group, &GROUP_RESOURCE),
    ) {
        let mut res = n.resource;
        let _ = apply_patch(&mut res, &ops, "id");
    }
});
