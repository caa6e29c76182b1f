//! NDJSON ingestion in strict and lenient mode, then queries over the
//! result: nothing may panic (SPEC 6), and a successful ingest must be
//! consistent with its report.
#![no_main]

use convostat::{Engine, IngestMode};
use convostat_fuzz::{query_after_ingest, record_caught_panics, save_if_caught_panic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    record_caught_panics();
    for mode in [IngestMode::Strict, IngestMode::Lenient] {
        let engine = Engine::with_mode(mode);
        let result = engine.ingest_ndjson(data);
        save_if_caught_panic("ndjson", data);
        let Ok(report) = result else {
            assert_eq!(
                engine.stats().events,
                0,
                "a rejected input leaves the engine empty"
            );
            continue;
        };
        assert!(
            report.rows_ingested + report.duplicates <= report.rows_seen,
            "{report:?}"
        );
        assert_eq!(
            engine.stats().events as u64,
            report.rows_ingested,
            "{report:?}"
        );
        if mode == IngestMode::Strict {
            assert!(
                report.skipped.is_empty(),
                "strict mode skips nothing: {report:?}"
            );
        }
        query_after_ingest(&engine);
    }
});
