//! Pages the selective reader (`super::selected`) decompresses itself, into
//! buffers used again from page to page: zstd pages through one
//! decompression context per thread (also for the pages it reads in part,
//! `super::page_walk`), snappy pages, and brotli and gzip pages (a
//! brotli page by a decoder whose memory is kept per thread,
//! `super::brotli_blocks`).
//!
//! The `parquet` crate's page reader makes a zstd compression context and
//! a decompression context for every column chunk it opens (its codec
//! holds both), and decompresses a snappy page into a fresh buffer it
//! first fills with zeros. The selective reader opens such a chunk's page
//! reader on a copy of the chunk's metadata that says `UNCOMPRESSED`
//! ([`stored_as_is`]), so that the crate hands its pages out as stored and
//! makes no codec, and decompresses them here ([`decompressed_page`]).
//!
//! - zstd: on the Polars-written file of `benches/compare_duckdb.py` (77
//!   row groups), with zstd's contexts also taken from the global
//!   allocator (`Cargo.toml`), medians of 21 alternated runs: `insights`
//!   201 → 188 ms, `conversations` 197 → 181 ms, `usage` 304 → 281 ms,
//!   `flow` 7.2 → 6.7 ms; page faults of `insights` 4,088 → 799.
//! - A page (snappy by the `snap` crate, or zstd of a known size) is
//!   decompressed into a buffer taken from a small pool ([`PooledPage`]),
//!   already written once, so that it is neither zeroed again nor faulted
//!   in; the buffer goes back to the pool when the last reference to the
//!   page goes. A v2 page's levels are copied in front of its values in
//!   the same buffer. (`perf`, insights over DuckDB's 10M file: the
//!   crate's zeroing of snappy pages was 1.7% of the samples.)
//! - brotli and gzip: the crate's codecs decompress a page through a 4 KiB
//!   buffer (brotli) or in growing reads (gzip) into a fresh buffer. Here
//!   a page's bytes go straight into a pooled one. Insights over the
//!   brotli and gzip files of `--more-writers` (10M events), medians of
//!   15 and 7 alternated runs: brotli 340 → 333 ms, gzip 273 → 262 ms.
//!
//! Pages are third-party data: a page that decompresses to another size
//! than its header says, or whose size cannot be known within the chunk's,
//! is a data error, never a panic nor an allocation the file's claims
//! alone decide.

use std::cell::RefCell;
use std::io::Read;
use std::sync::Mutex;

use bytes::Bytes;
use parquet::basic::{Compression, Encoding};
use parquet::column::page::Page;
use parquet::file::metadata::ColumnChunkMetaData;
use zstd::zstd_safe::{DCtx, InBuffer, OutBuffer, ResetDirective};

use super::brotli_blocks;
use super::snappy_words::decompress_words;
use crate::error::{Error, Result};

thread_local! {
    static DECOMPRESSION: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's zstd decompression context, reset.
pub(super) fn with_context<T>(
    context: &str,
    f: impl FnOnce(&mut DCtx<'static>) -> Result<T>,
) -> Result<T> {
    DECOMPRESSION.with(|cell| {
        let mut cell = cell.borrow_mut();
        let dctx = match &mut *cell {
            Some(dctx) => dctx,
            None => cell.insert(
                DCtx::try_create()
                    .ok_or_else(|| Error::data(context, "zstd could not allocate a context"))?,
            ),
        };
        dctx.reset(ResetDirective::SessionOnly)
            .map_err(|_| Error::data(context, "zstd could not reset its context"))?;
        f(dctx)
    })
}

/// How a chunk's pages, handed out as stored, are decompressed
/// ([`decompressed_page`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StoredPages {
    codec: StoredCodec,
    /// The most bytes a page may decompress to when its header's size is
    /// not known: what the footer says the chunk holds.
    most: usize,
    /// Whether the chunk's values are 8-byte integers (timestamps), whose
    /// plain pages are decompressed by `snappy_words` first.
    words: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoredCodec {
    Zstd,
    Snappy,
    Brotli,
    Gzip,
}

/// `chunk`'s metadata as the `parquet` crate's page reader should see it:
/// for a zstd, snappy, brotli or gzip chunk, the same but `UNCOMPRESSED`,
/// so that the reader hands its pages out as stored (for
/// [`decompressed_page`]) and makes no codec, with how to decompress them;
/// `None` for any other codec (LZ4's, which decompress into the buffer
/// they are given, or none).
pub(super) fn stored_as_is(
    chunk: &ColumnChunkMetaData,
) -> Option<(ColumnChunkMetaData, StoredPages)> {
    let codec = match chunk.compression() {
        Compression::ZSTD(_) => StoredCodec::Zstd,
        Compression::SNAPPY => StoredCodec::Snappy,
        Compression::BROTLI(_) => StoredCodec::Brotli,
        Compression::GZIP(_) => StoredCodec::Gzip,
        _ => return None,
    };
    let most = usize::try_from(chunk.uncompressed_size().max(0))
        .unwrap_or(usize::MAX)
        .min(i32::MAX as usize);
    let as_is = chunk
        .clone()
        .into_builder()
        .set_compression(Compression::UNCOMPRESSED)
        .build()
        .ok()?;
    let words = chunk.column_type() == parquet::basic::Type::INT64;
    Some((as_is, StoredPages { codec, most, words }))
}

/// `page`, handed out as stored by a reader opened on [`stored_as_is`]
/// metadata, decompressed. `size` is the page's uncompressed size from its
/// header, when this reader's own header reader read it; without it, the
/// size the zstd frames or the snappy block give is taken, up to the
/// chunk's uncompressed size.
pub(super) fn decompressed_page(
    mut page: Page,
    size: Option<usize>,
    stored: StoredPages,
    context: &str,
) -> Result<Page> {
    let most = stored.most;
    // Plain 8-byte values (a dictionary page holds them plain too).
    let words = stored.words
        && match &page {
            Page::DictionaryPage { .. } => true,
            Page::DataPage { encoding, .. } | Page::DataPageV2 { encoding, .. } => {
                *encoding == Encoding::PLAIN
            }
        };
    // `head` (a v2 page's levels, stored as they are) then `values`
    // decompressed, in one buffer.
    let decompress = |head: &[u8], values: &[u8], size: Option<usize>| {
        // A page of no values may store nothing at all (as the crate
        // allows).
        if values.is_empty() && size.unwrap_or(0) == 0 {
            return Ok(Bytes::copy_from_slice(head));
        }
        let page = CompressedPage {
            head,
            stored: values,
            size,
            most,
            context,
        };
        match stored.codec {
            StoredCodec::Zstd => zstd_frames(page),
            StoredCodec::Snappy => snappy_block(page, words),
            StoredCodec::Brotli | StoredCodec::Gzip => streamed_page(stored.codec, page),
        }
    };
    match &mut page {
        Page::DataPage { buf, .. } | Page::DictionaryPage { buf, .. } => {
            *buf = decompress(&[], buf, size)?;
        }
        Page::DataPageV2 {
            buf,
            def_levels_byte_len,
            rep_levels_byte_len,
            is_compressed: true,
            ..
        } => {
            // Levels come first, never compressed.
            let overrun = || Error::data(context, "damaged page: levels overrun the page");
            let levels =
                (*def_levels_byte_len as usize).saturating_add(*rep_levels_byte_len as usize);
            let (Some(head), Some(values)) = (buf.get(..levels), buf.get(levels..)) else {
                return Err(overrun());
            };
            let size = match size {
                Some(size) => Some(size.checked_sub(levels).ok_or_else(overrun)?),
                None => None,
            };
            *buf = decompress(head, values, size)?;
        }
        Page::DataPageV2 { .. } => {}
    }
    Ok(page)
}

/// Decompressed pages' buffers kept for the next pages (and long
/// prefixes of snappy pages, [`pooled_buffer`]): at most
/// [`POOL_BUFFERS`], each of at most [`POOL_BUFFER_MOST`] bytes, so that
/// a host application that ran a scan keeps at most 32 MiB of them. A
/// scan holds a few pages at a time per thread (one per column it
/// gathers).
static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// How many buffers [`POOL`] keeps.
const POOL_BUFFERS: usize = 16;

/// The largest buffer [`POOL`] keeps: writers' pages are about 1 MiB
/// (DuckDB's hold a row group's column chunk: 1.8 MB of event ids).
const POOL_BUFFER_MOST: usize = 2 << 20;

/// A decompressed page in a pooled buffer: its first `len` bytes, the
/// levels of a v2 page (`head` bytes) and then its values. Every byte of
/// `buffer` has been written (its length, not only its capacity), so it
/// is decompressed into again without being zeroed.
struct PooledPage {
    buffer: Vec<u8>,
    head: usize,
    len: usize,
}

impl PooledPage {
    /// Where the values are to be decompressed.
    fn values(&mut self) -> &mut [u8] {
        &mut self.buffer[self.head..self.len]
    }
}

impl AsRef<[u8]> for PooledPage {
    fn as_ref(&self) -> &[u8] {
        &self.buffer[..self.len]
    }
}

impl Drop for PooledPage {
    fn drop(&mut self) {
        if self.buffer.len() > POOL_BUFFER_MOST {
            return;
        }
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL_BUFFERS {
            pool.push(std::mem::take(&mut self.buffer));
        }
    }
}

/// An empty buffer from [`POOL`] whose first `len` bytes or more were
/// written (the smallest such), or a new one: for a page decoded only as
/// far as a flow's rows (`page_walk`), which then takes memory a page
/// decoded whole before it gave back (a flow's conversation pages, once
/// matched) rather than fresh memory, faulted in page by page.
pub(super) fn pooled_buffer(len: usize) -> Vec<u8> {
    if len > POOL_BUFFER_MOST {
        return Vec::new();
    }
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let fits = smallest_holding(&pool, len);
    let mut buffer = fits.map(|i| pool.swap_remove(i)).unwrap_or_default();
    buffer.clear();
    buffer
}

/// Which of the pooled `buffers` is the smallest of `len` bytes or more.
fn smallest_holding(buffers: &[Vec<u8>], len: usize) -> Option<usize> {
    (0..buffers.len())
        .filter(|&i| buffers[i].len() >= len)
        .min_by_key(|&i| buffers[i].len())
}

/// `buffer`'s bytes (every one of them written) as [`Bytes`] that give it
/// back to [`POOL`] once dropped.
pub(super) fn pooled_bytes(buffer: Vec<u8>) -> Bytes {
    let len = buffer.len();
    Bytes::from_owner(PooledPage {
        buffer,
        head: 0,
        len,
    })
}

/// The data error of a damaged page.
fn damaged(context: &str, what: &str) -> Error {
    Error::data(context, format!("damaged page: {what}"))
}

/// A page to decompress, as [`decompressed_page`] hands it to a codec's
/// function: `head` (a v2 page's levels, stored as they are) comes first
/// in the output, then `stored` decompressed, `size` bytes when the
/// page's header says so, at most `most` (its column chunk's
/// uncompressed size); errors name `context`.
#[derive(Clone, Copy)]
struct CompressedPage<'a> {
    head: &'a [u8],
    stored: &'a [u8],
    size: Option<usize>,
    most: usize,
    context: &'a str,
}

impl CompressedPage<'_> {
    /// The data error of this page, damaged as `what` says.
    fn damaged(&self, what: &str) -> Error {
        damaged(self.context, what)
    }

    /// The data error of a page that decompresses to another size than
    /// its header says.
    fn other_size(&self) -> Error {
        self.damaged("it decompresses to another size than its header says")
    }
}

/// `head`, then the snappy block `stored` decompressed: exactly `size`
/// bytes when known, as many as the block's header says. A page of more
/// than `most` bytes is decompressed, but not into a pooled buffer.
fn snappy_block(input: CompressedPage<'_>, words: bool) -> Result<Bytes> {
    let damaged = |what: &str| input.damaged(what);
    let len = snap::raw::decompress_len(input.stored).map_err(|_| damaged("not a snappy block"))?;
    if input.size.is_some_and(|size| size != len) {
        return Err(input.other_size());
    }
    let mut decoder = snap::raw::Decoder::new();
    let Some(mut page) = pooled_page(input.head, len, input.most) else {
        // As the `parquet` crate decompresses a page.
        let values = decoder
            .decompress_vec(input.stored)
            .map_err(|e| damaged(&e.to_string()))?;
        return Ok(joined(input.head, values));
    };
    // Close 8-byte values by the fast path; anything else (or damage,
    // which `snap` then reports) by `snap`.
    if words && decompress_words(input.stored, page.values()).is_some() {
        return Ok(Bytes::from_owner(page));
    }
    let made = decoder
        .decompress(input.stored, page.values())
        .map_err(|e| damaged(&e.to_string()));
    if made? != len {
        return Err(damaged("its snappy block ends short"));
    }
    Ok(Bytes::from_owner(page))
}

/// `head`, then the brotli stream or gzip members in `stored`
/// decompressed: into a pooled buffer when the page's size is known (a
/// brotli stream by a decoder whose memory is kept per thread,
/// `super::brotli_blocks`), else through the codec's reader, as the
/// `parquet` crate's codec decompresses them, up to `most` bytes.
fn streamed_page(codec: StoredCodec, input: CompressedPage<'_>) -> Result<Bytes> {
    let damaged = |what: &str| input.damaged(what);
    let reader = |stored| -> Box<dyn Read + '_> {
        match codec {
            StoredCodec::Brotli => Box::new(brotli::Decompressor::new(stored, 4096)),
            _ => Box::new(flate2::bufread::MultiGzDecoder::new(stored)),
        }
    };
    let most = input.most;
    let Some(mut page) = input
        .size
        .and_then(|size| pooled_page(input.head, size, most))
    else {
        let guess = input.size.unwrap_or(input.stored.len().saturating_mul(4));
        let mut values = Vec::with_capacity(guess.min(most));
        reader(input.stored)
            .take(most as u64 + 1)
            .read_to_end(&mut values)
            .map_err(|e| damaged(&e.to_string()))?;
        if values.len() > most {
            return Err(damaged("it decompresses to more than the column chunk"));
        }
        if input.size.is_some_and(|size| size != values.len()) {
            return Err(input.other_size());
        }
        return Ok(joined(input.head, values));
    };
    if codec == StoredCodec::Brotli {
        brotli_blocks::decompress_into(input.stored, page.values()).map_err(damaged)?;
        return Ok(Bytes::from_owner(page));
    }
    // gzip: the members' bytes straight into the page, and not one more.
    let mut members = reader(input.stored);
    match members.read_exact(page.values()) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(input.other_size()),
        Err(e) => return Err(damaged(&e.to_string())),
        Ok(()) => {}
    }
    let longer = members
        .read(&mut [0u8; 1])
        .map_err(|e| damaged(&e.to_string()))?;
    if longer != 0 {
        return Err(input.other_size());
    }
    Ok(Bytes::from_owner(page))
}

/// `head` and then `values`, as one page.
fn joined(head: &[u8], values: Vec<u8>) -> Bytes {
    if head.is_empty() {
        Bytes::from(values)
    } else {
        Bytes::from([head, &values[..]].concat())
    }
}

/// A page of `head` and then `len` bytes to be written
/// ([`PooledPage::values`]), in a buffer from [`POOL`] (or a new one);
/// `None` for a page the pool would not keep, or one larger than its
/// column chunk (`most`) says it can be, which is then decompressed as
/// before the pool, without writing a buffer of the size it claims first.
fn pooled_page(head: &[u8], len: usize, most: usize) -> Option<PooledPage> {
    let whole = head.len().checked_add(len)?;
    if whole > POOL_BUFFER_MOST || len > most {
        return None;
    }
    // The smallest buffer that holds the page, else the largest (grown):
    // a small page (a dictionary) does not hold a large buffer while it
    // lives.
    let taken = {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        let fits = smallest_holding(&pool, whole);
        let pick = fits.or_else(|| (0..pool.len()).max_by_key(|&i| pool[i].len()));
        pick.map(|i| pool.swap_remove(i))
    };
    let mut buffer = taken.unwrap_or_default();
    if buffer.len() < whole {
        buffer.resize(whole, 0);
    }
    buffer[..head.len()].copy_from_slice(head);
    Some(PooledPage {
        buffer,
        head: head.len(),
        len: whole,
    })
}

/// `head`, then the zstd frames in `stored` decompressed: exactly `size`
/// bytes when known, else as many as the frames say (at most `most`), else
/// as many as they give, up to `most`.
fn zstd_frames(input: CompressedPage<'_>) -> Result<Bytes> {
    let damaged = |what: &str| input.damaged(what);
    let (head, stored, most) = (input.head, input.stored, input.most);
    let size = match input.size {
        Some(size) => Some(size),
        None => match zstd::zstd_safe::find_decompressed_size(stored) {
            Ok(Some(n)) => Some(
                usize::try_from(n)
                    .ok()
                    .filter(|&n| n <= most)
                    .ok_or_else(|| damaged("its frames claim more than the column chunk"))?,
            ),
            Ok(None) => None,
            Err(_) => return Err(damaged("not zstd frames")),
        },
    };
    with_context(input.context, |dctx| {
        let zstd_error = |code| damaged(zstd::zstd_safe::get_error_name(code));
        let Some(size) = size else {
            return Ok(joined(head, stream(dctx, stored, most, input.context)?));
        };
        let Some(mut page) = pooled_page(head, size, most) else {
            let mut values: Vec<u8> = Vec::with_capacity(size);
            dctx.decompress(&mut values, stored).map_err(zstd_error)?;
            if values.len() != size {
                return Err(input.other_size());
            }
            return Ok(joined(head, values));
        };
        if dctx.decompress(page.values(), stored).map_err(zstd_error)? != size {
            return Err(input.other_size());
        }
        Ok(Bytes::from_owner(page))
    })
}

/// zstd frames of unknown size decompressed, up to `most` bytes.
fn stream(dctx: &mut DCtx<'static>, stored: &[u8], most: usize, context: &str) -> Result<Vec<u8>> {
    let damaged = |what: &str| damaged(context, what);
    let mut out: Vec<u8> = Vec::with_capacity(stored.len().saturating_mul(4).min(most));
    let mut input = InBuffer::around(stored);
    loop {
        if out.len() == out.capacity() {
            if out.len() >= most {
                return Err(damaged("it decompresses to more than the column chunk"));
            }
            out.reserve_exact(out.len().max(4096).min(most - out.len()));
        }
        let (filled, taken) = (out.len(), input.pos());
        let mut output = OutBuffer::around_pos(&mut out, filled);
        let hint = dctx
            .decompress_stream(&mut output, &mut input)
            .map_err(|code| damaged(zstd::zstd_safe::get_error_name(code)))?;
        let progressed = (out.len(), input.pos()) != (filled, taken);
        if out.len() > most {
            return Err(damaged("it decompresses to more than the column chunk"));
        }
        if hint == 0 && input.pos() == stored.len() {
            return Ok(out);
        }
        if !progressed && out.len() < out.capacity() {
            return Err(damaged("its zstd frames end short"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_page(buf: Vec<u8>) -> Page {
        Page::DataPage {
            buf: Bytes::from(buf),
            num_values: 1,
            encoding: parquet::basic::Encoding::PLAIN,
            def_level_encoding: parquet::basic::Encoding::RLE,
            rep_level_encoding: parquet::basic::Encoding::RLE,
            statistics: None,
        }
    }

    fn zstd(most: usize) -> StoredPages {
        StoredPages {
            codec: StoredCodec::Zstd,
            most,
            words: false,
        }
    }

    fn snappy_pages(most: usize) -> StoredPages {
        StoredPages {
            codec: StoredCodec::Snappy,
            most,
            words: false,
        }
    }

    /// The error of decompressing a data page of `stored` bytes, which
    /// must fail.
    fn error_of(stored: &[u8], size: Option<usize>, pages: StoredPages) -> String {
        match decompressed_page(data_page(stored.to_vec()), size, pages, "f.parquet") {
            Ok(_) => panic!("{} bytes, size {size:?}, {pages:?}: no error", stored.len()),
            Err(e) => e.to_string(),
        }
    }

    fn buf(page: &Page) -> &[u8] {
        match page {
            Page::DataPage { buf, .. }
            | Page::DataPageV2 { buf, .. }
            | Page::DictionaryPage { buf, .. } => buf,
        }
    }

    /// Bytes like a page's: timestamps and ids.
    fn page_bytes() -> Vec<u8> {
        (0..20_000u64)
            .flat_map(|i| {
                let mut v = (1_700_000_000_000_000 + i * 977).to_le_bytes().to_vec();
                v.extend(format!("id-{}", i % 313).into_bytes());
                v
            })
            .collect()
    }

    /// A frame without its content size, as a streaming writer makes it.
    fn streamed(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = zstd::stream::Encoder::new(&mut out, 3).unwrap();
        encoder.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut encoder, data).unwrap();
        encoder.finish().unwrap();
        out
    }

    #[test]
    fn pages_decompress_with_their_header_size_or_their_frames() {
        let data = page_bytes();
        let framed = zstd::bulk::compress(&data, 3).unwrap();
        let streamed = streamed(&data);
        assert!(zstd::zstd_safe::find_decompressed_size(&streamed)
            .unwrap()
            .is_none());
        for stored in [&framed, &streamed] {
            for size in [Some(data.len()), None] {
                let page =
                    decompressed_page(data_page(stored.clone()), size, zstd(1 << 24), "p").unwrap();
                assert_eq!(buf(&page), &data[..]);
            }
        }
        // Two frames one after the other are one page.
        let mut two = framed.clone();
        two.extend_from_slice(&streamed);
        let page = decompressed_page(data_page(two), None, zstd(1 << 24), "p").unwrap();
        assert_eq!(buf(&page), [&data[..], &data[..]].concat());
    }

    fn streamed_codec(codec: StoredCodec, most: usize) -> StoredPages {
        StoredPages {
            codec,
            most,
            words: false,
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, data).unwrap();
        encoder.finish().unwrap()
    }

    fn brotli(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            std::io::Write::write_all(&mut writer, data).unwrap();
        }
        out
    }

    #[test]
    fn brotli_and_gzip_pages_decompress_with_or_without_their_header_size() {
        let data = page_bytes();
        let big = POOL_BUFFER_MOST + 100;
        let large: Vec<u8> = data.iter().copied().cycle().take(big).collect();
        let cases = [
            (StoredCodec::Brotli, brotli(&data), &data),
            (StoredCodec::Gzip, gzip(&data), &data),
            // Larger than the pool keeps: decompressed by the reader.
            (StoredCodec::Brotli, brotli(&large), &large),
            (StoredCodec::Gzip, gzip(&large), &large),
        ];
        for (codec, stored, data) in &cases {
            for size in [Some(data.len()), None] {
                let pages = streamed_codec(*codec, 1 << 24);
                let page = decompressed_page(data_page(stored.clone()), size, pages, "p").unwrap();
                assert!(buf(&page) == &data[..], "{codec:?} {size:?}");
            }
        }
        // Two gzip members one after the other are one page, as the
        // `parquet` crate reads them.
        let mut two = gzip(&data);
        two.extend(gzip(b"and more"));
        let both = [&data[..], b"and more"].concat();
        for size in [Some(both.len()), None] {
            let pages = streamed_codec(StoredCodec::Gzip, 1 << 24);
            let page = decompressed_page(data_page(two.clone()), size, pages, "p").unwrap();
            assert!(buf(&page) == &both[..]);
        }
    }

    #[test]
    fn brotli_and_gzip_pages_of_another_size_or_damaged_are_data_errors() {
        let data = page_bytes();
        for (codec, stored) in [
            (StoredCodec::Brotli, brotli(&data)),
            (StoredCodec::Gzip, gzip(&data)),
        ] {
            let error =
                |stored: &[u8], size, most| error_of(stored, size, streamed_codec(codec, most));
            let n = data.len();
            for size in [Some(n - 1), Some(n + 1)] {
                let e = error(&stored, size, 1 << 24);
                assert!(
                    e.contains("f.parquet") && e.contains("damaged page"),
                    "{codec:?}: {e}"
                );
            }
            // More than the chunk holds, its size not known.
            let e = error(&stored, None, n - 1);
            assert!(e.contains("more than the column chunk"), "{codec:?}: {e}");
            // Cut short, or damaged: an error, never a panic.
            for size in [Some(n), None] {
                let e = error(&stored[..stored.len() / 2], size, 1 << 24);
                assert!(e.contains("damaged page"), "{codec:?} {size:?}: {e}");
            }
            for at in (0..stored.len()).step_by(97) {
                let mut damaged = stored.clone();
                damaged[at] ^= 0x5A;
                let pages = streamed_codec(codec, 1 << 24);
                if let Ok(page) = decompressed_page(data_page(damaged), Some(n), pages, "p") {
                    assert_eq!(buf(&page).len(), n);
                }
            }
        }
    }

    #[test]
    fn v2_levels_stay_as_stored_and_dictionaries_decompress() {
        let data = page_bytes();
        let mut stored = vec![9u8, 8, 7];
        stored.extend(zstd::bulk::compress(&data, 1).unwrap());
        let page = Page::DataPageV2 {
            buf: Bytes::from(stored),
            num_values: 1,
            encoding: parquet::basic::Encoding::PLAIN,
            num_nulls: 0,
            num_rows: 1,
            def_levels_byte_len: 2,
            rep_levels_byte_len: 1,
            is_compressed: true,
            statistics: None,
        };
        let page = decompressed_page(page, Some(data.len() + 3), zstd(1 << 24), "p").unwrap();
        assert_eq!(buf(&page), [&[9u8, 8, 7][..], &data[..]].concat());
        let dictionary = Page::DictionaryPage {
            buf: Bytes::from(zstd::bulk::compress(&data, 1).unwrap()),
            num_values: 1,
            encoding: parquet::basic::Encoding::PLAIN,
            is_sorted: false,
        };
        let page = decompressed_page(dictionary, None, zstd(1 << 24), "p").unwrap();
        assert_eq!(buf(&page), &data[..]);
    }

    #[test]
    fn wrong_sizes_and_damage_are_data_errors() {
        let data = page_bytes();
        let framed = zstd::bulk::compress(&data, 3).unwrap();
        let streamed = streamed(&data);
        let error = |stored: &[u8], size, most| error_of(stored, size, zstd(most));
        // The header says otherwise.
        assert!(error(&framed, Some(data.len() - 1), 1 << 24).contains("f.parquet"));
        assert!(error(&framed, Some(data.len() + 1), 1 << 24).contains("damaged page"));
        // The frames claim, or give, more than the chunk holds.
        assert!(error(&framed, None, data.len() - 1).contains("damaged page"));
        assert!(error(&streamed, None, data.len() - 1).contains("damaged page"));
        // Not zstd, or cut short.
        assert!(error(&data[..100], None, 1 << 24).contains("damaged page"));
        assert!(error(&streamed[..streamed.len() / 2], None, 1 << 24).contains("damaged page"));
        assert!(
            error(&framed[..framed.len() / 2], Some(data.len()), 1 << 24).contains("damaged page")
        );
        // No panic whatever bytes are flipped.
        for i in 0..framed.len().min(400) {
            for stored in [&framed, &streamed] {
                let mut bad = stored.clone();
                if i < bad.len() {
                    bad[i] ^= 0x5a;
                }
                for size in [Some(data.len()), None] {
                    if let Ok(page) =
                        decompressed_page(data_page(bad.clone()), size, zstd(1 << 24), "p")
                    {
                        assert!(buf(&page).len() <= 1 << 24);
                    }
                }
            }
        }
        // An empty page of no values.
        let page = decompressed_page(data_page(Vec::new()), Some(0), zstd(1 << 24), "p").unwrap();
        assert!(buf(&page).is_empty());
    }

    /// A chunk of 8-byte values: its plain pages of close values take the
    /// fast path (`snappy_words`), any other page `snap`, with the same
    /// bytes either way, and damage is a data error.
    #[test]
    fn pages_of_8_byte_values_decompress_as_other_pages_do() {
        let compress = |d: &[u8]| snap::raw::Encoder::new().compress_vec(d).unwrap();
        let words = StoredPages {
            words: true,
            ..snappy_pages(1 << 24)
        };
        let timestamps: Vec<u8> = (0..50_000u64)
            .flat_map(|i| (1_700_000_000_000_000 + i * 40_000 + i * i % 7_919).to_le_bytes())
            .collect();
        for data in [timestamps, page_bytes()] {
            let stored = compress(&data);
            for pages in [words, snappy_pages(1 << 24)] {
                for size in [None, Some(data.len())] {
                    let page =
                        decompressed_page(data_page(stored.clone()), size, pages, "p").unwrap();
                    assert_eq!(buf(&page), &data[..], "{pages:?}");
                }
                let error = |stored: &[u8], size| error_of(stored, size, pages);
                assert!(error(&stored, Some(data.len() - 1)).contains("damaged page"));
                assert!(error(&stored[..stored.len() / 2], None).contains("damaged page"));
                for i in (0..stored.len()).step_by(97).take(300) {
                    let mut bad = stored.clone();
                    bad[i] ^= 0x5a;
                    if let Ok(page) = decompressed_page(data_page(bad.clone()), None, pages, "f") {
                        // What is read must be what `snap` reads.
                        let by_snap = snap::raw::Decoder::new().decompress_vec(&bad).unwrap();
                        assert_eq!(buf(&page), &by_snap[..]);
                    }
                }
            }
        }
    }

    /// Snappy pages decompress into pooled buffers: a page made after a
    /// larger one was dropped holds its own bytes only, pages held at once
    /// do not share a buffer, and damage is a data error, not a panic.
    #[test]
    fn snappy_pages_decompress_into_buffers_used_again() {
        let data = page_bytes();
        let compress = |d: &[u8]| snap::raw::Encoder::new().compress_vec(d).unwrap();
        let stored = compress(&data);
        let short = compress(&data[..1000]);
        for round in 0..3 {
            let page =
                decompressed_page(data_page(stored.clone()), None, snappy_pages(1 << 24), "p")
                    .unwrap();
            assert_eq!(buf(&page), &data[..], "round {round}");
            let size = Some(data.len());
            let other =
                decompressed_page(data_page(stored.clone()), size, snappy_pages(1 << 24), "p")
                    .unwrap();
            drop(page);
            let small =
                decompressed_page(data_page(short.clone()), None, snappy_pages(1 << 24), "p")
                    .unwrap();
            assert_eq!(buf(&small), &data[..1000]);
            assert_eq!(buf(&other), &data[..]);
        }
        let error = |stored: &[u8], size, most| error_of(stored, size, snappy_pages(most));
        assert!(error(&stored, Some(data.len() - 1), 1 << 24).contains("damaged page"));
        // A page larger than the chunk claims to be, or than the pool
        // keeps, is decompressed without the pool, the same.
        for most in [data.len() - 1, 0] {
            let page = decompressed_page(data_page(stored.clone()), None, snappy_pages(most), "p")
                .unwrap();
            assert_eq!(buf(&page), &data[..]);
        }
        let large: Vec<u8> = (0..3 * POOL_BUFFER_MOST / 200)
            .flat_map(|_| data[..200].to_vec())
            .collect();
        let page = decompressed_page(
            data_page(compress(&large)),
            None,
            snappy_pages(1 << 30),
            "p",
        )
        .unwrap();
        assert_eq!(buf(&page), &large[..]);
        assert!(error(&stored[..stored.len() / 2], None, 1 << 24).contains("damaged page"));
        assert!(error(&[0xff; 8], None, 1 << 24).contains("damaged page"));
        for i in 0..stored.len().min(300) {
            let mut bad = stored.clone();
            bad[i] ^= 0x5a;
            let _ = decompressed_page(data_page(bad), None, snappy_pages(1 << 24), "f");
        }
        // A v2 page's levels stay in front of its values, in a buffer a
        // longer page left.
        let mut v2 = vec![4u8, 5, 6];
        v2.extend(compress(&data[..500]));
        let page = Page::DataPageV2 {
            buf: Bytes::from(v2),
            num_values: 1,
            encoding: parquet::basic::Encoding::PLAIN,
            num_nulls: 0,
            num_rows: 1,
            def_levels_byte_len: 3,
            rep_levels_byte_len: 0,
            is_compressed: true,
            statistics: None,
        };
        let page = decompressed_page(page, Some(503), snappy_pages(1 << 24), "p").unwrap();
        assert_eq!(buf(&page), [&[4u8, 5, 6][..], &data[..500]].concat());
        // An empty page of no values stores nothing.
        let empty = decompressed_page(data_page(Vec::new()), Some(0), snappy_pages(0), "f");
        assert!(buf(&empty.unwrap()).is_empty());
    }
}
