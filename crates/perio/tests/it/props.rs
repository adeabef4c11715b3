//! Property tests.
//!
//! (a) Random charting sessions built from structured actions (runs, jumps, missing teeth,
//! flags, mobility, furcation, GM mode, undo) are rendered as spoken finals; the engine's
//! chart must equal the chart built directly from the actions by an independent model of
//! the default path (`maxillary_first`), and every final must be accepted or refused exactly
//! when the model says so.
//!
//! (b) Any string: the engine never panics, and a final that is rejected or ignored leaves
//! the session exactly as it was (a held final changes nothing but the prompt).

use std::collections::{BTreeMap, BTreeSet};

use perio::chart::{Chart, Furcation, Mobility};
use perio::outcome::Status;
use perio::session::Session;
use perio::{Entrance, Flag, Site, Surface, Tooth, ToothStatus};
use proptest::prelude::*;

// ----- the model ------------------------------------------------------------------------

/// The default path, written out independently of `perio::path`: 1–16 facial, 16–1
/// lingual, 32–17 lingual, 17–32 facial; right-half teeth distal first when travelling
/// right → left, left-half teeth mesial first; reversed when travelling left → right.
fn model_path() -> Vec<(u8, Site)> {
    let passes: [(Surface, Vec<u8>); 4] = [
        (Surface::F, (1..=16).collect()),
        (Surface::L, (1..=16).rev().collect()),
        (Surface::L, (17..=32).rev().collect()),
        (Surface::F, (17..=32).collect()),
    ];
    let mut out = Vec::new();
    for (surface, teeth) in passes {
        let ascending = teeth.first() < teeth.last();
        for t in teeth {
            let upper = t <= 16;
            let right_to_left = upper == ascending;
            let right_half = t <= 8 || t >= 25;
            let sites = match surface {
                Surface::F => [Site::DB, Site::B, Site::MB],
                Surface::L => [Site::DL, Site::L, Site::ML],
            };
            let [d, mid, m] = sites;
            let order = if right_to_left == right_half {
                [d, mid, m]
            } else {
                [m, mid, d]
            };
            out.extend(order.into_iter().map(|s| (t, s)));
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
struct Model {
    path: std::rc::Rc<Vec<(u8, Site)>>,
    cursor: usize,
    end: bool,
    last_site: Option<(u8, Site)>,
    auto: bool,
    gm: bool,
    pd: BTreeMap<(u8, Site), u8>,
    rec: BTreeMap<(u8, Site), i8>,
    flags: BTreeSet<(u8, Site, Flag)>,
    mobility: BTreeMap<u8, u8>,
    furcation: BTreeMap<u8, u8>,
    missing: BTreeSet<u8>,
}

#[derive(Clone, Debug)]
enum Scope {
    Bare,
    Interproximal,
    All,
    AllSix,
    Facial,
}

#[derive(Clone, Debug)]
enum Action {
    Run(Vec<i8>),
    Mode(bool),
    Jump(u8, Surface),
    Missing,
    MissingTooth(u8),
    Flag(Flag, Scope),
    Mobility(u8, u8),
    Furcation(u8, u8),
    Undo,
}

impl Model {
    fn new() -> Self {
        Self {
            path: std::rc::Rc::new(model_path()),
            cursor: 0,
            end: false,
            last_site: None,
            auto: false,
            gm: false,
            pd: BTreeMap::new(),
            rec: BTreeMap::new(),
            flags: BTreeSet::new(),
            mobility: BTreeMap::new(),
            furcation: BTreeMap::new(),
            missing: BTreeSet::new(),
        }
    }

    fn at(&self, i: usize) -> (u8, Site) {
        self.path[i]
    }

    fn group_start(&self, i: usize) -> usize {
        let (t, s) = self.at(i);
        (0..=i)
            .rev()
            .take_while(|&j| self.at(j).0 == t && self.at(j).1.surface() == s.surface())
            .last()
            .unwrap()
    }

    fn first_available_from(&self, from: usize) -> Option<usize> {
        (from..self.path.len()).find(|&j| !self.missing.contains(&self.at(j).0))
    }

    fn anchor(&self) -> (u8, Surface) {
        match (self.auto, self.last_site) {
            (true, Some((t, s))) => (t, s.surface()),
            _ => {
                let (t, s) = self.at(self.cursor);
                (t, s.surface())
            }
        }
    }

    /// The state after `action`, or `None` when the engine must refuse it.
    fn apply(&self, action: &Action) -> Option<Self> {
        let mut m = self.clone();
        match action {
            Action::Run(values) => {
                for &v in values {
                    let (t, s) = m.at(m.cursor);
                    if m.end || m.missing.contains(&t) {
                        return None;
                    }
                    if m.gm {
                        m.rec.insert((t, s), v);
                    } else {
                        m.pd.insert((t, s), v.unsigned_abs());
                    }
                    m.last_site = Some((t, s));
                    match m.first_available_from(m.cursor + 1) {
                        Some(j) => m.cursor = j,
                        None => m.end = true,
                    }
                    m.auto = true;
                }
            }
            Action::Mode(gm) => {
                m.gm = *gm;
                let start = m.group_start(m.cursor);
                if start != m.cursor || m.end {
                    m.cursor = start;
                    m.end = false;
                    m.auto = false;
                }
            }
            Action::Jump(t, surface) => {
                if m.missing.contains(t) {
                    return None;
                }
                m.cursor = (0..m.path.len())
                    .find(|&j| m.at(j).0 == *t && m.at(j).1.surface() == *surface)
                    .unwrap();
                m.end = false;
                m.auto = false;
            }
            Action::Missing | Action::MissingTooth(_) => {
                let t = match action {
                    Action::MissingTooth(t) => *t,
                    _ => m.at(m.cursor).0,
                };
                m.missing.insert(t);
                if m.missing.contains(&m.at(m.cursor).0) {
                    let start = m.group_start(m.cursor);
                    let next_group = (start..m.path.len())
                        .find(|&j| m.group_start(j) != start)
                        .unwrap_or(m.path.len());
                    match m.first_available_from(next_group) {
                        Some(j) => m.cursor = j,
                        None => m.end = true,
                    }
                    m.auto = true;
                }
            }
            Action::Flag(flag, scope) => {
                let sites: Vec<(u8, Site)> = match scope {
                    Scope::Bare => vec![m.last_site?],
                    _ => {
                        let (t, surface) = m.anchor();
                        let [ms, mid, d] = match surface {
                            Surface::F => [Site::MB, Site::B, Site::DB],
                            Surface::L => [Site::ML, Site::L, Site::DL],
                        };
                        match scope {
                            Scope::Interproximal => vec![(t, ms), (t, d)],
                            Scope::All => vec![(t, ms), (t, mid), (t, d)],
                            Scope::AllSix => Site::ALL.iter().map(|&s| (t, s)).collect(),
                            _ => vec![(t, Site::B)],
                        }
                    }
                };
                if sites.iter().any(|(t, _)| m.missing.contains(t)) {
                    return None;
                }
                m.flags
                    .extend(sites.into_iter().map(|(t, s)| (t, s, *flag)));
            }
            Action::Mobility(t, g) => {
                if m.missing.contains(t) {
                    return None;
                }
                m.mobility.insert(*t, *g);
            }
            Action::Furcation(t, g) => {
                if m.missing.contains(t) {
                    return None;
                }
                m.furcation.insert(*t, *g);
            }
            Action::Undo => unreachable!("undo is handled with the history"),
        }
        Some(m)
    }

    fn chart(&self) -> Chart {
        let mut c = Chart::new();
        let tooth = |n: u8| Tooth::new(n).unwrap();
        for (&(t, s), &v) in &self.pd {
            c.tooth_mut(tooth(t)).pd.set(s, Some(v));
        }
        for (&(t, s), &v) in &self.rec {
            c.tooth_mut(tooth(t)).recession.set(s, Some(v));
        }
        for &(t, s, f) in &self.flags {
            c.tooth_mut(tooth(t)).flags_mut(f).set(s, true);
        }
        for (&t, &g) in &self.mobility {
            c.tooth_mut(tooth(t)).mobility = Some(Mobility {
                grade: g,
                note: None,
            });
        }
        for (&t, &g) in &self.furcation {
            c.tooth_mut(tooth(t)).furcation.insert(
                Entrance::B,
                Furcation {
                    grade: g,
                    glickman_iv: false,
                },
            );
        }
        for &t in &self.missing {
            c.tooth_mut(tooth(t)).status = ToothStatus::Missing;
        }
        c.prune();
        c
    }
}

// ----- rendering ------------------------------------------------------------------------

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];

fn number(n: u8) -> String {
    match n {
        0..=19 => ONES[usize::from(n)].to_owned(),
        20 | 30 => (if n == 20 { "twenty" } else { "thirty" }).to_owned(),
        _ => format!(
            "{} {}",
            if n < 30 { "twenty" } else { "thirty" },
            ONES[usize::from(n % 10)]
        ),
    }
}

fn render(action: &Action, gm: bool) -> String {
    match action {
        Action::Run(values) => values
            .iter()
            .map(|&v| match (gm, v < 0) {
                (true, true) => format!("plus {}", number(v.unsigned_abs())),
                _ => number(v.unsigned_abs()),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Action::Mode(true) => "gingival margin".to_owned(),
        Action::Mode(false) => "pocket depths".to_owned(),
        Action::Jump(t, s) => format!(
            "jump to tooth {} {}",
            number(*t),
            if *s == Surface::F {
                "facial"
            } else {
                "lingual"
            }
        ),
        Action::Missing => "missing".to_owned(),
        Action::MissingTooth(t) => format!("tooth {} missing", number(*t)),
        Action::Flag(f, scope) => {
            let scope = match scope {
                Scope::Bare => "",
                Scope::Interproximal => " interproximal",
                Scope::All => " all",
                Scope::AllSix => " all six",
                Scope::Facial => " facial",
            };
            format!("{}{scope}", f.name())
        }
        Action::Mobility(t, g) => format!("mobility class {} on tooth {}", number(*g), number(*t)),
        Action::Furcation(t, g) => format!(
            "furcation on tooth {} buccal grade {}",
            number(*t),
            number(*g)
        ),
        Action::Undo => "undo".to_owned(),
    }
}

fn action() -> impl Strategy<Value = Action> {
    let tooth = 1u8..=32;
    let molar = prop::sample::select(vec![1u8, 2, 3, 14, 15, 16, 17, 18, 19, 30, 31, 32]);
    let flag = prop::sample::select(Flag::ALL.to_vec());
    let scope = prop_oneof![
        Just(Scope::Bare),
        Just(Scope::Interproximal),
        Just(Scope::All),
        Just(Scope::AllSix),
        Just(Scope::Facial)
    ];
    prop_oneof![
        8 => prop::collection::vec(-3i8..=12, 1..=6).prop_map(Action::Run),
        1 => any::<bool>().prop_map(Action::Mode),
        2 => (tooth.clone(), prop_oneof![Just(Surface::F), Just(Surface::L)]).prop_map(|(t, s)| Action::Jump(t, s)),
        1 => Just(Action::Missing),
        1 => tooth.clone().prop_map(Action::MissingTooth),
        2 => (flag, scope).prop_map(|(f, s)| Action::Flag(f, s)),
        1 => (tooth, 0u8..=3).prop_map(|(t, g)| Action::Mobility(t, g)),
        1 => (molar, 0u8..=3).prop_map(|(t, g)| Action::Furcation(t, g)),
        2 => Just(Action::Undo),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn spoken_sessions_build_the_same_chart_as_their_actions(actions in prop::collection::vec(action(), 1..40)) {
        let mut session = Session::default();
        let mut model = Model::new();
        let mut history: Vec<Model> = Vec::new();
        for a in &actions {
            let text = render(a, model.gm);
            let outcome = session.apply_final(&text);
            let expected = match a {
                Action::Undo => history.pop(),
                _ => model.apply(a).inspect(|_| history.push(model.clone())),
            };
            match expected {
                Some(next) => {
                    prop_assert_eq!(outcome.status, Status::Ok, "{:?} {:?}: {:?}", a, text, outcome);
                    model = next;
                }
                None => prop_assert_eq!(outcome.status, Status::Rejected, "{:?} {:?}: {:?}", a, text, outcome),
            }
            prop_assert_eq!(session.chart(), &model.chart(), "after {:?}", text);
            if !model.end {
                let (t, s) = model.at(model.cursor);
                prop_assert_eq!((session.cursor().tooth.number(), session.cursor().site), (t, s), "cursor after {:?}", text);
            }
        }
    }
}

// ----- (b) arbitrary input --------------------------------------------------------------

fn words() -> impl Strategy<Value = String> {
    let vocab: Vec<String> = perio::lexicon::lexicon()
        .entries()
        .map(|e| e.phrase.clone())
        .collect();
    let word = prop_oneof![
        4 => prop::sample::select(vocab),
        1 => "[a-z0-9:#.,'-]{1,6}",
        1 => Just(",".to_owned()),
    ];
    prop::collection::vec(word, 0..14).prop_map(|w| w.join(" "))
}

fn check_unchanged_unless_applied(mut session: Session, text: &str) -> Result<(), TestCaseError> {
    let before = session.clone();
    let outcome = session.apply_final(text);
    match outcome.status {
        Status::Rejected | Status::Ignored => {
            prop_assert_eq!(&session, &before, "{:?}: {:?}", text, outcome);
        }
        Status::NeedsConfirmation => {
            prop_assert_eq!(session.chart(), before.chart());
            prop_assert_eq!(session.nav(), before.nav());
            prop_assert_eq!(session.history(), before.history());
            prop_assert!(session.pending().is_some());
        }
        Status::Ok => {}
    }
    Ok(())
}

fn charted() -> Session {
    let mut s = Session::default();
    for f in [
        "three two three",
        "tooth three buccal four four five bleeding",
        "tooth five missing",
        "three fourteen four",
    ] {
        s.apply_final(f);
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_string_is_all_or_nothing(text in any::<String>()) {
        check_unchanged_unless_applied(Session::default(), &text)?;
        check_unchanged_unless_applied(charted(), &text)?;
    }

    #[test]
    fn any_word_salad_is_all_or_nothing(text in words()) {
        check_unchanged_unless_applied(Session::default(), &text)?;
        check_unchanged_unless_applied(charted(), &text)?;
    }
}
