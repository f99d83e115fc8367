//! The SCIM schemas this server knows (RFC 7643 §4.1 User, §4.3 enterprise extension), as
//! static tables. They drive name canonicalisation, type checks, mutability, and `/Schemas`.

use serde_json::{json, Map, Value};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Complex,
    Reference,
    DateTime,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Complex => "complex",
            AttrType::Reference => "reference",
            AttrType::DateTime => "dateTime",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
}

impl Returned {
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
        }
    }
}

/// One attribute definition (RFC 7643 §7).
#[derive(Debug)]
pub struct AttrDef {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub unique: bool,
    pub description: &'static str,
    pub canonical_values: &'static [&'static str],
    pub sub_attributes: &'static [AttrDef],
}

/// Definitions are statics: two are the same attribute when they are the same definition.
impl PartialEq for AttrDef {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl AttrDef {
    const fn base(name: &'static str, ty: AttrType, description: &'static str) -> AttrDef {
        AttrDef {
            name,
            ty,
            multi_valued: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            unique: false,
            description,
            canonical_values: &[],
            sub_attributes: &[],
        }
    }
    const fn string(name: &'static str, description: &'static str) -> AttrDef {
        Self::base(name, AttrType::String, description)
    }
    const fn boolean(name: &'static str, description: &'static str) -> AttrDef {
        Self::base(name, AttrType::Boolean, description)
    }
    const fn complex(
        name: &'static str,
        description: &'static str,
        subs: &'static [AttrDef],
    ) -> AttrDef {
        AttrDef {
            sub_attributes: subs,
            ..Self::base(name, AttrType::Complex, description)
        }
    }
    const fn multi(self) -> AttrDef {
        AttrDef {
            multi_valued: true,
            ..self
        }
    }
    const fn read_only(self) -> AttrDef {
        AttrDef {
            mutability: Mutability::ReadOnly,
            ..self
        }
    }
    const fn canonical(self, values: &'static [&'static str]) -> AttrDef {
        AttrDef {
            canonical_values: values,
            ..self
        }
    }

    /// A sub-attribute by case-insensitive name.
    pub fn sub(&self, name: &str) -> Option<&'static AttrDef>
    where
        Self: 'static,
    {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The RFC 7643 §7 representation, limited to the given sub-attributes.
    pub fn to_json(&self, subs: &[&AttrDef]) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": self.ty.as_str(),
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability.as_str(),
            "returned": self.returned.as_str(),
            "uniqueness": if self.unique { "server" } else { "none" },
        });
        if let Some(o) = v.as_object_mut() {
            if !self.canonical_values.is_empty() {
                o.insert("canonicalValues".into(), json!(self.canonical_values));
            }
            if self.ty == AttrType::Complex {
                let subs = subs.iter().map(|s| s.to_json(&[])).collect();
                o.insert("subAttributes".into(), Value::Array(subs));
            }
            if self.ty == AttrType::Reference {
                o.insert("referenceTypes".into(), json!(["User"]));
            }
        }
        v
    }
}

/// A schema: its URN and top-level attributes.
#[derive(Debug)]
pub struct SchemaDef {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [AttrDef],
}

impl SchemaDef {
    pub fn attr(&self, name: &str) -> Option<&'static AttrDef>
    where
        Self: 'static,
    {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

const TYPE_WORK_HOME_OTHER: &[&str] = &["work", "home", "other"];

const EMAIL_SUBS: &[AttrDef] = &[
    AttrDef::string("value", "Email address."),
    AttrDef::string("display", "Human-readable name."),
    AttrDef::string("type", "Label: work, home, other.").canonical(TYPE_WORK_HOME_OTHER),
    AttrDef::boolean("primary", "The preferred value."),
];

/// roles and entitlements (RFC 7643 §4.1.2): no canonical types.
const LABEL_SUBS: &[AttrDef] = &[
    AttrDef::string("value", "The value."),
    AttrDef::string("display", "Human-readable name."),
    AttrDef::string("type", "A label for its function."),
    AttrDef::boolean("primary", "The preferred value."),
];

const PHONE_SUBS: &[AttrDef] = &[
    AttrDef::string("value", "Phone number."),
    AttrDef::string("display", "Human-readable name."),
    AttrDef::string("type", "Label: work, home, mobile, fax, pager, other.")
        .canonical(&["work", "home", "mobile", "fax", "pager", "other"]),
    AttrDef::boolean("primary", "The preferred value."),
];

const ADDRESS_SUBS: &[AttrDef] = &[
    AttrDef::string("formatted", "Full mailing address."),
    AttrDef::string("streetAddress", "Street address."),
    AttrDef::string("locality", "City or locality."),
    AttrDef::string("region", "State or region."),
    AttrDef::string("postalCode", "Zip or postal code."),
    AttrDef::string("country", "Country, ISO 3166-1 alpha-2."),
    AttrDef::string("type", "Label: work, home, other.").canonical(TYPE_WORK_HOME_OTHER),
    AttrDef::boolean("primary", "The preferred value."),
];

const NAME_SUBS: &[AttrDef] = &[
    AttrDef::string("formatted", "Full name."),
    AttrDef::string("familyName", "Family name."),
    AttrDef::string("givenName", "Given name."),
    AttrDef::string("middleName", "Middle name."),
    AttrDef::string("honorificPrefix", "Honorific prefix."),
    AttrDef::string("honorificSuffix", "Honorific suffix."),
];

const GROUP_SUBS: &[AttrDef] = &[
    AttrDef::string("value", "Group id.").read_only(),
    AttrDef {
        ty: AttrType::Reference,
        ..AttrDef::string("$ref", "URI of the Group.").read_only()
    },
    AttrDef::string("display", "Group name.").read_only(),
    AttrDef::string("type", "direct or indirect.").read_only(),
];

pub static USER: SchemaDef = SchemaDef {
    id: USER_SCHEMA,
    name: "User",
    description: "User Account",
    attributes: &[
        AttrDef {
            required: true,
            unique: true,
            ..AttrDef::string(
                "userName",
                "Unique identifier for the User, used to sign in.",
            )
        },
        AttrDef::complex("name", "The components of the user's name.", NAME_SUBS),
        AttrDef::string("displayName", "Name displayed to end users."),
        AttrDef::string("nickName", "Casual name."),
        AttrDef::string("profileUrl", "Profile URL."),
        AttrDef::string("title", "Job title."),
        AttrDef::string("userType", "Relationship to the organization."),
        AttrDef::string("preferredLanguage", "Preferred language, e.g. en-US."),
        AttrDef::string("locale", "Default location, e.g. en-US."),
        AttrDef::string("timezone", "Time zone, IANA name."),
        AttrDef::boolean("active", "Whether the account is enabled."),
        AttrDef {
            mutability: Mutability::WriteOnly,
            returned: Returned::Never,
            ..AttrDef::string("password", "Clear-text password; never returned.")
        },
        AttrDef::complex("emails", "Email addresses.", EMAIL_SUBS).multi(),
        AttrDef::complex("phoneNumbers", "Phone numbers.", PHONE_SUBS).multi(),
        AttrDef::complex("addresses", "Physical mailing addresses.", ADDRESS_SUBS).multi(),
        AttrDef::complex("entitlements", "Entitlements of the user.", LABEL_SUBS).multi(),
        AttrDef::complex(
            "roles",
            "Roles of the user (SailPoint, BeyondTrust).",
            LABEL_SUBS,
        )
        .multi(),
        AttrDef::complex("groups", "Groups the user belongs to.", GROUP_SUBS)
            .multi()
            .read_only(),
    ],
};

const MANAGER_SUBS: &[AttrDef] = &[
    AttrDef::string("value", "The id of the manager's User resource."),
    AttrDef {
        ty: AttrType::Reference,
        ..AttrDef::string("$ref", "URI of the manager's User resource.")
    },
    AttrDef::string("displayName", "The manager's display name.").read_only(),
];

pub static ENTERPRISE_USER: SchemaDef = SchemaDef {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &[
        AttrDef::string("employeeNumber", "Employee number."),
        AttrDef::string("costCenter", "Cost center."),
        AttrDef::string("organization", "Organization."),
        AttrDef::string("division", "Division."),
        AttrDef::string("department", "Department."),
        AttrDef::complex("manager", "The user's manager.", MANAGER_SUBS),
    ],
};

const MEMBER_SUBS: &[AttrDef] = &[
    AttrDef {
        mutability: Mutability::Immutable,
        ..AttrDef::string("value", "The id of the member User or Group.")
    },
    AttrDef {
        ty: AttrType::Reference,
        mutability: Mutability::Immutable,
        ..AttrDef::string("$ref", "URI of the member resource.")
    },
    AttrDef::string("display", "The member's display name.").read_only(),
    AttrDef {
        mutability: Mutability::Immutable,
        ..AttrDef::string("type", "User or Group.").canonical(&["User", "Group"])
    },
];

pub static GROUP: SchemaDef = SchemaDef {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "Group",
    attributes: &[
        AttrDef {
            required: true,
            ..AttrDef::string("displayName", "A human-readable name for the Group.")
        },
        AttrDef::complex("members", "The members of the Group.", MEMBER_SUBS).multi(),
    ],
};

/// Common attributes (RFC 7643 §3.1) that a mapping may bind.
pub static COMMON: SchemaDef = SchemaDef {
    id: "",
    name: "Common",
    description: "Attributes of every resource",
    attributes: &[
        AttrDef {
            case_exact: true,
            returned: Returned::Always,
            ..AttrDef::string(
                "id",
                "Unique, stable identifier assigned by the service provider.",
            )
            .read_only()
        },
        AttrDef {
            case_exact: true,
            ..AttrDef::string(
                "externalId",
                "Identifier assigned by the provisioning client.",
            )
        },
        AttrDef::complex("meta", "Resource metadata.", &[]).read_only(),
    ],
};

/// Where a top-level attribute lives: the core schema (including common attributes) or an
/// extension, whose attributes sit under the extension URN in the JSON resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Core,
    Extension(&'static str),
}

/// A resource type's schemas: core plus extensions.
#[derive(Debug)]
pub struct ResourceSchema {
    pub core: &'static SchemaDef,
    pub extensions: &'static [&'static SchemaDef],
}

pub static USER_RESOURCE: ResourceSchema = ResourceSchema {
    core: &USER,
    extensions: &[&ENTERPRISE_USER],
};

pub static GROUP_RESOURCE: ResourceSchema = ResourceSchema {
    core: &GROUP,
    extensions: &[],
};

impl ResourceSchema {
    /// The extension schema with this URN (case-insensitive).
    pub fn extension(&self, urn: &str) -> Option<&'static SchemaDef> {
        self.extensions
            .iter()
            .copied()
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Whether the attribute (or sub-attribute) at `p` compares case-exactly; an attribute
    /// the schema lacks does not.
    pub fn case_exact(&self, p: &crate::scim::filter::AttrPath) -> bool {
        self.resolve(p.urn.as_deref(), &p.name)
            .map(|(_, d)| {
                p.sub
                    .as_deref()
                    .and_then(|s| d.sub(s))
                    .unwrap_or(d)
                    .case_exact
            })
            .unwrap_or(false)
    }

    /// Resolves an attribute name, optionally URN-qualified, to its definition. An
    /// unqualified name that is not a core attribute names an extension's (RFC 7644 §3.10
    /// lets clients omit only the core URN, but Entra sends `manager` alone in filters and
    /// PATCH paths), when exactly one extension has it.
    pub fn resolve(&self, urn: Option<&str>, name: &str) -> Option<(Container, &'static AttrDef)> {
        match urn {
            None => COMMON
                .attr(name)
                .or_else(|| self.core.attr(name))
                .map(|a| (Container::Core, a))
                .or_else(|| {
                    let mut found = self.extensions.iter().filter_map(|ext| {
                        ext.attr(name).map(|a| (Container::Extension(ext.id), a))
                    });
                    match (found.next(), found.next()) {
                        (Some(one), None) => Some(one),
                        _ => None,
                    }
                }),
            Some(u) if u.eq_ignore_ascii_case(self.core.id) => COMMON
                .attr(name)
                .or_else(|| self.core.attr(name))
                .map(|a| (Container::Core, a)),
            Some(u) => {
                let ext = self.extension(u)?;
                ext.attr(name).map(|a| (Container::Extension(ext.id), a))
            }
        }
    }
}

/// Puts `value` into a resource object under the canonical place for the attribute.
pub fn container_mut(
    resource: &mut Map<String, Value>,
    container: Container,
) -> &mut Map<String, Value> {
    match container {
        Container::Core => resource,
        Container::Extension(urn) => {
            let slot = resource
                .entry(urn.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            match slot {
                Value::Object(m) => m,
                _ => unreachable!("slot was just made an object"),
            }
        }
    }
}

/// The object holding the attributes of `container`, if present.
pub fn container_ref(
    resource: &Map<String, Value>,
    container: Container,
) -> Option<&Map<String, Value>> {
    match container {
        Container::Core => Some(resource),
        Container::Extension(urn) => resource.get(urn).and_then(Value::as_object),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed model (`value.rs`) holds a multi-valued attribute as complex values and a
    /// sub-attribute as a simple one: the schemas must keep to that.
    #[test]
    fn multi_valued_attributes_are_complex_and_sub_attributes_simple() {
        for schema in [&USER, &ENTERPRISE_USER, &GROUP, &COMMON] {
            for a in schema.attributes {
                assert!(
                    !a.multi_valued || a.ty == AttrType::Complex,
                    "{}: multi-valued but not complex",
                    a.name
                );
                for sub in a.sub_attributes {
                    assert!(
                        sub.ty != AttrType::Complex && !sub.multi_valued,
                        "{}.{}: a sub-attribute must be simple and single-valued",
                        a.name,
                        sub.name
                    );
                }
            }
        }
    }

    #[test]
    fn resolves_names_case_insensitively_and_by_urn() {
        let (c, a) = USER_RESOURCE.resolve(None, "USERNAME").unwrap();
        assert_eq!((c, a.name), (Container::Core, "userName"));
        let (c, a) = USER_RESOURCE
            .resolve(Some(ENTERPRISE_USER_SCHEMA), "employeenumber")
            .unwrap();
        assert_eq!(c, Container::Extension(ENTERPRISE_USER_SCHEMA));
        assert_eq!(a.name, "employeeNumber");
        // an extension's attribute unqualified (Entra's `manager`), when only one has it
        let (c, a) = USER_RESOURCE.resolve(None, "manager").unwrap();
        assert_eq!(c, Container::Extension(ENTERPRISE_USER_SCHEMA));
        assert_eq!(a.name, "manager");
        assert!(USER_RESOURCE.resolve(None, "shoeSize").is_none());
        assert_eq!(
            USER_RESOURCE.resolve(None, "externalid").unwrap().1.name,
            "externalId"
        );
    }
}
