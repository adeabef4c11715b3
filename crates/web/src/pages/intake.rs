//! Intake forms: the link holder's public page (`/intake/{token}`: the form, prefilled from
//! the chart, signed and submitted; no session, no script, the strict CSP of every page), and
//! the practice's screens: requesting a form for a patient, the review queue, one submitted
//! form, accept or reject. The same store calls and audit events as everywhere
//! (`intake.request`, `intake.open`, `intake.submit`, `intake.list`, `intake.read`,
//! `intake.decide`).
//!
//! # Guarantees
//! - An unknown, malformed, expired, used, revoked or other-purpose link answers one generic
//!   page (`404`), whichever it is.
//! - A refused submission answers `400` with each message next to its field and the values as
//!   typed; nothing is stored (the transaction is dropped).
//! - The staff screens need the scheduling privilege (clinicians and reception); another
//!   practice's request is `404`. The token is never shown to staff: the request shows that
//!   its link exists and until when it works.

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use domain::intake::{FieldKind, catalogue};
use domain::{IntakeRequestId, PatientId, PracticeId, RequestId};
use serde::Deserialize;
use server::extract::Scheduling;
use server::{AppError, AppState};
use store::intake::{Decision, PublicIntake, RequestRow, Status, Submission};

use super::{Chrome, Member, chrome, html, html_status, path_id, redirect};
use crate::{Assets, WebError, assets};

/// Most form values one submission may carry.
const MAX_VALUES: usize = 200;

/// A short message page for clients (a link that does not work, thanks, a wait).
#[derive(Template)]
#[template(path = "public_message.html")]
pub(crate) struct MessagePage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    title: String,
    heading: String,
    message: String,
    id: &'static str,
}

impl MessagePage {
    /// A page with `title`, `heading`, `message`; `id` names the message element.
    pub(crate) fn new(title: &str, heading: &str, message: &str, id: &'static str) -> Self {
        Self {
            assets: assets(),
            chrome: None,
            title: title.to_owned(),
            heading: heading.to_owned(),
            message: message.to_owned(),
            id,
        }
    }
}

/// The one answer to a link that does not open anything.
pub(crate) fn link_not_working() -> Result<Response, WebError> {
    html_status(
        StatusCode::NOT_FOUND,
        &MessagePage {
            assets: assets(),
            chrome: None,
            title: "Link not available".into(),
            heading: "This link does not work".into(),
            message:
                "It may have expired or been used already. Ask the practice to send you a new one."
                    .into(),
            id: "link-not-working",
        },
    )
}

/// The public pages' wait (`429`, `Retry-After`).
pub(crate) fn wait_page(seconds: i64) -> Response {
    let page = MessagePage {
        assets: assets(),
        chrome: None,
        title: "Please wait".into(),
        heading: "Too many requests".into(),
        message: format!("Please wait {seconds} seconds, then try again."),
        id: "wait",
    };
    let mut res = match html_status(StatusCode::TOO_MANY_REQUESTS, &page) {
        Ok(r) => r,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    if let Ok(v) = axum::http::HeaderValue::from_str(&seconds.to_string()) {
        res.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    res
}

/// One question on the page.
pub(crate) struct FieldView {
    key: String,
    label: String,
    kind: &'static str,
    required: bool,
    value: String,
    options: Vec<String>,
    max: usize,
    error: Option<String>,
}

/// The public form.
#[derive(Template)]
#[template(path = "intake_form.html")]
pub(crate) struct FormPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_name: String,
    title: String,
    intro: String,
    intent: String,
    action: String,
    fields: Vec<FieldView>,
    signer_name: String,
    signer_error: Option<String>,
    esign_checked: bool,
    esign_error: Option<String>,
    error: Option<String>,
}

fn kind_name(k: FieldKind) -> &'static str {
    match k {
        FieldKind::Text => "text",
        FieldKind::LongText => "long_text",
        FieldKind::Date => "date",
        FieldKind::YesNo => "yes_no",
        FieldKind::Choice => "choice",
        FieldKind::Checkbox => "checkbox",
    }
}

fn form_page(
    practice_name: String,
    form: &domain::intake::FormDef,
    token: &str,
    values: &BTreeMap<String, String>,
    errors: &[(String, String)],
    signer_name: String,
    esign_checked: bool,
) -> FormPage {
    let err = |k: &str| errors.iter().find(|(f, _)| f == k).map(|(_, m)| m.clone());
    FormPage {
        assets: assets(),
        chrome: None,
        practice_name,
        title: form.title.clone(),
        intro: form.intro.clone(),
        intent: form.intent.clone(),
        action: format!("/intake/{token}"),
        fields: form
            .fields
            .iter()
            .map(|f| FieldView {
                key: f.key.clone(),
                label: f.label.clone(),
                kind: kind_name(f.kind),
                required: f.required,
                value: values.get(&f.key).cloned().unwrap_or_default(),
                options: f.options.clone(),
                max: f.max_chars.unwrap_or(500),
                error: err(&f.key),
            })
            .collect(),
        signer_name,
        signer_error: err("signer_name"),
        esign_checked,
        esign_error: err("esign_consent"),
        error: (!errors.is_empty()).then(|| {
            "Some answers need your attention: see the messages next to them. Nothing was sent."
                .to_owned()
        }),
    }
}

async fn enter(state: &AppState, token: &str) -> Result<Option<PublicIntake>, WebError> {
    let Ok(token) = outbound::LinkToken::parse(token) else {
        return Ok(None);
    };
    Ok(state
        .store
        .intake_link(&token, RequestId::new(), state.clock.now())
        .await
        .map_err(AppError::from)?)
}

/// `GET /intake/{token}`: the form, prefilled from the chart (audited `intake.open`).
pub(crate) async fn form(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let Some(mut tx) = enter(&state, &token).await? else {
        return link_not_working();
    };
    let keyring = state.store.keyring().map_err(AppError::from)?.clone();
    let opened = tx.open_form(&keyring).await.map_err(AppError::from)?;
    tx.commit().await.map_err(AppError::from)?;
    html(&form_page(
        opened.practice_name,
        opened.form,
        &token,
        &opened.prefill,
        &[],
        String::new(),
        false,
    ))
}

/// The thank-you page.
fn submitted(practice_name: &str) -> Result<Response, WebError> {
    html(&MessagePage {
        assets: assets(),
        chrome: None,
        title: format!("Form sent · {practice_name}"),
        heading: "Thank you".into(),
        message: format!(
            "Your signed form was sent to {practice_name}. The practice reviews it before your visit. This link no longer works."
        ),
        id: "submitted",
    })
}

/// `POST /intake/{token}`: signs and submits (`intake.submit`); refused: `400`, nothing stored.
pub(crate) async fn submit(
    State(state): State<AppState>,
    client: server::identity::Client,
    Path(token): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    if pairs.len() > MAX_VALUES {
        return Err(WebError(AppError::Invalid("too many form values".into())));
    }
    let Some(mut tx) = enter(&state, &token).await? else {
        return link_not_working();
    };
    let keyring = state.store.keyring().map_err(AppError::from)?.clone();
    let mut values = BTreeMap::new();
    let (mut signer_name, mut esign) = (String::new(), false);
    for (k, v) in pairs {
        match k.as_str() {
            "signer_name" => signer_name = v,
            "esign_consent" => esign = !v.is_empty(),
            _ => {
                values.insert(k, v);
            }
        }
    }
    let submission = Submission {
        values: values.clone(),
        signer_name: signer_name.clone(),
        esign_consent: esign,
        client_address: client.ip,
    };
    let practice_name = tx.practice_name().await.map_err(AppError::from)?;
    match tx
        .submit(&keyring, &submission)
        .await
        .map_err(AppError::from)?
    {
        Ok(_) => {
            tx.commit().await.map_err(AppError::from)?;
            submitted(&practice_name)
        }
        Err(refused) => {
            let form = tx.form();
            drop(tx);
            html_status(
                StatusCode::BAD_REQUEST,
                &form_page(
                    practice_name,
                    form,
                    &token,
                    &values,
                    &refused.0,
                    signer_name,
                    esign,
                ),
            )
        }
    }
}

// ---------------------------------------------------------------------------------------
// The practice's screens.
// ---------------------------------------------------------------------------------------

/// A request in a list.
pub(crate) struct RequestView {
    href: String,
    patient_href: String,
    title: String,
    version: u32,
    status: &'static str,
    sent: String,
    submitted: String,
    decided: String,
}

fn utc(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn status_label(s: Status) -> &'static str {
    match s {
        Status::Sent => "Sent, not yet submitted",
        Status::Submitted => "Waiting for review",
        Status::Accepted => "Accepted onto the chart",
        Status::Rejected => "Rejected",
    }
}

fn view(practice: PracticeId, r: &RequestRow) -> RequestView {
    RequestView {
        href: format!("/app/practices/{practice}/intake/{}", r.request_id),
        patient_href: format!("/app/practices/{practice}/patients/{}", r.patient_id),
        title: r.title.clone(),
        version: r.form_version,
        status: status_label(r.status),
        sent: utc(r.created_at),
        submitted: r.submitted_at.map(utc).unwrap_or_default(),
        decided: r.decided_at.map(utc).unwrap_or_default(),
    }
}

/// `?done=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DoneQuery {
    done: Option<String>,
}

fn done_message(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "sent" => Some(
            "Intake form requested: its link is queued to the patient by text message and email (see the outbox).",
        ),
        "no_contact" => Some(
            "Intake form requested, but the chart has no mobile number or email address to send its link to: add one, then request it again.",
        ),
        "accepted" => Some("Intake form accepted: it is on the patient's chart."),
        "rejected" => Some("Intake form rejected."),
        "revoked" => {
            Some("Link revoked: it no longer works. Request a new form to send a new link.")
        }
        _ => None,
    }
}

/// A form the practice can request.
pub(crate) struct FormOption {
    id: String,
    title: String,
    version: u32,
}

/// A patient's intake forms.
#[derive(Template)]
#[template(path = "intake_patient.html")]
pub(crate) struct PatientIntakePage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    action: String,
    patient_href: String,
    patient: String,
    forms: Vec<FormOption>,
    requests: Vec<RequestView>,
    links: Vec<LinkView>,
    done: Option<&'static str>,
}

/// An outstanding client link on the patient's intake page, with its revoke button.
pub(crate) struct LinkView {
    purpose: &'static str,
    sent: String,
    until: String,
    revoke_action: String,
}

fn purpose_label(p: &str) -> &'static str {
    match p {
        "intake" => "Intake form",
        "booking_manage" => "Manage a booking",
        "offer" => "Waitlist offer",
        _ => "Client link",
    }
}

/// `GET /app/practices/{practice_id}/patients/{patient_id}/intake`: the patient's intake
/// requests and the form to request one (audited `patient.read` for the name).
pub(crate) async fn patient_page(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let patient: PatientId = path_id(&id, "patient")?;
    let mut tx = ctx.tx;
    let practice = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let p = super::patients::read_patient(&state, &mut tx, patient).await?;
    let rows = store::intake::for_patient(&mut tx, patient).await?;
    let links = store::links::for_patient(&mut tx, patient).await?;
    tx.commit().await?;
    let cat = catalogue().map_err(|e| AppError::Internal(e.to_string()))?;
    html(&PatientIntakePage {
        assets: assets(),
        chrome: Some(chrome),
        action: format!("/app/practices/{practice}/patients/{patient}/intake"),
        patient_href: format!("/app/practices/{practice}/patients/{patient}"),
        patient: super::chart::patient_name(&p),
        forms: cat
            .current()
            .into_iter()
            .map(|f| FormOption {
                id: f.id.clone(),
                title: f.title.clone(),
                version: f.version,
            })
            .collect(),
        requests: rows.iter().map(|r| view(practice, r)).collect(),
        links: links
            .iter()
            .filter(|l| l.outstanding)
            .map(|l| LinkView {
                purpose: purpose_label(&l.purpose),
                sent: utc(l.created_at),
                until: utc(l.expires_at),
                revoke_action: format!(
                    "/app/practices/{practice}/patients/{patient}/links/{}/revoke",
                    l.link_id
                ),
            })
            .collect(),
        done: done_message(q.done.as_deref()),
    })
}

/// `POST /app/practices/{practice_id}/patients/{patient_id}/links/{link_id}/revoke`: revokes
/// an outstanding client link (`client_link.revoke`, the API's one path): it stops working at
/// once. `303` back to the patient's intake page; a link of another patient or practice is
/// `404`, one no longer outstanding `409`.
pub(crate) async fn link_revoke(
    Member(ctx): Member<Scheduling>,
    Path((_, id, link)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    let patient: PatientId = path_id(&id, "patient")?;
    let link: domain::ClientLinkId = path_id(&link, "client link")?;
    let mut tx = ctx.tx;
    let practice = tx.practice();
    let mine = store::links::for_patient(&mut tx, patient)
        .await?
        .iter()
        .any(|l| l.link_id == link);
    if !mine {
        return Err(WebError(AppError::NotFound("client link")));
    }
    server::actions::revoke_link(&mut tx, link).await?;
    tx.commit().await?;
    Ok(redirect(&format!(
        "/app/practices/{practice}/patients/{patient}/intake?done=revoked"
    )))
}

/// The request form.
#[derive(Deserialize)]
pub(crate) struct RequestForm {
    #[serde(default)]
    form_id: String,
}

/// `POST /app/practices/{practice_id}/patients/{patient_id}/intake`: requests the form and
/// makes its link (`intake.request`); the link's message is queued with it. `303` back.
pub(crate) async fn request_create(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<RequestForm>,
) -> Result<Response, WebError> {
    let patient: PatientId = path_id(&id, "patient")?;
    let mut tx = ctx.tx;
    let practice = tx.practice();
    let keyring = state.store.keyring().map_err(AppError::from)?.clone();
    let made = match store::intake::request_and_send(
        &mut tx,
        &keyring,
        patient,
        form.form_id.trim(),
    )
    .await
    {
        Ok(m) => m,
        Err(store::StoreError::Invalid(_)) => {
            return Err(WebError(AppError::Invalid(
                "Choose one of the intake forms.".into(),
            )));
        }
        Err(e) => return Err(WebError(e.into())),
    };
    // The link's token lives only in the messages the outbox sends from this transaction;
    // it is never stored or shown.
    let (_, queued) = made.ok_or(WebError(AppError::NotFound("patient")))?;
    tx.commit().await?;
    let done = if queued > 0 { "sent" } else { "no_contact" };
    Ok(redirect(&format!(
        "/app/practices/{practice}/patients/{patient}/intake?done={done}"
    )))
}

/// The review queue.
#[derive(Template)]
#[template(path = "intake_queue.html")]
pub(crate) struct QueuePage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    waiting: Vec<RequestView>,
    decided: Vec<RequestView>,
    done: Option<&'static str>,
}

/// `GET /app/practices/{practice_id}/intake`: forms waiting for review, then the latest
/// decided (audited `intake.list`).
pub(crate) async fn queue_page(
    Member(ctx): Member<Scheduling>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let rows = store::intake::queue(&mut tx).await?;
    tx.commit().await?;
    let (waiting, decided): (Vec<&RequestRow>, Vec<&RequestRow>) =
        rows.iter().partition(|r| r.status == Status::Submitted);
    html(&QueuePage {
        assets: assets(),
        chrome: Some(chrome),
        waiting: waiting.into_iter().map(|r| view(practice, r)).collect(),
        decided: decided.into_iter().map(|r| view(practice, r)).collect(),
        done: done_message(q.done.as_deref()),
    })
}

/// An answer as the reviewer reads it.
pub(crate) struct AnswerView {
    label: String,
    value: String,
}

/// One submitted form.
#[derive(Template)]
#[template(path = "intake_review.html")]
pub(crate) struct ReviewPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    request: RequestView,
    waiting: bool,
    answers: Vec<AnswerView>,
    signer_name: String,
    signed_at: String,
    evidence_hash: String,
    evidence_verified: bool,
    reject_reason: Option<String>,
    accept_action: String,
    reject_action: String,
    reason: String,
    error: Option<String>,
}

async fn review(
    state: &AppState,
    tx: &mut store::TenantTx,
    request: IntakeRequestId,
) -> Result<ReviewPage, WebError> {
    let practice = tx.practice();
    let chrome = chrome(tx).await?;
    let r = store::intake::open(tx, state.store.keyring()?, request)
        .await?
        .ok_or(WebError(AppError::NotFound("intake form")))?;
    let form = catalogue()
        .ok()
        .and_then(|c| c.get(&r.request.form_id, r.request.form_version));
    let answers = form
        .map(|f| {
            f.fields
                .iter()
                .map(|field| AnswerView {
                    label: field.label.clone(),
                    value: r.answers.get(&field.key).cloned().unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ReviewPage {
        assets: assets(),
        chrome: Some(chrome),
        waiting: r.request.status == Status::Submitted,
        request: view(practice, &r.request),
        answers,
        signer_name: r.signer_name,
        signed_at: utc(r.signed_at),
        evidence_hash: r.evidence_hash,
        evidence_verified: r.evidence_verified,
        reject_reason: r.reject_reason,
        accept_action: format!("/app/practices/{practice}/intake/{request}/accept"),
        reject_action: format!("/app/practices/{practice}/intake/{request}/reject"),
        reason: String::new(),
        error: None,
    })
}

/// `GET /app/practices/{practice_id}/intake/{request_id}`: one submitted form, decrypted
/// (audited `intake.read`), with accept and reject.
pub(crate) async fn review_page(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let request: IntakeRequestId = path_id(&id, "intake form")?;
    let mut tx = ctx.tx;
    let page = review(&state, &mut tx, request).await?;
    tx.commit().await?;
    html(&page)
}

/// The reject form.
#[derive(Deserialize, Default)]
pub(crate) struct DecisionForm {
    #[serde(default)]
    reason: String,
}

/// `POST /app/practices/{practice_id}/intake/{request_id}/{accept|reject}` (`intake.decide`):
/// `303` to the queue; a reject without a reason: `400`, nothing changed.
pub(crate) async fn decide(
    State(state): State<AppState>,
    Member(ctx): Member<Scheduling>,
    Path((_, id, decision)): Path<(String, String, String)>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, WebError> {
    let request: IntakeRequestId = path_id(&id, "intake form")?;
    let decision = match decision.as_str() {
        "accept" => Decision::Accept,
        "reject" => Decision::Reject(form.reason.clone()),
        _ => return Err(WebError(AppError::NotFound("page"))),
    };
    let mut tx = ctx.tx;
    let practice = tx.practice();
    match store::intake::decide(&mut tx, state.store.keyring()?, request, &decision).await {
        Ok(Some(s)) => {
            tx.commit().await?;
            Ok(redirect(&format!(
                "/app/practices/{practice}/intake?done={}",
                s.as_str()
            )))
        }
        Ok(None) => Err(WebError(AppError::NotFound("intake form"))),
        Err(store::StoreError::Invalid(_)) => {
            drop(tx);
            Err(WebError(AppError::Invalid(format!(
                "Give a reason for rejecting (1 to {} characters).",
                store::intake::MAX_REASON_CHARS
            ))))
        }
        Err(e) => Err(WebError(e.into())),
    }
}
