//! Findings: tooth statuses (rule S1), flags with their scopes and anchors (F1–F5), and
//! furcation entrances and grades (T2–T3). Mobility (T1) is one event, written in the
//! clause dispatch.
//!
//! Flags are set or cleared, never toggled; a flag with nowhere to go is incomplete; bulk
//! flags are held for confirmation; a furcation entrance is derived from the anatomy or
//! else required, and Glickman IV is stored as grade 3 with a warning.

use super::Res;
use super::overlay::Write;
use super::work::{Focus, Work};
use crate::chart::{Entrance, Flag, ToothStatus};
use crate::outcome::{Event, Reject, RejectReason, Warning};
use crate::parse::{EntranceSpec, Region, Scope, ToothRef};
use crate::site::{Part, Site, Surface};
use crate::tooth::{Arch, Tooth};

impl Work<'_> {
    pub(super) fn set_status(&mut self, teeth: Option<&[ToothRef]>, status: ToothStatus) {
        let targets: Vec<Tooth> = match teeth {
            Some(list) => list.iter().map(|r| r.tooth).collect(),
            None => vec![self.nav.cursor.tooth],
        };
        let mut done: Vec<Tooth> = Vec::new();
        for t in targets {
            if done.contains(&t) {
                continue;
            }
            done.push(t);
            if matches!(status, ToothStatus::Missing | ToothStatus::Skipped)
                && self.s.chart().tooth(t).has_values()
            {
                self.warnings
                    .push(Warning::StatusOverValues { tooth: t.number() });
            }
            self.events.push(Event::ToothStatus { tooth: t, status });
            self.writes.push(Write::Status(t, status));
        }
        // Rule S1: a cursor tooth that leaves the path is skipped at once.
        let cur = self.nav.cursor;
        if !self.on_path(cur.tooth, cur.site) {
            let next = self.route.next_group(cur, |t, s| self.on_path(t, s));
            self.step_to(next);
        }
    }

    // ----- flags -----

    pub(super) fn flag(
        &mut self,
        flags: &[Flag],
        on: bool,
        scope: Option<&Scope>,
        tooth: Option<&ToothRef>,
    ) -> Res<()> {
        let flag_words = || flags.iter().map(|f| f.name()).collect::<Vec<_>>().join(" ");
        let sites: Vec<(Tooth, Site)> = match (scope, tooth) {
            (None, None) => match self.focus {
                // Rule F1: after a value in this final, that value's site.
                Focus::Value(r) => vec![(r.tooth, r.site)],
                Focus::Nav(c, true) => vec![(c.tooth, c.site)],
                Focus::Nav(_, false) => {
                    return Err(Reject::new(RejectReason::Incomplete, flag_words()));
                }
                // Rule F2: otherwise the most recently charted site.
                Focus::Start => match self.nav.last_site {
                    Some(r) => vec![(r.tooth, r.site)],
                    None => return Err(Reject::new(RejectReason::Incomplete, flag_words())),
                },
            },
            (None, Some(t)) => return Err(Reject::new(RejectReason::Incomplete, t.heard.clone())),
            (Some(scope), tooth) => {
                let (t, surface) = if let Some(r) = tooth {
                    (r.tooth, self.nav.cursor.surface())
                } else {
                    let a = self.anchor();
                    (a.tooth, a.surface())
                };
                expand_scope(scope, surface)
                    .into_iter()
                    .map(|s| (t, s))
                    .collect()
            }
        };
        for &(t, _) in &sites {
            let heard = tooth.map_or_else(flag_words, |r| r.heard.clone());
            self.require_chartable(t, &heard)?;
        }
        for &flag in flags {
            for &(t, site) in &sites {
                self.events.push(Event::Flag {
                    tooth: t,
                    site,
                    flag,
                    on,
                });
            }
        }
        Ok(())
    }

    pub(super) fn bulk_flag(&mut self, flags: &[Flag], on: bool, region: Region) {
        let range = match region {
            Region::Quadrant(q) => (q * 8 - 7)..=(q * 8),
            Region::Sextant(n) => match n {
                1 => 1..=5,
                2 => 6..=11,
                3 => 12..=16,
                4 => 17..=21,
                5 => 22..=27,
                _ => 28..=32,
            },
        };
        let teeth: Vec<Tooth> = range
            .filter_map(Tooth::new)
            .filter(|&t| self.chartable(t))
            .collect();
        for &flag in flags {
            for &t in &teeth {
                for site in Site::ALL {
                    self.events.push(Event::Flag {
                        tooth: t,
                        site,
                        flag,
                        on,
                    });
                }
            }
        }
        // Rule F5: bulk flags are held for confirmation.
        self.hold = true;
    }

    // ----- furcation -----

    pub(super) fn furcation(
        &mut self,
        grade: u8,
        entrance: Option<EntranceSpec>,
        tooth: Option<&ToothRef>,
    ) -> Res<()> {
        let settings = self.s.settings();
        let (t, site) = if let Some(r) = tooth {
            (r.tooth, self.nav.cursor.site)
        } else {
            let a = self.anchor();
            (a.tooth, a.site)
        };
        let heard = tooth.map_or_else(
            || format!("tooth {}", t.spoken_number(settings.numbering)),
            |r| r.heard.clone(),
        );
        self.require_chartable(t, &heard)?;
        let anatomy: &[Entrance] = if self.status(t) == ToothStatus::Implant {
            &[]
        } else {
            t.furcation_entrances()
        };
        let unusual = anatomy.is_empty();
        if unusual && !settings.allow_unusual_furcation {
            return Err(Reject::new(RejectReason::NoFurcationOnTooth, heard));
        }
        let entrance = match entrance {
            Some(EntranceSpec::Explicit(e)) if unusual || anatomy.contains(&e) => Some(e),
            Some(EntranceSpec::Explicit(_)) => None,
            Some(EntranceSpec::Site(s)) => derive_entrance(t, s, unusual),
            None => derive_entrance(t, site, unusual),
        };
        let Some(entrance) = entrance else {
            return Err(Reject::new(RejectReason::FurcationEntranceRequired, heard));
        };
        if unusual {
            self.warnings
                .push(Warning::UnusualFurcation { tooth: t.number() });
        }
        let glickman_iv = grade == 4;
        if glickman_iv {
            // Rule T3: Glickman IV is stored as grade 3.
            self.warnings
                .push(Warning::GlickmanIv { tooth: t.number() });
        }
        self.events.push(Event::Furcation {
            tooth: t,
            entrance,
            grade: grade.min(3),
            glickman_iv,
        });
        Ok(())
    }
}

/// Rule F4.
fn expand_scope(scope: &Scope, anchor: Surface) -> Vec<Site> {
    match scope {
        Scope::Sites(list) => {
            let mut out: Vec<Site> = Vec::new();
            for spec in list {
                let s = spec.on(anchor);
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            out
        }
        Scope::All(surface) => surface.unwrap_or(anchor).sites().to_vec(),
        Scope::AllSix => Site::ALL.to_vec(),
        Scope::Interproximal => vec![
            Site::new(anchor, Part::Mesial),
            Site::new(anchor, Part::Distal),
        ],
        Scope::Surface(s) => vec![Site::new(*s, Part::Mid)],
    }
}

/// Rule T2, first match wins: a facial site on a molar → B; a lingual site on a mandibular
/// molar → L; M/D sites on maxillary molars and teeth 5 and 12 → M/D; anything else (a
/// mid-lingual site on a maxillary molar, a mid site on 5 or 12) needs an entrance.
fn derive_entrance(tooth: Tooth, site: Site, unusual: bool) -> Option<Entrance> {
    let upper = tooth.arch() == Arch::Upper;
    if unusual {
        return Some(match (site.part(), site.surface()) {
            (Part::Mesial, _) => Entrance::M,
            (Part::Distal, _) => Entrance::D,
            (Part::Mid, Surface::F) => Entrance::B,
            (Part::Mid, Surface::L) => Entrance::L,
        });
    }
    if tooth.is_molar() && site.surface() == Surface::F {
        return Some(Entrance::B);
    }
    if tooth.is_molar() && !upper && site.surface() == Surface::L {
        return Some(Entrance::L);
    }
    match site.part() {
        Part::Mesial => Some(Entrance::M),
        Part::Distal => Some(Entrance::D),
        Part::Mid => None,
    }
}
