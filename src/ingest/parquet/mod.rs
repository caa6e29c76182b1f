//! Parquet input, with the pruning a conversation-key restriction allows.
//!
//! A scan reads only the columns asked for, splits the work by row group
//! (rayon; each task opens its own reader) and, when a [`ScanScope`] names a
//! bot or conversation, skips row groups whose `bot_id` /
//! `conversation_id` statistics cannot contain it and reads only the
//! matching rows of the others. A row group whose column chunk has a bloom
//! filter (DuckDB writes them) that holds none of the values is skipped
//! too, before any of its pages is read (`bloom`: one block read per
//! value). Pruning by conversation-key
//! columns is sound: every event of a conversation carries its key.
//! Nothing is pruned by time, since a conversation's start needs all its
//! events (SPEC 2).
//! Only row groups whose statistics prove every row valid are pruned or
//! filtered; the others are read whole, so that a bad row anywhere still
//! rejects the file in strict mode and is counted in lenient mode.
//!
//! Three readers, from the most to the least specific:
//! - `selected` (late materialisation) reads a filtered row group whose
//!   columns are flat strings and timestamps in plain or dictionary pages —
//!   what pipelines, pyarrow, Spark and DuckDB write: it finds the matching
//!   rows from the key columns and decodes only those rows of the others
//!   (RLE / bit-packed runs by `hybrid`, definition levels by `levels`,
//!   delta encodings by `delta`, a condition's values by `crate::ingest::value_set`);
//!   with a bounding scope (`ScanScope::bounding`), only the rows of a
//!   batch that can bound their conversation (`super::bounds`) are decoded
//!   beyond its timestamp, bot and conversation columns, and a column a
//!   condition holds to one value is not decoded at all; a page of tens of
//!   megabytes (fastparquet writes a column chunk as one) is decoded
//!   forward in pieces (`page_stream`), not whole;
//! - arrow's record reader with a row filter on the key columns, for a
//!   filtered row group in other encodings (delta, byte-stream split);
//! - arrow's record reader over whole row groups otherwise, strings
//!   decoded straight into `Utf8View`.
//!
//! A file is opened once per scan and read by byte ranges, one `pread`
//! each (`file_ranges`), whatever the reader. Its footer is decoded with
//! the column statistics of the columns the scan prunes by or proves valid
//! by, and no others, and without the row groups those statistics or bloom
//! filters leave out (`footer`, after a walk of its thrift by
//! `row_group_skim`).
//!
//! Decoders of third-party data are a trust boundary: see `ingest::guard`.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_select::filter::FilterBuilder;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
    RowFilter,
};
use parquet::arrow::ProjectionMask;
use parquet::basic::Compression;
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData, RowGroupMetaData};
use parquet::file::reader::ChunkReader;
use parquet::file::statistics::Statistics;
use rayon::prelude::*;

mod bloom;
mod brotli_blocks;
mod delta;
mod file_ranges;
mod footer;
mod hybrid;
mod levels;
mod lz4_prefix;
mod null_proof;
mod page_stream;
mod page_walk;
mod row_group_skim;
mod row_stream;
mod selected;
mod snappy_prefix;
mod snappy_stride;
mod snappy_words;
mod stored_pages;
mod zstd_prefix;

pub(crate) use file_ranges::{read_at, FileRanges};

use footer::{read_footer, RowGroupPruning};
use row_stream::SelectedRows;

use super::bounds::{bounding_rows, BoundingRows};
use super::guard::{check_pages, guard};
use super::normalize::check_schema;
use super::scope::{one_of, ScanScope};
use super::to_micros;
use crate::error::{Error, Result};
use crate::schema::{col, COLUMNS};

/// Rows per decoded batch: large enough that per-batch costs vanish, small
/// enough that a batch's columns stay in the CPU's L2 cache while they are
/// decoded, normalised and folded into the store. Measured with
/// `perf stat -r 10 convostat conversations|insights|usage ...` on the
/// 10M-event file (2 threads, 2 MiB L2 per core): 4K rows 195/186/365 ms,
/// 8K 175/168/348, 16K 170/157/341, 32K 175/166/340, 64K 213/207/395.
const BATCH_ROWS: usize = 16_384;

/// Rows per batch of a row group read alone whose selection holds at most
/// two batches of [`BATCH_ROWS`]: the batches are then folded while the
/// next is gathered (`gather_selected`), which needs more than one. With
/// [`BATCH_ROWS`] such a selection was gathered and folded in turn, one
/// batch or two, and a second thread did next to nothing: over files of
/// 100,000 events in one row group (`benches/compare_duckdb.py --events
/// 100000`), a bot's quarter of the rows took as long with one thread as
/// with two. Halved and overlapped, medians of 31 alternated runs over the
/// generator's, DuckDB's and pyarrow's such files: `conversations` 7.58 →
/// 6.70, 7.05 → 6.04 and 7.26 → 6.44 ms; `insights` 6.50 → 6.55, 6.66 →
/// 6.10 and 6.92 → 6.25 ms.
const OVERLAPPED_BATCH_ROWS_LEAST: usize = BATCH_ROWS / 2;

/// The selective reader reads a row group's chunks page by page when at
/// most one row in this many is selected, else each chunk at once; and a
/// condition left after a narrower one (a flow's bot, after its
/// conversation) is tested at the rows found so far under the same rule.
///
/// A flow's conversation holds a few hundred rows of a row group (its id
/// is shared by the bots: `c1` has 144 rows in the first 122,880-row
/// group of DuckDB's 1M-event file). That is more than one in 1,024,
/// the rule before, which took them for many rows: the bot's column and
/// every gathered one were decompressed and decoded whole. At one in
/// 256, medians of 21–31 alternated runs of `flow` at 1M events, first
/// conversation: DuckDB's v2 file 2.3 → 1.8 ms, DuckDB's 2.2 → 1.7,
/// Polars' 3.0 → 2.5, the generator's 1.5 → 1.3, pyarrow's 2.0 → 1.7;
/// mid-file, 0.1–0.4 ms less (pyarrow's within noise). At 10M events
/// and over the hourly files, flows took as long or less. One in 64 was
/// a little faster still, but would read a batch query's rows of a bot
/// with 1% of the rows page by page, which none of these measured.
const SPARSE_ROWS: usize = 256;

/// The fewest rows of a row group whose one condition the selective reader
/// matches on a thread of its own ([`row_stream`]); an hourly file's few
/// thousand rows are not worth a thread.
const STREAMED_ROWS_LEAST: usize = 8 * BATCH_ROWS;

/// The fewest bytes (decompressed) of a conversation's column chunk whose
/// rows a flow matches on a thread of its own, and then its bot's at
/// those rows on another ([`row_stream`]). (Tests use 64 KiB.) It was 16
/// MiB: fastparquet's 1M-event file, whose conversation column is 7.8 MB
/// of plain strings in one row group, was then matched, and its bot
/// checked, on one thread. At 4 MiB, the mid-file flow over it took 36.6
/// → 34.9 ms (medians of 61 alternated runs; minima 34.6 → 30.3 ms), the
/// first conversation's 14.0 → 13.9 ms (31).
const STREAMED_CHUNK_LEAST: i64 = if cfg!(test) { 64 << 10 } else { 4 << 20 };

/// `schema` with top-level `Utf8` / `LargeUtf8` fields as `Utf8View`:
/// plain strings are decoded straight into views, without a copy into an
/// offsets buffer, and views are what normalisation wants anyway. (Asking
/// for `Dictionary(Int32, Utf8)` where every page is dictionary-encoded was
/// measured too: no faster on whole row groups of a clustered file.)
fn with_string_views(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 => {
                f.as_ref().clone().with_data_type(DataType::Utf8View)
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// A Parquet file's metadata: its footer, the arrow schema it is read
/// with (strings as views), and arrow's reader metadata for that schema,
/// made the first time a row group goes to arrow's reader. Building the
/// latter converts the schema again, which a file read only by the
/// selective reader (most small files) never needs.
struct FileMetadata {
    parquet: Arc<ParquetMetaData>,
    schema: SchemaRef,
    reader: std::sync::Mutex<Option<ArrowReaderMetadata>>,
}

impl FileMetadata {
    fn new(
        parquet: Arc<ParquetMetaData>,
        schema: SchemaRef,
        reader: Option<ArrowReaderMetadata>,
    ) -> Self {
        Self {
            parquet,
            schema,
            reader: std::sync::Mutex::new(reader),
        }
    }

    fn metadata(&self) -> &Arc<ParquetMetaData> {
        &self.parquet
    }

    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Arrow's reader metadata for the file read as [`Self::schema`];
    /// errors name the file `name`.
    fn reader(&self, name: &str) -> Result<ArrowReaderMetadata> {
        let mut slot = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(reader) = &*slot {
            return Ok(reader.clone());
        }
        let reader = guard(name, || {
            ArrowReaderMetadata::try_new(
                self.parquet.clone(),
                ArrowReaderOptions::new().with_schema(self.schema.clone()),
            )
            .map_err(|e| Error::data_from(name, e))
        })?;
        *slot = Some(reader.clone());
        Ok(reader)
    }
}

/// The last schema this thread accepted: a file's Parquet schema and
/// embedded arrow schema (`ARROW:schema`), and the arrow schema, strings as
/// views, it is read with. Converting a schema costs as much as decoding the
/// footer, and a job over many small files of one schema (hourly
/// partitions) would otherwise convert it twice a file; the schema checks
/// (SPEC 1) are a function of the schema, so a schema known here passed
/// them.
struct KnownSchema {
    root: parquet::schema::types::TypePtr,
    hint: Option<String>,
    hinted: SchemaRef,
}

thread_local! {
    static KNOWN_SCHEMA: std::cell::RefCell<Option<KnownSchema>> =
        const { std::cell::RefCell::new(None) };
}

impl KnownSchema {
    /// The embedded arrow schema of `metadata`, if any.
    fn hint(metadata: &ParquetMetaData) -> Option<&str> {
        metadata
            .file_metadata()
            .key_value_metadata()?
            .iter()
            .find(|kv| kv.key == parquet::arrow::ARROW_SCHEMA_META_KEY)?
            .value
            .as_deref()
    }

    /// The schema to read `metadata`'s file with, if this thread accepted
    /// the same schema before.
    fn lookup(metadata: &ParquetMetaData) -> Option<SchemaRef> {
        let root = metadata.file_metadata().schema_descr().root_schema();
        KNOWN_SCHEMA.with_borrow(|known| {
            known
                .as_ref()
                .filter(|k| *k.root == *root && k.hint.as_deref() == Self::hint(metadata))
                .map(|k| k.hinted.clone())
        })
    }

    /// Remembers that `metadata`'s schema passed the checks and is read
    /// as `hinted`.
    fn remember(metadata: &ParquetMetaData, hinted: SchemaRef) {
        let known = KnownSchema {
            root: metadata.file_metadata().schema_descr().root_schema_ptr(),
            hint: Self::hint(metadata).map(str::to_owned),
            hinted,
        };
        KNOWN_SCHEMA.with_borrow_mut(|slot| *slot = Some(known));
    }
}

/// Whether row group statistics allow a value of column `leaf` among
/// `values` (`true` when unknown).
fn may_contain(rg: &RowGroupMetaData, leaf: usize, values: &[String]) -> bool {
    let Some(stats) = rg.column(leaf).statistics() else {
        return true;
    };
    if stats.physical_type() != parquet::basic::Type::BYTE_ARRAY {
        return true;
    }
    values.iter().any(|value| {
        let v = value.as_bytes();
        let below = stats.min_bytes_opt().is_some_and(|min| v < min);
        let above = stats.max_bytes_opt().is_some_and(|max| v > max);
        !(below || above)
    })
}

/// Whether the bloom filter of some condition's column chunk in `rg` holds
/// none of its values, so that no row of `rg` can match: a filter proves
/// a value absent (no false negatives), never present. A chunk without a
/// filter, or whose filter cannot be read, excludes nothing (its pages are
/// read, and report any damage).
///
/// Scopes add narrower conditions last (a bot, then one of its
/// conversations), and the narrowest is the one whose filter is likely to
/// exclude: the filters are probed from the last condition back, so that
/// a row group without the conversation costs one probe, not also one of
/// a bot that every row group of an interleaved file holds.
fn bloom_filters_exclude<R: ChunkReader>(
    reader: &R,
    rg: &RowGroupMetaData,
    conditions: &[(usize, Vec<String>)],
) -> bool {
    conditions.iter().rev().any(|(leaf, values)| {
        let chunk = rg.column(*leaf);
        if chunk.bloom_filter_offset().is_none()
            || chunk.column_descr().physical_type() != parquet::basic::Type::BYTE_ARRAY
        {
            return false;
        }
        bloom::may_hold_any(reader, chunk, values) == Some(false)
    })
}

/// Whether row group statistics prove every value of column `leaf` to be
/// one of `values`: its minimum and maximum are equal and among them, and
/// it has no null.
fn holds_only(rg: &RowGroupMetaData, leaf: usize, values: &[String]) -> bool {
    let Some(stats) = rg.column(leaf).statistics() else {
        return false;
    };
    if stats.physical_type() != parquet::basic::Type::BYTE_ARRAY
        || stats.null_count_opt() != Some(0)
    {
        return false;
    }
    match (stats.min_bytes_opt(), stats.max_bytes_opt()) {
        (Some(min), Some(max)) => min == max && values.iter().any(|v| v.as_bytes() == min),
        _ => false,
    }
}

/// Refuses, before anything is decoded, a column chunk to be read whose
/// compression codec this build cannot decompress (LZO, which no Parquet
/// implementation in Rust reads), naming the codec, the column and the file.
/// Every other codec of the format is built in.
fn check_codecs(
    name: &str,
    row_groups: &[RowGroupMetaData],
    plan: &[RowGroupRead],
    read: impl Fn(usize) -> bool,
) -> Result<()> {
    for &RowGroupRead { index: rg, .. } in plan {
        for (leaf, column) in row_groups[rg].columns().iter().enumerate() {
            let codec = column.compression();
            let supported = !matches!(codec, Compression::LZO);
            if !supported && read(leaf) {
                return Err(Error::data(
                    format!("{name}: column `{}`", column.column_descr().path().string()),
                    format!(
                        "Parquet compression codec {codec} is not supported (supported: \
                         UNCOMPRESSED, SNAPPY, GZIP, BROTLI, LZ4, LZ4_RAW, ZSTD)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// How the rows of a decoded batch relate to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RowsRead {
    /// Consecutive rows of the file, the first with this 1-based number;
    /// the scope was not applied.
    Whole {
        /// 1-based number of the batch's first row in the file.
        first_row: u64,
    },
    /// Only rows inside the scope, from a row group whose statistics prove
    /// every required value present and in range.
    Filtered {
        /// With a bounding scope (`ScanScope::bounding`), the number of
        /// rows inside the scope left out of the batch (possibly 0): only
        /// the rows that can bound their conversation came. `None`: the
        /// batch was not bounded.
        left_out: Option<u64>,
        /// When rows were left out: per row of the batch, the latest
        /// timestamp (µs) of its conversation in the rows it was kept
        /// from (`BoundingRows::latest`).
        latest: Option<Vec<i64>>,
    },
}

/// Whether the metadata of `rg` proves that no row of it can be rejected:
/// no null in a required column and timestamps that fit µs. Only such row
/// groups may be pruned or filtered by scope, so that strict mode still
/// rejects a file with a bad row anywhere (SPEC 1).
///
/// `None` when it cannot be proven; else the required columns for which
/// it holds only if their definition levels, read first, show no null:
/// optional columns without a null count in their statistics (Spark and
/// pyarrow write no statistics for `INT96` timestamps).
fn validity_proof(
    rg: &RowGroupMetaData,
    leaf_of: &impl Fn(&str) -> Option<usize>,
    timestamp: &DataType,
) -> Option<Vec<usize>> {
    if !timestamps_fit_micros(rg, leaf_of(col::TIMESTAMP)?, timestamp) {
        return None;
    }
    let mut to_check = Vec::new();
    for (name, _) in COLUMNS.iter().filter(|(_, required)| *required) {
        let leaf = leaf_of(name)?;
        let column = rg.column(leaf);
        let descr = column.column_descr();
        // A leaf without definition levels cannot hold a null.
        if descr.max_def_level() == 0 {
            continue;
        }
        match column.statistics().and_then(|s| s.null_count_opt()) {
            Some(0) => {}
            Some(_) => return None,
            None if descr.max_def_level() == 1 && descr.max_rep_level() == 0 => to_check.push(leaf),
            None => return None,
        }
    }
    Some(to_check)
}

/// Whether every timestamp of `rg` (column `leaf`, read as `timestamp`)
/// is in µs range. Microseconds and nanoseconds always are. Seconds and
/// milliseconds can overflow it; they are proven in range by the chunk's
/// min and max statistics (a file's stored values are in its own unit, no
/// coarser than the one read, so scaling them by the read unit's factor
/// over-estimates). Without statistics, nothing is proven.
fn timestamps_fit_micros(rg: &RowGroupMetaData, leaf: usize, timestamp: &DataType) -> bool {
    let per_unit: i64 = match timestamp {
        DataType::Timestamp(TimeUnit::Microsecond | TimeUnit::Nanosecond, _) => return true,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000,
        DataType::Timestamp(TimeUnit::Second, _) => 1_000_000,
        _ => return false,
    };
    let Some(Statistics::Int64(stats)) = rg.column(leaf).statistics() else {
        return false;
    };
    let fits = |v: Option<&i64>| v.is_some_and(|v| v.checked_mul(per_unit).is_some());
    fits(stats.min_opt()) && fits(stats.max_opt())
}

/// How one row group of a scan is read.
struct RowGroupRead {
    index: usize,
    /// Only the rows in scope (else every row, for the caller to validate
    /// and scope).
    filtered: bool,
    /// Whether any row may be in scope, if the row group is valid.
    may_match: bool,
    /// Required columns whose levels are read first (see
    /// [`validity_proof`]): with a null, the row group is read whole.
    to_check: Vec<usize>,
}

/// Reads a Parquet file or buffer, calling `sink(batch, rows)` for each
/// decoded batch (from several threads at once). `open` gives a fresh
/// reader for each parallel task; `name` names the input in errors;
/// `columns` (None = all) is the projection.
///
/// The file's schema is checked first (SPEC 1: missing required columns or
/// unsupported types reject it). With a non-empty `scope`, row groups whose
/// statistics prove them valid are pruned by the scope's columns and
/// filtered while decoding ([`RowsRead::Filtered`]); any other row group is
/// read whole ([`RowsRead::Whole`]) so that its rows can be validated, and
/// the caller applies the scope after normalisation. Rows read by the
/// selective reader leave out the scope's elided columns
/// ([`ScanScope::eliding`]). Returns the number of rows the file holds.
pub(crate) fn scan_parquet<R, O, S>(
    name: &str,
    open: O,
    columns: Option<&[&str]>,
    scope: &ScanScope,
    sink: S,
) -> Result<u64>
where
    R: ChunkReader + 'static,
    O: Fn() -> Result<R> + Sync,
    S: Fn(RecordBatch, RowsRead) -> Result<()> + Sync,
{
    let context = |e: parquet::errors::ParquetError| Error::data_from(name, e);
    let (metadata, (first_rows, total)) = guard(name, || {
        // Only where a scope is: row groups the plan below would not read
        // are not decoded, and statistics are read for the scope's columns
        // (pruning) and the required ones (`validity_proof`) alone.
        let pruning = (!scope.is_all()).then(|| RowGroupPruning {
            conditions: scope.conditions().collect(),
            required: COLUMNS
                .iter()
                .filter(|(_, required)| *required)
                .map(|(c, _)| *c)
                .collect(),
            timestamp: col::TIMESTAMP,
        });
        let keep_statistics = |column: &str| {
            pruning.as_ref().is_some_and(|p| {
                p.conditions.iter().any(|(c, _)| *c == column) || p.required.contains(&column)
            })
        };
        let footer = read_footer(&open()?, keep_statistics, pruning.as_ref()).map_err(context)?;
        let rows = (footer.first_rows, footer.rows);
        let parquet = Arc::new(footer.metadata);
        if let Some(schema) = KnownSchema::lookup(&parquet) {
            return Ok((FileMetadata::new(parquet, schema, None), rows));
        }
        let metadata =
            ArrowReaderMetadata::try_new(parquet, ArrowReaderOptions::new()).map_err(context)?;
        check_schema(metadata.schema()).map_err(|e| e.within(name))?;
        let hinted = with_string_views(metadata.schema());
        KnownSchema::remember(metadata.metadata(), hinted.clone());
        let parquet = metadata.metadata().clone();
        // Arrow's reader for this schema, if it is the file's own.
        let reader = (hinted == *metadata.schema()).then_some(metadata);
        Ok((FileMetadata::new(parquet, hinted, reader), rows))
    })?;
    let parquet_schema = metadata.metadata().file_metadata().schema_descr_ptr();
    let leaf_of = |column: &str| {
        parquet_schema
            .columns()
            .iter()
            .position(|c| c.path().parts() == [column])
    };
    let timestamp_type = metadata
        .schema()
        .field_with_name(col::TIMESTAMP)
        .map(|f| f.data_type().clone())
        .unwrap_or(DataType::Null);
    // A required column of type `Null` is null in every row: no row group
    // of it is valid, none may be pruned or filtered.
    let typed_keys = COLUMNS
        .iter()
        .filter(|(_, required)| *required)
        .all(|(name, _)| {
            metadata
                .schema()
                .field_with_name(name)
                .is_ok_and(|f| *f.data_type() != DataType::Null)
        });
    let row_groups = metadata.metadata().row_groups();
    let conditions: Vec<(usize, Vec<String>)> = scope
        .conditions()
        .filter_map(|(c, v)| leaf_of(c).map(|leaf| (leaf, v.to_vec())))
        .collect();
    // Every row group that may have to be read.
    let plan: Vec<RowGroupRead> = (0..row_groups.len())
        .filter_map(|index| {
            let rg = &row_groups[index];
            let whole = RowGroupRead {
                index,
                filtered: false,
                may_match: true,
                to_check: Vec::new(),
            };
            if scope.is_all() || !typed_keys {
                return Some(whole);
            }
            let Some(to_check) = validity_proof(rg, &leaf_of, &timestamp_type) else {
                return Some(whole);
            };
            let may_match = conditions.iter().all(|(leaf, v)| may_contain(rg, *leaf, v));
            // A row group whose every row is in scope (a file clustered by
            // bot) is read whole: nothing to select, and arrow's reader
            // decodes contiguous rows fastest.
            let all_match = conditions.iter().all(|(leaf, v)| holds_only(rg, *leaf, v));
            (may_match || !to_check.is_empty()).then_some(RowGroupRead {
                index,
                filtered: !conditions.is_empty() && !all_match,
                may_match,
                to_check,
            })
        })
        .collect();
    let projection = match columns {
        None => ProjectionMask::all(),
        Some(names) => ProjectionMask::columns(&parquet_schema, names.iter().copied()),
    };
    check_codecs(name, row_groups, &plan, |leaf| {
        projection.leaf_included(leaf) || conditions.iter().any(|(l, _)| *l == leaf)
    })?;
    crate::parallel::try_each(&plan, |read| {
        guard(name, || {
            let rg = read.index;
            let mut filtered = read.filtered;
            if !read.to_check.is_empty() {
                let mut valid = true;
                for &leaf in &read.to_check {
                    let column = row_groups[rg].column(leaf);
                    let context =
                        format!("{name}: column `{}`", column.column_descr().path().string());
                    let rows = row_groups[rg].num_rows().max(0) as usize;
                    if !null_proof::holds_no_null(open()?, column, rows, &context)? {
                        valid = false;
                        break;
                    }
                }
                if !valid {
                    filtered = false;
                } else if !read.may_match {
                    return Ok(());
                }
            }
            if filtered && bloom_filters_exclude(&open()?, &row_groups[rg], &conditions) {
                return Ok(());
            }
            // The selective reader's own decoders size nothing by a count a
            // page header declares: its pages need no `check_pages`.
            if filtered
                && read_selected(
                    name,
                    &open,
                    &row_groups[rg],
                    metadata.schema(),
                    &leaf_of,
                    columns,
                    &conditions,
                    scope,
                    plan.len(),
                    &sink,
                )?
            {
                return Ok(());
            }
            // Arrow's decoders read the output columns, and the condition
            // columns for its row filter.
            let is_condition = |leaf: usize| conditions.iter().any(|(l, _)| *l == leaf);
            check_pages(name, open()?, &row_groups[rg], rg, |leaf| {
                projection.leaf_included(leaf) || (filtered && is_condition(leaf))
            })?;
            let builder =
                ParquetRecordBatchReaderBuilder::new_with_metadata(open()?, metadata.reader(name)?)
                    .with_row_groups(vec![rg])
                    .with_projection(projection.clone())
                    .with_batch_size(BATCH_ROWS);
            let builder = if filtered {
                // A fallback for columns the selective reader does not
                // handle: skip runs of unselected rows rather than decode
                // them all and filter (measured faster on interleaved files).
                let builder = builder.with_row_selection_policy(
                    parquet::arrow::arrow_reader::RowSelectionPolicy::Selectors,
                );
                let predicates = conditions
                    .iter()
                    .map(|(leaf, values)| {
                        let values = values.clone();
                        let mask = ProjectionMask::leaves(&parquet_schema, [*leaf]);
                        Box::new(ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
                            one_of(batch.column(0), &values)
                        }))
                            as Box<dyn parquet::arrow::arrow_reader::ArrowPredicate>
                    })
                    .collect();
                builder.with_row_filter(RowFilter::new(predicates))
            } else {
                builder
            };
            let reader = builder.build().map_err(context)?;
            let mut first_row = first_rows[rg];
            for batch in reader {
                let batch = batch.map_err(|e| Error::data_from(name, e))?;
                let rows = batch.num_rows() as u64;
                let read = if filtered {
                    RowsRead::Filtered {
                        left_out: None,
                        latest: None,
                    }
                } else {
                    RowsRead::Whole { first_row }
                };
                sink(batch, read)?;
                first_row += rows;
            }
            Ok(())
        })
    })?;
    Ok(total)
}

/// Reads the rows of row group `rg` that match every condition with the
/// selective reader ([`selected`]), handing them to `sink` in batches of
/// [`BATCH_ROWS`] as [`RowsRead::Filtered`]. Returns `false`, having read
/// nothing, when a column to read is not of a kind that reader handles.
/// When the scan reads fewer row groups (`row_groups`) than there are
/// threads (a file of one large row group), each must spread its own work
/// over the cores: a large selection opens its columns in parallel and
/// folds each batch while the next is gathered. Where row groups already
/// keep every thread busy, that only adds tasks and memory in flight
/// (conversations on the pyarrow file, best of 11 alternated: median
/// 0.175 s without, 0.201 s with).
#[allow(clippy::too_many_arguments)]
fn read_selected<R, O, S>(
    name: &str,
    open: &O,
    rg: &RowGroupMetaData,
    schema: &Schema,
    leaf_of: &impl Fn(&str) -> Option<usize>,
    columns: Option<&[&str]>,
    conditions: &[(usize, Vec<String>)],
    scope: &ScanScope,
    row_groups: usize,
    sink: &S,
) -> Result<bool>
where
    R: ChunkReader + 'static,
    O: Fn() -> Result<R> + Sync,
    S: Fn(RecordBatch, RowsRead) -> Result<()> + Sync,
{
    let Ok(rows_in_group) = u32::try_from(rg.num_rows()) else {
        return Ok(false);
    };
    let rows_in_group = rows_in_group as usize;
    let context = |column: &str| format!("{name}: column `{column}`");
    // (field, leaf, kind) of every column to output.
    let mut plan = Vec::new();
    for field in schema.fields() {
        if columns.is_some_and(|c| !c.contains(&field.name().as_str())) {
            continue;
        }
        let Some(leaf) = leaf_of(field.name()) else {
            return Ok(false);
        };
        let Some(kind) = selected::column_kind(rg.column(leaf), field.data_type()) else {
            return Ok(false);
        };
        plan.push((field, leaf, kind));
    }
    let conditions_readable = conditions.iter().all(|(leaf, _)| {
        let column = rg.column(*leaf);
        // The type of a condition column is the file's string type.
        selected::column_kind(column, &DataType::Utf8) == Some(selected::ColumnKind::Strings)
    });
    if !conditions_readable {
        return Ok(false);
    }
    // The conditions over a large row group that the scan reads alone (a
    // file of fewer row groups than threads) are matched on threads of
    // their own, and their rows handed on page by page (`row_stream`):
    // - one condition's, to the gathers, which start on the first batches
    //   while the rest is matched;
    // - a conversation's (a flow's), matched on this thread, to the bot's
    //   condition, tested at those rows as they come on a thread of its
    //   own. The pages of both columns are then decompressed at the same
    //   time. Only for a conversation's column of plain strings (no
    //   dictionary) of [`STREAMED_CHUNK_LEAST`] bytes or more, long to
    //   match: a flow over a row group singled out by its statistics
    //   otherwise starts no thread (`crate::parallel`), and on pyarrow's
    //   file of one row group (a dictionary), a mid-file flow took
    //   66 → 72 ms streamed.
    // (The pool's size is asked for last: asking starts the pool.)
    let streamed = rows_in_group > STREAMED_ROWS_LEAST
        && match conditions {
            [_] => true,
            [.., (narrowest, _)] => {
                let chunk = rg.column(*narrowest);
                scope.picks_conversations()
                    && chunk.dictionary_page_offset().is_none()
                    && chunk.uncompressed_size() >= STREAMED_CHUNK_LEAST
            }
            [] => false,
        }
        && row_groups < rayon::current_num_threads();
    std::thread::scope(|threads| {
        let mut rows = match conditions {
            [others @ .., (leaf, values)] if streamed => {
                #[cfg(test)]
                tests::streamed_read(name);
                let column = rg.column(*leaf);
                let named = context(&column.column_descr().path().string());
                let rows_named = named.clone();
                let reader = open()?;
                let match_narrowest =
                    move |hand_over: &mut dyn FnMut(&mut Vec<u32>) -> Result<()>| {
                        let mut found = Vec::new();
                        selected::matching_rows_by_page(
                            reader,
                            column,
                            rows_in_group,
                            values,
                            &named,
                            &mut found,
                            &mut *hand_over,
                        )?;
                        hand_over(&mut found)
                    };
                if others.is_empty() {
                    // Matched on a thread of its own: this one gathers.
                    SelectedRows::streamed(threads, &rows_named, match_narrowest)
                } else {
                    // A flow: the narrowest condition (the conversation)
                    // is matched here, each wider one (the bot) on a
                    // thread of its own, at the rows of the narrower ones
                    // as they come.
                    let (feed, mut rows) = SelectedRows::fed(&rows_named);
                    for (leaf, values) in others.iter().rev() {
                        let column = rg.column(*leaf);
                        let named = context(&column.column_descr().path().string());
                        let reader = open()?;
                        let mut before = rows;
                        let rows_named = named.clone();
                        rows = SelectedRows::streamed(threads, &rows_named, move |hand_over| {
                            let mut matching =
                                selected::MatchingAt::open(reader, column, rows_in_group, &named)?;
                            while let Some(some) = before.next_held()? {
                                hand_over(&mut matching.among(&some, values)?)?;
                            }
                            Ok(())
                        });
                    }
                    let matched = match_narrowest(&mut |found| feed.hand_over(found));
                    drop(feed);
                    if let Err(e) = matched {
                        // A wider condition's failure stops this one's
                        // hand-over: that failure is the one to report.
                        rows.hold_more_than(usize::MAX)?;
                        return Err(e);
                    }
                    rows
                }
            }
            _ => SelectedRows::known(rows_matching(open, rg, conditions, &context)?),
        };
        // Enough rows to tell how to read the columns, or all of them.
        rows.hold_more_than((rows_in_group / SPARSE_ROWS).max(2 * BATCH_ROWS))?;
        if rows.complete() && rows.held().is_empty() {
            #[cfg(test)]
            tests::selected_read(name);
            return Ok(true);
        }
        gather_selected(
            name, open, rg, &plan, conditions, scope, row_groups, sink, rows,
        )
    })
}

/// The rows of row group `rg` that match every condition (all its rows
/// without one), ascending.
fn rows_matching<R, O>(
    open: &O,
    rg: &RowGroupMetaData,
    conditions: &[(usize, Vec<String>)],
    context: &impl Fn(&str) -> String,
) -> Result<Vec<u32>>
where
    R: ChunkReader + 'static,
    O: Fn() -> Result<R>,
{
    let rows_in_group = rg.num_rows().max(0) as usize;
    let mut rows: Option<Vec<u32>> = None;
    // Scopes add narrower conditions last (a bot, then one of its
    // conversations): test those first, and stop once no row is left.
    for (leaf, values) in conditions.iter().rev() {
        if rows.as_ref().is_some_and(Vec::is_empty) {
            break;
        }
        let column = rg.column(*leaf);
        let path = column.column_descr().path().string();
        rows = Some(match rows {
            // A few rows left (one conversation's): the column is read at
            // those rows alone, page by page.
            Some(before) if before.len().saturating_mul(SPARSE_ROWS) <= rows_in_group => {
                selected::matching_at(
                    open()?,
                    column,
                    rows_in_group,
                    &before,
                    values,
                    &context(&path),
                )?
            }
            before => {
                let matching = selected::matching_rows(
                    open()?,
                    column,
                    rows_in_group,
                    values,
                    &context(&path),
                )?;
                match before {
                    None => matching,
                    Some(before) => intersect(&before, &matching),
                }
            }
        });
    }
    Ok(rows.unwrap_or_else(|| (0..rows_in_group as u32).collect()))
}

/// The selective reader's second half (see [`read_selected`]): gathers the
/// columns of `plan` at `rows` of `rg`, a batch at a time, and hands the
/// batches to `sink`.
#[allow(clippy::too_many_arguments)]
fn gather_selected<R, O, S>(
    name: &str,
    open: &O,
    rg: &RowGroupMetaData,
    plan: &[(&Arc<Field>, usize, selected::ColumnKind)],
    conditions: &[(usize, Vec<String>)],
    scope: &ScanScope,
    row_groups: usize,
    sink: &S,
    mut rows: SelectedRows,
) -> Result<bool>
where
    R: ChunkReader + 'static,
    O: Fn() -> Result<R> + Sync,
    S: Fn(RecordBatch, RowsRead) -> Result<()> + Sync,
{
    let rows_in_group = rg.num_rows().max(0) as usize;
    let context = |column: &str| format!("{name}: column `{column}`");
    // A few rows (one conversation's) are read page by page, skipping
    // the rest of each chunk; more are spread over most pages, and each
    // chunk is read at once. Rows still being matched are more than
    // `read_selected` waited for: many.
    let known = rows.complete().then(|| rows.held());
    let whole_chunks =
        known.is_none_or(|rows| rows.len().saturating_mul(SPARSE_ROWS) > rows_in_group);
    #[cfg(test)]
    if !whole_chunks {
        tests::read_by_page(name);
    }
    // Columns the scope may leave out are read page by page: none is read
    // while they are left out, and the pages of the rows wanted are read
    // after that.
    let elidable: Vec<bool> = plan
        .iter()
        .map(|(field, _, _)| scope.elided().contains(field.name()))
        .collect();
    // A selection of at most two batches' rows (a bot's quarter of a
    // file of 100,000 events, in one row group) is cut into batches of
    // half the size, so that there are enough of them to fold one while
    // the next is gathered.
    let batch_size = match known {
        Some(rows) if rows.len() <= 2 * BATCH_ROWS => OVERLAPPED_BATCH_ROWS_LEAST,
        _ => BATCH_ROWS,
    };
    // (The pool's size is asked for last: asking starts the pool.)
    let overlap = known.is_none_or(|rows| rows.len() > batch_size)
        && row_groups < rayon::current_num_threads();
    #[cfg(test)]
    if overlap {
        tests::overlapped_read(name);
    }
    // Opening a gather reads its column chunk (when whole): with `overlap`,
    // in parallel, as a row group of millions of rows has chunks of tens
    // of megabytes.
    type Planned<'a> = (&'a Arc<Field>, usize, selected::ColumnKind);
    let open_gather = |((field, leaf, kind), &elidable): (&Planned, &bool)| {
        // A column a condition holds to one value has that value in
        // every selected row: it is not read again.
        let one_value = conditions
            .iter()
            .find(|(l, values)| l == leaf && values.len() == 1)
            .map(|(_, values)| values[0].as_str());
        if let (Some(value), selected::ColumnKind::Strings) = (one_value, kind) {
            return Ok(ColumnSource::Constant(ConstantColumn::new(value)));
        }
        let timezone = match field.data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        selected::ColumnGather::open(
            open()?,
            rg.column(*leaf),
            *kind,
            rows_in_group,
            timezone,
            &context(field.name()),
            whole_chunks && !elidable,
        )
        .map(|g| ColumnSource::Gather(Box::new(g)))
    };
    let mut gathers = if overlap {
        plan.par_iter()
            .zip(&elidable)
            .map(open_gather)
            .collect::<Result<Vec<_>>>()?
    } else {
        plan.iter()
            .zip(&elidable)
            .map(open_gather)
            .collect::<Result<Vec<_>>>()?
    };
    #[cfg(test)]
    tests::selected_read(name);
    // With a bounding scope, a batch's key columns are read first, and the
    // others only at the rows that can bound their conversation.
    let key_columns = [col::TIMESTAMP, col::BOT_ID, col::CONVERSATION_ID];
    let key_of = |name: &str| plan.iter().position(|(field, _, _)| field.name() == name);
    let keys: Option<[usize; 3]> = if scope.is_bounding() {
        match key_columns.map(key_of) {
            [Some(t), Some(b), Some(c)] => Some([t, b, c]),
            _ => None,
        }
    } else {
        None
    };
    // A batch at a time: buffers stay small and cache-resident, and the
    // columns of a batch are gathered in parallel, unless they are read at
    // a few rows, page by page (a flow's), from little of each chunk
    // (`light_gathers`): each column then takes too little time to be
    // worth handing to another thread, and a scan of one row group starts
    // no thread at all (`crate::parallel`).
    let parallel_gathers =
        whole_chunks || !light_gathers(rg, plan.iter().map(|p| p.1), rows.held(), rows_in_group);
    // In parallel, the costliest chunks go first (`gather_cost`), each
    // claimed by the first thread free (`try_map_claimed`): the longest
    // gathers then run on different threads, rather than one after the
    // other on the thread whose half of the list holds them (a mid-file
    // flow on DuckDB's v2 file: event ids, timestamps and user ids, 0.67
    // ms, while the other thread gathered the six small columns in 0.22
    // ms).
    let costs: Vec<i64> = plan
        .iter()
        .map(|(_, leaf, _)| gather_cost(rg.column(*leaf)))
        .collect();
    let gather = |gathers: &mut [ColumnSource],
                  which: &(dyn Fn(usize) -> bool + Sync),
                  rows: &[u32],
                  last: bool|
     -> Result<Vec<(usize, ArrayRef)>> {
        let asked = |(i, _): &(usize, &mut ColumnSource)| which(*i);
        let next = |(i, g): (usize, &mut ColumnSource)| g.next(rows, last).map(|a| (i, a));
        if parallel_gathers {
            let mut asked: Vec<_> = gathers.iter_mut().enumerate().filter(asked).collect();
            asked.sort_by_key(|(i, _)| std::cmp::Reverse(costs[*i]));
            crate::parallel::try_map_claimed(asked, next)
        } else {
            gathers
                .iter_mut()
                .enumerate()
                .filter(asked)
                .map(next)
                .collect()
        }
    };
    let mut make = |batch_rows: &[u32], last: bool| -> Result<(RecordBatch, RowsRead)> {
        let eliding = scope.eliding_now();
        let wanted = |i: usize| !(elidable[i] && eliding);
        let mut arrays: Vec<Option<ArrayRef>> = vec![None; plan.len()];
        let mut rows_of_others = batch_rows;
        let kept_rows: Vec<u32>;
        let mut left_out = None;
        let mut latest = None;
        if let Some(keys) = keys {
            // Bounded, even when nothing is left out: not to be again.
            left_out = Some(0);
            let gathered = gather(&mut gathers, &|i| keys.contains(&i), batch_rows, last)?;
            for (i, array) in gathered {
                arrays[i] = Some(array);
            }
            if let Some(bounds) = bounding_rows_of(&arrays, keys) {
                let keep = bounds.keep;
                let predicate = FilterBuilder::new(&keep).optimize().build();
                for i in keys {
                    if let Some(array) = &arrays[i] {
                        arrays[i] = Some(
                            predicate
                                .filter(array)
                                .map_err(|e| Error::data_from(name, e))?,
                        );
                    }
                }
                kept_rows = keep.values().set_indices().map(|i| batch_rows[i]).collect();
                left_out = Some((batch_rows.len() - kept_rows.len()) as u64);
                latest = Some(bounds.latest);
                rows_of_others = &kept_rows;
            }
        }
        let others = gather(
            &mut gathers,
            &|i| keys.is_none_or(|k| !k.contains(&i)) && wanted(i),
            rows_of_others,
            last,
        )?;
        for (i, array) in others {
            arrays[i] = Some(array);
        }
        let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = plan
            .iter()
            .zip(arrays)
            .filter_map(|((field, _, _), array)| {
                array.map(|a| (Field::new(field.name(), a.data_type().clone(), true), a))
            })
            .unzip();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| Error::data_from(name, e))?;
        Ok((batch, RowsRead::Filtered { left_out, latest }))
    };
    // With `overlap`, each batch goes to `sink` while the next one is
    // gathered: a file of one large row group would otherwise keep one core
    // busy most of the time. (Whether columns are elided is decided per
    // batch, as it is when row groups are read in parallel.)
    let mut pending: Option<(RecordBatch, RowsRead)> = None;
    let sink_pending = |pending: Option<(RecordBatch, RowsRead)>| {
        pending.map_or(Ok(()), |(batch, read)| sink(batch, read))
    };
    while let Some(batch_rows) = rows.next_batch(batch_size)? {
        let last = rows.complete() && rows.held().is_empty();
        let previous = pending.take();
        let made = if overlap {
            let (sunk, made) = rayon::join(|| sink_pending(previous), || make(&batch_rows, last));
            sunk?;
            made
        } else {
            sink_pending(previous)?;
            make(&batch_rows, last)
        };
        pending = Some(made?);
    }
    sink_pending(pending)?;
    Ok(true)
}

/// Whether reading `rows` (ascending) of the columns `leaves` of `rg`,
/// page by page, decompresses so little that the columns are best read one
/// after the other on one thread: pages that decompress fast (snappy, LZ4,
/// none), and at most [`LIGHT_GATHER_BYTES`] of them before the last row
/// wanted, estimated from the chunks' sizes. zstd, gzip and brotli pages
/// decompress whole blocks (Polars writes zstd pages of 128 KiB blocks)
/// and more slowly, so are never light, but for zstd pages read only as
/// far as their first blocks' first bytes (at most [`LIGHT_ZSTD_BYTES`]
/// of a chunk, estimated), which `page_walk` decodes without decoding
/// their blocks whole.
///
/// First-conversation flows (3 rows at the start of a row group), 40
/// alternated runs, median wall of the whole process: interleaved file
/// 2.60 → 2.25 ms, pyarrow's 2.86 → 2.58 ms, DuckDB's 3.47 → 3.22 ms;
/// Polars' (zstd) file, had it been light: 4.66 → 4.82 ms. A mid-file
/// conversation on DuckDB's file, whose rows lie 70% into pages that hold
/// a whole row group (2.6 MB to decompress, estimated), had it been
/// light: 6.94 → 8.13 ms.
fn light_gathers(
    rg: &RowGroupMetaData,
    leaves: impl Iterator<Item = usize>,
    rows: &[u32],
    rows_in_group: usize,
) -> bool {
    let Some(&last) = rows.last() else {
        return true;
    };
    let reach = (last as f64 + 1.0) / rows_in_group.max(1) as f64;
    let mut bytes = 0.0;
    for leaf in leaves {
        let chunk = rg.column(leaf);
        let prefix = chunk.uncompressed_size().max(0) as f64 * reach;
        match chunk.compression() {
            Compression::GZIP(_) | Compression::BROTLI(_) => return false,
            Compression::ZSTD(_) if prefix > LIGHT_ZSTD_BYTES as f64 => return false,
            _ => bytes += prefix,
        }
    }
    bytes <= LIGHT_GATHER_BYTES as f64
}

/// How long a chunk's gather takes, as an order of the gathers, longest
/// first: its uncompressed size, three times over for a chunk with a
/// dictionary. A few rows deep into a chunk of plain or delta-encoded
/// values cost stepping over the values before them (their snappy
/// elements, their lengths or deltas summed), but in a dictionary-encoded
/// chunk both pages are decoded as far as the rows and the entries they
/// name, and the entries walked. A mid-file flow over DuckDB's 10M-event
/// v2 file took 0.6 ms for its user ids (354 KB with their dictionary),
/// 0.3–0.5 ms for its event ids (1.35 MB, lengths delta-encoded) and
/// 0.27–0.43 ms for its timestamps (474 KB, delta-encoded): by size
/// alone, the user ids went third, on the thread that had just gathered
/// the timestamps, and the other thread was done 0.2–0.3 ms before.
fn gather_cost(chunk: &ColumnChunkMetaData) -> i64 {
    let size = chunk.uncompressed_size().max(0);
    match chunk.dictionary_page_offset() {
        Some(_) => size.saturating_mul(3),
        None => size,
    }
}

/// See [`light_gathers`]: about 0.4 ms of snappy decompression here (a
/// 164 KB page took 135 µs). It lies between a mid-file flow's estimate on
/// files of pages of about 1 MB (150 KB on the files parquet-rs, pyarrow
/// and Polars write) and on DuckDB's, whose pages hold a whole row group
/// (2–2.6 MB).
const LIGHT_GATHER_BYTES: usize = 512 << 10;

/// See [`light_gathers`]: the prefix of a zstd chunk below which its pages
/// are read in part without decoding a whole block.
const LIGHT_ZSTD_BYTES: usize = 16 << 10;

/// Where the selective reader takes a column's values from.
enum ColumnSource {
    /// The column chunk, at the selected rows.
    Gather(Box<selected::ColumnGather>),
    /// One value (a condition's only one), in every selected row.
    Constant(ConstantColumn),
    /// A column whose last batch is gathered: its buffers are freed.
    Finished,
}

impl ColumnSource {
    /// The values at `rows` (see [`selected::ColumnGather::next`]); with
    /// `last` (the last batch), the column's pages are let go of at once.
    /// A flow gathers about ten columns of one batch in turn on a thread,
    /// and a short process's fresh memory is faulted in page by page:
    /// the next column then reuses what this one freed.
    fn next(&mut self, rows: &[u32], last: bool) -> Result<ArrayRef> {
        let values = match self {
            Self::Gather(g) => g.next(rows),
            Self::Constant(c) => Ok(c.next(rows.len())),
            Self::Finished => Err(Error::data(
                "parquet",
                "internal error: a column read again after its last batch",
            )),
        };
        if last {
            *self = Self::Finished;
        }
        values
    }
}

/// A column whose selected rows all hold one value (a query's bot): each
/// batch is a slice of one array of its views, made once and as long as
/// the longest batch asked for, rather than an array of views allocated
/// and written afresh per batch (256 KiB for 16,384 rows). Conversations
/// over DuckDB's 1M-event file of `benches/compare_duckdb.py`, 81
/// alternated runs, medians: wall 25.3 → 24.2 ms, CPU 45.5 → 43.9 ms.
struct ConstantColumn {
    /// The value's view, repeated.
    views: arrow_buffer::ScalarBuffer<u128>,
    /// The value's bytes when they are not inline in its view.
    buffers: Arc<[arrow_buffer::Buffer]>,
}

impl ConstantColumn {
    fn new(value: &str) -> Self {
        let bytes = value.as_bytes();
        let buffers: Vec<arrow_buffer::Buffer> = if bytes.len() > crate::ingest::INLINE_VIEW_LEN {
            vec![arrow_buffer::Buffer::from(bytes)]
        } else {
            vec![]
        };
        Self {
            views: vec![arrow_array::builder::make_view(bytes, 0, 0)].into(),
            buffers: buffers.into(),
        }
    }

    /// `rows` rows of the value.
    fn next(&mut self, rows: usize) -> ArrayRef {
        if self.views.len() < rows {
            let view = self.views[0];
            self.views = vec![view; rows].into();
        }
        // SAFETY: the view is made from a `str` (UTF-8) and, when it is not
        // inline, points at its bytes in the one buffer: what
        // `StringViewArray::try_new` would check.
        Arc::new(unsafe {
            arrow_array::StringViewArray::new_unchecked(
                self.views.slice(0, rows),
                self.buffers.clone(),
                None,
            )
        })
    }
}

/// [`bounding_rows`] of a batch's gathered key columns (timestamp, bot,
/// conversation at `keys`), or `None` when they do not allow it (a
/// timestamp out of the µs range keeps every row, to be reported).
fn bounding_rows_of(arrays: &[Option<ArrayRef>], keys: [usize; 3]) -> Option<BoundingRows> {
    let [t, b, c] = keys.map(|i| arrays[i].as_ref());
    let (timestamps, valid) = to_micros(t?);
    if valid.is_some_and(|v| v.contains(&false)) {
        return None;
    }
    let bots = b?.as_string_view_opt()?;
    let conversations = c?.as_string_view_opt()?;
    bounding_rows(&timestamps, bots, conversations)
}

/// The values in both ascending lists.
fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use arrow_array::cast::AsArray;
    use arrow_array::types::{TimestampMicrosecondType, TimestampMillisecondType};
    use arrow_array::{
        Array, ArrayRef, StringArray, TimestampMillisecondArray, TimestampNanosecondArray,
    };
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::ParquetMetaDataReader;
    use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
    use parquet::schema::types::ColumnPath;

    use super::*;

    /// A chunk with a dictionary goes before a chunk without one up to
    /// three times its size, and after a larger one.
    #[test]
    fn dictionary_chunks_are_gathered_as_if_three_times_their_size() {
        use parquet::basic::Type as PhysicalType;
        use parquet::schema::types::{ColumnDescriptor, Type as SchemaType};
        let leaf = SchemaType::primitive_type_builder("s", PhysicalType::BYTE_ARRAY)
            .build()
            .unwrap();
        let column = Arc::new(ColumnDescriptor::new(
            Arc::new(leaf),
            0,
            0,
            ColumnPath::from("s"),
        ));
        let chunk = |size: i64, dictionary: bool| {
            ColumnChunkMetaData::builder(column.clone())
                .set_total_uncompressed_size(size)
                .set_dictionary_page_offset(dictionary.then_some(4))
                .build()
                .unwrap()
        };
        let (indexed, plain) = (chunk(1_000, true), chunk(2_900, false));
        assert!(gather_cost(&indexed) > gather_cost(&plain));
        assert!(gather_cost(&indexed) < gather_cost(&chunk(3_100, false)));
        assert_eq!(gather_cost(&chunk(-5, true)), 0);
    }

    /// Names of the inputs of which the selective reader read a row group.
    static SELECTED_READS: Mutex<Vec<String>> = Mutex::new(Vec::new());

    pub(super) fn selected_read(name: &str) {
        SELECTED_READS.lock().unwrap().push(name.to_owned());
    }

    fn was_read_selectively(name: &str) -> bool {
        SELECTED_READS.lock().unwrap().iter().any(|n| n == name)
    }

    /// Inputs of which a row group's batches were folded while the next
    /// was gathered.
    static OVERLAPPED_READS: Mutex<Vec<String>> = Mutex::new(Vec::new());

    pub(super) fn overlapped_read(name: &str) {
        OVERLAPPED_READS.lock().unwrap().push(name.to_owned());
    }

    fn was_overlapped(name: &str) -> bool {
        OVERLAPPED_READS.lock().unwrap().iter().any(|n| n == name)
    }

    /// Inputs of which a row group's rows were matched on a thread of
    /// their own (`row_stream`).
    static STREAMED_READS: Mutex<Vec<String>> = Mutex::new(Vec::new());

    pub(super) fn streamed_read(name: &str) {
        STREAMED_READS.lock().unwrap().push(name.to_owned());
    }

    fn was_streamed(name: &str) -> bool {
        STREAMED_READS.lock().unwrap().iter().any(|n| n == name)
    }

    /// Inputs whose selected rows were read page by page.
    static PAGE_READS: Mutex<Vec<String>> = Mutex::new(Vec::new());

    pub(super) fn read_by_page(name: &str) {
        PAGE_READS.lock().unwrap().push(name.to_owned());
    }

    fn was_read_by_page(name: &str) -> bool {
        PAGE_READS.lock().unwrap().iter().any(|n| n == name)
    }

    /// A batch of `n` rows: required `bot_id` / `conversation_id` /
    /// `event_id` / `event_type`, a timestamp of type `ts`, and an optional
    /// `channel_type` with nulls, long and non-ASCII strings.
    fn events(n: usize, ts: &DataType) -> RecordBatch {
        let bots = ["bot-a", "bot-b-with-a-long-name", "bot-ç"];
        let text = |f: &dyn Fn(usize) -> String| -> ArrayRef {
            Arc::new(StringArray::from((0..n).map(f).collect::<Vec<_>>()))
        };
        let channel: ArrayRef = Arc::new(StringArray::from(
            (0..n)
                .map(|i| match i % 7 {
                    0 => None,
                    1 => Some("a channel name longer than twelve".to_owned()),
                    _ => Some(format!("ch{}", i % 5)),
                })
                .collect::<Vec<_>>(),
        ));
        let micros: Vec<i64> = (0..n as i64)
            .map(|i| 1_700_000_000_000_000 + i * 1_003)
            .collect();
        let timestamp: ArrayRef = match ts {
            DataType::Timestamp(TimeUnit::Millisecond, _) => Arc::new(
                TimestampMillisecondArray::from(
                    micros.iter().map(|m| m / 1000).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            DataType::Timestamp(TimeUnit::Nanosecond, _) => Arc::new(
                TimestampNanosecondArray::from(micros.iter().map(|m| m * 1000).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            _ => {
                Arc::new(arrow_array::TimestampMicrosecondArray::from(micros).with_timezone("UTC"))
            }
        };
        let fields = vec![
            Field::new(col::EVENT_ID, DataType::Utf8, false),
            Field::new(col::TIMESTAMP, timestamp.data_type().clone(), false),
            Field::new(col::BOT_ID, DataType::Utf8, false),
            Field::new(col::CONVERSATION_ID, DataType::Utf8, false),
            Field::new(col::EVENT_TYPE, DataType::Utf8, false),
            Field::new(col::CHANNEL_TYPE, DataType::Utf8, true),
        ];
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            vec![
                text(&|i| format!("event-{i:08}-{}", "x".repeat(i % 17))),
                timestamp,
                text(&|i| bots[(i * 7 + i / 3) % 3].to_owned()),
                // A conversation rare enough to be read page by page.
                text(&|i| {
                    if i % 2000 == 1999 {
                        "rare".to_owned()
                    } else {
                        format!("c{}", (i * 13) % 301)
                    }
                }),
                text(&|i| if i % 3 == 0 { "transition" } else { "message" }.to_owned()),
                channel,
            ],
        )
        .unwrap()
    }

    /// `batch` as a Parquet file written with `props` (also used by the
    /// tests of `selected` and `null_proof`).
    pub(super) fn write(batch: &RecordBatch, props: WriterProperties) -> bytes::Bytes {
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
        out.into()
    }

    /// The first column chunk of the first row group of `file`.
    pub(super) fn first_chunk(file: &bytes::Bytes) -> parquet::file::metadata::ColumnChunkMetaData {
        let metadata = ParquetMetaDataReader::new().parse_and_finish(file).unwrap();
        metadata.row_groups()[0].column(0).clone()
    }

    /// `(event_id, micros, bot, conversation, channel)` of every row read.
    type Row = (String, i64, String, String, Option<String>);

    fn rows_of(batch: &RecordBatch) -> Vec<Row> {
        let s = |name: &str| {
            arrow_cast::cast(batch.column_by_name(name).unwrap(), &DataType::Utf8).unwrap()
        };
        let (e, b, c, ch) = (
            s(col::EVENT_ID),
            s(col::BOT_ID),
            s(col::CONVERSATION_ID),
            s(col::CHANNEL_TYPE),
        );
        let ts = arrow_cast::cast(
            batch.column_by_name(col::TIMESTAMP).unwrap(),
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )
        .unwrap();
        let ts = ts.as_primitive::<TimestampMicrosecondType>();
        (0..batch.num_rows())
            .map(|i| {
                (
                    e.as_string::<i32>().value(i).to_owned(),
                    ts.value(i),
                    b.as_string::<i32>().value(i).to_owned(),
                    c.as_string::<i32>().value(i).to_owned(),
                    ch.is_valid(i)
                        .then(|| ch.as_string::<i32>().value(i).to_owned()),
                )
            })
            .collect()
    }

    /// A bounding scope gives, of the rows in scope, at least every row at
    /// its conversation's earliest time, each with its conversation's
    /// latest time, and counts the others it leaves out.
    #[test]
    fn bounding_scope_keeps_each_conversations_bounds_and_counts_the_rest() {
        let n = 5_000;
        let batch = events(n, &DataType::Timestamp(TimeUnit::Microsecond, None));
        // 23 conversations, each with many events in every batch.
        let mut columns = batch.columns().to_vec();
        columns[3] = Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("c{}", i % 23)),
        ));
        let batch = RecordBatch::try_new(batch.schema(), columns).unwrap();
        let want: Vec<Row> = rows_of(&batch)
            .into_iter()
            .filter(|r| r.2 == "bot-a")
            .collect();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(1_700))
            .build();
        let file = write(&batch, props);
        let scope = ScanScope::all().with(col::BOT_ID, ["bot-a"]).bounding();
        let got = Mutex::new((Vec::new(), 0u64, Vec::new()));
        scan_parquet(
            "bounding.parquet",
            || Ok(file.clone()),
            None,
            &scope,
            |b, read| {
                let RowsRead::Filtered { left_out, latest } = read else {
                    panic!("a row group read whole");
                };
                let mut got = got.lock().unwrap();
                let rows = rows_of(&b);
                let latest = latest.expect("rows left out, and their conversations' ends");
                assert_eq!(latest.len(), rows.len());
                got.0.extend(rows);
                got.1 += left_out.expect("every batch bounded");
                got.2.extend(latest);
                Ok(())
            },
        )
        .unwrap();
        let (got, left_out, ends) = got.into_inner().unwrap();
        assert!(left_out > 0);
        assert_eq!(got.len() as u64 + left_out, want.len() as u64);
        assert!(got.iter().all(|r| want.contains(r)));
        let mut bounds: std::collections::HashMap<&str, (i64, i64)> = Default::default();
        for r in &want {
            let b = bounds.entry(r.3.as_str()).or_insert((r.1, r.1));
            *b = (b.0.min(r.1), b.1.max(r.1));
        }
        for (conversation, (earliest, latest)) in bounds {
            let of = |ts: i64| {
                want.iter()
                    .filter(move |r| r.3 == conversation && r.1 == ts)
            };
            assert!(of(earliest).all(|r| got.contains(r)), "{conversation}");
            // Each row given ends at or after itself, and no later than its
            // conversation; the conversation's latest time comes with one.
            let ends: Vec<i64> = got
                .iter()
                .zip(&ends)
                .filter(|(r, _)| r.3 == conversation)
                .map(|(r, &end)| {
                    assert!(r.1 <= end && end <= latest, "{conversation}");
                    end
                })
                .collect();
            assert_eq!(ends.iter().max(), Some(&latest), "{conversation}");
        }
    }

    /// Every layout a writer may choose gives, through the selective
    /// reader, exactly the rows in scope, in file order.
    #[test]
    fn selective_reader_reads_what_arrow_reads() {
        let units = [
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Millisecond, None),
            DataType::Timestamp(TimeUnit::Nanosecond, None),
        ];
        let n = 5_000;
        for (case, ts) in units.iter().enumerate() {
            let batch = events(n, ts);
            let all = rows_of(&batch);
            let layouts = [
                WriterProperties::builder().build(),
                WriterProperties::builder()
                    .set_dictionary_page_size_limit(256) // dictionary, then plain pages
                    .set_encoding(parquet::basic::Encoding::PLAIN)
                    .set_data_page_row_count_limit(300)
                    .set_write_batch_size(100)
                    .set_max_row_group_row_count(Some(1_700))
                    .set_writer_version(WriterVersion::PARQUET_2_0)
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .build(),
                WriterProperties::builder()
                    .set_dictionary_enabled(false)
                    .set_data_page_row_count_limit(1_000)
                    .set_write_batch_size(250)
                    .set_statistics_enabled(EnabledStatistics::Page)
                    .build(),
                // Delta encodings (data page v2, no dictionary).
                WriterProperties::builder()
                    .set_writer_version(WriterVersion::PARQUET_2_0)
                    .set_dictionary_enabled(false)
                    .build(),
                // Delta encodings chosen per column (as DuckDB's v2 writer
                // does for event ids and timestamps), in data page v1.
                {
                    use parquet::basic::Encoding::*;
                    [
                        (col::EVENT_ID, DELTA_LENGTH_BYTE_ARRAY),
                        (col::BOT_ID, DELTA_LENGTH_BYTE_ARRAY),
                        (col::CONVERSATION_ID, DELTA_BYTE_ARRAY),
                        (col::TIMESTAMP, DELTA_BINARY_PACKED),
                    ]
                    .into_iter()
                    .fold(
                        WriterProperties::builder().set_dictionary_enabled(false),
                        |props, (column, encoding)| {
                            props.set_column_encoding(ColumnPath::from(column), encoding)
                        },
                    )
                    .set_data_page_row_count_limit(700)
                    .build()
                },
                // Bloom filters (as DuckDB writes), several row groups.
                WriterProperties::builder()
                    .set_bloom_filter_enabled(true)
                    .set_max_row_group_row_count(Some(2_048))
                    .build(),
            ];
            for (layout, props) in layouts.into_iter().enumerate() {
                let file = write(&batch, props);
                for (scope, keep) in [
                    (
                        ScanScope::all().with(col::BOT_ID, ["bot-a"]),
                        Box::new(|r: &Row| r.2 == "bot-a") as Box<dyn Fn(&Row) -> bool + Sync>,
                    ),
                    (
                        ScanScope::all()
                            .with(col::BOT_ID, ["bot-ç", "bot-b-with-a-long-name"])
                            .with(col::CONVERSATION_ID, ["c7", "c300", "c12"]),
                        Box::new(|r: &Row| {
                            r.2 != "bot-a" && ["c7", "c300", "c12"].contains(&r.3.as_str())
                        }),
                    ),
                    (
                        // A condition on a column with nulls (as the
                        // usage pre-pass has on `team_id`).
                        ScanScope::all().with(
                            col::CHANNEL_TYPE,
                            ["ch1", "a channel name longer than twelve"],
                        ),
                        Box::new(|r: &Row| {
                            matches!(
                                r.4.as_deref(),
                                Some("ch1" | "a channel name longer than twelve")
                            )
                        }),
                    ),
                    (
                        // One value longer than a view holds inline.
                        ScanScope::all().with(col::BOT_ID, ["bot-b-with-a-long-name"]),
                        Box::new(|r: &Row| r.2 == "bot-b-with-a-long-name"),
                    ),
                    (
                        ScanScope::all().with(col::BOT_ID, ["none"]),
                        Box::new(|_: &Row| false),
                    ),
                    (
                        ScanScope::all().with(col::CONVERSATION_ID, ["rare"]),
                        Box::new(|r: &Row| r.3 == "rare"),
                    ),
                ] {
                    let name = format!("t-{case}-{layout}-{scope:?}.parquet");
                    let got = Mutex::new(Vec::new());
                    scan_parquet(
                        &name,
                        || Ok(file.clone()),
                        None,
                        &scope,
                        |b, read| {
                            // Whole row groups (millisecond timestamps may
                            // not fit µs: never filtered) are scoped here.
                            let rows = rows_of(&b).into_iter();
                            let rows: Vec<Row> = match read {
                                RowsRead::Filtered { .. } => rows.collect(),
                                RowsRead::Whole { .. } => rows.filter(|r| keep(r)).collect(),
                            };
                            got.lock().unwrap().extend(rows);
                            Ok(())
                        },
                    )
                    .unwrap();
                    let mut got = got.into_inner().unwrap();
                    // Row groups are read in parallel: compare in event order.
                    got.sort();
                    let want: Vec<Row> = all.iter().filter(|r| keep(r)).cloned().collect();
                    assert_eq!(got, want, "unit case {case}, layout {layout}, {scope:?}");
                    // (A scope no row group may hold is pruned by statistics.)
                    // Millisecond timestamps (case 1) are filtered too:
                    // their statistics prove them in µs range; so are
                    // delta encodings (layout 3).
                    let selective = !want.is_empty();
                    assert_eq!(
                        was_read_selectively(&name),
                        selective,
                        "layout {layout}, case {case}: selective reader used?"
                    );
                    // At most one row in 1,024 of a row group: by page.
                    assert_eq!(
                        was_read_by_page(&name),
                        selective && want.len() < 5,
                        "layout {layout}, case {case}, {scope:?}: read by page?"
                    );
                }
            }
        }
    }

    /// Spark-style files (nullable columns, `INT96` timestamps without
    /// statistics) are read selectively once their timestamps' levels show
    /// no null, with the values arrow's reader gives; a row group holding
    /// a null timestamp is read whole, for the caller to reject or count.
    #[test]
    fn selective_reader_on_int96_files() {
        let fixture = |name: &str| -> bytes::Bytes {
            let path = format!("{}/fixtures/ingest/{name}", env!("CARGO_MANIFEST_DIR"));
            std::fs::read(path).unwrap().into()
        };
        for (fixture_name, whole_rows) in [
            ("spark_int96_dictionary.parquet", 0),
            ("spark_int96_plain.parquet", 0),
            ("spark_int96_null_timestamp.parquet", 200),
        ] {
            let file = fixture(fixture_name);
            let scan = |name: &str, scope: &ScanScope| {
                let got = Mutex::new((Vec::new(), 0usize));
                scan_parquet(
                    name,
                    || Ok(file.clone()),
                    None,
                    scope,
                    |b, read| {
                        let mut got = got.lock().unwrap();
                        if let RowsRead::Whole { .. } = read {
                            got.1 += b.num_rows();
                        }
                        got.0.extend(rows_of(&b));
                        Ok(())
                    },
                )
                .unwrap();
                let (mut rows, whole) = got.into_inner().unwrap();
                rows.sort();
                (rows, whole)
            };
            let (all, _) = scan(&format!("all-{fixture_name}"), &ScanScope::all());
            assert_eq!(all.len(), 600);
            // Arrow's conversion, before 1970 and below the millisecond.
            assert_eq!(all[0].1, -86_400_000_000);
            assert_eq!(all[1].1, -86_400_000_000 + 3_600_123_457);
            let name = format!("bot-{fixture_name}");
            let (got, whole) = scan(&name, &ScanScope::all().with(col::BOT_ID, ["b-a"]));
            assert_eq!(whole, whole_rows, "{fixture_name}: rows read whole");
            let want: Vec<Row> = all
                .iter()
                .filter(|r| r.2 == "b-a" || (whole_rows > 0 && (200..400).contains(&row_of(r))))
                .cloned()
                .collect();
            assert_eq!(got, want, "{fixture_name}");
            assert!(was_read_selectively(&name), "{fixture_name}");
        }
    }

    /// The row number of a Spark fixture's event (`e0042` is row 42).
    fn row_of(row: &Row) -> usize {
        row.0[1..].parse().unwrap()
    }

    /// How many times the selective reader read a row group of `name`.
    fn selected_reads(name: &str) -> usize {
        SELECTED_READS
            .lock()
            .unwrap()
            .iter()
            .filter(|n| *n == name)
            .count()
    }

    /// Rows of `file` in `scope`, through `scan_parquet` as `name`.
    fn scan_rows(name: &str, file: &bytes::Bytes, scope: &ScanScope) -> Result<Vec<Row>> {
        let got = Mutex::new(Vec::new());
        scan_parquet(
            name,
            || Ok(file.clone()),
            None,
            scope,
            |b, _| {
                got.lock().unwrap().extend(rows_of(&b));
                Ok(())
            },
        )?;
        Ok(got.into_inner().unwrap())
    }

    /// Six row groups of 100 rows, the `k`-th all of bot `bot-k`, with a
    /// nullable `bot_id` (null in one row of row group 4); row group 3's
    /// timestamps are far in the future (10^11 s), in microseconds.
    fn clustered() -> bytes::Bytes {
        let n = 600;
        let bot: ArrayRef = Arc::new(StringArray::from_iter(
            (0..n).map(|i| (i != 450).then(|| format!("bot-{}", i / 100))),
        ));
        let seconds = |i: usize| -> i64 {
            if i / 100 == 3 {
                100_000_000_000
            } else {
                1_700_000_000 + i as i64
            }
        };
        let ts: ArrayRef = Arc::new(arrow_array::TimestampMicrosecondArray::from_iter_values(
            (0..n).map(|i| seconds(i) * 1_000_000),
        ));
        let text = |f: &dyn Fn(usize) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values((0..n).map(f)))
        };
        let fields = vec![
            Field::new(col::EVENT_ID, DataType::Utf8, false),
            Field::new(col::TIMESTAMP, ts.data_type().clone(), false),
            Field::new(col::BOT_ID, DataType::Utf8, true),
            Field::new(col::CONVERSATION_ID, DataType::Utf8, false),
            Field::new(col::EVENT_TYPE, DataType::Utf8, false),
        ];
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            vec![
                text(&|i| format!("e{i:04}")),
                ts,
                bot,
                text(&|i| format!("c{}", i / 10)),
                text(&|_| "message".to_owned()),
            ],
        )
        .unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(100))
            .build();
        write(&batch, props)
    }

    /// The first rows of the whole row groups a scan of `file` in `scope`
    /// read, in order, and the number of rows it reports the file holds.
    fn whole_reads(name: &str, file: &bytes::Bytes, scope: &ScanScope) -> (Vec<u64>, u64) {
        let whole = Mutex::new(Vec::new());
        let total = scan_parquet(
            name,
            || Ok(file.clone()),
            None,
            scope,
            |_, read| {
                if let RowsRead::Whole { first_row } = read {
                    whole.lock().unwrap().push(first_row);
                }
                Ok(())
            },
        )
        .unwrap();
        let mut whole = whole.into_inner().unwrap();
        whole.sort();
        whole.dedup();
        (whole, total)
    }

    /// Row groups left out of the footer by their statistics are never
    /// read; those kept are numbered as in the whole file: row group 2
    /// holds only the bot asked for, row group 4 a null bot (read whole
    /// to be validated), row group 3 timestamps that fit microseconds
    /// (pruned).
    #[test]
    fn row_groups_left_out_of_the_footer_keep_their_row_numbers() {
        let file = clustered();
        let scope = ScanScope::all().with(col::BOT_ID, ["bot-2"]);
        assert_eq!(
            whole_reads("pruned.parquet", &file, &scope),
            (vec![201, 401], 600)
        );
    }

    /// Timestamps stored with a timestamp type are read in the stored unit
    /// even where the file's embedded Arrow schema names another: the
    /// footer's pruning assumes it (`footer::RowGroupPruning`), proving
    /// milliseconds in range as milliseconds.
    #[test]
    fn an_embedded_arrow_schema_does_not_change_a_stored_timestamp_unit() {
        for unit in [
            TimeUnit::Millisecond,
            TimeUnit::Microsecond,
            TimeUnit::Nanosecond,
        ] {
            let stored = events(10, &DataType::Timestamp(unit, None));
            let seconds = Schema::new(
                stored
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| match f.name().as_str() {
                        col::TIMESTAMP => Field::new(
                            col::TIMESTAMP,
                            DataType::Timestamp(TimeUnit::Second, Some("UTC".into())),
                            false,
                        ),
                        _ => f.as_ref().clone(),
                    })
                    .collect::<Vec<_>>(),
            );
            let mut props = WriterProperties::builder().build();
            parquet::arrow::add_encoded_arrow_schema_to_metadata(&seconds, &mut props);
            let options = parquet::arrow::arrow_writer::ArrowWriterOptions::new()
                .with_properties(props)
                .with_skip_arrow_metadata(true);
            let mut out = Vec::new();
            let mut writer =
                ArrowWriter::try_new_with_options(&mut out, stored.schema(), options).unwrap();
            writer.write(&stored).unwrap();
            writer.close().unwrap();
            let file = bytes::Bytes::from(out);
            let read = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).unwrap();
            let embedded = read.metadata().file_metadata().key_value_metadata();
            assert!(embedded.is_some_and(|kv| kv.iter().any(|kv| kv.key == "ARROW:schema")));
            let timestamp = read.schema().field_with_name(col::TIMESTAMP).unwrap();
            assert!(
                matches!(timestamp.data_type(), DataType::Timestamp(u, _) if *u == unit),
                "{unit:?}: {timestamp:?}"
            );
        }
    }

    /// A conversation within every row group's statistics but in none of
    /// them: with bloom filters no row group is read, without them each is.
    #[test]
    fn bloom_filters_skip_row_groups_without_the_value() {
        let batch = events(5_000, &DataType::Timestamp(TimeUnit::Microsecond, None));
        let props = |bloom: bool| {
            WriterProperties::builder()
                .set_bloom_filter_enabled(bloom)
                .set_max_row_group_row_count(Some(1_000))
                .build()
        };
        // "c150x" sorts between every row group's least ("c0") and
        // greatest ("c99") conversation.
        let absent = ScanScope::all().with(col::CONVERSATION_ID, ["c150x"]);
        let with = write(&batch, props(true));
        let without = write(&batch, props(false));
        assert!(scan_rows("bloom-absent.parquet", &with, &absent)
            .unwrap()
            .is_empty());
        assert_eq!(selected_reads("bloom-absent.parquet"), 0);
        assert!(scan_rows("no-bloom-absent.parquet", &without, &absent)
            .unwrap()
            .is_empty());
        assert_eq!(selected_reads("no-bloom-absent.parquet"), 5);
        // A present value is found in every row group that holds it.
        let present = ScanScope::all().with(col::CONVERSATION_ID, ["c7", "c150x"]);
        let want: Vec<Row> = rows_of(&batch)
            .into_iter()
            .filter(|r| r.3 == "c7")
            .collect();
        assert!(!want.is_empty());
        // Row groups are read in parallel; the rows come in file order.
        let mut got = scan_rows("bloom-present.parquet", &with, &present).unwrap();
        got.sort();
        assert_eq!(got, want);
    }

    /// Damaged bloom filters never panic: the scan gives the rows in scope
    /// or fewer (a filter that lost bits skips its row group), or an error.
    #[test]
    fn damaged_bloom_filters_never_panic() {
        let batch = events(3_000, &DataType::Timestamp(TimeUnit::Microsecond, None));
        let file = write(
            &batch,
            WriterProperties::builder()
                .set_bloom_filter_enabled(true)
                .set_max_row_group_row_count(Some(1_000))
                .build(),
        );
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .unwrap();
        let mut filters = Vec::new();
        for rg in metadata.row_groups() {
            for chunk in rg.columns() {
                if let (Some(at), Some(len)) =
                    (chunk.bloom_filter_offset(), chunk.bloom_filter_length())
                {
                    filters.push(at as usize..at as usize + len as usize);
                }
            }
        }
        assert!(!filters.is_empty());
        let scope = ScanScope::all().with(col::CONVERSATION_ID, ["c7"]);
        let in_scope = rows_of(&batch).iter().filter(|r| r.3 == "c7").count();
        for range in filters.iter().take(6) {
            // The header (its first bytes) and a few words of the bitset.
            for at in range.clone().take(24).chain(range.clone().step_by(97)) {
                for flip in [0x5a, 0xff] {
                    let mut damaged = file.to_vec();
                    damaged[at] ^= flip;
                    match scan_rows("bloom-damaged.parquet", &damaged.into(), &scope) {
                        Ok(rows) => assert!(rows.len() <= in_scope, "offset {at}"),
                        Err(e) => assert!(
                            !e.to_string().contains("decoder failed"),
                            "offset {at}: {e}"
                        ),
                    }
                }
            }
        }
    }

    /// Damaged pages give an error, never a panic, and never wrong rows.
    #[test]
    fn selective_reader_on_damaged_files() {
        let batch = events(3_000, &DataType::Timestamp(TimeUnit::Microsecond, None));
        let plain = WriterProperties::builder()
            .set_compression(parquet::basic::Compression::UNCOMPRESSED)
            .set_data_page_row_count_limit(500)
            .set_write_batch_size(100)
            .build();
        let delta = WriterProperties::builder()
            .set_compression(parquet::basic::Compression::UNCOMPRESSED)
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_dictionary_enabled(false)
            .set_data_page_row_count_limit(500)
            .set_write_batch_size(100)
            .build();
        // Many rows (each chunk read at once) and one (page by page).
        let scopes = [
            ScanScope::all().with(col::BOT_ID, ["bot-a"]),
            ScanScope::all().with(col::CONVERSATION_ID, ["rare"]),
        ];
        for (props, step) in [(plain, 37), (delta, 97)] {
            let file = write(&batch, props);
            // Flip bytes throughout the data (not the footer, which would only
            // fail metadata parsing).
            let data_end = file.len() - 2_000.min(file.len() / 3);
            for (at, scope) in (4..data_end)
                .step_by(step)
                .flat_map(|at| scopes.iter().map(move |s| (at, s)))
            {
                let mut damaged = file.to_vec();
                damaged[at] ^= 0x5a;
                match scan_rows("d.parquet", &damaged.into(), scope) {
                    // A flipped byte in a value may still read as a value: a
                    // changed bot id drops or adds rows, nothing else.
                    Ok(rows) => assert!(rows.len() <= batch.num_rows(), "offset {at}"),
                    // A panic caught by `guard` would read "the decoder failed".
                    Err(e) => assert!(
                        !e.to_string().contains("decoder failed"),
                        "offset {at}: {e}"
                    ),
                }
            }
        }
    }

    /// A file of one large row group spreads its own work: its columns
    /// are opened in parallel and each batch is folded while the next is
    /// gathered, when the rows it selects make more than one batch (of half
    /// the size, for a selection of at most two full batches). The rows
    /// come out the same, in the same order.
    #[test]
    fn one_large_row_group_overlaps_its_batches() {
        // (events, bots selected, name, overlapped with two threads)
        let cases: [(usize, &[&str], &str, bool); 3] = [
            (4 * BATCH_ROWS, &["bot-a", "bot-ç"], "many", true),
            (3 * BATCH_ROWS, &["bot-a"], "two-batches", true),
            (BATCH_ROWS, &["bot-a"], "one-half-batch", false),
        ];
        for (events_in_file, bots, case, overlaps) in cases {
            let batch = events(
                events_in_file,
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            );
            let file = write(&batch, WriterProperties::builder().build());
            let scope = ScanScope::all().with(col::BOT_ID, bots.iter().copied());
            let want: Vec<Row> = rows_of(&batch)
                .into_iter()
                .filter(|r| bots.contains(&r.2.as_str()))
                .collect();
            let selected = want.len();
            match case {
                "many" => assert!(selected > 2 * BATCH_ROWS),
                "two-batches" => {
                    assert!((OVERLAPPED_BATCH_ROWS_LEAST + 1..=2 * BATCH_ROWS).contains(&selected))
                }
                _ => assert!(selected <= OVERLAPPED_BATCH_ROWS_LEAST),
            }
            // With a thread per row group already, the batches take turns.
            for (threads, overlapped) in [(2, overlaps), (1, false)] {
                let name = format!("{case}-{threads}-threads.parquet");
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let got = pool.install(|| scan_rows(&name, &file, &scope)).unwrap();
                assert_eq!(
                    was_overlapped(&name),
                    overlapped,
                    "{case}, {threads} threads"
                );
                assert_eq!(got, want, "{case}, {threads} threads");
            }
        }
    }

    /// The rows of one condition over a large row group read alone are
    /// matched on a thread of their own and gathered as they come: the
    /// same rows, in the same order, as when they are all matched first;
    /// many rows or few, or none.
    #[test]
    fn one_condition_over_a_large_row_group_is_matched_while_gathered() {
        let batch = events(
            STREAMED_ROWS_LEAST + 3 * BATCH_ROWS / 2,
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        );
        // Small pages: the rows are handed over in many steps.
        let props = WriterProperties::builder()
            .set_data_page_row_count_limit(3_000)
            .set_write_batch_size(1_000)
            .build();
        let file = write(&batch, props);
        let every = rows_of(&batch);
        let cases = [
            ("many", col::BOT_ID, vec!["bot-a", "bot-ç"]),
            ("few", col::CONVERSATION_ID, vec!["rare"]),
            ("none", col::BOT_ID, vec!["bot-z"]),
        ];
        for (case, column, values) in cases {
            let scope = ScanScope::all().with(column, values.iter().copied());
            let want: Vec<Row> = every
                .iter()
                .filter(|r| {
                    let value = if column == col::BOT_ID { &r.2 } else { &r.3 };
                    values.contains(&value.as_str())
                })
                .cloned()
                .collect();
            for threads in [2, 1] {
                let name = format!("{case}-{threads}.parquet");
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let got = pool.install(|| scan_rows(&name, &file, &scope)).unwrap();
                assert_eq!(got, want, "{name}");
                assert_eq!(was_streamed(&name), threads == 2, "{name}");
                assert!(was_read_selectively(&name) || want.is_empty(), "{name}");
                assert_eq!(was_read_by_page(&name), case == "few", "{name}");
            }
        }
    }

    /// A flow's conversation over a large row group read alone, in plain
    /// strings, is matched on a thread of its own, and its bot at those
    /// rows on another as they come: the rows are those of both
    /// conditions; with a dictionary, the conditions are matched in turn.
    #[test]
    fn a_conversation_and_its_bot_are_matched_on_threads_of_their_own() {
        let batch = events(
            STREAMED_ROWS_LEAST + BATCH_ROWS,
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        );
        let every = rows_of(&batch);
        for dictionary in [false, true] {
            let props = WriterProperties::builder()
                .set_data_page_row_count_limit(3_000)
                .set_write_batch_size(1_000)
                .set_dictionary_enabled(dictionary)
                .build();
            let file = write(&batch, props);
            for (bot, conversation) in [("bot-a", "rare"), ("bot-ç", "c17"), ("bot-z", "c3")] {
                let scope = ScanScope::all()
                    .with(col::BOT_ID, [bot])
                    .with(col::CONVERSATION_ID, [conversation]);
                let want: Vec<Row> = every
                    .iter()
                    .filter(|r| r.2 == bot && r.3 == conversation)
                    .cloned()
                    .collect();
                assert_eq!(want.is_empty(), bot == "bot-z");
                let name = format!("flow-{dictionary}-{bot}-{conversation}.parquet");
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(2)
                    .build()
                    .unwrap();
                let got = pool.install(|| scan_rows(&name, &file, &scope)).unwrap();
                assert_eq!(got, want, "{name}");
                assert_eq!(was_streamed(&name), !dictionary, "{name}");
            }
            // Damage in the bot's column is reported as the bot's, not as
            // the conversation's matching stopped by it.
            let metadata = ParquetMetaDataReader::new()
                .parse_and_finish(&file)
                .unwrap();
            let rg = &metadata.row_groups()[0];
            let bot = rg
                .columns()
                .iter()
                .find(|c| c.column_descr().name() == col::BOT_ID)
                .unwrap();
            let (start, length) = bot.byte_range();
            let mut damaged = file.to_vec();
            let at = (start + length / 2) as usize;
            damaged[at..at + 64].fill(0xff);
            let damaged = bytes::Bytes::from(damaged);
            let scope = ScanScope::all()
                .with(col::BOT_ID, ["bot-a"])
                .with(col::CONVERSATION_ID, ["c5"]);
            let name = format!("flow-damaged-{dictionary}.parquet");
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            let got = pool.install(|| scan_rows(&name, &damaged, &scope));
            assert_eq!(was_streamed(&name), !dictionary, "{name}");
            let e = got.unwrap_err().to_string();
            assert!(e.contains("bot_id"), "{e}");
            assert!(!e.contains("decoder failed"), "{e}");
        }
    }

    /// Damage late in the condition's column, matched on a thread of its
    /// own while earlier rows are gathered, is an error of the file, not a
    /// panic, and not an answer from the rows before it.
    #[test]
    fn damage_found_while_rows_are_gathered_is_an_error() {
        let batch = events(
            STREAMED_ROWS_LEAST + BATCH_ROWS,
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        );
        let props = WriterProperties::builder()
            .set_data_page_row_count_limit(3_000)
            .set_write_batch_size(1_000)
            .set_dictionary_enabled(false)
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build();
        let file = write(&batch, props);
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .unwrap();
        let rg = &metadata.row_groups()[0];
        let (leaf, _) = rg
            .columns()
            .iter()
            .enumerate()
            .find(|(_, c)| c.column_descr().name() == col::BOT_ID)
            .unwrap();
        let (start, length) = rg.column(leaf).byte_range();
        let scope = ScanScope::all().with(col::BOT_ID, ["bot-a"]);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        // A stretch of zeros near the chunk's end: a page's header or its
        // values, past the rows of the first batches.
        let mut damaged = file.to_vec();
        let at = (start + length * 9 / 10) as usize;
        damaged[at..at + 64].fill(0);
        let damaged = bytes::Bytes::from(damaged);
        let name = "late-damage.parquet";
        let got = pool.install(|| scan_rows(name, &damaged, &scope));
        assert!(was_streamed(name));
        let err = got.unwrap_err().to_string();
        assert!(err.contains(name), "{err}");
        assert!(!err.contains("decoder failed"), "{err}");
    }

    /// Millisecond timestamps can overflow µs, so a row group of them is
    /// filtered by scope only where its statistics prove every value in
    /// range. Otherwise it is read whole, and a bad row anywhere reaches
    /// the validation that rejects it (SPEC 1).
    #[test]
    fn coarse_timestamps_are_filtered_only_where_statistics_prove_them_in_range() {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let scope = ScanScope::all().with(col::BOT_ID, ["bot-a"]);
        let batch = events(3_000, &ts);
        let in_scope = rows_of(&batch).iter().filter(|r| r.2 == "bot-a").count();
        let stats = |enabled| {
            WriterProperties::builder()
                .set_statistics_enabled(enabled)
                .build()
        };
        let file = write(&batch, stats(EnabledStatistics::Chunk));
        let rows = scan_rows("ms-in-range.parquet", &file, &scope).unwrap();
        assert_eq!(rows.len(), in_scope);
        assert!(was_read_selectively("ms-in-range.parquet"));

        let file = write(&batch, stats(EnabledStatistics::None));
        let rows = scan_rows("ms-no-statistics.parquet", &file, &scope).unwrap();
        assert_eq!(rows.len(), batch.num_rows());

        // One row of another bot is past what µs can hold (year 292,278 and
        // more): its row group is read whole, and ingesting it fails.
        let mut columns = batch.columns().to_vec();
        let at = batch.schema().index_of(col::TIMESTAMP).unwrap();
        let mut millis: Vec<i64> = batch
            .column(at)
            .as_primitive::<TimestampMillisecondType>()
            .values()
            .to_vec();
        let other = rows_of(&batch).iter().position(|r| r.2 != "bot-a").unwrap();
        millis[other] = i64::MAX / 999;
        columns[at] = Arc::new(TimestampMillisecondArray::from(millis).with_timezone("UTC"));
        let far = RecordBatch::try_new(batch.schema(), columns).unwrap();
        let file = write(&far, stats(EnabledStatistics::Chunk));
        let whole = Mutex::new(0);
        scan_parquet(
            "ms-out-of-range.parquet",
            || Ok(file.clone()),
            None,
            &scope,
            |b, rows| {
                assert!(matches!(rows, RowsRead::Whole { .. }), "{rows:?}");
                *whole.lock().unwrap() += b.num_rows();
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(whole.into_inner().unwrap(), far.num_rows());
        let err = crate::Engine::new().ingest_batch(&far).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Data, "{err}");
    }

    #[test]
    fn a_known_schema_is_reused_only_for_the_same_schema() {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let good = write(&events(50, &ts), WriterProperties::builder().build());
        let batch = events(50, &ts);
        let without = batch.schema().index_of(col::CONVERSATION_ID).unwrap();
        let bad = write(
            &batch
                .project(
                    &(0..batch.num_columns())
                        .filter(|&i| i != without)
                        .collect::<Vec<_>>(),
                )
                .unwrap(),
            WriterProperties::builder().build(),
        );
        let scan = |name: &str, bytes: &bytes::Bytes| {
            let rows = std::sync::atomic::AtomicUsize::new(0);
            scan_parquet(
                name,
                || Ok(bytes.clone()),
                None,
                &ScanScope::all(),
                |b, _| {
                    rows.fetch_add(b.num_rows(), std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                },
            )
            .map(|_| rows.into_inner())
        };
        // The same thread reads a file of a known schema, one of another
        // (refused: it lacks a required column), and the first again.
        for _ in 0..2 {
            assert_eq!(scan("good.parquet", &good).unwrap(), 50);
            let err = scan("bad.parquet", &bad).unwrap_err().to_string();
            assert!(
                err.contains("conversation_id") && err.contains("bad.parquet"),
                "{err}"
            );
        }
        assert_eq!(scan("good.parquet", &good).unwrap(), 50);
    }

    #[test]
    fn a_constant_column_slices_one_array_of_views() {
        for value in ["bot-a", "a bot id longer than twelve bytes"] {
            let mut column = ConstantColumn::new(value);
            // Longer, shorter, empty and longer again than any before.
            for rows in [3, 1, 0, 5, 2] {
                let array = column.next(rows);
                let strings = array.as_string_view();
                assert_eq!(strings.len(), rows);
                assert_eq!(strings.null_count(), 0);
                assert!(strings.iter().all(|v| v == Some(value)), "{value} x{rows}");
            }
            // Batches after the longest share its views.
            let (a, b) = (column.next(4), column.next(5));
            let view_pointer = |a: &ArrayRef| a.as_string_view().views().as_ptr();
            assert_eq!(view_pointer(&a), view_pointer(&b));
        }
    }

    #[test]
    fn garbage_is_a_data_error() {
        let bytes = bytes::Bytes::from_static(b"PAR1 this is not parquet at all PAR1");
        let err = scan_parquet(
            "junk.parquet",
            || Ok(bytes.clone()),
            None,
            &ScanScope::all(),
            |_, _| Ok(()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("junk.parquet"), "{err}");
    }

    /// Gathers are light for rows early in fast-decompressing chunks and
    /// in zstd ones, and not for rows far into large ones, nor for gzip or
    /// brotli.
    #[test]
    fn gathers_are_light_for_a_few_early_rows_of_fast_or_zstd_pages() {
        let rows = 100_000;
        let values: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("value-{i:016}")),
        ));
        let batch = RecordBatch::try_from_iter([("s", values)]).unwrap();
        let metadata = |compression| {
            let props = WriterProperties::builder()
                .set_compression(compression)
                .set_dictionary_enabled(false)
                .build();
            let file = write(&batch, props);
            ParquetMetaDataReader::new()
                .parse_and_finish(&file)
                .unwrap()
        };
        for compression in [
            Compression::SNAPPY,
            Compression::UNCOMPRESSED,
            Compression::LZ4_RAW,
        ] {
            let metadata = metadata(compression);
            let rg = metadata.row_group(0);
            assert!(rg.column(0).uncompressed_size() > 2 * LIGHT_GATHER_BYTES as i64);
            let light = |wanted: &[u32]| light_gathers(rg, [0].into_iter(), wanted, rows);
            assert!(light(&[0, 1, 2]), "{compression}");
            assert!(light(&[]), "{compression}");
            assert!(!light(&[5, rows as u32 - 1]), "{compression}");
            assert!(light_gathers(rg, [].into_iter(), &[rows as u32 - 1], rows));
        }
        // gzip pages are never light; zstd pages are, as far as their
        // first blocks' first bytes (`page_walk::own_zstd_prefix`).
        let gzip = metadata(Compression::GZIP(Default::default()));
        assert!(!light_gathers(
            gzip.row_group(0),
            [0].into_iter(),
            &[0],
            rows
        ));
        let zstd = metadata(Compression::ZSTD(Default::default()));
        let rg = zstd.row_group(0);
        assert!(light_gathers(rg, [0].into_iter(), &[0, 1, 2], rows));
        assert!(!light_gathers(
            rg,
            [0].into_iter(),
            &[0, rows as u32 / 4],
            rows
        ));
    }
}
