//! Search result entries, decoded from ldap3's BER tree straight into the form `Entry` keeps.
//!
//! ldap3's `SearchEntry::construct` copies every name and value into a SipHash map that the
//! dialects then rebuilt with lowercase names: a read's attributes were hashed and copied
//! twice. Here the tree is taken apart by value, so each name and value keeps the buffer the
//! parser made, and the names are lowercased in place, once. `construct` also panics on an
//! entry of any other shape; a server (or a proxy in front of one) that sends one gets a
//! `None` here and an error for the request instead.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use foldhash::fast::RandomState;

use ldap3::asn1::{StructureTag, PL};

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

impl RawEntry {
    /// A SearchResultEntry ([APPLICATION 4] { dn, { { type, { value… } }… } }), or `None`
    /// when `tag` has another shape or a name that is not UTF-8.
    pub fn decode(tag: StructureTag) -> Option<RawEntry> {
        if tag.id != 4 {
            return None;
        }
        let [dn, attrs] = <[StructureTag; 2]>::try_from(constructed(tag)?).ok()?;
        let attrs = constructed(attrs)?;
        let mut entry = RawEntry {
            dn: String::from_utf8(primitive(dn)?).ok()?,
            attrs: AttrMap::with_capacity_and_hasher(attrs.len(), Default::default()),
            bin_attrs: BinAttrMap::default(),
        };
        for attr in attrs {
            let [name, values] = <[StructureTag; 2]>::try_from(constructed(attr)?).ok()?;
            let mut name = String::from_utf8(primitive(name)?).ok()?;
            name.make_ascii_lowercase();
            // a name sent twice (in two spellings) keeps the values of both
            match values_of(constructed(values)?)? {
                Values::Text(text) => file(&mut entry.attrs, name, text),
                Values::Bytes(bytes) => file(&mut entry.bin_attrs, name, bytes),
            }
        }
        Some(entry)
    }
}

/// Puts `values` under `name`: the vector itself when the name is new (no copy).
fn file<V>(map: &mut HashMap<String, Vec<V>, RandomState>, name: String, values: Vec<V>) {
    match map.entry(name) {
        Entry::Occupied(mut known) => known.get_mut().extend(values),
        Entry::Vacant(new) => {
            new.insert(values);
        }
    }
}

/// An attribute's values: text when every one is UTF-8, bytes otherwise (`SearchEntry`'s
/// split).
enum Values {
    Text(Vec<String>),
    Bytes(Vec<Vec<u8>>),
}

/// One pass over the values, each buffer kept: a value that is not UTF-8 turns the ones
/// before it back into bytes (free) and the rest stay bytes.
fn values_of(tags: Vec<StructureTag>) -> Option<Values> {
    let mut text = Vec::with_capacity(tags.len());
    let mut tags = tags.into_iter();
    while let Some(tag) = tags.next() {
        match String::from_utf8(primitive(tag)?) {
            Ok(value) => text.push(value),
            Err(not_text) => {
                let mut bytes: Vec<Vec<u8>> = text.into_iter().map(String::into_bytes).collect();
                bytes.push(not_text.into_bytes());
                for tag in tags {
                    bytes.push(primitive(tag)?);
                }
                return Some(Values::Bytes(bytes));
            }
        }
    }
    Some(Values::Text(text))
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

/// A constructed tag's children, by value.
pub(super) fn constructed(tag: StructureTag) -> Option<Vec<StructureTag>> {
    match tag.payload {
        PL::C(inner) => Some(inner),
        PL::P(_) => None,
    }
}

/// A primitive tag's bytes, by value.
pub(super) fn primitive(tag: StructureTag) -> Option<Vec<u8>> {
    match tag.payload {
        PL::P(bytes) => Some(bytes),
        PL::C(_) => None,
    }
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
        StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::C(vec![prim(b"uid=Ann,ou=People"), cons(16, attrs)]),
        }
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
        let mine = RawEntry::decode(tag.clone()).unwrap();
        let theirs = ldap3::SearchEntry::construct(ldap3::ResultEntry::new(tag));
        assert_eq!(mine.dn, theirs.dn);
        let lower = |m: HashMap<String, Vec<String>>| -> Vec<(String, Vec<String>)> {
            let mut v: Vec<_> = m
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            v.sort();
            v
        };
        let mut mine_attrs: Vec<_> = mine.attrs.into_iter().collect();
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
        let e = RawEntry::decode(entry(vec![(b"cn", vec![b"a"]), (b"CN", vec![b"b"])])).unwrap();
        assert_eq!(e.attrs["cn"], vec!["a", "b"]);
    }

    #[test]
    fn entries_of_another_shape_are_refused_not_panicked_on() {
        let not_utf8_dn = StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::C(vec![prim(&[0xff]), cons(16, vec![])]),
        };
        let wrong_op = StructureTag {
            id: 5,
            ..entry(vec![])
        };
        let no_attrs = StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::C(vec![prim(b"cn=x")]),
        };
        let value_not_octets = StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::C(vec![
                prim(b"cn=x"),
                cons(
                    16,
                    vec![cons(
                        16,
                        vec![prim(b"cn"), cons(17, vec![cons(16, vec![])])],
                    )],
                ),
            ]),
        };
        let name_not_utf8 = entry(vec![(&[0xc3, 0x28], vec![b"v"])]);
        let attrs_primitive = StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::C(vec![prim(b"cn=x"), prim(b"oops")]),
        };
        for bad in [
            not_utf8_dn,
            wrong_op,
            no_attrs,
            value_not_octets,
            name_not_utf8,
            attrs_primitive,
        ] {
            assert_eq!(RawEntry::decode(bad), None);
        }
    }
}
