use super::*;

fn op(method: Method, path: &str) -> Option<(&'static str, &'static str)> {
    ScimOperation::of(&method, path).map(|o| (o.name, o.resource_type))
}

#[test]
fn operations_are_named_from_method_and_path() {
    assert_eq!(op(Method::POST, "/scim/v2/Users"), Some(("create", "User")));
    assert_eq!(
        op(Method::PATCH, "/scim/v2/Groups/g%201"),
        Some(("patch", "Group"))
    );
    assert_eq!(op(Method::GET, "/scim/v2/Users"), Some(("list", "User")));
    assert_eq!(op(Method::HEAD, "/scim/v2/Users/x"), Some(("get", "User")));
    assert_eq!(
        op(Method::POST, "/scim/v2/Users/.search"),
        Some(("search", "User"))
    );
    assert_eq!(op(Method::POST, "/scim/v2/.search"), Some(("search", "*")));
    assert!(ScimOperation::of(&Method::PUT, "/scim/v2/Users/x")
        .unwrap()
        .is_write());
    assert!(!ScimOperation::of(&Method::POST, "/scim/v2/Users/.search")
        .unwrap()
        .is_write());
}

#[test]
fn requests_the_resource_routes_do_not_serve_are_no_operation() {
    // these are the router's 404s and 405s, answered without asking for credentials
    for (method, path) in [
        (Method::GET, "/scim/v2/Schemas"),
        (Method::GET, "/Users"),
        (Method::POST, "/scim/v2/Users/x"),
        (Method::DELETE, "/scim/v2/Users/a/b"),
        (Method::GET, "/scim/v2/Users/"),
        (Method::GET, "/scim/v2/Users/.search"),
        (Method::GET, "/scim/v2/.search"),
        (Method::OPTIONS, "/scim/v2/Users"),
        (Method::GET, "/scim/v2/Usersx"),
    ] {
        assert_eq!(op(method.clone(), path), None, "{method} {path}");
    }
}

#[test]
fn the_id_segment_is_taken_as_sent() {
    assert_eq!(
        ScimOperation::id_segment("/scim/v2/Groups/g%201"),
        Some("g%201")
    );
    assert_eq!(ScimOperation::id_segment("/scim/v2/Users"), None);
    assert_eq!(ScimOperation::id_segment("/scim/v2/Users/.search"), None);
}

#[test]
fn routes_are_labelled_by_template_and_anything_else_is_unmatched() {
    for (path, label) in [
        ("/healthz", "/healthz"),
        ("/scim/v2/Users", "/scim/v2/Users"),
        ("/scim/v2/Users/.search", "/scim/v2/Users/.search"),
        ("/scim/v2/Users/2819c223", "/scim/v2/Users/{id}"),
        ("/scim/v2/Groups/a%2Fb", "/scim/v2/Groups/{id}"),
        ("/scim/v2/Schemas/urn:x", "/scim/v2/Schemas/{id}"),
        ("/scim/v2/Users/", "unmatched"),
        ("/scim/v2/Users/a/b", "unmatched"),
        ("/scim/v2", "unmatched"),
        ("/", "unmatched"),
        ("/metricsx", "unmatched"),
    ] {
        assert_eq!(route_label(path), label, "{path}");
    }
}

#[test]
fn every_route_is_labelled_as_itself() {
    for route in ROUTES {
        assert_eq!(route_label(&route.replace("{id}", "x")), *route);
    }
}
