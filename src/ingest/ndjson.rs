//! NDJSON input: one JSON object per line, keys = column names.
//!
//! Lines are decoded with `arrow-json` into batches of the canonical
//! columns, all as strings; `timestamp` is then parsed strictly as RFC 3339
//! with `Z` or an offset (SPEC 7), so that a malformed time is an error
//! naming its line instead of a silent guess. Blank lines are skipped;
//! unknown keys are ignored; an absent key or `null` is null. Errors name
//! the line (1-based, counting blank lines).

use std::io::BufRead;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow_json::reader::Decoder;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::schema::{col, COLUMNS};
use crate::time::parse_rfc3339_micros;

/// Rows per decoded batch.
const BATCH_ROWS: usize = 8192;

/// Longest accepted line. A line is one event; anything longer is not an
/// event but a broken or hostile file, refused before it is buffered whole.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Schema the JSON decoder fills: every column as a nullable string.
fn decode_schema() -> SchemaRef {
    Arc::new(Schema::new(
        COLUMNS
            .iter()
            .map(|(name, _)| Field::new(*name, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

/// Deepest nesting of arrays and objects accepted in a line. An event is a
/// flat object; the limit leaves room for nested values under unknown keys
/// while keeping hostile input (thousands of levels) away from the
/// recursive parts of the JSON decoder.
pub const MAX_NESTING: usize = 64;

/// Refuses a line nested deeper than [`MAX_NESTING`]. Cheap in the common
/// case: only lines with more brackets than the limit are scanned.
fn check_nesting(line: &[u8], line_no: u64) -> Result<()> {
    // Branch-free so that it vectorises.
    let brackets: usize = line
        .iter()
        .map(|&b| usize::from(b == b'[') + usize::from(b == b'{'))
        .sum();
    if brackets <= MAX_NESTING {
        return Ok(());
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in line {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Error::data(
                        format!("line {line_no}"),
                        format!("JSON nested deeper than {MAX_NESTING} levels"),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Up to [`BATCH_ROWS`] non-blank lines, contiguous, with their numbers.
#[derive(Default)]
struct Chunk {
    text: Vec<u8>,
    /// End offset (exclusive) of each line in `text`, newline included.
    ends: Vec<usize>,
    /// 1-based line number of each line.
    lines: Vec<u64>,
}

impl Chunk {
    fn line(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
}

/// Reads the next chunk; `line_no` counts lines read so far.
fn read_chunk(reader: &mut impl BufRead, line_no: &mut u64) -> Result<Chunk> {
    let mut chunk = Chunk::default();
    while chunk.lines.len() < BATCH_ROWS {
        let start = chunk.text.len();
        let n = read_line(reader, &mut chunk.text, *line_no + 1)?;
        if n == 0 {
            break;
        }
        *line_no += 1;
        if chunk.text[start..].iter().all(u8::is_ascii_whitespace) {
            chunk.text.truncate(start);
            continue;
        }
        if !chunk.text.ends_with(b"\n") {
            chunk.text.push(b'\n');
        }
        check_nesting(&chunk.text[start..], *line_no)?;
        chunk.ends.push(chunk.text.len());
        chunk.lines.push(*line_no);
    }
    Ok(chunk)
}

/// Reads NDJSON from `reader`, calling `sink` with each batch (canonical
/// column names, timestamps as µs UTC) and the line number of each row.
///
/// Lines are read in chunks of `BATCH_ROWS` on the calling thread and
/// decoded in parallel, a round of chunks at a time; `sink` may be called
/// from several threads. When several lines are bad, the error names the
/// first.
pub fn read_ndjson(
    mut reader: impl BufRead,
    sink: impl Fn(RecordBatch, &[u64]) -> Result<()> + Sync,
) -> Result<()> {
    let schema = decode_schema();
    let round = 2 * rayon::current_num_threads().max(1);
    let mut line_no = 0u64;
    loop {
        let mut chunks = Vec::with_capacity(round);
        let mut read_error = None;
        let mut done = false;
        while chunks.len() < round {
            match read_chunk(&mut reader, &mut line_no) {
                Ok(chunk) if chunk.lines.is_empty() => {
                    done = true;
                    break;
                }
                Ok(chunk) => {
                    let full = chunk.lines.len() == BATCH_ROWS;
                    chunks.push(chunk);
                    if !full {
                        done = true;
                        break;
                    }
                }
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
        }
        let results: Vec<Result<()>> = chunks
            .par_iter()
            .map(|chunk| sink(decode_chunk(&schema, chunk)?, &chunk.lines))
            .collect();
        // Errors in line order: decoded chunks come before the line that
        // stopped reading.
        results.into_iter().collect::<Result<()>>()?;
        if let Some(e) = read_error {
            return Err(e);
        }
        if done {
            return Ok(());
        }
    }
}

/// Reads one line (appended to `line`), refusing lines longer than
/// [`MAX_LINE_BYTES`]. Returns the bytes read, 0 at the end.
fn read_line<R: BufRead>(reader: &mut R, line: &mut Vec<u8>, line_no: u64) -> Result<usize> {
    let mut limited = std::io::Read::take(&mut *reader, MAX_LINE_BYTES as u64 + 1);
    let n = limited
        .read_until(b'\n', line)
        .map_err(|e| Error::data_from(format!("line {line_no}"), e))?;
    if n > MAX_LINE_BYTES {
        return Err(Error::data(
            format!("line {line_no}"),
            format!("line longer than {MAX_LINE_BYTES} bytes"),
        ));
    }
    Ok(n)
}

fn at_line(line_no: u64, e: arrow_schema::ArrowError) -> Error {
    Error::data_from(format!("line {line_no}"), e)
}

/// Feeds all of `bytes` to the decoder.
fn feed(
    decoder: &mut Decoder,
    mut bytes: &[u8],
) -> std::result::Result<(), arrow_schema::ArrowError> {
    while !bytes.is_empty() {
        let used = decoder.decode(bytes)?;
        if used == 0 {
            // A full decoder stops before trailing whitespace; anything
            // else left over is more rows than a chunk holds.
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(());
            }
            return Err(arrow_schema::ArrowError::JsonError(
                "decoder made no progress".into(),
            ));
        }
        bytes = &bytes[used..];
    }
    Ok(())
}

fn new_decoder(schema: &SchemaRef) -> Result<Decoder> {
    arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(BATCH_ROWS)
        .build_decoder()
        .map_err(|e| Error::data_from("ndjson", e))
}

/// Decodes a chunk into a batch with parsed timestamps; on failure, finds
/// the first failing line by decoding lines one at a time.
fn decode_chunk(schema: &SchemaRef, chunk: &Chunk) -> Result<RecordBatch> {
    let mut decoder = new_decoder(schema)?;
    let decoded = feed(&mut decoder, &chunk.text).and_then(|_| decoder.flush());
    match decoded {
        Ok(Some(batch)) => with_timestamps(batch, &chunk.lines),
        Ok(None) => Err(Error::data("ndjson", "no rows decoded")),
        Err(e) => {
            for (i, line_no) in chunk.lines.iter().enumerate() {
                let mut single = new_decoder(schema)?;
                feed(&mut single, chunk.line(i))
                    .and_then(|_| single.flush())
                    .map_err(|e| at_line(*line_no, e))?;
            }
            Err(Error::data_from("ndjson", e))
        }
    }
}

/// Replaces the string `timestamp` column by parsed µs timestamps.
fn with_timestamps(batch: RecordBatch, lines: &[u64]) -> Result<RecordBatch> {
    let schema = batch.schema();
    let idx = schema
        .index_of(col::TIMESTAMP)
        .map_err(|e| Error::data_from("ndjson", e))?;
    let text = batch.column(idx).as_string::<i32>();
    let mut micros = Vec::with_capacity(text.len());
    for (row, value) in text.iter().enumerate() {
        micros.push(match value {
            None => None,
            Some(v) => Some(parse_rfc3339_micros(v).map_err(|_| {
                let line = lines.get(row).copied().unwrap_or(0);
                Error::data(
                    format!("line {line}, column `{}`", col::TIMESTAMP),
                    format!(
                        "`{}` is not an RFC 3339 timestamp with `Z` or an offset",
                        v.chars().take(64).collect::<String>()
                    ),
                )
            })?),
        });
    }
    let timestamps: ArrayRef =
        Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC"));
    let mut columns = batch.columns().to_vec();
    columns[idx] = timestamps;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.name() == col::TIMESTAMP {
                Field::new(col::TIMESTAMP, columns[idx].data_type().clone(), true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::data_from("ndjson", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn read(text: &[u8]) -> Result<Vec<RecordBatch>> {
        let out = std::sync::Mutex::new(Vec::new());
        read_ndjson(text, |b, _| {
            out.lock().unwrap().push(b);
            Ok(())
        })?;
        Ok(out.into_inner().unwrap())
    }

    #[test]
    fn reads_lines_skipping_blank_ones() {
        let text = b"{\"event_id\":\"e1\",\"timestamp\":\"2024-03-01T10:00:00.250Z\",\"bot_id\":\"b\",\"conversation_id\":\"c\",\"event_type\":\"message\",\"extra\":{\"deep\":[1,2]}}\n\n   \n{\"event_id\":\"e2\",\"timestamp\":\"2024-03-01T12:00:00+02:00\",\"bot_id\":\"b\",\"conversation_id\":\"c\",\"event_type\":\"message\",\"language\":null}";
        let batches = read(text).unwrap();
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        assert_eq!(b.num_rows(), 2);
        let ts = b
            .column_by_name("timestamp")
            .unwrap()
            .as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_709_287_200_250_000);
        assert_eq!(ts.value(1), 1_709_287_200_000_000);
    }

    #[test]
    fn errors_name_the_line() {
        let cases: [(&[u8], &str); 5] = [
            (b"{\"event_id\":\"e1\"}\nnot json\n", "line 2"),
            (b"\n[1,2,3]\n", "line 2"),
            (
                b"{\"event_id\":\"e1\",\"timestamp\":\"2024-03-01 10:00\"}\n",
                "line 1",
            ),
            (b"{\"event_id\":\"e1\"}\n{\"bot_id\":5}\n", "line 2"),
            (b"{\"event_id\":\"e\xff\"}\n", "line 1"),
        ];
        for (text, expected) in cases {
            let err = read(text).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Data);
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_shallow_nesting_is_fine() {
        let deep = format!(
            "{{\"event_id\":\"e1\",\"x\":{}1{}}}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let err = read(deep.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("line 1: JSON nested deeper"),
            "{err}"
        );
        let brackets_in_strings = format!("{{\"event_id\":\"{}\"}}\n", "[".repeat(1000));
        assert!(read(brackets_in_strings.as_bytes()).is_ok());
        let shallow = "{\"event_id\":\"e1\",\"x\":{\"a\":[[1]]}}\n";
        assert!(read(shallow.as_bytes()).is_ok());
    }

    #[test]
    fn truncated_last_line_is_an_error() {
        let err = read(b"{\"event_id\":\"e1\"}\n{\"event_id\":\"e").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Data, "{err}");
    }
}
