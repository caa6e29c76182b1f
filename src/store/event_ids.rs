//! The set of ingested event ids, for dedup (SPEC 1: first one wins).
//!
//! Ids are kept as 128-bit XXH3 hashes, not as strings: 16 bytes an event
//! whatever the id's length. Two distinct ids collide with probability about
//! n²/2¹²⁹ (≈ 10⁻²⁵ for 10⁸ events), far below any hardware error rate.
//! The set is split into independently locked shards so that ingest threads
//! rarely wait for each other.
//!
//! Each id also records its **owner**: the key hash of the conversation its
//! first occurrence belonged to, so that retention (`Store::retain`) can
//! drop the ids of the conversations it drops. That costs 8 bytes an event
//! (an entry is 24 bytes instead of 16).

use std::collections::HashSet;
use std::sync::Mutex;

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;

/// Number of independently locked shards (a power of two).
pub(crate) const SHARDS: usize = 64;

/// One id of the set: its hash (as two halves, so that the entry is 24
/// bytes rather than the 32 a 16-byte-aligned `u128` would take) and the
/// key hash of the conversation that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdEntry {
    pub hash: [u64; 2],
    pub owner: u64,
}

impl IdEntry {
    #[inline]
    pub fn new(hash: u128, owner: u64) -> Self {
        Self {
            hash: [hash as u64, (hash >> 64) as u64],
            owner,
        }
    }

    #[inline]
    pub fn hash(&self) -> u128 {
        u128::from(self.hash[0]) | (u128::from(self.hash[1]) << 64)
    }
}

/// A concurrent set of event-id hashes.
#[derive(Debug)]
pub(crate) struct EventIdSet {
    shards: Box<[Mutex<HashTable<IdEntry>>]>,
}

impl Default for EventIdSet {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashTable::new())).collect(),
        }
    }
}

/// Candidate rows from which [`EventIdSet::insert_all`] works from two
/// threads.
const PARALLEL_INSERT_ROWS: usize = 8_192;

/// The hash an event id is known by.
#[inline]
pub(crate) fn event_id_hash(id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
}

/// The shard of an id hash.
#[inline]
pub(crate) fn shard_of(hash: u128) -> usize {
    (hash >> (128 - SHARDS.trailing_zeros())) as usize
}

impl EventIdSet {
    /// Inserts the hashes of the rows where `candidate` is true, each owned
    /// by the conversation `owners[row]`; returns, per row, whether it was
    /// new (`false` for duplicates and for rows that were not candidates).
    pub fn insert_all(
        &self,
        hashes: &[u128],
        owners: &[u64],
        candidate: impl Fn(usize) -> bool,
    ) -> Vec<bool> {
        let mut fresh = vec![false; hashes.len()];
        let mut by_shard: Vec<Vec<u32>> = vec![Vec::new(); SHARDS];
        let mut candidates = 0;
        for (row, &hash) in hashes.iter().enumerate() {
            if candidate(row) {
                by_shard[shard_of(hash)].push(row as u32);
                candidates += 1;
            }
        }
        // The new rows of a range of shards.
        let insert = |shards: std::ops::Range<usize>| -> Vec<u32> {
            let mut new_rows = Vec::new();
            for (shard, rows) in self.shards[shards.clone()].iter().zip(&by_shard[shards]) {
                if rows.is_empty() {
                    continue;
                }
                let mut set = lock(shard);
                set.reserve(rows.len(), |e| e.hash[0]);
                for &row in rows {
                    let entry = IdEntry::new(hashes[row as usize], owners[row as usize]);
                    if let Entry::Vacant(slot) =
                        set.entry(entry.hash[0], |e| e.hash == entry.hash, |e| e.hash[0])
                    {
                        slot.insert(entry);
                        new_rows.push(row);
                    }
                }
            }
            new_rows
        };
        // A large call probes a large set: one cache miss a row, which two
        // threads overlap. A scoped thread rather than rayon: a durable
        // engine calls this under the log's lock, and a rayon worker
        // waiting here could pick up another ingest call needing it.
        let new_rows = if candidates >= PARALLEL_INSERT_ROWS {
            std::thread::scope(|scope| {
                let upper = scope.spawn(|| insert(SHARDS / 2..SHARDS));
                let mut lower = insert(0..SHARDS / 2);
                let upper = upper
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                lower.extend(upper);
                lower
            })
        } else {
            insert(0..SHARDS)
        };
        for row in new_rows {
            fresh[row as usize] = true;
        }
        fresh
    }

    /// Removes the ids owned by a conversation in `owners`; returns how
    /// many were removed. Tables shrink to what they keep.
    pub fn remove_owned_by(&self, owners: &HashSet<u64>) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut set = lock(shard);
            let before = set.len();
            set.retain(|e| !owners.contains(&e.owner));
            removed += before - set.len();
            set.shrink_to_fit(|e| e.hash[0]);
        }
        removed
    }

    /// Removes the ids `hashes` (those present; a rare path: a durable
    /// call's claims taken back, see `Store::unclaim`).
    pub fn remove(&self, hashes: impl Iterator<Item = u128>) {
        for hash in hashes {
            let entry = IdEntry::new(hash, 0);
            let mut set = lock(&self.shards[shard_of(hash)]);
            if let Ok(found) = set.find_entry(entry.hash[0], |e| e.hash == entry.hash) {
                found.remove();
            }
        }
    }

    /// `f` of shard `i` (of [`SHARDS`]), the shard locked meanwhile.
    pub fn with_shard<R>(&self, i: usize, f: impl FnOnce(&HashTable<IdEntry>) -> R) -> R {
        f(&lock(&self.shards[i]))
    }

    /// Replaces shard `i` with `table` (whose entries must all belong to
    /// it and be distinct: a checkpoint wrote them from a set).
    pub fn replace_shard(&self, i: usize, table: HashTable<IdEntry>) {
        *lock(&self.shards[i]) = table;
    }

    /// Number of ids held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Bytes of heap memory in use.
    pub fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| lock(s).capacity() * (std::mem::size_of::<IdEntry>() + 1))
            .sum()
    }
}

fn lock(shard: &Mutex<HashTable<IdEntry>>) -> std::sync::MutexGuard<'_, HashTable<IdEntry>> {
    shard.lock().unwrap_or_else(|poison| poison.into_inner())
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
        let owners = [1, 2, 3, 4];
        assert_eq!(
            set.insert_all(&ids, &owners, |_| true),
            [true, true, false, true]
        );
        let again: Vec<u128> = ["c", "d"].iter().map(|s| event_id_hash(s)).collect();
        assert_eq!(set.insert_all(&again, &[5, 6], |_| true), [false, true]);
        assert_eq!(
            set.insert_all(&again, &[5, 6], |row| row == 0),
            [false, false]
        );
        assert_eq!(set.len(), 4);
    }

    /// A call large enough to insert from two threads decides exactly what
    /// the same rows decide in small calls from one thread, duplicates
    /// within the call included.
    #[test]
    fn two_threads_decide_as_one() {
        let ids: Vec<u128> = (0..3 * PARALLEL_INSERT_ROWS)
            .map(|i| event_id_hash(&format!("e{}", i % (2 * PARALLEL_INSERT_ROWS))))
            .collect();
        let owners: Vec<u64> = (0..ids.len() as u64).collect();
        let candidate = |row: usize| row % 7 != 0;
        let (one, two) = (EventIdSet::default(), EventIdSet::default());
        let mut serial = Vec::new();
        for start in (0..ids.len()).step_by(1000) {
            let end = (start + 1000).min(ids.len());
            serial.extend(one.insert_all(&ids[start..end], &owners[start..end], |r| {
                candidate(start + r)
            }));
        }
        let parallel = two.insert_all(&ids, &owners, candidate);
        assert_eq!(serial, parallel);
        let entries = |set: &EventIdSet| {
            let mut all = Vec::new();
            for i in 0..SHARDS {
                set.with_shard(i, |t| all.extend(t.iter().map(|e| (e.hash, e.owner))));
            }
            all.sort_unstable();
            all
        };
        assert_eq!(entries(&one), entries(&two));
    }

    #[test]
    fn ids_go_with_their_owner() {
        let set = EventIdSet::default();
        let ids: Vec<u128> = (0..300).map(|i| event_id_hash(&format!("e{i}"))).collect();
        let owners: Vec<u64> = (0..300).map(|i| i % 3).collect();
        set.insert_all(&ids, &owners, |_| true);
        assert_eq!(set.remove_owned_by(&HashSet::from([1])), 100);
        assert_eq!(set.len(), 200);
        // Ids of the dropped owner are new again; the others are not.
        let fresh = set.insert_all(&ids[..3], &owners[..3], |_| true);
        assert_eq!(fresh, [false, true, false]);
    }
}
