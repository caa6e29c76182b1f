//! Batch jobs that do not read event ids: the first event of a
//! conversation is still the smallest `(timestamp, event_id)` (SPEC 2).
//!
//! Conversations, usage and most insights need event ids only to order the
//! events of a conversation at its first timestamp, so a batch job over
//! Parquet leaves the ids out of the rows its scope selects and reads
//! again, ids included, any conversation that this leaves undecided: events
//! tied at its first timestamp with different attributes. Here every
//! conversation has many such ties, across Parquet row groups read
//! selectively, row groups read whole and NDJSON lines (which carry ids),
//! and batch answers must equal those of an engine that read every id.

use convostat::batch::{run_files, BatchOptions};
use convostat::{Engine, Event, Params, Query};
use proptest::prelude::*;

mod common;
use common::{events_batch, parquet_bytes};

/// 2024-03-01T10:00:00Z in µs.
const T0: i64 = 1_709_287_200_000_000;

/// One event: (bot, conversation, timestamp choice, channel, language,
/// event type, id order).
type EventSpec = (u8, u8, u8, u8, u8, u8, u16);

fn event(i: usize, spec: &EventSpec) -> Event {
    let (bot, conversation, at, channel, language, kind, order) = *spec;
    Event {
        // Ids whose order is unrelated to the file order.
        event_id: format!("e{order:05}-{i}"),
        // Few instants: most events of a conversation tie with another.
        timestamp: T0 + [0, 0, 0, 1, 3_600_000_000][at as usize % 5],
        bot_id: format!("b{}", 1 + bot % 2),
        conversation_id: format!("c{}", 1 + conversation % 4),
        event_type: ["message", "transition", "other"][kind as usize % 3].to_owned(),
        team_id: Some("t1".to_owned()),
        bot_version: Some("LIVE".to_owned()),
        channel_type: [Some("web"), Some("sms"), None][channel as usize % 3].map(str::to_owned),
        language: [Some("en"), Some("nl")][language as usize % 2].map(str::to_owned),
        ..Event::default()
    }
}

fn query(kind: &str, params: &[(&str, &str)]) -> Query {
    let mut all = vec![
        ("start_time", "2024-03-01"),
        ("end_time", "2024-03-03"),
        ("bucket", "1h"),
    ];
    all.extend_from_slice(params);
    Query::from_params(kind, &Params::new(all).unwrap()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn first_events_without_ids_equal_the_engine(
        specs in prop::collection::vec(any::<EventSpec>(), 1..48),
        cut in any::<prop::sample::Index>(),
        rows_per_group in 1usize..12,
    ) {
        let events: Vec<Event> = specs.iter().enumerate().map(|(i, s)| event(i, s)).collect();
        let cut = cut.index(events.len() + 1);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.parquet"),
            parquet_bytes(&events_batch(&events[..cut]), rows_per_group),
        )
        .unwrap();
        let lines: Vec<String> =
            events[cut..].iter().map(|e| serde_json::to_string(e).unwrap()).collect();
        std::fs::write(dir.path().join("b.ndjson"), lines.join("\n")).unwrap();
        let engine = Engine::new();
        engine.ingest_events(&events).unwrap();
        let queries = [
            query("conversations", &[("bot_id", "b1"), ("version", "LIVE"), ("group_by", "channel_type")]),
            query("conversations", &[("bot_id", "b2"), ("version", "LIVE"), ("language", "nl")]),
            query("usage", &[("team_id", "t1"), ("group_by", "bot_id,channel_type,language")]),
            query("insights", &[
                ("bot_id", "b1"), ("version", "LIVE"), ("stat", "duration_seconds"),
                ("aggregate", "max"), ("group_by", "channel_type"),
            ]),
        ];
        for q in &queries {
            let want = engine.query(q).unwrap();
            let got = run_files(q, &[dir.path().to_path_buf()], &BatchOptions::default())
                .unwrap()
                .answer;
            prop_assert_eq!(got, want, "{:?}", q);
        }
    }
}

/// So many undecided conversations that the batch job reads ids again
/// part-way through the file (after 256): answers are still the engine's.
#[test]
fn many_undecided_conversations_turn_ids_back_on() {
    let mut events = Vec::new();
    for c in 0..3_000usize {
        for (k, channel) in [(2usize, 0u8), (1, 1), (3, 2)] {
            // Two bots mixed in every row group, three events at one
            // instant per conversation, channels all different, ids in
            // another order than the rows.
            let spec: EventSpec = ((c % 2) as u8, 0, 0, channel, 0, 0, (k * 7 + c) as u16);
            let mut e = event(events.len(), &spec);
            e.conversation_id = format!("c{c}");
            events.push(e);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.parquet"),
        parquet_bytes(&events_batch(&events), 600),
    )
    .unwrap();
    let engine = Engine::new();
    engine.ingest_events(&events).unwrap();
    for bot in ["b1", "b2"] {
        let q = query(
            "conversations",
            &[
                ("bot_id", bot),
                ("version", "LIVE"),
                ("group_by", "channel_type"),
            ],
        );
        let got = run_files(&q, &[dir.path().to_path_buf()], &BatchOptions::default())
            .unwrap()
            .answer;
        assert_eq!(got, engine.query(&q).unwrap(), "{bot}");
    }
}
