//! Integration tests of the audit crate (one binary, several modules).

// clippy.toml allows these in `#[test]` functions; the helpers of this test crate need them too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::missing_panics_doc,
    clippy::cast_possible_truncation,
    clippy::many_single_char_names,
    clippy::type_complexity,
    reason = "test code"
)]

mod checkpoints;
mod merkle_props;
mod merkle_vectors;
mod store;
mod support;
mod tail;
mod tamper;
mod vectors;
