//! The baselines the product paths are measured against: the statements a product path sends,
//! as raw SQL on the harness's own runtime-role pool (checked least-privilege, so row-level
//! security holds as for the server), minus what the benchmark measures. The product crates
//! have no benchmark paths; the product side of every comparison calls their public API.
//!
//! - [`Baseline::read_patient`]: a patient read with the practice, actor and roles set on trust
//!   (one `set_config` statement, no session check), the read, the decryption of its five
//!   fields, its audit event and the commit — the patient route's statements minus the session
//!   check and HTTP.
//! - [`Baseline::router`]: that read behind the server's own request frame, for comparing the
//!   session check over HTTPS.
//! - [`Baseline::save_note`] and [`Baseline::read_note`]: a note draft save and a note read
//!   after the same session entry as the product path (`app.enter`), with the content stored as
//!   plaintext bytes and no audit event (writable only here, in a benchmark database).

use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use domain::notes::{HashScheme, NoteContent, Template, VersionBinding, VersionKind};
use domain::{NoteId, PatientId, PracticeId, UserId};
use sha2::{Digest as _, Sha256};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Row as _};
use store::crypto::{FieldContext, Keyring};
use store::patients::Patient;

/// The patient route's read (`store::patients::get`).
const READ_PATIENT: &str = "select patient_id, given_name, family_name, date_of_birth, phone, email, \
     given_name_enc, family_name_enc, date_of_birth_enc, phone_enc, email_enc, created_at, updated_at \
     from patient where practice_id = $1 and patient_id = $2 and deleted_at is null";

/// The audit event of a non-clinical action (`TenantTx::audit`).
const AUDIT_EVENT: &str = "insert into audit_event
   (practice_id, event_id, occurred_at, actor_id, patient_id, action, outcome, object_type, object_id, request_id, details)
 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// A note's header (`store::notes`), locked for a change or not.
const NOTE_HEADER: &str = "select note_id, patient_id, author_id, template, visit_id, status, current_version,
    signed_version, body, body_enc, created_at, deleted_at from clinical_note where practice_id = $1 and note_id = $2";

/// The versions a reader sees: every signed one and the current draft (`store::notes`).
const SHOWN_VERSIONS: &str = "select version, kind, author_id, created_at, content_enc, content_sha256, reason_enc,
    ai_assisted, assistant_turn_id, signer_name, signer_credential, signed_at, signed_tz, signature_meaning,
    hash_scheme from clinical_note_version
  where practice_id = $1 and note_id = $2 and (kind <> 'draft' or version = $3)
  order by version";

/// The patient fields sealed per row, in [`READ_PATIENT`]'s order.
const SEALED: [&str; 5] = [
    "given_name",
    "family_name",
    "date_of_birth",
    "phone",
    "email",
];

/// The harness's own runtime-role pool and the keyring the product side uses.
pub(crate) struct Baseline {
    pool: PgPool,
    keyring: Arc<Keyring>,
}

impl Baseline {
    /// A pool of `size` runtime-role connections to `db` (refused unless the role is
    /// least-privilege, as for the server), decrypting with `keyring`.
    pub(crate) async fn connect(
        db: &testkit::TestDb,
        size: u32,
        keyring: Arc<Keyring>,
    ) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(db.runtime_options().await)
            .await?;
        store::check_runtime_role(&pool).await?;
        Ok(Self { pool, keyring })
    }

    /// `BEGIN`; practice, actor and `roles` (an array literal such as `{reception}`) set on
    /// trust; the patient's row; its five fields decrypted; its `patient.read` audit event;
    /// `COMMIT`. The patient, `None` if not visible.
    pub(crate) async fn read_patient(
        &self,
        practice: PracticeId,
        actor: UserId,
        roles: &str,
        patient: PatientId,
    ) -> anyhow::Result<Option<Patient>> {
        self.read_patient_audited(practice, actor, roles, patient, true)
            .await
    }

    /// [`Self::read_patient`], with its audit event only when `audit` is set (without it the
    /// read is the floor any audited read is measured against: no insert, no WAL flush).
    pub(crate) async fn read_patient_audited(
        &self,
        practice: PracticeId,
        actor: UserId,
        roles: &str,
        patient: PatientId,
        audit: bool,
    ) -> anyhow::Result<Option<Patient>> {
        let mut tx = self.pool.begin().await?;
        testkit::enter_trusted(
            &mut tx,
            Some(practice.as_uuid()),
            Some(actor.as_uuid()),
            roles,
            true,
        )
        .await?;
        let now = chrono::Utc::now();
        let row = sqlx::query(READ_PATIENT)
            .bind(practice)
            .bind(patient)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let found = self.open(practice, patient, &row).await?;
        if !audit {
            tx.commit().await?;
            return Ok(Some(found));
        }
        sqlx::query(AUDIT_EVENT)
            .bind(practice)
            .bind(domain::AuditEventId::new())
            .bind(now)
            .bind(actor)
            .bind(patient)
            .bind(domain::AuditAction::PatientRead.as_str())
            .bind(domain::Outcome::Success.as_str())
            .bind("patient")
            .bind(patient.as_uuid())
            .bind(domain::RequestId::new())
            .bind(None::<serde_json::Value>)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(found))
    }

    /// The read without audit, entered through the session check instead of on trust:
    /// `BEGIN`; `app.enter` (and the activity update when it asks for one); the row; its five
    /// fields decrypted; `COMMIT`. What a signed-in read costs in the database before any
    /// audit event. The patient, `None` if not visible.
    pub(crate) async fn read_patient_with_session(
        &self,
        token: &SessionHash,
        practice: PracticeId,
        patient: PatientId,
    ) -> anyhow::Result<Option<Patient>> {
        let mut tx = self.pool.begin().await?;
        Self::enter_session(&mut tx, token, practice, chrono::Utc::now()).await?;
        let row = sqlx::query(READ_PATIENT)
            .bind(practice)
            .bind(patient)
            .fetch_optional(&mut *tx)
            .await?;
        let found = match row {
            Some(row) => Some(self.open(practice, patient, &row).await?),
            None => None,
        };
        tx.commit().await?;
        Ok(found)
    }

    /// Decrypts a patient row as the store does: each sealed field from its ciphertext, bound
    /// to practice, table, column and row, else from its legacy plaintext column.
    async fn open(
        &self,
        practice: PracticeId,
        patient: PatientId,
        row: &PgRow,
    ) -> anyhow::Result<Patient> {
        let mut fields = Vec::with_capacity(SEALED.len());
        for column in SEALED {
            let sealed: Option<Vec<u8>> = row.try_get(format!("{column}_enc").as_str())?;
            fields.push(match sealed {
                Some(ct) => Some(String::from_utf8(
                    self.keyring
                        .decrypt_field(
                            &FieldContext::new(
                                practice,
                                store::patients::TABLE,
                                column,
                                patient.as_uuid().as_bytes(),
                            ),
                            &ct,
                        )
                        .await?,
                )?),
                // The legacy date column is a date, not text.
                None if column == "date_of_birth" => None,
                None => row.try_get(column)?,
            });
        }
        let date_of_birth = match fields[2].as_deref() {
            Some(d) => Some(chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")?),
            None => row.try_get("date_of_birth")?,
        };
        Ok(Patient {
            patient_id: patient,
            given_name: fields[0].take().context("given name")?,
            family_name: fields[1].take().context("family name")?,
            date_of_birth,
            phone: fields[3].take(),
            email: fields[4].take(),
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// [`Baseline::read_patient`] as a route of the server's shape
    /// (`GET /bench/unauthenticated/practices/{p}/patients/{id}/as/{user}/{role}`, practice, actor
    /// and role taken from the path on trust), behind the same body limit and request frame as
    /// every route of `server::app`. Merged into the benchmark's own app only.
    pub(crate) fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route(
                "/bench/unauthenticated/practices/{practice_id}/patients/{patient_id}/as/{user_id}/{role}",
                axum::routing::get(unauthenticated_read),
            )
            .layer(DefaultBodyLimit::max(server::MAX_BODY_BYTES))
            .layer(axum::middleware::from_fn(server::request_frame))
            .with_state(self)
    }

    /// The session entry a product path makes (`app.enter` as `Store::enter_practice` sends
    /// it, and the activity update when it asks for one), on a raw transaction: the acting
    /// user, or an error when the session does not enter `practice` as a member.
    async fn enter_session(
        conn: &mut PgConnection,
        token: &SessionHash,
        practice: PracticeId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<UserId> {
        let policy = store::SessionPolicy::default();
        let row = sqlx::query(
            "select user_id, roles, amr, mfa_at, session_id, require_passkey, touch
               from app.enter($1, $2, $3, $4, $5)",
        )
        .bind(token.0.as_slice())
        .bind(Some(practice))
        .bind(now)
        .bind(policy.idle)
        .bind(policy.activity_granularity)
        .fetch_optional(&mut *conn)
        .await?
        .context("session refused")?;
        let roles: Option<Vec<String>> = row.try_get("roles")?;
        anyhow::ensure!(roles.is_some(), "not a member");
        if row.try_get::<bool, _>("touch")? {
            sqlx::query(
                "update session set last_seen_at = $2
                  where token_hash = (select token_hash from session
                                       where token_hash = $1 and last_seen_at < $2
                                       for update skip locked)",
            )
            .bind(token.0.as_slice())
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        Ok(row.try_get("user_id")?)
    }

    /// A draft save with the content stored as plaintext bytes and no audit event: session
    /// entry, header locked, the version hash computed as the store does, the version row, the
    /// header advanced, `COMMIT`. Whether the note was found.
    pub(crate) async fn save_note(
        &self,
        token: &SessionHash,
        practice: PracticeId,
        note: NoteId,
        content: &NoteContent,
    ) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let now = chrono::Utc::now();
        let actor = Self::enter_session(&mut tx, token, practice, now).await?;
        let Some(h) = sqlx::query(&format!("{NOTE_HEADER} for update"))
            .bind(practice)
            .bind(note)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let next = h.try_get::<i32, _>("current_version")? + 1;
        let template: String = h.try_get("template")?;
        let patient: PatientId = h.try_get("patient_id")?;
        let canonical = content.canonical();
        let created =
            chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        let hash = VersionBinding {
            practice: practice.as_uuid(),
            note: note.as_uuid(),
            patient: patient.as_uuid(),
            template: Template::parse(&template).context("template")?,
            version: next,
            kind: VersionKind::Draft,
            author: actor.as_uuid(),
            created_at: created,
            reason: None,
            ai_assisted: false,
            assistant_turn_id: None,
            signature: None,
            canonical: &canonical,
        }
        .hash(HashScheme::CURRENT);
        sqlx::query(
            "insert into clinical_note_version (practice_id, note_id, version, kind, author_id, created_at,
                content_enc, content_sha256)
             values ($1, $2, $3, 'draft', $4, $5, $6, $7)",
        )
        .bind(practice)
        .bind(note)
        .bind(next)
        .bind(actor)
        .bind(created)
        .bind(&canonical)
        .bind(hash.as_slice())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "update clinical_note set current_version = $3, updated_at = $4,
                    status = case when $5::int4 is null then status else 'signed' end,
                    signed_version = coalesce($5, signed_version)
              where practice_id = $1 and note_id = $2",
        )
        .bind(practice)
        .bind(note)
        .bind(next)
        .bind(now)
        .bind(None::<i32>)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A note read of plaintext versions without decryption or audit: session entry, header,
    /// the shown versions, each parsed, `COMMIT`. Whether the note was found and every version
    /// parsed.
    pub(crate) async fn read_note(
        &self,
        token: &SessionHash,
        practice: PracticeId,
        note: NoteId,
    ) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await?;
        Self::enter_session(&mut tx, token, practice, chrono::Utc::now()).await?;
        let found = match sqlx::query(NOTE_HEADER)
            .bind(practice)
            .bind(note)
            .fetch_optional(&mut *tx)
            .await?
        {
            Some(h) => sqlx::query(SHOWN_VERSIONS)
                .bind(practice)
                .bind(note)
                .bind(h.try_get::<i32, _>("current_version")?)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .all(|r| {
                    r.try_get::<Vec<u8>, _>("content_enc")
                        .is_ok_and(|c| NoteContent::from_canonical(&c).is_ok())
                }),
            None => false,
        };
        tx.commit().await?;
        Ok(found)
    }
}

/// What the database stores of a session token (its SHA-256), for [`Baseline`]'s session
/// entry.
pub(crate) struct SessionHash([u8; 32]);

impl SessionHash {
    /// The hash of `token`.
    pub(crate) fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

async fn unauthenticated_read(
    State(baseline): State<Arc<Baseline>>,
    Path((practice, patient, user, role)): Path<(uuid::Uuid, uuid::Uuid, uuid::Uuid, String)>,
) -> Result<axum::Json<Patient>, StatusCode> {
    let roles = domain::RoleSet::parse(&[role]).map_err(|_| StatusCode::NOT_FOUND)?;
    baseline
        .read_patient(
            PracticeId::from_uuid(practice),
            UserId::from_uuid(user),
            &format!("{{{}}}", roles.names().join(",")),
            PatientId::from_uuid(patient),
        )
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .map(axum::Json)
        .ok_or(StatusCode::NOT_FOUND)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use testkit::{TestApp, TestDb, World};

    use super::*;

    /// A fresh database with the two-practice world, its runtime store and a baseline on it.
    async fn setup() -> (TestDb, World, store::Store, Arc<Baseline>) {
        let db = TestDb::new().await;
        let w = World::build(&db).await;
        let store = db.store().await;
        let baseline = Baseline::connect(&db, 2, store.keyring().unwrap().clone())
            .await
            .unwrap();
        (db, w, store, Arc::new(baseline))
    }

    /// Audit events of `practice` (read as the superuser: a count, not an isolation check).
    async fn audit_events(db: &TestDb, practice: PracticeId) -> i64 {
        sqlx::query_scalar("select count(*) from audit_event where practice_id = $1")
            .bind(practice)
            .fetch_one(&mut db.superuser_unsafe().await)
            .await
            .unwrap()
    }

    // issue 15.4: the direct-SQL baseline reads what the product read returns and appends its
    // one audit event, as the runtime role (another practice's patient stays invisible).
    #[tokio::test]
    async fn baseline_patient_read_is_the_product_read_without_the_session_check() {
        let (db, w, store, baseline) = setup().await;
        let actor = w.a.user("reception");
        let token = testkit::session_token(&store, actor).await;
        let product = testkit::read_patient(&store, &token, w.a.id, w.a.patient)
            .await
            .unwrap()
            .unwrap();
        let before = audit_events(&db, w.a.id).await;
        let direct = baseline
            .read_patient(w.a.id, actor, "{reception}", w.a.patient)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::to_value(&direct).unwrap(),
            serde_json::to_value(&product).unwrap()
        );
        assert_eq!(audit_events(&db, w.a.id).await, before + 1);
        assert!(
            baseline
                .read_patient(w.a.id, actor, "{reception}", w.b.patient)
                .await
                .unwrap()
                .is_none()
        );
    }

    // issue 15.4: the session-check baseline route answers like the real patient route (same
    // body, same request frame) through the same HTTPS stack; the real app has no such route.
    #[tokio::test]
    async fn baseline_route_passes_the_same_frame_as_the_patient_route() {
        let (_db, w, store, baseline) = setup().await;
        let actor = w.a.user("reception");
        let path = format!(
            "/bench/unauthenticated/practices/{}/patients/{}/as/{actor}/reception",
            w.a.id, w.a.patient
        );
        let plain = TestApp::start_with(store.clone()).await;
        let res = plain.http.get(plain.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let app = TestApp::start_extended(store, |_| {}, |app| app.merge(baseline.router())).await;
        let token = app.token(actor).await;
        let real = app
            .http
            .get(app.url(&format!(
                "/api/v1/practices/{}/patients/{}",
                w.a.id, w.a.patient
            )))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let direct = app.http.get(app.url(&path)).send().await.unwrap();
        assert_eq!(real.status(), StatusCode::OK);
        assert_eq!(direct.status(), StatusCode::OK);
        for h in [
            "x-request-id",
            "cache-control",
            "content-security-policy",
            "strict-transport-security",
        ] {
            assert!(direct.headers().contains_key(h), "{h}");
        }
        let real: serde_json::Value = real.json().await.unwrap();
        let direct: serde_json::Value = direct.json().await.unwrap();
        assert_eq!(direct, real);
    }

    // issue 15.4: the note baselines enter through the same session as the product path (a
    // bad session is refused), append no audit event, and read back what they wrote.
    #[tokio::test]
    async fn note_baselines_enter_by_session_and_append_no_audit_event() {
        let (db, w, store, baseline) = setup().await;
        let token = testkit::session_token(&store, w.a.user("clinician")).await;
        let content = crate::notes::content();
        let mut tx = testkit::enter_practice(&store, &token, w.a.id)
            .await
            .unwrap();
        let note = store::notes::create(
            &mut tx,
            store.keyring().unwrap(),
            w.a.patient,
            Template::DentalHygiene,
            None,
            &content,
        )
        .await
        .unwrap()
        .note_id;
        // Creating a note opens sealed data: the transaction commits only with its audit event.
        tx.audit(
            domain::AuditAction::NoteCreate,
            Some(w.a.patient),
            Some(domain::AuditObject::note(note)),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let session = SessionHash::of(&token);
        let before = audit_events(&db, w.a.id).await;
        assert!(
            baseline
                .save_note(&session, w.a.id, note, &content)
                .await
                .unwrap()
        );
        assert!(baseline.read_note(&session, w.a.id, note).await.unwrap());
        assert_eq!(audit_events(&db, w.a.id).await, before);
        let stranger = SessionHash::of(&testkit::session_token(&store, w.nobody).await);
        assert!(
            baseline
                .save_note(&stranger, w.a.id, note, &content)
                .await
                .is_err()
        );
        assert!(
            baseline
                .save_note(&SessionHash::of("not a token"), w.a.id, note, &content)
                .await
                .is_err()
        );
    }
}
