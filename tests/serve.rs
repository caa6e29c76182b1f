//! `convostat serve` over real loopback HTTP (SPEC 8).
//!
//! Every test starts the built binary on `127.0.0.1:0`, reads its
//! `listening on` line and talks HTTP/1.1 to it through a minimal client
//! written here (one request per connection), which can also send what a
//! polite client would not: bad percent-encoding, half a body, a body
//! larger than announced. A [`Served`] guard kills the process when a test
//! ends, also on failure.
//!
//! Covered: every route and status code of SPEC 8, bodies byte-identical
//! to the CLI's stdout over the golden cases, ingest atomicity (NDJSON and
//! Arrow IPC), concurrent queries and posts against a single-threaded
//! engine, overload (429) and timeout (503), graceful SIGTERM, the
//! start-up refusals, and `serve --data` killed (SIGKILL) during ingest
//! and recovery without losing an acknowledged POST, with one client or
//! three at once (NDJSON and Arrow), a POST in flight all there or absent.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convostat::{Engine, Params, Query};
use serde_json::Value;

mod common;
use common::crash_image;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn events_ndjson() -> PathBuf {
    fixtures().join("events.ndjson")
}

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_convostat"));
    cmd.env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    cmd
}

// ---------------------------------------------------------------- server

/// A running server; killed on drop.
struct Served {
    child: Child,
    addr: SocketAddr,
    _dir: Option<tempfile::TempDir>,
}

impl Served {
    /// Starts `convostat serve ARGS --listen 127.0.0.1:0` and waits for its
    /// `listening on` line.
    fn start(args: &[&str]) -> Self {
        Self::start_with(args, None)
    }

    fn start_with(args: &[&str], dir: Option<tempfile::TempDir>) -> Self {
        Self::start_listening("127.0.0.1:0", args, dir)
    }

    /// Starts `convostat serve ARGS --listen LISTEN`.
    fn start_listening(listen: &str, args: &[&str], dir: Option<tempfile::TempDir>) -> Self {
        let mut child = binary()
            .arg("serve")
            .args(["--listen", listen])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("convostat serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim_end()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("unexpected first line {line:?}")
            })
            .parse()
            .expect("HOST:PORT");
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    /// A server with a reader and a writer account (secret `pw` each).
    fn with_accounts(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("accounts");
        std::fs::write(&creds, accounts_file()).unwrap();
        let creds = creds.display().to_string();
        let mut args = vec!["--credentials", creds.as_str()];
        args.extend_from_slice(extra);
        Self::start_with(&args, Some(dir))
    }

    fn get(&self, target: &str, auth: Option<&str>) -> Reply {
        self.send("GET", target, auth, &[], b"")
    }

    fn post(&self, target: &str, auth: Option<&str>, content_type: &str, body: &[u8]) -> Reply {
        self.send(
            "POST",
            target,
            auth,
            &[("Content-Type", content_type)],
            body,
        )
    }

    fn send(
        &self,
        method: &str,
        target: &str,
        auth: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(auth) = auth {
            head.push_str(&format!(
                "Authorization: Basic {}\r\n",
                base64(auth.as_bytes())
            ));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream.write_all(head.as_bytes()).unwrap();
        // The server may answer (413) before reading the whole body.
        let _ = stream.write_all(body);
        read_reply(&mut stream)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `reader` (role read) and `writer` (role write), both with secret `pw`,
/// hashed by `convostat hash-secret`.
fn accounts_file() -> String {
    static FILE: Mutex<Option<String>> = Mutex::new(None);
    let mut file = FILE.lock().unwrap();
    file.get_or_insert_with(|| {
        let mut child = binary()
            .arg("hash-secret")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let phc = String::from_utf8(out.stdout).unwrap();
        let phc = phc.trim_end();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        format!("# test accounts\nreader:read:{phc}\n\nwriter:write:{phc}\n")
    })
    .clone()
}

const READER: Option<&str> = Some("reader:pw");
const WRITER: Option<&str> = Some("writer:pw");

// ---------------------------------------------------------------- client

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts a google.rpc.Status answer and returns its message.
    fn status_body(&self, status: u16, code: i64) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"));
        let v = self.json();
        assert_eq!(v["code"], code, "{v}");
        assert_eq!(v["details"], serde_json::json!([]), "{v}");
        let message = v["message"].as_str().unwrap().to_owned();
        assert!(!message.contains('\n'));
        message
    }
}

fn read_reply(stream: &mut TcpStream) -> Reply {
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the reply");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 4 + size..];
    }
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Percent-encodes a query or path component.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The HTTP target of a query: path parameters in the path, the others in
/// the query string.
fn target(kind: &str, params: &BTreeMap<String, String>) -> String {
    let p = |name: &str| enc(params.get(name).map_or("", String::as_str));
    let path = match kind {
        "conversations" => format!("/v1/bots/{}/conversations", p("bot_id")),
        "insights" => format!("/v1/bots/{}/conversations/insights", p("bot_id")),
        "flow" => format!(
            "/v1/bots/{}/conversations/{}/flow",
            p("bot_id"),
            p("conversation_id")
        ),
        "usage" => format!("/v1/teams/{}/conversations", p("team_id")),
        other => panic!("unknown kind {other}"),
    };
    let query: Vec<String> = params
        .iter()
        .filter(|(k, _)| !["bot_id", "conversation_id", "team_id"].contains(&k.as_str()))
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    format!("{path}?{}", query.join("&"))
}

const DAYS: &str = "version=LIVE&start_time=2024-03-01&end_time=2024-03-06";

// ---------------------------------------------------------------- tests

/// The server runs without transparent huge pages from before its first
/// allocation (`src/main.rs`): not one 2 MiB page is mapped, even the
/// allocator's first, which Rust's runtime makes before `main`.
#[cfg(target_os = "linux")]
#[test]
fn serve_maps_no_huge_page() {
    let server = Served::start(&["--no-auth"]);
    let proc = |file: &str| std::fs::read_to_string(format!("/proc/{}/{file}", server.pid()));
    let field = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    let status = proc("status").unwrap();
    // (Kernels before 5.0 show neither line.)
    if let Some(enabled) = field(&status, "THP_enabled:") {
        assert_eq!(enabled, "0");
    }
    if let Ok(rollup) = proc("smaps_rollup") {
        assert_eq!(field(&rollup, "AnonHugePages:").as_deref(), Some("0"));
    }
}

/// A host name is resolved (the executable links glibc statically where it
/// can, `build.rs`, and looks names up through glibc's name service).
#[test]
fn serve_listens_on_a_host_name() {
    let server = Served::start_listening("localhost:0", &["--no-auth"], None);
    assert!(server.addr.ip().is_loopback(), "{}", server.addr);
    assert_eq!(server.get("/healthz", None).status, 200);
}

#[test]
fn every_route_and_status_code() {
    let input = events_ndjson().display().to_string();
    let server = Served::with_accounts(&["--input", &input, "--max-body", "4096"]);
    let conversations = format!("/v1/bots/b1/conversations?{DAYS}");

    // Operations need no credentials.
    let health = server.get("/healthz", None);
    assert_eq!(health.status, 200);
    let openapi = server.get("/openapi.json", None);
    assert_eq!(openapi.status, 200);
    assert!(openapi.json()["paths"]["/v1/events"]["post"].is_object());

    // 401 with the challenge: no, malformed, wrong and unknown credentials.
    for auth in [None, Some("reader:nope"), Some("nobody:pw"), Some("reader")] {
        let reply = server.get(&conversations, auth);
        reply.status_body(401, 16);
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Basic realm=\"convostat\"")
        );
    }
    let reply = server.send(
        "GET",
        &conversations,
        None,
        &[("Authorization", "Bearer abc")],
        b"",
    );
    reply.status_body(401, 16);

    // 200 for both roles on the four GET routes.
    let targets = [
        conversations.clone(),
        format!("/v1/bots/b1/conversations/insights?{DAYS}&stat=duration_seconds&aggregate=max"),
        "/v1/bots/b1/conversations/c1/flow?version=LIVE&start_time=2024-03-01&end_time=2024-03-02"
            .to_owned(),
        "/v1/teams/t1/conversations?start_time=2024-03-01&end_time=2024-03-06&bucket=1d".to_owned(),
    ];
    for t in &targets {
        for auth in [READER, WRITER] {
            let reply = server.get(t, auth);
            assert_eq!(reply.status, 200, "{t}: {}", reply.text());
            assert_eq!(reply.header("content-type"), Some("application/json"));
            assert!(reply.body.ends_with(b"}\n"));
        }
    }

    // 403: a read account posting.
    let line = b"{\"event_id\":\"x1\",\"timestamp\":\"2024-03-01T10:00:00Z\",\"bot_id\":\"b9\",\"conversation_id\":\"c1\",\"event_type\":\"message\"}\n";
    let msg = server
        .post("/v1/events", READER, "application/x-ndjson", line)
        .status_body(403, 7);
    assert!(msg.contains("reader"), "{msg}");

    // 405: a known route with the wrong method.
    let reply = server.send("DELETE", "/v1/events", WRITER, &[], b"");
    reply.status_body(405, 12);
    server.get("/v1/events", WRITER).status_body(405, 12);
    server
        .post(&conversations, WRITER, "application/x-ndjson", line)
        .status_body(405, 12);

    // 415: no or another media type.
    server
        .send("POST", "/v1/events", WRITER, &[], line)
        .status_body(415, 3);
    server
        .post("/v1/events", WRITER, "application/json", line)
        .status_body(415, 3);

    // 413: over --max-body, announced or not.
    let big = line.repeat(64);
    let msg = server
        .post("/v1/events", WRITER, "application/x-ndjson", &big)
        .status_body(413, 8);
    assert!(msg.contains("4096"), "{msg}");

    // 404: unknown routes and an unknown conversation.
    server.get("/", None).status_body(404, 5);
    server.get("/v1/nope", WRITER).status_body(404, 5);
    server.get("/v1/bots/b1", WRITER).status_body(404, 5);
    let msg = server
        .get(
            "/v1/bots/b1/conversations/nope/flow?version=LIVE&start_time=2024-03-01&end_time=2024-03-02",
            READER,
        )
        .status_body(404, 5);
    assert_eq!(
        msg,
        "not found: conversation `nope` of bot `b1` with version `LIVE`"
    );

    // 400: invalid queries, bad encodings, bad bodies.
    let bad = [
        format!("{conversations}&bucket=2d"),
        format!("{conversations}&version=DRAFT"), // repeated, not a list
        format!("{conversations}&bot_id=b2"),     // path parameter again
        format!("{conversations}&colour=red"),    // unknown
        "/v1/bots/b1/conversations?version=LIVE".to_owned(),
        format!("{conversations}&tz=%zz"),
        format!("{conversations}&tz=%FF"),
        format!("/v1/bots/%FF/conversations?{DAYS}"),
        format!("/v1/bots/b1/conversations/insights?{DAYS}&stat=num_conversations&aggregate=p50"),
    ];
    for t in &bad {
        let msg = server.get(t, READER).status_body(400, 3);
        assert!(!msg.is_empty(), "{t}");
    }
    let msg = server
        .get(&format!("{conversations}&bucket=2d"), READER)
        .status_body(400, 3);
    assert!(msg.starts_with("invalid query: `bucket`"), "{msg}");
    let msg = server
        .post("/v1/events", WRITER, "application/x-ndjson", b"{not json\n")
        .status_body(400, 3);
    assert!(msg.starts_with("data error"), "{msg}");
    server
        .post(
            "/v1/events?mode=loose",
            WRITER,
            "application/x-ndjson",
            line,
        )
        .status_body(400, 3);
    server
        .post(
            "/v1/events",
            WRITER,
            "application/vnd.apache.arrow.stream",
            b"garbage",
        )
        .status_body(400, 3);

    // 200 for a write account posting.
    let reply = server.post("/v1/events", WRITER, "application/x-ndjson", line);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.text(),
        "{\"accepted\":1,\"duplicates\":0,\"skipped\":{}}\n"
    );

    // Metrics count by route template.
    let metrics = server.get("/metrics", None);
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    assert!(text.contains("convostat_events 26\n"), "{text}");
    assert!(text.contains("convostat_conversations "), "{text}");
    assert!(
        text.contains("convostat_http_requests_total{route=\"/v1/bots/{bot_id}/conversations\",code=\"200\"} 2\n"),
        "{text}"
    );
    assert!(text.contains("convostat_http_requests_total{route=\"unmatched\",code=\"404\"}"));
    assert!(text.contains(
        "convostat_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 1\n"
    ));
}

/// Every golden case, over HTTP and through the CLI on the same data: the
/// body equals the CLI's stdout byte for byte; an error's message equals
/// the CLI's error line.
#[test]
fn bodies_are_the_cli_stdout() {
    let input = events_ndjson();
    let server = Served::start(&["--no-auth", "--input", &input.display().to_string()]);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures().join("expected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let mut compared = 0;
    for path in paths {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let kind = case["query"].as_str().unwrap();
        let params: BTreeMap<String, String> = case["params"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let path_param = if kind == "usage" { "team_id" } else { "bot_id" };
        if params.get(path_param).is_none_or(|v| v.is_empty())
            || (kind == "flow" && params.get("conversation_id").is_none_or(|v| v.is_empty()))
        {
            continue; // no URL for a missing path parameter
        }
        let mut cli = binary();
        cli.arg(kind);
        for (k, v) in &params {
            cli.arg(format!(
                "--{}",
                k.replace('_', "-")
                    .replace("start-time", "start")
                    .replace("end-time", "end")
            ));
            cli.arg(v);
        }
        let out = cli.arg("--input").arg(&input).output().unwrap();
        let reply = server.get(&target(kind, &params), None);
        if out.status.success() {
            assert_eq!(reply.status, 200, "{}: {}", path.display(), reply.text());
            assert_eq!(reply.body, out.stdout, "{}", path.display());
        } else {
            let line = String::from_utf8(out.stderr).unwrap();
            let line = line.trim_end().strip_prefix("error: ").unwrap().to_owned();
            let (status, code) = if out.status.code() == Some(3) {
                (404, 5)
            } else {
                (400, 3)
            };
            assert_eq!(reply.status_body(status, code), line, "{}", path.display());
        }
        compared += 1;
    }
    assert!(compared >= 40, "only {compared} cases compared");

    // List parameters: repeated, comma-separated or both give the CLI's answer.
    let cli = binary()
        .args(["conversations", "--bot-id", "b1", "--version", "LIVE"])
        .args(["--start", "2024-03-01", "--end", "2024-03-06"])
        .args([
            "--channel-type",
            "web,whatsapp,voice",
            "--group-by",
            "channel_type",
        ])
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert!(cli.status.success());
    for list in [
        "channel_type=web,whatsapp,voice",
        "channel_type=web&channel_type=whatsapp&channel_type=voice",
        "channel_type=web%2Cwhatsapp&channel_type=voice",
    ] {
        let reply = server.get(
            &format!("/v1/bots/b1/conversations?{DAYS}&{list}&group_by=channel_type"),
            None,
        );
        assert_eq!(reply.body, cli.stdout, "{list}");
    }
}

/// NDJSON events as an Arrow IPC stream, one batch per 10 lines.
fn arrow_stream(ndjson: &[u8]) -> Vec<u8> {
    arrow_stream_of(ndjson, 10)
}

/// NDJSON events as an Arrow IPC stream, in batches of `rows` lines at
/// most. (Each batch of a stream carries its string columns' whole
/// buffers: many small slices of one large batch make a large body.)
fn arrow_stream_of(ndjson: &[u8], rows: usize) -> Vec<u8> {
    let batches = Mutex::new(Vec::new());
    convostat::ingest::ndjson::read_ndjson(ndjson, |batch, _| {
        batches.lock().unwrap().push(batch);
        Ok(())
    })
    .unwrap();
    let batches = batches.into_inner().unwrap();
    let schema = batches[0].schema();
    let mut out = Vec::new();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut out, &schema).unwrap();
    for batch in &batches {
        for start in (0..batch.num_rows()).step_by(rows) {
            let len = rows.min(batch.num_rows() - start);
            writer.write(&batch.slice(start, len)).unwrap();
        }
    }
    writer.finish().unwrap();
    drop(writer);
    out
}

#[test]
fn ingest_is_all_or_nothing_and_visible_to_the_next_query() {
    let server = Served::start(&["--no-auth"]);
    let query = format!("/v1/bots/b1/conversations?{DAYS}&group_by=language");
    let empty = server.get(&query, None).body;
    let fixture = std::fs::read(events_ndjson()).unwrap();

    // A body with one bad line in strict mode changes nothing.
    let mut bad = fixture.clone();
    bad.extend_from_slice(
        b"{\"event_id\":\"z1\",\"timestamp\":\"2024-03-01T10:00:00Z\",\"bot_id\":null,\"conversation_id\":\"c1\",\"event_type\":\"message\"}\n",
    );
    let msg = server
        .post("/v1/events", None, "application/x-ndjson", &bad)
        .status_body(400, 3);
    assert!(msg.contains("bot_id"), "{msg}");
    assert_eq!(server.get(&query, None).body, empty);
    let stats = server.get("/metrics", None).text();
    assert!(stats.contains("convostat_events 0\n"));

    // Lenient mode skips that line and says why.
    let reply = server.post(
        "/v1/events?mode=lenient",
        None,
        "application/x-ndjson",
        &bad,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json(),
        serde_json::json!({"accepted": 25, "duplicates": 1, "skipped": {"null bot_id": 1}})
    );
    let engine = Engine::new();
    engine.ingest_ndjson(&fixture[..]).unwrap();
    let params = Params::new([
        ("bot_id", "b1"),
        ("version", "LIVE"),
        ("start_time", "2024-03-01"),
        ("end_time", "2024-03-06"),
        ("group_by", "language"),
    ])
    .unwrap();
    let expected = engine
        .query(&Query::from_params("conversations", &params).unwrap())
        .unwrap()
        .to_json()
        + "\n";
    assert_eq!(server.get(&query, None).text(), expected);

    // A re-post counts as duplicates, as NDJSON and as Arrow (the fixture
    // has 26 lines, one a duplicate).
    let reply = server.post("/v1/events", None, "application/x-ndjson", &fixture);
    assert_eq!(
        reply.json(),
        serde_json::json!({"accepted": 0, "duplicates": 26, "skipped": {}})
    );
    let arrow = arrow_stream(&fixture);
    let reply = server.post(
        "/v1/events",
        None,
        "application/vnd.apache.arrow.stream",
        &arrow,
    );
    assert_eq!(
        reply.json(),
        serde_json::json!({"accepted": 0, "duplicates": 26, "skipped": {}})
    );
    assert_eq!(server.get(&query, None).text(), expected);

    // Arrow into a fresh server gives the same answers as NDJSON.
    let other = Served::start(&["--no-auth"]);
    let reply = other.post(
        "/v1/events",
        None,
        "application/vnd.apache.arrow.stream; charset=binary",
        &arrow,
    );
    assert_eq!(
        reply.json(),
        serde_json::json!({"accepted": 25, "duplicates": 1, "skipped": {}})
    );
    assert_eq!(other.get(&query, None).text(), expected);

    // A truncated Arrow stream is rejected whole.
    let third = Served::start(&["--no-auth"]);
    third
        .post(
            "/v1/events",
            None,
            "application/vnd.apache.arrow.stream",
            &arrow[..arrow.len() * 2 / 3],
        )
        .status_body(400, 3);
    assert_eq!(third.get(&query, None).body, empty);
}

/// 32 clients query the four routes while 2 post events for 5 s: nothing
/// fails, and the final answers are a single-threaded engine's.
#[test]
fn concurrent_queries_and_posts_agree_with_a_single_threaded_engine() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    convostat::generate::write_ndjson(
        &file,
        &convostat::generate::GeneratorConfig::new(60_000, 11),
    )
    .unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let chunks: Vec<String> = lines.chunks(1_000).map(|c| c.join("\n") + "\n").collect();
    // A conversation with a transition, for the flow route.
    let (bot, conv, version) = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["event_type"] == "transition" && v["bot_version"].is_string())
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap().to_owned();
            (s("bot_id"), s("conversation_id"), s("bot_version"))
        })
        .unwrap();

    let server = Arc::new(Served::start(&["--no-auth"]));
    let range = "start_time=2024-01-01&end_time=2024-05-01";
    let targets = Arc::new(vec![
        format!("/v1/bots/bot-acme-support/conversations?version=LIVE&{range}&bucket=1w&group_by=channel_type"),
        format!("/v1/bots/bot-acme-support/conversations/insights?version=LIVE&{range}&bucket=1m&stat=duration_seconds&aggregate=p95"),
        format!("/v1/bots/{}/conversations/{}/flow?version={}&{range}", enc(&bot), enc(&conv), enc(&version)),
        format!("/v1/teams/team-acme/conversations?{range}&bucket=1m&group_by=bot_id,channel_type"),
    ]);
    let posting = Arc::new(AtomicBool::new(true));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let requests = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let chunks = Arc::new(chunks);
    let posters: Vec<_> = (0..2)
        .map(|p| {
            let (server, chunks, failures) = (server.clone(), chunks.clone(), failures.clone());
            std::thread::spawn(move || {
                // Each poster sends its half, then both re-send everything
                // (duplicates) until 5 s have passed.
                let mut i = p;
                while i < chunks.len() || started.elapsed() < Duration::from_secs(5) {
                    let chunk = &chunks[i % chunks.len()];
                    let reply =
                        server.post("/v1/events", None, "application/x-ndjson", chunk.as_bytes());
                    if reply.status != 200 {
                        failures.lock().unwrap().push(format!(
                            "POST: {} {}",
                            reply.status,
                            reply.text()
                        ));
                    }
                    i += 2;
                }
            })
        })
        .collect();
    let clients: Vec<_> = (0..32)
        .map(|c| {
            let (server, targets, posting, failures, requests) = (
                server.clone(),
                targets.clone(),
                posting.clone(),
                failures.clone(),
                requests.clone(),
            );
            std::thread::spawn(move || {
                let mut i = c;
                while posting.load(Ordering::Relaxed) {
                    let t = &targets[i % targets.len()];
                    let reply = server.get(t, None);
                    // Flow is 404 until its conversation has arrived.
                    let flow_not_yet = reply.status == 404 && t.contains("/flow");
                    if reply.status != 200 && !flow_not_yet {
                        failures.lock().unwrap().push(format!(
                            "GET {t}: {} {}",
                            reply.status,
                            reply.text()
                        ));
                    }
                    requests.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    for p in posters {
        p.join().unwrap();
    }
    posting.store(false, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert!(started.elapsed() >= Duration::from_secs(5));
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(requests.load(Ordering::Relaxed) > 32, "too few queries ran");

    let engine = Engine::new();
    engine.ingest_ndjson(text.as_bytes()).unwrap();
    for t in targets.iter() {
        let reply = server.get(t, None);
        assert_eq!(reply.status, 200, "{t}");
        let (path, query) = t.split_once('?').unwrap();
        let segments: Vec<&str> = path.split('/').collect();
        let mut params: Vec<(String, String)> = query
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), decode(v))
            })
            .collect();
        let kind = match (segments[2], segments.last().copied()) {
            ("teams", _) => {
                params.push(("team_id".into(), segments[3].into()));
                "usage"
            }
            (_, Some("insights")) => {
                params.push(("bot_id".into(), segments[3].into()));
                "insights"
            }
            (_, Some("flow")) => {
                params.push(("bot_id".into(), decode(segments[3])));
                params.push(("conversation_id".into(), decode(segments[5])));
                "flow"
            }
            _ => {
                params.push(("bot_id".into(), segments[3].into()));
                "conversations"
            }
        };
        let query = Query::from_params(kind, &Params::new(params).unwrap()).unwrap();
        assert_eq!(
            reply.text(),
            engine.query(&query).unwrap().to_json() + "\n",
            "{t}"
        );
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(
                u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap(), 16).unwrap(),
            );
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Beyond `--max-in-flight` a request is answered 429 at once, not queued.
#[test]
fn overload_is_answered_429() {
    // Without the answer cache, every query needs the one slot.
    let server = Served::start(&["--no-auth", "--max-in-flight", "1", "--answer-cache", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    convostat::generate::write_ndjson(
        &file,
        &convostat::generate::GeneratorConfig::new(150_000, 3),
    )
    .unwrap();
    let body = std::fs::read(&file).unwrap();
    let server = Arc::new(server);
    let poster = {
        let server = server.clone();
        std::thread::spawn(move || loop {
            // The poster too may find the one slot taken by a query.
            let reply = server.post("/v1/events", None, "application/x-ndjson", &body);
            if reply.status != 429 {
                return reply;
            }
        })
    };
    let mut statuses = BTreeMap::new();
    let mut message = String::new();
    while !poster.is_finished() {
        let reply = server.get(&format!("/v1/bots/b1/conversations?{DAYS}"), None);
        if reply.status == 429 {
            message = reply.status_body(429, 8);
        }
        *statuses.entry(reply.status).or_insert(0) += 1;
    }
    assert_eq!(poster.join().unwrap().status, 200);
    assert!(
        statuses.contains_key(&429),
        "no 429 while ingesting: {statuses:?}"
    );
    assert!(message.contains("retry"), "{message}");
    // Health stays answered without the work pool.
    assert_eq!(server.get("/healthz", None).status, 200);
}

/// A request that takes longer than `--timeout` is answered 503.
#[test]
fn slow_requests_time_out_with_503() {
    let server = Served::start(&["--no-auth", "--timeout", "1"]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    // Announce a body and never send it.
    write!(
        stream,
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{"
    )
    .unwrap();
    let started = Instant::now();
    let reply = read_reply(&mut stream);
    assert!(started.elapsed() < Duration::from_secs(20));
    reply.status_body(503, 14);
}

/// SIGTERM while a request is in flight: it completes, and the process
/// exits 0.
#[test]
fn sigterm_finishes_requests_in_flight_and_exits_0() {
    let mut server = Served::start(&["--no-auth"]);
    let body = std::fs::read(events_ndjson()).unwrap();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..body.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let kill = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body[body.len() / 2..]).unwrap();
    let reply = read_reply(&mut stream);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["accepted"], 25);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn refuses_to_start_without_credentials_or_with_bad_inputs() {
    let run = |args: &[&str]| {
        let out = binary().arg("serve").args(args).output().unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            out.stdout.is_empty(),
            "{:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: "), "{err}");
        (out.status.code(), err)
    };
    let (code, err) = run(&["--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--credentials"), "{err}");
    let (code, err) = run(&["--no-auth", "--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("loopback"), "{err}");
    let (code, _) = run(&["--no-auth", "--credentials", "x", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(2));

    // A bad credentials file is a data error naming file and line.
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("accounts");
    std::fs::write(
        &creds,
        "ana:admin:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA\n",
    )
    .unwrap();
    let (code, err) = run(&[
        "--credentials",
        &creds.display().to_string(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("line 1") && err.contains("admin"), "{err}");

    // A bad input stops the start with the CLI's message and status.
    for bad in [
        "bad_magic.parquet",
        "bad_timestamp.ndjson",
        "missing.ndjson",
    ] {
        let path = fixtures().join("bad").join(bad).display().to_string();
        let (code, err) = run(&["--no-auth", "--listen", "127.0.0.1:0", "--input", &path]);
        let cli = binary()
            .args(["conversations", "--bot-id", "b1", "--version", "LIVE"])
            .args([
                "--start",
                "2024-03-01",
                "--end",
                "2024-03-02",
                "--input",
                &path,
            ])
            .output()
            .unwrap();
        assert_eq!(code, cli.status.code(), "{bad}: {err}");
        assert_eq!(code, Some(1), "{bad}: {err}");
    }

    // An empty secret is refused.
    let mut child = binary()
        .arg("hash-secret")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

// ------------------------------------------------------- durable serving

/// The events count of `/metrics` (`convostat_events N`).
fn events_metric(server: &Served) -> u64 {
    let text = server.get("/metrics", None).text();
    text.lines()
        .find_map(|l| l.strip_prefix("convostat_events "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no convostat_events in {text}"))
}

/// `events` generated events (seed `seed`) as NDJSON, through a file in
/// `dir` as the generator writes it.
fn generated_ndjson(dir: &Path, events: usize, seed: u64) -> String {
    let file = dir.join("events.ndjson");
    convostat::generate::write_ndjson(
        &file,
        &convostat::generate::GeneratorConfig::new(events, seed),
    )
    .unwrap();
    std::fs::read_to_string(&file).unwrap()
}

/// A xorshift generator of numbers below `n`, seeded from the clock (the
/// seed is printed, to replay a failing run).
fn kill_random() -> impl FnMut(u64) -> u64 {
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    eprintln!("kill seed {seed}");
    move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}

/// Starts `serve ARGS` and kills it (SIGKILL) after `ms` milliseconds:
/// during start-up, while it recovers, before it listens.
fn kill_during_start_up(args: &[&str], ms: u64) {
    let mut child = binary()
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Starts `serve ARGS`, its automatic checkpoints taken in place (holding
/// ingest) or from a copy of the store.
fn start_checkpointing(args: &[&str], in_place: bool) -> Served {
    let extra: &[&str] = if in_place {
        &["--checkpoint-in-place"]
    } else {
        &[]
    };
    Served::start(&[args, extra].concat())
}

/// `serve --data`: a POST answered 200 survives SIGKILL. Posters send
/// chunks of generated events (with duplicates across chunks) while the
/// server is killed at random moments, some of them during recovery,
/// before it even listens. After each restart every acknowledged chunk is
/// present, and the chunk in flight is wholly present or absent; the
/// client then re-posts it, as a client does without an answer. At the
/// end every answer equals a single-threaded engine fed every chunk.
#[test]
fn serve_data_survives_sigkill_during_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    let text = generated_ndjson(dir.path(), 30_000, 17);
    let lines: Vec<&str> = text.lines().collect();
    // Overlapping chunks: each repeats the last 50 lines of the previous.
    // Every fifth holds 8,000 lines, whose log record (over 256 KiB) is
    // written by a thread of its own while the call's ids are claimed.
    let mut chunks: Vec<String> = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let size = if chunks.len() % 5 == 4 { 8_000 } else { 500 };
        let end = (at + size).min(lines.len());
        chunks.push(lines[at.saturating_sub(50)..end].join("\n") + "\n");
        at = end;
    }
    let engine_of = |n: usize| {
        let engine = Engine::new();
        for chunk in &chunks[..n] {
            engine.ingest_ndjson(chunk.as_bytes()).unwrap();
        }
        engine
    };
    let mut random = kill_random();
    // A small checkpoint threshold: automatic checkpoints, written on a
    // thread of their own while POSTs go on, are among the kill points.
    let args = [
        "--no-auth",
        "--checkpoint-log-bytes",
        "65536",
        "--data",
        data_arg.as_str(),
    ];
    let mut acknowledged = 0usize;
    let mut kills = 0;
    while kills < 20 || acknowledged < chunks.len() {
        if random(5) == 0 {
            kill_during_start_up(&args, random(40));
            kills += 1;
            continue;
        }
        let server = start_checkpointing(&args, random(2) == 0);
        // Everything acknowledged is there; the chunk after it may be.
        let events = events_metric(&server);
        let with = |n: usize| engine_of(n.min(chunks.len())).stats().events as u64;
        if events != with(acknowledged) {
            assert_eq!(
                events,
                with(acknowledged + 1),
                "after {kills} kills with {acknowledged} chunks acknowledged"
            );
        }
        if kills >= 20 && acknowledged == chunks.len() {
            break;
        }
        // Post until killed: the poster keeps the count of 200s.
        let done = Arc::new(AtomicU64::new(acknowledged as u64));
        let poster = {
            let (addr, done, chunks) = (server.addr, Arc::clone(&done), chunks.clone());
            std::thread::spawn(move || {
                let client = ClientOf(addr);
                while (done.load(Ordering::SeqCst) as usize) < chunks.len() {
                    let next = done.load(Ordering::SeqCst) as usize;
                    match client.post_ndjson(chunks[next].as_bytes()) {
                        Some(200) => done.fetch_add(1, Ordering::SeqCst),
                        Some(other) => panic!("POST answered {other}"),
                        None => return, // killed mid-request
                    };
                }
            })
        };
        std::thread::sleep(Duration::from_millis(random(300)));
        drop(server); // SIGKILL
        kills += 1;
        poster.join().unwrap();
        acknowledged = done.load(Ordering::SeqCst) as usize;
    }
    // A last start, and every answer.
    let server = Served::start(&args);
    let expected = engine_of(chunks.len());
    assert_eq!(events_metric(&server), expected.stats().events as u64);
    assert_same_answers(&server, &expected, &lines, kills);
}

/// One client's body of [`serve_data_keeps_concurrent_posts_across_sigkill`]:
/// its lines, as NDJSON or an Arrow stream, and two of its lines whose
/// event ids occur nowhere else (the first and the last such), by which a
/// probe tells whether the body is in a data directory.
struct Post {
    lines: std::ops::Range<usize>,
    body: Vec<u8>,
    content_type: &'static str,
    probes: [usize; 2],
}

/// `serve --data` with three clients posting at once, each its own events:
/// small NDJSON bodies, Arrow streams, and NDJSON bodies large enough that
/// their log record is written by a thread of its own. The server is
/// killed (SIGKILL) at random moments; after each kill, a copy of the
/// directory (what the crash left) is probed: every POST answered 200 is
/// there, and each POST in flight is there in full or not at all (its
/// client re-posts it if not). At the end every answer equals a
/// single-threaded engine fed every body.
#[test]
fn serve_data_keeps_concurrent_posts_across_sigkill() {
    const CLIENTS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    let text = generated_ndjson(dir.path(), 90_000, 29);
    let lines: Vec<&str> = text.lines().collect();
    // The generator repeats 0.5% of its events exactly: probes use ids
    // that occur once.
    let mut occurrences: std::collections::HashMap<&str, usize> = Default::default();
    let id_of = |line: &str| -> String {
        let v: Value = serde_json::from_str(line).unwrap();
        v["event_id"].as_str().unwrap().to_owned()
    };
    let ids: Vec<String> = lines.iter().map(|l| id_of(l)).collect();
    for id in &ids {
        *occurrences.entry(id.as_str()).or_default() += 1;
    }
    // Bodies in turn for clients 0, 1, 2: 300 NDJSON lines, 1,000 lines as
    // an Arrow stream, 3,000 NDJSON lines (over 256 KiB).
    let mut posts: Vec<Vec<Post>> = (0..CLIENTS).map(|_| Vec::new()).collect();
    let mut at = 0;
    while at < lines.len() {
        let client = (posts.iter().map(Vec::len).sum::<usize>()) % CLIENTS;
        let size = [300, 1_000, 3_000][client];
        let range = at..(at + size).min(lines.len());
        at = range.end;
        let ndjson = lines[range.clone()].join("\n") + "\n";
        let (body, content_type) = if client == 1 {
            (
                arrow_stream_of(ndjson.as_bytes(), 250),
                "application/vnd.apache.arrow.stream",
            )
        } else {
            (ndjson.into_bytes(), "application/x-ndjson")
        };
        let once: Vec<usize> = range
            .clone()
            .filter(|&i| occurrences[ids[i].as_str()] == 1)
            .collect();
        let probes = [*once.first().unwrap(), *once.last().unwrap()];
        posts[client].push(Post {
            lines: range,
            body,
            content_type,
            probes,
        });
    }
    let posts = Arc::new(posts);
    let mut random = kill_random();
    let args = [
        "--no-auth",
        "--checkpoint-log-bytes",
        "131072",
        "--data",
        data_arg.as_str(),
    ];
    // Per client: how many of its bodies are in the directory.
    let mut delivered = [0usize; CLIENTS];
    // Kills in all, and kills with a body in flight.
    let (mut kills, mut kills_in_flight) = (0, 0);
    // The longest a server runs before it is killed, in milliseconds.
    let mut patience = 25;
    while (0..CLIENTS).any(|c| delivered[c] < posts[c].len()) {
        if random(6) == 0 {
            kill_during_start_up(&args, random(40));
            kills += 1;
            continue;
        }
        let server = start_checkpointing(&args, random(2) == 0);
        // Each client posts its next bodies until killed; it counts its
        // 200s and notes the body in flight when the server died.
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (addr, posts, mut next) = (server.addr, Arc::clone(&posts), delivered[c]);
                std::thread::spawn(move || -> (usize, Option<usize>) {
                    let client = ClientOf(addr);
                    while next < posts[c].len() {
                        let post = &posts[c][next];
                        match client.post_events(&post.body, post.content_type) {
                            Some(200) => next += 1,
                            Some(other) => panic!("POST answered {other}"),
                            None => return (next, Some(next)),
                        }
                    }
                    (next, None)
                })
            })
            .collect();
        // Kills come quickly, unless the last ones left nothing new: a
        // loaded machine then gets longer to finish a POST.
        std::thread::sleep(Duration::from_millis(random(patience)));
        drop(server); // SIGKILL
        kills += 1;
        let outcomes: Vec<(usize, Option<usize>)> =
            clients.into_iter().map(|c| c.join().unwrap()).collect();
        if outcomes.iter().any(|(_, in_flight)| in_flight.is_some()) {
            kills_in_flight += 1;
        }
        // Probed in a copy: the next server finds the directory as the
        // crash left it.
        let image = crash_image(&data);
        let probe = convostat::EngineOptions::new()
            .sync(convostat::SyncPolicy::Never)
            .checkpoint_on_close(false)
            .open(image.path())
            .unwrap();
        let present = |line: usize| {
            let report = probe.ingest_ndjson(lines[line].as_bytes()).unwrap();
            report.duplicates == 1
        };
        let before: usize = delivered.iter().sum();
        for (c, &(acknowledged, in_flight)) in outcomes.iter().enumerate() {
            for post in &posts[c][..acknowledged] {
                assert!(
                    present(post.probes[1]),
                    "client {c}: an acknowledged body (lines {:?}) is lost after {kills} kills",
                    post.lines
                );
            }
            delivered[c] = acknowledged;
            if let Some(i) = in_flight {
                let post = &posts[c][i];
                let [first, last] = post.probes.map(present);
                assert_eq!(
                    first, last,
                    "client {c}: a body in flight (lines {:?}) is in part after {kills} kills",
                    post.lines
                );
                if first {
                    delivered[c] += 1;
                }
            }
        }
        patience = if delivered.iter().sum::<usize>() > before {
            25
        } else {
            (patience * 2).min(2_000)
        };
    }
    eprintln!("concurrent posts: {kills} kills, {kills_in_flight} with a body in flight");
    assert!(
        kills_in_flight >= 5,
        "only {kills_in_flight} kills landed during a POST"
    );
    let server = Served::start(&args);
    let expected = Engine::new();
    for post in posts.iter().flatten() {
        let ndjson = lines[post.lines.clone()].join("\n");
        expected.ingest_ndjson(ndjson.as_bytes()).unwrap();
    }
    assert_eq!(events_metric(&server), expected.stats().events as u64);
    assert_same_answers(&server, &expected, &lines, kills);
}

/// Asserts that `server` answers the conversations, insights, usage and
/// flow questions (the flow of the first conversation with transitions in
/// `lines`) exactly as `expected` does, after `kills` kills.
fn assert_same_answers(server: &Served, expected: &Engine, lines: &[&str], kills: usize) {
    let range = "start_time=2024-01-01&end_time=2024-06-01";
    for (kind, target, params) in [
        (
            "conversations",
            format!("/v1/bots/bot-acme-support/conversations?version=LIVE&{range}&group_by=channel_type"),
            vec![("bot_id", "bot-acme-support"), ("version", "LIVE"), ("group_by", "channel_type")],
        ),
        (
            "insights",
            format!("/v1/bots/bot-acme-support/conversations/insights?version=LIVE&{range}&stat=num_messages&aggregate=p90&bucket=1w"),
            vec![("bot_id", "bot-acme-support"), ("version", "LIVE"), ("stat", "num_messages"), ("aggregate", "p90"), ("bucket", "1w")],
        ),
        (
            "usage",
            format!("/v1/teams/team-acme/conversations?{range}&bucket=1d&group_by=bot_id,language"),
            vec![("team_id", "team-acme"), ("bucket", "1d"), ("group_by", "bot_id,language")],
        ),
    ] {
        let mut params = params;
        params.extend([("start_time", "2024-01-01"), ("end_time", "2024-06-01")]);
        let query = Query::from_params(kind, &Params::new(params).unwrap()).unwrap();
        let want = expected.query(&query).unwrap().to_json() + "\n";
        let reply = server.get(&target, None);
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert!(reply.text() == want, "{kind} differs after {kills} kills");
    }
    // Flow of a conversation with transitions.
    let first: Value = serde_json::from_str(
        lines
            .iter()
            .find(|l| l.contains("\"transition\"") && l.contains("\"bot_version\""))
            .unwrap(),
    )
    .unwrap();
    let s = |k: &str| first[k].as_str().unwrap().to_owned();
    let (bot, conv, version) = (s("bot_id"), s("conversation_id"), s("bot_version"));
    let query = Query::from_params(
        "flow",
        &Params::new([
            ("bot_id", bot.as_str()),
            ("conversation_id", conv.as_str()),
            ("version", version.as_str()),
            ("start_time", "2024-01-01"),
            ("end_time", "2024-06-01"),
        ])
        .unwrap(),
    )
    .unwrap();
    let want = expected.query(&query).unwrap().to_json() + "\n";
    let reply = server.get(
        &format!("/v1/bots/{bot}/conversations/{conv}/flow?version={version}&{range}"),
        None,
    );
    assert!(reply.text() == want, "flow differs: {}", reply.text());
}

/// A client for a server that may die under it.
struct ClientOf(SocketAddr);

impl ClientOf {
    /// POSTs NDJSON; `None` when the connection breaks before an answer.
    fn post_ndjson(&self, body: &[u8]) -> Option<u16> {
        self.post_events(body, "application/x-ndjson")
    }

    /// POSTs events of `content_type`; `None` when the connection breaks
    /// before an answer.
    fn post_events(&self, body: &[u8], content_type: &str) -> Option<u16> {
        let mut stream = TcpStream::connect(self.0).ok()?;
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.0,
            body.len()
        );
        stream.write_all(head.as_bytes()).ok()?;
        stream.write_all(body).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).ok()?;
        let head = String::from_utf8_lossy(&raw);
        head.split(' ').nth(1)?.parse().ok()
    }
}
