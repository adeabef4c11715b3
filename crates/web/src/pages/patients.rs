//! The patients list and name search (clinicians and reception), over the API's store calls
//! (`store::patients::list` / `search`) with the same audit event (`patient.list`, every
//! patient shown) in the read's transaction. Demographics and contact details only: nothing
//! clinical is read, linked or counted here.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use domain::values::single_line;
use domain::{AuditAction, PracticeId};
use serde::Deserialize;
use server::extract::Scheduling;
use server::{AppError, AppState};
use store::TenantTx;

use super::{Chrome, Fragment, Member, html, nav};
use crate::{Assets, WebError, assets};

/// Patients per page (the API's default page size).
const PAGE: i64 = 50;
/// Longest name query (the API's limit).
const NAME_MAX: usize = 100;

/// A patient row: demographics and contact details.
pub(crate) struct Row {
    name: String,
    date_of_birth: String,
    phone: String,
    email: String,
}

impl From<store::patients::Patient> for Row {
    fn from(p: store::patients::Patient) -> Self {
        Self {
            name: format!("{}, {}", p.family_name, p.given_name),
            date_of_birth: p
                .date_of_birth
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            phone: p.phone.unwrap_or_default(),
            email: p.email.unwrap_or_default(),
        }
    }
}

/// The patients page.
#[derive(Template)]
#[template(path = "patients.html")]
pub(crate) struct PatientsPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    query: String,
    rows: Vec<Row>,
    message: Option<&'static str>,
    next_offset: Option<i64>,
}

/// The rows alone (the htmx fragment).
#[derive(Template)]
#[template(path = "patients_rows.html")]
pub(crate) struct PatientRows {
    rows: Vec<Row>,
    message: Option<&'static str>,
}

/// `?offset=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    offset: Option<i64>,
}

/// A search form post.
#[derive(Deserialize)]
pub(crate) struct SearchForm {
    q: String,
}

const TOO_SHORT: &str = "Type at least two letters of a name.";
const NONE_FOUND: &str = "No patient matches.";

/// The header of a practice page: the practice's name and the actor's display name.
async fn chrome(tx: &mut TenantTx) -> Result<Chrome, WebError> {
    let practice = store::practices::get(tx).await?;
    let user = store::practices::actor_display_name(tx).await?;
    Ok(Chrome {
        user,
        nav: nav(practice.practice_id, tx.roles()),
        practice: Some((practice.practice_id, practice.name)),
    })
}

/// Runs the name search as the API does (validated the same way) and audits every patient
/// shown; `Err(message)` for a query that cannot be searched.
async fn search(
    state: &AppState,
    tx: &mut TenantTx,
    q: &str,
) -> Result<Result<Vec<Row>, &'static str>, WebError> {
    let Ok(name) = single_line("name_prefix", q, NAME_MAX) else {
        return Ok(Err(TOO_SHORT));
    };
    if !store::patients::name_query_usable(&name) {
        return Ok(Err(TOO_SHORT));
    }
    let query = store::patients::PatientSearch {
        name_prefix: Some(name),
        date_of_birth: None,
        phone: None,
    };
    let found = store::patients::search(tx, state.store.keyring()?, &query, PAGE).await?;
    tx.audit_patients(AuditAction::PatientList, found.iter().map(|p| p.patient_id))
        .await?;
    Ok(Ok(found.into_iter().map(Row::from).collect()))
}

/// `GET /app/practices/{practice_id}/patients`: the practice's patients by family name, 50 a
/// page.
pub(crate) async fn patients_page(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Query(q): Query<PageQuery>,
) -> Result<Response, WebError> {
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(AppError::Invalid("offset must be ≥ 0".into()).into());
    }
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let items = store::patients::list(&mut tx, state.store.keyring()?, offset, PAGE).await?;
    tx.audit_patients(AuditAction::PatientList, items.iter().map(|p| p.patient_id))
        .await?;
    tx.commit().await?;
    let full = i64::try_from(items.len()).unwrap_or(0) == PAGE;
    let message = items.is_empty().then_some("No patients yet.");
    html(&PatientsPage {
        assets: assets(),
        practice_id,
        chrome: Some(chrome),
        query: String::new(),
        rows: items.into_iter().map(Row::from).collect(),
        message,
        next_offset: full.then_some(offset + PAGE),
    })
}

/// `POST /app/practices/{practice_id}/patients/search`: the page with the matches (a `POST`
/// so the name stays out of URLs, history and logs, as in the API). An unusable query is
/// `400` with the page and its message.
pub(crate) async fn patients_search(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Form(form): Form<SearchForm>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let found = search(&state, &mut tx, &form.q).await?;
    tx.commit().await?;
    let (rows, message, status) = match found {
        Ok(rows) if rows.is_empty() => (rows, Some(NONE_FOUND), StatusCode::OK),
        Ok(rows) => (rows, None, StatusCode::OK),
        Err(m) => (Vec::new(), Some(m), StatusCode::BAD_REQUEST),
    };
    let mut res = html(&PatientsPage {
        assets: assets(),
        practice_id,
        chrome: Some(chrome),
        query: form.q,
        rows,
        message,
        next_offset: None,
    })?;
    *res.status_mut() = status;
    Ok(res)
}

/// `POST /app/practices/{practice_id}/patients/search/rows`: the matching rows only, for
/// htmx (`HX-Request` required, else `400`). An unusable query answers a row saying so.
pub(crate) async fn patients_search_rows(
    State(state): State<AppState>,
    _: Fragment,
    Member(ctx): Member<Scheduling>,
    Form(form): Form<SearchForm>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let found = search(&state, &mut tx, &form.q).await?;
    tx.commit().await?;
    let (rows, message) = match found {
        Ok(rows) if rows.is_empty() => (rows, Some(NONE_FOUND)),
        Ok(rows) => (rows, None),
        Err(m) => (Vec::new(), Some(m)),
    };
    html(&PatientRows { rows, message })
}
