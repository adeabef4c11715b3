//! Integration tests of the perio crate (one binary, several modules).

mod shared_fixtures;
