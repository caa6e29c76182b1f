//! Compact string storage for the conversation store.
//!
//! Strings that repeat (bots, versions, channels, steps, users) are interned
//! into dense [`Sym`] ids by an [`Interner`]; strings that are nearly unique
//! (conversation ids, event ids, message ids) are appended to a
//! [`StringArena`], one contiguous byte buffer. Neither allocates per string,
//! which keeps the engine's resident memory per event small.

use hashbrown::HashTable;

/// A dense id of an interned string; [`NULL_SYM`] stands for null.
pub type Sym = u32;

/// The symbol of a null value.
pub const NULL_SYM: Sym = Sym::MAX;

/// Hashes a string for the store's tables (fast, not DoS-resistant: keys
/// are the host's own data).
#[inline]
pub fn hash_str(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}

/// Append-only buffer of strings addressed by position.
#[derive(Debug, Default, Clone)]
pub struct StringArena {
    bytes: Vec<u8>,
    /// `ends[i]` is one past the last byte of string `i`.
    ends: Vec<usize>,
}

impl StringArena {
    /// Asks for the cache lines a little past the ends of the arena.
    #[inline]
    pub fn prefetch_tail(&self) {
        let bytes = self.bytes.as_ptr().wrapping_add(self.bytes.len());
        super::conversation_index::prefetch_line(bytes.wrapping_add(64));
        let ends = self
            .ends
            .as_ptr()
            .wrapping_add(self.ends.len())
            .cast::<u8>();
        super::conversation_index::prefetch_line(ends.wrapping_add(64));
    }

    /// Appends `s`, returning its position.
    #[inline]
    pub fn push(&mut self, s: &str) -> u32 {
        self.bytes.extend_from_slice(s.as_bytes());
        self.ends.push(self.bytes.len());
        (self.ends.len() - 1) as u32
    }

    /// The bytes of the string at position `i` (for comparisons).
    #[inline]
    pub fn get_bytes(&self, i: u32) -> &[u8] {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    /// The string at position `i`.
    #[inline]
    pub fn get(&self, i: u32) -> &str {
        // Every slice was pushed from a `&str` and is cut on the same
        // boundaries, so the fallback is never taken.
        std::str::from_utf8(self.get_bytes(i)).unwrap_or_default()
    }

    /// Number of strings held.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// An arena from its parts; `None` unless `ends` is non-decreasing,
    /// ends at `bytes.len()` and cuts `bytes` (valid UTF-8) on character
    /// boundaries, so that every later access is in bounds and valid.
    pub fn from_parts(bytes: Vec<u8>, ends: Vec<usize>) -> Option<Self> {
        let text = std::str::from_utf8(&bytes).ok()?;
        let mut last = 0;
        for &end in &ends {
            if end < last || !text.is_char_boundary(end) {
                return None;
            }
            last = end;
        }
        (last == bytes.len()).then_some(Self { bytes, ends })
    }

    /// Bytes of heap memory in use.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * std::mem::size_of::<usize>()
    }
}

/// Maps strings to dense [`Sym`] ids and back.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    values: StringArena,
    hashes: Vec<u64>,
    table: HashTable<Sym>,
}

impl Interner {
    /// The id of `s`, adding it when new.
    #[inline]
    pub fn intern(&mut self, s: &str) -> Sym {
        let hash = hash_str(s);
        let Self {
            values,
            hashes,
            table,
        } = self;
        if let Some(&sym) = table.find(hash, |&sym| values.get_bytes(sym) == s.as_bytes()) {
            return sym;
        }
        let sym = values.push(s);
        hashes.push(hash);
        table.insert_unique(hash, sym, |&sym| hashes[sym as usize]);
        sym
    }

    /// An interner of the strings of `values`, in order (the first of two
    /// equal strings keeps its id; the second is unreachable but harmless).
    pub fn from_arena(values: StringArena) -> Self {
        let hashes: Vec<u64> = (0..values.len() as u32)
            .map(|i| hash_str(values.get(i)))
            .collect();
        let mut table = HashTable::with_capacity(values.len());
        for (sym, &hash) in hashes.iter().enumerate() {
            let sym = sym as Sym;
            if table
                .find(hash, |&s| values.get_bytes(s) == values.get_bytes(sym))
                .is_none()
            {
                table.insert_unique(hash, sym, |&s| hashes[s as usize]);
            }
        }
        Self {
            values,
            hashes,
            table,
        }
    }

    /// The strings, in id order.
    pub fn arena(&self) -> &StringArena {
        &self.values
    }

    /// The id of `s` if it was interned.
    #[inline]
    pub fn lookup(&self, s: &str) -> Option<Sym> {
        let hash = hash_str(s);
        self.table
            .find(hash, |&sym| self.values.get_bytes(sym) == s.as_bytes())
            .copied()
    }

    /// The string of `sym`; `None` for [`NULL_SYM`].
    #[inline]
    pub fn resolve(&self, sym: Sym) -> Option<&str> {
        (sym != NULL_SYM).then(|| self.values.get(sym))
    }

    /// Number of distinct strings.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Bytes of heap memory in use.
    pub fn heap_bytes(&self) -> usize {
        self.values.heap_bytes()
            + self.hashes.capacity() * 8
            + self.table.capacity() * (std::mem::size_of::<Sym>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_round_trips_including_empty_strings() {
        let mut arena = StringArena::default();
        let words = ["", "a", "", "héllo", "x".repeat(300).leak()];
        let ids: Vec<u32> = words.iter().map(|w| arena.push(w)).collect();
        for (id, w) in ids.iter().zip(words) {
            assert_eq!(arena.get(*id), w);
        }
        assert_eq!(arena.len(), 5);
    }

    #[test]
    fn interner_gives_dense_stable_ids() {
        let mut interner = Interner::default();
        for round in 0..2 {
            for i in 0..257u32 {
                assert_eq!(interner.intern(&format!("v{i}")), i, "round {round}");
            }
        }
        assert_eq!(interner.len(), 257);
        assert_eq!(interner.lookup("v256"), Some(256));
        assert_eq!(interner.lookup("nope"), None);
        assert_eq!(interner.resolve(3), Some("v3"));
        assert_eq!(interner.resolve(NULL_SYM), None);
        assert_eq!(interner.intern(""), 257);
    }
}
