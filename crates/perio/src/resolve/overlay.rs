//! The chart as a final will leave it, without touching it: the statuses and values the
//! final has written so far (and those its undo restores) on top of the session's chart,
//! and the CAL derived from it for the outcome.
//!
//! Pure: it reads the session and the history, and never writes either.

use std::collections::BTreeMap;

use crate::chart::{ToothStatus, cal_of};
use crate::outcome::{Derived, Event, UndoScope};
use crate::session::{HistoryEntry, Prior, Session};
use crate::site::Site;
use crate::tooth::Tooth;

/// A value written earlier in the final (or restored by its undo).
#[derive(Clone, Copy, Debug)]
pub(super) enum Write {
    Status(Tooth, ToothStatus),
    Pd(Tooth, Site, Option<u8>),
    Rec(Tooth, Site, Option<i8>),
}

/// CAL of every site of the teeth whose PD or recession the events wrote, on the chart as
/// it will be after the candidate (its undo included).
pub(super) fn derived(s: &Session, undo: Option<UndoScope>, events: &[Event]) -> Derived {
    let policy = s.settings().cal_policy;
    let mut overlay: Vec<Write> = undo
        .map(|scope| undo_writes(s.history(), scope))
        .unwrap_or_default();
    overlay.extend(events.iter().filter_map(event_write));
    let mut touched: Vec<Tooth> = events
        .iter()
        .filter(|e| matches!(e, Event::Pd { .. } | Event::Recession { .. }))
        .filter_map(Event::tooth)
        .collect();
    touched.dedup();
    let mut cal = BTreeMap::new();
    for tooth in touched {
        let sites: BTreeMap<Site, i16> = Site::ALL
            .into_iter()
            .filter_map(|site| {
                let pd = overlay
                    .iter()
                    .rev()
                    .find_map(|w| match *w {
                        Write::Pd(t, s2, v) if t == tooth && s2 == site => Some(v),
                        _ => None,
                    })
                    .unwrap_or_else(|| s.chart().pd(tooth, site));
                let rec = overlay
                    .iter()
                    .rev()
                    .find_map(|w| match *w {
                        Write::Rec(t, s2, v) if t == tooth && s2 == site => Some(v),
                        _ => None,
                    })
                    .unwrap_or_else(|| s.chart().recession(tooth, site));
                Some((site, cal_of(pd, rec, policy)?))
            })
            .collect();
        if !sites.is_empty() {
            cal.insert(tooth.to_string(), sites);
        }
    }
    Derived { cal }
}

/// The statuses and values that undoing `scope` writes: the last final's changes (or the
/// last value) reverted.
pub(super) fn undo_writes(history: &[HistoryEntry], scope: UndoScope) -> Vec<Write> {
    match scope {
        UndoScope::LastFinal => history.last().map_or_else(Vec::new, |entry| {
            entry
                .changes
                .iter()
                .rev()
                .filter_map(|c| prior_write(&c.event, &c.prior))
                .collect()
        }),
        UndoScope::LastValue => history
            .iter()
            .flat_map(|e| e.changes.iter())
            .rfind(|c| c.event.is_value())
            .and_then(|c| prior_write(&c.event, &c.prior))
            .into_iter()
            .collect(),
    }
}

/// The status or value an event writes.
fn event_write(event: &Event) -> Option<Write> {
    Some(match *event {
        Event::ToothStatus { tooth, status } => Write::Status(tooth, status),
        Event::Pd { tooth, site, mm } => Write::Pd(tooth, site, Some(mm)),
        Event::Recession { tooth, site, mm } => Write::Rec(tooth, site, Some(mm)),
        _ => return None,
    })
}

fn prior_write(event: &Event, prior: &Prior) -> Option<Write> {
    Some(match (event, prior) {
        (Event::ToothStatus { tooth, .. }, Prior::Status(old)) => Write::Status(*tooth, *old),
        (Event::Pd { tooth, site, .. }, Prior::Pd(old)) => Write::Pd(*tooth, *site, *old),
        (Event::Recession { tooth, site, .. }, Prior::Recession(old)) => {
            Write::Rec(*tooth, *site, *old)
        }
        _ => return None,
    })
}
