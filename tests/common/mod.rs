//! Helpers shared by the integration tests.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use convostat::{Event, Params, Query};

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

/// `events` as a batch of the columns batch jobs read, as a writer of
/// Parquet files for the selective reader gives them: strings, µs UTC
/// timestamps, the required columns non-null.
#[allow(dead_code)] // not every test crate that shares this module uses it
pub fn events_batch(events: &[Event]) -> RecordBatch {
    let text = |f: &dyn Fn(&Event) -> Option<String>| -> ArrayRef {
        Arc::new(events.iter().map(f).collect::<StringArray>())
    };
    let timestamps: ArrayRef = Arc::new(
        TimestampMicrosecondArray::from(events.iter().map(|e| e.timestamp).collect::<Vec<_>>())
            .with_timezone("UTC"),
    );
    let columns = [
        ("event_id", false, text(&|e| Some(e.event_id.clone()))),
        ("timestamp", false, timestamps),
        ("bot_id", false, text(&|e| Some(e.bot_id.clone()))),
        (
            "conversation_id",
            false,
            text(&|e| Some(e.conversation_id.clone())),
        ),
        ("event_type", false, text(&|e| Some(e.event_type.clone()))),
        ("team_id", true, text(&|e| e.team_id.clone())),
        ("bot_version", true, text(&|e| e.bot_version.clone())),
        ("channel_type", true, text(&|e| e.channel_type.clone())),
        ("language", true, text(&|e| e.language.clone())),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, nullable, array)| {
            let data_type = match array.data_type() {
                DataType::Timestamp(_, _) => {
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
                }
                other => other.clone(),
            };
            Field::new(*name, data_type, *nullable)
        })
        .collect();
    let arrays = columns.into_iter().map(|(_, _, a)| a).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

/// A query of `kind` with `params` (valid ones).
#[allow(dead_code)] // not every test crate that shares this module uses it
pub fn query(kind: &str, params: &[(&str, &str)]) -> Query {
    Query::from_params(kind, &Params::new(params.iter().copied()).unwrap()).unwrap()
}

/// Every query kind over the generator's bot `bot-acme-support` (live)
/// and team `team-acme` in `range` (`start_time`, `end_time`): its
/// conversations per day by channel, the 95th percentile of their
/// duration per week, the team's usage per day by bot and language, and
/// the flow of each of `conversations`.
#[allow(dead_code)] // not every test crate that shares this module uses it
pub fn acme_queries(range: [(&str, &str); 2], conversations: &[&str]) -> Vec<Query> {
    let bot = [("bot_id", "bot-acme-support"), ("version", "LIVE")];
    let mut queries = vec![
        query(
            "conversations",
            &[
                &bot[..],
                &range[..],
                &[("bucket", "1d"), ("group_by", "channel_type")],
            ]
            .concat(),
        ),
        query(
            "insights",
            &[
                &bot[..],
                &range[..],
                &[
                    ("stat", "duration_seconds"),
                    ("aggregate", "p95"),
                    ("bucket", "1w"),
                ],
            ]
            .concat(),
        ),
        query(
            "usage",
            &[
                &range[..],
                &[
                    ("team_id", "team-acme"),
                    ("bucket", "1d"),
                    ("group_by", "bot_id,language"),
                ],
            ]
            .concat(),
        ),
    ];
    for conversation in conversations {
        queries.push(query(
            "flow",
            &[&bot[..], &range[..], &[("conversation_id", conversation)]].concat(),
        ));
    }
    queries
}
