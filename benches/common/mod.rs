//! Shared data for the benches: one synthetic data set from
//! `convostat::generate`, cached on disk as Parquet, and the standard
//! queries of the performance targets (README, "Performance").

#![allow(dead_code)] // each bench uses a different part

use std::path::PathBuf;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use convostat::generate::{write_parquet, EventGenerator, GeneratorConfig};
use convostat::{Engine, Params, Query};
use rayon::prelude::*;

/// Seed of every bench data set.
pub const SEED: u64 = 7;

/// Events per data set, overridable with `CONVOSTAT_BENCH_EVENTS` for a
/// quick run.
pub fn events_large() -> usize {
    std::env::var("CONVOSTAT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000)
}

pub fn batches(events: usize) -> Vec<RecordBatch> {
    EventGenerator::new(GeneratorConfig::new(events, SEED)).collect()
}

/// A Parquet file of `events` generated events, made once under
/// `target/bench-data/`.
pub fn parquet_file(events: usize) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir).expect("create target/bench-data");
    let path = dir.join(format!("events-{events}-{SEED}.parquet"));
    if !path.exists() {
        let tmp = path.with_extension("partial");
        write_parquet(&tmp, &GeneratorConfig::new(events, SEED)).expect("generate parquet");
        std::fs::rename(&tmp, &path).expect("rename parquet");
    }
    path
}

/// NDJSON text of `events` generated events.
pub fn ndjson_bytes(events: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.ndjson");
    convostat::generate::write_ndjson(&path, &GeneratorConfig::new(events, SEED))
        .expect("generate ndjson");
    std::fs::read(&path).expect("read ndjson")
}

/// An engine holding `batches`, ingested from 2 threads.
pub fn warm_engine(batches: &[RecordBatch]) -> Engine {
    let engine = Engine::new();
    batches.par_iter().for_each(|b| {
        engine.ingest_batch(b).expect("ingest");
    });
    engine
}

/// The conversation the flow benches ask for: the first transition's.
pub fn flow_target(batches: &[RecordBatch]) -> (String, String, String) {
    for batch in batches {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap()
                .as_string::<i32>()
                .clone()
        };
        let (bot, conv, kind, version) = (
            column("bot_id"),
            column("conversation_id"),
            column("event_type"),
            column("bot_version"),
        );
        for row in 0..batch.num_rows() {
            if kind.value(row) == "transition" && version.is_valid(row) {
                return (
                    bot.value(row).into(),
                    conv.value(row).into(),
                    version.value(row).into(),
                );
            }
        }
    }
    panic!("no transition in the data set");
}

/// The bot of the targets' "one bot" queries.
pub const BOT: &str = "bot-acme-support";
/// The team of the usage target.
pub const TEAM: &str = "team-acme";

/// The four target queries' parameters (SPEC 3's names), by name: the
/// query kind is the name.
pub fn target_params(
    flow: &(String, String, String),
) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let owned = |params: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        params.iter().map(|&(k, v)| (k, v.to_owned())).collect()
    };
    vec![
        (
            "conversations",
            owned(&[
                ("bot_id", BOT),
                ("version", "LIVE"),
                ("start_time", "2024-01-01"),
                ("end_time", "2024-05-01"),
                ("bucket", "1d"),
                ("group_by", "channel_type"),
            ]),
        ),
        (
            "insights",
            owned(&[
                ("bot_id", BOT),
                ("version", "LIVE"),
                ("start_time", "2024-01-01"),
                ("end_time", "2024-05-01"),
                ("bucket", "1d"),
                ("stat", "duration_seconds"),
                ("aggregate", "p95"),
            ]),
        ),
        (
            "usage",
            owned(&[
                ("team_id", TEAM),
                ("start_time", "2024-01-01"),
                ("end_time", "2024-05-01"),
                ("bucket", "1d"),
                ("group_by", "bot_id,channel_type"),
            ]),
        ),
        (
            "flow",
            owned(&[
                ("bot_id", flow.0.as_str()),
                ("conversation_id", flow.1.as_str()),
                ("version", flow.2.as_str()),
                ("start_time", "2024-01-01"),
                ("end_time", "2024-06-01"),
            ]),
        ),
    ]
}

/// The four target queries, by name.
pub fn target_queries(flow: &(String, String, String)) -> Vec<(&'static str, Query)> {
    target_params(flow)
        .into_iter()
        .map(|(name, params)| {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let query = Query::from_params(name, &Params::new(params).unwrap()).unwrap();
            (name, query)
        })
        .collect()
}

/// The `convostat` command line of a target query (SPEC 7): the
/// subcommand, then each parameter as its option (`start_time` is
/// `--start`, `end_time` is `--end`, the others their names with dashes).
pub fn command_line(name: &str, params: &[(&'static str, String)]) -> Vec<String> {
    let mut args = vec![name.to_owned()];
    for (key, value) in params {
        let option = match *key {
            "start_time" => "start".to_owned(),
            "end_time" => "end".to_owned(),
            other => other.replace('_', "-"),
        };
        args.push(format!("--{option}"));
        args.push(value.clone());
    }
    args
}
