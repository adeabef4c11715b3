//! Synthetic visits for the scribe's evaluation: dental hygiene, dental exam and massage
//! sessions, generated from a seed (the same seed gives the same visits on every machine and
//! version: the generator is a fixed splitmix64, not a library RNG that may change).
//!
//! Guarantees: nothing here comes from practice data. There are no names, dates of birth,
//! contact details or identifiers; the speakers are "the clinician" and "the patient" (or
//! "the client"); every visit carries the [`SYNTHETIC_MARKER`]. Numbers are written as words
//! (below one hundred) so the reference is exactly what the synthetic voice says.

use super::wer::spell;

/// Marks every generated visit (fixtures and reports carry it; see SCR-06).
pub const SYNTHETIC_MARKER: &str = "SYNTHETIC";

/// The kinds of visit generated, in the order the generator cycles through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitKind {
    /// A dental hygiene appointment (cleaning, probing, home care).
    DentalHygiene,
    /// A dental exam (findings per tooth, plan).
    DentalExam,
    /// A massage therapy session (areas, pressure, response).
    Massage,
}

impl VisitKind {
    /// All kinds.
    pub const ALL: [Self; 3] = [Self::DentalHygiene, Self::DentalExam, Self::Massage];

    /// The kind's name in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::DentalHygiene => "dental_hygiene",
            Self::DentalExam => "dental_exam",
            Self::Massage => "massage",
        }
    }
}

/// One synthetic visit: what is said, sentence by sentence.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Visit {
    /// `SYNTHETIC-<kind>-<n>`.
    pub id: String,
    /// Always [`SYNTHETIC_MARKER`].
    pub marker: &'static str,
    /// The kind of visit.
    pub kind: VisitKind,
    /// The sentences spoken, in order (the reference transcript).
    pub sentences: Vec<String>,
}

impl Visit {
    /// The whole reference transcript.
    #[must_use]
    pub fn text(&self) -> String {
        self.sentences.join(" ")
    }
}

/// A fixed, portable pseudo-random generator (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        let span = u64::from(hi.saturating_sub(lo)) + 1;
        lo + u32::try_from(self.next() % span).unwrap_or(0)
    }

    /// One of `items` (the first if it is empty… which it never is here).
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let n = u64::try_from(items.len()).unwrap_or(1).max(1);
        let i = usize::try_from(self.next() % n).unwrap_or(0);
        items.get(i).copied().unwrap_or("")
    }
}

const SURFACES: &[&str] = &["mesial", "distal", "buccal", "lingual", "occlusal"];
const QUADRANTS: &[&str] = &["upper right", "upper left", "lower left", "lower right"];
const GUMS: &[&str] = &[
    "The gums look pink and firm with no swelling.",
    "There is mild redness along the gum line.",
    "The gums bleed a little on probing in the back.",
];
const HOME_CARE: &[&str] = &[
    "We talked about flossing once a day before bed.",
    "The patient will try an electric toothbrush at home.",
    "We reviewed brushing along the gum line for two minutes.",
    "The patient will use interdental brushes between the back teeth.",
];
const FINDINGS: &[&str] = &[
    "a small cavity",
    "a cracked filling",
    "some wear on the biting surface",
    "a chipped edge",
];
const PLANS: &[&str] = &[
    "We will place a filling at the next visit.",
    "We will watch it and check again in six months.",
    "We will take an x-ray next time to look closer.",
    "A crown is recommended and the patient will think about it.",
];
const AREAS: &[&str] = &[
    "the upper back",
    "the lower back",
    "the neck",
    "the right shoulder",
    "the left shoulder",
    "both calves",
    "the hamstrings",
];
const PRESSURE: &[&str] = &["light", "moderate", "firm"];
const TECHNIQUES: &[&str] = &[
    "long gliding strokes",
    "slow kneading",
    "trigger point work",
    "gentle stretching",
];
const RESPONSES: &[&str] = &[
    "The client felt looser by the end of the session.",
    "The client reported less tension when turning the head.",
    "The client asked for lighter pressure on the neck.",
];

fn hygiene(rng: &mut Rng) -> Vec<String> {
    let tooth = spell(rng.range(2, 31));
    let (a, b, c) = (
        spell(rng.range(2, 4)),
        spell(rng.range(2, 6)),
        spell(rng.range(2, 4)),
    );
    vec![
        "This is a synthetic dental hygiene visit.".to_owned(),
        format!(
            "The patient reports some sensitivity in the {} area when drinking cold water.",
            rng.pick(QUADRANTS)
        ),
        rng.pick(GUMS).to_owned(),
        format!("Probing depths are {a} {b} {c} on tooth {tooth}."),
        format!(
            "There is light plaque on the {} surfaces of the lower front teeth.",
            rng.pick(SURFACES)
        ),
        "We did a full cleaning and polished all teeth.".to_owned(),
        "Fluoride varnish was applied at the end of the visit.".to_owned(),
        rng.pick(HOME_CARE).to_owned(),
        format!(
            "Next cleaning in {} months.",
            rng.pick(&["three", "four", "six"])
        ),
    ]
}

fn exam(rng: &mut Rng) -> Vec<String> {
    let t1 = spell(rng.range(2, 15));
    let t2 = spell(rng.range(18, 31));
    vec![
        "This is a synthetic dental exam.".to_owned(),
        format!(
            "The patient has no pain today but notices food catching on the {} side.",
            if rng.range(0, 1) == 0 {
                "left"
            } else {
                "right"
            }
        ),
        format!(
            "On tooth {t1} there is {} on the {} surface.",
            rng.pick(FINDINGS),
            rng.pick(SURFACES)
        ),
        format!("Tooth {t2} has an old filling that looks intact."),
        "The bite is even and the jaw opens without clicking.".to_owned(),
        "The tongue, cheeks and floor of the mouth look normal.".to_owned(),
        rng.pick(PLANS).to_owned(),
        "The patient agreed with the plan.".to_owned(),
    ]
}

fn massage(rng: &mut Rng) -> Vec<String> {
    let area = rng.pick(AREAS);
    let other = rng.pick(AREAS);
    vec![
        "This is a synthetic massage session.".to_owned(),
        format!("The client reports tightness in {area} after long hours at a desk this week."),
        format!(
            "Pain is about {} out of ten at the start.",
            spell(rng.range(2, 7))
        ),
        format!(
            "We used {} pressure with {} on {area}.",
            rng.pick(PRESSURE),
            rng.pick(TECHNIQUES)
        ),
        format!(
            "We also worked on {other} for about {} minutes.",
            spell(rng.range(2, 4) * 5)
        ),
        rng.pick(RESPONSES).to_owned(),
        "We suggested a short stretch every hour and plenty of water.".to_owned(),
        format!("Next session in {} weeks.", spell(rng.range(1, 4))),
    ]
}

/// `count` visits from `seed`, cycling through the kinds (hygiene, exam, massage, hygiene…).
#[must_use]
pub fn generate(seed: u64, count: usize) -> Vec<Visit> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|i| {
            let kind = VisitKind::ALL
                .get(i % VisitKind::ALL.len())
                .copied()
                .unwrap_or(VisitKind::DentalHygiene);
            let sentences = match kind {
                VisitKind::DentalHygiene => hygiene(&mut rng),
                VisitKind::DentalExam => exam(&mut rng),
                VisitKind::Massage => massage(&mut rng),
            };
            Visit {
                id: format!("{SYNTHETIC_MARKER}-{}-{}", kind.name(), i + 1),
                marker: SYNTHETIC_MARKER,
                kind,
                sentences,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_are_reproducible_marked_and_cycle_through_the_kinds() {
        let a = generate(7, 6);
        let b = generate(7, 6);
        assert_eq!(
            a.iter().map(Visit::text).collect::<Vec<_>>(),
            b.iter().map(Visit::text).collect::<Vec<_>>()
        );
        assert_ne!(generate(8, 1)[0].text(), a[0].text());
        let kinds: Vec<_> = a.iter().map(|v| v.kind).collect();
        assert_eq!(
            kinds,
            [
                VisitKind::DentalHygiene,
                VisitKind::DentalExam,
                VisitKind::Massage,
                VisitKind::DentalHygiene,
                VisitKind::DentalExam,
                VisitKind::Massage
            ]
        );
        for v in &a {
            assert!(v.id.starts_with("SYNTHETIC-"));
            assert_eq!(v.marker, SYNTHETIC_MARKER);
            assert!(v.sentences[0].contains("synthetic"));
            // Numbers are words: the reference is what the voice says.
            assert!(
                !v.text().chars().any(|c| c.is_ascii_digit()),
                "{}",
                v.text()
            );
        }
    }
}
