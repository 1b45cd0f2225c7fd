//! A map bounded by the bytes its entries hold, not by their number.
//!
//! Certificates differ in size by ten times (one name and an ECDSA key, or a hundred names, an
//! RSA-4096 key and a long chain), so a cap on the count bounds nothing an operator can plan
//! memory with. [`SizedCache`] keeps a running total of what its entries weigh (what the caller
//! says their heap data takes, plus the map's own slot) and, when a new entry would take it past
//! the budget, drops others first. The victims are arbitrary (the first the map's iterator
//! yields, which the hasher's random seed scatters): every user of this cache can rebuild an
//! entry from the store, and a random policy needs no bookkeeping on the read path, where the
//! fetch spends its microseconds under a read lock.

use std::collections::HashMap;
use std::hash::Hash;

/// Entries of type `V` by `K`, weighing at most `budget` bytes together.
#[derive(Debug)]
pub struct SizedCache<K, V> {
    entries: HashMap<K, (V, usize), foldhash::fast::RandomState>,
    bytes: usize,
    budget: usize,
}

impl<K: Eq + Hash + Clone, V> SizedCache<K, V> {
    /// An empty cache holding at most `budget` bytes; `0` keeps nothing.
    pub fn new(budget: usize) -> Self {
        Self {
            entries: HashMap::default(),
            bytes: 0,
            budget,
        }
    }

    /// The entry for `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// Keeps `value` for `key` in place of what it held, `heap` being the bytes the entry's key
    /// and value hold outside the map. Other entries are dropped until the total fits. An entry
    /// heavier than the whole budget is not kept (nor is what `key` held before).
    pub fn insert(&mut self, key: K, value: V, heap: usize) {
        self.remove(&key);
        let weight = heap.saturating_add(Self::SLOT);
        if weight > self.budget {
            return;
        }
        while self.bytes + weight > self.budget {
            let Some(victim) = self.entries.keys().next().cloned() else {
                break;
            };
            self.remove(&victim);
        }
        self.bytes += weight;
        self.entries.insert(key, (value, weight));
    }

    /// Like [`SizedCache::insert`], but only when `key` already has an entry: a value that is
    /// newer but not asked for yet takes no room from those that are. Returns whether it did.
    pub fn replace(&mut self, key: K, value: V, heap: usize) -> bool {
        let present = self.entries.contains_key(&key);
        if present {
            self.insert(key, value, heap);
        }
        present
    }

    /// Drops the entry for `key`, returning it.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (value, weight) = self.entries.remove(key)?;
        self.bytes -= weight;
        Some(value)
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What its entries weigh together, in bytes; never more than the budget.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// What one entry costs in the map itself: its key, value and weight, and the table's
    /// control byte.
    const SLOT: usize = size_of::<K>() + size_of::<V>() + size_of::<usize>() + 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    type Cache = SizedCache<u32, String>;

    fn slot() -> usize {
        Cache::SLOT
    }

    #[test]
    fn keeps_entries_within_the_budget_dropping_others() {
        let mut cache = Cache::new(10 * (100 + slot()));
        for i in 0..10 {
            cache.insert(i, format!("v{i}"), 100);
        }
        assert_eq!(cache.len(), 10);
        assert_eq!(cache.bytes(), 10 * (100 + slot()));
        // One more of the same weight: exactly one other goes.
        cache.insert(10, "v10".to_owned(), 100);
        assert_eq!(cache.len(), 10);
        assert_eq!(cache.get(&10).map(String::as_str), Some("v10"));
        // One three times as heavy: three go, and the total never passes the budget.
        cache.insert(11, "v11".to_owned(), 3 * 100 + 2 * slot());
        assert_eq!(cache.len(), 8);
        assert!(cache.bytes() <= 10 * (100 + slot()));
        assert_eq!(cache.get(&11).map(String::as_str), Some("v11"));
    }

    #[test]
    fn replacing_an_entry_reweighs_it() {
        let mut cache = Cache::new(1000);
        cache.insert(1, "small".to_owned(), 10);
        cache.insert(1, "large".to_owned(), 500);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.bytes(), 500 + slot());
        assert_eq!(cache.remove(&1).as_deref(), Some("large"));
        assert_eq!((cache.len(), cache.bytes()), (0, 0));
        assert!(cache.is_empty());
    }

    #[test]
    fn an_entry_over_the_whole_budget_is_not_kept_and_drops_the_stale_one() {
        let mut cache = Cache::new(1000);
        cache.insert(1, "old".to_owned(), 10);
        cache.insert(2, "other".to_owned(), 10);
        cache.insert(1, "huge".to_owned(), 5000);
        assert_eq!(
            cache.get(&1),
            None,
            "neither the huge value nor the stale one"
        );
        assert_eq!(cache.get(&2).map(String::as_str), Some("other"));
        assert_eq!(cache.bytes(), 10 + slot());

        let mut none = Cache::new(0);
        none.insert(1, "x".to_owned(), 0);
        assert!(none.is_empty(), "a budget of 0 keeps nothing");
    }

    #[test]
    fn replace_only_updates_what_is_there() {
        let mut cache = Cache::new(1000);
        assert!(!cache.replace(1, "new".to_owned(), 10));
        assert!(cache.is_empty());
        cache.insert(1, "old".to_owned(), 10);
        assert!(cache.replace(1, "new".to_owned(), 20));
        assert_eq!(cache.get(&1).map(String::as_str), Some("new"));
        assert_eq!(cache.bytes(), 20 + slot());
    }
}
