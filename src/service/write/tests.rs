use super::*;

fn entry(attrs: &[(&str, &[&str])]) -> Entry {
    Entry {
        dn: Dn::new("uid=a,ou=p"),
        id: "x".into(),
        attrs: attrs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    v.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect(),
    }
}

#[test]
fn a_change_holds_when_the_entry_shows_its_effect() {
    let e = entry(&[("title", &["Boss"]), ("member", &["uid=b,ou=p"])]);
    let r =
        |a: &str, v: &[&str]| Change::Replace(a.into(), v.iter().map(|s| s.to_string()).collect());
    assert_eq!(change_holds(&e, &r("title", &["Boss"])), Some(true));
    assert_eq!(change_holds(&e, &r("title", &["Intern"])), Some(false));
    assert_eq!(
        change_holds(&e, &r("mail", &[])),
        Some(true),
        "a cleared attribute is absent"
    );
    assert_eq!(
        change_holds(&e, &r("unicodePwd", &["x"])),
        None,
        "passwords cannot be read"
    );
    let v = Values {
        attr: "member".into(),
        adds: vec![Dn::new("UID=B,ou=p")],
        deletes: vec![Dn::new("uid=c,ou=p")],
    };
    assert!(values_hold(&e, &v), "DNs compare canonically");
    assert!(!values_hold(&e, &v.inverse()));
}

#[test]
fn a_rename_moves_the_dn() {
    let op = Op::Rename {
        dn: Dn::new("uid=a,ou=people,dc=x"),
        rdn: "uid=a".into(),
        parent: Some("ou=archive,dc=x".into()),
        assertion: None,
    };
    assert_eq!(op.dn_after(), Some(Dn::new("uid=a,ou=archive,dc=x")));
    assert_eq!(
        op.to_string(),
        "rename uid=a,ou=people,dc=x to uid=a,ou=archive,dc=x"
    );
}
