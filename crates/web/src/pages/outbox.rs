//! The outbox screen (reception, owners and admins): the practice's messages to clients with
//! their state, channel, template, cause, attempts and times — never a contact or a body (the
//! store call reads neither). The same store call as everywhere ([`store::outbox::list`],
//! audited as `outbox.list`).

use askama::Template;
use axum::extract::Query;
use axum::response::Response;
use domain::PracticeId;
use serde::Deserialize;
use server::extract::FrontDeskOrManage;

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
