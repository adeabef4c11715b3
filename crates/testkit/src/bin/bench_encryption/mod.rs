//! Encryption at rest: the foundation benchmark's patient read with field encryption on vs
//! off.
//!
//! "On": patients written through the store (five fields sealed with AES-256-GCM under the
//! practice's data key; each read decrypts them). "Off": the same synthetic patients written
//! as pre-encryption rows (plaintext columns only), read by the same code path, which then has
//! nothing to decrypt. Same practice, same SQL shape, same audit append and commit, so the
//! ratio is the cost of field encryption on the read path. Both the store path without HTTP
//! (session entry, `store::patients::get`, audit, commit: [`testkit::read_patient`]) and the
//! authenticated HTTPS route are measured, alternating, best of `rounds`.

use std::sync::Arc;

use anyhow::Context as _;
use domain::PatientId;
use pgcluster::DbRole;
use testkit::{TestApp, TestDb, World};

use crate::run_for;

struct Fx {
    practice: domain::PracticeId,
    actor: domain::UserId,
    encrypted: Vec<PatientId>,
    plaintext: Vec<PatientId>,
}

/// Patient reads per second with field encryption on vs off.
pub(crate) async fn patient_read(
    seconds: u64,
    clients: Vec<usize>,
    rounds: usize,
    pool: u32,
) -> anyhow::Result<()> {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let owner = db.owner().await;
    let now = chrono::Utc::now();
    let mut generator = domain::synthetic::Generator::new(42);
    let mut encrypted = Vec::new();
    let mut plaintext = Vec::new();
    let mut su = db.superuser_unsafe().await;
    for _ in 0..1000 {
        let p: store::patients::NewPatient = generator.patient().into();
        encrypted.push(owner.seed_patient(w.a.id, &p, now).await?);
        let id = PatientId::new();
        sqlx::query(
            "insert into patient (practice_id, patient_id, given_name, family_name, date_of_birth, phone, email, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(w.a.id)
        .bind(id)
        .bind(&p.given_name)
        .bind(&p.family_name)
        .bind(p.date_of_birth)
        .bind(&p.phone)
        .bind(&p.email)
        .bind(now)
        .execute(&mut su)
        .await?;
        plaintext.push(id);
    }
    drop(su);
    owner.close().await;
    let fx = Arc::new(Fx {
        practice: w.a.id,
        actor: w.a.user("reception"),
        encrypted,
        plaintext,
    });
    let store = store::Store::connect_runtime(db.runtime_options().await, pool)
        .await?
        .with_keyring(db.keyring(DbRole::Runtime).await);
    let app = Arc::new(TestApp::start_with(store.clone()).await);
    let token = Arc::new(app.token(fx.actor).await);
    // Trusts the test certificate (the app serves HTTPS only).
    let http = app.http.clone();

    println!(
        "patient read by id, field encryption on vs off: 1000 + 1000 patients, pool {pool}, {seconds} s per run, {rounds} alternating rounds"
    );
    println!(
        "{:>8} {:>14} {:>14} {:>7} {:>14} {:>14} {:>7}",
        "clients", "direct off/s", "direct on/s", "on/off", "HTTP off/s", "HTTP on/s", "on/off"
    );
    for &n in &clients {
        let mut best = [0.0_f64; 4];
        for _ in 0..rounds {
            for (slot, enc, http_path) in [
                (0, false, false),
                (1, true, false),
                (2, false, true),
                (3, true, true),
            ] {
                let (s, f, h, a, t) = (
                    store.clone(),
                    Arc::clone(&fx),
                    http.clone(),
                    Arc::clone(&app),
                    Arc::clone(&token),
                );
                let rate = run_for(n, seconds, move |c, i| {
                    let (s, f, h, a, t) = (
                        s.clone(),
                        Arc::clone(&f),
                        h.clone(),
                        Arc::clone(&a),
                        Arc::clone(&t),
                    );
                    async move {
                        let ids = if enc { &f.encrypted } else { &f.plaintext };
                        let p = ids[(c * 7919 + usize::try_from(i).unwrap_or(0)) % ids.len()];
                        if http_path {
                            let url =
                                a.url(&format!("/api/v1/practices/{}/patients/{p}", f.practice));
                            h.get(url)
                                .bearer_auth(t.as_str())
                                .send()
                                .await
                                .is_ok_and(|r| r.status().is_success())
                        } else {
                            testkit::read_patient(&s, &t, f.practice, p)
                                .await
                                .is_ok_and(|found| found.is_some())
                        }
                    }
                })
                .await;
                best[slot] = best[slot].max(rate);
            }
        }
        println!(
            "{n:>8} {:>14.0} {:>14.0} {:>6.1}% {:>14.0} {:>14.0} {:>6.1}%",
            best[0],
            best[1],
            100.0 * best[1] / best[0],
            best[2],
            best[3],
            100.0 * best[3] / best[2],
        );
    }
    // The "off" rows are what `serve` encrypts at start-up; show that they read the same.
    let one = *fx.plaintext.first().context("patients")?;
    anyhow::ensure!(
        testkit::read_patient(&store, &token, fx.practice, one)
            .await?
            .is_some(),
        "plaintext row unreadable"
    );
    Ok(())
}
