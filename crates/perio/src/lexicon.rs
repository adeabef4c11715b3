//! The one lexicon (SPEC design principle 3).
//!
//! The tables below are what the tokenizer and the parser read, and [`vocabulary`] exports
//! the very same phrases as the speech recognizer's phrase list, so hints and parser never
//! drift. A phrase may have several roles ("no" repairs, removes a flag or declines a
//! prompt); the parser picks the role from the grammar context.
//!
//! Homophones ("for", "tree", …) and fillers ("um") are read by the parser but are not
//! exported as hints: biasing a recognizer towards "tree" would do harm.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::chart::{Entrance, Flag, ToothStatus};
use crate::outcome::{Mode, SessionAction, UndoScope};
use crate::site::{Part, Site, Surface};
use crate::tooth::{Arch, Side};

/// What a phrase can mean to the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// "zero", "oh", "one" … "nine".
    Digit(u8),
    /// "ten" … "nineteen" (rule N1).
    Teen(u8),
    /// "twenty", "thirty" (tooth numbers only).
    Tens(u8),
    /// "to", "for", "tree" …: a digit only inside a numeric run (rules H1–H4).
    Homophone(u8),
    /// "um", "uh", "er", "hmm": dropped with a warning.
    Filler,
    /// A single letter (primary teeth, Palmer primary positions).
    Letter(char),
    /// Roman numeral grade "i" … "iv".
    Roman(u8),
    /// "tooth", "teeth".
    ToothWord,
    /// "number".
    NumberWord,
    /// "primary", "baby".
    Primary,
    /// "upper", "maxillary", "lower", "mandibular".
    Arch(Arch),
    /// "right", "left".
    Side(Side),
    /// "ur", "ul", "ll", "lr" (Palmer quadrant 1–4).
    PalmerQuadrant(u8),
    /// "and" (tooth lists).
    And,
    /// "through", "thru" (tooth ranges).
    Through,
    /// "to", "too": range word or navigation preposition (rule H3).
    To,
    /// A surface word.
    Surface(Surface),
    /// A full site.
    Site(Site),
    /// A half site, resolved against the anchor surface.
    Part(Part),
    /// A furcation entrance abbreviation ("mp", "dp").
    Entrance(Entrance),
    /// A finding.
    Flag(Flag),
    /// "add", "mark" (the Bola "add" prefix).
    FlagAdd,
    /// "no", "remove", "clear".
    FlagRemove,
    /// "all".
    All,
    /// "all three".
    AllThree,
    /// "all six", "whole tooth", "all sites".
    AllSix,
    /// "interproximal", "interproximals".
    Interproximal,
    /// "on".
    On,
    /// "quadrant".
    Quadrant,
    /// "sextant".
    Sextant,
    /// "grade", "class", "degree", "type".
    GradeKw,
    /// "mobility".
    Mobility,
    /// "furcation", "furca".
    Furcation,
    /// "full furcation", "through and through" (grade 3).
    FullFurcation,
    /// "plus".
    Plus,
    /// "coronal", "hyperplasia", "overgrowth", "enlargement" (rule G2).
    Coronal,
    /// "minus", "negative" (rule G3: refused).
    Minus,
    /// "with" (Bola spot recession).
    With,
    /// Head of a spot command.
    Spot(Mode),
    /// A mode name.
    ModeName(Mode),
    /// "start".
    Start,
    /// "switch".
    Switch,
    /// "flip".
    Flip,
    /// "jump", "go", "go back", "jump back".
    NavHead,
    /// "select".
    Select,
    /// "next".
    Next,
    /// "previous".
    Previous,
    /// "site" (as in "next site").
    SiteWord,
    /// "resume path".
    ResumePath,
    /// "missing", "implant", "skipped".
    Status(ToothStatus),
    /// Bare "skip": refused as ambiguous (rule S1).
    Skip,
    /// "skip tooth".
    SkipTooth,
    /// "this", "current".
    This,
    /// "no", "sorry", "i mean", "make that", "correction" (rule C1).
    Repair,
    /// Undo words (rule C2).
    Undo(UndoScope),
    /// "repeat".
    Repeat,
    /// "times", "time".
    Times,
    /// Session commands.
    Session(SessionAction),
    /// "confirm", "yes", "correct" (rule C3).
    Confirm,
    /// "cancel" (and "no" at a prompt).
    Cancel,
    /// "option" (choosing an alternative at a prompt).
    Option,
}

impl Role {
    /// Weak roles do not make a final "core vocabulary" on their own (rule A1): a final
    /// made only of weak words and unknown words is ignored as conversation.
    #[must_use]
    pub const fn is_weak(self) -> bool {
        matches!(
            self,
            Self::Homophone(_)
                | Self::Filler
                | Self::Letter(_)
                | Self::Roman(_)
                | Self::NumberWord
                | Self::Arch(_)
                | Self::Side(_)
                | Self::And
                | Self::Through
                | Self::To
                | Self::FlagAdd
                | Self::FlagRemove
                | Self::All
                | Self::On
                | Self::GradeKw
                | Self::With
                | Self::Start
                | Self::NavHead
                | Self::This
                | Self::Repair
                | Self::Times
                | Self::Confirm
                | Self::Cancel
                | Self::Option
        )
    }
}

/// One phrase and its roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Lower-case phrase, words separated by one space.
    pub phrase: String,
    /// Everything the phrase may mean.
    pub roles: Vec<Role>,
}

impl Entry {
    /// Whether the entry is core vocabulary (rule A1).
    #[must_use]
    pub fn is_core(&self) -> bool {
        self.roles.iter().any(|r| !r.is_weak())
    }

    /// Whether the entry is exported as a recognizer hint.
    #[must_use]
    pub fn is_hint(&self) -> bool {
        self.roles
            .iter()
            .any(|r| !matches!(r, Role::Homophone(_) | Role::Filler))
    }

    /// The first role matching `f`.
    pub fn find<T>(&self, f: impl Fn(Role) -> Option<T>) -> Option<T> {
        self.roles.iter().find_map(|&r| f(r))
    }

    /// Whether the entry has a role matching `f`.
    pub fn has(&self, f: impl Fn(Role) -> bool) -> bool {
        self.roles.iter().any(|&r| f(r))
    }
}

// ---------------------------------------------------------------------------------------
// The tables (SPEC §2 EBNF terminals).

const DIGITS: &[(&str, u8)] = &[
    ("zero", 0),
    ("oh", 0),
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
];

const TEENS: &[(&str, u8)] = &[
    ("ten", 10),
    ("eleven", 11),
    ("twelve", 12),
    ("thirteen", 13),
    ("fourteen", 14),
    ("fifteen", 15),
    ("sixteen", 16),
    ("seventeen", 17),
    ("eighteen", 18),
    ("nineteen", 19),
];

/// The homophone table of the `VoicePerio` prior art (rules H1–H4).
const HOMOPHONES: &[(&str, u8)] = &[
    ("to", 2),
    ("too", 2),
    ("for", 4),
    ("fore", 4),
    ("won", 1),
    ("ate", 8),
    ("tree", 3),
    ("sex", 6),
    ("fife", 5),
    ("niner", 9),
];

const FACIAL_WORDS: &[&str] = &["facial", "buccal", "labial", "buckle"];
const LINGUAL_WORDS: &[&str] = &["lingual", "palatal", "palatial", "lingle"];

const SINGLE_SITES: &[(&str, Site)] = &[
    ("mesiobuccal", Site::MB),
    ("mesiofacial", Site::MB),
    ("distobuccal", Site::DB),
    ("distofacial", Site::DB),
    ("mesiolingual", Site::ML),
    ("distolingual", Site::DL),
    ("mesiopalatal", Site::ML),
    ("distopalatal", Site::DL),
    ("mb", Site::MB),
    ("db", Site::DB),
    ("ml", Site::ML),
    ("dl", Site::DL),
    ("m b", Site::MB),
    ("d b", Site::DB),
    ("m l", Site::ML),
    ("d l", Site::DL),
];

/// Prefixes that combine with a surface word into a full site ("mesial buccal" = MB).
/// "mid"/"middle" + surface is our addition: it names the mid site explicitly.
const SITE_PREFIXES: &[(&str, Part)] = &[
    ("mesio", Part::Mesial),
    ("mesial", Part::Mesial),
    ("disto", Part::Distal),
    ("distal", Part::Distal),
    ("mid", Part::Mid),
    ("middle", Part::Mid),
];

const PARTS: &[(&str, Part)] = &[
    ("mesial", Part::Mesial),
    ("missile", Part::Mesial),
    ("distal", Part::Distal),
    ("mid", Part::Mid),
    ("middle", Part::Mid),
    ("direct", Part::Mid),
    ("central", Part::Mid),
];

const FLAGS: &[(&str, Flag)] = &[
    ("bleeding", Flag::Bleeding),
    ("bleed", Flag::Bleeding),
    ("bleeder", Flag::Bleeding),
    ("bop", Flag::Bleeding),
    ("b o p", Flag::Bleeding),
    ("suppuration", Flag::Suppuration),
    ("pus", Flag::Suppuration),
    ("exudate", Flag::Suppuration),
    ("plaque", Flag::Plaque),
    ("calculus", Flag::Calculus),
    ("tartar", Flag::Calculus),
];

const MODE_NAMES: &[(&str, Mode)] = &[
    ("pocket depth", Mode::Pd),
    ("pocket depths", Mode::Pd),
    ("probing", Mode::Pd),
    ("probing depth", Mode::Pd),
    ("probing depths", Mode::Pd),
    ("pd", Mode::Pd),
    ("gingival margin", Mode::Gm),
    ("gingival margins", Mode::Gm),
    ("gm", Mode::Gm),
    ("recession", Mode::Gm),
    ("mgj", Mode::Mgj),
    ("mucogingival junction", Mode::Mgj),
    ("keratinized gingiva", Mode::Mgj),
];

const SPOT_HEADS: &[(&str, Mode)] = &[
    ("recession", Mode::Gm),
    ("gingival margin", Mode::Gm),
    ("gm", Mode::Gm),
    ("mgj", Mode::Mgj),
    ("mucogingival junction", Mode::Mgj),
    ("keratinized gingiva", Mode::Mgj),
    ("keratinized tissue", Mode::Mgj),
];

const SESSION: &[(&str, SessionAction)] = &[
    ("start listening", SessionAction::StartListening),
    ("stop listening", SessionAction::StopListening),
    ("pause", SessionAction::Pause),
    ("resume", SessionAction::Resume),
    ("start charting", SessionAction::StartCharting),
    ("done charting", SessionAction::DoneCharting),
    ("finish charting", SessionAction::DoneCharting),
];

const UNDO: &[(&str, UndoScope)] = &[
    ("undo", UndoScope::LastFinal),
    ("undo that", UndoScope::LastFinal),
    ("undo last", UndoScope::LastFinal),
    ("scratch that", UndoScope::LastFinal),
    ("delete that", UndoScope::LastFinal),
    ("oops", UndoScope::LastFinal),
    ("backspace", UndoScope::LastValue),
    ("delete last", UndoScope::LastValue),
];

const STATUS: &[(&str, ToothStatus)] = &[
    ("missing", ToothStatus::Missing),
    ("implant", ToothStatus::Implant),
    ("skipped", ToothStatus::Skipped),
];

/// Keywords with a single fixed role.
const KEYWORDS: &[(&str, Role)] = &[
    ("tooth", Role::ToothWord),
    ("teeth", Role::ToothWord),
    ("number", Role::NumberWord),
    ("primary", Role::Primary),
    ("baby", Role::Primary),
    ("upper", Role::Arch(Arch::Upper)),
    ("maxillary", Role::Arch(Arch::Upper)),
    ("lower", Role::Arch(Arch::Lower)),
    ("mandibular", Role::Arch(Arch::Lower)),
    ("right", Role::Side(Side::Right)),
    ("left", Role::Side(Side::Left)),
    ("ur", Role::PalmerQuadrant(1)),
    ("ul", Role::PalmerQuadrant(2)),
    ("ll", Role::PalmerQuadrant(3)),
    ("lr", Role::PalmerQuadrant(4)),
    ("and", Role::And),
    ("through", Role::Through),
    ("thru", Role::Through),
    ("twenty", Role::Tens(20)),
    ("thirty", Role::Tens(30)),
    ("mp", Role::Entrance(Entrance::M)),
    ("dp", Role::Entrance(Entrance::D)),
    ("add", Role::FlagAdd),
    ("mark", Role::FlagAdd),
    ("remove", Role::FlagRemove),
    ("clear", Role::FlagRemove),
    ("all", Role::All),
    ("all three", Role::AllThree),
    ("all six", Role::AllSix),
    ("whole tooth", Role::AllSix),
    ("all sites", Role::AllSix),
    ("interproximal", Role::Interproximal),
    ("interproximals", Role::Interproximal),
    ("on", Role::On),
    ("quadrant", Role::Quadrant),
    ("sextant", Role::Sextant),
    ("grade", Role::GradeKw),
    ("class", Role::GradeKw),
    ("degree", Role::GradeKw),
    ("type", Role::GradeKw),
    ("mobility", Role::Mobility),
    ("furcation", Role::Furcation),
    ("furca", Role::Furcation),
    ("full furcation", Role::FullFurcation),
    ("through and through", Role::FullFurcation),
    ("plus", Role::Plus),
    ("coronal", Role::Coronal),
    ("hyperplasia", Role::Coronal),
    ("overgrowth", Role::Coronal),
    ("enlargement", Role::Coronal),
    ("minus", Role::Minus),
    ("negative", Role::Minus),
    ("with", Role::With),
    ("start", Role::Start),
    ("switch", Role::Switch),
    ("flip", Role::Flip),
    ("jump", Role::NavHead),
    ("go", Role::NavHead),
    ("go back", Role::NavHead),
    ("jump back", Role::NavHead),
    ("select", Role::Select),
    ("next", Role::Next),
    ("previous", Role::Previous),
    ("site", Role::SiteWord),
    ("resume path", Role::ResumePath),
    ("skip", Role::Skip),
    ("skip tooth", Role::SkipTooth),
    ("this", Role::This),
    ("current", Role::This),
    ("sorry", Role::Repair),
    ("i mean", Role::Repair),
    ("make that", Role::Repair),
    ("correction", Role::Repair),
    ("repeat", Role::Repeat),
    ("times", Role::Times),
    ("time", Role::Times),
    ("confirm", Role::Confirm),
    ("yes", Role::Confirm),
    ("correct", Role::Confirm),
    ("cancel", Role::Cancel),
    ("option", Role::Option),
    ("um", Role::Filler),
    ("uh", Role::Filler),
    ("er", Role::Filler),
    ("hmm", Role::Filler),
    ("ii", Role::Roman(2)),
    ("iii", Role::Roman(3)),
    ("iv", Role::Roman(4)),
];

/// "no" plays three parts; "i" is a letter and a roman numeral.
const MULTI: &[(&str, &[Role])] = &[
    ("no", &[Role::Repair, Role::FlagRemove, Role::Cancel]),
    ("i", &[Role::Letter('i'), Role::Roman(1)]),
];

/// The built lexicon: entries in table order plus an index by phrase.
#[derive(Debug)]
pub struct Lexicon {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    max_words: usize,
}

impl Lexicon {
    fn build() -> Self {
        let mut lex = Self {
            entries: Vec::new(),
            index: HashMap::new(),
            max_words: 1,
        };
        for &(p, v) in DIGITS {
            lex.add(p, Role::Digit(v));
        }
        for &(p, v) in TEENS {
            lex.add(p, Role::Teen(v));
        }
        for &(p, v) in HOMOPHONES {
            lex.add(p, Role::Homophone(v));
        }
        lex.add("to", Role::To);
        lex.add("too", Role::To);
        for &(p, s) in STATUS {
            lex.add(p, Role::Status(s));
        }
        for w in FACIAL_WORDS {
            lex.add(w, Role::Surface(Surface::F));
        }
        for w in LINGUAL_WORDS {
            lex.add(w, Role::Surface(Surface::L));
        }
        for &(p, s) in SINGLE_SITES {
            lex.add(p, Role::Site(s));
        }
        for &(prefix, part) in SITE_PREFIXES {
            for (words, surface) in [(FACIAL_WORDS, Surface::F), (LINGUAL_WORDS, Surface::L)] {
                for w in words {
                    lex.add(
                        &format!("{prefix} {w}"),
                        Role::Site(Site::new(surface, part)),
                    );
                }
            }
        }
        for &(p, part) in PARTS {
            lex.add(p, Role::Part(part));
        }
        for &(p, f) in FLAGS {
            lex.add(p, Role::Flag(f));
        }
        for &(p, m) in MODE_NAMES {
            lex.add(p, Role::ModeName(m));
        }
        for &(p, m) in SPOT_HEADS {
            lex.add(p, Role::Spot(m));
        }
        for &(p, a) in SESSION {
            lex.add(p, Role::Session(a));
        }
        for &(p, u) in UNDO {
            lex.add(p, Role::Undo(u));
        }
        for &(p, r) in KEYWORDS {
            lex.add(p, r);
        }
        for &(p, roles) in MULTI {
            for &r in roles {
                lex.add(p, r);
            }
        }
        for c in 'a'..='t' {
            if c != 'i' {
                lex.add(&c.to_string(), Role::Letter(c));
            }
        }
        lex
    }

    fn add(&mut self, phrase: &str, role: Role) {
        self.max_words = self.max_words.max(phrase.split(' ').count());
        if let Some(&i) = self.index.get(phrase) {
            if let Some(e) = self.entries.get_mut(i)
                && !e.roles.contains(&role)
            {
                e.roles.push(role);
            }
            return;
        }
        self.index.insert(phrase.to_owned(), self.entries.len());
        self.entries.push(Entry {
            phrase: phrase.to_owned(),
            roles: vec![role],
        });
    }

    /// The entry for an exact phrase (lower case, single spaces).
    #[must_use]
    pub fn get(&self, phrase: &str) -> Option<&Entry> {
        self.entries.get(*self.index.get(phrase)?)
    }

    /// The entry at an index returned by [`Lexicon::index_of`].
    #[must_use]
    pub fn entry(&self, i: usize) -> Option<&Entry> {
        self.entries.get(i)
    }

    /// The index of a phrase.
    #[must_use]
    pub fn index_of(&self, phrase: &str) -> Option<usize> {
        self.index.get(phrase).copied()
    }

    /// The longest phrase length in words (multiword lexemes are matched longest-first).
    #[must_use]
    pub const fn max_words(&self) -> usize {
        self.max_words
    }

    /// Every entry, in table order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }
}

/// The lexicon, built once from the tables.
pub fn lexicon() -> &'static Lexicon {
    static LEXICON: OnceLock<Lexicon> = OnceLock::new();
    LEXICON.get_or_init(Lexicon::build)
}

/// The recognizer phrase list: every lexicon phrase except homophones and fillers, in
/// table order. `chartroom perio vocabulary` prints it one phrase per line.
#[must_use]
pub fn vocabulary() -> Vec<&'static str> {
    lexicon()
        .entries()
        .filter(|e| e.is_hint())
        .map(|e| e.phrase.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_role_words() {
        let lex = lexicon();
        assert_eq!(
            lex.get("no").unwrap().roles,
            vec![Role::Repair, Role::FlagRemove, Role::Cancel]
        );
        assert_eq!(
            lex.get("to").unwrap().roles,
            vec![Role::Homophone(2), Role::To]
        );
        assert_eq!(
            lex.get("recession").unwrap().roles,
            vec![Role::ModeName(Mode::Gm), Role::Spot(Mode::Gm)]
        );
        assert_eq!(
            lex.get("mesial buccal").unwrap().roles,
            vec![Role::Site(Site::MB)]
        );
        assert_eq!(
            lex.get("distal palatal").unwrap().roles,
            vec![Role::Site(Site::DL)]
        );
        assert_eq!(lex.max_words(), 3);
    }

    #[test]
    fn hints_exclude_homophones_and_fillers() {
        let vocab = vocabulary();
        for absent in ["for", "tree", "um", "sex", "niner"] {
            assert!(!vocab.contains(&absent), "{absent}");
        }
        for present in [
            "to",
            "three",
            "mesial buccal",
            "scratch that",
            "b o p",
            "through and through",
        ] {
            assert!(vocab.contains(&present), "{present}");
        }
    }

    #[test]
    fn core_vocabulary() {
        let lex = lexicon();
        for weak in ["for", "to", "and", "on", "no", "yes", "um", "a", "go"] {
            assert!(!lex.get(weak).unwrap().is_core(), "{weak}");
        }
        for core in [
            "bleeding", "three", "tooth", "missing", "pause", "next", "skip",
        ] {
            assert!(lex.get(core).unwrap().is_core(), "{core}");
        }
    }
}
