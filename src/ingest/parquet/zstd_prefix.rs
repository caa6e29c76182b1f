//! The first bytes of a zstd frame, without decoding the rest of its block.
//!
//! zstd (the default codec of Polars, and a common choice elsewhere) cuts
//! a page into blocks of up to 128 KiB of output, and its library decodes
//! a block whole before it gives any of it. A flow wants a few rows of
//! each column: on a Polars file, the first conversation's three rows cost
//! a 128 KiB block per column, about a third of the whole process.
//!
//! Yet a block's first output bytes depend only on its first elements
//! (RFC 8878, <https://www.rfc-editor.org/rfc/rfc8878>): its literals are
//! Huffman streams read from their ends, giving literals in order, and
//! its sequences (literal length, match length, offset) are a backward
//! FSE bitstream that gives them in order too. [`zstd_prefix`] builds the
//! block's tables, then decodes sequences and literals only as far as the
//! bytes asked for, and stops. `super::page_walk` reads a page's first
//! bytes with it when they are few against its first block
//! (`own_zstd_prefix` there), and the rest with the library: the Polars
//! file's first-conversation flow went from 4.73 to 3.61 ms (whole
//! process, medians of 30 alternated runs).
//!
//! The input is untrusted: anything malformed, a frame that needs a
//! dictionary, or input that ends before the bytes asked for gives `None`
//! and never a panic; the caller then takes the library's decoder, which
//! reports the damage. A block decoded to its end is checked as the
//! library checks it (streams consumed exactly); one left part-way is not,
//! as with snappy and LZ4 (`super::snappy_prefix`).

use std::sync::OnceLock;

/// The most a block decompresses to (RFC 8878, `Block_Maximum_Size`).
const BLOCK_MOST: usize = 128 << 10;

/// The magic number that starts a zstd frame.
const MAGIC: u32 = 0xFD2F_B528;

/// `(baseline, extra bits)` of literal length codes 16–35 (codes 0–15 are
/// their own value).
const LITERAL_LENGTHS: [(u32, u8); 20] = [
    (16, 1),
    (18, 1),
    (20, 1),
    (22, 1),
    (24, 2),
    (28, 2),
    (32, 3),
    (40, 3),
    (48, 4),
    (64, 6),
    (128, 7),
    (256, 8),
    (512, 9),
    (1024, 10),
    (2048, 11),
    (4096, 12),
    (8192, 13),
    (16384, 14),
    (32768, 15),
    (65536, 16),
];

/// `(baseline, extra bits)` of match length codes 32–52 (codes 0–31 are
/// their value plus 3).
const MATCH_LENGTHS: [(u32, u8); 21] = [
    (35, 1),
    (37, 1),
    (39, 1),
    (41, 1),
    (43, 2),
    (47, 2),
    (51, 3),
    (59, 3),
    (67, 4),
    (83, 4),
    (99, 5),
    (131, 7),
    (259, 8),
    (515, 9),
    (1027, 10),
    (2051, 11),
    (4099, 12),
    (8195, 13),
    (16387, 14),
    (32771, 15),
    (65539, 16),
];

/// Literal length, match length and offset codes: their predefined
/// distributions with their accuracy logs, then their largest symbol and
/// accuracy log.
static LITERAL_LENGTH_CODES: SequenceCode = SequenceCode::new(
    &[
        4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1,
        1, 1, -1, -1, -1, -1,
    ],
    6,
    (35, 9),
);
static MATCH_LENGTH_CODES: SequenceCode = SequenceCode::new(
    &[
        1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1,
    ],
    6,
    (52, 9),
);
static OFFSET_CODES: SequenceCode = SequenceCode::new(
    &[
        1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1,
    ],
    5,
    (31, 8),
);

/// One kind of sequence code: its predefined distribution, and that
/// distribution's decoding table once built (blocks of a few sequences
/// use them, and a table takes longer to build than their sequences to
/// decode); its largest symbol and accuracy log.
struct SequenceCode {
    counts: &'static [i16],
    log: u8,
    most: (usize, u8),
    predefined: OnceLock<Option<Fse>>,
}

impl SequenceCode {
    const fn new(counts: &'static [i16], log: u8, most: (usize, u8)) -> Self {
        Self {
            counts,
            log,
            most,
            predefined: OnceLock::new(),
        }
    }

    /// The table of these codes in a block, by their compression `mode`:
    /// predefined, one symbol (RLE), described at `data[*pos..]`, or the
    /// previous block's (`repeat`).
    fn table(&self, mode: u8, data: &[u8], pos: &mut usize, repeat: Option<Fse>) -> Option<Fse> {
        let (most_symbol, most_log) = self.most;
        match mode {
            0 => self
                .predefined
                .get_or_init(|| Fse::new(self.counts, self.log))
                .clone(),
            1 => {
                let symbol = *data.get(*pos)?;
                *pos += 1;
                (usize::from(symbol) <= most_symbol).then(|| Fse::single(symbol))
            }
            2 => {
                let (counts, log, used) = read_counts(data.get(*pos..)?, most_symbol, most_log)?;
                *pos += used;
                Fse::new(&counts, log)
            }
            _ => repeat,
        }
    }
}

/// The first `want` bytes that the zstd frames in `input` decompress to
/// (all of them if they make fewer), or `None` if the input is malformed
/// or ends before that point, or a frame needs a dictionary.
pub(super) fn zstd_prefix(input: &[u8], want: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(want.min(BLOCK_MOST));
    let mut pos = 0usize;
    while out.len() < want && pos < input.len() {
        let magic = u32::from_le_bytes(input.get(pos..pos + 4)?.try_into().ok()?);
        if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
            // A skippable frame: its length follows.
            let length = u32::from_le_bytes(input.get(pos + 4..pos + 8)?.try_into().ok()?);
            pos = pos
                .checked_add(8)?
                .checked_add(usize::try_from(length).ok()?)?;
            continue;
        }
        if magic != MAGIC {
            return None;
        }
        pos = Frame::new(&mut out, want).decode(input, pos + 4)?;
    }
    if pos > input.len() {
        return None;
    }
    Some(out)
}

/// Where the stored bytes of the first block of the zstd frame that
/// `head` starts with end, from the frame's header and the block's; `None`
/// if `head` does not start with a frame (or is too short to tell).
pub(super) fn first_block_end(head: &[u8]) -> Option<usize> {
    if head.get(..4)? != MAGIC.to_le_bytes() {
        return None;
    }
    let (pos, _) = frame_header(head, 4)?;
    let header = block_header(head, pos)?;
    let stored = if (header >> 1) & 3 == 1 {
        1
    } else {
        header >> 3
    };
    pos.checked_add(3)?.checked_add(stored)
}

/// The frame header at `pos` (after the magic number): where its first
/// block starts, and whether a checksum ends the frame. `None` for a
/// reserved bit, or a dictionary the frame needs.
fn frame_header(input: &[u8], mut pos: usize) -> Option<(usize, bool)> {
    let descriptor = *input.get(pos)?;
    pos += 1;
    if descriptor & 0x08 != 0 {
        return None; // reserved bit
    }
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        pos += 1; // window descriptor
    }
    let dictionary_bytes = [0usize, 1, 2, 4][usize::from(descriptor & 3)];
    let dictionary = input.get(pos..pos + dictionary_bytes)?;
    if dictionary.iter().any(|&b| b != 0) {
        return None;
    }
    pos += dictionary_bytes;
    pos += match descriptor >> 6 {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    Some((pos, descriptor & 0x04 != 0))
}

/// The 3-byte block header at `pos`: bit 0 marks the last block, bits 1–2
/// the block's type, the rest its size.
fn block_header(input: &[u8], pos: usize) -> Option<usize> {
    let h = input.get(pos..pos + 3)?;
    Some(usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16)
}

/// The state one frame's blocks share: its output so far, the tables a
/// later block may repeat, and the repeated offsets.
struct Frame<'o> {
    out: &'o mut Vec<u8>,
    want: usize,
    /// Where this frame's output starts in `out`: offsets reach no further
    /// back.
    start: usize,
    huffman: Option<Huffman>,
    literal_lengths: Option<Fse>,
    offsets: Option<Fse>,
    match_lengths: Option<Fse>,
    repeats: [usize; 3],
}

impl<'o> Frame<'o> {
    fn new(out: &'o mut Vec<u8>, want: usize) -> Self {
        let start = out.len();
        Self {
            out,
            want,
            start,
            huffman: None,
            literal_lengths: None,
            offsets: None,
            match_lengths: None,
            repeats: [1, 4, 8],
        }
    }

    fn done(&self) -> bool {
        self.out.len() >= self.want
    }

    /// Decodes the frame whose header starts at `pos` (after its magic
    /// number) until its end or the bytes wanted; returns where the next
    /// frame starts.
    fn decode(mut self, input: &[u8], pos: usize) -> Option<usize> {
        let (mut pos, checksum) = frame_header(input, pos)?;
        loop {
            let header = block_header(input, pos)?;
            pos += 3;
            let last = header & 1 != 0;
            let size = header >> 3;
            if size > BLOCK_MOST {
                return None;
            }
            match (header >> 1) & 3 {
                0 => {
                    let raw = input.get(pos..pos + size)?;
                    self.emit(raw);
                    pos += size;
                }
                1 => {
                    let byte = *input.get(pos)?;
                    let take = size.min(self.want - self.out.len().min(self.want));
                    self.out.resize(self.out.len() + take, byte);
                    pos += 1;
                }
                2 => {
                    self.block(input.get(pos..pos + size)?)?;
                    pos += size;
                }
                _ => return None,
            }
            if self.done() {
                return Some(pos);
            }
            if last {
                return Some(pos + if checksum { 4 } else { 0 });
            }
        }
    }

    /// Appends as much of `bytes` as is still wanted.
    fn emit(&mut self, bytes: &[u8]) {
        let take = bytes.len().min(self.want.saturating_sub(self.out.len()));
        self.out.extend_from_slice(&bytes[..take]);
    }

    /// Decodes a compressed block as far as the bytes wanted.
    fn block(&mut self, block: &[u8]) -> Option<()> {
        let (mut literals, used) = self.literals(block)?;
        let rest = block.get(used..)?;
        let (count, mut pos) = match *rest.first()? {
            0 => (0, 1),
            b @ 1..=127 => (usize::from(b), 1),
            b @ 128..=254 => ((usize::from(b - 128) << 8) + usize::from(*rest.get(1)?), 2),
            255 => {
                let low = usize::from(*rest.get(1)?) | usize::from(*rest.get(2)?) << 8;
                (low + 0x7F00, 3)
            }
        };
        if count == 0 {
            let all = literals.total;
            literals.take(all.min(self.want - self.out.len()), self.out)?;
            if !self.done() {
                literals.finish()?;
            }
            return (pos == rest.len()).then_some(());
        }
        let modes = *rest.get(pos)?;
        pos += 1;
        if modes & 3 != 0 {
            return None;
        }
        let mut table = |codes: &SequenceCode, shift: u8, repeat: Option<Fse>| {
            codes.table((modes >> shift) & 3, rest, &mut pos, repeat)
        };
        let literal_lengths = table(&LITERAL_LENGTH_CODES, 6, self.literal_lengths.take())?;
        let offsets = table(&OFFSET_CODES, 4, self.offsets.take())?;
        let match_lengths = table(&MATCH_LENGTH_CODES, 2, self.match_lengths.take())?;
        let mut bits = BackBits::new(rest.get(pos..)?)?;
        let mut ll_state = bits.read(literal_lengths.log)? as usize;
        let mut of_state = bits.read(offsets.log)? as usize;
        let mut ml_state = bits.read(match_lengths.log)? as usize;
        for n in 0..count {
            let ll_cell = *literal_lengths.cells.get(ll_state)?;
            let of_cell = *offsets.cells.get(of_state)?;
            let ml_cell = *match_lengths.cells.get(ml_state)?;
            let of_code = of_cell.symbol;
            if of_code > 31 {
                return None;
            }
            let offset_value = (1usize << of_code) + bits.read(of_code)? as usize;
            let match_length = {
                let code = usize::from(ml_cell.symbol);
                let (base, extra) = match code.checked_sub(32) {
                    None => (code as u32 + 3, 0),
                    Some(i) => *MATCH_LENGTHS.get(i)?,
                };
                base as usize + bits.read(extra)? as usize
            };
            let literal_length = {
                let code = usize::from(ll_cell.symbol);
                let (base, extra) = match code.checked_sub(16) {
                    None => (code as u32, 0),
                    Some(i) => *LITERAL_LENGTHS.get(i)?,
                };
                base as usize + bits.read(extra)? as usize
            };
            let offset = self.offset(offset_value, literal_length == 0)?;
            let take = literal_length.min(self.want - self.out.len());
            literals.take(take, self.out)?;
            if take < literal_length {
                return Some(()); // the bytes wanted end in these literals
            }
            self.copy_match(offset, match_length)?;
            if self.done() {
                return Some(());
            }
            if n + 1 < count {
                ll_state = usize::from(ll_cell.base) + bits.read(ll_cell.bits)? as usize;
                ml_state = usize::from(ml_cell.base) + bits.read(ml_cell.bits)? as usize;
                of_state = usize::from(of_cell.base) + bits.read(of_cell.bits)? as usize;
            }
        }
        if bits.left != 0 {
            return None;
        }
        self.literal_lengths = Some(literal_lengths);
        self.offsets = Some(offsets);
        self.match_lengths = Some(match_lengths);
        let left = literals.total - literals.at;
        literals.take(left.min(self.want - self.out.len()), self.out)?;
        if !self.done() {
            literals.finish()?;
        }
        Some(())
    }

    /// The offset an offset value names (values 1–3 repeat an earlier
    /// offset), with the repeated offsets updated.
    fn offset(&mut self, value: usize, no_literals: bool) -> Option<usize> {
        let r = &mut self.repeats;
        if value > 3 {
            let offset = value - 3;
            *r = [offset, r[0], r[1]];
            return Some(offset);
        }
        let offset = match value - 1 + usize::from(no_literals) {
            0 => r[0],
            1 => {
                r.swap(0, 1);
                r[0]
            }
            2 => {
                *r = [r[2], r[0], r[1]];
                r[0]
            }
            _ => {
                let offset = r[0].checked_sub(1).filter(|&o| o > 0)?;
                *r = [offset, r[0], r[1]];
                offset
            }
        };
        Some(offset)
    }

    /// Appends as much of a match of `length` bytes `offset` bytes back as
    /// is still wanted.
    fn copy_match(&mut self, offset: usize, length: usize) -> Option<()> {
        let out = &mut *self.out;
        if offset == 0 || offset > out.len() - self.start {
            return None;
        }
        let end = out.len() + length.min(self.want - out.len());
        let from = out.len() - offset;
        // An overlapping match repeats its last `offset` bytes: what it
        // has copied so far is copied again, doubling each time.
        while out.len() < end {
            let chunk = (out.len() - from).min(end - out.len());
            out.extend_from_within(from..from + chunk);
        }
        Some(())
    }

    /// The literals section at the start of `block`, to be decoded as far
    /// as taken, and its length.
    fn literals<'b>(&mut self, block: &'b [u8]) -> Option<(Literals<'b>, usize)> {
        let b0 = *block.first()?;
        let byte = |i: usize| block.get(i).map(|&b| usize::from(b));
        let kind = b0 & 3;
        let size_format = (b0 >> 2) & 3;
        if kind < 2 {
            let (total, header) = match size_format {
                0 | 2 => (usize::from(b0 >> 3), 1),
                1 => (usize::from(b0 >> 4) + (byte(1)? << 4), 2),
                _ => (usize::from(b0 >> 4) + (byte(1)? << 4) + (byte(2)? << 12), 3),
            };
            if total > BLOCK_MOST {
                return None;
            }
            let source = if kind == 0 {
                Source::Raw(block.get(header..header + total)?)
            } else {
                Source::Rle(*block.get(header)?)
            };
            let used = header + if kind == 0 { total } else { 1 };
            return Some((Literals::new(source, total), used));
        }
        let (streams, header, total, stored) = match size_format {
            0 | 1 => {
                let h = byte(0)? | byte(1)? << 8 | byte(2)? << 16;
                (
                    if size_format == 0 { 1 } else { 4 },
                    3,
                    (h >> 4) & 0x3FF,
                    (h >> 14) & 0x3FF,
                )
            }
            2 => {
                let h = byte(0)? | byte(1)? << 8 | byte(2)? << 16 | byte(3)? << 24;
                (4, 4, (h >> 4) & 0x3FFF, (h >> 18) & 0x3FFF)
            }
            _ => {
                let h = byte(0)? | byte(1)? << 8 | byte(2)? << 16 | byte(3)? << 24 | byte(4)? << 32;
                (4, 5, (h >> 4) & 0x3FFFF, (h >> 22) & 0x3FFFF)
            }
        };
        if total > BLOCK_MOST {
            return None;
        }
        let mut data = block.get(header..header + stored)?;
        if kind == 2 {
            let (weights, used) = huffman_weights(data)?;
            self.huffman = Some(Huffman::new(weights)?);
            data = data.get(used..)?;
        }
        let table = self.huffman.clone()?;
        let mut parts = [&[][..]; 4];
        if streams == 1 {
            parts[0] = data;
        } else {
            let jump = |i: usize| -> Option<usize> {
                Some(usize::from(u16::from_le_bytes(
                    data.get(i..i + 2)?.try_into().ok()?,
                )))
            };
            let (a, b, c) = (jump(0)?, jump(2)?, jump(4)?);
            let rest = data.get(6..)?;
            let (s1, rest) = rest.split_at_checked(a)?;
            let (s2, rest) = rest.split_at_checked(b)?;
            let (s3, s4) = rest.split_at_checked(c)?;
            parts = [s1, s2, s3, s4];
        }
        let segment = if streams == 1 {
            total
        } else {
            total.div_ceil(4)
        };
        let counts = if streams == 1 {
            [total, 0, 0, 0]
        } else {
            let last = total.checked_sub(3 * segment)?;
            [segment, segment, segment, last]
        };
        let source = Source::Huffman(HuffmanLiterals {
            table,
            parts,
            counts,
            part: 0,
            stream: None,
        });
        Some((Literals::new(source, total), header + stored))
    }
}

/// A block's literals, decoded as far as taken.
struct Literals<'b> {
    source: Source<'b>,
    total: usize,
    /// How many have been taken.
    at: usize,
}

enum Source<'b> {
    Raw(&'b [u8]),
    Rle(u8),
    Huffman(HuffmanLiterals<'b>),
}

impl<'b> Literals<'b> {
    fn new(source: Source<'b>, total: usize) -> Self {
        Self {
            source,
            total,
            at: 0,
        }
    }

    /// Appends the next `n` literals to `out`.
    fn take(&mut self, n: usize, out: &mut Vec<u8>) -> Option<()> {
        let from = self.at;
        let to = from.checked_add(n).filter(|&to| to <= self.total)?;
        self.at = to;
        match &mut self.source {
            Source::Raw(bytes) => out.extend_from_slice(bytes.get(from..to)?),
            Source::Rle(byte) => out.resize(out.len() + n, *byte),
            Source::Huffman(h) => {
                for _ in 0..n {
                    out.push(h.next()?);
                }
            }
        }
        Some(())
    }

    /// Decodes the literals not taken, for the checks of a block decoded
    /// to its end: every stream must end where its last literal does.
    fn finish(&mut self) -> Option<()> {
        if let Source::Huffman(h) = &mut self.source {
            for _ in self.at..self.total {
                h.next()?;
            }
            h.next_stream_if_done()?;
            if h.part < 4 && h.counts[h.part..].iter().any(|&c| c > 0) {
                return None;
            }
        }
        Some(())
    }
}

/// Huffman-coded literals: one stream, or four that each give a quarter
/// of them, decoded one stream after the other.
struct HuffmanLiterals<'b> {
    table: Huffman,
    parts: [&'b [u8]; 4],
    /// How many literals each stream gives.
    counts: [usize; 4],
    /// The stream being decoded, and how many literals it still gives.
    part: usize,
    stream: Option<(BackBits<'b>, usize)>,
}

impl HuffmanLiterals<'_> {
    /// The next literal.
    fn next(&mut self) -> Option<u8> {
        loop {
            match &mut self.stream {
                Some((bits, left)) if *left > 0 => {
                    *left -= 1;
                    let index = bits.peek(self.table.bits) as usize;
                    let (symbol, length) = *self.table.cells.get(index)?;
                    bits.consume(length)?;
                    return Some(symbol);
                }
                _ => {
                    self.next_stream_if_done()?;
                    let part = self.part;
                    let count = *self.counts.get(part)?;
                    let bits = BackBits::new(self.parts[part])?;
                    self.stream = Some((bits, count));
                    self.part += 1;
                }
            }
        }
    }

    /// Ends the current stream if it has given all its literals, checking
    /// that it ends exactly there.
    fn next_stream_if_done(&mut self) -> Option<()> {
        if let Some((bits, 0)) = &self.stream {
            if bits.left != 0 {
                return None;
            }
            self.stream = None;
        }
        Some(())
    }
}

/// A Huffman decoding table: indexed by the next `bits` bits, a symbol
/// and the length of its code.
#[derive(Clone)]
struct Huffman {
    bits: u8,
    cells: Vec<(u8, u8)>,
}

impl Huffman {
    /// The table of the symbols' `weights` (the last symbol's is implied).
    fn new(mut weights: Vec<u8>) -> Option<Self> {
        if weights.len() > 255 || weights.iter().any(|&w| w > 12) {
            return None;
        }
        let total: u32 = weights.iter().map(|&w| (1u32 << w) >> 1).sum();
        if total == 0 {
            return None;
        }
        let bits = 32 - total.leading_zeros(); // highest bit + 1
        if bits > 12 {
            return None;
        }
        let left = (1u32 << bits) - total;
        if !left.is_power_of_two() {
            return None;
        }
        weights.push(left.trailing_zeros() as u8 + 1);
        // Symbols of lower weight (longer codes) come first; within a
        // weight, in symbol order.
        let mut starts = [0u32; 14];
        for &w in &weights {
            if w > 0 {
                starts[usize::from(w)] += 1;
            }
        }
        let mut next = 0u32;
        for (w, start) in starts.iter_mut().enumerate().skip(1) {
            let count = *start;
            *start = next;
            next += count << (w - 1);
        }
        let mut cells = vec![(0u8, 0u8); 1 << bits];
        for (symbol, &w) in weights.iter().enumerate() {
            if w == 0 {
                continue;
            }
            let from = starts[usize::from(w)] as usize;
            let length = 1usize << (w - 1);
            let code_bits = bits as u8 + 1 - w;
            cells
                .get_mut(from..from + length)?
                .fill((symbol as u8, code_bits));
            starts[usize::from(w)] += length as u32;
        }
        Some(Self {
            bits: bits as u8,
            cells,
        })
    }
}

/// The Huffman tree description at the start of `data`: the weights of
/// all symbols but the last, and its length in bytes.
fn huffman_weights(data: &[u8]) -> Option<(Vec<u8>, usize)> {
    let header = usize::from(*data.first()?);
    if header >= 128 {
        // Four bits a weight, two to a byte.
        let count = header - 127;
        let bytes = data.get(1..1 + count.div_ceil(2))?;
        let weights = (0..count)
            .map(|i| {
                let b = bytes[i / 2];
                if i % 2 == 0 {
                    b >> 4
                } else {
                    b & 15
                }
            })
            .collect();
        return Some((weights, 1 + bytes.len()));
    }
    // FSE-compressed weights, decoded by two interleaved states.
    let stored = data.get(1..1 + header)?;
    let (counts, log, used) = read_counts(stored, 12, 6)?;
    let table = Fse::new(&counts, log)?;
    let mut bits = BackBits::new(stored.get(used..)?)?;
    let mut states = [bits.read(log)? as usize, bits.read(log)? as usize];
    let mut weights = Vec::with_capacity(255);
    let mut turn = 0;
    loop {
        let cell = *table.cells.get(states[turn])?;
        weights.push(cell.symbol);
        states[turn] = usize::from(cell.base) + bits.read_past_end(cell.bits) as usize;
        if bits.left < 0 {
            // The stream is spent: the other state gives the last weight.
            weights.push(table.cells.get(states[1 - turn])?.symbol);
            break;
        }
        if weights.len() > 255 {
            return None;
        }
        turn = 1 - turn;
    }
    if weights.len() > 255 {
        return None;
    }
    Some((weights, 1 + header))
}

/// One cell of an FSE decoding table: the symbol of this state, and how
/// the next state is found (`base` plus the next `bits` bits).
#[derive(Clone, Copy, Default)]
struct Cell {
    symbol: u8,
    bits: u8,
    base: u16,
}

/// An FSE decoding table of `1 << log` states.
#[derive(Clone)]
struct Fse {
    log: u8,
    cells: Vec<Cell>,
}

impl Fse {
    /// The table of the normalized `counts` (-1: a probability below one)
    /// at accuracy `log`, spread as RFC 8878 section 4.1.1 lays it out.
    fn new(counts: &[i16], log: u8) -> Option<Self> {
        let size = 1usize << log;
        let mut cells = vec![Cell::default(); size];
        let mut next = vec![0u16; counts.len()];
        let mut high = size;
        for (symbol, &count) in counts.iter().enumerate() {
            if count == -1 {
                high = high.checked_sub(1)?;
                cells[high].symbol = symbol as u8;
                next[symbol] = 1;
            } else {
                next[symbol] = u16::try_from(count).ok()?;
            }
        }
        let mask = size - 1;
        let step = (size >> 1) + (size >> 3) + 3;
        let mut position = 0usize;
        for (symbol, &count) in counts.iter().enumerate() {
            for _ in 0..count.max(0) {
                cells[position].symbol = symbol as u8;
                position = (position + step) & mask;
                while position >= high {
                    position = (position + step) & mask;
                }
            }
        }
        if position != 0 {
            return None;
        }
        for cell in &mut cells {
            let state = next.get_mut(usize::from(cell.symbol))?;
            let n = *state;
            *state += 1;
            if n == 0 {
                return None;
            }
            let bits = log.checked_sub((15 - n.leading_zeros()) as u8)?;
            cell.bits = bits;
            cell.base = u16::try_from((usize::from(n) << bits).checked_sub(size)?).ok()?;
        }
        Some(Self { log, cells })
    }

    /// The table of one symbol, repeated (RLE mode).
    fn single(symbol: u8) -> Self {
        Self {
            log: 0,
            cells: vec![Cell {
                symbol,
                bits: 0,
                base: 0,
            }],
        }
    }
}

/// An FSE table description (RFC 8878 section 4.1.1) at the start of
/// `data`: the normalized counts, the accuracy log and the description's
/// length in bytes.
fn read_counts(data: &[u8], most_symbol: usize, most_log: u8) -> Option<(Vec<i16>, u8, usize)> {
    let mut bits = ForwardBits { data, pos: 0 };
    let log = bits.read(4) as u8 + 5;
    if log > most_log {
        return None;
    }
    let mut remaining: i32 = (1 << log) + 1;
    let mut threshold: i32 = 1 << log;
    let mut width = u32::from(log) + 1;
    let mut counts: Vec<i16> = Vec::with_capacity(most_symbol + 1);
    let mut previous_zero = false;
    loop {
        if previous_zero {
            // Runs of zero counts: 2-bit repeat flags, 3 meaning more.
            loop {
                let repeat = bits.read(2) as usize;
                counts.resize(counts.len() + repeat, 0);
                if counts.len() > most_symbol + 1 {
                    return None;
                }
                if repeat < 3 {
                    break;
                }
            }
            if counts.len() > most_symbol {
                return None;
            }
        }
        let most = (2 * threshold - 1) - remaining;
        let value = bits.peek(width) as i32;
        let low = value & (threshold - 1);
        let mut count = if low < most {
            bits.pos += width as usize - 1;
            low
        } else {
            bits.pos += width as usize;
            let v = value & (2 * threshold - 1);
            if v >= threshold {
                v - most
            } else {
                v
            }
        };
        count -= 1;
        remaining -= count.abs();
        counts.push(count as i16);
        previous_zero = count == 0;
        if remaining < threshold {
            if remaining <= 1 {
                break;
            }
            width = 32 - (remaining as u32).leading_zeros();
            threshold = 1 << (width - 1);
        }
        if counts.len() > most_symbol {
            break;
        }
    }
    let used = bits.pos.div_ceil(8);
    (remaining == 1 && used <= data.len()).then_some((counts, log, used))
}

/// Bits read from the start of a byte slice, least significant first;
/// past its end they read as zeros.
struct ForwardBits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl ForwardBits<'_> {
    fn peek(&self, n: u32) -> u64 {
        let byte = self.pos / 8;
        let word = load_le(self.data, byte);
        (word >> (self.pos % 8)) & ((1u64 << n) - 1)
    }

    fn read(&mut self, n: u32) -> u64 {
        let v = self.peek(n);
        self.pos += n as usize;
        v
    }
}

/// Bits read from the end of a byte slice backwards (zstd's backward
/// bitstreams): the highest set bit of the last byte marks the start.
struct BackBits<'a> {
    data: &'a [u8],
    /// Bits not yet read; below zero once reads went past the start.
    left: isize,
}

impl<'a> BackBits<'a> {
    fn new(data: &'a [u8]) -> Option<Self> {
        let last = *data.last()?;
        if last == 0 {
            return None;
        }
        let marker = 7 - last.leading_zeros() as isize;
        Some(Self {
            data,
            left: (data.len() as isize - 1) * 8 + marker,
        })
    }

    /// The next `n` bits (at most 56) without consuming them; bits past
    /// the start read as zeros.
    fn peek(&self, n: u8) -> u64 {
        if n == 0 {
            return 0;
        }
        let n = isize::from(n);
        let mask = (1u64 << n) - 1;
        let from = self.left - n;
        if from >= 0 {
            let word = load_le(self.data, (from / 8) as usize);
            (word >> (from % 8)) & mask
        } else if self.left > 0 {
            let word = load_le(self.data, 0);
            (word << (-from)) & mask
        } else {
            0
        }
    }

    /// Consumes `n` bits; `None` if that goes past the start.
    fn consume(&mut self, n: u8) -> Option<()> {
        self.left -= isize::from(n);
        (self.left >= 0).then_some(())
    }

    /// The next `n` bits; `None` past the start.
    fn read(&mut self, n: u8) -> Option<u64> {
        let v = self.peek(n);
        self.consume(n)?;
        Some(v)
    }

    /// The next `n` bits, zeros past the start (which `left` then shows).
    fn read_past_end(&mut self, n: u8) -> u64 {
        let v = self.peek(n);
        self.left -= isize::from(n);
        v
    }
}

/// Eight bytes from `at` as a little-endian word, zeros past the end.
fn load_le(data: &[u8], at: usize) -> u64 {
    match data.get(at..at + 8) {
        Some(bytes) => u64::from_le_bytes(bytes.try_into().unwrap_or_default()),
        None => {
            let mut word = [0u8; 8];
            if let Some(tail) = data.get(at..) {
                word[..tail.len()].copy_from_slice(tail);
            }
            u64::from_le_bytes(word)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// Bytes shaped like the pages a flow reads: length-prefixed ids,
    /// timestamps that grow, dictionary indices and runs.
    fn page_like(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out = Vec::with_capacity(len);
        let mut t = 1_700_000_000_000_000u64;
        while out.len() < len {
            match next() % 4 {
                0 => {
                    let id = format!("evt-{:016x}", next() % 5_000_000);
                    out.extend_from_slice(&(id.len() as u32).to_le_bytes());
                    out.extend_from_slice(id.as_bytes());
                }
                1 => {
                    t += next() % 3_000_000;
                    out.extend_from_slice(&t.to_le_bytes());
                }
                2 => out.extend((0..next() % 40).map(|_| (next() % 7) as u8)),
                _ => out.extend(std::iter::repeat_n(
                    (next() % 256) as u8,
                    (next() % 300) as usize,
                )),
            }
        }
        out.truncate(len);
        out
    }

    fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn check(data: &[u8], level: i32) {
        let frame = zstd::bulk::compress(data, level).unwrap();
        let n = data.len();
        for want in [
            0,
            1,
            7,
            100,
            4096,
            70_000,
            128 << 10,
            (128 << 10) + 5,
            n / 2,
            n,
            n + 10,
        ] {
            let got = zstd_prefix(&frame, want).expect("a frame zstd wrote decodes");
            assert_eq!(
                got,
                data[..want.min(n)],
                "level {level}, {n} bytes, want {want}"
            );
        }
    }

    #[test]
    fn prefixes_match_the_library_at_every_level() {
        for level in [-7, -1, 1, 3, 9, 19] {
            for (seed, len) in [
                (1u64, 0usize),
                (2, 1),
                (3, 300),
                (4, 5_000),
                (5, 200_000),
                (6, 700_000),
            ] {
                check(&page_like(seed, len), level);
            }
            check(&random_bytes(7, 50_000), level);
            check(&vec![b'x'; 300_000], level);
            check(b"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabc", level);
        }
    }

    #[test]
    fn frames_one_after_another_and_skippable_frames() {
        let a = page_like(11, 150_000);
        let b = page_like(12, 90_000);
        let mut input = zstd::bulk::compress(&a, 3).unwrap();
        input.extend_from_slice(&0x184D_2A53u32.to_le_bytes());
        input.extend_from_slice(&3u32.to_le_bytes());
        input.extend_from_slice(b"xyz");
        input.extend_from_slice(&zstd::bulk::compress(&b, 5).unwrap());
        let whole = [a.as_slice(), b.as_slice()].concat();
        for want in [10, 150_000, 150_001, 200_000, whole.len(), whole.len() + 1] {
            assert_eq!(
                zstd_prefix(&input, want).unwrap(),
                whole[..want.min(whole.len())]
            );
        }
    }

    #[test]
    fn a_frame_with_a_checksum_and_content_size() {
        let data = page_like(21, 260_000);
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_checksum(true).unwrap();
        encoder.include_contentsize(true).unwrap();
        encoder
            .set_pledged_src_size(Some(data.len() as u64))
            .unwrap();
        std::io::Write::write_all(&mut encoder, &data).unwrap();
        let frame = encoder.finish().unwrap();
        assert_eq!(zstd_prefix(&frame, usize::MAX).unwrap(), data);
        assert_eq!(zstd_prefix(&frame, 1000).unwrap(), data[..1000]);
    }

    #[test]
    fn cut_or_foreign_input_gives_none() {
        let data = page_like(31, 100_000);
        let frame = zstd::bulk::compress(&data, 3).unwrap();
        assert!(zstd_prefix(&frame[..frame.len() / 2], data.len()).is_none());
        assert!(zstd_prefix(b"PAR1 not zstd", 4).is_none());
        assert!(zstd_prefix(&[], 4).unwrap().is_empty());
        // A frame that names a dictionary.
        let mut with_dictionary = frame.clone();
        with_dictionary[4] |= 1;
        with_dictionary.insert(5, 7);
        assert!(zstd_prefix(&with_dictionary, 10).is_none());
    }

    /// Inputs that take the rarer paths: sequence codes of one symbol
    /// (RLE mode), Huffman weights stored directly (a small alphabet),
    /// blocks of literals alone (no match of seven bytes), and a later
    /// block repeating an earlier one's tables.
    #[test]
    fn every_kind_of_table_and_literals() {
        use zstd::zstd_safe::CParameter;
        let mut x = 12_345u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let runs: Vec<u8> = (0..300)
            .flat_map(|i| std::iter::repeat_n(b'a' + (i % 2) as u8, 50 + i))
            .collect();
        let small_alphabet: Vec<u8> = (0..3_000)
            .map(|_| (next().trailing_zeros() as u8).min(6))
            .collect();
        let no_match: Vec<u8> = (0..1_000).map(|_| (next() % 16) as u8 + b'a').collect();
        for data in [runs, small_alphabet, no_match] {
            for level in [1, 3, 19] {
                let mut compressor = zstd::bulk::Compressor::new(level).unwrap();
                compressor.set_parameter(CParameter::MinMatch(7)).unwrap();
                let frame = compressor.compress(&data).unwrap();
                for want in [1, data.len() / 3, data.len()] {
                    assert_eq!(zstd_prefix(&frame, want).unwrap(), data[..want]);
                }
            }
        }
    }

    /// A compressed block whose literals are one byte repeated (RLE),
    /// made by hand: the library's encoder picks it too rarely to test.
    #[test]
    fn literals_of_one_repeated_byte() {
        let block = [(20 << 3) | 1, b'z', 0]; // RLE literals x 20, no sequence
        let mut frame = MAGIC.to_le_bytes().to_vec();
        frame.extend([0x20, 20]); // single segment, content size 20
        let header = 1 | (2 << 1) | (block.len() << 3);
        frame.extend(&header.to_le_bytes()[..3]);
        frame.extend(block);
        assert_eq!(zstd::bulk::decompress(&frame, 100).unwrap(), vec![b'z'; 20]);
        assert_eq!(zstd_prefix(&frame, 7).unwrap(), vec![b'z'; 7]);
        assert_eq!(zstd_prefix(&frame, 100).unwrap(), vec![b'z'; 20]);
    }

    /// The first block's end is found from the headers alone, and its
    /// bytes give any prefix within that block.
    #[test]
    fn the_first_block_ends_where_its_header_says() {
        let data = page_like(41, 400_000);
        let frame = zstd::bulk::compress(&data, 3).unwrap();
        let end = first_block_end(&frame[..21]).unwrap();
        assert!(
            end > 21 && end < frame.len() / 2,
            "{end} of {}",
            frame.len()
        );
        assert_eq!(zstd_prefix(&frame[..end], 5_000).unwrap(), data[..5_000]);
        assert!(zstd_prefix(&frame[..end], 200_000).is_none());
        assert!(first_block_end(b"PAR1PAR1PAR1PAR1PAR1P").is_none());
        assert!(first_block_end(&frame[..5]).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_prefix_of_any_frame(seed in any::<u64>(), len in 0usize..300_000,
                                   level in -3i32..12, cut in 0.0f64..1.1) {
            let data = page_like(seed, len);
            let frame = zstd::bulk::compress(&data, level).unwrap();
            let want = (len as f64 * cut) as usize;
            prop_assert_eq!(zstd_prefix(&frame, want).unwrap(), &data[..want.min(len)]);
        }

        #[test]
        fn damaged_frames_never_panic(seed in any::<u64>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                                      want in 0usize..200_000) {
            let data = page_like(seed, 150_000);
            let mut frame = zstd::bulk::compress(&data, 3).unwrap();
            for (at, byte) in flips {
                let n = frame.len();
                frame[at % n] ^= byte | 1;
            }
            let _ = zstd_prefix(&frame, want);
            let cut = seed as usize % frame.len();
            let _ = zstd_prefix(&frame[..cut], want);
        }
    }
}
