//! Helpers shared by the integration tests.

use arrow_array::RecordBatch;

/// `batch` as a Parquet file written by arrow's writer with its default
/// settings, in row groups of at most `rows_per_group` rows.
#[allow(dead_code)] // not every test crate that shares this module uses it
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

/// A copy of the files of the data directory `dir`: what a crash now would
/// leave on disk, to open without touching `dir`.
#[allow(dead_code)] // not every test crate that shares this module uses it
pub fn crash_image(dir: &std::path::Path) -> tempfile::TempDir {
    let image = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), image.path().join(entry.file_name())).unwrap();
    }
    image
}
