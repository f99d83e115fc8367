//! The DN cache: id → DN and userName → DN, bounded and expiring (moka). A cached DN is a
//! hint: every use reads the entry at that DN and checks its id (or name), so an entry moved
//! or deleted behind our back, by anyone or by another bridge, is re-resolved, never trusted.
//! There is no DN → id map: a DN can be reused by a new entry, and an id shown for it must
//! come from the directory (`Store::ids_for_dns`).

use std::time::Duration;

use moka::future::Cache;

use crate::directory::Dn;

#[derive(Clone)]
pub struct DnCache {
    by_id: Cache<String, Dn>,
    by_name: Cache<(String, String), Dn>,
}

impl DnCache {
    pub fn new(max_entries: u64, ttl: Duration) -> DnCache {
        DnCache {
            by_id: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .build(),
            by_name: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub async fn dn_for_id(&self, id: &str) -> Option<Dn> {
        let dn = self.by_id.get(id).await;
        crate::metrics::metrics().cache_lookup("id", dn.is_some());
        dn
    }

    /// userName lookups are per container (tenant) and case-insensitive, like `uid`.
    pub async fn dn_for_name(&self, container: &Dn, user_name: &str) -> Option<Dn> {
        let dn = self.by_name.get(&name_key(container, user_name)).await;
        crate::metrics::metrics().cache_lookup("userName", dn.is_some());
        dn
    }

    pub async fn remember(&self, id: &str, dn: &Dn, container: &Dn, user_name: Option<&str>) {
        self.by_id.insert(id.to_owned(), dn.clone()).await;
        if let Some(n) = user_name {
            self.by_name
                .insert(name_key(container, n), dn.clone())
                .await;
        }
    }

    pub async fn forget(&self, id: &str, container: &Dn, user_name: Option<&str>) {
        self.by_id.invalidate(id).await;
        if let Some(n) = user_name {
            self.by_name.invalidate(&name_key(container, n)).await;
        }
    }

    pub async fn forget_name(&self, container: &Dn, user_name: &str) {
        self.by_name
            .invalidate(&name_key(container, user_name))
            .await;
    }
}

fn name_key(container: &Dn, user_name: &str) -> (String, String) {
    (container.canonical().to_owned(), user_name.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn remembers_and_forgets_both_directions() {
        let c = DnCache::new(100, Duration::from_secs(60));
        c.remember(
            "id1",
            &"uid=A,ou=P,dc=x".into(),
            &"ou=p,dc=x".into(),
            Some("A"),
        )
        .await;
        assert_eq!(c.dn_for_id("id1").await.as_deref(), Some("uid=A,ou=P,dc=x"));
        assert_eq!(
            c.dn_for_name(&"OU=p,dc=x".into(), "a").await.as_deref(),
            Some("uid=A,ou=P,dc=x")
        );
        assert_eq!(
            c.dn_for_name(&"ou=other,dc=x".into(), "a").await,
            None,
            "names are per container"
        );
        c.forget("id1", &"ou=p,dc=x".into(), Some("a")).await;
        assert_eq!(c.dn_for_id("id1").await, None);
        assert_eq!(c.dn_for_name(&"ou=p,dc=x".into(), "a").await, None);
    }

    #[tokio::test]
    async fn entries_expire_after_the_ttl() {
        let c = DnCache::new(100, Duration::from_millis(50));
        c.remember("id1", &"uid=a,dc=x".into(), &"dc=x".into(), None)
            .await;
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(c.dn_for_id("id1").await, None);
    }
}
