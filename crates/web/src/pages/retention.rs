//! Retention windows and legal holds (owners and admins, req INT-02): the practice's windows
//! (set by the operator, shown here), the patients under legal hold, placing a hold on a
//! patient (named by id: owners and admins see no patient data) with a category — never a
//! typed reason, which could be PHI — and releasing one. Through the API's actions
//! (`server::actions::{read_retention, place_legal_hold, release_legal_hold}`), so the same
//! store calls, refusals and audit events (`retention.read`, `legal_hold.place`,
//! `legal_hold.release`).

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use domain::{PatientId, PracticeId};
use serde::Deserialize;
use server::AppError;
use server::extract::Manage;
use store::TenantTx;
use store::retention::HoldCategory;

use super::{Chrome, Member, chrome, filled, html, html_status, path_id, redirect};
use crate::{Assets, WebError, assets};

/// A hold row.
pub(crate) struct HoldRow {
    patient: PatientId,
    category: &'static str,
    placed_by: String,
    placed_at: String,
}

/// A category choice.
pub(crate) struct CategoryChoice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

/// The place-hold form as typed.
#[derive(Deserialize, Default)]
pub(crate) struct HoldForm {
    #[serde(default)]
    patient_id: String,
    #[serde(default)]
    category: String,
}

/// The retention page.
#[derive(Template)]
#[template(path = "retention.html")]
pub(crate) struct RetentionPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    deleted_retention_days: i32,
    record_keeping_years: i32,
    holds: Vec<HoldRow>,
    form: HoldForm,
    categories: Vec<CategoryChoice>,
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
        "placed" => Some("Legal hold placed: nothing of the patient is purged while it holds."),
        "released" => Some("Legal hold released."),
        _ => None,
    }
}

fn label(c: HoldCategory) -> &'static str {
    match c {
        HoldCategory::Litigation => "Litigation (pending or anticipated)",
        HoldCategory::Investigation => "Investigation (regulator, board, insurer, internal)",
        HoldCategory::Regulatory => "Regulatory or statutory obligation",
        HoldCategory::RecordsRequest => "Records request being fulfilled",
        HoldCategory::Other => "Other (details kept outside the chart)",
    }
}

/// The page, read through the API's retention read (audited `retention.read` with the number
/// of holds) and member list (`membership.list`), with `form` and `error` shown.
async fn page(
    tx: &mut TenantTx,
    form: HoldForm,
    error: Option<String>,
    done: Option<&'static str>,
) -> Result<RetentionPage, WebError> {
    let practice_id = tx.practice();
    let chrome = chrome(tx).await?;
    let (settings, holds) = server::actions::read_retention(tx).await?;
    let members = server::actions::list_members(tx).await?;
    let holds = holds
        .into_iter()
        .map(|h| HoldRow {
            patient: h.patient_id,
            category: label(h.category),
            placed_by: members
                .iter()
                .find(|m| m.user_id == h.placed_by)
                .map_or_else(|| h.placed_by.to_string(), |m| m.display_name.clone()),
            placed_at: h.placed_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        })
        .collect();
    let categories = HoldCategory::ALL
        .into_iter()
        .map(|c| CategoryChoice {
            value: c.as_str(),
            label: label(c),
            selected: form.category == c.as_str(),
        })
        .collect();
    Ok(RetentionPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        deleted_retention_days: settings.deleted_retention_days,
        record_keeping_years: settings.record_keeping_years,
        holds,
        form,
        categories,
        error,
        done,
    })
}

/// `GET /app/practices/{practice_id}/retention`: the windows, the holds, the place-hold form.
pub(crate) async fn retention_page(
    Member(ctx): Member<Manage>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let p = page(
        &mut tx,
        HoldForm::default(),
        None,
        done_message(q.done.as_deref()),
    )
    .await?;
    tx.commit().await?;
    html(&p)
}

/// `POST /app/practices/{practice_id}/legal-holds`: places a legal hold on the patient (by
/// id; deleted or not) or changes its category through the API's action
/// ([`server::actions::place_legal_hold`], audited `legal_hold.place`), then the page
/// (`303`). Refused (a malformed or unknown patient id, no category): `400` / `404` with the
/// page, nothing placed.
pub(crate) async fn hold_place(
    Member(ctx): Member<Manage>,
    Form(form): Form<HoldForm>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let patient = filled(&form.patient_id).and_then(|p| p.parse::<PatientId>().ok());
    let category = HoldCategory::parse(form.category.trim());
    let (status, message) = match (patient, category) {
        (None, _) => (
            StatusCode::BAD_REQUEST,
            "Patient: enter the patient's id (a UUID).",
        ),
        (_, None) => (
            StatusCode::BAD_REQUEST,
            "Category: choose one from the list.",
        ),
        (Some(patient), Some(category)) => {
            match server::actions::place_legal_hold(&mut tx, patient, category).await {
                Ok(_) => {
                    tx.commit().await?;
                    return Ok(redirect(&format!(
                        "/app/practices/{practice_id}/retention?done=placed"
                    )));
                }
                Err(AppError::NotFound(_)) => (
                    StatusCode::NOT_FOUND,
                    "Patient: no patient of this practice has that id.",
                ),
                Err(e) => return Err(e.into()),
            }
        }
    };
    let p = page(
        &mut tx,
        form,
        Some(format!("Nothing was placed. {message}")),
        None,
    )
    .await?;
    tx.commit().await?;
    html_status(status, &p)
}

/// `POST /app/practices/{practice_id}/legal-holds/{patient_id}/release`: releases the
/// patient's hold through the API's action ([`server::actions::release_legal_hold`], audited
/// `legal_hold.release` saying whether there was one), then the page (`303`).
pub(crate) async fn hold_release(
    Member(ctx): Member<Manage>,
    Path((_, patient)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let patient: PatientId = path_id(&patient, "patient")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    server::actions::release_legal_hold(&mut tx, patient).await?;
    tx.commit().await?;
    Ok(redirect(&format!(
        "/app/practices/{practice_id}/retention?done=released"
    )))
}
