//! PATCH (RFC 7644 §3.5.2): parsing the PatchOp body in the forms IdPs really send into typed
//! operations, each resolved against the schema with its value in the typed model, and
//! applying them to a `Resource`. The caller diffs the result against the directory, so every
//! request becomes one set of changes, applied all or nothing.

mod apply;
mod parse;

use super::filter::Filter;
use super::schema::{AttrDef, Container};
use super::value::ScimValue;

pub use apply::apply_patch;
pub use parse::parse_patch_request;

pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

/// One operation, resolved: a path-less operation becomes one operation per attribute it
/// names, so every operation has a target.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    pub op: OpKind,
    pub target: PatchTarget,
    /// The value in the type the target takes: the attribute's value; one element (complex)
    /// for a filtered path of a multi-valued attribute; a simple value for a sub-attribute.
    /// `None` for a `remove`, and for an `add`/`replace` of null, `""` or `[]` (no value).
    pub value: Option<ScimValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PatchTarget {
    /// A whole extension (`remove` of `urn:…:enterprise:2.0:User`).
    Extension(&'static str),
    Attribute(AttrTarget),
}

/// An attribute a path names, resolved against the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrTarget {
    pub container: Container,
    pub def: &'static AttrDef,
    /// A value filter (`emails[type eq "work"]`), only on multi-valued attributes.
    pub filter: Option<Filter>,
    /// The sub-attribute named after the attribute or after the filter.
    pub sub: Option<&'static AttrDef>,
    /// The path as errors show it (a filter as `[…]`).
    pub shown: String,
}

impl PatchOperation {
    /// The attribute this operation targets, unless it targets a whole extension.
    pub fn attr(&self) -> Option<&AttrTarget> {
        match &self.target {
            PatchTarget::Attribute(t) => Some(t),
            PatchTarget::Extension(_) => None,
        }
    }
}

#[cfg(test)]
mod tests;
