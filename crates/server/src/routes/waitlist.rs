//! The booking waitlist (reception, owners and admins): clients waiting for a time of a
//! service. A cancellation offers the freed slot to the oldest matching entries
//! ([`store::waitlist`]); the client accepts on the public offer page (`/offer/{token}`).
//! Entries carry ids, a service, a window and a state: no contact details.

use axum::Json;
use axum::http::StatusCode;
use domain::{PracticeId, WaitlistEntryId};
use serde::Deserialize;
use store::waitlist::{Entry, NewEntry};
use utoipa::IntoParams;

use crate::AppError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Ctx, FrontDeskOrManage};

/// Which entries to list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct WaitlistFilter {
    /// Only this state: `waiting`, `booked` or `removed`.
    state: Option<String>,
}

/// The waitlist, oldest first (at most 500).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/waitlist", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid), WaitlistFilter),
    responses((status = 200, body = Vec<Entry>), (status = 400, body = crate::views::ErrorBody)))]
pub(crate) async fn waitlist_list(
    ctx: Ctx<FrontDeskOrManage>,
    ApiQuery(f): ApiQuery<WaitlistFilter>,
) -> Result<Json<Vec<Entry>>, AppError> {
    let mut tx = ctx.tx;
    let rows = store::waitlist::list(&mut tx, f.state.as_deref()).await?;
    tx.commit().await?;
    Ok(Json(rows))
}

/// Puts a client on the waitlist for a service, a window of start times and optionally a
/// clinician.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/waitlist", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid)),
    request_body = NewEntry,
    responses((status = 201, body = Entry), (status = 400, body = crate::views::ErrorBody)))]
pub(crate) async fn waitlist_add(
    ctx: Ctx<FrontDeskOrManage>,
    ApiJson(req): ApiJson<NewEntry>,
) -> Result<(StatusCode, Json<Entry>), AppError> {
    let mut tx = ctx.tx;
    let entry = store::waitlist::add(&mut tx, &req).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// Takes a waiting client off the waitlist.
#[utoipa::path(delete, path = "/api/v1/practices/{practice_id}/waitlist/{entry_id}", tag = "booking",
    params(("practice_id" = String, Path, format = Uuid), ("entry_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Entry), (status = 404, body = crate::views::ErrorBody),
        (status = 409, body = crate::views::ErrorBody)))]
pub(crate) async fn waitlist_remove(
    ctx: Ctx<FrontDeskOrManage>,
    ApiPath((_, id)): ApiPath<(PracticeId, WaitlistEntryId)>,
) -> Result<Json<Entry>, AppError> {
    let mut tx = ctx.tx;
    let entry = store::waitlist::remove(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound("waitlist entry"))?;
    tx.commit().await?;
    Ok(Json(entry))
}
