//! Defences around decoders of untrusted input.
//!
//! The Parquet and JSON decoders convostat uses come from other crates and
//! are not hardened against every crafted file. Two defences keep a bad
//! file from taking the host process down with it:
//! - [`guard`] runs a decoder and turns a panic inside it into a data error
//!   naming the input;
//! - [`check_pages`] refuses, before decoding, Parquet pages whose headers
//!   declare far more values than they hold. The `parquet` crate (60.1)
//!   allocates some declared counts up front (dictionary pages, the length
//!   runs of delta-encoded strings), and an absurd one aborts the process:
//!   an allocation failure is not a panic, so no `catch_unwind` can stop
//!   it (found by the `parquet` fuzz target).
//!
//! `check_pages` reads every page header of every column chunk the decoder
//! will read (`page_header`), which costs one small read per page. The
//! selective Parquet reader (`parquet::selected`) does without it: its
//! decoders bound every allocation by the bytes a page holds, not by a
//! count its header declares. Only
//! pages that need their contents checked (delta-encoded strings), or
//! chunks whose headers it cannot walk, are read and decompressed a second
//! time, through the `parquet` crate's own page reader, and their delta
//! runs checked (`delta_header`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use parquet::basic::{Encoding as ParquetEncoding, Type as PhysicalType};
use parquet::column::page::{Page, PageReader};
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::reader::ChunkReader;
use parquet::file::serialized_reader::SerializedPageReader;
use parquet::schema::types::ColumnDescriptor;

use super::delta_header::packed_run;
use super::page_header::{encoding, read_page_header, HeaderError, PageHeader, PageKind};
use crate::error::{Error, Result};

/// Runs `f`, turning a panic in a third-party decoder into a data error.
pub fn guard<T>(context: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::data(
            context,
            "the decoder failed on malformed input",
        ))
    })
}

/// The most values a delta length run may declare. The decoder (parquet
/// 60.1) materialises a page's whole run at once, 4 bytes a value, and a
/// run of equal lengths takes almost no bytes, so neither the page's size
/// nor a footer's row count (a crafted file may declare 2³¹ rows) bounds
/// that memory. Writers cut pages at 20,000 rows by default (parquet-rs,
/// Arrow C++, parquet-mr); 2²⁴ values (64 MiB of lengths) leaves ample room.
const MAX_DELTA_RUN_VALUES: u64 = 1 << 24;

/// Refuses pages of row group `rg_index` that would make the decoder
/// allocate for values they do not hold, in every column chunk whose leaf
/// `read` includes:
/// - a dictionary page declaring more values than its bytes can encode;
/// - a `DELTA_BYTE_ARRAY` or `DELTA_LENGTH_BYTE_ARRAY` page whose length
///   runs declare more values than the page (or, for a flat column, the
///   row group) holds, or whose runs do not fit in the page.
///
/// The page headers decide, not the footer's list of encodings, which may
/// lie. A chunk whose headers cannot be walked is checked through the
/// `parquet` crate's page reader, so that what is checked is exactly what
/// the decoder will see.
pub(crate) fn check_pages<R: ChunkReader + 'static>(
    name: &str,
    reader: R,
    rg: &RowGroupMetaData,
    rg_index: usize,
    read: impl Fn(usize) -> bool,
) -> Result<()> {
    let reader = Arc::new(reader);
    for (leaf, column) in rg.columns().iter().enumerate() {
        if !read(leaf) {
            continue;
        }
        let descr = column.column_descr();
        let refuse = |reason: String| {
            Error::data(
                format!(
                    "{name}: column `{}`, row group {rg_index}",
                    descr.path().string()
                ),
                format!("corrupt page: {reason}"),
            )
        };
        let byte_array = descr.physical_type() == PhysicalType::BYTE_ARRAY;
        // A flat column holds one value per row at most.
        let max_values = |page_values: u64| match descr.max_rep_level() {
            0 => page_values.min(rg.num_rows().max(0) as u64),
            _ => page_values,
        };
        let start = column
            .dictionary_page_offset()
            .unwrap_or(column.data_page_offset());
        let (Ok(start), Ok(len)) = (
            u64::try_from(start),
            u64::try_from(column.compressed_size()),
        ) else {
            continue; // the decoder refuses (and the guard catches) this
        };
        let mut needs_contents = false;
        let walked = walk_page_headers(reader.as_ref(), start, len, |header| {
            match header.kind {
                PageKind::Dictionary => {
                    check_dictionary(descr, header.num_values, header.uncompressed_size)
                        .map_err(&refuse)?
                }
                PageKind::DataV1 | PageKind::DataV2 => {
                    needs_contents |= byte_array
                        && matches!(
                            header.encoding,
                            encoding::DELTA_BYTE_ARRAY | encoding::DELTA_LENGTH_BYTE_ARRAY
                        )
                }
                PageKind::Index => {}
            }
            Ok(())
        })?;
        if walked && !needs_contents {
            continue;
        }
        let mut pages =
            SerializedPageReader::new(reader.clone(), column, rg.num_rows().max(0) as usize, None)
                .map_err(|e| Error::data_from(name, e))?;
        while let Some(page) = pages
            .get_next_page()
            .map_err(|e| Error::data_from(name, e))?
        {
            check_page_contents(&page, descr, max_values).map_err(&refuse)?;
        }
    }
    Ok(())
}

/// Walks the page headers of the column chunk at `start..start + len`,
/// passing each to `visit`. Returns `false` if the headers cannot be walked
/// (unreadable, or sizes that do not add up); the decoder will meet the
/// same trouble, and the caller checks the chunk the slow way.
fn walk_page_headers<R: ChunkReader>(
    reader: &R,
    start: u64,
    len: u64,
    mut visit: impl FnMut(&PageHeader) -> Result<()>,
) -> Result<bool> {
    const FIRST_WINDOW: u64 = 1024;
    let (mut offset, mut remaining) = (start, len);
    while remaining > 0 {
        let mut window = remaining.min(FIRST_WINDOW);
        let (header, header_len) = loop {
            let Ok(bytes) = reader.get_bytes(offset, window as usize) else {
                return Ok(false);
            };
            match read_page_header(&bytes) {
                Ok(read) => break read,
                // Large statistics make long headers: read more.
                Err(HeaderError::Truncated) if window < remaining => {
                    window = remaining.min(window.saturating_mul(8));
                }
                Err(_) => return Ok(false),
            }
        };
        let (Ok(compressed), Ok(_)) = (
            u64::try_from(header.compressed_size),
            u64::try_from(header.uncompressed_size),
        ) else {
            return Ok(false);
        };
        let step = header_len as u64 + compressed;
        if step > remaining {
            return Ok(false);
        }
        visit(&header)?;
        offset += step;
        remaining -= step;
    }
    Ok(true)
}

/// The fewest bits one value of `descr`'s physical type takes in a PLAIN
/// dictionary page. A FIXED_LEN_BYTE_ARRAY type length comes from the
/// footer, up to `i32::MAX`: at most 2^34 bits, so every product of this
/// with a count is computed saturating.
fn min_value_bits(descr: &ColumnDescriptor) -> u64 {
    match descr.physical_type() {
        PhysicalType::BOOLEAN => 1,
        PhysicalType::INT32 | PhysicalType::FLOAT | PhysicalType::BYTE_ARRAY => 32,
        PhysicalType::INT64 | PhysicalType::DOUBLE => 64,
        PhysicalType::INT96 => 96,
        PhysicalType::FIXED_LEN_BYTE_ARRAY => {
            8u64.saturating_mul(descr.type_length().max(0) as u64)
        }
    }
}

/// A dictionary page's values are PLAIN encoded: their count is bounded by
/// the page's bytes. The decoder sizes the dictionary by the declared count.
fn check_dictionary(descr: &ColumnDescriptor, values: i32, bytes: i32) -> Result<(), String> {
    let (values, bytes) = (values.max(0) as u64, bytes.max(0) as u64);
    if values.saturating_mul(min_value_bits(descr)) > bytes.saturating_mul(8) {
        return Err(format!(
            "dictionary page declares {values} values in {bytes} bytes"
        ));
    }
    Ok(())
}

/// Checks a decompressed page: dictionary counts, and the length runs of
/// delta-encoded strings (see `delta_header`).
fn check_page_contents(
    page: &Page,
    descr: &ColumnDescriptor,
    max_values: impl Fn(u64) -> u64,
) -> Result<(), String> {
    let (values, page_values, encoding) = match page {
        Page::DictionaryPage {
            buf, num_values, ..
        } => {
            let values = i32::try_from(*num_values).unwrap_or(i32::MAX);
            let bytes = i32::try_from(buf.len()).unwrap_or(i32::MAX);
            return check_dictionary(descr, values, bytes);
        }
        Page::DataPage {
            buf,
            num_values,
            encoding,
            def_level_encoding,
            rep_level_encoding,
            ..
        } => {
            // V1: the levels come first, inside the compressed bytes.
            let mut pos = 0usize;
            for (max, level_encoding) in [
                (descr.max_rep_level(), rep_level_encoding),
                (descr.max_def_level(), def_level_encoding),
            ] {
                if max <= 0 {
                    continue;
                }
                let level_bytes = match level_encoding {
                    ParquetEncoding::RLE => {
                        let Some(Ok(prefix)) = pos
                            .checked_add(4)
                            .and_then(|end| buf.get(pos..end))
                            .map(<[u8; 4]>::try_from)
                        else {
                            return Ok(()); // the decoder refuses this page
                        };
                        (u32::from_le_bytes(prefix) as usize).saturating_add(4)
                    }
                    #[allow(deprecated)]
                    ParquetEncoding::BIT_PACKED => {
                        let width = 16 - (max as u16).leading_zeros() as usize;
                        (*num_values as usize).saturating_mul(width).div_ceil(8)
                    }
                    _ => return Ok(()),
                };
                pos = pos.saturating_add(level_bytes);
            }
            (buf.get(pos..), *num_values, *encoding)
        }
        Page::DataPageV2 {
            buf,
            num_values,
            encoding,
            def_levels_byte_len,
            rep_levels_byte_len,
            ..
        } => {
            let levels =
                (*def_levels_byte_len as usize).saturating_add(*rep_levels_byte_len as usize);
            (buf.get(levels..), *num_values, *encoding)
        }
    };
    let Some(values) = values else {
        return Ok(()); // levels past the page: the decoder refuses it
    };
    let max = max_values(u64::from(page_values)).min(MAX_DELTA_RUN_VALUES);
    let what = match encoding {
        ParquetEncoding::DELTA_LENGTH_BYTE_ARRAY => "DELTA_LENGTH_BYTE_ARRAY",
        ParquetEncoding::DELTA_BYTE_ARRAY => "DELTA_BYTE_ARRAY",
        _ => return Ok(()),
    };
    let in_page = |e: String| format!("{what} page: {e}");
    let first = packed_run(values, max).map_err(in_page)?;
    if encoding == ParquetEncoding::DELTA_BYTE_ARRAY {
        // Prefix lengths, then suffix lengths.
        let Some(rest) = usize::try_from(first.end)
            .ok()
            .and_then(|end| values.get(end..))
        else {
            return Ok(()); // the decoder refuses (and the guard catches) this
        };
        packed_run(rest, max).map_err(in_page)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DELTA_LENGTH_BYTE_ARRAY page (v2, uncompressed) of `values`
    /// strings whose lengths run is `run`.
    fn delta_length_page(values: u32, run: Vec<u8>) -> Page {
        Page::DataPageV2 {
            buf: run.into(),
            num_values: values,
            encoding: ParquetEncoding::DELTA_LENGTH_BYTE_ARRAY,
            num_nulls: 0,
            num_rows: values,
            def_levels_byte_len: 0,
            rep_levels_byte_len: 0,
            is_compressed: false,
            statistics: None,
        }
    }

    fn byte_array_column() -> ColumnDescriptor {
        use parquet::schema::types::{ColumnPath, Type};
        let leaf = Type::primitive_type_builder("s", PhysicalType::BYTE_ARRAY)
            .build()
            .unwrap();
        ColumnDescriptor::new(Arc::new(leaf), 0, 0, ColumnPath::from("s"))
    }

    /// A run of `n` empty strings: block 128, 4 miniblocks, first value 0,
    /// then blocks of bit width 0 (2 bytes of header, 4 of widths each).
    fn empty_strings_run(n: u64) -> Vec<u8> {
        let mut run = vec![0x80, 0x01, 0x04];
        let mut count = n;
        loop {
            let byte = (count & 0x7f) as u8;
            count >>= 7;
            if count == 0 {
                run.push(byte);
                break;
            }
            run.push(byte | 0x80);
        }
        run.push(0x00);
        for _ in 0..(n.saturating_sub(1)).div_ceil(128) {
            run.extend([0x00, 0, 0, 0, 0]);
        }
        run
    }

    #[test]
    fn delta_runs_are_bounded_by_the_page_and_an_absolute_cap() {
        let column = byte_array_column();
        let all = |v: u64| v;
        let ok = delta_length_page(1000, empty_strings_run(1000));
        assert_eq!(check_page_contents(&ok, &column, all), Ok(()));
        // More values than the page holds.
        let over = delta_length_page(999, empty_strings_run(1000));
        let err = check_page_contents(&over, &column, all).unwrap_err();
        assert!(err.contains("declares 1000 values"), "{err}");
        // A legitimately encoded run of 2^25 empty strings, in 1.3 MB:
        // the decoder would fill 128 MiB for it.
        let huge = 1u32 << 25;
        let bomb = delta_length_page(huge, empty_strings_run(u64::from(huge)));
        let err = check_page_contents(&bomb, &column, all).unwrap_err();
        assert!(err.contains("at most 16777216"), "{err}");
    }

    fn fixed_len_column(type_length: i32) -> ColumnDescriptor {
        use parquet::schema::types::{ColumnPath, Type};
        let leaf = Type::primitive_type_builder("f", PhysicalType::FIXED_LEN_BYTE_ARRAY)
            .with_length(type_length)
            .build()
            .unwrap();
        ColumnDescriptor::new(Arc::new(leaf), 0, 0, ColumnPath::from("f"))
    }

    /// A FIXED_LEN_BYTE_ARRAY of type length `i32::MAX` (2^34 bits a
    /// value) with 2^31 - 1 declared values: the bit count overflows u64.
    /// It must be refused, not wrap around (or panic in debug builds).
    #[test]
    fn a_huge_fixed_type_length_cannot_overflow_the_dictionary_check() {
        let column = fixed_len_column(i32::MAX);
        let err = check_dictionary(&column, i32::MAX, 1024).unwrap_err();
        assert!(err.contains("declares 2147483647 values"), "{err}");
        assert!(check_dictionary(&column, 2, i32::MAX).is_err());
        assert_eq!(check_dictionary(&column, 1, i32::MAX), Ok(()));
        assert_eq!(check_dictionary(&column, 0, 0), Ok(()));
        let page = Page::DictionaryPage {
            buf: vec![0u8; 16].into(),
            num_values: u32::MAX,
            encoding: ParquetEncoding::PLAIN,
            is_sorted: false,
        };
        assert!(check_page_contents(&page, &column, |v| v).is_err());
    }

    /// A v1 page whose repetition-level length prefix is `u32::MAX`: the
    /// position arithmetic saturates and the page is left to the decoder.
    #[test]
    fn huge_level_lengths_do_not_overflow() {
        use parquet::schema::types::{ColumnPath, Type};
        let leaf = Type::primitive_type_builder("s", PhysicalType::BYTE_ARRAY)
            .with_repetition(parquet::basic::Repetition::OPTIONAL)
            .build()
            .unwrap();
        let column = ColumnDescriptor::new(Arc::new(leaf), 1, 1, ColumnPath::from("s"));
        for level_encoding in [ParquetEncoding::RLE, {
            #[allow(deprecated)]
            ParquetEncoding::BIT_PACKED
        }] {
            let page = Page::DataPage {
                buf: vec![0xff; 8].into(),
                num_values: u32::MAX,
                encoding: ParquetEncoding::DELTA_LENGTH_BYTE_ARRAY,
                def_level_encoding: level_encoding,
                rep_level_encoding: level_encoding,
                statistics: None,
            };
            assert_eq!(check_page_contents(&page, &column, |v| v), Ok(()));
        }
    }

    #[test]
    fn a_panicking_decoder_is_a_data_error() {
        let err = guard("input.parquet", || -> Result<()> { panic!("boom") }).unwrap_err();
        assert!(err.to_string().contains("input.parquet"), "{err}");
    }
}
