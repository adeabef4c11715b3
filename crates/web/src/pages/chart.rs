//! The chart (clinicians on the patient's care team, or through break-glass): visits, notes
//! from the templates with autosave, signing with step-up, the locked note with its signature
//! manifestation, amendments and addenda with the word diff, version history and the hash
//! check — over the API's store calls (`store::notes::…`, `store::break_glass::…`) with the
//! API's audit events in the same transactions and the API's rules ([`server::rules`]).
//!
//! - **Who.** Every route takes [`Clinical`] (reception: `403`, nothing read); RLS
//!   (`app.clinical_visible`) decides which patients' records a clinician sees, as in the API.
//!   A clinician off the care team asking for a chart gets the break-glass offer with its
//!   reason form; while a break-glass window is open, every chart page shows a banner with the
//!   time it ends.
//! - **Concurrency.** Each save names the version it was made against: htmx autosaves send it
//!   in `If-Match` (set by `app.js` from the form's version field), a plain form post in the
//!   form. A save against an older version is refused (`412`) and the page shows both
//!   versions, keeping the user's text in the form: nothing is overwritten unless the user
//!   chooses to save over the newer version.
//! - **Step-up.** Signing, amending and adding an addendum need a second factor presented in
//!   the API's step-up window (`AUTH-0004` otherwise): the page then asks for an authenticator
//!   code ([`step_up`]) and repeats the request with it (`307`).
//! - No PHI in URLs: notes and visits are addressed by id; all content travels in `POST`
//!   bodies.

use std::collections::HashMap;
use std::fmt::Write as _;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::notes::{
    ADDENDUM_MAX, DiffOp, FieldType, FieldValue, NoteContent, NoteStatus, REASON_MAX, Signature,
    Template as NoteTemplate,
};
use domain::{AppointmentId, NoteId, PatientId, PracticeId, UserId, VisitId};
use serde::Deserialize;
use server::extract::Clinical;
use server::identity::Client;
use server::rules::{break_glass as bg_rules, notes as note_rules};
use server::signin;
use server::{AppError, AppState};
use store::TenantTx;
use zeroize::Zeroizing;

use super::{Chrome, FieldErrors, Fragment, Member, SignedIn, chrome, html, html_status, path_id};
use crate::{Assets, WebError, assets};

/// The chart's routes (under `/app`).
pub(crate) fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/practices/{practice_id}/patients/{patient_id}/chart",
            axum::routing::get(chart_page),
        )
        .route(
            "/practices/{practice_id}/patients/{patient_id}/visits",
            axum::routing::post(visit_create),
        )
        .route(
            "/practices/{practice_id}/patients/{patient_id}/notes",
            axum::routing::post(note_create),
        )
        .route(
            "/practices/{practice_id}/patients/{patient_id}/break-glass",
            axum::routing::post(break_glass_open),
        )
        .route(
            "/practices/{practice_id}/notes/{note_id}",
            axum::routing::get(note_page).post(note_save),
        )
        .route(
            "/practices/{practice_id}/notes/{note_id}/autosave",
            axum::routing::post(note_autosave),
        )
        .route(
            "/practices/{practice_id}/notes/{note_id}/sign",
            axum::routing::post(note_sign),
        )
        .route(
            "/practices/{practice_id}/notes/{note_id}/amend",
            axum::routing::get(amend_page).post(note_amend),
        )
        .route(
            "/practices/{practice_id}/notes/{note_id}/amend/assist",
            axum::routing::post(amend_assist),
        )
        .route(
            "/practices/{practice_id}/notes/{note_id}/addenda",
            axum::routing::post(note_addendum),
        )
        .route(
            "/practices/{practice_id}/notes/{note_id}/history",
            axum::routing::get(note_history),
        )
        .route(
            "/practices/{practice_id}/notes/{note_id}/verify",
            axum::routing::get(note_verify),
        )
        .route("/step-up", axum::routing::post(step_up))
}

// ----------------------------------------------------------------------------------------
// Shared pieces

/// The break-glass banner: when the open window ends.
#[derive(Debug)]
pub(crate) struct Banner {
    pub(super) ends: String,
}

/// The banner for `patient` when the actor sees the chart through break-glass only.
pub(super) async fn banner(
    tx: &mut TenantTx,
    patient: PatientId,
) -> Result<Option<Banner>, WebError> {
    Ok(store::break_glass::window(tx, patient)
        .await?
        .map(|ends| Banner { ends: utc(ends) }))
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn utc_seconds(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn chart_href(practice: PracticeId, patient: PatientId) -> String {
    format!("/app/practices/{practice}/patients/{patient}/chart")
}

pub(super) fn note_href(practice: PracticeId, note: NoteId) -> String {
    format!("/app/practices/{practice}/notes/{note}")
}

fn status_label(n: &store::notes::Note) -> &'static str {
    match n.status {
        NoteStatus::Draft => "Draft",
        NoteStatus::Signed if n.amendments.is_empty() => "Signed",
        NoteStatus::Signed => "Signed, amended",
        NoteStatus::Deleted => "Deleted",
    }
}

/// The practice's member names by id (the directory the API lists to any member, audited
/// `membership.list` as the API does).
pub(super) async fn member_names(tx: &mut TenantTx) -> Result<HashMap<UserId, String>, WebError> {
    let members = server::actions::list_members(tx).await?;
    Ok(members
        .into_iter()
        .map(|m| (m.user_id, m.display_name))
        .collect())
}

pub(super) fn name_of(names: &HashMap<UserId, String>, id: UserId) -> String {
    names
        .get(&id)
        .cloned()
        .unwrap_or_else(|| "a former member".to_owned())
}

/// A SOAP section as shown or edited.
#[derive(Debug)]
pub(crate) struct Section {
    pub(super) id: &'static str,
    pub(super) label: &'static str,
    pub(super) value: String,
}

pub(super) fn sections(c: &NoteContent) -> Vec<Section> {
    vec![
        Section {
            id: "subjective",
            label: "Subjective",
            value: c.subjective.clone(),
        },
        Section {
            id: "objective",
            label: "Objective",
            value: c.objective.clone(),
        },
        Section {
            id: "assessment",
            label: "Assessment",
            value: c.assessment.clone(),
        },
        Section {
            id: "plan",
            label: "Plan",
            value: c.plan.clone(),
        },
    ]
}

/// A template field as shown or edited (`kind`: `bool`, `int` or `choice`).
#[derive(Debug)]
pub(crate) struct NoteField {
    /// The input's name (`f.<key>`).
    pub(super) name: String,
    /// The input's id (`f-<key>`).
    pub(super) id: String,
    pub(super) label: String,
    pub(super) kind: &'static str,
    pub(super) value: String,
    pub(super) options: Vec<FieldOption>,
    pub(super) min: i64,
    pub(super) max: i64,
}

/// One choice of a template field's list.
#[derive(Debug)]
pub(crate) struct FieldOption {
    pub(super) value: &'static str,
    pub(super) selected: bool,
}

fn label_of(key: &str) -> String {
    let words = key.replace('_', " ");
    let mut chars = words.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().collect::<String>() + chars.as_str()
    })
}

fn field_text(v: &FieldValue) -> String {
    match v {
        FieldValue::Bool(true) => "yes".to_owned(),
        FieldValue::Bool(false) => "no".to_owned(),
        FieldValue::Int(i) => i.to_string(),
        FieldValue::Text(t) => t.clone(),
    }
}

pub(super) fn note_fields(template: NoteTemplate, c: &NoteContent) -> Vec<NoteField> {
    template
        .fields()
        .iter()
        .map(|f| {
            let (kind, options, min, max) = match f.kind {
                FieldType::Bool => ("bool", vec!["yes", "no"], 0, 0),
                FieldType::Int { min, max } => ("int", Vec::new(), min, max),
                FieldType::Choice { options } => ("choice", options.to_vec(), 0, 0),
            };
            let value = c.fields.get(f.name).map(field_text).unwrap_or_default();
            NoteField {
                name: format!("f.{}", f.name),
                id: format!("f-{}", f.name),
                label: label_of(f.name),
                kind,
                options: options
                    .into_iter()
                    .map(|o| FieldOption {
                        value: o,
                        selected: o == value,
                    })
                    .collect(),
                value,
                min,
                max,
            }
        })
        .collect()
}

/// A form as name/value pairs (SOAP sections, template fields `f.<key>`, and the rest).
#[derive(Debug, Default)]
pub(crate) struct Pairs(Vec<(String, String)>);

impl Pairs {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The note content the form holds for `template`: sections as typed (line endings
    /// normalized), template fields parsed; then the API's own check
    /// ([`NoteContent::validate`]). A refusal names the field.
    pub(super) fn content(&self, template: NoteTemplate) -> Result<NoteContent, FieldErrors> {
        let text = |k: &str| self.get(k).unwrap_or("").replace("\r\n", "\n");
        let mut c = NoteContent {
            subjective: text("subjective"),
            objective: text("objective"),
            assessment: text("assessment"),
            plan: text("plan"),
            fields: std::collections::BTreeMap::new(),
        };
        let mut errors = FieldErrors::default();
        for f in template.fields() {
            let Some(raw) = self
                .get(&format!("f.{}", f.name))
                .map(str::trim)
                .filter(|s| !s.is_empty())
            else {
                continue;
            };
            let v = match f.kind {
                FieldType::Bool => match raw {
                    "yes" => Some(FieldValue::Bool(true)),
                    "no" => Some(FieldValue::Bool(false)),
                    _ => None,
                },
                FieldType::Int { min, max } => raw
                    .parse::<i64>()
                    .ok()
                    .filter(|i| (min..=max).contains(i))
                    .map(FieldValue::Int),
                FieldType::Choice { options } => options
                    .contains(&raw)
                    .then(|| FieldValue::Text(raw.to_owned())),
            };
            match v {
                Some(v) => {
                    c.fields.insert(f.name.to_owned(), v);
                }
                None => errors.add(
                    "fields",
                    format!("{}: not one of the values offered.", label_of(f.name)),
                ),
            }
        }
        if let Err(e) = c.validate(template) {
            let field = match e.field {
                "subjective" => "subjective",
                "objective" => "objective",
                "assessment" => "assessment",
                "plan" => "plan",
                _ => "fields",
            };
            errors.refused(field, &label_of(e.field), &e);
        }
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(errors)
        }
    }

    /// Everything but the step-up's own fields, to post again after it.
    fn carried(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|(k, _)| k != "code" && k != "then")
            .cloned()
            .collect()
    }
}

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<(String, String)>::deserialize(d).map(Self)
    }
}

/// The version a change names: the `If-Match` header as the API reads it
/// ([`server::rules::notes::if_match`]) when sent, else the form's `version` field (a plain
/// form post cannot set a header). `428` when neither names one.
fn expected_version(headers: &HeaderMap, form: &Pairs) -> Result<i32, WebError> {
    if headers.contains_key(header::IF_MATCH) {
        return note_rules::if_match(headers)?.ok_or(WebError(AppError::PreconditionRequired));
    }
    form.get("version")
        .and_then(|v| v.trim().parse::<i32>().ok())
        .ok_or(WebError(AppError::PreconditionRequired))
}

fn with_etag(version: i32, mut res: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// A `307 Temporary Redirect` (the browser repeats the `POST` with its body).
fn temporary_redirect(location: &str) -> Response {
    let mut res = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

// ----------------------------------------------------------------------------------------
// The chart

/// A visit in the chart.
pub(crate) struct VisitRow {
    id: VisitId,
    started: String,
    from_appointment: bool,
    highlighted: bool,
}

/// A note in the chart.
pub(crate) struct NoteRow {
    href: String,
    title: &'static str,
    status: &'static str,
    created: String,
    version: i32,
    ai_assisted: bool,
}

/// A template offered for a new note.
pub(crate) struct TemplateOption {
    id: &'static str,
    title: &'static str,
}

/// The chart page.
#[derive(Template)]
#[template(path = "chart.html")]
pub(crate) struct ChartPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    patient_id: PatientId,
    patient: String,
    banner: Option<Banner>,
    visits: Vec<VisitRow>,
    notes: Vec<NoteRow>,
    templates: Vec<TemplateOption>,
    /// An appointment opened from the schedule that has no visit yet.
    appointment: Option<AppointmentId>,
    /// Accepted intake forms: (href, title, accepted).
    intake: Vec<(String, String, String)>,
    done: Option<&'static str>,
}

/// The break-glass offer (a clinician off the care team).
#[derive(Template)]
#[template(path = "chart_break_glass.html")]
pub(crate) struct BreakGlassPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    patient_id: PatientId,
    patient: String,
    reason: String,
    minutes: String,
    errors: FieldErrors,
}

/// `?appointment=` (opened from the schedule) and `?done=`.
#[derive(Deserialize)]
pub(crate) struct ChartQuery {
    appointment: Option<String>,
    done: Option<String>,
}

pub(super) fn patient_name(p: &store::patients::Patient) -> String {
    format!("{}, {}", p.family_name, p.given_name)
}

/// The patient's chart, or — when RLS hides it (off the care team) — `None`, after checking
/// the patient exists here (`404`) and is not deleted (`410`).
pub(super) async fn visible(tx: &mut TenantTx, patient: PatientId) -> Result<bool, WebError> {
    if store::perio::patient_visible(tx, patient).await? {
        return Ok(true);
    }
    if !store::patients::exists(tx, patient).await? {
        return Err(WebError(AppError::NotFound("patient")));
    }
    Ok(false)
}

/// The break-glass offer (`403`) for a clinician off `patient`'s care team (the chart's and
/// the perio pages'); reads the patient's name (audited `patient.read`) and commits.
pub(super) async fn break_glass_offer(
    state: &AppState,
    mut tx: TenantTx,
    chrome: Chrome,
    patient: PatientId,
) -> Result<Response, WebError> {
    let practice_id = tx.practice();
    let p = super::patients::read_patient(state, &mut tx, patient).await?;
    tx.commit().await?;
    html_status(
        StatusCode::FORBIDDEN,
        &BreakGlassPage {
            assets: assets(),
            chrome: Some(chrome),
            practice_id,
            patient_id: patient,
            patient: patient_name(&p),
            reason: String::new(),
            minutes: bg_rules::BREAK_GLASS_DEFAULT_MINUTES.to_string(),
            errors: FieldErrors::default(),
        },
    )
}

/// `GET /app/practices/{practice_id}/patients/{patient_id}/chart`: visits and notes (the
/// API's `visit.list` and `note.list`, with `patient.read` for the name), the templates for a
/// new note; opened from an appointment (`?appointment=`), the form to start its visit. Off
/// the care team: the break-glass offer (`403`).
pub(crate) async fn chart_page(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<ChartQuery>,
) -> Result<Response, WebError> {
    let patient: PatientId = path_id(&id, "patient")?;
    let appointment: Option<AppointmentId> = match q.appointment.as_deref() {
        Some(a) => Some(path_id(a, "appointment")?),
        None => None,
    };
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    if !visible(&mut tx, patient).await? {
        return break_glass_offer(&state, tx, chrome, patient).await;
    }
    let p = super::patients::read_patient(&state, &mut tx, patient).await?;
    let visits = server::actions::list_visits(&mut tx, patient).await?;
    let notes = server::actions::list_notes(&mut tx, state.store.keyring()?, patient).await?;
    let banner = banner(&mut tx, patient).await?;
    let intake = store::intake::on_chart(&mut tx, patient).await?;
    tx.commit().await?;
    let open_appointment =
        appointment.filter(|a| !visits.iter().any(|v| v.appointment_id == Some(*a)));
    html(&ChartPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        patient_id: patient,
        patient: patient_name(&p),
        banner,
        visits: visits
            .iter()
            .map(|v| VisitRow {
                id: v.visit_id,
                started: utc(v.started_at),
                from_appointment: v.appointment_id.is_some(),
                highlighted: appointment.is_some() && v.appointment_id == appointment,
            })
            .collect(),
        notes: notes
            .iter()
            .map(|n| NoteRow {
                href: note_href(practice_id, n.note_id),
                title: n.template.title(),
                status: status_label(n),
                created: utc(n.created_at),
                version: n.version,
                ai_assisted: n.amendments.iter().any(|a| a.ai_assisted),
            })
            .collect(),
        templates: NoteTemplate::ALL
            .iter()
            .map(|t| TemplateOption {
                id: t.as_str(),
                title: t.title(),
            })
            .collect(),
        appointment: open_appointment,
        intake: intake
            .iter()
            .map(|r| {
                (
                    format!("/app/practices/{practice_id}/intake/{}", r.request_id),
                    format!("{} (version {})", r.title, r.form_version),
                    r.decided_at.map(utc).unwrap_or_default(),
                )
            })
            .collect(),
        done: match q.done.as_deref() {
            Some("visit") => Some("Visit started."),
            Some("break-glass") => Some("Break-glass access opened. The owners will review it."),
            _ => None,
        },
    })
}

/// The start-a-visit form.
#[derive(Deserialize)]
pub(crate) struct VisitForm {
    #[serde(default)]
    appointment_id: String,
}

/// `POST /app/practices/{practice_id}/patients/{patient_id}/visits`: records a visit with the
/// signed-in clinician now, from an appointment when one is named (as the API's
/// `visit_create`, audited `visit.create`); back to the chart.
pub(crate) async fn visit_create(
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<VisitForm>,
) -> Result<Response, WebError> {
    let patient: PatientId = path_id(&id, "patient")?;
    let appointment: Option<AppointmentId> = match super::filled(&form.appointment_id) {
        Some(a) => Some(path_id(a, "appointment")?),
        None => None,
    };
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let started = tx.now();
    server::actions::open_visit(&mut tx, patient, appointment, started).await?;
    tx.commit().await?;
    Ok(super::redirect(&format!(
        "{}?done=visit",
        chart_href(practice_id, patient)
    )))
}

/// The new-note form.
#[derive(Deserialize)]
pub(crate) struct NewNoteForm {
    #[serde(default)]
    template: String,
    #[serde(default)]
    visit_id: String,
}

/// `POST /app/practices/{practice_id}/patients/{patient_id}/notes`: starts an empty draft from
/// a template, for a visit when one is named (as the API's `note_create`, audited
/// `note.create`); on to the note's editor.
pub(crate) async fn note_create(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<NewNoteForm>,
) -> Result<Response, WebError> {
    let patient: PatientId = path_id(&id, "patient")?;
    let template = match super::filled(&form.template) {
        None => NoteTemplate::Free,
        Some(t) => NoteTemplate::parse(t).ok_or_else(|| {
            WebError(AppError::Invalid(
                "template: choose one of the templates offered".into(),
            ))
        })?,
    };
    let visit: Option<VisitId> = match super::filled(&form.visit_id) {
        Some(v) => Some(path_id(v, "visit")?),
        None => None,
    };
    let content = NoteContent::default();
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let note = server::actions::start_note(
        &mut tx,
        state.store.keyring()?,
        patient,
        template,
        visit,
        &content,
    )
    .await?;
    tx.commit().await?;
    Ok(super::redirect(&note_href(practice_id, note.note_id)))
}

// ----------------------------------------------------------------------------------------
// One note

/// A signature manifestation as shown.
pub(crate) struct SignatureView {
    signer: String,
    credential: Option<String>,
    at: String,
    iso: String,
    time_zone: String,
    meaning: String,
}

impl From<&Signature> for SignatureView {
    fn from(s: &Signature) -> Self {
        Self {
            signer: s.printed_name.clone(),
            credential: s.credential.clone(),
            // As the API's rendering prints it: the time, then its zone.
            at: s.signed_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            iso: s.signed_at.to_rfc3339(),
            time_zone: s.time_zone.clone(),
            meaning: s.meaning.clone(),
        }
    }
}

/// One run of a word diff (`equal`, `insert` or `delete`).
pub(crate) struct DiffRun {
    pub(super) op: &'static str,
    pub(super) text: String,
}

/// A word diff as the templates show it.
pub(super) fn diff_runs(diff: &[DiffOp]) -> Vec<DiffRun> {
    diff.iter()
        .map(|d| DiffRun {
            op: d.op,
            text: d.text.clone(),
        })
        .collect()
}

/// An amendment as shown.
pub(crate) struct AmendmentView {
    version: i32,
    reason: String,
    ai_assisted: bool,
    /// The assistant turn it came from.
    turn: Option<String>,
    signature: SignatureView,
    diff: Vec<DiffRun>,
}

/// An addendum as shown.
pub(crate) struct AddendumView {
    version: i32,
    reason: String,
    text: String,
    signature: SignatureView,
}

/// A patient's amendment request linked to the note (req SIG-07): where it stands and which
/// documents it holds (read in full on the request, exported with the note).
pub(crate) struct LinkedRequestView {
    /// The request's page.
    href: String,
    received: String,
    status: &'static str,
    documents: &'static str,
}

impl LinkedRequestView {
    fn of(practice: PracticeId, r: &store::amendments::AmendmentRequestSummary) -> Self {
        use domain::rights::Status;
        Self {
            href: format!(
                "/app/practices/{practice}/requests/amendment/{}",
                r.request_id
            ),
            received: r.received_at.format("%Y-%m-%d").to_string(),
            status: match r.status {
                Status::Open => "open",
                Status::Extended => "open (extended once)",
                Status::Granted => "accepted",
                Status::Denied => "denied",
            },
            documents: match (r.disagreement_at.is_some(), r.rebuttal_at.is_some()) {
                (true, true) => "request, denial, statement of disagreement and rebuttal",
                (true, false) => "request, denial and statement of disagreement",
                _ if r.status == Status::Denied => "request and denial",
                _ => "request",
            },
        }
    }
}

/// A note: the draft's editor, or the locked note.
#[derive(Template)]
#[template(path = "note.html")]
pub(crate) struct NotePage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    note_url: String,
    chart: String,
    banner: Option<Banner>,
    title: &'static str,
    status: &'static str,
    draft: bool,
    version: i32,
    sections: Vec<Section>,
    fields: Vec<NoteField>,
    /// As signed (the original, when amended) and its manifestation.
    signed: Vec<Section>,
    signed_fields: Vec<NoteField>,
    signature: Option<SignatureView>,
    amendments: Vec<AmendmentView>,
    addenda: Vec<AddendumView>,
    /// The patient's amendment requests that name this note.
    amendment_requests: Vec<LinkedRequestView>,
    errors: FieldErrors,
    conflict: Option<Conflict>,
    done: Option<&'static str>,
    /// What the clinician changed from the scribe draft the note was made from.
    from_draft: Option<FromDraft>,
}

/// A note's changes from the draft it was made from.
pub(crate) struct FromDraft {
    ai_written: bool,
    signed: bool,
    diff: Vec<DiffRun>,
}

/// What a refused save shows: the user's version and the newer saved one.
pub(crate) struct Conflict {
    /// The version the user's edit was based on.
    mine: i32,
    /// The saved version now current.
    theirs: i32,
    /// Who saved it, and when.
    by: String,
    at: String,
    /// Its content.
    sections: Vec<Section>,
    fields: Vec<NoteField>,
}

/// `?done=` after a change.
#[derive(Deserialize)]
pub(crate) struct DoneQuery {
    done: Option<String>,
}

fn done_message(done: Option<&str>) -> Option<&'static str> {
    match done {
        Some("saved") => Some("Draft saved."),
        Some("signed") => Some("Note signed and locked."),
        Some("amended") => Some("Amendment signed."),
        Some("addendum") => Some("Addendum signed."),
        _ => None,
    }
}

impl NotePage {
    fn new(
        chrome: Chrome,
        practice_id: PracticeId,
        n: &store::notes::Note,
        banner: Option<Banner>,
    ) -> Self {
        let draft = n.status == NoteStatus::Draft;
        let original = n.signed_content.as_ref().unwrap_or(&n.content);
        Self {
            assets: assets(),
            chrome: Some(chrome),
            note_url: note_href(practice_id, n.note_id),
            chart: chart_href(practice_id, n.patient_id),
            banner,
            title: n.template.title(),
            status: status_label(n),
            draft,
            version: n.version,
            sections: sections(&n.content),
            fields: note_fields(n.template, &n.content),
            signed: if draft {
                Vec::new()
            } else {
                sections(original)
            },
            signed_fields: if draft {
                Vec::new()
            } else {
                note_fields(n.template, original)
            },
            signature: n.signature.as_ref().map(SignatureView::from),
            amendments: n
                .amendments
                .iter()
                .map(|a| AmendmentView {
                    version: a.version,
                    reason: a.reason.clone(),
                    ai_assisted: a.ai_assisted,
                    turn: a.assistant_turn_id.map(|t| t.to_string()),
                    signature: SignatureView::from(&a.signature),
                    diff: diff_runs(&a.diff),
                })
                .collect(),
            addenda: n
                .addenda
                .iter()
                .map(|a| AddendumView {
                    version: a.version,
                    reason: a.reason.clone(),
                    text: a.text.clone(),
                    signature: SignatureView::from(&a.signature),
                })
                .collect(),
            amendment_requests: n
                .amendment_requests
                .iter()
                .map(|r| LinkedRequestView::of(practice_id, r))
                .collect(),
            errors: FieldErrors::default(),
            conflict: None,
            done: None,
            from_draft: None,
        }
    }
}

/// Reads a note as the API's `note_get` does (`404`; `410` once deleted), audited
/// `note.read` after the decryption.
async fn read_note(
    state: &AppState,
    tx: &mut TenantTx,
    id: NoteId,
    details: Option<serde_json::Value>,
) -> Result<store::notes::Note, WebError> {
    Ok(server::actions::read_note(tx, state.store.keyring()?, id, details).await?)
}

/// `GET /app/practices/{practice_id}/notes/{note_id}`: a draft in its editor (autosaved), or
/// the locked note with its signature manifestation, amendments (word diff) and addenda
/// (audited `note.read`, as the API).
pub(crate) async fn note_page(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let id: NoteId = path_id(&id, "note")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let n = read_note(&state, &mut tx, id, None).await?;
    let banner = banner(&mut tx, n.patient_id).await?;
    let from_draft =
        server::actions::scribe::changes_from_draft(&mut tx, state.store.keyring()?, &n).await?;
    tx.commit().await?;
    let mut page = NotePage::new(chrome, practice_id, &n, banner);
    page.done = done_message(q.done.as_deref());
    page.from_draft = from_draft.map(|c| FromDraft {
        ai_written: c.ai_written,
        signed: c.signed,
        diff: diff_runs(&c.diff),
    });
    Ok(with_etag(n.version, html(&page)?))
}

/// A save refused as stale: the newer saved version (who, when, what), read in the same
/// transaction (audited `note.read` and `membership.list` for the author's name).
async fn conflict(
    state: &AppState,
    tx: &mut TenantTx,
    id: NoteId,
    mine: i32,
) -> Result<(store::notes::Note, Conflict), WebError> {
    let n = read_note(state, tx, id, Some(serde_json::json!({ "conflict": true }))).await?;
    let versions = store::notes::history(tx, state.store.keyring()?, id)
        .await?
        .unwrap_or_default();
    let names = member_names(tx).await?;
    let last = versions.iter().rev().find(|v| v.version == n.version);
    let c = Conflict {
        mine,
        theirs: n.version,
        by: last.map_or_else(String::new, |v| {
            if v.author_id == tx.actor() {
                "you (in another window)".to_owned()
            } else {
                name_of(&names, v.author_id)
            }
        }),
        at: last.map_or_else(String::new, |v| utc_seconds(v.created_at)),
        sections: sections(&n.content),
        fields: note_fields(n.template, &n.content),
    };
    Ok((n, c))
}

/// What a save does with the user's content.
enum Saved {
    /// A new version.
    Version(Box<store::notes::Note>),
    /// Refused: the user's form back with its messages.
    Refused(FieldErrors),
    /// Someone saved first.
    Stale(Box<(store::notes::Note, Conflict)>),
}

/// Saves a draft as the API's `note_save` does (`store::notes::save_draft` against the
/// version named, audited `note.update` with the version).
async fn save(
    state: &AppState,
    tx: &mut TenantTx,
    id: NoteId,
    expected: i32,
    form: &Pairs,
) -> Result<Saved, WebError> {
    let template = store::notes::get(tx, state.store.keyring()?, id)
        .await?
        .ok_or(WebError(AppError::NotFound("note")))?
        .template;
    let content = match form.content(template) {
        Ok(c) => c,
        Err(errors) => return Ok(Saved::Refused(errors)),
    };
    match server::actions::save_note(tx, state.store.keyring()?, id, Some(expected), &content).await
    {
        Ok(n) => Ok(Saved::Version(Box::new(n))),
        // Stale: someone saved first (the API's `412`).
        Err(AppError::PreconditionFailed) => Ok(Saved::Stale(Box::new(
            conflict(state, tx, id, expected).await?,
        ))),
        Err(e) => Err(WebError(e)),
    }
}

/// `POST /app/practices/{practice_id}/notes/{note_id}`: saves the draft (the form's
/// `version`, or `overwrite` when the user chose to save over a newer version) and shows it
/// (`303`). Stale: `412` with both versions; refused input: `400`; nothing changed.
pub(crate) async fn note_save(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<Pairs>,
) -> Result<Response, WebError> {
    let id: NoteId = path_id(&id, "note")?;
    let expected = match form.get("overwrite").and_then(|v| v.parse::<i32>().ok()) {
        Some(v) => v,
        None => expected_version(&headers, &form)?,
    };
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    match save(&state, &mut tx, id, expected, &form).await? {
        Saved::Version(n) => {
            tx.commit().await?;
            Ok(with_etag(
                n.version,
                super::redirect(&format!("{}?done=saved", note_href(practice_id, id))),
            ))
        }
        Saved::Refused(errors) => {
            let chrome = chrome(&mut tx).await?;
            let n = read_note(&state, &mut tx, id, None).await?;
            let banner = banner(&mut tx, n.patient_id).await?;
            tx.commit().await?;
            let mut page = NotePage::new(chrome, practice_id, &n, banner);
            page.version = expected;
            page.sections = form_sections(&form);
            page.errors = errors;
            html_status(StatusCode::BAD_REQUEST, &page)
        }
        Saved::Stale(conflicted) => {
            let (n, c) = *conflicted;
            let chrome = chrome(&mut tx).await?;
            let banner = banner(&mut tx, n.patient_id).await?;
            tx.commit().await?;
            let mut page = NotePage::new(chrome, practice_id, &n, banner);
            // The user's text stays in the form, based on the version they had.
            page.version = expected;
            page.sections = form_sections(&form);
            page.conflict = Some(c);
            html_status(StatusCode::PRECONDITION_FAILED, &page)
        }
    }
}

pub(super) fn form_sections(form: &Pairs) -> Vec<Section> {
    let c = NoteContent {
        subjective: form.get("subjective").unwrap_or("").to_owned(),
        objective: form.get("objective").unwrap_or("").to_owned(),
        assessment: form.get("assessment").unwrap_or("").to_owned(),
        plan: form.get("plan").unwrap_or("").to_owned(),
        fields: std::collections::BTreeMap::new(),
    };
    sections(&c)
}

/// The autosave answer: the save state, and the form's version fields (out of band).
#[derive(Template)]
#[template(path = "note_saved.html")]
pub(crate) struct SavedFragment {
    version: i32,
    message: String,
    conflict: Option<Conflict>,
}

/// `POST /app/practices/{practice_id}/notes/{note_id}/autosave` (htmx): saves the draft
/// against the version in `If-Match` and answers the save state; the version fields of the
/// page's forms follow (out-of-band swap) and the response names the new version in `ETag`.
/// Stale: `412` with both versions (the user's text stays in the form); refused input: `400`.
pub(crate) async fn note_autosave(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    _: Fragment,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<Pairs>,
) -> Result<Response, WebError> {
    let id: NoteId = path_id(&id, "note")?;
    let expected = expected_version(&headers, &form)?;
    let mut tx = ctx.tx;
    match save(&state, &mut tx, id, expected, &form).await? {
        Saved::Version(n) => {
            let at = utc_seconds(tx.now());
            tx.commit().await?;
            Ok(with_etag(
                n.version,
                html(&SavedFragment {
                    version: n.version,
                    message: format!("Draft saved (version {}) at {at}.", n.version),
                    conflict: None,
                })?,
            ))
        }
        Saved::Refused(errors) => {
            // Nothing changed and nothing was shown: the transaction rolls back.
            drop(tx);
            html_status(
                StatusCode::BAD_REQUEST,
                &SavedFragment {
                    version: expected,
                    message: refused_message(&errors),
                    conflict: None,
                },
            )
        }
        Saved::Stale(conflicted) => {
            let (_, c) = *conflicted;
            tx.commit().await?;
            html_status(
                StatusCode::PRECONDITION_FAILED,
                &SavedFragment {
                    version: expected,
                    message: format!(
                        "Not saved: version {} was saved since your version {}.",
                        c.theirs, c.mine
                    ),
                    conflict: Some(c),
                },
            )
        }
    }
}

/// The messages of a refused autosave, in one line.
fn refused_message(errors: &FieldErrors) -> String {
    let mut m = "Not saved:".to_owned();
    for f in ["subjective", "objective", "assessment", "plan", "fields"] {
        if let Some(e) = errors.get(f) {
            m.push(' ');
            m.push_str(e);
        }
    }
    m
}

// ----------------------------------------------------------------------------------------
// Step-up

/// The re-authentication form: an authenticator code, then the change again.
#[derive(Template)]
#[template(path = "chart_step_up.html")]
pub(crate) struct StepUpPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    /// What the change was ("sign this note").
    what: String,
    /// Where the change goes after the step-up.
    then: String,
    /// The change's own fields, posted again.
    carried: Vec<(String, String)>,
    error: Option<String>,
}

/// Signing, amending and adding to a note need a recent second factor (the API's
/// `require_step_up`): the transaction to go on with, or — committed — the re-authentication
/// form for `what` (`401`), which posts back to the note's `action` route with the form carried.
async fn stepped_up(
    state: &AppState,
    ctx: server::extract::Ctx<Clinical>,
    note: NoteId,
    action: &str,
    what: &str,
    form: &Pairs,
) -> Result<Result<TenantTx, Response>, WebError> {
    let then = format!("{}/{action}", note_href(ctx.tx.practice(), note));
    stepped_up_to(state, ctx, then, what, form).await
}

/// [`stepped_up`] for a change posted to `then` (a target [`step_up_target`] accepts): the
/// transaction to go on with, or the re-authentication form (`401`) that posts back there.
pub(super) async fn stepped_up_to(
    state: &AppState,
    ctx: server::extract::Ctx<Clinical>,
    then: String,
    what: &str,
    form: &Pairs,
) -> Result<Result<TenantTx, Response>, WebError> {
    let fresh = ctx.require_step_up(state).is_ok();
    let mut tx = ctx.tx;
    if fresh {
        return Ok(Ok(tx));
    }
    let chrome = chrome(&mut tx).await?;
    tx.commit().await?;
    html_status(
        StatusCode::UNAUTHORIZED,
        &StepUpPage {
            assets: assets(),
            chrome: Some(chrome),
            what: what.to_owned(),
            then,
            carried: form.carried(),
            error: None,
        },
    )
    .map(Err)
}

/// Where a step-up may send the browser on: a note change of this app, or accepting a
/// patient's amendment request onto a note (nothing else, so the form is no open redirect).
fn step_up_target(then: &str) -> Option<&str> {
    let rest = then.strip_prefix("/app/practices/")?;
    let ok_chars = rest
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '/');
    let parts: Vec<&str> = rest.split('/').collect();
    let shape = matches!(
        parts.as_slice(),
        [_, "notes", _, "sign" | "amend" | "addenda"] | [_, "requests", "amendment", _, "accept"]
    );
    (ok_chars && shape).then_some(then)
}

/// `POST /app/step-up`: presents the authenticator code on the session
/// ([`signin::present_totp`]: single use, audited, new token — the API's step-up), then
/// repeats the change it was asked for (`307` to `then`, with the change's fields). A wrong
/// code shows the form again (`401`); a `then` that is not a note change is `400`.
pub(crate) async fn step_up(
    State(state): State<AppState>,
    client: Client,
    SignedIn(session): SignedIn,
    Form(form): Form<Pairs>,
) -> Result<Response, WebError> {
    session.require_mfa()?;
    let then = step_up_target(form.get("then").unwrap_or(""))
        .ok_or_else(|| {
            WebError(AppError::Invalid(
                "then: not a change this form can repeat".into(),
            ))
        })?
        .to_owned();
    let code = Zeroizing::new(form.get("code").unwrap_or("").trim().to_owned());
    match signin::present_totp(&state, &client, session, &code).await {
        Ok(s) => {
            let mut res = temporary_redirect(&then);
            let max_age = (s.expires_at - state.clock.now()).num_seconds();
            if let Ok(v) = HeaderValue::from_str(&signin::session_cookie(&s.token, max_age)) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            Ok(res)
        }
        Err(e @ AppError::SecondFactorFailed) => {
            let mut res = html(&StepUpPage {
                assets: assets(),
                chrome: None,
                what: "continue".to_owned(),
                then,
                carried: form.carried(),
                error: Some(e.to_string()),
            })?;
            *res.status_mut() = e.status();
            Ok(res)
        }
        Err(e) => Err(e.into()),
    }
}

// ----------------------------------------------------------------------------------------
// Sign, amend, addendum

/// `POST /app/practices/{practice_id}/notes/{note_id}/sign`: signs the draft version named
/// (`version`) as the signed-in clinician, as the API's `note_sign` (step-up required: without
/// a recent second factor, the re-authentication form, `401`; audited `note.sign`).
pub(crate) async fn note_sign(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<Pairs>,
) -> Result<Response, WebError> {
    let id: NoteId = path_id(&id, "note")?;
    let mut tx = match stepped_up(&state, ctx, id, "sign", "sign this note", &form).await? {
        Ok(tx) => tx,
        Err(form_again) => return Ok(form_again),
    };
    let practice_id = tx.practice();
    let expected = expected_version(&headers, &form)?;
    let n = server::actions::sign_note(&mut tx, state.store.keyring()?, id, Some(expected)).await?;
    tx.commit().await?;
    Ok(with_etag(
        n.version,
        super::redirect(&format!("{}?done=signed", note_href(practice_id, id))),
    ))
}

/// The amendment and addendum forms.
#[derive(Template)]
#[template(path = "note_amend.html")]
pub(crate) struct AmendPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    note: String,
    banner: Option<Banner>,
    title: &'static str,
    version: i32,
    sections: Vec<Section>,
    fields: Vec<NoteField>,
    reason: String,
    addendum_text: String,
    addendum_reason: String,
    errors: FieldErrors,
    /// The assistant's proposal shown above the form, when one was asked for.
    assist: Option<AmendAssist>,
    /// The assistant turn the amendment in the form comes from (signed as AI-assisted).
    assistant_turn_id: Option<String>,
}

/// An AI-proposed amendment as shown: what was asked, the diff against the current text and
/// the flagged sentences with what each flag means.
pub(crate) struct AmendAssist {
    instruction: String,
    diff: Vec<DiffRun>,
    flagged: Vec<(String, String)>,
}

/// `GET /app/practices/{practice_id}/notes/{note_id}/amend`: the amendment form (the current
/// content to change, a reason) and the addendum form (audited `note.read`). A draft is
/// edited, not amended (`409`).
pub(crate) async fn amend_page(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let id: NoteId = path_id(&id, "note")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let n = read_note(&state, &mut tx, id, None).await?;
    let banner = banner(&mut tx, n.patient_id).await?;
    tx.commit().await?;
    if n.status != NoteStatus::Signed {
        return Err(WebError(note_rules::refusal(store::notes::Refusal::Locked)));
    }
    html(&AmendPage {
        assets: assets(),
        chrome: Some(chrome),
        note: note_href(practice_id, id),
        banner,
        title: n.template.title(),
        version: n.version,
        sections: sections(&n.content),
        fields: note_fields(n.template, &n.content),
        reason: String::new(),
        addendum_text: String::new(),
        addendum_reason: String::new(),
        errors: FieldErrors::default(),
        assist: None,
        assistant_turn_id: None,
    })
}

/// `POST /app/practices/{practice_id}/notes/{note_id}/amend/assist`: asks the practice's
/// drafting provider for an amendment as the instruction says (the API's `note_assist`: one
/// assistant turn, `note.read`) and shows the amendment form filled with the proposal, its
/// diff against the current text and its flags; signing it names the turn (AI-assisted).
/// A failed AI call is committed (its turn stays) and answered with its error.
pub(crate) async fn amend_assist(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<Pairs>,
) -> Result<Response, WebError> {
    let id: NoteId = path_id(&id, "note")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let instruction = server::actions::assist::instruction(form.get("instruction").unwrap_or(""))?;
    let chrome = chrome(&mut tx).await?;
    let outcome =
        server::actions::assist::propose_amendment(&mut tx, &state, id, &instruction).await?;
    let banner = match &outcome {
        Ok(p) => banner(&mut tx, p.patient_id).await?,
        Err(_) => None,
    };
    tx.commit().await?;
    let p = outcome.map_err(WebError)?;
    html(&AmendPage {
        assets: assets(),
        chrome: Some(chrome),
        note: note_href(practice_id, id),
        banner,
        title: p.template.title(),
        version: p.version,
        sections: sections(&p.content),
        fields: note_fields(p.template, &p.content),
        reason: String::new(),
        addendum_text: String::new(),
        addendum_reason: String::new(),
        errors: FieldErrors::default(),
        assistant_turn_id: Some(p.turn_id.to_string()),
        assist: Some(AmendAssist {
            instruction,
            diff: diff_runs(&p.diff),
            flagged: p
                .sentences
                .iter()
                .filter(|s| !s.flag_reasons.is_empty())
                .map(|s| (s.text.clone(), s.flag_reasons.join("; ")))
                .collect(),
        }),
    })
}

/// A refused amendment or addendum: the forms again with the messages (`400`).
async fn amend_refused(
    state: &AppState,
    mut tx: TenantTx,
    id: NoteId,
    form: &Pairs,
    errors: FieldErrors,
) -> Result<Response, WebError> {
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let n = read_note(state, &mut tx, id, None).await?;
    let banner = banner(&mut tx, n.patient_id).await?;
    tx.commit().await?;
    let mut sections = sections(&n.content);
    if form.get("subjective").is_some() {
        sections = form_sections(form);
    }
    html_status(
        StatusCode::BAD_REQUEST,
        &AmendPage {
            assets: assets(),
            chrome: Some(chrome),
            note: note_href(practice_id, id),
            banner,
            title: n.template.title(),
            version: n.version,
            sections,
            fields: note_fields(n.template, &n.content),
            reason: form.get("reason").unwrap_or("").to_owned(),
            addendum_text: form.get("text").unwrap_or("").to_owned(),
            addendum_reason: form.get("addendum_reason").unwrap_or("").to_owned(),
            errors,
            assist: None,
            assistant_turn_id: form
                .get("assistant_turn_id")
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        },
    )
}

/// `POST /app/practices/{practice_id}/notes/{note_id}/amend`: amends the signed note as the
/// API's `note_amend` (step-up required; a reason required; a new signed version with the
/// word diff against the signed one; audited `note.amend`). An amendment proposed by the
/// assistant ([`amend_assist`]) carries its turn in `assistant_turn_id` and is signed as
/// AI-assisted naming it (the API's check: a turn of this practice about this patient).
pub(crate) async fn note_amend(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<Pairs>,
) -> Result<Response, WebError> {
    let id: NoteId = path_id(&id, "note")?;
    let mut tx = match stepped_up(&state, ctx, id, "amend", "sign this amendment", &form).await? {
        Ok(tx) => tx,
        Err(form_again) => return Ok(form_again),
    };
    let practice_id = tx.practice();
    let expected = expected_version(&headers, &form)?;
    let template = store::notes::get(&mut tx, state.store.keyring()?, id)
        .await?
        .ok_or(WebError(AppError::NotFound("note")))?
        .template;
    let mut errors = FieldErrors::default();
    let reason = domain::values::free_text("reason", form.get("reason").unwrap_or(""), REASON_MAX)
        .map_err(|e| errors.refused("reason", "Reason", &e))
        .ok();
    let content = match form.content(template) {
        Ok(c) => Some(c),
        Err(e) => {
            errors = merge(errors, &e);
            None
        }
    };
    let (Some(reason), Some(content)) = (reason, content) else {
        return amend_refused(&state, tx, id, &form, errors).await;
    };
    let assistant_turn_id = match form.get("assistant_turn_id").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(
            t.parse::<uuid::Uuid>()
                .map_err(|_| WebError(AppError::Invalid("assistant_turn_id: not an id".into())))?,
        ),
    };
    let n = server::actions::amend_note(
        &mut tx,
        state.store.keyring()?,
        id,
        Some(expected),
        &store::notes::AmendmentInput {
            content: &content,
            reason: &reason,
            ai_assisted: assistant_turn_id.is_some(),
            assistant_turn_id,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(with_etag(
        n.version,
        super::redirect(&format!("{}?done=amended", note_href(practice_id, id))),
    ))
}

fn merge(mut a: FieldErrors, b: &FieldErrors) -> FieldErrors {
    for field in [
        "subjective",
        "objective",
        "assessment",
        "plan",
        "fields",
        "reason",
    ] {
        if let Some(m) = b.get(field) {
            a.add(field, m.to_owned());
        }
    }
    a
}

/// `POST /app/practices/{practice_id}/notes/{note_id}/addenda`: appends a signed addendum as
/// the API's `note_addendum` (step-up required; text and reason required; audited
/// `note.addendum`).
pub(crate) async fn note_addendum(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<Pairs>,
) -> Result<Response, WebError> {
    let id: NoteId = path_id(&id, "note")?;
    let mut tx = match stepped_up(&state, ctx, id, "addenda", "sign this addendum", &form).await? {
        Ok(tx) => tx,
        Err(form_again) => return Ok(form_again),
    };
    let practice_id = tx.practice();
    let expected = expected_version(&headers, &form)?;
    let mut errors = FieldErrors::default();
    let text = domain::values::free_text("text", form.get("text").unwrap_or(""), ADDENDUM_MAX)
        .map_err(|e| errors.refused("text", "Addendum", &e))
        .ok();
    let reason = domain::values::free_text(
        "reason",
        form.get("addendum_reason").unwrap_or(""),
        REASON_MAX,
    )
    .map_err(|e| errors.refused("addendum_reason", "Reason", &e))
    .ok();
    let (Some(text), Some(reason)) = (text, reason) else {
        return amend_refused(&state, tx, id, &form, errors).await;
    };
    let n = server::actions::add_addendum(
        &mut tx,
        state.store.keyring()?,
        id,
        Some(expected),
        &text,
        &reason,
    )
    .await?;
    tx.commit().await?;
    Ok(with_etag(
        n.version,
        super::redirect(&format!("{}?done=addendum", note_href(practice_id, id))),
    ))
}

// ----------------------------------------------------------------------------------------
// History and verify

/// One version in the history.
pub(crate) struct VersionRow {
    version: i32,
    kind: &'static str,
    author: String,
    at: String,
    iso: String,
    reason: Option<String>,
    ai_assisted: bool,
    signature: Option<SignatureView>,
    hash_ok: bool,
    text: String,
}

/// A note's versions.
#[derive(Template)]
#[template(path = "note_history.html")]
pub(crate) struct HistoryPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    note: String,
    banner: Option<Banner>,
    title: &'static str,
    versions: Vec<VersionRow>,
}

/// `GET /app/practices/{practice_id}/notes/{note_id}/history`: every version, oldest first,
/// each with its author, time, kind, reason, AI flag, signature and hash check (the API's
/// `note_versions`, audited `note.read` with `history`; `membership.list` for the names).
pub(crate) async fn note_history(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let id: NoteId = path_id(&id, "note")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let versions = store::notes::history(&mut tx, state.store.keyring()?, id)
        .await?
        .ok_or(WebError(AppError::NotFound("note")))?;
    let n = read_note(
        &state,
        &mut tx,
        id,
        Some(serde_json::json!({ "history": true })),
    )
    .await?;
    let names = member_names(&mut tx).await?;
    let banner = banner(&mut tx, n.patient_id).await?;
    tx.commit().await?;
    html(&HistoryPage {
        assets: assets(),
        chrome: Some(chrome),
        note: note_href(practice_id, id),
        banner,
        title: n.template.title(),
        versions: versions
            .into_iter()
            .map(|v| VersionRow {
                version: v.version,
                kind: v.kind.as_str(),
                author: name_of(&names, v.author_id),
                at: utc_seconds(v.created_at),
                iso: v.created_at.to_rfc3339(),
                reason: v.reason,
                ai_assisted: v.ai_assisted,
                signature: v.signature.as_ref().map(SignatureView::from),
                hash_ok: v.hash_ok,
                text: v.content.render_text(),
            })
            .collect(),
    })
}

/// The hash check's result.
#[derive(Template)]
#[template(path = "note_verify.html")]
pub(crate) struct VerifyPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    note: String,
    banner: Option<Banner>,
    title: &'static str,
    ok: bool,
    versions: usize,
    mismatched: String,
    not_bound: String,
}

fn list(v: &[i32]) -> String {
    let mut s = String::new();
    for (i, n) in v.iter().enumerate() {
        let _ = write!(s, "{}{n}", if i == 0 { "" } else { ", " });
    }
    s
}

/// `GET /app/practices/{practice_id}/notes/{note_id}/verify`: recomputes the hash of every
/// version (the API's `note_verify`, audited `note.verify` with its outcome; `note.read` for
/// the title shown).
pub(crate) async fn note_verify(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let id: NoteId = path_id(&id, "note")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let v = server::actions::verify_note(&mut tx, state.store.keyring()?, id).await?;
    let ok = v.mismatched.is_empty();
    let n = read_note(&state, &mut tx, id, None).await?;
    let banner = banner(&mut tx, n.patient_id).await?;
    tx.commit().await?;
    html(&VerifyPage {
        assets: assets(),
        chrome: Some(chrome),
        note: note_href(practice_id, id),
        banner,
        title: n.template.title(),
        ok,
        versions: v.versions,
        mismatched: list(&v.mismatched),
        not_bound: list(&v.manifestation_not_bound),
    })
}

// ----------------------------------------------------------------------------------------
// Break-glass

/// The break-glass form.
#[derive(Deserialize)]
pub(crate) struct BreakGlassForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    minutes: String,
}

/// `POST /app/practices/{practice_id}/patients/{patient_id}/break-glass`: opens the patient
/// outside the care team as the API's `break_glass_open` does (a reason required, 1–240
/// minutes; audited `break_glass.open`; the alert raised), then the chart (`303`). Refused
/// input: the form again (`400`), nothing opened.
pub(crate) async fn break_glass_open(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<BreakGlassForm>,
) -> Result<Response, WebError> {
    let patient: PatientId = path_id(&id, "patient")?;
    let mut errors = FieldErrors::default();
    let reason =
        domain::values::free_text("reason", &form.reason, bg_rules::BREAK_GLASS_REASON_MAX)
            .map_err(|e| errors.refused("reason", "Reason", &e))
            .ok();
    let asked = match super::filled(&form.minutes) {
        None => Ok(None),
        Some(m) => m.parse::<i64>().map(Some),
    };
    let minutes = if let Ok(m) = asked {
        bg_rules::break_glass_minutes(m)
            .map_err(|_| errors.add("minutes", "Minutes: must be 1 to 240."))
            .ok()
    } else {
        errors.add("minutes", "Minutes: must be a whole number, 1 to 240.");
        None
    };
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    server::actions::break_glass_target(&mut tx, patient).await?;
    let (Some(reason), Some(minutes)) = (reason, minutes) else {
        let chrome = chrome(&mut tx).await?;
        let p = super::patients::read_patient(&state, &mut tx, patient).await?;
        tx.commit().await?;
        return html_status(
            StatusCode::BAD_REQUEST,
            &BreakGlassPage {
                assets: assets(),
                chrome: Some(chrome),
                practice_id,
                patient_id: patient,
                patient: patient_name(&p),
                reason: form.reason,
                minutes: form.minutes,
                errors,
            },
        );
    };
    let g = server::actions::open_break_glass(
        &mut tx,
        state.store.keyring()?,
        patient,
        &reason,
        minutes,
    )
    .await?;
    tx.commit().await?;
    server::actions::break_glass_alert(practice_id, &g);
    Ok(super::redirect(&format!(
        "{}?done=break-glass",
        chart_href(practice_id, patient)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 17 — the step-up repeats only a note change of this app, or accepting an amendment
    // request onto a note (no open redirect).
    #[test]
    fn step_up_goes_on_to_note_changes_only() {
        let p = PracticeId::new();
        let n = NoteId::new();
        for ok in [
            format!("/app/practices/{p}/notes/{n}/sign"),
            format!("/app/practices/{p}/notes/{n}/amend"),
            format!("/app/practices/{p}/notes/{n}/addenda"),
            format!("/app/practices/{p}/requests/amendment/{n}/accept"),
        ] {
            assert_eq!(step_up_target(&ok), Some(ok.as_str()));
        }
        for bad in [
            "https://evil.example.invalid/app/practices/x/notes/y/sign".to_owned(),
            "//evil.example.invalid/".to_owned(),
            format!("/app/practices/{p}/notes/{n}/sign?x=1"),
            format!("/app/practices/{p}/notes/{n}/delete"),
            format!("/app/practices/{p}/requests/access/{n}/accept"),
            format!("/app/practices/{p}/requests/amendment/{n}/deny"),
            format!("/app/practices/{p}/../x/notes/{n}/sign"),
            "/app/sign-out".to_owned(),
            String::new(),
        ] {
            assert_eq!(step_up_target(&bad), None, "{bad}");
        }
    }

    // issue 17 — the locked note shows its signature manifestation (signer, credential,
    // time, zone, meaning), an amendment's AI-assisted flag and reason, and the word diff as
    // <ins>/<del> with screen-reader text; the template escapes what the clinician typed.
    #[test]
    fn a_locked_note_shows_its_manifestation_flags_and_diff() {
        let practice = PracticeId::new();
        let signature = |at: &str| Signature {
            signer_id: serde_json::from_value(serde_json::json!(
                "00000000-0000-4000-8000-000000000001"
            ))
            .unwrap(),
            printed_name: "Ana <Sample>".into(),
            credential: Some("RDH".into()),
            signed_at: at.parse().unwrap(),
            time_zone: "UTC".into(),
            meaning: domain::notes::SIGNATURE_MEANING.into(),
        };
        let original = NoteContent {
            subjective: "Gums tender on the lower left.".into(),
            ..NoteContent::default()
        };
        let amended = NoteContent {
            subjective: "Gums tender on the upper left.".into(),
            ..NoteContent::default()
        };
        let n = store::notes::Note {
            note_id: NoteId::new(),
            patient_id: PatientId::new(),
            author_id: UserId::new(),
            template: NoteTemplate::Free,
            visit_id: None,
            status: NoteStatus::Signed,
            version: 3,
            content: amended.clone(),
            signature: Some(signature("2030-01-07T09:30:00Z")),
            signed_version: Some(2),
            signed_content: Some(original.clone()),
            amendments: vec![store::notes::Amendment {
                version: 3,
                author_id: UserId::new(),
                reason: "Wrong quadrant.".into(),
                ai_assisted: true,
                assistant_turn_id: serde_json::from_value(serde_json::json!(
                    "00000000-0000-4000-8000-000000000002"
                ))
                .unwrap(),
                signature: signature("2030-01-07T10:00:00Z"),
                diff: domain::notes::word_diff(&original.render_text(), &amended.render_text()),
                content: amended,
            }],
            addenda: Vec::new(),
            amendment_requests: Vec::new(),
            created_at: "2030-01-07T09:00:00Z".parse().unwrap(),
        };
        let chrome = Chrome {
            user: "Ana".into(),
            practice: Some((practice, "Practice".into())),
            nav: Vec::new(),
            switch: Vec::new(),
            idle_seconds: None,
            recording: None,
        };
        let page = NotePage::new(chrome, practice, &n, None).render().unwrap();
        assert!(page.contains("Signed, amended"), "{page}");
        assert!(page.contains(
            "Electronically signed by <span class=\"signer\">Ana &#60;Sample&#62;</span>, RDH on <time datetime=\"2030-01-07T09:30:00+00:00\">2030-01-07 09:30:00</time> (UTC). Meaning: authored and approved."
        ), "{page}");
        assert!(page.contains("<span class=\"badge ai\">AI-assisted</span>"));
        assert!(page.contains("Wrong quadrant."));
        assert!(page.contains(
            "<del><span class=\"visually-hidden\">[removed: </span>lower<span class=\"visually-hidden\">]</span></del>"
        ), "{page}");
        assert!(page.contains(
            "<ins><span class=\"visually-hidden\">[added: </span>upper<span class=\"visually-hidden\">]</span></ins>"
        ));
        assert!(
            !page.contains("id=\"note-form\""),
            "no editor on a locked note"
        );
        assert!(!page.contains("break-glass-banner"));
    }

    // issue 17 — the form's template fields are parsed by type and checked by the API's rule.
    #[test]
    fn note_form_fields_follow_the_template() {
        let form = Pairs(vec![
            ("subjective".into(), "Sore\r\ngums".into()),
            ("f.calculus".into(), "light".into()),
            ("f.plaque_score".into(), "2".into()),
            ("f.bleeding_on_probing".into(), "yes".into()),
            ("f.fluoride_applied".into(), String::new()),
        ]);
        let c = form.content(NoteTemplate::DentalHygiene).unwrap();
        assert_eq!(c.subjective, "Sore\ngums");
        assert_eq!(c.fields.len(), 3);
        assert_eq!(c.fields["plaque_score"], FieldValue::Int(2));
        let bad = Pairs(vec![("f.plaque_score".into(), "9".into())]);
        let e = bad.content(NoteTemplate::DentalHygiene).unwrap_err();
        assert!(e.get("fields").unwrap().contains("Plaque score"));
        assert_eq!(label_of("recall_months"), "Recall months");
        assert_eq!(list(&[1, 3]), "1, 3");
    }
}
