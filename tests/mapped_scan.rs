//! The command line maps Parquet files of 16 MiB or more into memory for
//! every batch query (`BatchOptions::map_files`), and a job's only file
//! from 1 MiB at the first large range read of it, scans included: their
//! column chunks are then slices of the page cache, handed back as they
//! are dropped. Every answer over such a file must equal the answer of a
//! job that reads it, and the engine's over the same events; a file
//! damaged where every query reads it is a data error naming the file,
//! mapped or not.

use convostat::batch::{run_files, BatchOptions};
use convostat::{Engine, Event, Params, Query};
use std::sync::Arc;

use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

mod common;
use common::events_batch;

/// 2024-03-01T00:00:00Z in µs.
const T0: i64 = 1_709_251_200_000_000;

/// The size from which the reader maps a file (`MAP_AT_LEAST` in
/// `src/ingest/parquet/file_ranges.rs`).
const MAPPED_AT_LEAST: usize = 16 << 20;

/// Time-ordered events of six bots in three teams, every bot in every row
/// group, with ids long enough for a file of more than 16 MiB.
fn events() -> Vec<Event> {
    const ROWS: usize = 120_000;
    (0..ROWS)
        .map(|i| {
            // 500 conversations at a time, each of 40 events spread over
            // 20,000 rows; every other event of one is a transition.
            let conversation = i % 500 + 500 * (i / 20_000);
            let step = i / 500 % 40;
            let bot = conversation % 6;
            let transition = step % 2 == 1;
            Event {
                event_id: format!("event-{i:010}-of-a-pipeline-that-names-events-at-length"),
                timestamp: T0 + i as i64 * 1_500_000,
                bot_id: format!("bot-{bot}-of-a-tenant-with-a-long-name"),
                conversation_id: format!("conversation-{conversation:08}"),
                event_type: ["message", "transition"][usize::from(transition)].to_owned(),
                team_id: Some(format!("team-{}", bot % 3)),
                bot_version: Some(["LIVE", "DRAFT"][conversation % 5 / 4].to_owned()),
                channel_type: [Some("web"), Some("sms"), None][conversation % 3].map(str::to_owned),
                from_step_id: transition.then(|| format!("step-{step}")),
                from_step_type: transition.then(|| "message".to_owned()),
                to_step_id: transition.then(|| format!("step-{}", step + 1)),
                to_step_type: transition.then(|| "message".to_owned()),
                ..Event::default()
            }
        })
        .collect()
}

/// `events` written plain and uncompressed (as fastparquet writes by
/// default), in row groups of 30,000 rows.
fn parquet_file(events: &[Event]) -> Vec<u8> {
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_max_row_group_row_count(Some(30_000))
        .build();
    let batch = with_steps(events_batch(events), events);
    let mut out = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

/// One of an event's step fields.
type StepOf = fn(&Event) -> Option<String>;

/// `batch` with the four step columns of `events` added.
fn with_steps(batch: RecordBatch, events: &[Event]) -> RecordBatch {
    let steps: [(&str, StepOf); 4] = [
        ("from_step_id", |e| e.from_step_id.clone()),
        ("from_step_type", |e| e.from_step_type.clone()),
        ("to_step_id", |e| e.to_step_id.clone()),
        ("to_step_type", |e| e.to_step_type.clone()),
    ];
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns = batch.columns().to_vec();
    for (name, step) in steps {
        fields.push(Field::new(name, DataType::Utf8, true));
        columns.push(Arc::new(events.iter().map(step).collect::<StringArray>()));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn query(kind: &str, params: &[(&str, &str)]) -> Query {
    let mut all = vec![("start_time", "2024-03-01"), ("end_time", "2024-03-05")];
    all.extend_from_slice(params);
    Query::from_params(kind, &Params::new(all).unwrap()).unwrap()
}

fn queries() -> Vec<Query> {
    let bot = ("bot_id", "bot-5-of-a-tenant-with-a-long-name");
    let live = ("version", "LIVE");
    vec![
        query(
            "conversations",
            &[bot, live, ("bucket", "1h"), ("group_by", "channel_type")],
        ),
        query(
            "insights",
            &[
                bot,
                live,
                ("bucket", "1d"),
                ("stat", "duration_seconds"),
                ("aggregate", "p95"),
            ],
        ),
        query(
            "usage",
            &[
                ("team_id", "team-1"),
                ("bucket", "1h"),
                ("group_by", "bot_id,channel_type"),
            ],
        ),
        query(
            "flow",
            &[bot, live, ("conversation_id", "conversation-00002321")],
        ),
    ]
}

fn options(map_files: bool) -> BatchOptions {
    BatchOptions {
        map_files,
        ..BatchOptions::default()
    }
}

#[test]
fn a_mapped_file_gives_the_answers_of_a_read_one_and_of_the_engine() {
    let events = events();
    let bytes = parquet_file(&events);
    assert!(
        bytes.len() >= MAPPED_AT_LEAST,
        "the file must be large enough to be mapped: {} bytes",
        bytes.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.parquet");
    std::fs::write(&path, &bytes).unwrap();

    let engine = Engine::new();
    engine.ingest_events(&events).unwrap();
    for q in queries() {
        let want = engine.query(&q).unwrap();
        let mapped = run_files(&q, std::slice::from_ref(&path), &options(true))
            .unwrap()
            .answer;
        let read = run_files(&q, std::slice::from_ref(&path), &options(false))
            .unwrap()
            .answer;
        assert_eq!(mapped, want, "mapped: {q:?}");
        assert_eq!(read, want, "read: {q:?}");
    }
}

/// A job's only file of 1 to 16 MiB is mapped at the first large range
/// the reader asks of it (`MAP_LATER_LEAST` in
/// `src/ingest/parquet/file_ranges.rs`), and read until then; with other
/// files, it is read. Either way the answers are the engine's.
#[test]
fn a_smaller_file_mapped_when_alone_gives_the_answers_of_the_engine() {
    let events = events();
    // Rows 80,000 to 99,999 hold the flow's conversation.
    let (alone, other) = (&events[80_000..100_000], &events[100_000..110_000]);
    let dir = tempfile::tempdir().unwrap();
    let (path, other_path) = (
        dir.path().join("alone.parquet"),
        dir.path().join("other.parquet"),
    );
    let bytes = parquet_file(alone);
    assert!(
        ((1 << 20)..MAPPED_AT_LEAST).contains(&bytes.len()),
        "{} bytes",
        bytes.len()
    );
    std::fs::write(&path, &bytes).unwrap();
    std::fs::write(&other_path, parquet_file(other)).unwrap();
    let engine = |events: &[Event]| {
        let engine = Engine::new();
        engine.ingest_events(events).unwrap();
        engine
    };
    let (alone_engine, both_engine) = (engine(alone), engine(&events[80_000..110_000]));
    for q in queries() {
        let want = alone_engine.query(&q).unwrap();
        for map_files in [true, false] {
            let got = run_files(&q, std::slice::from_ref(&path), &options(map_files))
                .unwrap()
                .answer;
            assert_eq!(got, want, "alone, mapped {map_files}: {q:?}");
        }
        let both = run_files(&q, &[path.clone(), other_path.clone()], &options(true))
            .unwrap()
            .answer;
        assert_eq!(both, both_engine.query(&q).unwrap(), "two files: {q:?}");
    }
}

#[test]
fn damage_in_a_mapped_file_is_a_data_error_naming_the_file() {
    let events = events();
    let mut bytes = parquet_file(&events);
    // The first page header of `bot_id` in the row group of rows 60,000
    // to 89,999, which holds the flow's conversation: every query reads
    // that column there.
    let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&bytes::Bytes::from(bytes.clone()))
        .unwrap();
    let group = metadata.row_group(2);
    let bot = (0..group.num_columns())
        .find(|&c| group.column(c).column_descr().name() == "bot_id")
        .unwrap();
    let header = group.column(bot).data_page_offset() as usize;
    bytes[header..header + 64].fill(0xFF);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.parquet");
    std::fs::write(&path, &bytes).unwrap();
    for q in queries() {
        for map_files in [true, false] {
            let err = run_files(&q, std::slice::from_ref(&path), &options(map_files))
                .map(|o| o.answer)
                .unwrap_err();
            assert!(
                matches!(err, convostat::Error::Data { .. }),
                "{q:?}, mapped {map_files}: {err:?}"
            );
            assert!(
                err.to_string().contains("damaged.parquet"),
                "{q:?}, mapped {map_files}: {err}"
            );
        }
    }
}
