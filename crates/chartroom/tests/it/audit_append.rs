//! Issue 15.1 and 15.2: one audit append and one tenant entry. A transaction that opened sealed
//! patient data cannot commit without its audit event; events are validated on write and
//! stamped by the injected clock; `chartroom notes verify` is audited; a backup or restore
//! that cannot be audited does not run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::{AuditAction, PatientId, PracticeId};
use pgcluster::{Cluster, ClusterConfig, DATABASE, DbRole};
use serde_json::json;
use sqlx::{Connection as _, PgConnection};
use store::StoreError;
use testkit::{TestApp, TestDb, World};

use crate::backup::{chartroom, keyring_for};
use crate::sealed_columns::as_member;

fn fresh_dir() -> PathBuf {
    Path::new("/tmp").join(format!(
        "chartroom-it-append-{}",
        uuid::Uuid::new_v4().simple()
    ))
}

/// Actor, patient, object type, object id and details of an audit event.
type VerifyEvent = (
    Option<uuid::Uuid>,
    Option<uuid::Uuid>,
    Option<String>,
    Option<uuid::Uuid>,
    serde_json::Value,
);

async fn events(su: &mut PgConnection, practice: PracticeId, action: &str) -> i64 {
    sqlx::query_scalar("select count(*) from audit_event where practice_id = $1 and action = $2")
        .bind(practice)
        .bind(action)
        .fetch_one(su)
        .await
        .unwrap()
}

// issue 15.1 — a transaction that decrypted a patient field and appended no audit event fails
// to commit, and nothing it changed stays; an event appended before the decryption does not
// count; the same transaction with its event commits. req: AUD-01
#[tokio::test]
async fn a_transaction_that_decrypted_patient_data_without_an_audit_event_fails_to_commit() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let store = db.store().await;
    let keyring = store.keyring().unwrap().clone();
    let clinician = w.a.user("clinician");
    let patient = w.a.patient;
    let mut su = db.superuser_unsafe().await;
    let reads_before = events(&mut su, w.a.id, "patient.read").await;

    // A read, no event.
    let mut tx = as_member(&app, &store, clinician, w.a.id).await;
    let p = store::patients::get(&mut tx, &keyring, patient)
        .await
        .unwrap()
        .unwrap();
    assert!(!p.family_name.is_empty());
    let err = tx.commit().await.unwrap_err();
    assert!(matches!(err, StoreError::AuditFailed(_)), "{err}");

    // A change that decrypts the record, no event: refused, and the change is gone.
    let mut tx = as_member(&app, &store, clinician, w.a.id).await;
    let patch = store::patients::PatientPatch {
        phone: Some(Some("+1 555 0100 9999".to_owned())),
        ..store::patients::PatientPatch::default()
    };
    store::patients::update(&mut tx, &keyring, patient, &patch)
        .await
        .unwrap()
        .unwrap();
    let err = tx.commit().await.unwrap_err();
    assert!(matches!(err, StoreError::AuditFailed(_)), "{err}");

    // An event appended before the decryption does not cover it.
    let mut tx = as_member(&app, &store, clinician, w.a.id).await;
    tx.audit(AuditAction::PatientList, None, None)
        .await
        .unwrap();
    store::patients::get(&mut tx, &keyring, patient)
        .await
        .unwrap()
        .unwrap();
    assert!(tx.commit().await.is_err());

    // With its event, the same read commits; the phone is unchanged.
    let mut tx = as_member(&app, &store, clinician, w.a.id).await;
    let again = store::patients::get(&mut tx, &keyring, patient)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.phone, p.phone);
    tx.audit_patient(AuditAction::PatientRead, patient)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        events(&mut su, w.a.id, "patient.read").await,
        reads_before + 1
    );
    assert_eq!(events(&mut su, w.a.id, "patient.list").await, 0);
}

// issue 15.1 — events are validated on write: free text in the details is refused with the
// audit error (naming the rule, not the value), and the transaction cannot commit the read it
// meant to cover.
#[tokio::test]
async fn an_event_with_free_text_is_refused_on_write() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let store = db.store().await;
    let keyring = store.keyring().unwrap().clone();
    let mut tx = as_member(&app, &store, w.a.user("clinician"), w.a.id).await;
    store::patients::get(&mut tx, &keyring, w.a.patient)
        .await
        .unwrap()
        .unwrap();
    let err = tx
        .audit_details(
            AuditAction::PatientRead,
            Some(w.a.patient),
            Some(domain::AuditObject::patient(w.a.patient)),
            Some(json!({"reason": "Zqxcanary was upset"})),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AuditFailed(_)), "{err}");
    let message = err.to_string();
    assert!(message.contains("detail \"reason\""), "{message}");
    assert!(!message.contains("Zqxcanary"), "{message}");
    assert!(tx.commit().await.is_err());
}

// issue 15.1 — the owner role's events (key management, the installation log) are stamped by
// the owner store's injected clock, not by the database's `now()`.
#[tokio::test]
async fn owner_events_are_stamped_by_the_injected_clock() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let at: DateTime<Utc> = "2031-02-03T04:05:06.789012Z".parse().unwrap();
    let owner = db
        .owner()
        .await
        .with_clock(Arc::new(domain::ManualClock::new(at)));
    owner
        .rotate_data_key_audited(w.a.id, false, 100, None, &mut |_, _| {})
        .await
        .unwrap();
    owner
        .audit_system_event(AuditAction::BackupCreate, json!({"archive_id": "test"}))
        .await
        .unwrap();
    let mut su = db.superuser_unsafe().await;
    let stamped: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "select action, occurred_at from audit_event
          where action in ('key.rotate_data_key', 'key.reencrypt', 'backup.create')
          order by action",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(
        stamped,
        vec![
            ("backup.create".to_owned(), at),
            ("key.reencrypt".to_owned(), at),
            ("key.rotate_data_key".to_owned(), at),
        ]
    );
}

// issue 15.2 — `chartroom notes verify` decrypts every note version; each note it checks
// leaves a `note.verify` event (no actor, its patient and note, `via: cli`, the result) in the
// practice's log. req: INT-01
#[tokio::test]
async fn notes_verify_leaves_an_audit_event() {
    let dir = fresh_dir();
    let (ok, out, err) = chartroom(&dir, &["practice", "create", "--name", "Verify Dental"]).await;
    assert!(ok, "{out} {err}");
    let practice: PracticeId = out.trim().parse().unwrap();

    // A patient with a signed-in clinician's note, seeded as the owner role on the data
    // directory's own keys.
    let cluster = Cluster::start(ClusterConfig::new(&dir)).await.unwrap();
    let owner = store::OwnerStore::connect(cluster.connect_options(DbRole::Owner, DATABASE))
        .await
        .unwrap()
        .with_keyring(keyring_for(&dir, &cluster).await);
    let now = Utc::now();
    let author = owner
        .create_user(
            "verify.author@example.invalid",
            "Verify Author",
            testkit::password_hash(),
            now,
        )
        .await
        .unwrap();
    let mut g = domain::synthetic::Generator::new(15);
    let patient: PatientId = owner
        .seed_patient(practice, &g.patient().into(), now)
        .await
        .unwrap();
    let note = owner
        .seed_note(practice, patient, author, "Synthetic finding 15", now)
        .await
        .unwrap();
    owner.close().await;
    cluster.stop().await.unwrap();

    let (ok, out, err) = chartroom(
        &dir,
        &["notes", "verify", "--practice", &practice.to_string()],
    )
    .await;
    assert!(ok, "{out} {err}");
    assert!(out.contains("no problems found"), "{out}");

    let cluster = Cluster::start(ClusterConfig::new(&dir)).await.unwrap();
    let mut su = PgConnection::connect_with(&cluster.connect_options(DbRole::Superuser, DATABASE))
        .await
        .unwrap();
    let rows: Vec<VerifyEvent> = sqlx::query_as(
        "select actor_id, patient_id, object_type, object_id, details from audit_event
              where practice_id = $1 and action = 'note.verify'",
    )
    .bind(practice)
    .fetch_all(&mut su)
    .await
    .unwrap();
    drop(su);
    cluster.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (actor, about, kind, object, details) = &rows[0];
    assert_eq!(
        (*actor, *about, kind.as_deref(), *object),
        (
            None,
            Some(patient.as_uuid()),
            Some("note"),
            Some(note.as_uuid())
        )
    );
    assert_eq!(details["via"], "cli", "{details}");
    assert_eq!(details["ok"], true, "{details}");
}

// issue 15.2 — a backup that could not be put on the audit log does not run: with an external
// database and no owner role, `backup create` refuses before it dumps anything.
#[tokio::test]
async fn a_backup_that_cannot_be_audited_refuses_to_run() {
    let dir = fresh_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let archive = dir.join("unaudited.crbk");
    let (ok, out, err) = chartroom(
        &dir,
        &[
            "backup",
            "create",
            "--out",
            archive.to_str().unwrap(),
            "--dump-database-url",
            "postgres://nobody@127.0.0.1:9/absent",
        ],
    )
    .await;
    let leftover = archive.exists() || archive.with_extension("crbk.partial").exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!ok, "{out}");
    assert!(err.contains("--owner-database-url"), "{err}");
    assert!(!leftover, "nothing is written");
}
