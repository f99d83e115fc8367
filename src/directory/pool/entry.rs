//! Search result entries, read straight from the bytes the directory sent into the form
//! `Entry` keeps.
//!
//! ldap3's `SearchEntry::construct` copies every name and value into a SipHash map that the
//! dialects then rebuilt with lowercase names, from a tree with a vector per tag. The vendored
//! ldap3 hands over an entry's contents unparsed (`PL::Encoded`, vendor/README.md), and they
//! are read here in place (`ber`) and copied once into an `AttrMap`'s one buffer, the names
//! lowercased on the way. `construct` also panics on an entry of any other shape; a
//! server (or a proxy in front of one) that sends one gets a `None` here and an error for the
//! request instead.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use ldap3::asn1::{StructureTag, PL};

use super::ber::{self, Tags};
use crate::directory::attrs::MAX_TEXT;
use crate::directory::AttrMap;

/// Values of the attributes that have one value that is not UTF-8 (AD's objectGUID and
/// objectSid), keyed by lowercase name.
pub type BinAttrMap = HashMap<String, Vec<Vec<u8>>, RandomState>;

/// One entry as the directory sent it; attribute names in lowercase.
#[derive(Debug, Default, PartialEq)]
pub struct RawEntry {
    pub dn: String,
    /// Attributes whose values are all UTF-8.
    pub attrs: AttrMap,
    /// The others, every value as bytes (`SearchEntry`'s split).
    pub bin_attrs: BinAttrMap,
}

/// The tag number of a SearchResultEntry ([APPLICATION 4]).
const SEARCH_RESULT_ENTRY: u8 = 4;

impl RawEntry {
    /// A SearchResultEntry as the vendored ldap3 hands it over (its contents kept encoded),
    /// or `None` when `tag` is another operation or its contents have another shape.
    pub fn decode(tag: StructureTag) -> Option<RawEntry> {
        match tag.payload {
            PL::Encoded(content) if tag.id == u64::from(SEARCH_RESULT_ENTRY) => {
                Self::from_contents(&content)
            }
            _ => None,
        }
    }

    /// A SearchResultEntry encoded whole (a post-read control's value, RFC 4527).
    pub fn from_ber(bytes: &[u8]) -> Option<RawEntry> {
        let (tag, _) = ber::read(bytes)?;
        if tag.number() != SEARCH_RESULT_ENTRY {
            return None;
        }
        Self::from_contents(tag.constructed()?.whole())
    }

    /// `{ dn, { { type, { value… } }… } }`, or `None` when the contents have another shape
    /// or a name or the DN is not UTF-8.
    fn from_contents(content: &[u8]) -> Option<RawEntry> {
        if content.len() > MAX_TEXT {
            return None;
        }
        let mut parts = Tags::of(content);
        let dn = parts.take()?.primitive()?;
        let mut attrs = parts.take()?.constructed()?;
        if !parts.is_done() {
            return None;
        }
        let names = attrs.count()?;
        let mut entry = RawEntry {
            dn: std::str::from_utf8(dn).ok()?.to_owned(),
            // the names and values are shorter than the contents; most names have one value,
            // and a few more grow the list
            attrs: AttrMap::with_capacity(names, names * 2, content.len()),
            bin_attrs: BinAttrMap::default(),
        };
        while let Some(attr) = attrs.next_tag() {
            let mut attr = attr?.constructed()?;
            let name = std::str::from_utf8(attr.take()?.primitive()?).ok()?;
            let values = attr.take()?.constructed()?;
            if !attr.is_done() {
                return None;
            }
            read_values(&mut entry, name, values)?;
        }
        Some(entry)
    }
}

/// Files one attribute's values: as text when every one is UTF-8, as bytes otherwise
/// (`SearchEntry`'s split). One pass: a value that is not UTF-8 drops the text kept so far
/// and the values are read again as bytes.
fn read_values(entry: &mut RawEntry, name: &str, values: Tags<'_>) -> Option<()> {
    let mark = entry.attrs.mark();
    let mut tags = values;
    while let Some(tag) = tags.next_tag() {
        match std::str::from_utf8(tag?.primitive()?) {
            Ok(text) => entry.attrs.push_value(text),
            Err(_) => {
                entry.attrs.rollback(mark);
                return file_bytes(&mut entry.bin_attrs, name, values);
            }
        }
    }
    entry.attrs.commit(name, mark);
    Some(())
}

/// Puts every value of `values` under `name` (lowercased) as bytes, after any it had.
fn file_bytes(map: &mut BinAttrMap, name: &str, mut values: Tags<'_>) -> Option<()> {
    let mut bytes = Vec::new();
    while let Some(tag) = values.next_tag() {
        bytes.push(tag?.primitive()?.to_vec());
    }
    map.entry(name.to_ascii_lowercase())
        .or_default()
        .extend(bytes);
    Some(())
}

/// A search's entry, decoded; one of another shape fails the search as a broken connection
/// does (the connection is dropped; nothing is guessed from it).
pub(super) fn decoded(entry: ldap3::ResultEntry) -> Result<RawEntry, ldap3::LdapError> {
    RawEntry::decode(entry.0).ok_or_else(|| {
        ldap3::LdapError::from(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the directory sent a search result entry of another shape",
        ))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use ldap3::asn1::TagClass;

    fn prim(bytes: &[u8]) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id: 4,
            payload: PL::P(bytes.to_vec()),
        }
    }

    fn cons(id: u64, inner: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id,
            payload: PL::C(inner),
        }
    }

    /// A SearchResultEntry op ([APPLICATION 4]) holding `parts`.
    fn op(parts: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::C(parts),
        }
    }

    fn entry(attrs: Vec<(&[u8], Vec<&[u8]>)>) -> StructureTag {
        let attrs = attrs
            .into_iter()
            .map(|(n, vs)| {
                cons(
                    16,
                    vec![prim(n), cons(17, vs.into_iter().map(prim).collect())],
                )
            })
            .collect();
        op(vec![prim(b"uid=Ann,ou=People"), cons(16, attrs)])
    }

    fn encoded(tag: &StructureTag) -> Vec<u8> {
        let mut buf = bytes::BytesMut::new();
        ldap3::asn1::write::encode_into(&mut buf, tag.clone()).unwrap();
        buf.to_vec()
    }

    /// The entry read from its whole encoding (a post-read control's value), after checking
    /// that its contents, as the vendored ldap3 hands them over, read the same.
    fn read(tag: &StructureTag) -> Option<RawEntry> {
        let bytes = encoded(tag);
        let whole = RawEntry::from_ber(&bytes);
        let (kept, _) = ber::read(&bytes).unwrap();
        let handed_over = StructureTag {
            class: tag.class,
            id: tag.id,
            payload: PL::Encoded(kept.content.to_vec()),
        };
        assert_eq!(RawEntry::decode(handed_over), whole);
        whole
    }

    #[test]
    fn an_entry_is_decoded_as_ldap3_decodes_it_with_names_lowercased() {
        let guid: &[u8] = &[0xff, 0x00, 0xfe, 0x41];
        let tag = entry(vec![
            (b"cn", vec![b"Ann", b"Anne"]),
            (b"objectGUID", vec![guid]),
            (b"mixedBin", vec![b"text", guid]),
            (b"MAIL", vec![]),
        ]);
        let mine = read(&tag).unwrap();
        // ldap3's own reading of an entry kept encoded parses it as it parsed the tree
        let (kept, _) = ber::read(&encoded(&tag))
            .map(|(t, r)| (t.content.to_vec(), r.len()))
            .unwrap();
        let kept = ldap3::SearchEntry::construct(ldap3::ResultEntry::new(StructureTag {
            payload: PL::Encoded(kept),
            ..tag.clone()
        }));
        let theirs = ldap3::SearchEntry::construct(ldap3::ResultEntry::new(tag));
        assert_eq!(
            (&kept.dn, &kept.attrs, &kept.bin_attrs),
            (&theirs.dn, &theirs.attrs, &theirs.bin_attrs)
        );
        assert_eq!(mine.dn, theirs.dn);
        let lower = |m: HashMap<String, Vec<String>>| -> Vec<(String, Vec<String>)> {
            let mut v: Vec<_> = m
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            v.sort();
            v
        };
        let mut mine_attrs: Vec<_> = mine
            .attrs
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_vec()))
            .collect();
        mine_attrs.sort();
        assert_eq!(mine_attrs, lower(theirs.attrs));
        let mut mine_bin: Vec<_> = mine.bin_attrs.into_iter().collect();
        mine_bin.sort();
        let mut theirs_bin: Vec<_> = theirs
            .bin_attrs
            .into_iter()
            .map(|(k, mut v)| {
                v.sort();
                (k.to_ascii_lowercase(), v)
            })
            .collect();
        theirs_bin.sort();
        for (_, v) in &mut mine_bin {
            v.sort();
        }
        assert_eq!(mine_bin, theirs_bin);
    }

    #[test]
    fn a_name_sent_twice_in_two_spellings_keeps_both_values() {
        let e = read(&entry(vec![(b"cn", vec![b"a"]), (b"CN", vec![b"b"])])).unwrap();
        assert_eq!(e.attrs.get("cn").unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn entries_of_another_shape_are_refused_not_panicked_on() {
        let not_utf8_dn = op(vec![prim(&[0xff]), cons(16, vec![])]);
        let wrong_op = StructureTag {
            id: 5,
            ..entry(vec![])
        };
        let no_attrs = op(vec![prim(b"cn=x")]);
        let value_not_octets = op(vec![
            prim(b"cn=x"),
            cons(
                16,
                vec![cons(
                    16,
                    vec![prim(b"cn"), cons(17, vec![cons(16, vec![])])],
                )],
            ),
        ]);
        let name_not_utf8 = entry(vec![(&[0xc3, 0x28], vec![b"v"])]);
        let attrs_primitive = op(vec![prim(b"cn=x"), prim(b"oops")]);
        for bad in [
            not_utf8_dn,
            wrong_op,
            no_attrs,
            value_not_octets,
            name_not_utf8,
            attrs_primitive,
        ] {
            assert_eq!(read(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_entry_cut_short_or_with_more_parts_is_refused() {
        let good = encoded(&entry(vec![(b"cn", vec![b"Ann"])]));
        assert!(RawEntry::from_ber(&good).is_some());
        for len in 0..good.len() {
            assert_eq!(RawEntry::from_ber(good.get(..len).unwrap()), None, "{len}");
        }
        let three_parts = op(vec![prim(b"cn=x"), cons(16, vec![]), prim(b"extra")]);
        let attr_three_parts = op(vec![
            prim(b"cn=x"),
            cons(
                16,
                vec![cons(16, vec![prim(b"cn"), cons(17, vec![]), prim(b"x")])],
            ),
        ]);
        assert_eq!(read(&three_parts), None);
        assert_eq!(read(&attr_three_parts), None);
    }

    #[test]
    fn an_entry_kept_as_a_tree_is_not_read() {
        // the vendored ldap3 keeps an entry's contents encoded; a tree means it was not
        assert_eq!(RawEntry::decode(entry(vec![(b"cn", vec![b"Ann"])])), None);
    }
}
