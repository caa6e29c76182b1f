//! Golden answers: every case in `fixtures/expected/` is run over the
//! hand-checked events of `fixtures/events.ndjson` and the same events in
//! `fixtures/events.parquet` (written by another Parquet implementation,
//! with dictionary strings and nanosecond timestamps), through the warm
//! engine and through batch execution; all four must equal the checked-in
//! answer or error.
//!
//! To re-bless after an intended change: `CONVOSTAT_BLESS=1 cargo test
//! --test golden`, then review the diff of `fixtures/expected/` by hand.

use std::path::{Path, PathBuf};

use convostat::batch::{run_files, BatchOptions};
use convostat::{Engine, Error, ErrorKind, Params, Query};
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidQuery => "invalid_query",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Data => "data",
    }
}

fn outcome(result: Result<convostat::Answer, Error>) -> Value {
    match result {
        Ok(answer) => serde_json::to_value(&answer).unwrap(),
        Err(e) => json!({"error": kind_name(e.kind()), "message": e.to_string()}),
    }
}

fn query_of(case: &Value) -> Result<Query, Error> {
    let params: Vec<(String, String)> = case["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    Query::from_params(case["query"].as_str().unwrap(), &Params::new(params)?)
}

#[test]
fn golden_answers_hold_for_every_input_path() {
    let ndjson = fixtures().join("events.ndjson");
    let parquet = fixtures().join("events.parquet");
    let from_ndjson = Engine::new();
    from_ndjson.ingest_ndjson_file(&ndjson).unwrap();
    let from_parquet = Engine::new();
    let report = from_parquet.ingest_parquet(&parquet).unwrap();
    assert_eq!((report.rows_seen, report.duplicates), (26, 1));

    let bless = std::env::var_os("CONVOSTAT_BLESS").is_some();
    let mut dir: Vec<_> = std::fs::read_dir(fixtures().join("expected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dir.sort();
    assert!(dir.len() >= 40, "golden cases are missing");
    for path in dir {
        let mut case: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let query = query_of(&case);
        let runs: Vec<(&str, Value)> = match &query {
            Err(e) => vec![(
                "params",
                json!({"error": kind_name(e.kind()), "message": e.to_string()}),
            )],
            Ok(q) => vec![
                ("engine/ndjson", outcome(from_ndjson.query(q))),
                ("engine/parquet", outcome(from_parquet.query(q))),
                (
                    "batch/ndjson",
                    outcome(
                        run_files(q, std::slice::from_ref(&ndjson), &BatchOptions::default())
                            .map(|o| o.answer),
                    ),
                ),
                (
                    "batch/parquet",
                    outcome(
                        run_files(q, std::slice::from_ref(&parquet), &BatchOptions::default())
                            .map(|o| o.answer),
                    ),
                ),
            ],
        };
        if bless {
            case["expected"] = runs[0].1.clone();
            std::fs::write(&path, serde_json::to_string_pretty(&case).unwrap() + "\n").unwrap();
        }
        for (how, got) in runs {
            assert_eq!(got, case["expected"], "{name} via {how}");
        }
    }
}

#[test]
fn batch_over_a_directory_equals_the_single_file() {
    let dir = tempfile::tempdir().unwrap();
    // Split the NDJSON events over two files in nested directories.
    let text = std::fs::read_to_string(fixtures().join("events.ndjson")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::create_dir(dir.path().join("more")).unwrap();
    std::fs::write(dir.path().join("a.ndjson"), lines[..10].join("\n")).unwrap();
    std::fs::write(dir.path().join("more/b.jsonl"), lines[10..].join("\n")).unwrap();
    let params = Params::new([
        ("team_id", "t1"),
        ("start_time", "2024-03-01"),
        ("end_time", "2024-11-01"),
        ("bucket", "1m"),
        ("group_by", "bot_id"),
    ])
    .unwrap();
    let q = Query::from_params("usage", &params).unwrap();
    let whole = run_files(
        &q,
        &[fixtures().join("events.parquet")],
        &BatchOptions::default(),
    )
    .unwrap();
    let split = run_files(&q, &[dir.path().to_path_buf()], &BatchOptions::default()).unwrap();
    assert_eq!(whole.answer, split.answer);
}
