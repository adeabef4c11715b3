//! Clauses that say where: cursor moves ("tooth …", "jump to …", "select …", "switch"),
//! surfaces and sites with their repairs, mode switches and spot values.
//!
//! A move names a tooth (after a navigation verb also a clock time, "2:30" = tooth 30,
//! rule N4) and may carry a surface, sites and values; the "two" of "jump two three" is
//! offered both ways through a choice point. A spot value needs "on tooth N".

use super::clause::{Clause, GotoKind, Place, Segment, SiteSpec, ToothRef};
use super::parser::{Parser, Res, digit};
use crate::lexicon::Role;
use crate::outcome::{Mode, Reject, RejectReason, Warning};
use crate::site::Surface;
use crate::token::Kind;
use crate::tooth::{Numbering, Tooth};

impl Parser<'_> {
    pub(super) fn goto(&mut self, kind: GotoKind) -> Res<Clause> {
        let (tooth, split) = self.tooth_ref(true)?;
        if split {
            let values = self.value_run()?;
            return Ok(Clause::Goto {
                kind,
                tooth,
                surface: None,
                segments: vec![Segment { site: None, values }],
            });
        }
        let tooth = self.tooth_repairs(tooth)?;
        let surface = self.opt_surface();
        let segments = self.segments()?;
        Ok(Clause::Goto {
            kind,
            tooth,
            surface,
            segments,
        })
    }

    pub(super) fn opt_surface(&mut self) -> Option<Surface> {
        let mut surface = self.at_role(|r| {
            if let Role::Surface(s) = r {
                Some(s)
            } else {
                None
            }
        })?;
        self.pos += 1;
        while self.at(|r| r == Role::Repair)
            && let Some(new) = self.tok(self.pos + 1).and_then(|t| {
                t.role(|r| {
                    if let Role::Surface(s) = r {
                        Some(s)
                    } else {
                        None
                    }
                })
            })
        {
            self.pos += 2;
            self.warnings.push(Warning::Repair {
                slot: "surface ",
                from: surface.to_string(),
                to: new.to_string(),
            });
            surface = new;
        }
        Some(surface)
    }

    pub(super) fn site_at(&self, i: usize) -> Option<SiteSpec> {
        self.tok(i)?.role(|r| match r {
            Role::Site(s) => Some(SiteSpec::Full(s)),
            Role::Part(p) => Some(SiteSpec::Part(p)),
            _ => None,
        })
    }

    pub(super) fn opt_site(&mut self) -> Option<SiteSpec> {
        let mut site = self.site_at(self.pos)?;
        let mut from = self.peek().map(|t| t.text.clone()).unwrap_or_default();
        self.pos += 1;
        while self.at(|r| r == Role::Repair)
            && let Some(new) = self.site_at(self.pos + 1)
        {
            let to = self
                .tok(self.pos + 1)
                .map(|t| t.text.clone())
                .unwrap_or_default();
            self.pos += 2;
            self.warnings.push(Warning::Repair {
                slot: "site ",
                from,
                to: to.clone(),
            });
            from = to;
            site = new;
        }
        Some(site)
    }

    fn segments(&mut self) -> Res<Vec<Segment>> {
        let mut segments = Vec::new();
        loop {
            let site = self.opt_site();
            let values = if self.is_value_start(self.pos) {
                self.value_run()?
            } else {
                Vec::new()
            };
            if site.is_none() && values.is_empty() {
                break;
            }
            let last = values.is_empty();
            segments.push(Segment { site, values });
            if last {
                break;
            }
        }
        Ok(segments)
    }

    pub(super) fn nav(&mut self) -> Res<Clause> {
        let start = self.pos;
        self.pos += 1;
        if self.at(|r| matches!(r, Role::ModeName(_))) {
            return self.mode_clause();
        }
        if self.at(|r| r == Role::To) && self.next_is(|r| matches!(r, Role::ModeName(_))) {
            self.pos += 1;
            return self.mode_clause();
        }
        let clock_at = if self.at(|r| r == Role::To) {
            self.pos + 1
        } else {
            self.pos
        };
        if let Some(Kind::Clock { hour, minute }) = self.tok(clock_at).map(|t| t.kind) {
            return self.clock_nav(start, clock_at, hour, minute);
        }
        if self.at(|r| r == Role::To) {
            self.pos += 1;
        } else if self.at_role(digit) == Some(2) && self.can_start_tooth_id(self.pos + 1) {
            // "jump two three": "two" is the to-slot (tooth 3) or tooth 2 (then a depth 3).
            self.ambiguity.push(Warning::AmbiguousToSlot);
            if !self.choose() {
                self.pos += 1;
            }
        }
        self.goto(GotoKind::Nav)
    }

    fn clock_nav(&mut self, start: usize, clock_at: usize, hour: u8, minute: u8) -> Res<Clause> {
        self.pos = clock_at + 1;
        let tooth = match self.settings.numbering {
            _ if hour != 2 => None,
            Numbering::Universal => Tooth::new(minute),
            Numbering::Fdi => Tooth::from_fdi(minute),
            Numbering::Palmer => None,
        };
        let Some(tooth) = tooth else {
            let reason = if hour == 2 {
                RejectReason::BadTooth
            } else {
                RejectReason::AmbiguousNumeral
            };
            return Err(Reject::new(reason, self.heard_span(clock_at, clock_at + 1)));
        };
        let clock = self.heard_span(clock_at, clock_at + 1);
        self.warnings.push(Warning::ItnClock {
            clock,
            number: minute,
        });
        let tooth = ToothRef {
            tooth,
            heard: self.heard(start),
        };
        let surface = self.opt_surface();
        let segments = self.segments()?;
        Ok(Clause::Goto {
            kind: GotoKind::Nav,
            tooth,
            surface,
            segments,
        })
    }

    pub(super) fn select(&mut self) -> Res<Clause> {
        self.pos += 1;
        let (tooth, _) = self.tooth_ref(false)?;
        let tooth = self.tooth_repairs(tooth)?;
        let surface = self.opt_surface();
        let segments = self
            .opt_site()
            .map(|site| {
                vec![Segment {
                    site: Some(site),
                    values: Vec::new(),
                }]
            })
            .unwrap_or_default();
        Ok(Clause::Goto {
            kind: GotoKind::Select,
            tooth,
            surface,
            segments,
        })
    }

    pub(super) fn switch(&mut self) -> Res<Clause> {
        let start = self.pos;
        self.pos += 1;
        if !self.eat(|r| r == Role::To) {
            return Ok(Clause::Switch(None));
        }
        if self.at(|r| matches!(r, Role::ModeName(_))) {
            return self.mode_clause();
        }
        match self.at_role(|r| {
            if let Role::Surface(s) = r {
                Some(s)
            } else {
                None
            }
        }) {
            Some(s) => {
                self.pos += 1;
                Ok(Clause::Switch(Some(s)))
            }
            None => self.fail(RejectReason::Incomplete, start),
        }
    }

    // ----- modes and spot commands -----

    pub(super) fn spot_or_mode(&mut self) -> Res<Clause> {
        let spot = self.at_role(|r| if let Role::Spot(m) = r { Some(m) } else { None });
        let is_mode = self.at(|r| matches!(r, Role::ModeName(_)));
        if let Some(mode) = spot {
            let snap = self.snapshot();
            match self.spot(mode) {
                Ok(c) => return Ok(c),
                Err(e) if !is_mode => return Err(e),
                Err(_) => self.restore(&snap),
            }
        }
        self.mode_clause()
    }

    fn spot(&mut self, mode: Mode) -> Res<Clause> {
        let start = self.pos;
        self.pos += 1;
        self.eat(|r| r == Role::With);
        let value = self.value()?;
        if !self.eat(|r| r == Role::On) {
            return self.fail(RejectReason::Incomplete, start);
        }
        let (tooth, _) = self.tooth_ref(false)?;
        let place = match self.opt_surface() {
            Some(s) => Some(Place::Surface(s)),
            None => self.opt_site().map(Place::Site),
        };
        Ok(Clause::Spot {
            mode,
            value,
            tooth,
            place,
        })
    }

    pub(super) fn mode_clause(&mut self) -> Res<Clause> {
        let start = self.pos;
        let Some(mode) = self.at_role(|r| {
            if let Role::ModeName(m) = r {
                Some(m)
            } else {
                None
            }
        }) else {
            return self.fail(RejectReason::Incomplete, start);
        };
        self.pos += 1;
        let mut tooth = None;
        if self.at_tooth_marker() {
            let (t, split) = self.tooth_ref(true)?;
            let t = if split { t } else { self.tooth_repairs(t)? };
            tooth = Some(t);
        }
        let values = if self.is_value_start(self.pos) {
            self.value_run()?
        } else {
            Vec::new()
        };
        Ok(Clause::Mode {
            mode,
            tooth,
            values,
        })
    }
}
