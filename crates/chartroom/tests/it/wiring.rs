//! Issue 15.6, through the real binary: the request timeout layer (`--request-timeout-secs`).
//! A database superuser holds a patient's row lock, so a real route — updating that patient —
//! waits on the database; the server gives up after the timeout with the standard JSON error
//! body, nothing is saved, and the same request succeeds once the lock is gone.

use std::path::Path;

use pgcluster::{Cluster, ClusterConfig, DATABASE, DbRole};
use serde_json::json;
use sqlx::{Connection as _, Executor as _, PgConnection};
use tokio::process::Command;

use crate::backup::{demo_login, practice_of};
use crate::embedded_binary::{client_for, launch, sign_in, stop};
use crate::util::get_json;

// issue 15.6 — a request that waits on the database past the request timeout is answered 503
// `TIMEOUT` with the standard error body, and its change is rolled back.
#[tokio::test]
async fn a_request_held_by_a_row_lock_times_out_with_the_standard_error_body() {
    let dir = Path::new("/tmp").join(format!(
        "chartroom-it-wiring-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chartroom"));
    cmd.arg("--data-dir")
        .arg(&dir)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--request-timeout-secs",
            "1",
        ])
        .env("RUST_LOG", "warn");
    let server = launch(cmd).await;
    let base = server.base.clone();
    let http = client_for(&dir);

    // Reception of the first demo practice, and one of its patients.
    let mut reception = demo_login(&dir, "reception@harbor.demo.invalid");
    let token = sign_in(&http, &base, &reception.login, &mut reception.totp).await;
    let practice = practice_of(&http, &base, &token).await;
    let patients = get_json(
        &http,
        &format!("{base}/api/v1/practices/{practice}/patients"),
        &token,
    )
    .await;
    let patient = patients["items"][0]["patient_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("{base}/api/v1/practices/{practice}/patients/{patient}");
    let read_family_name = async || -> String {
        let got = get_json(&http, &url, &token).await;
        got["family_name"].as_str().unwrap().to_owned()
    };
    let rename = async || {
        http.patch(&url)
            .bearer_auth(&token)
            .json(&json!({"family_name": "Heldbylock"}))
            .send()
            .await
            .unwrap()
    };
    let before = read_family_name().await;

    // A superuser, on the cluster the server supervises, takes the patient's row lock.
    let cluster = Cluster::start_or_attach(ClusterConfig::new(&dir))
        .await
        .unwrap();
    let mut su = PgConnection::connect_with(&cluster.connect_options(DbRole::Superuser, DATABASE))
        .await
        .unwrap();
    su.execute("begin").await.unwrap();
    sqlx::query("select 1 from patient where patient_id = $1::uuid for update")
        .bind(&patient)
        .execute(&mut su)
        .await
        .unwrap();

    let res = rename().await;
    assert_eq!(res.status(), 503);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    let error = body["error"].as_object().unwrap();
    assert_eq!(
        error.keys().map(String::as_str).collect::<Vec<_>>(),
        ["code", "message", "request_id"],
        "{body}"
    );
    assert_eq!(error["code"], "TIMEOUT");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("time limit (1 s)"),
        "{body}"
    );
    assert_eq!(error["request_id"], request_id.as_str());

    // The lock goes; the abandoned change was not saved, and the same request now succeeds.
    su.execute("rollback").await.unwrap();
    su.close().await.unwrap();
    cluster.stop().await.unwrap();
    assert_eq!(read_family_name().await, before);
    assert_eq!(rename().await.status(), 200);
    assert_eq!(read_family_name().await, "Heldbylock");

    stop(server).await;
    let _ = std::fs::remove_dir_all(&dir);
}
