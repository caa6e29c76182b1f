#!/usr/bin/env bash
# HTTP NDJSON ingest into a durable `convostat serve --data` (issue 12,
# SPEC 9; not a timed test): every POST is acknowledged only once its
# events are fsynced.
#
# Starts the release server without auth on a fresh data directory under
# target/, then posts CONVOSTAT_BENCH_INGEST_EVENTS fresh generated events
# (default 1M, seed 8, cached under target/bench-data/) in bodies of
# CONVOSTAT_BENCH_BODY_LINES lines (default 10000), back to back, from 1
# and from 2 connections (a new server and directory for each). Prints
# events/s and the server's CPU time (user, kernel) for each.
#
# Needs python3 (the poster). Usage: benches/serve_ingest.sh
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${CONVOSTAT_BENCH_INGEST_EVENTS:-1000000}
LINES=${CONVOSTAT_BENCH_BODY_LINES:-10000}
# CONVOSTAT_BIN runs another build (e.g. an older one, to compare).
BIN=${CONVOSTAT_BIN:-target/release/convostat}
[ -n "${CONVOSTAT_BIN:-}" ] || cargo build --quiet --release --bin convostat
mkdir -p target/bench-data
INGEST=target/bench-data/serve-ingest-$EVENTS-8.ndjson
[ -f "$INGEST" ] || "$BIN" generate --out "$INGEST" --events "$EVENTS" --seed 8

for CONNS in 1 2; do
    WORK=$(mktemp -d target/bench-serve-ingest.XXXX)
    "$BIN" serve --no-auth --listen 127.0.0.1:0 --data "$WORK/data" > "$WORK/stdout" 2> "$WORK/stderr" &
    SERVER_PID=$!
    trap 'kill $SERVER_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
    until grep -q '^listening on ' "$WORK/stdout"; do
        kill -0 "$SERVER_PID" || { cat "$WORK/stderr"; exit 1; }
        sleep 0.2
    done
    URL=$(sed -n 's/^listening on //p' "$WORK/stdout")
    python3 - "$URL" "$INGEST" "$CONNS" "$LINES" <<'PY'
import http.client, sys, threading, time, urllib.parse
url, path, conns, lines_per_body = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lines = open(path, "rb").read().splitlines(keepends=True)
bodies = [b"".join(lines[i:i + lines_per_body]) for i in range(0, len(lines), lines_per_body)]
host = urllib.parse.urlparse(url).netloc
failures = []
def post(k):
    conn = http.client.HTTPConnection(host)
    for body in bodies[k::conns]:
        conn.request("POST", "/v1/events", body, {"Content-Type": "application/x-ndjson"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            failures.append(response.status)
start = time.monotonic()
threads = [threading.Thread(target=post, args=(k,)) for k in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
took = time.monotonic() - start
assert not failures, f"POSTs answered {failures[:5]}"
print(f"{conns} connection(s), {lines_per_body}-line bodies: {len(lines):,} events in {took:.2f} s = {len(lines) / took:,.0f} events/s")
PY
    read -r USER_TICKS SYS_TICKS < <(awk '{print $14, $15}' "/proc/$SERVER_PID/stat")
    TICK=$(getconf CLK_TCK)
    echo "  server CPU: user $(python3 -c "print($USER_TICKS / $TICK)") s, kernel $(python3 -c "print($SYS_TICKS / $TICK)") s"
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
    trap - EXIT
done
