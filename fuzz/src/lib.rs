//! Helpers shared by the fuzz targets.
//!
//! # Caught panics
//!
//! `libfuzzer-sys` installs a panic hook that aborts the process on *any*
//! panic, even one that the code under test catches. convostat catches
//! panics of third-party decoders (`guard` in `src/ingest/parquet.rs`) and
//! turns them into data errors, which is its documented behaviour, so the
//! public-API targets call [`record_caught_panics`] first: it replaces that
//! hook by one that only records the panic. A panic that escapes the library
//! still crashes the target (libfuzzer-sys aborts when the target closure
//! unwinds). Each caught panic at a new source location is printed with a
//! backtrace and its input saved as `fuzz/artifacts/<target>/caught-panic-*`,
//! for information.
//!
//! Set `FUZZ_ABORT_ON_CAUGHT_PANIC=1` to keep libfuzzer's aborting hook, e.g.
//! to minimise such an input with `cargo fuzz tmin`.

pub mod batch_queries;

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

use convostat::{Answer, Engine, Params, Query};

static INSTALL: Once = Once::new();
static NEW_CAUGHT_PANIC: AtomicBool = AtomicBool::new(false);
static SEEN_LOCATIONS: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Replaces libfuzzer's abort-on-any-panic hook by a recording one (once).
pub fn record_caught_panics() {
    INSTALL.call_once(|| {
        if std::env::var_os("FUZZ_ABORT_ON_CAUGHT_PANIC").is_some() {
            return;
        }
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_else(|| "<unknown>".into());
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let mut seen = SEEN_LOCATIONS.lock().unwrap_or_else(|p| p.into_inner());
            if seen
                .get_or_insert_with(HashSet::new)
                .insert(location.clone())
            {
                NEW_CAUGHT_PANIC.store(true, Ordering::SeqCst);
                eprintln!(
                    "==== panic (new location) at {location}: {message}\n{}",
                    std::backtrace::Backtrace::force_capture()
                );
            }
        }));
    });
}

/// Saves `data` when the last call panicked at a new location and returned
/// anyway (the panic was caught inside the library).
pub fn save_if_caught_panic(target: &str, data: &[u8]) {
    if !NEW_CAUGHT_PANIC.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut hasher);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join(target);
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("caught-panic-{:016x}", hasher.finish()));
    if std::fs::write(&path, data).is_ok() {
        eprintln!("==== caught panic: input saved as {}", path.display());
    }
}

/// Runs `kind` with `pairs` against `engine` if the parameters are valid,
/// rendering the answer every way it can be rendered (`all_renderings`) or
/// as JSON only. Returns whether the query was valid.
pub fn run_query(
    engine: &Engine,
    kind: &str,
    pairs: &[(&str, &str)],
    all_renderings: bool,
) -> bool {
    let Ok(params) = Params::new(pairs.iter().copied()) else {
        return false;
    };
    let Ok(query) = Query::from_params(kind, &params) else {
        return false;
    };
    if let Ok(answer) = engine.query(&query) {
        if all_renderings {
            check_answer(&answer);
        } else {
            std::hint::black_box(answer.to_json());
        }
    }
    true
}

/// Renders an answer every way and checks its shape.
pub fn check_answer(answer: &Answer) {
    std::hint::black_box(answer.to_json());
    std::hint::black_box(answer.to_csv());
    std::hint::black_box(answer.to_table());
    match answer {
        Answer::Series(s) => {
            let buckets = s.data.x_values.len();
            for series in &s.data.series {
                assert_eq!(
                    series.values.len(),
                    buckets,
                    "a series has one value per bucket"
                );
            }
            std::hint::black_box(s.to_record_batch().ok());
        }
        Answer::Flow(f) => {
            std::hint::black_box(f.to_record_batch().ok());
        }
    }
}

/// The queries run over whatever a successful ingest produced: the fixture
/// bot and team (seeds use them) over a year by day, over two centuries in
/// one bucket, over fifty years by month in a DST zone, and one
/// conversation's flow. Answers are only written as JSON here (rendering
/// long axes every way would dominate the run time).
pub fn query_after_ingest(engine: &Engine) {
    std::hint::black_box(engine.stats());
    run_query(
        engine,
        "conversations",
        &[
            ("bot_id", "b1"),
            ("version", "LIVE"),
            ("start_time", "2024-01-01"),
            ("end_time", "2025-01-01"),
            ("group_by", "channel_type"),
        ],
        false,
    );
    run_query(
        engine,
        "insights",
        &[
            ("bot_id", "b1"),
            ("version", "LIVE"),
            ("start_time", "1900-01-01"),
            ("end_time", "2100-01-01"),
            ("tz", "Europe/Brussels"),
            ("stat", "duration_seconds"),
            ("aggregate", "p95"),
        ],
        false,
    );
    run_query(
        engine,
        "usage",
        &[
            ("team_id", "t1"),
            ("start_time", "2000-01-01"),
            ("end_time", "2050-01-01"),
            ("bucket", "1m"),
            ("tz", "Europe/Brussels"),
            (
                "group_by",
                "bot_id,bot_version,team_id,channel_type,language,campaign_id,campaign_source",
            ),
        ],
        false,
    );
    run_query(
        engine,
        "flow",
        &[
            ("bot_id", "b1"),
            ("conversation_id", "c1"),
            ("version", "LIVE"),
            ("start_time", "1900-01-01"),
            ("end_time", "2100-01-01"),
        ],
        false,
    );
}
