//! Tenant isolation and role scoping at the SQL level, as the runtime role (never a
//! superuser: superusers bypass row-level security).

use sqlx::{Connection as _, Executor as _, PgConnection, Row as _};
use testkit::{TestDb, World};

use crate::util::{db_code, source_files, tenant_tables};

async fn set_ctx(conn: &mut PgConnection, practice: Option<uuid::Uuid>, actor: Option<uuid::Uuid>) {
    testkit::enter_as(conn, practice, actor, false).await;
}

/// Gives a user every role in its practice so that only tenant isolation (not role scoping)
/// decides what is visible.
async fn grant_all_roles(db: &TestDb, w: &World) {
    let mut su = db.superuser_unsafe().await;
    for p in [&w.a, &w.b] {
        sqlx::query("update membership set roles = array['owner','admin','clinician','reception'] where practice_id = $1 and user_id = $2")
            .bind(p.id)
            .bind(p.user("owner"))
            .execute(&mut su)
            .await
            .unwrap();
        sqlx::query("insert into appointment (practice_id, appointment_id, patient_id, clinician_id, starts_at, ends_at, created_at, updated_at) values ($1, gen_random_uuid(), $2, $3, now(), now() + interval '30 minutes', now(), now())")
            .bind(p.id)
            .bind(p.patient)
            .bind(p.user("clinician"))
            .execute(&mut su)
            .await
            .unwrap();
        // The all-roles member has the patient on their care team (an appointment with them).
        sqlx::query("insert into appointment (practice_id, appointment_id, patient_id, clinician_id, starts_at, ends_at, created_at, updated_at) values ($1, gen_random_uuid(), $2, $3, now(), now() + interval '30 minutes', now(), now())")
            .bind(p.id)
            .bind(p.patient)
            .bind(p.user("owner"))
            .execute(&mut su)
            .await
            .unwrap();
        // Rows for the audit chain tables and disclosures (visibility fixtures only: the
        // sequencer has its own tests).
        for sql in [
            "insert into audit_sequence (practice_id, seq, event_id, chain_hash, leaf_hash, sequenced_at) values ($1, 0, gen_random_uuid(), sha256('x'), sha256('y'), now())",
            "insert into audit_node (practice_id, level, idx, hash) values ($1, 1, 0, sha256('z'))",
            "insert into audit_prune (practice_id, seq, chain_hash, pruned_at) values ($1, 1, sha256('p'), now())",
            // A crypto-shredding tombstone (the data keys and search tokens already exist).
            "insert into practice_key_destroyed (practice_id, destroyed_at) values ($1, now())",
        ] {
            sqlx::query(sql).bind(p.id).execute(&mut su).await.unwrap();
        }
        sqlx::query("insert into disclosure (practice_id, disclosure_id, patient_id, disclosed_at, recipient_enc, description_enc, purpose_enc, created_at) values ($1, gen_random_uuid(), $2, now(), '\\x00', '\\x00', '\\x00', now())")
            .bind(p.id)
            .bind(p.patient)
            .execute(&mut su)
            .await
            .unwrap();
        // And one clinical note, so every table has rows in both practices.
        sqlx::query("insert into clinical_note (practice_id, note_id, patient_id, author_id, body, created_at) values ($1, gen_random_uuid(), $2, $3, 'fixture', now())")
            .bind(p.id)
            .bind(p.patient)
            .bind(p.user("clinician"))
            .execute(&mut su)
            .await
            .unwrap();
        // A visit, a note version and a blob registration (opaque payloads: visibility only).
        let visit = uuid::Uuid::new_v4();
        sqlx::query("insert into visit (practice_id, visit_id, patient_id, clinician_id, started_at, created_at) values ($1, $2, $3, $4, now(), now())")
            .bind(p.id)
            .bind(visit)
            .bind(p.patient)
            .bind(p.user("clinician"))
            .execute(&mut su)
            .await
            .unwrap();
        let note = uuid::Uuid::new_v4();
        sqlx::query("insert into clinical_note (practice_id, note_id, patient_id, author_id, created_at, current_version, visit_id) values ($1, $2, $3, $4, now(), 1, $5)")
            .bind(p.id)
            .bind(note)
            .bind(p.patient)
            .bind(p.user("clinician"))
            .bind(visit)
            .execute(&mut su)
            .await
            .unwrap();
        sqlx::query("insert into clinical_note_version (practice_id, note_id, version, kind, author_id, created_at, content_enc, content_sha256) values ($1, $2, 1, 'draft', $3, now(), '\\x00', sha256('v'))")
            .bind(p.id)
            .bind(note)
            .bind(p.user("clinician"))
            .execute(&mut su)
            .await
            .unwrap();
        // The scribe's capture path: a policy, a consent, a capture and one chunk.
        sqlx::query(
            "with c as (insert into recording_consent (practice_id, consent_id, visit_id, patient_id, consented_by, method, consent_rule, recorded_by, recorded_at)
                        values ($1, gen_random_uuid(), $2, $3, 'patient', 'verbal', 'all_party', $4, now()) returning consent_id),
                  k as (insert into capture (practice_id, capture_id, visit_id, patient_id, consent_id, clinician_id, state, stop_reason, started_at, stopped_at, max_seconds)
                        select $1, gen_random_uuid(), $2, $3, c.consent_id, $4, 'stopped', 'clinician', now(), now(), 60 from c returning capture_id),
                  s as (insert into scribe_policy (practice_id, updated_at) values ($1, now()))
             insert into capture_chunk (practice_id, capture_id, patient_id, seq, sha256, bytes, duration_ms, offset_ms, received_at)
             select $1, k.capture_id, $3, 0, sha256('a'), 44, 1, 0, now() from k",
        )
        .bind(p.id)
        .bind(visit)
        .bind(p.patient)
        .bind(p.user("clinician"))
        .execute(&mut su)
        .await
        .unwrap();
        // The scribe's AI side: a provider, a turn, a transcript segment and its revision, a
        // note draft and its sentence.
        sqlx::query(
            "with pr as (insert into ai_provider (practice_id, provider_id, label, adapter, purpose, base_url, model, hosting, vendor, training_disabled, created_at, updated_at)
                         values ($1, gen_random_uuid(), 'Local', 'openai_chat', 'drafting', 'http://127.0.0.1:1', 'm', 'self_hosted', 'self', true, now(), now())),
                  t as (insert into assistant_turn (practice_id, turn_id, patient_id, visit_id, provider_label, model, purpose, latency_ms, outcome, created_at)
                        values ($1, gen_random_uuid(), $3, $2, 'Local', 'm', 'transcription', 1, 'ok', now()) returning turn_id),
                  k as (select capture_id from capture where practice_id = $1 limit 1),
                  g as (insert into transcript_segment (practice_id, segment_id, capture_id, patient_id, chunk_seq, start_ms, end_ms, turn_id, text_enc)
                        select $1, gen_random_uuid(), k.capture_id, $3, 0, 0, 1, t.turn_id, '\\x00' from k, t returning segment_id),
                  r as (insert into transcript_revision (practice_id, segment_id, patient_id, revision, text_enc, revised_at)
                        select $1, g.segment_id, $3, 0, '\\x00', now() from g),
                  d as (insert into note_draft (practice_id, draft_id, visit_id, patient_id, ai_written, template, content_enc, created_by, created_at)
                        values ($1, gen_random_uuid(), $2, $3, false, 'free', '\\x00', $4, now()) returning draft_id)
             insert into draft_sentence (practice_id, draft_id, patient_id, idx, section, text_enc)
             select $1, d.draft_id, $3, 0, 'plan', '\\x00' from d",
        )
        .bind(p.id)
        .bind(visit)
        .bind(p.patient)
        .bind(p.user("clinician"))
        .execute(&mut su)
        .await
        .unwrap();
        sqlx::query("insert into blob_object (practice_id, blob_id, object_id, dek_version, plaintext_len, stored_len, created_at) values ($1, $2, $2, 1, 1, 80, now())")
            .bind(p.id)
            .bind(uuid::Uuid::new_v4())
            .execute(&mut su)
            .await
            .unwrap();
        sqlx::query("insert into break_glass (practice_id, grant_id, user_id, patient_id, reason_enc, opened_at, expires_at) values ($1, gen_random_uuid(), $2, $3, '\\x00', now(), now() + interval '1 hour')")
            .bind(p.id)
            .bind(p.user("clinician"))
            .bind(p.patient)
            .execute(&mut su)
            .await
            .unwrap();
        // A legal hold (retention).
        sqlx::query("insert into legal_hold (practice_id, patient_id, category, placed_by, placed_at) values ($1, $2, 'other', $3, now())")
            .bind(p.id)
            .bind(p.patient)
            .bind(p.user("owner"))
            .execute(&mut su)
            .await
            .unwrap();
        sqlx::query("insert into support_grant (practice_id, grant_id, support_user_id, scope, reason_enc, approved_by, approved_at, expires_at) values ($1, gen_random_uuid(), $2, 'scheduling', '\\x00', $2, now(), now() + interval '1 hour')")
            .bind(p.id)
            .bind(p.user("owner"))
            .execute(&mut su)
            .await
            .unwrap();
        // An invitation (issue 14.5: a tag of the address, never the address).
        sqlx::query("insert into membership_invitation (practice_id, invitation_id, email_tag, roles, invited_by, created_at, expires_at) values ($1, gen_random_uuid(), sha256(gen_random_uuid()::text::bytea), array['reception'], $2, now(), now() + interval '7 days')")
            .bind(p.id)
            .bind(p.user("owner"))
            .execute(&mut su)
            .await
            .unwrap();
        // Online booking: rules, a service offered by the clinician, hours, one booking.
        sqlx::query(
            "with st as (insert into booking_settings (practice_id, enabled, updated_at) values ($1, true, now())),
                  sv as (insert into booking_service (practice_id, service_id, name, duration_minutes, created_at, updated_at)
                         values ($1, $4, 'Fixture service', 30, now(), now())),
                  sc as (insert into booking_service_clinician (practice_id, service_id, clinician_id) values ($1, $4, $3)),
                  h as (insert into clinician_hours (practice_id, clinician_id, weekday, opens, closes) values ($1, $3, 1, '09:00', '17:00')),
                  a as (insert into appointment (practice_id, appointment_id, patient_id, clinician_id, starts_at, ends_at, status, created_at, updated_at)
                        values ($1, $5, $2, $3, now() + interval '2 days', now() + interval '2 days 30 minutes', 'requested', now(), now()))
             insert into online_booking (practice_id, booking_id, appointment_id, service_id, patient_id, client_kind, status, created_at, updated_at)
             values ($1, gen_random_uuid(), $5, $4, $2, 'new', 'requested', now(), now())",
        )
        .bind(p.id)
        .bind(p.patient)
        .bind(p.user("clinician"))
        .bind(uuid::Uuid::new_v4())
        .bind(uuid::Uuid::new_v4())
        .execute(&mut su)
        .await
        .unwrap();
        // The booking's payment (issue 19: ids, states, amounts only).
        sqlx::query(
            "insert into booking_payment (practice_id, payment_id, booking_id, patient_id, kind, state, amount_minor, currency, created_at, updated_at)
             select $1, gen_random_uuid(), booking_id, patient_id, 'deposit', 'paid', 1000, 'usd', now(), now()
               from online_booking where practice_id = $1",
        )
        .bind(p.id)
        .execute(&mut su)
        .await
        .unwrap();
        // A client link with its intake request and signed response (issue 19).
        sqlx::query(
            "with l as (insert into client_link (practice_id, link_id, purpose, digest, patient_id, subject_id, created_at, expires_at)
                        values ($1, $3, 'intake', sha256(gen_random_uuid()::text::bytea), $2, $4, now(), now() + interval '1 day')),
                  r as (insert into intake_request (practice_id, request_id, patient_id, form_id, form_version, form_hash, status, link_id, created_at, submitted_at)
                        values ($1, $4, $2, 'consent_to_treatment', 1, sha256('x'), 'submitted', $3, now(), now()))
             insert into intake_response (practice_id, request_id, patient_id, answers_enc, signer_name_enc, intent_shown, esign_consent, evidence_hash, signed_at)
             values ($1, $4, $2, '\\x00', '\\x00', true, true, sha256('y'), now())",
        )
        .bind(p.id)
        .bind(p.patient)
        .bind(uuid::Uuid::new_v4())
        .bind(uuid::Uuid::new_v4())
        .execute(&mut su)
        .await
        .unwrap();
        // The outbox: one queued message (sealed columns as opaque bytes), the sending rules
        // and one opt-out (a blind-index tag).
        sqlx::query(
            "with m as (insert into outbox_message (practice_id, message_id, patient_id, template, channel, cause, cause_id,
                                                  recipient_enc, slots_enc, next_attempt_at, idempotency_key, created_at, updated_at)
                        values ($1, gen_random_uuid(), $2, 'booking_confirmed', 'sms', 'online_booking', gen_random_uuid(),
                                '\\x00', '\\x00', now(), gen_random_uuid(), now(), now())),
                  o as (insert into sms_opt_out (practice_id, phone_tag, opted_out, updated_at)
                        values ($1, sha256(gen_random_uuid()::text::bytea), true, now()))
             insert into outbox_settings (practice_id, updated_at) values ($1, now())",
        )
        .bind(p.id)
        .bind(p.patient)
        .execute(&mut su)
        .await
        .unwrap();
        // The waitlist: an entry and one offer of a freed slot with its link (issue 19.5).
        sqlx::query(
            "with sv as (insert into booking_service (practice_id, service_id, name, duration_minutes, created_at, updated_at)
                         values ($1, $4, 'Waitlist service', 30, now(), now())),
                  e as (insert into waitlist_entry (practice_id, entry_id, patient_id, service_id, earliest, latest, state, created_at, updated_at)
                        values ($1, $5, $2, $4, now(), now() + interval '7 days', 'waiting', now(), now())),
                  l as (insert into client_link (practice_id, link_id, purpose, digest, patient_id, subject_id, created_at, expires_at)
                        values ($1, $6, 'offer', sha256(gen_random_uuid()::text::bytea), $2, $7, now(), now() + interval '1 hour'))
             insert into waitlist_offer (practice_id, offer_id, entry_id, patient_id, service_id, clinician_id, freed_appointment_id,
                                         starts_at, ends_at, link_id, state, created_at, expires_at)
             values ($1, $7, $5, $2, $4, $3, gen_random_uuid(), now() + interval '1 day', now() + interval '1 day 30 minutes',
                     $6, 'open', now(), now() + interval '1 hour')",
        )
        .bind(p.id)
        .bind(p.patient)
        .bind(p.user("clinician"))
        .bind(uuid::Uuid::new_v4())
        .bind(uuid::Uuid::new_v4())
        .bind(uuid::Uuid::new_v4())
        .bind(uuid::Uuid::new_v4())
        .execute(&mut su)
        .await
        .unwrap();
        // A Web Push subscription of the owner (sealed as opaque bytes).
        sqlx::query(
            "insert into push_subscription (practice_id, subscription_id, user_id, endpoint_digest,
                    endpoint_host, subscription_enc, created_at)
             values ($1, gen_random_uuid(), $2, sha256(gen_random_uuid()::text::bytea),
                    'fcm.googleapis.com', decode(repeat('00', 40), 'hex'), now())",
        )
        .bind(p.id)
        .bind(p.user("owner"))
        .execute(&mut su)
        .await
        .unwrap();
        // And one perio exam (an opaque payload: visibility only).
        sqlx::query("insert into perio_exam (practice_id, exam_id, patient_id, clinician_id, created_at, updated_at, session_enc) values ($1, gen_random_uuid(), $2, $3, now(), now(), '\\x00')")
            .bind(p.id)
            .bind(p.patient)
            .bind(p.user("clinician"))
            .execute(&mut su)
            .await
            .unwrap();
        // Emergency mode switched on by the practice's owner.
        sqlx::query("insert into practice_emergency (practice_id, since, switched_by) values ($1, now(), $2)")
            .bind(p.id)
            .bind(p.user("owner"))
            .execute(&mut su)
            .await
            .unwrap();
        // A security incident with a scope, a letter and an alert, and the patient's state.
        sqlx::query(
            "with i as (insert into incident (practice_id, incident_id, discovered_at, detection_source, description_enc,
                            baa_notice_hours, created_at, updated_at)
                        values ($1, $3, now(), 'other', '\\x00', 24, now(), now())),
                  r as (insert into patient_residence (practice_id, patient_id, state, updated_at) values ($1, $2, 'CA', now())),
                  a as (insert into incident_affected (practice_id, incident_id, patient_id, state, events) values ($1, $3, $2, 'CA', 1)),
                  l as (insert into incident_letter (practice_id, incident_id, letter_id, recipient_kind, sent_on, letters, created_at)
                        values ($1, $3, gen_random_uuid(), 'individual', current_date, 1, now()))
             insert into incident_alert (practice_id, incident_id, clock, due_at, alerted_at) values ($1, $3, 'alert_24h', now(), now())",
        )
        .bind(p.id)
        .bind(p.patient)
        .bind(uuid::Uuid::new_v4())
        .execute(&mut su)
        .await
        .unwrap();
        // A right-of-access request (req PR-01).
        sqlx::query(
            "insert into access_request (practice_id, request_id, patient_id, received_at, form, due_at,
                created_at, updated_at)
             values ($1, gen_random_uuid(), $2, now(), 'html', now() + interval '720 hours', now(), now())",
        )
        .bind(p.id)
        .bind(p.patient)
        .execute(&mut su)
        .await
        .unwrap();
        // How far the audit log was forwarded to a sink (req AUD-08).
        sqlx::query(
            "insert into audit_forward (practice_id, sink, next_seq, forwarded_at)
             values ($1, 'syslog', 0, now())",
        )
        .bind(p.id)
        .execute(&mut su)
        .await
        .unwrap();
        // An amendment request (req SIG-08).
        sqlx::query(
            "insert into amendment_request (practice_id, request_id, patient_id, received_at, record_kind,
                requested_change_enc, due_at, created_at, updated_at)
             select $1, gen_random_uuid(), $2, t, 'other', '\\x00'::bytea, t + interval '1440 hours', t, t
               from (select now() as t) n",
        )
        .bind(p.id)
        .bind(p.patient)
        .execute(&mut su)
        .await
        .unwrap();
    }
}

// req: AC-05, AU-09
#[tokio::test]
async fn rls_enabled_forced_and_tenant_isolated_for_every_tenant_table() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    grant_all_roles(&db, &w).await;
    let mut conn = db.runtime_conn().await;
    let tables = tenant_tables(&mut conn).await;
    for expected in [
        "practice",
        "membership",
        "patient",
        "appointment",
        "clinical_note",
        "audit_event",
    ] {
        assert!(
            tables.iter().any(|t| t == expected),
            "{expected} missing from {tables:?}"
        );
    }
    let (a, b) = (w.a.id.as_uuid(), w.b.id.as_uuid());
    let a_actor = w.a.user("owner").as_uuid();
    let mut su = db.superuser_unsafe().await;
    for table in &tables {
        let flags: (bool, bool) = sqlx::query_as("select relrowsecurity, relforcerowsecurity from pg_class where relname = $1 and relnamespace = 'public'::regnamespace")
            .bind(table)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            flags,
            (true, true),
            "{table}: RLS must be enabled and forced"
        );

        let b_rows: i64 = sqlx::query_scalar(&format!(
            "select count(*) from {table} where practice_id = $1"
        ))
        .bind(b)
        .fetch_one(&mut su)
        .await
        .unwrap();
        assert!(
            b_rows > 0,
            "{table}: fixture must give B rows, or the test proves nothing"
        );

        // No practice set: nothing.
        set_ctx(&mut conn, None, None).await;
        let n: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table}: rows visible with no practice set");

        // Practice A set: B invisible to SELECT, UPDATE and DELETE.
        set_ctx(&mut conn, Some(a), Some(a_actor)).await;
        let n: i64 = sqlx::query_scalar(&format!(
            "select count(*) from {table} where practice_id = $1"
        ))
        .bind(b)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table}: B rows visible from A");
        let a_rows: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(
            a_rows > 0,
            "{table}: A's own rows must be visible to A's all-roles member"
        );

        let can = |p: &str| format!("select has_table_privilege(current_user, '{table}', '{p}')");
        if sqlx::query_scalar::<_, bool>(&can("UPDATE"))
            .fetch_one(&mut conn)
            .await
            .unwrap()
        {
            let col = if table == "practice" {
                "name"
            } else {
                "practice_id"
            };
            let r = conn
                .execute(
                    sqlx::query(&format!(
                        "update {table} set {col} = {col} where practice_id = $1"
                    ))
                    .bind(b),
                )
                .await;
            match r {
                Ok(done) => assert_eq!(done.rows_affected(), 0, "{table}: UPDATE reached B rows"),
                Err(e) => assert_eq!(db_code(&e), "42501", "{table}: {e}"),
            }
        }
        if sqlx::query_scalar::<_, bool>(&can("DELETE"))
            .fetch_one(&mut conn)
            .await
            .unwrap()
        {
            let mut tx = conn.begin().await.unwrap();
            let done = tx
                .execute(
                    sqlx::query(&format!("delete from {table} where practice_id = $1")).bind(b),
                )
                .await
                .unwrap();
            assert_eq!(done.rows_affected(), 0, "{table}: DELETE reached B rows");
            tx.rollback().await.unwrap();
        }

        // Inserting a row for B fails (a copy of one of B's rows with a fresh key).
        let row: serde_json::Value = sqlx::query_scalar(&format!(
            "select to_jsonb(t) from {table} t where practice_id = $1 limit 1"
        ))
        .bind(b)
        .fetch_one(&mut su)
        .await
        .unwrap();
        let mut row = row;
        let fresh_key = match table.as_str() {
            "patient" => Some("patient_id"),
            "appointment" => Some("appointment_id"),
            "clinical_note" => Some("note_id"),
            "audit_event" | "audit_pending" => Some("event_id"),
            "disclosure" => Some("disclosure_id"),
            "incident" => Some("incident_id"),
            "access_request" | "amendment_request" => Some("request_id"),
            _ => None,
        };
        if let Some(key) = fresh_key {
            row[key] = serde_json::Value::String(uuid::Uuid::new_v4().to_string());
        }
        let err = sqlx::query(&format!(
            "insert into {table} overriding system value select * from jsonb_populate_record(null::{table}, $1)"
        ))
        .bind(&row)
        .execute(&mut conn)
        .await
        .expect_err(&format!("{table}: inserting a row for B from A must fail"));
        assert_eq!(db_code(&err), "42501", "{table}: {err}");
    }
}

// req: AC-05, AU-09
#[tokio::test]
async fn runtime_role_catalog_flags() {
    let db = TestDb::new().await;
    let mut conn = db.runtime_conn().await;
    let row = sqlx::query(
        "select rolsuper, rolbypassrls, rolcreaterole, rolcreatedb,
                has_database_privilege(current_database(), 'CREATE') as db_create,
                has_database_privilege(current_database(), 'TEMP') as db_temp,
                has_schema_privilege('public', 'CREATE') as public_create,
                (select count(*) from pg_class c where pg_has_role(current_user, c.relowner, 'USAGE')
                   and c.relnamespace = 'public'::regnamespace) as owned,
                (select count(*) from pg_class c where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'
                   and has_table_privilege(current_user, c.oid, 'TRUNCATE')) as truncatable
           from pg_roles where rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    for col in [
        "rolsuper",
        "rolbypassrls",
        "rolcreaterole",
        "rolcreatedb",
        "db_create",
        "db_temp",
        "public_create",
    ] {
        assert!(!row.get::<bool, _>(col), "runtime role has {col}");
    }
    assert_eq!(row.get::<i64, _>("owned"), 0);
    assert_eq!(row.get::<i64, _>("truncatable"), 0);
    // DDL is refused.
    for ddl in [
        "create table x (i int)",
        "alter table patient add column x int",
        "drop table patient",
        "truncate patient",
    ] {
        assert_eq!(
            db_code(&conn.execute(ddl).await.unwrap_err()),
            "42501",
            "{ddl}"
        );
    }
}

// req: AU-09
#[tokio::test]
async fn start_up_refuses_an_unsafe_role() {
    let db = TestDb::new().await;
    // The owner role owns every table: not acceptable for serving.
    let err = store::Store::connect_runtime(db.owner_options().await, 1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("owns tables"), "{err}");
    // The real runtime role passes.
    store::Store::connect_runtime(db.runtime_options().await, 1)
        .await
        .unwrap();
}

// req: AC-08 (admin without clinician sees no PHI), role scoping in the database
#[tokio::test]
async fn roles_scope_rows_in_the_database() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let mut su = db.superuser_unsafe().await;
    sqlx::query("insert into clinical_note (practice_id, note_id, patient_id, author_id, body, created_at) values ($1, gen_random_uuid(), $2, $3, 'fixture', now())")
        .bind(w.a.id)
        .bind(w.a.patient)
        .bind(w.a.user("clinician"))
        .execute(&mut su)
        .await
        .unwrap();
    let mut conn = db.runtime_conn().await;
    let count = async |conn: &mut PgConnection, table: &str| -> i64 {
        sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(conn)
            .await
            .unwrap()
    };
    let cases: &[(&str, &str, i64)] = &[
        // (role, table, rows visible)
        ("reception", "clinical_note", 0),
        ("reception", "patient", 1),
        ("clinician", "clinical_note", 1),
        ("clinician", "patient", 1),
        ("owner", "clinical_note", 0),
        ("owner", "patient", 0),
        ("admin", "patient", 0),
        ("admin", "membership", 4),
    ];
    for (role, table, want) in cases {
        set_ctx(
            &mut conn,
            Some(w.a.id.as_uuid()),
            Some(w.a.user(role).as_uuid()),
        )
        .await;
        assert_eq!(count(&mut conn, table).await, *want, "{role} on {table}");
    }
    // Reception cannot write a clinical note either.
    set_ctx(
        &mut conn,
        Some(w.a.id.as_uuid()),
        Some(w.a.user("reception").as_uuid()),
    )
    .await;
    let err = sqlx::query("insert into clinical_note (practice_id, note_id, patient_id, author_id, body, created_at) values ($1, gen_random_uuid(), $2, $3, 'x', now())")
        .bind(w.a.id)
        .bind(w.a.patient)
        .bind(w.a.user("reception"))
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(db_code(&err), "42501");
    // A removed member loses access from the next entry on (the roles are derived from
    // `membership` when a request enters the practice and hold for its transaction).
    sqlx::query("delete from membership where practice_id = $1 and user_id = $2")
        .bind(w.a.id)
        .bind(w.a.user("reception"))
        .execute(&mut su)
        .await
        .unwrap();
    set_ctx(
        &mut conn,
        Some(w.a.id.as_uuid()),
        Some(w.a.user("reception").as_uuid()),
    )
    .await;
    assert_eq!(count(&mut conn, "patient").await, 0);
    // Without roles set, nothing role-scoped is visible (fail closed).
    set_ctx(
        &mut conn,
        Some(w.a.id.as_uuid()),
        Some(w.a.user("clinician").as_uuid()),
    )
    .await;
    assert_eq!(count(&mut conn, "patient").await, 1);
    sqlx::query("select set_config('chartroom.roles', '', false)")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(count(&mut conn, "patient").await, 0);
}

/// The practice's session settings copied onto its memberships (which the session check reads)
/// as seen by the superuser: (user, idle, absolute, passkey) per member, by user id.
async fn membership_copies(
    su: &mut PgConnection,
    practice: uuid::Uuid,
) -> Vec<(uuid::Uuid, Option<String>, Option<String>, bool)> {
    sqlx::query_as(
        "select user_id, practice_session_idle::text, practice_session_absolute::text, practice_requires_passkey
           from membership where practice_id = $1 order by user_id",
    )
    .bind(practice)
    .fetch_all(su)
    .await
    .unwrap()
}

// req: AC-09 (per-practice session lifetimes are enforced from the copy on each membership)
#[tokio::test]
async fn membership_copies_of_session_settings_follow_the_practice() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let mut su = db.superuser_unsafe().await;
    let (a, b) = (w.a.id.as_uuid(), w.b.id.as_uuid());
    let b_before = membership_copies(&mut su, b).await;

    // An owner changes practice A's settings as the runtime role: every membership of A
    // follows in the same transaction, B's do not move.
    let mut conn = db.runtime_conn().await;
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    testkit::enter_as(&mut tx, Some(a), Some(w.a.user("owner").as_uuid()), true).await;
    sqlx::query("update practice set session_idle_seconds = 300, session_absolute_seconds = 7200, require_passkey_for_managers = true where practice_id = $1")
        .bind(a)
        .execute(&mut *tx)
        .await
        .unwrap();
    // The owner's own transaction still has practice A entered afterwards.
    let entered: Option<uuid::Uuid> = sqlx::query_scalar("select app.practice()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(entered, Some(a));
    tx.commit().await.unwrap();
    let copies = membership_copies(&mut su, a).await;
    assert_eq!(copies.len(), 4);
    for (user, idle, absolute, passkey) in &copies {
        assert_eq!(
            (idle.as_deref(), absolute.as_deref(), *passkey),
            (Some("00:05:00"), Some("02:00:00"), true),
            "{user}"
        );
    }
    assert_eq!(membership_copies(&mut su, b).await, b_before);

    // A member added later starts with the practice's settings.
    let now = chrono::Utc::now();
    let new_user = async |name: &str| {
        let owner = db.owner().await;
        let user = owner
            .create_user(
                &format!("user.{}@example.invalid", uuid::Uuid::new_v4().simple()),
                name,
                testkit::password_hash(),
                now,
            )
            .await
            .unwrap();
        owner.close().await;
        user
    };
    let user = new_user("Late Joiner").await;
    let owner = db.owner().await;
    owner
        .add_member(
            w.a.id,
            user,
            domain::RoleSet::from_iter([domain::Role::Reception]),
            now,
        )
        .await
        .unwrap();
    owner.close().await;
    let copies = membership_copies(&mut su, a).await;
    let late = copies.iter().find(|c| c.0 == user.as_uuid()).unwrap();
    assert_eq!(
        (late.1.as_deref(), late.2.as_deref(), late.3),
        (Some("00:05:00"), Some("02:00:00"), true)
    );

    // Clearing a setting clears the copies (the installation default applies again).
    sqlx::query("update practice set session_idle_seconds = null where practice_id = $1")
        .bind(a)
        .execute(&mut su)
        .await
        .unwrap();
    assert!(
        membership_copies(&mut su, a)
            .await
            .iter()
            .all(|c| c.1.is_none())
    );

    // The runtime role cannot write the copies itself, even as an owner of the practice; it
    // may change roles only.
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    testkit::enter_as(&mut tx, Some(a), Some(w.a.user("owner").as_uuid()), true).await;
    let err = sqlx::query("update membership set practice_session_absolute = interval '24 hours' where practice_id = $1")
        .bind(a)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(db_code(&err), "42501");
    drop(tx);
    // And a forged copy on insert is overwritten with the practice's.
    let other = new_user("Forged Copy").await;
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    testkit::enter_as(&mut tx, Some(a), Some(w.a.user("owner").as_uuid()), true).await;
    sqlx::query("insert into membership (practice_id, user_id, roles, practice_session_absolute, practice_requires_passkey) values ($1, $2, array['reception'], interval '24 hours', false)")
        .bind(a)
        .bind(other)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let copies = membership_copies(&mut su, a).await;
    let forged = copies.iter().find(|c| c.0 == other.as_uuid()).unwrap();
    assert_eq!((forged.2.as_deref(), forged.3), (Some("02:00:00"), true));
}

// Row-level security trusts `chartroom.roles` for the transaction: only the session check
// (app.enter, app.enter_support) and the SQL-level test helper (which the benchmark harness's
// baselines use too) write it; no server or store code does (issue 15.4).
#[test]
fn only_the_session_check_sets_the_actor_roles() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    source_files(&root.join("crates"), &["rs", "sql"], &mut files);
    source_files(&root.join("migrations"), &["rs", "sql"], &mut files);
    let mut writers: Vec<String> = files
        .iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == "tests"))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.split("set_config(").skip(1).any(|rest| {
                rest.trim_start()
                    .trim_start_matches(['\'', '"'])
                    .starts_with("chartroom.roles")
            })
        })
        .map(|f| {
            f.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    writers.sort();
    assert_eq!(
        writers,
        [
            "crates/testkit/src/lib.rs",
            "migrations/0011_lean_entry.sql",
            "migrations/0013_session_access.sql",
            "migrations/0023_session_idle_shown.sql",
            // The public booking page's entry: the `online_booking` pseudo-role, no actor.
            "migrations/0028_booking.sql",
            // A client link holder's entry: the `client_link` pseudo-role, no actor.
            "migrations/0030_client_links.sql",
            // A cancellation's waitlist release: the `waitlist_release` pseudo-role for the
            // offers, then the caller's roles back.
            "migrations/0033_waitlist.sql"
        ],
        "chartroom.roles is written outside the session check"
    );
}
