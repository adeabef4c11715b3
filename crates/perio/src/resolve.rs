//! The resolver: readings → events against a session (SPEC §3 rules P, N5, G, F, T, S, C).
//!
//! Resolution never touches the session: it simulates the final on a small overlay
//! (statuses and values written so far) and returns the events, the cursor after, and the
//! effect to commit. A rule that fails anywhere rejects the whole reading.
//!
//! This module turns a parse into a [`Resolution`]: prompt answers, paused sessions,
//! readings that agree or need a choice, and the outcome with its labels, echo and derived
//! CAL. One reading is resolved by the work state of `work`, which dispatches its clauses
//! to `values` (values and spot values) and `findings` (statuses, flags, furcation);
//! `overlay` is the chart as the final will leave it.

mod findings;
mod overlay;
mod values;
mod work;

use std::collections::BTreeMap;

use crate::outcome::{
    Alternative, Derived, Event, Outcome, Reject, RejectReason, SessionAction, Status, UndoScope,
    Warning,
};
use crate::parse::{Clause, Parse, PromptAnswer, Reading, Verdict};
use crate::session::{Candidate, Effect, Resolution, Session};
use crate::tooth::Tooth;

use overlay::derived;
use work::Work;

type Res<T> = Result<T, Reject>;

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
