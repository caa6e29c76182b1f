//! The rows of a row group that its condition selects, handed to the
//! selective reader's gathers while the condition's column is still being
//! matched.
//!
//! The selective reader (`super::read_selected`) first finds the rows a
//! condition selects (`super::selected::matching_rows`), then gathers the
//! other columns at those rows a batch at a time, the columns of a batch in
//! parallel. When a file has fewer row groups than there are threads (one
//! large row group, as fastparquet and some pipelines write), finding the
//! rows was one core's work with the other idle: for `usage` over
//! fastparquet's 10M-event file, 0.21 s of each of its two passes (0.47 s
//! and 1.09 s) before the first batch. [`SelectedRows::streamed`] matches
//! the column on a thread of its own and hands over each page's rows as
//! they are found, so that the first batches are gathered while the rest
//! of the column is matched.
//!
//! A flow's conversation is matched on the thread that reads, and its
//! bot, on another, at the conversation's rows as they come
//! ([`SelectedRows::fed`]): the two columns' pages are decompressed at
//! the same time.
//!
//! The batches are the same as when every row is known first: `BATCH_ROWS`
//! rows each, in order, and the last one shorter.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::{Scope, ScopedJoinHandle};

use crate::error::{Error, Result};

/// The rows a row group's conditions select, ascending: all known, or
/// still arriving from a matching thread ([`SelectedRows::streamed`]).
pub(super) struct SelectedRows<'scope> {
    /// Rows received; those before `taken` are handed out already.
    held: Vec<u32>,
    taken: usize,
    /// The matching thread's rows and its outcome, until it has finished.
    matching: Option<Matching<'scope>>,
    /// What the thread's failure is reported as, should it panic.
    context: String,
}

/// Rows still to come: where they arrive, and the thread that matches
/// them, when it is one of their own (else they come from a [`RowsFeed`]).
struct Matching<'scope> {
    rows: Receiver<Vec<u32>>,
    thread: Option<ScopedJoinHandle<'scope, Result<()>>>,
}

/// Rows handed over to a [`SelectedRows`] from the thread that matches
/// them, which is not one of its own ([`SelectedRows::fed`]). Dropping it
/// ends the rows.
pub(super) struct RowsFeed {
    sender: Sender<Vec<u32>>,
    context: String,
}

impl RowsFeed {
    /// Hands `found` over (ascending, after the rows handed over before),
    /// leaving it empty; fails when the reader has gone.
    pub(super) fn hand_over(&self, found: &mut Vec<u32>) -> Result<()> {
        if found.is_empty() {
            return Ok(());
        }
        self.sender
            .send(std::mem::take(found))
            .map_err(|_| Error::data(self.context.as_str(), "the rows' reader stopped"))
    }
}

impl<'scope> SelectedRows<'scope> {
    /// Rows all known.
    pub(super) fn known(rows: Vec<u32>) -> Self {
        Self {
            held: rows,
            taken: 0,
            matching: None,
            context: String::new(),
        }
    }

    /// Rows handed over through the [`RowsFeed`] returned with them, by a
    /// thread that matches them and does other work too. They end when the
    /// feed is dropped: the thread that matches reports its own failure.
    pub(super) fn fed(context: &str) -> (RowsFeed, Self) {
        let (sender, rows) = channel::<Vec<u32>>();
        let feed = RowsFeed {
            sender,
            context: context.to_owned(),
        };
        let rows = Self {
            held: Vec::new(),
            taken: 0,
            matching: Some(Matching { rows, thread: None }),
            context: context.to_owned(),
        };
        (feed, rows)
    }

    /// Rows found by `matcher` on a thread of `scope`: it is given a
    /// function to hand over each page's rows with (ascending, after those
    /// handed over before; it takes them, leaving the vector empty), and
    /// fails when the reader has gone. A panic of `matcher` is an error of
    /// `context`.
    pub(super) fn streamed<'env, M>(
        scope: &'scope Scope<'scope, 'env>,
        context: &str,
        matcher: M,
    ) -> Self
    where
        M: FnOnce(&mut dyn FnMut(&mut Vec<u32>) -> Result<()>) -> Result<()> + Send + 'scope,
    {
        let (feed, mut rows) = Self::fed(context);
        let thread = scope.spawn(move || {
            let context = feed.context.clone();
            crate::ingest::guard::guard(&context, || {
                matcher(&mut |found: &mut Vec<u32>| feed.hand_over(found))
            })
        });
        if let Some(matching) = &mut rows.matching {
            matching.thread = Some(thread);
        }
        rows
    }

    /// Whether every row is known.
    pub(super) fn complete(&self) -> bool {
        self.matching.is_none()
    }

    /// The rows known and not yet handed out.
    pub(super) fn held(&self) -> &[u32] {
        &self.held[self.taken..]
    }

    /// Waits until more than `n` rows are held or every row is known; the
    /// matching thread's error is returned once it has ended.
    pub(super) fn hold_more_than(&mut self, n: usize) -> Result<()> {
        while self.held().len() <= n && self.receive()? {}
        Ok(())
    }

    /// The next `size` rows (fewer only for the last batch), waiting for
    /// them as needed; `None` once every row is handed out.
    pub(super) fn next_batch(&mut self, size: usize) -> Result<Option<Vec<u32>>> {
        self.hold_more_than(size.saturating_sub(1))?;
        let end = (self.taken + size).min(self.held.len());
        if end == self.taken {
            return Ok(None);
        }
        let batch = self.held[self.taken..end].to_vec();
        self.taken = end;
        Ok(Some(batch))
    }

    /// Every row held and not yet handed out, waiting for one if none is;
    /// `None` once every row is handed out.
    pub(super) fn next_held(&mut self) -> Result<Option<Vec<u32>>> {
        self.hold_more_than(0)?;
        let batch = self.held[self.taken..].to_vec();
        self.held.clear();
        self.taken = 0;
        Ok((!batch.is_empty()).then_some(batch))
    }

    /// Receives the matching thread's next rows: whether there may be
    /// more. When it has ended, its outcome is taken (its error returned).
    fn receive(&mut self) -> Result<bool> {
        let Some(matching) = &self.matching else {
            return Ok(false);
        };
        if let Ok(rows) = matching.rows.recv() {
            if self.taken > 0 && self.taken * 2 >= self.held.len() {
                self.held.drain(..self.taken);
                self.taken = 0;
            }
            self.held.extend_from_slice(&rows);
            return Ok(true);
        }
        // Every sender is gone: the thread has returned (or panicked).
        let Some(matching) = self.matching.take() else {
            return Ok(false);
        };
        let Some(thread) = matching.thread else {
            return Ok(false);
        };
        let outcome = thread.join().unwrap_or_else(|_| {
            Err(Error::data(
                self.context.as_str(),
                "the decoder failed on malformed input",
            ))
        });
        outcome.map(|()| false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streamed rows come in the batches known rows give, whatever pages
    /// they were handed over in.
    #[test]
    fn streamed_rows_batch_as_known_rows_do() {
        let rows: Vec<u32> = (0..10_000u32).filter(|r| r % 7 != 3).collect();
        for size in [1usize, 5, 64, 1_000, 20_000] {
            let mut known = SelectedRows::known(rows.clone());
            let mut want = Vec::new();
            while let Some(batch) = known.next_batch(size).unwrap() {
                want.push(batch);
            }
            for page in [1usize, 3, 100, 4_096, 50_000] {
                let got = std::thread::scope(|scope| {
                    let pages: Vec<Vec<u32>> = rows.chunks(page).map(<[u32]>::to_vec).collect();
                    let mut streamed = SelectedRows::streamed(scope, "c", move |hand_over| {
                        for mut page in pages {
                            hand_over(&mut Vec::new())?;
                            hand_over(&mut page)?;
                            assert!(page.is_empty());
                        }
                        Ok(())
                    });
                    let mut got = Vec::new();
                    while let Some(batch) = streamed.next_batch(size).unwrap() {
                        got.push(batch);
                    }
                    assert!(streamed.complete());
                    got
                });
                assert_eq!(got, want, "batches of {size}, pages of {page}");
            }
        }
    }

    /// Rows handed on as they come are the rows, in order, each once.
    #[test]
    fn rows_held_are_handed_on_as_they_come() {
        let rows: Vec<u32> = (0..5_000u32).map(|r| r * 3).collect();
        for page in [1usize, 7, 1_000, 10_000] {
            let got = std::thread::scope(|scope| {
                let pages: Vec<Vec<u32>> = rows.chunks(page).map(<[u32]>::to_vec).collect();
                let mut streamed = SelectedRows::streamed(scope, "c", move |hand_over| {
                    for mut page in pages {
                        hand_over(&mut page)?;
                    }
                    Ok(())
                });
                let mut got = Vec::new();
                while let Some(held) = streamed.next_held().unwrap() {
                    assert!(!held.is_empty());
                    got.extend(held);
                }
                assert!(streamed.complete());
                got
            });
            assert_eq!(got, rows, "pages of {page}");
        }
        let mut known = SelectedRows::known(vec![4, 8]);
        assert_eq!(known.next_batch(1).unwrap(), Some(vec![4]));
        assert_eq!(known.next_held().unwrap(), Some(vec![8]));
        assert_eq!(known.next_held().unwrap(), None);
    }

    /// Rows fed from the calling thread reach a reader on another, in
    /// order, and end when the feed goes.
    #[test]
    fn rows_fed_from_this_thread_reach_another() {
        let got = std::thread::scope(|scope| {
            let (feed, mut fed) = SelectedRows::fed("c");
            let reader = scope.spawn(move || {
                let mut got = Vec::new();
                while let Some(rows) = fed.next_held().unwrap() {
                    got.extend(rows);
                }
                got
            });
            for page in 0..100u32 {
                feed.hand_over(&mut (page * 10..page * 10 + page % 3).collect())
                    .unwrap();
            }
            drop(feed);
            reader.join().unwrap()
        });
        let want: Vec<u32> = (0..100u32)
            .flat_map(|page| page * 10..page * 10 + page % 3)
            .collect();
        assert_eq!(got, want);
        // A reader gone: handing over fails.
        let (feed, fed) = SelectedRows::fed("c");
        drop(fed);
        assert!(feed.hand_over(&mut vec![1]).is_err());
        assert!(feed.hand_over(&mut Vec::new()).is_ok());
    }

    /// Waiting for more rows than some stops once every row is known.
    #[test]
    fn holding_more_rows_than_there_are_stops_at_the_end() {
        std::thread::scope(|scope| {
            let mut streamed = SelectedRows::streamed(scope, "c", |hand_over| {
                hand_over(&mut vec![1, 2, 3])?;
                hand_over(&mut vec![9])
            });
            assert!(!streamed.complete());
            streamed.hold_more_than(2).unwrap();
            assert!(streamed.held().len() >= 3);
            streamed.hold_more_than(100).unwrap();
            assert_eq!(streamed.held(), &[1, 2, 3, 9]);
            assert!(streamed.complete());
            assert_eq!(streamed.next_batch(3).unwrap(), Some(vec![1, 2, 3]));
            assert_eq!(streamed.next_batch(3).unwrap(), Some(vec![9]));
            assert_eq!(streamed.next_batch(3).unwrap(), None);
        });
    }

    /// The matching thread's error, and its panic, are errors of the rows,
    /// after the rows handed over before them.
    #[test]
    fn a_failed_or_panicking_matcher_is_an_error() {
        std::thread::scope(|scope| {
            let mut failed = SelectedRows::streamed(scope, "c", |hand_over| {
                hand_over(&mut vec![4, 5])?;
                Err(Error::data("col", "damaged page"))
            });
            assert_eq!(failed.next_batch(2).unwrap(), Some(vec![4, 5]));
            let err = failed.next_batch(2).unwrap_err();
            assert!(err.to_string().contains("damaged page"), "{err}");
            let mut panicked = SelectedRows::streamed(scope, "file: column `x`", |_| {
                panic!("a decoder's bug");
            });
            let err = panicked.hold_more_than(0).unwrap_err();
            assert!(err.to_string().contains("column `x`"), "{err}");
        });
    }

    /// A reader that stops early (its gathers failed) ends the matching
    /// thread at its next page, rather than letting it match on.
    #[test]
    fn a_reader_gone_stops_the_matcher() {
        let pages_matched = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let (started, wait) = channel::<()>();
            let pages_matched = &pages_matched;
            let streamed = SelectedRows::streamed(scope, "c", move |hand_over| {
                for page in 0..1_000_000u32 {
                    hand_over(&mut vec![page])?;
                    pages_matched.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if page == 0 {
                        let _ = started.send(());
                    }
                }
                Ok(())
            });
            wait.recv().unwrap();
            drop(streamed);
        });
        assert!(pages_matched.load(std::sync::atomic::Ordering::Relaxed) < 1_000_000);
    }
}
