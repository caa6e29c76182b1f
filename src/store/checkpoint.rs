//! Checkpoints: a compact binary snapshot of the whole store, so that
//! reopening a directory costs the log written since, not all data ever
//! ingested.
//!
//! # Format
//!
//! ```text
//! "CVSTCKPT" | format u32 | sections u32 | crc u32 (of the 16 bytes before)
//! section*   | "CVSTEND."
//! section:   kind u32 | index u32 | raw_len u64 | stored_len u64
//!            | crc u32 (of the stored bytes) | crc u32 (of the 28 bytes before)
//!            | stored bytes: zstd (level 1) of raw_len bytes (kind 1)
//!                            or the raw_len bytes themselves (kind 3)
//! dedup section (kind 3): count u64 | (hash lo u64, hash hi u64, owner u64)*
//! ```
//!
//! One section per conversation shard (kind 1) and per dedup shard
//! (kind 3), encoded and decoded in parallel. A conversation shard
//! stores its columns whole (little-endian vectors, strings as a length
//! vector and one byte blob), with the first event id of each conversation
//! only (the live arena also holds replaced ones) and the transitions
//! grouped by conversation; what can be recomputed (key hashes, the
//! index, interner tables, transition links) is rebuilt on load. A dedup
//! shard stores its entries as the table holds them, 24 bytes each and not
//! compressed: two thirds of them are random hash bits, which zstd cannot
//! shrink. Format 1 replaced each owner by its number in the snapshot's
//! conversation order, sorted and compressed to about 17 bytes an entry
//! in all; finding those numbers (a random lookup per id), sorting and
//! compressing made a checkpoint of 10M events cost 1.5 s of CPU, against
//! 0.9 s now, for 7 bytes an event more on disk. Checkpoints of format 1
//! are still read.
//!
//! Loading reads the file section by section (each section's bytes and
//! its decompressed bytes into buffers reused by each thread), never the
//! whole file at once, and builds each dedup table by inserting its
//! entries in the order of their place in the table (a counting sort),
//! which turns the random writes of a 6 MB table into nearly sequential
//! ones. Encoding never holds the file in one buffer either: its sections
//! are written one after the other ([`CheckpointFile`]).
//!
//! Every length read is checked against what is left, every symbol
//! against its table, and every section against its checksum, so that a
//! damaged file is a data error naming it, never a panic.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

use hashbrown::HashTable;
use rayon::prelude::*;

use super::codec::{Put, Reader};
use super::event_ids::{self, IdEntry};
use super::shard::ConversationShard;
use super::strings::{Interner, StringArena, NULL_SYM};
use super::{read, Store, CONVERSATION_SHARDS};
use crate::error::{Error, Result};
use crate::schema::Attribute;

const MAGIC: &[u8; 8] = b"CVSTCKPT";
const END: &[u8; 8] = b"CVSTEND.";
/// The snapshot layout written by this build.
pub(crate) const CHECKPOINT_FORMAT: u32 = 2;
/// The layout of earlier builds, still read: dedup sections of owner
/// ordinals ([`KIND_DEDUP_ORDINALS`]).
const FORMAT_OWNER_ORDINALS: u32 = 1;
const KIND_SHARD: u32 = 1;
/// A dedup section of format 1: ordinal deltas and hash halves, zstd.
const KIND_DEDUP_ORDINALS: u32 = 2;
/// A dedup section of format 2: the entries, stored as they are.
const KIND_DEDUP: u32 = 3;
/// Bytes of one entry in a [`KIND_DEDUP`] section.
const ID_ROW: usize = 24;
const SECTION_HEADER: usize = 32;
/// Magic, format, section count, checksum.
const FILE_HEADER: usize = 20;
/// zstd level: 1 is the fastest; higher levels save little on this data
/// (ids are random) and cost checkpoint time.
const ZSTD_LEVEL: i32 = 1;
/// Ordinal of an id whose owner was not found, in format 1 (loaded as
/// owner 0).
const NO_OWNER: u32 = u32::MAX;

/// A section ready to write: kind, index, raw length, stored bytes.
type Compressed = (u32, u32, u64, Vec<u8>);

/// The snapshot of `store`, as the file to write. The caller keeps the
/// store quiescent (no ingest between claim and fold) while this runs.
pub(crate) fn encode(store: &Store) -> Result<CheckpointFile> {
    let guards: Vec<_> = store.shards().into_iter().map(read).collect();
    let shards: Vec<&ConversationShard> = guards.iter().map(|g| &**g).collect();
    encode_parts(&shards, id_sections(store), None)
}

/// Each dedup shard's section, one shard at a time (the caller keeps the
/// store quiescent).
fn id_sections(store: &Store) -> impl IndexedParallelIterator<Item = Vec<u8>> + '_ {
    (0..event_ids::SHARDS).into_par_iter().map(|i| {
        store
            .event_ids()
            .with_shard(i, |table| encode_ids(table.iter()))
    })
}

/// What a checkpoint encodes of a store, copied while the store was
/// quiescent so that the encoding can run while ingest goes on: the
/// conversation shards (without their indexes) and each dedup shard's
/// section, which is a copy of its entries. About the size of the store in
/// memory.
pub(crate) struct StoreCopy {
    shards: Vec<ConversationShard>,
    ids: Vec<Vec<u8>>,
}

impl StoreCopy {
    /// Copies `store`, shards in parallel. The caller keeps the store
    /// quiescent while this runs, as for [`encode`].
    pub(crate) fn of(store: &Store) -> Self {
        let (shards, ids) = rayon::join(
            || {
                store
                    .shards()
                    .par_iter()
                    .map(|s| read(s).copy_for_checkpoint())
                    .collect()
            },
            || id_sections(store).collect(),
        );
        Self { shards, ids }
    }

    /// The snapshot of the copied store, as the file to write; the same
    /// bytes [`encode`] gives for the store the copy was taken of.
    ///
    /// It runs on a pool of its own ([`background_pool`]): in the global
    /// pool, the encoding's many tasks would run before the work of the
    /// ingest calls going on meanwhile (a pool's threads take their own
    /// queued tasks before jobs from outside), and those calls would wait
    /// for most of the encoding.
    ///
    /// Setting `cancel` stops it at the next section: `None` then (a newer
    /// checkpoint supersedes this one).
    pub(crate) fn encode(self, cancel: &AtomicBool) -> Result<Option<CheckpointFile>> {
        let Self { shards, ids } = self;
        let borrowed: Vec<&ConversationShard> = shards.iter().collect();
        let encode = || encode_parts(&borrowed, ids.into_par_iter(), Some(cancel));
        let bytes = match background_pool() {
            Some(pool) => pool.install(encode),
            None => encode(),
        };
        if cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        bytes.map(Some)
    }
}

/// The pool that encodes copies while ingest goes on: half of the
/// cores (at least one thread), so that the encoding and the ingest
/// calls share the machine.
fn background_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    super::gate::own_pool(&POOL, "checkpoint", (cores / 2).max(1))
}

/// A checkpoint file as the pieces it is written from: the file header,
/// each section's header and stored bytes, the end mark. The pieces are
/// written one after the other ([`CheckpointFile::write_to`]) and never
/// gathered into one buffer, which would be another file's worth of fresh
/// memory (for the kernel to zero) and a copy of it.
pub(crate) struct CheckpointFile {
    pieces: Vec<Vec<u8>>,
}

impl CheckpointFile {
    /// The file's length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.pieces.iter().map(|p| p.len() as u64).sum()
    }

    /// Writes the file's bytes to `out`.
    pub(crate) fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        self.pieces.iter().try_for_each(|p| out.write_all(p))
    }

    /// The file's bytes in one buffer.
    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        self.pieces.concat()
    }
}

/// The file of a snapshot made of `shards` and the entries of each
/// dedup shard (in shard order). Once `cancel` is set, sections are no
/// longer encoded and the result is an error.
fn encode_parts(
    shards: &[&ConversationShard],
    ids: impl IndexedParallelIterator<Item = Vec<u8>>,
    cancel: Option<&AtomicBool>,
) -> Result<CheckpointFile> {
    let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
    // Each section is compressed as soon as it is encoded, by the thread
    // that encoded it, so that the raw snapshot (several times the file's
    // size) is never in memory whole; a thread encodes its sections into
    // one buffer and compresses them with one zstd context, so that fresh
    // memory is not faulted in (and zeroed by the kernel) for each.
    let mut sections: Vec<Result<Compressed>> = shards
        .par_iter()
        .enumerate()
        .map_init(SectionEncoder::new, |encoder, (i, s)| {
            if cancelled() {
                return Err(Error::data("checkpoint", "cancelled"));
            }
            encoder.section(KIND_SHARD, i, |raw| encode_shard(s, raw))
        })
        .collect();
    // Dedup sections are stored as they are.
    sections.extend(
        ids.enumerate()
            .map(|(i, raw)| {
                if cancelled() {
                    return Err(Error::data("checkpoint", "cancelled"));
                }
                Ok((KIND_DEDUP, i as u32, raw.len() as u64, raw))
            })
            .collect::<Vec<_>>(),
    );
    let mut pieces = Vec::with_capacity(2 * sections.len() + 2);
    let mut header = Vec::with_capacity(FILE_HEADER);
    header.extend_from_slice(MAGIC);
    header.put_u32(CHECKPOINT_FORMAT);
    header.put_u32(sections.len() as u32);
    let crc = crc32fast::hash(&header);
    header.put_u32(crc);
    pieces.push(header);
    for section in sections {
        let (kind, index, raw_len, stored) = section?;
        let mut header = Vec::with_capacity(SECTION_HEADER);
        header.put_u32(kind);
        header.put_u32(index);
        header.put_u64(raw_len);
        header.put_u64(stored.len() as u64);
        header.put_u32(crc32fast::hash(&stored));
        let crc = crc32fast::hash(&header);
        header.put_u32(crc);
        pieces.push(header);
        pieces.push(stored);
    }
    pieces.push(END.to_vec());
    Ok(CheckpointFile { pieces })
}

/// One thread's means of producing compressed sections: a buffer the raw
/// bytes of each are encoded into and a zstd context, both reused.
struct SectionEncoder {
    raw: Vec<u8>,
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl SectionEncoder {
    fn new() -> Self {
        Self {
            raw: Vec::new(),
            zstd: None,
        }
    }

    /// The section `encode` writes, compressed.
    fn section(
        &mut self,
        kind: u32,
        index: usize,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Compressed> {
        self.raw.clear();
        encode(&mut self.raw);
        let zstd = match &mut self.zstd {
            Some(zstd) => zstd,
            None => self
                .zstd
                .insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(zstd_error)?),
        };
        let stored = zstd.compress(&self.raw).map_err(zstd_error)?;
        Ok((kind, index as u32, self.raw.len() as u64, stored))
    }
}

fn zstd_error(e: std::io::Error) -> Error {
    Error::data_from("checkpoint", e)
}

/// A string count, each string's length (`u32::MAX` for none), then
/// their bytes; `strings` is walked twice instead of gathering the bytes
/// in a buffer of their own.
fn put_arena(
    out: &mut Vec<u8>,
    strings: impl ExactSizeIterator<Item = Option<impl AsRef<[u8]>>> + Clone,
) {
    out.put_u64(strings.len() as u64);
    out.reserve(strings.len() * 4);
    let mut total = 0usize;
    for s in strings.clone() {
        let len = s.map_or(u32::MAX, |s| {
            total += s.as_ref().len();
            s.as_ref().len() as u32
        });
        out.put_u32(len);
    }
    out.put_u64(total as u64);
    out.reserve(total);
    for s in strings.flatten() {
        out.extend_from_slice(s.as_ref());
    }
}

fn put_interner(out: &mut Vec<u8>, interner: &Interner) {
    let arena = interner.arena();
    put_arena(
        out,
        (0..arena.len() as u32).map(|i| Some(arena.get_bytes(i))),
    );
}

fn encode_shard(s: &ConversationShard, out: &mut Vec<u8>) {
    let n = s.len();
    out.put_u64(n as u64);
    put_interner(out, &s.bots);
    out.put_u32s(&s.bot);
    put_arena(
        out,
        (0..n as u32).map(|c| Some(s.conversation_id.get_bytes(c))),
    );
    out.put_i64s(&s.start);
    out.put_i64s(&s.end);
    put_arena(
        out,
        // Engines read every id: a first event is never unknown here
        // (batch jobs, which may not read them, are not checkpointed).
        (0..n).map(|c| {
            let i = s.first_id_of(c);
            Some(if (i as usize) < s.first_event_ids.len() {
                s.first_event_ids.get_bytes(i)
            } else {
                &[][..]
            })
        }),
    );
    out.put_u32s(&s.messages_column());
    for (interner, attribute) in s.interners.iter().zip(Attribute::ALL) {
        put_interner(out, interner);
        out.put_u32s(&s.attribute_column(attribute));
    }
    // Transitions, grouped by conversation, each group in list order.
    let t = &s.transitions;
    let mut counts = Vec::with_capacity(n);
    let mut order: Vec<u32> = Vec::with_capacity(t.timestamp.len());
    for c in 0..n {
        let before = order.len();
        order.extend(s.transition_positions(c));
        counts.push((order.len() - before) as u32);
    }
    out.put_u64(order.len() as u64);
    out.put_u32s(&counts);
    out.reserve(order.len() * 8);
    for &i in &order {
        out.extend_from_slice(&t.timestamp[i as usize].to_le_bytes());
    }
    put_arena(out, order.iter().map(|&i| Some(t.event_id.get_bytes(i))));
    put_arena(
        out,
        order.iter().map(|&i| {
            let m = t.message_id[i as usize];
            (m != NULL_SYM).then(|| t.message_ids.get_bytes(m))
        }),
    );
    for steps in &t.steps {
        out.reserve(order.len() * 4);
        for &i in &order {
            out.put_u32(steps[i as usize]);
        }
    }
    put_interner(out, &t.step_names);
}

/// A dedup shard's section: its entries, in the order given.
fn encode_ids<'a>(entries: impl ExactSizeIterator<Item = &'a IdEntry>) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + entries.len() * ID_ROW);
    out.put_u64(entries.len() as u64);
    for e in entries {
        out.put_u64(e.hash[0]);
        out.put_u64(e.hash[1]);
        out.put_u64(e.owner);
    }
    out
}

/// Where a checkpoint is read from: a file, read section by section so
/// that the whole compressed file is never in memory at once, or bytes.
pub(crate) trait Source: Sync {
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// Replaces the contents of `buf` with the `len` bytes at `offset`
    /// (the caller checked that they are within [`Source::len`]).
    fn read_at(&self, offset: u64, len: usize, buf: &mut Vec<u8>, context: &str) -> Result<()>;
}

impl Source for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_at(&self, offset: u64, len: usize, buf: &mut Vec<u8>, context: &str) -> Result<()> {
        let start =
            usize::try_from(offset).map_err(|_| Error::data(context, "implausible offset"))?;
        let bytes = self
            .get(start..start.saturating_add(len))
            .ok_or_else(|| Error::data(context, "truncated"))?;
        buf.clear();
        buf.extend_from_slice(bytes);
        Ok(())
    }
}

/// A checkpoint file of known length.
pub(crate) struct FileSource<'a> {
    pub path: &'a std::path::Path,
    pub len: u64,
}

impl Source for FileSource<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, len: usize, buf: &mut Vec<u8>, context: &str) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        // A file per read: sections are read from several threads, and a
        // shared cursor would need a lock (or pread, which is not portable).
        let err = |e: std::io::Error| Error::data_from(context, e);
        let mut file = std::fs::File::open(self.path).map_err(err)?;
        file.seek(SeekFrom::Start(offset)).map_err(err)?;
        buf.clear();
        buf.reserve(len);
        file.take(len as u64).read_to_end(buf).map_err(err)?;
        if buf.len() != len {
            return Err(Error::data(context, "truncated"));
        }
        Ok(())
    }
}

/// A section's header, as read from the file.
struct Section {
    kind: u32,
    index: u32,
    raw_len: u64,
    /// Where its stored bytes are, and how many.
    offset: u64,
    stored_len: usize,
    crc: u32,
}

/// Reused buffers of one decoding thread: a section's stored bytes and
/// its decompressed bytes. Fresh memory is costly (every page is zeroed
/// on first touch, and a VM may have handed it back to its host): reusing
/// these keeps a load from touching the file's size and the snapshot's raw
/// size in temporary memory on top of the store it builds.
#[derive(Default)]
struct Scratch {
    stored: Vec<u8>,
    raw: Vec<u8>,
    /// A dedup section's entries, as stored and as ordered for insertion.
    ids: Vec<IdEntry>,
    ordered_ids: Vec<IdEntry>,
    /// A zstd context for one-shot decoding, made on first use.
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

/// The most raw bytes per stored byte for which a section is decoded in one
/// call into a buffer sized from its header (the 10M-event checkpoint's
/// sections are 1.2–2.7); a section compressed further (a crafted header, or
/// columns of one repeated value) is decoded as a stream, its buffer grown
/// as it fills.
const ONE_SHOT_RATIO: usize = 64;

/// Loads the snapshot in `bytes` (the file `context`) into `store`, which
/// must be empty.
#[cfg(test)]
pub(crate) fn decode_into(bytes: &[u8], context: &str, store: &Store) -> Result<()> {
    load(bytes, context, store)
}

/// Loads the snapshot in `source` (the file `context`) into `store`, which
/// must be empty. Sections are read, checked and decoded in parallel.
pub(crate) fn load(source: &(impl Source + ?Sized), context: &str, store: &Store) -> Result<()> {
    let err = |reason: String| Error::data(context, reason);
    let mut buf = Vec::new();
    let file_len = source.len();
    if file_len < FILE_HEADER as u64 + END.len() as u64 {
        return Err(err("not a convostat checkpoint (too short)".into()));
    }
    source.read_at(0, FILE_HEADER, &mut buf, context)?;
    let mut r = Reader::new(&buf, context);
    if r.take(8).ok() != Some(&MAGIC[..]) {
        return Err(r.error("not a convostat checkpoint"));
    }
    let format = r.u32()?;
    let count = r.u32()?;
    if crc32fast::hash(&buf[..16]) != r.u32()? {
        return Err(err("the checkpoint header fails its checksum".into()));
    }
    let dedup_kind = match format {
        CHECKPOINT_FORMAT => KIND_DEDUP,
        FORMAT_OWNER_ORDINALS => KIND_DEDUP_ORDINALS,
        _ => {
            return Err(err(format!(
                "checkpoint format {format} is not supported (this build reads \
                 {FORMAT_OWNER_ORDINALS} and {CHECKPOINT_FORMAT})"
            )))
        }
    };
    if count as usize != 2 * CONVERSATION_SHARDS {
        return Err(err(format!(
            "{count} sections, expected {}",
            2 * CONVERSATION_SHARDS
        )));
    }
    let mut sections = Vec::with_capacity(count as usize);
    let mut offset = FILE_HEADER as u64;
    for _ in 0..count {
        if file_len - offset < SECTION_HEADER as u64 {
            return Err(err(format!(
                "truncated: a section header at offset {offset}"
            )));
        }
        source.read_at(offset, SECTION_HEADER, &mut buf, context)?;
        let mut h = Reader::new(&buf, context);
        let (kind, index, raw_len, stored_len, crc, header_crc) =
            (h.u32()?, h.u32()?, h.u64()?, h.u64()?, h.u32()?, h.u32()?);
        if crc32fast::hash(&buf[..28]) != header_crc {
            return Err(err(format!(
                "a section header fails its checksum at offset {offset}"
            )));
        }
        offset += SECTION_HEADER as u64;
        if stored_len > file_len - offset {
            return Err(err(format!(
                "truncated: section {kind}/{index} wants {stored_len} bytes at offset {offset}"
            )));
        }
        sections.push(Section {
            kind,
            index,
            raw_len,
            offset,
            stored_len: stored_len as usize,
            crc,
        });
        offset += stored_len;
    }
    if file_len - offset != 8 {
        return Err(err("the checkpoint end marker is missing".into()));
    }
    source.read_at(offset, 8, &mut buf, context)?;
    if buf[..] != END[..] {
        return Err(err("the checkpoint end marker is missing".into()));
    }
    let expected = |s: &Section, i: usize| {
        let (kind, index) = if i < CONVERSATION_SHARDS {
            (KIND_SHARD, i)
        } else {
            (dedup_kind, i - CONVERSATION_SHARDS)
        };
        s.kind == kind && s.index as usize == index
    };
    if !sections.iter().enumerate().all(|(i, s)| expected(s, i)) {
        return Err(err("sections are not in the expected order".into()));
    }
    let (shard_sections, id_sections) = sections.split_at(CONVERSATION_SHARDS);
    let shards: Vec<ConversationShard> = shard_sections
        .par_iter()
        .map_init(Scratch::default, |scratch, s| {
            decode_shard(read_section(source, s, scratch, context)?, context)
        })
        .collect::<Result<_>>()?;
    // Format 1's owners by ordinal: the key hashes of all conversations
    // in order.
    let owners: Vec<u64> = match dedup_kind {
        KIND_DEDUP_ORDINALS => shards
            .iter()
            .flat_map(|s| s.key_hash.iter().copied())
            .collect(),
        _ => Vec::new(),
    };
    id_sections
        .par_iter()
        .map_init(Scratch::default, |scratch, s| -> Result<()> {
            let mut entries = std::mem::take(&mut scratch.ids);
            entries.clear();
            let raw = read_section(source, s, scratch, context)?;
            let mut r = Reader::new(raw, context);
            match s.kind {
                KIND_DEDUP => decode_ids(&mut r, &mut entries)?,
                _ => decode_id_ordinals(&mut r, &owners, &mut entries)?,
            }
            let shard = s.index as usize;
            if entries
                .iter()
                .any(|e| event_ids::shard_of(e.hash()) != shard)
            {
                return Err(r.error("an event id is in the wrong section"));
            }
            let table = id_table(&entries, &mut scratch.ordered_ids);
            scratch.ids = entries;
            store.event_ids().replace_shard(shard, table);
            Ok(())
        })
        .collect::<Result<()>>()?;
    for (s, shard) in shards.into_iter().enumerate() {
        store.set_shard(s, shard);
    }
    Ok(())
}

/// Reads section `s`, checks its checksum and decompresses it into
/// `scratch` if it is compressed; returns the raw bytes.
fn read_section<'s>(
    source: &(impl Source + ?Sized),
    s: &Section,
    scratch: &'s mut Scratch,
    context: &str,
) -> Result<&'s [u8]> {
    let err = |reason: String| Error::data(context, reason);
    source.read_at(s.offset, s.stored_len, &mut scratch.stored, context)?;
    if crc32fast::hash(&scratch.stored) != s.crc {
        return Err(err(format!(
            "section {}/{} fails its checksum",
            s.kind, s.index
        )));
    }
    let raw_len = usize::try_from(s.raw_len).map_err(|_| err("implausible length".into()))?;
    if s.kind == KIND_DEDUP {
        if raw_len != s.stored_len {
            return Err(err(format!(
                "section {}/{} is stored as is but states another length",
                s.kind, s.index
            )));
        }
        return Ok(&scratch.stored);
    }
    let damaged = |e: std::io::Error| err(format!("section {}/{}: {e}", s.kind, s.index));
    let out = &mut scratch.raw;
    out.clear();
    if raw_len <= s.stored_len.saturating_mul(ONE_SHOT_RATIO) {
        // Decoded at once into the reused buffer, sized by the header
        // (bounded by the stored bytes; a size the allocator refuses is a
        // data error, not an abort): no copy out of a stream's window, no
        // growing.
        out.try_reserve(raw_len).map_err(|_| {
            err(format!(
                "section {}/{} is implausibly long",
                s.kind, s.index
            ))
        })?;
        let decompressor = match &mut scratch.decompressor {
            Some(d) => d,
            None => scratch
                .decompressor
                .insert(zstd::bulk::Decompressor::new().map_err(damaged)?),
        };
        decompressor
            .decompress_to_buffer(&scratch.stored[..], out)
            .map_err(damaged)?;
    } else {
        // Compressed further than sections are: grown as decoded, never
        // sized by the header alone.
        out.try_reserve(s.stored_len.saturating_mul(ONE_SHOT_RATIO))
            .map_err(|_| {
                err(format!(
                    "section {}/{} is implausibly long",
                    s.kind, s.index
                ))
            })?;
        zstd::stream::read::Decoder::new(&scratch.stored[..])
            .map_err(damaged)?
            .take(s.raw_len.saturating_add(1))
            .read_to_end(out)
            .map_err(damaged)?;
    }
    if out.len() != raw_len {
        return Err(err(format!(
            "section {}/{} does not decode to its stated length",
            s.kind, s.index
        )));
    }
    Ok(out)
}

/// Reads an arena of `n` strings (none null).
fn arena(r: &mut Reader<'_>, n: Option<usize>) -> Result<StringArena> {
    let (lengths, bytes) = nullable(r, n)?;
    let mut ends = Vec::with_capacity(lengths.len());
    let mut end = 0usize;
    for len in lengths {
        let len = len.ok_or_else(|| r.error("a null where a string is required"))?;
        end = end.checked_add(len).ok_or_else(|| r.error("overflow"))?;
        ends.push(end);
    }
    StringArena::from_parts(bytes, ends).ok_or_else(|| r.error("a string table is inconsistent"))
}

/// Reads a string column: each string's length (`None` for null) and the
/// bytes, checked to add up.
fn nullable(r: &mut Reader<'_>, n: Option<usize>) -> Result<(Vec<Option<usize>>, Vec<u8>)> {
    let count = r.count(4)?;
    if n.is_some_and(|n| n != count) {
        return Err(r.error("a string column has the wrong length"));
    }
    let lengths: Vec<Option<usize>> = r
        .u32s(count)?
        .into_iter()
        .map(|l| (l != u32::MAX).then_some(l as usize))
        .collect();
    let total = r.count(1)?;
    let sum = lengths
        .iter()
        .flatten()
        .try_fold(0usize, |a, &l| a.checked_add(l));
    if sum != Some(total) {
        return Err(r.error("string lengths do not add up"));
    }
    Ok((lengths, r.take(total)?.to_vec()))
}

fn interner(r: &mut Reader<'_>) -> Result<Interner> {
    Ok(Interner::from_arena(arena(r, None)?))
}

/// Checks that every symbol is in `table` (or null when allowed).
fn check_syms(r: &Reader<'_>, syms: &[u32], table: usize, null_ok: bool) -> Result<()> {
    if syms
        .iter()
        .all(|&s| (s as usize) < table || (null_ok && s == NULL_SYM))
    {
        Ok(())
    } else {
        Err(r.error("a symbol is out of range"))
    }
}

fn decode_shard(raw: &[u8], context: &str) -> Result<ConversationShard> {
    let mut r = Reader::new(raw, context);
    let n = r.count(4 * 8)?;
    let mut s = ConversationShard::default();
    s.bots = interner(&mut r)?;
    s.bot = r.u32s(n)?;
    check_syms(&r, &s.bot, s.bots.len(), false)?;
    s.conversation_id = arena(&mut r, Some(n))?;
    s.start = r.i64s(n)?;
    s.end = r.i64s(n)?;
    s.first_event_ids = arena(&mut r, Some(n))?;
    s.first_event_id = (0..n as u32).collect();
    s.num_messages = r.u32s(n)?;
    for (interner_slot, syms_slot) in s.interners.iter_mut().zip(&mut s.attributes) {
        *interner_slot = interner(&mut r)?;
        *syms_slot = r.u32s(n)?;
        check_syms(&r, syms_slot, interner_slot.len(), true)?;
    }
    let n_tr = r.count(8)?;
    let counts = r.u32s(n)?;
    let sum = counts
        .iter()
        .try_fold(0usize, |a, &c| a.checked_add(c as usize));
    if sum != Some(n_tr) {
        return Err(r.error("transition counts do not add up"));
    }
    let t = &mut s.transitions;
    t.timestamp = r.i64s(n_tr)?;
    t.event_id = arena(&mut r, Some(n_tr))?;
    let (lengths, bytes) = nullable(&mut r, Some(n_tr))?;
    let mut ends = Vec::new();
    let mut end = 0usize;
    t.message_id = lengths
        .iter()
        .map(|l| match l {
            Some(l) => {
                end += l; // bounded by `nullable`'s sum check
                ends.push(end);
                (ends.len() - 1) as u32
            }
            None => NULL_SYM,
        })
        .collect();
    t.message_ids = StringArena::from_parts(bytes, ends)
        .ok_or_else(|| r.error("a string table is inconsistent"))?;
    let mut steps: [Vec<u32>; 4] = Default::default();
    for column in &mut steps {
        *column = r.u32s(n_tr)?;
    }
    t.step_names = interner(&mut r)?;
    for column in &steps {
        check_syms(&r, column, t.step_names.len(), true)?;
    }
    t.steps = steps;
    r.finish()?;
    debug_assert_eq!(Attribute::COUNT, s.attributes.len());
    s.rebuild(&counts);
    Ok(s)
}

/// Bits of a table position that [`id_table`] orders entries by before
/// inserting them: 4096 runs, each filling a narrow band of the table, so
/// that inserts hit cache lines in turn instead of at random. Measured on
/// the 10M-event checkpoint of format 1: inserting in stored order (by
/// owner) spent ~20% of a reopen's CPU in cache misses of 6 MB tables.
/// Format 2 stores entries in the order of the table they came from,
/// whose size may differ from the new one's (after `retain`).
const ID_ORDER_BITS: u32 = 12;

/// A dedup section's entries (format 2), appended to `entries`.
fn decode_ids(r: &mut Reader<'_>, entries: &mut Vec<IdEntry>) -> Result<()> {
    let n = r.count(ID_ROW)?;
    let rows = r.take(n * ID_ROW)?;
    r.finish()?;
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
    entries.reserve(n);
    entries.extend(rows.chunks_exact(ID_ROW).map(|row| IdEntry {
        hash: [word(&row[..8]), word(&row[8..16])],
        owner: word(&row[16..]),
    }));
    Ok(())
}

/// A dedup section's entries in format 1 (ordinal deltas into `owners`,
/// low and high hash words, as columns), appended to `entries`.
fn decode_id_ordinals(
    r: &mut Reader<'_>,
    owners: &[u64],
    entries: &mut Vec<IdEntry>,
) -> Result<()> {
    let n = r.count(20)?;
    let deltas = r.take(n * 4)?;
    let lo = r.take(n * 8)?;
    let hi = r.take(n * 8)?;
    r.finish()?;
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
    entries.reserve(n);
    let mut ordinal = 0u32;
    for ((delta, lo), hi) in deltas
        .chunks_exact(4)
        .zip(lo.chunks_exact(8))
        .zip(hi.chunks_exact(8))
    {
        ordinal =
            ordinal.wrapping_add(u32::from_le_bytes([delta[0], delta[1], delta[2], delta[3]]));
        let owner = match ordinal {
            NO_OWNER => 0,
            o => *owners
                .get(o as usize)
                .ok_or_else(|| r.error("an event id's owner is out of range"))?,
        };
        entries.push(IdEntry {
            hash: [word(lo), word(hi)],
            owner,
        });
    }
    Ok(())
}

/// A dedup shard's table of `entries` (distinct, as a checkpoint writes
/// them from a set), with `ordered` as reused scratch space.
fn id_table(entries: &[IdEntry], ordered: &mut Vec<IdEntry>) -> HashTable<IdEntry> {
    let mut table = HashTable::with_capacity(entries.len());
    // The table's bucket count: hashbrown keeps it a power of two at
    // least 8/7 of the capacity; a wrong guess only costs locality.
    let buckets = (table.capacity().max(1) * 8 / 7 + 1).next_power_of_two() as u64;
    let bits = buckets.trailing_zeros();
    let shift = bits.saturating_sub(ID_ORDER_BITS);
    let band = |e: &IdEntry| ((e.hash[0] & (buckets - 1)) >> shift) as usize;
    // Counting sort by band.
    let mut starts = vec![0usize; (1 << ID_ORDER_BITS) + 1];
    for e in entries {
        starts[band(e) + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    ordered.clear();
    ordered.resize(entries.len(), IdEntry::new(0, 0));
    for e in entries {
        let slot = &mut starts[band(e)];
        ordered[*slot] = *e;
        *slot += 1;
    }
    for &e in ordered.iter() {
        // A crafted duplicate would only be unreachable, never unsound.
        table.insert_unique(e.hash[0], e, |e| e.hash[0]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::events_to_columns;
    use crate::schema::Event;
    use crate::store::{conversation_hash, StoreOptions};

    fn store_of(events: &[Event]) -> Store {
        let store = Store::new(StoreOptions::default());
        let cols = events_to_columns(events);
        store.apply(&cols);
        store
    }

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| Event {
                event_id: format!("e{i}"),
                timestamp: (i as i64 * 7919) % 1000,
                bot_id: format!("b{}", i % 3),
                conversation_id: format!("conversation-with-a-long-id-{}", i % 17),
                event_type: ["message", "transition", "other"][i % 3].into(),
                channel_type: (i % 4 != 0).then(|| format!("ch{}", i % 5)),
                message_id: (i % 2 == 0).then(|| format!("m{i}")),
                from_step_id: Some(format!("s{}", i % 6)),
                ..Default::default()
            })
            .collect()
    }

    /// Everything a conversation answers with, by key.
    fn summary(store: &Store, bot: &str, conversation: &str) -> Option<String> {
        let hash = conversation_hash(bot, conversation);
        let shard = store.read_shard(hash);
        let c = shard.find(hash, bot, conversation)?;
        let mut transitions: Vec<String> =
            shard.transitions_of(c).map(|t| format!("{t:?}")).collect();
        transitions.sort();
        Some(format!(
            "{} {} {} {:?} {:?}",
            shard.start[c],
            shard.end[c],
            shard.messages_of(c),
            shard.attribute(c, Attribute::ChannelType),
            transitions
        ))
    }

    #[test]
    fn a_snapshot_loads_back_the_same_store() {
        for n in [0, 1, 255, 256, 257, 1000] {
            let all = events(n);
            let store = store_of(&all);
            let file = encode(&store).unwrap();
            let bytes = file.to_vec();
            assert_eq!(file.len(), bytes.len() as u64);
            let loaded = Store::new(StoreOptions::default());
            decode_into(&bytes, "ckpt", &loaded).unwrap();
            assert_eq!(loaded.conversations(), store.conversations(), "{n}");
            assert_eq!(loaded.distinct_events(), n);
            for e in &all {
                assert_eq!(
                    summary(&loaded, &e.bot_id, &e.conversation_id),
                    summary(&store, &e.bot_id, &e.conversation_id)
                );
            }
            // Dedup entries came back with their owners.
            let again = store_of(&[]);
            decode_into(&bytes, "ckpt", &again).unwrap();
            let retained = again.retain(500);
            let reference = store_of(&all);
            assert_eq!(retained, reference.retain(500), "{n}");
            assert_eq!(again.distinct_events(), reference.distinct_events());
        }
    }

    /// A checkpoint of format 1 (dedup owners as ordinals, written by
    /// builds before format 2) of `events(300)` still loads: the same
    /// conversations, and dedup entries with their owners.
    #[test]
    fn a_checkpoint_of_format_1_still_loads() {
        let bytes = include_bytes!("../../fixtures/checkpoint/format-1.ckpt");
        assert_eq!(bytes[8..12], FORMAT_OWNER_ORDINALS.to_le_bytes());
        let all = events(300);
        let store = store_of(&all);
        let loaded = Store::new(StoreOptions::default());
        decode_into(bytes, "ckpt", &loaded).unwrap();
        assert_eq!(loaded.conversations(), store.conversations());
        assert_eq!(loaded.distinct_events(), 300);
        for e in &all {
            assert_eq!(
                summary(&loaded, &e.bot_id, &e.conversation_id),
                summary(&store, &e.bot_id, &e.conversation_id)
            );
        }
        assert_eq!(loaded.retain(500), store.retain(500));
        assert_eq!(loaded.distinct_events(), store.distinct_events());
        // Written again, it is format 2 and loads the same.
        let again = encode(&loaded).unwrap().to_vec();
        assert_eq!(again[8..12], CHECKPOINT_FORMAT.to_le_bytes());
        let reloaded = Store::new(StoreOptions::default());
        decode_into(&again, "ckpt", &reloaded).unwrap();
        assert_eq!(reloaded.distinct_events(), store.distinct_events());
        assert_eq!(reloaded.retain(900), store.retain(900));
        // A format this build does not know is an error naming it.
        let mut future = bytes.to_vec();
        future[8..12].copy_from_slice(&3u32.to_le_bytes());
        let crc = crc32fast::hash(&future[..16]);
        future[16..20].copy_from_slice(&crc.to_le_bytes());
        let err = decode_into(&future, "ckpt", &Store::new(StoreOptions::default()));
        let err = err.unwrap_err().to_string();
        assert!(err.contains("ckpt") && err.contains("format 3"), "{err}");
    }

    #[test]
    fn a_copy_encodes_to_the_bytes_of_the_store_it_was_taken_of() {
        for n in [0, 1, 257, 1000] {
            let store = store_of(&events(n));
            let copy = StoreCopy::of(&store);
            // Changes after the copy are not in it.
            store.apply(&events_to_columns(&events(n + 40)[n..]));
            let copied = copy.encode(&AtomicBool::new(false)).unwrap().unwrap();
            let copied = copied.to_vec();
            assert_eq!(
                copied,
                encode(&store_of(&events(n))).unwrap().to_vec(),
                "{n}"
            );
            assert_ne!(copied, encode(&store).unwrap().to_vec(), "{n}");
        }
    }

    #[test]
    fn a_cancelled_copy_encodes_nothing() {
        let store = store_of(&events(1000));
        let copy = StoreCopy::of(&store);
        assert!(copy.encode(&AtomicBool::new(true)).unwrap().is_none());
    }

    #[test]
    fn a_snapshot_file_loads_section_by_section() {
        let all = events(1000);
        let store = store_of(&all);
        let bytes = encode(&store).unwrap().to_vec();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.ckpt");
        std::fs::write(&path, &bytes).unwrap();
        let loaded = Store::new(StoreOptions::default());
        let source = FileSource {
            path: &path,
            len: bytes.len() as u64,
        };
        load(&source, "ckpt", &loaded).unwrap();
        assert_eq!(loaded.distinct_events(), 1000);
        for e in &all {
            assert_eq!(
                summary(&loaded, &e.bot_id, &e.conversation_id),
                summary(&store, &e.bot_id, &e.conversation_id)
            );
        }
        // A file shorter than its sections say is an error naming it.
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        let source = FileSource {
            path: &path,
            len: bytes.len() as u64 - 100,
        };
        let err = load(&source, "ckpt", &Store::new(StoreOptions::default())).unwrap_err();
        assert!(err.to_string().contains("ckpt"), "{err}");
    }

    #[test]
    fn a_cut_or_damaged_snapshot_is_an_error() {
        let bytes = encode(&store_of(&events(50))).unwrap().to_vec();
        for cut in [0, 7, 20, bytes.len() / 2, bytes.len() - 1] {
            let err = decode_into(&bytes[..cut], "ckpt", &Store::new(StoreOptions::default()));
            assert!(
                err.unwrap_err().to_string().contains("ckpt"),
                "cut at {cut}"
            );
        }
        for at in (0..bytes.len()).step_by(41) {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            let err = decode_into(&damaged, "ckpt", &Store::new(StoreOptions::default()));
            assert!(err.is_err(), "flip at {at}");
        }
    }

    /// The header of a section of `kind` stating `raw_len` raw bytes, whose
    /// stored bytes are the whole source `stored`.
    fn whole_source(kind: u32, raw_len: usize, stored: &[u8]) -> Section {
        Section {
            kind,
            index: 0,
            raw_len: raw_len as u64,
            offset: 0,
            stored_len: stored.len(),
            crc: crc32fast::hash(stored),
        }
    }

    /// A section is decoded whole whether it is decoded in one call (as
    /// compressed as sections are) or as a stream (compressed further than
    /// [`ONE_SHOT_RATIO`]); a header claiming more or fewer raw bytes than
    /// the frame holds is an error either way.
    #[test]
    fn sections_decode_in_one_call_or_as_a_stream_and_lengths_are_checked() {
        // Pseudo-random small numbers, as compressible as a section's
        // columns (about 2:1), and one repeated byte (far beyond 64:1).
        let mut x = 0x9e37_79b9_u32;
        let varied: Vec<u8> = (0..200_000)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x % 5000).to_le_bytes()
            })
            .collect();
        let repeated = vec![7u8; 1 << 20];
        for (raw, one_shot) in [(varied, true), (repeated, false)] {
            let stored = zstd::bulk::compress(&raw, ZSTD_LEVEL).unwrap();
            assert_eq!(raw.len() <= stored.len() * ONE_SHOT_RATIO, one_shot);
            let section = |raw_len: usize| whole_source(KIND_SHARD, raw_len, &stored);
            let mut scratch = Scratch::default();
            let read = read_section(&stored[..], &section(raw.len()), &mut scratch, "ckpt");
            assert_eq!(read.unwrap(), &raw[..], "one shot: {one_shot}");
            for wrong in [raw.len() - 1, raw.len() + 1] {
                let read = read_section(&stored[..], &section(wrong), &mut scratch, "ckpt");
                let err = read.map(<[u8]>::len).unwrap_err();
                assert!(err.to_string().contains("ckpt"), "{one_shot} {wrong}");
            }
        }
        // A dedup section is stored as it is, its two lengths equal.
        let rows = encode_ids([IdEntry::new(7 << 64 | 3, 11)].iter());
        assert_eq!(rows.len(), 8 + ID_ROW);
        let section = |raw_len: usize| whole_source(KIND_DEDUP, raw_len, &rows);
        let mut scratch = Scratch::default();
        let read = read_section(&rows[..], &section(rows.len()), &mut scratch, "ckpt");
        assert_eq!(read.unwrap(), &rows[..]);
        let read = read_section(&rows[..], &section(rows.len() + 1), &mut scratch, "ckpt");
        assert!(read.is_err());
        let mut entries = Vec::new();
        decode_ids(&mut Reader::new(&rows, "ckpt"), &mut entries).unwrap();
        assert_eq!(entries, [IdEntry::new(7 << 64 | 3, 11)]);
        let cut = decode_ids(
            &mut Reader::new(&rows[..rows.len() - 1], "ckpt"),
            &mut entries,
        );
        assert!(cut.is_err());
    }
}
