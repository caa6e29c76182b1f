//! A column chunk's pages followed by their offsets, for the selective
//! reader (`super::selected`).
//!
//! The `parquet` crate's page reader hands out pages whole and decoded,
//! and keeps where they lie to itself. The selective reader walks the
//! same pages with its own header reader ([`PageWalk`], on
//! `crate::ingest::page_header`), in step with the crate's reader and
//! stopping at any disagreement, so that it knows, before a page is
//! decompressed, its bounds (when its writer put them in its header) and
//! where its stored bytes are; then a page can be read only as far as the
//! values wanted ([`StoredPage::prefix`]), and a snappy page's values far
//! in are reached through a window that forgets the bytes before them
//! ([`StoredPage::window`]). A data page v2 keeps its
//! levels apart from its values, uncompressed: it is handed out as two
//! stored pages ([`PageWalk::page_v2`]).
//!
//! Input is third-party data: a header that does not read ends the walk,
//! and a page that decompresses short is a data error, never a panic.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use parquet::basic::Compression;
use parquet::column::page::PageMetadata;
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::reader::ChunkReader;

use super::lz4_prefix::{hadoop_frame, lz4_hadoop_prefix, lz4_raw_prefix, HADOOP_HEADER};
use super::snappy_prefix::{SnappyProgress, SLACK as SNAPPY_SLACK};
use super::stored_pages::{self, pooled_buffer, pooled_bytes};
use super::zstd_prefix::{first_block_end, zstd_prefix};
use crate::error::{Error, Result};
use crate::ingest::page_header::{read_page_header, HeaderError, PageHeader, PageKind, PageLevels};

/// Reads `length` bytes of the file at an offset.
pub(super) type ReadAt = Arc<dyn Fn(u64, usize) -> parquet::errors::Result<Bytes> + Send + Sync>;

/// The pages of a column chunk as this reader's own header reader
/// ([`read_page_header`]) walks them, alongside the `parquet` crate's page
/// reader: a page's header tells its bounds, if its writer put them there
/// (Arrow C++, so pyarrow and Spark, do), and its stored bytes are known by
/// offset, so that it can be read in part. Pages of the snappy codec (the
/// default of pyarrow, Spark and DuckDB; [`super::snappy_prefix`]), of zstd (the
/// default of Polars), of gzip, of brotli, of either LZ4 codec
/// (`super::lz4_prefix`) or of none can be read as far as needed: every
/// codec a Parquet reader must know but LZO, which the `parquet` crate
/// does not read.
pub(super) struct PageWalk {
    read: ReadAt,
    /// The next page's header.
    pub(super) offset: u64,
    /// The end of the chunk.
    end: u64,
    /// The pages' codec, when they can be read in part.
    codec: Option<PageCodec>,
}

/// A codec whose pages can be read in part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageCodec {
    Uncompressed,
    Snappy,
    Zstd,
    Gzip,
    Brotli,
    /// One LZ4 block (`LZ4_RAW`).
    Lz4Raw,
    /// LZ4 blocks in Hadoop's frames (`LZ4`).
    Lz4Hadoop,
}

impl PageWalk {
    pub(super) fn of<R: ChunkReader + 'static>(
        reader: &Arc<R>,
        chunk: &ColumnChunkMetaData,
    ) -> Option<Self> {
        let codec = match chunk.compression() {
            Compression::SNAPPY => Some(PageCodec::Snappy),
            Compression::ZSTD(_) => Some(PageCodec::Zstd),
            Compression::GZIP(_) => Some(PageCodec::Gzip),
            Compression::BROTLI(_) => Some(PageCodec::Brotli),
            Compression::LZ4_RAW => Some(PageCodec::Lz4Raw),
            Compression::LZ4 => Some(PageCodec::Lz4Hadoop),
            Compression::UNCOMPRESSED => Some(PageCodec::Uncompressed),
            _ => None,
        };
        let (start, length) = chunk.byte_range();
        let reader = Arc::clone(reader);
        Some(Self {
            read: Arc::new(move |at, length| reader.get_bytes(at, length)),
            offset: start,
            end: start.checked_add(length)?,
            codec,
        })
    }

    /// The header of the next page and its length in bytes, or `None` at
    /// the end of the chunk or if the header does not read.
    pub(super) fn header(&self) -> Option<(PageHeader, usize)> {
        header_at(|at, length| (self.read)(at, length), self.offset, self.end)
    }

    /// The stored bytes of the page whose header (`header_len` bytes) is
    /// next, if its sizes are possible.
    pub(super) fn page(&self, header: &PageHeader, header_len: usize) -> Option<StoredPage> {
        let compressed = usize::try_from(header.compressed_size).ok()?;
        let uncompressed = usize::try_from(header.uncompressed_size).ok()?;
        let body = self.offset.checked_add(header_len as u64)?;
        self.stored(body, compressed, uncompressed, self.codec?)
    }

    /// The stored bytes of the data page v2 of a flat column whose header
    /// (`header_len` bytes) is next, as two pages: its definition levels
    /// (stored as they are, before the values) and its values (compressed
    /// unless the header says otherwise); `None` if the page has
    /// repetition levels or its sizes are not possible.
    pub(super) fn page_v2(
        &self,
        header: &PageHeader,
        header_len: usize,
    ) -> Option<(StoredPage, StoredPage)> {
        let PageLevels::V2 {
            def_len,
            rep_len: 0,
            values_compressed,
            ..
        } = header.levels
        else {
            return None;
        };
        let levels = usize::try_from(def_len).ok()?;
        let compressed = usize::try_from(header.compressed_size).ok()?;
        let uncompressed = usize::try_from(header.uncompressed_size).ok()?;
        let body = self.offset.checked_add(header_len as u64)?;
        let values_at = body.checked_add(levels as u64)?;
        let (stored, size) = (
            compressed.checked_sub(levels)?,
            uncompressed.checked_sub(levels)?,
        );
        let codec = if values_compressed {
            self.codec?
        } else {
            PageCodec::Uncompressed
        };
        Some((
            self.stored(body, levels, levels, PageCodec::Uncompressed)?,
            self.stored(values_at, stored, size, codec)?,
        ))
    }

    /// The `compressed` bytes at `body`, which `codec` decompresses to
    /// `uncompressed` bytes, if they lie within the chunk and the sizes are
    /// possible.
    fn stored(
        &self,
        body: u64,
        compressed: usize,
        uncompressed: usize,
        codec: PageCodec,
    ) -> Option<StoredPage> {
        if body.checked_add(compressed as u64)? > self.end {
            return None;
        }
        // Snappy makes at most about 21 bytes of 1 (a 3-byte copy of 64):
        // a header claiming more is left to the page reader to refuse. zstd
        // and brotli have no such bound (a page of one repeated value
        // shrinks to a few bytes); a claim past this one is left to the page
        // reader too, which reads such a page whole.
        let possible = match codec {
            PageCodec::Snappy => uncompressed <= compressed.saturating_mul(24).saturating_add(64),
            // Deflate makes at most 1032 bytes of 1.
            PageCodec::Zstd | PageCodec::Gzip | PageCodec::Brotli => {
                uncompressed <= compressed.saturating_mul(1024).saturating_add(1 << 16)
            }
            // A byte of an extended length adds at most 255 output bytes.
            PageCodec::Lz4Raw => uncompressed <= compressed.saturating_mul(256).saturating_add(64),
            // Pages of the `LZ4` codec are Hadoop frames when pyarrow,
            // Spark or parquet-mr wrote them, and one raw block, or an LZ4
            // frame, when some older writers did: the `parquet` crate tries
            // each in turn. Only a page whose frame headers account for
            // its sizes exactly is read in part; any other is left to the
            // crate.
            PageCodec::Lz4Hadoop => {
                uncompressed <= compressed.saturating_mul(256).saturating_add(64)
                    && self.hadoop_frames_fit(body, compressed, uncompressed)
            }
            PageCodec::Uncompressed => compressed == uncompressed,
        };
        possible.then(|| StoredPage {
            read: Arc::clone(&self.read),
            body,
            compressed,
            uncompressed,
            codec,
            decoded: Mutex::default(),
            first_block: Mutex::default(),
            snappy: Mutex::default(),
        })
    }

    /// Whether the Hadoop LZ4 frame headers of the page stored at `body`
    /// (`compressed` bytes) follow one another to its end and add up to
    /// `uncompressed` bytes. A raw block read as frame headers does not:
    /// its first byte, a token with at least one literal, would claim a
    /// frame of 256 MiB or more.
    fn hadoop_frames_fit(&self, body: u64, compressed: usize, uncompressed: usize) -> bool {
        let (mut at, mut size) = (0usize, 0usize);
        for _ in 0..MOST_HADOOP_FRAMES {
            if at >= compressed {
                break;
            }
            let Some(header) = compressed
                .checked_sub(at)
                .filter(|&left| left >= HADOOP_HEADER)
                .and_then(|_| (self.read)(body + at as u64, HADOOP_HEADER).ok())
            else {
                return false;
            };
            let Some((frame, _)) = hadoop_frame(&header) else {
                return false;
            };
            size = size.saturating_add(frame.size);
            at = at
                .saturating_add(HADOOP_HEADER)
                .saturating_add(frame.stored);
            if size > uncompressed {
                return false;
            }
        }
        at == compressed && size == uncompressed
    }
}

/// The header of the page at `offset` (before `end`) and its length in
/// bytes, read with `read`; `None` at `end` or if it does not read.
fn header_at(
    read: impl Fn(u64, usize) -> parquet::errors::Result<Bytes>,
    offset: u64,
    end: u64,
) -> Option<(PageHeader, usize)> {
    let left = end.checked_sub(offset).filter(|&l| l > 0)?;
    for length in [HEADER_READ, HEADER_READ_MOST] {
        let bytes = read(offset, usize::try_from(left.min(length)).ok()?).ok()?;
        match read_page_header(&bytes) {
            Ok(header) => return Some(header),
            Err(HeaderError::Truncated) if left > length => continue,
            Err(_) => return None,
        }
    }
    None
}

/// Whether every data page of `chunk` takes its values from the chunk's
/// one dictionary page, as their headers say (read a few hundred bytes
/// each; no page is decompressed). False when a header does not read, a
/// page is not dictionary-encoded, or a second dictionary page appears.
/// A chunk's encoding statistics tell the same where a writer gives them;
/// Polars gives none.
pub(super) fn only_dictionary_encoded<R: ChunkReader>(
    reader: &R,
    chunk: &ColumnChunkMetaData,
) -> bool {
    let (start, length) = chunk.byte_range();
    let Some(end) = start.checked_add(length) else {
        return false;
    };
    let read = |at, length| reader.get_bytes(at, length);
    let mut offset = start;
    let mut dictionaries = 0;
    while offset < end {
        let Some((header, header_len)) = header_at(read, offset, end) else {
            return false;
        };
        let ok = match header.kind {
            PageKind::Dictionary => {
                dictionaries += 1;
                dictionaries == 1 && offset == start
            }
            PageKind::DataV1 | PageKind::DataV2 => dictionaries == 1 && header.uses_dictionary(),
            PageKind::Index => true,
        };
        let step = u64::try_from(header.compressed_size)
            .ok()
            .and_then(|c| c.checked_add(header_len as u64));
        match step {
            Some(step) if ok => offset = offset.saturating_add(step),
            _ => return false,
        }
    }
    offset == end && dictionaries == 1
}

/// Moves `walk` past the page whose header it read (`own`), or ends the
/// walk if it read none.
pub(super) fn step_walk(walk: &mut Option<PageWalk>, own: Option<&(PageHeader, usize)>) {
    let step = own.and_then(|(header, len)| {
        u64::try_from(header.compressed_size)
            .ok()?
            .checked_add(*len as u64)
    });
    match (walk.as_mut(), step) {
        (Some(w), Some(step)) => w.offset = w.offset.saturating_add(step),
        _ => *walk = None,
    }
}

/// Bytes read for a page header: enough unless it holds long statistics,
/// then at most this many.
const HEADER_READ: u64 = 256;
const HEADER_READ_MOST: u64 = 65_536;

/// Whether this reader's own reading of the next page's header (`own`)
/// agrees with the `parquet` crate's (`meta`).
pub(super) fn own_header_agrees(
    own: Option<&(PageHeader, usize)>,
    meta: Option<&PageMetadata>,
) -> bool {
    match (own, meta) {
        (None, None) => true,
        (Some((header, _)), Some(meta)) => match header.kind {
            PageKind::Dictionary => meta.is_dict,
            PageKind::DataV1 => {
                !meta.is_dict && meta.num_levels == usize::try_from(header.num_values).ok()
            }
            PageKind::DataV2 => {
                let PageLevels::V2 { num_rows, .. } = header.levels else {
                    return false;
                };
                !meta.is_dict && meta.num_rows == usize::try_from(num_rows).ok()
            }
            PageKind::Index => false,
        },
        _ => false,
    }
}

/// The most frames an `LZ4` page read in part may have: Arrow C++ writes
/// one a page, Hadoop one per 256 KiB or so.
const MOST_HADOOP_FRAMES: usize = 4096;

/// The brotli decoder's input buffer (the `parquet` crate's size).
const BROTLI_BUFFER: usize = 4096;

/// The longest snappy prefix kept to decode a longer one on from
/// ([`StoredPage::snappy_prefix`]); a longer one is handed out as it is.
const SNAPPY_KEPT_MOST: usize = 64 << 10;

/// How many of the latest bytes a [`PageWindow`] keeps behind those
/// still wanted: snappy's compressors (Google's, which pyarrow, Spark and
/// DuckDB use, and the `snap` crate) cut their input into blocks of
/// 64 KiB and copy from within a block only. A copy reaching further back
/// sends the caller to [`StoredPage::prefix`].
const WINDOW_HISTORY: usize = 64 << 10;

/// The blocks snappy's compressors cut their input into (see
/// [`WINDOW_HISTORY`]): a [`PageWindow`] steps over the whole blocks before
/// the bytes asked ([`SnappyProgress::skip_to`]) and decodes from the
/// start of the block that holds them.
const SNAPPY_BLOCK: usize = 64 << 10;

/// How far past the bytes asked a [`PageWindow`] decodes at a time.
const WINDOW_STEP: usize = 64 << 10;

/// How many bytes a [`PageWindow`] may forget before it does: the bytes it
/// keeps then move to the front of its buffer, once per this many.
const WINDOW_SLIDE: usize = 128 << 10;

/// The most a zstd block produces.
const ZSTD_BLOCK: usize = 128 << 10;

/// The longest zstd prefix decoded by [`zstd_prefix`] rather than by the
/// library.
const OWN_ZSTD_MOST: usize = 32 << 10;

/// Whether the first `want` bytes of a zstd page of `uncompressed` bytes
/// are cheaper to decode with [`zstd_prefix`] than with the library.
///
/// The library decodes the blocks a prefix reaches whole (up to 128 KiB
/// each, 50–65 µs here) and keeps them for the next, longer prefix of the
/// same page. [`zstd_prefix`] builds a block's tables (about 6 µs) and
/// then goes about twice as slow a byte, but stops where asked: 1,000
/// bytes of a 1 MiB page take 6 µs, 16 KiB 20 µs, a whole block 130 µs
/// (a throwaway timing loop, not kept: page-like bytes at level 3). A
/// small page is the library's, whole.
fn own_zstd_prefix(want: usize, uncompressed: usize) -> bool {
    want <= OWN_ZSTD_MOST && want * 2 + (16 << 10) <= uncompressed.min(ZSTD_BLOCK)
}

/// How far [`zstd_prefix`] decodes a page at least, so that the short
/// prefixes asked one after the other (a page's levels' length, then its
/// levels, then its first values) take one decoding.
const OWN_ZSTD_AHEAD: usize = 2 << 10;

/// The most a zstd frame header takes, with its magic number: the first
/// block's header follows.
const ZSTD_HEADER_MOST: usize = 18;

/// One page's stored bytes, read as far as wanted.
pub(super) struct StoredPage {
    read: ReadAt,
    /// Where they start in the file, and their length.
    body: u64,
    compressed: usize,
    pub(super) uncompressed: usize,
    codec: PageCodec,
    /// The longest prefix decompressed so far (zstd, gzip and brotli, whose
    /// longer prefixes are decoded ahead).
    decoded: Mutex<Bytes>,
    /// A zstd page's frame header and first block, once read for
    /// [`zstd_prefix`] (empty before).
    first_block: Mutex<Bytes>,
    /// A snappy page's decoding so far, while its prefixes are short.
    snappy: Mutex<Option<SnappyProgress>>,
}

impl StoredPage {
    /// Whether the page is snappy-compressed.
    pub(super) fn is_snappy(&self) -> bool {
        self.codec == PageCodec::Snappy
    }

    /// Whether the page is stored uncompressed.
    pub(super) fn is_uncompressed(&self) -> bool {
        self.codec == PageCodec::Uncompressed
    }

    /// How many bytes the page stores.
    pub(super) fn compressed(&self) -> usize {
        self.compressed
    }

    /// `length` of the page's stored bytes from `at` (fewer at its end).
    pub(super) fn read_stored(&self, at: usize, length: usize, context: &str) -> Result<Bytes> {
        let length = length.min(self.compressed.saturating_sub(at));
        (self.read)(self.body.saturating_add(at as u64), length)
            .map_err(|e| Error::data_from(context, e))
    }

    /// The first `want` bytes of the page as written (`want` at most its
    /// uncompressed size).
    pub(super) fn prefix(&self, want: usize, context: &str) -> Result<Bytes> {
        let read = |length: usize| {
            (self.read)(self.body, length).map_err(|e| Error::data_from(context, e))
        };
        match self.codec {
            PageCodec::Uncompressed => return read(want),
            PageCodec::Zstd => return self.zstd_prefix(want, context),
            PageCodec::Gzip => {
                return self.stream_prefix(want, context, |stored| {
                    Box::new(flate2::read::MultiGzDecoder::new(stored))
                })
            }
            PageCodec::Brotli => {
                return self.stream_prefix(want, context, |stored| {
                    Box::new(brotli::Decompressor::new(stored, BROTLI_BUFFER))
                })
            }
            PageCodec::Snappy | PageCodec::Lz4Raw | PageCodec::Lz4Hadoop => {}
        }
        // The whole page: the codec crate's decoder, which is faster than
        // one that can stop early. But a snappy page decoded a quarter of
        // the way or more already (its levels, say, then its indices as
        // far as a row) is decoded on: both decoders make about 1 GB/s
        // here, so starting over costs the prefix again (the bot's
        // 60 KB page of DuckDB's file, rows two thirds in, in a flow).
        // (A block of another length than the page's is left to the
        // crate's decoder, which finds it damaged.)
        let decoded_far = || {
            self.snappy
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .is_some_and(|p| p.made() >= want / 4 && p.total() == want)
        };
        if want == self.uncompressed && !(self.codec == PageCodec::Snappy && decoded_far()) {
            #[cfg(test)]
            tests::WHOLE_PAGES.with(|w| w.borrow_mut().push(want));
            let stored = read(self.compressed)?;
            let out = self.decompress_whole(&stored, context)?;
            if out.len() != want {
                return Err(Error::data(context, "damaged page: it decompresses short"));
            }
            return Ok(Bytes::from(out));
        }
        // A snappy element, or an LZ4 sequence, stores at most a few bytes
        // more than it produces: read as much of the page, in proportion,
        // and more when that falls short.
        let ratio = self.compressed as f64 / self.uncompressed.max(1) as f64;
        let mut length = ((want as f64 * ratio * 1.25) as usize).saturating_add(1024);
        loop {
            length = length.min(self.compressed);
            let stored = read(length)?;
            let out = match self.codec {
                PageCodec::Snappy => self.snappy_prefix(&stored, want),
                PageCodec::Lz4Raw => lz4_raw_prefix(&stored, want).map(Bytes::from),
                _ => lz4_hadoop_prefix(&stored, want).map(Bytes::from),
            };
            if let Some(out) = out {
                return Ok(out);
            }
            if length == self.compressed {
                return Err(Error::data(context, "damaged page: it decompresses short"));
            }
            length = length.saturating_mul(2);
        }
    }

    /// The first `want` bytes of a snappy page, from its first stored
    /// bytes (`stored`, as many as the caller read): decoded on from the
    /// last, shorter prefix asked of the page while that one is kept (up
    /// to [`SNAPPY_KEPT_MOST`] bytes). A page is often asked for its
    /// levels' length, then its levels, then its values: on DuckDB's file
    /// a first-conversation flow decoded 200 KB of snappy for prefixes
    /// ending at 108 KB. A prefix longer than that is decoded into a
    /// buffer a page gave back ([`stored_pages::pooled_buffer`]): a
    /// mid-file flow's columns then reuse the memory of the conversation's
    /// pages it matched (page faults 473 → 440 on DuckDB's 1M v2 file,
    /// 590 → 558 on its 10M v2 file; alternated runs, medians of 61: 2.77
    /// → 2.64 ms and 3.46 → 3.36 ms; the first conversation 1.95 → 1.88
    /// ms, 41 runs). `None` if `stored` falls short (the caller reads
    /// more, and decoding starts over) or the page is damaged.
    fn snappy_prefix(&self, stored: &[u8], want: usize) -> Option<Bytes> {
        let mut kept = self.snappy.lock().unwrap_or_else(|p| p.into_inner());
        let mut progress = match kept.take() {
            Some(progress) => progress,
            None => SnappyProgress::start(stored)?,
        };
        // A long prefix is decoded into a pooled buffer (a kept one's bytes
        // copied there first), not one grown out of fresh memory.
        let room = want.saturating_add(SNAPPY_SLACK);
        if want > SNAPPY_KEPT_MOST && progress.out.capacity() < room {
            let mut out = pooled_buffer(room);
            out.extend_from_slice(&progress.out);
            progress.out = out;
        }
        progress.decode_to(stored, want)?;
        if progress.out.len() != want {
            return None;
        }
        if want > SNAPPY_KEPT_MOST {
            return Some(pooled_bytes(progress.out));
        }
        let out = Bytes::from(progress.out.clone());
        *kept = Some(progress);
        Some(out)
    }

    /// A window onto the page's bytes that decodes forward and forgets
    /// what is behind it ([`PageWindow`]), for a snappy page; `None` for
    /// other codecs (whose pages are read by [`StoredPage::prefix`]).
    pub(super) fn window(&self) -> Option<PageWindow<'_>> {
        if self.codec != PageCodec::Snappy {
            return None;
        }
        // Go on from the short prefixes decoded already (the levels).
        let kept = self.snappy.lock().unwrap_or_else(|p| p.into_inner()).take();
        Some(PageWindow {
            page: self,
            stored: Bytes::new(),
            progress: kept,
        })
    }

    /// A snappy or LZ4 page's `stored` bytes, all of them decompressed.
    fn decompress_whole(&self, stored: &[u8], context: &str) -> Result<Vec<u8>> {
        let damaged =
            |e: &dyn std::fmt::Display| Error::data(context, format!("damaged page: {e}"));
        match self.codec {
            PageCodec::Snappy => snap::raw::Decoder::new()
                .decompress_vec(stored)
                .map_err(|e| Error::data_from(context, e)),
            PageCodec::Lz4Raw => {
                lz4_flex::block::decompress(stored, self.uncompressed).map_err(|e| damaged(&e))
            }
            _ => {
                // Frames that fit the page's sizes (`PageWalk::page`).
                let mut out = vec![0u8; self.uncompressed];
                let (mut rest, mut at) = (stored, 0usize);
                while let Some((frame, block)) = hadoop_frame(rest) {
                    let (Some(block), Some(end)) =
                        (block.get(..frame.stored), at.checked_add(frame.size))
                    else {
                        return Err(damaged(&"an LZ4 frame overruns the page"));
                    };
                    let target = out
                        .get_mut(at..end)
                        .ok_or_else(|| damaged(&"an LZ4 frame overruns the page"))?;
                    let n =
                        lz4_flex::block::decompress_into(block, target).map_err(|e| damaged(&e))?;
                    if n != frame.size {
                        return Err(damaged(&"an LZ4 frame decompresses short"));
                    }
                    at = end;
                    rest = &rest[HADOOP_HEADER + frame.stored..];
                }
                if !rest.is_empty() || at != out.len() {
                    return Err(damaged(&"LZ4 frames do not fill the page"));
                }
                Ok(out)
            }
        }
    }

    /// [`StoredPage::prefix`] of a page of a streaming codec, gzip (as the
    /// `parquet` crate reads one: gzip members, one after the other) or
    /// brotli, whose stored bytes `open` decodes. Neither can start
    /// mid-stream, so a longer prefix is decoded from the start again:
    /// each decoding goes at least twice as far as the last (kept for the
    /// shorter prefixes asked next), so that a page asked for in growing
    /// prefixes costs at most about twice its longest. Its stored bytes
    /// are read in proportion to the prefix, then twice as far each time
    /// they fall short.
    fn stream_prefix(
        &self,
        want: usize,
        context: &str,
        open: impl for<'a> Fn(&'a [u8]) -> Box<dyn std::io::Read + 'a>,
    ) -> Result<Bytes> {
        use std::io::Read;
        let damaged = |what: &str| Error::data(context, format!("damaged page: {what}"));
        let longest = {
            let decoded = self.decoded.lock().unwrap_or_else(|p| p.into_inner());
            if decoded.len() >= want {
                return Ok(decoded.slice(..want));
            }
            decoded.len()
        };
        let target = want
            .max(longest.saturating_mul(2))
            .min(self.uncompressed.max(want));
        let ratio = self.compressed as f64 / self.uncompressed.max(1) as f64;
        let mut length = ((target as f64 * ratio * 1.25) as usize).saturating_add(1024);
        loop {
            length = length.min(self.compressed);
            let stored =
                (self.read)(self.body, length).map_err(|e| Error::data_from(context, e))?;
            let mut out = Vec::with_capacity(target);
            let decoded = open(&stored[..]).take(target as u64).read_to_end(&mut out);
            // Bytes read in part end mid-stream, which the decoder reports
            // once it has given what they hold.
            let whole = length == self.compressed;
            if out.len() >= want && (decoded.is_ok() || !whole) {
                let out = Bytes::from(out);
                *self.decoded.lock().unwrap_or_else(|p| p.into_inner()) = out.clone();
                return Ok(out.slice(..want));
            }
            if whole {
                return Err(match decoded {
                    Err(e) => damaged(&e.to_string()),
                    Ok(_) => damaged("it decompresses short"),
                });
            }
            length = length.saturating_mul(2);
        }
    }

    /// The frame header and first block of a zstd page, read once: a
    /// prefix that reaches further goes to the library. Empty if they do
    /// not read as a frame's.
    fn zstd_first_block(&self, context: &str) -> Result<Bytes> {
        let mut kept = self.first_block.lock().unwrap_or_else(|p| p.into_inner());
        if kept.is_empty() {
            let read = |length: usize| {
                (self.read)(self.body, length.min(self.compressed))
                    .map_err(|e| Error::data_from(context, e))
            };
            let head = read(ZSTD_HEADER_MOST + 3)?;
            *kept = match first_block_end(&head) {
                Some(end) if end <= head.len() => head.slice(..end),
                Some(end) => read(end)?,
                None => Bytes::new(),
            };
        }
        Ok(kept.clone())
    }

    /// [`StoredPage::prefix`] of a zstd page: its stored bytes are read as
    /// far as they produce `want` bytes (in proportion first, then twice
    /// as far each time), through the thread's decompression context
    /// (`super::stored_pages`).
    fn zstd_prefix(&self, want: usize, context: &str) -> Result<Bytes> {
        use zstd::zstd_safe::{InBuffer, OutBuffer};
        let damaged = |what: &str| Error::data(context, format!("damaged page: {what}"));
        {
            let decoded = self.decoded.lock().unwrap_or_else(|p| p.into_inner());
            if decoded.len() >= want {
                return Ok(decoded.slice(..want));
            }
        }
        if own_zstd_prefix(want, self.uncompressed) {
            // More than asked, kept for the next, longer prefix (a page's
            // levels' length, then its levels, then its values).
            let decoded = self.decoded.lock().unwrap_or_else(|p| p.into_inner()).len();
            let target = want
                .max(OWN_ZSTD_AHEAD)
                .max(decoded.saturating_mul(4))
                .min(self.uncompressed);
            let target = if own_zstd_prefix(target, self.uncompressed) {
                target
            } else {
                want
            };
            let stored = self.zstd_first_block(context)?;
            // Anything it cannot decode goes to the library, which
            // reports the damage.
            if let Some(out) = zstd_prefix(&stored, target).filter(|out| out.len() == target) {
                let out = Bytes::from(out);
                *self.decoded.lock().unwrap_or_else(|p| p.into_inner()) = out.clone();
                return Ok(out.slice(..want));
            }
        }
        stored_pages::with_context(context, |dctx| {
            // zstd gives nothing of a block (up to 128 KiB of output)
            // before it has all of its stored bytes: read in proportion to
            // the blocks `want` reaches into.
            let ratio = self.compressed as f64 / self.uncompressed.max(1) as f64;
            let blocks = want.div_ceil(ZSTD_BLOCK).saturating_mul(ZSTD_BLOCK);
            let mut length = if want == self.uncompressed {
                self.compressed
            } else {
                ((blocks as f64 * ratio * 1.25) as usize).saturating_add(1024)
            };
            // Whole blocks are kept for the next, longer prefix (a page's
            // levels' length, then its levels, then its values).
            let target = blocks.clamp(want, self.uncompressed.max(want));
            let mut out: Vec<u8> = Vec::with_capacity(target);
            let mut fed = 0usize;
            loop {
                length = length.min(self.compressed);
                let stored = (self.read)(self.body + fed as u64, length - fed)
                    .map_err(|e| Error::data_from(context, e))?;
                let mut input = InBuffer::around(&stored);
                while out.len() < target && input.pos() < stored.len() {
                    let (filled, taken) = (out.len(), input.pos());
                    let mut output = OutBuffer::around_pos(&mut out, filled);
                    dctx.decompress_stream(&mut output, &mut input)
                        .map_err(|code| damaged(zstd::zstd_safe::get_error_name(code)))?;
                    if (out.len(), input.pos()) == (filled, taken) {
                        return Err(damaged("zstd makes no progress"));
                    }
                }
                fed = length;
                if out.len() >= want {
                    let out = Bytes::from(out);
                    *self.decoded.lock().unwrap_or_else(|p| p.into_inner()) = out.clone();
                    return Ok(out.slice(..want));
                }
                if length == self.compressed {
                    return Err(damaged("it decompresses short"));
                }
                length = length.saturating_mul(2);
            }
        })
    }
}

/// Bytes far into a snappy page, decoded through a window of the latest
/// ones rather than into a buffer of all those before them
/// ([`StoredPage::window`]).
///
/// A flow reads a few rows of a page, often far into it: on DuckDB's file,
/// the values of rows 70% into a 1.8 MB page of event ids, and of a 1 MB
/// page of timestamps. Decoding all the bytes before them into a fresh
/// buffer of their size costs a page fault for every 4 KiB; the window
/// keeps [`WINDOW_HISTORY`] bytes behind those still wanted, plus at most
/// [`WINDOW_STEP`] ahead and [`WINDOW_SLIDE`] it has not yet forgotten, in
/// one buffer that stays in cache. The compressor's whole blocks before
/// the bytes asked are not decoded at all, only stepped over element by
/// element ([`SnappyProgress::skip_to`]): a page that barely compresses
/// (ids, timestamps) is mostly long literals, whose bytes are then not
/// even read. A mid-file flow, 30 alternated runs, median of the whole
/// process: DuckDB's v2 file 4.62 → 4.28 ms, DuckDB's 5.37 → 4.83 ms.
pub(super) struct PageWindow<'a> {
    page: &'a StoredPage,
    /// The page's stored bytes read so far.
    stored: Bytes,
    /// The decoding so far (`None` before it starts, or after it failed).
    progress: Option<SnappyProgress>,
}

impl PageWindow<'_> {
    /// The page's bytes from `from` on, decoded at least as far as `to`
    /// (or the page's end), and perhaps further; the bytes more than
    /// [`WINDOW_HISTORY`] before `from` are forgotten, and asking for
    /// them again gives `None`. `None` too when the window cannot make the
    /// bytes (a copy reaching back further than it keeps, or a damaged
    /// page): the caller reads the page with [`StoredPage::prefix`], which
    /// reports damage.
    pub(super) fn bytes(&mut self, from: usize, to: usize, context: &str) -> Result<Option<&[u8]>> {
        if !self.reach(from, to.min(self.page.uncompressed), context)? {
            self.progress = None;
            return Ok(None);
        }
        #[cfg(test)]
        tests::WINDOW_READS.with(|n| n.set(n.get() + 1));
        Ok(self
            .progress
            .as_ref()
            .and_then(|p| p.out.get(from - p.base()..)))
    }

    /// Decodes as far as `to`, holding the bytes from `from` on: whether
    /// it could.
    fn reach(&mut self, from: usize, to: usize, context: &str) -> Result<bool> {
        let page = self.page;
        let ratio = page.compressed as f64 / page.uncompressed.max(1) as f64;
        loop {
            if self.progress.is_none() && self.stored.is_empty() {
                let length = ((to as f64 * ratio * 1.25) as usize)
                    .saturating_add(1024)
                    .min(page.compressed);
                self.read(length, context)?;
            }
            let progress = match &mut self.progress {
                Some(progress) => progress,
                None => match SnappyProgress::start(&self.stored) {
                    Some(progress) => self.progress.insert(progress),
                    None if self.stored.len() < page.compressed => {
                        self.read(page.compressed, context)?;
                        continue;
                    }
                    None => return Ok(false),
                },
            };
            if from < progress.base() {
                return Ok(false);
            }
            // The whole blocks of the compressor before `from` are stepped
            // over, their bytes not made.
            let block = from / SNAPPY_BLOCK * SNAPPY_BLOCK;
            if progress.end() < block {
                if progress.skip_to(&self.stored, block).is_none() {
                    self.progress = None;
                    if self.stored.len() == page.compressed {
                        return Ok(false);
                    }
                    self.read(page.compressed, context)?;
                    continue;
                }
                if progress.end() < block && self.stored.len() < page.compressed {
                    // The stored bytes read (none, when going on from a
                    // prefix) fell short of the point: read as far in
                    // proportion, and at least twice as far as before.
                    let length = ((block as f64 * ratio * 1.25) as usize)
                        .saturating_add(1024)
                        .max(self.stored.len() * 2)
                        .min(page.compressed);
                    self.read(length, context)?;
                    continue;
                }
            }
            let forget = from.min(progress.end().saturating_sub(WINDOW_HISTORY));
            if forget >= progress.base() + WINDOW_SLIDE {
                progress.forget_before(forget);
            }
            if progress.end() >= to {
                return Ok(true);
            }
            // A step at a time while the bytes made are all to forget,
            // then as far as asked.
            let step = progress.end().saturating_add(WINDOW_STEP);
            let goal = match progress.end() < from {
                true => step,
                false => step.max(to),
            }
            .min(page.uncompressed);
            // A snappy element stores at most a few bytes more than it
            // makes: the stored bytes in proportion, and some more.
            let length = ((goal as f64 * ratio * 1.25) as usize)
                .saturating_add(1024)
                .min(page.compressed);
            if self.stored.len() < length {
                // Each read starts at the page's start: read at least twice
                // as far as the last, so that all reads add up to at most
                // about twice the bytes needed.
                self.read(
                    length.max(self.stored.len() * 2).min(page.compressed),
                    context,
                )?;
            }
            let Some(progress) = self.progress.as_mut() else {
                continue;
            };
            if progress.decode_to(&self.stored, goal).is_some() && progress.end() == goal {
                continue;
            }
            // Stored bytes read in part fell short: start again from all
            // of them (the decoding is spent); with all of them, the page
            // is damaged or copies from further back than the window keeps.
            self.progress = None;
            if self.stored.len() == page.compressed {
                return Ok(false);
            }
            self.read(page.compressed, context)?;
        }
    }

    /// Reads the page's first `length` stored bytes.
    fn read(&mut self, length: usize, context: &str) -> Result<()> {
        self.stored =
            (self.page.read)(self.page.body, length).map_err(|e| Error::data_from(context, e))?;
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    thread_local! {
        /// How many times a [`PageWindow`] gave bytes on this thread.
        pub(in crate::ingest::parquet) static WINDOW_READS: std::cell::Cell<usize> =
            const { std::cell::Cell::new(0) };
        /// The sizes of the snappy and LZ4 pages [`StoredPage::prefix`]
        /// decompressed whole on this thread.
        pub(in crate::ingest::parquet) static WHOLE_PAGES: std::cell::RefCell<Vec<usize>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    /// A snappy page whose stored bytes are `stored`, of `uncompressed`
    /// bytes (for the other modules' tests).
    pub(in crate::ingest::parquet) fn snappy_page(
        stored: Vec<u8>,
        uncompressed: usize,
    ) -> StoredPage {
        page_of(PageCodec::Snappy, stored, uncompressed, &Arc::default())
    }

    /// An uncompressed page of `bytes` (for the other modules' tests).
    pub(in crate::ingest::parquet) fn plain_page(bytes: Vec<u8>) -> StoredPage {
        let len = bytes.len();
        page_of(PageCodec::Uncompressed, bytes, len, &Arc::default())
    }

    /// A page of `codec` whose stored bytes are `stored` (counting the
    /// bytes read in `read`), of `uncompressed` bytes.
    fn page_of(
        codec: PageCodec,
        stored: Vec<u8>,
        uncompressed: usize,
        read: &Arc<AtomicUsize>,
    ) -> StoredPage {
        let stored = Bytes::from(stored);
        let compressed = stored.len();
        let read = Arc::clone(read);
        StoredPage {
            read: Arc::new(move |at, length| {
                read.fetch_add(length, Ordering::Relaxed);
                let at = at as usize;
                Ok(stored.slice(at..(at + length).min(stored.len())))
            }),
            body: 0,
            compressed,
            uncompressed,
            codec,
            decoded: Mutex::default(),
            first_block: Mutex::default(),
            snappy: Mutex::default(),
        }
    }

    /// Event-like bytes for a page: 100,000 ids with a varying tail.
    fn page_bytes() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|i| {
                format!("event-{i:08}-{}", i.wrapping_mul(2_654_435_761) % 97).into_bytes()
            })
            .collect()
    }

    /// A page of `codec` stored as two compressed parts (`compress` of
    /// each half of [`page_bytes`]; valid, though writers make one): every
    /// prefix is its bytes; the prefix of `short` bytes is read from under
    /// a quarter of the stored bytes, and a shorter one after it from what
    /// was kept, reading nothing more. Then prefixes growing from there.
    fn read_in_part(codec: PageCodec, compress: impl Fn(&[u8]) -> Vec<u8>, short: usize) {
        let data = page_bytes();
        let half = data.len() / 2;
        let mut stored = compress(&data[..half]);
        stored.extend(compress(&data[half..]));
        for want in [10, 5_000, half - 3, half + 10, data.len()] {
            let read = Arc::default();
            let page = page_of(codec, stored.clone(), data.len(), &read);
            assert_eq!(page.prefix(want, "v").unwrap(), &data[..want], "{want}");
            if want == short {
                assert!(read.load(Ordering::Relaxed) < stored.len() / 4);
                let before = read.load(Ordering::Relaxed);
                assert_eq!(page.prefix(short / 2, "v").unwrap(), &data[..short / 2]);
                assert_eq!(read.load(Ordering::Relaxed), before);
                for longer in [short + 1, 2 * short, 4 * short + 1] {
                    assert_eq!(page.prefix(longer, "v").unwrap(), &data[..longer]);
                }
            }
        }
    }

    /// A page of `codec` (stored as `compress` gives it) cut short is an
    /// error; with a byte flipped anywhere it is an error or bytes, never
    /// a panic.
    fn damage_is_an_error(codec: PageCodec, compress: impl Fn(&[u8]) -> Vec<u8>) {
        let data: Vec<u8> = (0..8_000u32)
            .flat_map(|i| format!("e{i}").into_bytes())
            .collect();
        let stored = compress(&data);
        let read = Arc::default();
        let cut = page_of(
            codec,
            stored[..stored.len() / 2].to_vec(),
            data.len(),
            &read,
        );
        assert!(cut.prefix(data.len(), "v").is_err());
        let mut errors = 0;
        for at in 0..stored.len() {
            let mut damaged = stored.clone();
            damaged[at] ^= 0x5a;
            for want in [10, data.len()] {
                let page = page_of(codec, damaged.clone(), data.len(), &read);
                errors += usize::from(page.prefix(want, "v").is_err());
            }
        }
        assert!(errors > 0);
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::bulk::compress(data, 1).unwrap()
    }

    fn snappy(data: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(data).unwrap()
    }

    /// A snappy page decoded a quarter of the way is decoded on to its
    /// end when asked whole, not decoded again from its start by the
    /// crate's decoder; a block of another length than the page's is
    /// still damage.
    #[test]
    fn a_snappy_page_decoded_far_is_decoded_on_when_asked_whole() {
        use std::sync::atomic::AtomicUsize;
        let data: Vec<u8> = page_bytes().into_iter().take(60_000).collect();
        let stored = snappy(&data);
        let page = page_of(
            PageCodec::Snappy,
            stored.clone(),
            data.len(),
            &Arc::default(),
        );
        WHOLE_PAGES.with(|w| w.borrow_mut().clear());
        assert_eq!(page.prefix(20_000, "v").unwrap(), &data[..20_000]);
        assert_eq!(page.prefix(data.len(), "v").unwrap(), &data[..]);
        assert!(WHOLE_PAGES.with(|w| w.borrow().is_empty()));
        // Little decoded: the crate's decoder.
        let page = page_of(
            PageCodec::Snappy,
            stored.clone(),
            data.len(),
            &Arc::default(),
        );
        assert_eq!(page.prefix(100, "v").unwrap(), &data[..100]);
        assert_eq!(page.prefix(data.len(), "v").unwrap(), &data[..]);
        assert_eq!(WHOLE_PAGES.with(|w| w.borrow().clone()), [data.len()]);
        // A page that claims fewer bytes than its block makes.
        let read = Arc::new(AtomicUsize::new(0));
        let short = page_of(PageCodec::Snappy, stored, data.len() - 10, &read);
        assert_eq!(short.prefix(20_000, "v").unwrap(), &data[..20_000]);
        assert!(short.prefix(data.len() - 10, "v").is_err());
    }

    /// A long prefix of a snappy page is decoded into a buffer a page
    /// gave back (written all over before, here with sevens), whether it
    /// starts afresh or goes on from a short prefix kept: its bytes are
    /// the page's all the same.
    #[test]
    fn a_long_prefix_is_decoded_into_a_pooled_buffer() {
        let data = page_bytes();
        let stored = snappy(&data);
        for start in [None, Some(1_000), Some(50_000)] {
            for _ in 0..4 {
                drop(pooled_bytes(vec![7u8; 400_000]));
            }
            let page = page_of(
                PageCodec::Snappy,
                stored.clone(),
                data.len(),
                &Arc::default(),
            );
            if let Some(short) = start {
                assert_eq!(page.prefix(short, "v").unwrap(), &data[..short]);
            }
            for want in [200_000, 300_000] {
                assert_eq!(page.prefix(want, "v").unwrap(), &data[..want]);
            }
        }
    }

    /// A window onto a snappy page gives its bytes from anywhere on, as
    /// far as asked or further, reading the stored bytes in proportion;
    /// bytes it has forgotten are `None` when asked again. Other codecs
    /// have no window.
    #[test]
    fn a_window_gives_a_snappy_page_s_bytes_far_in() {
        let data = page_bytes();
        let stored = snappy(&data);
        let read = Arc::default();
        let page = page_of(PageCodec::Snappy, stored.clone(), data.len(), &read);
        // The short prefix of the levels is gone on from.
        assert_eq!(page.prefix(10, "v").unwrap(), &data[..10]);
        let mut window = page.window().unwrap();
        let mut last = 0;
        for (from, to) in [(100, 200), (300_000, 300_050), (900_000, 1_200_000)] {
            let bytes = window.bytes(from, to, "v").unwrap().unwrap();
            assert!(bytes.len() >= (to - from).min(data.len() - from));
            assert_eq!(bytes, &data[from..from + bytes.len()], "{from}");
            // The compressor's whole blocks before `from` were stepped
            // over: their bytes were never made.
            let made_from = window.progress.as_ref().unwrap().base();
            assert_eq!(made_from, from / SNAPPY_BLOCK * SNAPPY_BLOCK, "{from}");
            last = to;
        }
        // Read in proportion, and at least twice as far each time more is
        // needed (a read starts at the page's start): in all, less than
        // four times the stored bytes of 1.2 MB, not a read per step.
        let after_far = read.load(Ordering::Relaxed);
        assert!(after_far < stored.len() * 4 * 12 / 18, "{after_far}");
        // The page's end, then bytes long forgotten.
        let end = window.bytes(data.len() - 5, usize::MAX, "v").unwrap();
        assert_eq!(end.unwrap(), &data[data.len() - 5..]);
        assert!(window.bytes(last / 2, last, "v").unwrap().is_none());
        for codec in [PageCodec::Zstd, PageCodec::Gzip, PageCodec::Uncompressed] {
            assert!(page_of(codec, Vec::new(), 1, &read).window().is_none());
        }
    }

    /// A snappy page the window cannot read gives `None`, never a panic
    /// nor wrong bytes: a copy from further back than it keeps (which
    /// `prefix` decodes), a page cut short or with a byte flipped.
    #[test]
    fn a_window_gives_none_for_a_page_it_cannot_read() {
        // 300,000 literal bytes, then a copy of 10 from 290,000 back.
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        // 300,010 as a varint; a literal whose length - 1 takes 3 bytes;
        // a copy of 4-byte offset.
        let mut stored = vec![0xea, 0xa7, 0x12, 62 << 2];
        stored.extend_from_slice(&(299_999u32.to_le_bytes()[..3]));
        stored.extend(&data);
        stored.push((9 << 2) | 3);
        stored.extend(290_000u32.to_le_bytes());
        let mut whole = data.clone();
        whole.extend_from_within(10_000..10_010);
        let read = Arc::default();
        let page = page_of(PageCodec::Snappy, stored.clone(), whole.len(), &read);
        assert_eq!(page.prefix(whole.len(), "v").unwrap(), whole);
        let mut window = page.window().unwrap();
        assert!(window.bytes(299_995, 300_010, "v").unwrap().is_none());

        let data = page_bytes();
        let stored = snappy(&data);
        let cut = page_of(
            PageCodec::Snappy,
            stored[..stored.len() / 2].to_vec(),
            data.len(),
            &read,
        );
        assert!(cut
            .window()
            .unwrap()
            .bytes(data.len() - 10, data.len(), "v")
            .unwrap()
            .is_none());
        for at in (0..stored.len()).step_by(stored.len() / 300) {
            let mut damaged = stored.clone();
            damaged[at] ^= 0x5a;
            let page = page_of(PageCodec::Snappy, damaged, data.len(), &read);
            let mut window = page.window().unwrap();
            if let Ok(Some(bytes)) = window.bytes(700_000, 700_100, "v") {
                assert!(!bytes.is_empty());
            }
        }
    }

    /// The `parquet` crate reads a gzip page as members one after another.
    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// A zstd page of two frames: a short prefix comes from the first
    /// blocks, a shorter one after it from the blocks kept.
    #[test]
    fn a_zstd_page_is_read_in_part_across_frames() {
        read_in_part(PageCodec::Zstd, zstd, 10);
    }

    /// A gzip page of two members: a short prefix is decoded from a part
    /// of the stored bytes, longer ones decode at least twice as far.
    #[test]
    fn a_gzip_page_is_read_in_part_across_members() {
        read_in_part(PageCodec::Gzip, gzip, 5_000);
    }

    #[test]
    fn a_damaged_zstd_page_is_an_error() {
        damage_is_an_error(PageCodec::Zstd, zstd);
    }

    #[test]
    fn a_damaged_gzip_page_is_an_error() {
        damage_is_an_error(PageCodec::Gzip, gzip);
    }

    fn brotli(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut out = Vec::new();
        {
            let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 1, 22);
            writer.write_all(data).unwrap();
        }
        out
    }

    /// A brotli page (one stream: a page of two, which gzip allows, is
    /// not one the `parquet` crate reads) is read in part as gzip's.
    #[test]
    fn a_brotli_page_is_read_in_part() {
        let data = page_bytes();
        let stored = brotli(&data);
        for want in [0, 10, 5_000, data.len() / 2, data.len()] {
            let read = Arc::default();
            let page = page_of(PageCodec::Brotli, stored.clone(), data.len(), &read);
            assert_eq!(page.prefix(want, "v").unwrap(), &data[..want], "{want}");
            if want == 5_000 {
                assert!(read.load(Ordering::Relaxed) < stored.len() / 4);
                let before = read.load(Ordering::Relaxed);
                assert_eq!(page.prefix(2_500, "v").unwrap(), &data[..2_500]);
                assert_eq!(read.load(Ordering::Relaxed), before);
            }
        }
    }

    #[test]
    fn a_damaged_brotli_page_is_an_error() {
        damage_is_an_error(PageCodec::Brotli, brotli);
    }

    /// LZ4 in Hadoop's frames, as pyarrow writes the `LZ4` codec: one
    /// frame of a page.
    fn lz4_hadoop(data: &[u8]) -> Vec<u8> {
        let block = lz4_flex::block::compress(data);
        let mut stored = (data.len() as u32).to_be_bytes().to_vec();
        stored.extend((block.len() as u32).to_be_bytes());
        stored.extend(block);
        stored
    }

    /// Pages of both LZ4 codecs (the Hadoop-framed one in one frame and in
    /// two): every prefix is the page's, and a short one is read from a
    /// small part of the stored bytes.
    #[test]
    fn lz4_pages_are_read_in_part() {
        let data = page_bytes();
        let half = data.len() / 2;
        let mut two_frames = lz4_hadoop(&data[..half]);
        two_frames.extend(lz4_hadoop(&data[half..]));
        for (codec, stored) in [
            (PageCodec::Lz4Raw, lz4_flex::block::compress(&data)),
            (PageCodec::Lz4Hadoop, lz4_hadoop(&data)),
            (PageCodec::Lz4Hadoop, two_frames),
        ] {
            for want in [
                0,
                10,
                5_000,
                half - 3,
                half + 10,
                data.len() - 1,
                data.len(),
            ] {
                let read = Arc::default();
                let page = page_of(codec, stored.clone(), data.len(), &read);
                assert_eq!(
                    page.prefix(want, "v").unwrap(),
                    &data[..want],
                    "{codec:?} {want}"
                );
                if want == 5_000 {
                    assert!(read.load(Ordering::Relaxed) < stored.len() / 4);
                }
            }
        }
    }

    #[test]
    fn a_damaged_lz4_page_is_an_error() {
        damage_is_an_error(PageCodec::Lz4Raw, lz4_flex::block::compress);
        damage_is_an_error(PageCodec::Lz4Hadoop, lz4_hadoop);
    }

    /// Only pages whose Hadoop frames account for their sizes are read in
    /// part: a raw block under the `LZ4` codec (as some older writers
    /// stored it) is left to the `parquet` crate, which falls back to it.
    #[test]
    fn lz4_pages_that_are_not_hadoop_frames_are_left_to_the_parquet_crate() {
        let data = page_bytes();
        let framed = lz4_hadoop(&data);
        let raw = lz4_flex::block::compress(&data);
        let mut longer = framed.clone();
        longer.extend([0; 8]);
        let mut claims_more = framed.clone();
        claims_more[3] ^= 1;
        let fits = |stored: &[u8], uncompressed: usize| {
            let compressed = stored.len();
            let stored = Bytes::copy_from_slice(stored);
            let walk = PageWalk {
                read: Arc::new(move |at, length| {
                    let at = at as usize;
                    Ok(stored.slice(at..(at + length).min(stored.len())))
                }),
                offset: 0,
                end: compressed as u64,
                codec: Some(PageCodec::Lz4Hadoop),
            };
            walk.hadoop_frames_fit(0, compressed, uncompressed)
        };
        assert!(fits(&framed, data.len()));
        assert!(fits(&[0; 8], 0));
        assert!(!fits(&[0; 8], 1));
        assert!(!fits(&framed, data.len() + 1));
        assert!(!fits(&raw, data.len()));
        // An empty frame at the end still fits; a frame claiming more, or
        // a header cut short, does not.
        assert!(fits(&longer, data.len()));
        assert!(!fits(&claims_more, data.len()));
        assert!(!fits(&framed[..framed.len() - 1], data.len()));
    }
}
