//! `chartroom-schema`: prints the readable description of the schema the migrations produce
//! (see `testkit::schema`), from a freshly migrated database in the test cluster.
//!
//! `./dev schema` writes it to `migrations/SCHEMA.md`; the test suite fails while that file
//! differs from what this prints.

use std::io::Write as _;

use anyhow::Context as _;
use sqlx::Connection as _;
use testkit::TestDb;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let db = TestDb::new().await;
    let mut conn = sqlx::PgConnection::connect_with(&db.owner_options().await)
        .await
        .context("connect to the migrated database")?;
    let text = testkit::schema::describe(&mut conn).await?;
    conn.close().await?;
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("write the description")?;
    Ok(())
}
