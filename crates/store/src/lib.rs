//! Chartroom's PostgreSQL layer: migrations, the tenant-bound transaction ([`TenantTx`]),
//! typed queries and the session store. It connects to a database wherever that runs; creating
//! and supervising the embedded cluster is the `pgcluster` crate's job.
//!
//! # Guarantees
//! - The only way server code reaches tenant data is a [`TenantTx`]: a transaction in which
//!   the practice and the actor are set transaction-locally (`set_config(…, true)`), so they
//!   cannot leak into another pooled transaction. Dropping it rolls back. Owner-role work
//!   (commands, jobs, seeding) goes through an [`OwnerTx`] of the same shape. The practice is
//!   entered in one place (`entry::set_practice`, or the session check `app.enter` in the
//!   database).
//! - The runtime pool is private to this crate ([`Store`] does not hand it out).
//! - [`Store::connect_runtime`] refuses a database role that is superuser, has BYPASSRLS, owns
//!   anything, or can create or truncate anything (req AU-09): row-level security would not
//!   hold for such a role.
//! - Every PHI read or write done through this crate is followed, in the same transaction, by
//!   an audit append ([`TenantTx::audit`]); the row carries ids and an action, never PHI. Every
//!   audit event of the crate is written by one function (`append`): a closed action set,
//!   typed object references, [`audit::event::validate`] before the write, the transaction's
//!   time from the injected clock. Sealed fields are decrypted only through the opener a
//!   [`TenantTx`] or [`OwnerTx`] hands out, after which the transaction refuses to commit
//!   until it has appended an audit event ([`StoreError::AuditFailed`]).
//!   Under vendor support access ([`support`]) each event names the grant and each patient
//!   touched gets a disclosure; clinical access through break-glass ([`break_glass`]) is
//!   flagged as emergency access in the same statement.
//! - Clinical records are visible only where `app.clinical_visible` holds (care team,
//!   practice-wide scope, break-glass, a clinical support grant) — in the database, not here.
//! - A signed note version is never updated or deleted ([`notes`]); its SHA-256 binds the
//!   content, the note, the signer and the whole signature manifestation (hash scheme 2;
//!   versions written before it keep scheme 1, which does not bind the printed name,
//!   credential, time zone or creation time), and [`notes::verify`] recomputes it.
//! - Free text about patients is stored only as field ciphertexts; the few text columns of
//!   tenant tables that may stay in the clear are listed, with reasons, in [`sealed_columns`].
//! - A job or command over many practices ([`each_practice`]) reports and skips a practice
//!   whose data cannot be processed; the others go on.
//! - A read ([`Access::Read`]) cannot change anything (a read-only transaction) and returns
//!   from its commit only once its audit events are durable ([`group_commit`]); a change
//!   audits in its own transaction.
//! - Retention ([`retention`]) purges only what is past the practice's windows and not under
//!   legal hold, and never an audit row.
//!
//! # Roles
//! Migrations and administrative commands run as the owner role ([`OwnerStore`]); the server
//! runs as the runtime role. See `migrations/0001_foundation.sql` for the policies.
//!
//! # Example
//! ```no_run
//! # async fn f(store: &store::Store, token: &store::TokenHash, practice: domain::PracticeId) -> Result<(), store::StoreError> {
//! use domain::{AuditAction, Outcome, RequestId, SystemClock, Clock};
//! let policy = store::SessionPolicy::default();
//! // A read: a read-only transaction whose audit events the group-commit writer makes
//! // durable before `commit` returns.
//! let access = store::Access::Read;
//! let store::Entry::Member(mut tx, _) = store.enter_practice(token, practice, SystemClock.now(), &policy, RequestId::new(), access).await? else {
//!     return Err(store::StoreError::NotMember);
//! };
//! let page = store::patients::list(&mut tx, store.keyring()?, 0, 50).await?;
//! tx.audit_patients(AuditAction::PatientList, page.iter().map(|p| p.patient_id)).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod amendments;
mod append;
pub mod appointments;
pub mod audit;
pub mod blobs;
pub mod booking;
pub mod break_glass;
pub mod capture;
mod copy_read;
pub mod disclosures;
pub mod drafts;
mod each;
pub mod emergency;
mod entry;
mod error;
pub mod forward;
pub mod group_commit;
pub mod identity;
pub mod incidents;
pub mod installation;
pub mod intake;
pub mod invitations;
pub mod keys;
pub mod lease;
pub mod links;
pub mod memberships;
pub mod notes;
pub mod outbox;
pub mod patients;
pub mod payments;
pub mod perio;
pub mod practices;
pub mod providers;
pub mod push;
pub mod requests;
pub mod retention;
pub mod rights;
mod roles_check;
pub mod sealed_columns;
pub mod sequence;
mod session;
pub mod subprocessors;
pub mod support;
mod tenant;
pub mod throttle;
pub mod transcripts;
pub mod trust;
pub mod turns;
pub mod waitlist;

pub use crypto;
pub use each::{PerPractice, each_practice};
pub use entry::{Access, OwnerTx};
pub use error::StoreError;
pub use roles_check::check_runtime_role;
pub use session::{
    AuthMethod, Entry, SessionAuth, SessionPolicy, SessionSummary, SessionToken, SignInCandidate,
    TokenHash,
};
pub use tenant::{TenantTx, UserTx};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// The migrations, embedded from the workspace's `migrations/` directory.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// How long a pooled connection may sit idle before it is checked (pinged) on its way out.
const IDLE_PING_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The server's handle on the database, connected as the runtime role.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    keyring: Option<std::sync::Arc<crypto::Keyring>>,
    /// The group-commit writer of the audit events of reads, on its own connections.
    writer: group_commit::AuditWriter,
    writer_pool: PgPool,
}

impl Store {
    /// Connects as the runtime role and checks that the role is least-privilege
    /// ([`check_runtime_role`]); refuses to return a store otherwise. Starts the group-commit
    /// audit writer ([`group_commit`], default batching) on two connections of its own.
    pub async fn connect_runtime(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            // A request's first statement goes straight out on a connection in steady use; only
            // one idle for a while is checked first (a round trip less per request).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_PING_AFTER {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options.clone())
            .await?;
        check_runtime_role(&pool).await?;
        // The writer keeps one connection for good (and a second for the rare retry after a
        // failure): no ping before each batch.
        let writer_pool = PgPoolOptions::new()
            .max_connections(2)
            .test_before_acquire(false)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options)
            .await?;
        let writer = group_commit::AuditWriter::start(
            writer_pool.clone(),
            group_commit::GroupCommit::default(),
        );
        Ok(Self {
            pool,
            keyring: None,
            writer,
            writer_pool,
        })
    }

    /// The same store with the audit writer restarted with `config`. The previous writer
    /// takes no more events, commits those already queued, and releases its connection.
    #[must_use]
    pub fn with_group_commit(mut self, config: group_commit::GroupCommit) -> Self {
        let previous = std::mem::replace(
            &mut self.writer,
            group_commit::AuditWriter::start(self.writer_pool.clone(), config),
        );
        previous.signal_stop();
        self
    }

    /// The group-commit writer's counters (batches, events, batch sizes).
    #[must_use]
    pub fn audit_writer_stats(&self) -> group_commit::WriterSnapshot {
        self.writer.stats()
    }

    /// Closes the store. The audit writer is told to stop first: it commits the events
    /// already queued (without waiting out [`group_commit::GroupCommit::max_wait`]), answers
    /// each of their reads, and refuses later ones, whose reads fail — no event is dropped
    /// unanswered. Then the request pool closes (transactions in flight end), the writer
    /// releases its kept connection, and its pool closes. Every clone shares the pools and
    /// the writer; closing twice is harmless.
    pub async fn close(&self) {
        self.writer.signal_stop();
        self.pool.close().await;
        self.writer.stop().await;
        self.writer_pool.close().await;
    }
}

/// The owner role's handle: migrations and administrative commands. Its work on a practice
/// goes through an [`OwnerTx`], stamped by the store's clock ([`OwnerStore::with_clock`];
/// the system clock unless another is injected) or by the `now` a caller passes.
#[derive(Clone, Debug)]
pub struct OwnerStore {
    pool: PgPool,
    keyring: Option<std::sync::Arc<crypto::Keyring>>,
    clock: std::sync::Arc<dyn domain::Clock>,
}

impl OwnerStore {
    /// Connects as the owner role.
    pub async fn connect(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            keyring: None,
            clock: std::sync::Arc::new(domain::SystemClock),
        })
    }

    /// The same store, stamping its audit events with `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: std::sync::Arc<dyn domain::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl Store {
    /// The same store, encrypting and decrypting with `keyring` (encryption at rest: every
    /// patient and note function needs it).
    #[must_use]
    pub fn with_keyring(mut self, keyring: std::sync::Arc<crypto::Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// The keyring; [`StoreError::Corrupt`] if the store was built without one (a
    /// configuration error: encrypted fields cannot be read or written).
    pub fn keyring(&self) -> Result<&std::sync::Arc<crypto::Keyring>, StoreError> {
        self.keyring.as_ref().ok_or(StoreError::Corrupt(
            "no keyring configured: encrypted fields are unavailable",
        ))
    }
}

impl OwnerStore {
    /// The same store, encrypting and decrypting with `keyring` (seeding, the start-up
    /// encryption job and the `keys` commands need it).
    #[must_use]
    pub fn with_keyring(mut self, keyring: std::sync::Arc<crypto::Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// The keyring; [`StoreError::Corrupt`] if the store was built without one.
    pub fn keyring(&self) -> Result<&std::sync::Arc<crypto::Keyring>, StoreError> {
        self.keyring.as_ref().ok_or(StoreError::Corrupt(
            "no keyring configured: encrypted fields are unavailable",
        ))
    }

    /// A wrapped-key store on the owner role's pool (rewrap, retire, destroy).
    #[must_use]
    pub fn key_store(&self) -> keys::PgKeyStore {
        keys::PgKeyStore::with_pool(self.pool.clone())
    }
}
