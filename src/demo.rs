//! The `convostat demo` walk-through: generate, ingest, ask all four
//! questions, show answers and timings. Needs no input; it is the README's
//! first command and a smoke test of the whole engine.

use std::io::Write;
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::generate::{EventGenerator, GeneratorConfig};
use crate::schema::col;
use crate::{Answer, Engine, Params, Query};

/// Lines of a table shown before it is cut.
const MAX_LINES: usize = 24;

fn abbreviate(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= MAX_LINES {
        return text.to_owned();
    }
    let mut out = lines[..MAX_LINES - 4].join("\n");
    out.push_str(&format!(
        "\n  … {} more lines …\n",
        lines.len() - MAX_LINES + 3
    ));
    out.push_str(&lines[lines.len() - 3..].join("\n"));
    out.push('\n');
    out
}

fn write_err(e: std::io::Error) -> Error {
    Error::data_from("stdout", e)
}

/// A transition's conversation to show the flow of: (bot, conversation, version).
fn flow_candidates(batches: &[RecordBatch]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for batch in batches.iter().take(4) {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .map(|c| c.as_string::<i32>().clone())
        };
        let (Some(bot), Some(conv), Some(kind), Some(version)) = (
            column(col::BOT_ID),
            column(col::CONVERSATION_ID),
            column(col::EVENT_TYPE),
            column(col::BOT_VERSION),
        ) else {
            continue;
        };
        for row in (0..batch.num_rows()).step_by(97) {
            if kind.value(row) == "transition" && version.is_valid(row) {
                out.push((
                    bot.value(row).to_owned(),
                    conv.value(row).to_owned(),
                    version.value(row).to_owned(),
                ));
            }
        }
    }
    out
}

/// Runs the demo with `events` synthetic events, writing to `out`.
pub fn run(events: usize, out: &mut impl Write) -> Result<()> {
    let t = Instant::now();
    let batches: Vec<RecordBatch> = EventGenerator::new(GeneratorConfig::new(events, 42)).collect();
    let generated = t.elapsed();
    writeln!(
        out,
        "generated {events} synthetic events in {:.2?} (12 bots, 4 teams, Jan–Apr 2024)",
        generated
    )
    .map_err(write_err)?;

    let engine = Engine::new();
    let t = Instant::now();
    let reports: Vec<_> = batches
        .par_iter()
        .map(|b| engine.ingest_batch(b))
        .collect::<Result<_>>()?;
    let ingest = t.elapsed();
    let (ingested, duplicates) = reports
        .iter()
        .fold((0, 0), |(i, d), r| (i + r.rows_ingested, d + r.duplicates));
    let stats = engine.stats();
    writeln!(
        out,
        "ingested {ingested} events ({duplicates} duplicates dropped) into {} conversations in {:.2?} ({:.1} M events/s); {:.0} bytes per event held\n",
        stats.conversations,
        ingest,
        events as f64 / ingest.as_secs_f64().max(1e-9) / 1e6,
        stats.heap_bytes as f64 / ingested.max(1) as f64,
    )
    .map_err(write_err)?;

    type Example = (
        &'static str,
        &'static str,
        Vec<(&'static str, &'static str)>,
    );
    let series_queries: [Example; 3] = [
        (
            "conversations",
            "conversations of bot-acme-support (LIVE) per week, by channel",
            vec![
                ("bot_id", "bot-acme-support"),
                ("version", "LIVE"),
                ("start_time", "2024-01-01"),
                ("end_time", "2024-05-01"),
                ("bucket", "1w"),
                ("group_by", "channel_type"),
            ],
        ),
        (
            "insights",
            "p95 conversation duration (s) per month in Europe/Brussels, by language",
            vec![
                ("bot_id", "bot-acme-support"),
                ("version", "LIVE"),
                ("start_time", "2024-01-01"),
                ("end_time", "2024-05-01"),
                ("bucket", "1m"),
                ("tz", "Europe/Brussels"),
                ("stat", "duration_seconds"),
                ("aggregate", "p95"),
                ("group_by", "language"),
            ],
        ),
        (
            "usage",
            "team-acme's conversations per month, by bot and version",
            vec![
                ("team_id", "team-acme"),
                ("start_time", "2024-01-01"),
                ("end_time", "2024-05-01"),
                ("bucket", "1m"),
                ("group_by", "bot_id,bot_version"),
            ],
        ),
    ];
    for (kind, title, params) in series_queries {
        let query = Query::from_params(kind, &Params::new(params)?)?;
        show(out, &engine, kind, title, &query)?;
    }
    let mut shown = false;
    for (bot, conversation, version) in flow_candidates(&batches) {
        let query = Query::from_params(
            "flow",
            &Params::new([
                ("bot_id", bot.as_str()),
                ("conversation_id", conversation.as_str()),
                ("version", version.as_str()),
                ("start_time", "2020-01-01"),
                ("end_time", "2030-01-01"),
            ])?,
        )?;
        if engine.query(&query).is_ok() {
            let title = format!("flow of conversation {conversation} of {bot}");
            show(out, &engine, "flow", &title, &query)?;
            shown = true;
            break;
        }
    }
    if !shown {
        writeln!(
            out,
            "flow: no conversation with transitions in this data set"
        )
        .map_err(write_err)?;
    }
    Ok(())
}

fn show(
    out: &mut impl Write,
    engine: &Engine,
    kind: &str,
    title: &str,
    query: &Query,
) -> Result<()> {
    let t = Instant::now();
    let answer = engine.query(query)?;
    let took = t.elapsed();
    let body = match &answer {
        Answer::Series(s) => s.to_table(),
        Answer::Flow(f) => f.to_table(),
    };
    writeln!(
        out,
        "== {kind}: {title} — {took:.2?}\n{}",
        abbreviate(&body)
    )
    .map_err(write_err)
}
