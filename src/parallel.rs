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

use rayon::prelude::*;

use crate::error::Result;

/// `f` on every item of `items`, over rayon's pool, or on this thread when
/// there is only one; the first error (any, in the pool) is returned.
pub(crate) fn try_each<T: Sync>(
    items: &[T],
    f: impl Fn(&T) -> Result<()> + Sync + Send,
) -> Result<()> {
    match items {
        [one] => f(one),
        _ => items.par_iter().try_for_each(f),
    }
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
}
