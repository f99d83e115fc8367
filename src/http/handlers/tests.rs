use super::*;

fn q(pairs: &[(&str, &str)]) -> Result<ListQuery, ScimError> {
    list_query(
        &pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        &crate::scim::Limits::default(),
        &USER_RESOURCE,
    )
}

#[test]
fn paging_parameters_clamp_and_reject_garbage() {
    let l = q(&[("startIndex", "-4"), ("count", "-1")]).unwrap();
    assert_eq!((l.start_index, l.count), (1, Some(0)));
    let l = q(&[("startindex", "3"), ("COUNT", "10")]).unwrap();
    assert_eq!((l.start_index, l.count), (3, Some(10)));
    assert_eq!(q(&[("count", "ten")]).unwrap_err().status, 400);
}

#[test]
fn the_password_cannot_be_sorted_on_or_asked_for() {
    for pairs in [
        &[("sortBy", "password")][..],
        &[(
            "sortBy",
            "urn:ietf:params:scim:schemas:core:2.0:User:password",
        )][..],
        &[("attributes", "userName,password")][..],
    ] {
        let e = q(pairs).unwrap_err();
        assert_eq!(
            e.scim_type,
            Some(crate::scim::ScimType::InvalidFilter),
            "{pairs:?}"
        );
    }
}

#[test]
fn malformed_filters_are_invalid_filter_errors_with_position() {
    let e = q(&[("filter", "userName eq")]).unwrap_err();
    assert_eq!(e.scim_type, Some(crate::scim::ScimType::InvalidFilter));
    assert!(e.detail.contains("character 12"), "{}", e.detail);
}
