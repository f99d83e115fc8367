//! What a service operation fails with, in the service's own terms. The service does not
//! choose HTTP statuses: `http::error` turns each variant into its SCIM error (RFC 7644
//! §3.12) in one place.

use crate::directory::DirectoryError;
use crate::scim::{ScimError, ScimType};

/// Seconds a client should wait before retrying when the directory is unavailable.
pub const RETRY_AFTER_SECS: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The request breaks a SCIM rule (filter, path, PATCH, value, cursor): the client must
    /// change it; `kind` is the RFC's `scimType`.
    #[error("{}: {detail}", kind.as_str())]
    Invalid { kind: ScimType, detail: String },
    /// No resource of this type with this id in the tenant's part of the directory.
    #[error("not found: {0}")]
    NotFound(String),
    /// A unique value (userName, displayName, an RDN) is held; the detail names the holder so
    /// an IdP can link to it.
    #[error("taken: {0}")]
    Taken(String),
    /// The directory's state forbids the change, and no uniqueness rule is the cause.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The client's `If-Match` version is no longer current.
    #[error("stale version: {0}")]
    Stale(String),
    /// The bridge's own directory account may not make this change.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The directory cannot answer now (down, slow, unconfirmed, guarded); retry later.
    #[error("unavailable: {detail}")]
    Unavailable { detail: String, retry_after: u32 },
    /// The safety valve holds the tenant's removals: nothing was changed; an admin must
    /// release them (`crate::safety`).
    #[error("held: {detail}")]
    Held { detail: String, retry_after: u32 },
    /// A fault the client cannot fix: configuration against directory, an unexpected answer.
    #[error("internal: {0}")]
    Internal(String),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn bad_request(kind: ScimType, detail: impl Into<String>) -> Self {
        ServiceError::Invalid {
            kind,
            detail: detail.into(),
        }
    }
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidValue, detail)
    }
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidPath, detail)
    }
    pub fn unavailable(detail: impl Into<String>, retry_after: u32) -> Self {
        ServiceError::Unavailable {
            detail: detail.into(),
            retry_after,
        }
    }

    /// The sentence a person reads (the SCIM `detail`, a log field).
    pub fn detail(&self) -> &str {
        match self {
            ServiceError::Invalid { detail, .. }
            | ServiceError::Unavailable { detail, .. }
            | ServiceError::Held { detail, .. } => detail,
            ServiceError::NotFound(d)
            | ServiceError::Taken(d)
            | ServiceError::Conflict(d)
            | ServiceError::Stale(d)
            | ServiceError::Forbidden(d)
            | ServiceError::Internal(d) => d,
        }
    }
}

/// A held removal: the audit trail says so, and the client is told what happened and who
/// can release it.
impl From<crate::safety::Held> for ServiceError {
    fn from(h: crate::safety::Held) -> ServiceError {
        crate::audit::held();
        ServiceError::Held {
            detail: h.detail(),
            retry_after: crate::safety::HELD_RETRY_AFTER_SECS,
        }
    }
}

/// The protocol core (`scim`, `mapping`) reports a refused request as the SCIM error the RFC
/// names for it; in the service it is one of ours again, matched by its `scimType`.
impl From<ScimError> for ServiceError {
    fn from(e: ScimError) -> ServiceError {
        match e.scim_type {
            Some(ScimType::Uniqueness) => ServiceError::Taken(e.detail),
            Some(kind) => ServiceError::Invalid {
                kind,
                detail: e.detail,
            },
            None if e.status == 404 => ServiceError::NotFound(e.detail),
            None => ServiceError::Internal(e.detail),
        }
    }
}

/// The one place where directory failures get their meaning for a client.
impl From<DirectoryError> for ServiceError {
    fn from(e: DirectoryError) -> ServiceError {
        match e {
            DirectoryError::Unavailable(why) => {
                tracing::warn!(reason = %why, "directory unavailable");
                ServiceError::unavailable(
                    "the directory is unavailable; retry later",
                    RETRY_AFTER_SECS,
                )
            }
            DirectoryError::Timeout => ServiceError::unavailable(
                "the directory did not answer in time; retry later",
                RETRY_AFTER_SECS,
            ),
            // the write pipeline reads the directory to learn the outcome; this is what is
            // left when even that failed
            DirectoryError::Unknown(_) => ServiceError::unavailable(
                "the directory did not confirm the change and could not be asked whether it was made: read the resource before retrying",
                RETRY_AFTER_SECS,
            ),
            DirectoryError::BindRefused { retry_in, .. } => ServiceError::unavailable(
                "the directory refused the bridge's service account (invalidCredentials): the directory admin must check ldap.bind_dn and its password",
                u32::try_from(retry_in).unwrap_or(60).max(1),
            ),
            DirectoryError::NoSuchObject(_) => {
                ServiceError::NotFound("the resource no longer exists".into())
            }
            DirectoryError::AlreadyExists(dn) => {
                ServiceError::Taken(format!("a directory entry named {dn} already exists"))
            }
            DirectoryError::Rejected(why) | DirectoryError::NoSuchValue(why) => {
                tracing::info!(reason = %why, "the directory refused the values");
                ServiceError::invalid_value(format!(
                    "the directory refused the values: {}",
                    super::for_clients(&why)
                ))
            }
            DirectoryError::SizeLimit(_) => ServiceError::bad_request(
                ScimType::TooMany,
                "more results than the directory lets the bridge's account read: narrow the filter, \
                 or have the directory admin allow paged searches for it (OpenLDAP: size.prtotal=unlimited)",
            ),
            DirectoryError::PreconditionFailed(_) => ServiceError::Stale(
                "the resource changed since the version given in If-Match; read it again".into(),
            ),
            DirectoryError::InsufficientAccess(why) => {
                tracing::error!(reason = %why, "the bridge's service account lacks rights");
                ServiceError::Forbidden(
                    "the bridge's directory account may not make this change; ask the directory admin to grant it".into(),
                )
            }
            DirectoryError::Unsupported(what) => {
                tracing::error!(reason = %what, "the directory lacks what the configuration relies on");
                ServiceError::Internal(format!("the server's configuration does not fit its directory: {what}"))
            }
            DirectoryError::Other { code, message } => {
                tracing::error!(code, reason = %message, "unexpected LDAP result");
                ServiceError::Internal(format!(
                    "the directory answered with an unexpected error ({}, code {code}); the server log has its text",
                    crate::directory::pool::result_code_name(code)
                ))
            }
        }
    }
}
