//! Encryption at rest (issue 5): raw rows and dumps hold no plaintext, ciphertexts are bound
//! to their row and practice, blind-index search, KEK and data-key rotation, a wrong KEK,
//! crypto-shredding with the audit log still verifying, legacy plaintext migration.

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{Duration, Utc};
use pgcluster::DbRole;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgConnection;
use store::crypto::{Keyring, LocalKeyProvider};
use testkit::{TestApp, TestDb, World};

use crate::util::call;

const GIVEN: &str = "Zyxcanaryqa";
const FAMILY: &str = "Qwvcanaryzz";
const EMAIL: &str = "zyxcanary.qwv@example.invalid";
const PHONE: &str = "+1 (555) 013-4242";
const PHONE_DIGITS: &str = "5550134242";
const DOB: &str = "1931-07-13";
const NOTE: &str = "Canary note Xqzcanarynote: molar 36 sensitive";

struct Fx {
    db: TestDb,
    w: World,
    app: TestApp,
    clin_a: String,
    clin_b: String,
    // Last: released after the servers and the database are dropped.
    _one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
}

/// These tests run one at a time (they start extra servers and run `pg_dump`): the load they
/// would add in parallel disturbs the timing-sensitive tests of other modules.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn fx() -> Fx {
    let guard = ONE_AT_A_TIME.lock().await;
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    // Clinicians here write notes for patients they create: both practices show clinical
    // records practice-wide (the care-team scope has its own tests).
    let mut su = db.superuser_unsafe().await;
    sqlx::query("update practice set settings = settings || '{\"clinical_scope\": \"practice\"}' where practice_id = any($1)")
        .bind(vec![w.a.id.as_uuid(), w.b.id.as_uuid()])
        .execute(&mut su)
        .await
        .unwrap();
    drop(su);
    let app = TestApp::start(&db).await;
    let clin_a = app.token(w.a.user("clinician")).await;
    let clin_b = app.token(w.b.user("clinician")).await;
    Fx {
        db,
        w,
        app,
        clin_a,
        clin_b,
        _one_at_a_time: guard,
    }
}

impl Fx {
    fn base(&self, b: bool) -> String {
        let p = if b { self.w.b.id } else { self.w.a.id };
        format!("/api/v1/practices/{p}")
    }

    async fn create(&self, b: bool, body: &Value) -> String {
        let token = if b { &self.clin_b } else { &self.clin_a };
        let (s, v) = call(
            &self.app,
            Method::POST,
            &format!("{}/patients", self.base(b)),
            Some(token),
            Some(body),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["patient_id"].as_str().unwrap().to_owned()
    }

    async fn get(&self, b: bool, id: &str) -> (StatusCode, Value) {
        let token = if b { &self.clin_b } else { &self.clin_a };
        call(
            &self.app,
            Method::GET,
            &format!("{}/patients/{id}", self.base(b)),
            Some(token),
            None,
        )
        .await
    }

    /// The error of practice A's clinician reading patient `id` through `store` (a real
    /// session entry, the store's read, no HTTP).
    async fn store_read_error(&self, store: &store::Store, id: &str) -> store::StoreError {
        let token = testkit::session_token(store, self.w.a.user("clinician")).await;
        let id = domain::PatientId::from_uuid(uuid::Uuid::parse_str(id).unwrap());
        testkit::read_patient(store, &token, self.w.a.id, id)
            .await
            .unwrap_err()
    }

    async fn search(&self, b: bool, body: &Value) -> Vec<String> {
        let token = if b { &self.clin_b } else { &self.clin_a };
        let (s, v) = call(
            &self.app,
            Method::POST,
            &format!("{}/patients/search", self.base(b)),
            Some(token),
            Some(body),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let mut ids: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["patient_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Every row of `table`, as text, read as superuser (bytea renders as hex).
pub(crate) async fn rows_text(su: &mut PgConnection, table: &str) -> String {
    let rows: Vec<String> = sqlx::query_scalar(&format!("select t::text from {table} t"))
        .fetch_all(su)
        .await
        .unwrap();
    rows.join("\n")
}

fn pg_dump() -> Option<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin/pg_dump"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop()
}

// req: ENC-01 — canary PHI written through every encrypted field appears nowhere in the raw
// rows nor in a dump of the database; the API still returns it.
#[tokio::test]
async fn raw_rows_and_dump_hold_no_plaintext() {
    let f = fx().await;
    let id = f
        .create(
            false,
            &json!({"given_name": GIVEN, "family_name": FAMILY, "email": EMAIL, "phone": PHONE, "date_of_birth": DOB}),
        )
        .await;
    let (s, v) = call(
        &f.app,
        Method::POST,
        &format!("{}/patients/{id}/notes", f.base(false)),
        Some(&f.clin_a),
        Some(&json!({"content": {"subjective": NOTE}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let note_id = v["note_id"].as_str().unwrap().to_owned();

    let (s, p) = f.get(false, &id).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (
            p["given_name"].as_str(),
            p["family_name"].as_str(),
            p["email"].as_str(),
            p["phone"].as_str(),
            p["date_of_birth"].as_str()
        ),
        (
            Some(GIVEN),
            Some(FAMILY),
            Some(EMAIL),
            Some(PHONE),
            Some(DOB)
        )
    );
    let (s, n) = call(
        &f.app,
        Method::GET,
        &format!("{}/notes/{note_id}", f.base(false)),
        Some(&f.clin_a),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(n["content"]["subjective"], NOTE);

    let canaries = [
        GIVEN,
        FAMILY,
        "zyxcanary",
        "canaryzz",
        "Xqzcanarynote",
        PHONE_DIGITS,
        "013-4242",
        DOB,
    ];
    let hexes: Vec<String> = canaries
        .iter()
        .map(|c| {
            c.bytes().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
        })
        .collect();
    let mut su = f.db.superuser_unsafe().await;
    for table in [
        "patient",
        "clinical_note",
        "patient_search_token",
        "practice_data_key",
        "audit_event",
    ] {
        let text = rows_text(&mut su, table).await;
        for (c, h) in canaries.iter().zip(&hexes) {
            assert!(!text.contains(c), "{table} holds plaintext {c}");
            assert!(
                !text.contains(h.as_str()),
                "{table} holds plaintext {c} as bytes"
            );
        }
    }
    let plain: i64 = sqlx::query_scalar(
        "select count(*) from patient where given_name is not null or family_name is not null
            or date_of_birth is not null or phone is not null or email is not null",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(plain, 0, "no plaintext column is written");

    if let Some(dump) = pg_dump() {
        // The shared test cluster: socket in `run/`, role passwords in `secrets/`.
        let cluster_dir = testkit::cluster_dir();
        let role = DbRole::Superuser.login_name();
        let password =
            std::fs::read_to_string(cluster_dir.join("secrets").join(role)).unwrap_or_default();
        let out = std::process::Command::new(&dump)
            .arg("--host")
            .arg(cluster_dir.join("run"))
            .arg("--username")
            .arg(role)
            .arg("--dbname")
            .arg(f.db.name())
            .arg("--data-only")
            .env("PGPASSWORD", password.trim())
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout);
                assert!(
                    text.contains("patient_search_token"),
                    "the dump has the data"
                );
                for (c, h) in canaries.iter().zip(&hexes) {
                    assert!(!text.contains(c), "pg_dump holds plaintext {c}");
                    assert!(!text.contains(h.as_str()), "pg_dump holds {c} as bytes");
                }
            }
            Ok(o) => eprintln!(
                "pg_dump not usable here ({}); raw rows were checked",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
            ),
            Err(e) => eprintln!("pg_dump not runnable ({e}); raw rows were checked"),
        }
    }
}

// A ciphertext copied to another patient's row, or into another practice, does not decrypt:
// the read fails (500, a clear error in the log), never shows another patient's data.
#[tokio::test]
async fn copied_ciphertext_fails_to_decrypt() {
    let f = fx().await;
    let p1 = f
        .create(
            false,
            &json!({"given_name": "Ann", "family_name": "Copysource"}),
        )
        .await;
    let p2 = f
        .create(
            false,
            &json!({"given_name": "Ben", "family_name": "Copytarget"}),
        )
        .await;
    let pb = f
        .create(
            true,
            &json!({"given_name": "Cal", "family_name": "Othertarget"}),
        )
        .await;
    let mut su = f.db.superuser_unsafe().await;
    for (practice, target) in [(f.w.a.id, &p2), (f.w.b.id, &pb)] {
        sqlx::query(
            "update patient set family_name_enc = (select family_name_enc from patient where patient_id = $1)
              where practice_id = $2 and patient_id = $3",
        )
        .bind(uuid::Uuid::parse_str(&p1).unwrap())
        .bind(practice.as_uuid())
        .bind(uuid::Uuid::parse_str(target).unwrap())
        .execute(&mut su)
        .await
        .unwrap();
    }
    let (s, v) = f.get(false, &p2).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(!v.to_string().contains("Copysource"));
    let (s, v) = f.get(true, &pb).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(!v.to_string().contains("Copysource"));
    // The store names the failure.
    let store = f.db.store().await;
    let err = f.store_read_error(&store, &p2).await;
    assert!(err.to_string().contains("CRYPTO-0001"), "{err}");
    // The source row still reads.
    assert_eq!(f.get(false, &p1).await.0, StatusCode::OK);
}

// Search by name prefix, date of birth and phone through blind indexes: exactly the expected
// patients, never another practice's, and each one shown is audited.
#[tokio::test]
async fn blind_index_search_finds_exactly_the_expected_patients() {
    let f = fx().await;
    let ada = f
        .create(
            false,
            &json!({"given_name": "Ada", "family_name": "Quillfeatherly", "date_of_birth": "1980-02-03", "phone": "(555) 010-2000"}),
        )
        .await;
    let bea = f
        .create(
            false,
            &json!({"given_name": "Béa", "family_name": "Quillfeatherly-Ørsted", "date_of_birth": "1991-05-06"}),
        )
        .await;
    let adam = f
        .create(
            false,
            &json!({"given_name": "Adam", "family_name": "Quincetreble", "date_of_birth": "1980-02-03", "phone": "+1 555 010 2001"}),
        )
        .await;
    // The same person in practice B: never in A's results.
    let ada_b = f
        .create(
            true,
            &json!({"given_name": "Ada", "family_name": "Quillfeatherly", "date_of_birth": "1980-02-03", "phone": "(555) 010-2000"}),
        )
        .await;

    let cases: &[(Value, Vec<&String>)] = &[
        (json!({"name_prefix": "quillfeath"}), vec![&ada, &bea]),
        (json!({"name_prefix": "QUILLFEATHERLY"}), vec![&ada, &bea]),
        (json!({"name_prefix": "ada quill"}), vec![&ada]),
        (json!({"name_prefix": "ad"}), vec![&ada, &adam]),
        (json!({"name_prefix": "bea orsted"}), vec![&bea]),
        (json!({"name_prefix": "quincetreblex"}), vec![]),
        (json!({"date_of_birth": "1980-02-03"}), vec![&ada, &adam]),
        (json!({"phone": "+1 555-010-2000"}), vec![&ada]),
        (json!({"phone": "5550102000"}), vec![&ada]),
        (
            json!({"name_prefix": "ad", "date_of_birth": "1980-02-03", "phone": "555 010 2001"}),
            vec![&adam],
        ),
    ];
    for (q, want) in cases {
        let got = f.search(false, q).await;
        let want = sorted(want.iter().map(|s| (*s).clone()).collect());
        assert_eq!(got, want, "{q}");
    }
    assert_eq!(
        f.search(true, &json!({"name_prefix": "quill"})).await,
        vec![ada_b.clone()]
    );

    // No usable criterion: refused.
    for bad in [
        json!({}),
        json!({"name_prefix": "a"}),
        json!({"phone": "12"}),
    ] {
        let (s, _) = call(
            &f.app,
            Method::POST,
            &format!("{}/patients/search", f.base(false)),
            Some(&f.clin_a),
            Some(&bad),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }

    // Each patient shown is audited as patient.list.
    let mut su = f.db.superuser_unsafe().await;
    let listed: i64 = sqlx::query_scalar(
        "select count(*) from audit_event where practice_id = $1 and action = 'patient.list' and patient_id = $2",
    )
    .bind(f.w.a.id.as_uuid())
    .bind(uuid::Uuid::parse_str(&adam).unwrap())
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(listed, 3, "adam was shown three times");
}

// req: ENC-02 — KEK rotation rewraps every data key; every record stays readable with a
// fresh keyring; a wrong KEK fails clearly.
#[tokio::test]
async fn kek_rotation_keeps_records_readable_and_a_wrong_kek_fails_clearly() {
    let f = fx().await;
    let id = f
        .create(
            false,
            &json!({"given_name": "Rota", "family_name": "Kekworth", "phone": "555 010 3000"}),
        )
        .await;
    let owner = f.db.owner().await;
    let (kek, report) = owner.rotate_kek_audited().await.unwrap();
    assert_eq!(kek.version, 2);
    assert_eq!(report.rewrapped, 2, "one data key per practice");
    let mut su = f.db.superuser_unsafe().await;
    let versions: Vec<i64> =
        sqlx::query_scalar("select distinct kek_version from practice_data_key")
            .fetch_all(&mut su)
            .await
            .unwrap();
    assert_eq!(versions, vec![2]);
    let audited: i64 =
        sqlx::query_scalar("select count(*) from audit_event where action = 'key.rotate_kek'")
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert_eq!(audited, 2);

    // A fresh server (empty key cache) reads everything.
    let app2 = TestApp::start(&f.db).await;
    let token = app2.token(f.w.a.user("clinician")).await;
    let (s, p) = call(
        &app2,
        Method::GET,
        &format!("{}/patients/{id}", f.base(false)),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["family_name"], "Kekworth");
    let (s, p) = call(
        &app2,
        Method::GET,
        &format!("{}/patients/{}", f.base(false), f.w.a.patient),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");

    // A keyring with another installation's KEK cannot unwrap the data keys.
    let dir = tempdir();
    let wrong = LocalKeyProvider::open(dir.join("keys")).await.unwrap();
    let keys = store::keys::PgKeyStore::connect(f.db.runtime_options().await)
        .await
        .unwrap();
    let keyring = Arc::new(Keyring::new(
        Arc::new(wrong),
        Arc::new(keys),
        Arc::new(domain::SystemClock),
    ));
    let store = store::Store::connect_runtime(f.db.runtime_options().await, 2)
        .await
        .unwrap()
        .with_keyring(keyring);
    let err = f.store_read_error(&store, &id).await;
    assert!(
        err.to_string().contains("CRYPTO-0011") || err.to_string().contains("CRYPTO-0010"),
        "{err}"
    );
    assert!(err.to_string().contains("wrong KEK"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "chartroom-enc-test-{}",
        uuid::Uuid::new_v4().simple()
    ))
}

// req: ENC-02 — a data-key rotation re-encrypts every row under the new version in batches;
// records and search keep working.
#[tokio::test]
async fn data_key_rotation_reencrypts_every_row() {
    let f = fx().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            f.create(
                false,
                &json!({"given_name": format!("Rot{i}"), "family_name": "Dekrotator", "date_of_birth": "1970-01-02"}),
            )
            .await,
        );
    }
    let (s, _) = call(
        &f.app,
        Method::POST,
        &format!("{}/patients/{}/notes", f.base(false), ids[0]),
        Some(&f.clin_a),
        Some(&json!({"content": {"subjective": "rotating note"}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    // Three blobs, registered through the runtime role like an upload would.
    let blob_dir = tempdir();
    let runtime = f.db.store().await;
    let blobs =
        store::crypto::BlobStore::local(&blob_dir, runtime.keyring().unwrap().clone()).unwrap();
    let mut registered = Vec::new();
    for i in 0..3u8 {
        let data = vec![i; 70_000 + usize::from(i)];
        let b = blobs.put_stream(f.w.a.id, &data[..]).await.unwrap();
        let store::Entry::Member(mut tx, _) = runtime
            .enter_practice(
                &store::TokenHash::from_presented(&f.clin_a).unwrap(),
                f.w.a.id,
                Utc::now(),
                &store::SessionPolicy::default(),
                domain::RequestId::new(),
                store::Access::Write,
            )
            .await
            .unwrap()
        else {
            panic!("member")
        };
        let id = tx.register_blob(&b).await.unwrap();
        tx.commit().await.unwrap();
        registered.push((id, data));
    }
    let owner = f.db.owner().await;
    owner
        .seed_perio_exam(
            f.w.a.id,
            f.w.a.patient,
            f.w.a.user("clinician"),
            perio::Settings::default(),
            &["three fourteen four"],
            Utc::now(),
        )
        .await
        .unwrap();
    // Retiring is refused while rows still need the version (nothing to retire yet: v1 only).
    assert!(
        owner
            .retire_data_keys_audited(f.w.a.id)
            .await
            .unwrap()
            .is_empty()
    );
    let owner_blobs =
        store::crypto::BlobStore::local(&blob_dir, owner.keyring().unwrap().clone()).unwrap();
    let mut batches = 0;
    let (v, r) = owner
        .rotate_data_key_audited(f.w.a.id, false, 2, None, &mut |_, _| batches += 1)
        .await
        .unwrap();
    assert_eq!(v.get(), 2);
    assert_eq!(
        (r.patients, r.notes, r.perio_exams, r.blobs),
        (6, 1, 1, 0),
        "5 + the world's patient, 1 note version, 1 perio exam; blobs not given"
    );
    // Version 1 still seals the blobs: retiring it is refused, naming the count.
    let err = owner.retire_data_keys_audited(f.w.a.id).await.unwrap_err();
    assert!(err.to_string().contains("3 rows or blobs"), "{err}");
    let (_, r) = owner
        .rotate_data_key_audited(f.w.a.id, true, 2, Some(&owner_blobs), &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(r.blobs, 3);
    for (id, data) in &registered {
        let store::Entry::Member(mut tx, _) = runtime
            .enter_practice(
                &store::TokenHash::from_presented(&f.clin_a).unwrap(),
                f.w.a.id,
                Utc::now(),
                &store::SessionPolicy::default(),
                domain::RequestId::new(),
                store::Access::Write,
            )
            .await
            .unwrap()
        else {
            panic!("member")
        };
        let row = tx.blob(*id).await.unwrap().unwrap();
        tx.commit().await.unwrap();
        assert_eq!(row.dek_version.get(), 2);
        assert_ne!(row.object_id, *id, "re-encrypted into a new object");
        let back = blobs
            .get_range(f.w.a.id, row.object_id, 0..data.len() as u64)
            .await
            .unwrap();
        assert_eq!(&back[..], &data[..]);
        assert!(
            blobs.get_range(f.w.a.id, *id, 0..1).await.is_err(),
            "the old object is deleted"
        );
    }
    // Now nothing needs version 1: it is retired, and everything still reads.
    let retired = owner.retire_data_keys_audited(f.w.a.id).await.unwrap();
    assert_eq!(retired.iter().map(|v| v.get()).collect::<Vec<_>>(), vec![1]);
    assert!(batches >= 3, "batched: {batches}");
    let mut su = f.db.superuser_unsafe().await;
    let stale: i64 = sqlx::query_scalar(
        "select count(*) from patient where practice_id = $1
            and substring(given_name_enc from 2 for 4) <> '\\x00000002'::bytea",
    )
    .bind(f.w.a.id.as_uuid())
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(stale, 0);
    // Resuming finds nothing left to do.
    let (_, again) = owner
        .rotate_data_key_audited(f.w.a.id, true, 2, Some(&owner_blobs), &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        (again.patients, again.notes, again.perio_exams, again.blobs),
        (0, 0, 0, 0)
    );
    // Reads and search through a fresh server.
    let app2 = TestApp::start(&f.db).await;
    let token = app2.token(f.w.a.user("clinician")).await;
    let (s, p) = call(
        &app2,
        Method::GET,
        &format!("{}/patients/{}", f.base(false), ids[3]),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (s, p["given_name"].as_str()),
        (StatusCode::OK, Some("Rot3"))
    );
    assert_eq!(
        f.search(false, &json!({"name_prefix": "dekrot"})).await,
        sorted(ids.clone())
    );
}

// Crypto-shredding: the practice's records become unreadable (clear error), the other
// practice is untouched, and the practice's audit log still verifies.
#[tokio::test]
async fn shredding_makes_rows_unreadable_and_the_audit_log_still_verifies() {
    let f = fx().await;
    let id = f
        .create(
            false,
            &json!({"given_name": "Shre", "family_name": "Ddington"}),
        )
        .await;
    let owner = f.db.owner().await;
    owner.shred_practice_audited(f.w.a.id).await.unwrap();

    let store = f.db.store().await;
    let err = f.store_read_error(&store, &id).await;
    assert!(err.to_string().contains("CRYPTO-0005"), "{err}");
    // The running server sees it within the cache TTL; a fresh one at once.
    let app2 = TestApp::start(&f.db).await;
    let token = app2.token(f.w.a.user("clinician")).await;
    let (s, _) = call(
        &app2,
        Method::GET,
        &format!("{}/patients/{id}", f.base(false)),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    // Practice B still reads.
    assert_eq!(
        f.get(true, &f.w.b.patient.to_string()).await.0,
        StatusCode::OK
    );
    // No key can be provisioned again.
    let keyring = f.db.keyring(DbRole::Runtime).await;
    assert!(keyring.ensure_practice_keys(f.w.a.id).await.is_err());

    // The audit log survives and verifies.
    let mut su = f.db.superuser_unsafe().await;
    let shred: i64 = sqlx::query_scalar(
        "select count(*) from audit_event where practice_id = $1 and action = 'key.shred'",
    )
    .bind(f.w.a.id.as_uuid())
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(shred, 1);
    store.sequence_pending(Utc::now()).await.unwrap();
    let outcome = owner
        .verify_practice(
            f.w.a.id,
            &audit::checkpoint::origin("chartroom/test", f.w.a.id.as_uuid()),
            Vec::new(),
            Duration::seconds(60),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(outcome.report.events_checked > 0);
}

// Rows written before encryption at rest (plaintext columns) read as before and are sealed
// by the start-up job, which empties the plaintext.
#[tokio::test]
async fn legacy_plaintext_rows_are_encrypted_at_start_up() {
    let f = fx().await;
    let legacy = uuid::Uuid::new_v4();
    let mut su = f.db.superuser_unsafe().await;
    sqlx::query(
        "insert into patient (practice_id, patient_id, given_name, family_name, date_of_birth, phone, email, created_at, updated_at)
         values ($1, $2, 'Lega', 'Cyplaintext', '1950-05-05', '555 010 4000', 'lega@example.invalid', now(), now())",
    )
    .bind(f.w.a.id.as_uuid())
    .bind(legacy)
    .execute(&mut su)
    .await
    .unwrap();
    let (s, p) = f.get(false, &legacy.to_string()).await;
    assert_eq!(
        (s, p["family_name"].as_str()),
        (StatusCode::OK, Some("Cyplaintext"))
    );

    let owner = f.db.owner().await;
    let pass = owner.encrypt_existing(100, &mut |_, _| {}).await.unwrap();
    assert!(pass.is_complete());
    let r = store::keys::ResealReport::total(pass.done.iter().map(|(_, r)| r));
    assert_eq!((r.patients, r.notes), (1, 0));
    let row: (Option<String>, Option<Vec<u8>>) =
        sqlx::query_as("select family_name, family_name_enc from patient where patient_id = $1")
            .bind(legacy)
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert!(row.0.is_none() && row.1.is_some());
    let (s, p) = f.get(false, &legacy.to_string()).await;
    assert_eq!(
        (s, p["family_name"].as_str(), p["date_of_birth"].as_str()),
        (StatusCode::OK, Some("Cyplaintext"), Some("1950-05-05"))
    );
    assert_eq!(
        f.search(false, &json!({"name_prefix": "cyplain"})).await,
        vec![legacy.to_string()]
    );
    let again = owner.encrypt_existing(100, &mut |_, _| {}).await.unwrap();
    let again = store::keys::ResealReport::total(again.done.iter().map(|(_, r)| r));
    assert_eq!((again.patients, again.notes), (0, 0));
}
