//! Whole request sequences as each IdP sends them (from their public SCIM documentation),
//! run against both directories: a real slapd and a real Samba AD DC.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use common::samba::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    OpenLdap,
    Ad,
}

/// A bridge on the example config of `dir`; the slapd (if any) lives as long as it.
struct Setup {
    bridge: Bridge,
    dir: Dir,
    _slapd: Option<Slapd>,
}

impl Setup {
    async fn new(dir: Dir) -> Setup {
        Self::with(dir, &[], "").await
    }

    async fn with(dir: Dir, replace: &[(&str, &str)], extra: &str) -> Setup {
        match dir {
            Dir::OpenLdap => {
                let slapd = Slapd::start();
                let bridge = Bridge::start_with(test_config(&slapd, replace, extra)).await;
                Setup {
                    bridge,
                    dir,
                    _slapd: Some(slapd),
                }
            }
            Dir::Ad => {
                let dc = samba();
                ensure_ous(&mut dc.admin().await).await;
                let bridge = Bridge::start_with(dc.config(replace, extra)).await;
                Setup {
                    bridge,
                    dir,
                    _slapd: None,
                }
            }
        }
    }

    /// A bridge on the config `scim2ldap init` writes for `dir` (only the test's token added),
    /// proving that config serves every IdP's sequence.
    async fn from_init(dir: Dir) -> Setup {
        let work = tempfile::tempdir().unwrap();
        let password = work.path().join("bind_password");
        let output = work.path().join("config.toml");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_scim2ldap"));
        cmd.arg("init").arg("--output").arg(&output);
        let slapd = match dir {
            Dir::OpenLdap => {
                let slapd = Slapd::start();
                std::fs::write(&password, ADMIN_PW).unwrap();
                // the containers are found by name (people, groups, archive)
                cmd.args(["--url", &slapd.ldapi_url(), "--bind-dn", ADMIN_DN]);
                Some(slapd)
            }
            Dir::Ad => {
                let dc = samba();
                ensure_ous(&mut dc.admin().await).await;
                std::fs::write(&password, AD_ADMIN_PW).unwrap();
                cmd.args(["--url", &dc.url, "--bind-dn", AD_ADMIN_DN])
                    .arg("--ca-file")
                    .arg(dc.ca_file())
                    .args(["--users-ou", "SCIM Users", "--groups-ou", "SCIM Groups"])
                    .args(["--archive-ou", AD_ARCHIVE]);
                None
            }
        };
        let out = cmd
            .arg("--bind-password-file")
            .arg(&password)
            .stdin(std::process::Stdio::null())
            .env_remove("SCIM2LDAP_CONFIG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "init failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("check-config: the config is valid"),
            "{stdout}"
        );
        assert!(
            stdout.contains("scim2ldap token create --tenant default"),
            "{stdout}"
        );
        assert!(
            stdout.contains("systemctl enable --now scim2ldap"),
            "{stdout}"
        );
        let mut config = std::fs::read_to_string(&output).unwrap();
        assert!(
            config.starts_with("# Written by `scim2ldap init`"),
            "{config}"
        );
        let hash = hex::encode(scim2ldap::auth::hash_token(TOKEN));
        config.push_str(&format!(
            "\n[tenants.default.tokens.test]\nsha256 = \"{hash}\"\n"
        ));
        let bridge = Bridge::start_with(config).await;
        // the password file must outlive the bridge's first binds: keep the directory
        std::mem::forget(work);
        Setup {
            bridge,
            dir,
            _slapd: slapd,
        }
    }

    /// A userName valid for the directory (AD: a userPrincipalName), unique per directory.
    fn name(&self, base: &str) -> String {
        match self.dir {
            Dir::OpenLdap => base.to_owned(),
            Dir::Ad => format!("{base}@example.test"),
        }
    }

    async fn list(&self, filter: &str) -> Value {
        let q = format!(
            "/Users?filter={}",
            urlencode(filter) // the filter travels in the query string
        );
        let (s, body) = self.bridge.get(&q).await;
        assert_eq!(s, StatusCode::OK, "{filter}: {body}");
        body
    }

    /// Whether the user `u` logs in to the directory with `password` (`ldapsearch -x -D …`).
    async fn logs_in(&self, u: &Value, password: &str) -> bool {
        let user_name = u["userName"].as_str().unwrap();
        match (&self.dir, &self._slapd) {
            (Dir::OpenLdap, Some(slapd)) => slapd.ldapsearch_binds(&dn_of(user_name), password),
            _ => samba().ldapsearch_binds(user_name, password),
        }
    }

    async fn patch_ok(&self, path: &str, ops: Value) -> Value {
        let (s, body) = self.bridge.patch(path, ops.clone()).await;
        assert_eq!(s, StatusCode::OK, "PATCH {path} {ops}: {body}");
        body
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

fn total(list: &Value) -> u64 {
    list["totalResults"].as_u64().unwrap()
}

fn phone(u: &Value, ty: &str) -> Option<String> {
    u["phoneNumbers"]
        .as_array()?
        .iter()
        .find(|p| p["type"] == ty)
        .and_then(|p| p["value"].as_str())
        .map(str::to_owned)
}

// ---------------------------------------------------------------------------------------
// Microsoft Entra ID
// ---------------------------------------------------------------------------------------

/// Entra: the match query, a create without displayName, externalId matching, the
/// `emails[type eq "work"].value` filter, the manager in every form Entra has sent (the
/// older `path: "manager"` with a `$ref` array, the bare id, an email address), its
/// reference check `id eq … and manager eq …`, a fax number, and a group whose members
/// are removed by a filter path, twice.
async fn entra(dir: Dir) {
    let tag = if dir == Dir::Ad { "ead" } else { "eol" };
    entra_on(&Setup::new(dir).await, tag).await;
}

async fn entra_on(s: &Setup, tag: &str) {
    let user_name = s.name(&format!("{tag}-alice"));
    let email = format!("{tag}-alice@contoso.example");
    // the match query before a create
    let found = s.list(&format!("userName eq \"{user_name}\"")).await;
    assert_eq!(total(&found), 0);
    // Entra's create when displayName is not in the mapping
    let (st, alice) = s
        .bridge
        .post(
            "/Users",
            &json!({
                "schemas": [USER_SCHEMA, ENTERPRISE],
                "externalId": format!("{tag}-0001"),
                "userName": user_name,
                "active": true,
                "emails": [{"primary": true, "type": "work", "value": email}],
                "name": {"givenName": "Alice", "familyName": "Archer"},
                "phoneNumbers": [{"type": "fax", "value": "+1 555 0142"}],
                ENTERPRISE: {"department": "Finance"}
            }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{alice}");
    let alice_id = id_of(&alice);
    assert_eq!(alice["externalId"], format!("{tag}-0001"));
    assert_eq!(phone(&alice, "fax").as_deref(), Some("+1 555 0142"));
    // matching on externalId and on the work email, in Entra's own filter form
    let by_ext = s.list(&format!("externalId eq \"{tag}-0001\"")).await;
    assert_eq!(total(&by_ext), 1, "{by_ext}");
    assert_eq!(by_ext["Resources"][0]["id"], alice_id.as_str());
    let by_mail = s
        .list(&format!("emails[type eq \"work\"].value eq \"{email}\""))
        .await;
    assert_eq!(total(&by_mail), 1, "{by_mail}");

    // two managers
    let mut managers = Vec::new();
    for m in ["bob", "carol"] {
        let mail = format!("{tag}-{m}@contoso.example");
        let body = json!({
            "schemas": [USER_SCHEMA],
            "userName": s.name(&format!("{tag}-{m}")),
            "displayName": format!("{m} {tag}"),
            "emails": [{"primary": true, "type": "work", "value": mail}],
        });
        let (st, u) = s.bridge.post("/Users", &body).await;
        assert_eq!(st, StatusCode::CREATED, "{u}");
        managers.push((id_of(&u), mail));
    }
    let (bob, bob_mail) = &managers[0];
    let (carol, carol_mail) = &managers[1];
    let path = format!("/Users/{alice_id}");
    // the older form: unqualified path, a $ref array
    let u = s
        .patch_ok(
            &path,
            json!([{"op": "Add", "path": "manager", "value": [{
                "$ref": format!("{}/Users/{bob}", s.bridge.base), "value": bob
            }]}]),
        )
        .await;
    assert_eq!(u[ENTERPRISE]["manager"]["value"], bob.as_str());
    // Entra's reference check after setting a manager
    for f in [
        format!("id eq \"{alice_id}\" and manager eq \"{bob}\""),
        format!("id eq \"{alice_id}\" and manager.value eq \"{bob}\""),
        format!("{ENTERPRISE}:manager.value eq \"{bob}\""),
    ] {
        let l = s.list(&f).await;
        assert_eq!(total(&l), 1, "{f}: {l}");
    }
    let l = s
        .list(&format!("id eq \"{alice_id}\" and manager eq \"{carol}\""))
        .await;
    assert_eq!(total(&l), 0, "{l}");
    // the manager by email address (resolved through the mapped work email)
    let u = s
        .patch_ok(
            &path,
            json!([{"op": "Replace", "path": format!("{ENTERPRISE}:manager"), "value": carol_mail}]),
        )
        .await;
    assert_eq!(u[ENTERPRISE]["manager"]["value"], carol.as_str(), "{u}");
    let l = s.list(&format!("manager eq \"{carol_mail}\"")).await;
    assert_eq!(total(&l), 1, "{l}");
    // the bare id, as Entra sends it today
    let u = s
        .patch_ok(
            &path,
            json!([{"op": "Replace", "path": format!("{ENTERPRISE}:manager"), "value": bob}]),
        )
        .await;
    assert_eq!(u[ENTERPRISE]["manager"]["value"], bob.as_str());
    // a PUT naming the manager by email, and a create naming it by id
    let mut put = alice.clone();
    put[ENTERPRISE]["manager"] = json!({"value": bob_mail});
    let (st, u) = s.bridge.put(&path, &put).await;
    assert_eq!(st, StatusCode::OK, "{u}");
    assert_eq!(u[ENTERPRISE]["manager"]["value"], bob.as_str(), "{u}");
    let (st, dave) = s
        .bridge
        .post(
            "/Users",
            &json!({
                "schemas": [USER_SCHEMA, ENTERPRISE],
                "userName": s.name(&format!("{tag}-dave")),
                "name": {"givenName": "Dave", "familyName": "Diver"},
                ENTERPRISE: {"manager": {"value": carol}}
            }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{dave}");
    assert_eq!(dave[ENTERPRISE]["manager"]["value"], carol.as_str());
    // fax changed by a filtered path
    let u = s
        .patch_ok(
            &path,
            json!([{"op": "Replace", "path": "phoneNumbers[type eq \"fax\"].value", "value": "+1 555 0143"}]),
        )
        .await;
    assert_eq!(phone(&u, "fax").as_deref(), Some("+1 555 0143"));

    // a group: created with externalId, members added, removed by filter path
    let (st, g) = s
        .bridge
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_SCHEMA], "displayName": format!("{tag} Finance"), "externalId": format!("{tag}-g1"), "members": []}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{g}");
    assert_eq!(g["externalId"], format!("{tag}-g1"));
    let gpath = format!("/Groups/{}", id_of(&g));
    let (st, l) = s
        .bridge
        .get(&format!(
            "/Groups?filter={}",
            urlencode(&format!("externalId eq \"{tag}-g1\""))
        ))
        .await;
    assert_eq!((st, total(&l)), (StatusCode::OK, 1), "{l}");
    let (st, body) = s
        .bridge
        .patch(
            &gpath,
            json!([{"op": "Add", "path": "members", "value": [{"value": alice_id}, {"value": bob}]}]),
        )
        .await;
    assert!(st.is_success(), "{body}");
    for _ in 0..2 {
        // the second time alice is no longer a member: still no error
        let (st, body) = s
            .bridge
            .patch(
                &gpath,
                json!([{"op": "Remove", "path": format!("members[value eq \"{alice_id}\"]")}]),
            )
            .await;
        assert!(st.is_success(), "{st}: {body}");
    }
    let (st, body) = s
        .bridge
        .patch(
            &gpath,
            json!([{"op": "Remove", "path": "members", "value": [{"value": bob}]}]),
        )
        .await;
    assert!(st.is_success(), "{st}: {body}");
    // carol never was a member (Samba answers such a delete unlike OpenLDAP)
    let (st, body) = s
        .bridge
        .patch(
            &gpath,
            json!([{"op": "Remove", "path": format!("members[value eq \"{carol}\"]")}]),
        )
        .await;
    assert!(st.is_success(), "{st}: {body}");
    let (_, g) = s.bridge.get(&gpath).await;
    assert!(g["members"].as_array().is_none_or(|m| m.is_empty()), "{g}");
    // the other forms: replace the list, then remove every member
    let (st, body) = s
        .bridge
        .patch(
            &gpath,
            json!([{"op": "Replace", "path": "members", "value": [{"value": alice_id}, {"value": carol}]}]),
        )
        .await;
    assert!(st.is_success(), "{st}: {body}");
    let (_, g) = s.bridge.get(&gpath).await;
    assert_eq!(g["members"].as_array().map(Vec::len), Some(2), "{g}");
    let (st, body) = s
        .bridge
        .patch(&gpath, json!([{"op": "Remove", "path": "members"}]))
        .await;
    assert!(st.is_success(), "{st}: {body}");
    let (_, g) = s.bridge.get(&gpath).await;
    assert!(g["members"].as_array().is_none_or(|m| m.is_empty()), "{g}");
}

/// `scim2ldap init` against a fresh slapd writes a config that serves Entra's, Okta's,
/// OneLogin's and JumpCloud's sequences as they are.
#[tokio::test(flavor = "multi_thread")]
async fn idp_sequences_on_the_config_init_writes_for_openldap() {
    let s = Setup::from_init(Dir::OpenLdap).await;
    entra_on(&s, "ieol").await;
    okta_on(&s, "iool").await;
    onelogin_and_jumpcloud_on(&s, "ilol").await;
}

/// The same against Samba's AD DC, the containers given as flags.
#[tokio::test(flavor = "multi_thread")]
async fn idp_sequences_on_the_config_init_writes_for_active_directory() {
    let s = Setup::from_init(Dir::Ad).await;
    entra_on(&s, "iead").await;
    okta_on(&s, "ioad").await;
    onelogin_and_jumpcloud_on(&s, "ilad").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_sequence_on_openldap() {
    entra(Dir::OpenLdap).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_sequence_on_active_directory() {
    entra(Dir::Ad).await;
}

// ---------------------------------------------------------------------------------------
// Okta
// ---------------------------------------------------------------------------------------

/// Okta: a create, a PUT without displayName (Okta's profile updates), deactivation by
/// PATCH, and a group rename sent as `replace` with the group's own id in the value.
async fn okta(dir: Dir) {
    let tag = if dir == Dir::Ad { "oad" } else { "ool" };
    okta_on(&Setup::new(dir).await, tag).await;
}

async fn okta_on(s: &Setup, tag: &str) {
    let user_name = s.name(&format!("{tag}-erin"));
    let body = json!({
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": "Erin", "familyName": "Example"},
        "emails": [{"primary": true, "value": format!("{tag}-erin@okta.example"), "type": "work"}],
        "displayName": "Erin Example",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "externalId": format!("00u{tag}"),
        "groups": [],
        "password": "Okta-Secret-Pw1!",
        "active": true
    });
    let (st, u) = s.bridge.post("/Users", &body).await;
    assert_eq!(st, StatusCode::CREATED, "{u}");
    // the example configs keep what Okta sends: its locale, and (password sync) its password
    assert_eq!(
        (u["locale"].as_str(), u["timezone"].as_str()),
        (Some("en-US"), Some("America/Los_Angeles")),
        "{u}"
    );
    assert!(
        s.logs_in(&u, "Okta-Secret-Pw1!").await,
        "the synced password logs in"
    );
    let path = format!("/Users/{}", id_of(&u));
    // Okta's PUT: the whole profile, here without displayName
    let put = json!({
        "schemas": [USER_SCHEMA],
        "id": id_of(&u),
        "userName": user_name,
        "name": {"givenName": "Erin", "familyName": "Examplar"},
        "emails": [{"primary": true, "value": format!("{tag}-erin@okta.example"), "type": "work"}],
        "active": true
    });
    let (st, u2) = s.bridge.put(&path, &put).await;
    assert_eq!(st, StatusCode::OK, "{u2}");
    assert_eq!(u2["name"]["familyName"], "Examplar");
    assert_eq!(u2["id"], u["id"]);
    // deactivation
    let u3 = s
        .patch_ok(
            &path,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "value": {"active": false}}]})["Operations"]
                .clone(),
        )
        .await;
    assert_eq!(u3["active"], false);

    // a group, renamed the way Okta does it
    let (st, g) = s
        .bridge
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_SCHEMA], "displayName": format!("{tag} Sales"), "members": []}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{g}");
    let gid = id_of(&g);
    let gpath = format!("/Groups/{gid}");
    let (st, body) = s
        .bridge
        .patch(
            &gpath,
            json!([{"op": "replace", "value": {"id": gid, "displayName": format!("{tag} Sales EMEA")}}]),
        )
        .await;
    assert!(st.is_success(), "{st}: {body}");
    let (_, g2) = s.bridge.get(&gpath).await;
    assert_eq!(g2["displayName"], format!("{tag} Sales EMEA"));
    // an id that is not the group's is still refused
    let (st, body) = s
        .bridge
        .patch(
            &gpath,
            json!([{"op": "replace", "value": {"id": "not-its-id", "displayName": "x"}}]),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["scimType"], "mutability");
}

#[tokio::test(flavor = "multi_thread")]
async fn okta_sequence_on_openldap() {
    okta(Dir::OpenLdap).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn okta_sequence_on_active_directory() {
    okta(Dir::Ad).await;
}

// ---------------------------------------------------------------------------------------
// OneLogin and JumpCloud
// ---------------------------------------------------------------------------------------

/// OneLogin sends addresses (and sometimes phone numbers) without `type`; JumpCloud's
/// test-connection user has no displayName.
async fn onelogin_and_jumpcloud(dir: Dir) {
    let tag = if dir == Dir::Ad { "lad" } else { "lol" };
    onelogin_and_jumpcloud_on(&Setup::new(dir).await, tag).await;
}

async fn onelogin_and_jumpcloud_on(s: &Setup, tag: &str) {
    let (st, u) = s
        .bridge
        .post(
            "/Users",
            &json!({
                "schemas": [USER_SCHEMA],
                "userName": s.name(&format!("{tag}-frank")),
                "name": {"givenName": "Frank", "familyName": "Field"},
                "emails": [{"value": format!("{tag}-frank@onelogin.example")}],
                "phoneNumbers": [{"value": "+1 555 0177"}],
                "addresses": [{"streetAddress": "7 Elm St", "locality": "Boston", "region": "MA", "postalCode": "02110", "country": "US"}]
            }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{u}");
    assert_eq!(phone(&u, "work").as_deref(), Some("+1 555 0177"), "{u}");
    let addr = &u["addresses"][0];
    assert_eq!(
        (addr["type"].as_str(), addr["locality"].as_str()),
        (Some("work"), Some("Boston")),
        "{u}"
    );
    let mail = &u["emails"][0];
    assert_eq!(
        mail["value"],
        format!("{tag}-frank@onelogin.example"),
        "{u}"
    );
    // OneLogin's update: replace addresses, untyped again
    let u = s
        .patch_ok(
            &format!("/Users/{}", id_of(&u)),
            json!([{"op": "replace", "path": "addresses", "value": [{"streetAddress": "9 Oak Ave", "locality": "Cambridge"}]}]),
        )
        .await;
    assert_eq!(u["addresses"][0]["locality"], "Cambridge", "{u}");
    assert_eq!(u["addresses"][0]["streetAddress"], "9 Oak Ave", "{u}");
    // a home address in lines (OpenLDAP: Postal Address syntax; AD: a plain string)
    let home = "Flat 2 $ up\n9 Oak Ave\nCambridge";
    let u = s
        .patch_ok(
            &format!("/Users/{}", id_of(&u)),
            json!([{"op": "add", "path": "addresses", "value": [{"type": "home", "formatted": home}]}]),
        )
        .await;
    let got = u["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "home")
        .unwrap_or_else(|| panic!("{u}"));
    assert_eq!(got["formatted"], home, "{u}");

    // JumpCloud's test-connection user: userName and email only
    let (st, t) = s
        .bridge
        .post(
            "/Users",
            &json!({
                "schemas": [USER_SCHEMA],
                "userName": s.name(&format!("{tag}-jctest")),
                "emails": [{"value": format!("{tag}-jctest@jumpcloud.example"), "primary": true}],
                "name": {"givenName": "Test", "familyName": "Connection"},
                "active": true
            }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    assert_eq!(
        s.bridge.delete(&format!("/Users/{}", id_of(&t))).await,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn onelogin_and_jumpcloud_sequences_on_openldap() {
    onelogin_and_jumpcloud(Dir::OpenLdap).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn onelogin_and_jumpcloud_sequences_on_active_directory() {
    onelogin_and_jumpcloud(Dir::Ad).await;
}

// ---------------------------------------------------------------------------------------
// Active Directory naming
// ---------------------------------------------------------------------------------------

/// Two people with one display name: the second entry is `CN=John Smith 2`, a PUT with the
/// same name leaves it there, a new name renames it; without a displayName the fallback
/// templates name the entry.
#[tokio::test(flavor = "multi_thread")]
async fn ad_names_entries_by_fallbacks_and_numbers_clashing_names() {
    let s = Setup::new(Dir::Ad).await;
    let mut ids = Vec::new();
    for n in ["jsmith1", "jsmith2"] {
        let (st, u) = s
            .bridge
            .post(
                "/Users",
                &json!({"userName": s.name(n), "displayName": "John Smith",
                    "name": {"givenName": "John", "familyName": "Smith"}}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{u}");
        ids.push(id_of(&u));
    }
    let dn = |cn: &str| format!("CN={cn},{AD_USERS}");
    assert!(ad_exists(&dn("John Smith")).await);
    assert!(ad_exists(&dn("John Smith 2")).await);
    // a PUT of the second with the same displayName keeps its numbered name
    let (st, u) = s
        .bridge
        .put(
            &format!("/Users/{}", ids[1]),
            &json!({"userName": s.name("jsmith2"), "displayName": "John Smith", "title": "Twin"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{u}");
    assert!(ad_exists(&dn("John Smith 2")).await);
    // a new displayName renames it
    let u = s
        .patch_ok(
            &format!("/Users/{}", ids[1]),
            json!([{"op": "replace", "path": "displayName", "value": "Johnny Smith"}]),
        )
        .await;
    assert_eq!(u["displayName"], "Johnny Smith");
    assert!(ad_exists(&dn("Johnny Smith")).await);
    assert!(!ad_exists(&dn("John Smith 2")).await);
    // no displayName: named from the name, then from the userName
    let (st, _) = s
        .bridge
        .post(
            "/Users",
            &json!({"userName": s.name("kgiven"), "name": {"givenName": "Kim", "familyName": "Given"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert!(ad_exists(&dn("Kim Given")).await);
    let (st, _) = s
        .bridge
        .post("/Users", &json!({"userName": s.name("lonely")}))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert!(ad_exists(&dn("lonely@example.test")).await);
}

async fn ad_exists(dn: &str) -> bool {
    let mut ldap = samba().admin().await;
    let r = ldap
        .search(dn, ldap3::Scope::Base, "(objectClass=user)", vec!["cn"])
        .await
        .unwrap();
    r.1.rc == 0 && !r.0.is_empty()
}

// ---------------------------------------------------------------------------------------
// SailPoint (roles, as BeyondTrust's SailPoint guide maps them)
// ---------------------------------------------------------------------------------------

fn role_values(u: &Value) -> Vec<String> {
    let mut v: Vec<String> = u["roles"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["value"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Create with roles, add one, remove one by filter path, replace them all, and (when
/// `groups` holds the role groups' names) refuse a role that has no group.
async fn sailpoint(s: &Setup, tag: &str, strict: bool) -> String {
    let (st, u) = s
        .bridge
        .post(
            "/Users",
            &json!({
                "schemas": [USER_SCHEMA],
                "userName": s.name(&format!("{tag}-gina")),
                "name": {"givenName": "Gina", "familyName": "Grant"},
                "displayName": format!("Gina {tag}"),
                "roles": [{"value": "Approver"}]
            }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{u}");
    assert_eq!(role_values(&u), ["Approver"]);
    let path = format!("/Users/{}", id_of(&u));
    let u = s
        .patch_ok(
            &path,
            json!([{"op": "add", "path": "roles", "value": [{"value": "Auditor"}]}]),
        )
        .await;
    assert_eq!(role_values(&u), ["Approver", "Auditor"]);
    let u = s
        .patch_ok(
            &path,
            json!([{"op": "remove", "path": "roles[value eq \"Approver\"]"}]),
        )
        .await;
    assert_eq!(role_values(&u), ["Auditor"]);
    let u = s
        .patch_ok(
            &path,
            json!([{"op": "replace", "path": "roles", "value": [{"value": "Viewer"}, {"value": "Approver"}]}]),
        )
        .await;
    assert_eq!(role_values(&u), ["Approver", "Viewer"]);
    let (_, got) = s.bridge.get(&path).await;
    assert_eq!(role_values(&got), ["Approver", "Viewer"]);
    if strict {
        let (st, body) = s
            .bridge
            .patch(
                &path,
                json!([{"op": "add", "path": "roles", "value": [{"value": "Wizard"}]}]),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains("Wizard"),
            "{body}"
        );
        let (_, got) = s.bridge.get(&path).await;
        assert_eq!(role_values(&got), ["Approver", "Viewer"], "nothing changed");
    }
    id_of(&u)
}

#[tokio::test(flavor = "multi_thread")]
async fn sailpoint_roles_in_an_attribute_on_openldap() {
    // the example maps roles to businessCategory as it is
    let s = Setup::new(Dir::OpenLdap).await;
    let id = sailpoint(&s, "sol", false).await;
    let slapd = s._slapd.as_ref().unwrap();
    let e = slapd.entry(&dn_of("sol-gina")).await.unwrap();
    let mut cats = e["businesscategory"].clone();
    cats.sort();
    assert_eq!(cats, ["Approver", "Viewer"]);
    // roles filter
    let l = s.list("roles[value eq \"Viewer\"]").await;
    assert_eq!(total(&l), 1, "{l}");
    assert_eq!(l["Resources"][0]["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn sailpoint_roles_in_an_attribute_on_active_directory() {
    // the example maps roles to businessCategory as it is
    let s = Setup::new(Dir::Ad).await;
    sailpoint(&s, "sad", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sailpoint_roles_as_role_groups_on_openldap() {
    const ROLES: &str = "ou=roles,dc=example,dc=org";
    let slapd = Slapd::start();
    slapd.add_ou("roles", "dc=example,dc=org").await;
    let mut ldap = slapd.admin().await;
    for role in ["Approver", "Auditor", "Viewer"] {
        add_entry(
            &mut ldap,
            &format!("cn={role},{ROLES}"),
            &[
                ("objectClass", &["groupOfNames"]),
                ("cn", &[role]),
                ("member", &["cn=scim2ldap-placeholder,dc=example,dc=org"]),
            ],
        )
        .await;
    }
    // role groups instead of the example's roles attribute
    let cfg = test_config(
        &slapd,
        &[("roles = \"businessCategory\"\n", "")],
        &format!("\n[roles]\ncontainer = \"{ROLES}\"\n"),
    );
    // the groupOfNames class alone (the example's scim2ldapGroup is not on these entries)
    let cfg = cfg.replace(
        "object_classes = [\"groupOfNames\", \"scim2ldapGroup\"]",
        "object_classes = [\"groupOfNames\"]",
    );
    let cfg = cfg.replace("externalId = \"scimExternalId\"\n\n", "\n");
    let s = Setup {
        bridge: Bridge::start_with(cfg).await,
        dir: Dir::OpenLdap,
        _slapd: None,
    };
    let id = sailpoint(&s, "sgl", true).await;
    let members = |role: &'static str| {
        let slapd = &slapd;
        async move {
            slapd
                .entry(&format!("cn={role},{ROLES}"))
                .await
                .unwrap()
                .get("member")
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|m| m.to_lowercase())
                .collect::<Vec<_>>()
        }
    };
    let gina = dn_of("sgl-gina").to_lowercase();
    assert!(members("Viewer").await.contains(&gina));
    assert!(!members("Auditor").await.contains(&gina));
    // a rename: the role groups follow the new DN
    let u = s
        .patch_ok(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "userName", "value": "sgl-gina2"}]),
        )
        .await;
    assert_eq!(role_values(&u), ["Approver", "Viewer"]);
    let gina2 = dn_of("sgl-gina2").to_lowercase();
    assert!(members("Viewer").await.contains(&gina2));
    assert!(!members("Viewer").await.contains(&gina));
    // deleted (archived): no role group lists it any more
    assert_eq!(
        s.bridge.delete(&format!("/Users/{id}")).await,
        StatusCode::NO_CONTENT
    );
    for role in ["Approver", "Viewer"] {
        let m = members(role).await;
        assert!(!m.iter().any(|d| d.contains("sgl-gina")), "{role}: {m:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sailpoint_roles_as_role_groups_on_active_directory() {
    // the role groups are ordinary groups of the groups OU, made through SCIM
    let s = Setup::with(
        Dir::Ad,
        &[("roles = \"businessCategory\"\n", "")],
        &format!("\n[roles]\ncontainer = \"{AD_GROUPS}\"\n"),
    )
    .await;
    for role in ["Approver", "Auditor", "Viewer"] {
        let (st, g) = s
            .bridge
            .post(
                "/Groups",
                &json!({"schemas": [GROUP_SCHEMA], "displayName": role}),
            )
            .await;
        assert!(
            st == StatusCode::CREATED || st == StatusCode::CONFLICT,
            "{g}"
        );
    }
    let id = sailpoint(&s, "sga", true).await;
    let (_, u) = s.bridge.get(&format!("/Users/{id}")).await;
    let groups: Vec<&str> = u["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["display"].as_str().unwrap())
        .collect();
    assert!(
        groups.contains(&"Viewer") && groups.contains(&"Approver"),
        "{u}"
    );
}

// ---------------------------------------------------------------------------------------
// Existing accounts: SCIM turned on over a directory that already holds everyone
// ---------------------------------------------------------------------------------------

fn link_config(mode: &str) -> [(&'static str, String); 1] {
    [(
        "on_existing = \"conflict\"",
        format!("match_on = [\"mail\"]\non_existing = \"{mode}\""),
    )]
}

async fn read_entry(ldap: &mut ldap3::Ldap, dn: &str, attr: &str) -> Option<ldap3::SearchEntry> {
    let (rs, _) = ldap
        .search(dn, ldap3::Scope::Base, "(objectClass=*)", vec!["*", attr])
        .await
        .unwrap()
        .success()
        .ok()?;
    rs.into_iter().next().map(ldap3::SearchEntry::construct)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_openldap_account_is_linked_on_create_keeping_what_scim_does_not_name() {
    let slapd = Slapd::start();
    let mut ldap = slapd.admin().await;
    let legacy = format!("uid=hlegacy,{PEOPLE}");
    add_entry(
        &mut ldap,
        &legacy,
        &[
            ("objectClass", &["inetOrgPerson"]),
            ("uid", &["hlegacy"]),
            ("cn", &["Hannah Legacy"]),
            ("sn", &["Legacy"]),
            ("mail", &["hannah@corp.example"]),
            ("roomNumber", &["B-204"]),
        ],
    )
    .await;
    // a group made by hand that lists her
    add_entry(
        &mut ldap,
        "cn=hand-made,ou=groups,dc=example,dc=org",
        &[
            ("objectClass", &["groupOfNames"]),
            ("cn", &["hand-made"]),
            ("member", &[legacy.as_str()]),
        ],
    )
    .await;
    // the same address outside the tenant's users (in the archive): never matched
    add_entry(
        &mut ldap,
        "uid=other,ou=archive,dc=example,dc=org",
        &[
            ("objectClass", &["inetOrgPerson"]),
            ("uid", &["other"]),
            ("cn", &["Other"]),
            ("sn", &["Other"]),
            ("mail", &["ivan@corp.example"]),
        ],
    )
    .await;
    let uuid = read_entry(&mut ldap, &legacy, "entryUUID")
        .await
        .unwrap()
        .attrs["entryUUID"][0]
        .clone();

    let [(from, to)] = link_config("conflict");
    let conflict = Bridge::start_with(test_config(&slapd, &[(from, &to)], "")).await;
    let hannah = json!({
        "schemas": [USER_SCHEMA],
        "userName": "hannah",
        "externalId": "entra-hannah",
        "name": {"givenName": "Hannah", "familyName": "Legacy"},
        "emails": [{"type": "work", "primary": true, "value": "hannah@corp.example"}],
        "title": "Analyst"
    });
    let (st, body) = conflict.post("/Users", &hannah).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["scimType"], "uniqueness");
    assert!(
        body["detail"].as_str().unwrap().contains("uid=hlegacy"),
        "{body}"
    );

    let [(from, to)] = link_config("link");
    let bridge = Bridge::start_with(test_config(&slapd, &[(from, &to)], "")).await;
    let (st, u) = bridge.post("/Users", &hannah).await;
    assert_eq!(st, StatusCode::CREATED, "{u}");
    assert_eq!(u["id"], uuid.as_str(), "the existing account's id");
    assert_eq!(u["externalId"], "entra-hannah");
    assert_eq!(u["title"], "Analyst");
    assert_eq!(u["groups"][0]["display"], "hand-made", "{u}");
    // renamed to the mapping's RDN; what SCIM does not name is kept
    let e = slapd.entry(&dn_of("hannah")).await.expect("uid=hannah");
    assert_eq!(e["roomnumber"], ["B-204"]);
    assert!(slapd.entry(&legacy).await.is_none());
    let members = slapd
        .entry("cn=hand-made,ou=groups,dc=example,dc=org")
        .await
        .unwrap()["member"]
        .iter()
        .map(|m| m.to_lowercase())
        .collect::<Vec<_>>();
    assert_eq!(members, [dn_of("hannah").to_lowercase()]);
    // the IdP retries the create: the same account again
    let (st, again) = bridge.post("/Users", &hannah).await;
    assert_eq!(
        (st, &again["id"]),
        (StatusCode::CREATED, &u["id"]),
        "{again}"
    );

    // outside the tenant's container nothing is matched: a new account
    let (st, ivan) = bridge
        .post(
            "/Users",
            &json!({"userName": "ivan", "emails": [{"type": "work", "value": "ivan@corp.example"}]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{ivan}");
    assert!(slapd
        .entry("uid=other,ou=archive,dc=example,dc=org")
        .await
        .is_some());
    assert!(slapd.entry(&dn_of("ivan")).await.is_some());

    // two accounts with one address: no guess
    for n in ["twin1", "twin2"] {
        add_entry(
            &mut ldap,
            &dn_of(n),
            &[
                ("objectClass", &["inetOrgPerson"]),
                ("uid", &[n]),
                ("cn", &[n]),
                ("sn", &[n]),
                ("mail", &["twin@corp.example"]),
            ],
        )
        .await;
    }
    let (st, body) = bridge
        .post(
            "/Users",
            &json!({"userName": "twin", "emails": [{"type": "work", "value": "twin@corp.example"}]}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("several accounts"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_ad_account_is_linked_on_create_keeping_what_scim_does_not_name() {
    let dc = samba();
    let mut ldap = dc.admin().await;
    ensure_ous(&mut ldap).await;
    let legacy = format!("CN=Ian Legacy,{AD_USERS}");
    add_entry(
        &mut ldap,
        &legacy,
        &[
            (
                "objectClass",
                &["top", "person", "organizationalPerson", "user"],
            ),
            ("cn", &["Ian Legacy"]),
            ("sAMAccountName", &["ilegacy"]),
            ("userPrincipalName", &["ilegacy@example.test"]),
            ("mail", &["ian@corp.example"]),
            ("description", &["made by hand in 2019"]),
        ],
    )
    .await;
    let before = read_entry(&mut ldap, &legacy, "objectGUID").await.unwrap();
    assert!(before.bin_attrs.contains_key("objectGUID") || before.attrs.contains_key("objectGUID"));

    let [(from, to)] = link_config("conflict");
    let conflict = Bridge::start_with(dc.config(&[(from, &to)], "")).await;
    let ian = json!({
        "schemas": [USER_SCHEMA],
        "userName": "ian@example.test",
        "displayName": "Ian Legacy",
        "externalId": "entra-ian",
        "emails": [{"type": "work", "primary": true, "value": "ian@corp.example"}],
        "title": "Engineer"
    });
    let (st, body) = conflict.post("/Users", &ian).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("Ian Legacy"),
        "{body}"
    );

    let [(from, to)] = link_config("link");
    let bridge = Bridge::start_with(dc.config(&[(from, &to)], "")).await;
    let (st, u) = bridge.post("/Users", &ian).await;
    assert_eq!(st, StatusCode::CREATED, "{u}");
    assert_eq!(u["userName"], "ian@example.test");
    assert_eq!(u["externalId"], "entra-ian");
    let after = read_entry(&mut ldap, &legacy, "objectGUID")
        .await
        .expect("same DN");
    assert_eq!(after.attrs["description"], ["made by hand in 2019"]);
    assert_eq!(after.attrs["userPrincipalName"], ["ian@example.test"]);
    assert_eq!(after.attrs["title"], ["Engineer"]);
    // the id SCIM answers with finds this very account
    let (st, got) = bridge
        .get(&format!("/Users/{}", u["id"].as_str().unwrap()))
        .await;
    assert_eq!(st, StatusCode::OK, "{got}");
    assert_eq!(got["displayName"], "Ian Legacy");
}
