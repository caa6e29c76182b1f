//! Synthetic data (placeholder while the generator lands).
