//! The set of ingested event ids, for dedup (SPEC 1: first one wins).
//!
//! Ids are kept as 128-bit XXH3 hashes, not as strings: 16 bytes an event
//! whatever the id's length. Two distinct ids collide with probability about
//! n²/2¹²⁹ (≈ 10⁻²⁵ for 10⁸ events), far below any hardware error rate.
//! The set is split into independently locked shards so that ingest threads
//! rarely wait for each other.

use std::sync::Mutex;

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;

/// Number of independently locked shards (a power of two).
const SHARDS: usize = 64;

/// A concurrent set of event-id hashes.
#[derive(Debug)]
pub(crate) struct EventIdSet {
    shards: Box<[Mutex<HashTable<u128>>]>,
}

impl Default for EventIdSet {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashTable::new())).collect(),
        }
    }
}

/// The hash an event id is known by.
#[inline]
pub(crate) fn event_id_hash(id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
}

#[inline]
fn shard_of(hash: u128) -> usize {
    (hash >> (128 - SHARDS.trailing_zeros())) as usize
}

impl EventIdSet {
    /// Inserts the hashes of the rows where `candidate` is true; returns,
    /// per row, whether it was new (`false` for duplicates and for rows that
    /// were not candidates).
    pub fn insert_all(&self, hashes: &[u128], candidate: impl Fn(usize) -> bool) -> Vec<bool> {
        let mut fresh = vec![false; hashes.len()];
        let mut by_shard: Vec<Vec<u32>> = vec![Vec::new(); SHARDS];
        for (row, &hash) in hashes.iter().enumerate() {
            if candidate(row) {
                by_shard[shard_of(hash)].push(row as u32);
            }
        }
        for (shard, rows) in self.shards.iter().zip(&by_shard) {
            if rows.is_empty() {
                continue;
            }
            let mut set = shard.lock().unwrap_or_else(|poison| poison.into_inner());
            set.reserve(rows.len(), |&h| h as u64);
            for &row in rows {
                let hash = hashes[row as usize];
                if let Entry::Vacant(slot) = set.entry(hash as u64, |&h| h == hash, |&h| h as u64) {
                    slot.insert(hash);
                    fresh[row as usize] = true;
                }
            }
        }
        fresh
    }

    /// Number of ids held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Bytes of heap memory in use.
    pub fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).capacity() * 17)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_within_and_across_calls_are_found() {
        let set = EventIdSet::default();
        let ids: Vec<u128> = ["a", "b", "a", "c"]
            .iter()
            .map(|s| event_id_hash(s))
            .collect();
        assert_eq!(set.insert_all(&ids, |_| true), [true, true, false, true]);
        let again: Vec<u128> = ["c", "d"].iter().map(|s| event_id_hash(s)).collect();
        assert_eq!(set.insert_all(&again, |_| true), [false, true]);
        assert_eq!(set.insert_all(&again, |row| row == 0), [false, false]);
        assert_eq!(set.len(), 4);
    }
}
