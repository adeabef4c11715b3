//! The audit log for owners and admins: reports and the FHIR export.

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::{AuditAction, AuditEventId, PatientId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use store::audit::{AuditFilter, AuditRow};
use utoipa::{IntoParams, ToSchema};

use crate::AppError;
use crate::extract::{ApiQuery, Ctx, Manage};

/// Report filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
#[derive(Debug, Default)]
pub struct ReportQuery {
    /// Only events about this patient ("who looked at this patient").
    pub patient_id: Option<PatientId>,
    /// Only events by this user ("what did this user touch").
    pub actor_id: Option<UserId>,
    /// Only this action, e.g. `patient.read`.
    pub action: Option<String>,
    /// From (RFC 3339, inclusive).
    pub from: Option<DateTime<Utc>>,
    /// To (RFC 3339, exclusive).
    pub to: Option<DateTime<Utc>>,
    /// `asc` (default) or `desc` by time.
    pub order: Option<String>,
    /// Page size, 1–500 (default 100).
    pub limit: Option<i64>,
    /// Continue after this cursor (from `next_cursor`).
    pub cursor: Option<String>,
}

/// One audit event.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditEventView {
    /// Position in the practice's hash chain, once sequenced.
    seq: Option<i64>,
    /// Event id.
    event_id: AuditEventId,
    /// When (UTC).
    occurred_at: DateTime<Utc>,
    /// Who.
    actor_id: Option<UserId>,
    /// Which patient.
    patient_id: Option<PatientId>,
    /// What.
    action: String,
    /// `success` or `denied`.
    outcome: String,
    /// Object kind.
    object_type: Option<String>,
    /// Object id.
    object_id: Option<uuid::Uuid>,
    /// Request id.
    request_id: Option<domain::RequestId>,
    /// Extra metadata (ids and flags only).
    #[schema(value_type = Option<Object>)]
    details: Option<serde_json::Value>,
}

impl From<AuditRow> for AuditEventView {
    fn from(r: AuditRow) -> Self {
        Self {
            seq: r.seq,
            event_id: r.event_id,
            occurred_at: r.occurred_at,
            actor_id: r.actor_id,
            patient_id: r.patient_id,
            action: r.action,
            outcome: r.outcome,
            object_type: r.object_type,
            object_id: r.object_id,
            request_id: r.request_id,
            details: r.details,
        }
    }
}

/// A page of audit events.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditPage {
    /// Events.
    items: Vec<AuditEventView>,
    /// Pass as `cursor` for the next page, when there may be one.
    next_cursor: Option<String>,
}

/// The report filter of a query (shared with the web pages, [`crate::rules::audit`]): a
/// page of 1–500 events, `asc` or `desc`, a known action, a cursor from a previous page.
pub fn filter(q: ReportQuery, default_limit: i64) -> Result<AuditFilter, AppError> {
    let limit = q.limit.unwrap_or(default_limit);
    if !(1..=500).contains(&limit) {
        return Err(AppError::Invalid("limit: must be 1 to 500".into()));
    }
    let descending = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(AppError::Invalid("order: must be asc or desc".into())),
    };
    if let Some(a) = &q.action
        && !domain::AuditAction::ALL.iter().any(|x| x.as_str() == a)
    {
        return Err(AppError::Invalid("action: not a known audit action".into()));
    }
    let after = q.cursor.as_deref().map(parse_cursor).transpose()?;
    Ok(AuditFilter {
        patient: q.patient_id,
        actor: q.actor_id,
        action: q.action,
        from: q.from,
        to: q.to,
        descending,
        after,
        limit,
    })
}

fn parse_cursor(c: &str) -> Result<(DateTime<Utc>, AuditEventId), AppError> {
    let bad = || AppError::Invalid("cursor: not a cursor from a previous page".into());
    let (t, id) = c.split_once('_').ok_or_else(bad)?;
    let micros: i64 = t.parse().map_err(|_| bad())?;
    Ok((
        DateTime::from_timestamp_micros(micros).ok_or_else(bad)?,
        id.parse().map_err(|_| bad())?,
    ))
}

/// The cursor that continues a report after `r`.
#[must_use]
pub fn cursor(r: &AuditRow) -> String {
    format!("{}_{}", r.occurred_at.timestamp_micros(), r.event_id)
}

/// Which filters a report used (names only, for the report's own audit event).
#[must_use]
pub fn filter_kinds(f: &AuditFilter) -> serde_json::Value {
    json!({
        "by_patient": f.patient.is_some(), "by_actor": f.actor.map(|a| a.to_string()),
        "action": f.action, "from": f.from, "to": f.to,
    })
}

/// Audit events of the practice, filtered by patient, actor, action and time, sorted by time,
/// paginated by cursor (owner or admin). The report is itself audited.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/audit/events", tag = "audit",
    params(("practice_id" = String, Path, format = Uuid), ReportQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = crate::views::ErrorBody), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn audit_events(
    ctx: Ctx<Manage>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Json<AuditPage>, AppError> {
    let f = filter(q, 100)?;
    let mut tx = ctx.tx;
    let rows = audit_report(&mut tx, &f).await?;
    tx.commit().await?;
    let full = i64::try_from(rows.len()).unwrap_or(0) == f.limit;
    let next_cursor = if full { rows.last().map(cursor) } else { None };
    Ok(Json(AuditPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// The practice's audit events matching `f`, newest first, audited `audit.read` naming the
/// filters used ([`filter_kinds`]): the one path of the API and the web pages (`f` built with
/// [`filter`]). The caller commits.
pub async fn audit_report(
    tx: &mut store::TenantTx,
    f: &AuditFilter,
) -> Result<Vec<AuditRow>, AppError> {
    let rows = store::audit::report(tx, f).await?;
    tx.audit_details(
        AuditAction::AuditRead,
        f.patient,
        None,
        Some(filter_kinds(f)),
    )
    .await?;
    Ok(rows)
}

/// Export window.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    /// From (RFC 3339, inclusive; default: 30 days ago).
    from: Option<DateTime<Utc>>,
    /// To (RFC 3339, exclusive; default: no end).
    to: Option<DateTime<Utc>>,
}

/// The practice's audit events in a window as FHIR R4 `AuditEvent` resources, one JSON
/// object per line (`application/fhir+ndjson`; at most 50,000 events per call). Owner or
/// admin; the export is itself audited.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/audit/fhir", tag = "audit",
    params(("practice_id" = String, Path, format = Uuid), ExportQuery),
    responses((status = 200, content_type = "application/fhir+ndjson", body = String), (status = 403, body = crate::views::ErrorBody)))]
pub(crate) async fn audit_fhir(
    ctx: Ctx<Manage>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, AppError> {
    let from = q
        .from
        .unwrap_or_else(|| ctx.tx.now() - chrono::Duration::days(30));
    if q.to.is_some_and(|to| from >= to) {
        return Err(AppError::Invalid("from must be before to".into()));
    }
    let mut tx = ctx.tx;
    let out = fhir_export(&mut tx, from, q.to).await?;
    tx.commit().await?;
    let mut res = out.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+ndjson"),
    );
    Ok(res)
}

/// The practice's audit events from `from` (inclusive) to `to` (exclusive, or no end) as FHIR
/// R4 `AuditEvent` resources, one JSON object per line, at most 50,000 events; audited
/// `audit.export` in `tx` (the caller commits). Shared with the web pages
/// ([`crate::rules::audit`]).
pub async fn fhir_export(
    tx: &mut store::TenantTx,
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
) -> Result<String, AppError> {
    let practice = tx.practice();
    let mut out = String::new();
    let mut f = AuditFilter {
        from: Some(from),
        to,
        limit: 500,
        ..AuditFilter::default()
    };
    let mut count = 0_usize;
    loop {
        let rows = store::audit::report(tx, &f).await?;
        for r in &rows {
            out.push_str(&crate::fhir::audit_event(practice, r).to_string());
            out.push('\n');
        }
        count += rows.len();
        if rows.len() < 500 || count >= 50_000 {
            break;
        }
        f.after = rows.last().map(|r| (r.occurred_at, r.event_id));
    }
    tx.audit_details(
        AuditAction::AuditExport,
        None,
        None,
        Some(json!({"format": "fhir-ndjson", "events": count, "from": from, "to": to})),
    )
    .await?;
    Ok(out)
}

fn b64(h: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(h)
}

/// Which inclusion proof.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct InclusionQuery {
    /// The event's sequence number (its leaf index).
    seq: u64,
    /// The tree size (default: everything sequenced so far).
    size: Option<u64>,
}

/// An RFC 6962 inclusion proof (hashes in base64).
#[derive(Serialize, ToSchema)]
pub(crate) struct InclusionView {
    /// Leaf index.
    seq: u64,
    /// Tree size.
    size: u64,
    /// SHA-256(0x00 ‖ canonical event).
    leaf_hash: String,
    /// Audit path, bottom up.
    path: Vec<String>,
    /// Root at `size`.
    root: String,
    /// The signed checkpoint (C2SP note) of exactly this size, when one was written.
    checkpoint: Option<String>,
}

async fn checkpoint_at(
    state: &crate::AppState,
    practice: domain::PracticeId,
    size: u64,
) -> Option<String> {
    let place = state.checkpoints.as_ref()?;
    place.note(practice.as_uuid(), size).await.ok().flatten()
}

/// Proves that the event with sequence number `seq` is in the practice's log of `size`
/// events (owner or admin). Audited.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/audit/proofs/inclusion", tag = "audit",
    params(("practice_id" = String, Path, format = Uuid), InclusionQuery),
    responses((status = 200, body = InclusionView), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn audit_inclusion(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    ctx: Ctx<Manage>,
    ApiQuery(q): ApiQuery<InclusionQuery>,
) -> Result<Json<InclusionView>, AppError> {
    let mut tx = ctx.tx;
    let practice = tx.practice();
    let p = store::sequence::inclusion_proof(&mut tx, q.seq, q.size)
        .await?
        .ok_or(AppError::NotFound("sequenced event at that position"))?;
    tx.audit_details(
        AuditAction::AuditProof,
        None,
        None,
        Some(json!({"kind": "inclusion", "seq": p.index, "size": p.size})),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(InclusionView {
        seq: p.index,
        size: p.size,
        leaf_hash: b64(&p.leaf_hash),
        path: p.path.iter().map(|h| b64(h)).collect(),
        root: b64(&p.root),
        checkpoint: checkpoint_at(&state, practice, p.size).await,
    }))
}

/// Which consistency proof.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsistencyQuery {
    /// The earlier tree size (≥ 1).
    first: u64,
    /// The later tree size (default: everything sequenced so far).
    second: Option<u64>,
}

/// An RFC 6962 consistency proof (hashes in base64).
#[derive(Serialize, ToSchema)]
pub(crate) struct ConsistencyView {
    /// Earlier size.
    first: u64,
    /// Later size.
    second: u64,
    /// Proof nodes.
    path: Vec<String>,
    /// Root at `first`.
    first_root: String,
    /// Root at `second`.
    second_root: String,
}

/// Proves that the practice's log of `second` events extends the log of `first` events
/// (nothing before `first` was changed). Owner or admin; audited.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/audit/proofs/consistency", tag = "audit",
    params(("practice_id" = String, Path, format = Uuid), ConsistencyQuery),
    responses((status = 200, body = ConsistencyView), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn audit_consistency(
    ctx: Ctx<Manage>,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Json<ConsistencyView>, AppError> {
    let mut tx = ctx.tx;
    let p = store::sequence::consistency_proof(&mut tx, q.first, q.second)
        .await?
        .ok_or(AppError::NotFound("pair of tree sizes"))?;
    tx.audit_details(
        AuditAction::AuditProof,
        None,
        None,
        Some(json!({"kind": "consistency", "first": p.first, "second": p.second})),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(ConsistencyView {
        first: p.first,
        second: p.second,
        path: p.path.iter().map(|h| b64(h)).collect(),
        first_root: b64(&p.first_root),
        second_root: b64(&p.second_root),
    }))
}

/// The practice's latest signed checkpoint (a C2SP signed note, `text/plain`). Owner or
/// admin; audited.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/audit/checkpoint", tag = "audit",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn audit_checkpoint(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    ctx: Ctx<Manage>,
) -> Result<Response, AppError> {
    let mut tx = ctx.tx;
    let practice = tx.practice();
    let note = match &state.checkpoints {
        Some(place) => place
            .latest(practice.as_uuid())
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?,
        None => None,
    };
    let note = note.ok_or(AppError::NotFound("checkpoint yet"))?;
    tx.audit_details(
        AuditAction::AuditProof,
        None,
        None,
        Some(json!({"kind": "checkpoint"})),
    )
    .await?;
    tx.commit().await?;
    let mut res = note.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(res)
}
