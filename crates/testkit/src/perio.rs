//! Synthetic full-mouth perio dictation: the finals a hygienist would say for a whole
//! chart, typed as text (SPEC grammar), from a seed. Nothing here is a real patient's chart.

/// The words for 0–9.
const DIGITS: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

/// A small deterministic generator (`SplitMix64`), so a seed always gives the same chart.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 0..n.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A probing depth: mostly 2–3 mm, some 4–5, a few 6–8.
    fn depth(&mut self) -> &'static str {
        let mm = match self.below(20) {
            0..=2 => 1,
            3..=12 => 2 + self.below(2),
            13..=17 => 4 + self.below(2),
            _ => 6 + self.below(3),
        };
        DIGITS
            .get(usize::try_from(mm).unwrap_or(0))
            .copied()
            .unwrap_or("three")
    }
}

/// The finals of a full-mouth exam: the third molars (1, 16, 17, 32) missing; every other
/// tooth's facial and lingual depths by tooth clause (`tooth 14 buccal three two four`), some
/// with a bleeding or suppuration mark after the depths; a few recessions, mobilities and
/// furcations. Each final applies on its own with status `ok` in a default session.
#[must_use]
pub fn full_mouth_finals(seed: u64) -> Vec<String> {
    let mut r = Mix(seed);
    let mut out = vec![
        "tooth one missing".to_owned(),
        "tooth sixteen missing".to_owned(),
        "teeth seventeen and thirty two missing".to_owned(),
    ];
    for tooth in (2..=15).chain(18..=31) {
        for surface in ["buccal", "lingual"] {
            let mut f = format!(
                "tooth {tooth} {surface} {} {} {}",
                r.depth(),
                r.depth(),
                r.depth()
            );
            match r.below(10) {
                0..=2 => f.push_str(" bleeding"),
                3 => f.push_str(" suppuration"),
                _ => {}
            }
            out.push(f);
        }
    }
    for (tooth, mm) in [("three", 2), ("eight", 1), ("fourteen", 3), ("nineteen", 2)] {
        out.push(format!(
            "recession {} on tooth {tooth} facial",
            DIGITS.get(mm).copied().unwrap_or("one")
        ));
    }
    out.push("tooth 8 mobility one".to_owned());
    out.push("tooth 24 mobility two".to_owned());
    out.push("furcation on tooth number three buccal grade one".to_owned());
    out.push("furcation on tooth number thirty buccal grade two".to_owned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 17 — every generated final charts on its own (status ok), the chart covers the
    // 28 present teeth on both surfaces, and the same seed gives the same finals.
    #[test]
    fn full_mouth_finals_apply() {
        let finals = full_mouth_finals(17);
        assert_eq!(finals, full_mouth_finals(17));
        assert_ne!(finals, full_mouth_finals(18));
        let mut s = perio::Session::default();
        for f in &finals {
            let o = s.apply_final(f);
            assert_eq!(o.status, perio::Status::Ok, "{f}: {:?}", o.reject);
        }
        let summary = s.summary();
        assert_eq!(summary.bop.examined_sites, 28 * 6);
        assert!(summary.sites_pd_ge_4 > 0);
        let missing = s
            .chart()
            .records()
            .filter(|(_, r)| r.status == perio::ToothStatus::Missing)
            .count();
        assert_eq!(missing, 4);
    }
}
