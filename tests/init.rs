//! `scim2ldap init` against a real slapd: it fits the config to what the directory runs
//! (no memberOf overlay: no memberOf in the config), refuses to overwrite a config, and
//! names the flag and the OUs when a container cannot be found. (The configs it writes for
//! slapd and Samba serving the IdPs' sequences: `tests/idp.rs`.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use std::path::Path;

use common::*;

/// Runs `scim2ldap init` on `slapd` with `args`; (succeeded, stdout, stderr).
fn init(slapd: &Slapd, dir: &Path, args: &[&str]) -> (bool, String, String) {
    let password = dir.join("bind_password");
    std::fs::write(&password, ADMIN_PW).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scim2ldap"))
        .args(["init", "--url", &slapd.ldapi_url(), "--bind-dn", ADMIN_DN])
        .arg("--bind-password-file")
        .arg(&password)
        .arg("--output")
        .arg(dir.join("config.toml"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A group with a member, so that init can see whether slapd keeps the member's memberOf.
async fn a_group_with_a_member(slapd: &Slapd) {
    let mut ldap = slapd.admin().await;
    add_person(&mut ldap, "probe", "Probe").await;
    add_entry(
        &mut ldap,
        "cn=probe-group,ou=groups,dc=example,dc=org",
        &[
            ("objectClass", &["groupOfNames"]),
            ("cn", &["probe-group"]),
            ("member", &["uid=probe,ou=people,dc=example,dc=org"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_memberof_overlay_is_used_only_where_it_runs() {
    for (slapd, runs) in [
        (Slapd::start_without_memberof(), false),
        (Slapd::start(), true),
    ] {
        a_group_with_a_member(&slapd).await;
        let dir = tempfile::tempdir().unwrap();
        let (ok, out, err) = init(&slapd, dir.path(), &[]);
        assert!(ok, "{out}{err}");
        let config = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
        let header = if runs {
            "memberOf: yes"
        } else {
            "memberOf: no"
        };
        assert!(config.contains(header), "{config}");
        assert_eq!(
            config
                .lines()
                .any(|l| l.starts_with("member_of_attribute = \"memberOf\"")),
            runs,
            "{config}"
        );
        assert!(out.contains("check-config: the config is valid"), "{out}");
        let (code, _, err) = check_config(&config);
        assert_eq!(code, Some(0), "{err}");
    }
}

#[test]
fn an_existing_config_is_kept_unless_forced() {
    let slapd = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "# mine\n").unwrap();
    let (ok, _, err) = init(&slapd, dir.path(), &[]);
    assert!(!ok);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("config.toml")).unwrap(),
        "# mine\n"
    );
    let (ok, out, err) = init(&slapd, dir.path(), &["--force"]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("config.toml.bak")).unwrap(),
        "# mine\n"
    );
}

#[test]
fn a_container_that_is_not_there_names_the_flag_and_the_ous() {
    let slapd = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = init(&slapd, dir.path(), &["--users-ou", "staff"]);
    assert!(!ok);
    assert!(err.contains("--users-ou staff: no such OU"), "{err}");
    assert!(err.contains("ou=people,dc=example,dc=org"), "{err}");
    assert!(!dir.path().join("config.toml").exists(), "nothing written");
    let (ok, _, err) = init(
        &slapd,
        dir.path(),
        &[
            "--users-ou",
            "ou=people,dc=example,dc=org",
            "--groups-ou",
            "people",
        ],
    );
    assert!(!ok);
    assert!(err.contains("three different OUs"), "{err}");
}
