//! The schedule (clinicians and reception, the API's scheduling privilege): one clinician's
//! week or day, and booking, moving and cancelling appointments — through the API's paths
//! ([`server::actions`]: `list_appointments`, `read_appointment`, `book`, `change`,
//! `list_members`, `read_patient`, `search_patients`) with the
//! API's rules ([`server::rules::appointments`]) and its audit events in the same
//! transactions (`appointment.list` naming every patient shown, `appointment.read`,
//! `appointment.create`, `appointment.update`, `membership.list` for the clinician chooser).
//!
//! Practices have no time zone setting yet, so the schedule is in UTC and says so on every
//! page. Every control is a real link, button or form (keyboard usable without script); the
//! days stack on a narrow screen. URLs carry ids and dates only; patient searches are `POST`s.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Datelike as _, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use domain::{AppointmentId, PatientId, PracticeId, Role, UserId};
use serde::Deserialize;
use server::extract::Scheduling;
use server::rules::appointments as rules;
use server::{AppError, AppState};
use store::TenantTx;

use super::patients::{SearchForm, criteria, run_search};
use super::{
    Chrome, Field, FieldErrors, Member, chrome, filled, html, html_status, path_id, redirect,
};
use crate::{Assets, WebError, assets};

/// Most appointments one schedule page shows (the API's list limit).
const MAX_SHOWN: i64 = 200;
/// The length a new appointment gets unless changed (minutes).
const DEFAULT_MINUTES: i64 = 30;

/// A clinician of the practice (a member holding the clinician role).
pub(crate) struct Clinician {
    id: UserId,
    name: String,
    /// Whether the page is about them (the chooser's selected option).
    selected: bool,
}

/// Marks `chosen` as the selected clinician of `list`.
fn select(mut list: Vec<Clinician>, chosen: Option<UserId>) -> Vec<Clinician> {
    for c in &mut list {
        c.selected = Some(c.id) == chosen;
    }
    list
}

/// The practice's clinicians, from the member directory the API lists to any member
/// ([`server::actions::list_members`], audited `membership.list`).
async fn clinicians(tx: &mut TenantTx) -> Result<Vec<Clinician>, WebError> {
    let members = server::actions::list_members(tx).await?;
    Ok(members
        .into_iter()
        .filter(|m| {
            m.roles
                .iter()
                .any(|r| r.parse::<Role>().is_ok_and(|r| r == Role::Clinician))
        })
        .map(|m| Clinician {
            id: m.user_id,
            name: m.display_name,
            selected: false,
        })
        .collect())
}

/// The clinician a page is about: the one asked for (`404` if not a clinician here), else
/// the actor when they are one, else the first.
fn pick_clinician(
    list: &[Clinician],
    asked: Option<&str>,
    actor: UserId,
) -> Result<Option<usize>, WebError> {
    if let Some(raw) = asked.and_then(filled) {
        let id: UserId = path_id(raw, "clinician")?;
        return list
            .iter()
            .position(|c| c.id == id)
            .map(Some)
            .ok_or(WebError(AppError::NotFound("clinician")));
    }
    Ok(list
        .iter()
        .position(|c| c.id == actor)
        .or_else(|| (!list.is_empty()).then_some(0)))
}

/// A date from a query or form (`YYYY-MM-DD`); `400` when malformed.
fn query_date(raw: Option<&str>, field: &str, today: NaiveDate) -> Result<NaiveDate, WebError> {
    match raw.and_then(filled) {
        None => Ok(today),
        Some(t) => NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| {
            WebError(AppError::Invalid(format!(
                "{field}: must be a date, YYYY-MM-DD"
            )))
        }),
    }
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(NaiveTime::MIN).and_utc()
}

fn day_label(d: NaiveDate) -> String {
    d.format("%a %-d %b").to_string()
}

/// One appointment on the schedule.
pub(crate) struct Slot {
    id: AppointmentId,
    starts: String,
    time: String,
    patient: String,
    cancelled: bool,
    status: String,
    /// "Open visit": the patient's chart for this appointment, for a clinician only.
    visit: Option<String>,
}

/// One day of the schedule.
pub(crate) struct Day {
    iso: String,
    label: String,
    today: bool,
    slots: Vec<Slot>,
}

/// Names of the patients of `appointments` (a deleted patient has none).
async fn patient_names(
    state: &AppState,
    tx: &mut TenantTx,
    ids: impl Iterator<Item = PatientId>,
) -> Result<HashMap<PatientId, String>, AppError> {
    let keyring = state.store.keyring()?;
    let mut names = HashMap::new();
    for id in ids {
        if names.contains_key(&id) {
            continue;
        }
        if let Some(p) = store::patients::get(tx, keyring, id).await? {
            names.insert(id, format!("{}, {}", p.family_name, p.given_name));
        }
    }
    Ok(names)
}

const DELETED_PATIENT: &str = "(deleted patient)";

/// The days `[first, first + n)` of `clinician`'s schedule, read through the API's list
/// ([`server::actions::list_appointments`], audited `appointment.list` naming every patient
/// shown, after the patients' names are decrypted).
async fn load_days(
    state: &AppState,
    tx: &mut TenantTx,
    clinician: UserId,
    first: NaiveDate,
    n: i64,
) -> Result<Vec<Day>, WebError> {
    let from = midnight(first);
    let to = from + Duration::days(n);
    let (items, names) = server::actions::list_appointments(
        tx,
        Some(clinician),
        from,
        to,
        MAX_SHOWN,
        async |tx, items| patient_names(state, tx, items.iter().map(|a| a.patient_id)).await,
    )
    .await?;
    let today = tx.now().date_naive();
    let clinical = domain::Privilege::Clinical.allows(tx.roles());
    let practice = tx.practice();
    let mut out: Vec<Day> = first
        .iter_days()
        .take(usize::try_from(n).unwrap_or(0))
        .map(|d| Day {
            iso: d.format("%Y-%m-%d").to_string(),
            label: day_label(d),
            today: d == today,
            slots: Vec::new(),
        })
        .collect();
    for a in items {
        let index = (a.starts_at.date_naive() - first).num_days();
        let Some(day) = usize::try_from(index).ok().and_then(|i| out.get_mut(i)) else {
            continue;
        };
        day.slots.push(Slot {
            id: a.appointment_id,
            starts: a.starts_at.to_rfc3339(),
            time: format!(
                "{}–{}",
                a.starts_at.format("%H:%M"),
                a.ends_at.format("%H:%M")
            ),
            patient: names
                .get(&a.patient_id)
                .cloned()
                .unwrap_or_else(|| DELETED_PATIENT.to_owned()),
            cancelled: a.status == rules::CANCELLED,
            status: a.status.replace('_', " "),
            visit: (clinical && a.status != rules::CANCELLED).then(|| {
                format!(
                    "/app/practices/{practice}/patients/{}/chart?appointment={}",
                    a.patient_id, a.appointment_id
                )
            }),
        });
    }
    Ok(out)
}

/// The week or day view.
#[derive(Template)]
#[template(path = "schedule.html")]
pub(crate) struct SchedulePage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    /// `week` or `day`.
    view: &'static str,
    heading: String,
    clinicians: Vec<Clinician>,
    clinician: Option<UserId>,
    /// The date the view is of (`YYYY-MM-DD`), for the clinician chooser.
    date: String,
    prev: String,
    next: String,
    prev_label: &'static str,
    next_label: &'static str,
    /// The other view of the same dates.
    other: String,
    other_label: &'static str,
    days: Vec<Day>,
}

/// `?clinician=&date=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleQuery {
    clinician: Option<String>,
    date: Option<String>,
}

async fn schedule(
    state: &AppState,
    ctx: server::extract::Ctx<Scheduling>,
    q: &ScheduleQuery,
    week: bool,
) -> Result<Response, WebError> {
    let actor = ctx.actor;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let list = clinicians(&mut tx).await?;
    let picked = pick_clinician(&list, q.clinician.as_deref(), actor)?;
    let today = tx.now().date_naive();
    let date = query_date(q.date.as_deref(), "date", today)?;
    let (first, n, step) = if week {
        (date.week(Weekday::Mon).first_day(), 7, 7)
    } else {
        (date, 1, 1)
    };
    let clinician = picked.and_then(|i| list.get(i));
    let picked_id = clinician.map(|c| c.id);
    let days = match clinician {
        Some(c) => load_days(state, &mut tx, c.id, first, n).await?,
        None => Vec::new(),
    };
    tx.commit().await?;
    let base = format!("/app/practices/{practice_id}/schedule");
    let who = clinician
        .map(|c| format!("clinician={}&", c.id))
        .unwrap_or_default();
    let at = |path: &str, d: NaiveDate| format!("{base}{path}?{who}date={}", d.format("%Y-%m-%d"));
    let heading = match (clinician, week) {
        (Some(c), true) => format!("Week of {} {} · {}", day_label(first), first.year(), c.name),
        (Some(c), false) => format!("{} {} · {}", day_label(first), first.year(), c.name),
        (None, _) => "Schedule".to_owned(),
    };
    let page = SchedulePage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        view: if week { "week" } else { "day" },
        heading,
        clinician: clinician.map(|c| c.id),
        date: first.format("%Y-%m-%d").to_string(),
        prev: at(if week { "" } else { "/day" }, first - Duration::days(step)),
        next: at(if week { "" } else { "/day" }, first + Duration::days(step)),
        prev_label: if week {
            "Previous week"
        } else {
            "Previous day"
        },
        next_label: if week { "Next week" } else { "Next day" },
        other: if week {
            at("/day", today.max(first).min(first + Duration::days(6)))
        } else {
            at("", first)
        },
        other_label: if week { "Day view" } else { "Week view" },
        days,
        clinicians: select(list, picked_id),
    };
    html(&page)
}

/// `GET /app/practices/{practice_id}/schedule?clinician=&date=`: the clinician's week
/// (Monday to Sunday) holding `date` (default today).
pub(crate) async fn week_page(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Query(q): Query<ScheduleQuery>,
) -> Result<Response, WebError> {
    schedule(&state, ctx, &q, true).await
}

/// `GET /app/practices/{practice_id}/schedule/day?clinician=&date=`: the clinician's day.
pub(crate) async fn day_page(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Query(q): Query<ScheduleQuery>,
) -> Result<Response, WebError> {
    schedule(&state, ctx, &q, false).await
}

/// A patient the appointment form can be for.
pub(crate) struct Choice {
    id: PatientId,
    name: String,
    date_of_birth: String,
    checked: bool,
}

/// The booking form (new) and the move form (an existing appointment).
#[derive(Template)]
#[template(path = "appointment_form.html")]
pub(crate) struct AppointmentFormPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    /// `Some` when moving.
    appointment_id: Option<AppointmentId>,
    /// The patient, when known (moving, or chosen already): id and name.
    patient: Option<(PatientId, String)>,
    /// Patients found by the finder, to choose from.
    choices: Vec<Choice>,
    /// The finder's fields and refusals.
    search: SearchForm,
    search_errors: FieldErrors,
    search_message: Option<&'static str>,
    searched: bool,
    clinicians: Vec<Clinician>,
    clinician: Option<UserId>,
    fields: Vec<Field>,
    errors: FieldErrors,
    date: String,
    back: String,
}

/// What the appointment form holds, as typed.
#[derive(Deserialize, Default)]
pub(crate) struct AppointmentForm {
    #[serde(default)]
    patient_id: String,
    #[serde(default)]
    clinician: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    start: String,
    #[serde(default)]
    minutes: String,
}

fn time_fields(form: &AppointmentForm, errors: &FieldErrors) -> Vec<Field> {
    vec![
        Field::new("date", "Date", "date", &form.date, errors).attrs("required"),
        Field::new("start", "Start time (UTC)", "time", &form.start, errors)
            .attrs("required step=\"300\""),
        Field::new(
            "minutes",
            "Length in minutes",
            "number",
            &form.minutes,
            errors,
        )
        .attrs("required min=\"5\" max=\"1440\" step=\"5\" inputmode=\"numeric\""),
    ]
}

/// The times and clinician of an appointment form under the API's rules, or the refusals.
fn when(
    form: &AppointmentForm,
    errors: &mut FieldErrors,
) -> Option<(UserId, DateTime<Utc>, DateTime<Utc>)> {
    let clinician = filled(&form.clinician).and_then(|c| c.parse::<UserId>().ok());
    if clinician.is_none() {
        errors.add("clinician", "Clinician: choose one.");
    }
    let date = filled(&form.date).and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    if date.is_none() {
        errors.add("date", "Date: enter a full date (YYYY-MM-DD).");
    }
    let start = filled(&form.start).and_then(|t| {
        NaiveTime::parse_from_str(t, "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M:%S"))
            .ok()
    });
    if start.is_none() {
        errors.add("start", "Start time: enter a time (HH:MM).");
    }
    let minutes = filled(&form.minutes).and_then(|m| m.parse::<i64>().ok());
    if minutes.is_none() {
        errors.add("minutes", "Length: enter a number of minutes.");
    }
    let (clinician, date, start, minutes) = (clinician?, date?, start?, minutes?);
    let starts = date.and_time(start).and_utc();
    let ends = starts + Duration::minutes(minutes);
    if rules::appointment_times(starts, ends).is_err() {
        errors.add(
            "minutes",
            "Length: the appointment must end after it starts, at most 24 hours (1440 minutes) later.",
        );
        return None;
    }
    Some((clinician, starts, ends))
}

fn week_of(practice_id: PracticeId, clinician: UserId, at: DateTime<Utc>) -> String {
    format!(
        "/app/practices/{practice_id}/schedule?clinician={clinician}&date={}",
        at.format("%Y-%m-%d")
    )
}

/// `?clinician=&date=&patient=` of the booking form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewQuery {
    clinician: Option<String>,
    date: Option<String>,
    patient: Option<String>,
}

/// Reads one patient for the form through the API's path ([`server::actions::read_patient`],
/// audited `patient.read`); `None` when deleted or unknown.
async fn chosen_patient(
    state: &AppState,
    tx: &mut TenantTx,
    id: PatientId,
) -> Result<Option<(PatientId, String)>, WebError> {
    match server::actions::read_patient(tx, state.store.keyring()?, id).await {
        Ok(p) => Ok(Some((id, format!("{} {}", p.given_name, p.family_name)))),
        Err(AppError::NotFound(_) | AppError::Gone(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Everything the booking form shows besides its fields.
struct BookingContext {
    chrome: Chrome,
    practice_id: PracticeId,
    clinicians: Vec<Clinician>,
}

async fn booking_context(tx: &mut TenantTx) -> Result<BookingContext, WebError> {
    Ok(BookingContext {
        practice_id: tx.practice(),
        chrome: chrome(tx).await?,
        clinicians: clinicians(tx).await?,
    })
}

#[allow(
    clippy::too_many_arguments,
    reason = "one page, several independent parts; a builder would only rename them"
)]
fn booking_page(
    c: BookingContext,
    patient: Option<(PatientId, String)>,
    choices: Vec<Choice>,
    search: SearchForm,
    search_errors: FieldErrors,
    search_message: Option<&'static str>,
    searched: bool,
    form: &AppointmentForm,
    errors: FieldErrors,
) -> AppointmentFormPage {
    let clinician = filled(&form.clinician).and_then(|id| id.parse().ok());
    let back = format!(
        "/app/practices/{}/schedule?{}date={}",
        c.practice_id,
        clinician
            .map(|id: UserId| format!("clinician={id}&"))
            .unwrap_or_default(),
        form.date
    );
    AppointmentFormPage {
        assets: assets(),
        chrome: Some(c.chrome),
        practice_id: c.practice_id,
        appointment_id: None,
        patient,
        choices,
        search,
        search_errors,
        search_message,
        searched,
        clinician,
        clinicians: select(c.clinicians, clinician),
        fields: time_fields(form, &errors),
        errors,
        date: form.date.clone(),
        back,
    }
}

/// `GET /app/practices/{practice_id}/appointments/new?clinician=&date=&patient=`: the booking
/// form (a patient given by id is read, audited `patient.read`; else a finder to pick one).
pub(crate) async fn appointment_new_page(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Query(q): Query<NewQuery>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let c = booking_context(&mut tx).await?;
    let today = tx.now().date_naive();
    let date = query_date(q.date.as_deref(), "date", today)?;
    let clinician = match q.clinician.as_deref().and_then(filled) {
        Some(raw) => {
            let id: UserId = path_id(raw, "clinician")?;
            if !c.clinicians.iter().any(|x| x.id == id) {
                return Err(AppError::NotFound("clinician").into());
            }
            id.to_string()
        }
        None => String::new(),
    };
    let patient = match q.patient.as_deref().and_then(filled) {
        Some(raw) => {
            let id: PatientId = path_id(raw, "patient")?;
            Some(
                chosen_patient(&state, &mut tx, id)
                    .await?
                    .ok_or(AppError::NotFound("patient"))?,
            )
        }
        None => None,
    };
    tx.commit().await?;
    let form = AppointmentForm {
        patient_id: String::new(),
        clinician,
        date: date.format("%Y-%m-%d").to_string(),
        start: String::new(),
        minutes: DEFAULT_MINUTES.to_string(),
    };
    html(&booking_page(
        c,
        patient,
        Vec::new(),
        SearchForm::default(),
        FieldErrors::default(),
        None,
        false,
        &form,
        FieldErrors::default(),
    ))
}

/// The finder's post: the search fields plus the booking fields typed so far.
#[derive(Deserialize)]
pub(crate) struct FindForm {
    #[serde(flatten)]
    search: SearchForm,
    #[serde(flatten)]
    form: AppointmentForm,
}

/// `POST /app/practices/{practice_id}/appointments/new`: the booking form with the patients
/// matching the finder (name prefix, date of birth, phone: the patients search, audited
/// `patient.list`) to choose from. A refused search is `400` with its messages.
pub(crate) async fn appointment_find(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Form(mut find): Form<FindForm>,
) -> Result<Response, WebError> {
    if filled(&find.form.minutes).is_none() {
        find.form.minutes = DEFAULT_MINUTES.to_string();
    }
    let mut tx = ctx.tx;
    let c = booking_context(&mut tx).await?;
    let (choices, errors, message, status) = match criteria(&find.search) {
        Ok(query) => {
            let found = run_search(&state, &mut tx, &query).await?;
            let single = found.len() == 1;
            let message = found.is_empty().then_some("No patient matches.");
            let choices = found
                .into_iter()
                .map(|p| Choice {
                    id: p.patient_id,
                    name: format!("{}, {}", p.family_name, p.given_name),
                    date_of_birth: p
                        .date_of_birth
                        .map(|d| d.format("%Y-%m-%d").to_string())
                        .unwrap_or_default(),
                    checked: single,
                })
                .collect();
            (choices, FieldErrors::default(), message, StatusCode::OK)
        }
        Err((errors, message)) => (Vec::new(), errors, message, StatusCode::BAD_REQUEST),
    };
    tx.commit().await?;
    html_status(
        status,
        &booking_page(
            c,
            None,
            choices,
            find.search,
            errors,
            message,
            true,
            &find.form,
            FieldErrors::default(),
        ),
    )
}

/// `POST /app/practices/{practice_id}/appointments`: books as the API does
/// (`store::appointments::create`, audited `appointment.create`), then the clinician's week
/// (`303`). Refused input: `400`, the form with its messages, nothing booked.
pub(crate) async fn appointment_create(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Form(form): Form<AppointmentForm>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let mut errors = FieldErrors::default();
    let patient = filled(&form.patient_id).and_then(|p| p.parse::<PatientId>().ok());
    if patient.is_none() {
        errors.add("patient", "Patient: find and choose the patient.");
    }
    let when = when(&form, &mut errors);
    let (Some(patient_id), Some((clinician_id, starts_at, ends_at))) = (patient, when) else {
        let patient = match patient {
            Some(id) => chosen_patient(&state, &mut tx, id).await?,
            None => None,
        };
        let c = booking_context(&mut tx).await?;
        tx.commit().await?;
        return html_status(
            StatusCode::BAD_REQUEST,
            &booking_page(
                c,
                patient,
                Vec::new(),
                SearchForm::default(),
                FieldErrors::default(),
                None,
                false,
                &form,
                errors,
            ),
        );
    };
    let new = store::appointments::NewAppointment {
        patient_id,
        clinician_id,
        starts_at,
        ends_at,
    };
    server::actions::book(&mut tx, &new).await?;
    tx.commit().await?;
    Ok(redirect(&week_of(practice_id, clinician_id, starts_at)))
}

/// Reads one appointment through the API's path ([`server::actions::read_appointment`],
/// audited `appointment.read` after its patient's name is decrypted, as a commit requires)
/// with that name (a deleted patient has none); `404` when unknown.
async fn read_appointment(
    state: &AppState,
    tx: &mut TenantTx,
    id: AppointmentId,
) -> Result<(store::appointments::Appointment, String), WebError> {
    let keyring = state.store.keyring()?;
    Ok(server::actions::read_appointment(tx, id, async |tx, a| {
        Ok(store::patients::get(tx, keyring, a.patient_id)
            .await?
            .map_or_else(
                || DELETED_PATIENT.to_owned(),
                |p| format!("{} {}", p.given_name, p.family_name),
            ))
    })
    .await?)
}

fn move_page(
    c: BookingContext,
    a: &store::appointments::Appointment,
    patient: String,
    form: &AppointmentForm,
    errors: FieldErrors,
) -> AppointmentFormPage {
    AppointmentFormPage {
        assets: assets(),
        chrome: Some(c.chrome),
        practice_id: c.practice_id,
        appointment_id: Some(a.appointment_id),
        patient: Some((a.patient_id, patient)),
        choices: Vec::new(),
        search: SearchForm::default(),
        search_errors: FieldErrors::default(),
        search_message: None,
        searched: false,
        clinician: filled(&form.clinician).and_then(|id| id.parse().ok()),
        clinicians: select(
            c.clinicians,
            filled(&form.clinician).and_then(|id| id.parse().ok()),
        ),
        fields: time_fields(form, &errors),
        errors,
        date: a.starts_at.format("%Y-%m-%d").to_string(),
        back: week_of(c.practice_id, a.clinician_id, a.starts_at),
    }
}

/// `GET /app/practices/{practice_id}/appointments/{appointment_id}/move`: the move form with
/// the appointment's time, length and clinician (audited `appointment.read`).
pub(crate) async fn appointment_move_page(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let id: AppointmentId = path_id(&id, "appointment")?;
    let mut tx = ctx.tx;
    let (a, patient) = read_appointment(&state, &mut tx, id).await?;
    let c = booking_context(&mut tx).await?;
    tx.commit().await?;
    let form = AppointmentForm {
        patient_id: String::new(),
        clinician: a.clinician_id.to_string(),
        date: a.starts_at.format("%Y-%m-%d").to_string(),
        start: a.starts_at.format("%H:%M").to_string(),
        minutes: (a.ends_at - a.starts_at).num_minutes().to_string(),
    };
    html(&move_page(c, &a, patient, &form, FieldErrors::default()))
}

/// `POST /app/practices/{practice_id}/appointments/{appointment_id}/move`: reschedules as the
/// API's update does (`store::appointments::update`, audited `appointment.update`), then the
/// week it is now in (`303`). Refused input: `400`, the form with its messages, nothing moved.
pub(crate) async fn appointment_move(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<AppointmentForm>,
) -> Result<Response, WebError> {
    let id: AppointmentId = path_id(&id, "appointment")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let mut errors = FieldErrors::default();
    let Some((clinician_id, starts_at, ends_at)) = when(&form, &mut errors) else {
        let (a, patient) = read_appointment(&state, &mut tx, id).await?;
        let c = booking_context(&mut tx).await?;
        tx.commit().await?;
        return html_status(
            StatusCode::BAD_REQUEST,
            &move_page(c, &a, patient, &form, errors),
        );
    };
    let patch = store::appointments::AppointmentPatch {
        starts_at: Some(starts_at),
        ends_at: Some(ends_at),
        status: None,
        clinician_id: Some(clinician_id),
    };
    let keyring = state.store.keyring().map_err(AppError::from)?.clone();
    server::actions::change(&mut tx, &keyring, id, &patch).await?;
    tx.commit().await?;
    Ok(redirect(&week_of(practice_id, clinician_id, starts_at)))
}

/// The cancel confirmation.
#[derive(Template)]
#[template(path = "appointment_cancel.html")]
pub(crate) struct CancelPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    appointment_id: AppointmentId,
    patient: String,
    when: String,
    cancelled: bool,
    back: String,
}

/// `GET /app/practices/{practice_id}/appointments/{appointment_id}/cancel`: asks for
/// confirmation, naming the patient and the time (audited `appointment.read`).
pub(crate) async fn appointment_cancel_page(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let id: AppointmentId = path_id(&id, "appointment")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let (a, patient) = read_appointment(&state, &mut tx, id).await?;
    tx.commit().await?;
    html(&CancelPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        appointment_id: id,
        patient,
        when: format!(
            "{} {}, {}–{} UTC",
            day_label(a.starts_at.date_naive()),
            a.starts_at.year(),
            a.starts_at.format("%H:%M"),
            a.ends_at.format("%H:%M")
        ),
        cancelled: a.status == rules::CANCELLED,
        back: week_of(practice_id, a.clinician_id, a.starts_at),
    })
}

/// `POST /app/practices/{practice_id}/appointments/{appointment_id}/cancel`: sets the status
/// `cancelled` as the API's update does (audited `appointment.update`); the appointment stays
/// on the schedule, marked cancelled. Then its week (`303`).
pub(crate) async fn appointment_cancel(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let id: AppointmentId = path_id(&id, "appointment")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let patch = store::appointments::AppointmentPatch {
        status: Some(rules::CANCELLED.to_owned()),
        ..Default::default()
    };
    let keyring = state.store.keyring().map_err(AppError::from)?.clone();
    let a = server::actions::change(&mut tx, &keyring, id, &patch).await?;
    tx.commit().await?;
    Ok(redirect(&week_of(practice_id, a.clinician_id, a.starts_at)))
}
