"""Writes the Parquet seeds of fuzz/seeds/batch/ (pyarrow): the fixture
events (three bots, two teams) in layouts that take batch jobs through the
selective reader: pages of a few rows, so that pages are skipped, read in
part and read whole; page indexes and page statistics; dictionaries, plain
and delta strings; data page v1 and v2; several codecs. Run from the
repository root:
    python3 fuzz/seeds/make_batch_seeds.py
"""
import os

import pyarrow.parquet as pq

from fixture_table import fixture_rows, fixture_table

rows = sorted(fixture_rows(), key=lambda r: r["timestamp"])
table = fixture_table(rows)
strings = [c for c in table.column_names if c != "timestamp"]

out = "fuzz/seeds/batch/"
os.makedirs(out, exist_ok=True)
small = dict(data_page_size=64, write_batch_size=4, row_group_size=13)
pq.write_table(table, out + "snappy_small_pages_index.parquet", compression="snappy",
               write_page_index=True, **small)
pq.write_table(table, out + "zstd_v2_dictionary.parquet", compression="zstd",
               data_page_version="2.0", **small)
pq.write_table(table, out + "plain_uncompressed.parquet", compression="none",
               use_dictionary=False, write_page_index=True, **small)
pq.write_table(table, out + "delta_v2_snappy.parquet", compression="snappy",
               use_dictionary=False, data_page_version="2.0",
               column_encoding={c: "DELTA_LENGTH_BYTE_ARRAY" for c in strings}
               | {"timestamp": "DELTA_BINARY_PACKED"}, **small)
pq.write_table(table, out + "prefix_delta_lz4.parquet", compression="lz4",
               use_dictionary=False,
               column_encoding={c: "DELTA_BYTE_ARRAY" for c in strings}, **small)
pq.write_table(table, out + "gzip_one_page.parquet", compression="gzip",
               use_dictionary=["bot_id", "team_id"], write_statistics=False)
