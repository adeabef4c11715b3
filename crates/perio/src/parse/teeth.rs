//! Teeth as said (rules A2–A3): Universal, FDI and Palmer numbers, repairs, lists and
//! ranges, and the clauses a tooth opens.
//!
//! Every tooth read is a valid Universal [`Tooth`]; primary teeth (and Palmer letters) are
//! refused, FDI needs exactly two digits, and the split reading of a compound Universal
//! number is offered only through a choice point, never guessed.

use super::clause::{Clause, GotoKind, ToothRef};
use super::parser::{Parser, Res, digit};
use crate::lexicon::Role;
use crate::outcome::{RejectReason, Warning};
use crate::token::Kind;
use crate::tooth::{Arch, Numbering, Side, Tooth};

impl Parser<'_> {
    pub(super) fn tooth_ref(&mut self, allow_split: bool) -> Res<(ToothRef, bool)> {
        let start = self.pos;
        let marked = self.eat(|r| r == Role::ToothWord) | self.eat(|r| r == Role::NumberWord);
        let (tooth, split) = self.tooth_id(start, marked, allow_split)?;
        Ok((
            ToothRef {
                tooth,
                heard: self.heard(start),
            },
            split,
        ))
    }

    /// A tooth id after an implicit marker ("skip tooth", repairs, list items).
    pub(super) fn tooth_id_only(&mut self, start: usize) -> Res<ToothRef> {
        let from = self.pos;
        let (tooth, _) = self.tooth_id(start, true, false)?;
        Ok(ToothRef {
            tooth,
            heard: self.heard(from),
        })
    }

    fn tooth_id(&mut self, start: usize, marked: bool, allow_split: bool) -> Res<(Tooth, bool)> {
        let Some(t) = self.peek() else {
            return self.fail(RejectReason::Incomplete, start);
        };
        if t.is(|r| r == Role::Primary) {
            // Primary teeth are not charted in perio (Open Dental: permanent teeth only).
            self.pos += 2;
            return self.fail(RejectReason::BadTooth, start);
        }
        if t.is(|r| matches!(r, Role::Arch(_) | Role::PalmerQuadrant(_))) {
            return Ok((self.palmer(start)?, false));
        }
        match self.settings.numbering {
            Numbering::Universal => self.universal_id(start, allow_split),
            Numbering::Fdi => Ok((self.fdi_id(start)?, false)),
            Numbering::Palmer => {
                self.pos += 1;
                let reason = if marked || self.is_value_token(self.pos - 1) {
                    RejectReason::BadTooth
                } else {
                    RejectReason::Incomplete
                };
                self.fail(reason, start)
            }
        }
    }

    fn palmer(&mut self, start: usize) -> Res<Tooth> {
        let quadrant = if let Some(q) = self.at_role(|r| {
            if let Role::PalmerQuadrant(q) = r {
                Some(q)
            } else {
                None
            }
        }) {
            self.pos += 1;
            q
        } else {
            let arch = self.at_role(|r| if let Role::Arch(a) = r { Some(a) } else { None });
            self.pos += 1;
            let side = self.at_role(|r| if let Role::Side(s) = r { Some(s) } else { None });
            let Some(side) = side else {
                return self.fail(RejectReason::Incomplete, start);
            };
            self.pos += 1;
            match (arch, side) {
                (Some(Arch::Upper), Side::Right) => 1,
                (Some(Arch::Upper), Side::Left) => 2,
                (Some(Arch::Lower), Side::Left) => 3,
                _ => 4,
            }
        };
        let Some(t) = self.peek() else {
            return self.fail(RejectReason::Incomplete, start);
        };
        let position = match t.kind {
            Kind::Numeral { value, len: 1, .. } => u8::try_from(value).ok(),
            _ => t.role(digit),
        };
        let is_letter = t.is(|r| matches!(r, Role::Letter(_)));
        self.pos += 1;
        if is_letter {
            // Palmer A–E are primary teeth: out of scope for perio.
            return self.fail(RejectReason::BadTooth, start);
        }
        match position.and_then(|n| Tooth::from_quadrant_position(quadrant, n)) {
            Some(tooth) => Ok(tooth),
            None => self.fail(RejectReason::BadTooth, start),
        }
    }

    fn universal_id(&mut self, start: usize, allow_split: bool) -> Res<(Tooth, bool)> {
        let Some(t) = self.peek() else {
            return self.fail(RejectReason::Incomplete, start);
        };
        let number = match t.kind {
            Kind::Numeral { value, .. } => Some(value),
            _ => t.role(|r| match r {
                Role::Digit(d) | Role::Teen(d) | Role::Tens(d) => Some(u32::from(d)),
                _ => None,
            }),
        };
        let Some(number) = number else {
            self.pos += 1;
            return self.fail(RejectReason::Incomplete, start);
        };
        let tens = t.role(|r| if let Role::Tens(n) = r { Some(n) } else { None });
        let tens_text = t.text.clone();
        self.pos += 1;
        let mut number = number;
        if let Some(tens) = tens {
            let unit = self.at_role(digit).filter(|&d| {
                if tens == 20 {
                    (1..=9).contains(&d)
                } else {
                    (1..=2).contains(&d)
                }
            });
            if let Some(unit) = unit {
                let unit_text = self.peek().map(|u| u.text.clone()).unwrap_or_default();
                if allow_split {
                    // Rule A2: greedy reading first; the split reading is the alternative.
                    self.ambiguity.push(Warning::AmbiguousToothNumber {
                        tens: tens_text,
                        unit: unit_text,
                    });
                    if self.choose() {
                        return self.tooth_number(start, u32::from(tens)).map(|t| (t, true));
                    }
                }
                self.pos += 1;
                number = u32::from(tens + unit);
            }
        }
        self.tooth_number(start, number).map(|t| (t, false))
    }

    fn tooth_number(&self, start: usize, n: u32) -> Res<Tooth> {
        match u8::try_from(n).ok().and_then(Tooth::new) {
            Some(t) => Ok(t),
            None => self.fail(RejectReason::BadTooth, start),
        }
    }

    fn fdi_id(&mut self, start: usize) -> Res<Tooth> {
        let Some(t) = self.peek() else {
            return self.fail(RejectReason::Incomplete, start);
        };
        if let Kind::Numeral { value, len, .. } = t.kind {
            self.pos += 1;
            if len == 1 {
                return self.fail(RejectReason::FdiNeedsTwoDigits, start);
            }
            return match u8::try_from(value)
                .ok()
                .filter(|_| len == 2)
                .and_then(Tooth::from_fdi)
            {
                Some(tooth) => Ok(tooth),
                None => self.fail(RejectReason::BadTooth, start),
            };
        }
        if let Some(q) = t.role(digit) {
            self.pos += 1;
            let Some(n) = self.at_role(digit) else {
                return self.fail(RejectReason::FdiNeedsTwoDigits, start);
            };
            self.pos += 1;
            return match Tooth::from_quadrant_position(q, n) {
                Some(tooth) => Ok(tooth),
                None => self.fail(RejectReason::BadTooth, start),
            };
        }
        self.pos += 1;
        if t.is(|r| matches!(r, Role::Teen(_) | Role::Tens(_))) {
            return self.fail(RejectReason::FdiNeedsTwoDigits, start);
        }
        self.fail(RejectReason::Incomplete, start)
    }

    pub(super) fn tooth_repairs(&mut self, mut tooth: ToothRef) -> Res<ToothRef> {
        while self.at(|r| r == Role::Repair) && self.can_start_tooth_id(self.pos + 1) {
            let start = self.pos;
            self.pos += 1;
            self.eat(|r| r == Role::ToothWord);
            self.eat(|r| r == Role::NumberWord);
            let new = self.tooth_id_only(start)?;
            let n = self.settings.numbering;
            self.warnings.push(Warning::Repair {
                slot: "tooth ",
                from: tooth.tooth.spoken_number(n).to_string(),
                to: new.tooth.spoken_number(n).to_string(),
            });
            tooth = new;
        }
        Ok(tooth)
    }

    pub(super) fn can_start_tooth_id(&self, i: usize) -> bool {
        self.tok(i).is_some_and(|t| {
            matches!(t.kind, Kind::Numeral { .. })
                || t.is(|r| {
                    matches!(
                        r,
                        Role::Digit(_)
                            | Role::Teen(_)
                            | Role::Tens(_)
                            | Role::ToothWord
                            | Role::NumberWord
                            | Role::Arch(_)
                            | Role::PalmerQuadrant(_)
                    )
                })
        })
    }

    pub(super) fn tooth_list(&mut self) -> Res<Vec<ToothRef>> {
        let (first, _) = self.tooth_ref(false)?;
        let first = self.tooth_repairs(first)?;
        if self.at(|r| matches!(r, Role::Through | Role::To))
            && self.can_start_tooth_id(self.pos + 1)
        {
            let start = self.pos;
            self.pos += 1;
            let last = self.tooth_id_only(start)?;
            let (lo, hi) = if first.tooth <= last.tooth {
                (first.tooth, last.tooth)
            } else {
                (last.tooth, first.tooth)
            };
            let heard = self.heard_span(start.saturating_sub(1), self.pos);
            return Ok((lo.number()..=hi.number())
                .filter_map(Tooth::new)
                .map(|tooth| ToothRef {
                    tooth,
                    heard: heard.clone(),
                })
                .collect());
        }
        let mut list = vec![first];
        loop {
            let sep =
                self.peek().is_some_and(|t| t.kind == Kind::Sep) || self.at(|r| r == Role::And);
            if !(sep && self.can_start_tooth_id(self.pos + 1)) {
                break;
            }
            let start = self.pos;
            self.pos += 1;
            let item = self.tooth_id_only(start)?;
            list.push(self.tooth_repairs(item)?);
        }
        Ok(list)
    }

    pub(super) fn tooth_led(&mut self) -> Res<Clause> {
        let snap = self.snapshot();
        if let Ok(list) = self.tooth_list() {
            if let Some(status) = self.at_role(|r| {
                if let Role::Status(s) = r {
                    Some(s)
                } else {
                    None
                }
            }) {
                self.pos += 1;
                return Ok(Clause::Status {
                    teeth: Some(list),
                    status,
                });
            }
            if list.len() == 1 && self.eat(|r| r == Role::Mobility) {
                return self.mobility(list.into_iter().next());
            }
        }
        self.restore(&snap);
        self.goto(GotoKind::Tooth)
    }
}
