//! The published subprocessor registry: `GET /.well-known/subprocessors.json` (a stable JSON
//! document) and `GET /subprocessors.atom` (an Atom feed, RFC 4287, one entry per dated
//! change). Both are public, read the registry the store recorded at start-up
//! ([`store::subprocessors`]), and are cacheable for [`MAX_AGE_SECS`]. The web app's
//! `/subprocessors` page and the owners' notices read the same [`published`].
//!
//! # The JSON document (version 1)
//! ```json
//! {
//!   "version": 1,
//!   "generated_at": "2026-12-01T09:00:00Z",
//!   "notice_days": 30,
//!   "subprocessors": [{
//!     "id": "sms.telnyx", "vendor": "telnyx", "vendor_name": "Telnyx", "kind": "sms",
//!     "role": "…", "data_categories": ["…"], "touches_phi": true, "phi_basis": "…",
//!     "hosting": "vendor", "subprocessor": true,
//!     "baa": { "status": "signed", "signed_on": "2026-10-30" },
//!     "training": "…", "retention": "…",
//!     "location": { "country": "US", "region": "us-east" },
//!     "date_added": "2026-11-02",
//!     "status": "pending", "effective_at": "2026-12-31T09:00:00Z"
//!   }],
//!   "changes": [{ "id": 7, "integration": "sms.telnyx", "change": "added", "summary": "…",
//!                 "recorded_at": "…", "effective_at": "…" }]
//! }
//! ```
//! `status` is `active` or `pending` (a new PHI-touching subprocessor during its notice
//! period; `effective_at` says from when). `baa.status` is `signed`, `not_required` or `none`.
//! Fields are only ever added. Nothing in it is secret: no credentials, no URLs, no BAA
//! document references.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use egress::registry::{DEFAULT_NOTICE_DAYS, Entry, Registry};
use serde::Serialize;
use store::subprocessors::RecordedChange;

use crate::{AppError, AppState};

/// How long the published documents may be cached (seconds).
pub const MAX_AGE_SECS: u32 = 300;
/// The `Cache-Control` of the published documents.
pub const CACHE_CONTROL: &str = "public, max-age=300";
/// Most changes in the feed and on the page.
pub const MAX_PUBLISHED_CHANGES: i64 = 200;

/// The registry a server runs with: the in-memory allow-list for the messaging and payment
/// adapters, the origin the publications name, and the notice period.
#[derive(Debug, Clone)]
pub struct Subprocessors {
    /// The registry in force ([`Registry::allowed_hosts`] is the adapters' allow-list).
    pub registry: Arc<Registry>,
    /// The public origin (`https://records.example.org`), for the feed's ids and links.
    pub origin: String,
    /// Days a new PHI-touching subprocessor waits before it becomes active.
    pub notice_days: u16,
}

impl Default for Subprocessors {
    fn default() -> Self {
        Self {
            registry: Arc::new(Registry::empty()),
            origin: "https://localhost".into(),
            notice_days: DEFAULT_NOTICE_DAYS,
        }
    }
}

/// One subprocessor as published.
#[derive(Debug, Clone, Serialize)]
pub struct PublishedEntry {
    /// `<kind>.<vendor>`.
    pub id: String,
    /// The vendor's stable name.
    pub vendor: String,
    /// The vendor's name as shown.
    pub vendor_name: String,
    /// `sms`, `email`, `push`, `payments`, `geocoding` or `ai`.
    pub kind: &'static str,
    /// Its role.
    pub role: String,
    /// The data it receives.
    pub data_categories: Vec<String>,
    /// Whether it sees PHI.
    pub touches_phi: bool,
    /// Why it does or does not.
    pub phi_basis: String,
    /// `vendor` or `self_hosted`.
    pub hosting: &'static str,
    /// Whether it is a subprocessor (vendor-hosted).
    pub subprocessor: bool,
    /// The BAA.
    pub baa: PublishedBaa,
    /// Training posture.
    pub training: String,
    /// Retention posture.
    pub retention: String,
    /// Where data is processed.
    pub location: egress::registry::Location,
    /// When the operator added it.
    pub date_added: NaiveDate,
    /// `active` or `pending`.
    pub status: &'static str,
    /// From when it is (or will be) active.
    pub effective_at: String,
}

/// A BAA as published.
#[derive(Debug, Clone, Serialize)]
pub struct PublishedBaa {
    /// `signed`, `not_required` or `none`.
    pub status: String,
    /// When it was signed.
    pub signed_on: Option<NaiveDate>,
}

/// One change as published.
#[derive(Debug, Clone, Serialize)]
pub struct PublishedChange {
    /// The change's id (increasing).
    pub id: i64,
    /// The integration.
    pub integration: String,
    /// The vendor's name as shown.
    pub vendor_name: String,
    /// `added`, `removed`, `baa`, `location`, `role`, `data_categories`, `hosting`, `posture`.
    pub change: &'static str,
    /// The summary.
    pub summary: String,
    /// When it was recorded.
    pub recorded_at: String,
    /// When it takes effect.
    pub effective_at: String,
    /// Whether it has taken effect.
    #[serde(skip)]
    pub in_effect: bool,
}

/// The whole publication.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    /// The document version.
    pub version: u32,
    /// When it was produced.
    pub generated_at: String,
    /// The notice period in days.
    pub notice_days: u16,
    /// The subprocessors and self-hosted services.
    pub subprocessors: Vec<PublishedEntry>,
    /// The changes, newest first.
    pub changes: Vec<PublishedChange>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn published_entry(e: Entry, active_from: DateTime<Utc>, now: DateTime<Utc>) -> PublishedEntry {
    PublishedEntry {
        id: e.id,
        vendor: e.vendor.as_str().to_owned(),
        vendor_name: e.vendor_name,
        kind: e.kind.as_str(),
        role: e.role,
        data_categories: e.data_categories,
        touches_phi: e.touches_phi,
        phi_basis: e.phi_basis,
        hosting: match e.hosting {
            egress::registry::Hosting::Vendor => "vendor",
            egress::registry::Hosting::SelfHosted => "self_hosted",
        },
        subprocessor: e.subprocessor,
        baa: PublishedBaa {
            status: e.baa_status,
            signed_on: e.baa_signed_on,
        },
        training: e.training,
        retention: e.retention,
        location: e.location,
        date_added: e.date_added,
        status: if active_from <= now {
            "active"
        } else {
            "pending"
        },
        effective_at: rfc3339(active_from),
    }
}

/// A recorded change as published (at `now`).
#[must_use]
pub fn published_change(c: RecordedChange, now: DateTime<Utc>) -> PublishedChange {
    PublishedChange {
        id: c.change_id,
        integration: c.integration,
        vendor_name: c.entry.vendor_name,
        change: c.kind.as_str(),
        summary: c.summary,
        recorded_at: rfc3339(c.recorded_at),
        effective_at: rfc3339(c.effective_at),
        in_effect: c.effective_at <= now,
    }
}

/// The registry as recorded, at `now` (the injected clock): every integration with its
/// status, and the most recent changes. Reads installation-level facts only (no PHI, not
/// audited).
pub async fn published(state: &AppState, now: DateTime<Utc>) -> Result<Published, AppError> {
    let recorded = state.store.subprocessors().await?;
    let changes = state
        .store
        .subprocessor_changes(MAX_PUBLISHED_CHANGES)
        .await?;
    Ok(Published {
        version: 1,
        generated_at: rfc3339(now),
        notice_days: state.subprocessors.notice_days,
        subprocessors: recorded
            .into_iter()
            .map(|r| published_entry(r.entry, r.active_from, now))
            .collect(),
        changes: changes
            .into_iter()
            .map(|c| published_change(c, now))
            .collect(),
    })
}

/// `GET /.well-known/subprocessors.json` (public).
pub(crate) async fn subprocessors_json(
    State(state): State<AppState>,
) -> Result<Response, AppError> {
    let doc = published(&state, state.clock.now()).await?;
    let body = serde_json::to_string_pretty(&doc)
        .map_err(|e| AppError::Internal(format!("subprocessors.json: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, CACHE_CONTROL),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
        .into_response())
}

/// `GET /subprocessors.atom` (public).
pub(crate) async fn subprocessors_atom(
    State(state): State<AppState>,
) -> Result<Response, AppError> {
    let doc = published(&state, state.clock.now()).await?;
    let body = atom(&doc, &state.subprocessors.origin);
    Ok((
        [
            (header::CONTENT_TYPE, "application/atom+xml; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE_CONTROL),
        ],
        body,
    )
        .into_response())
}

/// XML character data and attribute values.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 does not allow.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// The Atom feed (RFC 4287): feed id, title, updated, author, self link; one entry per change
/// with its id, title, updated (when recorded), published and a text summary with the
/// effective date.
#[must_use]
pub fn atom(doc: &Published, origin: &str) -> String {
    let origin = origin.trim_end_matches('/');
    let updated = doc.changes.first().map_or_else(
        || "1970-01-01T00:00:00Z".to_owned(),
        |c| c.recorded_at.clone(),
    );
    let mut out = String::new();
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n\
         <id>{o}/subprocessors.atom</id>\n<title>Subprocessor changes</title>\n\
         <updated>{u}</updated>\n<author><name>Chartroom</name></author>\n\
         <link rel=\"self\" type=\"application/atom+xml\" href=\"{o}/subprocessors.atom\"/>\n\
         <link rel=\"alternate\" type=\"text/html\" href=\"{o}/subprocessors\"/>\n",
        o = xml(origin),
        u = xml(&updated),
    );
    for c in &doc.changes {
        let _ = write!(
            out,
            "<entry>\n<id>{o}/subprocessors#change-{id}</id>\n<title>{title}</title>\n\
             <updated>{at}</updated>\n<published>{at}</published>\n\
             <link rel=\"alternate\" type=\"text/html\" href=\"{o}/subprocessors#change-{id}\"/>\n\
             <category term=\"{change}\"/>\n\
             <summary type=\"text\">{summary} (effective {eff})</summary>\n</entry>\n",
            o = xml(origin),
            id = c.id,
            title = xml(&c.summary),
            at = xml(&c.recorded_at),
            change = c.change,
            summary = xml(&c.summary),
            eff = xml(&c.effective_at),
        );
    }
    out.push_str("</feed>\n");
    out
}
