//! Integration tests of the crypto crate, in one binary (link time on 2 cores).
//!
//! - `vault`: the Vault/OpenBao transit provider against a local stand-in transit server
//!   (`vault_standin`), because no Vault or OpenBao binary was installable on the build
//!   machine. See the stand-in's docs for what it does and does not model.
//! - `blobs`: encrypted blobs on a real `LocalFileSystem` object store in a temp directory.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::many_single_char_names,
    clippy::cast_possible_truncation,
    clippy::result_large_err,
    clippy::needless_pass_by_value,
    reason = "test code: helpers outside #[test] functions may panic on setup failures"
)]

mod blobs;
mod support;
mod vault;
mod vault_standin;
