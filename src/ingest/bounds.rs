//! The rows of a batch that can bound a conversation, for the batch jobs
//! whose answer reads nothing else of a conversation's events.
//!
//! A conversation's summary is its start (the smallest timestamp), its end
//! (the largest), the attributes of its first event by
//! `(timestamp, event_id)`, and, when a query needs them, its message
//! count, transitions and event ids (SPEC 2). A conversations, usage or
//! insights job on conversations or duration uses only the first three: an
//! event later than its conversation's earliest and earlier than its latest
//! changes none of them. [`bounding_rows`] finds, within one batch, the rows
//! that can: every row at its conversation's earliest timestamp in the
//! batch (ties are ordered by event id, so all of them are kept), each
//! carrying the conversation's latest timestamp in the batch, which the
//! store takes as its end ([`BoundingRows::latest`]; of the latest event
//! the store reads nothing else). In a time-ordered file a conversation's
//! events mostly fall into one batch, so about one row per conversation
//! remains:
//! - the selective Parquet reader (`parquet::selected`) reads the key
//!   columns of a batch's rows, and the other columns of these rows only
//!   ([`ScanScope::bounding`](super::ScanScope::bounding));
//! - a batch job folds only these rows of a batch read otherwise into the
//!   store (`crate::batch`), which then hashes and probes a few rows per
//!   conversation instead of every event.
//!
//! The rows left out are counted as ingested all the same.
//!
//! Rows are grouped by `bot_id` and `conversation_id`, mostly without
//! touching the strings: an id of up to 12 bytes is whole in its view, and
//! rows read from one dictionary entry share a view; other strings are
//! hashed and compared byte by byte.

use arrow_array::{BooleanArray, StringViewArray};
use arrow_buffer::BooleanBuffer;

use super::INLINE_VIEW_LEN;

/// An empty slot of the group table.
const NO_GROUP: u32 = u32::MAX;

/// Slots the group table starts with at most (32 KiB); it doubles when
/// half full.
const FIRST_SLOTS: usize = 8192;

/// Bounds of one group of rows (one conversation, or part of one).
struct GroupBounds {
    /// The views of the group's conversation id and bot (its first
    /// row's): a row is compared with them here, in the group's own cache
    /// line, rather than with the first row's views, a load from anywhere
    /// in the batch's view arrays for every row.
    conversation: u128,
    bot: u128,
    /// The group's first row, for ids too long to be whole in a view.
    row: u32,
    earliest: i64,
    latest: i64,
}

/// The rows of a batch that bound their conversations (see the module
/// docs).
#[derive(Debug)]
pub(crate) struct BoundingRows {
    /// The rows kept: those at their conversation's earliest timestamp.
    pub keep: BooleanArray,
    /// For each row kept, in order, its conversation's latest timestamp in
    /// the batch (µs; at least the row's own).
    pub latest: Vec<i64>,
}

/// Which rows can bound their conversation (see the module
/// documentation), given their timestamps (µs), bots and conversation ids;
/// `None` when nearly all can and filtering would cost more than it saves.
pub(crate) fn bounding_rows(
    timestamps: &[i64],
    bot_id: &StringViewArray,
    conversation_id: &StringViewArray,
) -> Option<BoundingRows> {
    let n = timestamps.len();
    let bots = bot_id.views();
    let conversations = conversation_id.views();
    // Whether row `b` of `array`, whose view is `view`, holds the same
    // string as row `a`, whose view is `first`: equal views do, and
    // inline views (up to 12 bytes) that differ do not; else the bytes
    // are compared (views of long strings differ when their bytes are
    // stored apart).
    let same_string = |array: &StringViewArray, first: u128, view: u128, a: usize, b: usize| {
        first == view
            || (view as u32 as usize > INLINE_VIEW_LEN
                && first as u32 == view as u32
                && array.value(a) == array.value(b))
    };
    // An open-addressing table of group numbers (linear probing, at most
    // half full). A batch's groups are few (a conversation has several
    // rows): the table starts small, to stay in the L1/L2 and to be
    // cleared cheaply, and doubles as they come. The table and the group
    // lists are the thread's, kept from batch to batch (`SCRATCH`).
    let hash_of = |row: usize| conversation_hash(conversations[row], || conversation_id.value(row));
    let mut capacity = (2 * n).next_power_of_two().clamp(16, FIRST_SLOTS);
    let mut mask = capacity - 1;
    let mut scratch = SCRATCH.take();
    let Scratch {
        slots,
        groups,
        group_of,
    } = &mut scratch;
    slots.clear();
    slots.resize(capacity, NO_GROUP);
    groups.clear();
    group_of.clear();
    group_of.reserve(n);
    for (row, &ts) in timestamps.iter().enumerate() {
        let mut slot = hash_of(row) as usize & mask;
        let g = loop {
            let g = slots[slot];
            if g == NO_GROUP {
                let g = groups.len() as u32;
                groups.push(GroupBounds {
                    conversation: conversations[row],
                    bot: bots[row],
                    row: row as u32,
                    earliest: ts,
                    latest: ts,
                });
                slots[slot] = g;
                if groups.len() * 2 > capacity {
                    capacity *= 2;
                    mask = capacity - 1;
                    slots.clear();
                    slots.resize(capacity, NO_GROUP);
                    for (g, b) in groups.iter().enumerate() {
                        let mut slot = hash_of(b.row as usize) as usize & mask;
                        while slots[slot] != NO_GROUP {
                            slot = (slot + 1) & mask;
                        }
                        slots[slot] = g as u32;
                    }
                }
                break g;
            }
            let b = &mut groups[g as usize];
            let first = b.row as usize;
            if same_string(
                conversation_id,
                b.conversation,
                conversations[row],
                first,
                row,
            ) && same_string(bot_id, b.bot, bots[row], first, row)
            {
                b.earliest = b.earliest.min(ts);
                b.latest = b.latest.max(ts);
                break g;
            }
            slot = (slot + 1) & mask;
        };
        group_of.push(g);
    }
    let keep = BooleanBuffer::collect_bool(n, |row| {
        timestamps[row] == groups[group_of[row] as usize].earliest
    });
    let kept = keep.count_set_bits();
    // Filtering copies every column: not worth it for a few rows.
    let bounds = (kept * 10 < n * 8).then(|| {
        let latest = keep
            .set_indices()
            .map(|row| groups[group_of[row] as usize].latest)
            .collect();
        BoundingRows {
            keep: BooleanArray::new(keep, None),
            latest,
        }
    });
    if scratch.bytes() <= SCRATCH_KEPT_BYTES {
        SCRATCH.set(scratch);
    }
    bounds
}

/// The buffers of [`bounding_rows`], kept by each thread from one batch to
/// the next: a batch of 16,384 rows otherwise allocated about 350 KiB of
/// them afresh (the group list alone 256 KiB, which mimalloc gives a page
/// of its own each time). Alternated runs, medians of the whole process
/// over the 10M-event files of `benches/compare_duckdb.py`: insights over
/// DuckDB's, 202.5 → 198.2 and 191.0 → 185.8 ms (two rounds of 21);
/// conversations over Polars', 262.8 → 253.7 ms (15). At 1M events, no
/// change (24.5 / 24.6 ms, 81).
#[derive(Default)]
struct Scratch {
    slots: Vec<u32>,
    groups: Vec<GroupBounds>,
    group_of: Vec<u32>,
}

/// At most this many bytes of [`Scratch`] are kept for the next batch: a
/// batch far larger than the selective reader's (one of a whole file's
/// rows) does not leave its buffers behind on the thread.
const SCRATCH_KEPT_BYTES: usize = 4 << 20;

impl Scratch {
    fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<u32>()
            + self.groups.capacity() * std::mem::size_of::<GroupBounds>()
            + self.group_of.capacity() * std::mem::size_of::<u32>()
    }
}

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> = std::cell::Cell::new(Scratch::default());
}

/// A hash of a conversation id from its view: the view itself when it
/// holds the whole id (up to 12 bytes), else the id's bytes (`id`).
/// Low bits are well mixed (the table's slot comes from them).
/// The bot is left out: a batch mostly holds one bot, and it is compared.
#[inline]
fn conversation_hash<'a>(view: u128, id: impl FnOnce() -> &'a str) -> u64 {
    if view as u32 as usize > INLINE_VIEW_LEN {
        return xxhash_rust::xxh3::xxh3_64(id().as_bytes());
    }
    super::inline_view_hash(view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::RecordBatch;
    use std::sync::Arc;

    use crate::ingest::{normalize, EventColumns, IngestMode, IngestReport, RowNumbers};

    fn bounding_rows_of(cols: &EventColumns) -> Option<BoundingRows> {
        bounding_rows(&cols.timestamp, &cols.bot_id, &cols.conversation_id)
    }

    /// The rows kept, each with the end it carries.
    fn kept(bounds: &BoundingRows) -> Vec<(usize, i64)> {
        assert_eq!(bounds.keep.true_count(), bounds.latest.len());
        bounds
            .keep
            .values()
            .set_indices()
            .zip(bounds.latest.iter().copied())
            .collect()
    }

    /// Event columns of `(bot, conversation, timestamp)` rows.
    fn columns(rows: &[(&str, &str, i64)]) -> EventColumns {
        use arrow_array::{StringArray, TimestampMicrosecondArray};
        let strings = |f: &dyn Fn(usize) -> String| {
            Arc::new(StringArray::from_iter_values((0..rows.len()).map(f)))
        };
        let batch = RecordBatch::try_from_iter([
            ("event_id", strings(&|i| format!("e{i}")) as _),
            (
                "timestamp",
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.2))
                        .with_timezone("UTC"),
                ) as _,
            ),
            ("bot_id", strings(&|i| rows[i].0.to_owned()) as _),
            ("conversation_id", strings(&|i| rows[i].1.to_owned()) as _),
            ("event_type", strings(&|_| "message".to_owned()) as _),
        ])
        .unwrap();
        let mut report = IngestReport::default();
        normalize(&batch, IngestMode::Strict, RowNumbers::From(0), &mut report).unwrap()
    }

    #[test]
    fn keeps_each_conversations_earliest_rows_with_its_latest_time() {
        // Two conversations of 40 events each, interleaved, and the same
        // conversation id under another bot; ties at the earliest time.
        let mut rows = Vec::new();
        for i in 0..40i64 {
            rows.push(("b1", "c1", 1_000 + i));
            rows.push(("b1", "a-long-conversation-id-2", 2_000 - i));
            rows.push(("b2", "c1", 5));
        }
        rows.push(("b1", "c1", 1_000)); // tie at c1's start
        rows.push(("b1", "c1", 1_039)); // tie at c1's end: not kept
        let cols = columns(&rows);
        let bounds = bounding_rows_of(&cols).expect("worth filtering");
        let c1 = rows.len() - 2;
        // c1: row 0 and its tie (earliest), ending at 1_039; the other
        // conversation: row 118 (earliest), ending at 2_000; b2's c1:
        // every row (all at its earliest time), ending at 5.
        let mut expected = vec![(0, 1_039), (3 * 39 + 1, 2_000), (c1, 1_039)];
        expected.extend((0..40).map(|i| (3 * i + 2, 5)));
        expected.sort_unstable();
        assert_eq!(kept(&bounds), expected);
    }

    /// Many conversations, short and long ids, two bots, timestamps with
    /// ties: exactly each conversation's earliest rows are kept, each with
    /// its conversation's latest time (a naive count per conversation).
    #[test]
    fn agrees_with_a_naive_count_per_conversation() {
        // Few conversations, and more than the group table's first slots
        // hold (it then doubles, more than once). The thread's buffers are
        // used again after a larger batch, and dropped after one whose
        // groups outgrow what is kept (over 100,000 groups, 6 MB and more).
        for (conversations, n) in [
            (700, 6_000),
            (12_000, 40_000),
            (700, 6_000),
            (70_000, 250_000),
            (12_000, 40_000),
        ] {
            let ids: Vec<String> = (0..conversations)
                .map(|i| match i % 3 {
                    0 => format!("c{i}"),
                    1 => format!("a-conversation-id-longer-than-twelve-{i}"),
                    _ => format!("{i:012}"),
                })
                .collect();
            let mut state = 7u64;
            let mut next = move || {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 33) as usize
            };
            let rows: Vec<(&str, &str, i64)> = (0..n)
                .map(|_| {
                    let bot = ["b1", "bot-with-a-long-name"][next() % 2];
                    (bot, ids[next() % ids.len()].as_str(), (next() % 50) as i64)
                })
                .collect();
            let bounds = bounding_rows_of(&columns(&rows)).expect("worth filtering");
            let kept: std::collections::HashMap<usize, i64> = kept(&bounds).into_iter().collect();
            let mut by_conversation: std::collections::HashMap<(&str, &str), Vec<usize>> =
                Default::default();
            for (row, &(bot, id, _)) in rows.iter().enumerate() {
                by_conversation.entry((bot, id)).or_default().push(row);
            }
            for (row, &(bot, id, ts)) in rows.iter().enumerate() {
                let same = &by_conversation[&(bot, id)];
                let earliest = same.iter().map(|&r| rows[r].2).min().unwrap();
                let latest = same.iter().map(|&r| rows[r].2).max().unwrap();
                assert_eq!(
                    kept.get(&row),
                    (ts == earliest).then_some(&latest),
                    "{conversations} conversations, row {row}"
                );
            }
        }
    }

    #[test]
    fn a_thread_keeps_its_buffers_unless_a_batch_made_them_large() {
        let kept_bytes = || {
            let scratch = SCRATCH.take();
            let bytes = scratch.bytes();
            SCRATCH.set(scratch);
            bytes
        };
        let rows = |conversations: usize| -> Vec<(String, i64)> {
            (0..conversations)
                .flat_map(|c| (0..3).map(move |t| (format!("c{c}"), t)))
                .collect()
        };
        let bounded = |rows: &[(String, i64)]| {
            let rows: Vec<_> = rows.iter().map(|(c, t)| ("b", c.as_str(), *t)).collect();
            bounding_rows_of(&columns(&rows)).expect("worth filtering")
        };
        let small = rows(1_000);
        bounded(&small);
        assert!((1..=SCRATCH_KEPT_BYTES).contains(&kept_bytes()));
        // 100,000 groups of 64 bytes.
        bounded(&rows(100_000));
        assert_eq!(kept_bytes(), 0);
        assert_eq!(kept(&bounded(&small)).len(), 1_000);
    }

    #[test]
    fn nearly_every_row_kept_is_no_filter() {
        let rows: Vec<_> = (0..100).map(|i| ("b", "c", i64::from(i % 2))).collect();
        // Half the rows at the earliest time.
        assert!(bounding_rows_of(&columns(&rows)).is_some());
        let rows: Vec<_> = (0..100).map(|_| ("b", "c", 7)).collect();
        assert!(bounding_rows_of(&columns(&rows)).is_none());
        assert!(bounding_rows_of(&columns(&[])).is_none());
    }
}
