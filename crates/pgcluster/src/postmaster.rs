//! Recognising, waiting for and stopping postmasters.

use std::fs;
use std::io::{ErrorKind, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};
use tokio::process::Child;

use super::error::{EmbeddedError, io};
use super::layout::{self, Layout};
use super::{FAST_SHUTDOWN_TIMEOUT, IMMEDIATE_SHUTDOWN_TIMEOUT, KILL_TIMEOUT};

/// How many lines of a log an error message shows.
pub(super) const TAIL_LINES: usize = 30;

/// The shutdown ladder: fast shutdown, then immediate shutdown, then kill.
const LADDER: [(Signal, Duration); 3] = [
    (Signal::SIGINT, FAST_SHUTDOWN_TIMEOUT),
    (Signal::SIGQUIT, IMMEDIATE_SHUTDOWN_TIMEOUT),
    (Signal::SIGKILL, KILL_TIMEOUT),
];

/// The postmaster named by `pg/postmaster.pid`, if it is alive and really a postmaster on
/// this data directory.
pub(super) fn live_postmaster(layout: &Layout) -> Option<u32> {
    let text = fs::read_to_string(layout.pid_file()).ok()?;
    let pid: u32 = text.lines().next()?.trim().parse().ok()?;
    is_postmaster_of(pid, &layout.pgdata).then_some(pid)
}

/// Whether `pid` is a live (not zombie) `postgres` process serving `pg_dir`.
///
/// A postmaster changes its working directory to its data directory, so `/proc/<pid>/cwd` is
/// compared with `pg_dir`; where that link cannot be read (another user's process, without
/// `CAP_SYS_PTRACE`) its command line must contain `-D <pg_dir>`, as Chartroom starts it. A
/// PID reused by any other process fails these checks.
pub(super) fn is_postmaster_of(pid: u32, pg_dir: &Path) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // `pid (comm) state …`; comm may contain spaces and parentheses, so split at the last ')'.
    let Some((head, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let state = rest.trim_start().chars().next();
    if matches!(state, Some('Z' | 'X' | 'x') | None) {
        return false;
    }
    let comm = head.split_once('(').map_or("", |(_, comm)| comm);
    if comm != "postgres" && comm != "postmaster" {
        return false;
    }
    match fs::read_link(proc_dir.join("cwd")) {
        Ok(cwd) => cwd == pg_dir,
        Err(error) if error.kind() == ErrorKind::PermissionDenied => {
            let Ok(cmdline) = fs::read(proc_dir.join("cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let dir = pg_dir.as_os_str().as_encoded_bytes();
            args.windows(2)
                .any(|pair| matches!(pair, [flag, value] if *flag == b"-D" && *value == dir))
        }
        Err(_) => false,
    }
}

/// Removes what a dead postmaster left behind: `pg/postmaster.pid` (PostgreSQL would refuse
/// to start if its PID now belongs to another live process) and everything in `run/` (the
/// socket, its lock file, which has the same problem, and a stray `initdb` password file).
/// Call only with `cluster.lock` held and no live postmaster on the data directory.
pub(super) fn clear_stale_runtime_files(layout: &Layout) -> Result<(), EmbeddedError> {
    let pid_file = layout.pid_file();
    if pid_file.exists() {
        tracing::info!(pid_file = %pid_file.display(), "removing a stale postmaster.pid");
        layout::remove_file_if_exists(&pid_file)?;
    }
    let entries = fs::read_dir(&layout.socket_dir).map_err(io("list", &layout.socket_dir))?;
    for entry in entries {
        let entry = entry.map_err(io("list", &layout.socket_dir))?;
        layout::remove_file_if_exists(&entry.path())?;
    }
    Ok(())
}

/// Waits until no process of a dead postmaster still works in `pgdata` (its backends and
/// auxiliary processes exit soon after it dies, but until they do they keep its shared memory
/// attached, and a new postmaster would refuse to start). Kills stragglers after a while.
/// Call only when no live postmaster serves `pgdata`.
pub(super) async fn await_leftover_processes(pgdata: &Path) {
    let began = Instant::now();
    let mut delay = Duration::from_millis(10);
    let mut killed = false;
    loop {
        let leftovers = processes_in(pgdata);
        if leftovers.is_empty() {
            return;
        }
        let waited = began.elapsed();
        if waited >= LEFTOVER_GRACE && !killed {
            tracing::warn!(
                ?leftovers,
                "processes of a dead postmaster linger; killing them"
            );
            for pid in &leftovers {
                signal_quietly(*pid, Signal::SIGKILL);
            }
            killed = true;
        } else if waited >= LEFTOVER_GRACE + KILL_TIMEOUT {
            tracing::warn!(
                ?leftovers,
                "processes of a dead postmaster survived SIGKILL"
            );
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// How long the processes of a dead postmaster get to notice and exit on their own.
const LEFTOVER_GRACE: Duration = Duration::from_secs(5);

/// Live `postgres` processes whose working directory is `pgdata`.
fn processes_in(pgdata: &Path) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let proc_dir = PathBuf::from(format!("/proc/{pid}"));
            fs::read_to_string(proc_dir.join("comm"))
                .is_ok_and(|comm| matches!(comm.trim_end(), "postgres" | "postmaster"))
                && fs::read_link(proc_dir.join("cwd")).is_ok_and(|cwd| cwd == pgdata)
        })
        .collect()
}

/// Sends `signal` to `pid`; `Ok(false)` if there is no such process.
fn send(pid: u32, signal: Signal) -> Result<bool, EmbeddedError> {
    let raw = i32::try_from(pid)
        .ok()
        .filter(|raw| *raw > 1)
        .ok_or(EmbeddedError::InvalidPid { pid })?;
    match kill(Pid::from_raw(raw), signal) {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(source) => Err(EmbeddedError::Signal {
            signal,
            pid,
            source,
        }),
    }
}

/// Sends `signal`, logging instead of failing (for `Drop`).
pub(super) fn signal_quietly(pid: u32, signal: Signal) {
    if let Err(error) = send(pid, signal) {
        tracing::warn!(%error, "could not signal PostgreSQL");
    }
}

/// Stops a postmaster this process started, climbing the shutdown ladder.
pub(super) async fn stop_child(child: &mut Child, pid: u32) -> Result<(), EmbeddedError> {
    let wait_error = |source| EmbeddedError::Wait { pid, source };
    for (signal, timeout) in LADDER {
        if child.try_wait().map_err(wait_error)?.is_some() {
            return Ok(());
        }
        if signal != Signal::SIGINT {
            tracing::warn!(pid, %signal, "PostgreSQL did not stop in time; escalating");
        }
        send(pid, signal)?;
        if let Ok(status) = tokio::time::timeout(timeout, child.wait()).await {
            let status = status.map_err(wait_error)?;
            tracing::info!(pid, %status, "PostgreSQL stopped");
            return Ok(());
        }
    }
    Err(EmbeddedError::StopTimeout { pid })
}

/// Stops a postmaster this process did not start (an orphan of an earlier run, or a shared
/// cluster), climbing the shutdown ladder and polling until it is gone.
pub(super) async fn stop_external(pid: u32, pg_dir: &Path) -> Result<(), EmbeddedError> {
    for (signal, timeout) in LADDER {
        if !is_postmaster_of(pid, pg_dir) {
            return Ok(());
        }
        if signal != Signal::SIGINT {
            tracing::warn!(pid, %signal, "PostgreSQL did not stop in time; escalating");
        }
        if !send(pid, signal)? {
            return Ok(());
        }
        let began = Instant::now();
        let mut delay = Duration::from_millis(10);
        while is_postmaster_of(pid, pg_dir) {
            if began.elapsed() >= timeout {
                break;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(200));
        }
        if !is_postmaster_of(pid, pg_dir) {
            tracing::info!(pid, "PostgreSQL stopped");
            return Ok(());
        }
    }
    Err(EmbeddedError::StopTimeout { pid })
}

/// What [`wait_until_ready`] watches and reports.
pub(super) struct ReadyWatch {
    pub(super) pid: u32,
    pub(super) log_file: PathBuf,
    pub(super) log_offset: u64,
    pub(super) secret_file: PathBuf,
    pub(super) timeout: Duration,
}

/// Connects with `options` until the server accepts, with a short backoff, for at most
/// `watch.timeout`. Fails early, with the end of the server log, if `child` exits; and at once
/// if the server rejects the credentials (retrying cannot help).
pub(super) async fn wait_until_ready(
    options: &PgConnectOptions,
    watch: &ReadyWatch,
    mut child: Option<&mut Child>,
) -> Result<PgConnection, EmbeddedError> {
    let began = Instant::now();
    let mut delay = Duration::from_millis(10);
    loop {
        let last_error = match PgConnection::connect_with(options).await {
            Ok(conn) => return Ok(conn),
            Err(sqlx::Error::Database(error))
                if matches!(error.code().as_deref(), Some("28P01" | "28000")) =>
            {
                return Err(EmbeddedError::LoginRejected {
                    role: options.get_username().to_owned(),
                    detail: error.message().to_owned(),
                    path: watch.secret_file.clone(),
                });
            }
            Err(error) => error.to_string(),
        };
        if let Some(child) = child.as_deref_mut()
            && let Some(status) = child.try_wait().map_err(|source| EmbeddedError::Wait {
                pid: watch.pid,
                source,
            })?
        {
            return Err(EmbeddedError::ExitedDuringStartup {
                status,
                log: watch.log_file.clone(),
                tail: log_tail(&watch.log_file, watch.log_offset),
            });
        }
        if began.elapsed() >= watch.timeout {
            return Err(EmbeddedError::StartTimeout {
                pid: watch.pid,
                secs: watch.timeout.as_secs(),
                last_error,
                log: watch.log_file.clone(),
                tail: log_tail(&watch.log_file, watch.log_offset),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// The last [`TAIL_LINES`] lines written to `path` after `offset`.
fn log_tail(path: &Path, offset: u64) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = fs::File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(if offset <= len { offset } else { 0 }))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => last_lines(&text, TAIL_LINES),
        Err(error) => format!("(the log could not be read: {error})"),
    }
}

/// The last `n` lines of `text`.
pub(super) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(n);
    lines.into_iter().skip(skip).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
        assert_eq!(last_lines("", 5), "");
    }

    #[test]
    fn this_process_is_not_a_postmaster() {
        let cwd = std::env::current_dir().unwrap();
        assert!(!is_postmaster_of(std::process::id(), &cwd));
        assert!(!is_postmaster_of(u32::MAX, &cwd));
    }

    #[test]
    fn refuses_to_signal_process_groups_or_init() {
        for pid in [0, 1, u32::MAX] {
            assert!(matches!(
                send(pid, Signal::SIGINT),
                Err(EmbeddedError::InvalidPid { .. })
            ));
        }
    }
}
