//! `chartroom retention …`: the retention job (req INT-02) and the practice's retention
//! windows. The job purges, as the owner role, deleted patients and deleted draft notes past
//! the practice's deletion window and deleted patients' signed notes past the record-keeping
//! window, never anything under legal hold; every purged record leaves a `retention.purge`
//! audit event and the earlier audit trail stays (see `store::retention`). `serve` also runs
//! it once a day when it has the owner role.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use domain::{Clock, PracticeId, SystemClock};
use store::retention::PurgeReport;
use store::{OwnerStore, StoreError};

use crate::Global;
use crate::db::Database;

/// How often `serve` runs the retention job.
const DAILY: Duration = Duration::from_secs(24 * 60 * 60);
/// How long after start-up `serve` first runs it (start-up stays quick).
const FIRST_RUN_AFTER: Duration = Duration::from_secs(10 * 60);

/// `chartroom retention …`.
#[derive(Subcommand, Debug)]
pub(crate) enum RetentionCommand {
    /// Purge what is past the retention windows (one practice, or every practice).
    Run {
        /// Only this practice (default: every practice).
        #[arg(long)]
        practice: Option<PracticeId>,
        /// Report what would be purged, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show or change a practice's retention windows (audited as `practice.update`).
    Set {
        /// The practice.
        #[arg(long)]
        practice: PracticeId,
        /// Days a deleted patient or draft note is kept before it is purged (1–3650).
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..=3650))]
        deleted_days: Option<i32>,
        /// Years signed notes are kept, from their newest signed version: the state's
        /// record-keeping rule (2–100).
        #[arg(long, value_parser = clap::value_parser!(i32).range(2..=100))]
        record_years: Option<i32>,
    },
}

/// `chartroom retention …`.
pub(crate) async fn run(g: &Global, cmd: RetentionCommand) -> anyhow::Result<()> {
    let db = Database::for_admin(g).await?;
    let owner = db
        .migrate()
        .await?
        .context("this command needs the owner role")?;
    let result =
        match cmd {
            RetentionCommand::Run { practice, dry_run } => {
                async {
                    let pass = run_all(&owner, practice, SystemClock.now(), dry_run).await?;
                    for (_, r) in &pass.done {
                        println!("{}", summary(r));
                    }
                    for (p, e) in &pass.failed {
                        println!("practice {p}: retention run failed ({e}); skipped");
                    }
                    if !pass.is_complete() {
                        anyhow::bail!(
                            "{} practice(s) could not be processed; the others were",
                            pass.failed.len()
                        );
                    }
                    anyhow::Ok(())
                }
                .await
            }
            RetentionCommand::Set {
                practice,
                deleted_days,
                record_years,
            } => async {
                let s = if deleted_days.is_none() && record_years.is_none() {
                    owner.retention_settings(practice).await?
                } else {
                    owner
                        .set_retention(practice, deleted_days, record_years, SystemClock.now())
                        .await?
                };
                println!(
                    "practice {practice}: deleted records kept {} days; signed notes kept {} years",
                    s.deleted_retention_days, s.record_keeping_years
                );
                anyhow::Ok(())
            }
            .await,
        };
    owner.close().await;
    db.shutdown().await?;
    result
}

/// Runs the job for `practice`, or for every practice (not the installation's own log).
pub(crate) async fn run_all(
    owner: &OwnerStore,
    practice: Option<PracticeId>,
    now: chrono::DateTime<chrono::Utc>,
    dry_run: bool,
) -> anyhow::Result<store::PerPractice<PurgeReport, StoreError>> {
    let practices: Vec<PracticeId> = match practice {
        Some(p) => vec![p],
        None => owner
            .list_practices()
            .await?
            .into_iter()
            .map(|(id, _, _)| id)
            .filter(|id| !id.is_system())
            .collect(),
    };
    Ok(
        store::each_practice("retention", practices, |p| async move {
            if dry_run {
                owner.purge_expired_dry_run(p, now).await
            } else {
                owner.purge_expired(p, now).await
            }
        })
        .await,
    )
}

/// One line per practice (ids and counts only).
pub(crate) fn summary(r: &PurgeReport) -> String {
    let practice = r
        .practice_id
        .map_or_else(|| "?".to_owned(), |p| p.to_string());
    format!(
        "practice {practice}: {}{} patients, {} notes ({} versions), {} perio exams, {} visits, \
         {} appointments, {} disclosures, {} break-glass grants purged; {} kept by legal hold, \
         {} kept for record keeping; {} audit events",
        if r.dry_run {
            "[dry run] would purge "
        } else {
            ""
        },
        r.patients.len(),
        r.notes,
        r.note_versions,
        r.perio_exams,
        r.visits,
        r.appointments,
        r.disclosures,
        r.break_glass,
        r.held,
        r.kept_for_record_keeping,
        r.audit_events,
    )
}

/// The daily job `serve` runs: on the owner role's store when it has one (it owns and closes
/// it); otherwise off, and the operator schedules `chartroom retention run`.
pub(crate) fn start_daily(owner: Option<OwnerStore>, clock: Arc<dyn Clock>) -> Option<Daily> {
    if owner.is_none() {
        tracing::info!(
            "no owner role: the daily retention job is off (schedule `chartroom retention run`)"
        );
    }
    owner.map(|o| spawn_daily(o, clock, DAILY))
}

/// Stops the daily job and waits for a run in progress to finish.
pub(crate) async fn stop_daily(daily: Option<Daily>) {
    if let Some((job, stop)) = daily {
        let _ = stop.send(());
        let _ = job.await;
    }
}

/// A running daily job: its task and its stop signal.
pub(crate) type Daily = (
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
);

/// `serve`'s daily retention run on the owner role's store: first after
/// [`FIRST_RUN_AFTER`], then every `every`. Stops (and closes the owner store) when `stop`
/// fires. Failures are logged and retried on the next run.
fn spawn_daily(owner: OwnerStore, clock: Arc<dyn Clock>, every: Duration) -> Daily {
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + FIRST_RUN_AFTER, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                _ = tick.tick() => {}
            }
            match run_all(&owner, None, clock.now(), false).await {
                Ok(pass) => {
                    // Failed practices were reported by `each_practice`; retried tomorrow.
                    let reports = pass.done.iter().map(|(_, r)| r);
                    for r in reports.filter(|r| r.audit_events > 0 || r.held > 0) {
                        tracing::info!(target: "chartroom::retention", "{}", summary(r));
                    }
                }
                Err(e) => tracing::error!(error = %format!("{e:#}"), "retention run failed"),
            }
        }
        owner.close().await;
    });
    (handle, stop_tx)
}
