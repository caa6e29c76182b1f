//! Reading the `DELTA_BINARY_PACKED` runs at the start of delta-encoded
//! byte-array pages, without decoding them.
//!
//! A `DELTA_LENGTH_BYTE_ARRAY` page starts with one such run (the string
//! lengths), a `DELTA_BYTE_ARRAY` page with two (prefix lengths, then
//! suffix lengths). The `parquet` crate (60.1) allocates each run's
//! declared value count before checking it against the page, so a crafted
//! count aborts the process. [`packed_run`] reads a run's header, refuses
//! a count beyond what the page holds, and walks the run's blocks (their
//! sizes follow from the header and the bit widths alone) to check that
//! the bytes really hold every value and to find where the run ends, which
//! is where a `DELTA_BYTE_ARRAY` page's second run starts. The walk
//! mirrors the decoder's own rules, so a page it accepts, the decoder
//! accepts too.

/// One `DELTA_BINARY_PACKED` run: how many values it declares and where
/// its last block ends (as the decoder computes it: padded to whole
/// miniblocks, so it may lie past the page if the writer left the padding
/// out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackedRun {
    pub values: u64,
    pub end: u64,
}

/// Reads the run at the start of `bytes`. `max_values` is the most values
/// the page can hold; a run declaring more, or whose blocks do not fit in
/// `bytes`, is an error saying why.
pub(crate) fn packed_run(bytes: &[u8], max_values: u64) -> Result<PackedRun, String> {
    let mut pos = 0usize;
    let mut varint = |what: &str| {
        uleb128(bytes, &mut pos).ok_or_else(|| format!("unreadable delta header ({what})"))
    };
    let block_size = varint("block size")?;
    let miniblocks = varint("miniblocks per block")?;
    let values = varint("value count")?;
    let _first_value = varint("first value")?;
    if values > max_values {
        return Err(format!(
            "delta header declares {values} values, the page holds at most {max_values}"
        ));
    }
    if block_size == 0
        || miniblocks == 0
        || block_size % 128 != 0
        || block_size % miniblocks != 0
        || (block_size / miniblocks) % 32 != 0
    {
        return Err(format!(
            "invalid delta block layout ({block_size} values in {miniblocks} miniblocks)"
        ));
    }
    let per_miniblock = block_size / miniblocks;
    let mut end = pos as u64;
    let mut remaining = values.saturating_sub(1); // the first value is in the header
    let len = bytes.len() as u64;
    let missing = || "delta-encoded values extend past the page".to_string();
    while remaining > 0 {
        let mut at = usize::try_from(end).map_err(|_| missing())?;
        uleb128(bytes, &mut at).ok_or_else(missing)?; // min delta
        let widths_end = (at as u64).checked_add(miniblocks).ok_or_else(missing)?;
        if widths_end > len {
            return Err(missing());
        }
        end = widths_end;
        for &width in &bytes[at..widths_end as usize] {
            if remaining == 0 {
                break; // trailing miniblocks take no bytes, whatever their width
            }
            let width = u64::from(width);
            if width > 32 {
                return Err(format!("delta bit width {width} exceeds 32"));
            }
            let used = remaining.min(per_miniblock);
            // The decoder needs the bits of the values it reads ...
            if end.saturating_add(used.saturating_mul(width).div_ceil(8)) > len {
                return Err(missing());
            }
            // ... and steps over the whole miniblock.
            end = (per_miniblock.checked_mul(width).ok_or_else(missing)? / 8)
                .checked_add(end)
                .ok_or_else(missing)?;
            remaining -= used;
        }
    }
    Ok(PackedRun { values, end })
}

/// Reads an unsigned LEB128 integer at `*pos`.
pub(crate) fn uleb128(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_reads_and_refuses_overlong_input() {
        let mut pos = 0;
        assert_eq!(uleb128(&[0xe5, 0x8e, 0x26, 0x01], &mut pos), Some(624_485));
        assert_eq!(pos, 3);
        assert_eq!(uleb128(&[0x80; 11], &mut 0), None);
        assert_eq!(uleb128(&[], &mut 0), None);
    }

    /// Header: block 128, 4 miniblocks, `values` values, first value 0.
    fn header(values: u8) -> Vec<u8> {
        vec![0x80, 0x01, 0x04, values, 0x00]
    }

    #[test]
    fn a_run_of_one_value_is_its_header() {
        let bytes = header(1);
        assert_eq!(packed_run(&bytes, 1), Ok(PackedRun { values: 1, end: 5 }));
    }

    #[test]
    fn walks_blocks_to_the_end_of_the_run() {
        // 40 values: 39 deltas, in miniblocks of 32 (width 8, then width 2).
        let mut bytes = header(40);
        bytes.extend([0x00, 8, 2, 77, 99]); // min delta, four widths (last two unused)
        bytes.extend([0u8; 32]); // miniblock 1: 32 × 8 bits
        bytes.extend([0u8; 8]); // miniblock 2: padded to 32 × 2 bits
        let run = packed_run(&bytes, 40).unwrap();
        assert_eq!(
            run,
            PackedRun {
                values: 40,
                end: bytes.len() as u64
            }
        );
        // The suffix run of a DELTA_BYTE_ARRAY page starts right there.
        bytes.extend(header(1));
        assert_eq!(
            packed_run(&bytes[run.end as usize..], 40).unwrap().values,
            1
        );
    }

    #[test]
    fn tolerates_a_missing_pad_but_not_missing_values() {
        let mut bytes = header(40);
        bytes.extend([0x00, 8, 2, 0, 0]);
        bytes.extend([0u8; 32]);
        bytes.extend([0u8; 2]); // the 7 values of miniblock 2 need 14 bits
        assert_eq!(packed_run(&bytes, 40).unwrap().end, bytes.len() as u64 + 6);
        bytes.pop();
        assert!(packed_run(&bytes, 40).is_err());
    }

    #[test]
    fn refuses_counts_beyond_the_page_before_walking() {
        // 2^49 values declared in a few bytes.
        let bytes = [
            0x80, 0x01, 0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00,
        ];
        let err = packed_run(&bytes, 1000).unwrap_err();
        assert!(err.contains("562949953421312 values"), "{err}");
        // Within the page's count but absent from its bytes.
        assert!(packed_run(&header(100), 100).is_err());
    }

    #[test]
    fn refuses_layouts_the_decoder_refuses() {
        assert!(packed_run(&[0x40, 0x04, 0x01, 0x00], 1).is_err()); // block of 64
        assert!(packed_run(&[0x80, 0x01, 0x00, 0x01, 0x00], 1).is_err()); // no miniblocks
        assert!(packed_run(&[0x80, 0x01, 0x08, 0x01, 0x00], 1).is_err()); // 16 per miniblock
        let mut wide = header(3);
        wide.extend([0x00, 33, 0, 0, 0]);
        assert!(packed_run(&wide, 3).is_err());
    }
}
