//! Online booking rules: a practice's bookable services, its clinicians' weekly hours, the
//! slots they leave free, the cancellation window and its fees, and when reminders go out.
//!
//! Everything here is pure: the store supplies the hours and the busy times, and re-checks a
//! chosen slot with [`slot_is_free`] inside the transaction that books it, so two clients
//! racing for one slot cannot both get it (the database's exclusion constraint is the last
//! line).
//!
//! Local times are the practice's wall clock in its IANA time zone. A weekly window that falls
//! in a daylight-saving gap loses the missing hour; in the repeated hour the earlier instant is
//! used, so no slot is offered twice.
//!
//! # Example
//! ```
//! use chrono::{NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
//! use domain::booking::{Availability, ClinicianWeek, WeeklyHours};
//! use domain::UserId;
//!
//! let dr = UserId::new();
//! let week = ClinicianWeek {
//!     clinician: dr,
//!     hours: vec![WeeklyHours::new(Weekday::Mon, NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
//!                                  NaiveTime::from_hms_opt(10, 0, 0).unwrap()).unwrap()],
//!     busy: vec![],
//! };
//! let q = Availability {
//!     tz: chrono_tz::Europe::London,
//!     now: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
//!     from: NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(), // a Monday
//!     days: 1,
//!     duration_minutes: 30,
//!     step_minutes: 15,
//!     min_notice_minutes: 0,
//!     max_days_ahead: 60,
//! };
//! let slots = q.slots(&[week]);
//! assert_eq!(slots.len(), 3); // 09:00, 09:15, 09:30
//! ```

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::UserId;
use crate::values::ValueError;

/// The most days one availability query covers.
pub const MAX_QUERY_DAYS: u32 = 31;
/// The most slots one availability query returns.
pub const MAX_SLOTS: usize = 500;
/// The longest bookable service, in minutes.
pub const MAX_DURATION_MINUTES: u32 = 8 * 60;
/// The furthest ahead a practice may open its book, in days.
pub const MAX_DAYS_AHEAD: u32 = 365;

/// One weekly opening of a clinician, in the practice's local time (`start < end`, same day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WeeklyHours {
    /// The day of the week.
    #[schema(value_type = String, example = "Mon")]
    pub weekday: chrono::Weekday,
    /// Opening (local).
    #[schema(value_type = String, example = "09:00:00")]
    pub start: NaiveTime,
    /// Closing (local).
    #[schema(value_type = String, example = "17:00:00")]
    pub end: NaiveTime,
}

impl WeeklyHours {
    /// An opening; `start` must be before `end`.
    ///
    /// # Errors
    /// A [`ValueError`] naming the rule.
    pub fn new(
        weekday: chrono::Weekday,
        start: NaiveTime,
        end: NaiveTime,
    ) -> Result<Self, ValueError> {
        if start >= end {
            return Err(ValueError::new("hours", "must open before they close"));
        }
        Ok(Self {
            weekday,
            start,
            end,
        })
    }
}

/// A clinician's week and what is already booked.
#[derive(Debug, Clone)]
pub struct ClinicianWeek {
    /// The clinician.
    pub clinician: UserId,
    /// Their weekly openings.
    pub hours: Vec<WeeklyHours>,
    /// Busy intervals `[start, end)` (appointments not cancelled, time off).
    pub busy: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

/// A free slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Slot {
    /// Who.
    pub clinician: UserId,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End.
    pub ends_at: DateTime<Utc>,
}

/// An availability query.
#[derive(Debug, Clone, Copy)]
pub struct Availability {
    /// The practice's time zone.
    pub tz: Tz,
    /// Now.
    pub now: DateTime<Utc>,
    /// The first local day.
    pub from: NaiveDate,
    /// How many days (at most [`MAX_QUERY_DAYS`]).
    pub days: u32,
    /// The service's length.
    pub duration_minutes: u32,
    /// Slot starts are this many minutes apart from the opening.
    pub step_minutes: u32,
    /// Nothing starts sooner than this after `now`.
    pub min_notice_minutes: u32,
    /// Nothing starts later than this many days after `now`.
    pub max_days_ahead: u32,
}

/// The first instant of a local time (the earlier one in a repeated hour), or none in a gap.
fn instant(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

fn overlaps(a: (DateTime<Utc>, DateTime<Utc>), b: &(DateTime<Utc>, DateTime<Utc>)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

impl Availability {
    fn window(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (
            self.now + Duration::minutes(i64::from(self.min_notice_minutes)),
            self.now + Duration::days(i64::from(self.max_days_ahead.min(MAX_DAYS_AHEAD))),
        )
    }

    /// Whether the query's numbers are in range.
    fn sane(&self) -> bool {
        self.duration_minutes > 0
            && self.duration_minutes <= MAX_DURATION_MINUTES
            && self.step_minutes >= 5
            && self.step_minutes <= 240
    }

    /// The free slots of every clinician, by start then clinician, at most [`MAX_SLOTS`].
    #[must_use]
    pub fn slots(&self, clinicians: &[ClinicianWeek]) -> Vec<Slot> {
        let mut out = Vec::new();
        if !self.sane() {
            return out;
        }
        let (earliest, latest) = self.window();
        let length = Duration::minutes(i64::from(self.duration_minutes));
        let step = Duration::minutes(i64::from(self.step_minutes));
        for day in self
            .from
            .iter_days()
            .take(self.days.min(MAX_QUERY_DAYS) as usize)
        {
            for c in clinicians {
                for h in c.hours.iter().filter(|h| h.weekday == day.weekday()) {
                    let close = day.and_time(h.end);
                    let mut local = day.and_time(h.start);
                    while local + length <= close {
                        if let (Some(start), Some(end)) =
                            (instant(self.tz, local), instant(self.tz, local + length))
                            && start >= earliest
                            && start <= latest
                            && end > start
                            && !c.busy.iter().any(|b| overlaps((start, end), b))
                        {
                            out.push(Slot {
                                clinician: c.clinician,
                                starts_at: start,
                                ends_at: end,
                            });
                        }
                        local += step;
                    }
                }
            }
        }
        out.sort_by_key(|s| (s.starts_at, s.clinician));
        out.dedup();
        out.truncate(MAX_SLOTS);
        out
    }
}

/// Whether `starts_at` is a slot this query would offer `clinician` (the check a booking
/// repeats inside its transaction, against the busy times read there).
#[must_use]
pub fn slot_is_free(q: &Availability, week: &ClinicianWeek, starts_at: DateTime<Utc>) -> bool {
    let local_day = starts_at.with_timezone(&q.tz).date_naive();
    let q = Availability {
        from: local_day,
        days: 1,
        ..*q
    };
    q.slots(std::slice::from_ref(week))
        .iter()
        .any(|s| s.starts_at == starts_at)
}

/// How a service is paid for when booked online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PaymentPolicy {
    /// Nothing at booking.
    None,
    /// A deposit of this many minor units.
    Deposit {
        /// Amount in minor units.
        amount_minor: u32,
    },
    /// The full price in advance.
    Prepay {
        /// Amount in minor units.
        amount_minor: u32,
    },
    /// A card kept on file for late-cancel and no-show fees (nothing charged now).
    CardOnFile,
}

impl PaymentPolicy {
    /// What is charged when the booking is made, in minor units.
    #[must_use]
    pub const fn due_now(self) -> Option<u32> {
        match self {
            Self::Deposit { amount_minor } | Self::Prepay { amount_minor } => Some(amount_minor),
            Self::None | Self::CardOnFile => None,
        }
    }
}

/// A practice's cancellation window and fees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CancellationPolicy {
    /// A cancellation less than this many hours before the start is late.
    pub window_hours: u32,
    /// The fee for a late cancellation, in minor units (0: none).
    pub late_cancel_fee_minor: u32,
    /// The fee for a no-show, in minor units (0: none).
    pub no_show_fee_minor: u32,
}

/// What a cancellation costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelTerms {
    /// Free: outside the window.
    Free,
    /// Late: the fee applies (it may be 0).
    Late {
        /// Fee in minor units.
        fee_minor: u32,
    },
    /// The appointment has started or passed: it can no longer be cancelled online.
    TooLate,
}

impl CancellationPolicy {
    /// The terms of cancelling, at `now`, an appointment that starts at `starts_at`.
    #[must_use]
    pub fn terms(&self, now: DateTime<Utc>, starts_at: DateTime<Utc>) -> CancelTerms {
        if now >= starts_at {
            CancelTerms::TooLate
        } else if starts_at - now < Duration::hours(i64::from(self.window_hours)) {
            CancelTerms::Late {
                fee_minor: self.late_cancel_fee_minor,
            }
        } else {
            CancelTerms::Free
        }
    }
}

/// A reminder's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReminderChannel {
    /// Email, 48 hours before.
    Email,
    /// SMS, 24 hours before (skipped once the client has confirmed).
    Sms,
}

/// How long before the start each reminder goes.
pub const REMINDERS: [(ReminderChannel, i64); 2] =
    [(ReminderChannel::Email, 48), (ReminderChannel::Sms, 24)];

/// The reminders an appointment booked at `booked_at` gets: each channel's due time, unless
/// that time had already passed when it was booked (a booking made 30 hours ahead gets the
/// SMS only; its confirmation already told the client).
#[must_use]
pub fn reminders(
    booked_at: DateTime<Utc>,
    starts_at: DateTime<Utc>,
) -> Vec<(ReminderChannel, DateTime<Utc>)> {
    REMINDERS
        .iter()
        .map(|&(ch, hours)| (ch, starts_at - Duration::hours(hours)))
        .filter(|&(_, due)| due > booked_at)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;
    use proptest::prelude::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn query(tz: Tz, from: NaiveDate, days: u32) -> Availability {
        Availability {
            tz,
            now: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            from,
            days,
            duration_minutes: 60,
            step_minutes: 30,
            min_notice_minutes: 0,
            max_days_ahead: 365,
        }
    }

    fn week(hours: Vec<WeeklyHours>) -> ClinicianWeek {
        ClinicianWeek {
            clinician: UserId::new(),
            hours,
            busy: vec![],
        }
    }

    #[test]
    fn a_busy_interval_removes_every_overlapping_start() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(); // Monday
        let mut w = week(vec![
            WeeklyHours::new(Weekday::Mon, t(9, 0), t(12, 0)).unwrap(),
        ]);
        let q = query(chrono_tz::UTC, day, 1);
        assert_eq!(q.slots(std::slice::from_ref(&w)).len(), 5); // 9, 9:30, 10, 10:30, 11
        w.busy.push((
            Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 2, 10, 30, 0).unwrap(),
        ));
        let starts: Vec<_> = q
            .slots(std::slice::from_ref(&w))
            .iter()
            .map(|s| s.starts_at.format("%H:%M").to_string())
            .collect();
        assert_eq!(starts, ["09:00", "10:30", "11:00"]);
    }

    #[test]
    fn min_notice_and_the_horizon_bound_the_offer() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let w = week(vec![
            WeeklyHours::new(Weekday::Mon, t(9, 0), t(12, 0)).unwrap(),
        ]);
        let mut q = query(chrono_tz::UTC, day, 1);
        q.now = Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap();
        q.min_notice_minutes = 120; // nothing before 10:00
        let first = q.slots(std::slice::from_ref(&w))[0].starts_at;
        assert_eq!(first, Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap());
        q.max_days_ahead = 0;
        assert!(q.slots(std::slice::from_ref(&w)).is_empty());
    }

    #[test]
    fn the_spring_gap_loses_its_hour_and_the_autumn_repeat_is_offered_once() {
        // Europe/London: 2026-03-29 01:00 → 02:00; 2026-10-25 02:00 → 01:00. Both Sundays.
        let tz = chrono_tz::Europe::London;
        let w = week(vec![
            WeeklyHours::new(Weekday::Sun, t(0, 0), t(3, 0)).unwrap(),
        ]);
        let spring = query(tz, NaiveDate::from_ymd_opt(2026, 3, 29).unwrap(), 1);
        let s = spring.slots(std::slice::from_ref(&w));
        assert!(
            s.iter()
                .all(|s| s.ends_at - s.starts_at == Duration::hours(1))
        );
        let autumn = query(tz, NaiveDate::from_ymd_opt(2026, 10, 25).unwrap(), 1);
        let a = autumn.slots(std::slice::from_ref(&w));
        let mut starts: Vec<_> = a.iter().map(|s| s.starts_at).collect();
        starts.dedup();
        assert_eq!(starts.len(), a.len());
    }

    #[test]
    fn cancellation_terms_follow_the_window() {
        let p = CancellationPolicy {
            window_hours: 24,
            late_cancel_fee_minor: 2500,
            no_show_fee_minor: 5000,
        };
        let start = Utc.with_ymd_and_hms(2026, 3, 3, 9, 0, 0).unwrap();
        assert_eq!(
            p.terms(start - Duration::hours(25), start),
            CancelTerms::Free
        );
        assert_eq!(
            p.terms(start - Duration::hours(23), start),
            CancelTerms::Late { fee_minor: 2500 }
        );
        assert_eq!(p.terms(start, start), CancelTerms::TooLate);
    }

    #[test]
    fn reminders_already_due_at_booking_are_skipped() {
        let start = Utc.with_ymd_and_hms(2026, 3, 5, 9, 0, 0).unwrap();
        assert_eq!(reminders(start - Duration::hours(72), start).len(), 2);
        let r = reminders(start - Duration::hours(30), start);
        assert_eq!(r, vec![(ReminderChannel::Sms, start - Duration::hours(24))]);
        assert!(reminders(start - Duration::hours(2), start).is_empty());
    }

    proptest! {
        #[test]
        fn offered_slots_never_overlap_busy_time_and_each_is_free(
            busy in proptest::collection::vec((0i64..7 * 24 * 4, 1i64..16), 0..20),
            step in prop::sample::select(vec![5u32, 10, 15, 30, 60]),
            duration in 5u32..240,
        ) {
            let base = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
            let mut w = week(
                [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri]
                    .into_iter()
                    .map(|d| WeeklyHours::new(d, t(8, 0), t(18, 0)).unwrap())
                    .collect(),
            );
            w.busy = busy
                .iter()
                .map(|&(q, len)| {
                    let s = base + Duration::minutes(q * 15);
                    (s, s + Duration::minutes(len * 15))
                })
                .collect();
            let mut q = query(chrono_tz::America::New_York, NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(), 7);
            q.step_minutes = step;
            q.duration_minutes = duration;
            for s in q.slots(std::slice::from_ref(&w)) {
                prop_assert!(!w.busy.iter().any(|b| overlaps((s.starts_at, s.ends_at), b)));
                prop_assert!(slot_is_free(&q, &w, s.starts_at));
            }
        }
    }
}
