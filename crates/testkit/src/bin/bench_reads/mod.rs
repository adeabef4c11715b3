//! Audited reads against unaudited ones (issue 16's figures).
//!
//! - **Patient read**: the product's patient route over HTTPS (session check, read-only
//!   transaction, decryption, its audit event made durable by the group-commit writer before
//!   the response leaves) against the same read as raw SQL on the harness's own runtime-role
//!   pool **without** an audit event (the floor) and with one in its own transaction (the
//!   pre-group-commit shape). The three paths alternate within each round (A B C, then C B A);
//!   reported: rates, the HTTPS / no-audit ratio per round and its mean, the HTTPS latency
//!   percentiles over all rounds, and the writer's batch sizes during the HTTPS runs.
//! - **A single uncontended read**: one client, `store` level, the same read entered as
//!   [`store::Access::Read`] (event through the writer) and as [`store::Access::Write`] (event
//!   in the read's own transaction), alternating slices; reported: median and p99 of each and
//!   their difference — what group commit adds (or saves) when there is nothing to batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{PatientId, PracticeId, UserId};
use store::group_commit::{BATCH_BUCKETS, WriterSnapshot};
use testkit::TestApp;

use crate::baseline::Baseline;

/// The fixture both parts read from.
struct Fixture {
    practice: PracticeId,
    actor: UserId,
    patients: Vec<PatientId>,
}

impl Fixture {
    /// The patient client `c` reads at its `i`-th request (spread over the whole set).
    fn pick(&self, c: usize, i: u64) -> PatientId {
        self.patients[(c * 7919 + usize::try_from(i).unwrap_or(0)) % self.patients.len()]
    }
}

/// The latency at quantile `q` of a sorted sample, in microseconds (0 if empty).
fn percentile(sorted: &[Duration], q: f64) -> u128 {
    testkit::load::quantile(sorted, q).map_or(0, |d| d.as_micros())
}

/// `clients` concurrent loops of `f` for `duration`: requests per second and every request's
/// latency. A request that fails stops the benchmark.
async fn run_timed<F, Fut>(clients: usize, duration: Duration, f: Arc<F>) -> (f64, Vec<Duration>)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let f = Arc::clone(&f);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0_u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                assert!(f(c, i).await, "request failed");
                lat.push(t.elapsed());
                i += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let elapsed = started.elapsed();
    #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
    let rate = all.len() as f64 / elapsed.as_secs_f64();
    (rate, all)
}

/// The writer's batch-size distribution as `size: batches` pairs (empty buckets left out).
fn batch_sizes(s: &WriterSnapshot) -> String {
    let mut out = Vec::new();
    let mut low = 1;
    for (i, n) in s.buckets.iter().enumerate() {
        let label = match BATCH_BUCKETS.get(i) {
            Some(&high) if high == low => format!("{high}"),
            Some(&high) => format!("{low}–{high}"),
            None => format!(">{}", BATCH_BUCKETS[BATCH_BUCKETS.len() - 1]),
        };
        if *n > 0 {
            out.push(format!("{label}: {n}"));
        }
        low = BATCH_BUCKETS.get(i).map_or(low, |h| h + 1);
    }
    out.join(", ")
}

#[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The benchmark: `seconds` per path per round at each client count, `rounds` rounds, then
/// `single_seconds` of single-client slices for the uncontended latency.
pub(crate) async fn reads(
    seconds: u64,
    clients: Vec<usize>,
    rounds: usize,
    pool: u32,
    single_seconds: u64,
) -> anyhow::Result<()> {
    let (db, w, patients) = crate::world_with_patients(1000, 16).await?;
    let fx = Arc::new(Fixture {
        practice: w.a.id,
        actor: w.a.user("reception"),
        patients,
    });
    let store = store::Store::connect_runtime(db.runtime_options().await, pool)
        .await?
        .with_keyring(db.keyring(pgcluster::DbRole::Runtime).await);
    let sql = Arc::new(Baseline::connect(&db, pool, store.keyring()?.clone()).await?);
    let app = Arc::new(TestApp::start_with(store.clone()).await);
    let token = Arc::new(app.token(fx.actor).await);

    let sql_read = |audit: bool| {
        let (b, f) = (Arc::clone(&sql), Arc::clone(&fx));
        Arc::new(move |c: usize, i: u64| {
            let (b, f) = (Arc::clone(&b), Arc::clone(&f));
            async move {
                b.read_patient_audited(f.practice, f.actor, "{reception}", f.pick(c, i), audit)
                    .await
                    .is_ok_and(|found| found.is_some())
            }
        })
    };
    let (plain, audited) = (sql_read(false), sql_read(true));
    let https = {
        let (a, f, t) = (Arc::clone(&app), Arc::clone(&fx), Arc::clone(&token));
        Arc::new(move |c: usize, i: u64| {
            let (a, f, t) = (Arc::clone(&a), Arc::clone(&f), Arc::clone(&t));
            async move {
                let url = a.url(&format!(
                    "/api/v1/practices/{}/patients/{}",
                    f.practice,
                    f.pick(c, i)
                ));
                a.http
                    .get(url)
                    .bearer_auth(t.as_str())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
    };

    // The decomposition (same runs, alternating): the product's database path alone (session
    // check, read-only transaction, read, decryption, the event through the group-commit
    // writer; no HTTP), and an HTTPS request with the same session check whose reads are not
    // audited (`GET /api/v1/me`: profile, practices and factors, three reads).
    let single = |access: store::Access| {
        let (s, f, t) = (store.clone(), Arc::clone(&fx), Arc::clone(&token));
        Arc::new(move |c: usize, i: u64| {
            let (s, f, t) = (s.clone(), Arc::clone(&f), Arc::clone(&t));
            async move {
                testkit::read_patient_for(&s, &t, f.practice, f.pick(c, i), access)
                    .await
                    .is_ok_and(|found| found.is_some())
            }
        })
    };
    let db_path = single(store::Access::Read);
    let https_me = {
        let (a, t) = (Arc::clone(&app), Arc::clone(&token));
        Arc::new(move |_: usize, _: u64| {
            let (a, t) = (Arc::clone(&a), Arc::clone(&t));
            async move {
                a.http
                    .get(a.url("/api/v1/me"))
                    .bearer_auth(t.as_str())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
    };

    // The raw read entered through the session check (`app.enter`) instead of on trust, still
    // without audit: what the session check costs in the database.
    let sql_session = {
        let (b, f) = (Arc::clone(&sql), Arc::clone(&fx));
        let hash = Arc::new(crate::baseline::SessionHash::of(&token));
        Arc::new(move |c: usize, i: u64| {
            let (b, f, h) = (Arc::clone(&b), Arc::clone(&f), Arc::clone(&hash));
            async move {
                b.read_patient_with_session(&h, f.practice, f.pick(c, i))
                    .await
                    .is_ok_and(|found| found.is_some())
            }
        })
    };
    // The floor of any request: TLS, HTTP and routing, refused before the database (a token
    // that is not the shape of one is refused without a query).
    let https_floor = {
        let a = Arc::clone(&app);
        Arc::new(move |_: usize, _: u64| {
            let a = Arc::clone(&a);
            async move {
                a.http
                    .get(a.url("/api/v1/me"))
                    .bearer_auth("not-a-token")
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == reqwest::StatusCode::UNAUTHORIZED)
            }
        })
    };

    println!(
        "patient read by id: {} patients, pool {pool}, {seconds} s per path per round, {rounds} rounds (paths alternating, reversed every other round)",
        fx.patients.len()
    );
    println!(
        "{:>7} {:>12} {:>12} {:>10} {:>16} {:>22} {:>20}",
        "clients",
        "SQL no audit",
        "SQL audited",
        "HTTPS",
        "HTTPS/no audit",
        "per round",
        "HTTPS p50/p95/p99 ms"
    );
    let slice = Duration::from_secs(seconds);
    let mut decomposition = Vec::new();
    for &n in &clients {
        // Warm-up, not counted.
        run_timed(n, Duration::from_secs(1), Arc::clone(&plain)).await;
        run_timed(n, Duration::from_secs(1), Arc::clone(&https)).await;
        let (mut p_rates, mut a_rates, mut h_rates, mut ratios) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut d_rates, mut m_rates, mut f_rates, mut s_rates) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut lat = Vec::new();
        let mut batches = WriterSnapshot::default();
        for r in 0..rounds {
            let mut order = [0, 1, 2, 3, 4, 5, 6];
            if r % 2 == 1 {
                order.reverse();
            }
            let (mut p, mut h) = (0.0, 0.0);
            for path in order {
                match path {
                    0 => {
                        p = run_timed(n, slice, Arc::clone(&plain)).await.0;
                        p_rates.push(p);
                    }
                    1 => {
                        let before = store.audit_writer_stats();
                        let (rate, l) = run_timed(n, slice, Arc::clone(&https)).await;
                        let during = store.audit_writer_stats().since(&before);
                        batches = add(&batches, &during);
                        h = rate;
                        h_rates.push(rate);
                        lat.extend(l);
                    }
                    2 => a_rates.push(run_timed(n, slice, Arc::clone(&audited)).await.0),
                    3 => d_rates.push(run_timed(n, slice, Arc::clone(&db_path)).await.0),
                    4 => m_rates.push(run_timed(n, slice, Arc::clone(&https_me)).await.0),
                    5 => f_rates.push(run_timed(n, slice, Arc::clone(&https_floor)).await.0),
                    _ => s_rates.push(run_timed(n, slice, Arc::clone(&sql_session)).await.0),
                }
            }
            ratios.push(100.0 * h / p);
        }
        decomposition.push((
            n,
            mean(&p_rates),
            mean(&s_rates),
            mean(&d_rates),
            mean(&f_rates),
            mean(&m_rates),
            mean(&h_rates),
        ));
        lat.sort();
        let per_round: Vec<String> = ratios.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "{n:>7} {:>12.0} {:>12.0} {:>10.0} {:>15.0}% {:>22} {:>20}",
            mean(&p_rates),
            mean(&a_rates),
            mean(&h_rates),
            mean(&ratios),
            per_round.join(", "),
            format!(
                "{:.1} / {:.1} / {:.1}",
                ms(percentile(&lat, 0.50)),
                ms(percentile(&lat, 0.95)),
                ms(percentile(&lat, 0.99))
            )
        );
        #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
        let per_batch = batches.events as f64 / batches.batches.max(1) as f64;
        println!(
            "{:>7} group commit during the HTTPS runs: {} events in {} batches (mean {per_batch:.1}); batch sizes {}",
            "",
            batches.events,
            batches.batches,
            batch_sizes(&batches)
        );
    }
    println!("where the time goes (reads/s, and each as a share of SQL without audit):");
    println!(
        "{:>7} {:>12} {:>20} {:>18} {:>18} {:>20} {:>20}",
        "clients",
        "SQL no audit",
        "SQL + session check",
        "product DB path",
        "HTTPS, no DB (401)",
        "HTTPS /me, no audit",
        "HTTPS patient read"
    );
    for (n, p, s, d, f, m, h) in decomposition {
        let share = |x: f64| format!("{x:.0} ({:.0} %)", 100.0 * x / p);
        println!(
            "{n:>7} {p:>12.0} {:>20} {:>18} {:>18} {:>20} {:>20}",
            share(s),
            share(d),
            share(f),
            share(m),
            share(h)
        );
    }

    // One client, nothing to batch with: the read entered for reading (event through the
    // writer) vs entered for writing (event in its own transaction), alternating slices.
    let (through_writer, own_tx) = (single(store::Access::Read), single(store::Access::Write));
    let slices = single_seconds.max(2) * 2;
    let slice = Duration::from_millis(500);
    let (mut w_lat, mut o_lat) = (Vec::new(), Vec::new());
    let before = store.audit_writer_stats();
    for k in 0..slices {
        if k % 2 == 0 {
            w_lat.extend(run_timed(1, slice, Arc::clone(&through_writer)).await.1);
            o_lat.extend(run_timed(1, slice, Arc::clone(&own_tx)).await.1);
        } else {
            o_lat.extend(run_timed(1, slice, Arc::clone(&own_tx)).await.1);
            w_lat.extend(run_timed(1, slice, Arc::clone(&through_writer)).await.1);
        }
    }
    let during = store.audit_writer_stats().since(&before);
    w_lat.sort();
    o_lat.sort();
    println!(
        "single uncontended read ({} + {} reads, {slices} alternating slices of {} ms per path):",
        w_lat.len(),
        o_lat.len(),
        slice.as_millis()
    );
    for (label, l) in [
        (
            "event through the group-commit writer (Access::Read)",
            &w_lat,
        ),
        (
            "event in the read's own transaction (Access::Write)",
            &o_lat,
        ),
    ] {
        println!(
            "  {label:<56} median {:.3} ms, p99 {:.3} ms",
            ms(percentile(l, 0.5)),
            ms(percentile(l, 0.99))
        );
    }
    #[allow(clippy::cast_precision_loss, reason = "microseconds")]
    let diff = |q| percentile(&w_lat, q) as f64 - percentile(&o_lat, q) as f64;
    println!(
        "  added by group commit: median {:+.3} ms, p99 {:+.3} ms; writer batch sizes {}",
        diff(0.5) / 1000.0,
        diff(0.99) / 1000.0,
        batch_sizes(&during)
    );
    Ok(())
}

#[allow(clippy::cast_precision_loss, reason = "microseconds")]
fn ms(us: u128) -> f64 {
    us as f64 / 1000.0
}

/// The sum of two writer snapshots (counts over several runs).
fn add(a: &WriterSnapshot, b: &WriterSnapshot) -> WriterSnapshot {
    let len = a.buckets.len().max(b.buckets.len());
    WriterSnapshot {
        batches: a.batches + b.batches,
        events: a.events + b.events,
        failed_batches: a.failed_batches + b.failed_batches,
        buckets: (0..len)
            .map(|i| a.buckets.get(i).unwrap_or(&0) + b.buckets.get(i).unwrap_or(&0))
            .collect(),
    }
}
