//! One Samba AD DC per test binary (Samba binds 127.0.0.1:389/636, so one per machine),
//! provisioned on first use and stopped when the test process ends.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ldap3::{LdapConnAsync, LdapConnSettings};

use super::repo;

pub const AD_ADMIN_DN: &str = "CN=Administrator,CN=Users,DC=example,DC=test";
pub const AD_ADMIN_PW: &str = "Adm1n-Passw0rd!";
pub const AD_USERS: &str = "OU=SCIM Users,DC=example,DC=test";
pub const AD_ARCHIVE: &str = "OU=SCIM Archive,DC=example,DC=test";
pub const AD_GROUPS: &str = "OU=SCIM Groups,DC=example,DC=test";

pub struct Samba {
    pub dir: PathBuf,
}

static SAMBA: OnceLock<Samba> = OnceLock::new();

pub fn samba() -> &'static Samba {
    SAMBA.get_or_init(|| {
        assert!(
            Path::new("/usr/sbin/samba").exists(),
            "Samba's AD DC is not installed. Install it with \
             `apt-get install -y samba samba-ad-dc ldb-tools winbind krb5-user` \
             (or run `bash scripts/test.sh` as root, which installs everything the tests need)."
        );
        let dir = tempfile::Builder::new()
            .prefix("scim2ldap-samba")
            .tempdir()
            .expect("temp dir")
            .keep();
        let out = Command::new(repo().join("deploy/samba/throwaway-samba.sh"))
            .arg(dir.join("dc"))
            .env("SAMBA_ADMINPASS", AD_ADMIN_PW)
            .env("SAMBA_WATCH_PID", std::process::id().to_string())
            .env("SAMBA_CLEANUP", "1")
            .output()
            .expect("run throwaway-samba.sh");
        assert!(
            out.status.success(),
            "Samba did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Samba {
            dir: dir.join("dc"),
        }
    })
}

impl Samba {
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    /// A connection over LDAPS bound as `dn`.
    pub async fn bind(&self, dn: &str, password: &str) -> Result<ldap3::Ldap, String> {
        let pem = std::fs::read(self.ca_file()).map_err(|e| e.to_string())?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots
                .add(cert.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let settings = LdapConnSettings::new().set_config(std::sync::Arc::new(tls));
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, "ldaps://127.0.0.1:636")
            .await
            .map_err(|e| e.to_string())?;
        ldap3::drive!(conn);
        let r = ldap
            .simple_bind(dn, password)
            .await
            .map_err(|e| e.to_string())?;
        if r.rc != 0 {
            return Err(format!("bind failed: {} {}", r.rc, r.text));
        }
        Ok(ldap)
    }

    /// Whether `ldapsearch -x -D WHO -w PASSWORD` over LDAPS (OpenLDAP's client, as an
    /// application logs in) binds.
    pub fn ldapsearch_binds(&self, who: &str, password: &str) -> bool {
        Command::new("ldapsearch")
            .env("LDAPTLS_CACERT", self.ca_file())
            .args([
                "-x",
                "-H",
                "ldaps://127.0.0.1:636",
                "-D",
                who,
                "-w",
                password,
            ])
            .args(["-b", "", "-s", "base", "1.1"])
            .output()
            .expect("run ldapsearch (Debian package ldap-utils)")
            .status
            .success()
    }

    pub async fn admin(&self) -> ldap3::Ldap {
        self.bind(AD_ADMIN_DN, AD_ADMIN_PW)
            .await
            .expect("admin bind")
    }

    /// The config.example.ad.toml, pointed at this DC, with `extra` TOML appended.
    pub fn config(&self, replace: &[(&str, &str)], extra: &str) -> String {
        let mut cfg = std::fs::read_to_string(repo().join("config.example.ad.toml")).unwrap();
        cfg = cfg
            .replace(
                "bind_dn = \"CN=svc-scim2ldap,OU=Service Accounts,DC=example,DC=test\"",
                &format!("bind_dn = \"{AD_ADMIN_DN}\""),
            )
            .replace(
                "bind_password_file = \"/etc/scim2ldap/bind_password\"",
                &format!("bind_password = \"{AD_ADMIN_PW}\""),
            )
            // the password is given in the config here, not as a systemd credential
            .replace("bind_password_credential = \"bind_password\"", "")
            .replace(
                "ca_file = \"/etc/scim2ldap/ad-ca.pem\"",
                &format!("ca_file = \"{}\"", self.ca_file().display()),
            );
        for (from, to) in replace {
            assert!(
                cfg.contains(from),
                "config.example.ad.toml no longer contains {from:?}"
            );
            cfg = cfg.replace(from, to);
        }
        let hash = hex::encode(scim2ldap::auth::hash_token(super::TOKEN));
        cfg.push_str(&format!(
            "\n[tenants.default.tokens.test]\nsha256 = \"{hash}\"\n"
        ));
        cfg.push_str(extra);
        cfg
    }
}

/// Makes the OUs config.example.ad.toml expects (idempotent).
pub async fn ensure_ous(ldap: &mut ldap3::Ldap) {
    for ou in [AD_USERS, AD_ARCHIVE, AD_GROUPS] {
        let name = ou.split(',').next().unwrap().trim_start_matches("OU=");
        let r = ldap
            .add(
                ou,
                vec![
                    (
                        "objectClass",
                        std::collections::HashSet::from(["organizationalUnit"]),
                    ),
                    ("ou", std::collections::HashSet::from([name])),
                ],
            )
            .await
            .unwrap();
        assert!(
            r.rc == 0 || r.rc == 68,
            "cannot add {ou}: {} {}",
            r.rc,
            r.text
        );
    }
}
