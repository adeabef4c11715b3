//! Web Push subscriptions of staff (any member, for themselves): the installation's VAPID
//! public key (the browsers' `applicationServerKey`) and the caller's subscriptions; register
//! one (the browser's `PushSubscription.toJSON()`); remove one.
//!
//! A subscription is refused with `400`, nothing stored, when its endpoint's host is not a
//! push service the subprocessor registry allows now ([`PushSettings::hosts`], built by `serve`
//! from the active Web Push integration), when the endpoint is not an `https` URL of at most
//! 1 KiB, or when its keys are not a P-256 point and a 16-byte secret. What is pushed is
//! always the one content-free payload (`outbound::PushPayload::update`), sent by the outbox
//! job. The endpoint and keys are sealed at rest and never returned, logged or audited.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use domain::{PracticeId, PushSubscriptionId};
use serde::{Deserialize, Serialize};
use store::push::SubscriptionRow;
use utoipa::ToSchema;

use crate::extract::{AnyMember, ApiJson, ApiPath, Ctx};
use crate::{AppError, AppState};

type E = crate::views::ErrorBody;

/// Web Push as this installation runs it (`None` in [`AppState`] when no Web Push integration
/// is active).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSettings {
    /// The VAPID public key, URL-safe base64 (the browsers' `applicationServerKey`).
    pub application_server_key: String,
    /// The push services' hosts a subscription may name (lowercase): the active Web Push
    /// integration's hosts, as the subprocessor registry allows them.
    pub hosts: Vec<String>,
}

/// Longest base64url text of a key accepted before decoding.
const MAX_KEY_TEXT: usize = 128;

fn settings(state: &AppState) -> Result<&Arc<PushSettings>, AppError> {
    state
        .push
        .as_ref()
        .ok_or_else(|| AppError::Conflict("Web Push is not enabled on this installation".into()))
}

/// The caller's subscriptions and the key to subscribe with.
#[derive(Serialize, ToSchema)]
pub(crate) struct PushSubscriptions {
    /// The VAPID public key (URL-safe base64): pass it to `pushManager.subscribe` as
    /// `applicationServerKey`. `null` when Web Push is not enabled here.
    application_server_key: Option<String>,
    /// The caller's subscriptions in this practice (no endpoints, no keys).
    subscriptions: Vec<SubscriptionRow>,
}

/// The caller's own push subscriptions in this practice, and the VAPID public key.
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/push-subscriptions", tag = "push",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = PushSubscriptions)))]
pub(crate) async fn push_subscription_list(
    State(state): State<AppState>,
    ctx: Ctx<AnyMember>,
) -> Result<Json<PushSubscriptions>, AppError> {
    let mut tx = ctx.tx;
    let subscriptions = store::push::mine(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(PushSubscriptions {
        application_server_key: state
            .push
            .as_ref()
            .map(|p| p.application_server_key.clone()),
        subscriptions,
    }))
}

/// A browser's subscription keys.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushKeys {
    /// The user agent's P-256 public key, URL-safe base64 (65 bytes decoded).
    p256dh: String,
    /// The authentication secret, URL-safe base64 (16 bytes decoded).
    auth: String,
}

/// A browser's subscription, as `PushSubscription.toJSON()` gives it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushSubscriptionCreate {
    /// The push service's endpoint URL (`https`, at most 1024 bytes, on an allowed host).
    endpoint: String,
    /// When the browser says the subscription expires (ignored).
    #[serde(default, rename = "expirationTime")]
    _expiration_time: Option<f64>,
    /// The keys.
    keys: PushKeys,
}

fn key_bytes(text: &str, field: &str) -> Result<Vec<u8>, AppError> {
    let bad = || {
        AppError::Invalid(format!(
            "keys.{field}: not URL-safe base64 of the right length"
        ))
    };
    if text.len() > MAX_KEY_TEXT {
        return Err(bad());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| bad())
}

/// Registers a push subscription for the caller in this practice (`push.subscribe`); the
/// same endpoint again replaces the old one. `400` (nothing stored) for an endpoint on a host
/// the subprocessor registry does not allow, a malformed endpoint, or keys of the wrong size;
/// `409` when Web Push is not enabled or the caller has 10 subscriptions already.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/push-subscriptions", tag = "push",
    params(("practice_id" = String, Path, format = Uuid)), request_body = PushSubscriptionCreate,
    responses((status = 201, body = SubscriptionRow), (status = 400, body = E), (status = 409, body = E)))]
pub(crate) async fn push_subscription_create(
    State(state): State<AppState>,
    ctx: Ctx<AnyMember>,
    ApiJson(req): ApiJson<PushSubscriptionCreate>,
) -> Result<(StatusCode, Json<SubscriptionRow>), AppError> {
    let push = settings(&state)?.clone();
    let p256dh = key_bytes(&req.keys.p256dh, "p256dh")?;
    let auth = key_bytes(&req.keys.auth, "auth")?;
    let sub = store::push::check(&req.endpoint, &p256dh, &auth)
        .map_err(|e| AppError::Invalid(e.to_string()))?;
    let host = store::push::endpoint_host(&sub);
    if !push.hosts.contains(&host) {
        return Err(AppError::Invalid(
            "endpoint: its host is not a push service this installation may call (see /.well-known/subprocessors.json)".into(),
        ));
    }
    let mut tx = ctx.tx;
    let keyring = state.store.keyring()?.clone();
    let row = match store::push::subscribe(&mut tx, &keyring, &sub).await {
        Ok(row) => row,
        Err(store::StoreError::Conflict(_)) => {
            return Err(AppError::Conflict(format!(
                "you have {} push subscriptions in this practice already: remove one first",
                store::push::MAX_PER_MEMBER
            )));
        }
        Err(e) => return Err(e.into()),
    };
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Removes one of the caller's push subscriptions (`push.unsubscribe`). `404` for another
/// member's or an unknown one.
#[utoipa::path(delete, path = "/api/v1/practices/{practice_id}/push-subscriptions/{subscription_id}",
    tag = "push",
    params(("practice_id" = String, Path, format = Uuid), ("subscription_id" = String, Path, format = Uuid)),
    responses((status = 204, description = "Removed"), (status = 404, body = E)))]
pub(crate) async fn push_subscription_delete(
    ctx: Ctx<AnyMember>,
    ApiPath((_, id)): ApiPath<(PracticeId, PushSubscriptionId)>,
) -> Result<StatusCode, AppError> {
    let mut tx = ctx.tx;
    if !store::push::unsubscribe(&mut tx, id).await? {
        return Err(AppError::NotFound("push subscription"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
