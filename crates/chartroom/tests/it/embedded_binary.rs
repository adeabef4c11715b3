//! The embedded default, through the real binary: a fresh data directory, the demo, sign-in
//! over HTTP, a clean stop, a second start that finds the data.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

struct Running {
    child: Child,
    base: String,
}

async fn start(data_dir: &Path, command: &str) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chartroom"))
        .args([
            "--data-dir",
            data_dir.to_str().unwrap(),
            command,
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn chartroom");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("Chartroom listening on ") {
                return rest.trim().to_owned();
            }
        }
        panic!("chartroom exited before listening");
    })
    .await
    .expect("chartroom did not start listening in time");
    // Keep draining stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Running { child, base }
}

async fn stop(mut r: Running) {
    let pid = r.child.id().unwrap();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = tokio::time::timeout(Duration::from_secs(90), r.child.wait())
        .await
        .expect("clean shutdown in time")
        .unwrap();
    assert!(status.success(), "chartroom exited with {status}");
}

#[tokio::test]
async fn demo_runs_on_embedded_postgres_and_survives_a_restart() {
    let dir = Path::new("/tmp").join(format!("chartroom-it-{}", uuid::Uuid::new_v4().simple()));
    let http = reqwest::Client::new();

    let first = start(&dir, "demo").await;
    let creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("demo-credentials.json")).unwrap()).unwrap();
    let reception = creds
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == "reception@harbor.demo.invalid")
        .unwrap();
    let login = json!({"email": reception["email"], "password": reception["password"]});
    let res: serde_json::Value = http
        .post(format!("{}/api/v1/auth/login", first.base))
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = res["token"]
        .as_str()
        .expect("sign-in with the demo user")
        .to_owned();
    let me: serde_json::Value = http
        .get(format!("{}/api/v1/me", first.base))
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
    let created: serde_json::Value = http
        .post(format!(
            "{}/api/v1/practices/{practice}/patients",
            first.base
        ))
        .bearer_auth(&token)
        .json(&json!({"given_name": "Quinn", "family_name": "Lanternfield"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let patient = created["patient_id"].as_str().unwrap().to_owned();
    // Socket only: the cluster has no TCP listener.
    let conf = std::fs::read_to_string(dir.join("pg/postmaster.pid")).unwrap();
    assert!(
        conf.contains(dir.join("run").to_str().unwrap()),
        "socket directory inside the data directory"
    );
    stop(first).await;

    // Second start: `serve` reuses the cluster; the data and the demo accounts are there.
    let second = start(&dir, "serve").await;
    let res: serde_json::Value = http
        .post(format!("{}/api/v1/auth/login", second.base))
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = res["token"]
        .as_str()
        .expect("sign-in after restart")
        .to_owned();
    let got = http
        .get(format!(
            "{}/api/v1/practices/{practice}/patients/{patient}",
            second.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let got: serde_json::Value = got.json().await.unwrap();
    assert_eq!(got["family_name"], "Lanternfield");
    stop(second).await;

    // The audit log of the run verifies through the real CLI against its signed checkpoints.
    for args in [&["audit", "checkpoint"][..], &["audit", "verify"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_chartroom"))
            .arg("--data-dir")
            .arg(&dir)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "chartroom {args:?}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if args[1] == "verify" {
            assert_eq!(
                text.matches("no problems found").count(),
                2,
                "both demo practices verify: {text}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
