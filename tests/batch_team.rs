//! Usage jobs over NDJSON read each line once and keep only the lines of
//! the team's bots: the bots with a line that names the team, in the same
//! chunk of lines or in one read before. A bot whose lines were left out
//! before one of its lines named the team makes the job read everything
//! again. Whatever the bots' teams (one team, one team with lines that
//! name none, two teams, none), answers must equal those of an engine
//! that read every event, over NDJSON alone and mixed with Parquet.

use convostat::batch::{run_files, BatchOptions};
use convostat::{Engine, Event, Params, Query};
use proptest::prelude::*;

mod common;
use common::{events_batch, parquet_bytes};

/// 2024-03-01T00:00:00Z in µs.
const T0: i64 = 1_709_251_200_000_000;

/// How a bot's events name teams.
#[derive(Debug, Clone, Copy)]
enum Teams {
    /// Always `t1`.
    One,
    /// `t1`, or no team at all (null or absent) now and then.
    OneOrNone,
    /// `t1` or `t2`.
    Two,
    /// Always `t2`.
    Other,
    /// Never a team.
    NoTeam,
}

const PROFILES: [Teams; 5] = [
    Teams::One,
    Teams::OneOrNone,
    Teams::Two,
    Teams::Other,
    Teams::NoTeam,
];

fn team(profile: Teams, choice: u8) -> Option<String> {
    let t = |name: &str| Some(name.to_owned());
    match profile {
        Teams::One => t("t1"),
        Teams::OneOrNone if choice % 4 == 0 => None,
        Teams::OneOrNone => t("t1"),
        Teams::Two if choice % 3 == 0 => t("t2"),
        Teams::Two => t("t1"),
        Teams::Other => t("t2"),
        Teams::NoTeam => None,
    }
}

/// One event: (bot, conversation, minute, channel, team choice).
type EventSpec = (u8, u8, u16, u8, u8);

fn event(i: usize, spec: &EventSpec, profiles: &[Teams]) -> Event {
    let (bot, conversation, minute, channel, choice) = *spec;
    let bot = bot as usize % profiles.len();
    Event {
        event_id: format!("e{i}"),
        timestamp: T0 + i64::from(minute % 2880) * 60_000_000,
        bot_id: format!("bot-number-{bot}-with-a-long-id"),
        conversation_id: format!("c{}", conversation % 16),
        event_type: "message".to_owned(),
        team_id: team(profiles[bot], choice),
        channel_type: [Some("web"), Some("sms"), None][channel as usize % 3].map(str::to_owned),
        ..Event::default()
    }
}

fn usage(team: &str, group_by: &str) -> Query {
    let mut params = vec![
        ("team_id", team),
        ("start_time", "2024-03-01"),
        ("end_time", "2024-03-03"),
        ("bucket", "1h"),
    ];
    if !group_by.is_empty() {
        params.push(("group_by", group_by));
    }
    Query::from_params("usage", &Params::new(params).unwrap()).unwrap()
}

/// NDJSON lines of `events`: a team that names none is no key or, in
/// every other line, a `null`.
fn ndjson(events: &[Event]) -> String {
    let mut text = String::new();
    for (i, e) in events.iter().enumerate() {
        let mut value = serde_json::to_value(e).unwrap();
        if e.team_id.is_none() && i % 2 == 1 {
            let line = value.as_object_mut().unwrap();
            line.insert("team_id".into(), serde_json::Value::Null);
        }
        text.push_str(&value.to_string());
        text.push('\n');
    }
    text
}

/// Every usage answer over `dir` equals the engine's over `events`.
fn check(dir: &std::path::Path, events: &[Event]) -> Result<(), TestCaseError> {
    let engine = Engine::new();
    engine.ingest_events(events).unwrap();
    for q in [
        usage("t1", "bot_id,channel_type"),
        usage("t1", ""),
        usage("t2", "channel_type"),
        usage("t9", "bot_id"),
    ] {
        let want = engine.query(&q).unwrap();
        let got = run_files(&q, &[dir.to_path_buf()], &BatchOptions::default())
            .unwrap()
            .answer;
        prop_assert_eq!(got, want, "{:?}", q);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn usage_over_ndjson_equals_the_engine_whatever_the_bots_teams(
        specs in prop::collection::vec(any::<EventSpec>(), 1..160),
        profiles in prop::collection::vec(0usize..PROFILES.len(), 1..5),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        parquet_first in any::<bool>(),
    ) {
        let profiles: Vec<Teams> = profiles.iter().map(|&p| PROFILES[p]).collect();
        let events: Vec<Event> =
            specs.iter().enumerate().map(|(i, s)| event(i, s, &profiles)).collect();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(events.len() + 1)).collect();
        cuts.push(0);
        cuts.push(events.len());
        cuts.sort_unstable();
        let dir = tempfile::tempdir().unwrap();
        for (part, range) in cuts.windows(2).enumerate() {
            let events = &events[range[0]..range[1]];
            if part == 0 && parquet_first && !events.is_empty() {
                std::fs::write(dir.path().join("0.parquet"), parquet_bytes(&events_batch(events), 7))
                    .unwrap();
            } else {
                std::fs::write(dir.path().join(format!("{part}.ndjson")), ndjson(events)).unwrap();
            }
        }
        check(dir.path(), &events)?;
    }
}

/// Thousands of lines, so that chunks are read in parallel: a team's bot
/// whose first lines name no team, a bot that first appears late, and a
/// bot with 500 conversations of two events: the first, in the file's
/// first chunk, names another team, and the second, thousands of lines
/// later, names the team. The job must read everything again: else it
/// would count those conversations as the team's.
#[test]
fn usage_over_many_chunks_equals_the_engine() {
    let mut events = Vec::new();
    for i in 0..12_000usize {
        let (bot, team, conversation) = match i % 4 {
            0 => ("team-bot", (i >= 40).then_some("t1"), i / 40),
            1 => ("other-bot", Some("t2"), i / 40),
            2 if i >= 9_000 => ("late-bot", (i % 3 != 0).then_some("t1"), i / 40),
            2 => ("quiet-bot", None, i / 40),
            _ if i < 2_000 => ("switching-bot", Some("t2"), i / 4),
            _ if i >= 10_000 => ("switching-bot", Some("t1"), (i - 10_000) / 4),
            _ => ("other-bot", Some("t2"), i / 40),
        };
        events.push(Event {
            event_id: format!("e{i}"),
            timestamp: T0 + i as i64 * 10_000_000,
            bot_id: bot.to_owned(),
            conversation_id: format!("c{conversation}"),
            event_type: "message".to_owned(),
            team_id: team.map(str::to_owned),
            channel_type: Some(["web", "sms"][i % 2].to_owned()),
            ..Event::default()
        });
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.ndjson"), ndjson(&events)).unwrap();
    check(dir.path(), &events).unwrap();
    // Without the switching bot, every answer comes from one reading.
    events.retain(|e| e.bot_id != "switching-bot");
    std::fs::write(dir.path().join("a.ndjson"), ndjson(&events)).unwrap();
    check(dir.path(), &events).unwrap();
}
