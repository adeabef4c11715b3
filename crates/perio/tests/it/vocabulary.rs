//! One lexicon: every phrase `chartroom perio vocabulary` exports is recognized by the
//! tokenizer as one lexeme and understood by the parser in a grammatical carrier sentence.

use perio::lexicon::{Role, lexicon, vocabulary};
use perio::outcome::{RejectReason, Status};
use perio::token::{Kind, tokenize};

use crate::support::{brief, session};

/// A sentence in which the phrase (`{}`) fills a slot of its first role, and the earlier
/// finals the sentence needs (a charted site, a jump, a held confirmation).
fn carrier(role: Role) -> (&'static str, &'static [&'static str]) {
    const CHARTED: &[&str] = &["three two three", "jump to tooth ten"];
    const HELD: &[&str] = &["three fourteen four"];
    match role {
        Role::Digit(_)
        | Role::Teen(_)
        | Role::Session(_)
        | Role::Switch
        | Role::Flip
        | Role::Next
        | Role::Previous => ("{}", CHARTED),
        Role::Tens(_) => ("tooth {}", CHARTED),
        Role::Letter(_) | Role::Primary => ("tooth primary {}", CHARTED),
        Role::Roman(_) => ("mobility class {}", CHARTED),
        Role::ToothWord => ("{} three", CHARTED),
        Role::NumberWord => ("tooth {} three", CHARTED),
        Role::Arch(_) => ("{} right six", CHARTED),
        Role::Side(_) => ("upper {} six", CHARTED),
        Role::PalmerQuadrant(_) => ("{} six", CHARTED),
        Role::And => ("teeth three {} four missing", CHARTED),
        Role::Through => ("teeth three {} five missing", CHARTED),
        Role::To => ("jump {} tooth five", CHARTED),
        Role::Surface(_) => ("tooth three {} two two two", CHARTED),
        Role::Site(_)
        | Role::Part(_)
        | Role::All
        | Role::AllThree
        | Role::AllSix
        | Role::Interproximal => ("bleeding {}", CHARTED),
        Role::Entrance(_) => ("furcation two {} on tooth three", CHARTED),
        Role::Flag(_) => ("{} all", CHARTED),
        Role::FlagAdd | Role::FlagRemove => ("{} bleeding all", CHARTED),
        Role::On => ("bleeding all {} tooth three", CHARTED),
        Role::Quadrant | Role::Sextant => ("bleeding on {} one", CHARTED),
        Role::GradeKw => ("mobility {} two", CHARTED),
        Role::Mobility => ("{} two", CHARTED),
        Role::Furcation => ("{} two on tooth three", CHARTED),
        Role::FullFurcation => ("{} on tooth three buccal", CHARTED),
        Role::Plus | Role::Coronal | Role::Minus => ("gm {} two", CHARTED),
        Role::With => ("recession {} two on tooth three facial", CHARTED),
        Role::Spot(_) => ("{} two on tooth three facial", CHARTED),
        Role::ModeName(_) => ("{} two", CHARTED),
        Role::Start => ("{} gm", CHARTED),
        Role::NavHead => ("{} to tooth five", CHARTED),
        Role::Select => ("{} tooth five", CHARTED),
        Role::SiteWord => ("next {}", CHARTED),
        Role::ResumePath | Role::Undo(_) => ("{}", CHARTED),
        Role::Status(_) => ("tooth five {}", CHARTED),
        Role::Skip => ("{} this tooth", CHARTED),
        Role::SkipTooth => ("{} five", CHARTED),
        Role::This => ("skip {} tooth", CHARTED),
        Role::Repair => ("three {} four", CHARTED),
        Role::Repeat => ("two {} three times", CHARTED),
        Role::Times => ("two repeat three {}", CHARTED),
        Role::Confirm | Role::Cancel => ("{}", HELD),
        Role::Option => ("{} one", HELD),
        Role::Homophone(_) | Role::Filler => ("", &[]),
        other => panic!("no carrier for {other:?}"),
    }
}

#[test]
fn every_exported_phrase_is_one_lexeme() {
    let lex = lexicon();
    let vocab = vocabulary();
    assert!(vocab.len() > 200, "{} phrases", vocab.len());
    for phrase in vocab {
        let tokens = tokenize(phrase).unwrap().tokens;
        assert_eq!(tokens.len(), 1, "{phrase:?} → {tokens:?}");
        assert_eq!(
            tokens[0].kind,
            Kind::Word(lex.index_of(phrase).unwrap()),
            "{phrase:?}"
        );
    }
}

#[test]
fn every_exported_phrase_parses_in_its_slot() {
    let mut failures = Vec::new();
    for phrase in vocabulary() {
        let entry = lexicon().get(phrase).unwrap();
        let role = *entry
            .roles
            .iter()
            .find(|r| !matches!(r, Role::Homophone(_) | Role::Filler))
            .unwrap();
        let (template, history) = carrier(role);
        let text = template.replace("{}", phrase);
        let mut s = session("{}", history);
        let o = s.apply_final(&text);
        let understood = match (&o.status, &o.reject) {
            (Status::Ignored, _) => false,
            (Status::Rejected, Some(r)) => !matches!(
                r.reason,
                RejectReason::OutOfVocabulary | RejectReason::Incomplete
            ),
            _ => true,
        };
        if !understood {
            failures.push(format!("{phrase:?} ({role:?}) in {text:?}: {}", brief(&o)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hints_are_exactly_the_non_homophone_non_filler_entries() {
    let all: Vec<&str> = lexicon().entries().map(|e| e.phrase.as_str()).collect();
    let hidden: Vec<&str> = all
        .iter()
        .copied()
        .filter(|p| !vocabulary().contains(p))
        .collect();
    assert_eq!(
        hidden,
        [
            "for", "fore", "won", "ate", "tree", "sex", "fife", "niner", "um", "uh", "er", "hmm"
        ]
    );
}
