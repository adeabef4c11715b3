//! Chartroom's integration tests: real PostgreSQL (a private cluster shared by the test run),
//! the real router over real HTTP, and the real binary. One test binary, modules by topic.

mod api_matrix;
mod audit_log;
mod bad_input;
mod embedded_binary;
mod isolation_sql;
mod sessions;

/// Shared helpers.
mod util;
