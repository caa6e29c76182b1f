//! An ingest call's validated rows, held between validation and commit.
//!
//! An ingest call is atomic (SPEC 1, SPEC 9): every batch of a file is
//! validated before any row reaches the store or the log, so the call's
//! rows wait somewhere in between. As normalised columns they cost about
//! 300 bytes a row (a 16-byte view per string column, and the decoded
//! strings), which for a 10M-row Parquet file is 3 GB. So a call keeps its
//! first [`STAGED_COLUMN_ROWS`] rows as columns (every call the size of a
//! server POST or an Arrow batch stays on that path, with no extra work),
//! and encodes every later batch at once into its write-ahead log form
//! ([`super::ingest_record`], about 45 bytes a row), with the row hashes
//! its dedup claim needs (29 bytes a row). At commit, such a batch is
//! claimed with those hashes and decoded again just before it is folded,
//! one batch at a time, the way replay decodes it.
//!
//! The engine (`crate::engine`) fills a [`StagedCall`] from the threads of a
//! parallel scan and commits its batches in input order.

use std::ops::Range;
use std::sync::{Mutex, MutexGuard};

use rayon::prelude::*;

use super::ingest_record::{self, decode_batch_bytes, encode_batch};
use super::{Claimed, RowHashes, Store};
use crate::error::Result;
use crate::ingest::{EventColumns, IngestReport};

/// Names a staged batch in the error that decoding it would give (it
/// cannot fail short of a bug: the call encoded those bytes itself).
const STAGED: &str = "an ingest call's staged rows";

/// Rows of one call held as normalised columns before later batches are
/// encoded (16 full 64K-row batches).
pub(crate) const STAGED_COLUMN_ROWS: usize = 1 << 20;

/// A batch waiting for its call's commit.
pub(crate) enum StagedBatch {
    /// Normalised columns, as validation left them.
    Columns(Box<EventColumns>),
    /// The batch as a log record holds it ([`encode_batch`], in parts), and
    /// its rows' hashes ([`Store::hash_rows`]).
    Encoded {
        rows: usize,
        parts: Vec<Vec<u8>>,
        hashes: RowHashes,
    },
}

impl StagedBatch {
    /// Rows of the batch.
    pub fn len(&self) -> usize {
        match self {
            Self::Columns(cols) => cols.len(),
            Self::Encoded { rows, .. } => *rows,
        }
    }
}

/// A call's report so far and its batches, each with the number of its
/// first row (or line), filled from any number of threads.
pub(crate) struct StagedCall {
    report: IngestReport,
    batches: Vec<(u64, StagedBatch)>,
    /// Rows held as columns, or reserved for it by a batch in flight.
    column_rows: usize,
    column_limit: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StagedCall {
    /// An empty call that keeps up to `column_limit` rows as columns.
    pub fn new(column_limit: usize) -> Self {
        Self {
            report: IngestReport::default(),
            batches: Vec::new(),
            column_rows: 0,
            column_limit,
        }
    }

    /// Adds the normalised batch `cols` whose first row is `first_row`, and
    /// what validating it reported. Past the call's column limit, the batch
    /// is encoded and its rows hashed for `store` here, outside the lock.
    pub fn stage(
        call: &Mutex<Self>,
        first_row: u64,
        cols: EventColumns,
        report: &IngestReport,
        store: &Store,
    ) {
        let keep_columns = {
            let mut call = lock(call);
            call.report.merge(report);
            let keep = call.column_rows + cols.len() <= call.column_limit;
            if keep {
                call.column_rows += cols.len();
            }
            keep
        };
        let batch = if keep_columns {
            StagedBatch::Columns(Box::new(cols))
        } else {
            let (mut parts, hashes) =
                rayon::join(|| encode_batch(&cols), || store.hash_rows(&cols));
            // Held until the commit: without the slack of their growth.
            parts.iter_mut().for_each(Vec::shrink_to_fit);
            StagedBatch::Encoded {
                rows: cols.len(),
                parts,
                hashes,
            }
        };
        lock(call).batches.push((first_row, batch));
    }

    /// Rows staged so far.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|(_, b)| b.len()).sum()
    }

    /// The report and the batches in input order (by first row).
    pub fn into_ordered(self) -> (IngestReport, Vec<StagedBatch>) {
        let mut batches = self.batches;
        batches.sort_by_key(|(first_row, _)| *first_row);
        (
            self.report,
            batches.into_iter().map(|(_, batch)| batch).collect(),
        )
    }
}

/// Applies a call's batches to an in-memory store, in order (a batch staged
/// encoded is claimed with its hashes, then decoded and folded). Decoding
/// cannot fail short of a bug; if it did, the batches before it would stay
/// applied.
pub(crate) fn apply(
    batches: Vec<StagedBatch>,
    store: &Store,
    report: &mut IngestReport,
) -> Result<()> {
    for batch in batches {
        match batch {
            StagedBatch::Columns(cols) => store.apply(&cols).add_to(report),
            StagedBatch::Encoded { parts, hashes, .. } => {
                let cols = decode_batch_bytes(&parts.concat(), STAGED)?;
                let claimed = store.claim_hashed(hashes);
                store.fold(&cols, &claimed).add_to(report)
            }
        }
    }
    Ok(())
}

/// A batch ready for its call's record: its encoded parts, its columns
/// if still held, and its rows' hashes.
type PreparedBatch = (Vec<Vec<u8>>, Option<EventColumns>, RowHashes);

/// A durable call ready for the log: its record, where each batch lies in
/// it, the batches still held as columns, and every batch's row hashes
/// for its dedup claim.
pub(crate) struct LoggedCall {
    record: Vec<u8>,
    ranges: Vec<Range<usize>>,
    columns: Vec<Option<EventColumns>>,
    hashes: Vec<RowHashes>,
}

impl LoggedCall {
    /// Encodes the batches still held as columns while hashing their rows
    /// (in parallel; neither changes anything), and seals the record.
    pub fn prepare(batches: Vec<StagedBatch>, store: &Store) -> Result<Self> {
        let prepared: Vec<PreparedBatch> = batches
            .into_par_iter()
            .map(|batch| match batch {
                StagedBatch::Columns(cols) => {
                    let (bytes, hashes) =
                        rayon::join(|| encode_batch(&cols), || store.hash_rows(&cols));
                    (bytes, Some(*cols), hashes)
                }
                StagedBatch::Encoded { parts, hashes, .. } => (parts, None, hashes),
            })
            .collect();
        let mut parts = Vec::with_capacity(prepared.len());
        let mut columns = Vec::with_capacity(prepared.len());
        let mut hashes = Vec::with_capacity(prepared.len());
        for (bytes, cols, h) in prepared {
            parts.push(bytes);
            columns.push(cols);
            hashes.push(h);
        }
        let (record, ranges) = ingest_record::seal_record(parts)?;
        Ok(Self {
            record,
            ranges,
            columns,
            hashes,
        })
    }

    /// The log record (header and payload).
    pub fn record(&self) -> &[u8] {
        &self.record
    }

    /// Every batch's row hashes, in order, for [`Store::claim_hashed`].
    pub fn take_hashes(&mut self) -> Vec<RowHashes> {
        std::mem::take(&mut self.hashes)
    }

    /// Folds every batch into `store` with its claim, in order. A batch
    /// staged encoded is decoded from the record while the batch before it
    /// is folded (decoding changes nothing).
    pub fn fold(&self, store: &Store, claims: &[Claimed], report: &mut IngestReport) -> Result<()> {
        let decode = |i: usize| -> Result<Option<EventColumns>> {
            match &self.columns[i] {
                Some(_) => Ok(None),
                None => decode_batch_bytes(&self.record[self.ranges[i].clone()], STAGED).map(Some),
            }
        };
        let fold = |i: usize, decoded: Option<EventColumns>, report: &mut IngestReport| {
            let cols = decoded.as_ref().or(self.columns[i].as_ref());
            if let Some(cols) = cols {
                store.fold(cols, &claims[i]).add_to(report);
            }
        };
        let n = self.columns.len().min(claims.len());
        let mut pending: Option<(usize, Option<EventColumns>)> = None;
        for i in 0..n {
            let (decoded, ()) = rayon::join(
                || decode(i),
                || {
                    if let Some((j, cols)) = pending.take() {
                        fold(j, cols, report);
                    }
                },
            );
            pending = Some((i, decoded?));
        }
        if let Some((j, cols)) = pending {
            fold(j, cols, report);
        }
        Ok(())
    }
}
