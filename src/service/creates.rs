//! Creates this process applied but could not answer. A second POST of a name that exists is
//! a 409 (RFC 7644 §3.3), also when it carries the same values: certification suites check
//! exactly that, and a 201 would hand a deactivated account back as new. But an IdP whose
//! POST got no answer (it gave up waiting, or the request deadline passed while the write
//! went on) retries it, and must learn the id of what it made rather than be told the name is
//! taken. So a create whose answer never left is remembered here, by tenant and body, for a
//! short window; only the identical POST from the same tenant within it gets the 201.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::directory::EntryId;

/// How long an unanswered create stays retrievable by its retry.
pub const RETRY_WINDOW: Duration = Duration::from_secs(120);

/// Which create a request is: its tenant, resource type and body, hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CreateKey([u8; 32]);

impl CreateKey {
    /// As the journal writes it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<CreateKey> {
        hex::decode(text).ok()?.try_into().ok().map(CreateKey)
    }

    pub fn of(tenant: &str, resource_type: &str, body: &[u8]) -> CreateKey {
        let mut h = Sha256::new();
        for part in [tenant.as_bytes(), resource_type.as_bytes()] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.update(body);
        CreateKey(h.finalize().into())
    }
}

/// What a successful create leaves on its answer, so that the HTTP layer can remember it
/// when the answer cannot be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateReceipt {
    pub key: CreateKey,
    pub id: EntryId,
}

pub struct RecentCreates {
    unanswered: moka::sync::Cache<CreateKey, EntryId>,
}

impl RecentCreates {
    pub fn new(window: Duration) -> RecentCreates {
        RecentCreates {
            unanswered: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(window)
                .build(),
        }
    }

    /// A create whose answer was not delivered.
    pub fn unanswered(&self, receipt: &CreateReceipt) {
        self.unanswered.insert(receipt.key, receipt.id.clone());
    }

    /// The id a retry of `key` made, when its answer was lost within the window.
    pub fn made_by(&self, key: &CreateKey) -> Option<EntryId> {
        self.unanswered.get(key)
    }
}

impl Default for RecentCreates {
    fn default() -> Self {
        RecentCreates::new(RETRY_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_body_from_the_same_tenant_within_the_window_finds_it() {
        let recent = RecentCreates::new(Duration::from_millis(200));
        let key = CreateKey::of("acme", "User", br#"{"userName":"a"}"#);
        recent.unanswered(&CreateReceipt {
            key,
            id: EntryId::from("id-1"),
        });
        assert_eq!(recent.made_by(&key), Some(EntryId::from("id-1")));
        for other in [
            CreateKey::of("other", "User", br#"{"userName":"a"}"#),
            CreateKey::of("acme", "Group", br#"{"userName":"a"}"#),
            CreateKey::of("acme", "User", br#"{"userName":"a","title":"x"}"#),
        ] {
            assert_eq!(recent.made_by(&other), None);
        }
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(recent.made_by(&key), None, "past the window");
    }

    #[test]
    fn tenant_and_type_cannot_run_into_the_body() {
        assert_ne!(
            CreateKey::of("ab", "User", b"x"),
            CreateKey::of("a", "bUser", b"x")
        );
    }
}
