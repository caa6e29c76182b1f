//! Query parameters → `Params::new` → `Query::from_params` for each of the
//! four kinds → run against an engine holding the golden fixture events.
//! Nothing may panic, and a valid query must stay cheap (libFuzzer's
//! `-timeout` and `-rss_limit_mb` catch the rest; the library caps axes at
//! 100,000 buckets).
//!
//! Input format (text, so that seeds are readable): `name=value` pairs, one
//! per line; if the input contains a NUL byte, pairs are separated by NUL
//! instead, so that values may hold newlines. A line without `=` is a name
//! with an empty value. Bytes are read as UTF-8, invalid sequences replaced.
#![no_main]

use std::sync::OnceLock;

use convostat::Engine;
use convostat_fuzz::run_query;
use libfuzzer_sys::fuzz_target;

const EVENTS: &[u8] = include_bytes!("../../fixtures/events.ndjson");

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let engine = Engine::new();
        engine.ingest_ndjson(EVENTS).expect("fixture events ingest");
        engine
    })
}

fuzz_target!(|data: &[u8]| {
    let engine = engine();
    let text = String::from_utf8_lossy(data);
    let separator = if text.contains('\0') { '\0' } else { '\n' };
    let pairs: Vec<(&str, &str)> = text
        .split(separator)
        .filter(|item| !item.is_empty())
        .map(|item| item.split_once('=').unwrap_or((item, "")))
        .collect();
    for kind in ["conversations", "insights", "flow", "usage"] {
        run_query(engine, kind, &pairs, true);
    }
});
