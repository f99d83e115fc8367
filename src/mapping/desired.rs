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
        // `to_ldap` gives them in name order already (`Mapping::ldap_order`): checked, not
        // sorted again. Stable: a name's pairs stay in the order given.
        if !pairs.is_sorted_by(|a, b| a.0 <= b.0) {
            pairs.sort_by(|a, b| a.0.cmp(b.0));
        }
        // of a run of one name, the last pair is kept (moved into the run's first slot)
        pairs.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        DesiredAttrs(pairs)
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
    use crate::directory::Change;
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

    #[test]
    fn ldap_order_lists_every_mapped_attribute_once_in_name_order() {
        let m = crate::mapping::tests::example();
        let names: Vec<&AttrName> = m
            .ldap_order
            .iter()
            .filter_map(|&i| m.attrs.get(i))
            .map(|a| &a.ldap)
            .collect();
        assert_eq!(names.len(), m.attrs.len());
        assert!(names.is_sorted());
        let mut seen = m.ldap_order.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..m.attrs.len()).collect::<Vec<_>>());
    }

    #[test]
    fn changes_pair_old_and_new_by_name_whatever_names_only_one_side_has() {
        let m = crate::mapping::tests::example();
        let e = crate::mapping::tests::entry(&[("cn", &["x"]), ("mail", &["a"]), ("sn", &["s"])]);
        let names: Vec<AttrName> = [
            "cn",
            "employeeNumber",
            "mail",
            "sn",
            "description",
            "Mail",
            "title",
        ]
        .into_iter()
        .map(AttrName::from)
        .collect();
        let map = |pairs: &[(&str, &str)]| -> crate::mapping::DesiredAttrs<'_> {
            pairs
                .iter()
                .filter_map(|(k, v)| {
                    let name = names.iter().find(|n| n.as_str() == *k)?;
                    Some((name, Desired::Set((*v).into())))
                })
                .collect()
        };
        let old = map(&[
            ("cn", "x"),
            ("employeeNumber", "7"),
            ("mail", "a"),
            ("sn", "s"),
        ]);
        let new = map(&[
            ("cn", "x"),
            ("description", "d"),
            ("Mail", "b"),
            ("sn", "s"),
            ("title", "t"),
        ]);
        let touched: Vec<String> = m
            .changes(&e, &old, &new)
            .iter()
            .map(|c| match c {
                Change::Replace(a, _) | Change::Add(a, _) | Change::Delete(a, _) => {
                    a.key().to_owned()
                }
            })
            .collect();
        assert_eq!(touched, ["description", "mail", "title"]);
    }
}
