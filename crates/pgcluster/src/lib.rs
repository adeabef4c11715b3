//! Chartroom's embedded PostgreSQL cluster: `chartroom serve` without a database URL creates
//! and supervises a private PostgreSQL cluster under its data directory, using the PostgreSQL
//! server binaries installed on the machine. The same code gives administrative commands a
//! connection next to a running server, and the tests one shared cluster.
//!
//! The crate stops at the database's edge: it creates the roles and the [`DATABASE`], sets
//! their database-level privileges and hands out connection options. It runs no migration and
//! knows no table; the schema, row-level security and everything about the data belong to the
//! `store` crate, which this crate does not depend on.
//!
//! # Guarantees
//! - **Socket only.** The server listens on no TCP port (`listen_addresses=''`); its only
//!   endpoint is a Unix socket in `<data>/run`, a directory that only the cluster's system user
//!   can enter (0700), and the socket itself is 0700. These settings are passed on the
//!   `postgres` command line, which overrides `postgresql.conf` and `ALTER SYSTEM`. (A cluster
//!   configured with a [`TlsListener`] also listens on that TCP address, TLS 1.3 only, with
//!   `hostssl` lines only: a stand-in for a managed PostgreSQL, never the embedded default.)
//! - **SCRAM only.** The cluster is created with `initdb --auth=scram-sha-256`, and
//!   `pg_hba.conf` is rewritten on every start to the single line
//!   `local all all scram-sha-256`: no `trust`, no `peer`, no TCP entries. Passwords are
//!   stored as SCRAM verifiers (`password_encryption=scram-sha-256`).
//! - **Least privilege.** Three roles: `chartroom_admin` (the cluster superuser, used only to
//!   bootstrap), `chartroom_owner` (owns the `chartroom` database and runs migrations; not a
//!   superuser, cannot create roles or databases, no `BYPASSRLS`) and `chartroom_app` (the
//!   runtime login, a member of the group role `chartroom_runtime` that all runtime grants go
//!   to; not a superuser, no `BYPASSRLS`, owns nothing, cannot create in `public`). Only
//!   `chartroom_runtime` may connect to the database; `PUBLIC` may not.
//! - **Secrets stay private.** Each role's password is 32 bytes from the OS CSPRNG, hex
//!   encoded, in its own 0600 file under `<data>/secrets` (0700, owned by the invoking user).
//!   They never appear on a command line or in the server log.
//! - **Runs unprivileged.** PostgreSQL refuses to run as root. When Chartroom runs as root,
//!   `initdb` and `postgres` run as an unprivileged system user (`postgres` unless configured);
//!   the data directory and every directory above it must be traversable by that user, which is
//!   checked before anything is created inside it. Otherwise everything runs as the invoking
//!   user.
//! - **Restart-safe.** A second start reuses the cluster (it is never re-initialised; a
//!   half-finished `initdb` is discarded because the cluster is only moved into place once
//!   `initdb` has succeeded). A stale `postmaster.pid` (its process is gone, or the PID now
//!   belongs to something that is not a postmaster on this data directory) is removed. A
//!   postmaster left running by an earlier Chartroom process that died (e.g. `SIGKILL`) is
//!   shut down gracefully (`SIGINT`, then `SIGQUIT`) and replaced by a supervised one. Two
//!   Chartroom processes cannot serve the same data directory at once (`serve.lock`).
//! - **Durable.** `fsync` and `synchronous_commit` keep their durable defaults, and the cluster
//!   is created with data checksums.
//!
//! # Layout
//! ```text
//! <data>/            0700 (0711 when running as root, so the cluster user can traverse it)
//!   pg/              PGDATA, 0700, owned by the cluster user
//!     log/postgres.log   the server's stdout and stderr
//!   run/             the Unix socket directory, 0700, owned by the cluster user
//!   secrets/         0700, owned by the invoking user; one 0600 password file per role
//!   cluster.lock     serialises start/attach/stop decisions between processes
//!   serve.lock       held for the whole life of a cluster owned by a `serve` process
//! ```
//!
//! # Example
//! ```no_run
//! # async fn example() -> Result<(), pgcluster::EmbeddedError> {
//! use pgcluster::{Cluster, ClusterConfig, DbRole, DATABASE};
//! use sqlx::Connection;
//!
//! let mut cluster = Cluster::start(ClusterConfig::new("./chartroom-data")).await?;
//! let options = cluster.connect_options(DbRole::Runtime, DATABASE);
//! let conn = sqlx::PgConnection::connect_with(&options).await;
//! // ... serve until the database goes away or we are asked to stop ...
//! cluster.stop().await?;
//! # drop(conn);
//! # Ok(())
//! # }
//! ```
//!
//! # Shared test clusters
//! [`Cluster::attach_or_start_shared`] lets many test processes share one cluster: the first
//! one starts a postmaster that outlives it, the others attach to it, and
//! [`stop_shared`] stops it when the run is over.

// "PostgreSQL" is a proper noun in prose, not code to backtick. (A workspace-wide
// `doc-valid-idents` entry in clippy.toml would make this unnecessary.)
#![allow(clippy::doc_markdown)]

mod binaries;
mod bootstrap;
mod error;
mod layout;
mod postmaster;
mod secrets;

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio::process::Child;

pub use binaries::find_pg_bin_dir;
pub use bootstrap::secure_database;
pub use error::EmbeddedError;

use layout::{Identity, Layout};
use secrets::Passwords;

/// The application database every Chartroom cluster has, owned by [`OWNER_ROLE`].
pub const DATABASE: &str = "chartroom";

/// The cluster superuser created by `initdb`; used only to bootstrap roles and databases.
pub const SUPERUSER_ROLE: &str = "chartroom_admin";

/// The login role that owns [`DATABASE`] and the schema objects migrations create.
pub const OWNER_ROLE: &str = "chartroom_owner";

/// The group role (NOLOGIN) that every runtime privilege is granted to.
pub const RUNTIME_ROLE: &str = "chartroom_runtime";

/// The login role the server connects as at runtime; a member of [`RUNTIME_ROLE`].
pub const APP_ROLE: &str = "chartroom_app";

/// The environment variable naming the directory that holds `initdb` and `postgres`.
pub const BIN_DIR_ENV: &str = "CHARTROOM_PG_BIN_DIR";

/// The system user PostgreSQL runs as when Chartroom runs as root and none is configured.
pub const DEFAULT_RUN_AS: &str = "postgres";

/// The data directory `chartroom serve` uses when none is given.
pub const DEFAULT_DATA_DIR: &str = "./chartroom-data";

/// The oldest PostgreSQL major version supported (the `pg_database_owner` role, which owns
/// `public` in new databases, appeared in PostgreSQL 14).
pub const MIN_MAJOR_VERSION: u32 = 14;

/// How long to wait for a starting server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown (`SIGINT`) may take before escalating to `SIGQUIT`.
const FAST_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an immediate shutdown (`SIGQUIT`) may take before escalating to `SIGKILL`.
const IMMEDIATE_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait after `SIGKILL`.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for another process to finish deciding under `cluster.lock`.
const LOCK_TIMEOUT: Duration = Duration::from_secs(180);

/// Where and how to run the embedded cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Chartroom's data directory; the cluster lives in `pg/`, `run/` and `secrets/` under it.
    /// Created if missing.
    pub data_dir: PathBuf,
    /// The directory holding `initdb` and `postgres`; `None` searches
    /// [`BIN_DIR_ENV`], then `PATH`, then `/usr/lib/postgresql/*/bin` (see [`find_pg_bin_dir`]).
    pub pg_bin_dir: Option<PathBuf>,
    /// The system user PostgreSQL runs as when Chartroom runs as root; `None` means
    /// [`DEFAULT_RUN_AS`]. Ignored when Chartroom is not root (PostgreSQL then runs as the
    /// invoking user).
    pub run_as: Option<String>,
    /// A TCP listener with TLS beside the Unix socket (`None`, the default: socket only).
    pub tls_listener: Option<TlsListener>,
}

impl ClusterConfig {
    /// A configuration for `data_dir` that finds the binaries and the system user by default.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            pg_bin_dir: None,
            run_as: None,
            tls_listener: None,
        }
    }
}

/// A TCP listener for a cluster other hosts reach, as a managed PostgreSQL is reached: TLS 1.3
/// only with the given certificate, `hostssl` lines only in `pg_hba.conf` (a connection
/// without TLS is refused), SCRAM only. The Unix socket stays, named after `port`.
///
/// The embedded default never sets it; the tests of the TLS path to an external PostgreSQL
/// (req TX-02) do.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsListener {
    /// The address to listen on.
    pub address: std::net::IpAddr,
    /// The TCP port (also the number in the socket's name).
    pub port: u16,
    /// The server's certificate chain (PEM).
    pub cert_pem: String,
    /// The server's private key (PEM); copied into the cluster directory (0600).
    pub key_pem: String,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("address", &self.address)
            .field("port", &self.port)
            .field("key_pem", &"***")
            .finish_non_exhaustive()
    }
}

/// The database role a connection authenticates as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbRole {
    /// [`SUPERUSER_ROLE`]: bypasses row-level security. Bootstrap and test fixtures only; never
    /// for serving requests or for testing isolation.
    Superuser,
    /// [`OWNER_ROLE`]: owns the database and its objects; runs migrations.
    Owner,
    /// [`APP_ROLE`], a member of [`RUNTIME_ROLE`]: what the server uses to serve requests.
    Runtime,
}

impl DbRole {
    /// The login role name this role connects as.
    #[must_use]
    pub const fn login_name(self) -> &'static str {
        match self {
            Self::Superuser => SUPERUSER_ROLE,
            Self::Owner => OWNER_ROLE,
            Self::Runtime => APP_ROLE,
        }
    }
}

/// A running embedded cluster.
///
/// A handle from [`Cluster::start`] owns the postmaster: [`Cluster::stop`] shuts it down, and
/// dropping the handle without calling `stop` asks it to shut down (`SIGINT`) without waiting.
/// A handle from [`Cluster::attach_or_start_shared`] does not own it: `stop` and drop leave the
/// cluster running for the next process.
#[derive(Debug)]
pub struct Cluster {
    layout: Layout,
    passwords: Passwords,
    pid: u32,
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    /// Started by this handle; `child` is `None` once `stop` has taken it.
    Owned {
        child: Option<Child>,
        /// Held until the handle is gone, so no second `serve` can use the data directory.
        _serve_lock: File,
    },
    /// A postmaster shared between processes; this handle does not own it.
    Shared,
}

impl Cluster {
    /// Creates the cluster if needed, starts a supervised postmaster, waits until it accepts
    /// connections and bootstraps roles and the [`DATABASE`] (idempotently).
    ///
    /// A postmaster left running on this data directory by an earlier process is shut down
    /// first; a stale `postmaster.pid` is removed. Fails with [`EmbeddedError::Busy`] while
    /// another handle from `start` (in any process) serves the same data directory.
    pub async fn start(cfg: ClusterConfig) -> Result<Self, EmbeddedError> {
        let began = Instant::now();
        let prepared = Prepared::new(&cfg).await?;
        // Patience for a concurrent `attach_or_start_shared`/`stop_shared`, which holds a
        // shared lock for an instant; a `serve` holds it exclusively for as long as it runs.
        let serve_lock =
            match layout::lock(&prepared.layout.serve_lock(), SERVE_LOCK_PATIENCE).await {
                Ok(lock) => lock,
                Err(EmbeddedError::LockTimeout { .. }) => return Err(busy(&prepared.layout)),
                Err(error) => return Err(error),
            };
        let decision_lock = layout::lock(&prepared.layout.cluster_lock(), LOCK_TIMEOUT).await?;
        let passwords = prepared.init_cluster().await?;
        if let Some(pid) = postmaster::live_postmaster(&prepared.layout) {
            tracing::warn!(
                pid,
                data_dir = %prepared.layout.root.display(),
                "a PostgreSQL from an earlier run of this data directory is still running; \
                 shutting it down"
            );
            postmaster::stop_external(pid, &prepared.layout.pgdata).await?;
        }
        let (mut child, pid, log_offset) = prepared.spawn().await?;
        let ready = ready_and_bootstrap(
            &prepared.layout,
            &passwords,
            pid,
            Some(&mut child),
            log_offset,
            READY_TIMEOUT,
        )
        .await;
        if let Err(error) = ready {
            if let Err(stop_error) = postmaster::stop_child(&mut child, pid).await {
                tracing::warn!(%stop_error, "could not stop PostgreSQL after a failed start");
            }
            return Err(error);
        }
        drop(decision_lock);
        tracing::info!(
            pid,
            elapsed_ms = began.elapsed().as_millis(),
            data_dir = %prepared.layout.root.display(),
            "embedded PostgreSQL ready"
        );
        Ok(Self {
            layout: prepared.layout,
            passwords,
            pid,
            mode: Mode::Owned {
                child: Some(child),
                _serve_lock: serve_lock,
            },
        })
    }

    /// For an administrative command: starts the cluster like [`Cluster::start`] (stopped again
    /// by [`Cluster::stop`]) or, while a `serve` process supervises it, attaches to that
    /// server's postmaster without owning it ([`Cluster::stop`] is then a no-op and the server
    /// keeps running). The server's `serve.lock` is left alone, so a second `serve` is still
    /// refused.
    pub async fn start_or_attach(cfg: ClusterConfig) -> Result<Self, EmbeddedError> {
        match Self::start(cfg.clone()).await {
            Err(EmbeddedError::Busy { .. }) => Self::attach_to_served(cfg).await,
            other => other,
        }
    }

    /// Attaches to the postmaster of a running `serve` (see [`Cluster::start_or_attach`]).
    async fn attach_to_served(cfg: ClusterConfig) -> Result<Self, EmbeddedError> {
        let prepared = Prepared::new(&cfg).await?;
        let passwords = Passwords::load_or_create(&prepared.layout.secrets_dir, true)?;
        // The server is starting or stopping it when there is no live postmaster: busy.
        let Some(pid) = postmaster::live_postmaster(&prepared.layout) else {
            return Err(busy(&prepared.layout));
        };
        let log_offset = prepared.layout.log_len();
        ready_and_bootstrap(
            &prepared.layout,
            &passwords,
            pid,
            None,
            log_offset,
            ATTACH_TIMEOUT,
        )
        .await?;
        Ok(Self {
            layout: prepared.layout,
            passwords,
            pid,
            mode: Mode::Shared,
        })
    }

    /// Attaches to the cluster of `cfg.data_dir` if a postmaster for it is alive and accepts
    /// connections, or starts one that outlives the calling process (it runs in its own process
    /// group with its output in the log file). Either way the returned handle does not own the
    /// postmaster: [`Cluster::stop`] is a no-op, and [`stop_shared`] stops it. Meant for test
    /// suites where many processes share one cluster. Roles and the [`DATABASE`] are
    /// bootstrapped (idempotently) on every call.
    ///
    /// Decisions are serialised between processes by an exclusive lock on `<data>/cluster.lock`.
    /// Fails with [`EmbeddedError::Busy`] if a `serve` process owns the data directory.
    pub async fn attach_or_start_shared(cfg: ClusterConfig) -> Result<Self, EmbeddedError> {
        let prepared = Prepared::new(&cfg).await?;
        ensure_not_served(&prepared.layout)?;
        let decision_lock = layout::lock(&prepared.layout.cluster_lock(), LOCK_TIMEOUT).await?;
        let passwords = prepared.init_cluster().await?;
        if let Some(pid) = postmaster::live_postmaster(&prepared.layout) {
            let log_offset = prepared.layout.log_len();
            match ready_and_bootstrap(
                &prepared.layout,
                &passwords,
                pid,
                None,
                log_offset,
                ATTACH_TIMEOUT,
            )
            .await
            {
                Ok(()) => {
                    drop(decision_lock);
                    return Ok(Self {
                        layout: prepared.layout,
                        passwords,
                        pid,
                        mode: Mode::Shared,
                    });
                }
                // Restarting cannot fix credentials that no longer match.
                Err(error @ EmbeddedError::LoginRejected { .. }) => return Err(error),
                Err(error) => {
                    tracing::warn!(
                        pid,
                        %error,
                        "the shared PostgreSQL is not usable; restarting it"
                    );
                    postmaster::stop_external(pid, &prepared.layout.pgdata).await?;
                }
            }
        }
        let (mut child, pid, log_offset) = prepared.spawn().await?;
        // While it starts, supervise the child (so an early exit is reported with the log
        // tail); then let it go. It lives on after this process exits, and tokio reaps it if it
        // exits while this process is still running.
        let ready = ready_and_bootstrap(
            &prepared.layout,
            &passwords,
            pid,
            Some(&mut child),
            log_offset,
            READY_TIMEOUT,
        )
        .await;
        if let Err(error) = ready {
            if let Err(stop_error) = postmaster::stop_child(&mut child, pid).await {
                tracing::warn!(%stop_error, "could not stop PostgreSQL after a failed start");
            }
            return Err(error);
        }
        drop(child);
        drop(decision_lock);
        Ok(Self {
            layout: prepared.layout,
            passwords,
            pid,
            mode: Mode::Shared,
        })
    }

    /// Options for connecting as `role` to `database` over the cluster's Unix socket, with the
    /// role's password from `secrets/`. TLS is off (the socket never leaves the machine).
    /// `PG*` environment variables that `sqlx` reads and these options do not override (e.g.
    /// `PGOPTIONS`) still apply.
    #[must_use]
    pub fn connect_options(&self, role: DbRole, database: &str) -> PgConnectOptions {
        connect_options(&self.layout, &self.passwords, role, database)
    }

    /// The same connection as libpq environment variables (`PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`), for PostgreSQL's own tools (`pg_dump`,
    /// `pg_restore`) run as child processes. Pass them to the child's environment only: they
    /// carry the role's password.
    #[must_use]
    pub fn libpq_env(&self, role: DbRole, database: &str) -> Vec<(&'static str, String)> {
        vec![
            ("PGHOST", self.layout.socket_dir.display().to_string()),
            ("PGPORT", self.layout.port.to_string()),
            ("PGUSER", role.login_name().to_owned()),
            (
                "PGPASSWORD",
                self.passwords.for_role(role).expose().to_owned(),
            ),
            ("PGDATABASE", database.to_owned()),
            ("PGSSLMODE", "disable".to_owned()),
        ]
    }

    /// The canonical (absolute, symlink-free) data directory.
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.layout.root
    }

    /// The directory holding the cluster's Unix socket.
    #[must_use]
    pub fn socket_dir(&self) -> &Path {
        &self.layout.socket_dir
    }

    /// The process id of the postmaster.
    #[must_use]
    pub fn postmaster_pid(&self) -> u32 {
        self.pid
    }

    /// Whether this handle owns the postmaster (from [`Cluster::start`]) rather than sharing it.
    #[must_use]
    pub fn is_owner(&self) -> bool {
        matches!(self.mode, Mode::Owned { .. })
    }

    /// Resolves when the postmaster exits on its own (crash or external kill), so the server
    /// can shut down instead of serving without a database. Cancel-safe.
    ///
    /// A shared handle cannot know the exit status (the postmaster is not this process's
    /// child): it polls, and returns [`EmbeddedError::SharedClusterExited`] once it is gone.
    pub async fn exited(&mut self) -> Result<ExitStatus, EmbeddedError> {
        let pid = self.pid;
        match &mut self.mode {
            Mode::Owned {
                child: Some(child), ..
            } => child
                .wait()
                .await
                .map_err(|source| EmbeddedError::Wait { pid, source }),
            // Only `stop` takes the child, and it consumes the handle.
            Mode::Owned { child: None, .. } => Ok(ExitStatus::from_raw(0)),
            Mode::Shared => {
                while postmaster::is_postmaster_of(pid, &self.layout.pgdata) {
                    tokio::time::sleep(SHARED_EXIT_POLL).await;
                }
                Err(EmbeddedError::SharedClusterExited { pid })
            }
        }
    }

    /// Shuts the postmaster down if this handle owns it: `SIGINT` (fast shutdown: sessions are
    /// disconnected, a shutdown checkpoint is written), then `SIGQUIT` and finally `SIGKILL`
    /// if it does not exit in time. A no-op for shared handles and for a postmaster that has
    /// already exited.
    pub async fn stop(mut self) -> Result<(), EmbeddedError> {
        let Mode::Owned { child, .. } = &mut self.mode else {
            return Ok(());
        };
        let Some(mut child) = child.take() else {
            return Ok(());
        };
        postmaster::stop_child(&mut child, self.pid).await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Mode::Owned {
            child: Some(child), ..
        } = &mut self.mode
            && matches!(child.try_wait(), Ok(None))
        {
            tracing::warn!(
                pid = self.pid,
                "embedded cluster dropped without stop(): asking PostgreSQL to shut down"
            );
            postmaster::signal_quietly(self.pid, Signal::SIGINT);
        }
    }
}

/// Stops the shared cluster of `data_dir` started by [`Cluster::attach_or_start_shared`]
/// (fast shutdown, escalating like [`Cluster::stop`]). Returns whether a postmaster was
/// running. Fails with [`EmbeddedError::Busy`] if a `serve` process owns the data directory.
pub async fn stop_shared(data_dir: &Path) -> Result<bool, EmbeddedError> {
    let data_dir = match std::fs::canonicalize(data_dir) {
        Ok(dir) => dir,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(EmbeddedError::Io {
                action: "resolve the data directory",
                path: data_dir.to_path_buf(),
                source,
            });
        }
    };
    let layout = Layout::at(data_dir);
    ensure_not_served(&layout)?;
    let decision_lock = layout::lock(&layout.cluster_lock(), LOCK_TIMEOUT).await?;
    let running = match postmaster::live_postmaster(&layout) {
        Some(pid) => {
            postmaster::stop_external(pid, &layout.pgdata).await?;
            true
        }
        None => false,
    };
    drop(decision_lock);
    Ok(running)
}

/// How long `start` waits for `serve.lock` before concluding another process serves.
const SERVE_LOCK_PATIENCE: Duration = Duration::from_secs(1);
/// How long an attach waits for an already-running postmaster to accept connections.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a shared handle checks whether the postmaster is still there.
const SHARED_EXIT_POLL: Duration = Duration::from_millis(250);

fn busy(layout: &Layout) -> EmbeddedError {
    EmbeddedError::Busy {
        data_dir: layout.root.clone(),
        lock: layout.serve_lock(),
    }
}

/// Fails if a `serve` process holds `serve.lock`.
fn ensure_not_served(layout: &Layout) -> Result<(), EmbeddedError> {
    // A shared lock: concurrent checks do not trip over each other, only a `serve` does.
    match layout::try_lock_shared(&layout.serve_lock())? {
        Some(lock) => {
            drop(lock);
            Ok(())
        }
        None => Err(busy(layout)),
    }
}

fn connect_options(
    layout: &Layout,
    passwords: &Passwords,
    role: DbRole,
    database: &str,
) -> PgConnectOptions {
    PgConnectOptions::new_without_pgpass()
        .socket(&layout.socket_dir)
        .port(layout.port)
        .username(role.login_name())
        .password(passwords.for_role(role).expose())
        .database(database)
        .ssl_mode(PgSslMode::Disable)
        .application_name("chartroom")
}

/// Waits until the postmaster accepts connections, then bootstraps roles and the database.
async fn ready_and_bootstrap(
    layout: &Layout,
    passwords: &Passwords,
    pid: u32,
    child: Option<&mut Child>,
    log_offset: u64,
    timeout: Duration,
) -> Result<(), EmbeddedError> {
    let options = connect_options(layout, passwords, DbRole::Superuser, "postgres");
    let mut admin = postmaster::wait_until_ready(
        &options,
        &postmaster::ReadyWatch {
            pid,
            log_file: layout.log_file(),
            log_offset,
            secret_file: layout.secret_file(SUPERUSER_ROLE),
            timeout,
        },
        child,
    )
    .await?;
    let to_database = connect_options(layout, passwords, DbRole::Superuser, DATABASE);
    let result = bootstrap::bootstrap(&mut admin, &to_database, passwords).await;
    close_quietly(admin).await;
    result
}

async fn close_quietly(conn: sqlx::PgConnection) {
    use sqlx::Connection as _;
    if let Err(error) = conn.close().await {
        tracing::debug!(%error, "closing a bootstrap connection failed");
    }
}

/// Everything known before the postmaster starts.
struct Prepared {
    bin_dir: PathBuf,
    major: u32,
    who: Identity,
    layout: Layout,
    tls: Option<TlsListener>,
}

impl Prepared {
    /// Finds the binaries, resolves the system user and prepares the directory layout.
    async fn new(cfg: &ClusterConfig) -> Result<Self, EmbeddedError> {
        let bin_dir = find_pg_bin_dir(cfg.pg_bin_dir.as_deref())?;
        let major = binaries::server_major_version(&bin_dir).await?;
        if major < MIN_MAJOR_VERSION {
            return Err(EmbeddedError::UnsupportedVersion {
                bin_dir,
                found: major,
            });
        }
        let who = layout::resolve_identity(cfg.run_as.as_deref())?;
        let layout = Layout::prepare(&cfg.data_dir, &who, cfg.tls_listener.as_ref())?;
        Ok(Self {
            bin_dir,
            major,
            who,
            layout,
            tls: cfg.tls_listener.clone(),
        })
    }

    /// Loads (or creates) the role passwords and creates the cluster if it does not exist
    /// yet; rewrites `pg_hba.conf`. Call with `cluster.lock` held.
    async fn init_cluster(&self) -> Result<Passwords, EmbeddedError> {
        let exists = self.layout.cluster_exists(&self.who)?;
        let passwords = Passwords::load_or_create(&self.layout.secrets_dir, exists)?;
        if exists {
            let cluster_major = self.layout.cluster_major_version()?;
            if cluster_major != self.major {
                return Err(EmbeddedError::VersionMismatch {
                    pg_dir: self.layout.pgdata.clone(),
                    cluster: cluster_major,
                    bin_dir: self.bin_dir.clone(),
                    binaries: self.major,
                });
            }
        } else {
            self.initdb(&passwords).await?;
        }
        self.layout.write_hba(&self.who)?;
        if let Some(tls) = &self.tls {
            self.layout.write_tls_files(&self.who, tls)?;
        }
        Ok(passwords)
    }

    /// Runs `initdb` into `pg.init/` and moves the result to `pg/` once it has succeeded, so
    /// `pg/` never holds a half-created cluster.
    async fn initdb(&self, passwords: &Passwords) -> Result<(), EmbeddedError> {
        let began = Instant::now();
        let init_dir = self.layout.pg_init_dir();
        layout::remove_dir_all_if_exists(&init_dir)?;
        layout::ensure_dir(&init_dir, 0o700, Some(&self.who))?;
        let pwfile = self.layout.initdb_pwfile();
        layout::write_private_file(
            &pwfile,
            format!("{}\n", passwords.for_role(DbRole::Superuser).expose()).as_bytes(),
            Some(&self.who),
        )?;
        let initdb = self.bin_dir.join("initdb");
        let mut cmd = tokio::process::Command::new(&initdb);
        cmd.arg("--pgdata")
            .arg(&init_dir)
            .arg("--username")
            .arg(SUPERUSER_ROLE)
            .arg("--auth=scram-sha-256")
            .arg("--pwfile")
            .arg(&pwfile)
            .arg("--encoding=UTF8")
            .arg("--no-locale")
            .arg("--data-checksums")
            .arg("--no-instructions")
            .stdin(std::process::Stdio::null());
        self.who.configure(&mut cmd);
        let output = cmd.output().await;
        // The password file must not outlive initdb, whatever happened.
        let removed = layout::remove_file_if_exists(&pwfile);
        let output = output.map_err(|source| EmbeddedError::Spawn {
            program: initdb.clone(),
            source,
        })?;
        removed?;
        if !output.status.success() {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            return Err(EmbeddedError::Initdb {
                status: output.status,
                output: postmaster::last_lines(&text, postmaster::TAIL_LINES),
            });
        }
        layout::rename(&init_dir, &self.layout.pgdata)?;
        layout::sync_dir(&self.layout.root)?;
        tracing::info!(
            elapsed_ms = began.elapsed().as_millis(),
            pg_dir = %self.layout.pgdata.display(),
            run_as = %self.who.name,
            "created a PostgreSQL cluster"
        );
        Ok(())
    }

    /// Starts the postmaster (after clearing what a dead one left behind). Call with
    /// `cluster.lock` held and no live postmaster on the data directory.
    async fn spawn(&self) -> Result<(Child, u32, u64), EmbeddedError> {
        postmaster::await_leftover_processes(&self.layout.pgdata).await;
        postmaster::clear_stale_runtime_files(&self.layout)?;
        let (log, log_offset) = self.layout.open_log(&self.who)?;
        let log_path = self.layout.log_file();
        let stderr = log.try_clone().map_err(|source| EmbeddedError::Io {
            action: "duplicate the handle of",
            path: log_path,
            source,
        })?;
        let postgres = self.bin_dir.join("postgres");
        let mut cmd = tokio::process::Command::new(&postgres);
        cmd.arg("-D").arg(&self.layout.pgdata);
        for setting in self.layout.server_settings() {
            cmd.arg("-c").arg(setting);
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(stderr)
            // Its own process group: a terminal's Ctrl-C reaches Chartroom, which then stops
            // PostgreSQL after draining; and a shared cluster outlives its test process.
            .process_group(0)
            .kill_on_drop(false);
        self.who.configure(&mut cmd);
        let child = cmd.spawn().map_err(|source| EmbeddedError::Spawn {
            program: postgres.clone(),
            source,
        })?;
        let pid = child.id().ok_or_else(|| EmbeddedError::Spawn {
            program: postgres,
            source: std::io::Error::other("the process exited before its id could be read"),
        })?;
        tracing::debug!(pid, "started postgres");
        Ok((child, pid, log_offset))
    }
}
