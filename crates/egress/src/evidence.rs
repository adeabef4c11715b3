//! The evidence check of a drafted sentence (req SCR-05): does the transcript text it cites
//! support what it says? Pure and deterministic: no model, no network.
//!
//! A sentence is flagged ([`Flag`]) when
//! - it cites no segment ([`Flag::NoEvidence`]);
//! - it cites a segment id the draft was not given ([`Flag::UnknownSegment`]);
//! - it contains a number absent from the text of its cited segments ([`Flag::Number`]);
//! - it names a tooth (`tooth 14`, `teeth 3 and 30`, `#19`) whose number is absent from the
//!   cited text ([`Flag::Tooth`]);
//! - it names a drug ([`DRUGS`]) the cited text does not name ([`Flag::Drug`]);
//! - it contains a negation (`no`, `not`, `denies`, `without` …) while the cited text has none
//!   ([`Flag::Negation`]).
//!
//! Numbers are compared as values: `five`, `5` and `5.0` are the same number; `twenty-three`
//! and `23` too. The check is deliberately strict: a flag asks the clinician to look, it does
//! not say the sentence is wrong. Every flagged sentence must be accepted one by one before
//! the note can be signed (`store::drafts`).
//!
//! # Example
//! ```
//! use egress::evidence::{Flag, check};
//! let seg = domain::SegmentId::new();
//! let segments = [(seg, "Probing depth five millimeters on tooth 14.".to_owned())];
//! assert_eq!(check("Probing depth 5 mm on tooth 14.", &[seg], &segments), vec![]);
//! assert_eq!(check("Probing depth 6 mm on tooth 14.", &[seg], &segments), vec![Flag::Number]);
//! assert_eq!(check("No bleeding.", &[], &segments), vec![Flag::NoEvidence, Flag::Negation]);
//! ```

use std::collections::BTreeSet;

use domain::SegmentId;

/// Why a sentence is flagged. The stable names are those `draft_sentence.flags` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flag {
    /// The sentence cites no segment.
    NoEvidence,
    /// A number absent from the cited text.
    Number,
    /// A tooth number absent from the cited text.
    Tooth,
    /// A drug the cited text does not name.
    Drug,
    /// A negation the cited text does not contain.
    Negation,
    /// A cited id that is not one of the draft's segments.
    UnknownSegment,
}

impl Flag {
    /// Every flag, in the order [`check`] reports them.
    pub const ALL: &'static [Flag] = &[
        Flag::NoEvidence,
        Flag::Number,
        Flag::Tooth,
        Flag::Drug,
        Flag::Negation,
        Flag::UnknownSegment,
    ];

    /// The stable name (`draft_sentence.flags`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Flag::NoEvidence => "no_evidence",
            Flag::Number => "number",
            Flag::Tooth => "tooth",
            Flag::Drug => "drug",
            Flag::Negation => "negation",
            Flag::UnknownSegment => "unknown_segment",
        }
    }

    /// The flag of a stable name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Flag> {
        Flag::ALL.iter().copied().find(|f| f.as_str() == name)
    }

    /// What the clinician is told about it.
    #[must_use]
    pub const fn explain(self) -> &'static str {
        match self {
            Flag::NoEvidence => "cites no part of the transcript",
            Flag::Number => "has a number the cited transcript does not say",
            Flag::Tooth => "names a tooth the cited transcript does not name",
            Flag::Drug => "names a drug the cited transcript does not name",
            Flag::Negation => "negates something the cited transcript does not negate",
            Flag::UnknownSegment => "cites a transcript segment that does not exist",
        }
    }
}

/// Drug names the check looks for (lower case, generic names). A short list of what a dental,
/// hygiene or massage visit note is likely to name, taken from the WHO Model List of Essential
/// Medicines (23rd list, 2023: §1.2 local anaesthetics, §2.1 non-opioid analgesics and NSAIDs,
/// §2.2 opioid analgesics, §6.2 antibacterials, §12 cardiovascular, §10.2 antithrombotics,
/// §13 dermatological, §18.5 antidiabetics, §24 anxiolytics) and the ADA's "Oral Analgesics
/// for Acute Dental Pain" and antibiotic prophylaxis guidance (2019–2023). Not a formulary:
/// an unlisted drug is not flagged by this rule.
pub const DRUGS: &[&str] = &[
    "acetaminophen",
    "amoxicillin",
    "articaine",
    "aspirin",
    "azithromycin",
    "benzocaine",
    "bupivacaine",
    "cephalexin",
    "chlorhexidine",
    "clindamycin",
    "codeine",
    "diazepam",
    "doxycycline",
    "epinephrine",
    "fluoride",
    "heparin",
    "hydrocodone",
    "ibuprofen",
    "lidocaine",
    "lisinopril",
    "metformin",
    "metronidazole",
    "mepivacaine",
    "midazolam",
    "naproxen",
    "nitrous",
    "oxycodone",
    "paracetamol",
    "penicillin",
    "prilocaine",
    "tramadol",
    "triazolam",
    "warfarin",
];

/// Negation cues (lower case words; `n't` counts as `not`).
const NEGATIONS: &[&str] = &[
    "no", "not", "none", "never", "without", "denies", "denied", "deny", "negative", "absent",
    "nor", "neither", "free",
];

/// Words before a tooth number (`tooth 14`, `teeth 3 and 30`, `number 19`).
const TOOTH_WORDS: &[&str] = &["tooth", "teeth"];

/// Number words and their values (the units; tens follow).
const UNITS: &[(&str, u32)] = &[
    ("zero", 0),
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
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
const TENS: &[(&str, u32)] = &[
    ("twenty", 20),
    ("thirty", 30),
    ("forty", 40),
    ("fifty", 50),
    ("sixty", 60),
    ("seventy", 70),
    ("eighty", 80),
    ("ninety", 90),
];

/// A token of a text.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    /// A number, as its canonical text (`5`, `2.5`).
    Number(String),
    /// `#`.
    Hash,
}

fn word_value(w: &str) -> Option<u32> {
    UNITS
        .iter()
        .chain(TENS.iter())
        .find(|(n, _)| *n == w)
        .map(|(_, v)| *v)
}

/// `5`, `05`, `5.0` → `5`; `2.50` → `2.5`.
fn canonical_number(raw: &str) -> String {
    let (int, frac) = raw.split_once('.').unwrap_or((raw, ""));
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    }
}

/// Splits `text` into words, numbers (digits, with one decimal point) and `#`; number words
/// become numbers (`twenty three` → `23`).
fn tokens(text: &str) -> Vec<Token> {
    let lower = text.to_lowercase().replace("n't", " not");
    let mut raw: Vec<Token> = Vec::new();
    let mut cur = String::new();
    let mut chars = lower.chars().peekable();
    let flush = |cur: &mut String, raw: &mut Vec<Token>| {
        if cur.is_empty() {
            return;
        }
        let t = std::mem::take(cur);
        if t.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            raw.push(Token::Number(canonical_number(t.trim_end_matches('.'))));
        } else {
            raw.push(Token::Word(t));
        }
    };
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            // A letter after digits (`5mm`) starts a new token.
            if c.is_alphabetic() && cur.chars().next().is_some_and(|f| f.is_ascii_digit()) {
                flush(&mut cur, &mut raw);
            }
            if c.is_ascii_digit() && cur.chars().next().is_some_and(char::is_alphabetic) {
                flush(&mut cur, &mut raw);
            }
            cur.push(c);
        } else if c == '.'
            && cur.chars().all(|d| d.is_ascii_digit() || d == '.')
            && !cur.is_empty()
            && !cur.contains('.')
            && chars.peek().is_some_and(char::is_ascii_digit)
        {
            cur.push(c);
        } else {
            flush(&mut cur, &mut raw);
            if c == '#' {
                raw.push(Token::Hash);
            }
        }
    }
    flush(&mut cur, &mut raw);
    // Number words → numbers, `twenty three` → 23.
    let mut out: Vec<Token> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(t) = raw.get(i) {
        match t {
            Token::Word(w) => {
                if let Some(v) = word_value(w) {
                    let tens = TENS.iter().any(|(n, _)| n == w);
                    let unit = match raw.get(i + 1) {
                        Some(Token::Word(n)) if tens => {
                            word_value(n).filter(|u| (1..=9).contains(u))
                        }
                        _ => None,
                    };
                    if let Some(u) = unit {
                        out.push(Token::Number((v + u).to_string()));
                        i += 2;
                        continue;
                    }
                    out.push(Token::Number(v.to_string()));
                } else {
                    out.push(t.clone());
                }
            }
            other => out.push(other.clone()),
        }
        i += 1;
    }
    out
}

/// What a text says, as the check compares it.
#[derive(Debug, Default)]
struct Facts {
    numbers: BTreeSet<String>,
    teeth: BTreeSet<String>,
    drugs: BTreeSet<&'static str>,
    negated: bool,
}

fn facts(text: &str) -> Facts {
    let toks = tokens(text);
    let mut f = Facts::default();
    // Whether the numbers that follow name teeth (`teeth 3, 14 and 30`).
    let mut tooth_list = false;
    for t in &toks {
        match t {
            Token::Number(n) => {
                if tooth_list {
                    f.teeth.insert(n.clone());
                } else {
                    f.numbers.insert(n.clone());
                }
            }
            Token::Hash => tooth_list = true,
            Token::Word(w) => {
                if TOOTH_WORDS.contains(&w.as_str()) {
                    tooth_list = true;
                    continue;
                }
                if !matches!(
                    w.as_str(),
                    "and" | "or" | "number" | "numbers" | "to" | "through"
                ) {
                    tooth_list = false;
                }
                if NEGATIONS.contains(&w.as_str()) {
                    f.negated = true;
                }
                if let Some(d) = DRUGS.iter().find(|d| **d == w.as_str()) {
                    f.drugs.insert(d);
                }
            }
        }
    }
    f
}

/// The flags of `sentence`, which cites `evidence`, among the draft's `segments` (id, text),
/// in the order of [`Flag::ALL`], each at most once. Empty: the sentence is supported.
#[must_use]
pub fn check(
    sentence: &str,
    evidence: &[SegmentId],
    segments: &[(SegmentId, String)],
) -> Vec<Flag> {
    let mut flags = BTreeSet::new();
    if evidence.is_empty() {
        flags.insert(Flag::NoEvidence);
    }
    let mut cited = String::new();
    for id in evidence {
        match segments.iter().find(|(s, _)| s == id) {
            Some((_, text)) => {
                cited.push_str(text);
                cited.push('\n');
            }
            None => {
                flags.insert(Flag::UnknownSegment);
            }
        }
    }
    let said = facts(sentence);
    let heard = facts(&cited);
    let heard_numbers: BTreeSet<&String> = heard.numbers.iter().chain(heard.teeth.iter()).collect();
    if said.numbers.iter().any(|n| !heard_numbers.contains(n)) {
        flags.insert(Flag::Number);
    }
    if said.teeth.iter().any(|n| !heard_numbers.contains(n)) {
        flags.insert(Flag::Tooth);
    }
    if said.drugs.iter().any(|d| !heard.drugs.contains(d)) {
        flags.insert(Flag::Drug);
    }
    if said.negated && !heard.negated {
        flags.insert(Flag::Negation);
    }
    flags.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(n: u128) -> SegmentId {
        format!("00000000-0000-0000-0000-{n:012}").parse().unwrap()
    }

    fn transcript() -> Vec<(SegmentId, String)> {
        vec![
            (
                seg(1),
                "Any pain lately? Some sensitivity on the upper left.".into(),
            ),
            (
                seg(2),
                "Probing depth five millimeters on tooth 14, bleeding on probing.".into(),
            ),
            (
                seg(3),
                "Patient denies any allergies. Takes ibuprofen for headaches.".into(),
            ),
            (
                seg(4),
                "Teeth 3 and thirty have calculus; recall in 6 months.".into(),
            ),
            (
                seg(5),
                "We used 2.5 percent gel. Twenty-three sites charted.".into(),
            ),
        ]
    }

    // req: SCR-05 — one line per case: sentence, cited segments, expected flags.
    #[test]
    fn evidence_flags_table() {
        use Flag::*;
        let t = transcript();
        let cases: &[(&str, &[u128], &[Flag])] = &[
            // Supported.
            ("Sensitivity on the upper left.", &[1], &[]),
            ("Probing depth 5 mm on tooth 14.", &[2], &[]),
            ("Probing depth 5.0 mm on #14 with bleeding.", &[2], &[]),
            ("Denies allergies; takes ibuprofen.", &[3], &[]),
            ("Calculus on teeth 3 and 30.", &[4], &[]),
            ("Recall in six months.", &[4], &[]),
            ("23 sites charted with 2.50% gel.", &[5], &[]),
            ("Calculus on teeth three and thirty.", &[4], &[]),
            // No evidence, unknown segments.
            ("Patient is doing well.", &[], &[NoEvidence]),
            ("Patient is doing well.", &[99], &[UnknownSegment]),
            (
                "Sensitivity on the upper left.",
                &[1, 99],
                &[UnknownSegment],
            ),
            // Numbers.
            ("Probing depth 6 mm on tooth 14.", &[2], &[Number]),
            ("Recall in 4 months.", &[4], &[Number]),
            ("24 sites charted.", &[5], &[Number]),
            ("Probing depth 5 mm.", &[1], &[Number]),
            // Teeth.
            ("Probing depth 5 mm on tooth 15.", &[2], &[Tooth]),
            ("Calculus on teeth 3 and 31.", &[4], &[Tooth]),
            ("Calculus on #19.", &[4], &[Tooth]),
            // Drugs.
            ("Takes ibuprofen and warfarin.", &[3], &[Drug]),
            ("Lidocaine given.", &[2], &[Drug]),
            ("Chlorhexidine rinse prescribed.", &[], &[NoEvidence, Drug]),
            // Negations.
            ("No bleeding on probing.", &[2], &[Negation]),
            ("Patient doesn't report pain.", &[1], &[Negation]),
            ("Denies allergies.", &[3], &[]),
            (
                "No sensitivity, 6 mm on tooth 2, lidocaine.",
                &[1],
                &[Number, Tooth, Drug, Negation],
            ),
        ];
        for (sentence, cited, want) in cases {
            let cited: Vec<SegmentId> = cited.iter().map(|n| seg(*n)).collect();
            assert_eq!(
                check(sentence, &cited, &t),
                *want,
                "{sentence:?} citing {cited:?}"
            );
        }
    }

    #[test]
    fn numbers_are_compared_as_values() {
        let toks = |s: &str| {
            tokens(s)
                .into_iter()
                .filter_map(|t| match t {
                    Token::Number(n) => Some(n),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(toks("5mm, 05 and 5.0"), ["5", "5", "5"]);
        assert_eq!(toks("twenty-three, ninety nine, forty"), ["23", "99", "40"]);
        assert_eq!(toks("2.50 and 0.5."), ["2.5", "0.5"]);
        assert_eq!(toks("v1.2.3"), ["1.2", "3"]);
    }

    #[test]
    fn flag_names_round_trip() {
        for f in Flag::ALL {
            assert_eq!(Flag::parse(f.as_str()), Some(*f));
            assert!(!f.explain().is_empty());
        }
        assert_eq!(Flag::parse("other"), None);
    }
}
