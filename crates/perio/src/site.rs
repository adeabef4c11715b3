//! The six probing sites and the two surfaces (SPEC §1.2).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A surface: facial (buccal on posterior teeth, labial on anterior teeth) or lingual
/// (palatal on the maxilla).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Surface {
    /// Facial / buccal / labial.
    F,
    /// Lingual / palatal.
    L,
}

/// One of the six probing sites, named as Open Dental's `PerioSurf` enum.
///
/// The declaration order (MB, B, DB, ML, L, DL) is the canonical order used for flag lists
/// and scope expansions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Site {
    /// Mesio-facial.
    MB,
    /// Mid-facial.
    B,
    /// Disto-facial.
    DB,
    /// Mesio-lingual.
    ML,
    /// Mid-lingual.
    L,
    /// Disto-lingual.
    DL,
}

/// The part of a surface a site sits on; spoken as a *half site* ("mesial", "mid",
/// "distal") and resolved against an anchor surface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Mesial (towards the midline).
    Mesial,
    /// Middle of the surface.
    Mid,
    /// Distal (away from the midline).
    Distal,
}

impl Surface {
    /// The other surface.
    #[must_use]
    pub const fn other(self) -> Self {
        match self {
            Self::F => Self::L,
            Self::L => Self::F,
        }
    }

    /// The three sites of the surface in canonical (M, mid, D) order.
    #[must_use]
    pub const fn sites(self) -> [Site; 3] {
        [
            Site::new(self, Part::Mesial),
            Site::new(self, Part::Mid),
            Site::new(self, Part::Distal),
        ]
    }

    /// Lower-case name used in echoes.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::F => "facial",
            Self::L => "lingual",
        }
    }
}

impl Site {
    /// All six sites in canonical order: MB, B, DB, ML, L, DL.
    pub const ALL: [Self; 6] = [Self::MB, Self::B, Self::DB, Self::ML, Self::L, Self::DL];

    /// The site on `surface` at `part`.
    #[must_use]
    pub const fn new(surface: Surface, part: Part) -> Self {
        match (surface, part) {
            (Surface::F, Part::Mesial) => Self::MB,
            (Surface::F, Part::Mid) => Self::B,
            (Surface::F, Part::Distal) => Self::DB,
            (Surface::L, Part::Mesial) => Self::ML,
            (Surface::L, Part::Mid) => Self::L,
            (Surface::L, Part::Distal) => Self::DL,
        }
    }

    /// The surface the site is on.
    #[must_use]
    pub const fn surface(self) -> Surface {
        match self {
            Self::MB | Self::B | Self::DB => Surface::F,
            Self::ML | Self::L | Self::DL => Surface::L,
        }
    }

    /// The part of the surface.
    #[must_use]
    pub const fn part(self) -> Part {
        match self {
            Self::MB | Self::ML => Part::Mesial,
            Self::B | Self::L => Part::Mid,
            Self::DB | Self::DL => Part::Distal,
        }
    }

    /// Position in the canonical order (0–5).
    #[must_use]
    pub const fn index(self) -> usize {
        match self {
            Self::MB => 0,
            Self::B => 1,
            Self::DB => 2,
            Self::ML => 3,
            Self::L => 4,
            Self::DL => 5,
        }
    }

    /// The abbreviation (`"MB"` … `"DL"`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::MB => "MB",
            Self::B => "B",
            Self::DB => "DB",
            Self::ML => "ML",
            Self::L => "L",
            Self::DL => "DL",
        }
    }

    /// Parses an abbreviation (`"MB"` … `"DL"`).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Surface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F => "F",
            Self::L => "L",
        })
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mesial => "mesial",
            Self::Mid => "mid",
            Self::Distal => "distal",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_parts_round_trip() {
        for site in Site::ALL {
            assert_eq!(Site::new(site.surface(), site.part()), site);
            assert_eq!(Site::ALL[site.index()], site);
            assert_eq!(Site::from_name(site.name()), Some(site));
        }
    }
}
