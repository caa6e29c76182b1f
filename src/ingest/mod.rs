//! Ingestion: from Arrow batches, rows, NDJSON and Parquet to normalised
//! event columns.
//!
//! Every source ends up as Arrow [`RecordBatch`](arrow_array::RecordBatch)es
//! in some physical layout; `normalize` turns any accepted layout (SPEC 1)
//! into one internal form, `EventColumns`: strings as `Utf8View`, time as
//! µs since the epoch. It also enforces the null policy: in
//! [`IngestMode::Strict`] a null in a required column rejects the input, in
//! [`IngestMode::Lenient`] the row is skipped and counted in the
//! [`IngestReport`]. The store (`crate::store`) only ever sees valid
//! normalised columns, so it cannot fail half-way through an input.

use serde::Serialize;

pub(crate) mod bounds;
mod delta_header;
mod flat_json;
pub(crate) mod guard;
mod line_ranges;
pub mod ndjson;
mod normalize;
mod page_header;
pub mod parquet;
mod pipeline;
mod report;
mod rows;
pub mod scope;
mod team_rows;
mod value_set;

pub(crate) use normalize::{
    inline_view_hash, normalize, opt_str, to_micros, EventColumns, RowNumbers, INLINE_VIEW_LEN,
};
pub use report::{IngestReport, IngestSummary, RequiredColumn, SkipReason};
pub(crate) use rows::events_to_batch;
#[cfg(test)]
pub(crate) use rows::events_to_columns;
pub(crate) use scope::Elision;
pub use scope::ScanScope;

/// What to do with a row that has a null in a required column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum IngestMode {
    /// Reject the whole batch or file, atomically (the default).
    #[default]
    Strict,
    /// Skip the row and count it in [`IngestReport::skipped`].
    Lenient,
}
