//! `{path}` templates over a SCIM resource: RDNs (`uid={userName}`) and derived values
//! (`{name.givenName} {name.familyName}`).

use crate::scim::value::Resource;

use crate::scim::filter::parse_attr_path;
use crate::scim::schema::{AttrDef, AttrType, Container, ResourceSchema};

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Path {
        container: Container,
        attr: &'static AttrDef,
        sub: Option<&'static AttrDef>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses a template; the error says what is wrong with it.
    pub fn parse(source: &str, schema: &ResourceSchema) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in \"{source}\""))?;
            let path_text = &after[..close];
            let path = parse_attr_path(path_text)
                .map_err(|e| format!("\"{{{path_text}}}\" is not an attribute path: {e}"))?;
            let (container, attr) = schema
                .resolve(path.urn.as_deref(), &path.name)
                .ok_or_else(|| format!("\"{{{path_text}}}\": no such SCIM attribute"))?;
            let sub =
                match &path.sub {
                    Some(s) => Some(attr.sub(s).ok_or_else(|| {
                        format!("\"{{{path_text}}}\": '{}' has no '{s}'", attr.name)
                    })?),
                    None => None,
                };
            let leaf = sub.unwrap_or(attr);
            if attr.multi_valued || leaf.ty != AttrType::String {
                return Err(format!(
                    "\"{{{path_text}}}\" must name a single-valued string attribute"
                ));
            }
            pieces.push(Piece::Path {
                container,
                attr,
                sub,
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        if !pieces.iter().any(|p| matches!(p, Piece::Path { .. })) {
            return Err(format!("\"{source}\" has no {{attribute}} placeholder"));
        }
        Ok(Template {
            source: source.to_owned(),
            pieces,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the template, or `None` when a placeholder has no (non-blank) value.
    pub fn render(&self, resource: &Resource) -> Option<String> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Path {
                    container,
                    attr,
                    sub,
                } => {
                    let v = resource.get(*container, attr.name)?;
                    let v = match sub {
                        Some(s) => v.as_complex()?.get(s.name)?,
                        None => v.as_simple()?,
                    };
                    let s = v.as_str()?.trim();
                    if s.is_empty() {
                        return None;
                    }
                    out.push_str(s);
                }
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::resource::normalize_resource;
    use crate::scim::schema::USER_RESOURCE;
    use serde_json::json;

    #[test]
    fn renders_when_every_placeholder_has_a_value() {
        let t = Template::parse("{name.givenName} {name.familyName}", &USER_RESOURCE).unwrap();
        let r = json!({"name": {"givenName": "Barbara", "familyName": "Jensen"}});
        let r = normalize_resource(&r, &USER_RESOURCE).unwrap().resource;
        assert_eq!(t.render(&r).as_deref(), Some("Barbara Jensen"));
        let r = json!({"name": {"givenName": "Barbara"}});
        let r = normalize_resource(&r, &USER_RESOURCE).unwrap().resource;
        assert_eq!(t.render(&r), None);
    }

    #[test]
    fn rejects_unknown_and_multi_valued_paths() {
        assert!(Template::parse("{nope}", &USER_RESOURCE)
            .unwrap_err()
            .contains("no such"));
        assert!(Template::parse("{emails}", &USER_RESOURCE)
            .unwrap_err()
            .contains("single-valued"));
        assert!(Template::parse("{userName", &USER_RESOURCE)
            .unwrap_err()
            .contains("unclosed"));
        assert!(Template::parse("plain", &USER_RESOURCE)
            .unwrap_err()
            .contains("placeholder"));
    }
}
