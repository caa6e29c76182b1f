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
//!
//! Decoders of third-party data are a trust boundary: a panic inside them
//! is caught and reported as a data error naming the file.

use std::panic::{catch_unwind, AssertUnwindSafe};

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use std::sync::Arc;

use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
    RowFilter,
};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::reader::ChunkReader;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Rows per decoded batch: large enough that per-batch costs vanish, small
/// enough that a batch stays in cache-friendly tens of MB.
const BATCH_ROWS: usize = 65_536;

/// A restriction of a scan to rows whose key columns take given values:
/// rows outside it cannot change the answer and need not be decoded.
///
/// ```
/// use convostat::ingest::ScanScope;
/// let scope = ScanScope::all().with("bot_id", ["bot-a", "bot-b"]);
/// assert!(!scope.is_all());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanScope {
    /// `(column, accepted values)`; a row must match every condition.
    conditions: Vec<(String, Vec<String>)>,
}

impl ScanScope {
    /// The scope that keeps everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// This scope, further restricted to rows whose `column` is one of
    /// `values` (none = no row).
    pub fn with<S: Into<String>>(
        mut self,
        column: &str,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        let mut values: Vec<String> = values.into_iter().map(Into::into).collect();
        values.sort();
        values.dedup();
        self.conditions.push((column.to_owned(), values));
        self
    }

    /// Whether the scope keeps everything.
    pub fn is_all(&self) -> bool {
        self.conditions.is_empty()
    }

    fn conditions(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.conditions
            .iter()
            .map(|(c, v)| (c.as_str(), v.as_slice()))
    }
}

/// Runs `f`, turning a panic in a third-party decoder into a data error.
pub(crate) fn guard<T>(context: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::data(
            context,
            "the decoder failed on malformed input",
        ))
    })
}

/// The rows of `batch` inside `scope` (all of it when the scope is empty
/// or the key columns are absent; normalisation reports the latter).
pub(crate) fn keep_scope(batch: &RecordBatch, scope: &ScanScope) -> Result<RecordBatch> {
    let mut mask: Option<BooleanArray> = None;
    for (column, value) in scope.conditions() {
        let Some(array) = batch.column_by_name(column) else {
            continue;
        };
        let eq =
            one_of(array, value).map_err(|e| Error::data_from(format!("column `{column}`"), e))?;
        mask = Some(match mask {
            None => eq,
            Some(m) => arrow_arith_and(&m, &eq),
        });
    }
    match mask {
        Some(m) if m.true_count() < batch.num_rows() => {
            arrow_select::filter::filter_record_batch(batch, &m)
                .map_err(|e| Error::data_from("batch", e))
        }
        _ => Ok(batch.clone()),
    }
}

fn arrow_arith_and(a: &BooleanArray, b: &BooleanArray) -> BooleanArray {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| Some(x == Some(true) && y == Some(true)))
        .collect()
}

/// `array ∈ values` for any string layout (`values` sorted); nulls are
/// `false`.
fn one_of(array: &ArrayRef, values: &[String]) -> std::result::Result<BooleanArray, ArrowError> {
    let view = match array.data_type() {
        DataType::Utf8View => array.clone(),
        _ => arrow_cast::cast(array, &DataType::Utf8View)?,
    };
    let view = view.as_string_view();
    let matches = |v: &str| match values {
        [one] => v == one,
        _ => values.binary_search_by(|x| x.as_str().cmp(v)).is_ok(),
    };
    Ok((0..view.len())
        .map(|i| Some(view.is_valid(i) && matches(view.value(i))))
        .collect())
}

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

/// Reads a Parquet file or buffer, calling `sink(batch, first_row)` for each
/// decoded batch (from several threads at once). `open` gives a fresh
/// reader for each parallel task; `name` names the input in errors;
/// `columns` (None = all) is the projection. Returns the number of rows the
/// file holds (before pruning).
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
    S: Fn(RecordBatch, u64) -> Result<()> + Sync,
{
    let context = |e: parquet::errors::ParquetError| Error::data_from(name, e);
    let metadata = guard(name, || {
        let metadata =
            ArrowReaderMetadata::load(&open()?, ArrowReaderOptions::new()).map_err(context)?;
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
    let selected: Vec<usize> = (0..row_groups.len())
        .filter(|&i| {
            conditions
                .iter()
                .all(|(leaf, v)| may_contain(&row_groups[i], *leaf, v))
        })
        .collect();
    let projection = match columns {
        None => ProjectionMask::all(),
        Some(names) => ProjectionMask::columns(&parquet_schema, names.iter().copied()),
    };
    selected.par_iter().try_for_each(|&rg| {
        guard(name, || {
            let builder =
                ParquetRecordBatchReaderBuilder::new_with_metadata(open()?, metadata.clone())
                    .with_row_groups(vec![rg])
                    .with_projection(projection.clone())
                    .with_batch_size(BATCH_ROWS);
            let builder = if conditions.is_empty() {
                builder
            } else {
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
            };
            let reader = builder.build().map_err(context)?;
            // Row numbers are exact without a filter; with one they give
            // the row group's first row.
            let mut first_row = first_rows[rg];
            for batch in reader {
                let batch = batch.map_err(|e| Error::data_from(name, e))?;
                let rows = batch.num_rows() as u64;
                sink(batch, first_row)?;
                if conditions.is_empty() {
                    first_row += rows;
                }
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
    fn equality_mask_over_layouts() {
        let plain: ArrayRef = Arc::new(arrow_array::StringArray::from(vec![
            Some("a"),
            None,
            Some("b"),
        ]));
        assert_eq!(
            one_of(&plain, &["a".into()]).unwrap(),
            BooleanArray::from(vec![true, false, false])
        );
        let dict: ArrayRef = Arc::new(
            vec!["x", "y", "x"]
                .into_iter()
                .collect::<arrow_array::DictionaryArray<arrow_array::types::Int8Type>>(),
        );
        assert_eq!(
            one_of(&dict, &["x".into()]).unwrap(),
            BooleanArray::from(vec![true, false, true])
        );
        assert_eq!(
            one_of(&dict, &["a".into(), "x".into(), "y".into()]).unwrap(),
            BooleanArray::from(vec![true, true, true])
        );
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
}
