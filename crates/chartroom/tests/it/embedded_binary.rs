//! The embedded default, through the real binary: a fresh data directory, the demo, sign-in
//! over HTTP, a clean stop, a second start that finds the data.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) base: String,
    /// What the process printed on standard output before it listened.
    pub(crate) printed: String,
}

pub(crate) async fn start(data_dir: &Path, command: &str) -> Running {
    start_logging(data_dir, command, Stdio::inherit(), "warn").await
}

/// Starts `chartroom <command>` on `data_dir` with its standard error going to `stderr` and
/// the log filter `log`.
pub(crate) async fn start_logging(
    data_dir: &Path,
    command: &str,
    stderr: Stdio,
    log: &str,
) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chartroom"));
    cmd.args([
        "--data-dir",
        data_dir.to_str().unwrap(),
        command,
        "--listen",
        "127.0.0.1:0",
    ])
    .env("RUST_LOG", log)
    .stderr(stderr);
    launch(cmd).await
}

/// Spawns a prepared `chartroom serve`/`demo` command (standard output is taken over) and
/// waits until it listens.
pub(crate) async fn launch(mut cmd: Command) -> Running {
    let mut child = cmd
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn chartroom");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let base = tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("Chartroom listening on ") {
                return rest.trim().to_owned();
            }
            printed.push_str(&line);
            printed.push('\n');
        }
        panic!("chartroom exited before listening: {printed}");
    })
    .await
    .expect("chartroom did not start listening in time");
    // Keep draining stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Running {
        child,
        base,
        printed,
    }
}

pub(crate) async fn stop(mut r: Running) {
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

/// An HTTPS client trusting the self-signed certificate the server generated in `dir`, TLS 1.3.
pub(crate) fn client_for(dir: &Path) -> reqwest::Client {
    let pem = std::fs::read(dir.join("secrets/tls-cert.pem")).expect("generated certificate");
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

/// A TOTP code for a step after `last` (a code is accepted once: RFC 6238 §5.2).
pub(crate) fn next_code(key: &server::identity::totp::TotpKey, last: &mut i64) -> String {
    let now = chrono::Utc::now();
    let step = (now.timestamp() / 30).max(*last + 1);
    *last = step;
    key.code_at(chrono::DateTime::from_timestamp(step * 30, 0).unwrap())
}

/// Password, then TOTP (enrolling it on the first sign-in): a full session token.
pub(crate) async fn sign_in(
    http: &reqwest::Client,
    base: &str,
    login: &serde_json::Value,
    totp: &mut Option<(server::identity::totp::TotpKey, i64)>,
) -> String {
    let res: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = res["token"].as_str().expect("password sign-in").to_owned();
    if let Some((key, last)) = totp.as_mut() {
        assert_eq!(res["next"], "second_factor");
        let code = next_code(key, last);
        let done: serde_json::Value = http
            .post(format!("{base}/api/v1/auth/second-factor/totp"))
            .bearer_auth(&token)
            .json(&json!({ "code": code }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        return done["token"].as_str().expect("second factor").to_owned();
    }
    assert_eq!(res["next"], "enroll_second_factor");
    let enroll: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/mfa/totp"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key =
        server::identity::totp::TotpKey::from_uri(enroll["otpauth_uri"].as_str().unwrap()).unwrap();
    let mut last = 0;
    let code = next_code(&key, &mut last);
    let done: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/mfa/totp/confirm"))
        .bearer_auth(&token)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["recovery_codes"].as_array().unwrap().len(), 10);
    *totp = Some((key, last));
    done["token"].as_str().expect("enrollment").to_owned()
}

// req: TX-01, AU-01 — HTTPS out of the box
#[tokio::test]
async fn demo_runs_on_embedded_postgres_and_survives_a_restart() {
    let dir = Path::new("/tmp").join(format!("chartroom-it-{}", uuid::Uuid::new_v4().simple()));

    let first = start(&dir, "demo").await;
    assert!(first.base.starts_with("https://"), "{}", first.base);
    let http = client_for(&dir);
    let mut totp = None;
    let creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("demo-credentials.json")).unwrap()).unwrap();
    let reception = creds
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == "reception@harbor.demo.invalid")
        .unwrap();
    let login = json!({"email": reception["email"], "password": reception["password"]});
    let token = sign_in(&http, &first.base, &login, &mut totp).await;
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
    let token = sign_in(&http, &second.base, &login, &mut totp).await;
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
    // The same binary serves the web app: anonymous → sign-in; signed in (the session cookie),
    // the patient list with the strict CSP, the patient created above, and the idle timeout
    // the session check enforces (the installation's default, 15 minutes).
    let anonymous = http
        .get(format!("{}/app", second.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.url().path(), "/app/sign-in");
    assert!(anonymous.text().await.unwrap().contains("<h1>Sign in</h1>"));
    let page = http
        .get(format!("{}/app/practices/{practice}/patients", second.base))
        .header(
            reqwest::header::COOKIE,
            format!("{}={token}", server::extract::SESSION_COOKIE),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("require-trusted-types-for 'script'"), "{csp}");
    let body = page.text().await.unwrap();
    assert!(body.contains("Lanternfield"), "{body}");
    assert!(body.contains("data-idle-seconds=\"900\""), "{body}");
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
                3,
                "both demo practices and the installation's security log verify: {text}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// req: TX-01 — a plain listener only with --behind-proxy, and only on loopback.
#[tokio::test]
async fn plain_http_is_refused_off_loopback() {
    let dir = Path::new("/tmp").join(format!("chartroom-it-{}", uuid::Uuid::new_v4().simple()));
    let out = Command::new(env!("CARGO_BIN_EXE_chartroom"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["serve", "--behind-proxy", "--listen", "0.0.0.0:0"])
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
    assert!(!dir.join("pg").exists(), "nothing was started");
    let _ = std::fs::remove_dir_all(&dir);
}
