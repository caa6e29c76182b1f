//! One shard of the conversation table: per-conversation summaries and the
//! transition events of each conversation.
//!
//! A shard holds the conversations whose key hash falls into it, as columns
//! (struct of arrays) indexed by a dense conversation number, so that series
//! queries scan plain `Vec`s. Each summary is a mergeable state in the sense
//! of SPEC 2: `start = min`, `end = max`, `num_messages = sum`, attributes =
//! those of the smallest `(timestamp, event_id)`; folding an event in is the
//! same operation whatever order events come in.
//!
//! The attribute, message-count and transition-list columns grow only when
//! a value comes, and hold null, zero or no transition past their end: a
//! batch job reads only what its query uses, and pushing an empty value to
//! each of them for every conversation cost fresh memory and a store into
//! nine more places per insert.
//!
//! Transitions are kept per conversation as a linked list through the
//! shard's transition columns, so a flow query touches only its own
//! conversation's transitions and no per-conversation allocation is needed.

use std::borrow::Cow;

use arrow_array::{Array, StringViewArray};

use super::conversation_index::{ConversationIndex, IndexEntry};
use super::strings::{Interner, StringArena, Sym, NULL_SYM};
use super::RowKeys;
use crate::ingest::EventColumns;
use crate::schema::{Attribute, EVENT_TYPE_MESSAGE, EVENT_TYPE_TRANSITION};

/// End of a transition list.
pub(super) const NO_TRANSITION: u32 = u32::MAX;

/// A conversation's `first_event_id` when the ids of some of the events at
/// its first timestamp were not read (a batch job that leaves `event_id`
/// out of the rows its scope selects), all of which have the same
/// attributes: they are right, whichever event is first.
pub(super) const FIRST_ID_UNKNOWN: u32 = u32::MAX;

/// A conversation's `first_event_id` when events at its first timestamp
/// have different attributes and not every one's id was read: which is
/// first is undecided, and the batch job reads its events again, ids
/// included ([`ConversationShard::take_undecided`]).
pub(super) const FIRST_UNDECIDED: u32 = u32::MAX - 1;

/// Columns of the transition events of a shard.
#[derive(Debug, Default, Clone)]
pub(crate) struct TransitionTable {
    pub timestamp: Vec<i64>,
    pub event_id: StringArena,
    /// Position in `message_ids`, or `NULL_SYM`.
    pub message_id: Vec<u32>,
    pub message_ids: StringArena,
    /// `from_step_id`, `from_step_type`, `to_step_id`, `to_step_type`.
    pub steps: [Vec<Sym>; 4],
    pub step_names: Interner,
    /// Next transition of the same conversation.
    pub(super) next: Vec<u32>,
}

/// One transition, borrowed from a shard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TransitionRef<'a> {
    pub timestamp: i64,
    pub event_id: &'a str,
    pub message_id: Option<&'a str>,
    /// `from_step_id`, `from_step_type`, `to_step_id`, `to_step_type`.
    pub steps: [Option<&'a str>; 4],
}

/// Strings of at most this many bytes are stored inside their Arrow view.
const INLINE_VIEW_LEN: u32 = 12;

/// Slots of an [`InlineSymbols`] cache (a power of two).
const INLINE_SYMBOL_SLOTS: usize = 64;

/// Symbols of short strings recently interned during one
/// [`ConversationShard::apply`] call, keyed by their Arrow view: a string
/// of at most [`INLINE_VIEW_LEN`] bytes lives inside its view, so equal
/// views are equal strings and no lookup by content is needed.
///
/// A small direct-mapped cache: a hit costs a multiply and a compare, a
/// miss (a new or rare value, such as most user ids) costs one interner
/// lookup, and the cache never grows or allocates, whatever the values.
#[derive(Debug)]
struct InlineSymbols([(u128, Sym); INLINE_SYMBOL_SLOTS]);

impl Default for InlineSymbols {
    fn default() -> Self {
        Self([(0, NULL_SYM); INLINE_SYMBOL_SLOTS])
    }
}

impl InlineSymbols {
    /// The symbol of `array[row]` (not null) in `interner`.
    #[inline]
    fn intern(&mut self, interner: &mut Interner, array: &StringViewArray, row: usize) -> Sym {
        let view = array.views()[row];
        if (view as u32) > INLINE_VIEW_LEN {
            return interner.intern(array.value(row));
        }
        let mixed = crate::ingest::inline_view_hash(view);
        let slot = &mut self.0[(mixed >> (64 - INLINE_SYMBOL_SLOTS.trailing_zeros())) as usize];
        if slot.0 == view && slot.1 != NULL_SYM {
            return slot.1;
        }
        let sym = interner.intern(array.value(row));
        *slot = (view, sym);
        sym
    }
}

/// Symbol caches of [`ConversationShard::apply`]: one per attribute, one
/// for step names.
#[derive(Debug, Default)]
struct ApplyCaches {
    attributes: [InlineSymbols; Attribute::COUNT],
    steps: InlineSymbols,
}

/// How many rows ahead of the one it folds [`ConversationShard::apply`]
/// asks for the index slot of a row: enough for the slot to arrive in
/// time, few enough that it is still in cache when its row comes.
const PREFETCH_ROWS_AHEAD: usize = 8;

/// How many rows ahead of the one it folds [`ConversationShard::apply`]
/// asks for the row's entries in the batch's columns ([`prefetch_row`]).
///
/// A shard folds about one row in [`super::CONVERSATION_SHARDS`] of a
/// window of the batch, so each row's entries lie on cache lines of their
/// own, in a dozen columns of a megabyte each: without asking ahead, every
/// row waits on a dozen loads from the last-level cache or memory. Measured
/// with 10M generated events (64K-row batches, one caller, 2 cores; a
/// throwaway driver, the builds alternated 6 to 8 times, medians):
/// in-memory ingest 2.90–3.17 → 2.24–2.51 s (CPU 5.0–5.3 → 3.8–4.1 s),
/// durable ingest with fsync per call 3.6–4.1 → 3.0–3.3 s; 16 to 64 rows
/// ahead all gave about the same, asking for the attribute columns too
/// (needed only by a conversation's first events) less.
const PREFETCH_COLUMNS_AHEAD: usize = 32;

/// Asks for the cache lines [`ConversationShard::apply`] reads of `row`:
/// its key hash and bot run, its timestamp, and its views in the columns
/// read for every event (bot, conversation, event id and type) or for
/// every transition (message id, steps).
#[inline]
fn prefetch_row(cols: &EventColumns, keys: RowKeys<'_>, row: usize) {
    use super::conversation_index::prefetch_line;
    fn line<T>(values: &[T], row: usize) {
        if let Some(value) = values.get(row) {
            prefetch_line((value as *const T).cast());
        }
    }
    line(keys.key_hash, row);
    line(keys.bot_run, row);
    line(&cols.timestamp, row);
    for column in [
        &cols.bot_id,
        &cols.conversation_id,
        &cols.event_id,
        &cols.event_type,
    ] {
        line(column.views(), row);
    }
    for column in [
        &cols.message_id,
        &cols.from_step_id,
        &cols.from_step_type,
        &cols.to_step_id,
        &cols.to_step_type,
    ]
    .into_iter()
    .flatten()
    {
        line(column.views(), row);
    }
}

/// A conversation id packed into 16 bytes the way an Arrow view packs a
/// string: length then bytes for ids of at most 12 bytes, which the key
/// then holds whole, or length then the first 4 bytes for longer ones,
/// which must still be compared in full.
#[inline]
fn conversation_key(view: u128) -> u128 {
    if (view as u32) <= INLINE_VIEW_LEN {
        view
    } else {
        view & u128::from(u64::MAX)
    }
}

#[inline]
fn halves(key: u128) -> [u64; 2] {
    [key as u64, (key >> 64) as u64]
}

/// [`conversation_key`] of a string.
fn conversation_key_of(id: &str) -> u128 {
    conversation_key(arrow_array::builder::make_view(id.as_bytes(), 0, 0))
}

/// Conversation summaries of one shard.
#[derive(Debug, Default)]
pub(crate) struct ConversationShard {
    index: ConversationIndex,
    pub(super) key_hash: Vec<u64>,
    pub bots: Interner,
    pub bot: Vec<Sym>,
    pub(super) conversation_id: StringArena,
    pub start: Vec<i64>,
    pub end: Vec<i64>,
    /// Position in `first_event_ids` of each conversation's first event id
    /// (for ties on the first timestamp), up to the last conversation with
    /// another value than [`FIRST_ID_UNKNOWN`], which the others hold (a
    /// batch job that leaves ids out keeps none). A replaced id stays in
    /// the arena: the first event changes rarely, and an arena needs no
    /// allocation per conversation. Read through [`Self::first_id_of`].
    pub(super) first_event_id: Vec<u32>,
    pub(super) first_event_ids: StringArena,
    /// Message events per conversation, up to the last conversation with
    /// one (the others have none; a batch job that counts no message keeps
    /// none). Read through [`Self::messages_of`].
    pub(super) num_messages: Vec<u32>,
    /// Per attribute (in [`Attribute::ALL`] order): the symbol per
    /// conversation, up to the last conversation that holds a value of it;
    /// the conversations past a column's end hold [`NULL_SYM`]. A column
    /// grows only when a value comes: a batch job reads only the
    /// attributes its query uses, and data often leaves some (campaigns)
    /// empty. Read through [`Self::attribute_sym`],
    /// [`Self::attribute_values`] (with [`sym_at`]) and
    /// [`Self::attribute_column`].
    pub(super) attributes: [Vec<Sym>; Attribute::COUNT],
    /// Per attribute: the interner its symbols refer to.
    pub interners: [Interner; Attribute::COUNT],
    /// Each conversation's latest transition in `transitions` (the head of
    /// its list), up to the last conversation with one; the others have
    /// [`NO_TRANSITION`] (only `flow` keeps transitions).
    pub(super) first_transition: Vec<u32>,
    pub transitions: TransitionTable,
    /// How many conversations are [`FIRST_UNDECIDED`].
    pub(super) undecided: usize,
    /// The symbol caches of `apply`, kept from one call to the next (about
    /// 18 KB: filling them anew in every call cost more than the call
    /// itself for the few rows a shard gets from a small file). A shard's
    /// interners only grow and never renumber, so a cached symbol stays
    /// right; a shard built anew (by retention, or from a checkpoint)
    /// starts with none.
    apply_caches: Option<Box<ApplyCaches>>,
}

/// `column[c]` of a column that grows only for values (see
/// [`ConversationShard`]'s fields): `absent` past its end.
#[inline]
fn column_get<T: Copy>(column: &[T], c: usize, absent: T) -> T {
    column.get(c).copied().unwrap_or(absent)
}

/// Sets `column[c]`, growing the column (with `absent` for the
/// conversations before `c`) only for a value other than `absent`.
#[inline]
fn column_set<T: Copy + PartialEq>(column: &mut Vec<T>, c: usize, value: T, absent: T) {
    if let Some(held) = column.get_mut(c) {
        *held = value;
    } else if value != absent {
        column.resize(c, absent);
        column.push(value);
    }
}

/// The symbol of conversation `c` in `column`, a column of
/// [`ConversationShard::attribute_values`]: [`NULL_SYM`] past its end.
#[inline]
pub(crate) fn sym_at(column: &[Sym], c: usize) -> Sym {
    column_get(column, c, NULL_SYM)
}

/// `column`, one value per conversation of `len`.
fn column_whole<T: Copy>(column: &[T], len: usize, absent: T) -> Cow<'_, [T]> {
    if column.len() == len {
        Cow::Borrowed(column)
    } else {
        let mut whole = Vec::with_capacity(len);
        whole.extend_from_slice(column);
        whole.resize(len, absent);
        Cow::Owned(whole)
    }
}

impl ConversationShard {
    /// Number of conversations.
    pub fn len(&self) -> usize {
        self.start.len()
    }

    /// A copy of what a checkpoint encodes of this shard: every column,
    /// without the index and the symbol caches (a checkpoint rebuilds the
    /// one on load and never needs the other). Not for lookups: its
    /// [`Self::find`] finds nothing.
    pub(super) fn copy_for_checkpoint(&self) -> Self {
        Self {
            index: ConversationIndex::default(),
            key_hash: self.key_hash.clone(),
            bots: self.bots.clone(),
            bot: self.bot.clone(),
            conversation_id: self.conversation_id.clone(),
            start: self.start.clone(),
            end: self.end.clone(),
            first_event_id: self.first_event_id.clone(),
            first_event_ids: self.first_event_ids.clone(),
            num_messages: self.num_messages.clone(),
            attributes: self.attributes.clone(),
            interners: self.interners.clone(),
            first_transition: self.first_transition.clone(),
            transitions: self.transitions.clone(),
            undecided: self.undecided,
            apply_caches: None,
        }
    }

    /// The conversation `(bot_id, conversation_id)` with key hash `hash`.
    pub fn find(&self, hash: u64, bot_id: &str, conversation_id: &str) -> Option<usize> {
        let bot = self.bots.lookup(bot_id)?;
        self.find_by_bot(
            hash,
            bot,
            conversation_key_of(conversation_id),
            conversation_id,
        )
    }

    /// [`Self::find`] with the bot's symbol and the id's
    /// [`conversation_key`] already computed.
    #[inline]
    fn find_by_bot(&self, hash: u64, bot: Sym, key: u128, conversation_id: &str) -> Option<usize> {
        self.index
            .find(hash, |e| {
                e.key == halves(key)
                    && e.bot == bot
                    && self.same_long_id(e.conversation, key, conversation_id)
            })
            .map(|e| e.conversation as usize)
    }

    /// Whether conversation `c`, whose key equals `key`, has the id
    /// `conversation_id`: the key holds ids of up to 12 bytes whole, longer
    /// ones are compared byte by byte.
    #[inline]
    fn same_long_id(&self, c: u32, key: u128, conversation_id: &str) -> bool {
        (key as u32) <= INLINE_VIEW_LEN
            || self.conversation_id.get_bytes(c) == conversation_id.as_bytes()
    }

    /// The value of `attribute` for conversation `c`.
    pub fn attribute(&self, c: usize, attribute: Attribute) -> Option<&str> {
        let i = attribute.index();
        self.interners[i].resolve(self.attribute_sym(i, c))
    }

    /// The symbol of attribute `i` (in [`Attribute::ALL`] order) of
    /// conversation `c`.
    #[inline]
    pub(super) fn attribute_sym(&self, i: usize, c: usize) -> Sym {
        sym_at(&self.attributes[i], c)
    }

    /// Sets the symbol of attribute `i` of conversation `c`, growing its
    /// column only for a value.
    #[inline]
    fn set_attribute_sym(&mut self, i: usize, c: usize, sym: Sym) {
        column_set(&mut self.attributes[i], c, sym, NULL_SYM);
    }

    /// The symbols of `attribute` as held: one per conversation up to the
    /// last one with a value, the others [`NULL_SYM`] (read with
    /// [`sym_at`]).
    pub fn attribute_values(&self, attribute: Attribute) -> &[Sym] {
        &self.attributes[attribute.index()]
    }

    /// The symbols of `attribute`, one per conversation.
    pub(super) fn attribute_column(&self, attribute: Attribute) -> Cow<'_, [Sym]> {
        column_whole(&self.attributes[attribute.index()], self.len(), NULL_SYM)
    }

    /// Conversation `c`'s first event id: its position in
    /// `first_event_ids`, or [`FIRST_ID_UNKNOWN`] / [`FIRST_UNDECIDED`].
    pub(super) fn first_id_of(&self, c: usize) -> u32 {
        column_get(&self.first_event_id, c, FIRST_ID_UNKNOWN)
    }

    fn set_first_id(&mut self, c: usize, first: u32) {
        column_set(&mut self.first_event_id, c, first, FIRST_ID_UNKNOWN);
    }

    /// The number of message events of conversation `c`.
    #[inline]
    pub fn messages_of(&self, c: usize) -> u32 {
        column_get(&self.num_messages, c, 0)
    }

    /// The number of message events of each conversation.
    pub(super) fn messages_column(&self) -> Cow<'_, [u32]> {
        column_whole(&self.num_messages, self.len(), 0)
    }

    /// Transitions of conversation `c`, in no particular order.
    pub fn transitions_of(&self, c: usize) -> impl Iterator<Item = TransitionRef<'_>> {
        let t = &self.transitions;
        std::iter::successors(
            Some(column_get(&self.first_transition, c, NO_TRANSITION))
                .filter(|&i| i != NO_TRANSITION),
            move |&i| Some(t.next[i as usize]).filter(|&n| n != NO_TRANSITION),
        )
        .map(move |i| {
            let i = i as usize;
            let step = |k: usize| t.step_names.resolve(t.steps[k][i]);
            TransitionRef {
                timestamp: t.timestamp[i],
                event_id: t.event_id.get(i as u32),
                message_id: (t.message_id[i] != NULL_SYM)
                    .then(|| t.message_ids.get(t.message_id[i])),
                steps: [step(0), step(1), step(2), step(3)],
            }
        })
    }

    /// Folds the events at `rows` of `cols` (all belonging to this shard,
    /// already deduplicated) into the summaries, with each row's key hash
    /// and bot run from `keys`.
    pub fn apply(
        &mut self,
        cols: &EventColumns,
        rows: &[u32],
        keys: RowKeys<'_>,
        keep_transitions: bool,
    ) {
        // Rows mostly share a few bots: resolve each bot once per run.
        let mut last_bot: Option<(u32, Option<Sym>)> = None;
        // Events of a conversation often come together: check the previous
        // row's conversation before probing the index.
        let mut last_conversation: Option<(u64, u128, Sym, usize)> = None;
        let mut caches = self.apply_caches.take().unwrap_or_default();
        for (i, &row) in rows.iter().enumerate() {
            if let Some(&far) = rows.get(i + PREFETCH_COLUMNS_AHEAD) {
                prefetch_row(cols, keys, far as usize);
            }
            if let Some(&ahead) = rows.get(i + PREFETCH_ROWS_AHEAD) {
                self.index.prefetch(keys.key_hash[ahead as usize]);
            }
            let row = row as usize;
            let (hash, run) = (keys.key_hash[row], keys.bot_run[row]);
            let bot_id = cols.bot_id.value(row);
            let conversation_id = cols.conversation_id.value(row);
            let key = conversation_key(cols.conversation_id.views()[row]);
            let ts = cols.timestamp[row];
            // A row a bounding scope kept ends where its conversation's
            // latest event in its batch did.
            let end = cols.latest.as_ref().map_or(ts, |latest| latest[row]);
            let event_id = cols.event_id.value(row);
            let bot = match last_bot {
                Some((r, sym)) if r == run => sym,
                _ => {
                    let sym = self.bots.lookup(bot_id);
                    last_bot = Some((run, sym));
                    sym
                }
            };
            let found = match (bot, last_conversation) {
                (Some(bot), Some((h, k, b, c)))
                    if h == hash
                        && k == key
                        && b == bot
                        && self.same_long_id(c as u32, key, conversation_id) =>
                {
                    Some(c)
                }
                (Some(bot), _) => self.find_by_bot(hash, bot, key, conversation_id),
                (None, _) => None,
            };
            let c = match found {
                Some(c) => {
                    if end > self.end[c] {
                        self.end[c] = end;
                    }
                    if ts < self.start[c] {
                        if self.first_id_of(c) == FIRST_UNDECIDED {
                            self.undecided -= 1;
                        }
                        self.start[c] = ts;
                        let first = self.first_id(cols, event_id);
                        self.set_first_id(c, first);
                        self.set_attributes(c, cols, row, &mut caches.attributes);
                    } else if ts == self.start[c] {
                        self.tie_at_start(c, cols, row, event_id, &mut caches.attributes);
                    }
                    c
                }
                None => {
                    let first = self.first_id(cols, event_id);
                    let bot = bot.unwrap_or_else(|| self.bots.intern(bot_id));
                    let c = self.insert(hash, key, bot, conversation_id, ts..=end, first);
                    self.set_attributes(c, cols, row, &mut caches.attributes);
                    last_bot = Some((run, Some(self.bot[c])));
                    c
                }
            };
            let bot = bot.unwrap_or_else(|| self.bot[c]);
            last_conversation = Some((hash, key, bot, c));
            match cols.event_type.value(row) {
                EVENT_TYPE_MESSAGE => {
                    let n = self.messages_of(c) + 1;
                    column_set(&mut self.num_messages, c, n, 0);
                }
                EVENT_TYPE_TRANSITION if keep_transitions => {
                    self.push_transition(c, cols, row, &mut caches.steps)
                }
                _ => {}
            }
        }
        self.apply_caches = Some(caches);
    }

    /// The `first_event_id` of an event that becomes a conversation's
    /// first: its id, or [`FIRST_ID_UNKNOWN`] when `cols` come without ids.
    fn first_id(&mut self, cols: &EventColumns, event_id: &str) -> u32 {
        if cols.event_ids_elided {
            FIRST_ID_UNKNOWN
        } else {
            self.first_event_ids.push(event_id)
        }
    }

    /// Folds in an event at `row` of `cols` whose timestamp equals the
    /// start of conversation `c`: the smaller `(timestamp, event_id)` is
    /// first (SPEC 2). When an id is missing on either side, the first
    /// event is undecided unless both have the same attributes.
    fn tie_at_start(
        &mut self,
        c: usize,
        cols: &EventColumns,
        row: usize,
        event_id: &str,
        caches: &mut [InlineSymbols; Attribute::COUNT],
    ) {
        let first = self.first_id_of(c);
        if first == FIRST_UNDECIDED {
            return;
        }
        if first != FIRST_ID_UNKNOWN && !cols.event_ids_elided {
            if event_id.as_bytes() < self.first_event_ids.get_bytes(first) {
                let first = self.first_event_ids.push(event_id);
                self.set_first_id(c, first);
                self.set_attributes(c, cols, row, caches);
            }
            return;
        }
        if self.same_attributes(c, cols, row) {
            self.set_first_id(c, FIRST_ID_UNKNOWN);
        } else {
            self.set_first_id(c, FIRST_UNDECIDED);
            self.undecided += 1;
        }
    }

    /// Whether the event at `row` of `cols` has the attributes conversation
    /// `c` holds.
    fn same_attributes(&self, c: usize, cols: &EventColumns, row: usize) -> bool {
        (0..Attribute::COUNT).all(|i| {
            let held = self.attribute_sym(i, c);
            match &cols.attributes[i] {
                Some(a) if a.is_valid(row) => self.interners[i].lookup(a.value(row)) == Some(held),
                _ => held == NULL_SYM,
            }
        })
    }

    /// The conversations whose first event is undecided
    /// ([`FIRST_UNDECIDED`]) as `(bot_id, conversation_id)`, each reset to
    /// no event at all (the caller folds all their events in again, ids
    /// included).
    pub fn take_undecided(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        self.undecided = 0;
        for c in 0..self.len() {
            if self.first_id_of(c) != FIRST_UNDECIDED {
                continue;
            }
            out.push((
                self.bots
                    .resolve(self.bot[c])
                    .unwrap_or_default()
                    .to_owned(),
                self.conversation_id.get(c as u32).to_owned(),
            ));
            self.start[c] = i64::MAX;
            self.end[c] = i64::MIN;
            self.set_first_id(c, FIRST_ID_UNKNOWN);
            column_set(&mut self.num_messages, c, 0, 0);
            for i in 0..Attribute::COUNT {
                self.set_attribute_sym(i, c, NULL_SYM);
            }
        }
        out
    }

    /// Adds a conversation of bot `bot` (interned in `self.bots`) whose
    /// events seen so far span `times` (its first's and its latest's), with
    /// `first_event_id` `first`.
    fn insert(
        &mut self,
        hash: u64,
        key: u128,
        bot: Sym,
        conversation_id: &str,
        times: std::ops::RangeInclusive<i64>,
        first: u32,
    ) -> usize {
        let c = self.len();
        self.prefetch_tails();
        self.key_hash.push(hash);
        self.bot.push(bot);
        self.conversation_id.push(conversation_id);
        self.start.push(*times.start());
        self.end.push(*times.end());
        self.set_first_id(c, first);
        let key_hash = &self.key_hash;
        let entry = IndexEntry {
            key: halves(key),
            bot,
            conversation: c as u32,
        };
        self.index
            .insert_unique(hash, entry, |e| key_hash[e.conversation as usize]);
        c
    }

    /// Asks for the cache line a little past the end of every column an
    /// insert appends to, so that the line the next inserts write is in
    /// cache when they come.
    ///
    /// An insert appends to about eight columns (fifteen when this was
    /// measured, before the attribute, message and transition columns grew
    /// only for values), and the 64 shards' tails are hundreds of places
    /// apart in memory that a fold writes in random order. Without asking
    /// ahead, an insert that crossed into a new line of a column waited for
    /// that line from memory, and the stores behind it waited in turn: in
    /// `perf`, the insert's write of its index slot held about 95% of
    /// `ConversationIndex::insert_unique`'s samples, and the insert took a
    /// tenth of a microsecond. Insights over DuckDB's 10M file of
    /// `benches/compare_duckdb.py`, one thread, four runs: `insert_unique`
    /// 507 → 202 samples, `ConversationShard::insert` 149 → 178.
    #[inline]
    fn prefetch_tails(&self) {
        fn tail<T>(v: &[T]) {
            let end = v.as_ptr().wrapping_add(v.len()).cast::<u8>();
            super::conversation_index::prefetch_line(end.wrapping_add(64));
        }
        tail(&self.key_hash);
        tail(&self.bot);
        tail(&self.start);
        tail(&self.end);
        tail(&self.first_event_id);
        self.conversation_id.prefetch_tail();
        self.first_event_ids.prefetch_tail();
    }

    fn set_attributes(
        &mut self,
        c: usize,
        cols: &EventColumns,
        row: usize,
        caches: &mut [InlineSymbols; Attribute::COUNT],
    ) {
        for (i, (array, cache)) in cols.attributes.iter().zip(caches).enumerate() {
            let sym = match array {
                Some(a) if a.is_valid(row) => cache.intern(&mut self.interners[i], a, row),
                _ => NULL_SYM,
            };
            self.set_attribute_sym(i, c, sym);
        }
    }

    fn push_transition(
        &mut self,
        c: usize,
        cols: &EventColumns,
        row: usize,
        cache: &mut InlineSymbols,
    ) {
        use crate::ingest::opt_str;
        let t = &mut self.transitions;
        let i = t.timestamp.len() as u32;
        t.timestamp.push(cols.timestamp[row]);
        t.event_id.push(cols.event_id.value(row));
        let message = match opt_str(&cols.message_id, row) {
            Some(m) => t.message_ids.push(m),
            None => NULL_SYM,
        };
        t.message_id.push(message);
        let steps = [
            &cols.from_step_id,
            &cols.from_step_type,
            &cols.to_step_id,
            &cols.to_step_type,
        ];
        for (column, array) in t.steps.iter_mut().zip(steps) {
            column.push(match array {
                Some(a) if a.is_valid(row) => cache.intern(&mut t.step_names, a, row),
                _ => NULL_SYM,
            });
        }
        t.next
            .push(column_get(&self.first_transition, c, NO_TRANSITION));
        column_set(&mut self.first_transition, c, i, NO_TRANSITION);
    }

    /// Keeps only the conversations whose last event is at or after
    /// `before`, rebuilding the shard (interned strings, arenas and
    /// transitions included) so that memory shrinks. Returns the key
    /// hashes of the dropped conversations, except those a kept
    /// conversation shares (a 64-bit hash collision), whose event ids the
    /// caller must therefore keep.
    pub fn retain_ended_after(&mut self, before: i64) -> Vec<u64> {
        if self.end.iter().all(|&end| end >= before) {
            return Vec::new();
        }
        let old = std::mem::take(self);
        let mut dropped = Vec::new();
        for c in 0..old.len() {
            if old.end[c] < before {
                dropped.push(old.key_hash[c]);
            } else {
                self.copy_conversation(&old, c);
            }
        }
        dropped.retain(|&h| self.position_of_hash(h).is_none());
        dropped
    }

    /// Appends conversation `c` of `old` to this shard.
    fn copy_conversation(&mut self, old: &Self, c: usize) {
        let id = old.conversation_id.get(c as u32);
        let first = match old.first_id_of(c) {
            FIRST_UNDECIDED => {
                self.undecided += 1;
                FIRST_UNDECIDED
            }
            FIRST_ID_UNKNOWN => FIRST_ID_UNKNOWN,
            i => self.first_event_ids.push(old.first_event_ids.get(i)),
        };
        let bot = self
            .bots
            .intern(old.bots.resolve(old.bot[c]).unwrap_or_default());
        let n = self.insert(
            old.key_hash[c],
            conversation_key_of(id),
            bot,
            id,
            old.start[c]..=old.end[c],
            first,
        );
        column_set(&mut self.num_messages, n, old.messages_of(c), 0);
        for i in 0..Attribute::COUNT {
            let sym = match old.interners[i].resolve(old.attribute_sym(i, c)) {
                Some(value) => self.interners[i].intern(value),
                None => NULL_SYM,
            };
            self.set_attribute_sym(i, n, sym);
        }
        // Lists are pushed at the front: copy back to front to keep order.
        let list: Vec<TransitionRef<'_>> = old.transitions_of(c).collect();
        for t in list.iter().rev() {
            let tt = &mut self.transitions;
            let i = tt.timestamp.len() as u32;
            tt.timestamp.push(t.timestamp);
            tt.event_id.push(t.event_id);
            let message = match t.message_id {
                Some(m) => tt.message_ids.push(m),
                None => NULL_SYM,
            };
            tt.message_id.push(message);
            for (column, step) in tt.steps.iter_mut().zip(t.steps) {
                column.push(match step {
                    Some(s) => tt.step_names.intern(s),
                    None => NULL_SYM,
                });
            }
            tt.next
                .push(column_get(&self.first_transition, n, NO_TRANSITION));
            column_set(&mut self.first_transition, n, i, NO_TRANSITION);
        }
    }

    /// Rebuilds what a checkpoint does not store: the key hashes and index
    /// from `bot` and `conversation_id`, and the transition lists from the
    /// number of transitions of each conversation (stored contiguously, in
    /// conversation order). The caller has checked every length and symbol.
    pub(super) fn rebuild(&mut self, transitions_per_conversation: &[u32]) {
        let n = self.len();
        self.key_hash.clear();
        self.index = ConversationIndex::with_capacity(n);
        for c in 0..n {
            let bot = self.bot[c];
            let id = self.conversation_id.get(c as u32);
            let hash = super::conversation_hash(self.bots.resolve(bot).unwrap_or_default(), id);
            self.key_hash.push(hash);
            let key_hash = &self.key_hash;
            let entry = IndexEntry {
                key: halves(conversation_key_of(id)),
                bot,
                conversation: c as u32,
            };
            self.index
                .insert_unique(hash, entry, |e| key_hash[e.conversation as usize]);
        }
        self.first_transition = vec![NO_TRANSITION; n];
        let t = &mut self.transitions;
        t.next = vec![NO_TRANSITION; t.timestamp.len()];
        let mut i = 0u32;
        for (c, &count) in transitions_per_conversation.iter().enumerate() {
            // Stored in list order: link each to the one after it.
            for k in 0..count {
                t.next[(i + k) as usize] = if k + 1 < count {
                    i + k + 1
                } else {
                    NO_TRANSITION
                };
            }
            if count > 0 {
                self.first_transition[c] = i;
            }
            i += count;
        }
    }

    /// The position of the conversation with key hash `hash`, if any.
    pub(super) fn position_of_hash(&self, hash: u64) -> Option<u32> {
        self.index
            .find(hash, |e| self.key_hash[e.conversation as usize] == hash)
            .map(|e| e.conversation)
    }

    /// The transition positions of conversation `c`, in list order.
    pub(super) fn transition_positions(&self, c: usize) -> impl Iterator<Item = u32> + '_ {
        let t = &self.transitions;
        std::iter::successors(
            Some(column_get(&self.first_transition, c, NO_TRANSITION))
                .filter(|&i| i != NO_TRANSITION),
            move |&i| Some(t.next[i as usize]).filter(|&n| n != NO_TRANSITION),
        )
    }

    /// Bytes of heap memory in use (approximate: capacities).
    pub fn heap_bytes(&self) -> usize {
        let v = |cap: usize, size: usize| cap * size;
        let t = &self.transitions;
        self.index.heap_bytes()
            + v(self.key_hash.capacity(), 8)
            + self.bots.heap_bytes()
            + v(self.bot.capacity(), 4)
            + self.conversation_id.heap_bytes()
            + v(self.start.capacity(), 8)
            + v(self.end.capacity(), 8)
            + v(self.first_event_id.capacity(), 4)
            + self.first_event_ids.heap_bytes()
            + v(self.num_messages.capacity(), 4)
            + self
                .attributes
                .iter()
                .map(|a| a.capacity() * 4)
                .sum::<usize>()
            + self
                .interners
                .iter()
                .map(Interner::heap_bytes)
                .sum::<usize>()
            + v(self.first_transition.capacity(), 4)
            + v(t.timestamp.capacity(), 8)
            + t.event_id.heap_bytes()
            + v(t.message_id.capacity(), 4)
            + t.message_ids.heap_bytes()
            + t.steps.iter().map(|s| s.capacity() * 4).sum::<usize>()
            + t.step_names.heap_bytes()
            + v(t.next.capacity(), 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::events_to_columns;
    use crate::schema::Event;
    use crate::store::conversation_hash;

    fn event(id: &str, ts: i64, kind: &str, channel: Option<&str>) -> Event {
        Event {
            event_id: id.into(),
            timestamp: ts,
            bot_id: "b".into(),
            conversation_id: "c".into(),
            event_type: kind.into(),
            channel_type: channel.map(Into::into),
            from_step_id: (kind == "transition").then(|| format!("from-{id}")),
            ..Default::default()
        }
    }

    fn shard_of_events(events: &[Event]) -> ConversationShard {
        shard_of_events_in_calls(events, &[])
    }

    /// The shard after applying `events` in one call per piece, the pieces
    /// cut before each row of `cuts`.
    fn shard_of_events_in_calls(events: &[Event], cuts: &[usize]) -> ConversationShard {
        shard_of_columns_in_calls(&events_to_columns(events), events, cuts)
    }

    /// [`shard_of_events_in_calls`] of `cols`, the columns of `events`.
    fn shard_of_columns_in_calls(
        cols: &EventColumns,
        events: &[Event],
        cuts: &[usize],
    ) -> ConversationShard {
        let hashes: Vec<u64> = events
            .iter()
            .map(|e| conversation_hash(&e.bot_id, &e.conversation_id))
            .collect();
        let bot_run: Vec<u32> = events
            .iter()
            .scan(None, |last: &mut Option<(&str, u32)>, e| {
                let run = match *last {
                    Some((bot, run)) if bot == e.bot_id => run,
                    Some((_, run)) => run + 1,
                    None => 0,
                };
                *last = Some((&e.bot_id, run));
                Some(run)
            })
            .collect();
        let keys = RowKeys {
            key_hash: &hashes,
            bot_run: &bot_run,
        };
        let mut shard = ConversationShard::default();
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(events.len());
        for piece in bounds.windows(2) {
            let rows: Vec<u32> = (piece[0] as u32..piece[1] as u32).collect();
            shard.apply(cols, &rows, keys, true);
        }
        shard
    }

    /// Folds `events` into `shard` one call each, the ids of those marked
    /// `false` not read ([`EventColumns::event_ids_elided`]).
    fn fold_with_ids(shard: &mut ConversationShard, events: &[(Event, bool)]) {
        for (e, id_read) in events {
            let mut cols = events_to_columns(std::slice::from_ref(e));
            cols.event_ids_elided = !id_read;
            let hash = [conversation_hash(&e.bot_id, &e.conversation_id)];
            let keys = RowKeys {
                key_hash: &hash,
                bot_run: &[0],
            };
            shard.apply(&cols, &[0], keys, false);
        }
    }

    /// Events tied at a conversation's first timestamp, some without their
    /// ids, in every order: the first event's attributes are those of the
    /// smallest id, or the conversation is undecided (and read again by
    /// the batch job); never another event's. With every id read it is
    /// never undecided; with identical attributes neither.
    #[test]
    fn ties_without_ids_are_decided_or_undecided_never_wrong() {
        let at = 1_000;
        let cases: [&[(&str, Option<&str>, bool)]; 5] = [
            // The smallest id, unread, shares the first read id's channel;
            // a read id between them has another.
            &[
                ("e5", Some("web"), true),
                ("e1", Some("web"), false),
                ("e3", Some("sms"), true),
            ],
            &[("e2", Some("web"), false), ("e1", Some("sms"), true)],
            &[
                ("e2", Some("web"), false),
                ("e1", Some("web"), false),
                ("e3", None, true),
            ],
            &[
                ("e2", Some("web"), true),
                ("e1", Some("web"), false),
                ("e0", Some("web"), true),
            ],
            &[
                ("e4", Some("sms"), true),
                ("e1", Some("web"), true),
                ("e3", None, true),
            ],
        ];
        for case in cases {
            let smallest = case.iter().min_by_key(|(id, _, _)| *id).unwrap();
            let mut orders = vec![vec![]];
            for i in 0..case.len() {
                orders = orders
                    .into_iter()
                    .flat_map(|o: Vec<usize>| {
                        (0..=o.len()).map(move |p| {
                            let mut o = o.clone();
                            o.insert(p, i);
                            o
                        })
                    })
                    .collect();
            }
            for order in orders {
                let events: Vec<(Event, bool)> = order
                    .iter()
                    .map(|&i| {
                        let (id, channel, read) = case[i];
                        (event(id, at, "message", channel), read)
                    })
                    .collect();
                let mut shard = ConversationShard::default();
                // A later event never changes the first one.
                fold_with_ids(
                    &mut shard,
                    &[(event("z", at + 1, "message", Some("x")), true)],
                );
                fold_with_ids(&mut shard, &events);
                assert_eq!(shard.start[0], at);
                let all_read = case.iter().all(|(_, _, read)| *read);
                let same = case.iter().all(|(_, channel, _)| *channel == case[0].1);
                let undecided = shard.first_id_of(0) == FIRST_UNDECIDED;
                assert_eq!(shard.undecided, usize::from(undecided));
                // An earlier event decides it.
                let mut earlier = ConversationShard::default();
                fold_with_ids(&mut earlier, &events);
                fold_with_ids(
                    &mut earlier,
                    &[(event("y", at - 1, "message", None), false)],
                );
                assert_eq!(earlier.undecided, 0);
                assert_eq!(earlier.attribute(0, Attribute::ChannelType), None);
                if undecided {
                    assert!(!all_read && !same, "{case:?} in order {order:?}: undecided");
                    let undecided = shard.take_undecided();
                    assert_eq!(undecided, [("b".to_owned(), "c".to_owned())]);
                    assert_eq!((shard.start[0], shard.end[0]), (i64::MAX, i64::MIN));
                } else {
                    assert_eq!(
                        shard.attribute(0, Attribute::ChannelType),
                        smallest.1,
                        "{case:?} in order {order:?}"
                    );
                }
            }
        }
    }

    /// The summaries do not depend on how events are split into calls:
    /// interleaved conversations, the same conversation id under two bots,
    /// ties on the first timestamp.
    #[test]
    fn summaries_do_not_depend_on_how_calls_are_cut() {
        let mut events = vec![
            event("e5", 50, "message", Some("late")),
            event("e2", 10, "message", Some("tie-loses")),
            event("e1", 10, "transition", None),
            event("e9", 90, "feedback", Some("last")),
            event("f1", 30, "message", Some("other")),
            event("f0", 30, "transition", Some("other-first")),
        ];
        for e in &mut events[4..] {
            e.conversation_id = "d".into();
        }
        let mut other_bot = event("g1", 5, "message", Some("bot-b2"));
        other_bot.bot_id = "b2".into();
        events.insert(2, other_bot);
        let summary = |shard: &ConversationShard, bot: &str, conv: &str| {
            let c = shard.find(conversation_hash(bot, conv), bot, conv).unwrap();
            let mut transitions: Vec<_> = shard.transitions_of(c).map(|t| t.event_id).collect();
            transitions.sort();
            (
                shard.start[c],
                shard.end[c],
                shard.messages_of(c),
                shard
                    .attribute(c, Attribute::ChannelType)
                    .map(str::to_owned),
                transitions.join(","),
            )
        };
        let keys = [("b", "c"), ("b", "d"), ("b2", "c")];
        let whole = shard_of_events(&events);
        assert_eq!(whole.len(), 3);
        assert_eq!(summary(&whole, "b", "c"), (10, 90, 2, None, "e1".into()));
        assert_eq!(
            summary(&whole, "b", "d"),
            (30, 30, 1, Some("other-first".into()), "f0".into())
        );
        for cut in 1..events.len() {
            for second in cut + 1..events.len() {
                let split = shard_of_events_in_calls(&events, &[cut, second]);
                for (bot, conv) in keys {
                    assert_eq!(
                        summary(&split, bot, conv),
                        summary(&whole, bot, conv),
                        "{bot}/{conv}, cut at {cut} and {second}"
                    );
                }
            }
        }
    }

    #[test]
    fn summary_follows_the_first_event_whatever_the_order() {
        let events = [
            event("e5", 50, "message", Some("late")),
            event("e2", 10, "message", Some("tie-loses")),
            event("e1", 10, "transition", None),
            event("e9", 90, "feedback", Some("last")),
        ];
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
            let shuffled: Vec<Event> = order.iter().map(|&i| events[i].clone()).collect();
            let shard = shard_of_events(&shuffled);
            let c = shard.find(conversation_hash("b", "c"), "b", "c").unwrap();
            assert_eq!((shard.start[c], shard.end[c]), (10, 90));
            assert_eq!(shard.messages_of(c), 2);
            // e1 wins the tie at ts 10 byte-wise, and its null channel stays null.
            assert_eq!(
                shard.attribute(c, Attribute::ChannelType),
                None,
                "{order:?}"
            );
            let transitions: Vec<_> = shard.transitions_of(c).map(|t| t.event_id).collect();
            assert_eq!(transitions, ["e1"]);
        }
    }

    /// Rows a bounding scope kept end at the latest time they carry: a
    /// conversation's end is the latest of them, whether it is new or
    /// known, whatever the calls; its start and first event are the rows'.
    #[test]
    fn a_bounded_row_ends_at_its_conversations_latest_time() {
        let events = [
            event("e1", 50, "message", Some("web")),
            event("e2", 20, "message", Some("app")),
            event("e3", 60, "message", Some("sms")),
        ];
        let mut cols = events_to_columns(&events);
        cols.latest = Some(vec![70, 40, 65]);
        for cuts in [&[][..], &[1], &[2], &[1, 2]] {
            let shard = shard_of_columns_in_calls(&cols, &events, cuts);
            let c = shard.find(conversation_hash("b", "c"), "b", "c").unwrap();
            assert_eq!((shard.start[c], shard.end[c]), (20, 70), "{cuts:?}");
            assert_eq!(shard.attribute(c, Attribute::ChannelType), Some("app"));
        }
        // A conversation first seen in a bounded row ends where it says.
        let cols = EventColumns {
            latest: Some(vec![95]),
            ..events_to_columns(&[event("e4", 90, "message", None)])
        };
        let mut alone = ConversationShard::default();
        let rows = [0u32];
        let hash = [conversation_hash("b", "c")];
        let keys = RowKeys {
            key_hash: &hash,
            bot_run: &[0],
        };
        alone.apply(&cols, &rows, keys, true);
        assert_eq!((alone.start[0], alone.end[0]), (90, 95));
    }

    /// Ids that share length and first bytes (long ones are told apart by
    /// their bytes, short ones by their key alone) stay distinct.
    #[test]
    fn similar_conversation_ids_stay_distinct() {
        let ids = [
            "conversation-000001",
            "conversation-000002",
            "conversation-00000",
            "123456789012",
            "123456789013",
            "1234567890123",
            "",
        ];
        let events: Vec<Event> = ids
            .iter()
            .enumerate()
            .flat_map(|(i, id)| {
                (0..2).map(move |k| {
                    let mut e = event(&format!("e{i}-{k}"), (i * 10 + k) as i64, "message", None);
                    e.conversation_id = (*id).into();
                    e
                })
            })
            .collect();
        let shard = shard_of_events(&events);
        assert_eq!(shard.len(), ids.len());
        for (i, id) in ids.iter().enumerate() {
            let c = shard.find(conversation_hash("b", id), "b", id).unwrap();
            assert_eq!(
                (shard.start[c], shard.messages_of(c)),
                ((i * 10) as i64, 2),
                "{id:?}"
            );
        }
        assert!(shard
            .find(
                conversation_hash("b", "conversation-000003"),
                "b",
                "conversation-000003"
            )
            .is_none());
    }

    /// Retention keeps exactly the conversations that end at or after the
    /// cut-off, whole (summaries, attributes, transitions in order).
    #[test]
    fn retain_keeps_whole_conversations() {
        let mut events = Vec::new();
        for (conv, end) in [("a", 10), ("b", 20), ("c", 30)] {
            for (k, ts) in [(0, 1), (1, end)] {
                let mut e = event(&format!("{conv}{k}"), ts, "transition", Some(conv));
                e.conversation_id = conv.into();
                events.push(e);
            }
        }
        let mut shard = shard_of_events(&events);
        let before = |shard: &ConversationShard, conv: &str| {
            let c = shard.find(conversation_hash("b", conv), "b", conv)?;
            let t: Vec<String> = shard.transitions_of(c).map(|t| format!("{t:?}")).collect();
            Some((
                shard.start[c],
                shard.end[c],
                shard
                    .attribute(c, Attribute::ChannelType)
                    .map(str::to_owned),
                t,
            ))
        };
        let c_before = before(&shard, "c");
        let dropped = shard.retain_ended_after(20);
        assert_eq!(dropped, [conversation_hash("b", "a")]);
        assert_eq!(shard.len(), 2);
        assert!(before(&shard, "a").is_none());
        assert_eq!(before(&shard, "c"), c_before);
        assert_eq!(shard.transitions.timestamp.len(), 4);
        assert!(shard.retain_ended_after(i64::MIN).is_empty());
        assert_eq!(shard.retain_ended_after(i64::MAX).len(), 2);
        assert_eq!(shard.len(), 0);
    }

    /// An attribute's column grows only when a value comes: the
    /// conversations before the first with a value, and after the last,
    /// hold none, whether read one at a time, as a whole column, or after
    /// retention rebuilt the shard; an earlier event without the value
    /// clears it.
    #[test]
    fn attribute_columns_grow_only_for_values() {
        let channels = [None, None, Some("web"), None, Some("sms"), None];
        let mut events = Vec::new();
        for (k, channel) in channels.iter().enumerate() {
            let mut e = event(&format!("e{k}"), 10 + k as i64, "message", *channel);
            e.conversation_id = format!("c{k}");
            events.push(e);
        }
        // An earlier event of the last valued conversation, without one.
        let mut earlier = event("e9", 1, "message", None);
        earlier.conversation_id = "c4".into();
        events.push(earlier);
        let mut shard = shard_of_events(&events);
        let channel_of = |shard: &ConversationShard, conv: &str| {
            let c = shard.find(conversation_hash("b", conv), "b", conv).unwrap();
            shard
                .attribute(c, Attribute::ChannelType)
                .map(str::to_owned)
        };
        assert_eq!(channel_of(&shard, "c2").as_deref(), Some("web"));
        assert_eq!(channel_of(&shard, "c4"), None);
        for conv in ["c0", "c1", "c3", "c5"] {
            assert_eq!(channel_of(&shard, conv), None);
        }
        let column = shard.attribute_column(Attribute::ChannelType);
        assert_eq!(column.len(), shard.len());
        let valued = column.iter().filter(|&&sym| sym != NULL_SYM).count();
        assert_eq!(valued, 1);
        // Only up to the last conversation a value came for.
        let held = shard.attribute_values(Attribute::ChannelType);
        assert_eq!(held.len(), 5);
        assert_eq!(sym_at(held, 5), NULL_SYM);
        assert_eq!(
            (0..shard.len())
                .map(|c| sym_at(held, c))
                .collect::<Vec<_>>(),
            column.to_vec()
        );
        assert!(shard.attributes[Attribute::Language.index()].is_empty());
        shard.retain_ended_after(12);
        assert_eq!(shard.len(), 4);
        assert_eq!(channel_of(&shard, "c2").as_deref(), Some("web"));
        for conv in ["c3", "c4", "c5"] {
            assert_eq!(channel_of(&shard, conv), None);
        }
        assert_eq!(shard.attribute_column(Attribute::Language).len(), 4);
    }

    /// Conversations folded without their ids hold no first-id slot; the
    /// first conversation folded with its id grows the column, and those
    /// before it read as unknown, as they did.
    #[test]
    fn first_id_column_grows_only_for_ids() {
        let mut shard = ConversationShard::default();
        let mut events = Vec::new();
        for k in 0..3 {
            let mut e = event(&format!("e{k}"), 10 + k, "message", None);
            e.conversation_id = format!("c{k}");
            events.push((e, k == 2));
        }
        fold_with_ids(&mut shard, &events[..2]);
        assert_eq!(shard.len(), 2);
        assert!(shard.first_event_id.is_empty());
        assert_eq!(shard.first_id_of(0), FIRST_ID_UNKNOWN);
        // A tie without an id, of another channel: the first event of `c0`
        // is undecided, a value that grows the column.
        let mut tie = event("e7", 10, "message", Some("web"));
        tie.conversation_id = "c0".into();
        fold_with_ids(&mut shard, &[(tie, false)]);
        assert_eq!(shard.first_event_id.len(), 1);
        assert_eq!(shard.first_id_of(0), FIRST_UNDECIDED);
        assert_eq!(shard.undecided, 1);
        fold_with_ids(&mut shard, &events[2..]);
        assert_eq!(shard.first_event_id.len(), 3);
        assert_eq!(shard.first_id_of(1), FIRST_ID_UNKNOWN);
        assert_eq!(shard.first_event_ids.get(shard.first_id_of(2)), "e2");
        assert_eq!(shard.take_undecided().len(), 1);
        assert_eq!(shard.first_id_of(0), FIRST_ID_UNKNOWN);
        assert_eq!(shard.undecided, 0);
    }

    #[test]
    fn unknown_conversations_are_not_found() {
        let shard = shard_of_events(&[event("e1", 1, "message", None)]);
        assert!(shard.find(conversation_hash("b", "x"), "b", "x").is_none());
        assert!(shard.find(conversation_hash("x", "c"), "x", "c").is_none());
        assert_eq!(shard.len(), 1);
    }
}
