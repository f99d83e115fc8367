//! Per-tenant token buckets (governor's GCRA), so one IdP's initial sync cannot starve the
//! others: past its bucket a tenant gets 429 with `Retry-After`.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::{ConfigError, RateLimitConfig, TenantConfig};

pub struct RateLimits {
    /// Tenant name → its bucket; absent when the tenant is unlimited.
    buckets: HashMap<String, (DefaultDirectRateLimiter, RateLimitConfig)>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn from_config(
        default: RateLimitConfig,
        tenants: &BTreeMap<String, TenantConfig>,
    ) -> Result<RateLimits, ConfigError> {
        let mut buckets = HashMap::new();
        for (name, t) in tenants {
            let (cfg, key) = match t.rate_limit {
                Some(c) => (c, format!("tenants.{name}.rate_limit")),
                None => (default, "server.rate_limit".to_owned()),
            };
            if let Some(quota) = quota(cfg, &key)? {
                buckets.insert(name.clone(), (RateLimiter::direct(quota), cfg));
            }
        }
        Ok(RateLimits {
            buckets,
            clock: DefaultClock::default(),
        })
    }

    /// Takes one token from `tenant`'s bucket; when it is empty, how long until one is free.
    pub fn check(&self, tenant: &str) -> Result<(), (Duration, RateLimitConfig)> {
        let Some((bucket, cfg)) = self.buckets.get(tenant) else {
            return Ok(());
        };
        bucket
            .check()
            .map_err(|not_until| (not_until.wait_time_from(self.clock.now()), *cfg))
    }
}

fn quota(cfg: RateLimitConfig, key: &str) -> Result<Option<Quota>, ConfigError> {
    let Some(rate) = NonZeroU32::new(cfg.per_second) else {
        return Ok(None);
    };
    let burst = NonZeroU32::new(cfg.burst).ok_or_else(|| {
        ConfigError::new(
            format!("{key}.burst"),
            "must be at least 1 when per_second is set",
            "e.g. burst = 200 (requests a tenant may send at once); per_second = 0 turns the limit off",
        )
    })?;
    Ok(Some(Quota::per_second(rate).allow_burst(burst)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants(override_for_b: Option<RateLimitConfig>) -> BTreeMap<String, TenantConfig> {
        let mut t = BTreeMap::new();
        t.insert("a".to_owned(), TenantConfig::default());
        t.insert(
            "b".to_owned(),
            TenantConfig {
                rate_limit: override_for_b,
                ..TenantConfig::default()
            },
        );
        t
    }

    #[test]
    fn an_empty_bucket_says_how_long_to_wait_and_spares_other_tenants() {
        let limits = RateLimits::from_config(
            RateLimitConfig {
                per_second: 1,
                burst: 3,
            },
            &tenants(None),
        )
        .unwrap();
        for _ in 0..3 {
            assert!(limits.check("a").is_ok());
        }
        let (wait, _) = limits.check("a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(limits.check("b").is_ok(), "b has its own bucket");
    }

    #[test]
    fn a_tenant_override_of_zero_is_unlimited() {
        let off = RateLimitConfig {
            per_second: 0,
            burst: 0,
        };
        let limits = RateLimits::from_config(
            RateLimitConfig {
                per_second: 1,
                burst: 1,
            },
            &tenants(Some(off)),
        )
        .unwrap();
        for _ in 0..100 {
            assert!(limits.check("b").is_ok());
        }
        let bad = RateLimits::from_config(
            RateLimitConfig {
                per_second: 5,
                burst: 0,
            },
            &tenants(None),
        );
        assert_eq!(
            bad.err().map(|e| e.key),
            Some("server.rate_limit.burst".into())
        );
    }
}
