//! The data directory: lock, manifest, file names, recovery on open, and
//! the checkpoint protocol.
//!
//! ```text
//! DIR/LOCK                              held (flock) while open
//! DIR/MANIFEST                          format version, checksummed
//! DIR/checkpoint-NNNNNNNNNNNNNNNNNNNN.ckpt   snapshot covering segments < N
//! DIR/wal-NNNNNNNNNNNNNNNNNNNN.log      log segments, replayed in order
//! DIR/MANIFEST.tmp, DIR/checkpoint-NNNNNNNNNNNNNNNNNNNN.ckpt.tmp
//!                                       the manifest or a checkpoint being written
//! ```
//!
//! **Open**: refuse a path that holds no data directory if asked not to
//! create one, and, if asked to, a directory without a manifest that
//! holds any file not named above; lock (a second process gets a one-line
//! error), check or create the manifest, remove the temporary files above
//! (a file of any other name is left alone), load the newest checkpoint
//! N, remove older checkpoints and segments below N (left by a checkpoint
//! cut short), replay segments ≥ N in order, and start a new segment. A
//! torn tail in the last segment is truncated away and reported; any other
//! damage is a data error naming the file.
//!
//! **Checkpoint**: with the store quiescent, start segment N+1 and take
//! the snapshot ([`DataDir::snapshot`]: encoded then, or a copy of the
//! store to encode later, see [`Capture`]); then, while ingest may go on
//! into segment N+1 ([`CheckpointWrite::write`], on another thread for an
//! automatic checkpoint), encode a copy, write it to
//! `checkpoint-(N+1).ckpt.tmp`, fsync it, rename it into place, fsync the
//! directory, and remove the segments and
//! checkpoints below N+1. A crash at any step leaves either the old
//! checkpoint with all its segments, or the new one (segments it covers
//! are ignored and removed).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use fs4::fs_std::FileExt;

use super::wal::{self, Log, RecordKind, SyncPolicy};
use super::Store;
use super::{checkpoint, ingest_record};
use crate::error::{Error, Result};
use crate::ingest::EventColumns;

/// The directory layout written by this build. Version 2 (log records in
/// the columnar encoding of `ingest_record`) replaced version 1 (Arrow IPC
/// and zstd); a version-1 directory is refused with a one-line error.
pub const FORMAT_VERSION: u32 = 2;
/// How long opening waits for the lock before saying the directory is in
/// use. A process that forks (to spawn a command) while this one holds
/// the lock gives the child a copy of the lock's descriptor, which keeps
/// the `flock` held until the child calls `exec` (and so closes it): a
/// close followed by a reopen then finds the lock held for a moment.
/// `tests/durable.rs` hit that while another test spawned processes.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(5);
const MANIFEST: &str = "MANIFEST";
const LOCK: &str = "LOCK";
const MANIFEST_TITLE: &str = "convostat data directory";

/// What opening a directory found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// The checkpoint loaded (its number), if any.
    pub checkpoint: Option<u64>,
    /// Log records replayed after it.
    pub records_replayed: u64,
    /// Events in the replayed ingest records (duplicates included).
    pub events_replayed: u64,
    /// Bytes of a torn or corrupt tail dropped from the last log segment
    /// (an ingest call cut off by a crash, never acknowledged).
    pub dropped_tail_bytes: u64,
    /// Why the tail was dropped, naming the file, when it was.
    pub dropped_tail: Option<String>,
}

/// An open data directory.
#[derive(Debug)]
pub(crate) struct DataDir {
    path: PathBuf,
    /// Held for the lifetime of the directory: the flock is released when
    /// the file is closed.
    _lock: File,
    pub log: Log,
    policy: SyncPolicy,
    /// Size of the newest checkpoint file (set once it is encoded).
    checkpoint_bytes: Arc<AtomicU64>,
}

/// How [`DataDir::snapshot`] captures the store while it is quiescent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Capture {
    /// Encode the snapshot then: the store is held still for the whole
    /// encoding (0.5–0.8 s at 10M events on 2 cores), and no memory
    /// beyond the file's bytes is needed.
    Encode,
    /// Copy the store then ([`checkpoint::StoreCopy`]: 0.1–0.15 s at 10M
    /// events, where encoding takes about 1 s of CPU), and encode the copy in
    /// [`CheckpointWrite::write`] while ingest goes on, at the cost of a
    /// second store in memory until the copy is encoded.
    Copy,
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::data_from(path.display().to_string(), e)
}

fn segment_name(n: u64) -> String {
    format!("wal-{n:020}.log")
}

fn checkpoint_name(n: u64) -> String {
    format!("checkpoint-{n:020}.ckpt")
}

fn parse_number(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    name.strip_prefix(prefix)?
        .strip_suffix(suffix)?
        .parse()
        .ok()
}

/// Fsyncs a directory, so that entries created, renamed or removed in it
/// survive a power cut (not with [`SyncPolicy::Never`]).
fn sync_dir(path: &Path, policy: SyncPolicy) -> Result<()> {
    if policy == SyncPolicy::Never {
        return Ok(());
    }
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(path, e))
}

/// Fsyncs a file (not with [`SyncPolicy::Never`]).
fn sync_file(file: &File, path: &Path, policy: SyncPolicy) -> Result<()> {
    if policy == SyncPolicy::Never {
        return Ok(());
    }
    file.sync_all().map_err(|e| io(path, e))
}

/// Makes `dir/name` hold what `write` writes, atomically: a temporary
/// file, fsync, rename, fsync of the directory.
fn write_atomic(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
    policy: SyncPolicy,
) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&tmp).map_err(|e| io(&tmp, e))?;
    write(&mut file).map_err(|e| io(&tmp, e))?;
    sync_file(&file, &tmp, policy)?;
    drop(file);
    let path = dir.join(name);
    fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    sync_dir(dir, policy)
}

fn manifest_text(version: u32) -> String {
    let body = format!("{MANIFEST_TITLE}\nformat {version}\n");
    format!("{body}crc32 {:08x}\n", crc32fast::hash(body.as_bytes()))
}

/// Checks the manifest's checksum and version.
fn check_manifest(path: &Path, text: &str) -> Result<()> {
    let bad = |reason: &str| Error::data(path.display().to_string(), reason);
    let mut lines = text.lines();
    let (title, format, crc) = (lines.next(), lines.next(), lines.next());
    if title != Some(MANIFEST_TITLE) {
        return Err(bad("not a convostat manifest"));
    }
    let body = format!("{MANIFEST_TITLE}\n{}\n", format.unwrap_or_default());
    let expected = format!("crc32 {:08x}", crc32fast::hash(body.as_bytes()));
    if crc != Some(expected.as_str()) || lines.next().is_some() {
        return Err(bad("the manifest fails its checksum"));
    }
    let version: u32 = format
        .and_then(|f| f.strip_prefix("format "))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("the manifest has no format version"))?;
    if version != FORMAT_VERSION {
        return Err(bad(&format!(
            "format version {version} is not supported (this build reads version {FORMAT_VERSION})"
        )));
    }
    Ok(())
}

/// The directory's files by kind.
#[derive(Default)]
struct Listing {
    checkpoints: Vec<u64>,
    segments: Vec<u64>,
    /// Files [`write_atomic`] left behind (a manifest or checkpoint being
    /// written): removed on open. Any other `*.tmp` file is not ours.
    temporary: Vec<PathBuf>,
    /// The name of an entry that is none of the above, nor the lock or the
    /// manifest (the first one met).
    other: Option<String>,
}

/// Whether `name` is a temporary file [`write_atomic`] makes.
fn is_own_temporary(name: &str) -> bool {
    name.strip_suffix(".tmp").is_some_and(|made| {
        made == MANIFEST || parse_number(made, "checkpoint-", ".ckpt").is_some()
    })
}

fn list(dir: &Path) -> Result<Listing> {
    let mut out = Listing::default();
    for entry in fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            out.other
                .get_or_insert_with(|| file_name.to_string_lossy().into_owned());
            continue;
        };
        if let Some(n) = parse_number(name, "checkpoint-", ".ckpt") {
            out.checkpoints.push(n);
        } else if let Some(n) = parse_number(name, "wal-", ".log") {
            out.segments.push(n);
        } else if is_own_temporary(name) {
            out.temporary.push(entry.path());
        } else if name != LOCK && name != MANIFEST {
            out.other.get_or_insert_with(|| name.to_owned());
        }
    }
    out.checkpoints.sort_unstable();
    out.segments.sort_unstable();
    Ok(out)
}

fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path, e)),
    }
}

impl DataDir {
    /// Opens the directory at `path` and recovers its contents into
    /// `store`, which must be empty. With `create`, a directory that holds
    /// no data directory yet is made one; without, that is a data error
    /// and nothing is written.
    pub fn open(
        path: &Path,
        policy: SyncPolicy,
        create: bool,
        store: &Store,
    ) -> Result<(Self, OpenReport)> {
        let not_one = |reason: &str| Error::data(path.display().to_string(), reason);
        match fs::metadata(path) {
            Ok(meta) if !meta.is_dir() => return Err(not_one("not a directory")),
            Ok(_) if !create && !path.join(MANIFEST).exists() => {
                return Err(not_one(
                    "not a convostat data directory (it has no MANIFEST)",
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => {
                return Err(not_one("no such data directory"))
            }
            // A directory to be made one must hold nothing else, so that a
            // mistyped path never mixes the engine's files with a user's.
            Ok(_) if !path.join(MANIFEST).exists() => {
                if let Some(other) = list(path)?.other {
                    return Err(not_one(&format!(
                        "not a convostat data directory (it has no MANIFEST) and not empty \
                         (it holds `{other}`): give a new or empty directory"
                    )));
                }
            }
            _ => {}
        }
        fs::create_dir_all(path).map_err(|e| io(path, e))?;
        let lock_path = path.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io(&lock_path, e))?;
        let asked = std::time::Instant::now();
        loop {
            match FileExt::try_lock_exclusive(&lock) {
                Ok(true) => break,
                Ok(false) if asked.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(LOCK_RETRY);
                }
                Ok(false) => {
                    return Err(Error::data(
                        path.display().to_string(),
                        "the data directory is in use by another process",
                    ))
                }
                Err(e) => return Err(io(&lock_path, e)),
            }
        }
        let manifest = path.join(MANIFEST);
        let mut files = list(path)?;
        match fs::read(&manifest) {
            Ok(bytes) => check_manifest(&manifest, &String::from_utf8_lossy(&bytes))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !files.checkpoints.is_empty() || !files.segments.is_empty() {
                    return Err(Error::data(
                        manifest.display().to_string(),
                        "the manifest is missing but the directory holds data",
                    ));
                }
                let text = manifest_text(FORMAT_VERSION);
                write_atomic(path, MANIFEST, |f| f.write_all(text.as_bytes()), policy)?;
            }
            Err(e) => return Err(io(&manifest, e)),
        }
        for tmp in std::mem::take(&mut files.temporary) {
            remove(&tmp)?;
        }
        let mut report = OpenReport::default();
        // The newest checkpoint, then the log after it.
        let base = files.checkpoints.last().copied().unwrap_or(0);
        let mut checkpoint_bytes = 0;
        if let Some(&n) = files.checkpoints.last() {
            let file = path.join(checkpoint_name(n));
            let context = file.display().to_string();
            let len = fs::metadata(&file).map_err(|e| io(&file, e))?.len();
            let source = checkpoint::FileSource { path: &file, len };
            checkpoint::load(&source, &context, store)?;
            checkpoint_bytes = len;
            report.checkpoint = Some(n);
        }
        for &n in files.checkpoints.iter().filter(|&&n| n < base) {
            remove(&path.join(checkpoint_name(n)))?;
        }
        for &n in files.segments.iter().filter(|&&n| n < base) {
            remove(&path.join(segment_name(n)))?;
        }
        let segments: Vec<u64> = files
            .segments
            .iter()
            .copied()
            .filter(|&n| n >= base)
            .collect();
        for (i, &n) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            replay_segment(
                &path.join(segment_name(n)),
                last,
                store,
                &mut report,
                policy,
            )?;
        }
        let next = segments.last().map_or(base, |&n| n + 1).max(base);
        let (file, _) = create_segment(path, next, policy)?;
        let dir = DataDir {
            path: path.to_path_buf(),
            _lock: lock,
            log: Log::new(file, next, 0, policy),
            policy,
            checkpoint_bytes: Arc::new(AtomicU64::new(checkpoint_bytes)),
        };
        Ok((dir, report))
    }

    /// Size in bytes of the newest checkpoint (0 without one).
    pub fn checkpoint_bytes(&self) -> u64 {
        self.checkpoint_bytes.load(Ordering::Relaxed)
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes a checkpoint of `store`, to be written by
    /// [`CheckpointWrite::write`]. `quiescent` runs the steps that need the
    /// store and log still (starting a new segment, capturing the store as
    /// `capture` says); the caller makes them so, e.g. with a write lock
    /// that ingest calls take for reading, and releases them when
    /// `quiescent` returns.
    /// Ingest may go on while the snapshot is written: it covers exactly
    /// the segments below the one just started, which the write removes
    /// only once the snapshot is durable.
    pub fn snapshot(
        &self,
        store: &Store,
        capture: Capture,
        quiescent: impl FnOnce(&(dyn Fn() -> Result<(u64, Snapshot)> + Sync)) -> Result<(u64, Snapshot)>,
    ) -> Result<CheckpointWrite> {
        let (n, snapshot) = quiescent(&|| {
            let (segment, _) = self.log.position();
            let next = segment + 1;
            let (file, _) = create_segment(&self.path, next, self.policy)?;
            self.log.rotate(file, next)?;
            let snapshot = match capture {
                Capture::Encode => Snapshot::Encoded(checkpoint::encode(store)?),
                Capture::Copy => Snapshot::Copied(checkpoint::StoreCopy::of(store)),
            };
            Ok((next, snapshot))
        })?;
        if let Snapshot::Encoded(file) = &snapshot {
            self.checkpoint_bytes.store(file.len(), Ordering::Relaxed);
        }
        Ok(CheckpointWrite {
            dir: self.path.clone(),
            n,
            snapshot,
            checkpoint_bytes: Arc::clone(&self.checkpoint_bytes),
            policy: self.policy,
            cancel: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// A snapshot as [`DataDir::snapshot`] captured it.
pub(crate) enum Snapshot {
    /// The checkpoint file.
    Encoded(checkpoint::CheckpointFile),
    /// A copy of the store, to be encoded.
    Copied(checkpoint::StoreCopy),
}

/// A snapshot taken by [`DataDir::snapshot`], not yet on disk. Until
/// [`CheckpointWrite::write`] has returned `Ok`, the directory holds the
/// previous checkpoint and every segment after it, so a crash, an error or
/// a write never made loses nothing.
pub struct CheckpointWrite {
    dir: PathBuf,
    n: u64,
    snapshot: Snapshot,
    checkpoint_bytes: Arc<AtomicU64>,
    policy: SyncPolicy,
    cancel: Arc<AtomicBool>,
}

impl CheckpointWrite {
    /// A flag that, once set, stops the encoding of a copied snapshot:
    /// [`CheckpointWrite::write`] then writes nothing. For a newer
    /// checkpoint that supersedes this one.
    pub fn canceller(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// Encodes the snapshot if it was copied, writes it (a temporary file,
    /// fsync, rename, fsync of the directory), then removes the segments
    /// and checkpoints it covers. `Ok(false)` if it was cancelled while it
    /// was encoded, and nothing was written or removed.
    pub fn write(self) -> Result<bool> {
        let Self {
            dir,
            n,
            snapshot,
            checkpoint_bytes,
            policy,
            cancel,
        } = self;
        let file = match snapshot {
            Snapshot::Encoded(file) => file,
            Snapshot::Copied(copy) => {
                let Some(file) = copy.encode(&cancel)? else {
                    return Ok(false);
                };
                checkpoint_bytes.store(file.len(), Ordering::Relaxed);
                file
            }
        };
        write_atomic(&dir, &checkpoint_name(n), |f| file.write_to(f), policy)?;
        drop(file);
        let files = list(&dir)?;
        for &old in files.segments.iter().filter(|&&s| s < n) {
            remove(&dir.join(segment_name(old)))?;
        }
        for &old in files.checkpoints.iter().filter(|&&c| c < n) {
            remove(&dir.join(checkpoint_name(old)))?;
        }
        Ok(true)
    }
}

/// Creates segment `n` (empty) and makes its entry durable.
fn create_segment(dir: &Path, n: u64, policy: SyncPolicy) -> Result<(File, PathBuf)> {
    let path = dir.join(segment_name(n));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| io(&path, e))?;
    sync_dir(dir, policy)?;
    Ok((file, path))
}

/// Replays one segment into `store`. Damage in the last segment with no
/// valid record after it is a torn tail: truncated and reported.
fn replay_segment(
    path: &Path,
    last: bool,
    store: &Store,
    report: &mut OpenReport,
    policy: SyncPolicy,
) -> Result<()> {
    let context = path.display().to_string();
    let bytes = fs::read(path).map_err(|e| io(path, e))?;
    let scan = wal::scan_segment(&bytes);
    if let Some((reason, later)) = &scan.damage {
        if !last || *later {
            return Err(Error::data(&context, reason));
        }
    }
    // Records are applied in log order, a record's batches in order, and
    // each batch is decoded while the one before it is applied (decoding
    // changes nothing): a record of a large file is never in memory
    // decoded whole.
    let apply = |cols: EventColumns, report: &mut OpenReport| {
        report.events_replayed += cols.len() as u64;
        store.apply(&cols);
    };
    let mut pending: Option<EventColumns> = None;
    for record in &scan.records {
        match record.kind {
            RecordKind::Ingest => {
                let mut batches = ingest_record::RecordBatches::new(record.payload, &context)?;
                loop {
                    let (decoded, ()) = rayon::join(
                        || batches.next(),
                        || {
                            if let Some(previous) = pending.take() {
                                apply(previous, report);
                            }
                        },
                    );
                    match decoded {
                        Some(cols) => pending = Some(cols?),
                        None => break,
                    }
                }
            }
            RecordKind::Retain => {
                if let Some(previous) = pending.take() {
                    apply(previous, report);
                }
                store.retain(wal::decode_retain(record.payload, &context)?);
            }
        }
        report.records_replayed += 1;
    }
    if let Some(previous) = pending.take() {
        apply(previous, report);
    }
    if let Some((reason, _)) = scan.damage {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| io(path, e))?;
        file.set_len(scan.valid_len as u64)
            .map_err(|e| io(path, e))?;
        sync_file(&file, path, policy)?;
        report.dropped_tail_bytes = (bytes.len() - scan.valid_len) as u64;
        report.dropped_tail = Some(format!("{context}: {reason}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    fn checkpoints_in(dir: &Path) -> Vec<u64> {
        list(dir).unwrap().checkpoints
    }

    #[test]
    fn a_cancelled_copy_writes_nothing_and_a_copy_not_cancelled_is_written() {
        let work = tempfile::tempdir().unwrap();
        let store = Store::new(StoreOptions::default());
        let (dir, _) = DataDir::open(work.path(), SyncPolicy::Never, true, &store).unwrap();
        let take = || {
            dir.snapshot(&store, Capture::Copy, |steps| steps())
                .unwrap()
        };
        let write = take();
        write.canceller().store(true, Ordering::Relaxed);
        assert!(!write.write().unwrap());
        assert!(checkpoints_in(work.path()).is_empty());
        assert!(take().write().unwrap());
        assert_eq!(checkpoints_in(work.path()).len(), 1);
    }

    #[test]
    fn manifest_round_trips_and_rejects_other_versions() {
        let path = Path::new("MANIFEST");
        check_manifest(path, &manifest_text(FORMAT_VERSION)).unwrap();
        let err = check_manifest(path, &manifest_text(FORMAT_VERSION + 1)).unwrap_err();
        let expected = format!("format version {} is not supported", FORMAT_VERSION + 1);
        assert!(err.to_string().contains(&expected), "{err}");
        // A directory of format 1 (Arrow IPC + zstd log records) is refused
        // in one line, not misread.
        let err = check_manifest(path, &manifest_text(1)).unwrap_err();
        assert!(
            err.to_string()
                .contains("format version 1 is not supported"),
            "{err}"
        );
        let damaged = manifest_text(FORMAT_VERSION).replace("format 2", "format 7");
        assert!(check_manifest(path, &damaged)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
    }
}
