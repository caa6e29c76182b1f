//! Batch execution: one query over Parquet / NDJSON files, without loading
//! the events.
//!
//! A batch job folds events straight into a query-specific engine: the
//! files (and the row groups of each Parquet file) are read in parallel,
//! each batch is normalised and folded into the shared conversation table,
//! and the answer comes from that table — the same store and the same query
//! code as the embedded [`Engine`], so batch and warm answers are identical
//! by construction. What the query does not need is never read or kept:
//! - only the columns the query uses are decoded ([`plan_columns`]);
//! - with a bot (and for flow, a conversation) in the query, row groups and
//!   rows of other bots are skipped ([`ScanScope`]); for usage over Parquet
//!   a first pass over two columns finds the bots that can hold the team's
//!   conversations, and the second pass reads only theirs;
//! - event-id dedup covers only events whose duplicates could change the
//!   answer (messages for `num_messages`, transitions for flow) — a
//!   duplicate changes neither a conversation's start, end nor attributes;
//! - transitions are kept only for flow.
//!
//! Peak memory therefore grows with the number of conversations, not of
//! events. Unlike [`Engine::ingest_parquet`], a batch job is not atomic per
//! file: any error fails the whole job.

mod inputs;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use arrow_array::cast::AsArray;
use rayon::prelude::*;

pub use inputs::{discover_inputs, InputFile, InputFormat};

use crate::answer::Answer;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ingest::ndjson::read_ndjson;
use crate::ingest::parquet::{guard, scan_parquet};
use crate::ingest::{keep_scope, normalize_projected, IngestMode, IngestReport, ScanScope};
use crate::query::{Query, Stat};
use crate::schema::{col, COLUMNS};
use crate::store::{Dedup, StoreOptions};

/// Options of a batch job.
#[derive(Default)]
pub struct BatchOptions {
    /// Null policy for the input rows.
    pub mode: IngestMode,
    /// Called with the number of rows read so far, now and then (for a
    /// progress display); may be called from several threads.
    pub progress: Option<Box<dyn Fn(u64) + Send + Sync>>,
}

/// The result of a batch job.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    /// The query's answer.
    pub answer: Answer,
    /// What was read (lenient-mode skips included). Duplicates are counted
    /// only for the events whose dedup the query needs.
    pub report: IngestReport,
}

/// The columns `query` reads.
pub fn plan_columns(query: &Query) -> Vec<&'static str> {
    let mut columns = vec![
        col::EVENT_ID,
        col::TIMESTAMP,
        col::BOT_ID,
        col::CONVERSATION_ID,
    ];
    match query {
        Query::Conversations(_) => {
            columns.extend([col::BOT_VERSION, col::CHANNEL_TYPE, col::LANGUAGE]);
        }
        Query::Insights(q) => {
            columns.extend([col::BOT_VERSION, col::CHANNEL_TYPE, col::LANGUAGE]);
            if q.stat == Stat::NumMessages {
                columns.push(col::EVENT_TYPE);
            }
        }
        Query::Flow(_) => {
            columns.extend([
                col::EVENT_TYPE,
                col::BOT_VERSION,
                col::USER_ID,
                col::MESSAGE_ID,
                col::FROM_STEP_ID,
                col::FROM_STEP_TYPE,
                col::TO_STEP_ID,
                col::TO_STEP_TYPE,
            ]);
        }
        Query::Usage(q) => {
            columns.push(col::TEAM_ID);
            columns.extend(q.group_by.iter().map(|g| g.name()));
        }
    }
    columns.sort_unstable();
    columns.dedup();
    columns
}

fn store_options(query: &Query) -> StoreOptions {
    let counts_messages = matches!(query, Query::Insights(q) if q.stat == Stat::NumMessages);
    let is_flow = matches!(query, Query::Flow(_));
    StoreOptions {
        dedup: if counts_messages || is_flow {
            Dedup::Counted
        } else {
            Dedup::Off
        },
        keep_transitions: is_flow,
    }
}

/// The rows `query` can need: a bot's (and for flow, a conversation's)
/// events; for usage over Parquet, the events of the bots that have any
/// event of the team ([`team_bots`]).
fn scope(query: &Query, files: &[InputFile]) -> Result<ScanScope> {
    Ok(match query {
        Query::Conversations(q) => ScanScope::all().with(col::BOT_ID, [q.bot_id.as_str()]),
        Query::Insights(q) => ScanScope::all().with(col::BOT_ID, [q.bot_id.as_str()]),
        Query::Flow(q) => ScanScope::all()
            .with(col::BOT_ID, [q.bot_id.as_str()])
            .with(col::CONVERSATION_ID, [q.conversation_id.as_str()]),
        Query::Usage(q) if files.iter().all(|f| f.format == InputFormat::Parquet) => {
            ScanScope::all().with(col::BOT_ID, team_bots(&q.team_id, files)?)
        }
        Query::Usage(_) => ScanScope::all(),
    })
}

/// First pass of a usage job over Parquet: the bots that have at least one
/// event with `team_id = team`, read from the `bot_id` and `team_id`
/// columns only, skipping row groups whose `team_id` statistics exclude the
/// team. Sound: a conversation belongs to the team when its first event
/// says so, and that event carries the conversation's bot, so the team's
/// conversations are all among these bots' conversations.
fn team_bots(team: &str, files: &[InputFile]) -> Result<BTreeSet<String>> {
    let bots = Mutex::new(BTreeSet::new());
    let scope = ScanScope::all().with(col::TEAM_ID, [team]);
    files.par_iter().try_for_each(|file| -> Result<()> {
        let name = file.path.display().to_string();
        let open =
            || std::fs::File::open(&file.path).map_err(|e| Error::data_from(name.clone(), e));
        scan_parquet(
            &name,
            open,
            Some(&[col::BOT_ID, col::TEAM_ID]),
            &scope,
            |batch, _| {
                // Without a team column no event names the team.
                if batch.column_by_name(col::TEAM_ID).is_none() {
                    return Ok(());
                }
                let Some(bot) = batch.column_by_name(col::BOT_ID) else {
                    return Ok(());
                };
                let bot = arrow_cast::cast(bot, &arrow_schema::DataType::Utf8View)
                    .map_err(|e| Error::data_from(format!("{name}: column `bot_id`"), e))?;
                let bot = bot.as_string_view();
                let mut found: Vec<&str> = Vec::new();
                for v in bot.iter().flatten() {
                    if found.last() != Some(&v) && !found.contains(&v) {
                        found.push(v);
                    }
                }
                let mut bots = bots.lock().unwrap_or_else(|p| p.into_inner());
                bots.extend(found.into_iter().map(str::to_owned));
                Ok(())
            },
        )?;
        Ok(())
    })?;
    Ok(bots.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// Runs `query` over the files at `inputs` (files or directories).
///
/// The query is validated by its construction; inputs are checked before
/// any is read (a missing path is a data error).
pub fn run_files(
    query: &Query,
    inputs: &[PathBuf],
    options: &BatchOptions,
) -> Result<BatchOutcome> {
    let files = discover_inputs(inputs)?;
    let engine = Engine::with_store(store_options(query), options.mode);
    let columns = plan_columns(query);
    let scope = scope(query, &files)?;
    let report = Mutex::new(IngestReport::default());
    let rows_read = AtomicU64::new(0);
    // Parquet batches come out of the row filter already in scope.
    let fold = |file: &InputFile, batch: arrow_array::RecordBatch, first_row: u64| -> Result<()> {
        let rows = batch.num_rows() as u64;
        let batch = match file.format {
            InputFormat::Parquet => batch,
            InputFormat::Ndjson => keep_scope(&batch, &scope)?,
        };
        let mut local = IngestReport::default();
        let cols = normalize_projected(
            &batch,
            options.mode,
            first_row,
            &mut local,
            columns.contains(&col::EVENT_TYPE),
        )
        .map_err(|e| e.within(file.path.display()))?;
        engine.ingest_columns(&cols, &mut local);
        report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .merge(&local);
        let total = rows_read.fetch_add(rows, Ordering::Relaxed) + rows;
        if let Some(progress) = &options.progress {
            progress(total);
        }
        Ok(())
    };
    files.par_iter().try_for_each(|file| -> Result<()> {
        let name = file.path.display().to_string();
        match file.format {
            InputFormat::Parquet => {
                let open = || {
                    std::fs::File::open(&file.path).map_err(|e| Error::data_from(name.clone(), e))
                };
                check_required_columns(&name, &open()?)?;
                scan_parquet(&name, open, Some(&columns), &scope, |batch, first_row| {
                    fold(file, batch, first_row)
                })?;
            }
            InputFormat::Ndjson => {
                let f = std::fs::File::open(&file.path)
                    .map_err(|e| Error::data_from(name.clone(), e))?;
                guard(&name, || {
                    read_ndjson(
                        std::io::BufReader::with_capacity(1 << 20, f),
                        |batch, first| fold(file, batch, first),
                    )
                })
                .map_err(|e| e.within(&name))?;
            }
        }
        Ok(())
    })?;
    let answer = engine.query(query)?;
    Ok(BatchOutcome {
        answer,
        report: report.into_inner().unwrap_or_else(|p| p.into_inner()),
    })
}

/// A Parquet file must have every required column even when the query does
/// not read it (SPEC 1: such input is rejected).
fn check_required_columns(name: &str, file: &std::fs::File) -> Result<()> {
    let metadata = guard(name, || {
        parquet::arrow::arrow_reader::ArrowReaderMetadata::load(
            file,
            parquet::arrow::arrow_reader::ArrowReaderOptions::new(),
        )
        .map_err(|e| Error::data_from(name, e))
    })?;
    let schema = metadata.schema();
    for (column, required) in COLUMNS {
        if required && schema.field_with_name(column).is_err() {
            return Err(Error::data(
                format!("{name}: column `{column}`"),
                "required column is missing",
            ));
        }
    }
    Ok(())
}
