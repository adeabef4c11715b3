//! The resolver: readings → events against a session (SPEC §3 rules P, N5, G, F, T, S, C).
//!
//! Resolution never touches the session: it simulates the final on a small overlay
//! (statuses and values written so far) and returns the events, the cursor after, and the
//! effect to commit. A rule that fails anywhere rejects the whole reading.

use std::collections::BTreeMap;

use crate::chart::{Entrance, Flag, ToothStatus, cal_of};
use crate::outcome::{
    Alternative, Derived, Event, Mode, Outcome, Reject, RejectReason, SessionAction, SiteRef,
    Status, UndoScope, Warning,
};
use crate::parse::{
    Clause, EntranceSpec, Parse, Place, PromptAnswer, Reading, Region, Scope, Segment, ToothRef,
    Val, ValKind, Verdict,
};
use crate::path::{Cursor, Route};
use crate::session::{
    Candidate, Effect, HistoryEntry, MovedBy, NavState, Prior, Resolution, Session,
    SplitDigitStrings,
};
use crate::site::{Part, Site, Surface};
use crate::tooth::{Arch, Tooth};

type Res<T> = Result<T, Reject>;

/// A value written earlier in the final (or restored by its undo).
#[derive(Clone, Copy, Debug)]
enum Write {
    Status(Tooth, ToothStatus),
    Pd(Tooth, Site, Option<u8>),
    Rec(Tooth, Site, Option<i8>),
}

/// What the final has pointed at last (rules F1–F3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Focus {
    /// Nothing yet in this final.
    Start,
    /// The last value charted in this final.
    Value(SiteRef),
    /// An explicit cursor move in this final; `named` when a site was named.
    Nav(Cursor, bool),
}

struct Work<'s> {
    s: &'s Session,
    route: Route,
    nav: NavState,
    writes: Vec<Write>,
    events: Vec<Event>,
    warnings: Vec<Warning>,
    focus: Focus,
    hold: bool,
    reverts: Vec<Event>,
    undo: Option<UndoScope>,
    nav_after_undo: Option<NavState>,
    listening: bool,
}

struct Resolved {
    candidate: Candidate,
    warnings: Vec<Warning>,
    reverts: Vec<Event>,
    hold: bool,
}

pub(crate) fn resolve(s: &Session, parse: &Parse) -> Resolution {
    let mut warnings: Vec<Warning> = parse
        .fillers
        .iter()
        .map(|w| Warning::FillerDropped { word: w.clone() })
        .collect();
    match &parse.verdict {
        Verdict::Prompt(answer) => prompt(s, *answer, warnings),
        Verdict::Ignored => nothing(s, Status::Ignored, warnings, None),
        Verdict::Rejected(r) => nothing(s, Status::Rejected, warnings, Some(r.clone())),
        Verdict::Readings(readings) => {
            if !s.listening() && !is_resume(readings) {
                warnings.push(Warning::Paused);
                return nothing(s, Status::Ignored, warnings, None);
            }
            if s.pending().is_some() {
                warnings.push(Warning::PendingDiscarded);
            }
            readings_outcome(s, readings, warnings)
        }
    }
}

fn is_resume(readings: &[Reading]) -> bool {
    readings.first().is_some_and(|r| {
        matches!(
            r.clauses.as_slice(),
            [Clause::Session(
                SessionAction::Resume
                    | SessionAction::StartListening
                    | SessionAction::StartCharting
            )]
        )
    })
}

fn nothing(
    s: &Session,
    status: Status,
    warnings: Vec<Warning>,
    reject: Option<Reject>,
) -> Resolution {
    Resolution {
        outcome: Outcome {
            status,
            events: Vec::new(),
            alternatives: Vec::new(),
            reverts: Vec::new(),
            cursor_after: s.nav().cursor,
            last_site: s.nav().last_site,
            derived: Derived::default(),
            warnings,
            reject,
            labels: BTreeMap::new(),
            echo: String::new(),
        },
        effect: Effect::Nothing,
    }
}

fn prompt(s: &Session, answer: PromptAnswer, mut warnings: Vec<Warning>) -> Resolution {
    let Some(pending) = s.pending() else {
        // Rule C3: "correct"/"yes" are prompt answers only; with no prompt they are talk.
        return nothing(s, Status::Ignored, warnings, None);
    };
    let choice = match answer {
        PromptAnswer::Decline => {
            warnings.push(Warning::ConfirmationDeclined);
            let mut r = nothing(s, Status::Ok, warnings, None);
            r.effect = Effect::Decline;
            return r;
        }
        PromptAnswer::Confirm if pending.candidates.len() == 1 => 0,
        PromptAnswer::Confirm => {
            return nothing(
                s,
                Status::Rejected,
                warnings,
                Some(Reject::new(RejectReason::AmbiguousCommand, "confirm")),
            );
        }
        PromptAnswer::Option(k) => usize::from(k) - 1,
    };
    confirm_with(s, choice, warnings)
}

pub(crate) fn confirm(s: &Session, choice: usize) -> Resolution {
    confirm_with(s, choice, Vec::new())
}

pub(crate) fn decline(s: &Session) -> Resolution {
    if s.pending().is_none() {
        return nothing(s, Status::Ignored, Vec::new(), None);
    }
    let mut r = nothing(s, Status::Ok, vec![Warning::ConfirmationDeclined], None);
    r.effect = Effect::Decline;
    r
}

fn confirm_with(s: &Session, choice: usize, warnings: Vec<Warning>) -> Resolution {
    let Some(c) = s.pending().and_then(|p| p.candidates.get(choice)) else {
        let heard = format!("option {}", choice + 1);
        return nothing(
            s,
            Status::Rejected,
            warnings,
            Some(Reject::new(RejectReason::OutOfRange, heard)),
        );
    };
    let reverts = match c.undo {
        Some(UndoScope::LastFinal) => s
            .history()
            .last()
            .map(|e| e.events.clone())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut outcome = ok_outcome(s, c, warnings, reverts);
    outcome.status = Status::Ok;
    Resolution {
        outcome,
        effect: Effect::Confirm(choice),
    }
}

fn ok_outcome(
    s: &Session,
    c: &Candidate,
    mut warnings: Vec<Warning>,
    reverts: Vec<Event>,
) -> Outcome {
    let numbering = s.settings().numbering;
    let derived = derived(s, c.undo, &c.events);
    for (tooth, sites) in &derived.cal {
        for (&site, &cal) in sites {
            if cal < 0 {
                // SPEC §1.4: flag CAL < 0 as inconsistent.
                warnings.push(Warning::CalNegative {
                    tooth: tooth.parse().unwrap_or_default(),
                    site,
                });
            }
        }
    }
    let mut teeth: Vec<Tooth> = c.events.iter().filter_map(Event::tooth).collect();
    teeth.sort_unstable();
    teeth.dedup();
    let labels = teeth
        .iter()
        .map(|t| (t.to_string(), t.label(numbering)))
        .collect();
    let echo = c
        .events
        .iter()
        .filter(|e| !matches!(e, Event::Cursor { .. }))
        .map(|e| e.describe(numbering))
        .collect::<Vec<_>>()
        .join("; ");
    Outcome {
        status: Status::Ok,
        events: c.events.clone(),
        alternatives: Vec::new(),
        reverts,
        cursor_after: c.nav_after.cursor,
        last_site: c.nav_after.last_site,
        derived,
        warnings,
        reject: None,
        labels,
        echo,
    }
}

/// CAL of every site of the teeth whose PD or recession the events wrote, on the chart as
/// it will be after the candidate (its undo included).
fn derived(s: &Session, undo: Option<UndoScope>, events: &[Event]) -> Derived {
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
fn undo_writes(history: &[HistoryEntry], scope: UndoScope) -> Vec<Write> {
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

fn readings_outcome(s: &Session, readings: &[Reading], base_warnings: Vec<Warning>) -> Resolution {
    let mut ok: Vec<Resolved> = Vec::new();
    let mut first_err = None;
    for reading in readings {
        match Work::new(s).run(reading) {
            Ok(r) => {
                if !ok.iter().any(|o| o.candidate.events == r.candidate.events) {
                    ok.push(r);
                }
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let mut warnings = base_warnings;
    match ok.len() {
        0 => {
            let reject = first_err.unwrap_or_else(|| Reject::new(RejectReason::Incomplete, ""));
            nothing(s, Status::Rejected, warnings, Some(reject))
        }
        1 => {
            let Some(r) = ok.pop() else {
                return nothing(s, Status::Rejected, warnings, None);
            };
            warnings.extend(r.warnings);
            let mut outcome = ok_outcome(s, &r.candidate, warnings, r.reverts);
            if r.hold {
                outcome.status = Status::NeedsConfirmation;
                outcome.derived = Derived::default();
                Resolution {
                    outcome,
                    effect: Effect::Hold(vec![r.candidate]),
                }
            } else {
                Resolution {
                    outcome,
                    effect: Effect::Apply(r.candidate),
                }
            }
        }
        _ => {
            for reading in readings {
                for w in &reading.ambiguity {
                    if !warnings.contains(w) {
                        warnings.push(w.clone());
                    }
                }
            }
            let alternatives = ok
                .iter()
                .map(|r| Alternative {
                    events: r.candidate.events.clone(),
                    cursor_after: r.candidate.nav_after.cursor,
                    last_site: r.candidate.nav_after.last_site,
                    warnings: r.warnings.clone(),
                })
                .collect();
            let mut res = nothing(s, Status::NeedsConfirmation, warnings, None);
            res.outcome.alternatives = alternatives;
            res.effect = Effect::Hold(ok.into_iter().map(|r| r.candidate).collect());
            res
        }
    }
}

impl<'s> Work<'s> {
    fn new(s: &'s Session) -> Self {
        Self {
            s,
            route: s.settings().route(),
            nav: s.nav().clone(),
            writes: Vec::new(),
            events: Vec::new(),
            warnings: Vec::new(),
            focus: Focus::Start,
            hold: false,
            reverts: Vec::new(),
            undo: None,
            nav_after_undo: None,
            listening: s.listening(),
        }
    }

    fn run(mut self, reading: &Reading) -> Res<Resolved> {
        self.warnings.extend(reading.warnings.iter().cloned());
        for clause in &reading.clauses {
            self.clause(clause)?;
        }
        Ok(Resolved {
            candidate: Candidate {
                undo: self.undo,
                events: self.events,
                nav_after_undo: self.nav_after_undo,
                nav_after: self.nav,
                listening_after: self.listening,
            },
            warnings: self.warnings,
            reverts: self.reverts,
            hold: self.hold,
        })
    }

    // ----- overlay -----

    fn status(&self, tooth: Tooth) -> ToothStatus {
        self.writes
            .iter()
            .rev()
            .find_map(|w| match *w {
                Write::Status(t, st) if t == tooth => Some(st),
                _ => None,
            })
            .unwrap_or_else(|| self.s.chart().status(tooth))
    }

    /// Whether explicit charting may name the tooth (missing and skipped teeth may not).
    fn chartable(&self, tooth: Tooth) -> bool {
        self.status(tooth).is_examined()
    }

    /// Whether auto-advance visits the site (rule P2, and no MGJ on the palate, G4).
    fn on_path(&self, tooth: Tooth, site: Site) -> bool {
        let status_ok = match self.status(tooth) {
            ToothStatus::Present => true,
            ToothStatus::Implant => !self.s.settings().implants_as_missing,
            ToothStatus::Missing | ToothStatus::Skipped => false,
        };
        status_ok && !(self.nav.mode == Mode::Mgj && is_palatal(tooth, site))
    }

    fn require_chartable(&self, tooth: Tooth, heard: &str) -> Res<()> {
        if self.chartable(tooth) {
            Ok(())
        } else {
            Err(Reject::new(RejectReason::ToothNotAvailable, heard))
        }
    }

    // ----- cursor -----

    fn move_to(&mut self, cursor: Cursor, event: bool) {
        if self.nav.cursor_moved_by == MovedBy::AutoAdvance || self.nav.resume_point.is_none() {
            self.nav.resume_point = Some(self.nav.cursor);
        }
        self.nav.cursor = cursor;
        self.nav.end_of_path = false;
        self.nav.cursor_moved_by = MovedBy::Navigation;
        if event {
            self.events.push(Event::cursor(cursor));
        }
    }

    fn advance(&mut self) {
        let next = self
            .route
            .advance(self.nav.cursor, |t, s| self.on_path(t, s));
        self.step_to(next);
    }

    fn step_to(&mut self, next: Option<Cursor>) {
        if let Some(c) = next {
            self.nav.cursor = c;
        } else {
            self.nav.end_of_path = true;
            if !self.warnings.contains(&Warning::EndOfPath) {
                self.warnings.push(Warning::EndOfPath);
            }
        }
        self.nav.cursor_moved_by = MovedBy::AutoAdvance;
    }

    /// Rule F3: the anchor tooth and site when the clause names none.
    fn anchor(&self) -> Cursor {
        match self.focus {
            Focus::Value(r) => Cursor {
                tooth: r.tooth,
                site: r.site,
            },
            Focus::Nav(c, _) => c,
            Focus::Start => match (self.nav.cursor_moved_by, self.nav.last_site) {
                (MovedBy::AutoAdvance, Some(r)) => Cursor {
                    tooth: r.tooth,
                    site: r.site,
                },
                _ => self.nav.cursor,
            },
        }
    }

    // ----- clauses -----

    fn clause(&mut self, clause: &Clause) -> Res<()> {
        match clause {
            Clause::Session(action) => {
                self.events.push(Event::Session { action: *action });
                match action {
                    SessionAction::Pause | SessionAction::StopListening => self.listening = false,
                    SessionAction::Resume
                    | SessionAction::StartListening
                    | SessionAction::StartCharting => {
                        self.listening = true;
                    }
                    SessionAction::DoneCharting => {}
                }
                Ok(())
            }
            Clause::Undo { scope, heard } => self.undo(*scope, heard),
            Clause::Mode {
                mode,
                tooth,
                values,
            } => self.mode(*mode, tooth.as_ref(), values),
            // "tooth …", "jump to …" and "select …" differ only in what they may carry.
            Clause::Goto {
                tooth,
                surface,
                segments,
                ..
            } => self.goto(tooth, *surface, segments),
            Clause::Step { forward, site } => self.step(*forward, *site),
            Clause::Switch(surface) => {
                // The tooth is the anchor's (rule F3): "buccal three two four, lingual two
                // two three" charts both surfaces of one tooth although the cursor has
                // auto-advanced to the next one.
                let anchor = self.anchor();
                let target = surface.unwrap_or_else(|| anchor.surface().other());
                let cursor = self.route.first_site(anchor.tooth, target);
                self.move_to(cursor, true);
                self.focus = Focus::Nav(cursor, false);
                Ok(())
            }
            Clause::ResumePath => match self.nav.resume_point {
                Some(c) => {
                    self.move_to(c, true);
                    self.nav.resume_point = None;
                    self.focus = Focus::Nav(c, false);
                    Ok(())
                }
                None => Err(Reject::new(RejectReason::Incomplete, "resume path")),
            },
            Clause::Run(values) => self.run_values(values),
            Clause::Spot {
                mode,
                value,
                tooth,
                place,
            } => self.spot(*mode, value, tooth, *place),
            Clause::Status { teeth, status } => {
                self.set_status(teeth.as_deref(), *status);
                Ok(())
            }
            Clause::Flag {
                flags,
                on,
                scope,
                tooth,
            } => self.flag(flags, *on, scope.as_ref(), tooth.as_ref()),
            Clause::BulkFlag { flags, on, region } => {
                self.bulk_flag(flags, *on, *region);
                Ok(())
            }
            Clause::Mobility { grade, plus, tooth } => {
                let (t, heard) = match tooth {
                    Some(r) => (r.tooth, r.heard.clone()),
                    None => (self.anchor().tooth, grade.heard.clone()),
                };
                self.require_chartable(t, &heard)?;
                let note = plus.then(|| "+".to_owned());
                self.events.push(Event::Mobility {
                    tooth: t,
                    grade: grade.value,
                    note,
                });
                Ok(())
            }
            Clause::Furcation {
                grade,
                entrance,
                tooth,
            } => self.furcation(grade.value, *entrance, tooth.as_ref()),
        }
    }

    fn undo(&mut self, scope: UndoScope, heard: &str) -> Res<()> {
        let history = self.s.history();
        match scope {
            UndoScope::LastFinal => {
                let Some(entry) = history.last() else {
                    return Err(Reject::new(RejectReason::Incomplete, heard));
                };
                self.nav = entry.nav_before.clone();
                self.reverts.clone_from(&entry.events);
            }
            UndoScope::LastValue => {
                let mut values = history
                    .iter()
                    .flat_map(|e| e.changes.iter())
                    .filter(|c| c.event.is_value())
                    .rev();
                let Some(change) = values.next() else {
                    return Err(Reject::new(RejectReason::Incomplete, heard));
                };
                if let Some(r) = change.event.value_site() {
                    self.nav.cursor = Cursor {
                        tooth: r.tooth,
                        site: r.site,
                    };
                }
                self.nav.last_site = values.next().and_then(|c| c.event.value_site());
                self.nav.end_of_path = false;
                self.nav.cursor_moved_by = MovedBy::Navigation;
                self.reverts = vec![change.event.clone()];
            }
        }
        self.writes.extend(undo_writes(history, scope));
        self.events.push(Event::Undo { scope });
        self.undo = Some(scope);
        self.nav_after_undo = Some(self.nav.clone());
        Ok(())
    }

    fn mode(&mut self, mode: Mode, tooth: Option<&ToothRef>, values: &[Val]) -> Res<()> {
        self.events.push(Event::Mode { mode });
        self.nav.mode = mode;
        if let Some(t) = tooth {
            self.require_chartable(t.tooth, &t.heard)?;
            let cursor = self.route.first_site(t.tooth, self.nav.cursor.surface());
            self.move_to(cursor, true);
            self.focus = Focus::Nav(cursor, false);
        } else {
            // Rule P5: keep tooth and surface, reset to the first site of the surface.
            let first = self
                .route
                .first_site(self.nav.cursor.tooth, self.nav.cursor.surface());
            if first != self.nav.cursor || self.nav.end_of_path {
                self.move_to(first, true);
                self.focus = Focus::Nav(first, false);
            }
        }
        if values.is_empty() {
            Ok(())
        } else {
            self.run_values(values)
        }
    }

    fn goto(
        &mut self,
        tooth: &ToothRef,
        surface: Option<Surface>,
        segments: &[Segment],
    ) -> Res<()> {
        self.require_chartable(tooth.tooth, &tooth.heard)?;
        let surface = surface.unwrap_or_else(|| self.nav.cursor.surface());
        let first = self.route.first_site(tooth.tooth, surface);
        if segments.is_empty() {
            self.move_to(first, true);
            self.focus = Focus::Nav(first, false);
            return Ok(());
        }
        for (i, seg) in segments.iter().enumerate() {
            let target = match seg.site {
                Some(spec) => Cursor {
                    tooth: tooth.tooth,
                    site: spec.on(surface),
                },
                None if i == 0 => first,
                None => self.nav.cursor,
            };
            if i == 0 || target != self.nav.cursor || self.nav.end_of_path {
                self.move_to(target, true);
            }
            self.focus = Focus::Nav(target, seg.site.is_some());
            if !seg.values.is_empty() {
                self.run_values(&seg.values)?;
            }
        }
        Ok(())
    }

    fn step(&mut self, forward: bool, site: bool) -> Res<()> {
        let cur = self.nav.cursor;
        let avail = |t: Tooth, s: Site| self.on_path(t, s);
        let next = match (forward, site) {
            (true, true) => self.route.advance(cur, avail),
            (false, true) => self.route.retreat(cur, avail),
            (true, false) => self.route.next_group(cur, avail),
            (false, false) => self.route.prev_group(cur, avail),
        };
        let Some(next) = next else {
            let heard = format!(
                "{} {}",
                if forward { "next" } else { "previous" },
                if site { "site" } else { "tooth" }
            );
            return Err(Reject::new(RejectReason::ToothNotAvailable, heard));
        };
        self.move_to(next, true);
        self.focus = Focus::Nav(next, false);
        Ok(())
    }

    // ----- values -----

    fn run_values(&mut self, values: &[Val]) -> Res<()> {
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

    fn spot(&mut self, mode: Mode, value: &Val, tooth: &ToothRef, place: Option<Place>) -> Res<()> {
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

    // ----- status -----

    fn set_status(&mut self, teeth: Option<&[ToothRef]>, status: ToothStatus) {
        let targets: Vec<Tooth> = match teeth {
            Some(list) => list.iter().map(|r| r.tooth).collect(),
            None => vec![self.nav.cursor.tooth],
        };
        let mut done: Vec<Tooth> = Vec::new();
        for t in targets {
            if done.contains(&t) {
                continue;
            }
            done.push(t);
            if matches!(status, ToothStatus::Missing | ToothStatus::Skipped)
                && self.s.chart().tooth(t).has_values()
            {
                self.warnings
                    .push(Warning::StatusOverValues { tooth: t.number() });
            }
            self.events.push(Event::ToothStatus { tooth: t, status });
            self.writes.push(Write::Status(t, status));
        }
        // Rule S1: a cursor tooth that leaves the path is skipped at once.
        let cur = self.nav.cursor;
        if !self.on_path(cur.tooth, cur.site) {
            let next = self.route.next_group(cur, |t, s| self.on_path(t, s));
            self.step_to(next);
        }
    }

    // ----- flags -----

    fn flag(
        &mut self,
        flags: &[Flag],
        on: bool,
        scope: Option<&Scope>,
        tooth: Option<&ToothRef>,
    ) -> Res<()> {
        let flag_words = || flags.iter().map(|f| f.name()).collect::<Vec<_>>().join(" ");
        let sites: Vec<(Tooth, Site)> = match (scope, tooth) {
            (None, None) => match self.focus {
                // Rule F1: after a value in this final, that value's site.
                Focus::Value(r) => vec![(r.tooth, r.site)],
                Focus::Nav(c, true) => vec![(c.tooth, c.site)],
                Focus::Nav(_, false) => {
                    return Err(Reject::new(RejectReason::Incomplete, flag_words()));
                }
                // Rule F2: otherwise the most recently charted site.
                Focus::Start => match self.nav.last_site {
                    Some(r) => vec![(r.tooth, r.site)],
                    None => return Err(Reject::new(RejectReason::Incomplete, flag_words())),
                },
            },
            (None, Some(t)) => return Err(Reject::new(RejectReason::Incomplete, t.heard.clone())),
            (Some(scope), tooth) => {
                let (t, surface) = if let Some(r) = tooth {
                    (r.tooth, self.nav.cursor.surface())
                } else {
                    let a = self.anchor();
                    (a.tooth, a.surface())
                };
                expand_scope(scope, surface)
                    .into_iter()
                    .map(|s| (t, s))
                    .collect()
            }
        };
        for &(t, _) in &sites {
            let heard = tooth.map_or_else(flag_words, |r| r.heard.clone());
            self.require_chartable(t, &heard)?;
        }
        for &flag in flags {
            for &(t, site) in &sites {
                self.events.push(Event::Flag {
                    tooth: t,
                    site,
                    flag,
                    on,
                });
            }
        }
        Ok(())
    }

    fn bulk_flag(&mut self, flags: &[Flag], on: bool, region: Region) {
        let range = match region {
            Region::Quadrant(q) => (q * 8 - 7)..=(q * 8),
            Region::Sextant(n) => match n {
                1 => 1..=5,
                2 => 6..=11,
                3 => 12..=16,
                4 => 17..=21,
                5 => 22..=27,
                _ => 28..=32,
            },
        };
        let teeth: Vec<Tooth> = range
            .filter_map(Tooth::new)
            .filter(|&t| self.chartable(t))
            .collect();
        for &flag in flags {
            for &t in &teeth {
                for site in Site::ALL {
                    self.events.push(Event::Flag {
                        tooth: t,
                        site,
                        flag,
                        on,
                    });
                }
            }
        }
        // Rule F5: bulk flags are held for confirmation.
        self.hold = true;
    }

    // ----- furcation -----

    fn furcation(
        &mut self,
        grade: u8,
        entrance: Option<EntranceSpec>,
        tooth: Option<&ToothRef>,
    ) -> Res<()> {
        let settings = self.s.settings();
        let (t, site) = if let Some(r) = tooth {
            (r.tooth, self.nav.cursor.site)
        } else {
            let a = self.anchor();
            (a.tooth, a.site)
        };
        let heard = tooth.map_or_else(
            || format!("tooth {}", t.spoken_number(settings.numbering)),
            |r| r.heard.clone(),
        );
        self.require_chartable(t, &heard)?;
        let anatomy: &[Entrance] = if self.status(t) == ToothStatus::Implant {
            &[]
        } else {
            t.furcation_entrances()
        };
        let unusual = anatomy.is_empty();
        if unusual && !settings.allow_unusual_furcation {
            return Err(Reject::new(RejectReason::NoFurcationOnTooth, heard));
        }
        let entrance = match entrance {
            Some(EntranceSpec::Explicit(e)) if unusual || anatomy.contains(&e) => Some(e),
            Some(EntranceSpec::Explicit(_)) => None,
            Some(EntranceSpec::Site(s)) => derive_entrance(t, s, unusual),
            None => derive_entrance(t, site, unusual),
        };
        let Some(entrance) = entrance else {
            return Err(Reject::new(RejectReason::FurcationEntranceRequired, heard));
        };
        if unusual {
            self.warnings
                .push(Warning::UnusualFurcation { tooth: t.number() });
        }
        let glickman_iv = grade == 4;
        if glickman_iv {
            // Rule T3: Glickman IV is stored as grade 3.
            self.warnings
                .push(Warning::GlickmanIv { tooth: t.number() });
        }
        self.events.push(Event::Furcation {
            tooth: t,
            entrance,
            grade: grade.min(3),
            glickman_iv,
        });
        Ok(())
    }
}

/// Rule F4.
fn expand_scope(scope: &Scope, anchor: Surface) -> Vec<Site> {
    match scope {
        Scope::Sites(list) => {
            let mut out: Vec<Site> = Vec::new();
            for spec in list {
                let s = spec.on(anchor);
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            out
        }
        Scope::All(surface) => surface.unwrap_or(anchor).sites().to_vec(),
        Scope::AllSix => Site::ALL.to_vec(),
        Scope::Interproximal => vec![
            Site::new(anchor, Part::Mesial),
            Site::new(anchor, Part::Distal),
        ],
        Scope::Surface(s) => vec![Site::new(*s, Part::Mid)],
    }
}

/// Rule T2, first match wins: a facial site on a molar → B; a lingual site on a mandibular
/// molar → L; M/D sites on maxillary molars and teeth 5 and 12 → M/D; anything else (a
/// mid-lingual site on a maxillary molar, a mid site on 5 or 12) needs an entrance.
fn derive_entrance(tooth: Tooth, site: Site, unusual: bool) -> Option<Entrance> {
    let upper = tooth.arch() == Arch::Upper;
    if unusual {
        return Some(match (site.part(), site.surface()) {
            (Part::Mesial, _) => Entrance::M,
            (Part::Distal, _) => Entrance::D,
            (Part::Mid, Surface::F) => Entrance::B,
            (Part::Mid, Surface::L) => Entrance::L,
        });
    }
    if tooth.is_molar() && site.surface() == Surface::F {
        return Some(Entrance::B);
    }
    if tooth.is_molar() && !upper && site.surface() == Surface::L {
        return Some(Entrance::L);
    }
    match site.part() {
        Part::Mesial => Some(Entrance::M),
        Part::Distal => Some(Entrance::D),
        Part::Mid => None,
    }
}

fn is_palatal(tooth: Tooth, site: Site) -> bool {
    tooth.arch() == Arch::Upper && site.surface() == Surface::L
}
