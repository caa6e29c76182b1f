//! Brotli pages decompressed with the decoder's memory kept per thread, for
//! the pages the selective reader decompresses itself
//! (`super::stored_pages`).
//!
//! The `parquet` crate's brotli codec makes a decoder for every page, and
//! the decoder takes its ring buffer (up to the stream's window: 4 MiB for
//! pyarrow's pages) and Huffman tables from an allocator that zeroes
//! them: fresh memory, which the kernel clears page by page once more as
//! it is first written. On the
//! brotli file of `benches/compare_duckdb.py` (10M events, pages of about
//! 1 MiB), that clearing was about 5% of an insights query's samples
//! (`perf`), besides the codec's copies through a 4 KiB buffer.
//! [`decompress_into`] decodes a page straight into the caller's buffer,
//! with a decoder whose blocks come from [`KeptBlocks`]: the blocks the
//! last pages' decoders handed back on this thread, reused without being
//! zeroed. What a reused block holds does not change the output: the
//! decoder writes before it reads (the C library it follows takes
//! uninitialised memory), and the tests decode pages one after another
//! over reused blocks against the reference decoder.

use std::cell::RefCell;

use brotli::{
    Allocator, BrotliDecompressStream, BrotliResult, BrotliState, HuffmanCode, SliceWrapper,
    SliceWrapperMut,
};

/// How many blocks of each element type a thread keeps.
const KEPT_BLOCKS: usize = 8;

/// The most bytes the kept blocks of one element type take on a thread:
/// a ring buffer for pages of up to 4 MiB (a pyarrow page is about 1 MiB
/// and its window 4 MiB) and the smaller blocks beside it. A thread keeps
/// at most three times this (three element types).
const KEPT_BYTES_MOST: usize = 6 << 20;

/// A block of `T`s the decoder asked for: exactly the length it asked for
/// (its `Vec` may have room for more, from an earlier use).
#[derive(Default)]
struct Block<T>(Vec<T>);

impl<T> SliceWrapper<T> for Block<T> {
    fn slice(&self) -> &[T] {
        &self.0
    }
}

impl<T> SliceWrapperMut<T> for Block<T> {
    fn slice_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

/// The blocks of one element type a thread keeps.
struct Kept<T>(RefCell<Vec<Vec<T>>>);

impl<T: Clone + Default> Kept<T> {
    /// A block of `len` elements: a kept one that has room (the smallest),
    /// else a new one. Elements it held beyond its last length are set to
    /// the default; the others keep what they hold. A new block is made as
    /// `vec!` makes it: a block of zero bytes (`u8`, `u32`) from the
    /// allocator's zeroed memory, which for memory fresh from the kernel
    /// writes nothing, so that pages of a ring buffer larger than the
    /// stream are never touched.
    fn take(&self, len: usize) -> Block<T> {
        let mut kept = self.0.borrow_mut();
        let fits = (0..kept.len())
            .filter(|&i| kept[i].capacity() >= len)
            .min_by_key(|&i| kept[i].capacity());
        let Some(mut block) = fits.map(|i| kept.swap_remove(i)) else {
            return Block(vec![T::default(); len]);
        };
        if block.len() > len {
            block.truncate(len);
        } else {
            block.resize(len, T::default());
        }
        Block(block)
    }

    /// Keeps `block` for a later [`Kept::take`], unless the thread keeps
    /// [`KEPT_BLOCKS`] already or it would take the kept blocks over
    /// [`KEPT_BYTES_MOST`].
    fn keep(&self, block: Block<T>) {
        let block = block.0;
        let bytes = |b: &Vec<T>| b.capacity().saturating_mul(size_of::<T>());
        let mut kept = self.0.borrow_mut();
        let held: usize = kept.iter().map(bytes).sum();
        if block.capacity() > 0
            && kept.len() < KEPT_BLOCKS
            && held.saturating_add(bytes(&block)) <= KEPT_BYTES_MOST
        {
            kept.push(block);
        }
    }
}

thread_local! {
    static BYTES: Kept<u8> = const { Kept(RefCell::new(Vec::new())) };
    static WORDS: Kept<u32> = const { Kept(RefCell::new(Vec::new())) };
    static CODES: Kept<HuffmanCode> = const { Kept(RefCell::new(Vec::new())) };
}

/// The decoder's allocator: blocks from, and back to, this thread's kept
/// ones.
#[derive(Default, Clone, Copy)]
struct KeptBlocks;

/// `Allocator<$element>` for [`KeptBlocks`], with the blocks of `$kept`.
macro_rules! allocator_of_kept {
    ($element:ty, $kept:ident) => {
        impl Allocator<$element> for KeptBlocks {
            type AllocatedMemory = Block<$element>;
            fn alloc_cell(&mut self, len: usize) -> Block<$element> {
                $kept.with(|kept| kept.take(len))
            }
            fn free_cell(&mut self, block: Block<$element>) {
                $kept.with(|kept| kept.keep(block));
            }
        }
    };
}

allocator_of_kept!(u8, BYTES);
allocator_of_kept!(u32, WORDS);
allocator_of_kept!(HuffmanCode, CODES);

/// Decompresses the brotli stream `stored` into `out`, which it must fill
/// exactly: `Err` with what went wrong otherwise (a damaged stream, or
/// one that makes more or fewer bytes). Bytes after the stream's end are
/// not read, as the `parquet` crate's codec does not read them.
pub(super) fn decompress_into(stored: &[u8], out: &mut [u8]) -> Result<(), &'static str> {
    let mut state = BrotliState::new(KeptBlocks, KeptBlocks, KeptBlocks);
    let (mut available_in, mut input_offset) = (stored.len(), 0);
    let (mut available_out, mut output_offset, mut total_out) = (out.len(), 0, 0);
    let result = BrotliDecompressStream(
        &mut available_in,
        &mut input_offset,
        stored,
        &mut available_out,
        &mut output_offset,
        out,
        &mut total_out,
        &mut state,
    );
    match result {
        BrotliResult::ResultSuccess if output_offset != out.len() => {
            Err("its brotli stream ends short")
        }
        BrotliResult::ResultSuccess => Ok(()),
        BrotliResult::NeedsMoreOutput => Err("its brotli stream makes more than its header says"),
        BrotliResult::NeedsMoreInput => Err("its brotli stream is cut short"),
        BrotliResult::ResultFailure => Err("not a valid brotli stream"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compressed(data: &[u8], quality: u32, window: u32) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut writer = brotli::CompressorWriter::new(&mut out, 4096, quality, window);
            std::io::Write::write_all(&mut writer, data).unwrap();
        }
        out
    }

    /// Bytes like a page's, different for each `seed`.
    fn page_bytes(seed: u64, n: u64) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let mut v = (1_700_000_000_000_000 + i * 977 + seed)
                    .to_le_bytes()
                    .to_vec();
                v.extend(format!("id-{}-{}", i % (313 + seed), seed).into_bytes());
                v
            })
            .collect()
    }

    #[test]
    fn pages_one_after_another_decompress_as_the_reference_decoder_has_them() {
        // Pages of different sizes and settings on one thread, so that
        // later ones reuse (larger, smaller) blocks of earlier ones.
        for (seed, n, quality, window) in [
            (1, 40_000, 5, 22),
            (2, 3_000, 1, 16),
            (3, 60_000, 9, 24),
            (4, 10, 11, 10),
            (5, 40_000, 5, 22),
        ] {
            let data = page_bytes(seed, n);
            let stored = compressed(&data, quality, window);
            let mut out = vec![0xA5; data.len()];
            decompress_into(&stored, &mut out).unwrap();
            assert!(out == data, "page {seed} differs");
            let mut reference = Vec::new();
            std::io::Read::read_to_end(
                &mut brotli::Decompressor::new(&stored[..], 4096),
                &mut reference,
            )
            .unwrap();
            assert!(reference == out);
        }
        let (kept, bytes) = BYTES.with(|k| {
            let k = k.0.borrow();
            (k.len(), k.iter().map(Vec::capacity).sum::<usize>())
        });
        assert!((1..=KEPT_BLOCKS).contains(&kept), "{kept} byte blocks kept");
        assert!(bytes <= KEPT_BYTES_MOST, "{bytes} bytes kept");
        let codes = CODES.with(|k| k.0.borrow().iter().map(Vec::capacity).sum::<usize>());
        assert!(codes * size_of::<HuffmanCode>() <= KEPT_BYTES_MOST);
    }

    #[test]
    fn a_stream_of_another_size_or_damaged_is_an_error() {
        let data = page_bytes(7, 5_000);
        let stored = compressed(&data, 5, 22);
        let mut short = vec![0; data.len() - 1];
        assert_eq!(
            decompress_into(&stored, &mut short),
            Err("its brotli stream makes more than its header says")
        );
        let mut long = vec![0; data.len() + 1];
        assert_eq!(
            decompress_into(&stored, &mut long),
            Err("its brotli stream ends short")
        );
        let mut out = vec![0; data.len()];
        assert_eq!(
            decompress_into(&stored[..stored.len() / 2], &mut out),
            Err("its brotli stream is cut short")
        );
        // As the `parquet` crate's codec reads it.
        let mut trailing = stored.clone();
        trailing.extend_from_slice(b"xyz");
        decompress_into(&trailing, &mut out).unwrap();
        assert!(out == data);
        // Damage anywhere: an error or other bytes, never a panic.
        for at in (0..stored.len()).step_by(7) {
            let mut damaged = stored.clone();
            damaged[at] ^= 0x5A;
            let mut out = vec![0; data.len()];
            let _ = decompress_into(&damaged, &mut out);
        }
        let mut empty: Vec<u8> = Vec::new();
        assert!(decompress_into(&[], &mut empty).is_err());
    }
}
