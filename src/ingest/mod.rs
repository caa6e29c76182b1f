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

use std::collections::BTreeMap;

use serde::Serialize;

mod delta_header;
pub(crate) mod guard;
pub mod ndjson;
mod normalize;
mod page_header;
pub mod parquet;
mod pipeline;
mod rows;
pub mod scope;

pub(crate) use normalize::{normalize, opt_str, EventColumns, RowNumbers};
pub(crate) use rows::events_to_batch;
pub use scope::ScanScope;

/// What to do with a row that has a null in a required column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub enum IngestMode {
    /// Reject the whole batch or file, atomically (the default).
    #[default]
    Strict,
    /// Skip the row and count it in [`IngestReport::skipped`].
    Lenient,
}

/// What one ingest call did.
///
/// `rows_seen = rows_ingested + duplicates + sum(skipped)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    /// Rows read from the input.
    pub rows_seen: u64,
    /// Rows that became part of the engine's data.
    pub rows_ingested: u64,
    /// Rows dropped because their `event_id` had been ingested before.
    pub duplicates: u64,
    /// Rows skipped in lenient mode, per reason (e.g. `null bot_id`).
    pub skipped: BTreeMap<String, u64>,
}

impl IngestReport {
    /// Adds `other`'s counts to this report.
    pub fn merge(&mut self, other: &IngestReport) {
        self.rows_seen += other.rows_seen;
        self.rows_ingested += other.rows_ingested;
        self.duplicates += other.duplicates;
        for (reason, n) in &other.skipped {
            *self.skipped.entry(reason.clone()).or_default() += n;
        }
    }

    /// Total number of skipped rows.
    pub fn skipped_rows(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// The answer to give a client that sent the input (SPEC 8).
    pub fn summary(&self) -> IngestSummary {
        IngestSummary::from(self)
    }
}

/// The client-facing outcome of one ingest call, as `convostat serve`
/// answers `POST /v1/events` (SPEC 8):
/// `{"accepted": N, "duplicates": D, "skipped": {"<reason>": n}}`.
///
/// ```
/// use convostat::Engine;
/// let engine = Engine::new();
/// let line = r#"{"event_id":"e1","timestamp":"2024-03-01T10:00:00Z","bot_id":"b1","conversation_id":"c1","event_type":"message"}"#;
/// engine.ingest_ndjson(line.as_bytes())?;
/// let again = engine.ingest_ndjson(line.as_bytes())?.summary();
/// assert_eq!(
///     serde_json::to_string(&again).unwrap(),
///     r#"{"accepted":0,"duplicates":1,"skipped":{}}"#
/// );
/// # Ok::<(), convostat::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestSummary {
    /// Rows that became part of the engine's data.
    pub accepted: u64,
    /// Rows dropped because their `event_id` had been ingested before.
    pub duplicates: u64,
    /// Rows skipped in lenient mode, per reason in words (`null bot_id`).
    pub skipped: BTreeMap<String, u64>,
}

impl From<&IngestReport> for IngestSummary {
    fn from(report: &IngestReport) -> Self {
        Self {
            accepted: report.rows_ingested,
            duplicates: report.duplicates,
            // `to_string` so that any displayable reason type works.
            skipped: report
                .skipped
                .iter()
                .map(|(reason, n)| (reason.to_string(), *n))
                .collect(),
        }
    }
}
