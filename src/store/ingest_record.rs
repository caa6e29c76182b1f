//! The payload of an ingest record in the write-ahead log: the normalised
//! columns of one ingest call, in a columnar encoding made to be cheap to
//! write (the log is on the path of every durable ingest call) and compact
//! without a general-purpose compressor.
//!
//! # Why not Arrow IPC and zstd
//!
//! Format 1 of the log wrote Arrow IPC streams (strings cast from views to
//! Utf8, a copy of every string) compressed with zstd level 1: 51 bytes an
//! event, but encoding cost more CPU than folding the events into the
//! store, so a durable call ran at less than half the speed of an
//! in-memory one. Event columns are very repetitive (a handful of bots,
//! event types, channels, languages, steps; runs of rows of the same
//! conversation and user), so a per-column dictionary gives most of what
//! zstd gave, and costs a hash probe (often skipped: a row equal to the
//! previous one reuses its code) instead of an entropy coder's passes.
//!
//! # Layout
//!
//! All integers little-endian.
//!
//! ```text
//! payload:   batches u32 | batch*
//! batch:     rows u32 | present u32 | timestamps | column*
//! present:   bit i set when string column i is in the batch (the columns
//!            in [`STRING_COLUMNS`] order; the first 4 are always present)
//! timestamps: base i64 | width u8 (0..=8) | rows × width bytes: ts - base
//! column:    len u64 | tag u8 | body (len counts tag and body)
//!   tag 0, plain:      strings (nullable)
//!   tag 1, dictionary: strings (entries, no nulls) | width u8 (1, 2, 4)
//!                      | rows × width codes: 0 null, k entry k - 1
//! strings:   count u64 | width u8 (1 or 4) | count × width lengths
//!            (all ones: null) | bytes u64 | the bytes
//! ```
//!
//! A column is encoded as a dictionary unless its distinct values exceed
//! half of its non-null values (checked as rows are read, from the 64th
//! distinct value on, so that unique columns such as event ids stop early).
//! Columns are encoded and decoded in parallel. Decoding checks every
//! length, code and string (UTF-8) against what the payload holds, so a
//! damaged payload is a data error, never a panic; replay then sends the
//! decoded batch through the same normalisation as ingest.

use std::sync::Arc;

use arrow_array::builder::make_view;
use arrow_array::{
    Array, ArrayRef, RecordBatch, StringViewArray, TimestampMicrosecondArray, UInt32Array,
};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use rayon::prelude::*;

use super::codec::{Put, Reader};
use super::wal::{self, RecordKind};
use crate::error::{Error, Result};
use crate::ingest::{
    inline_view_hash, normalize, EventColumns, IngestMode, IngestReport, RowNumbers,
};
use crate::schema::{col, Attribute};

/// Number of string columns of [`EventColumns`].
const STRING_COLUMN_COUNT: usize = 4 + Attribute::COUNT + 5;

/// Required string columns: the first ones of [`STRING_COLUMNS`].
const REQUIRED_COLUMNS: usize = 4;

/// The string columns of a record, in order.
pub(crate) const STRING_COLUMNS: [&str; STRING_COLUMN_COUNT] = [
    col::EVENT_ID,
    col::BOT_ID,
    col::CONVERSATION_ID,
    col::EVENT_TYPE,
    col::TEAM_ID,
    col::BOT_VERSION,
    col::USER_ID,
    col::CHANNEL_TYPE,
    col::LANGUAGE,
    col::CAMPAIGN_ID,
    col::CAMPAIGN_SOURCE,
    col::MESSAGE_ID,
    col::FROM_STEP_ID,
    col::FROM_STEP_TYPE,
    col::TO_STEP_ID,
    col::TO_STEP_TYPE,
];

const TAG_PLAIN: u8 = 0;
const TAG_DICTIONARY: u8 = 1;

/// Distinct values a column may have before the dictionary can be given
/// up: below it a dictionary always pays (its entries are few).
const DICTIONARY_MIN_GIVE_UP: usize = 64;

/// Strings of at most this many bytes live inside their Arrow view, so
/// equal views are equal strings.
const INLINE_VIEW_LEN: u32 = 12;

/// A null length in a strings block of width 1.
const NULL_LEN_1: u32 = u8::MAX as u32;
/// A null length in a strings block of width 4.
const NULL_LEN_4: u32 = u32::MAX;

/// The string columns of `cols`, in [`STRING_COLUMNS`] order.
fn string_columns(cols: &EventColumns) -> [Option<&StringViewArray>; STRING_COLUMN_COUNT] {
    let mut out = [None; STRING_COLUMN_COUNT];
    out[0] = Some(&cols.event_id);
    out[1] = Some(&cols.bot_id);
    out[2] = Some(&cols.conversation_id);
    out[3] = Some(&cols.event_type);
    for (slot, a) in out[4..4 + Attribute::COUNT]
        .iter_mut()
        .zip(&cols.attributes)
    {
        *slot = a.as_ref();
    }
    let rest = [
        &cols.message_id,
        &cols.from_step_id,
        &cols.from_step_type,
        &cols.to_step_id,
        &cols.to_step_type,
    ];
    for (slot, a) in out[4 + Attribute::COUNT..].iter_mut().zip(rest) {
        *slot = a.as_ref();
    }
    out
}

/// The whole log record of an ingest call holding `columns`: header
/// ([`wal::seal`]) and payload, built in one buffer (for tests; ingest
/// calls build theirs with [`seal_record`]).
#[cfg(test)]
pub(crate) fn encode_record(columns: &[EventColumns]) -> Result<Vec<u8>> {
    Ok(seal_record(columns.par_iter().map(encode_batch).collect())?.0)
}

/// The log record of an ingest call whose batches were encoded one by one
/// ([`encode_batch`]), in order, and where each batch's bytes lie in it.
/// Each batch's parts are freed once copied, so that the call's encoded
/// rows are not held twice for long.
pub(crate) fn seal_record(
    batches: Vec<Vec<Vec<u8>>>,
) -> Result<(Vec<u8>, Vec<std::ops::Range<usize>>)> {
    let count = u32::try_from(batches.len()).map_err(|_| too_large())?;
    let payload_len = 4 + batches.iter().flatten().map(Vec::len).sum::<usize>();
    let mut out = Vec::with_capacity(wal::HEADER_LEN + payload_len);
    out.resize(wal::HEADER_LEN, 0);
    out.put_u32(count);
    let mut ranges = Vec::with_capacity(batches.len());
    for batch in batches {
        let start = out.len();
        for part in batch {
            out.extend_from_slice(&part);
        }
        ranges.push(start..out.len());
    }
    Ok((wal::seal(RecordKind::Ingest, out)?, ranges))
}

/// The payload alone (for tests).
#[cfg(test)]
fn encode(columns: &[EventColumns]) -> Result<Vec<u8>> {
    Ok(encode_record(columns)?.split_off(wal::HEADER_LEN))
}

fn too_large() -> Error {
    Error::data("write-ahead log", "an ingest call too large to log")
}

/// A batch of a record's payload, as parts to concatenate: its head
/// (rows, column set, timestamps), then each string column with its
/// length before it. The columns are encoded in parallel.
pub(crate) fn encode_batch(cols: &EventColumns) -> Vec<Vec<u8>> {
    let strings = string_columns(cols);
    let present = strings
        .iter()
        .enumerate()
        .filter(|(_, a)| a.is_some())
        .fold(0u32, |mask, (i, _)| mask | 1 << i);
    let head = || {
        let mut head = Vec::with_capacity(17 + cols.len() * 8);
        head.put_u32(cols.len() as u32);
        head.put_u32(present);
        put_timestamps(&mut head, &cols.timestamp);
        head
    };
    let string_parts = || -> Vec<Vec<u8>> {
        strings
            .par_iter()
            .flatten()
            .map(|array| {
                let mut column = vec![0; 8];
                put_string_column(&mut column, array);
                let len = (column.len() - 8) as u64;
                column[..8].copy_from_slice(&len.to_le_bytes());
                column
            })
            .collect()
    };
    let (head, mut parts) = rayon::join(head, string_parts);
    parts.insert(0, head);
    parts
}

/// Timestamps as offsets from their minimum, in as few bytes as the
/// largest offset needs.
fn put_timestamps(out: &mut Vec<u8>, ts: &[i64]) {
    let base = ts.iter().copied().min().unwrap_or(0);
    let span = ts
        .iter()
        .map(|&t| t.wrapping_sub(base) as u64)
        .max()
        .unwrap_or(0);
    let width = (64 - span.leading_zeros()).div_ceil(8) as usize;
    out.put_u64(base as u64);
    out.push(width as u8);
    out.reserve(ts.len() * width);
    for &t in ts {
        out.extend_from_slice(&(t.wrapping_sub(base) as u64).to_le_bytes()[..width]);
    }
}

fn put_string_column(out: &mut Vec<u8>, array: &StringViewArray) {
    match Dictionary::build(array) {
        Some(dictionary) => {
            out.push(TAG_DICTIONARY);
            put_entries(out, &dictionary.entries);
            let width = code_width(dictionary.entries.len());
            out.push(width as u8);
            let codes = &dictionary.codes;
            out.reserve(codes.len() * width);
            match width {
                1 => out.extend(codes.iter().map(|&c| c as u8)),
                2 => out.extend(codes.iter().flat_map(|&c| (c as u16).to_le_bytes())),
                _ => out.extend(codes.iter().flat_map(|&c| c.to_le_bytes())),
            }
        }
        None => {
            out.push(TAG_PLAIN);
            put_plain(out, array);
        }
    }
}

/// Bytes a dictionary code takes with `entries` entries (code 0 is null).
fn code_width(entries: usize) -> usize {
    match entries + 1 {
        0..=0x100 => 1,
        0x101..=0x1_0000 => 2,
        _ => 4,
    }
}

/// The bytes of a non-null string longer than [`INLINE_VIEW_LEN`], whose
/// view is `view` in `array`.
#[inline]
fn long_bytes(array: &StringViewArray, view: u128) -> &[u8] {
    let len = view as u32 as usize;
    let buffer = (view >> 64) as u32 as usize;
    let offset = (view >> 96) as u32 as usize;
    &array.data_buffers()[buffer][offset..offset + len]
}

/// A view's 16 bytes: for a string of at most [`INLINE_VIEW_LEN`] bytes,
/// its length (4 bytes) and then the string itself (Arrow's layout,
/// little-endian).
#[inline]
fn inline_bytes(view: u128) -> [u8; 16] {
    view.to_le_bytes()
}

/// A strings block of every value of `array`, nulls included.
fn put_plain(out: &mut Vec<u8>, array: &StringViewArray) {
    let views = array.views();
    let nulls = array.nulls().filter(|n| n.null_count() > 0);
    let valid = |row: usize| nulls.is_none_or(|n| n.is_valid(row));
    let mut max_len = 0u32;
    let mut total = 0usize;
    for (row, &view) in views.iter().enumerate() {
        if valid(row) {
            max_len = max_len.max(view as u32);
            total += (view as u32) as usize;
        }
    }
    let wide = max_len >= NULL_LEN_1;
    let width = if wide { 4 } else { 1 };
    out.put_u64(views.len() as u64);
    out.push(width as u8);
    let lengths_at = out.len();
    let bytes_at = lengths_at + views.len() * width + 8;
    // 12 bytes of slack: an inline string is copied as its view's whole 12
    // bytes (one fixed-size store, not a `memcpy` of its length), and the
    // next string overwrites what lies beyond it.
    out.resize(bytes_at + total + INLINE_VIEW_LEN as usize, 0);
    out[bytes_at - 8..bytes_at].copy_from_slice(&(total as u64).to_le_bytes());
    let (head, bytes) = out.split_at_mut(bytes_at);
    let lengths = &mut head[lengths_at..bytes_at - 8];
    let mut at = 0usize;
    for (row, view) in views.iter().enumerate() {
        let len = if valid(row) {
            let len = *view as u32;
            let end = at + len as usize;
            if len <= INLINE_VIEW_LEN {
                bytes[at..at + INLINE_VIEW_LEN as usize].copy_from_slice(&inline_bytes(*view)[4..]);
            } else {
                bytes[at..end].copy_from_slice(long_bytes(array, *view));
            }
            at = end;
            len
        } else if wide {
            NULL_LEN_4
        } else {
            NULL_LEN_1
        };
        if wide {
            lengths[row * 4..row * 4 + 4].copy_from_slice(&len.to_le_bytes());
        } else {
            lengths[row] = len as u8;
        }
    }
    out.truncate(bytes_at + total);
}

/// A strings block of dictionary entries (no nulls).
fn put_entries(out: &mut Vec<u8>, entries: &Entries) {
    let wide = entries.max_len >= NULL_LEN_1;
    out.put_u64(entries.len() as u64);
    out.push(if wide { 4 } else { 1 });
    let mut start = 0usize;
    for &end in &entries.ends {
        let len = (end - start) as u32;
        if wide {
            out.put_u32(len);
        } else {
            out.push(len as u8);
        }
        start = end;
    }
    out.put_u64(entries.bytes.len() as u64);
    out.extend_from_slice(&entries.bytes);
}

/// Distinct strings in order of first appearance.
#[derive(Default)]
struct Entries {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// The view of each entry's first row: for inline strings, the string.
    views: Vec<u128>,
    hashes: Vec<u64>,
    max_len: u32,
}

impl Entries {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, e: u32) -> &[u8] {
        let e = e as usize;
        let start = if e == 0 { 0 } else { self.ends[e - 1] };
        &self.bytes[start..self.ends[e]]
    }

    fn push(&mut self, v: &[u8], view: u128, hash: u64) -> u32 {
        self.bytes.extend_from_slice(v);
        self.ends.push(self.bytes.len());
        self.views.push(view);
        self.hashes.push(hash);
        self.max_len = self.max_len.max(v.len() as u32);
        (self.ends.len() - 1) as u32
    }
}

/// A column as dictionary entries and a code per row.
struct Dictionary {
    entries: Entries,
    /// 0 for null, `k` for entry `k - 1`.
    codes: Vec<u32>,
}

impl Dictionary {
    /// The column as a dictionary, or `None` when it has too many distinct
    /// values for one to pay.
    fn build(array: &StringViewArray) -> Option<Self> {
        // Null rows keep code 0; the valid rows are visited by their bits
        // (no branch on each row's validity, which nulls interleaved with
        // values would mispredict).
        let mut codes = vec![0; array.len()];
        let dictionary = match array.nulls().filter(|n| n.null_count() > 0) {
            Some(nulls) => Self::fill(array, nulls.valid_indices(), &mut codes),
            None => Self::fill(array, 0..array.len(), &mut codes),
        };
        dictionary.map(|entries| Self { entries, codes })
    }

    /// The entries of the values at `rows`, each row's code set in `codes`.
    fn fill(
        array: &StringViewArray,
        rows: impl Iterator<Item = usize>,
        codes: &mut [u32],
    ) -> Option<Entries> {
        let views = array.views();
        let mut entries = Entries::default();
        let mut table = EntryTable::new();
        // The previous row's view and code (no view has length u32::MAX,
        // so the first row never matches).
        let mut previous = (u128::from(u32::MAX), 0u32);
        // `valid`: the rows seen so far, this one included.
        for (valid, row) in (1usize..).zip(rows) {
            let view = views[row];
            let len = view as u32;
            let inline = len <= INLINE_VIEW_LEN;
            // Inline: the view is the string. Longer: same length and
            // prefix, then the bytes.
            if view == previous.0
                || (!inline
                    && (view as u64) == (previous.0 as u64)
                    && long_bytes(array, view) == long_bytes(array, previous.0))
            {
                codes[row] = previous.1;
                continue;
            }
            let (hash, bytes) = if inline {
                (inline_view_hash(view), None)
            } else {
                let v = long_bytes(array, view);
                (xxhash_rust::xxh3::xxh3_64(v), Some(v))
            };
            let found = table.find(hash, |e| match bytes {
                None => entries.views[e as usize] == view,
                Some(v) => entries.hashes[e as usize] == hash && entries.get(e) == v,
            });
            let code = match found {
                Some(e) => e + 1,
                None => {
                    if entries.len() >= DICTIONARY_MIN_GIVE_UP.max(valid / 2) {
                        return None;
                    }
                    let e = match bytes {
                        None => entries.push(&inline_bytes(view)[4..4 + len as usize], view, hash),
                        Some(v) => entries.push(v, view, hash),
                    };
                    table.insert(hash, e, &entries.hashes);
                    e + 1
                }
            };
            codes[row] = code;
            previous = (view, code);
        }
        Some(entries)
    }
}

/// Entry numbers by hash, for [`Dictionary::build`]: open addressing with
/// linear probing, at most half full, the slots holding `entry + 1` (0 is
/// empty). A column's dictionary has few entries, so the table stays in
/// the L1 or L2 cache and a probe is a multiply, a load and a compare.
struct EntryTable {
    slots: Vec<u32>,
}

impl EntryTable {
    fn new() -> Self {
        Self {
            slots: vec![0; 256],
        }
    }

    /// The entry of hash `hash` for which `is` holds.
    #[inline]
    fn find(&self, hash: u64, is: impl Fn(u32) -> bool) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut slot = hash as usize & mask;
        loop {
            match self.slots[slot] {
                0 => return None,
                e if is(e - 1) => return Some(e - 1),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Adds entry `e` of hash `hash` (not in the table yet); `hashes` holds
    /// every entry's hash, for growing.
    fn insert(&mut self, hash: u64, e: u32, hashes: &[u64]) {
        if 2 * (e as usize + 1) > self.slots.len() {
            self.slots = vec![0; 2 * self.slots.len()];
            for (old, &h) in hashes[..e as usize].iter().enumerate() {
                self.place(h, old as u32);
            }
        }
        self.place(hash, e);
    }

    fn place(&mut self, hash: u64, e: u32) {
        let mask = self.slots.len() - 1;
        let mut slot = hash as usize & mask;
        while self.slots[slot] != 0 {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = e + 1;
    }
}

/// The columns of an ingest record's payload, normalised again as on
/// ingest; every failure is a data error naming `context` (the file).
#[cfg(test)]
pub(crate) fn decode(payload: &[u8], context: &str) -> Result<Vec<EventColumns>> {
    RecordBatches::new(payload, context)?.collect()
}

/// The batches of an ingest record's payload, decoded one at a time (and
/// normalised again, as on ingest), so that the record of a large file is
/// never in memory decoded whole. Every failure is a data error naming
/// the file; bytes after the last batch are one too.
pub(crate) struct RecordBatches<'a> {
    reader: Reader<'a>,
    left: usize,
    context: &'a str,
    done: bool,
}

impl<'a> RecordBatches<'a> {
    pub fn new(payload: &'a [u8], context: &'a str) -> Result<Self> {
        let mut reader = Reader::new(payload, context);
        let left = reader.u32()? as usize;
        Ok(Self {
            reader,
            left,
            context,
            done: false,
        })
    }
}

/// Stops after the first error.
impl Iterator for RecordBatches<'_> {
    type Item = Result<EventColumns>;

    fn next(&mut self) -> Option<Result<EventColumns>> {
        if self.done {
            return None;
        }
        if self.left == 0 {
            self.done = true;
            return self.reader.finish().err().map(Err);
        }
        self.left -= 1;
        let batch = decode_batch(&mut self.reader, self.context);
        self.done = batch.is_err();
        Some(batch)
    }
}

/// One batch as [`encode_batch`] wrote it, normalised again.
pub(crate) fn decode_batch_bytes(bytes: &[u8], context: &str) -> Result<EventColumns> {
    let mut r = Reader::new(bytes, context);
    let cols = decode_batch(&mut r, context)?;
    r.finish()?;
    Ok(cols)
}

fn decode_batch(r: &mut Reader<'_>, context: &str) -> Result<EventColumns> {
    let rows = r.u32()? as usize;
    let present = r.u32()?;
    let required = (1u32 << REQUIRED_COLUMNS) - 1;
    if present & required != required || present >> STRING_COLUMN_COUNT != 0 {
        return Err(r.error("an ingest record's column set is invalid"));
    }
    let timestamps = timestamps(r, rows)?;
    let mut sections: Vec<(usize, &[u8])> = Vec::new();
    for i in (0..STRING_COLUMN_COUNT).filter(|i| present & (1 << i) != 0) {
        let len = r.count(1)?;
        sections.push((i, r.take(len)?));
    }
    let arrays: Vec<(usize, StringViewArray)> = sections
        .into_par_iter()
        .map(|(i, bytes)| {
            let mut column = Reader::new(bytes, context);
            let array = string_column(&mut column, rows)?;
            column.finish()?;
            Ok((i, array))
        })
        .collect::<Result<_>>()?;
    let mut fields = Vec::with_capacity(arrays.len() + 1);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(arrays.len() + 1);
    for (i, array) in arrays {
        fields.push(Field::new(STRING_COLUMNS[i], DataType::Utf8View, true));
        columns.push(Arc::new(array));
    }
    fields.push(Field::new(
        col::TIMESTAMP,
        DataType::Timestamp(TimeUnit::Microsecond, None),
        false,
    ));
    columns.push(Arc::new(TimestampMicrosecondArray::from(timestamps)));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::data_from(context, e))?;
    let mut report = IngestReport::default();
    normalize(&batch, IngestMode::Strict, RowNumbers::From(1), &mut report)
        .map_err(|e| e.within(context))
}

fn timestamps(r: &mut Reader<'_>, rows: usize) -> Result<Vec<i64>> {
    let base = r.u64()? as i64;
    let width = r.take(1)?[0] as usize;
    if width > 8 {
        return Err(r.error("an ingest record's timestamp width is invalid"));
    }
    let bytes = r.take(rows.checked_mul(width).ok_or_else(|| r.error("overflow"))?)?;
    if width == 0 {
        return Ok(vec![base; rows]);
    }
    Ok(bytes
        .chunks_exact(width)
        .map(|c| {
            let mut word = [0u8; 8];
            word[..width].copy_from_slice(c);
            base.wrapping_add(u64::from_le_bytes(word) as i64)
        })
        .collect())
}

fn string_column(r: &mut Reader<'_>, rows: usize) -> Result<StringViewArray> {
    match r.take(1)?[0] {
        TAG_PLAIN => strings(r, Some(rows), true),
        TAG_DICTIONARY => {
            let entries = strings(r, None, false)?;
            let width = r.take(1)?[0] as usize;
            if !matches!(width, 1 | 2 | 4) {
                return Err(r.error("an ingest record's code width is invalid"));
            }
            let bytes = r.take(rows.checked_mul(width).ok_or_else(|| r.error("overflow"))?)?;
            let mut indices = Vec::with_capacity(rows);
            let mut valid = BooleanBufferBuilder::new(rows);
            let limit = entries.len() as u32;
            for c in bytes.chunks_exact(width) {
                let mut word = [0u8; 4];
                word[..width].copy_from_slice(c);
                let code = u32::from_le_bytes(word);
                if code > limit {
                    return Err(r.error("an ingest record's dictionary code is out of range"));
                }
                indices.push(code.saturating_sub(1));
                valid.append(code != 0);
            }
            let nulls = NullBuffer::new(valid.finish());
            let indices =
                UInt32Array::new(indices.into(), Some(nulls).filter(|n| n.null_count() > 0));
            // `take` shares the entries' buffers: each row costs a view copy.
            let taken =
                arrow_select::take::take(&entries, &indices, None).map_err(|e| r.error(e))?;
            taken
                .as_any()
                .downcast_ref::<StringViewArray>()
                .cloned()
                .ok_or_else(|| r.error("an ingest record's dictionary is not strings"))
        }
        _ => Err(r.error("an ingest record's column encoding is unknown")),
    }
}

/// A strings block as a view array (of `rows` values when given).
fn strings(r: &mut Reader<'_>, rows: Option<usize>, nullable: bool) -> Result<StringViewArray> {
    let count = r.count(0)?;
    if rows.is_some_and(|rows| rows != count) {
        return Err(r.error("an ingest record's column has the wrong length"));
    }
    let width = r.take(1)?[0] as usize;
    let null_len = match width {
        1 => NULL_LEN_1,
        4 => NULL_LEN_4,
        _ => return Err(r.error("an ingest record's length width is invalid")),
    };
    let lengths = r.take(
        count
            .checked_mul(width)
            .ok_or_else(|| r.error("overflow"))?,
    )?;
    let total = r.count(1)?;
    if u32::try_from(total).is_err() {
        return Err(r.error("an ingest record's column is too large"));
    }
    let bytes = r.take(total)?;
    let mut views = Vec::with_capacity(count);
    let mut valid = BooleanBufferBuilder::new(if nullable { count } else { 0 });
    let mut offset = 0usize;
    for c in lengths.chunks_exact(width) {
        let mut word = [0u8; 4];
        word[..width].copy_from_slice(c);
        let len = u32::from_le_bytes(word);
        if len == null_len {
            if !nullable {
                return Err(r.error("a null in an ingest record's dictionary"));
            }
            views.push(0u128);
            valid.append(false);
            continue;
        }
        let end = offset + len as usize;
        let v = bytes
            .get(offset..end)
            .ok_or_else(|| r.error("an ingest record's string lengths exceed its bytes"))?;
        views.push(make_view(v, 0, offset as u32));
        if nullable {
            valid.append(true);
        }
        offset = end;
    }
    if offset != total {
        return Err(r.error("an ingest record's string lengths do not add up"));
    }
    let nulls = nullable
        .then(|| NullBuffer::new(valid.finish()))
        .filter(|n| n.null_count() > 0);
    StringViewArray::try_new(ScalarBuffer::from(views), vec![Buffer::from(bytes)], nulls)
        .map_err(|e| r.error(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::events_to_columns;
    use crate::schema::Event;

    fn columns(n: usize, distinct: usize) -> EventColumns {
        let events: Vec<Event> = (0..n)
            .map(|i| Event {
                event_id: format!("event-{i}"),
                timestamp: 1_700_000_000_000_000 + (i as i64 % 97) * 1_000,
                bot_id: format!("a-bot-with-a-long-name-{}", i % 3),
                conversation_id: format!("c{}", i / 4),
                event_type: if i % 2 == 0 { "message" } else { "transition" }.into(),
                bot_version: (i % 5 != 0).then(|| format!("v{}", i % distinct)),
                user_id: (i % 7 != 0).then(|| "é".repeat(i % 300)),
                message_id: (i % 2 == 0).then(|| format!("m{i}")),
                from_step_id: (i % 2 == 1).then(|| "s1".into()),
                ..Default::default()
            })
            .collect();
        events_to_columns(&events)
    }

    fn as_rows(cols: &EventColumns) -> Vec<String> {
        let strings = string_columns(cols);
        (0..cols.len())
            .map(|r| {
                let values: Vec<Option<&str>> = strings
                    .iter()
                    .map(|a| a.and_then(|a| a.is_valid(r).then(|| a.value(r))))
                    .collect();
                format!("{} {values:?}", cols.timestamp[r])
            })
            .collect()
    }

    #[test]
    fn round_trips_at_edge_lengths() {
        for n in [0, 1, 255, 256, 257, 1000] {
            for distinct in [1, 300, 70_000] {
                let cols = columns(n, distinct);
                let payload = encode(std::slice::from_ref(&cols)).unwrap();
                let back = decode(&payload, "log").unwrap();
                assert_eq!(back.len(), 1);
                assert_eq!(
                    as_rows(&back[0]),
                    as_rows(&cols),
                    "n {n}, distinct {distinct}"
                );
            }
        }
        let two = [columns(3, 1), columns(5, 2)];
        let back = decode(&encode(&two).unwrap(), "log").unwrap();
        assert_eq!(
            back.iter().map(as_rows).collect::<Vec<_>>(),
            two.iter().map(as_rows).collect::<Vec<_>>()
        );
    }

    /// Unique strings of every length from 0 to 40 (inline and not), with
    /// nulls between them, stay plain and come back byte for byte; so do
    /// 5,000 distinct values, which grow the dictionary's table many times.
    #[test]
    fn plain_strings_of_every_length_and_large_dictionaries_round_trip() {
        let events: Vec<Event> = (0..5_000)
            .map(|i| Event {
                event_id: format!("{i:0width$}", width = i % 41),
                timestamp: 1_700_000_000_000_000 + i as i64,
                bot_id: "b".into(),
                conversation_id: format!("conversation-{}", i / 2),
                event_type: "message".into(),
                message_id: (i % 3 != 0).then(|| format!("{i:x>width$}", width = i % 29)),
                ..Default::default()
            })
            .collect();
        let cols = events_to_columns(&events);
        let payload = encode(std::slice::from_ref(&cols)).unwrap();
        let back = decode(&payload, "log").unwrap();
        assert_eq!(as_rows(&back[0]), as_rows(&cols));
    }

    #[test]
    fn repetitive_columns_become_dictionaries_and_unique_ones_stay_plain() {
        let cols = columns(1000, 4);
        let mut out = Vec::new();
        put_string_column(&mut out, &cols.event_type);
        assert_eq!(out[0], TAG_DICTIONARY);
        out.clear();
        put_string_column(&mut out, &cols.event_id);
        assert_eq!(out[0], TAG_PLAIN);
        out.clear();
        put_string_column(&mut out, &cols.conversation_id);
        assert_eq!(out[0], TAG_DICTIONARY);
    }

    #[test]
    fn all_null_and_wide_columns_round_trip() {
        let n = 300;
        let views: Vec<Option<String>> = (0..n)
            .map(|i| (i % 3 == 0).then(|| "x".repeat(i)))
            .collect();
        for array in [
            StringViewArray::from(vec![None::<&str>; n]),
            StringViewArray::from_iter(views.iter().map(|v| v.as_deref())),
            StringViewArray::from_iter_values((0..n).map(|i| format!("unique-{i}"))),
        ] {
            let mut out = Vec::new();
            put_string_column(&mut out, &array);
            let mut r = Reader::new(&out, "log");
            let back = string_column(&mut r, n).unwrap();
            r.finish().unwrap();
            assert_eq!(
                back.iter().collect::<Vec<_>>(),
                array.iter().collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let payload = encode(&[columns(300, 5)]).unwrap();
        for cut in (0..payload.len()).step_by(7) {
            assert!(decode(&payload[..cut], "log").is_err(), "cut at {cut}");
        }
        let mut errors = 0;
        for at in (0..payload.len()).step_by(3) {
            for bit in [0x01, 0x80] {
                let mut damaged = payload.clone();
                damaged[at] ^= bit;
                // A flip may still decode (a byte of a string, a
                // timestamp): the record's CRC catches those. It must
                // never panic.
                if let Err(e) = decode(&damaged, "log") {
                    assert!(e.to_string().contains("log"), "{e}");
                    errors += 1;
                }
            }
        }
        assert!(errors > 0);
    }
}
