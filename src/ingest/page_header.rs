//! A small, strict reader of Parquet page headers.
//!
//! The `parquet` crate keeps its page header type private, yet the page
//! checks in `guard` must see every page's type, sizes, value count and
//! encoding *before* the decoder does, without decompressing pages that
//! cannot hurt. A page header is a Thrift struct in the compact protocol;
//! this module reads the handful of fields the checks need and skips the
//! rest (statistics, CRC, ...). It is strict on purpose: anything it does
//! not fully understand (an unknown wire type, a repeated field, nesting
//! deeper than [`MAX_DEPTH`]) is [`HeaderError::Malformed`], and the caller
//! then falls back to the `parquet` crate's own page reader, so a
//! disagreement between the two readers can only cost time, never safety.

use super::delta_header::uleb128;

/// Structs nested deeper than this are refused (a page header nests two
/// levels; statistics add none).
const MAX_DEPTH: usize = 16;

/// Parquet's `PageType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageKind {
    DataV1,
    Index,
    Dictionary,
    DataV2,
}

/// Parquet's `Encoding` values the checks care about.
pub(crate) mod encoding {
    pub const PLAIN: i32 = 0;
    pub const PLAIN_DICTIONARY: i32 = 2;
    pub const DELTA_BINARY_PACKED: i32 = 5;
    pub const DELTA_LENGTH_BYTE_ARRAY: i32 = 6;
    pub const DELTA_BYTE_ARRAY: i32 = 7;
    pub const RLE_DICTIONARY: i32 = 8;
}

/// The fields of a page header the page checks read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageHeader {
    pub kind: PageKind,
    pub uncompressed_size: i32,
    pub compressed_size: i32,
    /// `num_values` of the page's own header (data v1/v2 or dictionary).
    pub num_values: i32,
    /// The values' encoding (Parquet's `Encoding` number).
    pub encoding: i32,
    /// Where a data page keeps its definition levels.
    pub levels: PageLevels,
    /// A data page's bounds from its statistics (`min_value`, `max_value`:
    /// Arrow C++ and so pyarrow and Spark's writers put them in every data
    /// page's header), when it gives both.
    pub bounds: Option<PageBounds>,
}

impl PageHeader {
    /// Whether this is a data page whose values are indices into the
    /// chunk's dictionary, as its encoding says.
    pub fn uses_dictionary(&self) -> bool {
        matches!(self.kind, PageKind::DataV1 | PageKind::DataV2)
            && matches!(
                self.encoding,
                encoding::PLAIN_DICTIONARY | encoding::RLE_DICTIONARY
            )
    }
}

/// The least and greatest value of a data page (as bytes, ordered as
/// Parquet orders the column's type; a writer may shorten them, which
/// still bounds the values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageBounds {
    pub min: Vec<u8>,
    pub max: Vec<u8>,
}

/// Where a data page keeps its definition levels, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageLevels {
    /// Not a data page.
    None,
    /// Data page v1: the levels open the (compressed) page, each kind after
    /// a 4-byte length, in this encoding (Parquet's `Encoding` number;
    /// `None` if the header leaves it out).
    V1 { def_encoding: Option<i32> },
    /// Data page v2: the levels are stored uncompressed before the values,
    /// repetition levels first; the header counts rows and nulls, and says
    /// whether the values are compressed (`is_compressed`, true unless the
    /// header says otherwise).
    V2 {
        num_nulls: i32,
        num_rows: i32,
        def_len: i32,
        rep_len: i32,
        values_compressed: bool,
    },
}

/// Why a header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// The bytes end inside the header: read more and try again.
    Truncated,
    /// Not a header this reader understands.
    Malformed,
}

type Read<T> = Result<T, HeaderError>;

/// Reads one page header from the start of `bytes`; returns it with its
/// length in bytes.
pub(crate) fn read_page_header(bytes: &[u8]) -> Read<(PageHeader, usize)> {
    let mut input = Input { bytes, pos: 0 };
    let mut kind = None;
    let mut uncompressed_size = None;
    let mut compressed_size = None;
    let mut inner: Option<(PageKind, i32, i32, PageLevels)> = None;
    let mut bounds = None;
    let mut seen = 0u32;
    input.read_struct(0, |input, id, wire| {
        if (1..=8).contains(&id) {
            if seen & (1 << id) != 0 {
                return Err(HeaderError::Malformed);
            }
            seen |= 1 << id;
        }
        match (id, wire) {
            (1, I32) => {
                kind = Some(match input.i32()? {
                    0 => PageKind::DataV1,
                    1 => PageKind::Index,
                    2 => PageKind::Dictionary,
                    3 => PageKind::DataV2,
                    _ => return Err(HeaderError::Malformed),
                })
            }
            (2, I32) => uncompressed_size = Some(input.i32()?),
            (3, I32) => compressed_size = Some(input.i32()?),
            // data_page_header: num_values 1, encoding 2, definition
            // level encoding 3.
            (5, STRUCT) => {
                let ([values, encoding, def_encoding], stats) = input.fields([1, 2, 3], Some(5))?;
                bounds = stats;
                let levels = PageLevels::V1 { def_encoding };
                inner = Some((PageKind::DataV1, need(values)?, need(encoding)?, levels));
            }
            // dictionary_page_header: num_values 1, encoding 2.
            (7, STRUCT) => {
                let ([values, encoding], _) = input.fields([1, 2], None)?;
                let levels = PageLevels::None;
                inner = Some((PageKind::Dictionary, need(values)?, need(encoding)?, levels));
            }
            // data_page_header_v2: num_values 1, num_nulls 2, num_rows 3,
            // encoding 4, definition and repetition levels' lengths 5, 6,
            // is_compressed 7.
            (8, STRUCT) => {
                let ([values, nulls, rows, encoding, def_len, rep_len], stats, compressed) =
                    input.fields_and_flag([1, 2, 3, 4, 5, 6], Some(8), Some(7))?;
                bounds = stats;
                let levels = PageLevels::V2 {
                    num_nulls: need(nulls)?,
                    num_rows: need(rows)?,
                    def_len: need(def_len)?,
                    rep_len: need(rep_len)?,
                    values_compressed: compressed.unwrap_or(true),
                };
                inner = Some((PageKind::DataV2, need(values)?, need(encoding)?, levels));
            }
            (1..=8, _) if !matches!(id, 4 | 6) => return Err(HeaderError::Malformed),
            _ => input.skip(wire, 1)?,
        }
        Ok(())
    })?;
    let (kind, uncompressed_size, compressed_size) =
        match (kind, uncompressed_size, compressed_size) {
            (Some(k), Some(u), Some(c)) => (k, u, c),
            _ => return Err(HeaderError::Malformed),
        };
    let (num_values, encoding, levels) = match (kind, inner) {
        (PageKind::Index, _) => (0, 0, PageLevels::None),
        (kind, Some((inner_kind, values, encoding, levels))) if kind == inner_kind => {
            (values, encoding, levels)
        }
        _ => return Err(HeaderError::Malformed),
    };
    let header = PageHeader {
        kind,
        uncompressed_size,
        compressed_size,
        num_values,
        encoding,
        levels,
        bounds,
    };
    Ok((header, input.pos))
}

/// Reads a split-block bloom filter's header (Parquet's
/// `BloomFilterHeader`) from the start of `bytes`: the size of its bitset
/// in bytes, and the header's length. `None` in place of the size when the
/// header names an algorithm, hash or compression other than the one the
/// format defines (block, xxHash, uncompressed), which a reader must not
/// guess at.
pub(crate) fn read_bloom_filter_header(bytes: &[u8]) -> Read<(Option<i32>, usize)> {
    let mut input = Input { bytes, pos: 0 };
    let mut num_bytes = None;
    // Algorithm, hash and compression: each a union whose field 1 is the
    // only member the format defines.
    let mut known = [false; 3];
    let mut other = false;
    input.read_struct(0, |input, id, wire| match (id, wire) {
        (1, I32) if num_bytes.is_none() => {
            num_bytes = Some(input.i32()?);
            Ok(())
        }
        (2..=4, STRUCT) => input.read_struct(1, |input, member, wire| {
            match (member, wire) {
                (1, STRUCT) => known[id as usize - 2] = true,
                _ => other = true,
            }
            input.skip(wire, 2)
        }),
        (1..=4, _) => Err(HeaderError::Malformed),
        _ => input.skip(wire, 1),
    })?;
    let num_bytes = need(num_bytes)?;
    let defined = known.iter().all(|&k| k) && !other;
    Ok((defined.then_some(num_bytes), input.pos))
}

/// A required field's value.
fn need(field: Option<i32>) -> Read<i32> {
    field.ok_or(HeaderError::Malformed)
}

// Compact protocol wire types.
const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const I8: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;

struct Input<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> Read<u8> {
        let byte = *self.bytes.get(self.pos).ok_or(HeaderError::Truncated)?;
        self.pos += 1;
        Ok(byte)
    }

    fn advance(&mut self, n: u64) -> Read<()> {
        let end = u64::try_from(self.pos)
            .ok()
            .and_then(|pos| pos.checked_add(n))
            .ok_or(HeaderError::Malformed)?;
        if end > self.bytes.len() as u64 {
            return Err(HeaderError::Truncated);
        }
        self.pos = end as usize;
        Ok(())
    }

    fn varint(&mut self) -> Read<u64> {
        uleb128(self.bytes, &mut self.pos).ok_or(if self.pos >= self.bytes.len() {
            HeaderError::Truncated
        } else {
            HeaderError::Malformed // longer than 64 bits
        })
    }

    fn zigzag(&mut self) -> Read<i64> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn i32(&mut self) -> Read<i32> {
        i32::try_from(self.zigzag()?).map_err(|_| HeaderError::Malformed)
    }

    /// Reads a struct's fields, calling `field(input, id, wire type)` for
    /// each; `field` must consume the value.
    fn read_struct(
        &mut self,
        depth: usize,
        mut field: impl FnMut(&mut Self, i16, u8) -> Read<()>,
    ) -> Read<()> {
        if depth > MAX_DEPTH {
            return Err(HeaderError::Malformed);
        }
        let mut last_id = 0i16;
        loop {
            let head = self.byte()?;
            if head == 0 {
                return Ok(());
            }
            let wire = head & 0x0f;
            let delta = head >> 4;
            let id = if delta == 0 {
                i16::try_from(self.zigzag()?).map_err(|_| HeaderError::Malformed)?
            } else {
                last_id
                    .checked_add(i16::from(delta))
                    .ok_or(HeaderError::Malformed)?
            };
            last_id = id;
            field(self, id, wire)?;
        }
    }

    /// Reads an inner page header struct for its `i32` fields `ids` (in
    /// that order; `None` where absent) and the bounds in its statistics
    /// (field `statistics`, if it has one), skipping the others. A field of
    /// `ids` given twice or with another type is malformed.
    fn fields<const N: usize>(
        &mut self,
        ids: [i16; N],
        statistics: Option<i16>,
    ) -> Read<([Option<i32>; N], Option<PageBounds>)> {
        let (values, bounds, _) = self.fields_and_flag(ids, statistics, None)?;
        Ok((values, bounds))
    }

    /// [`Input::fields`], and the boolean field `flag`, when given and
    /// present.
    #[allow(clippy::type_complexity)]
    fn fields_and_flag<const N: usize>(
        &mut self,
        ids: [i16; N],
        statistics: Option<i16>,
        flag: Option<i16>,
    ) -> Read<([Option<i32>; N], Option<PageBounds>, Option<bool>)> {
        let mut values = [None; N];
        let mut bounds = None;
        let mut flag_value = None;
        self.read_struct(1, |input, id, wire| {
            if Some(id) == statistics && wire == STRUCT {
                bounds = input.statistics_bounds()?;
                return Ok(());
            }
            if Some(id) == flag {
                flag_value = Some(match wire {
                    BOOL_TRUE => true,
                    BOOL_FALSE => false,
                    _ => return Err(HeaderError::Malformed),
                });
                return Ok(());
            }
            let Some(slot) = ids.iter().position(|&i| i == id).map(|i| &mut values[i]) else {
                return input.skip(wire, 2);
            };
            if wire != I32 || slot.is_some() {
                return Err(HeaderError::Malformed);
            }
            *slot = Some(input.i32()?);
            Ok(())
        })?;
        Ok((values, bounds, flag_value))
    }

    /// Reads a `Statistics` struct for `max_value` (5) and `min_value` (6),
    /// skipping the rest (the deprecated `max` and `min` among it: their
    /// order is not defined for strings).
    fn statistics_bounds(&mut self) -> Read<Option<PageBounds>> {
        let (mut min, mut max) = (None, None);
        self.read_struct(2, |input, id, wire| match (id, wire) {
            (5 | 6, BINARY) => {
                let len = input.varint()?;
                let start = input.pos;
                input.advance(len)?;
                let value = input.bytes[start..input.pos].to_vec();
                if id == 5 {
                    max = Some(value);
                } else {
                    min = Some(value);
                }
                Ok(())
            }
            _ => input.skip(wire, 3),
        })?;
        Ok(min.zip(max).map(|(min, max)| PageBounds { min, max }))
    }

    /// Skips one value of wire type `wire` in a field.
    fn skip(&mut self, wire: u8, depth: usize) -> Read<()> {
        match wire {
            BOOL_TRUE | BOOL_FALSE => Ok(()),
            _ => self.skip_value(wire, depth),
        }
    }

    /// Skips one value of wire type `wire` (in a field or a collection,
    /// where booleans take one byte).
    fn skip_value(&mut self, wire: u8, depth: usize) -> Read<()> {
        if depth > MAX_DEPTH {
            return Err(HeaderError::Malformed);
        }
        match wire {
            BOOL_TRUE | BOOL_FALSE | I8 => self.advance(1),
            I16 | I32 | I64 => self.varint().map(drop),
            DOUBLE => self.advance(8),
            BINARY => {
                let len = self.varint()?;
                self.advance(len)
            }
            LIST | SET => {
                let head = self.byte()?;
                let elem = head & 0x0f;
                let count = match head >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                self.skip_elements(count, elem, depth)
            }
            MAP => {
                let count = self.varint()?;
                if count == 0 {
                    return Ok(());
                }
                let types = self.byte()?;
                for _ in 0..count {
                    self.skip_value(types >> 4, depth + 1)?;
                    self.skip_value(types & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            STRUCT => self.read_struct(depth + 1, |input, _, wire| input.skip(wire, depth + 1)),
            _ => Err(HeaderError::Malformed),
        }
    }

    fn skip_elements(&mut self, count: u64, elem: u8, depth: usize) -> Read<()> {
        // Every element takes at least one byte: a count beyond the input
        // is truncated input, found without looping over it.
        if count > (self.bytes.len() - self.pos) as u64 {
            return Err(HeaderError::Truncated);
        }
        for _ in 0..count {
            self.skip_value(elem, depth + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compact-protocol bytes of a header, written by hand: a v1 data page
    /// (type 0) of 100 uncompressed, 60 compressed bytes, 10 values,
    /// DELTA_BYTE_ARRAY, with statistics holding a 3-byte max.
    fn data_page_v1() -> Vec<u8> {
        vec![
            0x15, 0x00, // 1: type = 0 (zigzag)
            0x15, 0xc8, 0x01, // 2: uncompressed = 100
            0x15, 0x78, // 3: compressed = 60
            0x2c, // 5: data_page_header (struct, delta 2)
            0x15, 0x14, // 1: num_values = 10
            0x15, 0x0e, // 2: encoding = 7
            0x15, 0x06, // 3: def level encoding = RLE
            0x15, 0x06, // 4: rep level encoding = RLE
            0x1c, // 5: statistics
            0x18, 0x03, b'a', b'b', b'c', // 1: max (binary)
            0x00, // end statistics
            0x00, // end data_page_header
            0x00, // end page header
        ]
    }

    #[test]
    fn reads_a_v1_data_page_header_and_skips_statistics() {
        let bytes = data_page_v1();
        let (header, len) = read_page_header(&bytes).unwrap();
        assert_eq!(len, bytes.len());
        assert_eq!(
            header,
            PageHeader {
                kind: PageKind::DataV1,
                uncompressed_size: 100,
                compressed_size: 60,
                num_values: 10,
                encoding: encoding::DELTA_BYTE_ARRAY,
                levels: PageLevels::V1 {
                    def_encoding: Some(3)
                },
                bounds: None,
            }
        );
    }

    /// `min_value` and `max_value` of a data page's statistics are its
    /// bounds; the deprecated `max` alone is none.
    #[test]
    fn reads_the_bounds_of_a_data_page() {
        let mut bytes = data_page_v1();
        // After `max` (1): `max_value` (5) "xyz", `min_value` (6) "ab".
        let at = bytes.iter().position(|&b| b == b'c').unwrap() + 1;
        bytes.splice(
            at..at,
            [0x48, 0x03, b'x', b'y', b'z', 0x18, 0x02, b'a', b'b'],
        );
        let (header, len) = read_page_header(&bytes).unwrap();
        assert_eq!(len, bytes.len());
        assert_eq!(
            header.bounds,
            Some(PageBounds {
                min: b"ab".to_vec(),
                max: b"xyz".to_vec()
            })
        );
        for end in 0..bytes.len() {
            assert_eq!(read_page_header(&bytes[..end]), Err(HeaderError::Truncated));
        }
    }

    #[test]
    fn every_prefix_is_truncated() {
        let bytes = data_page_v1();
        for end in 0..bytes.len() {
            assert_eq!(
                read_page_header(&bytes[..end]),
                Err(HeaderError::Truncated),
                "{end}"
            );
        }
    }

    #[test]
    fn repeated_fields_and_mismatched_kinds_are_malformed() {
        let mut repeated = data_page_v1();
        repeated.splice(2..2, [0x05, 0x02, 0x00]); // field 1 again, long form
        assert_eq!(read_page_header(&repeated), Err(HeaderError::Malformed));
        let mut dictionary = data_page_v1();
        dictionary[1] = 0x04; // type = 2 (dictionary) with a data page header
        assert_eq!(read_page_header(&dictionary), Err(HeaderError::Malformed));
    }

    #[test]
    fn absurd_collection_sizes_do_not_loop() {
        // 1: type, then field 9 (unknown) a list of 2^60 i32 elements.
        let bytes = [
            0x15, 0x00, 0x89, 0xf5, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10,
        ];
        assert_eq!(read_page_header(&bytes), Err(HeaderError::Truncated));
    }

    #[test]
    fn reads_headers_written_by_the_parquet_crate() {
        use arrow_array::{RecordBatch, StringArray};
        use parquet::arrow::ArrowWriter;
        use parquet::basic::Encoding;
        use parquet::file::properties::{WriterProperties, WriterVersion};
        use std::sync::Arc;
        for (version, dictionary) in [
            (WriterVersion::PARQUET_1_0, true),
            (WriterVersion::PARQUET_2_0, false),
        ] {
            let strings: StringArray = (0..1000).map(|i| Some(format!("v{}", i % 7))).collect();
            let batch = RecordBatch::try_from_iter([("s", Arc::new(strings) as _)]).unwrap();
            let props = WriterProperties::builder()
                .set_writer_version(version)
                .set_dictionary_enabled(dictionary)
                .set_encoding(Encoding::DELTA_BYTE_ARRAY)
                .build();
            let mut file = Vec::new();
            let mut writer = ArrowWriter::try_new(&mut file, batch.schema(), Some(props)).unwrap();
            writer.write(&batch).unwrap();
            let metadata = writer.close().unwrap();
            let column = &metadata.row_groups()[0].columns()[0];
            let start = column
                .dictionary_page_offset()
                .unwrap_or(column.data_page_offset()) as usize;
            let (first, len) = read_page_header(&file[start..]).unwrap();
            let data = if dictionary {
                assert_eq!(first.kind, PageKind::Dictionary);
                assert_eq!(first.num_values, 7);
                let next = start + len + first.compressed_size as usize;
                read_page_header(&file[next..]).unwrap().0
            } else {
                first
            };
            if dictionary {
                assert_eq!(data.kind, PageKind::DataV1);
                assert!(matches!(data.encoding, 2 | 8), "{data:?}"); // *_DICTIONARY
            } else {
                assert_eq!(data.kind, PageKind::DataV2);
                assert_eq!(data.encoding, encoding::DELTA_BYTE_ARRAY);
            }
            assert_eq!(data.num_values, 1000);
            if dictionary {
                assert_eq!(
                    data.levels,
                    PageLevels::V1 {
                        def_encoding: Some(3)
                    }
                ); // RLE
            } else {
                let PageLevels::V2 {
                    num_nulls,
                    num_rows,
                    rep_len,
                    values_compressed,
                    ..
                } = data.levels
                else {
                    panic!("{data:?}");
                };
                assert_eq!((num_nulls, num_rows, rep_len), (0, 1000, 0));
                // Written without a codec: `is_compressed` is false.
                assert!(!values_compressed);
            }
        }
    }
}
