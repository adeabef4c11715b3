//! The live trust page's facts: `GET /trust.json` here, and the web app's `/trust` page from
//! the same [`document`]. Public, no PHI, every claim from evidence of the running build:
//!
//! - the **evidence pack** given to `serve --evidence-pack` (checked against its signature at
//!   start-up, see [`evidence::load`]): each requirement row with its status and tests, and
//!   the rows **not done** (pending, with the reason; failed; without a passing test). Without
//!   a pack the document says so (`evidence: null`) and claims nothing;
//! - the **subprocessor registry** with its dated changes ([`crate::subprocessors::published`]);
//! - the **security contact and policy** (the `security.txt` the server is configured with);
//! - the **latest signed checkpoint** of the installation's own audit log, with the key that
//!   verifies it;
//! - **backup and restore recency** from the installation's log ([`store::trust`]);
//! - the **changelog** (`docs/changelog.md`, built in).
//!
//! # The JSON document (version 1)
//! ```json
//! {
//!   "version": 1, "generated_at": "…",
//!   "evidence": { "commit": "…", "generated_at": "…", "count_line": "65/83 requirements proven (…)",
//!                 "summary": { "rows": 83, "proven": 65, "pending": 18, … },
//!                 "sha256": "…", "verifier_key": "chartroom-evidence+…", "signature": "…",
//!                 "rows": [{ "id": "AC-02", "requirement": "…", "status": "proven",
//!                            "tests": [{ "name": "…", "outcome": "passed" }] }] },
//!   "not_done": [{ "id": "AUD-08", "requirement": "…", "status": "pending", "reason": "…" }],
//!   "subprocessors": { …the /.well-known/subprocessors.json document… },
//!   "security": { "contacts": ["mailto:…"], "policy": "https://…", "expires": "…" },
//!   "audit_checkpoint": { "origin": "…", "size": 42, "note": "…", "verifier_key": "…" },
//!   "backups": { "last_backup_at": "…", "last_restore_at": null },
//!   "changelog": [{ "date": "2026-12-07", "items": ["…"] }]
//! }
//! ```
//! Fields are only ever added.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use evidence::{Loaded, Status};
use serde::Serialize;
use store::trust::BackupRecency;

pub use evidence::load as load_pack;

use crate::subprocessors::Published;
use crate::{AppError, AppState};

/// The changelog, built in.
pub const CHANGELOG: &str = include_str!("../../../docs/changelog.md");
/// How long the published documents may be cached.
pub const CACHE_CONTROL: &str = "public, max-age=300";
/// How long the backup recency read from the database is reused (the page is public: this
/// bounds the database work anyone can cause).
pub const BACKUP_CACHE: Duration = Duration::from_secs(60);

/// What the trust page knows besides the database: the running build's evidence pack and
/// the audit checkpoints' verifier key.
#[derive(Debug, Default)]
pub struct Trust {
    pack: Option<Loaded>,
    checkpoint_verifier_key: Option<String>,
    backups: Mutex<Option<(Instant, BackupRecency)>>,
}

impl Trust {
    /// The trust page of a build with `pack` (checked already: [`evidence::load`]) whose
    /// checkpoints verify with `checkpoint_verifier_key`.
    #[must_use]
    pub fn new(pack: Option<Loaded>, checkpoint_verifier_key: Option<String>) -> Self {
        Self {
            pack,
            checkpoint_verifier_key,
            backups: Mutex::default(),
        }
    }

    /// The evidence pack, when one is loaded.
    #[must_use]
    pub fn pack(&self) -> Option<&Loaded> {
        self.pack.as_ref()
    }
}

/// One test as published.
#[derive(Debug, Clone, Serialize)]
pub struct TrustTest {
    /// The libtest name.
    pub name: String,
    /// `passed`, `failed`, `ignored` or `not_run`.
    pub outcome: String,
}

/// One requirement row as published.
#[derive(Debug, Clone, Serialize)]
pub struct TrustRow {
    /// `AC-02`.
    pub id: String,
    /// What is required.
    pub requirement: String,
    /// `proven`, `failed`, `pending` or `unproven`.
    pub status: &'static str,
    /// The tests tagged with it.
    pub tests: Vec<TrustTest>,
}

/// The evidence pack as published.
#[derive(Debug, Clone, Serialize)]
pub struct TrustEvidence {
    /// The commit the pack was made from.
    pub commit: String,
    /// When it was made.
    pub generated_at: String,
    /// `65/83 requirements proven (…)`.
    pub count_line: String,
    /// The counts.
    pub summary: evidence::pack::Summary,
    /// SHA-256 of the pack's JSON.
    pub sha256: String,
    /// The key that verifies the signature.
    pub verifier_key: String,
    /// The signed note over the digest.
    pub signature: String,
    /// Every row.
    pub rows: Vec<TrustRow>,
}

/// A row that is not done.
#[derive(Debug, Clone, Serialize)]
pub struct NotDone {
    /// `AUD-08`.
    pub id: String,
    /// What is required.
    pub requirement: String,
    /// `pending`, `failed` or `unproven`.
    pub status: &'static str,
    /// Why (pending rows), or what the pack found.
    pub reason: String,
}

/// The security contact and policy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrustSecurity {
    /// The `Contact:` URIs.
    pub contacts: Vec<String>,
    /// The `Policy:` URL.
    pub policy: Option<String>,
    /// When the `security.txt` expires.
    pub expires: Option<String>,
}

/// The installation log's latest signed checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct TrustCheckpoint {
    /// The log's origin line.
    pub origin: String,
    /// How many events it covers.
    pub size: u64,
    /// The signed note.
    pub note: String,
    /// The key that verifies it.
    pub verifier_key: Option<String>,
}

/// Backup recency.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrustBackups {
    /// The newest backup archive written.
    pub last_backup_at: Option<String>,
    /// The newest restore of this installation from an archive.
    pub last_restore_at: Option<String>,
}

/// One dated changelog entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangelogEntry {
    /// `2026-12-07`.
    pub date: String,
    /// What changed.
    pub items: Vec<String>,
}

/// The whole trust document.
#[derive(Debug, Clone, Serialize)]
pub struct TrustDoc {
    /// The document version.
    pub version: u32,
    /// When it was produced.
    pub generated_at: String,
    /// The running build's evidence pack; `None` when none is loaded.
    pub evidence: Option<TrustEvidence>,
    /// What is not done.
    pub not_done: Vec<NotDone>,
    /// The subprocessor registry and its changes.
    pub subprocessors: Published,
    /// The security contact and policy.
    pub security: TrustSecurity,
    /// The latest signed checkpoint of the installation's log.
    pub audit_checkpoint: Option<TrustCheckpoint>,
    /// Backup recency.
    pub backups: TrustBackups,
    /// The changelog, newest first.
    pub changelog: Vec<ChangelogEntry>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The changelog's entries: `## YYYY-MM-DD` headings, each with its `- ` items, newest first.
#[must_use]
pub fn changelog(text: &str) -> Vec<ChangelogEntry> {
    let mut out: Vec<ChangelogEntry> = Vec::new();
    for line in text.lines() {
        if let Some(date) = line.strip_prefix("## ") {
            let date = date.trim();
            if chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok() {
                out.push(ChangelogEntry {
                    date: date.to_owned(),
                    items: Vec::new(),
                });
            }
        } else if let Some(item) = line.strip_prefix("- ")
            && let Some(entry) = out.last_mut()
        {
            entry.items.push(item.trim().to_owned());
        } else if let Some(more) = line.strip_prefix("  ")
            && let Some(item) = out.last_mut().and_then(|e| e.items.last_mut())
        {
            item.push(' ');
            item.push_str(more.trim());
        }
    }
    out.sort_by(|a, b| b.date.cmp(&a.date));
    out
}

/// The contact, policy and expiry lines of a `security.txt`.
fn security(txt: Option<&str>) -> TrustSecurity {
    let mut out = TrustSecurity::default();
    for line in txt.unwrap_or_default().lines() {
        if let Some(c) = line.strip_prefix("Contact: ") {
            out.contacts.push(c.trim().to_owned());
        } else if let Some(p) = line.strip_prefix("Policy: ") {
            out.policy = Some(p.trim().to_owned());
        } else if let Some(e) = line.strip_prefix("Expires: ") {
            out.expires = Some(e.trim().to_owned());
        }
    }
    out
}

fn evidence_doc(loaded: &Loaded) -> (TrustEvidence, Vec<NotDone>) {
    let pack = &loaded.pack;
    let rows = pack
        .rows
        .iter()
        .map(|r| TrustRow {
            id: r.id.clone(),
            requirement: r.requirement.clone(),
            status: r.status.as_str(),
            tests: r
                .tests
                .iter()
                .map(|t| TrustTest {
                    name: t.name.clone(),
                    outcome: t.outcome.clone(),
                })
                .collect(),
        })
        .collect();
    let not_done = pack
        .not_done()
        .map(|r| NotDone {
            id: r.id.clone(),
            requirement: r.requirement.clone(),
            status: r.status.as_str(),
            reason: match r.status {
                Status::Failed => "a test that proves it failed in this build's run".into(),
                Status::Unproven => "no test that proves it passed in this build's run".into(),
                Status::Pending | Status::Proven => r
                    .pending_reason
                    .clone()
                    .unwrap_or_else(|| "not proven yet".into()),
            },
        })
        .collect();
    (
        TrustEvidence {
            commit: pack.commit.clone(),
            generated_at: pack.generated_at.clone(),
            count_line: pack.count_line(),
            summary: pack.summary.clone(),
            sha256: loaded.sha256.clone(),
            verifier_key: loaded.verifier_key.clone(),
            signature: loaded.signature.clone(),
            rows,
        },
        not_done,
    )
}

async fn installation_checkpoint(state: &AppState) -> Result<Option<TrustCheckpoint>, AppError> {
    let Some(place) = &state.checkpoints else {
        return Ok(None);
    };
    let system = domain::PracticeId::SYSTEM.as_uuid();
    let note = place
        .latest(system)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(note.map(|note| {
        let mut lines = note.lines();
        let origin = lines.next().unwrap_or_default().to_owned();
        let size = lines
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        TrustCheckpoint {
            origin,
            size,
            note,
            verifier_key: state.trust.checkpoint_verifier_key.clone(),
        }
    }))
}

async fn backups(state: &AppState) -> Result<BackupRecency, AppError> {
    let cached = state
        .trust
        .backups
        .lock()
        .ok()
        .and_then(|c| *c)
        .filter(|(at, _)| at.elapsed() < BACKUP_CACHE);
    if let Some((_, b)) = cached {
        return Ok(b);
    }
    let fresh = state.store.backup_recency().await?;
    if let Ok(mut c) = state.trust.backups.lock() {
        *c = Some((Instant::now(), fresh));
    }
    Ok(fresh)
}

/// The trust document at `now`.
pub async fn document(state: &AppState, now: DateTime<Utc>) -> Result<TrustDoc, AppError> {
    let (evidence, not_done) = match state.trust.pack() {
        Some(loaded) => {
            let (e, n) = evidence_doc(loaded);
            (Some(e), n)
        }
        None => (None, Vec::new()),
    };
    let b = backups(state).await?;
    Ok(TrustDoc {
        version: 1,
        generated_at: rfc3339(now),
        evidence,
        not_done,
        subprocessors: crate::subprocessors::published(state, now).await?,
        security: security(state.security_txt.as_deref()),
        audit_checkpoint: installation_checkpoint(state).await?,
        backups: TrustBackups {
            last_backup_at: b.last_backup_at.map(rfc3339),
            last_restore_at: b.last_restore_at.map(rfc3339),
        },
        changelog: changelog(CHANGELOG),
    })
}

/// `GET /trust.json` (public).
pub(crate) async fn trust_json(State(state): State<AppState>) -> Result<Response, AppError> {
    let doc = document(&state, state.clock.now()).await?;
    let body = serde_json::to_string_pretty(&doc)
        .map_err(|e| AppError::Internal(format!("trust.json: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, CACHE_CONTROL),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changelog_entries_newest_first() {
        let got = changelog(
            "# Changelog\n\n## 2026-11-22\n- First.\n\n## 2026-12-07\n- Second,\n  wrapped.\n- Third.\n## not a date\n",
        );
        assert_eq!(
            got,
            vec![
                ChangelogEntry {
                    date: "2026-12-07".into(),
                    items: vec!["Second, wrapped.".into(), "Third.".into()],
                },
                ChangelogEntry {
                    date: "2026-11-22".into(),
                    items: vec!["First.".into()],
                },
            ]
        );
        assert!(
            !changelog(CHANGELOG).is_empty(),
            "the built-in changelog parses"
        );
    }

    #[test]
    fn security_lines() {
        let s = security(Some(
            "Contact: mailto:a@example.invalid\nExpires: 2027-01-01T00:00:00Z\nPolicy: https://example.invalid/p\n",
        ));
        assert_eq!(s.contacts, ["mailto:a@example.invalid"]);
        assert_eq!(s.policy.as_deref(), Some("https://example.invalid/p"));
        assert_eq!(s.expires.as_deref(), Some("2027-01-01T00:00:00Z"));
        assert!(security(None).contacts.is_empty());
    }
}
