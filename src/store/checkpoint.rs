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
//!            | stored bytes: zstd (level 1) of raw_len bytes
//! ```
//!
//! One section per conversation shard (kind 1) and per dedup shard
//! (kind 2), compressed and decompressed in parallel. A conversation shard
//! stores its columns whole (little-endian vectors, strings as a length
//! vector and one byte blob), with the first event id of each conversation
//! only (the live arena also holds replaced ones) and the transitions
//! grouped by conversation; what can be recomputed (key hashes, the
//! index, interner tables, transition links) is rebuilt on load. A dedup
//! shard stores its 16-byte id hashes and, instead of each owner's 8-byte
//! key hash, the owner's number in the snapshot's conversation order, as
//! deltas of the entries sorted by it (about one byte compressed).
//!
//! Every length read is checked against what is left, every symbol
//! against its table, and every section against its checksum, so that a
//! damaged file is a data error naming it, never a panic.

use std::io::Read;

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
pub(crate) const CHECKPOINT_FORMAT: u32 = 1;
const KIND_SHARD: u32 = 1;
const KIND_DEDUP: u32 = 2;
const SECTION_HEADER: usize = 32;
/// zstd level: 1 is the fastest; higher levels save little on this data
/// (ids are random) and cost checkpoint time.
const ZSTD_LEVEL: i32 = 1;
/// Ordinal of an id whose owner was not found (cannot happen while the
/// store is quiescent; kept so that a race can never corrupt the file).
const NO_OWNER: u32 = u32::MAX;

/// A section ready to write: kind, index, raw length, stored bytes.
type Compressed = (u32, u32, u64, Vec<u8>);

/// The snapshot of `store`, as file bytes. The caller keeps the store
/// quiescent (no ingest between claim and fold) while this runs.
pub(crate) fn encode(store: &Store) -> Result<Vec<u8>> {
    let guards: Vec<_> = store.shards().iter().map(read).collect();
    let shards: Vec<&ConversationShard> = guards.iter().map(|g| &**g).collect();
    let mut offsets = Vec::with_capacity(shards.len());
    let mut total = 0u64;
    for s in &shards {
        offsets.push(total);
        total += s.len() as u64;
    }
    let mut raw: Vec<(u32, u32, Vec<u8>)> = shards
        .par_iter()
        .enumerate()
        .map(|(i, s)| (KIND_SHARD, i as u32, encode_shard(s)))
        .collect();
    let mut id_shards = Vec::new();
    store
        .event_ids()
        .for_each_shard(|i, table| id_shards.push((i, table.iter().copied().collect::<Vec<_>>())));
    let ordinal = |owner: u64| -> u32 {
        let s = super::shard_of(owner);
        match shards[s].position_of_hash(owner) {
            Some(c) => u32::try_from(offsets[s] + u64::from(c)).unwrap_or(NO_OWNER),
            None => NO_OWNER,
        }
    };
    raw.extend(
        id_shards
            .into_par_iter()
            .map(|(i, entries)| (KIND_DEDUP, i as u32, encode_ids(entries, &ordinal)))
            .collect::<Vec<_>>(),
    );
    drop(guards);
    let sections: Vec<Result<Compressed>> = raw
        .into_par_iter()
        .map(|(kind, index, bytes)| {
            let stored = zstd::bulk::compress(&bytes, ZSTD_LEVEL)
                .map_err(|e| Error::data_from("checkpoint", e))?;
            Ok((kind, index, bytes.len() as u64, stored))
        })
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.put_u32(CHECKPOINT_FORMAT);
    out.put_u32(sections.len() as u32);
    let crc = crc32fast::hash(&out);
    out.put_u32(crc);
    for section in sections {
        let (kind, index, raw_len, stored) = section?;
        let start = out.len();
        out.put_u32(kind);
        out.put_u32(index);
        out.put_u64(raw_len);
        out.put_u64(stored.len() as u64);
        out.put_u32(crc32fast::hash(&stored));
        let crc = crc32fast::hash(&out[start..]);
        out.put_u32(crc);
        out.extend_from_slice(&stored);
    }
    out.extend_from_slice(END);
    Ok(out)
}

fn put_arena(out: &mut Vec<u8>, strings: impl ExactSizeIterator<Item = Option<impl AsRef<[u8]>>>) {
    out.put_u64(strings.len() as u64);
    let mut bytes = Vec::new();
    let lengths: Vec<u32> = strings
        .map(|s| match s {
            Some(s) => {
                bytes.extend_from_slice(s.as_ref());
                s.as_ref().len() as u32
            }
            None => u32::MAX,
        })
        .collect();
    out.put_u32s(&lengths);
    out.put_u64(bytes.len() as u64);
    out.extend_from_slice(&bytes);
}

fn put_interner(out: &mut Vec<u8>, interner: &Interner) {
    let arena = interner.arena();
    put_arena(
        out,
        (0..arena.len() as u32).map(|i| Some(arena.get_bytes(i))),
    );
}

fn encode_shard(s: &ConversationShard) -> Vec<u8> {
    let n = s.len();
    let mut out = Vec::new();
    out.put_u64(n as u64);
    put_interner(&mut out, &s.bots);
    out.put_u32s(&s.bot);
    put_arena(
        &mut out,
        (0..n as u32).map(|c| Some(s.conversation_id.get_bytes(c))),
    );
    out.put_i64s(&s.start);
    out.put_i64s(&s.end);
    put_arena(
        &mut out,
        (0..n).map(|c| Some(s.first_event_ids.get_bytes(s.first_event_id[c]))),
    );
    out.put_u32s(&s.num_messages);
    for (interner, syms) in s.interners.iter().zip(&s.attributes) {
        put_interner(&mut out, interner);
        out.put_u32s(syms);
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
    let ts: Vec<i64> = order.iter().map(|&i| t.timestamp[i as usize]).collect();
    out.put_i64s(&ts);
    put_arena(
        &mut out,
        order.iter().map(|&i| Some(t.event_id.get_bytes(i))),
    );
    put_arena(
        &mut out,
        order.iter().map(|&i| {
            let m = t.message_id[i as usize];
            (m != NULL_SYM).then(|| t.message_ids.get_bytes(m))
        }),
    );
    for steps in &t.steps {
        let column: Vec<u32> = order.iter().map(|&i| steps[i as usize]).collect();
        out.put_u32s(&column);
    }
    put_interner(&mut out, &t.step_names);
    out
}

fn encode_ids(mut entries: Vec<IdEntry>, ordinal: &(impl Fn(u64) -> u32 + Sync)) -> Vec<u8> {
    let mut keyed: Vec<(u32, IdEntry)> = entries.drain(..).map(|e| (ordinal(e.owner), e)).collect();
    keyed.sort_unstable_by_key(|(o, e)| (*o, e.hash));
    let mut out = Vec::with_capacity(keyed.len() * 20 + 8);
    out.put_u64(keyed.len() as u64);
    let mut last = 0u32;
    let deltas: Vec<u32> = keyed
        .iter()
        .map(|&(o, _)| {
            let d = o.wrapping_sub(last);
            last = o;
            d
        })
        .collect();
    out.put_u32s(&deltas);
    let lo: Vec<u64> = keyed.iter().map(|(_, e)| e.hash[0]).collect();
    let hi: Vec<u64> = keyed.iter().map(|(_, e)| e.hash[1]).collect();
    out.put_u64s(&lo);
    out.put_u64s(&hi);
    out
}

/// One section as read from the file, still compressed.
struct Section<'a> {
    kind: u32,
    index: u32,
    raw_len: u64,
    stored: &'a [u8],
}

/// Loads the snapshot in `bytes` (the file `context`) into `store`, which
/// must be empty.
pub(crate) fn decode_into(bytes: &[u8], context: &str, store: &Store) -> Result<()> {
    let mut r = Reader::new(bytes, context);
    if r.take(8).ok() != Some(&MAGIC[..]) {
        return Err(r.error("not a convostat checkpoint"));
    }
    let format = r.u32()?;
    let count = r.u32()?;
    let crc = r.u32()?;
    if crc32fast::hash(&bytes[..16]) != crc {
        return Err(r.error("the checkpoint header fails its checksum"));
    }
    if format != CHECKPOINT_FORMAT {
        return Err(r.error(format!(
            "checkpoint format {format} is not supported (this build reads {CHECKPOINT_FORMAT})"
        )));
    }
    if count as usize != 2 * CONVERSATION_SHARDS {
        return Err(r.error(format!(
            "{count} sections, expected {}",
            2 * CONVERSATION_SHARDS
        )));
    }
    let mut sections = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let header = r.take(SECTION_HEADER)?;
        let mut h = Reader::new(header, context);
        let (kind, index, raw_len, stored_len, crc, header_crc) =
            (h.u32()?, h.u32()?, h.u64()?, h.u64()?, h.u32()?, h.u32()?);
        if crc32fast::hash(&header[..28]) != header_crc {
            return Err(r.error("a section header fails its checksum"));
        }
        let stored_len = usize::try_from(stored_len).map_err(|_| r.error("implausible length"))?;
        let stored = r.take(stored_len)?;
        if crc32fast::hash(stored) != crc {
            return Err(r.error(format!("section {kind}/{index} fails its checksum")));
        }
        sections.push(Section {
            kind,
            index,
            raw_len,
            stored,
        });
    }
    if r.take(8).ok() != Some(&END[..]) {
        return Err(r.error("the checkpoint end marker is missing"));
    }
    r.finish()?;
    let expected = |s: &Section<'_>, i: usize| {
        let (kind, index) = if i < CONVERSATION_SHARDS {
            (KIND_SHARD, i)
        } else {
            (KIND_DEDUP, i - CONVERSATION_SHARDS)
        };
        s.kind == kind && s.index as usize == index
    };
    if !sections.iter().enumerate().all(|(i, s)| expected(s, i)) {
        return Err(r.error("sections are not in the expected order"));
    }
    let (shard_sections, id_sections) = sections.split_at(CONVERSATION_SHARDS);
    let shards: Vec<ConversationShard> = shard_sections
        .par_iter()
        .map(|s| decode_shard(&decompress(s, context)?, context))
        .collect::<Result<_>>()?;
    // Owners by ordinal: the key hashes of all conversations in order.
    let owners: Vec<u64> = shards
        .iter()
        .flat_map(|s| s.key_hash.iter().copied())
        .collect();
    id_sections.par_iter().try_for_each(|s| -> Result<()> {
        let raw = decompress(s, context)?;
        let entries = decode_ids(&raw, context, &owners, s.index as usize)?;
        store.event_ids().load_shard(s.index as usize, &entries);
        Ok(())
    })?;
    for (slot, shard) in store.shards().iter().zip(shards) {
        *slot.write().unwrap_or_else(|p| p.into_inner()) = shard;
    }
    Ok(())
}

fn decompress(s: &Section<'_>, context: &str) -> Result<Vec<u8>> {
    let err = |reason: String| Error::data(context, reason);
    let raw_len = usize::try_from(s.raw_len).map_err(|_| err("implausible length".into()))?;
    let mut out = Vec::with_capacity(raw_len.min(s.stored.len().saturating_mul(8)));
    zstd::stream::read::Decoder::new(s.stored)
        .map_err(|e| err(format!("section {}/{}: {e}", s.kind, s.index)))?
        .take(s.raw_len)
        .read_to_end(&mut out)
        .map_err(|e| err(format!("section {}/{}: {e}", s.kind, s.index)))?;
    if out.len() != raw_len {
        return Err(err(format!("section {}/{} is short", s.kind, s.index)));
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

fn decode_ids(raw: &[u8], context: &str, owners: &[u64], shard: usize) -> Result<Vec<IdEntry>> {
    let mut r = Reader::new(raw, context);
    let n = r.count(20)?;
    let deltas = r.u32s(n)?;
    let lo = r.u64s(n)?;
    let hi = r.u64s(n)?;
    r.finish()?;
    let mut ordinal = 0u32;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        ordinal = ordinal.wrapping_add(deltas[i]);
        let owner = match ordinal {
            NO_OWNER => 0,
            o => *owners
                .get(o as usize)
                .ok_or_else(|| r.error("an event id's owner is out of range"))?,
        };
        let entry = IdEntry {
            hash: [lo[i], hi[i]],
            owner,
        };
        if event_ids::shard_of(entry.hash()) != shard {
            return Err(r.error("an event id is in the wrong section"));
        }
        out.push(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{events_to_batch, normalize, IngestMode, IngestReport, RowNumbers};
    use crate::schema::Event;
    use crate::store::{conversation_hash, StoreOptions};

    fn store_of(events: &[Event]) -> Store {
        let store = Store::new(StoreOptions::default());
        let batch = events_to_batch(events).unwrap();
        let cols = normalize(
            &batch,
            IngestMode::Strict,
            RowNumbers::From(1),
            &mut IngestReport::default(),
        )
        .unwrap();
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
            shard.num_messages[c],
            shard.attribute(c, Attribute::ChannelType),
            transitions
        ))
    }

    #[test]
    fn a_snapshot_loads_back_the_same_store() {
        for n in [0, 1, 255, 256, 257, 1000] {
            let all = events(n);
            let store = store_of(&all);
            let bytes = encode(&store).unwrap();
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

    #[test]
    fn a_cut_or_damaged_snapshot_is_an_error() {
        let bytes = encode(&store_of(&events(50))).unwrap();
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
}
