//! Issue 16.3, crash proof, through the real binary on its embedded cluster: six HTTPS clients
//! read patients and notes and write patients and note drafts while the test crashes the
//! installation at a random moment, then restarts it on the same data directory and checks
//! that whatever was acknowledged survived:
//! - every read answered 200 has the audit event of its request in the log (a read's event is
//!   durable before its response leaves: the group-commit writer, `store::group_commit`);
//! - every write answered 2xx is there (the patient, the note version), with its audit event;
//! - `chartroom audit verify` passes.
//!
//! Two kinds of crash, alternating:
//! - **A**: `chartroom serve` is killed with SIGKILL. Its PostgreSQL (its own process group)
//!   is left running; the next `serve` shuts that postmaster down and starts its own
//!   (`pgcluster`, "Restart-safe").
//! - **B**: PostgreSQL is stopped with an immediate shutdown (SIGQUIT to the postmaster, what
//!   `pg_ctl stop -m immediate` sends): no checkpoint, crash recovery on the next start.
//!   `serve` notices that its database exited and shuts down; the test starts it again.
//!
//! The moment is a number of acknowledged responses drawn from a seeded RNG: the test prints
//! the seed, and `CHARTROOM_CRASH_SEED` replays it. `CHARTROOM_CRASH_ROUNDS` (default 5:
//! A, B, A, B, A) runs a longer campaign. Responses that fail around a crash are not
//! acknowledged and not checked; any failure before the crash fails the test.
//! req: AUD-01

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgcluster::{Cluster, ClusterConfig, DATABASE, DbRole};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use reqwest::{Client, RequestBuilder};
use serde_json::{Value, json};
use sqlx::{Connection as _, PgConnection};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::backup::{chartroom, demo_login, practice_of};
use crate::embedded_binary::{Running, client_for, sign_in, start_logging, stop};

/// Clients per round: half reception (patients), half clinician (notes).
const CLIENTS: usize = 6;

/// Acknowledged responses before the crash, drawn per round from this range.
const THRESHOLD: std::ops::Range<usize> = 20..400;

/// How a round crashes the installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// SIGKILL to `chartroom serve`.
    Server,
    /// Immediate shutdown of its PostgreSQL (SIGQUIT to the postmaster).
    Database,
}

/// What the clients were told was done: checked after every restart, all rounds so far.
#[derive(Default, Clone)]
struct Ledger {
    /// Request ids of reads answered 200.
    reads: Vec<Uuid>,
    /// Request ids of writes answered 2xx.
    writes: Vec<Uuid>,
    /// Patients whose creation was acknowledged.
    patients: Vec<Uuid>,
    /// Note versions whose creation or save was acknowledged.
    notes: Vec<(Uuid, i32)>,
}

/// One round's load: the acknowledged count, the crash trigger and the stop flags.
struct Load {
    acked: AtomicUsize,
    threshold: usize,
    reached: Notify,
    /// Set just before the crash is caused: a failure from then on ends a client quietly.
    crashed: AtomicBool,
    stop: AtomicBool,
    /// Failures before the crash (there must be none).
    unexpected: Mutex<Vec<String>>,
    ledger: Arc<Mutex<Ledger>>,
}

/// What the clients need: the server's address, the accounts' tokens, the fixture.
struct Target {
    http: Client,
    base: String,
    practice: String,
    reception: String,
    clinician: String,
    /// Patients reception reads.
    patients: Vec<String>,
    /// The clinician's patient whose notes are written.
    written: String,
    /// The clinician's patient whose notes are listed.
    listed: String,
}

impl Target {
    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/practices/{}/{path}", self.base, self.practice)
    }
}

/// An acknowledged response: a read's request id, or a write's request id and what it made.
enum Ack {
    Read(Uuid),
    Patient(Uuid, Uuid),
    Note(Uuid, Uuid, i32),
}

/// Sends `req`; `Ok` with the request id and the JSON body and `ETag` for an expected status.
async fn send(req: RequestBuilder, expect: u16) -> Result<(Uuid, Value, Option<String>), String> {
    let res = req.send().await.map_err(|e| format!("request: {e}"))?;
    let status = res.status().as_u16();
    let id = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Uuid>().ok());
    let etag = res
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // The body is part of the acknowledgement: a response cut off mid-body is not one.
    let body = res.text().await.map_err(|e| format!("body: {e}"))?;
    if status != expect {
        return Err(format!("status {status}: {body}"));
    }
    let id = id.ok_or("no x-request-id")?;
    let json = serde_json::from_str(&body).map_err(|e| format!("not JSON: {e}: {body}"))?;
    Ok((id, json, etag))
}

fn uuid_of(v: &Value, field: &str) -> Result<Uuid, String> {
    v[field]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no {field} in {v}"))
}

/// A reception client: three patient reads, then a new patient.
async fn reception_step(t: &Target, i: usize) -> Result<Ack, String> {
    if i % 4 == 3 {
        let body = json!({"given_name": "Crashprobe", "family_name": format!("Lanternfield {i}")});
        let (id, p, _) = send(
            t.http
                .post(t.url("patients"))
                .bearer_auth(&t.reception)
                .json(&body),
            201,
        )
        .await?;
        return Ok(Ack::Patient(id, uuid_of(&p, "patient_id")?));
    }
    let patient = &t.patients[i % t.patients.len()];
    let (id, _, _) = send(
        t.http
            .get(t.url(&format!("patients/{patient}")))
            .bearer_auth(&t.reception),
        200,
    )
    .await?;
    Ok(Ack::Read(id))
}

/// A clinician client: a draft of its own first, then in turn reads it, lists a patient's
/// notes, reads a patient and saves the draft again (`If-Match`: the version it last saw).
async fn clinician_step(
    t: &Target,
    i: usize,
    draft: &mut Option<(Uuid, String)>,
) -> Result<Ack, String> {
    let Some((note, etag)) = draft.as_ref() else {
        let body =
            json!({"content": {"subjective": "Synthetic crash-test draft.", "plan": "None."}});
        let (id, n, etag) = send(
            t.http
                .post(t.url(&format!("patients/{}/notes", t.written)))
                .bearer_auth(&t.clinician)
                .json(&body),
            201,
        )
        .await?;
        let note = uuid_of(&n, "note_id")?;
        *draft = Some((note, etag.ok_or("no ETag")?));
        return Ok(Ack::Note(id, note, version_of(&n)?));
    };
    let read = match i % 4 {
        0 => t.http.get(t.url(&format!("notes/{note}"))),
        1 => t.http.get(t.url(&format!("patients/{}/notes", t.listed))),
        2 => t.http.get(t.url(&format!("patients/{}", t.written))),
        _ => {
            let body = json!({"content": {"subjective": format!("Synthetic crash-test draft, save {i}."), "plan": "None."}});
            let note = *note;
            let (id, n, etag) = send(
                t.http
                    .put(t.url(&format!("notes/{note}")))
                    .bearer_auth(&t.clinician)
                    .header("if-match", etag)
                    .json(&body),
                200,
            )
            .await?;
            *draft = Some((note, etag.ok_or("no ETag")?));
            return Ok(Ack::Note(id, note, version_of(&n)?));
        }
    };
    let (id, _, _) = send(read.bearer_auth(&t.clinician), 200).await?;
    Ok(Ack::Read(id))
}

fn version_of(n: &Value) -> Result<i32, String> {
    n["version"]
        .as_i64()
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| format!("no version in {n}"))
}

/// One client: steps until stopped, or until its first failure once the crash was caused.
async fn client(t: Arc<Target>, load: Arc<Load>, n: usize) {
    let mut draft = None;
    let mut i = n;
    while !load.stop.load(Ordering::SeqCst) {
        let step = if n.is_multiple_of(2) {
            reception_step(&t, i).await
        } else {
            clinician_step(&t, i, &mut draft).await
        };
        i += 1;
        match step {
            Ok(ack) => {
                {
                    let mut l = load.ledger.lock().unwrap();
                    match ack {
                        Ack::Read(id) => l.reads.push(id),
                        Ack::Patient(id, p) => {
                            l.writes.push(id);
                            l.patients.push(p);
                        }
                        Ack::Note(id, note, v) => {
                            l.writes.push(id);
                            l.notes.push((note, v));
                        }
                    }
                }
                if load.acked.fetch_add(1, Ordering::SeqCst) + 1 == load.threshold {
                    load.reached.notify_one();
                }
            }
            Err(_) if load.crashed.load(Ordering::SeqCst) => return,
            Err(e) => load.unexpected.lock().unwrap().push(e),
        }
    }
}

/// The test's data directory and the server running on it.
struct Installation {
    dir: PathBuf,
    logs: PathBuf,
    starts: usize,
    server: Option<Running>,
}

impl Installation {
    /// Starts `chartroom <command>` (its standard error into a numbered log file) and waits
    /// until its health endpoint answers.
    async fn start(&mut self, command: &str) {
        self.starts += 1;
        let log = self.logs.join(format!("{command}-{}.log", self.starts));
        let running = start_logging(
            &self.dir,
            command,
            Stdio::from(std::fs::File::create(&log).unwrap()),
            "warn",
        )
        .await;
        let http = client_for(&self.dir);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = http
                .get(format!("{}/healthz", running.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "{} is not healthy", running.base);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.server = Some(running);
    }

    fn base(&self) -> String {
        self.server.as_ref().unwrap().base.clone()
    }

    /// The postmaster's process id, from its pid file.
    fn postmaster_pid(&self) -> u32 {
        let pid = std::fs::read_to_string(self.dir.join("pg/postmaster.pid")).unwrap();
        pid.lines().next().unwrap().trim().parse().unwrap()
    }

    /// Crashes the installation as `crash` says and waits until `serve` has exited; returns
    /// its exit status and the postmaster it ran on.
    async fn crash(&mut self, crash: Crash) -> (std::process::ExitStatus, u32) {
        let mut server = self.server.take().unwrap();
        let postmaster = self.postmaster_pid();
        match crash {
            Crash::Server => server.child.start_kill().unwrap(),
            Crash::Database => assert!(signal("-QUIT", postmaster), "SIGQUIT to {postmaster}"),
        }
        // After its database exited, `serve` shuts down by itself.
        let status = tokio::time::timeout(Duration::from_secs(90), server.child.wait())
            .await
            .unwrap_or_else(|_| panic!("serve did not exit after the crash ({crash:?})"))
            .unwrap();
        (status, postmaster)
    }

    /// Whether `pid` is a live PostgreSQL process of this data directory (by its command
    /// line: an exited process, or a zombie not yet reaped, has none).
    fn runs_postgres(&self, pid: u32) -> bool {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            String::from_utf8_lossy(&c).contains(&*self.dir.join("pg").to_string_lossy())
        })
    }

    /// Where a failed run left its logs and data.
    fn kept(&self) -> String {
        format!(
            "data in {}, server logs in {}",
            self.dir.display(),
            self.logs.display()
        )
    }
}

impl Drop for Installation {
    /// A failed run leaves a server and its PostgreSQL (a process group of its own): stop both.
    /// The data directory and the logs are kept for a look.
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.child.start_kill();
        }
        // Only a live postmaster of this data directory (a pid file can outlive its process).
        let Ok(pid) = std::fs::read_to_string(self.dir.join("pg/postmaster.pid")) else {
            return;
        };
        let pid = pid.lines().next().unwrap_or("").trim().parse().unwrap_or(0);
        if self.runs_postgres(pid) {
            signal("-INT", pid);
        }
    }
}

/// `kill <signal> <pid>`; whether it was delivered.
fn signal(signal: &str, pid: u32) -> bool {
    pid != 0
        && std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
}

/// A superuser connection to the running server's cluster (attached, not owned).
async fn superuser(dir: &Path) -> (Cluster, PgConnection) {
    let cluster = Cluster::start_or_attach(ClusterConfig::new(dir))
        .await
        .unwrap();
    let su = PgConnection::connect_with(&cluster.connect_options(DbRole::Superuser, DATABASE))
        .await
        .unwrap();
    (cluster, su)
}

/// The acknowledged requests without an audit event, and the acknowledged writes missing.
async fn missing(su: &mut PgConnection, ledger: &Ledger) -> (Vec<Uuid>, Vec<String>) {
    let requests: Vec<Uuid> = ledger.reads.iter().chain(&ledger.writes).copied().collect();
    let events: Vec<Uuid> = sqlx::query_scalar(
        "select r from unnest($1::uuid[]) r
          where not exists (select 1 from audit_event e where e.request_id = r and e.outcome = 'success')",
    )
    .bind(&requests)
    .fetch_all(&mut *su)
    .await
    .unwrap();
    let patients: Vec<Uuid> = sqlx::query_scalar(
        "select p from unnest($1::uuid[]) p
          where not exists (select 1 from patient where patient_id = p)",
    )
    .bind(&ledger.patients)
    .fetch_all(&mut *su)
    .await
    .unwrap();
    let (notes, versions): (Vec<Uuid>, Vec<i32>) = ledger.notes.iter().copied().unzip();
    let note_versions: Vec<(Uuid, i32)> = sqlx::query_as(
        "select n, v from unnest($1::uuid[], $2::int4[]) t (n, v)
          where not exists (select 1 from clinical_note_version c where c.note_id = t.n and c.version = t.v)",
    )
    .bind(&notes)
    .bind(&versions)
    .fetch_all(&mut *su)
    .await
    .unwrap();
    let lost = patients
        .iter()
        .map(|p| format!("patient {p}"))
        .chain(note_versions.iter().map(|(n, v)| format!("note {n} v{v}")))
        .collect();
    (events, lost)
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

// issue 16.3, req AUD-01 — nothing acknowledged is lost in a crash of the server or of its
// database: every 200 read has its audit event, every acknowledged write is there, and the
// audit log verifies after every restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_reads_and_writes_survive_crashes_of_the_server_and_its_database() {
    let seed = env_number("CHARTROOM_CRASH_SEED").unwrap_or_else(rand::random);
    let rounds = env_number("CHARTROOM_CRASH_ROUNDS").unwrap_or(5);
    println!(
        "crash campaign: seed {seed} (CHARTROOM_CRASH_SEED={seed} replays it), {rounds} rounds"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let id = Uuid::new_v4().simple();
    let mut inst = Installation {
        dir: Path::new("/tmp").join(format!("chartroom-it-crash-{id}")),
        logs: Path::new("/tmp").join(format!("chartroom-it-crash-{id}-logs")),
        starts: 0,
        server: None,
    };
    std::fs::create_dir_all(&inst.logs).unwrap();
    inst.start("demo").await;

    // Accounts of the demo practice (TOTP enrolled on the first sign-in; the sessions live in
    // the database and outlive every restart), and the fixture.
    let http = client_for(&inst.dir);
    let base = inst.base();
    let mut reception = demo_login(&inst.dir, "reception@harbor.demo.invalid");
    let mut clinician = demo_login(&inst.dir, "clinician@harbor.demo.invalid");
    let t_r = sign_in(&http, &base, &reception.login, &mut reception.totp).await;
    let t_c = sign_in(&http, &base, &clinician.login, &mut clinician.totp).await;
    let practice = practice_of(&http, &base, &t_r).await;
    let me = crate::util::get_json(&http, &format!("{base}/api/v1/me"), &t_c).await;
    let list = crate::util::get_json(
        &http,
        &format!("{base}/api/v1/practices/{practice}/patients"),
        &t_r,
    )
    .await;
    let mut patients: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["patient_id"].as_str().unwrap().to_owned())
        .collect();
    let mut mine = Vec::new();
    for name in ["Written", "Listed"] {
        let (_, p, _) = send(
            http.post(format!("{base}/api/v1/practices/{practice}/patients"))
                .bearer_auth(&t_r)
                .json(&json!({"given_name": "Crashfixture", "family_name": name})),
            201,
        )
        .await
        .unwrap();
        let p = p["patient_id"].as_str().unwrap().to_owned();
        let assigned = http
            .put(format!(
                "{base}/api/v1/practices/{practice}/patients/{p}/assigned-clinician"
            ))
            .bearer_auth(&t_r)
            .json(&json!({ "clinician_id": me["user_id"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(assigned.status(), 204);
        patients.push(p.clone());
        mine.push(p);
    }
    let (written, listed) = (mine[0].clone(), mine[1].clone());
    let (_, _, _) = send(
        http.post(format!(
            "{base}/api/v1/practices/{practice}/patients/{listed}/notes"
        ))
        .bearer_auth(&t_c)
        .json(&json!({"content": {"subjective": "Synthetic note to list."}})),
        201,
    )
    .await
    .unwrap();

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let began = Instant::now();
    let mut crashes = [0usize; 2];
    let (mut events_missing, mut writes_lost) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let crash = if round % 2 == 0 {
            Crash::Server
        } else {
            Crash::Database
        };
        let threshold = rng.gen_range(THRESHOLD);
        let target = Arc::new(Target {
            http: http.clone(),
            base: inst.base(),
            practice: practice.clone(),
            reception: t_r.clone(),
            clinician: t_c.clone(),
            patients: patients.clone(),
            written: written.clone(),
            listed: listed.clone(),
        });
        let load = Arc::new(Load {
            acked: AtomicUsize::new(0),
            threshold,
            reached: Notify::new(),
            crashed: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            unexpected: Mutex::new(Vec::new()),
            ledger: ledger.clone(),
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|n| tokio::spawn(client(target.clone(), load.clone(), n)))
            .collect();
        let reached = tokio::time::timeout(Duration::from_secs(120), load.reached.notified()).await;
        let unexpected = load.unexpected.lock().unwrap().clone();
        assert!(
            reached.is_ok() && unexpected.is_empty(),
            "round {round}: {} of {threshold} acknowledged; failures before the crash: {unexpected:?} ({})",
            load.acked.load(Ordering::SeqCst),
            inst.kept()
        );
        load.crashed.store(true, Ordering::SeqCst);
        let (status, postmaster) = inst.crash(crash).await;
        // A dead database is a failed stop: `serve` exits non-zero so a service manager
        // restarts it (and so its database).
        if crash == Crash::Database {
            assert!(
                !status.success(),
                "round {round}: serve exited with {status} after its database died"
            );
        }
        // A killed server leaves its PostgreSQL running; a crashed PostgreSQL is gone (its
        // backends may linger for a moment: only the postmaster is checked).
        assert_eq!(
            inst.runs_postgres(postmaster),
            crash == Crash::Server,
            "round {round}: postmaster {postmaster} after {crash:?}"
        );
        load.stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.await.unwrap();
        }
        let unexpected = load.unexpected.lock().unwrap().clone();
        assert!(
            unexpected.is_empty(),
            "round {round}: {unexpected:?} ({})",
            inst.kept()
        );
        crashes[usize::from(crash == Crash::Database)] += 1;

        // The same data directory again: `serve` brings the cluster back (after SIGKILL it
        // replaces the postmaster the killed server left running).
        inst.start("serve").await;
        assert!(
            !inst.runs_postgres(postmaster) && inst.postmaster_pid() != postmaster,
            "round {round}: serve runs on a postmaster of its own"
        );
        let (cluster, mut su) = superuser(&inst.dir).await;
        let acknowledged = ledger.lock().unwrap().clone();
        let (events, lost_writes) = missing(&mut su, &acknowledged).await;
        drop(su);
        cluster.stop().await.unwrap();
        let (ok, out, err) = chartroom(&inst.dir, &["audit", "verify"]).await;
        assert!(
            ok,
            "round {round}: audit verify failed: {out} {err} ({})",
            inst.kept()
        );
        println!(
            "round {round} ({crash:?}, serve exited with {status}): {} acknowledged at the crash (threshold {threshold}), {} missing events, {} lost writes so far",
            load.acked.load(Ordering::SeqCst),
            events.len(),
            lost_writes.len()
        );
        for e in events {
            if !events_missing.contains(&e) {
                events_missing.push(e);
            }
        }
        for w in lost_writes {
            if !writes_lost.contains(&w) {
                writes_lost.push(w);
            }
        }
    }
    stop(inst.server.take().unwrap()).await;
    let (ok, out, err) = chartroom(&inst.dir, &["audit", "verify"]).await;
    assert!(ok, "after the last clean stop: {out} {err}");

    let l = ledger.lock().unwrap();
    println!(
        "crash campaign: seed {seed}, rounds {rounds} ({} server kills, {} database crashes), reads acknowledged {}, writes acknowledged {}, audit events missing {}, writes lost {} ({:.0} s)",
        crashes[0],
        crashes[1],
        l.reads.len(),
        l.writes.len(),
        events_missing.len(),
        writes_lost.len(),
        began.elapsed().as_secs_f64()
    );
    assert!(
        events_missing.is_empty(),
        "requests acknowledged without an audit event ({}): {events_missing:?}",
        inst.kept()
    );
    assert!(
        writes_lost.is_empty(),
        "acknowledged writes lost ({}): {writes_lost:?}",
        inst.kept()
    );
    let _ = std::fs::remove_dir_all(&inst.dir);
    let _ = std::fs::remove_dir_all(&inst.logs);
}
