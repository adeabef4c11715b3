//! Roles, the application database and its privileges; idempotent, run on every start.

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};

use super::error::{EmbeddedError, sql};
use super::secrets::{Password, Passwords};
use super::{APP_ROLE, DATABASE, DbRole, OWNER_ROLE, RUNTIME_ROLE};

/// Attributes every Chartroom role gets besides `LOGIN`/`NOLOGIN`: no superuser, no role or
/// database creation, no replication, and no `BYPASSRLS` (row-level security applies).
const LIMITED: &str = "NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS INHERIT";

/// Creates or re-asserts the roles (attributes and passwords), the [`DATABASE`] owned by
/// [`OWNER_ROLE`], and the database's privileges. `admin` is a superuser connection to any
/// database; `to_database` connects as superuser to [`DATABASE`].
pub(super) async fn bootstrap(
    admin: &mut PgConnection,
    to_database: &PgConnectOptions,
    passwords: &Passwords,
) -> Result<(), EmbeddedError> {
    // Keep the password literals below out of the server log, whatever the log settings.
    sqlx::raw_sql(
        "SET log_statement = 'none'; \
         SET log_min_duration_statement = -1; \
         SET log_min_error_statement = 'panic'",
    )
    .execute(&mut *admin)
    .await
    .map_err(sql("silence statement logging"))?;

    let owner = passwords.for_role(DbRole::Owner);
    let app = passwords.for_role(DbRole::Runtime);
    ensure_role(admin, OWNER_ROLE, "LOGIN", Some(owner)).await?;
    ensure_role(admin, RUNTIME_ROLE, "NOLOGIN", None).await?;
    ensure_role(admin, APP_ROLE, "LOGIN", Some(app)).await?;
    let is_member: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_auth_members m \
         JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member \
         WHERE g.rolname = $1 AND u.rolname = $2)",
    )
    .bind(RUNTIME_ROLE)
    .bind(APP_ROLE)
    .fetch_one(&mut *admin)
    .await
    .map_err(sql("check role membership"))?;
    if !is_member {
        execute(
            admin,
            "grant the runtime role",
            &format!("GRANT {} TO {}", ident(RUNTIME_ROLE)?, ident(APP_ROLE)?),
        )
        .await?;
    }

    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(DATABASE)
            .fetch_one(&mut *admin)
            .await
            .map_err(sql("check the database"))?;
    let database = ident(DATABASE)?;
    let owner_role = ident(OWNER_ROLE)?;
    if exists {
        execute(
            admin,
            "assert the database owner",
            &format!("ALTER DATABASE {database} OWNER TO {owner_role}"),
        )
        .await?;
    } else {
        execute(
            admin,
            "create the database",
            &format!("CREATE DATABASE {database} OWNER {owner_role} ENCODING 'UTF8'"),
        )
        .await?;
    }
    // Nothing of Chartroom's lives in the maintenance database; keep the roles out of it.
    execute(
        admin,
        "lock down the maintenance database",
        "REVOKE ALL ON DATABASE postgres FROM PUBLIC",
    )
    .await?;

    let mut conn = PgConnection::connect_with(to_database)
        .await
        .map_err(sql("connect to the application database"))?;
    let secured = secure_database(&mut conn, DATABASE).await;
    if let Err(error) = conn.close().await {
        tracing::debug!(%error, "closing a bootstrap connection failed");
    }
    secured
}

/// Creates `role` with `login` (`LOGIN` or `NOLOGIN`) and the limited attributes, or brings an
/// existing one back to them; sets its password if it has one.
async fn ensure_role(
    admin: &mut PgConnection,
    role: &str,
    login: &str,
    password: Option<&Password>,
) -> Result<(), EmbeddedError> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(&mut *admin)
            .await
            .map_err(sql("check a role"))?;
    let verb = if exists { "ALTER" } else { "CREATE" };
    let password = match password {
        Some(password) => format!(" PASSWORD {}", password.sql_literal()?),
        None => String::new(),
    };
    execute(
        admin,
        if exists {
            "alter a role"
        } else {
            "create a role"
        },
        &format!(
            "{verb} ROLE {} WITH {login} {LIMITED}{password}",
            ident(role)?
        ),
    )
    .await
}

/// Runs one statement with the simple query protocol (no prepared statement that would keep
/// its text, which may hold a password, in a statement cache).
async fn execute(
    conn: &mut PgConnection,
    step: &'static str,
    statement: &str,
) -> Result<(), EmbeddedError> {
    sqlx::raw_sql(statement)
        .execute(conn)
        .await
        .map(drop)
        .map_err(sql(step))
}

/// Quotes an SQL identifier: always double-quoted, embedded quotes doubled.
fn ident(name: &str) -> Result<String, EmbeddedError> {
    if name.is_empty() || name.contains('\0') {
        return Err(EmbeddedError::UnsafeSql {
            what: "an identifier",
            reason: "it is empty or contains a NUL",
        });
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// Locks down database `db`, given a superuser's or the database owner's connection **to `db`
/// itself** (the owner suffices while `public` is owned by `pg_database_owner`, as in every
/// database PostgreSQL 15 creates; `chartroom db bootstrap` runs it so): `PUBLIC` loses
/// every privilege on the database and on schema `public`; [`RUNTIME_ROLE`] may connect and
/// use (not create in) `public`; `public` is owned by `pg_database_owner`, so the database's
/// owner (e.g. [`OWNER_ROLE`]) keeps `CREATE` there. Idempotent; runs in one transaction.
///
/// The test kit calls this for each database it creates, so every test database is locked
/// down exactly like the real one.
///
/// # Errors
/// [`EmbeddedError::WrongDatabase`] if `superuser` is connected to another database;
/// [`EmbeddedError::Sql`] if a statement fails (e.g. the connection is not a superuser's).
pub async fn secure_database(superuser: &mut PgConnection, db: &str) -> Result<(), EmbeddedError> {
    let current: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *superuser)
        .await
        .map_err(sql("read the current database"))?;
    if current != db {
        return Err(EmbeddedError::WrongDatabase {
            expected: db.to_owned(),
            actual: current,
        });
    }
    let database = ident(db)?;
    let runtime = ident(RUNTIME_ROLE)?;
    let statements = format!(
        "REVOKE ALL ON DATABASE {database} FROM PUBLIC; \
         GRANT CONNECT ON DATABASE {database} TO {runtime}; \
         ALTER SCHEMA public OWNER TO pg_database_owner; \
         REVOKE ALL ON SCHEMA public FROM PUBLIC; \
         GRANT USAGE ON SCHEMA public TO {runtime}"
    );
    let mut tx = superuser
        .begin()
        .await
        .map_err(sql("begin securing the database"))?;
    execute(&mut tx, "secure the database", &statements).await?;
    tx.commit()
        .await
        .map_err(sql("commit securing the database"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("chartroom").unwrap(), "\"chartroom\"");
        assert_eq!(ident("a\"b").unwrap(), "\"a\"\"b\"");
        assert!(ident("").is_err());
        assert!(ident("a\0b").is_err());
    }
}
