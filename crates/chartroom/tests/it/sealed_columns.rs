//! Issue 14.3: disclosure details are sealed at rest like every other PHI column (raw rows,
//! the table file, the WAL and `pg_statistic` hold no plaintext; the API reads it back), old
//! plaintext rows are sealed by `encrypt-existing`, data-key rotation re-encrypts every sealed
//! column (disclosures, break-glass and support-grant reasons included) and crypto-shredding
//! makes them unreadable; and a sweep of the catalog: every text-like column of a tenant table
//! is sealed or on the one reasoned allow-list (`store::sealed_columns`).
//!
//! Issue 15.3: the sealed-table registry (`store::sealed_columns::TABLES`) and the schema agree
//! (sealed columns both ways, row ids, legacy columns), and its purge order follows the foreign
//! keys.

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

    /// A break-glass grant (reason "Canary emergency reason") on practice A's patient and a
    /// support grant (the fixture's reason) in practice A, seeded as the owner role.
    async fn seed_grant_reasons(&self, owner: &store::OwnerStore) {
        let now = Utc::now();
        owner
            .seed_break_glass(
                self.w.a.id,
                self.w.a.user("clinician"),
                self.w.a.patient,
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
            .seed_support_grant(
                self.w.a.id,
                support,
                self.w.a.user("owner"),
                "scheduling",
                now,
            )
            .await
            .unwrap();
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
    f.seed_grant_reasons(&owner).await;

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
    let keyring = f.db.keyring(pgcluster::DbRole::Owner).await;
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

/// The columns of tenant tables (`public`, with a `practice_id` column) whose name ends in
/// `_enc`, or that the registry names (its sealed, legacy and row-id columns), with their
/// types: `(table, column, type)`.
async fn registry_relevant_columns(su: &mut PgConnection) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "select c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod)
           from pg_class c
           join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
           join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
          where c.relkind in ('r', 'p')
            and exists (select 1 from pg_attribute p
                         where p.attrelid = c.oid and p.attname = 'practice_id' and not p.attisdropped)
          order by 1, 2",
    )
    .fetch_all(su)
    .await
    .unwrap()
}

/// Every disagreement between the database and the sealed-table registry
/// (`store::sealed_columns::TABLES`), one line each.
async fn registry_mismatches(su: &mut PgConnection) -> Vec<String> {
    use store::sealed_columns::{Plain, TABLES, sealed_column};
    let found = registry_relevant_columns(su).await;
    let type_of = |table: &str, column: &str| {
        found
            .iter()
            .find(|(t, c, _)| t == table && c == column)
            .map(|(_, _, ty)| ty.as_str())
    };
    let mut out = Vec::new();
    for (t, c, ty) in &found {
        if c.ends_with("_enc") && sealed_column(t, c).is_none() {
            out.push(format!("{t}.{c} ({ty}) is not in the registry"));
        }
    }
    for t in TABLES {
        if !found.iter().any(|(table, _, _)| table == t.table) {
            out.push(format!(
                "{} is registered but is not a tenant table",
                t.table
            ));
            continue;
        }
        let mut want = vec![(t.row.id, "uuid")];
        want.extend(t.row.version.map(|v| (v, "integer")));
        for c in t.columns {
            want.push((c.enc, "bytea"));
            match c.legacy {
                Some(Plain::Text) => want.push((c.name, "text")),
                Some(Plain::Date) => want.push((c.name, "date")),
                None => {}
            }
        }
        for (column, ty) in want {
            match type_of(t.table, column) {
                Some(got) if got == ty => {}
                got => out.push(format!(
                    "the registry names {}.{column} ({ty}); the database has {got:?}",
                    t.table
                )),
            }
        }
    }
    out
}

// issue 15.3, req ENC-01 — the sealed-table registry and the schema agree: every `*_enc`
// column of a tenant table is registered, every registered sealed column, legacy plaintext
// column and row-id column is in the database with its type; and the check notices a column
// added behind the registry's back and one it names that is gone.
#[tokio::test]
async fn every_sealed_column_is_registered_and_every_registered_column_exists() {
    let db = TestDb::new().await;
    let mut su = db.superuser_unsafe().await;
    assert_eq!(registry_mismatches(&mut su).await, Vec::<String>::new());

    sqlx::query("alter table visit add column summary_enc bytea")
        .execute(&mut su)
        .await
        .unwrap();
    sqlx::query("alter table break_glass drop column reason_enc")
        .execute(&mut su)
        .await
        .unwrap();
    assert_eq!(
        registry_mismatches(&mut su).await,
        vec![
            "visit.summary_enc (bytea) is not in the registry".to_owned(),
            "the registry names break_glass.reason_enc (bytea); the database has None".to_owned(),
        ]
    );
}

/// Foreign keys between tables of `public`: `(referencing, referenced, cascades)`.
async fn foreign_keys(su: &mut PgConnection) -> Vec<(String, String, bool)> {
    sqlx::query_as(
        "select child.relname::text, parent.relname::text, k.confdeltype = 'c'
           from pg_constraint k
           join pg_class child on child.oid = k.conrelid
           join pg_class parent on parent.oid = k.confrelid
          where k.contype = 'f' and k.connamespace = 'public'::regnamespace
          order by 1, 2",
    )
    .fetch_all(su)
    .await
    .unwrap()
}

/// Every way the registry's purge rules disagree with the foreign keys, one line each: a
/// purged table after a purged table it refers to, or a table referring to a purged table
/// that is neither registered (so purged with it, or kept for a stated reason) nor deleted by
/// cascade.
async fn purge_mismatches(su: &mut PgConnection) -> Vec<String> {
    use store::sealed_columns::{Purge, TABLES};
    let position = |table: &str| TABLES.iter().position(|t| t.table == table);
    let purged = |table: &str| {
        TABLES
            .iter()
            .any(|t| t.table == table && !matches!(t.purge, Purge::Never(_)))
    };
    let mut out = Vec::new();
    for (child, parent, cascades) in foreign_keys(su).await {
        if child == parent || !purged(&parent) {
            continue;
        }
        match (position(&child), position(&parent)) {
            (Some(c), Some(p)) if purged(&child) && c > p => {
                out.push(format!("{child} refers to {parent} but is purged after it"));
            }
            (None, _) if !cascades => {
                out.push(format!(
                    "{child} refers to {parent}, which the retention job purges, but is not in the registry"
                ));
            }
            _ => {}
        }
    }
    out
}

// issue 15.3, req INT-02 — the registry's purge order follows the foreign keys (a table is
// purged before every table it refers to), and every table that refers to a purged table is
// registered (purged with it, or kept for a stated reason) or deleted by cascade; a new
// patient-owned table outside the registry is noticed.
#[tokio::test]
async fn the_registry_purges_every_patient_table_in_foreign_key_order() {
    let db = TestDb::new().await;
    let mut su = db.superuser_unsafe().await;
    assert!(
        foreign_keys(&mut su)
            .await
            .iter()
            .any(|(c, p, _)| c == "clinical_note_version" && p == "clinical_note"),
        "the sweep sees the foreign keys"
    );
    assert_eq!(purge_mismatches(&mut su).await, Vec::<String>::new());

    sqlx::query(
        "create table attachment (
             practice_id uuid not null, attachment_id uuid not null, patient_id uuid not null,
             primary key (practice_id, attachment_id),
             foreign key (practice_id, patient_id) references patient (practice_id, patient_id))",
    )
    .execute(&mut su)
    .await
    .unwrap();
    assert_eq!(
        purge_mismatches(&mut su).await,
        vec![
            "attachment refers to patient, which the retention job purges, but is not in the registry"
                .to_owned()
        ]
    );
}

/// `(rows, legacy plaintext left, ciphertexts not under data-key version `version`)` of
/// practice `p` in each registered table with sealed columns, from the registry alone.
async fn registry_census(
    su: &mut PgConnection,
    p: domain::PracticeId,
    version: u32,
) -> Vec<(&'static str, i64, i64, i64)> {
    let header = version.to_be_bytes().to_vec();
    let mut out = Vec::new();
    for t in store::sealed_columns::TABLES
        .iter()
        .filter(|t| !t.columns.is_empty())
    {
        let legacy: Vec<String> = t
            .columns
            .iter()
            .filter(|c| c.legacy.is_some())
            .map(|c| format!("{} is not null", c.name))
            .chain(std::iter::once("false".to_owned()))
            .collect();
        let stale: Vec<String> = t
            .columns
            .iter()
            .map(|c| format!("substring({} from 2 for 4) <> $2", c.enc))
            .collect();
        let (rows, plain, old): (i64, i64, i64) = sqlx::query_as(&format!(
            "select count(*), count(*) filter (where {}), count(*) filter (where {})
               from {} where practice_id = $1",
            legacy.join(" or "),
            stale.join(" or "),
            t.table
        ))
        .bind(p)
        .bind(&header)
        .fetch_one(&mut *su)
        .await
        .unwrap();
        out.push((t.table, rows, plain, old));
    }
    out
}

/// A transaction of `user` (a member) in `practice` on `store`, through a fresh session.
pub(crate) async fn as_member(
    app: &TestApp,
    store: &store::Store,
    user: domain::UserId,
    practice: domain::PracticeId,
) -> store::TenantTx {
    let token = app.token(user).await;
    let store::Entry::Member(tx, _) = store
        .enter_practice(
            &store::TokenHash::from_presented(&token).unwrap(),
            practice,
            Utc::now(),
            &store::SessionPolicy::default(),
            domain::RequestId::new(),
            store::Access::Write,
        )
        .await
        .unwrap()
    else {
        panic!("{user:?} is a member of {practice:?}")
    };
    tx
}

// issue 15.3, req ENC-02 — with a row in every registered sealed table (a legacy plaintext
// note body among them, then signed and amended so note versions carry a reason), the
// start-up job seals every legacy column and a data-key rotation leaves no ciphertext of the
// practice under the old version, table by table from the registry; the note hashes still
// verify and the old key retires.
#[tokio::test]
async fn rotation_and_encrypt_existing_walk_every_registered_table() {
    let f = fx().await;
    let mut su = f.db.superuser_unsafe().await;
    let (a, clinician) = (f.w.a.id, f.w.a.user("clinician"));
    let note = uuid::Uuid::new_v4();
    sqlx::query(
        "insert into clinical_note (practice_id, note_id, patient_id, author_id, body, created_at)
         values ($1, $2, $3, $4, 'Canary legacy note body', now())",
    )
    .bind(a)
    .bind(note)
    .bind(f.w.a.patient)
    .bind(clinician)
    .execute(&mut su)
    .await
    .unwrap();
    let owner = f.db.owner().await;
    let now = Utc::now();
    owner
        .seed_note(a, f.w.a.patient, clinician, "Seeded sealed body", now)
        .await
        .unwrap();
    owner
        .seed_perio_exam(
            a,
            f.w.a.patient,
            clinician,
            perio::Settings::default(),
            &["three fourteen four"],
            now,
        )
        .await
        .unwrap();
    f.seed_grant_reasons(&owner).await;
    f.disclose(false, RECIPIENT, DESCRIPTION, PURPOSE).await;

    // The start-up job seals the legacy body (and nothing else has plaintext).
    let pass = owner.encrypt_existing(1, &mut |_, _| {}).await.unwrap();
    assert!(pass.is_complete());
    let r = store::keys::ResealReport::total(pass.done.iter().map(|(_, r)| r));
    assert_eq!((r.patients, r.notes, r.disclosures), (0, 1, 0), "{r:?}");
    for (table, _, plain, old) in registry_census(&mut su, a, 1).await {
        assert_eq!((table, plain, old), (table, 0, 0), "after encrypt-existing");
    }

    // The clinician signs the (formerly legacy) note and amends it: two versions, one with a
    // reason.
    let store = f.db.store().await;
    let mut tx = as_member(&f.app, &store, clinician, a).await;
    let keyring = store.keyring().unwrap().clone();
    let id = domain::NoteId::from_uuid(note);
    let signed = store::notes::sign(&mut tx, &keyring, id, Some(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(signed.content.subjective, "Canary legacy note body");
    let content = domain::notes::NoteContent {
        subjective: "Canary amended body".to_owned(),
        ..domain::notes::NoteContent::default()
    };
    store::notes::amend(
        &mut tx,
        &keyring,
        id,
        Some(1),
        &store::notes::AmendmentInput {
            content: &content,
            reason: "Canary amendment reason",
            ai_assisted: false,
            assistant_turn_id: None,
        },
    )
    .await
    .unwrap()
    .unwrap();
    tx.audit(
        domain::AuditAction::NoteAmend,
        Some(f.w.a.patient),
        Some(domain::AuditObject::note(domain::NoteId::from_uuid(note))),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // An AI provider with a sealed API key.
    let mut tx = as_member(&f.app, &store, f.w.a.user("owner"), a).await;
    store::providers::register(
        &mut tx,
        &keyring,
        &store::providers::NewProvider {
            label: "Canary provider".into(),
            adapter: "openai_chat".into(),
            base_url: "http://127.0.0.1:9".into(),
            model: "standin".into(),
            hosting: "self_hosted".into(),
            vendor: "Operator".into(),
            baa_document_ref: None,
            training_disabled: false,
            retention: String::new(),
            region: String::new(),
            api_key: Some(zeroize::Zeroizing::new("sk-canary-key".into())),
            enabled: true,
        },
    )
    .await
    .unwrap();
    tx.audit(domain::AuditAction::AiProviderRegister, None, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // A security incident with every sealed note (description, response, outcome, the four
    // factors).
    let mut tx = as_member(&f.app, &store, f.w.a.user("owner"), a).await;
    let incident = store::incidents::create(
        &mut tx,
        &keyring,
        &store::incidents::NewIncident {
            discovered_at: now,
            detection_source: "other".into(),
            description: "Canary incident description".into(),
            terms: domain::incident::Terms {
                baa_notice_hours: 24,
                gdpr: false,
            },
        },
    )
    .await
    .unwrap();
    store::incidents::update(
        &mut tx,
        &keyring,
        incident,
        Some(domain::incident::Status::Assessing),
        Some("Canary response"),
        Some("Canary outcome"),
    )
    .await
    .unwrap()
    .unwrap();
    store::incidents::assess(
        &mut tx,
        &keyring,
        incident,
        &domain::incident::Assessment {
            nature: "Canary nature".into(),
            person: "Canary person".into(),
            acquired: "Canary acquired".into(),
            mitigation: "Canary mitigation".into(),
            low_probability: true,
        },
    )
    .await
    .unwrap()
    .unwrap();
    tx.audit(domain::AuditAction::IncidentCreate, None, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // A queued message with a sealed recipient and slots (issue 19.2).
    let mut tx = as_member(&f.app, &store, f.w.a.user("reception"), a).await;
    assert!(
        store::outbox::enqueue(
            &mut tx,
            &keyring,
            &store::outbox::NewMessage {
                patient: Some(f.w.a.patient),
                template: "booking_confirmed",
                channel: store::outbox::Channel::Sms,
                cause: store::outbox::Cause::OnlineBooking,
                cause_id: uuid::Uuid::new_v4(),
                recipient: store::outbox::Recipient("+15550100123".into()),
                slots: store::outbox::Slots::default(),
                time_zone: None,
                not_before: None,
            },
        )
        .await
        .unwrap()
    );
    tx.commit().await.unwrap();
    seed_scribe(&f.app, &owner, &store, &mut su, clinician, a, f.w.a.patient).await;
    crate::intake::seed_intake(&f.app, &f.w).await;
    // A right-of-access request with every sealed column: a third-party recipient, an
    // extension's reason and a denial's reason (req PR-01).
    {
        let keyring = store.keyring().unwrap().clone();
        let mut tx = as_member(&f.app, &store, f.w.a.user("admin"), a).await;
        let id = store::rights::create(
            &mut tx,
            &keyring,
            &store::rights::NewAccessRequest {
                patient_id: f.w.a.patient,
                received_at: Utc::now(),
                form: "html".into(),
                recipient: Some("Canary recipient".into()),
            },
        )
        .await
        .unwrap()
        .unwrap();
        store::rights::extend(&mut tx, &keyring, id, "Canary extension")
            .await
            .unwrap()
            .unwrap();
        store::rights::deny(&mut tx, &keyring, id, "Canary denial")
            .await
            .unwrap()
            .unwrap();
        tx.audit(domain::AuditAction::AccessRequestDeny, None, None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    // An amendment request with every sealed column: the change asked for, an extension's
    // and a denial's reasons, the statement of disagreement and the rebuttal (req SIG-07).
    {
        let keyring = store.keyring().unwrap().clone();
        let mut tx = as_member(&f.app, &store, f.w.a.user("admin"), a).await;
        let s = store::amendments::create(
            &mut tx,
            &keyring,
            &store::amendments::NewAmendmentRequest {
                patient_id: f.w.a.patient,
                received_at: Utc::now(),
                record_kind: "other".into(),
                note: None,
                requested_change: "Canary change".into(),
            },
        )
        .await
        .unwrap()
        .unwrap();
        let id = s.request_id;
        store::amendments::extend(&mut tx, &keyring, id, "Canary extension")
            .await
            .unwrap()
            .unwrap();
        store::amendments::deny(&mut tx, &keyring, id, "Canary denial")
            .await
            .unwrap()
            .unwrap();
        store::amendments::add_disagreement(&mut tx, &keyring, id, "Canary disagreement")
            .await
            .unwrap()
            .unwrap();
        store::amendments::add_rebuttal(&mut tx, &keyring, id, "Canary rebuttal")
            .await
            .unwrap()
            .unwrap();
        tx.audit(domain::AuditAction::AmendmentRequestRebuttal, None, None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    // A Web Push subscription: its endpoint and keys sealed (issue 19.3).
    let mut tx = as_member(&f.app, &store, f.w.a.user("reception"), a).await;
    let sub = store::push::check(
        "https://fcm.googleapis.com/fcm/send/canary-endpoint",
        &[4u8; 65],
        &[7u8; 16],
    )
    .unwrap();
    store::push::subscribe(&mut tx, &keyring, &sub)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let (v, r) = owner
        .rotate_data_key_audited(a, false, 1, None, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(v.get(), 2);
    assert!(
        r.scribe >= 6,
        "turn, segment, two revisions, draft, sentence: {r:?}"
    );
    assert!(
        r.patients >= 1 && r.notes >= 3 && r.perio_exams == 1 && r.disclosures == 1,
        "{r:?}"
    );
    assert_eq!(r.grant_reasons, 2, "{r:?}");
    assert_eq!(r.incidents, 1, "{r:?}");
    for (table, rows, plain, old) in registry_census(&mut su, a, 2).await {
        assert!(
            rows > 0,
            "{table}: the test needs a row in every sealed table"
        );
        assert_eq!((table, plain, old), (table, 0, 0), "after the rotation");
    }
    let reasons: i64 = sqlx::query_scalar(
        "select count(reason_enc) from clinical_note_version where practice_id = $1",
    )
    .bind(a)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(
        reasons, 1,
        "the amendment's reason was re-encrypted, not dropped"
    );
    let verified = owner.verify_notes(a).await.unwrap();
    assert_eq!(
        (verified.versions, verified.mismatched.len()),
        (2, 0),
        "{verified:?}"
    );
    let retired = owner.retire_data_keys_audited(a).await.unwrap();
    assert_eq!(retired.iter().map(|v| v.get()).collect::<Vec<_>>(), vec![1]);
    // A fresh keyring (version 2 alone) reads the note, its amendment and its reason.
    let store2 = f.db.store().await;
    let mut tx = as_member(&f.app, &store2, clinician, a).await;
    let n = store::notes::get(&mut tx, store2.keyring().unwrap(), id)
        .await
        .unwrap()
        .unwrap();
    tx.audit(
        domain::AuditAction::NoteRead,
        Some(f.w.a.patient),
        Some(domain::AuditObject::note(domain::NoteId::from_uuid(note))),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(n.content.subjective, "Canary amended body");
    assert_eq!(n.amendments[0].reason, "Canary amendment reason");
}

/// A row in each of the scribe's sealed tables of practice `a`: a transcribed chunk (its turn
/// and segment, through the transcription job's store calls), a correction (a second
/// revision) and a draft with one sentence. The consent, capture and chunk rows are fixtures.
#[allow(clippy::too_many_arguments, reason = "a fixture")]
async fn seed_scribe(
    app: &TestApp,
    owner: &store::OwnerStore,
    store: &store::Store,
    su: &mut PgConnection,
    clinician: domain::UserId,
    a: domain::PracticeId,
    patient: domain::PatientId,
) {
    let keyring = store.keyring().unwrap().clone();
    let mut tx = as_member(app, store, clinician, a).await;
    let visit = store::notes::create_visit(&mut tx, patient, clinician, None, Utc::now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (consent, capture) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    sqlx::query(
        "insert into recording_consent (practice_id, consent_id, visit_id, patient_id,
            consented_by, method, consent_rule, recorded_by, recorded_at)
         values ($1, $2, $3, $4, 'patient', 'verbal', 'all_party', $5, now())",
    )
    .bind(a)
    .bind(consent)
    .bind(visit.visit_id)
    .bind(patient)
    .bind(clinician)
    .execute(&mut *su)
    .await
    .unwrap();
    sqlx::query(
        "insert into capture (practice_id, capture_id, visit_id, patient_id, consent_id,
            clinician_id, state, stop_reason, started_at, stopped_at, max_seconds)
         values ($1, $2, $3, $4, $5, $6, 'stopped', 'clinician', now(), now(), 7200)",
    )
    .bind(a)
    .bind(capture)
    .bind(visit.visit_id)
    .bind(patient)
    .bind(consent)
    .bind(clinician)
    .execute(&mut *su)
    .await
    .unwrap();
    sqlx::query(
        "insert into capture_chunk (practice_id, capture_id, patient_id, seq, sha256, bytes,
            duration_ms, offset_ms, received_at)
         values ($1, $2, $3, 0, sha256('x'), 1, 1000, 0, now())",
    )
    .bind(a)
    .bind(capture)
    .bind(patient)
    .execute(&mut *su)
    .await
    .unwrap();
    let mut work = owner.claim_chunk(a, Utc::now()).await.unwrap().unwrap();
    let turn = work
        .record_turn(
            owner.keyring().unwrap(),
            &store::turns::NewTurn {
                patient,
                visit: Some(visit.visit_id),
                capture: Some(domain::CaptureId::from_uuid(capture)),
                provider: None,
                provider_label: "local",
                model: "whisper-base",
                purpose: store::turns::Purpose::Transcription,
                prompt: Some(b"Canary prompt"),
                output: Some(b"Canary output"),
                input_tokens: None,
                output_tokens: None,
                latency_ms: 1,
                outcome: store::turns::TurnOutcome::Ok,
            },
        )
        .await
        .unwrap();
    work.store_segments(
        owner.keyring().unwrap(),
        turn,
        &[store::transcripts::NewSegment {
            start_ms: 0,
            end_ms: 900,
            speaker: None,
            text: "Canary transcript segment",
        }],
    )
    .await
    .unwrap();
    work.finish(store::transcripts::ChunkState::Done)
        .await
        .unwrap();
    let seg: uuid::Uuid =
        sqlx::query_scalar("select segment_id from transcript_segment where practice_id = $1")
            .bind(a)
            .fetch_one(&mut *su)
            .await
            .unwrap();
    let seg = domain::SegmentId::from_uuid(seg);
    let mut tx = as_member(app, store, clinician, a).await;
    store::transcripts::correct(&mut tx, &keyring, seg, Some(0), "Canary corrected segment")
        .await
        .unwrap()
        .unwrap();
    let draft_content = domain::notes::NoteContent {
        subjective: "Canary draft sentence.".to_owned(),
        ..domain::notes::NoteContent::default()
    };
    store::drafts::create(
        &mut tx,
        &keyring,
        &store::drafts::NewDraft {
            visit: visit.visit_id,
            patient,
            capture: Some(domain::CaptureId::from_uuid(capture)),
            turn: None,
            template: domain::notes::Template::Free,
            content: &draft_content,
            sentences: &[store::drafts::NewSentence {
                section: "subjective",
                text: "Canary draft sentence.".to_owned(),
                evidence: vec![seg],
                flags: vec![],
            }],
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}
