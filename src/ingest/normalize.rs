//! Normalisation of any accepted physical layout into [`EventColumns`].
//!
//! SPEC 1 accepts strings as Utf8, LargeUtf8, Utf8View or a dictionary of
//! those, and timestamps in any unit and zone. Here every string column
//! becomes a `StringViewArray` (a cheap cast: views point into the original
//! buffers) and every timestamp becomes µs since the epoch, floored. Schema
//! problems are reported before any row is looked at, null problems before
//! any row is handed on, so callers can stay atomic.

use std::borrow::Cow;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int32Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, BooleanArray, DictionaryArray, RecordBatch, StringViewArray};
use arrow_buffer::{BooleanBufferBuilder, NullBuffer};
use arrow_schema::{DataType, TimeUnit};
use rayon::prelude::*;

use super::ndjson::LineNumbers;
use super::{IngestMode, IngestReport, RequiredColumn, SkipReason};
use crate::error::{Error, Result};
use crate::schema::{col, Attribute, COLUMNS};

/// How the rows of a batch are numbered in error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RowNumbers<'a> {
    /// Consecutive rows, the first with this 1-based number.
    From(u64),
    /// The NDJSON line of each row.
    Lines(LineNumbers<'a>),
}

impl RowNumbers<'_> {
    fn name(&self, row: usize) -> String {
        match self {
            RowNumbers::From(first) => format!("row {}", first + row as u64),
            RowNumbers::Lines(lines) => lines
                .name(row)
                .unwrap_or_else(|| format!("row {}", row + 1)),
        }
    }
}

/// Event columns in the one layout the store reads.
#[derive(Debug, Clone)]
pub(crate) struct EventColumns {
    pub event_id: StringViewArray,
    pub timestamp: Vec<i64>,
    pub bot_id: StringViewArray,
    pub conversation_id: StringViewArray,
    pub event_type: StringViewArray,
    /// Conversation attributes, in [`Attribute::ALL`] order; `None` = absent.
    pub attributes: [Option<StringViewArray>; Attribute::COUNT],
    pub message_id: Option<StringViewArray>,
    pub from_step_id: Option<StringViewArray>,
    pub from_step_type: Option<StringViewArray>,
    pub to_step_id: Option<StringViewArray>,
    pub to_step_type: Option<StringViewArray>,
    /// Whether `event_id` holds placeholders: a batch job reads no ids for
    /// the rows its scope selects when its answer needs them only to order
    /// events with the same timestamp (see `ConversationShard::apply`).
    pub event_ids_elided: bool,
    /// For rows a bounding scope kept (`ingest::bounds`): per row, the
    /// latest timestamp (µs) of its conversation in the rows it was kept
    /// from, which the store takes as the row's end. `None`: each row
    /// ends at its own timestamp.
    pub latest: Option<Vec<i64>>,
}

impl EventColumns {
    pub fn len(&self) -> usize {
        self.timestamp.len()
    }

    /// The rows where `keep` is true.
    pub fn filter(&self, keep: &BooleanArray) -> Result<EventColumns> {
        // One predicate (the selected rows, found once) for every column.
        let predicate = arrow_select::filter::FilterBuilder::new(keep)
            .optimize()
            .build();
        let f = |a: &StringViewArray| -> Result<StringViewArray> {
            Ok(predicate
                .filter(a)
                .map_err(|e| Error::data_from("batch", e))?
                .as_string_view()
                .clone())
        };
        let opt = |a: &Option<StringViewArray>| a.as_ref().map(f).transpose();
        let mut attributes: [Option<StringViewArray>; Attribute::COUNT] = Default::default();
        for (slot, a) in attributes.iter_mut().zip(&self.attributes) {
            *slot = opt(a)?;
        }
        let kept = |values: &[i64]| -> Vec<i64> {
            keep.values().set_indices().map(|i| values[i]).collect()
        };
        Ok(EventColumns {
            event_id: f(&self.event_id)?,
            timestamp: kept(&self.timestamp),
            bot_id: f(&self.bot_id)?,
            conversation_id: f(&self.conversation_id)?,
            event_type: f(&self.event_type)?,
            attributes,
            message_id: opt(&self.message_id)?,
            from_step_id: opt(&self.from_step_id)?,
            from_step_type: opt(&self.from_step_type)?,
            to_step_id: opt(&self.to_step_id)?,
            to_step_type: opt(&self.to_step_type)?,
            event_ids_elided: self.event_ids_elided,
            latest: self.latest.as_deref().map(kept),
        })
    }
}

/// Value of string column `c` at row `i`, `None` when absent or null.
#[inline]
pub(crate) fn opt_str(c: &Option<StringViewArray>, i: usize) -> Option<&str> {
    match c {
        Some(a) if a.is_valid(i) => Some(a.value(i)),
        _ => None,
    }
}

fn is_string_type(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(key, value) => key.is_dictionary_key_type() && is_string_type(value),
        _ => false,
    }
}

fn column_context(name: &str) -> String {
    format!("column `{name}`")
}

/// Checks that `schema` has every required column and that every column of
/// SPEC 1 it has is of an accepted type; other columns are ignored.
pub(crate) fn check_schema(schema: &arrow_schema::Schema) -> Result<()> {
    for (name, required) in COLUMNS {
        match schema.field_with_name(name) {
            Ok(field) => check_type(name, field.data_type())?,
            Err(_) if required => {
                return Err(Error::data(
                    column_context(name),
                    "required column is missing",
                ))
            }
            Err(_) => {}
        }
    }
    Ok(())
}

/// Finds `name` and checks its type; `Ok(None)` when absent.
fn find<'a>(batch: &'a RecordBatch, name: &str, required: bool) -> Result<Option<&'a ArrayRef>> {
    let Some(array) = batch.column_by_name(name) else {
        return if required {
            Err(Error::data(
                column_context(name),
                "required column is missing",
            ))
        } else {
            Ok(None)
        };
    };
    check_type(name, array.data_type())?;
    Ok(Some(array))
}

/// A column of type `Null` (pandas writes one for an all-`None` column) is
/// accepted everywhere as a column whose every value is null: all null for
/// an optional column, a null in every row for a required one (rejected in
/// strict mode, every row skipped in lenient mode).
fn check_type(name: &str, data_type: &DataType) -> Result<()> {
    let ok = *data_type == DataType::Null
        || if name == col::TIMESTAMP {
            matches!(data_type, DataType::Timestamp(_, _))
        } else {
            is_string_type(data_type)
        };
    if !ok {
        let expected = if name == col::TIMESTAMP {
            "a timestamp (any unit, any zone)"
        } else {
            "a string (Utf8, LargeUtf8, Utf8View or a dictionary of them)"
        };
        return Err(Error::data(
            column_context(name),
            format!("unsupported type {data_type}; expected {expected}"),
        ));
    }
    Ok(())
}

/// Casts a checked string (or all-null) column to `Utf8View`.
fn to_view(name: &str, array: &ArrayRef) -> Result<StringViewArray> {
    if *array.data_type() == DataType::Null {
        return Ok(StringViewArray::new_null(array.len()));
    }
    if let Some(utf8) = array.as_string_opt::<i32>() {
        if let Some(view) = utf8_to_view(utf8) {
            return Ok(view);
        }
    }
    if let Some(dict) = array.as_dictionary_opt::<Int32Type>() {
        if let Some(view) = utf8_dictionary_to_view(dict) {
            return Ok(view);
        }
    }
    let cast = arrow_cast::cast(array, &DataType::Utf8View)
        .map_err(|e| Error::data_from(column_context(name), e))?;
    Ok(cast.as_string_view().clone())
}

/// `Utf8` as `Utf8View` without copying or re-validating the strings:
/// views point into the array's own values buffer. `None` when the buffer
/// is too large for 32-bit view offsets.
pub(crate) fn utf8_to_view(array: &arrow_array::StringArray) -> Option<StringViewArray> {
    let values = array.values();
    let offsets = array.value_offsets();
    let end = *offsets.last()? as usize;
    if end > u32::MAX as usize {
        return None;
    }
    let views: Vec<u128> = offsets
        .windows(2)
        .map(|w| view_at(values, w[0] as usize, w[1] as usize, 0))
        .collect();
    // SAFETY: every view is made by `view_at` from the slice of buffer 0
    // between two consecutive offsets of a valid `StringArray`, at that
    // slice's own offset: it lies inside the buffer, and it is valid UTF-8
    // because a `StringArray` guarantees every offset range (null slots
    // included) is. That is all `StringViewArray::try_new` would check.
    // Benefit: `try_new` re-validates UTF-8 string by string and arrow's
    // cast goes through a builder; measured with `convostat demo --events
    // 2000000` (Arrow ingest, 2 threads, same machine load) ingest went
    // from 2.35 to 2.7 M events/s (+15%).
    Some(unsafe {
        StringViewArray::new_unchecked(
            views.into(),
            vec![values.clone()].into(),
            array.nulls().cloned(),
        )
    })
}

/// A dictionary of `Utf8` values as `Utf8View`, one view per row made from
/// the row's dictionary entry (as [`utf8_to_view`] does), so the cost is
/// per row, not per dictionary entry: a batch of a few selected rows from a
/// column chunk with a large dictionary converts only what it holds. Nulls
/// are logical: a null key or a key of a null entry. `None` when the values
/// are not `Utf8`, too large for 32-bit view offsets, or a key is out of
/// range (then arrow's cast reports it).
fn utf8_dictionary_to_view(dict: &DictionaryArray<Int32Type>) -> Option<StringViewArray> {
    let strings = dict.values().as_string_opt::<i32>()?;
    let values = strings.values();
    let offsets = strings.value_offsets();
    if *offsets.last()? as usize > u32::MAX as usize {
        return None;
    }
    let entries = strings.len();
    let keys = dict.keys().values();
    if keys.iter().any(|&k| k < 0 || k as usize >= entries) {
        // Null slots may hold any key: let the general path sort them out.
        return None;
    }
    let views: Vec<u128> = keys
        .iter()
        .map(|&k| {
            let k = k as usize;
            view_at(values, offsets[k] as usize, offsets[k + 1] as usize, 0)
        })
        .collect();
    // SAFETY: as in `utf8_to_view`: every view is made by `view_at` from a
    // valid `StringArray`'s offset range in its only buffer.
    Some(unsafe {
        StringViewArray::new_unchecked(
            views.into(),
            vec![values.clone()].into(),
            dict.logical_nulls(),
        )
    })
}

/// The longest string an Arrow view holds in itself; a longer one's view
/// points into a buffer.
pub(crate) const INLINE_VIEW_LEN: usize = 12;

/// The Arrow view of `values[start..end]` as a string of buffer `buffer`:
/// what `arrow_array::builder::make_view` returns, without its jump on the
/// length. A short string (at most 12 bytes) is read as one 16-byte word
/// and masked when `values` has the bytes, so that lengths varying from row
/// to row cost no branch mispredictions and no call to `memcpy`.
#[inline]
pub(crate) fn view_at(values: &[u8], start: usize, end: usize, buffer: u32) -> u128 {
    let len = end - start;
    if len > INLINE_VIEW_LEN {
        let prefix = u32::from_le_bytes([
            values[start],
            values[start + 1],
            values[start + 2],
            values[start + 3],
        ]);
        return len as u128
            | (u128::from(prefix) << 32)
            | (u128::from(buffer) << 64)
            | ((start as u128) << 96);
    }
    let word = match values.get(start..start + 16) {
        Some(word) => u128::from_le_bytes(word.try_into().unwrap_or([0; 16])),
        None => {
            // Near the end of the buffer: copy what there is.
            let mut word = [0u8; 16];
            word[..len].copy_from_slice(&values[start..end]);
            u128::from_le_bytes(word)
        }
    };
    let mask = (1u128 << (8 * len)) - 1;
    len as u128 | ((word & mask) << 32)
}

/// A 64-bit hash of a view that holds its whole string (at most 12
/// bytes), well mixed in every bit: a folded multiply of its two halves
/// (as foldhash and ahash mix), so that ids differing in one digit land in
/// different slots of a table indexed by the low bits.
#[inline]
pub(crate) fn inline_view_hash(view: u128) -> u64 {
    const K1: u64 = 0x243f_6a88_85a3_08d3;
    const K2: u64 = 0x1319_8a2e_0370_7344;
    let product = u128::from(view as u64 ^ K1) * u128::from((view >> 64) as u64 ^ K2);
    product as u64 ^ (product >> 64) as u64
}

/// Timestamps as µs since the epoch, floored, and whether each is valid
/// (`false` for null or out-of-range values, whose slot holds 0).
/// Microseconds are borrowed as they are: the bounding scope of the
/// Parquet reader reads them once per batch and keeps nothing.
pub(crate) fn to_micros(array: &ArrayRef) -> (Cow<'_, [i64]>, Option<Vec<bool>>) {
    fn scaled<T: arrow_array::ArrowPrimitiveType<Native = i64>>(
        array: &ArrayRef,
        f: impl Fn(i64) -> Option<i64>,
    ) -> (Cow<'_, [i64]>, Option<Vec<bool>>) {
        let values = array.as_primitive::<T>();
        let mut out = Vec::with_capacity(values.len());
        let mut valid = (values.null_count() > 0).then(|| vec![true; values.len()]);
        for (i, &v) in values.values().iter().enumerate() {
            match f(v).filter(|_| values.is_valid(i)) {
                Some(us) => out.push(us),
                None => {
                    out.push(0);
                    valid.get_or_insert_with(|| vec![true; values.len()])[i] = false;
                }
            }
        }
        (Cow::Owned(out), valid)
    }
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            scaled::<TimestampSecondType>(array, |v| v.checked_mul(1_000_000))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            scaled::<TimestampMillisecondType>(array, |v| v.checked_mul(1_000))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let values = array.as_primitive::<TimestampMicrosecondType>();
            let valid = (values.null_count() > 0)
                .then(|| (0..values.len()).map(|i| values.is_valid(i)).collect());
            (Cow::Borrowed(&values.values()[..]), valid)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            scaled::<TimestampNanosecondType>(array, |v| Some(v.div_euclid(1_000)))
        }
        _ => (
            Cow::Owned(vec![0; array.len()]),
            Some(vec![false; array.len()]),
        ),
    }
}

/// Rows from which a batch's string columns are converted in parallel.
const PARALLEL_NORMALIZE_ROWS: usize = 16_384;

/// Normalises `batch`; `rows` numbers its rows for error messages.
///
/// Strict mode fails on the first null in a required column, naming column
/// and row; lenient mode drops such rows and counts them in `report`
/// (`rows_seen` is counted here too). Nothing is ingested by this function.
pub(crate) fn normalize(
    batch: &RecordBatch,
    mode: IngestMode,
    rows: RowNumbers<'_>,
    report: &mut IngestReport,
) -> Result<EventColumns> {
    // Schema first: every column's presence and type, before any value.
    let event_id = find(batch, col::EVENT_ID, true)?;
    let timestamp = find(batch, col::TIMESTAMP, true)?;
    let bot_id = find(batch, col::BOT_ID, true)?;
    let conversation_id = find(batch, col::CONVERSATION_ID, true)?;
    let event_type = find(batch, col::EVENT_TYPE, true)?;
    let mut attributes: [Option<&ArrayRef>; Attribute::COUNT] = [None; Attribute::COUNT];
    for (slot, attribute) in attributes.iter_mut().zip(Attribute::ALL) {
        *slot = find(batch, attribute.column(), false)?;
    }
    let message_id = find(batch, col::MESSAGE_ID, false)?;
    let steps = [
        find(batch, col::FROM_STEP_ID, false)?,
        find(batch, col::FROM_STEP_TYPE, false)?,
        find(batch, col::TO_STEP_ID, false)?,
        find(batch, col::TO_STEP_TYPE, false)?,
    ];
    let (Some(event_id), Some(timestamp), Some(bot_id), Some(conversation_id), Some(event_type)) =
        (event_id, timestamp, bot_id, conversation_id, event_type)
    else {
        return Err(Error::data("batch", "required column is missing"));
    };

    let n = batch.num_rows();
    report.rows_seen += n as u64;
    let (micros, micros_valid) = to_micros(timestamp);
    let micros_ok = |row: usize| micros_valid.as_ref().is_none_or(|v| v[row]);

    // Rows with a problem in a required column, with the first reason.
    // Nulls are logical nulls: a `Null`-typed column is null in every row,
    // a dictionary key pointing at a null value is null.
    let required: [(RequiredColumn, Option<NullBuffer>); 4] = [
        (RequiredColumn::EventId, event_id.logical_nulls()),
        (RequiredColumn::BotId, bot_id.logical_nulls()),
        (
            RequiredColumn::ConversationId,
            conversation_id.logical_nulls(),
        ),
        (RequiredColumn::EventType, event_type.logical_nulls()),
    ];
    let timestamp_nulls = timestamp.logical_nulls();
    let is_null =
        |nulls: &Option<NullBuffer>, row: usize| nulls.as_ref().is_some_and(|n| n.is_null(row));
    let has_problems = required
        .iter()
        .any(|(_, nulls)| nulls.as_ref().is_some_and(|n| n.null_count() > 0))
        || micros_valid.is_some();
    if mode == IngestMode::Strict && n > 0 {
        // A whole column of type `Null`: say so rather than name row 1.
        let all_null = [
            (col::EVENT_ID, event_id),
            (col::TIMESTAMP, timestamp),
            (col::BOT_ID, bot_id),
            (col::CONVERSATION_ID, conversation_id),
            (col::EVENT_TYPE, event_type),
        ]
        .into_iter()
        .find(|(_, a)| *a.data_type() == DataType::Null);
        if let Some((column, _)) = all_null {
            return Err(Error::data(
                column_context(column),
                "required column has type Null (every value is null; strict mode rejects the whole input)",
            ));
        }
    }
    let mut keep = BooleanBufferBuilder::new(n);
    keep.append_n(n, true);
    let mut dropped = 0usize;
    for row in (0..n).filter(|_| has_problems) {
        let reason = if micros_ok(row) {
            required
                .iter()
                .find(|(_, nulls)| is_null(nulls, row))
                .map(|(column, _)| SkipReason::Null(*column))
        } else if is_null(&timestamp_nulls, row) {
            Some(SkipReason::Null(RequiredColumn::Timestamp))
        } else {
            Some(SkipReason::TimestampOutOfRange)
        };
        let Some(reason) = reason else {
            continue;
        };
        if mode == IngestMode::Strict {
            let (column, problem) = match reason {
                SkipReason::Null(column) => (column.name(), "null"),
                _ => (col::TIMESTAMP, "out of range"),
            };
            return Err(Error::data(
                format!("column `{column}`, {}", rows.name(row)),
                format!(
                    "{problem} value in a required column (strict mode rejects the whole input)"
                ),
            ));
        }
        keep.set_bit(row, false);
        dropped += 1;
        report.skip(reason);
    }
    let keep = keep.finish();
    let timestamp: Vec<i64> = if dropped == 0 {
        micros.into_owned()
    } else {
        micros
            .iter()
            .zip(keep.iter())
            .filter_map(|(&t, k)| k.then_some(t))
            .collect()
    };

    let mask = (dropped > 0).then(|| BooleanArray::new(keep, None));
    let view = |name: &str, array: &ArrayRef| -> Result<StringViewArray> {
        let v = to_view(name, array)?;
        Ok(match &mask {
            Some(mask) => arrow_select::filter::filter(&v, mask)
                .map_err(|e| Error::data_from(column_context(name), e))?
                .as_string_view()
                .clone(),
            None => v,
        })
    };
    // Columns are converted in parallel when the batch is large enough
    // for it to pay (a few µs of task overhead against ~1 ms a column).
    let string_columns: Vec<(&str, Option<&ArrayRef>)> = [
        (col::EVENT_ID, Some(event_id)),
        (col::BOT_ID, Some(bot_id)),
        (col::CONVERSATION_ID, Some(conversation_id)),
        (col::EVENT_TYPE, Some(event_type)),
    ]
    .into_iter()
    .chain(Attribute::ALL.iter().map(|a| a.column()).zip(attributes))
    .chain([
        (col::MESSAGE_ID, message_id),
        (col::FROM_STEP_ID, steps[0]),
        (col::FROM_STEP_TYPE, steps[1]),
        (col::TO_STEP_ID, steps[2]),
        (col::TO_STEP_TYPE, steps[3]),
    ])
    .collect();
    let convert =
        |(name, array): &(&str, Option<&ArrayRef>)| array.map(|a| view(name, a)).transpose();
    // Every column's result is kept, so that the error reported is the
    // first column's in order whichever thread finished first.
    let converted: Vec<Result<Option<StringViewArray>>> = if n >= PARALLEL_NORMALIZE_ROWS {
        string_columns.par_iter().map(convert).collect()
    } else {
        string_columns.iter().map(convert).collect()
    };
    let converted: Vec<Option<StringViewArray>> = converted.into_iter().collect::<Result<_>>()?;
    let mut converted = converted.into_iter();
    let mut next = || converted.next().flatten();
    // The four required columns were given as `Some` above.
    let (Some(event_id), Some(bot_id), Some(conversation_id), Some(event_type)) =
        (next(), next(), next(), next())
    else {
        return Err(Error::data("batch", "required column is missing"));
    };
    let attributes: [Option<StringViewArray>; Attribute::COUNT] = std::array::from_fn(|_| next());
    Ok(EventColumns {
        event_id,
        timestamp,
        bot_id,
        conversation_id,
        event_type,
        attributes,
        message_id: next(),
        from_step_id: next(),
        from_step_type: next(),
        to_step_id: next(),
        to_step_type: next(),
        event_ids_elided: false,
        latest: None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use arrow_array::types::Int16Type;
    use arrow_array::{
        DictionaryArray, Int64Array, LargeStringArray, NullArray, StringArray,
        TimestampNanosecondArray, TimestampSecondArray,
    };
    use arrow_schema::{Field, Schema};

    use super::*;
    use crate::error::ErrorKind;

    /// A batch with the required columns, `bot_id` in the given layout.
    fn batch(bot_id: ArrayRef, timestamp: ArrayRef) -> RecordBatch {
        let n = bot_id.len();
        let strings = |prefix: &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("{prefix}{i}")),
            ))
        };
        let columns: Vec<(&str, ArrayRef)> = vec![
            (col::EVENT_ID, strings("e")),
            (col::TIMESTAMP, timestamp),
            (col::BOT_ID, bot_id),
            (col::CONVERSATION_ID, strings("c")),
            (col::EVENT_TYPE, strings("t")),
            ("extra", Arc::new(Int64Array::from(vec![1; n]))),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(
            Arc::new(schema),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    fn micros(values: Vec<i64>) -> ArrayRef {
        Arc::new(arrow_array::TimestampMicrosecondArray::from(values))
    }

    fn strict(b: &RecordBatch) -> Result<EventColumns> {
        normalize(
            b,
            IngestMode::Strict,
            RowNumbers::From(1),
            &mut IngestReport::default(),
        )
    }

    #[test]
    fn every_string_layout_reads_the_same() {
        let layouts: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["a", "b", "a"])),
            Arc::new(LargeStringArray::from(vec!["a", "b", "a"])),
            Arc::new(StringViewArray::from(vec!["a", "b", "a"])),
            Arc::new(
                vec!["a", "b", "a"]
                    .into_iter()
                    .collect::<DictionaryArray<Int16Type>>(),
            ),
        ];
        for bot in layouts {
            let kind = bot.data_type().clone();
            let cols = strict(&batch(bot, micros(vec![1, 2, 3]))).unwrap();
            let got: Vec<&str> = (0..3).map(|i| cols.bot_id.value(i)).collect();
            assert_eq!(got, ["a", "b", "a"], "{kind}");
            assert!(
                cols.attributes.iter().all(Option::is_none),
                "absent optional columns"
            );
        }
    }

    #[test]
    fn timestamps_of_every_unit_become_floored_micros() {
        let bot = || -> ArrayRef { Arc::new(StringArray::from(vec!["b", "b"])) };
        let seconds: ArrayRef =
            Arc::new(TimestampSecondArray::from(vec![-1, 2]).with_timezone("+02:00"));
        assert_eq!(
            strict(&batch(bot(), seconds)).unwrap().timestamp,
            [-1_000_000, 2_000_000]
        );
        let nanos: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![-1, 1_999]));
        assert_eq!(strict(&batch(bot(), nanos)).unwrap().timestamp, [-1, 1]);
        let overflow: ArrayRef = Arc::new(TimestampSecondArray::from(vec![i64::MAX, 0]));
        let err = strict(&batch(bot(), overflow)).unwrap_err();
        assert!(err.to_string().contains("`timestamp`, row 1"), "{err}");
    }

    #[test]
    fn schema_errors_name_the_column() {
        let mut b = batch(Arc::new(StringArray::from(vec!["b"])), micros(vec![0]));
        let wrong = RecordBatch::try_from_iter(b.schema().fields().iter().zip(b.columns()).map(
            |(f, c)| {
                if f.name() == col::BOT_ID {
                    (
                        f.name().clone(),
                        Arc::new(Int64Array::from(vec![7])) as ArrayRef,
                    )
                } else {
                    (f.name().clone(), c.clone())
                }
            },
        ))
        .unwrap();
        let err = strict(&wrong).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Data);
        assert!(err.to_string().contains("column `bot_id`"), "{err}");
        b.remove_column(b.schema().index_of(col::CONVERSATION_ID).unwrap());
        let err = strict(&b).unwrap_err();
        assert!(
            err.to_string()
                .contains("column `conversation_id`: required column is missing"),
            "{err}"
        );
    }

    #[test]
    fn nulls_in_required_columns_strict_and_lenient() {
        let bot: ArrayRef = Arc::new(StringArray::from(vec![Some("b"), None, Some("b"), None]));
        let ts: ArrayRef = Arc::new(arrow_array::TimestampMicrosecondArray::from(vec![
            Some(1),
            Some(2),
            None,
            Some(4),
        ]));
        let b = batch(bot, ts);
        let err = strict(&b).unwrap_err();
        assert!(err.to_string().contains("column `bot_id`, row 2"), "{err}");
        let mut report = IngestReport::default();
        let cols = normalize(&b, IngestMode::Lenient, RowNumbers::From(1), &mut report).unwrap();
        assert_eq!(cols.len(), 1);
        assert_eq!(cols.timestamp, [1]);
        assert_eq!(cols.event_id.value(0), "e0");
        assert_eq!(report.rows_seen, 4);
        let null = |c| report.skipped.get(&SkipReason::Null(c)).copied();
        assert_eq!(null(RequiredColumn::BotId), Some(2));
        assert_eq!(null(RequiredColumn::Timestamp), Some(1));
    }

    #[test]
    fn an_all_null_optional_column_is_accepted() {
        let b = batch(Arc::new(StringArray::from(vec!["b"])), micros(vec![0]));
        let mut columns = b.columns().to_vec();
        let mut fields: Vec<Field> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        columns.push(Arc::new(NullArray::new(1)));
        fields.push(Field::new(col::LANGUAGE, DataType::Null, true));
        let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let cols = strict(&b).unwrap();
        let language = cols.attributes[Attribute::Language.index()]
            .as_ref()
            .unwrap();
        assert!(language.is_null(0));
    }

    /// `b` with column `name` replaced by (or, if absent, extended with)
    /// `array`.
    fn with_column(b: &RecordBatch, name: &str, array: ArrayRef) -> RecordBatch {
        let mut columns: Vec<(String, ArrayRef)> = b
            .schema()
            .fields()
            .iter()
            .zip(b.columns())
            .filter(|(f, _)| f.name() != name)
            .map(|(f, c)| (f.name().clone(), c.clone()))
            .collect();
        columns.push((name.to_owned(), array));
        RecordBatch::try_from_iter(columns).unwrap()
    }

    fn lenient(b: &RecordBatch) -> (EventColumns, IngestReport) {
        let mut report = IngestReport::default();
        let cols = normalize(b, IngestMode::Lenient, RowNumbers::From(1), &mut report).unwrap();
        (cols, report)
    }

    /// A required column of type `Null` (pandas' all-`None` column) is a
    /// null in every row: strict mode names the column, lenient mode skips
    /// and counts every row. It used to be read as empty strings.
    #[test]
    fn null_typed_required_columns_are_nulls_in_every_row() {
        let b = batch(
            Arc::new(StringArray::from(vec!["b", "b", "b"])),
            micros(vec![1, 2, 3]),
        );
        for (name, _) in COLUMNS.iter().filter(|(_, required)| *required) {
            let nulls = with_column(&b, name, Arc::new(NullArray::new(3)));
            let err = strict(&nulls).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Data);
            assert!(
                err.to_string().contains(&format!("column `{name}`")),
                "{err}"
            );
            assert!(err.to_string().contains("type Null"), "{err}");
            let (cols, report) = lenient(&nulls);
            assert_eq!(cols.len(), 0, "{name}");
            assert_eq!(report.rows_seen, 3);
            let texts: Vec<(String, u64)> = report
                .skipped
                .iter()
                .map(|(r, n)| (r.to_string(), *n))
                .collect();
            assert_eq!(texts, [(format!("null {name}"), 3)], "{name}");
            // Zero rows of type Null: nothing is wrong.
            let empty = with_column(&b.slice(0, 0), name, Arc::new(NullArray::new(0)));
            assert_eq!(strict(&empty).unwrap().len(), 0);
        }
    }

    /// A dictionary key pointing at a null value is a null: in a required
    /// column (rejected or skipped) and in an optional one (a null
    /// attribute).
    #[test]
    fn dictionary_null_values_are_nulls() {
        let dict = |values: Vec<Option<&str>>| -> ArrayRef {
            let keys = arrow_array::Int8Array::from(vec![0, 1, 0, 2]);
            let values: ArrayRef = Arc::new(StringArray::from(values));
            Arc::new(
                DictionaryArray::<arrow_array::types::Int8Type>::try_new(keys, values).unwrap(),
            )
        };
        let b = batch(
            dict(vec![Some("b"), None, Some("c")]),
            micros(vec![1, 2, 3, 4]),
        );
        let err = strict(&b).unwrap_err();
        assert!(err.to_string().contains("column `bot_id`, row 2"), "{err}");
        let (cols, report) = lenient(&b);
        assert_eq!(cols.len(), 3);
        assert_eq!(
            report.skipped,
            BTreeMap::from([(SkipReason::Null(RequiredColumn::BotId), 1)])
        );
        let b = batch(
            Arc::new(StringArray::from(vec!["b"; 4])),
            micros(vec![1, 2, 3, 4]),
        );
        let b = with_column(&b, col::LANGUAGE, dict(vec![Some("en"), None, Some("nl")]));
        let cols = strict(&b).unwrap();
        let language = cols.attributes[Attribute::Language.index()]
            .as_ref()
            .unwrap();
        let got: Vec<Option<&str>> = language.iter().collect();
        assert_eq!(got, [Some("en"), None, Some("en"), Some("nl")]);
    }

    /// `Int32` keys take the per-row fast path: null keys, keys of null
    /// entries, long and short entries read as arrow's cast reads them.
    #[test]
    fn int32_dictionaries_read_as_arrow_casts_them() {
        let values: ArrayRef = Arc::new(StringArray::from(vec![
            Some("short"),
            None,
            Some("a value longer than twelve bytes"),
            Some(""),
        ]));
        let keys =
            arrow_array::Int32Array::from(vec![Some(2), None, Some(0), Some(1), Some(3), Some(2)]);
        let dict: ArrayRef =
            Arc::new(DictionaryArray::<Int32Type>::try_new(keys, values.clone()).unwrap());
        let fast = to_view("language", &dict).unwrap();
        let cast = arrow_cast::cast(&dict, &DataType::Utf8View).unwrap();
        let cast = cast.as_string_view();
        let got: Vec<Option<&str>> = fast.iter().collect();
        let want: Vec<Option<&str>> = cast.iter().collect();
        assert_eq!(got, want);
        assert_eq!(got[3], None); // a key of a null entry
                                  // A null slot holding an out-of-range key: the general path.
        let keys = arrow_array::Int32Array::new(
            vec![0, 99].into(),
            Some(NullBuffer::from(vec![true, false])),
        );
        let dict: ArrayRef = Arc::new(DictionaryArray::<Int32Type>::try_new(keys, values).unwrap());
        let got: Vec<Option<String>> = to_view("language", &dict)
            .unwrap()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect();
        assert_eq!(got, [Some("short".to_owned()), None]);
    }

    #[test]
    fn views_are_those_arrow_makes() {
        let values: Vec<u8> = (0..64u8).map(|i| b'a' + i % 26).collect();
        for start in 0..values.len() {
            for end in start..values.len().min(start + 20) + 1 {
                assert_eq!(
                    view_at(&values, start, end, 0),
                    arrow_array::builder::make_view(&values[start..end], 0, start as u32),
                    "{start}..{end}"
                );
            }
        }
    }

    #[test]
    fn utf8_becomes_views_of_the_same_strings() {
        let long = "a string longer than twelve bytes, é";
        let array = StringArray::from(vec![Some(""), None, Some("short"), Some(long), Some("x")]);
        for (offset, len) in [(0, 5), (1, 3), (3, 2), (5, 0)] {
            let sliced = array.slice(offset, len);
            let view = utf8_to_view(&sliced).unwrap();
            assert_eq!(view.len(), len);
            for i in 0..len {
                assert_eq!(view.is_valid(i), sliced.is_valid(i));
                if sliced.is_valid(i) {
                    assert_eq!(view.value(i), sliced.value(i));
                }
            }
        }
    }

    #[test]
    fn empty_batches_are_fine() {
        let cols = strict(&batch(
            Arc::new(StringArray::from(Vec::<&str>::new())),
            micros(vec![]),
        ))
        .unwrap();
        assert_eq!(cols.len(), 0);
    }
}
