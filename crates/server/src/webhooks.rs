//! Provider webhooks: `POST /webhooks/{provider}`, outside `/api/v1` (providers call it, no
//! session).
//!
//! # Guarantees
//! - Nothing in a request is read before the provider's [`WebhookVerifier`] has checked its
//!   signature and, where the provider signs one, its timestamp (Telnyx Ed25519 over
//!   `timestamp|body`, Twilio HMAC over the URL and parameters, Resend's Svix signature). A bad
//!   signature or a stale timestamp is `401`, a malformed body `400`, an unknown provider
//!   `404`; nothing changes.
//! - A replay is refused: an event id already acted on (`webhook_event`, unique per provider
//!   and id) is `409` and changes nothing. Acting on an event is idempotent (a status set, an
//!   opt-out set), and the event is recorded after it has been acted on, so a failure between
//!   the two leaves the event to be acted on again, never lost.
//! - Delivery statuses update the message they name: by our idempotency key when the provider
//!   echoes it (from the signed body), else by the provider's message id.
//! - STOP / START texted back are mirrored into every practice's opt-outs (the sending number
//!   is the installation's, so a STOP to it stops texts from it); HELP is answered by the
//!   carriers themselves (Telnyx and Twilio reply to STOP, START and HELP by default), so no
//!   reply is queued here.
//! - Bodies are capped at 64 KiB. Logs carry the provider, the outcome and counts; never a
//!   number or a body.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use domain::{Clock, PracticeId};
use egress::send::{
    DeliveryStatus, Inbound, Keyword, WebhookError, WebhookRequest, WebhookVerifier,
};
use store::OwnerStore;
use store::outbox::Delivery;

/// The largest webhook body read.
pub const MAX_WEBHOOK_BYTES: usize = 64 * 1024;

/// What the webhook routes need.
#[derive(Clone)]
pub struct Webhooks {
    owner: OwnerStore,
    clock: Arc<dyn Clock>,
    verifiers: Arc<HashMap<&'static str, Arc<dyn WebhookVerifier>>>,
    public_origin: url::Url,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("providers", &self.verifiers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Webhooks verified by `verifiers` (each under its [`WebhookVerifier::vendor`] path),
    /// acted on as the owner role (a keyring is needed for opt-outs), on the public origin the
    /// providers call (`https://host[:port]`; Twilio signs the full URL).
    #[must_use]
    pub fn new(
        owner: OwnerStore,
        clock: Arc<dyn Clock>,
        verifiers: Vec<Arc<dyn WebhookVerifier>>,
        public_origin: url::Url,
    ) -> Self {
        Self {
            owner,
            clock,
            verifiers: Arc::new(verifiers.into_iter().map(|v| (v.vendor(), v)).collect()),
            public_origin,
        }
    }
}

/// The webhook routes, ready to merge into the application.
pub fn router(webhooks: Webhooks) -> Router {
    Router::new()
        .route("/webhooks/{provider}", post(receive))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES))
        .with_state(webhooks)
}

/// What one request did (counts only).
#[derive(Debug, Default)]
struct Applied {
    events: usize,
    replays: usize,
}

async fn receive(
    State(w): State<Webhooks>,
    Path(provider): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Some(verifier) = w.verifiers.get(provider.as_str()).cloned() else {
        return StatusCode::NOT_FOUND;
    };
    let vendor = verifier.vendor();
    let url = format!(
        "{}{}",
        w.public_origin.as_str().trim_end_matches('/'),
        uri.path_and_query().map_or("", |p| p.as_str())
    );
    let now = w.clock.now();
    let request = WebhookRequest {
        url: &url,
        headers: &headers,
        body: &body,
    };
    let events = match verifier.verify(&request, now) {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(provider = vendor, refusal = %e, "a webhook was refused");
            return match e {
                WebhookError::BadSignature | WebhookError::Stale => StatusCode::UNAUTHORIZED,
                WebhookError::Malformed => StatusCode::BAD_REQUEST,
            };
        }
    };
    match apply(&w, vendor, &events, now).await {
        Ok(a) if a.events > 0 && a.replays == a.events => {
            tracing::warn!(
                provider = vendor,
                events = a.events,
                "a replayed webhook was refused"
            );
            StatusCode::CONFLICT
        }
        Ok(_) => StatusCode::NO_CONTENT,
        Err(e) => {
            tracing::error!(provider = vendor, error = %e, "a verified webhook could not be applied");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

fn event_id(e: &Inbound) -> &str {
    match e {
        Inbound::Delivery { event_id, .. }
        | Inbound::Keyword { event_id, .. }
        | Inbound::Ignored { event_id } => event_id,
    }
}

async fn apply(
    w: &Webhooks,
    vendor: &'static str,
    events: &[Inbound],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Applied, store::StoreError> {
    let mut applied = Applied::default();
    let mut practices: Option<Vec<PracticeId>> = None;
    for event in events {
        applied.events += 1;
        let id = event_id(event);
        if w.owner.webhook_event_seen(vendor, id).await? {
            applied.replays += 1;
            continue;
        }
        if practices.is_none() {
            practices = Some(crate::jobs::practices(&w.owner, None).await?);
        }
        let all = practices.as_deref().unwrap_or_default();
        match event {
            Inbound::Delivery {
                provider_id,
                key,
                status,
                ..
            } => {
                let status = match status {
                    DeliveryStatus::Sent => Delivery::Sent,
                    DeliveryStatus::Delivered => Delivery::Delivered,
                    DeliveryStatus::Failed => Delivery::Failed,
                };
                for &p in all {
                    if w.owner
                        .outbox_delivery(p, vendor, provider_id, key.map(|k| k.0), status, now)
                        .await?
                    {
                        break;
                    }
                }
            }
            Inbound::Keyword { from, keyword, .. } => {
                if let Keyword::Stop | Keyword::Start = keyword {
                    let stop = *keyword == Keyword::Stop;
                    for &p in all {
                        w.owner.set_sms_opt_out(p, from.as_str(), stop, now).await?;
                    }
                }
            }
            Inbound::Ignored { .. } => {}
        }
        w.owner.record_webhook_event(vendor, id, now).await?;
    }
    Ok(applied)
}
