//! The first bytes of a snappy block, without decompressing the rest.
//!
//! A Parquet data page v1 stores its definition levels at the start of its
//! compressed bytes. To prove that a column chunk holds no null
//! ([`super::null_proof`]), only those few bytes of each page are needed,
//! yet every codec crate decompresses a block whole (snappy is what Spark
//! and pyarrow write by default, and a page is about 1 MiB). Snappy's raw
//! format is a stream of literals and back-references into the output
//! (<https://github.com/google/snappy/blob/main/format_description.txt>),
//! so its first `n` output bytes depend only on the elements that produce
//! them: [`snappy_prefix`] decodes those and stops. The selective reader
//! also reads the start of a dictionary page this way, when the rows it
//! wants name only entries near its start (`super::selected`). A decoding
//! may also forget the bytes behind it ([`SnappyProgress::forget_before`]),
//! so that values far into a page are reached through a window of its
//! latest bytes (`super::page_walk::PageWindow`).
//!
//! The input is untrusted: anything malformed, or input that ends before
//! the bytes asked for, gives `None` and never a panic; the caller then
//! takes the slow path, which reports the damage.

use super::snappy_stride::stride;

/// Bytes past the wanted prefix that [`snappy_prefix`] may write over:
/// it copies short literals and back-references as whole 8- or 16-byte
/// words, which the compiler turns into a load and a store each instead
/// of a call to `memcpy` sized at run time.
pub(super) const SLACK: usize = 16;

/// The most a snappy block expands: a 3-byte copy element makes at most
/// 64 bytes.
const MOST_EXPANSION: usize = 22;

/// The first `want` bytes of the snappy raw block `input` (all of them if
/// it holds fewer), or `None` if the block is malformed before that point.
///
/// Decoded into a buffer of the prefix's size (plus [`SLACK`]), with
/// checked slices only: about as fast as the `snap` crate's decoder of a
/// whole block (a 1 MiB page of timestamps: 0.89 against 0.93 ms; of
/// plain-encoded ids 1.11 against 0.81 ms), and about twice as fast as
/// appending element by element to a growing vector, as it did before.
pub(super) fn snappy_prefix(input: &[u8], want: usize) -> Option<Vec<u8>> {
    let mut progress = SnappyProgress::start(input)?;
    progress.decode_to(input, want)?;
    Some(progress.out)
}

/// A snappy block decoded as far as asked so far, to go on from there: a
/// page is often asked for in growing prefixes (its levels' length, its
/// levels, then its values), each of which would otherwise be decoded
/// from the block's start again.
///
/// It may also forget what it made before a point
/// ([`SnappyProgress::forget_before`]), to decode far into a block through
/// a window of its latest bytes rather than all of them.
#[derive(Debug, Default)]
pub(super) struct SnappyProgress {
    /// The bytes made so far, from `base` on.
    pub(super) out: Vec<u8>,
    /// Where `out` starts in the block's output: the bytes before it are
    /// forgotten, and a copy reaching back to them cannot be made.
    base: usize,
    /// Where the next element's tag is in the block.
    pos: usize,
    /// The block's length as its header states it.
    total: usize,
    /// The rest of an element the last prefix ended within.
    pending: Pending,
}

/// The rest of an element a prefix ended within.
#[derive(Debug, Default, Clone, Copy)]
enum Pending {
    #[default]
    Nothing,
    /// `left` more bytes of a literal, from `from` in the block.
    Literal { from: usize, left: usize },
    /// `left` more bytes of a copy `offset` back.
    Copy { offset: usize, left: usize },
}

impl SnappyProgress {
    /// How many bytes of the block's output are made (forgotten ones
    /// included).
    pub(super) fn made(&self) -> usize {
        self.base + self.out.len()
    }

    /// The block's length as its header states it.
    pub(super) fn total(&self) -> usize {
        self.total
    }

    /// Nothing decoded yet of the block `input` (its header read).
    pub(super) fn start(input: &[u8]) -> Option<Self> {
        let mut pos = 0usize;
        let total = usize::try_from(varint(input, &mut pos)?).ok()?;
        Some(Self {
            out: Vec::new(),
            base: 0,
            pos,
            total,
            pending: Pending::Nothing,
        })
    }

    /// Where the bytes made so far end in the block's output.
    pub(super) fn end(&self) -> usize {
        self.base + self.out.len()
    }

    /// Where the bytes still held start in the block's output.
    pub(super) fn base(&self) -> usize {
        self.base
    }

    /// Forgets the bytes made before `from` (in the block's output; at
    /// most [`SnappyProgress::end`]): `out` then starts there.
    pub(super) fn forget_before(&mut self, from: usize) {
        let drop = from.saturating_sub(self.base).min(self.out.len());
        self.out.drain(..drop);
        self.base += drop;
    }

    /// Steps over the elements of the block `input` (the same block, as far
    /// as the earlier calls saw it or further) that end at or before
    /// `target` in its output, without making their bytes: what was made
    /// is forgotten, and the decoding goes on from where the last of them
    /// ends (an element `input` does not hold whole is not stepped over).
    /// `None` if a copy before that point reaches back before the block's
    /// start, as a decoder would find (then `self` is spent).
    ///
    /// Only the elements' tags and lengths are read, so a literal's bytes
    /// are neither copied nor even touched: in a page of ids or timestamps
    /// that barely compress, the elements are long literals, and the bytes
    /// before a value far into the page cost almost nothing to pass. A copy
    /// after the point may reach back past it (the decoding then fails, as
    /// it does for forgotten bytes), but snappy's compressors cut their
    /// input into blocks of 64 KiB and copy within a block only, so from a
    /// multiple of 64 KiB on, the block decodes alone.
    pub(super) fn skip_to(&mut self, input: &[u8], target: usize) -> Option<()> {
        let mut at = self.end();
        let target = target.min(self.total);
        if target <= at {
            return Some(());
        }
        // The rest of an element a prefix ended within.
        match self.pending {
            Pending::Nothing => {}
            // It ends past the point: nothing is stepped over.
            Pending::Literal { left, .. } | Pending::Copy { left, .. } if at + left > target => {
                return Some(());
            }
            Pending::Literal { left, .. } | Pending::Copy { left, .. } => {
                at += left;
                self.pending = Pending::Nothing;
            }
        }
        // Far from the point, lanes side by side; the last stretch, and
        // whatever they leave, element by element.
        let (mut pos, mut at) = stride(input, self.pos, at, target, self.total);
        while at < target {
            let Some(&tag) = input.get(pos) else { break };
            // The bytes after the tag: a long literal's length - 1, or a
            // copy's offset (its low bits), little endian.
            let literal = tag & 3 == 0;
            let entry = COPY_TAGS[usize::from(tag)];
            let extra = match literal {
                true => usize::from(tag >> 2).saturating_sub(59),
                false => usize::from(entry >> 11),
            };
            let Some(bytes) = input.get(pos + 1..pos + 1 + extra) else {
                break;
            };
            let value = little_endian(bytes);
            let (len, stored) = if literal {
                let len = match extra {
                    0 => usize::from(tag >> 2) + 1,
                    _ => value.checked_add(1)?,
                };
                (len, (1 + extra).checked_add(len)?)
            } else {
                // As a decoder would: a copy from before the block's start
                // is damage.
                let offset = value + usize::from(entry & 0x700);
                if offset == 0 || offset > at {
                    return None;
                }
                (usize::from(entry & 0xff), 1 + extra)
            };
            // Stop before an element that ends past the point, or whose
            // bytes `input` does not hold (a literal's).
            let next = pos.checked_add(stored)?;
            if at + len > target || next > input.len() {
                break;
            }
            (pos, at) = (next, at + len);
        }
        self.pos = pos;
        self.out.clear();
        self.base = at;
        Some(())
    }

    /// Goes on decoding the block `input` (the same block, as far as the
    /// earlier calls saw it or further) until the block's first `want`
    /// bytes are made, or all of them if it holds fewer; `None` if it is
    /// malformed before that point, ends there, or copies from bytes
    /// forgotten (then `self` is as it was before the call).
    pub(super) fn decode_to(&mut self, input: &[u8], want: usize) -> Option<()> {
        self.decode_to_from(input, 0, want)
    }

    /// Where the block's bytes that the decoding still needs start: those
    /// of its next element, or of the literal it ended within.
    pub(super) fn input_needed_from(&self) -> usize {
        match self.pending {
            Pending::Literal { from, .. } => from.min(self.pos),
            _ => self.pos,
        }
    }

    /// [`SnappyProgress::decode_to`] with `input` holding the block's bytes
    /// from `input_at` on (at least from
    /// [`SnappyProgress::input_needed_from`]), not from its start: a page
    /// read forward a stretch at a time (`super::page_stream`). On `None`,
    /// `self` is as it was before the call, so that the caller may try
    /// again with more of the block's bytes.
    pub(super) fn decode_to_from(
        &mut self,
        input: &[u8],
        input_at: usize,
        want: usize,
    ) -> Option<()> {
        let (pos, pending, made) = (self.pos, self.pending, self.out.len());
        let decoded = self.decode_on(input, input_at, want);
        if decoded.is_none() {
            (self.pos, self.pending) = (pos, pending);
            self.out.truncate(made);
        }
        decoded
    }

    /// [`SnappyProgress::decode_to_from`], leaving `self` spent on `None`.
    fn decode_on(&mut self, input: &[u8], input_at: usize, want: usize) -> Option<()> {
        // A block claiming more than its bytes can make is damaged: never
        // allocate for it.
        let want = want.min(self.total).min(
            input_at
                .saturating_add(input.len())
                .saturating_mul(MOST_EXPANSION),
        );
        // From here on, positions count from `base`.
        let Some(want) = want.checked_sub(self.base) else {
            return Some(());
        };
        let mut at = self.out.len();
        if at >= want {
            return Some(());
        }
        let out = &mut self.out;
        out.resize(want.checked_add(SLACK)?, 0);
        // Positions in `input` from here on.
        let mut pos = self.pos.checked_sub(input_at)?;
        // The element the last prefix ended within, then the next ones.
        let mut pending = match std::mem::take(&mut self.pending) {
            Pending::Literal { from, left } => Pending::Literal {
                from: from.checked_sub(input_at)?,
                left,
            },
            other => other,
        };
        while at < want {
            if let Pending::Nothing = pending {
                (pos, at) = whole_elements(input, pos, out, at, want)?;
                if at >= want {
                    break;
                }
            }
            let (offset, len) = match pending {
                Pending::Literal { from, left } => {
                    let take = left.min(want - at);
                    out.get_mut(at..at + take)?
                        .copy_from_slice(input.get(from..from.checked_add(take)?)?);
                    at += take;
                    pending = if take < left {
                        Pending::Literal {
                            from: from + take,
                            left: left - take,
                        }
                    } else {
                        Pending::Nothing
                    };
                    continue;
                }
                Pending::Copy { offset, left } => {
                    pending = Pending::Nothing;
                    (offset, left)
                }
                Pending::Nothing => {
                    let tag = *input.get(pos)?;
                    pos += 1;
                    match tag & 3 {
                        0 => {
                            let mut len = usize::from(tag >> 2);
                            if len >= 60 {
                                // The length - 1 follows in 1 to 4
                                // little-endian bytes.
                                let extra = len - 59;
                                let bytes = input.get(pos..pos.checked_add(extra)?)?;
                                pos += extra;
                                len = little_endian(bytes);
                            }
                            let len = len.checked_add(1)?;
                            let take = len.min(want - at);
                            if take <= 64 && pos + take + 16 <= input.len() {
                                let mut k = 0;
                                while k < take {
                                    word::<16>(input, pos + k, out, at + k)?;
                                    k += 16;
                                }
                            } else {
                                out.get_mut(at..at + take)?
                                    .copy_from_slice(input.get(pos..pos.checked_add(take)?)?);
                            }
                            at += take;
                            if take < len {
                                pending = Pending::Literal {
                                    from: pos + take,
                                    left: len - take,
                                };
                            }
                            pos = pos.checked_add(len)?;
                            continue;
                        }
                        1 => {
                            let low = *input.get(pos)?;
                            pos += 1;
                            let offset = (usize::from(tag >> 5) << 8) | usize::from(low);
                            (offset, 4 + usize::from((tag >> 2) & 7))
                        }
                        2 => {
                            let bytes = input.get(pos..pos.checked_add(2)?)?;
                            pos += 2;
                            let offset = usize::from(u16::from_le_bytes([bytes[0], bytes[1]]));
                            (offset, usize::from(tag >> 2) + 1)
                        }
                        _ => {
                            let bytes = input.get(pos..pos.checked_add(4)?)?;
                            pos += 4;
                            let offset =
                                u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                            (usize::try_from(offset).ok()?, usize::from(tag >> 2) + 1)
                        }
                    }
                }
            };
            // A copy reaches back into what is already decoded (and not
            // forgotten), and may overlap what it writes (a run, when
            // `offset < len`).
            if offset == 0 || offset > at {
                return None;
            }
            let take = len.min(want - at);
            copy_back_within(out, at, offset, take)?;
            at += take;
            if take < len {
                pending = Pending::Copy {
                    offset,
                    left: len - take,
                };
            }
        }
        out.truncate(want);
        self.pos = pos + input_at;
        self.pending = match pending {
            Pending::Literal { from, left } => Pending::Literal {
                from: from + input_at,
                left,
            },
            other => other,
        };
        Some(())
    }
}

/// How far past an element's tag [`whole_elements`] may read the input:
/// the tag, four bytes of length or offset, and a literal of up to 64
/// bytes read as whole words.
const ELEMENT_READ_MOST: usize = 70;

/// Decodes the elements from `pos` in `input` into `out` from `at` (the
/// output held, up to `want` plus [`SLACK`] bytes) as long as each
/// lies well inside both: its bytes, read as whole words, within the
/// input ([`ELEMENT_READ_MOST`]), and what it makes within `want`. Returns
/// where it stopped (in the input, and in `out`), for the caller to go on
/// element by element near the ends; `None` if a copy reaches back before
/// `out`'s start.
///
/// Each element is whole here, so this loop keeps no state between them:
/// it is [`SnappyProgress::decode_to`]'s loop without what it takes to stop
/// anywhere, and makes most of a page's bytes. A page of DuckDB's file,
/// whole (a throwaway timing loop, not kept): 1.8 MB of event ids
/// 1.41 → 0.83 ms, 1 MB of timestamps 1.06 → 0.89 ms, where the `snap`
/// crate's decoder takes 0.71 and 0.84 ms. A copy's kind is read from a
/// table ([`COPY_TAGS`]), not branched on: event ids mix copies of one
/// and two offset bytes.
#[inline]
fn whole_elements(
    input: &[u8],
    mut pos: usize,
    out: &mut [u8],
    mut at: usize,
    want: usize,
) -> Option<(usize, usize)> {
    while pos + ELEMENT_READ_MOST <= input.len() && at + 64 <= want {
        let tag = input[pos];
        if tag & 3 == 0 {
            let len = usize::from(tag >> 2) + 1;
            if len <= 16 {
                word::<16>(input, pos + 1, out, at)?;
            } else if len <= 60 {
                for k in (0..len).step_by(16) {
                    word::<16>(input, pos + 1 + k, out, at + k)?;
                }
            } else {
                // The length - 1 follows in 1 to 4 little-endian bytes.
                let extra = len - 60;
                let len = little_endian(&input[pos + 1..pos + 1 + extra]) + 1;
                let start = pos + 1 + extra;
                let Some(end) = start.checked_add(len).filter(|&e| e <= input.len()) else {
                    break;
                };
                if at + len > want {
                    break;
                }
                out.get_mut(at..at + len)?
                    .copy_from_slice(&input[start..end]);
                (pos, at) = (end, at + len);
                continue;
            }
            (pos, at) = (pos + 1 + len, at + len);
            continue;
        }
        // A copy: its length, offset bytes and the offset's high bits from
        // the table, without a branch on its kind.
        let entry = COPY_TAGS[usize::from(tag)];
        let extra = usize::from(entry >> 11);
        let after: [u8; 4] = input[pos + 1..pos + 5].try_into().ok()?;
        let low = u64::from(u32::from_le_bytes(after)) & ((1u64 << (extra * 8)) - 1);
        let offset = usize::try_from(low).ok()? + usize::from(entry & 0x700);
        let len = usize::from(entry & 0xff);
        pos += 1 + extra;
        if offset == 0 || offset > at {
            return None;
        }
        // As whole words (the loop's bounds leave room for 64 bytes past
        // `at`). A word is read whole before it is written, so a copy of
        // at most 16 bytes from at least as far back takes one word: its
        // bytes are final, and those read past them land past the copy,
        // where later elements write. Other words' sources end before
        // their targets when `offset` is at least the word's size. Short
        // copies from 4 to 15 bytes back took two words or went byte by
        // byte before: decoding DuckDB's index page of conversations (see
        // `copy_back_within`) whole took 240 µs, 181 µs in one word,
        // against `snap`'s 173; pyarrow's dictionary page of timestamps
        // 1.16 ms, 0.87 ms, against 0.79 ms.
        let from = at - offset;
        if offset >= len && len <= 16 {
            within::<16>(out, from, at)?;
        } else if offset >= 8 && len <= 16 {
            within::<8>(out, from, at)?;
            within::<8>(out, from + 8, at + 8)?;
        } else if offset >= 16 {
            within::<16>(out, from, at)?;
            within::<16>(out, from + 16, at + 16)?;
            if len > 32 {
                within::<16>(out, from + 32, at + 32)?;
                within::<16>(out, from + 48, at + 48)?;
            }
        } else {
            copy_back_within(out, at, offset, len)?;
        }
        at += len;
    }
    Some((pos, at))
}

/// For each tag byte of a copy element: its length (bits 0–7), the high
/// bits of its offset (8–10, a 1-byte-offset copy's) and how many offset
/// bytes follow it (11–13). Literal tags are not looked up.
static COPY_TAGS: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut tag = 0;
    while tag < 256 {
        let t = tag as u16;
        table[tag] = match tag & 3 {
            1 => (1 << 11) | ((t >> 5) << 8) | (4 + ((t >> 2) & 7)),
            2 => (2 << 11) | ((t >> 2) + 1),
            3 => (4 << 11) | ((t >> 2) + 1),
            _ => 0,
        };
        tag += 1;
    }
    table
};

/// Makes the `len` bytes of `out` at `at` a copy of those `offset`
/// before (`0 < offset <= at`), as a snappy copy does, in whole words: a
/// copy may overlap what it writes (a run, when `offset < len`), so each
/// word is read from bytes already final. A run of a period under 8 is
/// its first period, read as one word, written every `offset` bytes: each
/// write's bytes past the period are overwritten by the next, the last
/// one's land past the copy. `out` holds [`SLACK`] bytes past what the
/// copy makes.
///
/// DuckDB's pages of dictionary indices hold many such runs: 14-bit
/// indices repeat every 7 bytes (2,762 of the 2,850 overlapping copies of
/// a conversation's index page of its 1M-event v2 file). Copied byte by
/// byte, that page took 271 µs to decode whole, 240 µs a period at a time
/// (a throwaway benchmark, best of 200).
#[inline(always)]
fn copy_back_within(out: &mut [u8], at: usize, offset: usize, len: usize) -> Option<()> {
    let from = at - offset;
    if offset >= 16 {
        let mut k = 0;
        while k < len {
            within::<16>(out, from + k, at + k)?;
            k += 16;
        }
    } else if offset >= 8 {
        let mut k = 0;
        while k < len {
            within::<8>(out, from + k, at + k)?;
            k += 8;
        }
    } else {
        let period: [u8; 8] = out.get(from..from + 8)?.try_into().ok()?;
        let mut k = 0;
        while k < len {
            out.get_mut(at + k..at + k + 8)?.copy_from_slice(&period);
            k += offset;
        }
    }
    Some(())
}

/// Copies `N` bytes of `input` at `from` into `out` at `to`.
#[inline(always)]
fn word<const N: usize>(input: &[u8], from: usize, out: &mut [u8], to: usize) -> Option<()> {
    let w: [u8; N] = input.get(from..from + N)?.try_into().ok()?;
    out.get_mut(to..to + N)?.copy_from_slice(&w);
    Some(())
}

/// Copies the `N` bytes of `out` at `from` to `to` (the ranges apart).
#[inline(always)]
fn within<const N: usize>(out: &mut [u8], from: usize, to: usize) -> Option<()> {
    let w: [u8; N] = out.get(from..from + N)?.try_into().ok()?;
    out.get_mut(to..to + N)?.copy_from_slice(&w);
    Some(())
}

/// Appends to `out` the `len` bytes that start `offset` bytes before its
/// end (`0 < offset <= out.len()`), as a snappy or LZ4 copy does: when
/// `offset < len` the copy overlaps what it writes, and the bytes repeat
/// with period `offset`, so each step copies everything written since the
/// copy's start (a run doubles).
pub(super) fn copy_back(out: &mut Vec<u8>, offset: usize, len: usize) {
    let start = out.len() - offset;
    let mut left = len;
    while left > 0 {
        let take = left.min(out.len() - start);
        out.extend_from_within(start..start + take);
        left -= take;
    }
}

/// The number stored in `bytes` (at most 4: a long literal's length - 1,
/// or a copy's offset), little endian.
#[inline(always)]
pub(super) fn little_endian(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rev()
        .fold(0usize, |a, &b| (a << 8) | usize::from(b))
}

/// A little-endian base-128 `u32` (the block's uncompressed length).
pub(super) fn varint(input: &[u8], pos: &mut usize) -> Option<u32> {
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        let byte = *input.get(*pos)?;
        *pos += 1;
        value |= u32::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn compress(data: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(data).unwrap()
    }

    #[test]
    fn a_prefix_of_literals_and_runs_is_the_data_s_prefix() {
        // Levels of a page with no null: a 4-byte length, then one RLE run;
        // then values with long repeats (copies, overlapping ones too).
        let mut data = vec![3, 0, 0, 0, 0x80, 0x9c, 0x01, 1];
        data.extend(std::iter::repeat_n(b"abcdefgh".as_slice(), 5000).flatten());
        data.extend((0..100_000u32).flat_map(|i| (i % 977).to_le_bytes()));
        let block = compress(&data);
        for want in [
            0,
            1,
            4,
            8,
            9,
            64,
            65_536,
            70_000,
            data.len(),
            data.len() + 10,
        ] {
            let prefix = snappy_prefix(&block, want).unwrap();
            assert_eq!(prefix, data[..want.min(data.len())], "{want}");
        }
    }

    #[test]
    fn damaged_blocks_give_none_not_a_panic() {
        let data: Vec<u8> = (0..5000u32).flat_map(|i| (i % 13).to_le_bytes()).collect();
        let block = compress(&data);
        // Cut anywhere: None, or the prefix if enough is left.
        for end in 0..block.len().min(200) {
            if let Some(prefix) = snappy_prefix(&block[..end], data.len()) {
                assert_eq!(prefix, data[..prefix.len()]);
            }
        }
        // A copy reaching before the start of the output.
        assert_eq!(snappy_prefix(&[10, 0b0000_0001, 5], 10), None);
        assert_eq!(snappy_prefix(&[10, 0b0000_0110, 0, 0], 10), None);
        // A literal longer than the input, a length of five varint bytes.
        assert_eq!(snappy_prefix(&[10, 60 << 2, 0xff], 10), None);
        assert_eq!(
            snappy_prefix(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], 1),
            None
        );
    }

    /// A block decoded in growing prefixes, each going on from the last,
    /// gives the same bytes as one decoded at once, wherever the prefixes
    /// end (inside literals and copies, overlapping ones too).
    #[test]
    fn growing_prefixes_go_on_from_the_last() {
        let mut data = vec![3, 0, 0, 0, 0x80, 0x9c, 0x01, 1];
        data.extend(std::iter::repeat_n(b"abcdefgh".as_slice(), 500).flatten());
        data.extend((0..20_000u32).flat_map(|i| (i % 977).to_le_bytes()));
        data.extend(std::iter::repeat_n(7u8, 3_000));
        let block = compress(&data);
        for step in [1, 3, 17, 64, 1_000, 30_000] {
            let mut progress = SnappyProgress::start(&block).unwrap();
            let mut want = 0;
            while want < data.len() + step {
                want += step;
                progress.decode_to(&block, want).unwrap();
                assert_eq!(progress.out, data[..want.min(data.len())], "{step} {want}");
            }
            // A shorter prefix asked after a longer one changes nothing.
            progress.decode_to(&block, 5).unwrap();
            assert_eq!(progress.out, data);
        }
    }

    /// A block decoded far while forgetting all but the last 64 KiB holds
    /// exactly the bytes it has not forgotten, and copies reaching into
    /// forgotten bytes give `None`.
    #[test]
    fn a_decoding_that_forgets_holds_the_bytes_it_kept() {
        let data: Vec<u8> = (0..60_000u32)
            .flat_map(|i| format!("event-{:06}|{}", i % 7_919, i % 13).into_bytes())
            .collect();
        let block = compress(&data);
        let mut progress = SnappyProgress::start(&block).unwrap();
        let mut want = 0;
        while want < data.len() {
            want = (want + 40_000).min(data.len());
            progress.decode_to(&block, want).unwrap();
            assert_eq!(progress.end(), want);
            assert_eq!(progress.out, data[progress.base()..want]);
            progress.forget_before(want.saturating_sub(64 << 10));
        }
        assert!(progress.base() > 0);
        // Forgetting past the end forgets what is held, and no more.
        progress.forget_before(usize::MAX);
        assert_eq!((progress.base(), progress.out.len()), (data.len(), 0));

        // 100 literal bytes, then a copy of 10 from 100 back.
        let mut block = vec![110, 60 << 2, 99];
        block.extend(0..100u8);
        block.extend([(9 << 2) | 2, 100, 0]);
        let mut progress = SnappyProgress::start(&block).unwrap();
        progress.decode_to(&block, 100).unwrap();
        progress.forget_before(50);
        assert_eq!(progress.decode_to(&block, 110), None);
        let mut whole = SnappyProgress::start(&block).unwrap();
        whole.decode_to(&block, 110).unwrap();
        assert_eq!(whole.out[100..], (0..10).collect::<Vec<u8>>());
    }

    /// The tokens `picks` names, one after the other: bytes that repeat
    /// (copies) between others.
    fn picked_tokens(tokens: &[Vec<u8>], picks: &[u8]) -> Vec<u8> {
        picks
            .iter()
            .flat_map(|&p| tokens[usize::from(p) % tokens.len()].clone())
            .collect()
    }

    /// Ids that compress a little (copies within each 64 KiB block) and
    /// literals, the bytes of a page of event ids.
    fn ids(n: u32) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                format!("evt-{:08x}-{}", i.wrapping_mul(2_654_435_761), i % 97).into_bytes()
            })
            .collect()
    }

    /// Stepping over the whole blocks before a point, then decoding from
    /// there, gives the block's bytes from where the stepping stopped:
    /// the elements a compressor writes end at each 64 KiB of output, and
    /// no copy reaches back past one.
    #[test]
    fn stepping_over_whole_blocks_then_decoding_gives_the_bytes_after_them() {
        let data = ids(40_000);
        assert!(data.len() > 6 * 65_536);
        let block = compress(&data);
        for target in [1, 65_536, 3 * 65_536, 5 * 65_536, data.len(), usize::MAX] {
            let mut progress = SnappyProgress::start(&block).unwrap();
            progress.skip_to(&block, target).unwrap();
            let base = progress.base();
            assert!(base <= target.min(data.len()), "{target}");
            // A compressor's block boundary is an element boundary.
            if target % 65_536 == 0 && target <= data.len() {
                assert_eq!(base, target);
            }
            assert!(progress.out.is_empty());
            let to = (base + 70_000).min(data.len());
            progress.decode_to(&block, to).unwrap();
            assert_eq!(progress.out, data[base..to], "{target}");
        }
        // After a prefix, from within an element: that element's rest
        // is stepped over too, or nothing is when it ends past the point.
        for (prefix, target) in [
            (10, 65_536),
            (65_530, 65_536),
            (100, 101),
            (70_000, 131_072),
        ] {
            let mut progress = SnappyProgress::start(&block).unwrap();
            progress.decode_to(&block, prefix).unwrap();
            progress.skip_to(&block, target).unwrap();
            let base = progress.base();
            assert!(base <= target, "{prefix} {target}");
            let to = (target + 1_000).min(data.len());
            progress.decode_to(&block, to).unwrap();
            assert_eq!(progress.out, data[base..to], "{prefix} {target}");
        }
        // A point behind what is made changes nothing.
        let mut progress = SnappyProgress::start(&block).unwrap();
        progress.decode_to(&block, 1_000).unwrap();
        progress.skip_to(&block, 500).unwrap();
        assert_eq!(
            (progress.base(), progress.out.as_slice()),
            (0, &data[..1_000])
        );
    }

    /// Stepping stops where the input read so far ends, at an element
    /// boundary, and goes on from there with more of it; a copy from
    /// before the block's start is damage, as in decoding.
    #[test]
    fn stepping_stops_at_the_input_s_end_and_finds_damage() {
        let data = ids(20_000);
        let block = compress(&data);
        for cut in [0, 1, 2, 3, 100, 40_000, block.len() / 2] {
            let mut progress = SnappyProgress::start(&block).unwrap();
            progress.skip_to(&block[..cut], 2 * 65_536).unwrap();
            let stopped = progress.base();
            assert!(stopped <= 2 * 65_536);
            progress.skip_to(&block, 2 * 65_536).unwrap();
            assert_eq!(progress.base(), 2 * 65_536, "{cut} {stopped}");
            progress.decode_to(&block, 2 * 65_536 + 10).unwrap();
            assert_eq!(progress.out, data[2 * 65_536..2 * 65_536 + 10]);
        }
        // 10 literal bytes, then a copy of 5 from 20 back.
        let mut block = vec![15, 9 << 2];
        block.extend(0..10u8);
        block.extend([(4 << 2) | 2, 20, 0]);
        let mut progress = SnappyProgress::start(&block).unwrap();
        assert_eq!(progress.skip_to(&block, 15), None);
        // A copy from forgotten bytes fails the decoding after a step.
        let mut block = vec![110, 60 << 2, 99];
        block.extend(0..100u8);
        block.extend([(9 << 2) | 2, 60, 0]);
        let mut progress = SnappyProgress::start(&block).unwrap();
        progress.skip_to(&block, 100).unwrap();
        assert_eq!(progress.base(), 100);
        assert_eq!(progress.decode_to(&block, 110), None);
    }

    proptest! {
        #[test]
        fn any_prefix_matches_the_decompressed_block(
            chunks in proptest::collection::vec((any::<u8>(), 1usize..300), 0..60),
            noise in proptest::collection::vec(any::<u8>(), 0..300),
            want in 0usize..20_000,
        ) {
            let mut data: Vec<u8> = chunks
                .iter()
                .flat_map(|&(b, n)| std::iter::repeat_n(b, n))
                .collect();
            data.extend(&noise);
            let block = compress(&data);
            let prefix = snappy_prefix(&block, want).unwrap();
            prop_assert_eq!(prefix, &data[..want.min(data.len())]);
        }

        #[test]
        fn stepping_then_decoding_gives_the_bytes_or_none(
            tokens in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 1..12),
            picks in proptest::collection::vec(any::<u8>(), 0..400),
            first in 0usize..4_000,
            target in 0usize..12_000,
            cut in any::<prop::sample::Index>(),
        ) {
            let data = picked_tokens(&tokens, &picks);
            let block = compress(&data);
            let mut progress = SnappyProgress::start(&block).unwrap();
            progress.decode_to(&block, first).unwrap();
            let input = &block[..cut.index(block.len() + 1)];
            if progress.skip_to(input, target).is_some() {
                let base = progress.base();
                prop_assert!(base <= target.max(first.min(data.len())));
                // Copies may reach back past the point: then `None`.
                // (A point behind what was made keeps it all.)
                if progress.decode_to(&block, base + 300).is_some() {
                    let end = base + progress.out.len();
                    prop_assert!(end >= (base + 300).min(data.len()));
                    prop_assert_eq!(&progress.out[..], &data[base..end]);
                }
            }
        }

        #[test]
        fn prefixes_in_steps_match_one_prefix(
            tokens in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 1..12),
            picks in proptest::collection::vec(any::<u8>(), 0..400),
            steps in proptest::collection::vec(1usize..2_000, 1..8),
        ) {
            let data = picked_tokens(&tokens, &picks);
            let block = compress(&data);
            let mut progress = SnappyProgress::start(&block).unwrap();
            let mut want = 0;
            for step in steps {
                want += step;
                progress.decode_to(&block, want).unwrap();
                prop_assert_eq!(&progress.out, &data[..want.min(data.len())]);
            }
        }

        /// Tokens of 1 to 40 bytes drawn again and again make copies of
        /// every offset and length, literals of every length, and prefixes
        /// ending inside either.
        #[test]
        fn any_prefix_of_repeated_tokens_matches(
            tokens in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 1..12),
            picks in proptest::collection::vec(any::<u8>(), 0..600),
            want in 0usize..30_000,
        ) {
            let data = picked_tokens(&tokens, &picks);
            let block = compress(&data);
            let prefix = snappy_prefix(&block, want).unwrap();
            prop_assert_eq!(&prefix, &data[..want.min(data.len())]);
            let cut = want % (data.len() + 1);
            prop_assert_eq!(snappy_prefix(&block, cut).unwrap(), &data[..cut]);
        }

        /// Runs of every period under 8 (levels bit-packed, or an index
        /// repeated), of any length, between literals: copies of each
        /// small offset, overlapping what they write.
        #[test]
        fn runs_of_short_periods_match(
            runs in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 1..8), 1usize..400, proptest::collection::vec(any::<u8>(), 0..20)),
                1..30,
            ),
            want in 0usize..12_000,
        ) {
            let mut data = Vec::new();
            for (period, len, literal) in &runs {
                data.extend(period.iter().cycle().take(*len));
                data.extend(literal);
            }
            let block = compress(&data);
            let prefix = snappy_prefix(&block, want).unwrap();
            prop_assert_eq!(&prefix, &data[..want.min(data.len())]);
            let mut progress = SnappyProgress::start(&block).unwrap();
            progress.decode_to(&block, data.len()).unwrap();
            prop_assert_eq!(&progress.out, &data);
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..64), want in 0usize..100) {
            let _ = snappy_prefix(&input, want);
        }

        /// A valid block with bytes flipped: `None`, or a prefix of the
        /// length asked (or of the whole block), never a panic nor a
        /// buffer larger than the block can make.
        #[test]
        fn damaged_blocks_never_panic(
            tokens in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 1..8),
            picks in proptest::collection::vec(any::<u8>(), 1..300),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            want in 0usize..100_000,
        ) {
            let data = picked_tokens(&tokens, &picks);
            let mut block = compress(&data);
            for (at, byte) in flips {
                let n = block.len();
                block[at % n] ^= byte;
            }
            if let Some(out) = snappy_prefix(&block, want) {
                prop_assert!(out.len() <= want);
                prop_assert!(out.len() <= block.len() * MOST_EXPANSION);
            }
        }
    }
}
