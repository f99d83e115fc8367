//! SCIM responses: `application/scim+json` bodies, and SCIM errors as HTTP responses (the
//! one place where a `ScimError` becomes status, headers and body).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::scim::ScimError;

pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// A SCIM error on its way out as an HTTP response.
#[derive(Debug)]
pub struct HttpError(pub ScimError);

impl From<ScimError> for HttpError {
    fn from(e: ScimError) -> Self {
        HttpError(e)
    }
}

/// The detail of an error response, for the audit record (no need to parse the body back).
#[derive(Clone, Debug)]
pub struct ErrorDetail(pub String);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = scim_json(status, &e.to_json());
        resp.extensions_mut().insert(ErrorDetail(e.detail.clone()));
        if let Some(secs) = e.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// A JSON body with the SCIM media type.
pub fn scim_json<T: serde::Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    // most bodies (a user, an error) fit: written without growing the buffer step by step
    let mut bytes = Vec::with_capacity(1024);
    if serde_json::to_writer(&mut bytes, body).is_err() {
        bytes.clear();
    }
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(SCIM_CONTENT_TYPE),
        )],
        bytes,
    )
        .into_response()
}

/// 201 Created with `Location` (RFC 7644 §3.3).
pub fn created<T: serde::Serialize + ?Sized>(body: &T, location: &str) -> Response {
    let mut resp = scim_json(StatusCode::CREATED, body);
    if let Ok(loc) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp
}

pub type HttpResult = Result<Response, HttpError>;
