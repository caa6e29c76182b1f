//! Differential property tests: the engine against a deliberately naive
//! reference implementation of SPEC 2–5 written here with plain loops.
//!
//! Random data sets use tiny alphabets so that everything collides: 1–3
//! bots, 1–8 conversation ids, a handful of timestamp anchors (many exact
//! ties, sub-second offsets), duplicate events re-sent (always identical),
//! optional attributes often null, empty or non-ASCII. The events lie in
//! three days around the Brussels spring-forward night (2024-03-31) or,
//! for about a third of the cases, the autumn fall-back night
//! (2024-10-27). They are ingested in random order and random batch splits
//! through every ingest path (rows, Arrow batches in random physical
//! layouts, NDJSON, Parquet bytes), then random queries of all four kinds
//! (valid and invalid) are compared, field by field, with the reference's
//! full answer, midway through ingestion too.
//!
//! Properties:
//! - `engine_answers_equal_reference`: the warm engine;
//! - `null_rows_are_skipped_or_rejected_atomically`: rows with a null in a
//!   required column, lenient (skipped, counted) and strict (whole input
//!   rejected, engine unchanged, dedup included);
//! - `run_files_answers_equal_engine_and_reference`: batch execution over
//!   NDJSON and Parquet files, and an engine that ingested those files;
//! - `run_files_treats_null_rows_as_the_engine_does`: batch execution over
//!   files with null rows (see also the pinned repro
//!   `run_files_strict_rejects_null_rows_outside_the_query_scope`).
//!
//! The reference's calendar is independent of the library: civil-date
//! arithmetic and the UTC offsets of the four zones used (UTC,
//! Europe/Brussels, Asia/Kolkata, America/New_York) are written out here
//! for 2024 (the table is checked against the tz database by
//! `zone_table_matches_tz_database`), query times are read by hand (gap:
//! moved forward; fold: earlier occurrence), and bucket starts are found
//! by walking the local calendar.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{
    Array, ArrayRef, Int32Array, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use arrow_schema::{DataType, Field, Schema};
use convostat::batch::{run_files, BatchOptions};
use convostat::time::parse_rfc3339_micros;
use convostat::{
    Answer, Engine, ErrorKind, Event, FlowAnswer, FlowTransition, IngestMode, Params, Query,
    Series, SeriesAnswer, SeriesData, Step,
};
use proptest::prelude::*;

mod common;
use common::parquet_bytes;

// ---------------------------------------------------------------------------
// Calendar of the reference (independent of the library).

const US: i64 = 1_000_000;
const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Seconds since the epoch of a UTC wall time.
fn utc(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
    days_from_civil(y, mo, d) * DAY + h * HOUR + mi * MINUTE + s
}

/// 0 = Monday.
fn weekday(days: i64) -> i64 {
    (days + 3).rem_euclid(7)
}

/// `YYYY-MM-DDTHH:MM:SS` of a wall time given in seconds.
fn wall(secs: i64, sep: char) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(DAY));
    let s = secs.rem_euclid(DAY);
    format!(
        "{y:04}-{m:02}-{d:02}{sep}{:02}:{:02}:{:02}",
        s / HOUR,
        s % HOUR / MINUTE,
        s % MINUTE
    )
}

/// `+HH:MM` / `-HH:MM`.
fn offset_suffix(offset: i64) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.abs();
    format!("{sign}{:02}:{:02}", a / HOUR, a % HOUR / MINUTE)
}

/// Fraction with trailing zeros trimmed (`.5`, `.000001`), or nothing.
fn short_fraction(micros: i64) -> String {
    if micros == 0 {
        return String::new();
    }
    let digits = format!("{micros:06}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// SPEC 5 flow timestamps: UTC with 0, 3 or 6 fractional digits.
fn utc_text(ts: i64) -> String {
    let (secs, micros) = (ts.div_euclid(US), ts.rem_euclid(US));
    let fraction = if micros == 0 {
        String::new()
    } else if micros % 1_000 == 0 {
        format!(".{:03}", micros / 1_000)
    } else {
        format!(".{micros:06}")
    };
    format!("{}{fraction}Z", wall(secs, 'T'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zone {
    Utc,
    Brussels,
    Kolkata,
    NewYork,
}

const ZONES: [Zone; 4] = [Zone::Utc, Zone::Brussels, Zone::Kolkata, Zone::NewYork];

impl Zone {
    fn name(self) -> &'static str {
        match self {
            Zone::Utc => "UTC",
            Zone::Brussels => "Europe/Brussels",
            Zone::Kolkata => "Asia/Kolkata",
            Zone::NewYork => "America/New_York",
        }
    }

    /// UTC offset (seconds east) at the instant `t` (seconds); written out
    /// for 2024-01..2025-02 only.
    fn offset(self, t: i64) -> i64 {
        assert!(
            (utc(2024, 1, 1, 0, 0, 0)..utc(2025, 3, 1, 0, 0, 0)).contains(&t),
            "the reference zone table covers 2024-01..2025-02 only: {t}"
        );
        let summer = |from: i64, to: i64| (from..to).contains(&t);
        match self {
            Zone::Utc => 0,
            Zone::Kolkata => 5 * HOUR + 30 * MINUTE,
            Zone::Brussels if summer(utc(2024, 3, 31, 1, 0, 0), utc(2024, 10, 27, 1, 0, 0)) => {
                2 * HOUR
            }
            Zone::Brussels => HOUR,
            Zone::NewYork if summer(utc(2024, 3, 10, 7, 0, 0), utc(2024, 11, 3, 6, 0, 0)) => {
                -4 * HOUR
            }
            Zone::NewYork => -5 * HOUR,
        }
    }

    /// The instant (seconds) of a local wall time: the earlier one when it
    /// happens twice, and moved forward by the gap when it never happens.
    fn local_to_utc(self, local: i64) -> i64 {
        let before = self.offset(local - DAY);
        let after = self.offset(local + DAY);
        let valid: Vec<i64> = [before, after]
            .into_iter()
            .filter(|&o| self.offset(local - o) == o)
            .map(|o| local - o)
            .collect();
        match valid.into_iter().min() {
            Some(t) => t,
            None => local - before,
        }
    }

    /// An x value: the bucket start `t` (seconds) in the zone's wall clock.
    fn x_value(self, t: i64) -> String {
        if self == Zone::Utc {
            return format!("{}Z", wall(t, 'T'));
        }
        let offset = self.offset(t);
        format!("{}{}", wall(t + offset, 'T'), offset_suffix(offset))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Hour,
    Day,
    Week,
    Month,
}

impl Bucket {
    fn name(self) -> &'static str {
        match self {
            Bucket::Hour => "1h",
            Bucket::Day => "1d",
            Bucket::Week => "1w",
            Bucket::Month => "1m",
        }
    }
}

/// Bucket starts (µs) and x values of `[start, end)` in `zone`.
fn reference_axis(
    zone: Zone,
    bucket: Option<Bucket>,
    start: i64,
    end: i64,
) -> (Vec<i64>, Vec<String>) {
    let first = start.div_euclid(US);
    let mut starts = Vec::new();
    let Some(bucket) = bucket else {
        return (vec![start], vec![zone.x_value(first)]);
    };
    if bucket == Bucket::Hour {
        // Every offset of the reference zones is a whole number of hours
        // or constant, so every hour bucket lasts 3600 s.
        let offset = zone.offset(first);
        let local = first + offset;
        let mut t = local - local.rem_euclid(HOUR) - offset;
        while t * US < end {
            starts.push(t);
            t += HOUR;
        }
    } else {
        let local_day = (first + zone.offset(first)).div_euclid(DAY);
        let mut day = match bucket {
            Bucket::Day => local_day,
            Bucket::Week => local_day - weekday(local_day),
            _ => {
                let (y, m, _) = civil_from_days(local_day);
                days_from_civil(y, m, 1)
            }
        };
        loop {
            let t = zone.local_to_utc(day * DAY);
            if t * US >= end {
                break;
            }
            starts.push(t);
            day = match bucket {
                Bucket::Day => day + 1,
                Bucket::Week => day + 7,
                _ => {
                    let (y, m, _) = civil_from_days(day);
                    if m == 12 {
                        days_from_civil(y + 1, 1, 1)
                    } else {
                        days_from_civil(y, m + 1, 1)
                    }
                }
            };
        }
    }
    let x = starts.iter().map(|&t| zone.x_value(t)).collect();
    (starts.iter().map(|&t| t * US).collect(), x)
}

// ---------------------------------------------------------------------------
// Small deterministic PRNG for ingestion choices (order, splits, layouts).

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng((seed ^ 0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------
// Random events.

/// First instant of the events' window: 2024-03-29T00:00:00Z. The window
/// lasts three days and contains the Brussels spring-forward instant.
fn window_start() -> i64 {
    utc(2024, 3, 29, 0, 0, 0)
}

const JITTER_US: [i64; 13] = [
    0,
    0,
    0,
    0,
    1,
    999_999,
    US,
    59 * US,
    30 * MINUTE * US,
    HOUR * US,
    25 * HOUR * US,
    -1,
    -30 * MINUTE * US,
];

#[derive(Debug, Clone)]
struct EventSpec {
    prefix: u8,
    bot: u8,
    conv: u8,
    kind: u8,
    anchor: u8,
    jitter: u8,
    fields: [u8; 12],
}

#[derive(Debug, Clone)]
struct DataSpec {
    /// Shift everything (events and query times) by [`AUTUMN_SHIFT`]: the
    /// autumn fold instead of the spring gap.
    autumn: bool,
    bots: u8,
    convs: u8,
    anchors: Vec<i64>,
    events: Vec<EventSpec>,
    seed: u64,
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        prop::array::uniform12(any::<u8>()),
    )
        .prop_map(
            |(prefix, bot, conv, kind, anchor, jitter, fields)| EventSpec {
                prefix,
                bot,
                conv,
                kind,
                anchor,
                jitter,
                fields,
            },
        )
}

fn anchor() -> impl Strategy<Value = i64> {
    (
        0i64..72,
        prop::sample::select(vec![0i64, 0, 30 * MINUTE, 59 * MINUTE + 59]),
        prop::sample::select(vec![0i64, 0, 1, 500_000, 999_999]),
    )
        .prop_map(|(h, s, us)| (window_start() + h * HOUR + s) * US + us)
}

/// From the spring window (2024-03-29, a Friday) to the autumn one
/// (2024-10-25, a Friday, two days before Brussels falls back).
const AUTUMN_SHIFT: i64 = 210 * DAY * US;

fn data_spec(max_events: usize) -> impl Strategy<Value = DataSpec> {
    (
        prop::bool::weighted(0.35),
        1u8..=3,
        1u8..=8,
        prop::collection::vec(anchor(), 1..6),
        prop::collection::vec(event_spec(), 0..max_events),
        any::<u64>(),
    )
        .prop_map(|(autumn, bots, convs, anchors, events, seed)| DataSpec {
            autumn,
            bots,
            convs,
            anchors,
            events,
            seed,
        })
}

impl DataSpec {
    /// µs added to every event and query time.
    fn shift(&self) -> i64 {
        if self.autumn {
            AUTUMN_SHIFT
        } else {
            0
        }
    }

    /// `queries` moved to this data set's window.
    fn place(&self, queries: &[QuerySpec]) -> Vec<QuerySpec> {
        let mut queries = queries.to_vec();
        for q in &mut queries {
            let range = match q {
                QuerySpec::Series(s) => &mut s.range,
                QuerySpec::Flow(f) => &mut f.range,
            };
            range.start.local += self.shift();
            range.end.local += self.shift();
        }
        queries
    }
}

/// The distinct events of a data set (unique event ids).
fn build_events(d: &DataSpec) -> Vec<Event> {
    d.events
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let pick = |k: usize, options: &[Option<&str>]| {
                options[s.fields[k] as usize % options.len()].map(str::to_owned)
            };
            let prefix = ["e", "E", "e-", "ev", "é"][s.prefix as usize % 5];
            let kind = ["message", "message", "transition", "transition", "feedback"];
            Event {
                event_id: format!("{prefix}{i}"),
                timestamp: d.anchors[s.anchor as usize % d.anchors.len()]
                    + JITTER_US[s.jitter as usize % JITTER_US.len()]
                    + d.shift(),
                bot_id: format!("b{}", 1 + s.bot % d.bots),
                conversation_id: format!("c{}", 1 + s.conv % d.convs),
                event_type: kind[s.kind as usize % kind.len()].to_owned(),
                team_id: pick(0, &[Some("t1"), Some("t2"), None]),
                bot_version: pick(1, &[Some("LIVE"), Some("LIVE"), Some("DRAFT"), None]),
                user_id: pick(2, &[Some("u1"), Some("u2"), None]),
                channel_type: pick(3, &[Some("web"), Some("whatsapp"), None, Some("télé")]),
                language: pick(4, &[Some("en"), Some("nl"), None, Some("en"), Some("")]),
                campaign_id: pick(5, &[Some("c1"), None]),
                campaign_source: pick(6, &[Some("newsletter"), None, Some("facebook_ads")]),
                message_id: pick(7, &[Some("m1"), Some("m2"), None]),
                from_step_id: pick(8, &[Some("s1"), Some("s2"), None]),
                from_step_type: pick(9, &[Some("bot_dialog"), Some("input"), None]),
                to_step_id: pick(10, &[Some("s2"), Some("s3"), None]),
                to_step_type: pick(11, &[Some("input"), Some("bot_dialog"), None]),
            }
        })
        .collect()
}

/// Every event once or more, shuffled.
fn build_stream(events: &[Event], rng: &mut Rng) -> Vec<Event> {
    let mut stream = Vec::new();
    for e in events {
        stream.push(e.clone());
        while rng.below(4) == 0 {
            stream.push(e.clone());
        }
    }
    rng.shuffle(&mut stream);
    stream
}

/// `batch` as a Parquet file in a writer layout drawn by `rng`, and that
/// layout in words (for a failing case's message). The layouts are those
/// the selective batch reader has paths of its own for: every codec (one
/// for the file or one per column), data page v1 and v2 (compressed or
/// stored as they are), pages of a few rows or bytes or cut by content (so
/// that pages are skipped, read in part and read whole), dictionaries that
/// fill up and fall back to plain pages, plain and delta-encoded strings,
/// delta and byte-stream-split timestamps, page and chunk statistics or
/// none (in the page headers too), truncated bounds, offset indexes or
/// none, and bloom filters.
fn parquet_bytes_in_random_layout(batch: &RecordBatch, rng: &mut Rng) -> (Vec<u8>, String) {
    use parquet::basic::{BrotliLevel, Compression, Encoding, GzipLevel, ZstdLevel};
    use parquet::file::properties::{
        CdcOptions, EnabledStatistics, WriterProperties, WriterVersion,
    };
    use parquet::schema::types::ColumnPath;

    let codecs = [
        Compression::UNCOMPRESSED,
        Compression::SNAPPY,
        Compression::ZSTD(ZstdLevel::default()),
        Compression::LZ4_RAW,
        Compression::LZ4,
        Compression::GZIP(GzipLevel::default()),
        Compression::BROTLI(BrotliLevel::default()),
    ];
    let codec = codecs[rng.below(codecs.len())];
    let codec_per_column = rng.below(4) == 0;
    let version = [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0][rng.below(2)];
    let page_rows = [1, 2, 3, 7, 16, 1024][rng.below(6)];
    let group_rows = [1, 5, 13, 40, 1_000_000][rng.below(5)];
    let statistics = [
        EnabledStatistics::None,
        EnabledStatistics::Chunk,
        EnabledStatistics::Page,
    ][rng.below(3)];
    let truncate = [None, Some(1), Some(3), Some(8)][rng.below(4)];
    let dictionary = rng.below(3) != 0;
    let dictionary_bytes = [16, 64, 1 << 20][rng.below(3)];
    let bloom = rng.below(3) == 0;
    let stored_as_is = [1.0, 0.01, 10.0][rng.below(3)];
    let page_bytes = [1 << 20, 64][rng.below(2)];
    let header_statistics = rng.below(2) == 0;
    let no_offset_index = rng.below(2) == 0;
    let by_content = rng.below(5) == 0;
    let mut props = WriterProperties::builder()
        .set_compression(codec)
        .set_writer_version(version)
        .set_data_page_row_count_limit(page_rows)
        .set_write_batch_size(page_rows)
        .set_max_row_group_row_count(Some(group_rows))
        .set_statistics_enabled(statistics)
        .set_statistics_truncate_length(truncate)
        .set_column_index_truncate_length(truncate)
        .set_dictionary_enabled(dictionary)
        .set_dictionary_page_size_limit(dictionary_bytes)
        .set_bloom_filter_enabled(bloom)
        .set_data_page_v2_compression_ratio_threshold(stored_as_is)
        .set_data_page_size_limit(page_bytes)
        .set_write_page_header_statistics(header_statistics)
        .set_offset_index_disabled(no_offset_index);
    if by_content {
        props = props.set_content_defined_chunking(Some(CdcOptions {
            min_chunk_size: 32,
            max_chunk_size: 256,
            ..CdcOptions::default()
        }));
    }
    let mut encodings = Vec::new();
    for field in batch.schema().fields() {
        let name = field.name();
        let choices: &[Encoding] = match field.data_type() {
            DataType::Timestamp(_, _) => &[
                Encoding::PLAIN,
                Encoding::DELTA_BINARY_PACKED,
                Encoding::BYTE_STREAM_SPLIT,
            ],
            DataType::Int32 | DataType::Struct(_) | DataType::List(_) => &[Encoding::PLAIN],
            _ => &[
                Encoding::PLAIN,
                Encoding::DELTA_LENGTH_BYTE_ARRAY,
                Encoding::DELTA_BYTE_ARRAY,
            ],
        };
        if codec_per_column {
            let codec = codecs[rng.below(codecs.len())];
            props = props.set_column_compression(ColumnPath::from(name.as_str()), codec);
            encodings.push(format!("{name} {codec:?}"));
        }
        let encoding = choices[rng.below(choices.len())];
        if encoding != Encoding::PLAIN {
            props = props.set_column_encoding(ColumnPath::from(name.as_str()), encoding);
            encodings.push(format!("{name} {encoding}"));
        }
    }
    let layout = format!(
        "{codec:?}, {version:?} (kept compressed below {stored_as_is}), pages of {page_rows} \
         rows or {page_bytes} B (by content {by_content}), groups of {group_rows}, \
         {statistics:?} statistics truncated to {truncate:?} (in page headers \
         {header_statistics}, no offset index {no_offset_index}), dictionary {dictionary} \
         ({dictionary_bytes} B), bloom {bloom}, columns {encodings:?}"
    );
    let mut out = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props.build()))
            .unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    (out, layout)
}

/// Random batch sizes (empty batches included) covering the stream.
fn split(len: usize, rng: &mut Rng) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < len {
        let n = if rng.below(8) == 0 {
            0
        } else {
            1 + rng.below((len - at).min(12))
        };
        out.push(at..at + n);
        at += n;
    }
    out
}

// ---------------------------------------------------------------------------
// The ingest paths.

type Pick = fn(&Event) -> Option<&str>;

const STRING_COLUMNS: [(&str, bool, Pick); 16] = [
    ("event_id", true, |e| Some(&e.event_id)),
    ("bot_id", true, |e| Some(&e.bot_id)),
    ("conversation_id", true, |e| Some(&e.conversation_id)),
    ("event_type", true, |e| Some(&e.event_type)),
    ("team_id", false, |e| e.team_id.as_deref()),
    ("bot_version", false, |e| e.bot_version.as_deref()),
    ("user_id", false, |e| e.user_id.as_deref()),
    ("channel_type", false, |e| e.channel_type.as_deref()),
    ("language", false, |e| e.language.as_deref()),
    ("campaign_id", false, |e| e.campaign_id.as_deref()),
    ("campaign_source", false, |e| e.campaign_source.as_deref()),
    ("message_id", false, |e| e.message_id.as_deref()),
    ("from_step_id", false, |e| e.from_step_id.as_deref()),
    ("from_step_type", false, |e| e.from_step_type.as_deref()),
    ("to_step_id", false, |e| e.to_step_id.as_deref()),
    ("to_step_type", false, |e| e.to_step_type.as_deref()),
];

/// The events as an Arrow batch in a random accepted physical layout:
/// string types per column, timestamp unit and zone, column order, absent
/// all-null optional columns, extra columns (nested ones too).
///
/// `nulls[row]` (when given) names a required column that is null in that
/// row: an index into [`REQUIRED`].
fn arrow_batch(
    events: &[Event],
    nulls: &[Option<usize>],
    rng: &mut Rng,
    for_parquet: bool,
) -> RecordBatch {
    let null_in = |row: usize, column: &str| {
        nulls
            .get(row)
            .copied()
            .flatten()
            .is_some_and(|c| REQUIRED[c] == column)
    };
    let string_types = [
        DataType::Utf8,
        DataType::LargeUtf8,
        DataType::Utf8View,
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::LargeUtf8)),
    ];
    let mut columns: Vec<(Field, ArrayRef)> = Vec::new();
    for (name, required, pick) in STRING_COLUMNS {
        let values: Vec<Option<&str>> = events
            .iter()
            .enumerate()
            .map(|(row, e)| if null_in(row, name) { None } else { pick(e) })
            .collect();
        let has_null = values.iter().any(Option::is_none);
        if !required && values.iter().all(Option::is_none) && rng.below(2) == 0 {
            continue;
        }
        let data_type = &string_types[rng.below(string_types.len())];
        let base: ArrayRef = Arc::new(StringArray::from(values));
        let array = arrow_cast::cast(&base, data_type).expect("cast string column");
        let nullable = !required || has_null || rng.below(2) == 0;
        columns.push((Field::new(name, data_type.clone(), nullable), array));
    }
    let ts: Vec<i64> = events.iter().map(|e| e.timestamp).collect();
    let valid: Vec<bool> = (0..events.len())
        .map(|row| !null_in(row, "timestamp"))
        .collect();
    let values = |scale: fn(i64) -> i64| -> Vec<Option<i64>> {
        ts.iter()
            .zip(&valid)
            .map(|(&t, &v)| v.then(|| scale(t)))
            .collect()
    };
    let zones: [Option<&str>; 5] = [
        None,
        Some("UTC"),
        Some("+02:00"),
        Some("Europe/Brussels"),
        Some("-04:00"),
    ];
    let zone = zones[rng.below(zones.len())];
    let mut units = vec![1u8, 2];
    if ts.iter().all(|t| t % 1_000 == 0) {
        units.push(3);
    }
    if ts.iter().all(|t| t % US == 0) && !for_parquet {
        units.push(4);
    }
    let timestamps: ArrayRef = match units[rng.below(units.len())] {
        1 => Arc::new(TimestampMicrosecondArray::from(values(|t| t)).with_timezone_opt(zone)),
        2 => {
            // Nanoseconds below the µs are floored away.
            let nanos: Vec<Option<i64>> = values(|t| t * 1_000)
                .into_iter()
                .map(|v| v.map(|ns| ns + rng.below(1_000) as i64))
                .collect();
            Arc::new(TimestampNanosecondArray::from(nanos).with_timezone_opt(zone))
        }
        3 => {
            Arc::new(TimestampMillisecondArray::from(values(|t| t / 1_000)).with_timezone_opt(zone))
        }
        _ => Arc::new(TimestampSecondArray::from(values(|t| t / US)).with_timezone_opt(zone)),
    };
    let nullable = valid.contains(&false) || rng.below(2) == 0;
    columns.push((
        Field::new("timestamp", timestamps.data_type().clone(), nullable),
        timestamps,
    ));
    if rng.below(3) == 0 {
        let extra: ArrayRef = Arc::new(Int32Array::from_iter_values(0..events.len() as i32));
        columns.push((Field::new("extra_column", DataType::Int32, false), extra));
    }
    // Nested extra columns, one holding a field named as a required column.
    if rng.below(4) == 0 {
        let inner = Arc::new(Field::new("bot_id", DataType::Utf8, true));
        let values: ArrayRef = Arc::new(
            events
                .iter()
                .map(|e| (e.event_id.len() % 2 == 0).then(|| format!("not {}", e.bot_id)))
                .collect::<StringArray>(),
        );
        let nested = StructArray::from(vec![(inner, values)]);
        columns.push((
            Field::new("extra_struct", nested.data_type().clone(), true),
            Arc::new(nested),
        ));
    }
    if rng.below(4) == 0 {
        let mut list = ListBuilder::new(StringBuilder::new());
        for e in events {
            for _ in 0..e.event_id.len() % 3 {
                list.values().append_value(&e.conversation_id);
            }
            list.append(e.event_id.len() % 5 != 0);
        }
        let list = list.finish();
        columns.push((
            Field::new("extra_list", list.data_type().clone(), true),
            Arc::new(list),
        ));
    }
    rng.shuffle(&mut columns);
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns.into_iter().unzip();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("valid batch")
}

/// Required columns, in the order `nulls` indexes them.
const REQUIRED: [&str; 5] = [
    "event_id",
    "timestamp",
    "bot_id",
    "conversation_id",
    "event_type",
];

const OPTIONAL_KEYS: [&str; 12] = [
    "team_id",
    "bot_version",
    "user_id",
    "channel_type",
    "language",
    "campaign_id",
    "campaign_source",
    "message_id",
    "from_step_id",
    "from_step_type",
    "to_step_id",
    "to_step_type",
];

/// The events as NDJSON: serde's form, sometimes with explicit nulls, an
/// unknown key, timestamps with an offset, blank lines.
/// `nulls` as for [`arrow_batch`]: such a value is `null` or absent.
fn ndjson(events: &[Event], nulls: &[Option<usize>], rng: &mut Rng) -> String {
    let mut out = String::new();
    for (row, e) in events.iter().enumerate() {
        let mut value = serde_json::to_value(e).unwrap();
        let object = value.as_object_mut().unwrap();
        if rng.below(3) == 0 {
            for key in OPTIONAL_KEYS {
                object.entry(key).or_insert(serde_json::Value::Null);
            }
        }
        if rng.below(4) == 0 {
            object.insert("colour".into(), serde_json::json!([1, "x"]));
        }
        if rng.below(3) == 0 {
            let offset = [5 * HOUR + 30 * MINUTE, -4 * HOUR, 0, 2 * HOUR][rng.below(4)];
            let (secs, micros) = (e.timestamp.div_euclid(US), e.timestamp.rem_euclid(US));
            // Sometimes with nanoseconds, which are floored away.
            let fraction = match rng.below(3) {
                0 => format!(".{micros:06}{:03}", rng.below(1_000)),
                _ => short_fraction(micros),
            };
            let text = format!(
                "{}{fraction}{}",
                wall(secs + offset, 'T'),
                offset_suffix(offset)
            );
            object.insert("timestamp".into(), text.into());
        }
        if let Some(c) = nulls.get(row).copied().flatten() {
            if rng.below(2) == 0 {
                object.insert(REQUIRED[c].into(), serde_json::Value::Null);
            } else {
                object.remove(REQUIRED[c]);
            }
        }
        out.push_str(&serde_json::to_string(&value).unwrap());
        out.push('\n');
        if rng.below(6) == 0 {
            out.push_str(["\n", "   \n", "\t\n"][rng.below(3)]);
        }
    }
    out
}

/// Ingests `batch` through a random path.
fn ingest(
    engine: &Engine,
    batch: &[Event],
    rng: &mut Rng,
) -> convostat::Result<convostat::IngestReport> {
    match rng.below(7) {
        0 | 1 => engine.ingest_events(batch),
        2 | 3 => engine.ingest_batch(&arrow_batch(batch, &[], rng, false)),
        4 | 5 => engine.ingest_ndjson(ndjson(batch, &[], rng).as_bytes()),
        _ => {
            let groups = 1 + rng.below(4);
            engine.ingest_parquet_bytes(parquet_bytes(&arrow_batch(batch, &[], rng, true), groups))
        }
    }
}

// ---------------------------------------------------------------------------
// The reference.

const ATTRIBUTES: [&str; 7] = [
    "team_id",
    "bot_version",
    "user_id",
    "channel_type",
    "language",
    "campaign_id",
    "campaign_source",
];

fn attributes_of(e: &Event) -> [Option<String>; 7] {
    [
        e.team_id.clone(),
        e.bot_version.clone(),
        e.user_id.clone(),
        e.channel_type.clone(),
        e.language.clone(),
        e.campaign_id.clone(),
        e.campaign_source.clone(),
    ]
}

#[derive(Debug, Clone)]
struct Conv {
    bot: String,
    id: String,
    start: i64,
    end: i64,
    messages: u64,
    attributes: [Option<String>; 7],
    transitions: Vec<Event>,
}

impl Conv {
    fn attribute(&self, name: &str) -> Option<String> {
        let i = ATTRIBUTES.iter().position(|&a| a == name).unwrap();
        self.attributes[i].clone()
    }

    fn field(&self, name: &str) -> Option<String> {
        if name == "bot_id" {
            Some(self.bot.clone())
        } else {
            self.attribute(name)
        }
    }
}

/// Conversations of an ingested stream: dedup by event id (first wins),
/// then one summary per (bot_id, conversation_id).
fn reference(stream: &[Event]) -> Vec<Conv> {
    let mut seen = HashSet::new();
    let mut groups: BTreeMap<(String, String), Vec<&Event>> = BTreeMap::new();
    for e in stream {
        if seen.insert(e.event_id.clone()) {
            groups
                .entry((e.bot_id.clone(), e.conversation_id.clone()))
                .or_default()
                .push(e);
        }
    }
    let mut convs = Vec::new();
    for ((bot, id), events) in groups {
        let mut start = i64::MAX;
        let mut end = i64::MIN;
        let mut messages = 0;
        let mut first: Option<&Event> = None;
        let mut transitions = Vec::new();
        for &e in &events {
            start = start.min(e.timestamp);
            end = end.max(e.timestamp);
            if e.event_type == "message" {
                messages += 1;
            }
            if e.event_type == "transition" {
                transitions.push(e.clone());
            }
            let earlier = match first {
                None => true,
                Some(f) => {
                    (e.timestamp, e.event_id.as_bytes()) < (f.timestamp, f.event_id.as_bytes())
                }
            };
            if earlier {
                first = Some(e);
            }
        }
        convs.push(Conv {
            bot,
            id,
            start,
            end,
            messages,
            attributes: attributes_of(first.unwrap()),
            transitions,
        });
    }
    convs
}

// ---------------------------------------------------------------------------
// Random queries.

/// A query time: a wall time and how it is written.
#[derive(Debug, Clone)]
struct TimeArg {
    /// µs of the wall time, counted as if it were UTC.
    local: i64,
    /// 0 `Z`, 1 offset, 2 naive with `T`, 3 naive with a space, 4 date.
    form: u8,
    offset: u8,
}

const OFFSETS: [i64; 4] = [2 * HOUR, -4 * HOUR, 5 * HOUR + 30 * MINUTE, 0];

impl TimeArg {
    fn text(&self) -> String {
        let (secs, micros) = (self.local.div_euclid(US), self.local.rem_euclid(US));
        let fraction = short_fraction(micros);
        match self.form % 5 {
            0 => format!("{}{fraction}Z", wall(secs, 'T')),
            1 => format!(
                "{}{fraction}{}",
                wall(secs, 'T'),
                offset_suffix(OFFSETS[self.offset as usize % OFFSETS.len()])
            ),
            2 => format!("{}{fraction}", wall(secs, 'T')),
            3 => format!("{}{fraction}", wall(secs, ' ')),
            _ => wall(secs, 'T')[..10].to_owned(),
        }
    }

    /// The instant (µs) the text means in `zone`.
    fn instant(&self, zone: Zone) -> i64 {
        let (secs, micros) = (self.local.div_euclid(US), self.local.rem_euclid(US));
        match self.form % 5 {
            0 => self.local,
            1 => self.local - OFFSETS[self.offset as usize % OFFSETS.len()] * US,
            2 | 3 => zone.local_to_utc(secs) * US + micros,
            _ => zone.local_to_utc(secs.div_euclid(DAY) * DAY) * US,
        }
    }
}

/// End minus start of a query range: mostly days, so that ranges hold
/// events, sometimes short or empty.
const DELTAS: [i64; 21] = [
    -HOUR * US,
    0,
    1,
    30 * MINUTE * US,
    HOUR * US,
    2 * HOUR * US,
    23 * HOUR * US,
    DAY * US,
    25 * HOUR * US,
    2 * DAY * US,
    2 * DAY * US,
    3 * DAY * US,
    3 * DAY * US,
    4 * DAY * US,
    4 * DAY * US,
    5 * DAY * US,
    7 * DAY * US,
    7 * DAY * US,
    9 * DAY * US,
    31 * DAY * US,
    40 * DAY * US,
];

#[derive(Debug, Clone)]
struct RangeSpec {
    start: TimeArg,
    end: TimeArg,
}

impl RangeSpec {
    fn instants(&self, zone: Zone) -> (i64, i64) {
        (self.start.instant(zone), self.end.instant(zone))
    }
}

/// A start wall time between 2024-03-27 and 2024-03-31, often near the
/// Brussels spring gap (2024-03-31 02:00–03:00 local).
fn local_time() -> impl Strategy<Value = i64> {
    let first_day = utc(2024, 3, 27, 0, 0, 0);
    let gap_day = utc(2024, 3, 31, 0, 0, 0);
    prop_oneof![
        3 => (
            0i64..5,
            0i64..24,
            prop::sample::select(vec![0i64, 0, 0, 30, 17]),
            prop::sample::select(vec![0i64, 0, 0, 59]),
            prop::sample::select(vec![0i64, 0, 0, 500_000, 1]),
        )
            .prop_map(move |(d, h, m, s, us)| {
                (first_day + d * DAY + h * HOUR + m * MINUTE + s) * US + us
            }),
        1 => (0i64..5, prop::sample::select(vec![0i64, 30]))
            .prop_map(move |(h, m)| (gap_day + h * HOUR + m * MINUTE) * US),
        1 => Just(utc(2024, 3, 28, 0, 0, 0) * US),
    ]
}

fn range_spec() -> impl Strategy<Value = RangeSpec> {
    (
        local_time(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        prop::bool::weighted(0.7),
        any::<u8>(),
        any::<u8>(),
    )
        .prop_map(|(local, delta, f1, o1, same, f2, o2)| RangeSpec {
            start: TimeArg {
                local,
                form: f1,
                offset: o1,
            },
            end: TimeArg {
                local: local + DELTAS[delta as usize % DELTAS.len()],
                form: if same { f1 } else { f2 },
                offset: if same { o1 } else { o2 },
            },
        })
}

const BOTS: [&str; 8] = ["b1", "b1", "b1", "b2", "b2", "b3", "B1", "b9"];
const VERSIONS: [&str; 9] = [
    "LIVE", "LIVE", "LIVE", "LIVE", "DRAFT", "DRAFT", "DRAFT", "live", "",
];
const TEAMS: [&str; 4] = ["t1", "t1", "t2", "t3"];
const TZS: [Option<Zone>; 6] = [
    None,
    Some(Zone::Utc),
    Some(Zone::Brussels),
    Some(Zone::Brussels),
    Some(Zone::Kolkata),
    Some(Zone::NewYork),
];
const BUCKETS: [Option<Bucket>; 6] = [
    None,
    Some(Bucket::Hour),
    Some(Bucket::Day),
    Some(Bucket::Day),
    Some(Bucket::Week),
    Some(Bucket::Month),
];
/// `channel_type` filters: often none, items as written (no trimming, no
/// case folding, empty items dropped, repeats).
const CHANNEL_FILTERS: [Option<&str>; 16] = [
    None,
    None,
    None,
    None,
    Some(""),
    Some(","),
    Some("web"),
    Some("web"),
    Some("whatsapp"),
    Some("web,whatsapp"),
    Some("web, whatsapp"),
    Some(",web,,"),
    Some("Web"),
    Some("whatsapp,web,web"),
    Some("en"),
    Some("télé,web"),
];
/// `language` filters.
const LANGUAGE_FILTERS: [Option<&str>; 15] = [
    None,
    None,
    None,
    None,
    Some(""),
    Some("en"),
    Some("en"),
    Some("nl"),
    Some("nl,en"),
    Some("en,"),
    Some(" en"),
    Some("EN"),
    Some("fr"),
    Some(",nl,"),
    Some("web"),
];
const BOT_GROUPS: [Option<&str>; 5] =
    [None, None, Some("channel_type"), Some("language"), Some("")];
const STATS: [&str; 3] = ["num_conversations", "duration_seconds", "num_messages"];
const AGGREGATES: [Option<&str>; 10] = [
    None,
    Some("count"),
    Some("sum"),
    Some("mean"),
    Some("min"),
    Some("max"),
    Some("p50"),
    Some("p90"),
    Some("p95"),
    Some("p99"),
];
const USAGE_FIELDS: [&str; 7] = [
    "bot_id",
    "bot_version",
    "team_id",
    "channel_type",
    "language",
    "campaign_id",
    "campaign_source",
];

#[derive(Debug, Clone)]
struct SeriesSpec {
    /// 0 conversations, 1 insights, 2 usage.
    kind: u8,
    /// Mostly the bot, version and team of an existing conversation.
    target: u8,
    bot: u8,
    version: u8,
    team: u8,
    tz: u8,
    bucket: u8,
    range: RangeSpec,
    channel: u8,
    language: u8,
    group: u8,
    stat: u8,
    aggregate: u8,
    fields: Vec<usize>,
    repeat_field: bool,
}

#[derive(Debug, Clone)]
struct FlowSpec {
    /// Mostly an existing conversation (and its version), to find some.
    target: u8,
    bot: u8,
    conv: u8,
    version: u8,
    range: RangeSpec,
    message: u8,
}

#[derive(Debug, Clone)]
enum QuerySpec {
    Series(SeriesSpec),
    Flow(FlowSpec),
}

fn series_spec() -> impl Strategy<Value = SeriesSpec> {
    (
        (
            0u8..3,
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
        ),
        range_spec(),
        (
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
        ),
        prop::sample::subsequence((0..USAGE_FIELDS.len()).collect::<Vec<_>>(), 0..=7)
            .prop_shuffle(),
        prop::bool::weighted(0.05),
    )
        .prop_map(
            |(
                (kind, bot, version, team, tz, bucket),
                range,
                (channel, language, group, stat, aggregate, target),
                fields,
                repeat_field,
            )| SeriesSpec {
                kind,
                target,
                bot,
                version,
                team,
                tz,
                bucket,
                range,
                channel,
                language,
                group,
                stat,
                aggregate,
                fields,
                repeat_field,
            },
        )
}

fn flow_spec() -> impl Strategy<Value = FlowSpec> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        range_spec(),
        any::<u8>(),
    )
        .prop_map(|(target, bot, conv, version, range, message)| FlowSpec {
            target,
            bot,
            conv,
            version,
            range,
            message,
        })
}

fn query_spec() -> impl Strategy<Value = QuerySpec> {
    prop_oneof![
        2 => series_spec().prop_map(QuerySpec::Series),
        1 => flow_spec().prop_map(QuerySpec::Flow),
    ]
}

fn pick<T: Copy>(options: &[T], i: u8) -> T {
    options[i as usize % options.len()]
}

impl SeriesSpec {
    fn kind_name(&self) -> &'static str {
        ["conversations", "insights", "usage"][self.kind as usize % 3]
    }

    fn usage_fields(&self) -> Vec<&'static str> {
        let mut fields: Vec<&str> = self.fields.iter().map(|&i| USAGE_FIELDS[i]).collect();
        if self.repeat_field && !fields.is_empty() {
            fields.push(fields[0]);
        }
        fields
    }

    /// `bot_id`, `version` and `team_id`: mostly those of an existing
    /// conversation, else from small fixed sets.
    fn who(&self, convs: &[Conv]) -> (String, String, String) {
        let mut who = (
            pick(&BOTS, self.bot).to_owned(),
            pick(&VERSIONS, self.version).to_owned(),
            pick(&TEAMS, self.team).to_owned(),
        );
        if self.target % 3 != 0 && !convs.is_empty() {
            let c = &convs[self.target as usize / 3 % convs.len()];
            who.0.clone_from(&c.bot);
            if let Some(v) = c.attribute("bot_version") {
                who.1 = v;
            }
            if let Some(t) = c.attribute("team_id") {
                who.2 = t;
            }
        }
        who
    }

    fn params(&self, convs: &[Conv]) -> Vec<(String, String)> {
        let mut p: Vec<(&str, String)> = Vec::new();
        let kind = self.kind % 3;
        let (bot, version, team) = self.who(convs);
        if kind == 2 {
            p.push(("team_id", team));
        } else {
            p.push(("bot_id", bot));
            p.push(("version", version));
        }
        p.push(("start_time", self.range.start.text()));
        p.push(("end_time", self.range.end.text()));
        if let Some(zone) = pick(&TZS, self.tz) {
            p.push(("tz", zone.name().into()));
        }
        if let Some(bucket) = pick(&BUCKETS, self.bucket) {
            p.push(("bucket", bucket.name().into()));
        }
        if kind == 2 {
            let fields = self.usage_fields();
            if !fields.is_empty() || self.group % 2 == 0 {
                p.push(("group_by", fields.join(",")));
            }
        } else {
            let filters = [
                ("channel_type", pick(&CHANNEL_FILTERS, self.channel)),
                ("language", pick(&LANGUAGE_FILTERS, self.language)),
            ];
            for (name, filter) in filters {
                if let Some(f) = filter {
                    p.push((name, f.into()));
                }
            }
            if let Some(g) = pick(&BOT_GROUPS, self.group) {
                p.push(("group_by", g.into()));
            }
        }
        if kind == 1 {
            p.push(("stat", pick(&STATS, self.stat).into()));
            if let Some(a) = pick(&AGGREGATES, self.aggregate) {
                p.push(("aggregate", a.into()));
            }
        }
        p.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

impl FlowSpec {
    fn conversation_id(&self) -> String {
        match self.conv % 20 {
            19 => "c99".into(),
            n if n < 14 => format!("c{}", 1 + n % 3),
            n => format!("c{}", 1 + n % 8),
        }
    }

    fn params(&self, convs: &[Conv]) -> Vec<(String, String)> {
        let mut bot = pick(&["b1", "b1", "b2", "b3", "b9"], self.bot).to_owned();
        let mut conversation_id = self.conversation_id();
        let mut version = pick(&VERSIONS, self.version).to_owned();
        if self.target % 5 != 0 && !convs.is_empty() {
            let c = &convs[self.target as usize / 5 % convs.len()];
            bot.clone_from(&c.bot);
            conversation_id.clone_from(&c.id);
            if self.version % 4 != 0 {
                version = c.attribute("bot_version").unwrap_or_else(|| "LIVE".into());
            }
        }
        let mut p = vec![
            ("bot_id".to_owned(), bot),
            ("conversation_id".to_owned(), conversation_id),
            ("version".to_owned(), version),
            ("start_time".to_owned(), self.range.start.text()),
            ("end_time".to_owned(), self.range.end.text()),
        ];
        if let Some(m) = pick(
            &[None, None, Some("m1"), Some("m2"), Some("m9"), Some("")],
            self.message,
        ) {
            p.push(("message_id".to_owned(), m.to_owned()));
        }
        p
    }
}

impl QuerySpec {
    fn kind_name(&self) -> &'static str {
        match self {
            QuerySpec::Series(s) => s.kind_name(),
            QuerySpec::Flow(_) => "flow",
        }
    }

    fn params(&self, convs: &[Conv]) -> Vec<(String, String)> {
        match self {
            QuerySpec::Series(s) => s.params(convs),
            QuerySpec::Flow(f) => f.params(convs),
        }
    }
}

// ---------------------------------------------------------------------------
// Expected answers.

fn list_matches(filter: Option<&str>, value: &Option<String>) -> bool {
    let items: Vec<&str> = filter
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .collect();
    items.is_empty() || value.as_deref().is_some_and(|v| items.contains(&v))
}

fn aggregate(name: &str, mut values: Vec<u64>) -> u64 {
    let n = values.len() as u64;
    if n == 0 {
        return 0;
    }
    let sum: u64 = values.iter().sum();
    match name {
        "count" => n,
        "sum" => sum,
        "mean" => (2 * sum + n) / (2 * n),
        "min" => *values.iter().min().unwrap(),
        "max" => *values.iter().max().unwrap(),
        p => {
            let p: u64 = p[1..].parse().unwrap();
            values.sort_unstable();
            let rank = (p * n).div_ceil(100);
            values[rank as usize - 1]
        }
    }
}

fn reference_series(values: Vec<u64>, labels: BTreeMap<String, String>) -> Series {
    let n = values.len() as u64;
    let sum: u64 = values.iter().sum();
    Series {
        mean: (2 * sum + n) / (2 * n),
        max: *values.iter().max().unwrap(),
        min: *values.iter().min().unwrap(),
        sum,
        values,
        labels,
    }
}

fn expected_series(convs: &[Conv], s: &SeriesSpec) -> Result<SeriesAnswer, ErrorKind> {
    let kind = s.kind % 3;
    let zone = pick(&TZS, s.tz).unwrap_or(Zone::Utc);
    let (bot, version, team) = s.who(convs);
    let version = version.as_str();
    let (start, end) = s.range.instants(zone);
    let mut bucket = pick(&BUCKETS, s.bucket);
    let (stat, agg) = if kind == 1 {
        let stat = pick(&STATS, s.stat);
        let default = if stat == "num_conversations" {
            "count"
        } else {
            "mean"
        };
        (stat, pick(&AGGREGATES, s.aggregate).unwrap_or(default))
    } else {
        ("num_conversations", "count")
    };
    let group_by: Vec<&str> = if kind == 2 {
        s.usage_fields()
    } else {
        pick(&BOT_GROUPS, s.group)
            .filter(|g| !g.is_empty())
            .into_iter()
            .collect()
    };
    let invalid = (kind != 2 && version.is_empty())
        || (stat == "num_conversations" && agg != "count")
        || (kind == 2 && bucket.is_none())
        || (kind == 2 && s.repeat_field && !group_by.is_empty())
        || start >= end;
    if invalid {
        return Err(ErrorKind::InvalidQuery);
    }
    if kind == 0 {
        bucket = bucket.or(Some(Bucket::Day));
    }
    let (starts, x_values) = reference_axis(zone, bucket, start, end);
    let (channel, language) = if kind == 2 {
        (None, None)
    } else {
        (
            pick(&CHANNEL_FILTERS, s.channel),
            pick(&LANGUAGE_FILTERS, s.language),
        )
    };
    // group labels → per-bucket stat values
    let mut groups: BTreeMap<Vec<Option<String>>, Vec<Vec<u64>>> = BTreeMap::new();
    for c in convs {
        let selected = if kind == 2 {
            c.attribute("team_id") == Some(team.clone())
        } else {
            c.bot == bot
                && c.attribute("bot_version").as_deref() == Some(version)
                && list_matches(channel, &c.attribute("channel_type"))
                && list_matches(language, &c.attribute("language"))
        };
        if !selected || c.start < start || c.start >= end {
            continue;
        }
        let i = starts.iter().rposition(|&b| b <= c.start).unwrap();
        let value = match stat {
            "num_conversations" => 1,
            "duration_seconds" => ((c.end - c.start) / US) as u64,
            _ => c.messages,
        };
        let key: Vec<Option<String>> = group_by.iter().map(|g| c.field(g)).collect();
        groups
            .entry(key)
            .or_insert_with(|| vec![Vec::new(); starts.len()])[i]
            .push(value);
    }
    if group_by.is_empty() && groups.is_empty() {
        groups.insert(Vec::new(), vec![Vec::new(); starts.len()]);
    }
    let mut series: Vec<(String, Series)> = groups
        .into_iter()
        .map(|(key, buckets)| {
            let values = buckets.into_iter().map(|b| aggregate(agg, b)).collect();
            let shown: Vec<String> = key
                .iter()
                .map(|v| v.clone().unwrap_or_else(|| "(none)".into()))
                .collect();
            let label = if group_by.is_empty() {
                stat.to_owned()
            } else {
                shown.join(", ")
            };
            let labels = group_by.iter().map(|g| g.to_string()).zip(shown).collect();
            (label, reference_series(values, labels))
        })
        .collect();
    series.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let (series_labels, series) = series.into_iter().unzip();
    Ok(SeriesAnswer {
        data: SeriesData {
            series,
            series_labels,
            x_values,
        },
    })
}

fn expected_flow(convs: &[Conv], f: &FlowSpec) -> Result<FlowAnswer, ErrorKind> {
    let params = f.params(convs);
    let get = |k: &str| {
        params
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    };
    let (bot, conv_id, version) = (
        get("bot_id").unwrap(),
        get("conversation_id").unwrap(),
        get("version").unwrap(),
    );
    let message = get("message_id").filter(|m| !m.is_empty());
    let (start, end) = f.range.instants(Zone::Utc);
    if version.is_empty() || start >= end {
        return Err(ErrorKind::InvalidQuery);
    }
    let Some(c) = convs.iter().find(|c| c.bot == bot && c.id == conv_id) else {
        return Err(ErrorKind::NotFound);
    };
    if c.attribute("bot_version").as_deref() != Some(version.as_str()) {
        return Err(ErrorKind::NotFound);
    }
    let mut transitions: Vec<&Event> = c.transitions.iter().collect();
    transitions.sort_by(|a, b| {
        (a.timestamp, a.event_id.as_bytes()).cmp(&(b.timestamp, b.event_id.as_bytes()))
    });
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    let mut listed = Vec::new();
    for (i, t) in transitions.iter().enumerate() {
        if t.timestamp < start || t.timestamp >= end {
            continue;
        }
        if message.is_some() && t.message_id != message {
            continue;
        }
        listed.push(FlowTransition {
            id: t.event_id.clone(),
            from_step: Step {
                id: text(&t.from_step_id),
                step_type: text(&t.from_step_type),
            },
            to_step: Step {
                id: text(&t.to_step_id),
                step_type: text(&t.to_step_type),
            },
            depth: i as u64 + 1,
            timestamp: utc_text(t.timestamp),
        });
    }
    Ok(FlowAnswer {
        bot_id: bot,
        conversation_id: conv_id,
        user_id: text(&c.attribute("user_id")),
        transitions: listed,
    })
}

fn expected(convs: &[Conv], q: &QuerySpec) -> Result<Answer, ErrorKind> {
    match q {
        QuerySpec::Series(s) => expected_series(convs, s).map(Answer::Series),
        QuerySpec::Flow(f) => expected_flow(convs, f).map(Answer::Flow),
    }
}

/// The library's query for `q`, or the kind of error building it gave.
fn build_query(q: &QuerySpec, convs: &[Conv]) -> Result<Query, ErrorKind> {
    let params = Params::new(q.params(convs)).map_err(|e| e.kind())?;
    Query::from_params(q.kind_name(), &params).map_err(|e| {
        assert!(!e.to_string().is_empty());
        e.kind()
    })
}

/// Checks of an engine answer that do not use the reference: the parsed
/// range equals the reference's reading of the times, and an x axis is
/// strictly increasing, starts at or before `start_time` with the next
/// start after it, and ends before `end_time`.
fn check_axis(
    q: &QuerySpec,
    convs: &[Conv],
    query: &Query,
    answer: &Answer,
) -> Result<(), TestCaseError> {
    let range = query.range();
    let zone = match q {
        QuerySpec::Series(s) => pick(&TZS, s.tz).unwrap_or(Zone::Utc),
        QuerySpec::Flow(_) => Zone::Utc,
    };
    let (start, end) = match q {
        QuerySpec::Series(s) => s.range.instants(zone),
        QuerySpec::Flow(f) => f.range.instants(zone),
    };
    prop_assert_eq!(
        (range.start, range.end),
        (start, end),
        "range of {:?}",
        q.params(convs)
    );
    let Answer::Series(a) = answer else {
        return Ok(());
    };
    let x: Vec<i64> = a
        .data
        .x_values
        .iter()
        .map(|v| parse_rfc3339_micros(v).unwrap())
        .collect();
    prop_assert!(!x.is_empty());
    prop_assert!(
        x.windows(2).all(|w| w[0] < w[1]),
        "x not increasing: {:?}",
        a.data.x_values
    );
    prop_assert!(x[0] <= start);
    prop_assert!(x.get(1).is_none_or(|&next| next > start));
    prop_assert!(*x.last().unwrap() < end);
    for series in &a.data.series {
        prop_assert_eq!(series.values.len(), x.len());
    }
    Ok(())
}

fn run_and_compare(engine: &Engine, convs: &[Conv], q: &QuerySpec) -> Result<(), TestCaseError> {
    let want = expected(convs, q);
    let got = match build_query(q, convs) {
        Ok(query) => {
            let got = engine.query(&query).map_err(|e| e.kind());
            if let Ok(answer) = &got {
                check_axis(q, convs, &query, answer)?;
            }
            got
        }
        Err(kind) => Err(kind),
    };
    prop_assert_eq!(got, want, "query {} {:?}", q.kind_name(), q.params(convs));
    Ok(())
}

fn property_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

proptest! {
    #![proptest_config(property_config(256))]

    /// Random data through random ingest paths, orders and splits; every
    /// answer (also midway through ingestion) equals the reference's.
    #[test]
    fn engine_answers_equal_reference(
        data in data_spec(60),
        queries in prop::collection::vec(query_spec(), 1..16),
    ) {
        let events = build_events(&data);
        let queries = data.place(&queries);
        let mut rng = Rng::new(data.seed);
        let stream = build_stream(&events, &mut rng);
        let engine = if rng.below(4) == 0 {
            Engine::with_mode(IngestMode::Lenient)
        } else {
            Engine::new()
        };
        let mut seen = HashSet::new();
        let batches = split(stream.len(), &mut rng);
        for (k, range) in batches.iter().enumerate() {
            let batch = &stream[range.clone()];
            let report = ingest(&engine, batch, &mut rng).unwrap();
            let fresh = batch.iter().filter(|e| seen.insert(e.event_id.clone())).count() as u64;
            prop_assert_eq!(report.rows_seen, batch.len() as u64);
            prop_assert_eq!(report.rows_ingested, fresh);
            prop_assert_eq!(report.duplicates, batch.len() as u64 - fresh);
            prop_assert_eq!(report.skipped_rows(), 0);
            if k % 2 == 1 {
                let convs = reference(&stream[..range.end]);
                run_and_compare(&engine, &convs, &queries[k % queries.len()])?;
            }
        }
        let convs = reference(&stream);
        let stats = engine.stats();
        prop_assert_eq!(stats.conversations, convs.len());
        prop_assert_eq!(stats.events, events.len());
        for q in &queries {
            run_and_compare(&engine, &convs, q)?;
        }
    }
}

/// The number after `row ` in an error message.
/// The row (or NDJSON line) a message names.
fn row_named(message: &str) -> Option<u64> {
    let at = match message.find("row ") {
        Some(at) => at + 4,
        None => message.find("line ")? + 5,
    };
    let digits: String = message[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

proptest! {
    #![proptest_config(property_config(256))]

    /// Rows with a null in a required column: a lenient engine skips
    /// exactly those rows and counts them, a strict engine rejects the
    /// whole input (naming column and row) and stays exactly as it was —
    /// dedup included, so a later good copy of a skipped or rejected event
    /// still counts. Both then answer as the reference over what they kept.
    #[test]
    fn null_rows_are_skipped_or_rejected_atomically(
        data in data_spec(40),
        marks in prop::collection::vec(any::<u8>(), 1..40),
        queries in prop::collection::vec(query_spec(), 1..8),
    ) {
        let events = build_events(&data);
        let queries = data.place(&queries);
        let mut rng = Rng::new(data.seed);
        let stream = build_stream(&events, &mut rng);
        let nulls: Vec<Option<usize>> = (0..stream.len())
            .map(|i| {
                let m = marks[i % marks.len()] as usize;
                (m % 5 == 0).then_some(m / 5 % REQUIRED.len())
            })
            .collect();
        let lenient = Engine::with_mode(IngestMode::Lenient);
        let strict = Engine::new();
        let (mut lenient_rows, mut strict_rows) = (Vec::new(), Vec::new());
        let mut seen = HashSet::new();
        for range in split(stream.len(), &mut rng) {
            let (batch, batch_nulls) = (&stream[range.clone()], &nulls[range]);
            let bad = batch_nulls.iter().filter(|n| n.is_some()).count() as u64;
            // 0 NDJSON, 1 Arrow, 2 Parquet (several row groups).
            let path = rng.below(3);
            let text = ndjson(batch, batch_nulls, &mut rng);
            let arrow = arrow_batch(batch, batch_nulls, &mut rng, path == 2);
            let parquet = if path == 2 {
                parquet_bytes(&arrow, 1 + rng.below(4))
            } else {
                Vec::new()
            };
            let run = |engine: &Engine| match path {
                0 => engine.ingest_ndjson(text.as_bytes()),
                1 => engine.ingest_batch(&arrow),
                _ => engine.ingest_parquet_bytes(parquet.clone()),
            };

            let report = run(&lenient).unwrap();
            let good: Vec<Event> = batch
                .iter()
                .zip(batch_nulls)
                .filter(|(_, n)| n.is_none())
                .map(|(e, _)| e.clone())
                .collect();
            let fresh = good.iter().filter(|e| seen.insert(e.event_id.clone())).count() as u64;
            prop_assert_eq!(report.rows_seen, batch.len() as u64);
            prop_assert_eq!(report.skipped_rows(), bad);
            prop_assert_eq!(report.rows_ingested, fresh);
            prop_assert_eq!(report.duplicates, good.len() as u64 - fresh);
            for reason in report.skipped.keys() {
                prop_assert!(REQUIRED.iter().any(|c| reason.to_string().contains(c)), "{}", reason);
            }
            lenient_rows.extend(good);

            match run(&strict) {
                Ok(report) => {
                    prop_assert_eq!(bad, 0);
                    prop_assert_eq!(report.rows_seen, batch.len() as u64);
                    strict_rows.extend_from_slice(batch);
                }
                Err(e) => {
                    let message = e.to_string();
                    prop_assert!(bad > 0, "{}", message);
                    prop_assert_eq!(e.kind(), ErrorKind::Data);
                    // The message names a bad row and its column: for one
                    // Arrow batch or NDJSON input the first one; Parquet row
                    // groups are read in parallel, so any bad row may be.
                    let first_bad = batch_nulls.iter().position(Option::is_some).unwrap();
                    let named = match path {
                        0 => first_bad,
                        1 => {
                            prop_assert_eq!(row_named(&message), Some(first_bad as u64 + 1), "{}", message);
                            first_bad
                        }
                        _ => {
                            let row = row_named(&message).unwrap_or(0) as usize;
                            prop_assert!(
                                (1..=batch.len()).contains(&row) && batch_nulls[row - 1].is_some(),
                                "{} (bad rows: {:?})", message, batch_nulls
                            );
                            row - 1
                        }
                    };
                    let column = REQUIRED[batch_nulls[named].unwrap()];
                    prop_assert!(message.contains(&format!("`{column}`")), "{}", message);
                }
            }
        }
        for (engine, rows) in [(&lenient, &lenient_rows), (&strict, &strict_rows)] {
            let convs = reference(rows);
            prop_assert_eq!(engine.stats().conversations, convs.len());
            for q in &queries {
                run_and_compare(engine, &convs, q)?;
            }
        }
    }
}

proptest! {
    #![proptest_config(property_config(64))]

    /// Batch execution over files (an NDJSON file and, in a subdirectory, a
    /// Parquet file, duplicates across them, and a file of another kind
    /// that is not input) answers as the reference does, and so does an
    /// engine that ingested the same files.
    #[test]
    fn run_files_answers_equal_engine_and_reference(
        data in data_spec(60),
        queries in prop::collection::vec(query_spec(), 1..16),
    ) {
        let events = build_events(&data);
        let queries = data.place(&queries);
        let mut rng = Rng::new(data.seed);
        let stream = build_stream(&events, &mut rng);
        let cut = rng.below(stream.len() + 1);
        let dir = tempfile::tempdir().unwrap();
        let ndjson_path = dir.path().join(["a.ndjson", "a.jsonl"][rng.below(2)]);
        std::fs::write(&ndjson_path, ndjson(&stream[..cut], &[], &mut rng)).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not events").unwrap();
        // The warm engine reads the same files.
        let engine = Engine::new();
        engine.ingest_ndjson_file(&ndjson_path).unwrap();
        if cut < stream.len() {
            let batch = arrow_batch(&stream[cut..], &[], &mut rng, true);
            let groups = 1 + rng.below(4);
            let sub = dir.path().join("more");
            std::fs::create_dir(&sub).unwrap();
            std::fs::write(sub.join("b.parquet"), parquet_bytes(&batch, groups)).unwrap();
            engine.ingest_parquet(sub.join("b.parquet")).unwrap();
        }
        let convs = reference(&stream);
        for q in &queries {
            let Ok(query) = build_query(q, &convs) else { continue };
            let want = expected(&convs, q);
            let warm = engine.query(&query).map_err(|e| e.kind());
            prop_assert_eq!(&warm, &want, "warm {} {:?}", q.kind_name(), q.params(&convs));
            let inputs = [dir.path().to_path_buf()];
            let batch = run_files(&query, &inputs, &BatchOptions::default())
                .map(|o| o.answer)
                .map_err(|e| e.kind());
            prop_assert_eq!(&batch, &want, "batch {} {:?}", q.kind_name(), q.params(&convs));
        }
    }
}

proptest! {
    #![proptest_config(property_config(96))]

    /// Batch execution over Parquet files written in random layouts
    /// ([`parquet_bytes_in_random_layout`]), one to three files (their rows
    /// in random order, or sorted by time as a pipeline writes them),
    /// answers as the reference does, and so does an engine that ingested
    /// the same files. The selective reader skips pages and row groups by
    /// their statistics and decodes pages only as far as the rows it needs;
    /// the engine decodes everything with the `parquet` crate.
    #[test]
    fn run_files_over_any_parquet_layout_answers_as_the_reference(
        data in data_spec(60),
        queries in prop::collection::vec(query_spec(), 1..16),
    ) {
        let events = build_events(&data);
        let queries = data.place(&queries);
        let mut rng = Rng::new(data.seed);
        let stream = build_stream(&events, &mut rng);
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new();
        let mut layouts = Vec::new();
        let files = 1 + rng.below(3);
        let mut cuts: Vec<usize> = (1..files).map(|_| rng.below(stream.len() + 1)).collect();
        cuts.push(0);
        cuts.push(stream.len());
        cuts.sort_unstable();
        for (n, part) in cuts.windows(2).enumerate() {
            let mut rows = stream[part[0]..part[1]].to_vec();
            if rng.below(2) == 0 {
                rows.sort_by_key(|e| e.timestamp);
                layouts.push("sorted by time".to_owned());
            }
            let batch = arrow_batch(&rows, &[], &mut rng, true);
            let (bytes, layout) = parquet_bytes_in_random_layout(&batch, &mut rng);
            layouts.push(layout);
            let path = dir.path().join(format!("part-{n}.parquet"));
            std::fs::write(&path, bytes).unwrap();
            engine.ingest_parquet(&path).unwrap();
        }
        let convs = reference(&stream);
        let inputs = [dir.path().to_path_buf()];
        for q in &queries {
            let Ok(query) = build_query(q, &convs) else { continue };
            let want = expected(&convs, q);
            let warm = engine.query(&query).map_err(|e| e.kind());
            prop_assert_eq!(&warm, &want, "warm {} {:?} {:?}", q.kind_name(), q.params(&convs), layouts);
            let batch = run_files(&query, &inputs, &BatchOptions::default())
                .map(|o| o.answer)
                .map_err(|e| (e.kind(), e.to_string()));
            prop_assert_eq!(
                batch.as_ref().map_err(|e| e.0),
                want.as_ref().map_err(|e| *e),
                "batch {} {:?} {:?} {:?}",
                q.kind_name(),
                q.params(&convs),
                batch.as_ref().err(),
                layouts
            );
        }
    }
}

proptest! {
    #![proptest_config(property_config(64))]

    /// Batch execution over files with rows that have a null in a required
    /// column (the Parquet file in arrow's default layout or a random one)
    /// treats them as the engine does (SPEC 1): strict mode rejects
    /// the input whatever the query (the engine rejects the same file
    /// before any query is asked), lenient mode answers as the reference
    /// over the other rows.
    #[test]
    fn run_files_treats_null_rows_as_the_engine_does(
        data in data_spec(40),
        marks in prop::collection::vec(any::<u8>(), 1..40),
        queries in prop::collection::vec(query_spec(), 1..8),
    ) {
        let events = build_events(&data);
        let queries = data.place(&queries);
        let mut rng = Rng::new(data.seed);
        let stream = build_stream(&events, &mut rng);
        let nulls: Vec<Option<usize>> = (0..stream.len())
            .map(|i| {
                let m = marks[i % marks.len()] as usize;
                (m % 7 == 0).then_some(m / 7 % REQUIRED.len())
            })
            .collect();
        let cut = rng.below(stream.len() + 1);
        let dir = tempfile::tempdir().unwrap();
        let text = ndjson(&stream[..cut], &nulls[..cut], &mut rng);
        std::fs::write(dir.path().join("a.ndjson"), text).unwrap();
        if cut < stream.len() {
            let batch = arrow_batch(&stream[cut..], &nulls[cut..], &mut rng, true);
            let bytes = if rng.below(2) == 0 {
                parquet_bytes(&batch, 1 + rng.below(4))
            } else {
                parquet_bytes_in_random_layout(&batch, &mut rng).0
            };
            std::fs::write(dir.path().join("b.parquet"), bytes).unwrap();
        }
        let any_bad = nulls.iter().any(Option::is_some);
        let good: Vec<Event> = stream
            .iter()
            .zip(&nulls)
            .filter(|(_, n)| n.is_none())
            .map(|(e, _)| e.clone())
            .collect();
        let convs = reference(&good);
        let inputs = [dir.path().to_path_buf()];
        for q in &queries {
            let Ok(query) = build_query(q, &convs) else { continue };
            let options = BatchOptions {
                mode: IngestMode::Lenient,
                ..BatchOptions::default()
            };
            let lenient = run_files(&query, &inputs, &options)
                .map(|o| o.answer)
                .map_err(|e| e.kind());
            prop_assert_eq!(&lenient, &expected(&convs, q), "lenient batch {} {:?}", q.kind_name(), q.params(&convs));
            let strict = run_files(&query, &inputs, &BatchOptions::default())
                .map(|o| o.answer)
                .map_err(|e| e.kind());
            if any_bad {
                prop_assert_eq!(
                    &strict,
                    &Err(ErrorKind::Data),
                    "strict batch {} {:?} over input with null rows {:?}",
                    q.kind_name(),
                    q.params(&convs),
                    nulls
                );
            } else {
                prop_assert_eq!(&strict, &expected(&convs, q));
            }
        }
    }
}

/// Pins the batch strict-mode bug in its simplest form. SPEC 1: a null in
/// a required column makes strict mode reject the whole file; the engine
/// does (checked here too), batch execution must as well, whatever the
/// query. Each file holds one good event of bot `b1` / conversation `c1`
/// and one event with a null: its `bot_id`; the `event_id` of an event of
/// another bot; the `timestamp` of an event of another conversation; its
/// `event_type` (a column some queries do not read).
#[test]
fn run_files_strict_rejects_null_rows_outside_the_query_scope() {
    let event = |id: &str, bot: &str, conversation: &str| Event {
        event_id: id.into(),
        timestamp: parse_rfc3339_micros("2024-03-01T10:00:00Z").unwrap(),
        bot_id: bot.into(),
        conversation_id: conversation.into(),
        event_type: "message".into(),
        team_id: Some("t1".into()),
        bot_version: Some("LIVE".into()),
        ..Default::default()
    };
    let good = event("e1", "b1", "c1");
    let cases = [
        ("null bot_id", event("e2", "b1", "c2"), 2),
        ("null event_id of bot b2", event("e3", "b2", "c3"), 0),
        (
            "null timestamp of conversation c2",
            event("e4", "b1", "c2"),
            1,
        ),
        ("null event_type", event("e5", "b1", "c2"), 4),
    ];
    let range = [("start_time", "2024-03-01"), ("end_time", "2024-03-02")];
    let bot = [("bot_id", "b1"), ("version", "LIVE")];
    let queries = [
        ("usage", vec![("team_id", "t1"), ("bucket", "1d")]),
        ("conversations", bot.to_vec()),
        ("insights", [&bot[..], &[("stat", "num_messages")]].concat()),
        ("flow", [&bot[..], &[("conversation_id", "c1")]].concat()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(5);
    let mut wrong = Vec::new();
    for (i, (what, bad, column)) in cases.into_iter().enumerate() {
        let events = [good.clone(), bad];
        let nulls = [None, Some(column)];
        let ndjson_path = dir.path().join(format!("{i}.ndjson"));
        std::fs::write(&ndjson_path, ndjson(&events, &nulls, &mut rng)).unwrap();
        let parquet_path = dir.path().join(format!("{i}.parquet"));
        let batch = arrow_batch(&events, &nulls, &mut rng, true);
        std::fs::write(&parquet_path, parquet_bytes(&batch, 1)).unwrap();
        let engine = Engine::new();
        assert!(engine.ingest_ndjson_file(&ndjson_path).is_err(), "{what}");
        assert!(engine.ingest_parquet(&parquet_path).is_err(), "{what}");
        for path in [&ndjson_path, &parquet_path] {
            for (kind, params) in &queries {
                let params = Params::new([&params[..], &range[..]].concat()).unwrap();
                let query = Query::from_params(kind, &params).unwrap();
                let outcome =
                    run_files(&query, std::slice::from_ref(path), &BatchOptions::default());
                if !matches!(&outcome, Err(e) if e.kind() == ErrorKind::Data) {
                    let format = path.extension().unwrap().to_string_lossy();
                    let got = outcome
                        .map(|o| o.answer.to_json())
                        .map_err(|e| e.to_string());
                    wrong.push(format!("{what}, {format}, {kind}: {got:?}"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "strict batch execution accepted files with a null in a required column:\n{}",
        wrong.join("\n")
    );
}

/// A data error of batch execution names the file once (SPEC 6: a one-line
/// message naming the file), the column and the row — the row of the
/// file, also when the query reads only some bots' rows.
#[test]
fn run_files_data_errors_name_file_column_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let event = |id: &str, bot: &str| Event {
        event_id: id.into(),
        timestamp: parse_rfc3339_micros("2024-03-01T10:00:00Z").unwrap(),
        bot_id: bot.into(),
        conversation_id: "c1".into(),
        event_type: "message".into(),
        team_id: Some("t1".into()),
        bot_version: Some("LIVE".into()),
        ..Default::default()
    };
    // Row 3, of bot b1, has a null event_id.
    let events = [event("e1", "b1"), event("e2", "b2"), event("e3", "b1")];
    let nulls = [None, None, Some(0)];
    let mut rng = Rng::new(3);
    let ndjson_path = dir.path().join("bad.ndjson");
    let mut text = String::new();
    for (e, n) in events.iter().zip(&nulls) {
        // One line per event: no blank lines, so line = row.
        let line = ndjson(std::slice::from_ref(e), &[*n], &mut rng);
        text.push_str(line.lines().find(|l| !l.trim().is_empty()).unwrap());
        text.push('\n');
    }
    std::fs::write(&ndjson_path, text).unwrap();
    let parquet_path = dir.path().join("bad.parquet");
    let batch = arrow_batch(&events, &nulls, &mut rng, true);
    std::fs::write(&parquet_path, parquet_bytes(&batch, 3)).unwrap();
    let range = [("start_time", "2024-03-01"), ("end_time", "2024-03-02")];
    let queries = [
        ("usage", vec![("team_id", "t1"), ("bucket", "1d")]),
        ("conversations", vec![("bot_id", "b1"), ("version", "LIVE")]),
    ];
    let mut wrong = Vec::new();
    for path in [ndjson_path, parquet_path] {
        let name = path.display().to_string();
        for (kind, params) in &queries {
            let params = Params::new([&params[..], &range[..]].concat()).unwrap();
            let query = Query::from_params(kind, &params).unwrap();
            let outcome = run_files(
                &query,
                std::slice::from_ref(&path),
                &BatchOptions::default(),
            );
            let message = match outcome {
                Err(e) if e.kind() == ErrorKind::Data => e.to_string(),
                other => {
                    let got = other.map(|o| o.answer.to_json()).map_err(|e| e.to_string());
                    wrong.push(format!("{kind} over {name}: {got:?}"));
                    continue;
                }
            };
            let ok = message.contains("`event_id`")
                && row_named(&message) == Some(3)
                && message.matches(&name).count() == 1;
            if !ok {
                wrong.push(format!("{kind}: {message}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "expected one mention of the file, column `event_id` and row 3:\n{}",
        wrong.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Checks of the reference's own calendar.

#[test]
fn civil_dates_round_trip() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2024, 3, 31), 19_813);
    assert_eq!(weekday(days_from_civil(2024, 3, 25)), 0, "a Monday");
    for z in -800_000..800_000 {
        let (y, m, d) = civil_from_days(z);
        assert_eq!(days_from_civil(y, m, d), z);
    }
    assert_eq!(
        wall(utc(2024, 2, 29, 23, 59, 58), 'T'),
        "2024-02-29T23:59:58"
    );
    assert_eq!(utc_text(1_709_287_200_250_000), "2024-03-01T10:00:00.250Z");
}

#[test]
fn zone_table_matches_tz_database() {
    use chrono::{Offset, TimeZone};
    for zone in ZONES {
        let tz: convostat::Tz = zone.name().parse().unwrap();
        let mut t = utc(2024, 1, 1, 0, 0, 0);
        while t < utc(2025, 3, 1, 0, 0, 0) {
            let instant = chrono::DateTime::from_timestamp(t, 0).unwrap().naive_utc();
            let offset = tz
                .offset_from_utc_datetime(&instant)
                .fix()
                .local_minus_utc();
            assert_eq!(zone.offset(t), i64::from(offset), "{zone:?} at {t}");
            t += 15 * MINUTE;
        }
    }
    // Spring gap: 02:30 local does not exist and reads as 03:30 +02:00.
    let gap = Zone::Brussels.local_to_utc(utc(2024, 3, 31, 2, 30, 0));
    assert_eq!(gap, utc(2024, 3, 31, 1, 30, 0));
    // The reference axis of a Brussels day across the gap lasts 23 hours.
    let (starts, x) = reference_axis(
        Zone::Brussels,
        Some(Bucket::Day),
        utc(2024, 3, 30, 12, 0, 0) * US,
        utc(2024, 4, 1, 0, 0, 0) * US,
    );
    assert_eq!(
        x,
        [
            "2024-03-30T00:00:00+01:00",
            "2024-03-31T00:00:00+01:00",
            "2024-04-01T00:00:00+02:00"
        ]
    );
    assert_eq!(starts[2] - starts[1], 23 * HOUR * US);
    // Autumn fold: 02:30 local happens twice; the earlier one is taken, and
    // the repeated hour gives two hour buckets.
    let fold = Zone::Brussels.local_to_utc(utc(2024, 10, 27, 2, 30, 0));
    assert_eq!(fold, utc(2024, 10, 27, 0, 30, 0));
    let (_, x) = reference_axis(
        Zone::Brussels,
        Some(Bucket::Hour),
        utc(2024, 10, 27, 0, 0, 0) * US,
        utc(2024, 10, 27, 2, 0, 0) * US,
    );
    assert_eq!(
        x,
        ["2024-10-27T02:00:00+02:00", "2024-10-27T02:00:00+01:00"]
    );
}
