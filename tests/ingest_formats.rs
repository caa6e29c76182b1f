//! Input formats as other tools write them (SPEC 1, 7): null-typed columns
//! (pandas), every Parquet compression codec, NDJSON layout (BOM, gzip,
//! objects across lines), file types and directory walks.
//!
//! Every case runs through the engine (`Engine::ingest_*`) and through a
//! batch job (`batch::run_files`), which have their own paths (projection,
//! row-group pruning, row filters on `bot_id` / `conversation_id`).
//! `fixtures/ingest/` holds files written by pyarrow / pandas
//! (`fixtures/ingest/make_fixtures.py`); the others are written here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, NullArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use convostat::batch::{run_files, BatchOptions};
use convostat::{Engine, ErrorKind, IngestMode, Params, Query};
use parquet::arrow::ArrowWriter;
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterVersion};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/ingest")
        .join(name)
}

fn query(kind: &str, params: &[(&str, &str)]) -> Query {
    Query::from_params(kind, &Params::new(params.iter().copied()).unwrap()).unwrap()
}

/// One query of each kind over bot `b1`, team `t1`, conversation `c1`,
/// 2024-03-01.
fn queries() -> Vec<Query> {
    let range = [("start_time", "2024-03-01"), ("end_time", "2024-03-02")];
    let bot = [("bot_id", "b1"), ("version", "LIVE")];
    vec![
        query("conversations", &[&bot[..], &range[..]].concat()),
        query(
            "insights",
            &[
                &bot[..],
                &range[..],
                &[("stat", "duration_seconds"), ("aggregate", "sum")],
            ]
            .concat(),
        ),
        query(
            "insights",
            &[
                &bot[..],
                &range[..],
                &[("stat", "num_messages"), ("aggregate", "sum")],
            ]
            .concat(),
        ),
        query(
            "usage",
            &[
                &range[..],
                &[
                    ("team_id", "t1"),
                    ("bucket", "1d"),
                    ("group_by", "language"),
                ],
            ]
            .concat(),
        ),
        query(
            "flow",
            &[&bot[..], &range[..], &[("conversation_id", "c1")]].concat(),
        ),
    ]
}

/// The answers (or error kinds) of [`queries`] on `engine`.
fn answers(engine: &Engine) -> Vec<String> {
    queries()
        .iter()
        .map(|q| match engine.query(q) {
            Ok(a) => a.to_json(),
            Err(e) => format!("{:?}", e.kind()),
        })
        .collect()
}

/// The answers of [`queries`] as batch jobs over `inputs`.
fn batch_answers(inputs: &[PathBuf], mode: IngestMode) -> convostat::Result<Vec<String>> {
    queries()
        .iter()
        .map(|q| {
            let options = BatchOptions {
                mode,
                ..Default::default()
            };
            match run_files(q, inputs, &options) {
                Ok(outcome) => Ok(outcome.answer.to_json()),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok("NotFound".to_owned()),
                Err(e) => Err(e),
            }
        })
        .collect()
}

fn assert_data_error(result: convostat::Result<impl std::fmt::Debug>, names: &[&str]) {
    let err = match result {
        Ok(v) => panic!("accepted, expected a data error naming {names:?}: {v:?}"),
        Err(e) => e,
    };
    let message = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Data, "{message}");
    assert!(!message.contains('\n'), "{message:?}");
    for name in names {
        assert!(message.contains(name), "must name `{name}`: {message}");
    }
}

fn strings(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

/// The events of `fixtures/ingest/codec_*.parquet`: conversation `c1` (two
/// messages and a transition over 125 s) and `c2` (one other event) of bot
/// `b1`, version LIVE, team `t1`.
fn events_batch() -> RecordBatch {
    RecordBatch::try_from_iter([
        ("event_id", strings(&["k1", "k2", "k3", "k4"])),
        (
            "timestamp",
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    1_709_287_200_000_000,
                    1_709_287_260_000_000,
                    1_709_287_325_000_000,
                    1_709_290_800_000_000,
                ])
                .with_timezone("UTC"),
            ) as ArrayRef,
        ),
        ("bot_id", strings(&["b1"; 4])),
        ("conversation_id", strings(&["c1", "c1", "c1", "c2"])),
        (
            "event_type",
            strings(&["message", "transition", "message", "other"]),
        ),
        ("bot_version", strings(&["LIVE"; 4])),
        ("team_id", strings(&["t1"; 4])),
    ])
    .unwrap()
}

fn parquet_bytes(batch: &RecordBatch, compression: Compression) -> Vec<u8> {
    let props = WriterProperties::builder()
        .set_compression(compression)
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    out
}

/// The reference answers: the events ingested as an Arrow batch.
fn expected_answers() -> Vec<String> {
    let engine = Engine::new();
    engine.ingest_batch(&events_batch()).unwrap();
    let expected = answers(&engine);
    // Sanity: 2 conversations, c1 lasts 125 s with 2 messages.
    assert!(expected[0].contains("\"values\":[2]"), "{}", expected[0]);
    assert!(expected[1].contains("\"values\":[125]"), "{}", expected[1]);
    assert!(expected[2].contains("\"values\":[2]"), "{}", expected[2]);
    expected
}

// ---- Null-typed columns ---------------------------------------------------

/// pandas writes an all-`None` column with Arrow type `null` (Parquet INT32,
/// logical type UNKNOWN). In a required column every row is a null: strict
/// mode rejects the file naming the column, lenient mode skips and counts
/// every row — through the engine and through every batch query (whose bot
/// / conversation filters must not drop the rows silently).
#[test]
fn pandas_null_typed_required_columns_are_nulls() {
    for column in ["conversation_id", "event_id", "bot_id"] {
        let path = fixture(&format!("pandas_null_{column}.parquet"));
        let name = path.display().to_string();
        let engine = Engine::new();
        assert_data_error(
            engine.ingest_parquet(&path),
            &[&name, &format!("`{column}`")],
        );
        assert_eq!(engine.stats().events, 0);
        let lenient = Engine::with_mode(IngestMode::Lenient);
        let report = lenient.ingest_parquet(&path).unwrap();
        assert_eq!(report.rows_seen, 3);
        assert_eq!(report.rows_ingested, 0);
        assert_eq!(
            skipped(&report, &format!("null {column}")),
            Some(&3),
            "{report:?}"
        );
        for q in queries() {
            assert_data_error(
                run_files(&q, std::slice::from_ref(&path), &BatchOptions::default()),
                &[&name, &format!("`{column}`")],
            );
            let outcome = run_files(
                &q,
                std::slice::from_ref(&path),
                &BatchOptions {
                    mode: IngestMode::Lenient,
                    ..Default::default()
                },
            );
            match outcome {
                Ok(outcome) => assert_eq!(
                    skipped(&outcome.report, &format!("null {column}")),
                    Some(&3),
                    "{q:?}"
                ),
                Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound, "{q:?}: {e}"),
            }
        }
    }
}

/// A null-typed *optional* column is an all-null column: accepted, its
/// attribute is null (`(none)` in grouped answers).
#[test]
fn a_pandas_null_typed_optional_column_is_all_null() {
    let path = fixture("pandas_null_language.parquet");
    let engine = Engine::new();
    let report = engine.ingest_parquet(&path).unwrap();
    assert_eq!(report.rows_ingested, 3);
    let usage = answers(&engine)[3].clone();
    assert!(
        usage.contains("\"labels\":{\"language\":\"(none)\"}"),
        "{usage}"
    );
    let batch = batch_answers(&[path], IngestMode::Strict).unwrap();
    assert_eq!(batch, answers(&engine));
}

/// The same through Arrow batches (`Engine::ingest_batch` with a
/// `NullArray`) and NDJSON (a key that is null on every line).
#[test]
fn null_typed_columns_through_arrow_and_ndjson() {
    let batch = events_batch();
    for column in ["event_id", "timestamp", "conversation_id", "event_type"] {
        let nulls: Vec<(String, ArrayRef)> = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(f, c)| {
                let c = if f.name() == column {
                    Arc::new(NullArray::new(4)) as ArrayRef
                } else {
                    c.clone()
                };
                (f.name().clone(), c)
            })
            .collect();
        let nulls = RecordBatch::try_from_iter(nulls).unwrap();
        assert_data_error(
            Engine::new().ingest_batch(&nulls),
            &[&format!("`{column}`")],
        );
        let report = Engine::with_mode(IngestMode::Lenient)
            .ingest_batch(&nulls)
            .unwrap();
        assert_eq!(
            (report.rows_ingested, report.skipped_rows()),
            (0, 4),
            "{report:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("null_conversation.ndjson");
    let line = |i: usize| {
        format!(
            "{{\"event_id\":\"n{i}\",\"timestamp\":\"2024-03-01T10:00:0{i}Z\",\"bot_id\":\"b1\",\
             \"conversation_id\":null,\"event_type\":\"message\",\"bot_version\":\"LIVE\",\"team_id\":\"t1\"}}\n"
        )
    };
    std::fs::write(&path, (0..3).map(line).collect::<String>()).unwrap();
    assert_data_error(
        Engine::new().ingest_ndjson_file(&path),
        &["null_conversation.ndjson", "`conversation_id`", "line 1"],
    );
    let report = Engine::with_mode(IngestMode::Lenient)
        .ingest_ndjson_file(&path)
        .unwrap();
    assert_eq!(skipped(&report, "null conversation_id"), Some(&3));
    for q in queries() {
        assert_data_error(
            run_files(&q, std::slice::from_ref(&path), &BatchOptions::default()),
            &["`conversation_id`"],
        );
    }
}

/// A Null-typed `conversation_id` whose footer statistics claim no nulls
/// (a lying or buggy writer): batch jobs must not trust them to prune or
/// row-filter the row group — the conversation filter would drop every
/// row and flow would answer "not found" with exit 0.
#[test]
fn null_typed_keys_are_never_pruned_or_filtered_by_statistics() {
    let batch = events_batch();
    let columns: Vec<(String, ArrayRef, bool)> = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| {
            let c = if f.name() == "conversation_id" {
                Arc::new(NullArray::new(4)) as ArrayRef
            } else {
                c.clone()
            };
            (f.name().clone(), c, true)
        })
        .collect();
    let nulls = RecordBatch::try_from_iter_with_nullable(columns).unwrap();
    let bytes = with_footer(parquet_bytes(&nulls, Compression::SNAPPY), |c| {
        if c.column_path().string() == "conversation_id" {
            let no_nulls =
                parquet::file::statistics::Statistics::int32(None, None, None, Some(0), false);
            c.into_builder().set_statistics(no_nulls).build().unwrap()
        } else {
            c
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lying_stats.parquet");
    std::fs::write(&path, bytes).unwrap();
    for q in queries() {
        assert_data_error(
            run_files(&q, std::slice::from_ref(&path), &BatchOptions::default()),
            &["lying_stats.parquet", "`conversation_id`"],
        );
        let options = BatchOptions {
            mode: IngestMode::Lenient,
            ..Default::default()
        };
        let report = match run_files(&q, std::slice::from_ref(&path), &options) {
            Ok(outcome) => outcome.report,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::NotFound, "{q:?}: {e}");
                continue;
            }
        };
        assert_eq!(skipped(&report, "null conversation_id"), Some(&4), "{q:?}");
    }
}

// ---- Compression codecs ---------------------------------------------------

/// Every codec the parquet crate writes (LZ4 is the deprecated Hadoop
/// framing, LZ4_RAW the current one) reads back with the right answers,
/// through the engine and batch jobs.
#[test]
fn every_parquet_codec_reads_back() {
    let expected = expected_answers();
    let dir = tempfile::tempdir().unwrap();
    let codecs = [
        Compression::UNCOMPRESSED,
        Compression::SNAPPY,
        Compression::GZIP(GzipLevel::default()),
        Compression::BROTLI(BrotliLevel::default()),
        Compression::LZ4,
        Compression::LZ4_RAW,
        Compression::ZSTD(ZstdLevel::default()),
    ];
    for codec in codecs {
        let path = dir.path().join(format!("events_{codec:?}.parquet"));
        std::fs::write(&path, parquet_bytes(&events_batch(), codec)).unwrap();
        let engine = Engine::new();
        engine
            .ingest_parquet(&path)
            .unwrap_or_else(|e| panic!("{codec:?}: {e}"));
        assert_eq!(answers(&engine), expected, "{codec:?}");
        assert_eq!(
            batch_answers(&[path], IngestMode::Strict).unwrap(),
            expected,
            "{codec:?}"
        );
    }
}

/// Encodings the selective reader leaves to arrow's: `BYTE_STREAM_SPLIT`
/// timestamps (pyarrow's `column_encoding`, valid for `INT64` since
/// Parquet 2.11). Without statistics, a nullable required column's pages
/// are read to prove it holds no null; that proof once decoded the
/// values too and refused their encoding, so a file the engine read gave
/// batch jobs a data error.
#[test]
fn byte_stream_split_timestamps_read_back_without_statistics() {
    use parquet::basic::Encoding;
    use parquet::file::properties::EnabledStatistics;
    use parquet::schema::types::ColumnPath;
    let expected = expected_answers();
    // A second bot of another team, so that batch jobs select rows
    // rather than read them all.
    let events = events_batch();
    let other = RecordBatch::try_new(
        events.schema(),
        events
            .columns()
            .iter()
            .zip(events.schema().fields())
            .map(|(column, field)| match field.name().as_str() {
                "bot_id" => strings(&["b2"; 4]),
                "team_id" => strings(&["t2"; 4]),
                "event_id" => strings(&["o1", "o2", "o3", "o4"]),
                _ => column.clone(),
            })
            .collect(),
    )
    .unwrap();
    // Nullable columns (none null), so that every required one must be
    // proved to hold no null.
    let nullable = Arc::new(arrow_schema::Schema::new(
        events
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        nullable.clone(),
        arrow_select::concat::concat_batches(&events.schema(), [&other, &events])
            .unwrap()
            .columns()
            .to_vec(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for codec in [
        Compression::LZ4_RAW,
        Compression::ZSTD(ZstdLevel::default()),
    ] {
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            let props = WriterProperties::builder()
                .set_compression(codec)
                .set_writer_version(version)
                .set_statistics_enabled(EnabledStatistics::None)
                .set_dictionary_enabled(false)
                .set_column_encoding(ColumnPath::from("timestamp"), Encoding::BYTE_STREAM_SPLIT)
                .build();
            let mut bytes = Vec::new();
            let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(props)).unwrap();
            writer.write(&batch).unwrap();
            writer.close().unwrap();
            let path = dir
                .path()
                .join(format!("bss_{codec:?}_{version:?}.parquet"));
            std::fs::write(&path, bytes).unwrap();
            let engine = Engine::new();
            engine.ingest_parquet(&path).unwrap();
            assert_eq!(answers(&engine), expected, "{codec:?} {version:?}");
            let batch_jobs = batch_answers(&[path], IngestMode::Strict)
                .unwrap_or_else(|e| panic!("{codec:?} {version:?}: {e}"));
            assert_eq!(batch_jobs, expected, "{codec:?} {version:?}");
        }
    }
}

/// zstd pages, which the selective reader decompresses itself rather than
/// through the `parquet` crate's codec: version 1 and 2 data pages (levels
/// first, then compressed values), several pages per chunk, dictionaries or
/// none, give the answers of the same events ingested as a batch.
#[test]
fn zstd_pages_of_both_page_versions_read_back() {
    let rows = 3_000usize;
    let text = |f: &dyn Fn(usize) -> String| -> ArrayRef {
        Arc::new((0..rows).map(|i| Some(f(i))).collect::<StringArray>())
    };
    // Nullable columns, so that every data page has definition levels.
    let batch = RecordBatch::try_from_iter_with_nullable([
        ("event_id", text(&|i| format!("event-{i:06}")), true),
        (
            "timestamp",
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    (0..rows as i64).map(|i| 1_709_287_200_000_000 + i * 7_000_000),
                )
                .with_timezone("UTC"),
            ) as ArrayRef,
            true,
        ),
        ("bot_id", text(&|_| "b1".to_owned()), true),
        (
            "conversation_id",
            text(&|i| format!("c{}", i / 7 % 2)),
            true,
        ),
        (
            "event_type",
            text(&|i| ["message", "transition", "other"][i % 3].to_owned()),
            true,
        ),
        ("bot_version", text(&|_| "LIVE".to_owned()), true),
        ("team_id", text(&|_| "t1".to_owned()), true),
    ])
    .unwrap();
    let engine = Engine::new();
    engine.ingest_batch(&batch).unwrap();
    let expected = answers(&engine);
    assert!(expected[0].contains("\"values\":[2]"), "{}", expected[0]);
    let dir = tempfile::tempdir().unwrap();
    for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
        for dictionary in [true, false] {
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .set_writer_version(version)
                .set_dictionary_enabled(dictionary)
                .set_data_page_row_count_limit(500)
                .set_write_batch_size(500)
                .build();
            let path = dir
                .path()
                .join(format!("zstd_{version:?}_{dictionary}.parquet"));
            let mut out = Vec::new();
            let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
            writer.write(&batch).unwrap();
            writer.close().unwrap();
            std::fs::write(&path, out).unwrap();
            let case = format!("{version:?}, dictionary {dictionary}");
            assert_eq!(
                batch_answers(std::slice::from_ref(&path), IngestMode::Strict).unwrap(),
                expected,
                "{case}"
            );
            let engine = Engine::new();
            engine.ingest_parquet(&path).unwrap();
            assert_eq!(answers(&engine), expected, "{case}");
        }
    }
}

/// The same with files pyarrow wrote (`compression=` none, snappy, gzip,
/// brotli, lz4, zstd).
#[test]
fn every_pyarrow_codec_reads_back() {
    let expected = expected_answers();
    for codec in ["none", "snappy", "gzip", "brotli", "lz4", "zstd"] {
        let path = fixture(&format!("codec_{codec}.parquet"));
        let engine = Engine::new();
        engine
            .ingest_parquet(&path)
            .unwrap_or_else(|e| panic!("{codec}: {e}"));
        assert_eq!(answers(&engine), expected, "{codec}");
        assert_eq!(
            batch_answers(&[path], IngestMode::Strict).unwrap(),
            expected,
            "{codec}"
        );
    }
}

/// `bytes`, a Parquet file, with every column chunk's codec in the footer
/// set to `codec` (the pages are left as they are).
fn with_codec(bytes: Vec<u8>, codec: Compression) -> Vec<u8> {
    with_footer(bytes, |c| {
        c.into_builder().set_compression(codec).build().unwrap()
    })
}

/// `bytes`, a Parquet file, with every column chunk's metadata in the
/// footer passed through `edit` (the pages are left as they are).
fn with_footer(
    bytes: Vec<u8>,
    edit: impl Fn(
        parquet::file::metadata::ColumnChunkMetaData,
    ) -> parquet::file::metadata::ColumnChunkMetaData,
) -> Vec<u8> {
    use parquet::file::metadata::{ParquetMetaDataReader, ParquetMetaDataWriter};
    let data = bytes::Bytes::from(bytes.clone());
    let metadata = ParquetMetaDataReader::new()
        .parse_and_finish(&data)
        .unwrap();
    let footer_len =
        u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap());
    let data_end = bytes.len() - 8 - footer_len as usize;
    let row_groups = metadata
        .row_groups()
        .iter()
        .map(|rg| {
            let columns = rg.columns().iter().map(|c| edit(c.clone())).collect();
            rg.clone()
                .into_builder()
                .set_column_metadata(columns)
                .build()
                .unwrap()
        })
        .collect();
    let metadata = metadata.into_builder().set_row_groups(row_groups).build();
    let mut out = bytes[..data_end].to_vec();
    ParquetMetaDataWriter::new(&mut out, &metadata)
        .finish()
        .unwrap();
    out
}

/// LZO, which no Rust Parquet reader decompresses: a one-line data error
/// naming the codec and the file, through every entry point.
#[test]
fn an_lzo_file_is_a_data_error_naming_the_codec() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events_lzo.parquet");
    let bytes = with_codec(
        parquet_bytes(&events_batch(), Compression::UNCOMPRESSED),
        Compression::LZO,
    );
    std::fs::write(&path, &bytes).unwrap();
    let name = path.display().to_string();
    assert_data_error(Engine::new().ingest_parquet(&path), &[&name, "LZO"]);
    assert_data_error(Engine::new().ingest_parquet_bytes(bytes), &["LZO"]);
    for q in queries() {
        assert_data_error(
            run_files(&q, std::slice::from_ref(&path), &BatchOptions::default()),
            &[&name, "LZO"],
        );
    }
    // The footer rewrite itself is sound: with the real codec it reads.
    let same = with_codec(
        parquet_bytes(&events_batch(), Compression::UNCOMPRESSED),
        Compression::UNCOMPRESSED,
    );
    Engine::new().ingest_parquet_bytes(same).unwrap();
}

// ---- NDJSON layout --------------------------------------------------------

/// The events of [`events_batch`] as NDJSON lines.
fn events_ndjson() -> String {
    let events = [
        ("k1", "2024-03-01T10:00:00Z", "c1", "message"),
        ("k2", "2024-03-01T10:01:00Z", "c1", "transition"),
        ("k3", "2024-03-01T10:02:05Z", "c1", "message"),
        ("k4", "2024-03-01T11:00:00Z", "c2", "other"),
    ];
    events
        .iter()
        .map(|(id, ts, conversation, kind)| {
            format!(
                "{{\"event_id\":\"{id}\",\"timestamp\":\"{ts}\",\"bot_id\":\"b1\",\
                 \"conversation_id\":\"{conversation}\",\"event_type\":\"{kind}\",\
                 \"bot_version\":\"LIVE\",\"team_id\":\"t1\"}}\n"
            )
        })
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The answers of the engine after `Engine::ingest_ndjson_file(path)` and
/// of batch jobs over `path`.
fn ndjson_answers(path: &Path) -> (Vec<String>, Vec<String>) {
    let engine = Engine::new();
    engine
        .ingest_ndjson_file(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let batch = batch_answers(&[path.to_path_buf()], IngestMode::Strict).unwrap();
    (answers(&engine), batch)
}

/// `.ndjson.gz` and `.jsonl.gz` files are read through gzip (also several
/// concatenated gzip members), named or found in a directory.
#[test]
fn gzipped_ndjson_reads_back() {
    let expected = expected_answers();
    let dir = tempfile::tempdir().unwrap();
    let text = events_ndjson();
    let one = dir.path().join("events.ndjson.gz");
    std::fs::write(&one, gzip(text.as_bytes())).unwrap();
    // Two members, split in the middle of a line, as `cat a.gz b.gz`.
    let (a, b) = text.split_at(100);
    let two = dir.path().join("members.JSONL.GZ");
    std::fs::write(&two, [gzip(a.as_bytes()), gzip(b.as_bytes())].concat()).unwrap();
    for path in [&one, &two] {
        let (engine, batch) = ndjson_answers(path);
        assert_eq!(engine, expected, "{}", path.display());
        assert_eq!(batch, expected, "{}", path.display());
    }
    let sub = tempfile::tempdir().unwrap();
    std::fs::copy(&one, sub.path().join("events.jsonl.gz")).unwrap();
    assert_eq!(
        batch_answers(&[sub.path().to_path_buf()], IngestMode::Strict).unwrap(),
        expected
    );
}

/// A corrupt or truncated gzip file is a one-line data error naming the
/// file, and nothing of it is ingested.
#[test]
fn corrupt_gzip_is_a_data_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = gzip(events_ndjson().repeat(50).as_bytes());
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage.ndjson.gz", b"this is not gzip at all\n".to_vec()),
        ("truncated.ndjson.gz", good[..good.len() / 2].to_vec()),
        ("flipped.ndjson.gz", flipped),
        ("plain.jsonl.gz", events_ndjson().into_bytes()),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let engine = Engine::new();
        assert_data_error(engine.ingest_ndjson_file(&path), &[name]);
        assert_eq!(engine.stats().events, 0, "{name}");
        for q in queries() {
            assert_data_error(
                run_files(&q, std::slice::from_ref(&path), &BatchOptions::default()),
                &[name],
            );
        }
    }
}

/// A UTF-8 byte order mark at the start of a file is skipped.
#[test]
fn a_byte_order_mark_is_skipped() {
    let expected = expected_answers();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bom.ndjson");
    std::fs::write(&path, format!("\u{feff}{}", events_ndjson())).unwrap();
    let (engine, batch) = ndjson_answers(&path);
    assert_eq!(engine, expected);
    assert_eq!(batch, expected);
    let gz = dir.path().join("bom.ndjson.gz");
    std::fs::write(&gz, gzip(format!("\u{feff}{}", events_ndjson()).as_bytes())).unwrap();
    assert_eq!(ndjson_answers(&gz).0, expected);
}

/// An object that spans lines (pretty-printed JSON) or two objects on one
/// line: a data error naming the file and the physical line.
#[test]
fn objects_across_or_within_lines_are_refused_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = events_ndjson();
    let lines: Vec<&str> = text.lines().collect();
    let spanning = format!(
        "{}\n{}\n{}",
        lines[0],
        lines[1].replace(",\"bot_id\"", ",\n\"bot_id\""),
        lines[2..].join("\n")
    );
    let two = format!("{}\n{} {}\n{}\n", lines[0], lines[1], lines[2], lines[3]);
    for (name, text) in [("spanning.ndjson", spanning), ("two.ndjson", two)] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        assert_data_error(Engine::new().ingest_ndjson_file(&path), &[name, "line 2"]);
        for q in queries() {
            assert_data_error(
                run_files(&q, std::slice::from_ref(&path), &BatchOptions::default()),
                &[name, "line 2"],
            );
        }
    }
}

// ---- File types and directory walks ---------------------------------------

/// A named file that is neither Parquet nor NDJSON (by its name) is a data
/// error naming it and the supported types, not a "corrupt footer".
#[test]
fn unknown_file_types_are_refused_naming_the_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["events.csv", "events", "events.json", "events.parquet.gz"] {
        let path = dir.path().join(name);
        std::fs::write(&path, events_ndjson()).unwrap();
        for q in queries() {
            assert_data_error(
                run_files(&q, std::slice::from_ref(&path), &BatchOptions::default()),
                &[
                    name,
                    "unsupported file type",
                    ".parquet",
                    ".ndjson",
                    ".jsonl.gz",
                ],
            );
        }
    }
    // `.parq` is Parquet.
    let parq = dir.path().join("events.parq");
    std::fs::copy(fixture("codec_none.parquet"), &parq).unwrap();
    assert_eq!(
        batch_answers(&[parq], IngestMode::Strict).unwrap(),
        expected_answers()
    );
}

/// Directory walks skip `.` and `_` entries, as Spark, Hive and Arrow
/// datasets do: `_SUCCESS`, `_temporary/`, macOS `._x.parquet` sidecars
/// (AppleDouble, not Parquet), hidden directories. A sidecar used to fail
/// the whole query. Named explicitly, such a file is read.
#[test]
fn directory_walks_skip_hidden_and_underscore_entries() {
    let expected = expected_answers();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::copy(fixture("codec_snappy.parquet"), root.join("part-0.parquet")).unwrap();
    std::fs::write(root.join("_SUCCESS"), b"").unwrap();
    std::fs::write(
        root.join("._part-0.parquet"),
        b"\x00\x05\x16\x07AppleDouble",
    )
    .unwrap();
    std::fs::write(root.join("notes.csv"), b"a,b\n").unwrap();
    for sub in ["_temporary", ".hidden"] {
        std::fs::create_dir(root.join(sub)).unwrap();
        std::fs::write(root.join(sub).join("part-1.parquet"), b"not parquet").unwrap();
    }
    assert_eq!(
        batch_answers(&[root.to_path_buf()], IngestMode::Strict).unwrap(),
        expected
    );
    // Named explicitly, the sidecar is read (and is no Parquet file).
    let sidecar = root.join("._part-0.parquet");
    assert_data_error(
        run_files(&queries()[0], &[sidecar], &BatchOptions::default()),
        &["._part-0.parquet"],
    );
    // A named `_` directory is walked.
    let named = root.join("_named");
    std::fs::create_dir(&named).unwrap();
    std::fs::copy(fixture("codec_zstd.parquet"), named.join("p.parquet")).unwrap();
    assert_eq!(
        batch_answers(&[named], IngestMode::Strict).unwrap(),
        expected
    );
}

// ---- Projection -------------------------------------------------------------

/// `Engine::ingest_parquet` decodes only the event columns: a file with a
/// wide extra binary column (4 MB a row) and an extra list column whose
/// pages are garbage ingests fine and gives the right answers — the
/// garbage would be a data error if it were read.
#[test]
fn engine_parquet_ingest_reads_only_the_event_columns() {
    use arrow_array::builder::{ListBuilder, StringBuilder};
    let events = events_batch();
    let wide: ArrayRef = Arc::new(arrow_array::BinaryArray::from_iter_values(
        (0..4).map(|i| vec![i as u8; 4 << 20]),
    ));
    let mut list = ListBuilder::new(StringBuilder::new());
    for i in 0..4 {
        list.values().append_value(format!("v{i}"));
        list.append(true);
    }
    let list: ArrayRef = Arc::new(list.finish());
    let mut columns: Vec<(String, ArrayRef)> = events
        .schema()
        .fields()
        .iter()
        .zip(events.columns())
        .map(|(f, c)| (f.name().clone(), c.clone()))
        .collect();
    columns.push(("payload".into(), wide));
    columns.push(("tags".into(), list));
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut bytes = parquet_bytes(&batch, Compression::UNCOMPRESSED);
    // Overwrite the `tags` column chunk with garbage.
    let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&bytes::Bytes::from(bytes.clone()))
        .unwrap();
    let chunk = metadata.row_group(0).columns().last().unwrap();
    assert_eq!(chunk.column_descr().path().string(), "tags.list.item");
    let start = chunk
        .dictionary_page_offset()
        .unwrap_or(chunk.data_page_offset()) as usize;
    let len = chunk.compressed_size() as usize;
    bytes[start..start + len].fill(0xa5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.parquet");
    std::fs::write(&path, &bytes).unwrap();

    let expected = expected_answers();
    let engine = Engine::new();
    engine.ingest_parquet(&path).unwrap();
    assert_eq!(answers(&engine), expected);
    let engine = Engine::new();
    engine.ingest_parquet_bytes(bytes).unwrap();
    assert_eq!(answers(&engine), expected);
    assert_eq!(
        batch_answers(&[path], IngestMode::Strict).unwrap(),
        expected
    );
}

/// The count of rows skipped for the reason written `reason`.
fn skipped<'a>(report: &'a convostat::IngestReport, reason: &str) -> Option<&'a u64> {
    report
        .skipped
        .iter()
        .find(|(r, _)| r.to_string() == reason)
        .map(|(_, n)| n)
}
