//! Parquet ingestion through the public API: never a panic that escapes
//! (SPEC 1, 6). Panics of the Parquet decoder that the library catches and
//! reports as data errors are recorded, not crashes (see `convostat_fuzz`).
#![no_main]

use convostat::{Engine, IngestMode};
use convostat_fuzz::{query_after_ingest, record_caught_panics, save_if_caught_panic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    record_caught_panics();
    let engine = Engine::new();
    let strict = engine.ingest_parquet_bytes(data.to_vec());
    save_if_caught_panic("parquet", data);
    match strict {
        Ok(report) => {
            assert_eq!(
                engine.stats().events as u64,
                report.rows_ingested,
                "{report:?}"
            );
            query_after_ingest(&engine);
        }
        Err(_) => {
            assert_eq!(
                engine.stats().events,
                0,
                "a rejected input leaves the engine empty"
            );
            // Nulls in required columns are skipped, not fatal, in lenient mode.
            let engine = Engine::with_mode(IngestMode::Lenient);
            let lenient = engine.ingest_parquet_bytes(data.to_vec());
            save_if_caught_panic("parquet", data);
            if lenient.is_ok() {
                query_after_ingest(&engine);
            }
        }
    }
});
