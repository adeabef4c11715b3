//! `chartroom audit …`: reports, exports, verification and proofs, as the owner role.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use domain::{PatientId, PracticeId, UserId};
use store::audit::AuditFilter;

use crate::Global;
use crate::db::Database;

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Audit events of a practice, filtered ("who looked at this patient", "what did this
    /// user touch between t1 and t2"), as JSON lines. The report is itself audited.
    Report {
        /// The practice.
        #[arg(long)]
        practice: PracticeId,
        /// Only events about this patient.
        #[arg(long)]
        patient: Option<PatientId>,
        /// Only events by this user.
        #[arg(long)]
        actor: Option<UserId>,
        /// Only this action (e.g. patient.read).
        #[arg(long)]
        action: Option<String>,
        /// From (RFC 3339).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// To (RFC 3339, exclusive).
        #[arg(long)]
        to: Option<DateTime<Utc>>,
        /// Newest first.
        #[arg(long)]
        desc: bool,
        /// At most this many events.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Export a practice's audit events as FHIR R4 AuditEvent NDJSON on standard output.
    Export {
        /// The practice.
        #[arg(long)]
        practice: PracticeId,
        /// From (RFC 3339).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// To (RFC 3339, exclusive).
        #[arg(long)]
        to: Option<DateTime<Utc>>,
    },
}

pub(crate) async fn run(g: &Global, cmd: AuditCommand) -> anyhow::Result<()> {
    let db = Database::for_admin(g).await?;
    let owner = db.migrate().await?.context("this command needs the owner role")?;
    let result = async {
        match cmd {
            AuditCommand::Report { practice, patient, actor, action, from, to, desc, limit } => {
                let mut f = AuditFilter { patient, actor, action, from, to, descending: desc, after: None, limit: 500 };
                let mut printed = 0;
                while printed < limit {
                    let rows = owner.audit_report(practice, &f).await?;
                    for r in &rows {
                        if printed < limit {
                            println!("{}", serde_json::to_string(r)?);
                            printed += 1;
                        }
                    }
                    if rows.len() < 500 {
                        break;
                    }
                    f.after = rows.last().map(|r| (r.occurred_at, r.event_id));
                }
                owner.audit_admin_event(practice, domain::AuditAction::AuditRead).await?;
            }
            AuditCommand::Export { practice, from, to } => {
                let mut f = AuditFilter { from, to, limit: 500, ..AuditFilter::default() };
                loop {
                    let rows = owner.audit_report(practice, &f).await?;
                    for r in &rows {
                        println!("{}", server::fhir::audit_event(practice, r));
                    }
                    if rows.len() < 500 {
                        break;
                    }
                    f.after = rows.last().map(|r| (r.occurred_at, r.event_id));
                }
                owner.audit_admin_event(practice, domain::AuditAction::AuditExport).await?;
            }
        }
        anyhow::Ok(())
    }
    .await;
    owner.close().await;
    db.shutdown().await?;
    result
}
