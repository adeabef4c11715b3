//! The outcome of one final (SPEC §4): status, events, cursor, warnings, reject reason.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::chart::{Entrance, Flag, ToothStatus};
use crate::path::Cursor;
use crate::site::Site;
use crate::tooth::{Numbering, Tooth};

/// What a spoken value means (rule P5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Probing depths (default; Bola "a new chart defaults to pocket depths").
    #[default]
    Pd,
    /// Gingival margin, stored as recession (rules G1–G3).
    Gm,
    /// Mucogingival junction, stored as keratinized gingiva width (rule G4).
    Mgj,
    /// Mobility: voice values are refused in this mode (rule P5).
    Mobility,
    /// Furcation: voice values are refused in this mode (rule P5).
    Furcation,
}

impl Mode {
    /// Lower-case name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Pd => "pd",
            Self::Gm => "gm",
            Self::Mgj => "mgj",
            Self::Mobility => "mobility",
            Self::Furcation => "furcation",
        }
    }
}

/// Session commands (listening state and charting start / end markers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionAction {
    /// "start listening".
    StartListening,
    /// "stop listening".
    StopListening,
    /// "pause".
    Pause,
    /// "resume".
    Resume,
    /// "start charting".
    StartCharting,
    /// "done charting", "finish charting".
    DoneCharting,
}

/// What an undo reverts (rule C2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UndoScope {
    /// The previous final, as one transaction.
    LastFinal,
    /// One value, moving the cursor back (Open Dental Backspace).
    LastValue,
}

/// One change, in application order. Tooth numbers are always Universal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A probing depth.
    Pd {
        /// Tooth.
        tooth: Tooth,
        /// Site.
        site: Site,
        /// Millimetres, 0–19.
        mm: u8,
    },
    /// A recession value (positive = apical to the CEJ).
    Recession {
        /// Tooth.
        tooth: Tooth,
        /// Site.
        site: Site,
        /// Millimetres, −9…19.
        mm: i8,
    },
    /// A keratinized gingiva width.
    KgWidth {
        /// Tooth.
        tooth: Tooth,
        /// Site.
        site: Site,
        /// Millimetres, 0–19.
        mm: u8,
    },
    /// A finding set or cleared.
    Flag {
        /// Tooth.
        tooth: Tooth,
        /// Site.
        site: Site,
        /// Which finding.
        flag: Flag,
        /// Set (`true`) or cleared.
        on: bool,
    },
    /// Miller mobility.
    Mobility {
        /// Tooth.
        tooth: Tooth,
        /// Grade 0–3.
        grade: u8,
        /// `"+"` when said with "plus".
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Furcation grade at one entrance.
    Furcation {
        /// Tooth.
        tooth: Tooth,
        /// Entrance.
        entrance: Entrance,
        /// Grade 0–3.
        grade: u8,
        /// Said as Glickman IV.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        glickman_iv: bool,
    },
    /// A tooth status.
    ToothStatus {
        /// Tooth.
        tooth: Tooth,
        /// New status.
        status: ToothStatus,
    },
    /// An explicit cursor move.
    Cursor {
        /// Tooth.
        tooth: Tooth,
        /// Surface (from the site).
        surface: crate::site::Surface,
        /// Site.
        site: Site,
    },
    /// A mode switch.
    Mode {
        /// The new mode.
        mode: Mode,
    },
    /// An undo.
    Undo {
        /// What was undone.
        scope: UndoScope,
    },
    /// A session command.
    Session {
        /// Which one.
        action: SessionAction,
    },
}

impl Event {
    /// A cursor event for `cursor`.
    #[must_use]
    pub const fn cursor(cursor: Cursor) -> Self {
        Self::Cursor {
            tooth: cursor.tooth,
            surface: cursor.surface(),
            site: cursor.site,
        }
    }

    /// The tooth the event is about, if any.
    #[must_use]
    pub const fn tooth(&self) -> Option<Tooth> {
        match self {
            Self::Pd { tooth, .. }
            | Self::Recession { tooth, .. }
            | Self::KgWidth { tooth, .. }
            | Self::Flag { tooth, .. }
            | Self::Mobility { tooth, .. }
            | Self::Furcation { tooth, .. }
            | Self::ToothStatus { tooth, .. }
            | Self::Cursor { tooth, .. } => Some(*tooth),
            Self::Mode { .. } | Self::Undo { .. } | Self::Session { .. } => None,
        }
    }

    /// Whether the event writes a site value (what Backspace takes back).
    #[must_use]
    pub const fn is_value(&self) -> bool {
        matches!(
            self,
            Self::Pd { .. } | Self::Recession { .. } | Self::KgWidth { .. }
        )
    }

    /// The (tooth, site) a value event writes.
    #[must_use]
    pub const fn value_site(&self) -> Option<SiteRef> {
        match self {
            Self::Pd { tooth, site, .. }
            | Self::Recession { tooth, site, .. }
            | Self::KgWidth { tooth, site, .. } => Some(SiteRef {
                tooth: *tooth,
                site: *site,
            }),
            _ => None,
        }
    }

    /// A canonical, human-readable description for read-back (never the raw transcript).
    #[must_use]
    pub fn describe(&self, numbering: Numbering) -> String {
        let label = |t: &Tooth| t.label(numbering);
        match self {
            Self::Pd { tooth, site, mm } => format!("{} {site} depth {mm}", label(tooth)),
            Self::Recession { tooth, site, mm } => {
                format!("{} {site} recession {mm}", label(tooth))
            }
            Self::KgWidth { tooth, site, mm } => {
                format!("{} {site} keratinized {mm}", label(tooth))
            }
            Self::Flag {
                tooth,
                site,
                flag,
                on,
            } => {
                format!(
                    "{} {site} {}{}",
                    label(tooth),
                    if *on { "" } else { "no " },
                    flag.name()
                )
            }
            Self::Mobility { tooth, grade, note } => {
                format!(
                    "{} mobility {grade}{}",
                    label(tooth),
                    note.as_deref().unwrap_or("")
                )
            }
            Self::Furcation {
                tooth,
                entrance,
                grade,
                ..
            } => {
                format!(
                    "{} furcation {} grade {grade}",
                    label(tooth),
                    entrance.name()
                )
            }
            Self::ToothStatus { tooth, status } => format!("{} {}", label(tooth), status.name()),
            Self::Cursor {
                tooth,
                surface,
                site,
            } => format!("at {} {} {site}", label(tooth), surface.name()),
            Self::Mode { mode } => format!("mode {}", mode.name()),
            Self::Undo {
                scope: UndoScope::LastFinal,
            } => "undo".to_owned(),
            Self::Undo {
                scope: UndoScope::LastValue,
            } => "backspace".to_owned(),
            Self::Session { action } => format!("{action:?}").to_lowercase(),
        }
    }
}

/// A tooth and a site (`last_site`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SiteRef {
    /// Tooth.
    pub tooth: Tooth,
    /// Site.
    pub site: Site,
}

/// The status of a final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Applied completely.
    Ok,
    /// Held until confirmed (or declined, or re-dictated); nothing applied yet.
    NeedsConfirmation,
    /// Refused with a reason; nothing applied.
    Rejected,
    /// Conversation, not a command; nothing applied.
    Ignored,
}

/// Why a final was refused (SPEC §4 plus the two size limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// A digit string that is not one exact group (rule N3), or a decimal.
    ConcatenatedNumber,
    /// A two-digit numeral in display text (rule N2), or a stray clock token (N4).
    AmbiguousNumeral,
    /// A word outside the lexicon (rule A1).
    OutOfVocabulary,
    /// A value outside its range (mobility 0–3, recession −9…19, …).
    OutOfRange,
    /// A command with several vendor meanings ("skip", rule S1) or that cannot be placed.
    AmbiguousCommand,
    /// "minus"/"negative" before a GM value (rule G3).
    AmbiguousSign,
    /// Not a permanent tooth in the session numbering.
    BadTooth,
    /// A command missing a part (a flag with no site to attach to, a dangling "tooth" …).
    Incomplete,
    /// Furcation on a tooth without furcations (rule T2).
    NoFurcationOnTooth,
    /// Furcation entrance cannot be derived (rule T2).
    FurcationEntranceRequired,
    /// MGJ / keratinized gingiva on a palatal site (rule G4).
    NoMgjOnPalatal,
    /// A single digit word or a teen word as an FDI tooth (rule A3).
    FdiNeedsTwoDigits,
    /// The tooth is missing or skipped, or the path has ended.
    ToothNotAvailable,
    /// The final is longer than 4 KiB.
    TooLong,
    /// The final has more than 256 tokens.
    TooManyTokens,
}

impl RejectReason {
    /// The snake-case code.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::ConcatenatedNumber => "concatenated_number",
            Self::AmbiguousNumeral => "ambiguous_numeral",
            Self::OutOfVocabulary => "out_of_vocabulary",
            Self::OutOfRange => "out_of_range",
            Self::AmbiguousCommand => "ambiguous_command",
            Self::AmbiguousSign => "ambiguous_sign",
            Self::BadTooth => "bad_tooth",
            Self::Incomplete => "incomplete",
            Self::NoFurcationOnTooth => "no_furcation_on_tooth",
            Self::FurcationEntranceRequired => "furcation_entrance_required",
            Self::NoMgjOnPalatal => "no_mgj_on_palatal",
            Self::FdiNeedsTwoDigits => "fdi_needs_two_digits",
            Self::ToothNotAvailable => "tooth_not_available",
            Self::TooLong => "too_long",
            Self::TooManyTokens => "too_many_tokens",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A refusal: the reason and the words it is about (normalized tokens, never more than
/// the offending span).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// Why.
    pub reason: RejectReason,
    /// What was heard.
    pub heard: String,
}

impl Reject {
    /// A reject for `reason` about `heard`.
    pub fn new(reason: RejectReason, heard: impl Into<String>) -> Self {
        Self {
            reason,
            heard: heard.into(),
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.reason, self.heard)
    }
}

impl std::error::Error for Reject {}

/// A warning, rendered as the `kind:detail` strings of SPEC §4.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Warning {
    /// `homophone:for->4` (rule H4).
    Homophone {
        /// The word heard.
        word: String,
        /// The digit read.
        value: u8,
    },
    /// `digit_string_split:323->3,2,3` (rule N3).
    DigitStringSplit {
        /// The digit string.
        text: String,
    },
    /// `depth_over_12:14` (rule N5).
    DepthOverLimit {
        /// The session's `max_unconfirmed_depth`.
        limit: u8,
        /// The value.
        mm: u8,
    },
    /// `filler_dropped:um`.
    FillerDropped {
        /// The filler.
        word: String,
    },
    /// `repair:4->3`, `repair:tooth 14->15` (rule C1).
    Repair {
        /// Slot prefix (`""`, `"tooth "`, `"site "`, `"surface "`, `"grade "`).
        slot: &'static str,
        /// Replaced.
        from: String,
        /// Replacement.
        to: String,
    },
    /// `run_not_triplet` (rule P4).
    RunNotTriplet,
    /// `itn_clock:2:30->tooth 30` (rule N4).
    ItnClock {
        /// The clock token.
        clock: String,
        /// The tooth number it stood for.
        number: u8,
    },
    /// `ambiguous_tooth_number:twenty three|twenty + three` (rule A2).
    AmbiguousToothNumber {
        /// Tens word.
        tens: String,
        /// Unit word.
        unit: String,
    },
    /// `ambiguous_to_slot:two` ("jump two three": "two" as "to" or as tooth 2).
    AmbiguousToSlot,
    /// `glickman_iv:3` (rule T3).
    GlickmanIv {
        /// Tooth.
        tooth: u8,
    },
    /// `unusual_furcation:8` (rule T2 override).
    UnusualFurcation {
        /// Tooth.
        tooth: u8,
    },
    /// `cal_negative:3:DB` (SPEC §1.4: flag CAL < 0 as inconsistent).
    CalNegative {
        /// Tooth.
        tooth: u8,
        /// Site.
        site: Site,
    },
    /// `kgw_below_2:24:B` (KGW < 2 mm: mucogingival deformity).
    KgwBelow2 {
        /// Tooth.
        tooth: u8,
        /// Site.
        site: Site,
    },
    /// `end_of_path`: auto-advance reached the last site.
    EndOfPath,
    /// `paused`: the session is paused; only resume commands are heard.
    Paused,
    /// `status_over_values:3`: a tooth with recorded values was marked missing/skipped.
    StatusOverValues {
        /// Tooth.
        tooth: u8,
    },
    /// `pending_discarded`: a held final was dropped by a new final.
    PendingDiscarded,
    /// `confirmation_declined`.
    ConfirmationDeclined,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Homophone { word, value } => write!(f, "homophone:{word}->{value}"),
            Self::DigitStringSplit { text } => {
                let digits: Vec<String> = text.chars().map(String::from).collect();
                write!(f, "digit_string_split:{text}->{}", digits.join(","))
            }
            Self::DepthOverLimit { limit, mm } => write!(f, "depth_over_{limit}:{mm}"),
            Self::FillerDropped { word } => write!(f, "filler_dropped:{word}"),
            Self::Repair { slot, from, to } => write!(f, "repair:{slot}{from}->{to}"),
            Self::RunNotTriplet => f.write_str("run_not_triplet"),
            Self::ItnClock { clock, number } => write!(f, "itn_clock:{clock}->tooth {number}"),
            Self::AmbiguousToothNumber { tens, unit } => {
                write!(f, "ambiguous_tooth_number:{tens} {unit}|{tens} + {unit}")
            }
            Self::AmbiguousToSlot => f.write_str("ambiguous_to_slot:two"),
            Self::GlickmanIv { tooth } => write!(f, "glickman_iv:{tooth}"),
            Self::UnusualFurcation { tooth } => write!(f, "unusual_furcation:{tooth}"),
            Self::CalNegative { tooth, site } => write!(f, "cal_negative:{tooth}:{site}"),
            Self::KgwBelow2 { tooth, site } => write!(f, "kgw_below_2:{tooth}:{site}"),
            Self::EndOfPath => f.write_str("end_of_path"),
            Self::Paused => f.write_str("paused"),
            Self::StatusOverValues { tooth } => write!(f, "status_over_values:{tooth}"),
            Self::PendingDiscarded => f.write_str("pending_discarded"),
            Self::ConfirmationDeclined => f.write_str("confirmation_declined"),
        }
    }
}

impl Serialize for Warning {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One reading of an ambiguous final (rule A2).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alternative {
    /// The events this reading would apply.
    pub events: Vec<Event>,
    /// The cursor after it.
    pub cursor_after: Cursor,
    /// `last_site` after it.
    pub last_site: Option<SiteRef>,
    /// Warnings of this reading.
    pub warnings: Vec<Warning>,
}

/// Values derived after the final: CAL of the sites the final touched.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Derived {
    /// CAL by tooth (Universal, as a string key) and site.
    pub cal: BTreeMap<String, BTreeMap<Site, i16>>,
}

impl Derived {
    /// Whether nothing was derived.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.cal.is_empty()
    }
}

/// The outcome of one final (SPEC §4).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    /// ok, `needs_confirmation`, rejected or ignored.
    pub status: Status,
    /// Applied events (ok), held events (`needs_confirmation` from N5/F5), or none.
    pub events: Vec<Event>,
    /// The readings to choose from (`needs_confirmation` from A2).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Alternative>,
    /// Events an undo took back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reverts: Vec<Event>,
    /// The cursor after the final (or the held reading).
    pub cursor_after: Cursor,
    /// The most recently charted site after the final.
    pub last_site: Option<SiteRef>,
    /// Derived values.
    #[serde(skip_serializing_if = "Derived::is_empty")]
    pub derived: Derived,
    /// Warnings.
    pub warnings: Vec<Warning>,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject: Option<Reject>,
    /// Display labels of the teeth in the events, in the session numbering.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Canonical read-back of the events.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub echo: String,
}

impl Outcome {
    /// The outcome as a JSON value (SPEC §4 shape).
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_strings() {
        let cases: &[(Warning, &str)] = &[
            (
                Warning::Homophone {
                    word: "for".into(),
                    value: 4,
                },
                "homophone:for->4",
            ),
            (
                Warning::DigitStringSplit { text: "323".into() },
                "digit_string_split:323->3,2,3",
            ),
            (
                Warning::DepthOverLimit { limit: 12, mm: 14 },
                "depth_over_12:14",
            ),
            (
                Warning::Repair {
                    slot: "tooth ",
                    from: "14".into(),
                    to: "15".into(),
                },
                "repair:tooth 14->15",
            ),
            (
                Warning::ItnClock {
                    clock: "2:30".into(),
                    number: 30,
                },
                "itn_clock:2:30->tooth 30",
            ),
            (
                Warning::AmbiguousToothNumber {
                    tens: "twenty".into(),
                    unit: "three".into(),
                },
                "ambiguous_tooth_number:twenty three|twenty + three",
            ),
        ];
        for (w, s) in cases {
            assert_eq!(w.to_string(), *s);
        }
    }

    #[test]
    fn event_json() {
        let e = Event::Pd {
            tooth: Tooth::new(3).unwrap(),
            site: Site::DB,
            mm: 3,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"pd","tooth":3,"site":"DB","mm":3}"#
        );
        let f = Event::Furcation {
            tooth: Tooth::new(3).unwrap(),
            entrance: Entrance::B,
            grade: 2,
            glickman_iv: false,
        };
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"type":"furcation","tooth":3,"entrance":"B","grade":2}"#
        );
        let back: Event =
            serde_json::from_str(r#"{"type":"tooth_status","tooth":1,"status":"missing"}"#)
                .unwrap();
        assert_eq!(
            back,
            Event::ToothStatus {
                tooth: Tooth::new(1).unwrap(),
                status: ToothStatus::Missing
            }
        );
    }
}
