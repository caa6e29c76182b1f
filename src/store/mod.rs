//! Storage: the conversation table that queries scan, and the dedup set.
//!
//! # Design
//!
//! Events are not kept; what the four queries need of them is folded in as
//! they arrive (SPEC 2): one summary per conversation (start, end, message
//! count, first-event attributes), the transition events of each
//! conversation (for flow), and the hashes of ingested event ids (dedup).
//!
//! Conversations are split into [`CONVERSATION_SHARDS`] shards by the hash
//! of their key `(bot_id, conversation_id)`; each shard sits behind its own
//! `RwLock`, and is made the first time it is used (a flow over a file
//! reads one). A batch is applied in three steps:
//! 1. hash every row's event id and key (no lock held; a durable engine
//!    does it while the batch's log record is encoded);
//! 2. insert event-id hashes into the sharded [`EventIdSet`], one short
//!    lock per event-id shard touched (a large batch from two threads, each
//!    taking half of the shards), which decides the duplicates;
//! 3. for each conversation shard touched (in parallel with rayon), take its
//!    write lock once and fold that shard's rows in.
//!
//! A query takes each shard's read lock in turn, only while it scans that
//! shard (about 1/64 of the table), and merges per-shard partial results.
//! So readers never wait for a whole batch, writers never wait for a whole
//! query, and a query sees every conversation in exactly one state: a
//! conversation lives in one shard and is updated under that shard's lock.
//! A query that runs while a batch is applied may see some of the batch's
//! shards updated and others not yet — never a half-updated conversation.
//!
//! Input is validated before step 1 ([`crate::ingest`]), and nothing after
//! it can fail, so a rejected batch leaves the store as it was. Steps 1
//! ([`Store::hash_rows`]), 2 ([`Store::claim_hashed`]) and 3
//! ([`Store::fold`]) are separate calls so that a durable engine can log a
//! batch between 2 and 3, in claim order.
//!
//! **Retention** ([`Store::retain`]) rebuilds each shard without the
//! conversations that ended before a cut-off and removes their event ids
//! from the dedup set, which therefore records each id's owner (the
//! conversation's key hash): 8 more bytes an event in memory.
//!
//! # Durability (SPEC 9)
//!
//! A durable engine keeps a data directory ([`directory`]: lock, manifest,
//! recovery, checkpoint protocol) with a write-ahead log ([`wal`]: framed
//! records, group commit) whose ingest records are encoded by
//! [`ingest_record`], and checkpoints (`checkpoint`: a compact snapshot of
//! this store). `codec` holds the checked little-endian reader they use.
//! [`gate`] is the engine's gate between ingest calls and the operations
//! that hold the store still (checkpoints, retention).
//!
//! Crates, and why:
//! - **No general-purpose format for log records.** Format 1 of the
//!   directory logged Arrow IPC streams (the standard, self-describing form
//!   of a batch) compressed with zstd; encoding them cost more CPU than
//!   folding the rows into the store. The columnar encoding of
//!   [`ingest_record`] (per-column dictionaries, plain strings otherwise)
//!   is smaller than that (44 vs 51 bytes an event on the generated data)
//!   at a fraction of the CPU, and replay still goes back through the same
//!   normalisation as ingest.
//! - **crc32fast** for checksums: SIMD (PCLMULQDQ) CRC-32, many GB/s, tiny,
//!   and already in the registry cache of most Rust toolchains.
//! - **fs4** for the directory lock: `flock` (or `LockFileEx`) without
//!   libc, released by the kernel when the process dies, so a `kill -9`
//!   never leaves a stale lock. (`File::try_lock` is in std since 1.89;
//!   the crate's MSRV is 1.85.)
//! - **zstd** (level 1) for checkpoint sections: already built (parquet's
//!   zstd codec); it halves strings and transition columns and makes
//!   sorted owner deltas about a byte, which keeps a checkpoint near 30
//!   bytes an event, 16 of them the incompressible id hashes.
//!
//! The conversation index of a shard is not a `hashbrown` table (which the
//! interners and the dedup set use) but its own small open-addressing
//! table ([`conversation_index`]): on time-ordered input nearly every
//! lookup misses cache, and the fold asks for the slot of the row a few
//! rows ahead, which `hashbrown` cannot do. That made batch `conversations`
//! and `insights` on interleaved files about 7% faster.
//!
//! A key-value store (redb, fjall) was not used: the engine's state is a
//! few large columnar vectors, rebuilt in bulk; a B-tree of rows would be
//! both larger on disk and slower to load than one snapshot file.

mod checkpoint;
mod codec;
mod conversation_index;
pub(crate) mod directory;
mod event_ids;
pub(crate) mod gate;
pub(crate) mod ingest_record;
mod shard;
pub(crate) mod staged;
mod strings;
pub(crate) mod wal;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock, RwLockReadGuard};

use rayon::prelude::*;

pub(crate) use event_ids::{event_id_hash, EventIdSet};
pub(crate) use shard::{sym_at, ConversationShard};
pub(crate) use strings::{hash_str, Sym, NULL_SYM};

use crate::ingest::EventColumns;
use crate::schema::{EVENT_TYPE_MESSAGE, EVENT_TYPE_TRANSITION};

/// Number of conversation shards (a power of two). 64 keeps lock contention
/// between a handful of ingest and query threads low and splits work evenly
/// over rayon's threads, while each shard stays large enough that its fixed
/// costs (locks, interners) do not matter.
pub const CONVERSATION_SHARDS: usize = 64;

/// Rows folded per pass over the shards: bounds the per-shard row lists
/// of a huge batch. Measured with `convostat demo --events 2000000`
/// (2 threads): 2K-row windows ingest ~20% slower than 8K–128K, where the
/// window size makes no measurable difference; below that, the fixed cost
/// of a pass (a rayon split over 64 shards, one lock each) dominates.
const APPLY_WINDOW_ROWS: usize = 65_536;

/// Which events go through dedup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dedup {
    /// Every event (the engine: exact counts and ingest reports).
    All,
    /// Only events whose duplicates could change an answer: messages
    /// (message counts) and transitions (flow). A duplicate of any event
    /// changes neither a conversation's start, end nor attributes.
    Counted,
    /// None: for queries that read neither message counts nor transitions.
    Off,
}

/// What the store keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreOptions {
    pub dedup: Dedup,
    pub keep_transitions: bool,
    /// Fold a batch's shards in parallel. Off when the caller already runs
    /// several batches at once (batch jobs read row groups in parallel):
    /// nested parallelism there only adds contention on shard locks.
    pub parallel_apply: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            dedup: Dedup::All,
            keep_transitions: true,
            parallel_apply: true,
        }
    }
}

/// What [`Store::apply`] computes of every row of a batch before folding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowKeys<'a> {
    /// Conversation key hash ([`conversation_hash`]).
    pub key_hash: &'a [u64],
    /// Rows with the same number here have the same `bot_id` (numbers grow
    /// at each change of bot from row to row).
    pub bot_run: &'a [u32],
}

/// What [`Store::hash_rows`] computed of each row of a batch.
#[derive(Debug, Default)]
pub(crate) struct RowHashes {
    key_hash: Vec<u64>,
    bot_run: Vec<u32>,
    /// The event id's hash, for rows that go through dedup.
    id_hash: Vec<u128>,
    /// Whether the row goes through dedup ([`Dedup`]).
    candidate: Vec<bool>,
}

/// What [`Store::claim`] decided about each row of a batch.
#[derive(Debug, Default)]
pub(crate) struct Claimed {
    key_hash: Vec<u64>,
    bot_run: Vec<u32>,
    fresh: Vec<bool>,
    /// The rows' id hashes, and which rows were candidates for the dedup
    /// set, so that [`Store::unclaim`] can take back what it inserted.
    id_hash: Vec<u128>,
    candidate: Vec<bool>,
}

/// What [`Store::retain`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Retained {
    pub conversations: usize,
    pub events: usize,
}

/// Outcome of applying one batch.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Applied {
    pub ingested: u64,
    pub duplicates: u64,
}

impl Applied {
    /// Counts these rows in an ingest call's report.
    pub fn add_to(self, report: &mut crate::ingest::IngestReport) {
        report.rows_ingested += self.ingested;
        report.duplicates += self.duplicates;
    }
}

/// The conversation table and dedup set.
#[derive(Debug)]
pub(crate) struct Store {
    /// The conversation shards, each made the first time it is written or
    /// read ([`Store::shard`]). A shard holds a few kilobytes even empty
    /// (its interners and columns): making all of them at once wrote
    /// about 100 KB, a twentieth of a short `flow` process's page faults,
    /// which reads one shard.
    shards: Box<[OnceLock<Box<RwLock<ConversationShard>>>]>,
    /// Each shard's count of undecided conversations, copied whenever the
    /// shard is written: a batch job checks the total after every batch
    /// ([`Store::undecided_count`]), and reading it under the shards'
    /// locks made that thread wait on the other's fold (two thirds of a
    /// `conversations` job's context switches).
    undecided: Box<[AtomicUsize]>,
    event_ids: EventIdSet,
    options: StoreOptions,
}

/// Hash of a conversation key; also picks its shard.
#[inline]
pub(crate) fn conversation_hash(bot_id: &str, conversation_id: &str) -> u64 {
    conversation_hash_seeded(hash_str(bot_id), conversation_id)
}

/// [`conversation_hash`] with the bot's [`hash_str`] already computed.
#[inline]
fn conversation_hash_seeded(bot_hash: u64, conversation_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(conversation_id.as_bytes(), bot_hash)
}

#[inline]
pub(crate) fn shard_of(hash: u64) -> usize {
    (hash >> (64 - CONVERSATION_SHARDS.trailing_zeros())) as usize
}

impl Store {
    pub fn new(options: StoreOptions) -> Self {
        Self {
            shards: (0..CONVERSATION_SHARDS).map(|_| OnceLock::new()).collect(),
            undecided: (0..CONVERSATION_SHARDS)
                .map(|_| AtomicUsize::new(0))
                .collect(),
            event_ids: EventIdSet::default(),
            options,
        }
    }

    /// Folds validated columns in; cannot fail.
    pub fn apply(&self, cols: &EventColumns) -> Applied {
        let claimed = self.claim(cols);
        self.fold(cols, &claimed)
    }

    /// Steps 1 and 2 of applying a batch: hashes every row and decides,
    /// in the dedup set, which rows are new. The set then holds the new
    /// ids, so [`Store::fold`] must follow (a durable engine logs the batch
    /// between the two, in the order of the claims).
    pub fn claim(&self, cols: &EventColumns) -> Claimed {
        self.claim_hashed(self.hash_rows(cols))
    }

    /// Step 1 of applying a batch: the hashes of every row (no lock, no
    /// change to the store, so it can run before the batch's turn in the
    /// log, alongside its encoding).
    pub fn hash_rows(&self, cols: &EventColumns) -> RowHashes {
        let n = cols.len();
        // Rows of a batch mostly share a few bots: hash each bot once per
        // run of rows with the same bot, and number the runs, so that shards
        // can tell a row's bot is the previous row's without comparing it.
        let mut last_bot: Option<(&str, u64)> = None;
        let mut bot_run: Vec<u32> = Vec::with_capacity(n);
        let mut run = 0u32;
        let key_hash: Vec<u64> = (0..n)
            .map(|r| {
                let bot = cols.bot_id.value(r);
                let bot_hash = match last_bot {
                    Some((b, h)) if b == bot => h,
                    _ => {
                        let h = hash_str(bot);
                        last_bot = Some((bot, h));
                        run += 1;
                        h
                    }
                };
                bot_run.push(run);
                conversation_hash_seeded(bot_hash, cols.conversation_id.value(r))
            })
            .collect();
        let candidate: Vec<bool> = (0..n)
            .map(|r| match self.options.dedup {
                Dedup::All => true,
                Dedup::Counted => matches!(
                    cols.event_type.value(r),
                    EVENT_TYPE_MESSAGE | EVENT_TYPE_TRANSITION
                ),
                Dedup::Off => false,
            })
            .collect();
        let id_hash: Vec<u128> = (0..n)
            .map(|r| {
                if candidate[r] {
                    event_id_hash(cols.event_id.value(r))
                } else {
                    0
                }
            })
            .collect();
        RowHashes {
            key_hash,
            bot_run,
            id_hash,
            candidate,
        }
    }

    /// Step 2 of applying a batch: inserts the hashed rows' ids into the
    /// dedup set, which decides the new ones.
    pub fn claim_hashed(&self, hashes: RowHashes) -> Claimed {
        let RowHashes {
            key_hash,
            bot_run,
            id_hash,
            candidate,
        } = hashes;
        let mut fresh = self
            .event_ids
            .insert_all(&id_hash, &key_hash, |r| candidate[r]);
        for (f, &c) in fresh.iter_mut().zip(&candidate) {
            if !c {
                *f = true;
            }
        }
        Claimed {
            key_hash,
            bot_run,
            fresh,
            id_hash,
            candidate,
        }
    }

    /// Undoes [`Store::claim_hashed`] for `claims` (the last ones made,
    /// with no fold since): removes the ids they inserted into the dedup
    /// set, for a durable call whose record could not be written.
    pub fn unclaim(&self, claims: &[Claimed]) {
        for c in claims {
            let inserted = (0..c.fresh.len())
                .filter(|&r| c.candidate[r] && c.fresh[r])
                .map(|r| c.id_hash[r]);
            self.event_ids.remove(inserted);
        }
    }

    /// Step 3 of applying a batch: folds the rows [`Store::claim`] found
    /// new into the conversation shards; cannot fail.
    pub fn fold(&self, cols: &EventColumns, claimed: &Claimed) -> Applied {
        let n = cols.len();
        if n == 0 {
            return Applied::default();
        }
        let Claimed {
            key_hash,
            bot_run,
            fresh,
            ..
        } = claimed;
        let keys = RowKeys { key_hash, bot_run };
        // 3. Fold, shard by shard, one window of rows at a time.
        let mut by_shard: Vec<Vec<u32>> = vec![Vec::new(); CONVERSATION_SHARDS];
        let mut ingested = 0u64;
        let keep_transitions = self.options.keep_transitions;
        for window in (0..n).step_by(APPLY_WINDOW_ROWS) {
            by_shard.iter_mut().for_each(Vec::clear);
            for r in window..n.min(window + APPLY_WINDOW_ROWS) {
                if fresh[r] {
                    by_shard[shard_of(key_hash[r])].push(r as u32);
                    ingested += 1;
                }
            }
            let fold = |s: usize| {
                let rows = &by_shard[s];
                if !rows.is_empty() {
                    let mut shard = self.shard(s).write().unwrap_or_else(|p| p.into_inner());
                    shard.apply(cols, rows, keys, keep_transitions);
                    self.note_undecided(s, &shard);
                }
            };
            if self.options.parallel_apply {
                (0..CONVERSATION_SHARDS).into_par_iter().for_each(fold);
            } else {
                // Start at a shard that depends on the batch, so that
                // concurrent callers do not queue on the same locks.
                let start = (key_hash[window] as usize) % CONVERSATION_SHARDS;
                for i in 0..CONVERSATION_SHARDS {
                    fold((start + i) % CONVERSATION_SHARDS);
                }
            }
        }
        Applied {
            ingested,
            duplicates: n as u64 - ingested,
        }
    }

    /// The conversations whose first event is undecided because the ids of
    /// tied events were not read, reset for their events to be folded in
    /// again with ids (see `ConversationShard::take_undecided`).
    pub fn take_undecided(&self) -> Vec<(String, String)> {
        (0..CONVERSATION_SHARDS)
            .filter_map(|s| Some((s, self.made_shard(s)?)))
            .flat_map(|(s, shard)| {
                let mut shard = shard.write().unwrap_or_else(|p| p.into_inner());
                let taken = shard.take_undecided();
                self.note_undecided(s, &shard);
                taken
            })
            .collect()
    }

    /// How many conversations [`Store::take_undecided`] would return, as of
    /// the last write of each shard; waits on no lock.
    pub fn undecided_count(&self) -> usize {
        self.undecided
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum()
    }

    /// Records shard `s`'s count of undecided conversations (called with
    /// its write lock held, after every change).
    fn note_undecided(&self, s: usize, shard: &ConversationShard) {
        self.undecided[s].store(shard.undecided, Ordering::Relaxed);
    }

    /// Replaces shard `s` by `shard` (a shard loaded from a checkpoint).
    pub fn set_shard(&self, s: usize, shard: ConversationShard) {
        let mut slot = self.shard(s).write().unwrap_or_else(|p| p.into_inner());
        *slot = shard;
        self.note_undecided(s, &slot);
    }

    /// Drops the conversations whose last event is before `before` (µs),
    /// with their transitions and the ids of their events (so a late event
    /// of a dropped conversation is new again and starts a new
    /// conversation). Shards are rebuilt without them, so memory shrinks.
    pub fn retain(&self, before: i64) -> Retained {
        let dropped: Vec<(usize, Vec<u64>)> = (0..CONVERSATION_SHARDS)
            .into_par_iter()
            .filter_map(|s| Some((s, self.made_shard(s)?)))
            .map(|(s, shard)| {
                let mut shard = shard.write().unwrap_or_else(|p| p.into_inner());
                let before_len = shard.len();
                let dropped = shard.retain_ended_after(before);
                self.note_undecided(s, &shard);
                (before_len - shard.len(), dropped)
            })
            .collect();
        let conversations = dropped.iter().map(|(n, _)| n).sum();
        let owners: HashSet<u64> = dropped.into_iter().flat_map(|(_, h)| h).collect();
        let events = if owners.is_empty() {
            0
        } else {
            self.event_ids.remove_owned_by(&owners)
        };
        Retained {
            conversations,
            events,
        }
    }

    /// The dedup set (for checkpoints).
    pub fn event_ids(&self) -> &EventIdSet {
        &self.event_ids
    }

    /// Shard `s`, made (empty) the first time it is asked for.
    fn shard(&self, s: usize) -> &RwLock<ConversationShard> {
        self.shards[s].get_or_init(|| Box::new(RwLock::new(ConversationShard::default())))
    }

    /// Every shard, in order (for checkpoints); each is read-locked by the
    /// caller while used.
    pub fn shards(&self) -> Vec<&RwLock<ConversationShard>> {
        (0..CONVERSATION_SHARDS).map(|s| self.shard(s)).collect()
    }

    /// Shard `s` if it was made: a shard not made holds no conversation.
    fn made_shard(&self, s: usize) -> Option<&RwLock<ConversationShard>> {
        self.shards[s].get().map(|shard| &**shard)
    }

    /// The shards made so far, for queries (see [`Store::made_shard`]).
    /// Each is read-locked by the caller while used.
    pub fn made_shards(&self) -> Vec<&RwLock<ConversationShard>> {
        (0..CONVERSATION_SHARDS)
            .filter_map(|s| self.made_shard(s))
            .collect()
    }

    /// Read access to the shard holding conversation key hash `hash`.
    pub fn read_shard(&self, hash: u64) -> RwLockReadGuard<'_, ConversationShard> {
        read(self.shard(shard_of(hash)))
    }

    /// Number of conversations.
    pub fn conversations(&self) -> usize {
        self.made_shards().into_iter().map(|s| read(s).len()).sum()
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.made_shards()
            .into_iter()
            .map(|s| std::mem::size_of::<RwLock<ConversationShard>>() + read(s).heap_bytes())
            .sum::<usize>()
            + self.event_ids.heap_bytes()
    }

    /// Number of distinct event ids held by the dedup set.
    pub fn distinct_events(&self) -> usize {
        self.event_ids.len()
    }
}

/// Read-locks a shard; a poisoned lock (a panic elsewhere) still reads.
pub(crate) fn read(shard: &RwLock<ConversationShard>) -> RwLockReadGuard<'_, ConversationShard> {
    shard.read().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::events_to_columns;
    use crate::schema::Event;

    /// One event, folded with its id not read (as a batch job that leaves
    /// ids out does).
    fn fold_without_id(store: &Store, conversation: &str, id: &str, ts: i64, channel: &str) {
        let event = Event {
            event_id: format!("{conversation}-{id}"),
            timestamp: ts,
            bot_id: "b".into(),
            conversation_id: conversation.into(),
            event_type: "message".into(),
            channel_type: Some(channel.into()),
            ..Default::default()
        };
        let mut cols = events_to_columns(&[event]);
        cols.event_ids_elided = true;
        store.apply(&cols);
    }

    /// Shards are made as they are used: a new store has none, a fold
    /// makes the shard of its conversation and a read the shard it reads;
    /// every shard, made or not, is there for a checkpoint.
    #[test]
    fn shards_are_made_when_used() {
        let store = Store::new(StoreOptions::default());
        assert!(store.made_shards().is_empty());
        assert_eq!((store.conversations(), store.heap_bytes()), (0, 0));
        assert!(store.take_undecided().is_empty());
        assert_eq!(store.retain(i64::MAX).conversations, 0);
        assert!(store.made_shards().is_empty());
        fold_without_id(&store, "c1", "e1", 1_000, "web");
        let made = store.made_shards();
        assert_eq!(made.len(), 1);
        assert_eq!(read(made[0]).len(), 1);
        assert_eq!(store.conversations(), 1);
        assert!(store.heap_bytes() > std::mem::size_of::<RwLock<ConversationShard>>());
        let hash = conversation_hash("b", "c1");
        assert_eq!(store.read_shard(hash).len(), 1);
        let elsewhere = (0..u64::MAX)
            .map(|i| conversation_hash("b", &format!("x{i}")))
            .find(|&h| shard_of(h) != shard_of(hash))
            .unwrap();
        assert_eq!(store.read_shard(elsewhere).len(), 0);
        assert_eq!(store.made_shards().len(), 2);
        assert_eq!(store.shards().len(), CONVERSATION_SHARDS);
        assert_eq!(store.made_shards().len(), CONVERSATION_SHARDS);
        assert_eq!(store.conversations(), 1);
    }

    /// Claims taken back remove only the ids they inserted: a duplicate of
    /// an id held before stays held, a new one is new again.
    #[test]
    fn unclaimed_ids_are_new_again_and_earlier_ones_stay() {
        let store = Store::new(StoreOptions::default());
        let event = |id: &str| Event {
            event_id: id.into(),
            timestamp: 1_000,
            bot_id: "b".into(),
            conversation_id: "c".into(),
            event_type: "message".into(),
            ..Default::default()
        };
        store.apply(&events_to_columns(&[event("held")]));
        let claims = store.claim(&events_to_columns(&[event("held"), event("new")]));
        assert_eq!(claims.fresh, [false, true]);
        assert_eq!(store.event_ids.len(), 2);
        store.unclaim(&[claims]);
        assert_eq!(store.event_ids.len(), 1);
        let again = store.claim(&events_to_columns(&[event("held"), event("new")]));
        assert_eq!(again.fresh, [false, true]);
    }

    /// The count of undecided conversations follows every change of the
    /// shards: folds, taking them, retention and a shard replaced.
    #[test]
    fn the_undecided_count_follows_the_shards() {
        let store = Store::new(StoreOptions::default());
        // Three conversations whose first two events tie with different
        // channels, their ids not read: undecided; a fourth without a tie.
        for (n, conversation) in ["c1", "c2", "c3", "c4"].into_iter().enumerate() {
            let at = 1_000 * (n as i64 + 1);
            let second = if conversation == "c4" { at + 1 } else { at };
            fold_without_id(&store, conversation, "e1", at, "web");
            fold_without_id(&store, conversation, "e2", second, "sms");
        }
        let from_shards =
            |store: &Store| -> usize { store.shards().iter().map(|s| read(s).undecided).sum() };
        assert_eq!((store.undecided_count(), from_shards(&store)), (3, 3));
        // Retention drops c1 (it ended at 1,000).
        store.retain(1_001);
        assert_eq!((store.undecided_count(), from_shards(&store)), (2, 2));
        assert_eq!(store.take_undecided().len(), 2);
        assert_eq!((store.undecided_count(), from_shards(&store)), (0, 0));
        // A shard replaced (as a checkpoint loads one) brings its count.
        let other = Store::new(StoreOptions::default());
        fold_without_id(&other, "c9", "e1", 5, "web");
        fold_without_id(&other, "c9", "e2", 5, "sms");
        let s = (0..CONVERSATION_SHARDS)
            .find(|&s| read(other.shards()[s]).undecided == 1)
            .expect("an undecided conversation");
        let shard = std::mem::take(&mut *other.shards()[s].write().unwrap());
        store.set_shard(s, shard);
        assert_eq!((store.undecided_count(), from_shards(&store)), (1, 1));
    }
}
