//! Concurrency: one `Arc<Engine>` fed by several ingest threads (disjoint
//! and overlapping streams, re-sent duplicates, rejected inputs) while
//! query threads run all four query kinds; and atomicity of rejected input.
//!
//! During the run every answer must be internally consistent and must
//! never count a conversation twice; counts over a range that holds every
//! event never go down between two reads of one thread; afterwards the
//! answers equal those of an engine fed everything at once. Every thread
//! reports through a channel, so a deadlock fails the test instead of
//! hanging it.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use convostat::time::parse_rfc3339_micros;
use convostat::{
    Answer, Engine, EngineStats, ErrorKind, Event, IngestMode, Params, Query, SeriesAnswer,
};

mod common;
use common::parquet_bytes;

/// xorshift64*, seeded: the same run every time.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng((seed ^ 0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick(&mut self, options: &[Option<&str>]) -> Option<String> {
        options[self.below(options.len())].map(str::to_owned)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// The attributes that queries filter on, fixed per conversation so that
/// counts over a range holding all events can only grow during ingestion.
#[derive(Debug, Clone)]
struct ConvInfo {
    bot: String,
    id: String,
    team: Option<String>,
    version: Option<String>,
    channel: Option<String>,
    language: Option<String>,
}

/// Events of `bots × convs` conversations around 2024-03-30 (1–20 events
/// each, with ties); user and campaign vary between a conversation's
/// events, the filtered attributes do not.
fn universe(seed: u64, bots: usize, convs: usize) -> (Vec<Event>, Vec<ConvInfo>) {
    let mut rng = Rng::new(seed);
    let base = parse_rfc3339_micros("2024-03-29T00:00:00Z").unwrap();
    let mut events = Vec::new();
    let mut infos = Vec::new();
    for b in 1..=bots {
        for c in 1..=convs {
            let info = ConvInfo {
                bot: format!("b{b}"),
                id: format!("c{c}"),
                team: rng.pick(&[Some("t1"), Some("t1"), Some("t2"), None]),
                version: rng.pick(&[Some("LIVE"), Some("LIVE"), Some("DRAFT"), None]),
                channel: rng.pick(&[Some("web"), Some("whatsapp"), None]),
                language: rng.pick(&[Some("en"), Some("nl"), None]),
            };
            let anchor = base + rng.below(3 * 86_400) as i64 * 1_000_000;
            for k in 0..1 + rng.below(20) {
                let event_type =
                    ["message", "message", "transition", "transition", "feedback"][rng.below(5)];
                events.push(Event {
                    event_id: format!("{}-{}-e{k}", info.bot, info.id),
                    timestamp: anchor
                        + [0, 0, 1, 999_999, 60_000_000, 3_600_000_000][rng.below(6)]
                        + rng.below(4) as i64 * 7_200_000_000,
                    bot_id: info.bot.clone(),
                    conversation_id: info.id.clone(),
                    event_type: event_type.into(),
                    team_id: info.team.clone(),
                    bot_version: info.version.clone(),
                    user_id: rng.pick(&[Some("u1"), Some("u2"), None]),
                    channel_type: info.channel.clone(),
                    language: info.language.clone(),
                    campaign_id: rng.pick(&[Some("c1"), Some("c2"), None]),
                    campaign_source: rng.pick(&[Some("newsletter"), None]),
                    message_id: rng.pick(&[Some("m1"), Some("m2"), Some("m3"), None]),
                    from_step_id: rng.pick(&[Some("s1"), Some("s2"), None]),
                    from_step_type: rng.pick(&[Some("bot_dialog"), Some("input")]),
                    to_step_id: rng.pick(&[Some("s2"), Some("s3")]),
                    to_step_type: rng.pick(&[Some("input"), None]),
                });
            }
            infos.push(info);
        }
    }
    (events, infos)
}

fn ndjson(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect()
}

/// A canonical-layout batch of `events`, with `bot_id` null in the rows
/// of `null_bot_rows` (so `bot_id` is declared nullable).
fn batch_with_null_bots(events: &[Event], null_bot_rows: &[usize]) -> RecordBatch {
    type Pick = fn(&Event) -> Option<&str>;
    let columns: [(&str, Pick); 16] = [
        ("event_id", |e| Some(&e.event_id)),
        ("bot_id", |e| Some(&e.bot_id)),
        ("conversation_id", |e| Some(&e.conversation_id)),
        ("event_type", |e| Some(&e.event_type)),
        ("team_id", |e| e.team_id.as_deref()),
        ("bot_version", |e| e.bot_version.as_deref()),
        ("user_id", |e| e.user_id.as_deref()),
        ("channel_type", |e| e.channel_type.as_deref()),
        ("language", |e| e.language.as_deref()),
        ("campaign_id", |e| e.campaign_id.as_deref()),
        ("campaign_source", |e| e.campaign_source.as_deref()),
        ("message_id", |e| e.message_id.as_deref()),
        ("from_step_id", |e| e.from_step_id.as_deref()),
        ("from_step_type", |e| e.from_step_type.as_deref()),
        ("to_step_id", |e| e.to_step_id.as_deref()),
        ("to_step_type", |e| e.to_step_type.as_deref()),
    ];
    let mut fields = vec![Field::new(
        "timestamp",
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    )];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(
        TimestampMicrosecondArray::from_iter_values(events.iter().map(|e| e.timestamp))
            .with_timezone("UTC"),
    )];
    for (name, pick) in columns {
        let values: Vec<Option<&str>> = events
            .iter()
            .enumerate()
            .map(|(row, e)| {
                if name == "bot_id" && null_bot_rows.contains(&row) {
                    None
                } else {
                    pick(e)
                }
            })
            .collect();
        fields.push(Field::new(name, DataType::Utf8, true));
        arrays.push(Arc::new(StringArray::from(values)));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

/// A query of the run, with what is known of its answer in advance.
struct Probe {
    kind: &'static str,
    params: Vec<(&'static str, String)>,
    query: Query,
    /// For count-valued series: at most this many conversations match.
    max_conversations: Option<u64>,
    /// Its range holds every event: counts never go down during the run.
    monotone: bool,
}

/// Range holding every event of [`universe`].
const ALL: (&str, &str) = ("2024-03-28", "2024-04-03");

fn probe(
    kind: &'static str,
    params: &[(&'static str, &str)],
    infos: &[ConvInfo],
    matches: Option<&dyn Fn(&ConvInfo) -> bool>,
) -> Probe {
    let params: Vec<(&'static str, String)> =
        params.iter().map(|&(k, v)| (k, v.to_owned())).collect();
    let query = Query::from_params(kind, &Params::new(params.clone()).unwrap()).unwrap();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    };
    let monotone = get("start_time") == Some(ALL.0) && get("end_time") == Some(ALL.1);
    Probe {
        kind,
        query,
        max_conversations: matches.map(|f| infos.iter().filter(|c| f(c)).count() as u64),
        monotone,
        params,
    }
}

fn is(value: &Option<String>, expected: &str) -> bool {
    value.as_deref() == Some(expected)
}

/// Queries of all four kinds over the [`universe`].
fn probes(infos: &[ConvInfo]) -> Vec<Probe> {
    let (s, e) = ALL;
    let mut out = vec![
        probe(
            "conversations",
            &[
                ("bot_id", "b1"),
                ("version", "LIVE"),
                ("start_time", s),
                ("end_time", e),
            ],
            infos,
            Some(&|c| c.bot == "b1" && is(&c.version, "LIVE")),
        ),
        probe(
            "conversations",
            &[
                ("bot_id", "b2"),
                ("version", "DRAFT"),
                ("start_time", s),
                ("end_time", e),
                ("bucket", "1h"),
                ("tz", "Europe/Brussels"),
                ("channel_type", "web,whatsapp"),
                ("group_by", "channel_type"),
            ],
            infos,
            Some(&|c| {
                c.bot == "b2"
                    && is(&c.version, "DRAFT")
                    && (is(&c.channel, "web") || is(&c.channel, "whatsapp"))
            }),
        ),
        probe(
            "conversations",
            &[
                ("bot_id", "b3"),
                ("version", "LIVE"),
                ("start_time", "2024-03-30T06:00:00"),
                ("end_time", "2024-03-31T12:00:00"),
                ("bucket", "1h"),
                ("tz", "Europe/Brussels"),
                ("group_by", "language"),
            ],
            infos,
            Some(&|c| c.bot == "b3" && is(&c.version, "LIVE")),
        ),
        probe(
            "insights",
            &[
                ("bot_id", "b1"),
                ("version", "LIVE"),
                ("start_time", s),
                ("end_time", e),
                ("stat", "duration_seconds"),
                ("aggregate", "p90"),
            ],
            infos,
            None,
        ),
        probe(
            "insights",
            &[
                ("bot_id", "b3"),
                ("version", "LIVE"),
                ("start_time", s),
                ("end_time", e),
                ("bucket", "1d"),
                ("tz", "Asia/Kolkata"),
                ("stat", "num_messages"),
                ("aggregate", "sum"),
                ("group_by", "language"),
            ],
            infos,
            None,
        ),
        probe(
            "insights",
            &[
                ("bot_id", "b2"),
                ("version", "LIVE"),
                ("start_time", s),
                ("end_time", e),
                ("bucket", "1w"),
                ("stat", "num_conversations"),
                ("language", "en,nl"),
            ],
            infos,
            Some(&|c| {
                c.bot == "b2"
                    && is(&c.version, "LIVE")
                    && (is(&c.language, "en") || is(&c.language, "nl"))
            }),
        ),
        probe(
            "insights",
            &[
                ("bot_id", "b1"),
                ("version", "DRAFT"),
                ("start_time", "2024-03-30"),
                ("end_time", "2024-04-01"),
                ("bucket", "1h"),
                ("stat", "duration_seconds"),
                ("aggregate", "max"),
                ("group_by", "channel_type"),
            ],
            infos,
            None,
        ),
        probe(
            "usage",
            &[
                ("team_id", "t1"),
                ("start_time", s),
                ("end_time", e),
                ("bucket", "1d"),
                ("group_by", "bot_id,campaign_id"),
            ],
            infos,
            Some(&|c| is(&c.team, "t1")),
        ),
        probe(
            "usage",
            &[
                ("team_id", "t2"),
                ("start_time", s),
                ("end_time", e),
                ("bucket", "1m"),
            ],
            infos,
            Some(&|c| is(&c.team, "t2")),
        ),
        probe(
            "usage",
            &[
                ("team_id", "t1"),
                ("start_time", "2024-03-30T10:00:00"),
                ("end_time", "2024-03-31T10:00:00"),
                ("bucket", "1h"),
                ("tz", "America/New_York"),
                ("group_by", "language,bot_version,channel_type"),
            ],
            infos,
            Some(&|c| is(&c.team, "t1")),
        ),
        probe(
            "flow",
            &[
                ("bot_id", "bx"),
                ("conversation_id", "c1"),
                ("version", "LIVE"),
                ("start_time", s),
                ("end_time", e),
            ],
            infos,
            None,
        ),
    ];
    // Flows of some existing conversations, with their own version.
    for info in infos
        .iter()
        .filter(|c| c.version.is_some())
        .step_by(37)
        .take(6)
    {
        let version = info.version.clone().unwrap();
        for message in [None, Some("m1")] {
            let mut params = vec![
                ("bot_id", info.bot.as_str()),
                ("conversation_id", info.id.as_str()),
                ("version", version.as_str()),
                ("start_time", s),
                ("end_time", e),
            ];
            if let Some(m) = message {
                params.push(("message_id", m));
            }
            out.push(probe("flow", &params, infos, None));
        }
    }
    out
}

fn answer_of(engine: &Engine, probe: &Probe) -> Result<Answer, ErrorKind> {
    engine.query(&probe.query).map_err(|e| e.kind())
}

/// Checks of one series answer that hold at any moment; returns the number
/// of conversations it counts when its values are counts.
fn check_series(probe: &Probe, answer: &SeriesAnswer) -> Option<u64> {
    let data = &answer.data;
    let what = || format!("{} {:?}", probe.kind, probe.params);
    assert_eq!(data.series.len(), data.series_labels.len(), "{}", what());
    assert!(!data.x_values.is_empty(), "{}", what());
    assert!(
        data.series_labels.windows(2).all(|w| w[0] < w[1]),
        "labels not sorted: {:?} {}",
        data.series_labels,
        what()
    );
    for s in &data.series {
        let n = s.values.len() as u64;
        let sum: u64 = s.values.iter().sum();
        assert_eq!(n, data.x_values.len() as u64, "{}", what());
        assert_eq!(s.sum, sum, "{}", what());
        assert_eq!(s.min, *s.values.iter().min().unwrap(), "{}", what());
        assert_eq!(s.max, *s.values.iter().max().unwrap(), "{}", what());
        assert_eq!(s.mean, (2 * sum + n) / (2 * n), "{}", what());
    }
    let counts = match &probe.query {
        Query::Conversations(_) | Query::Usage(_) => true,
        Query::Insights(q) => q.aggregate == convostat::Aggregate::Count,
        _ => false,
    };
    counts.then(|| data.series.iter().map(|s| s.sum).sum())
}

/// What a reader thread remembers of earlier answers.
#[derive(Default)]
struct Memory {
    counted: HashMap<usize, u64>,
    flow_listed: HashMap<usize, usize>,
    found: HashSet<usize>,
}

/// Checks one answer during the run against `last` answers of this thread
/// and the final answers (`done`).
fn check_during_run(
    i: usize,
    probe: &Probe,
    got: &Result<Answer, ErrorKind>,
    done: &Result<Answer, ErrorKind>,
    memory: &mut Memory,
) {
    let what = || format!("{} {:?}", probe.kind, probe.params);
    match (got, done) {
        (Ok(Answer::Series(a)), Ok(Answer::Series(_))) => {
            if let Some(total) = check_series(probe, a) {
                if let Some(max) = probe.max_conversations {
                    assert!(total <= max, "{total} > {max} conversations: {}", what());
                }
                if probe.monotone {
                    let last = memory.counted.insert(i, total).unwrap_or(0);
                    assert!(
                        total >= last,
                        "count went down {last} → {total}: {}",
                        what()
                    );
                }
            }
        }
        (Ok(Answer::Flow(f)), Ok(Answer::Flow(d))) => {
            memory.found.insert(i);
            let final_depth: HashMap<&str, u64> = d
                .transitions
                .iter()
                .map(|t| (t.id.as_str(), t.depth))
                .collect();
            let mut last: Option<(u64, i64)> = None;
            for t in &f.transitions {
                let ts = parse_rfc3339_micros(&t.timestamp).unwrap();
                if let Some((depth, at)) = last {
                    assert!(t.depth > depth && ts >= at, "flow order: {}", what());
                }
                last = Some((t.depth, ts));
                let fin = final_depth.get(t.id.as_str()).copied();
                assert!(
                    fin.is_some_and(|fin| t.depth <= fin),
                    "transition {} depth {} vs final {fin:?}: {}",
                    t.id,
                    t.depth,
                    what()
                );
            }
            let before = memory
                .flow_listed
                .insert(i, f.transitions.len())
                .unwrap_or(0);
            assert!(f.transitions.len() >= before, "flow shrank: {}", what());
        }
        (Err(ErrorKind::NotFound), Ok(Answer::Flow(_))) => {
            assert!(
                !memory.found.contains(&i),
                "flow found, then lost: {}",
                what()
            );
        }
        (Err(ErrorKind::NotFound), Err(ErrorKind::NotFound)) => {}
        _ => panic!("{got:?} during the run, {done:?} at the end: {}", what()),
    }
}

/// Runs `body` on a thread that reports its outcome (or panic) on `tx`.
fn spawn_reporting<T: Send + 'static>(
    name: String,
    tx: mpsc::Sender<(String, Result<T, String>)>,
    body: impl FnOnce() -> T + Send + 'static,
) {
    thread::spawn(move || {
        let outcome = catch_unwind(AssertUnwindSafe(body)).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        });
        let _ = tx.send((name, outcome));
    });
}

/// Collects `n` reports, failing on a panic or on silence for `timeout`.
fn collect<T>(rx: &mpsc::Receiver<(String, Result<T, String>)>, n: usize, what: &str) -> Vec<T> {
    let timeout = Duration::from_secs(60);
    (0..n)
        .map(|_| match rx.recv_timeout(timeout) {
            Ok((_, Ok(value))) => value,
            Ok((name, Err(panic))) => panic!("{name} panicked: {panic}"),
            Err(e) => panic!("{what}: no report within {timeout:?} ({e}): deadlock?"),
        })
        .collect()
}

/// Events of a bot that is never validly ingested: rejected inputs carry them.
fn stray_events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| Event {
            event_id: format!("stray-{i}"),
            timestamp: parse_rfc3339_micros("2024-03-30T12:00:00Z").unwrap() + i as i64,
            bot_id: "bx".into(),
            conversation_id: format!("c{}", i % 3 + 1),
            event_type: ["message", "transition"][i % 2].into(),
            team_id: Some("t1".into()),
            bot_version: Some("LIVE".into()),
            ..Default::default()
        })
        .collect()
}

#[test]
fn concurrent_ingest_and_queries_stay_consistent() {
    let (events, infos) = universe(0xC0FFEE, 3, 200);
    let probes = Arc::new(probes(&infos));

    // The final answers, from an engine fed everything at once.
    let single = Engine::new();
    single.ingest_events(&events).unwrap();
    let finals: Arc<Vec<Result<Answer, ErrorKind>>> =
        Arc::new(probes.iter().map(|p| answer_of(&single, p)).collect());
    assert!(
        finals
            .iter()
            .filter(|a| matches!(a, Ok(Answer::Flow(_))))
            .count()
            >= 6,
        "some flows must exist"
    );

    // Streams: by conversation number modulo 3, plus overlaps (every event
    // of another writer's share with probability 1/3), plus, for the third
    // writer, a re-sent half of everything.
    let mut rng = Rng::new(42);
    let mut streams: Vec<Vec<Event>> = vec![Vec::new(); 3];
    for e in &events {
        let number: usize = e.conversation_id[1..].parse().unwrap();
        let own = number % 3;
        streams[own].push(e.clone());
        for (w, stream) in streams.iter_mut().enumerate() {
            if w != own && rng.below(3) == 0 {
                stream.push(e.clone());
            }
        }
        if rng.below(2) == 0 {
            streams[2].push(e.clone());
        }
    }

    let engine = Arc::new(Engine::new());
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(3);
    let (writer_tx, writer_rx) = mpsc::channel();
    for (w, mut stream) in streams.into_iter().enumerate() {
        let engine = Arc::clone(&engine);
        spawn_reporting(format!("writer {w}"), writer_tx.clone(), move || {
            let mut rng = Rng::new(1000 + w as u64);
            rng.shuffle(&mut stream);
            let mut ingested = 0u64;
            let mut at = 0;
            while at < stream.len() {
                let n = (1 + rng.below(64)).min(stream.len() - at);
                let batch = &stream[at..at + n];
                let report = if rng.below(3) == 0 {
                    engine.ingest_ndjson(ndjson(batch).as_bytes()).unwrap()
                } else {
                    engine.ingest_events(batch).unwrap()
                };
                assert_eq!(report.rows_seen, n as u64);
                assert_eq!(report.rows_ingested + report.duplicates, n as u64);
                ingested += report.rows_ingested;
                at += n;
                // Spread the fresh events over most of the run.
                thread::sleep(Duration::from_millis(3));
                if w == 2 && rng.below(8) == 0 {
                    // A rejected input: valid stray lines, then a bad one.
                    let bad = ndjson(&stray_events(5)) + "{\"event_id\": \"stray-x\", \"timest";
                    let err = engine.ingest_ndjson(bad.as_bytes()).unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::Data);
                }
            }
            // Until the deadline: re-send pieces of the own stream; all of
            // it is in the engine now, so nothing may count as new.
            while Instant::now() < deadline {
                let from = rng.below(stream.len());
                let to = (from + 1 + rng.below(64)).min(stream.len());
                let report = engine.ingest_events(&stream[from..to]).unwrap();
                assert_eq!(report.rows_ingested, 0, "a re-sent event counted as new");
                assert_eq!(report.duplicates, (to - from) as u64);
                thread::sleep(Duration::from_millis(2));
            }
            ingested
        });
    }
    let (reader_tx, reader_rx) = mpsc::channel();
    let (max_conversations, max_events) = (infos.len(), events.len());
    for r in 0..2 {
        let (engine, probes, finals, stop) = (
            Arc::clone(&engine),
            Arc::clone(&probes),
            Arc::clone(&finals),
            Arc::clone(&stop),
        );
        spawn_reporting(format!("reader {r}"), reader_tx.clone(), move || {
            let mut memory = Memory::default();
            let mut rounds = 0u64;
            let mut order: Vec<usize> = (0..probes.len()).collect();
            let mut rng = Rng::new(77 + r);
            while !stop.load(Ordering::Acquire) {
                rng.shuffle(&mut order);
                for &i in &order {
                    let got = answer_of(&engine, &probes[i]);
                    check_during_run(i, &probes[i], &got, &finals[i], &mut memory);
                }
                let stats = engine.stats();
                assert!(stats.conversations <= max_conversations);
                assert!(stats.events <= max_events);
                rounds += 1;
            }
            rounds
        });
    }
    let ingested: u64 = collect(&writer_rx, 3, "writers").into_iter().sum();
    stop.store(true, Ordering::Release);
    let rounds = collect(&reader_rx, 2, "readers");
    assert!(rounds.iter().all(|&r| r > 0), "readers ran: {rounds:?}");

    // Each distinct event was ingested exactly once, whoever sent it first.
    assert_eq!(ingested, events.len() as u64);
    assert_eq!(engine.stats().events, single.stats().events);
    assert_eq!(engine.stats().conversations, single.stats().conversations);
    for (p, want) in probes.iter().zip(finals.iter()) {
        assert_eq!(&answer_of(&engine, p), want, "{} {:?}", p.kind, p.params);
    }
}

/// Snapshot of everything observable through the probes.
fn snapshot(engine: &Engine, probes: &[Probe]) -> (Vec<Result<Answer, ErrorKind>>, (usize, usize)) {
    let EngineStats {
        conversations,
        events,
        ..
    } = engine.stats();
    (
        probes.iter().map(|p| answer_of(engine, p)).collect(),
        (conversations, events),
    )
}

#[test]
fn rejected_inputs_leave_every_answer_unchanged() {
    let (events, infos) = universe(7, 3, 40);
    let probes = probes(&infos);
    // The engine holds about two thirds of the events; the rest, and events
    // of new conversations, come in inputs that are rejected.
    let (held, rest): (Vec<Event>, Vec<Event>) = events.iter().cloned().partition(|e| {
        let k: usize = e.event_id.rsplit('e').next().unwrap().parse().unwrap();
        k % 3 != 0
    });
    let mut incoming = rest.clone();
    // Earlier events of held conversations (new start and first event) and
    // brand new conversations.
    for (i, info) in infos.iter().enumerate().step_by(5) {
        incoming.push(Event {
            event_id: format!("early-{i}"),
            timestamp: parse_rfc3339_micros("2024-03-28T12:00:00Z").unwrap(),
            bot_id: info.bot.clone(),
            conversation_id: info.id.clone(),
            event_type: "transition".into(),
            team_id: Some("t1".into()),
            bot_version: Some("LIVE".into()),
            channel_type: Some("web".into()),
            ..Default::default()
        });
    }
    incoming.extend(stray_events(6));
    let engine = Engine::new();
    engine.ingest_events(&held).unwrap();
    let before = snapshot(&engine, &probes);
    let unchanged = |what: &str| {
        assert!(
            snapshot(&engine, &probes) == before,
            "answers changed after a rejected input: {what}"
        );
    };
    let n = incoming.len();

    // Arrow batches with a null bot_id (strict mode).
    for rows in [vec![n / 2], vec![n - 1], vec![0, n - 1]] {
        let err = engine
            .ingest_batch(&batch_with_null_bots(&incoming, &rows))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Data, "{err}");
        let message = err.to_string();
        assert!(message.contains("`bot_id`"), "{message}");
        assert!(
            message.contains(&format!("row {}", rows[0] + 1)),
            "{message}"
        );
        unchanged(&format!("null bot_id in rows {rows:?}"));
    }

    // NDJSON whose last line is bad, in several ways.
    let good = ndjson(&incoming);
    let bad_last_lines = [
        "{\"event_id\": \"zz\", \"timestamp\": \"2024-03-30T10:00:00Z\", \"bot_", // truncated
        "{\"event_id\": \"zz\", \"timestamp\": \"2024-03-30T10:00:00Z\", \"bot_id\": null, \"conversation_id\": \"c1\", \"event_type\": \"message\"}",
        "{\"event_id\": \"zz\", \"timestamp\": \"2024-03-30T10:00:00Z\", \"conversation_id\": \"c1\", \"event_type\": \"message\"}",
        "{\"event_id\": \"zz\", \"timestamp\": \"2024-03-30 10:00:00\", \"bot_id\": \"b1\", \"conversation_id\": \"c1\", \"event_type\": \"message\"}",
        "{\"event_id\": \"zz\", \"timestamp\": \"yesterday\", \"bot_id\": \"b1\", \"conversation_id\": \"c1\", \"event_type\": \"message\"}",
        "[1, 2, 3]",
        "not json at all",
    ];
    for last in bad_last_lines {
        let text = format!("{good}{last}\n");
        let err = engine.ingest_ndjson(text.as_bytes()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Data, "{err}");
        unchanged(&format!("NDJSON ending with {last}"));
    }
    let mut invalid_utf8 = good.clone().into_bytes();
    invalid_utf8.extend_from_slice(b"{\"event_id\": \"\xff\xfe\"}\n");
    assert!(engine.ingest_ndjson(&invalid_utf8[..]).is_err());
    unchanged("NDJSON ending with invalid UTF-8");

    // Parquet: garbage, empty, truncated, and a null bot_id in the last of
    // several row groups.
    let valid = parquet_bytes(&batch_with_null_bots(&incoming, &[]), 16);
    let with_null = parquet_bytes(&batch_with_null_bots(&incoming, &[n - 1]), 16);
    let mut garbage = b"PAR1".to_vec();
    garbage.extend((0..5_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    garbage.extend_from_slice(b"PAR1");
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", garbage),
        ("empty", Vec::new()),
        ("truncated", valid[..valid.len() / 2].to_vec()),
        ("without footer", valid[..valid.len() - 8].to_vec()),
        ("null bot_id in the last row group", with_null),
    ];
    for (what, bytes) in inputs {
        let err = engine.ingest_parquet_bytes(bytes).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Data, "{what}: {err}");
        unchanged(&format!("Parquet: {what}"));
    }

    // Nothing of the rejected inputs was remembered, not even their event
    // ids: ingesting the valid events now gives the answers of an engine
    // that never saw a bad input.
    let report = engine.ingest_parquet_bytes(valid).unwrap();
    assert_eq!(report.rows_ingested, n as u64);
    assert_eq!(report.duplicates, 0);
    let fresh = Engine::new();
    fresh.ingest_events(&held).unwrap();
    fresh.ingest_events(&incoming).unwrap();
    assert!(snapshot(&engine, &probes) == snapshot(&fresh, &probes));

    // Lenient mode skips the bad row and keeps the others.
    let lenient = Engine::with_mode(IngestMode::Lenient);
    lenient.ingest_events(&held).unwrap();
    let report = lenient
        .ingest_batch(&batch_with_null_bots(&incoming, &[n - 1]))
        .unwrap();
    assert_eq!(report.skipped_rows(), 1);
    assert_eq!(report.rows_ingested, n as u64 - 1);
    let expected = Engine::new();
    expected.ingest_events(&held).unwrap();
    expected.ingest_events(&incoming[..n - 1]).unwrap();
    assert!(snapshot(&lenient, &probes) == snapshot(&expected, &probes));
}
