//! The waitlist screen (reception, owners and admins): the clients waiting for a time, the
//! form to add one (a patient, a service, the days they can come) and a button to take one
//! off. The same store calls as the API ([`store::waitlist`], audited `waitlist.list`,
//! `waitlist.add`, `waitlist.remove`); entries show ids, services, windows and states only,
//! and whether the client joined by themselves on the public booking page.
//! A cancellation offers the freed time to the oldest matching entries by itself.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use domain::{PatientId, PracticeId, ServiceId, WaitlistEntryId};
use serde::Deserialize;
use server::extract::FrontDeskOrManage;
use store::waitlist::NewEntry;

use super::{Chrome, Member, chrome, html, path_id, redirect};
use crate::{Assets, WebError, assets};

/// One entry as the screen shows it.
pub(crate) struct EntryRow {
    id: String,
    patient: String,
    service: String,
    window: String,
    state: String,
    offers: i64,
    waiting: bool,
    /// Who put the client on the list: `Staff`, or `Self-joined` (`, new client` when the
    /// public page did not recognise them).
    source: &'static str,
}

/// A service to choose.
pub(crate) struct ServiceOption {
    id: String,
    name: String,
}

/// The waitlist page.
#[derive(Template)]
#[template(path = "waitlist.html")]
pub(crate) struct WaitlistPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    rows: Vec<EntryRow>,
    services: Vec<ServiceOption>,
    done: Option<&'static str>,
    error: Option<String>,
}

/// `?done=` / `?refused=`.
#[derive(Deserialize)]
pub(crate) struct WaitlistQuery {
    done: Option<String>,
    refused: Option<String>,
}

fn day(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%a %-d %b %Y").to_string()
}

/// `GET /app/practices/{practice_id}/waitlist`.
pub(crate) async fn waitlist_page(
    Member(ctx): Member<FrontDeskOrManage>,
    Query(q): Query<WaitlistQuery>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let tz = store::waitlist::time_zone(&mut tx).await?;
    let services = store::booking::services(&mut tx).await?;
    let entries = store::waitlist::list(&mut tx, None).await?;
    tx.commit().await?;
    let name = |id: ServiceId| {
        services
            .iter()
            .find(|s| s.service_id == id)
            .map(|s| s.name.clone())
            .unwrap_or_default()
    };
    let rows = entries
        .into_iter()
        .filter(|e| e.state != "removed")
        .map(|e| EntryRow {
            id: e.entry_id.to_string(),
            patient: e.patient_id.to_string(),
            service: name(e.service_id),
            window: format!("{} – {}", day(e.earliest, tz), day(e.latest, tz)),
            waiting: e.state == "waiting",
            source: match (e.self_joined, e.new_client) {
                (false, _) => "Staff",
                (true, false) => "Self-joined",
                (true, true) => "Self-joined, new client",
            },
            state: e.state,
            offers: e.offers,
        })
        .collect();
    let done = match q.done.as_deref() {
        Some("added") => Some("Added to the waitlist."),
        Some("removed") => Some("Taken off the waitlist."),
        _ => None,
    };
    let error = q.refused.as_deref().map(|f| match f {
        "patient_id" => "Not added: no patient has that id.".to_owned(),
        "service_id" => "Not added: choose one of the services offered.".to_owned(),
        "days" => "Not added: the last day must be on or after the first, and not past.".to_owned(),
        _ => "Not added: check the form.".to_owned(),
    });
    html(&WaitlistPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        rows,
        services: services
            .into_iter()
            .filter(|s| s.active)
            .map(|s| ServiceOption {
                id: s.service_id.to_string(),
                name: s.name,
            })
            .collect(),
        done,
        error,
    })
}

/// The add form.
#[derive(Deserialize)]
pub(crate) struct AddForm {
    #[serde(default)]
    patient_id: String,
    #[serde(default)]
    service_id: String,
    #[serde(default)]
    first_day: String,
    #[serde(default)]
    last_day: String,
}

fn refused(practice: PracticeId, field: &str) -> Response {
    redirect(&format!(
        "/app/practices/{practice}/waitlist?refused={field}"
    ))
}

/// `POST /app/practices/{practice_id}/waitlist`: adds the entry (`waitlist.add`), from the
/// start of the first day to the end of the last in the practice's time zone; `303` back,
/// saying what was refused (nothing changed).
pub(crate) async fn waitlist_add(
    Member(ctx): Member<FrontDeskOrManage>,
    Form(f): Form<AddForm>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice = tx.practice();
    let Ok(patient_id) = f.patient_id.trim().parse::<PatientId>() else {
        return Ok(refused(practice, "patient_id"));
    };
    let Ok(service_id) = f.service_id.trim().parse::<ServiceId>() else {
        return Ok(refused(practice, "service_id"));
    };
    let (Ok(first), Ok(last)) = (
        NaiveDate::parse_from_str(f.first_day.trim(), "%Y-%m-%d"),
        NaiveDate::parse_from_str(f.last_day.trim(), "%Y-%m-%d"),
    ) else {
        return Ok(refused(practice, "days"));
    };
    let tz = store::waitlist::time_zone(&mut tx).await?;
    let local = |d: NaiveDate, t: NaiveTime| {
        tz.from_local_datetime(&d.and_time(t))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(earliest), Some(latest)) = (
        local(first, NaiveTime::MIN),
        last.succ_opt().and_then(|d| local(d, NaiveTime::MIN)),
    ) else {
        return Ok(refused(practice, "days"));
    };
    let new = NewEntry {
        patient_id,
        service_id,
        clinician_id: None,
        earliest,
        latest,
    };
    match store::waitlist::add(&mut tx, &new).await {
        Ok(_) => {
            tx.commit().await?;
            Ok(redirect(&format!(
                "/app/practices/{practice}/waitlist?done=added"
            )))
        }
        Err(store::StoreError::Invalid(m)) => {
            let field = if m.starts_with("patient_id") {
                "patient_id"
            } else if m.starts_with("service_id") {
                "service_id"
            } else {
                "days"
            };
            Ok(refused(practice, field))
        }
        Err(e) => Err(WebError(e.into())),
    }
}

/// `POST /app/practices/{practice_id}/waitlist/{entry_id}/remove` (`waitlist.remove`): `303`
/// back.
pub(crate) async fn waitlist_remove(
    Member(ctx): Member<FrontDeskOrManage>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let id: WaitlistEntryId = path_id(&id, "waitlist entry")?;
    let mut tx = ctx.tx;
    let practice = tx.practice();
    store::waitlist::remove(&mut tx, id)
        .await?
        .ok_or(WebError(server::AppError::NotFound("waitlist entry")))?;
    tx.commit().await?;
    Ok(redirect(&format!(
        "/app/practices/{practice}/waitlist?done=removed"
    )))
}
