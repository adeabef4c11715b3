//! Errors of the embedded cluster; each message says what an operator can do about it.

use std::path::PathBuf;
use std::process::ExitStatus;

/// Why the embedded cluster could not be found, created, started, bootstrapped or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddedError {
    /// `initdb` and `postgres` were not found. The message is a single line.
    #[error(
        "PostgreSQL server binaries not found (initdb, postgres) {looked_in}: install them with \
         `apt-get install postgresql` (Debian/Ubuntu) or `dnf install postgresql-server` \
         (Fedora/RHEL), or set CHARTROOM_PG_BIN_DIR to the directory that holds them"
    )]
    BinariesNotFound {
        /// Where they were looked for, e.g. `in /opt/pg/bin`.
        looked_in: String,
    },

    /// The PostgreSQL binaries are older than [`super::MIN_MAJOR_VERSION`].
    #[error(
        "PostgreSQL {found} in {} is too old: Chartroom needs PostgreSQL {min} or newer; install \
         a newer server or set CHARTROOM_PG_BIN_DIR to one",
        bin_dir.display(),
        min = super::MIN_MAJOR_VERSION
    )]
    UnsupportedVersion {
        /// The directory holding the binaries.
        bin_dir: PathBuf,
        /// Their major version.
        found: u32,
    },

    /// `postgres --version` did not print a version.
    #[error(
        "could not read the version of {}: {detail}; check that it is a working PostgreSQL \
         server binary, or set CHARTROOM_PG_BIN_DIR to one",
        postgres.display()
    )]
    VersionUnreadable {
        /// The `postgres` binary.
        postgres: PathBuf,
        /// What went wrong.
        detail: String,
    },

    /// The existing cluster was created by another PostgreSQL major version.
    #[error(
        "the cluster in {} was created by PostgreSQL {cluster} but the binaries in {} are \
         PostgreSQL {binaries}: set CHARTROOM_PG_BIN_DIR to PostgreSQL {cluster} binaries, or \
         upgrade the cluster with pg_upgrade",
        pg_dir.display(),
        bin_dir.display()
    )]
    VersionMismatch {
        /// The cluster directory.
        pg_dir: PathBuf,
        /// The cluster's major version (`PG_VERSION`).
        cluster: u32,
        /// The directory holding the binaries.
        bin_dir: PathBuf,
        /// The binaries' major version.
        binaries: u32,
    },

    /// A file system operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `create the directory`.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// Running as root, and the system user PostgreSQL should run as does not exist.
    #[error(
        "PostgreSQL refuses to run as root, and the system user `{user}` it should run as does \
         not exist: install the postgresql package (it creates `postgres`), create the user \
         (e.g. `useradd --system {user}`), or run Chartroom as an unprivileged user"
    )]
    RunAsUserMissing {
        /// The configured system user.
        user: String,
    },

    /// The user database could not be queried.
    #[error("could not look up the system user `{user}`: {source}")]
    RunAsUserLookup {
        /// The configured system user.
        user: String,
        /// The cause.
        #[source]
        source: nix::Error,
    },

    /// The configured system user is root (uid 0).
    #[error(
        "PostgreSQL cannot run as `{user}` because it has uid 0; configure an unprivileged system \
         user (the default is `postgres`)"
    )]
    RunAsRoot {
        /// The configured system user.
        user: String,
    },

    /// Running as root, and the PostgreSQL user cannot reach the data directory.
    #[error(
        "PostgreSQL runs as system user `{user}`, which cannot enter {} (mode {mode:04o}, owner \
         uid {owner}): choose a data directory that user can reach, e.g. \
         `--data-dir /var/lib/chartroom`, or make {} traversable (chmod o+x)",
        dir.display(),
        dir.display()
    )]
    NotTraversable {
        /// The system user PostgreSQL runs as.
        user: String,
        /// The directory it cannot traverse.
        dir: PathBuf,
        /// That directory's permission bits.
        mode: u32,
        /// That directory's owner.
        owner: u32,
    },

    /// The cluster directory belongs to a different user than the one PostgreSQL runs as.
    #[error(
        "{} is owned by uid {found}, but PostgreSQL runs as `{user}` (uid {expected}): run \
         Chartroom as the user that created the cluster, or hand it over with \
         `chown -R {user} {}`",
        dir.display(),
        dir.display()
    )]
    WrongOwner {
        /// The cluster directory.
        dir: PathBuf,
        /// Its owner.
        found: u32,
        /// The system user PostgreSQL runs as.
        user: String,
        /// That user's uid.
        expected: u32,
    },

    /// `pg/` exists but is not a PostgreSQL cluster.
    #[error(
        "{} exists but is not a PostgreSQL cluster (it has no PG_VERSION): move it away so \
         Chartroom can create a fresh cluster, or restore the cluster from backup",
        dir.display()
    )]
    NotACluster {
        /// The cluster directory.
        dir: PathBuf,
    },

    /// The Unix socket path would not fit in `sockaddr_un`, or cannot be quoted.
    #[error(
        "the socket path {} cannot be used ({reason}): choose a shorter data directory path \
         made of ordinary characters",
        path.display()
    )]
    UnusableSocketPath {
        /// The socket path.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },

    /// The superuser's password file is gone but the cluster exists.
    #[error(
        "the password file {} of the existing cluster is missing: restore {} from backup (the \
         password cannot be recovered from the cluster)",
        path.display(),
        path.display()
    )]
    SecretMissing {
        /// The password file.
        path: PathBuf,
    },

    /// A password file does not hold at least 64 hex characters.
    #[error(
        "the password file {} is malformed (expected at least 64 hex characters): restore it \
         from backup",
        path.display()
    )]
    SecretInvalid {
        /// The password file.
        path: PathBuf,
    },

    /// The OS random number generator failed.
    #[error("the operating system's random number generator failed: {source}")]
    Randomness {
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A program could not be started.
    #[error("could not run {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// `initdb` failed.
    #[error("initdb failed ({status}); its output ends with:\n{output}")]
    Initdb {
        /// Its exit status.
        status: ExitStatus,
        /// The end of its output.
        output: String,
    },

    /// The postmaster exited before accepting connections.
    #[error("PostgreSQL exited during startup ({status}); the end of {}:\n{tail}", log.display())]
    ExitedDuringStartup {
        /// Its exit status.
        status: ExitStatus,
        /// The server log.
        log: PathBuf,
        /// The end of the server log.
        tail: String,
    },

    /// The postmaster did not accept connections in time.
    #[error(
        "PostgreSQL (pid {pid}) did not accept connections within {secs} s (last error: \
         {last_error}); the end of {}:\n{tail}",
        log.display()
    )]
    StartTimeout {
        /// The postmaster's pid.
        pid: u32,
        /// How long it was given.
        secs: u64,
        /// The last connection error.
        last_error: String,
        /// The server log.
        log: PathBuf,
        /// The end of the server log.
        tail: String,
    },

    /// The server refused the stored credentials.
    #[error(
        "PostgreSQL rejected the login of `{role}` ({detail}): the password in {} may no longer \
         match the cluster; restore the secrets directory from the same backup as the cluster",
        path.display()
    )]
    LoginRejected {
        /// The role.
        role: String,
        /// The server's message.
        detail: String,
        /// The role's password file.
        path: PathBuf,
    },

    /// A bootstrap statement failed.
    #[error("database step `{step}` failed: {source}")]
    Sql {
        /// What was being done.
        step: &'static str,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },

    /// Another process serves this data directory.
    #[error(
        "another Chartroom process is already serving {} (it holds {}): stop it first, or use a \
         different data directory",
        data_dir.display(),
        lock.display()
    )]
    Busy {
        /// The data directory.
        data_dir: PathBuf,
        /// The lock file held by the other process.
        lock: PathBuf,
    },

    /// Another process held `cluster.lock` for too long.
    #[error(
        "waited {secs} s for {} held by another process that is starting or stopping this \
         cluster: check for a hung Chartroom process (`fuser {}`)",
        lock.display(),
        lock.display()
    )]
    LockTimeout {
        /// The lock file.
        lock: PathBuf,
        /// How long we waited.
        secs: u64,
    },

    /// A signal could not be sent.
    #[error("could not send {signal} to PostgreSQL (pid {pid}): {source}")]
    Signal {
        /// The signal.
        signal: nix::sys::signal::Signal,
        /// The postmaster's pid.
        pid: u32,
        /// The cause.
        #[source]
        source: nix::Error,
    },

    /// A pid could not be signalled safely (0, 1 or out of range).
    #[error("refusing to signal pid {pid}: it is not a postmaster's process id")]
    InvalidPid {
        /// The pid.
        pid: u32,
    },

    /// Waiting for the postmaster failed.
    #[error("could not wait for PostgreSQL (pid {pid}): {source}")]
    Wait {
        /// The postmaster's pid.
        pid: u32,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The postmaster survived `SIGINT`, `SIGQUIT` and `SIGKILL`.
    #[error(
        "PostgreSQL (pid {pid}) did not exit after SIGINT, SIGQUIT and SIGKILL: inspect it with \
         `ps -o pid,stat,cmd -p {pid}` (a process stuck in uninterruptible IO shows state D)"
    )]
    StopTimeout {
        /// The postmaster's pid.
        pid: u32,
    },

    /// [`super::secure_database`] was given a connection to another database.
    #[error(
        "secure_database must run on a connection to `{expected}`, but the connection is to \
         `{actual}`"
    )]
    WrongDatabase {
        /// The database to secure.
        expected: String,
        /// The database the connection is to.
        actual: String,
    },

    /// An identifier or literal could not be quoted safely (it contains a NUL or is not the
    /// hex password it should be).
    #[error("refusing to put {what} into SQL: {reason}")]
    UnsafeSql {
        /// What was being quoted.
        what: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },

    /// The shared postmaster exited; its status is unknown to a process that did not start it.
    #[error(
        "the shared PostgreSQL (pid {pid}) exited; see the server log under pg/log for why, and \
         start it again with attach_or_start_shared"
    )]
    SharedClusterExited {
        /// The postmaster's pid.
        pid: u32,
    },
}

/// Builds a closure mapping an IO error on `path` to [`EmbeddedError::Io`].
pub(super) fn io(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> EmbeddedError {
    let path = path.to_path_buf();
    move |source| EmbeddedError::Io {
        action,
        path,
        source,
    }
}

/// Builds a closure mapping a SQL error to [`EmbeddedError::Sql`].
pub(super) fn sql(step: &'static str) -> impl FnOnce(sqlx::Error) -> EmbeddedError {
    move |source| EmbeddedError::Sql { step, source }
}
