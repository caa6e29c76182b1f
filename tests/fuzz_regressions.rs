//! Inputs found by the fuzz targets in `fuzz/` (cargo-fuzz), kept as
//! regression tests: the library must return `Ok` or `Err` on each of them,
//! never panic (SPEC 6). The committed seed corpus runs through the same
//! paths, so a seed that stops working is noticed without cargo-fuzz.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../fuzz/src/batch_queries.rs"]
mod batch_queries;

use batch_queries::{batch_queries, check_batch_error};
use convostat::batch::{run_files, BatchOptions};
use convostat::{Answer, Engine, IngestMode, Params, Query};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Runs `f`, failing the test with `what` if it panics.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(e) => {
            let msg = e
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| e.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            panic!("{what} panicked: {msg}")
        }
    }
}

fn render(answer: &Answer) {
    let _ = answer.to_json();
    let _ = answer.to_csv();
    let _ = answer.to_table();
}

/// The queries the `ndjson` and `parquet` targets run after an ingest.
fn query_after_ingest(engine: &Engine) {
    let _ = engine.stats();
    let queries: [(&str, &[(&str, &str)]); 4] = [
        (
            "conversations",
            &[
                ("bot_id", "b1"),
                ("version", "LIVE"),
                ("start_time", "2024-01-01"),
                ("end_time", "2025-01-01"),
                ("group_by", "channel_type"),
            ],
        ),
        (
            "insights",
            &[
                ("bot_id", "b1"),
                ("version", "LIVE"),
                ("start_time", "1900-01-01"),
                ("end_time", "2100-01-01"),
                ("tz", "Europe/Brussels"),
                ("stat", "duration_seconds"),
                ("aggregate", "p95"),
            ],
        ),
        (
            "usage",
            &[
                ("team_id", "t1"),
                ("start_time", "2000-01-01"),
                ("end_time", "2050-01-01"),
                ("bucket", "1m"),
                ("tz", "Europe/Brussels"),
                (
                    "group_by",
                    "bot_id,bot_version,team_id,channel_type,language,campaign_id,campaign_source",
                ),
            ],
        ),
        (
            "flow",
            &[
                ("bot_id", "b1"),
                ("conversation_id", "c1"),
                ("version", "LIVE"),
                ("start_time", "1900-01-01"),
                ("end_time", "2100-01-01"),
            ],
        ),
    ];
    for (kind, pairs) in queries {
        let query = Query::from_params(kind, &Params::new(pairs.iter().copied()).unwrap()).unwrap();
        if let Ok(answer) = engine.query(&query) {
            render(&answer);
        }
    }
}

/// What the `ndjson` target does with one input.
fn check_ndjson(data: &[u8]) {
    for mode in [IngestMode::Strict, IngestMode::Lenient] {
        let engine = Engine::with_mode(mode);
        let result = no_panic("ingest_ndjson", || engine.ingest_ndjson(data));
        if result.is_ok() {
            no_panic("queries after ingest_ndjson", || {
                query_after_ingest(&engine)
            });
        } else {
            assert_eq!(engine.stats().events, 0);
        }
    }
}

/// What the `parquet` target does with one input.
fn check_parquet(data: &[u8]) {
    for mode in [IngestMode::Strict, IngestMode::Lenient] {
        let engine = Engine::with_mode(mode);
        let result = no_panic("ingest_parquet_bytes", || {
            engine.ingest_parquet_bytes(data.to_vec())
        });
        if result.is_ok() {
            no_panic("queries after ingest_parquet_bytes", || {
                query_after_ingest(&engine)
            });
        } else {
            assert_eq!(engine.stats().events, 0);
        }
    }
}

/// What the `query_params` target does with one input.
fn check_query_params(data: &[u8]) {
    let engine = Engine::new();
    engine
        .ingest_ndjson(&include_bytes!("../fixtures/events.ndjson")[..])
        .unwrap();
    let text = String::from_utf8_lossy(data);
    let separator = if text.contains('\0') { '\0' } else { '\n' };
    let pairs: Vec<(&str, &str)> = text
        .split(separator)
        .filter(|item| !item.is_empty())
        .map(|item| item.split_once('=').unwrap_or((item, "")))
        .collect();
    for kind in ["conversations", "insights", "flow", "usage"] {
        no_panic(kind, || {
            let Ok(params) = Params::new(pairs.iter().copied()) else {
                return;
            };
            let Ok(query) = Query::from_params(kind, &params) else {
                return;
            };
            if let Ok(answer) = engine.query(&query) {
                render(&answer);
            }
        });
    }
}

/// What the `batch` target does with one input: the answers of
/// [`batch_queries`] as batch jobs over it as a file, in both modes (or
/// a data error naming the file).
fn check_batch(data: &[u8]) -> Vec<Option<Answer>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.parquet");
    std::fs::write(&path, data).unwrap();
    let mut answers = Vec::new();
    for mode in [IngestMode::Strict, IngestMode::Lenient] {
        let options = BatchOptions {
            mode,
            ..BatchOptions::default()
        };
        for query in batch_queries() {
            let result = no_panic("run_files", || {
                run_files(&query, std::slice::from_ref(&path), &options)
            });
            answers.push(match result {
                Ok(outcome) => {
                    render(&outcome.answer);
                    Some(outcome.answer)
                }
                Err(e) => {
                    check_batch_error(&e, "input.parquet");
                    None
                }
            });
        }
    }
    answers
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fuzz_dir().join("seeds").join(target))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds for {target}");
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

#[test]
fn ndjson_seeds() {
    for (path, bytes) in seeds("ndjson") {
        eprintln!("{}", path.display());
        check_ndjson(&bytes);
    }
}

#[test]
fn parquet_seeds() {
    for (path, bytes) in seeds("parquet") {
        eprintln!("{}", path.display());
        check_parquet(&bytes);
    }
}

/// The `batch` seeds are the fixture events in other layouts: each gives
/// the answers of an engine that ingested the fixture.
#[test]
fn batch_seeds_answer_as_the_engine() {
    let engine = Engine::new();
    engine
        .ingest_ndjson(&include_bytes!("../fixtures/events.ndjson")[..])
        .unwrap();
    let expected: Vec<Option<Answer>> = [0, 1]
        .iter()
        .flat_map(|_| batch_queries())
        .map(|q| Some(engine.query(&q).unwrap()))
        .collect();
    for (path, bytes) in seeds("batch") {
        assert_eq!(check_batch(&bytes), expected, "{}", path.display());
    }
}

#[test]
fn query_params_seeds() {
    for (path, bytes) in seeds("query_params") {
        eprintln!("{}", path.display());
        check_query_params(&bytes);
    }
}

#[test]
fn fixture_events_parquet_seed_ingests() {
    let bytes = std::fs::read(fuzz_dir().join("seeds/parquet/events.parquet")).unwrap();
    let report = Engine::new().ingest_parquet_bytes(bytes).unwrap();
    assert_eq!(report.rows_seen, 26);
    assert_eq!(report.rows_ingested + report.duplicates, 26);
}

// ---- crashes found by fuzzing -------------------------------------------
//
// Parquet inputs on which the `parquet` 60.1 decoder panics (found by the
// `parquet` and `parquet_raw` targets, minimised with `cargo fuzz tmin`).
// convostat's decoder guard must turn each into a data error; the engine
// must stay empty.

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/fuzz")
            .join(name),
    )
    .unwrap()
}

/// Inputs on which the `batch` target found the `parquet` crate panicking
/// (a negative column start in the footer, page headers without their
/// type or value count, a delta-encoded page whose prefixes overflow):
/// the library catches those panics, and a batch job over such a file
/// answers or gives a data error naming it, in both modes.
#[test]
fn batch_jobs_over_files_the_parquet_crate_panics_on() {
    for name in [
        "batch_negative_column_start.parquet",
        "batch_page_header_missing_type.parquet",
        "batch_page_header_missing_num_values.parquet",
        "batch_delta_byte_array_overflow.parquet",
    ] {
        let answers = check_batch(&fixture(name));
        assert!(
            answers.iter().any(Option::is_none),
            "{name}: every query answered"
        );
    }
}

/// A corrupt Parquet input: a data error (not a panic), nothing ingested.
fn assert_parquet_data_error(name: &str) -> convostat::Error {
    check_parquet(&fixture(name));
    let engine = Engine::new();
    let err = no_panic(name, || engine.ingest_parquet_bytes(fixture(name))).unwrap_err();
    assert_eq!(err.kind(), convostat::ErrorKind::Data, "{name}: {err}");
    assert_eq!(engine.stats().events, 0);
    err
}

/// A Parquet input refused by the page checks (`ingest/guard.rs`) before
/// the decoder could allocate for the values it declares: the error must
/// come from the check, not from a later, luckier failure.
fn assert_page_refused(name: &str, reason: &str) {
    let err = assert_parquet_data_error(name).to_string();
    assert!(
        err.contains("corrupt page") && err.contains(reason),
        "{name}: {err}"
    );
}

/// parquet-60.1.0/src/arrow/decoder/delta_byte_array.rs:101:41:
/// "slice index starts at 39 but ends at 36" (DELTA_BYTE_ARRAY suffix
/// lengths beyond the page).
#[test]
fn parquet_delta_byte_array_slice() {
    assert_parquet_data_error("parquet_delta_byte_array_slice.parquet");
}

/// bytes-1.12.2/src/bytes.rs:374:28 via delta_byte_array.rs:45:
/// "range start must not be greater than end: 526 <= 48" (prefix-length
/// block claims more bytes than the page holds).
#[test]
fn parquet_delta_prefix_out_of_range() {
    assert_parquet_data_error("parquet_delta_prefix_out_of_range.parquet");
}

/// parquet-60.1.0/src/util/bit_util.rs:1189:13:
/// "Num of bytes exceed MAX_VLQ_BYTE_LEN (10)" (DELTA_BINARY_PACKED header).
#[test]
fn parquet_vlq_too_long() {
    assert_parquet_data_error("parquet_vlq_too_long.parquet");
}

/// parquet-60.1.0/src/file/metadata/mod.rs:1043:9:
/// "column start and length should not be negative" (column chunk offsets
/// in the footer).
#[test]
fn parquet_negative_column_range() {
    assert_parquet_data_error("parquet_negative_column_range.parquet");
}

/// arrow-buffer-60.1.0/src/util/bit_chunk_iterator.rs:235:9 via
/// parquet record_reader/definition_levels.rs:447: "offset + len out of
/// bounds" (definition levels longer than the page).
#[test]
fn parquet_def_levels_out_of_bounds() {
    assert_parquet_data_error("parquet_def_levels_out_of_bounds.parquet");
}

/// parquet-60.1.0/src/arrow/array_reader/byte_array.rs:391:22: "attempt to
/// divide by zero". Found by `parquet_raw` only: convostat rejects this
/// file before decoding it. Either way, no panic.
#[test]
fn parquet_raw_divide_by_zero() {
    check_parquet(&fixture("parquet_raw_divide_by_zero.parquet"));
}

/// Takes > 10 s (28 s under ASan) in the raw decoder's page-header reader
/// (`SerializedPageReader::read_page_header_len`); convostat rejects it
/// before decoding, at once.
#[test]
fn parquet_raw_slow_page_header_is_quick_through_the_api() {
    let started = std::time::Instant::now();
    check_parquet(&fixture("parquet_raw_slow_page_header.parquet"));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// parquet-60.1.0/src/arrow/decoder/delta_byte_array.rs:48:
/// `vec![0; num_prefix]` with `num_prefix` the DELTA_BINARY_PACKED header's
/// total value count, read from the page and not checked against the page
/// (here ~7·10^15 values: a 29,273,397,577,908,220-byte allocation). The
/// allocation fails, which aborts the process (`handle_alloc_error`): not a
/// panic, so the decoder guard cannot catch it. Found by the `parquet`
/// target (ASan: allocation-size-too-big). The check runs in a child
/// process so that an abort fails this test alone.
#[test]
fn parquet_delta_huge_value_count() {
    assert_child_survives(
        "parquet_delta_huge_value_count_in_child_process",
        "parquet_delta_huge_value_count.parquet",
    );
}

#[test]
#[ignore = "run by parquet_delta_huge_value_count in a child process"]
fn parquet_delta_huge_value_count_in_child_process() {
    assert_page_refused(
        "parquet_delta_huge_value_count.parquet",
        "DELTA_BYTE_ARRAY page: delta header declares",
    );
}

/// The DELTA_BYTE_ARRAY page check must not refuse valid delta-encoded
/// files (pyarrow, `use_dictionary=False`, v2 data pages).
#[test]
fn valid_delta_byte_array_file_still_ingests() {
    let bytes = std::fs::read(fuzz_dir().join("seeds/parquet/delta_encodings.parquet")).unwrap();
    let report = Engine::new().ingest_parquet_bytes(bytes).unwrap();
    assert_eq!((report.rows_seen, report.rows_ingested), (6, 5));
}

/// Whether libtest's output says it ran exactly one test, which passed.
/// A filter that matches no test (a renamed child) runs zero tests and
/// exits 0, so the exit status alone proves nothing.
fn ran_one_test(stdout: &str) -> bool {
    stdout.lines().any(|l| l.trim() == "running 1 test")
        && stdout
            .lines()
            .any(|l| l.starts_with("test result: ok. 1 passed; 0 failed;"))
}

/// Runs the ignored test `child` in a child process and fails if that
/// process dies (an abort inside a decoder must fail one test, not all) or
/// if it did not run exactly that one test.
fn assert_child_survives(child: &str, input: &str) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            child,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ingesting {input} killed the process ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        ran_one_test(&stdout),
        "the child process did not run exactly the test `{child}`:\n{stdout}"
    );
}

/// A child test that does not exist runs zero tests and exits 0: the
/// parent must see that.
#[test]
fn a_missing_child_test_is_noticed() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["no_such_test_anywhere", "--exact", "--ignored"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(!ran_one_test(&String::from_utf8_lossy(&output.stdout)));
    assert!(ran_one_test(
        "\nrunning 1 test\ntest x ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 40 filtered out; finished in 0.01s\n"
    ));
}

// The same allocation abort through the paths the first DELTA_BYTE_ARRAY
// check (prefix header only, gated on the footer) did not cover; the page
// checks of `ingest/guard.rs` now refuse each. Each file is a valid pyarrow file
// (`fuzz/seeds/parquet/delta_*.parquet`) with 8 bytes of `bot_id`'s first
// page overwritten by the ULEB128 `80 80 80 80 80 80 80 01` (2^49 values:
// a 2,251,799,813,685,248-byte allocation).

/// The *suffix* lengths header of a DELTA_BYTE_ARRAY page (the second
/// DELTA_BINARY_PACKED block, `vec![0; num_suffix]` at
/// delta_byte_array.rs:48; the prefix count is a valid 6). This is also the
/// allocation of `parquet_delta_huge_value_count.parquet`, which the prefix
/// check only rejects because later columns of that file are corrupt.
#[test]
fn parquet_delta_suffix_huge_value_count() {
    assert_child_survives(
        "parquet_delta_suffix_huge_value_count_in_child_process",
        "parquet_delta_suffix_huge_value_count.parquet",
    );
}

#[test]
#[ignore = "run by parquet_delta_suffix_huge_value_count in a child process"]
fn parquet_delta_suffix_huge_value_count_in_child_process() {
    assert_page_refused(
        "parquet_delta_suffix_huge_value_count.parquet",
        "DELTA_BYTE_ARRAY page: delta header declares",
    );
}

/// A DELTA_LENGTH_BYTE_ARRAY page (v2) whose lengths header declares 2^49
/// values: `vec![0; values]` at byte_view_array.rs:585 (byte_array.rs:459
/// for non-view strings).
#[test]
fn parquet_delta_length_huge_value_count() {
    assert_child_survives(
        "parquet_delta_length_huge_value_count_in_child_process",
        "parquet_delta_length_huge_value_count.parquet",
    );
}

#[test]
#[ignore = "run by parquet_delta_length_huge_value_count in a child process"]
fn parquet_delta_length_huge_value_count_in_child_process() {
    assert_page_refused(
        "parquet_delta_length_huge_value_count.parquet",
        "DELTA_LENGTH_BYTE_ARRAY page: delta header declares",
    );
}

/// A DELTA_BYTE_ARRAY page with a huge *prefix* count whose column chunk
/// metadata (footer) lists `[PLAIN, RLE]` instead of `[RLE,
/// DELTA_BYTE_ARRAY]` (one byte changed): the page header, not the footer,
/// decides the decoder, so a check gated on the footer's list is skipped.
#[test]
fn parquet_delta_huge_value_count_footer_lies() {
    assert_child_survives(
        "parquet_delta_huge_value_count_footer_lies_in_child_process",
        "parquet_delta_huge_value_count_footer_lies.parquet",
    );
}

#[test]
#[ignore = "run by parquet_delta_huge_value_count_footer_lies in a child process"]
fn parquet_delta_huge_value_count_footer_lies_in_child_process() {
    assert_page_refused(
        "parquet_delta_huge_value_count_footer_lies.parquet",
        "DELTA_BYTE_ARRAY page: delta header declares",
    );
}

/// A dictionary page of `bot_id` declaring 2^31 - 1 values in a few bytes
/// (crafted by `fixtures/fuzz/make_crafted.py`): parquet 60.1 sizes the
/// dictionary by the declared count before reading it
/// (`ViewBuffer::with_capacity`, 32 GiB here), which aborts the process.
#[test]
fn parquet_dictionary_huge_value_count() {
    assert_child_survives(
        "parquet_dictionary_huge_value_count_in_child_process",
        "parquet_dictionary_huge_value_count.parquet",
    );
}

#[test]
#[ignore = "run by parquet_dictionary_huge_value_count in a child process"]
fn parquet_dictionary_huge_value_count_in_child_process() {
    assert_page_refused(
        "parquet_dictionary_huge_value_count.parquet",
        "dictionary page declares 2147483647 values",
    );
}
