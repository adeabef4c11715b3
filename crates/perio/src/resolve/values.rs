//! Values at the cursor or at a named site (rules P1–P4, N3, N5, G1–G4).
//!
//! A run fills the cursor site and auto-advances along the path; a digit string is split
//! only when it is exactly the sites left in the group (3, or 6 on the per-tooth path).
//! A PD over the session's limit holds the final for confirmation; out-of-range values, an
//! ambiguous sign, keratinized width on the palate, and a bare number in the mobility or
//! furcation mode reject it. A spot value writes one site and leaves the cursor.

use super::Res;
use super::overlay::Write;
use super::work::{Focus, Work};
use crate::outcome::{Event, Mode, Reject, RejectReason, SiteRef, Warning};
use crate::parse::{Place, ToothRef, Val, ValKind};
use crate::path::Cursor;
use crate::session::SplitDigitStrings;
use crate::site::{Part, Site, Surface};
use crate::tooth::{Arch, Tooth};

impl Work<'_> {
    pub(super) fn run_values(&mut self, values: &[Val]) -> Res<()> {
        let from_group_start = !self.nav.end_of_path && self.route.is_group_start(self.nav.cursor);
        let mut count = 0usize;
        for v in values {
            match &v.kind {
                ValKind::Single(n) => {
                    self.put_value(*n, v.plus, &v.heard)?;
                    count += 1;
                }
                ValKind::Digits(text) => {
                    // Rule N3: split only an exact group (3 or 6 sites left), else refuse.
                    let remaining = self.route.remaining_in_group(self.nav.cursor);
                    let exact = self.s.settings().split_digit_strings
                        == SplitDigitStrings::ExactGroup
                        && !self.nav.end_of_path
                        && !v.plus
                        && text.len() == remaining
                        && (remaining == 3 || remaining == 6);
                    if !exact {
                        return Err(Reject::new(RejectReason::ConcatenatedNumber, text.clone()));
                    }
                    self.warnings
                        .push(Warning::DigitStringSplit { text: text.clone() });
                    for b in text.bytes() {
                        self.put_value(b - b'0', false, &v.heard)?;
                        count += 1;
                    }
                }
            }
        }
        if from_group_start && !count.is_multiple_of(3) {
            // Rule P4.
            self.warnings.push(Warning::RunNotTriplet);
        }
        Ok(())
    }

    fn put_value(&mut self, n: u8, plus: bool, heard: &str) -> Res<()> {
        let cur = self.nav.cursor;
        if self.nav.end_of_path || !self.chartable(cur.tooth) {
            return Err(Reject::new(RejectReason::ToothNotAvailable, heard));
        }
        let event = self.value_event(self.nav.mode, cur, n, plus, heard)?;
        self.events.push(event);
        self.nav.last_site = Some(SiteRef {
            tooth: cur.tooth,
            site: cur.site,
        });
        self.focus = Focus::Value(SiteRef {
            tooth: cur.tooth,
            site: cur.site,
        });
        self.advance();
        Ok(())
    }

    /// The event for value `n` at `at` in `mode` (rules N5, G1–G4).
    fn value_event(
        &mut self,
        mode: Mode,
        at: Cursor,
        n: u8,
        plus: bool,
        heard: &str,
    ) -> Res<Event> {
        let settings = self.s.settings();
        let reject = |reason| Err(Reject::new(reason, heard));
        let (tooth, site) = (at.tooth, at.site);
        match mode {
            Mode::Pd => {
                let mm = match (plus, settings.compat.od_plus) {
                    (false, _) => n,
                    (true, true) if n <= 9 => 10 + n,
                    (true, true) => return reject(RejectReason::OutOfRange),
                    (true, false) => return reject(RejectReason::AmbiguousSign),
                };
                if mm > 19 {
                    return reject(RejectReason::OutOfRange);
                }
                if mm > settings.max_unconfirmed_depth {
                    self.hold = true;
                    self.warnings.push(Warning::DepthOverLimit {
                        limit: settings.max_unconfirmed_depth,
                        mm,
                    });
                }
                self.writes.push(Write::Pd(tooth, site, Some(mm)));
                Ok(Event::Pd { tooth, site, mm })
            }
            Mode::Gm => {
                let mm = match (plus, i8::try_from(n)) {
                    (false, Ok(v)) if v <= 19 => v,
                    (true, Ok(v)) if v <= 9 => -v,
                    _ => return reject(RejectReason::OutOfRange),
                };
                self.writes.push(Write::Rec(tooth, site, Some(mm)));
                Ok(Event::Recession { tooth, site, mm })
            }
            Mode::Mgj => {
                if plus {
                    return reject(RejectReason::AmbiguousSign);
                }
                if is_palatal(tooth, site) {
                    return reject(RejectReason::NoMgjOnPalatal);
                }
                if n > 19 {
                    return reject(RejectReason::OutOfRange);
                }
                if n < 2 {
                    self.warnings.push(Warning::KgwBelow2 {
                        tooth: tooth.number(),
                        site,
                    });
                }
                Ok(Event::KgWidth { tooth, site, mm: n })
            }
            // Rule P5: a bare number in the mobility or furcation mode is a silent error.
            Mode::Mobility | Mode::Furcation => reject(RejectReason::AmbiguousCommand),
        }
    }

    pub(super) fn spot(
        &mut self,
        mode: Mode,
        value: &Val,
        tooth: &ToothRef,
        place: Option<Place>,
    ) -> Res<()> {
        self.require_chartable(tooth.tooth, &tooth.heard)?;
        let site = match place {
            Some(Place::Surface(s)) => Site::new(s, Part::Mid),
            Some(Place::Site(spec)) => spec.on(self.nav.cursor.surface()),
            None => return Err(Reject::new(RejectReason::Incomplete, tooth.heard.clone())),
        };
        let ValKind::Single(n) = value.kind else {
            return Err(Reject::new(
                RejectReason::ConcatenatedNumber,
                value.heard.clone(),
            ));
        };
        let at = Cursor {
            tooth: tooth.tooth,
            site,
        };
        let event = self.value_event(mode, at, n, value.plus, &value.heard)?;
        self.events.push(event);
        let r = SiteRef {
            tooth: tooth.tooth,
            site,
        };
        self.nav.last_site = Some(r);
        self.focus = Focus::Value(r);
        Ok(())
    }
}

/// Rule G4: the palatal surface has no mucogingival junction.
pub(super) fn is_palatal(tooth: Tooth, site: Site) -> bool {
    tooth.arch() == Arch::Upper && site.surface() == Surface::L
}
