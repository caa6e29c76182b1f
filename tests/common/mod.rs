//! Helpers shared by the integration tests.

use arrow_array::RecordBatch;

/// `batch` as a Parquet file written by arrow's writer with its default
/// settings, in row groups of at most `rows_per_group` rows.
pub fn parquet_bytes(batch: &RecordBatch, rows_per_group: usize) -> Vec<u8> {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(rows_per_group.max(1)))
        .build();
    let mut out = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    out
}
