//! The `convostat` binary, end to end (SPEC 7).
//!
//! Every golden case of `fixtures/expected/` is run through the CLI over the
//! Parquet and the NDJSON fixture: stdout must be the expected JSON answer,
//! errors must give the right exit status (2 invalid query, 3 not found) and
//! exactly one stderr line, `error: ` + the library's message. Then:
//! argument errors, missing inputs, `--format csv|table` against
//! hand-written files in `fixtures/cli/`, directory and multi-path inputs,
//! `--lenient`, the hostile corpus of `fixtures/bad/`, `generate`
//! (determinism and round trip through every query) and `demo`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn events_parquet() -> PathBuf {
    fixtures().join("events.parquet")
}

fn events_ndjson() -> PathBuf {
    fixtures().join("events.ndjson")
}

/// Runs the binary with `args`. `RUST_BACKTRACE` is cleared so that output
/// does not depend on the caller's environment.
fn convostat<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_convostat"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("the convostat binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Describes a run for assertion messages.
fn show(args: &[String], out: &Output) -> String {
    format!(
        "convostat {}\n  status: {:?}\n  stdout: {}\n  stderr: {}",
        args.join(" "),
        out.status.code(),
        truncate(&stdout(out), 600),
        truncate(&stderr(out), 600)
    )
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_owned()
    } else {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &s[..end], s.len())
    }
}

/// Asserts a failed run: exit status `code`, nothing on stdout, and stderr
/// exactly one line starting with `error: `. Returns that line.
fn assert_one_error_line(args: &[String], out: &Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{}", show(args, out));
    assert!(
        out.stdout.is_empty(),
        "stdout not empty: {}",
        show(args, out)
    );
    let err = stderr(out);
    assert!(
        err.starts_with("error: ") && err.ends_with('\n') && err.matches('\n').count() == 1,
        "stderr must be exactly one `error: ` line: {}",
        show(args, out)
    );
    err.trim_end_matches('\n').to_owned()
}

/// The CLI flag of an API parameter.
fn flag_of(param: &str) -> &'static str {
    match param {
        "bot_id" => "--bot-id",
        "version" => "--version",
        "start_time" => "--start",
        "end_time" => "--end",
        "channel_type" => "--channel-type",
        "language" => "--language",
        "bucket" => "--bucket",
        "group_by" => "--group-by",
        "tz" => "--tz",
        "stat" => "--stat",
        "aggregate" => "--aggregate",
        "conversation_id" => "--conversation-id",
        "message_id" => "--message-id",
        "team_id" => "--team-id",
        other => panic!("no CLI flag for parameter `{other}`"),
    }
}

/// A golden case as CLI arguments (without `--input`).
fn case_args(case: &Value) -> Vec<String> {
    let mut args = vec![case["query"].as_str().unwrap().to_owned()];
    for (param, value) in case["params"].as_object().unwrap() {
        args.push(flag_of(param).to_owned());
        args.push(value.as_str().unwrap().to_owned());
    }
    args
}

fn with_input(mut args: Vec<String>, inputs: &[&Path]) -> Vec<String> {
    args.push("--input".into());
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    args
}

fn golden_cases() -> Vec<(String, Value)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures().join("expected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 40, "golden cases are missing");
    paths
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let case = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (name, case)
        })
        .collect()
}

fn exit_code_of(kind: &str) -> i32 {
    match kind {
        "invalid_query" => 2,
        "not_found" => 3,
        "data" => 1,
        other => panic!("unknown error kind {other}"),
    }
}

/// Checks one run of a golden case against its expected answer or error.
fn check_case(name: &str, case: &Value, args: &[String], out: &Output) {
    let expected = &case["expected"];
    if let Some(kind) = expected.get("error").and_then(Value::as_str) {
        let line = assert_one_error_line(args, out, exit_code_of(kind));
        let message = expected["message"].as_str().unwrap();
        assert_eq!(line, format!("error: {message}"), "{name}");
    } else {
        assert_eq!(out.status.code(), Some(0), "{name}: {}", show(args, out));
        assert!(out.stderr.is_empty(), "{name}: {}", show(args, out));
        let text = stdout(out);
        assert!(
            text.ends_with('\n') && text.matches('\n').count() == 1,
            "{name}: JSON answer is one line: {}",
            show(args, out)
        );
        let got: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{name}: stdout is not JSON ({e}): {text}"));
        assert_eq!(&got, expected, "{name}: {}", show(args, out));
    }
}

#[test]
fn every_golden_case_over_parquet_and_ndjson() {
    for (name, case) in golden_cases() {
        for input in [events_parquet(), events_ndjson()] {
            let args = with_input(case_args(&case), &[&input]);
            let out = convostat(&args);
            check_case(&name, &case, &args, &out);
        }
    }
}

#[test]
fn version_prints_the_crate_s_version() {
    for flag in ["--version", "-V"] {
        let out = convostat([flag]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(
            stdout(&out).trim(),
            format!("convostat {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

/// A process started with standard streams closed still answers (they
/// are opened on `/dev/null`, so the input file opened later is not one
/// of them), and one whose reader stops early ends with status 0.
#[cfg(unix)]
#[test]
fn closed_standard_streams_and_an_early_closed_reader_are_not_errors() {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let input = events_parquet();
    let args = [
        "conversations",
        "--bot-id",
        "b1",
        "--version",
        "LIVE",
        "--start",
        "2024-01-01",
        "--end",
        "2025-01-01",
        "--bucket",
        "1d",
        "--input",
        input.to_str().unwrap(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ingest = ["ingest", "--data", data.to_str().unwrap(), "--input"];
    let ingest: Vec<&str> = ingest
        .into_iter()
        .chain([input.to_str().unwrap()])
        .collect();
    let query: Vec<&str> = args[..args.len() - 2]
        .iter()
        .copied()
        .chain(["--data", data.to_str().unwrap()])
        .collect();
    for (closed, args) in [
        ([0, 1, 2], &args[..]),
        ([1, 2, -1], &args[..]),
        ([0, -1, -1], &args[..]),
        // The data directory's files are not written to as stdout.
        ([0, 1, 2], &ingest[..]),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_convostat"));
        command.args(args);
        // SAFETY: `close` only, between fork and exec.
        unsafe {
            command.pre_exec(move || {
                for fd in closed.into_iter().filter(|&fd| fd >= 0) {
                    libc::close(fd);
                }
                Ok(())
            });
        }
        let status = command.status().unwrap();
        assert_eq!(status.code(), Some(0), "closed {closed:?} {args:?}");
    }
    let from_data = convostat(&query);
    let from_file = convostat(args);
    assert_eq!(from_data.status.code(), Some(0), "{}", stderr(&from_data));
    assert_eq!(stdout(&from_data), stdout(&from_file));
    // A reader that takes one byte and closes the pipe.
    let mut child = Command::new(env!("CARGO_BIN_EXE_convostat"))
        .args([
            "usage",
            "--team-id",
            "t1",
            "--start",
            "2024-01-01",
            "--end",
            "2025-01-01",
        ])
        .args(["--bucket", "1h", "--input", input.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    stdout.read_exact(&mut byte).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
}

#[test]
fn invalid_queries_are_reported_before_any_input_is_read() {
    // SPEC 4: an invalid query is reported as such even when the input is
    // missing or bad.
    let missing = fixtures().join("no-such-file.parquet");
    let garbage = fixtures().join("bad/random_bytes.parquet");
    for (name, case) in golden_cases() {
        if case["expected"]["error"] != "invalid_query" {
            continue;
        }
        for input in [&missing, &garbage] {
            let args = with_input(case_args(&case), &[input]);
            let out = convostat(&args);
            check_case(&name, &case, &args, &out);
        }
    }
}

#[test]
fn a_missing_input_path_is_a_data_error_naming_it() {
    let missing = fixtures().join("no-such-dir/events.parquet");
    for query in [
        "conversations --bot-id b1 --version LIVE --start 2024-03-01 --end 2024-03-06",
        "insights --bot-id b1 --version LIVE --start 2024-03-01 --end 2024-03-06 --stat num_messages",
        "flow --bot-id b1 --conversation-id c1 --version LIVE --start 2024-03-01 --end 2024-03-02",
        "usage --team-id t1 --start 2024-03-01 --end 2024-03-04 --bucket 1d",
    ] {
        let args: Vec<String> = query.split(' ').map(str::to_owned).collect();
        // Missing alone, and missing after a good file.
        for inputs in [vec![missing.as_path()], vec![&events_ndjson(), &missing]] {
            let args = with_input(args.clone(), &inputs);
            let out = convostat(&args);
            let line = assert_one_error_line(&args, &out, 1);
            assert!(
                line.contains(&missing.display().to_string()),
                "the message names the path: {line}"
            );
        }
    }
}

/// A query on `--data` reads a directory `convostat ingest` made: a path
/// that holds none is a data error naming it, and is left as it was.
#[test]
fn a_query_on_a_path_without_a_data_directory_is_a_data_error() {
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("events.db");
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for dir in [&missing, &empty] {
        let mut args = split("usage --team-id t1 --start 2024-03-01 --end 2024-03-04 --bucket 1d");
        args.push("--data".into());
        args.push(dir.display().to_string());
        let out = convostat(&args);
        let line = assert_one_error_line(&args, &out, 1);
        assert!(line.contains(&dir.display().to_string()), "{line}");
    }
    assert!(!missing.exists(), "nothing is made at a missing path");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn ingest_refuses_to_make_a_data_directory_among_other_files() {
    let work = tempfile::tempdir().unwrap();
    let busy = work.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("report.csv"), "a,b\n").unwrap();
    let args: Vec<String> = vec![
        "ingest".into(),
        "--data".into(),
        busy.display().to_string(),
        "--input".into(),
        events_ndjson().display().to_string(),
    ];
    let out = convostat(&args);
    let line = assert_one_error_line(&args, &out, 1);
    assert!(
        line.contains("not empty") && line.contains("report.csv"),
        "{line}"
    );
    let names: Vec<_> = std::fs::read_dir(&busy)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["report.csv"]);
}

fn split(s: &str) -> Vec<String> {
    s.split(' ').map(str::to_owned).collect()
}

#[test]
fn argument_errors_exit_2_with_one_line() {
    let input = events_ndjson().display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        // Missing required --input.
        (
            split("conversations --bot-id b1 --version LIVE --start 2024-03-01 --end 2024-03-06"),
            "",
        ),
        // Unknown flag.
        (
            split(&format!(
                "usage --input {input} --team-id t1 --start 2024-03-01 --end 2024-03-04 --bucket 1d --colour red"
            )),
            "--colour",
        ),
        // Unknown subcommand.
        (split("histogram --input x"), "histogram"),
        // --input without a value.
        (split("usage --team-id t1 --input"), "--input"),
        // Bad --format value.
        (
            split(&format!(
                "usage --input {input} --team-id t1 --start 2024-03-01 --end 2024-03-04 --bucket 1d --format xml"
            )),
            "xml",
        ),
        // generate: missing --out, non-numeric --events.
        (split("generate --events 10"), ""),
        (split("generate --out x.parquet --events many"), "many"),
        // flow takes no --tz.
        (
            split(&format!(
                "flow --input {input} --bot-id b1 --conversation-id c1 --version LIVE --start 2024-03-01 --end 2024-03-02 --tz UTC"
            )),
            "--tz",
        ),
    ];
    for (args, names) in cases {
        let out = convostat(&args);
        let line = assert_one_error_line(&args, &out, 2);
        assert!(line.contains(names), "`{names}` named: {line}");
    }
}

/// SPEC 6: every error message names the offending parameter. clap's
/// "the following required arguments were not provided:" puts the names on
/// the following lines, which the CLI drops.
#[test]
fn a_missing_required_argument_is_named_on_the_error_line() {
    let cases = [
        (
            split("conversations --bot-id b1 --version LIVE --start 2024-03-01 --end 2024-03-06"),
            "--input",
        ),
        (split("generate --events 10"), "--out"),
        (split("generate --out x.parquet"), "--events"),
    ];
    for (args, missing) in cases {
        let out = convostat(&args);
        let line = assert_one_error_line(&args, &out, 2);
        assert!(
            line.contains(missing),
            "the error line must name the missing `{missing}`: {line:?}"
        );
    }
}

/// Missing query parameters are the library's invalid-query errors, with
/// the API's parameter name.
#[test]
fn missing_query_parameters_are_invalid_queries() {
    let input = events_ndjson().display().to_string();
    let cases = [
        (
            format!("conversations --input {input} --version LIVE --start 2024-03-01 --end 2024-03-06"),
            "`bot_id`",
        ),
        (
            format!("insights --input {input} --bot-id b1 --version LIVE --start 2024-03-01 --end 2024-03-06"),
            "`stat`",
        ),
        (
            format!("flow --input {input} --bot-id b1 --version LIVE --start 2024-03-01 --end 2024-03-02"),
            "`conversation_id`",
        ),
        (
            format!("usage --input {input} --team-id t1 --start 2024-03-01 --end 2024-03-04"),
            "`bucket`",
        ),
        (
            format!("usage --input {input} --team-id t1 --end 2024-03-04 --bucket 1d"),
            "`start_time`",
        ),
    ];
    for (args, param) in cases {
        let args = split(&args);
        let out = convostat(&args);
        let line = assert_one_error_line(&args, &out, 2);
        assert!(
            line.starts_with("error: invalid query: ") && line.contains(param),
            "{line}"
        );
    }
}

#[test]
fn csv_and_table_formats_match_hand_written_outputs() {
    let cases = [
        (
            "usage --team-id t1 --start 2024-03-01 --end 2024-03-04 --bucket 1d --group-by bot_id,bot_version --format csv",
            "usage_by_bot_and_version.csv",
        ),
        (
            "conversations --bot-id b1 --version LIVE --start 2024-03-01 --end 2024-03-06 --format csv",
            "conversations_daily.csv",
        ),
        (
            "insights --bot-id b1 --version LIVE --start 2024-03-01 --end 2024-03-06 --bucket 1d --group-by language --stat duration_seconds --aggregate max --format table",
            "insights_duration_max_by_language.txt",
        ),
        (
            "flow --bot-id b1 --conversation-id c1 --version LIVE --start 2024-03-01 --end 2024-03-02 --format csv",
            "flow_whole.csv",
        ),
        (
            "flow --bot-id b1 --conversation-id c1 --version LIVE --start 2024-03-01 --end 2024-03-02 --format table",
            "flow_whole.txt",
        ),
    ];
    for (query, file) in cases {
        let expected = std::fs::read_to_string(fixtures().join("cli").join(file)).unwrap();
        for input in [events_parquet(), events_ndjson()] {
            let args = with_input(split(query), &[&input]);
            let out = convostat(&args);
            assert_eq!(out.status.code(), Some(0), "{}", show(&args, &out));
            assert_eq!(stdout(&out), expected, "{file}: {}", show(&args, &out));
        }
    }
    // `--format json` is the default.
    let query = "usage --team-id t1 --start 2024-03-01 --end 2024-03-04 --bucket 1d";
    let default = convostat(with_input(split(query), &[&events_parquet()]));
    let json = convostat(with_input(
        split(&format!("{query} --format json")),
        &[&events_parquet()],
    ));
    assert_eq!(default.stdout, json.stdout);
}

#[test]
fn errors_are_the_same_in_every_format() {
    for format in ["json", "csv", "table"] {
        let args = with_input(
            split(&format!(
                "flow --bot-id b1 --conversation-id nope --version LIVE --start 2024-03-01 --end 2024-03-02 --format {format}"
            )),
            &[&events_parquet()],
        );
        let out = convostat(&args);
        let line = assert_one_error_line(&args, &out, 3);
        assert_eq!(
            line,
            "error: not found: conversation `nope` of bot `b1` with version `LIVE`"
        );
    }
}

/// Success cases of the golden set (one per query kind at least).
fn success_cases() -> Vec<(String, Value)> {
    golden_cases()
        .into_iter()
        .filter(|(_, c)| c["expected"].get("error").is_none())
        .collect()
}

#[test]
fn a_directory_or_several_paths_answer_like_the_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(events_ndjson()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    std::fs::create_dir_all(dir.path().join("nested/deeper")).unwrap();
    std::fs::write(dir.path().join("part-1.ndjson"), first.join("\n") + "\n").unwrap();
    // No trailing newline on the last line of the second part.
    std::fs::write(
        dir.path().join("nested/deeper/part-2.jsonl"),
        second.join("\n"),
    )
    .unwrap();
    // Files of other kinds are not inputs.
    std::fs::write(dir.path().join("README.txt"), "not events\n").unwrap();
    std::fs::write(dir.path().join("nested/data.csv"), "a,b\n1,2\n").unwrap();
    // An empty subdirectory is fine.
    std::fs::create_dir(dir.path().join("empty")).unwrap();

    for (name, case) in success_cases() {
        let single = convostat(with_input(case_args(&case), &[&events_ndjson()]));
        assert_eq!(single.status.code(), Some(0), "{name}");
        let from_dir = with_input(case_args(&case), &[dir.path()]);
        let out = convostat(&from_dir);
        check_case(&name, &case, &from_dir, &out);
        assert_eq!(out.stdout, single.stdout, "{name}: directory vs file");
        // Both fixtures at once: the same events twice, so every event is a
        // duplicate of one already seen and the answer does not change.
        let both = with_input(case_args(&case), &[&events_parquet(), &events_ndjson()]);
        let out = convostat(&both);
        check_case(&name, &case, &both, &out);
        // The split files named one by one.
        let parts = with_input(
            case_args(&case),
            &[
                &dir.path().join("nested/deeper/part-2.jsonl"),
                &dir.path().join("part-1.ndjson"),
            ],
        );
        let out = convostat(&parts);
        check_case(&name, &case, &parts, &out);
    }
}

#[test]
fn an_empty_directory_is_an_empty_data_set() {
    let dir = tempfile::tempdir().unwrap();
    let args = with_input(
        split("usage --team-id t1 --start 2024-03-01 --end 2024-03-03 --bucket 1d"),
        &[dir.path()],
    );
    let out = convostat(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&args, &out));
    let got: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        got,
        serde_json::json!({"data": {
            "series": [{"values": [0, 0], "mean": 0, "max": 0, "min": 0, "sum": 0, "labels": {}}],
            "series_labels": ["num_conversations"],
            "x_values": ["2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z"]}})
    );
    let args = with_input(
        split("flow --bot-id b1 --conversation-id c1 --version LIVE --start 2024-03-01 --end 2024-03-02"),
        &[dir.path()],
    );
    let out = convostat(&args);
    assert_one_error_line(&args, &out, 3);
}

fn bad(name: &str) -> PathBuf {
    fixtures().join("bad").join(name)
}

#[test]
fn lenient_reports_skipped_rows_per_reason_and_strict_names_column_and_row() {
    let file = bad("null_required.ndjson");
    let query = "usage --team-id t1 --start 2024-03-01 --end 2024-03-04 --bucket 1d";
    // Strict (default): exit 1, naming the file, the column and the row.
    let args = with_input(split(query), &[&file]);
    let out = convostat(&args);
    let line = assert_one_error_line(&args, &out, 1);
    for part in ["null_required.ndjson", "`bot_id`", "line 2"] {
        assert!(line.contains(part), "`{part}` in {line}");
    }
    // Lenient: exit 0, counts per reason on stderr, the answer on stdout.
    let mut args = args;
    args.push("--lenient".into());
    let out = convostat(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&args, &out));
    let err = stderr(&out);
    for part in [
        "skipped 3 rows",
        "null bot_id: 2",
        "null conversation_id: 1",
    ] {
        assert!(err.contains(part), "`{part}` on stderr: {err}");
    }
    let answer: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["data"]["series_labels"][0], "num_conversations");

    // Lenient on a clean file reports zero skips.
    let args = with_input(split(&format!("{query} --lenient")), &[&events_ndjson()]);
    let out = convostat(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&args, &out));
    assert_eq!(stderr(&out), "skipped 0 rows\n");
}

/// `null_required.parquet` has a null `bot_id` in row 2 and a null
/// `event_type` in row 3; `null_required.ndjson` null `bot_id` on lines 2
/// and 3 and no `conversation_id` on line 4. Whatever the query, strict mode
/// must reject the file (SPEC 1) and lenient mode must skip and count those
/// rows, although batch execution reads only some columns and, once rows
/// are validated, only the queried bot / conversation (or, for usage over
/// Parquet, the team's bots).
#[test]
fn null_handling_does_not_depend_on_the_query() {
    let mut failures = Vec::new();
    for (file, conversation, skipped) in [
        (
            "null_required.parquet",
            "cx",
            ["skipped 2 rows", "null bot_id: 1", "null event_type: 1"],
        ),
        (
            "null_required.ndjson",
            "cn",
            [
                "skipped 3 rows",
                "null bot_id: 2",
                "null conversation_id: 1",
            ],
        ),
    ] {
        let queries = [
            "conversations --bot-id b1 --version LIVE --start 2024-03-01 --end 2024-03-04".to_owned(),
            "insights --bot-id b1 --version LIVE --start 2024-03-01 --end 2024-03-04 --stat duration_seconds".to_owned(),
            "insights --bot-id b1 --version LIVE --start 2024-03-01 --end 2024-03-04 --stat num_messages".to_owned(),
            format!("flow --bot-id b1 --conversation-id {conversation} --version LIVE --start 2024-03-01 --end 2024-03-04"),
            "usage --team-id t1 --start 2024-03-01 --end 2024-03-04 --bucket 1d".to_owned(),
        ];
        for query in &queries {
            let path = bad(file);
            let args = with_input(split(query), &[&path]);
            let out = convostat(&args);
            if out.status.code() != Some(1) {
                failures.push(format!("strict, expected exit 1: {}", show(&args, &out)));
            }
            let args = with_input(split(&format!("{query} --lenient")), &[&path]);
            let out = convostat(&args);
            let err = stderr(&out);
            if out.status.code() != Some(0) || !skipped.iter().all(|s| err.contains(s)) {
                failures.push(format!(
                    "lenient, expected exit 0 and {skipped:?}: {}",
                    show(&args, &out)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// Every file of the hostile corpus, through every query kind: exit 1 and
/// one `error: ` line naming the file — never a crash, never an answer.
#[test]
fn every_bad_file_is_a_data_error_for_every_query_kind() {
    // (file, a conversation of bot b1 in it, when there is one).
    let files = [
        ("truncated.parquet", "c1"),
        ("bad_magic.parquet", "c1"),
        ("random_bytes.parquet", "c1"),
        // Byte 4313 of events.parquet (in the `bot_id` pages of the third
        // row group) changed from 0x0c to 0xc7.
        ("corrupt_page.parquet", "c1"),
        ("bot_id_int64.parquet", "cx"),
        ("timestamp_string.parquet", "cx"),
        ("channel_type_double.parquet", "cx"),
        ("missing_conversation_id.parquet", "cx"),
        ("null_required.parquet", "cx"),
        ("invalid_utf8.ndjson", "cn"),
        ("not_object_array.ndjson", "cn"),
        ("not_object_number.ndjson", "cn"),
        ("not_object_string.ndjson", "cn"),
        ("bad_timestamp.ndjson", "cn"),
        ("number_for_string.ndjson", "cn"),
        ("truncated_last_line.ndjson", "cn"),
        ("null_required.ndjson", "cn"),
    ];
    let mut failures = Vec::new();
    for (file, conversation) in files {
        let queries = [
            "conversations --bot-id b1 --version LIVE --start 2024-03-01 --end 2024-03-04".to_owned(),
            "insights --bot-id b1 --version LIVE --start 2024-03-01 --end 2024-03-04 --stat num_messages".to_owned(),
            format!("flow --bot-id b1 --conversation-id {conversation} --version LIVE --start 2024-03-01 --end 2024-03-04"),
            "usage --team-id t1 --start 2024-03-01 --end 2024-03-04 --bucket 1d".to_owned(),
        ];
        for query in &queries {
            let args = with_input(split(query), &[&bad(file)]);
            let out = convostat(&args);
            let err = stderr(&out);
            let one_line = err.starts_with("error: ") && err.matches('\n').count() == 1;
            if out.status.code() != Some(1)
                || !one_line
                || !err.contains(file)
                || !out.stdout.is_empty()
            {
                failures.push(show(&args, &out));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} runs did not end in one data-error line naming the file:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A decoder panic is caught and reported, but the default panic hook
/// still prints `thread '…' panicked at …` (and a backtrace note) before
/// the `error: ` line: stderr is no longer one line (SPEC 7).
#[test]
fn a_decoder_panic_leaves_one_error_line() {
    // corrupt_page.parquet: a `bot_id` data page of the third row group is
    // damaged; negative_column_length.parquet: the footer gives the third
    // row group's `campaign_source` chunk a length of -128.
    for name in ["corrupt_page.parquet", "negative_column_length.parquet"] {
        let input = bad(name);
        let args = with_input(
            split("usage --team-id t1 --start 2024-03-01 --end 2024-11-01 --bucket 1d --group-by bot_id,language,campaign_source"),
            &[&input],
        );
        let out = convostat(&args);
        let line = assert_one_error_line(&args, &out, 1);
        assert!(line.contains(name), "{line}");
    }
}

/// Odd but valid inputs answer normally.
#[test]
fn odd_but_valid_inputs_answer() {
    let query = "usage --team-id t1 --start 2024-03-01 --end 2024-03-04 --bucket 1d";
    for file in ["zero_rows.parquet", "empty.ndjson"] {
        let args = with_input(split(query), &[&bad(file)]);
        let out = convostat(&args);
        assert_eq!(out.status.code(), Some(0), "{}", show(&args, &out));
        assert!(out.stderr.is_empty(), "{}", show(&args, &out));
    }
    // An empty file next to the fixture changes nothing.
    let case = golden_cases()
        .into_iter()
        .find(|(n, _)| n == "usage_by_bot_and_version.json")
        .unwrap()
        .1;
    let args = with_input(
        case_args(&case),
        &[
            &bad("empty.ndjson"),
            &events_parquet(),
            &bad("zero_rows.parquet"),
        ],
    );
    let out = convostat(&args);
    check_case("usage_by_bot_and_version", &case, &args, &out);
}

/// A value nested 100,000 levels deep in a known column: a data error, not
/// a stack overflow in the JSON decoder's (recursive) error path.
#[test]
fn deeply_nested_json_is_a_data_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let depth = 100_000;
    let head = r#"{"event_id":"n1","timestamp":"2024-03-01T10:00:00Z","bot_id":"b1","conversation_id":"c1","event_type":"message","team_id":"t1""#;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    // In an unknown key: refused as hostile, one error line naming the line.
    let unknown = dir.path().join("deep_unknown.ndjson");
    std::fs::write(&unknown, format!("{head},\"junk\":{nested}}}\n")).unwrap();
    let query = "usage --team-id t1 --start 2024-03-01 --end 2024-03-04 --bucket 1d";
    let args = with_input(split(query), &[&unknown]);
    let out = convostat(&args);
    let line = assert_one_error_line(&args, &out, 1);
    assert!(
        line.contains("line 1") && line.contains("nested deeper"),
        "{line}"
    );
    // In a known (string) column: a data error.
    let known = dir.path().join("deep_known.ndjson");
    std::fs::write(&known, format!("{head},\"language\":{nested}}}\n")).unwrap();
    let args = with_input(split(query), &[&known]);
    let out = convostat(&args);
    let line = assert_one_error_line(&args, &out, 1);
    assert!(line.contains("deep_known.ndjson"), "{line}");
}

fn generate(out: &Path, events: usize, seed: u64) {
    let args = vec![
        "generate".to_owned(),
        "--out".into(),
        out.display().to_string(),
        "--events".into(),
        events.to_string(),
        "--seed".into(),
        seed.to_string(),
    ];
    let run = convostat(&args);
    assert_eq!(run.status.code(), Some(0), "{}", show(&args, &run));
    assert!(run.stdout.is_empty(), "{}", show(&args, &run));
}

#[test]
fn generate_is_deterministic_per_seed() {
    let dir = tempfile::tempdir().unwrap();
    for ext in ["parquet", "ndjson"] {
        let a = dir.path().join(format!("a.{ext}"));
        let b = dir.path().join(format!("b.{ext}"));
        let c = dir.path().join(format!("c.{ext}"));
        generate(&a, 5000, 11);
        generate(&b, 5000, 11);
        generate(&c, 5000, 12);
        let (a, b, c) = (
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            std::fs::read(&c).unwrap(),
        );
        assert!(!a.is_empty());
        assert!(a == b, "{ext}: same seed, different bytes");
        assert!(a != c, "{ext}: different seeds, same bytes");
    }
    let ndjson = std::fs::read_to_string(dir.path().join("a.ndjson")).unwrap();
    assert_eq!(ndjson.lines().count(), 5000);
    // --seed defaults to a fixed value.
    let d = dir.path().join("d.ndjson");
    let e = dir.path().join("e.ndjson");
    for p in [&d, &e] {
        let out = convostat(["generate", "--out", p.to_str().unwrap(), "--events", "300"]);
        assert_eq!(out.status.code(), Some(0));
    }
    assert_eq!(std::fs::read(&d).unwrap(), std::fs::read(&e).unwrap());
}

#[test]
fn generate_to_an_unwritable_path_is_a_data_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/x.parquet");
    let args = vec![
        "generate".to_owned(),
        "--out".into(),
        path.display().to_string(),
        "--events".into(),
        "10".into(),
    ];
    let out = convostat(&args);
    let line = assert_one_error_line(&args, &out, 1);
    assert!(line.contains(&path.display().to_string()), "{line}");
}

/// What the generated NDJSON says about its conversations.
struct Generated {
    /// A conversation with transitions: (bot, conversation, version).
    flow: (String, String, String),
    /// Its transitions' count.
    flow_transitions: usize,
    /// A team, its bots and its conversations (bot, conversation).
    team: String,
    team_conversations: BTreeSet<(String, String)>,
    /// A bot of that team.
    bot: String,
}

fn inspect_generated(path: &Path) -> Generated {
    let text = std::fs::read_to_string(path).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let s = |e: &Value, k: &str| e[k].as_str().map(str::to_owned);
    // First event of each conversation: smallest (timestamp, event_id).
    // Timestamps are all `...Z` with millisecond precision, so text order
    // is time order.
    let mut first: BTreeMap<(String, String), (String, String, &Value)> = BTreeMap::new();
    let mut transitions: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for e in &events {
        let key = (s(e, "bot_id").unwrap(), s(e, "conversation_id").unwrap());
        let order = (s(e, "timestamp").unwrap(), s(e, "event_id").unwrap());
        let entry = first
            .entry(key.clone())
            .or_insert((order.0.clone(), order.1.clone(), e));
        if (order.0.as_str(), order.1.as_str()) < (entry.0.as_str(), entry.1.as_str()) {
            *entry = (order.0, order.1, e);
        }
        if e["event_type"] == "transition" {
            transitions
                .entry(key)
                .or_default()
                .insert(s(e, "event_id").unwrap());
        }
    }
    let ((bot, conversation), ids) = transitions
        .iter()
        .filter(|(key, _)| first[*key].2["bot_version"].is_string())
        .max_by_key(|(_, ids)| ids.len())
        .expect("the generated data has transitions");
    let version = s(first[&(bot.clone(), conversation.clone())].2, "bot_version").unwrap();
    let team = s(first[&(bot.clone(), conversation.clone())].2, "team_id").unwrap();
    let team_conversations = first
        .iter()
        .filter(|(_, (_, _, e))| s(e, "team_id").as_deref() == Some(team.as_str()))
        .map(|(k, _)| k.clone())
        .collect();
    Generated {
        flow: (bot.clone(), conversation.clone(), version),
        flow_transitions: ids.len(),
        team,
        team_conversations,
        bot: bot.clone(),
    }
}

#[test]
fn generated_data_round_trips_through_every_query() {
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("gen.parquet");
    let ndjson = dir.path().join("gen.ndjson");
    generate(&parquet, 5000, 3);
    generate(&ndjson, 5000, 3);
    let g = inspect_generated(&ndjson);
    let (fbot, fconv, fversion) = &g.flow;
    let range = "--start 2024-01-01 --end 2024-05-01";
    let queries: Vec<String> = vec![
        format!("conversations --bot-id {} --version LIVE {range} --bucket 1w --group-by channel_type", g.bot),
        format!("conversations --bot-id {} --version LIVE {range} --bucket 1d --tz Europe/Brussels --language en,nl", g.bot),
        format!("insights --bot-id {} --version LIVE {range} --stat num_conversations", g.bot),
        format!("insights --bot-id {} --version LIVE {range} --bucket 1m --stat duration_seconds --aggregate p95 --group-by language", g.bot),
        format!("insights --bot-id {} --version LIVE {range} --bucket 1m --stat num_messages --aggregate sum", g.bot),
        format!("flow --bot-id {fbot} --conversation-id {fconv} --version {fversion} --start 2020-01-01 --end 2030-01-01"),
        format!("usage --team-id {} {range} --bucket 1m", g.team),
        format!("usage --team-id {} {range} --bucket 1h --group-by bot_id,bot_version,team_id,channel_type,language,campaign_id,campaign_source", g.team),
    ];
    for query in &queries {
        let mut answers = Vec::new();
        for input in [&parquet, &ndjson] {
            let args = with_input(split(query), &[input]);
            let out = convostat(&args);
            assert_eq!(out.status.code(), Some(0), "{}", show(&args, &out));
            let answer: Value = serde_json::from_str(&stdout(&out)).unwrap();
            answers.push(answer);
        }
        assert_eq!(answers[0], answers[1], "parquet vs ndjson: {query}");
    }
    // Cross-checks against the NDJSON itself.
    let flow = convostat(with_input(split(&queries[5]), &[&ndjson]));
    let flow: Value = serde_json::from_str(&stdout(&flow)).unwrap();
    assert_eq!(
        flow["transitions"].as_array().unwrap().len(),
        g.flow_transitions
    );
    let usage = convostat(with_input(split(&queries[6]), &[&parquet]));
    let usage: Value = serde_json::from_str(&stdout(&usage)).unwrap();
    assert_eq!(
        usage["data"]["series"][0]["sum"].as_u64().unwrap(),
        g.team_conversations.len() as u64,
        "every conversation of {} starts in 2024-01..04",
        g.team
    );
}

#[test]
fn demo_prints_all_four_query_kinds() {
    let args = vec!["demo".to_owned(), "--events".into(), "20000".into()];
    let out = convostat(&args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&args, &out));
    let text = stdout(&out);
    for kind in ["== conversations:", "== insights:", "== usage:", "== flow:"] {
        assert!(
            text.contains(kind),
            "`{kind}` missing: {}",
            show(&args, &out)
        );
    }
    assert!(text.contains("generated 20000 synthetic events"), "{text}");
}

/// Runs the binary with a time limit; `None` when it had to be killed.
fn convostat_with_timeout(args: &[String], limit: std::time::Duration) -> Option<Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_convostat"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A directory input whose tree contains symlinks back to itself: every
/// file is still read (at most a bounded number of times) and the answer
/// is the single file's. A walk following directory symlinks would, with
/// two links to `.`, visit 2^40 paths (until the kernel's 40-symlink
/// limit), growing to many GB of memory.
#[cfg(unix)]
#[test]
fn a_directory_with_symlink_cycles_terminates() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("events");
    std::fs::create_dir(&root).unwrap();
    std::fs::copy(events_ndjson(), root.join("a.ndjson")).unwrap();
    std::os::unix::fs::symlink(".", root.join("self")).unwrap();
    std::os::unix::fs::symlink("..", root.join("up")).unwrap();
    let case = golden_cases()
        .into_iter()
        .find(|(n, _)| n == "usage_by_bot_and_version.json")
        .unwrap()
        .1;
    let args = with_input(case_args(&case), &[&root]);
    let out = convostat_with_timeout(&args, std::time::Duration::from_secs(10))
        .unwrap_or_else(|| panic!("convostat {} ran for 10 s", args.join(" ")));
    check_case("usage_by_bot_and_version", &case, &args, &out);
}

/// A bad file inside a directory input fails the run, naming that file.
#[test]
fn a_bad_file_inside_a_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::copy(events_parquet(), dir.path().join("a.parquet")).unwrap();
    for name in ["truncated.parquet", "bad_timestamp.ndjson"] {
        let target = dir.path().join("sub").join(name);
        std::fs::copy(bad(name), &target).unwrap();
        let args = with_input(
            split("usage --team-id t1 --start 2024-03-01 --end 2024-03-04 --bucket 1d"),
            &[dir.path()],
        );
        let out = convostat(&args);
        let line = assert_one_error_line(&args, &out, 1);
        assert!(line.contains(&target.display().to_string()), "{line}");
        std::fs::remove_file(&target).unwrap();
    }
}

/// `generate` picks NDJSON for `.ndjson` / `.jsonl` in any case
/// (`x.NDJSON`), but `--input` only recognises lower-case extensions: the
/// generated `x.NDJSON` is then read as Parquet ("Corrupt footer"), and
/// inside a directory it is silently skipped (an empty data set).
#[test]
fn generated_files_with_upper_case_extensions_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let upper = dir.path().join("sub").join("GEN.NDJSON");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    generate(&upper, 500, 5);
    let lower = dir.path().join("gen.ndjson");
    generate(&lower, 500, 5);
    assert_eq!(
        std::fs::read(&upper).unwrap(),
        std::fs::read(&lower).unwrap()
    );
    let query = "usage --team-id team-acme --start 2024-01-01 --end 2024-05-01 --bucket 1m";
    let expected = convostat(with_input(split(query), &[&lower]));
    assert_eq!(expected.status.code(), Some(0));
    for input in [upper.as_path(), dir.path().join("sub").as_path()] {
        let args = with_input(split(query), &[input]);
        let out = convostat(&args);
        assert_eq!(out.status.code(), Some(0), "{}", show(&args, &out));
        assert_eq!(out.stdout, expected.stdout, "{}", show(&args, &out));
    }
}
