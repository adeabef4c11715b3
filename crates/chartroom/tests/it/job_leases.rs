//! Several replicas on one database: each background job runs on one server at a time (its
//! lease), the others stand by, and one takes the job over when the holder stops or dies
//! (issue 21, several replicas).

use std::sync::Arc;
use std::time::Duration;

use server::jobs::{Job, JobContext, JobState, Jobs};
use testkit::TestDb;
use tokio::sync::Notify;

/// Counts its passes and wakes the test at each one.
struct Probe {
    passes: Arc<Notify>,
}

impl Job for Probe {
    fn name(&self) -> &'static str {
        "lease-probe"
    }

    async fn run(self, mut ctx: JobContext) {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        while ctx.tick(&mut tick).await {
            ctx.report(Ok(()));
            self.passes.notify_one();
        }
    }
}

fn replica(store: &store::Store) -> (Jobs, Arc<Notify>) {
    let passes = Arc::new(Notify::new());
    let mut jobs = Jobs::new(Arc::new(domain::SystemClock)).with_leases(store.leases());
    jobs.start(Probe {
        passes: passes.clone(),
    });
    (jobs, passes)
}

/// Waits for the next pass of `passes` (a guard against a hang, not a synchronization).
async fn next_pass(passes: &Notify) {
    tokio::time::timeout(Duration::from_secs(20), passes.notified())
        .await
        .expect("a pass within 20 s");
}

fn state(jobs: &Jobs) -> (JobState, u64) {
    let s = &jobs.status()[0];
    (s.state, s.passes)
}

/// Waits until `jobs` reports standing by (it has ticked and found the lease held elsewhere).
async fn standing_by(jobs: &Jobs) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while state(jobs).0 != JobState::Standby {
        assert!(tokio::time::Instant::now() < deadline, "never stood by");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn one_replica_runs_a_job_and_another_takes_it_over_when_it_stops() {
    let db = TestDb::new().await;
    let (a_store, b_store) = (db.store().await, db.store().await);
    let (a, a_passes) = replica(&a_store);
    next_pass(&a_passes).await;
    let (b, b_passes) = replica(&b_store);
    standing_by(&b).await;
    // A keeps running; B has run nothing.
    next_pass(&a_passes).await;
    assert_eq!(state(&b), (JobState::Standby, 0));

    // A stops (a rolling restart): B takes over at its next tick.
    let a_last = a.stop().await;
    next_pass(&b_passes).await;
    let (b_state, b_count) = state(&b);
    assert_eq!(b_state, JobState::Running);
    assert!(b_count >= 1);
    assert!(a_last[0].passes >= 2);
    b.stop().await;
    a_store.close().await;
    b_store.close().await;
}

#[tokio::test]
async fn a_replica_whose_session_dies_loses_the_job_to_another() {
    let db = TestDb::new().await;
    let (a_store, b_store) = (db.store().await, db.store().await);
    let (a, a_passes) = replica(&a_store);
    next_pass(&a_passes).await;
    let (b, b_passes) = replica(&b_store);
    standing_by(&b).await;

    // A is cut off from the database (its pool closed: no new connection) and its lease
    // session ends, as when its machine is gone (terminated by the runtime role, which may
    // signal its own backends): B runs the job.
    a_store.close().await;
    let mut rt = db.runtime_conn().await;
    let killed: Vec<bool> = sqlx::query_scalar(
        "select pg_terminate_backend(pid) from pg_locks
          where locktype = 'advisory' and classid = 17234 and granted",
    )
    .fetch_all(&mut rt)
    .await
    .unwrap();
    assert_eq!(killed, [true], "one lease holder, terminated");
    next_pass(&b_passes).await;
    assert_eq!(state(&b).0, JobState::Running);
    // A noticed the loss and stands by; only one holder at any time.
    standing_by(&a).await;
    let holders: i64 = sqlx::query_scalar(
        "select count(*) from pg_locks where locktype = 'advisory' and classid = 17234 and granted",
    )
    .fetch_one(&mut rt)
    .await
    .unwrap();
    assert_eq!(holders, 1);
    a.stop().await;
    b.stop().await;
    b_store.close().await;
}
