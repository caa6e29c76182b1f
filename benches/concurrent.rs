//! Query latency while other threads ingest: two threads keep ingesting a
//! second data set while the bench measures the four target queries on the
//! engine that already holds the first.
//!
//! `cargo bench --bench concurrent`

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};

fn concurrent(c: &mut Criterion) {
    let n = common::events_large() / 2;
    let batches = common::batches(n);
    let flow = common::flow_target(&batches);
    let engine = Arc::new(common::warm_engine(&batches));
    drop(batches);
    // Ingest the same kind of data under another seed-free shift: events
    // of a later data set (different ids), in a loop, until the bench ends.
    let more: Arc<Vec<arrow_array::RecordBatch>> = Arc::new(
        convostat::generate::EventGenerator::new(convostat::generate::GeneratorConfig::new(
            n,
            common::SEED + 1,
        ))
        .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let (engine, more, stop) = (engine.clone(), more.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    engine.ingest_batch(&more[i % more.len()]).unwrap();
                    i += 2;
                }
            })
        })
        .collect();
    let mut group = c.benchmark_group("query_while_ingesting");
    for (name, query) in common::target_queries(&flow) {
        group.bench_function(name, |b| b.iter(|| engine.query(&query).unwrap()));
    }
    group.finish();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
}

criterion_group!(benches, concurrent);
criterion_main!(benches);
