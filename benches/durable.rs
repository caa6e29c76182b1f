//! The durable data directory (SPEC 9): what durability costs.
//!
//! `cargo bench --bench durable` (set `CONVOSTAT_BENCH_EVENTS` for another
//! size than 10M) prints one table:
//! - durable ingest of the generated 64K-row Arrow batches, one call each,
//!   fsync per call, from 1 and from 2 threads (and, for comparison,
//!   without fsync, and in memory from 1 and 2 threads);
//! - durable NDJSON ingest, 10K lines per call (the shape of `serve` POSTs);
//! - a checkpoint of everything: its time and its CPU;
//! - reopen after a checkpoint, and after 1M (or N/10) events of log;
//! - disk bytes per event after a checkpoint;
//! - `retain` halving the data: memory and disk before and after.
//!
//! The data directory lives under `target/bench-durable/` (same disk as the
//! build), and is removed at the end.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use convostat::{Engine, EngineOptions, SyncPolicy};

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// CPU time (user and system, all threads) of this process so far; the
/// bench is alone in it while it checkpoints, so the difference around a
/// call is the call's.
#[cfg(unix)]
fn process_cpu_seconds() -> Option<f64> {
    // SAFETY: `getrusage` writes into the struct it is given and reads
    // nothing else; an all-zero `rusage` is a valid value of it.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut usage) == 0).then_some(usage)
    }?;
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

#[cfg(not(unix))]
fn process_cpu_seconds() -> Option<f64> {
    None
}

fn rate(events: usize, d: Duration) -> String {
    format!("{:.2}M events/s", events as f64 / d.as_secs_f64() / 1e6)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn main() {
    // `cargo bench` passes `--bench`; any other invocation (cargo test
    // --benches) just checks that this builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n = common::events_large();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-durable");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("bench dir");
    let batches = common::batches(n);
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |what: &str, value: String| {
        println!("{what:<60} {value}");
        rows.push((what.into(), value));
    };

    // In memory, for reference.
    let t = Instant::now();
    let memory = Engine::new();
    for b in &batches {
        memory.ingest_batch(b).expect("ingest");
    }
    row(
        &format!("in-memory ingest, 64K-row batches, 1 thread ({n} events)"),
        rate(n, t.elapsed()),
    );
    let memory_heap = memory.stats().heap_bytes;
    drop(memory);
    row(
        "in-memory ingest, 64K-row batches, 2 threads",
        rate(n, ingest_from_threads(&Engine::new(), &batches, 2)),
    );

    // Durable, fsync per call, from 2 threads (a host ingesting from
    // several threads: their fsyncs are shared, encoding and folding of
    // one call overlap the other's fsync).
    let dir = root.join("fsync-2-threads");
    let engine = EngineOptions::new()
        .checkpoint_log_bytes(u64::MAX)
        .checkpoint_on_close(false)
        .open(&dir)
        .expect("open");
    row(
        "durable ingest, 64K-row batches, fsync per call, 2 threads, no auto checkpoint",
        rate(n, ingest_from_threads(&engine, &batches, 2)),
    );
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);

    // Durable, fsync per call: the log path alone (automatic checkpoints
    // off), then with the default automatic checkpoints.
    let dir = root.join("fsync");
    let t = Instant::now();
    let engine = EngineOptions::new()
        .checkpoint_log_bytes(u64::MAX)
        .open(&dir)
        .expect("open");
    for b in &batches {
        engine.ingest_batch(b).expect("ingest");
    }
    let ingest = t.elapsed();
    row(
        "durable ingest, 64K-row batches, fsync per call, no auto checkpoint",
        rate(n, ingest),
    );
    row(
        "log bytes per event",
        format!("{:.1} B/event", dir_bytes(&dir) as f64 / n as f64),
    );
    let (t, cpu) = (Instant::now(), process_cpu_seconds());
    engine.checkpoint().expect("checkpoint");
    let wall = t.elapsed().as_secs_f64();
    row(
        "checkpoint of everything",
        match (cpu, process_cpu_seconds()) {
            (Some(before), Some(after)) => {
                format!("{wall:.2} s ({:.2} s of CPU)", after - before)
            }
            _ => format!("{wall:.2} s"),
        },
    );
    let disk = dir_bytes(&dir);
    row(
        "disk after a checkpoint",
        format!("{} = {:.1} B/event", mb(disk), disk as f64 / n as f64),
    );
    engine.close().expect("close");
    let t = Instant::now();
    let engine = Engine::open(&dir).expect("reopen");
    row(
        &format!("reopen after a checkpoint ({n} events)"),
        format!("{:.3} s", t.elapsed().as_secs_f64()),
    );
    // Log on top: 1M events (N/10 when N is smaller), not checkpointed.
    let log_events: usize = (n / 10).clamp(1, 1_000_000);
    let extra = common::batches(log_events.max(1));
    let engine = {
        drop(engine);
        EngineOptions::new()
            .checkpoint_log_bytes(u64::MAX)
            .checkpoint_on_close(false)
            .open(&dir)
            .expect("reopen")
    };
    // Fresh ids: shift the generated ids so that they are not duplicates.
    for b in &extra {
        let b = with_id_prefix(b, "x");
        engine.ingest_batch(&b).expect("ingest");
    }
    drop(engine);
    let t = Instant::now();
    let engine = Engine::open(&dir).expect("reopen");
    let report = engine.open_report().cloned().unwrap_or_default();
    row(
        &format!(
            "reopen after a checkpoint + {} events of log",
            report.events_replayed
        ),
        format!("{:.3} s", t.elapsed().as_secs_f64()),
    );
    engine.checkpoint().expect("checkpoint");
    // Retain: drop the conversations ending before the median end.
    let heap_before = engine.stats().heap_bytes;
    let disk_before = dir_bytes(&dir);
    let conversations = engine.stats().conversations;
    let cut = median_end(&batches);
    let t = Instant::now();
    let dropped = engine.retain(cut).expect("retain");
    let took = t.elapsed();
    let heap_after = engine.stats().heap_bytes;
    let disk_after = dir_bytes(&dir);
    row(
        "retain (median end): conversations dropped",
        format!(
            "{} of {} in {:.2} s (checkpoint included)",
            dropped.conversations,
            conversations,
            took.as_secs_f64()
        ),
    );
    row(
        "retain: heap before → after",
        format!(
            "{} → {} ({:.0}%)",
            mb(heap_before as u64),
            mb(heap_after as u64),
            100.0 * heap_after as f64 / heap_before as f64
        ),
    );
    row(
        "retain: disk before → after",
        format!(
            "{} → {} ({:.0}%)",
            mb(disk_before),
            mb(disk_after),
            100.0 * disk_after as f64 / disk_before as f64
        ),
    );
    row(
        "heap per event: durable engine (owners in the dedup set) vs in-memory",
        format!(
            "{:.1} vs {:.1} B/event",
            heap_before as f64 / (n + log_events) as f64,
            memory_heap as f64 / n as f64
        ),
    );
    drop(engine);

    let dir = root.join("nosync");
    let engine = EngineOptions::new()
        .sync(SyncPolicy::Never)
        .checkpoint_log_bytes(u64::MAX)
        .checkpoint_on_close(false)
        .open(&dir)
        .expect("open");
    let t = Instant::now();
    for b in &batches {
        engine.ingest_batch(b).expect("ingest");
    }
    row(
        "durable ingest, 64K-row batches, SyncPolicy::Never, no auto checkpoint",
        rate(n, t.elapsed()),
    );
    drop(engine);
    // Its log was never synced: removed now, its dirty pages are dropped
    // rather than written back during the next measurement.
    let _ = std::fs::remove_dir_all(&dir);
    let dir = root.join("default");
    let engine = Engine::open(&dir).expect("open");
    let t = Instant::now();
    // The longest call: the one that took an automatic checkpoint's
    // snapshot (the gate is held while the store is captured).
    let mut longest = Duration::ZERO;
    for b in &batches {
        let call = Instant::now();
        engine.ingest_batch(b).expect("ingest");
        longest = longest.max(call.elapsed());
    }
    row(
        "durable ingest, 64K-row batches, fsync per call, default auto checkpoints",
        rate(n, t.elapsed()),
    );
    row(
        "  the same: longest call (the one that took a snapshot)",
        format!("{:.3} s", longest.as_secs_f64()),
    );
    // The last automatic checkpoint may still be encoded (closing cancels
    // it) or written (closing waits for it); then the closing checkpoint.
    engine.close().expect("close");
    row(
        "  the same, until closed (last automatic write, closing checkpoint)",
        rate(n, t.elapsed()),
    );

    // NDJSON, 10K lines per call, fsync per call.
    let ndjson_events = n.min(2_000_000);
    let text = common::ndjson_bytes(ndjson_events);
    let dir = root.join("ndjson");
    let engine = Engine::open(&dir).expect("open");
    let chunks = split_lines(&text, 10_000);
    let t = Instant::now();
    for chunk in &chunks {
        engine.ingest_ndjson_bytes(chunk).expect("ingest");
    }
    row(
        &format!("durable NDJSON ingest, 10K lines per call ({ndjson_events} events)"),
        rate(ndjson_events, t.elapsed()),
    );
    drop(engine);
    let _ = std::fs::remove_dir_all(&root);
}

/// Ingests `batches` from `threads` threads, each taking every
/// `threads`-th batch, one call each; returns the time it took.
fn ingest_from_threads(
    engine: &Engine,
    batches: &[arrow_array::RecordBatch],
    threads: usize,
) -> Duration {
    let t = Instant::now();
    std::thread::scope(|s| {
        for k in 0..threads {
            s.spawn(move || {
                for b in batches.iter().skip(k).step_by(threads) {
                    engine.ingest_batch(b).expect("ingest");
                }
            });
        }
    });
    t.elapsed()
}

/// `batch` with `prefix` before every event id.
fn with_id_prefix(batch: &arrow_array::RecordBatch, prefix: &str) -> arrow_array::RecordBatch {
    use arrow_array::cast::AsArray;
    use std::sync::Arc;
    let i = batch.schema().index_of("event_id").expect("event_id");
    let ids = batch.column(i).as_string::<i32>();
    let renamed: arrow_array::StringArray = ids
        .iter()
        .map(|v| v.map(|v| format!("{prefix}{v}")))
        .collect();
    let mut columns = batch.columns().to_vec();
    columns[i] = Arc::new(renamed);
    arrow_array::RecordBatch::try_new(batch.schema(), columns).expect("batch")
}

/// The median over conversations of their last event's time, roughly:
/// the median event time (events spread evenly over conversations).
fn median_end(batches: &[arrow_array::RecordBatch]) -> i64 {
    use arrow_array::cast::AsArray;
    let mut ts: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name("timestamp").expect("timestamp");
            let c = arrow_cast::cast(
                c,
                &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None),
            )
            .expect("cast");
            c.as_primitive::<arrow_array::types::TimestampMicrosecondType>()
                .values()
                .to_vec()
        })
        .collect();
    let mid = ts.len() / 2;
    *ts.select_nth_unstable(mid).1
}

fn split_lines(text: &[u8], lines: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (i, &b) in text.iter().enumerate() {
        if b == b'\n' {
            count += 1;
            if count == lines {
                out.push(&text[start..=i]);
                start = i + 1;
                count = 0;
            }
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}
