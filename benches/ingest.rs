//! Ingestion throughput into the engine: from Arrow batches (2 threads,
//! dedup included), from NDJSON and from Parquet, at 1M and 10M events.
//!
//! `cargo bench --bench ingest`

mod common;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rayon::prelude::*;

fn ingest(c: &mut Criterion) {
    let sizes = [1_000_000, common::events_large()];
    let mut group = c.benchmark_group("ingest");
    group.sample_size(10);
    for &n in &sizes {
        group.throughput(Throughput::Elements(n as u64));
        let batches = common::batches(n);
        group.bench_function(format!("arrow_2_threads/{n}"), |b| {
            b.iter_batched(
                convostat::Engine::new,
                |engine| {
                    batches.par_iter().for_each(|batch| {
                        engine.ingest_batch(batch).unwrap();
                    });
                    engine
                },
                BatchSize::PerIteration,
            )
        });
        drop(batches);
        let parquet = common::parquet_file(n);
        group.bench_function(format!("parquet/{n}"), |b| {
            b.iter_batched(
                convostat::Engine::new,
                |engine| {
                    engine.ingest_parquet(&parquet).unwrap();
                    engine
                },
                BatchSize::PerIteration,
            )
        });
        let ndjson = common::ndjson_bytes(n);
        group.bench_function(format!("ndjson/{n}"), |b| {
            b.iter_batched(
                convostat::Engine::new,
                |engine| {
                    engine.ingest_ndjson(ndjson.as_slice()).unwrap();
                    engine
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
