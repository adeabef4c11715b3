//! `serve`'s subprocessor registry: the deployment's integrations file (`--integrations`,
//! `CHARTROOM_INTEGRATIONS`, default `<data dir>/integrations.toml` when it exists) is read and
//! checked before anything starts — a PHI-touching subprocessor without a signed BAA refuses
//! the start — and, once the database is up, its differences from the recorded registry are
//! recorded as dated changes: the owners' notices, with their emails queued through the outbox
//! when the owner role is available ([`store::OwnerStore::record_subprocessors_notifying`];
//! without it [`store::Store::record_subprocessors`] records the in-app notices only).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use egress::registry::{Integrations, Registry};

/// The integrations file name in the data directory.
const DEFAULT_FILE: &str = "integrations.toml";

/// Reads and checks the integrations file: `explicit`, or `<data dir>/integrations.toml` when
/// present; none → no integrations. Refuses (naming the file, the key or the vendor, never a
/// secret) a bad file, a credential file readable by others, or a PHI-touching subprocessor
/// without a signed BAA.
pub(crate) fn load(explicit: Option<&Path>, data_dir: &Path) -> anyhow::Result<Integrations> {
    let path: Option<PathBuf> = if let Some(p) = explicit {
        Some(p.to_path_buf())
    } else {
        let p = data_dir.join(DEFAULT_FILE);
        p.exists().then_some(p)
    };
    let Some(path) = path else {
        return Ok(Integrations::none());
    };
    let integrations = Integrations::load(&path)
        .map_err(|e| anyhow::anyhow!("the integrations file was refused: {e}"))?;
    if let Err(uncovered) = integrations.check_coverage() {
        let list: Vec<String> = uncovered.iter().map(ToString::to_string).collect();
        anyhow::bail!(
            "refusing to start: {} ({})",
            list.join("; "),
            path.display()
        );
    }
    Ok(integrations)
}

/// Records the configured registry at `now` (dated changes, notice period of `notice_days`),
/// queueing the owners' notice emails when `owner` is given, and returns the registry in force
/// for the adapters and the publications.
pub(crate) async fn record(
    store: &store::Store,
    owner: Option<&store::OwnerStore>,
    integrations: Integrations,
    notice_days: u16,
    origin: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<server::subprocessors::Subprocessors> {
    let entries = integrations.entries();
    let notice = chrono::Duration::days(i64::from(notice_days));
    let recording = match owner {
        Some(owner) => {
            owner
                .record_subprocessors_notifying(&entries, now, notice)
                .await
        }
        None => store.record_subprocessors(&entries, now, notice).await,
    }
    .map_err(|e| anyhow::anyhow!("cannot record the subprocessor registry: {e}"))?;
    if !recording.changes.is_empty() {
        tracing::info!(
            emails = recording.emails_queued,
            "owners' notice emails queued for the subprocessor registry changes"
        );
    }
    for c in &recording.changes {
        tracing::info!(
            integration = %c.integration,
            change = c.kind.as_str(),
            effective_at = %c.effective_at,
            "subprocessor registry change recorded"
        );
    }
    Ok(server::subprocessors::Subprocessors {
        registry: Arc::new(Registry::new(integrations, &recording.state)),
        origin: origin.to_owned(),
        notice_days,
    })
}
