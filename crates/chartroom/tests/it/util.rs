use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgConnection;
use testkit::TestApp;

/// Sends a request with an optional bearer token and JSON body; returns status and JSON body.
pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut req = app.http.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let text = res.text().await.expect("body");
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, json)
}

/// `GET url` with a bearer `token` (a server run by the test, not a [`TestApp`]), as JSON.
pub async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Counts rows of `table` as seen by a connection with no tenant set (a superuser view, for
/// before/after comparisons only).
pub async fn count_all(su: &mut PgConnection, table: &str) -> i64 {
    sqlx::query_scalar(&format!("select count(*) from {table}"))
        .fetch_one(su)
        .await
        .unwrap()
}

/// The SQLSTATE of a database error ("" for other errors).
pub fn db_code(e: &sqlx::Error) -> String {
    e.as_database_error()
        .and_then(sqlx::error::DatabaseError::code)
        .map(|c| c.to_string())
        .unwrap_or_default()
}

/// The email of a fixture user (read as superuser: fixtures only).
pub async fn email_of(db: &testkit::TestDb, user: domain::UserId) -> String {
    let mut su = db.superuser_unsafe().await;
    sqlx::query_scalar("select email from app_user where user_id = $1")
        .bind(user)
        .fetch_one(&mut su)
        .await
        .expect("fixture user")
}

/// Every file under `dir` (recursively) whose extension is one of `extensions`.
pub fn source_files(dir: &std::path::Path, extensions: &[&str], out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, extensions, out);
        } else if path
            .extension()
            .is_some_and(|e| extensions.iter().any(|x| e == *x))
        {
            out.push(path);
        }
    }
}

/// Every tenant table: a table of schema `public` with a `practice_id` column, from the catalog
/// (a new table is covered automatically).
pub async fn tenant_tables(conn: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
          join pg_attribute a on a.attrelid = c.oid and a.attname = 'practice_id' and not a.attisdropped
         where n.nspname = 'public' and c.relkind in ('r', 'p') order by 1",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}
