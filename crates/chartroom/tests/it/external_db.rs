//! An external or managed PostgreSQL through the real binary (req TX-02): `db bootstrap` from
//! an administrator who has CREATEROLE but is not a superuser, and from a superuser; then
//! `migrate` and the runtime role with no hand work; TLS with certificate verification to a
//! server that accepts TLS only; a wrong CA and an unverified mode refused.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;

use sqlx::Connection as _;
use sqlx::postgres::PgConnectOptions;
use testkit::external_pg::{ExternalPg, TestCa};
use tokio::process::Command;

/// `chartroom --data-dir <data> <args…>` with `env`, its output captured.
async fn chartroom(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chartroom"));
    cmd.arg("--data-dir").arg(data).args(args);
    for var in [
        "CHARTROOM_DATABASE_URL",
        "CHARTROOM_OWNER_DATABASE_URL",
        "CHARTROOM_DATABASE_CA_FILE",
        "CHARTROOM_ADMIN_DATABASE_URL",
        "PGPASSWORD",
        "PGSSLMODE",
        "PGSSLROOTCERT",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied()).env("RUST_LOG", "warn");
    cmd.output().await.expect("run chartroom")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `KEY='value'` lines of an environment file.
fn read_env(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.trim_matches('\'').to_owned())
        })
        .collect()
}

// req: TX-02
#[tokio::test]
async fn bootstrap_by_a_createrole_administrator_then_migrate_over_verified_tls() {
    let pg = ExternalPg::start().await;
    let admin_password = pg
        .create_login("cloud_admin", "nosuperuser createrole createdb")
        .await;
    let data = pg.dir().join("chartroom-data");
    let env_file = pg.dir().join("db.env");
    let ca = pg.ca_file.to_str().unwrap().to_owned();
    let admin_url = pg.url("cloud_admin", "postgres", "sslmode=verify-full");
    let bootstrap = [
        "--database-ca-file",
        ca.as_str(),
        "db",
        "bootstrap",
        "--admin-url",
        admin_url.as_str(),
        "--write-env",
        env_file.to_str().unwrap(),
    ];
    let out = chartroom(&data, &bootstrap, &[("PGPASSWORD", &admin_password)]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "administrator cloud_admin: CREATEROLE (not a superuser)",
        "role chartroom_owner: created (LOGIN;",
        "role chartroom_runtime: created (NOLOGIN;",
        "role chartroom_app: created (LOGIN;",
        "membership chartroom_app in chartroom_runtime: granted",
        "database chartroom: created, owned by chartroom_owner",
        "extensions: none needed",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    // Passwords were generated into 0600 files and printed nowhere.
    let secrets = data.join("secrets").join("database");
    for role in ["chartroom_owner", "chartroom_app"] {
        let file = secrets.join(format!("{role}.password"));
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let password = std::fs::read_to_string(&file).unwrap();
        let password = password.trim();
        assert_eq!(password.len(), 64);
        assert!(!stdout.contains(password) && !stderr.contains(password));
    }
    assert_eq!(
        std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let env = read_env(&env_file);
    let runtime_url = env["CHARTROOM_DATABASE_URL"].clone();
    let owner_url = env["CHARTROOM_OWNER_DATABASE_URL"].clone();
    assert!(runtime_url.contains("sslmode=verify-full"), "{runtime_url}");
    assert_eq!(
        env["CHARTROOM_DATABASE_CA_FILE"],
        std::fs::canonicalize(&pg.ca_file)
            .unwrap()
            .to_str()
            .unwrap()
    );
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    // `migrate` works with nothing done by hand.
    let out = chartroom(&data, &["migrate"], &vars).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("migrations applied"));

    // The runtime role passes the server's least-privilege check, over verified TLS.
    let runtime: PgConnectOptions = runtime_url.parse().unwrap();
    let runtime = runtime.ssl_root_cert(&pg.ca_file);
    let store = store::Store::connect_runtime(runtime.clone(), 1)
        .await
        .unwrap();
    store.close().await;
    let mut conn = sqlx::PgConnection::connect_with(&runtime).await.unwrap();
    let (ssl, version): (bool, String) =
        sqlx::query_as("select ssl, version from pg_stat_ssl where pid = pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(ssl);
    assert_eq!(version, "TLSv1.3");
    sqlx::Connection::close(conn).await.unwrap();

    // Idempotent: a second run creates nothing, keeps the passwords, and migrate still works.
    let out = chartroom(&data, &bootstrap, &[("PGPASSWORD", &admin_password)]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("created"), "{stdout}");
    for line in [
        "role chartroom_owner: exists; attributes re-asserted (LOGIN), password set",
        "role chartroom_runtime: exists; attributes re-asserted (NOLOGIN)",
        "membership chartroom_app in chartroom_runtime: exists",
        "database chartroom: exists, owned by chartroom_owner",
        "password of chartroom_owner: from",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert_eq!(read_env(&env_file), env);
    let out = chartroom(&data, &["migrate"], &vars).await;
    assert!(out.status.success(), "{:?}", text(&out));
    // The administrator did not keep the owner role it borrowed to create the database.
    let mut admin = sqlx::PgConnection::connect_with(
        &admin_url
            .parse::<PgConnectOptions>()
            .unwrap()
            .password(&admin_password)
            .ssl_root_cert(&pg.ca_file),
    )
    .await
    .unwrap();
    let member: bool =
        sqlx::query_scalar("select pg_has_role('cloud_admin', 'chartroom_owner', 'MEMBER')")
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert!(!member);
    sqlx::Connection::close(admin).await.unwrap();

    // A server certificate from another CA (a man in the middle): the connection fails,
    // saying so, and nothing is migrated.
    let other = pg.dir().join("other-ca.pem");
    std::fs::write(&other, TestCa::new("Another CA").cert_pem).unwrap();
    let mut wrong = vars.clone();
    wrong.retain(|(k, _)| *k != "CHARTROOM_DATABASE_CA_FILE");
    wrong.push(("CHARTROOM_DATABASE_CA_FILE", other.to_str().unwrap()));
    let out = chartroom(&data, &["migrate"], &wrong).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains("cannot connect as the owner role to localhost over verified TLS"),
        "{stderr}"
    );
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");

    // The server takes TLS connections only: plain TCP (allowed by Chartroom on loopback
    // only) is turned away by the server's `hostssl`-only rules.
    let plain = owner_url.replace("sslmode=verify-full", "sslmode=disable");
    let mut no_tls = vars.clone();
    no_tls.retain(|(k, _)| !k.starts_with("CHARTROOM_OWNER"));
    no_tls.push(("CHARTROOM_OWNER_DATABASE_URL", plain.as_str()));
    let out = chartroom(&data, &["migrate"], &no_tls).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("no pg_hba.conf entry"), "{stderr}");
    assert!(stderr.contains("no encryption"), "{stderr}");
    pg.stop().await;
}

// req: TX-02
#[tokio::test]
async fn bootstrap_by_a_superuser_takes_over_an_existing_database() {
    let pg = ExternalPg::start().await;
    let password = pg.create_login("dbroot", "superuser").await;
    // An operator's earlier attempt: the database exists under another owner, and a login
    // role was given BYPASSRLS by hand.
    pg.superuser_sql(
        "create database clinic owner dbroot; \
         create role clinic_app login bypassrls password 'an earlier hand-made one'",
    )
    .await;
    let data = pg.dir().join("chartroom-data");
    let ca = pg.ca_file.to_str().unwrap().to_owned();
    let admin_url = pg.url("dbroot", "postgres", "sslmode=verify-full");
    let args = [
        "--database-ca-file",
        ca.as_str(),
        "db",
        "bootstrap",
        "--admin-url",
        admin_url.as_str(),
        "--database",
        "clinic",
        "--app-role",
        "clinic_app",
        "--write-env",
        "-",
    ];
    let out = chartroom(&data, &args, &[("PGPASSWORD", &password)]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "administrator dbroot: superuser",
        "role clinic_app: SUPERUSER, REPLICATION and BYPASSRLS removed",
        "database clinic: exists; owner changed from dbroot to chartroom_owner",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    // `--write-env -` is the explicit request to print the secrets: on standard output only.
    let env: HashMap<String, String> = stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.starts_with("CHARTROOM_"))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect();
    assert!(env["CHARTROOM_DATABASE_URL"].contains("clinic_app:"));
    assert!(env["CHARTROOM_DATABASE_URL"].contains("/clinic?"));
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = chartroom(&data, &["migrate"], &vars).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let runtime: PgConnectOptions = env["CHARTROOM_DATABASE_URL"].parse().unwrap();
    let store = store::Store::connect_runtime(runtime.ssl_root_cert(&pg.ca_file), 1)
        .await
        .unwrap();
    store.close().await;
    pg.stop().await;
}

// req: TX-02
#[tokio::test]
async fn serve_and_migrate_refuse_an_unverified_external_database() {
    let data = std::env::temp_dir().join(format!("chartroom-tx02-{}", uuid::Uuid::new_v4()));
    // TEST-NET-1 (RFC 5737): never reached, the refusal comes first.
    for (url, mode) in [
        (
            "postgres://chartroom_app@192.0.2.10/chartroom?sslmode=disable",
            "disable",
        ),
        ("postgres://chartroom_app@192.0.2.10/chartroom", "prefer"),
        (
            "postgres://chartroom_app@192.0.2.10/chartroom?sslmode=require",
            "require",
        ),
    ] {
        for command in [&["serve", "--scribe-local", "off"][..], &["migrate"][..]] {
            let mut args = vec!["--database-url", url, "--owner-database-url", url];
            args.extend_from_slice(command);
            let out = chartroom(&data, &args, &[]).await;
            let (_, stderr) = text(&out);
            assert!(!out.status.success(), "{command:?} {url}");
            assert!(
                stderr.contains(&format!(
                    "reaches the PostgreSQL at 192.0.2.10 with sslmode={mode}: a database that is not on this machine must be reached with sslmode=verify-full"
                )),
                "{command:?} {url}: {stderr}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&data);
}
