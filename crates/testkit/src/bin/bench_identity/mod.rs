//! Identity benchmarks: sign-in throughput (password + TOTP) and the cost of the session check.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark harness: a broken fixture must stop the run"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use domain::Clock as _;
use serde_json::json;
use server::identity::totp::TotpKey;
use testkit::{PASSWORD, TestApp, TestDb, World};

use crate::{run_during, run_for};

/// Sign-ins per second, each a password check (argon2id) and a TOTP second factor, over
/// HTTPS with `clients` concurrent clients, against the argon2id verifications per second the
/// same two-thread hashing pool does alone (the floor of a sign-in's cost).
pub(crate) async fn sign_in(seconds: u64, clients: usize, users: usize) -> anyhow::Result<()> {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let store = store::Store::connect_runtime(db.runtime_options().await, 16)
        .await?
        .with_keyring(db.keyring(pgcluster::DbRole::Runtime).await);
    let app = Arc::new(
        TestApp::start_configured(store, |id| {
            id.throttle = server::identity::Throttle::new(server::identity::ThrottleConfig::off());
        })
        .await,
    );
    let owner = db.owner().await;
    let mut emails = Vec::new();
    for i in 0..users {
        let email = format!(
            "signin.{i}.{}@bench.example.invalid",
            uuid::Uuid::new_v4().simple()
        );
        let user = owner
            .create_user(&email, "bench", testkit::password_hash(), app.clock.now())
            .await?;
        owner
            .add_member(
                w.a.id,
                user,
                domain::RoleSet::from_iter([domain::Role::Reception]),
                app.clock.now(),
            )
            .await?;
        emails.push(email);
    }
    owner.close().await;
    // Enroll every user's authenticator through the API.
    println!("enrolling {users} users…");
    let keys: Arc<std::sync::Mutex<Vec<Option<TotpKey>>>> =
        Arc::new(std::sync::Mutex::new((0..users).map(|_| None).collect()));
    let next = Arc::new(AtomicUsize::new(0));
    let emails = Arc::new(emails);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (app, keys, next, emails) = (
            Arc::clone(&app),
            Arc::clone(&keys),
            Arc::clone(&next),
            Arc::clone(&emails),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(email) = emails.get(i) else { break };
                let key = enroll(&app, email).await;
                keys.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(key);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let keys: Arc<Vec<TotpKey>> = Arc::new(
        std::mem::take(
            &mut *keys
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_iter()
        .map(|k| k.expect("enrolled"))
        .collect(),
    );
    // The enrollment codes are spent: move to the next TOTP step.
    app.clock.advance(chrono::Duration::seconds(30));

    // Baseline: argon2id verifications per second on two threads (what the server's hashing
    // pool allows on this machine).
    let hash = testkit::password_hash().to_owned();
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(seconds);
    let mut threads = Vec::new();
    for _ in 0..2 {
        let hash = hash.clone();
        threads.push(std::thread::spawn(move || {
            let mut n = 0_u64;
            while Instant::now() < stop_at {
                assert!(server::password::verify_blocking(PASSWORD, &hash));
                n += 1;
            }
            n
        }));
    }
    let verified: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    let argon_rate = verified as f64 / started.elapsed().as_secs_f64();

    let next = Arc::new(AtomicUsize::new(0));
    let (a, k, e, n) = (
        Arc::clone(&app),
        Arc::clone(&keys),
        Arc::clone(&emails),
        Arc::clone(&next),
    );
    let rate = run_for(clients, seconds, move |_, _| {
        let (app, keys, emails, next) = (
            Arc::clone(&a),
            Arc::clone(&k),
            Arc::clone(&e),
            Arc::clone(&n),
        );
        async move {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let (Some(email), Some(key)) = (emails.get(i), keys.get(i)) else {
                panic!("not enough users for this run: raise --users");
            };
            full_sign_in(&app, email, key).await
        }
    })
    .await;
    println!(
        "sign-in (password + TOTP, 2 HTTPS requests), {clients} clients, {seconds} s, argon2id m=19456 t=2 p=1, hashing pool 2"
    );
    println!("{:>24} {:>12}", "", "per second");
    println!("{:>24} {:>12.1}", "argon2id verify alone", argon_rate);
    println!("{:>24} {:>12.1}", "full sign-in", rate);
    println!(
        "{:>24} {:>11.0}%",
        "sign-in / argon2 alone",
        100.0 * rate / argon_rate
    );
    Ok(())
}

async fn enroll(app: &TestApp, email: &str) -> TotpKey {
    let login: serde_json::Value = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login body");
    let token = login["token"].as_str().expect("token").to_owned();
    let e: serde_json::Value = app
        .http
        .post(app.url("/api/v1/auth/mfa/totp"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("enroll")
        .json()
        .await
        .expect("enroll body");
    let key = TotpKey::from_uri(e["otpauth_uri"].as_str().expect("uri")).expect("key");
    let res = app
        .http
        .post(app.url("/api/v1/auth/mfa/totp/confirm"))
        .bearer_auth(&token)
        .json(&json!({"code": key.code_at(app.clock.now())}))
        .send()
        .await
        .expect("confirm");
    assert!(res.status().is_success(), "confirm: {}", res.status());
    key
}

async fn full_sign_in(app: &TestApp, email: &str, key: &TotpKey) -> bool {
    let Ok(res) = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
    else {
        return false;
    };
    let Ok(login) = res.json::<serde_json::Value>().await else {
        return false;
    };
    let Some(token) = login["token"].as_str() else {
        return false;
    };
    app.http
        .post(app.url("/api/v1/auth/second-factor/totp"))
        .bearer_auth(token)
        .json(&json!({"code": key.code_at(app.clock.now())}))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// The authenticated patient read over HTTPS against the same read through the same stack with
/// no session check (the harness's baseline route, [`crate::baseline::Baseline::router`], which
/// takes practice, actor and role from its path on trust). The two paths alternate in short slices (A B B A …) for `seconds` each, so
/// that whatever the database does in the background lands on both alike; reported: requests
/// per second of each path over all its slices, the overhead from those totals, and the median
/// and spread of the per-pair overheads.
pub(crate) async fn session_check(
    seconds: u64,
    clients: Vec<usize>,
    slice_ms: u64,
) -> anyhow::Result<()> {
    let (db, w, patients) = crate::world_with_patients(1000, 7).await?;
    let patients = Arc::new(patients);
    let store = store::Store::connect_runtime(db.runtime_options().await, 16)
        .await?
        .with_keyring(db.keyring(pgcluster::DbRole::Runtime).await);
    // The baseline route: the same read on the harness's own runtime-role pool, with practice,
    // actor and role taken from the path on trust, behind the server's own request frame.
    let baseline =
        Arc::new(crate::baseline::Baseline::connect(&db, 16, store.keyring()?.clone()).await?);
    let app =
        Arc::new(TestApp::start_extended(store, |_| {}, |app| app.merge(baseline.router())).await);
    let actor = w.a.user("reception");
    let token = Arc::new(app.token(actor).await);
    let practice = w.a.id;
    let slice = Duration::from_millis(slice_ms.max(50));
    let pairs = usize::try_from((seconds * 1000).div_ceil(slice_ms.max(50)))
        .unwrap_or(1)
        .max(2);
    println!(
        "patient read by id over HTTPS: with the session check vs the same route without one; {pairs} interleaved slices of {} ms per path",
        slice.as_millis()
    );
    println!(
        "{:>8} {:>14} {:>12} {:>10} {:>16} {:>16}  {:>7} {:>7} {:>9}",
        "clients",
        "no session/s",
        "session/s",
        "overhead",
        "median of pairs",
        "pairs p10–p90",
        "CPU µs",
        "CPU µs",
        "CPU +"
    );
    // One request function for both paths (the same work apart from the route and the
    // bearer token); patients taken round-robin across all clients.
    let offset = Arc::new(AtomicUsize::new(0));
    let request = |authenticated: bool| {
        let (a, p, t, o) = (
            Arc::clone(&app),
            Arc::clone(&patients),
            Arc::clone(&token),
            Arc::clone(&offset),
        );
        Arc::new(move |_client: usize, _i: u64| {
            let (a, t) = (Arc::clone(&a), Arc::clone(&t));
            let pat = p[o.fetch_add(1, Ordering::Relaxed) % p.len()];
            async move {
                let req = if authenticated {
                    a.http
                        .get(a.url(&format!("/api/v1/practices/{practice}/patients/{pat}")))
                        .bearer_auth(t.as_str())
                } else {
                    a.http.get(a.url(&format!(
                        "/bench/unauthenticated/practices/{practice}/patients/{pat}/as/{actor}/reception"
                    )))
                };
                req.send().await.is_ok_and(|r| r.status().is_success())
            }
        })
    };
    let (plain, auth) = (request(false), request(true));
    for &n in &clients {
        // Warm-up, not counted.
        run_during(n, slice, Arc::clone(&plain)).await;
        run_during(n, slice, Arc::clone(&auth)).await;
        let (mut plain_rates, mut auth_rates) = (Vec::new(), Vec::new());
        let (mut plain_cpu, mut auth_cpu) = (CpuTotals::default(), CpuTotals::default());
        for k in 0..pairs {
            if k % 2 == 0 {
                plain_rates.push(measured_slice(n, slice, &plain, &mut plain_cpu).await);
                auth_rates.push(measured_slice(n, slice, &auth, &mut auth_cpu).await);
            } else {
                auth_rates.push(measured_slice(n, slice, &auth, &mut auth_cpu).await);
                plain_rates.push(measured_slice(n, slice, &plain, &mut plain_cpu).await);
            }
        }
        #[allow(clippy::cast_precision_loss, reason = "a few hundred slices")]
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (p_rate, a_rate) = (mean(&plain_rates), mean(&auth_rates));
        let mut overheads: Vec<f64> = plain_rates
            .iter()
            .zip(&auth_rates)
            .map(|(p, a)| 100.0 * (1.0 - a / p))
            .collect();
        overheads.sort_by(f64::total_cmp);
        let at = |q: f64| testkit::load::quantile(&overheads, q).unwrap_or(0.0);
        let cpu = match (plain_cpu.per_request(), auth_cpu.per_request()) {
            (Some(p), Some(a)) => format!(
                "{:>7.0} {:>7.0} {:>8.1}%",
                p * 1e6,
                a * 1e6,
                100.0 * (a / p - 1.0)
            ),
            _ => format!("{:>7} {:>7} {:>9}", "-", "-", "-"),
        };
        println!(
            "{n:>8} {p_rate:>14.0} {a_rate:>12.0} {:>9.1}% {:>15.1}% {:>7.1}% – {:.1}%  {cpu}",
            100.0 * (1.0 - a_rate / p_rate),
            at(0.5),
            at(0.1),
            at(0.9)
        );
    }
    Ok(())
}

/// Requests completed and CPU ticks spent in the slices of one path.
#[derive(Default)]
struct CpuTotals {
    requests: u64,
    ticks: u64,
}

impl CpuTotals {
    /// CPU seconds per request (clock ticks of 1/100 s, Linux's `USER_HZ`).
    fn per_request(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
        (self.requests > 0 && self.ticks > 0)
            .then(|| self.ticks as f64 / 100.0 / self.requests as f64)
    }
}

/// One slice of one path: its rate in requests per second; adds the requests it completed
/// and the CPU ticks the benchmark process and PostgreSQL spent meanwhile to `totals` (when
/// `/proc` can be read).
async fn measured_slice<F, Fut>(
    clients: usize,
    slice: Duration,
    f: &Arc<F>,
    totals: &mut CpuTotals,
) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let before = crate::cpu_ticks();
    let (count, elapsed) = crate::run_counted(clients, slice, Arc::clone(f)).await;
    if let (Some(b), Some(a)) = (before, crate::cpu_ticks()) {
        totals.requests += count;
        totals.ticks += a.saturating_sub(b);
    }
    #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
    let rate = count as f64 / elapsed.as_secs_f64();
    rate
}
