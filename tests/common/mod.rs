//! Test harness: a real OpenLDAP (`slapd` from Debian) per test in a temp dir on a free
//! loopback port, and the bridge serving real HTTP on another, built from
//! `config.example.toml`.
#![allow(dead_code)]

pub mod load;
pub mod proxy;
pub mod samba;

use std::collections::{HashMap, HashSet};
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ldap3::{LdapConnAsync, Mod, Scope, SearchEntry};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;

use scim2ldap::config::load_raw;
use scim2ldap::directory::Directory;

pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PW: &str = "admin-test-pw";
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";
pub const ARCHIVE: &str = "ou=archive,dc=example,dc=org";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// How `Slapd::launch_opts` starts a slapd.
#[derive(Default)]
struct Launch<'a> {
    tls: bool,
    extra_ldif: Option<&'a Path>,
    stats: bool,
    memberof: bool,
    port: Option<u16>,
    server_id: Option<u8>,
    peer: Option<String>,
    seed: Option<&'a Path>,
    /// A read-only replica of `peer` rather than a second provider.
    consumer: bool,
}

/// A running slapd; killed on drop.
pub struct Slapd {
    pub dir: TempDir,
    pub port: u16,
    /// The ldaps:// port, when started with TLS.
    pub tls_port: Option<u16>,
    pid: u32,
}

impl Slapd {
    pub fn start() -> Slapd {
        Self::launch(false, None, false)
    }

    /// Without the memberOf overlay, as many directories run: a rename leaves groups listing
    /// the old DN until the bridge moves them.
    pub fn start_without_memberof() -> Slapd {
        Self::launch_with(false, None, false, false)
    }

    /// With the entries of `ldif` loaded (offline, by slapadd) besides the example tree.
    pub fn start_with_ldif(ldif: &Path) -> Slapd {
        Self::launch(false, Some(ldif), false)
    }

    /// With a throwaway CA (`ca_file()`), StartTLS on `port` and ldaps:// on `tls_port`.
    pub fn start_tls() -> Slapd {
        Self::launch(true, None, false)
    }

    /// Logging every operation it receives (`stats_log`): what the bridge asks for.
    pub fn start_logging() -> Slapd {
        Self::launch(false, None, true)
    }

    /// `start_with_ldif`, logging every operation.
    pub fn start_with_ldif_logging(ldif: &Path) -> Slapd {
        Self::launch(false, Some(ldif), true)
    }

    /// slapd's "stats" log so far (`start_logging` only).
    pub fn stats_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stats.log")).unwrap_or_default()
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("tls/ca.pem")
    }

    fn launch(tls: bool, extra_ldif: Option<&Path>, stats: bool) -> Slapd {
        Self::launch_with(tls, extra_ldif, stats, true)
    }

    fn launch_with(tls: bool, extra_ldif: Option<&Path>, stats: bool, memberof: bool) -> Slapd {
        Self::launch_opts(Launch {
            tls,
            extra_ldif,
            stats,
            memberof,
            ..Launch::default()
        })
    }

    /// Two providers of one multi-provider pair (syncprov and syncrepl both ways, server ids
    /// 1 and 2) holding the example tree with the same entryUUIDs: what one is written, the
    /// other has within a fraction of a second.
    pub fn start_pair() -> (Slapd, Slapd) {
        let p1 = free_port();
        Self::start_pair_on(p1, &format!("ldap://127.0.0.1:{p1}/"))
    }

    /// `start_pair` with the first on port `p1`, and the second receiving its changes from
    /// `second_peer` (a fault proxy in front of the first, to cut replication).
    pub fn start_pair_on(p1: u16, second_peer: &str) -> (Slapd, Slapd) {
        Self::start_two(p1, second_peer, false)
    }

    /// A provider and a read-only replica of it (syncrepl without multi-provider): the
    /// replica answers reads and refuses writes ("shadow context").
    pub fn start_provider_and_replica() -> (Slapd, Slapd) {
        let p1 = free_port();
        Self::start_two(p1, &format!("ldap://127.0.0.1:{p1}/"), true)
    }

    fn start_two(p1: u16, second_peer: &str, consumer: bool) -> (Slapd, Slapd) {
        let p2 = free_port();
        let first = Self::launch_opts(Launch {
            port: Some(p1),
            server_id: Some(1),
            peer: Some(format!("ldap://127.0.0.1:{p2}/")),
            memberof: true,
            ..Launch::default()
        });
        let seed = first.dir.path().join("seed.ldif");
        let out = Command::new("/usr/sbin/slapcat")
            .arg("-F")
            .arg(first.dir.path().join("slapd.d"))
            .args(["-n", "1", "-l"])
            .arg(&seed)
            .output()
            .expect("run slapcat");
        assert!(
            out.status.success(),
            "slapcat: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let second = Self::launch_opts(Launch {
            port: Some(p2),
            server_id: Some(2),
            peer: Some(second_peer.to_owned()),
            seed: Some(&seed),
            memberof: true,
            consumer,
            ..Launch::default()
        });
        (first, second)
    }

    fn launch_opts(o: Launch<'_>) -> Slapd {
        assert!(
            Path::new("/usr/sbin/slapd").exists(),
            "OpenLDAP's slapd is not installed. Install it with `apt-get install -y slapd ldap-utils` \
             (or run `bash scripts/test.sh` as root, which installs everything the tests need)."
        );
        let dir = tempfile::tempdir().expect("temp dir");
        for _ in 0..3 {
            let port = o.port.unwrap_or_else(free_port);
            let tls_port = o.tls.then(free_port);
            let mut cmd = Command::new(repo().join("deploy/openldap/throwaway-slapd.sh"));
            cmd.arg(dir.path())
                .arg(port.to_string())
                .env("SLAPD_ROOTPW", ADMIN_PW);
            if let Some(p) = tls_port {
                cmd.env("SLAPD_TLS_PORT", p.to_string());
            }
            if let Some(ldif) = o.extra_ldif {
                cmd.env("SLAPD_EXTRA_LDIF", ldif);
            }
            if o.stats {
                cmd.env("SLAPD_STATS_LOG", "1");
            }
            if !o.memberof {
                cmd.env("SLAPD_NO_MEMBEROF", "1");
            }
            if let (Some(id), Some(peer)) = (o.server_id, &o.peer) {
                cmd.env("SLAPD_SERVER_ID", id.to_string())
                    .env("SLAPD_PEER_URL", peer);
            }
            if let Some(seed) = o.seed {
                cmd.env("SLAPD_SEED_LDIF", seed);
            }
            if o.consumer {
                cmd.env("SLAPD_CONSUMER", "1");
            }
            let out = cmd.output().expect("run throwaway-slapd.sh");
            if out.status.success() {
                let pid = String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .expect("slapd pid");
                return Slapd {
                    dir,
                    port,
                    tls_port,
                    pid,
                };
            }
            eprintln!(
                "slapd start failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = std::fs::remove_dir_all(dir.path().join("slapd.d"));
            let _ = std::fs::remove_dir_all(dir.path().join("data"));
            let _ = std::fs::remove_dir_all(dir.path().join("tls"));
        }
        panic!("could not start slapd");
    }

    /// slapd's process id (the benchmark reads its CPU time).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends slapd a signal by name (`STOP` freezes it, `CONT` wakes it).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} slapd");
    }

    /// Kills slapd with SIGKILL: no clean shutdown, connections reset (a crash, a power cut).
    pub fn kill(&self) {
        let _ = Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .status();
        for _ in 0..250 {
            if !self.running() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Plain LDAP on loopback: for direct admin connections in tests.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// The local socket (ldapi://): what the bridge's test config uses, since the example
    /// maps passwords and passwords never travel in clear.
    pub fn ldapi_url(&self) -> String {
        let path = self.dir.path().join("ldapi");
        format!(
            "ldapi://{}",
            path.to_string_lossy()
                .replace('%', "%25")
                .replace('/', "%2F")
        )
    }

    pub fn stop(&self) {
        if !self.running() {
            return;
        }
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
        for _ in 0..250 {
            if !self.running() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Stops slapd and starts it again on the same data and port (every client connection
    /// drops; what was written stays).
    pub fn restart(&mut self) {
        self.stop();
        let mut urls = format!("ldap://127.0.0.1:{}/ {}/", self.port, self.ldapi_url());
        if let Some(p) = self.tls_port {
            urls.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
        }
        let _ = std::fs::remove_file(self.dir.path().join("slapd.pid"));
        let status = Command::new("/usr/sbin/slapd")
            .arg("-F")
            .arg(self.dir.path().join("slapd.d"))
            .arg("-h")
            .arg(urls)
            .status()
            .expect("run slapd");
        assert!(status.success(), "slapd did not restart");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let pid = std::fs::read_to_string(self.dir.path().join("slapd.pid"))
                    .ok()
                    .and_then(|p| p.trim().parse().ok());
                if let Some(pid) = pid {
                    self.pid = pid;
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("slapd did not come back");
    }

    /// Alive and not a zombie (a daemonised slapd may be left unreaped in a container).
    fn running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .map(|stat| {
                let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                !state.starts_with('Z') && !state.starts_with('X')
            })
            .unwrap_or(false)
    }

    /// A direct LDAP connection bound as the admin, for checking what the bridge wrote.
    pub async fn admin(&self) -> ldap3::Ldap {
        let (conn, mut ldap) = LdapConnAsync::new(&self.url()).await.expect("connect");
        ldap3::drive!(conn);
        ldap.simple_bind(ADMIN_DN, ADMIN_PW)
            .await
            .unwrap()
            .success()
            .unwrap();
        ldap
    }

    /// The entry at `dn` with user and operational attributes, or None.
    pub async fn entry(&self, dn: &str) -> Option<HashMap<String, Vec<String>>> {
        let mut ldap = self.admin().await;
        let res = ldap
            .search(dn, Scope::Base, "(objectClass=*)", vec!["*", "+"])
            .await
            .ok()?;
        let (entries, r) = (res.0, res.1);
        if r.rc != 0 {
            return None;
        }
        entries
            .into_iter()
            .next()
            .map(|e| lower(SearchEntry::construct(e).attrs))
    }

    /// The member DNs (lowercased) of `cn=CN,ou=groups,…`, the placeholder left out.
    pub async fn group_members(&self, cn: &str) -> Vec<String> {
        self.entry(&format!("cn={cn},ou=groups,dc=example,dc=org"))
            .await
            .and_then(|e| e.get("member").cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.to_ascii_lowercase())
            .filter(|d| !d.starts_with("cn=scim2ldap-placeholder"))
            .collect()
    }

    /// DNs under `base` matching `filter`.
    pub async fn dns(&self, base: &str, filter: &str) -> Vec<String> {
        let mut ldap = self.admin().await;
        let (entries, _) = ldap
            .search(base, Scope::Subtree, filter, vec!["1.1"])
            .await
            .unwrap()
            .success()
            .unwrap();
        entries
            .into_iter()
            .map(|e| SearchEntry::construct(e).dn)
            .collect()
    }

    /// Adds an organizationalUnit `ou=NAME,parent`.
    pub async fn add_ou(&self, name: &str, parent: &str) {
        let mut ldap = self.admin().await;
        ldap.add(
            &format!("ou={name},{parent}"),
            vec![
                ("objectClass", HashSet::from(["organizationalUnit"])),
                ("ou", HashSet::from([name])),
            ],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    }

    pub async fn modify(&self, dn: &str, mods: Vec<Mod<&str>>) {
        let mut ldap = self.admin().await;
        ldap.modify(dn, mods).await.unwrap().success().unwrap();
    }

    /// Whether `ldapsearch -x -D DN -w PASSWORD` (OpenLDAP's own client, as an admin or an
    /// application would log in) binds and reads the account's own entry.
    pub fn ldapsearch_binds(&self, dn: &str, password: &str) -> bool {
        Command::new("ldapsearch")
            .args(["-x", "-H", &self.url(), "-D", dn, "-w", password])
            .args(["-b", dn, "-s", "base", "1.1"])
            .output()
            .expect("run ldapsearch (Debian package ldap-utils)")
            .status
            .success()
    }

    /// Whether a simple bind as `dn` with `password` succeeds.
    pub async fn can_bind(&self, dn: &str, password: &str) -> bool {
        let (conn, mut ldap) = LdapConnAsync::new(&self.url()).await.expect("connect");
        ldap3::drive!(conn);
        ldap.simple_bind(dn, password)
            .await
            .map(|r| r.rc == 0)
            .unwrap_or(false)
    }
}

fn lower(attrs: HashMap<String, Vec<String>>) -> HashMap<String, Vec<String>> {
    attrs
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

pub const TOKEN: &str = "scim2ldap_test-token-for-the-default-tenant";

/// The bridge, serving HTTP in this process with the example config pointed at `slapd`.
pub struct Bridge {
    pub base: String,
    pub client: reqwest::Client,
    pub directory: Arc<dyn Directory>,
    pub config_path: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: TempDir,
}

/// The example config, rewritten to use this slapd and a known token, plus `extra` TOML.
pub fn test_config(slapd: &Slapd, replace: &[(&str, &str)], extra: &str) -> String {
    let mut cfg = std::fs::read_to_string(repo().join("config.example.toml")).unwrap();
    cfg = cfg.replace(
        "url = \"ldaps://ldap.example.org\"",
        &format!("url = \"{}\"", slapd.ldapi_url()),
    );
    cfg = cfg
        .replace(
            "bind_password_file = \"/etc/scim2ldap/bind_password\"",
            &format!("bind_password = \"{ADMIN_PW}\""),
        )
        // the password is given in the config here, not as a systemd credential
        .replace("bind_password_credential = \"bind_password\"", "");
    for (from, to) in replace {
        assert!(
            cfg.contains(from),
            "config.example.toml no longer contains {from:?}"
        );
        cfg = cfg.replace(from, to);
    }
    let hash = hex::encode(scim2ldap::auth::hash_token(TOKEN));
    cfg.push_str(&format!(
        "\n[tenants.default.tokens.test]\nsha256 = \"{hash}\"\n"
    ));
    cfg.push_str(extra);
    cfg
}

/// Runs `scim2ldap SUBCOMMAND ARGS --config CONFIG` with standard input closed;
/// (succeeded, stdout, stderr).
pub fn cli(subcommand: &str, args: &[&str], config: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scim2ldap"))
        .arg(subcommand)
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("SCIM2LDAP_CONFIG")
        .env_remove("SCIM2LDAP_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `scim2ldap explain --config CONFIG METHOD PATH [BODY]`, the body written to a file.
pub fn explain_cli(
    config: &Path,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.json");
    let mut args = vec![method, path];
    let file_arg = file.display().to_string();
    if let Some(b) = body {
        std::fs::write(&file, b.to_string()).unwrap();
        args.push(&file_arg);
    }
    cli("explain", &args, config)
}

/// `config` (from `test_config`) talking to `url` instead of the test slapd's socket, for
/// tests that put something between the bridge and slapd (a fault proxy, a closed port). Over
/// plain ldap:// passwords are refused at start, so the mapping drops them
/// (`users.password = "ignore"`).
pub fn via_plain_ldap(config: &str, slapd: &Slapd, url: &str) -> String {
    assert!(
        config.contains(&slapd.ldapi_url()),
        "the config talks to this slapd"
    );
    config
        .replace(&slapd.ldapi_url(), url)
        .replace("password = \"userPassword\"\n", "")
        .replace(
            "on_existing = \"conflict\"\n",
            "on_existing = \"conflict\"\npassword = \"ignore\"\n",
        )
}

/// `config` with the line `key = …` set to `key = value` (the key must be there).
pub fn set(config: String, key: &str, value: &str) -> String {
    let prefix = format!("{key} = ");
    let mut found = false;
    let out: Vec<String> = config
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) && !found {
                found = true;
                format!("{key} = {value}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(found, "config.example.toml no longer sets {key}");
    out.join("\n")
}

impl Bridge {
    pub async fn start(slapd: &Slapd) -> Bridge {
        Self::start_with(test_config(slapd, &[], "")).await
    }

    pub async fn start_with(config: String) -> Bridge {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.toml");
        let config = private_token_store(&config, dir.path());
        std::fs::write(&config_path, config).unwrap();
        let raw = load_raw(&config_path).unwrap_or_else(|e| panic!("{e}"));
        let app = scim2ldap::app::build(&raw).unwrap_or_else(|e| panic!("{e}"));
        // every write a test makes goes through the journal, as in `serve`
        let journal = scim2ldap::service::journal::Journal::open(&dir.path().join("journal"))
            .expect("open the journal");
        let _ = app.state.journal.set(std::sync::Arc::new(journal));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let state = app.state.clone();
        tokio::spawn(async move {
            scim2ldap::http::serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Bridge {
            base: format!("http://{addr}/scim/v2"),
            client: reqwest::Client::new(),
            directory: app.directory,
            config_path,
            shutdown: Some(tx),
            _dir: dir,
        }
    }

    /// Sends a request with the test token; returns status, headers and JSON body (Null if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.call_as(Some(TOKEN), method, path, body).await
    }

    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(serde_json::to_vec(b).unwrap());
        }
        let resp = req.send().await.expect("HTTP request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, headers, json)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, b) = self.call(Method::GET, path, None).await;
        (s, b)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let (s, _, b) = self.call(Method::POST, path, Some(body)).await;
        (s, b)
    }

    pub async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let (s, _, b) = self.call(Method::PUT, path, Some(body)).await;
        (s, b)
    }

    pub async fn patch(&self, path: &str, ops: Value) -> (StatusCode, Value) {
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": ops
        });
        let (s, _, b) = self.call(Method::PATCH, path, Some(&body)).await;
        (s, b)
    }

    pub async fn delete(&self, path: &str) -> StatusCode {
        self.call(Method::DELETE, path, None).await.0
    }

    /// Creates a user, asserting 201; returns the resource.
    pub async fn create_user(&self, body: Value) -> Value {
        let (s, b) = self.post("/Users", &body).await;
        assert_eq!(s, StatusCode::CREATED, "create failed: {b}");
        b
    }

    pub fn ldap_ops(&self) -> u64 {
        self.directory.operations()
    }

    /// The socket the bridge listens on, for raw connections.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Adds an entry behind the bridge's back (what other tools put into the directory).
pub async fn add_entry(ldap: &mut ldap3::Ldap, dn: &str, attrs: &[(&str, &[&str])]) {
    let attrs: Vec<(&str, HashSet<&str>)> = attrs
        .iter()
        .map(|(a, v)| (*a, v.iter().copied().collect()))
        .collect();
    ldap.add(dn, attrs).await.unwrap().success().unwrap();
}

/// The entry with SCIM id `id` (`what`, for messages) is no user of the bridge's tenant: a
/// read, a deactivation and a delete answer 404, and a group naming it as a member is 400.
pub async fn assert_not_a_user(bridge: &Bridge, what: &str, id: &str) {
    let (s, e) = bridge.get(&format!("/Users/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "GET {what}: {e}");
    let (s, e) = bridge
        .patch(
            &format!("/Users/{id}"),
            serde_json::json!([{"op": "replace", "path": "active", "value": false}]),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "PATCH {what}: {e}");
    let (s, _, e) = bridge
        .call(Method::DELETE, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "DELETE {what}: {e}");
    assert!(
        !e.to_string().contains("source4"),
        "no directory internals: {e}"
    );
    let (s, e) = bridge
        .post(
            "/Groups",
            &serde_json::json!({"displayName": format!("With {what}"), "members": [{"value": id}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{what} as a member: {e}");
}

/// Adds the inetOrgPerson `uid=UID,ou=people,…` (cn = uid) behind the bridge's back, for
/// tests that need many users faster than SCIM creates them.
pub async fn add_person(ldap: &mut ldap3::Ldap, uid: &str, sn: &str) {
    ldap.add(
        &dn_of(uid),
        vec![
            ("objectClass", HashSet::from(["inetOrgPerson"])),
            ("uid", HashSet::from([uid])),
            ("cn", HashSet::from([uid])),
            ("sn", HashSet::from([sn])),
        ],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
}

/// A user body the way Entra ID sends it on create.
pub fn entra_user(user_name: &str) -> Value {
    serde_json::json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "externalId": format!("ext-{user_name}"),
        "userName": user_name,
        "active": true,
        "displayName": format!("Display {user_name}"),
        "emails": [{"primary": true, "type": "work", "value": format!("{user_name}@example.com")}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": format!("Given {user_name} Family"), "familyName": "Family", "givenName": format!("Given {user_name}")},
        "title": "Engineer",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "Europe/Paris",
        "phoneNumbers": [
            {"type": "work", "value": "+1 555 0100"},
            {"type": "mobile", "value": "+1 555 0199"}
        ],
        "addresses": [{
            "type": "work", "streetAddress": "1 Main St", "locality": "Springfield",
            "region": "IL", "postalCode": "62701", "country": "US", "primary": true
        }],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "1001",
            "department": "R&D"
        }
    })
}

pub fn dn_of(user_name: &str) -> String {
    format!("uid={user_name},{PEOPLE}")
}

/// The example's token store and write journal (under /var/lib) moved into the test's own
/// directory, so that no test reads or writes the machine's.
fn private_token_store(config: &str, dir: &Path) -> String {
    config
        .replace(
            "token_store = \"/var/lib/scim2ldap/tokens.json\"",
            &format!("token_store = \"{}\"", dir.join("tokens.json").display()),
        )
        .replace(
            "journal_dir = \"/var/lib/scim2ldap/journal\"",
            &format!("journal_dir = \"{}\"", dir.join("journal").display()),
        )
}

/// The `scim2ldap` binary serving a config as its own process, for what only a process
/// shows: its open-file limit, its answer to SIGTERM, its log. Killed on drop.
pub struct ServerProcess {
    child: std::process::Child,
    pub config_path: PathBuf,
    pub addr: std::net::SocketAddr,
    /// Where `/metrics` is served (its own listener).
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub base: String,
    pub log: PathBuf,
    _dir: TempDir,
}

impl ServerProcess {
    /// Starts `scim2ldap serve` on `config` (its `listen` is replaced by a free port), with
    /// the open-file limit lowered to `open_files` when given, and `env` set.
    pub fn spawn(config: &str, open_files: Option<u32>, env: &[(&str, &str)]) -> ServerProcess {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.toml");
        let config = config
            .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
            .replace("listen = \"127.0.0.1:9464\"", "listen = \"127.0.0.1:0\"");
        let config = private_token_store(&config, dir.path());
        std::fs::write(&config_path, config).unwrap();
        Self::spawn_in(dir, config_path, open_files, env)
    }

    /// Kills the process with SIGKILL (no shutdown, no drain: a crash), runs `between`, and
    /// starts another on the same config, token store and journal; the log of the one
    /// killed is kept as `earlier.log`.
    pub fn crash_and_restart(self, between: impl FnOnce()) -> ServerProcess {
        let mut this = self;
        let _ = this.child.kill();
        let _ = this.child.wait();
        between();
        let dir = std::mem::replace(&mut this._dir, tempfile::tempdir().unwrap());
        let config_path = this.config_path.clone();
        let old_log = std::fs::read_to_string(&this.log).unwrap_or_default();
        let mut earlier =
            std::fs::read_to_string(dir.path().join("earlier.log")).unwrap_or_default();
        earlier.push_str(&old_log);
        std::fs::write(dir.path().join("earlier.log"), earlier).unwrap();
        Self::spawn_in(dir, config_path, None, &[])
    }

    /// The journal the process writes (in its own directory).
    pub fn journal_dir(&self) -> PathBuf {
        self._dir.path().join("journal")
    }

    fn spawn_in(
        dir: TempDir,
        config_path: PathBuf,
        open_files: Option<u32>,
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let log = dir.path().join("server.log");
        let bin = env!("CARGO_BIN_EXE_scim2ldap");
        // dash's ulimit sets the soft and hard limits together
        // as systemd does, a watchdog interval comes with the pid it is meant for
        let watchdog = "if [ -n \"${WATCHDOG_USEC:-}\" ]; then export WATCHDOG_PID=$$; fi; ";
        // TEST_EXEC_WRAPPER in `env` runs the binary under a tool (the benchmark's
        // callgrind); its words are split by the shell on purpose
        let exec = "exec ${TEST_EXEC_WRAPPER:-} \"$0\" serve --config \"$1\"";
        let script = match open_files {
            Some(n) => format!("{watchdog}ulimit -n {n} && {exec}"),
            None => format!("{watchdog}{exec}"),
        };
        let wrapped = env.iter().any(|(k, _)| *k == "TEST_EXEC_WRAPPER");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg(bin)
            .arg(&config_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        // whatever the config says, the journal is the test's own
        cmd.env(
            "SCIM2LDAP_SERVER__JOURNAL_DIR",
            dir.path().join("journal").as_os_str(),
        );
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start scim2ldap");
        let started = std::time::Instant::now();
        let addr = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = text.split("listening on http").nth(1) {
                let host = rest
                    .trim_start_matches('s')
                    .trim_start_matches("://")
                    .split('/')
                    .next()
                    .unwrap();
                break host.parse::<std::net::SocketAddr>().unwrap();
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(if wrapped { 180 } else { 20 }),
                "scim2ldap did not start:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let metrics_addr = {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.split("metrics on http://")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .and_then(|a| a.parse().ok())
        };
        ServerProcess {
            child,
            config_path,
            metrics_addr,
            base: format!("http://{addr}/scim/v2"),
            addr,
            log,
            _dir: dir,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `http://ADDR/metrics` of the metrics listener.
    pub fn metrics_url(&self) -> String {
        format!(
            "http://{}/metrics",
            self.metrics_addr
                .expect("the server logged its metrics address")
        )
    }

    pub fn signal(&self, sig: &str) {
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
    }

    /// Waits up to `within` for the process to exit; its status, or None if still running.
    pub fn wait_exit(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let start = std::time::Instant::now();
        while start.elapsed() < within {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `head` (and `body`) on a new raw connection and returns it, unfinished requests
/// included: for the tests of what a slow or hostile client does.
pub async fn raw_connection(addr: std::net::SocketAddr, bytes: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s
}

/// Reads what the server sends on `s` until it closes or `within` passes; whether it
/// closed, and the text.
pub async fn read_until_closed(
    s: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> (bool, String) {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (true, String::from_utf8_lossy(&out).into()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (false, String::from_utf8_lossy(&out).into()),
        }
    }
}

/// `s` percent-encoded for a query string (filters travel in the URL).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs `scim2ldap check-config` on `config`; returns the exit code, stdout and stderr.
pub fn check_config(config: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scim2ldap"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
