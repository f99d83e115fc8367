//! What the service answers: a resource as data (its id, typed attributes, the resources it
//! links to, its meta with times and version). The HTTP layer renders it (`http/render.rs`):
//! `schemas`, `$ref`s, `meta.location` and the `Location` and `ETag` headers are made there,
//! since only it knows the URL the client used.

use crate::directory::EntryId;
use crate::scim::schema::{ResourceSchema, GROUP_RESOURCE, USER_RESOURCE};
use crate::scim::value::Resource as ScimResource;

use super::creates::CreateReceipt;

/// The two resource types, and what each is called where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    User,
    Group,
}

impl ResourceType {
    /// `meta.resourceType`, and the word messages use.
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::User => "User",
            ResourceType::Group => "Group",
        }
    }

    /// The endpoint under the base URL.
    pub fn endpoint(self) -> &'static str {
        match self {
            ResourceType::User => "Users",
            ResourceType::Group => "Groups",
        }
    }

    pub fn schema(self) -> &'static ResourceSchema {
        match self {
            ResourceType::User => &USER_RESOURCE,
            ResourceType::Group => &GROUP_RESOURCE,
        }
    }
}

/// A group a user belongs to (a value of the user's `groups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLink {
    pub id: EntryId,
    pub display: Option<String>,
    /// A member of the group itself, not through a group inside it.
    pub direct: bool,
}

/// A member of a group (a value of the group's `members`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberLink {
    pub id: EntryId,
    pub kind: ResourceType,
}

/// The resources a resource links to, when they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Links {
    /// A user's groups.
    Groups(Vec<GroupLink>),
    /// A group's members.
    Members(Vec<MemberLink>),
}

/// `meta` as data (RFC 7643 §3.1), times already in RFC 3339.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub created: Option<String>,
    pub last_modified: Option<String>,
    /// The directory's version of the entry (entryCSN, uSNChanged), bare: the HTTP layer
    /// makes the entity tag.
    pub version: Option<String>,
}

/// A resource as the service answers it.
#[derive(Debug, Clone)]
pub struct View {
    pub kind: ResourceType,
    pub id: EntryId,
    pub attrs: ScimResource,
    pub links: Option<Links>,
    pub meta: Meta,
    /// Set by a create: remembered (`creates`) when the answer cannot be delivered, so that
    /// the IdP's retry of the same POST learns the id.
    pub created: Option<CreateReceipt>,
}
