//! The discovery documents (RFC 7644 §4): `/ServiceProviderConfig`, `/Schemas`,
//! `/ResourceTypes`, built once from the running mapping so that they describe what this
//! deployment stores; `handlers/discovery.rs` serves them.

use serde_json::{json, Value};

use crate::mapping::{Mapping, Target};
use crate::scim::schema::{AttrDef, Container, SchemaDef};

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

pub struct Discovery {
    pub service_provider_config: Value,
    pub schemas: Vec<Value>,
    pub resource_types: Vec<Value>,
}

impl Discovery {
    /// Builds the documents once; `{base}` in locations is filled per request.
    pub fn new(
        mapping: &Mapping,
        groups: Option<&Mapping>,
        max_results: usize,
        max_body_bytes: usize,
        cursors: crate::service::cursor::CursorSettings,
    ) -> Discovery {
        let service_provider_config =
            service_provider_config(mapping, max_results, max_body_bytes, cursors);
        // `groups` (on users) and `members` are served when groups are configured
        let user_extra: &[&str] = if groups.is_some() { &["groups"] } else { &[] };
        let mut schemas = vec![schema_doc(
            mapping.schema.core,
            mapping,
            Container::Core,
            user_extra,
        )];
        let mut extensions = Vec::new();
        for ext in mapping.schema.extensions {
            if mapping
                .attrs
                .iter()
                .any(|m| m.target.container() == Container::Extension(ext.id))
            {
                schemas.push(schema_doc(ext, mapping, Container::Extension(ext.id), &[]));
                extensions.push(json!({"schema": ext.id, "required": false}));
            }
        }
        let resource_types = vec![json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "User accounts in the directory",
            "schema": mapping.schema.core.id,
            "schemaExtensions": extensions,
            "meta": {"resourceType": "ResourceType", "location": "{base}/ResourceTypes/User"}
        })];
        let mut resource_types = resource_types;
        if let Some(g) = groups {
            schemas.push(schema_doc(g.schema.core, g, Container::Core, &["members"]));
            resource_types.push(json!({
                "schemas": [RESOURCE_TYPE_SCHEMA],
                "id": "Group",
                "name": "Group",
                "endpoint": "/Groups",
                "description": "Groups in the directory",
                "schema": g.schema.core.id,
                "schemaExtensions": [],
                "meta": {"resourceType": "ResourceType", "location": "{base}/ResourceTypes/Group"}
            }));
        }
        Discovery {
            service_provider_config,
            schemas,
            resource_types,
        }
    }
}

/// `/ServiceProviderConfig` (RFC 7643 §5): what this deployment supports.
fn service_provider_config(
    mapping: &Mapping,
    max_results: usize,
    max_body_bytes: usize,
    cursors: crate::service::cursor::CursorSettings,
) -> Value {
    json!({
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://github.com/scim2ldap/scim2ldap#readme",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": max_body_bytes},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": mapping.attrs.iter().any(|m| m.target.top_name() == "password")},
        "sort": {"supported": true},
        // RFC 9865: both ways of paging; startIndex stays the default for clients that
        // know no other
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": max_results,
            "maxPageSize": max_results,
            "cursorTimeout": cursors.timeout.as_secs(),
        },
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A per-tenant bearer token in the Authorization header",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": "{base}/ServiceProviderConfig"}
    })
}

/// A schema resource listing only the attributes (and sub-attributes) the mapping stores.
fn schema_doc(
    schema: &SchemaDef,
    mapping: &Mapping,
    container: Container,
    extra: &[&str],
) -> Value {
    let mut attributes = Vec::new();
    for def in schema.attributes {
        let targets: Vec<&Target> = mapping
            .attrs
            .iter()
            .map(|m| &m.target)
            .filter(|t| t.container() == container && t.top_name() == def.name)
            .collect();
        if extra.contains(&def.name) {
            let all: Vec<&AttrDef> = def.sub_attributes.iter().collect();
            attributes.push(def.to_json(&all));
            continue;
        }
        if targets.is_empty() {
            continue;
        }
        let mut subs: Vec<&AttrDef> = Vec::new();
        for t in &targets {
            match t {
                Target::Sub { sub, .. } => subs.push(sub),
                Target::Element {
                    sub,
                    type_value,
                    primary,
                    ..
                } => {
                    subs.push(sub);
                    if type_value.is_some() {
                        subs.extend(def.sub("type"));
                    }
                    if *primary {
                        subs.extend(def.sub("primary"));
                    }
                }
                Target::Attr { .. } => {}
            }
        }
        // keep the schema's own order, once each
        let subs: Vec<&AttrDef> = def
            .sub_attributes
            .iter()
            .filter(|s| subs.iter().any(|x| std::ptr::eq(*x, *s)))
            .collect();
        attributes.push(def.to_json(&subs));
    }
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("{{base}}/Schemas/{}", schema.id)}
    })
}

/// Fills `{base}` placeholders in a discovery document's locations.
pub fn with_base(doc: &Value, base: &str) -> Value {
    let mut d = doc.clone();
    if let Some(Value::String(loc)) = d.pointer_mut("/meta/location") {
        *loc = loc.replace("{base}", base);
    }
    d
}
