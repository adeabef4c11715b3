//! Emergency mode (req CP-03): read-only operation. Any member sees whether it is on; a
//! practice's owner switches it for the practice (also while it is on: the one change that
//! goes through, [`crate::extract::EmergencySwitch`]); the operator switches the whole
//! installation from the command line (`chartroom emergency`). While it is on every other
//! change answers `503 EMERGENCY-0001` before anything is written, and reads keep working,
//! each audited as always.

use axum::Json;
use chrono::{DateTime, Utc};
use domain::{AuditAction, AuditObject, PracticeId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppError;
use crate::extract::{AnyMember, ApiJson, ApiPath, Ctx, EmergencySwitch};

type E = crate::views::ErrorBody;

/// Emergency mode as seen from a practice.
#[derive(Serialize, ToSchema)]
pub(crate) struct EmergencyView {
    /// Whether changes are refused now.
    on: bool,
    /// Since when the operator's installation-wide switch is on.
    installation_since: Option<DateTime<Utc>>,
    /// Since when the practice owner's switch is on.
    practice_since: Option<DateTime<Utc>>,
}

impl From<store::emergency::EmergencyState> for EmergencyView {
    fn from(s: store::emergency::EmergencyState) -> Self {
        Self {
            on: s.is_on(),
            installation_since: s.installation,
            practice_since: s.practice,
        }
    }
}

/// Whether emergency mode is on for this practice.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/emergency-mode", tag = "practices",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EmergencyView), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn emergency_get(
    ctx: Ctx<AnyMember>,
    ApiPath(_): ApiPath<PracticeId>,
) -> Result<Json<EmergencyView>, AppError> {
    let mut tx = ctx.tx;
    let s = store::emergency::state(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(s.into()))
}

/// The switch.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmergencyPut {
    /// On (read-only) or off.
    on: bool,
}

/// Switches the practice's emergency mode on or off (owners; audited `emergency.switch`).
#[utoipa::path(put, path = "/api/v1/practices/{practice_id}/emergency-mode", tag = "practices",
    params(("practice_id" = String, Path, format = Uuid)), request_body = EmergencyPut,
    responses((status = 200, body = EmergencyView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn emergency_put(
    ctx: Ctx<EmergencySwitch>,
    ApiPath(practice): ApiPath<PracticeId>,
    ApiJson(req): ApiJson<EmergencyPut>,
) -> Result<Json<EmergencyView>, AppError> {
    let mut tx = ctx.tx;
    let changed = store::emergency::set_practice(&mut tx, req.on).await?;
    tx.audit_details(
        AuditAction::EmergencySwitch,
        None,
        Some(AuditObject::practice(practice)),
        Some(serde_json::json!({"scope": "practice", "on": req.on, "changed": changed})),
    )
    .await?;
    let s = store::emergency::state(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(s.into()))
}
