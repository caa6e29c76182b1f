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
//!
//! # Durability (SPEC 9)
//!
//! [`Engine::open`] (or [`EngineOptions::open`]) gives an engine backed by
//! a data directory. Every ingest call funnels through one place
//! (`commit`): the validated, normalised columns of the whole call are
//! appended to the write-ahead log as one record and synced (group commit:
//! concurrent calls share an fsync) before they are applied and the call
//! returns `Ok`. Log order is apply order: the record is appended and the
//! call's dedup claims made under the same lock, so replay picks the same
//! first-ingested duplicates. Checkpoints ([`Engine::checkpoint`],
//! automatic by log size, and on [`Engine::close`] or drop) snapshot the
//! store so that reopening replays only the log written since. See
//! `store::directory` for the files and the recovery rules.

use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::RecordBatch;

use crate::answer::{Answer, FlowAnswer, SeriesAnswer};
use crate::batch::InputFormat;
use crate::error::{Error, Result};
use crate::ingest::guard::guard;
use crate::ingest::ndjson::{
    is_gzip_name, open_ndjson_file, read_ndjson_bytes, read_ndjson_columns, LineNumbers,
};
use crate::ingest::parquet::{scan_parquet, FileRanges, RowsRead};
use crate::ingest::{
    events_to_batch, normalize, EventColumns, IngestMode, IngestReport, RowNumbers, ScanScope,
};
use crate::query::series::SeriesPlan;
use crate::query::{flow, series, ConversationsQuery, FlowQuery, InsightsQuery, Query, UsageQuery};
use crate::schema::{Event, COLUMNS};
use crate::store::directory::{Capture, CheckpointWrite, DataDir};
pub use crate::store::directory::{OpenReport, FORMAT_VERSION};
use crate::store::gate::{run_still, Gate};
use crate::store::staged::{self, LoggedCall, StagedBatch, StagedCall, STAGED_COLUMN_ROWS};
pub use crate::store::wal::SyncPolicy;
use crate::store::wal::{self, RecordKind};
use crate::store::{Store, StoreOptions};

/// Where an NDJSON reader hands its batches and their line numbers.
type NdjsonSink<'a> = dyn Fn(RecordBatch, LineNumbers) -> Result<()> + Sync + 'a;

/// Size figures of an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Bumped after every ingest or retention that changed the data (see
    /// [`Engine::generation`]).
    generation: AtomicU64,
    /// Ingest calls pass it together from their dedup claims to their
    /// fold; checkpoints and retention hold it alone, so that they see a
    /// store that matches the log exactly (`store::gate`, which also
    /// keeps ingest from rayon's pool free of deadlocks).
    gate: Gate,
    /// Rows of one ingest call held as columns until its commit; later
    /// batches of the call are held encoded (`store::staged`).
    staged_column_rows: usize,
    durable: Option<Durable>,
}

/// The durable part of an engine opened on a directory.
#[derive(Debug)]
struct Durable {
    dir: DataDir,
    options: EngineOptions,
    report: OpenReport,
    /// One checkpoint at a time; holds the write of the last automatic
    /// one while a thread of its own runs it.
    checkpointing: Mutex<Option<PendingWrite>>,
    /// Something not covered by the newest checkpoint: records replayed
    /// on open or appended since.
    dirty: AtomicBool,
}

/// The write of an automatic checkpoint, running on a thread of its own
/// (`Ok(false)`: cancelled, nothing written), and the flag that cancels
/// it.
#[derive(Debug)]
struct PendingWrite {
    thread: std::thread::JoinHandle<Result<bool>>,
    cancel: Arc<AtomicBool>,
}

/// Waits for the pending checkpoint write, if any, and returns its
/// result. A failed or cancelled write leaves the store not covered by a
/// checkpoint on disk (the log still holds everything), so `d` is marked
/// dirty again.
fn settle(d: &Durable, pending: &mut Option<PendingWrite>) -> Result<()> {
    let Some(PendingWrite { thread, .. }) = pending.take() else {
        return Ok(());
    };
    let written = thread
        .join()
        .unwrap_or_else(|_| Err(Error::data("checkpoint", "the checkpoint writer panicked")));
    if !matches!(written, Ok(true)) {
        d.dirty.store(true, Ordering::SeqCst);
    }
    written.map(drop)
}

/// [`settle`] for a checkpoint about to be taken, which supersedes the
/// pending one: a pending encoding is cancelled rather than finished.
fn supersede(d: &Durable, pending: &mut Option<PendingWrite>) -> Result<()> {
    if let Some(p) = pending {
        p.cancel.store(true, Ordering::Relaxed);
    }
    settle(d, pending)
}

/// What [`Engine::retain`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetainReport {
    /// Conversations dropped.
    pub conversations: usize,
    /// Event ids dropped from the dedup set.
    pub events: usize,
}

/// How long an automatic checkpoint waits for the ingest calls inside
/// the gate to leave before it is put off to a later call (a call of
/// 64K rows takes about 25 ms).
const AUTOMATIC_CHECKPOINT_PATIENCE: Duration = Duration::from_millis(100);

/// Log bytes after which an ingest call checkpoints (64 MiB: about 400K
/// events of generated data, which replay in well under a second).
pub const DEFAULT_CHECKPOINT_LOG_BYTES: u64 = 64 << 20;

/// Rows of one ingest call held as normalised columns before later ones
/// are held encoded (see [`EngineOptions::staged_column_rows`]).
pub const DEFAULT_STAGED_COLUMN_ROWS: usize = STAGED_COLUMN_ROWS;

/// How to open a durable engine: a builder.
///
/// ```
/// use convostat::{EngineOptions, IngestMode, SyncPolicy};
/// let dir = tempfile::tempdir()?;
/// let engine = EngineOptions::new()
///     .mode(IngestMode::Lenient)
///     .sync(SyncPolicy::EveryCall)
///     .checkpoint_log_bytes(16 << 20)
///     .open(dir.path())?;
/// assert_eq!(engine.open_report().unwrap().records_replayed, 0);
/// engine.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct EngineOptions {
    mode: IngestMode,
    sync: SyncPolicy,
    checkpoint_log_bytes: u64,
    retention: Option<Duration>,
    checkpoint_on_close: bool,
    copy_for_checkpoints: bool,
    staged_column_rows: usize,
    create_if_missing: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            mode: IngestMode::Strict,
            sync: SyncPolicy::EveryCall,
            checkpoint_log_bytes: DEFAULT_CHECKPOINT_LOG_BYTES,
            retention: None,
            checkpoint_on_close: true,
            copy_for_checkpoints: true,
            staged_column_rows: STAGED_COLUMN_ROWS,
            create_if_missing: true,
        }
    }
}

impl EngineOptions {
    /// Strict mode, a sync per call, checkpoints every
    /// [`DEFAULT_CHECKPOINT_LOG_BYTES`] of log, no retention.
    pub fn new() -> Self {
        Self::default()
    }

    /// The null policy of ingest calls.
    pub fn mode(self, mode: IngestMode) -> Self {
        Self { mode, ..self }
    }

    /// When log records reach the disk.
    pub fn sync(self, sync: SyncPolicy) -> Self {
        Self { sync, ..self }
    }

    /// Checkpoint once the current log segment holds this many bytes, or
    /// as many as the newest checkpoint file if that is more (so that the
    /// cost of checkpoints stays proportional to what is ingested).
    pub fn checkpoint_log_bytes(self, bytes: u64) -> Self {
        Self {
            checkpoint_log_bytes: bytes.max(1),
            ..self
        }
    }

    /// Before every checkpoint, drop the conversations that ended more than
    /// `period` before now (system clock); see [`Engine::retain`].
    pub fn retention(self, period: Duration) -> Self {
        Self {
            retention: Some(period),
            ..self
        }
    }

    /// Whether closing (or dropping) the engine writes a checkpoint when the
    /// log holds anything (default: yes). Without it, closing is instant
    /// and the next open replays the log.
    pub fn checkpoint_on_close(self, checkpoint_on_close: bool) -> Self {
        Self {
            checkpoint_on_close,
            ..self
        }
    }

    /// Whether an automatic checkpoint copies the store and encodes the
    /// copy while ingest goes on (default: yes). Ingest calls wait only
    /// for the copy (0.1–0.15 s at 10M events, where encoding takes about
    /// 1 s of CPU), but memory holds a second store until the copy is
    /// encoded. Without it, the snapshot is encoded in place and ingest
    /// waits for the whole encoding (0.5–0.8 s at 10M events on 2 cores):
    /// the choice for a host whose memory cannot hold the store twice.
    /// Explicit and closing checkpoints never copy.
    pub fn copy_for_checkpoints(self, copy_for_checkpoints: bool) -> Self {
        Self {
            copy_for_checkpoints,
            ..self
        }
    }

    /// Rows of one ingest call held as normalised columns until the call
    /// commits (default [`DEFAULT_STAGED_COLUMN_ROWS`]). A call is atomic,
    /// so all its rows wait for its last batch to be validated; past this
    /// many, its batches wait encoded as the log will hold them, about 80
    /// bytes a row instead of 300, and are decoded again just before they
    /// are folded. Every call the size of a server POST or an Arrow batch
    /// stays below it; a whole Parquet file of 10M events does not. Lower it
    /// to bound the memory of large calls further.
    pub fn staged_column_rows(self, rows: usize) -> Self {
        Self {
            staged_column_rows: rows,
            ..self
        }
    }

    /// Whether opening makes a data directory where there is none yet
    /// (default: yes): at a missing path, or in an empty directory; a
    /// directory without a `MANIFEST` that holds any other file is a data
    /// error naming the file, and nothing is written there. Without it, a
    /// path that does not hold a data directory (missing, or a directory
    /// without a `MANIFEST`) is a data error naming it, and nothing is
    /// written there: for a reader that must not turn a mistyped path into
    /// an empty engine (the command line's queries on `--data`).
    ///
    /// ```
    /// use convostat::{EngineOptions, ErrorKind};
    /// let work = tempfile::tempdir()?;
    /// let missing = work.path().join("events.db");
    /// let e = EngineOptions::new().create_if_missing(false).open(&missing).unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::Data);
    /// assert!(!missing.exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_if_missing(self, create_if_missing: bool) -> Self {
        Self {
            create_if_missing,
            ..self
        }
    }

    /// Opens the data directory `dir` (creating it if needed, unless
    /// [`EngineOptions::create_if_missing`] says not to) and recovers its
    /// contents: the newest checkpoint, then the log after it.
    pub fn open(self, dir: impl AsRef<Path>) -> Result<Engine> {
        let store = Store::new(StoreOptions::default());
        let (dir, report) = DataDir::open(dir.as_ref(), self.sync, self.create_if_missing, &store)?;
        let dirty = report.records_replayed > 0 || report.dropped_tail_bytes > 0;
        let engine = Engine {
            store,
            mode: self.mode,
            generation: AtomicU64::new(0),
            gate: Gate::default(),
            staged_column_rows: self.staged_column_rows,
            durable: Some(Durable {
                dir,
                options: self,
                report,
                checkpointing: Mutex::new(None),
                dirty: AtomicBool::new(dirty),
            }),
        };
        Ok(engine)
    }
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
            gate: Gate::default(),
            staged_column_rows: STAGED_COLUMN_ROWS,
            durable: None,
        }
    }

    /// A durable engine on the data directory `dir` with default options
    /// ([`EngineOptions`]): every ingest call that returns `Ok` survives a
    /// crash, and reopening the directory restores every answer.
    ///
    /// ```
    /// use convostat::Engine;
    /// let dir = tempfile::tempdir()?;
    /// let line = r#"{"event_id":"e1","timestamp":"2024-03-01T10:00:00Z","bot_id":"b1","conversation_id":"c1","event_type":"message"}"#;
    /// let engine = Engine::open(dir.path())?;
    /// engine.ingest_ndjson(line.as_bytes())?; // durable once it returns
    /// drop(engine); // or engine.close()?, which reports errors
    /// let engine = Engine::open(dir.path())?;
    /// assert_eq!(engine.stats().events, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        EngineOptions::new().open(dir)
    }

    /// What opening the data directory found (`None` in memory).
    pub fn open_report(&self) -> Option<&OpenReport> {
        self.durable.as_ref().map(|d| &d.report)
    }

    /// The data directory (`None` in memory).
    pub fn data_dir(&self) -> Option<&Path> {
        self.durable.as_ref().map(|d| d.dir.path())
    }

    /// Writes a checkpoint now: afterwards the directory is one snapshot
    /// and an empty log, and a copy of the checkpoint file, `MANIFEST` and
    /// the log segments is a consistent backup. A no-op in memory.
    pub fn checkpoint(&self) -> Result<()> {
        match &self.durable {
            Some(d) => self.checkpoint_durable(d),
            None => Ok(()),
        }
    }

    fn checkpoint_durable(&self, d: &Durable) -> Result<()> {
        let mut pending = d.checkpointing.lock().unwrap_or_else(|p| p.into_inner());
        // An earlier write, failed or still running, is superseded by
        // this checkpoint.
        let _ = supersede(d, &mut pending);
        match self.checkpoint_locked(d, Capture::Encode, None)? {
            Some(write) => write.write().map(drop),
            None => Ok(()),
        }
    }

    /// Takes a checkpoint (after applying the retention period, if any),
    /// the caller holding `d.checkpointing`; the caller writes it. With a
    /// `patience`, gives up (`None`) if ingest calls still hold the gate
    /// after it.
    fn checkpoint_locked(
        &self,
        d: &Durable,
        capture: Capture,
        patience: Option<Duration>,
    ) -> Result<Option<CheckpointWrite>> {
        let _still = match patience {
            None => self.gate.write(),
            Some(patience) => match self.gate.try_write_for(patience) {
                Some(still) => still,
                None => return Ok(None),
            },
        };
        if let Some(period) = d.options.retention {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let before = now.saturating_sub(period).as_micros();
            self.retain_logged(d, i64::try_from(before).unwrap_or(i64::MAX))?;
        }
        d.dir
            .snapshot(&self.store, capture, |steps| {
                let out = run_still(steps)?;
                d.dirty.store(false, Ordering::SeqCst);
                Ok(out)
            })
            .map(Some)
    }

    /// An automatic checkpoint, the caller holding `d.checkpointing` (as
    /// `pending`): the store is copied now (or encoded, per
    /// [`EngineOptions::copy_for_checkpoints`]), and the copy encoded and
    /// written by a thread of its own while ingest goes on. An earlier
    /// one's failed write is this call's error (the next call due retries).
    fn checkpoint_in_background(
        &self,
        d: &Durable,
        pending: &mut Option<PendingWrite>,
    ) -> Result<()> {
        settle(d, pending)?;
        // A thread inside an ingest call (a rayon worker running a stolen
        // call inside its own) would wait for itself.
        if Gate::read_here() {
            return Ok(());
        }
        let capture = if d.options.copy_for_checkpoints {
            Capture::Copy
        } else {
            Capture::Encode
        };
        let Some(write) =
            self.checkpoint_locked(d, capture, Some(AUTOMATIC_CHECKPOINT_PATIENCE))?
        else {
            return Ok(());
        };
        let cancel = write.canceller();
        let thread = std::thread::Builder::new()
            .name("convostat-checkpoint".into())
            .spawn(move || write.write())
            .map_err(|e| Error::data_from("checkpoint writer thread", e))?;
        *pending = Some(PendingWrite { thread, cancel });
        Ok(())
    }

    /// Drops every conversation whose last event is before `before` (µs
    /// since the epoch, like [`Event::timestamp`]), with its transitions
    /// and the dedup entries of its events; memory shrinks, and on a
    /// durable engine the disk too (retention is logged, then a checkpoint
    /// is written).
    ///
    /// A later event of a dropped conversation is new: its id is no longer
    /// known, and it starts a new conversation made of the events that
    /// arrive from then on (its start, attributes and counts are theirs).
    ///
    /// ```
    /// use convostat::{Engine, Event};
    /// let engine = Engine::new();
    /// let event = |id: &str, conversation: &str, ts: i64| Event {
    ///     event_id: id.into(), timestamp: ts, bot_id: "b".into(),
    ///     conversation_id: conversation.into(), event_type: "message".into(),
    ///     ..Default::default()
    /// };
    /// engine.ingest_events(&[event("e1", "old", 10), event("e2", "new", 20)])?;
    /// let dropped = engine.retain(15)?;
    /// assert_eq!((dropped.conversations, dropped.events), (1, 1));
    /// // The id of a dropped event is new again.
    /// assert_eq!(engine.ingest_events(&[event("e1", "old", 10)])?.rows_ingested, 1);
    /// # Ok::<(), convostat::Error>(())
    /// ```
    pub fn retain(&self, before: i64) -> Result<RetainReport> {
        let report = match &self.durable {
            None => {
                let _still = self.gate.write();
                let r = run_still(|| self.store.retain(before));
                RetainReport {
                    conversations: r.conversations,
                    events: r.events,
                }
            }
            Some(d) => {
                let r = {
                    let _still = self.gate.write();
                    self.retain_logged(d, before)?
                };
                self.checkpoint_durable(d)?;
                r
            }
        };
        if report.conversations > 0 || report.events > 0 {
            self.generation.fetch_add(1, Ordering::Release);
        }
        Ok(report)
    }

    /// Logs and applies a retention, the caller holding the gate alone.
    fn retain_logged(&self, d: &Durable, before: i64) -> Result<RetainReport> {
        let record = wal::frame(RecordKind::Retain, &wal::encode_retain(before))?;
        let (seq, ()) = d.dir.log.append(&record, || (), |()| ())?;
        d.dirty.store(true, Ordering::SeqCst);
        d.dir.log.sync(seq)?;
        let r = run_still(|| self.store.retain(before));
        Ok(RetainReport {
            conversations: r.conversations,
            events: r.events,
        })
    }

    /// Closes a durable engine: a checkpoint when anything is not covered
    /// by one (an automatic checkpoint still being encoded is cancelled:
    /// this one supersedes it), then the lock is released. Dropping the
    /// engine does the same but cannot report errors. A no-op in memory.
    pub fn close(mut self) -> Result<()> {
        match self.durable.take() {
            Some(d) => self.close_durable(&d),
            None => Ok(()),
        }
    }

    fn close_durable(&self, d: &Durable) -> Result<()> {
        let mut pending = d.checkpointing.lock().unwrap_or_else(|p| p.into_inner());
        if !d.options.checkpoint_on_close {
            return settle(d, &mut pending);
        }
        // The closing checkpoint supersedes a pending one (which, if
        // cancelled, leaves the engine dirty).
        let written = supersede(d, &mut pending);
        if d.dirty.load(Ordering::SeqCst) {
            if let Some(write) = self.checkpoint_locked(d, Capture::Encode, None)? {
                return write.write().map(drop);
            }
        }
        written
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
            self.store.apply(cols).add_to(report);
        }
        self.note_ingested(before, report);
    }

    /// Bumps the generation when `report` counts more ingested rows than
    /// `before` (see [`Engine::generation`]).
    fn note_ingested(&self, before: u64, report: &IngestReport) {
        if report.rows_ingested > before {
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// The one place every ingest call's validated batches go through. In
    /// memory: apply. Durable: append the whole call to the log as one
    /// record, claiming its dedup entries under the log's lock (log order
    /// = apply order), then fold while the sync runs, and return once both
    /// are done. A batch staged encoded ([`StagedBatch::Encoded`]) is
    /// decoded again just before it is folded.
    fn commit(&self, batches: Vec<StagedBatch>, report: &mut IngestReport) -> Result<()> {
        let Some(d) = &self.durable else {
            let _gate = self.gate.read();
            let before = report.rows_ingested;
            let result = staged::apply(batches, &self.store, report);
            self.note_ingested(before, report);
            return result;
        };
        if batches.iter().all(|b| b.len() == 0) {
            return Ok(());
        }
        let mut call = LoggedCall::prepare(batches, &self.store)?;
        let hashes = call.take_hashes();
        let gate = self.gate.read();
        let (seq, claims) = d.dir.log.append(
            call.record(),
            || {
                hashes
                    .into_iter()
                    .map(|h| self.store.claim_hashed(h))
                    .collect::<Vec<_>>()
            },
            |claims| self.store.unclaim(&claims),
        )?;
        d.dirty.store(true, Ordering::SeqCst);
        // The record is written (in the page cache, so it survives the
        // process); folding it while `fdatasync` runs takes the sync off the
        // call's path. Queries may then see the call's rows a few
        // milliseconds before they are on disk. A failed sync fails the log
        // for good (every later ingest errors until the directory is
        // reopened) and this call returns the error, its rows folded.
        // The calling thread waits for the sync and rayon's pool folds: a
        // pool thread waiting on the disk would leave the pool a thread
        // short, and with two callers both of its threads could be waiting
        // while both folds waited for them (durable ingest from 2 threads
        // ran slower than from 1 in some runs: 2.30 against 3.11M events/s).
        let mut folded = Ok(());
        let synced = rayon::in_place_scope(|scope| {
            scope.spawn(|_| {
                let before = report.rows_ingested;
                folded = call.fold(&self.store, &claims, report);
                self.note_ingested(before, report);
            });
            d.dir.log.sync(seq)
        });
        if let Err(e) = folded {
            // The log holds rows the store could not take (a bug): no
            // later call may build on that; reopening replays the record.
            return Err(d.dir.log.fail_with(format!("folding a logged call: {e}")));
        }
        synced?;
        drop(gate);
        // The threshold grows with the checkpoint: rewriting a snapshot
        // after a log much smaller than it would make ingest cost
        // quadratic; replaying a log at most its size keeps reopening
        // within a small factor of loading the snapshot.
        let due = || {
            let threshold = d.options.checkpoint_log_bytes.max(d.dir.checkpoint_bytes());
            d.dir.log.position().1 >= threshold
        };
        if due() {
            // One caller checkpoints; the others carry on ingesting. While
            // the previous automatic checkpoint is still being encoded and
            // written, the next waits for a later call rather than making
            // this one wait: the log grows a little longer meanwhile.
            if let Ok(mut pending) = d.checkpointing.try_lock() {
                let writing = pending.as_ref().is_some_and(|p| !p.thread.is_finished());
                if !writing && due() {
                    self.checkpoint_in_background(d, &mut pending)
                        .map_err(|e| {
                            e.within("the call's events are durable, but a checkpoint failed")
                        })?;
                }
            }
        }
        Ok(())
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
        let staged = self.new_call();
        let mut first_row = 1u64;
        for batch in batches {
            let mut report = IngestReport::default();
            let cols = normalize(batch, mode, RowNumbers::From(first_row), &mut report)?;
            self.stage(&staged, first_row, cols, &report);
            first_row += batch.num_rows() as u64;
        }
        self.commit_staged(staged)
    }

    /// Ingests every input under `paths`, as the CLI's `--input` reads
    /// them (Parquet and NDJSON files, directories walked): one atomic call
    /// per file, in path order, and the summed report. The first bad file
    /// stops it with its error; the files before it stay ingested.
    pub fn ingest_paths(&self, paths: &[std::path::PathBuf]) -> Result<IngestReport> {
        let files = crate::batch::discover_inputs(paths)?;
        let mut total = IngestReport::default();
        let Some(first) = files.first() else {
            return Ok(total);
        };
        let mut next = self.stage_file(first);
        for (i, file) in files.iter().enumerate() {
            let call = next?;
            let following = files.get(i + 1);
            // A small call is committed while the next file is read and
            // validated (commits stay in path order: only they change the
            // engine), so that one file's fsync overlaps the next one's
            // decoding. A large call's commit keeps both cores busy, and a
            // second large call staged beside it would double the memory.
            let small =
                call.lock().unwrap_or_else(|p| p.into_inner()).rows() <= self.staged_column_rows;
            let commit = || {
                self.commit_staged(call).map_err(|e| match file.format {
                    InputFormat::Parquet => e,
                    _ => e.within(file.path.display()),
                })
            };
            // The commit runs on this thread, which then waits for its sync
            // (see `commit`), and the next file is read on rayon's pool.
            let (committed, staged) = match following.filter(|_| small) {
                Some(f) => {
                    let mut staged = None;
                    let committed = rayon::in_place_scope(|scope| {
                        scope.spawn(|_| staged = Some(self.stage_file(f)));
                        commit()
                    });
                    (committed, staged)
                }
                None => (commit(), None),
            };
            total.merge(&committed?);
            match staged.or_else(|| following.map(|f| self.stage_file(f))) {
                Some(staged) => next = staged,
                None => break,
            }
        }
        Ok(total)
    }

    /// Reads and validates one input file as [`Engine::ingest_paths`] does,
    /// into a call to commit.
    fn stage_file(&self, file: &crate::batch::InputFile) -> Result<Mutex<StagedCall>> {
        match file.format {
            InputFormat::Parquet => self.stage_parquet_file(&file.path),
            InputFormat::Ndjson | InputFormat::NdjsonGzip => {
                let input = open_ndjson_file(&file.path, is_gzip_name(&file.path), None)?;
                self.stage_ndjson(self.mode, |sink| input.read_columns(None, sink))
                    .map_err(|e| e.within(file.path.display()))
            }
        }
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
        self.commit_staged(self.stage_ndjson(mode, |sink| read_ndjson_columns(reader, None, sink))?)
    }

    /// Ingests NDJSON held in memory (a request body), atomically. Its
    /// lines are decoded where they lie, with no copy into chunks first:
    /// faster than [`Engine::ingest_ndjson`] over the same bytes.
    ///
    /// ```
    /// use convostat::Engine;
    /// let engine = Engine::new();
    /// let text = br#"{"event_id":"e1","timestamp":"2024-03-01T10:00:00Z","bot_id":"b","conversation_id":"c","event_type":"message"}"#;
    /// assert_eq!(engine.ingest_ndjson_bytes(text)?.rows_ingested, 1);
    /// # Ok::<(), convostat::Error>(())
    /// ```
    pub fn ingest_ndjson_bytes(&self, text: &[u8]) -> Result<IngestReport> {
        self.ingest_ndjson_bytes_with(text, self.mode)
    }

    /// [`Engine::ingest_ndjson_bytes`] with the null policy `mode` for this
    /// call only, whatever the engine's own mode.
    pub fn ingest_ndjson_bytes_with(&self, text: &[u8], mode: IngestMode) -> Result<IngestReport> {
        self.commit_staged(self.stage_ndjson(mode, |sink| read_ndjson_bytes(text, sink))?)
    }

    /// Stages the batches `read` gives its sink, normalised with `mode`.
    fn stage_ndjson(
        &self,
        mode: IngestMode,
        read: impl FnOnce(&NdjsonSink) -> Result<()>,
    ) -> Result<Mutex<StagedCall>> {
        let staged = self.new_call();
        guard("ndjson", || {
            read(&|batch, lines| {
                let mut report = IngestReport::default();
                let cols = normalize(&batch, mode, RowNumbers::Lines(lines), &mut report)?;
                self.stage(&staged, lines.order(), cols, &report);
                Ok(())
            })
        })?;
        Ok(staged)
    }

    /// Ingests an NDJSON file, atomically; errors name the file. A file
    /// whose name ends in `.gz` is decompressed (gzip) on the fly.
    pub fn ingest_ndjson_file(&self, path: impl AsRef<Path>) -> Result<IngestReport> {
        let path = path.as_ref();
        let input = open_ndjson_file(path, is_gzip_name(path), None)?;
        self.stage_ndjson(self.mode, |sink| input.read_columns(None, sink))
            .and_then(|staged| self.commit_staged(staged))
            .map_err(|e| e.within(path.display()))
    }

    /// Ingests a Parquet file, atomically; errors name the file. Only the
    /// columns of the event schema are decoded; others are never read.
    pub fn ingest_parquet(&self, path: impl AsRef<Path>) -> Result<IngestReport> {
        self.commit_staged(self.stage_parquet_file(path.as_ref())?)
    }

    /// Ingests a Parquet file held in memory, atomically.
    pub fn ingest_parquet_bytes(&self, bytes: impl Into<bytes::Bytes>) -> Result<IngestReport> {
        let bytes = bytes.into();
        let call = self.stage_parquet("parquet input", || Ok(bytes.clone()))?;
        self.commit_staged(call)
    }

    fn stage_parquet_file(&self, path: &Path) -> Result<Mutex<StagedCall>> {
        let name = path.display().to_string();
        let file = FileRanges::open(path)?;
        self.stage_parquet(&name, || Ok(file.clone()))
    }

    fn stage_parquet<R: parquet::file::reader::ChunkReader + 'static>(
        &self,
        name: &str,
        open: impl Fn() -> Result<R> + Sync,
    ) -> Result<Mutex<StagedCall>> {
        let staged = self.new_call();
        // Only the event columns are decoded (and their pages checked):
        // extra columns, however wide or odd, are never read.
        let columns = COLUMNS.map(|(name, _)| name);
        scan_parquet(
            name,
            open,
            Some(&columns),
            &ScanScope::all(),
            |batch, read| {
                let first_row = match read {
                    RowsRead::Whole { first_row } => first_row,
                    RowsRead::Filtered { .. } => 0, // not with an empty scope
                };
                let mut report = IngestReport::default();
                let cols = normalize(&batch, self.mode, RowNumbers::From(first_row), &mut report)
                    .map_err(|e| e.within(name))?;
                self.stage(&staged, first_row, cols, &report);
                Ok(())
            },
        )?;
        Ok(staged)
    }

    /// An empty ingest call, to fill with [`Engine::stage`].
    fn new_call(&self) -> Mutex<StagedCall> {
        Mutex::new(StagedCall::new(self.staged_column_rows))
    }

    /// Holds a validated batch of an ingest call until the call commits.
    fn stage(
        &self,
        call: &Mutex<StagedCall>,
        first_row: u64,
        cols: EventColumns,
        report: &IngestReport,
    ) {
        StagedCall::stage(call, first_row, cols, report, &self.store);
    }

    /// Commits a call's validated batches in input order, so that the
    /// first of two duplicates in the input wins.
    fn commit_staged(&self, call: Mutex<StagedCall>) -> Result<IngestReport> {
        let call = call.into_inner().unwrap_or_else(|p| p.into_inner());
        let (mut report, batches) = call.into_ordered();
        self.commit(batches, &mut report)?;
        Ok(report)
    }

    /// Ingests already-normalised columns (batch execution).
    pub(crate) fn ingest_columns(&self, cols: &EventColumns, report: &mut IngestReport) {
        self.apply(std::slice::from_ref(cols), report);
    }

    /// The conversations a batch job must fold in again with event ids
    /// (see `Store::take_undecided`), reset.
    pub(crate) fn take_undecided(&self) -> Vec<(String, String)> {
        self.store.take_undecided()
    }

    /// How many conversations [`Engine::take_undecided`] would return.
    pub(crate) fn undecided_count(&self) -> usize {
        self.store.undecided_count()
    }

    /// SPEC 4.1: the number of a bot's conversations over time.
    pub fn conversations(&self, query: &ConversationsQuery) -> Result<SeriesAnswer> {
        series::run(&self.store, &SeriesPlan::conversations(query)?)
    }

    /// SPEC 4.2: one statistic aggregated per bucket.
    pub fn insights(&self, query: &InsightsQuery) -> Result<SeriesAnswer> {
        series::run(&self.store, &SeriesPlan::insights(query)?)
    }

    /// SPEC 4.3: one conversation's transitions; not found when the
    /// conversation is unknown or has another version.
    pub fn flow(&self, query: &FlowQuery) -> Result<FlowAnswer> {
        flow::run(&self.store, query)
    }

    /// SPEC 4.4: a team's conversations over time.
    pub fn usage(&self, query: &UsageQuery) -> Result<SeriesAnswer> {
        series::run(&self.store, &SeriesPlan::usage(query)?)
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

impl Drop for Engine {
    /// A durable engine checkpoints on the way out (see [`Engine::close`]);
    /// errors are ignored here: the log still holds everything.
    fn drop(&mut self) {
        if let Some(d) = self.durable.take() {
            let _ = self.close_durable(&d);
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
    fn in_memory_calls_held_encoded_answer_the_same() {
        // Three NDJSON chunks of a 5,000-line call, with a duplicate id
        // in each chunk after the first.
        let text: String = (0..5000)
            .map(|i| {
                let id = if i % 2048 == 7 && i > 2048 { 3 } else { i };
                format!(
                    r#"{{"event_id":"e{id}","timestamp":"2024-03-0{}T10:00:{:02}Z","bot_id":"b{}","conversation_id":"c{}","event_type":"message","bot_version":"LIVE","channel_type":"{}"}}{}"#,
                    1 + i % 3,
                    i % 60,
                    i % 2,
                    i % 37,
                    ["web", "voice"][i % 2],
                    "\n"
                )
            })
            .collect();
        let whole = Engine::new();
        let mut encoded = Engine::new();
        encoded.staged_column_rows = 0;
        let a = whole.ingest_ndjson(text.as_bytes()).unwrap();
        let b = encoded.ingest_ndjson(text.as_bytes()).unwrap();
        assert_eq!(a, b);
        assert_eq!((a.rows_ingested, a.duplicates), (4998, 2));
        assert_eq!(whole.stats(), encoded.stats());
        let query = Query::from_params(
            "conversations",
            &crate::Params::new([
                ("bot_id", "b1"),
                ("version", "LIVE"),
                ("start_time", "2024-03-01"),
                ("end_time", "2024-03-05"),
                ("bucket", "1d"),
                ("group_by", "channel_type"),
            ])
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            whole.query(&query).unwrap().to_json(),
            encoded.query(&query).unwrap().to_json()
        );
    }

    #[test]
    fn engine_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Engine>();
    }
}
