//! Full-mouth dictation benchmark: `cargo run --release -p perio --example bench`.
//!
//! Builds one session's worth of finals (all 192 sites by triplets along the default path,
//! bleeding marks, mobility and furcation: 70 finals), then on one thread times
//! * the engine: a fresh session, every final parsed, resolved and applied;
//! * parse only (tokenize + grammar, no session);
//! * tokenize only: the same-run baseline, so the figure reads as a ratio on any machine.
//!
//! Target (issue): under 1 ms per session. Synthetic data only.

use std::hint::black_box;
use std::time::{Duration, Instant};

use perio::parse::ParseSettings;
use perio::path::Route;
use perio::{ChartingPath, Session, Status};

const WORDS: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

/// 70 finals: 64 triplets (every fifth with "bleeding"), three mobility and three
/// furcation clauses.
fn full_mouth() -> Vec<String> {
    let route = Route::new(
        ChartingPath::MaxillaryFirst,
        perio::path::TripletOrder::Path,
    );
    let groups = route.sequence().len() / 3;
    let mut seed: u32 = 0x5eed;
    let mut depth = || {
        // A small LCG: deterministic synthetic depths 1–7, no patient data.
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        WORDS
            .get(1 + (seed >> 16) as usize % 7)
            .copied()
            .unwrap_or("three")
    };
    let mut finals: Vec<String> = (0..groups)
        .map(|g| {
            let mut f = format!("{} {} {}", depth(), depth(), depth());
            if g % 5 == 4 {
                f.push_str(" bleeding");
            }
            f
        })
        .collect();
    finals.extend(
        [
            "mobility class one on tooth three",
            "mobility class two on tooth twenty four",
            "tooth eight mobility one",
            "furcation on tooth three buccal grade one",
            "furcation on tooth fourteen mesial grade two",
            "furcation on tooth thirty buccal grade two",
        ]
        .map(String::from),
    );
    finals
}

fn time_per_iteration(mut f: impl FnMut(), budget: Duration) -> (Duration, u32) {
    for _ in 0..20 {
        f(); // warm-up
    }
    let mut iterations = 0u32;
    let start = Instant::now();
    while start.elapsed() < budget || iterations < 100 {
        f();
        iterations += 1;
    }
    (start.elapsed() / iterations, iterations)
}

fn main() {
    let finals = full_mouth();
    let mut check = Session::default();
    for f in &finals {
        let o = check.apply_final(f);
        assert_eq!(o.status, Status::Ok, "{f}: {o:?}");
    }
    let sites: usize = check
        .chart()
        .records()
        .map(|(_, r)| r.pd.iter().count())
        .sum();
    println!(
        "full-mouth session: {} finals, {sites} sites charted, one thread",
        finals.len()
    );

    let budget = Duration::from_secs(2);
    let (engine, n_engine) = time_per_iteration(
        || {
            let mut s = Session::default();
            for f in &finals {
                black_box(s.apply_final(black_box(f)));
            }
            black_box(s);
        },
        budget,
    );
    let settings = ParseSettings::default();
    let (parse_only, n_parse) = time_per_iteration(
        || {
            for f in &finals {
                black_box(perio::parse(black_box(f), settings));
            }
        },
        budget,
    );
    let (tokenize, n_tok) = time_per_iteration(
        || {
            for f in &finals {
                black_box(perio::token::tokenize(black_box(f)).ok());
            }
        },
        budget,
    );
    let n_finals = f64::from(u32::try_from(finals.len()).unwrap_or(u32::MAX));
    let per_final = |d: Duration| d.as_secs_f64() / n_finals;
    let line = |name: &str, d: Duration, n: u32| {
        println!(
            "{name:<34} {:>9.1} µs/session {:>12.0} finals/s  ({n} iterations)",
            d.as_secs_f64() * 1e6,
            1.0 / per_final(d)
        );
    };
    line("engine (parse + resolve + apply)", engine, n_engine);
    line("parse only", parse_only, n_parse);
    line("baseline: tokenize only", tokenize, n_tok);
    println!(
        "ratio engine / tokenize: {:.1}x; target < 1 ms per session: {}",
        engine.as_secs_f64() / tokenize.as_secs_f64(),
        if engine < Duration::from_millis(1) {
            "met"
        } else {
            "NOT met"
        }
    );
}
