//! Lookups in a column chunk's bloom filter (Parquet's split-block bloom
//! filter), read where the filter is stored: one 32-byte block per value.
//!
//! A filter proves a value absent from its chunk, so that a flow skips
//! the row groups that cannot hold its conversation (DuckDB writes a
//! filter for every dictionary-encoded column). The `parquet` crate's
//! `Sbbf` reads a filter whole and copies its bitset into a vector of its
//! own, 16 KB per chunk on DuckDB's files, for every row group of the
//! file, when a value's lookup reads one block: here the header is read,
//! then the block each value hashes to, from the file (or the page cache,
//! when it is mapped) directly.
//!
//! The filter is third-party data: a header that does not read, a size
//! that is not a whole number of blocks or does not fit the chunk's stated
//! length, or a block that cannot be read makes the filter unusable
//! (`None`), and the caller then reads the row group, which reports any
//! damage of its pages. Nothing is allocated by a size the file claims.

use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::reader::ChunkReader;

use crate::ingest::page_header::read_bloom_filter_header;

/// Bytes read for a filter's header (a few bytes, with no statistics):
/// enough for any header that only holds the fields the format defines.
const HEADER_READ: u64 = 64;

/// The bytes of a block, eight 32-bit words.
const BLOCK: u64 = 32;

/// The format's largest bitset (the `parquet` crate's bound).
const MOST_BYTES: u64 = 128 << 20;

/// The multipliers that pick a block's bit in each of its eight words
/// (Parquet's `BloomFilter.md`).
const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

/// Whether the bloom filter of `chunk` may hold one of `values`: `false`
/// proves none of them is in the chunk. `None` when the chunk has no
/// filter, or it cannot be read (see the module docs).
pub(super) fn may_hold_any<R: ChunkReader>(
    reader: &R,
    chunk: &ColumnChunkMetaData,
    values: &[impl AsRef<[u8]>],
) -> Option<bool> {
    may_hold_any_at(
        reader,
        chunk.bloom_filter_offset(),
        chunk.bloom_filter_length(),
        values,
    )
}

/// [`may_hold_any`] for the filter a chunk's metadata places at `offset`
/// (none without), `length` bytes long if stated.
pub(super) fn may_hold_any_at<R: ChunkReader>(
    reader: &R,
    offset: Option<i64>,
    length: Option<i32>,
    values: &[impl AsRef<[u8]>],
) -> Option<bool> {
    let offset = u64::try_from(offset?).ok()?;
    let stated = match length {
        Some(length) => Some(u64::try_from(length).ok()?),
        None => None,
    };
    let left = reader.len().checked_sub(offset)?;
    let read = stated.unwrap_or(HEADER_READ).min(HEADER_READ).min(left);
    let head = reader.get_bytes(offset, usize::try_from(read).ok()?).ok()?;
    let (num_bytes, header_len) = read_bloom_filter_header(&head).ok()?;
    let num_bytes = u64::try_from(num_bytes?).ok()?;
    let header_len = header_len as u64;
    if num_bytes == 0 || num_bytes % BLOCK != 0 || num_bytes > MOST_BYTES {
        return None;
    }
    if stated.is_some_and(|length| length != header_len + num_bytes) {
        return None;
    }
    let bitset = offset.checked_add(header_len)?;
    if bitset.checked_add(num_bytes)? > reader.len() {
        return None;
    }
    let blocks = num_bytes / BLOCK;
    for value in values {
        let hash = xxhash_rust::xxh64::xxh64(value.as_ref(), 0);
        // The block: the hash's top half scaled to the number of blocks.
        let block = ((hash >> 32) * blocks) >> 32;
        let bytes = reader
            .get_bytes(bitset + block * BLOCK, BLOCK as usize)
            .ok()?;
        if block_holds(&bytes, hash as u32) {
            return Some(true);
        }
    }
    Some(false)
}

/// Whether the 32-byte `block` has the bit `key` picks in each of its
/// eight words set.
fn block_holds(block: &[u8], key: u32) -> bool {
    SALT.iter().zip(block.chunks_exact(4)).all(|(salt, word)| {
        let word = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        word & (1 << (key.wrapping_mul(*salt) >> 27)) != 0
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{RecordBatch, StringArray};
    use bytes::Bytes;
    use parquet::arrow::ArrowWriter;
    use parquet::bloom_filter::Sbbf;
    use parquet::file::metadata::ParquetMetaDataReader;
    use parquet::file::properties::WriterProperties;

    use super::*;

    /// A file of one string column of `values`, with a bloom filter, and
    /// its first chunk.
    fn filtered_file(values: &[String], with_length: bool) -> (Bytes, ColumnChunkMetaData) {
        let array = StringArray::from_iter_values(values);
        let batch = RecordBatch::try_from_iter([("v", Arc::new(array) as _)]).unwrap();
        let props = WriterProperties::builder()
            .set_bloom_filter_enabled(true)
            .set_bloom_filter_max_ndv(values.len() as u64)
            .build();
        let mut file = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut file, batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let bytes = Bytes::from(file);
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .unwrap();
        let mut chunk = metadata.row_group(0).column(0).clone();
        if !with_length {
            chunk = chunk
                .into_builder()
                .set_bloom_filter_length(None)
                .build()
                .unwrap();
        }
        (bytes, chunk)
    }

    /// Every value written may be held, and for any value the answer is
    /// the `parquet` crate's: same hash, same block, same bits (with the
    /// filter's length stated in the footer and without).
    #[test]
    fn lookups_answer_as_the_crates_filter_does() {
        let values: Vec<String> = (0..2_000)
            .map(|i| format!("c{}t{}", i * 7, i % 13))
            .collect();
        for with_length in [true, false] {
            let (bytes, chunk) = filtered_file(&values, with_length);
            let sbbf = Sbbf::read_from_column_chunk(&chunk, &bytes)
                .unwrap()
                .unwrap();
            for v in &values {
                assert_eq!(may_hold_any(&bytes, &chunk, &[v]), Some(true), "{v}");
            }
            let mut absent = 0;
            for i in 0..5_000 {
                let v = format!("other-{i}");
                let held = may_hold_any(&bytes, &chunk, &[&v]).unwrap();
                assert_eq!(held, sbbf.check(v.as_str()), "{v}");
                absent += usize::from(!held);
            }
            assert!(absent > 4_500, "{absent} of 5000 proved absent");
            // Several values: held if any may be.
            assert_eq!(
                may_hold_any(&bytes, &chunk, &["other-x", values[5].as_str()]),
                Some(true)
            );
        }
    }

    /// Damage anywhere in the filter, its header included, never panics:
    /// a filter that does not read is unusable, one that reads answers.
    #[test]
    fn a_damaged_filter_never_panics() {
        let values: Vec<String> = (0..300).map(|i| format!("v{i}")).collect();
        for with_length in [true, false] {
            let (bytes, chunk) = filtered_file(&values, with_length);
            let start = chunk.bloom_filter_offset().unwrap() as usize;
            let mut unusable = 0;
            for at in start..(start + 96).min(bytes.len()) {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut damaged = bytes.to_vec();
                    damaged[at] ^= flip;
                    let damaged = Bytes::from(damaged);
                    if may_hold_any(&damaged, &chunk, &["v7", "absent"]).is_none() {
                        unusable += 1;
                    }
                }
            }
            assert!(unusable > 0);
        }
        // A filter said to lie past the file's end.
        let (bytes, chunk) = filtered_file(&values, true);
        let past = chunk
            .into_builder()
            .set_bloom_filter_offset(Some(bytes.len() as i64 - 8))
            .build()
            .unwrap();
        assert_eq!(may_hold_any(&bytes, &past, &["v7"]), None);
    }
}
