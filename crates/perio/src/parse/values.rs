//! Values (rules N1–N3, G2–G3, C1, Bola "repeat"): single values, runs with their
//! repairs and repetitions, and the value-run clause.
//!
//! A value is 0–19, or a display digit string left whole for the resolver (N3). Refused
//! here: a sign word for a negative value (G3), a two-digit numeral or a stray clock time
//! (N2, N4), a repeat count of zero or one that would exceed [`MAX_RUN_VALUES`], and an
//! unmarked number directly before a status word.

use super::MAX_RUN_VALUES;
use super::clause::{Clause, Val, ValKind};
use super::parser::{Parser, Res};
use crate::lexicon::Role;
use crate::outcome::{RejectReason, Warning};
use crate::token::Kind;

impl Parser<'_> {
    pub(super) fn value(&mut self) -> Res<Val> {
        let start = self.pos;
        let mut plus = false;
        if self.at(|r| r == Role::Minus) {
            // Rule G3: products disagree on what a negative GM means.
            self.pos += 2;
            return self.fail(RejectReason::AmbiguousSign, start);
        }
        if self.eat(|r| matches!(r, Role::Plus | Role::Coronal)) {
            plus = true;
        }
        let i = self.pos;
        let Some(t) = self.peek() else {
            return self.fail(RejectReason::Incomplete, start);
        };
        let kind = match t.kind {
            Kind::Numeral {
                value,
                len: 1,
                hash: false,
            } => ValKind::Single(u8::try_from(value).unwrap_or(u8::MAX)),
            Kind::Numeral {
                len: 2,
                hash: false,
                ..
            }
            | Kind::Clock { .. } => {
                // Rule N2: "11" may be "eleven" or "one one"; rule N4: stray clock.
                self.pos += 1;
                return self.fail(RejectReason::AmbiguousNumeral, i);
            }
            Kind::Numeral { hash: false, .. } => ValKind::Digits(t.text.clone()),
            _ => {
                if let Some(v) = t.role(|r| match r {
                    Role::Digit(d) | Role::Teen(d) => Some(d),
                    _ => None,
                }) {
                    ValKind::Single(v)
                } else if let Some(h) = t.role(|r| {
                    if let Role::Homophone(h) = r {
                        Some(h)
                    } else {
                        None
                    }
                }) && self.hom_ok.get(i).copied().unwrap_or(false)
                {
                    self.warnings.push(Warning::Homophone {
                        word: t.text.clone(),
                        value: h,
                    });
                    ValKind::Single(h)
                } else {
                    self.pos += 1;
                    return self.fail(RejectReason::Incomplete, start);
                }
            }
        };
        self.pos += 1;
        Ok(Val {
            kind,
            plus,
            heard: self.heard(start),
        })
    }

    pub(super) fn value_run(&mut self) -> Res<Vec<Val>> {
        let start = self.pos;
        let mut vals: Vec<Val> = Vec::new();
        loop {
            let save = self.pos;
            self.skip_sep();
            if self.is_value_start(self.pos) {
                vals.push(self.value()?);
            } else if !vals.is_empty()
                && self.at(|r| r == Role::Repair)
                && self.is_value_start(self.pos + 1)
            {
                self.pos += 1;
                let v = self.value()?;
                if let Some(last) = vals.last_mut() {
                    self.warnings.push(Warning::Repair {
                        slot: "",
                        from: last.spoken(),
                        to: v.spoken(),
                    });
                    *last = v;
                }
            } else {
                self.pos = save;
                break;
            }
        }
        if self.eat(|r| r == Role::Repeat) {
            let count_at = self.pos;
            let count = self.count()?;
            if count == 0 || vals.len() * usize::from(count) > MAX_RUN_VALUES {
                return self.fail(RejectReason::OutOfRange, count_at);
            }
            self.eat(|r| r == Role::Times);
            let once = vals.clone();
            for _ in 1..count {
                vals.extend(once.iter().cloned());
            }
        }
        if vals.is_empty() {
            return self.fail(RejectReason::Incomplete, start);
        }
        Ok(vals)
    }

    fn count(&mut self) -> Res<u8> {
        let start = self.pos;
        let n = self.peek().and_then(|t| match t.kind {
            Kind::Numeral {
                value, len: 1..=3, ..
            } => Some(u8::try_from(value).unwrap_or(u8::MAX)),
            _ => t.role(|r| match r {
                Role::Digit(d) | Role::Teen(d) => Some(d),
                _ => None,
            }),
        });
        match n {
            Some(n) => {
                self.pos += 1;
                Ok(n)
            }
            None => self.fail(RejectReason::Incomplete, start),
        }
    }

    pub(super) fn run_clause(&mut self) -> Res<Clause> {
        let vals = self.value_run()?;
        if self.at(|r| matches!(r, Role::Status(_))) {
            // "three missing": tooth 3, or a depth then the cursor tooth? Say "tooth three".
            let from = self.pos.saturating_sub(1);
            self.pos += 1;
            return self.fail(RejectReason::AmbiguousCommand, from);
        }
        Ok(Clause::Run(vals))
    }
}
