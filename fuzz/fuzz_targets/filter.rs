//! The filter parser, and every walk over what it returns: evaluation in memory, the
//! recheck decision and the translation to an LDAP filter (rendered to text).
#![no_main]

mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use scim2ldap::directory::LdapFilter;
use scim2ldap::mapping::Mapping;
use scim2ldap::scim::filter::{matches, parse_filter_with};
use scim2ldap::scim::resource::normalize_resource;
use scim2ldap::scim::schema::USER_RESOURCE;

static MAPPING: OnceLock<Mapping> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mapping = MAPPING.get_or_init(common::example_mapping);
    for limits in [scim2ldap::scim::Limits::default(), common::ceiling_limits()] {
        if let Ok(f) = parse_filter_with(text, &limits) {
            let user = serde_json::json!({
                "userName": "bjensen", "active": true, "title": "x",
                "emails": [{"type": "work", "value": "b@example.com", "primary": true}],
                "name": {"familyName": "Jensen"}
            });
            if let Ok(n) = normalize_resource(&user, &USER_RESOURCE) {
                let _ = matches(&f, &n.resource, &|_| false);
            }
            let _ = mapping.needs_recheck(&f);
            if let Ok(ldap) = mapping.ldap_filter(&f, &|id| Some(LdapFilter::eq("entryUUID", id))) {
                let _ = ldap.to_string();
            }
        }
    }
});
