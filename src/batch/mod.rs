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
//! - transitions are kept only for flow;
//! - when the store keeps no message count, transition or event id, only
//!   the rows that can be a conversation's first or last event in their
//!   batch are folded in (`ingest::bounds`);
//! - without dedup, event ids only order a conversation's events at its
//!   first timestamp, so Parquet rows selected by the scope are read
//!   without them (`ScanScope::eliding`); a conversation with events tied
//!   there whose attributes differ is then undecided, and its events are
//!   read again, ids included (`Store::take_undecided`). With timestamps
//!   in µs such ties are rare; the answer is the same either way.
//!
//! Peak memory therefore grows with the number of conversations, not of
//! events. Unlike [`Engine::ingest_parquet`], a batch job is not atomic per
//! file: any error fails the whole job.

mod inputs;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::{BooleanArray, RecordBatch, StringViewArray};
use arrow_schema::{DataType, Field, Schema};

pub use inputs::{discover_inputs, InputFile, InputFormat};

use crate::answer::Answer;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ingest::bounds::bounding_rows;
use crate::ingest::guard::guard;
use crate::ingest::ndjson::{open_ndjson_file, RangeSource};
use crate::ingest::parquet::{scan_parquet, FileRanges, RowsRead};
use crate::ingest::{normalize, Elision, IngestMode, IngestReport, RowNumbers, ScanScope};
use crate::query::{GroupField, ListFilter, Query, Stat};
use crate::schema::col;
use crate::store::{Dedup, StoreOptions};

/// Options of a batch job.
#[derive(Default)]
pub struct BatchOptions {
    /// Null policy for the input rows.
    pub mode: IngestMode,
    /// Called with the number of rows read so far, now and then (for a
    /// progress display); may be called from several threads.
    pub progress: Option<Box<dyn Fn(u64) + Send + Sync>>,
    /// Reads a Parquet file of 16 MiB or more memory-mapped (see
    /// `FileRanges::open_mapped`; a job's only file from 1 MiB, once a
    /// large range of it is read), and a plain NDJSON file's ranges
    /// mapped window by window instead of copied (see
    /// `ingest::line_ranges`: over a 3.2 GB file, the kernel's copies
    /// cost 0.55–0.8 s of system time, the windows 0.3–0.45 s). Off by
    /// default: a mapped file that another process truncates while the
    /// job reads it (log rotation by `copytruncate`, say) kills the
    /// process with `SIGBUS`, where a read would give an error. The `convostat` command line
    /// turns it on: its process is the job's alone.
    pub map_files: bool,
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
    // Required columns are always read: every row is validated (SPEC 1).
    let mut columns = vec![
        col::EVENT_ID,
        col::TIMESTAMP,
        col::BOT_ID,
        col::CONVERSATION_ID,
        col::EVENT_TYPE,
    ];
    // The attribute columns a conversations or insights query filters or
    // splits on; the others would be decoded for nothing.
    let series_columns =
        |channel: &ListFilter, language: &ListFilter, group: Option<GroupField>| {
            let mut columns = vec![col::BOT_VERSION];
            if !channel.matches_all() {
                columns.push(col::CHANNEL_TYPE);
            }
            if !language.matches_all() {
                columns.push(col::LANGUAGE);
            }
            columns.extend(group.map(GroupField::name));
            columns
        };
    match query {
        Query::Conversations(q) => {
            columns.extend(series_columns(&q.channel_type, &q.language, q.group_by));
        }
        Query::Insights(q) => {
            columns.extend(series_columns(&q.channel_type, &q.language, q.group_by));
        }
        Query::Flow(q) => {
            columns.extend([
                col::BOT_VERSION,
                col::USER_ID,
                col::FROM_STEP_ID,
                col::FROM_STEP_TYPE,
                col::TO_STEP_ID,
                col::TO_STEP_TYPE,
            ]);
            // Message ids only filter transitions: a megabyte of unique
            // strings per row group, for nothing without the filter.
            if q.message_id.is_some() {
                columns.push(col::MESSAGE_ID);
            }
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
        parallel_apply: false,
    }
}

/// The rows `query` can need: a bot's (and for flow, a conversation's)
/// events; for usage over Parquet, the events of the bots that have any
/// event of the team ([`team_bots`]); for usage over other inputs, with
/// `team_filter`, the events of the bots found with an event of the team
/// as the lines are read (`ScanScope::keeping_team`).
fn scope(query: &Query, files: &[InputFile], team_filter: bool) -> Result<ScanScope> {
    Ok(match query {
        Query::Conversations(q) => ScanScope::all().with(col::BOT_ID, [q.bot_id.as_str()]),
        Query::Insights(q) => ScanScope::all().with(col::BOT_ID, [q.bot_id.as_str()]),
        Query::Flow(q) => ScanScope::all()
            .with(col::BOT_ID, [q.bot_id.as_str()])
            .with(col::CONVERSATION_ID, [q.conversation_id.as_str()]),
        Query::Usage(q) if files.iter().all(|f| f.format == InputFormat::Parquet) => {
            ScanScope::all().with(col::BOT_ID, team_bots(&q.team_id, files)?)
        }
        Query::Usage(q) if team_filter => ScanScope::all().keeping_team(&q.team_id),
        Query::Usage(_) => ScanScope::all(),
    })
}

/// The most views of `bot_id` values [`team_bots`] keeps to tell rows
/// apart by. Each is compared with every row that is not yet told apart:
/// with 64, a file without dictionaries spent 8% of `usage` there.
const SEEN_VIEWS_MOST: usize = 8;

/// First pass of a usage job over Parquet: the bots that have at least one
/// event with `team_id = team`, read from the `bot_id` and `team_id`
/// columns only, skipping row groups whose `team_id` statistics exclude the
/// team. Sound: a conversation belongs to the team when its first event
/// says so, and that event carries the conversation's bot, so the team's
/// conversations are all among these bots' conversations.
fn team_bots(team: &str, files: &[InputFile]) -> Result<BTreeSet<String>> {
    let bots = Mutex::new(BTreeSet::new());
    let scope = ScanScope::all().with(col::TEAM_ID, [team]);
    crate::parallel::try_each(files, |file| -> Result<()> {
        let name = file.path.display().to_string();
        let file = FileRanges::open(&file.path)?;
        scan_parquet(
            &name,
            || Ok(file.clone()),
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
                // Rows read from one dictionary entry share a view: most
                // rows are told apart by comparing views (a few, as a
                // team has few bots), not strings. Rows read from plain
                // pages have a view each, and are compared as strings
                // after `SEEN_VIEWS_MOST` views.
                let mut seen_views: Vec<u128> = Vec::new();
                let mut found: Vec<&str> = Vec::new();
                for (row, &view) in bot.views().iter().enumerate() {
                    if arrow_array::Array::is_null(bot, row) || seen_views.contains(&view) {
                        continue;
                    }
                    if seen_views.len() < SEEN_VIEWS_MOST {
                        seen_views.push(view);
                    }
                    let v = bot.value(row);
                    if !found.contains(&v) {
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
    run_input_files(query, &discover_inputs(inputs)?, options)
}

/// [`run_files`] over the files [`discover_inputs`] found (a caller that
/// looks at them first need not list directories twice).
pub fn run_input_files(
    query: &Query,
    files: &[InputFile],
    options: &BatchOptions,
) -> Result<BatchOutcome> {
    run_with_team_filter(query, files, options, true)
}

/// [`run_input_files`], a usage job over NDJSON with the team filter of
/// [`scope`] if `team_filter`. When the filter left out rows of a bot
/// whose other rows name the team, the job runs again without it.
fn run_with_team_filter(
    query: &Query,
    files: &[InputFile],
    options: &BatchOptions,
    team_filter: bool,
) -> Result<BatchOutcome> {
    let store_options = store_options(query);
    // Without dedup, event ids only order the events of a conversation at
    // its first timestamp: the rows the scope selects are read without
    // them, and the rare conversation whose first event that leaves
    // undecided is read again below. Data where that is not rare (second
    // timestamps, attributes that change within a conversation) turns
    // this off after `UNDECIDED_LIMIT` such conversations. Event types
    // then matter to nothing (they decide dedup candidates, message counts
    // and transitions) and are not read either.
    let engine = Engine::with_store(store_options, options.mode);
    let columns = plan_columns(query);
    let bounds_only = store_options.dedup == Dedup::Off && !store_options.keep_transitions;
    let (scope, elision) = match scope(query, files, team_filter)? {
        scope if store_options.dedup == Dedup::Off => {
            let (scope, elision) = scope.eliding(&[col::EVENT_ID, col::EVENT_TYPE]);
            (scope, Some(elision))
        }
        scope => (scope, None),
    };
    let scope = if bounds_only { scope.bounding() } else { scope };
    let report = fold_files(
        &engine,
        files,
        &columns,
        &scope,
        None,
        elision.as_ref(),
        bounds_only,
        options,
    )?;
    if scope.team_mixed() {
        return run_with_team_filter(query, files, options, false);
    }
    let undecided = engine.take_undecided();
    if !undecided.is_empty() {
        let mut pairs: HashMap<String, HashSet<String>> = HashMap::new();
        for (bot, conversation) in undecided {
            pairs.entry(bot).or_default().insert(conversation);
        }
        let again = ScanScope::all()
            .with(col::BOT_ID, pairs.keys().map(String::as_str))
            .with(
                col::CONVERSATION_ID,
                pairs.values().flatten().map(String::as_str),
            );
        // Rows read again are not counted again.
        let quiet = BatchOptions {
            mode: options.mode,
            progress: None,
            map_files: options.map_files,
        };
        fold_files(
            &engine,
            files,
            &columns,
            &again,
            Some(&pairs),
            None,
            bounds_only,
            &quiet,
        )?;
    }
    let answer = engine.query(query)?;
    Ok(BatchOutcome { answer, report })
}

/// Undecided conversations after which a batch job reads event ids again.
const UNDECIDED_LIMIT: usize = 256;

/// Folds the rows of `files` in `scope` (and, with `pairs`, of those
/// `bot_id → conversation ids` only) into `engine`, reading `columns`;
/// `elision` is turned off once [`UNDECIDED_LIMIT`] conversations are
/// undecided. With `bounds_only` (the store keeps no message count,
/// transition or event id), only the rows that can bound a conversation
/// are folded (`ingest::bounds`).
#[allow(clippy::too_many_arguments)]
fn fold_files(
    engine: &Engine,
    files: &[InputFile],
    columns: &[&str],
    scope: &ScanScope,
    pairs: Option<&HashMap<String, HashSet<String>>>,
    elision: Option<&Elision>,
    bounds_only: bool,
    options: &BatchOptions,
) -> Result<IngestReport> {
    let report = Mutex::new(IngestReport::default());
    let rows_read = AtomicU64::new(0);
    // Rows are validated (and in lenient mode counted) before the scope is
    // applied, so null handling never depends on the query. Parquet rows
    // that come out of the row filter are already in scope and valid.
    // `left_out`: valid rows the reader left out (they count as read and
    // ingested), `bounded`: by a bounding scope (see `ingest::bounds`),
    // `latest`: the latest timestamp of each row's conversation when the
    // scope left rows out.
    let fold = |batch: arrow_array::RecordBatch,
                rows: RowNumbers<'_>,
                in_scope: bool,
                left_out: u64,
                bounded: bool,
                latest: Option<Vec<i64>>| {
        let n = batch.num_rows() as u64 + left_out;
        let mut local = IngestReport::default();
        local.rows_seen += left_out;
        local.rows_ingested += left_out;
        let elided = in_scope && batch.column_by_name(col::EVENT_ID).is_none();
        let batch = if in_scope {
            with_placeholders(&batch, &[col::EVENT_ID, col::EVENT_TYPE])?
        } else {
            batch
        };
        let mut cols = normalize(&batch, options.mode, rows, &mut local)?;
        cols.event_ids_elided = elided;
        if let Some(latest) = latest {
            // Rows in scope are valid (the reader proved it): none was
            // dropped.
            if latest.len() != cols.len() {
                return Err(Error::data(
                    "batch",
                    "internal error: bounded rows and their conversations' ends differ in number",
                ));
            }
            cols.latest = Some(latest);
        }
        let cols = if in_scope { cols } else { scope.retain(cols)? };
        let cols = match pairs {
            Some(pairs) => {
                let keep: BooleanArray = (0..cols.len())
                    .map(|r| {
                        let bot = cols.bot_id.value(r);
                        let conversation = cols.conversation_id.value(r);
                        Some(pairs.get(bot).is_some_and(|c| c.contains(conversation)))
                    })
                    .collect();
                cols.filter(&keep)?
            }
            None => cols,
        };
        // Rows the reader bounded already are not bounded again.
        let bounds = (bounds_only && !bounded)
            .then(|| bounding_rows(&cols.timestamp, &cols.bot_id, &cols.conversation_id));
        let cols = match bounds.flatten() {
            Some(bounds) => {
                // The rows left out are part of the data all the same.
                local.rows_ingested += (cols.len() - bounds.keep.true_count()) as u64;
                let mut kept = cols.filter(&bounds.keep)?;
                kept.latest = Some(bounds.latest);
                kept
            }
            None => cols,
        };
        engine.ingest_columns(&cols, &mut local);
        if let Some(elision) = elision {
            if elided && engine.undecided_count() > UNDECIDED_LIMIT {
                elision.set(false);
            }
        }
        report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .merge(&local);
        let total = rows_read.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(progress) = &options.progress {
            progress(total);
        }
        Ok(())
    };
    // Mapped, a large file's pages are read where the page cache holds
    // them rather than copied into fresh memory, which the kernel zeroes
    // first: a flow on 300 MB files 8-25% faster; scans of whole column
    // chunks 3-10% (benches/HISTORY.md, forty-second session). A large
    // range of a mapped file hands its pages back once dropped (after the
    // mapping's first 16 MiB of them), so a scan's mapped pages do not
    // pile up in the process's memory. A job's only file is mapped from
    // 1 MiB, at its first large range (`FileRanges::open_mapped`).
    let map_parquet = options.map_files;
    let alone = files.len() == 1;
    crate::parallel::try_each(files, |file| -> Result<()> {
        let name = file.path.display().to_string();
        match file.format {
            InputFormat::Parquet => {
                let file = if map_parquet {
                    FileRanges::open_mapped(&file.path, alone)?
                } else {
                    FileRanges::open(&file.path)?
                };
                scan_parquet(
                    &name,
                    || Ok(file.clone()),
                    Some(columns),
                    scope,
                    |batch, read| {
                        match read {
                            RowsRead::Whole { first_row } => {
                                fold(batch, RowNumbers::From(first_row), false, 0, false, None)
                            }
                            RowsRead::Filtered { left_out, latest } => fold(
                                batch,
                                RowNumbers::From(0),
                                true,
                                left_out.unwrap_or(0),
                                left_out.is_some(),
                                latest,
                            ),
                        }
                        .map_err(|e: Error| e.within(&name))
                    },
                )?;
            }
            InputFormat::Ndjson | InputFormat::NdjsonGzip => {
                let gzip = file.format == InputFormat::NdjsonGzip;
                let source = match options.map_files {
                    true => RangeSource::Mapped,
                    false => RangeSource::Read,
                };
                let input = open_ndjson_file(&file.path, gzip, Some(source))?;
                guard(&name, || {
                    input.read_in_scope(Some(columns), Some(scope), |batch, lines, left_out| {
                        // Rows left out by the reader were valid events
                        // outside the scope: read and ingested, as rows
                        // the scope drops below are.
                        let lines = RowNumbers::Lines(lines);
                        fold(
                            batch,
                            lines,
                            left_out.is_some(),
                            left_out.unwrap_or(0),
                            false,
                            None,
                        )
                    })
                })
                .map_err(|e| e.within(&name))?;
            }
        }
        Ok(())
    })?;
    Ok(report.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// `batch` with a column of placeholders (empty strings) for each of
/// `columns` it lacks: rows read without them ([`ScanScope::eliding`]).
fn with_placeholders(batch: &RecordBatch, columns: &[&str]) -> Result<RecordBatch> {
    let missing: Vec<&str> = columns
        .iter()
        .copied()
        .filter(|&c| batch.column_by_name(c).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(batch.clone());
    }
    let n = batch.num_rows();
    // SAFETY: a zero view is the empty string, inline: valid with no
    // buffer (what `StringViewArray::try_new` would check, row by row).
    let placeholders: arrow_array::ArrayRef = Arc::new(unsafe {
        StringViewArray::new_unchecked(vec![0u128; n].into(), Vec::new().into(), None)
    });
    let mut fields = batch.schema().fields().to_vec();
    let mut arrays = batch.columns().to_vec();
    for column in missing {
        fields.push(Arc::new(Field::new(column, DataType::Utf8View, false)));
        arrays.push(placeholders.clone());
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| Error::data_from("batch", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::FlowQuery;
    use crate::time::TimeRange;

    #[test]
    fn a_flow_reads_message_ids_only_to_filter_by_them() {
        let range = TimeRange { start: 0, end: 1 };
        let mut flow = FlowQuery::new("b", "c", "v", range);
        let reads_message_ids =
            |q: &FlowQuery| plan_columns(&Query::Flow(q.clone())).contains(&col::MESSAGE_ID);
        assert!(!reads_message_ids(&flow));
        flow.message_id = Some("m".into());
        assert!(reads_message_ids(&flow));
    }
}
