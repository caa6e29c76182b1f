//! Parquet input, with the pruning a conversation-key restriction allows.
//!
//! A scan reads only the columns asked for, splits the work by row group
//! (rayon; each task opens its own reader) and, when a [`ScanScope`] names a
//! bot or conversation, skips row groups whose `bot_id` /
//! `conversation_id` statistics cannot contain it and filters rows on those
//! columns while decoding (a Parquet row filter), so the other columns are
//! decoded only for matching rows. Pruning by conversation-key columns is
//! sound: every event of a conversation carries its key. Nothing is pruned
//! by time, since a conversation's start needs all its events (SPEC 2).
//! Only row groups whose statistics prove every row valid are pruned or
//! filtered; the others are read whole, so that a bad row anywhere still
//! rejects the file in strict mode and is counted in lenient mode.
//!
//! Decoders of third-party data are a trust boundary: see `ingest::guard`.

use std::sync::Arc;

use arrow_array::RecordBatch;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
    RowFilter,
};
use parquet::arrow::ProjectionMask;
use parquet::basic::Compression;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::reader::ChunkReader;
use rayon::prelude::*;

use super::guard::{check_pages, guard};
use super::normalize::check_schema;
use super::scope::{one_of, ScanScope};
use crate::error::{Error, Result};
use crate::schema::{col, COLUMNS};

/// Rows per decoded batch: large enough that per-batch costs vanish, small
/// enough that a batch's columns stay in the CPU's L2 cache while they are
/// decoded, normalised and folded into the store. Measured with
/// `perf stat -r 10 convostat conversations|insights|usage ...` on the
/// 10M-event file (2 threads, 2 MiB L2 per core): 4K rows 195/186/365 ms,
/// 8K 175/168/348, 16K 170/157/341, 32K 175/166/340, 64K 213/207/395.
const BATCH_ROWS: usize = 16_384;

/// `schema` with top-level `Utf8` / `LargeUtf8` fields as `Utf8View`.
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

/// Refuses, before anything is decoded, a column chunk to be read whose
/// compression codec this build cannot decompress (LZO, which no Parquet
/// implementation in Rust reads), naming the codec, the column and the file.
/// Every other codec of the format is built in.
fn check_codecs(
    name: &str,
    row_groups: &[RowGroupMetaData],
    plan: &[(usize, bool)],
    read: impl Fn(usize) -> bool,
) -> Result<()> {
    for &(rg, _) in plan {
        for (leaf, column) in row_groups[rg].columns().iter().enumerate() {
            let codec = column.compression();
            let supported = !matches!(codec, Compression::LZO);
            if !supported && read(leaf) {
                return Err(Error::data(
                    format!("{name}: column `{}`", column.column_descr().path()),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowsRead {
    /// Consecutive rows of the file, the first with this 1-based number;
    /// the scope was not applied.
    Whole {
        /// 1-based number of the batch's first row in the file.
        first_row: u64,
    },
    /// Only rows inside the scope, from a row group whose statistics prove
    /// every required value present and in range.
    Filtered,
}

/// Whether the statistics of `rg` prove that no row of it can be rejected:
/// no null in a required column and timestamps that fit µs. Only such row
/// groups may be pruned or filtered by scope, so that strict mode still
/// rejects a file with a bad row anywhere (SPEC 1).
fn provably_valid(
    rg: &RowGroupMetaData,
    leaf_of: &impl Fn(&str) -> Option<usize>,
    timestamp: &DataType,
) -> bool {
    let no_nulls = COLUMNS
        .iter()
        .filter(|(_, required)| *required)
        .all(|(name, _)| {
            leaf_of(name).is_some_and(|leaf| {
                rg.column(leaf)
                    .statistics()
                    .and_then(|s| s.null_count_opt())
                    == Some(0)
            })
        });
    // Seconds and milliseconds can overflow µs; finer units cannot.
    let fits = matches!(
        timestamp,
        DataType::Timestamp(TimeUnit::Microsecond | TimeUnit::Nanosecond, _)
    );
    no_nulls && fits
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
/// the caller applies the scope after normalisation. Returns the number of
/// rows the file holds.
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
    let metadata = guard(name, || {
        let metadata =
            ArrowReaderMetadata::load(&open()?, ArrowReaderOptions::new()).map_err(context)?;
        check_schema(metadata.schema()).map_err(|e| e.within(name))?;
        // Decode plain strings straight into views: no copy into an offsets
        // buffer, and the views are what normalisation wants anyway.
        let hinted = with_string_views(metadata.schema());
        if hinted == *metadata.schema() {
            return Ok(metadata);
        }
        ArrowReaderMetadata::try_new(
            metadata.metadata().clone(),
            ArrowReaderOptions::new().with_schema(hinted),
        )
        .map_err(context)
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
    let mut first_rows = Vec::with_capacity(row_groups.len());
    let mut total = 0u64;
    for rg in row_groups {
        first_rows.push(total + 1);
        total += rg.num_rows().max(0) as u64;
    }
    let conditions: Vec<(usize, Vec<String>)> = scope
        .conditions()
        .filter_map(|(c, v)| leaf_of(c).map(|leaf| (leaf, v.to_vec())))
        .collect();
    // (row group, filtered?) for every row group that must be read.
    let plan: Vec<(usize, bool)> = (0..row_groups.len())
        .filter_map(|i| {
            let rg = &row_groups[i];
            if scope.is_all() || !typed_keys || !provably_valid(rg, &leaf_of, &timestamp_type) {
                return Some((i, false));
            }
            let may_match = conditions.iter().all(|(leaf, v)| may_contain(rg, *leaf, v));
            may_match.then_some((i, !conditions.is_empty()))
        })
        .collect();
    let projection = match columns {
        None => ProjectionMask::all(),
        Some(names) => ProjectionMask::columns(&parquet_schema, names.iter().copied()),
    };
    check_codecs(name, row_groups, &plan, |leaf| {
        projection.leaf_included(leaf) || conditions.iter().any(|(l, _)| *l == leaf)
    })?;
    plan.par_iter().try_for_each(|&(rg, filtered)| {
        guard(name, || {
            check_pages(name, open()?, &row_groups[rg], rg, |leaf| {
                projection.leaf_included(leaf)
                    || (filtered && conditions.iter().any(|(l, _)| *l == leaf))
            })?;
            let builder =
                ParquetRecordBatchReaderBuilder::new_with_metadata(open()?, metadata.clone())
                    .with_row_groups(vec![rg])
                    .with_projection(projection.clone())
                    .with_batch_size(BATCH_ROWS);
            let builder = if filtered {
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
                    RowsRead::Filtered
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
