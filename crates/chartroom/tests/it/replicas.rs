//! Several `chartroom serve` replicas on one database behave as one (issue 21, several
//! replicas):
//! - sign-in throttling and the public pages' limit count in PostgreSQL, so attempts spread
//!   over two servers are throttled as if they had reached one;
//! - a rotation or a crypto-shredding made by one replica reaches every other replica's key
//!   cache within the stated bound ([`store::crypto::DEFAULT_RECHECK`]);
//! - signed audit checkpoints go to one shared object store, which any replica that holds the
//!   sequencer signs into and every replica's proof routes read;
//! - through the real binary: two `serve` processes on one external PostgreSQL share sessions
//!   and step-up, throttle together, keep serving and take the sequencer over when one is
//!   killed, lose no acknowledged write, and `audit verify` passes.
//!
//! Sessions, step-up (a session's `mfa_at`) and passkey ceremonies (`auth_challenge`) were
//! in PostgreSQL from the start; the real-binary test shows the first two across processes.

use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use audit::checkpoint::{Signer, origin};
use chrono::{DateTime, Duration, Utc};
use domain::ManualClock;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server::AppError;
use server::checkpoint::{Checkpointer, ObjectPlace, Place};
use server::identity::{Throttle, ThrottleConfig};
use store::crypto::{FieldContext, Keyring, field_dek_version};
use testkit::external_pg::ExternalPg;
use testkit::{PASSWORD, TestApp, TestDb, World};
use tokio::process::Command;
use tokio::sync::watch;

use crate::embedded_binary::{Running, client_for, launch, next_code};
use crate::identity::login;
use crate::util::{call, email_of};

const ORIGIN: &str = "test.example/chartroom/audit";

fn waits(got: Result<(), AppError>) -> i64 {
    match got {
        Err(AppError::Throttled(secs)) => secs,
        other => panic!("expected a wait, got {other:?}"),
    }
}

// The throttle's policy (free failures, doubling waits up to the cap, one alert
// per burst, the wait ends on its own), counted in the database by two replicas in turn.
// req: AU-03
#[tokio::test]
async fn backoff_is_bounded_ends_on_its_own_and_counts_across_replicas() {
    let db = TestDb::new().await;
    let (a, b) = (db.store().await, db.store().await);
    let replica = |i: usize| if i.is_multiple_of(2) { &a } else { &b };
    let th = Throttle::new(ThrottleConfig::default());
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    let t0: DateTime<Utc> = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let mut now = t0;
    for i in 0..5 {
        th.check(replica(i), "v@x.invalid", Some(ip), now)
            .await
            .unwrap();
        let out = th
            .fail(replica(i), "v@x.invalid", Some(ip), now)
            .await
            .unwrap();
        assert!(!out.burst_started, "failure {i} is free");
    }
    // The sixth failure (normalized to the same account) starts the burst and a 1 s wait,
    // which the other replica enforces.
    assert!(
        th.fail(&b, "V@x.invalid ", Some(ip), now)
            .await
            .unwrap()
            .burst_started
    );
    assert_eq!(waits(th.check(&a, "v@x.invalid", None, now).await), 1);
    // Another address is throttled for this account too.
    let other: IpAddr = "198.51.100.7".parse().unwrap();
    assert_eq!(
        waits(th.check(&b, "v@x.invalid", Some(other), now).await),
        1
    );
    // Waits double up to 15 minutes; one alert per burst: only the new address's own burst
    // (its 21st failure) raises one.
    let mut bursts = 0;
    for i in 0..30 {
        now += Duration::seconds(1);
        let out = th
            .fail(replica(i), "v@x.invalid", Some(other), now)
            .await
            .unwrap();
        bursts += usize::from(out.burst_started);
    }
    assert_eq!(bursts, 1);
    assert_eq!(waits(th.check(&a, "v@x.invalid", None, now).await), 15 * 60);
    // The wait ends by itself.
    now += Duration::minutes(15) + Duration::seconds(1);
    th.check(&b, "v@x.invalid", None, now).await.unwrap();
    // Other accounts from a fresh address were never affected.
    let third: IpAddr = "203.0.113.9".parse().unwrap();
    th.check(&a, "w@x.invalid", Some(third), t0).await.unwrap();
    // An address spraying many accounts is throttled by its own count.
    let sprayer: IpAddr = "192.0.2.5".parse().unwrap();
    for i in 0..20 {
        th.fail(replica(i), &format!("u{i}@x.invalid"), Some(sprayer), now)
            .await
            .unwrap();
    }
    th.check(&a, "fresh@x.invalid", Some(sprayer), now)
        .await
        .unwrap();
    assert!(
        th.fail(&b, "u21@x.invalid", Some(sprayer), now)
            .await
            .unwrap()
            .burst_started
    );
    assert!(
        th.check(&a, "fresh@x.invalid", Some(sprayer), now)
            .await
            .is_err()
    );
    th.check(&a, "fresh@x.invalid", None, now).await.unwrap();

    // The table holds hashes only: no email, no address in clear.
    let mut su = db.superuser_unsafe().await;
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as("select key_hash from auth_throttle")
        .fetch_all(&mut su)
        .await
        .unwrap();
    assert!(rows.len() >= 4, "{}", rows.len());
    for (k,) in &rows {
        assert_eq!(k.len(), 32);
        for clear in [&b"x.invalid"[..], &b"192.0.2"[..], &b"198.51.100"[..]] {
            assert!(!k.windows(clear.len()).any(|w| w == clear));
        }
    }
    let dump: String = sqlx::query_scalar("select string_agg(t::text, ' ') from auth_throttle t")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert!(
        !dump.contains("invalid") && !dump.contains("192.0.2"),
        "{dump}"
    );
    // A success clears the account's count; the sweep removes counts whose window ended.
    th.succeed(&a, "v@x.invalid").await.unwrap();
    assert!(a.sweep_throttles(now).await.unwrap() >= 1);
    assert!(
        b.sweep_throttles(now + Duration::minutes(16))
            .await
            .unwrap()
            >= 2
    );
    let left: i64 = sqlx::query_scalar("select count(*) from auth_throttle")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(left, 0);
    a.close().await;
    b.close().await;
}

// Two servers on one database: failures split between them are counted together
// (per process, each would still have had free attempts), the wait holds on both, and the
// public client pages' per-address limit is one limit too.
// req: AU-03
#[tokio::test]
async fn sign_in_attempts_on_two_servers_are_throttled_as_one() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let pages = |id: &mut server::identity::Identity| {
        id.client_pages = Throttle::new(ThrottleConfig {
            address_free: 2,
            ..ThrottleConfig::client_pages()
        });
    };
    let a = TestApp::start_configured(db.store().await, pages).await;
    let b = TestApp::start_configured(db.store().await, pages).await;
    let email = email_of(&db, w.a.user("admin")).await;
    for i in 0..6 {
        let app = if i % 2 == 0 { &a } else { &b };
        let (s, body) = login(app, &email, "wrong password here").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "attempt {i}: {body}");
    }
    for app in [&a, &b] {
        let (s, body) = login(app, &email, PASSWORD).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"]["code"], "AUTH-0007");
    }
    // Another account from the same address is not locked out by this burst.
    let other = email_of(&db, w.a.user("clinician")).await;
    assert_eq!(login(&b, &other, PASSWORD).await.0, StatusCode::OK);
    // The wait ends by itself; the success on A clears the account's count for B too.
    a.clock.advance(Duration::seconds(2));
    assert_eq!(login(&a, &email, PASSWORD).await.0, StatusCode::OK);
    let (s, body) = login(&b, &email, "wrong password again").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");

    // The public pages: two free requests per address, then every replica makes it wait.
    let path = format!("/api/v1/public/practices/{}/booking", w.a.id);
    for app in [&a, &b, &a] {
        let res = app.http.get(app.url(&path)).send().await.unwrap();
        assert_ne!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    for app in [&b, &a] {
        let res = app.http.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(res.headers().contains_key("retry-after"));
    }
}

/// A keyring like a server replica's: its own key store connection and cache, the
/// installation's KEK and practice secrets, the injected clock.
async fn replica_keyring(
    db: &TestDb,
    options: sqlx::postgres::PgConnectOptions,
    clock: &ManualClock,
) -> Arc<Keyring> {
    let keys = store::keys::PgKeyStore::connect(options).await.unwrap();
    Arc::new(
        Keyring::new(db.key_provider(), Arc::new(keys), Arc::new(clock.clone()))
            .with_practice_secrets(db.practice_secrets()),
    )
}

// issue 21 — a rotation or a crypto-shredding made by one replica (here as `chartroom keys`
// does, as the owner role) reaches another replica's key cache within the stated bound,
// `store::crypto::DEFAULT_RECHECK`, well inside the cache lifetime.
#[tokio::test]
async fn key_caches_see_another_replicas_rotation_and_shredding_within_the_bound() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let clock = ManualClock::starting_now();
    let first = replica_keyring(&db, db.owner_options().await, &clock).await;
    let second = replica_keyring(&db, db.runtime_options().await, &clock).await;
    assert_eq!(second.recheck(), store::crypto::DEFAULT_RECHECK);
    assert!(store::crypto::DEFAULT_RECHECK <= Duration::seconds(5));
    assert!(store::crypto::DEFAULT_RECHECK < store::crypto::keyring::DEFAULT_CACHE_TTL);

    // Rotation: the second replica seals under the new version once the bound has passed.
    let row = b"replica-row";
    let ctx = FieldContext::new(w.a.id, "patient", "given_name_enc", row);
    first.ensure_practice_keys(w.a.id).await.unwrap();
    let before = second.encrypt_field(&ctx, b"Synthetic").await.unwrap();
    let old = field_dek_version(&before).unwrap();
    let new = first.rotate_data_key(w.a.id).await.unwrap();
    assert!(new > old);
    clock.advance(store::crypto::DEFAULT_RECHECK);
    let after = second.encrypt_field(&ctx, b"Synthetic").await.unwrap();
    assert_eq!(field_dek_version(&after).unwrap(), new);
    assert_eq!(
        second.decrypt_field(&ctx, &before).await.unwrap(),
        b"Synthetic"
    );

    // Shredding: the second replica, which has the keys cached, refuses the practice's data
    // once the bound has passed (before, it may still answer from its cache).
    let ctx = FieldContext::new(w.b.id, "patient", "given_name_enc", row);
    first.ensure_practice_keys(w.b.id).await.unwrap();
    let sealed = first.encrypt_field(&ctx, b"Synthetic").await.unwrap();
    assert_eq!(
        second.decrypt_field(&ctx, &sealed).await.unwrap(),
        b"Synthetic"
    );
    first.destroy_practice_keys(w.b.id).await.unwrap();
    clock.advance(store::crypto::DEFAULT_RECHECK);
    for got in [
        second.decrypt_field(&ctx, &sealed).await.map(|_| ()),
        second.encrypt_field(&ctx, b"Synthetic").await.map(|_| ()),
    ] {
        assert!(
            matches!(got, Err(store::crypto::CryptoError::KeyDestroyed { .. })),
            "{got:?}"
        );
    }
    // The other practice is untouched.
    let ctx = FieldContext::new(w.a.id, "patient", "given_name_enc", row);
    assert_eq!(
        second.decrypt_field(&ctx, &after).await.unwrap(),
        b"Synthetic"
    );
}

/// Checkpoints in an object store (`object_store`'s local file system here; S3 and the others
/// are the same trait) under `dir`.
fn shared_place(dir: &Path) -> Place {
    let url = format!("file://{}", dir.display());
    let (store, prefix) =
        store::crypto::blob::object_store_from_url(&url, Vec::<(String, String)>::new()).unwrap();
    Place::Object(ObjectPlace::new(store, prefix, url))
}

/// `n` audited reads of practice A's patient, then everything queued sequenced.
async fn reads(store: &store::Store, w: &World, n: usize) {
    let token = testkit::session_token(store, w.a.user("reception")).await;
    for _ in 0..n {
        assert!(
            testkit::read_patient(store, &token, w.a.id, w.a.patient)
                .await
                .unwrap()
                .is_some()
        );
    }
    store.sequence_pending(Utc::now()).await.unwrap();
}

// Checkpoints in a shared object store: a replica that takes the sequencer over
// continues from the other's last checkpoint, the log verifies against the store, and a
// server's proof route reads the notes from it.
// req: AUD-02
#[tokio::test]
async fn replicas_sign_checkpoints_into_one_shared_object_store() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let store = db.store().await;
    let dir = std::env::temp_dir().join(format!("chartroom-cps-{}", uuid::Uuid::new_v4().simple()));
    let signer = Arc::new(Signer::generate("chartroom-test").unwrap());
    let first = Checkpointer::new(signer.clone(), shared_place(&dir), ORIGIN);
    let second = Checkpointer::new(signer.clone(), shared_place(&dir), ORIGIN);

    reads(&store, &w, 3).await;
    let s1 = first.checkpoint(&store, w.a.id).await.unwrap().unwrap();
    reads(&store, &w, 2).await;
    // The second replica has remembered nothing: it reads the first's checkpoint from the
    // store and signs a log that extends it.
    let s2 = second.checkpoint(&store, w.a.id).await.unwrap().unwrap();
    assert!(s2 > s1);
    let place = shared_place(&dir);
    let notes = place.notes(w.a.id.as_uuid()).await.unwrap();
    assert_eq!(notes.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [s1, s2]);
    // Back at the sequencer, the first replica reads what was signed meanwhile instead of
    // trusting what it remembered: nothing new to sign.
    first.forget_signed();
    assert_eq!(first.checkpoint(&store, w.a.id).await.unwrap(), Some(s2));
    assert_eq!(place.notes(w.a.id.as_uuid()).await.unwrap().len(), 2);

    // The log verifies against the shared store.
    let verifier = signer.verifier();
    let cps = notes
        .iter()
        .map(|(_, n)| verifier.open(n).unwrap())
        .collect();
    let out = db
        .owner()
        .await
        .verify_practice(
            w.a.id,
            &origin(ORIGIN, w.a.id.as_uuid()),
            cps,
            Duration::seconds(60),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(out.is_ok(), "{out:?}");

    // A server whose checkpoint store is the shared one serves the latest note.
    let app = TestApp::start_adjusted(
        db.store().await,
        |_| {},
        |r| r,
        server::assistant::Assistant::default(),
        |mut s| {
            s.checkpoints = Some(shared_place(&dir));
            s
        },
    )
    .await;
    let owner = app.token(w.a.user("owner")).await;
    let res = app
        .http
        .get(app.url(&format!("/api/v1/practices/{}/audit/checkpoint", w.a.id)))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), notes[1].1);
    let other_owner = app.token(w.b.user("owner")).await;
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{}/audit/checkpoint", w.b.id),
        Some(&other_owner),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "practice B has no checkpoint yet");
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `KEY='value'` lines of an environment file.
fn read_env(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.trim_matches('\'').to_owned())
        })
        .collect()
}

/// `chartroom --data-dir <data> --checkpoint-store-url <cps> <args…>` on the database `env`
/// names (and nothing from the caller's environment).
fn chartroom(data: &Path, cps: &str, env: &[(String, String)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chartroom"));
    cmd.arg("--data-dir")
        .arg(data)
        .args(["--checkpoint-store-url", cps])
        .args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("CHARTROOM_") || k.starts_with("PG") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn");
    cmd
}

/// A replica: `serve` on the shared database, data directory and checkpoint store.
async fn replica(data: &Path, cps: &str, env: &[(String, String)], demo: bool) -> Running {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--scribe-local",
        "off",
        "--checkpoint-every-secs",
        "1",
    ];
    if demo {
        args.push("--demo");
    }
    let mut cmd = chartroom(data, cps, env, &args);
    cmd.stderr(Stdio::inherit());
    launch(cmd).await
}

async fn post(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut req = http.post(url).json(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The load: patients created through both replicas, what was acknowledged, and failures.
struct Load {
    stop: AtomicBool,
    /// Set just before the first replica is killed: its failures from then on end its
    /// writers quietly.
    killed: AtomicBool,
    /// Acknowledged creations per replica: (replica, patient id, family name).
    acked: Mutex<Vec<(usize, String, String)>>,
    /// How many each replica acknowledged.
    counts: watch::Sender<[usize; 2]>,
    unexpected: Mutex<Vec<String>>,
}

/// Creates a patient; its id once the whole response arrived (only then is it acknowledged).
async fn create(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> Result<String, String> {
    let res = http
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = res.status();
    let text = res.text().await.map_err(|e| format!("body: {e}"))?;
    if status != StatusCode::CREATED {
        return Err(format!("status {status}: {text}"));
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    v["patient_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no id: {text}"))
}

async fn writer(
    http: reqwest::Client,
    url: String,
    token: String,
    replica: usize,
    client: usize,
    load: Arc<Load>,
) {
    let mut i = 0;
    while !load.stop.load(Ordering::SeqCst) {
        i += 1;
        let family = format!("Twinharbor {replica}-{client}-{i}");
        let body = json!({"given_name": "Replicaprobe", "family_name": family});
        match create(&http, &url, &token, &body).await {
            Ok(id) => {
                load.acked.lock().unwrap().push((replica, id, family));
                load.counts.send_modify(|c| c[replica] += 1);
            }
            Err(_) if replica == 0 && load.killed.load(Ordering::SeqCst) => return,
            Err(e) => {
                load.unexpected
                    .lock()
                    .unwrap()
                    .push(format!("replica {replica}: {e}"));
                return;
            }
        }
    }
}

/// The largest checkpoint size of `practice` in the shared store.
async fn latest_size(place: &Place, practice: uuid::Uuid) -> u64 {
    place
        .latest(practice)
        .await
        .unwrap()
        .and_then(|n| n.lines().nth(1).and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

// issue 21 — two real `chartroom serve` processes on one external PostgreSQL, one data
// directory and one checkpoint object store: a session opened on one is used (second factor,
// step-up) on the other; sign-in failures on both are throttled as one; under load on both,
// one is killed with SIGKILL and the other keeps serving and takes over the sequencer (new
// checkpoints appear); every acknowledged write is there and `audit verify` passes.
#[tokio::test]
async fn two_serve_processes_behave_as_one_and_survive_the_loss_of_one() {
    let pg = ExternalPg::start().await;
    let admin_password = pg
        .create_login("cloud_admin", "nosuperuser createrole createdb")
        .await;
    let data = pg.dir().join("chartroom-data");
    let env_file = pg.dir().join("db.env");
    let cps_dir = pg.dir().join("shared-checkpoints");
    let cps = format!("file://{}", cps_dir.display());
    let ca = pg.ca_file.to_str().unwrap().to_owned();
    let admin_url = pg.url("cloud_admin", "postgres", "sslmode=verify-full");
    let out = chartroom(
        &data,
        &cps,
        &[("PGPASSWORD".to_owned(), admin_password)],
        &[
            "--database-ca-file",
            &ca,
            "db",
            "bootstrap",
            "--admin-url",
            &admin_url,
            "--write-env",
            env_file.to_str().unwrap(),
        ],
    )
    .output()
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = read_env(&env_file);
    let out = chartroom(&data, &cps, &env, &["migrate"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Replica A seeds the demo; replica B joins it.
    let mut a = replica(&data, &cps, &env, true).await;
    let b = replica(&data, &cps, &env, false).await;
    let http = client_for(&data);
    let creds: Value =
        serde_json::from_slice(&std::fs::read(data.join("demo-credentials.json")).unwrap())
            .unwrap();
    let reception = creds
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["email"] == "reception@harbor.demo.invalid")
        .unwrap();
    let login_body = json!({"email": reception["email"], "password": reception["password"]});

    // Sessions and step-up are shared: the password on A, the authenticator enrolled on B
    // and confirmed on A; then the password on B, the code on A, and a change that needs a
    // fresh second factor made on B.
    let (s, first) = post(
        &http,
        format!("{}/api/v1/auth/login", a.base),
        None,
        &login_body,
    )
    .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["next"], "enroll_second_factor");
    let t0 = first["token"].as_str().unwrap();
    let (s, enroll) = post(
        &http,
        format!("{}/api/v1/auth/mfa/totp", b.base),
        Some(t0),
        &json!({}),
    )
    .await;
    assert_eq!(s, 200, "{enroll}");
    let key =
        server::identity::totp::TotpKey::from_uri(enroll["otpauth_uri"].as_str().unwrap()).unwrap();
    let mut last = 0;
    let (s, done) = post(
        &http,
        format!("{}/api/v1/auth/mfa/totp/confirm", a.base),
        Some(t0),
        &json!({"code": next_code(&key, &mut last)}),
    )
    .await;
    assert_eq!(s, 200, "{done}");
    let (s, second) = post(
        &http,
        format!("{}/api/v1/auth/login", b.base),
        None,
        &login_body,
    )
    .await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["next"], "second_factor");
    let (s, full) = post(
        &http,
        format!("{}/api/v1/auth/second-factor/totp", a.base),
        second["token"].as_str(),
        &json!({"code": next_code(&key, &mut last)}),
    )
    .await;
    assert_eq!(s, 200, "{full}");
    let token = full["token"].as_str().unwrap().to_owned();
    let (s, codes) = post(
        &http,
        format!("{}/api/v1/auth/mfa/recovery-codes", b.base),
        Some(&token),
        &json!({}),
    )
    .await;
    assert_eq!(s, 200, "step-up done on A counts on B: {codes}");
    let me: Value = http
        .get(format!("{}/api/v1/me", b.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let practice = me["practices"][0]["practice_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let practice_id: uuid::Uuid = practice.parse().unwrap();

    // Throttling is shared: failures alternate between the two processes; the wait starts
    // after the sixth failure in all (per process it would take twelve).
    let unknown = json!({"email": "nobody@harbor.demo.invalid", "password": "not the password"});
    let mut failures = 0;
    let mut throttled = false;
    for i in 0..24 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let (s, body) = post(&http, format!("{base}/api/v1/auth/login"), None, &unknown).await;
        match s {
            401 => failures += 1,
            429 => {
                throttled = true;
                break;
            }
            _ => panic!("{s}: {body}"),
        }
    }
    assert!(throttled);
    assert!(
        (6..=8).contains(&failures),
        "{failures} failures before the wait"
    );

    // Load on both: two writers per replica.
    let (counts, mut seen) = watch::channel([0_usize; 2]);
    let load = Arc::new(Load {
        stop: AtomicBool::new(false),
        killed: AtomicBool::new(false),
        acked: Mutex::new(Vec::new()),
        counts,
        unexpected: Mutex::new(Vec::new()),
    });
    let mut tasks = Vec::new();
    for (r, base) in [&a.base, &b.base].into_iter().enumerate() {
        for c in 0..2 {
            tasks.push(tokio::spawn(writer(
                http.clone(),
                format!("{base}/api/v1/practices/{practice}/patients"),
                token.clone(),
                r,
                c,
                load.clone(),
            )));
        }
    }
    let until = |n: usize| move |c: &[usize; 2]| c[0] >= n && c[1] >= n;
    tokio::time::timeout(StdDuration::from_secs(120), seen.wait_for(until(15)))
        .await
        .expect("load acknowledged on both replicas")
        .unwrap();
    assert_eq!(*load.unexpected.lock().unwrap(), Vec::<String>::new());

    // SIGKILL to A, under load.
    load.killed.store(true, Ordering::SeqCst);
    a.child.start_kill().unwrap();
    a.child.wait().await.unwrap();
    let place = Place::Object(ObjectPlace::new(
        store::crypto::blob::object_store_from_url(&cps, Vec::<(String, String)>::new())
            .unwrap()
            .0,
        String::new(),
        cps.clone(),
    ));
    let at_kill = latest_size(&place, practice_id).await;
    let b_at_kill = seen.borrow()[1];
    // B keeps serving…
    tokio::time::timeout(
        StdDuration::from_secs(120),
        seen.wait_for(|c| c[1] >= b_at_kill + 20),
    )
    .await
    .expect("B keeps acknowledging writes")
    .unwrap();
    // …and runs the sequencer now: a checkpoint larger than any at A's death is signed (only
    // B is alive to sign it).
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(60);
    while latest_size(&place, practice_id).await <= at_kill {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B did not take the sequencer over (checkpoint still at {at_kill})"
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    load.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*load.unexpected.lock().unwrap(), Vec::<String>::new());

    // Every acknowledged write is there, whichever replica acknowledged it.
    let acked = load.acked.lock().unwrap().clone();
    assert!(acked.iter().any(|(r, ..)| *r == 0) && acked.iter().any(|(r, ..)| *r == 1));
    for (r, id, family) in &acked {
        let got: Value = http
            .get(format!(
                "{}/api/v1/practices/{practice}/patients/{id}",
                b.base
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got["family_name"], *family, "acknowledged by replica {r}");
    }

    // A clean stop of B, then the logs verify against the shared checkpoint store.
    crate::embedded_binary::stop(b).await;
    let out = chartroom(&data, &cps, &env, &["audit", "verify"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.matches("no problems found").count(),
        3,
        "both demo practices and the installation's security log verify: {text}"
    );
    drop(a);
    pg.stop().await;
}
