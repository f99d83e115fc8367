//! Directory access: the `Directory` trait the service layer talks to, with one
//! implementation per dialect (OpenLDAP now; Active Directory implements the same trait).
//! Nothing above this module sees an ldap3 type.

use async_trait::async_trait;

pub mod ad;
pub mod attrs;
pub mod budget;
pub mod discover;
pub mod dry_run;
pub mod estate;
pub mod filter;
pub mod guid;
pub mod ldap;
pub mod names;
pub mod openldap;
pub mod password;
pub mod pool;

pub use attrs::{AttrMap, Values};
pub use estate::{EstateStatus, ServerStatus};
pub use filter::LdapFilter;
pub use names::{each_attribute_once, AttrName, Dn, EntryId};
pub use password::{Password, PasswordStorage};
pub use pool::one_server;

/// An entry as read from the directory: its DN, its immutable id (decoded by the dialect),
/// and its attribute values keyed by lowercased attribute name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dn: Dn,
    pub id: EntryId,
    pub attrs: AttrMap,
}

impl Entry {
    /// The values of `attr` (an `AttrName`, whose key is ready, or any spelling of a name).
    pub fn values<K: AttrKey + ?Sized>(&self, attr: &K) -> Values<'_> {
        attr.find_in(&self.attrs).unwrap_or(Values::none())
    }

    pub fn first<K: AttrKey + ?Sized>(&self, attr: &K) -> Option<&str> {
        self.values(attr).first()
    }
}

/// A name an entry's attributes can be looked up by: the map is keyed by lowercase names.
pub trait AttrKey {
    fn find_in<'m>(&self, attrs: &'m AttrMap) -> Option<Values<'m>>;
}

impl AttrKey for AttrName {
    fn find_in<'m>(&self, attrs: &'m AttrMap) -> Option<Values<'m>> {
        attrs.get(self.key())
    }
}

impl AttrKey for str {
    fn find_in<'m>(&self, attrs: &'m AttrMap) -> Option<Values<'m>> {
        if !self.bytes().any(|b| b.is_ascii_uppercase()) {
            return attrs.get(self);
        }
        // lowercased on the stack when short
        let mut buf = [0u8; 64];
        match buf.get_mut(..self.len()) {
            Some(lower) => {
                lower.copy_from_slice(self.as_bytes());
                lower.make_ascii_lowercase();
                std::str::from_utf8(lower)
                    .ok()
                    .and_then(|key| attrs.get(key))
            }
            None => attrs.get(&self.to_ascii_lowercase()),
        }
    }
}

impl AttrKey for String {
    fn find_in<'m>(&self, attrs: &'m AttrMap) -> Option<Values<'m>> {
        self.as_str().find_in(attrs)
    }
}

/// A window of a sorted search (`Directory::search_sorted`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortedWindow {
    pub entries: Vec<Entry>,
    /// Matches the directory sent (at most `skip + take`).
    pub sent: usize,
    /// Whether more match than it sent.
    pub truncated: bool,
}

/// A server-side sort key (RFC 2891).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub attr: String,
    /// Matching rule to order by, e.g. `caseIgnoreOrderingMatch`.
    pub ordering_rule: String,
    pub reverse: bool,
}

/// One change of an LDAP modify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Set the attribute to exactly these values (none: remove it if present).
    Replace(AttrName, Vec<String>),
    /// Add these values.
    Add(AttrName, Vec<String>),
    /// Remove these values, or the whole attribute when empty.
    Delete(AttrName, Vec<String>),
}

impl Change {
    pub fn attr(&self) -> &AttrName {
        match self {
            Change::Replace(a, _) | Change::Add(a, _) | Change::Delete(a, _) => a,
        }
    }
}

/// What went wrong in the directory, in terms the service can act on. LDAP result codes map
/// to these in one place (`pool::map_result_code`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    #[error("directory operation timed out")]
    Timeout,
    /// A write was sent but its answer was lost (timeout, connection cut): it may or may not
    /// have been applied. Only the directory can tell; the write pipeline reads it to learn.
    #[error("the outcome of a write is unknown: {0}")]
    Unknown(String),
    /// The directory refused the service account's credentials (invalidCredentials): a
    /// configuration fault, retried with backoff, never once per request.
    #[error("the directory refused the service account: {reason}")]
    BindRefused {
        reason: String,
        /// Seconds until the next bind attempt.
        retry_in: u64,
    },
    #[error("no such entry: {0}")]
    NoSuchObject(String),
    #[error("entry already exists: {0}")]
    AlreadyExists(String),
    /// A value to delete is not there (noSuchAttribute).
    #[error("no such value: {0}")]
    NoSuchValue(String),
    /// The directory refused the values (schema, syntax, constraint); the text says why.
    #[error("the directory refused the change: {0}")]
    Rejected(String),
    /// The directory would not return all matches to this account (sizeLimitExceeded on a
    /// paged search).
    #[error("size limit exceeded: {0}")]
    SizeLimit(String),
    /// An assertion (the client's `If-Match`) no longer holds.
    #[error("the entry changed: {0}")]
    PreconditionFailed(String),
    #[error("insufficient access rights: {0}")]
    InsufficientAccess(String),
    /// The directory lacks something the configuration relies on (e.g. the Password Modify
    /// extended operation); the text, written here, names the setting that fixes it.
    #[error("the directory does not support this: {0}")]
    Unsupported(String),
    #[error("LDAP error {code}: {message}")]
    Other { code: u32, message: String },
}

impl DirectoryError {
    /// A short name for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            DirectoryError::Unavailable(_) => "unavailable",
            DirectoryError::Timeout => "timeout",
            DirectoryError::Unknown(_) => "unknown_outcome",
            DirectoryError::BindRefused { .. } => "bind_refused",
            DirectoryError::NoSuchObject(_) => "no_such_object",
            DirectoryError::AlreadyExists(_) => "already_exists",
            DirectoryError::NoSuchValue(_) => "no_such_value",
            DirectoryError::Rejected(_) => "rejected",
            DirectoryError::SizeLimit(_) => "size_limit",
            DirectoryError::PreconditionFailed(_) => "precondition_failed",
            DirectoryError::InsufficientAccess(_) => "insufficient_access",
            DirectoryError::Unsupported(_) => "unsupported",
            DirectoryError::Other { .. } => "other",
        }
    }
}

/// A forward-only walk over a search's matches, page by page (cursor paging): holds a
/// directory connection until dropped.
pub struct Walk(pub(crate) pool::PagedWalk);

/// The connection pool as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStatus {
    pub in_use: usize,
    pub idle: usize,
    pub max: usize,
    pub waiting: usize,
}

pub type DirResult<T> = Result<T, DirectoryError>;

/// The directory dialect, chosen in config (`directory.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirectoryKind {
    Openldap,
    ActiveDirectory,
}

/// How a dialect names entries and tells versions: its id and version attributes, and the
/// names an archived account must give up (AD).
pub trait Naming: Send + Sync {
    fn kind(&self) -> DirectoryKind;

    /// The attribute holding the immutable id (requested on every read).
    fn id_attribute(&self) -> &'static str;

    /// A filter matching the entry with this SCIM id, or `None` when `id` cannot be one of
    /// this directory's ids (then no entry has it).
    fn id_filter(&self, id: &str) -> Option<LdapFilter>;

    /// The operational attribute that changes on every write (`entryCSN`): `meta.version`.
    fn version_attribute(&self) -> &'static str;

    /// The attributes holding an account's domain-wide unique names besides its DN (AD:
    /// `userPrincipalName`, `sAMAccountName`), read before an archive.
    fn unique_name_attributes(&self) -> &'static [&'static str] {
        &[]
    }

    /// The changes that free those names on an account being archived (AD: a tombstone
    /// form), so that a rehire under the same name is not refused; none where a name is only
    /// unique within its container (OpenLDAP's RDN).
    fn free_names(&self, e: &Entry) -> Vec<Change> {
        let _ = e;
        Vec::new()
    }

    /// Entries whose names a delete tombstoned (`free_names`), to find a delete that stopped
    /// before it moved the entry; `None` where a tombstone cannot be told apart.
    fn tombstoned_names_filter(&self) -> Option<LdapFilter> {
        None
    }
}

/// The servers behind a directory: their health, the checks made at start, and the counts
/// tests, benchmarks and metrics read.
#[async_trait]
pub trait Servers: Send + Sync {
    /// LDAP operations sent so far; tests and benchmarks use it to prove request costs.
    fn operations(&self) -> u64;

    /// Binds attempted so far (tests prove they are bounded when the directory refuses).
    fn bind_attempts(&self) -> u64;

    /// The connection pool now, for metrics.
    fn pool_status(&self) -> PoolStatus;

    /// Binds and reads the root DSE: proves the connection settings work.
    async fn ping(&self) -> DirResult<()>;

    /// The directory's servers: which one requests use now and which are down.
    fn estate(&self) -> EstateStatus;

    /// The server this request's operations go to (the one it is pinned to, else the current
    /// one): an id created on one server may not have reached another yet.
    fn request_server(&self) -> Option<String>;

    /// Looks the servers up (DNS discovery) and checks every one now rather than at the
    /// next round of health checks: at start, before the first request.
    async fn check_servers(&self) -> Result<(), String>;

    /// Checks one server (connect, bind, read the root DSE), for `check-config`.
    async fn check_server(&self, url: &str) -> DirResult<()>;

    /// Whether the root DSE lists the extended operation `oid` (`supportedExtension`).
    async fn supports_extension(&self, oid: &str) -> DirResult<bool> {
        let _ = oid;
        Ok(false)
    }

    /// Names of the object classes and attribute types the server's schema defines
    /// (lowercased), for `check-config`.
    async fn schema_names(&self) -> DirResult<(Vec<String>, Vec<String>)>;

    /// The root DSE's `attrs` (names in lowercase), for `init` to tell the
    /// directory's kind and naming context.
    async fn root_dse(&self, attrs: &[&str]) -> DirResult<Vec<(String, Vec<String>)>> {
        let _ = attrs;
        Ok(Vec::new())
    }
}

/// The operations the SCIM service needs from a directory. Implementations decide how ids
/// are stored and looked up and how entries are created in their dialect.
#[async_trait]
pub trait Directory: Send + Sync {
    /// How this dialect names and versions entries.
    fn naming(&self) -> &dyn Naming;

    /// The servers behind this directory.
    fn servers(&self) -> &dyn Servers;

    /// Reads one entry by DN; `Ok(None)` when it does not exist. `attrs` (here and in every
    /// search) names each attribute once, whatever its case (`each_attribute_once` builds
    /// such a list): a name given twice is asked for twice, which costs bytes, not answers.
    async fn read(&self, dn: &Dn, attrs: &[&str]) -> DirResult<Option<Entry>>;

    /// Searches the subtree under `base`. `size_limit` > 0 caps the entries returned; the
    /// flag says whether the cap cut the result short. With 0, the search is paged
    /// (RFC 2696) and returns every match, whatever the server's size limit.
    async fn search(
        &self,
        base: &Dn,
        filter: &LdapFilter,
        attrs: &[&str],
        size_limit: usize,
    ) -> DirResult<(Vec<Entry>, bool)>;

    /// The matches from `skip` to `skip + take` in the order the directory sorts them by
    /// `sort` (RFC 2891): the directory sends at most `skip + take` and only the window is
    /// kept, so memory holds one page whatever `skip`. `Ok(None)` when the directory does not
    /// sort (or not by this key), so the caller sorts itself.
    async fn search_sorted(
        &self,
        base: &Dn,
        filter: &LdapFilter,
        attrs: &[&str],
        skip: usize,
        take: usize,
        sort: &SortKey,
    ) -> DirResult<Option<SortedWindow>>;

    /// Up to `limit` matches (paged past any server size limit) and whether more match: the
    /// search stops at the first one past `limit`, so a filter matching a million entries
    /// costs `limit + 1` of them, never all.
    async fn search_until(
        &self,
        base: &Dn,
        filter: &LdapFilter,
        attrs: &[&str],
        limit: usize,
    ) -> DirResult<(Vec<Entry>, bool)>;

    /// How many entries under `base` match, counted over a paged search that keeps none.
    async fn count(&self, base: &Dn, filter: &LdapFilter) -> DirResult<usize>;

    /// The matches from `skip` to `skip + take` and the total, over a paged search that keeps
    /// only that window (for pages beyond the server's size limit).
    async fn search_window(
        &self,
        base: &Dn,
        filter: &LdapFilter,
        attrs: &[&str],
        skip: usize,
        take: usize,
    ) -> DirResult<(usize, Vec<Entry>)>;

    /// Creates an entry, with its password set as the directory expects when one is given
    /// (an entry whose password is refused is removed again: no account is left without it).
    async fn add(
        &self,
        dn: &Dn,
        attrs: Vec<(String, Vec<String>)>,
        password: Option<&Password>,
    ) -> DirResult<()>;

    /// Sets the password of the entry at `dn` the way the directory expects (OpenLDAP: the
    /// Password Modify extended operation or a hash made here; AD: `unicodePwd`). Every value
    /// the password attribute had is replaced. Passwords are never read back.
    async fn set_password(&self, dn: &Dn, password: &Password) -> DirResult<()>;

    /// One modify, all changes or none. Adding a value that is already there succeeds
    /// (permissive modify); deleting one that is not fails with `NoSuchValue`.
    async fn modify(&self, dn: &Dn, changes: &[Change]) -> DirResult<()> {
        self.modify_if(dn, changes, None).await
    }

    /// `modify`, applied only if the entry matches `assertion` (RFC 4528), else
    /// `PreconditionFailed`: an ETag check with no window between check and write.
    async fn modify_if(
        &self,
        dn: &Dn,
        changes: &[Change],
        assertion: Option<&LdapFilter>,
    ) -> DirResult<()>;

    /// `add`, and the new entry with `read`'s attributes when the directory returns it in the
    /// same operation (RFC 4527 post-read); `None` when it does not (the caller reads back).
    async fn add_read(
        &self,
        dn: &Dn,
        attrs: Vec<(String, Vec<String>)>,
        password: Option<&Password>,
        read: &[&str],
    ) -> DirResult<Option<Entry>> {
        let _ = read;
        self.add(dn, attrs, password).await.map(|()| None)
    }

    /// `modify_if`, and the entry as the modify left it, like `add_read`.
    async fn modify_read(
        &self,
        dn: &Dn,
        changes: &[Change],
        assertion: Option<&LdapFilter>,
        read: &[&str],
    ) -> DirResult<Option<Entry>> {
        let _ = read;
        self.modify_if(dn, changes, assertion).await.map(|()| None)
    }

    /// Opens a walk over the entries under `base` matching `filter`, with `attrs`.
    async fn walk_open(&self, base: &Dn, filter: &LdapFilter, attrs: &[&str]) -> DirResult<Walk> {
        let _ = (base, filter, attrs);
        Err(DirectoryError::Unavailable(
            "this directory cannot walk a search page by page".into(),
        ))
    }

    /// The walk's next page of at most `n` entries, and whether the walk is over.
    async fn walk_next(&self, walk: &mut Walk, n: usize) -> DirResult<(Vec<Entry>, bool)> {
        let _ = (walk, n);
        Ok((Vec::new(), true))
    }

    /// LDAP compare: whether the entry at `dn` has this value.
    async fn contains(&self, dn: &Dn, attr: &str, value: &str) -> DirResult<bool>;

    /// modrdn: a new RDN (old RDN values removed) and optionally a new parent.
    async fn rename(&self, dn: &Dn, new_rdn: &str, new_parent: Option<&Dn>) -> DirResult<()> {
        self.rename_if(dn, new_rdn, new_parent, None).await
    }

    /// `rename`, only if the entry matches `assertion`.
    async fn rename_if(
        &self,
        dn: &Dn,
        new_rdn: &str,
        new_parent: Option<&Dn>,
        assertion: Option<&LdapFilter>,
    ) -> DirResult<()>;

    async fn delete(&self, dn: &Dn) -> DirResult<()> {
        self.delete_if(dn, None).await
    }

    /// `delete`, only if the entry matches `assertion`.
    async fn delete_if(&self, dn: &Dn, assertion: Option<&LdapFilter>) -> DirResult<()>;

    // What `naming()` and `servers()` answer, under the names callers use: the forwarding is
    // written here once rather than in every implementation.

    fn kind(&self) -> DirectoryKind {
        self.naming().kind()
    }

    fn id_attribute(&self) -> &'static str {
        self.naming().id_attribute()
    }

    fn id_filter(&self, id: &str) -> Option<LdapFilter> {
        self.naming().id_filter(id)
    }

    fn version_attribute(&self) -> &'static str {
        self.naming().version_attribute()
    }

    fn unique_name_attributes(&self) -> &'static [&'static str] {
        self.naming().unique_name_attributes()
    }

    fn free_names(&self, e: &Entry) -> Vec<Change> {
        self.naming().free_names(e)
    }

    fn tombstoned_names_filter(&self) -> Option<LdapFilter> {
        self.naming().tombstoned_names_filter()
    }

    fn operations(&self) -> u64 {
        self.servers().operations()
    }

    fn bind_attempts(&self) -> u64 {
        self.servers().bind_attempts()
    }

    fn pool_status(&self) -> PoolStatus {
        self.servers().pool_status()
    }

    async fn ping(&self) -> DirResult<()> {
        self.servers().ping().await
    }

    fn estate(&self) -> EstateStatus {
        self.servers().estate()
    }

    fn request_server(&self) -> Option<String> {
        self.servers().request_server()
    }

    async fn check_servers(&self) -> Result<(), String> {
        self.servers().check_servers().await
    }

    async fn check_server(&self, url: &str) -> DirResult<()> {
        self.servers().check_server(url).await
    }

    async fn supports_extension(&self, oid: &str) -> DirResult<bool> {
        self.servers().supports_extension(oid).await
    }

    async fn schema_names(&self) -> DirResult<(Vec<String>, Vec<String>)> {
        self.servers().schema_names().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_answers_every_spelling_of_an_attribute_name() {
        let mut attrs = AttrMap::default();
        attrs.insert("givenname", ["Barbara"]);
        let e = Entry {
            dn: Dn::new("uid=bjensen,dc=x"),
            id: EntryId::new("1"),
            attrs,
        };
        for spelling in ["givenName", "GIVENNAME", "givenname"] {
            assert_eq!(e.first(spelling), Some("Barbara"), "{spelling}");
            assert_eq!(e.first(&AttrName::from(spelling)), Some("Barbara"));
            assert_eq!(e.first(&spelling.to_owned()), Some("Barbara"));
        }
        let long = "x".repeat(100);
        assert!(
            e.values(long.as_str()).is_empty(),
            "a name past the stack buffer"
        );
        assert!(e.values("sn").is_empty());
    }
}
