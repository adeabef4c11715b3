//! The outbox screen (reception, owners and admins): the practice's messages to clients with
//! their state, channel, template, cause, attempts and times — never a contact or a body (the
//! store call reads neither). The same store call as everywhere ([`store::outbox::list`],
//! audited as `outbox.list`). Beside it, the templates preview (the same roles): every
//! template of the catalogue as it would be sent, with sample slots and the scanner's verdict.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use domain::PracticeId;
use serde::Deserialize;
use server::extract::FrontDeskOrManage;
use server::{AppError, AppState};

use super::{Chrome, Member, chrome, html};
use crate::{Assets, WebError, assets};

/// One message as the screen shows it.
pub(crate) struct OutboxRow {
    id: String,
    status: String,
    channel: String,
    template: String,
    cause: String,
    attempts: i32,
    reason: String,
    queued: String,
    next: String,
    sent: String,
    delivered: String,
}

/// The outbox page.
#[derive(Template)]
#[template(path = "outbox.html")]
pub(crate) struct OutboxPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    status: Option<String>,
    statuses: &'static [&'static str],
    rows: Vec<OutboxRow>,
}

/// The filter.
#[derive(Deserialize)]
pub(crate) struct OutboxQuery {
    status: Option<String>,
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a %-d %b %Y, %H:%M UTC").to_string()
}

/// `GET /app/practices/{practice_id}/outbox`.
pub(crate) async fn outbox_page(
    Member(ctx): Member<FrontDeskOrManage>,
    Query(q): Query<OutboxQuery>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let status = q.status.filter(|s| !s.is_empty());
    let messages = store::outbox::list(&mut tx, status.as_deref()).await?;
    tx.commit().await?;
    let rows = messages
        .into_iter()
        .map(|m| OutboxRow {
            id: m.message_id.to_string(),
            status: m.status,
            channel: m.channel,
            template: m.template.replace('_', " "),
            cause: m.cause.replace('_', " "),
            attempts: m.attempts,
            reason: m.last_error.unwrap_or_default().replace('_', " "),
            queued: time(m.created_at),
            next: time(m.next_attempt_at),
            sent: m.sent_at.map(time).unwrap_or_default(),
            delivered: m.delivered_at.map(time).unwrap_or_default(),
        })
        .collect();
    html(&OutboxPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        status,
        statuses: &store::outbox::STATUSES,
        rows,
    })
}

/// One template as the preview shows it.
pub(crate) struct TemplateRow {
    id: &'static str,
    name: String,
    audience: &'static str,
    sms: String,
    sms_size: String,
    subject: String,
    text: String,
    sms_verdict: Option<&'static str>,
    email_verdict: Option<&'static str>,
}

/// The templates preview page.
#[derive(Template)]
#[template(path = "templates.html")]
pub(crate) struct TemplatesPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    /// Why no preview could be made (the practice's name or the origin).
    problem: Option<String>,
    rows: Vec<TemplateRow>,
}

/// `GET /app/practices/{practice_id}/templates`: every template of the catalogue rendered
/// with the practice's name and sample slots, with the scanner's verdict
/// ([`server::outbox_preview`]); the practice's clients are opened for the scanner by
/// [`store::outbox::preview_clients`] (audited as `outbox.preview`) and never shown.
pub(crate) async fn templates_page(
    State(state): State<AppState>,
    Member(ctx): Member<FrontDeskOrManage>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let keyring = state.store.keyring().map_err(AppError::from)?.clone();
    let clients = store::outbox::preview_clients(&mut tx, &keyring).await?;
    tx.commit().await?;
    let name = chrome
        .practice
        .as_ref()
        .map(|(_, n)| n.clone())
        .unwrap_or_default();
    let (problem, rows) =
        match server::outbox_preview::preview(&name, &state.subprocessors.origin, &clients) {
            Ok(all) => (
                None,
                all.into_iter()
                    .map(|p| TemplateRow {
                        id: p.template,
                        name: p.template.replace('_', " "),
                        audience: p.audience,
                        sms_size: format!(
                            "{} {}, {} part{}",
                            p.segments.units,
                            if p.segments.gsm7 {
                                "GSM-7 characters"
                            } else {
                                "UCS-2 units"
                            },
                            p.segments.parts,
                            if p.segments.parts == 1 { "" } else { "s" }
                        ),
                        sms: p.sms,
                        subject: p.subject,
                        text: p.text,
                        sms_verdict: p.sms_finding,
                        email_verdict: p.email_finding,
                    })
                    .collect(),
            ),
            Err(e) => (Some(e.to_string()), Vec::new()),
        };
    drop(clients);
    html(&TemplatesPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        problem,
        rows,
    })
}
