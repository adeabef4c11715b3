//! `serve`'s payment wiring: the Stripe adapter for online bookings of paid services and the
//! `POST /webhooks/stripe` route, built once from the deployment's integrations file, for the
//! first `payments`/`stripe` integration, only when the subprocessor registry allows its
//! hosts now ([`egress::registry::Registry::allowed_hosts`]). The secret key
//! (`credentials.api_key_file`) and the webhook signing secret
//! (`credentials.webhook_secret_file`) are read from the files the integrations file names;
//! errors name the integration and the key, never a secret.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use egress::ApiKey;
use egress::registry::{Kind, Registry, Vendor};
use egress::stripe::{STRIPE_API, Stripe, StripeWebhook, StripeWebhookSecret};

/// How long one call to Stripe may take: the booking's transaction waits for it.
const STRIPE_TIMEOUT: Duration = Duration::from_secs(15);

fn read_secret(id: &str, key: &str, path: Option<&std::path::Path>) -> anyhow::Result<String> {
    let path = path.with_context(|| format!("integration {id}: {key} is required"))?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("integration {id}: {key} could not be read"))?;
    Ok(text.trim().to_owned())
}

/// The payments of online bookings and the webhook verifier (when a webhook secret is
/// configured), for the first allowed Stripe integration; `None` without one. Return links
/// point at `link_origin`.
pub(crate) fn build(
    registry: &Registry,
    now: DateTime<Utc>,
    link_origin: &str,
) -> anyhow::Result<Option<(server::payments::Payments, Option<StripeWebhook>)>> {
    let allowed = registry.allowed_hosts(now);
    let Some(i) = registry
        .integrations()
        .list()
        .iter()
        .find(|i| i.kind == Kind::Payments && i.vendor == Vendor::Stripe)
    else {
        return Ok(None);
    };
    let id = i.id();
    if !i.hosts().iter().all(|h| allowed.contains(h)) {
        tracing::warn!(integration = %id, "the payment integration is not active yet (notice period): online payments are off");
        return Ok(None);
    }
    let base = i
        .base_url
        .as_ref()
        .map_or_else(|| STRIPE_API.to_owned(), url::Url::to_string);
    let key = read_secret(&id, "api_key_file", i.credentials.api_key_file.as_deref())?;
    let stripe = Stripe::new(base.trim_end_matches('/'), ApiKey::new(key), STRIPE_TIMEOUT)
        .map_err(|e| anyhow::anyhow!("integration {id}: {e}"))?;
    let links = egress::outbound::LinkOrigin::parse(link_origin)
        .map_err(|_| anyhow::anyhow!("--link-origin is not an https origin"))?;
    let webhook = if let Some(path) = i.credentials.webhook_secret_file.as_deref() {
        let s = read_secret(&id, "webhook_secret_file", Some(path))?;
        Some(StripeWebhook::new(StripeWebhookSecret::new(s)))
    } else {
        tracing::warn!(integration = %id, "no webhook_secret_file: payments can start but never settle");
        None
    };
    Ok(Some((
        server::payments::Payments::new(stripe, links),
        webhook,
    )))
}

/// [`build`] as `serve` keeps it: the state's payments and the webhook verifier.
pub(crate) fn for_serve(
    registry: &Registry,
    now: DateTime<Utc>,
    link_origin: &str,
) -> anyhow::Result<(
    Option<Arc<server::payments::Payments>>,
    Option<StripeWebhook>,
)> {
    Ok(match build(registry, now, link_origin)? {
        Some((p, w)) => (Some(Arc::new(p)), w),
        None => (None, None),
    })
}

/// The Stripe webhook route, when the owner role is there to act on it.
pub(crate) fn webhook_routes(
    verifier: Option<StripeWebhook>,
    owner: Option<&store::OwnerStore>,
    clock: Arc<dyn domain::Clock>,
) -> axum::Router {
    match (verifier, owner) {
        (Some(v), Some(owner)) => server::payments::webhook_router(
            server::payments::StripeWebhooks::new(owner.clone(), clock, v),
        ),
        _ => axum::Router::new(),
    }
}
