//! LDAP search filters as a small AST rendered to RFC 4515 text, and DN value escaping
//! (RFC 4514). Every value that reaches the directory passes through here.

use std::fmt::{self, Write};

use ldap3::ldap_escape;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapFilter {
    /// Matches every entry (`(objectClass=*)`).
    True,
    /// Matches no entry (`(!(objectClass=*))`).
    False,
    And(Vec<LdapFilter>),
    Or(Vec<LdapFilter>),
    Not(Box<LdapFilter>),
    Eq(String, String),
    /// Equality on a binary attribute (AD's objectGUID), every byte escaped.
    EqBytes(String, Vec<u8>),
    /// Some of these bits set (AD's LDAP_MATCHING_RULE_BIT_AND, 1.2.840.113556.1.4.803).
    BitAnd(String, u32),
    Present(String),
    Substring {
        attr: String,
        initial: Option<String>,
        any: Vec<String>,
        last: Option<String>,
    },
    Ge(String, String),
    Le(String, String),
}

impl LdapFilter {
    pub fn eq(attr: &str, value: impl Into<String>) -> Self {
        LdapFilter::Eq(attr.to_owned(), value.into())
    }

    /// `a AND b` with constants folded away.
    pub fn and(parts: Vec<LdapFilter>) -> LdapFilter {
        let mut out = Vec::new();
        for p in parts {
            match p {
                LdapFilter::True => {}
                LdapFilter::False => return LdapFilter::False,
                LdapFilter::And(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => LdapFilter::True,
            1 => out.pop().unwrap_or(LdapFilter::True),
            _ => LdapFilter::And(out),
        }
    }

    /// `a OR b` with constants folded away.
    pub fn or(parts: Vec<LdapFilter>) -> LdapFilter {
        let mut out = Vec::new();
        for p in parts {
            match p {
                LdapFilter::False => {}
                LdapFilter::True => return LdapFilter::True,
                LdapFilter::Or(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => LdapFilter::False,
            1 => out.pop().unwrap_or(LdapFilter::False),
            _ => LdapFilter::Or(out),
        }
    }

    pub fn negate(inner: LdapFilter) -> LdapFilter {
        match inner {
            LdapFilter::True => LdapFilter::False,
            LdapFilter::False => LdapFilter::True,
            LdapFilter::Not(x) => *x,
            other => LdapFilter::Not(Box::new(other)),
        }
    }
}

impl fmt::Display for LdapFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LdapFilter::True => f.write_str("(objectClass=*)"),
            LdapFilter::False => f.write_str("(!(objectClass=*))"),
            LdapFilter::And(parts) => {
                f.write_str("(&")?;
                for p in parts {
                    write!(f, "{p}")?;
                }
                f.write_char(')')
            }
            LdapFilter::Or(parts) => {
                f.write_str("(|")?;
                for p in parts {
                    write!(f, "{p}")?;
                }
                f.write_char(')')
            }
            LdapFilter::Not(p) => write!(f, "(!{p})"),
            LdapFilter::Eq(a, v) => write!(f, "({a}={})", ldap_escape(v)),
            LdapFilter::EqBytes(a, v) => write!(f, "({a}={})", escape_filter_bytes(v)),
            LdapFilter::BitAnd(a, bits) => write!(f, "({a}:1.2.840.113556.1.4.803:={bits})"),
            LdapFilter::Present(a) => write!(f, "({a}=*)"),
            LdapFilter::Ge(a, v) => write!(f, "({a}>={})", ldap_escape(v)),
            LdapFilter::Le(a, v) => write!(f, "({a}<={})", ldap_escape(v)),
            LdapFilter::Substring {
                attr,
                initial,
                any,
                last,
            } => {
                write!(f, "({attr}=")?;
                if let Some(i) = initial {
                    f.write_str(&ldap_escape(i))?;
                }
                f.write_char('*')?;
                for a in any {
                    write!(f, "{}*", ldap_escape(a))?;
                }
                if let Some(l) = last {
                    f.write_str(&ldap_escape(l))?;
                }
                f.write_char(')')
            }
        }
    }
}

/// Escapes raw bytes for a filter (binary attributes such as AD's objectGUID).
pub fn escape_filter_bytes(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "\\{b:02x}");
        s
    })
}

/// RFC 4514 §2.4: escapes one attribute value for use in a DN.
///
/// Not ldap3's `dn_escape`: that one writes every special as a hex pair (`Smith\2c John`),
/// which RFC 4514 allows but neither slapd nor AD shows; this writes the backslash form the
/// directories hand back (`Smith\, John`), so the DNs we answer and log read as the admin
/// sees them in the directory. Filter values use ldap3's `ldap_escape`, which is RFC 4515 §3
/// exactly (and borrows when nothing needs escaping).
pub fn escape_dn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 4);
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// Splits on `sep` where it is not escaped.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c == sep => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

/// Splits a DN into its RDNs, honouring escapes, so that DNs compare component by component.
pub fn split_dn(dn: &str) -> Vec<String> {
    split_unescaped(dn, ',')
        .into_iter()
        .map(|p| p.trim().to_owned())
        .collect()
}

/// RFC 4514 unescaping of an attribute value: `\,` and `\2C` both give `,`.
pub fn unescape_dn_value(v: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(v.len());
    let mut rest = v.as_bytes();
    while let Some((&c, after)) = rest.split_first() {
        rest = after;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let pair = match rest {
            [h, l, ..] => hex(*h).zip(hex(*l)),
            _ => None,
        };
        match (pair, rest.split_first()) {
            (Some((h, l)), _) => {
                out.push(h * 16 + l);
                rest = rest.get(2..).unwrap_or_default();
            }
            (None, Some((&n, tail))) => {
                out.push(n);
                rest = tail;
            }
            // a backslash at the very end stays itself
            (None, None) => out.push(c),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A DN in a form fit for comparing: attribute names lowercased, values unescaped,
/// lowercased and escaped one canonical way (`\2C` and `\,` compare equal). Good for the
/// case-insensitive naming attributes used here; not a full RFC 4517 matcher.
pub fn normalize_dn(dn: &str) -> String {
    // every read and every container check normalizes DNs, and the common DN has nothing
    // to trim or unescape (the general way below costs a dozen allocations)
    if is_plain_dn(dn) {
        return dn.to_ascii_lowercase();
    }
    if dn
        .bytes()
        .any(|b| matches!(b, b'\\' | b'"' | b'+' | b';' | b'<' | b'>' | b'#' | 0))
    {
        return normalize_escaped_dn(dn);
    }
    // spaces to trim, or letters beyond ASCII, but nothing escaped
    let mut out = String::with_capacity(dn.len());
    for (i, rdn) in dn.split(',').enumerate() {
        if i > 0 {
            out.push(',');
        }
        let rdn = rdn.trim();
        match rdn.split_once('=') {
            Some((a, v)) if !v.contains('=') => {
                push_lowercase(&mut out, a.trim());
                out.push('=');
                push_lowercase(&mut out, v.trim());
            }
            // a value with `=` in it is escaped in the canonical form
            Some(_) => return normalize_escaped_dn(dn),
            None => push_lowercase(&mut out, rdn),
        }
    }
    out
}

/// A DN whose canonical form is its ASCII lowercase: no spaces to trim, nothing escaped or
/// quoted, one `=` per RDN, ASCII only. One pass: it runs on every DN read.
fn is_plain_dn(dn: &str) -> bool {
    let mut eqs = 0u32;
    for &b in dn.as_bytes() {
        match b {
            b',' if eqs == 1 => eqs = 0,
            b',' => return false,
            b'=' => eqs += 1,
            b'\\' | b'"' | b'+' | b';' | b'<' | b'>' | b'#' => return false,
            _ if !b.is_ascii_graphic() => return false,
            _ => {}
        }
    }
    eqs == 1
}

fn push_lowercase(out: &mut String, s: &str) {
    if s.is_ascii() {
        let start = out.len();
        out.push_str(s);
        if let Some(pushed) = out.get_mut(start..) {
            pushed.make_ascii_lowercase();
        }
    } else {
        out.push_str(&s.to_lowercase());
    }
}

/// `normalize_dn` for DNs with escapes, quotes or multi-valued RDNs.
fn normalize_escaped_dn(dn: &str) -> String {
    split_dn(dn)
        .iter()
        .map(|rdn| {
            split_unescaped(rdn, '+')
                .iter()
                .map(|ava| match ava.split_once('=') {
                    Some((a, v)) => format!(
                        "{}={}",
                        a.trim().to_lowercase(),
                        escape_dn_value(unescape_dn_value(v.trim()).trim()).to_lowercase()
                    ),
                    None => ava.to_lowercase(),
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether `dn` lies strictly below `base`.
pub fn is_under(dn: &str, base: &str) -> bool {
    // every cached read checks its DN against the container: compare plain DNs in place
    if is_plain_dn(dn) && is_plain_dn(base) {
        let cut = dn.len().saturating_sub(base.len());
        return dn.get(..cut).is_some_and(|head| head.ends_with(','))
            && dn
                .get(cut..)
                .is_some_and(|tail| tail.eq_ignore_ascii_case(base));
    }
    is_under_normalized(dn, base)
}

fn is_under_normalized(dn: &str, base: &str) -> bool {
    let dn = normalize_dn(dn);
    let base = normalize_dn(base);
    dn.len() > base.len() && dn.ends_with(&base) && dn[..dn.len() - base.len()].ends_with(',')
}

/// The first RDN of `dn` and the rest (its parent), each RDN trimmed as `split_dn` trims it.
pub fn split_first_rdn(dn: &str) -> (String, String) {
    // every write names its entry's RDN: the first unescaped comma is found in place, and
    // the parent is copied as is unless it has spaces to trim (splitting a DN char by char
    // into strings was 2% of a PATCH)
    let bytes = dn.as_bytes();
    let mut i = 0;
    let cut = loop {
        match bytes.get(i) {
            None => break None,
            Some(b'\\') => i += 2, // an escaped byte (a continuation byte is never `,`)
            Some(b',') => break Some(i),
            Some(_) => i += 1,
        }
    };
    let Some((first, rest)) = cut.and_then(|at| Some((dn.get(..at)?, dn.get(at + 1..)?))) else {
        return (dn.trim().to_owned(), String::new());
    };
    let parent = if rest.contains(char::is_whitespace) {
        split_dn(rest).join(",")
    } else {
        rest.to_owned()
    };
    (first.trim().to_owned(), parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_dns_normalize_as_the_general_way_does() {
        for dn in [
            "uid=Alice,ou=People,dc=Example,dc=org",
            " UID = alice , OU=people,DC=example,DC=org ",
            "cn=Ünïcode Näme,ou=groups,dc=example,dc=org",
            "cn=a=b,dc=x",
            "cn=,dc=x",
            "novalue,dc=x",
            "",
            "cn=John Smith 2,OU=Staff,DC=ad,DC=test",
            "CN=ΣΑΣ,dc=x",
        ] {
            assert_eq!(normalize_dn(dn), normalize_escaped_dn(dn), "{dn:?}");
        }
        assert_eq!(
            normalize_dn("cn=Smith\\, John,dc=x"),
            normalize_dn("CN=smith\\2c john,DC=x")
        );
    }

    proptest::proptest! {
        #[test]
        fn any_dn_normalizes_as_the_general_way_does(dn in "[a-zA-Z=,+ \\\\#\"Üσς]{0,30}") {
            proptest::prop_assert_eq!(normalize_dn(&dn), normalize_escaped_dn(&dn));
        }
    }

    #[test]
    fn filter_values_are_escaped_against_injection() {
        let f = LdapFilter::eq("uid", "*)(uid=*");
        assert_eq!(f.to_string(), r"(uid=\2a\29\28uid=\2a)");
        let f = LdapFilter::eq("cn", r"a\b");
        assert_eq!(f.to_string(), r"(cn=a\5cb)");
        assert_eq!(escape_filter_bytes(&[0x01, 0xff]), r"\01\ff");
    }

    #[test]
    fn substring_filters_escape_every_piece() {
        let f = LdapFilter::Substring {
            attr: "mail".into(),
            initial: Some("a*".into()),
            any: vec!["(x)".into()],
            last: None,
        };
        assert_eq!(f.to_string(), r"(mail=a\2a*\28x\29*)");
    }

    #[test]
    fn constants_fold() {
        assert_eq!(
            LdapFilter::and(vec![LdapFilter::True, LdapFilter::Present("a".into())]).to_string(),
            "(a=*)"
        );
        assert_eq!(
            LdapFilter::or(vec![LdapFilter::False, LdapFilter::False]),
            LdapFilter::False
        );
        assert_eq!(
            LdapFilter::and(vec![LdapFilter::False, LdapFilter::Present("a".into())]),
            LdapFilter::False
        );
        assert_eq!(LdapFilter::negate(LdapFilter::True), LdapFilter::False);
    }

    #[test]
    fn dn_values_are_escaped() {
        assert_eq!(escape_dn_value("Smith, John"), r"Smith\, John");
        assert_eq!(escape_dn_value("a+b=c"), r"a\+b\=c");
        assert_eq!(escape_dn_value(" #lead "), r"\ #lead\ ");
        assert_eq!(escape_dn_value("#x"), r"\#x");
        assert_eq!(escape_dn_value(r#"q"uote<>;\"#), r#"q\"uote\<\>\;\\"#);
    }

    proptest::proptest! {
        #[test]
        fn plain_dns_are_compared_in_place_as_the_general_way_does(
            rdns in "(([aA]|uid|CN| cn)=([xX]|[aA]|y=z| b|\\\\,|\\+|é)?,){0,3}(dc|DC)=[xX]?",
            base in "(([aA]|uid|CN)=([xX]|[aA]|y=z| b|é)?,){0,2}(dc|DC)=[xX]?",
            below in proptest::bool::ANY,
        ) {
            // half the cases put `rdns` below `base`, spelled in the other case
            let dn = if below { format!("{rdns},{}", base.to_uppercase()) } else { rdns };
            proptest::prop_assert_eq!(is_under(&dn, &base), is_under_normalized(&dn, &base));
        }
    }

    proptest::proptest! {
        #[test]
        fn the_first_rdn_is_split_off_as_splitting_every_rdn_does(
            dn in "[a-z=,+ \\\\é\t]{0,24}",
        ) {
            let parts = split_dn(&dn);
            let expected = (
                parts.first().cloned().unwrap_or_default(),
                parts.get(1..).unwrap_or_default().join(","),
            );
            proptest::prop_assert_eq!(split_first_rdn(&dn), expected);
        }
    }

    #[test]
    fn dn_comparison_ignores_case_and_spaces_but_not_escapes() {
        assert!(is_under(
            "uid=a,OU=People, dc=Example,dc=org",
            "ou=people,dc=example,dc=org"
        ));
        assert!(!is_under(
            "ou=people,dc=example,dc=org",
            "ou=people,dc=example,dc=org"
        ));
        assert!(!is_under(
            "uid=a,ou=xpeople,dc=example,dc=org",
            "ou=people,dc=example,dc=org"
        ));
        assert_eq!(
            split_dn(r"cn=Smith\, John,ou=p"),
            vec![r"cn=Smith\, John", "ou=p"]
        );
        assert_eq!(
            split_first_rdn("uid=a,ou=p,dc=x"),
            ("uid=a".into(), "ou=p,dc=x".into())
        );
        assert_eq!(
            split_first_rdn(r" cn=Smith\, John , ou=p ,dc=x"),
            (r"cn=Smith\, John".into(), "ou=p,dc=x".into())
        );
        assert_eq!(split_first_rdn(r"cn=x\"), (r"cn=x\".into(), String::new()));
    }
}
