//! The periodontal exam screens (clinicians on the patient's care team, or through
//! break-glass): the patient's exams, and one exam as the full-mouth grid in the Open Dental
//! convention with the dictation box, the held final's confirmation, undo, the derived
//! values and the previous exam's depths — over the API's service steps
//! ([`server::actions::perio`]: the same store calls, rule checks and audit events as the
//! `/api/v1/…/perio-exams` routes).
//!
//! - **Who.** Every route takes [`Clinical`] (reception: `403`, nothing read); RLS decides
//!   which patients a clinician sees. Off the care team, the page offers break-glass (`403`)
//!   as the chart does.
//! - **The grid.** One table per arch: maxillary teeth 1–16 then mandibular 32–17 from the
//!   viewer's left, three columns per tooth (distal, mid, mesial on the patient's right;
//!   mesial, mid, distal on the left), facial rows and lingual rows (facial first on the
//!   maxilla, lingual first on the mandible), missing teeth shown without values. Depths
//!   ≥ 4 mm and ≥ 6 mm carry classes (`deep4`, `deep6`); the site the next value goes to is
//!   marked `aria-current`.
//! - **Dictation.** A typed final is one `POST` (a plain form, or htmx swapping the exam
//!   region); it names the version it was typed against, so a final typed at a stale page is
//!   refused (`409`) and nothing changes. Values, teeth and words said never reach a URL or a
//!   log.
//! - **Voice.** The Dictate control (`static/js/perio.js` with `static/js/audio.js`) records
//!   one short clip and posts it to `…/voice` ([`voice`]): the API's voice step recognizes
//!   it, applies a confident final as the typed one, and holds an unsure one; the region
//!   comes back with what was heard read back, and for a held final "Chart “…”?" (the typed
//!   final's form with the shown text) or Discard.
//! - **Derived values** (BOP %, sites ≥ 4 / ≥ 6 mm) are the engine's
//!   ([`perio::Session::summary`]), the API's `derived`.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use domain::{PatientId, PerioExamId, PracticeId};
use perio::{Site, Surface, Tooth, ToothStatus};
use serde::Deserialize;
use server::actions::perio as actions;
use server::extract::Clinical;
use server::{AppError, AppState};
use store::TenantTx;
use store::perio::{Exam, ExamInfo};

mod voice;

use super::chart::{Banner, banner, break_glass_offer, patient_name, visible};
use super::{Chrome, Member, chrome, html, html_status, path_id};
use crate::{Assets, WebError, assets};

/// The perio routes (under `/app`).
pub(crate) fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/practices/{practice_id}/patients/{patient_id}/perio",
            axum::routing::get(exams_page).post(exam_create),
        )
        .route(
            "/practices/{practice_id}/patients/{patient_id}/perio/{exam_id}",
            axum::routing::get(exam_page),
        )
        .route(
            "/practices/{practice_id}/patients/{patient_id}/perio/{exam_id}/finals",
            axum::routing::post(final_create),
        )
        .route(
            "/practices/{practice_id}/patients/{patient_id}/perio/{exam_id}/confirm",
            axum::routing::post(confirm),
        )
        .route(
            "/practices/{practice_id}/patients/{patient_id}/perio/{exam_id}/decline",
            axum::routing::post(decline),
        )
        .route(
            "/practices/{practice_id}/patients/{patient_id}/perio/{exam_id}/undo",
            axum::routing::post(undo),
        )
        .route(
            "/practices/{practice_id}/patients/{patient_id}/perio/{exam_id}/voice",
            axum::routing::post(voice::dictate),
        )
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn exams_href(practice: PracticeId, patient: PatientId) -> String {
    format!("/app/practices/{practice}/patients/{patient}/perio")
}

// ----------------------------------------------------------------------------------------
// The list

/// An exam in the list.
#[derive(Debug)]
pub(crate) struct ExamRow {
    href: String,
    created: String,
    version: i64,
}

/// The patient's exams.
#[derive(Template)]
#[template(path = "perio_exams.html")]
pub(crate) struct ExamsPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    patient_id: PatientId,
    patient: String,
    banner: Option<Banner>,
    exams: Vec<ExamRow>,
}

/// `GET /app/practices/{practice_id}/patients/{patient_id}/perio`: the patient's exams,
/// newest first (the API's `perio_exam.list`, with `patient.read` for the name), and the
/// button to start one. Off the care team: the break-glass offer (`403`).
pub(crate) async fn exams_page(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let patient: PatientId = path_id(&id, "patient")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    if !visible(&mut tx, patient).await? {
        return break_glass_offer(&state, tx, chrome, patient).await;
    }
    let p = super::patients::read_patient(&state, &mut tx, patient).await?;
    let exams = actions::list_exams(&mut tx, patient).await?;
    let banner = banner(&mut tx, patient).await?;
    tx.commit().await?;
    let base = exams_href(practice_id, patient);
    html(&ExamsPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        patient_id: patient,
        patient: patient_name(&p),
        banner,
        exams: exams
            .iter()
            .map(|e| ExamRow {
                href: format!("{base}/{}", e.exam_id),
                created: utc(e.created_at),
                version: e.version,
            })
            .collect(),
    })
}

/// `POST /app/practices/{practice_id}/patients/{patient_id}/perio`: a new exam with the
/// default session settings (SPEC C0), authored by the signed-in clinician (the API's
/// `perio_exam_create`, audited `perio_exam.create`); on to its page.
pub(crate) async fn exam_create(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let patient: PatientId = path_id(&id, "patient")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let session = perio::Session::new(perio::Settings::default());
    let info = actions::create_exam(&mut tx, state.store.keyring()?, patient, &session).await?;
    tx.commit().await?;
    Ok(super::redirect(&format!(
        "{}/{}",
        exams_href(practice_id, patient),
        info.exam_id
    )))
}

// ----------------------------------------------------------------------------------------
// The grid

/// A tooth's column group.
#[derive(Debug)]
pub(crate) struct ToothCol {
    number: u8,
    /// `present`, `missing`, `implant` or `skipped`.
    status: &'static str,
    /// Said to screen readers after the number ("missing", "implant", "not probed").
    note: &'static str,
    /// The three parts in display order ("D", "mid", "M").
    parts: [&'static str; 3],
}

/// One cell of a per-site row (or a per-tooth cell spanning the tooth's three columns).
#[derive(Debug)]
pub(crate) struct Cell {
    text: String,
    /// Space-separated classes (fixed names from the code).
    class: String,
    tooth: u8,
    /// The site (`MB` … `DL`), empty for a per-tooth cell.
    site: &'static str,
    /// The cursor: the next value goes here.
    current: bool,
    /// Three for a per-tooth cell.
    span: u8,
}

/// A row of the grid.
#[derive(Debug)]
pub(crate) struct Row {
    /// The row header, in full (read by screen readers).
    label: &'static str,
    /// The row header as shown (short, for the width of the grid).
    short: &'static str,
    /// `pd`, `gm`, `cal`, `marks`, `fur`, `mob` or `prev`.
    kind: &'static str,
    /// `F`, `L`, or empty for a per-tooth row.
    surface: &'static str,
    cells: Vec<Cell>,
}

/// One arch's table.
#[derive(Debug)]
pub(crate) struct ArchGrid {
    id: &'static str,
    caption: &'static str,
    teeth: Vec<ToothCol>,
    rows: Vec<Row>,
}

/// The three sites of `surface` of `tooth` in display order: the viewer's left is the
/// patient's right, so distal comes first on the patient's right (Open Dental's grid).
fn display_sites(tooth: Tooth, surface: Surface) -> [Site; 3] {
    let [m, mid, d] = surface.sites();
    match tooth.side() {
        perio::tooth::Side::Right => [d, mid, m],
        perio::tooth::Side::Left => [m, mid, d],
    }
}

fn part_label(site: Site) -> &'static str {
    match site.part() {
        perio::site::Part::Mesial => "M",
        perio::site::Part::Mid => "mid",
        perio::site::Part::Distal => "D",
    }
}

/// The class of a depth: `deep6` from 6 mm, `deep4` from 4 mm.
fn depth_class(pd: Option<u8>) -> &'static str {
    match pd {
        Some(v) if v >= 6 => "deep6",
        Some(v) if v >= 4 => "deep4",
        _ => "",
    }
}

fn status_words(s: ToothStatus) -> (&'static str, &'static str) {
    match s {
        ToothStatus::Present => ("present", ""),
        ToothStatus::Missing => ("missing", "missing"),
        ToothStatus::Implant => ("implant", "implant"),
        ToothStatus::Skipped => ("skipped", "not probed"),
    }
}

#[expect(
    clippy::too_many_lines,
    reason = "the rows of the grid, in display order"
)]
/// The grid of `session`, with `previous`'s depths in the rows under the depths and the
/// cursor marked in the row of the current mode (gingival margin in GM mode, else depths).
fn grid(session: &perio::Session, previous: Option<&perio::Session>) -> Vec<ArchGrid> {
    let chart = session.chart();
    let cursor = session.cursor();
    let cursor_row = if session.nav().mode == perio::Mode::Gm {
        "gm"
    } else {
        "pd"
    };
    let upper: Vec<Tooth> = (1..=16).filter_map(Tooth::new).collect();
    let lower: Vec<Tooth> = (17..=32).rev().filter_map(Tooth::new).collect();
    let mut out = Vec::new();
    for (id, caption, teeth, order) in [
        (
            "upper",
            "Maxillary arch: facial rows, then lingual rows",
            upper,
            [Surface::F, Surface::L],
        ),
        (
            "lower",
            "Mandibular arch: lingual rows, then facial rows",
            lower,
            [Surface::L, Surface::F],
        ),
    ] {
        let cols = teeth
            .iter()
            .map(|t| {
                let (status, note) = status_words(chart.status(*t));
                let [a, b, c] = display_sites(*t, Surface::F);
                ToothCol {
                    number: t.number(),
                    status,
                    note,
                    parts: [part_label(a), part_label(b), part_label(c)],
                }
            })
            .collect();
        let mut rows = Vec::new();
        let per_site = |kind: &'static str,
                        surface: Surface,
                        f: &dyn Fn(Tooth, Site) -> (String, &'static str)|
         -> Vec<Cell> {
            teeth
                .iter()
                .flat_map(|t| {
                    let examined = chart.status(*t).is_examined();
                    display_sites(*t, surface).map(|site| {
                        let (text, class) = if examined {
                            f(*t, site)
                        } else {
                            (String::new(), "")
                        };
                        let mut classes = vec![class];
                        if !examined {
                            classes.push("absent");
                        }
                        let current = examined
                            && kind == cursor_row
                            && cursor.tooth == *t
                            && cursor.site == site;
                        if current {
                            classes.push("cursor");
                        }
                        Cell {
                            text,
                            class: classes
                                .into_iter()
                                .filter(|c| !c.is_empty())
                                .collect::<Vec<_>>()
                                .join(" "),
                            tooth: t.number(),
                            site: site.name(),
                            current,
                            span: 1,
                        }
                    })
                })
                .collect()
        };
        for (n, surface) in order.into_iter().enumerate() {
            let facial = surface == Surface::F;
            let s = if facial { "F" } else { "L" };
            let mut block = Vec::new();
            if n == 0 {
                block.push(Row {
                    label: "Mobility",
                    short: "Mobility",
                    kind: "mob",
                    surface: "",
                    cells: teeth
                        .iter()
                        .map(|t| {
                            let r = chart.tooth(*t);
                            let text = r
                                .mobility
                                .as_ref()
                                .filter(|_| r.status.is_examined())
                                .map(|m| format!("{}{}", m.grade, m.note.as_deref().unwrap_or("")))
                                .unwrap_or_default();
                            Cell {
                                text,
                                class: if r.status.is_examined() {
                                    String::new()
                                } else {
                                    "absent".into()
                                },
                                tooth: t.number(),
                                site: "",
                                current: false,
                                span: 3,
                            }
                        })
                        .collect(),
                });
            }
            block.push(Row {
                label: if facial {
                    "Facial furcation"
                } else {
                    "Lingual furcation"
                },
                short: if facial { "Furcation F" } else { "Furcation L" },
                kind: "fur",
                surface: s,
                cells: per_site("fur", surface, &|t, site| {
                    let r = chart.tooth(t);
                    let grade = r
                        .furcation
                        .iter()
                        .find(|(e, _)| e.site() == site)
                        .map(|(_, f)| f.grade.to_string())
                        .unwrap_or_default();
                    (grade, "")
                }),
            });
            block.push(Row {
                label: if facial {
                    "Facial bleeding (B) and suppuration (S)"
                } else {
                    "Lingual bleeding (B) and suppuration (S)"
                },
                short: if facial { "B / S F" } else { "B / S L" },
                kind: "marks",
                surface: s,
                cells: per_site("marks", surface, &|t, site| {
                    let r = chart.tooth(t);
                    let (b, p) = (r.bleeding.contains(site), r.suppuration.contains(site));
                    let text = format!("{}{}", if b { "B" } else { "" }, if p { "S" } else { "" });
                    let class = match (b, p) {
                        (true, true) => "bop sup",
                        (true, false) => "bop",
                        (false, true) => "sup",
                        (false, false) => "",
                    };
                    (text, class)
                }),
            });
            block.push(Row {
                label: if facial {
                    "Facial gingival margin"
                } else {
                    "Lingual gingival margin"
                },
                short: if facial { "GM F" } else { "GM L" },
                kind: "gm",
                surface: s,
                cells: per_site("gm", surface, &|t, site| {
                    // Open Dental shows a margin coronal to the CEJ as a plus value.
                    let text = chart
                        .recession(t, site)
                        .map(|r| {
                            if r < 0 {
                                format!("+{}", -i16::from(r))
                            } else {
                                r.to_string()
                            }
                        })
                        .unwrap_or_default();
                    (text, "")
                }),
            });
            block.push(Row {
                label: if facial {
                    "Facial clinical attachment level"
                } else {
                    "Lingual clinical attachment level"
                },
                short: if facial { "CAL F" } else { "CAL L" },
                kind: "cal",
                surface: s,
                cells: per_site("cal", surface, &|t, site| {
                    (
                        session
                            .cal(t, site)
                            .map(|c| c.to_string())
                            .unwrap_or_default(),
                        "",
                    )
                }),
            });
            let pd = Row {
                label: if facial {
                    "Facial probing depth"
                } else {
                    "Lingual probing depth"
                },
                short: if facial { "PD F" } else { "PD L" },
                kind: "pd",
                surface: s,
                cells: per_site("pd", surface, &|t, site| {
                    let v = chart.pd(t, site);
                    (v.map(|v| v.to_string()).unwrap_or_default(), depth_class(v))
                }),
            };
            let prev = previous.map(|p| Row {
                label: if facial {
                    "Facial probing depth, previous exam"
                } else {
                    "Lingual probing depth, previous exam"
                },
                short: if facial {
                    "Previous PD F"
                } else {
                    "Previous PD L"
                },
                kind: "prev",
                surface: s,
                cells: per_site("prev", surface, &|t, site| {
                    let v = p.chart().pd(t, site);
                    (v.map(|v| v.to_string()).unwrap_or_default(), depth_class(v))
                }),
            });
            // The depths sit next to the tooth numbers' side of each block: last in the
            // first block, first in the second, as on Open Dental's chart.
            if n == 0 {
                block.push(pd);
                block.extend(prev);
            } else {
                block.reverse();
                let mut b = vec![pd];
                b.extend(prev);
                b.extend(block);
                block = b;
            }
            rows.extend(block);
        }
        out.push(ArchGrid {
            id,
            caption,
            teeth: cols,
            rows,
        });
    }
    out
}

// ----------------------------------------------------------------------------------------
// The exam

/// A reading of the held final, to confirm.
#[derive(Debug)]
pub(crate) struct Alternative {
    index: usize,
    label: String,
    what: String,
}

/// What the last action did, shown above the grid.
#[derive(Debug)]
pub(crate) struct Message {
    /// `ok`, `held`, `rejected`, `ignored` or `error`.
    kind: &'static str,
    text: String,
}

/// The exam region (the part htmx swaps): message, held final, derived values, grid.
#[derive(Debug)]
pub(crate) struct ExamView {
    /// The patient's exams.
    list: String,
    /// This exam.
    href: String,
    version: i64,
    created: String,
    message: Option<Message>,
    pending: Vec<Alternative>,
    can_undo: bool,
    mode: &'static str,
    listening: bool,
    cursor: String,
    bop_percent: String,
    bop_sites: String,
    ge4: usize,
    ge6: usize,
    /// The previous exam: its date and page (empty when there is none).
    previous_date: String,
    previous_href: String,
    previous_id: String,
    arches: Vec<ArchGrid>,
    /// The read-back of a dictated clip (the dictation control's answer only).
    voice: Option<voice::VoiceBack>,
}

fn view(list: String, exam: &Exam, previous: Option<&Exam>, message: Option<Message>) -> ExamView {
    let s = &exam.session;
    let numbering = s.settings().numbering;
    let summary = s.summary();
    let pending = s
        .pending()
        .map(|p| {
            let n = p.candidates.len();
            p.candidates
                .iter()
                .enumerate()
                .map(|(i, c)| Alternative {
                    index: i,
                    label: if n > 1 {
                        format!("Confirm option {}", i + 1)
                    } else {
                        "Confirm".to_owned()
                    },
                    what: c
                        .events
                        .iter()
                        .map(|e| e.describe(numbering))
                        .collect::<Vec<_>>()
                        .join("; "),
                })
                .collect()
        })
        .unwrap_or_default();
    let c = s.cursor();
    ExamView {
        href: format!("{list}/{}", exam.info.exam_id),
        version: exam.info.version,
        created: utc(exam.info.created_at),
        message,
        pending,
        can_undo: !s.history().is_empty(),
        mode: match s.nav().mode {
            perio::Mode::Pd => "probing depths",
            perio::Mode::Gm => "gingival margin",
            perio::Mode::Mgj => "mucogingival junction",
            perio::Mode::Mobility => "mobility",
            perio::Mode::Furcation => "furcation",
        },
        listening: s.listening(),
        cursor: format!(
            "{} {} {}",
            c.tooth.label(numbering),
            c.site.surface().name(),
            c.site.name()
        ),
        bop_percent: summary
            .bop_percent
            .map_or_else(|| "–".to_owned(), |p| format!("{p:.1} %")),
        bop_sites: format!(
            "{} of {} sites",
            summary.bop.bleeding_sites, summary.bop.examined_sites
        ),
        ge4: summary.sites_pd_ge_4,
        ge6: summary.sites_pd_ge_6,
        previous_date: previous.map(|p| utc(p.info.created_at)).unwrap_or_default(),
        previous_href: previous
            .map(|p| format!("{list}/{}", p.info.exam_id))
            .unwrap_or_default(),
        previous_id: previous
            .map(|p| p.info.exam_id.to_string())
            .unwrap_or_default(),
        arches: grid(s, previous.map(|p| &p.session)),
        list,
        voice: None,
    }
}

/// The exam page.
#[derive(Template)]
#[template(path = "perio_exam.html")]
pub(crate) struct ExamPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    patient_id: PatientId,
    patient: String,
    banner: Option<Banner>,
    x: ExamView,
}

/// The exam region alone (htmx).
#[derive(Template)]
#[template(path = "perio_exam_region.html")]
pub(crate) struct ExamRegion {
    x: ExamView,
}

/// The patient's exam before `exam` (the next older in the API's list), read and audited
/// as the API's `GET` of it.
async fn previous_exam(
    state: &AppState,
    tx: &mut TenantTx,
    patient: PatientId,
    exam: PerioExamId,
) -> Result<Option<Exam>, WebError> {
    let list: Vec<ExamInfo> = actions::list_exams(tx, patient).await?;
    let Some(prev) = list
        .iter()
        .skip_while(|e| e.exam_id != exam)
        .nth(1)
        .map(|e| e.exam_id)
    else {
        return Ok(None);
    };
    Ok(Some(
        actions::read_exam(tx, state.store.keyring()?, patient, prev).await?,
    ))
}

fn ids(patient: &str, exam: &str) -> Result<(PatientId, PerioExamId), WebError> {
    Ok((path_id(patient, "patient")?, path_id(exam, "perio exam")?))
}

/// `GET /app/practices/{practice_id}/patients/{patient_id}/perio/{exam_id}`: the exam
/// (audited `perio_exam.read` as the API's `GET`), the previous exam's depths (its own
/// `perio_exam.read`, found through `perio_exam.list`), the dictation box. Off the care team:
/// the break-glass offer (`403`).
pub(crate) async fn exam_page(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, patient, exam)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    let (patient, exam) = ids(&patient, &exam)?;
    let mut tx = ctx.tx;
    let chrome = chrome(&mut tx).await?;
    if !visible(&mut tx, patient).await? {
        return break_glass_offer(&state, tx, chrome, patient).await;
    }
    page(&state, tx, chrome, patient, exam, None, StatusCode::OK).await
}

/// Reads everything the exam page shows in `tx`, commits, renders it with `message`.
async fn page(
    state: &AppState,
    mut tx: TenantTx,
    chrome: Chrome,
    patient: PatientId,
    exam: PerioExamId,
    message: Option<Message>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let practice_id = tx.practice();
    let p = super::patients::read_patient(state, &mut tx, patient).await?;
    let e = actions::read_exam(&mut tx, state.store.keyring()?, patient, exam).await?;
    let prev = previous_exam(state, &mut tx, patient, exam).await?;
    let banner = banner(&mut tx, patient).await?;
    tx.commit().await?;
    html_status(
        status,
        &ExamPage {
            assets: assets(),
            chrome: Some(chrome),
            practice_id,
            patient_id: patient,
            patient: patient_name(&p),
            banner,
            x: view(exams_href(practice_id, patient), &e, prev.as_ref(), message),
        },
    )
}

/// A typed final, with the version it was typed against and the previous exam shown.
#[derive(Deserialize)]
pub(crate) struct FinalForm {
    #[serde(default)]
    text: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    previous: String,
}

/// Confirm, decline or undo, with the version and the previous exam shown.
#[derive(Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    version: String,
    #[serde(default)]
    previous: String,
    #[serde(default)]
    alternative: String,
}

fn is_htmx(headers: &HeaderMap) -> bool {
    headers
        .get("hx-request")
        .is_some_and(|v| v.as_bytes() == b"true")
}

/// The version a form names (`None` when empty; a malformed one is refused).
fn version(raw: &str) -> Result<Option<i64>, AppError> {
    match super::filled(raw) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| AppError::Invalid("version: must be a whole number".into())),
    }
}

/// The message for an outcome.
fn message(o: &perio::Outcome) -> Message {
    match o.status {
        perio::Status::Ok => Message {
            kind: "ok",
            text: if o.echo.is_empty() {
                "Done.".to_owned()
            } else {
                format!("Charted: {}.", o.echo)
            },
        },
        perio::Status::NeedsConfirmation => Message {
            kind: "held",
            text: "Held for confirmation: confirm or decline it below, or dictate again."
                .to_owned(),
        },
        perio::Status::Rejected => Message {
            kind: "rejected",
            text: o.reject.as_ref().map_or_else(
                || "Not charted; nothing changed.".to_owned(),
                |r| {
                    format!(
                        "Not charted ({}) at “{}”; nothing changed. Correct it and send it again.",
                        r.reason.code(),
                        r.heard
                    )
                },
            ),
        },
        perio::Status::Ignored => Message {
            kind: "ignored",
            text: "Not a charting command; nothing changed.".to_owned(),
        },
    }
}

/// Applies `change` through the API's service step and answers the exam region (htmx) or
/// the page. A refused change (`400`, `409`) answers the exam as it is, with the reason.
#[allow(clippy::too_many_arguments, reason = "the request's parts")]
async fn apply(
    state: &AppState,
    ctx: server::extract::Ctx<Clinical>,
    headers: &HeaderMap,
    patient: PatientId,
    exam: PerioExamId,
    raw_version: &str,
    raw_previous: &str,
    change: Result<actions::Change<'_>, AppError>,
) -> Result<Response, WebError> {
    let keyring = state.store.keyring()?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let undoing = matches!(change, Ok(actions::Change::Undo));
    let result = match (version(raw_version), change) {
        (Ok(expected), Ok(change)) => {
            actions::change_exam(&mut tx, keyring, patient, exam, expected, change).await
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let (e, msg, status) = match result {
        Ok(c) => {
            let m = if undoing && c.outcome.status == perio::Status::Ok {
                Message {
                    kind: "ok",
                    text: "Undone: the last final was taken back.".to_owned(),
                }
            } else {
                message(&c.outcome)
            };
            (
                Exam {
                    info: c.info,
                    session: c.session,
                },
                m,
                StatusCode::OK,
            )
        }
        Err(err @ (AppError::Invalid(_) | AppError::Conflict(_))) => {
            // Refused before anything was written: show the exam as it is.
            let status = if matches!(err, AppError::Invalid(_)) {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::CONFLICT
            };
            let m = Message {
                kind: "error",
                text: format!("Nothing changed: {err}."),
            };
            if !is_htmx(headers) {
                let chrome = chrome(&mut tx).await?;
                return page(state, tx, chrome, patient, exam, Some(m), status).await;
            }
            (
                actions::read_exam(&mut tx, keyring, patient, exam).await?,
                m,
                status,
            )
        }
        Err(other) => return Err(other.into()),
    };
    if !is_htmx(headers) {
        let chrome = chrome(&mut tx).await?;
        return page(state, tx, chrome, patient, exam, Some(msg), status).await;
    }
    // The previous exam the page shows (a form field), read again as the page's GET does.
    let prev = match super::filled(raw_previous).map(|p| path_id::<PerioExamId>(p, "perio exam")) {
        Some(Ok(prev)) => Some(actions::read_exam(&mut tx, keyring, patient, prev).await?),
        Some(Err(e)) => return Err(e),
        None => None,
    };
    tx.commit().await?;
    html_status(
        status,
        &ExamRegion {
            x: view(
                exams_href(practice_id, patient),
                &e,
                prev.as_ref(),
                Some(msg),
            ),
        },
    )
}

/// `POST …/perio/{exam_id}/finals`: one typed final through the API's `perio_final_create`
/// step (audited `perio_exam.update`).
pub(crate) async fn final_create(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, patient, exam)): Path<(String, String, String)>,
    headers: HeaderMap,
    Form(form): Form<FinalForm>,
) -> Result<Response, WebError> {
    let (patient, exam) = ids(&patient, &exam)?;
    let change = Ok(actions::Change::Final {
        text: &form.text,
        lexical: None,
    });
    apply(
        &state,
        ctx,
        &headers,
        patient,
        exam,
        &form.version,
        &form.previous,
        change,
    )
    .await
}

/// `POST …/perio/{exam_id}/confirm`: confirms the held final (the chosen alternative).
pub(crate) async fn confirm(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, patient, exam)): Path<(String, String, String)>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Response, WebError> {
    let (patient, exam) = ids(&patient, &exam)?;
    let choice = match super::filled(&form.alternative) {
        None => Ok(0),
        Some(a) => a
            .parse()
            .map_err(|_| AppError::Invalid("alternative: must be a whole number".into())),
    };
    apply(
        &state,
        ctx,
        &headers,
        patient,
        exam,
        &form.version,
        &form.previous,
        choice.map(actions::Change::Confirm),
    )
    .await
}

/// `POST …/perio/{exam_id}/decline`: declines the held final.
pub(crate) async fn decline(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, patient, exam)): Path<(String, String, String)>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Response, WebError> {
    let (patient, exam) = ids(&patient, &exam)?;
    apply(
        &state,
        ctx,
        &headers,
        patient,
        exam,
        &form.version,
        &form.previous,
        Ok(actions::Change::Decline),
    )
    .await
}

/// `POST …/perio/{exam_id}/undo`: takes back the previous applied final.
pub(crate) async fn undo(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, patient, exam)): Path<(String, String, String)>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Response, WebError> {
    let (patient, exam) = ids(&patient, &exam)?;
    apply(
        &state,
        ctx,
        &headers,
        patient,
        exam,
        &form.version,
        &form.previous,
        Ok(actions::Change::Undo),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 17 — the grid follows Open Dental: teeth 1–16 then 32–17, distal first on the
    // patient's right, depth classes from 4 and 6 mm, missing teeth without values, the
    // cursor marked once.
    #[test]
    fn grid_layout_and_highlights() {
        let mut s = perio::Session::default();
        for f in [
            "tooth three buccal three four six bleeding",
            "tooth one missing",
        ] {
            s.apply_final(f);
        }
        let g = grid(&s, None);
        let upper = &g[0];
        let lower = &g[1];
        assert_eq!(upper.teeth.first().map(|t| t.number), Some(1));
        assert_eq!(lower.teeth.first().map(|t| t.number), Some(32));
        assert_eq!(upper.teeth[0].status, "missing");
        assert_eq!(upper.teeth[2].parts, ["D", "mid", "M"]);
        assert_eq!(upper.teeth[9].parts, ["M", "mid", "D"]);
        let pd = upper
            .rows
            .iter()
            .find(|r| r.kind == "pd" && r.surface == "F")
            .unwrap();
        let t3: Vec<(&str, &str, &str)> = pd
            .cells
            .iter()
            .filter(|c| c.tooth == 3)
            .map(|c| (c.site, c.text.as_str(), c.class.as_str()))
            .collect();
        assert_eq!(
            t3,
            [("DB", "3", ""), ("B", "4", "deep4"), ("MB", "6", "deep6")]
        );
        assert!(
            pd.cells
                .iter()
                .filter(|c| c.tooth == 1)
                .all(|c| c.text.is_empty() && c.class == "absent")
        );
        let current: Vec<_> = g
            .iter()
            .flat_map(|a| a.rows.iter().flat_map(|r| r.cells.iter()))
            .filter(|c| c.current)
            .collect();
        assert_eq!(current.len(), 1);
        assert_eq!((current[0].tooth, current[0].site), (4, "DB"));
        let marks = upper
            .rows
            .iter()
            .find(|r| r.kind == "marks" && r.surface == "F")
            .unwrap();
        assert!(
            marks
                .cells
                .iter()
                .any(|c| c.tooth == 3 && c.site == "MB" && c.text == "B")
        );
    }
}
