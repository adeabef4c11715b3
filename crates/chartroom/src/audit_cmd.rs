//! `chartroom audit …`: reports, exports, verification and proofs, as the owner role.

use anyhow::Context as _;
use audit::checkpoint::Verifier;
use audit::store::CheckpointStore as _;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use domain::Clock as _;
use domain::{PatientId, PracticeId, UserId};
use server::checkpoint::Place;
use store::audit::AuditFilter;

use crate::db::Database;
use crate::services::{Access, Services};

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
    /// Verify audit logs: recompute every practice's hash chain and Merkle tree and check them
    /// against the signed checkpoints of the checkpoint directory and every mirror together.
    /// Reports the first bad sequence number and what is wrong for each practice, and goes on
    /// with the next; exits non-zero if anything is wrong.
    Verify {
        /// Only this practice (default: all).
        #[arg(long)]
        practice: Option<PracticeId>,
        /// The checkpoint verifier key (default: derived from the signing key in the data
        /// directory).
        #[arg(long)]
        verifier_key: Option<String>,
        /// Events may wait this many seconds to be sequenced before they count as a problem.
        /// The former name, --seal-bound-secs, is still accepted.
        #[arg(long, alias = "seal-bound-secs", default_value_t = 60)]
        sequence_bound_secs: i64,
    },
    /// Print an RFC 6962 inclusion proof for the event at a sequence number.
    Proof {
        /// The practice.
        #[arg(long)]
        practice: PracticeId,
        /// The event's sequence number.
        #[arg(long)]
        seq: u64,
        /// Tree size (default: all sequenced events).
        #[arg(long)]
        size: Option<u64>,
    },
    /// Print an RFC 6962 consistency proof between two tree sizes.
    Consistency {
        /// The practice.
        #[arg(long)]
        practice: PracticeId,
        /// The earlier size.
        #[arg(long)]
        first: u64,
        /// The later size (default: all sequenced events).
        #[arg(long)]
        second: Option<u64>,
    },
    /// Sequence queued events and write a signed checkpoint now (to the checkpoint directory and
    /// every mirror). Refuses, with an alert, to sign a log that is shorter than or
    /// inconsistent with the last signed checkpoint; exits non-zero if any practice failed.
    Checkpoint {
        /// Only this practice (default: all).
        #[arg(long)]
        practice: Option<PracticeId>,
    },
    /// Remove audit event contents older than six years (HIPAA 164.316(b)(2)(i)), keeping the
    /// chain verifiable from a checkpoint signed at the pruning point.
    Prune {
        /// The practice.
        #[arg(long)]
        practice: PracticeId,
        /// Remove events that happened before this time (must be at least six years ago).
        #[arg(long)]
        before: DateTime<Utc>,
    },
    /// Export a practice's audit events as FHIR R4 `AuditEvent` NDJSON on standard output.
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

fn b64(h: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(h)
}

/// The signed checkpoints of `practice` from every place, opened with `verifier`: the union,
/// each distinct note once. Also returns the problems found on the way — a note that does
/// not open, and a checkpoint a mirror holds that the checkpoint directory (always written
/// first) lacks, i.e. one removed from it.
async fn union_of_checkpoints(
    places: &[Place],
    verifier: &Verifier,
    practice: PracticeId,
) -> anyhow::Result<(Vec<audit::Checkpoint>, Vec<String>)> {
    // Per size, each distinct note with the place it was first found in.
    let mut notes: std::collections::BTreeMap<u64, Vec<(String, String)>> =
        std::collections::BTreeMap::new();
    let mut problems = Vec::new();
    let mut in_primary = std::collections::BTreeSet::new();
    for (i, place) in places.iter().enumerate() {
        for (size, note) in place.notes(practice.as_uuid()).await? {
            if i == 0 {
                in_primary.insert(size);
            } else if !in_primary.contains(&size) {
                problems.push(format!(
                    "the checkpoint of size {size} is in {} but missing from the checkpoint directory {} (removed?)",
                    place.label(),
                    places.first().map(Place::label).unwrap_or_default()
                ));
            }
            let same_size = notes.entry(size).or_default();
            if !same_size.iter().any(|(n, _)| *n == note) {
                same_size.push((note, place.label()));
            }
        }
    }
    let mut out = Vec::new();
    for (size, note, label) in notes
        .into_iter()
        .flat_map(|(size, v)| v.into_iter().map(move |(n, l)| (size, n, l)))
    {
        match verifier.open(&note) {
            Ok(cp) if cp.size == size => out.push(cp),
            Ok(cp) => problems.push(format!(
                "the checkpoint filed as size {size} in {label} states size {}",
                cp.size
            )),
            Err(e) => problems.push(format!(
                "the checkpoint of size {size} in {label} does not verify: {e}"
            )),
        }
    }
    Ok((out, problems))
}

pub(crate) async fn run(svc: &Services, cmd: AuditCommand) -> anyhow::Result<()> {
    svc.as_owner(Access::Shared, async |owner, db| {
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
            AuditCommand::Verify { practice, verifier_key, sequence_bound_secs } => {
                verify(svc, owner, practice, verifier_key, sequence_bound_secs).await?;
            }
            AuditCommand::Proof { practice, seq, size } => {
                let p = owner.inclusion_proof(practice, seq, size).await?.context("no sequenced event at that position and size")?;
                println!(
                    "{}",
                    serde_json::json!({"seq": p.index, "size": p.size, "leaf_hash": b64(&p.leaf_hash),
                        "path": p.path.iter().map(|h| b64(h)).collect::<Vec<_>>(), "root": b64(&p.root)})
                );
            }
            AuditCommand::Consistency { practice, first, second } => {
                let p = owner.consistency_proof(practice, first, second).await?.context("sizes out of range")?;
                println!(
                    "{}",
                    serde_json::json!({"first": p.first, "second": p.second,
                        "path": p.path.iter().map(|h| b64(h)).collect::<Vec<_>>(),
                        "first_root": b64(&p.first_root), "second_root": b64(&p.second_root)})
                );
            }
            AuditCommand::Checkpoint { practice } => {
                let runtime = db.runtime_store(2).await?;
                let result = checkpoint_now(svc, &runtime, practice).await;
                runtime.close().await;
                result?;
            }
            AuditCommand::Prune { practice, before } => prune(svc, db, owner, practice, before).await?,
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
        Ok(())
    })
    .await
}

/// `audit checkpoint`: sequences what is queued and signs a checkpoint of each practice (or one),
/// reporting a practice that fails and going on with the others.
async fn checkpoint_now(
    svc: &Services,
    runtime: &store::Store,
    practice: Option<PracticeId>,
) -> anyhow::Result<()> {
    let pass = runtime
        .sequence_pending_each(domain::SystemClock.now())
        .await?;
    let mut failed: Vec<PracticeId> = Vec::new();
    for (p, e) in &pass.failed {
        println!("practice {p}: PROBLEM: its audit events cannot be sequenced: {e}");
        failed.push(*p);
    }
    let cp = svc.checkpointer(1, 1)?;
    let practices = match practice {
        Some(p) => vec![p],
        None => runtime.practices_with_log().await?,
    };
    for p in practices {
        match cp.checkpoint(runtime, p).await {
            Ok(Some(size)) => println!("practice {p}: checkpoint at size {size}"),
            Ok(None) => println!("practice {p}: nothing sequenced yet"),
            Err(e) => {
                server::checkpoint::report(p, &e);
                println!("practice {p}: PROBLEM: {e}");
                if !failed.contains(&p) {
                    failed.push(p);
                }
            }
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("{} practice(s) could not be checkpointed", failed.len());
    }
    Ok(())
}

async fn verify(
    svc: &Services,
    owner: &store::OwnerStore,
    practice: Option<PracticeId>,
    verifier_key: Option<String>,
    sequence_bound_secs: i64,
) -> anyhow::Result<()> {
    let verifier = match verifier_key {
        Some(k) => Verifier::new(&k).context("--verifier-key")?,
        None => svc.signer()?.verifier(),
    };
    let places = svc.checkpoint_places()?;
    let mut bad = 0;
    let practices = if let Some(p) = practice {
        vec![p]
    } else {
        let listed: Vec<PracticeId> = owner
            .list_practices()
            .await?
            .into_iter()
            .map(|p| p.0)
            .collect();
        // A practice with signed checkpoints must still be in the database.
        for place in &places {
            for id in place.practices().await? {
                let p = PracticeId::from_uuid(id);
                if !listed.contains(&p) {
                    println!(
                        "practice {p}: PROBLEM: it has signed checkpoints in {} but is not in the database (deleted?)",
                        place.label()
                    );
                    bad += 1;
                }
            }
        }
        listed
    };
    // One practice that fails, or cannot be verified at all, is reported and the next one
    // is verified.
    for p in practices {
        match verify_practice(svc, owner, p, &places, &verifier, sequence_bound_secs).await {
            Ok(true) => {}
            Ok(false) => bad += 1,
            Err(e) => {
                println!("practice {p}: PROBLEM: its audit log could not be verified: {e:#}");
                bad += 1;
            }
        }
    }
    if bad > 0 {
        anyhow::bail!("{bad} practice(s) failed audit verification");
    }
    Ok(())
}

/// Verifies one practice's log against the union of the checkpoints and prints the report.
/// Returns whether nothing is wrong.
async fn verify_practice(
    svc: &Services,
    owner: &store::OwnerStore,
    p: PracticeId,
    places: &[Place],
    verifier: &Verifier,
    sequence_bound_secs: i64,
) -> anyhow::Result<bool> {
    let started = std::time::Instant::now();
    let (cps, problems) = union_of_checkpoints(places, verifier, p).await?;
    let origin = audit::checkpoint::origin(&svc.global().audit_origin, p.as_uuid());
    let out = owner
        .verify_practice(
            p,
            &origin,
            cps,
            chrono::Duration::seconds(sequence_bound_secs),
            domain::SystemClock.now(),
        )
        .await?;
    let secs = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss, reason = "a rate for display")]
    let rate = out.report.events_checked as f64 / secs.max(1e-9);
    println!("practice {p}: {} ({:.0} events/s)", out.report, rate);
    for problem in &problems {
        println!("practice {p}: PROBLEM: {problem}");
    }
    let counts = [
        (
            out.unqueued_events,
            "audit events are neither sequenced nor queued (inserted outside Chartroom, or their sequence rows were removed)",
        ),
        (
            out.queued_missing,
            "queued audit events are missing from the log (deleted before they were sequenced)",
        ),
        (
            out.queued_sequenced,
            "audit events are queued again although already sequenced (queued outside Chartroom)",
        ),
    ];
    for (n, what) in counts {
        if n > 0 {
            println!("practice {p}: PROBLEM: {n} {what}");
        }
    }
    if out.stale_pending > 0 {
        println!(
            "practice {p}: PROBLEM: {} audit events waited longer than {sequence_bound_secs} s to be sequenced",
            out.stale_pending
        );
    }
    Ok(out.is_ok() && problems.is_empty())
}

async fn prune(
    svc: &Services,
    db: &Database,
    owner: &store::OwnerStore,
    practice: PracticeId,
    before: DateTime<Utc>,
) -> anyhow::Result<()> {
    let now = domain::SystemClock.now();
    if before > now - chrono::Duration::days(6 * 365 + 1) {
        anyhow::bail!(
            "audit events are kept at least six years: --before must be at least six years ago"
        );
    }
    let runtime = db.runtime_store(2).await?;
    runtime.sequence_pending(now).await?;
    runtime.close().await;
    let signer = svc.signer()?;
    let origin = audit::checkpoint::origin(&svc.global().audit_origin, practice.as_uuid());
    // The checkpoint directory is written before the prune commits; an object store (shared
    // by replicas, `--checkpoint-store-url`) is written right after it, like the mirrors.
    let mut later = svc.checkpoint_places()?;
    let dir = match later.first() {
        Some(Place::Dir(d)) => {
            let d = d.clone();
            later.remove(0);
            Some(d)
        }
        _ => None,
    };
    let mut pruning_note = None;
    let pruned = owner
        .prune_audit(practice, before, now, |head| {
            let cp = audit::Checkpoint::new(origin.clone(), head.size, head.root)
                .with_chain_head(&head.chain_head);
            let note = signer.sign(&cp).map_err(|e| e.to_string())?;
            if let Some(dir) = &dir {
                dir.put(practice.as_uuid(), &note, head.size)
                    .map_err(|e| e.to_string())?;
            }
            pruning_note = Some((head.size, note));
            Ok(())
        })
        .await?;
    if let Some((size, note)) = pruning_note {
        for mirror in &later {
            mirror
                .put(practice.as_uuid(), &note, size)
                .await
                .with_context(|| {
                    format!(
                        "the pruning checkpoint is stored, but not in {}",
                        mirror.label()
                    )
                })?;
        }
    }
    println!(
        "practice {practice}: pruned the contents of {} events; the log now starts at seq {}",
        pruned.1, pruned.0
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser};

    use super::AuditCommand;

    #[derive(Parser)]
    struct Audit {
        #[command(subcommand)]
        cmd: AuditCommand,
    }

    fn bound(args: &[&str]) -> i64 {
        match Audit::try_parse_from(args).unwrap().cmd {
            AuditCommand::Verify {
                sequence_bound_secs,
                ..
            } => sequence_bound_secs,
            _ => panic!("not verify"),
        }
    }

    // `audit verify --sequence-bound-secs`; `--seal-bound-secs`, its former name, still works
    // in operators' scripts but is not listed as a flag of its own.
    #[test]
    fn the_sequence_bound_keeps_its_former_name_as_a_hidden_alias() {
        assert_eq!(bound(&["audit", "verify"]), 60);
        assert_eq!(bound(&["audit", "verify", "--sequence-bound-secs", "5"]), 5);
        assert_eq!(bound(&["audit", "verify", "--seal-bound-secs", "7"]), 7);
        let cmd = Audit::command();
        let verify = cmd.find_subcommand("verify").unwrap();
        let arg = verify
            .get_arguments()
            .find(|a| a.get_long() == Some("sequence-bound-secs"))
            .unwrap();
        assert!(arg.get_visible_aliases().unwrap_or_default().is_empty());
        assert_eq!(arg.get_all_aliases(), Some(vec!["seal-bound-secs"]));
    }
}
