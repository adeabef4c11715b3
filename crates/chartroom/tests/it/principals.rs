//! Principal ids: unique and never reused (deactivate, recreate the same email → a new id; the
//! old id is never deleted, changed or brought back), and no built-in account on a fresh
//! install.

use std::path::Path;

use chrono::Utc;
use sqlx::{Connection as _, PgConnection};
use testkit::{TestDb, password_hash};

use crate::util::{count_all, db_code};

async fn owner_conn(db: &TestDb) -> PgConnection {
    PgConnection::connect_with(&db.owner_options().await)
        .await
        .unwrap()
}

async fn status_of(conn: &mut PgConnection, user: domain::UserId) -> (String, String) {
    sqlx::query_as("select email, status from app_user where user_id = $1")
        .bind(user)
        .fetch_one(conn)
        .await
        .unwrap()
}

// req: AC-01 — deactivate, recreate the same email → a new id; the old id stays, deactivated,
// and no statement of the owner role can delete it, change it, reactivate it or insert it again.
#[tokio::test]
async fn a_deactivated_principal_id_is_never_reused() {
    let db = TestDb::new().await;
    let owner = db.owner().await;
    let now = Utc::now();
    let email = format!("ada.{}@test.example.invalid", uuid::Uuid::new_v4().simple());
    let first = owner
        .create_user(&email, "Ada Example", password_hash(), now)
        .await
        .unwrap();
    // One active account per email: a second one is refused while the first is active.
    let dup = owner
        .create_user(&email, "Ada Again", password_hash(), now)
        .await
        .unwrap_err();
    assert!(
        format!("{dup:?}").contains("app_user_active_email_key"),
        "{dup:?}"
    );

    assert!(owner.deactivate_user(first, now).await.unwrap());
    assert!(!owner.deactivate_user(first, now).await.unwrap(), "once");
    let second = owner
        .create_user(&email, "Ada Example", password_hash(), now)
        .await
        .unwrap();
    assert_ne!(first, second, "the same email gets a new id");
    assert_eq!(owner.find_user(&email).await.unwrap(), Some(second));

    let mut conn = owner_conn(&db).await;
    assert_eq!(
        status_of(&mut conn, first).await,
        (email.clone(), "deactivated".to_owned()),
        "the old id keeps its row"
    );
    assert_eq!(status_of(&mut conn, second).await.1, "active");

    // Every way to hand the old id to someone else is refused, by the database.
    let attempts: [(&str, &str); 4] = [
        ("delete from app_user where user_id = $1", "23001"),
        (
            "update app_user set user_id = gen_random_uuid() where user_id = $1",
            "23001",
        ),
        (
            "update app_user set status = 'active', email = 'other@test.example.invalid' where user_id = $1",
            "23001",
        ),
        (
            "insert into app_user (user_id, email, display_name) values ($1, 'new@test.example.invalid', 'Someone Else')",
            "23505",
        ),
    ];
    for (sql, code) in attempts {
        let e = sqlx::query(sql)
            .bind(first)
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert_eq!(db_code(&e), code, "{sql}: {e}");
    }
    let e = sqlx::query("truncate app_user cascade")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(db_code(&e), "23001", "truncate: {e}");
    // Deactivating the new account is final too, and ends with a third id.
    assert!(owner.deactivate_user(second, now).await.unwrap());
    let e = sqlx::query("update app_user set status = 'active' where user_id = $1")
        .bind(second)
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(db_code(&e), "23001", "{e}");
    let third = owner
        .create_user(&email, "Ada Example", password_hash(), now)
        .await
        .unwrap();
    assert!(third != first && third != second);
    let ids: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "select user_id, status from app_user where email = $1 order by created_at, status",
    )
    .bind(&email)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(
        ids.iter().filter(|(_, s)| s == "active").count(),
        1,
        "{ids:?}"
    );
    // Display names may still change (the row is the same principal).
    sqlx::query("update app_user set display_name = 'Ada E.' where user_id = $1")
        .bind(first)
        .execute(&mut conn)
        .await
        .unwrap();
    owner.close().await;
}

// req: AC-01 — no default or shared accounts: a freshly migrated installation has no account,
// membership, password or session at all, no migration creates one, the runtime role cannot
// create one, and the only seeding in the binary is `chartroom demo`'s (its own practices,
// marked demo, a random password per account).
#[tokio::test]
async fn a_fresh_install_has_no_default_accounts() {
    let db = TestDb::new().await;
    let mut su = db.superuser_unsafe().await;
    for table in [
        "app_user",
        "user_password",
        "membership",
        "session",
        "user_totp",
        "user_passkey",
        "user_recovery_code",
    ] {
        assert_eq!(
            count_all(&mut su, table).await,
            0,
            "{table} on a fresh install"
        );
    }
    // No migration inserts an account (or a password, membership or session) of its own.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut files = Vec::new();
    crate::util::source_files(&dir, &["sql"], &mut files);
    assert!(files.len() > 30, "the migrations are where they should be");
    for f in &files {
        let sql = std::fs::read_to_string(f).unwrap().to_lowercase();
        let sql: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        // (Memberships are created only by the invitation-accepting function, for its caller.)
        for table in ["app_user", "user_password", "session", "user_totp"] {
            assert!(
                !sql.contains(&format!("insert into {table} "))
                    && !sql.contains(&format!("insert into public.{table} ")),
                "{} seeds {table}",
                f.display()
            );
        }
        assert!(
            !sql.contains(" login password") && !sql.contains("with password"),
            "{} creates a role with a password",
            f.display()
        );
    }
    // The only account seeding in the binary is the demo's, and its passwords are random.
    let demo =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/demo.rs")).unwrap();
    assert!(demo.contains("let password = random_password();"));
    assert!(demo.contains("owner.mark_demo(practice)"));
    let mut sources = Vec::new();
    crate::util::source_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &["rs"],
        &mut sources,
    );
    let creators: Vec<String> = sources
        .iter()
        .filter(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .contains(".create_user(")
        })
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        creators
            .iter()
            .all(|f| f == "demo.rs" || f == "admin.rs" || f == "main.rs"),
        "accounts are created by the demo or by the operator's command only: {creators:?}"
    );
    // The runtime role cannot create or delete an account at all.
    let mut rt = db.runtime_conn().await;
    let e = sqlx::query(
        "insert into app_user (user_id, email, display_name) values (gen_random_uuid(), 'admin@test.example.invalid', 'admin')",
    )
    .execute(&mut rt)
    .await
    .unwrap_err();
    assert_eq!(db_code(&e), "42501", "{e}");
}
