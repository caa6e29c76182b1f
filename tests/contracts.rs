//! Contracts that hold whatever the input: one short, escaped error line
//! (SPEC 6/7) for any text a user or the data can put in a message, a quiet
//! end when stdout is closed early, escaped table labels, query-text rules
//! (empty `group_by` items, years past 9999), bounded answers, typed
//! queries that keep their own rules, and a library without the CLI's
//! dependencies.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use convostat::time::{Bucket, TimeRange, Tz};
use convostat::{
    Aggregate, Attribute, ConversationsQuery, Engine, ErrorKind, Event, GroupField, InsightsQuery,
    Stat, UsageQuery, MAX_ANSWER_CELLS,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn convostat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convostat"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the convostat binary runs")
}

/// Asserts exit status `code`, nothing on stdout and exactly one stderr
/// line starting with `error: `, without control characters and short.
/// Returns the line.
fn one_error_line(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr:.600}");
    assert!(out.stdout.is_empty(), "stdout is empty on error");
    let line = stderr
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("{stderr:?}"));
    assert!(line.starts_with("error: "), "{line:.600}");
    assert!(
        !line.chars().any(|c| c.is_control()),
        "control characters in {line:?}"
    );
    assert!(line.len() < 4096, "error line of {} bytes", line.len());
    line.to_owned()
}

const USAGE: [&str; 8] = [
    "usage",
    "--team-id",
    "t1",
    "--start",
    "2024-03-01",
    "--end",
    "2024-03-04",
    "--bucket",
];

fn usage_args<'a>(input: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = USAGE.to_vec();
    args.push("1d");
    args.extend(["--input", input]);
    args.extend(extra);
    args
}

#[test]
fn echoed_text_cannot_split_or_flood_the_error_line() {
    let events = fixtures().join("events.parquet");
    let events = events.to_str().unwrap();
    // A newline, a tab and an escape sequence in parameters and paths.
    let line = one_error_line(
        &convostat(&usage_args(events, &["--group-by", "bot_id\nchannel_type"])),
        2,
    );
    assert!(line.contains("bot_id\\nchannel_type"), "{line}");
    let mut args = vec!["insights", "--input", events, "--bot-id", "b1"];
    args.extend(["--version", "LIVE", "--start", "2024-03-01"]);
    args.extend(["--end", "2024-03-02", "--stat", "dur\x1b[31m\tation"]);
    let line = one_error_line(&convostat(&args), 2);
    assert!(line.contains("dur\\u{1b}[31m\\tation"), "{line}");
    let mut args = vec!["flow", "--input", events, "--bot-id", "b1"];
    args.extend(["--conversation-id", "c\n1", "--version", "LIVE"]);
    args.extend(["--start", "2024-03-01", "--end", "2024-03-02"]);
    let line = one_error_line(&convostat(&args), 3);
    assert!(line.contains("c\\n1"), "{line}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no\nsuch\rfile.parquet");
    let line = one_error_line(&convostat(&usage_args(missing.to_str().unwrap(), &[])), 1);
    assert!(line.contains("no\\nsuch\\rfile"), "{line}");
    let line = one_error_line(
        &convostat(&usage_args(events, &["--tz", "Europe/\x07Mars"])),
        2,
    );
    assert!(line.contains("\\u{7}"), "{line}");
}

#[test]
fn a_huge_bad_value_gives_a_short_line() {
    let dir = tempfile::tempdir().unwrap();
    let huge = format!("\x1b[2J{}\n", "9".repeat(5 << 20));
    let bad_values = [
        ("timestamp", serde_json::json!(huge)),
        ("bot_id", serde_json::json!({ "nested": huge })),
        ("bot_id", serde_json::Value::Number(5.into())),
    ];
    for (i, (column, value)) in bad_values.into_iter().enumerate() {
        let path = dir.path().join(format!("huge{i}.ndjson"));
        let mut event = serde_json::json!({
            "event_id": "e1", "timestamp": "2024-03-01T10:00:00Z", "bot_id": "b1",
            "conversation_id": "c1", "event_type": "message",
        });
        event[column] = value;
        let mut text = event.to_string();
        if i == 2 {
            // A 5 MB number where a string belongs.
            text = text.replace(":5,", &format!(":{},", "5".repeat(5 << 20)));
        }
        std::fs::write(&path, format!("{text}\n")).unwrap();
        let line = one_error_line(&convostat(&usage_args(path.to_str().unwrap(), &[])), 1);
        assert!(line.contains(&format!("huge{i}.ndjson")), "{line}");
    }
}

/// Runs `args` with a stdout pipe that is closed before the answer is
/// written: the command ends quietly.
fn closed_stdout(args: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_convostat"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "stderr: {stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        let sigpipe = out.status.signal() == Some(13);
        assert!(out.status.success() || sigpipe, "{:?}", out.status);
    }
    #[cfg(not(unix))]
    assert!(out.status.success(), "{:?}", out.status);
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let events = fixtures().join("events.parquet");
    let events = events.to_str().unwrap();
    for format in ["json", "csv", "table"] {
        closed_stdout(&usage_args(events, &["--format", format]));
    }
    closed_stdout(&["demo", "--events", "2000"]);
}

#[test]
fn table_labels_with_line_breaks_stay_on_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.ndjson");
    let mut file = std::fs::File::create(&path).unwrap();
    for (i, channel) in ["we\nb", "a\tb", "\x1b[31mred"].iter().enumerate() {
        let event = serde_json::json!({
            "event_id": format!("e{i}"), "timestamp": "2024-03-01T10:00:00Z",
            "bot_id": "b1", "conversation_id": format!("c{i}"), "event_type": "message",
            "team_id": "t1", "channel_type": channel,
        });
        writeln!(file, "{event}").unwrap();
    }
    drop(file);
    let out = convostat(&usage_args(
        path.to_str().unwrap(),
        &["--group-by", "channel_type", "--format", "table"],
    ));
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    // Header, three days, sum / mean / min / max.
    assert_eq!(table.lines().count(), 8, "{table}");
    assert!(!table.contains(['\t', '\x1b']), "{table:?}");
    let header = table.lines().next().unwrap();
    for label in ["we\\nb", "a\\tb", "\\u{1b}[31mred"] {
        assert!(header.contains(label), "{header}");
    }
}

#[test]
fn empty_group_by_items_and_years_past_9999_are_invalid_queries() {
    let events = fixtures().join("events.parquet");
    let events = events.to_str().unwrap();
    for group_by in ["bot_id,,channel_type", "bot_id,", ","] {
        let line = one_error_line(
            &convostat(&usage_args(events, &["--group-by", group_by])),
            2,
        );
        assert!(
            line.contains("`group_by`") && line.contains("empty item"),
            "{line}"
        );
    }
    let mut args = USAGE.to_vec();
    args[4] = "9999-12-31T20:00:00Z";
    args[6] = "9999-12-31T23:00:00-05:00";
    args.extend(["1h", "--input", events]);
    let line = one_error_line(&convostat(&args), 2);
    assert!(
        line.contains("`end_time`") && line.contains("10000"),
        "{line}"
    );
}

fn event(i: usize, start: i64, campaign: String) -> Event {
    Event {
        event_id: format!("e{i}"),
        timestamp: start,
        bot_id: "b1".into(),
        conversation_id: format!("c{i}"),
        event_type: "message".into(),
        team_id: Some("t1".into()),
        bot_version: Some("LIVE".into()),
        campaign_id: Some(campaign),
        ..Default::default()
    }
}

fn range(start: &str, end: &str) -> TimeRange {
    TimeRange::parse(start, end, Tz::UTC).unwrap()
}

#[test]
fn answers_over_the_cell_limit_are_refused_with_their_numbers() {
    let t0 = range("2024-01-01", "2024-01-02").start;
    // 2,000 campaigns: in one shard about 31, so with 100,000 hourly
    // buckets a shard alone passes the limit; with daily buckets over
    // ten years (3,653) only the merge of shards does.
    let events: Vec<Event> = (0..2_000)
        .map(|i| event(i, t0 + i as i64 * 1_000_000, format!("cmp{i}")))
        .collect();
    let engine = Engine::new();
    engine.ingest_events(&events).unwrap();
    let by_campaign = |start: &str, end: &str, bucket: Bucket| {
        let q = UsageQuery::new("t1", range(start, end), bucket)
            .with_group_by(vec![GroupField::Attribute(Attribute::CampaignId)])
            .unwrap();
        engine.usage(&q)
    };
    for (start, end, bucket, buckets) in [
        ("2020-01-01", "2031-01-01", Bucket::Hour, 96_432),
        ("2020-01-01", "2030-01-01", Bucket::Day, 3_653),
    ] {
        let err = by_campaign(start, end, bucket).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidQuery);
        let text = err.to_string();
        assert!(text.contains(&format!("× {buckets} buckets")), "{text}");
        assert!(
            text.contains(&format!("limit of {MAX_ANSWER_CELLS}")),
            "{text}"
        );
    }
    // Under the limit the same split answers: 2,000 × 366.
    let answer = by_campaign("2024-01-01", "2025-01-01", Bucket::Day).unwrap();
    assert_eq!(answer.data.series.len(), 2_000);
    assert_eq!(answer.data.x_values.len(), 366);
}

#[test]
fn typed_queries_keep_the_rules_of_their_parameters() {
    let r = range("2024-03-01", "2024-03-08");
    let engine = Engine::new();
    // Conversations and insights split by channel_type or language only.
    assert!(ConversationsQuery::new("b1", "LIVE", r)
        .with_group_by(Some(GroupField::BotId))
        .is_err());
    let language = Some(GroupField::Attribute(Attribute::Language));
    let mut q = ConversationsQuery::new("b1", "LIVE", r)
        .with_group_by(language)
        .unwrap();
    assert!(engine.conversations(&q).is_ok());
    q.group_by = Some(GroupField::Attribute(Attribute::TeamId));
    let err = engine.conversations(&q).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidQuery);
    assert!(err.to_string().contains("`group_by`"), "{err}");
    // Insights: num_conversations counts only; percentiles are SPEC's.
    assert!(InsightsQuery::new("b1", "LIVE", r, Stat::NumConversations, Aggregate::Mean).is_err());
    let mut q = InsightsQuery::new(
        "b1",
        "LIVE",
        r,
        Stat::DurationSeconds,
        "p95".parse().unwrap(),
    )
    .unwrap();
    assert!(engine.insights(&q).is_ok());
    q.stat = Stat::NumConversations;
    assert_eq!(
        engine.insights(&q).unwrap_err().kind(),
        ErrorKind::InvalidQuery
    );
    assert!("p37".parse::<Aggregate>().is_err());
    // Usage fields do not repeat.
    let bot = GroupField::BotId;
    let q = UsageQuery::new("t1", r, Bucket::Day);
    assert!(q.clone().with_group_by(vec![bot, bot]).is_err());
    let mut q = q.with_group_by(vec![bot]).unwrap();
    q.group_by.push(bot);
    let err = engine.usage(&q).unwrap_err();
    assert!(err.to_string().contains("repeated"), "{err}");
}

#[test]
fn the_library_alone_pulls_no_cli_dependency() {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--no-default-features", "--edges", "normal"])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"arrow-array"), "{tree}");
    for cli_only in [
        "clap",
        "indicatif",
        "mimalloc",
        "rand",
        "rand_chacha",
        "axum",
        "tokio",
    ] {
        assert!(!crates.contains(&cli_only), "{cli_only} in\n{tree}");
    }
}
