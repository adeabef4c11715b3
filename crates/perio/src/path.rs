//! Charting paths and the cursor (SPEC §1.2, §1.3, rule P1).
//!
//! A path is a sequence of *groups*. On the surface paths a group is the three sites of
//! one tooth surface; on [`ChartingPath::PerTooth`] it is all six sites of a tooth. Inside a
//! group the sites follow the direction of travel: moving from the patient's right to the
//! patient's left (Universal 1→16 upper, 32→17 lower), teeth in the patient's right half
//! are visited distal → mid → mesial and teeth in the left half mesial → mid → distal;
//! moving left → right reverses both. [`TripletOrder`] may override this per practice.

use serde::{Deserialize, Serialize};

use crate::site::{Part, Site, Surface};
use crate::tooth::{Arch, Side, Tooth};

/// The order in which auto-advance visits teeth and surfaces (SPEC §1.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartingPath {
    /// Open Dental v24 default: 1–16 facial → 16–1 lingual → 32–17 lingual → 17–32 facial.
    #[default]
    MaxillaryFirst,
    /// 1–16 facial → 17–32 facial → 32–17 lingual → 16–1 lingual.
    FacialsFirst,
    /// Older Open Dental manuals: 1–16 facial → 16–1 lingual → 32–17 facial → 17–32 lingual.
    ClassicOd,
    /// All six sites of a tooth, then the next tooth (1 → 32). Inside a tooth the facial
    /// sites come first in the direction of travel, then the lingual sites back round the
    /// tooth (e.g. tooth 3: DB, B, MB, ML, L, DL).
    PerTooth,
}

/// The order of the three sites of a surface (SPEC §4.2 `triplet_order`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TripletOrder {
    /// Follow the direction of the charting path (Open Dental, Bola).
    #[default]
    Path,
    /// Always mesial → mid → distal.
    MesialFirst,
    /// Always distal → mid → mesial.
    DistalFirst,
}

/// Where the next value goes: a tooth and one of its sites (the surface is the site's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The tooth.
    pub tooth: Tooth,
    /// The site; its surface is the cursor's surface.
    pub site: Site,
}

impl Cursor {
    /// The cursor's surface.
    #[must_use]
    pub const fn surface(self) -> Surface {
        self.site.surface()
    }
}

impl Default for Cursor {
    /// SPEC §4.1 `C0`: tooth 1, facial, DB.
    fn default() -> Self {
        Self {
            tooth: Tooth::FIRST,
            site: Site::DB,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct CursorRepr {
    tooth: Tooth,
    surface: Surface,
    site: Site,
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        CursorRepr {
            tooth: self.tooth,
            surface: self.surface(),
            site: self.site,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let repr = CursorRepr::deserialize(d)?;
        if repr.site.surface() != repr.surface {
            return Err(serde::de::Error::custom(format!(
                "cursor site {} is not on surface {}",
                repr.site, repr.surface
            )));
        }
        Ok(Self {
            tooth: repr.tooth,
            site: repr.site,
        })
    }
}

/// A path with its triplet order: the object that moves cursors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    path: ChartingPath,
    order: TripletOrder,
}

/// The sites of one group, in visiting order.
#[derive(Clone, Copy, Debug)]
struct Group {
    tooth: Tooth,
    sites: [Site; 6],
    len: usize,
}

impl Group {
    fn sites(&self) -> &[Site] {
        self.sites.get(..self.len).unwrap_or(&[])
    }
}

/// Surface passes as (surface, first tooth, last tooth).
const fn passes(path: ChartingPath) -> [(Surface, u8, u8); 4] {
    match path {
        ChartingPath::MaxillaryFirst | ChartingPath::PerTooth => [
            (Surface::F, 1, 16),
            (Surface::L, 16, 1),
            (Surface::L, 32, 17),
            (Surface::F, 17, 32),
        ],
        ChartingPath::FacialsFirst => [
            (Surface::F, 1, 16),
            (Surface::F, 17, 32),
            (Surface::L, 32, 17),
            (Surface::L, 16, 1),
        ],
        ChartingPath::ClassicOd => [
            (Surface::F, 1, 16),
            (Surface::L, 16, 1),
            (Surface::F, 32, 17),
            (Surface::L, 17, 32),
        ],
    }
}

impl Route {
    /// A route for `path` with `order`.
    #[must_use]
    pub const fn new(path: ChartingPath, order: TripletOrder) -> Self {
        Self { path, order }
    }

    fn group_count(self) -> usize {
        match self.path {
            ChartingPath::PerTooth => 32,
            _ => 64,
        }
    }

    /// The parts of a surface in visiting order for `tooth` travelling right → left or not.
    fn parts(self, tooth: Tooth, right_to_left: bool) -> [Part; 3] {
        const D_FIRST: [Part; 3] = [Part::Distal, Part::Mid, Part::Mesial];
        const M_FIRST: [Part; 3] = [Part::Mesial, Part::Mid, Part::Distal];
        match self.order {
            TripletOrder::MesialFirst => M_FIRST,
            TripletOrder::DistalFirst => D_FIRST,
            TripletOrder::Path => match (tooth.side(), right_to_left) {
                (Side::Right, true) | (Side::Left, false) => D_FIRST,
                (Side::Left, true) | (Side::Right, false) => M_FIRST,
            },
        }
    }

    fn group(self, idx: usize) -> Option<Group> {
        if self.path == ChartingPath::PerTooth {
            let tooth = Tooth::new(u8::try_from(idx + 1).ok()?)?;
            let rtl = tooth.arch() == Arch::Upper;
            let facial = self.parts(tooth, rtl);
            let lingual = match self.order {
                TripletOrder::Path => [facial[2], facial[1], facial[0]],
                _ => facial,
            };
            let mut sites = [Site::MB; 6];
            for (slot, part) in sites.iter_mut().zip(facial) {
                *slot = Site::new(Surface::F, part);
            }
            for (slot, part) in sites.iter_mut().skip(3).zip(lingual) {
                *slot = Site::new(Surface::L, part);
            }
            return Some(Group {
                tooth,
                sites,
                len: 6,
            });
        }
        let (surface, from, to) = *passes(self.path).get(idx / 16)?;
        let k = u8::try_from(idx % 16).ok()?;
        let ascending = from < to;
        let tooth = Tooth::new(if ascending { from + k } else { from - k })?;
        let rtl = (tooth.arch() == Arch::Upper) == ascending;
        let mut sites = [Site::MB; 6];
        for (slot, part) in sites.iter_mut().zip(self.parts(tooth, rtl)) {
            *slot = Site::new(surface, part);
        }
        Some(Group {
            tooth,
            sites,
            len: 3,
        })
    }

    fn group_index(self, tooth: Tooth, surface: Surface) -> Option<usize> {
        if self.path == ChartingPath::PerTooth {
            return Some(tooth.index());
        }
        let n = tooth.number();
        passes(self.path)
            .iter()
            .enumerate()
            .find_map(|(p, &(s, from, to))| {
                let (lo, hi) = if from < to { (from, to) } else { (to, from) };
                (s == surface && (lo..=hi).contains(&n))
                    .then(|| p * 16 + usize::from(n.abs_diff(from)))
            })
    }

    fn locate(self, cursor: Cursor) -> Option<(usize, usize)> {
        let g = self.group_index(cursor.tooth, cursor.surface())?;
        let pos = self
            .group(g)?
            .sites()
            .iter()
            .position(|&s| s == cursor.site)?;
        Some((g, pos))
    }

    /// The first site of `surface` on `tooth` in path order (rule P3).
    #[must_use]
    pub fn first_site(self, tooth: Tooth, surface: Surface) -> Cursor {
        let site = self
            .group_index(tooth, surface)
            .and_then(|g| self.group(g))
            .and_then(|g| g.sites().iter().copied().find(|s| s.surface() == surface))
            .unwrap_or_else(|| Site::new(surface, Part::Distal));
        Cursor { tooth, site }
    }

    /// Whether `cursor` is the first site of its tooth's group (used by rule P4).
    #[must_use]
    pub fn is_group_start(self, cursor: Cursor) -> bool {
        self.locate(cursor).is_some_and(|(_, pos)| pos == 0)
    }

    /// Sites left in the cursor's group, the cursor's own site included (rule N3).
    #[must_use]
    pub fn remaining_in_group(self, cursor: Cursor) -> usize {
        self.locate(cursor)
            .and_then(|(g, pos)| Some(self.group(g)?.len - pos))
            .unwrap_or(0)
    }

    /// Size of a group: 3 on the surface paths, 6 on the per-tooth path.
    #[must_use]
    pub const fn group_size(self) -> usize {
        match self.path {
            ChartingPath::PerTooth => 6,
            _ => 3,
        }
    }

    /// The next available site after `cursor` in path order, or `None` at the end.
    pub fn advance(
        self,
        cursor: Cursor,
        available: impl Fn(Tooth, Site) -> bool,
    ) -> Option<Cursor> {
        let (g0, pos0) = self.locate(cursor)?;
        (g0..self.group_count()).find_map(|g| {
            let group = self.group(g)?;
            let skip = if g == g0 { pos0 + 1 } else { 0 };
            let site = group
                .sites()
                .iter()
                .skip(skip)
                .copied()
                .find(|&s| available(group.tooth, s))?;
            Some(Cursor {
                tooth: group.tooth,
                site,
            })
        })
    }

    /// The previous available site before `cursor`, or `None` at the start.
    pub fn retreat(
        self,
        cursor: Cursor,
        available: impl Fn(Tooth, Site) -> bool,
    ) -> Option<Cursor> {
        let (g0, pos0) = self.locate(cursor)?;
        (0..=g0).rev().find_map(|g| {
            let group = self.group(g)?;
            let take = if g == g0 { pos0 } else { group.len };
            let site = group
                .sites()
                .iter()
                .take(take)
                .rev()
                .copied()
                .find(|&s| available(group.tooth, s))?;
            Some(Cursor {
                tooth: group.tooth,
                site,
            })
        })
    }

    /// The first available site of the next group that has one (next tooth).
    pub fn next_group(
        self,
        cursor: Cursor,
        available: impl Fn(Tooth, Site) -> bool,
    ) -> Option<Cursor> {
        let (g0, _) = self.locate(cursor)?;
        (g0 + 1..self.group_count()).find_map(|g| self.first_available(g, &available))
    }

    /// The first available site of the previous group that has one (previous tooth).
    pub fn prev_group(
        self,
        cursor: Cursor,
        available: impl Fn(Tooth, Site) -> bool,
    ) -> Option<Cursor> {
        let (g0, _) = self.locate(cursor)?;
        (0..g0)
            .rev()
            .find_map(|g| self.first_available(g, &available))
    }

    fn first_available(self, g: usize, available: &impl Fn(Tooth, Site) -> bool) -> Option<Cursor> {
        let group = self.group(g)?;
        let site = group
            .sites()
            .iter()
            .copied()
            .find(|&s| available(group.tooth, s))?;
        Some(Cursor {
            tooth: group.tooth,
            site,
        })
    }

    /// Every site of the path in order (192 cursors); for tests and tools.
    #[must_use]
    pub fn sequence(self) -> Vec<Cursor> {
        (0..self.group_count())
            .filter_map(|g| self.group(g))
            .flat_map(|g| {
                g.sites()
                    .iter()
                    .map(move |&site| Cursor {
                        tooth: g.tooth,
                        site,
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(tooth: u8, site: Site) -> Cursor {
        Cursor {
            tooth: Tooth::new(tooth).unwrap(),
            site,
        }
    }

    const ALL: fn(Tooth, Site) -> bool = |_, _| true;

    #[test]
    fn every_path_visits_each_site_once() {
        for path in [
            ChartingPath::MaxillaryFirst,
            ChartingPath::FacialsFirst,
            ChartingPath::ClassicOd,
            ChartingPath::PerTooth,
        ] {
            for order in [
                TripletOrder::Path,
                TripletOrder::MesialFirst,
                TripletOrder::DistalFirst,
            ] {
                let route = Route::new(path, order);
                let seq = route.sequence();
                assert_eq!(seq.len(), 192, "{path:?}");
                let mut seen = std::collections::HashSet::new();
                for w in seq.windows(2) {
                    assert_eq!(
                        route.advance(w[0], ALL),
                        Some(w[1]),
                        "{path:?} {order:?} after {:?}",
                        w[0]
                    );
                    assert_eq!(
                        route.retreat(w[1], ALL),
                        Some(w[0]),
                        "{path:?} {order:?} before {:?}",
                        w[1]
                    );
                }
                for cur in &seq {
                    assert!(seen.insert(*cur), "{path:?} visits {cur:?} twice");
                }
                assert_eq!(route.advance(*seq.last().unwrap(), ALL), None);
            }
        }
    }

    #[test]
    fn maxillary_first_site_orders_match_spec_examples() {
        let r = Route::new(ChartingPath::MaxillaryFirst, TripletOrder::Path);
        let seq = r.sequence();
        // 1–16 facial: tooth 1 D→mid→M, then tooth 9 M→mid→D (example #5).
        assert_eq!(&seq[..3], &[c(1, Site::DB), c(1, Site::B), c(1, Site::MB)]);
        assert_eq!(
            &seq[24..27],
            &[c(9, Site::MB), c(9, Site::B), c(9, Site::DB)]
        );
        // 16–1 palatal: tooth 16 D first; tooth 3 M first (examples #2, #8).
        assert_eq!(seq[48], c(16, Site::DL));
        assert_eq!(
            r.first_site(Tooth::new(3).unwrap(), Surface::L),
            c(3, Site::ML)
        );
        assert_eq!(
            r.first_site(Tooth::new(14).unwrap(), Surface::L),
            c(14, Site::DL)
        );
        // 32–17 lingual then 17–32 facial (examples #10, #39).
        assert_eq!(seq[96], c(32, Site::DL));
        assert_eq!(seq[144], c(17, Site::DB));
        assert_eq!(
            r.first_site(Tooth::new(30).unwrap(), Surface::F),
            c(30, Site::MB)
        );
        assert_eq!(
            r.first_site(Tooth::new(23).unwrap(), Surface::F),
            c(23, Site::DB)
        );
        assert_eq!(seq[191], c(32, Site::DB));
    }

    #[test]
    fn other_paths() {
        let ff = Route::new(ChartingPath::FacialsFirst, TripletOrder::Path).sequence();
        assert_eq!(ff[48], c(17, Site::DB));
        assert_eq!(ff[96], c(32, Site::DL));
        assert_eq!(ff[191], c(1, Site::DL));
        let od = Route::new(ChartingPath::ClassicOd, TripletOrder::Path).sequence();
        assert_eq!(od[96], c(32, Site::DB));
        assert_eq!(od[144], c(17, Site::DL));
        let pt = Route::new(ChartingPath::PerTooth, TripletOrder::Path).sequence();
        assert_eq!(
            &pt[..6],
            &[
                c(1, Site::DB),
                c(1, Site::B),
                c(1, Site::MB),
                c(1, Site::ML),
                c(1, Site::L),
                c(1, Site::DL)
            ]
        );
        let mesial = Route::new(ChartingPath::MaxillaryFirst, TripletOrder::MesialFirst).sequence();
        assert_eq!(
            &mesial[..3],
            &[c(1, Site::MB), c(1, Site::B), c(1, Site::DB)]
        );
    }

    #[test]
    fn skipping_unavailable_teeth() {
        let r = Route::new(ChartingPath::MaxillaryFirst, TripletOrder::Path);
        let no_2_or_3 = |t: Tooth, _| !matches!(t.number(), 2 | 3);
        assert_eq!(r.advance(c(1, Site::MB), no_2_or_3), Some(c(4, Site::DB)));
        assert_eq!(r.next_group(c(1, Site::B), no_2_or_3), Some(c(4, Site::DB)));
        assert_eq!(r.prev_group(c(4, Site::B), no_2_or_3), Some(c(1, Site::DB)));
        assert_eq!(r.remaining_in_group(c(4, Site::B)), 2);
        assert!(r.is_group_start(c(4, Site::DB)));
        assert!(!r.is_group_start(c(4, Site::MB)));
    }

    #[test]
    fn cursor_json_checks_surface() {
        let cur: Cursor = serde_json::from_str(r#"{"tooth":3,"surface":"L","site":"ML"}"#).unwrap();
        assert_eq!(cur, c(3, Site::ML));
        let err =
            serde_json::from_str::<Cursor>(r#"{"tooth":3,"surface":"F","site":"ML"}"#).unwrap_err();
        assert_eq!(err.to_string(), "cursor site ML is not on surface F");
    }
}
