//! scim2ldap: a SCIM 2.0 server (RFC 7643/7644) in front of OpenLDAP and Active Directory.
//!
//! Layers, from the wire inwards: `http` (axum server, auth, logging) → `service` (SCIM
//! operations) → `mapping` (SCIM ↔ LDAP through the admin's TOML) and `scim` (the protocol
//! core, free of HTTP and LDAP types) → `directory` (the `Directory` trait, one
//! implementation per dialect). `config`, `auth`, `audit`, `cache` and `app` support them.

pub mod app;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod config;
pub mod directory;
pub mod explain;
pub mod http;
pub mod init;
pub mod logging;
pub mod mapping;
pub mod metrics;
pub mod safety;
pub mod scim;
pub mod service;
pub mod state_files;
pub mod systemd;
