//! What the fuzz targets share: the most generous limits an admin can configure (so the
//! deepest recursion the server can ever do is exercised), and the example mapping.

use scim2ldap::mapping::{Mapping, ValueLimits};
use scim2ldap::scim::schema::USER_RESOURCE;
use scim2ldap::scim::Limits;

#[allow(dead_code)] // not every target uses both
pub fn ceiling_limits() -> Limits {
    Limits {
        filter_max_length: Limits::HARD_MAX_LENGTH,
        filter_max_depth: Limits::HARD_MAX_DEPTH,
        filter_max_terms: Limits::HARD_MAX_TERMS,
        ..Limits::default()
    }
}

#[allow(dead_code)]
pub fn example_mapping() -> Mapping {
    use figment::providers::{Format, Toml};
    let raw: scim2ldap::config::RawConfig =
        figment::Figment::from(Toml::string(include_str!("../../config.example.toml")))
            .extract()
            .expect("the example config parses");
    Mapping::from_config(&raw.users, ValueLimits::default(), &USER_RESOURCE)
        .expect("the example mapping builds")
}
