//! Security incidents and breach clocks (req IR-01, IR-02, IR-03): the status lifecycle, every
//! deadline computed from the discovery time, the alert schedule, and the four-factor risk
//! assessment that must be recorded before an incident may close as "not a breach".
//!
//! # Guarantees
//! - Every clock is a pure function of the discovery time and the incident's terms
//!   ([`Terms`]) and, for the thresholds, of the affected counts ([`Affected`]): no clock reads
//!   the time. Whether a clock is due is asked with a time from the injected [`crate::Clock`]
//!   ([`due_alerts`]).
//! - The lifecycle is one table ([`Status::allows`]): forward only, closing only after the
//!   incident was at least being assessed, closed states final.
//! - [`Assessment::permits_not_a_breach`] is the one rule for closing as "not a breach"; the
//!   database enforces the same rule with a check constraint (migration 0031).
//!
//! # Deadlines and their sources
//! | Clock | Due | Source |
//! |---|---|---|
//! | `contingency_notice` | 24 h | Security Rule NPRM (2025), proposed 164.314(a)(2)(i)(D) |
//! | `baa_notice` | the BAA's hours | 164.410(b) (at most 60 days; the BAA may say less) |
//! | `restoration_target` | 72 h | Security Rule NPRM (2025), proposed 164.308(a)(13)(ii)(C) |
//! | `gdpr_authority` | 72 h, when GDPR applies | GDPR Art. 33(1) |
//! | `individuals` | 60 days | 164.404(b) |
//! | `hhs` | 60 days at 500 or more affected (or not yet scoped); else 60 days after the end of the calendar year of discovery | 164.408(b), (c) |
//! | `media` | 60 days, when more than 500 residents of one state are affected | 164.406 |
//!
//! Alerts ([`ALERTS`]) come at 24, 48 and 72 hours and on days 45, 55 and 60 after discovery
//! (req IR-02), and as each clock above comes due.
//!
//! # Example
//! ```
//! use chrono::{Duration, TimeZone, Utc};
//! use domain::incident::{clocks, ClockKind, Terms};
//! let found = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
//! let all = clocks(found, Terms { baa_notice_hours: 120, gdpr: false }, None);
//! let individuals = all.iter().find(|c| c.kind == ClockKind::Individuals).unwrap();
//! assert_eq!(individuals.due, found + Duration::days(60));
//! ```

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde::Serialize;

/// Where an incident stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = IncidentStatus)]
pub enum Status {
    /// Recorded, not yet looked into.
    Open,
    /// Being assessed (scope, risk).
    Assessing,
    /// Contained: the cause is stopped.
    Contained,
    /// Closed as a breach of unsecured PHI (notifications owed).
    ClosedBreach,
    /// Closed as not a breach (low probability of compromise, four factors recorded).
    ClosedNotBreach,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 5] = [
        Status::Open,
        Status::Assessing,
        Status::Contained,
        Status::ClosedBreach,
        Status::ClosedNotBreach,
    ];

    /// The stable name stored in `incident.status`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Assessing => "assessing",
            Status::Contained => "contained",
            Status::ClosedBreach => "closed_breach",
            Status::ClosedNotBreach => "closed_not_breach",
        }
    }

    /// The status named `s`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the incident is closed (its clocks no longer raise alerts).
    #[must_use]
    pub const fn is_closed(self) -> bool {
        matches!(self, Status::ClosedBreach | Status::ClosedNotBreach)
    }

    /// Whether an incident may move from `self` to `to`: forward only; closing only once it is
    /// being assessed or contained; a closed incident stays closed. (Closing as "not a breach"
    /// also needs the assessment: [`Assessment::permits_not_a_breach`].)
    #[must_use]
    pub fn allows(self, to: Status) -> bool {
        if self.is_closed() || to <= self {
            return false;
        }
        !(to.is_closed() && self == Status::Open)
    }
}

/// How an incident was detected: a closed set.
pub const DETECTION_SOURCES: [&str; 7] = [
    "staff_report",
    "audit_review",
    "patient_report",
    "vendor_notice",
    "automated_alert",
    "law_enforcement",
    "other",
];

/// Who a notification letter went to: a closed set.
pub const RECIPIENT_KINDS: [&str; 7] = [
    "individual",
    "next_of_kin",
    "practice",
    "hhs",
    "media",
    "state_attorney_general",
    "supervisory_authority",
];

/// The terms an incident was recorded under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terms {
    /// Hours the business associate agreement gives to notify the practice (1–1440).
    pub baa_notice_hours: u32,
    /// Whether GDPR applies (the practice opted in): the supervisory authority is owed notice
    /// within 72 hours.
    pub gdpr: bool,
}

/// The most hours a BAA notice period may be: 60 days (164.410(b)(1)).
pub const MAX_BAA_NOTICE_HOURS: u32 = 60 * 24;

/// The affected individuals, once scoped: the total and the count per state of residence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Affected {
    /// How many individuals.
    pub total: u64,
    /// How many per two-letter state code (individuals with no recorded state are in the
    /// total only).
    pub per_state: BTreeMap<String, u64>,
}

/// HHS is notified within 60 days when this many or more are affected (164.408(b)).
pub const HHS_THRESHOLD: u64 = 500;
/// Media notice is owed when more than this many residents of one state are affected
/// (164.406(a)).
pub const MEDIA_THRESHOLD: u64 = 500;

/// A deadline computed from the discovery time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    /// Notice of a contingency-plan activation (24 h).
    ContingencyNotice,
    /// Notice to the practice under the BAA (configurable hours).
    BaaNotice,
    /// Restoration of affected systems (72 h target).
    RestorationTarget,
    /// Notice to the GDPR supervisory authority (72 h, when GDPR applies).
    GdprAuthority,
    /// Notice to individuals (60 days).
    Individuals,
    /// Notice to HHS (60 days at 500 or more; otherwise the annual log).
    Hhs,
    /// Notice to prominent media (60 days, more than 500 residents of a state).
    Media,
}

impl ClockKind {
    /// The stable name (stored with the alert raised for it).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ClockKind::ContingencyNotice => "contingency_notice",
            ClockKind::BaaNotice => "baa_notice",
            ClockKind::RestorationTarget => "restoration_target",
            ClockKind::GdprAuthority => "gdpr_authority",
            ClockKind::Individuals => "individuals",
            ClockKind::Hhs => "hhs",
            ClockKind::Media => "media",
        }
    }
}

/// One clock of an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Deadline {
    /// Which.
    pub kind: ClockKind,
    /// When it is due.
    pub due: DateTime<Utc>,
}

/// 60 days (164.404(b), 164.406(b), 164.408(b)).
fn sixty_days() -> Duration {
    Duration::days(60)
}

/// The first instant of the calendar year after the one `t` falls in (UTC).
fn next_year_start(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(t.year() + 1, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(t + Duration::days(366))
}

/// Every clock of an incident discovered at `discovered`, in due order (ties in
/// [`ClockKind`] order). `affected` is `None` until the incident is scoped: HHS is then due in
/// 60 days (the stricter reading), and no media clock runs yet.
#[must_use]
pub fn clocks(
    discovered: DateTime<Utc>,
    terms: Terms,
    affected: Option<&Affected>,
) -> Vec<Deadline> {
    let hours = i64::from(terms.baa_notice_hours.clamp(1, MAX_BAA_NOTICE_HOURS));
    let mut out = vec![
        Deadline {
            kind: ClockKind::ContingencyNotice,
            due: discovered + Duration::hours(24),
        },
        Deadline {
            kind: ClockKind::BaaNotice,
            due: discovered + Duration::hours(hours),
        },
        Deadline {
            kind: ClockKind::RestorationTarget,
            due: discovered + Duration::hours(72),
        },
        Deadline {
            kind: ClockKind::Individuals,
            due: discovered + sixty_days(),
        },
    ];
    if terms.gdpr {
        out.push(Deadline {
            kind: ClockKind::GdprAuthority,
            due: discovered + Duration::hours(72),
        });
    }
    let hhs_now = affected.is_none_or(|a| a.total >= HHS_THRESHOLD);
    out.push(Deadline {
        kind: ClockKind::Hhs,
        due: if hhs_now {
            discovered + sixty_days()
        } else {
            next_year_start(discovered) + sixty_days()
        },
    });
    if affected.is_some_and(|a| a.per_state.values().any(|&n| n > MEDIA_THRESHOLD)) {
        out.push(Deadline {
            kind: ClockKind::Media,
            due: discovered + sixty_days(),
        });
    }
    out.sort_by_key(|d| (d.due, d.kind));
    out
}

/// The states whose affected residents pass the media threshold (more than 500).
#[must_use]
pub fn media_states(affected: &Affected) -> Vec<&str> {
    affected
        .per_state
        .iter()
        .filter(|(_, n)| **n > MEDIA_THRESHOLD)
        .map(|(s, _)| s.as_str())
        .collect()
}

/// The alert schedule of IR-02: (name, time after discovery).
pub const ALERTS: [(&str, i64); 6] = [
    ("alert_24h", 24),
    ("alert_48h", 48),
    ("alert_72h", 72),
    ("day_45", 45 * 24),
    ("day_55", 55 * 24),
    ("day_60", 60 * 24),
];

/// Every alert of an incident: the schedule ([`ALERTS`]) and each clock's own due time, by
/// name, in due order.
#[must_use]
pub fn alert_schedule(
    discovered: DateTime<Utc>,
    terms: Terms,
    affected: Option<&Affected>,
) -> Vec<(&'static str, DateTime<Utc>)> {
    let mut out: Vec<(&'static str, DateTime<Utc>)> = ALERTS
        .iter()
        .map(|(name, h)| (*name, discovered + Duration::hours(*h)))
        .chain(
            clocks(discovered, terms, affected)
                .into_iter()
                .map(|c| (c.kind.as_str(), c.due)),
        )
        .collect();
    out.sort_by_key(|(name, due)| (*due, *name));
    out
}

/// The alerts due at `now` (due time at or before it), in due order. A closed incident raises
/// none.
#[must_use]
pub fn due_alerts(
    discovered: DateTime<Utc>,
    terms: Terms,
    affected: Option<&Affected>,
    status: Status,
    now: DateTime<Utc>,
) -> Vec<(&'static str, DateTime<Utc>)> {
    if status.is_closed() {
        return Vec::new();
    }
    alert_schedule(discovered, terms, affected)
        .into_iter()
        .filter(|(_, due)| *due <= now)
        .collect()
}

/// The four-factor risk assessment (164.402(2)(i)–(iv)). The texts are sealed at rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// (i) The nature and extent of the PHI involved (identifiers, likelihood of
    /// re-identification).
    pub nature: String,
    /// (ii) The unauthorized person who used the PHI or to whom it was disclosed.
    pub person: String,
    /// (iii) Whether the PHI was actually acquired or viewed.
    pub acquired: String,
    /// (iv) The extent to which the risk to the PHI has been mitigated.
    pub mitigation: String,
    /// The conclusion: a low probability that the PHI has been compromised.
    pub low_probability: bool,
}

impl Assessment {
    /// Whether this assessment lets an incident close as "not a breach": every factor
    /// recorded (non-blank) and a conclusion of low probability of compromise.
    #[must_use]
    pub fn permits_not_a_breach(&self) -> bool {
        self.low_probability
            && [&self.nature, &self.person, &self.acquired, &self.mitigation]
                .iter()
                .all(|f| !f.trim().is_empty())
    }
}

/// Whether `s` is a two-letter state code (`CA`, `NY`): upper-case ASCII letters.
#[must_use]
pub fn is_state_code(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Clock, ManualClock};
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 14, 30, 0).unwrap()
    }

    const TERMS: Terms = Terms {
        baa_notice_hours: 120,
        gdpr: false,
    };

    fn due(all: &[Deadline], kind: ClockKind) -> Option<DateTime<Utc>> {
        all.iter().find(|c| c.kind == kind).map(|c| c.due)
    }

    fn affected(total: u64, states: &[(&str, u64)]) -> Affected {
        Affected {
            total,
            per_state: states.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect(),
        }
    }

    // req: IR-02 — every deadline from the discovery time.
    #[test]
    fn ir_02_every_clock_is_computed_from_the_discovery_time() {
        let d = t0();
        let all = clocks(d, TERMS, None);
        assert_eq!(
            due(&all, ClockKind::ContingencyNotice),
            Some(d + Duration::hours(24))
        );
        assert_eq!(
            due(&all, ClockKind::BaaNotice),
            Some(d + Duration::hours(120))
        );
        assert_eq!(
            due(&all, ClockKind::RestorationTarget),
            Some(d + Duration::hours(72))
        );
        assert_eq!(
            due(&all, ClockKind::Individuals),
            Some(d + Duration::days(60))
        );
        assert_eq!(
            due(&all, ClockKind::Hhs),
            Some(d + Duration::days(60)),
            "not scoped: strict"
        );
        assert_eq!(
            due(&all, ClockKind::GdprAuthority),
            None,
            "GDPR not opted in"
        );
        assert_eq!(due(&all, ClockKind::Media), None, "not scoped");
        let gdpr = clocks(
            d,
            Terms {
                baa_notice_hours: 48,
                gdpr: true,
            },
            None,
        );
        assert_eq!(
            due(&gdpr, ClockKind::GdprAuthority),
            Some(d + Duration::hours(72))
        );
        assert_eq!(
            due(&gdpr, ClockKind::BaaNotice),
            Some(d + Duration::hours(48))
        );
        // The BAA period is capped at the legal 60 days.
        let long = clocks(
            d,
            Terms {
                baa_notice_hours: 10_000,
                gdpr: false,
            },
            None,
        );
        assert_eq!(
            due(&long, ClockKind::BaaNotice),
            Some(d + Duration::days(60))
        );
    }

    // req: IR-02, IR-03 — the 500 thresholds: HHS at 500 or more in total, media at more than
    // 500 residents of one state.
    #[test]
    fn ir_02_thresholds_at_500_move_the_hhs_and_media_clocks() {
        let d = t0();
        let small = affected(499, &[("CA", 499)]);
        let all = clocks(d, TERMS, Some(&small));
        assert_eq!(
            due(&all, ClockKind::Hhs),
            Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap() + Duration::days(60)),
            "under 500: the annual log, 60 days after the year ends"
        );
        assert_eq!(due(&all, ClockKind::Media), None);
        let at = affected(500, &[("CA", 250), ("NV", 250)]);
        let all = clocks(d, TERMS, Some(&at));
        assert_eq!(due(&all, ClockKind::Hhs), Some(d + Duration::days(60)));
        assert_eq!(
            due(&all, ClockKind::Media),
            None,
            "no state has more than 500"
        );
        let media = affected(1200, &[("CA", 501), ("NV", 500), ("OR", 199)]);
        let all = clocks(d, TERMS, Some(&media));
        assert_eq!(due(&all, ClockKind::Media), Some(d + Duration::days(60)));
        assert_eq!(media_states(&media), vec!["CA"]);
    }

    // req: IR-02 — alerts at 24/48/72 h and days 45/55/60, each due exactly then, on the
    // injected clock; none before, none for a closed incident.
    #[test]
    fn ir_02_alerts_come_due_at_24_48_72_hours_and_days_45_55_60() {
        let d = t0();
        let terms = Terms {
            baa_notice_hours: 72,
            gdpr: false,
        };
        let clock = ManualClock::new(d);
        let names = |now| {
            due_alerts(d, terms, None, Status::Open, now)
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        };
        assert!(names(clock.now()).is_empty());
        let steps: [(i64, &[&str]); 6] = [
            (24, &["alert_24h", "contingency_notice"]),
            (48, &["alert_48h"]),
            (72, &["alert_72h", "baa_notice", "restoration_target"]),
            (45 * 24, &["day_45"]),
            (55 * 24, &["day_55"]),
            (60 * 24, &["day_60", "hhs", "individuals"]),
        ];
        let mut seen: Vec<&str> = Vec::new();
        let mut at = 0;
        for (hours, new) in steps {
            // One second before: not yet.
            clock.advance(Duration::hours(hours - at) - Duration::seconds(1));
            let mut before = names(clock.now());
            before.sort_unstable();
            let mut had = seen.clone();
            had.sort_unstable();
            assert_eq!(before, had, "before {hours} h");
            clock.advance(Duration::seconds(1));
            seen.extend_from_slice(new);
            let mut now_due = names(clock.now());
            now_due.sort_unstable();
            let mut want = seen.clone();
            want.sort_unstable();
            assert_eq!(now_due, want, "at {hours} h");
            at = hours;
        }
        assert!(due_alerts(d, terms, None, Status::ClosedBreach, clock.now()).is_empty());
    }

    // req: IR-01 — the lifecycle: forward only, closing only after assessment began, closed
    // is final.
    #[test]
    fn ir_01_lifecycle_moves_forward_only() {
        use Status::*;
        let cases = [
            (Open, Assessing, true),
            (Open, Contained, true),
            (Assessing, Contained, true),
            (Assessing, ClosedBreach, true),
            (Contained, ClosedNotBreach, true),
            (Open, ClosedBreach, false),
            (Open, ClosedNotBreach, false),
            (Contained, Assessing, false),
            (Assessing, Assessing, false),
            (ClosedBreach, ClosedNotBreach, false),
            (ClosedNotBreach, Open, false),
        ];
        for (from, to, ok) in cases {
            assert_eq!(from.allows(to), ok, "{from:?} -> {to:?}");
        }
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("closed"), None);
    }

    // req: IR-02 — "not a breach" needs all four factors and the low-probability conclusion.
    #[test]
    fn ir_02_not_a_breach_needs_the_four_factors() {
        let full = Assessment {
            nature: "names and appointment times only".into(),
            person: "a workforce member of another covered entity".into(),
            acquired: "not viewed: the envelope came back sealed".into(),
            mitigation: "returned unopened".into(),
            low_probability: true,
        };
        assert!(full.permits_not_a_breach());
        for i in 0..4 {
            let mut a = full.clone();
            *[
                &mut a.nature,
                &mut a.person,
                &mut a.acquired,
                &mut a.mitigation,
            ]
            .into_iter()
            .nth(i)
            .unwrap() = "  ".into();
            assert!(!a.permits_not_a_breach(), "factor {i} blank");
        }
        let high = Assessment {
            low_probability: false,
            ..full
        };
        assert!(!high.permits_not_a_breach());
    }

    #[test]
    fn state_codes_are_two_upper_case_letters() {
        for (s, ok) in [
            ("CA", true),
            ("ny", false),
            ("C", false),
            ("CAL", false),
            ("C1", false),
        ] {
            assert_eq!(is_state_code(s), ok, "{s}");
        }
    }

    proptest! {
        // req: IR-02 — for any discovery time and BAA period: every clock is at or after
        // discovery and at most 60 days later (the annual HHS log aside), the individuals'
        // clock is exactly 60 days, and alerts are due exactly from their time on.
        #[test]
        fn ir_02_clocks_hold_for_any_discovery_time(
            secs in 0i64..4_000_000_000,
            hours in 1u32..=1440,
            gdpr in any::<bool>(),
            probe in 0i64..(70 * 24 * 3600),
        ) {
            let d = Utc.timestamp_opt(secs, 0).unwrap();
            let terms = Terms { baa_notice_hours: hours, gdpr };
            let all = clocks(d, terms, None);
            for c in &all {
                prop_assert!(c.due > d);
                prop_assert!(c.due <= d + Duration::days(60));
            }
            prop_assert_eq!(due(&all, ClockKind::Individuals), Some(d + Duration::days(60)));
            prop_assert_eq!(due(&all, ClockKind::BaaNotice), Some(d + Duration::hours(i64::from(hours))));
            prop_assert_eq!(due(&all, ClockKind::GdprAuthority).is_some(), gdpr);
            let now = d + Duration::seconds(probe);
            let due_now = due_alerts(d, terms, None, Status::Assessing, now);
            for (name, at) in alert_schedule(d, terms, None) {
                prop_assert_eq!(due_now.iter().any(|(n, _)| *n == name), at <= now);
            }
        }
    }
}
