//! Snappy pages of 8-byte values (timestamps) decompressed with a fast path
//! for the way snappy's compressors write a value close to an earlier one.
//!
//! A page of plain `INT64` timestamps in time order barely compresses, yet
//! it is made of many short elements: each value's high bytes repeat those
//! of the value before, so the compressor writes a literal of its low
//! bytes and then a copy of the rest from 8 bytes back. On DuckDB's files
//! of `benches/compare_duckdb.py`, 81% of a timestamp page's 244,000
//! elements are such pairs, and the `snap` crate decodes them one element
//! at a time, about 10 cycles each: that was a third of a batch query's
//! time over DuckDB's 10M-event file, most of it timestamps.
//!
//! [`decompress_words`] takes such a pair at once: a literal of `k` bytes
//! (1 to 4) then a copy of `8 - k` bytes from `d >= 8` bytes back makes
//! the 8 bytes that were made `d` bytes back with their first `k` bytes
//! replaced (the copy's source lies wholly before the literal): one
//! 8-byte load, mask and store. This holds wherever the pair lies, so a
//! page whose values follow its levels (a nullable column's) is served
//! too. Any other element is decoded as the format says
//! (<https://github.com/google/snappy/blob/main/format_description.txt>).
//! On a timestamp page of DuckDB's 10M-event file (row group 1, 983 KB)
//! this took 0.61 ms against `snap`'s 0.96 (a throwaway benchmark, best of
//! 200 alternated); on pages of other data it is slower (event ids: 1.55
//! against 0.92 ms), so it gives up after the first [`CHECK_AT`] bytes when
//! pairs made less than half of them.
//!
//! The input is third-party data: anything malformed, or a block that
//! does not make exactly the bytes asked for, gives `None` and never a
//! panic; the caller then decompresses the block with `snap`, which
//! reports the damage.

use super::snappy_prefix::{little_endian, varint};

/// Bytes made before [`decompress_words`] checks that at least half of
/// them came from the fast path, and gives up otherwise.
const CHECK_AT: usize = 8 << 10;

/// Decompresses the snappy block `input` into `out`, which must be exactly
/// as long as the block says it decompresses to; `None` if it is not, if
/// the block is malformed (see the module docs), or if the first
/// [`CHECK_AT`] bytes show that it does not hold close 8-byte values (the
/// elements other than pairs take about twice `snap`'s time: event ids,
/// 1.55 against 0.92 ms a page).
pub(super) fn decompress_words(input: &[u8], out: &mut [u8]) -> Option<()> {
    let mut start = 0usize;
    let len = usize::try_from(varint(input, &mut start)?).ok()?;
    if len != out.len() {
        return None;
    }
    let (i, p, pairs) = decode(input, out, start, 0, CHECK_AT)?;
    // Mostly other elements: not a page of close values.
    if p >= CHECK_AT && pairs * 8 * 2 < p {
        return None;
    }
    let (_, p, _) = decode(input, out, i, p, usize::MAX)?;
    (p == out.len()).then_some(())
}

/// Decodes the elements of `input` from `i` on into `out` from `p` on,
/// until the input ends or `stop` bytes are made; where it stopped, and
/// how many values the fast path made.
#[inline(always)]
fn decode(
    input: &[u8],
    out: &mut [u8],
    mut i: usize,
    mut p: usize,
    stop: usize,
) -> Option<(usize, usize, usize)> {
    let mut pairs = 0usize;
    while i < input.len() && p < stop {
        // The fast path: a literal of `k` bytes and a one-byte-offset copy
        // of `8 - k` bytes from 8 or more bytes back, read as one
        // little-endian word (tag, literal, tag, offset).
        if let Some(word) = input.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().ok()?);
            let tag = word as u8;
            // A literal of 1 to 4 bytes: tags 0, 4, 8 and 12.
            if tag & 0b1111_0011 == 0 {
                let k = usize::from(tag >> 2) + 1;
                let copy = (word >> (8 * (k + 1))) as u8;
                let offset =
                    usize::from(copy >> 5) << 8 | usize::from((word >> (8 * (k + 2))) as u8);
                let copied = usize::from((copy >> 2) & 0b111) + 4;
                if copy & 0b11 == 0b01
                    && copied + k == 8
                    && offset >= 8
                    && offset <= p
                    && p + 8 <= out.len()
                {
                    let from = p - offset;
                    let earlier = u64::from_le_bytes(out[from..from + 8].try_into().ok()?);
                    let low = (1u64 << (8 * k)) - 1;
                    let value = (earlier & !low) | ((word >> 8) & low);
                    out[p..p + 8].copy_from_slice(&value.to_le_bytes());
                    i += k + 3;
                    p += 8;
                    pairs += 1;
                    continue;
                }
            }
        }
        let tag = input[i];
        match tag & 0b11 {
            0 => {
                // A literal: its length less one in the tag, or in the 1
                // to 4 bytes after it.
                let (minus_one, header) = match usize::from(tag >> 2) {
                    short @ 0..=59 => (short, 1),
                    long => {
                        let bytes = long - 59;
                        let field = input.get(i + 1..i + 1 + bytes)?;
                        (little_endian(field), 1 + bytes)
                    }
                };
                let length = minus_one.checked_add(1)?;
                let from = i + header;
                if length <= 16 && from + 16 <= input.len() && p + 16 <= out.len() {
                    // 16 bytes at once: the bytes past the literal are
                    // made again by the elements after it.
                    out[p..p + 16].copy_from_slice(&input[from..from + 16]);
                } else {
                    let literal = input.get(from..from.checked_add(length)?)?;
                    out.get_mut(p..p.checked_add(length)?)?
                        .copy_from_slice(literal);
                }
                i = from + length;
                p += length;
            }
            kind => {
                let (length, offset, header) = match kind {
                    1 => {
                        let low = *input.get(i + 1)?;
                        let offset = usize::from(tag >> 5) << 8 | usize::from(low);
                        (usize::from((tag >> 2) & 0b111) + 4, offset, 2)
                    }
                    2 => (
                        usize::from(tag >> 2) + 1,
                        little_endian(input.get(i + 1..i + 3)?),
                        3,
                    ),
                    _ => (
                        usize::from(tag >> 2) + 1,
                        little_endian(input.get(i + 1..i + 5)?),
                        5,
                    ),
                };
                if offset == 0 || offset > p || p + length > out.len() {
                    return None;
                }
                let from = p - offset;
                if offset >= 8 && length <= 16 && p + 16 <= out.len() {
                    // Two words, the second read after the first is
                    // written: right even where the copy overlaps what it
                    // makes (its source is 8 bytes back or more). The
                    // bytes past the copy are made again after it.
                    let first: [u8; 8] = out[from..from + 8].try_into().ok()?;
                    out[p..p + 8].copy_from_slice(&first);
                    let second: [u8; 8] = out[from + 8..from + 16].try_into().ok()?;
                    out[p + 8..p + 16].copy_from_slice(&second);
                } else if offset >= length {
                    out.copy_within(from..from + length, p);
                } else {
                    // The copy overlaps what it makes: a byte at a time.
                    for j in 0..length {
                        out[p + j] = out[from + j];
                    }
                }
                i += header;
                p += length;
            }
        }
    }
    Some((i, p, pairs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn compress(data: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(data).unwrap()
    }

    /// What `snap` makes of `block`, if it accepts it.
    fn by_snap(block: &[u8]) -> Option<Vec<u8>> {
        snap::raw::Decoder::new().decompress_vec(block).ok()
    }

    fn ours(block: &[u8]) -> Option<Vec<u8>> {
        let len = snap::raw::decompress_len(block).ok()?;
        let mut out = vec![0u8; len];
        decompress_words(block, &mut out).map(|()| out)
    }

    /// Time-ordered timestamps in µs, `gap` apart on average: each value
    /// shares its high bytes with the one before.
    fn timestamps(n: usize, gap: u64, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        let mut t = 1_704_067_200_000_000u64;
        (0..n)
            .flat_map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                t += state % (2 * gap + 1);
                t.to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn timestamps_decode_as_snap_decodes_them() {
        for (n, gap) in [
            (1, 10),
            (3, 1),
            (1000, 50),
            (100_000, 40_000),
            (30_000, 300),
        ] {
            let data = timestamps(n, gap, n as u64);
            let block = compress(&data);
            assert_eq!(
                ours(&block).as_deref(),
                Some(&data[..]),
                "{n} values, gap {gap}"
            );
        }
        // Values a microsecond or so apart compress otherwise (long
        // copies of repeated high bytes): decoded all the same, or given
        // up on for `snap`.
        let data = timestamps(30_000, 1, 5);
        if let Some(made) = ours(&compress(&data)) {
            assert_eq!(made, data);
        }
    }

    #[test]
    fn values_after_levels_decode_too() {
        // A nullable page's levels first: its values do not start at a
        // multiple of 8.
        for levels in 1..8 {
            let mut data = vec![3u8; levels];
            data.extend(timestamps(5000, 40_000, levels as u64));
            let block = compress(&data);
            assert_eq!(ours(&block), Some(data), "{levels} bytes of levels");
        }
    }

    #[test]
    fn most_of_a_timestamp_page_takes_the_fast_path() {
        // The compressor's pairs, as the module docs describe them: a
        // literal of the low bytes, a copy from 8 bytes back.
        let data = timestamps(10_000, 40_000, 7);
        let block = compress(&data);
        // Fewer bytes than two elements of 8 would take: pairs of 6.
        assert!(block.len() < data.len() * 6 / 8 + 1000, "{}", block.len());
        assert_eq!(ours(&block), Some(data));
    }

    #[test]
    fn malformed_blocks_give_none() {
        let data = timestamps(1000, 50, 3);
        let block = compress(&data);
        // Cut short, a wrong length, a copy from before the start.
        assert_eq!(ours(&block[..block.len() - 3]), None);
        let mut out = vec![0u8; data.len() - 1];
        assert_eq!(decompress_words(&block, &mut out), None);
        assert_eq!(ours(&[8, 0b0000_0101, 8]), None);
        assert_eq!(ours(&[]), None);
        assert_eq!(ours(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), None);
    }

    proptest! {
        /// Any data: the same bytes as `snap`.
        #[test]
        fn any_data_decodes_as_snap_decodes_it(
            data in prop::collection::vec(prop_oneof![Just(0u8), Just(1), any::<u8>()], 0..3000),
            repeat in 0usize..4,
        ) {
            let data: Vec<u8> = data.iter().copied().cycle().take(data.len() * (repeat + 1)).collect();
            let block = compress(&data);
            // Data that is not close 8-byte values may be given up on.
            if let Some(made) = ours(&block) {
                prop_assert_eq!(made, data);
            }
        }

        /// Values that are close, with odd lengths and other values mixed
        /// in: the same bytes as `snap`.
        #[test]
        fn mixed_words_decode_as_snap_decodes_them(
            n in 0usize..3000,
            gap in 1u64..100_000,
            seed in any::<u64>(),
            noise in prop::collection::vec(any::<u8>(), 0..40),
            at in 0usize..24_000,
        ) {
            let mut data = timestamps(n, gap, seed);
            let at = at.min(data.len());
            data.splice(at..at, noise);
            let block = compress(&data);
            match ours(&block) {
                Some(made) => prop_assert_eq!(made, data),
                // Values a millisecond or more apart are pairs enough
                // not to be given up on.
                None => prop_assert!(gap < 1000 || n < 2 * CHECK_AT / 8, "{n} values, gap {gap}"),
            }
        }

        /// Damaged blocks: never a panic, and never other bytes than
        /// `snap` makes of the same block.
        #[test]
        fn damaged_blocks_never_panic(
            n in 1usize..500,
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut block = compress(&timestamps(n, 1000, n as u64));
            for (at, byte) in flips {
                let at = at.index(block.len());
                block[at] = byte;
            }
            let cut = cut.index(block.len() + 1);
            block.truncate(cut.max(1));
            if let Some(made) = ours(&block) {
                prop_assert_eq!(Some(made), by_snap(&block));
            }
        }
    }
}
