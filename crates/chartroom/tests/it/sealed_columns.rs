//! Issue 14.3: disclosure details are sealed at rest like every other PHI column (raw rows,
//! the table file, the WAL and `pg_statistic` hold no plaintext; the API reads it back), old
//! plaintext rows are sealed by `encrypt-existing`, data-key rotation re-encrypts every sealed
//! column (disclosures, break-glass and support-grant reasons included) and crypto-shredding
//! makes them unreadable; and a sweep of the catalog: every text-like column of a tenant table
//! is sealed or on the one reasoned allow-list (`store::sealed_columns`).

use std::fmt::Write as _;

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgConnection;
use store::sealed_columns::{PLAINTEXT_COLUMNS, plaintext_allowed};
use testkit::{TestApp, TestDb, World};

use crate::encryption::rows_text;
use crate::util::call;

/// Synthetic, searchable canaries: never a real person or record.
const RECIPIENT: &str = "Zqxcanary Recipientvorn Esq";
const DESCRIPTION: &str = "Canary Xqdescription: films of tooth 36 and the 2031 exam";
const PURPOSE: &str = "Canary Pqpurpose litigation request";

struct Fx {
    db: TestDb,
    w: World,
    app: TestApp,
    rec_a: String,
    rec_b: String,
}

async fn fx() -> Fx {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let rec_a = app.token(w.a.user("reception")).await;
    let rec_b = app.token(w.b.user("reception")).await;
    Fx {
        db,
        w,
        app,
        rec_a,
        rec_b,
    }
}

impl Fx {
    fn path(&self, b: bool) -> String {
        let p = if b { &self.w.b } else { &self.w.a };
        format!(
            "/api/v1/practices/{}/patients/{}/disclosures",
            p.id, p.patient
        )
    }

    /// Records a disclosure (a day ago) through the API.
    async fn disclose(&self, b: bool, recipient: &str, description: &str, purpose: &str) {
        let token = if b { &self.rec_b } else { &self.rec_a };
        let (s, v) = call(
            &self.app,
            Method::POST,
            &self.path(b),
            Some(token),
            Some(&json!({
                "recipient": recipient, "description": description, "purpose": purpose,
                "kind": "sharing", "disclosed_at": Utc::now() - Duration::days(1)
            })),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(
            v["recipient"], recipient,
            "the response shows the plaintext"
        );
    }

    /// The accounting of disclosures of practice A's (or B's) patient, through `app`.
    async fn accounting(&self, app: &TestApp, token: &str, b: bool) -> (StatusCode, Value) {
        call(app, Method::GET, &self.path(b), Some(token), None).await
    }
}

/// The accounting `v` lists `n` disclosures, each with the canary recipient, description and
/// purpose in the clear.
fn assert_shows_the_canaries(v: &Value, n: usize) {
    assert_shows(v, n, [RECIPIENT, DESCRIPTION, PURPOSE]);
}

fn assert_shows(v: &Value, n: usize, [recipient, description, purpose]: [&str; 3]) {
    let list = v["disclosures"].as_array().unwrap();
    assert_eq!(list.len(), n, "{v}");
    for d in list {
        assert_eq!(
            (&d["recipient"], &d["description"], &d["purpose"]),
            (&json!(recipient), &json!(description), &json!(purpose)),
            "{v}"
        );
    }
}

fn hex(s: &str) -> String {
    s.bytes().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every sampled value the planner keeps about `table` (`pg_stats`), as text.
async fn stats_text(su: &mut PgConnection, table: &str) -> String {
    let rows: Vec<Option<String>> = sqlx::query_scalar(
        "select concat_ws(' ', most_common_vals::text, histogram_bounds::text)
           from pg_stats where schemaname = 'public' and tablename = $1",
    )
    .bind(table)
    .fetch_all(su)
    .await
    .unwrap();
    rows.into_iter().flatten().collect::<Vec<_>>().join("\n")
}

/// The bytes of `table`'s heap file, after a checkpoint wrote its pages out.
async fn table_file(su: &mut PgConnection, table: &str) -> Vec<u8> {
    sqlx::query("checkpoint").execute(&mut *su).await.unwrap();
    sqlx::query_scalar("select pg_read_binary_file(pg_relation_filepath($1::regclass))")
        .bind(table)
        .fetch_one(su)
        .await
        .unwrap()
}

/// The WAL written since `from` (segments already recycled are skipped).
async fn wal_since(su: &mut PgConnection, from: &str) -> Vec<u8> {
    let segments: Vec<String> = sqlx::query_scalar(
        "select distinct pg_walfile_name(lsn) from (
             select $1::pg_lsn as lsn union all select pg_current_wal_insert_lsn()) l",
    )
    .bind(from)
    .fetch_all(&mut *su)
    .await
    .unwrap();
    let (first, last) = (
        segments.iter().min().unwrap().clone(),
        segments.iter().max().unwrap().clone(),
    );
    let names: Vec<(String, i64)> = sqlx::query_as(
        "select name, size from pg_ls_waldir() where name between $1 and $2 order by name",
    )
    .bind(&first)
    .bind(&last)
    .fetch_all(&mut *su)
    .await
    .unwrap();
    let mut out = Vec::new();
    for (n, size) in names {
        let bytes: Option<Vec<u8>> =
            sqlx::query_scalar("select pg_read_binary_file('pg_wal/' || $1, 0, $2, true)")
                .bind(&n)
                .bind(size)
                .fetch_one(&mut *su)
                .await
                .unwrap();
        out.extend(bytes.unwrap_or_default());
    }
    assert!(!out.is_empty(), "the WAL since {from} was read");
    out
}

// issue 14.3, req ENC-01, PR-03 — recipient, description and purpose typed into a disclosure
// appear in no column, not in the table file, not in the WAL and not in the planner's samples;
// the accounting of disclosures still shows them (and summarizes the repeated recipient).
#[tokio::test]
async fn disclosure_details_never_reach_the_table_the_wal_or_the_statistics() {
    let f = fx().await;
    let mut su = f.db.superuser_unsafe().await;
    // The WAL is the whole cluster's: canaries of this test alone (other tests write the
    // shared ones in the clear on purpose, as rows from before sealing).
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let (recipient, description, purpose) = (
        format!("Wqz{tag} Recipientvorn Esq"),
        format!("Canary Wqdesc{tag}: films of tooth 36"),
        format!("Canary Wqpurp{tag} litigation request"),
    );
    let start: String = sqlx::query_scalar("select pg_current_wal_insert_lsn()::text")
        .fetch_one(&mut su)
        .await
        .unwrap();
    for _ in 0..3 {
        f.disclose(false, &recipient, &description, &purpose).await;
    }
    let (s, v) = f.accounting(&f.app, &f.rec_a, false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_shows(&v, 3, [&recipient, &description, &purpose]);
    assert_eq!(v["summary"][0]["count"], 3, "{v}");

    sqlx::query("analyze disclosure")
        .execute(&mut su)
        .await
        .unwrap();
    let tags = [
        format!("Wqz{tag}"),
        format!("Wqdesc{tag}"),
        format!("Wqpurp{tag}"),
    ];
    let canaries = [
        recipient.as_str(),
        description.as_str(),
        purpose.as_str(),
        tags[0].as_str(),
        tags[1].as_str(),
        tags[2].as_str(),
    ];
    let rows = rows_text(&mut su, "disclosure").await;
    let stats = stats_text(&mut su, "disclosure").await;
    let wal = wal_since(&mut su, &start).await;
    let file = table_file(&mut su, "disclosure").await;
    for c in canaries {
        assert!(!rows.contains(c), "a disclosure row holds {c}");
        assert!(
            !rows.contains(&hex(c)),
            "a disclosure row holds {c} as bytes"
        );
        assert!(!stats.contains(c), "pg_stats holds {c}");
        assert!(!contains(&file, c.as_bytes()), "the table file holds {c}");
        assert!(!contains(&wal, c.as_bytes()), "the WAL holds {c}");
    }
    let plain: i64 = sqlx::query_scalar(
        "select count(*) from disclosure
          where recipient is not null or description is not null or purpose is not null",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(plain, 0, "no plaintext column is written");
    // Nothing can write plaintext any more, not even a superuser.
    let err = sqlx::query(
        "insert into disclosure (practice_id, disclosure_id, patient_id, disclosed_at, recipient,
            description, purpose, created_at)
         values ($1, gen_random_uuid(), $2, now(), 'r', 'd', 'p', now())",
    )
    .bind(f.w.a.id)
    .bind(f.w.a.patient)
    .execute(&mut su)
    .await
    .unwrap_err();
    assert_eq!(crate::util::db_code(&err), "23514", "{err}");
}

// issue 14.3, req ENC-01 — disclosures written before their columns were sealed read as
// before; `encrypt-existing` (the start-up job) seals them, empties the plaintext and
// refreshes the planner's samples.
#[tokio::test]
async fn plaintext_disclosures_from_before_are_sealed_at_start_up() {
    let f = fx().await;
    let mut su = f.db.superuser_unsafe().await;
    // Rows as an older Chartroom wrote them (before migration 0016 added the constraint).
    sqlx::query("alter table disclosure drop constraint disclosure_no_new_plaintext")
        .execute(&mut su)
        .await
        .unwrap();
    for _ in 0..3 {
        sqlx::query(
            "insert into disclosure (practice_id, disclosure_id, patient_id, disclosed_at, recipient,
                description, purpose, kind, created_at)
             values ($1, gen_random_uuid(), $2, now() - interval '2 days', $3, $4, $5, 'export', now())",
        )
        .bind(f.w.a.id)
        .bind(f.w.a.patient)
        .bind(RECIPIENT)
        .bind(DESCRIPTION)
        .bind(PURPOSE)
        .execute(&mut su)
        .await
        .unwrap();
    }
    sqlx::query(
        "alter table disclosure add constraint disclosure_no_new_plaintext
            check (recipient is null and description is null and purpose is null) not valid",
    )
    .execute(&mut su)
    .await
    .unwrap();
    sqlx::query("analyze disclosure")
        .execute(&mut su)
        .await
        .unwrap();
    assert!(
        stats_text(&mut su, "disclosure").await.contains(RECIPIENT),
        "the planner sampled the legacy plaintext (the test would prove nothing otherwise)"
    );
    let (s, v) = f.accounting(&f.app, &f.rec_a, false).await;
    assert_eq!(
        (s, v["disclosures"][0]["recipient"].as_str()),
        (StatusCode::OK, Some(RECIPIENT))
    );

    let owner = f.db.owner().await;
    let pass = owner.encrypt_existing(2, &mut |_, _| {}).await.unwrap();
    assert!(pass.is_complete());
    let r = store::keys::ResealReport::total(pass.done.iter().map(|(_, r)| r));
    assert_eq!((r.patients, r.notes, r.disclosures), (0, 0, 3));
    let rows = rows_text(&mut su, "disclosure").await;
    let stats = stats_text(&mut su, "disclosure").await;
    for c in [RECIPIENT, DESCRIPTION, PURPOSE] {
        assert!(!rows.contains(c), "a disclosure row still holds {c}");
        assert!(!stats.contains(c), "pg_stats still holds {c}");
    }
    let (s, v) = f.accounting(&f.app, &f.rec_a, false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_shows_the_canaries(&v, 3);
    let again = owner.encrypt_existing(2, &mut |_, _| {}).await.unwrap();
    let again = store::keys::ResealReport::total(again.done.iter().map(|(_, r)| r));
    assert_eq!(again.disclosures, 0, "idempotent");
}

// issue 14.3, req ENC-02 — a data-key rotation re-encrypts every sealed column of the practice,
// found from the catalog (any `*_enc` column of a tenant table), disclosures and the reasons of
// break-glass and support grants included, so the old key can be retired and everything still
// reads; crypto-shredding then makes the practice's disclosures unreadable, and only its own.
#[tokio::test]
async fn rotation_reencrypts_disclosures_and_shredding_makes_them_unreadable() {
    let f = fx().await;
    for i in 0..3 {
        f.disclose(false, RECIPIENT, &format!("{DESCRIPTION} {i}"), PURPOSE)
            .await;
    }
    f.disclose(true, "Practice B recipient", "B description", "B purpose")
        .await;
    let owner = f.db.owner().await;
    let now = Utc::now();
    owner
        .seed_break_glass(
            f.w.a.id,
            f.w.a.user("clinician"),
            f.w.a.patient,
            "Canary emergency reason",
            now,
        )
        .await
        .unwrap();
    let support = owner
        .create_support_user(
            "support@vendor.example.invalid",
            "Vendor Support",
            testkit::password_hash(),
            now,
        )
        .await
        .unwrap();
    owner
        .seed_support_grant(f.w.a.id, support, f.w.a.user("owner"), "scheduling", now)
        .await
        .unwrap();

    let (v, r) = owner
        .rotate_data_key_audited(f.w.a.id, false, 2, None, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(v.get(), 2);
    assert_eq!((r.disclosures, r.grant_reasons), (3, 2), "{r:?}");

    // Every ciphertext of practice A, in every sealed column the catalog knows, names key
    // version 2.
    let mut su = f.db.superuser_unsafe().await;
    let sealed: Vec<(String, String)> = sqlx::query_as(
        "select c.table_name::text, c.column_name::text from information_schema.columns c
          where c.table_schema = 'public' and c.data_type = 'bytea' and c.column_name like '%\\_enc'
            and exists (select 1 from information_schema.columns p
                         where p.table_schema = 'public' and p.table_name = c.table_name
                           and p.column_name = 'practice_id')
          order by 1, 2",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(sealed.contains(&("disclosure".into(), "recipient_enc".into())));
    assert!(sealed.contains(&("break_glass".into(), "reason_enc".into())));
    for (table, column) in &sealed {
        let (total, stale): (i64, i64) = sqlx::query_as(&format!(
            "select count({column}), count(*) filter (where substring({column} from 2 for 4) <> '\\x00000002'::bytea)
               from {table} where practice_id = $1"
        ))
        .bind(f.w.a.id)
        .fetch_one(&mut su)
        .await
        .unwrap();
        assert_eq!(
            stale, 0,
            "{table}.{column}: {stale} of {total} still under version 1"
        );
    }
    let retired = owner.retire_data_keys_audited(f.w.a.id).await.unwrap();
    assert_eq!(retired.iter().map(|v| v.get()).collect::<Vec<_>>(), vec![1]);

    // A fresh server (no cached keys) reads everything with version 2 alone.
    let app2 = TestApp::start(&f.db).await;
    let rec = app2.token(f.w.a.user("reception")).await;
    let (s, v) = f.accounting(&app2, &rec, false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["disclosures"].as_array().unwrap().len(), 3);
    assert_eq!(
        v["disclosures"][2]["description"],
        format!("{DESCRIPTION} 2")
    );
    let own = app2.token(f.w.a.user("owner")).await;
    for (path, want) in [
        ("break-glass", "Canary emergency reason"),
        ("support-grants", "Fixture support request"),
    ] {
        let (s, v) = call(
            &app2,
            Method::GET,
            &format!("/api/v1/practices/{}/{path}", f.w.a.id),
            Some(&own),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        assert!(v.to_string().contains(want), "{path}: {v}");
    }

    // Crypto-shredding: practice A's disclosures can no longer be read (and the error shows
    // nothing of them); practice B's still can.
    owner.shred_practice_audited(f.w.a.id).await.unwrap();
    let app3 = TestApp::start(&f.db).await;
    let rec = app3.token(f.w.a.user("reception")).await;
    let (s, v) = f.accounting(&app3, &rec, false).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(!v.to_string().contains("Zqxcanary"), "{v}");
    let rec_b = app3.token(f.w.b.user("reception")).await;
    let (s, v) = f.accounting(&app3, &rec_b, true).await;
    assert_eq!(
        (s, v["disclosures"][0]["recipient"].as_str()),
        (StatusCode::OK, Some("Practice B recipient"))
    );
    let keyring = f.db.keyring(store::embedded::DbRole::Owner).await;
    let ct: Vec<u8> =
        sqlx::query_scalar("select recipient_enc from disclosure where practice_id = $1 limit 1")
            .bind(f.w.a.id)
            .fetch_one(&mut su)
            .await
            .unwrap();
    let id: uuid::Uuid = sqlx::query_scalar(
        "select disclosure_id from disclosure where practice_id = $1 and recipient_enc = $2",
    )
    .bind(f.w.a.id)
    .bind(&ct)
    .fetch_one(&mut su)
    .await
    .unwrap();
    let err = keyring
        .decrypt_field(
            &store::crypto::FieldContext::new(f.w.a.id, "disclosure", "recipient", id.as_bytes()),
            &ct,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "CRYPTO-0005", "{err}");
}

/// Every text, varchar, char, json, jsonb or xml column (or array of them, domains resolved)
/// of every tenant table: a table in `public` with a `practice_id` column.
async fn text_columns_of_tenant_tables(su: &mut PgConnection) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "select c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod)
           from pg_class c
           join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
           join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
           join pg_type t0 on t0.oid = a.atttypid
           join pg_type t on t.oid = case when t0.typtype = 'd' then t0.typbasetype else t0.oid end
           left join pg_type e on t.typcategory = 'A' and e.oid = t.typelem
          where c.relkind in ('r', 'p')
            and exists (select 1 from pg_attribute p
                         where p.attrelid = c.oid and p.attname = 'practice_id' and not p.attisdropped)
            and (coalesce(e.typcategory, t.typcategory) = 'S'
                 or coalesce(e.typname, t.typname) in ('json', 'jsonb', 'xml'))
          order by 1, 2",
    )
    .fetch_all(su)
    .await
    .unwrap()
}

// issue 14.3, req ENC-01 — the schema sweep: every text-like column of every tenant table is
// either a sealed (bytea) column, so not text at all, or on the one reasoned allow-list
// (`store::sealed_columns::PLAINTEXT_COLUMNS`); a legacy plaintext column on it has its
// ciphertext column beside it; and the list names nothing that is not there.
#[tokio::test]
async fn every_text_column_of_a_tenant_table_is_sealed_or_on_the_allow_list() {
    let db = TestDb::new().await;
    let mut su = db.superuser_unsafe().await;
    let found = text_columns_of_tenant_tables(&mut su).await;
    assert!(
        found.iter().any(|(t, c, _)| t == "practice" && c == "name"),
        "the sweep sees text columns: {found:?}"
    );
    let unlisted: Vec<String> = found
        .iter()
        .filter(|(t, c, _)| plaintext_allowed(t, c).is_none())
        .map(|(t, c, ty)| format!("{t}.{c} ({ty})"))
        .collect();
    assert!(
        unlisted.is_empty(),
        "text columns of tenant tables that are neither sealed nor on store::sealed_columns::PLAINTEXT_COLUMNS: {unlisted:?}"
    );
    for entry in PLAINTEXT_COLUMNS {
        assert!(
            found
                .iter()
                .any(|(t, c, _)| t == entry.table && c == entry.column),
            "{}.{} is on the allow-list but is not a text column of a tenant table",
            entry.table,
            entry.column
        );
        assert!(entry.reason.len() > 10, "{entry:?} needs a reason");
        assert_eq!(
            PLAINTEXT_COLUMNS
                .iter()
                .filter(|e| e.table == entry.table && e.column == entry.column)
                .count(),
            1,
            "{entry:?} is listed twice"
        );
        if let Some(enc) = entry.sealed_in {
            let ty: Option<String> = sqlx::query_scalar(
                "select data_type::text from information_schema.columns
                  where table_schema = 'public' and table_name = $1 and column_name = $2",
            )
            .bind(entry.table)
            .bind(enc)
            .fetch_optional(&mut su)
            .await
            .unwrap();
            assert_eq!(
                ty.as_deref(),
                Some("bytea"),
                "{}.{} is legacy plaintext: its sealed column {enc} must exist",
                entry.table,
                entry.column
            );
        }
    }
}
