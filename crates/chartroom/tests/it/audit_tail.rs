//! Issue 14.2, the tail of the audit log, through the real binary on its embedded cluster: a
//! database superuser with triggers off (`session_replication_role = replica`) cuts the
//! newest events — alone, or with their sequence rows and tree nodes, or below the last signed
//! checkpoint — and `chartroom audit verify`, `chartroom audit checkpoint` and the next
//! `chartroom serve` must notice; a clean shutdown must leave every event under a signed
//! checkpoint; and the checkpoints' mirrors must outlive a rewritten checkpoint directory.
//!
//! The log attacked is the installation's security log (which `audit verify` checks like a
//! practice's): failed sign-ins over HTTP append to it without any account. A second practice
//! stands by to show that one damaged log stops neither checkpoints nor verification of the
//! others. Every server runs with a checkpoint cadence that never comes due, so the only
//! checkpoints are the first of each log and those signed at shutdown or on demand.
//! req: AUD-02

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use pgcluster::{Cluster, ClusterConfig, DATABASE, DbRole};
use serde_json::json;
use sqlx::{Connection as _, Executor as _, PgConnection};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;
use uuid::Uuid;

use crate::backup::chartroom;
use crate::embedded_binary::{Running, client_for, launch, stop};

/// The installation's security log (a practice row of its own).
const LOG: Uuid = Uuid::nil();

/// The alert target, as it appears in the text log format.
const ALERT: &str = "chartroom::alert";

/// A data directory with two server runs behind it: `first` events in the installation log
/// after the first run, `events` after the second; the bystander practice has a log too.
struct Tail {
    dir: PathBuf,
    /// Global options every command of the test gets (the mirrors).
    global: Vec<String>,
    bystander: Uuid,
    first: u64,
    events: u64,
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `chartroom serve` whose standard error is collected.
struct Server {
    running: Running,
    stderr: Arc<Mutex<String>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Tail {
    /// `chartroom practice create`, then two runs of `serve`, each with a few failed sign-ins
    /// and a clean stop. `mirrors`: also keep checkpoints in `<dir>/mirror` and in the
    /// object store `file://<dir>/objects`.
    async fn new(mirrors: bool) -> Self {
        let dir = Path::new("/tmp").join(format!("chartroom-it-tail-{}", Uuid::new_v4().simple()));
        let mut global = Vec::new();
        if mirrors {
            global.extend([
                "--checkpoint-mirror-dir".to_owned(),
                dir.join("mirror").display().to_string(),
                "--checkpoint-mirror-url".to_owned(),
                format!("file://{}", dir.join("objects").display()),
            ]);
        }
        let mut tail = Self {
            dir,
            global,
            bystander: Uuid::nil(),
            first: 0,
            events: 0,
        };
        let (ok, out, err) = tail
            .run(&["practice", "create", "--name", "Tail Test Dental"])
            .await;
        assert!(ok, "practice create: {out} {err}");
        tail.bystander = out.trim().parse().expect("practice id");
        for (n, seen) in [(2, 2), (3, 5)] {
            let server = tail.serve().await;
            failed_sign_ins(&tail.dir, &server.running.base, n).await;
            let err = tail.stop(server).await;
            assert!(!err.contains(ALERT), "{err}");
            let (_, _, events) = tail.log_state().await;
            assert_eq!(events, seen, "one audit event per failed sign-in");
            if n == 2 {
                tail.first = events;
            } else {
                tail.events = events;
            }
        }
        tail
    }

    /// `chartroom --data-dir <dir> <global options> <args>` to its end.
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut all: Vec<&str> = self.global.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        chartroom(&self.dir, &all).await
    }

    /// `audit verify` as a whole: success and standard output.
    async fn verify(&self) -> (bool, String) {
        let (ok, out, _) = self.run(&["audit", "verify"]).await;
        (ok, out)
    }

    /// Starts `chartroom serve` with a checkpoint cadence that never comes due.
    async fn serve(&self) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chartroom"));
        cmd.arg("--data-dir")
            .arg(&self.dir)
            .args(&self.global)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--checkpoint-every-events",
                "1000000",
                "--checkpoint-every-secs",
                "86400",
            ])
            .env("RUST_LOG", "warn")
            .stderr(Stdio::piped());
        let mut running = launch(cmd).await;
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(running.child.stderr.take().unwrap()).lines();
        let collected = stderr.clone();
        let reader = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut all = collected.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        Server {
            running,
            stderr,
            reader,
        }
    }

    /// SIGTERM, a clean exit, and everything the server wrote on standard error.
    async fn stop(&self, server: Server) -> String {
        stop(server.running).await;
        server.reader.await.unwrap();
        server.stderr.lock().unwrap().clone()
    }

    /// Starts and stops `serve`, which must refuse to sign the shortened log, with an alert.
    async fn start_refuses_to_sign(&self) {
        let server = self.serve().await;
        assert_refusal_alerted(&self.stop(server).await);
    }

    /// The embedded cluster started by the test (the server is stopped) and a superuser
    /// connection to Chartroom's database: the attacker's seat.
    async fn database(&self) -> (Cluster, PgConnection) {
        let cluster = Cluster::start(ClusterConfig::new(&self.dir)).await.unwrap();
        let su = PgConnection::connect_with(&cluster.connect_options(DbRole::Superuser, DATABASE))
            .await
            .unwrap();
        (cluster, su)
    }

    /// Runs `tamper` as a superuser with triggers off.
    async fn tamper(&self, tamper: impl AsyncFnOnce(&mut PgConnection)) {
        let (cluster, mut su) = self.database().await;
        su.execute("set session_replication_role = replica")
            .await
            .unwrap();
        tamper(&mut su).await;
        drop(su);
        cluster.stop().await.unwrap();
    }

    /// Sequenced size, queued events and events of the installation log.
    async fn log_state(&self) -> (u64, u64, u64) {
        let (cluster, mut su) = self.database().await;
        let sequenced = count(
            &mut su,
            "select coalesce(max(seq) + 1, 0) from audit_sequence where practice_id = $1",
        )
        .await;
        let queued = count(
            &mut su,
            "select count(*) from audit_pending where practice_id = $1",
        )
        .await;
        let events = count(
            &mut su,
            "select count(*) from audit_event where practice_id = $1",
        )
        .await;
        drop(su);
        cluster.stop().await.unwrap();
        (sequenced, queued, events)
    }

    /// Sizes of the signed checkpoints of `practice` in the checkpoint directory.
    fn checkpoints(&self, practice: Uuid) -> Vec<u64> {
        audit::store::DirStore::new(self.dir.join("checkpoints"))
            .sizes(practice)
            .unwrap()
    }
}

/// `n` failed sign-ins (unknown accounts): one event each on the installation's log.
async fn failed_sign_ins(dir: &Path, base: &str, n: usize) {
    let http = client_for(dir);
    for i in 0..n {
        let res = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": format!("nobody{i}@tail.invalid"), "password": "not the right password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
}

async fn count(su: &mut PgConnection, sql: &str) -> u64 {
    let n: i64 = sqlx::query_scalar(sql)
        .bind(LOG)
        .fetch_one(su)
        .await
        .unwrap();
    u64::try_from(n).unwrap()
}

/// Deletes the installation log's events from `from` on (sequenced or still queued) and their
/// queue entries — and with `sequence_rows`, their sequence rows and every tree node over
/// them, leaving a shorter log that is consistent in itself.
async fn cut(su: &mut PgConnection, from: u64, sequence_rows: bool) {
    let from = i64::try_from(from).unwrap();
    sqlx::query(
        "delete from audit_event e where e.practice_id = $1 and (
             exists (select 1 from audit_sequence s where s.practice_id = $1 and s.event_id = e.event_id and s.seq >= $2)
             or not exists (select 1 from audit_sequence s where s.practice_id = $1 and s.event_id = e.event_id))",
    )
    .bind(LOG)
    .bind(from)
    .execute(&mut *su)
    .await
    .unwrap();
    sqlx::query("delete from audit_pending where practice_id = $1")
        .bind(LOG)
        .execute(&mut *su)
        .await
        .unwrap();
    if sequence_rows {
        sqlx::query("delete from audit_sequence where practice_id = $1 and seq >= $2")
            .bind(LOG)
            .bind(from)
            .execute(&mut *su)
            .await
            .unwrap();
        sqlx::query(
            "delete from audit_node where practice_id = $1 and (idx + 1) * (1::bigint << level) > $2",
        )
        .bind(LOG)
        .bind(from)
        .execute(&mut *su)
        .await
        .unwrap();
    }
}

/// `audit verify` failed, named `problem` for the installation log and found nothing wrong
/// with the bystander practice.
fn assert_caught(tail: &Tail, (ok, out): &(bool, String), problem: &str) {
    assert!(!ok, "{out}");
    assert!(about(out, LOG).contains(problem), "{out}");
    assert!(
        about(out, tail.bystander).contains("no problems found"),
        "{out}"
    );
}

/// A refusal to sign a shortened log was logged on the alert target.
fn assert_refusal_alerted(stderr: &str) {
    assert!(
        stderr.contains(ALERT) && stderr.contains("was shortened"),
        "{stderr}"
    );
}

/// The lines `audit verify` printed about `practice`.
fn about(out: &str, practice: Uuid) -> String {
    out.lines()
        .filter(|l| l.starts_with(&format!("practice {practice}:")))
        .collect::<Vec<_>>()
        .join("\n")
}

// issue 14.2: no checkpoint was signed at shutdown.
#[tokio::test]
async fn a_clean_shutdown_leaves_every_event_under_a_signed_checkpoint() {
    let tail = Tail::new(false).await;
    let (sequenced, queued, events) = tail.log_state().await;
    assert_eq!(
        (sequenced, queued),
        (events, 0),
        "everything was sequenced before the stop"
    );
    assert_eq!(
        tail.checkpoints(LOG).last().copied(),
        Some(tail.events),
        "the last checkpoint covers the events of the second run"
    );
    assert!(
        tail.checkpoints(LOG).contains(&tail.first),
        "the first run's stop signed its events too"
    );
    assert!(!tail.checkpoints(tail.bystander).is_empty());
    let (ok, out) = tail.verify().await;
    assert!(ok, "{out}");
}

// issue 14.2 (a): the newest events deleted, their sequence rows left.
#[tokio::test]
async fn deleting_the_newest_events_is_caught() {
    let tail = Tail::new(false).await;
    tail.tamper(async |su| cut(su, tail.events - 2, false).await)
        .await;
    let problem = format!(
        "events {} to {} are sequenced but their rows are missing",
        tail.events - 2,
        tail.events - 1
    );
    assert_caught(&tail, &tail.verify().await, &problem);
}

// issue 14.2 (b): the newest events cut with their sequence rows and tree nodes, above the
// checkpoint the cadence signed — what is left is consistent in itself.
#[tokio::test]
async fn cutting_the_newest_events_with_their_sequence_rows_and_nodes_is_caught() {
    let tail = Tail::new(false).await;
    tail.tamper(async |su| cut(su, tail.first, true).await)
        .await;
    let (sequenced, _, events) = tail.log_state().await;
    assert_eq!((sequenced, events), (tail.first, tail.first));
    let problem = format!(
        "log truncated: it ends at event {}, but a signed checkpoint covers {} events",
        tail.first - 1,
        tail.events
    );
    assert_caught(&tail, &tail.verify().await, &problem);
}

// issue 14.2 (c): a log shorter than its last signed checkpoint is caught by `audit verify`,
// and neither `audit checkpoint` nor the next start of `serve` signs it: both refuse and
// alert, and the other practice is checkpointed all the same.
#[tokio::test]
async fn a_log_shorter_than_its_last_checkpoint_is_caught_and_never_signed() {
    let tail = Tail::new(false).await;
    let (ok, out, err) = tail.run(&["audit", "checkpoint"]).await;
    assert!(ok, "{out} {err}");
    assert_eq!(tail.checkpoints(LOG).last().copied(), Some(tail.events));
    let short = tail.events - 1;
    tail.tamper(async |su| cut(su, short, true).await).await;

    assert_caught(&tail, &tail.verify().await, "log truncated");

    let bystander_before = tail.checkpoints(tail.bystander);
    let (ok, out, err) = tail.run(&["audit", "checkpoint"]).await;
    assert!(!ok, "a shortened log must not be signed: {out}");
    assert!(
        about(&out, LOG).contains("PROBLEM: refused to sign a checkpoint"),
        "{out}"
    );
    assert!(
        about(&out, tail.bystander).contains("checkpoint at size"),
        "the other practice is checkpointed: {out}"
    );
    assert_refusal_alerted(&err);

    tail.start_refuses_to_sign().await;
    assert!(
        !tail.checkpoints(LOG).contains(&short),
        "no checkpoint of the shortened log: {:?}",
        tail.checkpoints(LOG)
    );
    assert_eq!(tail.checkpoints(tail.bystander), bystander_before);
    let (ok, out) = tail.verify().await;
    assert!(!ok, "verification keeps failing: {out}");
}

// issue 14.2: the mirrors (a directory and an object store) keep what was signed when the
// checkpoint directory is rewritten along with the database.
#[tokio::test]
async fn a_rewritten_checkpoint_directory_is_caught_from_the_mirrors() {
    let tail = Tail::new(true).await;
    let name = audit::store::file_name(tail.events);
    for place in ["mirror", "objects"] {
        assert!(
            tail.dir
                .join(place)
                .join(LOG.to_string())
                .join(&name)
                .is_file(),
            "the last checkpoint is in {place}"
        );
    }
    tail.tamper(async |su| cut(su, tail.first, true).await)
        .await;
    let primary = audit::store::DirStore::new(tail.dir.join("checkpoints"));
    for size in tail.checkpoints(LOG) {
        if size > tail.first {
            std::fs::remove_file(primary.path_for(LOG, size)).unwrap();
        }
    }
    // The checkpoint directory alone no longer shows the cut…
    let (ok, out, _) = chartroom(&tail.dir, &["audit", "verify"]).await;
    assert!(ok, "{out}");
    // …each mirror does.
    let mirror = tail.global[..2].to_vec();
    let objects = tail.global[2..].to_vec();
    for global in [mirror, objects, tail.global.clone()] {
        let mut args: Vec<&str> = global.iter().map(String::as_str).collect();
        args.extend(["audit", "verify"]);
        let (ok, out, _) = chartroom(&tail.dir, &args).await;
        assert!(!ok, "{args:?}: {out}");
        let log = about(&out, LOG);
        assert!(log.contains("log truncated"), "{args:?}: {out}");
        assert!(
            log.contains("missing from the checkpoint directory"),
            "{args:?}: {out}"
        );
    }
    // And the next start refuses to sign the shortened log.
    tail.start_refuses_to_sign().await;
    assert_eq!(tail.checkpoints(LOG).last().copied(), Some(tail.first));
}

// issue 14.2: one practice whose events cannot be sequenced does not stop sequencing of the
// others, and `audit verify` reports queue entries whose events are gone or already sequenced.
#[tokio::test]
async fn one_practice_that_cannot_be_sequenced_does_not_stop_the_others() {
    let db = testkit::TestDb::new().await;
    let w = testkit::World::build(&db).await;
    let store = db.store().await;
    // Sessions first: signing in may append events of its own, sequenced before the tampering.
    let token_a = testkit::session_token(&store, w.a.user("reception")).await;
    let token_b = testkit::session_token(&store, w.b.user("reception")).await;
    let now = chrono::Utc::now();
    store.sequence_pending(now).await.unwrap();
    let (a, b) = (w.a.id, w.b.id);
    let mut su = db.superuser_unsafe().await;
    su.execute("set session_replication_role = replica")
        .await
        .unwrap();
    // A: an event already sequenced is queued again around Chartroom.
    sqlx::query("insert into audit_pending (practice_id, event_id) select practice_id, event_id from audit_sequence where practice_id = $1 and seq = 0")
        .bind(a)
        .execute(&mut su)
        .await
        .unwrap();
    for (p, token, patient) in [
        (a, &token_a, w.a.patient),
        (b, &token_b, w.b.patient),
        (b, &token_b, w.b.patient),
    ] {
        testkit::read_patient(&store, token, p, patient)
            .await
            .unwrap()
            .expect("the patient");
    }
    // B: its newest event is deleted before it is sequenced.
    sqlx::query("delete from audit_event where practice_id = $1 and event_id = (select event_id from audit_pending where practice_id = $1 order by pos desc limit 1)")
        .bind(b)
        .execute(&mut su)
        .await
        .unwrap();
    let pass = store.sequence_pending_each(now).await.unwrap();
    assert_eq!(pass.failed.len(), 1, "{:?}", pass.failed);
    assert_eq!(pass.failed[0].0, a);
    assert_eq!(pass.sequenced, 1, "B's remaining event was sequenced");
    assert!(
        store.sequence_pending(now).await.is_err(),
        "the failure is still reported"
    );

    let owner = db.owner().await;
    let verify = async |p: domain::PracticeId| {
        owner
            .verify_practice(
                p,
                &audit::checkpoint::origin("test/audit", p.as_uuid()),
                Vec::new(),
                chrono::Duration::seconds(60),
                now,
            )
            .await
            .unwrap()
    };
    let out = verify(a).await;
    assert_eq!((out.queued_sequenced, out.queued_missing), (1, 0));
    assert!(!out.is_ok());
    let out = verify(b).await;
    assert_eq!((out.queued_sequenced, out.queued_missing), (0, 1));
    assert!(!out.is_ok());
}
