//! Hostile and odd input, through the library (SPEC 1, 6).
//!
//! `fixtures/bad/` holds small hostile files (see the table in
//! [`corpus`]); large ones are made here in a temporary directory. Every
//! bad input must give `ErrorKind::Data` with a message naming the column
//! and/or line where possible — never a panic, an abort or runaway memory —
//! through every entry point: `Engine::ingest_parquet`,
//! `ingest_parquet_bytes`, `ingest_ndjson_file`, `ingest_ndjson` and
//! `batch::run_files`. A rejected input leaves an engine exactly as it was.
//! Odd-but-valid input (zero rows, empty files, 10 MB values and lines)
//! simply works.
//!
//! Tests that could kill the whole test process (a stack overflow aborts,
//! it does not unwind) run their body in a child process: see [`in_child`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use convostat::batch::{run_files, BatchOptions};
use convostat::{Engine, Error, ErrorKind, IngestMode, IngestReport, Params, Query};
use serde_json::Value;

mod common;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn bad(name: &str) -> PathBuf {
    fixtures().join("bad").join(name)
}

fn query(kind: &str, params: &[(&str, &str)]) -> Query {
    Query::from_params(kind, &Params::new(params.iter().copied()).unwrap()).unwrap()
}

/// One query of each kind (and each `event_type`-reading variant) over the
/// bad files' data: bot `b1`, team `t1`, March 2024.
fn queries_over_bad_files(conversation: &str) -> Vec<(String, Query)> {
    let range = [("start_time", "2024-03-01"), ("end_time", "2024-03-04")];
    let bot = [("bot_id", "b1"), ("version", "LIVE")];
    let mut out = vec![
        (
            "conversations".to_owned(),
            query("conversations", &[&bot[..], &range[..]].concat()),
        ),
        (
            "insights duration_seconds".to_owned(),
            query(
                "insights",
                &[&bot[..], &range[..], &[("stat", "duration_seconds")]].concat(),
            ),
        ),
        (
            "insights num_messages".to_owned(),
            query(
                "insights",
                &[&bot[..], &range[..], &[("stat", "num_messages")]].concat(),
            ),
        ),
        (
            "usage".to_owned(),
            query(
                "usage",
                &[&range[..], &[("team_id", "t1"), ("bucket", "1d")]].concat(),
            ),
        ),
    ];
    out.push((
        format!("flow {conversation}"),
        query(
            "flow",
            &[&bot[..], &range[..], &[("conversation_id", conversation)]].concat(),
        ),
    ));
    out
}

/// Every golden case that is a valid query, as (name, query).
fn golden_queries() -> Vec<(String, Query)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures().join("expected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            let case: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let params: Vec<(String, String)> = case["params"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            let q = Query::from_params(case["query"].as_str().unwrap(), &Params::new(params).ok()?)
                .ok()?;
            Some((path.file_name().unwrap().to_string_lossy().into_owned(), q))
        })
        .collect()
}

/// Everything observable about an engine: its size figures and its answers
/// (or errors) to every golden query.
fn snapshot(engine: &Engine) -> (convostat::EngineStats, Vec<(String, String)>) {
    let answers = golden_queries()
        .into_iter()
        .map(|(name, q)| {
            let answer = match engine.query(&q) {
                Ok(a) => a.to_json(),
                Err(e) => format!("{:?}: {e}", e.kind()),
            };
            (name, answer)
        })
        .collect();
    (engine.stats(), answers)
}

/// An engine holding the golden events.
fn loaded_engine(mode: IngestMode) -> Engine {
    let engine = Engine::with_mode(mode);
    engine
        .ingest_ndjson_file(fixtures().join("events.ndjson"))
        .unwrap();
    engine
}

/// What is wrong with `err` as a data error naming `must_name`, if
/// anything.
fn error_problem(err: &Error, must_name: &[&str]) -> Option<String> {
    let message = err.to_string();
    if err.kind() != ErrorKind::Data {
        return Some(format!(
            "{:?}, expected a data error: {message}",
            err.kind()
        ));
    }
    if message.contains('\n') {
        return Some(format!("message is not one line: {message:?}"));
    }
    must_name
        .iter()
        .find(|part| !message.contains(*part))
        .map(|part| format!("message must name `{part}`: {message}"))
}

/// What is wrong with `result` as a data error naming `must_name`, if
/// anything.
fn data_error_problem<T: std::fmt::Debug>(
    result: convostat::Result<T>,
    must_name: &[&str],
) -> Option<String> {
    match result {
        Ok(v) => Some(format!("accepted, expected a data error: {v:?}")),
        Err(e) => error_problem(&e, must_name),
    }
}

fn assert_data_error<T: std::fmt::Debug>(
    result: convostat::Result<T>,
    what: &str,
    must_name: &[&str],
) -> Error {
    let err = match result {
        Ok(v) => panic!("{what}: accepted, expected a data error: {v:?}"),
        Err(e) => e,
    };
    if let Some(problem) = error_problem(&err, must_name) {
        panic!("{what}: {problem}");
    }
    err
}

/// The committed hostile corpus: (file, what its error must name besides
/// the file name).
fn corpus() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        // The first 6,398 bytes of events.parquet: no footer.
        ("truncated.parquet", vec![]),
        // events.parquet with `PAR0` for both magic numbers.
        ("bad_magic.parquet", vec![]),
        // 4,096 random bytes.
        ("random_bytes.parquet", vec![]),
        // events.parquet with byte 4313 (a `bot_id` page of the third row
        // group) changed from 0x0c to 0xc7: the decoder panics inside.
        ("corrupt_page.parquet", vec![]),
        // events.parquet with the byte at offset 10171 (footer) changed
        // from 0xf0 to 0xff: the third row group's `campaign_source` chunk has length
        // -128, and the metadata decoder panics.
        ("negative_column_length.parquet", vec![]),
        // Valid Parquet, 3 rows, `bot_id` INT64.
        ("bot_id_int64.parquet", vec!["`bot_id`"]),
        // Valid Parquet, `timestamp` a string column.
        ("timestamp_string.parquet", vec!["`timestamp`"]),
        // Valid Parquet, optional `channel_type` DOUBLE.
        ("channel_type_double.parquet", vec!["`channel_type`"]),
        // Valid Parquet without `conversation_id`.
        ("missing_conversation_id.parquet", vec!["`conversation_id`"]),
        // Valid Parquet: row 2 null `bot_id`, row 3 null `event_type`.
        ("null_required.parquet", vec!["`bot_id`", "row 2"]),
        // Line 2 has bytes 0xff 0xfe inside a string.
        ("invalid_utf8.ndjson", vec!["line 2"]),
        // Line 2 is `[1,2]`, `42`, `"str"`.
        ("not_object_array.ndjson", vec!["line 2"]),
        ("not_object_number.ndjson", vec!["line 2"]),
        ("not_object_string.ndjson", vec!["line 2"]),
        // Line 3 has `"timestamp": "2024-03-01 10:00"`.
        ("bad_timestamp.ndjson", vec!["line 3", "`timestamp`"]),
        // Line 2 has `"bot_id": 5`.
        ("number_for_string.ndjson", vec!["line 2", "bot_id"]),
        // Line 3 stops in the middle of a string, no newline.
        ("truncated_last_line.ndjson", vec!["line 3"]),
        // Line 2 `bot_id` null, line 3 `bot_id` absent and `event_type`
        // null, line 4 `conversation_id` absent.
        ("null_required.ndjson", vec!["`bot_id`", "line 2"]),
    ]
}

fn is_parquet(name: &str) -> bool {
    name.ends_with(".parquet")
}

/// Ingests `path` into `engine` by every engine entry point for its format.
fn ingest_every_way(
    engine: &Engine,
    path: &Path,
) -> Vec<(&'static str, convostat::Result<IngestReport>)> {
    let name = path.file_name().unwrap().to_str().unwrap();
    let bytes = std::fs::read(path).unwrap();
    if is_parquet(name) {
        vec![
            ("ingest_parquet", engine.ingest_parquet(path)),
            ("ingest_parquet_bytes", engine.ingest_parquet_bytes(bytes)),
        ]
    } else {
        vec![
            ("ingest_ndjson_file", engine.ingest_ndjson_file(path)),
            ("ingest_ndjson", engine.ingest_ndjson(&bytes[..])),
        ]
    }
}

#[test]
fn the_corpus_is_a_data_error_and_leaves_the_engine_intact() {
    for mode in [IngestMode::Strict, IngestMode::Lenient] {
        let engine = loaded_engine(mode);
        let before = snapshot(&engine);
        for (name, must_name) in corpus() {
            // Lenient mode skips null rows instead of failing.
            if mode == IngestMode::Lenient && name.starts_with("null_required") {
                continue;
            }
            let path = bad(name);
            for (how, result) in ingest_every_way(&engine, &path) {
                let mut names = must_name.clone();
                if how.ends_with("_file") || how == "ingest_parquet" {
                    names.push(name);
                }
                assert_data_error(result, &format!("{name} via {how} ({mode:?})"), &names);
                assert!(
                    snapshot(&engine) == before,
                    "{name} via {how} ({mode:?}): the engine changed"
                );
            }
            // A fresh engine stays empty: nothing of a rejected input is
            // ingested, not even the rows before the bad one.
            let fresh = Engine::with_mode(mode);
            for (how, result) in ingest_every_way(&fresh, &path) {
                assert!(result.is_err(), "{name} via {how}");
                let stats = fresh.stats();
                assert_eq!(
                    (stats.events, stats.conversations),
                    (0, 0),
                    "{name} via {how} ({mode:?}): partly ingested"
                );
            }
        }
    }
}

/// Batch execution over the corpus with a query that reads every column
/// it checks (usage, grouped by every field): a data error naming the file.
/// Files whose rejection depends on the query are covered by the tests that
/// follow.
#[test]
fn the_corpus_fails_batch_execution_naming_the_file() {
    let usage = query(
        "usage",
        &[
            ("team_id", "t1"),
            ("start_time", "2024-03-01"),
            ("end_time", "2024-03-04"),
            ("bucket", "1d"),
            (
                "group_by",
                "bot_id,bot_version,team_id,channel_type,language,campaign_id,campaign_source",
            ),
        ],
    );
    let mut failures = Vec::new();
    // Nulls: see batch_strict_mode_rejects_nulls_whatever_the_query.
    for (name, must_name) in corpus()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("null_required"))
    {
        let mut names = must_name.clone();
        names.push(name);
        let result = run_files(&usage, &[bad(name)], &BatchOptions::default()).map(|o| o.answer);
        if let Some(problem) = data_error_problem(result, &names) {
            failures.push(format!("{name}: {problem}"));
        }
        // The same file after a good one: the job fails as a whole.
        let result = run_files(
            &usage,
            &[fixtures().join("events.parquet"), bad(name)],
            &BatchOptions::default(),
        )
        .map(|o| o.answer);
        if let Some(problem) = data_error_problem(result, &[name]) {
            failures.push(format!("{name} after a good file: {problem}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// SPEC 1: a column of a type not listed is rejected, and nothing of the
/// input is ingested — also by batch execution, whatever its bot /
/// conversation pre-filter: the file's schema is checked before any row is
/// read. (With `bot_id` INT64 no row equals `"b1"`; a check after the
/// filter would let the file pass as an empty data set.)
#[test]
fn batch_rejects_a_wrongly_typed_key_column_whatever_the_query() {
    let path = bad("bot_id_int64.parquet");
    for (what, q) in queries_over_bad_files("cx") {
        let result =
            run_files(&q, std::slice::from_ref(&path), &BatchOptions::default()).map(|o| o.answer);
        assert_data_error(
            result,
            &format!("bot_id_int64.parquet, {what}"),
            &["`bot_id`"],
        );
    }
}

/// SPEC 1: a column of a type not listed is rejected — also an optional
/// column the query does not read: by `Engine::ingest_parquet` and by every
/// batch query, which checks the whole schema, not only its projection.
#[test]
fn batch_rejects_a_wrongly_typed_column_the_query_does_not_read() {
    let path = bad("channel_type_double.parquet");
    assert_data_error(
        Engine::new().ingest_parquet(&path),
        "engine",
        &["`channel_type`"],
    );
    for (what, q) in queries_over_bad_files("cx") {
        let result =
            run_files(&q, std::slice::from_ref(&path), &BatchOptions::default()).map(|o| o.answer);
        assert_data_error(
            result,
            &format!("channel_type_double.parquet, {what}"),
            &["`channel_type`"],
        );
    }
}

/// SPEC 1: in strict mode a null in a required column rejects the file,
/// whatever the query: batch execution always decodes the required columns
/// and validates every row before applying its bot / conversation filter
/// (it prunes or row-filters only row groups whose statistics prove every
/// row valid).
#[test]
fn batch_strict_mode_rejects_nulls_whatever_the_query() {
    let mut failures = Vec::new();
    for (file, conversation) in [
        ("null_required.parquet", "cx"),
        ("null_required.ndjson", "cn"),
    ] {
        for (what, q) in queries_over_bad_files(conversation) {
            match run_files(&q, &[bad(file)], &BatchOptions::default()) {
                Err(e) if e.kind() == ErrorKind::Data => {}
                other => failures.push(format!("{file}, {what}: {:?}", other.map(|o| o.answer))),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "strict batch runs that did not reject the file:\n{}",
        failures.join("\n")
    );
}

fn skipped(report: &IngestReport) -> BTreeMap<String, u64> {
    report
        .skipped
        .iter()
        .map(|(reason, n)| (reason.to_string(), *n))
        .collect()
}

#[test]
fn lenient_engine_skips_and_counts_nulls_per_reason() {
    let engine = Engine::with_mode(IngestMode::Lenient);
    let report = engine
        .ingest_ndjson_file(bad("null_required.ndjson"))
        .unwrap();
    assert_eq!(
        skipped(&report),
        BTreeMap::from([
            ("null bot_id".to_owned(), 2),
            ("null conversation_id".to_owned(), 1)
        ])
    );
    assert_eq!((report.rows_seen, report.rows_ingested), (4, 1));
    assert_eq!(report.skipped_rows(), 3);

    let engine = Engine::with_mode(IngestMode::Lenient);
    for report in [
        engine.ingest_parquet(bad("null_required.parquet")).unwrap(),
        Engine::with_mode(IngestMode::Lenient)
            .ingest_parquet_bytes(std::fs::read(bad("null_required.parquet")).unwrap())
            .unwrap(),
    ] {
        assert_eq!(
            skipped(&report),
            BTreeMap::from([
                ("null bot_id".to_owned(), 1),
                ("null event_type".to_owned(), 1)
            ])
        );
        assert_eq!((report.rows_seen, report.rows_ingested), (3, 1));
    }
    // The one good row is there.
    let answer = engine
        .query(&query(
            "conversations",
            &[
                ("bot_id", "b1"),
                ("version", "LIVE"),
                ("start_time", "2024-03-01"),
                ("end_time", "2024-03-02"),
            ],
        ))
        .unwrap();
    assert!(
        answer.to_json().contains("\"values\":[1]"),
        "{}",
        answer.to_json()
    );

    // Strict: the whole file is rejected, naming column and row.
    for (file, column, row) in [
        ("null_required.ndjson", "`bot_id`", "line 2"),
        ("null_required.parquet", "`bot_id`", "row 2"),
    ] {
        let engine = loaded_engine(IngestMode::Strict);
        let before = snapshot(&engine);
        for (how, result) in ingest_every_way(&engine, &bad(file)) {
            assert_data_error(result, &format!("{file} via {how}"), &[column, row]);
        }
        assert!(snapshot(&engine) == before);
    }
}

/// Lenient batch runs must skip and count the same rows as the engine,
/// whatever the query (SPEC 1: lenient mode reports, per reason, how many
/// rows it skipped).
#[test]
fn lenient_batch_counts_match_the_engine_whatever_the_query() {
    let lenient = BatchOptions {
        mode: IngestMode::Lenient,
        ..BatchOptions::default()
    };
    let mut failures = Vec::new();
    for (file, conversation) in [
        ("null_required.parquet", "cx"),
        ("null_required.ndjson", "cn"),
    ] {
        let engine = Engine::with_mode(IngestMode::Lenient);
        let expected = if is_parquet(file) {
            engine.ingest_parquet(bad(file)).unwrap()
        } else {
            engine.ingest_ndjson_file(bad(file)).unwrap()
        };
        for (what, q) in queries_over_bad_files(conversation) {
            let outcome = run_files(&q, &[bad(file)], &lenient).unwrap();
            if skipped(&outcome.report) != skipped(&expected) {
                failures.push(format!(
                    "{file}, {what}: batch skipped {:?}, engine {:?}",
                    outcome.report.skipped, expected.skipped
                ));
            }
            // And the answer is the engine's.
            let warm = engine
                .query(&q)
                .map(|a| a.to_json())
                .map_err(|e| e.to_string());
            let cold = Ok(outcome.answer.to_json());
            if warm != cold {
                failures.push(format!("{file}, {what}: batch {cold:?} != engine {warm:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn line(id: &str, bot: Option<&str>, conversation: Option<&str>) -> String {
    let mut obj = serde_json::json!({
        "event_id": id,
        "timestamp": "2024-03-01T10:00:00Z",
        "event_type": "message",
        "team_id": "t1",
        "bot_version": "LIVE",
    });
    if let Some(b) = bot {
        obj["bot_id"] = b.into();
    }
    if let Some(c) = conversation {
        obj["conversation_id"] = c.into();
    }
    obj.to_string()
}

/// A strict-mode null error names the row where the null is, also in batch
/// execution, whose bot filter must not renumber the rows: here the null
/// `conversation_id` is on line / row 4 of the file, after two rows of
/// another bot.
#[test]
fn null_errors_name_the_right_row_after_the_bot_filter() {
    let dir = tempfile::tempdir().unwrap();
    let ndjson = write(
        dir.path(),
        "rows.ndjson",
        &[
            line("e1", Some("b1"), Some("c1")),
            line("e2", Some("b2"), Some("c2")),
            line("e3", Some("b2"), Some("c3")),
            line("e4", Some("b1"), None),
        ]
        .join("\n"),
    );
    // The same rows as Parquet, in one row group.
    let parquet = dir.path().join("rows.parquet");
    write_parquet(
        &parquet,
        &[RecordBatch::try_from_iter([
            (
                "event_id",
                strings(&[Some("e1"), Some("e2"), Some("e3"), Some("e4")]),
            ),
            ("timestamp", micros(&[1_709_287_200_000_000; 4])),
            (
                "bot_id",
                strings(&[Some("b1"), Some("b2"), Some("b2"), Some("b1")]),
            ),
            (
                "conversation_id",
                strings(&[Some("c1"), Some("c2"), Some("c3"), None]),
            ),
            ("event_type", strings(&[Some("message"); 4])),
            ("team_id", strings(&[Some("t1"); 4])),
            ("bot_version", strings(&[Some("LIVE"); 4])),
        ])
        .unwrap()],
    );
    // The engine gets it right.
    for (path, ok) in [(&ndjson, "line 4"), (&parquet, "row 4")] {
        let engine = Engine::new();
        let result = if is_parquet(path.to_str().unwrap()) {
            engine.ingest_parquet(path)
        } else {
            engine.ingest_ndjson_file(path)
        };
        assert_data_error(result, "engine", &["`conversation_id`", ok]);
    }
    // Batch execution with a bot in the query.
    let mut failures = Vec::new();
    for path in [&ndjson, &parquet] {
        // Flow also filters by conversation: the bad row, whose
        // conversation is null, is validated before that filter too.
        for (what, q) in queries_over_bad_files("c1") {
            match run_files(&q, std::slice::from_ref(path), &BatchOptions::default()) {
                Err(e) if e.to_string().contains("row 4") || e.to_string().contains("line 4") => {}
                Err(e) => failures.push(format!("{}, {what}: {e}", path.display())),
                Ok(o) => failures.push(format!(
                    "{}, {what}: accepted: {}",
                    path.display(),
                    o.answer.to_json()
                )),
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// A batch error from an NDJSON file names the file once, as every other
/// error does (not `data error: x.ndjson: x.ndjson: column ...`).
#[test]
fn batch_ndjson_errors_name_the_file_once() {
    let usage = query(
        "usage",
        &[
            ("team_id", "t1"),
            ("start_time", "2024-03-01"),
            ("end_time", "2024-03-04"),
            ("bucket", "1d"),
        ],
    );
    for file in [
        "null_required.ndjson",
        "bad_timestamp.ndjson",
        "not_object_array.ndjson",
    ] {
        let path = bad(file);
        let err = run_files(
            &usage,
            std::slice::from_ref(&path),
            &BatchOptions::default(),
        )
        .unwrap_err();
        let message = err.to_string();
        assert_eq!(
            message.matches(file).count(),
            1,
            "the file is named once: {message}"
        );
    }
}

/// NDJSON errors name the line, counting blank lines (the reader's own
/// documentation), null-value errors as well as the others: with two blank
/// lines first, a null on line 3 is reported as `line 3`, not `row 1`.
#[test]
fn ndjson_null_errors_name_the_line_counting_blank_lines() {
    let text = format!("\n\n{}\n", line("e1", None, Some("c1")));
    let err = assert_data_error(
        Engine::new().ingest_ndjson(text.as_bytes()),
        "engine",
        &["`bot_id`"],
    );
    assert!(err.to_string().contains("line 3"), "{err}");
    // A timestamp error in the same place does say line 3.
    let text = format!(
        "\n\n{}\n",
        line("e1", Some("b1"), Some("c1")).replace("2024-03-01T10:00:00Z", "yesterday")
    );
    assert_data_error(
        Engine::new().ingest_ndjson(text.as_bytes()),
        "engine",
        &["line 3", "`timestamp`"],
    );
}

// ---- Arrow batches ------------------------------------------------------

fn strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn micros(values: &[i64]) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values.to_vec()).with_timezone("UTC"))
}

fn write_parquet(path: &Path, batches: &[RecordBatch]) {
    let file = std::fs::File::create(path).unwrap();
    let schema = batches[0].schema();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    for b in batches {
        writer.write(b).unwrap();
    }
    writer.close().unwrap();
}

#[test]
fn wrongly_typed_arrow_batches_are_data_errors() {
    let ok = |name: &str| -> ArrayRef {
        match name {
            "timestamp" => micros(&[1_709_287_200_000_000]),
            _ => strings(&[Some("x")]),
        }
    };
    let required = [
        "event_id",
        "timestamp",
        "bot_id",
        "conversation_id",
        "event_type",
    ];
    let cases: Vec<(&str, ArrayRef)> = vec![
        ("bot_id", Arc::new(Int64Array::from(vec![1]))),
        ("timestamp", strings(&[Some("2024-03-01T10:00:00Z")])),
        ("timestamp", Arc::new(Int64Array::from(vec![1]))),
        ("language", Arc::new(Float64Array::from(vec![1.5]))),
    ];
    for (column, array) in cases {
        let mut columns: Vec<(&str, ArrayRef)> = required
            .iter()
            .filter(|c| **c != column)
            .map(|c| (*c, ok(c)))
            .collect();
        columns.push((column, array));
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let engine = loaded_engine(IngestMode::Strict);
        let before = snapshot(&engine);
        let name = format!("`{column}`");
        assert_data_error(engine.ingest_batch(&batch), &name, &[&name]);
        assert!(snapshot(&engine) == before);
    }
    // A missing required column.
    let batch = RecordBatch::try_from_iter(
        required
            .iter()
            .filter(|c| **c != "event_type")
            .map(|c| (*c, ok(c))),
    )
    .unwrap();
    assert_data_error(
        Engine::new().ingest_batch(&batch),
        "missing",
        &["`event_type`"],
    );
}

// ---- Damaged files, swept ----------------------------------------------

/// A small deterministic generator (xorshift64*), so that the sweep is the
/// same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn every_truncation_of_the_parquet_fixture_is_a_data_error() {
    let bytes = std::fs::read(fixtures().join("events.parquet")).unwrap();
    let engine = Engine::new();
    // Every prefix near the start and the end (magic, footer length,
    // footer), every 37th byte in between.
    let cuts: Vec<usize> = (0..bytes.len())
        .filter(|&n| n < 64 || n + 8200 > bytes.len() || n % 37 == 0)
        .collect();
    for n in cuts {
        let result = engine.ingest_parquet_bytes(bytes[..n].to_vec());
        assert_data_error(result, &format!("first {n} bytes"), &[]);
        assert_eq!(engine.stats().events, 0, "first {n} bytes: partly ingested");
    }
}

#[test]
fn every_truncation_of_the_ndjson_fixture_is_all_or_nothing() {
    let text = std::fs::read(fixtures().join("events.ndjson")).unwrap();
    // Every cut in the first two lines and within 3 bytes of a line end,
    // every 11th byte elsewhere.
    let second_line_end = text
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(1)
        .unwrap()
        .0;
    let near_line_end =
        |n: usize| text[n.saturating_sub(3)..(n + 4).min(text.len())].contains(&b'\n');
    let cuts =
        (0..=text.len()).filter(|&n| n <= second_line_end || near_line_end(n) || n % 11 == 0);
    for n in cuts {
        let prefix = &text[..n];
        // Complete lines only (a prefix may end right after a `}`).
        let complete = std::str::from_utf8(prefix)
            .unwrap()
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Map<String, Value>>(l).is_ok());
        let engine = Engine::new();
        match engine.ingest_ndjson(prefix) {
            Ok(report) => assert!(complete, "first {n} bytes accepted: {report:?}"),
            Err(e) => {
                assert!(!complete, "first {n} bytes rejected: {e}");
                assert_eq!(e.kind(), ErrorKind::Data);
                let last_line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
                assert!(
                    e.to_string().contains(&format!("line {last_line}")),
                    "first {n} bytes: {e}"
                );
                assert_eq!(engine.stats().events, 0, "first {n} bytes: partly ingested");
            }
        }
    }
}

/// Random byte changes in the Parquet fixture (data pages and footer):
/// each mutant is accepted or is a data error; a panic in a decoder is
/// caught; a rejected mutant changes nothing.
#[test]
fn mutated_parquet_files_never_panic_and_stay_atomic() {
    let original = std::fs::read(fixtures().join("events.parquet")).unwrap();
    let footer_len = u32::from_le_bytes(
        original[original.len() - 8..original.len() - 4]
            .try_into()
            .unwrap(),
    ) as usize;
    let footer_start = original.len() - 8 - footer_len;
    let dir = tempfile::tempdir().unwrap();
    let usage = query(
        "usage",
        &[
            ("team_id", "t1"),
            ("start_time", "2024-03-01"),
            ("end_time", "2024-11-01"),
            ("bucket", "1m"),
            ("group_by", "bot_id,language,campaign_source"),
        ],
    );
    let mut rng = Rng(0x5eed);
    let (mut accepted, mut rejected) = (0, 0);
    for i in 0..600 {
        let mut bytes = original.clone();
        let changes = 1 + rng.below(4);
        for _ in 0..changes {
            // Half of the changes in the footer, half anywhere.
            let pos = if i % 2 == 0 {
                footer_start + rng.below(footer_len)
            } else {
                rng.below(bytes.len())
            };
            bytes[pos] = match rng.below(4) {
                0 => 0xff,
                1 => 0x00,
                2 => bytes[pos] ^ (1 << rng.below(8)),
                _ => rng.below(256) as u8,
            };
        }
        let engine = Engine::new();
        match engine.ingest_parquet_bytes(bytes.clone()) {
            Ok(_) => accepted += 1,
            Err(e) => {
                rejected += 1;
                assert_eq!(e.kind(), ErrorKind::Data, "mutant {i}: {e}");
                assert_eq!(engine.stats().events, 0, "mutant {i}: partly ingested");
            }
        }
        let path = dir.path().join("m.parquet");
        std::fs::write(&path, &bytes).unwrap();
        if let Err(e) = run_files(&usage, &[path], &BatchOptions::default()) {
            assert_eq!(e.kind(), ErrorKind::Data, "mutant {i} via run_files: {e}");
            assert!(e.to_string().contains("m.parquet"), "mutant {i}: {e}");
        }
    }
    assert!(
        accepted > 0 && rejected > 100,
        "{accepted} accepted, {rejected} rejected"
    );
}

/// Generated events written by arrow's writer in the layouts the selective
/// reader takes different paths through: each codec, data page v1 and v2,
/// dictionary, plain and delta-encoded strings, delta-encoded timestamps,
/// pages of 200 rows with a page index (so that pages are skipped, read in
/// part, or read whole); with the id of a conversation of bot
/// `bot-acme-support` in the middle of the rows.
fn encoded_files(dir: &Path) -> (Vec<PathBuf>, String) {
    use parquet::basic::{Compression, Encoding};
    use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
    use parquet::schema::types::ColumnPath;
    let config = convostat::generate::GeneratorConfig::new(4_000, 31);
    let batches: Vec<RecordBatch> = convostat::generate::EventGenerator::new(config).collect();
    let middle = {
        use arrow_array::cast::AsArray;
        let ids: Vec<(String, String)> = batches
            .iter()
            .flat_map(|batch| {
                let column = |name| batch.column_by_name(name).unwrap().as_string::<i32>();
                let (bots, conversations) = (column("bot_id"), column("conversation_id"));
                (0..batch.num_rows())
                    .map(|r| (bots.value(r).to_owned(), conversations.value(r).to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let bot_rows: Vec<&String> = ids
            .iter()
            .filter(|(bot, _)| bot == "bot-acme-support")
            .map(|(_, conversation)| conversation)
            .collect();
        bot_rows[bot_rows.len() / 2].clone()
    };
    let base = || {
        WriterProperties::builder()
            .set_data_page_row_count_limit(200)
            .set_write_batch_size(200)
            .set_max_row_group_row_count(Some(1_500))
            .set_statistics_enabled(EnabledStatistics::Page)
    };
    let layouts = [
        (
            "zstd-v1",
            base().set_compression(Compression::ZSTD(Default::default())),
        ),
        (
            "zstd-v2",
            base()
                .set_compression(Compression::ZSTD(Default::default()))
                .set_writer_version(WriterVersion::PARQUET_2_0),
        ),
        (
            "snappy-v2-plain",
            base()
                .set_compression(Compression::SNAPPY)
                .set_writer_version(WriterVersion::PARQUET_2_0)
                .set_dictionary_enabled(false),
        ),
        (
            "lz4-v2",
            base()
                .set_compression(Compression::LZ4_RAW)
                .set_writer_version(WriterVersion::PARQUET_2_0),
        ),
        (
            "gzip-delta",
            base()
                .set_compression(Compression::GZIP(Default::default()))
                .set_dictionary_enabled(false)
                .set_column_encoding(ColumnPath::from("event_id"), Encoding::DELTA_BYTE_ARRAY)
                .set_column_encoding(
                    ColumnPath::from("conversation_id"),
                    Encoding::DELTA_BYTE_ARRAY,
                )
                .set_column_encoding(ColumnPath::from("timestamp"), Encoding::DELTA_BINARY_PACKED),
        ),
        (
            "brotli-v1",
            base().set_compression(Compression::BROTLI(Default::default())),
        ),
        ("none-v1", base().set_compression(Compression::UNCOMPRESSED)),
    ];
    let files = layouts
        .into_iter()
        .map(|(name, props)| {
            let path = dir.join(format!("{name}.parquet"));
            let file = std::fs::File::create(&path).unwrap();
            let mut writer = parquet::arrow::ArrowWriter::try_new(
                file,
                batches[0].schema(),
                Some(props.build()),
            )
            .unwrap();
            for batch in &batches {
                writer.write(batch).unwrap();
            }
            writer.close().unwrap();
            path
        })
        .collect();
    (files, middle)
}

/// Random byte changes in files of every encoding ([`encoded_files`]),
/// under each kind of query (a flow of the first conversation and of one
/// in the middle of the file among them): every answer is an answer or a
/// data error naming the file, never a panic, a hang or an abort. The
/// clean files answer every query.
#[test]
fn mutated_files_of_every_encoding_fail_cleanly_whatever_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let (files, middle) = encoded_files(dir.path());
    let queries = common::acme_queries(
        [("start_time", "2024-01-01"), ("end_time", "2024-12-01")],
        &["c1", &middle],
    );
    let mut rng = Rng(0xc0de_5eed);
    let (mut answered, mut rejected) = (0, 0);
    for path in files {
        for q in &queries {
            if let Err(e) = run_files(q, std::slice::from_ref(&path), &BatchOptions::default()) {
                panic!("{}: {e}", path.display());
            }
        }
        let original = std::fs::read(&path).unwrap();
        let mutant = dir.path().join("mutant.parquet");
        for i in 0..120 {
            let mut bytes = original.clone();
            // Pages, not the footer: a damaged footer is refused before
            // any page is read (the other sweep covers it).
            let pages = original.len() - 8 - footer_len(&original);
            for _ in 0..1 + rng.below(3) {
                let pos = 4 + rng.below(pages - 4);
                bytes[pos] = match rng.below(3) {
                    0 => bytes[pos] ^ (1 << rng.below(8)),
                    1 => 0xff,
                    _ => rng.below(256) as u8,
                };
            }
            std::fs::write(&mutant, &bytes).unwrap();
            for q in &queries {
                match run_files(q, std::slice::from_ref(&mutant), &BatchOptions::default()) {
                    Ok(_) => answered += 1,
                    Err(e) if e.kind() == ErrorKind::NotFound => answered += 1,
                    Err(e) => {
                        rejected += 1;
                        assert_eq!(
                            e.kind(),
                            ErrorKind::Data,
                            "{} mutant {i}: {e}",
                            path.display()
                        );
                        assert!(e.to_string().contains("mutant.parquet"), "{e}");
                    }
                }
            }
        }
    }
    assert!(
        answered > 1_000 && rejected > 200,
        "{answered} answered, {rejected} rejected"
    );
}

/// The length of a Parquet file's footer.
fn footer_len(file: &[u8]) -> usize {
    u32::from_le_bytes(file[file.len() - 8..file.len() - 4].try_into().unwrap()) as usize
}

// ---- Odd but valid ------------------------------------------------------

fn ten_mb(c: char) -> String {
    std::iter::repeat_n(c, 10 * 1024 * 1024).collect()
}

#[test]
fn empty_and_zero_row_inputs_are_empty_data_sets() {
    let dir = tempfile::tempdir().unwrap();
    // Zero row groups, written here (pyarrow's zero_rows.parquet has one
    // empty row group).
    let no_groups = dir.path().join("no_row_groups.parquet");
    let file = std::fs::File::create(&no_groups).unwrap();
    let writer =
        parquet::arrow::ArrowWriter::try_new(file, convostat::event_schema(), None).unwrap();
    writer.close().unwrap();
    let blank = write(dir.path(), "blank.ndjson", "\n\n   \n\t\n");
    let usage = query(
        "usage",
        &[
            ("team_id", "t1"),
            ("start_time", "2024-03-01"),
            ("end_time", "2024-03-03"),
            ("bucket", "1d"),
        ],
    );
    for path in [
        bad("zero_rows.parquet"),
        no_groups,
        bad("empty.ndjson"),
        blank,
    ] {
        let engine = Engine::new();
        for (how, result) in ingest_every_way(&engine, &path) {
            let report = result.unwrap_or_else(|e| panic!("{} via {how}: {e}", path.display()));
            assert_eq!(report.rows_seen, 0, "{how}");
        }
        assert_eq!(engine.stats().events, 0);
        let outcome = run_files(
            &usage,
            std::slice::from_ref(&path),
            &BatchOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(outcome.answer, engine.query(&usage).unwrap());
        assert!(outcome.answer.to_json().contains("\"values\":[0,0]"));
    }
}

#[test]
fn ten_megabyte_values_and_lines_work() {
    let dir = tempfile::tempdir().unwrap();
    let big = ten_mb('x');
    let head = r#"{"event_id":"e1","timestamp":"2024-03-01T10:00:00Z","bot_id":"b1","conversation_id":"c1","event_type":"message","team_id":"t1""#;
    // A 10 MB value in an optional column, and a 10 MB line (unknown key).
    let in_column = write(
        dir.path(),
        "big_value.ndjson",
        &format!(
            "{head},\"campaign_id\":\"{big}\"}}\n{}\n",
            line("e2", Some("b1"), Some("c2"))
        ),
    );
    let long_line = write(
        dir.path(),
        "big_line.ndjson",
        &format!("{head},\"payload\":\"{big}\"}}\n"),
    );
    // The 10 MB value as Parquet.
    let parquet = dir.path().join("big_value.parquet");
    write_parquet(
        &parquet,
        &[RecordBatch::try_from_iter([
            ("event_id", strings(&[Some("e1"), Some("e2")])),
            ("timestamp", micros(&[1_709_287_200_000_000; 2])),
            ("bot_id", strings(&[Some("b1"); 2])),
            ("conversation_id", strings(&[Some("c1"), Some("c2")])),
            ("event_type", strings(&[Some("message"); 2])),
            ("team_id", strings(&[Some("t1"); 2])),
            ("campaign_id", strings(&[Some(big.as_str()), None])),
        ])
        .unwrap()],
    );
    let by_campaign = query(
        "usage",
        &[
            ("team_id", "t1"),
            ("start_time", "2024-03-01"),
            ("end_time", "2024-03-02"),
            ("bucket", "1d"),
            ("group_by", "campaign_id"),
        ],
    );
    for path in [&in_column, &parquet] {
        let engine = Engine::new();
        for (how, result) in ingest_every_way(&engine, path) {
            result.unwrap_or_else(|e| panic!("{how}: {e}"));
        }
        let answer = match engine.query(&by_campaign).unwrap() {
            convostat::Answer::Series(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(answer.data.series_labels.len(), 2);
        assert_eq!(answer.data.series_labels[0], "(none)");
        assert_eq!(answer.data.series_labels[1].len(), big.len());
        let batch = run_files(
            &by_campaign,
            std::slice::from_ref(path),
            &BatchOptions::default(),
        )
        .unwrap();
        assert_eq!(batch.answer, convostat::Answer::Series(answer));
    }
    let engine = Engine::new();
    let report = engine.ingest_ndjson_file(&long_line).unwrap();
    assert_eq!(report.rows_ingested, 1);
}

/// A line longer than the reader's limit is refused before it is buffered
/// whole, naming the line.
#[test]
fn an_overlong_line_is_a_data_error() {
    let dir = tempfile::tempdir().unwrap();
    let limit = convostat::ingest::ndjson::MAX_LINE_BYTES;
    let path = dir.path().join("overlong.ndjson");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        writeln!(f, "{}", line("e1", Some("b1"), Some("c1"))).unwrap();
        write!(f, "{{\"event_id\":\"e2\",\"payload\":\"").unwrap();
        let chunk = vec![b'z'; 1 << 20];
        for _ in 0..=(limit >> 20) {
            f.write_all(&chunk).unwrap();
        }
        writeln!(f, "\"}}").unwrap();
    }
    let engine = loaded_engine(IngestMode::Strict);
    let before = snapshot(&engine);
    assert_data_error(
        engine.ingest_ndjson_file(&path),
        "overlong",
        &["line 2", "overlong.ndjson"],
    );
    assert!(snapshot(&engine) == before);
    let usage = query(
        "usage",
        &[
            ("team_id", "t1"),
            ("start_time", "2024-03-01"),
            ("end_time", "2024-03-03"),
            ("bucket", "1d"),
        ],
    );
    assert_data_error(
        run_files(&usage, &[path], &BatchOptions::default()).map(|o| o.answer),
        "overlong via run_files",
        &["line 2", "overlong.ndjson"],
    );
}

// ---- Deep nesting, in a child process ------------------------------------

const CHILD: &str = "CONVOSTAT_BAD_INPUT_CHILD";

/// Runs the test `name` again in a child process and checks that it passed
/// there; returns false in the child, where the caller runs the body. A
/// stack overflow aborts the process, so it would otherwise take the whole
/// test binary down.
fn in_child(name: &str) -> bool {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        return false;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail = |s: &str| {
        s.chars()
            .rev()
            .take(1500)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<String>()
    };
    assert!(
        out.status.success()
            && stdout.lines().any(|l| l.trim() == "running 1 test")
            && stdout
                .lines()
                .any(|l| l.starts_with("test result: ok. 1 passed; 0 failed;")),
        "{name} in a child process: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        tail(&stdout),
        tail(&stderr)
    );
    true
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// 100,000 nested arrays under a key convostat does not read: refused as
/// hostile (nesting beyond `MAX_NESTING`), with a one-line error naming the
/// line, before the JSON decoder sees it.
#[test]
fn deep_nesting_in_an_unknown_key_is_a_data_error() {
    if in_child("deep_nesting_in_an_unknown_key_is_a_data_error") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let head = r#"{"event_id":"e1","timestamp":"2024-03-01T10:00:00Z","bot_id":"b1","conversation_id":"c1","event_type":"message","team_id":"t1""#;
    let path = write(
        dir.path(),
        "deep.ndjson",
        &format!("{head},\"junk\":{}}}\n", nested(100_000)),
    );
    let engine = loaded_engine(IngestMode::Strict);
    let before = snapshot(&engine);
    assert_data_error(
        engine.ingest_ndjson_file(&path),
        "engine",
        &["line 1", "nested deeper", "deep.ndjson"],
    );
    assert!(snapshot(&engine) == before);
    // Shallow nesting under unknown keys is fine.
    let shallow = write(
        dir.path(),
        "shallow.ndjson",
        &format!("{head},\"junk\":{}}}\n", nested(10)),
    );
    assert_eq!(
        Engine::new()
            .ingest_ndjson_file(&shallow)
            .unwrap()
            .rows_ingested,
        1
    );
}

/// 100,000 nested arrays as the value of a known (string) column. The JSON
/// decoder's error message would serialise the value recursively
/// (arrow-json `Tape::serialize`) and overflow the stack (SIGABRT, no
/// error; in the debug CLI from 50,000 levels on), so the line must be
/// refused by the nesting limit before the decoder sees it: a short
/// one-line data error naming file and line, the engine unchanged. Runs in
/// a child process so that a regression aborts only this test.
#[test]
fn deep_nesting_in_a_known_column_is_a_data_error() {
    if in_child("deep_nesting_in_a_known_column_is_a_data_error") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let head = r#"{"event_id":"e1","timestamp":"2024-03-01T10:00:00Z","bot_id":"b1","conversation_id":"c1","event_type":"message""#;
    let path = write(
        dir.path(),
        "deep_known.ndjson",
        &format!(
            "{}\n{head},\"language\":{}}}\n",
            line("e0", Some("b1"), Some("c0")),
            nested(100_000)
        ),
    );
    let engine = loaded_engine(IngestMode::Strict);
    let before = snapshot(&engine);
    let err = assert_data_error(
        engine.ingest_ndjson_file(&path),
        "engine",
        &["line 2", "deep_known.ndjson"],
    );
    assert!(
        err.to_string().len() < 4096,
        "the message is short: {} bytes",
        err.to_string().len()
    );
    assert!(snapshot(&engine) == before);
    let usage = query(
        "usage",
        &[
            ("team_id", "t1"),
            ("start_time", "2024-03-01"),
            ("end_time", "2024-03-02"),
            ("bucket", "1d"),
        ],
    );
    assert_data_error(
        run_files(&usage, &[path], &BatchOptions::default()).map(|o| o.answer),
        "run_files",
        &["line 2", "deep_known.ndjson"],
    );
}

// ---- Extreme timestamps --------------------------------------------------

fn timestamp_batch(timestamps: ArrayRef, conversations: &[&str], types: &[&str]) -> RecordBatch {
    let n = conversations.len();
    let ids: Vec<String> = (0..n).map(|i| format!("e{i}")).collect();
    let ids: Vec<Option<&str>> = ids.iter().map(|s| Some(s.as_str())).collect();
    let conversations: Vec<Option<&str>> = conversations.iter().map(|c| Some(*c)).collect();
    let types: Vec<Option<&str>> = types.iter().map(|t| Some(*t)).collect();
    RecordBatch::try_from_iter([
        ("event_id", strings(&ids)),
        ("timestamp", timestamps),
        ("bot_id", strings(&vec![Some("b1"); n])),
        ("conversation_id", strings(&conversations)),
        ("event_type", strings(&types)),
        ("team_id", strings(&vec![Some("t1"); n])),
        ("bot_version", strings(&vec![Some("LIVE"); n])),
    ])
    .unwrap()
}

/// Seconds that do not fit in µs are "out of range": rejected in strict
/// mode naming column and row, skipped and counted in lenient mode.
#[test]
fn timestamps_beyond_the_microsecond_range_are_rejected_or_skipped() {
    use arrow_array::TimestampSecondArray;
    let seconds: ArrayRef = Arc::new(
        TimestampSecondArray::from(vec![1_709_287_200, i64::MAX, i64::MIN / 2])
            .with_timezone("UTC"),
    );
    let batch = timestamp_batch(seconds, &["c1", "c2", "c3"], &["message"; 3]);
    let engine = loaded_engine(IngestMode::Strict);
    let before = snapshot(&engine);
    assert_data_error(
        engine.ingest_batch(&batch),
        "strict",
        &["`timestamp`", "row 2"],
    );
    assert!(snapshot(&engine) == before);
    let report = Engine::with_mode(IngestMode::Lenient)
        .ingest_batch(&batch)
        .unwrap();
    assert_eq!(report.rows_ingested, 1);
    assert_eq!(report.skipped_rows(), 2);
    assert!(
        report
            .skipped
            .keys()
            .all(|k| k.to_string().contains("timestamp")),
        "{:?}",
        report.skipped
    );
    // The same through a Parquet file and batch execution.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seconds.parquet");
    write_parquet(&path, &[batch]);
    let usage = query(
        "usage",
        &[
            ("team_id", "t1"),
            ("start_time", "2024-03-01"),
            ("end_time", "2024-03-02"),
            ("bucket", "1d"),
        ],
    );
    assert_data_error(
        run_files(
            &usage,
            std::slice::from_ref(&path),
            &BatchOptions::default(),
        )
        .map(|o| o.answer),
        "run_files",
        &["`timestamp`", "seconds.parquet"],
    );
}

/// A conversation from 0001-01-01 to the largest µs timestamp lasts
/// 9,285,507,633,654 s: more than `i64::MAX` µs, so `end - start` must not
/// be computed in i64 µs (that would panic in debug builds and wrap to a
/// negative duration in release builds). The engine and batch jobs give
/// the exact number of seconds for every aggregate.
#[test]
fn a_conversation_longer_than_i64_microseconds_does_not_overflow() {
    let year_one = -62_135_596_800_000_000_i64;
    let micros_array: ArrayRef =
        Arc::new(TimestampMicrosecondArray::from(vec![year_one, i64::MAX]).with_timezone("UTC"));
    let batch = timestamp_batch(micros_array, &["c1", "c1"], &["message", "transition"]);
    let expected_seconds = (i64::MAX as i128 - year_one as i128).div_euclid(1_000_000) as u64;
    assert_eq!(expected_seconds, 9_285_507_633_654);
    let engine = Engine::new();
    engine.ingest_batch(&batch).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("span.parquet");
    write_parquet(&path, &[batch]);
    for aggregate in ["max", "sum", "mean", "p50"] {
        let q = query(
            "insights",
            &[
                ("bot_id", "b1"),
                ("version", "LIVE"),
                ("start_time", "0001-01-01"),
                ("end_time", "0001-01-02"),
                ("stat", "duration_seconds"),
                ("aggregate", aggregate),
            ],
        );
        let warm = std::panic::catch_unwind(|| engine.query(&q).map(|a| a.to_json()));
        let cold = std::panic::catch_unwind(|| {
            run_files(&q, std::slice::from_ref(&path), &BatchOptions::default())
                .map(|o| o.answer.to_json())
        });
        for (how, result) in [("engine", warm), ("batch", cold)] {
            let json = result
                .unwrap_or_else(|_| panic!("{aggregate} via {how}: panicked"))
                .unwrap_or_else(|e| panic!("{aggregate} via {how}: {e}"));
            assert!(
                json.contains(&format!("\"values\":[{expected_seconds}]")),
                "{aggregate} via {how}: {json}"
            );
        }
    }
}

/// A reader that fails part-way: the I/O error is a data error and nothing
/// read before it is ingested.
#[test]
fn an_io_error_mid_stream_is_a_data_error_and_atomic() {
    struct Failing {
        data: Vec<u8>,
        pos: usize,
        fail_at: usize,
    }
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.pos >= self.fail_at {
                return Err(std::io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.fail_at - self.pos).min(100);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }
    let data = std::fs::read(fixtures().join("events.ndjson")).unwrap();
    for fail_at in [0, 1, 500, data.len() / 2, data.len() - 1] {
        let reader = std::io::BufReader::with_capacity(
            64,
            Failing {
                data: data.clone(),
                pos: 0,
                fail_at,
            },
        );
        let engine = Engine::new();
        assert_data_error(
            engine.ingest_ndjson(reader),
            &format!("failing at {fail_at}"),
            &["disk on fire"],
        );
        assert_eq!(engine.stats().events, 0);
    }
}
