//! What an ingest call reports: rows seen, ingested, duplicate and skipped,
//! with a typed reason per skipped row.
//!
//! Every ingest path (Arrow, rows, NDJSON, Parquet, batch jobs) fills one
//! [`IngestReport`]; partial reports of batches, row groups or threads are
//! merged with [`IngestReport::merge`]. The report is serialisable, so a
//! host's own server can answer with it as it is.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

use crate::schema::col;

/// The five columns SPEC 1 requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequiredColumn {
    /// `event_id`
    EventId,
    /// `timestamp`
    Timestamp,
    /// `bot_id`
    BotId,
    /// `conversation_id`
    ConversationId,
    /// `event_type`
    EventType,
}

impl RequiredColumn {
    /// The column's name.
    pub fn name(self) -> &'static str {
        match self {
            RequiredColumn::EventId => col::EVENT_ID,
            RequiredColumn::Timestamp => col::TIMESTAMP,
            RequiredColumn::BotId => col::BOT_ID,
            RequiredColumn::ConversationId => col::CONVERSATION_ID,
            RequiredColumn::EventType => col::EVENT_TYPE,
        }
    }
}

/// Why lenient mode skipped a row.
///
/// Its text (`Display`, and its serde form) is what the CLI prints and the
/// server answers: `null bot_id`, `timestamp out of range`.
///
/// ```
/// use convostat::{RequiredColumn, SkipReason};
/// assert_eq!(SkipReason::Null(RequiredColumn::BotId).to_string(), "null bot_id");
/// assert_eq!(
///     serde_json::to_string(&SkipReason::TimestampOutOfRange).unwrap(),
///     r#""timestamp out of range""#
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum SkipReason {
    /// A null in a required column (also a column of Arrow type `Null`,
    /// and a dictionary entry that is null).
    Null(RequiredColumn),
    /// A timestamp outside the range of µs since the epoch that an `i64`
    /// holds.
    TimestampOutOfRange,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Null(column) => write!(f, "null {}", column.name()),
            SkipReason::TimestampOutOfRange => f.write_str("timestamp out of range"),
        }
    }
}

impl Serialize for SkipReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What one ingest call did.
///
/// `rows_seen = rows_ingested + duplicates + sum(skipped)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct IngestReport {
    /// Rows read from the input.
    pub rows_seen: u64,
    /// Rows that became part of the engine's data.
    pub rows_ingested: u64,
    /// Rows dropped because their `event_id` had been ingested before.
    pub duplicates: u64,
    /// Rows skipped in lenient mode, per reason.
    pub skipped: BTreeMap<SkipReason, u64>,
}

impl IngestReport {
    /// Adds `other`'s counts to this report.
    pub fn merge(&mut self, other: &IngestReport) {
        self.rows_seen += other.rows_seen;
        self.rows_ingested += other.rows_ingested;
        self.duplicates += other.duplicates;
        for (reason, n) in &other.skipped {
            *self.skipped.entry(*reason).or_default() += n;
        }
    }

    /// Counts one row skipped for `reason`.
    pub(crate) fn skip(&mut self, reason: SkipReason) {
        *self.skipped.entry(reason).or_default() += 1;
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
#[non_exhaustive]
pub struct IngestSummary {
    /// Rows that became part of the engine's data.
    pub accepted: u64,
    /// Rows dropped because their `event_id` had been ingested before.
    pub duplicates: u64,
    /// Rows skipped in lenient mode, per reason (serialised as its text,
    /// `null bot_id`).
    pub skipped: BTreeMap<SkipReason, u64>,
}

impl From<&IngestReport> for IngestSummary {
    fn from(report: &IngestReport) -> Self {
        Self {
            accepted: report.rows_ingested,
            duplicates: report.duplicates,
            skipped: report.skipped.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_merge_and_serialise_reasons_as_text() {
        let mut a = IngestReport::default();
        a.skip(SkipReason::Null(RequiredColumn::EventType));
        let mut b = IngestReport::default();
        b.skip(SkipReason::Null(RequiredColumn::EventType));
        b.skip(SkipReason::TimestampOutOfRange);
        a.merge(&b);
        assert_eq!(a.skipped_rows(), 3);
        assert_eq!(
            serde_json::to_string(&a.skipped).unwrap(),
            r#"{"null event_type":2,"timestamp out of range":1}"#
        );
    }
}
