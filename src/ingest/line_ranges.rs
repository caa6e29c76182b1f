//! A text file's lines, cut into byte ranges that workers read and
//! decode side by side.
//!
//! An NDJSON file read as one stream has its lines found on one thread, in
//! order, and that thread also pays the kernel's copy of every byte (see
//! `ndjson::StreamChunks`). A file whose length is known needs neither:
//! [`each_range`] cuts it into ranges of up to 2 MiB and gives each to
//! a worker of the pool, which reads its bytes itself (mapped from the
//! page cache, or with `pread` into a buffer kept from range to range) and
//! finds its own lines.
//!
//! A range holds the lines that *start* in it: the first starts after the
//! first newline at or after the byte before the range (the file's first
//! line, after a byte order mark, starts the first range), and the last
//! runs past the range's end to its newline. Together the ranges hold
//! every line once, whichever ways the lines fall. A range's lines are
//! numbered from 1, and the lines before it are counted only when an error
//! names one ([`lines_before`]), so nothing reads the text before the
//! decoders do.

use std::fs::File;

use super::ndjson::MAX_LINE_BYTES;
use super::parquet::read_at;
use super::pipeline::pipeline;
use crate::error::{Error, Result};

/// The UTF-8 byte order mark some Windows tools write at the start of a
/// text file: not part of its first line.
pub(super) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Bytes of a range, at most. A range of event lines (about 300 bytes
/// each) is a batch of some 7,000 rows.
const MAX_RANGE_BYTES: u64 = 2 << 20;

/// Bytes of a range, at least.
const MIN_RANGE_BYTES: u64 = 64 << 10;

/// Bytes read past a range's end at first, to find the end of its last
/// line; a longer line is read on in larger steps.
const LAST_LINE_BYTES: u64 = 64 << 10;

/// How a file is cut into ranges.
#[derive(Clone, Copy, Debug)]
struct Cuts {
    /// Bytes of a range.
    step: u64,
    /// Bytes read past a range's end at first (see [`LAST_LINE_BYTES`]).
    read_past: u64,
    /// Longest line accepted, newline included.
    max_line: usize,
}

impl Cuts {
    /// The cuts of a file of `len` bytes: ranges at least eight per
    /// thread, so that a small file still keeps every core busy, between
    /// [`MIN_RANGE_BYTES`] and [`MAX_RANGE_BYTES`].
    fn of(len: u64) -> Self {
        let threads = rayon::current_num_threads().max(1) as u64;
        Self {
            step: (len / (8 * threads)).clamp(MIN_RANGE_BYTES, MAX_RANGE_BYTES),
            read_past: LAST_LINE_BYTES,
            max_line: MAX_LINE_BYTES,
        }
    }
}

/// Where a range's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeSource {
    /// Read with `pread` into the worker's buffer.
    Read,
    /// Mapped from the page cache, window by window. A file that another
    /// process truncates while it is mapped kills the process with
    /// `SIGBUS` (see `BatchOptions::map_files`).
    Mapped,
}

/// A range's lines, as the worker reading it sees them.
pub(super) struct RangeLines<'a> {
    /// Whole lines, each ending with a newline (the file's last line is
    /// given one when it has none).
    pub text: &'a [u8],
    /// The text's offset in the file: the lines before it are
    /// [`lines_before`] this offset.
    pub offset: u64,
}

/// A worker's range and its buffer, kept from range to range.
#[derive(Default)]
struct Range {
    from: u64,
    to: u64,
    buffer: Vec<u8>,
}

/// Calls `consume` with the lines of each range of `file` (`len` bytes),
/// on the rayon pool, at most two ranges per thread at a time. The error
/// returned is that of the earliest range in the file (see `pipeline`).
pub(super) fn each_range(
    file: &File,
    len: u64,
    source: RangeSource,
    consume: impl Fn(RangeLines<'_>) -> Result<()> + Sync,
) -> Result<()> {
    each_range_cut(file, len, source, Cuts::of(len), consume)
}

/// [`each_range`] with the cuts given.
fn each_range_cut(
    file: &File,
    len: u64,
    source: RangeSource,
    cuts: Cuts,
    consume: impl Fn(RangeLines<'_>) -> Result<()> + Sync,
) -> Result<()> {
    let step = cuts.step.max(1);
    let in_flight = 2 * rayon::current_num_threads().max(1);
    let mut next = 0u64;
    pipeline(
        in_flight,
        |spare: Option<Range>| {
            if next >= len {
                return Ok(None);
            }
            let mut range = spare.unwrap_or_default();
            range.from = next;
            // The first range holds a byte order mark and the byte after
            // it: the first line's start, which follows no newline.
            let step = match next {
                0 => step.max(UTF8_BOM.len() as u64 + 1),
                _ => step,
            };
            range.to = (next + step).min(len);
            next = range.to;
            Ok(Some(range))
        },
        |range| read_range(file, len, source, cuts, range, &consume),
    )
}

/// Finds and reads the lines of `range`, and consumes them.
fn read_range(
    file: &File,
    len: u64,
    source: RangeSource,
    cuts: Cuts,
    range: &mut Range,
    consume: &impl Fn(RangeLines<'_>) -> Result<()>,
) -> Result<()> {
    // The window starts with the byte before the range: a line starts in
    // the range where that byte or one after it is a newline.
    let start = range.from.saturating_sub(1);
    let mut end = (range.to + cuts.read_past).min(len);
    loop {
        let window = Window::open(file, source, start, end, &mut range.buffer)?;
        let bytes = window.bytes(&range.buffer);
        match lines_in(
            bytes,
            start,
            range.from,
            range.to,
            end == len,
            cuts.max_line,
        ) {
            Found::None => return Ok(()),
            Found::Lines { from, to, newline } => {
                let offset = start + from as u64;
                if newline {
                    return consume(RangeLines {
                        text: &bytes[from..to],
                        offset,
                    });
                }
                // The file's last line, without a newline: the decoders
                // want one.
                let mut text = Vec::with_capacity(to - from + 1);
                text.extend_from_slice(&bytes[from..to]);
                text.push(b'\n');
                return consume(RangeLines {
                    text: &text,
                    offset,
                });
            }
            Found::TooLong { last_line } => return Err(line_too_long(file, last_line, cuts)),
            Found::Unended { last_line } if end - last_line > cuts.max_line as u64 => {
                return Err(line_too_long(file, last_line, cuts))
            }
            Found::Unended { last_line } => {
                // Read on: twice as much of the last line, at least.
                end = (end + (end - last_line).max(cuts.read_past.max(1))).min(len);
            }
        }
    }
}

/// The error of the line starting at the file's byte `at`, longer than
/// the cuts accept.
fn line_too_long(file: &File, at: u64, cuts: Cuts) -> Error {
    Error::data(
        line_name(lines_before(file, at), at),
        format!("line longer than {} bytes", cuts.max_line),
    )
}

/// What [`lines_in`] found in a window.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// No line starts in the range.
    None,
    /// The range's lines, from `from` to `to` in the window; `newline`
    /// unless the last is the file's and has none.
    Lines {
        from: usize,
        to: usize,
        newline: bool,
    },
    /// The last line (starting at the file's byte `last_line`) does not
    /// end within the window, which does not reach the file's end.
    Unended { last_line: u64 },
    /// The last line (from the file's byte `last_line`) is longer than
    /// `max_line`.
    TooLong { last_line: u64 },
}

/// The lines starting in the file's bytes `range_from..range_to`, in
/// `window`, the file's bytes from `start` on (the byte before the range
/// first, when there is one); `at_end` when the window reaches the file's
/// end. Only the last line can be longer than `max_line` (newline
/// included): the others end within the range.
fn lines_in(
    window: &[u8],
    start: u64,
    range_from: u64,
    range_to: u64,
    at_end: bool,
    max_line: usize,
) -> Found {
    let local = |at: u64| (at - start) as usize;
    let from = if range_from == 0 {
        if window.starts_with(UTF8_BOM) {
            UTF8_BOM.len()
        } else {
            0
        }
    } else {
        // The first newline from the byte before the range (the window's
        // first) up to the range's last byte: a line starts after it.
        match memchr::memchr(b'\n', &window[..local(range_to) - 1]) {
            Some(newline) => newline + 1,
            None => return Found::None,
        }
    };
    if from >= local(range_to) {
        return Found::None;
    }
    // The last line starting in the range ends at the first newline at or
    // after the range's last byte.
    let last = local(range_to) - 1;
    // Where the last line starts: after the last newline before `last`.
    let last_line = || match memchr::memrchr(b'\n', &window[from..last]) {
        Some(newline) => from + newline + 1,
        None => from,
    };
    let (to, newline) = match memchr::memchr(b'\n', &window[last..]) {
        Some(newline) => (last + newline + 1, true),
        None if at_end => (window.len(), false),
        None => {
            return Found::Unended {
                last_line: start + last_line() as u64,
            }
        }
    };
    // Every line but the last is shorter than the range.
    if to - from > max_line && to - last_line() > max_line {
        return Found::TooLong {
            last_line: start + last_line() as u64,
        };
    }
    Found::Lines { from, to, newline }
}

/// The bytes of a file from `start` to `end`: mapped, or read into a
/// worker's buffer.
enum Window {
    Mapped(memmap2::Mmap),
    Read(usize),
}

impl Window {
    fn open(
        file: &File,
        source: RangeSource,
        start: u64,
        end: u64,
        buffer: &mut Vec<u8>,
    ) -> Result<Self> {
        let len = (end - start) as usize;
        let failed = |e| Error::data_from(format!("bytes {start}..{end}"), e);
        if source == RangeSource::Mapped {
            // SAFETY: the mapping is read only; the caller accepts the
            // truncation hazard of `RangeSource::Mapped`.
            let map = unsafe { memmap2::MmapOptions::new().offset(start).len(len).map(file) };
            // A file that cannot be mapped is read.
            if let Ok(map) = map {
                return Ok(Window::Mapped(map));
            }
        }
        if buffer.len() < len {
            buffer.resize(len, 0);
        }
        let mut filled = 0;
        while filled < len {
            match read_at(file, &mut buffer[filled..len], start + filled as u64) {
                Ok(0) => {
                    return Err(failed(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file ended early: it changed while it was read",
                    )))
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(failed(e)),
            }
        }
        Ok(Window::Read(len))
    }

    fn bytes<'a>(&'a self, buffer: &'a [u8]) -> &'a [u8] {
        match self {
            Window::Mapped(map) => map,
            Window::Read(len) => &buffer[..*len],
        }
    }
}

/// The lines in the first `bytes` bytes of `file` (its newlines), counted
/// when an error names a line; `None` if the file cannot be read.
pub(super) fn lines_before(file: &File, bytes: u64) -> Option<u64> {
    let mut buffer = vec![0u8; 1 << 20];
    let (mut at, mut lines) = (0u64, 0u64);
    while at < bytes {
        let want = buffer.len().min((bytes - at) as usize);
        match read_at(file, &mut buffer[..want], at) {
            Ok(0) => return None,
            Ok(n) => {
                lines += memchr::memchr_iter(b'\n', &buffer[..n]).count() as u64;
                at += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(lines)
}

/// How an error names the line that starts at the file's byte `at`, with
/// `before` lines before it.
fn line_name(before: Option<u64>, at: u64) -> String {
    match before {
        Some(before) => format!("line {}", before + 1),
        None => format!("the line at byte {at}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The ranges' texts by offset, or the error, of `text` cut by `cuts`.
    fn cut(text: &[u8], source: RangeSource, cuts: Cuts) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, text).unwrap();
        let ranges = Mutex::new(Vec::new());
        each_range_cut(&file, text.len() as u64, source, cuts, |lines| {
            ranges
                .lock()
                .unwrap()
                .push((lines.offset, lines.text.to_vec()));
            Ok(())
        })?;
        let mut ranges = ranges.into_inner().unwrap();
        ranges.sort();
        Ok(ranges)
    }

    /// A naive reading of `text`: its lines after a byte order mark, the
    /// last given a newline, with the offset of each; or the number of
    /// the first line longer than `max_line`.
    fn naive_lines(text: &[u8], max_line: usize) -> std::result::Result<Vec<(u64, Vec<u8>)>, u64> {
        let start = if text.starts_with(UTF8_BOM) { 3 } else { 0 };
        let mut lines = Vec::new();
        let mut at = start;
        while at < text.len() {
            let (end, newline) = match text[at..].iter().position(|&b| b == b'\n') {
                Some(i) => (at + i + 1, true),
                None => (text.len(), false),
            };
            if end - at > max_line {
                return Err(lines.len() as u64 + 1);
            }
            let mut line = text[at..end].to_vec();
            if !newline {
                line.push(b'\n');
            }
            lines.push((at as u64, line));
            at = end;
        }
        Ok(lines)
    }

    proptest::proptest! {
        /// Ranges of any size, read on in steps of any size, hold every
        /// line once, whole, at its offset, whatever the lines' lengths,
        /// with or without a byte order mark or a last newline; a line
        /// longer than the limit is an error naming it.
        #[test]
        fn ranges_hold_every_line_once(
            lines in proptest::collection::vec((0usize..60, proptest::bool::ANY), 0..40),
            bom in proptest::bool::ANY,
            last_newline in proptest::bool::ANY,
            step in 1u64..50,
            read_past in 0u64..20,
            extra_line in 0usize..60,
            mapped in proptest::bool::ANY,
        ) {
            let mut text = Vec::new();
            if bom {
                text.extend_from_slice(UTF8_BOM);
            }
            for (i, (len, blank)) in lines.iter().enumerate() {
                let byte = if *blank { b' ' } else { b'a' + (i % 26) as u8 };
                text.extend(std::iter::repeat_n(byte, *len));
                if i + 1 < lines.len() || last_newline {
                    text.push(b'\n');
                }
            }
            let max_line = step as usize + extra_line;
            let cuts = Cuts { step, read_past, max_line };
            let source = if mapped { RangeSource::Mapped } else { RangeSource::Read };
            let ranges = cut(&text, source, cuts);
            match naive_lines(&text, max_line) {
                Ok(expected) => {
                    let ranges = ranges.unwrap();
                    // Each range is whole lines, from a line's start.
                    let mut lines_by_offset = Vec::new();
                    for (offset, range) in &ranges {
                        proptest::prop_assert_eq!(range.last(), Some(&b'\n'));
                        let mut at = *offset;
                        for line in range.split_inclusive(|&b| b == b'\n') {
                            lines_by_offset.push((at, line.to_vec()));
                            at += line.len() as u64;
                        }
                    }
                    proptest::prop_assert_eq!(lines_by_offset, expected);
                }
                Err(line) => {
                    let message = ranges.unwrap_err().to_string();
                    proptest::prop_assert!(
                        message.contains(&format!("line {line}: line longer than")),
                        "{}", message
                    );
                }
            }
        }
    }

    #[test]
    fn an_empty_file_has_no_range() {
        let cuts = Cuts::of(0);
        assert!(cut(b"", RangeSource::Read, cuts).unwrap().is_empty());
        assert!(cut(b"", RangeSource::Mapped, cuts).unwrap().is_empty());
    }

    #[test]
    fn small_files_are_cut_for_every_thread_large_ones_in_bounded_ranges() {
        assert_eq!(Cuts::of(1000).step, MIN_RANGE_BYTES);
        assert_eq!(Cuts::of(1 << 40).step, MAX_RANGE_BYTES);
    }

    #[test]
    fn the_lines_before_a_byte_are_its_newlines() {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, b"a\n\nbb\nc").unwrap();
        assert_eq!(lines_before(&file, 0), Some(0));
        assert_eq!(lines_before(&file, 2), Some(1));
        assert_eq!(lines_before(&file, 6), Some(3));
        // Past the end: the file is not what it was.
        assert_eq!(lines_before(&file, 100), None);
    }
}
