//! scim2ldap: a SCIM 2.0 server in front of OpenLDAP and Active Directory.

pub mod scim;
pub mod directory;
pub mod config;
pub mod mapping;
