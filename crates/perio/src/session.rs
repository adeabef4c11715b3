//! The charting session: settings, chart, cursor, history, pending confirmation
//! (SPEC §4.1, §4.2). Serializable with serde so the server can store it (encrypted).
//!
//! This module holds the [`Session`] and its commit protocol: a [`Resolution`] computed by
//! [`Session::resolve`] is applied by [`Session::commit`] all or nothing, and every applied
//! final other than a bare undo or session command is kept (the last [`MAX_HISTORY`]) with
//! what it replaced and the cursor state before it, so undo restores the chart, cursor and
//! mode exactly. The settings, the history records, and the fixture / CLI
//! context shape (SPEC §6) are in private submodules and re-exported here.

mod context;
mod history;
mod settings;

use serde::{Deserialize, Serialize};

use crate::chart::Chart;
use crate::outcome::{Event, Mode, Outcome, SiteRef, UndoScope};
use crate::parse::{Parse, parse};
use crate::path::Cursor;
use crate::resolve;
use crate::site::Site;
use crate::tooth::Tooth;

pub use context::{chart_from_json, chart_to_json};
pub use history::{Change, HistoryEntry, Prior};
pub use settings::{Compat, Homophones, Settings, SplitDigitStrings};

use history::{apply_event, revert_change};

/// How the cursor last moved (rule F3.3: `last_site` anchors scope words only while the
/// cursor has merely auto-advanced since).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovedBy {
    /// Auto-advance after a value (or past a tooth marked missing).
    AutoAdvance,
    /// An explicit navigation, or nothing yet.
    #[default]
    Navigation,
}

/// Cursor, mode and anchors: everything an undo restores besides the chart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NavState {
    /// Where the next value goes.
    pub cursor: Cursor,
    /// The most recently charted site.
    pub last_site: Option<SiteRef>,
    /// What values mean.
    pub mode: Mode,
    /// How the cursor last moved.
    pub cursor_moved_by: MovedBy,
    /// Auto-advance ran past the last site of the path.
    pub end_of_path: bool,
    /// Where "resume path" returns to after an explicit jump.
    pub resume_point: Option<Cursor>,
}

/// A resolved reading, ready to apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// An undo to perform first.
    pub undo: Option<UndoScope>,
    /// Events to apply.
    pub events: Vec<Event>,
    /// Cursor state right after the undo (when there is one).
    pub nav_after_undo: Option<NavState>,
    /// Cursor state after the final.
    pub nav_after: NavState,
    /// Listening state after the final.
    pub listening_after: bool,
}

/// A final held for confirmation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// One candidate (rules N5, F5) or the alternatives of rule A2.
    pub candidates: Vec<Candidate>,
}

/// Most finals kept for undo; older ones can no longer be undone.
pub const MAX_HISTORY: usize = 512;

/// A charting session. All mutation goes through [`Session::apply_final`],
/// [`Session::confirm`], [`Session::decline`], [`Session::undo`] and
/// [`Session::backspace`]; each is all-or-nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    settings: Settings,
    chart: Chart,
    nav: NavState,
    listening: bool,
    history: Vec<HistoryEntry>,
    pending: Option<Pending>,
}

impl Default for Session {
    fn default() -> Self {
        Self::new(Settings::default())
    }
}

/// What resolving a final would do: the outcome to show, and the effect to commit.
#[derive(Clone, Debug)]
pub struct Resolution {
    /// The outcome.
    pub outcome: Outcome,
    pub(crate) effect: Effect,
}

#[derive(Clone, Debug)]
pub(crate) enum Effect {
    Nothing,
    Apply(Candidate),
    Hold(Vec<Candidate>),
    Confirm(usize),
    Decline,
}

impl Session {
    /// A fresh session: empty chart, cursor at the first site of the path (tooth 1 facial,
    /// DB on the default path), PD mode, listening.
    #[must_use]
    pub fn new(settings: Settings) -> Self {
        // Every path starts on tooth 1 facial; its first site depends on the triplet order.
        let cursor = settings
            .route()
            .first_site(Tooth::FIRST, crate::site::Surface::F);
        let nav = NavState {
            cursor,
            ..NavState::default()
        };
        Self {
            settings,
            chart: Chart::new(),
            nav,
            listening: true,
            history: Vec::new(),
            pending: None,
        }
    }

    /// Settings.
    #[must_use]
    pub const fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The chart.
    #[must_use]
    pub const fn chart(&self) -> &Chart {
        &self.chart
    }

    /// Cursor, mode and anchors.
    #[must_use]
    pub const fn nav(&self) -> &NavState {
        &self.nav
    }

    /// The cursor.
    #[must_use]
    pub const fn cursor(&self) -> Cursor {
        self.nav.cursor
    }

    /// Whether finals are being heard (not paused).
    #[must_use]
    pub const fn listening(&self) -> bool {
        self.listening
    }

    /// The final held for confirmation, if any.
    #[must_use]
    pub const fn pending(&self) -> Option<&Pending> {
        self.pending.as_ref()
    }

    /// Applied finals that can still be undone, oldest first.
    #[must_use]
    pub fn history(&self) -> &[HistoryEntry] {
        &self.history
    }

    /// CAL at a site under the session's CAL policy.
    #[must_use]
    pub fn cal(&self, tooth: Tooth, site: Site) -> Option<i16> {
        self.chart.cal(tooth, site, self.settings.cal_policy)
    }

    /// Whole-chart derived values (BOP %, sites ≥ 4 / ≥ 6 mm, per-tooth summaries).
    #[must_use]
    pub fn summary(&self) -> crate::chart::ChartSummary {
        self.chart.summary(self.settings.cal_policy)
    }

    /// Parses `text` with the session's settings.
    #[must_use]
    pub fn parse(&self, text: &str) -> Parse {
        parse(text, self.settings.parse_settings())
    }

    /// What `parse` would do to this session, without doing it. Pure.
    #[must_use]
    pub fn resolve(&self, parse: &Parse) -> Resolution {
        resolve::resolve(self, parse)
    }

    /// Parses, resolves and commits one final: all or nothing.
    pub fn apply_final(&mut self, text: &str) -> Outcome {
        let parse = self.parse(text);
        let resolution = self.resolve(&parse);
        self.commit(resolution)
    }

    /// Applies a recognizer result: the spoken-form (lexical) text when the recognizer gives
    /// one, else the display text (SPEC §2 pipeline, first step).
    pub fn apply_recognized(&mut self, lexical: Option<&str>, display: &str) -> Outcome {
        self.apply_final(lexical.filter(|l| !l.trim().is_empty()).unwrap_or(display))
    }

    /// Applies a resolution computed by [`Session::resolve`] on this very session state.
    pub fn commit(&mut self, resolution: Resolution) -> Outcome {
        let Resolution { outcome, effect } = resolution;
        match effect {
            Effect::Nothing => {}
            Effect::Apply(candidate) => self.apply_candidate(candidate),
            Effect::Hold(candidates) => self.pending = Some(Pending { candidates }),
            Effect::Confirm(i) => {
                if let Some(c) = self
                    .pending
                    .take()
                    .and_then(|p| p.candidates.into_iter().nth(i))
                {
                    self.apply_candidate(c);
                }
            }
            Effect::Decline => self.pending = None,
        }
        outcome
    }

    /// Confirms the held final (`choice` 0 for rules N5/F5, the alternative's index for A2).
    pub fn confirm(&mut self, choice: usize) -> Outcome {
        let r = resolve::confirm(self, choice);
        self.commit(r)
    }

    /// Declines the held final: nothing is applied.
    pub fn decline(&mut self) -> Outcome {
        let r = resolve::decline(self);
        self.commit(r)
    }

    /// Reverts the previous final as one transaction ("undo", rule C2).
    pub fn undo(&mut self) -> Outcome {
        self.apply_final("undo")
    }

    /// Reverts one value and moves the cursor back ("backspace", rule C2).
    pub fn backspace(&mut self) -> Outcome {
        self.apply_final("backspace")
    }

    fn apply_candidate(&mut self, c: Candidate) {
        self.pending = None;
        match c.undo {
            Some(UndoScope::LastFinal) => {
                if let Some(entry) = self.history.pop() {
                    self.revert(&entry.changes);
                    self.nav = entry.nav_before;
                }
            }
            Some(UndoScope::LastValue) => self.revert_last_value(),
            None => {}
        }
        if let Some(nav) = c.nav_after_undo {
            self.nav = nav;
        }
        let nav_before = self.nav.clone();
        let mut changes = Vec::new();
        let mut events = Vec::new();
        for event in c.events {
            if matches!(event, Event::Undo { .. } | Event::Session { .. }) {
                continue;
            }
            if let Some(prior) = apply_event(&mut self.chart, &event) {
                changes.push(Change {
                    event: event.clone(),
                    prior,
                });
            }
            events.push(event);
        }
        self.nav = c.nav_after;
        self.listening = c.listening_after;
        if !events.is_empty() {
            self.history.push(HistoryEntry {
                events,
                changes,
                nav_before,
            });
            if self.history.len() > MAX_HISTORY {
                self.history.remove(0);
            }
        }
        self.chart.prune();
    }

    fn revert(&mut self, changes: &[Change]) {
        for change in changes.iter().rev() {
            revert_change(&mut self.chart, change);
        }
        self.chart.prune();
    }

    fn revert_last_value(&mut self) {
        let Some(entry) = self
            .history
            .iter_mut()
            .rev()
            .find(|e| e.changes.iter().any(|c| c.event.is_value()))
        else {
            return;
        };
        let Some(i) = entry.changes.iter().rposition(|c| c.event.is_value()) else {
            return;
        };
        let change = entry.changes.remove(i);
        if let Some(j) = entry.events.iter().rposition(|e| *e == change.event) {
            entry.events.remove(j);
        }
        revert_change(&mut self.chart, &change);
        self.chart.prune();
    }
}
