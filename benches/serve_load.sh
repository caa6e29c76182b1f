#!/usr/bin/env bash
# Load bench of `convostat serve` on loopback (issue 11; not a timed test).
#
# Preloads CONVOSTAT_BENCH_EVENTS generated events (default 10M, seed 7,
# cached as Parquet under target/bench-data/), starts the release server
# without auth, then drives each GET route with wrk at 1, 16 and 64
# connections for CONVOSTAT_BENCH_SECONDS each (default 10), first alone,
# then while a paced poster sends NDJSON to POST /v1/events at
# CONVOSTAT_BENCH_INGEST_RATE events/s (default 100k). Before that it
# measures HTTP NDJSON ingest alone: 1M fresh events (seed 8) posted in
# 50k-event bodies, back to back. Prints a Markdown table for the README.
# CONVOSTAT_BENCH_ANSWER_CACHE sets the server's --answer-cache (default
# 1024; 0 makes every request run its query: wrk repeats one URL, which
# the cache answers until the next ingest).
#
# Needs wrk (Debian: apt-get install wrk) and python3 (the ingest poster).
#
# Usage: benches/serve_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${CONVOSTAT_BENCH_EVENTS:-10000000}
SECONDS_PER_RUN=${CONVOSTAT_BENCH_SECONDS:-10}
RATE=${CONVOSTAT_BENCH_INGEST_RATE:-100000}
ANSWER_CACHE=${CONVOSTAT_BENCH_ANSWER_CACHE:-1024}
INGEST_EVENTS=3000000
command -v wrk > /dev/null || { echo "wrk is required (apt-get install wrk)"; exit 1; }

cargo build --quiet --release --bin convostat
BIN=target/release/convostat
mkdir -p target/bench-data
DATA=target/bench-data/serve-$EVENTS-7.parquet
INGEST=target/bench-data/serve-ingest-$INGEST_EVENTS-8.ndjson
[ -f "$DATA" ] || "$BIN" generate --out "$DATA" --events "$EVENTS" --seed 7
[ -f "$INGEST" ] || "$BIN" generate --out "$INGEST" --events "$INGEST_EVENTS" --seed 8

WORK=$(mktemp -d)
SERVER_PID=
POSTER_PID=
cleanup() {
    [ -z "$POSTER_PID" ] || kill "$POSTER_PID" 2>/dev/null || true
    [ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" serve --no-auth --listen 127.0.0.1:0 --input "$DATA" --max-in-flight 4096 --answer-cache "$ANSWER_CACHE" \
    > "$WORK/stdout" 2> "$WORK/stderr" &
SERVER_PID=$!
until grep -q '^listening on ' "$WORK/stdout"; do
    kill -0 "$SERVER_PID" || { cat "$WORK/stderr"; exit 1; }
    sleep 0.5
done
URL=$(sed -n 's/^listening on //p' "$WORK/stdout")
cat "$WORK/stderr"

# The paced NDJSON poster: lines FROM..TO of the ingest file in bodies of
# CHUNK lines, at RATE events/s (0 = as fast as possible), until killed or
# done; prints "events seconds" at the end.
cat > "$WORK/poster.py" <<'PY'
import http.client, signal, sys, time, urllib.parse
url, path, first, last, chunk, rate = sys.argv[1:7]
first, last, chunk, rate = int(first), int(last), int(chunk), float(rate)
with open(path, "rb") as f:
    lines = f.read().splitlines(keepends=True)[first:last]
bodies = [b"".join(lines[i:i + chunk]) for i in range(0, len(lines), chunk)]
host = urllib.parse.urlparse(url).netloc
conn = http.client.HTTPConnection(host)
sent, start, stop = 0, time.monotonic(), False
def finish(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, finish)
i = 0
while not stop and (rate > 0 or i < len(bodies)):
    if rate <= 0 and i >= len(bodies):
        break
    body = bodies[i % len(bodies)]
    conn.request("POST", "/v1/events", body, {"Content-Type": "application/x-ndjson"})
    r = conn.getresponse(); r.read()
    if r.status != 200:
        print("POST answered", r.status, file=sys.stderr)
    sent += body.count(b"\n"); i += 1
    if rate > 0:
        ahead = sent / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    if rate <= 0 and i >= len(bodies):
        break
print(sent, time.monotonic() - start)
PY

# One conversation with transitions, for the flow route.
python3 - "$URL" <<'PY'
import http.client, json, sys, urllib.parse
lines = []
for i in range(40):
    lines.append(json.dumps({"event_id": f"bench-flow-{i}", "timestamp": f"2024-03-01T10:{i:02d}:00Z",
        "bot_id": "bot-acme-support", "conversation_id": "bench-flow", "bot_version": "LIVE",
        "event_type": "transition" if i % 2 else "message", "message_id": f"m{i // 2}",
        "from_step_id": f"s{i}", "from_step_type": "bot_dialog", "to_step_id": f"s{i + 1}", "to_step_type": "input"}))
conn = http.client.HTTPConnection(urllib.parse.urlparse(sys.argv[1]).netloc)
conn.request("POST", "/v1/events", "\n".join(lines) + "\n", {"Content-Type": "application/x-ndjson"})
assert conn.getresponse().status == 200
PY

echo "== HTTP NDJSON ingest alone: 1M fresh events in 50k-event bodies"
read -r N S < <(python3 "$WORK/poster.py" "$URL" "$INGEST" 0 1000000 50000 0)
INGEST_RATE=$(python3 -c "print(f'{$N / $S:,.0f}')")
echo "$N events in ${S}s: $INGEST_RATE events/s"

RANGE="start_time=2024-01-01&end_time=2024-05-01"
declare -A TARGET=(
    [conversations]="/v1/bots/bot-acme-support/conversations?version=LIVE&$RANGE&bucket=1d&group_by=channel_type"
    [insights]="/v1/bots/bot-acme-support/conversations/insights?version=LIVE&$RANGE&bucket=1d&stat=duration_seconds&aggregate=p95"
    [flow]="/v1/bots/bot-acme-support/conversations/bench-flow/flow?version=LIVE&$RANGE"
    [usage]="/v1/teams/team-acme/conversations?$RANGE&bucket=1d&group_by=bot_id,channel_type"
)
ROWS=()
for ingest in no yes; do
    if [ "$ingest" = yes ]; then
        python3 "$WORK/poster.py" "$URL" "$INGEST" 1000000 "$INGEST_EVENTS" 10000 "$RATE" > "$WORK/poster.out" &
        POSTER_PID=$!
        sleep 1
    fi
    for route in conversations insights flow usage; do
        for c in 1 16 64; do
            t=$(( c < 2 ? 1 : 2 ))
            wrk -t"$t" -c"$c" -d"${SECONDS_PER_RUN}s" --latency "$URL${TARGET[$route]}" > "$WORK/wrk.out"
            p50=$(awk '$1 == "50%" {print $2}' "$WORK/wrk.out")
            p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.out")
            rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$WORK/wrk.out")
            bad=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.out")
            errors=$(awk '/Socket errors/ {print $0}' "$WORK/wrk.out")
            row="| $route | $c | $ingest | $p50 | $p99 | $rps | ${bad:-0} |"
            echo "$row ${errors}"
            ROWS+=("$row")
        done
    done
    if [ "$ingest" = yes ]; then
        kill -TERM "$POSTER_PID"; wait "$POSTER_PID" || true; POSTER_PID=
        read -r PN PS < "$WORK/poster.out"
        POSTED_RATE=$(python3 -c "print(f'{$PN / $PS:,.0f}')")
    fi
done

echo
echo "Events preloaded: $EVENTS; ${SECONDS_PER_RUN}s per run; --answer-cache $ANSWER_CACHE; $(nproc) cores; $(date -u +%Y-%m-%d)."
echo "HTTP NDJSON ingest alone: $INGEST_RATE events/s. Concurrent ingest achieved: ${POSTED_RATE:-?} events/s."
echo
echo "| route | connections | with ingest | p50 | p99 | requests/s | non-2xx |"
echo "|---|---:|---|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
