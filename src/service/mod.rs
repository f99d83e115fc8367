//! The provisioning service: SCIM operations carried out against a `Directory` through the
//! mapping and the DN cache. Knows nothing of HTTP; the `http` module calls it.

use std::sync::Arc;

use crate::auth::Tenant;
pub use error::{ServiceError, ServiceResult, RETRY_AFTER_SECS};

pub mod creates;
pub mod cursor;
pub mod error;
pub mod groups;
pub mod journal;
pub mod list;
mod listing;
pub mod memberships;
pub mod recovery;
pub mod repair;
pub mod store;
pub mod users;
pub mod view;
pub mod write;

pub use view::View;

/// Who is asking: the tenant fixes the directory subtree. (How they reach us, the URL, is the
/// HTTP layer's: the service answers views without URLs.)
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub tenant: Arc<Tenant>,
    /// The request's `If-Match` header: writes apply only to this version.
    pub if_match: Option<String>,
}

/// The bare version inside an entity tag: `W/"abc"` → `abc`.
pub fn etag_value(tag: &str) -> &str {
    let t = tag.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    t.trim_matches('"')
}

/// The entity tag for a version (weak: equal versions mean equal resources, not bytes).
pub fn etag(version: &str) -> String {
    ["W/\"", version, "\""].concat()
}

/// A directory's diagnostic text as a client may see it: what it says about the values
/// (schema, syntax, policy), without what it says about the server itself (Samba names its
/// source files: `../../source4/dsdb/…c:1234`), on one line, bounded. The whole text goes to
/// the log.
pub(crate) fn for_clients(text: &str) -> String {
    let internal = |w: &str| {
        let w = w.trim_matches(|c: char| "()[]{},;".contains(c));
        w.contains("../")
            || w.contains("source3/")
            || w.contains("source4/")
            || w.contains("/lib/")
            || [".c:", ".h:", ".c", ".h"]
                .iter()
                .any(|s| w.ends_with(s) && w.contains('/'))
    };
    let kept: Vec<&str> = text.split_whitespace().filter(|w| !internal(w)).collect();
    let one_line = kept.join(" ");
    crate::logging::shorten(&one_line, 300).into_owned()
}

/// LDAP GeneralizedTime as the directories write it (`20261124203607Z`, AD's
/// `20261124203607.0Z`): UTC, seconds, maybe a fraction.
const GENERALIZED_TIME: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year][month][day][hour][minute][second][optional [.[subsecond]]]Z"
);

/// LDAP GeneralizedTime → RFC 3339 in whole seconds (SCIM's `meta.created`/`lastModified`).
pub fn generalized_to_rfc3339(g: &str) -> Option<String> {
    let t = time::PrimitiveDateTime::parse(g, GENERALIZED_TIME).ok()?;
    t.replace_nanosecond(0)
        .ok()?
        .assume_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_ldap_timestamps() {
        assert_eq!(
            generalized_to_rfc3339("20261124203607Z").as_deref(),
            Some("2026-11-24T20:36:07Z")
        );
        assert_eq!(
            generalized_to_rfc3339("20261124203607.123456Z").as_deref(),
            Some("2026-11-24T20:36:07Z")
        );
        assert_eq!(generalized_to_rfc3339("2026"), None);
    }

    #[test]
    fn converts_ad_timestamps_and_refuses_impossible_dates() {
        assert_eq!(
            generalized_to_rfc3339("20261124203607.0Z").as_deref(),
            Some("2026-11-24T20:36:07Z")
        );
        assert_eq!(generalized_to_rfc3339("20261324203607Z"), None);
        assert_eq!(generalized_to_rfc3339("20261124203607"), None);
    }
}
