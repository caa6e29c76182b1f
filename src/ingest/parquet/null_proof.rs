//! Proving that a column chunk holds no null from its definition levels
//! alone.
//!
//! A row group can be read selectively only once every required column is
//! known to hold no null (SPEC 1: a null anywhere in a required column is
//! found, also in rows the query does not select). Most writers record a
//! chunk's null count in its statistics; some leave it out, like Spark and
//! pyarrow for `INT96` timestamps, which get no statistics at all. Then
//! the levels of every page must be read. Decompressing whole pages for
//! them costs as much as reading the column: on a 10M-event Spark file,
//! 74 MB of snappy for the timestamp column, once to validate and once
//! again to read the selected rows.
//!
//! [`holds_no_null`] instead walks the chunk's page headers
//! (`page_header`) and reads only the levels:
//! - a data page v2 stores them uncompressed before its values;
//! - a data page v1 opens with them, compressed with the rest of the page:
//!   uncompressed chunks are read in place, and snappy pages (the default
//!   of Spark and pyarrow) are decompressed only up to the levels' end
//!   ([`super::snappy_prefix`]).
//!
//! A chunk it cannot walk this way (another codec, a header it does not
//! understand, counts that do not add up) goes to the selective reader's
//! page-by-page check, which decompresses every page and reports any
//! damage.

use parquet::basic::Compression;
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::reader::ChunkReader;

use super::levels::PresentBits;
use super::selected;
use super::snappy_prefix::snappy_prefix;
use crate::error::Result;
use crate::ingest::page_header::{read_page_header, HeaderError, PageLevels};

/// Bytes read at once at the start of a page: its header and, in a data
/// page, usually its levels too.
const WINDOW: u64 = 1024;

/// Parquet's `Encoding::RLE`, as page headers number it.
const RLE: i32 = 3;

/// Whether no row of `chunk` (a flat optional column of a row group of
/// `rows` rows) is null, for a chunk whose statistics do not say.
pub(super) fn holds_no_null<R: ChunkReader + 'static>(
    reader: R,
    chunk: &ColumnChunkMetaData,
    rows: usize,
    context: &str,
) -> Result<bool> {
    match from_levels(&reader, chunk, rows) {
        Some(answer) => Ok(answer),
        None => selected::holds_no_null_reading_pages(reader, chunk, rows, context),
    }
}

/// [`holds_no_null`] from the levels alone, or `None` when the chunk
/// cannot be read this way.
fn from_levels<R: ChunkReader>(
    reader: &R,
    chunk: &ColumnChunkMetaData,
    rows: usize,
) -> Option<bool> {
    let codec = chunk.compression();
    if !matches!(codec, Compression::SNAPPY | Compression::UNCOMPRESSED) {
        return None;
    }
    if chunk.column_descr().max_def_level() != 1 || chunk.column_descr().max_rep_level() != 0 {
        return None;
    }
    let (mut offset, length) = chunk.byte_range();
    let end = offset.checked_add(length)?;
    let mut present = PresentBits::default();
    let mut seen = 0usize;
    while offset < end {
        let mut window = (end - offset).min(WINDOW);
        let (header, header_len, bytes) = loop {
            let bytes = reader
                .get_bytes(offset, usize::try_from(window).ok()?)
                .ok()?;
            match read_page_header(&bytes) {
                Ok((header, len)) => break (header, len, bytes),
                Err(HeaderError::Truncated) if window < end - offset => {
                    window = (end - offset).min(window.saturating_mul(8));
                }
                Err(_) => return None,
            }
        };
        let compressed = u64::try_from(header.compressed_size).ok()?;
        let data_at = offset.checked_add(header_len as u64)?;
        let page_end = data_at.checked_add(compressed)?;
        if page_end > end {
            return None;
        }
        // The first `n` stored bytes of the page's data, from the bytes
        // already read when they hold them.
        let stored = |n: u64| -> Option<bytes::Bytes> {
            let n = usize::try_from(n.min(compressed)).ok()?;
            match bytes.get(header_len..header_len.checked_add(n)?) {
                Some(_) => Some(bytes.slice(header_len..header_len + n)),
                None => reader.get_bytes(data_at, n).ok(),
            }
        };
        let count = match header.levels {
            PageLevels::None => {
                offset = page_end;
                continue;
            }
            PageLevels::V1 { def_encoding } => {
                if def_encoding != Some(RLE) {
                    return None;
                }
                let count = usize::try_from(header.num_values).ok()?;
                let levels = v1_levels(codec, compressed, header.uncompressed_size, &stored)?;
                present.decode(&levels, count).ok()?;
                count
            }
            PageLevels::V2 {
                num_rows,
                def_len,
                rep_len,
                ..
            } => {
                if rep_len != 0 || num_rows != header.num_values {
                    return None;
                }
                let count = usize::try_from(num_rows).ok()?;
                let def_len = u64::try_from(def_len).ok()?;
                if def_len > compressed {
                    return None;
                }
                let levels = stored(def_len)?;
                present.decode(&levels, count).ok()?;
                count
            }
        };
        if !present.all_present() && present.count_present() != count {
            return Some(false);
        }
        seen = seen.checked_add(count)?;
        offset = page_end;
    }
    (seen == rows).then_some(true)
}

/// The definition levels that open a data page v1 (after their 4-byte
/// length) of `compressed` stored bytes, read with `stored(n)` (the first
/// `n` stored bytes) and decompressed as far as they reach.
fn v1_levels(
    codec: Compression,
    compressed: u64,
    uncompressed: i32,
    stored: &impl Fn(u64) -> Option<bytes::Bytes>,
) -> Option<Vec<u8>> {
    let uncompressed = usize::try_from(uncompressed).ok()?;
    // The first `n` bytes of the page as written.
    let prefix = |n: usize| -> Option<Vec<u8>> {
        if codec == Compression::UNCOMPRESSED {
            let bytes = stored(n as u64)?;
            return (bytes.len() == n).then(|| bytes.to_vec());
        }
        // A snappy element is at most five bytes more than its output;
        // read more of the page when the guess falls short.
        let mut read = (n as u64).saturating_mul(2).saturating_add(64);
        loop {
            let bytes = stored(read)?;
            if let Some(out) = snappy_prefix(&bytes, n).filter(|out| out.len() == n) {
                return Some(out);
            }
            if read >= compressed {
                return None;
            }
            read = read.saturating_mul(8);
        }
    };
    let length = prefix(4)?;
    let length = u32::from_le_bytes(length.try_into().ok()?) as usize;
    let end = length.checked_add(4).filter(|&e| e <= uncompressed)?;
    let mut levels = prefix(end)?;
    levels.drain(..4);
    Some(levels)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, RecordBatch};
    use bytes::Bytes;
    use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};

    use super::super::tests::{first_chunk, write};
    use super::*;

    /// A file of one nullable `INT64` column without statistics, null at
    /// `nulls`, in pages of 1,000 rows.
    fn file(rows: usize, nulls: &[usize], codec: Compression, version: WriterVersion) -> Bytes {
        let values: Int64Array = (0..rows)
            .map(|i| (!nulls.contains(&i)).then_some(i as i64 * 7919 % 100_003))
            .collect();
        let batch =
            RecordBatch::try_from_iter_with_nullable([("v", Arc::new(values) as _, true)]).unwrap();
        let props = WriterProperties::builder()
            .set_writer_version(version)
            .set_compression(codec)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_dictionary_enabled(false)
            .set_encoding(parquet::basic::Encoding::PLAIN)
            .set_data_page_row_count_limit(1000)
            .set_write_batch_size(1000)
            .build();
        write(&batch, props)
    }

    fn chunk_of(file: &Bytes) -> ColumnChunkMetaData {
        let chunk = first_chunk(file);
        assert!(chunk
            .statistics()
            .is_none_or(|s| s.null_count_opt().is_none()));
        chunk
    }

    #[test]
    fn the_levels_tell_what_decompressing_every_page_tells() {
        let rows = 10_000;
        for codec in [Compression::SNAPPY, Compression::UNCOMPRESSED] {
            for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
                for nulls in [&[][..], &[0], &[9_999], &[4_321, 4_322]] {
                    let file = file(rows, nulls, codec, version);
                    let chunk = chunk_of(&file);
                    let expected = nulls.is_empty();
                    let fast = from_levels(&file, &chunk, rows);
                    assert_eq!(fast, Some(expected), "{codec:?} {version:?} {nulls:?}");
                    let slow =
                        selected::holds_no_null_reading_pages(file.clone(), &chunk, rows, "v")
                            .unwrap();
                    assert_eq!(slow, expected);
                }
            }
        }
    }

    #[test]
    fn other_codecs_and_wrong_row_counts_take_the_slow_path() {
        let file = file(
            5_000,
            &[],
            Compression::UNCOMPRESSED,
            WriterVersion::PARQUET_1_0,
        );
        let chunk = chunk_of(&file);
        // Pages that hold fewer rows than the row group claims.
        assert_eq!(from_levels(&file, &chunk, 5_001), None);
        let zstd = Compression::ZSTD(Default::default());
        let file = file_with(zstd);
        assert_eq!(from_levels(&file, &chunk_of(&file), 5_000), None);
        assert!(holds_no_null(file.clone(), &chunk_of(&file), 5_000, "v").unwrap());
    }

    fn file_with(codec: Compression) -> Bytes {
        file(5_000, &[], codec, WriterVersion::PARQUET_1_0)
    }

    #[test]
    fn damaged_chunks_never_panic_and_never_hide_a_null() {
        let rows = 3_000;
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            let clean = file(rows, &[1_500], Compression::SNAPPY, version);
            let chunk = chunk_of(&clean);
            let (start, length) = chunk.byte_range();
            let mut rng = 0x2545_f491_4f6c_dd1du64;
            for _ in 0..2_000 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let at = (start + rng % length) as usize;
                let mut damaged = clean.to_vec();
                damaged[at] ^= 1 << (rng >> 60 & 7);
                let damaged = Bytes::from(damaged);
                // A flipped bit may hide the null only by making the page
                // unreadable to the slow path as well.
                if from_levels(&damaged, &chunk, rows) == Some(true) {
                    let slow =
                        selected::holds_no_null_reading_pages(damaged.clone(), &chunk, rows, "v");
                    assert!(!matches!(slow, Ok(false)), "flip at {at} hid the null");
                }
            }
        }
    }
}
