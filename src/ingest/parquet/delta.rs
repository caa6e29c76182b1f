//! Parquet's delta encodings, decoded into the plain layout that the
//! selective reader (`selected`) reads.
//!
//! Writers of data page v2 use them where a dictionary does not pay:
//! DuckDB's `PARQUET_VERSION v2` writes timestamps as `DELTA_BINARY_PACKED`
//! and event ids as `DELTA_LENGTH_BYTE_ARRAY`; parquet-rs and parquet-mr
//! write strings as `DELTA_BYTE_ARRAY`. Each value of such a page depends
//! on the ones before it, so a page is decoded whole, once, into the bytes
//! a plain page would hold (8-byte little-endian integers; strings as a
//! 4-byte length and their bytes), and is then read by position like one;
//! a reader that wants only its first rows decodes only as far as them,
//! and one that wants rows from the middle of a page on (a flow's, in a
//! page of a whole row group) writes out only the values from them on.
//! A `DELTA_BYTE_ARRAY` page of ids that a query compares with a few
//! values (a flow's conversation) is matched as it is stored
//! ([`prefixed_strings_matching`]), without writing its strings out.
//!
//! The input is untrusted: every count, width and length is checked
//! against the bytes there are, nothing is allocated by a count the page
//! claims, and damage is an error (a message without the column, which the
//! caller adds), never a panic.

use std::ops::Range;

/// Why a page could not be decoded.
pub(super) type DeltaError = String;

/// Reads the ULEB128 integer at `*pos`.
fn uleb(data: &[u8], pos: &mut usize) -> Result<u64, DeltaError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(*pos).ok_or("a delta header is cut short")?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a delta header integer is too long".into())
}

/// Reads the zigzag-encoded ULEB128 integer at `*pos`.
fn zigzag(data: &[u8], pos: &mut usize) -> Result<i64, DeltaError> {
    let v = uleb(data, pos)?;
    Ok((v >> 1) as i64 ^ -((v & 1) as i64))
}

/// The `width`-bit value number `i` of the bit-packed bytes `packed`
/// (least significant bit first); bits past the end read as 0.
#[inline]
fn unpack(packed: &[u8], width: u32, i: usize) -> u64 {
    let bit = i * width as usize;
    let start = bit / 8;
    let mask = if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    // Eight bytes hold the value whenever it is at most 56 bits wide (it
    // starts at most 7 bits into them).
    if let Some(word) = packed.get(start..start + 8).filter(|_| width <= 56) {
        let word = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        return (word >> (bit % 8)) & mask;
    }
    let mut window = [0u8; 16];
    let available = packed.len().saturating_sub(start).min(16);
    window[..available].copy_from_slice(&packed[start..start + available]);
    (u128::from_le_bytes(window) >> (bit % 8)) as u64 & mask
}

/// Unpacks the `out.len()` deltas of `width` bits from number `first` on
/// of the bit-packed bytes `packed`, adds `min_delta` to each and sums
/// them onto `last` into `out`; returns the last value.
///
/// One word is read per value where the bytes after the last one hold a
/// whole word (every miniblock but a page's last); the others are read by
/// [`unpack`].
#[inline]
fn unpack_sums(
    packed: &[u8],
    width: u32,
    first: usize,
    min_delta: i64,
    mut last: i64,
    out: &mut [i64],
) -> i64 {
    let Some(end) = first.checked_add(out.len()) else {
        return last;
    };
    let w = width as usize;
    let last_byte = end.saturating_sub(1) * w / 8;
    if width <= 56 && last_byte + 8 <= packed.len() {
        let mask = (1u64 << width) - 1;
        for (i, value) in (first..end).zip(out.iter_mut()) {
            let bit = i * w;
            let start = bit / 8;
            let word = packed[start..start + 8]
                .try_into()
                .map(u64::from_le_bytes)
                .unwrap_or(0);
            last = last.wrapping_add(min_delta.wrapping_add(((word >> (bit % 8)) & mask) as i64));
            *value = last;
        }
    } else {
        for (i, value) in (first..end).zip(out.iter_mut()) {
            last = last.wrapping_add(min_delta.wrapping_add(unpack(packed, width, i) as i64));
            *value = last;
        }
    }
    last
}

/// How many values [`IntRun::block`] gives to its `push` at a time, at
/// most.
const GIVEN_AT_ONCE: usize = 128;

/// Decodes the `count` values of a `DELTA_BINARY_PACKED` run at the start
/// of `data` into `out` (appended); returns the bytes the run takes.
#[cfg(test)]
fn decode_ints(data: &[u8], count: usize, out: &mut Vec<i64>) -> Result<usize, DeltaError> {
    decode_first_ints(data, count, count, out)
}

/// Decodes the first `keep` of the `count` values of a
/// `DELTA_BINARY_PACKED` run at the start of `data` into `out`
/// (appended), and returns the bytes the run takes: the other values are
/// stepped over by their miniblocks' widths, not unpacked.
fn decode_first_ints(
    data: &[u8],
    count: usize,
    keep: usize,
    out: &mut Vec<i64>,
) -> Result<usize, DeltaError> {
    let keep = keep.min(count);
    out.reserve(keep.min(data.len().saturating_mul(8) + 1));
    decode_ints_with(data, count, keep, RunEnd::Wanted, |values| {
        out.extend_from_slice(values)
    })
}

/// Whether a walk of a `DELTA_BINARY_PACKED` run goes on to its end.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum RunEnd {
    /// Every miniblock's header is read (and checked), to find where the
    /// run ends: a string page's bytes follow it.
    Wanted,
    /// The walk stops at the miniblock of the last value kept: the bytes
    /// after it need not be there (a page decompressed in part).
    NotWanted,
}

/// Walks the `count` values of a `DELTA_BINARY_PACKED` run at the start
/// of `data`, giving the first `keep` (at most `count`) to `push` (some
/// at a time, in order);
/// returns the bytes the run takes (with [`RunEnd::NotWanted`], the bytes
/// walked).
fn decode_ints_with(
    data: &[u8],
    count: usize,
    keep: usize,
    end: RunEnd,
    mut push: impl FnMut(&[i64]),
) -> Result<usize, DeltaError> {
    let (mut run, mut pos) = IntRun::start(data, count, keep, &mut push)?;
    while !run.is_over(end) {
        let Some(block) = data.get(pos..) else {
            return Err(BLOCK_CUT_SHORT.into());
        };
        match run.block(block, end, &mut push)? {
            Some(used) => pos += used,
            None => return Err(BLOCK_CUT_SHORT.into()),
        }
    }
    Ok(pos)
}

/// The error of a run whose bytes end inside a block.
const BLOCK_CUT_SHORT: &str = "a delta block is cut short";

/// A walk through a `DELTA_BINARY_PACKED` run a block at a time, each
/// block from bytes of its own: the bytes of a page decompressed in part,
/// or those a [`super::page_walk::PageWindow`] holds at the time, which
/// forgets the blocks behind.
pub(super) struct IntRun {
    per_miniblock: usize,
    miniblocks: usize,
    /// Values still to walk, after the first (which the header holds).
    left: usize,
    /// Values still to give to `push`.
    wanted: usize,
    /// The last value walked.
    last: i64,
}

impl IntRun {
    /// Reads the run's header at the start of `data`, checked against the
    /// page's `count` values, and gives the first value to `push` if
    /// `keep` (at most `count`) is not 0; returns the walk and the bytes
    /// the header takes.
    pub(super) fn start(
        data: &[u8],
        count: usize,
        keep: usize,
        push: &mut impl FnMut(&[i64]),
    ) -> Result<(Self, usize), DeltaError> {
        let mut pos = 0;
        let block_size = uleb(data, &mut pos)?;
        let miniblocks = uleb(data, &mut pos)?;
        let total = uleb(data, &mut pos)?;
        let first = zigzag(data, &mut pos)?;
        if block_size == 0 || block_size % 128 != 0 || block_size > 1 << 20 {
            return Err(format!("a delta block of {block_size} values"));
        }
        if miniblocks == 0 || block_size % miniblocks != 0 || (block_size / miniblocks) % 32 != 0 {
            return Err(format!(
                "{miniblocks} miniblocks in a delta block of {block_size} values"
            ));
        }
        // A page's run holds its values exactly; the bytes after it (a
        // string page's) are found only by decoding all of them.
        if total != count as u64 {
            return Err(format!("{total} delta values where the page has {count}"));
        }
        let keep = keep.min(count);
        if keep > 0 {
            push(&[first]);
        }
        let run = Self {
            per_miniblock: (block_size / miniblocks) as usize,
            miniblocks: miniblocks as usize,
            left: count.saturating_sub(1),
            wanted: keep.saturating_sub(1),
            last: first,
        };
        Ok((run, pos))
    }

    /// Whether the walk is over: every value walked, or with
    /// [`RunEnd::NotWanted`], every value kept.
    pub(super) fn is_over(&self, end: RunEnd) -> bool {
        self.left == 0 || (self.wanted == 0 && end == RunEnd::NotWanted)
    }

    /// Walks the block at the start of `data`, giving the values still
    /// kept to `push`: the bytes it takes, or `None`, having walked
    /// nothing, when `data` ends before them (with [`RunEnd::NotWanted`],
    /// before the miniblock of the last value kept).
    pub(super) fn block(
        &mut self,
        data: &[u8],
        end: RunEnd,
        push: &mut impl FnMut(&[i64]),
    ) -> Result<Option<usize>, DeltaError> {
        let mut pos = 0;
        let min_delta = match zigzag(data, &mut pos) {
            Ok(min_delta) => min_delta,
            Err(_) if pos >= data.len() => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(widths) = data.get(pos..pos + self.miniblocks) else {
            return Ok(None);
        };
        pos += self.miniblocks;
        // The miniblocks walked, and their bytes: all must be there before
        // any value is given.
        let (mut left, mut wanted, mut length, mut walked) = (self.left, self.wanted, 0, 0);
        for &width in widths {
            if left == 0 || (wanted == 0 && end == RunEnd::NotWanted) {
                break;
            }
            if width > 64 {
                return Err(format!("a delta miniblock of {width}-bit values"));
            }
            length += self.per_miniblock * usize::from(width) / 8;
            let n = left.min(self.per_miniblock);
            (left, wanted, walked) = (left - n, wanted - n.min(wanted), walked + 1);
        }
        if data.len() < pos + length {
            return Ok(None);
        }
        let mut values = [0i64; GIVEN_AT_ONCE];
        for &width in &widths[..walked] {
            let width = u32::from(width);
            // Unpacked from the miniblock on to the end of the data: a
            // value near its end is then read as one word like the others
            // (the bits past it are masked off).
            let packed = &data[pos..];
            pos += self.per_miniblock * width as usize / 8;
            let n = self.left.min(self.per_miniblock);
            let given = n.min(self.wanted);
            for first in (0..given).step_by(GIVEN_AT_ONCE) {
                let values = &mut values[..(given - first).min(GIVEN_AT_ONCE)];
                self.last = unpack_sums(packed, width, first, min_delta, self.last, values);
                push(values);
            }
            self.wanted -= given;
            self.left -= n;
        }
        // (A block's miniblocks past the run's last value hold no bytes.)
        Ok(Some(pos))
    }
}

/// Appends a plain-encoded string (4-byte length, then its bytes).
#[inline]
fn put_plain(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

/// Checks that `lengths` (of strings) are valid and sum to at most
/// `available` bytes.
fn total_length(lengths: &[i64], available: usize) -> Result<(), DeltaError> {
    let mut total = 0usize;
    for &len in lengths {
        let len = usize::try_from(len).map_err(|_| format!("a string of length {len}"))?;
        total = total
            .checked_add(len)
            .filter(|&t| t <= available)
            .ok_or("delta-encoded strings run past the page")?;
    }
    Ok(())
}

/// Writes the values `wanted` (a range of positions, at most `count`) of
/// the `count` values of a `DELTA_BINARY_PACKED` page of integers into
/// `out` (emptied first), as plain 8-byte little-endian values. The values
/// before them are summed but not written; the page's bytes after the
/// miniblock of the last value wanted are not read, and need not be there:
/// a reader that wants a few rows of a page decompresses it only so far.
pub(super) fn ints_as_plain(
    data: &[u8],
    count: usize,
    wanted: Range<usize>,
    out: &mut Vec<u8>,
) -> Result<(), DeltaError> {
    let (skip, keep) = span(&wanted, count);
    emptied_for(out, (keep - skip).min(data.len().saturating_mul(8) + 1) * 8);
    decode_ints_with(data, count, keep, RunEnd::NotWanted, plain_from(skip, out))?;
    Ok(())
}

/// A `push` for a walk of integers that appends them, from the one at
/// position `skip` on, to `out` as plain 8-byte little-endian values.
pub(super) fn plain_from(skip: usize, out: &mut Vec<u8>) -> impl FnMut(&[i64]) + '_ {
    let mut at = 0usize;
    move |values| {
        let from = skip.saturating_sub(at).min(values.len());
        at += values.len();
        put_ints_plain(&values[from..], out);
    }
}

/// Appends `values` to `out` as plain 8-byte little-endian values.
fn put_ints_plain(values: &[i64], out: &mut Vec<u8>) {
    if cfg!(target_endian = "little") {
        // The values' own bytes are the plain layout.
        use arrow_buffer::ToByteSlice;
        out.extend_from_slice(values.to_byte_slice());
    } else {
        for value in values {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
}

/// Empties `out` to receive about `bytes` bytes. A buffer with less room
/// is replaced rather than grown: growing an emptied buffer would copy
/// every byte of its old room, none of them wanted.
pub(super) fn emptied_for(out: &mut Vec<u8>, bytes: usize) {
    out.clear();
    if out.capacity() < bytes {
        *out = Vec::with_capacity(bytes);
    }
}

/// `wanted` as (values skipped, values decoded), within `count`.
fn span(wanted: &Range<usize>, count: usize) -> (usize, usize) {
    let keep = wanted.end.min(count);
    (wanted.start.min(keep), keep)
}

/// The lengths of the strings `skip..keep` of the `count` of a
/// `DELTA_LENGTH_BYTE_ARRAY` run at the start of `data`, checked, and the
/// bytes from string `skip`'s on (the strings' bytes follow the run). The
/// lengths of the strings before are summed, not kept.
fn lengths_and_bytes(
    data: &[u8],
    count: usize,
    skip: usize,
    keep: usize,
) -> Result<(Vec<i64>, &[u8]), DeltaError> {
    let lengths = string_lengths(data, count, skip, keep)?;
    let bytes = data[lengths.run..]
        .get(lengths.before..)
        .ok_or("delta-encoded strings run past the page")?;
    total_length(&lengths.kept, bytes.len())?;
    Ok((lengths.kept, bytes))
}

/// Where the strings `skip..keep` of a `DELTA_LENGTH_BYTE_ARRAY` page lie,
/// from its run of lengths ([`string_lengths`]).
pub(super) struct StringLengths {
    /// The bytes the run of lengths takes: the strings' bytes follow.
    pub(super) run: usize,
    /// The bytes of the strings before `skip`.
    pub(super) before: usize,
    /// The lengths of the strings `skip..keep` (not checked: see
    /// [`StringLengths::kept_bytes`]).
    pub(super) kept: Vec<i64>,
}

impl StringLengths {
    /// The bytes of the kept strings, checked to be lengths and to fit in
    /// `available` bytes after those of the strings before.
    pub(super) fn kept_bytes(&self, available: usize) -> Result<usize, DeltaError> {
        let available = available
            .checked_sub(self.before)
            .ok_or("delta-encoded strings run past the page")?;
        total_length(&self.kept, available)?;
        Ok(self.kept.iter().map(|&len| len as usize).sum())
    }
}

/// Reads the run of lengths at the start of `data` (all of it must be
/// there; the strings' bytes after it need not) of a page of `count`
/// `DELTA_LENGTH_BYTE_ARRAY` strings: the lengths of the strings before
/// `skip` are summed, those of `skip..keep` kept.
pub(super) fn string_lengths(
    data: &[u8],
    count: usize,
    skip: usize,
    keep: usize,
) -> Result<StringLengths, DeltaError> {
    let mut kept = Vec::with_capacity((keep - skip).min(data.len()));
    let mut before = Some(0usize);
    let push = lengths_from(skip, &mut before, &mut kept);
    let run = decode_ints_with(data, count, keep, RunEnd::Wanted, push)?;
    let before = before.ok_or("a string of negative length")?;
    Ok(StringLengths { run, before, kept })
}

/// A `push` for a walk of string lengths: the lengths before position
/// `skip` are summed into `before` (`None` once one is negative, as
/// the bytes of the strings skipped), the others appended to `kept`.
pub(super) fn lengths_from<'a>(
    skip: usize,
    before: &'a mut Option<usize>,
    kept: &'a mut Vec<i64>,
) -> impl FnMut(&[i64]) + 'a {
    let mut at = 0usize;
    move |lengths| {
        let from = skip.saturating_sub(at).min(lengths.len());
        at += lengths.len();
        for &len in &lengths[..from] {
            *before = before.and_then(|b| b.checked_add(usize::try_from(len).ok()?));
        }
        kept.extend_from_slice(&lengths[from..]);
    }
}

/// Writes the strings `bytes` holds one after the other, of `lengths`
/// (checked to be lengths and to fit), into `out`, plain-encoded.
pub(super) fn put_strings_plain(bytes: &[u8], lengths: &[i64], out: &mut Vec<u8>) {
    let mut at = 0;
    for &len in lengths {
        let len = len as usize;
        put_plain(out, &bytes[at..at + len]);
        at += len;
    }
}

/// Writes the strings `wanted` (a range of positions, at most `count`) of
/// the `count` strings of a `DELTA_LENGTH_BYTE_ARRAY` page into `out`
/// (emptied first), plain-encoded; the lengths of the strings before them
/// are summed and those after stepped over, not unpacked, and the bytes
/// of neither are read.
pub(super) fn length_strings_as_plain(
    data: &[u8],
    count: usize,
    wanted: Range<usize>,
    out: &mut Vec<u8>,
) -> Result<(), DeltaError> {
    out.clear();
    let (skip, keep) = span(&wanted, count);
    let (lengths, bytes) = lengths_and_bytes(data, count, skip, keep)?;
    // Checked by `lengths_and_bytes`: each is at least 0, and their sum
    // at most the bytes there are.
    let kept_bytes: usize = lengths.iter().map(|&len| len as usize).sum();
    emptied_for(out, kept_bytes + 4 * lengths.len());
    put_strings_plain(bytes, &lengths, out);
    Ok(())
}

/// Writes the strings `wanted` (a range of positions, at most `count`) of
/// the `count` strings of a `DELTA_BYTE_ARRAY` page (each the previous
/// one's prefix and a suffix of its own) into `out` (emptied first),
/// plain-encoded. The strings before them are rebuilt, not written.
pub(super) fn prefixed_strings_as_plain(
    data: &[u8],
    count: usize,
    wanted: Range<usize>,
    out: &mut Vec<u8>,
) -> Result<(), DeltaError> {
    out.clear();
    let (skip, keep) = span(&wanted, count);
    let mut prefixes = Vec::new();
    let used = decode_first_ints(data, count, keep, &mut prefixes)?;
    // The suffixes are a `DELTA_LENGTH_BYTE_ARRAY` run.
    let (suffixes, bytes) = lengths_and_bytes(&data[used..], count, 0, keep)?;
    let mut value: Vec<u8> = Vec::new();
    let mut at = 0;
    for (i, (prefix, suffix)) in prefixes.into_iter().zip(suffixes).enumerate() {
        let prefix = usize::try_from(prefix)
            .ok()
            .filter(|&p| p <= value.len())
            .ok_or("a delta string's prefix is longer than the string before it")?;
        let suffix = suffix as usize; // checked by `lengths_and_bytes`
        value.truncate(prefix);
        value.extend_from_slice(&bytes[at..at + suffix]);
        at += suffix;
        if i >= skip {
            put_plain(out, &value);
        }
    }
    Ok(())
}

/// Finds which of the `count` strings of a `DELTA_BYTE_ARRAY` page are
/// one of `targets` without writing any of them out: `found(i)` is called
/// with the position of each that is, in order.
///
/// Each string is the previous one's first `prefix` bytes and a suffix of
/// its own. For each target this keeps how many leading bytes the previous
/// string shares with it; a string whose prefix reaches past that shares
/// exactly as many (the previous string differs from the target there, or
/// holds it whole), and only one whose prefix does not has its suffix
/// compared. A page of ids, which share long prefixes, is then matched a
/// few bytes per string. The page is checked as
/// [`prefixed_strings_as_plain`] checks it.
pub(super) fn prefixed_strings_matching(
    data: &[u8],
    count: usize,
    targets: &[&[u8]],
    mut found: impl FnMut(usize),
) -> Result<(), DeltaError> {
    let mut prefixes = Vec::new();
    let used = decode_first_ints(data, count, count, &mut prefixes)?;
    let (suffixes, bytes) = lengths_and_bytes(&data[used..], count, 0, count)?;
    // For each target, the bytes the previous string shares with it.
    let mut shared = vec![0usize; targets.len()];
    let mut previous_len = 0usize;
    let mut at = 0;
    for (i, (prefix, suffix)) in prefixes.into_iter().zip(suffixes).enumerate() {
        let prefix = usize::try_from(prefix)
            .ok()
            .filter(|&p| p <= previous_len)
            .ok_or("a delta string's prefix is longer than the string before it")?;
        let suffix = &bytes[at..at + suffix as usize]; // checked by `lengths_and_bytes`
        at += suffix.len();
        let len = prefix + suffix.len();
        let mut matched = false;
        for (target, shared) in targets.iter().zip(&mut shared) {
            if prefix <= *shared {
                let rest = target.get(prefix..).unwrap_or_default();
                *shared = prefix + common_prefix(suffix, rest);
            }
            matched |= *shared == target.len() && len == target.len();
        }
        if matched {
            found(i);
        }
        previous_len = len;
    }
    Ok(())
}

/// The length of the longest common prefix of `a` and `b`.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    // Eight bytes at a time, then the byte where they differ.
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().unwrap_or([0; 8]));
        let y = u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        if x != y {
            return i + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + a[i..n]
        .iter()
        .zip(&b[i..n])
        .take_while(|(x, y)| x == y)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `DELTA_BINARY_PACKED` run of `values` (blocks of 128 values in 4
    /// miniblocks), written as the format describes, independently of the
    /// decoder.
    fn encode_ints(values: &[i64]) -> Vec<u8> {
        encode_ints_in_blocks(values, 128, 4)
    }

    /// [`encode_ints`] with blocks of `block` values in `miniblocks`.
    fn encode_ints_in_blocks(values: &[i64], block: usize, miniblocks: usize) -> Vec<u8> {
        let per_miniblock = block / miniblocks;
        fn put_uleb(out: &mut Vec<u8>, mut v: u64) {
            loop {
                let byte = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    out.push(byte);
                    return;
                }
                out.push(byte | 0x80);
            }
        }
        let put_zigzag = |out: &mut Vec<u8>, v: i64| put_uleb(out, ((v << 1) ^ (v >> 63)) as u64);
        let mut out = Vec::new();
        put_uleb(&mut out, block as u64);
        put_uleb(&mut out, miniblocks as u64);
        put_uleb(&mut out, values.len() as u64);
        put_zigzag(&mut out, values.first().copied().unwrap_or(0));
        let deltas: Vec<i64> = values.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
        for block in deltas.chunks(block) {
            let min = *block.iter().min().unwrap();
            put_zigzag(&mut out, min);
            let minis: Vec<&[i64]> = block.chunks(per_miniblock).collect();
            let width = |m: &[i64]| {
                m.iter()
                    .map(|d| 64 - (d.wrapping_sub(min) as u64).leading_zeros())
                    .max()
                    .unwrap_or(0)
            };
            for i in 0..miniblocks {
                out.push(minis.get(i).map_or(0, |m| width(m)) as u8);
            }
            for m in &minis {
                let w = width(m) as usize;
                let mut bits = vec![0u8; per_miniblock * w / 8];
                for (i, d) in m.iter().enumerate() {
                    let v = d.wrapping_sub(min) as u64;
                    for b in 0..w {
                        if v >> b & 1 == 1 {
                            let bit = i * w + b;
                            bits[bit / 8] |= 1 << (bit % 8);
                        }
                    }
                }
                out.extend(bits);
            }
        }
        out
    }

    /// The first integers of a page decode from the bytes up to the end
    /// of their miniblock: the rest of the page need not be decompressed.
    #[test]
    fn the_first_integers_decode_without_the_rest_of_the_page() {
        let values: Vec<i64> = (0..2_000).map(|i| 1_700_000_000 + i * 37 + i % 5).collect();
        let page = encode_ints(&values);
        let shortest = (0..=page.len())
            .find(|&cut| first_as_plain(ints_as_plain, &page[..cut], values.len(), 10).is_ok())
            .unwrap();
        assert!(shortest < page.len() / 20, "{shortest} of {}", page.len());
        let part = first_as_plain(ints_as_plain, &page[..shortest], values.len(), 10).unwrap();
        let whole = as_plain(ints_as_plain, &page, values.len()).unwrap();
        assert_eq!(&part[..], first_plain(&whole, 10, Some(8)));
        // The whole page is still checked when every value is wanted.
        assert!(as_plain(ints_as_plain, &page[..page.len() - 1], values.len()).is_err());
    }

    /// One of the `*_as_plain` decoders.
    type PlainDecoder = fn(&[u8], usize, Range<usize>, &mut Vec<u8>) -> Result<(), DeltaError>;

    /// What `decode` writes of all `count` values into a buffer holding
    /// something already.
    fn as_plain(decode: PlainDecoder, data: &[u8], count: usize) -> Result<Vec<u8>, DeltaError> {
        first_as_plain(decode, data, count, count)
    }

    /// [`as_plain`] of the first `keep` values only.
    fn first_as_plain(
        decode: PlainDecoder,
        data: &[u8],
        count: usize,
        keep: usize,
    ) -> Result<Vec<u8>, DeltaError> {
        span_as_plain(decode, data, count, 0..keep)
    }

    /// What `decode` writes of the values `wanted` into a buffer holding
    /// something already.
    fn span_as_plain(
        decode: PlainDecoder,
        data: &[u8],
        count: usize,
        wanted: Range<usize>,
    ) -> Result<Vec<u8>, DeltaError> {
        let mut out = b"left over".to_vec();
        decode(data, count, wanted, &mut out).map(|()| out)
    }

    /// The first `keep` plain values of `plain` (8-byte integers when
    /// `width` is 8, else length-prefixed strings).
    fn first_plain(plain: &[u8], keep: usize, width: Option<usize>) -> &[u8] {
        let mut at = 0;
        for _ in 0..keep {
            at += match width {
                Some(w) => w,
                None => 4 + u32::from_le_bytes(plain[at..at + 4].try_into().unwrap()) as usize,
            };
        }
        &plain[..at]
    }

    /// A `DELTA_BYTE_ARRAY` page of `values`, each sharing with the one
    /// before it as long a prefix as there is.
    fn encode_prefixed(values: &[String]) -> Vec<u8> {
        let mut prefixes = Vec::new();
        let mut previous: &[u8] = b"";
        for v in values {
            let v = v.as_bytes();
            prefixes.push(v.iter().zip(previous).take_while(|(a, b)| a == b).count());
            previous = v;
        }
        let suffixes: Vec<&[u8]> = values
            .iter()
            .zip(&prefixes)
            .map(|(v, &p)| &v.as_bytes()[p..])
            .collect();
        let mut page = encode_ints(&prefixes.iter().map(|&p| p as i64).collect::<Vec<_>>());
        page.extend(encode_ints(
            &suffixes.iter().map(|s| s.len() as i64).collect::<Vec<_>>(),
        ));
        page.extend(suffixes.concat());
        page
    }

    /// The positions of the strings of a `DELTA_BYTE_ARRAY` page that are
    /// among `targets`, found by decoding them and comparing each.
    fn naive_matches(page: &[u8], count: usize, targets: &[&[u8]]) -> Vec<usize> {
        let plain = as_plain(prefixed_strings_as_plain, page, count).unwrap();
        let mut found = Vec::new();
        let mut at = 0;
        for i in 0..count {
            let len = u32::from_le_bytes(plain[at..at + 4].try_into().unwrap()) as usize;
            if targets.contains(&&plain[at + 4..at + 4 + len]) {
                found.push(i);
            }
            at += 4 + len;
        }
        found
    }

    fn matches(page: &[u8], count: usize, targets: &[&[u8]]) -> Result<Vec<usize>, DeltaError> {
        let mut found = Vec::new();
        prefixed_strings_matching(page, count, targets, |i| found.push(i)).map(|()| found)
    }

    #[test]
    fn prefixed_strings_are_matched_without_decoding_them() {
        let values: Vec<String> = [
            "c1", "c10", "c100", "c1", "c2t49", "c2t49", "c2t4", "c2t490", "", "c2t49", "d",
        ]
        .iter()
        .map(|v| v.to_string())
        .collect();
        let page = encode_prefixed(&values);
        for targets in [
            vec![&b"c2t49"[..]],
            vec![b"c1", b"c100"],
            vec![b""],
            vec![b"c2t4", b"d", b"zzz"],
            vec![b"c"],
            vec![],
        ] {
            let want = naive_matches(&page, values.len(), &targets);
            assert_eq!(matches(&page, values.len(), &targets).unwrap(), want);
        }
        assert_eq!(
            matches(&page, values.len(), &[b"c2t49"]).unwrap(),
            [4, 5, 9]
        );
        // Damage is an error, as decoding finds it.
        let mut bad = encode_ints(&[0, 3]);
        bad.extend(encode_ints(&[1, 1]));
        bad.extend(b"ab");
        assert!(matches(&bad, 2, &[b"a"]).is_err());
        assert!(matches(&page, values.len() + 1, &[b"a"]).is_err());
        for cut in 0..page.len() {
            assert!(
                matches(&page[..cut], values.len(), &[b"c1"]).is_err(),
                "{cut}"
            );
        }
    }

    #[test]
    fn integers_round_trip() {
        let cases: Vec<Vec<i64>> = vec![
            vec![],
            vec![7],
            (0..1000)
                .map(|i| 1_700_000_000_000_000 + i * 1_003)
                .collect(),
            (0..300)
                .map(|i| if i % 2 == 0 { i64::MAX } else { i64::MIN })
                .collect(),
            (0..129).map(|i| (i * 7919) % 251 - 100).collect(),
        ];
        for values in cases {
            let mut encoded = encode_ints(&values);
            let end = encoded.len();
            encoded.extend_from_slice(b"after");
            let mut out = Vec::new();
            let used = decode_ints(&encoded, values.len(), &mut out).unwrap();
            assert_eq!(out, values);
            assert_eq!(used, end, "{} values", values.len());
        }
    }

    /// A run walked a block at a time, from bytes that reach a little way
    /// past each block (as a window onto a page gives them), gives the
    /// values the whole run decodes to, and the same end; a block whose
    /// bytes end early walks nothing and asks for more.
    #[test]
    fn a_run_walked_a_block_at_a_time_is_the_run_decoded_whole() {
        let values: Vec<i64> = (0..1_000)
            .map(|i| 1_700_000_000_000_000 + i * 7_919 + (i * 2_654_435_761) % 1_000_003)
            .collect();
        let encoded = encode_ints(&values);
        for (reach, keep, end) in [
            (1, 1_000, RunEnd::Wanted),
            (7, 1_000, RunEnd::Wanted),
            (4_000, 1_000, RunEnd::Wanted),
            (5, 517, RunEnd::NotWanted),
            (64, 0, RunEnd::NotWanted),
        ] {
            let mut out = Vec::new();
            let mut push = |v: &[i64]| out.extend_from_slice(v);
            let (mut run, mut pos) =
                IntRun::start(&encoded, values.len(), keep, &mut push).unwrap();
            let mut asks = 0;
            let mut ask = reach;
            while !run.is_over(end) {
                let data = &encoded[pos..(pos + ask).min(encoded.len())];
                match run.block(data, end, &mut push).unwrap() {
                    Some(used) => (pos, ask) = (pos + used, reach),
                    None => (asks, ask) = (asks + 1, ask * 2),
                }
            }
            assert_eq!(out, values[..keep], "reach {reach}");
            if end == RunEnd::Wanted {
                assert_eq!(pos, encoded.len(), "reach {reach}");
            }
            // (Keeping nothing walks nothing with `NotWanted`.)
            if keep > 0 {
                assert_eq!(asks > 0, reach < 1_000, "reach {reach}");
            }
        }
    }

    #[test]
    fn strings_round_trip() {
        let values = [
            "event-0001",
            "event-0002",
            "",
            "event-0100-long-suffix",
            "e",
        ];
        let lengths: Vec<i64> = values.iter().map(|v| v.len() as i64).collect();
        let mut page = encode_ints(&lengths);
        page.extend(values.concat().bytes());
        let plain = as_plain(length_strings_as_plain, &page, values.len()).unwrap();
        let mut want = Vec::new();
        for v in values {
            put_plain(&mut want, v.as_bytes());
        }
        assert_eq!(plain, want);

        let mut prefixes = vec![0i64];
        let mut suffixes = Vec::new();
        for w in values.windows(2) {
            let common = w[0]
                .bytes()
                .zip(w[1].bytes())
                .take_while(|(a, b)| a == b)
                .count();
            prefixes.push(common as i64);
        }
        for (v, &p) in values.iter().zip(&prefixes) {
            suffixes.push(&v[p as usize..]);
        }
        let mut page = encode_ints(&prefixes);
        page.extend(encode_ints(
            &suffixes.iter().map(|s| s.len() as i64).collect::<Vec<_>>(),
        ));
        page.extend(suffixes.concat().bytes());
        assert_eq!(
            as_plain(prefixed_strings_as_plain, &page, values.len()).unwrap(),
            want
        );
        // A prefix longer than the string before it is damage.
        let mut bad = encode_ints(&[0, 3]);
        bad.extend(encode_ints(&[1, 1]));
        bad.extend(b"ab");
        assert!(as_plain(prefixed_strings_as_plain, &bad, 2).is_err());
    }

    #[test]
    fn too_few_values_or_bytes_are_errors() {
        let encoded = encode_ints(&(0..500).collect::<Vec<_>>());
        assert!(decode_ints(&encoded, 501, &mut Vec::new()).is_err());
        assert!(decode_ints(&encoded, 499, &mut Vec::new()).is_err());
        for cut in 0..encoded.len() {
            assert!(
                decode_ints(&encoded[..cut], 500, &mut Vec::new()).is_err(),
                "{cut}"
            );
        }
        let mut lengths = encode_ints(&[5, 5]);
        lengths.extend(b"abcdefgh"); // 8 bytes, 10 claimed
        assert!(as_plain(length_strings_as_plain, &lengths, 2).is_err());
        let mut negative = encode_ints(&[-1]);
        negative.extend(b"x");
        assert!(as_plain(length_strings_as_plain, &negative, 1).is_err());
        // Among the strings skipped too.
        let mut negative = encode_ints(&[-1, 2]);
        negative.extend(b"xy");
        assert!(span_as_plain(length_strings_as_plain, &negative, 2, 1..2).is_err());
        let mut past = encode_ints(&[3, 1]);
        past.extend(b"xy");
        assert!(span_as_plain(length_strings_as_plain, &past, 2, 1..2).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            count in 0usize..600,
        ) {
            for decode in [
                ints_as_plain as PlainDecoder,
                length_strings_as_plain,
                prefixed_strings_as_plain,
            ] {
                let _ = as_plain(decode, &bytes, count);
                let _ = first_as_plain(decode, &bytes, count, count / 3);
                let _ = span_as_plain(decode, &bytes, count, count / 4..count / 2);
            }
            let _ = matches(&bytes, count, &[b"ab", b""]);
        }

        /// Matching a `DELTA_BYTE_ARRAY` page's strings against a few
        /// targets finds the positions comparing them decoded finds.
        #[test]
        fn prefixed_strings_match_as_they_compare_decoded(
            values in proptest::collection::vec("c[0-9t]{0,5}", 0..300),
            targets in proptest::collection::vec("c[0-9t]{0,4}", 0..4),
            from_values in proptest::collection::vec(0usize..300, 0..3),
        ) {
            let mut targets: Vec<String> = targets;
            targets.extend(from_values.iter().filter_map(|&i| values.get(i).cloned()));
            let targets: Vec<&[u8]> = targets.iter().map(|t| t.as_bytes()).collect();
            let page = encode_prefixed(&values);
            proptest::prop_assert_eq!(
                matches(&page, values.len(), &targets).unwrap(),
                naive_matches(&page, values.len(), &targets)
            );
        }

        /// Decoding the first values of a page gives what decoding it
        /// whole gives for them, for every kind of delta page.
        #[test]
        fn a_page_decoded_in_part_is_a_prefix_of_it_whole(
            values in proptest::collection::vec(0i64..40, 0..400),
            keep in 0usize..420,
            skip in 0usize..420,
            cut in 0usize..5_000,
        ) {
            let keep = keep.min(values.len());
            let skip = skip.min(keep);
            let strings: Vec<String> =
                values.iter().map(|&v| "k".repeat((v % 7) as usize) + &v.to_string()).collect();
            let ints = encode_ints(&values);
            let mut lengths = encode_ints(&strings.iter().map(|s| s.len() as i64).collect::<Vec<_>>());
            lengths.extend(strings.concat().bytes());
            // Prefixes of 0: every string is its own suffix.
            let mut prefixed = encode_ints(&vec![0; values.len()]);
            prefixed.extend_from_slice(&lengths);
            for (decode, page, width) in [
                (ints_as_plain as PlainDecoder, &ints, Some(8)),
                (length_strings_as_plain, &lengths, None),
                (prefixed_strings_as_plain, &prefixed, None),
            ] {
                let whole = as_plain(decode, page, values.len()).unwrap();
                let part = first_as_plain(decode, page, values.len(), keep).unwrap();
                proptest::prop_assert_eq!(&part[..], first_plain(&whole, keep, width));
                // A page cut short (decompressed in part) gives the same
                // values, or an error.
                let cut = &page[..cut.min(page.len())];
                if let Ok(part) = first_as_plain(decode, cut, values.len(), keep) {
                    proptest::prop_assert_eq!(&part[..], first_plain(&whole, keep, width));
                }
                // Values from the middle on are those values of the whole:
                // the ones before are decoded, not written.
                let skipped = first_plain(&whole, skip, width).len();
                let span = span_as_plain(decode, page, values.len(), skip..keep).unwrap();
                proptest::prop_assert_eq!(&span[..], &first_plain(&whole, keep, width)[skipped..]);
                if let Ok(span) = span_as_plain(decode, cut, values.len(), skip..keep) {
                    proptest::prop_assert_eq!(&span[..], &first_plain(&whole, keep, width)[skipped..]);
                }
            }
        }

        /// Deltas of any width up to 57 bits (width 0 included).
        #[test]
        fn integers_of_any_delta_width_round_trip(
            bits in 0u32..58,
            deltas in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..700),
            start in proptest::prelude::any::<i64>(),
        ) {
            let mask = (1u64 << bits) - 1;
            let values: Vec<i64> = deltas
                .iter()
                .scan(start, |last, &d| {
                    *last = last.wrapping_add((d & mask) as i64);
                    Some(*last)
                })
                .collect();
            let mut out = Vec::new();
            let encoded = encode_ints(&values);
            let used = decode_ints(&encoded, values.len(), &mut out).unwrap();
            proptest::prop_assert_eq!(out, values);
            proptest::prop_assert_eq!(used, encoded.len());
        }

        /// Long miniblocks (as DuckDB writes: more values than a walk
        /// gives at a time) decode whole, and from any value to any
        /// other, as the values they hold.
        #[test]
        fn integers_of_long_miniblocks_decode_in_any_span(
            bits in 0u32..40,
            deltas in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..3_000),
            layout in 0usize..3,
            skip in 0usize..3_000,
            keep in 0usize..3_000,
        ) {
            let (block, miniblocks) = [(2_048, 8), (1_024, 2), (512, 1)][layout];
            let mask = (1u64 << bits) - 1;
            let values: Vec<i64> = deltas
                .iter()
                .scan(-5_000i64, |last, &d| {
                    *last = last.wrapping_add((d & mask) as i64 - (mask / 2) as i64);
                    Some(*last)
                })
                .collect();
            let encoded = encode_ints_in_blocks(&values, block, miniblocks);
            let mut out = Vec::new();
            let used = decode_ints(&encoded, values.len(), &mut out).unwrap();
            proptest::prop_assert_eq!(&out, &values);
            proptest::prop_assert_eq!(used, encoded.len());
            let keep = keep.min(values.len());
            let skip = skip.min(keep);
            let span = span_as_plain(ints_as_plain, &encoded, values.len(), skip..keep).unwrap();
            let plain: Vec<u8> = values[skip..keep].iter().flat_map(|v| v.to_le_bytes()).collect();
            proptest::prop_assert_eq!(span, plain);
        }

        #[test]
        fn any_integers_round_trip(
            values in proptest::collection::vec(proptest::prelude::any::<i64>(), 0..700),
        ) {
            let mut out = Vec::new();
            let encoded = encode_ints(&values);
            let used = decode_ints(&encoded, values.len(), &mut out).unwrap();
            proptest::prop_assert_eq!(out, values);
            proptest::prop_assert_eq!(used, encoded.len());
        }
    }
}
