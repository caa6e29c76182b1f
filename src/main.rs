//! The `convostat` command line: a thin shell over the library (SPEC 7).
//!
//! It parses arguments, turns them into the API's string parameters (the
//! library validates them), runs a batch job or the generator or the demo,
//! prints the answer and maps errors to exit codes: 0 success, 2 invalid
//! query or arguments, 3 not found, 1 data or I/O error. Every error is one
//! stderr line starting with `error: `.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use convostat::batch::{run_files, BatchOptions};
use convostat::generate::{write_file, GeneratorConfig};
use convostat::{Answer, Error, ErrorKind, IngestMode, IngestReport, Params, Query};

#[derive(Parser)]
#[command(
    name = "convostat",
    about = "Conversation analytics over Parquet and NDJSON event files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Number of a bot's conversations over time (SPEC 4.1).
    Conversations {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        bot: BotSeries,
    },
    /// One conversation statistic aggregated per bucket (SPEC 4.2).
    Insights {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        bot: BotSeries,
        /// num_conversations, duration_seconds or num_messages.
        #[arg(long)]
        stat: Option<String>,
        /// count, sum, mean, min, max, p50, p90, p95 or p99.
        #[arg(long)]
        aggregate: Option<String>,
    },
    /// One conversation's transitions (SPEC 4.3).
    Flow {
        #[command(flatten)]
        common: Common,
        #[arg(long = "bot-id")]
        bot_id: Option<String>,
        #[arg(long = "conversation-id")]
        conversation_id: Option<String>,
        #[arg(long)]
        version: Option<String>,
        /// Start of the range (RFC 3339, naive = UTC, or a date).
        #[arg(long)]
        start: Option<String>,
        /// End of the range, exclusive.
        #[arg(long)]
        end: Option<String>,
        #[arg(long = "message-id")]
        message_id: Option<String>,
    },
    /// A team's conversations over time (SPEC 4.4).
    Usage {
        #[command(flatten)]
        common: Common,
        #[arg(long = "team-id")]
        team_id: Option<String>,
        #[arg(long)]
        start: Option<String>,
        #[arg(long)]
        end: Option<String>,
        /// 1h, 1d, 1w or 1m.
        #[arg(long)]
        bucket: Option<String>,
        /// Comma-separated fields: bot_id, bot_version, team_id,
        /// channel_type, language, campaign_id, campaign_source.
        #[arg(long = "group-by")]
        group_by: Option<String>,
        /// IANA time zone (default UTC).
        #[arg(long)]
        tz: Option<String>,
    },
    /// Writes a realistic synthetic data set (Parquet, or NDJSON for .ndjson).
    Generate {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        events: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Generates data in memory and runs every query kind, with timings.
    Demo {
        /// Number of events to generate.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
    },
    /// Serves the four queries and event ingest over HTTP (SPEC 8).
    #[cfg(feature = "server")]
    Serve(serve::ServeArgs),
    /// Reads a secret on stdin and prints its argon2id PHC string, for a
    /// `user:role:phc` line of a credentials file.
    #[cfg(feature = "server")]
    HashSecret,
}

#[derive(Args)]
struct Common {
    /// Parquet / NDJSON files or directories.
    #[arg(long, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Skip rows with nulls in required columns (counts on stderr).
    #[arg(long)]
    lenient: bool,
}

#[derive(Args)]
struct BotSeries {
    #[arg(long = "bot-id")]
    bot_id: Option<String>,
    #[arg(long)]
    version: Option<String>,
    /// Start of the range (RFC 3339, naive local time, or a date).
    #[arg(long)]
    start: Option<String>,
    /// End of the range, exclusive.
    #[arg(long)]
    end: Option<String>,
    /// Comma-separated channel types.
    #[arg(long = "channel-type")]
    channel_type: Option<String>,
    /// Comma-separated languages.
    #[arg(long)]
    language: Option<String>,
    /// 1h, 1d, 1w or 1m.
    #[arg(long)]
    bucket: Option<String>,
    /// channel_type or language.
    #[arg(long = "group-by")]
    group_by: Option<String>,
    /// IANA time zone (default UTC).
    #[arg(long)]
    tz: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Csv,
    Table,
}

type Pairs = Vec<(&'static str, Option<String>)>;

impl BotSeries {
    fn pairs(self) -> Pairs {
        vec![
            ("bot_id", self.bot_id),
            ("version", self.version),
            ("start_time", self.start),
            ("end_time", self.end),
            ("channel_type", self.channel_type),
            ("language", self.language),
            ("bucket", self.bucket),
            ("group_by", self.group_by),
            ("tz", self.tz),
        ]
    }
}

fn params(pairs: Pairs) -> convostat::Result<Params> {
    Params::new(pairs.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))))
}

fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::InvalidQuery => 2,
        ErrorKind::NotFound => 3,
        ErrorKind::Data => 1,
    }
}

fn fail(e: &Error) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(exit_code(e.kind()))
}

fn main() -> ExitCode {
    // Decoder panics are caught by the library and reported as data errors;
    // the default hook would still print them. Keep stderr to one line.
    std::panic::set_hook(Box::new(|_| {}));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match std::panic::catch_unwind(|| run(cli.command)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => fail(&e),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            eprintln!("error: internal error: {}", what.replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

/// Help and version go to stdout with status 0; any other argument error
/// is one `error: ` line (clap's first paragraph, joined) with status 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind as K;
    if matches!(e.kind(), K::DisplayHelp | K::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == K::DisplayHelpOnMissingArgumentOrSubcommand {
        eprintln!(
            "error: a subcommand is required: conversations, insights, flow, usage, generate, demo, serve or hash-secret (see --help)"
        );
        return ExitCode::from(2);
    }
    let text = e.render().to_string();
    let first: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let line = first.join(" ");
    let line = line.trim_start_matches("error: ");
    eprintln!(
        "error: {}",
        if line.is_empty() {
            "invalid arguments"
        } else {
            line
        }
    );
    ExitCode::from(2)
}

fn run(command: Command) -> convostat::Result<()> {
    let (kind, common, pairs) = match command {
        Command::Generate { out, events, seed } => {
            let rows = write_file(&out, &GeneratorConfig::new(events, seed))?;
            eprintln!("wrote {rows} events to {}", out.display());
            return Ok(());
        }
        Command::Demo { events } => {
            return convostat::demo::run(events, &mut std::io::stdout().lock());
        }
        #[cfg(feature = "server")]
        Command::Serve(args) => return serve::serve(args),
        #[cfg(feature = "server")]
        Command::HashSecret => return serve::hash_secret(),
        Command::Conversations { common, bot } => ("conversations", common, bot.pairs()),
        Command::Insights {
            common,
            bot,
            stat,
            aggregate,
        } => {
            let mut pairs = bot.pairs();
            pairs.extend([("stat", stat), ("aggregate", aggregate)]);
            ("insights", common, pairs)
        }
        Command::Flow {
            common,
            bot_id,
            conversation_id,
            version,
            start,
            end,
            message_id,
        } => (
            "flow",
            common,
            vec![
                ("bot_id", bot_id),
                ("conversation_id", conversation_id),
                ("version", version),
                ("start_time", start),
                ("end_time", end),
                ("message_id", message_id),
            ],
        ),
        Command::Usage {
            common,
            team_id,
            start,
            end,
            bucket,
            group_by,
            tz,
        } => (
            "usage",
            common,
            vec![
                ("team_id", team_id),
                ("start_time", start),
                ("end_time", end),
                ("bucket", bucket),
                ("group_by", group_by),
                ("tz", tz),
            ],
        ),
    };
    // Validate the query before touching any data (SPEC 4).
    let query = Query::from_params(kind, &params(pairs)?)?;
    let options = BatchOptions {
        mode: if common.lenient {
            IngestMode::Lenient
        } else {
            IngestMode::Strict
        },
        progress: None,
    };
    let bar = progress_bar(&common.input);
    let options = BatchOptions {
        progress: bar.clone().map(|bar| {
            Box::new(move |rows| {
                bar.set_position(rows);
                bar.tick();
            }) as Box<dyn Fn(u64) + Send + Sync>
        }),
        ..options
    };
    let outcome = run_files(&query, &common.input, &options);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let outcome = outcome?;
    if common.lenient {
        report_skipped(&outcome.report);
    }
    print_answer(&outcome.answer, common.format)
}

fn print_answer(answer: &Answer, format: Format) -> convostat::Result<()> {
    let text = match format {
        Format::Json => answer.to_json() + "\n",
        Format::Csv => answer.to_csv(),
        Format::Table => answer.to_table(),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::data_from("stdout", e))
}

fn report_skipped(report: &IngestReport) {
    let skipped = report.skipped_rows();
    if skipped == 0 {
        eprintln!("skipped 0 rows");
        return;
    }
    let reasons: Vec<String> = report
        .skipped
        .iter()
        .map(|(reason, n)| format!("{reason}: {n}"))
        .collect();
    eprintln!("skipped {skipped} rows ({})", reasons.join(", "));
}

/// Inputs smaller than this finish too fast for a progress bar to help.
const PROGRESS_MIN_BYTES: u64 = 64 * 1024 * 1024;

/// A spinner counting rows on stderr, when stderr is a terminal and the
/// input is large.
fn progress_bar(inputs: &[PathBuf]) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let files = convostat::batch::discover_inputs(inputs).ok()?;
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(&f.path).ok())
        .map(|m| m.len())
        .sum();
    if bytes < PROGRESS_MIN_BYTES {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {human_pos} rows read ({per_sec})")
            .ok()?,
    );
    Some(bar)
}

/// `serve` and `hash-secret`: arguments to a [`convostat::server`] call.
#[cfg(feature = "server")]
mod serve {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use clap::Args;
    use convostat::batch::{discover_inputs, InputFormat};
    use convostat::server::{self, Credentials, Server, ServerConfig};
    use convostat::{Engine, Error};

    #[derive(Args)]
    pub struct ServeArgs {
        /// Parquet / NDJSON files or directories to load at start.
        #[arg(long, num_args = 1..)]
        input: Vec<PathBuf>,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = server::DEFAULT_LISTEN)]
        listen: String,
        /// Accounts file: one `user:role:phc` line each (see hash-secret).
        #[arg(long, conflicts_with = "no_auth")]
        credentials: Option<PathBuf>,
        /// Serve without authentication (loopback addresses only).
        #[arg(long)]
        no_auth: bool,
        /// Largest request body in bytes (413 beyond).
        #[arg(long, default_value_t = server::DEFAULT_MAX_BODY)]
        max_body: usize,
        /// Longest time a request may take, in seconds (503 beyond).
        #[arg(long, default_value_t = server::DEFAULT_TIMEOUT.as_secs())]
        timeout: u64,
        /// Most requests running or waiting for CPU work (429 beyond).
        #[arg(long, default_value_t = server::DEFAULT_MAX_IN_FLIGHT)]
        max_in_flight: usize,
        /// Answers kept for repeated queries while the data is unchanged
        /// (0 turns the cache off).
        #[arg(long, default_value_t = server::DEFAULT_ANSWER_CACHE)]
        answer_cache: usize,
    }

    /// Invalid arguments: one `error: ` line and exit status 2, as for
    /// clap's own argument errors (nothing has started yet).
    fn usage(message: &str) -> ! {
        eprintln!("error: {message}");
        std::process::exit(2)
    }

    pub fn serve(args: ServeArgs) -> convostat::Result<()> {
        let credentials = match (&args.credentials, args.no_auth) {
            (Some(path), _) => Some(Arc::new(Credentials::load(path)?)),
            (None, true) => {
                let loopback = args
                    .listen
                    .to_socket_addrs()
                    .map(|mut addrs| addrs.all(|a| a.ip().is_loopback()))
                    .unwrap_or(false);
                if !loopback {
                    usage(&format!(
                        "--no-auth needs a loopback --listen address, not `{}`",
                        args.listen
                    ));
                }
                None
            }
            (None, false) => {
                usage("refusing to start without --credentials FILE (or --no-auth on loopback)")
            }
        };
        let config = ServerConfig {
            listen: args.listen,
            credentials,
            max_body: args.max_body,
            timeout: Duration::from_secs(args.timeout.max(1)),
            max_in_flight: args.max_in_flight.max(1),
            workers: 0,
            answer_cache: args.answer_cache,
        };
        // Bind first, so that a taken port is reported before any loading.
        let server = Server::bind(config)?;
        let engine = Arc::new(Engine::new());
        if !args.input.is_empty() {
            let started = Instant::now();
            let files = discover_inputs(&args.input)?;
            for file in &files {
                match file.format {
                    InputFormat::Parquet => engine.ingest_parquet(&file.path)?,
                    InputFormat::Ndjson => engine.ingest_ndjson_file(&file.path)?,
                };
            }
            eprintln!(
                "loaded {} events from {} files in {:.1}s",
                engine.stats().events,
                files.len(),
                started.elapsed().as_secs_f64()
            );
        }
        server.run(engine, |addr| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on http://{addr}").and_then(|_| out.flush());
        })
    }

    pub fn hash_secret() -> convostat::Result<()> {
        let mut secret = Vec::new();
        std::io::stdin()
            .read_to_end(&mut secret)
            .map_err(|e| Error::data_from("stdin", e))?;
        if secret.last() == Some(&b'\n') {
            secret.pop();
            if secret.last() == Some(&b'\r') {
                secret.pop();
            }
        }
        if secret.is_empty() {
            usage("the secret on stdin is empty");
        }
        let phc = server::hash_secret(&secret)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{phc}")
            .and_then(|_| out.flush())
            .map_err(|e| Error::data_from("stdout", e))
    }
}
