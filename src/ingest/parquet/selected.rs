//! Late materialisation: decoding only the rows of a row group that a scan
//! scope selects.
//!
//! In a file written in time order with every tenant mixed, a bot's rows are
//! spread thinly over every page of every row group, so statistics prune
//! nothing, and arrow's record reader, asked for a fragmented selection,
//! either decodes every row and filters afterwards or pays a call per run
//! of rows. This reader instead works a column chunk at a time, page by
//! page:
//! - the scope's key columns are decoded to find the matching rows: on a
//!   dictionary-encoded page, the condition is evaluated once per
//!   dictionary entry and each row costs an integer lookup, made as the
//!   indices are unpacked, without a buffer of them ([`MatchingRows`]);
//!   a page whose bounds exclude the values, in the chunk's column index
//!   ([`pages_admitting`]) or in the page's own header ([`PageWalk`]), is
//!   not decompressed, nor is a page that uses a dictionary none of whose
//!   entries match ([`only_dictionary_encoded`] rules out the whole chunk);
//! - every other column then yields just those rows, a batch of rows at a
//!   time ([`ColumnGather`]): definition levels are read as a bitmap,
//!   dictionary indices are read by position from the parsed runs (or in
//!   bulk when most of a page is wanted; [`super::hybrid`]), plain values
//!   are stepped over, and dictionary entries become string views once,
//!   sharing the dictionary's buffer with the output (as many rows of an
//!   ASCII plain page share the page's). A page holding no selected row is
//!   skipped without being decompressed; a plain page's strings are tested
//!   against a condition by length and first bytes first
//!   (`crate::ingest::value_set`).
//! - when a few rows are read (one conversation's), the reader follows the
//!   chunk's pages with its own header reader ([`PageWalk`]) so that it
//!   can read pages in part: a dictionary page only as far as the entries
//!   those rows name ([`HeldDictionary`]), a data page (plain, dictionary
//!   indices or delta-encoded) only as far as the last row wanted
//!   ([`PartialPage`]); and a second condition is
//!   evaluated at the rows the first one left ([`matching_at`]), not over
//!   the whole chunk.
//!
//! It handles what event pipelines write (flat columns of strings and
//! `INT64` timestamps, plain, dictionary or delta-encoded pages (the last
//! decoded into the plain layout as far as wanted, see `delta`), data page
//! v1 or v2, any codec): [`column_kind`] says whether a column chunk
//! qualifies, and the caller falls back to arrow's reader otherwise. Only
//! row groups whose statistics prove every row valid come here
//! (`provably_valid`), so rows outside the scope need no validation
//! (SPEC 1). Strings are checked to be UTF-8 as arrow would; any
//! inconsistency in the data is an error naming the column, never a panic
//! or a read out of bounds.

use std::sync::Arc;

use arrow_array::types::{
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
};
use arrow_array::{ArrayRef, PrimitiveArray, StringViewArray};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBuffer, ScalarBuffer};
use arrow_schema::{DataType, TimeUnit};
use bytes::{Buf, Bytes};
use parquet::basic::{ConvertedType, Encoding, LogicalType, TimeUnit as ParquetTimeUnit, Type};
use parquet::column::page::{Page, PageReader};
use parquet::data_type::Int96;
use parquet::errors::ParquetError;
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::page_index::index_reader::decode_column_index;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::serialized_reader::SerializedPageReader;

use crate::ingest::normalize::view_at;
use crate::ingest::INLINE_VIEW_LEN;

use super::delta;
use super::hybrid::{
    decode_hybrid, entry_rows, parse_runs, parsed_len, visit_runs, HybridValues, MatchingRows, Run,
};
use super::levels::PresentBits;
use super::page_stream::PageStream;
use super::page_walk::{
    only_dictionary_encoded, own_header_agrees, step_walk, PageWalk, StoredPage,
};
use super::stored_pages::{self, StoredPages};
use crate::error::{Error, Result};
use crate::ingest::page_header::{encoding, PageBounds, PageHeader, PageKind, PageLevels};
use crate::ingest::value_set::ValueSet;

/// What a column chunk holds, for the selective reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ColumnKind {
    /// `BYTE_ARRAY` strings, read as `Utf8View`.
    Strings,
    /// `INT64` timestamps in this unit.
    Timestamps(TimeUnit),
    /// `INT96` timestamps (Spark's default), converted to this unit (the
    /// one the file's arrow schema names) as arrow's reader converts them.
    Int96Timestamps(TimeUnit),
}

/// How a column's timestamps are stored: `INT64` in the output unit, or
/// `INT96` converted to this unit.
#[derive(Clone, Copy)]
enum StoredTimestamps {
    Int64,
    Int96(TimeUnit),
}

impl StoredTimestamps {
    /// For a column of physical type `physical` (`INT64` or `INT96`).
    fn of(physical: Type, int96_unit: TimeUnit) -> Self {
        if physical == Type::INT96 {
            Self::Int96(int96_unit)
        } else {
            Self::Int64
        }
    }

    /// Bytes per plain value.
    fn width(self) -> usize {
        match self {
            Self::Int64 => 8,
            Self::Int96(_) => 12,
        }
    }

    /// The value in `bytes` (of [`Self::width`]).
    #[inline]
    fn value(self, bytes: &[u8]) -> i64 {
        match self {
            Self::Int64 => i64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])),
            Self::Int96(unit) => int96_in(bytes.try_into().unwrap_or(&[0; 12]), unit),
        }
    }
}

/// An `INT96` timestamp (nanoseconds of the day as a little-endian `i64`,
/// then the Julian day as an `i32`) in `unit`, with the parquet crate's
/// conversion, so that both readers give the same values.
fn int96_in(bytes: &[u8; 12], unit: TimeUnit) -> i64 {
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut value = Int96::new();
    value.set_data(word(0), word(4), word(8));
    match unit {
        TimeUnit::Second => value.to_seconds(),
        TimeUnit::Millisecond => value.to_millis(),
        TimeUnit::Microsecond => value.to_micros(),
        TimeUnit::Nanosecond => value.to_nanos(),
    }
}

/// How the selective reader reads `chunk` (a column of arrow type
/// `arrow_type` in the file's schema), or `None` when it cannot: nested or
/// repeated columns, other physical types, encodings other than plain,
/// dictionary and the delta ones (`delta`).
pub(super) fn column_kind(
    chunk: &ColumnChunkMetaData,
    arrow_type: &DataType,
) -> Option<ColumnKind> {
    let descr = chunk.column_descr();
    if descr.max_rep_level() != 0 || descr.max_def_level() > 1 || descr.path().parts().len() != 1 {
        return None;
    }
    if !encodings_readable(chunk) {
        return None;
    }
    let string_type =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    match (descr.physical_type(), arrow_type) {
        (Type::BYTE_ARRAY, DataType::Dictionary(_, value)) if string_type(value) => {
            Some(ColumnKind::Strings)
        }
        (Type::BYTE_ARRAY, t) if string_type(t) => Some(ColumnKind::Strings),
        // The unit stored in the file: an embedded arrow schema may name
        // another one (pyarrow stores seconds as milliseconds).
        (Type::INT64, DataType::Timestamp(_, _)) => {
            let unit = match descr.logical_type_ref() {
                Some(LogicalType::Timestamp(t)) => match t.unit {
                    ParquetTimeUnit::MILLIS => TimeUnit::Millisecond,
                    ParquetTimeUnit::MICROS => TimeUnit::Microsecond,
                    ParquetTimeUnit::NANOS => TimeUnit::Nanosecond,
                },
                Some(_) => return None,
                None => match descr.converted_type() {
                    ConvertedType::TIMESTAMP_MILLIS => TimeUnit::Millisecond,
                    ConvertedType::TIMESTAMP_MICROS => TimeUnit::Microsecond,
                    _ => return None,
                },
            };
            Some(ColumnKind::Timestamps(unit))
        }
        // Arrow's reader gives nanoseconds unless the embedded arrow schema
        // names another unit; seconds are left to it.
        (Type::INT96, DataType::Timestamp(unit, _)) if *unit != TimeUnit::Second => {
            Some(ColumnKind::Int96Timestamps(*unit))
        }
        _ => None,
    }
}

/// Whether the selective reader decodes every encoding `chunk`'s pages
/// use: plain, dictionary and the delta ones (`delta`), the latter only
/// for the physical type it reads them of. Others (`BYTE_STREAM_SPLIT`
/// timestamps, say) are left to arrow's reader.
fn encodings_readable(chunk: &ColumnChunkMetaData) -> bool {
    let physical = chunk.column_descr().physical_type();
    chunk.encodings().all(|e| match e {
        Encoding::PLAIN | Encoding::RLE | Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY => {
            true
        }
        Encoding::DELTA_BINARY_PACKED => physical == Type::INT64,
        Encoding::DELTA_LENGTH_BYTE_ARRAY | Encoding::DELTA_BYTE_ARRAY => {
            physical == Type::BYTE_ARRAY
        }
        _ => false,
    })
}

/// Whether no row of `chunk` (a flat optional column of a row group of
/// `rows` rows) is null, from its definition levels, reading and
/// decompressing every page: the path of
/// [`super::null_proof::holds_no_null`] for chunks it cannot read by their
/// levels alone, which reports any damage. A chunk of an encoding the
/// selective reader does not decode is not proved (`false`): its row
/// group is then read whole by arrow's reader, which checks every row.
pub(super) fn holds_no_null_reading_pages<R: ChunkReader + 'static>(
    reader: R,
    chunk: &ColumnChunkMetaData,
    rows: usize,
    context: &str,
) -> Result<bool> {
    if !encodings_readable(chunk) {
        return Ok(false);
    }
    let mut column = ColumnPages::open(reader, chunk, rows, context, true)?;
    let mut seen = 0usize;
    while column.advance(every_row)? {
        let Some(page) = column.page() else { break };
        if page.levels.is_some_and(|l| l.count_present() != page.rows) {
            return Ok(false);
        }
        seen += page.rows;
    }
    if seen != rows {
        return Err(short(context));
    }
    Ok(true)
}

/// The rows (0-based, ascending) of the row group whose value in `chunk`
/// is one of `values` (sorted); nulls match nothing.
pub(super) fn matching_rows<R: ChunkReader + 'static>(
    reader: R,
    chunk: &ColumnChunkMetaData,
    rows: usize,
    values: &[String],
    context: &str,
) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    matching_rows_by_page(reader, chunk, rows, values, context, &mut out, |_| Ok(()))?;
    Ok(out)
}

/// [`matching_rows`] a page at a time: the matching rows of each page read
/// are pushed on `out`, and `page_read(out)` is called after each (it may
/// take them away), so that a consumer can start on the first rows while
/// the rest of a large chunk is matched (`super::row_stream`).
pub(super) fn matching_rows_by_page<R: ChunkReader + 'static>(
    reader: R,
    chunk: &ColumnChunkMetaData,
    rows: usize,
    values: &[String],
    context: &str,
    out: &mut Vec<u32>,
    mut page_read: impl FnMut(&mut Vec<u32>) -> Result<()>,
) -> Result<()> {
    let set = ValueSet::new(values);
    let wanted = |v: &[u8]| set.contains(v);
    let only_dictionary_pages = chunk.page_encoding_stats_mask().is_some_and(|mask| {
        mask.is_only(Encoding::RLE_DICTIONARY) || mask.is_only(Encoding::PLAIN_DICTIONARY)
    });
    // Whether no entry of the chunk's dictionary matches. Then a chunk all
    // of whose pages use it holds no matching row, and only its dictionary
    // page (and, without encoding statistics, its page headers) is read.
    // Else the pages whose own header says they use it are skipped without
    // being decompressed, and only pages a writer fell back to plain for
    // are read.
    let dictionary = ColumnPages::dictionary_alone(&reader, chunk, rows, context);
    // Per dictionary (by its number in the chunk): whether each entry
    // matches, and the one entry that does if only one does. The first
    // dictionary's are those used to rule the chunk out.
    let mut dictionary_matches: Option<(u32, Vec<bool>, Option<u32>)> = match &dictionary {
        Some(Dictionary::Strings(dict)) => {
            let matches = entries_matching(dict, &set);
            let one = one_match(&matches);
            Some((FIRST_DICTIONARY, matches, one))
        }
        _ => None,
    };
    let dictionary_misses = dictionary_matches
        .as_ref()
        .is_some_and(|(_, matches, _)| !matches.contains(&true));
    if dictionary_misses && (only_dictionary_pages || only_dictionary_encoded(&reader, chunk)) {
        return Ok(());
    }
    // The pages whose statistics in the chunk's column index (parquet-rs
    // and parquet-mr write one) admit a value; the others are skipped
    // without being decompressed.
    let admitted = pages_admitting(&reader, chunk, values);
    let wanted_page = |page: &PageAt| {
        let indexed = admitted
            .as_ref()
            .is_none_or(|a| a.get(page.number).copied().unwrap_or(true));
        let bounded = page.bounds.is_none_or(|b| {
            values
                .iter()
                .any(|v| b.min.as_slice() <= v.as_bytes() && v.as_bytes() <= b.max.as_slice())
        });
        // (A page after a second dictionary page uses that one.)
        let missed = dictionary_misses && page.dictionary_encoded && page.dictionaries == 1;
        every_row(page).filter(|_| indexed && bounded && !missed)
    };
    let mut column = ColumnPages::open(reader, chunk, rows, context, true)?;
    column.giant_from = CONDITION_GIANT_PAGE;
    // The dictionary is not decompressed and decoded a second time.
    column.decoded_first = dictionary;
    // Pages of prefixed strings (ids, written without a dictionary) are
    // matched as they are stored, when the values are few.
    let targets: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    if values.len() <= MATCHED_ENCODED_MOST {
        column.keep_prefixed_strings();
    }
    // A page's indices, when it has nulls (reused).
    let mut indices: Vec<u32> = Vec::new();
    let mut cursor = PlainCursor::default();
    while column.advance(wanted_page)? {
        let Some(page) = column.page() else { break };
        let first = page.first_row;
        match page.values {
            PageValues::Runs { data, width, runs } => {
                if dictionary_matches
                    .as_ref()
                    .is_none_or(|(id, _, _)| *id != page.dictionary_id)
                {
                    let dict = page.string_dictionary(context)?;
                    let matches = entries_matching(dict, &set);
                    // A chunk all of whose pages use this dictionary holds
                    // no matching row if no entry matches: its other pages
                    // need not be read.
                    if only_dictionary_pages && !matches.contains(&true) {
                        return Ok(());
                    }
                    let one = one_match(&matches);
                    dictionary_matches = Some((page.dictionary_id, matches, one));
                }
                let matches = dictionary_matches
                    .as_ref()
                    .map(|(_, m, _)| m.as_slice())
                    .unwrap_or(&[]);
                let one_match = dictionary_matches.as_ref().and_then(|(_, _, one)| *one);
                let present = page.levels.map_or(page.rows, |l| l.count_present());
                if parsed_len(runs) < present {
                    return Err(short(context));
                }
                match page.levels {
                    // The values are tested as they are unpacked, eight at
                    // a time, without a buffer of them all: whether each
                    // of a group matches is a mask made without a branch
                    // (which rows match is as good as random in an
                    // interleaved file), then a push per match. One
                    // matching entry (one bot, one conversation) is
                    // tested a word of eight indices at a time
                    // (`EntryRows`).
                    None => {
                        let out_of_range = match one_match {
                            Some(entry) => {
                                let mut sink = entry_rows(entry, matches.len(), first, out);
                                visit_runs(data, width, runs, &mut sink);
                                sink.out_of_range()
                            }
                            None => {
                                let matching =
                                    |i: u32| matches.get(i as usize).copied().unwrap_or(false);
                                let mut sink = MatchingRows::new(first, out, matching);
                                visit_runs(data, width, runs, &mut sink);
                                sink.largest() as usize >= matches.len()
                            }
                        };
                        if present > 0 && out_of_range {
                            return Err(bad_index(context));
                        }
                    }
                    Some(levels) => {
                        indices.clear();
                        visit_runs(data, width, runs, &mut indices);
                        if indices.iter().any(|&i| i as usize >= matches.len()) {
                            return Err(bad_index(context));
                        }
                        let mut value = 0usize;
                        for row in 0..page.rows {
                            if levels.is_present(row) {
                                if matches[indices[value] as usize] {
                                    out.push(first + row as u32);
                                }
                                value += 1;
                            }
                        }
                    }
                }
            }
            PageValues::PrefixedStrings { data, count } => {
                indices.clear();
                delta::prefixed_strings_matching(data, count, &targets, |i| indices.push(i as u32))
                    .map_err(|e| Error::data(context, e))?;
                match page.levels {
                    None => out.extend(indices.iter().map(|&i| first + i)),
                    Some(levels) => {
                        // The rows of the matching values, in order.
                        let mut matched = indices.iter().copied().peekable();
                        let mut value = 0u32;
                        for row in 0..page.rows {
                            if matched.peek().is_none() {
                                break;
                            }
                            if levels.is_present(row) {
                                if matched.peek() == Some(&value) {
                                    out.push(first + row as u32);
                                    matched.next();
                                }
                                value += 1;
                            }
                        }
                    }
                }
            }
            PageValues::Plain(data) => {
                cursor.reset();
                for row in 0..page.rows {
                    if page.is_present(row) {
                        let v = cursor.next_bytes(data).ok_or_else(|| short(context))?;
                        if wanted(v) {
                            out.push(first + row as u32);
                        }
                    }
                }
            }
        }
        page_read(out)?;
    }
    Ok(())
}

/// The number of a chunk's first dictionary page, as [`ColumnPages`]
/// counts the dictionaries it has read.
const FIRST_DICTIONARY: u32 = 1;

/// Whether each entry of `dict` is one of the values `set` holds.
fn entries_matching(dict: &StringDictionary, set: &ValueSet) -> Vec<bool> {
    (0..dict.len()).map(|i| set.contains(dict.get(i))).collect()
}

/// The one entry that `matches` says matches, if exactly one does.
fn one_match(matches: &[bool]) -> Option<u32> {
    let mut matching = (0..matches.len()).filter(|&i| matches[i]);
    match (matching.next(), matching.next()) {
        (Some(entry), None) => u32::try_from(entry).ok(),
        _ => None,
    }
}

/// The most values [`matching_rows`] compares a page of prefixed strings
/// with as it is stored: it keeps, per value, how much the string before
/// shares with it.
const MATCHED_ENCODED_MOST: usize = 8;

/// For each data page of `chunk` (in order), whether its statistics in
/// the chunk's column index admit one of `values`: not a page of nulls
/// only, and some value within its bounds (truncated bounds still bound).
/// `None` when the chunk has no column index or it does not read: then
/// every page is read.
fn pages_admitting<R: ChunkReader>(
    reader: &R,
    chunk: &ColumnChunkMetaData,
    values: &[String],
) -> Option<Vec<bool>> {
    let range = chunk.column_index_range()?;
    let length = usize::try_from(range.end.checked_sub(range.start)?).ok()?;
    if length > MAX_COLUMN_INDEX_BYTES {
        return None;
    }
    let bytes = reader.get_bytes(range.start, length).ok()?;
    let ColumnIndexMetaData::BYTE_ARRAY(index) =
        decode_column_index(&bytes, Type::BYTE_ARRAY).ok()?
    else {
        return None;
    };
    let pages = usize::try_from(index.num_pages()).ok()?;
    let admits = |page: usize| {
        !index.is_null_page(page)
            && values.iter().any(|v| {
                let v = v.as_bytes();
                index.min_value(page).is_none_or(|min| min <= v)
                    && index.max_value(page).is_none_or(|max| v <= max)
            })
    };
    Some((0..pages).map(admits).collect())
}

/// A column index longer than this is not read (one of a 20,000-row page
/// of 40-byte strings per 100 bytes or so: a chunk of 20,000 pages).
const MAX_COLUMN_INDEX_BYTES: usize = 1 << 21;

/// The rows among `rows` (0-based rows of the row group, ascending) whose
/// value in `chunk` is one of `values` (sorted); nulls match nothing. The
/// chunk is read at those rows alone ([`ColumnGather`]): for a few rows,
/// such as one conversation's, where [`matching_rows`] reads every row.
pub(super) fn matching_at<R: ChunkReader + 'static>(
    reader: R,
    chunk: &ColumnChunkMetaData,
    rows_in_group: usize,
    rows: &[u32],
    values: &[String],
    context: &str,
) -> Result<Vec<u32>> {
    MatchingAt::open(reader, chunk, rows_in_group, context)?.among(rows, values)
}

/// [`matching_at`] over rows that come a few at a time, ascending from
/// call to call: the chunk is read on from where the last call left it.
pub(super) struct MatchingAt {
    gather: ColumnGather,
    context: String,
}

impl MatchingAt {
    /// Opens `chunk`, a string column, to be read at a few rows.
    pub(super) fn open<R: ChunkReader + 'static>(
        reader: R,
        chunk: &ColumnChunkMetaData,
        rows_in_group: usize,
        context: &str,
    ) -> Result<Self> {
        let gather = ColumnGather::open(
            reader,
            chunk,
            ColumnKind::Strings,
            rows_in_group,
            None,
            context,
            false,
        )?;
        Ok(Self {
            gather,
            context: context.to_owned(),
        })
    }

    /// The rows among `rows` (after those of earlier calls) whose value is
    /// one of `values` (sorted).
    pub(super) fn among(&mut self, rows: &[u32], values: &[String]) -> Result<Vec<u32>> {
        let gathered = self.gather.next(rows)?;
        let strings = gathered
            .as_any()
            .downcast_ref::<StringViewArray>()
            .ok_or_else(|| {
                Error::data(
                    self.context.as_str(),
                    "internal error: strings read as another type",
                )
            })?;
        Ok(rows
            .iter()
            .zip(strings.iter())
            .filter(|(_, v)| {
                v.is_some_and(|v| values.binary_search_by(|x| x.as_str().cmp(v)).is_ok())
            })
            .map(|(&row, _)| row)
            .collect())
    }
}

/// Reads the values of one column chunk at given rows, a batch of rows at a
/// time, so that the output buffers stay small and are reused by the
/// allocator instead of being faulted in fresh for every row group.
pub(super) struct ColumnGather {
    column: ColumnPages,
    kind: ColumnKind,
    timezone: Option<Arc<str>>,
    /// The views of the current dictionary's entries, pointing into its
    /// buffer in the output (made once per dictionary and batch, then
    /// copied per row), and that buffer's index in the output.
    dictionary_views: Option<(u32, u32, Vec<u128>)>,
    /// Per selected row of a page: its value's position, or `NULL_ROW`.
    positions: Vec<u32>,
    /// Position in the current page's plain values.
    cursor: PlainCursor,
    /// A page's dictionary indices, when most of them are wanted.
    decoded: Vec<u32>,
}

/// The dictionary indices of a page's values, read by position: decoded in
/// bulk when the wanted positions are a large part of the page (a clustered
/// file selects whole row groups), else read one by one from the runs.
enum PageIndices<'a> {
    Decoded(&'a [u32]),
    Runs(HybridValues<'a>),
}

impl<'a> PageIndices<'a> {
    fn new(
        data: &'a [u8],
        width: u8,
        runs: &'a [Run],
        positions: &[u32],
        decoded: &'a mut Vec<u32>,
        context: &str,
    ) -> Result<Self> {
        let values = parsed_len(runs);
        if positions.len() * 4 < values {
            return Ok(Self::Runs(HybridValues::new(data, width, runs)));
        }
        decode_hybrid(data, width, values, decoded).map_err(|e| Error::data(context, e))?;
        Ok(Self::Decoded(decoded))
    }

    #[inline]
    fn get(&mut self, position: u32) -> Option<u32> {
        match self {
            Self::Decoded(d) => d.get(position as usize).copied(),
            Self::Runs(r) => r.get(position as usize),
        }
    }
}

impl ColumnGather {
    /// Opens column chunk `chunk` of a row group of `rows_in_group` rows.
    /// With `whole_chunk`, the chunk is read at once (the rows wanted are
    /// spread over most of its pages); else page by page, and the pages
    /// without a wanted row are never read (a few rows, such as one
    /// conversation's).
    pub(super) fn open<R: ChunkReader + 'static>(
        reader: R,
        chunk: &ColumnChunkMetaData,
        kind: ColumnKind,
        rows_in_group: usize,
        timezone: Option<Arc<str>>,
        context: &str,
        whole_chunk: bool,
    ) -> Result<Self> {
        let mut column = ColumnPages::open(reader, chunk, rows_in_group, context, whole_chunk)?;
        if let ColumnKind::Int96Timestamps(unit) = kind {
            column.int96_unit = unit;
        }
        Ok(Self {
            column,
            kind,
            timezone,
            dictionary_views: None,
            positions: Vec::new(),
            cursor: PlainCursor::default(),
            decoded: Vec::new(),
        })
    }

    /// The values at `rows` (0-based rows of the row group, ascending, and
    /// after every row of the previous calls), as a `Utf8View` or
    /// timestamp array.
    pub(super) fn next(&mut self, rows: &[u32]) -> Result<ArrayRef> {
        let context = self.column.context.clone();
        let context = context.as_str();
        let kind = self.kind;
        let mut nulls = NullsBuilder::new(rows.len());
        let mut strings = StringsBuilder::with_capacity(if kind == ColumnKind::Strings {
            rows.len()
        } else {
            0
        });
        let mut ints: Vec<i64> = Vec::with_capacity(if kind == ColumnKind::Strings {
            0
        } else {
            rows.len()
        });
        // Dictionary buffers are added to this batch's output afresh:
        // (dictionary, its buffer's index in the output).
        let mut shared_dictionary: Option<(u32, u32)> = None;
        let mut next = 0usize; // index into `rows` of the next row to emit
        while next < rows.len() {
            let wanted_from = rows[next];
            let covered =
                self.column.current.as_ref().is_some_and(|p| {
                    (p.first_row..p.first_row + p.rows as u32).contains(&wanted_from)
                });
            if !covered {
                let pending = &rows[next..];
                let last_in = |page: &PageAt| {
                    if !page.rows.contains(&wanted_from) {
                        return None;
                    }
                    let n = pending.partition_point(|&r| r < page.rows.end);
                    n.checked_sub(1).map(|i| pending[i])
                };
                // No row before this one is wanted again.
                self.column.first_wanted = wanted_from;
                if !self.column.advance(last_in)? {
                    return Err(short(context));
                }
                self.cursor.reset();
                continue;
            }
            // A page read in part is read on as far as the rows wanted.
            self.column.hold_rows(&rows[next..])?;
            let (selected, entries_wanted) = {
                let Some(page) = self.column.page() else {
                    return Err(short(context));
                };
                let end = page.first_row + page.rows as u32;
                let selected = rows[next..].partition_point(|&r| r < end);
                page.value_positions(&rows[next..next + selected], &mut self.positions);
                let entries_wanted = if self.column.holds_dictionary() {
                    page.entries_wanted(&self.positions)
                } else {
                    0
                };
                (selected, entries_wanted)
            };
            next += selected;
            self.column.decode_held(entries_wanted)?;
            let Some(page) = self.column.page() else {
                return Err(short(context));
            };
            let positions = &self.positions;
            nulls.append_positions(positions);
            match (&page.values, kind) {
                (PageValues::PrefixedStrings { .. }, _) => {
                    return Err(Error::data(
                        context,
                        "internal error: a page left encoded was gathered from",
                    ));
                }
                (PageValues::Runs { data, width, runs }, ColumnKind::Strings) => {
                    let dict = page.string_dictionary(context)?;
                    if shared_dictionary.is_none_or(|(id, _)| id != page.dictionary_id) {
                        let buffer = strings.add_buffer(dict.data.clone(), context)?;
                        shared_dictionary = Some((page.dictionary_id, buffer));
                    }
                    let buffer = shared_dictionary.map_or(0, |(_, b)| b);
                    let indices = (*data, *width, *runs);
                    // A few rows (one conversation's) make the views of
                    // their entries alone; more share the views of all
                    // entries, made once per dictionary and batch.
                    if rows.len().saturating_mul(SPARSE_ENTRIES) < dict.len() {
                        gather_entries(
                            indices,
                            positions,
                            &mut self.decoded,
                            |i| dict.view(i as usize, buffer),
                            0,
                            &mut strings.views,
                            context,
                        )?;
                    } else {
                        let stale = self
                            .dictionary_views
                            .as_ref()
                            .is_none_or(|(id, b, _)| (*id, *b) != (page.dictionary_id, buffer));
                        if stale {
                            self.dictionary_views =
                                Some((page.dictionary_id, buffer, dict.views(buffer)));
                        }
                        let views = self
                            .dictionary_views
                            .as_ref()
                            .map_or(&[][..], |(_, _, v)| v.as_slice());
                        gather_entries(
                            indices,
                            positions,
                            &mut self.decoded,
                            |i| views.get(i as usize).copied(),
                            0,
                            &mut strings.views,
                            context,
                        )?;
                    }
                }
                (
                    PageValues::Runs { data, width, runs },
                    ColumnKind::Timestamps(_) | ColumnKind::Int96Timestamps(_),
                ) => {
                    let dict = page.int_dictionary(context)?;
                    let indices = (*data, *width, *runs);
                    gather_entries(
                        indices,
                        positions,
                        &mut self.decoded,
                        |i| dict.get(i as usize),
                        0,
                        &mut ints,
                        context,
                    )?;
                }
                (PageValues::Plain(data), ColumnKind::Strings) => {
                    // Many rows of a page (a scan's) are views into the
                    // page's own buffer, all checked as UTF-8 at once when
                    // the page is ASCII; a few (a flow's) are copied out,
                    // not to hold a page for them.
                    let many = positions.len().saturating_mul(SHARED_PAGE_ROWS) >= page.rows;
                    let shared = match self
                        .column
                        .stored_plain_values()
                        .filter(|stored| many && stored.is_ascii())
                    {
                        Some(stored) => Some(strings.add_buffer(Buffer::from(stored), context)?),
                        None => None,
                    };
                    for &p in positions {
                        if p == NULL_ROW {
                            strings.views.push(0);
                            continue;
                        }
                        let p = held_position(p, page.values_skipped, context)?;
                        self.cursor.skip_to(data, p).ok_or_else(|| short(context))?;
                        let (start, end) =
                            self.cursor.next_range(data).ok_or_else(|| short(context))?;
                        match shared {
                            Some(buffer) => strings.views.push(view_at(data, start, end, buffer)),
                            None => strings.push(data, start, end, context)?,
                        }
                    }
                }
                (
                    PageValues::Plain(data),
                    ColumnKind::Timestamps(_) | ColumnKind::Int96Timestamps(_),
                ) => {
                    let stored = StoredTimestamps::of(self.column.physical, self.column.int96_unit);
                    if matches!(stored, StoredTimestamps::Int64) {
                        gather_int64(data, page.values_skipped, positions, &mut ints, context)?;
                    } else {
                        let width = stored.width();
                        for &p in positions {
                            if p == NULL_ROW {
                                ints.push(0);
                                continue;
                            }
                            let at = held_position(p, page.values_skipped, context)? * width;
                            let bytes = data.get(at..at + width).ok_or_else(|| short(context))?;
                            ints.push(stored.value(bytes));
                        }
                    }
                }
            }
        }
        let nulls = nulls.finish();
        Ok(match kind {
            ColumnKind::Strings => Arc::new(strings.finish(nulls)?),
            ColumnKind::Timestamps(unit) | ColumnKind::Int96Timestamps(unit) => {
                let values = ScalarBuffer::from(ints);
                let timezone = self.timezone.clone();
                match unit {
                    TimeUnit::Millisecond => Arc::new(
                        PrimitiveArray::<TimestampMillisecondType>::new(values, nulls)
                            .with_timezone_opt(timezone),
                    ),
                    TimeUnit::Microsecond => Arc::new(
                        PrimitiveArray::<TimestampMicrosecondType>::new(values, nulls)
                            .with_timezone_opt(timezone),
                    ),
                    TimeUnit::Nanosecond => Arc::new(
                        PrimitiveArray::<TimestampNanosecondType>::new(values, nulls)
                            .with_timezone_opt(timezone),
                    ),
                    TimeUnit::Second => return Err(Error::data(context, "unsupported unit")),
                }
            }
        })
    }
}

/// Appends the plain `INT64` value at each of `positions` (0 for
/// [`NULL_ROW`]) of a page's `data`, which holds the page's values from
/// the `skipped`-th on. One bounds check per value: a position before the
/// held values wraps around to past the end.
fn gather_int64(
    data: &[u8],
    skipped: usize,
    positions: &[u32],
    out: &mut Vec<i64>,
    context: &str,
) -> Result<()> {
    let held = data.len() / 8;
    out.reserve(positions.len());
    for &p in positions {
        if p == NULL_ROW {
            out.push(0);
            continue;
        }
        let i = (p as usize).wrapping_sub(skipped);
        if i >= held {
            held_position(p, skipped, context)?;
            return Err(short(context));
        }
        let mut value = [0u8; 8];
        value.copy_from_slice(&data[i * 8..i * 8 + 8]);
        out.push(i64::from_le_bytes(value));
    }
    Ok(())
}

/// Appends, for each of `positions`, the dictionary entry its index names
/// (`null` for [`NULL_ROW`]).
/// `runs` (with their `data` and bit width) are the page's parsed indices;
/// `decoded` is a buffer for them when they are decoded in bulk. `entry`
/// gives the entry of an index (`None` past the last one).
fn gather_entries<T: Copy>(
    (data, width, runs): (&[u8], u8, &[Run]),
    positions: &[u32],
    decoded: &mut Vec<u32>,
    entry: impl Fn(u32) -> Option<T>,
    null: T,
    out: &mut Vec<T>,
    context: &str,
) -> Result<()> {
    let mut indices = PageIndices::new(data, width, runs, positions, decoded, context)?;
    for &p in positions {
        if p == NULL_ROW {
            out.push(null);
            continue;
        }
        let index = indices.get(p).ok_or_else(|| short(context))?;
        out.push(entry(index).ok_or_else(|| bad_index(context))?);
    }
    Ok(())
}

/// A batch of fewer rows than a dictionary's entries over this factor
/// makes the views of its rows' entries alone, not of every entry.
const SPARSE_ENTRIES: usize = 8;

/// A batch's rows of a plain page of strings share the page's buffer when
/// they are at least one in this many of its rows; fewer are copied out.
const SHARED_PAGE_ROWS: usize = 16;

/// The position of a null row's value: it has none.
const NULL_ROW: u32 = u32::MAX;

fn short(context: &str) -> Error {
    Error::data(
        context,
        "a data page holds fewer values than its header says",
    )
}

fn bad_index(context: &str) -> Error {
    Error::data(context, "dictionary index out of range")
}

/// A column chunk's bytes, served at their file offsets to the page reader
/// (one read per chunk instead of one per page).
struct ChunkBytes {
    start: u64,
    bytes: Bytes,
}

impl ChunkBytes {
    fn slice(&self, start: u64, length: Option<usize>) -> parquet::errors::Result<Bytes> {
        let from = start
            .checked_sub(self.start)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o <= self.bytes.len())
            .ok_or_else(|| ParquetError::EOF(format!("offset {start} outside the column chunk")))?;
        let to = match length {
            None => self.bytes.len(),
            Some(n) => from
                .checked_add(n)
                .filter(|&e| e <= self.bytes.len())
                .ok_or_else(|| ParquetError::EOF("read past the column chunk".into()))?,
        };
        Ok(self.bytes.slice(from..to))
    }
}

impl Length for ChunkBytes {
    fn len(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

impl ChunkReader for ChunkBytes {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, Some(length))
    }
}

/// A dictionary page of strings, as the page holds them (plain encoding:
/// each entry's `u32` length, then its bytes), not copied: entry `i` is
/// `data[bounds[i] + 4..bounds[i + 1]]`. Views of its entries point into
/// `data`, which the output then shares.
struct StringDictionary {
    data: Buffer,
    bounds: Vec<u32>,
}

impl StringDictionary {
    fn len(&self) -> usize {
        self.bounds.len() - 1
    }

    /// Where entry `i` lies in `data`, or `None` past the last entry.
    #[inline]
    fn range(&self, i: usize) -> Option<std::ops::Range<usize>> {
        Some(*self.bounds.get(i)? as usize + 4..*self.bounds.get(i + 1)? as usize)
    }

    /// Entry `i` (empty past the last entry).
    fn get(&self, i: usize) -> &[u8] {
        self.range(i).map_or(&[], |r| &self.data[r])
    }

    /// The view of entry `i` as a string of buffer `buffer`, or `None`
    /// past the last entry.
    #[inline]
    fn view(&self, i: usize, buffer: u32) -> Option<u128> {
        let r = self.range(i)?;
        Some(view_at(&self.data, r.start, r.end, buffer))
    }

    /// The view of every entry, as a string of buffer `buffer`.
    fn views(&self, buffer: u32) -> Vec<u128> {
        (0..self.len())
            .map(|i| self.view(i, buffer).unwrap_or(0))
            .collect()
    }
}

/// A dictionary page of timestamps, as the page holds them: each entry
/// is read where it lies (most are never wanted when a query selects few
/// rows).
struct IntDictionary {
    data: Bytes,
    stored: StoredTimestamps,
}

impl IntDictionary {
    fn len(&self) -> usize {
        self.data.len() / self.stored.width()
    }

    /// Entry `i`, or `None` past the last one.
    #[inline]
    fn get(&self, i: usize) -> Option<i64> {
        let width = self.stored.width();
        let at = i.checked_mul(width)?;
        let bytes = self.data.get(at..at.checked_add(width)?)?;
        Some(self.stored.value(bytes))
    }
}

enum Dictionary {
    Strings(StringDictionary),
    Ints(IntDictionary),
}

/// The values of one data page.
enum PageValues<'a> {
    /// Plain-encoded values.
    Plain(&'a [u8]),
    /// Dictionary indices, one per non-null value, to be read by position.
    Runs {
        data: &'a [u8],
        width: u8,
        runs: &'a [Run],
    },
    /// The `count` values of a `DELTA_BYTE_ARRAY` page, not decoded: only
    /// [`matching_rows`] asks for these
    /// ([`ColumnPages::keep_prefixed_strings`]).
    PrefixedStrings { data: &'a [u8], count: usize },
}

/// One decoded data page: its rows, definition levels and values.
struct DataPage<'a> {
    first_row: u32,
    rows: usize,
    /// The present rows, when the column is nullable and some row is not.
    levels: Option<&'a PresentBits>,
    values: PageValues<'a>,
    dictionary: Option<&'a Dictionary>,
    /// Which dictionary page of the chunk `dictionary` is (a writer may
    /// start a new one), counted from [`FIRST_DICTIONARY`].
    dictionary_id: u32,
    /// How many of the page's first values `values` leaves out (see
    /// `CurrentPage::values_skipped`).
    values_skipped: usize,
}

impl DataPage<'_> {
    /// For each of `selected` (rows of the row group inside this page,
    /// ascending), the position of its value among the page's values, or
    /// [`NULL_ROW`].
    fn value_positions(&self, selected: &[u32], out: &mut Vec<u32>) {
        out.clear();
        let rows = selected.iter().map(|&r| (r - self.first_row) as usize);
        match self.levels {
            None => out.extend(rows.map(|r| r as u32)),
            Some(levels) => levels.positions(rows, NULL_ROW, out),
        }
    }

    /// How many entries of the dictionary the values at `positions` name:
    /// one more than the largest index among them (0 for plain values).
    fn entries_wanted(&self, positions: &[u32]) -> usize {
        let PageValues::Runs { data, width, runs } = self.values else {
            return 0;
        };
        let mut indices = HybridValues::new(data, width, runs);
        positions
            .iter()
            .filter(|&&p| p != NULL_ROW)
            .filter_map(|&p| indices.get(p as usize))
            .max()
            .map_or(0, |i| i as usize + 1)
    }

    fn string_dictionary(&self, context: &str) -> Result<&StringDictionary> {
        match self.dictionary {
            Some(Dictionary::Strings(d)) => Ok(d),
            _ => Err(Error::data(
                context,
                "dictionary-encoded page without a dictionary",
            )),
        }
    }

    fn int_dictionary(&self, context: &str) -> Result<&IntDictionary> {
        match self.dictionary {
            Some(Dictionary::Ints(d)) => Ok(d),
            _ => Err(Error::data(
                context,
                "dictionary-encoded page without a dictionary",
            )),
        }
    }

    #[inline]
    fn is_present(&self, row: usize) -> bool {
        self.levels.is_none_or(|l| l.is_present(row))
    }
}

/// Where the current data page's values are, in `ColumnPages::buf`.
struct CurrentPage {
    first_row: u32,
    rows: usize,
    /// Where the values start in `ColumnPages::buf`, or, for a page
    /// decoded into the plain layout, `None`: they are
    /// `ColumnPages::decoded_plain`.
    values_at: Option<usize>,
    layout: ValuesLayout,
    /// The row before which the buffer holds the page's values (the
    /// page's end unless it was read in part).
    rows_held: u32,
    /// For a delta-encoded page, its encoding and where its values start
    /// in `ColumnPages::buf`: decoded as far as `rows_held`, and on to
    /// the end when a later row is wanted.
    delta: Option<(Encoding, usize)>,
    /// How many of the page's first values a page decoded into
    /// `ColumnPages::decoded_plain` leaves out: those of the rows before
    /// `ColumnPages::first_wanted` when it was read.
    values_skipped: usize,
}

#[derive(Clone, Copy)]
enum ValuesLayout {
    Plain,
    /// Parsed into `ColumnPages::runs`; the bit width is the first byte.
    Runs(u8),
    /// A `DELTA_BYTE_ARRAY` page of this many values, left encoded.
    PrefixedStrings(usize),
}

/// The pages of one column chunk, read in order.
struct ColumnPages {
    pages: Box<dyn PageReader>,
    nullable: bool,
    physical: Type,
    /// The unit `INT96` values are converted to.
    int96_unit: TimeUnit,
    dictionary: Option<Dictionary>,
    dictionary_id: u32,
    context: String,
    next_row: u32,
    rows: usize,
    /// The current page's buffer, levels and indices (reused).
    buf: Bytes,
    /// A delta-encoded page's values in the plain layout (reused).
    decoded_plain: Vec<u8>,
    present: PresentBits,
    /// Whether the current page has levels: nullable, and not all 1.
    page_has_levels: bool,
    /// The current page's dictionary indices, parsed into runs.
    runs: Vec<Run>,
    current: Option<CurrentPage>,
    /// The chunk's dictionary page, when it is decoded only as far as the
    /// entries of the rows wanted reach.
    held: Option<HeldDictionary>,
    /// The chunk's first dictionary page, decoded already
    /// ([`ColumnPages::dictionary_alone`]): the page reader steps over it.
    decoded_first: Option<Dictionary>,
    /// Where the next page is, while this reader follows the pages itself
    /// (page by page, snappy, zstd or not compressed), so that it can read a
    /// page in part.
    walk: Option<PageWalk>,
    /// The current page, when it was read in part.
    partial: Option<PartialPage>,
    /// A page too large to decompress whole, served in pieces.
    giant: Option<GiantPage>,
    /// The decompressed size from which a plain page is a [`GiantPage`]:
    /// [`GIANT_PAGE`], or [`CONDITION_GIANT_PAGE`] for a condition's column.
    giant_from: usize,
    /// How many data pages `advance` has come to.
    data_pages: usize,
    /// Whether pages may be read in part (the chunk is read page by page).
    in_part: bool,
    /// Whether `DELTA_BYTE_ARRAY` pages are left encoded
    /// ([`ColumnPages::keep_prefixed_strings`]).
    prefixed_kept: bool,
    /// For a zstd or snappy chunk, whose pages the crate's reader hands out
    /// as stored: how to decompress them (`stored_pages`).
    stored: Option<StoredPages>,
    /// The first row still wanted, when a gather wants no row before it
    /// again (rows are gathered in ascending order): a delta-encoded page
    /// is written out into the plain layout from that row's value on, not
    /// from its first (a flow's rows, in the middle of a page that holds a
    /// whole row group, as DuckDB writes them). 0 for readers that read
    /// every row.
    first_wanted: u32,
}

/// Bytes of the largest column chunk read in one piece. A row group of
/// millions of rows has chunks of tens of megabytes, which read whole would
/// each take as much fresh memory (faulted in and zeroed by the kernel);
/// read a page at a time, they reuse a few page-sized buffers. On a 10M-row
/// file of one row group, `conversations` spent 40% of its time zeroing
/// such memory. (Tests use 64 KiB, so that their small files take both
/// ways.)
const WHOLE_CHUNK_MOST: u64 = if cfg!(test) { 64 << 10 } else { 16 << 20 };

/// The decompressed size from which a plain data page of a chunk read
/// whole is served in pieces of [`GIANT_PIECE_ROWS`] rows through a
/// [`PageStream`] rather than decompressed whole: writers' pages are about
/// 1 MiB, but fastparquet writes a row group's column chunk, up to 50M
/// rows, as one page. (Tests use 256 KiB.)
const GIANT_PAGE: usize = if cfg!(test) { 256 << 10 } else { 16 << 20 };

/// [`GIANT_PAGE`] for the column a condition is matched on, whose rows
/// the gathers wait for. A file of one row group hands them over a page
/// at a time ([`super::row_stream`]), and fastparquet writes each column
/// chunk as one page: at 1M events, 7–21 MB of strings. Matched whole, the
/// team's column of `usage` (15 MB) left the other core idle until every
/// row was tested; in pieces, the first rows reach the gathers at once.
/// `usage` over fastparquet's 1M-event file of `compare_duckdb.py`,
/// medians of 21 alternated runs, 127.8 → 119.6 ms, `conversations` 56.9
/// → 53.5 ms. The other columns' pages stay whole up to [`GIANT_PAGE`]:
/// streamed from 4 MiB too, `conversations` took 58.9 ms, as the pieces
/// are decoded by this crate's snappy decoder, slower than `snap` over a
/// whole page. (Tests use 128 KiB, below [`GIANT_PAGE`]'s 256 KiB, so that
/// their files take both ways.)
const CONDITION_GIANT_PAGE: usize = if cfg!(test) { 128 << 10 } else { 4 << 20 };

/// The rows of a piece of a [`GiantPage`]: some 100 KB of ids. A piece
/// is decoded, walked to its end, copied out of the stream's window and
/// walked again by the gathers; small enough, all of that happens in
/// the core's cache. fastparquet's files of `compare_duckdb.py`,
/// alternated runs, medians, pieces of 65,536 rows (a few megabytes of
/// ids) against 4,096:
/// - 10M events (5 runs): `usage` 1,074 → 934 ms, `conversations` 482 →
///   433 ms, `insights` 433 → 404 ms; peak memory the same or less;
/// - 1M events (11 runs): `usage` 114.9 → 96.5 ms, `conversations` 55.2 →
///   49.2 ms, mid-file `flow` 37.0 → 33.9 ms.
///
/// Pieces of 2,048 rows were no faster, and of 8,192 a little slower.
const GIANT_PIECE_ROWS: usize = if cfg!(test) { 1_000 } else { 1 << 12 };

/// The rows from a giant page's start within which the rows wanted (a
/// flow's first conversation's) make the page read in part, as a prefix,
/// rather than in pieces.
const GIANT_PREFIX_ROWS: u32 = if cfg!(test) { 1_000 } else { 1 << 16 };

/// A plain data page of at least [`GIANT_PAGE`] bytes, served as pieces
/// of [`GIANT_PIECE_ROWS`] rows, each a page of its own to the readers
/// (`ColumnPages::advance`), decoded forward through a [`PageStream`].
struct GiantPage {
    stream: PageStream,
    /// The page's definition levels, for a nullable column.
    present: Option<PresentBits>,
    /// The page's rows, and how many the pieces so far hold.
    rows: usize,
    served: usize,
    /// Where the next piece's values start in the page.
    values_at: usize,
    /// The width of a value; 0 for strings (a length, then the bytes).
    width: usize,
    /// The page's number among the chunk's data pages, and its bounds.
    number: usize,
    bounds: Option<PageBounds>,
}

impl GiantPage {
    /// Where the next `values` values lie in the page (from, to), the
    /// stream decoded at least that far; the page's reading moves past
    /// them.
    fn next_values(&mut self, values: usize, context: &str) -> Result<(usize, usize)> {
        let start = self.values_at;
        if self.width > 0 {
            let end = values
                .checked_mul(self.width)
                .and_then(|n| n.checked_add(start))
                .filter(|&end| end <= self.stream.len())
                .ok_or_else(|| short(context))?;
            self.stream.bytes(start, end, context)?;
            self.values_at = end;
            return Ok((start, end));
        }
        // Strings: walked through the stream from the piece's first value,
        // which it keeps, asking twice as far when a value lies past the
        // bytes held.
        let page_len = self.stream.len();
        let mut cursor = PlainCursor::default();
        let mut ask = 64 << 10;
        while cursor.index < values {
            let data = self.stream.bytes(
                start,
                start.saturating_add(cursor.pos).saturating_add(ask),
                context,
            )?;
            while cursor.index < values && cursor.next_range(data).is_some() {}
            if cursor.index < values {
                if start + data.len() >= page_len {
                    return Err(short(context));
                }
                ask = ask.max((data.len() - cursor.pos).saturating_mul(2));
            }
        }
        let at = start + cursor.pos;
        self.values_at = at;
        Ok((start, at))
    }
}

impl ColumnPages {
    /// Opens the pages of `chunk`, read from `reader` in one piece
    /// (`whole_chunk`, unless it is larger than [`WHOLE_CHUNK_MOST`]) or one
    /// page at a time. Only in page-by-page mode (`!whole_chunk`: a few
    /// rows wanted) are pages read in part.
    fn open<R: ChunkReader + 'static>(
        reader: R,
        chunk: &ColumnChunkMetaData,
        rows: usize,
        context: &str,
        whole_chunk: bool,
    ) -> Result<Self> {
        let mut held = None;
        let walk;
        let at_once = whole_chunk && chunk.byte_range().1 <= WHOLE_CHUNK_MOST;
        let as_is = stored_pages::stored_as_is(chunk);
        let reader_chunk = as_is.as_ref().map_or(chunk, |(c, _)| c);
        let pages: Box<dyn PageReader> = if at_once {
            let (start, length) = chunk.byte_range();
            let length = usize::try_from(length)
                .map_err(|_| Error::data(context, "column chunk too large"))?;
            let bytes = reader
                .get_bytes(start, length)
                .map_err(|e| Error::data_from(context, e))?;
            let bytes = Arc::new(ChunkBytes { start, bytes });
            walk = PageWalk::of(&bytes, chunk);
            Box::new(
                SerializedPageReader::new(bytes, reader_chunk, rows, None)
                    .map_err(|e| Error::data_from(context, e))?,
            )
        } else {
            let reader = Arc::new(reader);
            walk = PageWalk::of(&reader, chunk);
            if !whole_chunk {
                held = walk.as_ref().and_then(|w| HeldDictionary::of(w, chunk));
            }
            Box::new(
                SerializedPageReader::new(reader, reader_chunk, rows, None)
                    .map_err(|e| Error::data_from(context, e))?,
            )
        };
        let mut column = Self::over(pages, chunk, rows, context);
        column.stored = as_is.map(|(_, stored)| stored);
        column.held = held;
        column.walk = walk;
        column.in_part = !whole_chunk;
        Ok(column)
    }

    /// The dictionary of `chunk` alone, read from the bytes its footer
    /// places before the first data page, without reading the data pages.
    /// `None` if the chunk has no dictionary page or those bytes do not
    /// hold one as their first page: the caller then reads the whole
    /// chunk, which reports any damage.
    fn dictionary_alone<R: ChunkReader>(
        reader: &R,
        chunk: &ColumnChunkMetaData,
        rows: usize,
        context: &str,
    ) -> Option<Dictionary> {
        let start = u64::try_from(chunk.dictionary_page_offset()?).ok()?;
        let end = u64::try_from(chunk.data_page_offset()).ok()?;
        let (chunk_start, chunk_length) = chunk.byte_range();
        if start != chunk_start || end <= start || end - start > chunk_length {
            return None;
        }
        let bytes = reader
            .get_bytes(start, usize::try_from(end - start).ok()?)
            .ok()?;
        let bytes = Arc::new(ChunkBytes { start, bytes });
        let as_is = stored_pages::stored_as_is(chunk);
        let reader_chunk = as_is.as_ref().map_or(chunk, |(c, _)| c);
        let pages = SerializedPageReader::new(bytes, reader_chunk, rows, None).ok()?;
        let mut column = Self::over(Box::new(pages), chunk, rows, context);
        let mut page = column.pages.get_next_page().ok()??;
        if let Some((_, stored)) = as_is {
            page = stored_pages::decompressed_page(page, None, stored, context).ok()?;
        }
        match page {
            Page::DictionaryPage {
                buf,
                num_values,
                encoding: Encoding::PLAIN | Encoding::PLAIN_DICTIONARY,
                ..
            } => column
                .read_dictionary(buf, num_values as usize, context)
                .ok(),
            _ => None,
        }
    }

    /// The pages read by `pages`, of `chunk`.
    fn over(
        pages: Box<dyn PageReader>,
        chunk: &ColumnChunkMetaData,
        rows: usize,
        context: &str,
    ) -> Self {
        Self {
            pages,
            nullable: chunk.column_descr().max_def_level() == 1,
            physical: chunk.column_descr().physical_type(),
            int96_unit: TimeUnit::Nanosecond,
            dictionary: None,
            dictionary_id: 0,
            context: context.to_owned(),
            next_row: 0,
            rows,
            buf: Bytes::new(),
            decoded_plain: Vec::new(),
            present: PresentBits::default(),
            page_has_levels: false,
            runs: Vec::new(),
            current: None,
            held: None,
            decoded_first: None,
            walk: None,
            partial: None,
            giant: None,
            giant_from: GIANT_PAGE,
            data_pages: 0,
            in_part: false,
            prefixed_kept: false,
            stored: None,
            first_wanted: 0,
        }
    }

    /// From now on, a `DELTA_BYTE_ARRAY` page is given as it is stored
    /// ([`PageValues::PrefixedStrings`]) instead of decoded into the plain
    /// layout: for [`matching_rows`], which compares it with a few values
    /// without writing its strings out.
    fn keep_prefixed_strings(&mut self) {
        self.prefixed_kept = true;
    }

    /// The next data page, or `None` at the end of the chunk. `wanted`
    /// gives the last row wanted in a data page's row range (and its
    /// number among the chunk's data pages), if any: a page
    /// without one is skipped without being decompressed (the dictionary
    /// page is always read, or held), and a plain page may be read only as
    /// far as that row ([`ColumnPages::read_part`]).
    fn advance(&mut self, wanted: impl Fn(&PageAt) -> Option<u32>) -> Result<bool> {
        self.current = None;
        self.partial = None;
        let context = || self.context.clone();
        loop {
            if let Some(mut giant) = self.giant.take() {
                if giant.served < giant.rows {
                    let from = giant.served;
                    let rows = GIANT_PIECE_ROWS.min(giant.rows - from);
                    giant.served += rows;
                    let first = self.next_row;
                    let last = wanted(&PageAt {
                        rows: first..first.saturating_add(rows as u32),
                        number: giant.number,
                        bounds: giant.bounds.as_ref(),
                        dictionary_encoded: false,
                        dictionaries: self.dictionary_id,
                    });
                    let values = match &giant.present {
                        Some(whole) => {
                            self.present.copy_range(whole, from, rows);
                            self.present.count_present()
                        }
                        None => rows,
                    };
                    let (start, end) = giant.next_values(values, &context())?;
                    if last.is_none() {
                        self.next_row = first.saturating_add(rows as u32);
                        self.giant = Some(giant);
                        continue;
                    }
                    let buf = giant.stream.piece(start, end, &context())?;
                    self.giant = Some(giant);
                    #[cfg(test)]
                    tests::GIANT_PIECES.with(|n| n.set(n.get() + 1));
                    self.data_page(buf, 0, rows, Encoding::PLAIN, last)?;
                    return Ok(true);
                }
            }
            // The last row wanted of the next data page, when known.
            let mut last_wanted_of_page = None;
            let meta = self
                .pages
                .peek_next_page()
                .map_err(|e| Error::data_from(context(), e))?;
            // The page as this reader's own header reader sees it, while
            // it follows the pages itself; it stops at any disagreement.
            let own = self.walk.as_ref().and_then(PageWalk::header);
            let agrees = own_header_agrees(own.as_ref(), meta.as_ref());
            if !agrees {
                self.walk = None;
            }
            if let Some(meta) = meta {
                // A dictionary page decoded already (the chunk's first),
                // or held to be decoded as far as the rows wanted reach:
                // the page reader steps over it.
                if meta.is_dict {
                    let stand_in = if self.dictionary_id == 0 && self.decoded_first.is_some() {
                        self.held = None;
                        self.decoded_first.take()
                    } else if self.held.as_ref().is_some_and(|h| !h.skipped) {
                        Some(self.empty_dictionary()?)
                    } else {
                        None
                    };
                    if let Some(dictionary) = stand_in {
                        self.pages
                            .skip_next_page()
                            .map_err(|e| Error::data_from(context(), e))?;
                        step_walk(&mut self.walk, own.as_ref());
                        if let Some(held) = &mut self.held {
                            held.skipped = true;
                        }
                        self.dictionary = Some(dictionary);
                        self.dictionary_id += 1;
                        continue;
                    }
                }
                if !meta.is_dict {
                    let rows = meta.num_rows.or(meta.num_levels).unwrap_or(0) as u32;
                    let range = self.next_row..self.next_row.saturating_add(rows);
                    let last_wanted = wanted(&PageAt {
                        rows: range.clone(),
                        number: self.data_pages,
                        bounds: own.as_ref().and_then(|(h, _)| h.bounds.as_ref()),
                        dictionary_encoded: own.as_ref().is_some_and(|(h, _)| h.uses_dictionary()),
                        dictionaries: self.dictionary_id,
                    });
                    self.data_pages += 1;
                    last_wanted_of_page = last_wanted;
                    if rows > 0 && last_wanted.is_none() {
                        self.pages
                            .skip_next_page()
                            .map_err(|e| Error::data_from(context(), e))?;
                        step_walk(&mut self.walk, own.as_ref());
                        self.next_row = self.next_row.saturating_add(rows);
                        continue;
                    }
                    // A giant page is read in pieces, forward, but for rows
                    // wanted only within its first `GIANT_PREFIX_ROWS` (a
                    // flow's first conversation), read in part as a prefix,
                    // and for timestamps read in part, whose snappy
                    // elements before the rows are stepped over rather
                    // than decoded (`snappy_stride`; mid-file flow over
                    // fastparquet's snappy file, 9 alternated runs: median
                    // 370 → 356 ms). Strings must be decoded to be walked
                    // anyway, and a piece holds only its own.
                    let read_in_part_first = self.in_part
                        && (self.physical != Type::BYTE_ARRAY
                            || last_wanted.is_some_and(|last| {
                                last.saturating_sub(range.start) < GIANT_PREFIX_ROWS
                            }));
                    if let Some((header, header_len)) = own.as_ref().filter(|_| !read_in_part_first)
                    {
                        let number = self.data_pages - 1;
                        if let Some(giant) = self.giant_of(header, *header_len, number)? {
                            self.pages
                                .skip_next_page()
                                .map_err(|e| Error::data_from(context(), e))?;
                            step_walk(&mut self.walk, own.as_ref());
                            self.giant = Some(giant);
                            continue;
                        }
                    }
                    if let (Some(last), Some((header, header_len))) = (last_wanted, &own) {
                        if let Some((page, levels, values)) = self.part_of(header, *header_len) {
                            self.pages
                                .skip_next_page()
                                .map_err(|e| Error::data_from(context(), e))?;
                            step_walk(&mut self.walk, own.as_ref());
                            self.read_part(page, levels, values, range, last)?;
                            return Ok(true);
                        }
                    }
                }
            }
            let page = self
                .pages
                .get_next_page()
                .map_err(|e| Error::data_from(context(), e))?;
            step_walk(&mut self.walk, own.as_ref());
            let Some(mut page) = page else {
                return Ok(false);
            };
            if let Some(stored) = self.stored {
                // The page's size as its header gives it, when this
                // reader's own header reader read the same header.
                let size = own
                    .as_ref()
                    .filter(|_| agrees)
                    .and_then(|(header, _)| usize::try_from(header.uncompressed_size).ok());
                page = stored_pages::decompressed_page(page, size, stored, &context())?;
            }
            match page {
                Page::DictionaryPage {
                    buf,
                    num_values,
                    encoding,
                    ..
                } => {
                    if !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
                        return Err(Error::data(
                            context(),
                            format!("dictionary page encoding {encoding}"),
                        ));
                    }
                    self.dictionary =
                        Some(self.read_dictionary(buf, num_values as usize, &context())?);
                    self.dictionary_id += 1;
                    // A dictionary page read whole replaces a held one (a
                    // writer may start a new dictionary within a chunk).
                    self.held = None;
                }
                Page::DataPage {
                    buf,
                    num_values,
                    encoding,
                    def_level_encoding,
                    ..
                } => {
                    let rows = num_values as usize;
                    let mut pos = 0usize;
                    if self.nullable {
                        if def_level_encoding != Encoding::RLE {
                            return Err(Error::data(
                                context(),
                                format!("definition level encoding {def_level_encoding}"),
                            ));
                        }
                        let len = buf.get(0..4).ok_or_else(|| short(&context()))?;
                        let len = u32::from_le_bytes(len.try_into().unwrap_or([0; 4])) as usize;
                        let levels = buf
                            .get(4..4usize.saturating_add(len))
                            .ok_or_else(|| short(&context()))?;
                        self.present
                            .decode(levels, rows)
                            .map_err(|e| Error::data(context(), e))?;
                        pos = 4 + len;
                    }
                    self.data_page(buf, pos, rows, encoding, last_wanted_of_page)?;
                    return Ok(true);
                }
                Page::DataPageV2 {
                    buf,
                    num_values,
                    num_rows,
                    encoding,
                    def_levels_byte_len,
                    rep_levels_byte_len,
                    ..
                } => {
                    let rows = num_rows as usize;
                    if num_values != num_rows {
                        return Err(Error::data(
                            context(),
                            "a flat column's page has more values than rows",
                        ));
                    }
                    let start = rep_levels_byte_len as usize;
                    let end = start.saturating_add(def_levels_byte_len as usize);
                    if self.nullable {
                        let levels = buf.get(start..end).ok_or_else(|| short(&context()))?;
                        self.present
                            .decode(levels, rows)
                            .map_err(|e| Error::data(context(), e))?;
                    }
                    self.data_page(buf, end, rows, encoding, last_wanted_of_page)?;
                    return Ok(true);
                }
            }
        }
    }

    /// Makes the page in `buf` (values from `values_at`) the current one;
    /// a delta-encoded page is decoded only as far as row `last`, when
    /// given (see [`ColumnPages::hold_rows`]), and written out from the
    /// value of row `first_wanted` on.
    fn data_page(
        &mut self,
        buf: Bytes,
        values_at: usize,
        rows: usize,
        encoding: Encoding,
        last: Option<u32>,
    ) -> Result<()> {
        let context = self.context.as_str();
        let first_row = self.next_row;
        if rows > self.rows.saturating_sub(first_row as usize) {
            return Err(Error::data(
                context,
                "pages hold more rows than the row group",
            ));
        }
        self.next_row += rows as u32;
        self.page_has_levels = self.nullable && !self.present.all_present();
        let present = if self.page_has_levels {
            self.present.count_present()
        } else {
            rows
        };
        self.buf = buf;
        let values = self.buf.get(values_at..).ok_or_else(|| short(context))?;
        // Rows held once the page is read: all of them, but for a delta
        // page only those up to `last`.
        let mut held = rows;
        let mut delta = None;
        let mut values_skipped = 0;
        // The values' layout, and where they are (`None`: decoded into
        // `decoded_plain`).
        let (layout, values_at) = match encoding {
            Encoding::PLAIN => {
                let width = match self.physical {
                    Type::INT64 | Type::INT96 => {
                        StoredTimestamps::of(self.physical, self.int96_unit).width()
                    }
                    _ => 0,
                };
                if values.len() < present.saturating_mul(width) {
                    return Err(short(context));
                }
                (ValuesLayout::Plain, Some(values_at))
            }
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY => {
                if self.dictionary.is_none() {
                    return Err(Error::data(
                        context,
                        "dictionary-encoded page without a dictionary",
                    ));
                }
                let (&width, indices) = values.split_first().ok_or_else(|| short(context))?;
                parse_runs(indices, width, present, &mut self.runs)
                    .map_err(|e| Error::data(context, e))?;
                (ValuesLayout::Runs(width), Some(values_at))
            }
            Encoding::DELTA_BYTE_ARRAY
                if self.prefixed_kept && self.physical == Type::BYTE_ARRAY =>
            {
                (ValuesLayout::PrefixedStrings(present), Some(values_at))
            }
            Encoding::DELTA_BINARY_PACKED
            | Encoding::DELTA_LENGTH_BYTE_ARRAY
            | Encoding::DELTA_BYTE_ARRAY => {
                // Decoded into the plain layout (see `delta`), as far as
                // the last row wanted: a few rows of a page (a flow's) do
                // not pay for the whole page.
                held = last.map_or(rows, |l| {
                    (l.saturating_sub(first_row) as usize + 1).min(rows)
                });
                let skipped_rows = (self.first_wanted.saturating_sub(first_row) as usize).min(held);
                values_skipped = self.values_before(skipped_rows);
                let keep = self.values_before(held);
                self.decode_delta(encoding, values_at, present, values_skipped..keep)?;
                delta = (held < rows).then_some((encoding, values_at));
                (ValuesLayout::Plain, None)
            }
            other => return Err(Error::data(context, format!("data page encoding {other}"))),
        };
        self.current = Some(CurrentPage {
            first_row,
            rows,
            values_at,
            layout,
            rows_held: first_row + held as u32,
            delta,
            values_skipped,
        });
        Ok(())
    }

    /// How many values the page whose levels `present` holds (when the
    /// column is nullable) stores before its row `row`: its rows before,
    /// less the null ones.
    fn values_before(&self, row: usize) -> usize {
        if self.nullable {
            self.present.present_before(row)
        } else {
            row
        }
    }

    /// Decodes the values `wanted` of the `present` values of the delta
    /// page held in `buf` (values from `values_at`) into `decoded_plain`.
    fn decode_delta(
        &mut self,
        encoding: Encoding,
        values_at: usize,
        present: usize,
        wanted: std::ops::Range<usize>,
    ) -> Result<()> {
        let context = self.context.as_str();
        let values = self.buf.get(values_at..).ok_or_else(|| short(context))?;
        let stored = DeltaValues {
            encoding,
            physical: self.physical,
            count: present,
        };
        stored
            .decode(values, wanted, &mut self.decoded_plain)
            .map_err(|e| Error::data(context, e))
    }

    /// The current page's plain values, from the first, as the page's
    /// buffer holds them (`None` for values in another layout or decoded
    /// into `decoded_plain`).
    fn stored_plain_values(&self) -> Option<Bytes> {
        let current = self.current.as_ref()?;
        match (current.layout, current.values_at) {
            (ValuesLayout::Plain, Some(at)) if at <= self.buf.len() => Some(self.buf.slice(at..)),
            _ => None,
        }
    }

    /// The current data page (after [`ColumnPages::advance`] returned true).
    fn page(&self) -> Option<DataPage<'_>> {
        let current = self.current.as_ref()?;
        let values = match current.values_at {
            Some(at) => &self.buf[at..],
            None => &self.decoded_plain[..],
        };
        let values = match current.layout {
            ValuesLayout::Plain => PageValues::Plain(values),
            ValuesLayout::Runs(width) => PageValues::Runs {
                data: &values[1..],
                width,
                runs: &self.runs,
            },
            ValuesLayout::PrefixedStrings(count) => PageValues::PrefixedStrings {
                data: values,
                count,
            },
        };
        Some(DataPage {
            first_row: current.first_row,
            rows: current.rows,
            levels: self.page_has_levels.then_some(&self.present),
            values,
            dictionary: self.dictionary.as_ref(),
            dictionary_id: self.dictionary_id,
            values_skipped: current.values_skipped,
        })
    }

    /// The dictionary of no entry, standing for a held one until entries
    /// are wanted.
    fn empty_dictionary(&self) -> Result<Dictionary> {
        self.read_dictionary(Bytes::new(), 0, &self.context)
    }

    /// Whether the dictionary is held, and entries past those decoded may
    /// be wanted.
    fn holds_dictionary(&self) -> bool {
        self.held.as_ref().is_some_and(|h| h.skipped)
    }

    /// Decodes the held dictionary as far as its first `wanted` entries
    /// (at least), if not done yet. Every decoding starts a new dictionary
    /// (its buffer is new).
    fn decode_held(&mut self, wanted: usize) -> Result<()> {
        let Some(held) = self.held.as_ref().filter(|h| h.skipped) else {
            return Ok(());
        };
        if wanted <= held.decoded {
            return Ok(());
        }
        let context = self.context.as_str();
        if wanted > held.entries {
            return Err(bad_index(context));
        }
        // At least twice as many entries as before: a chunk whose pages
        // name ever more entries decodes its dictionary about twice over in
        // all, not once per page.
        let goal = wanted.max(held.decoded.saturating_mul(2)).min(held.entries);
        let (dictionary, decoded) = match self.physical {
            Type::BYTE_ARRAY => {
                let (prefix, whole) = strings_prefix(&held.page, 0, goal, held.entries, context)?;
                (self.read_dictionary(prefix, whole, context)?, whole)
            }
            _ => {
                let width = StoredTimestamps::of(self.physical, self.int96_unit).width();
                let goal = goal.min(held.page.uncompressed / width);
                let prefix = held.page.prefix(goal * width, context)?;
                (self.read_dictionary(prefix, goal, context)?, goal)
            }
        };
        if decoded < wanted {
            return Err(short(context));
        }
        if let Some(held) = &mut self.held {
            held.decoded = decoded;
        }
        self.dictionary = Some(dictionary);
        self.dictionary_id += 1;
        Ok(())
    }

    /// The page whose header (`header_len` bytes) is next, as a
    /// [`GiantPage`], when it is one: a chunk read whole, a data page v1 or
    /// v2 of a flat column, plain strings or timestamps, snappy or not
    /// compressed, of at least [`GIANT_PAGE`] bytes. Its levels are read
    /// here. `None` for any other page, read as usual.
    fn giant_of(
        &self,
        header: &PageHeader,
        header_len: usize,
        number: usize,
    ) -> Result<Option<GiantPage>> {
        let Some(walk) = self.walk.as_ref() else {
            return Ok(None);
        };
        let big = usize::try_from(header.uncompressed_size).is_ok_and(|n| n >= self.giant_from);
        let width = match self.physical {
            Type::BYTE_ARRAY => 0,
            Type::INT64 | Type::INT96 => {
                StoredTimestamps::of(self.physical, self.int96_unit).width()
            }
            _ => return Ok(None),
        };
        if !big || header.encoding != encoding::PLAIN {
            return Ok(None);
        }
        let context = self.context.as_str();
        let (page, levels, rows) = match (header.kind, header.levels) {
            (PageKind::DataV1, PageLevels::V1 { def_encoding })
                if !self.nullable || def_encoding == Some(3) =>
            {
                let Some(page) = walk.page(header, header_len) else {
                    return Ok(None);
                };
                (page, None, header.num_values)
            }
            (
                PageKind::DataV2,
                PageLevels::V2 {
                    def_len,
                    rep_len: 0,
                    num_rows,
                    ..
                },
            ) if (def_len > 0) == self.nullable => {
                let Some((levels, page)) = walk.page_v2(header, header_len) else {
                    return Ok(None);
                };
                (page, Some(levels), num_rows)
            }
            _ => return Ok(None),
        };
        let rows = usize::try_from(rows).map_err(|_| short(context))?;
        let Some(mut stream) = PageStream::open(page, context)? else {
            return Ok(None);
        };
        let mut values_at = 0;
        let present = if !self.nullable {
            None
        } else {
            let mut present = PresentBits::default();
            let decoded = match levels {
                Some(levels) => {
                    let bytes = levels.prefix(levels.uncompressed, context)?;
                    present.decode(&bytes, rows)
                }
                None => {
                    let head = stream.bytes(0, 4, context)?;
                    let length = head.get(..4).ok_or_else(|| short(context))?;
                    let length = u32::from_le_bytes(length.try_into().unwrap_or([0; 4])) as usize;
                    values_at = length.checked_add(4).ok_or_else(|| short(context))?;
                    let bytes = stream.bytes(4, values_at, context)?;
                    let levels = bytes.get(..length).ok_or_else(|| short(context))?;
                    present.decode(levels, rows)
                }
            };
            decoded.map_err(|e| Error::data(context, e))?;
            Some(present)
        };
        Ok(Some(GiantPage {
            stream,
            present,
            rows,
            served: 0,
            values_at,
            width,
            number,
            bounds: header.bounds.clone(),
        }))
    }

    /// The stored bytes of the next page, whose header is `header`, how
    /// its values are stored, and, for a data page v2 of a nullable
    /// column, its definition levels (stored apart from its values), if it
    /// can be read in part: a data page v1 (its levels, if any, in RLE) or
    /// v2 (of a flat column) of strings or timestamps, plain,
    /// dictionary-encoded or delta-encoded, in a chunk the walk follows.
    fn part_of(
        &self,
        header: &PageHeader,
        header_len: usize,
    ) -> Option<(StoredPage, Option<StoredPage>, StoredValues)> {
        let walk = self.walk.as_ref().filter(|_| self.in_part)?;
        let levels_readable = match header.levels {
            PageLevels::V1 { def_encoding } => {
                !self.nullable || def_encoding == Some(3) // RLE
            }
            // Levels of a nullable column are RLE; one that is not has none.
            PageLevels::V2 {
                def_len, rep_len, ..
            } => rep_len == 0 && (def_len > 0) == self.nullable,
            PageLevels::None => false,
        };
        if !matches!(header.kind, PageKind::DataV1 | PageKind::DataV2) || !levels_readable {
            return None;
        }
        let values = match (header.encoding, self.physical) {
            (_, Type::BYTE_ARRAY | Type::INT64 | Type::INT96) if header.uses_dictionary() => {
                StoredValues::Indices
            }
            (encoding::PLAIN, Type::BYTE_ARRAY | Type::INT64 | Type::INT96) => StoredValues::Plain,
            (encoding::DELTA_BINARY_PACKED, Type::INT64) => {
                StoredValues::Delta(Encoding::DELTA_BINARY_PACKED)
            }
            (encoding::DELTA_LENGTH_BYTE_ARRAY, Type::BYTE_ARRAY) => {
                StoredValues::Delta(Encoding::DELTA_LENGTH_BYTE_ARRAY)
            }
            // Unless such pages are matched as they are stored.
            (encoding::DELTA_BYTE_ARRAY, Type::BYTE_ARRAY) if !self.prefixed_kept => {
                StoredValues::Delta(Encoding::DELTA_BYTE_ARRAY)
            }
            _ => return None,
        };
        if header.kind == PageKind::DataV2 {
            let (levels, page) = walk.page_v2(header, header_len)?;
            return Some((page, self.nullable.then_some(levels), values));
        }
        Some((walk.page(header, header_len)?, None, values))
    }

    /// Makes `page`, of the rows `range`, the current page, read as far as
    /// row `last`; `levels` are its definition levels when they are stored
    /// apart (a data page v2's).
    fn read_part(
        &mut self,
        page: StoredPage,
        levels: Option<StoredPage>,
        values: StoredValues,
        range: std::ops::Range<u32>,
        last: u32,
    ) -> Result<()> {
        let rows = (range.end - range.start) as usize;
        if rows > self.rows.saturating_sub(range.start as usize) {
            return Err(Error::data(
                self.context.as_str(),
                "pages hold more rows than the row group",
            ));
        }
        self.next_row = range.end;
        self.partial = Some(PartialPage {
            page,
            levels,
            values,
            first_row: range.start,
            rows,
        });
        self.read_part_to(last)
    }

    /// Reads the current page, read in part, as far as row `last` (or its
    /// end): its levels whole, and its values up to that row's.
    fn read_part_to(&mut self, last: u32) -> Result<()> {
        let Some(part) = &self.partial else {
            return Ok(());
        };
        let context = self.context.as_str();
        let page = &part.page;
        let upto = (last.saturating_sub(part.first_row) as usize + 1).min(part.rows);
        // The levels of the rows up to the last wanted: this is called
        // again when more are. But a delta page read in part is decoded
        // whole later on without this (`hold_rows`), so its rows are all
        // decoded.
        let levels_upto = match part.values {
            StoredValues::Delta(_) => part.rows,
            _ => upto,
        };
        let (values_at, values) = if let (true, Some(levels)) = (self.nullable, &part.levels) {
            // A data page v2's levels, stored apart: its values start the
            // page read in part.
            let levels = levels.prefix(levels.uncompressed, context)?;
            self.present
                .decode_rows(&levels, part.rows, levels_upto)
                .map_err(|e| Error::data(context, e))?;
            (0, self.present.present_before(upto))
        } else if self.nullable {
            let head = page.prefix(4.min(page.uncompressed), context)?;
            let length = head.get(..4).ok_or_else(|| short(context))?;
            let length = u32::from_le_bytes(length.try_into().unwrap_or([0; 4])) as usize;
            let levels_end = length
                .checked_add(4)
                .filter(|&e| e <= page.uncompressed)
                .ok_or_else(|| short(context))?;
            let levels = page.prefix(levels_end, context)?;
            self.present
                .decode_rows(&levels[4..], part.rows, levels_upto)
                .map_err(|e| Error::data(context, e))?;
            (levels_end, self.present.present_before(upto))
        } else {
            (0, upto)
        };
        let mut layout = ValuesLayout::Plain;
        let mut decoded = false;
        let mut values_skipped = 0;
        // Plain values before those of the first row wanted, far into a
        // snappy page, are walked through a window and not kept: the
        // buffer then starts at that row's value.
        let skipped_rows = (self.first_wanted.saturating_sub(part.first_row) as usize).min(upto);
        let skip = self.values_before(skipped_rows);
        let mut values_at = values_at;
        let buf = match (part.values, self.physical) {
            (StoredValues::Delta(encoding), physical) => {
                let present = if self.nullable {
                    self.present.count_present()
                } else {
                    part.rows
                };
                let stored = DeltaValues {
                    encoding,
                    physical,
                    count: present,
                };
                decoded = true;
                values_skipped = skip;
                let wanted = values_skipped..values;
                stored.decode_prefix(page, values_at, wanted, &mut self.decoded_plain, context)?
            }
            (StoredValues::Indices, _) => {
                let entries = match &self.dictionary {
                    Some(Dictionary::Strings(dict)) => dict.len(),
                    Some(Dictionary::Ints(dict)) => dict.len(),
                    None => {
                        return Err(Error::data(
                            context,
                            "dictionary-encoded page without a dictionary",
                        ))
                    }
                };
                let (buf, width) =
                    indices_prefix(page, values_at, values, entries, &mut self.runs, context)?;
                layout = ValuesLayout::Runs(width);
                buf
            }
            (StoredValues::Plain, Type::BYTE_ARRAY) => {
                let present = if self.nullable {
                    self.present.count_present()
                } else {
                    part.rows
                };
                match strings_window(page, values_at, skip..values, present, context)? {
                    Some(buf) => {
                        (values_at, values_skipped) = (0, skip);
                        buf
                    }
                    None => {
                        let (buf, whole) =
                            strings_prefix(page, values_at, values, present, context)?;
                        if whole < values {
                            return Err(short(context));
                        }
                        buf
                    }
                }
            }
            (StoredValues::Plain, _) => {
                let width = StoredTimestamps::of(self.physical, self.int96_unit).width();
                let at = |n: usize| {
                    n.checked_mul(width)
                        .and_then(|n| n.checked_add(values_at))
                        .filter(|&n| n <= page.uncompressed)
                        .ok_or_else(|| short(context))
                };
                let (from, want) = (at(skip)?, at(values)?);
                match bytes_window(page, from..want, context)? {
                    Some(buf) => {
                        (values_at, values_skipped) = (0, skip);
                        buf
                    }
                    None => page.prefix(want, context)?,
                }
            }
        };
        let (first_row, rows) = (part.first_row, part.rows);
        self.buf = buf;
        self.page_has_levels = self.nullable && !self.present.all_present();
        self.current = Some(CurrentPage {
            first_row,
            rows,
            values_at: (!decoded).then_some(values_at),
            layout,
            rows_held: first_row + upto as u32,
            delta: None,
            values_skipped,
        });
        Ok(())
    }

    /// Reads the current page on, if it was read in part, as far as the
    /// last of `pending` (ascending rows) it holds.
    fn hold_rows(&mut self, pending: &[u32]) -> Result<()> {
        let Some(current) = &self.current else {
            return Ok(());
        };
        let end = current.first_row + current.rows as u32;
        let n = pending.partition_point(|&r| r < end);
        match n.checked_sub(1).map(|i| pending[i]) {
            Some(last) if last >= current.rows_held => match current.delta {
                // A delta page decoded in part: decode it whole now.
                Some((encoding, values_at)) => {
                    let present = if self.page_has_levels {
                        self.present.count_present()
                    } else {
                        current.rows
                    };
                    let skipped = current.values_skipped;
                    self.decode_delta(encoding, values_at, present, skipped..present)?;
                    if let Some(current) = &mut self.current {
                        current.rows_held = end;
                        current.delta = None;
                    }
                    Ok(())
                }
                None => self.read_part_to(last),
            },
            _ => Ok(()),
        }
    }

    fn read_dictionary(&self, buf: Bytes, entries: usize, context: &str) -> Result<Dictionary> {
        match self.physical {
            Type::BYTE_ARRAY => {
                if buf.len() > u32::MAX as usize {
                    return Err(Error::data(context, "dictionary exceeds 4 GiB"));
                }
                let mut bounds = Vec::with_capacity(entries.min(buf.len() / 4) + 1);
                let mut cursor = PlainCursor::default();
                for _ in 0..entries {
                    bounds.push(cursor.pos as u32);
                    cursor.next_bytes(&buf).ok_or_else(|| short(context))?;
                }
                bounds.push(cursor.pos as u32);
                let dictionary = StringDictionary {
                    data: Buffer::from(buf),
                    bounds,
                };
                // All ASCII, lengths included (entries shorter than 128
                // bytes): every entry is valid UTF-8. Else each is checked.
                let entries_valid = dictionary.data[..cursor.pos].is_ascii()
                    || (0..dictionary.len())
                        .all(|i| std::str::from_utf8(dictionary.get(i)).is_ok());
                if !entries_valid {
                    return Err(Error::data(context, "invalid UTF-8 in a dictionary entry"));
                }
                Ok(Dictionary::Strings(dictionary))
            }
            Type::INT64 | Type::INT96 => {
                let stored = StoredTimestamps::of(self.physical, self.int96_unit);
                let len = entries
                    .checked_mul(stored.width())
                    .filter(|&n| n <= buf.len())
                    .ok_or_else(|| short(context))?;
                Ok(Dictionary::Ints(IntDictionary {
                    data: buf.slice(..len),
                    stored,
                }))
            }
            other => Err(Error::data(context, format!("physical type {other}"))),
        }
    }
}

/// A data page read in part: as far as the last row wanted so far (rows
/// of one conversation lie near each other in a time-ordered file, and
/// DuckDB and Polars write a whole row group's values of a column in one
/// page).
struct PartialPage {
    page: StoredPage,
    /// The page's definition levels, when they are stored apart from its
    /// values (a data page v2 of a nullable column).
    levels: Option<StoredPage>,
    values: StoredValues,
    first_row: u32,
    rows: usize,
}

/// How the values of a page read in part are stored.
#[derive(Debug, Clone, Copy)]
enum StoredValues {
    Plain,
    /// Indices into the chunk's dictionary.
    Indices,
    /// Delta-encoded, decoded into the plain layout as far as wanted.
    Delta(Encoding),
}

/// The values of a delta-encoded page: how they are encoded, and how many.
struct DeltaValues {
    encoding: Encoding,
    physical: Type,
    count: usize,
}

impl DeltaValues {
    /// Decodes the values `wanted` (positions among the page's) of
    /// `values` (the page from its values on, whole or in part) into
    /// `out`, in the plain layout (see `delta`).
    fn decode(
        &self,
        values: &[u8],
        wanted: std::ops::Range<usize>,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let (count, encoding) = (self.count, self.encoding);
        match (encoding, self.physical) {
            (Encoding::DELTA_BINARY_PACKED, Type::INT64) => {
                delta::ints_as_plain(values, count, wanted, out)
            }
            (Encoding::DELTA_LENGTH_BYTE_ARRAY, Type::BYTE_ARRAY) => {
                delta::length_strings_as_plain(values, count, wanted, out)
            }
            (Encoding::DELTA_BYTE_ARRAY, Type::BYTE_ARRAY) => {
                delta::prefixed_strings_as_plain(values, count, wanted, out)
            }
            _ => Err(format!("data page encoding {encoding}")),
        }
    }

    /// The values `wanted` of `page`, whose values start `values_at` bytes
    /// in, into `out` (plain), read through a
    /// [`super::page_walk::PageWindow`] when the first of them lies far
    /// into a snappy page ([`WINDOW_LEAST`] bytes, estimated from the mean
    /// value's length): the page is then not decoded into a buffer of its
    /// size. Whether it did: not for other pages or encodings, nor a page
    /// the window cannot read or whose run is damaged
    /// ([`DeltaValues::decode_prefix`] then reads it, and reports damage).
    ///
    /// - `DELTA_LENGTH_BYTE_ARRAY` strings (DuckDB's v2 ids): the run of
    ///   lengths at the start is walked a block at a time, then the wanted
    ///   strings' bytes alone are read; the bytes of the strings before
    ///   them are stepped over.
    /// - `DELTA_BINARY_PACKED` integers (DuckDB's v2 timestamps: one page a
    ///   row group, 468 KB, nearly incompressible; a mid-file flow wants
    ///   rows 70% in): the run is walked a block at a time, the values
    ///   before those wanted summed.
    fn through_window(
        &self,
        page: &StoredPage,
        values_at: usize,
        wanted: std::ops::Range<usize>,
        out: &mut Vec<u8>,
        context: &str,
    ) -> Result<bool> {
        let length_strings = match (self.encoding, self.physical) {
            (Encoding::DELTA_LENGTH_BYTE_ARRAY, Type::BYTE_ARRAY) => true,
            (Encoding::DELTA_BINARY_PACKED, Type::INT64) => false,
            _ => return Ok(false),
        };
        let mean = page.uncompressed.saturating_sub(values_at) / self.count.max(1);
        let keep = wanted.end.min(self.count);
        let skip = wanted.start.min(keep);
        if values_at.saturating_add(skip.saturating_mul(mean)) < WINDOW_LEAST {
            return Ok(false);
        }
        let Some(mut window) = page.window() else {
            return Ok(false);
        };
        let mut read = Walked {
            window: &mut window,
            page,
            values_at,
            span: (skip, keep),
        };
        if length_strings {
            return self.length_strings_through(read, out, context);
        }
        // Integers: the values before those wanted are summed, not kept.
        delta::emptied_for(out, (keep - skip) * 8);
        let mut push = delta::plain_from(skip, out);
        let walked = read.walk(self.count, delta::RunEnd::NotWanted, &mut push, context)?;
        Ok(walked.is_some())
    }

    /// See [`DeltaValues::through_window`]: `DELTA_LENGTH_BYTE_ARRAY`.
    fn length_strings_through(
        &self,
        mut read: Walked<'_, '_>,
        out: &mut Vec<u8>,
        context: &str,
    ) -> Result<bool> {
        let (skip, keep) = read.span;
        // The run of lengths, walked a block at a time: the lengths of the
        // strings before those wanted are summed (`None` once one is
        // negative), the others kept.
        let mut before = Some(0usize);
        let mut kept = Vec::with_capacity(keep - skip);
        let mut push = delta::lengths_from(skip, &mut before, &mut kept);
        let walked = read.walk(self.count, delta::RunEnd::Wanted, &mut push, context)?;
        // (`push` holds `before` and `kept` until it is gone.)
        drop(push);
        let Some(strings_at) = walked else {
            return Ok(false);
        };
        let Some(before) = before else {
            return Ok(false);
        };
        let lengths = delta::StringLengths {
            run: strings_at - read.values_at,
            before,
            kept,
        };
        let Ok(kept) = lengths.kept_bytes(read.page.uncompressed - strings_at) else {
            return Ok(false);
        };
        let from = strings_at + lengths.before;
        let Some(bytes) = read.window.bytes(from, from + kept, context)? else {
            return Ok(false);
        };
        let Some(bytes) = bytes.get(..kept) else {
            return Ok(false);
        };
        delta::emptied_for(out, kept + 4 * lengths.kept.len());
        delta::put_strings_plain(bytes, &lengths.kept, out);
        Ok(true)
    }

    /// Decodes the values `wanted` of `page`, whose values start
    /// `values_at` bytes in, into `out`, from as short a prefix of the page
    /// as holds them, which it returns. The prefix is guessed in proportion
    /// to the values up to the last wanted, then doubled while they do not
    /// decode from it (a string page's lengths, which come first, are read
    /// whole); an error of the whole page is the page's.
    fn decode_prefix(
        &self,
        page: &StoredPage,
        values_at: usize,
        wanted: std::ops::Range<usize>,
        out: &mut Vec<u8>,
        context: &str,
    ) -> Result<Bytes> {
        if self.through_window(page, values_at, wanted.clone(), out, context)? {
            return Ok(Bytes::new());
        }
        let whole = page.uncompressed;
        let mean = whole.saturating_sub(values_at) / self.count.max(1);
        let mut want = wanted
            .end
            .saturating_mul(mean + mean / 4)
            .saturating_add(values_at + 1024);
        if want.saturating_mul(2) > whole {
            want = whole;
        }
        loop {
            want = want.min(whole);
            let buf = page.prefix(want, context)?;
            let decoded = match buf.get(values_at..) {
                Some(values) => self.decode(values, wanted.clone(), out),
                None => Err("page shorter than its levels".into()),
            };
            match decoded {
                Ok(()) => return Ok(buf),
                Err(e) if want == whole => return Err(Error::data(context, e)),
                Err(_) => want = want.saturating_mul(2),
            }
        }
    }
}

/// Where the value at position `p` of a page is among the values the
/// page's buffer holds, which leave out its first `skipped`
/// (`CurrentPage::values_skipped`). Gathers want no value before those,
/// so anything else is an error, never a wrong value.
fn held_position(p: u32, skipped: usize, context: &str) -> Result<usize> {
    (p as usize)
        .checked_sub(skipped)
        .ok_or_else(|| Error::data(context, "a value before the rows read was wanted"))
}

/// A data page as [`ColumnPages::advance`] offers it, to be read or not.
struct PageAt<'a> {
    rows: std::ops::Range<u32>,
    /// Its number among the chunk's data pages.
    number: usize,
    /// Its bounds, from its header.
    bounds: Option<&'a PageBounds>,
    /// Whether its header says its values are indices into a dictionary
    /// (false when no header of this reader's own was read).
    dictionary_encoded: bool,
    /// How many dictionary pages of the chunk came before it.
    dictionaries: u32,
}

/// The page's last row: every row of every page is wanted.
fn every_row(page: &PageAt) -> Option<u32> {
    page.rows
        .end
        .checked_sub(1)
        .filter(|_| !page.rows.is_empty())
}

/// A column chunk's dictionary page, read and decompressed only as far as
/// the entries wanted so far reach.
///
/// Writers add entries in the order values first appear, and a column of
/// unique values (event and message ids, timestamps) fills a dictionary
/// page of about a megabyte per row group. The rows of one conversation
/// name a few entries, near the start for a conversation early in the row
/// group: reading the whole page for them cost more than the rest of the
/// query.
///
/// Entries past the decoded prefix are never read, so damage there (or an
/// entry that is not UTF-8) goes unseen, as in the pages of rows that are
/// not wanted.
struct HeldDictionary {
    page: StoredPage,
    entries: usize,
    /// Whether the page reader has stepped over the page.
    skipped: bool,
    /// How many entries the decoded prefix holds.
    decoded: usize,
}

impl HeldDictionary {
    /// The dictionary page that opens `chunk` (walked by `walk`), if it can
    /// be held: one of plain strings or timestamps whose header reads as
    /// one. Else the page reader reads it whole.
    fn of(walk: &PageWalk, chunk: &ColumnChunkMetaData) -> Option<Self> {
        if !matches!(
            chunk.column_descr().physical_type(),
            Type::BYTE_ARRAY | Type::INT64 | Type::INT96
        ) {
            return None;
        }
        if u64::try_from(chunk.dictionary_page_offset()?).ok()? != walk.offset {
            return None;
        }
        let (header, header_len) = walk.header()?;
        let plain = matches!(header.encoding, 0 | 2); // PLAIN, PLAIN_DICTIONARY
        if header.kind != PageKind::Dictionary || !plain {
            return None;
        }
        Some(Self {
            page: walk.page(&header, header_len)?,
            entries: usize::try_from(header.num_values).ok()?,
            skipped: false,
            decoded: 0,
        })
    }
}

/// The first bytes of `page` as far as the first `values` of the `total`
/// plain `BYTE_ARRAY` values that start `skip` bytes in reach, and how
/// many of the `total` they hold whole (`values` or more, unless the page
/// holds fewer). Their length is guessed from the mean value's, then
/// doubled; most of the page is read whole at once.
fn strings_prefix(
    page: &StoredPage,
    skip: usize,
    values: usize,
    total: usize,
    context: &str,
) -> Result<(Bytes, usize)> {
    let mean = page.uncompressed.saturating_sub(skip) / total.max(1);
    let mut want = values
        .saturating_mul(mean + mean / 4)
        .saturating_add(skip + 64);
    if want.saturating_mul(2) > page.uncompressed {
        want = page.uncompressed;
    }
    loop {
        want = want.min(page.uncompressed);
        let buf = page.prefix(want, context)?;
        let whole = complete_entries(buf.get(skip..).unwrap_or_default(), total);
        if whole >= values || want == page.uncompressed {
            return Ok((buf, whole));
        }
        want = want.saturating_mul(2);
    }
}

/// A page read through a window from its values on
/// ([`DeltaValues::through_window`]), and the values wanted of it as
/// positions `skip..keep`.
struct Walked<'w, 'p> {
    window: &'w mut super::page_walk::PageWindow<'p>,
    page: &'p StoredPage,
    values_at: usize,
    span: (usize, usize),
}

impl Walked<'_, '_> {
    /// Walks the `DELTA_BINARY_PACKED` run of the page's `count` values,
    /// from its values on, a block at a time, giving the first of them (as
    /// far as the span's end) to `push`; returns where the walk ended (with
    /// [`delta::RunEnd::Wanted`], the run's end). `None` when the window
    /// cannot read the page or the run is damaged: the caller reads the
    /// page another way, which reports damage.
    fn walk(
        &mut self,
        count: usize,
        end: delta::RunEnd,
        push: &mut impl FnMut(&[i64]),
        context: &str,
    ) -> Result<Option<usize>> {
        let (at, keep) = (self.values_at, self.span.1);
        // A run's header is at most four integers of ten bytes.
        let Some(data) = self.window.bytes(at, at.saturating_add(64), context)? else {
            return Ok(None);
        };
        let Ok((mut run, header)) = delta::IntRun::start(data, count, keep, push) else {
            return Ok(None);
        };
        let mut at = at + header;
        // How many bytes are asked of the window at a time: doubled while
        // a block does not fit in them.
        let mut ask = WINDOW_BLOCKS;
        while !run.is_over(end) {
            let Some(data) = self.window.bytes(at, at.saturating_add(ask), context)? else {
                return Ok(None);
            };
            let mut used = 0;
            while !run.is_over(end) {
                match run.block(&data[used..], end, push) {
                    Ok(Some(n)) => used += n,
                    Ok(None) => break,
                    Err(_) => return Ok(None),
                }
            }
            if used == 0 && !run.is_over(end) {
                if at + data.len() >= self.page.uncompressed {
                    return Ok(None);
                }
                ask = ask.saturating_mul(2);
            }
            at += used;
        }
        Ok(Some(at))
    }
}

/// How many bytes [`Walked::walk`] asks of a window at first.
const WINDOW_BLOCKS: usize = 16 << 10;

/// How far into a snappy page the values of the first row wanted must lie
/// for the values before them to be walked through a
/// [`super::page_walk::PageWindow`] rather than decoded into a buffer of
/// their size.
const WINDOW_LEAST: usize = 128 << 10;

/// The bytes `range` of `page`, alone in a buffer, when they lie far into
/// a snappy page ([`WINDOW_LEAST`] bytes): the bytes before them are
/// decoded through a [`super::page_walk::PageWindow`]. `None` for a page
/// of another codec, bytes near the page's start, or a page the window
/// cannot read; [`StoredPage::prefix`] then reads it.
fn bytes_window(
    page: &StoredPage,
    range: std::ops::Range<usize>,
    context: &str,
) -> Result<Option<Bytes>> {
    if range.start < WINDOW_LEAST {
        return Ok(None);
    }
    if page.is_uncompressed() {
        // The bytes themselves, read where they are.
        let bytes = page.read_stored(range.start, range.len(), context)?;
        if bytes.len() < range.len() {
            return Err(short(context));
        }
        return Ok(Some(bytes));
    }
    let Some(mut window) = page.window() else {
        return Ok(None);
    };
    let held = window.bytes(range.start, range.end, context)?;
    Ok(held
        .and_then(|b| b.get(..range.len()))
        .map(Bytes::copy_from_slice))
}

/// The plain `BYTE_ARRAY` values `wanted` of `page` (of `total`, from byte
/// `values_at`), alone in a buffer, when the values before them lie far
/// into a snappy page ([`WINDOW_LEAST`] bytes, estimated from the mean
/// value's length): the lengths of those are walked through a
/// [`super::page_walk::PageWindow`]. `None` for a page of another codec, a
/// first value near the page's start, or a page the window cannot read;
/// [`strings_prefix`] then reads it.
fn strings_window(
    page: &StoredPage,
    values_at: usize,
    wanted: std::ops::Range<usize>,
    total: usize,
    context: &str,
) -> Result<Option<Bytes>> {
    let mean = page.uncompressed.saturating_sub(values_at) / total.max(1);
    if values_at.saturating_add(wanted.start.saturating_mul(mean)) < WINDOW_LEAST {
        return Ok(None);
    }
    if page.is_uncompressed() {
        return strings_read_apart(page, values_at, wanted, context).map(Some);
    }
    let Some(mut window) = page.window() else {
        return Ok(None);
    };
    // `at`: where value `index` starts; `need`: how many bytes from there
    // the walk needs next.
    let (mut at, mut index, mut need) = (values_at, 0usize, 4usize);
    let mut first = at;
    // First the values before those wanted, forgotten once walked; then
    // the values wanted, held from the first one on.
    for (until, held) in [(wanted.start, false), (wanted.end, true)] {
        first = if held { at } else { first };
        while index < until {
            let from = if held { first } else { at };
            let Some(data) = window.bytes(from, at.saturating_add(need), context)? else {
                return Ok(None);
            };
            let mut pos = at - from;
            need = 0;
            while index < until {
                let Some(length) = data.get(pos..pos + 4) else {
                    need = 4;
                    break;
                };
                let length = u32::from_le_bytes(length.try_into().unwrap_or([0; 4])) as usize;
                let end = (pos + 4).saturating_add(length);
                if end > data.len() {
                    need = end - pos;
                    break;
                }
                (pos, index) = (end, index + 1);
            }
            let reached = from + data.len();
            at = from + pos;
            if index < until && reached >= page.uncompressed {
                return Err(short(context));
            }
        }
    }
    let Some(data) = window.bytes(first, at, context)? else {
        return Ok(None);
    };
    Ok(data.get(..at - first).map(Bytes::copy_from_slice))
}

/// [`strings_window`] of an uncompressed page: the lengths of the values
/// before those wanted are read a stretch at a time ([`APART_STRETCH`]
/// bytes), stepping over the values' bytes, and only the values wanted
/// are read whole. A flow's rows halfway into a page of a whole row
/// group's ids (fastparquet's) read half the page into memory as a
/// prefix.
fn strings_read_apart(
    page: &StoredPage,
    values_at: usize,
    wanted: std::ops::Range<usize>,
    context: &str,
) -> Result<Bytes> {
    let (mut stretch, mut stretch_at) = (Bytes::new(), values_at);
    let mut at = values_at;
    let mut first = at;
    for index in 0..wanted.end {
        if index == wanted.start {
            first = at;
        }
        if at < stretch_at || at + 4 > stretch_at + stretch.len() {
            stretch = page.read_stored(at, APART_STRETCH, context)?;
            stretch_at = at;
        }
        let length = stretch
            .get(at - stretch_at..at - stretch_at + 4)
            .ok_or_else(|| short(context))?;
        let length = u32::from_le_bytes(length.try_into().unwrap_or([0; 4])) as usize;
        at = (at + 4).saturating_add(length);
        if at > page.uncompressed {
            return Err(short(context));
        }
    }
    if wanted.is_empty() {
        return Ok(Bytes::new());
    }
    let bytes = page.read_stored(first, at - first, context)?;
    if bytes.len() < at - first {
        return Err(short(context));
    }
    Ok(bytes)
}

/// How many bytes of an uncompressed page [`strings_read_apart`] reads at
/// a time for the values' lengths.
const APART_STRETCH: usize = 1 << 20;

/// The first bytes of `page` as far as its first `values` dictionary
/// indices, which start `skip` bytes in (with their bit width), and that
/// width; their runs are parsed into `runs`. Their length is guessed from
/// the width that indices into a dictionary of `entries` need, as writers
/// pack them (with room for the runs' headers), then doubled while the
/// runs parsed fall short; an error of the whole page's runs is the
/// page's. (Guessed at two bytes an index, the few rows of a mid-file flow
/// read the whole page of each column of a small dictionary, a bot's or a
/// step's: DuckDB's pages of `bot_id` are 60 KB, its indices 4 bits.)
///
/// The page is read whole (by the codec crate's faster decoder) when the
/// guess is more than half of the bytes after `skip`: the levels before
/// them are decoded already, and a prefix goes on from there. Counted
/// from the page's start, a first conversation's few rows in a DuckDB
/// page of `bot_version` (14 KB of levels, 12 KB of indices) read its
/// 26 KB whole, levels again included.
fn indices_prefix(
    page: &StoredPage,
    skip: usize,
    values: usize,
    entries: usize,
    runs: &mut Vec<Run>,
    context: &str,
) -> Result<(Bytes, u8)> {
    let whole = page.uncompressed;
    let width = (usize::BITS - entries.saturating_sub(1).leading_zeros()).max(1) as usize;
    let guess = values
        .saturating_mul(width)
        .div_ceil(8)
        .saturating_add(values / 16)
        .saturating_add(64);
    let mut want = guess.saturating_add(skip);
    if guess.saturating_mul(2) > whole.saturating_sub(skip) {
        want = whole;
    }
    loop {
        want = want.min(whole);
        let buf = page.prefix(want, context)?;
        let parsed = match buf.get(skip..).and_then(<[u8]>::split_first) {
            Some((&width, indices)) => parse_runs(indices, width, values, runs).map(|()| width),
            None => Err("page shorter than its levels"),
        };
        match parsed {
            Ok(width) => return Ok((buf, width)),
            Err(e) if want == whole => return Err(Error::data(context, e)),
            Err(_) => want = want.saturating_mul(2),
        }
    }
}

/// How many of `entries` plain `BYTE_ARRAY` values `data` holds whole.
fn complete_entries(data: &[u8], entries: usize) -> usize {
    let mut cursor = PlainCursor::default();
    while cursor.index < entries && cursor.next_bytes(data).is_some() {}
    cursor.index
}

/// A position in plain-encoded `BYTE_ARRAY` values (`u32` length, bytes).
#[derive(Default)]
struct PlainCursor {
    pos: usize,
    index: usize,
}

impl PlainCursor {
    fn reset(&mut self) {
        *self = Self::default();
    }

    #[inline]
    fn next_bytes<'a>(&mut self, data: &'a [u8]) -> Option<&'a [u8]> {
        let len = data.get(self.pos..self.pos + 4)?;
        let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
        let start = self.pos + 4;
        let v = data.get(start..start.checked_add(len)?)?;
        self.pos = start + len;
        self.index += 1;
        Some(v)
    }

    /// The byte range of the next value in `data`.
    #[inline]
    fn next_range(&mut self, data: &[u8]) -> Option<(usize, usize)> {
        let len = data.get(self.pos..self.pos + 4)?;
        let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
        let start = self.pos + 4;
        let end = start.checked_add(len).filter(|&e| e <= data.len())?;
        self.pos = end;
        self.index += 1;
        Some((start, end))
    }

    /// Moves to value `index` (at or after the current one).
    #[inline]
    fn skip_to(&mut self, data: &[u8], index: usize) -> Option<()> {
        while self.index < index {
            self.next_bytes(data)?;
        }
        Some(())
    }
}

/// Validity of gathered rows, allocated only once a null is seen.
struct NullsBuilder {
    capacity: usize,
    len: usize,
    bits: Option<BooleanBufferBuilder>,
}

impl NullsBuilder {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            len: 0,
            bits: None,
        }
    }

    /// Appends one row per position: valid unless it is [`NULL_ROW`].
    /// Until a null comes, nothing is written per row (the positions are
    /// only searched for one).
    fn append_positions(&mut self, positions: &[u32]) {
        let (bits, valid_before) = match &mut self.bits {
            Some(bits) => (bits, 0),
            None => {
                let Some(first_null) = first_null_row(positions) else {
                    self.len += positions.len();
                    return;
                };
                let mut bits = BooleanBufferBuilder::new(self.capacity);
                bits.append_n(self.len + first_null, true);
                (self.bits.insert(bits), first_null)
            }
        };
        for &p in &positions[valid_before..] {
            bits.append(p != NULL_ROW);
        }
        self.len += positions.len();
    }

    fn finish(self) -> Option<NullBuffer> {
        self.bits.map(|mut b| NullBuffer::new(b.finish()))
    }
}

/// Where the first [`NULL_ROW`] of `positions` is. Searched 16 positions
/// at a time, with no early exit inside a block, so that the compiler
/// makes one vector comparison of each block.
fn first_null_row(positions: &[u32]) -> Option<usize> {
    const BLOCK: usize = 16;
    let block = positions
        .chunks(BLOCK)
        .position(|block| block.iter().fold(false, |any, &p| any | (p == NULL_ROW)))?;
    let start = block * BLOCK;
    positions[start..]
        .iter()
        .position(|&p| p == NULL_ROW)
        .map(|i| start + i)
}

/// Views of gathered strings: plain strings longer than 12 bytes are
/// copied into buffer 0; dictionary entries point into their dictionary's
/// buffer, shared ([`StringsBuilder::add_buffer`]).
struct StringsBuilder {
    views: Vec<u128>,
    data: Vec<u8>,
    shared: Vec<Buffer>,
}

impl StringsBuilder {
    fn with_capacity(rows: usize) -> Self {
        Self {
            views: Vec::with_capacity(rows),
            data: Vec::new(),
            shared: Vec::new(),
        }
    }

    /// Adds `buffer` to the output's buffers; returns its index.
    fn add_buffer(&mut self, buffer: Buffer, context: &str) -> Result<u32> {
        if buffer.len() > u32::MAX as usize {
            return Err(Error::data(context, "dictionary exceeds 4 GiB"));
        }
        self.shared.push(buffer);
        Ok(self.shared.len() as u32)
    }

    /// Appends `buf[start..end]`, a plain value, checking it is UTF-8.
    #[inline]
    fn push(&mut self, buf: &[u8], start: usize, end: usize, context: &str) -> Result<()> {
        let v = &buf[start..end];
        if std::str::from_utf8(v).is_err() {
            return Err(Error::data(context, "invalid UTF-8 in a string value"));
        }
        if v.len() <= INLINE_VIEW_LEN {
            self.views.push(view_at(buf, start, end, 0));
            return Ok(());
        }
        let offset = self.data.len();
        if offset + v.len() > u32::MAX as usize {
            return Err(Error::data(context, "selected strings exceed 4 GiB"));
        }
        self.data.extend_from_slice(v);
        self.views
            .push(view_at(&self.data, offset, offset + v.len(), 0));
        Ok(())
    }

    fn finish(self, nulls: Option<NullBuffer>) -> Result<StringViewArray> {
        let mut buffers = Vec::with_capacity(1 + self.shared.len());
        buffers.push(Buffer::from_vec(self.data));
        buffers.extend(self.shared);
        // SAFETY: every view is null (0), or made by `view_of` from a
        // checked UTF-8 string: inline, or at its offset in buffer 0 (plain
        // strings, copied whole) or in the shared buffer whose index it
        // names: a dictionary's (entries checked when it was read) or a
        // plain page's (all ASCII, checked before it was shared) — the
        // invariants `StringViewArray::try_new` checks.
        Ok(unsafe { StringViewArray::new_unchecked(self.views.into(), buffers.into(), nulls) })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use arrow_array::{RecordBatch, StringArray, TimestampMicrosecondArray};
    use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};

    use parquet::basic::Compression;

    use super::super::tests::{first_chunk, write};
    use super::*;
    use crate::ingest::guard::guard;
    use crate::ingest::page_header::read_page_header;

    thread_local! {
        /// How many pieces of giant pages (`GiantPage`) were served on this
        /// thread.
        pub(super) static GIANT_PIECES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// A column chunk of one page of `GIANT_PAGE` bytes or more, as
    /// fastparquet writes a row group's (strings and timestamps, with and
    /// without nulls, snappy and uncompressed, data page v1 and v2), is
    /// served in pieces: gathers of rows spread over it, batch after
    /// batch, and the rows matching two values, are those a page read
    /// whole gives.
    #[test]
    fn a_giant_page_is_read_in_pieces() {
        let n = 50_000;
        let (strings, micros) = (event_strings(n), event_micros(n));
        let (filled_strings, filled_micros) = filled(&strings, &micros);
        let cases = [
            (Compression::SNAPPY, WriterVersion::PARQUET_1_0),
            (Compression::SNAPPY, WriterVersion::PARQUET_2_0),
            (Compression::UNCOMPRESSED, WriterVersion::PARQUET_1_0),
            (Compression::UNCOMPRESSED, WriterVersion::PARQUET_2_0),
        ];
        // Every third row, in batches of 2,500 rows.
        let rows: Vec<u32> = (0..n as u32).filter(|r| r % 3 == 1).collect();
        for (codec, version) in cases {
            for (strings, micros) in [(&strings, &micros), (&filled_strings, &filled_micros)] {
                let label = format!("{codec:?} {version:?} nulls: {}", strings[3].is_none());
                let s: ArrayRef = Arc::new(StringArray::from(strings.clone()));
                let m: ArrayRef = Arc::new(TimestampMicrosecondArray::from(micros.clone()));
                for (array, kind) in [
                    (&s, ColumnKind::Strings),
                    (&m, ColumnKind::Timestamps(TimeUnit::Microsecond)),
                ] {
                    let (bytes, chunk) = plain_file_of_pages(array.clone(), codec, version, n);
                    assert!(chunk.uncompressed_size() as usize > GIANT_PAGE, "{label}");
                    let reader = CountingReader::new(bytes);
                    GIANT_PIECES.with(|p| p.set(0));
                    let mut gather =
                        ColumnGather::open(reader.clone(), &chunk, kind, n, None, "v", true)
                            .unwrap();
                    for batch in rows.chunks(2_500) {
                        assert_gathers_next(&mut gather, array, batch, &label);
                    }
                    let pieces = GIANT_PIECES.with(|p| p.get());
                    assert_eq!(pieces, n.div_ceil(GIANT_PIECE_ROWS), "{label}");
                    if kind == ColumnKind::Strings {
                        let values = [4_321usize, 45_678].map(|i| strings[i].clone().unwrap());
                        let got = matching_rows(reader, &chunk, n, &values, "v").unwrap();
                        assert_eq!(got, rows_among(strings, &values), "{label}");
                    }
                }
            }
        }
    }

    /// A page of [`CONDITION_GIANT_PAGE`] bytes or more but under
    /// [`GIANT_PAGE`] is read in pieces when a condition is matched on it,
    /// and whole when it is gathered; both give the rows a whole read
    /// gives.
    #[test]
    fn a_conditions_page_is_read_in_pieces_from_a_smaller_size() {
        let n = 9_000;
        let strings = event_strings(n);
        let s: ArrayRef = Arc::new(StringArray::from(strings.clone()));
        let (bytes, chunk) = plain_file_of_pages(
            s.clone(),
            Compression::SNAPPY,
            WriterVersion::PARQUET_1_0,
            n,
        );
        let size = chunk.uncompressed_size() as usize;
        assert!((CONDITION_GIANT_PAGE..GIANT_PAGE).contains(&size), "{size}");
        let reader = CountingReader::new(bytes);
        let values = [1_234usize, 8_500].map(|i| strings[i].clone().unwrap());
        GIANT_PIECES.with(|p| p.set(0));
        let got = matching_rows(reader.clone(), &chunk, n, &values, "v").unwrap();
        assert_eq!(got, rows_among(&strings, &values));
        assert_eq!(GIANT_PIECES.with(|p| p.get()), n.div_ceil(GIANT_PIECE_ROWS));
        GIANT_PIECES.with(|p| p.set(0));
        let mut gather =
            ColumnGather::open(reader, &chunk, ColumnKind::Strings, n, None, "v", true).unwrap();
        let rows: Vec<u32> = (0..n as u32).filter(|r| r % 5 == 2).collect();
        for batch in rows.chunks(2_500) {
            assert_gathers_next(&mut gather, &s, batch, "gathered");
        }
        assert_eq!(GIANT_PIECES.with(|p| p.get()), 0);
    }

    /// A giant page cut short, or whose bytes are damaged, is an error
    /// naming its column, never a panic.
    #[test]
    fn a_damaged_giant_page_is_an_error() {
        let n = 50_000;
        let s: ArrayRef = Arc::new(StringArray::from(event_strings(n)));
        for codec in [Compression::SNAPPY, Compression::UNCOMPRESSED] {
            let (bytes, chunk) =
                plain_file_of_pages(s.clone(), codec, WriterVersion::PARQUET_1_0, n);
            let (start, length) = chunk.byte_range();
            let (start, length) = (start as usize, length as usize);
            for damage in 0..3 {
                let mut damaged = bytes.to_vec();
                match damage {
                    // A length in the middle of the values claims more.
                    0 => damaged[start + length / 2..start + length / 2 + 8].fill(0xff),
                    // Garbage from the middle of the page on.
                    1 => damaged[start + length / 3..start + length].fill(0x5a),
                    // The page's bytes zeroed after its header.
                    _ => damaged[start + 64..start + length].fill(0),
                }
                let reader = CountingReader::new(Bytes::from(damaged));
                let rows: Vec<u32> = (0..n as u32).collect();
                // Called directly, not through `guard`: a panic fails.
                let gathered = (|| {
                    let mut gather = ColumnGather::open(
                        reader.clone(),
                        &chunk,
                        ColumnKind::Strings,
                        n,
                        None,
                        "v",
                        true,
                    )?;
                    for batch in rows.chunks(5_000) {
                        gather.next(batch)?;
                    }
                    Ok::<_, Error>(())
                })();
                // A value within the page's bounds: the page is read.
                let value = "event-00025000".to_owned();
                let matched = matching_rows(reader.clone(), &chunk, n, &[value], "v").map(|_| ());
                let mut failed = 0;
                for result in [gathered, matched] {
                    if let Err(e) = result {
                        failed += 1;
                        assert!(
                            e.to_string().starts_with("data error: v"),
                            "{codec:?} {damage}: {e}"
                        );
                    }
                }
                // A page of zeros is always found (no snappy header; no
                // levels for the rows); other damage may still read as
                // values (pages have no checksum here).
                if damage == 2 {
                    assert_eq!(failed, 2, "{codec:?}");
                }
            }
        }
    }

    /// The rows of `values` that hold one of `wanted`, naively.
    fn rows_among(values: &[Option<String>], wanted: &[String]) -> Vec<u32> {
        (0..values.len() as u32)
            .filter(|&i| {
                values[i as usize]
                    .as_ref()
                    .is_some_and(|v| wanted.contains(v))
            })
            .collect()
    }

    /// A file's bytes, counting the bytes read through `get_bytes`.
    #[derive(Clone)]
    struct CountingReader {
        bytes: Bytes,
        read: Arc<AtomicUsize>,
    }

    impl CountingReader {
        fn new(bytes: Bytes) -> Self {
            Self {
                bytes,
                read: Arc::default(),
            }
        }
    }

    /// The bytes of `chunk`'s dictionary page, header included.
    fn dictionary_len(chunk: &ColumnChunkMetaData) -> usize {
        (chunk.data_page_offset() - chunk.dictionary_page_offset().unwrap()) as usize
    }

    impl Length for CountingReader {
        fn len(&self) -> u64 {
            self.bytes.len() as u64
        }
    }

    impl ChunkReader for CountingReader {
        type T = bytes::buf::Reader<Bytes>;

        fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
            self.bytes.get_read(start)
        }

        fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
            self.read.fetch_add(length, Ordering::Relaxed);
            self.bytes.get_bytes(start, length)
        }
    }

    /// A file of one string column `s` holding `values`, in pages of
    /// `page_rows` rows, and its chunk.
    fn string_file(values: &[String], page_rows: usize) -> (Bytes, ColumnChunkMetaData) {
        let strings: StringArray = values.iter().map(|v| Some(v.as_str())).collect();
        let batch = RecordBatch::try_from_iter([("s", Arc::new(strings) as _)]).unwrap();
        let props = WriterProperties::builder()
            .set_data_page_row_count_limit(page_rows)
            .set_write_batch_size(page_rows)
            .build();
        let bytes = write(&batch, props);
        let chunk = first_chunk(&bytes);
        (bytes, chunk)
    }

    /// One dictionary-encoded string column of 5,000 rows (`v0`..`v49`),
    /// in pages of 500 rows, and its chunk.
    fn file() -> (Bytes, ColumnChunkMetaData) {
        let values: Vec<String> = (0..5_000).map(|i| format!("v{}", i % 50)).collect();
        string_file(&values, 500)
    }

    fn matching(
        reader: &CountingReader,
        chunk: &ColumnChunkMetaData,
        value: &str,
    ) -> Result<Vec<u32>> {
        matching_rows(reader.clone(), chunk, 5_000, &[value.to_owned()], "s")
    }

    #[test]
    fn a_chunk_whose_dictionary_holds_no_match_is_read_no_further() {
        let (bytes, chunk) = file();
        let reader = CountingReader::new(bytes);
        let dictionary = dictionary_len(&chunk);
        assert_eq!(
            matching(&reader, &chunk, "nope").unwrap(),
            Vec::<u32>::new()
        );
        assert_eq!(reader.read.swap(0, Ordering::Relaxed), dictionary);
        let want: Vec<u32> = (0..5_000).filter(|i| i % 50 == 7).collect();
        assert_eq!(matching(&reader, &chunk, "v7").unwrap(), want);
        // The dictionary, the column index (every page may hold `v7`),
        // then the chunk.
        let (_, length) = chunk.byte_range();
        let index = chunk.column_index_length().unwrap() as usize;
        assert_eq!(
            reader.read.load(Ordering::Relaxed),
            dictionary + index + length as usize
        );
    }

    /// 2,000 rows of dictionary entries of every kind the reader tells
    /// apart: short ASCII (inline views), non-ASCII, and longer than 127
    /// bytes (a length byte outside ASCII), and the file holding them.
    fn mixed_strings() -> (Vec<String>, Bytes, ColumnChunkMetaData) {
        let values: Vec<String> = (0..2_000)
            .map(|i| match i % 3 {
                0 => format!("v{}", i % 400),
                1 => format!("é-{}-ü", i % 300),
                _ => format!("{}{}", "x".repeat(130), i % 200),
            })
            .collect();
        let (bytes, chunk) = string_file(&values, 250);
        (values, bytes, chunk)
    }

    fn gather(bytes: &Bytes, chunk: &ColumnChunkMetaData, rows: &[u32]) -> Result<Vec<String>> {
        let mut gather = ColumnGather::open(
            bytes.clone(),
            chunk,
            ColumnKind::Strings,
            2_000,
            None,
            "s",
            false,
        )?;
        let array = gather.next(rows)?;
        Ok(array
            .as_any()
            .downcast_ref::<StringViewArray>()
            .unwrap()
            .iter()
            .map(|v| v.unwrap().to_owned())
            .collect())
    }

    /// A few rows take the views of their entries alone, many rows the
    /// views of every entry: both read the same values.
    #[test]
    fn few_and_many_rows_read_the_same_entries() {
        let (values, bytes, chunk) = mixed_strings();
        for rows in [
            vec![5, 6, 7, 1_999],
            (0..2_000).step_by(2).collect::<Vec<u32>>(),
        ] {
            let want: Vec<String> = rows.iter().map(|&r| values[r as usize].clone()).collect();
            assert_eq!(gather(&bytes, &chunk, &rows).unwrap(), want);
        }
    }

    /// An entry that is not UTF-8 is a data error, however many rows are
    /// read.
    #[test]
    fn a_dictionary_entry_that_is_not_utf8_is_an_error() {
        let (_, bytes, chunk) = mixed_strings();
        let start = chunk.dictionary_page_offset().unwrap() as usize;
        let end = chunk.data_page_offset() as usize;
        // The first non-ASCII entry's "é" becomes a lone continuation byte.
        let at = bytes[start..end]
            .windows(2)
            .position(|w| w == "é".as_bytes())
            .unwrap();
        let mut damaged = bytes.to_vec();
        damaged[start + at] = 0xa9;
        let damaged = Bytes::from(damaged);
        for rows in [vec![1], (0..2_000).collect::<Vec<u32>>()] {
            let err = gather(&damaged, &chunk, &rows).unwrap_err();
            assert!(err.to_string().contains("invalid UTF-8"), "{err}");
        }
    }

    /// Many rows of an ASCII plain page are views into the page's buffer;
    /// a few, or rows of a page that is not ASCII, are copied out; every
    /// read gives the values, and a value that is not UTF-8 is an error
    /// whichever way it is read.
    #[test]
    fn many_rows_of_a_plain_ascii_page_share_its_buffer() {
        let n = 3_000;
        let ascii = event_strings(n);
        let accented: Vec<Option<String>> = ascii
            .iter()
            .map(|s| s.as_ref().map(|s| s.replace("event", "évent")))
            .collect();
        let many: Vec<u32> = (0..n as u32).step_by(3).collect();
        let few: Vec<u32> = vec![0, 1_000, 2_999];
        for (values, shared) in [(ascii, true), (accented, false)] {
            let array: ArrayRef = Arc::new(StringArray::from(values));
            let (bytes, chunk) = plain_file(
                array.clone(),
                Compression::UNCOMPRESSED,
                WriterVersion::PARQUET_1_0,
            );
            let reader = CountingReader::new(bytes.clone());
            for rows in [&many, &few] {
                let label = format!("shared {shared}, {} rows", rows.len());
                assert_gathers(
                    &reader,
                    &chunk,
                    ColumnKind::Strings,
                    &array,
                    std::slice::from_ref(rows),
                    &label,
                );
                let got = gathered(&reader, &chunk, ColumnKind::Strings, rows).unwrap();
                let got = got.as_any().downcast_ref::<StringViewArray>().unwrap();
                // Buffer 0 holds what was copied; a shared page follows.
                let copied = got.data_buffers()[0].len();
                let page_shared = got.data_buffers().len() > 1;
                assert_eq!(page_shared, shared && rows == &many, "{label}");
                assert_eq!(copied == 0, page_shared, "{label}");
            }
            // A lone continuation byte in place of the first string's
            // first byte (after its length: not the bounds in the page
            // header).
            let first: &[u8] = if shared {
                b"\x0e\0\0\0e"
            } else {
                b"\x0f\0\0\0\xc3"
            };
            let at = bytes.windows(5).position(|w| w == first).unwrap();
            let mut damaged = bytes.to_vec();
            damaged[at + 4] = 0xa9;
            let reader = CountingReader::new(Bytes::from(damaged));
            for rows in [&many, &few] {
                let err = gathered(&reader, &chunk, ColumnKind::Strings, rows).unwrap_err();
                assert!(err.to_string().contains("invalid UTF-8"), "{err}");
            }
        }
    }

    /// A file of one column `v` of `values`, with `codec`, in pages of
    /// 1,000 rows after one dictionary page, and its chunk.
    fn dictionary_file(values: ArrayRef, codec: Compression) -> (Bytes, ColumnChunkMetaData) {
        let batch = RecordBatch::try_from_iter([("v", values)]).unwrap();
        let props = WriterProperties::builder()
            .set_compression(codec)
            .set_dictionary_page_size_limit(1 << 22)
            .set_data_page_row_count_limit(1_000)
            .set_write_batch_size(1_000)
            .build();
        let bytes = write(&batch, props);
        let chunk = first_chunk(&bytes);
        (bytes, chunk)
    }

    /// A file of one nullable column `v` of `values`, with `codec` and
    /// `version`, its dictionary page and then one data page for all its
    /// rows (as DuckDB and Polars write a row group's indices), and its
    /// chunk.
    fn one_page_file(
        values: &ArrayRef,
        codec: Compression,
        version: WriterVersion,
    ) -> (Bytes, ColumnChunkMetaData) {
        let batch =
            RecordBatch::try_from_iter_with_nullable([("v", values.clone(), true)]).unwrap();
        let props = WriterProperties::builder()
            .set_compression(codec)
            .set_writer_version(version)
            .set_dictionary_page_size_limit(1 << 22)
            .set_data_page_size_limit(1 << 30)
            .set_data_page_row_count_limit(1 << 30)
            .set_write_batch_size(1_000)
            .build();
        let bytes = write(&batch, props);
        let chunk = first_chunk(&bytes);
        (bytes, chunk)
    }

    fn gathered(
        reader: &CountingReader,
        chunk: &ColumnChunkMetaData,
        kind: ColumnKind,
        rows: &[u32],
    ) -> Result<ArrayRef> {
        let rows_in_group = chunk.num_values() as usize;
        let mut gather =
            ColumnGather::open(reader.clone(), chunk, kind, rows_in_group, None, "v", false)?;
        gather.next(rows)
    }

    /// Rows early in a chunk of unique values name entries early in its
    /// dictionary: only that part of the dictionary page is read (snappy,
    /// zstd, gzip, brotli, both LZ4 codecs, or not compressed). Later rows, and rows spread over every page,
    /// read more of it, always the values the rows hold.
    #[test]
    fn a_dictionary_is_read_as_far_as_the_rows_wanted_reach() {
        let n = 20_000;
        let strings: Vec<String> = (0..n)
            .map(|i| format!("event-{i:08}-{}", "x".repeat(i % 9)))
            .collect();
        let micros: Vec<i64> = (0..n as i64)
            .map(|i| 1_700_000_000_000_000 + i * 7_919)
            .collect();
        let string_array: ArrayRef = Arc::new(StringArray::from(strings.clone()));
        let time_array: ArrayRef = Arc::new(TimestampMicrosecondArray::from(micros.clone()));
        let spread: Vec<u32> = (0..n as u32).step_by(997).collect();
        for codec in [
            Compression::SNAPPY,
            Compression::UNCOMPRESSED,
            Compression::ZSTD(Default::default()),
            Compression::GZIP(Default::default()),
            Compression::LZ4,
            Compression::LZ4_RAW,
            Compression::BROTLI(Default::default()),
        ] {
            for (array, kind) in [
                (&string_array, ColumnKind::Strings),
                (&time_array, ColumnKind::Timestamps(TimeUnit::Microsecond)),
            ] {
                let (bytes, chunk) = dictionary_file(array.clone(), codec);
                let reader = CountingReader::new(bytes);
                let dictionary = dictionary_len(&chunk);
                for rows in [
                    vec![2, 5, 40],
                    vec![19_998],
                    spread.clone(),
                    vec![0, 3, 999, 1_000, 1_001, 12_345],
                ] {
                    reader.read.store(0, Ordering::Relaxed);
                    let got = gathered(&reader, &chunk, kind, &rows).unwrap();
                    let read = reader.read.load(Ordering::Relaxed);
                    let want: ArrayRef = match kind {
                        ColumnKind::Strings => Arc::new(StringViewArray::from_iter_values(
                            rows.iter().map(|&r| strings[r as usize].as_str()),
                        )),
                        _ => Arc::new(TimestampMicrosecondArray::from_iter_values(
                            rows.iter().map(|&r| micros[r as usize]),
                        )),
                    };
                    assert_eq!(&got, &want, "{codec:?} {kind:?} {rows:?}");
                    // zstd gives whole blocks (128 KiB): the first of the
                    // strings' four (the timestamps' 160 KB are two).
                    let (most, in_part) = match (codec, kind) {
                        (Compression::ZSTD(_), ColumnKind::Strings) => (dictionary / 2, true),
                        (Compression::ZSTD(_), _) => (0, false),
                        _ => (dictionary / 10, true),
                    };
                    if rows == [2, 5, 40] && in_part {
                        // The page header, a little of the dictionary, one data page.
                        assert!(
                            read < most,
                            "{codec:?} {kind:?}: read {read} of {dictionary}"
                        );
                    }
                    if rows == spread && kind == ColumnKind::Strings {
                        // Each page names more entries: the dictionary
                        // grows by doubling, not by a read per page (which
                        // read 428,049 bytes here).
                        let (_, length) = chunk.byte_range();
                        assert!(
                            read < 2 * dictionary + length as usize,
                            "{codec:?}: read {read} of {dictionary} + {length}"
                        );
                    }
                }
            }
        }
    }

    /// A file of one column `v` of `values` in plain pages of 20,000 rows
    /// (parquet-rs's default), with `codec`, and its chunk.
    fn plain_file(
        values: ArrayRef,
        codec: Compression,
        version: WriterVersion,
    ) -> (Bytes, ColumnChunkMetaData) {
        plain_file_of_pages(values, codec, version, 20_000)
    }

    /// [`plain_file`] with pages of at most `page_rows` rows.
    fn plain_file_of_pages(
        values: ArrayRef,
        codec: Compression,
        version: WriterVersion,
        page_rows: usize,
    ) -> (Bytes, ColumnChunkMetaData) {
        file_without_dictionary(values, codec, version, Encoding::PLAIN, page_rows)
    }

    /// A file of the one column `values` in `encoding` (no dictionary),
    /// pages of `version` of at most `page_rows` rows, and its chunk.
    fn file_without_dictionary(
        values: ArrayRef,
        codec: Compression,
        version: WriterVersion,
        encoding: Encoding,
        page_rows: usize,
    ) -> (Bytes, ColumnChunkMetaData) {
        let batch = RecordBatch::try_from_iter_with_nullable([("v", values, true)]).unwrap();
        let props = WriterProperties::builder()
            .set_compression(codec)
            .set_writer_version(version)
            .set_dictionary_enabled(false)
            .set_encoding(encoding)
            .set_data_page_size_limit(1 << 30)
            .set_data_page_row_count_limit(page_rows)
            .build();
        let bytes = write(&batch, props);
        let chunk = first_chunk(&bytes);
        (bytes, chunk)
    }

    /// `strings` and `micros` with a value in place of each null.
    #[allow(clippy::type_complexity)]
    fn filled(
        strings: &[Option<String>],
        micros: &[Option<i64>],
    ) -> (Vec<Option<String>>, Vec<Option<i64>>) {
        let strings = strings
            .iter()
            .enumerate()
            .map(|(i, s)| s.clone().or(Some(format!("e{i}"))))
            .collect();
        (strings, micros.iter().map(|m| m.or(Some(5))).collect())
    }

    /// Gathers each of `calls` (rows, ascending across calls) from one
    /// gather of `chunk`, the column of `array`, and checks each gives the
    /// values `array` holds at those rows; returns the bytes of the file
    /// read for them.
    fn assert_gathers(
        reader: &CountingReader,
        chunk: &ColumnChunkMetaData,
        kind: ColumnKind,
        array: &ArrayRef,
        calls: &[Vec<u32>],
        label: &str,
    ) -> usize {
        reader.read.store(0, Ordering::Relaxed);
        let n = array.len();
        let mut gather =
            ColumnGather::open(reader.clone(), chunk, kind, n, None, "v", false).unwrap();
        for rows in calls {
            assert_gathers_next(&mut gather, array, rows, label);
        }
        reader.read.load(Ordering::Relaxed)
    }

    /// Checks that the next call of `gather` at `rows` gives the values
    /// `array` holds there.
    fn assert_gathers_next(gather: &mut ColumnGather, array: &ArrayRef, rows: &[u32], label: &str) {
        let got = gather.next(rows).unwrap();
        let want =
            arrow_select::take::take(array, &arrow_array::UInt32Array::from(rows.to_vec()), None)
                .unwrap();
        let want = arrow_cast::cast(&want, got.data_type()).unwrap();
        assert_eq!(&got, &want, "{label} {rows:?}");
    }

    /// `n` event ids of 14 to 26 bytes (`event-00000000`, then padded),
    /// one in 11 null.
    /// Timestamps of `n` rows, one in seven null.
    fn event_micros(n: usize) -> Vec<Option<i64>> {
        (0..n as i64)
            .map(|i| (i % 7 != 2).then_some(1_700_000_000_000_000 + i * 7_919))
            .collect()
    }

    fn event_strings(n: usize) -> Vec<Option<String>> {
        (0..n)
            .map(|i| (i % 11 != 3).then(|| format!("event-{i:08}{}", "y".repeat(i % 13))))
            .collect()
    }

    /// The first call of [`gather_calls`]: rows early in a chunk.
    const EARLY_ROWS: [u32; 3] = [1, 3, 40];

    /// Calls of rows (ascending across calls) over a chunk of `n` rows
    /// with a page boundary (or any row) at `boundary`: early rows; rows
    /// of a page, then later ones of it and of the next; single rows one
    /// after the other; rows spread over the chunk; the last row.
    fn gather_calls(n: u32, boundary: u32) -> [Vec<Vec<u32>>; 5] {
        [
            vec![EARLY_ROWS.to_vec()],
            vec![
                vec![1, 3],
                vec![130, boundary - 1],
                vec![boundary, boundary + 1, n - n / 4],
            ],
            vec![vec![0], vec![1], vec![2], vec![1_000, 1_001]],
            vec![(0..n).step_by(997).collect()],
            vec![vec![n - 1]],
        ]
    }

    /// Rows early in a big plain page are read without the rest of it
    /// (snappy, zstd, or not compressed; with nulls or without), rows asked for
    /// later read it on, and every read gives the values the rows hold.
    #[test]
    fn a_plain_page_is_read_as_far_as_the_rows_wanted_reach() {
        let n = 30_000;
        let strings = event_strings(n);
        let micros = event_micros(n);
        let with_nulls: [(ArrayRef, ColumnKind); 2] = [
            (
                Arc::new(StringArray::from(strings.clone())),
                ColumnKind::Strings,
            ),
            (
                Arc::new(TimestampMicrosecondArray::from(micros.clone())),
                ColumnKind::Timestamps(TimeUnit::Microsecond),
            ),
        ];
        let (strings, micros) = filled(&strings, &micros);
        let without_nulls: [(ArrayRef, ColumnKind); 2] = [
            (
                Arc::new(StringArray::from(strings.clone())),
                ColumnKind::Strings,
            ),
            (
                Arc::new(TimestampMicrosecondArray::from(micros.clone())),
                ColumnKind::Timestamps(TimeUnit::Microsecond),
            ),
        ];
        let cases = [
            (Compression::SNAPPY, WriterVersion::PARQUET_1_0),
            (Compression::UNCOMPRESSED, WriterVersion::PARQUET_1_0),
            (
                Compression::ZSTD(Default::default()),
                WriterVersion::PARQUET_1_0,
            ),
            // Data pages v2: levels stored apart from the values, which
            // are compressed or not.
            (Compression::SNAPPY, WriterVersion::PARQUET_2_0),
            (Compression::UNCOMPRESSED, WriterVersion::PARQUET_2_0),
            (
                Compression::ZSTD(Default::default()),
                WriterVersion::PARQUET_2_0,
            ),
        ];
        for (codec, version) in cases {
            for (array, kind) in with_nulls.iter().chain(&without_nulls) {
                let (bytes, chunk) = plain_file(array.clone(), codec, version);
                let reader = CountingReader::new(bytes);
                let (_, length) = chunk.byte_range();
                // In one call, or two: the second reads the first page on.
                for calls in [
                    vec![vec![1u32, 3, 40]],
                    vec![vec![1, 3], vec![5_000, 19_999, 20_000, 20_001]],
                    vec![(0..n as u32).step_by(1_009).collect()],
                    vec![vec![29_999]],
                ] {
                    let label = format!("{codec:?} {version:?} {kind:?}");
                    let read = assert_gathers(&reader, &chunk, *kind, array, &calls, &label);
                    // zstd gives whole blocks (128 KiB): the first of the
                    // strings' page's four (the timestamps' 160 KB are
                    // two).
                    let most = match (codec, kind) {
                        (Compression::ZSTD(_), ColumnKind::Strings) => length as usize / 2,
                        (Compression::ZSTD(_), _) => length as usize,
                        _ => length as usize / 10,
                    };
                    if calls == [vec![1, 3, 40]] {
                        assert!(read < most, "{label}: read {read} of {length}");
                    }
                }
            }
        }
    }

    /// `strings` and `micros` as columns of their kinds, each with its
    /// nulls and then with them filled ([`filled`]).
    fn with_and_without_nulls(
        strings: &[Option<String>],
        micros: &[Option<i64>],
    ) -> [(ArrayRef, ColumnKind); 4] {
        let (filled_strings, filled_micros) = filled(strings, micros);
        let timestamps = ColumnKind::Timestamps(TimeUnit::Microsecond);
        [
            (
                Arc::new(StringArray::from(strings.to_vec())),
                ColumnKind::Strings,
            ),
            (
                Arc::new(StringArray::from(filled_strings)),
                ColumnKind::Strings,
            ),
            (
                Arc::new(TimestampMicrosecondArray::from(micros.to_vec())),
                timestamps,
            ),
            (
                Arc::new(TimestampMicrosecondArray::from(filled_micros)),
                timestamps,
            ),
        ]
    }

    /// Plain values of rows far into a snappy page (strings and
    /// timestamps, with nulls and without, data pages v1 and v2) are
    /// walked to through a window, and read as the rows hold them, in one
    /// call or several. A giant page ([`GIANT_PAGE`]) of strings is read
    /// forward in pieces instead, which hold a piece's values, not all of
    /// those from the first row wanted to the last.
    #[test]
    fn plain_values_far_into_a_snappy_page_are_read_through_a_window() {
        use super::super::page_walk::tests::WINDOW_READS;
        // Pages of 170–240 KB, and of more than 256 KiB (giant in tests).
        for (strings_n, micros_n, giant) in [(10_500, 30_000, false), (60_000, 60_000, true)] {
            for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
                let strings = with_and_without_nulls(&event_strings(strings_n), &event_micros(1));
                let micros = with_and_without_nulls(&event_strings(1), &event_micros(micros_n));
                let arrays = [&strings[..2], &micros[2..]].concat();
                for (array, kind) in &arrays {
                    let n = array.len();
                    let (bytes, chunk) =
                        plain_file_of_pages(array.clone(), Compression::SNAPPY, version, n);
                    let reader = CountingReader::new(bytes);
                    let at = |fraction: f64| (n as f64 * fraction) as u32;
                    for calls in [
                        vec![vec![at(0.75), at(0.75) + 1, at(0.75) + 3, n as u32 - 1]],
                        vec![vec![at(0.65)], vec![at(0.65) + 1, at(0.85)], vec![at(0.98)]],
                        vec![(at(0.7)..at(0.7) + 100).collect()],
                    ] {
                        let label = format!("{version:?} {kind:?} {n} {:?}", calls[0][0]);
                        let windows = WINDOW_READS.with(|w| w.get());
                        let pieces = tests::GIANT_PIECES.with(|p| p.get());
                        assert_gathers(&reader, &chunk, *kind, array, &calls, &label);
                        let windowed = WINDOW_READS.with(|w| w.get()) > windows;
                        let pieced = tests::GIANT_PIECES.with(|p| p.get()) > pieces;
                        // Timestamps far in are stepped to, not decoded.
                        let in_pieces = giant && *kind == ColumnKind::Strings;
                        assert_eq!((windowed, pieced), (!in_pieces, in_pieces), "{label}");
                    }
                }
            }
        }
    }

    /// Timestamps and strings of `n` rows, with nulls and without, each in
    /// a delta encoding writers use for it.
    fn delta_columns(n: usize) -> [(ArrayRef, ColumnKind, Encoding); 5] {
        let strings: Vec<Option<String>> = (0..n)
            .map(|i| (i % 11 != 3).then(|| format!("conversation-{}{}", i / 3, "z".repeat(i % 5))))
            .collect();
        let micros: Vec<Option<i64>> = (0..n as i64)
            .map(|i| (i % 7 != 2).then_some(1_700_000_000_000_000 + i * 7_919 - (i % 3) * 50))
            .collect();
        let (filled_strings, filled_micros) = filled(&strings, &micros);
        [
            (
                Arc::new(TimestampMicrosecondArray::from(micros)),
                ColumnKind::Timestamps(TimeUnit::Microsecond),
                Encoding::DELTA_BINARY_PACKED,
            ),
            (
                Arc::new(TimestampMicrosecondArray::from(filled_micros)),
                ColumnKind::Timestamps(TimeUnit::Microsecond),
                Encoding::DELTA_BINARY_PACKED,
            ),
            (
                Arc::new(StringArray::from(strings)),
                ColumnKind::Strings,
                Encoding::DELTA_BYTE_ARRAY,
            ),
            (
                Arc::new(StringArray::from(filled_strings.clone())),
                ColumnKind::Strings,
                Encoding::DELTA_BYTE_ARRAY,
            ),
            (
                Arc::new(StringArray::from(filled_strings)),
                ColumnKind::Strings,
                Encoding::DELTA_LENGTH_BYTE_ARRAY,
            ),
        ]
    }

    /// A file of the one column `array` in `encoding`, pages of `version`
    /// of at most `page_rows` rows, and its chunk.
    fn delta_file(
        array: &ArrayRef,
        encoding: Encoding,
        version: WriterVersion,
        page_rows: usize,
    ) -> (Bytes, ColumnChunkMetaData) {
        let batch = RecordBatch::try_from_iter_with_nullable([("v", array.clone(), true)]).unwrap();
        let props = WriterProperties::builder()
            .set_writer_version(version)
            .set_dictionary_enabled(false)
            .set_encoding(encoding)
            .set_data_page_size_limit(1 << 30)
            .set_data_page_row_count_limit(page_rows)
            .set_write_batch_size(1_000)
            .build();
        let bytes = write(&batch, props);
        let chunk = first_chunk(&bytes);
        assert!(chunk.encodings().any(|e| e == encoding), "{encoding}");
        (bytes, chunk)
    }

    /// A delta-encoded page is decoded as far as the last row wanted when
    /// it is read; rows asked for later decode it on, and every read gives
    /// the values the rows hold (timestamps and strings, with nulls and
    /// without, data pages v1 and v2).
    #[test]
    fn a_delta_page_is_decoded_as_far_as_the_rows_wanted_reach() {
        let n = 20_000;
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            for (array, kind, encoding) in &delta_columns(n) {
                let (bytes, chunk) = delta_file(array, *encoding, version, 8_000);
                let reader = CountingReader::new(bytes);
                let (_, length) = chunk.byte_range();
                for calls in gather_calls(n as u32, 8_000) {
                    let label = format!("{version:?} {encoding}");
                    let read = assert_gathers(&reader, &chunk, *kind, array, &calls, &label);
                    // A page is decompressed only as far as its first
                    // rows' values (and, of strings, the lengths before
                    // them): a little of the first of three pages. (Of
                    // prefixed strings, the two runs of lengths before
                    // the suffixes are most of the page here.)
                    let prefixed = *encoding == Encoding::DELTA_BYTE_ARRAY;
                    if calls == [EARLY_ROWS.to_vec()] && !prefixed {
                        assert!(
                            read < length as usize / 8,
                            "{label}: read {read} of {length}"
                        );
                    }
                }
            }
        }
    }

    /// Values far into a snappy page of a delta encoding are read through a
    /// window, and every read gives the values the rows hold (data pages v1
    /// and v2, with nulls and without): strings of
    /// `DELTA_LENGTH_BYTE_ARRAY` (as DuckDB's v2 files hold ids: the run
    /// of lengths, then the wanted strings' bytes alone) and timestamps of
    /// `DELTA_BINARY_PACKED` (as they hold timestamps: the run walked a
    /// block at a time).
    #[test]
    fn delta_values_far_into_a_snappy_page_are_read_through_a_window() {
        use super::super::page_walk::tests::WINDOW_READS;
        let strings = event_strings(60_000);
        let (filled_strings, _) = filled(&strings, &[]);
        // Deltas of about 20 bits: pages of 220–650 KB.
        let micros: Vec<Option<i64>> = (0..100_000i64)
            .map(|i| {
                let jitter = (i * 2_654_435_761) % 1_000_003;
                (i % 7 != 2).then_some(1_700_000_000_000_000 + i * 7_919 + jitter)
            })
            .collect();
        let (_, filled_micros) = filled(&[], &micros);
        let string_calls = [
            vec![vec![45_000u32, 45_001, 45_003, 59_999]],
            vec![vec![30_000], vec![30_001, 50_000], vec![59_000]],
        ];
        let micro_calls = [
            vec![vec![85_000u32, 85_001, 85_003, 99_999]],
            vec![vec![88_000], vec![88_001, 95_000], vec![99_000]],
        ];
        let timestamps = ColumnKind::Timestamps(TimeUnit::Microsecond);
        // (values, their kind, encoding, calls of rows to gather)
        type Case<'a> = (ArrayRef, ColumnKind, Encoding, &'a [Vec<Vec<u32>>]);
        let mut cases: Vec<Case> = Vec::new();
        for values in [&strings, &filled_strings] {
            let array: ArrayRef = Arc::new(StringArray::from(values.clone()));
            cases.push((
                array,
                ColumnKind::Strings,
                Encoding::DELTA_LENGTH_BYTE_ARRAY,
                &string_calls,
            ));
        }
        for values in [&micros, &filled_micros] {
            let array: ArrayRef = Arc::new(TimestampMicrosecondArray::from(values.clone()));
            cases.push((
                array,
                timestamps,
                Encoding::DELTA_BINARY_PACKED,
                &micro_calls,
            ));
        }
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            for (array, kind, encoding, all_calls) in &cases {
                let (bytes, chunk) = file_without_dictionary(
                    array.clone(),
                    Compression::SNAPPY,
                    version,
                    *encoding,
                    array.len(),
                );
                let reader = CountingReader::new(bytes);
                for calls in all_calls.iter() {
                    let label = format!("{version:?} {encoding} {:?}", calls[0][0]);
                    let before = WINDOW_READS.with(|w| w.get());
                    assert_gathers(&reader, &chunk, *kind, array, calls, &label);
                    assert!(WINDOW_READS.with(|w| w.get()) > before, "{label}");
                }
            }
        }
    }

    /// A delta page of a whole chunk (as DuckDB writes them) that a gather
    /// first enters late holds only the values from the first row wanted
    /// on: the ones before are decoded, not written out. Rows asked for
    /// later, in the page and past the row it was decoded to, are read on
    /// from there (data pages v1 and v2, with nulls and without).
    #[test]
    fn a_delta_page_entered_late_holds_its_values_from_the_first_row_wanted() {
        let n = 20_000usize;
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            for (array, kind, encoding) in &delta_columns(n) {
                let (bytes, chunk) = delta_file(array, *encoding, version, 1 << 30);
                let label = format!("{version:?} {encoding}");
                // The plain layout of a value: 8 bytes, or a string's
                // length and bytes (at most 22 here).
                let plain_width = if *kind == ColumnKind::Strings { 26 } else { 8 };
                let rows = [vec![15_000u32, 15_003], vec![15_004, 17_000, 19_999]];
                let reader = CountingReader::new(bytes);
                let mut gather =
                    ColumnGather::open(reader, &chunk, *kind, n, None, "v", false).unwrap();
                for rows in rows {
                    assert_gathers_next(&mut gather, array, &rows, &label);
                    // At most the values of the last quarter of the page.
                    let held = gather.column.decoded_plain.len();
                    assert!(held <= n / 4 * plain_width, "{label}: {held} bytes held");
                }
            }
        }
    }

    /// A page of dictionary indices is read as far as the rows wanted
    /// (snappy, zstd or not compressed; strings and timestamps, with nulls
    /// and without): DuckDB and Polars write a row group's indices in one
    /// page. Rows asked for later read it on; every read gives the values
    /// the rows hold.
    #[test]
    fn a_dictionary_encoded_page_is_read_as_far_as_the_rows_wanted_reach() {
        let n = 60_000;
        // 4,000 entries: indices of 12 bits, in one page of 90 KB.
        let strings: Vec<Option<String>> = (0..n)
            .map(|i| (i % 11 != 3).then(|| format!("user-{}", (i * 7_919) % 4_000)))
            .collect();
        let micros: Vec<Option<i64>> = (0..n as i64)
            .map(|i| (i % 7 != 2).then_some(1_700_000_000_000_000 + (i * 7_919) % 4_000))
            .collect();
        let columns = with_and_without_nulls(&strings, &micros);
        let codecs = [
            Compression::SNAPPY,
            Compression::UNCOMPRESSED,
            Compression::ZSTD(Default::default()),
        ];
        let versions = [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0];
        for (codec, version) in codecs.into_iter().flat_map(|c| versions.map(|v| (c, v))) {
            for (array, kind) in &columns {
                let (bytes, chunk) = one_page_file(array, codec, version);
                let reader = CountingReader::new(bytes);
                let (_, length) = chunk.byte_range();
                let data_pages = length as usize - dictionary_len(&chunk);
                for calls in gather_calls(n as u32, 20_000) {
                    let label = format!("{codec:?} {version:?} {kind:?}");
                    let read = assert_gathers(&reader, &chunk, *kind, array, &calls, &label);
                    // zstd gives whole blocks (128 KiB), which here hold
                    // the whole page: it is read once.
                    let most = match codec {
                        Compression::ZSTD(_) => data_pages + 2_048,
                        _ => data_pages / 8,
                    };
                    if calls == [EARLY_ROWS.to_vec()] {
                        let read = read - dictionary_len(&chunk).min(read);
                        assert!(read < most, "{label}: read {read} of {data_pages}");
                    }
                }
            }
        }
    }

    /// A page whose definition levels take most of it (most rows null, in
    /// no pattern, so that they are bit-packed; two entries, so that the
    /// indices pack one bit each), as DuckDB's pages of a conversation's
    /// version are: a gather of its first rows decodes the levels and goes
    /// on from there as far as those rows, and does not decompress the
    /// page whole, levels again included. The values are the rows' either
    /// way.
    #[test]
    fn a_page_mostly_levels_is_read_as_far_as_the_rows_wanted() {
        use super::super::page_walk::tests::WHOLE_PAGES;
        let n = 200_000u64;
        // A multiplicative hash: one row in ten present, in no pattern.
        let mix = |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
        let strings: Vec<Option<&str>> = (0..n)
            .map(|i| (mix(i) % 10 == 0).then_some(if mix(i) % 20 == 0 { "v1" } else { "v2" }))
            .collect();
        let array: ArrayRef = Arc::new(StringArray::from(strings));
        let (bytes, chunk) = one_page_file(&array, Compression::SNAPPY, WriterVersion::PARQUET_1_0);
        let reader = CountingReader::new(bytes);
        WHOLE_PAGES.with(|w| w.borrow_mut().clear());
        assert_gathers(
            &reader,
            &chunk,
            ColumnKind::Strings,
            &array,
            &[EARLY_ROWS.to_vec()],
            "early",
        );
        // The dictionary page (two entries) may be read whole; the data
        // page (35 KB, nine tenths of it levels) is not.
        let whole = WHOLE_PAGES.with(|w| w.borrow().clone());
        assert!(whole.iter().all(|&size| size < 1_024), "{whole:?}");
        // Rows to the page's end read it all, and right.
        let last = n as u32 - 1;
        assert_gathers(
            &reader,
            &chunk,
            ColumnKind::Strings,
            &array,
            &[vec![7, 99_999, last]],
            "spread",
        );
    }

    /// A page of a small dictionary's indices (a bot's, 24 entries: 5 bits
    /// an index), gathered at a few rows a third of the way in, as a
    /// mid-file flow does: read as far as those rows, not whole.
    #[test]
    fn a_small_dictionary_s_indices_are_read_as_far_as_the_rows_wanted() {
        use super::super::page_walk::tests::WHOLE_PAGES;
        let n = 200_000u64;
        let mix = |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
        let strings: Vec<String> = (0..n).map(|i| format!("bot-{}", mix(i) % 24)).collect();
        let array: ArrayRef = Arc::new(StringArray::from(strings));
        let (bytes, chunk) = one_page_file(&array, Compression::SNAPPY, WriterVersion::PARQUET_1_0);
        let reader = CountingReader::new(bytes);
        WHOLE_PAGES.with(|w| w.borrow_mut().clear());
        let rows: Vec<u32> = (70_000..70_008).collect();
        assert_gathers(
            &reader,
            &chunk,
            ColumnKind::Strings,
            &array,
            &[rows],
            "a third in",
        );
        let whole = WHOLE_PAGES.with(|w| w.borrow().clone());
        assert!(whole.iter().all(|&size| size < 1_024), "{whole:?}");
    }

    /// Damage in a page of dictionary indices or of delta-encoded values
    /// read in part never panics, whatever byte is flipped: an error, or
    /// values (as a page without a checksum may give).
    #[test]
    fn a_damaged_indices_or_delta_page_read_in_part_never_panics() {
        let n = 1_500;
        let strings: Vec<Option<String>> = (0..n)
            .map(|i| (i % 5 != 1).then(|| format!("e{}", i % 300)))
            .collect();
        let array: ArrayRef = Arc::new(StringArray::from(strings));
        let encodings = [
            None,
            Some(Encoding::DELTA_LENGTH_BYTE_ARRAY),
            Some(Encoding::DELTA_BYTE_ARRAY),
        ];
        let versions = [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0];
        for (codec, version) in [Compression::SNAPPY, Compression::ZSTD(Default::default())]
            .into_iter()
            .flat_map(|c| versions.map(|v| (c, v)))
        {
            for encoding in encodings {
                let batch =
                    RecordBatch::try_from_iter_with_nullable([("v", array.clone(), true)]).unwrap();
                let props = WriterProperties::builder()
                    .set_compression(codec)
                    .set_writer_version(version)
                    .set_dictionary_enabled(encoding.is_none())
                    .set_data_page_size_limit(1 << 30);
                let props = match encoding {
                    Some(encoding) => props.set_encoding(encoding),
                    None => props,
                };
                let clean = write(&batch, props.build());
                let chunk = first_chunk(&clean);
                let errors = damaged_reads(&clean, &chunk, n);
                assert!(errors > 0, "{codec:?} {version:?} {encoding:?}");
            }
        }
    }

    /// Rows are matched in pages of prefixed strings (`DELTA_BYTE_ARRAY`)
    /// as in the same strings decoded: with nulls and without, in data
    /// pages v1 and v2, against a few values (matched as stored) and many
    /// (decoded first).
    #[test]
    fn prefixed_strings_match_as_decoded_ones_do() {
        let n = 12_000;
        let strings: Vec<Option<String>> = (0..n)
            .map(|i| (i % 13 != 5).then(|| format!("c{}t{}", i % 37, i % 11)))
            .collect();
        let filled: Vec<Option<String>> = strings
            .iter()
            .map(|s| s.clone().or(Some("c0t0".into())))
            .collect();
        let few = vec!["c3t3".to_owned()];
        let some: Vec<String> = ["c0t0", "c1", "c12t1", "c36t8", "nothing"]
            .map(String::from)
            .to_vec();
        // Sorted, as `matching_rows` takes them.
        let mut many: Vec<String> = (0..12).map(|i| format!("c{i}t{i}")).collect();
        many.sort();
        for values in [strings, filled] {
            let array: ArrayRef = Arc::new(StringArray::from(values.clone()));
            for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
                let batch =
                    RecordBatch::try_from_iter_with_nullable([("s", array.clone(), true)]).unwrap();
                let props = WriterProperties::builder()
                    .set_writer_version(version)
                    .set_dictionary_enabled(false)
                    .set_encoding(Encoding::DELTA_BYTE_ARRAY)
                    .set_data_page_row_count_limit(3_000)
                    .set_write_batch_size(500)
                    .build();
                let bytes = write(&batch, props);
                let chunk = first_chunk(&bytes);
                assert!(chunk.encodings().any(|e| e == Encoding::DELTA_BYTE_ARRAY));
                let reader = CountingReader::new(bytes);
                for wanted in [&few, &some, &many] {
                    let got = matching_rows(reader.clone(), &chunk, n, wanted, "s").unwrap();
                    let want = rows_among(&values, wanted);
                    assert!(!want.is_empty() || wanted == &some);
                    assert_eq!(got, want, "{version:?} {wanted:?}");
                }
            }
        }
    }

    /// Damage in a plain page read in part never panics, whatever byte is
    /// flipped: an error, or values (as a whole page without a checksum
    /// may give).
    #[test]
    fn a_damaged_plain_page_read_in_part_never_panics() {
        let n = 1_500;
        let strings: Vec<Option<String>> = (0..n)
            .map(|i| (i % 5 != 1).then(|| format!("e{i}")))
            .collect();
        let array: ArrayRef = Arc::new(StringArray::from(strings));
        for codec in [Compression::SNAPPY, Compression::ZSTD(Default::default())] {
            let errors = damaged_plain_pages(array.clone(), codec, n);
            assert!(errors > 0, "{codec:?}");
        }
    }

    /// How many reads of `array` in a plain page with `codec`, each byte
    /// of its chunk flipped in turn, fail (the others must not panic).
    fn damaged_plain_pages(array: ArrayRef, codec: Compression, n: usize) -> usize {
        let (clean, chunk) = plain_file(array, codec, WriterVersion::PARQUET_1_0);
        damaged_reads(&clean, &chunk, n)
    }

    /// How many reads of early and late rows of the strings of `chunk`
    /// (of `n` rows) in `clean`, each byte of the chunk flipped in turn,
    /// fail (the others must not panic).
    fn damaged_reads(clean: &Bytes, chunk: &ColumnChunkMetaData, n: usize) -> usize {
        let (start, length) = chunk.byte_range();
        // The pages' headers, which the `parquet` crate's page reader also
        // reads (and may panic on: the scan guards it, `super::guard`).
        let mut headers = Vec::new();
        let mut at = start as usize;
        while at < (start + length) as usize {
            let (header, len) = read_page_header(&clean[at..]).unwrap();
            headers.push(at..at + len);
            at += len + header.compressed_size as usize;
        }
        let mut errors = 0;
        for (at, reader) in each_byte_flipped(clean, start as usize..(start + length) as usize) {
            for rows in [vec![2, 3], vec![n as u32 - 1]] {
                let read = || {
                    ColumnGather::open(
                        reader.clone(),
                        chunk,
                        ColumnKind::Strings,
                        n,
                        None,
                        "v",
                        false,
                    )
                    .and_then(|mut g| g.next(&rows))
                };
                let result = if headers.iter().any(|h| h.contains(&at)) {
                    guard("v", read)
                } else {
                    read()
                };
                errors += usize::from(result.is_err());
            }
        }
        errors
    }

    /// Each byte of `range` of `clean` flipped in turn: its offset, and a
    /// reader of the damaged file.
    fn each_byte_flipped(
        clean: &Bytes,
        range: std::ops::Range<usize>,
    ) -> impl Iterator<Item = (usize, CountingReader)> + '_ {
        range.map(|at| {
            let mut bytes = clean.to_vec();
            bytes[at] ^= 0x5a;
            let reader = CountingReader::new(bytes.into());
            (at, reader)
        })
    }

    /// Damage in a big snappy page read through a window never panics:
    /// bytes flipped across the page (one in every few hundred, and the
    /// first ones) give an error or values, for rows far in, of plain
    /// strings, plain timestamps and `DELTA_LENGTH_BYTE_ARRAY` strings.
    #[test]
    fn a_damaged_page_read_through_a_window_never_panics() {
        let n = 40_000;
        let strings: ArrayRef = Arc::new(StringArray::from(event_strings(n)));
        let micros: ArrayRef = Arc::new(TimestampMicrosecondArray::from(event_micros(n)));
        // Deltas of about 20 bits, for a delta page far past the window's
        // least distance.
        let micros_jittered: ArrayRef = Arc::new(TimestampMicrosecondArray::from_iter_values(
            (0..n as i64)
                .map(|i| 1_700_000_000_000_000 + i * 7_919 + (i * 2_654_435_761) % 1_000_003),
        ));
        let cases = [
            (strings.clone(), ColumnKind::Strings, Encoding::PLAIN),
            (
                micros,
                ColumnKind::Timestamps(TimeUnit::Microsecond),
                Encoding::PLAIN,
            ),
            (
                strings,
                ColumnKind::Strings,
                Encoding::DELTA_LENGTH_BYTE_ARRAY,
            ),
            (
                micros_jittered,
                ColumnKind::Timestamps(TimeUnit::Microsecond),
                Encoding::DELTA_BINARY_PACKED,
            ),
        ];
        for (array, kind, encoding) in cases {
            let (clean, chunk) = file_without_dictionary(
                array,
                Compression::SNAPPY,
                WriterVersion::PARQUET_1_0,
                encoding,
                n,
            );
            let (start, length) = chunk.byte_range();
            let (header, header_len) = read_page_header(&clean[start as usize..]).unwrap();
            let body = start as usize + header_len;
            let end = (start + length) as usize;
            assert_eq!(body + header.compressed_size as usize, end);
            let mut errors = 0;
            let flips = (body..body + 64).chain((body..end).step_by(397));
            for (_, reader) in flips.flat_map(|at| each_byte_flipped(&clean, at..at + 1)) {
                let mut gather =
                    ColumnGather::open(reader, &chunk, kind, n, None, "v", false).unwrap();
                errors += usize::from(gather.next(&[30_000, 39_999]).is_err());
            }
            assert!(errors > 0, "{encoding}");
        }
    }

    /// Damage in a dictionary page read in part never panics: each byte
    /// of the page flipped in turn gives an error or values (damage a
    /// page's checksum-free bytes can hide), for rows early and late.
    #[test]
    fn a_damaged_dictionary_read_in_part_never_panics() {
        let n = 1_000;
        let strings: Vec<String> = (0..n).map(|i| format!("e{i}")).collect();
        let array: ArrayRef = Arc::new(StringArray::from(strings));
        for codec in [Compression::SNAPPY, Compression::ZSTD(Default::default())] {
            let (clean, chunk) = dictionary_file(array.clone(), codec);
            let start = chunk.dictionary_page_offset().unwrap() as usize;
            let end = chunk.data_page_offset() as usize;
            let mut errors = 0;
            for (_, reader) in each_byte_flipped(&clean, start..end) {
                for rows in [vec![1, 2], vec![999]] {
                    let read = gathered(&reader, &chunk, ColumnKind::Strings, &rows);
                    errors += usize::from(read.is_err());
                }
            }
            // Damage to the page's header or lengths is found.
            assert!(errors > 0, "{codec:?}");
        }
    }

    /// 5,000 sorted strings in plain pages of 500 rows (page k holds
    /// `k00`..`k99`), written as column `s` with `statistics` (and bounds
    /// in each page header with `header_bounds`): the values, the file and
    /// its chunk.
    fn sorted_strings(
        statistics: EnabledStatistics,
        header_bounds: bool,
    ) -> (Vec<String>, Bytes, ColumnChunkMetaData) {
        let values: Vec<String> = (0..5_000)
            .map(|i| format!("{:02}{:02}", i / 500, i % 100))
            .collect();
        let strings: StringArray = values.iter().map(|v| Some(v.as_str())).collect();
        let batch = RecordBatch::try_from_iter([("s", Arc::new(strings) as ArrayRef)]).unwrap();
        let props = WriterProperties::builder()
            .set_statistics_enabled(statistics)
            .set_write_page_header_statistics(header_bounds)
            .set_dictionary_enabled(false)
            .set_data_page_row_count_limit(500)
            .set_write_batch_size(500)
            .build();
        let bytes = write(&batch, props);
        let chunk = first_chunk(&bytes);
        (values, bytes, chunk)
    }

    /// With a column index (parquet-rs writes one by default), the pages
    /// whose bounds exclude the values are skipped: damage in one of them
    /// goes unread. Without one, every page is read, and the damage found.
    #[test]
    fn pages_the_column_index_excludes_are_not_read() {
        for (statistics, skips) in [
            (EnabledStatistics::Page, true),
            (EnabledStatistics::Chunk, false),
        ] {
            let (values, clean, chunk) = sorted_strings(statistics, false);
            assert_eq!(chunk.column_index_range().is_some(), skips);
            let want: Vec<u32> = (0..5_000)
                .filter(|&i| values[i as usize] == "0307")
                .collect();
            let find =
                |bytes: Bytes| matching_rows(bytes, &chunk, 5_000, &["0307".to_owned()], "s");
            assert_eq!(find(clean.clone()).unwrap(), want);
            // Damage the last page's values (its last bytes).
            let (start, length) = chunk.byte_range();
            let mut damaged = clean.to_vec();
            let end = (start + length) as usize;
            damaged[end - 40..end].fill(0xff);
            let found = find(Bytes::from(damaged));
            if skips {
                assert_eq!(found.unwrap(), want);
            } else {
                assert!(found.is_err());
            }
        }
    }

    /// Pages whose header bounds (as Arrow C++ writes them) exclude the
    /// values are skipped too, with no column index to read.
    #[test]
    fn pages_their_header_bounds_exclude_are_not_read() {
        let (values, clean, chunk) = sorted_strings(EnabledStatistics::Page, true);
        let (start, length) = chunk.byte_range();
        let (first, _) = read_page_header(&clean[start as usize..]).unwrap();
        assert!(first.bounds.is_some());
        let mut damaged = clean.to_vec();
        // No column index to go by: its bytes do not decode.
        let index = chunk.column_index_range().unwrap();
        damaged[index.start as usize..index.end as usize].fill(0xff);
        let end = (start + length) as usize;
        damaged[end - 40..end].fill(0xff);
        let want: Vec<u32> = (0..5_000)
            .filter(|&i| values[i as usize] == "0307")
            .collect();
        let found = matching_rows(
            Bytes::from(damaged.clone()),
            &chunk,
            5_000,
            &["0307".to_owned()],
            "s",
        );
        assert_eq!(found.unwrap(), want);
        // The damage is found when the bounds admit the value.
        let found = matching_rows(
            Bytes::from(damaged),
            &chunk,
            5_000,
            &["0907".to_owned()],
            "s",
        );
        assert!(found.is_err());
    }

    /// The rows of a few that hold a value are the rows `matching_rows`
    /// finds among them, read at those rows alone.
    #[test]
    fn matching_at_a_few_rows_is_matching_rows_among_them() {
        let (bytes, chunk) = file();
        let reader = CountingReader::new(bytes);
        let (_, length) = chunk.byte_range();
        for rows in [
            vec![7u32, 57, 100, 4_999],
            vec![0, 1, 2],
            (0..5_000).step_by(13).collect(),
        ] {
            for values in [
                vec!["v7".to_owned()],
                vec!["v0".to_owned(), "v1".to_owned()],
                vec!["none".to_owned()],
            ] {
                let every = matching_rows(reader.clone(), &chunk, 5_000, &values, "s").unwrap();
                reader.read.store(0, Ordering::Relaxed);
                let got = matching_at(reader.clone(), &chunk, 5_000, &rows, &values, "s").unwrap();
                let want: Vec<u32> = rows.iter().copied().filter(|r| every.contains(r)).collect();
                assert_eq!(got, want, "{rows:?} {values:?}");
                if rows.len() <= 4 {
                    assert!(reader.read.load(Ordering::Relaxed) < length as usize);
                }
                // The rows a few at a time, read on from call to call.
                let mut matching = MatchingAt::open(reader.clone(), &chunk, 5_000, "s").unwrap();
                let mut got = Vec::new();
                for some in rows.chunks(3) {
                    got.extend(matching.among(some, &values).unwrap());
                }
                assert_eq!(got, want, "{rows:?} {values:?}, a few at a time");
            }
        }
    }

    /// Damage in the dictionary page never panics, and reading the
    /// dictionary alone finds what reading the whole chunk finds.
    #[test]
    fn a_damaged_dictionary_page_reads_as_the_whole_chunk_does() {
        let (clean, chunk) = file();
        let start = chunk.dictionary_page_offset().unwrap() as usize;
        let end = chunk.data_page_offset() as usize;
        let mut disagree = Vec::new();
        for at in start..end {
            let mut bytes = clean.to_vec();
            bytes[at] ^= 0x5a;
            let reader = CountingReader::new(bytes.into());
            let alone = guard("s", || matching(&reader, &chunk, "nope"));
            let whole = guard("s", || {
                let mut column = ColumnPages::open(reader.clone(), &chunk, 5_000, "s", true)?;
                while column.advance(every_row)? {}
                Ok(())
            });
            if alone.is_err() != whole.is_err() {
                disagree.push((at, alone, whole));
            }
        }
        assert!(disagree.is_empty(), "{disagree:?}");
    }

    /// The pages that use a chunk's first dictionary carry the number
    /// `matching_rows` gives the matches it computed before reading them,
    /// whether the dictionary was decoded beforehand or by the reader.
    #[test]
    fn pages_of_the_first_dictionary_carry_its_number() {
        let (bytes, chunk) = file();
        let reader = CountingReader::new(bytes);
        for decoded_first in [false, true] {
            let mut column = ColumnPages::open(reader.clone(), &chunk, 5_000, "s", true).unwrap();
            if decoded_first {
                column.decoded_first = ColumnPages::dictionary_alone(&reader, &chunk, 5_000, "s");
                assert!(column.decoded_first.is_some());
            }
            let mut pages = 0;
            while column.advance(every_row).unwrap() {
                let Some(page) = column.page() else { break };
                assert_eq!(page.dictionary_id, FIRST_DICTIONARY);
                pages += 1;
            }
            assert_eq!(pages, 10, "decoded first: {decoded_first}");
        }
    }

    /// `chunk` as a writer that gives no encoding statistics (Polars)
    /// describes it.
    fn without_encoding_statistics(chunk: &ColumnChunkMetaData) -> ColumnChunkMetaData {
        chunk
            .clone()
            .into_builder()
            .clear_page_encoding_stats()
            .build()
            .unwrap()
    }

    /// `bytes` with the stored bytes of every data page that `damage`
    /// picks (by its header) overwritten, headers left whole.
    fn damage_pages(
        bytes: &Bytes,
        chunk: &ColumnChunkMetaData,
        damage: impl Fn(&PageHeader) -> bool,
    ) -> Bytes {
        let (start, length) = chunk.byte_range();
        let mut out = bytes.to_vec();
        let mut at = start as usize;
        while at < (start + length) as usize {
            let (header, header_len) = read_page_header(&bytes[at..]).unwrap();
            let body = at + header_len;
            let end = body + header.compressed_size as usize;
            if header.kind != PageKind::Dictionary && damage(&header) {
                out[body..end].fill(0xff);
            }
            at = end;
        }
        out.into()
    }

    /// Without encoding statistics, a chunk whose dictionary holds no
    /// match is ruled out by its page headers, which say every page uses
    /// the dictionary: no data page is read (damage in them goes unseen),
    /// and a value the dictionary holds is still found, the damage with it.
    #[test]
    fn page_headers_rule_out_a_chunk_without_encoding_statistics() {
        let (bytes, chunk) = file();
        let chunk = without_encoding_statistics(&chunk);
        assert!(chunk.page_encoding_stats_mask().is_none());
        assert!(only_dictionary_encoded(&bytes, &chunk));
        let reader = CountingReader::new(bytes.clone());
        let dictionary = dictionary_len(&chunk);
        assert_eq!(
            matching(&reader, &chunk, "nope").unwrap(),
            Vec::<u32>::new()
        );
        // The dictionary, then at most 256 bytes per page header.
        let read = reader.read.swap(0, Ordering::Relaxed);
        let (_, length) = chunk.byte_range();
        assert!(read <= dictionary + 11 * 256, "{read}");
        assert!(read < dictionary + length as usize, "{read} of {length}");
        let want: Vec<u32> = (0..5_000).filter(|i| i % 50 == 7).collect();
        assert_eq!(matching(&reader, &chunk, "v7").unwrap(), want);

        let damaged = damage_pages(&bytes, &chunk, |_| true);
        let find = |value: &str| {
            guard("s", || {
                matching_rows(damaged.clone(), &chunk, 5_000, &[value.to_owned()], "s")
            })
        };
        assert_eq!(find("nope").unwrap(), Vec::<u32>::new());
        assert!(find("v7").is_err());
    }

    /// A chunk whose dictionary outgrew its limit continues in plain
    /// pages. When the dictionary holds no match, only those are read,
    /// with encoding statistics or without: a value in them is found, and
    /// damage in the dictionary-encoded pages goes unseen.
    #[test]
    fn only_plain_pages_are_read_when_the_dictionary_holds_no_match() {
        let values: Vec<String> = (0..5_000).map(|i| format!("value-{i:05}")).collect();
        let strings: StringArray = values.iter().map(|v| Some(v.as_str())).collect();
        let batch = RecordBatch::try_from_iter([("s", Arc::new(strings) as ArrayRef)]).unwrap();
        let props = WriterProperties::builder()
            .set_dictionary_page_size_limit(4_096)
            .set_data_page_row_count_limit(500)
            .set_write_batch_size(500)
            .build();
        let bytes = write(&batch, props);
        let with_statistics = first_chunk(&bytes);
        let dictionary_encoded =
            |h: &PageHeader| h.encoding == crate::ingest::page_header::encoding::RLE_DICTIONARY;
        let damaged = damage_pages(&bytes, &with_statistics, dictionary_encoded);
        assert_ne!(damaged, bytes, "some pages use the dictionary");
        assert_ne!(
            damage_pages(&bytes, &with_statistics, |h| !dictionary_encoded(h)),
            bytes,
            "some pages are plain"
        );
        let last = values[4_999].clone();
        for chunk in [
            without_encoding_statistics(&with_statistics),
            with_statistics.clone(),
        ] {
            assert!(!only_dictionary_encoded(&bytes, &chunk));
            let find = |bytes: &Bytes, value: &str| {
                guard("s", || {
                    matching_rows(bytes.clone(), &chunk, 5_000, &[value.to_owned()], "s")
                })
            };
            assert_eq!(find(&bytes, &last).unwrap(), [4_999]);
            assert_eq!(find(&damaged, &last).unwrap(), [4_999]);
            // Within the bounds of the first pages, which use the
            // dictionary, but not in it.
            assert_eq!(find(&damaged, "value-00000x").unwrap(), Vec::<u32>::new());
            // A value the dictionary holds: its pages are read.
            assert!(find(&damaged, &values[0]).is_err());
        }
    }

    /// Validity appended a page's positions at a time is the rows' own,
    /// wherever the first null comes (or none) and however the rows are
    /// cut into calls.
    #[test]
    fn nulls_appended_by_positions_are_the_rows_validity() {
        const ROWS: u32 = 24;
        for first_null in 0..=ROWS {
            let positions: Vec<u32> = (0..ROWS)
                .map(|i| match i >= first_null && (i - first_null) % 3 == 0 {
                    true => NULL_ROW,
                    false => i,
                })
                .collect();
            let valid: Vec<bool> = positions.iter().map(|&p| p != NULL_ROW).collect();
            for cut_a in 0..=positions.len() {
                for cut_b in cut_a..=positions.len() {
                    let mut nulls = NullsBuilder::new(positions.len());
                    nulls.append_positions(&positions[..cut_a]);
                    nulls.append_positions(&positions[cut_a..cut_b]);
                    nulls.append_positions(&positions[cut_b..]);
                    match nulls.finish() {
                        None => assert_eq!(first_null, ROWS),
                        Some(got) => assert_eq!(got.iter().collect::<Vec<_>>(), valid),
                    }
                }
            }
        }
    }

    /// Plain `INT64` values gathered by position are the page's, nulls
    /// are 0, and a position before the held values or past the page's
    /// end is an error naming the column, not a panic.
    #[test]
    fn int64_values_are_gathered_by_position() {
        let values: Vec<i64> = (0..10).map(|i| i * 1_000 - 3).collect();
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = Vec::new();
        gather_int64(&data, 5, &[5, 7, NULL_ROW, 14], &mut out, "column `t`").unwrap();
        assert_eq!(out, [values[0], values[2], 0, values[9]]);
        for bad in [4, 15, u32::MAX - 1] {
            let err = gather_int64(&data, 5, &[6, bad], &mut out, "column `t`").unwrap_err();
            assert!(err.to_string().contains("column `t`"), "{err}");
        }
        // A page cut short within a value.
        let err = gather_int64(&data[..75], 0, &[9], &mut out, "column `t`").unwrap_err();
        assert!(err.to_string().contains("column `t`"), "{err}");
    }
}
