//! The SCIM 2.0 protocol core (RFC 7643/7644): schemas, filters, PATCH, errors and list
//! responses. Free of HTTP and LDAP types so that it can be tested on its own.

pub mod error;
pub mod filter;
pub mod limits;
pub mod patch;
pub mod projection;
pub mod resource;
pub mod schema;
pub mod value;

pub use error::{ScimError, ScimResult, ScimType};
pub use limits::Limits;

pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
