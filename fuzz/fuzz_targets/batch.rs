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
use convostat::{ErrorKind, IngestMode, Params, Query};
use convostat_fuzz::{check_answer, record_caught_panics, save_if_caught_panic};
use libfuzzer_sys::fuzz_target;

/// The queries: the seeds' bot `b1`, team `t1`, conversations `c1`
/// (early in the seeds) and `c8` (late), both with transitions.
fn queries() -> Vec<Query> {
    let bot = [("bot_id", "b1"), ("version", "LIVE")];
    let years = [("start_time", "2000-01-01"), ("end_time", "2050-01-01")];
    let query = |kind: &str, pairs: &[(&str, &str)]| {
        Query::from_params(kind, &Params::new(pairs.iter().copied()).unwrap()).unwrap()
    };
    vec![
        query(
            "conversations",
            &[
                &bot[..],
                &years[..],
                &[("bucket", "1m"), ("group_by", "channel_type")],
            ]
            .concat(),
        ),
        query(
            "insights",
            &[
                &bot[..],
                &years[..],
                &[
                    ("bucket", "1m"),
                    ("stat", "num_messages"),
                    ("aggregate", "p95"),
                ],
            ]
            .concat(),
        ),
        query(
            "usage",
            &[
                &years[..],
                &[
                    ("team_id", "t1"),
                    ("bucket", "1m"),
                    ("group_by", "bot_id,language"),
                ],
            ]
            .concat(),
        ),
        query(
            "flow",
            &[&bot[..], &years[..], &[("conversation_id", "c1")]].concat(),
        ),
        query(
            "flow",
            &[&bot[..], &years[..], &[("conversation_id", "c8")]].concat(),
        ),
    ]
}

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
        for query in queries() {
            match run_files(&query, std::slice::from_ref(&path), &options) {
                Ok(outcome) => check_answer(&outcome.answer),
                Err(e) => {
                    assert!(
                        matches!(e.kind(), ErrorKind::Data | ErrorKind::NotFound),
                        "{e}"
                    );
                    if e.kind() == ErrorKind::Data {
                        assert!(e.to_string().contains("convostat-fuzz-"), "{e}");
                    }
                }
            }
            save_if_caught_panic("batch", data);
        }
    }
});
