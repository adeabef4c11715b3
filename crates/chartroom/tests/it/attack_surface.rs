//! The attack surface: TRACE and methods a route does not serve are refused, nothing echoes a
//! request, no debug route or version banner exists, an internal error says only "internal
//! error" and the request id, and the real binary listens on exactly the configured socket.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use testkit::{TestApp, TestDb, World};

const CANARY: &str = "trace-canary-Hq3";

/// The response headers that would announce software or versions.
const BANNERS: &[&str] = &[
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "via",
    "x-runtime",
];

fn no_banner(res: &reqwest::Response, what: &str) {
    for h in BANNERS {
        assert!(res.headers().get(*h).is_none(), "{what}: `{h}` header");
    }
}

// req: OPS-03 — TRACE, TRACK, CONNECT-like and unknown methods on every served path → 405
// without echoing the request; no debug or status routes; no version banner in any header or
// error body.
#[tokio::test]
async fn trace_and_unknown_methods_are_refused_and_nothing_is_announced() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let token = app.token(w.a.user("owner")).await;
    let doc = serde_json::to_value(server::openapi()).unwrap();
    let mut paths: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|p| {
            p.replace("{practice_id}", &w.a.id.to_string())
                .replace("{patient_id}", &w.a.patient.to_string())
                .replace("{user_id}", &w.a.user("owner").to_string())
        })
        .filter(|p| !p.contains('{'))
        .collect();
    paths.extend(
        [
            "/healthz",
            "/.well-known/security.txt",
            "/.well-known/subprocessors.json",
            "/trust.json",
            "/app",
            "/app/sign-in",
        ]
        .map(String::from),
    );
    assert!(paths.len() > 40, "{}", paths.len());
    let methods = ["TRACE", "TRACK", "DEBUG", "PROPFIND", "FOO"];
    for path in &paths {
        for m in methods {
            let res = app
                .http
                .request(Method::from_bytes(m.as_bytes()).unwrap(), app.url(path))
                .bearer_auth(&token)
                .header("x-canary", CANARY)
                .send()
                .await
                .unwrap();
            let status = res.status();
            no_banner(&res, path);
            let body = res.text().await.unwrap();
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}: {body}");
            assert!(!body.contains(CANARY), "{m} {path} echoes the request");
        }
    }
    // An unknown path answers 404 to any method, without echoing either.
    for m in ["GET", "TRACE", "FOO"] {
        let res = app
            .http
            .request(
                Method::from_bytes(m.as_bytes()).unwrap(),
                app.url("/api/v1/nothing-here"),
            )
            .header("x-canary", CANARY)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{m}");
        assert!(!res.text().await.unwrap().contains(CANARY));
    }
    // No debug, status or metrics route, and no framework default page.
    for p in [
        "/debug",
        "/debug/pprof",
        "/debug/vars",
        "/metrics",
        "/status",
        "/server-status",
        "/server-info",
        "/actuator",
        "/actuator/env",
        "/admin",
        "/console",
        "/.env",
        "/.git/config",
        "/api/v1/debug",
        "/api/v1/internal",
        "/swagger-ui",
        "/phpinfo.php",
    ] {
        let res = app
            .http
            .get(app.url(p))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{p}");
        no_banner(&res, p);
    }
    // No version anywhere in what a client sees first.
    let version = env!("CARGO_PKG_VERSION");
    for p in ["/healthz", "/api/v1/nothing-here", "/app/sign-in"] {
        let res = app.http.get(app.url(p)).send().await.unwrap();
        no_banner(&res, p);
        let text = res.text().await.unwrap();
        assert!(!text.contains(&format!("chartroom {version}")), "{p}");
        assert!(
            !text.to_lowercase().contains("axum") && !text.to_lowercase().contains("hyper"),
            "{p}"
        );
    }
}

// req: OPS-03 — a forced internal error (the server's keyring is missing, so every encrypted
// field fails to open) answers 500 with the generic body: "internal error", the stable code and
// the request id (also in `x-request-id`), and nothing of the cause, a stack or a version.
#[tokio::test]
async fn an_internal_error_says_only_internal_error_and_the_request_id() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let broken = store::Store::connect_runtime(db.runtime_options().await, 4)
        .await
        .unwrap();
    let app = TestApp::start_with(broken).await;
    let token = app.token(w.a.user("reception")).await;
    for path in [
        format!("/api/v1/practices/{}/patients", w.a.id),
        format!("/api/v1/practices/{}/patients/{}", w.a.id, w.a.patient),
    ] {
        let res = app
            .http
            .get(app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        no_banner(&res, &path);
        let header_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        let text = res.text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let keys: BTreeSet<&str> = v["error"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["code", "message", "request_id"]),
            "{text}"
        );
        assert_eq!(v.as_object().unwrap().len(), 1, "{text}");
        assert_eq!(v["error"]["code"], "INTERNAL");
        assert_eq!(v["error"]["message"], "internal error");
        assert_eq!(v["error"]["request_id"], header_id.as_str());
        assert!(uuid::Uuid::parse_str(&header_id).is_ok());
        let lower = text.to_lowercase();
        for leak in [
            "keyring",
            "store",
            "panic",
            "backtrace",
            ".rs",
            "sqlx",
            "postgres",
            env!("CARGO_PKG_VERSION"),
        ] {
            assert!(!lower.contains(leak), "{path}: {leak} in {text}");
        }
    }
}

/// The inodes of the sockets process `pid` holds open.
fn socket_inodes(pid: u32) -> BTreeSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .map(str::to_owned)
        })
        .collect()
}

/// Listening TCP sockets (`/proc/net/tcp{,6}`, state `0A`) among `inodes`: (hex address, port).
fn tcp_listeners(pid: u32, inodes: &BTreeSet<String>) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let (addr, port) = f[1].split_once(':').unwrap();
                out.push((addr.to_owned(), u16::from_str_radix(port, 16).unwrap()));
            }
        }
    }
    out.sort();
    out
}

// req: OPS-03 — the real binary on a fresh data directory, with its embedded PostgreSQL:
// the server process listens on exactly the configured address and nothing else, and the
// database listens on no TCP port at all (a Unix socket inside the data directory).
#[tokio::test]
async fn the_running_server_listens_on_the_configured_socket_only() {
    let dir = Path::new("/tmp").join(format!("chartroom-it-{}", uuid::Uuid::new_v4().simple()));
    let running =
        crate::embedded_binary::start_logging(&dir, "serve", Stdio::inherit(), "warn").await;
    let pid = running.child.id().unwrap();
    let port: u16 = running
        .base
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    assert!(
        running.base.starts_with("https://127.0.0.1:"),
        "{}",
        running.base
    );
    // The address is served (so the listener found below is the configured one).
    let http = crate::embedded_binary::client_for(&dir);
    let res = http
        .get(format!("{}/healthz", running.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let server = tcp_listeners(pid, &socket_inodes(pid));
    // 127.0.0.1 in /proc/net/tcp's little-endian hex.
    assert_eq!(
        server,
        vec![("0100007F".to_owned(), port)],
        "the server's listeners"
    );

    let postmaster: u32 = std::fs::read_to_string(dir.join("pg/postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pg_inodes = socket_inodes_any(postmaster);
    if let Some(inodes) = pg_inodes {
        assert_eq!(
            tcp_listeners(postmaster, &inodes),
            vec![],
            "the embedded database listens on no TCP port"
        );
    }
    // Its command line says so too (whoever runs the cluster): `listen_addresses` is empty.
    let opts = std::fs::read_to_string(dir.join("pg/postmaster.opts")).unwrap();
    assert!(opts.contains("\"listen_addresses=\""), "{opts}");
    crate::embedded_binary::stop(running).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// [`socket_inodes`], or `None` when the process's descriptors are not readable by this user
/// (the cluster runs as `postgres` when the tests run as root).
fn socket_inodes_any(pid: u32) -> Option<BTreeSet<String>> {
    std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(socket_inodes(pid))
}
