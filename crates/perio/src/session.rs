//! The charting session: settings, chart, cursor, history, pending confirmation
//! (SPEC §4.1, §4.2). Serializable with serde so the server can store it (encrypted).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::chart::{
    CalPolicy, Chart, Entrance, Furcation, Mobility, SiteSet, SiteValues, ToothStatus,
};
use crate::outcome::{Event, Mode, Outcome, SiteRef, Status, UndoScope};
use crate::parse::{Parse, ParseSettings, parse};
use crate::path::{ChartingPath, Cursor, Route, TripletOrder};
use crate::resolve;
use crate::site::Site;
use crate::tooth::{Numbering, Tooth};

/// How display digit strings are treated (rule N3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitDigitStrings {
    /// Always refuse digit strings of three or more digits.
    Never,
    /// Split a string whose length equals the sites left in the current group (3 or 6).
    #[default]
    ExactGroup,
}

/// Homophone policy (rules H1–H4, SPEC §5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Homophones {
    /// Refuse homophones outright (the TypeScript prior art).
    Off,
    /// Read them as digits inside numeric runs only.
    #[default]
    RunOnly,
}

/// Compatibility switches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Compat {
    /// Open Dental's "plus N" = 10 + N in PD mode (rule N5).
    pub od_plus: bool,
}

/// Session settings (SPEC §4.2). Defaults are `C0` of SPEC §4.1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "SPEC §4.2 names these settings as independent booleans"
)]
pub struct Settings {
    /// Tooth numbering spoken and displayed.
    pub numbering: Numbering,
    /// Charting path.
    pub path: ChartingPath,
    /// Site order inside a surface.
    pub triplet_order: TripletOrder,
    /// Digit strings in display text.
    pub split_digit_strings: SplitDigitStrings,
    /// Homophone policy.
    pub homophones: Homophones,
    /// PD above this needs confirmation (rule N5; default 12).
    pub max_unconfirmed_depth: u8,
    /// Compatibility switches.
    pub compat: Compat,
    /// Flags need the "add"/"mark" prefix (Bola "add" mode).
    pub flag_prefix_required: bool,
    /// Auto-advance skips implants too.
    pub implants_as_missing: bool,
    /// Accept furcation on teeth without furcations (with a warning).
    pub allow_unusual_furcation: bool,
    /// Read back each applied final (TTS; headphones recommended).
    pub echo: bool,
    /// CAL when recession was never recorded.
    pub cal_policy: CalPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            numbering: Numbering::Universal,
            path: ChartingPath::MaxillaryFirst,
            triplet_order: TripletOrder::Path,
            split_digit_strings: SplitDigitStrings::ExactGroup,
            homophones: Homophones::RunOnly,
            max_unconfirmed_depth: 12,
            compat: Compat::default(),
            flag_prefix_required: false,
            implants_as_missing: false,
            allow_unusual_furcation: false,
            echo: false,
            cal_policy: CalPolicy::RequireRecession,
        }
    }
}

impl Settings {
    /// The settings the parser reads.
    #[must_use]
    pub const fn parse_settings(&self) -> ParseSettings {
        ParseSettings {
            numbering: self.numbering,
            homophones: matches!(self.homophones, Homophones::RunOnly),
            flag_prefix_required: self.flag_prefix_required,
        }
    }

    /// The route that moves the cursor.
    #[must_use]
    pub const fn route(&self) -> Route {
        Route::new(self.path, self.triplet_order)
    }
}

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

    /// Builds a session from a fixture / CLI context: `C0` (SPEC §4.1) overridden by the
    /// given fields, an existing `chart`, and `history` finals applied in order.
    pub fn from_ctx(ctx: &serde_json::Value) -> Result<Self, Error> {
        let ctx = Context::deserialize(ctx).map_err(|e| Error::Context(e.to_string()))?;
        if let Some(key) = ctx.unknown.keys().next() {
            return Err(Error::Context(format!("unknown field {key:?}")));
        }
        let mut session = Self::new(ctx.settings);
        if let Some(chart) = &ctx.chart {
            session.chart = chart_from_json(chart)?;
        }
        for (tooth, status) in ctx.tooth_status {
            session.chart.tooth_mut(tooth).status = status;
        }
        session.chart.prune();
        session.nav.mode = ctx.mode;
        for (index, text) in ctx.history.iter().enumerate() {
            let outcome = session.apply_final(text);
            if outcome.status != Status::Ok {
                return Err(Error::History {
                    index,
                    text: text.clone(),
                    status: format!("{:?}", outcome.status),
                });
            }
        }
        if let Some(cursor) = ctx.cursor {
            session.nav.cursor = cursor;
            session.nav.end_of_path = false;
        }
        if let Some(last) = ctx.last_site {
            session.nav.last_site = last;
        }
        if let Some(moved) = ctx.cursor_moved_by {
            session.nav.cursor_moved_by = moved;
        }
        Ok(session)
    }
}

#[derive(Deserialize)]
struct Context {
    #[serde(flatten)]
    settings: Settings,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    cursor: Option<Cursor>,
    #[serde(default, deserialize_with = "present")]
    #[expect(
        clippy::option_option,
        reason = "an absent last_site keeps the history's, null clears it"
    )]
    last_site: Option<Option<SiteRef>>,
    #[serde(default)]
    tooth_status: BTreeMap<Tooth, ToothStatus>,
    #[serde(default)]
    chart: Option<serde_json::Value>,
    #[serde(default)]
    history: Vec<String>,
    #[serde(default)]
    cursor_moved_by: Option<MovedBy>,
    #[serde(flatten)]
    unknown: BTreeMap<String, serde_json::Value>,
}

/// Distinguishes `"last_site": null` (given, none) from an absent field.
#[expect(
    clippy::option_option,
    reason = "an absent last_site keeps the history's, null clears it"
)]
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<SiteRef>>, D::Error> {
    Option::<SiteRef>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToothInput {
    #[serde(default)]
    status: Option<ToothStatus>,
    #[serde(default)]
    pd: SiteValues<u8>,
    #[serde(default)]
    recession: SiteValues<i8>,
    #[serde(default)]
    kg_width: SiteValues<u8>,
    #[serde(default)]
    bleeding: SiteSet,
    #[serde(default)]
    suppuration: SiteSet,
    #[serde(default)]
    plaque: SiteSet,
    #[serde(default)]
    calculus: SiteSet,
    #[serde(default)]
    mobility: Option<u8>,
    #[serde(default)]
    furcation: BTreeMap<Entrance, u8>,
}

/// Reads a chart in the fixture shape (SPEC §6): `{"teeth": {"3": {...}}}` or just the
/// map of teeth; every field of a tooth is optional.
pub fn chart_from_json(value: &serde_json::Value) -> Result<Chart, Error> {
    let teeth = value.get("teeth").unwrap_or(value);
    let map: BTreeMap<Tooth, ToothInput> =
        BTreeMap::deserialize(teeth).map_err(|e| Error::Context(format!("chart: {e}")))?;
    let mut chart = Chart::new();
    for (tooth, input) in map {
        let bad = |what: &str| Error::Context(format!("chart: tooth {tooth}: {what} out of range"));
        if input.pd.iter().any(|(_, v)| v > 19) || input.kg_width.iter().any(|(_, v)| v > 19) {
            return Err(bad("pd/kg_width"));
        }
        if input.recession.iter().any(|(_, v)| !(-9..=19).contains(&v)) {
            return Err(bad("recession"));
        }
        if input.mobility.is_some_and(|m| m > 3) || input.furcation.values().any(|&g| g > 3) {
            return Err(bad("mobility/furcation"));
        }
        let r = chart.tooth_mut(tooth);
        r.status = input.status.unwrap_or_default();
        r.pd = input.pd;
        r.recession = input.recession;
        r.kg_width = input.kg_width;
        r.bleeding = input.bleeding;
        r.suppuration = input.suppuration;
        r.plaque = input.plaque;
        r.calculus = input.calculus;
        r.mobility = input.mobility.map(|grade| Mobility { grade, note: None });
        r.furcation = input
            .furcation
            .into_iter()
            .map(|(e, grade)| {
                (
                    e,
                    Furcation {
                        grade,
                        glickman_iv: false,
                    },
                )
            })
            .collect();
    }
    chart.prune();
    Ok(chart)
}

/// Writes a chart in the fixture shape of SPEC §6: only teeth with a recorded value or a
/// non-present status; `mobility` and `furcation` only when recorded.
#[must_use]
pub fn chart_to_json(chart: &Chart) -> serde_json::Value {
    let mut teeth = serde_json::Map::new();
    for (tooth, r) in chart.records() {
        let mut obj = serde_json::json!({
            "status": r.status,
            "pd": r.pd,
            "recession": r.recession,
            "kg_width": r.kg_width,
            "bleeding": r.bleeding,
            "suppuration": r.suppuration,
            "plaque": r.plaque,
            "calculus": r.calculus,
        });
        if let Some(map) = obj.as_object_mut() {
            if let Some(m) = &r.mobility {
                map.insert("mobility".into(), m.grade.into());
            }
            if !r.furcation.is_empty() {
                let f: serde_json::Map<String, serde_json::Value> = r
                    .furcation
                    .iter()
                    .map(|(e, f)| (e.name().to_owned(), f.grade.into()))
                    .collect();
                map.insert("furcation".into(), f.into());
            }
        }
        teeth.insert(tooth.to_string(), obj);
    }
    serde_json::json!({ "teeth": teeth })
}

/// Applies one event to the chart, returning what it replaced (`None` for events that do
/// not touch the chart).
fn apply_event(chart: &mut Chart, event: &Event) -> Option<Prior> {
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

fn revert_change(chart: &mut Chart, change: &Change) {
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
