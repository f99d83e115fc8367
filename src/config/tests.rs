use super::*;
use crate::directory::DirectoryKind;

const EXAMPLE: &str = include_str!("../../config.example.toml");

/// `[ldap]` with `url`, a bind DN and nothing else set.
fn ldap_config(url: &str) -> LdapConfig {
    LdapConfig {
        url: url.into(),
        urls: Vec::new(),
        discover: None,
        failback_after_secs: 60,
        health_interval_secs: 2,
        bind_dn: "cn=a".into(),
        bind_password: None,
        bind_password_file: None,
        bind_password_credential: None,
        starttls: false,
        allow_plain_ldap: false,
        ca_file: None,
        connect_timeout_secs: 1,
        operation_timeout_secs: 1,
        pool_size: 1,
    }
}

#[test]
fn several_servers_come_from_urls_or_the_environment_and_one_way_is_chosen() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("config.toml", EXAMPLE)?;
        jail.set_env(
            "SCIM2LDAP_LDAP__URLS",
            r#"["ldaps://dc1.example.org","ldaps://dc2.example.org:6360"]"#,
        );
        let err = match load_raw(Path::new("config.toml")) {
            Ok(raw) => raw.ldap.check().unwrap_err(),
            Err(e) => e,
        };
        assert_eq!(err.key, "ldap.urls", "url and urls both set: {err}");
        jail.set_env("SCIM2LDAP_LDAP__URL", "");
        let raw = load_raw(Path::new("config.toml")).map_err(|e| e.to_string())?;
        raw.ldap.check().map_err(|e| e.to_string())?;
        assert_eq!(
            raw.ldap.servers(),
            [
                ("ldap.urls[0]".to_owned(), "ldaps://dc1.example.org"),
                ("ldap.urls[1]".to_owned(), "ldaps://dc2.example.org:6360")
            ]
        );
        Ok(())
    });
}

#[test]
fn every_listed_server_is_checked_and_named_by_its_index() {
    let mut l = ldap_config("");
    l.urls = vec!["ldaps://dc1".into(), "ldap://dc2.example.org".into()];
    let err = l.check().unwrap_err();
    assert_eq!(err.key, "ldap.urls[1]", "{err}");
    assert!(err.problem.contains("plain LDAP"), "{err}");
    l.urls = vec!["ldaps://dc1".into(), "ldaps://DC1".into()];
    assert_eq!(l.check().unwrap_err().key, "ldap.urls[1]");
    l.urls = vec!["ldaps://admin:secret@dc1".into()];
    let err = l.check().unwrap_err();
    assert!(
        err.problem.contains("credentials") && !err.to_string().contains("secret"),
        "{err}"
    );
    l.urls.clear();
    assert_eq!(l.check().unwrap_err().key, "ldap.url", "no server at all");
    l.urls = vec!["ldaps://dc1".into(), "ldap://127.0.0.2:389".into()];
    l.check().unwrap();
    assert!(
        !l.protected(),
        "one server in clear is enough to refuse passwords"
    );
}

#[test]
fn discovery_needs_a_domain_and_tls_and_reads_a_dns_server_with_or_without_port() {
    let mut l = ldap_config("");
    l.discover = Some(DiscoverConfig {
        domain: "example.test".into(),
        site: None,
        dns_server: Some("127.0.0.2".into()),
        ldaps: false,
        ldaps_port: 636,
    });
    assert_eq!(l.check().unwrap_err().key, "ldap.discover", "plain LDAP");
    l.starttls = true;
    l.check().unwrap();
    assert!(l.protected());
    let d = l.discover.as_ref().unwrap();
    let found = d.to_discovery(DirectoryKind::ActiveDirectory).unwrap();
    assert_eq!(found.dns_server, Some("127.0.0.2:53".parse().unwrap()));
    assert!(found.active_directory);
    let mut bad = d.clone();
    bad.dns_server = Some("dns.example.test".into());
    assert_eq!(
        bad.to_discovery(DirectoryKind::Openldap).unwrap_err().key,
        "ldap.discover.dns_server"
    );
}

#[test]
fn environment_overrides_nested_keys_and_adds_tokens() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("config.toml", EXAMPLE)?;
        jail.set_env("SCIM2LDAP_LDAP__URL", "ldaps://ldap.example.org");
        jail.set_env("SCIM2LDAP_SERVER__LISTEN", "127.0.0.1:9999");
        jail.set_env(
            "SCIM2LDAP_TENANTS__DEFAULT__TOKENS__CI__SHA256",
            "ab".repeat(32),
        );
        jail.set_env("SCIM2LDAP_CONFIG", "/not/a/setting");
        let raw = load_raw(Path::new("config.toml")).map_err(|e| e.to_string())?;
        assert_eq!(raw.ldap.url, "ldaps://ldap.example.org");
        assert_eq!(raw.server.listen.port(), 9999);
        assert_eq!(raw.tenants["default"].tokens["ci"].sha256, "ab".repeat(32));
        assert_eq!(raw.users.attributes.len(), 33, "dotted keys survive");
        Ok(())
    });
}

#[test]
fn unknown_keys_are_named_with_the_expected_ones() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("config.toml", &EXAMPLE.replace("pool_size", "pool_sise"))?;
        let err = load_raw(Path::new("config.toml")).unwrap_err();
        assert_eq!(err.key, "ldap.pool_sise");
        assert!(err.problem.contains("pool_sise"), "{err}");
        assert!(err.fix.contains("pool_size"), "{err}");
        Ok(())
    });
}

#[test]
fn one_bind_password_source_is_required() {
    let mut l = ldap_config("ldap://x");
    assert_eq!(
        l.password_with(None).unwrap_err().key,
        "ldap.bind_password_file"
    );
    l.bind_password = Some("s3cret".into());
    assert_eq!(l.password().unwrap(), "s3cret");
    assert!(
        !format!("{l:?}").contains("s3cret"),
        "Debug never shows the password"
    );
    l.bind_password_file = Some("/x".into());
    assert!(l
        .password_with(None)
        .unwrap_err()
        .problem
        .contains("beside"));
    l.url = "http://x".into();
    assert_eq!(l.check().unwrap_err().key, "ldap.url");
}

#[test]
fn plain_ldap_is_accepted_only_to_loopback_unless_allowed() {
    let mut l = ldap_config("");
    for (url, ok) in [
        ("ldap://127.0.0.1:389", true),
        ("ldap://127.1.2.3", true),
        ("ldap://[::1]:389", true),
        ("ldap://localhost", true),
        ("ldap://10.0.0.5", false),
        ("ldap://dc1.example.test", false),
        ("ldaps://dc1.example.test", true),
        ("ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi", true),
    ] {
        l.url = url.into();
        assert_eq!(l.check().is_ok(), ok, "{url}");
    }
    l.url = "ldap://dc1.example.test".into();
    l.starttls = true;
    assert!(l.check().is_ok() && l.protected() && !l.plain_to_network());
    l.starttls = false;
    l.allow_plain_ldap = true;
    assert!(l.check().is_ok() && !l.protected() && l.plain_to_network());
    l.url = "ldapi://%2Frun%2Fldapi".into();
    assert!(l.protected());
    l.starttls = true;
    assert_eq!(l.check().unwrap_err().key, "ldap.starttls");
}

#[test]
fn the_bind_password_comes_from_the_systemd_credential_under_systemd() {
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("bind_password"), "from-systemd\n").unwrap();
    let by_hand = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(by_hand.path(), "from-file").unwrap();
    let mut l = LdapConfig {
        bind_password_credential: Some("bind_password".into()),
        ..ldap_config("ldap://x")
    };
    assert_eq!(
        l.password_with(Some(creds.path().to_owned())).unwrap(),
        "from-systemd"
    );
    let outside = l.password_with(None).unwrap_err();
    assert_eq!(outside.key, "ldap.bind_password_credential");
    l.bind_password_file = Some(by_hand.path().to_owned());
    assert_eq!(
        l.password_with(None).unwrap(),
        "from-file",
        "by hand: the file"
    );
    assert_eq!(
        l.password_with(Some(creds.path().to_owned())).unwrap(),
        "from-systemd"
    );
    let missing = l
        .password_with(Some(tempfile::tempdir().unwrap().path().to_owned()))
        .unwrap_err();
    assert!(
        missing.fix.contains("LoadCredential=bind_password:"),
        "{missing}"
    );
}
