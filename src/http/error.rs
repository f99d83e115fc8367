//! The one place where the service's errors become SCIM errors (RFC 7644 §3.12): the status
//! and `scimType` of each failure are chosen here, not by the service.

use crate::directory::DirectoryError;
use crate::scim::ScimError;
use crate::service::ServiceError;

use super::response::HttpError;

impl From<ServiceError> for ScimError {
    fn from(e: ServiceError) -> ScimError {
        match e {
            ServiceError::Invalid { kind, detail } => ScimError::bad_request(kind, detail),
            ServiceError::NotFound(d) => ScimError::not_found(d),
            ServiceError::Taken(d) => ScimError::uniqueness(d),
            ServiceError::Conflict(d) => ScimError::conflict(d),
            ServiceError::Stale(d) => ScimError::precondition_failed(d),
            ServiceError::Forbidden(d) => ScimError::new(403, None, d),
            ServiceError::Unavailable {
                detail,
                retry_after,
            } => ScimError::unavailable(detail, retry_after),
            // 503, not 4xx: IdPs retry a 503 later instead of giving the account up
            ServiceError::Held {
                detail,
                retry_after,
            } => ScimError::unavailable(detail, retry_after),
            ServiceError::Internal(d) => ScimError::internal(d),
        }
    }
}

/// A directory failure as a client sees it: its service meaning, then its SCIM error.
impl From<DirectoryError> for ScimError {
    fn from(e: DirectoryError) -> ScimError {
        ServiceError::from(e).into()
    }
}

impl From<ServiceError> for HttpError {
    fn from(e: ServiceError) -> Self {
        HttpError(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::RETRY_AFTER_SECS;

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
