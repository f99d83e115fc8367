//! Cursor paging (RFC 9865) on the directory's own paged search (RFC 2696). A walk is one
//! paged search that goes forward a page per request on a connection of its own, so walking
//! n entries costs O(n) in total, where `startIndex` paging re-reads every page before the
//! one asked for. The cursor a client holds is opaque: a random walk id and a page number,
//! MACed with a key (one per process, or one every replica shares: `server.cursor_key_file`)
//! together with the tenant and resource type, so that a tampered, forged or another
//! tenant's cursor is refused (`invalidCursor`) and an unknown one is known to have expired
//! or to live on another replica (`expiredCursor`: start again).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use tokio::sync::Mutex;

use super::error::{ServiceError, ServiceResult};
use crate::directory::{Directory, Dn, Entry, LdapFilter, Walk};
use crate::scim::filter::Filter;
use crate::scim::ScimType;

/// How long a walk waits for its next page, and how many a tenant may hold open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorSettings {
    pub timeout: Duration,
    pub per_tenant: usize,
}

impl Default for CursorSettings {
    fn default() -> Self {
        CursorSettings {
            timeout: Duration::from_secs(120),
            per_tenant: 4,
        }
    }
}

type WalkId = [u8; 16];

/// Pages kept after they were served: the newest and the one before it, so that a retried
/// request gets its page again and `previousCursor` can go back one page (the directory's
/// paged search only goes forward).
const KEPT_PAGES: usize = 2;

/// The longest cursor text looked at; ours are 70 characters.
const MAX_CURSOR_LEN: usize = 128;

/// Where a request starts: a new walk (`cursor=` empty), or a page of an open one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    First,
    Page { walk: WalkId, page: u32 },
}

/// One page of a walk and the cursors around it.
#[derive(Debug)]
pub struct CursorPage {
    pub entries: Vec<Entry>,
    pub next: Option<String>,
    pub previous: Option<String>,
    /// The number of matches, once the walk has reached the end.
    pub total: Option<usize>,
    /// The walk's in-memory check (see `WalkQuery::recheck`).
    pub recheck: Option<Filter>,
}

/// What a walk needs to start: where, which entries, which attributes.
pub struct WalkQuery<'a> {
    pub base: &'a Dn,
    pub filter: LdapFilter,
    pub attrs: Vec<&'a str>,
    /// The SCIM filter every page is checked against in memory, when `filter` can only be a
    /// superset of it: kept with the walk, since later pages need not repeat it.
    pub recheck: Option<Filter>,
}

struct OpenWalk {
    tenant: String,
    /// The directory connection, until the walk reaches the end.
    walk: Option<Walk>,
    /// The page the next fetch returns.
    next: u32,
    /// The walk's last page, once it reached the end.
    last: Option<u32>,
    kept: VecDeque<(u32, Vec<Entry>)>,
    seen: usize,
    recheck: Option<Filter>,
    /// Set while a page is fetched: still set when a request finds the walk, the fetch
    /// before it was cancelled (client gone, deadline) with the directory's paging state
    /// unknown, and the walk cannot go on.
    fetching: bool,
}

/// The key cursors are signed with: one per process, so that a cursor from before a reload
/// is still recognised (and answered `expiredCursor`: the reload ended its walk), while one
/// from before a restart is not.
fn process_key() -> hmac::Key {
    static SECRET: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    hmac::Key::new(hmac::HMAC_SHA256, SECRET.get_or_init(rand::random))
}

/// The open walks of every tenant.
pub struct Cursors {
    key: hmac::Key,
    walks: moka::future::Cache<WalkId, Arc<Mutex<OpenWalk>>>,
    by_tenant: SyncMutex<HashMap<String, VecDeque<WalkId>>>,
    settings: CursorSettings,
}

impl Cursors {
    /// `shared_key`: the key every replica shares; `None`: this process's own.
    pub fn new(settings: CursorSettings, shared_key: Option<[u8; 32]>) -> Cursors {
        Cursors {
            key: match shared_key {
                Some(k) => hmac::Key::new(hmac::HMAC_SHA256, &k),
                None => process_key(),
            },
            walks: moka::future::Cache::builder()
                .time_to_idle(settings.timeout)
                // a bound whatever the number of tenants; each tenant has its own below it
                .max_capacity(4096)
                .build(),
            by_tenant: SyncMutex::new(HashMap::new()),
            settings,
        }
    }

    pub fn settings(&self) -> CursorSettings {
        self.settings
    }

    fn signed(&self, tenant: &str, kind: &str, body: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in [tenant.as_bytes(), b"\0", kind.as_bytes(), b"\0", body] {
            ctx.update(part);
        }
        ctx.sign()
    }

    /// The cursor a client sends back for `page` of `walk`.
    fn token(&self, tenant: &str, kind: &str, walk: &WalkId, page: u32) -> String {
        let mut body = Vec::with_capacity(52);
        body.extend_from_slice(walk);
        body.extend_from_slice(&page.to_be_bytes());
        let tag = self.signed(tenant, kind, &body);
        body.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(body)
    }

    /// The request's `cursor` parameter: empty for the first page, else one we issued to this
    /// tenant for this resource type.
    pub fn parse(&self, tenant: &str, kind: &str, text: &str) -> ServiceResult<Position> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Position::First);
        }
        let refused = || {
            ServiceError::bad_request(
                ScimType::InvalidCursor,
                "cursor: not a cursor this server gave for this list; send cursor= (empty) to start from the first page",
            )
        };
        if text.len() > MAX_CURSOR_LEN {
            return Err(refused());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| refused())?;
        if bytes.len() != 16 + 4 + 32 {
            return Err(refused());
        }
        let (body, tag) = bytes.split_at(20);
        let mut ctx_body = Vec::with_capacity(tenant.len() + kind.len() + 22);
        for part in [tenant.as_bytes(), b"\0", kind.as_bytes(), b"\0", body] {
            ctx_body.extend_from_slice(part);
        }
        hmac::verify(&self.key, &ctx_body, tag).map_err(|_| refused())?;
        let (walk, page) = body.split_at(16);
        Ok(Position::Page {
            walk: walk.try_into().map_err(|_| refused())?,
            page: u32::from_be_bytes(page.try_into().map_err(|_| refused())?),
        })
    }

    fn expired(&self) -> ServiceError {
        ServiceError::bad_request(
            ScimType::ExpiredCursor,
            format!(
                "cursor: this page is no longer held here (a walk waits {} s for its next page, keeps only its last two pages, ends when the server reloads, and lives on the replica of the bridge that began it); send cursor= (empty) to start again",
                self.settings.timeout.as_secs()
            ),
        )
    }

    /// The page at `pos` of `count` entries; `Position::First` opens a walk over `query`
    /// (which only the first page needs).
    pub async fn page(
        &self,
        dir: &dyn Directory,
        tenant: &str,
        kind: &str,
        pos: Position,
        count: usize,
        query: Option<WalkQuery<'_>>,
    ) -> ServiceResult<CursorPage> {
        let (id, page, open) = match (pos, query) {
            (Position::First, None) => {
                return Err(ServiceError::Internal(
                    "a new walk without its query".into(),
                ))
            }
            (Position::First, Some(q)) => {
                let (id, open) = self.open(dir, tenant, q).await?;
                (id, 1, open)
            }
            (Position::Page { walk, page }, _) => {
                let open = self.walks.get(&walk).await.ok_or_else(|| self.expired())?;
                (walk, page, open)
            }
        };
        let mut w = open.lock().await;
        if w.tenant != tenant {
            return Err(self.expired());
        }
        if w.fetching {
            drop(w);
            self.walks.invalidate(&id).await;
            return Err(self.expired());
        }
        let entries = if page == w.next && w.last.is_none() {
            w.fetching = true;
            let Some(walk) = w.walk.as_mut() else {
                return Err(self.expired());
            };
            let fetched = dir.walk_next(walk, count.max(1)).await;
            w.fetching = false;
            let (entries, done) = match fetched {
                Ok(got) => got,
                Err(e) => {
                    drop(w);
                    self.walks.invalidate(&id).await;
                    return Err(e.into());
                }
            };
            w.next += 1;
            w.seen += entries.len();
            if done {
                w.last = Some(page);
                // the end: the connection goes back now, the kept pages stay until timeout
                w.walk = None;
            }
            w.kept.push_back((page, entries.clone()));
            while w.kept.len() > KEPT_PAGES {
                w.kept.pop_front();
            }
            entries
        } else {
            match w.kept.iter().find(|(p, _)| *p == page) {
                Some((_, entries)) => entries.clone(),
                None => return Err(self.expired()),
            }
        };
        let next = (w.last != Some(page)).then(|| self.token(tenant, kind, &id, page + 1));
        let previous = (page > 1 && w.kept.iter().any(|(p, _)| *p == page - 1))
            .then(|| self.token(tenant, kind, &id, page - 1));
        Ok(CursorPage {
            entries,
            next,
            previous,
            total: w.last.map(|_| w.seen),
            recheck: w.recheck.clone(),
        })
    }

    /// Opens a walk for `tenant` (a paged search held open): its id and its state.
    async fn open(
        &self,
        dir: &dyn Directory,
        tenant: &str,
        q: WalkQuery<'_>,
    ) -> ServiceResult<(WalkId, Arc<Mutex<OpenWalk>>)> {
        let walk = dir.walk_open(q.base, &q.filter, &q.attrs).await?;
        let id: WalkId = rand::random();
        let open = Arc::new(Mutex::new(OpenWalk {
            tenant: tenant.to_owned(),
            walk: Some(walk),
            next: 1,
            last: None,
            kept: VecDeque::new(),
            seen: 0,
            recheck: q.recheck,
            fetching: false,
        }));
        self.admit(tenant, id).await;
        self.walks.insert(id, open.clone()).await;
        Ok((id, open))
    }

    /// Counts a new walk against its tenant, closing the tenant's oldest beyond its share:
    /// one tenant cannot hold every connection, nor close another tenant's walks.
    async fn admit(&self, tenant: &str, id: WalkId) {
        let mut closing = Vec::new();
        {
            let Ok(mut by_tenant) = self.by_tenant.lock() else {
                return;
            };
            let ids = by_tenant.entry(tenant.to_owned()).or_default();
            ids.retain(|w| self.walks.contains_key(w));
            while ids.len() >= self.settings.per_tenant {
                closing.extend(ids.pop_front());
            }
            ids.push_back(id);
        }
        for w in closing {
            self.walks.invalidate(&w).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::ScimError;

    fn cursors() -> Cursors {
        Cursors::new(CursorSettings::default(), None)
    }

    #[test]
    fn a_cursor_reads_back_as_its_walk_and_page() {
        let c = cursors();
        let walk = [7u8; 16];
        let t = c.token("acme", "Users", &walk, 42);
        assert_eq!(
            c.parse("acme", "Users", &t).unwrap(),
            Position::Page { walk, page: 42 }
        );
        assert_eq!(c.parse("acme", "Users", "").unwrap(), Position::First);
    }

    #[test]
    fn a_cursor_is_refused_for_another_tenant_or_type() {
        let c = cursors();
        let t = c.token("acme", "Users", &[1u8; 16], 2);
        let refused = |r: ServiceResult<Position>| ScimError::from(r.unwrap_err()).scim_type;
        assert_eq!(
            refused(c.parse("other", "Users", &t)),
            Some(ScimType::InvalidCursor)
        );
        assert_eq!(
            refused(c.parse("acme", "Groups", &t)),
            Some(ScimType::InvalidCursor)
        );
        // a reloaded configuration (new registry) still knows the key: its walk is gone,
        // which `page` answers as expired
        assert_eq!(
            cursors().parse("acme", "Users", &t).unwrap(),
            Position::Page {
                walk: [1u8; 16],
                page: 2
            }
        );
    }

    #[test]
    fn replicas_sharing_a_cursor_key_recognise_each_others_cursors() {
        let one = Cursors::new(CursorSettings::default(), Some([7u8; 32]));
        let other = Cursors::new(CursorSettings::default(), Some([7u8; 32]));
        let t = one.token("acme", "Users", &[3u8; 16], 1);
        assert_eq!(
            other.parse("acme", "Users", &t).unwrap(),
            Position::Page {
                walk: [3u8; 16],
                page: 1
            },
            "recognised: its walk is unknown here, which `page` answers as expired"
        );
        let stranger = Cursors::new(CursorSettings::default(), Some([8u8; 32]));
        assert_eq!(
            ScimError::from(stranger.parse("acme", "Users", &t).unwrap_err()).scim_type,
            Some(ScimType::InvalidCursor)
        );
    }

    #[test]
    fn a_tampered_or_malformed_cursor_is_invalid() {
        let c = cursors();
        let t = c.token("acme", "Users", &[1u8; 16], 2);
        let mut bytes = URL_SAFE_NO_PAD.decode(&t).unwrap();
        bytes[19] ^= 1; // another page number
        let tampered = URL_SAFE_NO_PAD.encode(&bytes);
        for bad in [
            tampered.as_str(),
            "not base64!",
            "AAAA",
            &"A".repeat(10_000),
            &t[..t.len() - 1],
        ] {
            let err = ScimError::from(c.parse("acme", "Users", bad).unwrap_err());
            assert_eq!(err.status, 400);
            assert_eq!(err.scim_type, Some(ScimType::InvalidCursor), "{bad:.40}");
        }
    }
}
