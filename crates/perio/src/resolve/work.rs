//! One reading resolved against a session: the work state (overlay, cursor, events,
//! focus), the clause dispatch, and the clauses that move the cursor, switch modes or undo.
//!
//! The session is only read; what the reading would do accumulates here and becomes a
//! candidate only when every clause succeeds. The anchor of rule F3, the sites that
//! auto-advance visits (P2, G4) and the mode switch's reset (P5) live here.

use super::overlay::{Write, undo_writes};
use super::values::is_palatal;
use super::{Res, Resolved};
use crate::chart::ToothStatus;
use crate::outcome::{
    Event, Mode, Reject, RejectReason, SessionAction, SiteRef, UndoScope, Warning,
};
use crate::parse::{Clause, Reading, Segment, ToothRef, Val};
use crate::path::{Cursor, Route};
use crate::session::{Candidate, MovedBy, NavState, Session};
use crate::site::{Site, Surface};
use crate::tooth::Tooth;

/// What the final has pointed at last (rules F1–F3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Focus {
    /// Nothing yet in this final.
    Start,
    /// The last value charted in this final.
    Value(SiteRef),
    /// An explicit cursor move in this final; `named` when a site was named.
    Nav(Cursor, bool),
}

/// What one reading does so far, on top of the session it reads.
pub(super) struct Work<'s> {
    pub(super) s: &'s Session,
    pub(super) route: Route,
    /// Cursor, mode and anchors after the clauses so far.
    pub(super) nav: NavState,
    /// Statuses and values written so far (the overlay), undo first.
    pub(super) writes: Vec<Write>,
    pub(super) events: Vec<Event>,
    pub(super) warnings: Vec<Warning>,
    pub(super) focus: Focus,
    /// The final needs confirmation (rules N5, F5).
    pub(super) hold: bool,
    reverts: Vec<Event>,
    undo: Option<UndoScope>,
    nav_after_undo: Option<NavState>,
    listening: bool,
}

impl<'s> Work<'s> {
    pub(super) fn new(s: &'s Session) -> Self {
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

    pub(super) fn run(mut self, reading: &Reading) -> Res<Resolved> {
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

    pub(super) fn status(&self, tooth: Tooth) -> ToothStatus {
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
    pub(super) fn chartable(&self, tooth: Tooth) -> bool {
        self.status(tooth).is_examined()
    }

    /// Whether auto-advance visits the site (rule P2, and no MGJ on the palate, G4).
    pub(super) fn on_path(&self, tooth: Tooth, site: Site) -> bool {
        let status_ok = match self.status(tooth) {
            ToothStatus::Present => true,
            ToothStatus::Implant => !self.s.settings().implants_as_missing,
            ToothStatus::Missing | ToothStatus::Skipped => false,
        };
        status_ok && !(self.nav.mode == Mode::Mgj && is_palatal(tooth, site))
    }

    pub(super) fn require_chartable(&self, tooth: Tooth, heard: &str) -> Res<()> {
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

    pub(super) fn advance(&mut self) {
        let next = self
            .route
            .advance(self.nav.cursor, |t, s| self.on_path(t, s));
        self.step_to(next);
    }

    pub(super) fn step_to(&mut self, next: Option<Cursor>) {
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
    pub(super) fn anchor(&self) -> Cursor {
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
}
