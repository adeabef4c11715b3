//! Integration tests of the perio crate (one binary, several modules).

// clippy.toml allows these in `#[test]` functions; the helpers of this test crate need them too.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::single_match_else,
    clippy::match_same_arms,
    reason = "test code"
)]

mod engine;
mod props;
mod session_api;
mod shared_fixtures;
mod support;
mod vocabulary;
