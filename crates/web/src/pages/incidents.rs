//! Security incidents (owners and admins, as in the API; req IR-01, IR-02, IR-03): the list
//! with the clocks coming due, the form to record one, and an incident's page with every
//! clock, its notes, the four-factor risk assessment, scoping from the audit log, the letters
//! and closing. Through the API's actions (`server::actions::incidents`) and input rule
//! ([`server::rules::incidents`]), so the same refusals and audit events (`incident.list`,
//! `incident.create`, `incident.read`, `incident.update`, `incident.assess`,
//! `incident.scope`, `incident.letter`, `incident.close`).

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use domain::incident::{self, DETECTION_SOURCES, RECIPIENT_KINDS};
use domain::{IncidentId, PracticeId};
use serde::Deserialize;
use server::extract::Manage;
use server::{AppError, AppState};
use store::TenantTx;

use super::{Chrome, Member, chrome, filled, html, html_status, path_id, redirect};
use crate::{Assets, WebError, assets};

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A clock row.
pub(crate) struct ClockRow {
    name: &'static str,
    due: String,
    overdue: bool,
}

fn clock_rows(s: &store::incidents::IncidentSummary, now: DateTime<Utc>) -> Vec<ClockRow> {
    if s.status.is_closed() {
        return Vec::new();
    }
    incident::clocks(s.discovered_at, s.terms(), s.affected.as_ref())
        .into_iter()
        .map(|c| ClockRow {
            name: c.kind.as_str(),
            due: when(c.due),
            overdue: c.due <= now,
        })
        .collect()
}

/// An incident in the list.
pub(crate) struct ListRow {
    id: IncidentId,
    discovered: String,
    source: String,
    status: &'static str,
    affected: String,
    next: String,
}

/// The record form as typed.
#[derive(Deserialize, Default)]
pub(crate) struct CreateForm {
    #[serde(default)]
    discovered_at: String,
    #[serde(default)]
    detection_source: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    baa_notice_hours: String,
    #[serde(default)]
    gdpr: Option<String>,
}

/// The list page.
#[derive(Template)]
#[template(path = "incidents.html")]
pub(crate) struct ListPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    rows: Vec<ListRow>,
    sources: &'static [&'static str],
    form: CreateForm,
    error: Option<String>,
}

async fn list_page(
    tx: &mut TenantTx,
    form: CreateForm,
    error: Option<String>,
) -> Result<ListPage, WebError> {
    let practice_id = tx.practice();
    let now = tx.now();
    let chrome = chrome(tx).await?;
    let list = server::actions::incidents::list_incidents(tx).await?;
    let rows = list
        .iter()
        .map(|s| {
            let clocks = if s.status.is_closed() {
                Vec::new()
            } else {
                incident::clocks(s.discovered_at, s.terms(), s.affected.as_ref())
            };
            ListRow {
                id: s.incident_id,
                discovered: when(s.discovered_at),
                source: s.detection_source.clone(),
                status: s.status.as_str(),
                affected: s
                    .affected
                    .as_ref()
                    .map_or_else(|| "not scoped".to_owned(), |a| a.total.to_string()),
                next: clocks
                    .iter()
                    .find(|c| c.due > now)
                    .map_or_else(String::new, |c| {
                        format!("{} {}", c.kind.as_str(), when(c.due))
                    }),
            }
        })
        .collect();
    Ok(ListPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        rows,
        sources: &DETECTION_SOURCES,
        form,
        error,
    })
}

/// `GET /app/practices/{practice_id}/incidents`: the incidents with their next clock, and the
/// form to record one.
pub(crate) async fn incidents_page(Member(ctx): Member<Manage>) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let p = list_page(&mut tx, CreateForm::default(), None).await?;
    tx.commit().await?;
    html(&p)
}

/// A `datetime-local` value (`YYYY-MM-DDTHH:MM`, read as UTC); blank is `None`.
fn datetime(s: &str) -> Result<Option<DateTime<Utc>>, String> {
    match filled(s) {
        None => Ok(None),
        Some(t) => NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M")
            .map(|d| Some(d.and_utc()))
            .map_err(|_| "Discovered: enter a date and time (UTC).".to_owned()),
    }
}

/// `POST /app/practices/{practice_id}/incidents`: records an incident through the API's action
/// (audited `incident.create`), then its page (`303`). Refused: `400` with the list page,
/// nothing recorded.
pub(crate) async fn incident_create(
    State(state): State<AppState>,
    Member(ctx): Member<Manage>,
    Form(form): Form<CreateForm>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let now = tx.now();
    let hours = match filled(&form.baa_notice_hours) {
        None => Ok(None),
        Some(h) => h
            .parse::<u32>()
            .map(Some)
            .map_err(|_| "baa_notice_hours: must be between 1 and 1440".to_owned()),
    };
    let checked = datetime(&form.discovered_at).and_then(|at| {
        hours.and_then(|h| {
            server::rules::incidents::incident_input(
                at,
                form.detection_source.trim(),
                &form.description,
                h,
                form.gdpr.is_some(),
                now,
            )
            .map_err(|e| e.to_string())
        })
    });
    match checked {
        Ok(new) => {
            let id =
                server::actions::incidents::create_incident(&mut tx, state.store.keyring()?, &new)
                    .await?;
            tx.commit().await?;
            Ok(redirect(&format!(
                "/app/practices/{practice_id}/incidents/{id}"
            )))
        }
        Err(message) => {
            let p = list_page(
                &mut tx,
                form,
                Some(format!("Nothing was recorded. {message}")),
            )
            .await?;
            tx.commit().await?;
            html_status(StatusCode::BAD_REQUEST, &p)
        }
    }
}

/// An affected-state row.
pub(crate) struct StateRow {
    state: String,
    patients: u64,
}

/// A letter row.
pub(crate) struct LetterRow {
    kind: String,
    sent_on: String,
    letters: u32,
}

/// The incident page.
#[derive(Template)]
#[template(path = "incident.html")]
pub(crate) struct DetailPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    id: IncidentId,
    status: &'static str,
    closed: bool,
    discovered: String,
    source: String,
    baa_notice_hours: u32,
    gdpr: bool,
    description: String,
    response: String,
    outcome: String,
    clocks: Vec<ClockRow>,
    alerts: Vec<(String, String)>,
    assessment: Option<(incident::Assessment, String)>,
    may_close_not_a_breach: bool,
    scope: Option<String>,
    affected: Vec<String>,
    states: Vec<StateRow>,
    letters: Vec<LetterRow>,
    recipients: &'static [&'static str],
    error: Option<String>,
    done: Option<&'static str>,
}

/// `?done=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DoneQuery {
    done: Option<String>,
}

fn done_message(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "updated" => Some("Incident updated."),
        "assessed" => Some("Risk assessment recorded."),
        "scoped" => Some("Affected patients found from the audit log."),
        "letter" => Some("Letter recorded."),
        "closed" => Some("Incident closed."),
        _ => None,
    }
}

async fn detail_page(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    id: IncidentId,
    error: Option<String>,
    done: Option<&'static str>,
) -> Result<DetailPage, WebError> {
    let practice_id = tx.practice();
    let now = tx.now();
    let chrome = chrome(tx).await?;
    let i = server::actions::incidents::read_incident(tx, keyring, id).await?;
    let s = &i.summary;
    let (scope, affected, states) = match &i.scope {
        Some(sc) => (
            Some(format!(
                "{} {} from {} to {} (run {}): {} patients",
                sc.kind.as_str(),
                sc.subject,
                when(sc.from),
                when(sc.to),
                when(sc.scoped_at),
                sc.patients.len()
            )),
            sc.patients
                .iter()
                .map(|p| p.patient_id.to_string())
                .collect(),
            sc.per_state
                .iter()
                .map(|(state, n)| StateRow {
                    state: state.clone(),
                    patients: *n,
                })
                .collect(),
        ),
        None => (None, Vec::new(), Vec::new()),
    };
    Ok(DetailPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        id,
        status: s.status.as_str(),
        closed: s.status.is_closed(),
        discovered: when(s.discovered_at),
        source: s.detection_source.clone(),
        baa_notice_hours: s.baa_notice_hours,
        gdpr: s.gdpr,
        clocks: clock_rows(s, now),
        alerts: i
            .alerts
            .iter()
            .map(|(c, at)| (c.clone(), when(*at)))
            .collect(),
        may_close_not_a_breach: i
            .assessment
            .as_ref()
            .is_some_and(|(a, _)| a.permits_not_a_breach()),
        assessment: i.assessment.as_ref().map(|(a, at)| (a.clone(), when(*at))),
        description: i.description.clone(),
        response: i.response.clone().unwrap_or_default(),
        outcome: i.outcome.clone().unwrap_or_default(),
        scope,
        affected,
        states,
        letters: i
            .letters
            .iter()
            .map(|l| LetterRow {
                kind: l.recipient_kind.clone(),
                sent_on: l.sent_on.to_string(),
                letters: l.letters,
            })
            .collect(),
        recipients: &RECIPIENT_KINDS,
        error,
        done,
    })
}

/// `GET /app/practices/{practice_id}/incidents/{incident_id}`: the incident, decrypted and
/// audited `incident.read`.
pub(crate) async fn incident_page(
    State(state): State<AppState>,
    Member(ctx): Member<Manage>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let id: IncidentId = path_id(&id, "incident")?;
    let mut tx = ctx.tx;
    let p = detail_page(
        &mut tx,
        state.store.keyring()?,
        id,
        None,
        done_message(q.done.as_deref()),
    )
    .await?;
    tx.commit().await?;
    html(&p)
}

/// After an action: the incident page with `done` (`303`), or, refused (`400`, `409`), the
/// page with the reason and nothing changed.
async fn answer(
    state: &AppState,
    mut tx: TenantTx,
    id: IncidentId,
    outcome: Result<(), AppError>,
    done: &str,
) -> Result<Response, WebError> {
    let practice_id = tx.practice();
    match outcome {
        Ok(()) => {
            tx.commit().await?;
            Ok(redirect(&format!(
                "/app/practices/{practice_id}/incidents/{id}?done={done}"
            )))
        }
        Err(e @ (AppError::Invalid(_) | AppError::Conflict(_))) => {
            let status = if matches!(e, AppError::Conflict(_)) {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            // Every refusal comes before the action writes anything.
            let p = detail_page(
                &mut tx,
                state.store.keyring()?,
                id,
                Some(format!("Nothing was changed. {e}")),
                None,
            )
            .await?;
            tx.commit().await?;
            html_status(status, &p)
        }
        Err(e) => Err(e.into()),
    }
}

/// The update form.
#[derive(Deserialize, Default)]
pub(crate) struct UpdateForm {
    #[serde(default)]
    status: String,
    #[serde(default)]
    response: String,
    #[serde(default)]
    outcome: String,
}

/// `POST …/incidents/{incident_id}/update`: status, response and outcome notes
/// (`incident.update`).
pub(crate) async fn incident_update(
    State(state): State<AppState>,
    Member(ctx): Member<Manage>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<UpdateForm>,
) -> Result<Response, WebError> {
    let id: IncidentId = path_id(&id, "incident")?;
    let mut tx = ctx.tx;
    let outcome = server::actions::incidents::update_incident(
        &mut tx,
        state.store.keyring()?,
        id,
        filled(&form.status),
        filled(&form.response),
        filled(&form.outcome),
    )
    .await
    .map(|_| ());
    answer(&state, tx, id, outcome, "updated").await
}

/// The assessment form.
#[derive(Deserialize, Default)]
pub(crate) struct AssessForm {
    #[serde(default)]
    nature: String,
    #[serde(default)]
    person: String,
    #[serde(default)]
    acquired: String,
    #[serde(default)]
    mitigation: String,
    #[serde(default)]
    low_probability: Option<String>,
}

/// `POST …/incidents/{incident_id}/assessment`: the four factors (`incident.assess`).
pub(crate) async fn incident_assess(
    State(state): State<AppState>,
    Member(ctx): Member<Manage>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<AssessForm>,
) -> Result<Response, WebError> {
    let id: IncidentId = path_id(&id, "incident")?;
    let mut tx = ctx.tx;
    let typed = incident::Assessment {
        low_probability: form.low_probability.is_some(),
        nature: form.nature,
        person: form.person,
        acquired: form.acquired,
        mitigation: form.mitigation,
    };
    let outcome =
        server::actions::incidents::assess_incident(&mut tx, state.store.keyring()?, id, &typed)
            .await;
    answer(&state, tx, id, outcome, "assessed").await
}

/// The scope form.
#[derive(Deserialize, Default)]
pub(crate) struct ScopeForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// `POST …/incidents/{incident_id}/scope`: the affected patients from the audit log
/// (`incident.scope`).
pub(crate) async fn incident_scope(
    State(state): State<AppState>,
    Member(ctx): Member<Manage>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<ScopeForm>,
) -> Result<Response, WebError> {
    let id: IncidentId = path_id(&id, "incident")?;
    let mut tx = ctx.tx;
    let subject = form.subject.trim().parse::<uuid::Uuid>().map_err(|_| {
        AppError::Invalid("subject: enter the user, session or grant id (a UUID)".into())
    });
    let window = match (datetime(&form.from), datetime(&form.to)) {
        (Ok(Some(f)), Ok(Some(t))) => Ok((f, t)),
        _ => Err(AppError::Invalid(
            "from, to: enter both ends of the window (UTC)".into(),
        )),
    };
    let outcome = match (subject, window) {
        (Ok(subject), Ok((from, to))) => server::actions::incidents::scope_incident(
            &mut tx,
            id,
            form.kind.trim(),
            subject,
            from,
            to,
        )
        .await
        .map(|_| ()),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    answer(&state, tx, id, outcome, "scoped").await
}

/// The letter form.
#[derive(Deserialize, Default)]
pub(crate) struct LetterForm {
    #[serde(default)]
    recipient_kind: String,
    #[serde(default)]
    sent_on: String,
    #[serde(default)]
    letters: String,
}

/// `POST …/incidents/{incident_id}/letters`: a letter (batch) sent (`incident.letter`).
pub(crate) async fn incident_letter(
    State(state): State<AppState>,
    Member(ctx): Member<Manage>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<LetterForm>,
) -> Result<Response, WebError> {
    let id: IncidentId = path_id(&id, "incident")?;
    let mut tx = ctx.tx;
    let sent_on = NaiveDate::parse_from_str(form.sent_on.trim(), "%Y-%m-%d")
        .map_err(|_| AppError::Invalid("sent_on: enter the day it was sent".into()));
    let letters = match filled(&form.letters) {
        None => Ok(1),
        Some(n) => n
            .parse::<u32>()
            .map_err(|_| AppError::Invalid("letters: must be between 1 and 10000000".into())),
    };
    let outcome = match (sent_on, letters) {
        (Ok(sent_on), Ok(n)) => server::actions::incidents::record_letter(
            &mut tx,
            id,
            form.recipient_kind.trim(),
            sent_on,
            n,
        )
        .await
        .map(|_| ()),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    answer(&state, tx, id, outcome, "letter").await
}

/// The close form.
#[derive(Deserialize, Default)]
pub(crate) struct CloseForm {
    #[serde(default)]
    outcome: String,
}

/// `POST …/incidents/{incident_id}/close`: closes as a breach or not (`incident.close`);
/// "not a breach" without the four factors is refused (`409`).
pub(crate) async fn incident_close(
    State(state): State<AppState>,
    Member(ctx): Member<Manage>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<CloseForm>,
) -> Result<Response, WebError> {
    let id: IncidentId = path_id(&id, "incident")?;
    let mut tx = ctx.tx;
    let outcome = match form.outcome.trim() {
        "breach" => server::actions::incidents::close_incident(&mut tx, id, true)
            .await
            .map(|_| ()),
        "not_a_breach" => server::actions::incidents::close_incident(&mut tx, id, false)
            .await
            .map(|_| ()),
        _ => Err(AppError::Invalid(
            "outcome: choose breach or not a breach".into(),
        )),
    };
    answer(&state, tx, id, outcome, "closed").await
}
