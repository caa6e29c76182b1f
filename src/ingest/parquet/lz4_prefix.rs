//! The first bytes of an LZ4 page, without decompressing the rest.
//!
//! The sibling of [`super::snappy_prefix`] for pages of Parquet's two LZ4
//! codecs: `LZ4_RAW`, one LZ4 block (DuckDB's and Polars' `lz4`), and the
//! older `LZ4`, which pyarrow and Spark still write for `lz4`: LZ4 blocks
//! in Hadoop's framing, each block behind its uncompressed and compressed
//! sizes as two big-endian `u32`s. An LZ4 block is a stream of sequences,
//! each some literals then a copy from the output already written
//! (<https://github.com/lz4/lz4/blob/dev/doc/lz4_Block_format.md>), so its
//! first `n` output bytes depend only on the sequences that produce them:
//! [`lz4_raw_prefix`] and [`lz4_hadoop_prefix`] decode those and stop. The
//! `lz4_flex` crate, which the `parquet` crate decompresses with, has no
//! such call: it decodes a block whole or fails.
//!
//! The input is untrusted and may be cut short (the caller reads a page's
//! stored bytes in part): anything malformed, or input that ends before
//! the bytes asked for, gives `None` and never a panic; the caller then
//! reads further, and reports the damage once the whole page falls short.

use super::snappy_prefix::copy_back;

/// The first `want` bytes of the `LZ4_RAW` page `input` (one LZ4 block),
/// or `None` if it is malformed or ends before giving them.
pub(super) fn lz4_raw_prefix(input: &[u8], want: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(want);
    block_prefix(input, want, &mut out)?;
    (out.len() == want).then_some(out)
}

/// The first `want` bytes of the Hadoop-framed `LZ4` page `input`, or
/// `None` if it is malformed or ends before giving them.
pub(super) fn lz4_hadoop_prefix(input: &[u8], want: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(want);
    let mut rest = input;
    while out.len() < want {
        let (frame, block) = hadoop_frame(rest)?;
        // A frame read in part ends where the input does.
        let stored = block.get(..frame.stored).unwrap_or(block);
        let goal = want.min(out.len().checked_add(frame.size)?);
        let start = out.len();
        block_prefix(stored, goal, &mut out)?;
        if out.len() < goal {
            return None;
        }
        if goal < want {
            // The whole frame was wanted: it must give its size exactly.
            if out.len() - start != frame.size || stored.len() != frame.stored {
                return None;
            }
            rest = &block[frame.stored..];
        }
    }
    Some(out)
}

/// The sizes a Hadoop LZ4 frame's header gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HadoopFrame {
    /// Bytes the frame's block decompresses to.
    pub size: usize,
    /// Bytes of its block, after the 8-byte header.
    pub stored: usize,
}

/// Bytes of a Hadoop frame's header.
pub(super) const HADOOP_HEADER: usize = 8;

/// The header of the Hadoop frame that opens `input`, and the bytes after
/// it; `None` if fewer than 8 bytes are left.
pub(super) fn hadoop_frame(input: &[u8]) -> Option<(HadoopFrame, &[u8])> {
    let (header, block) = input.split_first_chunk::<HADOOP_HEADER>()?;
    let [a, b, c, d, e, f, g, h] = *header;
    let frame = HadoopFrame {
        size: usize::try_from(u32::from_be_bytes([a, b, c, d])).ok()?,
        stored: usize::try_from(u32::from_be_bytes([e, f, g, h])).ok()?,
    };
    Some((frame, block))
}

/// Decodes the LZ4 block `input` onto `out` until `out` holds `goal`
/// bytes or the input ends; `None` if it is malformed (a copy from before
/// the block's start, or from offset 0). What the block wrote before
/// `out`'s first length is not reachable: its copies reach back at most to
/// where it started.
fn block_prefix(input: &[u8], goal: usize, out: &mut Vec<u8>) -> Option<()> {
    let start = out.len();
    let mut pos = 0usize;
    while out.len() < goal && pos < input.len() {
        let token = input[pos];
        pos += 1;
        let literals = length(input, &mut pos, usize::from(token >> 4))?;
        let end = pos.checked_add(literals)?;
        let take = literals.min(goal - out.len());
        // Literals cut short by the input's end give what they hold.
        let available = input.get(pos..)?;
        out.extend_from_slice(&available[..take.min(available.len())]);
        if out.len() >= goal || end >= input.len() {
            // Done, or the block's last sequence (literals only), or the
            // input ends here.
            return Some(());
        }
        pos = end;
        let offset = input.get(pos..pos + 2)?;
        pos += 2;
        let offset = usize::from(u16::from_le_bytes([offset[0], offset[1]]));
        let length = length(input, &mut pos, usize::from(token & 15))?.checked_add(4)?;
        if offset == 0 || offset > out.len() - start {
            return None;
        }
        let length = length.min(goal - out.len());
        copy_back(out, offset, length);
    }
    Some(())
}

/// A sequence's literal or match length: the token's 4 bits, and when they
/// are all ones, the bytes that follow, up to one below 255.
fn length(input: &[u8], pos: &mut usize, nibble: usize) -> Option<usize> {
    let mut length = nibble;
    if nibble == 15 {
        loop {
            let byte = *input.get(*pos)?;
            *pos += 1;
            length = length.checked_add(usize::from(byte))?;
            if byte != 255 {
                break;
            }
        }
    }
    Some(length)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(data: &[u8]) -> Vec<u8> {
        lz4_flex::block::compress(data)
    }

    /// `data` in Hadoop frames of at most `frame` bytes each.
    fn hadoop(data: &[u8], frame: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in data.chunks(frame.max(1)) {
            let stored = block(part);
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(&(stored.len() as u32).to_be_bytes());
            out.extend_from_slice(&stored);
        }
        out
    }

    /// Levels, long runs (overlapping copies), long literals (extended
    /// lengths) and repeats at a distance.
    fn page() -> Vec<u8> {
        let mut data = vec![3, 0, 0, 0, 0x80, 0x9c, 0x01, 1];
        data.extend(std::iter::repeat_n(b"abcdefgh".as_slice(), 5000).flatten());
        data.extend(std::iter::repeat_n(7u8, 3000));
        data.extend(
            (0..100_000u32).flat_map(|i| (i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes()),
        );
        data.extend((0..50_000u32).flat_map(|i| (i % 977).to_le_bytes()));
        data
    }

    /// A raw block, and Hadoop frames of several sizes: every prefix is
    /// the data's, across frames too, and one longer than the data is none.
    #[test]
    fn a_prefix_is_the_data_s_prefix() {
        let data = page();
        type Prefix = fn(&[u8], usize) -> Option<Vec<u8>>;
        let raw: (Prefix, Vec<u8>) = (lz4_raw_prefix, block(&data));
        let framed = [1_000, 65_536, data.len()].map(|frame| {
            let f: Prefix = lz4_hadoop_prefix;
            (f, hadoop(&data, frame))
        });
        for (prefix, stored) in std::iter::once(raw).chain(framed) {
            for want in [
                0,
                1,
                4,
                9,
                999,
                1_000,
                1_001,
                43_008,
                65_536,
                200_000,
                data.len(),
            ] {
                assert_eq!(
                    prefix(&stored, want).as_deref(),
                    Some(&data[..want]),
                    "{want}"
                );
            }
            assert_eq!(prefix(&stored, data.len() + 1), None);
        }
    }

    #[test]
    fn input_read_in_part_gives_what_it_holds() {
        let data = page();
        let raw = block(&data);
        let framed = hadoop(&data, 65_536);
        for cut in [0, 1, 7, 8, 9, 100, raw.len() / 2, raw.len() - 1] {
            // Whatever the cut, a prefix is the data's or nothing.
            for want in [1, 10, 1_000, 100_000] {
                if let Some(out) = lz4_raw_prefix(&raw[..cut], want) {
                    assert_eq!(out, &data[..want]);
                }
                if let Some(out) = lz4_hadoop_prefix(&framed[..cut.min(framed.len())], want) {
                    assert_eq!(out, &data[..want]);
                }
            }
        }
        // Enough of the stored bytes for a short prefix.
        assert_eq!(
            lz4_raw_prefix(&raw[..raw.len() / 2], 10).as_deref(),
            Some(&data[..10])
        );
    }

    #[test]
    fn malformed_blocks_give_none() {
        // A copy before the start, a copy at offset 0, a frame claiming
        // more than it gives.
        assert_eq!(lz4_raw_prefix(&[0x04, 5, 0], 4), None);
        assert_eq!(lz4_raw_prefix(&[0x14, b'a', 0, 0], 6), None);
        let mut framed = hadoop(b"hello world, hello world", 64);
        framed[3] += 1;
        assert_eq!(lz4_hadoop_prefix(&framed, 25), None);
        assert_eq!(lz4_hadoop_prefix(&[0, 0, 0], 1), None);
    }

    proptest! {
        /// Random bytes (with repeats, so that copies occur) give their
        /// own prefix, and damaged stored bytes never panic.
        #[test]
        fn prefixes_match_and_damage_never_panics(
            seed in proptest::collection::vec(0u8..4, 0..3000),
            want in 0usize..4000,
            flip in any::<(usize, u8)>(),
        ) {
            let data: Vec<u8> = seed.iter().enumerate().map(|(i, &b)| b * (i % 7) as u8).collect();
            let raw = block(&data);
            let framed = hadoop(&data, 700);
            let want_in = want.min(data.len());
            prop_assert_eq!(lz4_raw_prefix(&raw, want_in), Some(data[..want_in].to_vec()));
            prop_assert_eq!(lz4_hadoop_prefix(&framed, want_in), Some(data[..want_in].to_vec()));
            for mut stored in [raw, framed] {
                if !stored.is_empty() {
                    let at = flip.0 % stored.len();
                    stored[at] ^= flip.1;
                }
                let _ = lz4_raw_prefix(&stored, want);
                let _ = lz4_hadoop_prefix(&stored, want);
            }
        }
    }
}
