//! The gate between ingest calls and the operations that need the store
//! still (checkpoints and retention), and the pool those operations run
//! their parallel work on.
//!
//! Ingest calls pass the gate together ([`Gate::read`]); a checkpoint or
//! retention holds it alone ([`Gate::write`]), so that it sees a store
//! that matches the log exactly.
//!
//! A host may ingest from rayon's global pool (`par_iter().for_each(|b|
//! engine.ingest_batch(b))`), and the engine's own parallel work runs there
//! too. Two rules keep that free of deadlocks:
//! - A rayon worker that waits for a task may run another one meanwhile:
//!   an ingest call of the host, stolen while the worker, inside an ingest
//!   call of its own, holds the gate. Such a call must not wait for a
//!   writer that is itself waiting for the first call to end. So a writer
//!   that waits for the gate holds back new callers on plain threads only;
//!   rayon workers pass it until the writer holds it.
//! - The work done while the gate is held alone runs on a pool of its own
//!   ([`run_still`]), whose threads run nothing else, while the caller
//!   waits outside rayon: the global pool's workers may all be waiting at
//!   the gate then.

use std::cell::Cell;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    readers: usize,
    writer: bool,
    writers_waiting: usize,
}

thread_local! {
    /// Ingest calls on this thread inside the gate (more than one when a
    /// rayon worker runs a stolen call while it waits inside its own).
    static READS_HERE: Cell<usize> = const { Cell::new(0) };
}

/// An ingest call inside the gate.
#[must_use]
pub(crate) struct GateRead<'a>(&'a Gate);

/// The gate held alone.
#[must_use]
pub(crate) struct GateWrite<'a>(&'a Gate);

impl Gate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enters an ingest call: waits while a writer holds the gate, and,
    /// on a thread that is not a rayon worker, while one waits for it.
    pub fn read(&self) -> GateRead<'_> {
        let worker = rayon::current_thread_index().is_some();
        let mut state = self.lock();
        while state.writer || (!worker && state.writers_waiting > 0) {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.readers += 1;
        READS_HERE.with(|n| n.set(n.get() + 1));
        GateRead(self)
    }

    /// Whether this thread is inside an ingest call: it must not wait for
    /// the gate alone then (that call would never end).
    pub fn read_here() -> bool {
        READS_HERE.with(|n| n.get() > 0)
    }

    /// Holds the gate alone, once every ingest call inside has left.
    pub fn write(&self) -> GateWrite<'_> {
        loop {
            // Without a deadline, the first attempt gets it.
            if let Some(write) = self.write_within(None) {
                return write;
            }
        }
    }

    /// [`Gate::write`], giving up (`None`) after `patience`.
    pub fn try_write_for(&self, patience: Duration) -> Option<GateWrite<'_>> {
        self.write_within(Some(Instant::now() + patience))
    }

    fn write_within(&self, deadline: Option<Instant>) -> Option<GateWrite<'_>> {
        let mut state = self.lock();
        state.writers_waiting += 1;
        while state.writer || state.readers > 0 {
            state = match deadline {
                None => self.changed.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        state.writers_waiting -= 1;
                        drop(state);
                        // Callers held back for this writer may go on.
                        self.changed.notify_all();
                        return None;
                    }
                    self.changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
        state.writers_waiting -= 1;
        state.writer = true;
        Some(GateWrite(self))
    }
}

impl Drop for GateRead<'_> {
    fn drop(&mut self) {
        READS_HERE.with(|n| n.set(n.get().saturating_sub(1)));
        let mut state = self.0.lock();
        state.readers -= 1;
        let last = state.readers == 0;
        drop(state);
        if last {
            self.0.changed.notify_all();
        }
    }
}

impl Drop for GateWrite<'_> {
    fn drop(&mut self) {
        self.0.lock().writer = false;
        self.0.changed.notify_all();
    }
}

/// Runs `f`, the work of an operation that holds the gate alone, on the
/// engine's own pool, the calling thread waiting outside rayon (a rayon
/// worker waiting inside rayon could pick up an ingest call, which would
/// wait at the gate for this very operation).
pub(crate) fn run_still<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let Some(pool) = still_pool() else {
        return f();
    };
    if pool.current_thread_index().is_some() {
        return f();
    }
    if rayon::current_thread_index().is_none() {
        // A plain thread blocks until the pool has run `f`.
        return pool.install(f);
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| pool.install(f))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The pool of [`run_still`]: one thread per core, idle but for
/// checkpoints and retention.
fn still_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    own_pool(&POOL, "still", 0)
}

/// A rayon pool of the engine's own, built on first use in `cell`, its
/// threads named `convostat-{name}-i` (`threads` of them; 0: one per
/// core). `None` if its threads could not be started: the work then runs
/// on the calling thread's pool.
pub(crate) fn own_pool(
    cell: &'static OnceLock<Option<rayon::ThreadPool>>,
    name: &'static str,
    threads: usize,
) -> Option<&'static rayon::ThreadPool> {
    cell.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("convostat-{name}-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_waits_for_readers_and_gives_up_when_told() {
        let gate = Gate::default();
        let read = gate.read();
        assert!(Gate::read_here());
        assert!(gate.try_write_for(Duration::from_millis(10)).is_none());
        drop(read);
        assert!(!Gate::read_here());
        let write = gate.try_write_for(Duration::from_millis(10));
        assert!(write.is_some());
        drop(write);
        let _again = gate.read();
    }

    #[test]
    fn run_still_runs_off_the_global_pool() {
        let (on_still, in_global) = rayon::join(
            || run_still(|| still_pool().unwrap().current_thread_index().is_some()),
            || 1,
        );
        assert!(on_still);
        assert_eq!(in_global, 1);
    }
}
