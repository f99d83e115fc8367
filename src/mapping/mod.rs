//! The attribute mapping an admin writes in TOML, as checked types. `compile` turns the TOML
//! into a `Mapping` (every error names the key and the fix); `translate` drives the run-time
//! translations: directory entry → SCIM resource, SCIM resource → LDAP values and the
//! minimal changes between two states; `filter` turns SCIM filters into LDAP filters.

use std::collections::BTreeMap;

use crate::config::{AttrSpec, DeactivateConfig};
pub use crate::directory::AttrName;
use crate::scim::schema::{AttrDef, Container, ResourceSchema};

mod attributes;
mod compile;
pub mod country;
mod desired;
pub mod expression;
pub mod filter;
mod naming;
pub mod placement;
mod targets;
pub mod template;
mod translate;

pub use desired::DesiredAttrs;
pub use translate::distinct_values;

use template::Template;

/// How a derived attribute's value is made: a `{a} {b}` template, or an expression
/// (`{{ … }}`, `expression.rs`).
#[derive(Debug, Clone, PartialEq)]
pub enum Derivation {
    Template(Template),
    Expression(expression::Expression),
}

impl Derivation {
    /// The value for `res`, or `None` when it has none (the next derivation is tried).
    pub fn render(&self, res: &crate::scim::value::Resource) -> Option<String> {
        match self {
            Derivation::Template(t) => t.render(res),
            Derivation::Expression(e) => e.render(res),
        }
    }

    pub fn source(&self) -> &str {
        match self {
            Derivation::Template(t) => t.source(),
            Derivation::Expression(e) => e.source(),
        }
    }
}

/// `ppolicy`'s value for "locked by an administrator, no expiry".
pub const PPOLICY_LOCKED: &str = "000001010000Z";

/// Where a mapped value sits in the SCIM resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A single-valued top-level attribute (`userName`, `active`, an extension's `department`).
    Attr {
        container: Container,
        attr: &'static AttrDef,
    },
    /// A sub-attribute of a single-valued complex attribute (`name.givenName`, `manager.value`).
    Sub {
        container: Container,
        attr: &'static AttrDef,
        sub: &'static AttrDef,
    },
    /// A sub-attribute of the value of a multi-valued attribute selected by type
    /// (`emails[type eq "work"].value`).
    Element {
        attr: &'static AttrDef,
        type_value: Option<String>,
        primary: bool,
        sub: &'static AttrDef,
        /// Every value of the attribute, one LDAP value each (`roles = "businessCategory"`),
        /// rather than the one value a type selects.
        every: bool,
    },
}

impl Target {
    pub fn top_name(&self) -> &'static str {
        self.top().name
    }

    pub fn container(&self) -> Container {
        match self {
            Target::Attr { container, .. } | Target::Sub { container, .. } => *container,
            Target::Element { .. } => Container::Core,
        }
    }

    fn top(&self) -> &'static AttrDef {
        match self {
            Target::Attr { attr, .. } | Target::Sub { attr, .. } | Target::Element { attr, .. } => {
                attr
            }
        }
    }

    pub fn leaf(&self) -> &'static AttrDef {
        match self {
            Target::Attr { attr, .. } => attr,
            Target::Sub { sub, .. } | Target::Element { sub, .. } => sub,
        }
    }
}

/// How values convert between SCIM and LDAP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueKind {
    Text,
    /// A boolean stored as marker values; `None` means "attribute absent".
    Bool {
        when_true: Option<String>,
        when_false: Option<String>,
    },
    /// LDAP holds a user's DN, SCIM that user's id.
    UserDn,
    /// RFC 4517 Postal Address syntax: `$` between lines, `\24` and `\5C` for `$` and `\`.
    PostalAddress,
    /// `active` as a bit of a flags attribute (AD's userAccountControl, 0x2 = disabled): set
    /// means inactive. Changed by deleting the exact old value and adding the new one, so a
    /// concurrent change fails instead of being lost, and the other bits are kept.
    DisableBit {
        bit: u32,
        base: u32,
    },
    /// The write-only `password`: never read, compared or filtered; set as the directory
    /// expects (see `directory::password`), never through an attribute change.
    Password,
    /// A country given by name or code: the LDAP value is its ISO 3166 alpha-2 code, and
    /// `name_attr` (`co`), when set, gets its name.
    Country {
        name_attr: Option<AttrName>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttrMapping {
    /// The config key it came from, for messages.
    pub scim: String,
    pub target: Target,
    pub ldap: AttrName,
    pub kind: ValueKind,
    /// Most characters a value may have, and the config key that says so.
    pub max_len: (usize, String),
}

/// How long values may be, checked before anything reaches the directory: a directory's own
/// limits answer with codes that look like server faults (slapd: "other" for a long DN), and
/// nothing should store megabytes that every list then returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueLimits {
    /// Any value (`limits.max_value_length`).
    pub max_value_length: usize,
    /// The value that names an entry (`limits.max_rdn_value_length`).
    pub max_rdn_value_length: usize,
}

impl Default for ValueLimits {
    fn default() -> Self {
        ValueLimits {
            max_value_length: 2048,
            max_rdn_value_length: 128,
        }
    }
}

/// What a resource says an LDAP attribute should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Desired {
    /// The resource does not speak about it (e.g. `active` absent from a PUT): leave it.
    Keep,
    Clear,
    Set(String),
    /// All of these values, in this order (a multi-valued attribute mapped whole).
    Many(Vec<String>),
    /// A `DisableBit` attribute: whether the bit is set.
    Bit(bool),
}

/// What makes an entry a resource of this type: its structural object class, minus the
/// classes derived from it that are something else (AD's `computer` is a `user`). Checked on
/// every search, read, member resolution and write, whatever order the admin lists classes
/// in: `objectClass=top` (or any auxiliary class) would match OUs, computers, contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub structural: String,
    pub excluded: Vec<String>,
}

impl Identity {
    /// Whether an entry with these object classes is of this type.
    pub fn admits(&self, classes: crate::directory::Values<'_>) -> bool {
        let has = |c: &str| classes.iter().any(|x| x.eq_ignore_ascii_case(c));
        has(&self.structural) && !self.excluded.iter().any(|x| has(x))
    }
}

#[derive(Debug)]
pub struct Mapping {
    pub schema: &'static ResourceSchema,
    pub object_classes: Vec<String>,
    /// What makes an entry one of these resources.
    pub identity: Identity,
    pub rdn_attr: AttrName,
    pub rdn_value: Template,
    /// Tried in order when `rdn_value` has no value.
    pub rdn_fallbacks: Vec<Template>,
    /// Whether an RDN already taken by another entry gets a number (`cn=John Smith 2`):
    /// when the RDN is not made of the unique naming attribute (AD's `cn={displayName}`).
    pub numbered_rdn: bool,
    pub attrs: Vec<AttrMapping>,
    /// Indices of `attrs` in the order of their LDAP names, so that `to_ldap` gives its
    /// pairs sorted (sorting forty names per resource was most of building them).
    pub ldap_order: Vec<usize>,
    pub derived: Vec<(AttrName, Vec<Derivation>)>,
    pub reject_unmapped: bool,
    /// The config section ("users", "groups"), for messages.
    pub section: String,
    /// The attribute SCIM requires and that names the entry (`userName`, `displayName`).
    pub required: String,
    /// Fixed values every new entry gets (e.g. AD's `groupType`).
    pub defaults: Vec<(String, Vec<String>)>,
    pub limits: ValueLimits,
    /// Multi-valued attribute → the type given to its untyped values (`users.default_type`).
    pub default_types: Vec<(&'static AttrDef, String)>,
    /// SCIM attributes stored outside this mapping (users' `roles` as group memberships):
    /// never reported as unmapped.
    pub served_elsewhere: Vec<&'static str>,
}

/// The parts of a `[users]` or `[groups]` section that describe the mapping.
pub struct MappingSpec<'a> {
    /// "users" or "groups": the config section, for messages.
    pub section: &'a str,
    pub object_classes: &'a [String],
    /// The structural class that identifies these entries, when the admin names it.
    pub structural_class: Option<&'a str>,
    pub rdn: &'a str,
    pub rdn_fallbacks: &'a [String],
    pub attributes: &'a BTreeMap<String, AttrSpec>,
    pub derive: &'a BTreeMap<String, Vec<String>>,
    pub reject_unmapped: bool,
    /// Users only: how `active` is stored.
    pub deactivate: Option<&'a DeactivateConfig>,
    /// The attribute SCIM requires (`userName`, `displayName`).
    pub required: &'a str,
    /// Fixed values for new entries.
    pub defaults: &'a BTreeMap<String, Vec<String>>,
    pub limits: ValueLimits,
    /// Users only: the type untyped values of a multi-valued attribute are stored as.
    pub default_type: Option<&'a BTreeMap<String, String>>,
}
#[cfg(test)]
mod tests;

/// A SCIM text (lines split by newlines) as an RFC 4517 Postal Address: `\` and `$` escaped,
/// lines joined by `$`, empty lines dropped (the syntax has none); `None` when no line is left.
pub fn to_postal(text: &str) -> Option<String> {
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.replace('\\', "\\5C").replace('$', "\\24"))
        .collect();
    (!lines.is_empty()).then(|| lines.join("$"))
}

/// An RFC 4517 Postal Address as SCIM text: lines joined by newlines, escapes undone.
pub fn from_postal(value: &str) -> String {
    value
        .split('$')
        .map(|l| {
            l.replace("\\24", "$")
                .replace("\\5c", "\\")
                .replace("\\5C", "\\")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
