//! Rows to columns: [`Event`] values as a canonical Arrow batch.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};

use crate::error::{Error, Result};
use crate::schema::{event_schema, Event};

/// `events` as the store reads them (strict mode): what unit tests of the
/// store and the log feed in.
#[cfg(test)]
pub(crate) fn events_to_columns(events: &[Event]) -> super::EventColumns {
    let batch = events_to_batch(events).expect("events to a batch");
    super::normalize(
        &batch,
        super::IngestMode::Strict,
        super::RowNumbers::From(1),
        &mut super::IngestReport::default(),
    )
    .expect("valid events")
}

/// Builds a batch in [`event_schema`] from rows.
pub(crate) fn events_to_batch(events: &[Event]) -> Result<RecordBatch> {
    type Pick = fn(&Event) -> Option<&str>;
    let picks: [Pick; 16] = [
        |e| Some(&e.event_id),
        |e| Some(&e.bot_id),
        |e| Some(&e.conversation_id),
        |e| Some(&e.event_type),
        |e| e.team_id.as_deref(),
        |e| e.bot_version.as_deref(),
        |e| e.user_id.as_deref(),
        |e| e.channel_type.as_deref(),
        |e| e.language.as_deref(),
        |e| e.campaign_id.as_deref(),
        |e| e.campaign_source.as_deref(),
        |e| e.message_id.as_deref(),
        |e| e.from_step_id.as_deref(),
        |e| e.from_step_type.as_deref(),
        |e| e.to_step_id.as_deref(),
        |e| e.to_step_type.as_deref(),
    ];
    let mut strings: Vec<ArrayRef> = picks
        .iter()
        .map(|pick| {
            let mut b = StringBuilder::new();
            for e in events {
                b.append_option(pick(e));
            }
            Arc::new(b.finish()) as ArrayRef
        })
        .collect();
    let timestamps: ArrayRef = Arc::new(
        TimestampMicrosecondArray::from_iter_values(events.iter().map(|e| e.timestamp))
            .with_timezone("UTC"),
    );
    // Canonical order: event_id, timestamp, then the rest.
    strings.insert(1, timestamps);
    RecordBatch::try_new(event_schema(), strings).map_err(|e| Error::data_from("events", e))
}
