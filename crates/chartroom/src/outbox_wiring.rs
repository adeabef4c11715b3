//! `serve`'s messaging wiring: the SMS and email adapters and the webhook verifiers, built
//! once from the deployment's integrations file, for the integrations the subprocessor
//! registry allows now ([`egress::registry::Registry::allowed_hosts`]: a new PHI-touching
//! vendor only after its notice period). An integration whose hosts are not all allowed yet is
//! left out (logged), so nothing calls a vendor before the practices were told.
//!
//! Email goes through the first active email integration: the practice's own SMTP relay
//! (`vendor = "smtp"`, the self-hosted default: not a subprocessor unless `hosting` names a
//! vendor; see `smtp_mailer` for how its base URL picks the connection's protection) or
//! Resend. SMS through Telnyx or Twilio. A second integration of a kind is not used.
//!
//! Web Push goes through the allowed `push`/`webpush` integration ([`web_push`]): content-free
//! messages to the push services its hosts name (the browser vendors', plus
//! `overrides.hosts`), signed with the installation's VAPID key — kept sealed with the
//! installation secrets (`store::Store::vapid_key`, made on first use), or read from
//! `credentials.vapid_private_key_file` when the operator names one (URL-safe base64 of the
//! 32-byte P-256 scalar). The VAPID subject is `mailto:` + `sender.email_from` when given, else
//! the public origin.
//!
//! Secrets are read from the files the integrations file names (never from the file itself);
//! errors name the integration and the key, never a secret.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use egress::ApiKey;
use egress::registry::{Integration, Kind, Registry, Vendor};
use egress::send::{EmailAddress, PhoneNumber, WebhookVerifier};
use server::jobs::outbox::{Channels, OwnContacts};

/// What the outbox job and the webhook routes get.
#[derive(Default)]
pub(crate) struct Messaging {
    /// The adapters.
    pub channels: Channels,
    /// What the scanner lets through of the practice's own (the sending number and address).
    pub own: OwnContacts,
    /// The webhook verifiers, one per vendor with a configured webhook secret or key.
    pub verifiers: Vec<Arc<dyn WebhookVerifier>>,
}

fn secret(i: &Integration, key: &'static str, path: Option<&Path>) -> anyhow::Result<String> {
    let path = path.with_context(|| format!("integration {}: {key} is required", i.id()))?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("integration {}: {key} could not be read", i.id()))?;
    Ok(text.trim().to_owned())
}

fn base(i: &Integration, default: &str) -> anyhow::Result<url::Url> {
    match &i.base_url {
        Some(u) => Ok(u.clone()),
        None => url::Url::parse(default).context("the vendor's default URL"),
    }
}

fn callback(origin: &str, vendor: &str) -> anyhow::Result<url::Url> {
    url::Url::parse(&format!(
        "{}/webhooks/{vendor}",
        origin.trim_end_matches('/')
    ))
    .context("the public origin does not make a webhook URL")
}

fn sms_number(i: &Integration) -> anyhow::Result<PhoneNumber> {
    let n = i
        .sender
        .sms_number
        .as_deref()
        .with_context(|| format!("integration {}: sender.sms_number is required", i.id()))?;
    PhoneNumber::parse(n).map_err(|_| {
        anyhow::anyhow!(
            "integration {}: sender.sms_number is not an E.164 number",
            i.id()
        )
    })
}

fn email_from(i: &Integration) -> anyhow::Result<EmailAddress> {
    let a = i
        .sender
        .email_from
        .as_deref()
        .with_context(|| format!("integration {}: sender.email_from is required", i.id()))?;
    EmailAddress::parse(a).map_err(|_| {
        anyhow::anyhow!(
            "integration {}: sender.email_from is not an address",
            i.id()
        )
    })
}

/// Builds the adapters of the allowed SMS and email integrations (the first of each kind);
/// webhooks are called back on `public_origin`.
pub(crate) fn build(
    registry: &Registry,
    now: DateTime<Utc>,
    public_origin: &str,
) -> anyhow::Result<Messaging> {
    let allowed = registry.allowed_hosts(now);
    let mut out = Messaging::default();
    for i in registry.integrations().list() {
        if !matches!(i.kind, Kind::Sms | Kind::Email) {
            continue;
        }
        if !i.hosts().iter().all(|h| allowed.contains(h)) {
            tracing::warn!(integration = %i.id(), "an integration is not active yet (notice period): not used");
            continue;
        }
        match (i.kind, i.vendor) {
            (Kind::Sms, Vendor::Telnyx) if out.channels.sms.is_none() => {
                let from = sms_number(i)?;
                let own = outbound_phone(&from)?;
                let carrier = egress::telnyx::Telnyx::new(egress::telnyx::TelnyxConfig {
                    base_url: base(i, egress::telnyx::API_BASE)?,
                    api_key: ApiKey::new(secret(
                        i,
                        "api_key_file",
                        i.credentials.api_key_file.as_deref(),
                    )?),
                    sender: egress::telnyx::TelnyxSender::Number(from),
                    callback: callback(public_origin, egress::telnyx::VENDOR)?,
                    limits: egress::messaging_limits(),
                })
                .map_err(|e| anyhow::anyhow!("integration {}: {e}", i.id()))?;
                out.channels.sms = Some(Arc::new(carrier));
                out.own.phones.push(own);
                if let Some(path) = i.credentials.webhook_public_key_file.as_deref() {
                    let key = secret(i, "webhook_public_key_file", Some(path))?;
                    let v = egress::telnyx::TelnyxWebhooks::from_base64(&key)
                        .map_err(|e| anyhow::anyhow!("integration {}: {e}", i.id()))?;
                    out.verifiers.push(Arc::new(v));
                }
            }
            (Kind::Sms, Vendor::Twilio) if out.channels.sms.is_none() => {
                let from = sms_number(i)?;
                let own = outbound_phone(&from)?;
                let token = secret(i, "api_key_file", i.credentials.api_key_file.as_deref())?;
                let account = i.credentials.account.clone().with_context(|| {
                    format!("integration {}: credentials.account is required", i.id())
                })?;
                let carrier = egress::twilio::Twilio::new(egress::twilio::TwilioConfig {
                    base_url: base(i, egress::twilio::API_BASE)?,
                    account_sid: account,
                    auth: egress::twilio::TwilioAuth::AuthToken(ApiKey::new(token.clone())),
                    sender: egress::twilio::TwilioSender::Number(from),
                    callback: callback(public_origin, egress::twilio::VENDOR)?,
                    limits: egress::messaging_limits(),
                })
                .map_err(|e| anyhow::anyhow!("integration {}: {e}", i.id()))?;
                out.channels.sms = Some(Arc::new(carrier));
                out.own.phones.push(own);
                out.verifiers
                    .push(Arc::new(egress::twilio::TwilioWebhooks::new(ApiKey::new(
                        token,
                    ))));
            }
            (Kind::Email, Vendor::Resend) if out.channels.email.is_none() => {
                let from = email_from(i)?;
                out.own.emails.push(from.as_str().to_owned());
                let mailer = egress::resend::ResendMailer::new(
                    base(i, egress::resend::RESEND_API)?.as_str(),
                    ApiKey::new(secret(
                        i,
                        "api_key_file",
                        i.credentials.api_key_file.as_deref(),
                    )?),
                    from,
                    Duration::from_secs(30),
                )
                .map_err(|e| anyhow::anyhow!("integration {}: {e}", i.id()))?;
                out.channels.email = Some(Arc::new(mailer));
                if let Some(path) = i.credentials.webhook_secret_file.as_deref() {
                    let s = secret(i, "webhook_secret_file", Some(path))?;
                    let s = egress::resend::SvixSecret::parse(&s).map_err(|_| {
                        anyhow::anyhow!(
                            "integration {}: webhook_secret_file is not a whsec_ secret",
                            i.id()
                        )
                    })?;
                    out.verifiers
                        .push(Arc::new(egress::resend::ResendWebhook::new(s)));
                }
            }
            (Kind::Email, Vendor::Smtp) if out.channels.email.is_none() => {
                let mailer = smtp_mailer(i)?;
                out.own.emails.push(email_from(i)?.as_str().to_owned());
                out.channels.email = Some(Arc::new(mailer));
            }
            _ => tracing::warn!(integration = %i.id(),
                "a second messaging integration of a kind is not used (the first in the file is)"),
        }
    }
    Ok(out)
}

/// The SMTP mailer of an `email`/`smtp` integration. The relay is the base URL's host and
/// port: `smtps://` is TLS from the first byte (port 465 by default); `smtp://` is STARTTLS
/// (port 587 by default), except to a relay on a loopback address (the practice's own local
/// MTA: the message never leaves the host), which is plain SMTP. AUTH is
/// `credentials.account` with the password in `credentials.password_file` (both or neither);
/// DKIM is `sender.dkim_*`. Anything unusable refuses the start, naming the integration and
/// the key, never a value.
fn smtp_mailer(i: &Integration) -> anyhow::Result<egress::smtp::SmtpMailer> {
    use egress::smtp::{Dkim, DkimKey, SmtpConfig, SmtpMailer, SmtpSecurity};
    let id = i.id();
    let url = i
        .base_url
        .as_ref()
        .with_context(|| format!("integration {id}: base_url (smtp:// or smtps://) is required"))?;
    // `smtp:` is not a special scheme: its host is opaque text, an address included.
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .with_context(|| format!("integration {id}: base_url must name the relay's host"))?
        .to_owned();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    };
    let (security, default_port) = match url.scheme() {
        "smtps" => (SmtpSecurity::ImplicitTls, 465),
        "smtp" if loopback => (SmtpSecurity::PlainLoopbackOnly, 587),
        "smtp" => (SmtpSecurity::StartTls, 587),
        _ => {
            anyhow::bail!("integration {id}: base_url must be smtp:// (STARTTLS) or smtps:// (TLS)")
        }
    };
    if !matches!(url.path(), "" | "/") {
        anyhow::bail!("integration {id}: base_url must not carry a path");
    }
    let credentials = match (
        i.credentials.account.as_deref(),
        i.credentials.password_file.as_deref(),
    ) {
        (Some(user), Some(path)) => Some((
            user.to_owned(),
            ApiKey::new(secret(i, "password_file", Some(path))?),
        )),
        (None, None) => None,
        _ => anyhow::bail!(
            "integration {id}: credentials.account and credentials.password_file go together"
        ),
    };
    let dkim = match &i.sender.dkim {
        Some(d) => {
            let pem = secret(i, "sender.dkim_key_file", Some(&d.key_file))?;
            let key = DkimKey::from_pem(&pem)
                .map_err(|e| anyhow::anyhow!("integration {id}: sender.dkim_key_file: {e}"))?;
            Some(Dkim {
                selector: d.selector.clone(),
                domain: d.domain.clone(),
                key,
            })
        }
        None => None,
    };
    SmtpMailer::new(&SmtpConfig {
        host: bare.to_owned(),
        port: url.port().unwrap_or(default_port),
        security,
        credentials,
        sender: email_from(i)?,
        dkim,
        extra_roots_pem: Vec::new(),
        timeout: Duration::from_secs(30),
    })
    .map_err(|e| anyhow::anyhow!("integration {id}: {e}"))
}

fn outbound_phone(n: &PhoneNumber) -> anyhow::Result<egress::outbound::PracticePhone> {
    egress::outbound::PracticePhone::new(n.as_str())
        .map_err(|_| anyhow::anyhow!("the sending number is not an E.164 number"))
}

/// How long a push service keeps an undelivered update (RFC 8030 §5.2 `TTL`): a day; a
/// later one replaces it (`Topic`).
const PUSH_TTL: Duration = Duration::from_secs(24 * 3600);

/// The allowed Web Push integration's settings for the subscription routes, and its sender
/// for the outbox; `None` when there is none (or it is not active yet).
pub(crate) async fn web_push(
    store: &store::Store,
    registry: &Registry,
    now: DateTime<Utc>,
    public_origin: &str,
    clock: Arc<dyn domain::Clock>,
) -> anyhow::Result<Option<(server::PushSettings, Arc<dyn egress::send::PushSender>)>> {
    use base64::Engine as _;
    let allowed = registry.allowed_hosts(now);
    let Some(i) = registry
        .integrations()
        .list()
        .iter()
        .find(|i| i.kind == Kind::Push && i.vendor == Vendor::Webpush)
    else {
        return Ok(None);
    };
    let hosts: Vec<String> = i
        .hosts()
        .into_iter()
        .filter(|h| allowed.contains(h))
        .collect();
    if hosts.is_empty() {
        tracing::warn!(integration = %i.id(), "an integration is not active yet (notice period): not used");
        return Ok(None);
    }
    let vapid = match i.credentials.vapid_private_key_file.as_deref() {
        Some(path) => {
            let text = zeroize::Zeroizing::new(secret(i, "vapid_private_key_file", Some(path))?);
            let raw = zeroize::Zeroizing::new(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(text.trim_end_matches('='))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "integration {}: vapid_private_key_file is not URL-safe base64",
                            i.id()
                        )
                    })?,
            );
            egress::webpush::VapidKey::from_private_key(&raw)
                .map_err(|e| anyhow::anyhow!("integration {}: {e}", i.id()))?
        }
        None => store
            .vapid_key()
            .await
            .context("the installation's VAPID key")?,
    };
    let subject = match i.sender.email_from {
        Some(_) => format!("mailto:{}", email_from(i)?.as_str()),
        None => public_origin.trim_end_matches('/').to_owned(),
    };
    let settings = server::PushSettings {
        application_server_key: vapid.public_key_base64url(),
        hosts,
    };
    let sender = egress::webpush::WebPush::new(egress::webpush::WebPushConfig {
        vapid,
        subject,
        ttl: PUSH_TTL,
        urgency: egress::webpush::Urgency::Normal,
        clock,
        limits: egress::messaging_limits(),
    })
    .map_err(|e| {
        anyhow::anyhow!(
            "integration {}: {e} (set sender.email_from, or serve on an https origin)",
            i.id()
        )
    })?;
    Ok(Some((settings, Arc::new(sender))))
}

/// The outbox job's parts: the adapters, the practice's own contact points, the link origin.
pub(crate) type OutboxParts = (Channels, OwnContacts, egress::outbound::LinkOrigin);

/// `serve`'s messaging: the webhook routes (empty unless a vendor's webhook key or secret is
/// configured and the owner role is there to act on them) and the outbox job's parts (when an
/// SMS or email integration is active). Links in messages point at `--link-origin`, else at
/// the public origin.
pub(crate) fn wire(
    state: &server::AppState,
    owner: Option<&store::OwnerStore>,
    public_origin: &str,
    args: &crate::serve::ServeArgs,
    push: Option<Arc<dyn egress::send::PushSender>>,
) -> anyhow::Result<(axum::Router, Option<OutboxParts>)> {
    let link_origin = args.link_origin.as_deref();
    let mut messaging = build(
        &state.subprocessors.registry,
        state.clock.now(),
        public_origin,
    )?;
    messaging.channels.push = push;
    let links = egress::outbound::LinkOrigin::parse(link_origin.unwrap_or(public_origin))
        .map_err(|_| anyhow::anyhow!("--link-origin is not an https origin"))?;
    let webhooks = match owner {
        Some(owner) if !messaging.verifiers.is_empty() => {
            server::webhooks::router(server::webhooks::Webhooks::new(
                owner.clone(),
                state.clock.clone(),
                messaging.verifiers,
                url::Url::parse(public_origin).context("the public origin is not a URL")?,
            ))
        }
        _ => axum::Router::new(),
    };
    let outbox = messaging
        .channels
        .any()
        .then_some((messaging.channels, messaging.own, links));
    Ok((webhooks, outbox))
}
