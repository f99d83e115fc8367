//! Our typed filters as the BER a search sends (RFC 4511 §4.5.1), built from the type.
//!
//! A search's filter was written as RFC 4515 text (every value escaped) and parsed back by
//! ldap3's nom parser (every value unescaped): 3–5% of a create or a delete, whose searches
//! have real filters. The tag built here is the one that parser makes from our text; a
//! property test holds the two together, so the server sees the same filter either way.

use ldap3::asn1::{ASNTag, ExplicitTag, OctetString, Sequence, StructureTag, Tag, TagClass};

use crate::directory::LdapFilter;

const AND: u64 = 0;
const OR: u64 = 1;
const NOT: u64 = 2;
const EQUALITY: u64 = 3;
const SUBSTRINGS: u64 = 4;
const GREATER_OR_EQUAL: u64 = 5;
const LESS_OR_EQUAL: u64 = 6;
const PRESENT: u64 = 7;
const EXTENSIBLE: u64 = 9;

/// AD's LDAP_MATCHING_RULE_BIT_AND.
const BIT_AND_RULE: &str = "1.2.840.113556.1.4.803";

/// The filter as the search request carries it.
pub(super) fn filter_tag(filter: &LdapFilter) -> StructureTag {
    tag(filter).into_structure()
}

fn tag(filter: &LdapFilter) -> Tag {
    match filter {
        LdapFilter::True => present("objectClass"),
        LdapFilter::False => not(present("objectClass")),
        LdapFilter::And(parts) => set(AND, parts),
        LdapFilter::Or(parts) => set(OR, parts),
        LdapFilter::Not(inner) => not(tag(inner)),
        LdapFilter::Eq(a, v) => assertion(EQUALITY, a, v.as_bytes()),
        LdapFilter::EqBytes(a, v) => assertion(EQUALITY, a, v),
        LdapFilter::Ge(a, v) => assertion(GREATER_OR_EQUAL, a, v.as_bytes()),
        LdapFilter::Le(a, v) => assertion(LESS_OR_EQUAL, a, v.as_bytes()),
        LdapFilter::Present(a) => present(a),
        LdapFilter::BitAnd(a, bits) => Tag::Sequence(Sequence {
            class: TagClass::Context,
            id: EXTENSIBLE,
            inner: vec![
                context(1, BIT_AND_RULE.as_bytes()),
                context(2, a.as_bytes()),
                context(3, bits.to_string().as_bytes()),
            ],
        }),
        LdapFilter::Substring {
            attr,
            initial,
            any,
            last,
        } => substrings(attr, initial.as_deref(), any, last.as_deref()),
    }
}

fn octets(bytes: &[u8]) -> Tag {
    Tag::OctetString(OctetString {
        inner: bytes.to_vec(),
        ..Default::default()
    })
}

fn context(id: u64, bytes: &[u8]) -> Tag {
    Tag::OctetString(OctetString {
        class: TagClass::Context,
        id,
        inner: bytes.to_vec(),
    })
}

fn present(attr: &str) -> Tag {
    context(PRESENT, attr.as_bytes())
}

fn not(inner: Tag) -> Tag {
    Tag::ExplicitTag(ExplicitTag {
        class: TagClass::Context,
        id: NOT,
        inner: Box::new(inner),
    })
}

fn set(id: u64, parts: &[LdapFilter]) -> Tag {
    Tag::Sequence(Sequence {
        class: TagClass::Context,
        id,
        inner: parts.iter().map(tag).collect(),
    })
}

fn assertion(id: u64, attr: &str, value: &[u8]) -> Tag {
    Tag::Sequence(Sequence {
        class: TagClass::Context,
        id,
        inner: vec![octets(attr.as_bytes()), octets(value)],
    })
}

/// `attr=initial*any*…*last`; empty pieces are no pieces, as in the text (`a=*` with none
/// at all is a presence test).
fn substrings(attr: &str, initial: Option<&str>, any: &[String], last: Option<&str>) -> Tag {
    let mut pieces = Vec::with_capacity(any.len() + 2);
    if let Some(i) = initial.filter(|i| !i.is_empty()) {
        pieces.push(context(0, i.as_bytes()));
    }
    pieces.extend(
        any.iter()
            .filter(|a| !a.is_empty())
            .map(|a| context(1, a.as_bytes())),
    );
    if let Some(l) = last.filter(|l| !l.is_empty()) {
        pieces.push(context(2, l.as_bytes()));
    }
    if pieces.is_empty() {
        return present(attr);
    }
    Tag::Sequence(Sequence {
        class: TagClass::Context,
        id: SUBSTRINGS,
        inner: vec![
            octets(attr.as_bytes()),
            Tag::Sequence(Sequence {
                inner: pieces,
                ..Default::default()
            }),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text_tag(f: &LdapFilter) -> Option<StructureTag> {
        ldap3::parse_filter(f.to_string())
            .ok()
            .map(Tag::into_structure)
    }

    fn value() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 *()\\\\=é\u{0}]{0,6}"
    }

    fn leaf() -> impl Strategy<Value = LdapFilter> {
        let attr = prop_oneof![Just("uid"), Just("cn"), Just("objectClass"), Just("mail;x")];
        prop_oneof![
            Just(LdapFilter::True),
            Just(LdapFilter::False),
            (attr.clone(), value()).prop_map(|(a, v)| LdapFilter::Eq(a.into(), v)),
            (attr.clone(), proptest::collection::vec(any::<u8>(), 0..6))
                .prop_map(|(a, v)| LdapFilter::EqBytes(a.into(), v)),
            (attr.clone(), any::<u32>()).prop_map(|(a, b)| LdapFilter::BitAnd(a.into(), b)),
            attr.clone().prop_map(|a| LdapFilter::Present(a.into())),
            (attr.clone(), value()).prop_map(|(a, v)| LdapFilter::Ge(a.into(), v)),
            (attr.clone(), value()).prop_map(|(a, v)| LdapFilter::Le(a.into(), v)),
            (
                attr,
                proptest::option::of(value()),
                proptest::collection::vec("[a-z*]{1,4}", 0..3),
                proptest::option::of(value()),
            )
                .prop_map(|(a, initial, any, last)| LdapFilter::Substring {
                    attr: a.into(),
                    initial,
                    any,
                    last,
                }),
        ]
    }

    fn filter() -> impl Strategy<Value = LdapFilter> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 1..4).prop_map(LdapFilter::And),
                proptest::collection::vec(inner.clone(), 1..4).prop_map(LdapFilter::Or),
                inner.prop_map(|f| LdapFilter::Not(Box::new(f))),
            ]
        })
    }

    proptest! {
        #[test]
        fn a_filter_is_the_tag_its_text_parses_to(f in filter()) {
            let text = text_tag(&f);
            prop_assert!(text.is_some(), "ldap3 cannot parse {f}");
            prop_assert_eq!(Some(filter_tag(&f)), text, "{}", f);
        }
    }

    #[test]
    fn the_filters_a_read_and_a_lookup_send_are_their_texts() {
        for f in [
            LdapFilter::True,
            LdapFilter::and(vec![
                LdapFilter::eq("objectClass", "inetOrgPerson"),
                LdapFilter::eq("uid", "bench1"),
                LdapFilter::negate(LdapFilter::Present("x-archived".into())),
            ]),
            LdapFilter::eq("member", "uid=a\\,b,ou=People,dc=example,dc=org"),
        ] {
            assert_eq!(Some(filter_tag(&f)), text_tag(&f), "{f}");
        }
    }
}
