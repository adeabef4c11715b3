//! Session settings (SPEC §4.2) with the defaults of context `C0` (SPEC §4.1), and what
//! the parser and the cursor read from them.
//!
//! Every field has a default, so a stored or given settings object may name only what
//! differs; a setting is never guessed from what is said.

use serde::{Deserialize, Serialize};

use crate::chart::CalPolicy;
use crate::parse::ParseSettings;
use crate::path::{ChartingPath, Route, TripletOrder};
use crate::tooth::Numbering;

/// How display digit strings are treated (rule N3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitDigitStrings {
    /// Always refuse digit strings of three or more digits.
    Never,
    /// Split a string whose length equals the sites left in the current group (3 or 6).
    #[default]
    ExactGroup,
}

/// Homophone policy (rules H1–H4, SPEC §5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Homophones {
    /// Refuse homophones outright (the TypeScript prior art).
    Off,
    /// Read them as digits inside numeric runs only.
    #[default]
    RunOnly,
}

/// Compatibility switches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Compat {
    /// Open Dental's "plus N" = 10 + N in PD mode (rule N5).
    pub od_plus: bool,
}

/// Session settings (SPEC §4.2). Defaults are `C0` of SPEC §4.1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "SPEC §4.2 names these settings as independent booleans"
)]
pub struct Settings {
    /// Tooth numbering spoken and displayed.
    pub numbering: Numbering,
    /// Charting path.
    pub path: ChartingPath,
    /// Site order inside a surface.
    pub triplet_order: TripletOrder,
    /// Digit strings in display text.
    pub split_digit_strings: SplitDigitStrings,
    /// Homophone policy.
    pub homophones: Homophones,
    /// PD above this needs confirmation (rule N5; default 12).
    pub max_unconfirmed_depth: u8,
    /// Compatibility switches.
    pub compat: Compat,
    /// Flags need the "add"/"mark" prefix (Bola "add" mode).
    pub flag_prefix_required: bool,
    /// Auto-advance skips implants too.
    pub implants_as_missing: bool,
    /// Accept furcation on teeth without furcations (with a warning).
    pub allow_unusual_furcation: bool,
    /// Read back each applied final (TTS; headphones recommended).
    pub echo: bool,
    /// CAL when recession was never recorded.
    pub cal_policy: CalPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            numbering: Numbering::Universal,
            path: ChartingPath::MaxillaryFirst,
            triplet_order: TripletOrder::Path,
            split_digit_strings: SplitDigitStrings::ExactGroup,
            homophones: Homophones::RunOnly,
            max_unconfirmed_depth: 12,
            compat: Compat::default(),
            flag_prefix_required: false,
            implants_as_missing: false,
            allow_unusual_furcation: false,
            echo: false,
            cal_policy: CalPolicy::RequireRecession,
        }
    }
}

impl Settings {
    /// The settings the parser reads.
    #[must_use]
    pub const fn parse_settings(&self) -> ParseSettings {
        ParseSettings {
            numbering: self.numbering,
            homophones: matches!(self.homophones, Homophones::RunOnly),
            flag_prefix_required: self.flag_prefix_required,
        }
    }

    /// The route that moves the cursor.
    #[must_use]
    pub const fn route(&self) -> Route {
        Route::new(self.path, self.triplet_order)
    }
}
