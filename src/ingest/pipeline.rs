//! Serial reading overlapped with parallel decoding.
//!
//! Text inputs (NDJSON) must be split into pieces on one thread, in order,
//! while the pieces are best decoded on all cores. [`pipeline`] does both
//! at once: the calling thread produces pieces and hands each to the rayon
//! pool as soon as it is read, with at most `limit` pieces in flight so
//! that memory stays bounded however fast the reading is. Finished pieces
//! are recycled to the producer, which reuses their buffers.
//!
//! It works whether or not the caller is itself a rayon worker: a worker
//! waiting for room runs pending pieces itself instead of blocking, so the
//! pool can never wait on itself. The error returned is the one of the
//! earliest piece in input order, as if the pieces had been handled one
//! after the other; after a failure no new piece is read. A panic in
//! `consume` stops the reading as an error does, and goes on unwinding
//! from [`pipeline`] once the pieces in flight are done (it must not leave
//! the producer waiting for a piece that will never finish).

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};

/// Produces pieces with `produce` on the calling thread and consumes them
/// with `consume` on the rayon pool, at most `limit` at a time.
///
/// `produce` gets a finished piece to reuse, when there is one, and
/// returns the next piece, or `None` at the end of the input. The result
/// is the first error in input order: a failed `produce` counts as the
/// piece it was producing.
pub(crate) fn pipeline<T: Send>(
    limit: usize,
    mut produce: impl FnMut(Option<T>) -> Result<Option<T>>,
    consume: impl Fn(&mut T) -> Result<()> + Sync,
) -> Result<()> {
    let shared = Shared {
        state: Mutex::new(State {
            in_flight: 0,
            first_error: None,
            spare: Vec::new(),
            panic: None,
        }),
        room: Condvar::new(),
        limit: limit.max(1),
    };
    rayon::in_place_scope(|scope| {
        for index in 0usize.. {
            let spare = match shared.wait_for_room() {
                Some(spare) => spare,
                None => return, // an earlier piece failed
            };
            let mut piece = match produce(spare) {
                Ok(Some(piece)) => piece,
                Ok(None) => return,
                Err(e) => return shared.fail(index, e),
            };
            shared.lock().in_flight += 1;
            let (shared, consume) = (&shared, &consume);
            scope.spawn(move |_| {
                let result = match catch_unwind(AssertUnwindSafe(|| consume(&mut piece))) {
                    Ok(result) => result,
                    Err(payload) => {
                        shared.lock().panic.get_or_insert(payload);
                        Err(Error::data("pipeline", "a piece's consumer panicked"))
                    }
                };
                shared.finished(index, result, piece);
            });
        }
    });
    if let Some(payload) = shared.lock().panic.take() {
        resume_unwind(payload);
    }
    let first_error = shared.lock().first_error.take();
    match first_error {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

struct State<T> {
    in_flight: usize,
    /// The failure of the earliest piece, by index.
    first_error: Option<(usize, Error)>,
    /// Finished pieces, for the producer to reuse.
    spare: Vec<T>,
    /// The first panic of `consume`, resumed once the scope is done.
    panic: Option<Box<dyn Any + Send>>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    room: Condvar,
    limit: usize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A consumer that panicked has its panic re-raised by the scope;
        // the state itself stays consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until fewer than `limit` pieces are in flight; returns a spare
    /// piece to reuse (`Some(None)` if there is none), or `None` once a
    /// piece has failed.
    fn wait_for_room(&self) -> Option<Option<T>> {
        let mut state = self.lock();
        loop {
            if state.first_error.is_some() {
                return None;
            }
            if state.in_flight < self.limit {
                return Some(state.spare.pop());
            }
            if rayon::current_thread_index().is_some() {
                // A worker must not block: run pending work meanwhile.
                drop(state);
                if !matches!(rayon::yield_now(), Some(rayon::Yield::Executed)) {
                    std::thread::yield_now();
                }
                state = self.lock();
            } else {
                state = self.room.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        }
    }

    fn fail(&self, index: usize, error: Error) {
        let mut state = self.lock();
        if state.first_error.as_ref().is_none_or(|(i, _)| index < *i) {
            state.first_error = Some((index, error));
        }
    }

    fn finished(&self, index: usize, result: Result<()>, piece: T) {
        if let Err(e) = result {
            self.fail(index, e);
        }
        let mut state = self.lock();
        state.in_flight -= 1;
        state.spare.push(piece);
        drop(state);
        self.room.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Runs a pipeline over `0..n` where piece `i` fails if `fails(i)`;
    /// returns the result and the most pieces seen in flight at once.
    fn run(n: usize, limit: usize, fails: impl Fn(usize) -> bool + Sync) -> (Result<()>, usize) {
        let next = AtomicUsize::new(0);
        let (in_flight, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let result = pipeline(
            limit,
            |_spare: Option<usize>| {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i == n {
                    return Ok(None);
                }
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                Ok(Some(i))
            },
            |&mut i| {
                std::thread::sleep(std::time::Duration::from_micros(200));
                in_flight.fetch_sub(1, Ordering::SeqCst);
                if fails(i) {
                    return Err(Error::data(format!("piece {i}"), "bad"));
                }
                Ok(())
            },
        );
        (result, peak.into_inner())
    }

    #[test]
    fn consumes_everything_with_bounded_pieces_in_flight() {
        let (result, peak) = run(200, 3, |_| false);
        assert!(result.is_ok());
        assert!((1..=3).contains(&peak), "{peak}");
    }

    #[test]
    fn reports_the_earliest_failure() {
        for _ in 0..20 {
            let (result, _) = run(100, 4, |i| i == 17 || i == 18 || i == 60);
            let err = result.unwrap_err().to_string();
            assert!(err.contains(": piece 17:"), "{err}");
        }
    }

    #[test]
    fn a_failing_producer_counts_as_its_piece() {
        let mut produced = 0;
        let result = pipeline(
            2,
            |_spare: Option<()>| {
                produced += 1;
                match produced {
                    5 => Err(Error::data("reader", "broken")),
                    _ => Ok(Some(())),
                }
            },
            |_| Ok(()),
        );
        assert!(result.unwrap_err().to_string().contains(": reader:"));
        assert_eq!(produced, 5); // nothing read after the failure
    }

    #[test]
    fn works_from_inside_a_busy_single_thread_pool() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let (result, _) = pool.install(|| run(50, 2, |_| false));
        assert!(result.is_ok());
    }

    /// A panicking consumer stops the pipeline and its panic goes on
    /// unwinding from it, instead of leaving the producer waiting.
    #[test]
    fn a_panicking_consumer_ends_the_pipeline_with_its_panic() {
        let produced = AtomicUsize::new(0);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            pipeline(
                2,
                |_spare: Option<usize>| Ok(Some(produced.fetch_add(1, Ordering::SeqCst))),
                |&mut i| {
                    if i == 7 {
                        panic!("consumer of piece 7");
                    }
                    Ok(())
                },
            )
        }));
        let payload = outcome.expect_err("the panic goes on");
        // The producer never runs out: it returned because of the panic.
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"consumer of piece 7"));
        assert!(produced.load(Ordering::SeqCst) > 7);
    }
}
