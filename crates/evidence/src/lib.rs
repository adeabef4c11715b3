//! Chartroom's compliance evidence pack (req OPS-07): every requirement row of the design's
//! catalog mapped to the tests that prove it, with their results in this run, written as JSON
//! and HTML with a SHA-256 over the JSON and an Ed25519 signature.
//!
//! - [`requirements`]: the catalog's rows, the project's refinements, the pending list.
//! - [`scan`]: the tag convention and the scanner of test sources.
//! - [`results`]: the results of this run from `cargo test`'s output.
//! - [`pack`]: the join, the files and their signature, and reading a pack back (the live
//!   trust page serves the pack of the running build).
//!
//! The `chartroom-evidence` command ties them together; `./dev test` runs it after the test
//! suite. Nothing here touches a database or the network, and nothing in a pack is PHI.

pub mod html;
pub mod pack;
pub mod requirements;
pub mod results;
pub mod scan;

pub use pack::{Loaded, Pack, Row, Status, load};
