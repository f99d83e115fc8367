//! `[safety]` and `[tenants.NAME.safety]`: the mass-removal safety valve's threshold.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::safety::Threshold;

/// The longest window: removals are remembered this long at most.
const MAX_WINDOW_SECS: u64 = 30 * 86_400;

/// `[safety]`: how many removals (user deletes and deactivations) a tenant may make in a
/// sliding window before further removals are held until an admin releases them.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyConfig {
    /// 0 turns the valve off.
    #[serde(default = "default_max_removals")]
    pub max_removals: u32,
    #[serde(default = "default_window_secs")]
    pub window_secs: u64,
    /// Also hold past this percentage of the tenant's users (whichever limit is lower).
    #[serde(default)]
    pub max_removals_percent: Option<u8>,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            max_removals: default_max_removals(),
            window_secs: default_window_secs(),
            max_removals_percent: None,
        }
    }
}

fn default_max_removals() -> u32 {
    100
}

fn default_window_secs() -> u64 {
    3600
}

/// `[tenants.NAME.safety]`: each key given overrides `[safety]`'s for this tenant.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSafetyConfig {
    #[serde(default)]
    pub max_removals: Option<u32>,
    #[serde(default)]
    pub window_secs: Option<u64>,
    #[serde(default)]
    pub max_removals_percent: Option<u8>,
}

impl SafetyConfig {
    /// The threshold of tenant `name`, its own keys over `[safety]`'s.
    pub fn threshold(
        &self,
        name: &str,
        own: Option<&TenantSafetyConfig>,
    ) -> Result<Threshold, ConfigError> {
        let (max, max_key) = match own.and_then(|o| o.max_removals) {
            Some(m) => (m, format!("tenants.{name}.safety.max_removals")),
            None => (self.max_removals, "safety.max_removals".to_owned()),
        };
        let (window, window_key) = match own.and_then(|o| o.window_secs) {
            Some(w) => (w, format!("tenants.{name}.safety.window_secs")),
            None => (self.window_secs, "safety.window_secs".to_owned()),
        };
        if !(1..=MAX_WINDOW_SECS).contains(&window) {
            return Err(ConfigError::new(
                window_key,
                format!("{window} is not between 1 and {MAX_WINDOW_SECS} seconds (30 days)"),
                "the window in which removals are counted, e.g. 3600 for an hour",
            ));
        }
        let (percent, percent_key) = match own.and_then(|o| o.max_removals_percent) {
            Some(p) => (
                Some(p),
                format!("tenants.{name}.safety.max_removals_percent"),
            ),
            None => (
                self.max_removals_percent,
                "safety.max_removals_percent".to_owned(),
            ),
        };
        if percent.is_some_and(|p| !(1..=100).contains(&p)) {
            return Err(ConfigError::new(
                percent_key,
                format!("{} is not a percentage from 1 to 100", percent.unwrap_or(0)),
                "e.g. 5: hold removals past 5% of the tenant's users in the window; remove the key for none",
            ));
        }
        if max > 1_000_000 {
            return Err(ConfigError::new(
                max_key,
                format!("{max} removals is more than a safety valve can mean"),
                "a number of removals per window, e.g. 100; 0 turns the valve off",
            ));
        }
        Ok(Threshold {
            max_removals: max,
            window: Duration::from_secs(window),
            percent,
        })
    }
}
