//! The four target queries as batch jobs over the large Parquet file (the
//! CLI's path, end to end in process: open, prune, decode, fold, answer).
//!
//! `cargo bench --bench batch`

mod common;

use convostat::batch::{run_files, BatchOptions};
use criterion::{criterion_group, criterion_main, Criterion};

fn batch(c: &mut Criterion) {
    let n = common::events_large();
    let flow = common::flow_target(&common::batches(200_000));
    let file = common::parquet_file(n);
    let mut group = c.benchmark_group("batch_parquet");
    group.sample_size(10);
    for (name, query) in common::target_queries(&flow) {
        group.bench_function(name, |b| {
            b.iter(|| {
                run_files(
                    &query,
                    std::slice::from_ref(&file),
                    &BatchOptions::default(),
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, batch);
criterion_main!(benches);
