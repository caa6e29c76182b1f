//! Tests of the synthetic data generator: exact sizes, determinism, schema,
//! realism of the distributions, duplicates, and the file writers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;
use crate::error::ErrorKind;
use crate::schema::{col, Event, COLUMNS};

fn generate(events: usize, seed: u64, batch_rows: usize) -> Vec<RecordBatch> {
    EventGenerator::new(GeneratorConfig {
        events,
        seed,
        batch_rows,
        layout: Layout::Clustered,
    })
    .collect()
}

fn to_events(batches: &[RecordBatch]) -> Vec<Event> {
    let mut out = Vec::new();
    for b in batches {
        let s = |name: &str, row: usize| {
            let a = b.column_by_name(name).unwrap().as_string::<i32>();
            (!a.is_null(row)).then(|| a.value(row).to_string())
        };
        let ts = b
            .column_by_name(col::TIMESTAMP)
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        for row in 0..b.num_rows() {
            out.push(Event {
                event_id: s(col::EVENT_ID, row).unwrap(),
                timestamp: ts.value(row),
                bot_id: s(col::BOT_ID, row).unwrap(),
                conversation_id: s(col::CONVERSATION_ID, row).unwrap(),
                event_type: s(col::EVENT_TYPE, row).unwrap(),
                team_id: s(col::TEAM_ID, row),
                bot_version: s(col::BOT_VERSION, row),
                user_id: s(col::USER_ID, row),
                channel_type: s(col::CHANNEL_TYPE, row),
                language: s(col::LANGUAGE, row),
                campaign_id: s(col::CAMPAIGN_ID, row),
                campaign_source: s(col::CAMPAIGN_SOURCE, row),
                message_id: s(col::MESSAGE_ID, row),
                from_step_id: s(col::FROM_STEP_ID, row),
                from_step_type: s(col::FROM_STEP_TYPE, row),
                to_step_id: s(col::TO_STEP_ID, row),
                to_step_type: s(col::TO_STEP_TYPE, row),
            });
        }
    }
    out
}

/// Original events (first occurrence of each event id), in row order.
fn originals(events: &[Event]) -> Vec<&Event> {
    let mut seen = BTreeSet::new();
    events
        .iter()
        .filter(|e| seen.insert(e.event_id.as_str()))
        .collect()
}

/// Events grouped by `(bot_id, conversation_id)`, duplicates removed.
fn conversations(events: &[Event]) -> BTreeMap<(String, String), Vec<&Event>> {
    let mut map: BTreeMap<(String, String), Vec<&Event>> = BTreeMap::new();
    for e in originals(events) {
        map.entry((e.bot_id.clone(), e.conversation_id.clone()))
            .or_default()
            .push(e);
    }
    map
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("convostat-gen-{}-{name}", std::process::id()))
}

fn base36(s: &str) -> u64 {
    u64::from_str_radix(s, 36).unwrap()
}

const JAN_1_2024_US: i64 = 1_704_067_200_000_000;
const MAY_1_2024_US: i64 = 1_714_521_600_000_000;

#[test]
fn row_counts_are_exact() {
    for (events, batch_rows) in [
        (0, 10),
        (1, 10),
        (2, 1),
        (11, 3),
        (12, 12),
        (13, 12),
        (255, 256),
        (256, 256),
        (257, 256),
        (1_000, 333),
        (5_003, 0),
        (70_001, DEFAULT_BATCH_ROWS),
    ] {
        let batches = generate(events, 3, batch_rows);
        let total: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(total, events, "events={events} batch_rows={batch_rows}");
        let per_batch = batch_rows.max(1);
        for (i, b) in batches.iter().enumerate() {
            assert!(b.num_rows() > 0);
            if i + 1 < batches.len() {
                assert_eq!(b.num_rows(), per_batch);
            }
        }
    }
}

#[test]
fn same_seed_same_batches_other_seed_other_batches() {
    let a = generate(20_000, 42, 4_096);
    let b = generate(20_000, 42, 4_096);
    assert_eq!(a, b);
    let c = generate(20_000, 43, 4_096);
    assert_ne!(a, c);
}

#[test]
fn schema_is_canonical_and_required_columns_are_never_null() {
    let batches = generate(30_000, 1, 7_000);
    for b in &batches {
        assert_eq!(b.schema(), event_schema());
        for (name, required) in COLUMNS {
            if required {
                assert_eq!(b.column_by_name(name).unwrap().null_count(), 0, "{name}");
            }
        }
    }
}

#[test]
fn event_type_mix_and_shapes_are_realistic() {
    let events = to_events(&generate(100_000, 7, DEFAULT_BATCH_ROWS));
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &events {
        *by_type.entry(e.event_type.as_str()).or_default() += 1;
    }
    let share = |t: &str| by_type.get(t).copied().unwrap_or(0) as f64 / events.len() as f64;
    let (message, transition) = (share("message"), share("transition"));
    let other = 1.0 - message - transition;
    assert!((0.40..0.50).contains(&message), "{by_type:?}");
    assert!((0.35..0.45).contains(&transition), "{by_type:?}");
    assert!((0.10..0.20).contains(&other), "{by_type:?}");
    for t in ["session_start", "feedback", "handover_requested"] {
        assert!(by_type.contains_key(t), "{t} missing: {by_type:?}");
    }

    let step_types = [
        "bot_dialog",
        "input",
        "api_call",
        "condition",
        "handover",
        "end",
    ];
    for e in &events {
        assert!(e.event_id.len() <= 16 && e.event_id.starts_with('e'));
        assert!(e.conversation_id.starts_with('c'));
        assert_eq!(e.timestamp % 1_000, 0, "ms precision");
        let steps = [
            &e.from_step_id,
            &e.from_step_type,
            &e.to_step_id,
            &e.to_step_type,
        ];
        if e.event_type == "transition" {
            assert!(steps.iter().all(|s| s.is_some()), "{e:?}");
            assert!(step_types.contains(&e.from_step_type.as_deref().unwrap()));
            assert!(step_types.contains(&e.to_step_type.as_deref().unwrap()));
            assert!(e.message_id.is_some(), "{e:?}");
        } else {
            assert!(steps.iter().all(|s| s.is_none()), "{e:?}");
        }
        if e.event_type == "message" {
            assert!(e.message_id.as_deref().unwrap().starts_with('m'));
        }
        if let (Some(id), Some(source)) = (&e.campaign_id, &e.campaign_source) {
            assert!(id.starts_with("cmp-0"));
            assert!(
                ["newsletter", "facebook_ads", "google_ads", "referral"].contains(&source.as_str())
            );
        }
    }
}

#[test]
fn duplicates_are_present_and_identical() {
    let events = to_events(&generate(100_000, 11, 10_000));
    let mut first: BTreeMap<&str, &Event> = BTreeMap::new();
    let mut duplicates = 0;
    for e in &events {
        match first.get(e.event_id.as_str()) {
            Some(original) => {
                assert_eq!(*original, e);
                duplicates += 1;
            }
            None => {
                first.insert(&e.event_id, e);
            }
        }
    }
    let share = duplicates as f64 / events.len() as f64;
    assert!((0.002..0.009).contains(&share), "duplicate share {share}");
}

#[test]
fn conversations_belong_to_one_bot_and_keep_their_attributes() {
    let events = to_events(&generate(100_000, 5, 16_384));
    let convs = conversations(&events);
    let mut partial = 0usize;
    let mut non_first = 0usize;
    let mut lengths = 0usize;
    for ((bot, _), evs) in &convs {
        lengths += evs.len();
        let bot_events: Vec<_> = evs.iter().filter(|e| &e.bot_id == bot).collect();
        assert_eq!(bot_events.len(), evs.len());
        let first = evs
            .iter()
            .min_by(|a, b| (a.timestamp, &a.event_id).cmp(&(b.timestamp, &b.event_id)))
            .unwrap();
        // The first event carries every attribute (campaign only if any).
        assert!(first.team_id.is_some() && first.bot_version.is_some());
        assert!(first.user_id.is_some() && first.channel_type.is_some());
        assert!(first.language.is_some());
        assert!(first.timestamp >= JAN_1_2024_US && first.timestamp < MAY_1_2024_US);
        // Later events never contradict it: one user, one channel, ... per
        // conversation, so ids do not collide between conversations.
        for e in evs {
            let attrs = |e: &Event| {
                [
                    e.team_id.clone(),
                    e.bot_version.clone(),
                    e.user_id.clone(),
                    e.channel_type.clone(),
                    e.language.clone(),
                    e.campaign_id.clone(),
                    e.campaign_source.clone(),
                ]
            };
            let (mine, theirs) = (attrs(e), attrs(first));
            for (m, t) in mine.iter().zip(&theirs) {
                assert!(m.is_none() || m == t, "{e:?} vs {first:?}");
            }
            if !std::ptr::eq(*e, *first) {
                non_first += 1;
                let lost = mine
                    .iter()
                    .zip(&theirs)
                    .any(|(m, t)| m.is_none() && t.is_some());
                partial += usize::from(lost);
            }
            assert!(e.timestamp >= first.timestamp);
        }
    }
    let partial_share = partial as f64 / non_first as f64;
    assert!(
        (0.02..0.06).contains(&partial_share),
        "partial {partial_share}"
    );
    let mean_len = lengths as f64 / convs.len() as f64;
    assert!((8.5..11.0).contains(&mean_len), "mean length {mean_len}");
}

#[test]
fn rows_are_clustered_by_bot_and_roughly_in_time_order() {
    let events = to_events(&generate(60_000, 9, 8_192));
    // Bots come one after the other, in catalog order.
    let mut bots: Vec<&str> = Vec::new();
    for e in &events {
        if bots.last() != Some(&e.bot_id.as_str()) {
            bots.push(&e.bot_id);
        }
    }
    let catalog: Vec<&str> = BOTS.iter().map(|b| b.id).collect();
    assert_eq!(bots, catalog);
    // Conversations start in id order within a bot.
    let convs = conversations(&events);
    let mut starts: BTreeMap<(&str, u64), i64> = BTreeMap::new();
    for ((bot, conv), evs) in &convs {
        let start = evs.iter().map(|e| e.timestamp).min().unwrap();
        starts.insert((bot.as_str(), base36(&conv[1..])), start);
    }
    let mut previous: Option<(&str, i64)> = None;
    for (&(bot, _), &start) in &starts {
        if let Some((prev_bot, prev_start)) = previous {
            if prev_bot == bot {
                assert!(start >= prev_start);
            }
        }
        previous = Some((bot, start));
    }
    // Popularity: the largest bot has about a quarter of the rows.
    let largest = events
        .iter()
        .filter(|e| e.bot_id == "bot-acme-support")
        .count();
    assert_eq!(largest, 15_000);
    // Some rows are out of order, but few.
    let inversions = events
        .windows(2)
        .filter(|w| w[0].bot_id == w[1].bot_id && w[1].timestamp < w[0].timestamp)
        .count();
    assert!(inversions > 0 && inversions < events.len() / 2);
}

#[test]
fn event_ids_are_unique_per_original_event() {
    let events = to_events(&generate(50_000, 13, 5_000));
    let originals = originals(&events);
    let distinct: BTreeSet<(&str, i64, &str)> = originals
        .iter()
        .map(|e| (e.event_id.as_str(), e.timestamp, e.conversation_id.as_str()))
        .collect();
    assert_eq!(distinct.len(), originals.len());
    // Not sorted: ids are scrambled.
    let sorted = originals.windows(2).all(|w| w[0].event_id <= w[1].event_id);
    assert!(!sorted);
}

#[test]
fn scramble_is_a_bijection_on_small_ranges() {
    let key = 0x1234_5678_9abc_def0;
    let mut seen = BTreeSet::new();
    for x in 0..100_000u64 {
        assert!(seen.insert(scramble(x, key)));
        assert!(scramble(x, key) <= ID_BITS_MASK);
    }
    assert_eq!(scramble(u64::MAX, key), u64::MAX);
    assert_eq!(Id::new(b'e', u64::MAX, 36).as_str(), "e3w5e11264sgsf");
    assert_eq!(Id::new(b'c', 0, 36).as_str(), "c0");
    assert_eq!(Id::new(b'c', 36 * 36 - 1, 36).as_str(), "czz");
    assert_eq!(
        Id::new(b'u', u64::MAX, 10).as_str(),
        "u18446744073709551615"
    );
    assert_eq!(Id::new(b'u', 7, 10).as_str(), "u7");
}

#[test]
fn parquet_round_trip_and_deterministic_bytes() {
    let config = GeneratorConfig {
        events: 12_345,
        seed: 99,
        batch_rows: 4_000,
        layout: Layout::Clustered,
    };
    let (a, b) = (temp_path("a.parquet"), temp_path("b.parquet"));
    assert_eq!(write_parquet(&a, &config).unwrap(), 12_345);
    assert_eq!(write_file(&b, &config).unwrap(), 12_345);
    let bytes_a = std::fs::read(&a).unwrap();
    let bytes_b = std::fs::read(&b).unwrap();
    assert_eq!(bytes_a, bytes_b);
    assert_eq!(&bytes_a[..4], b"PAR1");

    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&a).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let read: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    assert_eq!(read.iter().map(|b| b.num_rows()).sum::<usize>(), 12_345);
    assert_eq!(read[0].schema().fields(), event_schema().fields());
    let expected = to_events(&EventGenerator::new(config).collect::<Vec<_>>());
    assert_eq!(to_events(&read), expected);
    std::fs::remove_file(&a).unwrap();
    std::fs::remove_file(&b).unwrap();
}

#[test]
fn parquet_row_groups_hold_at_most_262_144_rows() {
    let path = temp_path("groups.parquet");
    let config = GeneratorConfig::new(300_000, 2);
    assert_eq!(write_parquet(&path, &config).unwrap(), 300_000);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap()).unwrap();
    let metadata = builder.metadata();
    let groups: Vec<i64> = metadata.row_groups().iter().map(|g| g.num_rows()).collect();
    assert_eq!(groups, [262_144, 37_856]);
    let bot_column = metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.name() == col::BOT_ID)
        .unwrap();
    // Clustered by bot: the first row group holds the first bots only.
    let stats = metadata
        .row_group(0)
        .column(bot_column)
        .statistics()
        .unwrap();
    assert_eq!(stats.min_bytes_opt(), Some("bot-acme-faq".as_bytes()));
    assert_eq!(stats.null_count_opt(), Some(0));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn ndjson_round_trip_and_deterministic_bytes() {
    let config = GeneratorConfig {
        events: 3_001,
        seed: 5,
        batch_rows: 1_000,
        layout: Layout::Clustered,
    };
    let (a, b) = (temp_path("a.ndjson"), temp_path("b.jsonl"));
    assert_eq!(write_ndjson(&a, &config).unwrap(), 3_001);
    assert_eq!(write_file(&b, &config).unwrap(), 3_001);
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(text.as_bytes(), std::fs::read(&b).unwrap().as_slice());

    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3_001);
    assert!(lines[0].starts_with("{\"event_id\":\"e"));
    assert!(lines.iter().all(|l| !l.contains("null")));
    assert!(lines[0].contains("\"timestamp\":\"2024-01-01T"));
    let parsed: Vec<Event> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected = to_events(&EventGenerator::new(config).collect::<Vec<_>>());
    assert_eq!(parsed, expected);
    std::fs::remove_file(&a).unwrap();
    std::fs::remove_file(&b).unwrap();
}

#[test]
fn zero_events_write_valid_empty_files() {
    let config = GeneratorConfig::new(0, 1);
    let (p, n) = (temp_path("empty.parquet"), temp_path("empty.ndjson"));
    assert_eq!(write_file(&p, &config).unwrap(), 0);
    assert_eq!(write_file(&n, &config).unwrap(), 0);
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap())
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(reader.map(|b| b.unwrap().num_rows()).sum::<usize>(), 0);
    assert!(std::fs::read(&n).unwrap().is_empty());
    std::fs::remove_file(&p).unwrap();
    std::fs::remove_file(&n).unwrap();
}

#[test]
fn write_errors_name_the_file() {
    let dir = temp_path("no-such-dir");
    for name in ["x.parquet", "x.ndjson"] {
        let path = dir.join(name);
        let err = write_file(&path, &GeneratorConfig::new(10, 1)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Data);
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}

#[test]
fn interleaved_rows_are_the_clustered_rows_in_time_order_with_every_bot_mixed() {
    let config = GeneratorConfig {
        events: 30_000,
        seed: 5,
        batch_rows: 4_096,
        layout: Layout::Interleaved,
    };
    let interleaved: Vec<RecordBatch> = EventGenerator::new(config.clone()).collect();
    let again: Vec<RecordBatch> = EventGenerator::new(config.clone()).collect();
    assert_eq!(interleaved, again, "deterministic");
    assert!(interleaved[..interleaved.len() - 1]
        .iter()
        .all(|b| b.num_rows() == 4_096));
    let mut a = to_events(&interleaved);
    let mut b = to_events(&generate(30_000, 5, 4_096));
    assert_eq!(a.len(), 30_000);
    // Time order, but for the ~1 % of late rows.
    let backwards = a
        .windows(2)
        .filter(|w| w[1].timestamp < w[0].timestamp)
        .count();
    assert!(backwards < a.len() / 50, "{backwards} steps back in time");
    // Every batch mixes (nearly) all bots.
    for batch in &interleaved {
        let bots: BTreeSet<&str> = batch
            .column_by_name(col::BOT_ID)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert!(bots.len() >= 10, "{bots:?}");
    }
    // The same rows as the clustered layout.
    let key = |e: &Event| (e.event_id.clone(), e.timestamp, e.conversation_id.clone());
    a.sort_by_key(key);
    b.sort_by_key(key);
    assert!(a == b, "the layouts hold different rows");
}

#[test]
fn parquet_parts_split_the_rows_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = GeneratorConfig::new(10_001, 3).with_layout(Layout::Interleaved);
    assert_eq!(write_parquet_parts(dir.path(), &config, 4).unwrap(), 10_001);
    let mut rows = Vec::new();
    for i in 0..4 {
        let file = std::fs::File::open(dir.path().join(format!("part-{i:05}.parquet"))).unwrap();
        let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
        let n: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(n, if i < 3 { 2_501 } else { 2_498 });
        rows.extend(to_events(&batches));
    }
    assert!(!dir.path().join("part-00004.parquet").exists());
    let whole = to_events(&EventGenerator::new(config).collect::<Vec<_>>());
    assert!(rows == whole, "the parts are not the whole in order");
}
