//! Issue 15.6, through the real binary: the request timeout layer (`--request-timeout-secs`).
//! A database superuser holds a patient's row lock, so a real route — updating that patient —
//! waits on the database; the server gives up after the timeout with the standard JSON error
//! body, nothing is saved, and the same request succeeds once the lock is gone.

use std::path::Path;

use serde_json::json;
use sqlx::{Connection as _, Executor as _, PgConnection};
use store::embedded::{Cluster, ClusterConfig, DATABASE, DbRole};
use tokio::process::Command;

use crate::embedded_binary::{client_for, launch, sign_in, stop};

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
    let creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("demo-credentials.json")).unwrap()).unwrap();
    let reception = creds
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == "reception@harbor.demo.invalid")
        .unwrap();
    let login = json!({"email": reception["email"], "password": reception["password"]});
    let token = sign_in(&http, &base, &login, &mut None).await;
    let me: serde_json::Value = http
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let practice = me["practices"][0]["practice_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patients: serde_json::Value = http
        .get(format!("{base}/api/v1/practices/{practice}/patients"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let patient = patients["items"][0]["patient_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("{base}/api/v1/practices/{practice}/patients/{patient}");
    let read_family_name = async || -> String {
        let got: serde_json::Value = http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        got["family_name"].as_str().unwrap().to_owned()
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

    let res = http
        .patch(&url)
        .bearer_auth(&token)
        .json(&json!({"family_name": "Heldbylock"}))
        .send()
        .await
        .unwrap();
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
    let res = http
        .patch(&url)
        .bearer_auth(&token)
        .json(&json!({"family_name": "Heldbylock"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(read_family_name().await, "Heldbylock");

    stop(server).await;
    let _ = std::fs::remove_dir_all(&dir);
}
