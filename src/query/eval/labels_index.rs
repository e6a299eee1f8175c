//! Label sets looked up at every step without hashing them every time.
//!
//! Which question it answers: "have I seen this label set, and what did I make of it?" The
//! same series flow through every step, mostly as the same `Arc<Labels>`: a leaf shares its
//! series' labels between steps, and relabelling nodes hand out the label sets they made
//! before. So lookups go by the `Arc`'s address first and by value (a hash of every name and
//! value) only for an address not seen yet. An index keeps every `Arc` it knows by address
//! alive, so that no other label set can take that address while the entry exists. Entries by
//! address are bounded; beyond the bound lookups fall back to values, which is only slower.

use std::collections::HashMap;
use std::sync::Arc;

use ahash::RandomState;

use crate::model::Labels;

/// Address entries kept beyond the distinct values, for label sets that arrive under new
/// `Arc`s (an operator that builds new labels at every step).
const ADDRESS_ENTRIES_SLACK: usize = 65_536;

fn address(labels: &Arc<Labels>) -> usize {
    Arc::as_ptr(labels) as usize
}

/// A map from label sets to `V`, by address first, by value otherwise.
pub(crate) struct LabelsIndex<V> {
    by_address: HashMap<usize, (Arc<Labels>, V), RandomState>,
    by_value: HashMap<Arc<Labels>, V, RandomState>,
}

impl<V> Default for LabelsIndex<V> {
    fn default() -> Self {
        LabelsIndex {
            by_address: HashMap::default(),
            by_value: HashMap::default(),
        }
    }
}

impl<V: Clone> LabelsIndex<V> {
    pub fn get(&mut self, labels: &Arc<Labels>) -> Option<V> {
        if let Some((_, v)) = self.by_address.get(&address(labels)) {
            return Some(v.clone());
        }
        let v = self.by_value.get(labels)?.clone();
        self.remember_address(labels, v.clone());
        Some(v)
    }

    pub fn insert(&mut self, labels: Arc<Labels>, value: V) {
        self.remember_address(&labels, value.clone());
        self.by_value.insert(labels, value);
    }

    /// The number of distinct label sets.
    pub fn len(&self) -> usize {
        self.by_value.len()
    }

    fn remember_address(&mut self, labels: &Arc<Labels>, value: V) {
        if self.by_address.len() < self.by_value.len() + ADDRESS_ENTRIES_SLACK {
            self.by_address
                .insert(address(labels), (Arc::clone(labels), value));
        }
    }
}

/// Distinct label sets a relabelling node keeps across steps: what it made of each input,
/// with equal outputs shared as one `Arc`.
#[derive(Default)]
pub(crate) struct LabelsCache {
    made: LabelsIndex<Arc<Labels>>,
    outputs: LabelsIndex<Arc<Labels>>,
}

/// A cache stops learning new inputs beyond this many (it then recomputes them).
const LABELS_CACHE_ENTRIES_MAX: usize = 100_000;

impl LabelsCache {
    pub fn get_or_insert(
        &mut self,
        input: &Arc<Labels>,
        make: impl FnOnce(&Labels) -> Labels,
    ) -> Arc<Labels> {
        if let Some(out) = self.made.get(input) {
            return out;
        }
        let made = Arc::new(make(input));
        let out = match self.outputs.get(&made) {
            Some(shared) => shared,
            None => {
                if self.outputs.len() < LABELS_CACHE_ENTRIES_MAX {
                    self.outputs.insert(Arc::clone(&made), Arc::clone(&made));
                }
                made
            }
        };
        if self.made.len() < LABELS_CACHE_ENTRIES_MAX {
            self.made.insert(Arc::clone(input), Arc::clone(&out));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_under_other_addresses_are_found() {
        let mut index = LabelsIndex::default();
        let a = Arc::new(Labels::from_pairs([("a", "1")]));
        index.insert(Arc::clone(&a), 7);
        assert_eq!(index.get(&a), Some(7));
        let same = Arc::new(Labels::from_pairs([("a", "1")]));
        assert_eq!(index.get(&same), Some(7));
        assert_eq!(index.get(&Arc::new(Labels::from_pairs([("a", "2")]))), None);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn caches_share_equal_outputs() {
        let mut cache = LabelsCache::default();
        let x = Arc::new(Labels::from_pairs([("a", "1"), ("b", "1")]));
        let y = Arc::new(Labels::from_pairs([("a", "1"), ("b", "2")]));
        let keep_a =
            |l: &Labels| Labels::from_pairs(l.pairs().iter().filter(|p| p.0 == "a").cloned());
        let gx = cache.get_or_insert(&x, keep_a);
        let gy = cache.get_or_insert(&y, keep_a);
        assert!(Arc::ptr_eq(&gx, &gy));
        let again = cache.get_or_insert(&x, |_| unreachable!("cached"));
        assert!(Arc::ptr_eq(&gx, &again));
    }
}
