//! # convostat
//!
//! An embedded time-series aggregation engine for chatbot conversation
//! analytics. It answers four questions over conversation events, in
//! process, with no server and no database:
//!
//! 1. **conversations** — how many conversations a bot had per hour, day,
//!    week or month, filtered by channel and language, optionally split by
//!    one of them ([`ConversationsQuery`]);
//! 2. **insights** — one statistic per conversation (count, duration,
//!    messages) aggregated per bucket: count, sum, mean, min, max or an
//!    exact percentile ([`InsightsQuery`]);
//! 3. **flow** — one conversation's step-to-step transitions with their
//!    depth ([`FlowQuery`]);
//! 4. **usage** — a team's conversations over time, split by any
//!    combination of bot, version, team, channel, language and campaign
//!    ([`UsageQuery`]).
//!
//! ## Concepts
//!
//! - An **event** is one row of [`event_schema`] (Arrow), [`Event`] (serde)
//!   or one NDJSON line. Events may come in any order and any batch split;
//!   an `event_id` seen again is a duplicate and ignored.
//! - A **conversation** is `(bot_id, conversation_id)`. Its `start` and
//!   `end` are its earliest and latest event; its attributes (team,
//!   version, user, channel, language, campaign) are those of its **first
//!   event**, the smallest `(timestamp, event_id)`.
//! - A conversation is counted in the **bucket** holding its start, in the
//!   query's time zone: `1h`, `1d` (local midnight), `1w` (Monday),
//!   `1m` (first of the month), DST-correct (see [`time`]).
//!
//! ## Example: ingest, query, print JSON
//!
//! ```
//! use convostat::{Engine, Event, Params, Query};
//!
//! let engine = Engine::new();
//! let ndjson = r#"
//! {"event_id":"e1","timestamp":"2024-03-01T10:00:00Z","bot_id":"b1","conversation_id":"c1","event_type":"message","bot_version":"LIVE","channel_type":"web"}
//! {"event_id":"e2","timestamp":"2024-03-01T10:00:05Z","bot_id":"b1","conversation_id":"c1","event_type":"transition","bot_version":"LIVE","from_step_id":"s1","from_step_type":"bot_dialog","to_step_id":"s2","to_step_type":"input"}
//! {"event_id":"e3","timestamp":"2024-03-02T09:00:00Z","bot_id":"b1","conversation_id":"c2","event_type":"message","bot_version":"LIVE","channel_type":"whatsapp"}
//! "#;
//! let report = engine.ingest_ndjson(ndjson.as_bytes())?;
//! assert_eq!(report.rows_ingested, 3);
//!
//! let params = Params::new([
//!     ("bot_id", "b1"), ("version", "LIVE"),
//!     ("start_time", "2024-03-01"), ("end_time", "2024-03-03"),
//!     ("bucket", "1d"), ("group_by", "channel_type"),
//! ])?;
//! let answer = engine.query(&Query::from_params("conversations", &params)?)?;
//! println!("{}", answer.to_json());
//! assert_eq!(
//!     answer.to_json(),
//!     r#"{"data":{"series":[{"values":[1,0],"mean":1,"max":1,"min":0,"sum":1,"labels":{"channel_type":"web"}},{"values":[0,1],"mean":1,"max":1,"min":0,"sum":1,"labels":{"channel_type":"whatsapp"}}],"series_labels":["web","whatsapp"],"x_values":["2024-03-01T00:00:00Z","2024-03-02T00:00:00Z"]}}"#
//! );
//! # Ok::<(), convostat::Error>(())
//! ```
//!
//! ## Example: a batch job over files
//!
//! ```no_run
//! use convostat::{batch, Params, Query};
//! let query = Query::from_params("usage", &Params::new([
//!     ("team_id", "team-acme"), ("start_time", "2024-01-01"),
//!     ("end_time", "2024-05-01"), ("bucket", "1w"), ("group_by", "bot_id"),
//! ])?)?;
//! let outcome = batch::run_files(&query, &["events/".into()], &Default::default())?;
//! println!("{}", outcome.answer.to_json());
//! # Ok::<(), convostat::Error>(())
//! ```
//!
//! ## Layout
//!
//! [`schema`] (the event record) → [`ingest`] (decode, validate,
//! normalise) → `store` (conversation summaries, dedup) → [`query`]
//! (plans and execution) → [`answer`] (SPEC JSON, Arrow, CSV, tables).
//! [`time`] holds every calendar and DST rule; [`engine`] is the embedded
//! face, [`batch`] the file-scanning one; `generate` makes synthetic data
//! and `demo` runs the demo; `server` is `convostat serve`: the same
//! questions and ingest over HTTP (SPEC 8).
//!
//! ## Features
//!
//! - `cli` (default): the `convostat` binary, the `generate` module (the
//!   synthetic data generator) and the `demo` module, with their
//!   dependencies (clap, indicatif, rand).
//! - `server` (default): the `server` module, `convostat serve`, with
//!   axum, tokio, tower-http and argon2.
//!
//! A host application that links only the engine depends on `convostat`
//! with `default-features = false`.
//!
//! ## Not supported
//!
//! Deleting or updating single events (retention drops whole
//! conversations: [`Engine::retain`]), and queries other than the four
//! above.
//!
//! ## Durability
//!
//! [`Engine::new`] keeps everything in memory. [`Engine::open`] (or
//! [`EngineOptions`]) keeps it in a data directory too: an ingest call that
//! returned `Ok` survives `kill -9` and power loss, and reopening restores
//! every answer (SPEC 9); see [`engine`] and the README for the files and
//! how to back them up.

#![deny(missing_docs)]

pub mod answer;
pub mod batch;
#[cfg(feature = "cli")]
pub mod demo;
pub mod engine;
pub mod error;
#[cfg(feature = "cli")]
pub mod generate;
pub mod ingest;
mod parallel;
pub mod query;
pub mod schema;
#[cfg(feature = "server")]
pub mod server;
mod store;
pub mod time;

pub use answer::{Answer, FlowAnswer, FlowTransition, Series, SeriesAnswer, SeriesData, Step};
pub use engine::{
    Engine, EngineOptions, EngineStats, OpenReport, RetainReport, SyncPolicy,
    DEFAULT_CHECKPOINT_LOG_BYTES, DEFAULT_STAGED_COLUMN_ROWS,
};
pub use error::{Error, ErrorKind, Result};
pub use ingest::{IngestMode, IngestReport, IngestSummary, RequiredColumn, SkipReason};
pub use query::{
    Aggregate, ConversationsQuery, FlowQuery, GroupField, InsightsQuery, ListFilter, Params,
    Percentile, Query, Stat, UsageQuery, MAX_ANSWER_CELLS,
};
pub use schema::{event_schema, Attribute, Event};
pub use time::{Bucket, TimeRange, Tz};
