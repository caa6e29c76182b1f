#!/usr/bin/env bash
# API fuzzing of `convostat serve` with schemathesis, against the server's
# own /openapi.json (SPEC 8, issue 11).
#
# Starts the debug binary on a free loopback port with the fixture events
# and two accounts, then runs schemathesis (pinned, installed from PyPI
# into target/api-fuzz-venv) over every operation with basic auth as the
# write account. Checks: no 5xx (not_a_server_error), every status code,
# content type and body as the document says, and the server still alive
# and healthy afterwards. Prints the number of generated requests.
#
# Body serializers for NDJSON and Arrow are in tests/api_fuzz_hooks.py.
#
# Usage: tests/api_fuzz.sh [MAX_EXAMPLES]   (default 100 per operation)
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${1:-100}
VENV=target/api-fuzz-venv
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --quiet --bin convostat
BIN="${CARGO_TARGET_DIR:-target}/debug/convostat"

if [ ! -x "$VENV/bin/schemathesis" ] ||
    ! "$VENV/bin/pip" show schemathesis 2>/dev/null | grep -q "^Version: $SCHEMATHESIS_VERSION$"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

PHC=$(printf 'pw\n' | "$BIN" hash-secret)
printf 'reader:read:%s\nwriter:write:%s\n' "$PHC" "$PHC" > "$WORK/accounts"

"$BIN" serve --listen 127.0.0.1:0 --credentials "$WORK/accounts" \
    --input fixtures/events.ndjson --max-body 1048576 > "$WORK/stdout" 2> "$WORK/stderr" &
SERVER_PID=$!
for _ in $(seq 100); do
    grep -q '^listening on ' "$WORK/stdout" && break
    sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$WORK/stdout")
[ -n "$URL" ] || { echo "server did not start"; cat "$WORK/stderr"; exit 1; }
echo "== schemathesis $SCHEMATHESIS_VERSION against $URL/openapi.json ($MAX_EXAMPLES examples per operation)"

set +e
# From the scratch directory: schemathesis keeps a cache in the working one.
REPO=$PWD
(cd "$WORK" && SCHEMATHESIS_HOOKS=api_fuzz_hooks PYTHONPATH="$REPO/tests" \
    "$REPO/$VENV/bin/schemathesis" run "$URL/openapi.json" \
    --auth writer:pw \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --seed 11 \
    --workers 2 \
    --report har --report-har-path "$WORK/requests.har" \
    --no-color) 2>&1 | tee "$WORK/report.txt"
STATUS=${PIPESTATUS[0]}
set -e

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "FAIL: the server died"; cat "$WORK/stderr"; exit 1
fi
fetch() { python3 -c 'import sys, urllib.request as u; r = u.urlopen(sys.argv[1]); print(r.status) if sys.argv[2] == "status" else sys.stdout.write(r.read().decode())' "$1" "$2" 2>/dev/null || true; }
HEALTH=$(fetch "$URL/healthz" status)
[ "$HEALTH" = 200 ] || { echo "FAIL: /healthz answered $HEALTH after fuzzing"; exit 1; }
REQUESTS=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["log"]["entries"]))' "$WORK/requests.har")
SERVER_ERRORS=$(fetch "$URL/metrics" body | awk '/^convostat_http_requests_total/ && /code="5/ {n += $2} END {print n + 0}')
echo "== generated requests: $REQUESTS; 5xx answered: $SERVER_ERRORS; server alive and healthy"
[ "$SERVER_ERRORS" = 0 ] || { echo "FAIL: the server answered 5xx"; exit 1; }
exit "$STATUS"
