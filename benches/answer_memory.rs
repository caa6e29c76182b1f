//! Peak memory of large grouped answers, per cell (series × buckets).
//!
//! An engine holds one conversation per campaign, spread over a year; a
//! usage query split by `campaign_id` with daily buckets then answers
//! `campaigns × 366` cells. For each size the bench resets the process's
//! peak RSS (`/proc/self/clear_refs`), runs the query and renders its JSON,
//! and reports the peak growth over the resident size before the query,
//! per cell, next to the JSON's own bytes per cell. Linux only.
//!
//! ```sh
//! cargo bench --bench answer_memory
//! ```

use std::time::Instant;

use convostat::time::{Bucket, TimeRange, Tz};
use convostat::{Attribute, Engine, Event, GroupField, UsageQuery, MAX_ANSWER_CELLS};

fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn engine_with_campaigns(campaigns: usize) -> Engine {
    let range = TimeRange::parse("2024-01-01", "2025-01-01", Tz::UTC).unwrap();
    let step = (range.end - range.start) / campaigns as i64;
    let events: Vec<Event> = (0..campaigns)
        .map(|i| Event {
            event_id: format!("e{i}"),
            timestamp: range.start + i as i64 * step,
            bot_id: "b1".into(),
            conversation_id: format!("c{i}"),
            event_type: "message".into(),
            team_id: Some("t1".into()),
            campaign_id: Some(format!("campaign-{i:06}")),
            ..Default::default()
        })
        .collect();
    let engine = Engine::new();
    engine.ingest_events(&events).expect("ingest");
    engine
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list
    }
    println!("usage by campaign_id, 1d buckets over 2024 (366 per series); limit {MAX_ANSWER_CELLS} cells");
    println!(
        "{:>9} {:>11} {:>10} {:>12} {:>12} {:>10}",
        "series", "cells", "time", "peak MB", "peak B/cell", "JSON B/cell"
    );
    for campaigns in [1_000, 4_000, 13_000] {
        let engine = engine_with_campaigns(campaigns);
        let range = TimeRange::parse("2024-01-01", "2025-01-01", Tz::UTC).unwrap();
        let query = UsageQuery::new("t1", range, Bucket::Day)
            .with_group_by(vec![GroupField::Attribute(Attribute::CampaignId)])
            .unwrap();
        let before = status_kb("VmRSS:") * 1024;
        if !reset_peak() {
            println!("(cannot reset peak RSS here; figures include earlier peaks)");
        }
        let t = Instant::now();
        let answer = engine.usage(&query).expect("answer under the limit");
        let json = serde_json::to_string(&answer).expect("JSON");
        let elapsed = t.elapsed();
        let peak = status_kb("VmHWM:") * 1024;
        let cells = answer.data.series.len() * answer.data.x_values.len();
        let grown = peak.saturating_sub(before) as f64;
        println!(
            "{:>9} {:>11} {:>9.3}s {:>12.1} {:>12.1} {:>10.1}",
            answer.data.series.len(),
            cells,
            elapsed.as_secs_f64(),
            grown / 1e6,
            grown / cells as f64,
            json.len() as f64 / cells as f64
        );
    }
}
