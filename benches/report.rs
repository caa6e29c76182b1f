//! One table with the whole performance picture: ingest throughput, warm
//! query latency, batch query wall time and peak memory, bytes per event,
//! and scaling (1M vs 10M events, 1 vs 2 threads).
//!
//! `cargo bench --bench report` (set `CONVOSTAT_BENCH_EVENTS` for another
//! size than 10M). Batch queries run in fresh processes, so that wall time
//! includes process start and peak memory is the query's own: once as the
//! `convostat` command line (what a batch job runs), once as a library
//! call from this binary re-executed (a host application with the system
//! allocator).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use convostat::batch::{run_files, BatchOptions};
use convostat::Engine;
use rayon::prelude::*;

const CHILD: &str = "CONVOSTAT_REPORT_CHILD";
/// The flow target, `bot\tconversation\tversion`, handed to children so
/// that they need not generate data to find it.
const FLOW: &str = "CONVOSTAT_REPORT_FLOW";
/// The value of [`CHILD`] that makes the child a launcher of `convostat`,
/// whose arguments (separated by U+001F) are in [`LAUNCH_ARGS`].
const LAUNCH: &str = "launch";
const LAUNCH_ARGS: &str = "CONVOSTAT_REPORT_ARGS";

fn peak_rss_bytes() -> u64 {
    status_kb("VmHWM:") * 1024
}

fn rss_bytes() -> u64 {
    status_kb("VmRSS:") * 1024
}

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// Child mode: run one batch query, print `seconds peak_bytes`.
fn child(name: &str) {
    let n = common::events_large();
    let flow = std::env::var(FLOW).expect("flow target");
    let mut parts = flow.split('\t').map(str::to_owned);
    let flow = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let file = common::parquet_file(n);
    let (_, query) = common::target_queries(&flow)
        .into_iter()
        .find(|(q, _)| *q == name)
        .expect("query name");
    let t = Instant::now();
    run_files(&query, &[file], &BatchOptions::default()).expect("batch query");
    println!("{} {}", t.elapsed().as_secs_f64(), peak_rss_bytes());
}

/// Runs one batch query in a fresh process: (wall time, peak bytes).
fn batch_in_child(name: &str, threads: usize, flow: &(String, String, String)) -> (Duration, u64) {
    let exe = std::env::current_exe().expect("current exe");
    let t = Instant::now();
    let out = Command::new(&exe)
        .env(CHILD, name)
        .env(FLOW, format!("{}\t{}\t{}", flow.0, flow.1, flow.2))
        .env("RAYON_NUM_THREADS", threads.to_string())
        .output()
        .expect("spawn child");
    let wall = t.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    let peak: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (wall, peak)
}

/// Runs a batch query as the `convostat` command line (`args`, then
/// `--input file`) in a fresh process: (wall time, peak bytes). This is
/// the batch path the product ships: the command line allocates with
/// mimalloc, where [`batch_in_child`] runs the library in this bench
/// binary, with the system allocator.
///
/// A small launcher (this binary, re-executed) starts and times the run:
/// a process started from this one, which holds gigabytes of test data
/// by now, would count them in its peak memory.
fn batch_in_cli(args: &[String], file: &std::path::Path, threads: usize) -> (Duration, u64) {
    let exe = std::env::current_exe().expect("current exe");
    let mut command_line = args.to_vec();
    command_line.push("--input".into());
    command_line.push(file.display().to_string());
    let out = Command::new(&exe)
        .env(CHILD, LAUNCH)
        .env(LAUNCH_ARGS, command_line.join("\u{1f}"))
        .env("RAYON_NUM_THREADS", threads.to_string())
        .output()
        .expect("spawn launcher");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace();
    let seconds: f64 = fields
        .next()
        .and_then(|v| v.parse().ok())
        .expect("wall time");
    let peak: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    (Duration::from_secs_f64(seconds), peak)
}

/// Runs `run` with 2 threads and with 1, alternated, [`BATCH_ROUNDS`]
/// times each: the best (wall time, peak bytes) with 2 threads and the
/// best wall time with 1. This VM's speed drifts from minute to minute;
/// alternating keeps a slow minute from falling on one side only.
fn best_of_two_and_one(run: impl Fn(usize) -> (Duration, u64)) -> ((Duration, u64), Duration) {
    let mut two = (Duration::MAX, 0);
    let mut one = Duration::MAX;
    for _ in 0..BATCH_ROUNDS {
        let got = run(2);
        if got.0 < two.0 {
            two = got;
        }
        one = one.min(run(1).0);
    }
    (two, one)
}

/// Runs of each batch query with each thread count.
const BATCH_ROUNDS: usize = 5;

/// Launcher mode: run `convostat` with the arguments of [`LAUNCH_ARGS`],
/// print `seconds peak_bytes` (its wall time and peak resident memory).
fn launch() {
    let args = std::env::var(LAUNCH_ARGS).expect("launcher arguments");
    let t = Instant::now();
    // Reaped by `wait4` below, which `Child::wait` cannot stand in for.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_convostat"))
        .args(args.split('\u{1f}'))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn convostat");
    // `wait4` gives the child's own peak resident memory.
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value; `wait4` writes it and
    // `status` for the child just spawned, which nothing else waits for.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = t.elapsed();
    assert!(
        waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "convostat {args:?} failed"
    );
    println!("{} {}", wall.as_secs_f64(), usage.ru_maxrss as u64 * 1024);
}

fn ingest_arrow(batches: &[arrow_array::RecordBatch]) -> (Duration, Engine) {
    let engine = Engine::new();
    let t = Instant::now();
    batches.par_iter().for_each(|b| {
        engine.ingest_batch(b).unwrap();
    });
    (t.elapsed(), engine)
}

fn main() {
    if let Ok(name) = std::env::var(CHILD) {
        if name == LAUNCH {
            return launch();
        }
        return child(&name);
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` compatibility
    }
    let large = common::events_large();
    let small = large / 10;
    let rate =
        |n: usize, d: Duration| format!("{:.2} M events/s", n as f64 / d.as_secs_f64() / 1e6);
    let mut rows: Vec<(String, String)> = Vec::new();

    // Ingest, small and large.
    let batches_small = common::batches(small);
    let (t_small, _) = ingest_arrow(&batches_small);
    drop(batches_small);
    let batches = common::batches(large);
    let flow = common::flow_target(&batches);
    let rss_before = rss_bytes();
    let (t_large, engine) = ingest_arrow(&batches);
    let rss_after = rss_bytes();
    rows.push((
        format!("ingest Arrow, 2 threads, {small} events"),
        rate(small, t_small),
    ));
    rows.push((
        format!("ingest Arrow, 2 threads, {large} events"),
        rate(large, t_large),
    ));
    rows.push((
        "scaling: ingest time 10x events".into(),
        format!("{:.1}x", t_large.as_secs_f64() / t_small.as_secs_f64()),
    ));
    let stats = engine.stats();
    rows.push((
        "engine memory per event (heap estimate)".into(),
        format!("{:.0} bytes", stats.heap_bytes as f64 / large as f64),
    ));
    rows.push((
        "engine memory per event (RSS growth)".into(),
        format!(
            "{:.0} bytes",
            rss_after.saturating_sub(rss_before) as f64 / large as f64
        ),
    ));
    rows.push(("conversations held".into(), stats.conversations.to_string()));

    // Warm queries.
    for (name, query) in common::target_queries(&flow) {
        let samples: Vec<Duration> = (0..51)
            .map(|_| {
                let t = Instant::now();
                engine.query(&query).unwrap();
                t.elapsed()
            })
            .collect();
        rows.push((
            format!("warm {name} (median)"),
            fmt_duration(median(samples)),
        ));
    }
    drop(engine);
    drop(batches);

    // NDJSON and Parquet ingest.
    let ndjson = common::ndjson_bytes(small);
    let engine = Engine::new();
    let t = Instant::now();
    engine.ingest_ndjson(ndjson.as_slice()).unwrap();
    rows.push((
        format!("ingest NDJSON, {small} events"),
        rate(small, t.elapsed()),
    ));
    drop((engine, ndjson));
    let file = common::parquet_file(large);
    let engine = Engine::new();
    let t = Instant::now();
    engine.ingest_parquet(&file).unwrap();
    rows.push((
        format!("ingest Parquet, {large} events"),
        rate(large, t.elapsed()),
    ));
    drop(engine);

    // Batch queries in fresh processes: the command line, as a batch job
    // runs them, then the library called from this binary.
    for (name, params) in common::target_params(&flow) {
        let args = common::command_line(name, &params);
        let ((wall2, peak2), wall1) = best_of_two_and_one(|t| batch_in_cli(&args, &file, t));
        rows.push((
            format!(
                "batch {name} over {large}-event Parquet, `convostat` (process wall, peak RSS)"
            ),
            format!("{}, {:.0} MB", fmt_duration(wall2), peak2 as f64 / 1e6),
        ));
        rows.push((
            format!("scaling: batch {name}, `convostat`, 1 thread / 2 threads"),
            format!("{:.2}x", wall1.as_secs_f64() / wall2.as_secs_f64()),
        ));
    }
    for (name, _) in common::target_queries(&flow) {
        let ((wall2, peak2), wall1) = best_of_two_and_one(|t| batch_in_child(name, t, &flow));
        rows.push((
            format!("batch {name}, library, system allocator (process wall, peak RSS)"),
            format!("{}, {:.0} MB", fmt_duration(wall2), peak2 as f64 / 1e6),
        ));
        rows.push((
            format!("scaling: batch {name}, library, system allocator, 1 thread / 2 threads"),
            format!("{:.2}x", wall1.as_secs_f64() / wall2.as_secs_f64()),
        ));
    }

    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    println!(
        "\nconvostat performance report ({large} events, seed {})",
        common::SEED
    );
    for (k, v) in rows {
        println!("  {k:<width$}  {v}");
    }
}
