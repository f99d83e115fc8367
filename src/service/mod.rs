//! The provisioning service: SCIM operations carried out against a `Directory` through the
//! mapping and the DN cache. Knows nothing of HTTP; the `http` module calls it.

use std::sync::Arc;

use crate::auth::Tenant;
use crate::directory::DirectoryError;
use crate::scim::ScimError;

pub mod creates;
pub mod cursor;
pub mod discovery;
pub mod groups;
pub mod journal;
pub mod list;
pub mod memberships;
pub mod recovery;
pub mod repair;
pub mod store;
pub mod users;
pub mod write;

/// Who is asking and how they reach us: the tenant fixes the directory subtree, the base URL
/// goes into `meta.location`.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub tenant: Arc<Tenant>,
    /// Absolute URL of `/scim/v2`, without a trailing slash.
    pub base_url: String,
    /// The request's `If-Match` header: writes apply only to this version.
    pub if_match: Option<String>,
}

/// A resource as the service answers it: the SCIM JSON, and what the HTTP layer makes
/// headers of (`ETag`, `Location`), so that nothing is read back out of the JSON.
#[derive(Debug, Clone)]
pub struct Resource {
    pub body: serde_json::Value,
    /// The entity tag (`W/"…"`), when the directory keeps a version.
    pub version: Option<String>,
    /// Absolute URL of the resource.
    pub location: String,
    /// Set by a create: remembered (`creates`) when the answer cannot be delivered, so that
    /// the IdP's retry of the same POST learns the id.
    pub created: Option<creates::CreateReceipt>,
}

/// The bare version inside an entity tag: `W/"abc"` → `abc`.
pub fn etag_value(tag: &str) -> &str {
    let t = tag.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    t.trim_matches('"')
}

/// The entity tag for a version (weak: equal versions mean equal resources, not bytes).
pub fn etag(version: &str) -> String {
    format!("W/\"{version}\"")
}

/// Seconds a client should wait before retrying when the directory is unavailable.
const RETRY_AFTER_SECS: u32 = 5;

/// The one place where directory failures become SCIM errors (RFC 7644 §3.12).
impl From<DirectoryError> for ScimError {
    fn from(e: DirectoryError) -> ScimError {
        match e {
            DirectoryError::Unavailable(why) => {
                tracing::warn!(reason = %why, "directory unavailable");
                ScimError::unavailable(
                    "the directory is unavailable; retry later",
                    RETRY_AFTER_SECS,
                )
            }
            DirectoryError::Timeout => ScimError::unavailable(
                "the directory did not answer in time; retry later",
                RETRY_AFTER_SECS,
            ),
            // the write pipeline reads the directory to learn the outcome; this is what is
            // left when even that failed
            DirectoryError::Unknown(_) => ScimError::unavailable(
                "the directory did not confirm the change and could not be asked whether it was made: read the resource before retrying",
                RETRY_AFTER_SECS,
            ),
            DirectoryError::BindRefused { retry_in, .. } => ScimError::unavailable(
                "the directory refused the bridge's service account (invalidCredentials): the directory admin must check ldap.bind_dn and its password",
                u32::try_from(retry_in).unwrap_or(60).max(1),
            ),
            DirectoryError::NoSuchObject(_) => {
                ScimError::not_found("the resource no longer exists")
            }
            DirectoryError::AlreadyExists(dn) => {
                ScimError::uniqueness(format!("a directory entry named {dn} already exists"))
            }
            DirectoryError::Rejected(why) | DirectoryError::NoSuchValue(why) => {
                tracing::info!(reason = %why, "the directory refused the values");
                ScimError::invalid_value(format!(
                    "the directory refused the values: {}",
                    for_clients(&why)
                ))
            }
            DirectoryError::SizeLimit(_) => ScimError::bad_request(
                crate::scim::ScimType::TooMany,
                "more results than the directory lets the bridge's account read: narrow the filter, \
                 or have the directory admin allow paged searches for it (OpenLDAP: size.prtotal=unlimited)",
            ),
            DirectoryError::PreconditionFailed(_) => ScimError::precondition_failed(
                "the resource changed since the version given in If-Match; read it again",
            ),
            DirectoryError::InsufficientAccess(why) => {
                tracing::error!(reason = %why, "the bridge's service account lacks rights");
                ScimError::new(
                    403,
                    None,
                    "the bridge's directory account may not make this change; ask the directory admin to grant it",
                )
            }
            DirectoryError::Unsupported(what) => {
                tracing::error!(reason = %what, "the directory lacks what the configuration relies on");
                ScimError::internal(format!("the server's configuration does not fit its directory: {what}"))
            }
            DirectoryError::Other { code, message } => {
                tracing::error!(code, reason = %message, "unexpected LDAP result");
                ScimError::internal(format!(
                    "the directory answered with an unexpected error ({}, code {code}); the server log has its text",
                    crate::directory::pool::result_code_name(code)
                ))
            }
        }
    }
}

/// A directory's diagnostic text as a client may see it: what it says about the values
/// (schema, syntax, policy), without what it says about the server itself (Samba names its
/// source files: `../../source4/dsdb/…c:1234`), on one line, bounded. The whole text goes to
/// the log.
fn for_clients(text: &str) -> String {
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

    #[test]
    fn directory_internals_never_reach_a_client() {
        let samba = "00002089: subtree_delete: Unable to delete a non-leaf node (it has 3 children)! at ../../source4/dsdb/samdb/ldb_modules/subtree_delete.c:142";
        let e: ScimError = DirectoryError::Rejected(samba.into()).into();
        assert!(
            !e.detail.contains("source4") && !e.detail.contains(".c:"),
            "{}",
            e.detail
        );
        assert!(e.detail.contains("non-leaf"), "{}", e.detail);
        let e: ScimError = DirectoryError::Other {
            code: 80,
            message: samba.into(),
        }
        .into();
        assert_eq!(e.status, 500);
        assert!(
            !e.detail.contains("source4") && !e.detail.contains("subtree"),
            "{}",
            e.detail
        );
        assert!(e.detail.contains("other"), "{}", e.detail);
        let long = "x".repeat(5000);
        let e: ScimError = DirectoryError::Rejected(format!("a\nb {long}")).into();
        assert!(
            e.detail.len() < 400 && !e.detail.contains('\n'),
            "{}",
            e.detail
        );
    }

    #[test]
    fn directory_errors_become_scim_errors() {
        let e: ScimError = DirectoryError::Unavailable("connection refused".into()).into();
        assert_eq!((e.status, e.retry_after), (503, Some(RETRY_AFTER_SECS)));
        assert!(
            !e.detail.contains("refused"),
            "internal details stay in the log"
        );
        let e: ScimError = DirectoryError::BindRefused {
            reason: "invalidCredentials".into(),
            retry_in: 8,
        }
        .into();
        assert_eq!((e.status, e.retry_after), (503, Some(8)));
        assert!(e.detail.contains("service account"), "{}", e.detail);
        let e: ScimError = DirectoryError::AlreadyExists("uid=a".into()).into();
        assert_eq!(e.status, 409);
        let e: ScimError = DirectoryError::Rejected("invalidAttributeSyntax: x".into()).into();
        assert_eq!(
            (e.status, e.scim_type),
            (400, Some(crate::scim::ScimType::InvalidValue))
        );
    }
}
