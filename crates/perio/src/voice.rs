//! Voice finals: what a general-purpose speech recognizer heard, snapped onto the perio
//! grammar, with a confidence that decides between charting and asking.
//!
//! A recognizer such as Whisper answers with free text ("Focation two.", "Two one
//! missing.", "Three hundred twenty-three."). [`decide`] turns that text into the final the
//! engine reads, in four pure steps:
//!
//! 1. **Normalize**: sentence punctuation becomes a clause separator (a comma), spoken
//!    compound numbers with "hundred"/"thousand" become the digit string they name
//!    ("three hundred twenty three" → `323`, so the engine's own digit-string rules N2/N3
//!    apply), ordinal suffixes are dropped.
//! 2. **Snap** each word the lexicon does not know to the nearest lexicon word: first a
//!    small table of known mishearings ("vacation" → furcation, "sublimation" →
//!    suppuration), then a phonetic edit distance ([`phonetic_distance`]); two unknown
//!    neighbours may merge into one word ("into proximal" → interproximal). A word with no
//!    close, unambiguous neighbour stays as it was, so the engine refuses it
//!    (`out_of_vocabulary`) exactly as it would a typed one. Homophones the engine already
//!    reads ("to", "for", "tree") are left to the engine's rules H1–H4.
//! 3. **Disambiguate** "tooth" against its near-homophones "two"/"to"/"too" where the
//!    grammar allows a tooth word: every reading is resolved against the session (without
//!    touching it); when readings that would chart differ, the final is held as
//!    [`HoldReason::Ambiguous`].
//! 4. **Score**: the recognizer's own confidence (`avg_logprob`, `no_speech_prob`) and the
//!    snap cost give a confidence in `[0, 1]`; a final that would change the chart or the
//!    cursor with a confidence under [`Policy::min_confidence`], a far snap, or no speech is
//!    held for confirmation instead of charted.
//!
//! Around [`decide`], the voice pipeline reads a clip up to three times: a final that would
//! chart is checked against a second reading ([`check_prompt`], [`cross_check`]), and a held
//! final may be settled by a third reading whose prompt holds none of its tooth numbers
//! ([`tie_prompt`], [`tie_break`]), which only ever chooses among the final's own readings.
//!
//! # Guarantees
//!
//! * Pure and total: no IO, no clock, no randomness, and no panic on any input (a
//!   property test feeds arbitrary text and numbers). Input is bounded by
//!   [`MAX_HEARD_BYTES`]; longer text is refused by the engine as `too_long`.
//! * Never guesses silently: every change to what was heard is listed in
//!   [`VoiceFinal::edits`], and the engine's outcome for the final is previewed with
//!   [`Session::resolve`], so a held final shows what it would do.
//! * Words the engine would refuse are never invented: snapping only maps to lexicon words,
//!   and conversation stays conversation when no word is close to the lexicon.

use std::collections::BTreeSet;

use crate::lexicon::lexicon;
use crate::outcome::{Outcome, Status};
use crate::session::Session;
use crate::token::MAX_FINAL_BYTES;

/// Longest recognizer text considered (the engine's own final limit).
pub const MAX_HEARD_BYTES: usize = MAX_FINAL_BYTES;

/// Most "two/to/too ↔ tooth" positions tried (2^N readings at most).
const MAX_SWAP_POSITIONS: usize = 4;

/// Highest normalized phonetic distance at which an unknown word is snapped.
const MAX_SNAP_DISTANCE: f64 = 0.3;

/// How much better the best candidate must be than the runner-up to snap.
const MIN_SNAP_MARGIN: f64 = 0.08;

/// Cost charged for a known mishearing from [`KNOWN_MISHEARINGS`].
const KNOWN_MISHEARING_COST: f64 = 0.2;

/// Cost charged for reading "two"/"to" as "tooth" (or back) instead of what was heard.
const TOOTH_SWAP_COST: f64 = 0.3;

/// Confidence cost of each odd warning (a run that is not a whole triplet) in the final's
/// reading.
const ODD_READING_COST: f64 = 0.3;

/// Mishearings of perio terms by general-purpose recognizers, word → lexicon word.
const KNOWN_MISHEARINGS: &[(&str, &str)] = &[
    ("vacation", "furcation"),
    ("focation", "furcation"),
    ("location", "furcation"),
    ("forcation", "furcation"),
    ("fercation", "furcation"),
    ("sublimation", "suppuration"),
    ("separation", "suppuration"),
    ("supuration", "suppuration"),
    ("suppration", "suppuration"),
    ("mobilities", "mobility"),
    ("lingo", "lingual"),
    ("lingwal", "lingual"),
    ("bucal", "buccal"),
    ("buckel", "buccal"),
    ("mezial", "mesial"),
    ("distil", "distal"),
    ("distle", "distal"),
    ("furcations", "furcation"),
    ("oil", "all"),
];

/// Shortest word snapped, and shortest snap target: letters, roman numerals, abbreviations
/// and three-letter words are too short to be told apart from ordinary words by sound.
const MIN_SNAP_LEN: usize = 4;

/// The words unknown words may be snapped to: the words of the recognizer hints (never a
/// homophone such as "ate" or "tree", never a filler), at least [`MIN_SNAP_LEN`] letters.
fn snap_targets() -> &'static BTreeSet<String> {
    static WORDS: std::sync::OnceLock<BTreeSet<String>> = std::sync::OnceLock::new();
    WORDS.get_or_init(|| {
        lexicon()
            .entries()
            .filter(|e| e.is_hint())
            .flat_map(|e| e.phrase.split(' ').map(str::to_owned).collect::<Vec<_>>())
            .filter(|w| w.len() >= MIN_SNAP_LEN && w != "thru")
            .collect()
    })
}

/// What the recognizer returned for one clip.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Heard {
    /// The recognized text (display form).
    pub text: String,
    /// Mean log-probability of the recognized tokens (Whisper's segment `avg_logprob`,
    /// averaged over segments), when the provider reports it.
    pub avg_logprob: Option<f64>,
    /// Probability that the clip held no speech (Whisper's `no_speech_prob`, the highest
    /// over segments), when the provider reports it.
    pub no_speech_prob: Option<f64>,
}

/// When a voice final is held instead of charted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// A final that would chart with a lower confidence is held.
    pub min_confidence: f64,
    /// A clip with a higher no-speech probability is held.
    pub max_no_speech: f64,
    /// A final whose snaps cost more (sum of normalized distances) is held.
    pub max_snap_cost: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_confidence: 0.45,
            max_no_speech: 0.6,
            max_snap_cost: 0.6,
        }
    }
}

/// One change made to what was heard.
#[derive(Clone, Debug, PartialEq)]
pub struct Edit {
    /// What the recognizer said (normalized words).
    pub from: String,
    /// What the final says instead.
    pub to: String,
    /// Its cost (0 = certain; a phonetic snap costs its normalized distance).
    pub cost: f64,
}

/// Why a voice final is held for confirmation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HoldReason {
    /// The recognizer was unsure of its own words.
    LowConfidence,
    /// The recognizer thought the clip may hold no speech.
    NoSpeech,
    /// Too much of the final had to be snapped onto the lexicon.
    FarSnap,
    /// Readings of "tooth"/"two" chart different things.
    Ambiguous,
    /// A second recognition of the clip would chart something else.
    Disagreement,
}

impl HoldReason {
    /// A stable lower-case name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::LowConfidence => "low_confidence",
            Self::NoSpeech => "no_speech",
            Self::FarSnap => "far_snap",
            Self::Ambiguous => "ambiguous",
            Self::Disagreement => "disagreement",
        }
    }
}

/// The decision on one recognized clip.
#[derive(Clone, Debug)]
pub struct VoiceFinal {
    /// What was heard, normalized (read back on screen).
    pub heard: String,
    /// The final given to the engine (what was heard after snapping).
    pub text: String,
    /// Every change from `heard` to `text`.
    pub edits: Vec<Edit>,
    /// Confidence in `[0, 1]`.
    pub confidence: f64,
    /// Why the final is held; empty when it may be applied as is.
    pub hold: Vec<HoldReason>,
    /// Other readings that would chart differently (when ambiguous).
    pub alternatives: Vec<String>,
    /// What the engine would do with `text` on the session given to [`decide`].
    pub preview: Outcome,
}

impl VoiceFinal {
    /// Whether the final must be confirmed before it is applied.
    #[must_use]
    pub fn held(&self) -> bool {
        !self.hold.is_empty()
    }
}

/// One normalized piece of recognized text.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// A word (lower case letters and digits, or a number with `.`, `,` or `:` inside).
    Word(String),
    /// A clause separator.
    Sep,
}

/// Normalizes recognizer text: lower case, sentence punctuation → separators, compound
/// numbers → digits, ordinal suffixes dropped. Other punctuation splits words, except
/// what the engine's tokenizer reads itself (`#14`, `2:30`, `3.5`, `1,010`).
fn normalize(text: &str) -> Vec<Piece> {
    let lower = text.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let mut pieces = Vec::new();
    let mut cur = String::new();
    let flush = |cur: &mut String, pieces: &mut Vec<Piece>| {
        if !cur.is_empty() {
            pieces.push(Piece::Word(std::mem::take(cur)));
        }
    };
    for (i, &c) in chars.iter().enumerate() {
        let prev_digit = i > 0 && chars.get(i - 1).is_some_and(char::is_ascii_digit);
        let next_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if c.is_alphanumeric()
            || c == '#'
            || (matches!(c, '.' | ',' | ':') && prev_digit && next_digit)
        {
            cur.push(c);
        } else if matches!(c, '\'' | '\u{2019}') {
            // "let's" → "lets", as the engine reads it.
        } else if matches!(c, '.' | ',' | ';' | '?' | '!') {
            flush(&mut cur, &mut pieces);
            if matches!(pieces.last(), Some(Piece::Word(_))) {
                pieces.push(Piece::Sep);
            }
        } else {
            flush(&mut cur, &mut pieces);
        }
    }
    flush(&mut cur, &mut pieces);
    while matches!(pieces.last(), Some(Piece::Sep)) {
        pieces.pop();
    }
    let pieces = pieces
        .into_iter()
        .map(|p| match p {
            Piece::Word(w) => Piece::Word(strip_ordinal(&w)),
            Piece::Sep => Piece::Sep,
        })
        .collect();
    compound_numbers(pieces)
}

/// "1st" → "1", "22nd" → "22".
fn strip_ordinal(word: &str) -> String {
    for suffix in ["st", "nd", "rd", "th"] {
        if let Some(stem) = word.strip_suffix(suffix)
            && !stem.is_empty()
            && stem.bytes().all(|b| b.is_ascii_digit())
        {
            return stem.to_owned();
        }
    }
    word.to_owned()
}

fn unit_value(word: &str) -> Option<u32> {
    Some(match word {
        "zero" | "oh" => 0,
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        _ => return None,
    })
}

fn tens_value(word: &str) -> Option<u32> {
    Some(match word {
        "twenty" => 20,
        "thirty" => 30,
        "forty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "seventy" => 70,
        "eighty" => 80,
        "ninety" => 90,
        _ => return None,
    })
}

/// Reads a number below 100 at `words[i..]`: (value, words used).
fn below_hundred(words: &[&str], i: usize) -> Option<(u32, usize)> {
    let w = *words.get(i)?;
    if let Some(t) = tens_value(w) {
        if let Some(u) = words
            .get(i + 1)
            .and_then(|n| unit_value(n))
            .filter(|u| *u < 10)
            && u > 0
        {
            return Some((t + u, 2));
        }
        return Some((t, 1));
    }
    if let Some(v) = w.parse::<u32>().ok().filter(|v| *v < 100) {
        return Some((v, 1));
    }
    unit_value(w).map(|v| (v, 1))
}

/// Reads "N hundred [and] M", "N thousand [and] M" at `words[i..]`.
fn compound_at(words: &[&str], i: usize) -> Option<(u32, usize)> {
    let (lead, used) = below_hundred(words, i)?;
    let mut j = i + used;
    let scale = match words.get(j).copied() {
        Some("hundred") => 100,
        Some("thousand") => 1000,
        _ => return None,
    };
    j += 1;
    let mut value = lead.checked_mul(scale)?;
    if scale == 1000
        && let Some((h, u)) = below_hundred(words, j + usize::from(words.get(j) == Some(&"and")))
        && words.get(j + usize::from(words.get(j) == Some(&"and")) + u) == Some(&"hundred")
    {
        j += usize::from(words.get(j) == Some(&"and")) + u + 1;
        value = value.checked_add(h.checked_mul(100)?)?;
    }
    let skip_and = usize::from(words.get(j) == Some(&"and"));
    if let Some((rest, u)) = below_hundred(words, j + skip_and) {
        value = value.checked_add(rest)?;
        j += skip_and + u;
    }
    Some((value, j - i))
}

/// Rewrites spoken compound numbers ("three hundred twenty three") as digits.
fn compound_numbers(pieces: Vec<Piece>) -> Vec<Piece> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut words: Vec<String> = Vec::new();
    let flush = |words: &mut Vec<String>, out: &mut Vec<Piece>| {
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        let mut i = 0;
        while i < refs.len() {
            if let Some((value, used)) = compound_at(&refs, i) {
                out.push(Piece::Word(value.to_string()));
                i += used.max(1);
            } else {
                if let Some(w) = refs.get(i) {
                    out.push(Piece::Word((*w).to_owned()));
                }
                i += 1;
            }
        }
        words.clear();
    };
    for p in pieces {
        match p {
            Piece::Word(w) => words.push(w),
            Piece::Sep => {
                flush(&mut words, &mut out);
                out.push(Piece::Sep);
            }
        }
    }
    flush(&mut words, &mut out);
    out
}

/// Every word that appears in a lexicon phrase.
fn lexicon_words() -> &'static BTreeSet<String> {
    static WORDS: std::sync::OnceLock<BTreeSet<String>> = std::sync::OnceLock::new();
    WORDS.get_or_init(|| {
        lexicon()
            .entries()
            .flat_map(|e| e.phrase.split(' ').map(str::to_owned).collect::<Vec<_>>())
            .collect()
    })
}

fn known(word: &str) -> bool {
    word.starts_with('#')
        || word.chars().next().is_some_and(|c| c.is_ascii_digit())
        || lexicon_words().contains(word)
}

/// The phonetic spelling used by [`phonetic_distance`]: common English spellings of one
/// sound folded together ("ph" → f, "ck" → k, "tion" → shun, doubled letters once, a
/// final silent "e" dropped), "th" as one symbol.
fn phonetic(word: &str) -> Vec<char> {
    let w: String = word.chars().filter(char::is_ascii_alphabetic).collect();
    let w = w
        .replace("tion", "shun")
        .replace("sion", "shun")
        .replace("ph", "f")
        .replace("th", "0")
        .replace("ck", "k")
        .replace("qu", "kw")
        .replace('x', "ks")
        .replace('q', "k")
        .replace('y', "i")
        .replace('z', "s")
        .replace("ee", "i")
        .replace("ea", "i")
        .replace("ou", "o")
        .replace("oo", "u");
    let mut chars: Vec<char> = Vec::with_capacity(w.len());
    let raw: Vec<char> = w.chars().collect();
    for (i, &c) in raw.iter().enumerate() {
        let c = if c == 'c' {
            match raw.get(i + 1) {
                Some('e' | 'i') => 's',
                _ => 'k',
            }
        } else {
            c
        };
        if chars.last() != Some(&c) {
            chars.push(c);
        }
    }
    if chars.len() > 3 && chars.last() == Some(&'e') {
        chars.pop();
    }
    chars
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// Substitution cost between two phonetic symbols: vowels and close consonant pairs are
/// cheap.
fn sub_cost(a: char, b: char) -> f64 {
    if a == b {
        return 0.0;
    }
    if is_vowel(a) && is_vowel(b) {
        return 0.5;
    }
    let pair = |x: char, y: char| (a == x && b == y) || (a == y && b == x);
    let close = [
        ('f', 'v'),
        ('f', '0'),
        ('t', '0'),
        ('d', '0'),
        ('s', '0'),
        ('p', 'b'),
        ('t', 'd'),
        ('k', 'g'),
        ('s', 'z'),
        ('m', 'n'),
        ('r', 'l'),
    ];
    if close.iter().any(|&(x, y)| pair(x, y)) {
        0.5
    } else {
        1.0
    }
}

/// A small count as a float (counts here are bounded by the final's length).
fn count(n: usize) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Weighted edit distance between the phonetic spellings of two words, divided by the
/// longer spelling's length: 0 for words that sound alike, about 1 for unrelated words.
#[must_use]
pub fn phonetic_distance(a: &str, b: &str) -> f64 {
    let a = phonetic(a);
    let b = phonetic(b);
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 0.0;
    }
    let mut prev: Vec<f64> = (0..=b.len()).map(count).collect();
    let mut cur = vec![0.0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        if let Some(first) = cur.first_mut() {
            *first = count(i + 1);
        }
        for (j, &cb) in b.iter().enumerate() {
            let del = prev.get(j + 1).copied().unwrap_or(f64::MAX) + 1.0;
            let ins = cur.get(j).copied().unwrap_or(f64::MAX) + 1.0;
            let sub = prev.get(j).copied().unwrap_or(f64::MAX) + sub_cost(ca, cb);
            if let Some(c) = cur.get_mut(j + 1) {
                *c = del.min(ins).min(sub);
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev.get(b.len()).copied().unwrap_or(count(longest)) / count(longest)
}

/// The nearest lexicon word to an unknown word, when it is close and unambiguous.
fn nearest(word: &str) -> Option<(String, f64)> {
    if let Some(&(_, to)) = KNOWN_MISHEARINGS.iter().find(|(from, _)| *from == word) {
        return Some((to.to_owned(), KNOWN_MISHEARING_COST));
    }
    if word.len() < MIN_SNAP_LEN || word.chars().any(|c| !c.is_ascii_alphabetic()) {
        return None;
    }
    let mut scored: Vec<(f64, &str)> = snap_targets()
        .iter()
        .map(|c| (phonetic_distance(word, c), c.as_str()))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let &(d, cand) = scored.first()?;
    // The runner-up, not counting forms of the same word ("interproximals").
    let second = scored
        .iter()
        .skip(1)
        .find(|(_, c)| !c.starts_with(cand) && !cand.starts_with(c))
        .map_or(f64::MAX, |&(d2, _)| d2);
    (d <= MAX_SNAP_DISTANCE && second - d >= MIN_SNAP_MARGIN).then(|| (cand.to_owned(), d))
}

/// Snaps unknown words; returns the pieces and the edits.
fn snap_pieces(pieces: &[Piece]) -> (Vec<Piece>, Vec<Edit>) {
    let mut out = Vec::with_capacity(pieces.len());
    let mut edits = Vec::new();
    let mut i = 0;
    while let Some(p) = pieces.get(i) {
        let Piece::Word(w) = p else {
            out.push(Piece::Sep);
            i += 1;
            continue;
        };
        if known(w) {
            out.push(p.clone());
            i += 1;
            continue;
        }
        // Two neighbours heard apart that make one lexicon word ("into proximal").
        if let Some(Piece::Word(next)) = pieces.get(i + 1)
            && !known(next)
            && let Some((to, cost)) = nearest(&format!("{w}{next}"))
        {
            edits.push(Edit {
                from: format!("{w} {next}"),
                to: to.clone(),
                cost,
            });
            out.push(Piece::Word(to));
            i += 2;
            continue;
        }
        if let Some((to, cost)) = nearest(w) {
            edits.push(Edit {
                from: w.clone(),
                to: to.clone(),
                cost,
            });
            out.push(Piece::Word(to));
        } else {
            out.push(p.clone());
        }
        i += 1;
    }
    (out, edits)
}

fn join(pieces: &[Piece]) -> String {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Word(w) => {
                if !s.is_empty() {
                    s.push(' ');
                }
                s.push_str(w);
            }
            Piece::Sep => s.push(','),
        }
    }
    s
}

/// Whether a tooth word may stand at `i` (start of a clause, or after a word that the
/// grammar lets a tooth word follow).
fn tooth_slot(pieces: &[Piece], i: usize) -> bool {
    if i == 0 {
        return true;
    }
    match pieces.get(i - 1) {
        Some(Piece::Sep) => true,
        Some(Piece::Word(prev)) => matches!(
            prev.as_str(),
            "on" | "to" | "back" | "jump" | "select" | "skip" | "this" | "whole"
        ),
        None => false,
    }
}

/// Readings with "two"/"to"/"too"/"2" read as "tooth" where a tooth word may stand, and a
/// clause-opening "tooth" read as "two" (the recognizer confuses them both ways).
fn tooth_readings(pieces: &[Piece]) -> Vec<Vec<Piece>> {
    let clause_start = |i: usize| i == 0 || matches!(pieces.get(i - 1), Some(Piece::Sep));
    let positions: Vec<(usize, &str)> = pieces
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(pieces.get(i + 1), Some(Piece::Word(_))))
        .filter_map(|(i, p)| match p {
            Piece::Word(w)
                if matches!(w.as_str(), "two" | "to" | "too" | "2") && tooth_slot(pieces, i) =>
            {
                Some((i, "tooth"))
            }
            Piece::Word(w) if w == "tooth" && clause_start(i) => Some((i, "two")),
            _ => None,
        })
        .take(MAX_SWAP_POSITIONS)
        .collect();
    let mut readings = Vec::new();
    for mask in 1..(1u32 << positions.len()) {
        let mut r = pieces.to_vec();
        for (bit, &(pos, word)) in positions.iter().enumerate() {
            if mask & (1 << bit) != 0
                && let Some(slot) = r.get_mut(pos)
            {
                *slot = Piece::Word(word.to_owned());
            }
        }
        readings.push(r);
    }
    readings
}

/// Whether an outcome would chart or move something.
fn acts(o: &Outcome) -> bool {
    matches!(o.status, Status::Ok | Status::NeedsConfirmation)
}

/// How odd a reading is: runs that are not whole triplets are what a misheard
/// "tooth"/"two" produces.
fn oddness(o: &Outcome) -> usize {
    o.warnings
        .iter()
        .filter(|w| {
            let s = w.to_string();
            s.starts_with("run_not_triplet")
        })
        .count()
}

/// Whether two outcomes do the same thing (status, events, alternatives, cursor).
#[must_use]
pub fn same_effect(a: &Outcome, b: &Outcome) -> bool {
    a.status == b.status
        && a.events == b.events
        && a.cursor_after == b.cursor_after
        && a.alternatives == b.alternatives
}

/// Decides what to do with one recognized clip on `session` (not modified).
#[must_use]
pub fn decide(session: &Session, heard: &Heard, policy: &Policy) -> VoiceFinal {
    let bounded = truncate(&heard.text, MAX_HEARD_BYTES + 1);
    let pieces = normalize(bounded);
    let heard_text = join(&pieces);
    let (snapped, mut edits) = snap_pieces(&pieces);
    let preview_of = |p: &[Piece]| {
        let text = join(p);
        let outcome = session.resolve(&session.parse(&text)).outcome;
        (text, outcome)
    };
    let (mut text, mut preview) = preview_of(&snapped);
    let mut hold = Vec::new();
    let mut alternatives = Vec::new();
    // The readings that would act, the heard one first, fewest odd warnings preferred.
    let mut acting: Vec<(String, Outcome, bool)> = Vec::new();
    if acts(&preview) {
        acting.push((text.clone(), preview.clone(), true));
    }
    for r in tooth_readings(&snapped) {
        let (t, o) = preview_of(&r);
        if acts(&o) {
            acting.push((t, o, false));
        }
    }
    let best = acting.iter().map(|(_, o, _)| oddness(o)).min();
    let plausible: Vec<&(String, Outcome, bool)> = acting
        .iter()
        .filter(|(_, o, _)| Some(oddness(o)) == best)
        .collect();
    if let Some(&(chosen_text, chosen, heard_as_is)) = plausible.first() {
        for (t, o, _) in plausible.iter().skip(1) {
            if !same_effect(o, chosen) {
                alternatives.push(t.clone());
            }
        }
        if !heard_as_is {
            edits.push(Edit {
                from: text.clone(),
                to: chosen_text.clone(),
                cost: TOOTH_SWAP_COST,
            });
            text.clone_from(chosen_text);
            preview = chosen.clone();
        }
    }
    if !alternatives.is_empty() {
        hold.push(HoldReason::Ambiguous);
    }
    let snap_cost: f64 = edits.iter().map(|e| e.cost).sum();
    let odd_cost = ODD_READING_COST * count(oddness(&preview));
    let acoustic = heard.avg_logprob.map_or(1.0, |lp| lp.min(0.0).exp());
    let speech = 1.0 - heard.no_speech_prob.unwrap_or(0.0).clamp(0.0, 1.0);
    let confidence = (acoustic * speech * (-snap_cost - odd_cost).exp()).clamp(0.0, 1.0);
    let confidence = if confidence.is_nan() { 0.0 } else { confidence };
    if acts(&preview) && preview.status == Status::Ok {
        if heard
            .no_speech_prob
            .is_some_and(|p| p.is_nan() || p > policy.max_no_speech)
        {
            hold.push(HoldReason::NoSpeech);
        }
        if snap_cost > policy.max_snap_cost {
            hold.push(HoldReason::FarSnap);
        }
        if confidence < policy.min_confidence {
            hold.push(HoldReason::LowConfidence);
        }
    }
    hold.sort_unstable();
    hold.dedup();
    VoiceFinal {
        heard: heard_text,
        text,
        edits,
        confidence,
        hold,
        alternatives,
        preview,
    }
}

/// The longest prefix of `s` within `max` bytes, on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Example clauses of the grammar for the recognizer prompts. `{a}`…`{e}` are tooth
/// numbers: each prompt fills them differently (see [`check_prompt`]).
const PROMPT_CLAUSES: &[&str] = &[
    "Periodontal charting.",
    "Tooth {f} buccal, three two four, bleeding distal.",
    "Lingual two two three.",
    "Jump to tooth {a} facial.",
    "Tooth {b} lingual, five four six.",
    "Scratch that.",
    "Furcation on tooth number {c} buccal grade two.",
    "Mobility class one on tooth {d}.",
    "Suppuration, plaque, calculus.",
    "Gingival margin plus one.",
    "Recession two on tooth {e} facial.",
    "Teeth {g} missing.",
    "Tooth {h} implant.",
    "Skip this tooth.",
    "Go back to tooth {i} mesial lingual.",
    "Four no three.",
    "Bleeding interproximal.",
    "Undo. Next.",
];

fn prompt_with(teeth: [&str; 9]) -> String {
    let mut out = String::new();
    for clause in PROMPT_CLAUSES {
        let mut clause = (*clause).to_owned();
        let slots = [
            "{a}", "{b}", "{c}", "{d}", "{e}", "{f}", "{g}", "{h}", "{i}",
        ];
        for (slot, tooth) in slots.iter().zip(teeth) {
            clause = clause.replace(slot, tooth);
        }
        let clause = clause.replace("  ", " ");
        // Every word is the engine's own (the two opening words name the task).
        let ok = clause
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .all(|w| w == "periodontal" || w == "charting" || lexicon_words().contains(&w));
        if ok {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&clause);
        }
    }
    out
}

/// The recognizer prompt: dictation in the engine's own words, every word a lexicon word
/// (a recognizer copies the style and spelling of its prompt: number words, "tooth", the
/// site and finding terms). Short enough for Whisper's 224-token prompt window.
#[must_use]
pub fn prompt() -> String {
    prompt_with([
        "thirty",
        "fourteen",
        "nineteen",
        "twelve",
        "twenty",
        "three",
        "one and sixteen",
        "two",
        "five",
    ])
}

/// The second prompt of [`cross_check`]: the same clauses without tooth numbers. A
/// recognizer that is unsure of a tooth number tends to copy one from its prompt; without
/// one to copy, its second reading of such a clip says something else.
#[must_use]
pub fn check_prompt() -> String {
    prompt_with(["", "", "", "", "", "", "", "", ""])
}

/// Whether a decided final would chart without asking, so that a second reading (with
/// [`check_prompt`]) is worth its time.
#[must_use]
pub fn needs_check(voice: &VoiceFinal) -> bool {
    !voice.held() && voice.preview.status == Status::Ok && !voice.preview.events.is_empty()
}

/// Holds `first` when a second recognition of the same clip (with [`check_prompt`]) would
/// chart something else ([`HoldReason::Disagreement`]); a second reading the engine
/// refuses or ignores counts against the first only when the first names a tooth number the
/// second does not say (the recognizer copied it from the first prompt).
#[must_use]
pub fn cross_check(
    session: &Session,
    mut first: VoiceFinal,
    second: &Heard,
    policy: &Policy,
) -> VoiceFinal {
    let other = decide(session, second, policy);
    let disagrees = if acts(&other.preview) {
        !same_effect(&other.preview, &first.preview)
    } else {
        // Refused or ignored: it still counts against the first when the first names a
        // tooth the second reading does not say at all (a tooth number copied from the
        // first prompt).
        let said = numbers_in(&words_of(&other.text));
        tooth_numbers(&first.text)
            .iter()
            .filter_map(|w| number_value(w))
            .any(|n| !said.contains(&n))
    };
    if disagrees {
        first.hold.push(HoldReason::Disagreement);
        first.hold.sort_unstable();
        first.hold.dedup();
        first.alternatives.push(other.text);
    }
    first
}

/// The lower-case words of `text` (letters and digits).
fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The value of one number word or digit string.
fn number_value(w: &str) -> Option<u32> {
    w.parse::<u32>()
        .ok()
        .or_else(|| unit_value(w))
        .or_else(|| tens_value(w))
}

/// Every number a reading says: each word's own value, and tens followed by a unit
/// (`thirty two` → 32, as well as 30 and 2).
fn numbers_in(words: &[String]) -> Vec<u32> {
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut out: Vec<u32> = refs.iter().filter_map(|w| number_value(w)).collect();
    out.extend((0..refs.len()).filter_map(|i| below_hundred(&refs, i).map(|(v, _)| v)));
    out
}

/// The words a final names as tooth numbers (`tooth 14`, `tooth twenty`).
fn tooth_numbers(text: &str) -> Vec<String> {
    let words = words_of(text);
    words
        .windows(2)
        .filter_map(|w| match w {
            [t, n] if t == "tooth" || t == "teeth" => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// Tooth numbers of the tie-break prompt when no candidate names a teen: teens only.
const TIE_TEETH_TEENS: [&str; 9] = [
    "eleven",
    "thirteen",
    "fifteen",
    "seventeen",
    "twelve",
    "fourteen",
    "sixteen and eighteen",
    "ten",
    "nineteen",
];

/// Tooth numbers of the tie-break prompt when a candidate names a teen: tens only.
const TIE_TEETH_TENS: [&str; 9] = [
    "twenty",
    "thirty",
    "twenty",
    "thirty",
    "twenty",
    "thirty",
    "twenty and thirty",
    "twenty",
    "thirty",
];

/// Whether a held final may be settled by a third reading: held only because the
/// recognizer was unsure, its readings disagreed or "tooth"/"two" was ambiguous (never for
/// no speech or a far snap).
fn tie_breakable(voice: &VoiceFinal) -> bool {
    voice.held()
        && voice.hold.iter().all(|h| {
            matches!(
                h,
                HoldReason::LowConfidence | HoldReason::Disagreement | HoldReason::Ambiguous
            )
        })
}

/// The texts a final may be read as: its own text, its "tooth"/"two" readings and its
/// alternatives, without repeats, its own text first.
fn readings_of(voice: &VoiceFinal) -> Vec<String> {
    let pieces = normalize(&voice.text);
    let mut texts = vec![voice.text.clone()];
    for t in tooth_readings(&pieces)
        .iter()
        .map(|r| join(r))
        .chain(voice.alternatives.iter().cloned())
    {
        if !texts.contains(&t) {
            texts.push(t);
        }
    }
    texts
}

/// The readings of a held final that would chart or move something (or ask the engine's
/// own confirmation), each with what it would do on `session`, one per distinct effect, the
/// final's own text first: its text, its "tooth"/"two" readings and its alternatives.
#[must_use]
pub fn candidates(session: &Session, voice: &VoiceFinal) -> Vec<(String, Outcome)> {
    let mut out: Vec<(String, Outcome)> = Vec::new();
    for text in readings_of(voice) {
        let outcome = session.resolve(&session.parse(&text)).outcome;
        if acts(&outcome) && !out.iter().any(|(_, o)| same_effect(o, &outcome)) {
            out.push((text, outcome));
        }
    }
    out
}

/// The prompt of a third, tie-breaking reading of a held final ([`tie_break`]), or `None`
/// when the final is not held, is held for a reason a third reading cannot settle (no
/// speech, far snap), has no reading that would chart, or no prompt is free of its numbers.
///
/// The prompt is [`prompt`]'s clauses with tooth numbers that none of the final's
/// candidate readings says (teens, or else only twenty and thirty): a recognizer that
/// copies a tooth number from its prompt cannot copy the one the candidates name, so a third
/// reading that agrees with a candidate heard it.
#[must_use]
pub fn tie_prompt(session: &Session, voice: &VoiceFinal) -> Option<String> {
    if !tie_breakable(voice) {
        return None;
    }
    let candidates = candidates(session, voice);
    if candidates.is_empty() {
        return None;
    }
    let said: Vec<u32> = candidates
        .iter()
        .flat_map(|(t, _)| numbers_in(&words_of(t)))
        .collect();
    if !said.iter().any(|n| (10..20).contains(n)) {
        Some(prompt_with(TIE_TEETH_TEENS))
    } else if !said.iter().any(|n| *n >= 20) {
        Some(prompt_with(TIE_TEETH_TENS))
    } else {
        None
    }
}

/// Settles a held final with a third reading of the same clip (heard with [`tie_prompt`]):
/// when that reading is not held itself and charts exactly what one of the final's
/// candidate readings ([`candidates`]) charts, that candidate is charted; when the engine
/// refuses or ignores it and it is word for word one of the final's readings, the final
/// becomes that reading (refused, charting nothing, as typed). Otherwise the final stays
/// held as it was, with the third reading among its alternatives.
///
/// A third reading never charts on its own: it only chooses among readings the first two
/// readings already gave, and only when exactly one of them agrees with it.
#[must_use]
pub fn tie_break(
    session: &Session,
    mut first: VoiceFinal,
    third: &Heard,
    policy: &Policy,
) -> VoiceFinal {
    if !tie_breakable(&first) {
        return first;
    }
    let other = decide(session, third, policy);
    let agrees: Vec<(String, Outcome)> = if other.held() {
        Vec::new()
    } else if acts(&other.preview) {
        candidates(session, &first)
            .into_iter()
            .filter(|(_, o)| same_effect(o, &other.preview))
            .collect()
    } else {
        // A refusal charts nothing: it settles the final only when it is word for word one
        // of the final's readings (the engine then refuses the final as it would typed).
        readings_of(&first)
            .into_iter()
            .filter(|t| *t == other.text)
            .map(|t| (t, other.preview.clone()))
            .collect()
    };
    if let [(text, outcome)] = agrees.as_slice() {
        if *text != first.text {
            first.edits.push(Edit {
                from: first.text.clone(),
                to: text.clone(),
                cost: TOOTH_SWAP_COST,
            });
        }
        first.text.clone_from(text);
        first.preview = outcome.clone();
        first.confidence = first.confidence.max(other.confidence);
        first.hold.clear();
        first.alternatives.clear();
        return first;
    }
    if !first.alternatives.contains(&other.text) && other.text != first.text {
        first.alternatives.push(other.text);
    }
    first
}

/// How a recognized final compares with the same utterance typed (the voice evaluation
/// contract, `shared/perio/voice/README.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Same status, events and cursor as the typed utterance.
    Exact,
    /// Different, but held for confirmation, refused, or charting nothing: the clinician
    /// sees it and nothing wrong was charted. A held final counts as declined.
    Flagged,
    /// A different value, site or command was charted without asking.
    Wrong,
}

impl Verdict {
    /// Lower-case name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Flagged => "flagged",
            Self::Wrong => "wrong",
        }
    }
}

/// One scored voice final.
#[derive(Clone, Debug)]
pub struct Scored {
    /// The verdict.
    pub verdict: Verdict,
    /// What was decided for the clip.
    pub voice: VoiceFinal,
    /// The outcome applied (`None` when the final was held and declined).
    pub applied: Option<Outcome>,
}

/// Applies one decided voice final (from [`decide`], maybe [`cross_check`]ed, on this
/// session) to `session` as the voice path would (a held final is declined, a final needing
/// the engine's confirmation is declined) and scores it against what `typed` gives on the
/// session as it was.
pub fn apply_scored(session: &mut Session, typed: &str, voice: VoiceFinal) -> Scored {
    let expected = session.clone().apply_final(typed);
    if voice.held() {
        return Scored {
            verdict: Verdict::Flagged,
            voice,
            applied: None,
        };
    }
    let outcome = session.apply_final(&voice.text);
    if outcome.status == Status::NeedsConfirmation {
        session.decline();
    }
    let verdict = if outcome.status == expected.status
        && outcome.events == expected.events
        && outcome.cursor_after == expected.cursor_after
    {
        Verdict::Exact
    } else if matches!(outcome.status, Status::NeedsConfirmation | Status::Rejected)
        || (outcome.status == Status::Ignored && outcome.events.is_empty())
    {
        Verdict::Flagged
    } else {
        Verdict::Wrong
    };
    Scored {
        verdict,
        voice,
        applied: Some(outcome),
    }
}

#[cfg(test)]
mod tests;
