//! `chartroom retention …`: the retention job (req INT-02) and the practice's retention
//! windows. The job purges, as the owner role, deleted patients and deleted draft notes past
//! the practice's deletion window and deleted patients' signed notes past the record-keeping
//! window, never anything under legal hold; every purged record leaves a `retention.purge`
//! audit event and the earlier audit trail stays (see `store::retention`). `serve` also runs
//! it once a day when it has the owner role ([`server::jobs::retention`]).

use clap::Subcommand;
use domain::{Clock as _, PracticeId, SystemClock};
use server::jobs::retention::{purge_all, summary};

use crate::services::{Access, Services};

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
pub(crate) async fn run(svc: &Services, cmd: RetentionCommand) -> anyhow::Result<()> {
    svc.as_owner(Access::Shared, async |owner, _| match cmd {
        RetentionCommand::Run { practice, dry_run } => {
            let pass = purge_all(owner, practice, SystemClock.now(), dry_run).await?;
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
            Ok(())
        }
        RetentionCommand::Set {
            practice,
            deleted_days,
            record_years,
        } => {
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
            Ok(())
        }
    })
    .await
}
