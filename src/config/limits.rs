//! `[limits]`: the bounds every request is held to (body size, filter size, PATCH operations, page
//! sizes).

use serde::Deserialize;

use super::ConfigError;

/// `[limits]`: how much one request may make the server parse, walk and write. Every input
/// is bounded before it is parsed; past a bound the client gets a 400 naming it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Characters in a filter or a PATCH path.
    pub filter_max_length: usize,
    /// Nesting of parentheses, `not (…)` and value filters in one filter or path.
    pub filter_max_depth: usize,
    /// Comparisons in one filter.
    pub filter_max_terms: usize,
    /// Operations in one PATCH.
    pub patch_max_operations: usize,
    /// Member ids in one group request (POST, PUT, or one PATCH).
    pub max_members_per_request: usize,
    /// Values of one multi-valued attribute (emails, …) in one request.
    pub max_values_per_attribute: usize,
    /// Characters in any one attribute value (a mapping's `max_length` lowers it for one
    /// attribute).
    pub max_value_length: usize,
    /// Characters in the value that names an entry (its RDN). Unset: 64 on Active Directory
    /// (cn's limit there), 128 on OpenLDAP (its back-mdb refuses DNs over ~270 characters).
    pub max_rdn_value_length: Option<usize>,
    /// Seconds a cursor walk (RFC 9865) waits for its next page before it is closed.
    pub cursor_timeout_secs: u64,
    /// Cursor walks one tenant may hold open at once (each holds a directory connection);
    /// opening one more closes the tenant's oldest.
    pub max_open_cursors: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = crate::scim::Limits::default();
        LimitsConfig {
            filter_max_length: l.filter_max_length,
            filter_max_depth: l.filter_max_depth,
            filter_max_terms: l.filter_max_terms,
            patch_max_operations: l.patch_max_operations,
            max_members_per_request: l.max_members,
            max_values_per_attribute: l.max_values_per_attribute,
            max_value_length: 2048,
            max_rdn_value_length: None,
            cursor_timeout_secs: 120,
            max_open_cursors: 4,
        }
    }
}

impl LimitsConfig {
    /// The checked cursor settings.
    pub fn cursors(&self) -> Result<crate::service::cursor::CursorSettings, ConfigError> {
        let out_of_range = |key: &str, v: u64, max: u64| {
            ConfigError::new(
                format!("limits.{key}"),
                format!("{v} is out of range"),
                format!("set a value from 1 to {max}"),
            )
        };
        if !(1..=3600).contains(&self.cursor_timeout_secs) {
            return Err(out_of_range(
                "cursor_timeout_secs",
                self.cursor_timeout_secs,
                3600,
            ));
        }
        if !(1..=64).contains(&self.max_open_cursors) {
            return Err(out_of_range(
                "max_open_cursors",
                self.max_open_cursors as u64,
                64,
            ));
        }
        Ok(crate::service::cursor::CursorSettings {
            timeout: std::time::Duration::from_secs(self.cursor_timeout_secs),
            per_tenant: self.max_open_cursors,
        })
    }

    /// The checked limits: each at least 1 and at most its hard ceiling.
    pub fn limits(&self) -> Result<crate::scim::Limits, ConfigError> {
        use crate::scim::Limits;
        let range = |key: &str, v: usize, max: usize| {
            if (1..=max).contains(&v) {
                Ok(v)
            } else {
                Err(ConfigError::new(
                    format!("limits.{key}"),
                    format!("{v} is out of range"),
                    format!("set a value from 1 to {max}"),
                ))
            }
        };
        Ok(Limits {
            filter_max_length: range(
                "filter_max_length",
                self.filter_max_length,
                Limits::HARD_MAX_LENGTH,
            )?,
            filter_max_depth: range(
                "filter_max_depth",
                self.filter_max_depth,
                Limits::HARD_MAX_DEPTH,
            )?,
            filter_max_terms: range(
                "filter_max_terms",
                self.filter_max_terms,
                Limits::HARD_MAX_TERMS,
            )?,
            patch_max_operations: range(
                "patch_max_operations",
                self.patch_max_operations,
                100_000,
            )?,
            max_members: range(
                "max_members_per_request",
                self.max_members_per_request,
                1_000_000,
            )?,
            max_values_per_attribute: range(
                "max_values_per_attribute",
                self.max_values_per_attribute,
                100_000,
            )?,
        })
    }
}
