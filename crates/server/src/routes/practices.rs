//! Practices: the caller's list, and one practice's settings.

use axum::Json;
use domain::AuditAction;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppError;
use crate::extract::{AnyMember, ApiJson, Ctx, Manage, Session};
use crate::views::{MyPracticeView, PracticeView};

/// The practices the caller belongs to, with their roles.
#[utoipa::path(get, path = "/api/v1/practices", tag = "practices",
    responses((status = 200, body = Vec<MyPracticeView>), (status = 401, body = crate::views::ErrorBody)))]
pub(crate) async fn practice_list(
    mut session: Session,
) -> Result<Json<Vec<MyPracticeView>>, AppError> {
    let list = session.tx.my_practices().await?;
    session.tx.commit().await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// One practice (any member).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}", tag = "practices",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = PracticeView), (status = 401, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn practice_get(ctx: Ctx<AnyMember>) -> Result<Json<PracticeView>, AppError> {
    let mut tx = ctx.tx;
    let p = store::practices::get(&mut tx).await?;
    tx.audit(
        AuditAction::PracticeRead,
        None,
        Some(("practice", p.practice_id.as_uuid())),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(p.into()))
}

/// Changes to a practice.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PracticeUpdate {
    /// New name (1–200 characters).
    name: Option<String>,
    /// New settings (a JSON object, at most 16 KiB); replaces the old settings.
    #[schema(value_type = Option<Object>)]
    settings: Option<serde_json::Value>,
}

/// Renames a practice or replaces its settings (owner or admin).
#[utoipa::path(patch, path = "/api/v1/practices/{practice_id}", tag = "practices",
    params(("practice_id" = String, Path, format = Uuid)), request_body = PracticeUpdate,
    responses((status = 200, body = PracticeView), (status = 400, body = crate::views::ErrorBody), (status = 403, body = crate::views::ErrorBody)))]
pub(crate) async fn practice_update(
    ctx: Ctx<Manage>,
    ApiJson(req): ApiJson<PracticeUpdate>,
) -> Result<Json<PracticeView>, AppError> {
    let name = req
        .name
        .as_deref()
        .map(|n| domain::values::single_line("name", n, 200))
        .transpose()?;
    if let Some(s) = &req.settings {
        if !s.is_object() {
            return Err(AppError::Invalid("settings: must be a JSON object".into()));
        }
        if s.to_string().len() > 16 * 1024 {
            return Err(AppError::Invalid(
                "settings: is too large (16 KiB at most)".into(),
            ));
        }
    }
    let mut tx = ctx.tx;
    let p = store::practices::update(&mut tx, name.as_deref(), req.settings.as_ref()).await?;
    tx.audit(
        AuditAction::PracticeUpdate,
        None,
        Some(("practice", p.practice_id.as_uuid())),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(p.into()))
}
