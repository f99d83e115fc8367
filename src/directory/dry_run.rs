//! A directory that reads from the real one and writes nothing: `scim2ldap explain` runs a
//! request against it and prints what was sent. Writes are recorded and applied to an
//! overlay instead, so that the reads a request makes after its writes (the answer's read
//! back, the check that members were added) see them, and the request runs to its end as it
//! would for real. Values of write-only attributes (passwords) are masked in the record.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::filter::split_first_rdn;
use super::{
    Change, DirResult, Directory, DirectoryError, Dn, Entry, EntryId, LdapFilter, Naming, Password,
    Servers, SortKey, SortedWindow,
};

/// One operation the request made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    Read {
        dn: String,
    },
    Search {
        base: String,
        filter: String,
    },
    Compare {
        dn: String,
        attr: String,
        value: String,
    },
    Add {
        dn: String,
        attrs: Vec<(String, Vec<String>)>,
        /// Whether a password is set with it (its value is never recorded).
        password: bool,
    },
    /// A password set as the directory expects (never its value).
    SetPassword {
        dn: String,
    },
    Modify {
        dn: String,
        changes: Vec<Change>,
        assertion: Option<String>,
    },
    Rename {
        dn: String,
        new_rdn: String,
        new_parent: Option<String>,
    },
    Delete {
        dn: String,
    },
}

impl Recorded {
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Recorded::Add { .. }
                | Recorded::SetPassword { .. }
                | Recorded::Modify { .. }
                | Recorded::Rename { .. }
                | Recorded::Delete { .. }
        )
    }
}

/// Attributes whose values are never shown.
fn secret(attr: &str) -> bool {
    ["userpassword", "unicodepwd"].contains(&attr.to_ascii_lowercase().as_str())
}

fn shown(attr: &str, values: &[String]) -> String {
    if secret(attr) {
        return "******".to_owned();
    }
    values
        .iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Recorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recorded::Read { dn } => write!(f, "read    {dn}"),
            Recorded::Search { base, filter } => write!(f, "search  {base}  {filter}"),
            Recorded::Compare { dn, attr, value } => {
                write!(
                    f,
                    "compare {dn}  {attr} = {}",
                    shown(attr, std::slice::from_ref(value))
                )
            }
            Recorded::Add {
                dn,
                attrs,
                password,
            } => {
                write!(f, "add     {dn}")?;
                for (a, v) in attrs {
                    write!(f, "\n          {a}: {}", shown(a, v))?;
                }
                if *password {
                    write!(
                        f,
                        "\n          (password: ******, set as the directory expects)"
                    )?;
                }
                Ok(())
            }
            Recorded::SetPassword { dn } => {
                write!(f, "passwd  {dn}  ****** (set as the directory expects)")
            }
            Recorded::Modify {
                dn,
                changes,
                assertion,
            } => {
                write!(f, "modify  {dn}")?;
                if let Some(a) = assertion {
                    write!(f, "  (only if {a})")?;
                }
                for c in changes {
                    let (verb, a, v) = match c {
                        Change::Replace(a, v) => ("replace", a, v),
                        Change::Add(a, v) => ("add", a, v),
                        Change::Delete(a, v) => ("delete", a, v),
                    };
                    write!(f, "\n          {verb} {a}: {}", shown(a, v))?;
                }
                Ok(())
            }
            Recorded::Rename {
                dn,
                new_rdn,
                new_parent,
            } => match new_parent {
                Some(p) => write!(f, "modrdn  {dn}  ->  {new_rdn},{p}"),
                None => write!(f, "modrdn  {dn}  ->  {new_rdn}"),
            },
            Recorded::Delete { dn } => write!(f, "delete  {dn}"),
        }
    }
}

/// Entries as the writes so far left them: `None` for deleted.
type Overlay = HashMap<Dn, Option<Entry>>;

pub struct DryRun {
    inner: Arc<dyn Directory>,
    log: Mutex<Vec<Recorded>>,
    overlay: Mutex<Overlay>,
}

impl DryRun {
    pub fn new(inner: Arc<dyn Directory>) -> DryRun {
        DryRun {
            inner,
            log: Mutex::new(Vec::new()),
            overlay: Mutex::new(HashMap::new()),
        }
    }

    /// What the requests run so far did, in order.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn record(&self, r: Recorded) {
        if let Ok(mut l) = self.log.lock() {
            l.push(r);
        }
    }

    fn overlaid(&self, dn: &Dn) -> Option<Option<Entry>> {
        self.overlay.lock().ok().and_then(|o| o.get(dn).cloned())
    }

    fn set(&self, dn: Dn, entry: Option<Entry>) {
        if let Ok(mut o) = self.overlay.lock() {
            o.insert(dn, entry);
        }
    }

    /// The entry at `dn` as the writes so far left it, with all its attributes.
    async fn current(&self, dn: &Dn) -> DirResult<Entry> {
        match self.overlaid(dn) {
            Some(Some(e)) => Ok(e),
            Some(None) => Err(DirectoryError::NoSuchObject(dn.to_string())),
            None => self
                .inner
                .read(dn, &["*", self.inner.version_attribute()])
                .await?
                .ok_or_else(|| DirectoryError::NoSuchObject(dn.to_string())),
        }
    }

    /// Entries found in the real directory, as the writes so far left them.
    fn overlay_all(&self, entries: Vec<Entry>) -> Vec<Entry> {
        entries
            .into_iter()
            .filter_map(|e| match self.overlaid(&e.dn) {
                Some(changed) => changed,
                None => Some(e),
            })
            .collect()
    }
}

fn apply(entry: &mut Entry, changes: &[Change]) {
    for c in changes {
        let key = c.attr().to_ascii_lowercase();
        let mut values = entry.attrs.remove(&key).unwrap_or_default();
        match c {
            Change::Replace(_, v) => values.clone_from(v),
            Change::Add(_, v) => {
                for x in v {
                    if !values.contains(x) {
                        values.push(x.clone());
                    }
                }
            }
            Change::Delete(_, v) if v.is_empty() => values.clear(),
            Change::Delete(_, v) => values.retain(|x| !v.contains(x)),
        }
        if !values.is_empty() {
            entry.attrs.push(&key, values);
        }
    }
}

#[async_trait]
impl Directory for DryRun {
    fn naming(&self) -> &dyn Naming {
        self.inner.naming()
    }

    fn servers(&self) -> &dyn Servers {
        self.inner.servers()
    }

    async fn read(&self, dn: &Dn, attrs: &[&str]) -> DirResult<Option<Entry>> {
        self.record(Recorded::Read { dn: dn.to_string() });
        match self.overlaid(&dn.clone()) {
            Some(e) => Ok(e),
            None => self.inner.read(dn, attrs).await,
        }
    }

    async fn search(
        &self,
        base: &Dn,
        filter: &LdapFilter,
        attrs: &[&str],
        size_limit: usize,
    ) -> DirResult<(Vec<Entry>, bool)> {
        self.record(Recorded::Search {
            base: base.to_string(),
            filter: filter.to_string(),
        });
        let (entries, cut) = self.inner.search(base, filter, attrs, size_limit).await?;
        Ok((self.overlay_all(entries), cut))
    }

    async fn search_sorted(
        &self,
        base: &Dn,
        filter: &LdapFilter,
        attrs: &[&str],
        skip: usize,
        take: usize,
        sort: &SortKey,
    ) -> DirResult<Option<SortedWindow>> {
        self.record(Recorded::Search {
            base: base.to_string(),
            filter: format!("{filter} (sorted by {})", sort.attr),
        });
        Ok(self
            .inner
            .search_sorted(base, filter, attrs, skip, take, sort)
            .await?
            .map(|w| SortedWindow {
                entries: self.overlay_all(w.entries),
                ..w
            }))
    }

    async fn search_until(
        &self,
        base: &Dn,
        filter: &LdapFilter,
        attrs: &[&str],
        limit: usize,
    ) -> DirResult<(Vec<Entry>, bool)> {
        self.record(Recorded::Search {
            base: base.to_string(),
            filter: format!("{filter} (at most {limit})"),
        });
        let (entries, more) = self.inner.search_until(base, filter, attrs, limit).await?;
        Ok((self.overlay_all(entries), more))
    }

    async fn count(&self, base: &Dn, filter: &LdapFilter) -> DirResult<usize> {
        self.record(Recorded::Search {
            base: base.to_string(),
            filter: format!("{filter} (counted)"),
        });
        self.inner.count(base, filter).await
    }

    async fn search_window(
        &self,
        base: &Dn,
        filter: &LdapFilter,
        attrs: &[&str],
        skip: usize,
        take: usize,
    ) -> DirResult<(usize, Vec<Entry>)> {
        self.record(Recorded::Search {
            base: base.to_string(),
            filter: format!("{filter} (entries {} to {})", skip + 1, skip + take),
        });
        let (total, entries) = self
            .inner
            .search_window(base, filter, attrs, skip, take)
            .await?;
        Ok((total, self.overlay_all(entries)))
    }

    async fn add(
        &self,
        dn: &Dn,
        attrs: Vec<(String, Vec<String>)>,
        password: Option<&Password>,
    ) -> DirResult<()> {
        let at = dn.clone();
        let exists = match self.overlaid(&at) {
            Some(e) => e.is_some(),
            None => self.inner.read(dn, &["1.1"]).await?.is_some(),
        };
        if exists {
            return Err(DirectoryError::AlreadyExists(dn.to_string()));
        }
        self.record(Recorded::Add {
            dn: dn.to_string(),
            attrs: attrs.clone(),
            password: password.is_some(),
        });
        let mut entry = Entry {
            dn: at.clone(),
            // what the directory would assign; shown as such in the answer
            id: EntryId::new("00000000-0000-0000-0000-000000000000"),
            attrs: Default::default(),
        };
        let changes: Vec<Change> = attrs
            .into_iter()
            .map(|(a, v)| Change::Replace(a.into(), v))
            .collect();
        apply(&mut entry, &changes);
        self.set(at, Some(entry));
        Ok(())
    }

    async fn set_password(&self, dn: &Dn, _password: &Password) -> DirResult<()> {
        self.current(&dn.clone()).await?;
        self.record(Recorded::SetPassword { dn: dn.to_string() });
        Ok(())
    }

    async fn modify_if(
        &self,
        dn: &Dn,
        changes: &[Change],
        assertion: Option<&LdapFilter>,
    ) -> DirResult<()> {
        let at = dn.clone();
        let mut entry = self.current(&at).await?;
        self.record(Recorded::Modify {
            dn: dn.to_string(),
            changes: changes.to_vec(),
            assertion: assertion.map(|a| a.to_string()),
        });
        apply(&mut entry, changes);
        self.set(at, Some(entry));
        Ok(())
    }

    async fn contains(&self, dn: &Dn, attr: &str, value: &str) -> DirResult<bool> {
        self.record(Recorded::Compare {
            dn: dn.to_string(),
            attr: attr.to_owned(),
            value: value.to_owned(),
        });
        match self.overlaid(&dn.clone()) {
            Some(Some(e)) => Ok(e.values(attr).iter().any(|v| v.eq_ignore_ascii_case(value))),
            Some(None) => Err(DirectoryError::NoSuchObject(dn.to_string())),
            None => self.inner.contains(dn, attr, value).await,
        }
    }

    async fn rename_if(
        &self,
        dn: &Dn,
        new_rdn: &str,
        new_parent: Option<&Dn>,
        _assertion: Option<&LdapFilter>,
    ) -> DirResult<()> {
        let mut entry = self.current(dn).await?;
        self.record(Recorded::Rename {
            dn: dn.to_string(),
            new_rdn: new_rdn.to_owned(),
            new_parent: new_parent.map(Dn::to_string),
        });
        let (old_rdn, old_parent) = split_first_rdn(dn);
        let to = Dn::new(format!(
            "{new_rdn},{}",
            new_parent.map_or(old_parent.as_str(), Dn::as_str)
        ));
        // the RDN's attribute takes the new value, as with deleteoldrdn
        let rdn_value = |rdn: &str| {
            rdn.split_once('=')
                .map(|(a, v)| (a.trim().to_owned(), v.trim().to_owned()))
        };
        if let (Some((old_attr, old_value)), Some((attr, value))) =
            (rdn_value(&old_rdn), rdn_value(new_rdn))
        {
            apply(
                &mut entry,
                &[
                    Change::Delete(old_attr.into(), vec![old_value]),
                    Change::Add(attr.into(), vec![value]),
                ],
            );
        }
        entry.dn = to.clone();
        self.set(dn.clone(), None);
        self.set(to, Some(entry));
        Ok(())
    }

    async fn delete_if(&self, dn: &Dn, _assertion: Option<&LdapFilter>) -> DirResult<()> {
        let at = dn.clone();
        self.current(&at).await?;
        self.record(Recorded::Delete { dn: dn.to_string() });
        self.set(at, None);
        Ok(())
    }
}
