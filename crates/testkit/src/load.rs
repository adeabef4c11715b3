//! A realistic mixed load against the real binary: `chartroom demo` started as a child process
//! on a fresh data directory (its own embedded PostgreSQL), driven over HTTPS by concurrent
//! clients playing one practice's staff:
//!
//! - **reception** (3 clients in 8): the schedule's day and week views, patient search by name
//!   prefix and by date of birth, a patient read, booking an appointment and cancelling it;
//! - **clinicians** (4 in 8): reading notes and a patient's note list, saving their own draft
//!   (`If-Match`, as the web app's autosave does), perio finals into their own exam (a new
//!   exam every [`FINALS_PER_EXAM`]), a patient read;
//! - **the owner** (1 in 8): the audit report, the latest page and one patient's events.
//!
//! Everything is set up through the API first (patients created by reception, each booked
//! with the clinician so that they are on the clinician's care team; a draft note on some).
//! Each phase (a client count) runs a warm-up, then `duration` measured: throughput,
//! p50/p95/p99 overall and per kind of request, errors (any status other than the expected
//! one, or a transport error), the server's resident memory at the start and end, and a
//! timeline of windows to show latency and memory settling. After the last phase the server is
//! stopped with SIGTERM and `chartroom audit verify` checks the log it wrote.
//!
//! One session per role, shared by that role's clients (TOTP codes are accepted once per
//! step, so a user signs in once); the session's activity update skips a locked row, so
//! sharing adds no queueing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Duration as Days, TimeZone as _, Utc};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// Perio finals per exam before a clinician client starts a new one (a full mouth is 64
/// triplets; a new exam keeps the cursor inside the mouth).
pub const FINALS_PER_EXAM: u64 = 48;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The `chartroom` binary.
    pub server: PathBuf,
    /// Client counts, one phase each, in order, on the same server.
    pub clients: Vec<usize>,
    /// Measured time per phase.
    pub duration: Duration,
    /// Unmeasured warm-up before each phase.
    pub warmup: Duration,
    /// Patients created (and booked) before the load.
    pub patients: usize,
    /// Timeline window (and memory sample) length.
    pub window: Duration,
}

/// A kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Reception: the appointments of one day.
    ScheduleDay,
    /// Reception: the appointments of a week.
    ScheduleWeek,
    /// Reception: patient search by name prefix.
    SearchName,
    /// Reception: patient search by date of birth.
    SearchDob,
    /// Reception or clinician: one patient by id.
    PatientRead,
    /// Reception: a new appointment.
    Book,
    /// Reception: cancelling the appointment it booked.
    Cancel,
    /// Clinician: one note.
    NoteRead,
    /// Clinician: a patient's notes.
    NoteList,
    /// Clinician: saving its draft (`If-Match`).
    NoteSave,
    /// Clinician: a new perio exam.
    PerioExam,
    /// Clinician: one perio final.
    PerioFinal,
    /// Owner: the audit report.
    AuditReport,
}

impl Kind {
    const ALL: [Kind; 13] = [
        Kind::ScheduleDay,
        Kind::ScheduleWeek,
        Kind::SearchName,
        Kind::SearchDob,
        Kind::PatientRead,
        Kind::Book,
        Kind::Cancel,
        Kind::NoteRead,
        Kind::NoteList,
        Kind::NoteSave,
        Kind::PerioExam,
        Kind::PerioFinal,
        Kind::AuditReport,
    ];

    /// Its name in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::ScheduleDay => "schedule day",
            Kind::ScheduleWeek => "schedule week",
            Kind::SearchName => "search by name",
            Kind::SearchDob => "search by birth date",
            Kind::PatientRead => "patient read",
            Kind::Book => "book appointment",
            Kind::Cancel => "cancel appointment",
            Kind::NoteRead => "note read",
            Kind::NoteList => "patient's notes",
            Kind::NoteSave => "note save",
            Kind::PerioExam => "perio exam create",
            Kind::PerioFinal => "perio final",
            Kind::AuditReport => "audit report",
        }
    }

    fn index(self) -> usize {
        Kind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// The value at quantile `q` (0–1, nearest rank) of `sorted`; `None` if it is empty.
#[must_use]
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into the sample"
    )]
    let i = (sorted.len().checked_sub(1)? as f64 * q.clamp(0.0, 1.0)).round() as usize;
    sorted.get(i).copied()
}

/// Latency figures of a set of requests, in microseconds.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Requests answered as expected.
    pub ok: u64,
    /// Requests that were not.
    pub errors: u64,
    /// Median latency.
    pub p50_us: u64,
    /// 95th percentile.
    pub p95_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest.
    pub max_us: u64,
}

impl Stats {
    fn of(lat: &mut [u32], errors: u64) -> Self {
        lat.sort_unstable();
        let at = |q: f64| quantile(lat, q).map_or(0, u64::from);
        Self {
            ok: lat.len() as u64,
            errors,
            p50_us: at(0.50),
            p95_us: at(0.95),
            p99_us: at(0.99),
            max_us: lat.last().copied().map_or(0, u64::from),
        }
    }
}

/// One timeline window of a phase.
#[derive(Debug, Clone)]
pub struct Window {
    /// Seconds since the phase's measurement began, at the window's end.
    pub end_s: u64,
    /// Requests per second in the window.
    pub rate: f64,
    /// 99th percentile latency in the window.
    pub p99_us: u64,
    /// The server's resident memory at the window's end (KiB; 0 if unreadable).
    pub rss_kib: u64,
}

/// One phase's figures.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Concurrent clients.
    pub clients: usize,
    /// Measured time.
    pub elapsed: Duration,
    /// All requests.
    pub overall: Stats,
    /// Per kind, in [`Kind`] order (kinds not sent are left out).
    pub kinds: Vec<(Kind, Stats)>,
    /// The first few errors (kind, status and error code only: no body text).
    pub error_samples: Vec<String>,
    /// The server's resident memory when measurement began and when it ended (KiB).
    pub rss_start_kib: u64,
    /// See [`Phase::rss_start_kib`].
    pub rss_end_kib: u64,
    /// The timeline.
    pub windows: Vec<Window>,
}

impl Phase {
    /// Requests per second over the phase.
    #[must_use]
    pub fn throughput(&self) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
        let n = (self.overall.ok + self.overall.errors) as f64;
        n / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The run's figures.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// Patients set up before the load.
    pub patients: usize,
    /// Whether `chartroom audit verify` passed after the server stopped.
    pub audit_verified: bool,
    /// What `audit verify` printed (its summary: counts, no PHI).
    pub audit_verify_output: String,
    /// Whether the server exited cleanly on SIGTERM.
    pub clean_stop: bool,
}

#[allow(clippy::cast_precision_loss, reason = "microseconds")]
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.phases {
            writeln!(
                f,
                "{} clients, {:.0} s: {:.0} requests/s, {} requests, {} errors; server RSS {} MiB at start, {} MiB at end",
                p.clients,
                p.elapsed.as_secs_f64(),
                p.throughput(),
                p.overall.ok + p.overall.errors,
                p.overall.errors,
                p.rss_start_kib / 1024,
                p.rss_end_kib / 1024
            )?;
            writeln!(
                f,
                "  {:<22} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}",
                "kind", "requests", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"
            )?;
            let rows = std::iter::once(("all", &p.overall))
                .chain(p.kinds.iter().map(|(k, s)| (k.name(), s)));
            for (name, s) in rows {
                writeln!(
                    f,
                    "  {name:<22} {:>9} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                    s.ok + s.errors,
                    s.errors,
                    ms(s.p50_us),
                    ms(s.p95_us),
                    ms(s.p99_us),
                    ms(s.max_us)
                )?;
            }
            writeln!(f, "  timeline: (s: requests/s, p99 ms, RSS MiB)")?;
            let line: Vec<String> = p
                .windows
                .iter()
                .map(|w| {
                    format!(
                        "{}: {:.0}, {:.1}, {}",
                        w.end_s,
                        w.rate,
                        ms(w.p99_us),
                        w.rss_kib / 1024
                    )
                })
                .collect();
            for chunk in line.chunks(5) {
                writeln!(f, "    {}", chunk.join(" | "))?;
            }
            for e in &p.error_samples {
                writeln!(f, "  error: {e}")?;
            }
        }
        writeln!(
            f,
            "server stopped {}; audit verify after the run: {}",
            if self.clean_stop {
                "cleanly"
            } else {
                "NOT cleanly"
            },
            if self.audit_verified {
                "passed"
            } else {
                "FAILED"
            }
        )
    }
}

/// The server under load.
struct Server {
    child: Child,
    base: String,
    dir: PathBuf,
    http: reqwest::Client,
}

impl Server {
    /// Starts `chartroom demo` on a fresh data directory and waits until it answers.
    async fn start(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(dir.with_extension("log"))?;
        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(dir)
            // The load plays a whole front desk on one session: far past a member's quota
            // on patient lookups, which is not what is measured.
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--lookup-quota",
                "100000000",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().context("no standard output")?;
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(Duration::from_secs(300), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("Chartroom listening on ") {
                    return Ok(rest.trim().to_owned());
                }
            }
            bail!(
                "the server exited before listening (its log: {})",
                dir.with_extension("log").display()
            )
        })
        .await
        .context("the server did not listen within 5 minutes")??;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let pem = std::fs::read(dir.join("secrets/tls-cert.pem"))?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            child,
            base,
            dir: dir.to_path_buf(),
            http,
        })
    }

    /// The server's resident memory (KiB), 0 if it cannot be read.
    fn rss_kib(&self) -> u64 {
        self.child.id().map_or(0, rss_kib)
    }

    /// Password, then TOTP enrollment (the demo's accounts have no second factor yet): a full
    /// session token for the demo account `email`.
    async fn sign_in(&self, email: &str) -> anyhow::Result<String> {
        let creds: Value =
            serde_json::from_slice(&std::fs::read(self.dir.join("demo-credentials.json"))?)?;
        let account = creds
            .as_array()
            .and_then(|a| a.iter().find(|a| a["email"] == email))
            .with_context(|| format!("no demo account {email}"))?;
        let login = self
            .json(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(&json!({"email": account["email"], "password": account["password"]})),
                200,
            )
            .await?;
        let token = text(&login, "token")?;
        anyhow::ensure!(
            login["next"] == "enroll_second_factor",
            "unexpected sign-in step {}",
            login["next"]
        );
        let enroll = self
            .json(
                reqwest::Method::POST,
                "/api/v1/auth/mfa/totp",
                Some(&token),
                None,
                200,
            )
            .await?;
        let key = server::identity::totp::TotpKey::from_uri(&text(&enroll, "otpauth_uri")?)
            .map_err(|e| anyhow::anyhow!("otpauth URI: {e:?}"))?;
        let done = self
            .json(
                reqwest::Method::POST,
                "/api/v1/auth/mfa/totp/confirm",
                Some(&token),
                Some(&json!({"code": key.code_at(Utc::now())})),
                200,
            )
            .await?;
        text(&done, "token")
    }

    /// A setup request: the JSON answer, or an error naming the path and status.
    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        expect: u16,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(
            status == expect,
            "{path}: status {status} ({})",
            body["code"]
        );
        Ok(body)
    }

    /// SIGTERM, then the exit status (`true`: clean).
    async fn stop(mut self) -> bool {
        let Some(pid) = self.child.id() else {
            return false;
        };
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        sent && tokio::time::timeout(Duration::from_secs(120), self.child.wait())
            .await
            .is_ok_and(|s| s.is_ok_and(|s| s.success()))
    }
}

fn text(v: &Value, field: &str) -> anyhow::Result<String> {
    v[field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no {field} in the answer"))
}

/// `pid`'s resident memory (KiB) from `/proc`, 0 if it cannot be read.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A patient made in setup.
struct SetupPatient {
    id: String,
    family_name: String,
    date_of_birth: String,
}

/// What every client shares.
struct World {
    http: reqwest::Client,
    base: String,
    practice: String,
    reception: String,
    clinician: String,
    owner: String,
    clinician_id: String,
    patients: Vec<SetupPatient>,
    notes: Vec<String>,
    /// The first day with setup appointments (midnight UTC).
    first_day: DateTime<Utc>,
    /// The next free half-hour slot for a booking (slots from setup come first).
    next_slot: AtomicU64,
}

impl World {
    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/practices/{}/{path}", self.base, self.practice)
    }

    /// The start of half-hour slot `k`: 16 a day from 08:00 UTC.
    fn slot(&self, k: u64) -> DateTime<Utc> {
        let day = i64::try_from(k / 16).unwrap_or(0);
        let half_hours = i64::try_from(k % 16).unwrap_or(0);
        self.first_day + Days::days(day) + Days::hours(8) + Days::minutes(30 * half_hours)
    }
}

/// One request's outcome as recorded by a client.
#[derive(Clone, Copy)]
struct Sample {
    kind: Kind,
    /// Milliseconds since the phase's measurement began.
    at_ms: u32,
    latency_us: u32,
    ok: bool,
}

/// A client's own state between its requests.
#[derive(Default)]
struct ClientState {
    /// The draft note it saves and its last `ETag`.
    draft: Option<(String, String)>,
    /// Its perio exam and how many finals went in.
    exam: Option<(String, u64)>,
    /// The appointment it booked and has not cancelled yet.
    booked: Option<String>,
}

/// A request that went wrong: kind, status and error code (never body text).
struct Failure(String);

/// The request a client sends next and the status it expects.
async fn send(
    req: reqwest::RequestBuilder,
    expect: u16,
) -> Result<(Value, Option<String>), Failure> {
    let res = req
        .send()
        .await
        .map_err(|e| Failure(format!("transport: {}", e.without_url())))?;
    let status = res.status().as_u16();
    let etag = res
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = res.json().await.map_err(|e| {
        Failure(format!(
            "status {status}, unreadable body: {}",
            e.without_url()
        ))
    })?;
    if status != expect {
        return Err(Failure(format!("status {status} ({})", body["code"])));
    }
    Ok((body, etag))
}

/// The role a client plays, by its number: 3 reception, 4 clinicians, 1 owner in every 8.
fn role_of(client: usize) -> Role {
    match client % 8 {
        0 | 3 | 6 => Role::Reception,
        7 => Role::Owner,
        _ => Role::Clinician,
    }
}

#[derive(Clone, Copy)]
enum Role {
    Reception,
    Clinician,
    Owner,
}

/// One step of client `c` (its `i`-th): the kind sent and whether it was answered as expected.
async fn step(w: &World, c: usize, i: u64, state: &mut ClientState) -> (Kind, Result<(), Failure>) {
    let pick = usize::try_from(i)
        .unwrap_or(0)
        .wrapping_mul(31)
        .wrapping_add(c * 7);
    let patient = &w.patients[pick % w.patients.len()];
    match role_of(c) {
        Role::Reception => reception_step(w, i, state, patient).await,
        Role::Clinician => clinician_step(w, c, i, state, patient).await,
        Role::Owner => {
            let path = if i.is_multiple_of(2) {
                "audit/events?order=desc&limit=100".to_owned()
            } else {
                format!(
                    "audit/events?order=desc&limit=100&patient_id={}",
                    patient.id
                )
            };
            let req = w.http.get(w.url(&path)).bearer_auth(&w.owner);
            (Kind::AuditReport, send(req, 200).await.map(drop))
        }
    }
}

async fn reception_step(
    w: &World,
    i: u64,
    state: &mut ClientState,
    patient: &SetupPatient,
) -> (Kind, Result<(), Failure>) {
    let token = &w.reception;
    match i % 10 {
        0..=2 => {
            let day = w.first_day + Days::days(i64::try_from(i % 7).unwrap_or(0));
            let url = w.url(&format!(
                "appointments?from={}&to={}",
                rfc3339(day),
                rfc3339(day + Days::days(1))
            ));
            (
                Kind::ScheduleDay,
                send(w.http.get(url).bearer_auth(token), 200)
                    .await
                    .map(drop),
            )
        }
        3 | 4 => {
            let url = w.url(&format!(
                "appointments?from={}&to={}",
                rfc3339(w.first_day),
                rfc3339(w.first_day + Days::days(7))
            ));
            (
                Kind::ScheduleWeek,
                send(w.http.get(url).bearer_auth(token), 200)
                    .await
                    .map(drop),
            )
        }
        5 | 7 => {
            let prefix: String = patient.family_name.chars().take(3).collect();
            let body = json!({"name_prefix": prefix, "limit": 20});
            let req = w
                .http
                .post(w.url("patients/search"))
                .bearer_auth(token)
                .json(&body);
            (Kind::SearchName, send(req, 200).await.map(drop))
        }
        6 => {
            let body = json!({"date_of_birth": patient.date_of_birth});
            let req = w
                .http
                .post(w.url("patients/search"))
                .bearer_auth(token)
                .json(&body);
            (Kind::SearchDob, send(req, 200).await.map(drop))
        }
        8 => {
            let req = w
                .http
                .get(w.url(&format!("patients/{}", patient.id)))
                .bearer_auth(token);
            (Kind::PatientRead, send(req, 200).await.map(drop))
        }
        _ => {
            if let Some(appointment) = state.booked.take() {
                let req = w
                    .http
                    .patch(w.url(&format!("appointments/{appointment}")))
                    .bearer_auth(token)
                    .json(&json!({"status": "cancelled"}));
                return (Kind::Cancel, send(req, 200).await.map(drop));
            }
            let start = w.slot(w.next_slot.fetch_add(1, Ordering::Relaxed));
            let body = json!({
                "patient_id": patient.id,
                "clinician_id": w.clinician_id,
                "starts_at": rfc3339(start),
                "ends_at": rfc3339(start + Days::minutes(30)),
            });
            let req = w
                .http
                .post(w.url("appointments"))
                .bearer_auth(token)
                .json(&body);
            let out = send(req, 201).await.and_then(|(v, _)| {
                state.booked =
                    Some(text(&v, "appointment_id").map_err(|e| Failure(e.to_string()))?);
                Ok(())
            });
            (Kind::Book, out)
        }
    }
}

async fn clinician_step(
    w: &World,
    client: usize,
    i: u64,
    state: &mut ClientState,
    patient: &SetupPatient,
) -> (Kind, Result<(), Failure>) {
    let token = &w.clinician;
    let own = &w.patients[client % w.patients.len()];
    match i % 10 {
        0..=2 if !w.notes.is_empty() => {
            let note = &w.notes[usize::try_from(i).unwrap_or(0) % w.notes.len()];
            let req = w
                .http
                .get(w.url(&format!("notes/{note}")))
                .bearer_auth(token);
            (Kind::NoteRead, send(req, 200).await.map(drop))
        }
        0..=4 => {
            let req = w
                .http
                .get(w.url(&format!("patients/{}/notes", patient.id)))
                .bearer_auth(token);
            (Kind::NoteList, send(req, 200).await.map(drop))
        }
        5 | 6 => {
            let content = json!({"content": {
                "subjective": format!("Synthetic load-test draft, save {i}."),
                "plan": "Review in six months."
            }});
            let Some((note, etag)) = state.draft.clone() else {
                let req = w
                    .http
                    .post(w.url(&format!("patients/{}/notes", own.id)))
                    .bearer_auth(token)
                    .json(&content);
                let out = send(req, 201).await.and_then(|(v, etag)| {
                    let note = text(&v, "note_id").map_err(|e| Failure(e.to_string()))?;
                    state.draft = Some((note, etag.ok_or(Failure("no ETag".into()))?));
                    Ok(())
                });
                return (Kind::NoteSave, out);
            };
            let req = w
                .http
                .put(w.url(&format!("notes/{note}")))
                .bearer_auth(token)
                .header("if-match", etag)
                .json(&content);
            let out = send(req, 200).await.and_then(|(_, etag)| {
                state.draft = Some((note, etag.ok_or(Failure("no ETag".into()))?));
                Ok(())
            });
            (Kind::NoteSave, out)
        }
        7 | 8 => {
            let exams = format!("patients/{}/perio-exams", own.id);
            match state.exam.take() {
                Some((exam, n)) if n < FINALS_PER_EXAM => {
                    let req = w
                        .http
                        .post(w.url(&format!("{exams}/{exam}/finals")))
                        .bearer_auth(token)
                        .json(&json!({"text": "three two three"}));
                    let out = send(req, 200).await.map(drop);
                    state.exam = Some((exam, n + 1));
                    (Kind::PerioFinal, out)
                }
                _ => {
                    let req = w
                        .http
                        .post(w.url(&exams))
                        .bearer_auth(token)
                        .json(&json!({}));
                    let out = send(req, 201).await.and_then(|(v, _)| {
                        let exam = text(&v, "exam_id").map_err(|e| Failure(e.to_string()))?;
                        state.exam = Some((exam, 0));
                        Ok(())
                    });
                    (Kind::PerioExam, out)
                }
            }
        }
        _ => {
            let req = w
                .http
                .get(w.url(&format!("patients/{}", patient.id)))
                .bearer_auth(token);
            (Kind::PatientRead, send(req, 200).await.map(drop))
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Sets up the practice through the API: sign-ins, patients, their appointments, some notes.
async fn setup(server: &Server, patients: usize) -> anyhow::Result<World> {
    let reception = server.sign_in("reception@harbor.demo.invalid").await?;
    let clinician = server.sign_in("clinician@harbor.demo.invalid").await?;
    let owner = server.sign_in("owner@harbor.demo.invalid").await?;
    let me = server
        .json(
            reqwest::Method::GET,
            "/api/v1/me",
            Some(&clinician),
            None,
            200,
        )
        .await?;
    let practice = me["practices"][0]["practice_id"]
        .as_str()
        .context("the clinician has no practice")?
        .to_owned();
    let clinician_id = text(&me, "user_id")?;
    let today = Utc::now().date_naive();
    let first_day = Utc.from_utc_datetime(
        &(today + Days::days(30))
            .and_hms_opt(0, 0, 0)
            .context("midnight")?,
    );
    let mut world = World {
        http: server.http.clone(),
        base: server.base.clone(),
        practice,
        reception,
        clinician,
        owner,
        clinician_id,
        patients: Vec::new(),
        notes: Vec::new(),
        first_day,
        next_slot: AtomicU64::new(0),
    };
    let mut people = domain::synthetic::Generator::new(2026);
    for k in 0..patients {
        add_patient(server, &mut world, people.patient(), k % 3 == 0).await?;
    }
    // Bookings during the load go after the setup's slots, a day apart from them.
    let used = world.next_slot.load(Ordering::Relaxed);
    world
        .next_slot
        .store(used.div_ceil(16) * 16 + 16, Ordering::Relaxed);
    Ok(world)
}

/// One setup patient: created by reception, booked with the clinician (so on their care
/// team), with a note by the clinician when `with_note`.
async fn add_patient(
    server: &Server,
    world: &mut World,
    p: domain::synthetic::SyntheticPatient,
    with_note: bool,
) -> anyhow::Result<()> {
    let body = json!({
        "given_name": p.given_name,
        "family_name": p.family_name,
        "date_of_birth": p.date_of_birth,
        "phone": p.phone,
        "email": p.email,
    });
    let created = server
        .json(
            reqwest::Method::POST,
            &format!("/api/v1/practices/{}/patients", world.practice),
            Some(&world.reception),
            Some(&body),
            201,
        )
        .await?;
    let id = text(&created, "patient_id")?;
    // Booked with the clinician: on their care team.
    let start = world.slot(world.next_slot.fetch_add(1, Ordering::Relaxed));
    server
        .json(
            reqwest::Method::POST,
            &format!("/api/v1/practices/{}/appointments", world.practice),
            Some(&world.reception),
            Some(&json!({
                "patient_id": id,
                "clinician_id": world.clinician_id,
                "starts_at": rfc3339(start),
                "ends_at": rfc3339(start + Days::minutes(30)),
            })),
            201,
        )
        .await?;
    if with_note {
        let note = server
            .json(
                reqwest::Method::POST,
                &format!("/api/v1/practices/{}/patients/{id}/notes", world.practice),
                Some(&world.clinician),
                Some(&json!({"content": {
                    "subjective": "Synthetic load-test note: routine recall.",
                    "objective": "Generalized mild inflammation.",
                    "assessment": "Gingivitis.",
                    "plan": "Oral hygiene instructions given."
                }})),
                201,
            )
            .await?;
        world.notes.push(text(&note, "note_id")?);
    }
    world.patients.push(SetupPatient {
        id,
        family_name: p.family_name,
        date_of_birth: p.date_of_birth.to_string(),
    });
    Ok(())
}

/// Runs `clients` clients for `warmup` unmeasured, then `duration` measured.
async fn phase(
    server: &Server,
    world: &Arc<World>,
    clients: usize,
    warmup: Duration,
    duration: Duration,
    window: Duration,
) -> Phase {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now() + warmup;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (w, measuring, stop) = (Arc::clone(world), Arc::clone(&measuring), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut state = ClientState::default();
            let mut samples = Vec::new();
            let mut failures = Vec::new();
            let mut i = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let (kind, out) = step(&w, c, i, &mut state).await;
                i += 1;
                if !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                let latency = t.elapsed();
                let at = t.saturating_duration_since(started);
                let ok = out.is_ok();
                if let Err(Failure(why)) = out
                    && failures.len() < 5
                {
                    failures.push(format!("{}: {why}", kind.name()));
                }
                samples.push(Sample {
                    kind,
                    at_ms: u32::try_from(at.as_millis()).unwrap_or(u32::MAX),
                    latency_us: u32::try_from(latency.as_micros()).unwrap_or(u32::MAX),
                    ok,
                });
            }
            (samples, failures)
        }));
    }
    tokio::time::sleep_until(started.into()).await;
    measuring.store(true, Ordering::Relaxed);
    let rss_start = server.rss_kib();
    let mut rss = Vec::new();
    let end = started + duration;
    let mut next = started + window;
    while next <= end {
        tokio::time::sleep_until(next.into()).await;
        rss.push(server.rss_kib());
        next += window;
    }
    tokio::time::sleep_until(end.into()).await;
    stop.store(true, Ordering::Relaxed);
    let rss_end = server.rss_kib();
    let elapsed = started.elapsed();
    let mut samples = Vec::new();
    let mut error_samples = Vec::new();
    for t in tasks {
        if let Ok((s, f)) = t.await {
            samples.extend(s);
            for e in f {
                if error_samples.len() < 10 {
                    error_samples.push(e);
                }
            }
        }
    }
    // Requests that started before the end only.
    let limit = u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
    samples.retain(|s| s.at_ms < limit);
    summarize(
        clients,
        elapsed.min(duration),
        &samples,
        error_samples,
        rss_start,
        rss_end,
        &rss,
        window,
    )
}

#[allow(clippy::too_many_arguments, reason = "one phase's raw figures")]
fn summarize(
    clients: usize,
    elapsed: Duration,
    samples: &[Sample],
    error_samples: Vec<String>,
    rss_start_kib: u64,
    rss_end_kib: u64,
    rss: &[u64],
    window: Duration,
) -> Phase {
    let stats_of = |filter: &dyn Fn(&Sample) -> bool| {
        let mut lat: Vec<u32> = samples
            .iter()
            .filter(|s| s.ok && filter(s))
            .map(|s| s.latency_us)
            .collect();
        let errors = samples.iter().filter(|s| !s.ok && filter(s)).count() as u64;
        Stats::of(&mut lat, errors)
    };
    let overall = stats_of(&|_| true);
    let mut kinds = Vec::new();
    for k in Kind::ALL {
        let s = stats_of(&|s| s.kind.index() == k.index());
        if s.ok + s.errors > 0 {
            kinds.push((k, s));
        }
    }
    let window_ms = u32::try_from(window.as_millis()).unwrap_or(u32::MAX).max(1);
    let mut windows = Vec::new();
    for (n, rss_kib) in rss.iter().enumerate() {
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        let (from, to) = (
            n32.saturating_mul(window_ms),
            n32.saturating_add(1).saturating_mul(window_ms),
        );
        let mut lat: Vec<u32> = samples
            .iter()
            .filter(|s| s.at_ms >= from && s.at_ms < to)
            .map(|s| s.latency_us)
            .collect();
        let st = Stats::of(&mut lat, 0);
        #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
        let rate = st.ok as f64 / window.as_secs_f64();
        windows.push(Window {
            end_s: u64::from(to / 1000),
            rate,
            p99_us: st.p99_us,
            rss_kib: *rss_kib,
        });
    }
    Phase {
        clients,
        elapsed,
        overall,
        kinds,
        error_samples,
        rss_start_kib,
        rss_end_kib,
        windows,
    }
}

/// Runs the load: starts the server, sets up, runs each phase, stops the server, verifies
/// the audit log. The data directory (under the system's temporary directory) is removed
/// afterwards unless the run failed.
pub async fn run(opts: &LoadOptions) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(opts.patients >= 1, "at least one patient");
    let dir =
        std::env::temp_dir().join(format!("chartroom-load-{}", uuid::Uuid::new_v4().simple()));
    let server = Server::start(&opts.server, &dir).await?;
    let world = Arc::new(setup(&server, opts.patients).await?);
    let mut phases = Vec::new();
    for &n in &opts.clients {
        phases.push(phase(&server, &world, n, opts.warmup, opts.duration, opts.window).await);
    }
    let clean_stop = server.stop().await;
    let out = Command::new(&opts.server)
        .arg("--data-dir")
        .arg(&dir)
        .args(["audit", "verify"])
        .env("RUST_LOG", "warn")
        .output()
        .await?;
    let audit_verified = out.status.success();
    let report = LoadReport {
        phases,
        patients: opts.patients,
        audit_verified,
        audit_verify_output: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        clean_stop,
    };
    let all_ok = report.phases.iter().all(|p| p.overall.errors == 0);
    if audit_verified && clean_stop && all_ok {
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(dir.with_extension("log"));
    } else {
        eprintln!(
            "load run kept its data directory {} and server log {}",
            dir.display(),
            dir.with_extension("log").display()
        );
    }
    Ok(report)
}
