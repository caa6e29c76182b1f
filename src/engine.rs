//! The embedded engine: ingest events from any thread, query from any other.
//!
//! [`Engine`] ties the layers together: [`crate::ingest`] decodes and
//! validates input, `store` folds it into conversation summaries,
//! [`crate::query`] answers from those summaries. It is `Send + Sync` and
//! every method takes `&self`; share it with an `Arc`.
//!
//! Every ingest call is atomic: the input (a batch, a row slice, a whole
//! NDJSON stream or Parquet file) is decoded and validated completely before
//! anything of it is applied, so a rejected input leaves the engine exactly
//! as it was.

use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use arrow_array::RecordBatch;

use crate::answer::{Answer, FlowAnswer, SeriesAnswer};
use crate::error::{Error, Result};
use crate::ingest::guard::guard;
use crate::ingest::ndjson::read_ndjson;
use crate::ingest::parquet::{scan_parquet, RowsRead};
use crate::ingest::{
    events_to_batch, normalize, EventColumns, IngestMode, IngestReport, RowNumbers, ScanScope,
};
use crate::query::series::SeriesPlan;
use crate::query::{flow, series, ConversationsQuery, FlowQuery, InsightsQuery, Query, UsageQuery};
use crate::schema::Event;
use crate::store::{Store, StoreOptions};

/// Validated input waiting to be applied: the report so far and the
/// columns of each batch with the number of its first row or line.
type StagedColumns = (IngestReport, Vec<(u64, EventColumns)>);

/// Size figures of an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    /// Distinct conversations held.
    pub conversations: usize,
    /// Distinct events ingested (dedup set size).
    pub events: usize,
    /// Approximate heap bytes held by the engine's data structures.
    pub heap_bytes: usize,
}

/// An in-process conversation analytics engine.
///
/// ```
/// use convostat::{Engine, Event, ConversationsQuery, Params};
/// let engine = Engine::new();
/// let event = |id: &str, ts: &str| Event {
///     event_id: id.into(),
///     timestamp: convostat::time::parse_rfc3339_micros(ts).unwrap(),
///     bot_id: "b1".into(),
///     conversation_id: "c1".into(),
///     event_type: "message".into(),
///     bot_version: Some("LIVE".into()),
///     ..Default::default()
/// };
/// let report = engine.ingest_events(&[
///     event("e1", "2024-03-01T10:00:00Z"),
///     event("e2", "2024-03-01T10:05:00Z"),
///     event("e2", "2024-03-01T10:05:00Z"),
/// ])?;
/// assert_eq!((report.rows_ingested, report.duplicates), (2, 1));
/// let query = ConversationsQuery::from_params(&Params::new([
///     ("bot_id", "b1"), ("version", "LIVE"),
///     ("start_time", "2024-03-01"), ("end_time", "2024-03-03"),
/// ])?)?;
/// let answer = engine.conversations(&query)?;
/// assert_eq!(answer.data.series[0].values, [1, 0]);
/// # Ok::<(), convostat::Error>(())
/// ```
#[derive(Debug)]
pub struct Engine {
    store: Store,
    mode: IngestMode,
    /// Bumped after every ingest call that added rows (see `generation`).
    generation: AtomicU64,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// An empty engine in strict mode.
    pub fn new() -> Self {
        Self::with_mode(IngestMode::Strict)
    }

    /// An empty engine with the given null policy.
    pub fn with_mode(mode: IngestMode) -> Self {
        Self::with_store(StoreOptions::default(), mode)
    }

    pub(crate) fn with_store(options: StoreOptions, mode: IngestMode) -> Self {
        Self {
            store: Store::new(options),
            mode,
            generation: AtomicU64::new(0),
        }
    }

    /// The engine's null policy.
    pub fn mode(&self) -> IngestMode {
        self.mode
    }

    /// The data's version: a number that changes after every ingest call
    /// that added rows, and only then. A host may cache answers tagged with
    /// the generation read before the query ran, and serve them while the
    /// generation is unchanged (duplicates and rejected inputs keep it).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn apply(&self, columns: &[EventColumns], report: &mut IngestReport) {
        let before = report.rows_ingested;
        for cols in columns {
            let applied = self.store.apply(cols);
            report.rows_ingested += applied.ingested;
            report.duplicates += applied.duplicates;
        }
        if report.rows_ingested > before {
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// Ingests one Arrow batch in any accepted layout (SPEC 1).
    pub fn ingest_batch(&self, batch: &RecordBatch) -> Result<IngestReport> {
        self.ingest_batches_with(std::slice::from_ref(batch), self.mode)
    }

    /// Ingests several Arrow batches as one atomic input: every batch is
    /// validated before any is applied, so one bad batch rejects them all.
    /// Rows are numbered across the batches in error messages.
    pub fn ingest_batches(&self, batches: &[RecordBatch]) -> Result<IngestReport> {
        self.ingest_batches_with(batches, self.mode)
    }

    /// [`Engine::ingest_batches`] with the null policy `mode` for this call
    /// only (a server's `?mode=lenient`), whatever the engine's own mode.
    pub fn ingest_batches_with(
        &self,
        batches: &[RecordBatch],
        mode: IngestMode,
    ) -> Result<IngestReport> {
        let mut staged = (IngestReport::default(), Vec::with_capacity(batches.len()));
        let mut first_row = 1u64;
        for batch in batches {
            let cols = normalize(batch, mode, RowNumbers::From(first_row), &mut staged.0)?;
            staged.1.push((first_row, cols));
            first_row += batch.num_rows() as u64;
        }
        self.apply_staged(Mutex::new(staged))
    }

    /// Ingests rows.
    pub fn ingest_events(&self, events: &[Event]) -> Result<IngestReport> {
        self.ingest_batch(&events_to_batch(events)?)
    }

    /// Ingests NDJSON (one event object per line), atomically.
    pub fn ingest_ndjson(&self, reader: impl BufRead) -> Result<IngestReport> {
        self.ingest_ndjson_with(reader, self.mode)
    }

    /// [`Engine::ingest_ndjson`] with the null policy `mode` for this call
    /// only, whatever the engine's own mode.
    pub fn ingest_ndjson_with(
        &self,
        reader: impl BufRead,
        mode: IngestMode,
    ) -> Result<IngestReport> {
        let staged = Mutex::new((IngestReport::default(), Vec::new()));
        guard("ndjson", || {
            read_ndjson(reader, |batch, lines| {
                let mut report = IngestReport::default();
                let cols = normalize(&batch, mode, RowNumbers::Lines(lines), &mut report)?;
                let mut staged = staged.lock().unwrap_or_else(|p| p.into_inner());
                staged.0.merge(&report);
                staged.1.push((lines.first().copied().unwrap_or(0), cols));
                Ok(())
            })
        })?;
        self.apply_staged(staged)
    }

    /// Ingests an NDJSON file, atomically; errors name the file.
    pub fn ingest_ndjson_file(&self, path: impl AsRef<Path>) -> Result<IngestReport> {
        let path = path.as_ref();
        let file = std::fs::File::open(path)
            .map_err(|e| Error::data_from(path.display().to_string(), e))?;
        self.ingest_ndjson(std::io::BufReader::with_capacity(1 << 20, file))
            .map_err(|e| e.within(path.display()))
    }

    /// Ingests a Parquet file, atomically; errors name the file.
    pub fn ingest_parquet(&self, path: impl AsRef<Path>) -> Result<IngestReport> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let open = || std::fs::File::open(path).map_err(|e| Error::data_from(name.clone(), e));
        self.ingest_parquet_source(&name, open)
    }

    /// Ingests a Parquet file held in memory, atomically.
    pub fn ingest_parquet_bytes(&self, bytes: impl Into<bytes::Bytes>) -> Result<IngestReport> {
        let bytes = bytes.into();
        self.ingest_parquet_source("parquet input", || Ok(bytes.clone()))
    }

    fn ingest_parquet_source<R: parquet::file::reader::ChunkReader + 'static>(
        &self,
        name: &str,
        open: impl Fn() -> Result<R> + Sync,
    ) -> Result<IngestReport> {
        let staged = Mutex::new((IngestReport::default(), Vec::new()));
        scan_parquet(name, open, None, &ScanScope::all(), |batch, read| {
            let first_row = match read {
                RowsRead::Whole { first_row } => first_row,
                RowsRead::Filtered => 0, // not with an empty scope
            };
            let mut report = IngestReport::default();
            let cols = normalize(&batch, self.mode, RowNumbers::From(first_row), &mut report)
                .map_err(|e| e.within(name))?;
            let mut staged = staged.lock().unwrap_or_else(|p| p.into_inner());
            staged.0.merge(&report);
            staged.1.push((first_row, cols));
            Ok(())
        })?;
        self.apply_staged(staged)
    }

    /// Applies validated columns staged by (first row, columns), in input
    /// order, so that the first of two duplicates in the input wins.
    fn apply_staged(&self, staged: Mutex<StagedColumns>) -> Result<IngestReport> {
        let (mut report, mut columns) = staged.into_inner().unwrap_or_else(|p| p.into_inner());
        columns.sort_by_key(|(first_row, _)| *first_row);
        let columns: Vec<EventColumns> = columns.into_iter().map(|(_, c)| c).collect();
        self.apply(&columns, &mut report);
        Ok(report)
    }

    /// Ingests already-normalised columns (batch execution).
    pub(crate) fn ingest_columns(&self, cols: &EventColumns, report: &mut IngestReport) {
        self.apply(std::slice::from_ref(cols), report);
    }

    /// SPEC 4.1: the number of a bot's conversations over time.
    pub fn conversations(&self, query: &ConversationsQuery) -> Result<SeriesAnswer> {
        Ok(series::run(&self.store, &SeriesPlan::conversations(query)?))
    }

    /// SPEC 4.2: one statistic aggregated per bucket.
    pub fn insights(&self, query: &InsightsQuery) -> Result<SeriesAnswer> {
        Ok(series::run(&self.store, &SeriesPlan::insights(query)?))
    }

    /// SPEC 4.3: one conversation's transitions; not found when the
    /// conversation is unknown or has another version.
    pub fn flow(&self, query: &FlowQuery) -> Result<FlowAnswer> {
        flow::run(&self.store, query)
    }

    /// SPEC 4.4: a team's conversations over time.
    pub fn usage(&self, query: &UsageQuery) -> Result<SeriesAnswer> {
        Ok(series::run(&self.store, &SeriesPlan::usage(query)?))
    }

    /// Any query.
    pub fn query(&self, query: &Query) -> Result<Answer> {
        Ok(match query {
            Query::Conversations(q) => Answer::Series(self.conversations(q)?),
            Query::Insights(q) => Answer::Series(self.insights(q)?),
            Query::Flow(q) => Answer::Flow(self.flow(q)?),
            Query::Usage(q) => Answer::Series(self.usage(q)?),
        })
    }

    /// Size figures.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            conversations: self.store.conversations(),
            events: self.store.distinct_events(),
            heap_bytes: self.store.heap_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, bot: &str) -> String {
        format!(
            r#"{{"event_id":"{id}","timestamp":"2024-03-01T10:00:00Z","bot_id":{bot},"conversation_id":"c1","event_type":"message"}}"#
        )
    }

    #[test]
    fn ingest_batches_is_atomic_over_all_batches() {
        let engine = Engine::new();
        let good = events_to_batch(&[Event {
            event_id: "e1".into(),
            bot_id: "b1".into(),
            conversation_id: "c1".into(),
            event_type: "message".into(),
            ..Default::default()
        }])
        .unwrap();
        // The same row with a null in a required column.
        let (schema, mut columns, _) = good.clone().into_parts();
        let fields: Vec<arrow_schema::Field> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        columns[0] = std::sync::Arc::new(arrow_array::StringArray::from(vec![None::<&str>]));
        let schema = std::sync::Arc::new(arrow_schema::Schema::new(fields));
        let bad = RecordBatch::try_new(schema, columns).unwrap();
        let e = engine
            .ingest_batches(&[good.clone(), bad.clone()])
            .unwrap_err();
        assert!(e.to_string().contains("row 2"), "{e}");
        assert_eq!(engine.stats().events, 0);
        let report = engine
            .ingest_batches_with(&[good.clone(), bad], IngestMode::Lenient)
            .unwrap();
        assert_eq!((report.rows_ingested, report.skipped_rows()), (1, 1));
        let generation = engine.generation();
        let report = engine.ingest_batches(&[good.clone(), good]).unwrap();
        assert_eq!((report.rows_ingested, report.duplicates), (0, 2));
        assert_eq!(engine.generation(), generation, "duplicates change nothing");
    }

    #[test]
    fn the_mode_of_one_ndjson_call_overrides_the_engines() {
        let engine = Engine::new();
        let text = format!("{}\n{}\n", line("e1", "\"b1\""), line("e2", "null"));
        assert!(engine.ingest_ndjson(text.as_bytes()).is_err());
        assert_eq!(engine.generation(), 0, "a rejected input changes nothing");
        let report = engine
            .ingest_ndjson_with(text.as_bytes(), IngestMode::Lenient)
            .unwrap();
        assert_eq!(report.rows_ingested, 1);
        assert_eq!(report.summary().skipped.values().sum::<u64>(), 1);
        assert_eq!(engine.mode(), IngestMode::Strict);
        assert_eq!(engine.generation(), 1);
    }

    #[test]
    fn engine_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Engine>();
    }
}
