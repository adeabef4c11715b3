//! Issue 14.8, the first ten minutes, through the real binary on a fresh data directory: the
//! demo prints its passwords once and a sign-in example for the address it really listens on;
//! README's first-run steps, run as they stand, sign in and read a patient; the administrative
//! commands work next to the running server. Issue 14.1 through the binary: a practice whose
//! data cannot be processed is reported and skipped by the start-up job and the commands, and
//! the others go on.

use std::path::{Path, PathBuf};

use pgcluster::{Cluster, ClusterConfig, DATABASE, DbRole};
use tokio::process::Command;

use crate::embedded_binary::{client_for, start, stop};

fn fresh_dir() -> PathBuf {
    Path::new("/tmp").join(format!("chartroom-it-{}", uuid::Uuid::new_v4().simple()))
}

async fn chartroom(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chartroom"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run chartroom");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The README's first-run block, as written there.
fn readme_first_run() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let marker = readme
        .find("<!-- first-run")
        .expect("README has the first-run block");
    let rest = &readme[marker..];
    let open = rest.find("```sh\n").unwrap() + "```sh\n".len();
    let close = rest[open..].find("```").unwrap();
    rest[open..open + close].to_owned()
}

fn passwords(dir: &Path) -> Vec<String> {
    let creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("demo-credentials.json")).unwrap()).unwrap();
    creds
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["password"].as_str().unwrap().to_owned())
        .collect()
}

// issue 14.8
#[tokio::test]
async fn first_run_signs_in_reads_a_patient_and_admin_commands_work_beside_the_server() {
    let dir = fresh_dir();
    let first = start(&dir, "demo").await;
    let pw = passwords(&dir);
    assert_eq!(pw.len(), 8);
    for p in &pw {
        assert!(
            first.printed.contains(p.as_str()),
            "first start shows every password once"
        );
    }
    assert!(
        first
            .printed
            .contains(&format!("{}/api/v1/auth/login", first.base)),
        "the example names the address served: {}",
        first.printed
    );
    assert!(!first.printed.contains(":8443"), "{}", first.printed);
    assert!(
        first.printed.contains("owner,clinician"),
        "{}",
        first.printed
    );

    // README's steps, verbatim but for the data directory and the address.
    let script = readme_first_run()
        .replace("D=chartroom-data;", &format!("D={};", dir.display()))
        .replace("https://127.0.0.1:8443", &first.base);
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .output()
        .await
        .expect("bash");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "README first run: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let patient: serde_json::Value = serde_json::from_str(&text).expect("a patient as JSON");
    assert!(patient["patient_id"].is_string(), "{patient}");
    assert!(
        patient["family_name"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        "{patient}"
    );

    // The administrative commands, next to the running server on its embedded cluster.
    let (ok, listed, err) = chartroom(&dir, &["practice", "list"]).await;
    assert!(ok, "{listed} {err}");
    assert_eq!(listed.matches("[demo]").count(), 2, "{listed}");
    let (ok, verified, err) = chartroom(&dir, &["audit", "verify"]).await;
    assert!(ok, "{verified} {err}");
    let (ok, notes, err) = chartroom(&dir, &["notes", "verify"]).await;
    assert!(ok, "{notes} {err}");
    assert_eq!(notes.matches("no problems found").count(), 2, "{notes}");
    let archive = dir.join("first-run.crbk");
    let (ok, out, err) = chartroom(
        &dir,
        &["backup", "create", "--out", archive.to_str().unwrap()],
    )
    .await;
    assert!(ok, "{out} {err}");
    assert!(archive.exists());
    // Key changes wait for the server to stop (it holds unwrapped data keys).
    let (ok, out, err) = chartroom(&dir, &["keys", "rotate-kek"]).await;
    assert!(!ok, "{out}");
    assert!(err.contains("stop it first"), "{err}");
    // The server kept serving through all of it.
    let http = client_for(&dir);
    let health = http
        .get(format!("{}/healthz", first.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    stop(first).await;

    // A later start prints where the passwords are, never the passwords.
    let second = start(&dir, "demo").await;
    for p in &pw {
        assert!(!second.printed.contains(p.as_str()), "{}", second.printed);
    }
    assert!(
        second.printed.contains("demo-credentials.json"),
        "{}",
        second.printed
    );
    assert!(second.printed.contains(&second.base), "{}", second.printed);
    stop(second).await;
    let _ = std::fs::remove_dir_all(&dir);
}

// issue 14.1 — one practice that cannot be processed stops neither the server nor a command
// for the others.
#[tokio::test]
async fn a_practice_whose_data_cannot_be_processed_is_skipped_and_the_rest_go_on() {
    let dir = fresh_dir();
    let demo = start(&dir, "demo").await;
    stop(demo).await;

    // As a superuser of the embedded cluster: a plaintext row in each practice (as written
    // before encryption at rest), and practice A's wrapped data key damaged.
    let cluster = Cluster::start(ClusterConfig::new(dir.clone()))
        .await
        .unwrap();
    let mut su: sqlx::PgConnection =
        sqlx::Connection::connect_with(&cluster.connect_options(DbRole::Superuser, DATABASE))
            .await
            .unwrap();
    let practices: Vec<(uuid::Uuid,)> =
        sqlx::query_as("select practice_id from practice where demo order by name")
            .fetch_all(&mut su)
            .await
            .unwrap();
    let (a, b) = (practices[0].0, practices[1].0);
    let mut legacy = Vec::new();
    for p in [a, b] {
        let id = uuid::Uuid::new_v4();
        sqlx::query(
            "insert into patient (practice_id, patient_id, given_name, family_name, created_at, updated_at)
             values ($1, $2, 'Lega', 'Cyplaintext', now(), now())",
        )
        .bind(p)
        .bind(id)
        .execute(&mut su)
        .await
        .unwrap();
        legacy.push(id);
    }
    sqlx::query(
        "update practice_data_key set wrapped = set_byte(wrapped, 12, get_byte(wrapped, 12) # 1)
          where practice_id = $1",
    )
    .bind(a)
    .execute(&mut su)
    .await
    .unwrap();
    drop(su);
    cluster.stop().await.unwrap();

    // The start-up job reports A and encrypts B; the server serves.
    let served = crate::embedded_binary::start_logging(
        &dir,
        "serve",
        std::process::Stdio::inherit(),
        "warn",
    )
    .await;
    stop(served).await;
    let plaintext = async |id: uuid::Uuid| -> bool {
        let cluster = Cluster::start(ClusterConfig::new(dir.clone()))
            .await
            .unwrap();
        let mut su: sqlx::PgConnection =
            sqlx::Connection::connect_with(&cluster.connect_options(DbRole::Superuser, DATABASE))
                .await
                .unwrap();
        let (name,): (Option<String>,) =
            sqlx::query_as("select family_name from patient where patient_id = $1")
                .bind(id)
                .fetch_one(&mut su)
                .await
                .unwrap();
        drop(su);
        cluster.stop().await.unwrap();
        name.is_some()
    };
    assert!(plaintext(legacy[0]).await, "A could not be encrypted");
    assert!(!plaintext(legacy[1]).await, "B was encrypted at start-up");

    // Commands: A is reported and the exit says so; B is processed.
    let (ok, out, err) = chartroom(&dir, &["keys", "encrypt-existing"]).await;
    assert!(!ok, "{out}");
    assert!(err.contains(&format!("practice {a}")), "{err}");
    // The commands that do not need A's key process A and B alike.
    for args in [
        &["notes", "verify"][..],
        &["practice", "list"][..],
        &["audit", "verify"][..],
        &["retention", "run"][..],
    ] {
        let (ok, out, err) = chartroom(&dir, args).await;
        assert!(ok, "chartroom {args:?}: {out} {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
