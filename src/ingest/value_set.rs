//! The values a condition of a scan wants (`scope`), tested against a
//! column's strings one at a time: by the Parquet reader (`parquet::selected`)
//! on pages without a dictionary, and by the NDJSON decoder (`flat_json`)
//! on every line.
//!
//! A page written without a dictionary (Spark and Polars fall back to
//! plain pages; some pipelines turn dictionaries off) has its condition
//! tested once per row: a bot or a team among a few, in millions of rows.
//! A binary search there calls `memcmp` once or twice per row. Most rows
//! are none of the values, and most of those differ from each of them in
//! length or in their first eight bytes: [`ValueSet::contains`] compares
//! those first, as integers, and the bytes only of a row that agrees. A
//! value of 8 to 16 bytes, alone (a team) or among others (a team's bots,
//! which share their first eight bytes, `bot-acme-…`), is compared whole
//! as two integers, its first and last eight bytes. Another lone value is
//! compared as a slice (length, then bytes), inline: the test of every
//! row of a flow's conversation id.

/// Up to this many values are compared one by one by length and first
/// bytes; more are searched for by length, then by a binary search.
const COMPARED_ONE_BY_ONE: usize = 8;

/// A set of strings (sorted and without duplicates, as conditions hold
/// them), for testing whether a value is one of them.
pub(crate) struct ValueSet<'a> {
    values: &'a [String],
    /// Bit `n` is set when a value is `n` bytes long (`n` below 64).
    short_lengths: u64,
    /// Whether a value is 64 bytes long or longer.
    any_long: bool,
    /// Per value, with [`COMPARED_ONE_BY_ONE`] values or fewer: its
    /// length and first and last eight bytes ([`ends`]).
    value_ends: Vec<Option<Ends>>,
}

/// A string's length and its first and last eight bytes, as integers; for
/// a string of at most 16 bytes they cover every byte.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Ends {
    len: usize,
    first: u64,
    last: u64,
}

impl<'a> ValueSet<'a> {
    /// The set of `values`, which are sorted.
    pub(crate) fn new(values: &'a [String]) -> Self {
        let mut short_lengths = 0u64;
        let mut any_long = false;
        for v in values {
            match v.len() {
                n @ 0..64 => short_lengths |= 1 << n,
                _ => any_long = true,
            }
        }
        let value_ends = if values.len() <= COMPARED_ONE_BY_ONE {
            values.iter().map(|v| ends(v.as_bytes())).collect()
        } else {
            Vec::new()
        };
        Self {
            values,
            short_lengths,
            any_long,
            value_ends,
        }
    }

    /// Whether `value` is one of the set's values.
    #[inline(always)]
    pub(crate) fn contains(&self, value: &[u8]) -> bool {
        match (self.values, self.value_ends.first()) {
            // One value of 8 to 16 bytes (a team, a bot): by its ends.
            ([one], Some(&Some(wanted))) if one.len() <= 16 => ends(value) == Some(wanted),
            // Another one value (a conversation): compared as a slice,
            // length first, inline.
            ([one], _) => one.as_bytes() == value,
            _ => self.contains_among(value),
        }
    }

    /// [`ValueSet::contains`] for none or several values.
    fn contains_among(&self, value: &[u8]) -> bool {
        let len = value.len();
        let possible = if len < 64 {
            self.short_lengths >> len & 1 == 1
        } else {
            self.any_long
        };
        if !possible {
            return false;
        }
        if self.value_ends.is_empty() {
            return self
                .values
                .binary_search_by(|v| v.as_bytes().cmp(value))
                .is_ok();
        }
        match ends(value) {
            Some(wanted) => self
                .value_ends
                .iter()
                .zip(self.values)
                .any(|(&h, v)| h == Some(wanted) && (wanted.len <= 16 || v.as_bytes() == value)),
            // A value shorter than eight bytes is compared whole (copying
            // it into a word first cost more than that).
            None => self.values.iter().any(|v| v.as_bytes() == value),
        }
    }
}

/// The [`Ends`] of `value`; `None` for a value shorter than eight bytes.
#[inline]
fn ends(value: &[u8]) -> Option<Ends> {
    let first = value.first_chunk::<8>()?;
    let last = value.last_chunk::<8>()?;
    Some(Ends {
        len: value.len(),
        first: u64::from_le_bytes(*first),
        last: u64::from_le_bytes(*last),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Values of every length around the eight bytes compared as one
    /// integer and the 64 of the length mask, with shared starts.
    fn values() -> Vec<String> {
        let mut values: Vec<String> = [0, 1, 7, 8, 9, 15, 63, 64, 65, 200]
            .iter()
            .flat_map(|&n| ["a".repeat(n), "bot-".repeat(n / 4 + 1)[..n].to_owned()])
            .chain(
                [
                    "bot-acme-support",
                    "bot-acme-sales",
                    "bot-acme-sale",
                    "bot-acmeXsupport",
                    "bot-acme-suppor",
                    "bot-acme-supporu",
                    "bot-acme-support1",
                    "bot-acmeXsupport1",
                    "b\0",
                ]
                .map(String::from),
            )
            .collect();
        values.sort();
        values.dedup();
        values
    }

    /// A set finds what a binary search finds, for sets of every size
    /// (one by one up to eight values, by length and search above).
    #[test]
    fn a_set_finds_what_a_search_finds() {
        let all = values();
        for size in [0, 1, 2, 3, 8, 9, all.len()] {
            for start in 0..all.len().saturating_sub(size) + 1 {
                let mut chosen: Vec<String> = all[start..(start + size).min(all.len())].to_vec();
                chosen.sort();
                let set = ValueSet::new(&chosen);
                for probe in all
                    .iter()
                    .map(String::as_bytes)
                    .chain([&b"b"[..], b"bot-acme-", b""])
                {
                    let want = chosen.iter().any(|c| c.as_bytes() == probe);
                    assert_eq!(set.contains(probe), want, "{size} {start} {probe:?}");
                }
            }
        }
    }

    proptest! {
        /// Random values and probes (short alphabets, so that probes often
        /// share lengths and starts with values): the set agrees with a
        /// naive search.
        #[test]
        fn a_set_agrees_with_a_naive_search(
            mut chosen in proptest::collection::vec("[ab\\x00]{0,20}", 0..12),
            probes in proptest::collection::vec("[ab\\x00]{0,20}", 0..40),
        ) {
            chosen.sort();
            chosen.dedup();
            let set = ValueSet::new(&chosen);
            for probe in probes.iter().chain(&chosen) {
                prop_assert_eq!(set.contains(probe.as_bytes()), chosen.contains(probe));
            }
        }
    }
}
