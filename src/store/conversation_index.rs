//! The index of one conversation shard: from a conversation's key hash to
//! its number in the shard's columns.
//!
//! A fold looks a conversation up for every event it folds in, and on time
//! ordered input the events of the conversations in flight are interleaved,
//! so nearly every lookup lands on a slot far from the previous one and
//! waits for memory. This table is open addressing with linear probing
//! over 24-byte slots that hold enough of the key to decide equality, so a
//! lookup mostly reads one cache line (two when a slot straddles lines),
//! and [`ConversationIndex::prefetch`] lets the fold ask for the slot of a
//! row it will look up a few rows later, so that the wait overlaps the
//! work on the rows in between. A general-purpose table (`hashbrown`) keeps
//! its control bytes apart from its entries (two lines per lookup) and has
//! no way to ask for a slot ahead of time.
//!
//! The table is at most half full, so a probe rarely leaves the home line.

/// A slot's `conversation` when the slot is empty.
const EMPTY: u32 = u32::MAX;

/// The table's length is a power of two of at least this many slots once
/// anything is inserted.
const MIN_SLOTS: usize = 16;

/// How many old slots ahead [`ConversationIndex::grow`] asks for the new
/// home of an entry.
const GROW_PREFETCH_AHEAD: usize = 16;

/// An entry of the index: a conversation's number with enough of its key
/// to tell it apart without leaving the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IndexEntry {
    /// The conversation id packed as an Arrow view packs it (see
    /// `conversation_key`), as two halves.
    pub key: [u64; 2],
    /// The bot's symbol.
    pub bot: u32,
    /// The conversation's number in the shard's columns.
    pub conversation: u32,
}

const EMPTY_ENTRY: IndexEntry = IndexEntry {
    key: [0; 2],
    bot: 0,
    conversation: EMPTY,
};

/// Key hash → conversation number, for one shard (see the module docs).
#[derive(Debug, Default, Clone)]
pub(super) struct ConversationIndex {
    slots: Vec<IndexEntry>,
    len: usize,
}

impl ConversationIndex {
    /// An index with room for `n` conversations before it grows.
    pub fn with_capacity(n: usize) -> Self {
        let mut index = Self::default();
        if n > 0 {
            index.slots = vec![EMPTY_ENTRY; slots_for(n)];
        }
        index
    }

    /// Number of conversations indexed.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes of heap memory the table holds.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<IndexEntry>()
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        // The top bits choose the shard: probe by the low ones.
        hash as usize & (self.slots.len() - 1)
    }

    /// The entry with key hash `hash` for which `eq` holds, if any (the
    /// table keeps no hashes: `eq` must tell entries apart).
    #[inline]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(&IndexEntry) -> bool) -> Option<&IndexEntry> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(hash);
        loop {
            let entry = &self.slots[i];
            if entry.conversation == EMPTY {
                return None;
            }
            if eq(entry) {
                return Some(entry);
            }
            i = (i + 1) & mask;
        }
    }

    /// Asks the processor to bring the home slot of `hash` into cache, for
    /// a [`Self::find`] a little later; changes nothing.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if self.slots.is_empty() {
            return;
        }
        let slot: *const IndexEntry = &self.slots[self.home(hash)];
        // Both ends: a slot may straddle two cache lines.
        let first: *const u8 = slot.cast();
        prefetch_line(first);
        prefetch_line(first.wrapping_add(std::mem::size_of::<IndexEntry>() - 1));
    }

    /// Adds `entry` with key hash `hash`, whose conversation is not in the
    /// index yet; `hash_of` gives the key hash of any entry in the index
    /// (for growing it).
    pub fn insert_unique(
        &mut self,
        hash: u64,
        entry: IndexEntry,
        hash_of: impl Fn(&IndexEntry) -> u64,
    ) {
        debug_assert_ne!(entry.conversation, EMPTY);
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow(hash_of);
        }
        self.place(hash, entry);
        self.len += 1;
    }

    fn place(&mut self, hash: u64, entry: IndexEntry) {
        let mask = self.slots.len() - 1;
        let mut i = self.home(hash);
        while self.slots[i].conversation != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = entry;
    }

    fn grow(&mut self, hash_of: impl Fn(&IndexEntry) -> u64) {
        let size = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY_ENTRY; size]);
        // The old entries are read in order; their new homes are all over
        // the table: ask for each a few entries ahead. (Their hashes are
        // asked for twice rather than kept in a vector as large as the
        // table.)
        let entries = old.iter().filter(|e| e.conversation != EMPTY);
        let mut ahead = entries.clone().skip(GROW_PREFETCH_AHEAD);
        for entry in entries {
            if let Some(later) = ahead.next() {
                self.prefetch(hash_of(later));
            }
            self.place(hash_of(entry), *entry);
        }
    }
}

/// Asks the processor to bring the cache line holding `byte` closer; a hint
/// that never faults, whatever the address.
#[inline]
pub(super) fn prefetch_line(byte: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and cannot fault; SSE, which it
    // needs, is part of every x86_64 target.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(byte.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = byte;
}

/// Slots for `n` entries at most half full: a power of two.
fn slots_for(n: usize) -> usize {
    n.saturating_mul(2).next_power_of_two().max(MIN_SLOTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries whose key's first half is their hash, as the tests index them.
    fn entry(hash: u64, conversation: u32) -> IndexEntry {
        IndexEntry {
            key: [hash, 7],
            bot: 3,
            conversation,
        }
    }

    fn hash_of(e: &IndexEntry) -> u64 {
        e.key[0]
    }

    #[test]
    fn an_empty_index_finds_nothing_and_prefetches_nothing() {
        let index = ConversationIndex::default();
        index.prefetch(42);
        assert!(index.find(42, |_| true).is_none());
        assert_eq!(index.heap_bytes(), 0);
    }

    #[test]
    fn entries_are_found_by_hash_and_predicate_across_growth_and_collisions() {
        let mut index = ConversationIndex::with_capacity(3);
        // Hashes that share their low bits collide on the home slot.
        let hashes: Vec<u64> = (0..1000u64)
            .map(|i| {
                if i % 3 == 0 {
                    i << 40
                } else {
                    i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                }
            })
            .collect();
        for (c, &h) in hashes.iter().enumerate() {
            index.insert_unique(h, entry(h, c as u32), hash_of);
        }
        assert_eq!(index.len(), 1000);
        assert!(index.slots.len() >= 2000);
        for (c, &h) in hashes.iter().enumerate() {
            index.prefetch(h);
            let found = index.find(h, |e| e.key[0] == h).expect("present");
            assert_eq!(found.conversation, c as u32);
            // The predicate decides.
            assert!(index.find(h, |e| e.key[0] == h && e.bot != 3).is_none());
        }
        assert!(index.find(12345, |e| e.key[0] == 12345).is_none());
    }

    #[test]
    fn equal_hashes_are_told_apart_by_the_predicate() {
        let mut index = ConversationIndex::default();
        for c in 0..40u32 {
            let mut e = entry(99, c);
            e.bot = c;
            index.insert_unique(99, e, hash_of);
        }
        for c in 0..40u32 {
            assert_eq!(index.find(99, |e| e.bot == c).unwrap().conversation, c);
        }
    }

    proptest::proptest! {
        /// Against a map: any hashes (few bits, so that they collide), any
        /// order, every entry found and nothing else.
        #[test]
        fn finds_what_a_map_finds(hashes in proptest::collection::vec(0u64..64, 0..300), start in 0usize..40) {
            let mut index = ConversationIndex::with_capacity(start);
            let mut map = std::collections::HashMap::new();
            for (c, &h) in hashes.iter().enumerate() {
                // The key tells entries with one hash apart.
                let e = IndexEntry { key: [h, c as u64], bot: 1, conversation: c as u32 };
                index.insert_unique(h.rotate_right(7), e, |e| e.key[0].rotate_right(7));
                map.insert(c, h);
            }
            proptest::prop_assert_eq!(index.len(), hashes.len());
            for (&c, &h) in &map {
                let found = index.find(h.rotate_right(7), |e| e.key == [h, c as u64]);
                proptest::prop_assert_eq!(found.map(|e| e.conversation), Some(c as u32));
            }
            let absent = index.find(5u64.rotate_right(7), |e| e.key[1] == u64::MAX);
            proptest::prop_assert!(absent.is_none());
            proptest::prop_assert!(index.slots.is_empty() || index.len() * 2 <= index.slots.len());
        }
    }

    #[test]
    fn slots_stay_at_most_half_full() {
        for n in [0usize, 1, 7, 8, 9, 1000] {
            let index = ConversationIndex::with_capacity(n);
            assert!(index.slots.len() >= 2 * n);
            assert!(index.slots.is_empty() || index.slots.len().is_power_of_two());
        }
        assert_eq!(std::mem::size_of::<IndexEntry>(), 24);
    }
}
