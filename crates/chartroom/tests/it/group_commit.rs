//! Issue 16.1 and 16.2: the audit events of reads are made durable by the group-commit writer
//! before the response leaves. Nothing is dropped; a read whose event cannot be made durable
//! fails; a read's transaction is read-only; batches are bounded.

use std::time::Duration;

use domain::{AuditAction, PracticeId};
use futures::future::join_all;
use sqlx::PgConnection;
use store::group_commit::{BATCH_BUCKETS, GroupCommit};
use store::{Access, StoreError};
use testkit::{TestApp, TestDb, World};

async fn read_events(su: &mut PgConnection, practice: PracticeId, requests: &[uuid::Uuid]) -> i64 {
    sqlx::query_scalar(
        "select count(*) from audit_event
          where practice_id = $1 and action = 'patient.read' and request_id = any($2)",
    )
    .bind(practice)
    .bind(requests)
    .fetch_one(su)
    .await
    .unwrap()
}

/// `n` concurrent patient reads over HTTPS as `token`: each answer's status and request id.
async fn concurrent_reads(
    app: &TestApp,
    token: &str,
    practice: PracticeId,
    patient: domain::PatientId,
    n: usize,
) -> Vec<(u16, uuid::Uuid, String)> {
    let url = app.url(&format!("/api/v1/practices/{practice}/patients/{patient}"));
    join_all((0..n).map(|_| {
        let req = app.http.get(&url).bearer_auth(token);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let id: uuid::Uuid = resp
                .headers()
                .get("x-request-id")
                .unwrap()
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            (status, id, resp.text().await.unwrap())
        }
    }))
    .await
}

// issue 16.1, req AUD-01 — many concurrent reads: every one answers 200, and every answer's
// request has its audit event in the log once the answer has arrived (nothing dropped, nothing
// late); the writer committed them in fewer transactions than there were reads or at most as
// many, and counted each event once.
#[tokio::test]
async fn every_read_answered_has_its_audit_event_written_before_the_answer() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let token = app.token(w.a.user("reception")).await;
    let before = app.store.audit_writer_stats();
    let answers = concurrent_reads(&app, &token, w.a.id, w.a.patient, 48).await;
    let stats = app.store.audit_writer_stats().since(&before);
    assert!(answers.iter().all(|(s, _, _)| *s == 200), "{answers:?}");
    let ids: Vec<uuid::Uuid> = answers.iter().map(|(_, id, _)| *id).collect();
    let mut su = db.superuser_unsafe().await;
    assert_eq!(read_events(&mut su, w.a.id, &ids).await, 48);
    assert_eq!(stats.events, 48, "{stats:?}");
    assert!(stats.batches >= 1 && stats.batches <= 48, "{stats:?}");
    assert_eq!(
        stats.buckets.iter().sum::<u64>(),
        stats.batches,
        "{stats:?}"
    );
    assert_eq!(stats.failed_batches, 0);
}

// issue 16.1 — a read whose audit event cannot be made durable fails with a 500 that carries
// no patient data, and the writer goes on: once the database takes events again, reads
// succeed and are audited.
#[tokio::test]
async fn a_read_whose_audit_event_cannot_be_written_fails_without_patient_data() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let token = app.token(w.a.user("reception")).await;
    let mut su = db.superuser_unsafe().await;
    let keyring = app.store.keyring().unwrap().clone();
    let mut tx = testkit::enter_practice(&app.store, &token, w.a.id)
        .await
        .unwrap();
    let family = store::patients::get(&mut tx, &keyring, w.a.patient)
        .await
        .unwrap()
        .unwrap()
        .family_name;
    drop(tx);

    // The database refuses patient-read events from now on.
    sqlx::query(
        "alter table audit_event add constraint refuse_reads
           check (action <> 'patient.read') not valid",
    )
    .execute(&mut su)
    .await
    .unwrap();
    let answers = concurrent_reads(&app, &token, w.a.id, w.a.patient, 6).await;
    for (status, _, body) in &answers {
        assert_eq!(*status, 500, "{body}");
        assert!(!body.contains(&family), "a failed read leaked patient data");
    }
    let ids: Vec<uuid::Uuid> = answers.iter().map(|(_, id, _)| *id).collect();
    assert_eq!(read_events(&mut su, w.a.id, &ids).await, 0);

    sqlx::query("alter table audit_event drop constraint refuse_reads")
        .execute(&mut su)
        .await
        .unwrap();
    let answers = concurrent_reads(&app, &token, w.a.id, w.a.patient, 6).await;
    assert!(
        answers
            .iter()
            .all(|(s, _, b)| *s == 200 && b.contains(&family))
    );
    let ids: Vec<uuid::Uuid> = answers.iter().map(|(_, id, _)| *id).collect();
    assert_eq!(read_events(&mut su, w.a.id, &ids).await, 6);
}

// issue 16.2 — a read is a read-only transaction: the database refuses any change in it, so a
// read can never write without the write's own audit event; the same change in a write
// transaction goes through.
#[tokio::test]
async fn a_read_transaction_refuses_changes() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let token = app.token(w.a.user("clinician")).await;
    let keyring = app.store.keyring().unwrap().clone();
    let patch = store::patients::PatientPatch {
        phone: Some(Some("+1 555 0100 4242".to_owned())),
        ..store::patients::PatientPatch::default()
    };
    let enter = |access| {
        let store = app.store.clone();
        let token = token.clone();
        async move {
            let store::Entry::Member(tx, _) = store
                .enter_practice(
                    &store::TokenHash::from_presented(&token).unwrap(),
                    w.a.id,
                    chrono::Utc::now(),
                    &store::SessionPolicy::default(),
                    domain::RequestId::new(),
                    access,
                )
                .await
                .unwrap()
            else {
                panic!("a member")
            };
            tx
        }
    };
    let mut tx = enter(Access::Read).await;
    assert!(tx.is_read());
    let err = store::patients::update(&mut tx, &keyring, w.a.patient, &patch)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Db(_)), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    drop(tx);

    let mut tx = enter(Access::Write).await;
    assert!(!tx.is_read());
    store::patients::update(&mut tx, &keyring, w.a.patient, &patch)
        .await
        .unwrap()
        .unwrap();
    tx.audit_patient(AuditAction::PatientUpdate, w.a.patient)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

// issue 16.1 — a batch never holds more than its bound: eight one-event reads against a
// writer bounded at eight events per batch (and a long wait for more) are committed as one
// batch of eight, as soon as it is full.
#[tokio::test]
async fn a_batch_is_closed_when_it_reaches_its_bound() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let store = db.store().await.with_group_commit(GroupCommit {
        queue: 64,
        max_batch_events: 8,
        max_wait: Duration::from_secs(30),
    });
    let app = TestApp::start_with(store).await;
    let token = app.token(w.a.user("reception")).await;
    let before = app.store.audit_writer_stats();
    let answers = concurrent_reads(&app, &token, w.a.id, w.a.patient, 8).await;
    assert!(answers.iter().all(|(s, _, _)| *s == 200), "{answers:?}");
    let stats = app.store.audit_writer_stats().since(&before);
    assert_eq!(stats.events, 8, "{stats:?}");
    assert_eq!(stats.batches, 1, "{stats:?}");
    let eight = BATCH_BUCKETS.iter().position(|b| *b == 8).unwrap();
    assert_eq!(stats.buckets[eight], 1, "{stats:?}");
}

/// A patient read up to its commit, the way the patient route does it (read-only entry, the
/// read and decryption, its audit event): the transaction and its request id.
async fn read_until_commit(
    store: &store::Store,
    token: &str,
    practice: PracticeId,
    patient: domain::PatientId,
) -> store::TenantTx {
    let keyring = store.keyring().unwrap().clone();
    let mut tx = testkit::enter_practice_for(store, token, practice, Access::Read)
        .await
        .unwrap();
    assert!(tx.is_read());
    store::patients::get(&mut tx, &keyring, patient)
        .await
        .unwrap()
        .unwrap();
    tx.audit_patient(AuditAction::PatientRead, patient)
        .await
        .unwrap();
    tx
}

async fn read_events_of(su: &mut PgConnection, practice: PracticeId, actor: domain::UserId) -> i64 {
    sqlx::query_scalar(
        "select count(*) from audit_event
          where practice_id = $1 and action = 'patient.read' and actor_id = $2",
    )
    .bind(practice)
    .bind(actor)
    .fetch_one(su)
    .await
    .unwrap()
}

// issue 16.1 — the writer keeps its connection between batches, and closing the store after
// reads through it returns at once: the writer releases the connection before its pool closes
// (the command-line tools and the server's shutdown close the store after reads).
#[tokio::test]
async fn closing_the_store_after_reads_returns_at_once() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let store = db.store().await;
    let user = w.a.user("reception");
    let token = testkit::session_token(&store, user).await;
    for _ in 0..3 {
        testkit::read_patient_for(&store, &token, w.a.id, w.a.patient, Access::Read)
            .await
            .unwrap()
            .unwrap();
    }
    let reads = join_all(
        (0..8)
            .map(|_| testkit::read_patient_for(&store, &token, w.a.id, w.a.patient, Access::Read)),
    )
    .await;
    assert!(reads.iter().all(|r| matches!(r, Ok(Some(_)))), "{reads:?}");
    let mut su = db.superuser_unsafe().await;
    assert_eq!(read_events_of(&mut su, w.a.id, user).await, 11);
    let stats = store.audit_writer_stats();
    assert_eq!(stats.events, 11, "{stats:?}");

    tokio::time::timeout(Duration::from_secs(20), store.close())
        .await
        .expect("closing the store after reads hung");
    let clone = store.clone();
    tokio::time::timeout(Duration::from_secs(20), clone.close())
        .await
        .expect("closing a clone of a closed store hung");
}

// issue 16.1 — closing the store ends the writer cleanly: it commits what is queued without
// waiting out its batching delay and answers every read; a read that submits while the store
// closes is either committed too or fails — never answered without its event.
#[tokio::test]
async fn closing_the_store_commits_queued_reads_and_answers_every_one() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    // A writer that would hold a batch open for a minute: only the stop can close it early.
    let store = db.store().await.with_group_commit(GroupCommit {
        queue: 64,
        max_batch_events: 64,
        max_wait: Duration::from_secs(60),
    });
    let user = w.a.user("reception");
    let token = testkit::session_token(&store, user).await;
    let mut su = db.superuser_unsafe().await;
    let before = read_events_of(&mut su, w.a.id, user).await;

    // Four reads whose events are queued (each commit polled once: its event is in the
    // writer's queue, the answer is pending), and a fifth not yet submitted.
    let mut queued = Vec::new();
    for _ in 0..4 {
        let tx = read_until_commit(&store, &token, w.a.id, w.a.patient).await;
        let mut commit = Box::pin(tx.commit());
        assert!(futures::poll!(commit.as_mut()).is_pending());
        queued.push(commit);
    }
    let late = read_until_commit(&store, &token, w.a.id, w.a.patient).await;

    let (closed, queued, late) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(20), store.close()),
        join_all(queued),
        late.commit(),
    );
    assert!(closed.is_ok(), "closing the store hung");
    for r in &queued {
        assert!(r.is_ok(), "{r:?}");
    }
    let expected = before + 4 + i64::from(late.is_ok());
    if let Err(e) = &late {
        assert!(matches!(e, StoreError::AuditFailed(_)), "{e}");
    }
    assert_eq!(read_events_of(&mut su, w.a.id, user).await, expected);

    // Closed for good: closing again returns, and no read gets through unaudited.
    tokio::time::timeout(Duration::from_secs(20), store.close())
        .await
        .expect("closing twice hung");
    assert!(
        testkit::enter_practice_for(&store, &token, w.a.id, Access::Read)
            .await
            .is_err()
    );
}
