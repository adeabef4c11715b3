//! Background work: the one home of every job `serve` runs — the audit [`sequencer`]
//! (sequencing and signed checkpoints), the [`sweep`] of expired passkey ceremonies, the daily
//! [`retention`] run, the [`incidents`] breach-clock alerts, and the jobs later issues add —
//! and the one way to start, stop and report them.
//!
//! # Shape of a job
//!
//! A [`Job`] is a loop over [`JobContext::tick`], which returns `false` once the job is asked
//! to stop; the job then finishes what it owes (the sequencer sequences what is queued and signs
//! the last checkpoints) and returns. After each pass it [reports](JobContext::report) its
//! outcome, which [`Jobs::status`] shows: passes, failures, the last success and the last
//! error. Jobs log their own failures (with their own alert targets); a report only records.
//! Errors carry ids and causes, never PHI.
//!
//! # Several replicas
//!
//! With [`Jobs::with_leases`] (what `serve` does), a job runs its passes only while this
//! process holds the job's lease ([`store::lease`]): of several servers on one database,
//! one runs each job and the others stand by ([`JobState::Standby`]), taking it over at their
//! next tick once the holder is gone. A job's closing work after a stop (the sequencer's last
//! passes and checkpoints) is done only by the holder ([`JobContext::holds_lease`]).
//!
//! # Order
//!
//! [`Jobs::stop`] stops the jobs in the reverse order of their start, each awaited before the
//! next. Start the jobs others depend on first: the sequencer is started before retention, so
//! retention's last purge events are queued before the sequencer's final pass sequences and
//! checkpoints them. Dropping [`Jobs`] without `stop` signals every job to stop without
//! waiting for any.
//!
//! # Example
//! ```no_run
//! # async fn f(store: store::Store) {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use server::jobs::{Jobs, sequencer::Sequencer};
//!
//! let mut jobs = Jobs::new(Arc::new(domain::SystemClock));
//! jobs.start(Sequencer::new(store, Duration::from_millis(250), None));
//! // … serve requests, then stop the listener …
//! for status in jobs.stop().await {
//!     println!("{}: {} passes, last error {:?}", status.name, status.passes, status.last_error);
//! }
//! # }
//! ```

pub mod alerts;
pub mod capture;
pub mod forward;
pub mod incidents;
pub mod outbox;
pub mod payments;
pub mod retention;
pub mod rights;
pub mod sequencer;
pub mod sweep;
pub mod transcription;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use domain::Clock;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The practices a per-practice pass goes through: `only`, or every practice but the
/// installation's own log (the system practice), as the owner role.
pub async fn practices(
    owner: &store::OwnerStore,
    only: Option<domain::PracticeId>,
) -> Result<Vec<domain::PracticeId>, store::StoreError> {
    Ok(match only {
        Some(p) => vec![p],
        None => owner
            .list_practices()
            .await?
            .into_iter()
            .map(|(id, _, _)| id)
            .filter(|id| !id.is_system())
            .collect(),
    })
}

/// A background job run by [`Jobs`].
pub trait Job: Send + 'static {
    /// A short, stable name for logs and [`JobStatus`] (e.g. `sequencer`).
    fn name(&self) -> &'static str;

    /// Runs until [`JobContext::tick`] returns `false`, finishes what it owes and returns.
    fn run(self, ctx: JobContext) -> impl Future<Output = ()> + Send;
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Started, not finished.
    Running,
    /// Started, waiting: another server holds this job's lease and runs it.
    Standby,
    /// Returned (after a stop, or on its own).
    Stopped,
    /// Panicked (logged on the `chartroom::alert` target); it does not run any more.
    Panicked,
}

/// What [`Jobs::status`] reports of one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobStatus {
    /// The job's name ([`Job::name`]).
    pub name: &'static str,
    /// Where it is in its life.
    pub state: JobState,
    /// Passes reported ([`JobContext::report`]).
    pub passes: u64,
    /// Passes that reported a failure.
    pub failures: u64,
    /// When the last successful pass was reported (injected clock).
    pub last_success: Option<DateTime<Utc>>,
    /// The last failure reported, and when (ids and causes only, never PHI).
    pub last_error: Option<(DateTime<Utc>, String)>,
}

impl JobStatus {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            state: JobState::Running,
            passes: 0,
            failures: 0,
            last_success: None,
            last_error: None,
        }
    }
}

type Shared = Arc<Mutex<JobStatus>>;

fn update(status: &Shared, f: impl FnOnce(&mut JobStatus)) {
    f(&mut status.lock().unwrap_or_else(PoisonError::into_inner));
}

fn snapshot(status: &Shared) -> JobStatus {
    status
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// What a running job gets from [`Jobs`]: the stop signal, the clock and its status.
#[derive(Debug)]
pub struct JobContext {
    name: &'static str,
    stop: watch::Receiver<bool>,
    clock: Arc<dyn Clock>,
    status: Shared,
    leases: Option<store::lease::Leases>,
    /// The lease could not be checked at the last tick (warned once until it can again).
    lease_unreachable: bool,
    /// Whether the lease was held at the last tick.
    held: bool,
    /// The lease was taken (first, or again after another process held it) since
    /// [`JobContext::took_over`] was last asked.
    taken: bool,
}

impl JobContext {
    /// Waits for the next tick of `interval` at which this process holds the job's lease
    /// (every tick without leases): `true` to run a pass, `false` when the job is asked to
    /// stop (a stop wins over a tick that is due at the same time).
    pub async fn tick(&mut self, interval: &mut tokio::time::Interval) -> bool {
        loop {
            if self.stopping() {
                return false;
            }
            let ticked = tokio::select! {
                biased;
                // An error means `Jobs` is gone: stop as well.
                _ = self.stop.wait_for(|stop| *stop) => false,
                _ = interval.tick() => true,
            };
            if !ticked {
                return false;
            }
            if self.take_lease().await {
                return true;
            }
        }
    }

    /// Holds (or takes) this job's lease; records running or standing by.
    async fn take_lease(&mut self) -> bool {
        let Some(leases) = &self.leases else {
            self.taken |= !self.held;
            self.held = true;
            return true;
        };
        let held = match leases.hold(self.name).await {
            Ok(held) => {
                self.lease_unreachable = false;
                held
            }
            Err(e) => {
                if !self.lease_unreachable {
                    tracing::warn!(job = self.name, error = %e, "the job's lease could not be checked: no pass until it can");
                }
                self.lease_unreachable = true;
                false
            }
        };
        self.taken |= held && !self.held;
        self.held = held;
        update(&self.status, |s| {
            if matches!(s.state, JobState::Running | JobState::Standby) {
                s.state = if held {
                    JobState::Running
                } else {
                    JobState::Standby
                };
            }
        });
        held
    }

    /// Whether this process runs the job: always without leases; with them, whether it held
    /// the lease at its last tick. A job's closing work after a stop checks this.
    pub async fn holds_lease(&self) -> bool {
        match &self.leases {
            None => true,
            Some(leases) => leases.holds(self.name).await,
        }
    }

    /// Whether this process took the job's lease — at its first pass, or again after another
    /// replica ran the job — since the last call: state a job remembers between passes may be
    /// stale then (the sequencer reads the last signed checkpoints again).
    pub fn took_over(&mut self) -> bool {
        std::mem::take(&mut self.taken)
    }

    /// Whether the job was asked to stop.
    #[must_use]
    pub fn stopping(&self) -> bool {
        *self.stop.borrow() || self.stop.has_changed().is_err()
    }

    /// The injected clock.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Records the outcome of one pass (the job logs its failures itself).
    pub fn report(&self, outcome: Result<(), String>) {
        let now = self.clock.now();
        update(&self.status, |s| {
            s.passes += 1;
            match outcome {
                Ok(()) => s.last_success = Some(now),
                Err(e) => {
                    s.failures += 1;
                    s.last_error = Some((now, e));
                }
            }
        });
    }
}

/// A started job.
#[derive(Debug)]
struct Running {
    status: Shared,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The background jobs of one server: started here, stopped here, reported here.
#[derive(Debug)]
pub struct Jobs {
    clock: Arc<dyn Clock>,
    running: Vec<Running>,
    leases: Option<store::lease::Leases>,
}

impl Jobs {
    /// No jobs yet; `clock` is the one every job reads.
    #[must_use]
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            running: Vec::new(),
            leases: None,
        }
    }

    /// Jobs that run only while this process holds their lease (several replicas on one
    /// database: one runs each job). Given back at [`Jobs::stop`].
    #[must_use]
    pub fn with_leases(mut self, leases: store::lease::Leases) -> Self {
        self.leases = Some(leases);
        self
    }

    /// Starts `job` on the current runtime.
    pub fn start<J: Job>(&mut self, job: J) {
        let name = job.name();
        let status: Shared = Arc::new(Mutex::new(JobStatus::new(name)));
        let (stop, stop_rx) = watch::channel(false);
        let ctx = JobContext {
            name,
            stop: stop_rx,
            clock: self.clock.clone(),
            status: status.clone(),
            leases: self.leases.clone(),
            lease_unreachable: false,
            held: false,
            taken: false,
        };
        let inner = tokio::spawn(job.run(ctx));
        let watched = status.clone();
        // The outer task notices a panic as it happens, not only at the stop.
        let task = tokio::spawn(async move {
            let state = match inner.await {
                Ok(()) => JobState::Stopped,
                Err(e) => {
                    tracing::error!(target: crate::checkpoint::ALERT_TARGET, job = name, error = %e, "a background job failed and no longer runs");
                    JobState::Panicked
                }
            };
            update(&watched, |s| s.state = state);
        });
        tracing::debug!(job = name, "background job started");
        self.running.push(Running { status, stop, task });
    }

    /// Every job's status, in the order they were started.
    #[must_use]
    pub fn status(&self) -> Vec<JobStatus> {
        self.running.iter().map(|r| snapshot(&r.status)).collect()
    }

    /// Stops the jobs in the reverse order of their start, waiting for each to finish before
    /// the next is asked; returns their last status, in the order they were started.
    pub async fn stop(mut self) -> Vec<JobStatus> {
        let mut out = Vec::with_capacity(self.running.len());
        while let Some(r) = self.running.pop() {
            let _ = r.stop.send(true);
            let _ = r.task.await;
            let status = snapshot(&r.status);
            tracing::debug!(
                job = status.name,
                passes = status.passes,
                failures = status.failures,
                "background job stopped"
            );
            out.push(status);
        }
        out.reverse();
        if let Some(leases) = &self.leases {
            leases.release_all().await;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ticks until stopped, reporting each pass from `outcomes` (then success); logs its stop
    /// into `stopped` and, when it is told to, panics on its first pass.
    struct Probe {
        name: &'static str,
        outcomes: Vec<Result<(), String>>,
        stopped: Arc<Mutex<Vec<&'static str>>>,
        passes: Arc<tokio::sync::Notify>,
        panic: bool,
    }

    impl Job for Probe {
        fn name(&self) -> &'static str {
            self.name
        }

        async fn run(mut self, mut ctx: JobContext) {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(1));
            while ctx.tick(&mut tick).await {
                assert!(!self.panic, "probe asked to panic");
                let outcome = if self.outcomes.is_empty() {
                    Ok(())
                } else {
                    self.outcomes.remove(0)
                };
                ctx.report(outcome);
                self.passes.notify_one();
            }
            self.stopped.lock().unwrap().push(self.name);
        }
    }

    fn probe(
        name: &'static str,
        outcomes: Vec<Result<(), String>>,
        stopped: &Arc<Mutex<Vec<&'static str>>>,
    ) -> (Probe, Arc<tokio::sync::Notify>) {
        let passes = Arc::new(tokio::sync::Notify::new());
        (
            Probe {
                name,
                outcomes,
                stopped: stopped.clone(),
                passes: passes.clone(),
                panic: false,
            },
            passes,
        )
    }

    // issue 15.6: jobs stop in the reverse order of their start, each awaited; status keeps
    // passes, failures, the last error and the last success.
    #[tokio::test]
    async fn jobs_stop_in_reverse_order_and_report_their_last_error() {
        let clock = domain::ManualClock::starting_now();
        let mut jobs = Jobs::new(Arc::new(clock.clone()));
        let stopped = Arc::new(Mutex::new(Vec::new()));
        let (first, first_passes) = probe("sequencer", vec![], &stopped);
        let outcomes = vec![Err("practice p: cannot be purged".to_owned()), Ok(())];
        let (second, second_passes) = probe("retention", outcomes, &stopped);
        jobs.start(first);
        jobs.start(second);
        first_passes.notified().await;
        // Two passes of the second job: a failure, then a success.
        second_passes.notified().await;
        second_passes.notified().await;
        let during = jobs.status();
        assert_eq!(during.len(), 2);
        assert_eq!(during[0].name, "sequencer");
        assert_eq!(during[1].state, JobState::Running);
        assert_eq!(during[1].failures, 1);
        assert_eq!(
            during[1].last_error,
            Some((clock.now(), "practice p: cannot be purged".to_owned()))
        );
        assert!(during[1].passes >= 2 && during[1].last_success.is_some());

        let last = jobs.stop().await;
        assert_eq!(*stopped.lock().unwrap(), ["retention", "sequencer"]);
        assert!(last.iter().all(|s| s.state == JobState::Stopped));
        assert_eq!(last[1].name, "retention");
        assert!(last[1].last_error.is_some());
    }

    // issue 15.6: a job that panics is reported as such, and the others stop normally.
    #[tokio::test]
    async fn a_panicking_job_is_reported_and_the_others_stop() {
        let mut jobs = Jobs::new(Arc::new(domain::ManualClock::starting_now()));
        let stopped = Arc::new(Mutex::new(Vec::new()));
        let (mut bad, _) = probe("bad", vec![], &stopped);
        bad.panic = true;
        let (good, good_passes) = probe("good", vec![], &stopped);
        jobs.start(bad);
        jobs.start(good);
        good_passes.notified().await;
        let last = jobs.stop().await;
        assert_eq!(last[0].state, JobState::Panicked);
        assert_eq!(last[1].state, JobState::Stopped);
        assert_eq!(*stopped.lock().unwrap(), ["good"]);
    }

    // issue 15.6: a stop that is asked before the first tick runs no pass at all.
    #[tokio::test]
    async fn a_stop_wins_over_a_due_tick() {
        let (stop, stop_rx) = watch::channel(false);
        let mut ctx = JobContext {
            name: "t",
            stop: stop_rx,
            clock: Arc::new(domain::ManualClock::starting_now()),
            status: Arc::new(Mutex::new(JobStatus::new("t"))),
            leases: None,
            lease_unreachable: false,
            held: false,
            taken: false,
        };
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        stop.send(true).unwrap();
        assert!(!ctx.tick(&mut tick).await);
        drop(stop);
        assert!(ctx.stopping());
    }
}
