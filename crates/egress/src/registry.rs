//! The subprocessor registry: the deployment's integrations (SMS, email, push, payments,
//! geocoding, AI), what each vendor sees, its BAA, and from when it may be called.
//!
//! The registry is built from the integrations file ([`Integrations::load`]) and the state the
//! store recorded at the last start ([`Recorded`]); this module has no database access.
//!
//! # Guarantees
//! - Whether a vendor touches PHI, its role, data categories and training / retention posture
//!   are code ([`facts`]), not configuration: an operator can describe a vendor more fully
//!   ([`Overrides`]), never declare a PHI-touching one PHI-free.
//! - [`Integrations::check_coverage`] refuses a PHI-touching subprocessor without a signed BAA;
//!   `chartroom serve` does not start with one.
//! - Secrets are never in the file: credentials are paths of files readable by their owner only
//!   ([`Integrations::check_files`]); unknown keys are refused by name; error messages never
//!   repeat a configured value; base URLs carry no user, password or query.
//! - [`plan`] turns the last recorded state and the current configuration into dated changes
//!   (added, removed, BAA, location, role, …), and is idempotent: the same configuration gives
//!   no change. A subprocessor that newly touches PHI becomes active only
//!   [`DEFAULT_NOTICE_DAYS`] (or the configured notice) after it was first recorded; a removal
//!   takes effect at once.
//! - [`Registry::allowed_hosts`] is the one list of hosts the messaging and payment adapters
//!   may call at a given time: active integrations only (pending and removed ones are not on
//!   it).
//!
//! # Example
//! ```
//! use egress::registry::{Integrations, Registry, plan};
//! let text = r#"
//! [[integration]]
//! kind = "payments"
//! vendor = "stripe"
//! base_url = "https://api.stripe.com"
//! added = 2026-11-02
//! location = { country = "US" }
//! baa = { status = "not_required" }
//! "#;
//! let integrations = Integrations::parse(text, "integrations.toml").unwrap();
//! assert!(integrations.check_coverage().is_ok());
//! let now = chrono::Utc::now();
//! let p = plan(&[], &integrations.entries(), now, chrono::Duration::days(30));
//! let registry = Registry::new(integrations, &p.state);
//! assert_eq!(registry.allowed_hosts(now), vec!["api.stripe.com".to_owned()]);
//! ```

mod config;
mod facts;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub use config::{
    Baa, BaaStatus, ConfigError, Credentials, Dkim, Hosting, Integration, Integrations, Location,
    MAX_CONFIG_BYTES, MAX_INTEGRATIONS, Overrides, Sender, Uncovered,
};
pub use facts::{Facts, Kind, Phi, Vendor, facts};

/// The default notice period before a new PHI-touching subprocessor becomes active.
pub const DEFAULT_NOTICE_DAYS: u16 = 30;

/// One integration as published and as recorded: everything a change is detected on. Holds no
/// secret, no URL and no BAA document reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// `<kind>.<vendor>`.
    pub id: String,
    /// The vendor's stable name.
    pub vendor: Vendor,
    /// The vendor's name as shown.
    pub vendor_name: String,
    /// What it is for.
    pub kind: Kind,
    /// Its role.
    pub role: String,
    /// The data it receives.
    pub data_categories: Vec<String>,
    /// Whether it sees PHI.
    pub touches_phi: bool,
    /// Why it does or does not.
    pub phi_basis: String,
    /// Where it runs.
    pub hosting: Hosting,
    /// Whether it is a subprocessor (vendor-hosted).
    pub subprocessor: bool,
    /// BAA status: `signed`, `not_required`, or `none`.
    pub baa_status: String,
    /// When the BAA was signed.
    pub baa_signed_on: Option<NaiveDate>,
    /// Training posture.
    pub training: String,
    /// Retention posture.
    pub retention: String,
    /// Where data is processed.
    pub location: Location,
    /// When the operator added it.
    pub date_added: NaiveDate,
}

impl Entry {
    /// Whether it is a subprocessor that sees PHI (the ones that wait out the notice period).
    #[must_use]
    pub fn is_phi_subprocessor(&self) -> bool {
        self.touches_phi && self.subprocessor
    }
}

impl Integration {
    /// This integration as published and recorded.
    #[must_use]
    pub fn entry(&self) -> Entry {
        let f = self.facts();
        let o = &self.overrides;
        Entry {
            id: self.id(),
            vendor: self.vendor,
            vendor_name: self.vendor.display_name().to_owned(),
            kind: self.kind,
            role: o.role.clone().unwrap_or_else(|| f.role.to_owned()),
            data_categories: o
                .data_categories
                .clone()
                .unwrap_or_else(|| f.data_categories.iter().map(|c| (*c).to_owned()).collect()),
            touches_phi: self.touches_phi(),
            phi_basis: match f.phi {
                Phi::Touches(why) | Phi::None(why) => why.to_owned(),
            },
            hosting: self.hosting,
            subprocessor: self.is_subprocessor(),
            baa_status: match &self.baa {
                Some(b) if b.status == BaaStatus::Signed => "signed",
                Some(_) => "not_required",
                None if !(self.touches_phi() && self.is_subprocessor()) => "not_required",
                None => "none",
            }
            .to_owned(),
            baa_signed_on: self.baa.as_ref().and_then(|b| b.signed_on),
            training: o.training.clone().unwrap_or_else(|| f.training.to_owned()),
            retention: o
                .retention
                .clone()
                .unwrap_or_else(|| f.retention.to_owned()),
            location: self.location.clone(),
            date_added: self.added,
        }
    }
}

impl Integrations {
    /// Every integration as published and recorded, in file order.
    #[must_use]
    pub fn entries(&self) -> Vec<Entry> {
        self.list().iter().map(Integration::entry).collect()
    }
}

/// An integration as the store recorded it: its entry and from when it may be called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The entry as last recorded.
    pub entry: Entry,
    /// From when it may be called (after the notice period for a new PHI-touching
    /// subprocessor; at once otherwise).
    pub active_from: DateTime<Utc>,
}

/// What changed about an integration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Newly configured.
    Added,
    /// No longer configured (no longer called, at once).
    Removed,
    /// BAA status or date.
    Baa,
    /// Country or region.
    Location,
    /// Role text.
    Role,
    /// Data categories.
    DataCategories,
    /// Vendor-hosted or self-hosted.
    Hosting,
    /// Training or retention posture.
    Posture,
}

impl ChangeKind {
    /// The stable name (`added`, `removed`, `baa`, …).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Baa => "baa",
            ChangeKind::Location => "location",
            ChangeKind::Role => "role",
            ChangeKind::DataCategories => "data_categories",
            ChangeKind::Hosting => "hosting",
            ChangeKind::Posture => "posture",
        }
    }

    /// Parses [`ChangeKind::as_str`].
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [
            ChangeKind::Added,
            ChangeKind::Removed,
            ChangeKind::Baa,
            ChangeKind::Location,
            ChangeKind::Role,
            ChangeKind::DataCategories,
            ChangeKind::Hosting,
            ChangeKind::Posture,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One dated change to the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The integration (`<kind>.<vendor>`).
    pub integration: String,
    /// What changed.
    pub kind: ChangeKind,
    /// A one-line summary for people (no secret, no URL).
    pub summary: String,
    /// When it takes effect.
    pub effective_at: DateTime<Utc>,
    /// The entry after the change (before it, for a removal).
    pub entry: Entry,
}

/// The changes to record and the state to keep after them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The dated changes, in integration order (empty: nothing changed).
    pub changes: Vec<Change>,
    /// The state after them.
    pub state: Vec<Recorded>,
}

/// Compares the last recorded state with the current entries at `now`. An integration that
/// newly becomes a PHI-touching subprocessor (added, or moved from self-hosted to a vendor)
/// is active from `now + notice`; any other addition at once; an existing one keeps its
/// activation time. Same entries → no change.
#[must_use]
pub fn plan(
    previous: &[Recorded],
    current: &[Entry],
    now: DateTime<Utc>,
    notice: Duration,
) -> Plan {
    let before: BTreeMap<&str, &Recorded> =
        previous.iter().map(|r| (r.entry.id.as_str(), r)).collect();
    let mut changes = Vec::new();
    let mut state = Vec::new();
    for e in current {
        match before.get(e.id.as_str()) {
            None => {
                let active_from = if e.is_phi_subprocessor() {
                    now + notice
                } else {
                    now
                };
                changes.push(Change {
                    integration: e.id.clone(),
                    kind: ChangeKind::Added,
                    summary: added_summary(e, active_from, now),
                    effective_at: active_from,
                    entry: e.clone(),
                });
                state.push(Recorded {
                    entry: e.clone(),
                    active_from,
                });
            }
            Some(old) => {
                let newly_phi = e.is_phi_subprocessor() && !old.entry.is_phi_subprocessor();
                let active_from = if newly_phi {
                    now + notice
                } else {
                    old.active_from
                };
                for (kind, summary) in differences(&old.entry, e) {
                    let effective_at = if kind == ChangeKind::Hosting && newly_phi {
                        active_from
                    } else {
                        now
                    };
                    changes.push(Change {
                        integration: e.id.clone(),
                        kind,
                        summary,
                        effective_at,
                        entry: e.clone(),
                    });
                }
                state.push(Recorded {
                    entry: e.clone(),
                    active_from,
                });
            }
        }
    }
    for r in previous {
        if !current.iter().any(|e| e.id == r.entry.id) {
            changes.push(Change {
                integration: r.entry.id.clone(),
                kind: ChangeKind::Removed,
                summary: format!(
                    "{} ({}) removed: no longer called, effective immediately",
                    r.entry.vendor_name,
                    r.entry.kind.as_str()
                ),
                effective_at: now,
                entry: r.entry.clone(),
            });
        }
    }
    Plan { changes, state }
}

fn added_summary(e: &Entry, active_from: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let phi = if e.touches_phi {
        "touches PHI"
    } else {
        "no PHI"
    };
    let host = if e.subprocessor {
        "subprocessor"
    } else {
        "self-hosted, not a subprocessor"
    };
    if active_from > now {
        format!(
            "{} ({}) added: {host}, {phi}; active from {}",
            e.vendor_name,
            e.kind.as_str(),
            active_from.format("%Y-%m-%d")
        )
    } else {
        format!(
            "{} ({}) added: {host}, {phi}; active immediately",
            e.vendor_name,
            e.kind.as_str()
        )
    }
}

/// Each difference between two entries of the same integration, with a summary.
fn differences(old: &Entry, new: &Entry) -> Vec<(ChangeKind, String)> {
    let name = format!("{} ({})", new.vendor_name, new.kind.as_str());
    let mut out = Vec::new();
    if old.baa_status != new.baa_status || old.baa_signed_on != new.baa_signed_on {
        let signed = new
            .baa_signed_on
            .map(|d| format!(", signed {d}"))
            .unwrap_or_default();
        out.push((
            ChangeKind::Baa,
            format!(
                "{name}: BAA now {}{signed}",
                new.baa_status.replace('_', " ")
            ),
        ));
    }
    if old.location != new.location {
        let region = new
            .location
            .region
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        out.push((
            ChangeKind::Location,
            format!(
                "{name}: data now processed in {}{region}",
                new.location.country
            ),
        ));
    }
    if old.role != new.role {
        out.push((
            ChangeKind::Role,
            format!("{name}: role changed to: {}", new.role),
        ));
    }
    if old.data_categories != new.data_categories {
        out.push((
            ChangeKind::DataCategories,
            format!(
                "{name}: data categories now: {}",
                new.data_categories.join("; ")
            ),
        ));
    }
    if old.hosting != new.hosting || old.touches_phi != new.touches_phi {
        out.push((
            ChangeKind::Hosting,
            format!(
                "{name}: now {}",
                if new.subprocessor {
                    "run by the vendor (a subprocessor)"
                } else {
                    "self-hosted (not a subprocessor)"
                }
            ),
        ));
    }
    if old.training != new.training
        || old.retention != new.retention
        || old.phi_basis != new.phi_basis
        || old.vendor_name != new.vendor_name
        || old.date_added != new.date_added
    {
        out.push((
            ChangeKind::Posture,
            format!("{name}: training or retention posture updated"),
        ));
    }
    out
}

/// The registry in force: the configured integrations and from when each may be called.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    integrations: Integrations,
    active_from: BTreeMap<String, DateTime<Utc>>,
}

impl Registry {
    /// No integrations: nothing may be called.
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// The registry of `integrations` with the activation times of `state` (the store's
    /// record after [`plan`]). An integration missing from `state` is never active.
    #[must_use]
    pub fn new(integrations: Integrations, state: &[Recorded]) -> Self {
        let active_from = state
            .iter()
            .map(|r| (r.entry.id.clone(), r.active_from))
            .collect();
        Self {
            integrations,
            active_from,
        }
    }

    /// The configured integrations.
    #[must_use]
    pub fn integrations(&self) -> &Integrations {
        &self.integrations
    }

    /// From when `integration` (`<kind>.<vendor>`) may be called, when it is configured.
    #[must_use]
    pub fn active_from(&self, integration: &str) -> Option<DateTime<Utc>> {
        self.active_from.get(integration).copied()
    }

    /// The integrations that may be called at `now`.
    #[must_use]
    pub fn active(&self, now: DateTime<Utc>) -> Vec<&Integration> {
        self.integrations
            .list()
            .iter()
            .filter(|i| self.active_from(&i.id()).is_some_and(|t| t <= now))
            .collect()
    }

    /// The active integration of `kind`, if any (the first in the file).
    #[must_use]
    pub fn active_of(&self, kind: Kind, now: DateTime<Utc>) -> Option<&Integration> {
        self.active(now).into_iter().find(|i| i.kind == kind)
    }

    /// The hosts the messaging and payment adapters may call at `now` (sorted, lower case):
    /// those of active integrations only.
    #[must_use]
    pub fn allowed_hosts(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .active(now)
            .into_iter()
            .flat_map(Integration::hosts)
            .collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// Whether `host` may be called at `now` (case-insensitive, trailing dot ignored).
    #[must_use]
    pub fn allows_host(&self, host: &str, now: DateTime<Utc>) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed_hosts(now).contains(&host)
    }
}

#[cfg(test)]
mod tests;
