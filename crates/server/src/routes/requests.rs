//! The lifecycle every patient request shares in the routes (right of access,
//! [`crate::routes::rights`]; amendment, [`crate::routes::amendments`]): extending once with a
//! written reason and denying with one, each through the store's shared lifecycle
//! ([`store::requests`]), refused the same way ([`lifecycle_refused`]) and audited with the
//! kind's own event in the same transaction. A kind names only what is its own ([`Kind`]):
//! its ids, its store calls, its audit actions and details, its view; what granting does
//! (producing the copy, landing the change on the note) stays in the kind's module.
//!
//! [`lifecycle_refused`]: crate::routes::rights::lifecycle_refused

use std::future::Future;

use axum::Json;
use chrono::{DateTime, Utc};
use domain::{AuditAction, AuditObject, PatientId};
use store::crypto::Keyring;
use store::{StoreError, TenantTx};

use crate::extract::{Ctx, Guard};
use crate::routes::rights::reason_input;
use crate::{AppError, AppState};

/// A step of the shared lifecycle that takes a written reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Extend the deadline once by 30 days.
    Extend,
    /// Deny the request.
    Deny,
}

/// One kind of patient request as the routes see it.
pub(crate) trait Kind {
    /// The request's id.
    type Id: Copy + Send + Sync;
    /// The request as the store lists it.
    type Summary: Send;
    /// Why the store refused a step.
    type Refusal: Send;
    /// The request as the API shows it.
    type View;
    /// The audit action of an extension.
    const EXTEND: AuditAction;
    /// The audit action of a denial.
    const DENY: AuditAction;

    /// The store's `step` on request `id` with the checked `reason`.
    fn step(
        tx: &mut TenantTx,
        keyring: &Keyring,
        id: Self::Id,
        step: Step,
        reason: &str,
    ) -> impl Future<Output = Result<Result<Self::Summary, Self::Refusal>, StoreError>> + Send;

    /// How a refusal answers.
    fn refused(r: Self::Refusal) -> AppError;

    /// The patient, the object and the details (ids and states only) of a step's audit event.
    fn event(s: &Self::Summary) -> (PatientId, AuditObject, serde_json::Value);

    /// The view of `s` at `now`.
    fn view(s: &Self::Summary, now: DateTime<Utc>) -> Self::View;
}

/// `step` on request `id` of kind `K` with the written `reason` (checked: 1–2000 bytes),
/// audited with the kind's event: the one path of the API and the web pages. The caller
/// commits.
pub(crate) async fn step<K: Kind>(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: K::Id,
    step: Step,
    reason: &str,
) -> Result<K::Summary, AppError> {
    let reason = reason_input(reason)?;
    let s = K::step(tx, keyring, id, step, &reason)
        .await?
        .map_err(K::refused)?;
    let (patient, object, details) = K::event(&s);
    let action = match step {
        Step::Extend => K::EXTEND,
        Step::Deny => K::DENY,
    };
    tx.audit_details(action, Some(patient), Some(object), Some(details))
        .await?;
    Ok(s)
}

/// A step's API answer: done in the request's transaction, committed, the view at the
/// transaction's time.
pub(crate) async fn answer<K: Kind, G: Guard>(
    state: &AppState,
    ctx: Ctx<G>,
    id: K::Id,
    s: Step,
    reason: &str,
) -> Result<Json<K::View>, AppError> {
    let mut tx = ctx.tx;
    let now = tx.now();
    let done = step::<K>(&mut tx, state.store.keyring()?, id, s, reason).await?;
    tx.commit().await?;
    Ok(Json(K::view(&done, now)))
}
