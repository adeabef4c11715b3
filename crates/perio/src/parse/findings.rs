//! Findings: tooth statuses (rule S1), flags with their scopes and bulk regions
//! (F1–F5), mobility (T1) and furcation (T2–T3).
//!
//! A bare number after a status word, a flag with two scopes, and an unprefixed flag in
//! the "add" mode are refused as ambiguous; Miller mobility is 0–3 and furcation 0–4
//! (Glickman IV, stored as 3 by the resolver); after "on tooth N" a grade needs
//! "grade"/"class".

use super::clause::{Clause, EntranceSpec, Grade, Region, Scope, ToothRef};
use super::parser::{Parser, Res, digit};
use crate::chart::{Entrance, Flag, ToothStatus};
use crate::lexicon::Role;
use crate::outcome::{Reject, RejectReason, Warning};
use crate::site::{Part, Site, Surface};
use crate::token::Kind;

impl Parser<'_> {
    pub(super) fn status_first(&mut self, status: ToothStatus) -> Res<Clause> {
        let start = self.pos;
        self.pos += 1;
        if self.is_value_start(self.pos) {
            // "missing three": tooth 3, or the cursor tooth then a depth? Say "missing tooth three".
            self.pos += 1;
            return self.fail(RejectReason::AmbiguousCommand, start);
        }
        if self.at_tooth_marker() {
            let list = self.tooth_list()?;
            return Ok(Clause::Status {
                teeth: Some(list),
                status,
            });
        }
        Ok(Clause::Status {
            teeth: None,
            status,
        })
    }

    // ----- flags -----

    pub(super) fn flag_clause(&mut self) -> Res<Clause> {
        let start = self.pos;
        let mut on = true;
        let mut prefixed = false;
        if self.eat(|r| r == Role::FlagAdd) {
            prefixed = true;
        } else if self.eat(|r| r == Role::FlagRemove) {
            on = false;
            prefixed = true;
        }
        let mut flags = Vec::new();
        while let Some(f) = self.at_role(|r| if let Role::Flag(f) = r { Some(f) } else { None }) {
            self.pos += 1;
            if !flags.contains(&f) {
                flags.push(f);
            }
        }
        if flags.is_empty() {
            return self.fail(RejectReason::Incomplete, start);
        }
        if self.settings.flag_prefix_required && !prefixed {
            return self.fail(RejectReason::AmbiguousCommand, start);
        }
        if self.at(|r| r == Role::On)
            && self.next_is(|r| matches!(r, Role::Quadrant | Role::Sextant))
        {
            return self.bulk_flag(start, flags, on);
        }
        let scope1 = self.opt_scope();
        let mut tooth = None;
        let mut scope2 = None;
        if self.eat(|r| r == Role::On) {
            let (t, _) = self.tooth_ref(false)?;
            tooth = Some(self.tooth_repairs(t)?);
            scope2 = self.opt_scope();
        }
        let scope = match (scope1, scope2) {
            (Some(_), Some(_)) => return self.fail(RejectReason::AmbiguousCommand, start),
            (a, b) => a.or(b),
        };
        Ok(Clause::Flag {
            flags,
            on,
            scope,
            tooth,
        })
    }

    fn bulk_flag(&mut self, start: usize, flags: Vec<Flag>, on: bool) -> Res<Clause> {
        self.pos += 1;
        let sextant = self.at(|r| r == Role::Sextant);
        self.pos += 1;
        let n = self.peek().and_then(|t| match t.kind {
            Kind::Numeral { value, len: 1, .. } => u8::try_from(value).ok(),
            _ => t.role(digit),
        });
        self.pos += 1;
        let region = match (n, sextant) {
            (Some(n @ 1..=4), false) => Region::Quadrant(n),
            (Some(n @ 1..=6), true) => Region::Sextant(n),
            (Some(_), _) => return self.fail(RejectReason::OutOfRange, start),
            (None, _) => return self.fail(RejectReason::Incomplete, start),
        };
        Ok(Clause::BulkFlag { flags, on, region })
    }

    fn opt_scope(&mut self) -> Option<Scope> {
        if self.site_at(self.pos).is_some() {
            let mut sites = Vec::new();
            while let Some(s) = self.opt_site() {
                sites.push(s);
            }
            return Some(Scope::Sites(sites));
        }
        if self.eat(|r| r == Role::All) {
            return Some(Scope::All(self.opt_surface()));
        }
        if self.eat(|r| r == Role::AllThree) {
            return Some(Scope::All(None));
        }
        if self.eat(|r| r == Role::AllSix) {
            return Some(Scope::AllSix);
        }
        if self.eat(|r| r == Role::Interproximal) {
            return Some(Scope::Interproximal);
        }
        self.opt_surface().map(Scope::Surface)
    }

    // ----- per-tooth attributes -----

    fn grade(&mut self) -> Res<Grade> {
        let start = self.pos;
        let Some(mut grade) = self.grade_here() else {
            return self.fail(RejectReason::Incomplete, start);
        };
        self.pos += 1;
        while self.at(|r| r == Role::Repair)
            && let Some(new) = self.grade_at(self.pos + 1)
        {
            self.pos += 2;
            self.warnings.push(Warning::Repair {
                slot: "grade ",
                from: grade.value.to_string(),
                to: new.value.to_string(),
            });
            grade = new;
        }
        Ok(grade)
    }

    fn grade_here(&self) -> Option<Grade> {
        self.grade_at(self.pos)
    }

    fn grade_at(&self, i: usize) -> Option<Grade> {
        let t = self.tok(i)?;
        let value = match t.kind {
            Kind::Numeral {
                value,
                len: 1,
                hash: false,
            } => u8::try_from(value).ok(),
            _ => t.role(|r| match r {
                Role::Digit(d) | Role::Roman(d) | Role::Teen(d) => Some(d),
                _ => None,
            }),
        }?;
        Some(Grade {
            value,
            heard: t.text.clone(),
        })
    }

    pub(super) fn mobility(&mut self, tooth_first: Option<ToothRef>) -> Res<Clause> {
        let start = self.pos.saturating_sub(1);
        let mut grade = None;
        let mut tooth = tooth_first;
        let mut plus = false;
        let mut on_seen = false;
        loop {
            if grade.is_none() && self.eat(|r| r == Role::GradeKw) {
                grade = Some(self.grade()?);
            } else if grade.is_none() && !on_seen && self.grade_here().is_some() {
                // After "on tooth N" a bare number could still belong to the tooth
                // ("twenty" + "two"): a grade there needs "grade"/"class".
                grade = Some(self.grade()?);
            } else if grade.is_some()
                && !plus
                && self.at(|r| r == Role::Plus)
                && !self.is_value_token(self.pos + 1)
            {
                self.pos += 1;
                plus = true;
            } else if tooth.is_none() && self.eat(|r| r == Role::On) {
                on_seen = true;
                let (t, _) = self.tooth_ref(false)?;
                tooth = Some(self.tooth_repairs(t)?);
            } else {
                break;
            }
        }
        let Some(grade) = grade else {
            return self.fail(RejectReason::Incomplete, start);
        };
        if grade.value > 3 {
            // Rule T1: Miller mobility is 0–3.
            return Err(Reject::new(RejectReason::OutOfRange, grade.heard));
        }
        Ok(Clause::Mobility { grade, plus, tooth })
    }

    fn entrance_here(&self) -> Option<EntranceSpec> {
        self.at_role(|r| match r {
            Role::Surface(Surface::F) => Some(EntranceSpec::Explicit(Entrance::B)),
            Role::Surface(Surface::L) => Some(EntranceSpec::Explicit(Entrance::L)),
            Role::Part(Part::Mesial) | Role::Site(Site::ML) => {
                Some(EntranceSpec::Explicit(Entrance::M))
            }
            Role::Part(Part::Distal) | Role::Site(Site::DL) => {
                Some(EntranceSpec::Explicit(Entrance::D))
            }
            Role::Entrance(e) => Some(EntranceSpec::Explicit(e)),
            Role::Site(s) => Some(EntranceSpec::Site(s)),
            _ => None,
        })
    }

    pub(super) fn furcation(&mut self) -> Res<Clause> {
        let start = self.pos;
        let full = self.at(|r| r == Role::FullFurcation);
        self.pos += 1;
        let mut grade = full.then(|| Grade {
            value: 3,
            heard: self.heard(start),
        });
        let mut entrance = None;
        let mut tooth = None;
        loop {
            if entrance.is_none()
                && let Some(e) = self.entrance_here()
            {
                self.pos += 1;
                entrance = Some(e);
            } else if grade.is_none() && self.eat(|r| r == Role::GradeKw) {
                grade = Some(self.grade()?);
            } else if grade.is_none() && tooth.is_none() && self.grade_here().is_some() {
                // As for mobility: after "on tooth N" the grade needs "grade"/"class".
                grade = Some(self.grade()?);
            } else if tooth.is_none() && self.eat(|r| r == Role::On) {
                let (t, _) = self.tooth_ref(false)?;
                tooth = Some(self.tooth_repairs(t)?);
            } else {
                break;
            }
        }
        let Some(grade) = grade else {
            return self.fail(RejectReason::Incomplete, start);
        };
        if grade.value > 4 {
            return Err(Reject::new(RejectReason::OutOfRange, grade.heard));
        }
        Ok(Clause::Furcation {
            grade,
            entrance,
            tooth,
        })
    }
}
