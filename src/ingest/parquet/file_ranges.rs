//! A Parquet file on disk as the readers ask for it: byte ranges, each
//! read with one positioned read.
//!
//! The parquet crate's own reader for `std::fs::File` duplicates the file
//! descriptor, seeks and then reads in growing steps (8 KiB, 16 KiB, …)
//! for every range: a column chunk of a few hundred kilobytes costs half a
//! dozen system calls and a descriptor opened and closed. A scan asks for
//! a range per column and row group (and a flow query for a few small
//! ones), so on short queries this was a visible share of the time.
//! [`FileRanges`] opens the file once, shares the descriptor between the
//! scan's tasks, and reads each range whole with `pread` (`seek_read` on
//! Windows), which neither moves nor shares a cursor. A large file can
//! instead be mapped into memory ([`FileRanges::open_mapped`], as the
//! command line does): its ranges are then slices of the page cache, not
//! copies into fresh memory the kernel must first zero, and its readers
//! ([`RangeReader`]) read them in place; only a range of a few bytes is
//! still read ([`READ_NOT_MAPPED_MOST`]), and a large range hands its
//! pages back to the page cache once no longer held
//! ([`RELEASE_AT_LEAST`]), so that walking a huge page does not keep all
//! of it in the process's memory.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parquet::errors::{ParquetError, Result as ParquetResult};
use parquet::file::reader::{ChunkReader, Length};

/// A file opened once, read by ranges (see the module docs); clones share
/// the descriptor.
#[derive(Debug, Clone)]
pub(crate) struct FileRanges {
    file: Arc<File>,
    len: u64,
    /// The file mapped into memory, when asked (see [`FileRanges::open_mapped`]).
    map: FileMapping,
}

/// Whether, and when, a [`FileRanges`] maps its file.
#[derive(Debug, Clone)]
enum FileMapping {
    /// Every range is read.
    None,
    /// Mapped when opened.
    Mapped(Arc<Mapping>),
    /// Mapped at the first range of [`MAP_RANGE_LEAST`] bytes or more
    /// asked for (shared by the clones; `None` inside when the mapping
    /// failed, and the file is read).
    AtFirstLargeRange(Arc<OnceLock<Option<Arc<Mapping>>>>),
}

impl FileRanges {
    /// Opens the file at `path`; an error is a data error naming the file.
    pub fn open(path: &Path) -> crate::error::Result<Self> {
        let named = |e| crate::error::Error::data_from(path.display().to_string(), e);
        let file = File::open(path).map_err(named)?;
        let len = file.metadata().map_err(named)?.len();
        Ok(Self {
            file: Arc::new(file),
            len,
            map: FileMapping::None,
        })
    }

    /// Opens the file at `path` and, when it has [`MAP_AT_LEAST`] bytes,
    /// maps it into memory: its ranges are then slices of the page cache,
    /// not copies. A file read `alone` (a job's only input) of
    /// [`MAP_LATER_LEAST`] bytes or more is mapped at the first range of
    /// [`MAP_RANGE_LEAST`] bytes asked of it. A file that cannot be mapped
    /// is read.
    ///
    /// As with any mapping, a file that another process truncates while
    /// it is mapped kills the process with `SIGBUS` when a range past the
    /// new end is touched; only a process whose input is its own should
    /// ask for this (see `BatchOptions::map_files`).
    pub fn open_mapped(path: &Path, alone: bool) -> crate::error::Result<Self> {
        let mut ranges = Self::open(path)?;
        if ranges.len >= MAP_AT_LEAST {
            if let Some(map) = map_file(&ranges.file, ranges.len) {
                ranges.map = FileMapping::Mapped(map);
            }
        } else if alone && ranges.len >= MAP_LATER_LEAST {
            ranges.map = FileMapping::AtFirstLargeRange(Arc::new(OnceLock::new()));
        }
        Ok(ranges)
    }

    /// The file's mapping for a range of `length` bytes: the one made, or
    /// made now for a range of [`MAP_RANGE_LEAST`] bytes or more when the
    /// file is mapped at its first such range.
    fn mapping(&self, length: usize) -> Option<&Arc<Mapping>> {
        match &self.map {
            FileMapping::None => None,
            FileMapping::Mapped(map) => Some(map),
            FileMapping::AtFirstLargeRange(map) if length >= MAP_RANGE_LEAST => {
                map.get_or_init(|| map_file(&self.file, self.len)).as_ref()
            }
            FileMapping::AtFirstLargeRange(map) => map.get().and_then(Option::as_ref),
        }
    }
}

/// `file` of `len` bytes mapped into memory (see
/// [`FileRanges::open_mapped`]); `None` when it cannot be, or its length
/// is no longer `len`.
fn map_file(file: &File, len: u64) -> Option<Arc<Mapping>> {
    // SAFETY: the mapping is read only; the caller of `open_mapped`
    // accepts the truncation hazard.
    let map = unsafe { memmap2::Mmap::map(file) }.ok()?;
    (map.len() as u64 == len).then(|| Arc::new(Mapping::new(map, KEPT_MOST)))
}

/// The size from which [`FileRanges::open_mapped`] maps a file. Setting up
/// and tearing down a mapping costs more than the copies it saves when a
/// file is read in a few small ranges: a flow over 2,000 hourly files of
/// 150 KB took twice as long mapped.
pub(crate) const MAP_AT_LEAST: u64 = 16 << 20;

/// The size from which [`FileRanges::open_mapped`] maps a file read alone
/// of less than [`MAP_AT_LEAST`] bytes, at the first range of
/// [`MAP_RANGE_LEAST`] bytes or more asked of it.
///
/// A flow over a file of 100,000 events (1.9–3.6 MB, one row group) whose
/// conversation lies mid-file reads half of each column's large pages;
/// read, those halves were copied into fresh memory. Mapped at its first
/// large range, medians of 31 alternated runs, over the files of
/// `benches/compare_duckdb.py --events 100000`: DuckDB v2's 3.01 → 2.33
/// ms, DuckDB's 3.73 → 2.72, pyarrow's 3.46 → 3.16, Polars' 4.54 → 4.35,
/// the generator's 3.35 → 3.09; first-conversation flows the same, and
/// `conversations`, `insights` and `usage` the same or up to 7% faster.
/// Files of 324 KB (10,000 events) gained nothing mapped. Over 24 files of
/// 1.4 MB (1M events), the flows took as long, and `conversations` and
/// `insights` 3% longer (41 runs), as each mapping's pages are unmapped
/// when its scan ends: so only a job's one file is mapped this way.
const MAP_LATER_LEAST: u64 = 1 << 20;

/// The length of a range from which a file read alone of
/// [`MAP_LATER_LEAST`] bytes or more is mapped: more than a footer or a
/// bloom filter, which a flow reads of files its conversation is not in.
const MAP_RANGE_LEAST: usize = 256 << 10;

/// The longest range of a mapped file that [`FileRanges::get_bytes`] still
/// reads with `pread`, not from the mapping. Touching a mapped page faults
/// in, with it, the pages around it that the page cache holds (the
/// kernel's fault-around, 16 pages), and each of those costs again when
/// the mapping is torn down. A bloom filter's probe reads a 64-byte header
/// and a 32-byte block of a filter that a row group's other reads never
/// come near: DuckDB's file of 82 row groups keeps its filters together
/// near its end, and a mid-file flow probes all those its statistics do
/// not rule out. Read, that flow took 3.18 → 3.05 ms over DuckDB's file
/// and 2.74 → 2.63 ms over its v2 file (41 and 31 alternated runs,
/// medians); first-conversation flows stayed the same, and reading every
/// range of up to 4 KiB this way gained nothing more.
const READ_NOT_MAPPED_MOST: usize = 64;

/// A file's mapping, and how many bytes of released ranges it has kept.
#[derive(Debug)]
struct Mapping {
    map: memmap2::Mmap,
    /// Bytes of ranges of [`RELEASE_AT_LEAST`] or more that went without
    /// handing their pages back.
    kept: AtomicUsize,
    /// The most bytes of such ranges it keeps ([`KEPT_MOST`]).
    kept_most: usize,
}

impl Mapping {
    fn new(map: memmap2::Mmap, kept_most: usize) -> Self {
        Self {
            map,
            kept: AtomicUsize::new(0),
            kept_most,
        }
    }

    /// Whether a range of `length` bytes going now keeps its pages: while
    /// the ranges kept so far and it come to `kept_most` bytes at most.
    fn keeps(&self, length: usize) -> bool {
        self.kept
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |kept| {
                kept.checked_add(length).filter(|&k| k <= self.kept_most)
            })
            .is_ok()
    }
}

/// A range of a mapped file, owned by the `Bytes` that hold it.
struct MappedRange {
    map: Arc<Mapping>,
    start: usize,
    end: usize,
    /// Whether its pages are handed back when it goes (a range asked for,
    /// of [`RELEASE_AT_LEAST`] bytes; not a reader's rest of the file).
    release: bool,
}

/// The size from which a mapped range, once no longer held, hands the
/// pages it lies over back ([`MappedRange`]'s `drop`).
///
/// A page of the mapping that has been touched counts in the process's
/// resident memory until the mapping goes. A flow over fastparquet's
/// uncompressed file walks half of pages of 100 MB and more, a stretch at
/// a time, to find its rows: 565 of its 577 MB peak were such pages. The
/// page cache keeps them; only the process's hold on them is given up.
const RELEASE_AT_LEAST: usize = 256 << 10;

/// The bytes of ranges of [`RELEASE_AT_LEAST`] or more that a mapping
/// lets go without handing their pages back; the ranges that go after
/// those hand them back.
///
/// Handing pages back (`madvise`) makes the kernel flush them from the
/// address translations of every processor running one of the process's
/// threads, by an interrupt to each, and on a virtual machine sending
/// that interrupt is itself a trap to the host. A mid-file flow over
/// DuckDB's 10M-event files let go of four ranges of 0.3–1.3 MiB, and
/// those four calls were 2% of its `perf` samples; the mapping is torn
/// down at the end of the query anyway. So a query whose large ranges
/// come to a few megabytes keeps them until then, and a walk through
/// hundreds of megabytes still holds at most this much more than before.
const KEPT_MOST: usize = 16 << 20;

impl Drop for MappedRange {
    fn drop(&mut self) {
        if self.release && !self.map.keeps(self.end - self.start) {
            release_pages(&self.map.map, self.start..self.end);
        }
    }
}

/// Gives up the process's hold on the whole memory pages inside `range` of
/// `map` (`madvise(MADV_DONTNEED)`): they leave its resident memory, and a
/// later touch maps them again from the page cache, with the same bytes
/// (the mapping is of a file, read only). The pages at the range's ends,
/// which other ranges may share, are kept.
#[cfg(unix)]
fn release_pages(map: &memmap2::Mmap, range: std::ops::Range<usize>) {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let page = *PAGE.get_or_init(|| {
        // SAFETY: `sysconf` reads a constant of the system.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(size)
            .ok()
            .filter(|s| s.is_power_of_two())
            .unwrap_or(0)
    });
    if page == 0 {
        return;
    }
    let start = range.start.next_multiple_of(page);
    let end = range.end & !(page - 1);
    if end <= start {
        return;
    }
    // SAFETY: the mapping is a read-only map of a file: dropping its pages
    // changes no byte any reference sees, since a later read maps them
    // again from the file. The range lies within the mapping. A failure
    // only leaves the pages resident.
    let _ = unsafe {
        map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
    };
}

#[cfg(not(unix))]
fn release_pages(_map: &memmap2::Mmap, _range: std::ops::Range<usize>) {}

impl AsRef<[u8]> for MappedRange {
    fn as_ref(&self) -> &[u8] {
        &self.map.map[self.start..self.end]
    }
}

impl Length for FileRanges {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for FileRanges {
    type T = RangeReader;

    fn get_read(&self, start: u64) -> ParquetResult<Self::T> {
        if let Some(map) = self.mapping(0) {
            // From `start` (at most the end) to the end of the mapping.
            let start = start.min(self.len) as usize;
            let rest = Bytes::from_owner(MappedRange {
                map: Arc::clone(map),
                start,
                end: map.map.len(),
                release: false,
            });
            return Ok(RangeReader::Mapped(bytes::Buf::reader(rest)));
        }
        Ok(RangeReader::File(BufReader::new(ReaderAt {
            file: Arc::clone(&self.file),
            position: start,
        })))
    }

    fn get_bytes(&self, start: u64, length: usize) -> ParquetResult<Bytes> {
        let end = start
            .checked_add(length as u64)
            .filter(|&end| end <= self.len);
        if end.is_none() {
            return Err(ParquetError::EOF(format!(
                "{length} bytes at offset {start} are past the end of the file ({} bytes)",
                self.len
            )));
        }
        if let Some(map) = self
            .mapping(length)
            .filter(|_| length > READ_NOT_MAPPED_MOST)
        {
            // In bounds: checked against `len`, the mapping's length.
            let start = start as usize;
            return Ok(Bytes::from_owner(MappedRange {
                map: Arc::clone(map),
                start,
                end: start + length,
                release: length >= RELEASE_AT_LEAST,
            }));
        }
        Ok(read_new_buffer(&self.file, length, start)?.into())
    }
}

/// A reader of the file from a position on, as [`FileRanges::get_read`]
/// gives it: the mapped bytes themselves, when the file is mapped, else
/// positioned reads through a buffer. (The page readers read page headers
/// this way, a few hundred bytes each: from a mapping, that is neither a
/// system call, nor a copy of the 8 KiB a buffer asks for, nor that
/// buffer's allocation. First-conversation flows over the files of
/// `benches/compare_duckdb.py`, 40 alternated runs, medians: DuckDB v2's
/// 2.76 → 2.54 ms, Polars' 3.26 → 3.02 ms, parquet-rs' 2.14 → 1.95 ms.)
pub(crate) enum RangeReader {
    Mapped(bytes::buf::Reader<Bytes>),
    File(BufReader<ReaderAt>),
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            RangeReader::Mapped(bytes) => bytes.read(buf),
            RangeReader::File(file) => file.read(buf),
        }
    }
}

/// A reader of a shared file from a position on, by positioned reads.
#[derive(Debug)]
pub(crate) struct ReaderAt {
    file: Arc<File>,
    position: u64,
}

impl Read for ReaderAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = read_at(&self.file, buf, self.position)?;
        self.position += n as u64;
        Ok(n)
    }
}

#[cfg(unix)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// `length` bytes read from `offset` on into a new buffer, which is not
/// zeroed first (a column chunk is megabytes: zeroing it would write every
/// byte once more than the read does).
#[cfg(unix)]
fn read_new_buffer(file: &File, length: usize, offset: u64) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buffer: Vec<u8> = Vec::with_capacity(length);
    let mut filled = 0usize;
    while filled < length {
        let at = offset
            .checked_add(filled as u64)
            .and_then(|at| libc::off_t::try_from(at).ok())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: `pread` writes at most `length - filled` bytes from
        // `filled` on, within the buffer's capacity; it reads none of them,
        // and no reference to the unwritten bytes is made.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                buffer.as_mut_ptr().add(filled).cast(),
                length - filled,
                at,
            )
        };
        match n {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n if n > 0 => filled += n as usize,
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    // SAFETY: the loop ends only once `pread` has written all `length`
    // bytes.
    unsafe { buffer.set_len(length) };
    Ok(buffer)
}

#[cfg(windows)]
fn read_new_buffer(file: &File, length: usize, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut buffer = vec![0; length];
    read_exact_at(file, &mut buffer, offset)?;
    Ok(buffer)
}

#[cfg(windows)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Fills `buf` from `offset` on, or fails (an early end of file included).
#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> (tempfile::NamedTempFile, FileRanges) {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(bytes).unwrap();
        tmp.flush().unwrap();
        let ranges = FileRanges::open(tmp.path()).unwrap();
        (tmp, ranges)
    }

    #[test]
    fn ranges_and_readers_give_the_files_bytes() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (_tmp, file) = file_of(&data);
        assert_eq!(file.len(), data.len() as u64);
        for (start, length) in [(0usize, 0usize), (0, 10), (4_095, 9_000), (99_990, 10)] {
            let got = file.get_bytes(start as u64, length).unwrap();
            assert_eq!(&got[..], &data[start..start + length]);
        }
        // Clones share the descriptor and do not disturb each other.
        let other = file.clone();
        let mut a = file.get_read(50_000).unwrap();
        let mut b = other.get_read(10).unwrap();
        let (mut x, mut y) = (vec![0; 20_000], vec![0; 5]);
        a.read_exact(&mut x).unwrap();
        b.read_exact(&mut y).unwrap();
        assert_eq!(x, &data[50_000..70_000]);
        assert_eq!(y, &data[10..15]);
        let mut rest = Vec::new();
        file.get_read(99_000)
            .unwrap()
            .read_to_end(&mut rest)
            .unwrap();
        assert_eq!(rest, &data[99_000..]);
    }

    /// A file large enough to be mapped, its bytes, and it mapped.
    fn mapped_file() -> (tempfile::NamedTempFile, Vec<u8>, FileRanges) {
        let data: Vec<u8> = (0..MAP_AT_LEAST as usize + 5_000)
            .map(|i| (i * 13 % 241) as u8)
            .collect();
        let (tmp, _) = file_of(&data);
        let file = FileRanges::open_mapped(tmp.path(), false).unwrap();
        (tmp, data, file)
    }

    #[test]
    fn a_large_file_mapped_gives_the_files_bytes_and_a_small_one_is_read() {
        let (tmp, data, file) = mapped_file();
        let end = data.len();
        let mapped = file.mapping(0).unwrap().map.as_ptr_range();
        for (start, length) in [(0usize, 0usize), (0, 10), (4_095, 9_000), (end - 10, 10)] {
            let got = file.get_bytes(start as u64, length).unwrap();
            assert_eq!(&got[..], &data[start..start + length]);
            // Short ranges are read, longer ones are the mapping's bytes.
            let in_map = mapped.contains(&got.as_ptr());
            assert_eq!(in_map, length > READ_NOT_MAPPED_MOST, "{start}+{length}");
        }
        // A range outlives the file's handle.
        let kept = file.get_bytes(100, 50).unwrap();
        let mut rest = Vec::new();
        file.get_read(end as u64 - 1_000)
            .unwrap()
            .read_to_end(&mut rest)
            .unwrap();
        assert_eq!(rest, &data[end - 1_000..]);
        // Readers of the mapping, as of the file, from anywhere.
        let mut part = vec![0; 20_000];
        file.get_read(4_000).unwrap().read_exact(&mut part).unwrap();
        assert_eq!(part, &data[4_000..24_000]);
        assert!(matches!(file.get_read(5).unwrap(), RangeReader::Mapped(_)));
        for past in [end as u64, end as u64 + 1, u64::MAX] {
            let mut none = Vec::new();
            file.get_read(past).unwrap().read_to_end(&mut none).unwrap();
            assert!(none.is_empty());
        }
        drop(file);
        assert_eq!(&kept[..], &data[100..150]);
        let file = FileRanges::open_mapped(tmp.path(), false).unwrap();
        for (start, length) in [(end as u64 - 5, 6usize), (end as u64 + 1, 0), (u64::MAX, 2)] {
            assert!(matches!(
                file.get_bytes(start, length),
                Err(ParquetError::EOF(_))
            ));
        }
        let (tmp, _) = file_of(&data[..1_000]);
        let file = FileRanges::open_mapped(tmp.path(), false).unwrap();
        assert!(file.mapping(usize::MAX).is_none());
        assert_eq!(&file.get_bytes(10, 20).unwrap()[..], &data[10..30]);
        assert!(matches!(file.get_read(5).unwrap(), RangeReader::File(_)));
    }

    /// A large range of a mapped file hands its pages back when it goes
    /// (every one with a mapping that keeps none, and the later ones with
    /// a mapping that keeps some); ranges over the same pages, held or
    /// asked later, still read the file's bytes.
    #[test]
    fn a_large_mapped_range_gone_leaves_the_others_whole() {
        for kept_most in [0, RELEASE_AT_LEAST + 100, KEPT_MOST] {
            let (_tmp, data, mut file) = mapped_file();
            let FileMapping::Mapped(mapping) = std::mem::replace(&mut file.map, FileMapping::None)
            else {
                panic!("a large file is mapped when opened");
            };
            let mapping = Arc::try_unwrap(mapping).unwrap();
            file.map = FileMapping::Mapped(Arc::new(Mapping::new(mapping.map, kept_most)));
            let (start, length) = (10_001usize, 3 * RELEASE_AT_LEAST + 77);
            let held = file.get_bytes(start as u64, length).unwrap();
            let inside = held.slice(5_000..RELEASE_AT_LEAST);
            for (from, len) in [
                (start, length),
                (start + 4_096, RELEASE_AT_LEAST),
                (0, 2 << 20),
            ] {
                let gone = file.get_bytes(from as u64, len).unwrap();
                assert_eq!(&gone[..], &data[from..from + len]);
                drop(gone);
                assert_eq!(&held[..], &data[start..start + length]);
                assert_eq!(&inside[..], &data[start + 5_000..start + RELEASE_AT_LEAST]);
            }
            drop(held);
            assert_eq!(&inside[..], &data[start + 5_000..start + RELEASE_AT_LEAST]);
            let again = file.get_bytes(start as u64, length).unwrap();
            assert_eq!(&again[..], &data[start..start + length]);
        }
    }

    /// A mapping keeps the ranges that go while they come to its budget,
    /// and no range that would take it past.
    #[test]
    fn a_mapping_keeps_ranges_up_to_its_budget() {
        let (_tmp, _data, file) = mapped_file();
        let FileMapping::Mapped(mapping) = file.map else {
            panic!("a large file is mapped when opened");
        };
        let mapping = Arc::try_unwrap(mapping).unwrap();
        let mapping = Mapping::new(mapping.map, 1_000);
        assert!(mapping.keeps(600));
        assert!(!mapping.keeps(500));
        assert!(mapping.keeps(400));
        assert!(!mapping.keeps(1));
        assert!(!mapping.keeps(usize::MAX));
        assert!(mapping.keeps(0));
    }

    /// A file read alone, smaller than a file mapped when opened but of
    /// [`MAP_LATER_LEAST`] bytes or more, is read until a range of
    /// [`MAP_RANGE_LEAST`] bytes is asked of it, and mapped from then on,
    /// clones included; not alone, or smaller, it is always read.
    #[test]
    fn a_file_read_alone_is_mapped_at_its_first_large_range() {
        let data: Vec<u8> = (0..MAP_LATER_LEAST as usize + 3_000)
            .map(|i| (i * 29 % 239) as u8)
            .collect();
        let (tmp, _) = file_of(&data);
        let file = FileRanges::open_mapped(tmp.path(), true).unwrap();
        let clone = file.clone();
        let small = file.get_bytes(7, MAP_RANGE_LEAST - 1).unwrap();
        assert_eq!(&small[..], &data[7..MAP_RANGE_LEAST + 6]);
        assert!(file.mapping(0).is_none());
        assert!(matches!(file.get_read(5).unwrap(), RangeReader::File(_)));
        let large = file.get_bytes(1_000, MAP_RANGE_LEAST).unwrap();
        assert_eq!(&large[..], &data[1_000..1_000 + MAP_RANGE_LEAST]);
        let mapped = clone
            .mapping(0)
            .expect("mapped at the large range")
            .map
            .as_ptr_range();
        assert!(mapped.contains(&large.as_ptr()));
        // From then on, every range but the shortest is the mapping's.
        let after = clone.get_bytes(3, 100).unwrap();
        assert_eq!(&after[..], &data[3..103]);
        assert!(mapped.contains(&after.as_ptr()));
        let mut rest = Vec::new();
        let mut reader = file.get_read(data.len() as u64 - 500).unwrap();
        assert!(matches!(reader, RangeReader::Mapped(_)));
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &data[data.len() - 500..]);
        // Not alone, or too small: read, whatever is asked.
        let (small_tmp, _) = file_of(&data[..MAP_LATER_LEAST as usize - 1]);
        for (path, alone) in [(tmp.path(), false), (small_tmp.path(), true)] {
            let file = FileRanges::open_mapped(path, alone).unwrap();
            let large = file.get_bytes(0, MAP_RANGE_LEAST + 10).unwrap();
            assert_eq!(&large[..], &data[..MAP_RANGE_LEAST + 10]);
            assert!(file.mapping(usize::MAX).is_none(), "alone: {alone}");
        }
    }

    #[test]
    fn a_range_past_the_end_is_an_error() {
        let (_tmp, file) = file_of(b"0123456789");
        for (start, length) in [(5u64, 6usize), (11, 0), (u64::MAX, 2)] {
            let err = file.get_bytes(start, length).unwrap_err();
            assert!(matches!(err, ParquetError::EOF(_)), "{err}");
        }
        // A file that shrinks after it is opened: an error, not a panic.
        let (tmp, file) = file_of(&[7; 1000]);
        tmp.as_file().set_len(100).unwrap();
        assert!(file.get_bytes(50, 500).is_err());
    }
}
