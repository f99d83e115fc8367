//! What a resource says each LDAP attribute should hold (`Mapping::to_ldap`), ordered by name.
//!
//! Built once per resource and walked in order (a write's changes pair an old and a new one
//! side by side), never looked up much: a sorted vector, not a `BTreeMap`, whose forty inserts
//! (node allocations and splits) were 16,000 instructions of a PATCH.

use super::{AttrName, Desired};

/// Desired values by attribute name, each name once, in name order; the names are the
/// mapping's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredAttrs<'m>(Vec<(&'m AttrName, Desired)>);

impl<'m> DesiredAttrs<'m> {
    /// From pairs in any order; of a name given twice, the later pair is kept (as an insert
    /// into a map would).
    pub fn from_unsorted(mut pairs: Vec<(&'m AttrName, Desired)>) -> DesiredAttrs<'m> {
        // stable: a name's pairs stay in the order given, so the last of each run is kept
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        let mut kept: Vec<(&'m AttrName, Desired)> = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match kept.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => kept.push(pair),
            }
        }
        DesiredAttrs(kept)
    }

    /// Adds `pairs`, each replacing the name's pair if it has one.
    pub fn extend(&mut self, pairs: Vec<(&'m AttrName, Desired)>) {
        if pairs.is_empty() {
            return;
        }
        let mut all = std::mem::take(&mut self.0);
        all.extend(pairs);
        *self = DesiredAttrs::from_unsorted(all);
    }

    pub fn get(&self, name: &AttrName) -> Option<&Desired> {
        self.0
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|(_, d)| d)
    }

    /// The pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&'m AttrName, &Desired)> + '_ {
        self.0.iter().map(|(n, d)| (*n, d))
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&AttrName, &Desired) -> bool) {
        self.0.retain(|(n, d)| keep(n, d));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'m> FromIterator<(&'m AttrName, Desired)> for DesiredAttrs<'m> {
    fn from_iter<I: IntoIterator<Item = (&'m AttrName, Desired)>>(iter: I) -> Self {
        DesiredAttrs::from_unsorted(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// The same as inserting the pairs into a `BTreeMap`, in order, whatever the pairs.
        #[test]
        fn pairs_read_as_a_map_they_were_inserted_into_would(
            pairs in proptest::collection::vec(("[a-cA-C]{1,2}", "[a-z]{0,2}"), 0..30)
        ) {
            let names: Vec<AttrName> = pairs.iter().map(|(n, _)| AttrName::from(n.as_str())).collect();
            let given: Vec<(&AttrName, Desired)> = names
                .iter()
                .zip(&pairs)
                .map(|(n, (_, v))| (n, Desired::Set(v.clone())))
                .collect();
            let mut map = BTreeMap::new();
            for (n, d) in given.clone() {
                map.insert(n, d);
            }
            let desired = DesiredAttrs::from_unsorted(given);
            let want: Vec<(&AttrName, &Desired)> = map.iter().map(|(n, d)| (*n, d)).collect();
            let seen: Vec<(&AttrName, &Desired)> = desired.iter().collect();
            prop_assert_eq!(seen.len(), want.len());
            for ((a, x), (b, y)) in seen.iter().zip(&want) {
                prop_assert!(a == b && x == y, "{} {:?} against {} {:?}", a.as_str(), x, b.as_str(), y);
            }
            for n in &names {
                prop_assert_eq!(desired.get(n), map.get(n));
            }
            prop_assert_eq!(desired.len(), map.len());
        }
    }
}
