//! The config `init` writes: the example config of the directory's kind (the one the README
//! explains line by line), with the connection and containers set, the example's names
//! replaced by this directory's, and every line this directory cannot serve commented out
//! with the reason: attributes and classes its schema lacks, overlays it does not run.

use crate::directory::DirectoryKind;

use super::probe::{toml_string, Probe};
use super::{Choices, Connection};

const OPENLDAP_EXAMPLE: &str = include_str!("../../config.example.toml");
const AD_EXAMPLE: &str = include_str!("../../config.example.ad.toml");

/// Where the systemd unit's `LoadCredential=` reads the bind password.
const UNIT_PASSWORD_FILE: &str = "/etc/scim2ldap/bind_password";

/// Sections whose `key = "ldapAttribute"` lines name LDAP attributes.
const ATTRIBUTE_SECTIONS: &[&str] = &["users.attributes", "groups.attributes"];

/// The config text for `probe`, `conn` and `choices`.
pub fn render(probe: &Probe, conn: &Connection, choices: &Choices, written: &str) -> String {
    let (example, example_base) = match probe.kind {
        DirectoryKind::Openldap => (OPENLDAP_EXAMPLE, "dc=example,dc=org"),
        DirectoryKind::ActiveDirectory => (AD_EXAMPLE, "DC=example,DC=test"),
    };
    let mut cfg = Config::new(example);
    cfg.set("ldap", "url", &toml_string(&conn.url));
    cfg.set("ldap", "bind_dn", &toml_string(&conn.bind_dn));
    cfg.set(
        "ldap",
        "bind_password_file",
        &toml_string(&conn.bind_password_file.display().to_string()),
    );
    if conn.bind_password_file.as_os_str() != UNIT_PASSWORD_FILE {
        cfg.comment_out(
            "ldap",
            "bind_password_credential",
            &format!("the unit's LoadCredential= reads {UNIT_PASSWORD_FILE}; point it at the file above to use this"),
        );
    }
    cfg.set(
        "ldap",
        "starttls",
        if conn.starttls { "true" } else { "false" },
    );
    match &conn.ca_file {
        Some(ca) => {
            cfg.set_or_uncomment("ldap", "ca_file", &toml_string(&ca.display().to_string()))
        }
        None => cfg.comment_out("ldap", "ca_file", "the system's CA roots are used"),
    }
    cfg.set("users", "container", &toml_string(&choices.users));
    cfg.set("users", "archive_container", &toml_string(&choices.archive));
    match &choices.groups {
        Some(g) => cfg.set("groups", "container", &toml_string(g)),
        None => cfg.comment_out_section("groups", "no groups container was chosen (--groups-ou)"),
    }
    fit_features(&mut cfg, probe);
    fit_schema(&mut cfg, probe);
    let mut text = cfg.text();
    if !example_base.eq_ignore_ascii_case(&probe.base) {
        text = text.replace(example_base, &probe.base);
    }
    format!("{}{text}", header(probe, conn, written))
}

/// What was found, at the top of the file.
fn header(probe: &Probe, conn: &Connection, written: &str) -> String {
    let kind = match probe.kind {
        DirectoryKind::Openldap => "OpenLDAP",
        DirectoryKind::ActiveDirectory => "Active Directory",
    };
    let yes = |b: bool| if b { "yes" } else { "no" };
    let member_of = match probe.member_of {
        Some(b) => yes(b),
        None => "cannot tell (no group has members yet)",
    };
    format!(
        "# Written by `scim2ldap init` on {written} for {url} ({kind}{server}).\n\
         # Naming context {base}; memberOf: {mo}; ppolicy: {pp}; Password Modify: {pm}.\n\
         # Lines this directory cannot serve are commented out, each with its reason.\n\
         # Review it, run `scim2ldap check-config` after every change, and see the README.\n\n",
        url = conn.url,
        server = probe
            .server
            .as_deref()
            .map(|s| format!(", {s}"))
            .unwrap_or_default(),
        base = probe.base,
        mo = member_of,
        pp = yes(probe.ppolicy),
        pm = yes(probe.password_modify),
    )
}

/// Overlays and operations this directory lacks: the settings that rely on them change.
fn fit_features(cfg: &mut Config, probe: &Probe) {
    match probe.member_of {
        Some(true) => {}
        Some(false) => cfg.comment_out(
            "groups",
            "member_of_attribute",
            "the directory keeps no memberOf (OpenLDAP: add the memberof overlay, then set this again)",
        ),
        None => cfg.comment_out(
            "groups",
            "member_of_attribute",
            "no group had members to show whether the memberof overlay runs; set this once a member's memberOf lists its group",
        ),
    }
    if probe.kind != DirectoryKind::Openldap {
        return;
    }
    if !probe.ppolicy {
        cfg.set(
            "users.deactivate",
            "strategy",
            "\"attribute\"\nattribute = \"employeeType\"\ninactive_value = \"disabled\"",
        );
        cfg.comment_out(
            "users.attributes",
            "userType",
            "employeeType holds active=false (no ppolicy overlay: users.deactivate)",
        );
    }
    if !probe.password_modify {
        cfg.set("users", "password_hash", "\"ssha512\"");
    }
}

/// Classes and attributes the schema lacks are taken out of the mapping.
fn fit_schema(cfg: &mut Config, probe: &Probe) {
    for section in ["users", "groups"] {
        cfg.filter_list(section, "object_classes", |c| probe.has_class(c));
    }
    for section in ATTRIBUTE_SECTIONS {
        cfg.comment_out_lines(section, |line| {
            ldap_names(line)
                .into_iter()
                .find(|a| !probe.has_attribute(a))
                .map(|a| format!("{a} is not in this directory's schema"))
        });
    }
    cfg.comment_out_lines("users.derive", |line| {
        let attr = line.split('=').next()?.trim().trim_matches('"');
        (!probe.has_attribute(attr)).then(|| format!("{attr} is not in this directory's schema"))
    });
}

/// The LDAP attributes a mapping line names: `"x"`, `{ ldap = "x", country_name = "y" }`.
fn ldap_names(line: &str) -> Vec<String> {
    let Some((_, value)) = line.split_once(" = ") else {
        return Vec::new();
    };
    let value = value.trim();
    let quoted = |s: &str| s.trim().trim_matches('"').to_owned();
    if !value.starts_with('{') {
        return vec![quoted(value)];
    }
    value
        .trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| matches!(k.trim(), "ldap" | "country_name"))
        .map(|(_, v)| quoted(v))
        .collect()
}

/// The example's lines, edited by section and key.
struct Config {
    lines: Vec<String>,
}

impl Config {
    fn new(text: &str) -> Config {
        Config {
            lines: text.lines().map(str::to_owned).collect(),
        }
    }

    fn text(&self) -> String {
        let mut out = self.lines.join("\n");
        out.push('\n');
        out
    }

    /// The line indexes of `[section]`'s body (up to the next table header).
    fn section(&self, section: &str) -> std::ops::Range<usize> {
        let header = format!("[{section}]");
        let Some(start) = self.lines.iter().position(|l| l.trim() == header) else {
            return 0..0;
        };
        let end = self
            .lines
            .iter()
            .enumerate()
            .skip(start + 1)
            .find(|(_, l)| l.starts_with('['))
            .map_or(self.lines.len(), |(i, _)| i);
        start + 1..end
    }

    fn find(&self, section: &str, key: &str, commented: bool) -> Option<usize> {
        let prefix = format!("{}{key} = ", if commented { "# " } else { "" });
        self.section(section)
            .find(|&i| self.lines.get(i).is_some_and(|l| l.starts_with(&prefix)))
    }

    /// Line `i` made from what it was.
    fn edit(&mut self, i: usize, with: impl FnOnce(&str) -> String) {
        if let Some(line) = self.lines.get_mut(i) {
            *line = with(line);
        }
    }

    fn set(&mut self, section: &str, key: &str, value: &str) {
        if let Some(i) = self.find(section, key, false) {
            self.edit(i, |_| format!("{key} = {value}"));
        }
    }

    fn set_or_uncomment(&mut self, section: &str, key: &str, value: &str) {
        match self
            .find(section, key, false)
            .or(self.find(section, key, true))
        {
            Some(i) => self.edit(i, |_| format!("{key} = {value}")),
            None => {
                let at = self.section(section).start;
                if at > 0 {
                    self.lines.insert(at, format!("{key} = {value}"));
                }
            }
        }
    }

    fn comment_out(&mut self, section: &str, key: &str, why: &str) {
        if let Some(i) = self.find(section, key, false) {
            self.edit(i, |line| format!("# {line} ({why})"));
        }
    }

    fn comment_out_lines(&mut self, section: &str, why: impl Fn(&str) -> Option<String>) {
        for i in self.section(section) {
            self.edit(i, |line| {
                let reason = (!line.is_empty() && !line.starts_with('#'))
                    .then(|| why(line))
                    .flatten();
                match reason {
                    Some(r) => format!("# {line}  # {r}"),
                    None => line.to_owned(),
                }
            });
        }
    }

    /// `[section]` and its subtables (`[section.x]`) commented out.
    fn comment_out_section(&mut self, section: &str, why: &str) {
        let own = format!("[{section}]");
        let sub = format!("[{section}.");
        let mut inside = false;
        let mut first = None;
        for (i, line) in self.lines.iter_mut().enumerate() {
            if line.starts_with('[') {
                inside = *line == own || line.starts_with(&sub);
                if inside && first.is_none() {
                    first = Some(i);
                }
            }
            if inside && !line.is_empty() && !line.starts_with('#') {
                *line = format!("# {line}");
            }
        }
        if let Some(i) = first {
            self.lines.insert(i, format!("# ({why})"));
        }
    }

    /// `key = ["a", "b"]` keeping the items `keep` accepts.
    fn filter_list(&mut self, section: &str, key: &str, keep: impl Fn(&str) -> bool) {
        let Some(i) = self.find(section, key, false) else {
            return;
        };
        self.edit(i, |line| {
            let Some((_, list)) = line.split_once(" = ") else {
                return line.to_owned();
            };
            let items = list
                .trim()
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .map(|s| s.trim().trim_matches('"'))
                .filter(|s| !s.is_empty());
            let (kept, dropped): (Vec<&str>, Vec<&str>) = items.partition(|c| keep(c));
            if dropped.is_empty() {
                return line.to_owned();
            }
            let kept: Vec<String> = kept.iter().map(|c| toml_string(c)).collect();
            format!(
                "{key} = [{}]  # not in this directory's schema: {}",
                kept.join(", "),
                dropped.join(", ")
            )
        });
    }
}

/// The containers' DNs, for the README's next steps and the tests.
pub fn container_lines(choices: &Choices) -> Vec<(&'static str, &str)> {
    let mut out = vec![
        ("users", choices.users.as_str()),
        ("archive", choices.archive.as_str()),
    ];
    if let Some(g) = &choices.groups {
        out.push(("groups", g.as_str()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Dn;
    use std::collections::HashSet;

    fn probe(kind: DirectoryKind, attrs: &[&str], classes: &[&str]) -> Probe {
        Probe {
            kind,
            base: Dn::new("dc=corp,dc=test"),
            ous: Vec::new(),
            classes: classes.iter().map(|c| c.to_ascii_lowercase()).collect(),
            attributes: attrs
                .iter()
                .map(|a| a.to_ascii_lowercase())
                .collect::<HashSet<_>>(),
            member_of: None,
            ppolicy: false,
            password_modify: false,
            server: None,
        }
    }

    fn conn() -> Connection {
        Connection {
            url: "ldaps://ldap.corp.test".into(),
            bind_dn: "cn=svc,dc=corp,dc=test".into(),
            bind_password_file: "/etc/scim2ldap/bind_password".into(),
            ca_file: None,
            starttls: false,
        }
    }

    fn choices() -> Choices {
        Choices {
            users: "ou=people,dc=corp,dc=test".into(),
            groups: Some("ou=groups,dc=corp,dc=test".into()),
            archive: "ou=archive,dc=corp,dc=test".into(),
        }
    }

    #[test]
    fn an_openldap_without_overlays_or_the_scim2ldap_schema_gets_a_mapping_it_can_serve() {
        let attrs = [
            "uid",
            "cn",
            "sn",
            "givenName",
            "mail",
            "displayName",
            "title",
            "employeeType",
            "userPassword",
            "member",
            "description",
        ];
        let p = probe(
            DirectoryKind::Openldap,
            &attrs,
            &["inetOrgPerson", "groupOfNames"],
        );
        let text = render(&p, &conn(), &choices(), "2026-12-06");
        let raw = crate::config::parse_raw(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(raw.users.container, "ou=people,dc=corp,dc=test");
        assert_eq!(raw.users.object_classes, vec!["inetOrgPerson"]);
        assert!(
            !raw.users.attributes.contains_key("externalId"),
            "scimExternalId is not in the schema"
        );
        assert!(raw.users.attributes.contains_key("userName"));
        assert!(
            !raw.users.attributes.contains_key("userType"),
            "employeeType holds active"
        );
        assert!(text.contains("strategy = \"attribute\""), "no ppolicy");
        assert!(
            text.contains("password_hash = \"ssha512\""),
            "no Password Modify"
        );
        assert!(
            !text.contains("dc=example,dc=org"),
            "the example's base is replaced"
        );
        let groups = raw.groups.unwrap_or_else(|| panic!("groups kept"));
        assert_eq!(groups.member_of_attribute, None, "no memberOf");
        assert!(text.starts_with("# Written by `scim2ldap init`"));
    }

    #[test]
    fn without_a_groups_container_the_groups_section_is_commented_out() {
        let p = probe(
            DirectoryKind::ActiveDirectory,
            &["userPrincipalName", "cn", "member"],
            &["user", "group", "top", "person", "organizationalPerson"],
        );
        let mut c = choices();
        c.groups = None;
        let text = render(&p, &conn(), &c, "2026-12-06");
        let raw = crate::config::parse_raw(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(raw.groups.is_none(), "{text}");
        assert_eq!(
            raw.users.archive_container.as_deref(),
            Some("ou=archive,dc=corp,dc=test")
        );
    }
}
