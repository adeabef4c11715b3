//! The data directory layout, the system user PostgreSQL runs as, permissions and lock files.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::User;

use super::DEFAULT_RUN_AS;
use super::error::{EmbeddedError, io};

/// The port number in the socket's file name (`.s.PGSQL.<port>`). No TCP port is opened; the
/// socket directory is private to the cluster, so the conventional number cannot clash.
pub(super) const PORT: u16 = 5432;

/// Linux `sizeof(sockaddr_un.sun_path)` (108) minus the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// The server log is rotated once at start when it grows past this size.
const LOG_ROTATE_BYTES: u64 = 16 * 1024 * 1024;

/// `pg_hba.conf` as Chartroom writes it on every start: Unix socket, SCRAM, nothing else.
const PG_HBA: &str = "\
# Written by Chartroom on every start; edits are overwritten.
# Unix socket only (no host lines: the server listens on no TCP port), SCRAM-SHA-256 only.
local all all scram-sha-256
";

/// `pg_hba.conf`'s extra line when the cluster also listens on TCP ([`super::TlsListener`]):
/// TLS connections only (a plain TCP connection matches no line and is refused), SCRAM only.
const PG_HBA_HOSTSSL: &str = "hostssl all all all scram-sha-256\n";

/// The server certificate and key files (in PGDATA) of a cluster with a TLS listener.
const TLS_CERT_FILE: &str = "server-tls.crt";
const TLS_KEY_FILE: &str = "server-tls.key";

/// The system user `initdb` and `postgres` run as.
#[derive(Debug, Clone)]
pub(super) struct Identity {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) name: String,
    /// Whether child processes switch to `uid`/`gid` (Chartroom runs as root).
    pub(super) switch_user: bool,
}

/// Root → the configured unprivileged user (default `postgres`); anyone else → themselves.
pub(super) fn resolve_identity(run_as: Option<&str>) -> Result<Identity, EmbeddedError> {
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        let name = run_as.unwrap_or(DEFAULT_RUN_AS);
        let user = User::from_name(name)
            .map_err(|source| EmbeddedError::RunAsUserLookup {
                user: name.to_owned(),
                source,
            })?
            .ok_or_else(|| EmbeddedError::RunAsUserMissing {
                user: name.to_owned(),
            })?;
        if user.uid.is_root() {
            return Err(EmbeddedError::RunAsRoot {
                user: name.to_owned(),
            });
        }
        Ok(Identity {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            name: name.to_owned(),
            switch_user: true,
        })
    } else {
        let name = User::from_uid(euid)
            .ok()
            .flatten()
            .map_or_else(|| euid.to_string(), |user| user.name);
        Ok(Identity {
            uid: euid.as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            name,
            switch_user: false,
        })
    }
}

impl Identity {
    /// Runs `cmd` as this user with a minimal environment (no inherited `PG*` variables) from
    /// `/`. When switching users, std drops supplementary groups before `setuid`.
    pub(super) fn configure(&self, cmd: &mut tokio::process::Command) {
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .current_dir("/");
        if let Some(tz) = std::env::var_os("TZ") {
            cmd.env("TZ", tz);
        }
        if self.switch_user {
            cmd.uid(self.uid).gid(self.gid);
        }
    }

    /// Whether this user (primary group only: supplementary groups are dropped) may search
    /// the directory described by `meta`.
    fn can_traverse(&self, meta: &fs::Metadata) -> bool {
        can_search(self.uid, self.gid, meta.uid(), meta.gid(), meta.mode())
    }
}

/// The kernel's search-permission rule for a process with `uid` and only the group `gid`
/// (ACLs aside): the owner bits apply to the owner, else the group bits to the group, else
/// the other bits.
fn can_search(uid: u32, gid: u32, owner: u32, group: u32, mode: u32) -> bool {
    if uid == 0 {
        true
    } else if owner == uid {
        mode & 0o100 != 0
    } else if group == gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// The paths of one data directory (canonical).
#[derive(Debug, Clone)]
pub(super) struct Layout {
    /// The data directory itself.
    pub(super) root: PathBuf,
    /// `pg/`, the cluster (PGDATA).
    pub(super) pgdata: PathBuf,
    /// `run/`, the Unix socket directory.
    pub(super) socket_dir: PathBuf,
    /// `secrets/`, the role passwords.
    pub(super) secrets_dir: PathBuf,
    /// The port: the number in the socket's name, and the TCP port when `listen` is set.
    pub(super) port: u16,
    /// The TCP address the server also listens on (TLS only), if any.
    pub(super) listen: Option<std::net::IpAddr>,
}

impl Layout {
    /// The layout under an already canonical `data_dir`; touches nothing.
    pub(super) fn at(data_dir: PathBuf) -> Self {
        Self {
            pgdata: data_dir.join("pg"),
            socket_dir: data_dir.join("run"),
            secrets_dir: data_dir.join("secrets"),
            root: data_dir,
            port: PORT,
            listen: None,
        }
    }

    /// Creates the data directory and `run/` and `secrets/` with their modes and owners, after
    /// checking that the PostgreSQL user can reach the data directory.
    /// With `tls`, the cluster also listens on its TCP address and port (TLS only).
    pub(super) fn prepare(
        data_dir: &Path,
        who: &Identity,
        tls: Option<&super::TlsListener>,
    ) -> Result<Self, EmbeddedError> {
        fs::create_dir_all(data_dir).map_err(io("create the data directory", data_dir))?;
        let canonical =
            fs::canonicalize(data_dir).map_err(io("resolve the data directory", data_dir))?;
        let mut layout = Self::at(canonical);
        if let Some(tls) = tls {
            layout.port = tls.port;
            layout.listen = Some(tls.address);
        }
        if who.switch_user {
            layout.check_reachable(who)?;
        }
        layout.check_socket_path()?;
        set_mode(&layout.root, if who.switch_user { 0o711 } else { 0o700 })?;
        ensure_dir(&layout.secrets_dir, 0o700, None)?;
        ensure_dir(&layout.socket_dir, 0o700, Some(who))?;
        Ok(layout)
    }

    /// Every ancestor of the data directory must be searchable by the PostgreSQL user (the data
    /// directory itself is made 0711).
    fn check_reachable(&self, who: &Identity) -> Result<(), EmbeddedError> {
        for dir in self.root.ancestors().skip(1) {
            let meta = fs::metadata(dir).map_err(io("inspect", dir))?;
            if !who.can_traverse(&meta) {
                return Err(EmbeddedError::NotTraversable {
                    user: who.name.clone(),
                    dir: dir.to_path_buf(),
                    mode: meta.mode() & 0o7777,
                    owner: meta.uid(),
                });
            }
        }
        Ok(())
    }

    /// The socket path must fit in `sockaddr_un` and be quotable in
    /// `unix_socket_directories` (a list whose elements may be double-quoted).
    fn check_socket_path(&self) -> Result<(), EmbeddedError> {
        let socket = self.socket_dir.join(format!(".s.PGSQL.{}", self.port));
        let unusable = |reason: String| EmbeddedError::UnusableSocketPath {
            path: socket.clone(),
            reason,
        };
        let len = socket.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(unusable(format!(
                "{len} bytes, more than the {MAX_SOCKET_PATH} a Unix socket path may have"
            )));
        }
        match self.socket_dir.to_str() {
            None => Err(unusable("it is not valid UTF-8".to_owned())),
            Some(text) if text.chars().any(|c| c == '"' || c.is_control()) => Err(unusable(
                "it contains a double quote or a control character".to_owned(),
            )),
            Some(_) => Ok(()),
        }
    }

    /// The server settings passed as `-c` options; the command line overrides
    /// `postgresql.conf` and `postgresql.auto.conf` (so `ALTER SYSTEM` cannot open a TCP port,
    /// weaken password hashing or point at another `pg_hba.conf`). `fsync` and
    /// `synchronous_commit` are deliberately left at their durable defaults.
    pub(super) fn server_settings(&self) -> Vec<String> {
        let mut settings = vec![
            match self.listen {
                None => "listen_addresses=".to_owned(),
                Some(address) => format!("listen_addresses={address}"),
            },
            format!("port={}", self.port),
            // Checked by `check_socket_path`: no double quotes or control characters.
            format!("unix_socket_directories=\"{}\"", self.socket_dir.display()),
            "unix_socket_permissions=0700".to_owned(),
            // Pinned here, so `ALTER SYSTEM SET hba_file = …` cannot swap in other rules.
            format!("hba_file={}", self.pgdata.join("pg_hba.conf").display()),
            "password_encryption=scram-sha-256".to_owned(),
            "logging_collector=off".to_owned(),
            "log_destination=stderr".to_owned(),
        ];
        if self.listen.is_some() {
            settings.extend([
                "ssl=on".to_owned(),
                format!(
                    "ssl_cert_file={}",
                    self.pgdata.join(TLS_CERT_FILE).display()
                ),
                format!("ssl_key_file={}", self.pgdata.join(TLS_KEY_FILE).display()),
                "ssl_min_protocol_version=TLSv1.3".to_owned(),
            ]);
        }
        settings
    }

    pub(super) fn pg_init_dir(&self) -> PathBuf {
        self.root.join("pg.init")
    }

    pub(super) fn pid_file(&self) -> PathBuf {
        self.pgdata.join("postmaster.pid")
    }

    pub(super) fn log_file(&self) -> PathBuf {
        self.pgdata.join("log").join("postgres.log")
    }

    pub(super) fn cluster_lock(&self) -> PathBuf {
        self.root.join("cluster.lock")
    }

    pub(super) fn serve_lock(&self) -> PathBuf {
        self.root.join("serve.lock")
    }

    /// The superuser password file handed to `initdb` (in `run/`, which the PostgreSQL user
    /// can read and nobody else can); removed as soon as `initdb` returns.
    pub(super) fn initdb_pwfile(&self) -> PathBuf {
        self.socket_dir.join("initdb.pwfile")
    }

    pub(super) fn secret_file(&self, role: &str) -> PathBuf {
        self.secrets_dir.join(role)
    }

    /// Whether `pg/` holds a cluster. An empty `pg/` is removed (so `initdb` can create it);
    /// anything else without `PG_VERSION`, or a cluster owned by another user, is an error.
    pub(super) fn cluster_exists(&self, who: &Identity) -> Result<bool, EmbeddedError> {
        let meta = match fs::symlink_metadata(&self.pgdata) {
            Ok(meta) => meta,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(io("inspect", &self.pgdata)(source)),
        };
        let not_a_cluster = || EmbeddedError::NotACluster {
            dir: self.pgdata.clone(),
        };
        if !meta.is_dir() {
            return Err(not_a_cluster());
        }
        if self.pgdata.join("PG_VERSION").is_file() {
            if meta.uid() != who.uid {
                return Err(EmbeddedError::WrongOwner {
                    dir: self.pgdata.clone(),
                    found: meta.uid(),
                    user: who.name.clone(),
                    expected: who.uid,
                });
            }
            return Ok(true);
        }
        let mut entries = fs::read_dir(&self.pgdata).map_err(io("list", &self.pgdata))?;
        if entries.next().is_some() {
            return Err(not_a_cluster());
        }
        fs::remove_dir(&self.pgdata).map_err(io("remove the empty directory", &self.pgdata))?;
        Ok(false)
    }

    /// The major version recorded in `pg/PG_VERSION`.
    pub(super) fn cluster_major_version(&self) -> Result<u32, EmbeddedError> {
        let path = self.pgdata.join("PG_VERSION");
        let text = fs::read_to_string(&path).map_err(io("read", &path))?;
        text.trim().parse().map_err(|_| EmbeddedError::NotACluster {
            dir: self.pgdata.clone(),
        })
    }

    /// Rewrites `pg_hba.conf` (atomically) to allow SCRAM over the Unix socket only, and over
    /// TLS when the cluster has a TCP listener.
    pub(super) fn write_hba(&self, who: &Identity) -> Result<(), EmbeddedError> {
        let mut rules = PG_HBA.to_owned();
        if self.listen.is_some() {
            rules.push_str(PG_HBA_HOSTSSL);
        }
        self.replace_private_file("pg_hba.conf", rules.as_bytes(), who)
    }

    /// Writes the TLS listener's certificate chain and key into PGDATA (0600, owned by the
    /// cluster's user, as PostgreSQL requires of a key file).
    pub(super) fn write_tls_files(
        &self,
        who: &Identity,
        tls: &super::TlsListener,
    ) -> Result<(), EmbeddedError> {
        self.replace_private_file(TLS_CERT_FILE, tls.cert_pem.as_bytes(), who)?;
        self.replace_private_file(TLS_KEY_FILE, tls.key_pem.as_bytes(), who)
    }

    /// Replaces `name` in PGDATA atomically with a private file holding `contents`.
    fn replace_private_file(
        &self,
        name: &str,
        contents: &[u8],
        who: &Identity,
    ) -> Result<(), EmbeddedError> {
        let target = self.pgdata.join(name);
        let tmp = self.pgdata.join(format!("{name}.chartroom-tmp"));
        remove_file_if_exists(&tmp)?;
        write_private_file(&tmp, contents, Some(who))?;
        rename(&tmp, &target)
    }

    /// Opens the server log for appending (rotating it once if it is large); returns it and
    /// its length before this start, so the caller can show what this start logged.
    pub(super) fn open_log(&self, who: &Identity) -> Result<(File, u64), EmbeddedError> {
        let path = self.log_file();
        if let Some(dir) = path.parent() {
            ensure_dir(dir, 0o700, Some(who))?;
        }
        if fs::metadata(&path).is_ok_and(|meta| meta.len() > LOG_ROTATE_BYTES) {
            rename(&path, &path.with_extension("log.1"))?;
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io("open the server log", &path))?;
        chown_to(&path, who)?;
        let len = file
            .metadata()
            .map_err(io("inspect the server log", &path))?
            .len();
        Ok((file, len))
    }

    /// The current length of the server log (0 if it cannot be read).
    pub(super) fn log_len(&self) -> u64 {
        fs::metadata(self.log_file()).map_or(0, |meta| meta.len())
    }
}

/// Creates `dir` if missing, hands it to `owner` (when switching users) and sets `mode`.
pub(super) fn ensure_dir(
    dir: &Path,
    mode: u32,
    owner: Option<&Identity>,
) -> Result<(), EmbeddedError> {
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(error) if error.kind() == ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(source) => return Err(io("create the directory", dir)(source)),
    }
    if let Some(who) = owner {
        chown_to(dir, who)?;
    }
    set_mode(dir, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), EmbeddedError> {
    let current = fs::metadata(path).map_err(io("inspect", path))?;
    if current.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(io("set the permissions of", path))?;
    }
    Ok(())
}

/// Hands `path` to the PostgreSQL user when switching users; otherwise it is already ours.
fn chown_to(path: &Path, who: &Identity) -> Result<(), EmbeddedError> {
    if who.switch_user {
        std::os::unix::fs::chown(path, Some(who.uid), Some(who.gid))
            .map_err(io("change the owner of", path))?;
    }
    Ok(())
}

/// Writes a new 0600 file (failing if it exists), syncs it and hands it to `owner`.
pub(super) fn write_private_file(
    path: &Path,
    contents: &[u8],
    owner: Option<&Identity>,
) -> Result<(), EmbeddedError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("create", path))?;
    if let Some(who) = owner {
        chown_to(path, who)?;
    }
    file.write_all(contents).map_err(io("write", path))?;
    file.sync_all().map_err(io("sync", path))
}

pub(super) fn rename(from: &Path, to: &Path) -> Result<(), EmbeddedError> {
    fs::rename(from, to).map_err(io("rename into place", from))
}

/// Makes a rename or creation inside `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), EmbeddedError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io("sync", dir))
}

pub(super) fn remove_file_if_exists(path: &Path) -> Result<(), EmbeddedError> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != ErrorKind::NotFound => Err(io("remove", path)(error)),
        _ => Ok(()),
    }
}

pub(super) fn remove_dir_all_if_exists(path: &Path) -> Result<(), EmbeddedError> {
    match fs::remove_dir_all(path) {
        Err(error) if error.kind() != ErrorKind::NotFound => Err(io("remove", path)(error)),
        _ => Ok(()),
    }
}

/// Opens (creating, 0600) a lock file. `std` opens it close-on-exec, so a postmaster started
/// while it is held does not inherit the lock.
pub(super) fn open_lock_file(path: &Path) -> Result<File, EmbeddedError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io("open the lock file", path))
}

/// Takes an exclusive lock on `path` if it is free; `None` if another handle holds it. The
/// lock lasts as long as the returned file is open (the kernel releases it when the process
/// dies, however it dies).
pub(super) fn try_lock(path: &Path) -> Result<Option<File>, EmbeddedError> {
    let file = open_lock_file(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(source)) => Err(io("lock", path)(source)),
    }
}

/// Takes a shared lock on `path` if no exclusive lock is held; `None` otherwise.
pub(super) fn try_lock_shared(path: &Path) -> Result<Option<File>, EmbeddedError> {
    let file = open_lock_file(path)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(source)) => Err(io("lock", path)(source)),
    }
}

/// Takes an exclusive lock on `path`, waiting (without blocking the runtime) up to `timeout`.
pub(super) async fn lock(path: &Path, timeout: Duration) -> Result<File, EmbeddedError> {
    let began = Instant::now();
    let mut delay = Duration::from_millis(5);
    loop {
        if let Some(file) = try_lock(path)? {
            return Ok(file);
        }
        if began.elapsed() >= timeout {
            return Err(EmbeddedError::LockTimeout {
                lock: path.to_path_buf(),
                secs: timeout.as_secs(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_follows_owner_then_group_then_other() {
        // (owner, group, mode) of a directory, as seen by uid 101 / gid 104.
        let cases = [
            ((101, 0), 0o700, true),
            ((101, 0), 0o600, false),
            ((0, 104), 0o710, true),
            ((0, 104), 0o701, false),
            ((0, 0), 0o711, true),
            ((0, 0), 0o700, false),
            ((0, 0), 0o770, false),
        ];
        for ((owner, group), mode, expected) in cases {
            assert_eq!(
                can_search(101, 104, owner, group, mode),
                expected,
                "owner {owner} group {group} mode {mode:o}"
            );
        }
        assert!(can_search(0, 0, 5, 5, 0o000), "root searches everything");
    }

    // The embedded default opens no TCP port; a TLS listener adds TLS 1.3 and hostssl only.
    #[test]
    fn a_tcp_port_only_with_a_tls_listener() {
        let mut layout = Layout::at(PathBuf::from("/srv/chartroom"));
        let socket_only = layout.server_settings();
        assert!(socket_only.contains(&"listen_addresses=".to_owned()));
        assert!(socket_only.contains(&format!("port={PORT}")));
        assert!(!socket_only.iter().any(|s| s.starts_with("ssl")));

        layout.port = 6543;
        layout.listen = Some(std::net::IpAddr::from([127, 0, 0, 1]));
        let tls = layout.server_settings();
        for expected in [
            "listen_addresses=127.0.0.1",
            "port=6543",
            "ssl=on",
            "ssl_min_protocol_version=TLSv1.3",
            "ssl_key_file=/srv/chartroom/pg/server-tls.key",
        ] {
            assert!(tls.contains(&expected.to_owned()), "{expected}: {tls:?}");
        }
        assert!(PG_HBA_HOSTSSL.starts_with("hostssl "));
        assert!(!PG_HBA.lines().any(|l| l.starts_with("host")));
    }
}
