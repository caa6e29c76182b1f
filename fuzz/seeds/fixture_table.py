"""The fixture events (fixtures/events.ndjson) as a pyarrow table, with
timestamps in microseconds, UTC: what the seed scripts of this folder
write in their layouts. Run them from the repository root."""
import json
from datetime import datetime

import pyarrow as pa


def fixture_rows():
    """The fixture's events, as dicts, in the file's order."""
    return [json.loads(l) for l in open("fixtures/events.ndjson") if l.strip()]


def fixture_table(rows):
    """`rows` (dicts of the fixture) as a table, one column per key,
    sorted by name; timestamps as `timestamp[us, UTC]`."""
    cols = sorted({k for r in rows for k in r})
    table = pa.table({c: [r.get(c) for r in rows] for c in cols})
    ts = pa.array(
        [datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")) for r in rows],
        pa.timestamp("us", tz="UTC"),
    )
    return table.set_column(cols.index("timestamp"), "timestamp", ts)
