//! A very large data page read from its start to its end through a window
//! of its latest bytes, for the selective reader (`super::selected`).
//!
//! Most writers cut a column chunk into pages of about 1 MiB. fastparquet
//! (pandas' other engine) writes each column chunk of a row group as one
//! page, and its row groups hold up to 50M rows: a page of ids or
//! timestamps then decompresses to hundreds of megabytes. Decompressed
//! whole, the pages of all the columns a batch reads were held at once
//! (peak memory 893 MB for `usage` over 10M events), and the kernel's
//! zeroing of that fresh memory was about half of the job. The selective
//! reader serves such a page as pieces of some 4,096 rows instead:
//! [`PageStream`] decodes it forward, reading its stored bytes a stretch
//! at a time, and forgets what lies more than a snappy block behind the
//! piece being read, so that a page takes a few megabytes whatever its
//! size.
//!
//! Snappy pages (pandas' default codec) and uncompressed ones (fastparquet's
//! own default) are streamed. A snappy copy reaches back at most a block of
//! 64 KiB from the compressors writers use (Google's, and the `snap` crate);
//! should one reach further, the page is decoded again from its start,
//! keeping everything, which is slower but gives the same bytes.

use bytes::Bytes;

use super::page_walk::StoredPage;
use super::snappy_prefix::SnappyProgress;
use crate::error::{Error, Result};

/// How many bytes behind those asked a [`PageStream`] keeps: a snappy
/// block, the furthest a copy of the usual compressors reaches.
const HISTORY: usize = 64 << 10;

/// How far past the bytes asked a [`PageStream`] decodes at a time, and how
/// much it reads of an uncompressed page at least. Little more than a
/// piece of a giant page (`super::selected`, some 100 KB), so that the
/// window stays in the core's cache while the piece is walked and copied
/// out: fastparquet's files of `compare_duckdb.py`, alternated runs,
/// medians, 256 KiB against 64 KiB: `usage` 99.3 → 93.0 and 106.9 →
/// 102.0 ms (1M events, 11 runs), 941 → 837 and 1,040 → 987 ms (10M, 5
/// runs); `conversations` 46.7 → 43.6 ms and 431 → 414 ms. 32 and 16
/// KiB were no faster.
const STEP: usize = 64 << 10;

/// One page's bytes, decoded forward and forgotten behind.
pub(super) struct PageStream {
    page: StoredPage,
    how: Decoding,
}

/// How a [`PageStream`] makes its bytes.
enum Decoding {
    /// A snappy page: its stored bytes read last (from `stored_at`), and
    /// the decoding so far; with `keep_all`, nothing is forgotten (a copy
    /// reached further back than [`HISTORY`]).
    Snappy {
        stored: Bytes,
        stored_at: usize,
        progress: SnappyProgress,
        keep_all: bool,
    },
    /// An uncompressed page: the bytes read last, from `at` in the page.
    Uncompressed { held: Bytes, at: usize },
}

impl PageStream {
    /// A stream over `page` if its codec is one this reads (snappy or
    /// none); `None` for another.
    pub(super) fn open(page: StoredPage, context: &str) -> Result<Option<Self>> {
        let how = if page.is_snappy() {
            let stored = page.read_stored(0, STEP, context)?;
            let Some(progress) = SnappyProgress::start(&stored) else {
                return Err(Error::data(context, "damaged page: no snappy header"));
            };
            Decoding::Snappy {
                stored,
                stored_at: 0,
                progress,
                keep_all: false,
            }
        } else if page.is_uncompressed() {
            Decoding::Uncompressed {
                held: Bytes::new(),
                at: 0,
            }
        } else {
            return Ok(None);
        };
        Ok(Some(Self { page, how }))
    }

    /// The page's size, decompressed.
    pub(super) fn len(&self) -> usize {
        self.page.uncompressed
    }

    /// The page's bytes `from..to` (at most its end) in a buffer of their
    /// own: for an uncompressed page, the bytes read (a slice of the file's
    /// mapping, when it is mapped), for a snappy page a copy.
    pub(super) fn piece(&mut self, from: usize, to: usize, context: &str) -> Result<Bytes> {
        let to = to.min(self.page.uncompressed);
        self.bytes(from, to, context)?;
        let wanted = to.saturating_sub(from);
        Ok(match &self.how {
            Decoding::Uncompressed { held, at } => held.slice(from - at..from - at + wanted),
            Decoding::Snappy { progress, .. } => {
                let at = from - progress.base();
                Bytes::copy_from_slice(&progress.out[at..at + wanted])
            }
        })
    }

    /// The page's bytes from `from` on, at least as far as `to` or the
    /// page's end (perhaps further). `from` must not go back before an
    /// earlier call's `from`: bytes before it may be forgotten.
    pub(super) fn bytes(&mut self, from: usize, to: usize, context: &str) -> Result<&[u8]> {
        let len = self.page.uncompressed;
        let to = to.min(len);
        if from > to {
            return Err(Error::data(context, "page shorter than its values"));
        }
        match &mut self.how {
            Decoding::Uncompressed { held, at } => {
                if from < *at || to > *at + held.len() {
                    let mut length = (to - from).max(STEP);
                    // Asked further from the same place (a piece's values
                    // walked on): read twice as far as before, so that
                    // the bytes read again add up to at most as many.
                    if from == *at {
                        length = length.max(held.len().saturating_mul(2));
                    }
                    let length = length.min(len - from);
                    *held = self.page.read_stored(from, length, context)?;
                    *at = from;
                    if held.len() < to - from {
                        return Err(Error::data(context, "page shorter than its header says"));
                    }
                }
                Ok(&held[from - *at..])
            }
            Decoding::Snappy {
                stored,
                stored_at,
                progress,
                keep_all,
            } => {
                if from < progress.base() {
                    return Err(Error::data(
                        context,
                        "internal error: a page stream was asked to go back",
                    ));
                }
                if !*keep_all {
                    let forget = from.saturating_sub(HISTORY);
                    // Forgetting moves the bytes kept to the front: only
                    // once they are no more than those forgotten.
                    let kept = progress.end().saturating_sub(forget);
                    if forget >= progress.base() + kept.max(4 * HISTORY) {
                        progress.forget_before(forget);
                    }
                }
                if progress.end() < to {
                    let goal = to.saturating_add(STEP).min(len);
                    let page = &self.page;
                    let decoded = decode_on(page, stored, stored_at, progress, goal, context)?;
                    if !decoded {
                        // A copy from before the bytes kept, or damage:
                        // once more from the start, forgetting nothing.
                        if *keep_all {
                            return Err(Error::data(context, "damaged page: snappy"));
                        }
                        *keep_all = true;
                        *stored = page.read_stored(0, STEP, context)?;
                        *stored_at = 0;
                        *progress = SnappyProgress::start(stored)
                            .ok_or_else(|| Error::data(context, "damaged page: snappy"))?;
                        if !decode_on(page, stored, stored_at, progress, goal, context)? {
                            return Err(Error::data(context, "damaged page: snappy"));
                        }
                    }
                }
                Ok(&progress.out[from - progress.base()..])
            }
        }
    }
}

/// Decodes `progress` on to `goal` bytes of `page`, reading its stored
/// bytes on as far as needed into `stored` (which holds them from
/// `stored_at`): whether it could. The stored bytes are read in
/// proportion to the bytes to make (the page's ratio, and a quarter more),
/// then twice as far each time they fall short, so that the buffers stay
/// small and are reused; only when they reach the page's end and still
/// fall short is the page damaged (or a copy reaches further back than
/// the bytes kept).
fn decode_on(
    page: &StoredPage,
    stored: &mut Bytes,
    stored_at: &mut usize,
    progress: &mut SnappyProgress,
    goal: usize,
    context: &str,
) -> Result<bool> {
    let needed_from = progress.input_needed_from();
    let ratio = page.compressed() as f64 / page.uncompressed.max(1) as f64;
    let mut ahead = ((goal.saturating_sub(progress.end()) as f64 * ratio * 1.25) as usize)
        .saturating_add(4 << 10);
    loop {
        let needed_to = needed_from.saturating_add(ahead).min(page.compressed());
        if needed_from < *stored_at || needed_to > *stored_at + stored.len() {
            *stored = page.read_stored(needed_from, needed_to - needed_from, context)?;
            *stored_at = needed_from;
        }
        if progress.decode_to_from(stored, *stored_at, goal).is_some() && progress.end() == goal {
            return Ok(true);
        }
        if *stored_at + stored.len() >= page.compressed() {
            return Ok(false);
        }
        ahead = ahead.saturating_mul(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::parquet::page_walk::tests::{plain_page, snappy_page};

    /// Bytes like a page of ids: 3 MB, compressible.
    fn page_bytes() -> Vec<u8> {
        (0..150_000u32)
            .flat_map(|i| {
                format!("event-{i:08}-{}", i.wrapping_mul(2_654_435_761) % 97).into_bytes()
            })
            .collect()
    }

    /// Reads `stream` forward in steps of varied sizes, each asked from
    /// the last one's start or further on, and checks every answer starts
    /// where asked, reaches as far as asked, and holds `want`'s bytes.
    fn assert_streams(stream: &mut PageStream, want: &[u8]) {
        let steps = [1usize, 7, 4_096, 70_000, 300_000, 1 << 20];
        let (mut from, mut i) = (0usize, 0usize);
        while from < want.len() {
            let step = steps[i % steps.len()];
            let to = (from + step).min(want.len());
            let got = stream.bytes(from, to, "p").unwrap();
            assert!(got.len() >= to - from, "from {from} to {to}");
            assert_eq!(got, &want[from..from + got.len()], "from {from} to {to}");
            // Sometimes ask again from the same place.
            if i % 3 != 2 {
                from = to;
            }
            i += 1;
        }
    }

    #[test]
    fn snappy_and_uncompressed_pages_read_forward() {
        let want = page_bytes();
        let stored = snap::raw::Encoder::new().compress_vec(&want).unwrap();
        for page in [snappy_page(stored, want.len()), plain_page(want.clone())] {
            let mut stream = PageStream::open(page, "p").unwrap().unwrap();
            assert_streams(&mut stream, &want);
        }
    }

    /// A copy that reaches further back than the stream keeps (snappy
    /// allows offsets up to 2^32) is made all the same: the page is
    /// decoded again from its start.
    #[test]
    fn a_copy_from_far_back_is_made() {
        let literal: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(7919) >> 3) as u8)
            .collect();
        let copies = 100usize;
        let total = literal.len() + copies * 64;
        let mut stored = Vec::new();
        let mut n = total;
        while n >= 0x80 {
            stored.push((n as u8) | 0x80);
            n >>= 7;
        }
        stored.push(n as u8);
        // A literal with a 3-byte length, then copies of 64 bytes with a
        // 4-byte offset of 150,000.
        stored.push(62 << 2);
        stored.extend_from_slice(&((literal.len() - 1) as u32).to_le_bytes()[..3]);
        stored.extend_from_slice(&literal);
        for _ in 0..copies {
            stored.push((63 << 2) | 3);
            stored.extend_from_slice(&150_000u32.to_le_bytes());
        }
        let want = snap::raw::Decoder::new().decompress_vec(&stored).unwrap();
        assert_eq!(want.len(), total);
        let mut stream = PageStream::open(snappy_page(stored, total), "p")
            .unwrap()
            .unwrap();
        assert_streams(&mut stream, &want);
    }

    /// Stored bytes cut short, or not snappy at all, are an error, never
    /// a panic.
    #[test]
    fn damaged_pages_are_errors() {
        let want = page_bytes();
        let stored = snap::raw::Encoder::new().compress_vec(&want).unwrap();
        let short = stored[..stored.len() / 2].to_vec();
        let zeros = vec![0u8; stored.len()];
        for stored in [short, zeros] {
            let Ok(Some(mut stream)) = PageStream::open(snappy_page(stored, want.len()), "p")
            else {
                continue;
            };
            let mut failed = false;
            for from in (0..want.len()).step_by(100_000) {
                match stream.bytes(from, from + 100_000, "p") {
                    Ok(got) => assert_eq!(got, &want[from..from + got.len()]),
                    Err(e) => {
                        assert!(e.to_string().starts_with("data error: p"), "{e}");
                        failed = true;
                        break;
                    }
                }
            }
            assert!(failed);
        }
    }
}
