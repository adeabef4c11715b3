//! The first layer of the audit log: append-only in the database, outliving what it names.
//! req: AUD-02 (privileges and triggers; the chain comes with the audit work)

use reqwest::{Method, StatusCode};
use sqlx::Executor as _;
use testkit::{TestApp, TestDb, World};

use crate::util::{call, db_code};

#[tokio::test]
async fn audit_rows_cannot_be_changed_or_removed() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let mut rt = db.runtime_conn().await;
    sqlx::query("select set_config('chartroom.practice_id', $1, false)")
        .bind(w.a.id.to_string())
        .execute(&mut rt)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("select count(*) from audit_event")
        .fetch_one(&mut rt)
        .await
        .unwrap();
    assert!(n > 0);
    let privs: (bool, bool, bool, bool, bool) = sqlx::query_as(
        "select has_table_privilege('audit_event', 'SELECT'), has_table_privilege('audit_event', 'INSERT'),
                has_table_privilege('audit_event', 'UPDATE'), has_table_privilege('audit_event', 'DELETE'),
                has_table_privilege('audit_event', 'TRUNCATE')",
    )
    .fetch_one(&mut rt)
    .await
    .unwrap();
    assert_eq!(
        privs,
        (true, true, false, false, false),
        "runtime: INSERT and SELECT only"
    );
    for stmt in [
        "update audit_event set action = 'patient.read'",
        "delete from audit_event",
        "truncate audit_event",
    ] {
        assert_eq!(
            db_code(&rt.execute(stmt).await.unwrap_err()),
            "42501",
            "runtime: {stmt}"
        );
    }
    // The owner role reaches no row to UPDATE (no policy), its DELETE (allowed by policy
    // only for retention pruning) and TRUNCATE hit the triggers.
    let mut owner = sqlx::PgConnection::connect_with(&db.owner_options().await)
        .await
        .unwrap();
    sqlx::query("select set_config('chartroom.practice_id', $1, false)")
        .bind(w.a.id.to_string())
        .execute(&mut owner)
        .await
        .unwrap();
    for stmt in [
        "update audit_event set action = 'patient.read'",
        "delete from audit_event",
    ] {
        match owner.execute(stmt).await {
            Ok(done) => assert_eq!(done.rows_affected(), 0, "owner: {stmt}"),
            Err(e) => assert!(e.to_string().contains("append-only"), "owner: {stmt}: {e}"),
        }
    }
    let err = owner.execute("truncate audit_event").await.unwrap_err();
    assert!(
        err.to_string().contains("append-only"),
        "owner: truncate: {err}"
    );
    // Even a superuser (no RLS) is stopped by the triggers, unless it disables them — which is
    // what the hash chain and signed checkpoints of the audit work are for.
    let mut su = db.superuser_unsafe().await;
    for stmt in [
        "update audit_event set action = 'patient.read'",
        "delete from audit_event",
        "truncate audit_event",
    ] {
        let err = su.execute(stmt).await.unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "superuser: {stmt}: {err}"
        );
    }
    let after: i64 = sqlx::query_scalar("select count(*) from audit_event")
        .fetch_one(&mut rt)
        .await
        .unwrap();
    assert_eq!(n, after);
}

#[tokio::test]
async fn deleting_a_patient_keeps_every_audit_row_about_them() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let t = app.token(w.a.user("reception")).await;
    let path = format!("/api/v1/practices/{}/patients/{}", w.a.id, w.a.patient);
    for _ in 0..3 {
        assert_eq!(
            call(&app, Method::GET, &path, Some(&t), None).await.0,
            StatusCode::OK
        );
    }
    let mut su = db.superuser_unsafe().await;
    let count = async |su: &mut sqlx::PgConnection| -> i64 {
        sqlx::query_scalar("select count(*) from audit_event where patient_id = $1")
            .bind(w.a.patient)
            .fetch_one(su)
            .await
            .unwrap()
    };
    let before = count(&mut su).await;
    assert!(before >= 4, "creation + three reads");
    assert_eq!(
        call(&app, Method::DELETE, &path, Some(&t), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&app, Method::GET, &path, Some(&t), None).await.0,
        StatusCode::GONE,
        "a deleted patient reads as 410 (soft delete, req INT-02)"
    );
    assert_eq!(
        count(&mut su).await,
        before + 1,
        "all earlier rows kept, plus the deletion"
    );
}

use sqlx::Connection as _;
