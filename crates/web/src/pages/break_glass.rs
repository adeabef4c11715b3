//! The break-glass review queue (owners and admins): every time a clinician opened a patient
//! outside the care team, with the reason they gave, until an owner or admin acknowledges it
//! after review — through the API's actions (`server::actions::{review_break_glass,
//! acknowledge_break_glass}`), so the same audit events (`break_glass.review`, written after
//! the reasons are decrypted; `break_glass.acknowledge` naming the patient). Patients appear
//! by id only.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use domain::PracticeId;
use serde::Deserialize;
use server::AppState;
use server::extract::Manage;

use super::{Chrome, Member, chrome, html, path_id, redirect};
use crate::{Assets, WebError, assets};

/// A grant row.
pub(crate) struct GrantRow {
    id: uuid::Uuid,
    clinician: String,
    patient: String,
    reason: String,
    opened: String,
    expires: String,
    acknowledged: Option<String>,
}

/// The review page.
#[derive(Template)]
#[template(path = "break_glass.html")]
pub(crate) struct BreakGlassPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    grants: Vec<GrantRow>,
    all: bool,
    done: bool,
}

/// `?all=1` (reviewed ones too), `?done=acknowledged`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewQuery {
    all: Option<String>,
    done: Option<String>,
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `GET /app/practices/{practice_id}/break-glass[?all=1]`: the grants awaiting review (or
/// all), newest first, each with its acknowledge button while pending.
pub(crate) async fn review_page(
    State(state): State<AppState>,
    Member(ctx): Member<Manage>,
    Query(q): Query<ReviewQuery>,
) -> Result<Response, WebError> {
    let all = q.all.as_deref() == Some("1");
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let members = server::actions::list_members(&mut tx).await?;
    let grants = server::actions::review_break_glass(&mut tx, state.store.keyring()?, !all).await?;
    tx.commit().await?;
    let name = |id: domain::UserId| {
        members
            .iter()
            .find(|m| m.user_id == id)
            .map_or_else(|| id.to_string(), |m| m.display_name.clone())
    };
    let grants = grants
        .into_iter()
        .map(|g| GrantRow {
            id: g.grant_id,
            clinician: name(g.user_id),
            patient: g.patient_id.to_string(),
            reason: g.reason,
            opened: when(g.opened_at),
            expires: when(g.expires_at),
            acknowledged: match (g.acknowledged_by, g.acknowledged_at) {
                (Some(by), Some(at)) => Some(format!("{} by {}", when(at), name(by))),
                _ => None,
            },
        })
        .collect();
    html(&BreakGlassPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        grants,
        all,
        done: q.done.as_deref() == Some("acknowledged"),
    })
}

/// `POST /app/practices/{practice_id}/break-glass/{grant_id}/acknowledge`: acknowledges the
/// grant after review through the API's action (audited `break_glass.acknowledge` naming its
/// patient), then the queue (`303`); `404` for an unknown or already acknowledged grant.
pub(crate) async fn acknowledge(
    Member(ctx): Member<Manage>,
    Path((_, grant)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let grant: uuid::Uuid = path_id(&grant, "break-glass grant awaiting review")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    server::actions::acknowledge_break_glass(&mut tx, grant).await?;
    tx.commit().await?;
    Ok(redirect(&format!(
        "/app/practices/{practice_id}/break-glass?done=acknowledged"
    )))
}
