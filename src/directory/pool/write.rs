//! Writes: add, modify, modrdn, delete and Password Modify, each sent once, and again on a fresh
//! connection only when it never left.

use std::collections::HashSet;

use ldap3::{LdapError, Mod};

use crate::directory::{Change, DirResult, DirectoryError, LdapFilter};

use super::controls::*;
use super::entry::RawEntry;
use super::LdapPool;

/// A write `LdapPool::write` sends (and may send twice).
#[derive(Clone, Copy)]
enum Write<'a> {
    Add(&'a [(String, HashSet<String>)]),
    Modify(&'a [Mod<Vec<u8>>]),
    Rename {
        new_rdn: &'a str,
        new_parent: Option<&'a str>,
    },
    Delete,
    /// The Password Modify extended operation (RFC 3062).
    Password(&'a crate::directory::Password),
}

/// Whether a write failed before it left: the pooled connection was already dead (the
/// server closed it while idle). Nothing reached the directory, so a fresh connection may
/// send it again.
fn unsent<T>(res: &Result<T, LdapError>) -> bool {
    matches!(res, Err(LdapError::OpSend { .. }))
}

impl LdapPool {
    pub async fn add(&self, dn: &str, attrs: Vec<(String, Vec<String>)>) -> DirResult<()> {
        self.add_reading(dn, attrs, None).await.map(|_| ())
    }

    /// `add`; with `read`, the new entry's attributes come back in the same operation
    /// (RFC 4527 post-read), so no search follows it.
    pub async fn add_reading(
        &self,
        dn: &str,
        attrs: Vec<(String, Vec<String>)>,
        read: Option<&[&str]>,
    ) -> DirResult<Option<RawEntry>> {
        self.observed("add", async {
            let controls: Vec<_> = read.map(post_read_control).into_iter().collect();
            let attrs: Vec<(String, HashSet<String>)> = attrs
                .into_iter()
                .map(|(a, v)| (a, v.into_iter().collect()))
                .collect();
            self.write(dn, &controls, Write::Add(&attrs))
                .await
                .map(post_read_entry)
        })
        .await
    }

    pub async fn modify(
        &self,
        dn: &str,
        changes: &[Change],
        assertion: Option<&LdapFilter>,
    ) -> DirResult<()> {
        self.modify_mods(dn, to_mods(changes), assertion).await
    }

    /// A modify of ready-made mods (binary values such as AD's unicodePwd).
    pub async fn modify_mods(
        &self,
        dn: &str,
        mods: Vec<Mod<Vec<u8>>>,
        assertion: Option<&LdapFilter>,
    ) -> DirResult<()> {
        self.modify_reading(dn, mods, assertion, None)
            .await
            .map(|_| ())
    }

    /// `modify_mods`; with `read`, the entry as the modify left it comes back in the same
    /// operation (RFC 4527 post-read), so no search follows it. No mods: nothing is sent.
    pub async fn modify_reading(
        &self,
        dn: &str,
        mods: Vec<Mod<Vec<u8>>>,
        assertion: Option<&LdapFilter>,
        read: Option<&[&str]>,
    ) -> DirResult<Option<RawEntry>> {
        self.observed("modify", async {
            if mods.is_empty() {
                return Ok(None);
            }
            let mut controls = vec![permissive_modify()];
            controls.extend(assertion_control(assertion));
            controls.extend(read.map(post_read_control));
            self.write(dn, &controls, Write::Modify(&mods))
                .await
                .map(post_read_entry)
        })
        .await
    }

    /// The LDAP Password Modify extended operation (RFC 3062) for the entry at `dn`: the server
    /// hashes the new password with its own scheme and replaces every value the entry had.
    pub async fn password_modify(
        &self,
        dn: &str,
        password: &crate::directory::Password,
    ) -> DirResult<()> {
        self.observed("password_modify", async {
            let res = self.write(dn, &[], Write::Password(password)).await;
            match res {
                // slapd: "unsupported extended operation" (protocolError)
                Err(DirectoryError::Other { code: 2, .. }) => Err(DirectoryError::Unsupported(
                    "the directory does not offer the Password Modify extended operation (RFC 3062): set users.password_hash = \"ssha512\" or \"argon2\", whichever scheme the directory verifies".into(),
                )),
                other => other.map(|_| ()),
            }
        })
        .await
    }

    pub async fn rename(
        &self,
        dn: &str,
        new_rdn: &str,
        new_parent: Option<&str>,
        assertion: Option<&LdapFilter>,
    ) -> DirResult<()> {
        self.observed("rename", async {
            let controls = assertion_control(assertion);
            self.write(
                dn,
                &controls,
                Write::Rename {
                    new_rdn,
                    new_parent,
                },
            )
            .await
            .map(|_| ())
        })
        .await
    }

    pub async fn delete(&self, dn: &str, assertion: Option<&LdapFilter>) -> DirResult<()> {
        self.observed("delete", async {
            let controls = assertion_control(assertion);
            self.write(dn, &controls, Write::Delete).await.map(|_| ())
        })
        .await
    }

    /// Sends one write with `send` and reads its result (`finish`). A write that never left
    /// (the pooled connection was dead), or that the server refused to serve while this
    /// request had written nothing to it (`goes_elsewhere`), is sent once more on a fresh
    /// connection.
    async fn write(
        &self,
        dn: &str,
        controls: &[ldap3::controls::RawControl],
        op: Write<'_>,
    ) -> DirResult<ldap3::LdapResult> {
        for retry in [true, false] {
            let mut conn = self.conn().await?;
            self.count();
            let ldap = conn.with_timeout(self.op_timeout());
            // boxed, as a search is (`search::whole`): ldap3's operation state would make every
            // write's boxed future too large for malloc's per-thread cache
            let res = Box::pin(async {
                match op {
                    Write::Add(attrs) => {
                        ldap.with_controls(controls.to_vec())
                            .add(dn, attrs.to_vec())
                            .await
                    }
                    Write::Modify(mods) => {
                        ldap.with_controls(controls.to_vec())
                            .modify(dn, mods.to_vec())
                            .await
                    }
                    Write::Rename {
                        new_rdn,
                        new_parent,
                    } => {
                        ldap.with_controls(controls.to_vec())
                            .modifydn(dn, new_rdn, true, new_parent)
                            .await
                    }
                    Write::Delete => ldap.with_controls(controls.to_vec()).delete(dn).await,
                    Write::Password(password) => ldap
                        .extended(ldap3::exop::PasswordModify {
                            user_id: Some(dn),
                            old_pass: None,
                            new_pass: Some(password.expose()),
                        })
                        .await
                        .map(|r| r.1),
                }
            })
            .await;
            if retry && (unsent(&res) || self.goes_elsewhere(&conn, &res)) {
                conn.discard();
                continue;
            }
            return self.finish(conn, res, dn);
        }
        Err(DirectoryError::Unavailable(
            "no live LDAP connection".into(),
        ))
    }
}
