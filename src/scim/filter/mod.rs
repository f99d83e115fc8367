//! SCIM filter expressions (RFC 7644 §3.4.2.2) and attribute paths: the AST, parsed by
//! `parser` (over the characters `lexer` reads) and evaluated against JSON values by `eval`.
//! Translation to LDAP lives in `mapping`, not here.

use std::fmt;

mod eval;
mod lexer;
mod parser;

pub use eval::{compare_for_sort, matches, sort_value, Filterable, Found};
pub use parser::{
    parse_attr_path, parse_filter, parse_filter_with, parse_patch_path, parse_patch_path_with,
};

/// `[urn ":"] name ["." sub]`, as written (not yet resolved against a schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.urn {
            write!(f, "{u}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<CompareOp> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }
}

/// A comparison value: `false / null / true / number / string`.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    Null,
}

impl CompValue {
    /// The value as an LDAP assertion string, where one exists.
    pub fn as_text(&self) -> Option<String> {
        match self {
            CompValue::Str(s) => Some(s.clone()),
            CompValue::Num(n) => Some(n.to_string()),
            CompValue::Bool(b) => Some(if *b { "TRUE" } else { "FALSE" }.to_owned()),
            CompValue::Null => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `a and b and …`: a chain is one node, so its length never becomes tree depth.
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, CompareOp, CompValue),
    /// `attr[filter]`: some value of multi-valued `attr` matches the inner filter, whose paths
    /// name sub-attributes.
    ValuePath(AttrPath, Box<Filter>),
}

/// A PATCH path (RFC 7644 §3.5.2): `attrPath` or `valuePath [ "." subAttr ]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// Sub-attribute after a value filter (`emails[type eq "work"].value`).
    pub sub_after_filter: Option<String>,
}

/// Which of the server's limits an input went past (its configured value in `max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitExceeded {
    Length { max: usize },
    Depth { max: usize },
    Terms { max: usize },
}

/// Where and why parsing failed; `pos` counts characters from 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub pos: usize,
    pub message: String,
    /// Set when the input was refused for its size rather than its syntax.
    pub limit: Option<LimitExceeded>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.limit {
            Some(_) => f.write_str(&self.message),
            None => write!(f, "{} at character {}", self.message, self.pos + 1),
        }
    }
}

/// The attribute paths a filter names at its top level (inside `attr[…]` the paths are
/// sub-attributes of `attr`, which is the one listed).
pub fn top_paths(f: &Filter) -> Vec<&AttrPath> {
    match f {
        Filter::And(parts) | Filter::Or(parts) => parts.iter().flat_map(top_paths).collect(),
        Filter::Not(inner) => top_paths(inner),
        Filter::Present(p) | Filter::Compare(p, _, _) | Filter::ValuePath(p, _) => vec![p],
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
