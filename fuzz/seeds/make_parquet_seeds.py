"""Writes the small generated Parquet seeds of fuzz/seeds/parquet/ (pyarrow).

Uncompressed files with several encodings and physical layouts: mutations of
an uncompressed page reach the decoders, where compressed pages mostly just
fail to decompress. Run from the repository root:
    python3 fuzz/seeds/make_parquet_seeds.py
"""
import pyarrow as pa
import pyarrow.parquet as pq

from fixture_table import fixture_rows, fixture_table

rows = fixture_rows()[:6]
table = fixture_table(rows)
cols = table.column_names

out = "fuzz/seeds/parquet/"
# 1. plain, uncompressed, no dictionary, v1 pages, no statistics
pq.write_table(table, out + "plain_uncompressed.parquet", compression="none",
               use_dictionary=False, write_statistics=False)
# 2. dictionary encoded, uncompressed, two row groups, data page v2
pq.write_table(table, out + "dict_v2_two_groups.parquet", compression="none",
               use_dictionary=True, data_page_version="2.0", row_group_size=3)
# 3. large strings, nanosecond timestamps in another zone, snappy
large = pa.table({
    c: (table[c].cast(pa.large_string()) if pa.types.is_string(table[c].type)
        else table[c].cast(pa.timestamp("ns", tz="Europe/Brussels")))
    for c in cols
})
pq.write_table(large, out + "large_string_ns.parquet", compression="snappy")
# 4. Arrow dictionary columns (stored Arrow schema), millisecond naive timestamps
dct = pa.table({
    c: (table[c].dictionary_encode() if pa.types.is_string(table[c].type)
        else table[c].cast(pa.timestamp("ms")))
    for c in cols
})
pq.write_table(dct, out + "arrow_dictionary_ms.parquet", compression="zstd")
# 5. delta / byte-stream encodings where applicable, no dictionary
pq.write_table(table, out + "delta_encodings.parquet", compression="none",
               use_dictionary=False,
               column_encoding={c: "DELTA_BYTE_ARRAY" for c in cols if c != "timestamp"}
               | {"timestamp": "DELTA_BINARY_PACKED"})
# 6. DELTA_LENGTH_BYTE_ARRAY strings, v2 pages, uncompressed
pq.write_table(table, out + "delta_length_v2.parquet", compression="none",
               use_dictionary=False, data_page_version="2.0",
               column_encoding={c: "DELTA_LENGTH_BYTE_ARRAY" for c in cols if c != "timestamp"})
