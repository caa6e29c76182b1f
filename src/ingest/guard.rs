//! Defences around decoders of untrusted input.
//!
//! The Parquet and JSON decoders convostat uses come from other crates and
//! are not hardened against every crafted file. Two defences keep a bad
//! file from taking the host process down with it:
//! - [`guard`] runs a decoder and turns a panic inside it into a data error
//!   naming the input;
//! - `check_delta_pages` refuses, before decoding, Parquet
//!   `DELTA_BYTE_ARRAY` pages that declare more values than they hold:
//!   parquet 60.1 allocates the declared count up front, and an absurd one
//!   aborts the process, which no `catch_unwind` can stop (found by the
//!   `parquet` fuzz target).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use parquet::arrow::ProjectionMask;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::reader::ChunkReader;

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

/// Reads an unsigned LEB128 integer at `*pos`.
fn uleb128(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The value count a `DELTA_BYTE_ARRAY` page declares: the total count in
/// the header of its prefix lengths (`DELTA_BINARY_PACKED`), which the
/// `parquet` crate (60.1) allocates for before checking it against the page.
/// `None` when the header cannot be read (the decoder reports that).
fn delta_declared_values(
    page: &parquet::column::page::Page,
    max_def: i16,
    max_rep: i16,
) -> Option<(u64, u64)> {
    use parquet::basic::Encoding;
    use parquet::column::page::Page;
    let (values, num_values) = match page {
        Page::DataPage {
            buf,
            num_values,
            encoding: Encoding::DELTA_BYTE_ARRAY,
            def_level_encoding,
            rep_level_encoding,
            ..
        } => {
            // V1: RLE levels, each behind a 4-byte little-endian length.
            let mut pos = 0usize;
            for (max, level_encoding) in
                [(max_rep, rep_level_encoding), (max_def, def_level_encoding)]
            {
                if max > 0 {
                    if *level_encoding != Encoding::RLE {
                        return None;
                    }
                    let len = u32::from_le_bytes(buf.get(pos..pos + 4)?.try_into().ok()?);
                    pos = pos.checked_add(4 + len as usize)?;
                }
            }
            (buf.get(pos..)?, *num_values)
        }
        Page::DataPageV2 {
            buf,
            num_values,
            encoding: Encoding::DELTA_BYTE_ARRAY,
            def_levels_byte_len,
            rep_levels_byte_len,
            ..
        } => {
            let start =
                (*def_levels_byte_len as usize).checked_add(*rep_levels_byte_len as usize)?;
            (buf.get(start..)?, *num_values)
        }
        _ => return None,
    };
    let mut pos = 0;
    let _block_size = uleb128(values, &mut pos)?;
    let _miniblocks = uleb128(values, &mut pos)?;
    let total = uleb128(values, &mut pos)?;
    Some((total, u64::from(num_values)))
}

/// Refuses `DELTA_BYTE_ARRAY` pages that declare more values than they
/// hold, before the decoder sees them: parquet 60.1 allocates the declared
/// count up front, and an absurd one aborts the process (an allocation
/// failure is not a panic that [`guard`] could catch). Only column chunks
/// whose metadata lists that encoding are read twice.
pub(crate) fn check_delta_pages<R: ChunkReader + 'static>(
    name: &str,
    reader: R,
    rg: &RowGroupMetaData,
    rg_index: usize,
    projection: &ProjectionMask,
) -> Result<()> {
    use parquet::column::page::PageReader;
    let reader = Arc::new(reader);
    for (leaf, column) in rg.columns().iter().enumerate() {
        let delta = column
            .encodings()
            .any(|e| e == parquet::basic::Encoding::DELTA_BYTE_ARRAY);
        if !delta || !projection.leaf_included(leaf) {
            continue;
        }
        let descr = column.column_descr();
        let mut pages = parquet::file::serialized_reader::SerializedPageReader::new(
            reader.clone(),
            column,
            rg.num_rows().max(0) as usize,
            None,
        )
        .map_err(|e| Error::data_from(name, e))?;
        while let Some(page) = pages
            .get_next_page()
            .map_err(|e| Error::data_from(name, e))?
        {
            if let Some((declared, held)) =
                delta_declared_values(&page, descr.max_def_level(), descr.max_rep_level())
            {
                if declared > held {
                    return Err(Error::data(
                        format!("{name}: column `{}`, row group {rg_index}", descr.path()),
                        format!(
                            "corrupt DELTA_BYTE_ARRAY page: declares {declared} values, holds {held}"
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_reads_and_refuses_overlong_input() {
        let mut pos = 0;
        assert_eq!(uleb128(&[0xe5, 0x8e, 0x26, 0x01], &mut pos), Some(624_485));
        assert_eq!(pos, 3);
        assert_eq!(uleb128(&[0x80; 11], &mut 0), None);
        assert_eq!(uleb128(&[], &mut 0), None);
    }

    #[test]
    fn a_panicking_decoder_is_a_data_error() {
        let err = guard("input.parquet", || -> Result<()> { panic!("boom") }).unwrap_err();
        assert!(err.to_string().contains("input.parquet"), "{err}");
    }
}
