//! The audit log forwarded to a separate sink (req AUD-08), through the real binary:
//! `chartroom serve --audit-sink` sends every sequenced audit event, in log order, to an
//! OTLP/HTTP logs endpoint (here a test collector on loopback); the sink is killed, writes
//! still succeed, and once a collector listens on the same address again every event queued
//! meanwhile arrives — the sink ends up with each practice's log from its first position,
//! without a gap, event for event as the database holds it. A sink that is not the operator's
//! own refuses the start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::post;
use pgcluster::{Cluster, ClusterConfig, DATABASE, DbRole};
use serde_json::{Value, json};
use sqlx::{Connection as _, PgConnection};
use tokio::process::Command;
use tokio::sync::Notify;

use crate::backup::{chartroom, demo_login, practice_of};
use crate::embedded_binary::{Running, client_for, launch, sign_in, stop};
use crate::outbox_serve::{Scratch, demo_data, temp_dir};

/// One forwarded event as received: its event id, action and request id.
type Forwarded = (String, String, Option<String>);

/// What the collector received: per practice, position → the event; and every body, to look
/// for what must not be there.
#[derive(Default)]
struct Received {
    events: BTreeMap<String, BTreeMap<u64, Forwarded>>,
    bodies: Vec<String>,
}

#[derive(Clone)]
struct Collector {
    received: Arc<Mutex<Received>>,
    arrived: Arc<Notify>,
}

/// A test OpenTelemetry collector's logs endpoint (`POST /v1/logs`, OTLP JSON). It closes
/// every connection after its reply, so aborting its task leaves nothing listening.
struct Sink {
    addr: SocketAddr,
    collector: Collector,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn attr<'v>(record: &'v Value, key: &str) -> Option<&'v Value> {
    record["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

async fn logs(State(c): State<Collector>, body: String) -> impl IntoResponse {
    let v: Value = serde_json::from_str(&body).expect("OTLP JSON");
    {
        let mut r = c.received.lock().unwrap();
        for rl in v["resourceLogs"].as_array().unwrap() {
            assert_eq!(
                attr(&rl["resource"], "service.name").unwrap()["stringValue"],
                "chartroom"
            );
            for sl in rl["scopeLogs"].as_array().unwrap() {
                for rec in sl["logRecords"].as_array().unwrap() {
                    let s = |k: &str| {
                        attr(rec, k).map(|v| v["stringValue"].as_str().unwrap().to_owned())
                    };
                    let practice = s("chartroom.practice_id").unwrap();
                    let seq: u64 = attr(rec, "chartroom.audit.seq").unwrap()["intValue"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    let entry = (
                        s("chartroom.audit.event_id").unwrap(),
                        rec["body"]["stringValue"].as_str().unwrap().to_owned(),
                        s("chartroom.audit.request_id"),
                    );
                    // At least once: a repeat must be the same event.
                    let prev = r
                        .events
                        .entry(practice)
                        .or_default()
                        .insert(seq, entry.clone());
                    assert!(
                        prev.is_none_or(|p| p == entry),
                        "position {seq} sent as two events"
                    );
                }
            }
        }
        r.bodies.push(body);
    }
    c.arrived.notify_waiters();
    (
        [(header::CONNECTION, HeaderValue::from_static("close"))],
        axum::Json(json!({})),
    )
}

impl Sink {
    async fn start(at: &str, collector: Collector) -> Self {
        let listener = tokio::net::TcpListener::bind(at)
            .await
            .expect("bind the sink");
        let addr = listener.local_addr().unwrap();
        let router = Router::new()
            .route("/v1/logs", post(logs))
            .with_state(collector.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            addr,
            collector,
            task,
        }
    }

    /// Waits (up to `limit`) until `done` holds for what arrived, woken by each arrival.
    async fn wait_until(&self, limit: Duration, done: impl Fn(&Received) -> bool) {
        tokio::time::timeout(limit, async {
            loop {
                let arrived = self.collector.arrived.notified();
                if done(&self.collector.received.lock().unwrap()) {
                    return;
                }
                arrived.await;
            }
        })
        .await
        .expect("the sink received what was expected in time");
    }
}

fn serve(data: &std::path::Path, sink: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chartroom"));
    cmd.arg("--data-dir")
        .arg(data)
        .args(["serve", "--listen", "127.0.0.1:0", "--audit-sink", sink])
        .env("RUST_LOG", "warn");
    cmd
}

/// Creates a patient; its request id.
async fn new_patient(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    practice: &str,
    family: &str,
) -> String {
    let res = http
        .post(format!("{base}/api/v1/practices/{practice}/patients"))
        .bearer_auth(token)
        .json(&json!({ "given_name": "Sinkprobe", "family_name": family }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        201,
        "a write must succeed whatever the sink does"
    );
    res.headers()["x-request-id"].to_str().unwrap().to_owned()
}

fn has_requests(r: &Received, practice: &str, requests: &[String]) -> bool {
    r.events.get(practice).is_some_and(|log| {
        requests.iter().all(|q| {
            log.values()
                .any(|(_, action, rq)| action == "patient.create" && rq.as_deref() == Some(q))
        })
    })
}

// req: AUD-08
#[tokio::test]
async fn the_audit_log_reaches_the_sink_and_waits_in_the_log_while_the_sink_is_down() {
    let scratch = Scratch(temp_dir("audit-forward"));
    let dir = scratch.0.clone();
    let data = demo_data(&dir).await;
    let collector = Collector {
        received: Arc::default(),
        arrived: Arc::new(Notify::new()),
    };
    let sink = Sink::start("127.0.0.1:0", collector.clone()).await;
    let addr = sink.addr;
    let server: Running = launch(serve(&data, &format!("http://{addr}/v1/logs"))).await;
    let base = server.base.clone();
    let http = client_for(&data);
    let mut owner = demo_login(&data, "owner@harbor.demo.invalid");
    let token = sign_in(&http, &base, &owner.login, &mut owner.totp).await;
    let practice = practice_of(&http, &base, &token).await;

    // Up: the events of the writes arrive.
    let mut first = Vec::new();
    for i in 0..3 {
        first.push(new_patient(&http, &base, &token, &practice, &format!("Ashgrove {i}")).await);
    }
    sink.wait_until(Duration::from_secs(60), |r| {
        has_requests(r, &practice, &first)
    })
    .await;

    // Down: nothing listens at the sink's address; writes still succeed at once.
    drop(sink);
    let mut during = Vec::new();
    for i in 0..5 {
        during.push(new_patient(&http, &base, &token, &practice, &format!("Blackmere {i}")).await);
    }
    assert!(
        !has_requests(&collector.received.lock().unwrap(), &practice, &during),
        "nothing can have arrived while the sink was down"
    );

    // Back at the same address: what was queued meanwhile arrives.
    let sink = Sink::start(&addr.to_string(), collector.clone()).await;
    sink.wait_until(Duration::from_secs(120), |r| {
        has_requests(r, &practice, &during)
    })
    .await;

    // The sink holds each practice's log from position 0 without a gap, event for event (the
    // running server's cluster, attached).
    let cluster = Cluster::start_or_attach(ClusterConfig::new(&data))
        .await
        .unwrap();
    let mut su = PgConnection::connect_with(&cluster.connect_options(DbRole::Superuser, DATABASE))
        .await
        .unwrap();
    let received: Received = std::mem::take(&mut *collector.received.lock().unwrap());
    assert!(received.events.contains_key(&practice));
    for (p, log) in &received.events {
        let rows: Vec<(i64, uuid::Uuid, String)> = sqlx::query_as(
            "select s.seq, s.event_id, e.action from audit_sequence s
               join audit_event e using (practice_id, event_id)
              where s.practice_id = $1::uuid and s.seq <= $2 order by s.seq",
        )
        .bind(p)
        .bind(i64::try_from(*log.keys().last().unwrap()).unwrap())
        .fetch_all(&mut su)
        .await
        .unwrap();
        let expected: Vec<(u64, String, String)> = rows
            .into_iter()
            .map(|(s, e, a)| (u64::try_from(s).unwrap(), e.to_string(), a))
            .collect();
        let got: Vec<(u64, String, String)> = log
            .iter()
            .map(|(s, (e, a, _))| (*s, e.clone(), a.clone()))
            .collect();
        assert_eq!(
            got, expected,
            "practice {p}: the sink's copy differs from the log"
        );
    }
    // Ids and names only: no patient name, no token.
    for body in &received.bodies {
        for word in ["Sinkprobe", "Ashgrove", "Blackmere", &token] {
            assert!(!body.contains(word), "a forwarded body holds {word}");
        }
    }
    su.close().await.unwrap();
    cluster.stop().await.unwrap();
    stop(server).await;
    let (ok, out, err) = chartroom(&data, &["audit", "verify"]).await;
    assert!(ok, "audit verify: {out} {err}");
    drop(sink);
    let _ = std::fs::remove_dir_all(&dir);
}

// A sink that is not the operator's own (a vendor's host, http off loopback) refuses the start
// with a clear error, before anything is sent.
#[tokio::test]
async fn serve_refuses_a_sink_that_is_not_the_operators_own() {
    let scratch = Scratch(temp_dir("audit-forward-refused"));
    let data = scratch.0.join("data");
    for sink in [
        "https://logs.vendor.example/v1/logs",
        "http://logs.clinic.internal/v1/logs",
    ] {
        let out = serve(&data, sink).output().await.unwrap();
        assert!(!out.status.success(), "{sink}: serve must refuse to start");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("--audit-sink"), "{sink}: {text}");
        assert!(text.contains("operator's own host"), "{sink}: {text}");
    }
}
