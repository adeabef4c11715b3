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
//!
//! This module is the entry point: [`parse`] and [`parse_tokens`], the verdicts that need
//! no grammar (prompt answers, conversation, out-of-vocabulary words, decimals) and the
//! homophone pre-pass (rules H1–H3). The clause types ([`Clause`] and its parts) and the
//! grammar itself live in private submodules, one per part of the grammar: the
//! backtracking driver and clause dispatch (`parser`), values (`values`), teeth
//! (`teeth`), cursor moves, modes and spot values (`cursor`), and statuses, flags,
//! mobility and furcation (`findings`).

mod clause;
mod cursor;
mod findings;
mod parser;
mod teeth;
mod values;

use crate::lexicon::Role;
use crate::outcome::{Reject, RejectReason, Warning};
use crate::token::{Kind, Token, Tokens, tokenize};
use crate::tooth::Numbering;

pub use clause::{
    Clause, EntranceSpec, GotoKind, Grade, Place, Region, Scope, Segment, SiteSpec, ToothRef, Val,
    ValKind,
};

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
    match parser::readings(toks, settings, &hom_ok) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
