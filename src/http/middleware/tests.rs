use super::*;

fn op(method: Method, path: &str) -> Option<(&'static str, &'static str, Option<String>)> {
    ScimOperation::of(&method, path).map(|o| (o.name, o.resource_type, o.id))
}

#[test]
fn operations_are_named_from_method_and_path() {
    assert_eq!(
        op(Method::POST, "/scim/v2/Users"),
        Some(("create", "User", None))
    );
    assert_eq!(
        op(Method::PATCH, "/Groups/g%201"),
        Some(("patch", "Group", Some("g%201".into())))
    );
    assert_eq!(op(Method::GET, "/Users"), Some(("list", "User", None)));
    assert_eq!(
        op(Method::POST, "/Users/.search"),
        Some(("search", "User", None))
    );
    assert_eq!(op(Method::POST, "/.search"), Some(("search", "*", None)));
    assert_eq!(op(Method::GET, "/Schemas"), None);
    assert_eq!(op(Method::POST, "/Users/x"), None);
    assert_eq!(op(Method::DELETE, "/Users/a/b"), None);
    assert!(ScimOperation::of(&Method::PUT, "/Users/x")
        .unwrap()
        .is_write());
    assert!(!ScimOperation::of(&Method::POST, "/Users/.search")
        .unwrap()
        .is_write());
}
