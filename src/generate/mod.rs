//! Realistic synthetic conversation events, for `convostat generate`, the
//! demo, tests and benchmarks.
//!
//! [`EventGenerator`] streams [`RecordBatch`]es in the canonical schema
//! ([`event_schema`]); [`write_file`], [`write_parquet`] and
//! [`write_ndjson`] write the same rows to a file. The output is a pure
//! function of the [`GeneratorConfig`]: a ChaCha8 RNG seeded from
//! `seed`, no hash-map iteration, clock or threads.
//!
//! # What the data looks like
//!
//! - **Teams and bots**: four teams (`team-acme`, `team-globex`,
//!   `team-initech`, `team-umbrella`) with three bots each
//!   (`bot-acme-support`, ...). Bot popularity is Zipf-like: the largest bot
//!   has 25 % of the events, the two smallest 2 % each.
//! - **Conversations** start between 2024-01-01T00:00:00Z and
//!   2024-05-01T00:00:00Z (across the European spring DST change), at
//!   millisecond precision, with a daily profile (quiet nights, peak in the
//!   early afternoon UTC; users follow the Central European clock, so the
//!   UTC peak moves one hour earlier after 2024-03-31), weekends about 40 %
//!   lower and a slight growth over the period. They have 2 to 60 events
//!   (geometric, mean about 10), so 10M events are about 1M conversations.
//! - **Attributes** are drawn per conversation: `bot_version` `LIVE` (90 %) or
//!   `DRAFT`; `channel_type` web 50 %, whatsapp 25 %, messenger 15 %,
//!   voice 10 %; `language` en 55 %, nl 20 %, fr 12 %, de 8 %, es 5 %; a
//!   campaign (`cmp-01`..`cmp-08`, each with a fixed `campaign_source` among
//!   newsletter, facebook_ads, google_ads, referral) on 20 %; `user_id`
//!   (`u` + number) from a pool of about a third as many users as
//!   conversations. Every event carries them, except that about 5 % of the
//!   events after the first lack some of them (null), so the
//!   first-event rule of SPEC 2 matters.
//! - **Events** follow each bot's flow graph (8-20 steps `s01`, ... of types
//!   `bot_dialog`, `input`, `api_call`, `condition`, `handover`, `end`):
//!   usually a `session_start`, then `message`s and `transition`s (a
//!   transition's `message_id` is the message that triggered it), sometimes
//!   `feedback` or `handover_requested`; roughly 45 % messages,
//!   40 % transitions and 15 % other. Step columns are null except on
//!   transitions. Events spread over seconds to minutes after the start; a
//!   few conversations pause for hours.
//! - **Ids** are short: `conversation_id` is `c` + a base-36 counter per bot
//!   (unique within the bot), `event_id` `e` + base 36 of a scrambled global
//!   counter (unique, at most 11 bytes, not sorted), `message_id` likewise
//!   with `m`.
//!
//! # Row order, duplicates and batches
//!
//! [`Layout::Interleaved`] writes rows in **time order with every bot and
//! team mixed**, as an event pipeline does: the rows of the clustered
//! stream below, sorted by timestamp (stably, so a duplicate follows its
//! original), then about 1 % of them swapped with a row up to 1,000
//! positions later (late arrivals). Sorting needs every row at once, in a
//! compact form of under 64 bytes per row (about 0.6 GB for 10M events).
//!
//! With [`Layout::Clustered`] rows are **clustered by bot**, like a platform's per-tenant exports: all
//! events of one bot come together, bots in the fixed catalog order (acme,
//! globex, initech, umbrella). Within a bot, conversations come in start
//! order and each one's events as generated, so rows are roughly in time
//! order, and Parquet row-group statistics can prune by `bot_id`. Each bot
//! gets its share of `events` rows up front (largest-remainder split of the
//! popularity weights), and its conversations are generated incrementally:
//! a conversation's start is placed at the quantile of the seasonal time
//! distribution given by how much of the bot's share has been used so far,
//! so every bot spans the whole period. Nothing but the current conversation
//! and the current batch is held in memory.
//!
//! Two imperfections make the data realistic for an ingestion engine: about
//! 0.5 % of the rows are exact duplicates (same `event_id` and every other
//! field) of an event of the same bot, re-emitted up to a few hundred rows
//! later, and about 1 % of the rows are swapped with a row of the same bot up
//! to 1,000 positions later in the same batch. The total number of rows is exactly
//! `events`, duplicates included: the last conversation of a bot is cut
//! short when the bot's share is used up. Because of the in-batch swaps the
//! rows (not their multiset per bot) depend on `batch_rows` too.
//!
//! ```
//! use convostat::generate::{EventGenerator, GeneratorConfig};
//! let batches: Vec<_> = EventGenerator::new(GeneratorConfig::new(1_000, 42)).collect();
//! assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1_000);
//! assert_eq!(batches[0].schema(), convostat::event_schema());
//! ```

mod catalog;
mod conversation;
mod flow_graph;
mod writer;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::schema::event_schema;

use self::catalog::{
    LengthDistribution, StartTimeDistribution, BOTS, BOT_VERSIONS, CAMPAIGNS, CAMPAIGN_SHARE,
    CHANNELS, LANGUAGES,
};
use self::conversation::{null_bit, Kind, Row, NO_CAMPAIGN, NO_MESSAGE, NO_STEP};
use self::flow_graph::FlowGraph;

pub use self::writer::{write_file, write_ndjson, write_parquet, write_parquet_parts};

/// Default number of rows per generated batch.
pub const DEFAULT_BATCH_ROWS: usize = 65_536;

/// Share of original events re-emitted later as an exact duplicate.
const DUPLICATE_SHARE: f64 = 0.005;
/// A duplicate comes back between 1 and this many rows of its bot later.
const DUPLICATE_MAX_DELAY: u64 = 400;
/// Chance per row of being swapped with a later row of its batch (each swap
/// displaces two rows, so about 1 % of rows move).
const DISPLACE_SHARE: f64 = 0.005;
/// A displaced row moves at most this many positions.
const DISPLACE_MAX_DISTANCE: usize = 1_000;

/// RNG streams of the ChaCha8 generator seeded from the config's seed.
const STREAM_EVENTS: u64 = 0;
const STREAM_GRAPHS: u64 = 1;

/// How generated rows are ordered (see the [module docs](self)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Layout {
    /// All rows of one bot together, bots one after the other, roughly in
    /// time order within a bot: a per-tenant export. Row-group statistics
    /// prune by bot.
    #[default]
    Clustered,
    /// Time order across every bot and team, as an event pipeline writes
    /// them: every row group holds every bot.
    Interleaved,
}

impl std::str::FromStr for Layout {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "clustered" => Ok(Layout::Clustered),
            "interleaved" => Ok(Layout::Interleaved),
            other => Err(crate::Error::invalid(
                "layout",
                format!("unknown layout `{other}`; expected interleaved or clustered"),
            )),
        }
    }
}

/// Parameters of a synthetic data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// Total number of rows (events, duplicates included).
    pub events: usize,
    /// Seed of the random generator: same seed, same data.
    pub seed: u64,
    /// Rows per [`RecordBatch`] (the last batch may be shorter); 0 is read
    /// as 1. Default [`DEFAULT_BATCH_ROWS`].
    pub batch_rows: usize,
    /// Row order; default [`Layout::Clustered`].
    pub layout: Layout,
}

impl GeneratorConfig {
    /// `events` rows from `seed`, clustered by bot, in batches of
    /// [`DEFAULT_BATCH_ROWS`].
    pub fn new(events: usize, seed: u64) -> Self {
        GeneratorConfig {
            events,
            seed,
            batch_rows: DEFAULT_BATCH_ROWS,
            layout: Layout::Clustered,
        }
    }

    /// The same data set in `layout`'s row order.
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }
}

/// Iterator of [`RecordBatch`]es in the canonical schema
/// ([`event_schema`]: Utf8 strings, `Timestamp(Microsecond, "UTC")`),
/// yielding exactly `config.events` rows in total (duplicates included).
///
/// The output depends only on the config (see the [module docs](self) for
/// what the data looks like and how rows are ordered). Batches have
/// `batch_rows` rows except the last; no empty batch is yielded.
pub struct EventGenerator {
    batch_rows: usize,
    /// Rows still to yield.
    remaining: u64,
    rng: ChaCha8Rng,
    graphs: Vec<FlowGraph>,
    budgets: [u64; 12],
    user_pool: u64,
    lengths: LengthDistribution,
    start_times: StartTimeDistribution,
    /// Key of the id scrambling, from the seed.
    id_key: u64,
    /// The bot being generated (index into `BOTS`).
    bot: usize,
    /// Rows of the current bot emitted so far.
    bot_rows: u64,
    /// Conversations of the current bot started so far.
    bot_conversations: u64,
    /// The current conversation and how many of its rows were emitted.
    conversation: Vec<Row>,
    conversation_pos: usize,
    /// Duplicates waiting to be re-emitted, by the bot row count at which
    /// they are due (sorted by due row, then by insertion).
    pending_duplicates: Vec<(u64, Row)>,
    /// Original events emitted so far (the next event's sequence number).
    event_seq: u64,
    /// Messages handed out so far.
    message_seq: u64,
    layout: Layout,
    /// Interleaved layout: every row in time order, and the next to yield.
    sorted: Option<(Vec<Row>, usize)>,
}

impl EventGenerator {
    /// A generator for `config`.
    pub fn new(config: GeneratorConfig) -> Self {
        let events = u64::try_from(config.events).unwrap_or(u64::MAX);
        let mut graph_rng = ChaCha8Rng::seed_from_u64(config.seed);
        graph_rng.set_stream(STREAM_GRAPHS);
        let graphs = BOTS
            .iter()
            .map(|_| FlowGraph::generate(&mut graph_rng))
            .collect();
        let id_key = graph_rng.random::<u64>();
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(STREAM_EVENTS);
        EventGenerator {
            batch_rows: config.batch_rows.max(1),
            remaining: events,
            rng,
            graphs,
            budgets: catalog::bot_budgets(events),
            user_pool: catalog::user_pool(events),
            lengths: LengthDistribution::new(),
            start_times: StartTimeDistribution::new(),
            id_key,
            bot: 0,
            bot_rows: 0,
            bot_conversations: 0,
            conversation: Vec::with_capacity(64),
            conversation_pos: 0,
            pending_duplicates: Vec::new(),
            event_seq: 0,
            message_seq: 0,
            layout: config.layout,
            sorted: None,
        }
    }

    /// Interleaved layout: every row of the clustered stream, sorted by
    /// time (stable), then lightly displaced across bots.
    fn time_ordered_rows(&mut self) -> Vec<Row> {
        let mut rows =
            Vec::with_capacity(usize::try_from(self.remaining).unwrap_or(0).min(1 << 26));
        while let Some(batch) = self.next_clustered_rows() {
            rows.extend(batch);
        }
        rows.sort_by_key(|r| r.ts_ms);
        self.displace(&mut rows, false);
        rows
    }

    /// The next row of the stream, or `None` when every bot's share is done.
    fn next_row(&mut self) -> Option<Row> {
        loop {
            let budget = *self.budgets.get(self.bot)?;
            if self.bot_rows >= budget {
                self.bot += 1;
                self.bot_rows = 0;
                self.bot_conversations = 0;
                self.conversation.clear();
                self.conversation_pos = 0;
                self.pending_duplicates.clear();
                continue;
            }
            if let Some(&(due, row)) = self.pending_duplicates.first() {
                if due <= self.bot_rows {
                    self.pending_duplicates.remove(0);
                    self.bot_rows += 1;
                    return Some(row);
                }
            }
            if let Some(&row) = self.conversation.get(self.conversation_pos) {
                self.conversation_pos += 1;
                let mut row = row;
                row.event_seq = self.event_seq;
                self.event_seq += 1;
                self.bot_rows += 1;
                if self.rng.random_bool(DUPLICATE_SHARE) {
                    let due = self.bot_rows + self.rng.random_range(1..=DUPLICATE_MAX_DELAY);
                    let at = self.pending_duplicates.partition_point(|&(d, _)| d <= due);
                    self.pending_duplicates.insert(at, (due, row));
                }
                return Some(row);
            }
            self.start_conversation(budget);
        }
    }

    /// Generates the current bot's next conversation into `self.conversation`.
    fn start_conversation(&mut self, budget: u64) {
        let rng = &mut self.rng;
        let len = self.lengths.sample(rng);
        // Place the start by how much of the bot's share is used (somewhere
        // within the rows this conversation will take): starts increase and
        // stay below 1, and every bot spans the whole period.
        let takes = (len as u64).min(budget - self.bot_rows);
        let used = self.bot_rows as f64 + rng.random::<f64>() * takes as f64;
        let t0_ms = self.start_times.quantile_ms(used / budget as f64);
        self.bot_conversations += 1;
        let campaign = if rng.random_bool(CAMPAIGN_SHARE) {
            rng.random_range(0..CAMPAIGNS.len() as u8)
        } else {
            NO_CAMPAIGN
        };
        let template = Row {
            event_seq: 0,
            ts_ms: t0_ms,
            conversation: self.bot_conversations,
            user: rng.random_range(1..=self.user_pool),
            message: NO_MESSAGE,
            bot: self.bot as u8,
            kind: Kind::Message,
            version: catalog::pick_weighted(rng, &BOT_VERSIONS) as u8,
            channel: catalog::pick_weighted(rng, &CHANNELS) as u8,
            language: catalog::pick_weighted(rng, &LANGUAGES) as u8,
            campaign,
            null_mask: 0,
            from_step: NO_STEP,
            to_step: NO_STEP,
        };
        self.conversation.clear();
        self.conversation_pos = 0;
        conversation::generate(
            rng,
            &self.graphs[self.bot],
            template,
            t0_ms,
            len,
            &mut self.message_seq,
            &mut self.conversation,
        );
    }

    /// Swaps about [`DISPLACE_SHARE`] of the rows with a later row (of the
    /// same bot when `same_bot`, so that clusters stay whole).
    fn displace(&mut self, rows: &mut [Row], same_bot: bool) {
        let n = rows.len();
        for i in 0..n {
            if self.rng.random_bool(DISPLACE_SHARE) {
                let j = i + self.rng.random_range(1..=DISPLACE_MAX_DISTANCE);
                if j < n && (!same_bot || rows[j].bot == rows[i].bot) {
                    rows.swap(i, j);
                }
            }
        }
    }

    /// Renders compact rows into a batch of the canonical schema.
    fn build_batch(&self, rows: &[Row]) -> RecordBatch {
        let n = rows.len();
        let string_column =
            |bytes_per_row: usize| StringBuilder::with_capacity(n, n * bytes_per_row);
        let mut event_id = string_column(11);
        let mut timestamps = Vec::with_capacity(n);
        let mut bot_id = string_column(20);
        let mut conversation_id = string_column(6);
        let mut event_type = string_column(10);
        let mut team_id = string_column(12);
        let mut bot_version = string_column(4);
        let mut user_id = string_column(7);
        let mut channel_type = string_column(8);
        let mut language = string_column(2);
        let mut campaign_id = string_column(2);
        let mut campaign_source = string_column(3);
        let mut message_id = string_column(11);
        let mut from_step_id = string_column(2);
        let mut from_step_type = string_column(4);
        let mut to_step_id = string_column(2);
        let mut to_step_type = string_column(4);

        // Consecutive rows mostly share their conversation and user: render
        // those ids once per run of rows.
        let mut conversation_text = RenderedId::default();
        let mut user_text = RenderedId::default();
        for row in rows {
            let bot = &BOTS[usize::from(row.bot)];
            let graph = &self.graphs[usize::from(row.bot)];
            let has = |bit: u8| row.null_mask & bit == 0;

            event_id.append_value(Id::new(b'e', scramble(row.event_seq, self.id_key), 36).as_str());
            timestamps.push(row.ts_ms.saturating_mul(1_000));
            bot_id.append_value(bot.id);
            conversation_id.append_value(conversation_text.get(
                b'c',
                (row.bot, row.conversation),
                row.conversation,
                36,
            ));
            event_type.append_value(row.kind.as_str());

            team_id.append_option(has(null_bit::TEAM).then_some(bot.team));
            bot_version.append_option(
                has(null_bit::VERSION).then(|| BOT_VERSIONS[usize::from(row.version)].0),
            );
            if has(null_bit::USER) {
                user_id.append_value(user_text.get(b'u', (0, row.user), row.user, 10));
            } else {
                user_id.append_null();
            }
            channel_type.append_option(
                has(null_bit::CHANNEL).then(|| CHANNELS[usize::from(row.channel)].0),
            );
            language.append_option(
                has(null_bit::LANGUAGE).then(|| LANGUAGES[usize::from(row.language)].0),
            );
            let campaign = CAMPAIGNS.get(usize::from(row.campaign));
            campaign_id.append_option(campaign.filter(|_| has(null_bit::CAMPAIGN_ID)).map(|c| c.0));
            campaign_source.append_option(
                campaign
                    .filter(|_| has(null_bit::CAMPAIGN_SOURCE))
                    .map(|c| c.1),
            );

            if row.message == NO_MESSAGE {
                message_id.append_null();
            } else {
                message_id
                    .append_value(Id::new(b'm', scramble(row.message, !self.id_key), 36).as_str());
            }
            if row.kind == Kind::Transition {
                from_step_id.append_value(FlowGraph::step_id(row.from_step));
                from_step_type.append_value(graph.kind(row.from_step).as_str());
                to_step_id.append_value(FlowGraph::step_id(row.to_step));
                to_step_type.append_value(graph.kind(row.to_step).as_str());
            } else {
                from_step_id.append_null();
                from_step_type.append_null();
                to_step_id.append_null();
                to_step_type.append_null();
            }
        }

        let timestamp = TimestampMicrosecondArray::from(timestamps).with_timezone("UTC");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(event_id.finish()),
            Arc::new(timestamp),
            Arc::new(bot_id.finish()),
            Arc::new(conversation_id.finish()),
            Arc::new(event_type.finish()),
            Arc::new(team_id.finish()),
            Arc::new(bot_version.finish()),
            Arc::new(user_id.finish()),
            Arc::new(channel_type.finish()),
            Arc::new(language.finish()),
            Arc::new(campaign_id.finish()),
            Arc::new(campaign_source.finish()),
            Arc::new(message_id.finish()),
            Arc::new(from_step_id.finish()),
            Arc::new(from_step_type.finish()),
            Arc::new(to_step_id.finish()),
            Arc::new(to_step_type.finish()),
        ];
        // Invariant, not input: the columns are built above in schema order,
        // with the schema's types, equal lengths and no nulls in required
        // columns.
        RecordBatch::try_new(event_schema(), columns)
            .expect("generated columns match the canonical schema")
    }
}

impl std::fmt::Debug for EventGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventGenerator")
            .field("batch_rows", &self.batch_rows)
            .field("remaining", &self.remaining)
            .field("bot", &self.bot)
            .field("bot_rows", &self.bot_rows)
            .finish_non_exhaustive()
    }
}

impl Iterator for EventGenerator {
    type Item = RecordBatch;

    fn next(&mut self) -> Option<RecordBatch> {
        if self.layout == Layout::Interleaved {
            if self.sorted.is_none() {
                self.sorted = Some((self.time_ordered_rows(), 0));
            }
            let (rows, start) = self.sorted.as_ref()?;
            let start = *start;
            if start >= rows.len() {
                return None;
            }
            let end = rows.len().min(start + self.batch_rows);
            let batch = self.build_batch(&rows[start..end]);
            if let Some((_, next)) = self.sorted.as_mut() {
                *next = end;
            }
            return Some(batch);
        }
        let rows = self.next_clustered_rows()?;
        Some(self.build_batch(&rows))
    }
}

impl EventGenerator {
    /// The rows of the next clustered batch, displaced within their bot.
    fn next_clustered_rows(&mut self) -> Option<Vec<Row>> {
        if self.remaining == 0 {
            return None;
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(self.batch_rows);
        // The hint is capped: `batch_rows` may be absurdly large.
        let mut rows = Vec::with_capacity(want.min(1 << 20));
        while rows.len() < want {
            match self.next_row() {
                Some(row) => rows.push(row),
                None => break,
            }
        }
        if rows.is_empty() {
            self.remaining = 0;
            return None;
        }
        self.remaining -= rows.len() as u64;
        self.displace(&mut rows, true);
        Some(rows)
    }
}

/// An id rendered on the stack: an ASCII prefix and a number in base 10 or
/// 36 (lower case), without allocation.
struct Id {
    bytes: [u8; 21],
    start: usize,
}

impl Id {
    /// `prefix` followed by `n` in `radix` (10..=36).
    fn new(prefix: u8, mut n: u64, radix: u64) -> Self {
        const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let radix = radix.clamp(10, 36);
        let mut bytes = [0u8; 21];
        let mut start = bytes.len();
        loop {
            start -= 1;
            bytes[start] = DIGITS[(n % radix) as usize];
            n /= radix;
            // 20 digits at most in base 10, so `start` stays >= 1.
            if n == 0 || start == 1 {
                break;
            }
        }
        start -= 1;
        bytes[start] = prefix;
        Id { bytes, start }
    }

    fn as_str(&self) -> &str {
        // Only ASCII bytes are written, so this never falls back.
        std::str::from_utf8(&self.bytes[self.start..]).unwrap_or("")
    }
}

/// The last id rendered, kept while the key stays the same.
#[derive(Default)]
struct RenderedId {
    key: Option<(u8, u64)>,
    text: String,
}

impl RenderedId {
    /// The text of [`Id::new`]`(prefix, n, radix)`, rendered again only when
    /// `key` differs from the previous call's.
    fn get(&mut self, prefix: u8, key: (u8, u64), n: u64, radix: u64) -> &str {
        if self.key != Some(key) {
            self.key = Some(key);
            self.text.clear();
            self.text.push_str(Id::new(prefix, n, radix).as_str());
        }
        &self.text
    }
}

/// Ids are scrambled within 48 bits (base 36: at most 10 digits).
const ID_BITS_MASK: u64 = (1 << 48) - 1;

/// A bijection of `u64` that mixes values below 2^48 among themselves (keyed
/// XOR, odd multiplications and xor-shifts, each invertible modulo 2^48) and
/// leaves larger values alone, so distinct counters give distinct, unsorted
/// ids.
fn scramble(x: u64, key: u64) -> u64 {
    if x > ID_BITS_MASK {
        return x;
    }
    let mut v = x ^ (key & ID_BITS_MASK);
    v = v.wrapping_mul(0x9E37_79B9_7F4B) & ID_BITS_MASK;
    v ^= v >> 23;
    v = v.wrapping_mul(0xD6E8_FEB8_6659) & ID_BITS_MASK;
    v ^= v >> 21;
    v
}
