//! The row groups of a Parquet footer, found by walking its thrift bytes
//! without decoding them.
//!
//! A footer holds a `ColumnChunk` for every column of every row group. A
//! file written by DuckDB or Polars has row groups of 100–120K rows, so a
//! 10M-event file's footer describes 1,400 column chunks, and the
//! `parquet` crate's decoder makes an object of each (some 600 KB of
//! memory, every page of it touched for the first time): half a
//! millisecond of a `flow` process, which then reads one row group.
//!
//! [`skim`] walks the footer's thrift compact encoding once, allocating
//! nothing per column chunk, and hands the caller each row group's row
//! count and, for a few columns, the statistics and where the bloom
//! filter is ([`ChunkStatistics`]); the caller says whether to keep the
//! row group. The footer module then
//! decodes a copy of the footer holding only the row groups kept (the
//! thrift of a list is its header followed by its elements' bytes, so
//! leaving elements out is a copy). Anything the walk does not expect
//! (malformed thrift, a tracked column chunk without metadata, a row
//! group with a column count other than the schema's, statistics the
//! crate's decoder would refuse) ends it with `None`, and the footer is
//! decoded whole.

use std::ops::Range;

/// Thrift compact protocol type codes.
mod ty {
    pub const BOOL_TRUE: u8 = 1;
    pub const BOOL_FALSE: u8 = 2;
    pub const BYTE: u8 = 3;
    pub const I16: u8 = 4;
    pub const I32: u8 = 5;
    pub const I64: u8 = 6;
    pub const DOUBLE: u8 = 7;
    pub const BINARY: u8 = 8;
    pub const LIST: u8 = 9;
    pub const SET: u8 = 10;
    pub const MAP: u8 = 11;
    pub const STRUCT: u8 = 12;
}

/// How deeply nested a value may be before the footer is given up on (a
/// Parquet footer nests six deep; a damaged one must not exhaust the stack).
const MAX_DEPTH: u32 = 32;

/// What a column chunk's statistics say, read as the `parquet` crate reads
/// them (the minimum and maximum come from `min_value` and `max_value`,
/// or, when both are absent, from the deprecated `min` and `max`), and
/// where its bloom filter is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ChunkStatistics<'a> {
    /// Whether the chunk has statistics at all.
    pub present: bool,
    pub min: Option<&'a [u8]>,
    pub max: Option<&'a [u8]>,
    /// Never negative: the crate refuses a negative count, and so does the
    /// walk.
    pub null_count: Option<i64>,
    /// `bloom_filter_offset` and `bloom_filter_length`.
    pub bloom_filter: (Option<i64>, Option<i32>),
}

/// A row group kept by [`skim`]'s caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeptRowGroup {
    /// Its bytes in the footer.
    pub bytes: Range<usize>,
    /// 1-based number of its first row in the file.
    pub first_row: u64,
}

/// The row groups of a footer, as [`skim`] found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SkimmedFooter {
    /// The bytes of the `row_groups` list's header.
    pub list_header: Range<usize>,
    /// Where the list's last element ends.
    pub list_end: usize,
    /// Number of row groups in the file.
    pub row_groups: usize,
    /// Rows in the file, over every row group.
    pub rows: u64,
    pub kept: Vec<KeptRowGroup>,
}

impl SkimmedFooter {
    /// The footer `footer` (the bytes this was skimmed from) with only the
    /// kept row groups, or `None` when every row group is kept.
    pub fn without_left_out(&self, footer: &[u8]) -> Option<Vec<u8>> {
        if self.kept.len() == self.row_groups {
            return None;
        }
        let kept_bytes: usize = self.kept.iter().map(|k| k.bytes.len()).sum();
        let mut out = Vec::with_capacity(
            footer.len() - (self.list_end - self.list_header.start) + kept_bytes + 11,
        );
        out.extend_from_slice(&footer[..self.list_header.start]);
        let n = self.kept.len();
        if n < 15 {
            out.push(((n as u8) << 4) | ty::STRUCT);
        } else {
            out.push(0xf0 | ty::STRUCT);
            let mut v = n as u64;
            while v >= 0x80 {
                out.push((v as u8) | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        }
        for kept in &self.kept {
            out.extend_from_slice(&footer[kept.bytes.clone()]);
        }
        out.extend_from_slice(&footer[self.list_end..]);
        Some(out)
    }
}

/// Walks the thrift `FileMetaData` `footer` of a file whose schema has
/// `leaves` leaf columns. For each row group, `keep` gets its statistics
/// of the leaves `tracked` (in that order; a default value for a chunk
/// without statistics) and says whether the row group is kept. `None` when
/// the footer is not as expected (see the module docs).
pub(super) fn skim<'a>(
    footer: &'a [u8],
    leaves: usize,
    tracked: &[usize],
    mut keep: impl FnMut(&[ChunkStatistics<'a>]) -> bool,
) -> Option<SkimmedFooter> {
    let mut slot_of = vec![usize::MAX; leaves];
    for (slot, &leaf) in tracked.iter().enumerate() {
        *slot_of.get_mut(leaf)? = slot;
    }
    let mut stats = vec![ChunkStatistics::default(); tracked.len()];
    let mut cursor = Cursor::new(footer);
    let mut skimmed = None;
    let mut last = 0;
    while let Some((id, field)) = cursor.field(&mut last)? {
        if id != 4 {
            cursor.skip(field, 0)?;
            continue;
        }
        if field != ty::LIST || skimmed.is_some() {
            return None;
        }
        let start = cursor.at;
        let (element, count) = cursor.list()?;
        if element != ty::STRUCT {
            return None;
        }
        let list_header = start..cursor.at;
        let mut kept = Vec::new();
        let mut rows = 0u64;
        for _ in 0..count {
            let at = cursor.at;
            stats.fill(ChunkStatistics::default());
            let num_rows = row_group(&mut cursor, leaves, &slot_of, &mut stats)?;
            if keep(&stats) {
                kept.push(KeptRowGroup {
                    bytes: at..cursor.at,
                    first_row: rows + 1,
                });
            }
            rows = rows.checked_add(num_rows.max(0) as u64)?;
        }
        skimmed = Some(SkimmedFooter {
            list_header,
            list_end: cursor.at,
            row_groups: count,
            rows,
            kept,
        });
    }
    skimmed
}

/// Walks one `RowGroup`, filling `stats` for the tracked leaves; returns
/// its `num_rows`.
fn row_group<'a>(
    cursor: &mut Cursor<'a>,
    leaves: usize,
    slot_of: &[usize],
    stats: &mut [ChunkStatistics<'a>],
) -> Option<i64> {
    let mut num_rows = None;
    let mut columns = false;
    let mut last = 0;
    while let Some((id, field)) = cursor.field(&mut last)? {
        match (id, field) {
            (1, ty::LIST) if !columns => {
                let (element, count) = cursor.list()?;
                if element != ty::STRUCT || count != leaves {
                    return None;
                }
                for &slot in slot_of {
                    match stats.get_mut(slot) {
                        Some(stats) => column_chunk(cursor, stats)?,
                        // A column not tracked is skipped whole (damage in
                        // it is the crate's to find, if the row group is
                        // kept).
                        None => cursor.skip_value(ty::STRUCT, 2)?,
                    }
                }
                columns = true;
            }
            (3, ty::I64) => num_rows = Some(cursor.zigzag()?),
            (1 | 3, _) => return None,
            _ => cursor.skip(field, 1)?,
        }
    }
    if !columns {
        return None;
    }
    num_rows
}

/// Walks one `ColumnChunk`, reading its statistics into `stats`.
fn column_chunk<'a>(cursor: &mut Cursor<'a>, stats: &mut ChunkStatistics<'a>) -> Option<()> {
    let mut metadata = false;
    let mut last = 0;
    while let Some((id, field)) = cursor.field(&mut last)? {
        match (id, field) {
            (3, ty::STRUCT) if !metadata => {
                column_metadata(cursor, stats)?;
                metadata = true;
            }
            (3, _) => return None,
            _ => cursor.skip(field, 2)?,
        }
    }
    metadata.then_some(())
}

/// Walks one `ColumnMetaData`, reading its statistics into `stats`.
fn column_metadata<'a>(cursor: &mut Cursor<'a>, stats: &mut ChunkStatistics<'a>) -> Option<()> {
    let mut last = 0;
    while let Some((id, field)) = cursor.field(&mut last)? {
        match (id, field) {
            (12, ty::STRUCT) => {
                let bloom_filter = stats.bloom_filter;
                *stats = ChunkStatistics {
                    bloom_filter,
                    ..statistics(cursor)?
                };
            }
            (14, ty::I64) => stats.bloom_filter.0 = Some(cursor.zigzag()?),
            (15, ty::I32) => stats.bloom_filter.1 = Some(i32::try_from(cursor.zigzag()?).ok()?),
            (12 | 14 | 15, _) => return None,
            _ => cursor.skip(field, 3)?,
        }
    }
    Some(())
}

/// Walks one `Statistics`.
fn statistics<'a>(cursor: &mut Cursor<'a>) -> Option<ChunkStatistics<'a>> {
    let (mut min, mut max, mut min_value, mut max_value) = (None, None, None, None);
    let mut null_count = None;
    let mut last = 0;
    while let Some((id, field)) = cursor.field(&mut last)? {
        let binary = field == ty::BINARY;
        match id {
            1 if binary => max = Some(cursor.binary()?),
            2 if binary => min = Some(cursor.binary()?),
            5 if binary => max_value = Some(cursor.binary()?),
            6 if binary => min_value = Some(cursor.binary()?),
            3 | 9 if field == ty::I64 => {
                let count = cursor.zigzag()?;
                if count < 0 {
                    return None;
                }
                if id == 3 {
                    null_count = Some(count);
                }
            }
            1..=3 | 5 | 6 | 9 => return None,
            _ => cursor.skip(field, 4)?,
        }
    }
    let old_format = min_value.is_none() && max_value.is_none();
    Some(ChunkStatistics {
        present: true,
        min: if old_format { min } else { min_value },
        max: if old_format { max } else { max_value },
        null_count,
        bloom_filter: (None, None),
    })
}

/// A position in thrift compact-encoded bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    #[inline]
    fn byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let taken = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(taken)
    }

    #[inline]
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn zigzag(&mut self) -> Option<i64> {
        let v = self.varint()?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn binary(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        self.take(len)
    }

    /// The next field's id and type, `None` inside at the struct's end.
    /// `last` is the previous field's id (ids are sent as deltas).
    fn field(&mut self, last: &mut i16) -> Option<Option<(i16, u8)>> {
        let byte = self.byte()?;
        if byte == 0 {
            return Some(None);
        }
        let delta = byte >> 4;
        let id = if delta == 0 {
            i16::try_from(self.zigzag()?).ok()?
        } else {
            last.checked_add(i16::from(delta))?
        };
        *last = id;
        Some(Some((id, byte & 0x0f)))
    }

    /// A list's (or set's) element type and size. Every element takes at
    /// least a byte, so a size beyond the bytes left is refused.
    fn list(&mut self) -> Option<(u8, usize)> {
        let byte = self.byte()?;
        let size = match byte >> 4 {
            15 => usize::try_from(self.varint()?).ok()?,
            size => usize::from(size),
        };
        (size <= self.bytes.len() - self.at).then_some((byte & 0x0f, size))
    }

    /// Skips a value of type `field` (a struct field's value: booleans are
    /// in the type).
    #[inline]
    fn skip(&mut self, field: u8, depth: u32) -> Option<()> {
        match field {
            ty::BOOL_TRUE | ty::BOOL_FALSE => Some(()),
            _ => self.skip_value(field, depth),
        }
    }

    /// Skips a varint without decoding it.
    #[inline]
    fn skip_varint(&mut self) -> Option<()> {
        for _ in 0..10 {
            if self.byte()? & 0x80 == 0 {
                return Some(());
            }
        }
        None
    }

    /// Skips a value of type `kind` as a list element holds it (booleans
    /// take a byte). Most of a footer is skipped here: the metadata of
    /// the columns not tracked, lists of integers (encodings, level
    /// histograms) and strings (paths, statistics) among it.
    fn skip_value(&mut self, kind: u8, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match kind {
            ty::BOOL_TRUE | ty::BOOL_FALSE | ty::BYTE => self.take(1).map(drop),
            ty::I16 | ty::I32 | ty::I64 => self.skip_varint(),
            ty::DOUBLE => self.take(8).map(drop),
            ty::BINARY => self.binary().map(drop),
            ty::LIST | ty::SET => {
                let (element, size) = self.list()?;
                match element {
                    ty::I16 | ty::I32 | ty::I64 => (0..size).try_for_each(|_| self.skip_varint()),
                    ty::BINARY => (0..size).try_for_each(|_| self.binary().map(drop)),
                    _ => (0..size).try_for_each(|_| self.skip_value(element, depth + 1)),
                }
            }
            ty::MAP => {
                let size = usize::try_from(self.varint()?).ok()?;
                if size == 0 {
                    return Some(());
                }
                if size > self.bytes.len() - self.at {
                    return None;
                }
                let kinds = self.byte()?;
                (0..size).try_for_each(|_| {
                    self.skip_value(kinds >> 4, depth + 1)?;
                    self.skip_value(kinds & 0x0f, depth + 1)
                })
            }
            ty::STRUCT => loop {
                let header = self.byte()?;
                if header == 0 {
                    return Some(());
                }
                if header >> 4 == 0 {
                    // The field's id, written out: not needed to skip it.
                    self.skip_varint()?;
                }
                // Most fields are integers and strings: skipped here, only
                // containers go through a call.
                match header & 0x0f {
                    ty::BOOL_TRUE | ty::BOOL_FALSE => {}
                    ty::I16 | ty::I32 | ty::I64 => self.skip_varint()?,
                    ty::BINARY => {
                        self.binary()?;
                    }
                    field => self.skip_value(field, depth + 1)?,
                }
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use bytes::Bytes;
    use parquet::file::metadata::ParquetMetaDataReader;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};

    /// A file of `groups` row groups of 3 rows over columns `name`
    /// (strings with bloom filters, null in the second row of odd groups),
    /// `n` and `other`.
    fn file(groups: usize) -> Bytes {
        let rows = groups * 3;
        let name: ArrayRef = Arc::new(StringArray::from_iter((0..rows).map(|i| {
            let group = i / 3;
            (group % 2 == 0 || i % 3 != 1).then(|| format!("v{group:03}-{}", i % 3))
        })));
        let n: ArrayRef = Arc::new(Int64Array::from_iter_values((0..rows as i64).rev()));
        let other: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("o{i}")),
        ));
        let batch =
            RecordBatch::try_from_iter([("name", name), ("n", n), ("other", other)]).unwrap();
        let props = WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_column_bloom_filter_enabled("name".into(), true)
            .set_max_row_group_row_count(Some(3))
            .build();
        crate::ingest::parquet::tests::write(&batch, props)
    }

    fn footer_of(file: &Bytes) -> &[u8] {
        let len = u32::from_le_bytes(file[file.len() - 8..file.len() - 4].try_into().unwrap());
        &file[file.len() - 8 - len as usize..file.len() - 8]
    }

    /// Every row group's statistics are the crate's, for the columns
    /// tracked, in the order asked; row numbers count every row group.
    #[test]
    fn statistics_and_rows_are_the_crates() {
        let file = file(5);
        let full = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .unwrap();
        let mut seen = Vec::new();
        let skimmed = skim(footer_of(&file), 3, &[1, 0], |stats| {
            seen.push(stats.to_vec());
            seen.len() % 2 == 0
        })
        .unwrap();
        assert_eq!(skimmed.row_groups, 5);
        assert_eq!(skimmed.rows, 15);
        let kept: Vec<u64> = skimmed.kept.iter().map(|k| k.first_row).collect();
        assert_eq!(kept, [4, 10]);
        for (rg, stats) in full.row_groups().iter().zip(&seen) {
            for (&leaf, skimmed) in [1, 0].iter().zip(stats) {
                let chunk = rg.column(leaf);
                let bloom_filter = (chunk.bloom_filter_offset(), chunk.bloom_filter_length());
                assert_eq!(skimmed.bloom_filter, bloom_filter);
                let theirs = chunk.statistics().unwrap();
                assert!(skimmed.present);
                assert_eq!(skimmed.min, theirs.min_bytes_opt());
                assert_eq!(skimmed.max, theirs.max_bytes_opt());
                assert_eq!(
                    skimmed.null_count,
                    theirs.null_count_opt().map(|n| n as i64)
                );
            }
        }
        assert_eq!(seen[1][1].null_count, Some(1));
    }

    /// The footer without the row groups left out decodes to the kept row
    /// groups of the whole footer, with a short list header (fewer than 15
    /// kept) or a long one.
    #[test]
    fn the_smaller_footer_decodes_to_the_kept_row_groups() {
        let file = file(40);
        let footer = footer_of(&file);
        let full = ParquetMetaDataReader::decode_metadata(footer).unwrap();
        for keep_every in [1, 2, 3, 7, 39, 40] {
            let mut i = 0;
            let skimmed = skim(footer, 3, &[], |_| {
                i += 1;
                (i - 1) % keep_every == 0
            })
            .unwrap();
            let Some(smaller) = skimmed.without_left_out(footer) else {
                assert_eq!(keep_every, 1);
                continue;
            };
            let decoded = ParquetMetaDataReader::decode_metadata(&smaller).unwrap();
            let kept: Vec<_> = full.row_groups().iter().step_by(keep_every).collect();
            assert_eq!(decoded.num_row_groups(), kept.len());
            for (ours, theirs) in decoded.row_groups().iter().zip(kept) {
                assert_eq!(ours.num_rows(), theirs.num_rows());
                for (a, b) in ours.columns().iter().zip(theirs.columns()) {
                    assert_eq!(a.byte_range(), b.byte_range());
                    assert_eq!(a.statistics(), b.statistics());
                }
            }
            assert_eq!(
                decoded.file_metadata().schema_descr().root_schema(),
                full.file_metadata().schema_descr().root_schema()
            );
        }
    }

    /// Hand-encoded `Statistics`: the deprecated `min` and `max` count only
    /// when neither `min_value` nor `max_value` is there; a negative count
    /// or a field of the wrong type ends the walk.
    #[test]
    fn statistics_are_read_as_the_crate_reads_them() {
        // Field headers: delta 1 or 2 from the previous id, then the type.
        let binary = |delta: u8, v: &[u8]| {
            let mut out = vec![(delta << 4) | ty::BINARY, v.len() as u8];
            out.extend_from_slice(v);
            out
        };
        let read = |fields: &[Vec<u8>]| {
            let mut bytes = fields.concat();
            bytes.push(0);
            statistics(&mut Cursor::new(&bytes)).map(|s| {
                (
                    s.min.map(<[u8]>::to_vec),
                    s.max.map(<[u8]>::to_vec),
                    s.null_count,
                )
            })
        };
        // 1: max "zz", 2: min "aa".
        let old = read(&[binary(1, b"zz"), binary(1, b"aa")]).unwrap();
        assert_eq!(old, (Some(b"aa".to_vec()), Some(b"zz".to_vec()), None));
        // ... and 6: min_value "bb" (delta 4): max_value absent, max unknown.
        let new = read(&[binary(1, b"zz"), binary(1, b"aa"), binary(4, b"bb")]).unwrap();
        assert_eq!(new, (Some(b"bb".to_vec()), None, None));
        // 3: null_count -1 (zigzag 1), after 2.
        let negative = read(&[binary(2, b"aa"), vec![0x16, 1]]);
        assert_eq!(negative, None);
        let counted = read(&[binary(2, b"aa"), vec![0x16, 8]]).unwrap();
        assert_eq!(counted.2, Some(4));
        // 3 as a binary.
        assert_eq!(read(&[binary(2, b"aa"), binary(1, b"x")]), None);
    }

    /// Cut or damaged footers end the walk or give what a walk gives,
    /// never a panic, and whatever is kept stays inside the footer.
    #[test]
    fn damaged_footers_never_panic() {
        let file = file(20);
        let footer = footer_of(&file);
        for cut in 0..footer.len() {
            let _ = skim(&footer[..cut], 3, &[0, 1], |_| true);
        }
        for at in 0..footer.len() {
            for flip in [0x01, 0x5a, 0xff] {
                let mut damaged = footer.to_vec();
                damaged[at] ^= flip;
                if let Some(skimmed) = skim(&damaged, 3, &[0, 2], |s| s[0].present) {
                    if let Some(smaller) = skimmed.without_left_out(&damaged) {
                        let _ = ParquetMetaDataReader::decode_metadata(&smaller);
                    }
                }
            }
        }
        // A tracked leaf outside the schema, and nesting past the limit.
        assert_eq!(skim(footer, 3, &[3], |_| true), None);
        let deep = [vec![0x1c; 100], vec![0; 100]].concat();
        assert_eq!(skim(&deep, 3, &[], |_| true), None);
    }
}
