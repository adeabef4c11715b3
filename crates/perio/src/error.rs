//! Errors of the library API (not of dictation: a refused final is an [`crate::Outcome`]
//! with status `rejected`, never an `Err`).

/// What can go wrong building sessions and reading fixtures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A tooth number outside Universal 1–32.
    #[error("tooth {0} is not a Universal number 1-32")]
    BadTooth(u8),
    /// A session context (fixture `ctx`, CLI `--ctx`) that does not describe a session.
    #[error("invalid session context: {0}")]
    Context(String),
    /// A `history` final of a context that did not apply.
    #[error("history final {index} ({text:?}) did not apply: status {status}")]
    History {
        /// Position in `history`.
        index: usize,
        /// The final.
        text: String,
        /// Its status.
        status: String,
    },
    /// A fixture line that is not a fixture.
    #[error("invalid fixture: {0}")]
    Fixture(String),
}
