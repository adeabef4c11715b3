//! Deletion and retention: patients are soft-deleted (410, out of lists and search, history
//! kept), the retention job purges what is past the practice's windows on an injected clock,
//! legal hold stops it, signed notes follow the record-keeping window, and the audit trail of
//! purged records survives and still verifies.
//! req: INT-02

use std::sync::Arc;

use audit::checkpoint::{Signer, origin};
use audit::store::{CheckpointStore as _, DirStore};
use chrono::Duration;
use domain::{Clock as _, PatientId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection as _, PgConnection};
use testkit::{TestApp, TestDb, World};

use crate::util::{call, db_code};

const ORIGIN: &str = "test.example/chartroom/retention";

struct Fx {
    db: TestDb,
    w: World,
    app: TestApp,
}

async fn fx() -> Fx {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    Fx { db, w, app }
}

impl Fx {
    fn base(&self) -> String {
        format!("/api/v1/practices/{}", self.w.a.id)
    }

    /// A fresh session (sessions end as the clock moves on).
    async fn token(&self, role: &str) -> String {
        self.app.token(self.w.a.user(role)).await
    }

    async fn call(
        &self,
        m: Method,
        path: &str,
        role: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let t = self.token(role).await;
        call(&self.app, m, path, Some(&t), body.as_ref()).await
    }

    /// A patient of A on the clinician's care team.
    async fn patient(&self, family: &str) -> PatientId {
        let (s, p) = self
            .call(
                Method::POST,
                &format!("{}/patients", self.base()),
                "clinician",
                Some(json!({"given_name": "Ada", "family_name": family, "date_of_birth": "1970-03-04"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        let id: PatientId = serde_json::from_value(p["patient_id"].clone()).unwrap();
        let (s, v) = self
            .call(
                Method::PUT,
                &format!("{}/patients/{id}/assigned-clinician", self.base()),
                "clinician",
                Some(json!({"clinician_id": self.w.a.user("clinician")})),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        id
    }

    /// A draft note; returns its id.
    async fn draft(&self, patient: PatientId) -> String {
        let (s, n) = self
            .call(
                Method::POST,
                &format!("{}/patients/{patient}/notes", self.base()),
                "clinician",
                Some(json!({"template": "free", "content": {"subjective": "Synthetic retention note."}})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{n}");
        n["note_id"].as_str().unwrap().to_owned()
    }

    /// A signed note (version 1 draft, version 2 signed); returns its id.
    async fn signed(&self, patient: PatientId) -> String {
        let id = self.draft(patient).await;
        let t = self.token("clinician").await;
        let res = self
            .app
            .http
            .post(self.app.url(&format!("{}/notes/{id}/sign", self.base())))
            .bearer_auth(&t)
            .header("if-match", "\"1\"")
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{}",
            res.text().await.unwrap()
        );
        id
    }

    async fn delete_patient(&self, patient: PatientId) {
        let (s, v) = self
            .call(
                Method::DELETE,
                &format!("{}/patients/{patient}", self.base()),
                "reception",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }

    async fn purge(&self) -> store::retention::PurgeReport {
        let owner = self.db.owner().await;
        let r = owner
            .purge_expired(self.w.a.id, self.app.clock.now())
            .await
            .unwrap();
        owner.close().await;
        r
    }

    async fn rows(&self, sql: &str, id: uuid::Uuid) -> i64 {
        let mut su = self.db.superuser_unsafe().await;
        sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&mut su)
            .await
            .unwrap()
    }

    async fn patient_rows(&self, p: PatientId) -> i64 {
        self.rows(
            "select count(*) from patient where patient_id = $1",
            p.as_uuid(),
        )
        .await
    }

    async fn audit_rows(&self, p: PatientId) -> Vec<String> {
        let mut su = self.db.superuser_unsafe().await;
        sqlx::query_scalar(
            "select action from audit_event where patient_id = $1 order by occurred_at, action",
        )
        .bind(p)
        .fetch_all(&mut su)
        .await
        .unwrap()
    }

    /// Sequences everything, signs a checkpoint and verifies A's log.
    async fn verify_audit(&self) -> store::audit::VerifyOutcome {
        let now = self.app.clock.now();
        self.app.store.sequence_pending(now).await.unwrap();
        let dir =
            std::env::temp_dir().join(format!("chartroom-ret-{}", uuid::Uuid::new_v4().simple()));
        let cp = server::checkpoint::Checkpointer::new(
            Arc::new(Signer::generate("chartroom-test").unwrap()),
            DirStore::new(&dir),
            ORIGIN,
        );
        cp.checkpoint(&self.app.store, self.w.a.id).await.unwrap();
        let verifier = cp.signer.verifier();
        let cps = DirStore::new(&dir)
            .all(self.w.a.id.as_uuid())
            .unwrap()
            .iter()
            .map(|n| verifier.open(n).unwrap())
            .collect();
        let out = self
            .db
            .owner()
            .await
            .verify_practice(
                self.w.a.id,
                &origin(ORIGIN, self.w.a.id.as_uuid()),
                cps,
                Duration::seconds(60),
                now,
            )
            .await
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        out
    }
}

#[tokio::test]
async fn a_deleted_patient_is_gone_from_reads_lists_and_search_but_keeps_history() {
    let f = fx().await;
    let family = format!(
        "Retentionwhistle{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let p = f.patient(&family).await;
    let note = f.draft(p).await;
    let path = format!("{}/patients/{p}", f.base());
    let search = json!({"name_prefix": family});
    let (s, found) = f
        .call(
            Method::POST,
            &format!("{}/patients/search", f.base()),
            "reception",
            Some(search.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(found["items"].as_array().unwrap().len(), 1);

    // Deleting no longer needs the notes gone (409 before): it is a soft delete.
    f.delete_patient(p).await;
    for (m, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"phone": "+1 555 0100"}))),
        (Method::DELETE, None),
    ] {
        let (s, e) = f.call(m.clone(), &path, "reception", body).await;
        assert_eq!(s, StatusCode::GONE, "{m}: {e}");
        assert_eq!(e["error"]["code"], "GONE", "{m}");
    }
    let (s, _) = f
        .call(
            Method::GET,
            &format!("{}/patients/{}", f.base(), uuid::Uuid::new_v4()),
            "reception",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "an unknown patient stays 404");
    let (_, list) = f
        .call(
            Method::GET,
            &format!("{}/patients?limit=100", f.base()),
            "reception",
            None,
        )
        .await;
    assert!(
        !list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["patient_id"] == json!(p)),
        "a deleted patient is not listed"
    );
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["patient_id"] == json!(f.w.a.patient)),
        "the others are"
    );
    let (s, found) = f
        .call(
            Method::POST,
            &format!("{}/patients/search", f.base()),
            "reception",
            Some(search),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(found["items"].as_array().unwrap().is_empty(), "{found}");

    // History stays for those allowed: the clinician still reads the note, and the audit trail
    // names the deletion.
    let (s, n) = f
        .call(
            Method::GET,
            &format!("{}/notes/{note}", f.base()),
            "clinician",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{n}");
    assert_eq!(
        f.patient_rows(p).await,
        1,
        "the row stays until the retention job"
    );
    assert!(f.audit_rows(p).await.contains(&"patient.delete".to_owned()));

    // The runtime role cannot hard-delete a patient any more.
    let mut conn = f.db.runtime_conn().await;
    let mut tx = conn.begin().await.unwrap();
    testkit::enter_as(
        &mut tx,
        Some(f.w.a.id.as_uuid()),
        Some(f.w.a.user("reception").as_uuid()),
        true,
    )
    .await;
    let err = sqlx::query("delete from patient where patient_id = $1")
        .bind(p)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(db_code(&err), "42501");
}

#[tokio::test]
async fn the_purge_waits_for_the_window_and_the_audit_trail_survives_it() {
    let f = fx().await;
    let gone = f.patient("Purgeable").await;
    let gone_note = f.draft(gone).await;
    let (s, v) = f
        .call(
            Method::POST,
            &format!("{}/patients/{gone}/visits", f.base()),
            "clinician",
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // A live patient's deleted draft is purged on its own; the patient and other notes stay.
    let live = f.patient("Staying").await;
    let kept_note = f.draft(live).await;
    let dropped_draft = f.draft(live).await;
    let (s, _) = f
        .call(
            Method::DELETE,
            &format!("{}/notes/{dropped_draft}", f.base()),
            "clinician",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    f.delete_patient(gone).await;
    let before_b: i64 = f
        .rows(
            "select count(*) from patient where practice_id = $1",
            f.w.b.id.as_uuid(),
        )
        .await;

    // Inside the window (default 30 days): nothing goes.
    f.app.clock.advance(Duration::days(29));
    let r = f.purge().await;
    assert!(
        r.patients.is_empty() && r.notes == 0 && r.audit_events == 0,
        "{r:?}"
    );
    assert_eq!(f.patient_rows(gone).await, 1);

    // Past it: a dry run reports exactly what the run then does.
    f.app.clock.advance(Duration::days(2));
    let owner = f.db.owner().await;
    let dry = owner
        .purge_expired_dry_run(f.w.a.id, f.app.clock.now())
        .await
        .unwrap();
    owner.close().await;
    assert!(dry.dry_run);
    assert_eq!(f.patient_rows(gone).await, 1, "a dry run changes nothing");
    let r = f.purge().await;
    assert_eq!(r.patients, [gone]);
    assert_eq!(
        (dry.patients.clone(), dry.notes, dry.audit_events),
        (r.patients.clone(), r.notes, r.audit_events)
    );
    assert_eq!(
        r.notes, 2,
        "the deleted patient's note and the live patient's deleted draft"
    );
    assert_eq!(r.note_versions, 2);
    assert_eq!(r.visits, 1);
    assert_eq!(
        r.audit_events,
        1 + r.notes + r.visits + r.appointments + r.perio_exams + r.disclosures + r.break_glass
    );

    assert_eq!(f.patient_rows(gone).await, 0);
    for (sql, id) in [
        (
            "select count(*) from clinical_note where note_id = $1",
            gone_note.parse::<uuid::Uuid>().unwrap(),
        ),
        (
            "select count(*) from clinical_note_version where note_id = $1",
            gone_note.parse().unwrap(),
        ),
        (
            "select count(*) from clinical_note where note_id = $1",
            dropped_draft.parse().unwrap(),
        ),
        (
            "select count(*) from visit where patient_id = $1",
            gone.as_uuid(),
        ),
        (
            "select count(*) from patient_search_token where patient_id = $1",
            gone.as_uuid(),
        ),
    ] {
        assert_eq!(f.rows(sql, id).await, 0, "{sql}");
    }
    assert_eq!(f.patient_rows(live).await, 1);
    assert_eq!(
        f.rows(
            "select count(*) from clinical_note where note_id = $1",
            kept_note.parse().unwrap()
        )
        .await,
        1
    );
    assert_eq!(
        f.rows(
            "select count(*) from patient where practice_id = $1",
            f.w.b.id.as_uuid()
        )
        .await,
        before_b,
        "another practice is untouched"
    );

    // The purged patient's audit trail stays, with one purge event per record (ids only).
    let trail = f.audit_rows(gone).await;
    for action in [
        "patient.create",
        "note.create",
        "visit.create",
        "patient.delete",
        "retention.purge",
    ] {
        assert!(
            trail.iter().any(|a| a == action),
            "{action} missing from {trail:?}"
        );
    }
    let purge_events: Vec<(Option<uuid::Uuid>, String, uuid::Uuid)> = {
        let mut su = f.db.superuser_unsafe().await;
        sqlx::query_as(
            "select actor_id, object_type, object_id from audit_event
              where practice_id = $1 and action = 'retention.purge'",
        )
        .bind(f.w.a.id)
        .fetch_all(&mut su)
        .await
        .unwrap()
    };
    assert_eq!(u64::try_from(purge_events.len()).unwrap(), r.audit_events);
    assert!(purge_events.contains(&(None, "patient".to_owned(), gone.as_uuid())));
    assert!(purge_events.contains(&(None, "note".to_owned(), dropped_draft.parse().unwrap())));

    // A second run finds nothing; `audit verify` still passes.
    let again = f.purge().await;
    assert_eq!(again.audit_events, 0, "{again:?}");
    let out = f.verify_audit().await;
    assert!(out.is_ok(), "{}", out.report);
}

#[tokio::test]
async fn a_legal_hold_stops_the_purge_until_released() {
    let f = fx().await;
    let p = f.patient("Heldfast").await;
    let note = f.draft(p).await;
    f.delete_patient(p).await;
    let hold = format!("{}/patients/{p}/legal-hold", f.base());

    let (s, h) = f
        .call(
            Method::PUT,
            &hold,
            "admin",
            Some(json!({"category": "litigation"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{h}");
    assert_eq!(h["category"], "litigation");
    assert_eq!(h["placed_by"], json!(f.w.a.user("admin")));
    let (s, _) = f
        .call(
            Method::PUT,
            &hold,
            "admin",
            Some(json!({"category": "because I said so"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "categories only, no free text");
    let (s, _) = f
        .call(
            Method::PUT,
            &hold,
            "clinician",
            Some(json!({"category": "other"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = f
        .call(
            Method::GET,
            &format!("{}/retention", f.base()),
            "owner",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["deleted_retention_days"], 30);
    assert_eq!(v["record_keeping_years"], 10);
    assert_eq!(v["legal_holds"][0]["patient_id"], json!(p));

    f.app.clock.advance(Duration::days(400));
    let r = f.purge().await;
    assert!(r.patients.is_empty() && r.notes == 0, "{r:?}");
    assert_eq!(r.held, 1);
    assert_eq!(f.patient_rows(p).await, 1);

    // The database refuses too: even the owner role on the purge path cannot delete the
    // held patient's note.
    let mut ow = PgConnection::connect_with(&f.db.owner_options().await)
        .await
        .unwrap();
    let mut tx = ow.begin().await.unwrap();
    sqlx::query("select set_config('chartroom.practice_id', $1, true), set_config('chartroom.retention_purge', 'on', true)")
        .bind(f.w.a.id.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let err = sqlx::query("delete from clinical_note_version where note_id = $1")
        .bind(note.parse::<uuid::Uuid>().unwrap())
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot be deleted"), "{err}");
    tx.rollback().await.unwrap();

    // Released: the next run purges.
    let (s, _) = f.call(Method::DELETE, &hold, "owner", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let trail = f.audit_rows(p).await;
    assert!(
        trail.contains(&"legal_hold.place".to_owned())
            && trail.contains(&"legal_hold.release".to_owned())
    );
    let r = f.purge().await;
    assert_eq!(r.patients, [p]);
    assert_eq!(f.patient_rows(p).await, 0);
    // Releasing again (nothing held) is fine while the patient exists; now it is gone: 404.
    let (s, _) = f.call(Method::DELETE, &hold, "owner", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let out = f.verify_audit().await;
    assert!(out.is_ok(), "{}", out.report);
}

#[tokio::test]
async fn signed_notes_are_kept_for_the_record_keeping_window() {
    let f = fx().await;
    let mut su = f.db.superuser_unsafe().await;
    sqlx::query("update app_user set credential = 'RDH' where user_id = $1")
        .bind(f.w.a.user("clinician"))
        .execute(&mut su)
        .await
        .unwrap();
    let owner = f.db.owner().await;
    // Windows are the operator's: bounds are enforced, and the runtime role cannot change them.
    assert!(
        owner
            .set_retention(f.w.a.id, Some(0), None, f.app.clock.now())
            .await
            .is_err()
    );
    assert!(
        owner
            .set_retention(f.w.a.id, None, Some(1), f.app.clock.now())
            .await
            .is_err()
    );
    let s = owner
        .set_retention(f.w.a.id, Some(30), Some(7), f.app.clock.now())
        .await
        .unwrap();
    assert_eq!((s.deleted_retention_days, s.record_keeping_years), (30, 7));
    owner.close().await;
    let mut conn = f.db.runtime_conn().await;
    let mut tx = conn.begin().await.unwrap();
    testkit::enter_as(
        &mut tx,
        Some(f.w.a.id.as_uuid()),
        Some(f.w.a.user("owner").as_uuid()),
        true,
    )
    .await;
    let err = sqlx::query("update practice set record_keeping_years = 2 where practice_id = $1")
        .bind(f.w.a.id)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(db_code(&err), "42501");
    tx.rollback().await.unwrap();

    let deleted = f.patient("Signedgone").await;
    let note = f.signed(deleted).await;
    let live = f.patient("Signedlive").await;
    let live_note = f.signed(live).await;
    f.delete_patient(deleted).await;

    // Past the deletion window, inside the record-keeping window: kept (still 410 to reads,
    // the note still readable by the clinician).
    f.app.clock.advance(Duration::days(31));
    let r = f.purge().await;
    assert!(r.patients.is_empty() && r.notes == 0, "{r:?}");
    assert_eq!(r.kept_for_record_keeping, 1);
    let (s, n) = f
        .call(
            Method::GET,
            &format!("{}/notes/{note}", f.base()),
            "clinician",
            None,
        )
        .await;
    assert_eq!(
        (s, n["status"].as_str()),
        (StatusCode::OK, Some("signed")),
        "{n}"
    );

    // A day short of seven years after signing: still kept.
    f.app.clock.advance(Duration::days(7 * 365 + 1 - 31 - 1));
    let r = f.purge().await;
    assert!(r.patients.is_empty(), "{r:?}");
    // Past it: the deleted patient's whole record goes, signed note included (both versions).
    f.app.clock.advance(Duration::days(3));
    let r = f.purge().await;
    assert_eq!(r.patients, [deleted]);
    assert_eq!((r.notes, r.note_versions), (1, 2));
    assert_eq!(
        f.rows(
            "select count(*) from clinical_note where note_id = $1",
            note.parse().unwrap()
        )
        .await,
        0
    );
    // A current patient's signed chart is never destroyed by the timer.
    assert_eq!(
        f.rows(
            "select count(*) from clinical_note_version where note_id = $1",
            live_note.parse().unwrap()
        )
        .await,
        2
    );
    let trail = f.audit_rows(deleted).await;
    assert!(
        trail.contains(&"note.sign".to_owned()) && trail.contains(&"retention.purge".to_owned()),
        "{trail:?}"
    );
    let out = f.verify_audit().await;
    assert!(out.is_ok(), "{}", out.report);
}
