//! Teeth: Universal numbers inside, Universal / FDI / Palmer labels outside (SPEC §1.1).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::chart::Entrance;

/// A permanent tooth, validated to Universal 1–32 when constructed or deserialized.
///
/// 1 is the maxillary right third molar, 16 the maxillary left third molar, 17 the
/// mandibular left third molar and 32 the mandibular right third molar (HL7
/// `ADAUniversalToothDesignationSystem`). Primary teeth are out of scope for perio, as in
/// Open Dental, whose API validates `IntTooth` to 1–32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Tooth(u8);

/// The dental arch of a tooth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// Maxilla, Universal 1–16.
    Upper,
    /// Mandible, Universal 17–32.
    Lower,
}

/// The patient's side of a tooth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Patient's right: Universal 1–8 and 25–32.
    Right,
    /// Patient's left: Universal 9–24.
    Left,
}

/// Tooth type, from the position counted from the midline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ToothKind {
    /// Positions 1 and 2.
    Incisor,
    /// Position 3.
    Canine,
    /// Positions 4 and 5.
    Premolar,
    /// Positions 6 to 8.
    Molar,
}

/// The numbering system a session speaks and displays (a session setting, never guessed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Numbering {
    /// Universal / ADA: 1–32.
    #[default]
    Universal,
    /// FDI / ISO 3950: quadrant digit + position digit, spoken digit by digit.
    Fdi,
    /// Palmer (Zsigmondy): quadrant + position, e.g. "upper right six".
    Palmer,
}

impl Tooth {
    /// Universal 1, the maxillary right third molar: where every path starts.
    pub const FIRST: Self = Self(1);

    /// The tooth with Universal number `n`, if `n` is in 1–32.
    #[must_use]
    pub const fn new(n: u8) -> Option<Self> {
        if n >= 1 && n <= 32 {
            Some(Self(n))
        } else {
            None
        }
    }

    /// The Universal number, 1–32.
    #[must_use]
    pub const fn number(self) -> u8 {
        self.0
    }

    /// Zero-based index (Universal number − 1), handy for fixed-size tables.
    #[must_use]
    pub const fn index(self) -> usize {
        self.0 as usize - 1
    }

    /// All 32 teeth in Universal order.
    pub fn all() -> impl Iterator<Item = Self> {
        (1..=32).map(Self)
    }

    /// Maxillary or mandibular.
    #[must_use]
    pub const fn arch(self) -> Arch {
        if self.0 <= 16 {
            Arch::Upper
        } else {
            Arch::Lower
        }
    }

    /// Patient's right or left half.
    #[must_use]
    pub const fn side(self) -> Side {
        if self.0 <= 8 || self.0 >= 25 {
            Side::Right
        } else {
            Side::Left
        }
    }

    /// FDI quadrant (1 UR, 2 UL, 3 LL, 4 LR) and position from the midline (1–8).
    ///
    /// Inverse of SPEC §1.1: q1 → 9−n, q2 → 8+n, q3 → 25−n, q4 → 24+n.
    #[must_use]
    pub const fn quadrant_position(self) -> (u8, u8) {
        match self.0 {
            1..=8 => (1, 9 - self.0),
            9..=16 => (2, self.0 - 8),
            17..=24 => (3, 25 - self.0),
            _ => (4, self.0 - 24),
        }
    }

    /// The tooth at FDI quadrant `q` (1–4) and position `n` (1–8).
    ///
    /// Checks from SPEC §1.1: FDI 18 → 1, 11 → 8, 38 → 17, 31 → 24, 41 → 25, 48 → 32.
    #[must_use]
    pub const fn from_quadrant_position(q: u8, n: u8) -> Option<Self> {
        if n < 1 || n > 8 {
            return None;
        }
        match q {
            1 => Some(Self(9 - n)),
            2 => Some(Self(8 + n)),
            3 => Some(Self(25 - n)),
            4 => Some(Self(24 + n)),
            _ => None,
        }
    }

    /// The two-digit FDI designation, e.g. 16 for Universal 3.
    #[must_use]
    pub const fn fdi(self) -> u8 {
        let (q, n) = self.quadrant_position();
        q * 10 + n
    }

    /// The tooth with FDI designation `code` (11–48, permanent teeth only).
    #[must_use]
    pub const fn from_fdi(code: u8) -> Option<Self> {
        Self::from_quadrant_position(code / 10, code % 10)
    }

    /// Incisor, canine, premolar or molar.
    #[must_use]
    pub const fn kind(self) -> ToothKind {
        match self.quadrant_position().1 {
            1 | 2 => ToothKind::Incisor,
            3 => ToothKind::Canine,
            4 | 5 => ToothKind::Premolar,
            _ => ToothKind::Molar,
        }
    }

    /// Whether the tooth is a molar.
    #[must_use]
    pub const fn is_molar(self) -> bool {
        matches!(self.kind(), ToothKind::Molar)
    }

    /// Furcation entrances by anatomy (SPEC §1.4 table).
    ///
    /// Maxillary molars: buccal, mesial (mesiopalatal), distal (distopalatal). Mandibular
    /// molars: buccal, lingual. Maxillary first premolars (5, 12): mesial, distal. Every
    /// other tooth: none (allowed only with `allow_unusual_furcation`).
    #[must_use]
    pub const fn furcation_entrances(self) -> &'static [Entrance] {
        match (self.arch(), self.quadrant_position().1) {
            (Arch::Upper, 6..=8) => &[Entrance::B, Entrance::M, Entrance::D],
            (Arch::Lower, 6..=8) => &[Entrance::B, Entrance::L],
            (Arch::Upper, 4) => &[Entrance::M, Entrance::D],
            _ => &[],
        }
    }

    /// The display label in a numbering system: `Universal 3`, `FDI 16`, `Palmer UR6`.
    #[must_use]
    pub fn label(self, numbering: Numbering) -> String {
        match numbering {
            Numbering::Universal => format!("Universal {}", self.0),
            Numbering::Fdi => format!("FDI {}", self.fdi()),
            Numbering::Palmer => {
                let (q, n) = self.quadrant_position();
                let quadrant = match q {
                    1 => "UR",
                    2 => "UL",
                    3 => "LL",
                    _ => "LR",
                };
                format!("Palmer {quadrant}{n}")
            }
        }
    }

    /// The number a clinician would say in `numbering` (Universal number or FDI code).
    /// Palmer sessions use the Universal number in warnings.
    #[must_use]
    pub const fn spoken_number(self, numbering: Numbering) -> u8 {
        match numbering {
            Numbering::Fdi => self.fdi(),
            Numbering::Universal | Numbering::Palmer => self.0,
        }
    }
}

impl TryFrom<u8> for Tooth {
    type Error = Error;

    fn try_from(n: u8) -> Result<Self, Error> {
        Self::new(n).ok_or(Error::BadTooth(n))
    }
}

impl From<Tooth> for u8 {
    fn from(t: Tooth) -> u8 {
        t.0
    }
}

impl fmt::Display for Tooth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdi_conversion_matches_spec_checks() {
        for (fdi, universal) in [
            (18, 1),
            (11, 8),
            (38, 17),
            (31, 24),
            (41, 25),
            (48, 32),
            (16, 3),
            (26, 14),
        ] {
            let tooth = Tooth::from_fdi(fdi).unwrap();
            assert_eq!(tooth.number(), universal, "FDI {fdi}");
            assert_eq!(tooth.fdi(), fdi, "round trip of FDI {fdi}");
        }
        for bad in [0, 10, 19, 50, 55, 49, 9] {
            assert_eq!(Tooth::from_fdi(bad), None, "FDI {bad}");
        }
    }

    #[test]
    fn every_tooth_round_trips_through_fdi() {
        for tooth in Tooth::all() {
            assert_eq!(Tooth::from_fdi(tooth.fdi()), Some(tooth));
        }
    }

    #[test]
    fn labels() {
        let t3 = Tooth::new(3).unwrap();
        assert_eq!(t3.label(Numbering::Universal), "Universal 3");
        assert_eq!(t3.label(Numbering::Fdi), "FDI 16");
        assert_eq!(t3.label(Numbering::Palmer), "Palmer UR6");
        assert_eq!(
            Tooth::new(14).unwrap().label(Numbering::Palmer),
            "Palmer UL6"
        );
    }

    #[test]
    fn anatomy() {
        let entrances = |n| Tooth::new(n).unwrap().furcation_entrances();
        assert_eq!(entrances(3), &[Entrance::B, Entrance::M, Entrance::D]);
        assert_eq!(entrances(14), &[Entrance::B, Entrance::M, Entrance::D]);
        assert_eq!(entrances(30), &[Entrance::B, Entrance::L]);
        assert_eq!(entrances(19), &[Entrance::B, Entrance::L]);
        assert_eq!(entrances(5), &[Entrance::M, Entrance::D]);
        assert_eq!(entrances(12), &[Entrance::M, Entrance::D]);
        for none in [4, 6, 8, 9, 13, 20, 22, 27, 29] {
            assert!(entrances(none).is_empty(), "tooth {none}");
        }
    }

    #[test]
    fn validation() {
        assert!(Tooth::new(0).is_none());
        assert!(Tooth::new(33).is_none());
        assert_eq!(
            serde_json::from_str::<Tooth>("33").unwrap_err().to_string(),
            "tooth 33 is not a Universal number 1-32"
        );
    }
}
