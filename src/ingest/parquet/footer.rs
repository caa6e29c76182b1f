//! A Parquet file's footer, decoded as far as a scan reads it.
//!
//! A footer holds, for every column chunk of every row group, statistics:
//! a minimum and a maximum (two byte vectors for a string column) and a
//! null count. A scan reads them for a few columns only: the columns its
//! conditions name (row groups are pruned by their bounds, `may_contain`
//! and `holds_only` in the parent module) and the required columns (their
//! null counts prove a row group valid, `validity_proof`). [`read_footer`]
//! decodes the schema first, finds those columns' positions in it, and
//! decodes the rest of the footer with every other column's statistics
//! skipped, and the schema not decoded twice. Page encoding statistics
//! are kept for those columns alone (the selective reader asks a key
//! column's whether every page uses the dictionary), and size statistics
//! (byte and level histograms) are skipped for every column: nothing here
//! reads them.
//!
//! A flow's scope names the bot and the conversation, both required, so
//! it decodes the statistics of the 5 required columns of 17. Its whole
//! process, first conversation, medians of 41 alternated runs (timed from
//! a shell, start-up included): 4.26 → 3.98 ms on the interleaved file of
//! `benches/compare_duckdb.py`, 4.98 → 4.65 ms on the DuckDB-written one.
//!
//! A scan with a scope also leaves out of the decoding the row groups it
//! would not read ([`RowGroupPruning`]): the footer's thrift is walked
//! first (`row_group_skim`), and a copy holding only the other row groups
//! is decoded. A flow over DuckDB's 10M-event file (82 row groups, a
//! 160 KB footer) then decodes one or two row groups: 491 → 337 page
//! faults and 2.67 → 2.24 ms for its first conversation (`perf stat -r
//! 40`), and its bloom filters, read during the walk, leave the mid-file
//! conversation's false positives out too (918 → 763 faults).
//!
//! Anything unexpected on the way (a file too short for a footer, an
//! encrypted footer, a schema that does not decode) hands the file to the
//! parquet crate's own footer reader, so that its errors are the ones
//! reported. A footer whose statistics cannot be skipped (the crate skips
//! them by their thrift types, and its decoder accepts some that skipping
//! refuses: `fixtures/fuzz/parquet_delta_huge_value_count.parquet`) is
//! decoded with them all.

use parquet::basic::{ConvertedType, LogicalType, TimeUnit, Type as PhysicalType};
use parquet::errors::Result;
use parquet::file::metadata::{
    ParquetMetaData, ParquetMetaDataOptions, ParquetMetaDataReader, ParquetStatisticsPolicy,
};
use parquet::file::reader::ChunkReader;
use parquet::schema::types::SchemaDescriptor;

use super::bloom;
use super::row_group_skim::{skim, ChunkStatistics};

/// Bytes after the footer's metadata: its length (4 bytes, little endian)
/// and the magic `PAR1`.
const FOOTER_TAIL: u64 = 8;

/// Footers shorter than this are decoded whole, never pruned: they decode
/// in microseconds, and walking them first (`row_group_skim`) costs more
/// than it saves when their row groups are kept. Over 2,000 hourly files
/// (footers of 3.6 KB, one row group each), a mid-file flow took 31.9
/// against 30.9 ms with every footer walked (alternated runs, medians). A
/// 10M-event file's footer is 20 KB (pyarrow's 1M-row groups) to 160 KB
/// (DuckDB's 122,880-row groups). The crate's own tests prune every
/// footer, so that their small files take the pruned path.
const PRUNED_FROM_BYTES: usize = if cfg!(test) { 1 } else { 16 << 10 };

/// A decoded footer, perhaps of some of the file's row groups only.
#[derive(Debug)]
pub(super) struct Footer {
    pub metadata: ParquetMetaData,
    /// 1-based number in the file of the first row of each row group of
    /// `metadata`.
    pub first_rows: Vec<u64>,
    /// Rows in the file, over every row group (those left out too).
    pub rows: u64,
}

impl Footer {
    /// The footer of every row group.
    fn whole(metadata: ParquetMetaData) -> Self {
        let mut first_rows = Vec::with_capacity(metadata.num_row_groups());
        let mut rows = 0u64;
        for rg in metadata.row_groups() {
            first_rows.push(rows + 1);
            rows += rg.num_rows().max(0) as u64;
        }
        Self {
            metadata,
            first_rows,
            rows,
        }
    }
}

/// What lets a scan leave a row group out of the footer it decodes: the
/// row group's statistics prove that it holds no row in scope and that
/// none of its rows would be rejected, so the scan would not read it.
///
/// The proof is the scan's own (`validity_proof` and `may_contain` in the
/// parent module), kept to what the statistics alone show: every required
/// column without definition levels or with a null count of 0, timestamps
/// whose stored unit (milliseconds proven in range by their minimum and
/// maximum) fits microseconds, and a condition's string column whose
/// minimum and maximum, or bloom filter (read from the file here, as the
/// scan would read it), leave out every value asked for. Anything else
/// keeps the row group, and the scan decides on it as before. A row group
/// left out is not decoded at all, so damage in its metadata (which the
/// whole footer's decoding would report) goes unnoticed, as its pages do.
#[derive(Debug)]
pub(super) struct RowGroupPruning<'a> {
    /// Top-level columns and the values one of which a row must hold.
    pub conditions: Vec<(&'a str, &'a [String])>,
    /// The required top-level columns.
    pub required: Vec<&'a str>,
    /// The timestamp column.
    pub timestamp: &'a str,
}

/// Decodes the footer of the Parquet file `reader`, with the column
/// statistics of the top-level columns `keep_statistics` accepts by name,
/// and of no other column (see the module docs); with `pruning`, of the
/// row groups it cannot leave out only.
pub(super) fn read_footer<R: ChunkReader>(
    reader: &R,
    keep_statistics: impl Fn(&str) -> bool,
    pruning: Option<&RowGroupPruning<'_>>,
) -> Result<Footer> {
    let skipping =
        ParquetMetaDataOptions::new().with_size_stats_policy(ParquetStatisticsPolicy::SkipAll);
    let footer = metadata_bytes(reader).and_then(|metadata| {
        let schema = ParquetMetaDataReader::decode_schema(&metadata).ok()?;
        Some((metadata, schema))
    });
    let Some((metadata, schema)) = footer else {
        return ParquetMetaDataReader::new()
            .with_metadata_options(Some(skipping))
            .parse_and_finish(reader)
            .map(Footer::whole);
    };
    let keep: Vec<usize> = schema
        .columns()
        .iter()
        .enumerate()
        .filter(|(_, column)| match column.path().parts() {
            [name] => keep_statistics(name),
            _ => false,
        })
        .map(|(leaf, _)| leaf)
        .collect();
    let options = skipping
        .clone()
        .with_column_stats_policy(ParquetStatisticsPolicy::skip_except(&keep))
        .with_encoding_stats_policy(ParquetStatisticsPolicy::skip_except(&keep))
        .with_schema(schema.clone());
    let pruning = pruning.filter(|_| metadata.len() >= PRUNED_FROM_BYTES);
    if let Some(pruned) =
        pruning.and_then(|p| decode_pruned(reader, &metadata, &schema, p, &options))
    {
        return Ok(pruned);
    }
    ParquetMetaDataReader::decode_metadata_with_options(&metadata, Some(&options))
        .or_else(|_| {
            // The crate skips statistics by their thrift types alone, and its
            // decoder of statistics reads some damaged ones that skipping
            // refuses: a file read before is read still.
            ParquetMetaDataReader::decode_metadata_with_options(&metadata, Some(&skipping))
        })
        .map(Footer::whole)
}

/// The footer `metadata` decoded with `options` without the row groups
/// `pruning` leaves out, or `None` (decode it whole) when it leaves none
/// out, or cannot tell, or the smaller footer does not decode.
fn decode_pruned<R: ChunkReader>(
    reader: &R,
    metadata: &[u8],
    schema: &SchemaDescriptor,
    pruning: &RowGroupPruning<'_>,
    options: &ParquetMetaDataOptions,
) -> Option<Footer> {
    let leaf_of = |name: &str| {
        schema
            .columns()
            .iter()
            .position(|c| c.path().parts() == [name])
    };
    // The leaves whose statistics are read, each once: a condition's
    // column may be a required one, and so is the timestamp column.
    let mut tracked: Vec<usize> = Vec::new();
    let mut slot = |leaf: usize| match tracked.iter().position(|&l| l == leaf) {
        Some(slot) => slot,
        None => {
            tracked.push(leaf);
            tracked.len() - 1
        }
    };
    let mut conditions = Vec::new();
    for &(name, asked) in &pruning.conditions {
        let Some(leaf) = leaf_of(name) else { continue };
        if schema.column(leaf).physical_type() == PhysicalType::BYTE_ARRAY {
            conditions.push((slot(leaf), asked));
        }
    }
    if conditions.is_empty() {
        return None;
    }
    let mut required = Vec::new();
    for name in &pruning.required {
        let leaf = leaf_of(name)?;
        let column = schema.column(leaf);
        // A column read as Arrow's `Null` type is null in every row.
        if column.logical_type_ref() == Some(&LogicalType::Unknown) {
            return None;
        }
        if column.max_def_level() > 0 {
            required.push(slot(leaf));
        }
    }
    // Timestamps are read in the unit they are stored in when the column
    // has a timestamp type: an Arrow schema in the file's metadata can
    // name another unit only for INT96 columns and plain INT64 ones, for
    // which nothing is pruned here (INT96 timestamps, as Spark and pyarrow
    // write them, have no statistics anyway).
    let timestamp = leaf_of(pruning.timestamp)?;
    let column = schema.column(timestamp);
    let per_unit: i64 = match (column.physical_type(), column.logical_type_ref()) {
        (PhysicalType::INT64, Some(LogicalType::Timestamp(time))) => match time.unit {
            TimeUnit::MILLIS => 1_000,
            TimeUnit::MICROS | TimeUnit::NANOS => 1,
        },
        (PhysicalType::INT64, None) => match column.converted_type() {
            ConvertedType::TIMESTAMP_MILLIS => 1_000,
            ConvertedType::TIMESTAMP_MICROS => 1,
            _ => return None,
        },
        _ => return None,
    };
    let timestamp = slot(timestamp);
    // As `timestamps_fit_micros` in the parent module.
    let fits_micros = |v: Option<&[u8]>| {
        per_unit == 1
            || v.and_then(|v| v.get(..8))
                .and_then(|v| v.try_into().ok())
                .is_some_and(|v| i64::from_le_bytes(v).checked_mul(per_unit).is_some())
    };
    let left_out = |stats: &[ChunkStatistics<'_>]| {
        let valid = required.iter().all(|&s| stats[s].null_count == Some(0))
            && fits_micros(stats[timestamp].min)
            && fits_micros(stats[timestamp].max);
        let outside = |&(s, asked): &(usize, &[String])| {
            let s: &ChunkStatistics<'_> = &stats[s];
            s.present
                && asked.iter().all(|v| {
                    let v = v.as_bytes();
                    s.min.is_some_and(|min| v < min) || s.max.is_some_and(|max| v > max)
                })
        };
        // As `bloom_filters_exclude`, which the scan asks of a row group
        // its statistics let through (the filters of string columns only):
        // the narrowest condition's filter first, since it is the one
        // likely to exclude.
        let excluded = |&(s, asked): &(usize, &[String])| {
            let (offset, length) = stats[s].bloom_filter;
            offset.is_some() && bloom::may_hold_any_at(reader, offset, length, asked) == Some(false)
        };
        valid && (conditions.iter().any(outside) || conditions.iter().rev().any(excluded))
    };
    let skimmed = skim(metadata, schema.num_columns(), &tracked, |s| !left_out(s))?;
    let smaller = skimmed.without_left_out(metadata)?;
    let decoded =
        ParquetMetaDataReader::decode_metadata_with_options(&smaller, Some(options)).ok()?;
    (decoded.num_row_groups() == skimmed.kept.len()).then(|| Footer {
        metadata: decoded,
        first_rows: skimmed.kept.iter().map(|k| k.first_row).collect(),
        rows: skimmed.rows,
    })
}

/// The footer's metadata bytes, if the file ends as an unencrypted
/// Parquet file does and is long enough to hold them.
fn metadata_bytes<R: ChunkReader>(reader: &R) -> Option<bytes::Bytes> {
    let length = reader.len();
    let tail_at = length.checked_sub(FOOTER_TAIL)?;
    let tail = reader.get_bytes(tail_at, FOOTER_TAIL as usize).ok()?;
    if tail.len() != FOOTER_TAIL as usize || tail[4..] != *b"PAR1" {
        return None;
    }
    let metadata_length = u32::from_le_bytes(tail[..4].try_into().ok()?);
    let start = tail_at.checked_sub(u64::from(metadata_length))?;
    let metadata = reader
        .get_bytes(start, usize::try_from(metadata_length).ok()?)
        .ok()?;
    (metadata.len() == metadata_length as usize).then_some(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use bytes::Bytes;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};

    /// A file of two row groups with three columns, `a`, `b` (strings with
    /// a null) and `n`, each with chunk statistics.
    fn file() -> Bytes {
        let a: ArrayRef = Arc::new(StringArray::from(vec!["x", "y", "z", "w"]));
        let b: ArrayRef = Arc::new(StringArray::from(vec![
            Some("p"),
            None,
            Some("q"),
            Some("r"),
        ]));
        let n: ArrayRef = Arc::new(Int64Array::from(vec![4, 3, 2, 1]));
        let batch = RecordBatch::try_from_iter([("a", a), ("b", b), ("n", n)]).unwrap();
        let props = WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_max_row_group_row_count(Some(2))
            .build();
        crate::ingest::parquet::tests::write(&batch, props)
    }

    /// The columns kept have the statistics (and page encoding statistics)
    /// the crate's own reader decodes; the others have none; everything
    /// else is the same.
    #[test]
    fn statistics_are_kept_for_the_columns_asked_for_only() {
        let file = file();
        let full = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .unwrap();
        let read = read_footer(&file, |name| name == "b", None)
            .unwrap()
            .metadata;
        assert_eq!(read.num_row_groups(), 2);
        assert_eq!(
            read.file_metadata().schema_descr().root_schema(),
            full.file_metadata().schema_descr().root_schema()
        );
        assert_eq!(read.file_metadata().num_rows(), 4);
        for (rg, whole) in read.row_groups().iter().zip(full.row_groups()) {
            assert_eq!(rg.num_rows(), whole.num_rows());
            assert!(rg.column(0).statistics().is_none());
            assert!(rg.column(2).statistics().is_none());
            assert!(whole.column(0).statistics().is_some());
            assert_eq!(rg.column(1).statistics(), whole.column(1).statistics());
            // So are page encoding statistics (as the crate's mask).
            assert!(whole.column(0).page_encoding_stats_mask().is_some());
            assert!(rg.column(0).page_encoding_stats_mask().is_none());
            assert_eq!(
                rg.column(1).page_encoding_stats_mask(),
                whole.column(1).page_encoding_stats_mask()
            );
            for (column, whole) in rg.columns().iter().zip(whole.columns()) {
                assert_eq!(column.byte_range(), whole.byte_range());
                assert_eq!(column.compression(), whole.compression());
            }
        }
        let null_count = read
            .row_group(0)
            .column(1)
            .statistics()
            .unwrap()
            .null_count_opt();
        assert_eq!(null_count, Some(1));
        let none = read_footer(&file, |_| false, None).unwrap().metadata;
        assert!(none
            .row_groups()
            .iter()
            .all(|rg| rg.columns().iter().all(|c| c.statistics().is_none())));
    }

    /// A footer whose statistics the crate's decoder reads but its skipping
    /// refuses (a fuzzed file) is read as the crate reads it.
    #[test]
    fn statistics_that_cannot_be_skipped_are_decoded() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/fuzz/parquet_delta_huge_value_count.parquet"
        );
        let file = Bytes::from(std::fs::read(path).unwrap());
        let metadata = metadata_bytes(&file).unwrap();
        let skipping_all = ParquetMetaDataOptions::new()
            .with_column_stats_policy(ParquetStatisticsPolicy::SkipAll);
        assert!(ParquetMetaDataReader::decode_metadata_with_options(
            &metadata,
            Some(&skipping_all)
        )
        .is_err());
        let full = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .unwrap();
        let read = read_footer(&file, |_| false, None).unwrap().metadata;
        assert_eq!(read.num_row_groups(), full.num_row_groups());
        assert_eq!(
            read.row_group(0).column(0).statistics(),
            full.row_group(0).column(0).statistics()
        );
    }

    /// A file cut short, or with a damaged footer, gets the crate's own
    /// error, never a panic.
    #[test]
    fn a_damaged_footer_is_the_crates_error() {
        let file = file();
        for cut in [0, 3, 7, 8, 12, file.len() / 2, file.len() - 1] {
            let short = file.slice(..cut);
            let ours = read_footer(&short, |_| true, None)
                .map(|_| ())
                .map_err(|e| e.to_string());
            let theirs = ParquetMetaDataReader::new()
                .parse_and_finish(&short)
                .map(|_| ())
                .map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "cut at {cut}");
        }
        let tail = file.len() - 8;
        for at in (0..file.len()).step_by(7).chain(tail..file.len()) {
            let mut damaged = file.to_vec();
            damaged[at] ^= 0x5a;
            let _ = read_footer(&Bytes::from(damaged), |_| true, None);
        }
    }

    /// Six row groups of 100 rows: `name`'s values in row group `g` run
    /// from `g{g}-00` to `g{g}-99` (even numbers only), `req` is null in
    /// one row of row group 4, `ts` holds microseconds.
    fn by_group(bloom: bool) -> Bytes {
        let n = 600;
        let name: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("g{}-{:02}", i / 100, (i % 50) * 2)),
        ));
        let req: ArrayRef = Arc::new(StringArray::from_iter(
            (0..n).map(|i| (i != 444).then_some("r")),
        ));
        let ts: ArrayRef = Arc::new(
            arrow_array::TimestampMicrosecondArray::from_iter_values(
                (0..n as i64).map(|i| 1_700_000_000_000_000 + i),
            )
            .with_timezone("UTC"),
        );
        let batch = RecordBatch::try_from_iter([("name", name), ("req", req), ("ts", ts)]).unwrap();
        let props = WriterProperties::builder()
            .set_bloom_filter_enabled(bloom)
            .set_max_row_group_row_count(Some(100))
            .build();
        crate::ingest::parquet::tests::write(&batch, props)
    }

    /// The first rows of the row groups a pruned footer of `file` keeps,
    /// with `name` one of `values`, and the rows it counts in the file.
    fn kept(file: &Bytes, values: &[String]) -> (Vec<u64>, u64) {
        let pruning = RowGroupPruning {
            conditions: vec![("name", values)],
            required: vec!["name", "req", "ts"],
            timestamp: "ts",
        };
        let footer = read_footer(file, |_| true, Some(&pruning)).unwrap();
        assert_eq!(footer.first_rows.len(), footer.metadata.num_row_groups());
        (footer.first_rows, footer.rows)
    }

    /// A row group is left out when its statistics prove it valid and
    /// either its statistics or its bloom filter prove it out of scope;
    /// row group 4, with a null, is always kept (the scan reads it whole).
    #[test]
    fn row_groups_are_left_out_by_statistics_and_bloom_filters() {
        let values = |v: &[&str]| v.iter().map(|v| v.to_string()).collect::<Vec<_>>();
        for bloom in [true, false] {
            let file = by_group(bloom);
            // In row group 2's range, and there.
            assert_eq!(kept(&file, &values(&["g2-10"])), (vec![201, 401], 600));
            // In row group 2's range, not there: its bloom filter says so.
            let absent = kept(&file, &values(&["g2-11"]));
            let want = if bloom { vec![401] } else { vec![201, 401] };
            assert_eq!(absent, (want, 600));
            // Outside every range.
            assert_eq!(kept(&file, &values(&["a", "z"])), (vec![401], 600));
            // One value of two in range.
            assert_eq!(kept(&file, &values(&["z", "g5-00"])), (vec![401, 501], 600));
        }
        // Without pruning, or with a condition on a column the file does
        // not have, every row group.
        let file = by_group(true);
        let whole = read_footer(&file, |_| true, None).unwrap();
        assert_eq!(whole.first_rows, [1, 101, 201, 301, 401, 501]);
        let x = values(&["x"]);
        let pruning = RowGroupPruning {
            conditions: vec![("other", &x[..])],
            required: vec!["name"],
            timestamp: "ts",
        };
        let read = read_footer(&file, |_| true, Some(&pruning)).unwrap();
        assert_eq!(read.first_rows.len(), 6);
    }

    /// A reader of `file` that counts the ranges asked of it.
    struct CountingReader {
        file: Bytes,
        reads: AtomicUsize,
    }

    impl parquet::file::reader::Length for CountingReader {
        fn len(&self) -> u64 {
            self.file.len() as u64
        }
    }

    impl parquet::file::reader::ChunkReader for CountingReader {
        type T = <Bytes as parquet::file::reader::ChunkReader>::T;

        fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.file.get_read(start)
        }

        fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.file.get_bytes(start, length)
        }
    }

    /// With a wide condition every row group holds (a bot, in an
    /// interleaved file) and a narrow one none does (a conversation within
    /// every row group's bounds), each row group costs one filter's probe
    /// (its header and one block), not two: the narrow condition's filter
    /// is probed first, and excludes it.
    #[test]
    fn the_narrowest_condition_s_bloom_filter_is_probed_first() {
        let n = 600;
        let wide: ArrayRef = Arc::new(StringArray::from_iter_values((0..n).map(|_| "w")));
        let name: ArrayRef = Arc::new(StringArray::from_iter_values((0..n).map(|i| {
            match i % 100 {
                0 => "a".to_owned(),
                99 => "z".to_owned(),
                k => format!("g{}-{k:02}", i / 100),
            }
        })));
        let ts: ArrayRef = Arc::new(
            arrow_array::TimestampMicrosecondArray::from_iter_values(
                (0..n as i64).map(|i| 1_700_000_000_000_000 + i),
            )
            .with_timezone("UTC"),
        );
        let batch =
            RecordBatch::try_from_iter([("wide", wide), ("name", name), ("ts", ts)]).unwrap();
        let props = WriterProperties::builder()
            .set_bloom_filter_enabled(true)
            .set_max_row_group_row_count(Some(100))
            .build();
        let reader = CountingReader {
            file: crate::ingest::parquet::tests::write(&batch, props),
            reads: Default::default(),
        };
        let (w, absent) = (vec!["w".to_owned()], vec!["n".to_owned()]);
        let pruning = RowGroupPruning {
            conditions: vec![("wide", &w[..]), ("name", &absent[..])],
            required: vec!["wide", "name", "ts"],
            timestamp: "ts",
        };
        let footer = read_footer(&reader, |_| true, Some(&pruning)).unwrap();
        let reads = reader.reads.load(Ordering::Relaxed);
        assert!(footer.first_rows.is_empty(), "{:?}", footer.first_rows);
        // Each of the six row groups: a header and a block; and the footer.
        assert!(reads <= 6 * 2 + 2, "{reads} reads");
        assert!(reads >= 6 * 2, "{reads} reads");
    }
}
