//! The chart model (SPEC §1.4) and its derived values.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::site::Site;
use crate::tooth::Tooth;

/// Per-tooth status (SPEC §1.4). Auto-advance skips `missing` and `skipped` teeth, and
/// `implant` teeth only when the session sets `implants_as_missing`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToothStatus {
    /// Present and probed.
    #[default]
    Present,
    /// Missing: never probed, excluded from every derived value.
    Missing,
    /// Implant: probed unless `implants_as_missing`.
    Implant,
    /// Present but not probed (Open Dental `SkipTooth`); excluded from BOP %.
    Skipped,
}

impl ToothStatus {
    /// Lower-case name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Present => "present",
            Self::Missing => "missing",
            Self::Implant => "implant",
            Self::Skipped => "skipped",
        }
    }

    /// Whether the tooth counts in derived values and may be charted explicitly.
    #[must_use]
    pub const fn is_examined(self) -> bool {
        matches!(self, Self::Present | Self::Implant)
    }
}

/// A per-site boolean finding (Open Dental `BleedSupPlaqCalc` bits 1, 2, 4, 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// Bleeding on probing (SNOMED 86276007).
    Bleeding,
    /// Suppuration.
    Suppuration,
    /// Plaque (O'Leary, 0/1).
    Plaque,
    /// Calculus.
    Calculus,
}

impl Flag {
    /// All four flags.
    pub const ALL: [Self; 4] = [
        Self::Bleeding,
        Self::Suppuration,
        Self::Plaque,
        Self::Calculus,
    ];

    /// Lower-case name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Bleeding => "bleeding",
            Self::Suppuration => "suppuration",
            Self::Plaque => "plaque",
            Self::Calculus => "calculus",
        }
    }
}

/// A furcation entrance (SPEC §1.4 table). Stored per entrance; mapped to Open Dental's
/// per-surface cells as B → `Bvalue`, L → `Lvalue`, M → `MLvalue`, D → `DLvalue`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Entrance {
    /// Buccal (probed at the mid-facial site).
    B,
    /// Lingual, mandibular molars (probed at the mid-lingual site).
    L,
    /// Mesial (mesiopalatal on maxillary molars, probed at ML).
    M,
    /// Distal (distopalatal on maxillary molars, probed at DL).
    D,
}

impl Entrance {
    /// The grid site used to probe and store this entrance.
    #[must_use]
    pub const fn site(self) -> Site {
        match self {
            Self::B => Site::B,
            Self::L => Site::L,
            Self::M => Site::ML,
            Self::D => Site::DL,
        }
    }

    /// Abbreviation.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::B => "B",
            Self::L => "L",
            Self::M => "M",
            Self::D => "D",
        }
    }
}

/// Miller mobility of one tooth.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mobility {
    /// Grade 0–3.
    pub grade: u8,
    /// `"+"` when the clinician said "plus" after the grade (rule T1); Open Dental cannot
    /// show it, so it is kept only here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Furcation involvement at one entrance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Furcation {
    /// Hamp grade 0–3.
    pub grade: u8,
    /// Said as Glickman class IV (stored as grade 3, rule T3).
    #[serde(default, skip_serializing_if = "is_false")]
    pub glickman_iv: bool,
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde skip_serializing_if signature"
)]
const fn is_false(b: &bool) -> bool {
    !*b
}

/// One value per site (or none), serialized as a map `{"DB": 3, "B": 2}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SiteValues<T>([Option<T>; 6]);

impl<T: Copy> SiteValues<T> {
    /// The value at `site`.
    #[must_use]
    pub fn get(&self, site: Site) -> Option<T> {
        self.0.get(site.index()).copied().flatten()
    }

    /// Sets (or clears) the value at `site`, returning the previous value.
    pub fn set(&mut self, site: Site, value: Option<T>) -> Option<T> {
        self.0
            .get_mut(site.index())
            .and_then(|slot| std::mem::replace(slot, value))
    }

    /// Recorded values in canonical site order.
    pub fn iter(&self) -> impl Iterator<Item = (Site, T)> + '_ {
        Site::ALL
            .into_iter()
            .filter_map(|s| Some((s, self.get(s)?)))
    }

    /// Whether no site has a value.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

impl<T: Copy + Serialize> Serialize for SiteValues<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (site, v) in self.iter() {
            map.serialize_entry(site.name(), &v)?;
        }
        map.end()
    }
}

impl<'de, T: Copy + Deserialize<'de>> Deserialize<'de> for SiteValues<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Copy + Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = SiteValues<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from site (MB, B, DB, ML, L, DL) to a value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = SiteValues([None; 6]);
                while let Some((key, value)) = map.next_entry::<String, T>()? {
                    let site = Site::from_name(&key)
                        .ok_or_else(|| de::Error::custom(format!("unknown site {key:?}")))?;
                    out.set(site, Some(value));
                }
                Ok(out)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A set of sites, serialized as a list in canonical order (`["MB", "DB"]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SiteSet(u8);

impl SiteSet {
    /// Whether `site` is in the set.
    #[must_use]
    pub const fn contains(self, site: Site) -> bool {
        self.0 & (1 << site.index()) != 0
    }

    /// Adds or removes `site`, returning whether it was in the set before.
    pub fn set(&mut self, site: Site, on: bool) -> bool {
        let was = self.contains(site);
        if on {
            self.0 |= 1 << site.index();
        } else {
            self.0 &= !(1 << site.index());
        }
        was
    }

    /// Members in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Site> {
        Site::ALL.into_iter().filter(move |&s| self.contains(s))
    }

    /// Number of members.
    #[must_use]
    pub const fn len(self) -> u32 {
        self.0.count_ones()
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl Serialize for SiteSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len() as usize))?;
        for site in self.iter() {
            seq.serialize_element(site.name())?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for SiteSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SiteSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of sites")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SiteSet, A::Error> {
                let mut out = SiteSet::default();
                while let Some(name) = seq.next_element::<String>()? {
                    let site = Site::from_name(&name)
                        .ok_or_else(|| de::Error::custom(format!("unknown site {name:?}")))?;
                    out.set(site, true);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V)
    }
}

/// Everything recorded for one tooth.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ToothRecord {
    /// Present, missing, implant or skipped.
    pub status: ToothStatus,
    /// Probing depth, mm, 0–19.
    pub pd: SiteValues<u8>,
    /// Recession, mm, −9…19; positive = margin apical to the CEJ.
    pub recession: SiteValues<i8>,
    /// Keratinized gingiva width (MGJ), mm, 0–19; never on palatal sites.
    pub kg_width: SiteValues<u8>,
    /// Bleeding on probing.
    pub bleeding: SiteSet,
    /// Suppuration.
    pub suppuration: SiteSet,
    /// Plaque.
    pub plaque: SiteSet,
    /// Calculus.
    pub calculus: SiteSet,
    /// Miller mobility, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobility: Option<Mobility>,
    /// Furcation grade per entrance, when recorded.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub furcation: BTreeMap<Entrance, Furcation>,
}

impl ToothRecord {
    /// The set for `flag`.
    #[must_use]
    pub const fn flags(&self, flag: Flag) -> SiteSet {
        match flag {
            Flag::Bleeding => self.bleeding,
            Flag::Suppuration => self.suppuration,
            Flag::Plaque => self.plaque,
            Flag::Calculus => self.calculus,
        }
    }

    /// The mutable set for `flag`.
    pub const fn flags_mut(&mut self, flag: Flag) -> &mut SiteSet {
        match flag {
            Flag::Bleeding => &mut self.bleeding,
            Flag::Suppuration => &mut self.suppuration,
            Flag::Plaque => &mut self.plaque,
            Flag::Calculus => &mut self.calculus,
        }
    }

    /// Whether anything at all is recorded besides a `present` status.
    #[must_use]
    pub fn is_blank(&self) -> bool {
        self == &Self::default()
    }

    /// Whether any measurement or finding is recorded (status aside).
    #[must_use]
    pub fn has_values(&self) -> bool {
        !Self {
            status: ToothStatus::Present,
            ..self.clone()
        }
        .is_blank()
    }
}

/// How CAL treats a site whose recession was never recorded (SPEC §1.4, §5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalPolicy {
    /// CAL is `None` until recession is recorded (default; SPEC §5).
    #[default]
    RequireRecession,
    /// Treat unrecorded recession as 0, as some UIs do.
    AssumeZeroRecession,
}

/// A full-mouth chart: Universal teeth 1–32, only non-blank teeth stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chart {
    teeth: BTreeMap<Tooth, ToothRecord>,
}

/// Bleeding on probing as a ratio (BOP %).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BopRatio {
    /// Examined sites that bled.
    pub bleeding_sites: u16,
    /// Examined sites: sites with a probing depth or a bleeding mark on present or implant
    /// teeth (missing and skipped teeth excluded, as in Open Dental).
    pub examined_sites: u16,
}

impl BopRatio {
    /// The percentage, or `None` when no site was examined.
    #[must_use]
    pub fn percent(self) -> Option<f64> {
        (self.examined_sites > 0)
            .then(|| 100.0 * f64::from(self.bleeding_sites) / f64::from(self.examined_sites))
    }
}

/// Derived values of one tooth.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ToothSummary {
    /// The tooth (Universal).
    pub tooth: Tooth,
    /// Its status.
    pub status: ToothStatus,
    /// Deepest probing depth.
    pub max_pd: Option<u8>,
    /// Deepest clinical attachment level.
    pub max_cal: Option<i16>,
    /// CAL per site, where defined.
    pub cal: BTreeMap<Site, i16>,
    /// Sites with PD ≥ 4 mm.
    pub sites_pd_ge_4: u8,
    /// Sites with PD ≥ 6 mm.
    pub sites_pd_ge_6: u8,
    /// Bleeding sites.
    pub bleeding_sites: u8,
    /// Miller mobility grade.
    pub mobility: Option<u8>,
    /// Worst furcation grade.
    pub max_furcation: Option<u8>,
    /// Attached gingiva (KGW − PD) per site where both are recorded; negative means none.
    pub attached_gingiva: BTreeMap<Site, i16>,
}

/// Whole-chart derived values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChartSummary {
    /// BOP ratio.
    pub bop: BopRatio,
    /// BOP %, rounded to one decimal.
    pub bop_percent: Option<f64>,
    /// Sites with PD ≥ 4 mm on examined teeth.
    pub sites_pd_ge_4: usize,
    /// Sites with PD ≥ 6 mm on examined teeth.
    pub sites_pd_ge_6: usize,
    /// Per-tooth summaries of teeth with anything recorded.
    pub teeth: Vec<ToothSummary>,
}

impl Chart {
    /// An empty chart (every tooth present, nothing recorded).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The record of `tooth` (a blank record when nothing is stored).
    #[must_use]
    pub fn tooth(&self, tooth: Tooth) -> ToothRecord {
        self.teeth.get(&tooth).cloned().unwrap_or_default()
    }

    /// The status of `tooth`.
    #[must_use]
    pub fn status(&self, tooth: Tooth) -> ToothStatus {
        self.teeth.get(&tooth).map(|r| r.status).unwrap_or_default()
    }

    /// Probing depth at a site.
    #[must_use]
    pub fn pd(&self, tooth: Tooth, site: Site) -> Option<u8> {
        self.teeth.get(&tooth)?.pd.get(site)
    }

    /// Recession at a site.
    #[must_use]
    pub fn recession(&self, tooth: Tooth, site: Site) -> Option<i8> {
        self.teeth.get(&tooth)?.recession.get(site)
    }

    /// Mutable access to a tooth's record, created blank on first use. Blank records are
    /// pruned by [`Chart::prune`].
    pub fn tooth_mut(&mut self, tooth: Tooth) -> &mut ToothRecord {
        self.teeth.entry(tooth).or_default()
    }

    /// Drops blank records so equal charts compare and serialize equal.
    pub fn prune(&mut self) {
        self.teeth.retain(|_, r| !r.is_blank());
    }

    /// Teeth with anything recorded or a non-present status, in Universal order.
    pub fn records(&self) -> impl Iterator<Item = (Tooth, &ToothRecord)> {
        self.teeth
            .iter()
            .filter(|(_, r)| !r.is_blank())
            .map(|(t, r)| (*t, r))
    }

    /// CAL = PD + recession (SPEC §1.4), or `None` when either is missing (see
    /// [`CalPolicy`]).
    #[must_use]
    pub fn cal(&self, tooth: Tooth, site: Site, policy: CalPolicy) -> Option<i16> {
        cal_of(self.pd(tooth, site), self.recession(tooth, site), policy)
    }

    /// Bleeding on probing over examined sites.
    #[must_use]
    pub fn bop(&self) -> BopRatio {
        let mut ratio = BopRatio {
            bleeding_sites: 0,
            examined_sites: 0,
        };
        for (_, r) in self.examined() {
            for site in Site::ALL {
                if r.pd.get(site).is_some() || r.bleeding.contains(site) {
                    ratio.examined_sites += 1;
                    ratio.bleeding_sites += u16::from(r.bleeding.contains(site));
                }
            }
        }
        ratio
    }

    /// Number of sites with PD ≥ `mm` on present and implant teeth.
    #[must_use]
    pub fn sites_with_pd_at_least(&self, mm: u8) -> usize {
        self.examined()
            .flat_map(|(_, r)| r.pd.iter())
            .filter(|&(_, v)| v >= mm)
            .count()
    }

    fn examined(&self) -> impl Iterator<Item = (&Tooth, &ToothRecord)> {
        self.teeth.iter().filter(|(_, r)| r.status.is_examined())
    }

    /// Derived values of one tooth.
    #[must_use]
    pub fn tooth_summary(&self, tooth: Tooth, policy: CalPolicy) -> ToothSummary {
        let r = self.tooth(tooth);
        let cal: BTreeMap<Site, i16> = Site::ALL
            .into_iter()
            .filter_map(|s| Some((s, cal_of(r.pd.get(s), r.recession.get(s), policy)?)))
            .collect();
        let attached_gingiva = Site::ALL
            .into_iter()
            .filter_map(|s| Some((s, i16::from(r.kg_width.get(s)?) - i16::from(r.pd.get(s)?))))
            .collect();
        let count = |min: u8| {
            u8::try_from(r.pd.iter().filter(|&(_, v)| v >= min).count()).unwrap_or(u8::MAX)
        };
        ToothSummary {
            tooth,
            status: r.status,
            max_pd: r.pd.iter().map(|(_, v)| v).max(),
            max_cal: cal.values().copied().max(),
            cal,
            sites_pd_ge_4: count(4),
            sites_pd_ge_6: count(6),
            bleeding_sites: u8::try_from(r.bleeding.len()).unwrap_or(u8::MAX),
            mobility: r.mobility.as_ref().map(|m| m.grade),
            max_furcation: r.furcation.values().map(|f| f.grade).max(),
            attached_gingiva,
        }
    }

    /// Whole-chart derived values.
    #[must_use]
    pub fn summary(&self, policy: CalPolicy) -> ChartSummary {
        let bop = self.bop();
        ChartSummary {
            bop,
            bop_percent: bop.percent().map(|p| (p * 10.0).round() / 10.0),
            sites_pd_ge_4: self.sites_with_pd_at_least(4),
            sites_pd_ge_6: self.sites_with_pd_at_least(6),
            teeth: self
                .records()
                .map(|(t, _)| self.tooth_summary(t, policy))
                .collect(),
        }
    }
}

/// CAL from its parts under `policy`.
#[must_use]
pub fn cal_of(pd: Option<u8>, recession: Option<i8>, policy: CalPolicy) -> Option<i16> {
    let recession = match (recession, policy) {
        (Some(r), _) => r,
        (None, CalPolicy::AssumeZeroRecession) => 0,
        (None, CalPolicy::RequireRecession) => return None,
    };
    Some(i16::from(pd?) + i16::from(recession))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u8) -> Tooth {
        Tooth::new(n).unwrap()
    }

    #[test]
    fn cal_follows_spec_examples() {
        // SPEC §1.4: recession 2 with PD 4 gives CAL 6; recession −2 with PD 4 gives CAL 2.
        assert_eq!(
            cal_of(Some(4), Some(2), CalPolicy::RequireRecession),
            Some(6)
        );
        assert_eq!(
            cal_of(Some(4), Some(-2), CalPolicy::RequireRecession),
            Some(2)
        );
        assert_eq!(cal_of(Some(4), None, CalPolicy::RequireRecession), None);
        assert_eq!(
            cal_of(Some(4), None, CalPolicy::AssumeZeroRecession),
            Some(4)
        );
        assert_eq!(cal_of(None, Some(2), CalPolicy::AssumeZeroRecession), None);
    }

    #[test]
    fn bop_excludes_missing_and_skipped_teeth() {
        let mut chart = Chart::new();
        for (tooth, status) in [
            (2, ToothStatus::Present),
            (3, ToothStatus::Skipped),
            (4, ToothStatus::Implant),
        ] {
            let r = chart.tooth_mut(t(tooth));
            r.status = status;
            for site in Site::ALL {
                r.pd.set(site, Some(5));
            }
            r.bleeding.set(Site::MB, true);
        }
        let bop = chart.bop();
        assert_eq!(
            bop,
            BopRatio {
                bleeding_sites: 2,
                examined_sites: 12
            }
        );
        assert_eq!(
            chart.summary(CalPolicy::RequireRecession).bop_percent,
            Some(16.7)
        );
        assert_eq!(chart.sites_with_pd_at_least(4), 12);
        assert_eq!(chart.sites_with_pd_at_least(6), 0);
        assert_eq!(Chart::new().bop().percent(), None);
    }

    #[test]
    fn tooth_summary() {
        let mut chart = Chart::new();
        let r = chart.tooth_mut(t(24));
        r.pd.set(Site::B, Some(3));
        r.pd.set(Site::MB, Some(6));
        r.recession.set(Site::B, Some(2));
        r.kg_width.set(Site::B, Some(4));
        let s = chart.tooth_summary(t(24), CalPolicy::RequireRecession);
        assert_eq!(s.max_pd, Some(6));
        assert_eq!(s.cal, BTreeMap::from([(Site::B, 5)]));
        assert_eq!(s.attached_gingiva, BTreeMap::from([(Site::B, 1)]));
        assert_eq!((s.sites_pd_ge_4, s.sites_pd_ge_6), (1, 1));
    }

    #[test]
    fn record_json_shape() {
        let mut rec = ToothRecord::default();
        rec.pd.set(Site::DB, Some(3));
        rec.bleeding.set(Site::DB, true);
        rec.bleeding.set(Site::MB, true);
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(
            json,
            r#"{"status":"present","pd":{"DB":3},"recession":{},"kg_width":{},"bleeding":["MB","DB"],"suppuration":[],"plaque":[],"calculus":[]}"#
        );
        assert_eq!(serde_json::from_str::<ToothRecord>(&json).unwrap(), rec);
        let err = serde_json::from_str::<ToothRecord>(r#"{"pd":{"XB":3}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("unknown site \"XB\""), "{err}");
    }
}
