//! Disclosures of a patient's information outside the practice, and the patient's
//! accounting of disclosures (HIPAA 164.528) — for clinicians and reception, as in the API
//! (its `Scheduling` privilege): the accounting over a window of whole days (default: the six
//! years up to the end of today) without treatment, payment and operations, repeated
//! disclosures summarized; and the form to record one. Through the API's actions
//! (`server::actions::{disclosure_accounting, record_disclosure}`) and its input rule
//! ([`server::rules::disclosures`]), so the same refusals and audit events
//! (`disclosure.report` after the read, `disclosure.create`).

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::{PatientId, PracticeId};
use serde::Deserialize;
use server::extract::Scheduling;
use server::{AppError, AppState};
use store::TenantTx;

use super::{Chrome, Member, chrome, filled, html, html_status, path_id, redirect};
use crate::{Assets, WebError, assets};

/// The HIPAA 164.528 window (six years), as the API's default.
const SIX_YEARS: i64 = 6 * 365 + 2;

/// A disclosure row.
pub(crate) struct Row {
    when: String,
    recipient: String,
    description: String,
    purpose: String,
    kind: String,
}

/// A summary row (repeated disclosures to one recipient for one purpose).
pub(crate) struct SummaryRow {
    recipient: String,
    purpose: String,
    count: usize,
    first: String,
    last: String,
}

/// The record form as typed.
#[derive(Deserialize, Default)]
pub(crate) struct DisclosureForm {
    #[serde(default)]
    disclosed_on: String,
    #[serde(default)]
    recipient: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    tpo: Option<String>,
}

/// `?from=&to=&done=` (days).
#[derive(Deserialize, Default)]
pub(crate) struct WindowQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    done: Option<String>,
}

/// The accounting page.
#[derive(Template)]
#[template(path = "disclosures.html")]
pub(crate) struct DisclosuresPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    patient_id: PatientId,
    window: String,
    from: String,
    to: String,
    rows: Vec<Row>,
    summary: Vec<SummaryRow>,
    form: DisclosureForm,
    error: Option<String>,
    done: bool,
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

fn day_start(raw: &str, label: &str) -> Result<Option<DateTime<Utc>>, AppError> {
    filled(raw)
        .map(|t| {
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
                .ok_or_else(|| {
                    AppError::Invalid(format!("{label}: enter a full date (YYYY-MM-DD)"))
                })
        })
        .transpose()
}

/// Reads the accounting for `patient` over the window through the API's report action
/// (audited `disclosure.report` after the read).
async fn accounting(
    state: &AppState,
    tx: &mut TenantTx,
    patient: PatientId,
    q: &WindowQuery,
    form: DisclosureForm,
    error: Option<String>,
) -> Result<DisclosuresPage, WebError> {
    let practice_id = tx.practice();
    let end_of_today = tx
        .now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or_else(|| tx.now(), |t| t.and_utc() + Duration::days(1));
    let to = day_start(&q.to, "To")?.map_or(end_of_today, |t| t + Duration::days(1));
    let from = day_start(&q.from, "From")?.unwrap_or(to - Duration::days(SIX_YEARS));
    if from >= to {
        return Err(AppError::Invalid("From must be before To".into()).into());
    }
    let chrome = chrome(tx).await?;
    let list =
        server::actions::disclosure_accounting(tx, state.store.keyring()?, patient, from, to)
            .await?;
    let summary = server::rules::disclosures::accounting_summary(&list)
        .into_iter()
        .map(|s| SummaryRow {
            recipient: s.recipient,
            purpose: s.purpose,
            count: s.count,
            first: day(s.first),
            last: day(s.last),
        })
        .collect();
    let rows = list
        .into_iter()
        .map(|d| Row {
            when: d.disclosed_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            recipient: d.recipient,
            description: d.description,
            purpose: d.purpose,
            kind: d.kind,
        })
        .collect();
    Ok(DisclosuresPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        patient_id: patient,
        window: format!("{} to {}", day(from), day(to - Duration::days(1))),
        from: q.from.clone(),
        to: q.to.clone(),
        rows,
        summary,
        form,
        error,
        done: q.done.as_deref() == Some("recorded"),
    })
}

/// `GET /app/practices/{practice_id}/patients/{patient_id}/disclosures[?from=&to=]`: the
/// patient's accounting of disclosures and the form to record one.
pub(crate) async fn disclosures_page(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Path((_, patient)): Path<(String, String)>,
    Query(q): Query<WindowQuery>,
) -> Result<Response, WebError> {
    let patient: PatientId = path_id(&patient, "patient")?;
    let mut tx = ctx.tx;
    let page = accounting(
        &state,
        &mut tx,
        patient,
        &q,
        DisclosureForm::default(),
        None,
    )
    .await?;
    tx.commit().await?;
    html(&page)
}

/// `POST /app/practices/{practice_id}/patients/{patient_id}/disclosures`: records a
/// disclosure as the API does ([`server::rules::disclosures::disclosure_input`],
/// [`server::actions::record_disclosure`], audited `disclosure.create`), then the accounting
/// (`303`). Refused: `400` with the page and what was typed, nothing recorded; `404` for an
/// unknown patient.
pub(crate) async fn disclosure_create(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Path((_, patient)): Path<(String, String)>,
    Form(form): Form<DisclosureForm>,
) -> Result<Response, WebError> {
    let patient: PatientId = path_id(&patient, "patient")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let checked = day_start(&form.disclosed_on, "disclosed_at").and_then(|at| {
        server::rules::disclosures::disclosure_input(
            at,
            &form.recipient,
            &form.description,
            &form.purpose,
            form.tpo.is_some(),
            filled(&form.kind).map(str::to_owned),
            tx.now(),
        )
    });
    match checked {
        Ok(new) => {
            server::actions::record_disclosure(&mut tx, state.store.keyring()?, patient, &new)
                .await?;
            tx.commit().await?;
            Ok(redirect(&format!(
                "/app/practices/{practice_id}/patients/{patient}/disclosures?done=recorded"
            )))
        }
        Err(e) => {
            let status = e.status();
            let page = accounting(
                &state,
                &mut tx,
                patient,
                &WindowQuery::default(),
                form,
                Some(format!("Nothing was recorded: {e}.")),
            )
            .await?;
            tx.commit().await?;
            html_status(status, &page)
        }
    }
}
