//! The `convostat` command line: a thin shell over the library (SPEC 7).
//!
//! It parses arguments, turns them into the API's string parameters (the
//! library validates them), runs a batch job (`--input`), a query on a
//! durable data directory (`--data`), an ingest into one, the generator or
//! the demo, prints the answer and maps errors to exit codes: 0 success, 2 invalid
//! query or arguments, 3 not found, 1 data or I/O error. Every error is one
//! stderr line starting with `error: `.

#![cfg_attr(all(target_os = "linux", target_env = "gnu", not(test)), no_main)]

use std::alloc::{GlobalAlloc, Layout as BlockLayout, System};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use convostat::batch::discover_inputs;
use convostat::batch::{run_input_files, BatchOptions, InputFile, InputFormat};
use convostat::error::echo;
use convostat::generate::{write_file, write_parquet_parts, GeneratorConfig, Layout};
use convostat::{Answer, EngineOptions, Error, ErrorKind, IngestMode, IngestReport, Params, Query};

/// The process's allocator: mimalloc, or the C library's for `flow` over
/// files (see [`ProcessAllocator`]).
#[global_allocator]
static ALLOCATOR: ProcessAllocator = ProcessAllocator;

/// Whether this process allocates with the C library's allocator rather
/// than mimalloc. Chosen from the command line by [`CHOOSE_AT_START`]
/// before `main`, and never changed after.
static C_ALLOCATOR: AtomicBool = AtomicBool::new(false);

/// mimalloc for every command but `flow` over files, which allocates with
/// the C library (glibc) instead.
///
/// Batch jobs allocate and free decode buffers of the same sizes batch
/// after batch on every thread; mimalloc keeps and reuses them where the
/// system allocator returns pages to the kernel and faults fresh zeroed
/// ones back in. Measured on 10M interleaved events (README,
/// "Performance"): 20–35% less wall time, about twice the peak RSS; with
/// glibc tuned as below, still 1–12% less wall time and 5–15% less CPU.
///
/// A `flow` process lives a few milliseconds, and a third of them are
/// page faults. mimalloc keeps each size of block on pages of its own, per
/// thread, and readies four blocks at a time, so its first allocations of
/// each size touch fresh pages: a first-conversation flow over the
/// interleaved file faulted 614 pages with it and 388 with glibc; flows
/// took 1–17% less wall time with glibc (`benches/HISTORY.md`, "The
/// twenty-fifth session").
///
/// Memory from either is freed by the one that gave it: in the C
/// allocator's mode, a block inside mimalloc's segments (made before the
/// choice, if anything allocated that early) still goes back to mimalloc.
struct ProcessAllocator;

// SAFETY: every method hands the request to mimalloc or to the system
// allocator, and a block is always freed or resized by the allocator that
// made it (mimalloc's segment map tells them apart).
unsafe impl GlobalAlloc for ProcessAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: BlockLayout) -> *mut u8 {
        if C_ALLOCATOR.load(Ordering::Relaxed) {
            System.alloc(layout)
        } else {
            mimalloc::MiMalloc.alloc(layout)
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: BlockLayout) -> *mut u8 {
        if C_ALLOCATOR.load(Ordering::Relaxed) {
            System.alloc_zeroed(layout)
        } else {
            mimalloc::MiMalloc.alloc_zeroed(layout)
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: BlockLayout) {
        if C_ALLOCATOR.load(Ordering::Relaxed) && !in_mimalloc(ptr) {
            System.dealloc(ptr, layout)
        } else {
            mimalloc::MiMalloc.dealloc(ptr, layout)
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: BlockLayout, new_size: usize) -> *mut u8 {
        if !C_ALLOCATOR.load(Ordering::Relaxed) {
            return mimalloc::MiMalloc.realloc(ptr, layout, new_size);
        }
        if !in_mimalloc(ptr) {
            return System.realloc(ptr, layout, new_size);
        }
        // A block mimalloc made before the choice: move it to the system
        // allocator.
        let new_layout = BlockLayout::from_size_align_unchecked(new_size, layout.align());
        let moved = System.alloc(new_layout);
        if !moved.is_null() {
            std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
            mimalloc::MiMalloc.dealloc(ptr, layout);
        }
        moved
    }
}

/// Whether `ptr` lies in memory mimalloc manages.
fn in_mimalloc(ptr: *mut u8) -> bool {
    // SAFETY: a lookup in mimalloc's map of its segments; it reads no
    // memory at `ptr`.
    unsafe { libmimalloc_sys::mi_is_in_heap_region(ptr.cast()) }
}

/// Chooses the allocator from the command line while the C runtime starts
/// the process, before Rust's runtime allocates (see [`ProcessAllocator`]
/// and [`short_flow`]). glibc passes `main`'s arguments to these
/// functions; other C libraries may not, so elsewhere mimalloc is always
/// used.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[used]
#[link_section = ".init_array"]
static CHOOSE_AT_START: extern "C" fn(
    std::ffi::c_int,
    *const *const std::ffi::c_char,
    *const *const std::ffi::c_char,
) = {
    extern "C" fn choose(
        argc: std::ffi::c_int,
        argv: *const *const std::ffi::c_char,
        _env: *const *const std::ffi::c_char,
    ) {
        if argv.is_null() {
            return;
        }
        let argc = usize::try_from(argc).unwrap_or(0);
        // SAFETY: glibc passes `argc` pointers to NUL-terminated strings.
        let arg = |i: usize| unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
        if !short_flow((0..argc).map(arg)) {
            return;
        }
        // glibc's defaults hand a block of 128 KiB or more to the kernel
        // when freed (a fresh mapping each time), and trim the heap's top
        // when 128 KiB of it are free: decompressed pages would be faulted
        // in again page after page. Keep both: the process ends soon.
        // SAFETY: mallopt only sets glibc's allocator parameters; nothing
        // has been allocated by it yet.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        }
        C_ALLOCATOR.store(true, Ordering::Relaxed);
    }
    choose
};

/// Whether the command line `args` (the program's name first) asks for a
/// `flow` over a few files: `--input` naming at most [`SHORT_FLOW_FILES`]
/// paths, none of them a directory, and no `--data`. Such a process reads
/// a footer and a few pages of each file and ends within milliseconds; a
/// flow over a directory of 2,000 hourly files makes a footer's worth of
/// small allocations per file on every thread, where mimalloc's speed
/// wins (CPU 43–45 ms with it, 50–52 ms with glibc). Looks at the
/// arguments as clap will read them, without allocating.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn short_flow<'a>(mut args: impl Iterator<Item = &'a std::ffi::CStr>) -> bool {
    const INPUT_IS: &[u8] = b"--input=";
    if args.nth(1).map(std::ffi::CStr::to_bytes) != Some(b"flow") {
        return false;
    }
    let mut inputs = 0;
    let mut in_input = false;
    for arg in args {
        let bytes = arg.to_bytes();
        let path = if bytes.starts_with(INPUT_IS) {
            in_input = false;
            std::ffi::CStr::from_bytes_with_nul(&arg.to_bytes_with_nul()[INPUT_IS.len()..]).ok()
        } else if bytes.starts_with(b"-") {
            if bytes.starts_with(b"--data") {
                return false;
            }
            in_input = bytes == b"--input";
            None
        } else {
            in_input.then_some(arg)
        };
        if let Some(path) = path {
            inputs += 1;
            if inputs > SHORT_FLOW_FILES || is_directory(path) {
                return false;
            }
        }
    }
    inputs > 0
}

/// At most this many files make a [`short_flow`].
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const SHORT_FLOW_FILES: usize = 16;

/// Whether `path` names a directory (a path that cannot be looked up does
/// not: reading it fails later, with the error the user should see).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn is_directory(path: &std::ffi::CStr) -> bool {
    let mut status = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `path` is NUL-terminated and `status` is written by `stat`
    // before it is read, and read only when `stat` succeeded.
    unsafe {
        libc::stat(path.as_ptr(), status.as_mut_ptr()) == 0
            && status.assume_init().st_mode & libc::S_IFMT == libc::S_IFDIR
    }
}

/// Turns huge pages off (see [`huge_pages`]) while the C runtime starts the
/// process, before Rust's runtime makes the first allocation: mimalloc
/// reserves its memory at that allocation, and with huge pages on, its
/// first two touches each zero a 2 MiB page (about 1.5 ms of a `flow`
/// process here) before `main` could turn them off.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static HUGE_PAGES_OFF_AT_START: extern "C" fn() = {
    extern "C" fn off() {
        huge_pages(false);
    }
    off
};

/// Turns transparent huge pages on or off for this process. They start off
/// (before the first allocation) and are turned on only for the batch
/// queries over Parquet files other than `flow`, and for `generate`.
/// mimalloc asks for huge pages on its memory; the kernel then zeroes
/// 2 MiB at every first touch (and, with the usual `defrag=madvise`, may
/// compact memory first). A batch query over Parquet files touches a
/// hundred megabytes once and gains from that; ingest (`ingest`, `serve`,
/// `demo`) keeps allocating, freeing and touching again buffers the size
/// of a request or a batch, as does a batch query over NDJSON with its
/// chunks; loading a checkpoint (queries on `--data`) touches a gigabyte
/// once, in random order; and `flow`, or a process that only starts and
/// reads its arguments, touches a few megabytes, for which zeroing whole
/// 2 MiB pages costs more than it saves.
/// Measured on this project's 2-core VM (README, "Durable data
/// directory" and "Performance"), alternated runs: kernel time of
/// `serve --data` under NDJSON POSTs 1.0 → 0.4 s per 1M events, `ingest`
/// of a 10M-event Parquet file 17 → 10 s, `demo` 0.86–1.93 → 0.66–0.77 s,
/// `flow` median 19.1 → 16.2 ms. Nothing else changes; elsewhere than
/// Linux this does nothing.
fn huge_pages(on: bool) {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes
    // a flag of the calling process; it cannot touch memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, libc::c_ulong::from(!on), 0, 0, 0);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = on;
}

/// The fewest bytes of Parquet input for which a batch query turns huge
/// pages on (see [`huge_pages`]). A query over a small file touches a few
/// megabytes, much of it once per thread as the pool starts, and zeroing a
/// 2 MiB page at each first touch costs more than the faults it spares.
/// Alternated runs (medians of 31), a file of 10,000 events (324 KB):
/// `conversations` 3.99 → 3.20 ms without, `insights` 3.85 → 2.88 ms,
/// `usage` 4.85 → 4.20 ms. Over the 100,000-event files of
/// `benches/compare_duckdb.py --events 100000` (2.8–3.2 MB) it is a draw:
/// `conversations` and `insights` took 4–8% less time without (medians of
/// 41), `usage` 0.6–0.7 ms more at its fastest; over two of the 1M-event
/// files (30–32 MB), huge pages gain 5–13% (medians of 21).
const HUGE_PAGES_INPUT_LEAST: u64 = 2 << 20;

/// Whether `files` hold at least `least` bytes in all (asking the file
/// system for their sizes only until they do; a file it cannot tell
/// counts as empty, and its error comes when it is read).
fn holds_at_least(files: &[InputFile], least: u64) -> bool {
    let mut bytes = 0u64;
    least == 0
        || files.iter().any(|file| {
            bytes += std::fs::metadata(&file.path).map_or(0, |m| m.len());
            bytes >= least
        })
}

/// How long mimalloc keeps memory a process freed before handing it back
/// to the kernel (`purge_delay`, in milliseconds; -1: never).
///
/// A command that runs and ends keeps it: it reuses what it frees, or
/// exits. Handing back cost a `madvise` call per 64 KiB, most of them as
/// a `flow` process ended, where they were about a tenth of its time
/// (median 13.4 → 12.0 ms, alternated runs on the Polars-written file of
/// `compare_duckdb.py`); peak memory of batch queries stays the same.
/// `serve` runs for long and hands memory freed after a burst back after
/// a second (mimalloc v3's default; v2's 10 ms doubled the server's kernel
/// time under NDJSON POSTs, `benches/serve_ingest.sh`).
fn set_purge_delay(serve: bool) {
    /// `mi_option_purge_delay` in mimalloc.h (v2 and v3); the crate does
    /// not name every option.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    let delay = if serve { 1_000 } else { -1 };
    // SAFETY: sets one of mimalloc's options; called from `main` before
    // any other thread exists (mimalloc's options are not synchronised).
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, delay) }
}

#[derive(Parser)]
#[command(
    name = "convostat",
    version,
    about = "Conversation analytics over Parquet and NDJSON event files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands. Each one's arguments are built only when it is the
/// one given (`defer`): clap built every subcommand's arguments and help
/// texts before parsing, a tenth of a short `flow` process. Alternated
/// runs, medians of 60, first-conversation flows over the files of
/// `benches/compare_duckdb.py`: DuckDB v2's 3.16 → 2.87 ms, DuckDB's
/// 3.05 → 2.75 ms, Polars' 3.69 → 3.34 ms, parquet-rs' 2.51 → 2.22 ms;
/// `--version` 1.26 → 1.08 ms (`perf stat`, 300 runs).
#[derive(Subcommand)]
#[command(defer = true)]
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
    /// Ingests files into a durable data directory (SPEC 9), one atomic and
    /// durable call per file; prints the summed ingest report as one JSON
    /// line on stdout (and on stderr what recovery found, if anything).
    Ingest {
        /// The data directory (created if missing).
        #[arg(long)]
        data: PathBuf,
        /// Parquet / NDJSON files or directories.
        #[arg(long, required = true, num_args = 1..)]
        input: Vec<PathBuf>,
        /// Skip rows with nulls in required columns (counted in the report).
        #[arg(long)]
        lenient: bool,
        /// Log bytes after which a checkpoint is written (or the size of the
        /// last checkpoint, if larger).
        #[arg(long, default_value_t = convostat::DEFAULT_CHECKPOINT_LOG_BYTES)]
        checkpoint_log_bytes: u64,
    },
    /// Writes a realistic synthetic data set (Parquet, or NDJSON for .ndjson).
    Generate {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        events: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Row order: interleaved (time order, every bot mixed, as a
        /// pipeline writes) or clustered (by bot, as a per-tenant export).
        #[arg(long, value_enum, default_value_t = LayoutArg::Interleaved)]
        layout: LayoutArg,
        /// Write this many Parquet files part-NNNNN.parquet into the
        /// directory --out, consecutive in row order (time partitions).
        #[arg(long)]
        files: Option<usize>,
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
#[command(group(ArgGroup::new("source").required(true).args(["input", "data"])))]
struct Common {
    /// Parquet (.parquet, .parq) / NDJSON (.ndjson, .jsonl, also .gz) files or directories.
    #[arg(long, num_args = 1..)]
    input: Vec<PathBuf>,
    /// A durable data directory (`convostat ingest`) to query instead.
    #[arg(long)]
    data: Option<PathBuf>,
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
enum LayoutArg {
    Interleaved,
    Clustered,
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

/// Whether `e` comes from writing to a pipe whose reader has gone.
fn is_broken_pipe(e: &Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::BrokenPipe;
        }
        source = s.source();
    }
    false
}

fn fail(e: &Error) -> u8 {
    eprintln!("error: {e}");
    exit_code(e.kind())
}

#[cfg(any(test, not(all(target_os = "linux", target_env = "gnu"))))]
fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(run_process())
}

/// The process's entry, called by the C runtime in place of Rust's own
/// start (`#![no_main]`, on Linux with glibc).
///
/// Rust's start prepares a process before `main`: among the rest, it
/// finds where the main thread's stack ends, to tell a stack overflow from
/// another fault, and glibc finds that by reading and parsing
/// `/proc/self/maps` (the kernel formats a line for every mapping). That
/// and the signal handlers took about a tenth of a short `flow` process:
/// alternated runs, medians, `--version` 1.22 → 1.06 ms (40 runs), a
/// first-conversation flow over DuckDB's v2 file of `compare_duckdb.py`
/// 3.14 → 2.85 ms (30 runs).
///
/// What this process needs of that start is done here: standard streams
/// that are closed are opened on `/dev/null` (so that a file opened later
/// never becomes one of them), and `SIGPIPE` is ignored (a reader that
/// closes early, `| head`, is a write error, which ends quietly). At the
/// end, [`std::process::exit`] flushes standard output as Rust's start
/// does. Arguments are read as before: Rust's standard library takes them
/// from the C runtime on glibc. The one difference left is a stack
/// overflow, which ends the process with `SIGSEGV` rather than a message
/// first.
#[cfg(all(target_os = "linux", target_env = "gnu", not(test)))]
#[no_mangle]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    // SAFETY: `poll` reads and writes the three entries of `fds` alone;
    // `open` is given a NUL-terminated path; `signal` takes integer
    // arguments. No other thread exists yet.
    unsafe {
        let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        });
        if libc::poll(fds.as_mut_ptr(), 3, 0) >= 0 {
            // Each takes the lowest closed descriptor: the closed ones,
            // in order.
            for _ in fds.iter().filter(|fd| fd.revents & libc::POLLNVAL != 0) {
                libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            }
        }
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    std::process::exit(i32::from(run_process()))
}

/// Parses the command line, runs the command and reports its error: the
/// process's exit status.
fn run_process() -> u8 {
    // Huge pages are off (`HUGE_PAGES_OFF_AT_START`) until a command that
    // gains from them turns them on.
    // Decoder panics are caught by the library and reported as data errors;
    // the default hook would still print them. Keep stderr to one line,
    // unless a backtrace is asked for (debugging a decoder).
    if std::env::var_os("RUST_BACKTRACE").is_none() {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    set_purge_delay(matches!(cli.command, Command::Serve(_)));
    match std::panic::catch_unwind(|| run(cli.command)) {
        Ok(Ok(())) => 0,
        // A reader that closed early (`| head`) is not an error: end
        // quietly, as Unix tools do.
        Ok(Err(e)) if is_broken_pipe(&e) => 0,
        Ok(Err(e)) => fail(&e),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            eprintln!("error: internal error: {}", echo(&what));
            1
        }
    }
}

/// Help and version go to stdout with status 0; any other argument error
/// is one `error: ` line (clap's first paragraph, joined) with status 2.
fn usage_error(e: &clap::Error) -> u8 {
    use clap::error::ErrorKind as K;
    if matches!(e.kind(), K::DisplayHelp | K::DisplayVersion) {
        let _ = e.print();
        return 0;
    }
    if e.kind() == K::DisplayHelpOnMissingArgumentOrSubcommand {
        eprintln!(
            "error: a subcommand is required: conversations, insights, flow, usage, ingest, generate, demo, serve or hash-secret (see --help)"
        );
        return 2;
    }
    let text = e.render().to_string();
    let first: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let line = first.join(" ");
    let line = echo(line.trim_start_matches("error: "));
    eprintln!(
        "error: {}",
        if line.is_empty() {
            "invalid arguments"
        } else {
            &line
        }
    );
    2
}

fn run(command: Command) -> convostat::Result<()> {
    let (kind, common, pairs) = match command {
        Command::Generate {
            out,
            events,
            seed,
            layout,
            files,
        } => {
            huge_pages(true);
            let layout = match layout {
                LayoutArg::Interleaved => Layout::Interleaved,
                LayoutArg::Clustered => Layout::Clustered,
            };
            let config = GeneratorConfig::new(events, seed).with_layout(layout);
            let rows = match files {
                Some(files) => write_parquet_parts(&out, &config, files)?,
                None => write_file(&out, &config)?,
            };
            eprintln!("wrote {rows} events to {}", out.display());
            return Ok(());
        }
        Command::Demo { events } => {
            return convostat::demo::run(events, &mut std::io::stdout().lock());
        }
        Command::Ingest {
            data,
            input,
            lenient,
            checkpoint_log_bytes,
        } => {
            let options = EngineOptions::new()
                .mode(ingest_mode(lenient))
                .checkpoint_log_bytes(checkpoint_log_bytes);
            return ingest(options, &data, &input);
        }
        #[cfg(feature = "server")]
        Command::Serve(args) => {
            return serve::serve(args);
        }
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
    let mode = ingest_mode(common.lenient);
    // Huge pages (see `huge_pages`) for the queries that read Parquet files
    // and touch a hundred megabytes once. Not for flow (a few MB), nor for
    // NDJSON, whose chunk buffers come and go (10M events, `usage`: peak
    // RSS 279–293 → 216–232 MB without; `conversations`, 4 alternated
    // runs: 3.81 → 3.67 s best), nor for a data directory (loaded once, in
    // random order), nor for Parquet files of less than
    // `HUGE_PAGES_INPUT_LEAST` bytes in all.
    if let Some(dir) = &common.data {
        // A query reads a directory `ingest` made: a mistyped path is an
        // error, not an empty directory made there.
        let engine = EngineOptions::new()
            .mode(mode)
            .create_if_missing(false)
            .open(dir)?;
        let answer = engine.query(&query)?;
        engine.close()?;
        return print_answer(&answer, common.format);
    }
    let files = discover_inputs(&common.input)?;
    let ndjson = files
        .iter()
        .any(|f| matches!(f.format, InputFormat::Ndjson | InputFormat::NdjsonGzip));
    if !ndjson && !matches!(query, Query::Flow(_)) && holds_at_least(&files, HUGE_PAGES_INPUT_LEAST)
    {
        huge_pages(true);
    }
    // This process is the job's alone: a file truncated under it may kill
    // it (`BatchOptions::map_files`).
    let options = BatchOptions {
        mode,
        progress: None,
        map_files: true,
    };
    let bar = progress_bar(&files);
    let options = BatchOptions {
        progress: bar.clone().map(|bar| {
            Box::new(move |rows| {
                bar.set_position(rows);
                bar.tick();
            }) as Box<dyn Fn(u64) + Send + Sync>
        }),
        ..options
    };
    let outcome = run_input_files(&query, &files, &options);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let outcome = outcome?;
    if common.lenient {
        report_skipped(&outcome.report);
    }
    print_answer(&outcome.answer, common.format)
}

/// The null policy `--lenient` asks for.
fn ingest_mode(lenient: bool) -> IngestMode {
    if lenient {
        IngestMode::Lenient
    } else {
        IngestMode::Strict
    }
}

/// `convostat ingest`: each file is one durable ingest call.
fn ingest(
    options: EngineOptions,
    data: &std::path::Path,
    inputs: &[PathBuf],
) -> convostat::Result<()> {
    // Missing inputs are reported before the directory is touched.
    discover_inputs(inputs)?;
    let engine = options.open(data)?;
    report_recovery(data, &engine);
    let total = engine.ingest_paths(inputs)?;
    engine.close()?;
    let json = serde_json::to_string(&total).map_err(|e| Error::data_from("report", e))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{json}")
        .and_then(|_| out.flush())
        .map_err(|e| Error::data_from("stdout", e))
}

/// Says on stderr what opening a data directory recovered, if anything.
fn report_recovery(data: &std::path::Path, engine: &convostat::Engine) {
    let Some(r) = engine.open_report() else {
        return;
    };
    if r.records_replayed > 0 || r.dropped_tail_bytes > 0 {
        eprintln!(
            "recovered {}: replayed {} log records ({} events){}",
            data.display(),
            r.records_replayed,
            r.events_replayed,
            match &r.dropped_tail {
                Some(why) => format!(
                    ", dropped a torn tail of {} bytes ({})",
                    r.dropped_tail_bytes,
                    echo(why)
                ),
                None => String::new(),
            }
        );
    }
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
fn progress_bar(files: &[InputFile]) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
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
    use convostat::server::{self, Credentials, Server, ServerConfig};
    use convostat::{Engine, Error};

    #[derive(Args)]
    pub struct ServeArgs {
        /// Parquet / NDJSON files or directories to load at start.
        #[arg(long, num_args = 1..)]
        input: Vec<PathBuf>,
        /// A durable data directory (SPEC 9): opened (recovered) at start,
        /// every acknowledged POST is in it, checkpointed at shutdown.
        #[arg(long)]
        data: Option<PathBuf>,
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
        /// With --data: log bytes after which a checkpoint is written (or
        /// the size of the last checkpoint, if larger).
        #[arg(long, default_value_t = convostat::DEFAULT_CHECKPOINT_LOG_BYTES)]
        checkpoint_log_bytes: u64,
        /// With --data: encode automatic checkpoints in place, holding
        /// ingest for the whole encoding, instead of copying the store
        /// (which needs memory for it twice while the copy is encoded).
        #[arg(long)]
        checkpoint_in_place: bool,
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
        let engine = Arc::new(match &args.data {
            Some(dir) => {
                let engine = convostat::EngineOptions::new()
                    .checkpoint_log_bytes(args.checkpoint_log_bytes)
                    .copy_for_checkpoints(!args.checkpoint_in_place)
                    .open(dir)?;
                super::report_recovery(dir, &engine);
                engine
            }
            None => Engine::new(),
        });
        if !args.input.is_empty() {
            let started = Instant::now();
            let report = engine.ingest_paths(&args.input)?;
            eprintln!(
                "loaded {} events ({} new) in {:.1}s",
                report.rows_seen,
                report.rows_ingested,
                started.elapsed().as_secs_f64()
            );
        }
        server.run(Arc::clone(&engine), |addr| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on http://{addr}").and_then(|_| out.flush());
        })?;
        // Requests have drained: leave the data directory checkpointed and
        // unlocked (a remaining reference does the same when it drops).
        match Arc::try_unwrap(engine) {
            Ok(engine) => engine.close(),
            Err(_) => Ok(()),
        }
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

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn short(args: &[&str]) -> bool {
        let args: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
        short_flow(args.iter().map(CString::as_c_str))
    }

    /// The C allocator is chosen for a flow over a few files, and only then.
    #[test]
    fn a_flow_over_a_few_files_is_short() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.parquet");
        std::fs::write(&file, b"x").unwrap();
        let (file, dir) = (file.to_str().unwrap(), dir.path().to_str().unwrap());
        fn flow<'a>(rest: &[&'a str]) -> Vec<&'a str> {
            [&["convostat", "flow"], rest].concat()
        }
        assert!(short(&flow(&["--input", file, "--bot-id", "b"])));
        assert!(short(&flow(&["--bot-id", "b", &format!("--input={file}")])));
        assert!(short(&flow(&["--input", file, file, "--bot-id", "b"])));
        // A path that does not exist fails later, as any other flow's.
        assert!(short(&flow(&["--input", "/no/such/file.parquet"])));
        let many = |n| [&["--input"], &vec![file; n][..]].concat();
        assert!(short(&flow(&many(SHORT_FLOW_FILES))));

        assert!(!short(&flow(&["--input", dir])));
        assert!(!short(&flow(&["--input", file, dir])));
        assert!(!short(&flow(&[&format!("--input={dir}")])));
        assert!(!short(&flow(&["--data", dir])));
        assert!(!short(&flow(&["--data=x", "--input", file])));
        assert!(!short(&flow(&["--bot-id", "b"])));
        assert!(!short(&flow(&["--bot-id", file])));
        assert!(!short(&flow(&many(SHORT_FLOW_FILES + 1))));
        assert!(!short(&["convostat", "conversations", "--input", file]));
        assert!(!short(&["convostat"]));
        assert!(!short(&[]));
    }
}

#[cfg(test)]
mod command_line_tests {
    use clap::CommandFactory;

    use super::*;

    /// clap's own checks of the command line's definition (in debug
    /// builds), subcommands' deferred arguments included; and every
    /// subcommand's help, which builds its arguments.
    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|sub| sub.get_name().to_owned())
            .collect();
        assert!(names.iter().any(|name| name == "flow"));
        for name in names {
            let help = Cli::try_parse_from(["convostat", &name, "--help"])
                .err()
                .unwrap_or_else(|| panic!("`{name} --help` parsed"));
            assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp, "{name}");
            let text = help.render().to_string();
            assert!(text.contains(&format!("Usage: convostat {name}")), "{text}");
        }
    }

    /// A subcommand's deferred arguments are built when it is the one given.
    #[test]
    fn deferred_subcommand_arguments_parse() {
        let cli = Cli::try_parse_from([
            "convostat",
            "flow",
            "--input",
            "a.parquet",
            "--bot-id",
            "b",
            "--conversation-id",
            "c",
        ])
        .unwrap();
        let Command::Flow {
            common,
            bot_id,
            conversation_id,
            ..
        } = cli.command
        else {
            panic!("not a flow");
        };
        assert_eq!(common.input, [PathBuf::from("a.parquet")]);
        assert_eq!(bot_id.as_deref(), Some("b"));
        assert_eq!(conversation_id.as_deref(), Some("c"));
        let unknown = Cli::try_parse_from(["convostat", "usage", "--bot-id", "b"]);
        assert!(unknown.is_err(), "usage takes no --bot-id");
    }

    /// Huge pages wait for inputs of some size: their sizes are added up
    /// until they reach it, and a file that cannot be asked counts as
    /// empty (its error comes when it is read).
    #[test]
    fn inputs_hold_at_least_their_added_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let input = |name: &str, len: usize| {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![0u8; len]).unwrap();
            InputFile {
                path,
                format: InputFormat::Parquet,
            }
        };
        let (a, b) = (input("a.parquet", 300), input("b.parquet", 200));
        let missing = InputFile {
            path: dir.path().join("missing.parquet"),
            format: InputFormat::Parquet,
        };
        assert!(holds_at_least(std::slice::from_ref(&a), 300));
        assert!(!holds_at_least(std::slice::from_ref(&a), 301));
        assert!(holds_at_least(
            &[a.clone(), missing.clone(), b.clone()],
            500
        ));
        assert!(!holds_at_least(&[missing, b], 201));
        assert!(!holds_at_least(&[], 1));
        assert!(holds_at_least(&[], 0));
    }
}
