//! Passwords on their way to the directory. A SCIM `password` is write-only (RFC 7643 §4.1.1,
//! `returned: never`): it is never read from the directory, compared, logged or kept. It
//! travels as `Password`, which prints as `******` and wipes its memory when dropped, and
//! reaches the directory the way the directory expects: OpenLDAP's Password Modify extended
//! operation (RFC 3062, so slapd hashes it with its own `olcPasswordHash`) or a hash made here
//! for servers without it; Active Directory's `unicodePwd`.

use std::fmt;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha512};
use zeroize::Zeroize;

/// A password in clear, on its way to the directory.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(clear: impl Into<String>) -> Password {
        Password(clear.into())
    }

    /// The clear text, for the one call that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(******)")
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// How an OpenLDAP-dialect directory gets a new password (`users.password_hash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PasswordStorage {
    /// The LDAP Password Modify extended operation (RFC 3062): the server hashes it with its
    /// own scheme (slapd: `olcPasswordHash`, `{SSHA}` unless set).
    #[default]
    Server,
    /// `{SSHA512}` made here (slapd verifies it with the `pw-sha2` module).
    Ssha512,
    /// `{ARGON2}` (argon2id) made here (slapd verifies it with the `argon2` module).
    Argon2,
}

impl PasswordStorage {
    /// The value to store for `password`, for schemes the bridge hashes; `None` for `Server`.
    /// Every call salts afresh, so the stored value never equals what was sent nor an
    /// earlier hash of it.
    pub fn hash(self, password: &Password) -> Result<Option<String>, String> {
        match self {
            PasswordStorage::Server => Ok(None),
            PasswordStorage::Ssha512 => Ok(Some(ssha512(password.expose()))),
            PasswordStorage::Argon2 => argon2id(password.expose()).map(Some),
        }
    }
}

/// `{SSHA512}` + base64(SHA-512(password ‖ salt) ‖ salt), with an 8-byte random salt: the
/// format of OpenLDAP's `pw-sha2` module.
fn ssha512(password: &str) -> String {
    let mut salt = [0u8; 8];
    rand::rng().fill_bytes(&mut salt);
    let mut h = Sha512::new();
    h.update(password.as_bytes());
    h.update(salt);
    let mut raw = h.finalize().to_vec();
    raw.extend_from_slice(&salt);
    format!(
        "{{SSHA512}}{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// `{ARGON2}` + the PHC string of argon2id with the crate's default (OWASP) parameters: the
/// format of OpenLDAP's `argon2` module.
fn argon2id(password: &str) -> Result<String, String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| format!("{{ARGON2}}{h}"))
        .map_err(|e| format!("argon2: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_prints() {
        let p = Password::new("Winter2025!");
        assert_eq!(format!("{p:?}"), "Password(******)");
        assert_eq!(format!("{:?}", Some(p)), "Some(Password(******))");
    }

    #[test]
    fn ssha512_is_salted_sha512_of_password_and_salt() {
        let p = Password::new("Winter2025!");
        let stored = PasswordStorage::Ssha512.hash(&p).unwrap().unwrap();
        let b64 = stored.strip_prefix("{SSHA512}").unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(raw.len(), 64 + 8);
        let (digest, salt) = raw.split_at(64);
        let mut h = Sha512::new();
        h.update(b"Winter2025!");
        h.update(salt);
        assert_eq!(digest, h.finalize().as_slice());
        let again = PasswordStorage::Ssha512.hash(&p).unwrap().unwrap();
        assert_ne!(stored, again, "salted afresh every time");
        assert!(!stored.contains("Winter2025!"));
    }

    #[test]
    fn argon2_is_a_verifiable_argon2id_phc_string() {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let stored = PasswordStorage::Argon2
            .hash(&Password::new("Winter2025!"))
            .unwrap()
            .unwrap();
        let phc = stored.strip_prefix("{ARGON2}").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        let parsed = PasswordHash::new(phc).unwrap();
        assert!(argon2::Argon2::default()
            .verify_password(b"Winter2025!", &parsed)
            .is_ok());
        assert!(argon2::Argon2::default()
            .verify_password(b"winter2025!", &parsed)
            .is_err());
    }

    #[test]
    fn the_server_hashes_by_default() {
        assert_eq!(PasswordStorage::default(), PasswordStorage::Server);
        assert_eq!(
            PasswordStorage::Server.hash(&Password::new("x")).unwrap(),
            None
        );
    }
}
