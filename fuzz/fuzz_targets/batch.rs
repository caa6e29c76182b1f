//! Batch jobs over a Parquet file (`convostat::batch::run_files`): the
//! selective reader's own decoders (page walks, prefixes of compressed
//! pages, delta decoding, dictionaries read in part, statistics, bloom
//! filters, page indexes) meet the damaged input here, where the `parquet`
//! target's engine ingestion decodes everything with the `parquet` crate.
//! Every query kind over the seeds' bot, team and conversations: an answer
//! (one value per bucket) or a data error naming the file, never a panic
//! that escapes. Panics the library catches are recorded (see
//! `convostat_fuzz`).
#![no_main]

use convostat::batch::{run_files, BatchOptions};
use convostat::IngestMode;
use convostat_fuzz::batch_queries::{batch_queries, check_batch_error};
use convostat_fuzz::{check_answer, record_caught_panics, save_if_caught_panic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    record_caught_panics();
    // One file per fuzzing process (`-fork` and `-jobs` run several).
    let path = std::env::temp_dir().join(format!("convostat-fuzz-{}.parquet", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    for mode in [IngestMode::Strict, IngestMode::Lenient] {
        let options = BatchOptions {
            mode,
            ..BatchOptions::default()
        };
        for query in batch_queries() {
            match run_files(&query, std::slice::from_ref(&path), &options) {
                Ok(outcome) => check_answer(&outcome.answer),
                Err(e) => check_batch_error(&e, "convostat-fuzz-"),
            }
            save_if_caught_panic("batch", data);
        }
    }
});
