//! The Parquet RLE / bit-packing hybrid encoding, decoded in bulk.
//!
//! Definition levels and dictionary indices are stored in this encoding: a
//! sequence of runs, each introduced by a ULEB128 header whose low bit says
//! whether it is a repeated value (`count << 1`, then the value in
//! `ceil(bit_width / 8)` little-endian bytes) or bit-packed groups of eight
//! values (`groups << 1 | 1`, then `groups * bit_width` bytes, values
//! packed least significant bit first). [`decode_hybrid`] expands the
//! first `count` values of such a sequence into a buffer the caller
//! reuses, which is what the selective reader (`super::selected`) needs: a
//! page's indices or levels as plain integers, then any row by position.
//! [`visit_runs`] hands the values to a [`ValueSink`] as they are unpacked
//! instead, for a reader that only tests each one.
//!
//! Input is third-party data: every length is checked, and a malformed
//! sequence is an error, never a panic or a read out of bounds.

/// Decodes `count` values of bit width `bit_width` from `data` into `out`
/// (cleared first). Fails when `data` ends early or the width is above 32.
pub(super) fn decode_hybrid(
    data: &[u8],
    bit_width: u8,
    count: usize,
    out: &mut Vec<u32>,
) -> Result<(), &'static str> {
    out.clear();
    let mut runs = Vec::new();
    parse_runs(data, bit_width, count, &mut runs)?;
    expand(data, bit_width, &runs, count, out);
    Ok(())
}

/// Appends the values of `runs` (parsed from `data`) to `out`.
fn expand(data: &[u8], bit_width: u8, runs: &[Run], count: usize, out: &mut Vec<u32>) {
    out.reserve(count);
    visit_runs(data, bit_width, runs, out);
}

/// Where the values of a hybrid-encoded sequence go, in order: a repeated
/// run at once, bit-packed values eight at a time. A reader that only
/// tests the values (`super::selected::matching_rows`) takes them here
/// without a buffer of them all.
pub(super) trait ValueSink {
    /// The next `n` values are `values[..n]` (`n` is 8 but at a run's end).
    fn group(&mut self, values: &[u32; 8], n: usize);
    /// The next `len` values are `value`.
    fn repeated(&mut self, value: u32, len: usize);
    /// The next `take` values are packed `width` bits each at the start of
    /// `packed` (which holds them all): by default unpacked and handed to
    /// [`ValueSink::group`] eight at a time.
    fn packed(&mut self, packed: &[u8], width: usize, take: usize)
    where
        Self: Sized,
    {
        unpack(packed, width, take, self);
    }
}

impl ValueSink for Vec<u32> {
    #[inline]
    fn group(&mut self, values: &[u32; 8], n: usize) {
        // A whole group is appended at its constant size (a copy of 32
        // bytes, not a call to `memcpy` of a length known at run time).
        if n == 8 {
            self.extend_from_slice(values);
        } else {
            self.extend_from_slice(&values[..n]);
        }
    }

    #[inline]
    fn repeated(&mut self, value: u32, len: usize) {
        self.resize(self.len() + len, value);
    }
}

/// Hands the values of `runs` (parsed from `data` by [`parse_runs`]) to
/// `sink`, in order.
pub(super) fn visit_runs(data: &[u8], bit_width: u8, runs: &[Run], sink: &mut impl ValueSink) {
    let width = usize::from(bit_width);
    for run in runs {
        match run.body {
            RunBody::Repeated(value) => sink.repeated(value, run.len),
            // `parse_runs` checked that the run's bits are in `data`.
            RunBody::Packed(offset) => sink.packed(&data[offset..], width, run.len),
        }
    }
}

/// Appends `take` values of `width` bits (1 to 32) from `packed`, which
/// holds at least `take * width` bits, to `out`. Dispatches to an unpacker
/// built for that width: its shifts and offsets are constants and its
/// reads need no bounds checks, several times faster than a loop over a
/// width known only at run time (dictionary indices are most of a page).
fn unpack(packed: &[u8], width: usize, take: usize, out: &mut impl ValueSink) {
    macro_rules! by_width {
        ($($w:literal)*) => {
            match width {
                $($w => unpack_groups::<$w>(packed, take, out),)*
                _ => {}
            }
        };
    }
    by_width!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32);
}

/// [`unpack`] for width `W`, eight values (one group of `W` bytes) at a time.
#[inline(never)]
fn unpack_groups<const W: usize>(packed: &[u8], take: usize, out: &mut impl ValueSink) {
    let mask = (1u64 << W) - 1;
    let mut group = [0u8; 40];
    let mut left = take;
    for bytes in packed.chunks(W) {
        if left == 0 {
            break;
        }
        // A whole group is copied at its constant size; only a run cut
        // short by the page's value count ends in a partial one.
        if bytes.len() == W {
            group[..W].copy_from_slice(bytes);
        } else {
            group = [0; 40];
            group[..bytes.len()].copy_from_slice(bytes);
        }
        let mut values = [0u32; 8];
        for (j, value) in values.iter_mut().enumerate() {
            let bit = j * W;
            let at = bit / 8;
            let word = u64::from_le_bytes([
                group[at],
                group[at + 1],
                group[at + 2],
                group[at + 3],
                group[at + 4],
                group[at + 5],
                group[at + 6],
                group[at + 7],
            ]);
            *value = ((word >> (bit % 8)) & mask) as u32;
        }
        let n = left.min(8);
        out.group(&values, n);
        left -= n;
    }
}

/// The rows (from `first` on) whose dictionary index is one `matches`,
/// appended to `out` as a page's indices are unpacked
/// ([`ValueSink`]); with the largest index seen, to check.
pub(super) struct MatchingRows<'a, F> {
    next_row: u32,
    out: &'a mut Vec<u32>,
    matches: F,
    largest: u32,
}

impl<'a, F: Fn(u32) -> bool> MatchingRows<'a, F> {
    pub(super) fn new(first: u32, out: &'a mut Vec<u32>, matches: F) -> Self {
        Self {
            next_row: first,
            out,
            matches,
            largest: 0,
        }
    }

    /// The largest index seen.
    pub(super) fn largest(&self) -> u32 {
        self.largest
    }
}

impl<F: Fn(u32) -> bool> ValueSink for MatchingRows<'_, F> {
    #[inline]
    fn group(&mut self, values: &[u32; 8], n: usize) {
        let mut mask = 0u32;
        let mut largest = self.largest;
        for (bit, &v) in values[..n].iter().enumerate() {
            mask |= u32::from((self.matches)(v)) << bit;
            largest = largest.max(v);
        }
        self.largest = largest;
        while mask != 0 {
            self.out.push(self.next_row + mask.trailing_zeros());
            mask &= mask - 1;
        }
        self.next_row += n as u32;
    }

    #[inline]
    fn repeated(&mut self, value: u32, len: usize) {
        self.largest = self.largest.max(value);
        if (self.matches)(value) {
            self.out.extend(self.next_row..self.next_row + len as u32);
        }
        self.next_row += len as u32;
    }
}

/// The positions of the values equal to one dictionary entry, and whether
/// any value is outside the dictionary: a [`ValueSink`] for the one-value
/// filters of a batch query (one bot, one team), which test every row of a
/// chunk's indices.
///
/// Indices of up to 7 bits (dictionaries of up to 128 entries) are tested
/// eight at a time as the bytes of one word, without a branch per value:
/// each group's eight values are spread into bytes, a byte is zero after
/// an exclusive or with the entry exactly where the entry is, and adding
/// `128 - len` to each byte sets its top bit exactly where the index is out
/// of the dictionary's `len` entries. On the DuckDB-written file of
/// `benches/compare_duckdb.py` (one page of 122,880 indices per chunk),
/// `insights` of one bot spent 4.6% of its time here, against 9% unpacking
/// each value and comparing it; medians of 21 alternated runs, `insights`
/// 153 → 144 ms, `conversations` 156 → 150 ms.
///
/// Indices of 8 to 16 bits (a conversation's, whose dictionary holds
/// thousands of ids) are tested eight at a time where they lie, as the
/// `W`-bit fields of one 128-bit word, when the dictionary fills more than
/// half of what the width can name (as writers size it):
/// [`EntryRows::packed_fields`]. Other indices are unpacked as any sink's.
pub(super) struct EntryRows<'a, F> {
    rows: MatchingRows<'a, F>,
    entry: u32,
    /// The dictionary's number of entries.
    len: usize,
    /// Whether a value tested a word at a time was out of the dictionary.
    over: bool,
}

/// [`EntryRows`] of `entry`, of a dictionary of `len` entries, from row
/// `first_row` on, appended to `out`.
pub(super) fn entry_rows(
    entry: u32,
    len: usize,
    first_row: u32,
    out: &mut Vec<u32>,
) -> EntryRows<'_, impl Fn(u32) -> bool> {
    EntryRows {
        rows: MatchingRows::new(first_row, out, move |v| v == entry),
        entry,
        len,
        over: false,
    }
}

impl<F: Fn(u32) -> bool> EntryRows<'_, F> {
    /// Whether some value seen was not an index into the dictionary.
    pub(super) fn out_of_range(&self) -> bool {
        self.over || self.rows.largest() as usize >= self.len
    }

    /// [`ValueSink::packed`] for indices of `W` bits, `W` at most 7, of a
    /// dictionary of 1 to 128 entries.
    #[inline(never)]
    fn packed_bytes<const W: usize>(&mut self, packed: &[u8], take: usize) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const LOW: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let lane = (1u64 << W) - 1;
        let entry = u64::from(self.entry) * ONES;
        // `len` is 1 to 128, so each byte of `bias` is 0 to 127.
        let bias = (128 - self.len as u64) * ONES;
        let mut over = 0u64;
        self.each_group::<8, u64>(packed, take, W, 8, |bytes, n| {
            let word = u64::from_le_bytes(bytes);
            let mut values = 0u64;
            for j in 0..8 {
                values |= ((word >> (W * j)) & lane) << (8 * j);
            }
            // Bytes past the run's end (in its last group) are left out.
            let valid = if n == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * n)) - 1
            };
            let values = values & valid;
            // Every byte is below 128: adding 127 carries into the top bit
            // exactly where a byte is not zero, and never out of the byte.
            over |= (values + bias) & HIGH;
            !((values ^ entry) + LOW) & HIGH & valid
        });
        self.over |= over != 0;
    }

    /// Walks the groups of eight of `take` values of `width` bits packed in
    /// `packed`: `test` gets each group's first `N` bytes (its `width`
    /// bytes and the next group's above them, or zeros past the data) and
    /// how many of its values count, and returns a mask of the values
    /// equal to the entry, the top bit of each one's `field`-bit field;
    /// their rows are appended.
    ///
    /// The rows are written into room reserved for all `take` of them and
    /// 8 more, with the count in a register: a `push` per row reloaded and
    /// stored the vector's length around every check of its capacity. Bytes of
    /// up to 7 bits give a 64-bit mask (`packed_bytes`), wider fields a
    /// 128-bit one.
    #[inline(always)]
    fn each_group<const N: usize, M: GroupMask>(
        &mut self,
        packed: &[u8],
        take: usize,
        width: usize,
        field: u32,
        mut test: impl FnMut([u8; N], usize) -> M,
    ) {
        let out = &mut *self.rows.out;
        out.reserve(take + 8);
        let before = out.len();
        let room = &mut out.spare_capacity_mut()[..take + 8];
        let mut written = 0usize;
        let mut row = self.rows.next_row;
        let mut left = take;
        let mut at = 0usize;
        while left > 0 {
            let n = left.min(8);
            let bytes = match packed.get(at..at + N) {
                Some(bytes) => bytes.try_into().unwrap_or([0; N]),
                None => {
                    let mut bytes = [0u8; N];
                    let tail = packed.get(at..).unwrap_or(&[]);
                    let tail = &tail[..tail.len().min(width)];
                    bytes[..tail.len()].copy_from_slice(tail);
                    bytes
                }
            };
            let equal = test(bytes, n);
            if !equal.is_empty() {
                // Every row of the group is written, and kept (counted)
                // only if it matches: no branch per match. A loop over
                // the matches mispredicted its end about once a group
                // where many rows match, at random places (a large bot's
                // quarter of an interleaved file): `perf`, insights over
                // DuckDB's 10M file, this function 6.2% → 4.3% of the
                // samples. Only the group's first `n` can match, so at
                // most `take` rows are kept, and the writes past them
                // stay within the 8 rows of room more.
                for j in 0..8 {
                    room[written].write(row + j);
                    written += usize::from(equal.bit(field * j + field - 1));
                }
            }
            row += n as u32;
            left -= n;
            at += width;
        }
        // SAFETY: the first `written` elements of the spare capacity were
        // written above (`room` starts where the length ends).
        unsafe { out.set_len(before + written) };
        self.rows.next_row = row;
    }
}

/// The mask [`EntryRows::each_group`] gets from a group's test: one bit
/// per value equal to the entry.
trait GroupMask: Copy {
    fn is_empty(self) -> bool;
    /// Whether the bit at `at` is set.
    fn bit(self, at: u32) -> bool;
}

macro_rules! group_mask {
    ($($t:ty),*) => {$(
        impl GroupMask for $t {
            #[inline(always)]
            fn is_empty(self) -> bool {
                self == 0
            }
            #[inline(always)]
            fn bit(self, at: u32) -> bool {
                (self >> at) & 1 != 0
            }
        }
    )*};
}

group_mask!(u64, u128);

impl<F: Fn(u32) -> bool> EntryRows<'_, F> {
    /// [`ValueSink::packed`] for indices of `W` bits, `W` from 8 to 16, of
    /// a dictionary of more than `2^(W-1)` and at most `2^W` entries.
    ///
    /// A group's eight values are the `W`-bit fields of one word, left
    /// where they are. After an exclusive or with the entry in every
    /// field, a field is zero exactly where the entry is: adding to each
    /// field's low `W-1` bits their maximum carries into its top bit,
    /// never out of the field, exactly where they are not zero; or-ed with
    /// the field's own top bit, that top bit is clear only for a zero
    /// field. An index is out of the dictionary only if its top bit is set
    /// (the dictionary holds every smaller one); then it is out exactly
    /// where its low bits plus `2^W - len` carry into its top bit.
    #[inline(never)]
    fn packed_fields<const W: usize>(&mut self, packed: &[u8], take: usize) {
        // The low `W-1` bits of each of the eight fields, and their top
        // bits.
        let mut low = 0u128;
        let mut high = 0u128;
        let mut entry = 0u128;
        let mut bias = 0u128;
        let top = 1u128 << (W - 1);
        // 1 to 2^(W-1): what the low bits of an index with its top bit
        // set must reach to be out of the dictionary is `len - top`.
        let over_by = (self.len as u128).saturating_sub(top).clamp(1, top);
        for j in 0..8 {
            low |= (top - 1) << (W * j);
            high |= top << (W * j);
            entry |= u128::from(self.entry) << (W * j);
            bias |= (top - over_by) << (W * j);
        }
        let mut over = 0u128;
        self.each_group::<16, u128>(packed, take, W, W as u32, |bytes, n| {
            // The group's fields, less those past the run's end.
            let valid = if n * W >= 128 {
                u128::MAX
            } else {
                (1u128 << (n * W)) - 1
            };
            let values = u128::from_le_bytes(bytes) & valid;
            let differ = values ^ entry;
            over |= ((values & low) + bias) & values & high;
            !(((differ & low) + low) | differ) & high & valid
        });
        self.over |= over != 0;
    }
}

impl<F: Fn(u32) -> bool> ValueSink for EntryRows<'_, F> {
    #[inline]
    fn group(&mut self, values: &[u32; 8], n: usize) {
        self.rows.group(values, n);
    }

    #[inline]
    fn repeated(&mut self, value: u32, len: usize) {
        self.rows.repeated(value, len);
    }

    fn packed(&mut self, packed: &[u8], width: usize, take: usize) {
        if (8..=16).contains(&width) && self.len > 1 << (width - 1) && self.len <= 1 << width {
            return match width {
                8 => self.packed_fields::<8>(packed, take),
                9 => self.packed_fields::<9>(packed, take),
                10 => self.packed_fields::<10>(packed, take),
                11 => self.packed_fields::<11>(packed, take),
                12 => self.packed_fields::<12>(packed, take),
                13 => self.packed_fields::<13>(packed, take),
                14 => self.packed_fields::<14>(packed, take),
                15 => self.packed_fields::<15>(packed, take),
                _ => self.packed_fields::<16>(packed, take),
            };
        }
        if !(1..=128).contains(&self.len) {
            return unpack(packed, width, take, self);
        }
        match width {
            1 => self.packed_bytes::<1>(packed, take),
            2 => self.packed_bytes::<2>(packed, take),
            3 => self.packed_bytes::<3>(packed, take),
            4 => self.packed_bytes::<4>(packed, take),
            5 => self.packed_bytes::<5>(packed, take),
            6 => self.packed_bytes::<6>(packed, take),
            7 => self.packed_bytes::<7>(packed, take),
            _ => unpack(packed, width, take, self),
        }
    }
}

/// One run of a hybrid-encoded sequence, for random access.
#[derive(Debug, Clone, Copy)]
pub(super) struct Run {
    /// Position of the run's first value in the sequence.
    pub(super) first: usize,
    /// Number of values in the run.
    pub(super) len: usize,
    /// The repeated value, or the byte offset of the packed values.
    pub(super) body: RunBody,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum RunBody {
    Repeated(u32),
    Packed(usize),
}

/// Parses the run headers of the first `count` values of `data` into
/// `runs` (cleared first), so that [`HybridValues::get`] can read any value
/// without expanding the others: what a reader wants that needs a few
/// values of a page. Checks what [`decode_hybrid`] checks.
pub(super) fn parse_runs(
    data: &[u8],
    bit_width: u8,
    count: usize,
    runs: &mut Vec<Run>,
) -> Result<(), &'static str> {
    runs.clear();
    for_each_run(data, bit_width, count, |run| {
        runs.push(run);
        Ok(())
    })
}

/// Hands each run of the first `count` values of `data` to `visit`, in
/// order, as [`parse_runs`] would list them: for a reader that needs each
/// run once (`super::levels`), without a list of them. Stops at the first
/// error, `visit`'s included; fewer than `count` values when `data` ends
/// early (as [`parse_runs`], the caller checks the length).
pub(super) fn for_each_run(
    data: &[u8],
    bit_width: u8,
    count: usize,
    mut visit: impl FnMut(Run) -> Result<(), &'static str>,
) -> Result<(), &'static str> {
    if bit_width > 32 {
        return Err("bit width above 32");
    }
    if bit_width == 0 {
        if count > 0 {
            visit(Run {
                first: 0,
                len: count,
                body: RunBody::Repeated(0),
            })?;
        }
        return Ok(());
    }
    let width = usize::from(bit_width);
    let value_bytes = width.div_ceil(8);
    let mut pos = 0usize;
    let mut first = 0usize;
    while first < count {
        let header = read_uleb128(data, &mut pos)?;
        let wanted = count - first;
        if header & 1 == 0 {
            let run = usize::try_from(header >> 1).map_err(|_| "run too long")?;
            let bytes = data
                .get(pos..pos + value_bytes)
                .ok_or("repeated run past the end of the data")?;
            pos += value_bytes;
            let mut value = 0u32;
            for (i, b) in bytes.iter().enumerate() {
                value |= u32::from(*b) << (8 * i);
            }
            let len = run.min(wanted);
            if len > 0 {
                visit(Run {
                    first,
                    len,
                    body: RunBody::Repeated(value),
                })?;
                first += len;
            }
        } else {
            let groups = usize::try_from(header >> 1).map_err(|_| "run too long")?;
            let values = groups.checked_mul(8).ok_or("run too long")?;
            let bytes = groups.checked_mul(width).ok_or("run too long")?;
            let available = data.len().saturating_sub(pos).min(bytes);
            let len = values.min(wanted).min(available * 8 / width);
            if len == 0 && values > 0 {
                return Err("bit-packed run past the end of the data");
            }
            if len > 0 {
                visit(Run {
                    first,
                    len,
                    body: RunBody::Packed(pos),
                })?;
                first += len;
            }
            pos += available;
        }
    }
    Ok(())
}

/// How many values `runs` (from [`parse_runs`]) hold.
pub(super) fn parsed_len(runs: &[Run]) -> usize {
    runs.last().map_or(0, |r| r.first + r.len)
}

/// Random access into a hybrid-encoded sequence whose runs were parsed by
/// [`parse_runs`], for positions asked in ascending order.
pub(super) struct HybridValues<'a> {
    data: &'a [u8],
    runs: &'a [Run],
    width: usize,
    mask: u64,
    /// The run of the last position asked.
    run: usize,
}

impl<'a> HybridValues<'a> {
    pub(super) fn new(data: &'a [u8], bit_width: u8, runs: &'a [Run]) -> Self {
        let width = usize::from(bit_width.min(32));
        Self {
            data,
            runs,
            width,
            mask: (1u64 << width) - 1,
            run: 0,
        }
    }

    /// The value at position `i` (not below the previous one asked), or
    /// `None` past the parsed values.
    #[inline]
    pub(super) fn get(&mut self, i: usize) -> Option<u32> {
        loop {
            let run = self.runs.get(self.run)?;
            if i < run.first + run.len {
                if i < run.first {
                    return None;
                }
                return Some(match run.body {
                    RunBody::Repeated(v) => v,
                    RunBody::Packed(offset) => {
                        let bit = (i - run.first) * self.width;
                        let at = offset + bit / 8;
                        // Eight bytes read as a word where the data has
                        // them (a copy of a length known only at run time
                        // is a call to `memcpy`, per value), else copied.
                        let word = match self.data.get(at..at + 8) {
                            Some(bytes) => u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])),
                            None => {
                                let have = self.data.get(at..)?;
                                let mut word = [0u8; 8];
                                word[..have.len()].copy_from_slice(have);
                                u64::from_le_bytes(word)
                            }
                        };
                        ((word >> (bit % 8)) & self.mask) as u32
                    }
                });
            }
            self.run += 1;
        }
    }
}

fn read_uleb128(data: &[u8], pos: &mut usize) -> Result<u64, &'static str> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data
            .get(*pos)
            .ok_or("run header past the end of the data")?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("run header longer than 64 bits")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `values` as one bit-packed run (padded to groups of 8).
    fn bit_packed(values: &[u32], width: usize) -> Vec<u8> {
        let groups = values.len().div_ceil(8);
        let mut out = vec![((groups << 1) | 1) as u8];
        let mut bits = vec![false; groups * 8 * width];
        for (i, v) in values.iter().enumerate() {
            for b in 0..width {
                bits[i * width + b] = (v >> b) & 1 == 1;
            }
        }
        for chunk in bits.chunks(8) {
            out.push(
                chunk
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| u8::from(b) << i)
                    .sum(),
            );
        }
        out
    }

    #[test]
    fn repeated_and_packed_runs() {
        let mut data = vec![10 << 1, 7]; // 10 × 7, width 3 → 1 byte
        data.extend(bit_packed(&[1, 2, 3, 4, 5, 6, 7, 0, 1], 3));
        let mut out = Vec::new();
        decode_hybrid(&data, 3, 19, &mut out).unwrap();
        let mut want = vec![7; 10];
        want.extend([1, 2, 3, 4, 5, 6, 7, 0, 1]);
        assert_eq!(out, want);
        // Fewer than stored.
        decode_hybrid(&data, 3, 12, &mut out).unwrap();
        assert_eq!(out, want[..12]);
    }

    #[test]
    fn wide_values_and_long_runs() {
        let values: Vec<u32> = (0..1000u32)
            .map(|i| i.wrapping_mul(2654435761) >> 12)
            .collect();
        let data = bit_packed(&values[..], 20);
        // One header byte cannot hold 125 groups: build a 2-byte header.
        let groups = values.len().div_ceil(8);
        let header = (groups << 1) | 1;
        let mut long = vec![(header as u8 & 0x7f) | 0x80, (header >> 7) as u8];
        long.extend(&data[1..]);
        let mut out = Vec::new();
        decode_hybrid(&long, 20, values.len(), &mut out).unwrap();
        assert_eq!(out, values);
        let mut rle = vec![0xe8, 0x0f]; // 1000 << 1 as ULEB128 = 2000
        rle.extend([0x34, 0x12, 0x05]); // value 0x051234, width 20 → 3 bytes
        decode_hybrid(&rle, 20, 1000, &mut out).unwrap();
        assert!(out.iter().all(|&v| v == 0x051234) && out.len() == 1000);
    }

    #[test]
    fn random_access_equals_bulk_decoding() {
        let values: Vec<u32> = (0..300u32).map(|i| (i * 7919) % 1000).collect();
        let mut data = vec![20 << 1, 0xe7, 0x03]; // 20 × 999, width 10 → 2 bytes
        data.extend(bit_packed(&values, 10));
        data.extend([5 << 1, 0x2a, 0x00]);
        let count = 20 + values.len().div_ceil(8) * 8 + 5;
        let mut all = Vec::new();
        decode_hybrid(&data, 10, count, &mut all).unwrap();
        let mut runs = Vec::new();
        parse_runs(&data, 10, count, &mut runs).unwrap();
        let mut access = HybridValues::new(&data, 10, &runs);
        for i in (0..count).step_by(3) {
            assert_eq!(access.get(i), Some(all[i]), "value {i}");
        }
        assert_eq!(access.get(count), None);
        assert!(parse_runs(&data[..10], 10, count, &mut runs).is_err());
    }

    /// A sink sees the values bulk decoding gives, in order: repeated runs
    /// at once, packed ones in groups of eight but the last.
    #[test]
    fn a_sink_sees_what_bulk_decoding_gives() {
        #[derive(Default)]
        struct Seen {
            values: Vec<u32>,
            groups: Vec<usize>,
            repeated: Vec<usize>,
        }
        impl ValueSink for Seen {
            fn group(&mut self, values: &[u32; 8], n: usize) {
                self.values.extend_from_slice(&values[..n]);
                self.groups.push(n);
            }
            fn repeated(&mut self, value: u32, len: usize) {
                self.values.extend(std::iter::repeat_n(value, len));
                self.repeated.push(len);
            }
        }
        let values: Vec<u32> = (0..301u32).map(|i| (i * 7919) % 1000).collect();
        let mut data = vec![20 << 1, 0xe7, 0x03];
        data.extend(bit_packed(&values, 10));
        data.extend([5 << 1, 0x2a, 0x00]);
        // The packed run holds 304 values (38 groups); take 301 of them.
        let count = 20 + 301;
        let mut all = Vec::new();
        decode_hybrid(&data, 10, count, &mut all).unwrap();
        let mut runs = Vec::new();
        parse_runs(&data, 10, count, &mut runs).unwrap();
        let mut seen = Seen::default();
        visit_runs(&data, 10, &runs, &mut seen);
        assert_eq!(seen.values, all);
        assert_eq!(seen.repeated, [20]);
        assert_eq!(seen.groups.len(), 38);
        assert!(seen.groups[..37].iter().all(|&n| n == 8));
        assert_eq!(seen.groups[37], 5);
    }

    /// Every width, with runs that end inside a group and inside the data.
    #[test]
    fn every_width_unpacks() {
        for width in 1..=32usize {
            let values: Vec<u32> = (0..203u64)
                .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - width)) as u32)
                .collect();
            let data = bit_packed(&values, width);
            for take in [1, 7, 8, 9, 64, 200, 203] {
                let mut out = vec![42];
                decode_hybrid(&data, width as u8, take, &mut out).unwrap();
                assert_eq!(out, values[..take], "width {width}, {take} values");
            }
            // The last group's bytes cut short after its third value.
            let cut = (203 * width).div_ceil(8);
            let mut out = Vec::new();
            decode_hybrid(&data[..1 + cut], width as u8, 203, &mut out).unwrap();
            assert_eq!(out, values, "width {width}, cut data");
        }
    }

    /// The rows of one entry, and whether some index is out of the
    /// dictionary, as a plain comparison of every decoded value gives them:
    /// widths 1 to 16, packed runs cut anywhere, repeated runs between
    /// them, dictionaries of every size around the word tests' limits.
    #[test]
    fn entry_rows_equal_a_comparison_of_every_value() {
        use proptest::prelude::*;
        let case = (1usize..=16).prop_flat_map(|width| {
            let most = 1u32 << width;
            // Dictionaries of any size, and of sizes about the limits of
            // the word tests: 128, and half of what the width can name.
            let half = most as usize / 2;
            let len = prop_oneof![
                1..=most as usize + 3,
                half.saturating_sub(2).max(1)..=half + 2,
                most as usize - 2.min(most as usize - 1)..=most as usize,
            ];
            (
                Just(width),
                prop::collection::vec(0..most, 1..300),
                len,
                0..most,
                prop::collection::vec((0usize..300, 1usize..40, 0..most), 0..3),
                0usize..8,
            )
        });
        proptest!(ProptestConfig::with_cases(2_000), |(
            (width, values, len, entry, inserts, cut) in case
        )| {
            let entry = entry % len as u32;
            // Packed runs of the values, with repeated runs put between
            // them, then a count that ends inside the last group.
            let mut data = Vec::new();
            let mut all = Vec::new();
            let mut from = 0;
            let mut points: Vec<_> = inserts.iter().map(|(at, n, v)| {
                (at.min(&values.len()) / 8 * 8, *n, *v)
            }).collect();
            points.sort();
            for (at, n, v) in points.into_iter().chain([(values.len(), 0, 0)]) {
                if at > from {
                    data.extend(bit_packed(&values[from..at], width));
                    all.extend(&values[from..at]);
                    let padded = (at - from).div_ceil(8) * 8;
                    all.extend(std::iter::repeat_n(0, padded - (at - from)));
                    from = at;
                }
                if n > 0 {
                    data.push((n << 1) as u8);
                    data.extend(&v.to_le_bytes()[..width.div_ceil(8)]);
                    all.extend(std::iter::repeat_n(v, n));
                }
            }
            let count = all.len() - cut.min(all.len() - 1);
            let mut runs = Vec::new();
            parse_runs(&data, width as u8, count, &mut runs).unwrap();
            let mut rows = vec![7];
            let mut sink = entry_rows(entry, len, 100, &mut rows);
            visit_runs(&data, width as u8, &runs, &mut sink);
            let out_of_range = sink.out_of_range();
            let want: Vec<u32> = std::iter::once(7)
                .chain((0..count).filter(|&i| all[i] == entry).map(|i| 100 + i as u32))
                .collect();
            prop_assert_eq!(rows, want);
            prop_assert_eq!(out_of_range, all[..count].iter().any(|&v| v as usize >= len));
        });
    }

    #[test]
    fn malformed_input_is_an_error() {
        let mut out = Vec::new();
        assert!(decode_hybrid(&[], 3, 1, &mut out).is_err());
        assert!(decode_hybrid(&[0x80], 3, 1, &mut out).is_err());
        assert!(decode_hybrid(&[4 << 1], 9, 4, &mut out).is_err()); // value bytes missing
        assert!(decode_hybrid(&[3], 3, 8, &mut out).is_err()); // packed bytes missing
        assert!(decode_hybrid(&[2, 1], 33, 1, &mut out).is_err());
        assert!(decode_hybrid(&[0xff; 20], 3, 1, &mut out).is_err());
        // Zero-length runs forever end with the data.
        assert!(decode_hybrid(&[0, 0, 0, 0], 3, 1, &mut out).is_err());
        decode_hybrid(&[], 0, 5, &mut out).unwrap();
        assert_eq!(out, [0; 5]);
    }
}
