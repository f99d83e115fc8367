//! `[users]`, `[groups]` and `[roles]`: where resources live, how they are named, deactivated,
//! deleted and mapped.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[roles]`: each role a user has is a group (of `[groups]`'s classes and member
/// attribute) under `container`, named by the role's value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesConfig {
    pub container: String,
}

/// What a create does when the person already has an account in the tenant's part of the
/// directory (matched on `users.match_on`): enterprises turn SCIM on over a directory that
/// already holds everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnExisting {
    /// 409 `uniqueness`, naming the account.
    #[default]
    Conflict,
    /// Take the account over: 201 with its id, the request's attributes applied, everything
    /// else it holds (groups, unmapped attributes) kept.
    Link,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DeleteMode {
    /// Disable the account and move it into `archive_container`.
    #[default]
    Archive,
    /// Remove the entry.
    Delete,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersConfig {
    pub container: String,
    pub object_classes: Vec<String>,
    /// The structural class that identifies users (default: the most specific known one in
    /// `object_classes`: user, inetOrgPerson, organizationalPerson, person, account).
    #[serde(default)]
    pub structural_class: Option<String>,
    pub rdn: String,
    /// Templates for the RDN value tried in order when `rdn`'s has no value (AD names users
    /// by display name, which Okta's and JumpCloud's requests may lack).
    #[serde(default)]
    pub rdn_fallbacks: Vec<String>,
    #[serde(default)]
    pub reject_unmapped: bool,
    #[serde(default)]
    pub delete_mode: DeleteMode,
    #[serde(default)]
    pub archive_container: Option<String>,
    #[serde(default)]
    pub deactivate: DeactivateConfig,
    pub attributes: BTreeMap<String, AttrSpec>,
    /// LDAP attribute → templates tried in order when the attribute would otherwise be empty
    /// (e.g. `cn`/`sn`, which inetOrgPerson requires).
    #[serde(default)]
    pub derive: BTreeMap<String, Vec<String>>,
    /// LDAP attribute → values every new user gets.
    #[serde(default)]
    pub defaults: BTreeMap<String, Vec<String>>,
    /// Multi-valued attribute → the type its untyped values are stored as (OneLogin sends
    /// `addresses` without `type`): `emails = "work"`.
    #[serde(default)]
    pub default_type: BTreeMap<String, String>,
    /// LDAP attributes (mapped under `attributes`) on which a create finds an account that
    /// already exists, besides the userName's; `on_existing` says what then.
    #[serde(default)]
    pub match_on: Vec<String>,
    #[serde(default)]
    pub on_existing: OnExisting,
    /// What a password does when `attributes` does not map `password`.
    #[serde(default)]
    pub password: UnmappedPassword,
    /// OpenLDAP: how a password reaches the directory ("server": Password Modify, so that
    /// the directory hashes it; "ssha512" or "argon2": hashed here).
    #[serde(default)]
    pub password_hash: crate::directory::PasswordStorage,
    /// Which container under the tenant's a user's entry goes to, by the first rule whose
    /// SCIM filter matches the user (`[[users.placement]]`); none matches: the tenant's
    /// container.
    #[serde(default)]
    pub placement: Vec<PlacementConfig>,
}

/// `[[users.placement]]`: users the filter `when` matches live under `container`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementConfig {
    /// A SCIM filter over the user, e.g. `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Sales"`.
    pub when: String,
    /// A DN under the tenant's users container.
    pub container: String,
}

/// `users.password`: what a password an IdP sends does when the mapping stores none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UnmappedPassword {
    /// 400 naming the keys that decide it: an IdP's password sync must not create accounts
    /// nobody can log in to without anyone knowing.
    #[default]
    Refuse,
    /// Dropped, by the admin's choice (e.g. accounts log in through Kerberos or SSO only).
    Ignore,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupsConfig {
    pub container: String,
    pub object_classes: Vec<String>,
    /// The structural class that identifies groups (default: the most specific known one in
    /// `object_classes`: group, groupOfNames, groupOfUniqueNames, posixGroup, groupOfURLs).
    #[serde(default)]
    pub structural_class: Option<String>,
    pub rdn: String,
    /// The LDAP attribute listing members by DN.
    #[serde(default = "default_member_attribute")]
    pub member_attribute: String,
    /// A DN every group holds besides its real members, for classes such as groupOfNames
    /// that require at least one member. Never shown through SCIM. Unset: empty groups hold
    /// no member value (for classes that allow that).
    #[serde(default)]
    pub placeholder_member: Option<String>,
    /// The user attribute listing the groups a user is in (OpenLDAP memberof overlay, AD).
    /// Unset: found by searching the groups container.
    #[serde(default)]
    pub member_of_attribute: Option<String>,
    /// Also report groups reached through nested groups, as `type: "indirect"`.
    #[serde(default)]
    pub nested: bool,
    #[serde(default)]
    pub reject_unmapped: bool,
    pub attributes: BTreeMap<String, AttrSpec>,
    #[serde(default)]
    pub derive: BTreeMap<String, Vec<String>>,
    /// LDAP attribute → values every new group gets (AD: `groupType`).
    #[serde(default)]
    pub defaults: BTreeMap<String, Vec<String>>,
}

fn default_member_attribute() -> String {
    "member".to_owned()
}

/// How `active` is stored.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(tag = "strategy", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DeactivateConfig {
    /// OpenLDAP ppolicy: `pwdAccountLockedTime: 000001010000Z` locks the account for good;
    /// removing it unlocks.
    #[default]
    PpolicyLock,
    /// Active Directory: bit 0x2 (ACCOUNTDISABLE) of `userAccountControl`, the other bits kept.
    AdAccountDisabled,
    /// Set `attribute` to `inactive_value` to deactivate, and to `active_value` (or remove
    /// it, when unset) to activate.
    Attribute {
        attribute: String,
        inactive_value: String,
        #[serde(default)]
        active_value: Option<String>,
    },
}

/// A mapping target: just the LDAP attribute, or a table with options.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum AttrSpec {
    Ldap(String),
    Full(AttrSpecFull),
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AttrSpecFull {
    pub ldap: String,
    /// Show this value as `primary: true` and use the primary value when no value of the
    /// selected type is sent.
    #[serde(default)]
    pub primary: bool,
    #[serde(default)]
    pub transform: Option<TransformName>,
    /// Most characters a value may have (below `limits.max_value_length`), e.g. what the
    /// directory's schema allows for this attribute.
    #[serde(default)]
    pub max_length: Option<usize>,
    /// With `transform = "country"`: the LDAP attribute that also gets the country's name
    /// (`co`, friendlyCountryName).
    #[serde(default)]
    pub country_name: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TransformName {
    /// The LDAP value is a user's DN; SCIM shows that user's id (e.g. `manager`).
    UserDn,
    /// LDAP boolean (`TRUE`/`FALSE`).
    Boolean,
    /// RFC 4517 Postal Address (`postalAddress`, `homePostalAddress`): lines joined by `$`,
    /// shown as lines joined by newlines.
    PostalAddress,
    /// A country by name or ISO 3166 code (Entra sends "Germany", Okta "DE"): the LDAP value
    /// is the two-letter code (`c` holds nothing else), shown as that code (RFC 7643).
    Country,
}
