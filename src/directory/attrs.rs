//! An entry's attributes, kept flat: every name and value is a span of one text buffer.
//!
//! A search entry used to become a hash map of `String` names to vectors of `String`
//! values: a dozen attributes cost some thirty allocations to build and as many frees to
//! drop, a tenth of a GET's instructions (callgrind). Here an entry is three allocations
//! whatever its size: the text, the attributes and the value spans. Entries are small (tens of
//! names), so a name is found by a scan that compares lengths first. Changes (AD's ranged
//! `member`, the dry run's overlay) are rare: they append text and move the spans of the one
//! attribute they touch, and the old text stays unused until the map is dropped.

use std::fmt;

/// A part of the text buffer: `start..start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

/// One attribute: its lowercase name and where its values' spans are.
#[derive(Debug, Clone, Copy)]
struct Attr {
    name: Span,
    first: u32,
    count: u32,
}

/// Where an attribute being read starts (`AttrMap::mark`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    text: usize,
    spans: usize,
}

/// An entry's attribute values keyed by lowercased attribute name.
#[derive(Clone, Default)]
pub struct AttrMap {
    text: String,
    attrs: Vec<Attr>,
    spans: Vec<Span>,
    /// A bit per name ever added (`name_bit`): most names a mapping looks up are absent from
    /// an entry, and the bit says so without a scan. A removed name's bit stays set.
    names_seen: u64,
}

/// A name's bit in `AttrMap::names_seen`, from its length and its last byte.
fn name_bit(name: &str) -> u64 {
    let last = u64::from(name.as_bytes().last().copied().unwrap_or(0));
    let key = (name.len() as u64) << 8 | last;
    1 << (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
}

/// Past this much text, a span's offsets would not fit their `u32`: `RawEntry` refuses an
/// entry whose contents are longer (the text kept is never longer than the contents).
pub(crate) const MAX_TEXT: usize = u32::MAX as usize;

impl AttrMap {
    /// Room for `names` attributes, `values` values and `text` bytes of both.
    pub fn with_capacity(names: usize, values: usize, text: usize) -> AttrMap {
        AttrMap {
            text: String::with_capacity(text),
            attrs: Vec::with_capacity(names),
            spans: Vec::with_capacity(values),
            names_seen: 0,
        }
    }

    /// The number of attribute names.
    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    /// The values of `key`, a lowercase name.
    pub fn get(&self, key: &str) -> Option<Values<'_>> {
        self.position(key).and_then(|i| self.values_at(i))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// The lowercase names, in no promised order (a changed name may move).
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.attrs.iter().map(|a| self.str_of(a.name))
    }

    /// Every name with its values, in no promised order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Values<'_>)> + '_ {
        self.attrs.iter().map(|a| {
            let spans = self.spans_of(a);
            (self.str_of(a.name), Values::new(&self.text, spans))
        })
    }

    /// Sets `name`'s values (lowercase), replacing any it had.
    pub fn insert<S: AsRef<str>>(&mut self, name: &str, values: impl IntoIterator<Item = S>) {
        self.remove_attr(name);
        self.push(name, values);
    }

    /// Adds `values` to `name`'s (lowercase), after any it had.
    pub fn extend<S: AsRef<str>>(&mut self, name: &str, values: impl IntoIterator<Item = S>) {
        match self.position(name) {
            Some(i) if self.ends_spans(i) => {
                // its spans are the last ones: the new values go right after them
                let added = self.push_values(values);
                if let Some(a) = self.attrs.get_mut(i) {
                    a.count += added;
                }
            }
            Some(i) => {
                let mark = self.mark();
                self.push_values(values);
                self.merge_since(i, mark);
            }
            None => self.push(name, values),
        }
    }

    /// Removes `name` (lowercase) and hands back its values.
    pub fn remove(&mut self, name: &str) -> Option<Vec<String>> {
        let values = self.get(name).map(|v| v.to_vec());
        self.remove_attr(name);
        values
    }

    /// Appends a new attribute (the caller knows `name` is not there yet).
    pub fn push<S: AsRef<str>>(&mut self, name: &str, values: impl IntoIterator<Item = S>) {
        let name = self.push_text(name);
        let first = to_u32(self.spans.len());
        let count = self.push_values(values);
        self.add_attr(Attr { name, first, count });
    }

    /// Where the next attribute read from a directory's answer starts: its values are
    /// pushed one by one (`push_value`), then kept under a name (`commit`) or dropped
    /// (`rollback`) when one turns out not to be text.
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            text: self.text.len(),
            spans: self.spans.len(),
        }
    }

    pub(crate) fn push_value(&mut self, value: &str) {
        let span = self.push_text(value);
        self.spans.push(span);
    }

    /// Keeps the values pushed since `mark` under `name`, lowercased; a name sent twice (in
    /// two spellings) keeps the values of both, the first ones first.
    pub(crate) fn commit(&mut self, name: &str, mark: Mark) {
        let start = self.text.len();
        let name = self.push_text(name);
        if let Some(written) = self.text.get_mut(start..) {
            written.make_ascii_lowercase();
        }
        match self.position(self.str_of(name)) {
            Some(i) => self.merge_since(i, mark),
            None => {
                let first = mark.spans.min(self.spans.len());
                self.add_attr(Attr {
                    name,
                    first: to_u32(first),
                    count: to_u32(self.spans.len() - first),
                });
            }
        }
    }

    fn add_attr(&mut self, attr: Attr) {
        self.names_seen |= name_bit(self.str_of(attr.name));
        self.attrs.push(attr);
    }

    /// Moves attribute `i` to the end, with the values pushed since `mark` after its own.
    fn merge_since(&mut self, i: usize, mark: Mark) {
        let old = self.attrs.remove(i);
        let new: Vec<Span> = self
            .spans
            .drain(mark.spans.min(self.spans.len())..)
            .collect();
        let first = self.spans.len();
        self.spans
            .extend_from_within(span_range(old.first, old.count));
        self.spans.extend(new);
        self.attrs.push(Attr {
            name: old.name,
            first: to_u32(first),
            count: to_u32(self.spans.len() - first),
        });
    }

    /// Drops the values pushed since `mark`.
    pub(crate) fn rollback(&mut self, mark: Mark) {
        self.text.truncate(mark.text);
        self.spans.truncate(mark.spans);
    }

    fn position(&self, key: &str) -> Option<usize> {
        if self.names_seen & name_bit(key) == 0 {
            return None;
        }
        self.attrs
            .iter()
            .position(|a| a.name.len as usize == key.len() && self.str_of(a.name) == key)
    }

    /// Whether attribute `i`'s spans are the last of `spans` (a removed attribute's spans
    /// may follow them).
    fn ends_spans(&self, i: usize) -> bool {
        self.attrs
            .get(i)
            .is_some_and(|a| (a.first + a.count) as usize == self.spans.len())
    }

    fn remove_attr(&mut self, name: &str) {
        if let Some(i) = self.position(name) {
            self.attrs.remove(i);
        }
    }

    fn values_at(&self, i: usize) -> Option<Values<'_>> {
        let a = self.attrs.get(i)?;
        Some(Values::new(&self.text, self.spans_of(a)))
    }

    fn spans_of(&self, a: &Attr) -> &[Span] {
        self.spans
            .get(span_range(a.first, a.count))
            .unwrap_or_default()
    }

    fn str_of(&self, s: Span) -> &str {
        str_at(&self.text, s)
    }

    /// Text past `MAX_TEXT` is not kept (an empty span): `RawEntry` refuses an entry that
    /// large before it gets here, and nothing else comes near it.
    fn push_text(&mut self, s: &str) -> Span {
        let start = self.text.len();
        if start.saturating_add(s.len()) > MAX_TEXT {
            return Span { start: 0, len: 0 };
        }
        self.text.push_str(s);
        Span {
            start: to_u32(start),
            len: to_u32(s.len()),
        }
    }

    fn push_values<S: AsRef<str>>(&mut self, values: impl IntoIterator<Item = S>) -> u32 {
        let mut count = 0;
        for v in values {
            self.push_value(v.as_ref());
            count += 1;
        }
        count
    }
}

fn span_range(first: u32, count: u32) -> std::ops::Range<usize> {
    first as usize..first as usize + count as usize
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn str_at(text: &str, s: Span) -> &str {
    text.get(s.start as usize..s.start as usize + s.len as usize)
        .unwrap_or_default()
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, Vec<V>)> for AttrMap {
    fn from_iter<I: IntoIterator<Item = (N, Vec<V>)>>(iter: I) -> AttrMap {
        let mut map = AttrMap::default();
        for (name, values) in iter {
            map.extend(name.as_ref(), values);
        }
        map
    }
}

/// Equal when both hold the same names with the same values in the same order, whatever
/// order the names came in (a hash map's equality, which this type replaced).
impl PartialEq for AttrMap {
    fn eq(&self, other: &AttrMap) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(name, values)| other.get(name).is_some_and(|o| o == values))
    }
}

impl Eq for AttrMap {}

impl fmt::Debug for AttrMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// One attribute's values, borrowed from its map.
#[derive(Clone, Copy)]
pub struct Values<'a> {
    text: &'a str,
    spans: &'a [Span],
}

impl<'a> Values<'a> {
    fn new(text: &'a str, spans: &'a [Span]) -> Values<'a> {
        Values { text, spans }
    }

    /// No values (an attribute that is absent reads as this).
    pub const fn none() -> Values<'static> {
        Values {
            text: "",
            spans: &[],
        }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn first(&self) -> Option<&'a str> {
        self.get(0)
    }

    pub fn get(&self, i: usize) -> Option<&'a str> {
        self.spans.get(i).map(|s| str_at(self.text, *s))
    }

    pub fn iter(&self) -> ValuesIter<'a> {
        ValuesIter {
            text: self.text,
            spans: self.spans.iter(),
        }
    }

    pub fn contains(&self, value: &str) -> bool {
        self.iter().any(|v| v == value)
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }
}

impl<'a> IntoIterator for Values<'a> {
    type Item = &'a str;
    type IntoIter = ValuesIter<'a>;

    fn into_iter(self) -> ValuesIter<'a> {
        self.iter()
    }
}

/// The values of one attribute, in order.
#[derive(Clone)]
pub struct ValuesIter<'a> {
    text: &'a str,
    spans: std::slice::Iter<'a, Span>,
}

impl<'a> Iterator for ValuesIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.spans.next().map(|s| str_at(self.text, *s))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl DoubleEndedIterator for ValuesIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.spans.next_back().map(|s| str_at(self.text, *s))
    }
}

impl ExactSizeIterator for ValuesIter<'_> {}

impl PartialEq for Values<'_> {
    fn eq(&self, other: &Values<'_>) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<S: AsRef<str>> PartialEq<[S]> for Values<'_> {
    fn eq(&self, other: &[S]) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter().map(AsRef::as_ref))
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for Values<'_> {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == *other.as_slice()
    }
}

impl fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// What the map is meant to be: each name with its values (names in no order).
    type Model = Vec<(String, Vec<String>)>;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(String, Vec<String>),
        Extend(String, Vec<String>),
        Remove(String),
        /// Values read from an answer, kept under the name or (false) dropped.
        Read(String, Vec<String>, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        // few names, so that most operations meet a name already there
        let name = "[a-cA-C]{1,2}";
        let values = proptest::collection::vec("[a-zé]{0,3}", 0..4);
        prop_oneof![
            (name, values.clone()).prop_map(|(n, v)| Op::Insert(n.to_lowercase(), v)),
            (name, values.clone()).prop_map(|(n, v)| Op::Extend(n.to_lowercase(), v)),
            name.prop_map(|n| Op::Remove(n.to_lowercase())),
            (name, values, any::<bool>()).prop_map(|(n, v, keep)| Op::Read(n, v, keep)),
        ]
    }

    /// Moves `name` to the end of the model with `values` after what it had (`keep`) or
    /// instead of it.
    fn model_set(model: &mut Model, name: &str, values: &[String], keep: bool) {
        let mut had = match model.iter().position(|(n, _)| n == name) {
            Some(i) => model.remove(i).1,
            None => Vec::new(),
        };
        if !keep {
            had.clear();
        }
        had.extend(values.iter().cloned());
        model.push((name.to_owned(), had));
    }

    fn apply(map: &mut AttrMap, model: &mut Model, op: &Op) {
        match op {
            Op::Insert(n, v) => {
                map.insert(n, v);
                model_set(model, n, v, false);
            }
            Op::Extend(n, v) => {
                map.extend(n, v);
                model_set(model, n, v, true);
            }
            Op::Remove(n) => {
                let had = model
                    .iter()
                    .position(|(m, _)| m == n)
                    .map(|i| model.remove(i).1);
                assert_eq!(map.remove(n), had);
            }
            Op::Read(n, v, keep) => {
                let mark = map.mark();
                for x in v {
                    map.push_value(x);
                }
                if *keep {
                    map.commit(n, mark);
                    model_set(model, &n.to_ascii_lowercase(), v, true);
                } else {
                    map.rollback(mark);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn the_map_holds_what_its_operations_say(ops in proptest::collection::vec(op(), 0..24)) {
            let mut map = AttrMap::default();
            let mut model = Model::new();
            for op in &ops {
                apply(&mut map, &mut model, op);
                let mut seen: Model = map.iter().map(|(n, v)| (n.to_owned(), v.to_vec())).collect();
                seen.sort();
                let mut want = model.clone();
                want.sort();
                prop_assert_eq!(&seen, &want, "after {:?}", op);
                prop_assert_eq!(map.keys().count(), model.len());
            }
            for (name, values) in &model {
                prop_assert_eq!(map.get(name).unwrap(), values.clone());
                prop_assert!(map.contains_key(name));
            }
            prop_assert_eq!(map.len(), model.len());
            let rebuilt: AttrMap = model.iter().rev().cloned().collect();
            prop_assert_eq!(&rebuilt, &map, "equality ignores the names' order");
        }
    }

    #[test]
    fn an_absent_name_has_no_values() {
        let map: AttrMap = [("cn", vec!["Ann"])].into_iter().collect();
        assert!(map.get("sn").is_none());
        assert!(Values::none().is_empty());
        assert_eq!(Values::none().first(), None);
    }

    #[test]
    fn values_iterate_from_both_ends_and_compare_with_lists() {
        let map: AttrMap = [("member", vec!["a", "b", "c"])].into_iter().collect();
        let v = map.get("member").unwrap();
        assert_eq!(v.iter().rev().collect::<Vec<_>>(), ["c", "b", "a"]);
        assert_eq!(v.iter().len(), 3);
        assert_eq!(v.get(1), Some("b"));
        assert!(v.contains("c") && !v.contains("d"));
        assert_eq!(v, vec!["a", "b", "c"]);
        assert_ne!(v, vec!["a", "b"]);
        assert_eq!(format!("{map:?}"), r#"{"member": ["a", "b", "c"]}"#);
    }

    #[test]
    fn maps_with_other_values_differ() {
        let a: AttrMap = [("cn", vec!["Ann"]), ("sn", vec!["Lee"])]
            .into_iter()
            .collect();
        let b: AttrMap = [("cn", vec!["Ann"]), ("sn", vec!["Li"])]
            .into_iter()
            .collect();
        let c: AttrMap = [("cn", vec!["Ann"])].into_iter().collect();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(c, a);
    }
}
