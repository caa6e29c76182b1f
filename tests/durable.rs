//! SPEC 9, the durable data directory: what is acknowledged survives,
//! damage is found, and a reopened directory answers exactly as an
//! in-memory engine fed the same acknowledged inputs.
//!
//! - `kill_loop_loses_nothing_acknowledged`: `convostat ingest --data` is
//!   SIGKILLed at random moments (recovery, ingest, checkpoint) at least 20
//!   times; every acknowledged input is present, every killed one present
//!   or absent as a whole, and all four query kinds equal the reference;
//! - `torn_tail_at_every_byte_offset_drops_exactly_that_record`;
//! - `flipped_log_bytes_are_a_dropped_tail_or_a_data_error` and
//!   `flipped_checkpoint_bytes_are_a_data_error`;
//! - `a_second_opener_gets_a_one_line_error`, `the_format_version_is_checked`;
//! - `random_sequences_match_an_in_memory_engine` (proptest: ingest,
//!   checkpoint, retain, close and reopen, crash and reopen);
//! - `large_calls_held_encoded_answer_and_replay_the_same`: calls whose
//!   batches wait encoded for their commit (`staged_column_rows`);
//! - `ingest_paths_stops_at_the_first_bad_file_with_the_ones_before_it_kept`;
//! - `concurrent_ingests_share_syncs_and_replay_the_same`.
//!
//! A crash is simulated in process by copying the directory's files while
//! the engine is open (what a `kill -9` would leave: every acknowledged
//! record is in the files) and opening the copy.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use convostat::{Engine, EngineOptions, ErrorKind, Params, Query, SyncPolicy};
use proptest::prelude::*;

mod common;
use common::crash_image;

// ---------------------------------------------------------------------------
// Data: small alphabets so that conversations span inputs and collide.

const BOTS: [&str; 3] = ["b0", "b1", "b2"];
const VERSIONS: [&str; 2] = ["LIVE", "DRAFT"];
const TEAMS: [&str; 2] = ["t0", "t1"];
const CONVERSATIONS: usize = 8;
/// 2024-03-01T00:00:00Z in µs.
const T0: i64 = 1_709_251_200_000_000;
const HOUR: i64 = 3_600_000_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn rfc3339(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let dt = chrono::DateTime::from_timestamp(secs, micros as u32 * 1000).unwrap();
    dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// One NDJSON event line.
fn line(rng: &mut Rng, id: &str) -> String {
    let bot = BOTS[rng.below(3) as usize];
    let conversation = format!("c{}", rng.below(CONVERSATIONS as u64));
    let ts = T0 + rng.below(96) as i64 * HOUR + rng.below(1000) as i64;
    let kind = ["message", "transition", "feedback"][rng.below(3) as usize];
    let mut fields = vec![
        format!(r#""event_id":"{id}""#),
        format!(r#""timestamp":"{}""#, rfc3339(ts)),
        format!(r#""bot_id":"{bot}""#),
        format!(r#""conversation_id":"{conversation}""#),
        format!(r#""event_type":"{kind}""#),
    ];
    let mut opt = |rng: &mut Rng, name: &str, values: &[&str]| {
        if rng.below(5) > 0 {
            let v = values[rng.below(values.len() as u64) as usize];
            fields.push(format!(r#""{name}":"{v}""#));
        }
    };
    opt(rng, "team_id", &TEAMS);
    opt(rng, "bot_version", &VERSIONS);
    opt(rng, "user_id", &["u1", "u2", "ü3"]);
    opt(rng, "channel_type", &["web", "voice"]);
    opt(rng, "language", &["en", "nl"]);
    opt(rng, "campaign_id", &["k1"]);
    opt(rng, "campaign_source", &["ads", "mail"]);
    opt(rng, "message_id", &["m1", "m2", "m3"]);
    if kind == "transition" {
        opt(rng, "from_step_id", &["s1", "s2"]);
        opt(rng, "from_step_type", &["dialog"]);
        opt(rng, "to_step_id", &["s2", "s3"]);
        opt(rng, "to_step_type", &["input", "end"]);
    }
    format!("{{{}}}\n", fields.join(","))
}

/// Input number `i`: `n` events with ids of their own, and the first
/// three of input `i - 1` re-sent (identical duplicates, as SPEC 1
/// assumes: an event is a function of its id).
fn input(seed: u64, i: usize, n: usize) -> String {
    let own = (0..n).map(|k| (i, k));
    let resent = (0..3.min(i * 3)).map(|k| (i.wrapping_sub(1), k));
    let mut out = String::new();
    for (owner, k) in own.chain(resent) {
        let mut rng = Rng((seed << 40) ^ ((owner as u64) << 20) ^ k as u64 | 1);
        rng.next();
        out.push_str(&line(&mut rng, &format!("e{owner}-{k}")));
    }
    out
}

// ---------------------------------------------------------------------------
// Answers of every query kind over the whole alphabet.

fn query(kind: &str, params: &[(&str, &str)]) -> Query {
    Query::from_params(kind, &Params::new(params.iter().copied()).unwrap()).unwrap()
}

fn answer(engine: &Engine, q: &Query) -> String {
    match engine.query(q) {
        Ok(a) => a.to_json(),
        Err(e) => format!("{:?}", e.kind()),
    }
}

/// Everything an engine answers about the test alphabet, and its sizes.
fn fingerprint(engine: &Engine) -> Vec<String> {
    let (start, end) = ("2024-02-28", "2024-03-08");
    let mut out = Vec::new();
    for bot in BOTS {
        for version in VERSIONS {
            let base = [
                ("bot_id", bot),
                ("version", version),
                ("start_time", start),
                ("end_time", end),
            ];
            let mut p = base.to_vec();
            p.extend([("bucket", "1d"), ("group_by", "channel_type")]);
            out.push(answer(engine, &query("conversations", &p)));
            for (stat, aggregate) in [("duration_seconds", "max"), ("num_messages", "sum")] {
                let mut p = base.to_vec();
                p.extend([("stat", stat), ("aggregate", aggregate), ("bucket", "1d")]);
                out.push(answer(engine, &query("insights", &p)));
            }
            for c in 0..CONVERSATIONS {
                let conversation = format!("c{c}");
                let mut p = base.to_vec();
                p.push(("conversation_id", &conversation));
                out.push(answer(engine, &query("flow", &p)));
            }
        }
    }
    for team in TEAMS {
        let p = [
            ("team_id", team),
            ("start_time", start),
            ("end_time", end),
            ("bucket", "1d"),
            (
                "group_by",
                "bot_id,bot_version,channel_type,language,campaign_id,campaign_source",
            ),
        ];
        out.push(answer(engine, &query("usage", &p)));
    }
    let stats = engine.stats();
    out.push(format!(
        "{} conversations, {} events",
        stats.conversations, stats.events
    ));
    out
}

fn reference(inputs: &[&str]) -> Engine {
    let engine = Engine::new();
    for i in inputs {
        engine.ingest_ndjson(i.as_bytes()).unwrap();
    }
    engine
}

fn files_named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .collect();
    out.sort();
    out
}

/// The log segment holding records, when a directory has one.
fn last_segment(dir: &Path) -> PathBuf {
    files_named(dir, "wal-")
        .into_iter()
        .rfind(|p| std::fs::metadata(p).unwrap().len() > 0)
        .expect("a non-empty segment")
}

// ---------------------------------------------------------------------------
// Kill loop over the binary.

const EVENTS_PER_RUN: usize = 400;

#[test]
fn kill_loop_loses_nothing_acknowledged() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let inputs: Vec<String> = (0..60).map(|i| input(11, i, EVENTS_PER_RUN)).collect();
    let exe = env!("CARGO_BIN_EXE_convostat");
    // Calibrate: how long one uninterrupted run takes here.
    let mut acknowledged: Vec<usize> = Vec::new();
    let mut killed: Vec<usize> = Vec::new();
    let mut typical = Duration::from_millis(200);
    let (mut kills, mut recoveries) = (0, 0);
    for (i, text) in inputs.iter().enumerate() {
        let file = work.path().join(format!("in-{i}.ndjson"));
        std::fs::write(&file, text).unwrap();
        let started = Instant::now();
        // Every other run checkpoints automatically after its call, on a
        // thread of its own, so that kills also land while that checkpoint
        // is written.
        let threshold = if i % 2 == 1 { "8192" } else { "67108864" };
        let mut child = Command::new(exe)
            .args(["ingest", "--checkpoint-log-bytes", threshold, "--data"])
            .arg(&data)
            .arg("--input")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Every run but the first few is killed at a random moment: while
        // it recovers what the last kill left, ingests, or checkpoints.
        let kill = i >= 3 && kills < 24;
        if kill {
            let delay = typical.mul_f64(rng.below(1000) as f64 / 1000.0);
            std::thread::sleep(delay);
            let _ = child.kill(); // SIGKILL
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("recovered") {
            recoveries += 1;
        }
        if out.status.success() {
            // Nothing on stderr but what recovery found.
            assert!(
                stderr.lines().all(|l| l.starts_with("recovered ")),
                "run {i} printed: {stderr}"
            );
            acknowledged.push(i);
            if !kill {
                typical = started.elapsed();
            }
        } else {
            assert!(out.status.code().is_none(), "run {i} failed: {stderr}");
            kills += 1;
            killed.push(i);
        }
        if kills >= 24 && i >= 30 {
            break;
        }
    }
    assert!(kills >= 20, "only {kills} runs were killed");
    // Decide presence exactly: a killed input is present iff its ids are
    // in the directory; the reference then gets exactly those inputs.
    let image = crash_image(&data);
    let probe = Engine::open(image.path()).unwrap();
    let mut fed: Vec<&str> = Vec::new();
    for (i, text) in inputs.iter().enumerate() {
        if acknowledged.contains(&i) {
            fed.push(text);
        } else if killed.contains(&i) {
            // Its last own event (ids past the third are never re-sent by
            // the next input) is a duplicate exactly when it is present.
            let own = text.lines().nth(EVENTS_PER_RUN - 1).unwrap();
            let report = probe.ingest_ndjson(own.as_bytes()).unwrap();
            if report.duplicates == 1 {
                fed.push(text);
            }
        }
    }
    drop(probe);
    let expected = fingerprint(&reference(&fed));
    let engine = Engine::open(&data).unwrap();
    assert_eq!(fingerprint(&engine), expected);
    // Every acknowledged input is there in full.
    for &i in &acknowledged {
        let report = engine.ingest_ndjson(inputs[i].as_bytes()).unwrap();
        assert_eq!(report.rows_ingested, 0, "input {i} lost events");
    }
    eprintln!(
        "kill loop: {} runs, {kills} killed, {recoveries} recovered a log, {} acknowledged",
        acknowledged.len() + killed.len(),
        acknowledged.len()
    );
}

// ---------------------------------------------------------------------------
// Damage.

/// An engine on `dir` that skips fsyncs (the damage tests open hundreds).
fn unsynced(dir: &Path) -> Engine {
    quick().open(dir).unwrap()
}

/// Options that skip fsyncs and the checkpoint on close.
fn quick() -> EngineOptions {
    EngineOptions::new()
        .sync(SyncPolicy::Never)
        .checkpoint_on_close(false)
}

/// A directory holding two ingest records (inputs A and B, B last), and
/// the size of the log before B.
fn two_records(dir: &Path, a: &str, b: &str) -> (tempfile::TempDir, u64) {
    let engine = Engine::open(dir).unwrap();
    engine.ingest_ndjson(a.as_bytes()).unwrap();
    let before = std::fs::metadata(last_segment(dir)).unwrap().len();
    engine.ingest_ndjson(b.as_bytes()).unwrap();
    let image = crash_image(dir);
    drop(engine);
    (image, before)
}

#[test]
fn torn_tail_at_every_byte_offset_drops_exactly_that_record() {
    let work = tempfile::tempdir().unwrap();
    // The last record as small as a record gets: one event, required
    // columns only (most of its bytes are the Arrow IPC schema).
    let b = r#"{"event_id":"z","timestamp":"2024-03-02T00:00:00Z","bot_id":"b0","conversation_id":"c1","event_type":"message"}"#;
    let a = input(3, 0, 40);
    let (image, before) = two_records(&work.path().join("d"), &a, b);
    let segment_name = last_segment(image.path()).file_name().unwrap().to_owned();
    let whole = std::fs::read(image.path().join(&segment_name)).unwrap();
    eprintln!("last record: {} bytes", whole.len() as u64 - before);
    let only_a = fingerprint(&reference(&[&a]));
    let both = fingerprint(&reference(&[&a, b]));
    for cut in before..=whole.len() as u64 {
        let copy = crash_image(image.path());
        std::fs::write(copy.path().join(&segment_name), &whole[..cut as usize]).unwrap();
        let engine = unsynced(copy.path());
        let report = engine.open_report().unwrap().clone();
        if cut == whole.len() as u64 {
            assert_eq!(report.dropped_tail_bytes, 0);
            assert_eq!(fingerprint(&engine), both);
            continue;
        }
        assert_eq!(report.dropped_tail_bytes, cut - before, "cut at {cut}");
        assert_eq!(report.records_replayed, 1, "cut at {cut}");
        if cut > before {
            assert!(report.dropped_tail.unwrap().contains("wal-"));
        }
        // Answers are checked at a sample of offsets (each costs a dozen ms).
        if cut % 97 == 0 || cut == before || cut + 1 == whole.len() as u64 {
            assert_eq!(fingerprint(&engine), only_a, "cut at {cut}");
        }
        if cut % 97 == 0 {
            // The tail was truncated away: reopening finds nothing to drop.
            drop(engine);
            let engine = unsynced(copy.path());
            assert_eq!(engine.open_report().unwrap().dropped_tail_bytes, 0);
        }
    }
}

#[test]
fn flipped_log_bytes_are_a_dropped_tail_or_a_data_error() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (input(5, 0, 20), input(5, 1, 2));
    let (image, before) = two_records(&work.path().join("d"), &a, &b);
    let segment_name = last_segment(image.path()).file_name().unwrap().to_owned();
    let whole = std::fs::read(image.path().join(&segment_name)).unwrap();
    let only_a = fingerprint(&reference(&[&a]));
    for offset in (0..whole.len())
        .step_by(13)
        .chain([before as usize, whole.len() - 1])
    {
        let copy = crash_image(image.path());
        let mut bytes = whole.clone();
        bytes[offset] ^= 0x20;
        std::fs::write(copy.path().join(&segment_name), &bytes).unwrap();
        match EngineOptions::new()
            .sync(SyncPolicy::Never)
            .open(copy.path())
        {
            Ok(engine) => {
                // Only damage in the last record may be dropped, as a tail.
                assert!(
                    offset as u64 >= before,
                    "flip at {offset} of the first record was accepted"
                );
                let report = engine.open_report().unwrap();
                assert_eq!(report.dropped_tail_bytes, whole.len() as u64 - before);
                assert_eq!(fingerprint(&engine), only_a, "flip at {offset}");
            }
            Err(e) => {
                assert!((offset as u64) < before, "flip at {offset}: {e}");
                assert_eq!(e.kind(), ErrorKind::Data);
                let message = e.to_string();
                assert!(
                    message.contains("wal-") && !message.contains('\n'),
                    "{message}"
                );
            }
        }
    }
}

#[test]
fn flipped_checkpoint_bytes_are_a_data_error() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("d");
    let engine = Engine::open(&dir).unwrap();
    engine.ingest_ndjson(input(7, 0, 30).as_bytes()).unwrap();
    engine.checkpoint().unwrap();
    let image = crash_image(&dir);
    drop(engine);
    let checkpoint = files_named(image.path(), "checkpoint-").pop().unwrap();
    let name = checkpoint.file_name().unwrap().to_owned();
    let whole = std::fs::read(&checkpoint).unwrap();
    let step = (whole.len() / 300).max(1);
    for offset in (0..whole.len()).step_by(step).chain([whole.len() - 1]) {
        let copy = crash_image(image.path());
        let mut bytes = whole.clone();
        bytes[offset] ^= 0x01;
        std::fs::write(copy.path().join(&name), &bytes).unwrap();
        let e = quick()
            .open(copy.path())
            .expect_err("a damaged checkpoint was accepted");
        assert_eq!(e.kind(), ErrorKind::Data);
        assert!(e.to_string().contains("checkpoint-"), "{e}");
    }
    // A checkpoint cut short too.
    let copy = crash_image(image.path());
    std::fs::write(copy.path().join(&name), &whole[..whole.len() / 2]).unwrap();
    assert_eq!(
        Engine::open(copy.path()).unwrap_err().kind(),
        ErrorKind::Data
    );
}

// ---------------------------------------------------------------------------
// Lock and format version.

#[test]
fn a_second_opener_gets_a_one_line_error() {
    let work = tempfile::tempdir().unwrap();
    let engine = Engine::open(work.path()).unwrap();
    let e = Engine::open(work.path()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Data);
    let message = e.to_string();
    assert!(message.contains("in use by another process"), "{message}");
    assert!(message.contains(&work.path().display().to_string()));
    // Another process: the CLI says the same on one line, exit status 1.
    let out = Command::new(env!("CARGO_BIN_EXE_convostat"))
        .args([
            "usage",
            "--team-id",
            "t0",
            "--start",
            "2024-03-01",
            "--end",
            "2024-03-02",
        ])
        .args(["--bucket", "1d", "--data"])
        .arg(work.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("in use"),
        "{stderr}"
    );
    drop(engine);
    Engine::open(work.path()).unwrap();
}

/// Without `create_if_missing`, only a data directory opens: a missing
/// path, a directory without a manifest and a file are data errors naming
/// the path, and nothing is written there. With it (the default), a file
/// is refused the same way.
#[test]
fn opening_without_create_if_missing_needs_a_data_directory() {
    let work = tempfile::tempdir().unwrap();
    let reader = || EngineOptions::new().create_if_missing(false);
    let refused = |path: &Path, options: EngineOptions, reason: &str| {
        let e = options.open(path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Data, "{e}");
        let text = e.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(reason), "{text}");
    };
    let missing = work.path().join("missing");
    refused(&missing, reader(), "no such data directory");
    assert!(!missing.exists());
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    refused(&empty, reader(), "not a convostat data directory");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    let file = work.path().join("file");
    std::fs::write(&file, "not a directory").unwrap();
    refused(&file, reader(), "not a directory");
    refused(&file, EngineOptions::new(), "not a directory");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
    // A directory made by an engine opens, with what it holds.
    let dir = work.path().join("data");
    let made = Engine::open(&dir).unwrap();
    made.ingest_ndjson(input(5, 0, 50).as_bytes()).unwrap();
    let expected = fingerprint(&made);
    made.close().unwrap();
    let reopened = reader().open(&dir).unwrap();
    assert_eq!(fingerprint(&reopened), expected);
}

/// Making a data directory in a directory that already holds other files
/// is refused before anything is written there, and opening a data
/// directory removes only the temporary files the engine writes, not a
/// user's `*.tmp` file beside them.
#[test]
fn a_data_directory_is_made_only_where_nothing_else_lives() {
    let work = tempfile::tempdir().unwrap();
    let busy = work.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.tmp"), "a user's draft").unwrap();
    let e = Engine::open(&busy).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Data, "{e}");
    let text = e.to_string();
    assert!(text.contains(&busy.display().to_string()), "{text}");
    assert!(
        text.contains("not empty") && text.contains("notes.tmp"),
        "{text}"
    );
    let names = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&busy), ["notes.tmp"], "nothing written beside it");
    assert_eq!(
        std::fs::read(busy.join("notes.tmp")).unwrap(),
        b"a user's draft"
    );
    // A creation cut short (the lock made, the manifest being written) is
    // finished on the next open, its temporary manifest removed.
    let cut = work.path().join("cut");
    std::fs::create_dir(&cut).unwrap();
    std::fs::write(cut.join("LOCK"), "").unwrap();
    std::fs::write(cut.join("MANIFEST.tmp"), "conv").unwrap();
    let engine = Engine::open(&cut).unwrap();
    engine.ingest_ndjson(input(3, 0, 30).as_bytes()).unwrap();
    let expected = fingerprint(&engine);
    engine.close().unwrap();
    assert!(!cut.join("MANIFEST.tmp").exists());
    // In a data directory, a user's `*.tmp` file stays; the engine's own
    // temporary checkpoint goes.
    std::fs::write(cut.join("backup.tmp"), "keep me").unwrap();
    let own = cut.join(format!("checkpoint-{:020}.ckpt.tmp", 99));
    std::fs::write(&own, "partial").unwrap();
    let reopened = Engine::open(&cut).unwrap();
    assert_eq!(fingerprint(&reopened), expected);
    assert_eq!(std::fs::read(cut.join("backup.tmp")).unwrap(), b"keep me");
    assert!(!own.exists());
}

#[test]
fn the_format_version_is_checked() {
    let work = tempfile::tempdir().unwrap();
    drop(Engine::open(work.path()).unwrap());
    let manifest = work.path().join("MANIFEST");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("format 2"), "{text}");
    let body = "convostat data directory\nformat 99\n";
    let future = format!("{body}crc32 {:08x}\n", crc32fast::hash(body.as_bytes()));
    std::fs::write(&manifest, future).unwrap();
    let e = Engine::open(work.path()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Data);
    assert!(
        e.to_string().contains("format version 99 is not supported"),
        "{e}"
    );
    assert!(e.to_string().contains("MANIFEST"), "{e}");
    std::fs::write(&manifest, text.replace("format 2", "format 3")).unwrap();
    assert!(Engine::open(work.path())
        .unwrap_err()
        .to_string()
        .contains("checksum"));
    // No manifest next to data is an error too, not a fresh directory.
    std::fs::remove_file(&manifest).unwrap();
    std::fs::write(work.path().join("wal-00000000000000000009.log"), b"").unwrap();
    assert!(Engine::open(work.path())
        .unwrap_err()
        .to_string()
        .contains("manifest is missing"));
}

// ---------------------------------------------------------------------------
// Random sequences against an in-memory engine.

#[derive(Debug, Clone)]
enum Op {
    Ingest {
        events: usize,
        batch: bool,
    },
    Checkpoint,
    /// Retain conversations that end at or after T0 + hours.
    Retain(i64),
    CloseReopen,
    CrashReopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..40, any::<bool>()).prop_map(|(events, batch)| Op::Ingest { events, batch }),
        1 => Just(Op::Checkpoint),
        1 => (0i64..100).prop_map(Op::Retain),
        1 => Just(Op::CloseReopen),
        1 => Just(Op::CrashReopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_sequences_match_an_in_memory_engine(
        ops in proptest::collection::vec(op(), 1..10),
        seed in 1u64..1000,
        tiny_log in any::<bool>(),
        copy_for_checkpoints in any::<bool>(),
        staged_column_rows in prop_oneof![Just(0usize), Just(8), Just(convostat::DEFAULT_STAGED_COLUMN_ROWS)],
    ) {
        let work = tempfile::tempdir().unwrap();
        let mut dir = work.path().join("d0");
        let options = || {
            let o = EngineOptions::new()
                .sync(SyncPolicy::Never)
                .copy_for_checkpoints(copy_for_checkpoints)
                .staged_column_rows(staged_column_rows);
            if tiny_log { o.checkpoint_log_bytes(4096) } else { o }
        };
        let mut durable = options().open(&dir).unwrap();
        let memory = Engine::new();
        let mut images = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Ingest { events, batch } => {
                    let text = input(seed, i, *events);
                    if *batch {
                        let events: Vec<convostat::Event> = text
                            .lines()
                            .map(|l| serde_json::from_str(l).unwrap())
                            .collect();
                        let a = durable.ingest_events(&events).unwrap();
                        let b = memory.ingest_events(&events).unwrap();
                        prop_assert_eq!(a, b);
                    } else {
                        let a = durable.ingest_ndjson(text.as_bytes()).unwrap();
                        let b = memory.ingest_ndjson(text.as_bytes()).unwrap();
                        prop_assert_eq!(a, b);
                    }
                }
                Op::Checkpoint => durable.checkpoint().unwrap(),
                Op::Retain(hours) => {
                    let before = T0 + hours * HOUR;
                    prop_assert_eq!(durable.retain(before).unwrap(), memory.retain(before).unwrap());
                }
                Op::CloseReopen => {
                    durable.close().unwrap();
                    durable = options().open(&dir).unwrap();
                }
                Op::CrashReopen => {
                    let image = crash_image(&dir);
                    dir = image.path().to_path_buf();
                    images.push(image);
                    durable = options().open(&dir).unwrap();
                }
            }
            prop_assert_eq!(fingerprint(&durable), fingerprint(&memory), "after {:?}", op);
        }
        durable.close().unwrap();
        let reopened = Engine::open(&dir).unwrap();
        prop_assert_eq!(fingerprint(&reopened), fingerprint(&memory));
    }
}

// ---------------------------------------------------------------------------
// Ingest from rayon's pool while checkpoints and retention hold the gate
// alone: a host may ingest from `par_iter`, whose workers also run the
// engine's own parallel work (see `store::gate`).

/// Runs `work` on a thread of its own and fails if it has not ended
/// within two minutes, so that a deadlock fails the test instead of
/// hanging the suite.
fn within_two_minutes(work: impl FnOnce() + Send + 'static) {
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        work();
        let _ = done.send(());
    });
    match ended.recv_timeout(Duration::from_secs(120)) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("deadlock: still running after two minutes")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("the work panicked"),
    }
}

#[test]
fn ingest_from_rayon_workers_while_checkpoints_run_ends_and_loses_nothing() {
    within_two_minutes(|| {
        use rayon::prelude::*;
        let work = tempfile::tempdir().unwrap();
        let durable = EngineOptions::new()
            .sync(SyncPolicy::Never)
            .checkpoint_log_bytes(4096)
            .open(work.path().join("data"))
            .unwrap();
        let inputs: Vec<String> = (0..300).map(|i| input(11, i, 40)).collect();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..30 {
                    durable.checkpoint().unwrap();
                }
            });
            inputs.par_iter().for_each(|text| {
                durable.ingest_ndjson(text.as_bytes()).unwrap();
            });
        });
        let memory = Engine::new();
        for text in &inputs {
            memory.ingest_ndjson(text.as_bytes()).unwrap();
        }
        assert_eq!(fingerprint(&durable), fingerprint(&memory));
        let dir = durable.data_dir().unwrap().to_path_buf();
        durable.close().unwrap();
        assert_eq!(
            fingerprint(&Engine::open(&dir).unwrap()),
            fingerprint(&memory)
        );
    });
}

#[test]
fn ingest_from_rayon_workers_while_retention_runs_ends() {
    within_two_minutes(|| {
        use rayon::prelude::*;
        let engine = Engine::new();
        let inputs: Vec<String> = (0..300).map(|i| input(13, i, 40)).collect();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for h in 0..30 {
                    engine.retain(T0 + h * HOUR / 10).unwrap();
                }
            });
            inputs.par_iter().for_each(|text| {
                engine.ingest_ndjson(text.as_bytes()).unwrap();
            });
        });
    });
}

// ---------------------------------------------------------------------------
// Automatic checkpoints: written by a thread of their own.

#[test]
fn automatic_checkpoints_are_written_while_ingest_goes_on_and_a_failed_write_is_reported() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("data");
    let options = || {
        EngineOptions::new()
            .sync(SyncPolicy::Never)
            .checkpoint_log_bytes(4096)
    };
    let engine = options().open(&dir).unwrap();
    // The first automatic checkpoint is numbered after the segment being
    // written; its write fails: its temporary file's name is taken.
    let segment = files_named(&dir, "wal-").pop().unwrap();
    let n: u64 = segment.file_stem().unwrap().to_str().unwrap()["wal-".len()..]
        .parse()
        .unwrap();
    let blocker = dir.join(format!("checkpoint-{:020}.ckpt.tmp", n + 1));
    std::fs::create_dir(&blocker).unwrap();
    let inputs: Vec<String> = (0..12).map(|i| input(3, i, 200)).collect();
    let mut failed = 0;
    for text in &inputs {
        if let Err(e) = engine.ingest_ndjson(text.as_bytes()) {
            // Reported by the next call that finds a checkpoint due; the
            // call's own events are durable all the same.
            assert!(e.to_string().contains("a checkpoint failed"), "{e}");
            failed += 1;
        }
    }
    assert_eq!(failed, 1, "the failed write is reported once");
    let all: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let expected = fingerprint(&reference(&all));
    assert_eq!(fingerprint(&engine), expected);
    let checkpoints = || -> Vec<PathBuf> {
        files_named(&dir, "checkpoint-")
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "ckpt"))
            .collect()
    };
    engine.close().unwrap();
    std::fs::remove_dir(&blocker).unwrap();
    assert_eq!(checkpoints().len(), 1, "{:?}", checkpoints());
    let reopened = options().open(&dir).unwrap();
    assert_eq!(reopened.open_report().unwrap().records_replayed, 0);
    assert_eq!(fingerprint(&reopened), expected);
}

/// A checkpoint whose write fails for a full disk (its temporary file is
/// `/dev/full`, where every write fails) is an error naming that file and
/// loses nothing:
/// ingest goes on, the log it would have replaced stays, and reopening
/// removes the temporary file and replays the log.
#[cfg(target_os = "linux")]
#[test]
fn a_checkpoint_cut_short_by_a_full_disk_loses_nothing() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("data");
    let options = || {
        EngineOptions::new()
            .sync(SyncPolicy::Never)
            .checkpoint_log_bytes(u64::MAX)
            .checkpoint_on_close(false)
    };
    let engine = options().open(&dir).unwrap();
    let inputs: Vec<String> = (0..6).map(|i| input(4, i, 300)).collect();
    for text in &inputs[..3] {
        engine.ingest_ndjson(text.as_bytes()).unwrap();
    }
    // The checkpoint is numbered after the segment being written.
    let segment = files_named(&dir, "wal-").pop().unwrap();
    let n: u64 = segment.file_stem().unwrap().to_str().unwrap()["wal-".len()..]
        .parse()
        .unwrap();
    let tmp = dir.join(format!("checkpoint-{:020}.ckpt.tmp", n + 1));
    std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
    let e = engine.checkpoint().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Data, "{e}");
    assert!(e.to_string().contains(".ckpt.tmp"), "{e}");
    for text in &inputs[3..] {
        engine.ingest_ndjson(text.as_bytes()).unwrap();
    }
    let all: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let expected = fingerprint(&reference(&all));
    assert_eq!(fingerprint(&engine), expected);
    engine.close().unwrap();
    let checkpoints = files_named(&dir, "checkpoint-");
    assert_eq!(
        checkpoints,
        vec![tmp.clone()],
        "nothing but the failed write's file"
    );
    let reopened = options().open(&dir).unwrap();
    assert!(!tmp.exists(), "the temporary file is removed on open");
    let report = reopened.open_report().unwrap();
    assert_eq!(report.checkpoint, None);
    assert_eq!(report.records_replayed, inputs.len() as u64);
    assert_eq!(fingerprint(&reopened), expected);
    // The next checkpoint is written whole and replaces the log.
    reopened.checkpoint().unwrap();
    reopened.close().unwrap();
    let again = options().open(&dir).unwrap();
    assert_eq!(again.open_report().unwrap().records_replayed, 0);
    assert_eq!(fingerprint(&again), expected);
}

// ---------------------------------------------------------------------------
// Large calls: past their first rows, batches wait encoded for the commit.

#[test]
fn large_calls_held_encoded_answer_and_replay_the_same() {
    let work = tempfile::tempdir().unwrap();
    // 6,043 lines: three NDJSON chunks (2,048 lines, then 2,048, then the
    // rest), with ids re-sent from the input before and from the same call
    // (duplicates inside one call: the first one wins).
    let mut big = input(5, 1, 6000);
    big.push_str(&input(5, 1, 40));
    let inputs = [input(5, 0, 3000), big.clone()];
    // The same call with one null `bot_id` near its end.
    let bad_line = big.lines().nth(5900).unwrap();
    let nulled = bad_line.replacen(r#""bot_id":"b"#, r#""bot_id":null,"x":"b"#, 1);
    assert_ne!(nulled, bad_line);
    let bad = big.replacen(bad_line, &nulled, 1);
    // 0: every batch encoded; 2,048: the first chunk to arrive as columns;
    // the default: every batch as columns.
    for limit in [0, 2048, convostat::DEFAULT_STAGED_COLUMN_ROWS] {
        let dir = work.path().join(format!("limit-{limit}"));
        let options = || {
            EngineOptions::new()
                .sync(SyncPolicy::Never)
                .checkpoint_on_close(false)
                .staged_column_rows(limit)
        };
        let engine = options().open(&dir).unwrap();
        let memory = Engine::new();
        for text in &inputs {
            let a = engine.ingest_ndjson(text.as_bytes()).unwrap();
            let b = memory.ingest_ndjson(text.as_bytes()).unwrap();
            assert_eq!(a, b, "limit {limit}");
        }
        assert_eq!(fingerprint(&engine), fingerprint(&memory), "limit {limit}");
        // Strict: the whole call is refused, nothing of it stays.
        let generation = engine.generation();
        let e = engine.ingest_ndjson(bad.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("line 5901"), "{e}");
        assert_eq!(engine.generation(), generation);
        // Lenient: the row is skipped and counted, the rest are duplicates.
        let a = engine
            .ingest_ndjson_with(bad.as_bytes(), convostat::IngestMode::Lenient)
            .unwrap();
        let b = memory
            .ingest_ndjson_with(bad.as_bytes(), convostat::IngestMode::Lenient)
            .unwrap();
        assert_eq!(a, b, "limit {limit}");
        assert_eq!(a.skipped_rows(), 1);
        assert_eq!(fingerprint(&engine), fingerprint(&memory), "limit {limit}");
        engine.close().unwrap();
        // Replay decodes the large records batch by batch.
        let reopened = options().open(&dir).unwrap();
        assert_eq!(reopened.open_report().unwrap().records_replayed, 3);
        assert_eq!(
            fingerprint(&reopened),
            fingerprint(&memory),
            "limit {limit}"
        );
    }
}

/// `Engine::ingest_paths` commits one file while it reads the next: the
/// files still go in path order, and the first bad one stops it with the
/// files before it ingested and nothing of it or after it.
#[test]
fn ingest_paths_stops_at_the_first_bad_file_with_the_ones_before_it_kept() {
    let work = tempfile::tempdir().unwrap();
    let inputs_dir = work.path().join("inputs");
    std::fs::create_dir(&inputs_dir).unwrap();
    let texts: Vec<String> = (0..6).map(|i| input(9, i, 30)).collect();
    for (i, text) in texts.iter().enumerate() {
        let text = if i == 3 {
            text.replacen(r#""bot_id":"b"#, r#""bot_id":null,"x":"b"#, 1)
        } else {
            text.clone()
        };
        std::fs::write(inputs_dir.join(format!("part-{i}.ndjson")), text).unwrap();
    }
    let dir = work.path().join("data");
    let engine = EngineOptions::new()
        .sync(SyncPolicy::Never)
        .open(&dir)
        .unwrap();
    let e = engine
        .ingest_paths(std::slice::from_ref(&inputs_dir))
        .unwrap_err();
    assert!(e.to_string().contains("part-3.ndjson"), "{e}");
    let before: Vec<&str> = texts[..3].iter().map(String::as_str).collect();
    assert_eq!(fingerprint(&engine), fingerprint(&reference(&before)));
    engine.close().unwrap();
    let reopened = Engine::open(&dir).unwrap();
    assert_eq!(fingerprint(&reopened), fingerprint(&reference(&before)));
    // All good: every file, in order (re-sent ids: the first one wins).
    std::fs::write(inputs_dir.join("part-3.ndjson"), &texts[3]).unwrap();
    let report = reopened.ingest_paths(&[inputs_dir]).unwrap();
    let all: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert_eq!(fingerprint(&reopened), fingerprint(&reference(&all)));
    assert_eq!(
        report.rows_seen,
        texts.iter().map(|t| t.lines().count() as u64).sum::<u64>()
    );
}

// ---------------------------------------------------------------------------
// Group commit.

#[test]
fn concurrent_ingests_share_syncs_and_replay_the_same() {
    let work = tempfile::tempdir().unwrap();
    let inputs: Vec<String> = (0..24).map(|i| input(17, i, 50)).collect();
    let engine = Engine::open(work.path()).unwrap();
    std::thread::scope(|s| {
        for chunk in inputs.chunks(6) {
            let engine = &engine;
            s.spawn(move || {
                for text in chunk {
                    engine.ingest_ndjson(text.as_bytes()).unwrap();
                }
            });
        }
    });
    let all: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let expected = fingerprint(&reference(&all));
    assert_eq!(fingerprint(&engine), expected);
    let image = crash_image(work.path());
    drop(engine);
    let replayed = Engine::open(image.path()).unwrap();
    assert_eq!(replayed.open_report().unwrap().records_replayed, 24);
    assert_eq!(fingerprint(&replayed), expected);
}
