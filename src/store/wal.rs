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
//! after validation and normalisation: its uncompressed length, then zstd
//! (level 1) of a count and, per batch, a length and an Arrow IPC stream of
//! the normalised columns (strings as Utf8, timestamps as µs). Replaying it goes through the same normalisation and
//! store code as the original call. A retain payload is the cut-off instant
//! (i64 µs).
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
//! that must follow the log order (dedup claims) under the same lock;
//! [`Log::sync`] then waits until the record is on disk. One caller at a
//! time is the leader and calls `fdatasync` for every record written so far;
//! the others wait on a condition variable and return when a sync covering
//! their record completes. Concurrent ingests thus share fsyncs. A failed
//! write or sync fails the log for good (as PostgreSQL does after an fsync
//! error): later calls return an error, and the directory is recovered by
//! reopening.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use arrow_array::{ArrayRef, RecordBatch, StringViewArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use super::codec::{Put, Reader};
use crate::error::{Error, Result};
use crate::ingest::guard::guard;
use crate::ingest::{normalize, EventColumns, IngestMode, IngestReport, RowNumbers};
use crate::schema::{col, Attribute};

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

/// A record ready to append: header and payload.
pub(crate) fn frame(kind: RecordKind, payload: &[u8]) -> Result<Vec<u8>> {
    let len = u32::try_from(payload.len()).map_err(|_| {
        Error::data(
            "write-ahead log",
            "an ingest call over 4 GiB cannot be logged",
        )
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.put_u32(len);
    out.put_u32(kind as u32);
    out.put_u32(crc32fast::hash(payload));
    let header_crc = crc32fast::hash(&out);
    out.put_u32(header_crc);
    out.extend_from_slice(payload);
    Ok(out)
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

/// zstd level of ingest payloads: level 1 compresses the generated data's
/// records about 4× (164 → ~40 bytes an event) at several hundred MB/s a
/// core; measured with `cargo bench --bench durable`, where the log write
/// bandwidth, not the CPU, bounded durable ingest.
const LOG_ZSTD_LEVEL: i32 = 1;

/// The payload of an ingest record: the raw length, then zstd of
/// `columns` as Arrow IPC streams.
pub(crate) fn encode_ingest(columns: &[EventColumns]) -> Result<Vec<u8>> {
    let raw = encode_ingest_raw(columns)?;
    let mut out = Vec::with_capacity(raw.len() / 3 + 16);
    out.put_u64(raw.len() as u64);
    let compressed = zstd::bulk::compress(&raw, LOG_ZSTD_LEVEL)
        .map_err(|e| Error::data_from("write-ahead log", e))?;
    out.extend_from_slice(&compressed);
    Ok(out)
}

fn encode_ingest_raw(columns: &[EventColumns]) -> Result<Vec<u8>> {
    let err = |e: arrow_schema::ArrowError| Error::data_from("write-ahead log", e);
    let mut out = Vec::new();
    out.put_u32(columns.len() as u32);
    for cols in columns {
        let batch = to_batch(cols).map_err(err)?;
        let mut writer =
            arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).map_err(err)?;
        writer.write(&batch).map_err(err)?;
        writer.finish().map_err(err)?;
        let bytes = writer.into_inner().map_err(err)?;
        out.put_u64(bytes.len() as u64);
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// The columns of an ingest record, normalised again as on ingest.
pub(crate) fn decode_ingest(payload: &[u8], context: &str) -> Result<Vec<EventColumns>> {
    use std::io::Read;
    let mut r = Reader::new(payload, context);
    let raw_len = r.u64()?;
    let compressed = r.take(r.remaining())?;
    // Grown as decoded, never sized by the stored length alone.
    let mut raw = Vec::with_capacity(compressed.len().saturating_mul(4));
    zstd::stream::read::Decoder::new(compressed)
        .and_then(|d| d.take(raw_len).read_to_end(&mut raw))
        .map_err(|e| Error::data_from(context, e))?;
    if raw.len() as u64 != raw_len {
        return Err(Error::data(context, "a log record is shorter than it says"));
    }
    decode_ingest_raw(&raw, context)
}

fn decode_ingest_raw(payload: &[u8], context: &str) -> Result<Vec<EventColumns>> {
    let mut r = Reader::new(payload, context);
    let n = r.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(r.remaining()));
    for _ in 0..n {
        let len = r.count(1)?;
        let bytes = r.take(len)?;
        let batches = guard(context, || {
            let reader =
                arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
                    .map_err(|e| Error::data_from(context, e))?;
            reader
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::data_from(context, e))
        })?;
        for batch in batches {
            let mut report = IngestReport::default();
            let cols = normalize(&batch, IngestMode::Strict, RowNumbers::From(1), &mut report)
                .map_err(|e| e.within(context))?;
            out.push(cols);
        }
    }
    r.finish()?;
    Ok(out)
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

/// Normalised columns as a record batch (strings as Utf8: 4 bytes of
/// offset a value instead of a view's 16).
fn to_batch(cols: &EventColumns) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut push = |name: &str,
                    array: &StringViewArray|
     -> std::result::Result<(), arrow_schema::ArrowError> {
        fields.push(Field::new(name, DataType::Utf8, true));
        arrays.push(arrow_cast::cast(array, &DataType::Utf8)?);
        Ok(())
    };
    push(col::EVENT_ID, &cols.event_id)?;
    push(col::BOT_ID, &cols.bot_id)?;
    push(col::CONVERSATION_ID, &cols.conversation_id)?;
    push(col::EVENT_TYPE, &cols.event_type)?;
    for (attribute, array) in Attribute::ALL.iter().zip(&cols.attributes) {
        if let Some(a) = array {
            push(attribute.column(), a)?;
        }
    }
    let optional = [
        (col::MESSAGE_ID, &cols.message_id),
        (col::FROM_STEP_ID, &cols.from_step_id),
        (col::FROM_STEP_TYPE, &cols.from_step_type),
        (col::TO_STEP_ID, &cols.to_step_id),
        (col::TO_STEP_TYPE, &cols.to_step_type),
    ];
    for (name, array) in optional {
        if let Some(a) = array {
            push(name, a)?;
        }
    }
    fields.push(Field::new(
        col::TIMESTAMP,
        DataType::Timestamp(TimeUnit::Microsecond, None),
        false,
    ));
    arrays.push(Arc::new(TimestampMicrosecondArray::from(
        cols.timestamp.clone(),
    )));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
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

    fn fail(&self, reason: String) -> Error {
        let error = Error::data("write-ahead log", &reason);
        lock(&self.failed).get_or_insert(reason);
        error
    }

    /// Appends `record` (a [`frame`]) and then, under the same lock, runs
    /// `then`: records are in the log in the order of their `then` calls.
    /// Returns the record's sequence number for [`Log::sync`].
    pub fn append<T>(&self, record: &[u8], then: impl FnOnce() -> T) -> Result<(u64, T)> {
        self.check()?;
        let mut tail = lock(&self.tail);
        if let Err(e) = (&*tail.file).write_all(record) {
            // Cut the partial record off, so that later records follow a
            // whole one; if that fails too, the log is unusable.
            let cut = tail.file.set_len(tail.len);
            let reason = format!("appending to segment {}: {e}", tail.segment);
            return Err(match cut {
                Ok(()) => Error::data_from("write-ahead log", e),
                Err(_) => self.fail(reason),
            });
        }
        tail.len += record.len() as u64;
        tail.written += 1;
        let out = then();
        Ok((tail.written, out))
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
