//! PATCH (RFC 7644 §3.5.2): parsing the PatchOp body in the forms IdPs really send, and
//! applying the operations to a normalised JSON resource. The caller diffs the result against
//! the directory, so every request becomes one set of changes, applied all or nothing.

mod apply;
mod parse;

use serde_json::Value;

use super::filter::PatchPath;

pub use apply::apply_patch;
pub use parse::parse_patch_request;

pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

#[cfg(test)]
mod tests;
