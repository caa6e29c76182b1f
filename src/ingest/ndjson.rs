//! NDJSON input: one JSON object per line, keys = column names.
//!
//! Lines are decoded into batches of the canonical columns, all as strings
//! (`Utf8View`): plain flat objects by `flat_json`, anything else by
//! `arrow-json`; `timestamp` is then parsed strictly as RFC 3339
//! with `Z` or an offset (SPEC 7), so that a malformed time is an error
//! naming its line instead of a silent guess. Blank lines are skipped;
//! unknown keys are ignored; an absent key or `null` is null. Errors name
//! the line (1-based, counting blank lines).
//!
//! A stream (gzip, a reader, a request body) is split into chunks of lines
//! on one thread while the pool decodes them; a plain file is cut into
//! byte ranges that the pool's workers read and decode side by side
//! (`line_ranges`).

use std::io::{BufRead, Read};
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow_json::reader::Decoder;
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::flat_json::{decode_flat, RowFilter};
use super::guard::guard;
pub(crate) use super::line_ranges::RangeSource;
use super::line_ranges::{each_range, lines_before, RangeLines, UTF8_BOM};
use super::normalize::utf8_to_view;
use super::pipeline::pipeline;
use super::scope::ScanScope;
use crate::error::{Error, Result};
use crate::schema::{col, COLUMNS};
use crate::time::InstantReader;

/// Rows per decoded batch, at most.
const BATCH_ROWS: usize = 8192;

/// Rows of the first decoded batches of a call. Chunks start small and
/// double every four chunks up to [`BATCH_ROWS`], so that a small call (a
/// server's POST of 10K lines) still splits into chunks that keep every
/// core busy, while a large one gets large batches. Measured on 10K-line
/// calls (2M generated events, 2 cores, as `cargo bench --bench durable`
/// runs them): in memory 0.41–0.45M events/s with 8192-row chunks only,
/// 0.58–0.66M with these; durable (fsync per call) 0.37–0.41M and
/// 0.49–0.56M.
const FIRST_BATCH_ROWS: usize = 2048;

/// Rows of the `index`-th chunk of a call (from 0).
fn chunk_rows(index: usize) -> usize {
    let doublings = (index / 4).min(BATCH_ROWS.ilog2() as usize);
    (FIRST_BATCH_ROWS << doublings).min(BATCH_ROWS)
}

/// Longest accepted line. A line is one event; anything longer is not an
/// event but a broken or hostile file, refused before it is buffered whole.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Schema the JSON decoder fills: every column as a nullable string.
fn decode_schema(columns: Option<&[&str]>) -> SchemaRef {
    Arc::new(Schema::new(
        COLUMNS
            .iter()
            .filter(|(name, _)| columns.is_none_or(|c| c.contains(name)))
            .map(|(name, _)| Field::new(*name, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

/// Deepest nesting of arrays and objects accepted in a line. An event is a
/// flat object; the limit leaves room for nested values under unknown keys
/// while keeping hostile input (thousands of levels) away from the
/// recursive parts of the JSON decoder.
pub const MAX_NESTING: usize = 64;

/// Refuses a line nested deeper than [`MAX_NESTING`]. Cheap in the common
/// case: only lines with more brackets than the limit are scanned.
fn check_nesting(line: &[u8], line_no: u64, before: LinesBefore) -> Result<()> {
    if !more_brackets_than(line, MAX_NESTING) {
        return Ok(());
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in line {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Error::data(
                        before.name(line_no),
                        format!("JSON nested deeper than {MAX_NESTING} levels"),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `line` holds more than `limit` opening brackets (`[` or `{`).
fn more_brackets_than(line: &[u8], limit: usize) -> bool {
    let mut count = 0usize;
    // Byte counters over blocks of 255 vectorise; `[` and `{` differ only
    // in bit 0x20.
    for block in line.chunks(255) {
        count += usize::from(
            block
                .iter()
                .fold(0u8, |n, &b| n + u8::from(b | 0x20 == b'{')),
        );
        if count > limit {
            return true;
        }
    }
    false
}

/// The input lines of a batch's rows, as errors name them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LineNumbers<'a> {
    /// Each row's line, counted from 1 at the start of the input, or of
    /// a file's range (see `before`).
    lines: &'a [u64],
    before: LinesBefore<'a>,
    /// Where the batch's lines lie in the input, as a key that orders
    /// the batches of one input as their lines are: the number of the
    /// first line of a stream's chunk, the offset in the file of a
    /// range's chunk.
    order: u64,
}

impl LineNumbers<'_> {
    /// The number of `row`'s line in the input, counting the lines
    /// before a range as an error would.
    #[cfg(test)]
    fn line(&self, row: usize) -> u64 {
        let before = match self.before {
            LinesBefore::Input => 0,
            LinesBefore::InFile { file, offset } => lines_before(file, offset).unwrap_or(0),
        };
        before + self.lines[row]
    }

    /// The key ordering the batches of one input (see `order`).
    pub(crate) fn order(&self) -> u64 {
        self.order
    }

    /// The name of `row`'s line in an error (`line 12`); `None` for a row
    /// not numbered.
    pub(crate) fn name(&self, row: usize) -> Option<String> {
        self.lines.get(row).map(|&line| self.before.name(line))
    }
}

/// Where the numbers of a [`LineNumbers`] count from.
#[derive(Clone, Copy, Debug, Default)]
enum LinesBefore<'a> {
    /// The start of the input.
    #[default]
    Input,
    /// The range of `file` that starts at byte `offset`: the lines before
    /// it are counted when an error names a line, and only then.
    InFile {
        file: &'a std::fs::File,
        offset: u64,
    },
}

impl LinesBefore<'_> {
    /// The name of the line numbered `line` from here (`line 12`).
    fn name(&self, line: u64) -> String {
        match *self {
            LinesBefore::Input => format!("line {line}"),
            LinesBefore::InFile { file, offset } => match lines_before(file, offset) {
                Some(before) => format!("line {}", before + line),
                None => format!("line {line} of the lines from byte {offset}"),
            },
        }
    }
}

/// A chunk's own text: bytes read into a buffer that is kept, whole and
/// initialised, from chunk to chunk. Reading into a `Vec` would first
/// zero what it reads into (4% of the CPU time of a job over an NDJSON
/// file); here, only growing the buffer does.
#[derive(Default)]
struct OwnedText {
    /// The text, then bytes of earlier chunks.
    buffer: Vec<u8>,
    len: usize,
}

impl OwnedText {
    fn as_slice(&self) -> &[u8] {
        &self.buffer[..self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buffer[..self.len]
    }

    fn len(&self) -> usize {
        self.len
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    fn extend_from_slice(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if self.buffer.len() < end {
            self.buffer.resize(end, 0);
        }
        self.buffer[self.len..end].copy_from_slice(bytes);
        self.len = end;
    }

    fn push(&mut self, byte: u8) {
        self.extend_from_slice(&[byte]);
    }

    /// Reads at most `max` bytes from `reader` onto the end of the text
    /// (one call of `read`, retried when interrupted); 0 at the end.
    fn read_from(&mut self, reader: &mut impl Read, max: usize) -> std::io::Result<usize> {
        let end = self.len + max;
        if self.buffer.len() < end {
            self.buffer.resize(end, 0);
        }
        let read = loop {
            match reader.read(&mut self.buffer[self.len..end]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                result => break result?,
            }
        };
        self.len += read.min(max);
        Ok(read)
    }
}

/// Up to [`BATCH_ROWS`] lines, contiguous, each ending with a newline.
///
/// The splitter counts the lines; the decoder finds where each ends as it
/// reads it (see `decode_flat`), and numbers the rows.
///
/// The text is the chunk's own when read from a stream, or a slice of the
/// whole input when that is in memory (a request body): the lines are
/// then decoded where they lie, never copied.
#[derive(Default)]
struct Chunk<'a> {
    owned: OwnedText,
    /// The chunk's text within the whole input, when it is a slice of it.
    borrowed: Option<&'a [u8]>,
    /// The number of the chunk's first line (1-based, counting blank
    /// lines, from the start of `before`) and how many lines it holds:
    /// counted when the chunk was split, or, for a chunk of a file's
    /// range (`uncounted`), found by the decoder: up to [`BATCH_ROWS`]
    /// lines from the range's text on.
    first_line: u64,
    line_count: usize,
    uncounted: bool,
    /// Where `first_line` counts from.
    before: LinesBefore<'a>,
    /// Whether the text is known to be ASCII (so UTF-8): its splitter
    /// saw no byte above 0x7f (see [`LineCount::ascii`]).
    ascii: bool,
    /// Filled by the decoder: the end offset (exclusive, newline
    /// included) of each non-blank line in the text, whose span opens
    /// with the blank lines before it, and the line's number.
    ends: Vec<usize>,
    lines: Vec<u64>,
}

impl<'a> Chunk<'a> {
    /// Empties the chunk, keeping its buffers.
    fn clear(&mut self) {
        self.owned.clear();
        self.borrowed = None;
        self.first_line = 0;
        self.line_count = 0;
        self.uncounted = false;
        self.before = LinesBefore::Input;
        self.ascii = false;
        self.ends.clear();
        self.lines.clear();
    }

    fn text(&self) -> &[u8] {
        self.borrowed.unwrap_or(self.owned.as_slice())
    }

    /// The text, with the line ends and numbers to fill from it.
    fn text_and_lines(&mut self) -> (&[u8], &mut Vec<usize>, &mut Vec<u64>) {
        let text = self.borrowed.unwrap_or(self.owned.as_slice());
        (text, &mut self.ends, &mut self.lines)
    }

    /// The line numbers of the chunk's rows (after `number_lines` or
    /// `split_lines`).
    fn numbers(&self) -> LineNumbers<'_> {
        LineNumbers {
            lines: &self.lines,
            before: self.before,
            order: 0,
        }
    }

    /// Cuts an uncounted chunk's text after its first `rows` lines, and
    /// counts them.
    fn count_lines_up_to(&mut self, rows: usize) -> Result<()> {
        let text = self.text();
        let count = count_lines(text, 0, 0, rows, self.first_line)?;
        // A range's text ends with a newline: its lines are whole.
        let end = count.line_start;
        self.borrowed = Some(&self.borrowed.unwrap_or_default()[..end]);
        self.line_count = count.lines;
        self.ascii = count.ascii;
        Ok(())
    }

    /// The lines an uncounted chunk's decoding read, blank ones included:
    /// those counted for `arrow-json`, else through the last with a row
    /// (blank lines after it are read only at the end of the text, where
    /// the count no longer matters).
    fn lines_read(&self) -> u64 {
        match (self.line_count, self.lines.last()) {
            (0, Some(last)) => last + 1 - self.first_line,
            (0, None) => 0,
            (counted, _) => counted as u64,
        }
    }

    fn line(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text()[start..self.ends[i]]
    }

    /// Numbers the non-blank lines whose `ends` the decoder found: in
    /// order from the first line when no line's span opens with blank
    /// lines (`spaced`), else by counting the newlines of each span.
    fn number_lines(&mut self, spaced: bool) {
        let first = self.first_line;
        let (text, ends, lines) = self.text_and_lines();
        lines.clear();
        if !spaced {
            lines.extend((0..ends.len() as u64).map(|i| first + i));
            return;
        }
        let (mut line_no, mut start) = (first - 1, 0);
        for &end in ends.iter() {
            line_no += memchr::memchr_iter(b'\n', &text[start..end]).count() as u64;
            lines.push(line_no);
            start = end;
        }
    }

    /// Finds the end of every non-blank line and numbers it, by its
    /// newline: for a chunk the flat decoder did not take.
    fn split_lines(&mut self) {
        let first = self.first_line;
        let (text, ends, lines) = self.text_and_lines();
        ends.clear();
        lines.clear();
        let mut start = 0;
        for (line_no, newline) in (first..).zip(memchr::memchr_iter(b'\n', text)) {
            let end = newline + 1;
            if !text[start..end].iter().all(u8::is_ascii_whitespace) {
                ends.push(end);
                lines.push(line_no);
            }
            start = end;
        }
    }
}

/// What [`count_lines`] found.
struct LineCount {
    /// The lines counted (newlines found).
    lines: usize,
    /// Where the line after them starts.
    line_start: usize,
    /// Whether every byte of the blocks read is ASCII: those up to the
    /// last newline counted, or the whole text when fewer were found.
    ascii: bool,
}

/// Counts up to `want` lines of `text` from `from`, 64 bytes at a time:
/// the newlines of a block are counted at once, and only the block of the
/// last line wanted is read bit by bit. The line being read started at
/// `line_start` and is numbered `line_no`. A line longer than
/// [`MAX_LINE_BYTES`] (so far, for the last) is an error naming it.
///
/// Splitting each line as it was found cost a branch per line that the
/// processor could not foresee (8% of the CPU time of a job over an
/// NDJSON file); the decoder finds each line's end anyway, as it reads it.
fn count_lines(
    text: &[u8],
    from: usize,
    mut line_start: usize,
    want: usize,
    line_no: u64,
) -> Result<LineCount> {
    let mut lines = 0usize;
    let mut high = 0u8;
    let mut block = from;
    while block < text.len() && lines < want {
        let (mut mask, block_high) = match text[block..].first_chunk::<64>() {
            Some(bytes) => newline_mask(bytes),
            None => newline_mask_of(&text[block..]),
        };
        high |= block_high;
        if mask != 0 {
            // Only the first line ending here may have started before.
            let first_end = block + mask.trailing_zeros() as usize + 1;
            if first_end - line_start > MAX_LINE_BYTES {
                return Err(line_too_long(line_no + lines as u64));
            }
            let found = mask.count_ones() as usize;
            if lines + found >= want {
                // The last line wanted ends here: drop the newlines after.
                for _ in 1..want - lines {
                    mask &= mask - 1;
                }
                lines = want;
                line_start = block + mask.trailing_zeros() as usize + 1;
                break;
            }
            lines += found;
            line_start = block + 64 - mask.leading_zeros() as usize;
        }
        block += 64;
    }
    if lines < want && text.len() - line_start > MAX_LINE_BYTES {
        return Err(line_too_long(line_no + lines as u64));
    }
    Ok(LineCount {
        lines,
        line_start,
        ascii: high & 0x80 == 0,
    })
}

/// Bytes read from a stream at a time, at most: a few pieces make a
/// chunk, each counted into lines while it is in the core's cache.
const MAX_READ_BYTES: usize = 1 << 20;

/// Bytes read from a stream at a time, at least.
const MIN_READ_BYTES: usize = 64 * 1024;

/// Bytes read beyond a chunk's estimated end, so that lines a little
/// longer than the average do not cost a read of their own.
const READ_MARGIN_BYTES: usize = 4096;

/// A stream's lines, read into chunks.
///
/// Bytes are read straight into the buffer of the chunk being filled, in
/// pieces sized to what it still needs (estimated from the lines read so
/// far), and their lines are counted right after each read (see
/// [`count_lines`]). The bytes read past a chunk's last line start the
/// next one. A buffered reader in between cost a copy of every byte in
/// user space (about 5% of the CPU time of a job over an NDJSON file).
/// A batch job reads a plain file in ranges instead (see
/// [`open_ndjson_file`]).
struct StreamChunks<R> {
    reader: R,
    /// Bytes read past the last chunk's last line.
    carry: Vec<u8>,
    /// Lines read so far, blank ones included.
    line_no: u64,
    /// Bytes of those lines.
    bytes: u64,
}

impl<R: Read> StreamChunks<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            carry: Vec::new(),
            line_no: 0,
            bytes: 0,
        }
    }

    /// Bytes to read next for a chunk that still needs `lines` lines, when
    /// `line_no` lines of `bytes` bytes were read before and `partial`
    /// bytes of the next one are held.
    fn read_size(line_no: u64, bytes: u64, lines: usize, partial: usize) -> usize {
        let per_line = match line_no {
            0 => 1024,
            n => (bytes / n) as usize + 1,
        };
        (lines.saturating_mul(per_line) + READ_MARGIN_BYTES)
            .saturating_sub(partial)
            .clamp(MIN_READ_BYTES, MAX_READ_BYTES)
    }

    /// Reads the next chunk of up to `rows` lines into `chunk`'s buffer.
    /// A chunk ends with a complete line; a last line without a newline
    /// is given one.
    fn next<'a>(&mut self, mut chunk: Chunk<'a>, rows: usize) -> Result<Chunk<'a>> {
        chunk.clear();
        chunk.owned.extend_from_slice(&self.carry);
        self.carry.clear();
        chunk.first_line = self.line_no + 1;
        // Lines read, where the next starts, and how far lines are counted.
        let (mut lines, mut line_start, mut counted) = (0usize, 0usize, 0usize);
        let mut ascii = true;
        loop {
            if counted == chunk.owned.len() {
                let line_no = self.line_no + lines as u64;
                let bytes = self.bytes + line_start as u64;
                let want = Self::read_size(line_no, bytes, rows - lines, counted - line_start);
                let read = chunk
                    .owned
                    .read_from(&mut self.reader, want)
                    .map_err(|e| Error::data_from(format!("line {}", line_no + 1), e))?;
                if read == 0 {
                    if chunk.owned.len() > line_start {
                        // A last line without a newline (not too long:
                        // the count of the text before said so).
                        chunk.owned.push(b'\n');
                        lines += 1;
                        line_start = chunk.owned.len();
                    }
                    break;
                }
            }
            let line_no = self.line_no + lines as u64 + 1;
            let text = chunk.owned.as_slice();
            let count = count_lines(text, counted, line_start, rows - lines, line_no)?;
            lines += count.lines;
            line_start = count.line_start;
            ascii &= count.ascii;
            if lines == rows {
                self.carry.extend_from_slice(&text[line_start..]);
                chunk.owned.truncate(line_start);
                break;
            }
            counted = chunk.owned.len();
        }
        if self.line_no == 0 && chunk.owned.as_slice().starts_with(UTF8_BOM) {
            // A byte order mark opens the input: blank it out for the
            // decoders (line 1 opens the first chunk).
            chunk.owned.as_mut_slice()[..UTF8_BOM.len()].fill(b' ');
        }
        self.line_no += lines as u64;
        self.bytes += line_start as u64;
        chunk.line_count = lines;
        chunk.ascii = ascii;
        Ok(chunk)
    }
}

fn line_too_long(line_no: u64) -> Error {
    Error::data(
        format!("line {line_no}"),
        format!("line longer than {MAX_LINE_BYTES} bytes"),
    )
}

/// The newlines of `block`, as bits (bit `i`: byte `i`), and 0x80 if a
/// byte of it is above 0x7f (else 0).
#[inline]
fn newline_mask(block: &[u8; 64]) -> (u64, u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        let (mut mask, mut high) = (0u64, 0i32);
        for (k, part) in block.chunks_exact(16).enumerate() {
            // SAFETY: `part` holds 16 bytes, which is what the unaligned
            // 128-bit load reads; the other intrinsics only compute on
            // registers, with SSE2, which every x86-64 processor has.
            let (bits, highs) = unsafe {
                let v = _mm_loadu_si128(part.as_ptr().cast::<__m128i>());
                let newline = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8));
                (_mm_movemask_epi8(newline), _mm_movemask_epi8(v))
            };
            mask |= u64::from(bits as u16) << (16 * k);
            high |= highs;
        }
        (mask, if high != 0 { 0x80 } else { 0 })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        newline_mask_of(block)
    }
}

/// [`newline_mask`] of up to 64 bytes, one at a time: a block's
/// everywhere, a text's last bytes on x86-64.
fn newline_mask_of(bytes: &[u8]) -> (u64, u8) {
    debug_assert!(bytes.len() <= 64);
    bytes
        .iter()
        .enumerate()
        .fold((0, 0), |(mask, high), (i, &b)| {
            (mask | (u64::from(b == b'\n') << i), high | (b & 0x80))
        })
}

/// The next chunk of `input` from `*at` (a slice of it, or, for a last
/// line without a newline, a copy with one); `*at` moves past it.
/// `line_no` counts lines read so far.
fn slice_chunk<'a>(
    input: &'a [u8],
    at: &mut usize,
    line_no: &mut u64,
    mut chunk: Chunk<'a>,
    rows: usize,
) -> Result<Chunk<'a>> {
    chunk.clear();
    if *at == 0 && input.starts_with(UTF8_BOM) {
        // A byte order mark opens the input: line 1 starts after it.
        *at = UTF8_BOM.len();
    }
    let rest = &input[*at..];
    chunk.first_line = *line_no + 1;
    let count = count_lines(rest, 0, 0, rows, *line_no + 1)?;
    let (mut lines, mut line_start) = (count.lines, count.line_start);
    if lines < rows && line_start < rest.len() {
        // A last line without a newline: the decoders want one.
        chunk.owned.extend_from_slice(rest);
        chunk.owned.push(b'\n');
        lines += 1;
        line_start = rest.len();
    } else {
        chunk.borrowed = Some(&rest[..line_start]);
    }
    *at += line_start;
    *line_no += lines as u64;
    chunk.line_count = lines;
    chunk.ascii = count.ascii;
    Ok(chunk)
}

/// A reader of gzip-compressed bytes whose errors say so.
struct Gunzip<R>(flate2::read::MultiGzDecoder<R>);

impl<R: std::io::Read> std::io::Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| std::io::Error::new(e.kind(), format!("corrupt gzip stream: {e}")))
    }
}

/// An opened NDJSON file: read range by range in parallel (see
/// `line_ranges`), or as a stream (see [`StreamChunks`]), decompressed
/// on the fly when it is gzip.
pub(crate) enum NdjsonFile {
    Ranges {
        file: std::fs::File,
        len: u64,
        source: RangeSource,
    },
    Stream(Box<dyn Read + Send>),
}

/// Opens the NDJSON file `path`, decompressing it when `gzip` (a
/// `.ndjson.gz` / `.jsonl.gz` file; concatenated gzip members are read one
/// after the other, as `zcat` does). Errors name the file.
///
/// A plain file is read in ranges from `ranges` (`pread`, or windows
/// mapped), or as one stream when it is `None`. A batch job over the
/// 3.2 GB file of `benches/compare_duckdb.py` spent, read as a stream, 9%
/// of its time counting lines on one thread and 14% in the kernel's copy;
/// in ranges, insights took 1.34 s mapped, 1.36 s read and 1.69 s as a
/// stream (medians of 5 alternated runs; conversations over 7: 1.28 s
/// mapped, 1.35 s read). The engine's own ingest of a file, which
/// decodes every line and stages every batch, was not faster in ranges
/// (2M events: 1.46–1.48 s against 1.39 s), and reads a stream.
pub(crate) fn open_ndjson_file(
    path: &Path,
    gzip: bool,
    ranges: Option<RangeSource>,
) -> Result<NdjsonFile> {
    let named = |e| Error::data_from(path.display().to_string(), e);
    let file = std::fs::File::open(path).map_err(named)?;
    match (gzip, ranges) {
        (true, _) => Ok(NdjsonFile::Stream(Box::new(Gunzip(
            flate2::read::MultiGzDecoder::new(file),
        )))),
        (false, None) => Ok(NdjsonFile::Stream(Box::new(file))),
        (false, Some(source)) => {
            let len = file.metadata().map_err(named)?.len();
            Ok(NdjsonFile::Ranges { file, len, source })
        }
    }
}

impl NdjsonFile {
    /// [`read_ndjson_columns`] over the file's lines.
    pub(crate) fn read_columns(
        self,
        columns: Option<&[&str]>,
        sink: impl Fn(RecordBatch, LineNumbers) -> Result<()> + Sync,
    ) -> Result<()> {
        self.read_in_scope(columns, None, |batch, lines, _| sink(batch, lines))
    }

    /// [`NdjsonFile::read_columns`] leaving out, where it can, the lines
    /// outside `scope` (a batch job's): `sink` gets with each batch
    /// `Some(n)` when its rows are the lines in the scope and those with a
    /// problem (to be reported as ever), `n` valid events outside it being
    /// left out, or `None` when they are all the chunk's lines.
    pub(crate) fn read_in_scope(
        self,
        columns: Option<&[&str]>,
        scope: Option<&ScanScope>,
        sink: impl Fn(RecordBatch, LineNumbers, Option<u64>) -> Result<()> + Sync,
    ) -> Result<()> {
        match self {
            NdjsonFile::Stream(reader) => read_stream(reader, columns, scope, sink),
            NdjsonFile::Ranges { file, len, source } => {
                let schema = decode_schema(columns);
                let filter = scope.and_then(|scope| RowFilter::new(&schema, scope));
                each_range(&file, len, source, |range| {
                    decode_range(&schema, &file, range, filter.as_ref(), &sink)
                })
            }
        }
    }
}

/// Decodes the lines of a file's range, [`BATCH_ROWS`] at a time, and
/// gives each batch to `sink`.
fn decode_range(
    schema: &SchemaRef,
    file: &std::fs::File,
    range: RangeLines,
    filter: Option<&RowFilter>,
    sink: &impl Fn(RecordBatch, LineNumbers, Option<u64>) -> Result<()>,
) -> Result<()> {
    let before = LinesBefore::InFile {
        file,
        offset: range.offset,
    };
    let (mut at, mut first_line) = (0usize, 1u64);
    let mut chunk = Chunk::default();
    while at < range.text.len() {
        chunk.clear();
        chunk.borrowed = Some(&range.text[at..]);
        chunk.first_line = first_line;
        chunk.uncounted = true;
        chunk.before = before;
        let decoded = decode_chunk(schema, &mut chunk, filter)?;
        if chunk.text().is_empty() {
            // Every chunk reads a line at least; never loop on none.
            return Err(Error::data(
                "ndjson",
                "internal error: a chunk read no line",
            ));
        }
        at += chunk.text().len();
        first_line += chunk.lines_read();
        if decoded.batch.num_rows() == 0 && decoded.left_out.is_none() {
            continue; // blank lines only
        }
        let lines = LineNumbers {
            lines: decoded.lines.as_deref().unwrap_or(&chunk.lines),
            before,
            order: range.offset + (at - chunk.text().len()) as u64,
        };
        sink(decoded.batch, lines, decoded.left_out)?;
    }
    Ok(())
}

/// Whether `path` names a gzip-compressed file (`.gz`, any case).
pub(crate) fn is_gzip_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// Reads NDJSON from `reader`, calling `sink` with each batch (canonical
/// column names, strings as `Utf8View`, timestamps as µs UTC) and the line
/// number of each row.
///
/// Lines are split into chunks (2048 lines at first, growing to 8192) on
/// the calling thread while earlier chunks are decoded in parallel (see
/// `pipeline`); `sink` may be called from several threads, in any order.
/// When several lines are bad, the error names the first.
pub fn read_ndjson(
    reader: impl BufRead,
    sink: impl Fn(RecordBatch, &[u64]) -> Result<()> + Sync,
) -> Result<()> {
    read_ndjson_columns(reader, None, |batch, lines| sink(batch, lines.lines))
}

/// [`read_ndjson`] decoding only the event columns in `columns` (None =
/// all): the values of other keys are parsed as JSON but not converted or
/// checked, which a batch job that does not read them skips (the values of
/// every key are decoded on ingest).
pub(crate) fn read_ndjson_columns(
    reader: impl BufRead,
    columns: Option<&[&str]>,
    sink: impl Fn(RecordBatch, LineNumbers) -> Result<()> + Sync,
) -> Result<()> {
    read_stream(reader, columns, None, |batch, lines, _| sink(batch, lines))
}

/// [`read_ndjson_columns`] within `scope` (see
/// [`NdjsonFile::read_in_scope`]).
fn read_stream(
    reader: impl Read,
    columns: Option<&[&str]>,
    scope: Option<&ScanScope>,
    sink: impl Fn(RecordBatch, LineNumbers, Option<u64>) -> Result<()> + Sync,
) -> Result<()> {
    let mut chunks = StreamChunks::new(reader);
    let next = |spare, rows| chunks.next(spare, rows);
    decode_chunks(columns, scope, next, sink)
}

/// [`read_ndjson`] over NDJSON held in memory whole (a request body):
/// chunks are slices of `text`, decoded where they lie.
pub(crate) fn read_ndjson_bytes(
    text: &[u8],
    sink: impl Fn(RecordBatch, LineNumbers) -> Result<()> + Sync,
) -> Result<()> {
    read_slice(text, None, None, |batch, lines, _| sink(batch, lines))
}

/// [`read_ndjson_columns`] over `text`, in place.
fn read_slice(
    text: &[u8],
    columns: Option<&[&str]>,
    scope: Option<&ScanScope>,
    sink: impl Fn(RecordBatch, LineNumbers, Option<u64>) -> Result<()> + Sync,
) -> Result<()> {
    let (mut at, mut line_no) = (0usize, 0u64);
    let next = |spare, rows| slice_chunk(text, &mut at, &mut line_no, spare, rows);
    decode_chunks(columns, scope, next, sink)
}

/// Splits chunks with `next(spare, rows)` on the calling thread and
/// decodes them on the pool (see `pipeline`).
fn decode_chunks<'a>(
    columns: Option<&[&str]>,
    scope: Option<&ScanScope>,
    mut next: impl FnMut(Chunk<'a>, usize) -> Result<Chunk<'a>>,
    sink: impl Fn(RecordBatch, LineNumbers, Option<u64>) -> Result<()> + Sync,
) -> Result<()> {
    let schema = decode_schema(columns);
    let filter = scope.and_then(|scope| RowFilter::new(&schema, scope));
    let in_flight = 2 * rayon::current_num_threads().max(1);
    let mut ended = false;
    let mut index = 0;
    pipeline(
        in_flight,
        |spare: Option<Chunk<'a>>| {
            if ended {
                return Ok(None);
            }
            let rows = chunk_rows(index);
            index += 1;
            let chunk = next(spare.unwrap_or_default(), rows)?;
            ended = chunk.line_count < rows;
            Ok((chunk.line_count > 0).then_some(chunk))
        },
        |chunk| {
            let decoded = decode_chunk(&schema, chunk, filter.as_ref())?;
            if decoded.batch.num_rows() == 0 && decoded.left_out.is_none() {
                return Ok(()); // blank lines only
            }
            let lines = LineNumbers {
                lines: decoded.lines.as_deref().unwrap_or(&chunk.lines),
                before: LinesBefore::Input,
                order: chunk.first_line,
            };
            sink(decoded.batch, lines, decoded.left_out)
        },
    )
}

/// Feeds all of `bytes` to the decoder.
fn feed(
    decoder: &mut Decoder,
    mut bytes: &[u8],
) -> std::result::Result<(), arrow_schema::ArrowError> {
    while !bytes.is_empty() {
        let used = decoder.decode(bytes)?;
        if used == 0 {
            // A full decoder stops before trailing whitespace; anything
            // else left over is more rows than a chunk holds.
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(());
            }
            return Err(arrow_schema::ArrowError::JsonError(
                "decoder made no progress".into(),
            ));
        }
        bytes = &bytes[used..];
    }
    Ok(())
}

fn new_decoder(schema: &SchemaRef) -> Result<Decoder> {
    arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(BATCH_ROWS)
        .build_decoder()
        .map_err(|e| Error::data_from("ndjson", e))
}

/// Decodes a chunk into a batch with parsed timestamps, one row per
/// non-blank line. The decoder reads the chunk as one stream of JSON
/// values, so an object spanning lines or two objects on one line show as
/// a row count different from the line count (or a decoding error); the
/// first offending line is then found by decoding lines one at a time.
///
/// Lines of plain flat objects (nearly all event lines) are read by
/// [`decode_flat`]; a chunk with any other line goes to `arrow-json`, and
/// its strings are then given as views too, so that every batch has the
/// same schema. A panic of the JSON decoder is a data error.
fn decode_chunk(
    schema: &SchemaRef,
    chunk: &mut Chunk,
    filter: Option<&RowFilter>,
) -> Result<DecodedChunk> {
    guard("ndjson", || {
        let (ascii, uncounted) = (chunk.ascii, chunk.uncounted);
        let max_rows = if uncounted {
            BATCH_ROWS
        } else {
            chunk.line_count
        };
        let (text, ends, _) = chunk.text_and_lines();
        let flat = decode_flat(schema, text, max_rows, ascii, filter, ends);
        // A counted chunk holds `line_count` lines: the decoder reads them
        // all. An uncounted one ends where the decoder stopped.
        let flat = flat.filter(|rows| uncounted || rows.end == text.len());
        if let Some(rows) = flat {
            if let Some(text) = chunk.borrowed.as_mut() {
                *text = &text[..rows.end];
            }
            chunk.number_lines(rows.spaced);
            let before = chunk.before;
            let Some(kept) = rows.kept else {
                let batch = with_timestamps(rows.batch, chunk.numbers())?;
                return Ok(DecodedChunk::whole(batch));
            };
            let lines: Vec<u64> = kept.iter().map(|&i| chunk.lines[i as usize]).collect();
            let numbers = LineNumbers {
                lines: &lines,
                before,
                order: 0,
            };
            return Ok(DecodedChunk {
                batch: with_timestamps(rows.batch, numbers)?,
                left_out: Some((chunk.lines.len() - lines.len()) as u64),
                lines: Some(lines),
            });
        }
        if uncounted {
            chunk.count_lines_up_to(BATCH_ROWS)?;
        }
        // The flat decoder takes only strings and nulls as values, so a
        // chunk it read holds no nesting; `arrow-json` gets none deeper
        // than the limit.
        chunk.split_lines();
        for (i, &line_no) in chunk.lines.iter().enumerate() {
            check_nesting(chunk.line(i), line_no, chunk.before)?;
        }
        let batch = decode_with_arrow_json(schema, chunk)?;
        Ok(DecodedChunk::whole(with_timestamps(
            as_views(&batch)?,
            chunk.numbers(),
        )?))
    })
}

/// A chunk's batch: of all its lines, or, filtered by a scan's scope, of
/// the lines `lines` only, `left_out` others being valid events outside
/// the scope.
struct DecodedChunk {
    batch: RecordBatch,
    lines: Option<Vec<u64>>,
    left_out: Option<u64>,
}

impl DecodedChunk {
    fn whole(batch: RecordBatch) -> Self {
        Self {
            batch,
            lines: None,
            left_out: None,
        }
    }
}

/// `batch` with its `Utf8` columns as `Utf8View`.
fn as_views(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let view: ArrayRef = match column.as_string_opt::<i32>() {
            Some(utf8) => match utf8_to_view(utf8) {
                Some(view) => Arc::new(view),
                None => arrow_cast::cast(column, &DataType::Utf8View)
                    .map_err(|e| Error::data_from("ndjson", e))?,
            },
            None => column.clone(),
        };
        fields.push(Field::new(field.name(), view.data_type().clone(), true));
        columns.push(view);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::data_from("ndjson", e))
}

/// The rows of `chunk` decoded by `arrow-json` (strings as `Utf8`).
fn decode_with_arrow_json(schema: &SchemaRef, chunk: &Chunk) -> Result<RecordBatch> {
    let mut decoder = new_decoder(schema)?;
    let decoded = feed(&mut decoder, chunk.text()).and_then(|_| decoder.flush());
    match decoded {
        Ok(Some(batch)) if batch.num_rows() == chunk.lines.len() => Ok(batch),
        Ok(_) => Err(first_bad_line(schema, chunk)?
            .unwrap_or_else(|| Error::data("ndjson", "rows do not match lines"))),
        Err(e) => {
            Err(first_bad_line(schema, chunk)?.unwrap_or_else(|| Error::data_from("ndjson", e)))
        }
    }
}

/// The error of the first line of `chunk` that is not exactly one JSON
/// value on its own, if any.
fn first_bad_line(schema: &SchemaRef, chunk: &Chunk) -> Result<Option<Error>> {
    let name = |line_no| chunk.before.name(line_no);
    for (i, &line_no) in chunk.lines.iter().enumerate() {
        let mut single = new_decoder(schema)?;
        let rows = feed(&mut single, chunk.line(i))
            .and_then(|_| single.flush())
            .map(|batch| batch.map_or(0, |b| b.num_rows()));
        match rows {
            Ok(1) => {}
            Ok(_) => {
                return Ok(Some(Error::data(
                    name(line_no),
                    "more than one JSON value on one line (NDJSON holds one object per line)",
                )))
            }
            // The decoder's word for a line that ends inside a value.
            Err(e) if e.to_string().contains("Truncated record") => {
                return Ok(Some(Error::data(
                    name(line_no),
                    "the JSON value does not end on its line (NDJSON holds one object per line)",
                )))
            }
            Err(e) => return Ok(Some(Error::data_from(name(line_no), e))),
        }
    }
    Ok(None)
}

/// Replaces the string `timestamp` column by parsed µs timestamps.
fn with_timestamps(batch: RecordBatch, lines: LineNumbers) -> Result<RecordBatch> {
    let schema = batch.schema();
    let idx = schema
        .index_of(col::TIMESTAMP)
        .map_err(|e| Error::data_from("ndjson", e))?;
    let text = batch
        .column(idx)
        .as_string_view_opt()
        .ok_or_else(|| Error::data("ndjson", "timestamps not decoded as string views"))?;
    let mut micros = Vec::with_capacity(text.len());
    let mut reader = InstantReader::default();
    for (row, value) in text.iter().enumerate() {
        micros.push(match value {
            None => None,
            Some(v) => Some(reader.micros(v).map_err(|_| {
                Error::data(
                    format!(
                        "{}, column `{}`",
                        lines
                            .name(row)
                            .unwrap_or_else(|| format!("row {}", row + 1)),
                        col::TIMESTAMP
                    ),
                    format!(
                        "`{}` is not an RFC 3339 timestamp with `Z` or an offset",
                        v.chars().take(64).collect::<String>()
                    ),
                )
            })?),
        });
    }
    let timestamps: ArrayRef =
        Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC"));
    let mut columns = batch.columns().to_vec();
    columns[idx] = timestamps;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.name() == col::TIMESTAMP {
                Field::new(col::TIMESTAMP, columns[idx].data_type().clone(), true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::data_from("ndjson", e))
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        /// Lines are counted as a naive count counts them, from any
        /// place, with any number wanted, in texts of any length and
        /// density of newlines; and whether the bytes read are ASCII.
        #[test]
        fn lines_are_counted_as_one_by_one(
            text in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => 0u8..0x80,
                    1 => proptest::strategy::Just(b'\n'),
                    1 => 0x80u8..,
                ],
                0..400,
            ),
            from in 0usize..400,
            want in 1usize..40,
        ) {
            let from = from.min(text.len());
            let count = super::count_lines(&text, from, 0, want, 1).unwrap();
            let newlines: Vec<usize> = (from..text.len()).filter(|&i| text[i] == b'\n').collect();
            let lines = newlines.len().min(want);
            proptest::prop_assert_eq!(count.lines, lines);
            let line_start = match lines {
                0 => 0,
                n => newlines[n - 1] + 1,
            };
            proptest::prop_assert_eq!(count.line_start, line_start);
            // The bytes read: whole blocks of 64 from `from`, up to the
            // last newline wanted, or to the end.
            let read_to = match lines == want {
                true => (from + (line_start - 1 - from) / 64 * 64 + 64).min(text.len()),
                false => text.len(),
            };
            proptest::prop_assert_eq!(count.ascii, text[from..read_to].is_ascii());
        }
    }

    use super::*;
    use crate::error::ErrorKind;

    fn read(text: &[u8]) -> Result<Vec<RecordBatch>> {
        let out = std::sync::Mutex::new(Vec::new());
        read_ndjson(text, |b, _| {
            out.lock().unwrap().push(b);
            Ok(())
        })?;
        Ok(out.into_inner().unwrap())
    }

    #[test]
    fn a_projection_decodes_only_its_columns() {
        let text = b"{\"event_id\":\"e1\",\"timestamp\":\"2024-03-01T10:00:00Z\",\"bot_id\":\"b\",\"conversation_id\":\"c\",\"event_type\":\"message\",\"campaign_id\":{\"not\":\"a string\"}}\n";
        // Ingest decodes every event column: the object is refused.
        assert!(read(text).is_err());
        let columns = [
            col::EVENT_ID,
            col::TIMESTAMP,
            col::BOT_ID,
            col::CONVERSATION_ID,
            col::EVENT_TYPE,
        ];
        let out = std::sync::Mutex::new(Vec::new());
        read_ndjson_columns(&text[..], Some(&columns), |b, _| {
            out.lock().unwrap().push(b);
            Ok(())
        })
        .unwrap();
        let batches = out.into_inner().unwrap();
        assert_eq!(batches[0].num_rows(), 1);
        assert_eq!(batches[0].num_columns(), columns.len());
        // Syntax is still checked on every key.
        let broken = b"{\"event_id\":\"e1\",\"timestamp\":\"2024-03-01T10:00:00Z\",\"bot_id\":\"b\",\"conversation_id\":\"c\",\"event_type\":\"m\",\"campaign_id\":[1,}\n";
        assert!(read_ndjson_columns(&broken[..], Some(&columns), |_, _| Ok(())).is_err());
    }

    /// Chunks read by the flat decoder and by arrow-json (an escape sends
    /// a chunk there) give batches of one schema, with the same values.
    #[test]
    fn every_batch_has_the_same_schema_whichever_decoder_read_it() {
        let line = |id: &str| {
            format!("{{\"event_id\":\"{id}\",\"timestamp\":\"2024-03-01T10:00:00Z\",\"bot_id\":\"b\",\"conversation_id\":\"c\",\"event_type\":\"message\"}}\n")
        };
        let plain = line("e1");
        let escaped = line("e\\u0031");
        let mut batches = Vec::new();
        for text in [&plain, &escaped] {
            batches.extend(read(text.as_bytes()).unwrap());
        }
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].schema(), batches[1].schema());
        let ids: Vec<String> = batches
            .iter()
            .map(|b| {
                b.column_by_name("event_id")
                    .unwrap()
                    .as_string_view()
                    .value(0)
                    .to_owned()
            })
            .collect();
        assert_eq!(ids, ["e1", "e1"]);
    }

    #[test]
    fn reads_lines_skipping_blank_ones() {
        let text = b"{\"event_id\":\"e1\",\"timestamp\":\"2024-03-01T10:00:00.250Z\",\"bot_id\":\"b\",\"conversation_id\":\"c\",\"event_type\":\"message\",\"extra\":{\"deep\":[1,2]}}\n\n   \n{\"event_id\":\"e2\",\"timestamp\":\"2024-03-01T12:00:00+02:00\",\"bot_id\":\"b\",\"conversation_id\":\"c\",\"event_type\":\"message\",\"language\":null}";
        let batches = read(text).unwrap();
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        assert_eq!(b.num_rows(), 2);
        let ts = b
            .column_by_name("timestamp")
            .unwrap()
            .as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_709_287_200_250_000);
        assert_eq!(ts.value(1), 1_709_287_200_000_000);
    }

    #[test]
    fn errors_name_the_line() {
        let cases: [(&[u8], &str); 5] = [
            (b"{\"event_id\":\"e1\"}\nnot json\n", "line 2"),
            (b"\n[1,2,3]\n", "line 2"),
            (
                b"{\"event_id\":\"e1\",\"timestamp\":\"2024-03-01 10:00\"}\n",
                "line 1",
            ),
            (b"{\"event_id\":\"e1\"}\n{\"bot_id\":5}\n", "line 2"),
            (b"{\"event_id\":\"e\xff\"}\n", "line 1"),
        ];
        for (text, expected) in cases {
            let err = read(text).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Data);
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    /// Text in memory is split into lines by blocks that also tell ASCII
    /// chunks apart, which are not checked to be UTF-8 again: strings
    /// with other characters still decode, and a byte that is not UTF-8,
    /// in any block, is still refused, naming its line.
    #[test]
    fn text_in_memory_is_checked_to_be_utf8_unless_ascii() {
        let line = |id: &str| {
            format!(
                "{{\"event_id\":\"{id}\",\"timestamp\":\"2024-03-01T10:00:00Z\",\"bot_id\":\"b\",\"conversation_id\":\"c\",\"event_type\":\"message\"}}\n"
            )
        };
        let ids = ["e1", "é-2", "e3-🙂", "e4"];
        let text: String = ids.iter().map(|id| line(id)).collect();
        let mut got = Vec::new();
        let out = std::sync::Mutex::new(Vec::new());
        read_ndjson_bytes(text.as_bytes(), |b, _| {
            out.lock().unwrap().push(b);
            Ok(())
        })
        .unwrap();
        for batch in out.into_inner().unwrap() {
            let ids = batch.column_by_name(col::EVENT_ID).unwrap();
            let ids = ids.as_string_view();
            got.extend(ids.iter().map(|v| v.unwrap().to_owned()));
        }
        assert_eq!(got, ids);
        // Inside line 3's strings (after two lines of more than 64 bytes),
        // near its start and more than 64 bytes into it: a decoder that
        // took the chunk for ASCII would accept the byte as a value's.
        let third = text.match_indices('\n').nth(1).unwrap().0 + 1;
        for value in ["e3-", "message"] {
            let at = third + text[third..].find(value).unwrap();
            let mut bytes = text.clone().into_bytes();
            bytes[at] = 0xff;
            let err = read_ndjson_bytes(&bytes, |_, _| Ok(())).unwrap_err();
            assert!(err.to_string().contains("line 3"), "{value}: {err}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_shallow_nesting_is_fine() {
        let deep = format!(
            "{{\"event_id\":\"e1\",\"x\":{}1{}}}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let err = read(deep.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("line 1: JSON nested deeper"),
            "{err}"
        );
        let brackets_in_strings = format!("{{\"event_id\":\"{}\"}}\n", "[".repeat(1000));
        assert!(read(brackets_in_strings.as_bytes()).is_ok());
        let shallow = "{\"event_id\":\"e1\",\"x\":{\"a\":[[1]]}}\n";
        assert!(read(shallow.as_bytes()).is_ok());
    }

    /// Nesting is checked where a chunk leaves the flat decoder, and the
    /// error still names the nested line, after flat lines, in any chunk
    /// (the first chunks are small), ahead of a bad timestamp later on.
    #[test]
    fn deep_nesting_is_found_after_flat_lines() {
        let flat = "{\"event_id\":\"e\",\"timestamp\":\"2024-01-01T00:00:00Z\"}\n";
        let deep = format!(
            "{{\"event_id\":\"e\",\"x\":{}1{}}}\n",
            "[".repeat(MAX_NESTING + 1),
            "]".repeat(MAX_NESTING + 1)
        );
        let bad_time = "{\"event_id\":\"e\",\"timestamp\":\"yesterday\"}\n";
        for before in [0, 3, 1_500, 20_000] {
            let text = format!("{}{deep}{bad_time}", flat.repeat(before));
            let err = read(text.as_bytes()).unwrap_err().to_string();
            let expected = format!("line {}: JSON nested deeper", before + 1);
            assert!(err.contains(&expected), "{before}: {err}");
        }
        let limit = format!(
            "{{\"event_id\":\"e\",\"x\":{}1{}}}\n",
            "[".repeat(MAX_NESTING - 1),
            "]".repeat(MAX_NESTING - 1)
        );
        assert!(read(format!("{flat}{limit}").as_bytes()).is_ok());
    }

    /// Rows and their line numbers, whatever the reader's buffer size:
    /// lines split across buffer refills and pieces, blank and CRLF lines,
    /// chunk boundaries, a last line without a newline.
    #[test]
    fn splitting_does_not_depend_on_the_reader_buffer() {
        let mut text = String::new();
        let mut expected = Vec::new();
        let mut line_no = 0u64;
        for i in 0..(2 * BATCH_ROWS + 37) {
            line_no += 1;
            match i % 7 {
                3 => text.push_str("   \n"),
                5 => text.push_str("\r\n"),
                _ => {
                    let pad = "x".repeat(i % 300);
                    text.push_str(&format!(
                        "{{\"event_id\":\"e{i}{pad}\",\"bot_id\":\"b\"}}{}",
                        if i % 11 == 0 { "\r\n" } else { "\n" }
                    ));
                    expected.push((format!("e{i}{pad}"), line_no));
                }
            }
        }
        text.push_str("{\"event_id\":\"last\"}");
        expected.push(("last".into(), line_no + 1));
        for capacity in [1, 7, 4096, 1 << 20] {
            let reader = std::io::BufReader::with_capacity(capacity, text.as_bytes());
            let rows = rows_of(|sink| read_ndjson_columns(reader, None, sink));
            assert_eq!(rows, expected, "buffer of {capacity} bytes");
        }
        // A reader that gives a few bytes per read, and is now and then
        // interrupted: lines and chunks split across any number of reads.
        for most in [1, 3, 64, 1000] {
            let reader = Trickle {
                text: text.as_bytes(),
                most,
                reads: 0,
            };
            let rows = rows_of(|sink| read_stream(reader, None, None, |b, l, _| sink(b, l)));
            assert_eq!(rows, expected, "at most {most} bytes per read");
        }
        // In memory whole (slices of the input), and read from a file, a
        // few large reads at a time.
        let in_memory = rows_of(|sink| read_ndjson_bytes(text.as_bytes(), sink));
        assert_eq!(in_memory, expected, "in memory");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        std::fs::write(&path, &text).unwrap();
        for ranges in [None, Some(RangeSource::Read), Some(RangeSource::Mapped)] {
            let file = open_ndjson_file(&path, false, ranges).unwrap();
            let rows = rows_of(|sink| file.read_columns(None, sink));
            assert_eq!(rows, expected, "from a file, {ranges:?}");
        }
    }

    /// A reader of `text` giving at most `most` bytes per read, and
    /// interrupted at every seventh.
    struct Trickle<'a> {
        text: &'a [u8],
        most: usize,
        reads: usize,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.reads += 1;
            if self.reads % 7 == 0 {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(self.most).min(self.text.len());
            buf[..n].copy_from_slice(&self.text[..n]);
            self.text = &self.text[n..];
            Ok(n)
        }
    }

    /// A read error is the call's error, naming the line being read.
    #[test]
    fn a_read_error_names_the_line_being_read() {
        struct Failing(usize);
        impl std::io::Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let line = b"{\"event_id\":\"e\"}\n";
                if self.0 == 0 {
                    return Err(std::io::Error::other("disk on fire"));
                }
                self.0 -= 1;
                let n = line.len().min(buf.len());
                buf[..n].copy_from_slice(&line[..n]);
                Ok(n)
            }
        }
        let err = read_stream(Failing(3), None, None, |_, _, _| Ok(())).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("line 4") && shown.contains("disk on fire"),
            "{shown}"
        );
    }

    /// The `event_id` of every row `read` gives its sink, with its line
    /// number, in line order.
    fn rows_of(read: impl FnOnce(&Sink) -> Result<()>) -> Vec<(String, u64)> {
        let rows = std::sync::Mutex::new(Vec::new());
        read(&|batch: RecordBatch, lines: LineNumbers| {
            let ids = batch.column_by_name("event_id").unwrap().as_string_view();
            let mut rows = rows.lock().unwrap();
            for (row, id) in ids.iter().enumerate() {
                rows.push((id.unwrap().to_string(), lines.line(row)));
            }
            Ok(())
        })
        .unwrap();
        let mut rows = rows.into_inner().unwrap();
        rows.sort_by_key(|(_, line)| *line);
        rows
    }

    type Sink<'a> = dyn Fn(RecordBatch, LineNumbers) -> Result<()> + Sync + 'a;

    /// What reading from a stream and from memory share: a byte order
    /// mark, blank lines at either end, an empty input, a line too long,
    /// errors naming their line.
    #[test]
    fn in_memory_input_reads_as_a_stream_does() {
        let line = r#"{"event_id":"e","timestamp":"2024-03-01T10:00:00Z"}"#;
        let cases = [
            String::new(),
            "\n\n  \n".to_string(),
            format!("\u{feff}{line}\n{line}"),
            format!("\n\n{line}\n\n"),
            format!("{line}\n{{\"event_id\":\"e\",\"timestamp\":\"yesterday\"}}\n"),
            format!("{line}\n{{\"event_id\":\n"),
            format!("{line}\n{}\n", "x".repeat(MAX_LINE_BYTES + 1)),
        ];
        for text in cases {
            let collect = |read: &dyn Fn(&Sink) -> Result<()>| {
                let rows = std::sync::Mutex::new(Vec::new());
                let result = read(&|batch: RecordBatch, lines: LineNumbers| {
                    let ids = batch.column_by_name("event_id").unwrap().as_string_view();
                    let mut rows = rows.lock().unwrap();
                    rows.extend(
                        ids.iter()
                            .enumerate()
                            .map(|(row, v)| (v.map(str::to_string), lines.line(row))),
                    );
                    Ok(())
                });
                let mut rows = rows.into_inner().unwrap();
                rows.sort_by_key(|(_, line)| *line);
                result.map(|()| rows).map_err(|e| e.to_string())
            };
            let streamed = collect(&|sink| read_ndjson_columns(text.as_bytes(), None, sink));
            let in_memory = collect(&|sink| read_ndjson_bytes(text.as_bytes(), sink));
            let shown = text.chars().take(80).collect::<String>();
            assert_eq!(in_memory, streamed, "{shown:?}");
        }
    }

    /// A file of many ranges: every row numbered as its line, and each
    /// kind of bad line named by its number, the first of two, whether
    /// the ranges are read or mapped.
    #[test]
    fn a_files_ranges_number_their_lines_and_name_the_first_bad_one() {
        let good = |i: usize| {
            format!(r#"{{"event_id":"e{i}","timestamp":"2024-03-01T10:00:00Z","bot_id":"b"}}"#)
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let lines = 30_000; // 2 MB: ranges of 64 KiB or more
        let mut text = String::new();
        let mut expected = Vec::new();
        for i in 1..=lines {
            if i % 1000 == 0 {
                text.push('\n'); // a blank line
                continue;
            }
            text.push_str(&good(i));
            text.push('\n');
            expected.push((format!("e{i}"), i as u64));
        }
        std::fs::write(&path, &text).unwrap();
        for source in [RangeSource::Read, RangeSource::Mapped] {
            let file = open_ndjson_file(&path, false, Some(source)).unwrap();
            assert!(matches!(file, NdjsonFile::Ranges { .. }));
            let rows = rows_of(|sink| file.read_columns(None, sink));
            assert_eq!(rows, expected, "{source:?}");
        }
        let nested = format!(
            r#"{{"event_id":"e","x":{}1{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        let bad_lines = [
            (
                r#"{"event_id":"e","timestamp":"yesterday"}"#.to_string(),
                "RFC 3339",
            ),
            (
                r#"{"event_id":"e"} {"event_id":"f"}"#.to_string(),
                "more than one JSON value",
            ),
            (
                r#"{"event_id":"e","#.to_string(),
                "does not end on its line",
            ),
            (nested, "nested deeper"),
        ];
        for (bad, what) in bad_lines {
            let mut lines: Vec<String> = (1..=lines).map(good).collect();
            lines[21_233] = bad.clone();
            lines[27_001] = bad.clone();
            std::fs::write(&path, lines.join("\n")).unwrap();
            for source in [RangeSource::Read, RangeSource::Mapped] {
                let file = open_ndjson_file(&path, false, Some(source)).unwrap();
                let err = file
                    .read_columns(None, |_, _| Ok(()))
                    .unwrap_err()
                    .to_string();
                assert!(
                    err.contains("line 21234") && err.contains(what),
                    "{source:?}: {err}"
                );
            }
        }
        // A sink's error names a row's line as the reader numbers it.
        std::fs::write(&path, &text).unwrap();
        let file = open_ndjson_file(&path, false, Some(RangeSource::Read)).unwrap();
        let err = file
            .read_columns(None, |batch, lines| {
                let ids = batch.column_by_name("event_id").unwrap().as_string_view();
                match ids.iter().position(|id| id == Some("e25001")) {
                    Some(row) => Err(Error::data(lines.name(row).unwrap(), "refused")),
                    None => Ok(()),
                }
            })
            .unwrap_err();
        assert!(err.to_string().contains("line 25001: refused"), "{err}");
    }

    #[test]
    fn line_length_limit_is_exact() {
        let line = |len: usize| {
            let mut l = format!("{{\"event_id\":\"{}\"}}", "a".repeat(len - 16));
            l.push('\n');
            assert_eq!(l.len(), len);
            l
        };
        // As a stream, and as a file's ranges.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.ndjson");
        let from_file = |text: &str| {
            std::fs::write(&path, text).unwrap();
            let file = open_ndjson_file(&path, false, Some(RangeSource::Read)).unwrap();
            file.read_columns(None, |_, _| Ok(()))
        };
        let mut ok = line(MAX_LINE_BYTES);
        ok.push_str(&line(100));
        assert!(read(ok.as_bytes()).is_ok());
        assert!(from_file(&ok).is_ok());
        let long = format!("{}{}", line(100), line(MAX_LINE_BYTES + 1));
        // Without a newline, the line is refused as soon as it is too long.
        let unterminated = format!("{}{}", line(100), "a".repeat(MAX_LINE_BYTES + 1));
        for text in [long, unterminated] {
            for err in [
                read(text.as_bytes()).unwrap_err(),
                from_file(&text).unwrap_err(),
            ] {
                assert!(
                    err.to_string().contains("line 2: line longer than"),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn brackets_are_counted_in_blocks() {
        assert!(!more_brackets_than(&[b'['; 64], 64));
        assert!(more_brackets_than(&[b'{'; 65], 64));
        let mut spread = vec![b'a'; 10_000];
        for i in (0..10_000).step_by(100) {
            spread[i] = if i % 200 == 0 { b'[' } else { b'{' };
        }
        assert!(more_brackets_than(&spread, 64)); // 100 brackets over many blocks
        assert!(!more_brackets_than(b"]}a;{[ ", 2)); // 2 opening brackets
    }

    /// A byte order mark at the start of the file is skipped (also when
    /// the reader hands it over a byte at a time); elsewhere it is an error.
    #[test]
    fn chunks_start_small_and_grow_to_full_batches() {
        let sizes: Vec<usize> = (0..14).map(chunk_rows).collect();
        assert_eq!(&sizes[..4], &[FIRST_BATCH_ROWS; 4]);
        assert_eq!(&sizes[4..8], &[2 * FIRST_BATCH_ROWS; 4]);
        assert_eq!(&sizes[8..], &[BATCH_ROWS; 6]);
        assert_eq!(chunk_rows(usize::MAX), BATCH_ROWS);
    }

    #[test]
    fn a_leading_byte_order_mark_is_skipped() {
        let line = "{\"event_id\":\"e1\",\"timestamp\":\"2024-03-01T10:00:00Z\"}\n";
        for text in [format!("\u{feff}{line}{line}"), format!("\u{feff}\n{line}")] {
            let batches = read(text.as_bytes()).unwrap();
            assert_eq!(batches[0].num_rows(), text.matches("e1").count());
            let out = std::sync::Mutex::new(Vec::new());
            let slow = std::io::BufReader::with_capacity(1, text.as_bytes());
            read_ndjson(slow, |b, lines| {
                out.lock().unwrap().push((b.num_rows(), lines.to_vec()));
                Ok(())
            })
            .unwrap();
            assert_eq!(out.into_inner().unwrap()[0].0, text.matches("e1").count());
        }
        let err = read(format!("{line}\u{feff}{line}").as_bytes()).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    /// One object per line: an object spanning lines, or two objects on
    /// one line, is refused naming the physical line, wherever it falls
    /// in a chunk.
    #[test]
    fn objects_must_match_lines() {
        let good = "{\"event_id\":\"e\"}\n";
        for at in [0, 5, BATCH_ROWS - 1, BATCH_ROWS + 3] {
            let before = good.repeat(at);
            let spanning = format!("{before}\n{{\"event_id\":\n\"e1\"}}\n{good}");
            let err = read(spanning.as_bytes()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Data);
            assert!(
                err.to_string().contains(&format!(
                    "line {}: the JSON value does not end on its line",
                    at + 2
                )),
                "{at}: {err}"
            );
            let two =
                format!("{before}{good}{{\"event_id\":\"a\"}} {{\"event_id\":\"b\"}}\n{good}");
            let err = read(two.as_bytes()).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("line {}: more than one JSON value", at + 2)),
                "{at}: {err}"
            );
        }
    }

    #[test]
    fn truncated_last_line_is_an_error() {
        let err = read(b"{\"event_id\":\"e1\"}\n{\"event_id\":\"e").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Data, "{err}");
    }
}
