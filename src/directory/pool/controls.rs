//! Request and response controls the pool sends and reads (paged results, post-read,
//! permissive modify, assertion, server-side sort), and SCIM changes as ldap3 mods. Hand-built
//! where ldap3 has no type, and checked for shape before ldap3 parses them (its parsers panic
//! on anything else).

use std::collections::HashSet;

use ldap3::Mod;

use crate::directory::{Change, LdapFilter};

pub(super) const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// The cookie of a paged-results response control (SEQUENCE { size, cookie }); `None` when
/// malformed (then the walk ends rather than trusting it).
pub(super) fn paged_cookie(val: &[u8]) -> Option<Vec<u8>> {
    let (tag, _) = super::ber::read(val)?;
    let mut parts = tag.constructed()?;
    let (_size, cookie) = (parts.take()?, parts.take()?);
    if !parts.is_done() {
        return None;
    }
    cookie.primitive().map(<[u8]>::to_vec)
}

pub(super) const POST_READ_OID: &str = "1.3.6.1.1.13.2";

const ASSERTION_OID: &str = "1.3.6.1.1.12";

/// RFC 4527 post-read: the write's answer carries the entry as the write left it.
pub(super) fn post_read_control(attrs: &[&str]) -> ldap3::controls::RawControl {
    ldap3::controls::PostRead::new(attrs.to_vec())
}

/// The entry a post-read control returned, if the answer has one; a malformed one counts as
/// none (the caller then reads the entry back).
pub(super) fn post_read_entry(res: ldap3::LdapResult) -> Option<super::RawEntry> {
    let raw = res
        .ctrls
        .into_iter()
        .find(|c| c.1.ctype == POST_READ_OID)?
        .1
        .val?;
    super::RawEntry::from_ber(&raw)
}

/// LDAP_SERVER_PERMISSIVE_MODIFY_OID: adding a value that exists is not an error
/// (OpenLDAP and Active Directory both honour it), so membership adds are idempotent.
pub(super) fn permissive_modify() -> ldap3::controls::RawControl {
    ldap3::controls::RawControl {
        ctype: "1.2.840.113556.1.4.1413".to_owned(),
        crit: false,
        val: None,
    }
}

/// The assertion control (RFC 4528), critical so that a server without it refuses rather
/// than writes unchecked. Its value is the filter's BER, built from the type
/// (`filter_tag`): ldap3's `Assertion` parsed the filter's text, and panicked on one it
/// could not parse.
pub(super) fn assertion_control(
    assertion: Option<&LdapFilter>,
) -> Vec<ldap3::controls::RawControl> {
    let Some(filter) = assertion else {
        return Vec::new();
    };
    let mut value = bytes::BytesMut::new();
    // encoding into a buffer cannot fail
    let _ = ldap3::asn1::write::encode_into(&mut value, super::filter_tag::filter_tag(filter));
    vec![ldap3::controls::RawControl {
        ctype: ASSERTION_OID.to_owned(),
        crit: true,
        val: Some(value.into()),
    }]
}

/// The server-side sort request control (RFC 2891), critical: a server that cannot sort
/// this way refuses instead of answering unsorted.
pub fn sort_control(sort: &crate::directory::SortKey) -> ldap3::controls::RawControl {
    use ldap3::asn1::{ASNTag, Boolean, OctetString, Sequence, Tag, TagClass};
    let mut key = vec![
        Tag::OctetString(OctetString {
            inner: sort.attr.as_bytes().to_vec(),
            ..Default::default()
        }),
        Tag::OctetString(OctetString {
            id: 0,
            class: TagClass::Context,
            inner: sort.ordering_rule.as_bytes().to_vec(),
        }),
    ];
    if sort.reverse {
        key.push(Tag::Boolean(Boolean {
            id: 1,
            class: TagClass::Context,
            inner: true,
        }));
    }
    let list = Tag::Sequence(Sequence {
        inner: vec![Tag::Sequence(Sequence {
            inner: key,
            ..Default::default()
        })],
        ..Default::default()
    });
    let mut buf = bytes::BytesMut::new();
    // encoding into memory cannot fail
    let _ = ldap3::asn1::write::encode_into(&mut buf, list.into_structure());
    ldap3::controls::RawControl {
        ctype: "1.2.840.113556.1.4.473".to_owned(),
        crit: true,
        val: Some(buf.to_vec()),
    }
}

/// ldap3 takes value sets; a `Replace`/`Add` with several values is sent as one mod per value
/// so that the server stores them in our order (the first value is the one SCIM shows).
pub fn to_mods(changes: &[Change]) -> Vec<Mod<Vec<u8>>> {
    let bytes = |v: &String| v.as_bytes().to_vec();
    let mut mods = Vec::new();
    for c in changes {
        match c {
            Change::Replace(a, vals) => {
                let mut it = vals.iter();
                mods.push(Mod::Replace(
                    a.as_bytes().to_vec(),
                    it.next().map(bytes).into_iter().collect(),
                ));
                for v in it {
                    mods.push(Mod::Add(a.as_bytes().to_vec(), HashSet::from([bytes(v)])));
                }
            }
            Change::Add(a, vals) => {
                for v in vals {
                    mods.push(Mod::Add(a.as_bytes().to_vec(), HashSet::from([bytes(v)])));
                }
            }
            Change::Delete(a, vals) => mods.push(Mod::Delete(
                a.as_bytes().to_vec(),
                vals.iter().map(bytes).collect(),
            )),
        }
    }
    mods
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_keeps_value_order_by_sending_one_mod_per_value() {
        let mods = to_mods(&[Change::Replace("mail".into(), vec!["a".into(), "b".into()])]);
        assert_eq!(mods.len(), 2);
        assert!(
            matches!(&mods[0], Mod::Replace(a, v) if a == b"mail" && v.contains(&b"a".to_vec()) && v.len() == 1)
        );
        assert!(matches!(&mods[1], Mod::Add(a, v) if a == b"mail" && v.contains(&b"b".to_vec())));
        let mods = to_mods(&[Change::Replace("mail".into(), vec![])]);
        assert!(matches!(&mods[0], Mod::Replace(_, v) if v.is_empty()));
    }

    #[test]
    fn the_assertion_control_carries_the_filter_ldap3_would_encode() {
        let filter = LdapFilter::and(vec![
            LdapFilter::eq("entryUUID", "0f3c"),
            LdapFilter::eq("cn", "Smith, (John)*"),
        ]);
        let ours = assertion_control(Some(&filter));
        let mut theirs = ldap3::controls::Assertion::new(filter.to_string());
        theirs.crit = true;
        assert_eq!(ours.len(), 1);
        let ours = &ours[0];
        assert_eq!(
            (&ours.ctype, ours.crit, &ours.val),
            (&theirs.ctype, theirs.crit, &theirs.val)
        );
        assert!(assertion_control(None).is_empty());
    }

    #[test]
    fn a_paged_results_cookie_is_read_only_from_its_own_shape() {
        // SEQUENCE { INTEGER 0, OCTET STRING "abc" }
        let good = [0x30, 0x08, 0x02, 0x01, 0x00, 0x04, 0x03, b'a', b'b', b'c'];
        assert_eq!(paged_cookie(&good), Some(b"abc".to_vec()));
        // SEQUENCE { INTEGER 0, OCTET STRING "" }: the last page
        assert_eq!(
            paged_cookie(&[0x30, 0x05, 0x02, 0x01, 0x00, 0x04, 0x00]),
            Some(Vec::new())
        );
        for bad in [
            &[0x04, 0x03, b'a', b'b', b'c'][..], // not a SEQUENCE
            &[0x30, 0x03, 0x02, 0x01, 0x00][..], // no cookie
            &[0x30, 0x07, 0x02, 0x01, 0x00, 0x30, 0x02, 0x05, 0x00][..], // a constructed cookie
            &[
                0x30, 0x09, 0x02, 0x01, 0x00, 0x04, 0x01, b'a', 0x04, 0x01, b'b',
            ][..], // three parts
            &[0x30, 0x08, 0x02][..],             // cut short
        ] {
            assert_eq!(paged_cookie(bad), None, "{bad:?}");
        }
    }
}
