//! Patients' requests under the HIPAA Privacy Rule: the right of access (164.524, req PR-01)
//! and the right to amend (164.526, req SIG-08): each request's deadline computed from its
//! receipt, the one extension it may have, and its lifecycle.
//!
//! # Guarantees
//! - A deadline is a pure function of the receipt time, the request's kind and whether it was
//!   extended ([`due`]): no clock is read here. Whether a request is overdue is asked with a
//!   time from the injected [`crate::Clock`] ([`is_overdue`]).
//! - The lifecycle is one function ([`apply`]): an open request may be extended once (with a
//!   written reason, before its first deadline passes), and an open or extended request is
//!   closed by granting it (access given, amendment accepted) or denying it (with a written
//!   reason). Closed requests are final. The database enforces the same shape (migration
//!   0037: one extension column, the deadline a check constraint on the receipt time).
//!
//! # Deadlines and their sources
//! | Request | Due | Extension | Source |
//! |---|---|---|---|
//! | Access | 30 days after receipt | once, 30 days, written reason given within the first 30 days | 164.524(b)(2)(i), (iii) |
//! | Amendment | 60 days after receipt | once, 30 days, written reason given within the first 60 days | 164.526(b)(2)(i), (ii) |
//!
//! # Example
//! ```
//! use chrono::{Duration, TimeZone, Utc};
//! use domain::rights::{due, RequestKind};
//! let received = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
//! assert_eq!(due(RequestKind::Access, received, false), received + Duration::days(30));
//! assert_eq!(due(RequestKind::Access, received, true), received + Duration::days(60));
//! assert_eq!(due(RequestKind::Amendment, received, true), received + Duration::days(90));
//! ```

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// Which right a request exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// Access to (a copy of) the designated record set (164.524).
    Access,
    /// Amendment of a record (164.526).
    Amendment,
}

impl RequestKind {
    /// Days from receipt to the first deadline: 30 for access (164.524(b)(2)(i)), 60 for an
    /// amendment (164.526(b)(2)(i)).
    #[must_use]
    pub const fn days(self) -> i64 {
        match self {
            RequestKind::Access => 30,
            RequestKind::Amendment => 60,
        }
    }
}

/// The one extension's length: 30 days (164.524(b)(2)(iii), 164.526(b)(2)(ii)).
pub const EXTENSION_DAYS: i64 = 30;

/// When a request of `kind` received at `received` is due: its first deadline, or, once
/// extended, that plus [`EXTENSION_DAYS`].
#[must_use]
pub fn due(kind: RequestKind, received: DateTime<Utc>, extended: bool) -> DateTime<Utc> {
    let first = received + Duration::days(kind.days());
    if extended {
        first + Duration::days(EXTENSION_DAYS)
    } else {
        first
    }
}

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = RightsRequestStatus)]
pub enum Status {
    /// Received, not yet acted on.
    Open,
    /// Extended once (a written reason was given); still to act on.
    Extended,
    /// Granted: access given (the export produced) or the amendment made.
    Granted,
    /// Denied, with a written reason.
    Denied,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 4] = [
        Status::Open,
        Status::Extended,
        Status::Granted,
        Status::Denied,
    ];

    /// The stable name stored in the request's `status` column.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Extended => "extended",
            Status::Granted => "granted",
            Status::Denied => "denied",
        }
    }

    /// The status named `s`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the request is closed (granted or denied): final, and never overdue.
    #[must_use]
    pub const fn is_closed(self) -> bool {
        matches!(self, Status::Granted | Status::Denied)
    }
}

/// What is done to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Extend the deadline once by [`EXTENSION_DAYS`] (needs a written reason).
    Extend,
    /// Grant it (access given, amendment made).
    Grant,
    /// Deny it (needs a written reason).
    Deny,
}

/// Why an action was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A second extension (only one is allowed).
    #[error("the request was already extended once; a second extension is not allowed")]
    AlreadyExtended,
    /// An extension after the first deadline passed (the written statement is owed within it).
    #[error("the first deadline has passed; an extension must be given before it")]
    TooLateToExtend,
    /// The request is already granted or denied.
    #[error("the request is closed")]
    Closed,
    /// An extension or a denial without a written reason.
    #[error("a written reason is required")]
    ReasonRequired,
}

/// The status after `action` on a request of `kind` received at `received`, now `status`,
/// at `now`, with the written `reason` (blank counts as none): the one rule of the lifecycle.
///
/// # Errors
/// [`Refusal`] when the action is not allowed; nothing is to change then.
pub fn apply(
    kind: RequestKind,
    received: DateTime<Utc>,
    status: Status,
    action: Action,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Status, Refusal> {
    let has_reason = reason.is_some_and(|r| !r.trim().is_empty());
    if status.is_closed() {
        return Err(Refusal::Closed);
    }
    match action {
        Action::Extend => {
            if status == Status::Extended {
                return Err(Refusal::AlreadyExtended);
            }
            if !has_reason {
                return Err(Refusal::ReasonRequired);
            }
            if now >= due(kind, received, false) {
                return Err(Refusal::TooLateToExtend);
            }
            Ok(Status::Extended)
        }
        Action::Grant => Ok(Status::Granted),
        Action::Deny => {
            if has_reason {
                Ok(Status::Denied)
            } else {
                Err(Refusal::ReasonRequired)
            }
        }
    }
}

/// Whether the one extension may still be given at `now` to a request of `kind` received at
/// `received`, now `status` (open, before its first deadline): [`apply`]'s own answer for an
/// extension with a written reason.
#[must_use]
pub fn may_extend(
    kind: RequestKind,
    received: DateTime<Utc>,
    status: Status,
    now: DateTime<Utc>,
) -> bool {
    apply(
        kind,
        received,
        status,
        Action::Extend,
        Some("a written reason"),
        now,
    )
    .is_ok()
}

/// Whether a request in `status`, due at `due_at`, is overdue at `now`: still open or extended
/// at or after its deadline.
#[must_use]
pub fn is_overdue(status: Status, due_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    !status.is_closed() && now >= due_at
}

/// The forms a copy may be asked for (164.524(c)(2)): machine-readable FHIR R4 JSON, a
/// human-readable HTML rendering, or paper (printed from the HTML rendering).
pub const ACCESS_FORMS: [&str; 3] = ["fhir_json", "html", "paper"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Clock, ManualClock};
    use chrono::TimeZone;
    use proptest::prelude::*;

    type Case<'a> = (
        Status,
        Action,
        Option<&'a str>,
        DateTime<Utc>,
        Result<Status, Refusal>,
    );

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 2, 27, 16, 45, 12).unwrap()
    }

    // req: PR-01 (and the 164.526 amendment clock, API to come) — the deadlines from the receipt
    // time: 30 days for access, 60 for an amendment, each plus 30 once extended (across a month end
    // and a leap-free February).
    #[test]
    fn pr_01_deadlines_are_computed_from_the_receipt() {
        let r = t0();
        assert_eq!(
            due(RequestKind::Access, r, false),
            Utc.with_ymd_and_hms(2026, 3, 29, 16, 45, 12).unwrap()
        );
        assert_eq!(
            due(RequestKind::Access, r, true),
            Utc.with_ymd_and_hms(2026, 4, 28, 16, 45, 12).unwrap()
        );
        assert_eq!(
            due(RequestKind::Amendment, r, false),
            Utc.with_ymd_and_hms(2026, 4, 28, 16, 45, 12).unwrap()
        );
        assert_eq!(
            due(RequestKind::Amendment, r, true),
            Utc.with_ymd_and_hms(2026, 5, 28, 16, 45, 12).unwrap()
        );
    }

    // req: PR-01 (and the 164.526 amendment clock, API to come) — on the injected clock: not overdue
    // one second before the deadline, overdue at it; an extension moves it by 30 days; a closed
    // request is never overdue.
    #[test]
    fn pr_01_overdue_exactly_at_the_deadline_on_the_injected_clock() {
        for kind in [RequestKind::Access, RequestKind::Amendment] {
            let r = t0();
            let clock = ManualClock::new(r);
            let first = due(kind, r, false);
            clock.advance(first - r - Duration::seconds(1));
            assert!(!is_overdue(Status::Open, first, clock.now()), "{kind:?}");
            // Extending one second before the first deadline is still in time.
            let s = apply(
                kind,
                r,
                Status::Open,
                Action::Extend,
                Some("records in storage"),
                clock.now(),
            )
            .unwrap();
            assert_eq!(s, Status::Extended);
            let second = due(kind, r, true);
            assert_eq!(second - first, Duration::days(30));
            clock.advance(Duration::seconds(1));
            assert!(!is_overdue(s, second, clock.now()));
            clock.advance(Duration::days(30) - Duration::seconds(1));
            assert!(!is_overdue(s, second, clock.now()));
            clock.advance(Duration::seconds(1));
            assert!(
                is_overdue(s, second, clock.now()),
                "{kind:?} at the deadline"
            );
            assert!(!is_overdue(Status::Granted, second, clock.now()));
            assert!(!is_overdue(Status::Denied, second, clock.now()));
        }
    }

    // req: PR-01 (and the 164.526 amendment clock, API to come) — the state machine: one extension
    // only, with a reason, before the first deadline; deny needs a reason; closed is final.
    #[test]
    fn pr_01_state_machine() {
        use Action::*;
        use Status::*;
        let r = t0();
        let soon = r + Duration::days(1);
        let late = r + Duration::days(30);
        let k = RequestKind::Access;
        let cases: [Case<'_>; 12] = [
            (Open, Extend, Some("why"), soon, Ok(Extended)),
            (
                Extended,
                Extend,
                Some("why"),
                soon,
                Err(Refusal::AlreadyExtended),
            ),
            (Open, Extend, None, soon, Err(Refusal::ReasonRequired)),
            (Open, Extend, Some("  "), soon, Err(Refusal::ReasonRequired)),
            (
                Open,
                Extend,
                Some("why"),
                late,
                Err(Refusal::TooLateToExtend),
            ),
            (Open, Grant, None, late, Ok(Granted)),
            (Extended, Grant, None, soon, Ok(Granted)),
            (Open, Deny, Some("why"), soon, Ok(Denied)),
            (Extended, Deny, None, soon, Err(Refusal::ReasonRequired)),
            (Granted, Deny, Some("why"), soon, Err(Refusal::Closed)),
            (Denied, Grant, None, soon, Err(Refusal::Closed)),
            (Denied, Extend, Some("why"), soon, Err(Refusal::Closed)),
        ];
        for (from, action, reason, now, want) in cases {
            assert_eq!(
                apply(k, r, from, action, reason, now),
                want,
                "{from:?} {action:?} {reason:?}"
            );
        }
        // An amendment may still be extended on day 59, not on day 60.
        let a = RequestKind::Amendment;
        assert_eq!(
            apply(a, r, Open, Extend, Some("why"), r + Duration::days(59)),
            Ok(Extended)
        );
        assert_eq!(
            apply(a, r, Open, Extend, Some("why"), r + Duration::days(60)),
            Err(Refusal::TooLateToExtend)
        );
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("fulfilled"), None);
    }

    proptest! {
        // req: PR-01 (and the 164.526 amendment clock, API to come) — for any receipt time and any
        // sequence of actions: at most one extension ever succeeds, the deadline is never more than
        // first + 30 days, and once closed nothing changes.
        #[test]
        fn pr_01_at_most_one_extension_for_any_sequence(
            secs in 0i64..4_000_000_000,
            amendment in any::<bool>(),
            steps in proptest::collection::vec((0u8..3, any::<bool>(), 0i64..(100 * 24 * 3600)), 0..12),
        ) {
            let r = Utc.timestamp_opt(secs, 0).unwrap();
            let kind = if amendment { RequestKind::Amendment } else { RequestKind::Access };
            let mut status = Status::Open;
            let mut extensions = 0;
            for (a, reason, offset) in steps {
                let action = match a { 0 => Action::Extend, 1 => Action::Grant, _ => Action::Deny };
                let now = r + Duration::seconds(offset);
                let before = status;
                if let Ok(next) = apply(kind, r, status, action, reason.then_some("written reason"), now) {
                    prop_assert!(!before.is_closed());
                    if action == Action::Extend {
                        extensions += 1;
                        prop_assert!(now < due(kind, r, false));
                    }
                    status = next;
                } else {
                    prop_assert_eq!(status, before);
                }
            }
            prop_assert!(extensions <= 1);
            let d = due(kind, r, status == Status::Extended);
            prop_assert!(d <= r + Duration::days(kind.days() + EXTENSION_DAYS));
        }
    }
}
