//! Practices: the caller's list, and one practice's settings.

use axum::Json;
use domain::{AuditAction, AuditObject};
use serde::Deserialize;
use utoipa::ToSchema;

use axum::extract::State;

use crate::extract::{AnyMember, ApiJson, Ctx, Manage, Session};
use crate::views::{MyPracticeView, PracticeView};
use crate::{AppError, AppState};

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
    let p = read_practice(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(p.into()))
}

/// The practice (name, settings), audited `practice.read`: the one path of the API and the
/// web pages. The caller commits.
pub async fn read_practice(
    tx: &mut store::TenantTx,
) -> Result<store::practices::Practice, AppError> {
    let p = store::practices::get(tx).await?;
    tx.audit(
        AuditAction::PracticeRead,
        None,
        Some(AuditObject::practice(p.practice_id)),
    )
    .await?;
    Ok(p)
}

/// Changes to a practice.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PracticeUpdate {
    /// New name (1–200 characters, one line).
    name: Option<String>,
    /// New settings (the closed set of `PracticeSettings`, at most 4 KiB); replaces the old
    /// settings, a missing key taking its default. Any other key or value is refused (400) and
    /// nothing is stored.
    #[schema(value_type = Option<domain::practice::PracticeSettings>)]
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
    let settings = req
        .settings
        .as_ref()
        .map(domain::practice::PracticeSettings::parse)
        .transpose()?;
    let mut tx = ctx.tx;
    let p = update_practice(&mut tx, name.as_deref(), settings.as_ref()).await?;
    tx.commit().await?;
    Ok(Json(p.into()))
}

/// Renames the practice and/or replaces its settings (each `None`: unchanged; both already
/// checked) and audits `practice.update`: the one path of the API and the web pages. The
/// caller commits.
pub async fn update_practice(
    tx: &mut store::TenantTx,
    name: Option<&str>,
    settings: Option<&domain::practice::PracticeSettings>,
) -> Result<store::practices::Practice, AppError> {
    let p = store::practices::update(tx, name, settings).await?;
    tx.audit(
        AuditAction::PracticeUpdate,
        None,
        Some(AuditObject::practice(p.practice_id)),
    )
    .await?;
    Ok(p)
}

/// A practice's security settings.
#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecurityView {
    /// Minutes without a request after which its members' sessions end on this practice's
    /// routes (2–60); `null` for the server's default.
    session_idle_minutes: Option<i32>,
    /// Hours after sign-in after which sessions end on this practice's routes (1–24, never
    /// beyond the server's own lifetime); `null` for the server's default.
    session_lifetime_hours: Option<i32>,
    /// Owners and admins must sign in with a passkey (phishing-resistant) to use this
    /// practice.
    require_passkey_for_managers: bool,
}

impl From<store::practices::SecuritySettings> for SecurityView {
    fn from(s: store::practices::SecuritySettings) -> Self {
        Self {
            session_idle_minutes: s.session_idle_seconds.map(|v| v / 60),
            session_lifetime_hours: s.session_absolute_seconds.map(|v| v / 3600),
            require_passkey_for_managers: s.require_passkey_for_managers,
        }
    }
}

/// Reads the practice's security settings (owner or admin).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/security", tag = "practices",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = SecurityView), (status = 403, body = crate::views::ErrorBody)))]
pub(crate) async fn practice_security_get(
    ctx: Ctx<Manage>,
) -> Result<Json<SecurityView>, AppError> {
    let mut tx = ctx.tx;
    let s = read_practice_security(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(s.into()))
}

/// The practice's security settings, audited `practice.read` of the `security` part: the one
/// path of the API and the web pages. The caller commits.
pub async fn read_practice_security(
    tx: &mut store::TenantTx,
) -> Result<store::practices::SecuritySettings, AppError> {
    let s = store::practices::security(tx).await?;
    tx.audit_details(
        AuditAction::PracticeRead,
        None,
        Some(AuditObject::practice(tx.practice())),
        Some(serde_json::json!({"part": "security"})),
    )
    .await?;
    Ok(s)
}

/// Checks new security settings (shared with the web pages, [`crate::rules::practices`]): an
/// idle timeout of 2–60 minutes and a lifetime of 1–24 hours, each or `None` for the server's
/// default.
pub fn security_input(
    session_idle_minutes: Option<i32>,
    session_lifetime_hours: Option<i32>,
    require_passkey_for_managers: bool,
) -> Result<store::practices::SecuritySettings, AppError> {
    if session_idle_minutes.is_some_and(|m| !(2..=60).contains(&m)) {
        return Err(AppError::Invalid(
            "session_idle_minutes: must be between 2 and 60".into(),
        ));
    }
    if session_lifetime_hours.is_some_and(|h| !(1..=24).contains(&h)) {
        return Err(AppError::Invalid(
            "session_lifetime_hours: must be between 1 and 24".into(),
        ));
    }
    Ok(store::practices::SecuritySettings {
        session_idle_seconds: session_idle_minutes.map(|m| m * 60),
        session_absolute_seconds: session_lifetime_hours.map(|h| h * 3600),
        require_passkey_for_managers,
    })
}

/// Replaces the practice's security settings (owner or admin, with a second factor presented
/// in the last five minutes).
#[utoipa::path(put, path = "/api/v1/practices/{practice_id}/security", tag = "practices",
    params(("practice_id" = String, Path, format = Uuid)), request_body = SecurityView,
    responses((status = 200, body = SecurityView), (status = 400, body = crate::views::ErrorBody),
              (status = 401, body = crate::views::ErrorBody), (status = 403, body = crate::views::ErrorBody)))]
pub(crate) async fn practice_security_put(
    State(state): State<AppState>,
    ctx: Ctx<Manage>,
    ApiJson(req): ApiJson<SecurityView>,
) -> Result<Json<SecurityView>, AppError> {
    ctx.require_step_up(&state)?;
    let settings = security_input(
        req.session_idle_minutes,
        req.session_lifetime_hours,
        req.require_passkey_for_managers,
    )?;
    let mut tx = ctx.tx;
    let s = set_practice_security(&mut tx, &settings).await?;
    tx.commit().await?;
    Ok(Json(s.into()))
}

/// Replaces the practice's security settings (checked with [`security_input`]) and audits
/// `practice.update` of the `security` part: the one path of the API and the web pages. The
/// caller checks step-up and commits.
pub async fn set_practice_security(
    tx: &mut store::TenantTx,
    settings: &store::practices::SecuritySettings,
) -> Result<store::practices::SecuritySettings, AppError> {
    let s = store::practices::set_security(tx, settings).await?;
    tx.audit_details(
        AuditAction::PracticeUpdate,
        None,
        Some(AuditObject::practice(tx.practice())),
        Some(serde_json::json!({"part": "security"})),
    )
    .await?;
    Ok(s)
}
