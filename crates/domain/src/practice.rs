//! A practice's settings: a closed, typed set.
//!
//! Settings reach the database only as a [`PracticeSettings`] value, so an unknown key, a value
//! of the wrong type, a control character or an oversized document is refused before anything
//! is stored, and every row of `practice.settings` can be read back by every job and command
//! (the schema checks the same shape: `practice_settings_shape` in migration 0014).
//!
//! # Syntax
//! A JSON object; every key is optional and a missing key takes its default:
//!
//! | key | values | default |
//! |---|---|---|
//! | `clinical_scope` | `"care_team"` (clinicians see their own patients), `"practice"` (every clinician sees every patient) | `"care_team"` |
//! | `time_zone` | an IANA time zone name (`"America/New_York"`): online booking's hours and the times in messages to clients | `UTC` |
//!
//! ```
//! use domain::practice::{ClinicalScope, PracticeSettings};
//! let s = PracticeSettings::parse(&serde_json::json!({"clinical_scope": "practice"})).unwrap();
//! assert_eq!(s.clinical_scope, ClinicalScope::Practice);
//! let e = PracticeSettings::parse(&serde_json::json!({"demo": "x"})).unwrap_err();
//! assert_eq!(e.to_string(), "settings: has an unknown key (known keys: clinical_scope, time_zone)");
//! ```

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::values::ValueError;

/// The largest settings document accepted, in bytes of its JSON text.
pub const MAX_SETTINGS_BYTES: usize = 4 * 1024;

/// The keys a settings object may have.
pub const KNOWN_KEYS: &[&str] = &["clinical_scope", "time_zone"];

/// Which clinicians see a patient's clinical records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClinicalScope {
    /// The patient's care team only (assigned clinician, a visit or an appointment with them).
    #[default]
    CareTeam,
    /// Every clinician of the practice.
    Practice,
}

/// A practice's settings (see the module docs for the syntax).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PracticeSettings {
    /// Which clinicians see clinical records.
    pub clinical_scope: ClinicalScope,
    /// The practice's time zone (an IANA name); UTC when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl PracticeSettings {
    /// Reads a settings document sent by a client. The error names the rule broken, never a
    /// key or value that was sent.
    pub fn parse(v: &serde_json::Value) -> Result<Self, ValueError> {
        const FIELD: &str = "settings";
        let Some(obj) = v.as_object() else {
            return Err(ValueError::new(FIELD, "must be a JSON object"));
        };
        if v.to_string().len() > MAX_SETTINGS_BYTES {
            return Err(ValueError::new(FIELD, "is too large (4 KiB at most)"));
        }
        if obj.keys().any(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            return Err(ValueError::new(
                FIELD,
                "has an unknown key (known keys: clinical_scope, time_zone)",
            ));
        }
        if let Some(tz) = obj.get("time_zone")
            && tz
                .as_str()
                .is_none_or(|t| t.parse::<chrono_tz::Tz>().is_err())
        {
            return Err(ValueError::new(
                "settings.time_zone",
                "must be an IANA time zone name (such as America/New_York)",
            ));
        }
        if let Some(scope) = obj.get("clinical_scope")
            && serde_json::from_value::<ClinicalScope>(scope.clone()).is_err()
        {
            return Err(ValueError::new(
                "settings.clinical_scope",
                "must be \"care_team\" or \"practice\"",
            ));
        }
        serde_json::from_value(v.clone())
            .map_err(|_| ValueError::new(FIELD, "does not match the settings schema"))
    }

    /// The practice's time zone (UTC when none is set).
    #[must_use]
    pub fn tz(&self) -> chrono_tz::Tz {
        self.time_zone
            .as_deref()
            .and_then(|t| t.parse().ok())
            .unwrap_or(chrono_tz::UTC)
    }

    /// The document as stored (every key written out, so the row says what is in force).
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[allow(clippy::needless_pass_by_value, reason = "one json! literal per case")]
    fn err(v: serde_json::Value) -> String {
        PracticeSettings::parse(&v).unwrap_err().to_string()
    }

    #[test]
    fn accepts_the_closed_set() {
        assert_eq!(
            PracticeSettings::parse(&json!({})).unwrap(),
            PracticeSettings::default()
        );
        let s = PracticeSettings::parse(&json!({"clinical_scope": "care_team"})).unwrap();
        assert_eq!(s.clinical_scope, ClinicalScope::CareTeam);
        assert_eq!(
            PracticeSettings::parse(&json!({"clinical_scope": "practice"}))
                .unwrap()
                .to_json(),
            json!({"clinical_scope": "practice"})
        );
    }

    #[test]
    fn refuses_everything_else_without_echoing_it() {
        // issue 14.1: the keys and values that stopped the installation.
        assert_eq!(
            err(json!({"demo": "x"})),
            "settings: has an unknown key (known keys: clinical_scope, time_zone)"
        );
        assert_eq!(
            err(json!({"x": "\u{0}"})),
            "settings: has an unknown key (known keys: clinical_scope, time_zone)"
        );
        assert_eq!(
            err(json!({"clinical_scope": "\u{0}"})),
            "settings.clinical_scope: must be \"care_team\" or \"practice\""
        );
        assert_eq!(
            err(json!({"clinical_scope": true})),
            "settings.clinical_scope: must be \"care_team\" or \"practice\""
        );
        assert_eq!(
            err(json!({"clinical_scope": null})),
            "settings.clinical_scope: must be \"care_team\" or \"practice\""
        );
        for bad in [
            json!({"time_zone": "Mars/Olympus"}),
            json!({"time_zone": 3}),
            json!({"time_zone": "x\u{0}"}),
        ] {
            assert_eq!(
                err(bad),
                "settings.time_zone: must be an IANA time zone name (such as America/New_York)"
            );
        }
        let s = PracticeSettings::parse(&json!({"time_zone": "America/New_York"})).unwrap();
        assert_eq!(s.tz(), chrono_tz::America::New_York);
        assert_eq!(PracticeSettings::default().tz(), chrono_tz::UTC);
        assert_eq!(err(json!([1])), "settings: must be a JSON object");
        assert_eq!(err(json!("practice")), "settings: must be a JSON object");
        let big = "x".repeat(MAX_SETTINGS_BYTES);
        assert_eq!(
            err(json!({ big: 1 })),
            "settings: is too large (4 KiB at most)"
        );
    }
}
