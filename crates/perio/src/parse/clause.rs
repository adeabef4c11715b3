//! What a reading is made of: the clauses of the SPEC §2 grammar and their parts.
//!
//! A clause says what was said, not where it lands: half sites ([`SiteSpec::Part`]) are
//! resolved against an anchor surface, digit strings ([`ValKind::Digits`]) split or
//! refused, and value ranges checked by the resolver against the session. What the parser
//! has already settled is settled for good: every [`Tooth`] is a valid Universal tooth
//! whatever the session numbering, and every `heard` holds the words of the final that a
//! rejection quotes.

use crate::chart::{Entrance, Flag, ToothStatus};
use crate::outcome::{Mode, SessionAction, UndoScope};
use crate::site::{Part, Site, Surface};
use crate::tooth::Tooth;

/// A spoken value: a number with an optional "plus"-type sign word, or a digit string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Val {
    /// The number.
    pub kind: ValKind,
    /// Said with "plus" / "coronal" / "hyperplasia" / … before it.
    pub plus: bool,
    /// Words heard.
    pub heard: String,
}

/// The number of a [`Val`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValKind {
    /// 0–19.
    Single(u8),
    /// A display digit string of three or more digits (rule N3), split or refused at
    /// resolution time against the cursor.
    Digits(String),
}

impl Val {
    /// The value as read back in a repair warning ("plus 2", "323").
    pub(super) fn spoken(&self) -> String {
        let n = match &self.kind {
            ValKind::Single(n) => n.to_string(),
            ValKind::Digits(d) => d.clone(),
        };
        if self.plus { format!("plus {n}") } else { n }
    }
}

/// A tooth as named in a final.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToothRef {
    /// The tooth.
    pub tooth: Tooth,
    /// Words heard.
    pub heard: String,
}

/// A site as spoken: full, or a half site resolved against an anchor surface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteSpec {
    /// "mesiobuccal", "d l", …
    Full(Site),
    /// "mesial", "mid", "distal", …
    Part(Part),
}

impl SiteSpec {
    /// The site on `surface` (full sites ignore it).
    #[must_use]
    pub const fn on(self, surface: Surface) -> Site {
        match self {
            Self::Full(s) => s,
            Self::Part(p) => Site::new(surface, p),
        }
    }
}

/// Values to write starting at a site (or at the first site when `site` is `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Where to start.
    pub site: Option<SiteSpec>,
    /// Values, filled along the path.
    pub values: Vec<Val>,
}

/// Scope of a flag (rule F4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Named sites.
    Sites(Vec<SiteSpec>),
    /// "all" / "all three" / "all facial": three sites of a surface.
    All(Option<Surface>),
    /// "all six", "whole tooth", "all sites".
    AllSix,
    /// "interproximal": M and D of the anchor surface.
    Interproximal,
    /// A bare surface: its mid site.
    Surface(Surface),
}

/// A furcation entrance as spoken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntranceSpec {
    /// Named entrance.
    Explicit(Entrance),
    /// A site word, mapped by rule T2.
    Site(Site),
}

/// A grade as spoken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grade {
    /// The number (4 for "class four" / "iv").
    pub value: u8,
    /// Words heard.
    pub heard: String,
}

/// How a cursor move was said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GotoKind {
    /// "tooth three …".
    Tooth,
    /// "jump to …", "go back to …".
    Nav,
    /// "select …".
    Select,
}

/// Bulk flag region (rule F5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// Quadrant 1–4.
    Quadrant(u8),
    /// Sextant 1–6.
    Sextant(u8),
}

/// One clause of a final.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Clause {
    /// A session command.
    Session(SessionAction),
    /// Undo / backspace.
    Undo {
        /// What to revert.
        scope: UndoScope,
        /// Words heard.
        heard: String,
    },
    /// A mode switch with optional tooth and values.
    Mode {
        /// The mode.
        mode: Mode,
        /// Optional tooth to move to.
        tooth: Option<ToothRef>,
        /// Values typed by the new mode.
        values: Vec<Val>,
    },
    /// A cursor move with optional values.
    Goto {
        /// How it was said.
        kind: GotoKind,
        /// The tooth.
        tooth: ToothRef,
        /// Named surface.
        surface: Option<Surface>,
        /// Values (possibly none).
        segments: Vec<Segment>,
    },
    /// "next [tooth|site]", "previous [tooth|site]".
    Step {
        /// Forward or back.
        forward: bool,
        /// Site (`true`) or tooth (`false`).
        site: bool,
    },
    /// "switch [to surface]", "flip", or a bare surface.
    Switch(Option<Surface>),
    /// "resume path".
    ResumePath,
    /// A value run at the cursor.
    Run(Vec<Val>),
    /// "recession two on tooth three distal".
    Spot {
        /// `Gm` or `Mgj`.
        mode: Mode,
        /// The value.
        value: Val,
        /// The tooth.
        tooth: ToothRef,
        /// Site or surface.
        place: Option<Place>,
    },
    /// A tooth status.
    Status {
        /// Named teeth, or the cursor tooth when `None`.
        teeth: Option<Vec<ToothRef>>,
        /// The status.
        status: ToothStatus,
    },
    /// Flags set or cleared.
    Flag {
        /// Which findings.
        flags: Vec<Flag>,
        /// Set or clear.
        on: bool,
        /// Scope.
        scope: Option<Scope>,
        /// "on tooth N".
        tooth: Option<ToothRef>,
    },
    /// Flags over a quadrant or sextant (needs confirmation).
    BulkFlag {
        /// Which findings.
        flags: Vec<Flag>,
        /// Set or clear.
        on: bool,
        /// Region.
        region: Region,
    },
    /// Mobility.
    Mobility {
        /// Grade.
        grade: Grade,
        /// Said with "plus".
        plus: bool,
        /// "on tooth N" (or tooth-first form).
        tooth: Option<ToothRef>,
    },
    /// Furcation.
    Furcation {
        /// Grade.
        grade: Grade,
        /// Entrance.
        entrance: Option<EntranceSpec>,
        /// "on tooth N".
        tooth: Option<ToothRef>,
    },
}

/// Where a spot value goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A surface (its mid site).
    Surface(Surface),
    /// A site.
    Site(SiteSpec),
}
