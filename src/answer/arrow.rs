//! Answers as Arrow record batches, for hosts that continue in Arrow.
//!
//! A series answer becomes a long table, one row per (series, x value):
//! `x_value`, `series_label`, one column per label field, `value`. A flow
//! answer becomes one row per transition.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use super::{FlowAnswer, SeriesAnswer};
use crate::error::{Error, Result};

impl SeriesAnswer {
    /// One row per series and x value: `x_value`, `series_label`, the label
    /// fields (in name order), `value`.
    ///
    /// ```
    /// # use convostat::{SeriesAnswer, SeriesData, Series};
    /// let answer = SeriesAnswer { data: SeriesData {
    ///     series: vec![Series::new(vec![1, 2], Default::default())],
    ///     series_labels: vec!["num_conversations".into()],
    ///     x_values: vec!["2024-03-01T00:00:00Z".into(), "2024-03-02T00:00:00Z".into()],
    /// }};
    /// let batch = answer.to_record_batch()?;
    /// assert_eq!(batch.num_rows(), 2);
    /// # Ok::<(), convostat::Error>(())
    /// ```
    pub fn to_record_batch(&self) -> Result<RecordBatch> {
        let data = &self.data;
        let fields: Vec<&String> = data
            .series
            .first()
            .map(|s| s.labels.keys().collect())
            .unwrap_or_default();
        let rows = data.series.len() * data.x_values.len();
        let mut x = Vec::with_capacity(rows);
        let mut label = Vec::with_capacity(rows);
        // Not `vec![..; n]`: its clones would have no capacity.
        let mut field_values: Vec<Vec<&str>> = (0..fields.len())
            .map(|_| Vec::with_capacity(rows))
            .collect();
        let mut value = Vec::with_capacity(rows);
        for (series, series_label) in data.series.iter().zip(&data.series_labels) {
            for (x_value, v) in data.x_values.iter().zip(&series.values) {
                x.push(x_value.as_str());
                label.push(series_label.as_str());
                for (column, field) in field_values.iter_mut().zip(&fields) {
                    column.push(series.labels.get(*field).map_or("", String::as_str));
                }
                value.push(*v);
            }
        }
        let mut schema = vec![
            Field::new("x_value", DataType::Utf8, false),
            Field::new("series_label", DataType::Utf8, false),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(x)),
            Arc::new(StringArray::from(label)),
        ];
        for (field, values) in fields.iter().zip(field_values) {
            schema.push(Field::new(field.as_str(), DataType::Utf8, false));
            columns.push(Arc::new(StringArray::from(values)));
        }
        schema.push(Field::new("value", DataType::UInt64, false));
        columns.push(Arc::new(UInt64Array::from(value)));
        RecordBatch::try_new(Arc::new(Schema::new(schema)), columns)
            .map_err(|e| Error::data_from("answer", e))
    }
}

impl FlowAnswer {
    /// One row per transition: `id`, `from_step_id`, `from_step_type`,
    /// `to_step_id`, `to_step_type`, `depth`, `timestamp`.
    pub fn to_record_batch(&self) -> Result<RecordBatch> {
        let t = &self.transitions;
        let strings = |f: fn(&super::FlowTransition) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(t.iter().map(f)))
        };
        let timestamps: Vec<i64> = t
            .iter()
            .map(|t| crate::time::parse_rfc3339_micros(&t.timestamp))
            .collect::<Result<_>>()?;
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("from_step_id", DataType::Utf8, false),
            Field::new("from_step_type", DataType::Utf8, false),
            Field::new("to_step_id", DataType::Utf8, false),
            Field::new("to_step_type", DataType::Utf8, false),
            Field::new("depth", DataType::UInt64, false),
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]);
        let columns: Vec<ArrayRef> = vec![
            strings(|t| &t.id),
            strings(|t| &t.from_step.id),
            strings(|t| &t.from_step.step_type),
            strings(|t| &t.to_step.id),
            strings(|t| &t.to_step.step_type),
            Arc::new(UInt64Array::from_iter_values(t.iter().map(|t| t.depth))),
            Arc::new(TimestampMicrosecondArray::from(timestamps).with_timezone("UTC")),
        ];
        RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| Error::data_from("answer", e))
    }
}
