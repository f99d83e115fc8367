use super::*;

fn now() -> OffsetDateTime {
    OffsetDateTime::parse("2026-11-25T00:00:00Z", &Rfc3339).unwrap()
}

#[test]
fn create_list_rotate_revoke_keep_only_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("tokens.json"));
    let secret = store.create("acme", "entra", None, now()).unwrap();
    let text = std::fs::read_to_string(store.path()).unwrap();
    assert!(!text.contains(&secret), "only the hash is stored");
    assert!(text.contains(&hex::encode(hash_token(&secret))));
    assert!(matches!(
        store.create("acme", "entra", None, now()),
        Err(StoreError::Exists { .. })
    ));
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(secret.starts_with(&listed[0].prefix));
    let second = store
        .rotate("acme", "entra", Duration::from_secs(3600), None, now())
        .unwrap();
    let file = load(store.path()).unwrap();
    let secrets = &file.tokens[0].secrets;
    assert_eq!(secrets.len(), 2);
    assert_eq!(secrets[0].sha256, hex::encode(hash_token(&second)));
    assert_eq!(secrets[1].expires.as_deref(), Some("2026-11-25T01:00:00Z"));
    store
        .rotate("acme", "entra", Duration::ZERO, None, now())
        .unwrap();
    assert_eq!(load(store.path()).unwrap().tokens[0].secrets.len(), 1);
    store.revoke("acme", "entra").unwrap();
    assert!(load(store.path()).unwrap().tokens.is_empty());
    assert!(matches!(
        store.revoke("acme", "entra"),
        Err(StoreError::NotFound { .. })
    ));
}

/// The state directory may belong to the service user while root runs `token create` in
/// it: a link planted for the lock file or the store is refused, and what it points at
/// (here a stand-in for /etc/shadow) is neither created, written nor re-owned.
#[test]
fn links_planted_in_the_state_directory_are_never_followed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let victim_dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("tokens.json");
    let store = Store::new(&store_path);

    let not_there = victim_dir.path().join("created-by-root");
    std::os::unix::fs::symlink(&not_there, dir.path().join("tokens.json.lock")).unwrap();
    let e = store.create("acme", "entra", None, now()).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert!(!not_there.exists(), "the lock's link was followed");
    std::fs::remove_file(dir.path().join("tokens.json.lock")).unwrap();

    let shadow = victim_dir.path().join("shadow");
    std::fs::write(&shadow, "root:$6$secret:19000::::::\n").unwrap();
    std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&shadow, &store_path).unwrap();
    let e = store.create("acme", "entra", None, now()).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    let e = store.list().unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&shadow).unwrap(),
        "root:$6$secret:19000::::::\n"
    );
    let m = std::fs::metadata(&shadow).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600, "mode untouched");
    assert!(
        std::fs::symlink_metadata(&store_path)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was not replaced by a store either"
    );
    // no temp file is left behind
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn expiries_read_as_admins_write_them() {
    let n = now();
    assert_eq!(
        parse_expiry("90d", n).unwrap(),
        Some(n + Duration::from_secs(90 * 86_400))
    );
    assert_eq!(
        parse_expiry("2027-01-31", n)
            .unwrap()
            .map(rfc3339)
            .as_deref(),
        Some("2027-02-01T00:00:00Z"),
        "valid through the whole day"
    );
    assert_eq!(parse_expiry("never", n).unwrap(), None);
    assert!(parse_expiry("soon", n).is_err());
    assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("0"), Some(Duration::ZERO));
}
