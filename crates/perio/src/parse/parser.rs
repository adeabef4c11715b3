//! The backtracking driver and the parser's core: token helpers, the final as a list of
//! clauses, and the dispatch on a clause's first word.
//!
//! [`readings`] re-runs the parser with other branches at its choice points, at most
//! [`MAX_PARSES`] times, and keeps only readings with the greedy reading's clause
//! boundaries; a lone surviving reading carries no ambiguity warnings. An undo that does
//! not open the final rejects it. When no reading survives, the first run's [`Reject`]
//! is the answer.

use super::clause::Clause;
use super::{MAX_PARSES, ParseSettings, Reading};
use crate::chart::ToothStatus;
use crate::lexicon::Role;
use crate::outcome::{Reject, RejectReason, Warning};
use crate::token::{Kind, Token};

/// Every complete reading of the final, the greedy one first, or the first failure.
pub(super) fn readings(
    toks: &[&Token],
    settings: ParseSettings,
    hom_ok: &[bool],
) -> Result<Vec<Reading>, Reject> {
    let mut found: Vec<Reading> = Vec::new();
    let mut first_err = None;
    let mut stack: Vec<Vec<bool>> = vec![Vec::new()];
    let mut runs = 0;
    while let Some(prefix) = stack.pop() {
        if runs == MAX_PARSES {
            break;
        }
        runs += 1;
        let mut p = Parser {
            toks,
            pos: 0,
            settings,
            hom_ok,
            prefix: &prefix,
            taken: Vec::new(),
            warnings: Vec::new(),
            ambiguity: Vec::new(),
        };
        let result = p.parse_final();
        for j in (prefix.len()..p.taken.len()).rev() {
            let mut alt: Vec<bool> = p.taken.iter().take(j).copied().collect();
            alt.push(true);
            stack.push(alt);
        }
        match result {
            Ok(r) => found.push(r),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let Some(base) = found.first().map(|r| r.ends.clone()) else {
        return Err(first_err.unwrap_or_else(|| Reject::new(RejectReason::Incomplete, "")));
    };
    found.retain(|r| r.ends == base);
    if found.len() == 1
        && let Some(r) = found.first_mut()
    {
        r.ambiguity.clear();
    }
    Ok(found)
}

/// Parser state to return to when a tentative clause does not fit.
pub(super) struct Snapshot {
    pos: usize,
    warnings: usize,
    ambiguity: usize,
}

/// One run of the parser over a final, following the branches of `prefix` at its choice
/// points (the first branch beyond it).
pub(super) struct Parser<'a> {
    toks: &'a [&'a Token],
    /// Index of the next token.
    pub(super) pos: usize,
    pub(super) settings: ParseSettings,
    /// Which homophones may be read as digits (rules H1–H3).
    pub(super) hom_ok: &'a [bool],
    prefix: &'a [bool],
    taken: Vec<bool>,
    pub(super) warnings: Vec<Warning>,
    /// Warnings of the choice points met.
    pub(super) ambiguity: Vec<Warning>,
}

pub(super) type Res<T> = Result<T, Reject>;

/// The digit of a digit word.
pub(super) fn digit(r: Role) -> Option<u8> {
    if let Role::Digit(d) = r {
        Some(d)
    } else {
        None
    }
}

impl<'a> Parser<'a> {
    // ----- token helpers -----

    pub(super) fn tok(&self, i: usize) -> Option<&'a Token> {
        self.toks.get(i).copied()
    }

    pub(super) fn peek(&self) -> Option<&'a Token> {
        self.tok(self.pos)
    }

    pub(super) fn at(&self, f: impl Fn(Role) -> bool) -> bool {
        self.peek().is_some_and(|t| t.is(f))
    }

    pub(super) fn at_role<T>(&self, f: impl Fn(Role) -> Option<T>) -> Option<T> {
        self.peek()?.role(f)
    }

    pub(super) fn next_is(&self, f: impl Fn(Role) -> bool) -> bool {
        self.tok(self.pos + 1).is_some_and(|t| t.is(f))
    }

    pub(super) fn eat(&mut self, f: impl Fn(Role) -> bool) -> bool {
        let hit = self.at(f);
        if hit {
            self.pos += 1;
        }
        hit
    }

    pub(super) fn skip_sep(&mut self) {
        while self.peek().is_some_and(|t| t.kind == Kind::Sep) {
            self.pos += 1;
        }
    }

    pub(super) fn heard(&self, from: usize) -> String {
        self.heard_span(from, self.pos.max(from + 1))
    }

    pub(super) fn heard_span(&self, from: usize, to: usize) -> String {
        let words: Vec<&str> = (from..to)
            .filter_map(|i| self.tok(i))
            .filter(|t| t.kind != Kind::Sep)
            .map(|t| t.text.as_str())
            .collect();
        words.join(" ")
    }

    pub(super) fn fail<T>(&self, reason: RejectReason, from: usize) -> Res<T> {
        Err(Reject::new(reason, self.heard(from)))
    }

    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot {
            pos: self.pos,
            warnings: self.warnings.len(),
            ambiguity: self.ambiguity.len(),
        }
    }

    pub(super) fn restore(&mut self, s: &Snapshot) {
        self.pos = s.pos;
        self.warnings.truncate(s.warnings);
        self.ambiguity.truncate(s.ambiguity);
    }

    pub(super) fn choose(&mut self) -> bool {
        let d = self.prefix.get(self.taken.len()).copied().unwrap_or(false);
        self.taken.push(d);
        d
    }

    pub(super) fn is_value_token(&self, i: usize) -> bool {
        self.tok(i).is_some_and(|t| match t.kind {
            Kind::Numeral { hash, .. } => !hash,
            Kind::Clock { .. } => true,
            Kind::Word(_) => {
                t.is(|r| matches!(r, Role::Digit(_) | Role::Teen(_)))
                    || (self.hom_ok.get(i).copied().unwrap_or(false)
                        && t.is(|r| matches!(r, Role::Homophone(_))))
            }
            _ => false,
        })
    }

    pub(super) fn is_value_start(&self, i: usize) -> bool {
        self.is_value_token(i)
            || (self
                .tok(i)
                .is_some_and(|t| t.is(|r| matches!(r, Role::Plus | Role::Coronal | Role::Minus)))
                && self.is_value_token(i + 1))
    }

    pub(super) fn at_tooth_marker(&self) -> bool {
        self.peek().is_some_and(|t| {
            matches!(t.kind, Kind::Numeral { hash: true, .. })
                || t.is(|r| {
                    matches!(
                        r,
                        Role::ToothWord
                            | Role::NumberWord
                            | Role::Primary
                            | Role::Arch(_)
                            | Role::PalmerQuadrant(_)
                    )
                })
        })
    }

    // ----- final and clauses -----

    fn parse_final(&mut self) -> Res<Reading> {
        let mut clauses = Vec::new();
        let mut ends = Vec::new();
        loop {
            self.skip_sep();
            if self.peek().is_none() {
                break;
            }
            let start = self.pos;
            let clause = self.clause()?;
            if matches!(clause, Clause::Undo { .. }) && !clauses.is_empty() {
                // An undo must open the final: "three two three scratch that" is unclear.
                return self.fail(RejectReason::AmbiguousCommand, start);
            }
            clauses.push(clause);
            ends.push(self.pos);
        }
        Ok(Reading {
            clauses,
            warnings: std::mem::take(&mut self.warnings),
            ambiguity: std::mem::take(&mut self.ambiguity),
            ends,
        })
    }

    fn clause(&mut self) -> Res<Clause> {
        let start = self.pos;
        let Some(t) = self.peek() else {
            return self.fail(RejectReason::Incomplete, start);
        };
        match t.kind {
            Kind::Numeral { hash: true, .. } => return self.tooth_led(),
            Kind::Numeral { .. } | Kind::Clock { .. } => return self.run_clause(),
            Kind::Word(_) => {}
            Kind::Decimal => return self.fail(RejectReason::ConcatenatedNumber, start),
            Kind::Oov => return self.fail(RejectReason::OutOfVocabulary, start),
            Kind::Sep => return self.fail(RejectReason::Incomplete, start),
        }
        if let Some(action) = t.role(|r| {
            if let Role::Session(a) = r {
                Some(a)
            } else {
                None
            }
        }) {
            self.pos += 1;
            return Ok(Clause::Session(action));
        }
        if let Some(scope) = t.role(|r| if let Role::Undo(u) = r { Some(u) } else { None }) {
            self.pos += 1;
            return Ok(Clause::Undo {
                scope,
                heard: t.text.clone(),
            });
        }
        if t.is(|r| matches!(r, Role::Flag(_) | Role::FlagAdd))
            || (t.is(|r| r == Role::FlagRemove) && self.next_is(|r| matches!(r, Role::Flag(_))))
        {
            return self.flag_clause();
        }
        self.command_clause(start)
    }

    fn command_clause(&mut self, start: usize) -> Res<Clause> {
        let Some(t) = self.peek() else {
            return self.fail(RejectReason::Incomplete, start);
        };
        if t.is(|r| r == Role::NavHead) {
            self.nav()
        } else if t.is(|r| r == Role::Start) {
            self.pos += 1;
            if self.at(|r| matches!(r, Role::ModeName(_))) {
                self.mode_clause()
            } else {
                self.fail(RejectReason::Incomplete, start)
            }
        } else if t.is(|r| r == Role::Switch) {
            self.switch()
        } else if t.is(|r| r == Role::Flip) {
            self.pos += 1;
            Ok(Clause::Switch(None))
        } else if t.is(|r| r == Role::Select) {
            self.select()
        } else if t.is(|r| matches!(r, Role::Next | Role::Previous)) {
            let forward = t.is(|r| r == Role::Next);
            self.pos += 1;
            let site = self.eat(|r| r == Role::SiteWord);
            if !site {
                self.eat(|r| r == Role::ToothWord);
            }
            Ok(Clause::Step { forward, site })
        } else if t.is(|r| r == Role::ResumePath) {
            self.pos += 1;
            Ok(Clause::ResumePath)
        } else if t.is(|r| matches!(r, Role::Spot(_) | Role::ModeName(_))) {
            self.spot_or_mode()
        } else if let Some(s) = t.role(|r| {
            if let Role::Surface(s) = r {
                Some(s)
            } else {
                None
            }
        }) {
            self.pos += 1;
            Ok(Clause::Switch(Some(s)))
        } else {
            self.attribute_clause(start)
        }
    }

    fn attribute_clause(&mut self, start: usize) -> Res<Clause> {
        let Some(t) = self.peek() else {
            return self.fail(RejectReason::Incomplete, start);
        };
        if t.is(|r| r == Role::Mobility) {
            self.pos += 1;
            self.mobility(None)
        } else if t.is(|r| matches!(r, Role::Furcation | Role::FullFurcation)) {
            self.furcation()
        } else if let Some(status) = t.role(|r| {
            if let Role::Status(s) = r {
                Some(s)
            } else {
                None
            }
        }) {
            self.status_first(status)
        } else if t.is(|r| r == Role::Skip) {
            self.pos += 1;
            if self.eat(|r| r == Role::This) && self.eat(|r| r == Role::ToothWord) {
                Ok(Clause::Status {
                    teeth: None,
                    status: ToothStatus::Skipped,
                })
            } else {
                // Rule S1: bare "skip" means three things across vendors.
                Err(Reject::new(
                    RejectReason::AmbiguousCommand,
                    self.heard_span(start, start + 1),
                ))
            }
        } else if t.is(|r| r == Role::SkipTooth) {
            self.pos += 1;
            let tooth = self.tooth_id_only(start)?;
            Ok(Clause::Status {
                teeth: Some(vec![tooth]),
                status: ToothStatus::Skipped,
            })
        } else if self.at_tooth_marker() {
            self.tooth_led()
        } else if self.is_value_start(self.pos) {
            self.run_clause()
        } else {
            self.fail(RejectReason::Incomplete, start)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::parse::{ParseSettings, Reading, Verdict, parse};

    fn readings_of(s: &str) -> Vec<Reading> {
        match parse(s, ParseSettings::default()).verdict {
            Verdict::Readings(r) => r,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn compound_tooth_alternatives() {
        assert_eq!(readings_of("tooth twenty three two four").len(), 2);
        // The split-off word would start another clause: not an alternative (example #31).
        assert_eq!(
            readings_of("mobility class three on tooth twenty four").len(),
            1
        );
        assert_eq!(readings_of("jump to tooth twenty three facial").len(), 1);
        assert_eq!(readings_of("jump two three").len(), 2);
        assert_eq!(readings_of("jump two").len(), 1);
    }
}
