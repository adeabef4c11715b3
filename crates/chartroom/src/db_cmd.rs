//! `chartroom db bootstrap`: what an external PostgreSQL needs before `chartroom migrate`,
//! made from an administrator's URL, idempotently, printing each thing it created or found.
//!
//! It works with a superuser and with the administrator of a managed service, who has
//! `CREATEROLE` and `CREATEDB` but is not a superuser (PostgreSQL 15 rules: such a role may
//! create and alter roles that are not superusers, but may not set or clear `SUPERUSER`,
//! `REPLICATION` or `BYPASSRLS`, and may create a database owned by another role only while a
//! member of it — so it joins `chartroom_owner` for that step and leaves again).
//!
//! Passwords: each login role's password comes from `<password dir>/<role>.password` (0600),
//! generated there (32 bytes from the OS CSPRNG, hex) when the file is missing. The server
//! only ever receives a SCRAM-SHA-256 verifier computed here, so no password can reach its
//! statement log. Nothing prints a password, except `--write-env`, which writes the two
//! connection URLs (with their passwords) where the operator asks: a file (0600) or standard
//! output (`-`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::num::NonZeroU32;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::{Args, Subcommand};
use pgcluster::{OWNER_ROLE, RUNTIME_ROLE};
use rand::RngCore as _;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};
use zeroize::Zeroizing;

use crate::Global;
use crate::services::Services;

/// SCRAM iterations (PostgreSQL's default `scram_iterations`; RFC 7677 §4 asks for ≥ 4096).
const SCRAM_ITERATIONS: u32 = 4096;
/// Bytes of a generated password (256 bits), hex encoded.
const PASSWORD_BYTES: usize = 32;

/// `chartroom db …`.
#[derive(Subcommand)]
pub(crate) enum DbCommand {
    /// Create (or re-assert) on an external PostgreSQL the roles `chartroom_owner`,
    /// `chartroom_runtime` and the server's login role, the database owned by
    /// `chartroom_owner`, and its privileges; idempotent. Then `chartroom migrate` works.
    Bootstrap(BootstrapArgs),
}

/// Options of `db bootstrap`.
#[derive(Args)]
pub(crate) struct BootstrapArgs {
    /// An administrator's URL: a superuser, or on a managed service a role with CREATEROLE
    /// and CREATEDB. Prefer PGPASSWORD for its password (kept out of the process list). The
    /// transport rule of `--database-ca-file` applies.
    #[arg(long, env = "CHARTROOM_ADMIN_DATABASE_URL", hide_env_values = true)]
    admin_url: String,

    /// The application database.
    #[arg(long, default_value = pgcluster::DATABASE)]
    database: String,

    /// The server's login role (a member of `chartroom_runtime`, owning nothing).
    #[arg(long, default_value = pgcluster::APP_ROLE)]
    app_role: String,

    /// Where the login roles' passwords are kept (`<role>.password`, 0600): an existing file
    /// is used (put your own there), a missing one is generated. Default:
    /// `<data dir>/secrets/database`.
    #[arg(long)]
    password_dir: Option<PathBuf>,

    /// Also write `CHARTROOM_DATABASE_URL` and `CHARTROOM_OWNER_DATABASE_URL` (with their
    /// passwords: the operator's secret) and `CHARTROOM_DATABASE_CA_FILE` as an environment
    /// file (0600, replaced), or to standard output with `-`.
    #[arg(long, value_name = "FILE|-")]
    write_env: Option<String>,
}

/// Runs a `db` command.
pub(crate) async fn run(svc: &Services, cmd: DbCommand) -> anyhow::Result<()> {
    match cmd {
        DbCommand::Bootstrap(args) => bootstrap(svc.global(), args).await,
    }
}

/// The administrator's standing, read from the server.
struct Admin {
    name: String,
    superuser: bool,
    createrole: bool,
    createdb: bool,
}

/// A login role's password (never printed; zeroed on drop).
struct Password(Zeroizing<String>);

#[allow(
    clippy::too_many_lines,
    reason = "the bootstrap in order: roles, database, privileges, passwords out"
)]
async fn bootstrap(g: &Global, args: BootstrapArgs) -> anyhow::Result<()> {
    check_name("--database", &args.database)?;
    check_name("--app-role", &args.app_role)?;
    if [OWNER_ROLE, RUNTIME_ROLE].contains(&args.app_role.as_str()) {
        bail!(
            "--app-role must be a role of its own, not {}",
            args.app_role
        );
    }
    let ca = g.database_ca_file.as_deref();
    let admin_options = crate::db::external_options(&args.admin_url, "--admin-url", ca)?;
    let dir = args
        .password_dir
        .clone()
        .unwrap_or_else(|| g.data_dir.join("secrets").join("database"));
    let mut conn = PgConnection::connect_with(&admin_options)
        .await
        .with_context(|| crate::db::connect_failed("the administrator", &admin_options))?;
    let admin = read_admin(&mut conn).await?;
    if !admin.superuser && !admin.createrole {
        bail!(
            "the administrator {} has neither SUPERUSER nor CREATEROLE: it cannot create Chartroom's roles",
            admin.name
        );
    }
    println!(
        "administrator {}: {}",
        admin.name,
        if admin.superuser {
            "superuser"
        } else {
            "CREATEROLE (not a superuser)"
        }
    );
    let owner_password = password_for(&dir, OWNER_ROLE)?;
    let app_password = password_for(&dir, &args.app_role)?;
    ensure_role(&mut conn, &admin, OWNER_ROLE, Some(&owner_password)).await?;
    ensure_role(&mut conn, &admin, RUNTIME_ROLE, None).await?;
    ensure_role(&mut conn, &admin, &args.app_role, Some(&app_password)).await?;
    ensure_member(&mut conn, RUNTIME_ROLE, &args.app_role).await?;

    // A non-superuser may create (or hand over) a database for another role only as its member.
    let joined = !admin.superuser && !is_member(&mut conn, &admin.name, OWNER_ROLE).await?;
    if joined {
        execute(
            &mut conn,
            &format!("GRANT {} TO {}", ident(OWNER_ROLE), ident(&admin.name)),
        )
        .await
        .context("cannot join the owner role to create the database")?;
    }
    let database = ensure_database(&mut conn, &admin, &args.database).await;
    if joined {
        execute(
            &mut conn,
            &format!("REVOKE {} FROM {}", ident(OWNER_ROLE), ident(&admin.name)),
        )
        .await
        .context("cannot leave the owner role again")?;
    }
    database?;
    close(conn).await;

    // The database's own privileges, by its owner (or the superuser), inside the database.
    let in_database = if admin.superuser {
        admin_options.clone().database(&args.database)
    } else {
        admin_options
            .clone()
            .username(OWNER_ROLE)
            .password(&owner_password.0)
            .database(&args.database)
    };
    let mut db_conn = PgConnection::connect_with(&in_database)
        .await
        .with_context(|| crate::db::connect_failed("the owner role", &in_database))?;
    let secured = pgcluster::secure_database(&mut db_conn, &args.database).await;
    close(db_conn).await;
    secured.with_context(|| {
        format!(
            "cannot set the privileges of database {} (schema public must be owned by pg_database_owner, as PostgreSQL 15 makes it)",
            args.database
        )
    })?;
    println!(
        "database {}: PUBLIC has no privileges; {RUNTIME_ROLE} may connect and use schema public; {OWNER_ROLE} owns it",
        args.database
    );
    println!("extensions: none needed");
    println!(
        "passwords: {} (0600; not printed)",
        dir.join("<role>.password").display()
    );
    if let Some(target) = &args.write_env {
        let env = env_file(
            &args,
            ca,
            &admin_options,
            [
                (OWNER_ROLE, &owner_password),
                (&args.app_role, &app_password),
            ],
        )?;
        write_env(target, &env)?;
    }
    println!("next: chartroom migrate (with --database-url and --owner-database-url)");
    Ok(())
}

/// Role and database names: lower-case SQL identifiers, so they need no quoting anywhere
/// (URLs, environment files, `pg_hba.conf`).
fn check_name(flag: &str, name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let ok = name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        bail!(
            "{flag} must be a lower-case identifier (a-z, 0-9, _; at most 63 bytes), got {name:?}"
        )
    }
}

/// A double-quoted SQL identifier (names are checked by [`check_name`]; quoting stays as the
/// second line).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn read_admin(conn: &mut PgConnection) -> anyhow::Result<Admin> {
    let (name, superuser, createrole, createdb): (String, bool, bool, bool) = sqlx::query_as(
        "select rolname::text, rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = current_user",
    )
    .fetch_one(&mut *conn)
    .await
    .context("cannot read the administrator's attributes")?;
    Ok(Admin {
        name,
        superuser,
        createrole,
        createdb,
    })
}

/// The password of login role `role`: `<dir>/<role>.password` when it exists, else a new one
/// written there (0600, in a 0700 directory).
fn password_for(dir: &Path, role: &str) -> anyhow::Result<Password> {
    let path = dir.join(format!("{role}.password"));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            let password = text.trim_end_matches(['\n', '\r']);
            if password.len() < 16 || password.chars().any(char::is_control) {
                bail!(
                    "{}: a password must be at least 16 characters on one line",
                    path.display()
                );
            }
            println!("password of {role}: from {}", path.display());
            Ok(Password(Zeroizing::new(password.to_owned())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict {}", dir.display()))?;
            let mut bytes = Zeroizing::new([0u8; PASSWORD_BYTES]);
            rand::rngs::OsRng.fill_bytes(bytes.as_mut_slice());
            let password = Zeroizing::new(hex::encode(bytes.as_slice()));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            file.write_all(format!("{}\n", password.as_str()).as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("password of {role}: generated into {}", path.display());
            Ok(Password(password))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802 §3, RFC 7677;
/// PostgreSQL's `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`). `CREATE ROLE …
/// PASSWORD '<verifier>'` stores it as given, so the password itself never reaches the server.
fn scram_verifier(password: &str) -> String {
    use aws_lc_rs::{digest, hmac, pbkdf2};
    const ITERATIONS: NonZeroU32 = NonZeroU32::MIN.saturating_add(SCRAM_ITERATIONS - 1);
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    // Generated passwords are hex, for which SASLprep is the identity.
    let mut salted = Zeroizing::new([0u8; 32]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        ITERATIONS,
        &salt,
        password.as_bytes(),
        salted.as_mut_slice(),
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, salted.as_slice());
    let client_key = hmac::sign(&key, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let server_key = hmac::sign(&key, b"Server Key");
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "SCRAM-SHA-256${SCRAM_ITERATIONS}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key.as_ref()),
        b64.encode(server_key.as_ref())
    )
}

/// Creates `role` (LOGIN with `password`, or NOLOGIN) with no special attribute, or brings an
/// existing one back to that, and prints which.
async fn ensure_role(
    conn: &mut PgConnection,
    admin: &Admin,
    role: &str,
    password: Option<&Password>,
) -> anyhow::Result<()> {
    let found: Option<(bool, bool, bool)> = sqlx::query_as(
        "select rolsuper, rolreplication, rolbypassrls from pg_roles where rolname = $1",
    )
    .bind(role)
    .fetch_optional(&mut *conn)
    .await
    .context("cannot read the roles")?;
    let login = if password.is_some() {
        "LOGIN"
    } else {
        "NOLOGIN"
    };
    let password_clause = password
        .map(|p| format!(" PASSWORD '{}'", scram_verifier(&p.0)))
        .unwrap_or_default();
    let r = ident(role);
    match found {
        None => {
            execute(
                conn,
                &format!(
                    "CREATE ROLE {r} WITH {login} NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS INHERIT{password_clause}"
                ),
            )
            .await
            .with_context(|| format!("cannot create role {role}"))?;
            println!(
                "role {role}: created ({login}; no SUPERUSER, CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS)"
            );
        }
        Some((superuser, replication, bypassrls)) => {
            if superuser || replication || bypassrls {
                if !admin.superuser {
                    bail!(
                        "role {role} exists with SUPERUSER, REPLICATION or BYPASSRLS, which only a superuser can remove (ALTER ROLE {role} NOSUPERUSER NOREPLICATION NOBYPASSRLS); Chartroom will not use it so"
                    );
                }
                execute(
                    conn,
                    &format!("ALTER ROLE {r} WITH NOSUPERUSER NOREPLICATION NOBYPASSRLS"),
                )
                .await
                .with_context(|| format!("cannot lower the attributes of role {role}"))?;
                println!("role {role}: SUPERUSER, REPLICATION and BYPASSRLS removed");
            }
            // PostgreSQL 15: a CREATEROLE administrator may alter these, not the three above.
            execute(
                conn,
                &format!(
                    "ALTER ROLE {r} WITH {login} NOCREATEROLE NOCREATEDB INHERIT{password_clause}"
                ),
            )
            .await
            .with_context(|| format!("cannot alter role {role}"))?;
            println!(
                "role {role}: exists; attributes re-asserted ({login}){}",
                if password.is_some() {
                    ", password set"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

/// Whether `member` is a member of `group`, directly or not.
async fn is_member(conn: &mut PgConnection, member: &str, group: &str) -> anyhow::Result<bool> {
    sqlx::query_scalar("select pg_has_role($1::name, $2::name, 'MEMBER')")
        .bind(member)
        .bind(group)
        .fetch_one(&mut *conn)
        .await
        .context("cannot read role memberships")
}

/// Makes `member` a member of `group` if it is not one already.
async fn ensure_member(conn: &mut PgConnection, group: &str, member: &str) -> anyhow::Result<()> {
    let direct: bool = sqlx::query_scalar(
        "select exists (select 1 from pg_auth_members m join pg_roles g on g.oid = m.roleid \
         join pg_roles u on u.oid = m.member where g.rolname = $1 and u.rolname = $2)",
    )
    .bind(group)
    .bind(member)
    .fetch_one(&mut *conn)
    .await
    .context("cannot read role memberships")?;
    if direct {
        println!("membership {member} in {group}: exists");
    } else {
        execute(
            conn,
            &format!("GRANT {} TO {}", ident(group), ident(member)),
        )
        .await
        .with_context(|| format!("cannot make {member} a member of {group}"))?;
        println!("membership {member} in {group}: granted");
    }
    Ok(())
}

/// Creates database `name` owned by the owner role, or hands an existing one to it.
async fn ensure_database(conn: &mut PgConnection, admin: &Admin, name: &str) -> anyhow::Result<()> {
    let owner: Option<String> = sqlx::query_scalar(
        "select pg_get_userbyid(datdba)::text from pg_database where datname = $1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await
    .context("cannot read the databases")?;
    let (db, owner_role) = (ident(name), ident(OWNER_ROLE));
    match owner {
        None => {
            if !admin.superuser && !admin.createdb {
                bail!(
                    "database {name} does not exist and the administrator {} may not create databases (CREATEDB)",
                    admin.name
                );
            }
            execute(
                conn,
                &format!("CREATE DATABASE {db} OWNER {owner_role} ENCODING 'UTF8'"),
            )
            .await
            .with_context(|| format!("cannot create database {name}"))?;
            println!("database {name}: created, owned by {OWNER_ROLE}");
        }
        Some(o) if o == OWNER_ROLE => println!("database {name}: exists, owned by {OWNER_ROLE}"),
        Some(o) => {
            execute(conn, &format!("ALTER DATABASE {db} OWNER TO {owner_role}"))
                .await
                .with_context(|| {
                    format!("cannot hand database {name} (owned by {o}) to {OWNER_ROLE}")
                })?;
            println!("database {name}: exists; owner changed from {o} to {OWNER_ROLE}");
        }
    }
    Ok(())
}

/// Runs one statement with the simple query protocol (no prepared statement keeps its text).
async fn execute(conn: &mut PgConnection, statement: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(statement).execute(conn).await.map(drop)
}

async fn close(conn: PgConnection) {
    if let Err(error) = conn.close().await {
        tracing::debug!(%error, "closing a bootstrap connection failed");
    }
}

/// The environment file: the two URLs as the administrator's URL with the role, its password
/// and the database in place (every other setting kept, `sslmode` made explicit), and the CA.
fn env_file(
    args: &BootstrapArgs,
    ca: Option<&Path>,
    admin_options: &PgConnectOptions,
    [(owner, owner_password), (app, app_password)]: [(&str, &Password); 2],
) -> anyhow::Result<Zeroizing<String>> {
    let url_for = |role: &str, password: &Password| -> anyhow::Result<Zeroizing<String>> {
        let mut url = url::Url::parse(&args.admin_url).context("--admin-url is not a URL")?;
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !matches!(k.as_ref(), "user" | "password" | "dbname" | "sslmode"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.set_username(role)
            .and_then(|()| url.set_password(Some(password.0.as_str())))
            .map_err(|()| anyhow::anyhow!("--admin-url cannot carry a user name"))?;
        url.set_path(&format!("/{}", args.database));
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair(
                "sslmode",
                crate::db::ssl_mode_name(admin_options.get_ssl_mode()),
            );
        Ok(Zeroizing::new(url.to_string()))
    };
    let mut out = Zeroizing::new(String::from(
        "# Chartroom's database settings, written by `chartroom db bootstrap`. Secret: keep 0600.\n",
    ));
    for (var, role, password) in [
        ("CHARTROOM_DATABASE_URL", app, app_password),
        ("CHARTROOM_OWNER_DATABASE_URL", owner, owner_password),
    ] {
        let url = url_for(role, password)?;
        if url.contains('\'') {
            bail!("the URL for {role} cannot be quoted in an environment file");
        }
        let _ = writeln!(out, "{var}='{}'", url.as_str());
    }
    if let Some(ca) = ca {
        let ca = std::fs::canonicalize(ca)
            .with_context(|| format!("cannot resolve {}", ca.display()))?;
        let _ = writeln!(out, "CHARTROOM_DATABASE_CA_FILE='{}'", ca.display());
    }
    Ok(out)
}

/// Writes the environment file to `target` (0600, replaced atomically) or standard output.
fn write_env(target: &str, env: &str) -> anyhow::Result<()> {
    if target == "-" {
        print!("{env}");
        return Ok(());
    }
    let path = Path::new(target);
    let tmp = path.with_extension("chartroom-tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(env.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    println!(
        "environment file: {} (0600; holds the passwords)",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_identifiers() {
        for ok in ["chartroom", "chartroom_app", "_x1"] {
            assert!(check_name("--database", ok).is_ok(), "{ok}");
        }
        for bad in ["", "Chartroom", "1db", "a-b", "a\"b", &"x".repeat(64)] {
            assert!(check_name("--database", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_scram_verifier_has_postgresql_s_shape_and_a_fresh_salt() {
        let a = scram_verifier("0123456789abcdef0123456789abcdef");
        let b = scram_verifier("0123456789abcdef0123456789abcdef");
        assert_ne!(a, b, "each verifier has its own salt");
        let rest = a.strip_prefix("SCRAM-SHA-256$4096:").unwrap();
        let (salt, keys) = rest.split_once('$').unwrap();
        let (stored, server) = keys.split_once(':').unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(b64.decode(salt).unwrap().len(), 16);
        assert_eq!(b64.decode(stored).unwrap().len(), 32);
        assert_eq!(b64.decode(server).unwrap().len(), 32);
        assert!(!a.contains('\''));
    }
}
