#!/usr/bin/env python3
"""convostat against DuckDB on the batch questions, side by side, from one run
(not part of the test suite).

    pip install duckdb pyarrow   # also polars, pandas, fastparquet for their sets
    cargo build --release
    python3 benches/compare_duckdb.py [--events 10000000] [--only interleaved-pyarrow]
        [--question flow --question 'flow mid-file'] [--runs 30] [--more-writers]
        [--baseline path/to/an/earlier/convostat] [--file path/to/another.parquet]
        [--seed 1234]

The data sets are made once under `target/bench-compare/` with
`convostat generate` (seed 7, or `--seed`), as users have them:
- `clustered`: one Parquet file clustered by bot (a per-tenant export);
- `interleaved`: time order with every bot and team mixed, as an event
  pipeline writes it (parquet-rs, 256K-row groups);
- `interleaved-pyarrow`: the same rows rewritten by pyarrow with its default
  settings (1M-row groups, dictionary strings, snappy, no page index);
- `interleaved-spark`: the pyarrow file as Spark writes it by default:
  every column nullable, INT96 timestamps without statistics;
- `interleaved-duckdb`: the interleaved rows rewritten by DuckDB's own
  writer (122,880-row groups);
- `interleaved-polars`: the same rows rewritten by Polars with its
  defaults (zstd, 131,072-row groups; only when polars is installed);
- `interleaved-fastparquet`: the pyarrow file through pandas and
  fastparquet with pandas' defaults (snappy; one row group, plain strings,
  one data page per column chunk; only when fastparquet is installed);
- `interleaved-pandas`: the pyarrow file through pandas, low-cardinality
  strings as categoricals (dictionary-typed columns) and timestamps in
  nanoseconds (needs pandas);
- `interleaved-small-groups`: 65,536-row groups of 64 KB zstd pages with a
  page index, large strings and nanosecond timestamps;
- `interleaved-duckdb-v2`: the interleaved rows through DuckDB's writer with
  `PARQUET_VERSION v2` (delta-encoded timestamps and event ids);
- `interleaved-millis`: the pyarrow file with timestamps in milliseconds;
- with `--more-writers`, the pyarrow file also compressed with gzip, lz4
  (which pyarrow writes as Parquet's `LZ4_RAW`) and brotli
  (`interleaved-gzip` ...), `interleaved-uncompressed`,
  `interleaved-no-dictionary`, `interleaved-delta` (data page v2, ids as
  `DELTA_BYTE_ARRAY`), `interleaved-one-group` (a single row group) and
  `interleaved-uuid` (event, conversation and user ids as 36-character
  UUIDs, as most platforms make them; see `uuid_of`);
- `hourly`: the interleaved rows as 2,000 time-ordered Parquet files;
  with `--more-writers` also each file rewritten by pyarrow
  (`hourly-pyarrow`) and by DuckDB (`hourly-duckdb`);
- `ndjson`: the interleaved rows as one NDJSON file.

`--seed N` makes the data sets from another seed of the generator (under
`target/bench-compare/seed<N>/`): a check that the figures hold on
other interleaved files than these. `--file PATH` (repeatable) adds a
Parquet or NDJSON file, or a directory of Parquet files, named by its
base name; alone (without `--only`) it runs just those, without
generating the sets above. It must hold the generator's bot and
conversations (`convostat generate` with any seed, rewritten by any
tool, of any size). The mid-file flow's conversation
is picked for each data set from its number of the bot's conversations
(`c2t49` at 10M events of seed 7); each flow's conversation is the next
one whose version is LIVE when the one so numbered is not (in some
seeds, `c1` or the mid-file one is a DRAFT conversation, which a flow
with `--version LIVE` does not find).

For each data set and question, convostat's figure is the whole process
(`convostat <query> --input ...`, start-up and metadata included, timed
from before its `posix_spawn` to after its `wait4`: see `Processes`) and
DuckDB's is the engine time of the query in one connection with Python's
start-up left out; both use 2 threads, both take the best of three runs,
and convostat's answers are checked against DuckDB's, row by row and value
by value (`answer_table`; insights against an untimed query that computes
SPEC's nearest-rank percentile over integer durations, `exact_insights_sql`).
Each query is written to mean what SPEC 2/4 say: a conversation's start is
its earliest event, its attributes those of its first event by
(timestamp, event_id). A markdown table is printed at the end, then which
answers differed, if any (the run then exits with status 1).
"""
import argparse
import collections
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

import duckdb

BOT, TEAM = "bot-acme-support", "team-acme"
# The generator's columns, in order.
COLUMNS = ["event_id", "timestamp", "bot_id", "conversation_id", "event_type", "team_id",
           "bot_version", "user_id", "channel_type", "language", "campaign_id",
           "campaign_source", "message_id", "from_step_id", "from_step_type", "to_step_id",
           "to_step_type"]
# Flow asks for the bot's first LIVE conversation (its rows lie in the first row
# group, which statistics single out) and for one that starts mid-file
# (every row group's conversation range holds it): at 10M events, where the
# bot has 250,158 conversations, `c2t49`, and in a data set of another size
# the one numbered at the same fraction of the bot's conversations (the
# generator numbers them in base 36 in order of their start).
MID_NUMBER, MID_OF = 2 * 36**3 + 29 * 36**2 + 4 * 36 + 9, 250_158
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def base36(n):
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, d = divmod(n, 36)
        out = digits[d] + out
        if n == 0:
            return out


def uuid_of(text):
    """The UUID-shaped id `interleaved-uuid` gives the id `text`: its MD5 in
    hex, grouped 8-4-4-4-12 (what `UUID_SQL` computes in DuckDB). A
    conversation's is that of `<bot_id>/<conversation_id>`, so that each
    is unique across bots, as a platform's UUIDs are."""
    h = hashlib.md5(text.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


UUID_SQL = ("substr({0}, 1, 8) || '-' || substr({0}, 9, 4) || '-' || substr({0}, 13, 4) "
            "|| '-' || substr({0}, 17, 4) || '-' || substr({0}, 21, 12)")


def conversation_ids(data):
    """How data set `data` names BOT's conversation that the generator
    names `name`."""
    if data == "interleaved-uuid":
        return lambda name: uuid_of(f"{BOT}/{name}")
    return lambda name: name


def flow_conversations(con, source, named):
    """The bot's conversations the two flows ask for in `source` (as it
    names them: `named`, see `conversation_ids`): its first and the one
    that starts mid-file (see `MID_NUMBER`). Each is the one so
    numbered or, when that one is not a conversation a flow with
    `--version LIVE` over the period finds (its first event's version is
    another, or it starts outside the period, as in some seeds), the next
    one that is; an error if the data set holds none near."""
    (count,) = con.execute(f"SELECT count(DISTINCT conversation_id) FROM {source} "
                           f"WHERE bot_id = '{BOT}'").fetchone()
    return (live_conversation(con, source, 1, named),
            live_conversation(con, source, round(count * MID_NUMBER / MID_OF), named))


def live_conversation(con, source, number, named):
    """The bot's first conversation numbered `number` or after whose version
    is LIVE and which starts in the period (see `flow_conversations`), as
    the data set names it (`named`)."""
    names = [named("c" + base36(n)) for n in range(number, number + LIVE_SEARCH)]
    listed = ", ".join(f"'{name}'" for name in names)
    found = {row[0] for row in con.execute(f"""
SELECT conversation_id FROM {source}
WHERE bot_id = '{BOT}' AND conversation_id IN ({listed})
GROUP BY conversation_id
HAVING first(bot_version ORDER BY timestamp, event_id) = 'LIVE'
  AND min(timestamp) >= TIMESTAMPTZ '2024-01-01 00:00:00+00'
  AND min(timestamp) < TIMESTAMPTZ '2024-05-01 00:00:00+00'""").fetchall()}
    for name in names:
        if name in found:
            return name
    sys.exit(f"{source}: no LIVE conversation of {BOT} from {names[0]} to {names[-1]} "
             "for a flow")


# How many conversations from the one numbered `live_conversation` looks at.
LIVE_SEARCH = 64


# The period every question asks about, as the command lines of `cli` give it.
PERIOD = ("start >= TIMESTAMPTZ '2024-01-01 00:00:00+00' "
          "AND start < TIMESTAMPTZ '2024-05-01 00:00:00+00'")


def sql(source, first, mid):
    """The four questions over the DuckDB table expression `source`, the
    flows of conversations `first` and `mid`."""
    return {
        "conversations": f"""
WITH c AS (
  SELECT min(timestamp) AS start,
         first(bot_version ORDER BY timestamp, event_id) AS version,
         first(channel_type ORDER BY timestamp, event_id) AS channel
  FROM {source} WHERE bot_id = '{BOT}'
  GROUP BY conversation_id)
SELECT date_trunc('day', start) AS day, coalesce(channel, '(none)'), count(*)
FROM c WHERE version = 'LIVE' AND {PERIOD}
GROUP BY ALL ORDER BY ALL""",
        "insights": f"""
WITH c AS (
  SELECT min(timestamp) AS start,
         floor(epoch_us(max(timestamp)::TIMESTAMPTZ) / 1e6 - epoch_us(min(timestamp)::TIMESTAMPTZ) / 1e6) AS duration,
         first(bot_version ORDER BY timestamp, event_id) AS version
  FROM {source} WHERE bot_id = '{BOT}'
  GROUP BY conversation_id)
SELECT date_trunc('day', start) AS day, quantile_disc(duration, 0.95)
FROM c WHERE version = 'LIVE' AND {PERIOD}
GROUP BY ALL ORDER BY ALL""",
        "usage": f"""
WITH c AS (
  SELECT bot_id, min(timestamp) AS start,
         first(team_id ORDER BY timestamp, event_id) AS team,
         first(channel_type ORDER BY timestamp, event_id) AS channel
  FROM {source}
  GROUP BY bot_id, conversation_id)
SELECT date_trunc('day', start) AS day, bot_id, coalesce(channel, '(none)'), count(*)
FROM c WHERE team = '{TEAM}' AND {PERIOD}
GROUP BY ALL ORDER BY ALL""",
        "flow": flow_sql(source, first),
        "flow mid-file": flow_sql(source, mid),
    }


def flow_sql(source, conversation):
    return f"""
WITH t AS (
  SELECT event_id, timestamp, from_step_id, to_step_id,
         row_number() OVER (ORDER BY timestamp, event_id) AS depth
  FROM {source}
  WHERE bot_id = '{BOT}' AND conversation_id = '{conversation}' AND event_type = 'transition')
SELECT * FROM t ORDER BY depth"""


def cli(first, mid):
    """The four questions as convostat's command lines, the flows of
    conversations `first` and `mid`."""
    return {
        "conversations": ["conversations", "--bot-id", BOT, "--version", "LIVE", "--start",
                          "2024-01-01", "--end", "2024-05-01", "--bucket", "1d",
                          "--group-by", "channel_type"],
        "insights": ["insights", "--bot-id", BOT, "--version", "LIVE", "--start", "2024-01-01",
                     "--end", "2024-05-01", "--bucket", "1d", "--stat", "duration_seconds",
                     "--aggregate", "p95"],
        "usage": ["usage", "--team-id", TEAM, "--start", "2024-01-01", "--end", "2024-05-01",
                  "--bucket", "1d", "--group-by", "bot_id,channel_type"],
        "flow": ["flow", "--bot-id", BOT, "--conversation-id", first, "--version",
                 "LIVE", "--start", "2024-01-01", "--end", "2024-05-01"],
        "flow mid-file": ["flow", "--bot-id", BOT, "--conversation-id", mid,
                          "--version", "LIVE", "--start", "2024-01-01", "--end", "2024-05-01"],
    }


CLI_NAMES = list(cli("c1", "c1"))


def exact_insights_sql(source):
    """The insights question as SPEC 2/4 define it, for checking answers
    (untimed): durations are whole seconds of the integer difference, and
    p95 is the value at rank ceil(95 n / 100). The timed query takes
    DuckDB's `quantile_disc` over floating-point durations, which can pick
    a neighbouring rank or lose a second at a boundary."""
    return f"""
WITH c AS (
  SELECT min(timestamp) AS start,
         (epoch_us(max(timestamp)::TIMESTAMPTZ) - epoch_us(min(timestamp)::TIMESTAMPTZ))
           // 1000000 AS duration,
         first(bot_version ORDER BY timestamp, event_id) AS version
  FROM {source} WHERE bot_id = '{BOT}'
  GROUP BY conversation_id)
SELECT date_trunc('day', start) AS day,
       list_sort(list(duration))[(95 * count(*) + 99) // 100]
FROM c WHERE version = 'LIVE' AND {PERIOD}
GROUP BY ALL ORDER BY ALL"""


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def epoch_us(value):
    """Microseconds since the epoch of an RFC 3339 text or a datetime (a
    naive one is UTC), exactly."""
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return (value - EPOCH) // datetime.timedelta(microseconds=1)


def answer_table(name, text):
    """The rows of a convostat JSON answer as DuckDB's query gives them,
    counted (a multiset: times as epoch microseconds; no row for an empty
    bucket)."""
    answer = json.loads(text)
    if name.startswith("flow"):
        return collections.Counter((t["id"], epoch_us(t["timestamp"]),
                                    (t.get("from_step") or {}).get("id"),
                                    (t.get("to_step") or {}).get("id"), t["depth"])
                                   for t in answer["transitions"])
    data = answer["data"]
    xs = [epoch_us(x) for x in data["x_values"]]
    rows = []
    for series in data["series"]:
        labels = series.get("labels") or {}
        for x, v in zip(xs, series["values"]):
            if v is None or (name != "insights" and v == 0):
                continue
            if name == "conversations":
                rows.append((x, labels["channel_type"], v))
            elif name == "usage":
                rows.append((x, labels["bot_id"], labels["channel_type"], v))
            else:
                rows.append((x, v))
    return collections.Counter(rows)


def duckdb_table(rows):
    """DuckDB's rows in the form of `answer_table`."""
    return collections.Counter(
        tuple(epoch_us(v) if isinstance(v, datetime.datetime) else v for v in row)
        for row in rows)


def make_data(convostat, events, out, more_writers=False, seed=7):
    os.makedirs(out, exist_ok=True)
    gen = [convostat, "generate", "--events", str(events), "--seed", str(seed)]
    sets = {}

    def once(path, args):
        if not os.path.exists(path):
            tmp = path + ".partial"
            subprocess.run(gen + ["--out", tmp] + args, check=True,
                           stdout=subprocess.DEVNULL)
            os.rename(tmp, path)
        return path

    sets["clustered"] = once(f"{out}/clustered.parquet", ["--layout", "clustered"])
    inter = once(f"{out}/interleaved.parquet", ["--layout", "interleaved"])
    sets["interleaved"] = inter
    # The Spark, pandas and small-group files are the pyarrow file
    # rewritten, as they were first measured.
    pyarrow_file = f"{out}/interleaved-pyarrow.parquet"

    def rewritten(name, write, needs):
        """Adds the data set `name`, written once by `write(partial path)`
        from the interleaved rows; skipped with a note when the module
        `needs` is not installed."""
        path = f"{out}/{name}.parquet"
        if not os.path.exists(path):
            try:
                write(path + ".partial")
            except ImportError:
                print(f"{needs} is not installed: skipping {name}", file=sys.stderr)
                return
            os.rename(path + ".partial", path)
        sets[name] = path

    def pyarrow_defaults(path):
        import pyarrow.parquet as pq
        pq.write_table(pq.read_table(inter), path)

    def spark(path):
        # Spark writes every column nullable and timestamps as INT96 (with
        # no statistics) unless told otherwise; pyarrow can write the same.
        import pyarrow as pa
        import pyarrow.parquet as pq
        table = pq.read_table(pyarrow_file)
        table = table.cast(pa.schema([f.with_nullable(True) for f in table.schema]))
        pq.write_table(table, path, use_deprecated_int96_timestamps=True)

    def pandas(path):
        # pandas with its usual dtypes: low-cardinality strings as
        # categoricals (Arrow dictionaries with int8 indices in the file's
        # schema) and timestamps in nanoseconds, pyarrow's defaults otherwise.
        import pandas  # noqa: F401 (the ImportError that skips the set)
        import pyarrow.parquet as pq
        frame = pq.read_table(pyarrow_file).to_pandas()
        for c in ["bot_id", "team_id", "bot_version", "channel_type", "language",
                  "event_type"]:
            frame[c] = frame[c].astype("category")
        frame.to_parquet(path)

    def small_groups(path):
        # A streaming writer's small pieces: 65,536-row groups of 64 KB
        # pages with a page index, zstd, large strings, nanoseconds.
        import pyarrow as pa
        import pyarrow.parquet as pq
        table = pq.read_table(pyarrow_file)
        fields = [f.with_type(pa.large_string()) if pa.types.is_string(f.type)
                  else f.with_type(pa.timestamp("ns", tz=f.type.tz))
                  if pa.types.is_timestamp(f.type) else f for f in table.schema]
        pq.write_table(table.cast(pa.schema(fields)), path, row_group_size=65536,
                       data_page_size=64 * 1024, write_page_index=True, compression="zstd")

    def polars(path):
        # Polars' default writer: zstd, 131,072-row groups, plain event ids
        # and timestamps.
        import polars as pl
        pl.read_parquet(inter).write_parquet(path)

    def fastparquet(path):
        # pandas' other engine, fastparquet, with pandas' defaults (snappy):
        # one row group of up to 50M rows, plain strings, and each column
        # chunk one data page (hundreds of megabytes decompressed).
        import fastparquet as fp
        import pyarrow.parquet as pq
        fp.write(path, pq.read_table(pyarrow_file).to_pandas(), compression="SNAPPY")

    def duckdb_writer(path):
        # DuckDB's own writer: 122,880-row row groups, plain event ids.
        duckdb.connect().execute(
            f"COPY (SELECT * FROM read_parquet('{inter}')) TO '{path}' (FORMAT parquet)")

    def millis(path):
        # Timestamps in milliseconds, as Java pipelines (Kafka Connect,
        # Spark with outputTimestampType=TIMESTAMP_MILLIS) write them.
        import pyarrow.parquet as pq
        pq.write_table(pq.read_table(pyarrow_file), path, coerce_timestamps="ms",
                       allow_truncated_timestamps=True)

    def duckdb_v2(path):
        # DuckDB's writer asked for Parquet v2: data page v2, timestamps
        # DELTA_BINARY_PACKED, event ids DELTA_LENGTH_BYTE_ARRAY.
        duckdb.connect().execute(
            f"COPY (SELECT * FROM read_parquet('{inter}')) TO '{path}' "
            "(FORMAT parquet, PARQUET_VERSION v2)")

    rewritten("interleaved-pyarrow", pyarrow_defaults, "pyarrow")
    rewritten("interleaved-spark", spark, "pyarrow")
    rewritten("interleaved-pandas", pandas, "pandas")
    rewritten("interleaved-small-groups", small_groups, "pyarrow")
    rewritten("interleaved-polars", polars, "polars")
    rewritten("interleaved-fastparquet", fastparquet, "fastparquet")
    rewritten("interleaved-duckdb", duckdb_writer, "duckdb")
    rewritten("interleaved-duckdb-v2", duckdb_v2, "duckdb")
    rewritten("interleaved-millis", millis, "pyarrow")
    if more_writers:
        # Other settings a writer may be given (`--more-writers`): the
        # pyarrow file with each codec, without dictionaries, in data page
        # v2 with delta-encoded strings, and as one row group.
        def pyarrow_with(**options):
            def write(path):
                import pyarrow.parquet as pq
                pq.write_table(pq.read_table(pyarrow_file), path, **options)
            return write

        for codec in ["gzip", "lz4", "brotli"]:
            rewritten(f"interleaved-{codec}", pyarrow_with(compression=codec), "pyarrow")
        rewritten("interleaved-uncompressed", pyarrow_with(compression="none"), "pyarrow")
        rewritten("interleaved-no-dictionary", pyarrow_with(use_dictionary=False), "pyarrow")
        ids = ["event_id", "conversation_id", "user_id", "message_id", "from_step_id",
               "to_step_id"]
        rewritten("interleaved-delta", pyarrow_with(
            use_dictionary=[c for c in COLUMNS if c not in ids],
            column_encoding={c: "DELTA_BYTE_ARRAY" for c in ids},
            data_page_version="2.0"), "pyarrow")
        rewritten("interleaved-one-group", pyarrow_with(row_group_size=events), "pyarrow")

        def uuids(path):
            # Event, conversation and user ids as UUIDs (36 characters,
            # random: a row group's conversation and user dictionaries
            # outgrow pyarrow's 1 MiB dictionary page and fall back to
            # plain pages), pyarrow's defaults otherwise.
            import pyarrow.parquet as pq
            schema = pq.read_schema(pyarrow_file)

            def md5(column):
                return UUID_SQL.format(f"md5({column})")
            table = duckdb.connect().execute(f"""
SELECT * REPLACE ({md5('event_id')} AS event_id,
                  {md5("bot_id || '/' || conversation_id")} AS conversation_id,
                  {md5('user_id')} AS user_id)
FROM read_parquet('{pyarrow_file}')""").to_arrow_table()
            pq.write_table(table.cast(schema), path)

        rewritten("interleaved-uuid", uuids, "pyarrow")
    hourly = f"{out}/hourly"
    if not os.path.exists(hourly):
        subprocess.run(gen + ["--out", hourly + ".partial", "--files", "2000"], check=True,
                       stdout=subprocess.DEVNULL)
        os.rename(hourly + ".partial", hourly)
    sets["hourly"] = hourly
    if more_writers:
        # The hourly files as other writers write them: pyarrow's defaults,
        # DuckDB's `COPY` (footers, statistics and page layouts of their
        # own, 2,000 times over).
        def each_part(name, write, needs):
            path = f"{out}/{name}"
            if not os.path.exists(path):
                os.makedirs(path + ".partial", exist_ok=True)
                try:
                    for part in sorted(os.listdir(hourly)):
                        write(f"{hourly}/{part}", f"{path}.partial/{part}")
                except ImportError:
                    print(f"{needs} is not installed: skipping {name}", file=sys.stderr)
                    return
                os.rename(path + ".partial", path)
            sets[name] = path

        def part_by_pyarrow(source, target):
            import pyarrow.parquet as pq
            pq.write_table(pq.read_table(source), target)

        connection = duckdb.connect()

        def part_by_duckdb(source, target):
            connection.execute(
                f"COPY (SELECT * FROM read_parquet('{source}')) TO '{target}' (FORMAT parquet)")

        each_part("hourly-pyarrow", part_by_pyarrow, "pyarrow")
        each_part("hourly-duckdb", part_by_duckdb, "duckdb")
    ndjson = f"{out}/events.ndjson"
    if not os.path.exists(ndjson):
        # The NDJSON writer gives the same rows in the same (interleaved) order.
        subprocess.run(gen + ["--out", ndjson + ".partial.ndjson"], check=True,
                       stdout=subprocess.DEVNULL)
        os.rename(ndjson + ".partial.ndjson", ndjson)
    sets["ndjson"] = ndjson
    return sets


def duckdb_source(path):
    if path.endswith(".ndjson"):
        return f"read_json('{path}', format='newline_delimited')"
    if os.path.isdir(path):
        return f"read_parquet('{path}/*.parquet')"
    return f"read_parquet('{path}')"


class Processes:
    """Runs convostat, timed from its start to its end with as little of
    Python's around it as can be: started with `posix_spawn`, its input
    `/dev/null`, its output read from one pipe, its errors written to a
    file kept for all runs, and reaped with `wait4`. `subprocess.run` (a
    pipe for each stream, a poll loop over both, a pipe to report a failed
    `exec`, descriptors closed one by one) added 0.15-0.25 ms a run on the
    2-core VM of the README (medians of 101: `/bin/true` 1.01 against 0.84
    ms), a tenth of a flow over 1M events."""

    def __init__(self):
        self.stdin = open(os.devnull, "rb")
        self.errors = tempfile.TemporaryFile()

    def output(self, argv, env):
        """The standard output of `argv`, run with `env`; an error if it fails."""
        errors_from = self.errors.seek(0, os.SEEK_END)
        read, write = os.pipe()
        with os.fdopen(read, "rb") as out:
            try:
                pid = os.posix_spawn(argv[0], argv, env, file_actions=[
                    (os.POSIX_SPAWN_DUP2, self.stdin.fileno(), 0),
                    (os.POSIX_SPAWN_DUP2, write, 1),
                    (os.POSIX_SPAWN_DUP2, self.errors.fileno(), 2),
                ])
            finally:
                os.close(write)
            chunks = []
            while chunk := out.read1(1 << 16):
                chunks.append(chunk)
        _, status, _ = os.wait4(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            self.errors.seek(errors_from)
            raise subprocess.CalledProcessError(code, argv, b"".join(chunks),
                                                self.errors.read())
        return b"".join(chunks).decode()


def best_of(runs, f):
    best = float("inf")
    result = None
    for _ in range(runs):
        t = time.perf_counter()
        result = f()
        best = min(best, time.perf_counter() - t)
    return best, result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--convostat", default=os.path.join(ROOT, "target/release/convostat"))
    p.add_argument("--baseline", help="another convostat build, timed in the same minutes "
                   "(e.g. an earlier commit's), for before/after columns")
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--data", default=os.path.join(ROOT, "target/bench-compare"))
    p.add_argument("--only", action="append", help="data set(s) to run")
    p.add_argument("--question", action="append",
                   help="question(s) to run, e.g. flow (default: all)")
    p.add_argument("--more-writers", action="store_true",
                   help="also the pyarrow file with other codecs, without dictionaries, "
                   "with delta-encoded strings, as one row group and with UUID ids, and "
                   "the hourly files as pyarrow and DuckDB write them")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=7,
                   help="the generator's seed for the data sets (another seed's are made "
                   "under <data>/seed<N>/)")
    p.add_argument("--file", action="append", default=[],
                   help="also run on this file or directory of the generator's events "
                   "(only these without --only)")
    args = p.parse_args()
    sets = {}
    if args.only or not args.file:
        root = args.data if args.seed == 7 else f"{args.data}/seed{args.seed}"
        sets = make_data(args.convostat, args.events, f"{root}/{args.events}",
                         args.more_writers, args.seed)
    for path in args.file:
        sets[os.path.basename(os.path.normpath(path))] = os.path.abspath(path)
    con = duckdb.connect()
    con.execute("SET threads=2")
    con.execute("SET enable_progress_bar=false")
    con.execute("SET TimeZone='UTC'")
    env = dict(os.environ, RAYON_NUM_THREADS="2")
    processes = Processes()
    table = []
    differing = []
    files = {os.path.abspath(f) for f in args.file}
    for data, path in sets.items():
        if args.only and data not in args.only and path not in files:
            continue
        source = duckdb_source(path)
        wanted = args.question or CLI_NAMES
        flows = {"flow", "flow mid-file"} & set(wanted)
        first, mid = (flow_conversations(con, source, conversation_ids(data)) if flows
                      else ("c1", "c1"))
        if flows:
            print(f"{data}: flows of conversations {first} and {mid}", flush=True)
        queries = sql(source, first, mid)
        for name, cli_args in cli(first, mid).items():
            if args.question and name not in args.question:
                continue
            def run(convostat):
                return lambda: processes.output([convostat] + cli_args + ["--input", path], env)
            if args.baseline:
                # Alternated, one run of each at a time, and each build
                # first in every other pair: a process started right after
                # DuckDB's query, or after the other build's, runs in a
                # different state of the machine.
                ours, base, text = float("inf"), float("inf"), None
                for i in range(args.runs):
                    for is_ours in (True, False) if i % 2 == 0 else (False, True):
                        t, out = best_of(1, run(args.convostat if is_ours else args.baseline))
                        if is_ours:
                            ours, text = min(ours, t), out
                        else:
                            base = min(base, t)
            else:
                ours, text = best_of(args.runs, run(args.convostat))
                base = None
            theirs, rows = best_of(args.runs, lambda: con.execute(queries[name]).fetchall())
            ratio = theirs / ours
            if name == "insights":
                rows = con.execute(exact_insights_sql(source)).fetchall()
            ours_rows, their_rows = answer_table(name, text), duckdb_table(rows)
            note = ""
            if ours_rows != their_rows:
                # Sorted by their text: a flow's first step may be null.
                only_ours = sorted((ours_rows - their_rows).elements(), key=repr)
                only_theirs = sorted((their_rows - ours_rows).elements(), key=repr)
                note = (f" (answers differ: {len(only_ours)} rows only convostat's, "
                        f"{len(only_theirs)} only DuckDB's)")
                differing.append((data, name, only_ours[:3], only_theirs[:3]))
            was = f"   baseline {base:8.4f} s {theirs / base:5.2f}x" if base else ""
            print(f"{data:<24} {name:<14} convostat {ours:8.4f} s   duckdb {theirs:8.4f} s"
                  f"   {ratio:5.2f}x{was}{note}", flush=True)
            table.append((data, name, ours, base, theirs, ratio, note))
    print()
    if args.baseline:
        print("| data set | question | baseline | convostat (process) | DuckDB (engine) "
              "| DuckDB / baseline | DuckDB / convostat |")
        print("|---|---|---:|---:|---:|---:|---:|")
    else:
        print("| data set | question | convostat (process) | DuckDB (engine) "
              "| DuckDB time / convostat time |")
        print("|---|---|---:|---:|---:|")
    for data, name, ours, base, theirs, ratio, note in table:
        was = f"{base:.4f} s | " if base else ""
        now = f"{ours:.4f} s | {theirs:.4f} s | "
        ratios = f"{theirs / base:.2f}× | {ratio:.2f}×" if base else f"{ratio:.2f}×"
        print(f"| {data} | {name} | {was}{now}{ratios}{note} |")
    print()
    if differing:
        for data, name, only_ours, only_theirs in differing:
            print(f"{data} {name}: answers differ; only convostat's (first 3): {only_ours}; "
                  f"only DuckDB's (first 3): {only_theirs}")
        sys.exit(1)
    print(f"Every answer ({len(table)}) agrees with DuckDB's, row by row and value by value.")


if __name__ == "__main__":
    main()
