//! `chartroom-bench`: Chartroom's benchmark harness. Each figure is a ratio against a
//! baseline measured in the same process, alternating runs, so machine noise cancels out.
//!
//! `chartroom-bench patient-read [--seconds N] [--clients 8,32] [--rounds R]`: a patient read
//! by id over HTTP (session check + RLS + audit insert + commit) against the same SQL run
//! directly on the pool (tenant set + read + audit insert + commit).

#![allow(
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    clippy::panic,
    clippy::many_single_char_names,
    reason = "benchmark harness: fixtures are built here and a failure must stop the run"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use domain::{PatientId, PracticeId, UserId};
use testkit::{TestApp, TestDb, World};

#[derive(Parser)]
#[command(about = "Chartroom benchmark harness")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Patient read by id: HTTP path vs. direct SQL.
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

struct Fixture {
    practice: PracticeId,
    actor: UserId,
    patients: Vec<PatientId>,
}

async fn run_for<F, Fut>(clients: usize, seconds: u64, f: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let f = Arc::new(f);
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
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
    let per_sec = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    per_sec
}

async fn patient_read(seconds: u64, clients: Vec<usize>, rounds: usize, pool: u32) -> anyhow::Result<()> {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let owner = db.owner().await;
    let now = chrono::Utc::now();
    let mut generator = domain::synthetic::Generator::new(42);
    let mut patients = Vec::new();
    for _ in 0..1000 {
        let p = generator.patient();
        patients.push(
            owner
                .seed_patient(w.a.id, &p.into(), now)
                .await?,
        );
    }
    owner.close().await;
    let fx = Arc::new(Fixture { practice: w.a.id, actor: w.a.user("reception"), patients });
    let store = store::Store::connect_runtime(db.runtime_options().await, pool).await?;
    let app = Arc::new(TestApp::start_with(store.clone()).await);
    let token = Arc::new(app.token(fx.actor).await);
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;

    println!("patient read by id: {} patients, pool {pool}, {seconds} s per run, {rounds} alternating rounds", fx.patients.len());
    println!("{:>8} {:>14} {:>14} {:>8}", "clients", "direct SQL/s", "HTTP/s", "ratio");
    for &n in &clients {
        let (mut best_direct, mut best_http) = (0.0_f64, 0.0_f64);
        for _ in 0..rounds {
            let (s, f) = (store.clone(), Arc::clone(&fx));
            let direct = run_for(n, seconds, move |c, i| {
                let (s, f) = (s.clone(), Arc::clone(&f));
                async move {
                    let p = f.patients[(c * 7919 + usize::try_from(i).unwrap_or(0)) % f.patients.len()];
                    s.bench_patient_read_direct(f.practice, f.actor, p).await.unwrap_or(false)
                }
            })
            .await;
            let (h, f, a, t) = (http.clone(), Arc::clone(&fx), Arc::clone(&app), Arc::clone(&token));
            let over_http = run_for(n, seconds, move |c, i| {
                let (h, f, a, t) = (h.clone(), Arc::clone(&f), Arc::clone(&a), Arc::clone(&t));
                async move {
                    let p = f.patients[(c * 7919 + usize::try_from(i).unwrap_or(0)) % f.patients.len()];
                    let url = a.url(&format!("/api/v1/practices/{}/patients/{p}", f.practice));
                    h.get(url).bearer_auth(t.as_str()).send().await.is_ok_and(|r| r.status().is_success())
                }
            })
            .await;
            best_direct = best_direct.max(direct);
            best_http = best_http.max(over_http);
        }
        println!("{n:>8} {best_direct:>14.0} {best_http:>14.0} {:>7.0}%", 100.0 * best_http / best_direct);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.bench {
        Bench::PatientRead { seconds, clients, rounds, pool } => {
            patient_read(seconds, clients, rounds, pool).await.context("patient-read benchmark")
        }
    }
}
