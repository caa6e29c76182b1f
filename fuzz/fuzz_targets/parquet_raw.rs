//! The Parquet decoder alone, driven the way `src/ingest/parquet.rs` drives
//! it (metadata once, then one reader per row group, all columns, 65,536
//! rows per batch), with NO `catch_unwind`: a panic here is a panic of the
//! `parquet` crate. convostat's `guard` catches those and reports a data
//! error, so findings of this target are informational.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let Ok(metadata) = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new()) else {
        return;
    };
    for rg in 0..metadata.metadata().num_row_groups() {
        let reader =
            ParquetRecordBatchReaderBuilder::new_with_metadata(bytes.clone(), metadata.clone())
                .with_row_groups(vec![rg])
                .with_projection(ProjectionMask::all())
                .with_batch_size(65_536)
                .build();
        let Ok(reader) = reader else { continue };
        for batch in reader {
            match batch {
                Ok(batch) => {
                    std::hint::black_box(batch.num_rows());
                }
                Err(_) => break,
            }
        }
    }
});
