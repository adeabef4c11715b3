//! Sessions and charts in the JSON shapes of the SPEC fixtures (§6) and the command line:
//! a session built from a context object, and a chart read from or written to the fixture
//! chart shape.
//!
//! Input is checked, not trusted: an unknown context field, a value out of range or a
//! history final that does not apply cleanly is an [`Error`], never a partial session.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{MovedBy, Session, Settings};
use crate::Error;
use crate::chart::{Chart, Entrance, Furcation, Mobility, SiteSet, SiteValues, ToothStatus};
use crate::outcome::{Mode, SiteRef, Status};
use crate::path::Cursor;
use crate::tooth::Tooth;

impl Session {
    /// Builds a session from a fixture / CLI context: `C0` (SPEC §4.1) overridden by the
    /// given fields, an existing `chart`, and `history` finals applied in order.
    pub fn from_ctx(ctx: &serde_json::Value) -> Result<Self, Error> {
        let ctx = Context::deserialize(ctx).map_err(|e| Error::Context(e.to_string()))?;
        if let Some(key) = ctx.unknown.keys().next() {
            return Err(Error::Context(format!("unknown field {key:?}")));
        }
        let mut session = Self::new(ctx.settings);
        if let Some(chart) = &ctx.chart {
            session.chart = chart_from_json(chart)?;
        }
        for (tooth, status) in ctx.tooth_status {
            session.chart.tooth_mut(tooth).status = status;
        }
        session.chart.prune();
        session.nav.mode = ctx.mode;
        for (index, text) in ctx.history.iter().enumerate() {
            let outcome = session.apply_final(text);
            if outcome.status != Status::Ok {
                return Err(Error::History {
                    index,
                    text: text.clone(),
                    status: format!("{:?}", outcome.status),
                });
            }
        }
        if let Some(cursor) = ctx.cursor {
            session.nav.cursor = cursor;
            session.nav.end_of_path = false;
        }
        if let Some(last) = ctx.last_site {
            session.nav.last_site = last;
        }
        if let Some(moved) = ctx.cursor_moved_by {
            session.nav.cursor_moved_by = moved;
        }
        Ok(session)
    }
}

#[derive(Deserialize)]
struct Context {
    #[serde(flatten)]
    settings: Settings,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    cursor: Option<Cursor>,
    #[serde(default, deserialize_with = "present")]
    #[expect(
        clippy::option_option,
        reason = "an absent last_site keeps the history's, null clears it"
    )]
    last_site: Option<Option<SiteRef>>,
    #[serde(default)]
    tooth_status: BTreeMap<Tooth, ToothStatus>,
    #[serde(default)]
    chart: Option<serde_json::Value>,
    #[serde(default)]
    history: Vec<String>,
    #[serde(default)]
    cursor_moved_by: Option<MovedBy>,
    #[serde(flatten)]
    unknown: BTreeMap<String, serde_json::Value>,
}

/// Distinguishes `"last_site": null` (given, none) from an absent field.
#[expect(
    clippy::option_option,
    reason = "an absent last_site keeps the history's, null clears it"
)]
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<SiteRef>>, D::Error> {
    Option::<SiteRef>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToothInput {
    #[serde(default)]
    status: Option<ToothStatus>,
    #[serde(default)]
    pd: SiteValues<u8>,
    #[serde(default)]
    recession: SiteValues<i8>,
    #[serde(default)]
    kg_width: SiteValues<u8>,
    #[serde(default)]
    bleeding: SiteSet,
    #[serde(default)]
    suppuration: SiteSet,
    #[serde(default)]
    plaque: SiteSet,
    #[serde(default)]
    calculus: SiteSet,
    #[serde(default)]
    mobility: Option<u8>,
    #[serde(default)]
    furcation: BTreeMap<Entrance, u8>,
}

/// Reads a chart in the fixture shape (SPEC §6): `{"teeth": {"3": {...}}}` or just the
/// map of teeth; every field of a tooth is optional.
pub fn chart_from_json(value: &serde_json::Value) -> Result<Chart, Error> {
    let teeth = value.get("teeth").unwrap_or(value);
    let map: BTreeMap<Tooth, ToothInput> =
        BTreeMap::deserialize(teeth).map_err(|e| Error::Context(format!("chart: {e}")))?;
    let mut chart = Chart::new();
    for (tooth, input) in map {
        let bad = |what: &str| Error::Context(format!("chart: tooth {tooth}: {what} out of range"));
        if input.pd.iter().any(|(_, v)| v > 19) || input.kg_width.iter().any(|(_, v)| v > 19) {
            return Err(bad("pd/kg_width"));
        }
        if input.recession.iter().any(|(_, v)| !(-9..=19).contains(&v)) {
            return Err(bad("recession"));
        }
        if input.mobility.is_some_and(|m| m > 3) || input.furcation.values().any(|&g| g > 3) {
            return Err(bad("mobility/furcation"));
        }
        let r = chart.tooth_mut(tooth);
        r.status = input.status.unwrap_or_default();
        r.pd = input.pd;
        r.recession = input.recession;
        r.kg_width = input.kg_width;
        r.bleeding = input.bleeding;
        r.suppuration = input.suppuration;
        r.plaque = input.plaque;
        r.calculus = input.calculus;
        r.mobility = input.mobility.map(|grade| Mobility { grade, note: None });
        r.furcation = input
            .furcation
            .into_iter()
            .map(|(e, grade)| {
                (
                    e,
                    Furcation {
                        grade,
                        glickman_iv: false,
                    },
                )
            })
            .collect();
    }
    chart.prune();
    Ok(chart)
}

/// Writes a chart in the fixture shape of SPEC §6: only teeth with a recorded value or a
/// non-present status; `mobility` and `furcation` only when recorded.
#[must_use]
pub fn chart_to_json(chart: &Chart) -> serde_json::Value {
    let mut teeth = serde_json::Map::new();
    for (tooth, r) in chart.records() {
        let mut obj = serde_json::json!({
            "status": r.status,
            "pd": r.pd,
            "recession": r.recession,
            "kg_width": r.kg_width,
            "bleeding": r.bleeding,
            "suppuration": r.suppuration,
            "plaque": r.plaque,
            "calculus": r.calculus,
        });
        if let Some(map) = obj.as_object_mut() {
            if let Some(m) = &r.mobility {
                map.insert("mobility".into(), m.grade.into());
            }
            if !r.furcation.is_empty() {
                let f: serde_json::Map<String, serde_json::Value> = r
                    .furcation
                    .iter()
                    .map(|(e, f)| (e.name().to_owned(), f.grade.into()))
                    .collect();
                map.insert("furcation".into(), f.into());
            }
        }
        teeth.insert(tooth.to_string(), obj);
    }
    serde_json::json!({ "teeth": teeth })
}
