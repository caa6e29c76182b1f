//! Writing a synthetic data set to a file: Parquet (Snappy, dictionary
//! encoding, page statistics, row groups of at most 262,144 rows) or NDJSON
//! (one JSON object per line, keys = column names, RFC 3339 UTC timestamps,
//! null fields omitted). Both stream batch by batch from
//! [`EventGenerator`]; errors are data errors that name the file.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, RecordBatch};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::{EventGenerator, GeneratorConfig};
use crate::error::{Error, Result};
use crate::schema::event_schema;

/// Maximum rows per Parquet row group: small enough for row-group pruning
/// by `bot_id` and time, large enough for good compression.
const MAX_ROW_GROUP_ROWS: usize = 262_144;

/// Writes the data set of `config` to `path`: NDJSON when the path ends in
/// `.ndjson` or `.jsonl` (any case), otherwise Parquet. Returns the number
/// of rows written.
///
/// # Errors
/// A data error naming the file when it cannot be created or written.
pub fn write_file(path: &Path, config: &GeneratorConfig) -> Result<u64> {
    let is_ndjson = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("ndjson") || e.eq_ignore_ascii_case("jsonl"));
    if is_ndjson {
        write_ndjson(path, config)
    } else {
        write_parquet(path, config)
    }
}

/// Writes the data set of `config` to `path` as Parquet (Snappy, dictionary
/// encoding, page-level statistics, row groups of at most 262,144 rows).
/// Returns the number of rows written.
///
/// # Errors
/// A data error naming the file when it cannot be created or written.
pub fn write_parquet(path: &Path, config: &GeneratorConfig) -> Result<u64> {
    let mut writer = ParquetPart::create(path)?;
    for batch in EventGenerator::new(config.clone()) {
        writer.write(&batch)?;
    }
    writer.close()
}

/// Writes the data set of `config` as `files` Parquet files
/// `part-00000.parquet`, ... in the directory `dir` (created if needed),
/// consecutive in row order with equal row counts (the last may be
/// shorter): with [`super::Layout::Interleaved`], time partitions such as
/// a pipeline's hourly files. Returns the number of rows written.
///
/// # Errors
/// A data error naming the directory or file when it cannot be written.
pub fn write_parquet_parts(dir: &Path, config: &GeneratorConfig, files: usize) -> Result<u64> {
    std::fs::create_dir_all(dir).map_err(|e| Error::data_from(dir.display().to_string(), e))?;
    let files = files.max(1);
    let per_file = config.events.div_ceil(files).max(1);
    let mut written = 0u64;
    let mut part: Option<ParquetPart> = None;
    let mut parts = 0usize;
    for batch in EventGenerator::new(config.clone()) {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let current = match part.as_mut() {
                Some(p) => p,
                None => {
                    let path = dir.join(format!("part-{parts:05}.parquet"));
                    parts += 1;
                    part.insert(ParquetPart::create(&path)?)
                }
            };
            let take = (per_file - current.rows as usize).min(batch.num_rows() - offset);
            current.write(&batch.slice(offset, take))?;
            offset += take;
            if current.rows as usize == per_file {
                written += part.take().map_or(Ok(0), ParquetPart::close)?;
            }
        }
    }
    if let Some(p) = part {
        written += p.close()?;
    }
    Ok(written)
}

/// One Parquet file being written with the generator's settings.
struct ParquetPart {
    path: String,
    writer: ArrowWriter<File>,
    rows: u64,
}

impl ParquetPart {
    fn create(path: &Path) -> Result<Self> {
        let path = path.display().to_string();
        let file = File::create(&path).map_err(|e| Error::data_from(path.clone(), e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_dictionary_enabled(true)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
            .build();
        // The writer buffers its output itself.
        let writer = ArrowWriter::try_new(file, event_schema(), Some(props))
            .map_err(|e| Error::data_from(path.clone(), e))?;
        Ok(Self {
            path,
            writer,
            rows: 0,
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer
            .write(batch)
            .map_err(|e| Error::data_from(self.path.clone(), e))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn close(self) -> Result<u64> {
        let path = self.path;
        self.writer.close().map_err(|e| Error::data_from(path, e))?;
        Ok(self.rows)
    }
}

/// Writes the data set of `config` to `path` as NDJSON: one JSON object per
/// line, keys = column names in schema order, `timestamp` as RFC 3339 UTC
/// text (`2024-03-01T10:00:00.250Z`), null fields omitted. Returns the
/// number of rows written.
///
/// # Errors
/// A data error naming the file when it cannot be created or written.
pub fn write_ndjson(path: &Path, config: &GeneratorConfig) -> Result<u64> {
    let context = || path.display().to_string();
    let file = File::create(path).map_err(|e| Error::data_from(context(), e))?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    let mut rows = 0u64;
    for batch in EventGenerator::new(config.clone()) {
        write_ndjson_batch(&mut out, &batch).map_err(|e| Error::data_from(context(), e))?;
        rows += batch.num_rows() as u64;
    }
    out.flush().map_err(|e| Error::data_from(context(), e))?;
    Ok(rows)
}

/// A column of a batch as the writer sees it.
enum Column<'a> {
    Text(&'a arrow_array::StringArray),
    Micros(&'a arrow_array::TimestampMicrosecondArray),
}

/// Appends the rows of `batch` (canonical schema) to `out` as NDJSON.
fn write_ndjson_batch<W: Write>(out: &mut W, batch: &RecordBatch) -> io::Result<()> {
    let schema = batch.schema();
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let column = if let Some(text) = array.as_string_opt::<i32>() {
            Column::Text(text)
        } else if let Some(micros) = array.as_primitive_opt::<TimestampMicrosecondType>() {
            Column::Micros(micros)
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("column `{}` has unexpected type", field.name()),
            ));
        };
        // The key with its quotes and colon, rendered once per batch.
        let key = format!("{}:", serde_json::to_string(field.name())?);
        columns.push((key, column));
    }
    for row in 0..batch.num_rows() {
        out.write_all(b"{")?;
        let mut first = true;
        for (key, column) in &columns {
            let is_null = match column {
                Column::Text(a) => a.is_null(row),
                Column::Micros(a) => a.is_null(row),
            };
            if is_null {
                continue;
            }
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            out.write_all(key.as_bytes())?;
            match column {
                Column::Text(a) => serde_json::to_writer(&mut *out, a.value(row))?,
                Column::Micros(a) => {
                    let text = crate::time::format_utc_micros(a.value(row));
                    serde_json::to_writer(&mut *out, &text)?;
                }
            }
        }
        out.write_all(b"}\n")?;
    }
    Ok(())
}
