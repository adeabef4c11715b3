//! `chartroom-bench`: Chartroom's benchmark harness. Each figure is a ratio against a
//! baseline measured in the same process, alternating runs, so machine noise cancels out.
//!
//! `chartroom-bench patient-read [--seconds N] [--clients 8,32] [--rounds R]`: a patient read
//! by id over HTTP (session check + RLS + audit insert + commit) against the same SQL run
//! directly on the harness's own runtime-role pool (tenant set + read + audit insert + commit).
//!
//! Baselines are raw SQL here ([`baseline`]); the measured paths call the product's public API
//! (the real router with a real session token, `store` functions through a real session entry).

#![allow(
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    clippy::panic,
    clippy::many_single_char_names,
    clippy::too_many_lines,
    reason = "benchmark harness: fixtures are built here and a failure must stop the run"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use domain::{PatientId, PracticeId, UserId};
use testkit::{TestApp, TestDb, World};

#[path = "bench_baseline/mod.rs"]
mod baseline;
#[path = "bench_checkpoints/mod.rs"]
mod checkpoints;
#[path = "bench_encryption/mod.rs"]
mod encryption;
#[path = "bench_identity/mod.rs"]
mod identity;
#[path = "bench_notes/mod.rs"]
mod notes;
#[path = "bench_outbound/mod.rs"]
mod outbound_bench;
#[path = "bench_reads/mod.rs"]
mod reads;
#[path = "bench_scribe/mod.rs"]
mod scribe;
#[path = "bench_web/mod.rs"]
mod web;

#[derive(Parser)]
#[command(about = "Chartroom benchmark harness")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Audited writes per second with the hash chain (queue + sequencer running) vs. a plain
    /// audit insert, at 8 writers in one practice and spread over 8 practices.
    AuditAppend {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 8)]
        seconds: u64,
        /// Alternating rounds (the best of each is reported).
        #[arg(long, default_value_t = 2)]
        rounds: usize,
    },
    /// `audit verify` speed over a log of N events (`OwnerStore::verify_practice`, the code
    /// `chartroom audit verify` runs; each run reported), and inclusion/consistency proof
    /// latency at that size.
    AuditVerify {
        /// Events in the log.
        #[arg(long, default_value_t = 1_000_000)]
        events: i64,
        /// Verification runs over the same log.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// The sequencer's cost with signed checkpoints: audited writes per second over 8
    /// practices with `serve`'s sequencer running without checkpoints, at the former cadence
    /// (1000 events or 60 s) and at the current one (100 events or 5 s, plus a mirror
    /// directory); then the latency of one checkpoint.
    AuditCheckpoints {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 6)]
        seconds: u64,
        /// Rounds (the best of each mode is reported).
        #[arg(long, default_value_t = 2)]
        rounds: usize,
    },
    /// Sign-ins per second (password + TOTP over HTTPS) vs. argon2id verifications alone.
    SignIn {
        /// Seconds of measurement.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent clients.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Users enrolled beforehand (each signs in once: TOTP codes are single-use).
        #[arg(long, default_value_t = 1500)]
        users: usize,
    },
    /// The session check's cost: the authenticated patient read vs. the same read through the
    /// same HTTPS stack without a session check.
    SessionCheck {
        /// Seconds per path and client count, in interleaved slices.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Concurrent clients, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "8,32")]
        clients: Vec<usize>,
        /// Length of one slice in milliseconds: the two paths alternate slice by slice
        /// (A B B A …), so background work of the database (checkpoints, autovacuum, a growing
        /// audit table) falls on both alike.
        #[arg(long, default_value_t = 500)]
        slice_ms: u64,
    },
    /// Clinical note save and read, full path vs. the same statements without encryption and
    /// audit.
    Notes {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrent clients, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "8")]
        clients: Vec<usize>,
        /// Alternating rounds per client count (the best of each path is reported).
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Runtime pool size.
        #[arg(long, default_value_t = 16)]
        pool: u32,
    },
    /// Patient read by id with field encryption on vs. off (direct and over HTTPS).
    EncryptionRead {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 8)]
        seconds: u64,
        /// Concurrent clients, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "8,32")]
        clients: Vec<usize>,
        /// Alternating rounds per client count (the best of each path is reported).
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Runtime pool size.
        #[arg(long, default_value_t = 16)]
        pool: u32,
    },
    /// Patient read by id: HTTP path vs. direct SQL.
    /// Audited reads against unaudited ones (issue 16): the patient route over HTTPS vs the
    /// same read as raw SQL without and with its audit event, HTTPS latency percentiles and
    /// the group-commit batch sizes; then one client's read with its event through the writer
    /// vs in its own transaction.
    Reads {
        /// Seconds per path per round.
        #[arg(long, default_value_t = 4)]
        seconds: u64,
        /// Concurrent clients, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "8,32")]
        clients: Vec<usize>,
        /// Rounds per client count (the paths alternate A B C, C B A, …).
        #[arg(long, default_value_t = 4)]
        rounds: usize,
        /// Runtime pool size (the same for the product and the raw SQL).
        #[arg(long, default_value_t = 16)]
        pool: u32,
        /// Seconds of the single-client comparison.
        #[arg(long, default_value_t = 10)]
        single_seconds: u64,
    },
    /// A realistic mixed load against the real binary (`chartroom demo` as a child process)
    /// over HTTPS: reception, clinicians and an owner (see `testkit::load`).
    Load {
        /// Measured seconds per client count.
        #[arg(long, default_value_t = 300)]
        seconds: u64,
        /// Concurrent clients per phase, comma-separated (phases run in order).
        #[arg(long, value_delimiter = ',', default_value = "8,32")]
        clients: Vec<usize>,
        /// Unmeasured warm-up seconds before each phase.
        #[arg(long, default_value_t = 15)]
        warmup: u64,
        /// Patients set up (and booked) before the load.
        #[arg(long, default_value_t = 300)]
        patients: usize,
        /// Timeline window in seconds.
        #[arg(long, default_value_t = 30)]
        window: u64,
        /// The `chartroom` binary (default: beside this one).
        #[arg(long)]
        server: Option<std::path::PathBuf>,
    },
    /// A synthetic visit recorded into the real binary at the recorder's pace: seconds from
    /// stop to the complete transcript and to the draft, and the server's memory during capture.
    ScribeVisit {
        /// Minutes of synthetic speech.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        /// The `chartroom` binary (default: beside this one).
        #[arg(long)]
        server: Option<std::path::PathBuf>,
    },
    /// The web app's server render time: the schedule week, the patient chart and the perio
    /// grid against the same data as JSON from the API, alternating slices.
    WebRender {
        /// Concurrent clients.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Alternating slices per path.
        #[arg(long, default_value_t = 10)]
        pairs: usize,
        /// Slice length in milliseconds.
        #[arg(long, default_value_t = 500)]
        slice_ms: u64,
    },
    /// The outbound scanner's cost per message against rendering alone (issue: booking,
    /// intake and reminders).
    OutboundScan {
        /// Known clients of the practice.
        #[arg(long, default_value_t = 2000)]
        clients: usize,
        /// Messages per round.
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        /// Alternating rounds (the best of each is reported).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// The outbox's throughput end to end (issue 19): messages queued in a real practice and
    /// sent by the real outbox job through the gate and the scanner into the Telnyx and Resend
    /// stand-ins, against the same sends through the adapters alone and posted raw
    /// (`testkit::outbox_bench`).
    Outbox {
        /// Messages per round (and per path).
        #[arg(long, default_value_t = 1000)]
        messages: usize,
        /// Synthetic clients of the practice (at least messages / 4: the daily cap).
        #[arg(long, default_value_t = 500)]
        clients: usize,
        /// Rounds (the paths alternate their order round by round).
        #[arg(long, default_value_t = 4)]
        rounds: usize,
    },
    PatientRead {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 8)]
        seconds: u64,
        /// Concurrent clients, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "8,32")]
        clients: Vec<usize>,
        /// Alternating rounds per client count (the best of each path is reported).
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Runtime pool size (the same for both paths).
        #[arg(long, default_value_t = 16)]
        pool: u32,
    },
}

/// `chartroom-bench load`: the report, and a failure if any request failed or the log does
/// not verify.
async fn load(
    seconds: u64,
    clients: Vec<usize>,
    warmup: u64,
    patients: usize,
    window: u64,
    server: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let server = match server {
        Some(s) => s,
        None => std::env::current_exe()?
            .parent()
            .context("no directory for this binary")?
            .join("chartroom"),
    };
    anyhow::ensure!(
        server.is_file(),
        "{} not found: build it (cargo build --release -p chartroom) or pass --server",
        server.display()
    );
    println!(
        "mixed load through HTTPS against {} (demo, embedded PostgreSQL): {patients} patients set up, phases {clients:?} clients, {warmup} s warm-up + {seconds} s each",
        server.display()
    );
    let report = testkit::load::run(&testkit::load::LoadOptions {
        server,
        clients,
        duration: Duration::from_secs(seconds),
        warmup: Duration::from_secs(warmup),
        patients,
        window: Duration::from_secs(window.max(1)),
    })
    .await?;
    print!("{report}");
    let errors: u64 = report.phases.iter().map(|p| p.overall.errors).sum();
    anyhow::ensure!(errors == 0, "{errors} requests failed");
    anyhow::ensure!(report.audit_verified, "audit verify failed after the run");
    Ok(())
}

/// A fresh database with the test [`World`] and `n` synthetic patients (generator seeded with
/// `seed`) in its practice A.
pub(crate) async fn world_with_patients(
    n: usize,
    seed: u64,
) -> anyhow::Result<(TestDb, World, Vec<PatientId>)> {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let owner = db.owner().await;
    let now = chrono::Utc::now();
    let mut generator = domain::synthetic::Generator::new(seed);
    let mut patients = Vec::with_capacity(n);
    for _ in 0..n {
        patients.push(
            owner
                .seed_patient(w.a.id, &generator.patient().into(), now)
                .await?,
        );
    }
    owner.close().await;
    Ok((db, w, patients))
}

struct Fixture {
    practice: PracticeId,
    actor: UserId,
    patients: Vec<PatientId>,
}

pub(crate) async fn run_for<F, Fut>(clients: usize, seconds: u64, f: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    run_during(clients, Duration::from_secs(seconds), Arc::new(f)).await
}

/// [`run_for`] for any duration, with the request function shared (so interleaved runs reuse
/// it): requests per second over the run.
pub(crate) async fn run_during<F, Fut>(clients: usize, duration: Duration, f: Arc<F>) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let (done, elapsed) = run_counted(clients, duration, f).await;
    #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
    let per_sec = done as f64 / elapsed.as_secs_f64();
    per_sec
}

/// [`run_during`], returning the number of requests completed and the time they took.
pub(crate) async fn run_counted<F, Fut>(
    clients: usize,
    duration: Duration,
    f: Arc<F>,
) -> (u64, Duration)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (f, stop, done) = (Arc::clone(&f), Arc::clone(&stop), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut i = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                assert!(f(c, i).await, "request failed");
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    (done.load(Ordering::Relaxed), started.elapsed())
}

/// CPU time (user + system, in clock ticks) used so far by this process (the benchmark's
/// server and client) and by the test cluster's PostgreSQL processes (the postmaster and its
/// children), from `/proc`; `None` where that cannot be read. Unlike throughput, CPU time per
/// request is not moved by time the machine's other tenants take from the cores or by storage
/// latency, so overheads compared this way are steadier on a shared machine.
pub(crate) fn cpu_ticks() -> Option<u64> {
    let pid_file = testkit::cluster_dir().join("pg").join("postmaster.pid");
    let postmaster: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()?;
    let own = std::process::id();
    let mut ticks = 0_u64;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces): state, ppid, …, utime (14th
        // field of the line), stime (15th).
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let parent = fields.get(1).and_then(|f| f.parse::<u32>().ok());
        if pid == own || pid == postmaster || parent == Some(postmaster) {
            let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            ticks += field(11).unwrap_or(0) + field(12).unwrap_or(0);
        }
    }
    Some(ticks)
}

async fn patient_read(
    seconds: u64,
    clients: Vec<usize>,
    rounds: usize,
    pool: u32,
) -> anyhow::Result<()> {
    let (db, w, patients) = world_with_patients(1000, 42).await?;
    let fx = Arc::new(Fixture {
        practice: w.a.id,
        actor: w.a.user("reception"),
        patients,
    });
    let store = store::Store::connect_runtime(db.runtime_options().await, pool)
        .await?
        .with_keyring(db.keyring(pgcluster::DbRole::Runtime).await);
    let direct_sql =
        Arc::new(baseline::Baseline::connect(&db, pool, store.keyring()?.clone()).await?);
    let app = Arc::new(TestApp::start_with(store.clone()).await);
    let token = Arc::new(app.token(fx.actor).await);
    // The app serves HTTPS with the test certificate: its own client trusts it.
    let http = app.http.clone();

    println!(
        "patient read by id: {} patients, pool {pool}, {seconds} s per run, {rounds} alternating rounds",
        fx.patients.len()
    );
    println!(
        "{:>8} {:>14} {:>18} {:>14} {:>8}",
        "clients", "direct SQL/s", "SQL + session/s", "HTTP/s", "ratio"
    );
    for &n in &clients {
        let (mut best_direct, mut best_http, mut best_session) = (0.0_f64, 0.0_f64, 0.0_f64);
        for _ in 0..rounds {
            let (b, f) = (Arc::clone(&direct_sql), Arc::clone(&fx));
            let direct = run_for(n, seconds, move |c, i| {
                let (b, f) = (Arc::clone(&b), Arc::clone(&f));
                async move {
                    let p =
                        f.patients[(c * 7919 + usize::try_from(i).unwrap_or(0)) % f.patients.len()];
                    b.read_patient(f.practice, f.actor, "{reception}", p)
                        .await
                        .is_ok_and(|found| found.is_some())
                }
            })
            .await;
            let (h, f, a, t) = (
                http.clone(),
                Arc::clone(&fx),
                Arc::clone(&app),
                Arc::clone(&token),
            );
            let over_http = run_for(n, seconds, move |c, i| {
                let (h, f, a, t) = (h.clone(), Arc::clone(&f), Arc::clone(&a), Arc::clone(&t));
                async move {
                    let p =
                        f.patients[(c * 7919 + usize::try_from(i).unwrap_or(0)) % f.patients.len()];
                    let url = a.url(&format!("/api/v1/practices/{}/patients/{p}", f.practice));
                    h.get(url)
                        .bearer_auth(t.as_str())
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }
            })
            .await;
            let (s, f, t) = (store.clone(), Arc::clone(&fx), Arc::clone(&token));
            let with_session = run_for(n, seconds, move |c, i| {
                let (s, f, t) = (s.clone(), Arc::clone(&f), Arc::clone(&t));
                async move {
                    let p =
                        f.patients[(c * 7919 + usize::try_from(i).unwrap_or(0)) % f.patients.len()];
                    testkit::read_patient(&s, &t, f.practice, p)
                        .await
                        .is_ok_and(|found| found.is_some())
                }
            })
            .await;
            best_direct = best_direct.max(direct);
            best_http = best_http.max(over_http);
            best_session = best_session.max(with_session);
        }
        println!(
            "{n:>8} {best_direct:>14.0} {best_session:>18.0} {best_http:>14.0} {:>7.0}%",
            100.0 * best_http / best_direct
        );
    }
    Ok(())
}

/// The world's two practices and six more, each with a reception member.
pub(crate) async fn eight_practices(
    db: &TestDb,
    w: &World,
) -> anyhow::Result<Vec<(PracticeId, UserId)>> {
    let owner = db.owner().await;
    let now = chrono::Utc::now();
    let mut practices = vec![
        (w.a.id, w.a.user("reception")),
        (w.b.id, w.b.user("reception")),
    ];
    for i in 2..8 {
        let p = owner
            .create_practice(&format!("Bench practice {i}"), now)
            .await?;
        let u = owner
            .create_user(
                &format!(
                    "bench.{i}.{}@bench.example.invalid",
                    uuid::Uuid::new_v4().simple()
                ),
                "bench",
                testkit::password_hash(),
                now,
            )
            .await?;
        owner
            .add_member(
                p,
                u,
                domain::RoleSet::from_iter([domain::Role::Reception]),
                now,
            )
            .await?;
        practices.push((p, u));
    }
    Ok(practices)
}

/// An audited write (a synthetic patient registered, as `POST …/patients` does) by client
/// `c`, in practice `c % spread` of `practices`.
pub(crate) fn audited_writes(
    store: store::Store,
    practices: Arc<Vec<(PracticeId, String)>>,
    spread: usize,
) -> impl Fn(usize, u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
+ Send
+ Sync
+ 'static {
    move |c: usize, i: u64| {
        let (store, practices) = (store.clone(), Arc::clone(&practices));
        Box::pin(async move {
            let (p, token) = &practices[c % spread];
            let patient = domain::synthetic::Generator::new(i).patient().into();
            create_patient(&store, token, *p, &patient).await.is_ok()
        })
    }
}

async fn audit_append(seconds: u64, rounds: usize) -> anyhow::Result<()> {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let practices = eight_practices(&db, &w).await?;
    let store = store::Store::connect_runtime(db.runtime_options().await, 16)
        .await?
        .with_keyring(db.keyring(pgcluster::DbRole::Runtime).await);
    let mut su = db.superuser_unsafe().await;
    // Each writer enters its practice through a real session, as `POST …/patients` does.
    let mut sessions = Vec::new();
    for (p, u) in practices {
        sessions.push((p, testkit::session_token(&store, u).await));
    }
    let practices = Arc::new(sessions);
    println!(
        "audited writes (patient create + audit event + commit), 8 writers, {seconds} s per run, {rounds} rounds"
    );
    println!(
        "{:>10} {:>12} {:>12} {:>10} {:>17}",
        "spread", "plain/s", "chain/s", "cost", "sequencer backlog"
    );
    for spread in [1_usize, 8] {
        let (mut best_plain, mut best_chain, mut backlog) = (0.0_f64, 0.0_f64, 0_i64);
        for _ in 0..rounds {
            // Plain: the audit insert alone (the queue trigger off, no sequencer).
            sqlx::query("alter table audit_event disable trigger audit_event_queue")
                .execute(&mut su)
                .await?;
            let writes = |store: store::Store, practices| audited_writes(store, practices, spread);
            let plain = run_for(8, seconds, writes(store.clone(), Arc::clone(&practices))).await;
            sqlx::query("alter table audit_event enable trigger audit_event_queue")
                .execute(&mut su)
                .await?;
            // Chain: queue trigger on and the sequencer running every 100 ms, as in `serve`.
            store.sequence_pending(chrono::Utc::now()).await?;
            let sequencer_store = store.clone();
            let stop = Arc::new(AtomicBool::new(false));
            let sequencer_stop = Arc::clone(&stop);
            let sequencer = tokio::spawn(async move {
                while !sequencer_stop.load(Ordering::Relaxed) {
                    let _ = sequencer_store.sequence_pending(chrono::Utc::now()).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
            let chain = run_for(8, seconds, writes(store.clone(), Arc::clone(&practices))).await;
            stop.store(true, Ordering::Relaxed);
            let _ = sequencer.await;
            backlog = backlog.max(
                sqlx::query_scalar::<_, i64>("select count(*) from audit_pending")
                    .fetch_one(&mut su)
                    .await?,
            );
            while store.sequence_pending(chrono::Utc::now()).await? > 0 {}
            best_plain = best_plain.max(plain);
            best_chain = best_chain.max(chain);
        }
        println!(
            "{:>10} {best_plain:>12.0} {best_chain:>12.0} {:>9.1}% {backlog:>17}",
            if spread == 1 {
                "1 practice"
            } else {
                "8 practices"
            },
            100.0 * (1.0 - best_chain / best_plain)
        );
    }
    Ok(())
}

/// One audited patient registration the way `POST …/patients` does it, without HTTP: session
/// entry, [`store::patients::create`], its audit event, the commit.
async fn create_patient(
    store: &store::Store,
    token: &str,
    practice: PracticeId,
    patient: &store::patients::NewPatient,
) -> anyhow::Result<()> {
    let mut tx = testkit::enter_practice(store, token, practice).await?;
    let p = store::patients::create(&mut tx, store.keyring()?, patient).await?;
    tx.audit_patient(domain::AuditAction::PatientCreate, p.patient_id)
        .await?;
    tx.commit().await?;
    Ok(())
}

async fn audit_verify(events: i64, runs: usize) -> anyhow::Result<()> {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let p = w.a.id;
    let mut su = db.superuser_unsafe().await;
    let started = Instant::now();
    testkit::queue_synthetic_events(&mut su, p, w.a.user("reception"), w.a.patient, events).await;
    println!(
        "inserted {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let store = db.store().await;
    let started = Instant::now();
    let mut sequenced = 0;
    loop {
        let n = store.sequence_practice(p, chrono::Utc::now()).await?;
        if n == 0 {
            break;
        }
        sequenced += n;
    }
    #[allow(clippy::cast_precision_loss, reason = "display")]
    let sequence_rate = sequenced as f64 / started.elapsed().as_secs_f64();
    println!(
        "sequenced {sequenced} events in {:.1} s ({sequence_rate:.0} events/s)",
        started.elapsed().as_secs_f64()
    );
    let signer = audit::checkpoint::Signer::generate("bench")?;
    let head = store.tree_head(p).await?;
    let origin = audit::checkpoint::origin("bench/audit", p.as_uuid());
    let cp = audit::Checkpoint::new(origin.clone(), head.size, head.root)
        .with_chain_head(&head.chain_head);
    let cp = signer.verifier().open(&signer.sign(&cp)?)?;
    let owner = db.owner().await;
    if std::env::var_os("CHARTROOM_BENCH_EXPLAIN").is_some() {
        let mut su = db.superuser_unsafe().await;
        for setup in ["select 1", "set work_mem = '512MB'"] {
            sqlx::query(setup).execute(&mut su).await?;
            let plan: Vec<String> = sqlx::query_scalar(
                "explain (analyze, timing off) select s.seq, s.chain_hash, s.leaf_hash, e.event_id, e.occurred_at, e.actor_id, e.patient_id,
                        e.action, e.outcome, e.object_type, e.object_id, e.request_id, e.details::text
                   from audit_sequence s left join audit_event e on e.practice_id = s.practice_id and e.event_id = s.event_id
                  where s.practice_id = $1 and s.seq >= 0 order by s.seq",
            )
            .bind(p)
            .fetch_all(&mut su)
            .await?;
            println!("--- {setup}\n{}", plan.join("\n"));
        }
    }
    for run in 0..runs {
        let started = Instant::now();
        let out = owner
            .verify_practice(
                p,
                &origin,
                vec![cp.clone()],
                chrono::Duration::hours(1),
                chrono::Utc::now(),
            )
            .await?;
        let secs = started.elapsed().as_secs_f64();
        anyhow::ensure!(out.is_ok(), "verify failed: {}", out.report);
        anyhow::ensure!(
            out.report.events_checked == head.size,
            "verified {} events of {}",
            out.report.events_checked,
            head.size
        );
        #[allow(clippy::cast_precision_loss, reason = "display")]
        let rate = out.report.events_checked as f64 / secs;
        println!(
            "verify run {run}: {} events in {secs:.2} s = {rate:.0} events/s (database read + chain + tree + checkpoint)",
            out.report.events_checked
        );
    }
    let mut times = Vec::new();
    for i in 0..201_u64 {
        let seq = (i * 4_999) % head.size;
        let t = Instant::now();
        let proof = owner
            .inclusion_proof(p, seq, None)
            .await?
            .context("proof")?;
        audit::merkle::verify_inclusion(
            &proof.leaf_hash,
            seq,
            proof.size,
            &proof.path,
            &head.root,
        )?;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "inclusion proof at size {} (database + build + verify): median {:?}, p95 {:?}",
        head.size, times[100], times[190]
    );
    let mut times = Vec::new();
    for i in 1..202_u64 {
        let first = (i * 4_993) % head.size + 1;
        let t = Instant::now();
        let proof = owner
            .consistency_proof(p, first, None)
            .await?
            .context("proof")?;
        audit::merkle::verify_consistency(
            first,
            proof.second,
            &proof.first_root,
            &proof.second_root,
            &proof.path,
        )?;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "consistency proof to size {}: median {:?}, p95 {:?}",
        head.size, times[100], times[190]
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.bench {
        Bench::AuditAppend { seconds, rounds } => audit_append(seconds, rounds)
            .await
            .context("audit-append benchmark"),
        Bench::AuditCheckpoints { seconds, rounds } => {
            checkpoints::audit_checkpoints(seconds, rounds)
                .await
                .context("audit-checkpoints benchmark")
        }
        Bench::AuditVerify { events, runs } => audit_verify(events, runs)
            .await
            .context("audit-verify benchmark"),
        Bench::Reads {
            seconds,
            clients,
            rounds,
            pool,
            single_seconds,
        } => reads::reads(seconds, clients, rounds, pool, single_seconds)
            .await
            .context("reads benchmark"),
        Bench::Load {
            seconds,
            clients,
            warmup,
            patients,
            window,
            server,
        } => load(seconds, clients, warmup, patients, window, server).await,
        Bench::ScribeVisit { minutes, server } => scribe::scribe_visit(minutes, server)
            .await
            .context("scribe-visit benchmark"),
        Bench::WebRender {
            clients,
            pairs,
            slice_ms,
        } => web::web_render(clients, pairs, slice_ms)
            .await
            .context("web-render benchmark"),
        Bench::OutboundScan {
            clients,
            messages,
            rounds,
        } => outbound_bench::outbound_scan(clients, messages, rounds)
            .context("outbound-scan benchmark"),
        Bench::Outbox {
            messages,
            clients,
            rounds,
        } => testkit::outbox_bench::run(testkit::outbox_bench::OutboxBenchOptions {
            messages,
            clients,
            rounds,
        })
        .await
        .map(|report| println!("{report}"))
        .context("outbox benchmark"),
        Bench::PatientRead {
            seconds,
            clients,
            rounds,
            pool,
        } => patient_read(seconds, clients, rounds, pool)
            .await
            .context("patient-read benchmark"),
        Bench::Notes {
            seconds,
            clients,
            rounds,
            pool,
        } => notes::notes(seconds, clients, rounds, pool)
            .await
            .context("notes benchmark"),
        Bench::EncryptionRead {
            seconds,
            clients,
            rounds,
            pool,
        } => encryption::patient_read(seconds, clients, rounds, pool)
            .await
            .context("encryption-read benchmark"),
        Bench::SignIn {
            seconds,
            clients,
            users,
        } => identity::sign_in(seconds, clients, users)
            .await
            .context("sign-in benchmark"),
        Bench::SessionCheck {
            seconds,
            clients,
            slice_ms,
        } => identity::session_check(seconds, clients, slice_ms)
            .await
            .context("session-check benchmark"),
    }
}
