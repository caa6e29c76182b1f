//! Batch jobs over large time-ordered files, in the layouts other writers
//! give them, answer as the engine does over the same events.
//!
//! The selective reader (`src/ingest/parquet/`) has paths that only large
//! inputs take: a row group of more than 131,072 rows read by fewer
//! threads than the pool has (a condition's rows handed on page by page, a
//! flow's bot matched beside its conversation), pages of 16 MiB or more
//! decoded forward in pieces, condition pages of 4 MiB or more, values far
//! into a compressed page read through a window, delta-encoded pages
//! decoded only as far as the rows wanted. The property tests' files are
//! too small for them. Here 300,000 generated events, interleaved in time
//! as a pipeline writes them, with long ids (UUID-sized conversation ids,
//! 60-byte event ids), are written as DuckDB, fastparquet, pyarrow and
//! Spark lay them out, and every query kind (flows of the first, a middle
//! and the last conversation of a bot) is compared with an engine that
//! ingested the generator's batches.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use convostat::batch::{run_files, BatchOptions};
use convostat::generate::{EventGenerator, GeneratorConfig, Layout};
use convostat::{Answer, Engine, Query};
use parquet::arrow::ArrowWriter;
use parquet::basic::{BrotliLevel, Compression, Encoding, GzipLevel, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder, WriterVersion};
use parquet::schema::types::ColumnPath;

mod common;

const EVENTS: usize = 300_000;
const BOT: &str = "bot-acme-support";

/// The generator's events with long ids, as one batch: conversation ids of
/// 36 bytes or more (unique across bots), event and message ids of 60.
fn events() -> RecordBatch {
    let config = GeneratorConfig::new(EVENTS, 11).with_layout(Layout::Interleaved);
    let batches: Vec<RecordBatch> = EventGenerator::new(config).collect();
    let batch = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap();
    let text = |name: &str| batch.column_by_name(name).unwrap().as_string::<i32>();
    let bots = text("bot_id");
    let lengthened = |name: &str, long: &dyn Fn(usize, &str) -> String| -> ArrayRef {
        let column = text(name);
        Arc::new(
            (0..batch.num_rows())
                .map(|row| column.is_valid(row).then(|| long(row, column.value(row))))
                .collect::<StringArray>(),
        )
    };
    let columns = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| match field.name().as_str() {
            "conversation_id" => lengthened("conversation_id", &|row, id| {
                format!("{:0>36}", format!("{}/{id}", bots.value(row)))
            }),
            name @ ("event_id" | "message_id") => lengthened(name, &|_, id| format!("{id:-<60}")),
            _ => column.clone(),
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns).unwrap()
}

/// Writer settings in the layouts of the writers users have.
fn layouts() -> Vec<(&'static str, WriterPropertiesBuilder)> {
    // One row group, and a column chunk in one page: DuckDB, fastparquet
    // and Polars write a row group's values of a column so.
    let one_page = || {
        WriterProperties::builder()
            .set_max_row_group_row_count(None)
            .set_data_page_size_limit(usize::MAX)
            .set_data_page_row_count_limit(usize::MAX)
            .set_dictionary_page_size_limit(usize::MAX)
            .set_write_batch_size(EVENTS)
    };
    let delta_strings = |builder: WriterPropertiesBuilder| {
        ["event_id", "conversation_id", "message_id"]
            .into_iter()
            .fold(builder.set_dictionary_enabled(false), |b, column| {
                b.set_column_encoding(ColumnPath::from(column), Encoding::DELTA_LENGTH_BYTE_ARRAY)
            })
            .set_column_encoding(ColumnPath::from("timestamp"), Encoding::DELTA_BINARY_PACKED)
    };
    vec![
        (
            "fastparquet (plain, snappy, one page)",
            one_page()
                .set_dictionary_enabled(false)
                .set_compression(Compression::SNAPPY),
        ),
        (
            "DuckDB (dictionaries, snappy, one page)",
            one_page().set_compression(Compression::SNAPPY),
        ),
        (
            "DuckDB v2 (delta strings and times, snappy, one page)",
            delta_strings(one_page())
                .set_writer_version(WriterVersion::PARQUET_2_0)
                .set_compression(Compression::SNAPPY),
        ),
        (
            "plain, zstd, v2, one page",
            one_page()
                .set_dictionary_enabled(false)
                .set_writer_version(WriterVersion::PARQUET_2_0)
                .set_compression(Compression::ZSTD(ZstdLevel::default())),
        ),
        (
            "delta strings, gzip, one page",
            delta_strings(one_page()).set_compression(Compression::GZIP(GzipLevel::default())),
        ),
        (
            "plain, lz4, one page",
            one_page()
                .set_dictionary_enabled(false)
                .set_compression(Compression::LZ4_RAW),
        ),
        (
            "plain, brotli, one page",
            one_page()
                .set_dictionary_enabled(false)
                .set_compression(Compression::BROTLI(BrotliLevel::default())),
        ),
        (
            "uncompressed, one page",
            one_page().set_compression(Compression::UNCOMPRESSED),
        ),
        (
            "pyarrow (dictionaries, snappy, 1 MiB pages, groups of 100,000)",
            WriterProperties::builder()
                .set_max_row_group_row_count(Some(100_000))
                .set_compression(Compression::SNAPPY),
        ),
    ]
}

/// Every query kind over `BOT` (`common::acme_queries`), with flows of
/// the first, a middle and the last of its live conversations in the file
/// that have transitions.
fn queries(events: &RecordBatch) -> Vec<Query> {
    let text = |name: &str| events.column_by_name(name).unwrap().as_string::<i32>();
    let (bots, conversations) = (text("bot_id"), text("conversation_id"));
    let (types, versions) = (text("event_type"), text("bot_version"));
    // Transitions of the bot's live conversations.
    let rows: Vec<usize> = (0..events.num_rows())
        .filter(|&row| {
            bots.value(row) == BOT
                && types.value(row) == "transition"
                && versions.is_valid(row)
                && versions.value(row) == "LIVE"
        })
        .collect();
    let flows: Vec<&str> = [rows[0], rows[rows.len() * 7 / 10], rows[rows.len() - 1]]
        .into_iter()
        .map(|row| conversations.value(row))
        .collect();
    common::acme_queries(
        [("start_time", "2024-01-01"), ("end_time", "2024-05-08")],
        &flows,
    )
}

#[test]
fn large_files_in_other_writers_layouts_answer_as_the_engine() {
    let events = events();
    let queries = queries(&events);
    let engine = Engine::new();
    engine.ingest_batch(&events).unwrap();
    let expected: Vec<_> = queries.iter().map(|q| engine.query(q).unwrap()).collect();
    // The conversations asked for have transitions to compare.
    for answer in &expected {
        if let Answer::Flow(flow) = answer {
            assert!(!flow.transitions.is_empty(), "{}", flow.conversation_id);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    for (n, (name, props)) in layouts().into_iter().enumerate() {
        let path = dir.path().join(format!("layout-{n}.parquet"));
        let mut writer = ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            events.schema(),
            Some(props.build()),
        )
        .unwrap();
        writer.write(&events).unwrap();
        writer.close().unwrap();
        for (q, want) in queries.iter().zip(&expected) {
            for map_files in [false, true] {
                let options = BatchOptions {
                    map_files,
                    ..BatchOptions::default()
                };
                let got = run_files(q, std::slice::from_ref(&path), &options)
                    .unwrap_or_else(|e| panic!("{name}: {q:?}: {e}"))
                    .answer;
                assert!(got == *want, "{name} (mapped {map_files}): {q:?}");
            }
        }
        std::fs::remove_file(&path).unwrap();
    }
}
