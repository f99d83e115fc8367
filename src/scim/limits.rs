//! Bounds on what one request can make the server parse, walk and send to the directory.
//! Hostile input is the normal case for a service in front of a domain controller: every
//! bound here is checked before or while the input is parsed, so no request can exhaust the
//! stack, the CPU or the directory. The defaults fit every IdP request seen; admins can raise
//! them up to the hard ceilings, which keep recursion over a filter far from the stack's end.

/// The limits one deployment applies (config `[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Characters in a filter or an attribute path.
    pub filter_max_length: usize,
    /// Nesting of parentheses, `not (…)` and value filters `attr[…]`.
    pub filter_max_depth: usize,
    /// Comparisons and presence tests in one filter.
    pub filter_max_terms: usize,
    /// Operations in one PATCH request.
    pub patch_max_operations: usize,
    /// Member ids one request may name (a group's POST/PUT, or the members of one PATCH).
    pub max_members: usize,
    /// Values one multi-valued attribute (emails, phoneNumbers, …) may have in a request.
    pub max_values_per_attribute: usize,
}

impl Limits {
    /// Above these, a deep filter could come close to a worker thread's stack limit.
    pub const HARD_MAX_DEPTH: usize = 64;
    pub const HARD_MAX_TERMS: usize = 10_000;
    pub const HARD_MAX_LENGTH: usize = 65_536;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            filter_max_length: 4096,
            filter_max_depth: 16,
            filter_max_terms: 100,
            patch_max_operations: 1000,
            max_members: 10_000,
            max_values_per_attribute: 100,
        }
    }
}
