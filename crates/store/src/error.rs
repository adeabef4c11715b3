use thiserror::Error;

/// What can go wrong in the store. Messages carry no PHI (no values, only names of
/// constraints and kinds of failure).
#[derive(Debug, Error)]
pub enum StoreError {
    /// The session token is unknown, expired, idle too long, or revoked.
    #[error("not signed in, or the session has ended")]
    Unauthenticated,
    /// The practice does not exist or the actor is not a member of it.
    #[error("not found")]
    NotMember,
    /// A uniqueness or reference constraint refused the change; the name is the constraint's.
    #[error("conflict with existing data ({0})")]
    Conflict(String),
    /// A check constraint refused a value.
    #[error("a value was refused by the database ({0})")]
    Invalid(String),
    /// Row-level security or a privilege refused the statement.
    #[error("the database refused the operation for this role")]
    Forbidden,
    /// The runtime role is not least-privilege (req AU-09).
    #[error("unsafe database role: {0}")]
    UnsafeRole(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(sqlx::Error),
    /// The audit event could not be written: the action must not happen (no unaudited PHI
    /// access). Always a server fault, whatever the database said.
    #[error("the audit log could not be written: {0}")]
    AuditFailed(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Stored data failed a consistency check.
    #[error("stored data is inconsistent: {0}")]
    Corrupt(&'static str),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            let name = db.constraint().unwrap_or("unnamed").to_owned();
            match db.code().as_deref() {
                Some("23505" | "23503" | "23P01") => return StoreError::Conflict(name),
                Some("23514" | "23502") => return StoreError::Invalid(name),
                // Class 22, data exceptions: a value the database cannot take (a NUL in text
                // or JSON, a number out of range, a malformed date…) is the caller's input.
                Some(code) if code.starts_with("22") => return StoreError::Invalid(name),
                Some("42501") => return StoreError::Forbidden,
                _ => {}
            }
        }
        StoreError::Db(e)
    }
}
