//! Names the directory gives: distinguished names, entry ids and attribute names. Each
//! compares the way the directory compares it, so code that asks "is this the same entry?"
//! or "the same attribute?" cannot forget to normalise (and cannot compare a DN with an id or
//! an attribute name: they are different types).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use super::filter::normalize_dn;

/// A distinguished name as the directory spells it. Two `Dn`s naming the same entry are
/// equal and hash alike whatever their spelling (case of types and values, escaping, spaces
/// after commas: RFC 4514 as LDAP servers compare).
#[derive(Clone)]
pub struct Dn {
    text: String,
    /// The canonical form, computed once.
    key: String,
}

impl Dn {
    pub fn new(text: impl Into<String>) -> Dn {
        let text = text.into();
        let key = normalize_dn(&text);
        Dn { text, key }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The canonical form two spellings of this DN share (for keys built from it).
    pub fn canonical(&self) -> &str {
        &self.key
    }

    /// Whether this DN lies strictly below `base` (not `base` itself).
    pub fn is_under(&self, base: &str) -> bool {
        super::filter::is_under(&self.text, base)
    }
}

impl PartialEq for Dn {
    fn eq(&self, other: &Dn) -> bool {
        self.key == other.key
    }
}

impl Eq for Dn {}

impl Hash for Dn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl Deref for Dn {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl From<String> for Dn {
    fn from(s: String) -> Dn {
        Dn::new(s)
    }
}

impl From<&str> for Dn {
    fn from(s: &str) -> Dn {
        Dn::new(s)
    }
}

impl From<Dn> for String {
    fn from(d: Dn) -> String {
        d.text
    }
}

/// The immutable id of an entry (OpenLDAP's entryUUID, AD's objectGUID, both as text), which
/// SCIM shows as `id`. Compared without regard to case: ids are hexadecimal.
#[derive(Clone, Default)]
pub struct EntryId(String);

impl EntryId {
    pub fn new(text: impl Into<String>) -> EntryId {
        EntryId(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for EntryId {
    fn eq(&self, other: &EntryId) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for EntryId {}

impl Hash for EntryId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.0.bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
    }
}

impl PartialEq<str> for EntryId {
    fn eq(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

impl Deref for EntryId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl From<String> for EntryId {
    fn from(s: String) -> EntryId {
        EntryId(s)
    }
}

impl From<&str> for EntryId {
    fn from(s: &str) -> EntryId {
        EntryId(s.to_owned())
    }
}

impl serde::Serialize for Dn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl serde::Serialize for EntryId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// An LDAP attribute name (RFC 4512 `descr`, or an OID), as the admin's mapping or the schema
/// spells it. Compared, hashed and ordered without regard to case, as the directory does:
/// `mail` and `Mail` are one attribute, so a map of attributes cannot hold both.
#[derive(Clone)]
pub struct AttrName(std::sync::Arc<Spellings>);

/// The name as spelled, and its ASCII lowercase, made once: entries are keyed by it, and
/// every entry shown looks up every mapped name. Shared: a write's desired values hold a
/// copy of each mapped name, and a copy is a count.
struct Spellings {
    text: String,
    key: String,
    /// The key's first eight bytes, big-endian, zero-padded: most names differ in them, so
    /// most comparisons (a write's desired values are a map by name) need not read further.
    /// Ordered as the key is: where two prefixes differ, the keys differ at that byte.
    prefix: u64,
}

impl AttrName {
    pub fn new(text: impl Into<String>) -> AttrName {
        let text = text.into();
        let key = text.to_ascii_lowercase();
        let mut head = [0u8; 8];
        for (to, from) in head.iter_mut().zip(key.bytes()) {
            *to = from;
        }
        let prefix = u64::from_be_bytes(head);
        AttrName(std::sync::Arc::new(Spellings { text, key, prefix }))
    }

    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// The lowercase form two spellings share.
    pub fn key(&self) -> &str {
        &self.0.key
    }
}

impl PartialEq for AttrName {
    fn eq(&self, other: &AttrName) -> bool {
        self.0.prefix == other.0.prefix && self.key() == other.key()
    }
}

impl Eq for AttrName {}

impl PartialEq<str> for AttrName {
    fn eq(&self, other: &str) -> bool {
        self.as_str().eq_ignore_ascii_case(other)
    }
}

impl PartialEq<&str> for AttrName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str().eq_ignore_ascii_case(other)
    }
}

impl Hash for AttrName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl Ord for AttrName {
    fn cmp(&self, other: &AttrName) -> std::cmp::Ordering {
        self.0
            .prefix
            .cmp(&other.0.prefix)
            .then_with(|| self.key().cmp(other.key()))
    }
}

impl PartialOrd for AttrName {
    fn partial_cmp(&self, other: &AttrName) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Deref for AttrName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for AttrName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for AttrName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for AttrName {
    fn from(s: &str) -> AttrName {
        AttrName::new(s)
    }
}

impl From<String> for AttrName {
    fn from(s: String) -> AttrName {
        AttrName::new(s)
    }
}

impl From<AttrName> for String {
    fn from(a: AttrName) -> String {
        a.as_str().to_owned()
    }
}

/// Attribute names, each once whatever its case, in first-seen order: several SCIM
/// attributes often map to one LDAP attribute, and a read lists each once.
pub fn each_attribute_once<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    // a read lists about forty names: a 256-bit set of (length, lowercased ends) keys tells
    // most names are new without comparing them with every name before them
    let bit = |a: &str| {
        let lower = |b: Option<&u8>| u32::from(b.map_or(0, u8::to_ascii_lowercase));
        let key =
            (a.len() as u32) << 16 | lower(a.as_bytes().first()) << 8 | lower(a.as_bytes().last());
        (key.wrapping_mul(0x9E37_79B1) >> 24) as usize
    };
    let names = names.into_iter();
    let (least, most) = names.size_hint();
    let mut seen: Vec<&str> = Vec::with_capacity(most.unwrap_or(least).min(1024));
    let mut keys = [0u64; 4];
    for a in names {
        let b = bit(a);
        let Some(word) = keys.get_mut(b / 64) else {
            continue; // unreachable: b < 256
        };
        let mask = 1u64 << (b % 64);
        if *word & mask != 0 && seen.iter().any(|s| s.eq_ignore_ascii_case(a)) {
            continue;
        }
        *word |= mask;
        seen.push(a);
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn each_attribute_is_listed_once_whatever_its_case() {
        let names = [
            "mail", "cn", "MAIL", "sn", "Cn", "mobile", "mall", "cm", "sn",
        ];
        assert_eq!(
            each_attribute_once(names),
            ["mail", "cn", "sn", "mobile", "mall", "cm"]
        );
        assert!(each_attribute_once([]).is_empty());
        assert_eq!(each_attribute_once(["", ""]), [""]);
    }

    proptest::proptest! {
        // lists long enough that unrelated names share a key bit
        #[test]
        fn each_attribute_once_keeps_what_comparing_every_pair_keeps(
            names in proptest::collection::vec("[a-dA-D]{0,4}", 0..300)
        ) {
            let mut naive: Vec<&str> = Vec::new();
            for a in &names {
                if !naive.iter().any(|n| n.eq_ignore_ascii_case(a)) {
                    naive.push(a);
                }
            }
            proptest::prop_assert_eq!(each_attribute_once(names.iter().map(String::as_str)), naive);
        }

        // names around the eight bytes the comparison reads first, NUL bytes included
        #[test]
        fn attribute_names_order_and_compare_as_their_lowercase_keys(
            a in "[a-cA-C\\x00]{5,11}",
            b in "[a-cA-C\\x00]{5,11}",
        ) {
            let (x, y) = (AttrName::new(a.as_str()), AttrName::new(b.as_str()));
            let (kx, ky) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
            proptest::prop_assert_eq!(x.cmp(&y), kx.cmp(&ky));
            proptest::prop_assert_eq!(x == y, kx == ky);
        }
    }

    #[test]
    fn dns_naming_one_entry_are_equal_whatever_their_spelling() {
        let a = Dn::new("uid=Jo\\,e,OU=People,dc=example,dc=org");
        let b = Dn::new("UID=jo\\2Ce, ou=people,DC=Example,DC=org");
        assert_eq!(a, b);
        assert_eq!(
            HashSet::from([a.clone()]).get(&b).map(Dn::as_str),
            Some(a.as_str())
        );
        assert_ne!(a, Dn::new("uid=joe,ou=people,dc=example,dc=org"));
        assert!(a.is_under("ou=people,dc=example,dc=org"));
    }

    #[test]
    fn ids_compare_without_case() {
        let a = EntryId::new("3F2504E0-4F89-11D3-9A0C-0305E82C3301");
        let b = EntryId::new("3f2504e0-4f89-11d3-9a0c-0305e82c3301");
        assert_eq!(a, b);
        assert_eq!(
            HashSet::from([a]).len(),
            HashSet::from([b.clone(), b]).len()
        );
    }

    #[test]
    fn attribute_names_compare_hash_and_order_without_case() {
        let a = AttrName::from("telephoneNumber");
        let b = AttrName::from("TELEPHONENUMBER");
        assert_eq!(a, b);
        assert_eq!(a, "telephonenumber");
        assert_eq!(HashSet::from([a.clone(), b.clone()]).len(), 1);
        let map = std::collections::BTreeMap::from([(a, 1), (b, 2)]);
        assert_eq!(map.len(), 1, "one attribute, however it is spelled");
        // bytewise "mail" > "SN"; as the directory orders them, mail comes first
        let (mail, sn) = (AttrName::from("mail"), AttrName::from("SN"));
        assert!(mail < sn);
        assert_eq!(AttrName::from("Mail").as_str(), "Mail", "kept as spelled");
    }

    proptest::proptest! {
        #[test]
        fn attribute_names_order_as_their_lowercase_does(a in "[a-cA-C]{0,5}", b in "[a-cA-C]{0,5}") {
            let folded = |s: &str| s.to_ascii_lowercase().into_bytes();
            proptest::prop_assert_eq!(
                AttrName::from(a.as_str()).cmp(&AttrName::from(b.as_str())),
                folded(&a).cmp(&folded(&b))
            );
        }
    }
}
