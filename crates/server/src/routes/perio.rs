//! Periodontal exams (clinicians, and only for patients `app.clinical_visible` lets them see):
//! create an exam with its session settings, dictate finals, confirm or decline a held final,
//! undo, read the chart with its derived values, export it as FHIR R4.
//!
//! The charting engine is the `perio` crate; these handlers load the exam's session (sealed
//! in the database), apply one action to it, and store it back with the action's audit event
//! in the same transaction. The exam row is locked while a final applies, so finals on one
//! exam apply one after the other. Every response about an exam carries its version as an
//! `ETag`; a change sent with `If-Match` applies only to that version (else 409).
//!
//! Audit rows name the patient and the exam and, for actions, which action and the outcome
//! status (`ok`, `rejected` with its reason code, …): never a value, a tooth or a word said.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use domain::{AuditAction, AuditObject, PatientId, PerioExamId, PracticeId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::TenantTx;
use store::perio::{Exam, ExamInfo};
use utoipa::{IntoParams, ToSchema};

use crate::etag::{IfMatch, with_etag};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Clinical, Ctx};
use crate::{AppError, AppState};

/// An exam without its chart.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PerioExamInfoView {
    /// Id.
    exam_id: PerioExamId,
    /// The patient.
    patient_id: PatientId,
    /// The clinician who created the exam.
    clinician_id: domain::UserId,
    /// Created (the exam date).
    created_at: chrono::DateTime<chrono::Utc>,
    /// Last changed.
    updated_at: chrono::DateTime<chrono::Utc>,
    /// Change counter (also the `ETag`), 1 at creation.
    version: i64,
}

impl From<&ExamInfo> for PerioExamInfoView {
    fn from(i: &ExamInfo) -> Self {
        Self {
            exam_id: i.exam_id,
            patient_id: i.patient_id,
            clinician_id: i.clinician_id,
            created_at: i.created_at,
            updated_at: i.updated_at,
            version: i.version,
        }
    }
}

/// An exam: its charting session and chart, with derived values.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PerioExamView {
    /// Ids, times, version.
    #[serde(flatten)]
    info: PerioExamInfoView,
    /// Session settings (SPEC §4.2: numbering, path, triplet order, …).
    #[schema(value_type = Object)]
    settings: Value,
    /// What spoken values mean now: `pd`, `gm`, `mgj`, …
    mode: String,
    /// Where the next value goes: `{"tooth", "surface", "site"}` (Universal tooth number).
    #[schema(value_type = Object)]
    cursor: Value,
    /// Whether finals are heard (false after "pause").
    listening: bool,
    /// Whether there is an applied final to undo.
    can_undo: bool,
    /// The readings of the final held for confirmation (each a list of events), or null.
    #[schema(value_type = Option<Vec<Object>>)]
    pending: Option<Value>,
    /// The chart (SPEC §6 shape): only teeth with a recorded value or a status other than
    /// present; Universal numbers as keys.
    #[schema(value_type = Object)]
    chart: Value,
    /// Derived values: `bop` (bleeding and examined sites), `bop_percent`, `sites_pd_ge_4`,
    /// `sites_pd_ge_6`, and per tooth `max_pd`, `max_cal`, `cal` per site (PD + recession;
    /// absent where recession was never recorded), site counts, mobility, worst furcation,
    /// attached gingiva.
    #[schema(value_type = Object)]
    derived: Value,
    /// Display label of each charted tooth in the session numbering (`"3": "FDI 16"`).
    labels: BTreeMap<String, String>,
}

impl PerioExamView {
    fn new(info: &ExamInfo, s: &perio::Session) -> Self {
        let numbering = s.settings().numbering;
        let labels = s
            .chart()
            .records()
            .map(|(t, _)| (t.number().to_string(), t.label(numbering)))
            .collect();
        let pending = s.pending().map(|p| {
            Value::Array(
                p.candidates
                    .iter()
                    .map(|c| json!({ "events": c.events }))
                    .collect(),
            )
        });
        Self {
            info: info.into(),
            settings: to_json(s.settings()),
            mode: s.nav().mode.name().to_owned(),
            cursor: to_json(&s.cursor()),
            listening: s.listening(),
            can_undo: !s.history().is_empty(),
            pending,
            chart: perio::session::chart_to_json(s.chart()),
            derived: to_json(&s.summary()),
            labels,
        }
    }
}

/// A client-sent field name, printable and short (it may be echoed in an error message).
fn field_name(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// What one action did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PerioOutcomeView {
    /// The exam.
    exam_id: PerioExamId,
    /// The exam's version after the action (unchanged when nothing changed).
    version: i64,
    /// Whether the session changed (chart, cursor, mode or held final).
    changed: bool,
    /// Whether a final is now held for confirmation.
    pending: bool,
    /// The outcome (SPEC §4): `status` (`ok`, `needs_confirmation`, `rejected`, `ignored`),
    /// `events`, `alternatives`, `cursor_after`, `last_site`, `derived`, `warnings`,
    /// `reject` {`reason`, `heard`}, `labels`, `echo`.
    #[schema(value_type = Object)]
    outcome: Value,
}

async fn visible_patient(tx: &mut TenantTx, patient: PatientId) -> Result<(), AppError> {
    if store::perio::patient_visible(tx, patient).await? {
        Ok(())
    } else {
        Err(AppError::NotFound("patient"))
    }
}

/// A patient's perio exams, newest first (at most 100; ids and dates only).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams", tag = "perio",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<PerioExamInfoView>), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn perio_exam_list(
    ctx: Ctx<Clinical>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
) -> Result<Json<Vec<PerioExamInfoView>>, AppError> {
    let mut tx = ctx.tx;
    let exams = list_exams(&mut tx, patient).await?;
    tx.commit().await?;
    Ok(Json(exams.iter().map(Into::into).collect()))
}

/// A new exam.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PerioExamCreate {
    /// Session settings (SPEC §4.2); every field is optional and defaults to `C0`:
    /// `numbering` (`universal`, `fdi`, `palmer`), `path` (`maxillary_first`,
    /// `facials_first`, `classic_od`, `per_tooth`), `triplet_order` (`path`,
    /// `mesial_first`, `distal_first`), `split_digit_strings` (`never`, `exact_group`),
    /// `homophones` (`off`, `run_only`), `max_unconfirmed_depth` (1–19, default 12),
    /// `compat` {`od_plus`}, `flag_prefix_required`, `implants_as_missing`,
    /// `allow_unusual_furcation`, `echo`, `cal_policy` (`require_recession`,
    /// `assume_zero_recession`).
    #[schema(value_type = Option<Object>)]
    settings: Option<Value>,
}

/// Reads session settings, refusing unknown fields and out-of-range values; messages name
/// the field, never the value.
fn settings(v: Option<Value>) -> Result<perio::Settings, AppError> {
    let Some(v) = v else {
        return Ok(perio::Settings::default());
    };
    let known = to_json(&perio::Settings::default());
    let (Some(given), Some(known)) = (v.as_object(), known.as_object()) else {
        return Err(AppError::Invalid("settings: must be a JSON object".into()));
    };
    for (k, val) in given {
        let Some(default) = known.get(k) else {
            return Err(AppError::Invalid(format!(
                "settings: unknown field `{}`",
                field_name(k)
            )));
        };
        if let (Some(inner), Some(known_inner)) = (val.as_object(), default.as_object())
            && let Some(bad) = inner.keys().find(|ik| !known_inner.contains_key(*ik))
        {
            return Err(AppError::Invalid(format!(
                "settings: unknown field `{}.{}`",
                field_name(k),
                field_name(bad)
            )));
        }
    }
    let s: perio::Settings = serde_path_to_error::deserialize(v).map_err(|e| {
        AppError::Invalid(format!(
            "settings: field `{}` has the wrong type or an invalid value",
            field_name(&e.path().to_string())
        ))
    })?;
    if !(1..=19).contains(&s.max_unconfirmed_depth) {
        return Err(AppError::Invalid(
            "settings: max_unconfirmed_depth must be 1 to 19".into(),
        ));
    }
    Ok(s)
}

/// Creates an exam for a patient (empty chart, cursor at the start of the charting path);
/// the author is the signed-in clinician.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams", tag = "perio",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid)), request_body = PerioExamCreate,
    responses((status = 201, body = PerioExamView, headers(("etag" = String, description = "The exam's version"))), (status = 400, body = crate::views::ErrorBody), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody), (status = 410, body = crate::views::ErrorBody)))]
pub(crate) async fn perio_exam_create(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, patient)): ApiPath<(PracticeId, PatientId)>,
    ApiJson(req): ApiJson<PerioExamCreate>,
) -> Result<Response, AppError> {
    let session = perio::Session::new(settings(req.settings)?);
    let mut tx = ctx.tx;
    let info = create_exam(&mut tx, state.store.keyring()?, patient, &session).await?;
    tx.commit().await?;
    Ok(with_etag(
        info.version,
        (
            StatusCode::CREATED,
            Json(PerioExamView::new(&info, &session)),
        ),
    ))
}

/// Creates an exam of `patient` with `session` (its settings, empty chart) authored by the
/// signed-in clinician and audits `perio_exam.create`: the one path of the API and the web
/// pages. `404` for a patient not visible here, `410` for a deleted patient. The caller
/// commits.
pub async fn create_exam(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    patient: PatientId,
    session: &perio::Session,
) -> Result<ExamInfo, AppError> {
    visible_patient(tx, patient).await?;
    if store::patients::is_deleted(tx, patient).await? {
        return Err(AppError::Gone("patient"));
    }
    let info = store::perio::create(tx, keyring, patient, session).await?;
    tx.audit(
        AuditAction::PerioExamCreate,
        Some(patient),
        Some(AuditObject::perio_exam(info.exam_id)),
    )
    .await?;
    Ok(info)
}

/// A patient's exams, newest first (at most 100), audited `perio_exam.list`: the one path of
/// the API and the web pages. `404` for a patient not visible here. The caller commits.
pub async fn list_exams(tx: &mut TenantTx, patient: PatientId) -> Result<Vec<ExamInfo>, AppError> {
    visible_patient(tx, patient).await?;
    let exams = store::perio::list_for_patient(tx, patient).await?;
    tx.audit(
        AuditAction::PerioExamList,
        Some(patient),
        Some(AuditObject::patient(patient)),
    )
    .await?;
    Ok(exams)
}

/// One exam of `patient`, decrypted, audited `perio_exam.read` after the decryption: the one
/// path of the API and the web pages. `404` when it is not visible here. The caller commits.
pub async fn read_exam(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    patient: PatientId,
    exam: PerioExamId,
) -> Result<Exam, AppError> {
    let e = store::perio::get(tx, keyring, patient, exam)
        .await?
        .ok_or(AppError::NotFound("perio exam"))?;
    tx.audit(
        AuditAction::PerioExamRead,
        Some(patient),
        Some(AuditObject::perio_exam(exam)),
    )
    .await?;
    Ok(e)
}

async fn load(
    state: &AppState,
    tx: &mut TenantTx,
    patient: PatientId,
    exam: PerioExamId,
) -> Result<Exam, AppError> {
    store::perio::get(tx, state.store.keyring()?, patient, exam)
        .await?
        .ok_or(AppError::NotFound("perio exam"))
}

/// One exam: settings, cursor, held final, the chart and its derived values (CAL, BOP %,
/// sites ≥ 4 mm and ≥ 6 mm, per-tooth summaries).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams/{exam_id}", tag = "perio",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid), ("exam_id" = String, Path, format = Uuid)),
    responses((status = 200, body = PerioExamView, headers(("etag" = String, description = "The exam's version"))), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn perio_exam_get(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, patient, exam)): ApiPath<(PracticeId, PatientId, PerioExamId)>,
) -> Result<Response, AppError> {
    let mut tx = ctx.tx;
    let e = read_exam(&mut tx, state.store.keyring()?, patient, exam).await?;
    tx.commit().await?;
    Ok(with_etag(
        e.info.version,
        Json(PerioExamView::new(&e.info, &e.session)),
    ))
}

/// One change to an exam, as a change route of the API or a form of the web pages sends it.
#[derive(Clone, Copy, Debug)]
pub enum Change<'a> {
    /// Apply one dictated final: its display text and, when the recognizer gives one, its
    /// spoken-form (lexical) text, read instead (SPEC §2).
    Final {
        /// The display text.
        text: &'a str,
        /// The lexical text.
        lexical: Option<&'a str>,
    },
    /// Confirm the held final (the reading at this index of its alternatives; 0 when there
    /// is one).
    Confirm(usize),
    /// Decline the held final (harmless when nothing is held).
    Decline,
    /// Take back the previous applied final (rule C2).
    Undo,
}

impl Change<'_> {
    /// The action as named in the audit row.
    fn name(self) -> &'static str {
        match self {
            Change::Final { .. } => "final",
            Change::Confirm(_) => "confirm",
            Change::Decline => "decline",
            Change::Undo => "undo",
        }
    }
}

/// What a change did.
#[derive(Debug)]
pub struct Changed {
    /// The exam after the change (its version unchanged when nothing changed).
    pub info: ExamInfo,
    /// The session after the change.
    pub session: perio::Session,
    /// The engine's outcome.
    pub outcome: perio::Outcome,
    /// Whether the session changed (chart, cursor, mode or held final).
    pub changed: bool,
}

/// Refuses a final over the engine's limits (4 KiB, 256 tokens) before anything is read; the
/// message names the field and the reason code (`too_long`, `too_many_tokens`).
fn within_limits(field: &str, text: &str) -> Result<(), AppError> {
    match perio::token::tokenize(text) {
        Ok(_) => Ok(()),
        Err(r) => Err(AppError::Invalid(format!(
            "{field}: {}: a final is at most {} bytes and {} tokens",
            r.reason.code(),
            perio::token::MAX_FINAL_BYTES,
            perio::token::MAX_TOKENS
        ))),
    }
}

/// `409` unless `expected` (when given) is the exam's version.
pub(crate) fn check_version(info: &ExamInfo, expected: Option<i64>) -> Result<(), AppError> {
    if expected.is_some_and(|v| v != info.version) {
        return Err(AppError::Conflict(format!(
            "the exam is at version {} now: reload it, then retry",
            info.version
        )));
    }
    Ok(())
}

/// Applies one change to exam `exam` of `patient`: the one path of the API's change routes
/// and the web page's forms. Refuses a final over the engine's limits (`400`) before anything
/// is read; loads the exam locked (`404` when not visible here); checks `expected` against
/// its version (`409`); refuses a confirmation with nothing held (`409`) or an alternative
/// out of range (`400`) and an undo with nothing to undo (`409`); applies the change and,
/// when the session changed, stores it under the next version; then audits
/// `perio_exam.update` with the action, the outcome status, the reason code of a refusal and
/// the version (never a value, a tooth or a word said). The caller commits; on an error
/// nothing was written.
pub async fn change_exam(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    patient: PatientId,
    exam: PerioExamId,
    expected: Option<i64>,
    change: Change<'_>,
) -> Result<Changed, AppError> {
    if let Change::Final { text, lexical } = change {
        within_limits("text", text)?;
        if let Some(l) = lexical {
            within_limits("lexical", l)?;
        }
    }
    let e = store::perio::get_for_update(tx, keyring, patient, exam)
        .await?
        .ok_or(AppError::NotFound("perio exam"))?;
    check_version(&e.info, expected)?;
    let mut session = e.session.clone();
    let outcome = match change {
        Change::Final { text, lexical } => session.apply_recognized(lexical, text),
        Change::Confirm(choice) => {
            let Some(p) = session.pending() else {
                return Err(AppError::Conflict(
                    "nothing is waiting for confirmation: dictate the final again".into(),
                ));
            };
            if choice >= p.candidates.len() {
                return Err(AppError::Invalid(format!(
                    "alternative: must be below {}",
                    p.candidates.len()
                )));
            }
            session.confirm(choice)
        }
        Change::Decline => session.decline(),
        Change::Undo => {
            if session.history().is_empty() {
                return Err(AppError::Conflict("there is nothing to undo".into()));
            }
            session.undo()
        }
    };
    let changed = session != e.session;
    let info = if changed {
        store::perio::save(tx, keyring, &e.info, &session)
            .await
            .map_err(|err| match err {
                store::StoreError::Conflict(c) if c == "perio_exam_version" => {
                    AppError::Conflict("the exam changed meanwhile: reload it, then retry".into())
                }
                other => other.into(),
            })?
    } else {
        e.info
    };
    let mut details = json!({
        "op": change.name(),
        "status": to_json(&outcome.status),
        "changed": changed,
        "version": info.version,
    });
    if let (Some(r), Some(d)) = (&outcome.reject, details.as_object_mut()) {
        d.insert("reason".into(), Value::from(r.reason.code()));
    }
    tx.audit_details(
        AuditAction::PerioExamUpdate,
        Some(patient),
        Some(AuditObject::perio_exam(exam)),
        Some(details),
    )
    .await?;
    Ok(Changed {
        info,
        session,
        outcome,
        changed,
    })
}

/// Applies `change` through [`change_exam`] with the request's `If-Match`, commits, and
/// answers the outcome with the exam's version as `ETag`.
async fn change(
    state: &AppState,
    ctx: Ctx<Clinical>,
    patient: PatientId,
    exam: PerioExamId,
    headers: &HeaderMap,
    change: Change<'_>,
) -> Result<Response, AppError> {
    let expected = IfMatch::from_headers(headers, "exam")?.version();
    let keyring = state.store.keyring()?;
    let mut tx = ctx.tx;
    let c = change_exam(&mut tx, keyring, patient, exam, expected, change).await?;
    tx.commit().await?;
    let view = PerioOutcomeView {
        exam_id: exam,
        version: c.info.version,
        changed: c.changed,
        pending: c.session.pending().is_some(),
        outcome: c.outcome.to_json(),
    };
    Ok(with_etag(c.info.version, Json(view)))
}

/// One final (one recognizer result).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PerioFinal {
    /// The display text (at most 4 KiB and 256 tokens).
    text: String,
    /// The recognizer's spoken-form (lexical) text, when it gives one: read instead of
    /// `text` (SPEC §2). Same limits.
    lexical: Option<String>,
}

/// Applies one dictated final to the exam: all or nothing. The outcome says what happened:
/// `ok` (applied), `needs_confirmation` (held: confirm or decline it, or dictate again),
/// `rejected` (with a reason; nothing changed) or `ignored` (conversation). A final over
/// 4 KiB or 256 tokens is refused with 400 (`too_long`, `too_many_tokens`).
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams/{exam_id}/finals", tag = "perio",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid), ("exam_id" = String, Path, format = Uuid),
        ("if-match" = Option<String>, Header, description = "Apply only to this version (the exam's ETag)")),
    request_body = PerioFinal,
    responses((status = 200, body = PerioOutcomeView, headers(("etag" = String, description = "The exam's version"))), (status = 400, body = crate::views::ErrorBody), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody), (status = 409, body = crate::views::ErrorBody)))]
pub(crate) async fn perio_final_create(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, patient, exam)): ApiPath<(PracticeId, PatientId, PerioExamId)>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PerioFinal>,
) -> Result<Response, AppError> {
    let final_ = Change::Final {
        text: &req.text,
        lexical: req.lexical.as_deref(),
    };
    change(&state, ctx, patient, exam, &headers, final_).await
}

/// Which reading to confirm.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfirmQuery {
    /// Index into the held outcome's `alternatives` (0-based; default 0, the only reading of
    /// a final held for a deep pocket or a bulk flag).
    alternative: Option<usize>,
}

/// Confirms the final held for confirmation (applies it, or the chosen alternative).
/// 409 when nothing is held (it may have been discarded by a newer final).
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams/{exam_id}/confirm", tag = "perio",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid), ("exam_id" = String, Path, format = Uuid), ConfirmQuery,
        ("if-match" = Option<String>, Header, description = "Apply only to this version (the exam's ETag)")),
    responses((status = 200, body = PerioOutcomeView, headers(("etag" = String, description = "The exam's version"))), (status = 400, body = crate::views::ErrorBody), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody), (status = 409, body = crate::views::ErrorBody)))]
pub(crate) async fn perio_confirm(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, patient, exam)): ApiPath<(PracticeId, PatientId, PerioExamId)>,
    ApiQuery(q): ApiQuery<ConfirmQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let choice = q.alternative.unwrap_or(0);
    change(
        &state,
        ctx,
        patient,
        exam,
        &headers,
        Change::Confirm(choice),
    )
    .await
}

/// Declines the held final: nothing of it is applied. Declining when nothing is held
/// changes nothing (status `ignored`), so a retried decline is harmless.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams/{exam_id}/decline", tag = "perio",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid), ("exam_id" = String, Path, format = Uuid),
        ("if-match" = Option<String>, Header, description = "Apply only to this version (the exam's ETag)")),
    responses((status = 200, body = PerioOutcomeView, headers(("etag" = String, description = "The exam's version"))), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody), (status = 409, body = crate::views::ErrorBody)))]
pub(crate) async fn perio_decline(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, patient, exam)): ApiPath<(PracticeId, PatientId, PerioExamId)>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    change(&state, ctx, patient, exam, &headers, Change::Decline).await
}

/// Takes back the previous applied final as one transaction (rule C2). 409 when there is
/// nothing to undo.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams/{exam_id}/undo", tag = "perio",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid), ("exam_id" = String, Path, format = Uuid),
        ("if-match" = Option<String>, Header, description = "Apply only to this version (the exam's ETag)")),
    responses((status = 200, body = PerioOutcomeView, headers(("etag" = String, description = "The exam's version"))), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody), (status = 409, body = crate::views::ErrorBody)))]
pub(crate) async fn perio_undo(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, patient, exam)): ApiPath<(PracticeId, PatientId, PerioExamId)>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    change(&state, ctx, patient, exam, &headers, Change::Undo).await
}

/// The exam as a FHIR R4 `Bundle` (type `collection`) of `Observation` resources: one per
/// charted probing depth (LOINC 32910-2) and one per clinical attachment loss (LOINC
/// 32881-5, CAL = PD + recession, only where recession was recorded and CAL ≥ 0), on present
/// and implant teeth. `bodySite` codes the tooth (ADA Universal, HL7 THO) and carries the
/// site (MB, B, DB, ML, L, DL) in the extension `urn:chartroom:fhir:perio-site`. The patient
/// and the clinician are referenced by Chartroom id only.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/patients/{patient_id}/perio-exams/{exam_id}/fhir", tag = "perio",
    params(("practice_id" = String, Path, format = Uuid), ("patient_id" = String, Path, format = Uuid), ("exam_id" = String, Path, format = Uuid)),
    responses((status = 200, content_type = "application/fhir+json", body = Object,
        description = "A FHIR R4 `Bundle` resource (a JSON object: `resourceType` `Bundle`, `type` `collection`, one `entry` per `Observation`)",
        headers(("etag" = String, description = "The exam's version"))), (status = 403, body = crate::views::ErrorBody), (status = 404, body = crate::views::ErrorBody)))]
pub(crate) async fn perio_exam_fhir(
    State(state): State<AppState>,
    ctx: Ctx<Clinical>,
    ApiPath((_, patient, exam)): ApiPath<(PracticeId, PatientId, PerioExamId)>,
) -> Result<Response, AppError> {
    let mut tx = ctx.tx;
    let e = load(&state, &mut tx, patient, exam).await?;
    let now = tx.now();
    let bundle = crate::fhir::perio::bundle(&e, now);
    let count = bundle
        .get("entry")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    tx.audit_details(
        AuditAction::PerioExamExport,
        Some(patient),
        Some(AuditObject::perio_exam(exam)),
        Some(json!({"format": "fhir-r4-bundle", "observations": count, "version": e.info.version})),
    )
    .await?;
    tx.commit().await?;
    let mut res = with_etag(e.info.version, bundle.to_string());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json"),
    );
    Ok(res)
}
