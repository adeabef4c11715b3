//! Patients' requests (HIPAA 164.524 and 164.526; req PR-01, SIG-07, SIG-08): the list of
//! right-of-access and amendment requests with their deadlines (due date, days left, overdue
//! and extended marked), and each request's page with its actions — an access request is
//! extended, denied or fulfilled (the copy produced and handed over); an amendment request is
//! extended, denied, accepted onto the note it names (as a signed amendment or addendum, with
//! step-up), and once denied carries the patient's statement of disagreement and the
//! practice's rebuttal (with who wrote it).
//!
//! Through the API's actions ([`server::actions::rights`]) and input rules, so the same
//! guards, refusals and audit events: owners, admins and clinicians track requests
//! ([`ClinicalOrManage`]; reception `403`, another practice `404`); fulfilling and accepting
//! change or copy clinical records, so they are for clinicians ([`Clinical`]), and the page
//! offers them to clinicians only. Audit: `access_request.list` and
//! `amendment_request.list` (the list), `access_request.read` / `amendment_request.read`
//! (a request's page, with `membership.list` for the names shown), and each action's own
//! event (`….extend`, `….deny`, `access_request.fulfil` with `patient.export`,
//! `amendment_request.accept` with `note.amend` or `note.addendum`,
//! `amendment_request.disagreement`, `amendment_request.rebuttal`).

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::notes::{ADDENDUM_MAX, NoteStatus, REASON_MAX};
use domain::rights::{self, RequestKind, Status};
use domain::{AccessRequestId, AmendmentRequestId, PatientId, PracticeId, Privilege, UserId};
use serde::Deserialize;
use server::actions::rights as act;
use server::extract::{Clinical, ClinicalOrManage};
use server::{AppError, AppState};
use store::TenantTx;

use super::chart::{self, Banner, NoteField, Pairs, Section};
use super::{Chrome, FieldErrors, Member, chrome, html, html_status, path_id, redirect};
use crate::{Assets, WebError, assets};

/// The request screens' routes (under `/app`).
pub(crate) fn router() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    let access = "/practices/{practice_id}/requests/access/{request_id}";
    let amendment = "/practices/{practice_id}/requests/amendment/{request_id}";
    // The static `fulfil` and `accept` segments take precedence over `{step}`.
    axum::Router::new()
        .route("/practices/{practice_id}/requests", get(requests_page))
        .route(access, get(access_page))
        .route(&format!("{access}/fulfil"), post(access_fulfil))
        .route(&format!("{access}/{{step}}"), post(access_step))
        .route(amendment, get(amendment_page))
        .route(
            &format!("{amendment}/accept"),
            get(accept_page).post(amendment_accept),
        )
        .route(&format!("{amendment}/{{step}}"), post(amendment_step))
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn plural(n: i64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// A request's deadline as shown: when it is due, the time left (or how long overdue), and
/// whether it is overdue, extended and may still be extended — each decided by
/// [`domain::rights`] at the transaction's time, as the API's views do.
#[derive(Debug)]
pub(crate) struct Deadline {
    due: String,
    left: String,
    overdue: bool,
    extended: bool,
    may_extend: bool,
}

impl Deadline {
    fn new(
        kind: RequestKind,
        received: DateTime<Utc>,
        status: Status,
        due_at: DateTime<Utc>,
        extended_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        let overdue = rights::is_overdue(status, due_at, now);
        let left = if status.is_closed() {
            String::new()
        } else if overdue {
            match (now - due_at).num_days() {
                0 => "overdue (less than a day)".to_owned(),
                d => format!("overdue by {}", plural(d, "day")),
            }
        } else {
            match (due_at - now).num_days() {
                0 => "less than a day left".to_owned(),
                d => format!("{} left", plural(d, "day")),
            }
        };
        Self {
            due: when(due_at),
            left,
            overdue,
            extended: extended_at.is_some(),
            may_extend: rights::may_extend(kind, received, status, now),
        }
    }
}

/// How a status reads for a request of `kind`.
fn status_label(kind: RequestKind, s: Status) -> &'static str {
    match (kind, s) {
        (_, Status::Open) => "open",
        (_, Status::Extended) => "extended",
        (RequestKind::Access, Status::Granted) => "fulfilled",
        (RequestKind::Amendment, Status::Granted) => "accepted",
        (_, Status::Denied) => "denied",
    }
}

/// A request in the list.
#[derive(Debug)]
pub(crate) struct Row {
    /// `access` or `amendment` (the row's id prefix and the page's path).
    kind: &'static str,
    /// The request's id (the row's id: `{kind}-{id}`).
    id: String,
    label: &'static str,
    href: String,
    patient: PatientId,
    received: String,
    what: String,
    status: &'static str,
    deadline: Deadline,
    closed: String,
    /// For sorting: open ones by due time, closed ones newest first.
    sort: DateTime<Utc>,
}

fn access_row(
    practice: PracticeId,
    s: &store::rights::AccessRequestSummary,
    now: DateTime<Utc>,
) -> Row {
    let kind = RequestKind::Access;
    Row {
        kind: "access",
        id: s.request_id.to_string(),
        label: "Access",
        href: format!("/app/practices/{practice}/requests/access/{}", s.request_id),
        patient: s.patient_id,
        received: when(s.received_at),
        what: format!(
            "a copy ({}){}",
            form_label(&s.form),
            if s.third_party {
                ", to a third party"
            } else {
                ""
            }
        ),
        status: status_label(kind, s.status),
        deadline: Deadline::new(kind, s.received_at, s.status, s.due_at, s.extended_at, now),
        closed: s.closed_at.map(when).unwrap_or_default(),
        sort: s.closed_at.unwrap_or(s.due_at),
    }
}

fn amendment_row(
    practice: PracticeId,
    s: &store::amendments::AmendmentRequestSummary,
    now: DateTime<Utc>,
) -> Row {
    let kind = RequestKind::Amendment;
    Row {
        kind: "amendment",
        id: s.request_id.to_string(),
        label: "Amendment",
        href: format!(
            "/app/practices/{practice}/requests/amendment/{}",
            s.request_id
        ),
        patient: s.patient_id,
        received: when(s.received_at),
        what: format!("to amend {}", record_label(&s.record_kind)),
        status: status_label(kind, s.status),
        deadline: Deadline::new(kind, s.received_at, s.status, s.due_at, s.extended_at, now),
        closed: s.closed_at.map(when).unwrap_or_default(),
        sort: s.closed_at.unwrap_or(s.due_at),
    }
}

fn form_label(form: &str) -> &'static str {
    match form {
        "fhir_json" => "FHIR R4 JSON",
        "html" => "readable HTML",
        "paper" => "paper",
        _ => "another form",
    }
}

fn record_label(kind: &str) -> &'static str {
    match kind {
        "note" => "a clinical note",
        "demographics" => "demographics",
        "appointment" => "an appointment",
        "perio_exam" => "a perio exam",
        "intake" => "an intake form",
        _ => "another record",
    }
}

/// The list page.
#[derive(Template)]
#[template(path = "requests.html")]
pub(crate) struct ListPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    open: Vec<Row>,
    closed: Vec<Row>,
    overdue: usize,
}

/// How many closed requests the list shows (the newest).
const CLOSED_SHOWN: usize = 50;

/// `GET /app/practices/{practice_id}/requests`: the open requests of both kinds, soonest due
/// first, with their deadlines; then the newest closed ones. Nothing decrypted; audited
/// `access_request.list` and `amendment_request.list`, as the API's lists.
pub(crate) async fn requests_page(
    Member(ctx): Member<ClinicalOrManage>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice = tx.practice();
    let now = tx.now();
    let chrome = chrome(&mut tx).await?;
    let access = act::list_access_requests(&mut tx).await?;
    let amendments = act::list_amendment_requests(&mut tx, None).await?;
    tx.commit().await?;
    let (mut open, mut closed): (Vec<Row>, Vec<Row>) = access
        .iter()
        .map(|s| access_row(practice, s, now))
        .chain(amendments.iter().map(|s| amendment_row(practice, s, now)))
        .partition(|r| r.closed.is_empty());
    open.sort_by_key(|r| r.sort);
    closed.sort_by_key(|r| std::cmp::Reverse(r.sort));
    closed.truncate(CLOSED_SHOWN);
    html(&ListPage {
        assets: assets(),
        chrome: Some(chrome),
        overdue: open.iter().filter(|r| r.deadline.overdue).count(),
        open,
        closed,
    })
}

/// `?done=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DoneQuery {
    done: Option<String>,
}

fn done_message(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "extended" => Some("Deadline extended once by 30 days."),
        "denied" => Some("Request denied; the written reason is on record."),
        "accepted" => Some("Request accepted; the change is on the record."),
        "disagreement" => Some("The patient's statement of disagreement is linked."),
        "rebuttal" => Some("The practice's rebuttal is linked."),
        _ => None,
    }
}

/// Which request a page or an action is about.
#[derive(Clone, Copy)]
enum Target {
    Access(AccessRequestId),
    Amendment(AmendmentRequestId),
}

impl Target {
    fn href(self, practice: PracticeId) -> String {
        match self {
            Target::Access(id) => format!("/app/practices/{practice}/requests/access/{id}"),
            Target::Amendment(id) => format!("/app/practices/{practice}/requests/amendment/{id}"),
        }
    }
}

/// Who did something, as shown.
fn who(names: &HashMap<UserId, String>, id: Option<UserId>) -> Option<String> {
    id.map(|u| chart::name_of(names, u))
}

/// An access request's page.
#[derive(Template)]
#[template(path = "request_access.html")]
pub(crate) struct AccessPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    href: String,
    list_href: String,
    patient: PatientId,
    /// The patient's chart, for clinicians (the chart is theirs).
    chart: Option<String>,
    received: String,
    form: &'static str,
    recipient: Option<String>,
    status: &'static str,
    closed: Option<String>,
    deadline: Deadline,
    extension_reason: Option<String>,
    denial_reason: Option<String>,
    disclosure: Option<String>,
    created_by: Option<String>,
    closed_by: Option<String>,
    /// Open or extended: it may be denied.
    may_deny: bool,
    /// Open or extended, and the actor may produce the copy (clinicians).
    may_fulfil: bool,
    error: Option<String>,
    done: Option<&'static str>,
}

async fn access_detail(
    state: &AppState,
    tx: &mut TenantTx,
    id: AccessRequestId,
    error: Option<String>,
    done: Option<&'static str>,
) -> Result<AccessPage, WebError> {
    let practice = tx.practice();
    let now = tx.now();
    let clinical = Privilege::Clinical.allows(tx.roles());
    let chrome = chrome(tx).await?;
    let r = act::read_access_request(tx, state.store.keyring()?, id).await?;
    let names = chart::member_names(tx).await?;
    let s = &r.summary;
    let open = !s.status.is_closed();
    Ok(AccessPage {
        assets: assets(),
        chrome: Some(chrome),
        href: Target::Access(id).href(practice),
        list_href: format!("/app/practices/{practice}/requests"),
        patient: s.patient_id,
        chart: clinical
            .then(|| format!("/app/practices/{practice}/patients/{}/chart", s.patient_id)),
        received: when(s.received_at),
        form: form_label(&s.form),
        recipient: r.recipient.clone(),
        status: status_label(RequestKind::Access, s.status),
        closed: s.closed_at.map(when),
        deadline: Deadline::new(
            RequestKind::Access,
            s.received_at,
            s.status,
            s.due_at,
            s.extended_at,
            now,
        ),
        extension_reason: r.extension_reason.clone(),
        denial_reason: r.denial_reason.clone(),
        disclosure: s.disclosure_id.map(|d| d.to_string()),
        created_by: who(&names, r.created_by),
        closed_by: who(&names, r.closed_by),
        may_deny: open,
        may_fulfil: open && clinical,
        error,
        done,
    })
}

/// An amendment request's page.
#[derive(Template)]
#[template(path = "request_amendment.html")]
#[expect(
    clippy::struct_excessive_bools,
    reason = "one flag per form the page may offer, each decided by the handler so that no rule lives in the template"
)]
pub(crate) struct AmendmentPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    href: String,
    list_href: String,
    patient: PatientId,
    received: String,
    record: &'static str,
    /// The note it names: its id, and its page for clinicians.
    note: Option<(String, Option<String>)>,
    note_version: Option<i32>,
    requested_change: String,
    status: &'static str,
    closed: Option<String>,
    deadline: Deadline,
    extension_reason: Option<String>,
    denial_reason: Option<String>,
    /// The note version that carries the accepted change, and its kind.
    landed: Option<(i32, String)>,
    /// The patient's statement and when it was linked.
    disagreement: Option<(String, String)>,
    /// The practice's rebuttal, when it was linked, and who wrote it.
    rebuttal: Option<(String, String, Option<String>)>,
    created_by: Option<String>,
    closed_by: Option<String>,
    may_deny: bool,
    /// Open or extended, and the actor may change the record (clinicians): accept through
    /// the accept page (a note) or here (another record).
    may_accept: bool,
    /// The accept page, for a request that names a note.
    accept_href: Option<String>,
    /// Denied, no statement yet.
    may_disagree: bool,
    /// A statement, no rebuttal yet.
    may_rebut: bool,
    error: Option<String>,
    done: Option<&'static str>,
}

async fn amendment_detail(
    state: &AppState,
    tx: &mut TenantTx,
    id: AmendmentRequestId,
    error: Option<String>,
    done: Option<&'static str>,
) -> Result<AmendmentPage, WebError> {
    let practice = tx.practice();
    let now = tx.now();
    let clinical = Privilege::Clinical.allows(tx.roles());
    let chrome = chrome(tx).await?;
    let r = act::read_amendment_request(tx, state.store.keyring()?, id).await?;
    let names = chart::member_names(tx).await?;
    let s = &r.summary;
    let open = !s.status.is_closed();
    let href = Target::Amendment(id).href(practice);
    Ok(AmendmentPage {
        assets: assets(),
        chrome: Some(chrome),
        list_href: format!("/app/practices/{practice}/requests"),
        patient: s.patient_id,
        received: when(s.received_at),
        record: record_label(&s.record_kind),
        note: s.note_id.map(|n| {
            (
                n.to_string(),
                clinical.then(|| chart::note_href(practice, n)),
            )
        }),
        note_version: s.note_version,
        requested_change: r.requested_change.clone(),
        status: status_label(RequestKind::Amendment, s.status),
        closed: s.closed_at.map(when),
        deadline: Deadline::new(
            RequestKind::Amendment,
            s.received_at,
            s.status,
            s.due_at,
            s.extended_at,
            now,
        ),
        extension_reason: r.extension_reason.clone(),
        denial_reason: r.denial_reason.clone(),
        landed: s.landed_version.zip(s.landed_kind.clone()),
        disagreement: r.disagreement.clone().zip(s.disagreement_at.map(when)),
        rebuttal: match (&r.rebuttal, s.rebuttal_at) {
            (Some(t), Some(at)) => Some((t.clone(), when(at), who(&names, r.rebuttal_by))),
            _ => None,
        },
        created_by: who(&names, r.created_by),
        closed_by: who(&names, r.closed_by),
        may_deny: open,
        may_accept: open && clinical,
        accept_href: s.note_id.map(|_| format!("{href}/accept")),
        may_disagree: s.status == Status::Denied && s.disagreement_at.is_none(),
        may_rebut: s.disagreement_at.is_some() && s.rebuttal_at.is_none(),
        href,
        error,
        done,
    })
}

/// `GET /app/practices/{practice_id}/requests/access/{request_id}`: the request with its
/// deadline, recipient and reasons (decrypted, audited `access_request.read`) and its actions.
pub(crate) async fn access_page(
    State(state): State<AppState>,
    Member(ctx): Member<ClinicalOrManage>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let id: AccessRequestId = path_id(&id, "access request")?;
    let mut tx = ctx.tx;
    let p = access_detail(&state, &mut tx, id, None, done_message(q.done.as_deref())).await?;
    tx.commit().await?;
    html(&p)
}

/// `GET /app/practices/{practice_id}/requests/amendment/{request_id}`: the request with its
/// deadline, the change asked for and every statement (decrypted, audited
/// `amendment_request.read`), the note it names and its actions.
pub(crate) async fn amendment_page(
    State(state): State<AppState>,
    Member(ctx): Member<ClinicalOrManage>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let id: AmendmentRequestId = path_id(&id, "amendment request")?;
    let mut tx = ctx.tx;
    let p = amendment_detail(&state, &mut tx, id, None, done_message(q.done.as_deref())).await?;
    tx.commit().await?;
    html(&p)
}

/// After an action: the request's page with `done` (`303`), or, refused (`400`, `409`), the
/// page with the reason and nothing changed (every refusal comes before the action writes).
async fn answer(
    state: &AppState,
    mut tx: TenantTx,
    target: Target,
    outcome: Result<(), AppError>,
    done: &str,
) -> Result<Response, WebError> {
    let practice = tx.practice();
    match outcome {
        Ok(()) => {
            tx.commit().await?;
            Ok(redirect(&format!("{}?done={done}", target.href(practice))))
        }
        Err(e @ (AppError::Invalid(_) | AppError::Conflict(_))) => {
            let status = e.status();
            let error = Some(format!("Nothing was changed. {e}"));
            let res = match target {
                Target::Access(id) => {
                    let p = access_detail(state, &mut tx, id, error, None).await?;
                    html_status(status, &p)
                }
                Target::Amendment(id) => {
                    let p = amendment_detail(state, &mut tx, id, error, None).await?;
                    html_status(status, &p)
                }
            };
            tx.commit().await?;
            res
        }
        Err(e) => Err(e.into()),
    }
}

/// A step of a request's lifecycle as typed on its page: a written reason (extend, deny) or
/// a statement (the patient's disagreement, the practice's rebuttal).
#[derive(Deserialize)]
pub(crate) struct StepForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    text: String,
}

/// `POST …/requests/access/{request_id}/{step}`: `extend` (once, by 30 days, with the written
/// reason; `access_request.extend`, a second extension `409 RIGHTS-0001`) or `deny` (with the
/// written reason; `access_request.deny`). Another step is unknown (`404`).
pub(crate) async fn access_step(
    State(state): State<AppState>,
    Member(ctx): Member<ClinicalOrManage>,
    Path((_, id, step)): Path<(String, String, String)>,
    Form(form): Form<StepForm>,
) -> Result<Response, WebError> {
    let id: AccessRequestId = path_id(&id, "access request")?;
    let mut tx = ctx.tx;
    let keyring = state.store.keyring()?;
    let (outcome, done) = match step.as_str() {
        "extend" => (
            act::extend_access_request(&mut tx, keyring, id, &form.reason).await,
            "extended",
        ),
        "deny" => (
            act::deny_access_request(&mut tx, keyring, id, &form.reason).await,
            "denied",
        ),
        _ => return Err(WebError(AppError::NotFound("page"))),
    };
    answer(&state, tx, Target::Access(id), outcome.map(|_| ()), done).await
}

/// `POST …/requests/amendment/{request_id}/{step}`: `extend` (once, by 30 days, with the
/// written reason; `amendment_request.extend`), `deny` (with the written reason,
/// 164.526(d)(1); `amendment_request.deny`), `disagreement` (the patient's statement, after a
/// denial; `amendment_request.disagreement`) or `rebuttal` (the practice's, after the
/// statement, written by the actor; `amendment_request.rebuttal`). Another step is unknown
/// (`404`).
pub(crate) async fn amendment_step(
    State(state): State<AppState>,
    Member(ctx): Member<ClinicalOrManage>,
    Path((_, id, step)): Path<(String, String, String)>,
    Form(form): Form<StepForm>,
) -> Result<Response, WebError> {
    let id: AmendmentRequestId = path_id(&id, "amendment request")?;
    let mut tx = ctx.tx;
    let keyring = state.store.keyring()?;
    let (outcome, done) = match step.as_str() {
        "extend" => (
            act::extend_amendment_request(&mut tx, keyring, id, &form.reason).await,
            "extended",
        ),
        "deny" => (
            act::deny_amendment_request(&mut tx, keyring, id, &form.reason).await,
            "denied",
        ),
        "disagreement" => (
            act::link_statement(&mut tx, keyring, id, false, &form.text).await,
            "disagreement",
        ),
        "rebuttal" => (
            act::link_statement(&mut tx, keyring, id, true, &form.text).await,
            "rebuttal",
        ),
        _ => return Err(WebError(AppError::NotFound("page"))),
    };
    answer(&state, tx, Target::Amendment(id), outcome.map(|_| ()), done).await
}

/// `POST …/requests/access/{request_id}/fulfil`: produces the copy in the form asked for (the
/// API's fulfil: `patient.export`, a disclosure for a third party, `access_request.fulfil`)
/// and answers it as a download — the FHIR R4 Bundle, or the HTML rendering for `html` and
/// `paper` (to print). Clinicians only, as in the API. Refused (closed): the page, `409`.
pub(crate) async fn access_fulfil(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let id: AccessRequestId = path_id(&id, "access request")?;
    let mut tx = ctx.tx;
    match act::fulfil_access_request(&mut tx, state.store.keyring()?, id).await {
        Ok((_, format, body, _)) => {
            tx.commit().await?;
            Ok(download(id, format, body))
        }
        Err(e) => answer(&state, tx, Target::Access(id), Err(e), "fulfilled").await,
    }
}

/// The copy as a download (`Content-Disposition: attachment`), named by the request (no PHI
/// in the file name).
fn download(id: AccessRequestId, format: server::export::Format, body: String) -> Response {
    let (kind, ext) = match format {
        server::export::Format::Fhir => ("application/fhir+json", "json"),
        server::export::Format::Html => ("text/html; charset=utf-8", "html"),
    };
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"access-request-{id}.{ext}\""
    )) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// The accept page: the change asked for, and the amendment and addendum forms of the note.
#[derive(Template)]
#[template(path = "request_accept.html")]
pub(crate) struct AcceptPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    href: String,
    note: String,
    banner: Option<Banner>,
    title: &'static str,
    requested_change: String,
    version: i32,
    sections: Vec<Section>,
    fields: Vec<NoteField>,
    reason: String,
    addendum_text: String,
    addendum_reason: String,
    errors: FieldErrors,
}

/// The accept page of request `id` (audited `amendment_request.read` and `note.read`), with
/// the form as typed (`form`) and its refusals. A closed request is `409`; one that names no
/// note is accepted from its own page (`400` here).
async fn accept_form(
    state: &AppState,
    tx: &mut TenantTx,
    id: AmendmentRequestId,
    form: Option<&Pairs>,
    errors: FieldErrors,
) -> Result<AcceptPage, WebError> {
    let practice = tx.practice();
    let keyring = state.store.keyring()?;
    let chrome = chrome(tx).await?;
    let r = act::read_amendment_request(tx, keyring, id).await?;
    let s = &r.summary;
    if s.status.is_closed() {
        return Err(WebError(server::rules::rights::lifecycle_refused(
            RequestKind::Amendment,
            rights::Refusal::Closed,
        )));
    }
    let note = s.note_id.ok_or_else(|| {
        WebError(AppError::Invalid(
            "amendment: the request names no note; accept it from its page once the record is changed"
                .into(),
        ))
    })?;
    let n = server::actions::read_note(tx, keyring, note, None).await?;
    if n.status != NoteStatus::Signed {
        return Err(WebError(server::rules::notes::refusal(
            store::notes::Refusal::Locked,
        )));
    }
    let banner = chart::banner(tx, n.patient_id).await?;
    let get = |k: &str| form.and_then(|f| f.get(k)).unwrap_or("").to_owned();
    Ok(AcceptPage {
        assets: assets(),
        chrome: Some(chrome),
        href: Target::Amendment(id).href(practice),
        note: chart::note_href(practice, note),
        banner,
        title: n.template.title(),
        requested_change: r.requested_change.clone(),
        version: n.version,
        sections: match form {
            Some(f) if f.get("subjective").is_some() => chart::form_sections(f),
            _ => chart::sections(&n.content),
        },
        fields: chart::note_fields(n.template, &n.content),
        reason: get("reason"),
        addendum_text: get("text"),
        addendum_reason: get("addendum_reason"),
        errors,
    })
}

/// `GET /app/practices/{practice_id}/requests/amendment/{request_id}/accept`: the change the
/// patient asked for beside the note's amendment and addendum forms (clinicians, as the
/// API's accept).
pub(crate) async fn accept_page(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let id: AmendmentRequestId = path_id(&id, "amendment request")?;
    let mut tx = ctx.tx;
    let p = accept_form(&state, &mut tx, id, None, FieldErrors::default()).await?;
    tx.commit().await?;
    html(&p)
}

/// `POST /app/practices/{practice_id}/requests/amendment/{request_id}/accept`: accepts the
/// request as the API's `amendment_request_accept` does. `kind=amendment` (the note's
/// content and a reason) or `kind=addendum` (text and a reason) lands a signed change on the
/// note named, against the note version the form was made from (`version`, the API's
/// `If-Match`), and needs a recent second factor (without one, the re-authentication form,
/// `401`, which repeats the post); `kind=none` accepts a request for another kind of record.
/// Audited `amendment_request.accept` with `note.amend` or `note.addendum`. A refused form:
/// the accept page again (`400`), nothing changed.
pub(crate) async fn amendment_accept(
    State(state): State<AppState>,
    Member(ctx): Member<Clinical>,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<Pairs>,
) -> Result<Response, WebError> {
    let id: AmendmentRequestId = path_id(&id, "amendment request")?;
    let practice = ctx.tx.practice();
    let kind = form.get("kind").unwrap_or("").to_owned();
    let mut tx = if kind == "none" {
        ctx.tx
    } else {
        let then = format!("{}/accept", Target::Amendment(id).href(practice));
        match chart::stepped_up_to(
            &state,
            ctx,
            then,
            "sign the change this request asks for",
            &form,
        )
        .await?
        {
            Ok(tx) => tx,
            Err(form_again) => return Ok(form_again),
        }
    };
    let keyring = state.store.keyring()?;
    let change = match kind.as_str() {
        "none" => None,
        "amendment" | "addendum" => match checked_change(&mut tx, keyring, id, &kind, &form).await?
        {
            Ok(c) => Some(c),
            Err(errors) => {
                let p = accept_form(&state, &mut tx, id, Some(&form), errors).await?;
                tx.commit().await?;
                return html_status(StatusCode::BAD_REQUEST, &p);
            }
        },
        _ => {
            return Err(WebError(AppError::Invalid(
                "kind: choose the amendment, the addendum, or accepting without a change".into(),
            )));
        }
    };
    let expected = match change {
        None => None,
        Some(_) => Some(
            form.get("version")
                .and_then(|v| v.trim().parse::<i32>().ok())
                .ok_or(WebError(AppError::PreconditionRequired))?,
        ),
    };
    let outcome = act::accept_amendment_request(&mut tx, keyring, id, change.as_ref(), expected)
        .await
        .map(|_| ());
    answer(&state, tx, Target::Amendment(id), outcome, "accepted").await
}

/// The change a form gives for request `id`'s note: an amendment (the note's content, checked
/// against its template, and a reason) or an addendum (text and a reason), or the messages
/// by field.
async fn checked_change(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    id: AmendmentRequestId,
    kind: &str,
    form: &Pairs,
) -> Result<Result<act::NoteChange, FieldErrors>, WebError> {
    let mut errors = FieldErrors::default();
    let text = |field: &'static str, label: &str, max: usize, errors: &mut FieldErrors| {
        domain::values::free_text(field, form.get(field).unwrap_or(""), max)
            .map_err(|e| errors.refused(field, label, &e))
            .ok()
    };
    if kind == "addendum" {
        let body = text("text", "Addendum", ADDENDUM_MAX, &mut errors);
        let reason = text("addendum_reason", "Reason", REASON_MAX, &mut errors);
        return Ok(match (body, reason) {
            (Some(text), Some(reason)) => Ok(act::NoteChange::Addendum { text, reason }),
            _ => Err(errors),
        });
    }
    // The note's template decides which fields the content may hold (as the note's own
    // amendment form does); the request is read again, locked, when it is decided.
    let note = store::amendments::summary(tx, id)
        .await?
        .ok_or(WebError(AppError::NotFound("amendment request")))?
        .note_id
        .ok_or_else(|| {
            WebError(AppError::Invalid(
                "amendment: the request names no note; accept it without a change".into(),
            ))
        })?;
    let template = store::notes::get(tx, keyring, note)
        .await?
        .ok_or(WebError(AppError::NotFound("note")))?
        .template;
    let reason = text("reason", "Reason", REASON_MAX, &mut errors);
    let content = match form.content(template) {
        Ok(c) => Some(c),
        Err(e) => {
            for f in ["subjective", "objective", "assessment", "plan", "fields"] {
                if let Some(m) = e.get(f) {
                    errors.add(f, m.to_owned());
                }
            }
            None
        }
    };
    Ok(match (reason, content) {
        (Some(reason), Some(content)) => Ok(act::NoteChange::Amendment { content, reason }),
        _ => Err(errors),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    // req: PR-01, SIG-08 — the deadline as the list shows it, on a fixed time: days left,
    // less than a day, overdue exactly at the deadline and by whole days after it; extended
    // marked and the extension no longer offered; nothing left on a closed request.
    #[test]
    fn deadlines_read_as_days_left_or_overdue() {
        let r = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        let k = RequestKind::Amendment;
        let due = rights::due(k, r, false);
        let cases = [
            (Status::Open, due, r, "60 days left", false, true),
            (
                Status::Open,
                due,
                due - Duration::hours(25),
                "1 day left",
                false,
                true,
            ),
            (
                Status::Open,
                due,
                due - Duration::seconds(1),
                "less than a day left",
                false,
                true,
            ),
            (
                Status::Open,
                due,
                due,
                "overdue (less than a day)",
                true,
                false,
            ),
            (
                Status::Open,
                due,
                due + Duration::days(3),
                "overdue by 3 days",
                true,
                false,
            ),
            (
                Status::Denied,
                due,
                due + Duration::days(3),
                "",
                false,
                false,
            ),
        ];
        for (status, due_at, now, left, overdue, may_extend) in cases {
            let d = Deadline::new(k, r, status, due_at, None, now);
            assert_eq!(d.left, left, "{now}");
            assert_eq!(d.overdue, overdue, "{now}");
            assert_eq!(d.may_extend, may_extend, "{now}");
            assert!(!d.extended);
        }
        let extended_due = rights::due(k, r, true);
        let d = Deadline::new(
            k,
            r,
            Status::Extended,
            extended_due,
            Some(r + Duration::days(1)),
            due + Duration::days(1),
        );
        assert!(d.extended && !d.may_extend && !d.overdue);
        assert_eq!(d.left, "29 days left");
        assert_eq!(d.due, "2026-05-30 09:00 UTC");
        assert_eq!(
            status_label(RequestKind::Access, Status::Granted),
            "fulfilled"
        );
        assert_eq!(
            status_label(RequestKind::Amendment, Status::Granted),
            "accepted"
        );
    }
}
