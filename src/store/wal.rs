//! The write-ahead log: framed, checksummed records in segment files, and
//! the group commit that makes appends durable.
//!
//! # Records
//!
//! A segment (`wal-NNNNNNNNNNNNNNNNNNNN.log`) is a sequence of records, each
//! a 16-byte header and a payload:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | payload length, u32 LE |
//! | 4..8 | kind: 1 ingest, 2 retain |
//! | 8..12 | CRC-32 of the payload |
//! | 12..16 | CRC-32 of bytes 0..12 |
//!
//! The header has its own checksum so that a damaged length is never
//! trusted. An ingest payload is the accepted input of one ingest call,
//! after validation and normalisation, in the columnar encoding of
//! `ingest_record` (per-column dictionaries, no general-purpose
//! compression; format 1 of the directory used zstd-compressed Arrow IPC).
//! Replaying it goes through the same normalisation and store code as the
//! original call. A retain payload is the cut-off instant (i64 µs).
//!
//! # Damage
//!
//! [`scan_segment`] reads records until the end or the first bad one (a
//! short header or payload, or a checksum mismatch). It then looks for any
//! valid record further on: if there is one, the damage is in the middle of
//! acknowledged data and is an error; if there is none, the bad bytes are a
//! torn tail left by a crash while appending, which recovery truncates.
//!
//! # Group commit
//!
//! [`Log::append`] writes a record (no fsync) and runs the caller's step
//! that must follow the log order (dedup claims) under the same lock, the
//! two side by side for a large record (the step is undone if the write
//! fails);
//! [`Log::sync`] then waits until the record is on disk. One caller at a
//! time is the leader and calls `fdatasync` for every record written so far;
//! the others wait on a condition variable and return when a sync covering
//! their record completes. Concurrent ingests thus share fsyncs, and the
//! engine folds a call's rows into the store while its sync runs. A failed
//! write or sync fails the log for good (as PostgreSQL does after an fsync
//! error): later calls return an error, and the directory is recovered by
//! reopening.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::codec::{Put, Reader};
use crate::error::{Error, Result};

/// Bytes of a record header.
pub(crate) const HEADER_LEN: usize = 16;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// The normalised columns of one ingest call.
    Ingest = 1,
    /// A retention cut-off.
    Retain = 2,
}

impl RecordKind {
    fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Ingest),
            2 => Some(Self::Retain),
            _ => None,
        }
    }
}

/// Records from this size on are written while the caller's step runs
/// ([`Log::append`]): below it, starting a thread costs more than the
/// write.
const PARALLEL_WRITE_BYTES: usize = 256 << 10;

/// A record ready to append: header and payload.
pub(crate) fn frame(kind: RecordKind, payload: &[u8]) -> Result<Vec<u8>> {
    let mut record = Vec::with_capacity(HEADER_LEN + payload.len());
    record.resize(HEADER_LEN, 0);
    record.extend_from_slice(payload);
    seal(kind, record)
}

/// Fills in the header of `record`: its first [`HEADER_LEN`] bytes were
/// left for it, the payload follows them.
pub(crate) fn seal(kind: RecordKind, mut record: Vec<u8>) -> Result<Vec<u8>> {
    let Some(payload) = record.get(HEADER_LEN..) else {
        return Err(Error::data(
            "write-ahead log",
            "a record without room for its header",
        ));
    };
    let len = u32::try_from(payload.len()).map_err(|_| {
        Error::data(
            "write-ahead log",
            "an ingest call over 4 GiB cannot be logged",
        )
    })?;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.put_u32(len);
    header.put_u32(kind as u32);
    header.put_u32(crc32fast::hash(payload));
    let header_crc = crc32fast::hash(&header);
    header.put_u32(header_crc);
    record[..HEADER_LEN].copy_from_slice(&header);
    Ok(record)
}

/// A record found in a segment: its kind and payload.
#[derive(Debug)]
pub(crate) struct RawRecord<'a> {
    pub kind: RecordKind,
    pub payload: &'a [u8],
}

/// What [`scan_segment`] found.
#[derive(Debug)]
pub(crate) struct SegmentScan<'a> {
    pub records: Vec<RawRecord<'a>>,
    /// Bytes of valid records from the start.
    pub valid_len: usize,
    /// The first bad record, when there is one: why it is bad, and
    /// whether a valid record follows it (damage in the middle).
    pub damage: Option<(String, bool)>,
}

/// The record at the start of `bytes`, or why there is none.
fn record_at(bytes: &[u8]) -> std::result::Result<(RawRecord<'_>, usize), String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "a record header is cut short ({} bytes)",
            bytes.len()
        ));
    }
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if crc32fast::hash(&bytes[..12]) != word(12) {
        return Err("a record header fails its checksum".into());
    }
    let kind = RecordKind::from_u32(word(4)).ok_or("a record has an unknown kind")?;
    let len = word(0) as usize;
    let payload = bytes
        .get(HEADER_LEN..HEADER_LEN + len)
        .ok_or_else(|| format!("a record of {len} bytes is cut short"))?;
    if crc32fast::hash(payload) != word(8) {
        return Err("a record fails its checksum".into());
    }
    Ok((RawRecord { kind, payload }, HEADER_LEN + len))
}

/// Splits a segment into records (see the module docs on damage).
pub(crate) fn scan_segment(bytes: &[u8]) -> SegmentScan<'_> {
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        match record_at(&bytes[pos..]) {
            Ok((record, len)) => {
                records.push(record);
                pos += len;
            }
            Err(reason) => {
                let later = (pos + 1..bytes.len().saturating_sub(HEADER_LEN - 1))
                    .any(|p| record_at(&bytes[p..]).is_ok());
                return SegmentScan {
                    records,
                    valid_len: pos,
                    damage: Some((format!("{reason} at offset {pos}"), later)),
                };
            }
        }
    }
    SegmentScan {
        records,
        valid_len: pos,
        damage: None,
    }
}

/// The payload of a retain record.
pub(crate) fn encode_retain(before: i64) -> Vec<u8> {
    (before as u64).to_le_bytes().to_vec()
}

/// The cut-off of a retain record.
pub(crate) fn decode_retain(payload: &[u8], context: &str) -> Result<i64> {
    let mut r = Reader::new(payload, context);
    let before = r.u64()? as i64;
    r.finish()?;
    Ok(before)
}

/// When appended records reach the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// `fdatasync` before an ingest call returns (group commit shares it
    /// between concurrent calls): acknowledged data survives a power cut.
    #[default]
    EveryCall,
    /// Never sync (log, checkpoints, directory): acknowledged data
    /// survives the process being killed (the kernel holds it) but not a
    /// power cut or an OS crash. For tests and data that can be rebuilt.
    Never,
}

/// The segment being appended to.
#[derive(Debug)]
struct Tail {
    file: Arc<File>,
    /// Segment number.
    segment: u64,
    /// Bytes in the segment.
    len: u64,
    /// Records written since the log was opened.
    written: u64,
}

#[derive(Debug, Default)]
struct SyncState {
    synced: u64,
    syncing: bool,
}

/// An open log: appends to the current segment, group commit.
#[derive(Debug)]
pub(crate) struct Log {
    tail: Mutex<Tail>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// Set for good after a failed write or sync.
    failed: Mutex<Option<String>>,
    policy: SyncPolicy,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Log {
    /// A log appending to `file`, segment number `segment`, now `len` bytes.
    pub fn new(file: File, segment: u64, len: u64, policy: SyncPolicy) -> Self {
        Self {
            tail: Mutex::new(Tail {
                file: Arc::new(file),
                segment,
                len,
                written: 0,
            }),
            sync: Mutex::new(SyncState::default()),
            synced: Condvar::new(),
            failed: Mutex::new(None),
            policy,
        }
    }

    fn check(&self) -> Result<()> {
        match &*lock(&self.failed) {
            Some(reason) => Err(Error::data(
                "write-ahead log",
                format!("an earlier write failed ({reason}); reopen the directory"),
            )),
            None => Ok(()),
        }
    }

    /// Fails the log for good (every later append or sync errors until
    /// the directory is reopened), for a reason outside the log itself.
    pub fn fail_with(&self, reason: String) -> Error {
        self.fail(reason)
    }

    fn fail(&self, reason: String) -> Error {
        let error = Error::data("write-ahead log", &reason);
        lock(&self.failed).get_or_insert(reason);
        error
    }

    /// Appends `record` (a [`frame`]) and, under the same lock, runs
    /// `then`: records are in the log in the order of their `then` calls.
    /// A large record is written by a second thread while `then` runs
    /// (the write copies the record into the page cache on one core, and
    /// `then`, the call's dedup claims, would otherwise wait for it); if
    /// that write fails, `undo` is given what `then` returned. A small
    /// record is written first, and `then` runs only if it was. Returns the
    /// record's sequence number for [`Log::sync`].
    pub fn append<T>(
        &self,
        record: &[u8],
        then: impl FnOnce() -> T,
        undo: impl FnOnce(T),
    ) -> Result<(u64, T)> {
        self.check()?;
        let mut tail = lock(&self.tail);
        let file: &File = &tail.file;
        let write = move || {
            let mut file = file;
            file.write_all(record)
        };
        let out = if record.len() >= PARALLEL_WRITE_BYTES {
            let (written, out) = std::thread::scope(|scope| {
                let writer = scope.spawn(write);
                let out = then();
                let written = writer
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (written, out)
            });
            if let Err(e) = written {
                undo(out);
                return Err(self.cut_failed_write(&tail, e));
            }
            out
        } else {
            if let Err(e) = write() {
                return Err(self.cut_failed_write(&tail, e));
            }
            then()
        };
        tail.len += record.len() as u64;
        tail.written += 1;
        Ok((tail.written, out))
    }

    /// The error of a record that could not be written: the partial
    /// record is cut off, so that later records follow a whole one; if that
    /// fails too, the log is unusable.
    fn cut_failed_write(&self, tail: &Tail, e: std::io::Error) -> Error {
        let reason = format!("appending to segment {}: {e}", tail.segment);
        match tail.file.set_len(tail.len) {
            Ok(()) => Error::data_from("write-ahead log", e),
            Err(_) => self.fail(reason),
        }
    }

    /// Waits until record `seq` is on disk (per the sync policy).
    pub fn sync(&self, seq: u64) -> Result<()> {
        if self.policy == SyncPolicy::Never {
            return self.check();
        }
        let mut state = lock(&self.sync);
        loop {
            self.check()?;
            if state.synced >= seq {
                return Ok(());
            }
            if state.syncing {
                state = self.synced.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Leader: sync everything written so far.
            state.syncing = true;
            drop(state);
            let (file, target) = {
                let tail = lock(&self.tail);
                (tail.file.clone(), tail.written)
            };
            let result = file.sync_data();
            state = lock(&self.sync);
            state.syncing = false;
            match result {
                Ok(()) => state.synced = state.synced.max(target),
                Err(e) => {
                    self.fail(format!("syncing the log: {e}"));
                }
            }
            self.synced.notify_all();
        }
    }

    /// Syncs the current segment and continues in `file`, segment
    /// `segment`. The caller makes sure no append is in flight.
    pub fn rotate(&self, file: File, segment: u64) -> Result<()> {
        self.check()?;
        let mut tail = lock(&self.tail);
        if let Err(e) = tail.file.sync_data() {
            return Err(self.fail(format!("syncing the log: {e}")));
        }
        tail.file = Arc::new(file);
        tail.segment = segment;
        tail.len = 0;
        Ok(())
    }

    /// Current segment number and its length in bytes.
    pub fn position(&self) -> (u64, u64) {
        let tail = lock(&self.tail);
        (tail.segment, tail.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            out.extend(frame(RecordKind::Retain, &encode_retain(i as i64)).unwrap());
        }
        out
    }

    /// A record that cannot be written (the segment opened read-only) is
    /// an error: a large one's step, run beside the write, is given back to
    /// be undone; a small one's step does not run.
    #[test]
    fn a_failed_write_undoes_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        std::fs::write(&path, b"").unwrap();
        for (size, runs) in [(100, false), (PARALLEL_WRITE_BYTES, true)] {
            let log = Log::new(File::open(&path).unwrap(), 1, 0, SyncPolicy::EveryCall);
            let record = vec![7u8; size];
            let (mut ran, mut undone) = (false, None);
            let result = log.append(
                &record,
                || {
                    ran = true;
                    size
                },
                |out| undone = Some(out),
            );
            assert!(result.is_err());
            assert_eq!(ran, runs);
            assert_eq!(undone, runs.then_some(size));
        }
        // A writable segment: the step runs, nothing is undone.
        let log = Log::new(
            File::options().append(true).open(&path).unwrap(),
            1,
            0,
            SyncPolicy::EveryCall,
        );
        let (seq, out) = log
            .append(&vec![1u8; PARALLEL_WRITE_BYTES], || 5, |_| panic!("undone"))
            .unwrap();
        assert_eq!((seq, out), (1, 5));
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            PARALLEL_WRITE_BYTES as u64
        );
    }

    #[test]
    fn whole_records_scan_clean() {
        let bytes = records(3);
        let scan = scan_segment(&bytes);
        assert_eq!(scan.records.len(), 3);
        assert!(scan.damage.is_none());
        assert_eq!(scan.valid_len, bytes.len());
        assert_eq!(decode_retain(scan.records[2].payload, "f").unwrap(), 2);
    }

    #[test]
    fn a_cut_tail_is_a_torn_tail_at_every_offset() {
        let bytes = records(3);
        let whole = records(2).len();
        for cut in whole + 1..bytes.len() {
            let scan = scan_segment(&bytes[..cut]);
            assert_eq!(scan.records.len(), 2, "cut at {cut}");
            assert_eq!(scan.valid_len, whole);
            assert!(matches!(scan.damage, Some((_, false))), "cut at {cut}");
        }
    }

    #[test]
    fn damage_before_a_valid_record_is_found() {
        let mut bytes = records(3);
        let first = records(1).len();
        bytes[first + 2] ^= 0x40; // the second record's length
        let scan = scan_segment(&bytes);
        assert_eq!(scan.records.len(), 1);
        assert!(matches!(scan.damage, Some((_, true))));
    }
}
