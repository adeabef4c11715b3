//! The undo history: each applied final's events and the chart values they replaced, and
//! the two functions that write an event to the chart and take it back.
//!
//! [`apply_event`] followed by [`revert_change`] of what it returned leaves the chart's
//! values as they were; events that do not touch the chart (cursor, mode, undo, session) record nothing.

use serde::{Deserialize, Serialize};

use super::NavState;
use crate::chart::{Chart, Furcation, Mobility, ToothStatus};
use crate::outcome::Event;

/// The previous value of what an event changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prior {
    /// Probing depth.
    Pd(Option<u8>),
    /// Recession.
    Recession(Option<i8>),
    /// Keratinized gingiva width.
    KgWidth(Option<u8>),
    /// A flag.
    Flag(bool),
    /// Mobility.
    Mobility(Option<Mobility>),
    /// Furcation.
    Furcation(Option<Furcation>),
    /// Tooth status.
    Status(ToothStatus),
}

/// One applied chart change and what it replaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The event.
    pub event: Event,
    /// What it replaced.
    pub prior: Prior,
}

/// One applied final, for undo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Its events (undo and session events excluded).
    pub events: Vec<Event>,
    /// Its chart changes.
    pub changes: Vec<Change>,
    /// Cursor and mode before it.
    pub nav_before: NavState,
}

/// Applies one event to the chart, returning what it replaced (`None` for events that do
/// not touch the chart).
pub(super) fn apply_event(chart: &mut Chart, event: &Event) -> Option<Prior> {
    Some(match *event {
        Event::Pd { tooth, site, mm } => Prior::Pd(chart.tooth_mut(tooth).pd.set(site, Some(mm))),
        Event::Recession { tooth, site, mm } => {
            Prior::Recession(chart.tooth_mut(tooth).recession.set(site, Some(mm)))
        }
        Event::KgWidth { tooth, site, mm } => {
            Prior::KgWidth(chart.tooth_mut(tooth).kg_width.set(site, Some(mm)))
        }
        Event::Flag {
            tooth,
            site,
            flag,
            on,
        } => Prior::Flag(chart.tooth_mut(tooth).flags_mut(flag).set(site, on)),
        Event::Mobility {
            tooth,
            grade,
            ref note,
        } => Prior::Mobility(chart.tooth_mut(tooth).mobility.replace(Mobility {
            grade,
            note: note.clone(),
        })),
        Event::Furcation {
            tooth,
            entrance,
            grade,
            glickman_iv,
        } => Prior::Furcation(
            chart
                .tooth_mut(tooth)
                .furcation
                .insert(entrance, Furcation { grade, glickman_iv }),
        ),
        Event::ToothStatus { tooth, status } => Prior::Status(std::mem::replace(
            &mut chart.tooth_mut(tooth).status,
            status,
        )),
        Event::Cursor { .. } | Event::Mode { .. } | Event::Undo { .. } | Event::Session { .. } => {
            return None;
        }
    })
}

/// Puts back what `change` replaced.
pub(super) fn revert_change(chart: &mut Chart, change: &Change) {
    let Some(tooth) = change.event.tooth() else {
        return;
    };
    let r = chart.tooth_mut(tooth);
    match (&change.event, &change.prior) {
        (Event::Pd { site, .. }, Prior::Pd(old)) => {
            r.pd.set(*site, *old);
        }
        (Event::Recession { site, .. }, Prior::Recession(old)) => {
            r.recession.set(*site, *old);
        }
        (Event::KgWidth { site, .. }, Prior::KgWidth(old)) => {
            r.kg_width.set(*site, *old);
        }
        (Event::Flag { site, flag, .. }, Prior::Flag(old)) => {
            r.flags_mut(*flag).set(*site, *old);
        }
        (Event::Mobility { .. }, Prior::Mobility(old)) => r.mobility.clone_from(old),
        (Event::Furcation { entrance, .. }, Prior::Furcation(old)) => match old {
            Some(f) => {
                r.furcation.insert(*entrance, *f);
            }
            None => {
                r.furcation.remove(entrance);
            }
        },
        (Event::ToothStatus { .. }, Prior::Status(old)) => r.status = *old,
        _ => {}
    }
}
