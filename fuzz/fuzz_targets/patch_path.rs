//! PATCH paths (`emails[type eq "work"].value`, `members[value eq "…"]`).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use scim2ldap::scim::filter::parse_patch_path_with;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_patch_path_with(text, &scim2ldap::scim::Limits::default());
    let _ = parse_patch_path_with(text, &common::ceiling_limits());
});
