//! Per-user quotas on the routes that can pull many patients out at once (req OPS-06):
//! patient lookups (the list and the search, API and pages alike) and record exports.
//!
//! Each member has a budget per kind and fixed window ([`QuotaConfig`]). Past it, the request
//! is refused with `429` `RATE-0001` and a `Retry-After` before anything is read; every
//! refusal is audited as a denied access (`access.denied`, reason `rate_limit`, the kind as
//! its route: ids only), and the first refusal of a window also raises the `chartroom::alert`
//! hook operators route to their paging — the owners see the same rows in their audit log.
//! Counts are kept in memory per server process (bounded: expired windows are dropped), like
//! the sign-in throttle; behind several replicas each holds its own count, so a user's
//! budget is at most the replicas times the configured one.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use domain::{PracticeId, UserId};

/// What a quota limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// Listing or searching the practice's patients.
    PatientLookup,
    /// Exporting a patient's designated record set.
    RecordExport,
}

impl QuotaKind {
    /// The name in audit details and alerts.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PatientLookup => "patient_lookup",
            Self::RecordExport => "record_export",
        }
    }

    /// What the refusal tells the user they did too often.
    #[must_use]
    pub const fn what(self) -> &'static str {
        match self {
            Self::PatientLookup => "patient searches and lists",
            Self::RecordExport => "record exports",
        }
    }
}

/// The budgets: requests per window, per user and practice.
#[derive(Clone, Copy, Debug)]
pub struct QuotaConfig {
    /// Patient lists and searches.
    pub lookups: u32,
    /// Record exports.
    pub exports: u32,
    /// The window both are counted over.
    pub window: Duration,
}

impl Default for QuotaConfig {
    /// 300 lookups and 30 exports in 15 minutes: a busy front desk searches a few times a
    /// minute; a script walking the whole practice does hundreds.
    fn default() -> Self {
        Self {
            lookups: 300,
            exports: 30,
            window: Duration::minutes(15),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Window {
    started: DateTime<Utc>,
    used: u32,
    alerted: bool,
}

/// A refusal: seconds until the window ends, and whether it is the first of this window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverQuota {
    /// Seconds to wait.
    pub retry_after: i64,
    /// Whether this refusal crossed the quota (the alert is raised once per window).
    pub first: bool,
}

/// Most windows kept before expired ones are dropped.
const MAX_ENTRIES: usize = 100_000;

/// The per-user counters.
#[derive(Debug)]
pub struct Quotas {
    cfg: QuotaConfig,
    counts: Mutex<HashMap<(PracticeId, UserId, QuotaKind), Window>>,
}

impl Default for Quotas {
    fn default() -> Self {
        Self::new(QuotaConfig::default())
    }
}

impl Quotas {
    /// Counters with `cfg`.
    #[must_use]
    pub fn new(cfg: QuotaConfig) -> Self {
        Self {
            cfg,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, kind: QuotaKind) -> u32 {
        match kind {
            QuotaKind::PatientLookup => self.cfg.lookups,
            QuotaKind::RecordExport => self.cfg.exports,
        }
    }

    /// Counts one request of `kind` by `user` in `practice` at `now`.
    ///
    /// # Errors
    /// [`OverQuota`] when the window's budget is spent (the request is not counted).
    pub fn take(
        &self,
        practice: PracticeId,
        user: UserId,
        kind: QuotaKind,
        now: DateTime<Utc>,
    ) -> Result<(), OverQuota> {
        let window = self.cfg.window;
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if counts.len() >= MAX_ENTRIES {
            counts.retain(|_, w| now - w.started < window);
        }
        let w = counts.entry((practice, user, kind)).or_insert(Window {
            started: now,
            used: 0,
            alerted: false,
        });
        if now - w.started >= window || now < w.started {
            *w = Window {
                started: now,
                used: 0,
                alerted: false,
            };
        }
        if w.used >= self.limit(kind) {
            let first = !w.alerted;
            w.alerted = true;
            return Err(OverQuota {
                retry_after: (w.started + window - now).num_seconds().max(1),
                first,
            });
        }
        w.used += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_per_user_kind_and_window() {
        let quotas = Quotas::new(QuotaConfig {
            lookups: 2,
            exports: 1,
            window: Duration::minutes(10),
        });
        let (p, a, b) = (PracticeId::new(), UserId::new(), UserId::new());
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let look = QuotaKind::PatientLookup;
        assert_eq!(quotas.take(p, a, look, t0), Ok(()));
        assert_eq!(quotas.take(p, a, look, t0), Ok(()));
        assert_eq!(
            quotas.take(p, a, look, t0 + Duration::minutes(4)),
            Err(OverQuota {
                retry_after: 360,
                first: true
            })
        );
        assert_eq!(
            quotas.take(p, a, look, t0 + Duration::minutes(5)),
            Err(OverQuota {
                retry_after: 300,
                first: false
            })
        );
        // Another user, another kind: their own budgets.
        assert_eq!(quotas.take(p, b, look, t0), Ok(()));
        assert_eq!(quotas.take(p, a, QuotaKind::RecordExport, t0), Ok(()));
        assert!(quotas.take(p, a, QuotaKind::RecordExport, t0).is_err());
        // A new window.
        assert_eq!(quotas.take(p, a, look, t0 + Duration::minutes(10)), Ok(()));
    }
}
