//! Synthetic people for demos, tests and benchmarks. Never real PHI.
//!
//! Names combine invented surnames with common given names; phone numbers use the
//! 555-0100…0199 range reserved for fiction; email addresses use the `.invalid` top-level
//! domain (RFC 2606), so nothing generated here can reach a real person.

use chrono::NaiveDate;
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

const GIVEN: &[&str] = &[
    "Ada", "Bram", "Cleo", "Dario", "Edda", "Felix", "Greta", "Hugo", "Iris", "Jonas", "Kira",
    "Lev", "Mina", "Nils", "Oona", "Pavel", "Quinn", "Rosa", "Soren", "Tova", "Umar", "Vera",
    "Wren", "Xavi", "Yara", "Zeno",
];

// Invented surnames: none is a common real family name.
const FAMILY: &[&str] = &[
    "Quillfeather",
    "Brackenridge-Synth",
    "Moonvale",
    "Testwhistle",
    "Ashgrove-Fictus",
    "Pebblecombe",
    "Lanternfield",
    "Thistlewick",
    "Marrowdown",
    "Saltmarsh-Sample",
    "Fernhollow",
    "Copperkettle",
    "Driftwood-Demo",
    "Glimmerstone",
    "Hazelmere-Mock",
];

/// A generated patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticPatient {
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Date of birth.
    pub date_of_birth: NaiveDate,
    /// A phone number in the fictional 555-01xx range.
    pub phone: String,
    /// An address at a `.invalid` domain.
    pub email: String,
}

/// A deterministic generator (same seed, same people).
#[derive(Debug)]
pub struct Generator {
    rng: StdRng,
    serial: u32,
}

impl Generator {
    /// A generator seeded with `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            serial: 0,
        }
    }

    /// The next synthetic patient.
    pub fn patient(&mut self) -> SyntheticPatient {
        self.serial += 1;
        let given = (*GIVEN.choose(&mut self.rng).unwrap_or(&"Ada")).to_owned();
        let family = (*FAMILY.choose(&mut self.rng).unwrap_or(&"Quillfeather")).to_owned();
        let year = self.rng.gen_range(1940..2020);
        let month = self.rng.gen_range(1..=12);
        let day = self.rng.gen_range(1..=28);
        let date_of_birth = NaiveDate::from_ymd_opt(year, month, day).unwrap_or_default();
        let phone = format!("+1 555 01{:02}", self.rng.gen_range(0..100));
        let email = format!(
            "{}.{}.{}@patients.example.invalid",
            given.to_lowercase(),
            family.to_lowercase(),
            self.serial
        );
        SyntheticPatient {
            given_name: given,
            family_name: family,
            date_of_birth,
            phone,
            email,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_fictional() {
        let a: Vec<_> = (0..5)
            .map({
                let mut g = Generator::new(7);
                move |_| g.patient()
            })
            .collect();
        let b: Vec<_> = (0..5)
            .map({
                let mut g = Generator::new(7);
                move |_| g.patient()
            })
            .collect();
        assert_eq!(a, b);
        for p in &a {
            assert!(p.phone.starts_with("+1 555 01"));
            assert!(p.email.ends_with(".invalid"));
        }
    }
}
