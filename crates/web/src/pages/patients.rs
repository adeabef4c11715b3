//! Patients (clinicians and reception): the list, the search (name prefix, date of birth,
//! phone, through the blind indexes), create, edit and soft delete — through the API's
//! paths ([`server::actions`]: `list_patients`, `search_patients`, `register_patient`,
//! `read_patient`, `update_patient`, `delete_patient`), with the API's input rules
//! ([`server::rules::patients`]) and so the same audit events in the same transactions (`patient.list` for every patient shown,
//! `patient.read`, `patient.create`, `patient.update`, `patient.delete`). Demographics and
//! contact details only: nothing clinical is read, linked or counted here.
//!
//! A refused form answers `400` with the form again, each message next to its field
//! (`aria-describedby`), and nothing changed. Searches are `POST`s: no PHI in URLs.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use domain::{PatientId, PracticeId};
use serde::Deserialize;
use server::extract::Scheduling;
use server::rules::patients as rules;
use server::{AppError, AppState};
use store::TenantTx;

use super::{
    Chrome, Field, FieldErrors, Fragment, Member, chrome, filled, html, html_status, path_id,
    redirect,
};
use crate::{Assets, WebError, assets};

/// Patients per page (the API's default page size).
const PAGE: i64 = 50;

/// A patient row: demographics and contact details.
pub(crate) struct Row {
    href: String,
    name: String,
    date_of_birth: String,
    phone: String,
    email: String,
}

impl Row {
    fn new(practice: PracticeId, p: store::patients::Patient) -> Self {
        Self {
            href: format!("/app/practices/{practice}/patients/{}", p.patient_id),
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

/// What the search form holds (echoed back into it).
#[derive(Deserialize, Default)]
pub(crate) struct SearchForm {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub dob: String,
    #[serde(default)]
    pub phone: String,
}

/// The patients page.
#[derive(Template)]
#[template(path = "patients.html")]
pub(crate) struct PatientsPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    search: SearchForm,
    errors: FieldErrors,
    rows: Vec<Row>,
    message: Option<&'static str>,
    done: Option<&'static str>,
    next_offset: Option<i64>,
}

/// The rows alone (the htmx fragment).
#[derive(Template)]
#[template(path = "patients_rows.html")]
pub(crate) struct PatientRows {
    rows: Vec<Row>,
    message: Option<String>,
}

/// `?offset=&done=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    offset: Option<i64>,
    done: Option<String>,
}

const TOO_SHORT: &str = "Type at least two letters of a name.";
const NONE_FOUND: &str = "No patient matches.";
const NO_CRITERION: &str = "Give a name, a date of birth or a phone number.";

/// What a finished change says on the page it leads to (a fixed word in the URL, no PHI).
fn done_message(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "created" => Some("Patient created."),
        "saved" => Some("Changes saved."),
        "deleted" => Some("Patient deleted."),
        _ => None,
    }
}

/// A date from a date field (`YYYY-MM-DD`, what browsers send).
fn date_field(
    errors: &mut FieldErrors,
    field: &'static str,
    label: &str,
    raw: &str,
) -> Option<NaiveDate> {
    let t = filled(raw)?;
    let d = NaiveDate::parse_from_str(t, "%Y-%m-%d").ok();
    if d.is_none() {
        errors.add(field, format!("{label}: enter a full date (YYYY-MM-DD)."));
    }
    d
}

/// The criteria of a search form under the API's rules, or the refusal by field (`q`, `dob`,
/// `phone`).
pub(crate) fn criteria(
    form: &SearchForm,
) -> Result<store::patients::PatientSearch, (FieldErrors, Option<&'static str>)> {
    let mut errors = FieldErrors::default();
    let dob = date_field(&mut errors, "dob", "Date of birth", &form.dob);
    if !errors.is_empty() {
        return Err((errors, None));
    }
    match rules::search_criteria(filled(&form.q), dob, filled(&form.phone)) {
        Ok(q) => Ok(q),
        Err(e) if e == rules::NO_CRITERION => Err((errors, Some(NO_CRITERION))),
        Err(e) if e.field == "name_prefix" => {
            errors.add("q", TOO_SHORT);
            Err((errors, None))
        }
        Err(e) => {
            errors.refused("phone", "Phone", &e);
            Err((errors, None))
        }
    }
}

/// Runs a search, a page of matches, through the API's path
/// ([`server::actions::search_patients`], audited `patient.list` for every patient shown).
pub(crate) async fn run_search(
    state: &AppState,
    tx: &mut TenantTx,
    query: &store::patients::PatientSearch,
) -> Result<Vec<store::patients::Patient>, WebError> {
    server::actions::admit_quota(state, tx, server::identity::QuotaKind::PatientLookup).await?;
    Ok(server::actions::search_patients(tx, state.store.keyring()?, query, PAGE).await?)
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
    server::actions::admit_quota(&state, &tx, server::identity::QuotaKind::PatientLookup).await?;
    let items =
        server::actions::list_patients(&mut tx, state.store.keyring()?, offset, PAGE).await?;
    tx.commit().await?;
    let full = i64::try_from(items.len()).unwrap_or(0) == PAGE;
    let message = items.is_empty().then_some("No patients yet.");
    html(&PatientsPage {
        assets: assets(),
        practice_id,
        chrome: Some(chrome),
        search: SearchForm::default(),
        errors: FieldErrors::default(),
        rows: items
            .into_iter()
            .map(|p| Row::new(practice_id, p))
            .collect(),
        message,
        done: done_message(q.done.as_deref()),
        next_offset: full.then_some(offset + PAGE),
    })
}

/// `POST /app/practices/{practice_id}/patients/search`: the page with the matches for a name
/// prefix, a date of birth and/or a phone number (a `POST` so they stay out of URLs, history
/// and logs, as in the API). A refused search is `400` with the page and its messages.
pub(crate) async fn patients_search(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Form(form): Form<SearchForm>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let (rows, errors, message, status) = match criteria(&form) {
        Ok(query) => {
            let found = run_search(&state, &mut tx, &query).await?;
            let message = found.is_empty().then_some(NONE_FOUND);
            let rows = found
                .into_iter()
                .map(|p| Row::new(practice_id, p))
                .collect();
            (rows, FieldErrors::default(), message, StatusCode::OK)
        }
        Err((errors, message)) => (Vec::new(), errors, message, StatusCode::BAD_REQUEST),
    };
    tx.commit().await?;
    html_status(
        status,
        &PatientsPage {
            assets: assets(),
            practice_id,
            chrome: Some(chrome),
            search: form,
            errors,
            rows,
            message,
            done: None,
            next_offset: None,
        },
    )
}

/// `POST /app/practices/{practice_id}/patients/search/rows`: the matching rows only, for
/// htmx (`HX-Request` required, else `400`). A refused search answers a row saying why.
pub(crate) async fn patients_search_rows(
    State(state): State<AppState>,
    _: Fragment,
    Member(ctx): Member<Scheduling>,
    Form(form): Form<SearchForm>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let (rows, message) = match criteria(&form) {
        Ok(query) => {
            let found = run_search(&state, &mut tx, &query).await?;
            let message = found.is_empty().then(|| NONE_FOUND.to_owned());
            (
                found
                    .into_iter()
                    .map(|p| Row::new(practice_id, p))
                    .collect(),
                message,
            )
        }
        Err((errors, message)) => {
            let text = message.map(str::to_owned).or_else(|| {
                ["q", "dob", "phone"]
                    .iter()
                    .find_map(|f| errors.get(f).map(str::to_owned))
            });
            (Vec::new(), text)
        }
    };
    tx.commit().await?;
    html(&PatientRows { rows, message })
}

/// The patient form's fields, as typed (echoed back when refused).
#[derive(Deserialize, Default)]
pub(crate) struct PatientForm {
    #[serde(default)]
    given_name: String,
    #[serde(default)]
    family_name: String,
    #[serde(default)]
    date_of_birth: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    email: String,
}

impl From<&store::patients::Patient> for PatientForm {
    fn from(p: &store::patients::Patient) -> Self {
        Self {
            given_name: p.given_name.clone(),
            family_name: p.family_name.clone(),
            date_of_birth: p
                .date_of_birth
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            phone: p.phone.clone().unwrap_or_default(),
            email: p.email.clone().unwrap_or_default(),
        }
    }
}

/// The fields of a patient form under the API's rules (empty optional fields are none).
fn validated(
    form: &PatientForm,
    today: NaiveDate,
) -> Result<store::patients::NewPatient, FieldErrors> {
    let mut errors = FieldErrors::default();
    let given_name = rules::name("given_name", &form.given_name)
        .map_err(|e| errors.refused("given_name", "Given name", &e))
        .ok();
    let family_name = rules::name("family_name", &form.family_name)
        .map_err(|e| errors.refused("family_name", "Family name", &e))
        .ok();
    let date_of_birth = date_field(
        &mut errors,
        "date_of_birth",
        "Date of birth",
        &form.date_of_birth,
    )
    .and_then(|d| {
        rules::date_of_birth(d, today)
            .map_err(|e| errors.refused("date_of_birth", "Date of birth", &e))
            .ok()
    });
    let phone = filled(&form.phone).and_then(|p| {
        rules::contact_phone(p)
            .map_err(|e| errors.refused("phone", "Phone", &e))
            .ok()
    });
    let email = filled(&form.email).and_then(|m| {
        rules::contact_email(m)
            .map_err(|e| errors.refused("email", "Email", &e))
            .ok()
    });
    match (given_name, family_name) {
        (Some(given_name), Some(family_name)) if errors.is_empty() => {
            Ok(store::patients::NewPatient {
                given_name,
                family_name,
                date_of_birth,
                phone,
                email,
            })
        }
        _ => Err(errors),
    }
}

/// The new-patient form and the edit form.
#[derive(Template)]
#[template(path = "patient_form.html")]
pub(crate) struct PatientFormPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    /// `None` for a new patient.
    patient_id: Option<PatientId>,
    fields: Vec<Field>,
    errors: FieldErrors,
    done: Option<&'static str>,
    /// The chart's address, for a clinician (the API's clinical privilege) only.
    chart: Option<String>,
}

impl PatientFormPage {
    fn new(
        chrome: Chrome,
        practice_id: PracticeId,
        patient_id: Option<PatientId>,
        form: &PatientForm,
        errors: FieldErrors,
        done: Option<&'static str>,
    ) -> Self {
        let fields = vec![
            Field::new(
                "given_name",
                "Given name",
                "text",
                &form.given_name,
                &errors,
            )
            .attrs("required maxlength=\"100\" autocomplete=\"off\""),
            Field::new(
                "family_name",
                "Family name",
                "text",
                &form.family_name,
                &errors,
            )
            .attrs("required maxlength=\"100\" autocomplete=\"off\""),
            Field::new(
                "date_of_birth",
                "Date of birth (optional)",
                "date",
                &form.date_of_birth,
                &errors,
            )
            .attrs("autocomplete=\"off\""),
            Field::new("phone", "Phone (optional)", "tel", &form.phone, &errors)
                .attrs("maxlength=\"32\" autocomplete=\"off\""),
            Field::new("email", "Email (optional)", "email", &form.email, &errors)
                .attrs("maxlength=\"254\" autocomplete=\"off\""),
        ];
        Self {
            assets: assets(),
            chrome: Some(chrome),
            practice_id,
            patient_id,
            fields,
            errors,
            done,
            chart: None,
        }
    }
}

/// The delete confirmation.
#[derive(Template)]
#[template(path = "patient_delete.html")]
pub(crate) struct PatientDeletePage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    patient_id: PatientId,
    name: String,
}

/// `?done=` after a change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DoneQuery {
    done: Option<String>,
}

/// `GET /app/practices/{practice_id}/patients/new`: the new-patient form (nothing read).
pub(crate) async fn patient_new_page(
    Member(ctx): Member<Scheduling>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    tx.commit().await?;
    html(&PatientFormPage::new(
        chrome,
        practice_id,
        None,
        &PatientForm::default(),
        FieldErrors::default(),
        None,
    ))
}

/// `POST /app/practices/{practice_id}/patients`: registers a patient as the API does
/// ([`server::actions::register_patient`], audited `patient.create`), then shows them (`303`). Refused
/// input: `400`, the form with its messages, nothing written.
pub(crate) async fn patient_create(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Form(form): Form<PatientForm>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let today = tx.now().date_naive();
    let new = match validated(&form, today) {
        Ok(new) => new,
        Err(errors) => {
            let chrome = chrome(&mut tx).await?;
            tx.commit().await?;
            return html_status(
                StatusCode::BAD_REQUEST,
                &PatientFormPage::new(chrome, practice_id, None, &form, errors, None),
            );
        }
    };
    let p = server::actions::register_patient(&mut tx, state.store.keyring()?, &new).await?;
    tx.commit().await?;
    Ok(redirect(&format!(
        "/app/practices/{practice_id}/patients/{}?done=created",
        p.patient_id
    )))
}

/// Reads one patient through the API's path ([`server::actions::read_patient`], audited
/// `patient.read`; `410` once deleted, `404` when unknown here).
pub(super) async fn read_patient(
    state: &AppState,
    tx: &mut TenantTx,
    id: PatientId,
) -> Result<store::patients::Patient, WebError> {
    Ok(server::actions::read_patient(tx, state.store.keyring()?, id).await?)
}

/// `GET /app/practices/{practice_id}/patients/{patient_id}`: the patient's demographics and
/// contact details in the edit form (audited `patient.read`); `410` once deleted.
pub(crate) async fn patient_page(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let id: PatientId = path_id(&id, "patient")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let p = read_patient(&state, &mut tx, id).await?;
    let clinical = domain::Privilege::Clinical.allows(tx.roles());
    tx.commit().await?;
    let mut page = PatientFormPage::new(
        chrome,
        practice_id,
        Some(id),
        &PatientForm::from(&p),
        FieldErrors::default(),
        done_message(q.done.as_deref()),
    );
    page.chart = clinical.then(|| format!("/app/practices/{practice_id}/patients/{id}/chart"));
    html(&page)
}

/// `POST /app/practices/{practice_id}/patients/{patient_id}`: saves the form as the API's
/// update does ([`server::actions::update_patient`], audited `patient.update`; an emptied optional field
/// is cleared), then shows the patient (`303`). Refused input: `400`, nothing changed.
pub(crate) async fn patient_update(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<PatientForm>,
) -> Result<Response, WebError> {
    let id: PatientId = path_id(&id, "patient")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let today = tx.now().date_naive();
    let next = match validated(&form, today) {
        Ok(next) => next,
        Err(errors) => {
            let chrome = chrome(&mut tx).await?;
            tx.commit().await?;
            return html_status(
                StatusCode::BAD_REQUEST,
                &PatientFormPage::new(chrome, practice_id, Some(id), &form, errors, None),
            );
        }
    };
    let patch = store::patients::PatientPatch {
        given_name: Some(next.given_name),
        family_name: Some(next.family_name),
        date_of_birth: Some(next.date_of_birth),
        phone: Some(next.phone),
        email: Some(next.email),
    };
    server::actions::update_patient(&mut tx, state.store.keyring()?, id, &patch).await?;
    tx.commit().await?;
    Ok(redirect(&format!(
        "/app/practices/{practice_id}/patients/{id}?done=saved"
    )))
}

/// `GET /app/practices/{practice_id}/patients/{patient_id}/delete`: asks for confirmation,
/// naming the patient (audited `patient.read`).
pub(crate) async fn patient_delete_page(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let id: PatientId = path_id(&id, "patient")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let p = read_patient(&state, &mut tx, id).await?;
    tx.commit().await?;
    html(&PatientDeletePage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        patient_id: id,
        name: format!("{} {}", p.given_name, p.family_name),
    })
}

/// `POST /app/practices/{practice_id}/patients/{patient_id}/delete`: the API's soft delete
/// ([`server::actions::delete_patient`], audited `patient.delete`): lists and search leave the patient
/// out, their history stays. Then the patients list (`303`); `410` if already deleted.
pub(crate) async fn patient_delete(
    Member(ctx): Member<Scheduling>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let id: PatientId = path_id(&id, "patient")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    server::actions::delete_patient(&mut tx, id).await?;
    tx.commit().await?;
    Ok(redirect(&format!(
        "/app/practices/{practice_id}/patients?done=deleted"
    )))
}
