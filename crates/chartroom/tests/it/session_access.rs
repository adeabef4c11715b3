//! The copy of a user's memberships on each of their sessions (migration 0013), which the
//! session check reads instead of the membership: it follows every change in the same
//! transaction, cannot be written by the runtime role, and stays exact when a session is
//! created while a membership changes. Statements run as the runtime role; the superuser
//! connection only reads the result.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{Connection as _, PgConnection};
use testkit::{TestDb, World};

use crate::util::db_code;

/// The copy on session `token` as `practice id → roles` (plus the settings for `practice`).
async fn copy(su: &mut PgConnection, token: &[u8]) -> serde_json::Value {
    sqlx::query_scalar("select access from session where token_hash = $1")
        .bind(token)
        .fetch_one(su)
        .await
        .unwrap()
}

fn roles_in(access: &serde_json::Value, practice: uuid::Uuid) -> Option<String> {
    access
        .get(practice.to_string())
        .map(|m| m["roles"].as_str().unwrap().to_owned())
}

fn new_token() -> Vec<u8> {
    let mut t = uuid::Uuid::new_v4().as_bytes().to_vec();
    t.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    t
}

/// Inserts a session for `user` as the runtime role, in the open transaction `conn`, with a
/// forged copy that the database must replace.
async fn insert_session(conn: &mut PgConnection, user: uuid::Uuid, token: &[u8]) {
    testkit::enter_as(conn, None, Some(user), true).await;
    sqlx::query(
        "insert into session (token_hash, user_id, created_at, last_seen_at, expires_at, access)
         values ($1, $2, now(), now(), now() + interval '1 hour',
                 jsonb_build_object(gen_random_uuid()::text, jsonb_build_object('roles', '{owner}')))",
    )
    .bind(token)
    .bind(user)
    .execute(&mut *conn)
    .await
    .unwrap();
}

/// Changes `user`'s roles in `practice` as that practice's owner, in the open transaction.
async fn set_roles(
    conn: &mut PgConnection,
    practice: uuid::Uuid,
    owner: uuid::Uuid,
    user: uuid::Uuid,
    roles: &[&str],
) {
    testkit::enter_as(conn, Some(practice), Some(owner), true).await;
    let done =
        sqlx::query("update membership set roles = $3 where practice_id = $1 and user_id = $2")
            .bind(practice)
            .bind(user)
            .bind(roles)
            .execute(&mut *conn)
            .await
            .unwrap();
    assert_eq!(done.rows_affected(), 1);
}

/// Runs one statement as `actor` inside `practice` (binding `ids` in order) and commits.
async fn commit_as(
    conn: &mut PgConnection,
    practice: uuid::Uuid,
    actor: uuid::Uuid,
    sql: &str,
    ids: &[uuid::Uuid],
) {
    let mut tx = conn.begin().await.unwrap();
    testkit::enter_as(&mut tx, Some(practice), Some(actor), true).await;
    let mut query = sqlx::query(sql);
    for id in ids {
        query = query.bind(id);
    }
    query.execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
}

/// Waits until the backend `pid` is blocked on an advisory lock, or its work is `done`
/// without having waited (then the lock is missing, and the caller's assertion will say so).
async fn blocked_on_advisory_lock(su: &mut PgConnection, pid: i32, done: &AtomicBool) {
    while !done.load(Ordering::SeqCst) {
        let waiting: bool = sqlx::query_scalar(
            "select exists (select 1 from pg_locks where pid = $1 and locktype = 'advisory' and not granted)",
        )
        .bind(pid)
        .fetch_one(&mut *su)
        .await
        .unwrap();
        if waiting {
            return;
        }
        tokio::task::yield_now().await;
    }
}

async fn backend_pid(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

// req: AC-10, AC-11 (role changes and removal reach the session check at once)
#[tokio::test]
async fn session_copies_follow_every_membership_change() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let mut su = db.superuser_unsafe().await;
    let (a, b) = (w.a.id.as_uuid(), w.b.id.as_uuid());
    let (owner_a, owner_b) = (w.a.user("owner").as_uuid(), w.b.user("owner").as_uuid());
    let user = w.a.user("reception").as_uuid();
    let mut conn = db.runtime_conn().await;

    // A new session takes the memberships, whatever the insert said.
    let token = new_token();
    let mut tx = conn.begin().await.unwrap();
    insert_session(&mut tx, user, &token).await;
    tx.commit().await.unwrap();
    let access = copy(&mut su, &token).await;
    assert_eq!(access.as_object().unwrap().len(), 1, "{access}");
    assert_eq!(roles_in(&access, a).as_deref(), Some("{reception}"));

    // Roles changed by the practice's owner: the copy follows in the same transaction.
    let mut tx = conn.begin().await.unwrap();
    set_roles(&mut tx, a, owner_a, user, &["clinician", "reception"]).await;
    tx.commit().await.unwrap();
    assert_eq!(
        roles_in(&copy(&mut su, &token).await, a).as_deref(),
        Some("{clinician,reception}")
    );

    // Added to a second practice.
    commit_as(
        &mut conn,
        b,
        owner_b,
        "insert into membership (practice_id, user_id, roles) values ($1, $2, array['reception'])",
        &[b, user],
    )
    .await;
    let access = copy(&mut su, &token).await;
    assert_eq!(roles_in(&access, b).as_deref(), Some("{reception}"));
    assert_eq!(access[b.to_string()]["idle"], serde_json::Value::Null);

    // The second practice's session settings reach the copy through the membership.
    commit_as(
        &mut conn,
        b,
        owner_b,
        "update practice set session_idle_seconds = 300, session_absolute_seconds = 7200, require_passkey_for_managers = true where practice_id = $1",
        &[b],
    )
    .await;
    let access = copy(&mut su, &token).await;
    let in_b = &access[b.to_string()];
    assert_eq!(
        (
            in_b["idle"].as_f64(),
            in_b["absolute"].as_f64(),
            in_b["passkey"].as_bool()
        ),
        (Some(300.0), Some(7200.0), Some(true))
    );
    assert_eq!(access[a.to_string()]["idle"], serde_json::Value::Null);

    // Removed from the first practice.
    commit_as(
        &mut conn,
        a,
        owner_a,
        "delete from membership where practice_id = $1 and user_id = $2",
        &[a, user],
    )
    .await;
    let access = copy(&mut su, &token).await;
    assert_eq!(roles_in(&access, a), None);
    assert_eq!(roles_in(&access, b).as_deref(), Some("{reception}"));

    // Rolled back: the copy is untouched.
    let before = copy(&mut su, &token).await;
    let mut tx = conn.begin().await.unwrap();
    set_roles(&mut tx, b, owner_b, user, &["admin"]).await;
    tx.rollback().await.unwrap();
    assert_eq!(copy(&mut su, &token).await, before);

    // The runtime role cannot write the copy, not even on the user's own session.
    let mut tx = conn.begin().await.unwrap();
    testkit::enter_as(&mut tx, Some(b), Some(user), true).await;
    let err = sqlx::query("update session set access = '{}' where token_hash = $1")
        .bind(&token)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(db_code(&err), "42501");
    drop(tx);
    assert_eq!(copy(&mut su, &token).await, before);
}

/// Runs `first` in a transaction on `c_first` and leaves it open, then `second` in a
/// transaction on `c_second`, which must wait for the user's lock: `first` commits once
/// `second` is seen waiting (or has finished without waiting, i.e. the lock is missing, which
/// the caller's assertion then shows), and `second` commits after it.
async fn one_while_the_other_is_open(
    su: &mut PgConnection,
    c_first: &mut PgConnection,
    first: impl AsyncFnOnce(&mut PgConnection),
    c_second: &mut PgConnection,
    second: impl AsyncFnOnce(&mut PgConnection),
) {
    let second_pid = backend_pid(c_second).await;
    let mut t_first = c_first.begin().await.unwrap();
    let mut t_second = c_second.begin().await.unwrap();
    first(&mut t_first).await;
    let done = AtomicBool::new(false);
    let waiting = async {
        second(&mut t_second).await;
        done.store(true, Ordering::SeqCst);
        t_second.commit().await.unwrap();
    };
    let holding = async {
        blocked_on_advisory_lock(su, second_pid, &done).await;
        t_first.commit().await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(waiting, holding)
    })
    .await
    .expect("the second transaction finishes once the first commits");
}

// The two orders in which a new session and a membership change can meet: whichever commits
// second must leave the new session with the changed roles. Without the per-user lock the
// session inserted first keeps the roles it read before the change.
// req: AC-10
#[tokio::test]
async fn a_session_created_during_a_membership_change_gets_the_new_roles() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let mut su = db.superuser_unsafe().await;
    let a = w.a.id.as_uuid();
    let owner = w.a.user("owner").as_uuid();
    let user = w.a.user("reception").as_uuid();
    let (mut c1, mut c2) = (db.runtime_conn().await, db.runtime_conn().await);

    // The session is inserted (reading the old roles) and left open; the role change waits
    // for it, then rewrites it.
    let token = new_token();
    one_while_the_other_is_open(
        &mut su,
        &mut c1,
        async |t| insert_session(t, user, &token).await,
        &mut c2,
        async |t| set_roles(t, a, owner, user, &["clinician"]).await,
    )
    .await;
    assert_eq!(
        roles_in(&copy(&mut su, &token).await, a).as_deref(),
        Some("{clinician}"),
        "session inserted first"
    );

    // The role change holds the lock; the session insert waits, then reads the committed
    // roles.
    let token = new_token();
    one_while_the_other_is_open(
        &mut su,
        &mut c2,
        async |t| set_roles(t, a, owner, user, &["admin"]).await,
        &mut c1,
        async |t| insert_session(t, user, &token).await,
    )
    .await;
    assert_eq!(
        roles_in(&copy(&mut su, &token).await, a).as_deref(),
        Some("{admin}"),
        "session inserted second"
    );
}
