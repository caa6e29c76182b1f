#!/usr/bin/env python3
"""Time the batch target queries with DuckDB on the same Parquet file, for
comparison with `cargo bench --bench report` (not part of the test suite).

    pip install duckdb
    python3 benches/compare_duckdb.py target/bench-data/events-10000000-7.parquet

Each query is written to mean what SPEC 2/4 say: a conversation's start is
its earliest event, its attributes those of its first event by
(timestamp, event_id); DuckDB runs with `SET threads=2`, and the time
reported is the best of three runs of the query inside one connection
(engine time, without process start).
"""
import sys
import time

import duckdb

path = sys.argv[1]
bot, team = "bot-acme-support", "team-acme"
conversations = f"""
WITH c AS (
  SELECT min(timestamp) AS start,
         first(bot_version ORDER BY timestamp, event_id) AS version,
         first(channel_type ORDER BY timestamp, event_id) AS channel
  FROM read_parquet('{path}') WHERE bot_id = '{bot}'
  GROUP BY conversation_id)
SELECT date_trunc('day', start) AS day, coalesce(channel, '(none)'), count(*)
FROM c WHERE version = 'LIVE' AND start >= TIMESTAMPTZ '2024-01-01 00:00:00+00'
  AND start < TIMESTAMPTZ '2024-05-01 00:00:00+00'
GROUP BY ALL ORDER BY ALL"""
insights = f"""
WITH c AS (
  SELECT min(timestamp) AS start,
         floor(epoch_us(max(timestamp)) / 1e6 - epoch_us(min(timestamp)) / 1e6) AS duration,
         first(bot_version ORDER BY timestamp, event_id) AS version
  FROM read_parquet('{path}') WHERE bot_id = '{bot}'
  GROUP BY conversation_id)
SELECT date_trunc('day', start) AS day, quantile_disc(duration, 0.95)
FROM c WHERE version = 'LIVE' AND start >= TIMESTAMPTZ '2024-01-01 00:00:00+00'
  AND start < TIMESTAMPTZ '2024-05-01 00:00:00+00'
GROUP BY ALL ORDER BY ALL"""
usage = f"""
WITH c AS (
  SELECT bot_id, min(timestamp) AS start,
         first(team_id ORDER BY timestamp, event_id) AS team,
         first(channel_type ORDER BY timestamp, event_id) AS channel
  FROM read_parquet('{path}')
  GROUP BY bot_id, conversation_id)
SELECT date_trunc('day', start) AS day, bot_id, coalesce(channel, '(none)'), count(*)
FROM c WHERE team = '{team}' AND start >= TIMESTAMPTZ '2024-01-01 00:00:00+00'
  AND start < TIMESTAMPTZ '2024-05-01 00:00:00+00'
GROUP BY ALL ORDER BY ALL"""
flow = f"""
WITH t AS (
  SELECT event_id, timestamp, from_step_id, to_step_id,
         row_number() OVER (ORDER BY timestamp, event_id) AS depth
  FROM read_parquet('{path}')
  WHERE bot_id = '{bot}' AND conversation_id = 'c1' AND event_type = 'transition')
SELECT * FROM t ORDER BY depth"""

con = duckdb.connect()
con.execute("SET threads=2")
con.execute("SET TimeZone='UTC'")
for name, sql in [("conversations", conversations), ("insights", insights),
                  ("usage", usage), ("flow", flow)]:
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        rows = con.execute(sql).fetchall()
        best = min(best, time.perf_counter() - t)
    print(f"duckdb {name:<14} {best * 1000:8.1f} ms  ({len(rows)} rows)")
