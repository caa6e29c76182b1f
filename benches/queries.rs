//! Query latency on a warm engine holding the large data set (10M events,
//! about a million conversations): the four target queries.
//!
//! `cargo bench --bench queries`

mod common;

use criterion::{criterion_group, criterion_main, Criterion};

fn queries(c: &mut Criterion) {
    let batches = common::batches(common::events_large());
    let flow = common::flow_target(&batches);
    let engine = common::warm_engine(&batches);
    drop(batches);
    let mut group = c.benchmark_group("warm_engine");
    for (name, query) in common::target_queries(&flow) {
        group.bench_function(name, |b| b.iter(|| engine.query(&query).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, queries);
criterion_main!(benches);
