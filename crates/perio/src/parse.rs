//! The parser (SPEC §2 grammar, rules H1–H3, N2–N4, A1–A3, C1).
//!
//! The parser is a recursive-descent reader over the token list with *choice points* only
//! where the SPEC asks for alternatives: a compound tooth number ("twenty three" vs
//! "twenty" + "three", rule A2) and "two" after a navigation verb (to-slot or tooth). Each
//! run of the parser takes the first branch at every choice point it has not been told
//! about; the driver re-runs it with other branches, at most [`MAX_PARSES`] times
//! (bounded backtracking). A non-greedy reading is an alternative only when it has the
//! same clause boundaries as the greedy one, i.e. when the split-off word belongs to the
//! same clause (it starts that clause's value run).

use crate::chart::{Entrance, Flag, ToothStatus};
use crate::lexicon::Role;
use crate::outcome::{Mode, Reject, RejectReason, SessionAction, UndoScope, Warning};
use crate::site::{Part, Site, Surface};
use crate::token::{Kind, Token, Tokens, tokenize};
use crate::tooth::{Arch, Numbering, Side, Tooth};

/// Most parser runs per final (2³ readings of three choice points).
pub const MAX_PARSES: usize = 8;

/// Most values one run may produce (a full mouth), after `repeat`.
pub const MAX_RUN_VALUES: usize = 192;

/// The settings the parser reads (numbering is a session setting, never guessed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseSettings {
    /// Tooth numbering of the session.
    pub numbering: Numbering,
    /// Homophones allowed inside numeric runs (`run_only`) or refused (`off`).
    pub homophones: bool,
    /// Flags need "add"/"mark" (the Bola "add" mode).
    pub flag_prefix_required: bool,
}

impl Default for ParseSettings {
    fn default() -> Self {
        Self {
            numbering: Numbering::Universal,
            homophones: true,
            flag_prefix_required: false,
        }
    }
}

/// A spoken value: a number with an optional "plus"-type sign word, or a digit string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Val {
    /// The number.
    pub kind: ValKind,
    /// Said with "plus" / "coronal" / "hyperplasia" / … before it.
    pub plus: bool,
    /// Words heard.
    pub heard: String,
}

/// The number of a [`Val`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValKind {
    /// 0–19.
    Single(u8),
    /// A display digit string of three or more digits (rule N3), split or refused at
    /// resolution time against the cursor.
    Digits(String),
}

impl Val {
    fn spoken(&self) -> String {
        let n = match &self.kind {
            ValKind::Single(n) => n.to_string(),
            ValKind::Digits(d) => d.clone(),
        };
        if self.plus { format!("plus {n}") } else { n }
    }
}

/// A tooth as named in a final.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToothRef {
    /// The tooth.
    pub tooth: Tooth,
    /// Words heard.
    pub heard: String,
}

/// A site as spoken: full, or a half site resolved against an anchor surface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteSpec {
    /// "mesiobuccal", "d l", …
    Full(Site),
    /// "mesial", "mid", "distal", …
    Part(Part),
}

impl SiteSpec {
    /// The site on `surface` (full sites ignore it).
    #[must_use]
    pub const fn on(self, surface: Surface) -> Site {
        match self {
            Self::Full(s) => s,
            Self::Part(p) => Site::new(surface, p),
        }
    }
}

/// Values to write starting at a site (or at the first site when `site` is `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Where to start.
    pub site: Option<SiteSpec>,
    /// Values, filled along the path.
    pub values: Vec<Val>,
}

/// Scope of a flag (rule F4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Named sites.
    Sites(Vec<SiteSpec>),
    /// "all" / "all three" / "all facial": three sites of a surface.
    All(Option<Surface>),
    /// "all six", "whole tooth", "all sites".
    AllSix,
    /// "interproximal": M and D of the anchor surface.
    Interproximal,
    /// A bare surface: its mid site.
    Surface(Surface),
}

/// A furcation entrance as spoken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntranceSpec {
    /// Named entrance.
    Explicit(Entrance),
    /// A site word, mapped by rule T2.
    Site(Site),
}

/// A grade as spoken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grade {
    /// The number (4 for "class four" / "iv").
    pub value: u8,
    /// Words heard.
    pub heard: String,
}

/// How a cursor move was said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GotoKind {
    /// "tooth three …".
    Tooth,
    /// "jump to …", "go back to …".
    Nav,
    /// "select …".
    Select,
}

/// Bulk flag region (rule F5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// Quadrant 1–4.
    Quadrant(u8),
    /// Sextant 1–6.
    Sextant(u8),
}

/// One clause of a final.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Clause {
    /// A session command.
    Session(SessionAction),
    /// Undo / backspace.
    Undo {
        /// What to revert.
        scope: UndoScope,
        /// Words heard.
        heard: String,
    },
    /// A mode switch with optional tooth and values.
    Mode {
        /// The mode.
        mode: Mode,
        /// Optional tooth to move to.
        tooth: Option<ToothRef>,
        /// Values typed by the new mode.
        values: Vec<Val>,
    },
    /// A cursor move with optional values.
    Goto {
        /// How it was said.
        kind: GotoKind,
        /// The tooth.
        tooth: ToothRef,
        /// Named surface.
        surface: Option<Surface>,
        /// Values (possibly none).
        segments: Vec<Segment>,
    },
    /// "next [tooth|site]", "previous [tooth|site]".
    Step {
        /// Forward or back.
        forward: bool,
        /// Site (`true`) or tooth (`false`).
        site: bool,
    },
    /// "switch [to surface]", "flip", or a bare surface.
    Switch(Option<Surface>),
    /// "resume path".
    ResumePath,
    /// A value run at the cursor.
    Run(Vec<Val>),
    /// "recession two on tooth three distal".
    Spot {
        /// `Gm` or `Mgj`.
        mode: Mode,
        /// The value.
        value: Val,
        /// The tooth.
        tooth: ToothRef,
        /// Site or surface.
        place: Option<Place>,
    },
    /// A tooth status.
    Status {
        /// Named teeth, or the cursor tooth when `None`.
        teeth: Option<Vec<ToothRef>>,
        /// The status.
        status: ToothStatus,
    },
    /// Flags set or cleared.
    Flag {
        /// Which findings.
        flags: Vec<Flag>,
        /// Set or clear.
        on: bool,
        /// Scope.
        scope: Option<Scope>,
        /// "on tooth N".
        tooth: Option<ToothRef>,
    },
    /// Flags over a quadrant or sextant (needs confirmation).
    BulkFlag {
        /// Which findings.
        flags: Vec<Flag>,
        /// Set or clear.
        on: bool,
        /// Region.
        region: Region,
    },
    /// Mobility.
    Mobility {
        /// Grade.
        grade: Grade,
        /// Said with "plus".
        plus: bool,
        /// "on tooth N" (or tooth-first form).
        tooth: Option<ToothRef>,
    },
    /// Furcation.
    Furcation {
        /// Grade.
        grade: Grade,
        /// Entrance.
        entrance: Option<EntranceSpec>,
        /// "on tooth N".
        tooth: Option<ToothRef>,
    },
}

/// Where a spot value goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A surface (its mid site).
    Surface(Surface),
    /// A site.
    Site(SiteSpec),
}

/// One complete reading of a final.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    /// Clauses in order.
    pub clauses: Vec<Clause>,
    /// Warnings raised while reading (homophones, repairs, digit strings …).
    pub warnings: Vec<Warning>,
    /// Ambiguity warnings of the choice points met (kept only when alternatives remain).
    pub ambiguity: Vec<Warning>,
    ends: Vec<usize>,
}

/// An answer to a confirmation prompt: only meaningful as a whole final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptAnswer {
    /// "confirm", "yes", "correct".
    Confirm,
    /// "no", "cancel".
    Decline,
    /// "option N" (1-based).
    Option(u8),
}

/// What the parser made of a final, before the session is consulted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No core vocabulary: conversation (rule A1).
    Ignored,
    /// Refused.
    Rejected(Reject),
    /// A prompt answer.
    Prompt(PromptAnswer),
    /// One or more complete readings; the first is the greedy one.
    Readings(Vec<Reading>),
}

/// The result of [`parse`]: a verdict plus the fillers dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parse {
    /// The verdict.
    pub verdict: Verdict,
    /// Fillers dropped (each becomes a `filler_dropped` warning).
    pub fillers: Vec<String>,
}

/// Parses one final. Pure: depends only on the text and the parse settings.
#[must_use]
pub fn parse(text: &str, settings: ParseSettings) -> Parse {
    match tokenize(text) {
        Err(reject) => Parse {
            verdict: Verdict::Rejected(reject),
            fillers: Vec::new(),
        },
        Ok(tokens) => parse_tokens(&tokens, settings),
    }
}

/// Parses an already tokenized final.
#[must_use]
pub fn parse_tokens(tokens: &Tokens, settings: ParseSettings) -> Parse {
    let toks: Vec<&Token> = tokens.tokens.iter().collect();
    let verdict = verdict(&toks, settings);
    Parse {
        verdict,
        fillers: tokens.fillers.clone(),
    }
}

fn verdict(toks: &[&Token], settings: ParseSettings) -> Verdict {
    if let Some(answer) = prompt_answer(toks) {
        return Verdict::Prompt(answer);
    }
    // Rule A1, after the repair rules: a homophone read as a digit (H1–H2) is core.
    let hom_ok = homophone_spans(toks, settings);
    if !toks.iter().zip(&hom_ok).any(|(t, &hom)| hom || t.is_core()) {
        return Verdict::Ignored;
    }
    if let Some(t) = toks.iter().find(|t| t.kind == Kind::Oov) {
        return Verdict::Rejected(Reject::new(RejectReason::OutOfVocabulary, t.text.clone()));
    }
    if let Some(t) = toks.iter().find(|t| t.kind == Kind::Decimal) {
        let reason = if t.text.contains(':') {
            RejectReason::AmbiguousNumeral
        } else {
            RejectReason::ConcatenatedNumber
        };
        return Verdict::Rejected(Reject::new(reason, t.text.clone()));
    }
    match readings(toks, settings, &hom_ok) {
        Ok(r) => Verdict::Readings(r),
        Err(e) => Verdict::Rejected(e),
    }
}

fn prompt_answer(toks: &[&Token]) -> Option<PromptAnswer> {
    let words: Vec<&&Token> = toks.iter().filter(|t| t.kind != Kind::Sep).collect();
    match words.as_slice() {
        [t] if t.is(|r| r == Role::Confirm) => Some(PromptAnswer::Confirm),
        [t] if t.is(|r| r == Role::Cancel) => Some(PromptAnswer::Decline),
        [o, n] if o.is(|r| r == Role::Option) => {
            let k = n
                .role(|r| {
                    if let Role::Digit(d) = r {
                        Some(d)
                    } else {
                        None
                    }
                })
                .or(match n.kind {
                    Kind::Numeral { value, len: 1, .. } => u8::try_from(value).ok(),
                    _ => None,
                })?;
            (k >= 1).then_some(PromptAnswer::Option(k))
        }
        _ => None,
    }
}

/// Rules H1–H3: which homophone tokens may be read as digits.
fn homophone_spans(toks: &[&Token], settings: ParseSettings) -> Vec<bool> {
    let mut ok = vec![false; toks.len()];
    if !settings.homophones {
        return ok;
    }
    let is_hom = |i: usize| {
        toks.get(i)
            .is_some_and(|t| t.is(|r| matches!(r, Role::Homophone(_))))
    };
    let genuine = |i: usize| {
        toks.get(i).is_some_and(|t| {
            matches!(t.kind, Kind::Numeral { hash: false, .. })
                || t.is(|r| matches!(r, Role::Digit(_) | Role::Teen(_)))
        })
    };
    // H3: "to", "too", "for" keep their function meaning after a navigation verb and
    // before "tooth"/"number".
    let command_slot = |i: usize| {
        let word = toks.get(i).map_or("", |t| t.text.as_str());
        matches!(word, "to" | "too" | "for")
            && (toks
                .get(i + 1)
                .is_some_and(|t| t.is(|r| matches!(r, Role::ToothWord | Role::NumberWord)))
                || i.checked_sub(1)
                    .and_then(|p| toks.get(p))
                    .is_some_and(|t| t.is(|r| r == Role::NavHead)))
    };
    let capable = |i: usize| genuine(i) || (is_hom(i) && !command_slot(i));
    let mut i = 0;
    while i < toks.len() {
        if !capable(i) {
            i += 1;
            continue;
        }
        let start = i;
        while i < toks.len() && capable(i) {
            i += 1;
        }
        let len = i - start;
        let span_ok = (start..i).any(genuine) || len.is_multiple_of(3);
        for (k, slot) in ok.iter_mut().enumerate().take(i).skip(start) {
            *slot = span_ok && is_hom(k);
        }
    }
    ok
}

fn readings(
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

struct Snapshot {
    pos: usize,
    warnings: usize,
    ambiguity: usize,
}

struct Parser<'a> {
    toks: &'a [&'a Token],
    pos: usize,
    settings: ParseSettings,
    hom_ok: &'a [bool],
    prefix: &'a [bool],
    taken: Vec<bool>,
    warnings: Vec<Warning>,
    ambiguity: Vec<Warning>,
}

type Res<T> = Result<T, Reject>;

fn digit(r: Role) -> Option<u8> {
    if let Role::Digit(d) = r {
        Some(d)
    } else {
        None
    }
}

impl<'a> Parser<'a> {
    // ----- token helpers -----

    fn tok(&self, i: usize) -> Option<&'a Token> {
        self.toks.get(i).copied()
    }

    fn peek(&self) -> Option<&'a Token> {
        self.tok(self.pos)
    }

    fn at(&self, f: impl Fn(Role) -> bool) -> bool {
        self.peek().is_some_and(|t| t.is(f))
    }

    fn at_role<T>(&self, f: impl Fn(Role) -> Option<T>) -> Option<T> {
        self.peek()?.role(f)
    }

    fn next_is(&self, f: impl Fn(Role) -> bool) -> bool {
        self.tok(self.pos + 1).is_some_and(|t| t.is(f))
    }

    fn eat(&mut self, f: impl Fn(Role) -> bool) -> bool {
        let hit = self.at(f);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn skip_sep(&mut self) {
        while self.peek().is_some_and(|t| t.kind == Kind::Sep) {
            self.pos += 1;
        }
    }

    fn heard(&self, from: usize) -> String {
        self.heard_span(from, self.pos.max(from + 1))
    }

    fn heard_span(&self, from: usize, to: usize) -> String {
        let words: Vec<&str> = (from..to)
            .filter_map(|i| self.tok(i))
            .filter(|t| t.kind != Kind::Sep)
            .map(|t| t.text.as_str())
            .collect();
        words.join(" ")
    }

    fn fail<T>(&self, reason: RejectReason, from: usize) -> Res<T> {
        Err(Reject::new(reason, self.heard(from)))
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            pos: self.pos,
            warnings: self.warnings.len(),
            ambiguity: self.ambiguity.len(),
        }
    }

    fn restore(&mut self, s: &Snapshot) {
        self.pos = s.pos;
        self.warnings.truncate(s.warnings);
        self.ambiguity.truncate(s.ambiguity);
    }

    fn choose(&mut self) -> bool {
        let d = self.prefix.get(self.taken.len()).copied().unwrap_or(false);
        self.taken.push(d);
        d
    }

    fn is_value_token(&self, i: usize) -> bool {
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

    fn is_value_start(&self, i: usize) -> bool {
        self.is_value_token(i)
            || (self
                .tok(i)
                .is_some_and(|t| t.is(|r| matches!(r, Role::Plus | Role::Coronal | Role::Minus)))
                && self.is_value_token(i + 1))
    }

    fn at_tooth_marker(&self) -> bool {
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

    // ----- values -----

    fn value(&mut self) -> Res<Val> {
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

    fn value_run(&mut self) -> Res<Vec<Val>> {
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

    fn run_clause(&mut self) -> Res<Clause> {
        let vals = self.value_run()?;
        if self.at(|r| matches!(r, Role::Status(_))) {
            // "three missing": tooth 3, or a depth then the cursor tooth? Say "tooth three".
            let from = self.pos.saturating_sub(1);
            self.pos += 1;
            return self.fail(RejectReason::AmbiguousCommand, from);
        }
        Ok(Clause::Run(vals))
    }

    // ----- teeth -----

    fn tooth_ref(&mut self, allow_split: bool) -> Res<(ToothRef, bool)> {
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
    fn tooth_id_only(&mut self, start: usize) -> Res<ToothRef> {
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

    fn tooth_repairs(&mut self, mut tooth: ToothRef) -> Res<ToothRef> {
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

    fn can_start_tooth_id(&self, i: usize) -> bool {
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

    fn tooth_list(&mut self) -> Res<Vec<ToothRef>> {
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

    fn tooth_led(&mut self) -> Res<Clause> {
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

    // ----- cursor moves -----

    fn goto(&mut self, kind: GotoKind) -> Res<Clause> {
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

    fn opt_surface(&mut self) -> Option<Surface> {
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

    fn site_at(&self, i: usize) -> Option<SiteSpec> {
        self.tok(i)?.role(|r| match r {
            Role::Site(s) => Some(SiteSpec::Full(s)),
            Role::Part(p) => Some(SiteSpec::Part(p)),
            _ => None,
        })
    }

    fn opt_site(&mut self) -> Option<SiteSpec> {
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

    fn nav(&mut self) -> Res<Clause> {
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

    fn select(&mut self) -> Res<Clause> {
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

    fn switch(&mut self) -> Res<Clause> {
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

    fn spot_or_mode(&mut self) -> Res<Clause> {
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

    fn mode_clause(&mut self) -> Res<Clause> {
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

    // ----- status -----

    fn status_first(&mut self, status: ToothStatus) -> Res<Clause> {
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

    fn flag_clause(&mut self) -> Res<Clause> {
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

    fn mobility(&mut self, tooth_first: Option<ToothRef>) -> Res<Clause> {
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

    fn furcation(&mut self) -> Res<Clause> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn readings_of(s: &str) -> Vec<Reading> {
        match parse(s, ParseSettings::default()).verdict {
            Verdict::Readings(r) => r,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn reject_of(s: &str, settings: ParseSettings) -> Reject {
        match parse(s, settings).verdict {
            Verdict::Rejected(r) => r,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            parse("okay open wide for me", ParseSettings::default()).verdict,
            Verdict::Ignored
        );
        assert_eq!(
            parse("um", ParseSettings::default()).verdict,
            Verdict::Ignored
        );
        assert_eq!(
            parse("yes", ParseSettings::default()).verdict,
            Verdict::Prompt(PromptAnswer::Confirm)
        );
        assert_eq!(
            parse("no", ParseSettings::default()).verdict,
            Verdict::Prompt(PromptAnswer::Decline)
        );
        assert_eq!(
            parse("option two", ParseSettings::default()).verdict,
            Verdict::Prompt(PromptAnswer::Option(2))
        );
    }

    #[test]
    fn rejects_one_line_per_case() {
        let d = ParseSettings::default();
        let fdi = ParseSettings {
            numbering: Numbering::Fdi,
            ..d
        };
        let add = ParseSettings {
            flag_prefix_required: true,
            ..d
        };
        #[rustfmt::skip]
        let cases: &[(&str, ParseSettings, RejectReason, &str)] = &[
            ("your gums are bleeding a little", d, RejectReason::OutOfVocabulary, "your"),
            ("11", d, RejectReason::AmbiguousNumeral, "11"),
            ("3.5", d, RejectReason::ConcatenatedNumber, "3.5"),
            ("three 2:30", d, RejectReason::AmbiguousNumeral, "2:30"),
            ("jump to 3:30", d, RejectReason::AmbiguousNumeral, "3:30"),
            ("jump to 2:45", d, RejectReason::BadTooth, "2:45"),
            ("skip", d, RejectReason::AmbiguousCommand, "skip"),
            ("skip three", d, RejectReason::AmbiguousCommand, "skip"),
            ("mobility four", d, RejectReason::OutOfRange, "four"),
            ("mobility iv on tooth three", d, RejectReason::OutOfRange, "iv"),
            ("furcation five", d, RejectReason::OutOfRange, "five"),
            ("gingival margin minus two", d, RejectReason::AmbiguousSign, "minus two"),
            ("negative three", d, RejectReason::AmbiguousSign, "negative three"),
            ("tooth bleeding", d, RejectReason::Incomplete, "tooth bleeding"),
            ("tooth zero", d, RejectReason::BadTooth, "tooth zero"),
            ("tooth 33", d, RejectReason::BadTooth, "tooth 33"),
            ("tooth primary b", d, RejectReason::BadTooth, "tooth primary b"),
            ("tooth lower left e", d, RejectReason::BadTooth, "tooth lower left e"),
            ("tooth sixteen", fdi, RejectReason::FdiNeedsTwoDigits, "tooth sixteen"),
            ("tooth one", fdi, RejectReason::FdiNeedsTwoDigits, "tooth one"),
            ("tooth five five", fdi, RejectReason::BadTooth, "tooth five five"),
            ("tooth 55", fdi, RejectReason::BadTooth, "tooth 55"),
            ("three missing", d, RejectReason::AmbiguousCommand, "three missing"),
            ("missing three", d, RejectReason::AmbiguousCommand, "missing three"),
            ("bleeding", add, RejectReason::AmbiguousCommand, "bleeding"),
            ("bleeding on quadrant five", d, RejectReason::OutOfRange, "bleeding on quadrant five"),
            ("three two three scratch that", d, RejectReason::AmbiguousCommand, "scratch that"),
            ("two repeat zero times", d, RejectReason::OutOfRange, "zero"),
            ("tooth", d, RejectReason::Incomplete, "tooth"),
            ("four sorry", d, RejectReason::Incomplete, "sorry"),
        ];
        for (input, settings, reason, heard) in cases {
            assert_eq!(
                reject_of(input, *settings),
                Reject::new(*reason, *heard),
                "{input}"
            );
        }
    }

    #[test]
    fn homophone_spans_follow_h1_h3() {
        let d = ParseSettings::default();
        let toks = tokenize("tree to tree jump to four for tooth three").unwrap();
        let refs: Vec<&Token> = toks.tokens.iter().collect();
        let ok = homophone_spans(&refs, d);
        assert_eq!(
            ok,
            vec![true, true, true, false, false, false, false, false, false]
        );
        let off = ParseSettings {
            homophones: false,
            ..d
        };
        assert!(homophone_spans(&refs, off).iter().all(|b| !b));
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
