//! Stepping over a snappy block's elements in several lanes at once.
//!
//! [`super::snappy_prefix::SnappyProgress::skip_to`] passes the elements
//! before a point far into a block by reading only their tags and
//! lengths. One element's length says where the next starts, so a single
//! walk is one long chain of dependent loads: about 3 ns an element here,
//! whatever else the core could do meanwhile (a page of DuckDB's
//! timestamps holds some 240,000 elements).
//!
//! [`stride`] cuts the stretch ahead into [`LANES`] spans and walks each
//! from its start at once, side by side, so that the chains overlap. Only
//! the first span starts on an element; the others start on any byte.
//! A walk begun on a wrong byte reads a few false elements, then lands on
//! an element's start, and from there it is on the block's own sequence
//! (the chance that it does within a few dozen steps is high: a walk from
//! a random byte of a page of timestamps or ids meets it in a median of
//! 1–3 steps). So each lane notes where its first [`NOTED`] steps began;
//! the walk known to be right, reaching a lane's span, steps on until it
//! stands where that lane once stood, and takes the lane's end as its own.
//! A lane that it does not meet, or a span past the point, or one that
//! holds what the element-by-element walk would refuse (a copy from
//! before the block's start, a literal the input does not hold), ends
//! the round at the last state known right: the caller's walk goes on
//! from there, so the answer is the same as without lanes, only sooner.
//!
//! Past its noted elements, a lane's step is a table lookup and two
//! additions, for the elements snappy's compressors write within their
//! 64 KiB blocks (literals, copies of 1- and 2-byte offsets); a round
//! starts only past the first 64 KiB of output, where no such copy can
//! reach before the block's start. A lane stops at any other element (a
//! 4-byte offset, an offset of 0), and the exact walk takes it. A 983 KB page of timestamps (122,880 values, as
//! DuckDB writes a row group's), stepped over to 70% of its output: 0.80
//! ms element by element, 0.45 ms in four lanes.

/// How many walks go side by side.
const LANES: usize = 4;

/// How many of its first elements' starts a lane notes, to be met at.
const NOTED: usize = 32;

/// Most input bytes each lane covers in one round.
const SPAN_MOST: usize = 16 << 10;

/// Fewest input bytes per lane for which a round is worth its joins.
const SPAN_LEAST: usize = 512;

/// Bytes read at an element's start: its tag and up to four after it,
/// as one little-endian word.
const WORD: usize = 8;

/// An element's reach standing for a copy of offset 0, which no output
/// before it can make sound: more than any block's output.
const DAMAGE: u64 = 1 << 62;

/// For each tag byte: the output an element of it makes (bits 0–7; for a
/// long literal, 1 more than the length bytes say), the high bits of a
/// 1-byte-offset copy's offset (8–10), how many bytes follow the tag
/// (11–13), whether it is a literal (14) and whether its length is in
/// the bytes that follow (15).
static TAGS: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut tag = 0;
    while tag < 256 {
        let t = tag as u16;
        table[tag] = match tag & 3 {
            0 if t >> 2 < 60 => (1 << 14) | ((t >> 2) + 1),
            0 => (1 << 15) | (1 << 14) | (((t >> 2) - 59) << 11) | 1,
            1 => (1 << 11) | ((t >> 5) << 8) | (4 + ((t >> 2) & 7)),
            2 => (2 << 11) | ((t >> 2) + 1),
            _ => (4 << 11) | ((t >> 2) + 1),
        };
        tag += 1;
    }
    table
};

/// For each tag byte, what the side-by-side steps need: the input bytes
/// its element takes (bits 0–7) and the output it makes (8–15), for a
/// short literal or a copy of a 1- or 2-byte offset; the mask of the
/// offset's bytes after the tag (16–31) and its high bits (32–34), to
/// find a copy of offset 0; bit 35 for a long literal, whose length the
/// step reads from the bytes after the tag, and bit 36 for a copy of a
/// 4-byte offset, which a lane leaves to the element-by-element walk.
static STEPS: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut tag = 0;
    while tag < 256 {
        let t = tag as u64;
        table[tag] = match tag & 3 {
            0 if t >> 2 < 60 => (2 + (t >> 2)) | (((t >> 2) + 1) << 8),
            0 => 1 << 35,
            1 => 2 | ((4 + ((t >> 2) & 7)) << 8) | (0xff << 16) | ((t >> 5) << 32),
            2 => 3 | (((t >> 2) + 1) << 8) | (0xffff << 16),
            _ => 1 << 36,
        };
        tag += 1;
    }
    table
};

/// One element of a snappy block, as its first [`WORD`] bytes tell.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Element {
    /// Input bytes it takes (for a literal, its bytes included).
    stored: u64,
    /// Output bytes it makes.
    made: u64,
    /// How much output must precede it: a copy's offset ([`DAMAGE`] for
    /// an offset of 0), nothing for a literal.
    reach: u64,
}

impl Element {
    /// The element whose tag is the low byte of `word`, read in full and
    /// without a branch (literals and copies alternate unpredictably).
    #[inline(always)]
    fn read(word: u64) -> Self {
        let t = u64::from(TAGS[(word & 0xff) as usize]);
        let extra = (t >> 11) & 7;
        let after = (word >> 8) & ((1u64 << (extra * 8)) - 1);
        let long = 0u64.wrapping_sub(t >> 15);
        let literal = 0u64.wrapping_sub((t >> 14) & 1);
        let made = (t & 0xff) + (after & long);
        let offset = (after + (((t >> 8) & 7) << 8)) & !literal;
        let damaged = u64::from(offset == 0) & !literal & 1;
        Self {
            stored: 1 + extra + (made & literal),
            made,
            reach: offset | (damaged * DAMAGE),
        }
    }
}

/// The element at `pos`, when the input holds a whole [`WORD`] there.
#[inline(always)]
fn element_at(input: &[u8], pos: usize) -> Option<Element> {
    let bytes: [u8; WORD] = input.get(pos..pos.checked_add(WORD)?)?.try_into().ok()?;
    Some(Element::read(u64::from_le_bytes(bytes)))
}

/// A step's new position: `pos` moved by `stored` input bytes.
#[inline(always)]
fn moved(pos: usize, stored: u64) -> usize {
    pos.saturating_add(usize::try_from(stored).unwrap_or(usize::MAX))
}

/// One lane of a round, once walked.
#[derive(Clone, Copy)]
struct Lane {
    /// Where its first elements started, with the output the lane made
    /// before each (counted from its start, wrapping) and their reach.
    noted: [(usize, u64, u64); NOTED],
    /// How many elements are noted.
    steps: usize,
    /// The output the noted elements made.
    made_noted: u64,
    /// Where its walk ended.
    end: usize,
    /// The output made after the noted elements.
    made_after: u64,
    /// Whether the lane stopped at an element it leaves to the
    /// element-by-element walk ([`STEPS`]).
    stopped: bool,
}

/// Steps over whole elements of the snappy block `input`, from the
/// element at `pos` (where the block's output is at `at`) toward the
/// output offset `target`, lanes side by side (see the module's
/// documentation). Returns an element's start and the output before it:
/// no further than `target`, with every element before it checked as
/// the element-by-element walk checks them, and `(pos, at)` itself when
/// lanes would not help (the stretch is short, or what is ahead is
/// unsound). `total` is the block's output length.
pub(super) fn stride(
    input: &[u8],
    mut pos: usize,
    mut at: usize,
    target: usize,
    total: usize,
) -> (usize, usize) {
    // Rounds start past the first 64 KiB of output (see `round`).
    while at < 1 << 16 && target.saturating_sub(at) > 1 << 16 {
        match exact_step(input, pos, at, target) {
            Some(next) => (pos, at) = next,
            None => return (pos, at),
        }
    }
    loop {
        // The input ahead to the point, guessed from the rest's ratio of
        // input to output; a round covers half of it, so that a guess too
        // long costs at most a round.
        let (Some(left), Some(rest_out), Some(rest_in)) = (
            target.checked_sub(at),
            total.checked_sub(at).filter(|&r| r > 0),
            input.len().checked_sub(pos),
        ) else {
            return (pos, at);
        };
        let ahead = (left as u128 * rest_in as u128 / rest_out as u128) as usize;
        let span = (ahead / (2 * LANES)).min(SPAN_MOST);
        if span < SPAN_LEAST || at < 1 << 16 || pos + LANES * span + WORD > input.len() {
            return (pos, at);
        }
        let next = round(input, pos, at, target, span);
        if next.0 <= pos {
            return (pos, at);
        }
        (pos, at) = next;
    }
}

/// One round of [`stride`]: [`LANES`] spans of `span` input bytes from
/// `pos`, walked side by side, then joined. The caller has checked that
/// the input holds a [`WORD`] past the last span.
fn round(input: &[u8], pos: usize, at: usize, target: usize, span: usize) -> (usize, usize) {
    let stops: [usize; LANES] = std::array::from_fn(|i| pos + (i + 1) * span);
    // Each lane's first elements, noted.
    let mut lanes: [Lane; LANES] = std::array::from_fn(|i| {
        let mut lane = Lane {
            noted: [(0, 0, 0); NOTED],
            steps: 0,
            made_noted: 0,
            end: pos + i * span,
            made_after: 0,
            stopped: false,
        };
        while lane.steps < NOTED && lane.end < stops[i] {
            let Some(element) = element_at(input, lane.end) else {
                break;
            };
            lane.noted[lane.steps] = (lane.end, lane.made_noted, element.reach);
            lane.steps += 1;
            lane.made_noted = lane.made_noted.wrapping_add(element.made);
            lane.end = moved(lane.end, element.stored);
        }
        lane
    });
    // Then side by side, in registers, while every lane has a span to go;
    // then each alone. Every copy a step passes reaches at most 65,535
    // bytes back, and the output before the round is at least that long
    // (see `stride`), so only a copy of offset 0 can be unsound.
    let mut ends: [usize; LANES] = std::array::from_fn(|i| lanes[i].end);
    let mut stops = stops;
    let mut made = [0u64; LANES];
    let step = |end: &mut usize, made: &mut u64, stop: &mut usize| {
        let Some(bytes) = input.get(*end..*end + WORD) else {
            *stop = *end;
            return;
        };
        let word = u64::from_le_bytes(bytes.try_into().unwrap_or_default());
        let entry = STEPS[(word & 0xff) as usize];
        if entry >> 35 != 0 {
            // A long literal: its length - 1 in the 1 to 4 bytes after
            // the tag. (A 4-byte offset: left to the exact walk.)
            let extra = ((word & 0xff) >> 2).saturating_sub(59);
            if entry >> 36 != 0 || extra == 0 {
                *stop = *end;
                return;
            }
            let len = ((word >> 8) & ((1u64 << (extra * 8)) - 1)) + 1;
            *made = made.wrapping_add(len);
            *end = moved(*end, 1 + extra + len);
            return;
        }
        let offset = ((word >> 8) & (entry >> 16) & 0xffff) | (entry >> 32);
        if offset == 0 && entry >> 16 != 0 {
            *stop = *end;
            return;
        }
        *made += (entry >> 8) & 0xff;
        *end += (entry & 0xff) as usize;
    };
    while (0..LANES).all(|i| ends[i] < stops[i]) {
        for i in 0..LANES {
            step(&mut ends[i], &mut made[i], &mut stops[i]);
        }
    }
    for i in 0..LANES {
        while ends[i] < stops[i] {
            step(&mut ends[i], &mut made[i], &mut stops[i]);
        }
    }
    for (i, lane) in lanes.iter_mut().enumerate() {
        lane.stopped = ends[i] == stops[i] && stops[i] < pos + (i + 1) * span;
        (lane.end, lane.made_after) = (ends[i], made[i]);
    }
    let mut known = (pos, at);
    for lane in &lanes {
        match join(input, known, lane, target) {
            Joined::Whole(end) => known = end,
            Joined::Part(end) => return end,
        }
    }
    known
}

/// How far a join of a lane got.
enum Joined {
    /// Past the lane's end: the state there.
    Whole((usize, usize)),
    /// Not past the lane's end: the last state known right.
    Part((usize, usize)),
}

/// From `known` (an element's start and the output before it), steps
/// on, element by element, until standing where `lane` once stood, and
/// then takes the lane's end, if the lane's elements from there on are
/// sound and end in the input, no further than `target`.
fn join(input: &[u8], known: (usize, usize), lane: &Lane, target: usize) -> Joined {
    let (mut pos, mut at) = known;
    let noted = &lane.noted[..lane.steps];
    let mut k = 0;
    loop {
        let Some(&(start, made_before, _)) = noted.get(k) else {
            return Joined::Part((pos, at));
        };
        if pos > start {
            k += 1;
            continue;
        }
        if pos == start {
            // From here on, the lane walked the block's own elements:
            // the output it made since is exact, wrapping or not.
            let since = |made: u64| made.wrapping_sub(made_before);
            let sound = noted[k..]
                .iter()
                .all(|&(_, made, reach)| reach <= (at as u64).saturating_add(since(made)));
            // Before the elements after the noted ones, the output stood
            // at `at_noted`.
            let at_noted = (at as u64).saturating_add(since(lane.made_noted));
            let end_at = at_noted.saturating_add(lane.made_after);
            if !sound || lane.end > input.len() || end_at > target as u64 {
                return Joined::Part((pos, at));
            }
            let end = (lane.end, end_at as usize);
            return match lane.stopped {
                true => Joined::Part(end),
                false => Joined::Whole(end),
            };
        }
        match exact_step(input, pos, at, target) {
            Some(next) => (pos, at) = next,
            None => return Joined::Part((pos, at)),
        }
    }
}

/// The state after the element at `pos` (with `at` output before it), if
/// the element-by-element walk would pass it: it is sound, the input
/// holds it, and it ends no further than `target`.
fn exact_step(input: &[u8], pos: usize, at: usize, target: usize) -> Option<(usize, usize)> {
    let element = element_at(input, pos)?;
    let next = moved(pos, element.stored);
    let next_at = (at as u64).saturating_add(element.made);
    if element.reach > at as u64 || next > input.len() || next_at > target as u64 {
        return None;
    }
    Some((next, next_at as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The element-by-element walk, as plainly as it can be written: the
    /// state before the first element that ends past `target`, is not
    /// held whole by `input`, or is unsound (`None` for an unsound one).
    fn walk(input: &[u8], mut pos: usize, mut at: usize, target: usize) -> Option<(usize, usize)> {
        while let Some(&tag) = input.get(pos) {
            let mut word = [0u8; WORD];
            let have = input.len() - pos;
            word[..have.min(WORD)].copy_from_slice(&input[pos..pos + have.min(WORD)]);
            let element = Element::read(u64::from_le_bytes(word));
            let extra = match tag & 3 {
                0 => usize::from(tag >> 2).saturating_sub(59),
                1 => 1,
                2 => 2,
                _ => 4,
            };
            if pos + 1 + extra > input.len() {
                break;
            }
            if element.reach > at as u64 {
                return None;
            }
            let next = pos + element.stored as usize;
            if at as u64 + element.made > target as u64 || next > input.len() {
                break;
            }
            (pos, at) = (next, at + element.made as usize);
        }
        Some((pos, at))
    }

    fn compress(data: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(data).unwrap()
    }

    /// The block's elements, after its length.
    fn elements_start(block: &[u8]) -> usize {
        block.iter().position(|&b| b & 0x80 == 0).unwrap() + 1
    }

    /// Timestamps a second or so apart, as a time-ordered page holds.
    fn timestamps(n: u64) -> Vec<u8> {
        (0..n)
            .flat_map(|i| (1_704_067_200_000_000 + i * 1_000_003 + (i * 7919) % 1000).to_le_bytes())
            .collect()
    }

    /// Every tag, read without branches, means what the format says.
    #[test]
    fn every_tag_reads_as_the_format_says() {
        for tag in 0..=255u8 {
            for after in [0u32, 1, 0x00ff, 0xffff, 0x12_3456, 0xffff_ffff] {
                let word = u64::from(tag) | (u64::from(after) << 8) | (0xab << 40);
                let bytes = |n: u32| u64::from(after) & ((1u64 << (8 * n)) - 1);
                let len = u64::from(tag >> 2);
                let (stored, made, reach) = match tag & 3 {
                    0 if len < 60 => (2 + len, len + 1, 0),
                    0 => {
                        let n = (len - 59) as u32;
                        (1 + u64::from(n) + bytes(n) + 1, bytes(n) + 1, 0)
                    }
                    1 => (2, 4 + (len & 7), (u64::from(tag >> 5) << 8) | bytes(1)),
                    2 => (3, len + 1, bytes(2)),
                    _ => (5, len + 1, bytes(4)),
                };
                let reach = if tag & 3 != 0 && reach == 0 {
                    DAMAGE
                } else {
                    reach
                };
                assert_eq!(
                    Element::read(word),
                    Element {
                        stored,
                        made,
                        reach
                    },
                    "{tag:#x} {after:#x}"
                );
            }
        }
    }

    #[test]
    fn lanes_reach_the_state_the_plain_walk_reaches() {
        let ids: Vec<u8> = (0..60_000u32)
            .flat_map(|i| {
                format!("evt-{:08x}-{}", i.wrapping_mul(2_654_435_761), i % 97).into_bytes()
            })
            .collect();
        for data in [timestamps(120_000), ids, vec![7u8; 500_000]] {
            let block = compress(&data);
            let start = elements_start(&block);
            for target in [0, 1, 65_536, 300_000, 777_777, data.len() - 1, data.len()] {
                let (pos, at) = stride(&block, start, 0, target, data.len());
                assert!(at <= target);
                // On the block's own sequence: the plain walk from there
                // ends where the plain walk from the start does.
                assert_eq!(
                    walk(&block, pos, at, target),
                    walk(&block, start, 0, target)
                );
                if target >= 300_000 && data[0] != 7 {
                    assert!(at > target / 2, "lanes went {at} of {target}");
                }
            }
        }
    }

    #[test]
    fn lanes_stop_before_a_copy_from_before_the_block() {
        let data = timestamps(100_000);
        let mut block = compress(&data);
        let start = elements_start(&block);
        // Find a copy halfway and make it reach back 1 MiB.
        let (mut pos, mut at) = (start, 0);
        while pos < block.len() / 2 {
            let element = element_at(&block, pos).unwrap();
            (pos, at) = (pos + element.stored as usize, at + element.made as usize);
        }
        while block[pos] & 3 == 0 {
            let element = element_at(&block, pos).unwrap();
            (pos, at) = (pos + element.stored as usize, at + element.made as usize);
        }
        block[pos] = (block[pos] & !3) | 3;
        block[pos + 1..pos + 5].copy_from_slice(&(1u32 << 30).to_le_bytes());
        let (stopped, stopped_at) = stride(&block, start, 0, data.len(), data.len());
        assert!(stopped <= pos && stopped_at <= at);
        assert_eq!(walk(&block, stopped, stopped_at, data.len()), None);
    }

    proptest! {
        #[test]
        fn lanes_agree_with_the_plain_walk_on_any_bytes(
            data in proptest::collection::vec(any::<u8>(), 0..3_000),
            repeat in 1usize..400,
            damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            target in 0usize..2_000_000,
            cut in any::<prop::sample::Index>(),
        ) {
            // Data that compresses a little, and then is damaged and cut.
            let data: Vec<u8> = (0..repeat).flat_map(|i| {
                data.iter().map(move |&b| b.wrapping_add((i % 3) as u8))
            }).collect();
            let mut block = compress(&data);
            let start = elements_start(&block);
            // (Empty data compresses to its length alone: nothing to damage.)
            let damageable = block.len() - start;
            for (at, byte) in damage.into_iter().filter(|_| damageable > 0) {
                block[start + at.index(damageable)] = byte;
            }
            let input = &block[..cut.index(block.len() + 1)];
            let (pos, at) = stride(input, start, 0, target, data.len());
            prop_assert!(at <= target);
            prop_assert_eq!(walk(input, pos, at, target), walk(input, start, 0, target));
        }
    }
}
