//! Identity: the password policy, second factors (TOTP, recovery codes; passkeys in
//! [`crate::routes`]), sign-in throttling and step-up. TOTP secrets and the lookup-tag key are
//! installation secrets, sealed by the `crypto` crate under the installation data key (through
//! `store::installation`); nothing here holds a key.
//!
//! # Guarantees
//! - A session created by a password alone can only enroll or present a second factor; every
//!   practice route needs a session whose second factor is done (req AU-01).
//! - Every authentication step hands out a new token and ends the old one (req AC-12).
//! - Changing credentials or second factors, and granting roles, needs a second factor
//!   presented within [`Identity::step_up_window`] (5 minutes by default).
//! - TOTP codes are single-use (req AU-02); recovery codes are single-use and stored hashed.
//! - Failed sign-ins are throttled per account and per address without locking anyone out
//!   (req AU-03), with one generic answer and the same work for unknown emails (req AU-04).

mod policy;
pub mod quota;
pub mod recovery;
mod throttle;
pub mod totp;

use std::net::IpAddr;

pub use policy::{PasswordPolicy, PasswordRejection};
pub use quota::{OverQuota, QuotaConfig, QuotaKind, Quotas};
pub use throttle::{FailOutcome, RetryAfter, Throttle, ThrottleConfig};

use chrono::Duration;

/// Identity settings and state shared by the routes.
#[derive(Debug)]
pub struct Identity {
    /// The password policy for new passwords.
    pub policy: PasswordPolicy,
    /// Sign-in throttling.
    pub throttle: Throttle,
    /// The public client pages' limit per address (the same mechanism: booking, intake and
    /// manage links; [`ThrottleConfig::client_pages`]).
    pub client_pages: Throttle,
    /// The issuer shown in authenticator apps.
    pub issuer: String,
    /// How recent a second factor must be for sensitive changes.
    pub step_up_window: Duration,
    /// Whether the client address comes from the proxy's `X-Forwarded-For` (only with
    /// `--behind-proxy`, where the listener is loopback-only and the proxy is trusted).
    pub trust_forwarded_for: bool,
    /// WebAuthn relying party (`None` disables passkeys).
    pub webauthn: Option<webauthn_rs::Webauthn>,
    /// Per-user quotas on patient lookups and record exports (req OPS-06).
    pub quotas: Quotas,
}

impl Identity {
    /// Settings for a server with the given passkey relying party.
    #[must_use]
    pub fn new(webauthn: Option<webauthn_rs::Webauthn>) -> Self {
        Self {
            policy: PasswordPolicy::default(),
            throttle: Throttle::new(ThrottleConfig::default()),
            client_pages: Throttle::new(ThrottleConfig::client_pages()),
            issuer: "Chartroom".to_owned(),
            // Step-up freshness: 5 minutes.
            step_up_window: Duration::minutes(5),
            trust_forwarded_for: false,
            webauthn,
            quotas: Quotas::default(),
        }
    }
}

/// Counts a request of `kind` against the acting member's quota (req OPS-06), before the
/// request reads anything. Past the quota: the refusal is audited on its own transaction
/// (`access.denied`, reason `rate_limit`, the kind as its route), the first one of a window
/// raises the `chartroom::alert` hook (practice, user and kind: ids only), and the request is
/// answered `429` `RATE-0001` with `Retry-After`. The one path of the API and the web pages.
///
/// # Errors
/// [`AppError::RateLimited`] past the quota.
pub async fn admit_quota(
    state: &crate::AppState,
    tx: &store::TenantTx,
    kind: QuotaKind,
) -> Result<(), crate::AppError> {
    let (practice, actor, now) = (tx.practice(), tx.actor(), tx.now());
    let Err(over) = state.identity.quotas.take(practice, actor, kind, now) else {
        return Ok(());
    };
    let denial = store::audit::Denial {
        practice,
        actor,
        requested_patient: None,
        reason: "rate_limit",
        route: kind.as_str().to_owned(),
        request: tx.request(),
        at: now,
    };
    if let Err(e) = state.store.audit_denied(&denial).await {
        tracing::error!(error = %e, request = %tx.request(), "could not record a refusal over quota");
    }
    if over.first {
        tracing::warn!(
            target: "chartroom::alert",
            %practice,
            user = %actor,
            quota = kind.as_str(),
            "a member went past a quota on patient lookups or exports"
        );
    }
    Err(crate::AppError::RateLimited(kind.what(), over.retry_after))
}

/// The client of a request, for the audit trail and throttling: its address and user agent
/// (printable ASCII only, at most 200 characters, so nothing can inject into logs).
#[derive(Clone, Debug, Default)]
pub struct Client {
    /// The client address, when known.
    pub ip: Option<IpAddr>,
    /// The user agent.
    pub user_agent: Option<String>,
}

impl Client {
    /// Facts for an audit event's details: the address, and the user agent in the character
    /// set audit details allow ([`audit::event::detail_value_lossy`]; the full string stays on
    /// the session row).
    #[must_use]
    pub fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        if let Some(ip) = self.ip {
            m.insert("ip".into(), ip.to_string().into());
        }
        if let Some(ua) = self
            .user_agent
            .as_deref()
            .and_then(audit::event::detail_value_lossy)
        {
            m.insert("user_agent".into(), ua.into());
        }
        m
    }
}

/// The WebAuthn relying party for `origin` (e.g. `https://localhost:8443`): the RP id is the
/// origin's host.
pub fn relying_party(origin: &str) -> Result<webauthn_rs::Webauthn, String> {
    let url = webauthn_rs::prelude::Url::parse(origin).map_err(|e| e.to_string())?;
    let host = url.host_str().ok_or("the origin has no host")?.to_owned();
    webauthn_rs::WebauthnBuilder::new(&host, &url)
        .map_err(|e| e.to_string())?
        .rp_name("Chartroom")
        .build()
        .map_err(|e| e.to_string())
}
