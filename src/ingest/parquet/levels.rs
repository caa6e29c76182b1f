//! Definition levels of a flat optional column's page, as a bitmap.
//!
//! A flat optional column has one-bit definition levels: 1 where the row
//! holds a value, 0 where it is null, stored in the RLE / bit-packing
//! hybrid encoding (`super::hybrid`). The selective reader (`super::selected`)
//! asks three things of them: whether a row is present, how many rows of
//! the page are, and, for each selected row, the position of its value
//! among the page's values (the present rows before it). [`PresentBits`]
//! answers them from a bitmap: a repeated run sets or skips whole words, a
//! bit-packed run (already a bitmap, least significant bit first) is
//! copied eight bytes at a time, and counting is a popcount per word. A
//! page with no null (the usual case) is not expanded at all, and a page
//! read in part is expanded only as far as the rows read
//! ([`PresentBits::decode_rows`]).
//!
//! Levels are third-party data: a level above 1 or levels that end early
//! are an error, never a panic.

use super::hybrid::{for_each_run, RunBody};

/// The present rows of a page, from its definition levels; reused from
/// page to page.
#[derive(Default)]
pub(super) struct PresentBits {
    /// Bit `i` is set when row `i` (below `len`) holds a value (empty when
    /// all rows do).
    words: Vec<u64>,
    /// Rows in the page.
    rows: usize,
    /// Rows whose bits `words` holds: the first `len` of the page.
    len: usize,
    /// How many of the page's rows hold a value.
    present: usize,
    all_present: bool,
}

impl PresentBits {
    /// Decodes the `count` levels in `data`.
    pub(super) fn decode(&mut self, data: &[u8], count: usize) -> Result<(), &'static str> {
        self.decode_rows(data, count, count)
    }

    /// Decodes the `count` levels in `data`, keeping those of its first
    /// `upto` rows only: a page read in part, as far as its rows wanted,
    /// is asked about no row after them. The count of present rows is
    /// the whole page's, and the whole page is checked.
    ///
    /// No list of runs is made: a DuckDB page's levels are hundreds of
    /// short runs, and a flow reads a few rows of about ten such pages,
    /// each a column's first (its buffers freshly faulted in).
    pub(super) fn decode_rows(
        &mut self,
        data: &[u8],
        count: usize,
        upto: usize,
    ) -> Result<(), &'static str> {
        let upto = upto.min(count);
        let words = &mut self.words;
        words.clear();
        // Rows at and after `upto` are only counted. Those before are
        // counted at the end, from the bitmap, once a null made one.
        let (mut present_after, mut held, mut dense) = (0usize, 0usize, false);
        for_each_run(data, 1, count, |run| {
            held = run.first + run.len;
            if matches!(run.body, RunBody::Repeated(level) if level > 1) {
                return Err("a definition level above 1 in a flat column");
            }
            // `for_each_run` checked that a run's bits are in `data`.
            let packed = |offset: usize| &data[offset..];
            let below = run.len.min(upto.saturating_sub(run.first));
            if below > 0 {
                let all_set = match run.body {
                    RunBody::Repeated(level) => level == 1,
                    RunBody::Packed(offset) => all_ones(packed(offset), below),
                };
                if !dense && !all_set {
                    // The first null: every row before it holds a value.
                    dense = true;
                    // One spare word: a bit-packed run is or-ed in at a shift.
                    words.resize(upto.div_ceil(64) + 1, 0);
                    set_range(words, 0, run.first);
                }
                if dense {
                    match run.body {
                        RunBody::Repeated(1) => set_range(words, run.first, below),
                        RunBody::Packed(offset) => {
                            or_packed(words, run.first, packed(offset), below)
                        }
                        RunBody::Repeated(_) => {}
                    }
                }
            }
            if below < run.len {
                present_after += match run.body {
                    RunBody::Repeated(level) => (run.len - below) * level as usize,
                    RunBody::Packed(offset) => {
                        count_ones(packed(offset), run.len) - count_ones(packed(offset), below)
                    }
                };
            }
            Ok(())
        })?;
        let present_before = if dense {
            words.iter().map(|w| w.count_ones() as usize).sum()
        } else {
            upto
        };
        let present = present_before + present_after;
        if held < count {
            return Err("definition levels end before the page's rows");
        }
        self.rows = count;
        self.len = upto;
        self.present = present;
        self.all_present = present == count;
        if !self.all_present && !dense {
            // Every row before `upto` holds a value, some after it not.
            self.words.resize(upto.div_ceil(64) + 1, 0);
            set_range(&mut self.words, 0, upto);
        }
        Ok(())
    }

    /// Makes these the levels of rows `from .. from + rows` of `whole`
    /// (rows it holds), numbered from 0: a piece of a page served in parts
    /// (`super::page_stream`).
    pub(super) fn copy_range(&mut self, whole: &PresentBits, from: usize, rows: usize) {
        debug_assert!(from + rows <= whole.len || whole.all_present);
        self.rows = rows;
        self.len = rows;
        self.words.clear();
        if whole.all_present {
            self.all_present = true;
            self.present = rows;
            return;
        }
        let word = |i: usize| whole.words.get(i).copied().unwrap_or(0);
        let full = rows.div_ceil(64);
        self.words.resize(full + 1, 0);
        for (i, out) in self.words.iter_mut().take(full).enumerate() {
            let bit = from + i * 64;
            let (at, shift) = (bit / 64, bit % 64);
            let high = if shift == 0 {
                0
            } else {
                word(at + 1) << (64 - shift)
            };
            *out = word(at) >> shift | high;
        }
        if rows % 64 != 0 {
            self.words[rows / 64] &= (1u64 << (rows % 64)) - 1;
        }
        let present: usize = self.words.iter().map(|w| w.count_ones() as usize).sum();
        self.present = present;
        self.all_present = present == rows;
    }

    /// Whether every row holds a value.
    #[inline]
    pub(super) fn all_present(&self) -> bool {
        self.all_present
    }

    /// Whether row `row` (below the rows decoded) holds a value.
    #[inline]
    pub(super) fn is_present(&self, row: usize) -> bool {
        debug_assert!(row < self.len || self.all_present);
        self.all_present || (row < self.len && self.words[row / 64] >> (row % 64) & 1 == 1)
    }

    /// How many of the page's rows hold a value.
    pub(super) fn count_present(&self) -> usize {
        self.present
    }

    /// How many of the first `rows` rows (at most the rows decoded) hold a
    /// value.
    pub(super) fn present_before(&self, rows: usize) -> usize {
        if self.all_present {
            return rows.min(self.rows);
        }
        debug_assert!(rows <= self.len);
        let rows = rows.min(self.len);
        let whole: usize = self.words[..rows / 64]
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum();
        let below = match rows % 64 {
            0 => 0,
            bits => (self.words[rows / 64] & ((1u64 << bits) - 1)).count_ones() as usize,
        };
        whole + below
    }

    /// For each of `rows` (ascending, below the rows decoded), the position
    /// of its value among the page's values, or `null` when it has none;
    /// appended to `out`.
    pub(super) fn positions(
        &self,
        rows: impl Iterator<Item = usize>,
        null: u32,
        out: &mut Vec<u32>,
    ) {
        if self.all_present {
            out.extend(rows.map(|r| r as u32));
            return;
        }
        // Present rows in the words before `word`.
        let mut word = 0usize;
        let mut before = 0u32;
        for row in rows {
            let at = row / 64;
            while word < at {
                before += self.words[word].count_ones();
                word += 1;
            }
            let bits = self.words.get(at).copied().unwrap_or(0);
            let below = bits & ((1u64 << (row % 64)) - 1);
            let present = row < self.len && bits >> (row % 64) & 1 == 1;
            out.push(if present {
                before + below.count_ones()
            } else {
                null
            });
        }
    }
}

/// Sets bits `first .. first + len` of `words`.
fn set_range(words: &mut [u64], first: usize, len: usize) {
    let end = first + len;
    let mut bit = first;
    while bit < end {
        let shift = bit % 64;
        let take = (64 - shift).min(end - bit);
        let mask = if take == 64 {
            u64::MAX
        } else {
            ((1u64 << take) - 1) << shift
        };
        words[bit / 64] |= mask;
        bit += take;
    }
}

/// Or-s `len` bits of `packed` (least significant bit first) into `words`
/// from bit `first`.
fn or_packed(words: &mut [u64], first: usize, packed: &[u8], len: usize) {
    for (done, _, bits) in packed_words(packed, len) {
        let bit = first + done;
        let shift = bit % 64;
        words[bit / 64] |= bits << shift;
        if shift > 0 {
            if let Some(next) = words.get_mut(bit / 64 + 1) {
                *next |= bits >> (64 - shift);
            }
        }
    }
}

/// How many of the first `len` bits of `packed` are set.
fn count_ones(packed: &[u8], len: usize) -> usize {
    packed_words(packed, len)
        .map(|(_, _, bits)| bits.count_ones() as usize)
        .sum()
}

/// Whether the first `len` bits of `packed` are all set.
fn all_ones(packed: &[u8], len: usize) -> bool {
    packed_words(packed, len).all(|(_, take, bits)| bits == low_bits(take))
}

/// The first `len` bits of `packed`, 64 at a time: for each word, the
/// bits before it, how many it holds, and the word (its bits past those
/// zero).
#[inline]
fn packed_words(packed: &[u8], len: usize) -> impl Iterator<Item = (usize, usize, u64)> + '_ {
    (0..len).step_by(64).map(move |done| {
        let take = (len - done).min(64);
        (done, take, le_word(packed, done / 8) & low_bits(take))
    })
}

/// A word of its `n` (at most 64) lowest bits set.
#[inline]
fn low_bits(n: usize) -> u64 {
    if n < 64 {
        (1u64 << n) - 1
    } else {
        u64::MAX
    }
}

/// The eight bytes of `packed` from `at` as a little-endian word, zeros
/// past its end: one load where the eight are there.
#[inline]
fn le_word(packed: &[u8], at: usize) -> u64 {
    match packed.get(at..at + 8) {
        Some(eight) => u64::from_le_bytes(eight.try_into().unwrap_or([0; 8])),
        None => {
            let mut chunk = [0u8; 8];
            let tail = packed.get(at..).unwrap_or(&[]);
            chunk[..tail.len()].copy_from_slice(tail);
            u64::from_le_bytes(chunk)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Levels as one bit-packed run of `levels.len()` (a multiple of 8).
    fn packed(levels: &[u8]) -> Vec<u8> {
        let mut data = vec![((levels.len() / 8) << 1 | 1) as u8];
        for group in levels.chunks(8) {
            data.push(group.iter().enumerate().map(|(i, &l)| l << i).sum());
        }
        data
    }

    /// The naive answers, from levels as integers.
    fn check(bits: &PresentBits, levels: &[u8]) {
        assert_eq!(
            bits.count_present(),
            levels.iter().filter(|&&l| l == 1).count()
        );
        let mut out = Vec::new();
        bits.positions(0..levels.len(), u32::MAX, &mut out);
        let mut value = 0;
        for (row, &l) in levels.iter().enumerate() {
            assert_eq!(bits.is_present(row), l == 1, "row {row}");
            assert_eq!(out[row], if l == 1 { value } else { u32::MAX }, "row {row}");
            value += u32::from(l);
        }
    }

    /// Any range of a page's levels, at any bit offset, gives the naive
    /// answers of its levels; a range with no null is all present.
    #[test]
    fn ranges_of_levels_are_their_levels() {
        let levels: Vec<u8> = (0..496u32)
            .map(|i| u8::from(i.wrapping_mul(2_654_435_761) % 5 != 0 || (200..300).contains(&i)))
            .collect();
        let mut whole = PresentBits::default();
        whole.decode(&packed(&levels), levels.len()).unwrap();
        let mut part = PresentBits::default();
        let ranges = [
            (0, 496),
            (0, 64),
            (1, 63),
            (63, 130),
            (64, 128),
            (200, 100),
            (201, 64),
            (480, 16),
            (496, 0),
        ];
        for (from, rows) in ranges {
            part.copy_range(&whole, from, rows);
            check(&part, &levels[from..from + rows]);
            assert_eq!(
                part.all_present(),
                levels[from..from + rows].iter().all(|&l| l == 1)
            );
        }
        let mut all = PresentBits::default();
        // One run of 50 × 1.
        all.decode(&[50 << 1, 1], 50).unwrap();
        part.copy_range(&all, 10, 40);
        check(&part, &[1; 40]);
        assert!(part.all_present());
    }

    #[test]
    fn all_present_pages_are_not_expanded() {
        let mut bits = PresentBits::default();
        // 300 × 1, then 5 × 1.
        bits.decode(&[0xd8, 0x04, 1, 10, 1], 305).unwrap();
        assert!(bits.all_present());
        assert!(bits.words.is_empty());
        check(&bits, &[1; 305]);
    }

    #[test]
    fn repeated_and_packed_runs_at_any_offset() {
        // Runs of 3 × 1, 50 × 0, 1 × 1, then 72 packed levels, then 61 × 1:
        // a packed run starting off a byte and word boundary.
        let mut levels = vec![1u8; 3];
        levels.extend([0; 50]);
        levels.push(1);
        let pattern: Vec<u8> = (0..72).map(|i| u8::from(i % 3 != 1)).collect();
        let mut data = vec![3 << 1, 1, 50 << 1, 0, 1 << 1, 1];
        data.extend(packed(&pattern));
        levels.extend(&pattern);
        data.extend([61 << 1, 1]);
        levels.extend([1; 61]);
        let mut bits = PresentBits::default();
        bits.decode(&data, levels.len()).unwrap();
        assert!(!bits.all_present());
        check(&bits, &levels);
        // A packed run cut short by the page's rows keeps no padding bit.
        let short: Vec<u8> = vec![1; 16];
        bits.decode(&packed(&short), 11).unwrap();
        check(&bits, &short[..11]);
        assert_eq!(bits.count_present(), 11);
    }

    /// Levels as DuckDB writes them: short runs of 1 between bit-packed
    /// runs of 256 levels, a few of them null; with the encoded bytes.
    fn duckdb_like(runs: usize) -> (Vec<u8>, Vec<u8>) {
        let (mut levels, mut data) = (Vec::new(), Vec::new());
        for r in 0..runs {
            let repeated = 1 + (r * 37) % 60;
            data.extend([(repeated << 1) as u8, 1]);
            levels.extend(std::iter::repeat_n(1u8, repeated));
            let group: Vec<u8> = (0..256).map(|i| u8::from((i * 7 + r) % 97 != 0)).collect();
            data.extend(packed(&group));
            levels.extend(group);
        }
        (levels, data)
    }

    /// A page read in part has its levels decoded as far as a row: those
    /// before it answer as the whole page's do, and the count of present
    /// rows is the page's.
    #[test]
    fn levels_decoded_up_to_a_row_answer_for_the_rows_before_it() {
        let (levels, data) = duckdb_like(40);
        let n = levels.len();
        let mut whole = PresentBits::default();
        whole.decode(&data, n).unwrap();
        check(&whole, &levels);
        let mut part = PresentBits::default();
        for upto in [0, 1, 63, 64, 65, 300, 5_000, n - 1, n] {
            part.decode_rows(&data, n, upto).unwrap();
            assert_eq!(part.count_present(), whole.count_present(), "{upto}");
            assert_eq!(part.all_present(), whole.all_present());
            let mut out = Vec::new();
            part.positions(0..upto, u32::MAX, &mut out);
            let mut expected = Vec::new();
            whole.positions(0..upto, u32::MAX, &mut expected);
            assert_eq!(out, expected, "{upto}");
            for row in 0..upto {
                assert_eq!(part.is_present(row), whole.is_present(row), "{upto} {row}");
            }
            for rows in [0, upto / 2, upto] {
                assert_eq!(part.present_before(rows), whole.present_before(rows));
            }
        }
        // Damage after the rows decoded is found all the same.
        let mut damaged = data.clone();
        damaged.extend([2, 2]);
        assert!(part.decode_rows(&damaged, n + 1, 10).is_err());
        assert!(
            part.decode_rows(&data, n + 1, 10).is_err(),
            "too few levels"
        );
    }

    /// Bit-packed levels with no null (DuckDB writes them so) are all
    /// present, and not expanded.
    #[test]
    fn bit_packed_levels_without_a_null_are_all_present() {
        let mut bits = PresentBits::default();
        let mut data = packed(&[1; 256]);
        data.extend([47 << 1, 1]);
        data.extend(packed(&[1; 256]));
        bits.decode(&data, 559).unwrap();
        assert!(bits.all_present());
        assert!(bits.words.is_empty());
        check(&bits, &[1; 559]);
    }

    #[test]
    fn malformed_levels_are_errors() {
        let mut bits = PresentBits::default();
        assert!(bits.decode(&[10, 1], 9).is_err(), "too few levels");
        assert!(bits.decode(&[10, 2], 5).is_err(), "a level of 2");
        assert!(bits.decode(&[3], 8).is_err(), "packed run past the end");
    }
}
