//! One Samba AD DC per test binary (Samba binds 127.0.0.1:389/636, so one per machine),
//! provisioned on first use and stopped when the test process ends; or a pair of DCs of one
//! domain replicating with each other on 127.0.0.2 and 127.0.0.3 (`SambaPair`).

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
    /// How tests reach it (LDAPS).
    pub url: String,
    ca: PathBuf,
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
            url: "ldaps://127.0.0.1:636".into(),
            ca: dir.join("dc/tls/ca.pem"),
            dir: dir.join("dc"),
        }
    })
}

/// Two domain controllers of EXAMPLE.TEST replicating with each other: DC1 on 127.0.0.2
/// (dc1.example.test), DC2 joined to it on 127.0.0.3, both answering the domain's SRV
/// records on their DNS port 53 (`deploy/samba/throwaway-samba-pair.sh`). Stopped when
/// dropped.
pub struct SambaPair {
    pub dir: tempfile::TempDir,
    pub dcs: [Samba; 2],
}

impl SambaPair {
    pub fn start() -> SambaPair {
        assert!(
            Path::new("/usr/sbin/samba").exists(),
            "Samba's AD DC is not installed: run `bash scripts/test.sh` as root"
        );
        // the single DC of another test binary (on 127.0.0.1) is stopped when its process
        // ends: a DC on `lo` must not run beside these
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", 389)).is_err() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let dir = tempfile::Builder::new()
            .prefix("scim2ldap-samba-pair")
            .tempdir()
            .expect("temp dir");
        let out = Command::new(repo().join("deploy/samba/throwaway-samba-pair.sh"))
            .arg(dir.path())
            .env("SAMBA_ADMINPASS", AD_ADMIN_PW)
            .env("SAMBA_WATCH_PID", std::process::id().to_string())
            .output()
            .expect("run throwaway-samba-pair.sh");
        let pair = SambaPair {
            dcs: [1, 2].map(|n| Samba {
                dir: dir.path().join(format!("dc{n}")),
                url: format!("ldaps://127.0.0.{}:636", n + 1),
                ca: dir.path().join("tls/ca.pem"),
            }),
            dir,
        };
        assert!(
            out.status.success(),
            "the Samba pair did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pair
    }

    fn pid(&self, n: usize) -> Option<i32> {
        std::fs::read_to_string(self.dcs[n - 1].dir.join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Kills DC `n` (1 or 2) and every process of it with SIGKILL: a crash, a power cut.
    pub fn kill(&self, n: usize) {
        if let Some(pid) = self.pid(n) {
            let _ = Command::new("kill")
                .args(["-9", "--", &format!("-{pid}")])
                .status();
        }
        let port = format!("127.0.0.{}:389", n + 1);
        for _ in 0..100 {
            if std::net::TcpStream::connect(&port).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("DC{n} still answers after SIGKILL");
    }

    /// Starts DC `n` again on its data.
    pub fn start_dc(&self, n: usize) {
        let out = Command::new(repo().join("deploy/samba/throwaway-samba-pair.sh"))
            .arg(self.dir.path())
            .args(["start", &n.to_string()])
            .output()
            .expect("run throwaway-samba-pair.sh");
        assert!(
            out.status.success(),
            "DC{n} did not start again: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for SambaPair {
    fn drop(&mut self) {
        for n in [1, 2] {
            if let Some(pid) = self.pid(n) {
                let _ = Command::new("kill")
                    .args(["-9", "--", &format!("-{pid}")])
                    .status();
            }
        }
    }
}

impl Samba {
    pub fn ca_file(&self) -> PathBuf {
        self.ca.clone()
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
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url)
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
            .args(["-x", "-H", &self.url, "-D", who, "-w", password])
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
