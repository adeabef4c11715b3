//! Integration tests of the embedded PostgreSQL cluster against the real PostgreSQL server
//! binaries installed on this machine. Each test uses a fresh data directory under `/tmp`
//! (when the tests run as root, PostgreSQL runs as `postgres`, which must be able to reach it).
//!
//! Two tests need a second process (a Chartroom that dies by `SIGKILL`, a test process that
//! exits leaving a shared cluster behind): they re-run this test binary with the ignored
//! `helper_process` test and an environment variable saying what to do.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions; a failed unwrap is a failed test"
)]

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use pgcluster::{
    APP_ROLE, Cluster, ClusterConfig, DATABASE, DbRole, EmbeddedError, OWNER_ROLE, RUNTIME_ROLE,
    SUPERUSER_ROLE, find_pg_bin_dir, secure_database, stop_shared,
};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// What `helper_process` does, and in which data directory.
const HELPER_MODE_ENV: &str = "CHARTROOM_TEST_HELPER_MODE";
const HELPER_DIR_ENV: &str = "CHARTROOM_TEST_HELPER_DIR";
/// The line `helper_process` prints once its cluster is up.
const HELPER_READY: &str = "CHARTROOM_HELPER_READY pid=";

fn temp_data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("chartroom-embedded-")
        .tempdir_in("/tmp")
        .unwrap()
}

fn config(dir: &tempfile::TempDir) -> ClusterConfig {
    ClusterConfig::new(dir.path().join("data"))
}

async fn connect(options: &PgConnectOptions) -> PgConnection {
    PgConnection::connect_with(options).await.unwrap()
}

async fn scalar<T>(conn: &mut PgConnection, sql: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

/// The SQLSTATE of a failed statement.
async fn sqlstate(conn: &mut PgConnection, sql: &str) -> String {
    let error = sqlx::raw_sql(sql).execute(conn).await.unwrap_err();
    error
        .as_database_error()
        .and_then(|e| e.code().map(std::borrow::Cow::into_owned))
        .unwrap_or_else(|| panic!("expected a database error from {sql}, got {error}"))
}

/// Whether `pid` is a running (not zombie) process.
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        !matches!(state, Some('Z' | 'X') | None)
    })
}

/// Stops whatever postmaster still runs on a data directory when a test ends, even by
/// panicking, so a failed test does not leave a detached cluster behind.
struct StopOnDrop(PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let dir = self.0.clone();
        // A fresh runtime on its own thread: this may run inside the test's runtime.
        let stopped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(stop_shared(&dir))
        })
        .join();
        if let Ok(Err(error)) = stopped {
            eprintln!("cleanup of {} failed: {error}", self.0.display());
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn fresh_cluster_is_socket_only_scram_only_and_least_privileged() {
    // The embedded cluster: socket only, SCRAM only, runtime role not privileged
    let dir = temp_data_dir();
    let began = Instant::now();
    let cluster = Cluster::start(config(&dir)).await.unwrap();
    eprintln!(
        "fresh start (initdb + start + bootstrap): {:?}",
        began.elapsed()
    );
    assert!(cluster.is_owner());

    // Every role can log in to the application database.
    let mut admin = connect(&cluster.connect_options(DbRole::Superuser, DATABASE)).await;
    let mut owner = connect(&cluster.connect_options(DbRole::Owner, DATABASE)).await;
    let mut app = connect(&cluster.connect_options(DbRole::Runtime, DATABASE)).await;
    let whoami = "SELECT current_user::text";
    assert_eq!(scalar::<String>(&mut admin, whoami).await, SUPERUSER_ROLE);
    assert_eq!(scalar::<String>(&mut owner, whoami).await, OWNER_ROLE);
    assert_eq!(scalar::<String>(&mut app, whoami).await, APP_ROLE);

    assert_server_settings(&mut admin, &mut app).await;
    assert_runtime_role_is_unprivileged(&mut app).await;
    assert_owner_can_migrate_but_is_unprivileged(&mut owner).await;
    assert_logins_are_refused(&cluster, &mut admin).await;
    assert_layout(&cluster);

    for conn in [admin, owner, app] {
        conn.close().await.unwrap();
    }
    let pid = cluster.postmaster_pid();
    cluster.stop().await.unwrap();
    assert!(!is_running(pid));
}

/// No TCP listener, SCRAM only, durable defaults, one `local … scram-sha-256` hba rule.
async fn assert_server_settings(admin: &mut PgConnection, app: &mut PgConnection) {
    assert_eq!(scalar::<String>(app, "SHOW listen_addresses").await, "");
    assert_eq!(
        scalar::<String>(app, "SHOW password_encryption").await,
        "scram-sha-256"
    );
    assert_eq!(scalar::<String>(admin, "SHOW fsync").await, "on");
    assert_eq!(
        scalar::<String>(admin, "SHOW synchronous_commit").await,
        "on"
    );
    assert_eq!(
        scalar::<String>(admin, "SHOW server_encoding").await,
        "UTF8"
    );
    assert_eq!(scalar::<String>(admin, "SHOW data_checksums").await, "on");
    let hba_file: String = scalar(admin, "SHOW hba_file").await;
    assert!(hba_file.ends_with("/pg/pg_hba.conf"), "{hba_file}");
    let stored = "SELECT bool_and(rolpassword LIKE 'SCRAM-SHA-256$%') FROM pg_authid \
                  WHERE rolcanlogin";
    assert!(scalar::<bool>(admin, stored).await);
    let rules: Vec<(String, String)> =
        sqlx::query_as("SELECT type, auth_method FROM pg_hba_file_rules WHERE error IS NULL")
            .fetch_all(admin)
            .await
            .unwrap();
    assert_eq!(
        rules,
        vec![("local".to_owned(), "scram-sha-256".to_owned())]
    );
}

async fn assert_runtime_role_is_unprivileged(app: &mut PgConnection) {
    let attributes: (bool, bool, bool, bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolreplication \
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut *app)
    .await
    .unwrap();
    assert_eq!(attributes, (false, false, false, false, false));
    let member = format!("SELECT pg_has_role('{RUNTIME_ROLE}', 'MEMBER')");
    assert!(scalar::<bool>(app, &member).await);
    assert!(!scalar::<bool>(app, "SELECT has_schema_privilege('public', 'CREATE')").await);
    assert!(scalar::<bool>(app, "SELECT has_schema_privilege('public', 'USAGE')").await);
    assert_eq!(
        sqlstate(app, "CREATE TABLE app_owned (id int)").await,
        "42501"
    );
    assert_eq!(sqlstate(app, "CREATE DATABASE app_db").await, "42501");
    assert_eq!(sqlstate(app, "CREATE ROLE app_role").await, "42501");
}

async fn assert_owner_can_migrate_but_is_unprivileged(owner: &mut PgConnection) {
    let attributes: (bool, bool, bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole FROM pg_roles \
         WHERE rolname = current_user",
    )
    .fetch_one(&mut *owner)
    .await
    .unwrap();
    assert_eq!(attributes, (false, false, false, false));
    sqlx::raw_sql("CREATE TABLE owned_by_owner (id int)")
        .execute(owner)
        .await
        .unwrap();
}

/// PUBLIC cannot connect, the runtime role cannot reach the maintenance database, and a wrong
/// password is refused (no trust or peer rule lets anything through).
async fn assert_logins_are_refused(cluster: &Cluster, admin: &mut PgConnection) {
    sqlx::raw_sql("CREATE ROLE outsider LOGIN PASSWORD 'outsider-password-0123456789'")
        .execute(admin)
        .await
        .unwrap();
    let outsider = cluster
        .connect_options(DbRole::Runtime, DATABASE)
        .username("outsider")
        .password("outsider-password-0123456789");
    let refused = [
        (outsider, "42501"),
        (
            cluster.connect_options(DbRole::Runtime, "postgres"),
            "42501",
        ),
        (
            cluster
                .connect_options(DbRole::Superuser, DATABASE)
                .password("not-the-password"),
            "28P01",
        ),
    ];
    for (options, code) in refused {
        let error = PgConnection::connect_with(&options).await.unwrap_err();
        let error = error.as_database_error().unwrap();
        assert_eq!(error.code().unwrap(), code, "{}", error.message());
    }
}

/// Directory modes and owners; no password file left behind by initdb.
fn assert_layout(cluster: &Cluster) {
    let data = cluster.data_dir();
    assert_eq!(mode(&data.join("pg")), 0o700);
    assert_eq!(mode(&data.join("run")), 0o700);
    assert_eq!(mode(&data.join("secrets")), 0o700);
    for role in [SUPERUSER_ROLE, OWNER_ROLE, APP_ROLE] {
        let secret = data.join("secrets").join(role);
        assert_eq!(mode(&secret), 0o600);
        let text = std::fs::read_to_string(&secret).unwrap();
        assert!(text.trim().len() >= 64 && text.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    }
    let socket_files: Vec<String> = std::fs::read_dir(cluster.socket_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        socket_files.contains(&".s.PGSQL.5432".to_owned()),
        "{socket_files:?}"
    );
    assert!(
        !socket_files.iter().any(|name| name.contains("pwfile")),
        "{socket_files:?}"
    );
    assert!(!data.join("pg.init").exists());
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    // Running as root: PostgreSQL runs as `postgres`; the secrets stay root's.
    let postgres = nix::unistd::User::from_name("postgres")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    let owner = |path: &Path| std::fs::metadata(path).unwrap().uid();
    assert_eq!(owner(&data.join("pg")), postgres);
    assert_eq!(owner(&data.join("run")), postgres);
    assert_eq!(owner(&data.join("secrets")), 0);
    assert_eq!(mode(data), 0o711);
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", cluster.postmaster_pid())).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uids.split_whitespace()
            .skip(1)
            .all(|uid| uid == postgres.to_string()),
        "{uids}"
    );
}

#[tokio::test]
async fn restart_reuses_the_cluster_and_keeps_data() {
    let dir = temp_data_dir();
    let cluster = Cluster::start(config(&dir)).await.unwrap();
    let mut owner = connect(&cluster.connect_options(DbRole::Owner, DATABASE)).await;
    sqlx::raw_sql("CREATE TABLE kept (note text); INSERT INTO kept VALUES ('survives restarts')")
        .execute(&mut owner)
        .await
        .unwrap();
    owner.close().await.unwrap();
    let mut admin = connect(&cluster.connect_options(DbRole::Superuser, DATABASE)).await;
    let system_id: i64 = scalar(
        &mut admin,
        "SELECT system_identifier FROM pg_control_system()",
    )
    .await;
    // Settings on the command line win over ALTER SYSTEM, even a superuser's.
    for setting in [
        "listen_addresses = '*'",
        "password_encryption = 'md5'",
        "hba_file = '/etc/postgresql/trust-everyone.conf'",
    ] {
        sqlx::raw_sql(&format!("ALTER SYSTEM SET {setting}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    admin.close().await.unwrap();
    let secret =
        std::fs::read_to_string(cluster.data_dir().join("secrets").join(APP_ROLE)).unwrap();
    cluster.stop().await.unwrap();

    let began = Instant::now();
    let cluster = Cluster::start(config(&dir)).await.unwrap();
    eprintln!("warm restart (start + bootstrap): {:?}", began.elapsed());
    let mut owner = connect(&cluster.connect_options(DbRole::Owner, DATABASE)).await;
    let note: String = scalar(&mut owner, "SELECT note FROM kept").await;
    assert_eq!(note, "survives restarts");
    owner.close().await.unwrap();
    let mut admin = connect(&cluster.connect_options(DbRole::Superuser, DATABASE)).await;
    let same_id: i64 = scalar(
        &mut admin,
        "SELECT system_identifier FROM pg_control_system()",
    )
    .await;
    assert_eq!(same_id, system_id, "the cluster must not be re-initialised");
    assert_eq!(
        scalar::<String>(&mut admin, "SHOW listen_addresses").await,
        ""
    );
    assert_eq!(
        scalar::<String>(&mut admin, "SHOW password_encryption").await,
        "scram-sha-256"
    );
    let hba_file: String = scalar(&mut admin, "SHOW hba_file").await;
    assert!(hba_file.ends_with("/pg/pg_hba.conf"), "{hba_file}");
    admin.close().await.unwrap();
    let same_secret =
        std::fs::read_to_string(cluster.data_dir().join("secrets").join(APP_ROLE)).unwrap();
    assert_eq!(same_secret, secret);
    cluster.stop().await.unwrap();
}

#[tokio::test]
async fn stale_pid_files_are_removed() {
    let dir = temp_data_dir();
    let cluster = Cluster::start(config(&dir)).await.unwrap();
    let pid_file = cluster.data_dir().join("pg").join("postmaster.pid");
    let pg_dir = cluster.data_dir().join("pg");
    cluster.stop().await.unwrap();
    assert!(!pid_file.exists());

    // A PID that is alive but is not a postmaster (this test process), then a PID that is not
    // running at all (a child that has exited and been reaped).
    let exited = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = exited.id();
    let mut exited = exited;
    exited.wait().unwrap();
    for stale_pid in [std::process::id(), dead_pid] {
        std::fs::write(
            &pid_file,
            format!(
                "{stale_pid}\n{}\n1700000000\n5432\n/nonexistent\n\n  5432001    12345\nready   \n",
                pg_dir.display()
            ),
        )
        .unwrap();
        let cluster = Cluster::start(config(&dir)).await.unwrap();
        assert_ne!(cluster.postmaster_pid(), stale_pid);
        let mut app = connect(&cluster.connect_options(DbRole::Runtime, DATABASE)).await;
        assert_eq!(scalar::<i32>(&mut app, "SELECT 1").await, 1);
        app.close().await.unwrap();
        cluster.stop().await.unwrap();
    }
}

/// Runs this test binary's `helper_process` in `mode` on `data_dir`; returns the child and
/// the postmaster pid it reported.
async fn run_helper(mode: &str, data_dir: &Path) -> (tokio::process::Child, u32) {
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_MODE_ENV, mode)
        .env(HELPER_DIR_ENV, data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // libtest prints `test helper_process ... ` before the test's own output, on the same line.
    let reported = async move {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some((_, pid)) = line.split_once(HELPER_READY) {
                let pid: u32 = pid.split_whitespace().next().unwrap().parse().unwrap();
                return Some((pid, lines));
            }
        }
        None
    };
    // A bound so a broken helper fails the test instead of hanging it (not synchronisation:
    // the helper's own output is what we wait for).
    match tokio::time::timeout(std::time::Duration::from_secs(120), reported).await {
        Ok(Some((pid, mut lines))) => {
            // Keep reading, so the helper can finish writing its test report.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            (child, pid)
        }
        Ok(None) => panic!(
            "the helper exited without reporting a cluster: {:?}",
            child.wait().await
        ),
        Err(elapsed) => panic!("the helper did not report a cluster: {elapsed}"),
    }
}

/// Not a test: the second process of `orphaned_postmaster_is_replaced` and
/// `shared_cluster_outlives_its_process`.
#[tokio::test]
#[ignore = "helper process, run by other tests"]
async fn helper_process() {
    let (Ok(mode), Some(dir)) = (
        std::env::var(HELPER_MODE_ENV),
        std::env::var_os(HELPER_DIR_ENV),
    ) else {
        return;
    };
    let cfg = ClusterConfig::new(PathBuf::from(dir));
    match mode.as_str() {
        "owned" => {
            let cluster = Cluster::start(cfg).await.unwrap();
            println!("{HELPER_READY}{}", cluster.postmaster_pid());
            // Wait to be killed with SIGKILL, holding the cluster.
            std::future::pending::<()>().await;
            drop(cluster);
        }
        "shared" => {
            let cluster = Cluster::attach_or_start_shared(cfg).await.unwrap();
            println!("{HELPER_READY}{}", cluster.postmaster_pid());
        }
        other => panic!("unknown helper mode {other}"),
    }
}

#[tokio::test]
async fn orphaned_postmaster_is_replaced() {
    // A Chartroom that dies by SIGKILL leaves its postmaster running (it has its own process
    // group); the next start must shut that one down and supervise a fresh one.
    let dir = temp_data_dir();
    let _cleanup = StopOnDrop(dir.path().join("data"));
    let (mut helper, orphan) = run_helper("owned", &dir.path().join("data")).await;
    helper.kill().await.unwrap();
    assert!(
        is_running(orphan),
        "the postmaster should outlive a SIGKILLed Chartroom"
    );

    let cluster = Cluster::start(config(&dir)).await.unwrap();
    assert_ne!(cluster.postmaster_pid(), orphan);
    assert!(!is_running(orphan), "the orphaned postmaster must be gone");
    let mut app = connect(&cluster.connect_options(DbRole::Runtime, DATABASE)).await;
    assert_eq!(scalar::<i32>(&mut app, "SELECT 1").await, 1);
    app.close().await.unwrap();
    cluster.stop().await.unwrap();
}

#[tokio::test]
async fn a_data_directory_is_served_by_one_process_at_a_time() {
    let dir = temp_data_dir();
    let cluster = Cluster::start(config(&dir)).await.unwrap();
    let error = Cluster::start(config(&dir)).await.unwrap_err();
    assert!(matches!(error, EmbeddedError::Busy { .. }), "{error}");
    let error = Cluster::attach_or_start_shared(config(&dir))
        .await
        .unwrap_err();
    assert!(matches!(error, EmbeddedError::Busy { .. }), "{error}");
    // The first cluster is untouched.
    let mut app = connect(&cluster.connect_options(DbRole::Runtime, DATABASE)).await;
    assert_eq!(scalar::<i32>(&mut app, "SELECT 1").await, 1);
    app.close().await.unwrap();
    cluster.stop().await.unwrap();
}

#[tokio::test]
async fn exited_reports_a_postmaster_that_dies() {
    let dir = temp_data_dir();
    let mut cluster = Cluster::start(config(&dir)).await.unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(cluster.postmaster_pid()).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = cluster.exited().await.unwrap();
    assert!(!status.success());
    cluster.stop().await.unwrap();
    // Crash recovery on the next start.
    let cluster = Cluster::start(config(&dir)).await.unwrap();
    cluster.stop().await.unwrap();
}

#[tokio::test]
async fn shared_clusters_are_attached_to_and_stopped() {
    let dir = temp_data_dir();
    let _cleanup = StopOnDrop(dir.path().join("data"));
    let (first, second) = tokio::join!(
        Cluster::attach_or_start_shared(config(&dir)),
        Cluster::attach_or_start_shared(config(&dir)),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(!first.is_owner() && !second.is_owner());
    assert_eq!(first.postmaster_pid(), second.postmaster_pid());
    let pid = first.postmaster_pid();

    // Both see the same cluster.
    let mut a = connect(&first.connect_options(DbRole::Owner, DATABASE)).await;
    sqlx::raw_sql("CREATE TABLE shared_marker (id int)")
        .execute(&mut a)
        .await
        .unwrap();
    a.close().await.unwrap();
    let mut b = connect(&second.connect_options(DbRole::Owner, DATABASE)).await;
    assert_eq!(
        scalar::<i64>(&mut b, "SELECT count(*) FROM shared_marker").await,
        0
    );
    b.close().await.unwrap();

    // Stopping a shared handle leaves the cluster running.
    first.stop().await.unwrap();
    drop(second);
    assert!(is_running(pid));
    let third = Cluster::attach_or_start_shared(config(&dir)).await.unwrap();
    assert_eq!(third.postmaster_pid(), pid);

    let data_dir = dir.path().join("data");
    assert!(stop_shared(&data_dir).await.unwrap());
    assert!(!is_running(pid));
    assert!(
        PgConnection::connect_with(&third.connect_options(DbRole::Owner, DATABASE))
            .await
            .is_err()
    );
    assert!(
        !stop_shared(&data_dir).await.unwrap(),
        "nothing left to stop"
    );
}

#[tokio::test]
async fn shared_cluster_outlives_its_process() {
    let dir = temp_data_dir();
    let data_dir = dir.path().join("data");
    let _cleanup = StopOnDrop(data_dir.clone());
    let (mut helper, pid) = run_helper("shared", &data_dir).await;
    assert!(helper.wait().await.unwrap().success());
    assert!(
        is_running(pid),
        "the shared postmaster must outlive the process that started it"
    );

    let mut attached = Cluster::attach_or_start_shared(ClusterConfig::new(&data_dir))
        .await
        .unwrap();
    assert_eq!(attached.postmaster_pid(), pid);
    let mut app = connect(&attached.connect_options(DbRole::Runtime, DATABASE)).await;
    assert_eq!(scalar::<i32>(&mut app, "SELECT 1").await, 1);
    app.close().await.unwrap();

    assert!(stop_shared(&data_dir).await.unwrap());
    let error = attached.exited().await.unwrap_err();
    assert!(
        matches!(error, EmbeddedError::SharedClusterExited { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn secure_database_locks_down_extra_databases() {
    let dir = temp_data_dir();
    let cluster = Cluster::start(config(&dir)).await.unwrap();
    let mut admin = connect(&cluster.connect_options(DbRole::Superuser, DATABASE)).await;
    sqlx::raw_sql("CREATE DATABASE extra OWNER chartroom_owner")
        .execute(&mut admin)
        .await
        .unwrap();
    let error = secure_database(&mut admin, "extra").await.unwrap_err();
    assert!(
        matches!(error, EmbeddedError::WrongDatabase { .. }),
        "{error}"
    );
    admin.close().await.unwrap();

    let mut admin = connect(&cluster.connect_options(DbRole::Superuser, "extra")).await;
    secure_database(&mut admin, "extra").await.unwrap();
    secure_database(&mut admin, "extra").await.unwrap(); // idempotent
    admin.close().await.unwrap();

    let mut app = connect(&cluster.connect_options(DbRole::Runtime, "extra")).await;
    assert!(!scalar::<bool>(&mut app, "SELECT has_schema_privilege('public', 'CREATE')").await);
    assert!(scalar::<bool>(&mut app, "SELECT has_schema_privilege('public', 'USAGE')").await);
    app.close().await.unwrap();
    let mut owner = connect(&cluster.connect_options(DbRole::Owner, "extra")).await;
    sqlx::raw_sql("CREATE TABLE owner_can_create (id int)")
        .execute(&mut owner)
        .await
        .unwrap();
    owner.close().await.unwrap();
    cluster.stop().await.unwrap();
}

#[test]
fn missing_binaries_give_one_line_telling_how_to_install_them() {
    let empty = tempfile::tempdir().unwrap();
    let error = find_pg_bin_dir(Some(empty.path())).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, EmbeddedError::BinariesNotFound { .. }));
    assert!(!message.contains('\n'), "{message}");
    assert!(
        message.starts_with("PostgreSQL server binaries not found (initdb, postgres)"),
        "{message}"
    );
    assert!(message.contains("apt-get install postgresql"), "{message}");
    assert!(message.contains("CHARTROOM_PG_BIN_DIR"), "{message}");
    assert!(
        message.contains(&empty.path().display().to_string()),
        "{message}"
    );
}

#[test]
fn handles_can_move_between_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Cluster>();
    assert_send_sync::<EmbeddedError>();
}

#[test]
fn installed_binaries_are_found() {
    let dir = find_pg_bin_dir(None).unwrap();
    assert!(
        dir.join("initdb").is_file() && dir.join("postgres").is_file(),
        "{}",
        dir.display()
    );
}

#[tokio::test]
async fn unreachable_data_directory_is_refused_up_front_when_root() {
    if !nix::unistd::geteuid().is_root() {
        return; // Only root switches to the postgres user.
    }
    let dir = temp_data_dir(); // 0700, owned by root: postgres cannot enter it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let error = Cluster::start(ClusterConfig::new(dir.path().join("nested").join("data")))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, EmbeddedError::NotTraversable { .. }),
        "{message}"
    );
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("--data-dir /var/lib/chartroom"),
        "{message}"
    );
    assert!(!dir.path().join("nested").join("data").join("pg").exists());
}

#[tokio::test]
async fn missing_run_as_user_is_a_clear_error_when_root() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let dir = temp_data_dir();
    let mut cfg = config(&dir);
    cfg.run_as = Some("chartroom-no-such-user".to_owned());
    let error = Cluster::start(cfg).await.unwrap_err();
    assert!(
        matches!(error, EmbeddedError::RunAsUserMissing { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("chartroom-no-such-user"));
}
