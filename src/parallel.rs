//! Work split over rayon's pool, or done where it is asked for when there
//! is one piece of it.
//!
//! Handing work to the pool costs a wake-up of a pool thread and another
//! of the waiting one, and the first time, starting the pool's threads. A
//! `flow` over one file whose statistics single out one row group has one
//! piece of work at every level (one file, one row group): done on the
//! calling thread, with its columns gathered in sequence (the Parquet
//! reader's `light_gathers`, which gives the figures), such a process
//! starts no thread at all.
//!
//! Tasks of very different lengths (the columns of a row group to gather)
//! are claimed one at a time, the longest first, by whichever thread is
//! free ([`try_map_claimed`]); so are a few long tasks asked for from
//! outside the pool (a flow's two row groups), with one pool thread per
//! item but the first told to start rather than left to steal them, and
//! the asking thread claiming too ([`try_each`]). A thread that has
//! claimed its last task waits awake for the others' a short while
//! (`Claims::await_others`), rather than fall asleep and be woken.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::Result;

/// `f` on every item of `items`, over rayon's pool, or on this thread when
/// there is only one; the first error (any, in the pool) is returned.
///
/// No more items than the pool has threads, asked for from outside the
/// pool (a flow's few row groups that its bloom filters leave, a file of
/// two row groups): a pool thread per item but one is told to start, and
/// each takes the next item as it is free, this one too
/// ([`claimed_by_started_threads`]).
/// Rayon's own split hands the second half of the items to a thread that
/// has to steal it, and may not wake one to do so: the thread that split
/// then works through both halves in turn. A mid-file flow over a 3M-event
/// file DuckDB wrote reads two row groups, and in 16 of 30 runs the second
/// one was started 0.8 to 3.9 ms after the first, by the same thread,
/// once the first was read; with the pool's threads told, in 29 of 30 runs
/// within 0.27 ms of each other (23 within 0.1 ms). (Both counts were
/// taken with a clock line per step read through a pipe, which wakes a
/// reader on the other core and makes late starts more common; timed
/// without it, over DuckDB's 10M-event v2 file, the second row group
/// starts a median 0.03 ms after the first.) More items, or items
/// inside the pool (a file's row groups while other files are read), are
/// split as rayon splits them: claiming them in order instead gave the
/// same times within this machine's noise (the 8 row groups of Polars'
/// 1M-event file, the 2,000 hourly files; 21 alternated runs), though a
/// thread there too started late at times, in runs of either kind.
pub(crate) fn try_each<T: Sync>(
    items: &[T],
    f: impl Fn(&T) -> Result<()> + Sync + Send,
) -> Result<()> {
    match items {
        [] => Ok(()),
        [one] => f(one),
        _ if rayon::current_thread_index().is_none()
            && items.len() <= rayon::current_num_threads() =>
        {
            claimed_by_started_threads(items, &f)
        }
        _ => items.par_iter().try_for_each(f),
    }
}

/// `f` on every item of `items`, in order, each claimed by the first
/// thread that is free: this one, which starts at once, and a pool thread
/// for each other item (as many as the pool has), told to start (a job
/// each, which wakes a sleeping thread). After an error, no item is
/// claimed any more, and the first error is returned.
///
/// It told every thread of the pool before (`spawn_broadcast`): with two
/// row groups and two pool threads, one of them woke, found nothing left
/// and slept again, on a core the other two threads were using. Told one
/// per item, mid-file flows over DuckDB's 1M-event v2 file took 2.95
/// instead of 3.11 ms, and 2.89 instead of 3.00 ms with their output
/// through a pipe (medians of 301 and 201 alternated runs), over its 10M
/// v2 file 3.50 instead of 3.55 ms; no flow was slower.
///
/// The pool's threads start on a flow's first parallel call, some 0.15
/// ms after it is made here; this thread takes the first row group
/// meanwhile, rather than wait. Mid-file flows, alternated runs, medians
/// of 41: DuckDB's 10M v2 file 4.04 → 3.83 ms, its v1 file 4.04 → 3.95
/// ms, its 1M v1 file 3.32 → 3.19 ms; Polars' files (whose gathers are
/// not light) unchanged. Its own claims done, this thread does not wait
/// awake ([`Claims::await_others`]): its core is the pool's too. Its
/// nested parallel calls (a row group's gathers) go to the pool, as
/// from any thread outside it, and it waits for them there: at most as
/// many threads work at once as there are items, no more than the
/// pool's.
fn claimed_by_started_threads<T: Sync>(
    items: &[T],
    f: &(impl Fn(&T) -> Result<()> + Sync),
) -> Result<()> {
    let claims = Claims::default();
    let first_error = Mutex::new(None);
    let record = |outcome: Result<()>| {
        if let Err(e) = outcome {
            first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e);
        }
    };
    rayon::in_place_scope(|scope| {
        for _ in 1..items.len().min(rayon::current_num_threads() + 1) {
            scope.spawn(|_| record(claims.work_through(items, |_, item| f(item))));
        }
        record(
            claims
                .work_through_here(items, |_, item| f(item))
                .map(|_| ()),
        );
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// How far the threads working through a list of tasks are: the next
/// to claim, how many are done, and whether one failed.
#[derive(Default)]
struct Claims {
    /// Claims made (past the list's end too).
    next: AtomicUsize,
    /// Tasks done, failed ones included.
    finished: AtomicUsize,
    /// Set by a task's error: no task is claimed after it.
    stop: AtomicBool,
}

impl Claims {
    /// `f(k, item)` on the items of `items` this thread claims one at a
    /// time (item `k` for the `k` it takes), until none is left or a
    /// thread's error stopped the claims (this thread's is returned); then,
    /// if it claimed any, waits for the tasks other threads claimed
    /// ([`Claims::await_others`]). The claim loop of
    /// [`claimed_by_started_threads`] and [`try_map_claimed`].
    fn work_through<T>(&self, items: &[T], f: impl Fn(usize, &T) -> Result<()>) -> Result<()> {
        let claimed = self.work_through_here(items, f)?;
        if claimed {
            self.await_others(items.len());
        }
        Ok(())
    }

    /// The claims of [`Claims::work_through`] without the wait: whether
    /// this thread claimed any. A thread that claimed none (there were
    /// fewer items than threads) does not wait either.
    fn work_through_here<T>(
        &self,
        items: &[T],
        f: impl Fn(usize, &T) -> Result<()>,
    ) -> Result<bool> {
        let mut claimed = false;
        while !self.stop.load(Ordering::Relaxed) {
            let k = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(k) else {
                break;
            };
            claimed = true;
            let outcome = f(k, item);
            self.finished.fetch_add(1, Ordering::Release);
            if let Err(e) = outcome {
                self.stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(claimed)
    }

    /// Waits, awake, until every task claimed of `n` is finished, for at
    /// most [`AWAKE_WAIT`]; other work of the pool (a scan's other row
    /// groups) is done meanwhile, as rayon's own wait would.
    ///
    /// A thread of rayon's pool that has nothing left to do falls asleep
    /// within some 50 µs, and is woken when there is work again: to make
    /// the batch of the gathers it asked for, once the last is done, or
    /// to take one of the next row group's gathers. On this 2-core VM
    /// such a wake-up took up to a quarter of a millisecond (DuckDB's
    /// 10M-event v2 file, a mid-file flow: its user ids, gathered last,
    /// ended 0.05, 0.07, 0.23, 0.25 and 0.27 ms before their batch was
    /// made, in five runs). Tasks here take fractions of a millisecond,
    /// so a thread that is done waits for the others on a core that would
    /// otherwise be idle, and then, if they are not done, asleep as
    /// before.
    fn await_others(&self, n: usize) {
        let started = std::time::Instant::now();
        let mut rounds = 0u32;
        while self.finished.load(Ordering::Acquire) < self.next.load(Ordering::Relaxed).min(n) {
            if rayon::yield_now() != Some(rayon::Yield::Executed) {
                std::hint::spin_loop();
            }
            rounds = rounds.wrapping_add(1);
            if rounds % 64 == 0 && started.elapsed() > AWAKE_WAIT {
                return;
            }
        }
    }
}

/// The longest a thread waits awake for the tasks of others
/// ([`Claims::await_others`]).
const AWAKE_WAIT: std::time::Duration = std::time::Duration::from_millis(2);

/// `f` on every item of `items` over rayon's pool, the items claimed in
/// the order given, each by the first thread that is free: give the
/// longest first. The results come back in the order of `items`; the
/// first error (any, with several threads) is returned.
///
/// Rayon's own split of a list hands its first half to the thread that
/// asks and the second half to a thread that steals it, so the longest
/// tasks, sorted first, all land on one thread. A mid-file flow over
/// DuckDB's v2 file gathered its event ids, timestamps and user ids
/// (0.67 ms) on one thread while the other gathered the six small
/// columns in 0.22 ms.
pub(crate) fn try_map_claimed<T: Send, R: Send>(
    items: Vec<T>,
    f: impl Fn(T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let n = items.len();
    let tasks: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let claims = Claims::default();
    let work = |_| {
        claims.work_through(&tasks, |k, task| {
            // Each slot is claimed once: its lock is never contended.
            let task = task.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(task) = task {
                let result = f(task)?;
                *results[k].lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
            }
            Ok(())
        })
    };
    match rayon::current_num_threads().min(n) {
        0 | 1 => work(0)?,
        workers => (0..workers).into_par_iter().try_for_each(work)?,
    }
    Ok(results
        .into_iter()
        .filter_map(|r| r.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::error::Error;

    /// One item is worked on by the calling thread; several, each once,
    /// wherever rayon puts them; an error in any is the answer.
    #[test]
    fn one_item_stays_on_the_calling_thread() {
        let caller = std::thread::current().id();
        try_each(&[1], |_| {
            assert_eq!(std::thread::current().id(), caller);
            Ok(())
        })
        .unwrap();
        let seen = AtomicUsize::new(0);
        try_each(&[1, 2, 3, 4], |i| {
            seen.fetch_add(*i, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.into_inner(), 10);
        let fails = |i: &i32| match i {
            3 => Err(Error::data("three", "bad")),
            _ => Ok(()),
        };
        assert!(try_each(&[3], fails).is_err());
        assert!(try_each(&[1, 2, 3, 4], fails).is_err());
        assert!(try_each(&[] as &[i32], fails).is_ok());
    }

    /// The threads that worked on two items of `ms` milliseconds each,
    /// claimed by the threads started ([`claimed_by_started_threads`]).
    fn threads_of_two_items(ms: u64) -> Vec<std::thread::ThreadId> {
        let threads = Mutex::new(Vec::new());
        claimed_by_started_threads(&[0, 1], &|_| {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            threads.lock().unwrap().push(std::thread::current().id());
            Ok(())
        })
        .unwrap();
        threads.into_inner().unwrap()
    }

    /// Items claimed by the threads started: each is worked on once, an
    /// error stops the claims and is the answer, and two long items are
    /// taken by the two threads of the pool, not one after the other.
    #[test]
    fn started_threads_claim_items_each_once() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            let seen: Vec<AtomicUsize> = (0..50).map(|_| AtomicUsize::new(0)).collect();
            let items: Vec<usize> = (0..50).collect();
            claimed_by_started_threads(&items, &|&i| {
                seen[i].fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .unwrap();
            assert!(seen.iter().all(|n| n.load(Ordering::Relaxed) == 1));
            let worked: Vec<AtomicUsize> = (0..50).map(|_| AtomicUsize::new(0)).collect();
            let failed = claimed_by_started_threads(&items, &|&i| {
                worked[i].fetch_add(1, Ordering::Relaxed);
                match i {
                    3 | 4 => Err(Error::data(format!("item {i}"), "bad")),
                    _ => Ok(()),
                }
            });
            let message = failed.unwrap_err().to_string();
            assert!(message.contains("item 3") || message.contains("item 4"));
            assert!(worked.iter().all(|n| n.load(Ordering::Relaxed) <= 1));
            let threads = threads_of_two_items(200);
            assert_eq!(threads.len(), 2);
            assert_ne!(threads[0], threads[1]);
        });
        // From outside a pool, as a batch job asks: the calling thread
        // takes part rather than wait for the pool to start.
        let threads = threads_of_two_items(50);
        assert_eq!(threads.len(), 2);
        assert!(threads.contains(&std::thread::current().id()));
        // Two items, each once.
        let seen = AtomicUsize::new(0);
        try_each(&[1, 2], |i| {
            seen.fetch_add(*i, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.into_inner(), 3);
        assert!(try_each(&[3, 1], |i: &i32| match i {
            3 => Err(Error::data("three", "bad")),
            _ => Ok(()),
        })
        .is_err());
    }

    /// Every item is mapped once, results in the items' order, an error
    /// in any is the answer; the longest tasks, given first, are taken by
    /// different threads when the pool has two.
    #[test]
    fn claimed_tasks_are_each_mapped_once_in_order() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            let items: Vec<u64> = (0..40).collect();
            let mapped = try_map_claimed(items, |i| Ok(i * 3)).unwrap();
            assert_eq!(mapped, (0..40).map(|i| i * 3).collect::<Vec<_>>());
            let fails = try_map_claimed((0..10).collect(), |i: i32| match i {
                7 => Err(Error::data("seven", "bad")),
                i => Ok(i),
            });
            assert!(fails.is_err());
            assert!(try_map_claimed(Vec::<i32>::new(), Ok).unwrap().is_empty());
            // Two long tasks first: each is taken by a thread of its own.
            let threads = try_map_claimed(vec![200u64, 200, 1, 1, 1, 1], |ms| {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(std::thread::current().id())
            })
            .unwrap();
            assert_ne!(threads[0], threads[1]);
        });
    }

    /// A thread done with its claims waits for the tasks others claimed,
    /// no longer than `AWAKE_WAIT`, and does the pool's other work
    /// meanwhile: here a job spawned on a pool of one thread (the waiting
    /// one) finishes the task waited for.
    #[test]
    fn a_thread_done_waits_for_the_others_a_while_doing_other_work() {
        let done = Claims::default();
        done.next.store(3, Ordering::Relaxed);
        done.finished.store(2, Ordering::Relaxed);
        let started = std::time::Instant::now();
        done.await_others(2);
        assert!(started.elapsed() < AWAKE_WAIT);
        let stuck = Claims::default();
        stuck.next.store(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        stuck.await_others(1);
        let waited = started.elapsed();
        assert!(
            waited >= AWAKE_WAIT && waited < 50 * AWAKE_WAIT,
            "{waited:?}"
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let claims = std::sync::Arc::new(Claims::default());
        claims.next.store(1, Ordering::Relaxed);
        let waited = pool.install(|| {
            let other = std::sync::Arc::clone(&claims);
            rayon::spawn(move || {
                other.finished.fetch_add(1, Ordering::Release);
            });
            let started = std::time::Instant::now();
            claims.await_others(1);
            started.elapsed()
        });
        assert_eq!(claims.finished.load(Ordering::Relaxed), 1);
        assert!(waited < AWAKE_WAIT, "{waited:?}");
    }
}
