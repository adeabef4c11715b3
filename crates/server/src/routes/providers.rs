//! The AI provider registry: owners and admins register providers and change their posture
//! (vendor or self-hosted, BAA attestation, training disabled, retention, region, enabled,
//! address, model, API key); clinicians, owners and admins list them. Every registration and
//! change is audited with the names of the fields that changed, never a value or the key.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::{AuditAction, AuditObject, ObjectKind, PracticeId, ProviderId, UserId};
use serde::{Deserialize, Serialize};
use store::providers::{NewProvider, Provider, ProviderChange};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::assistant::OperatorHosts;
use crate::extract::{ApiJson, ApiPath, ClinicalOrManage, Ctx, Manage};
use crate::{AppError, AppState};

type E = crate::views::ErrorBody;

/// The longest API key accepted.
pub const API_KEY_MAX: usize = 1024;

/// A provider to register.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderCreate {
    /// Label shown to staff (1–80 characters).
    label: String,
    /// `openai_transcription`, `openai_chat`, `anthropic_messages`, `bedrock_converse` or
    /// `aws_transcribe_medical`; the purpose follows from it.
    adapter: String,
    /// Base URL (`http`, `https` or `unix`, at most 500 characters, no credentials).
    base_url: String,
    /// Model name (1–200 characters).
    model: String,
    /// `vendor` or `self_hosted`.
    hosting: String,
    /// The vendor's or operator's name (1–120 characters).
    vendor: String,
    /// The BAA's document reference: the caller attests the BAA now.
    #[serde(default)]
    baa_document_ref: Option<String>,
    /// Whether the provider is barred from training on inputs.
    #[serde(default)]
    training_disabled: bool,
    /// Retention stated by the vendor (at most 200 characters).
    #[serde(default)]
    retention: String,
    /// Processing region (at most 80 characters).
    #[serde(default)]
    region: String,
    /// API key (stored encrypted, never returned).
    #[serde(default)]
    api_key: Option<String>,
    /// Switched on (default true).
    #[serde(default = "yes")]
    enabled: bool,
}

const fn yes() -> bool {
    true
}

/// A posture change (fields left out stay as they are).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderPatch {
    label: Option<String>,
    base_url: Option<String>,
    model: Option<String>,
    /// `vendor` or `self_hosted`.
    hosting: Option<String>,
    vendor: Option<String>,
    /// Attest a BAA now (the caller, now, this document reference).
    attest_baa: Option<String>,
    /// Withdraw the BAA attestation.
    #[serde(default)]
    withdraw_baa: bool,
    training_disabled: Option<bool>,
    retention: Option<String>,
    region: Option<String>,
    /// Replace the API key.
    api_key: Option<String>,
    /// Remove the API key.
    #[serde(default)]
    remove_api_key: bool,
    enabled: Option<bool>,
}

/// A BAA attestation.
#[derive(Serialize, ToSchema)]
pub(crate) struct BaaView {
    attested_by: UserId,
    attested_at: chrono::DateTime<chrono::Utc>,
    document_ref: String,
}

/// A provider and its posture (never its key).
#[derive(Serialize, ToSchema)]
#[schema(as = AiProviderView)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "an API view: each flag is one fact of the posture"
)]
pub(crate) struct ProviderView {
    provider_id: ProviderId,
    label: String,
    adapter: String,
    /// `transcription` or `drafting`.
    purpose: String,
    base_url: String,
    model: String,
    /// `vendor` or `self_hosted`.
    hosting: String,
    vendor: String,
    baa: Option<BaaView>,
    training_disabled: bool,
    retention: String,
    region: String,
    has_api_key: bool,
    enabled: bool,
    /// The gate's verdict: `cleared`, or why it refuses (`disabled`, `no_baa`,
    /// `training_enabled`, `not_local`, `bad_url`), judged with the installation's own hosts
    /// (`--ai-self-hosted-host`).
    gate: String,
    /// Whether it is cleared as self-hosted because its host is one the operator listed.
    operator_host: bool,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

/// The gate's verdict on a provider, as a stable word, judged without the installation's own
/// hosts (the posture as recorded in the audit log; [`gate_verdict_with`] for the gate as
/// the calls meet it).
#[must_use]
pub fn gate_verdict(p: &Provider) -> &'static str {
    gate_verdict_with(p, &OperatorHosts::default())
}

/// Whether the gate clears `p` as self-hosted because of a host the operator listed.
#[must_use]
pub fn on_operator_host(p: &Provider, hosts: &OperatorHosts) -> bool {
    hosts
        .gate(&p.posture())
        .is_ok_and(|c| c.local() == Some(egress::Local::OperatorHost))
}

/// The gate's verdict on a provider, as a stable word, with the operator's own hosts.
#[must_use]
pub fn gate_verdict_with(p: &Provider, hosts: &OperatorHosts) -> &'static str {
    match hosts.gate(&p.posture()) {
        Ok(_) => "cleared",
        Err(egress::Refusal::Disabled) => "disabled",
        Err(egress::Refusal::NoBaa) => "no_baa",
        Err(egress::Refusal::TrainingEnabled) => "training_enabled",
        Err(egress::Refusal::NotLocal) => "not_local",
        Err(egress::Refusal::BadUrl) => "bad_url",
    }
}

impl ProviderView {
    fn new(p: Provider, hosts: &OperatorHosts) -> Self {
        let gate = gate_verdict_with(&p, hosts).to_owned();
        let operator_host = on_operator_host(&p, hosts);
        Self {
            operator_host,
            provider_id: p.provider_id,
            label: p.label,
            adapter: p.adapter,
            purpose: p.purpose,
            base_url: p.base_url,
            model: p.model,
            hosting: p.hosting,
            vendor: p.vendor,
            baa: p.baa.map(|b| BaaView {
                attested_by: b.attested_by,
                attested_at: b.attested_at,
                document_ref: b.document_ref,
            }),
            training_disabled: p.training_disabled,
            retention: p.retention,
            region: p.region,
            has_api_key: p.has_api_key,
            enabled: p.enabled,
            gate,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

fn invalid(message: &str) -> AppError {
    AppError::Invalid(message.to_owned())
}

/// Checks a provider's label (1–80 characters, one line).
pub fn label(s: &str) -> Result<String, AppError> {
    Ok(domain::values::single_line("label", s, 80)?)
}

/// Checks an adapter name.
pub fn adapter(s: &str) -> Result<String, AppError> {
    store::providers::purpose_of(s)
        .map(|_| s.to_owned())
        .ok_or_else(|| invalid("adapter: must be one of openai_transcription, openai_chat, anthropic_messages, bedrock_converse, aws_transcribe_medical"))
}

/// Checks a base URL: `http`, `https` or `unix`, with a host (or a socket path), no
/// credentials, query or fragment, at most 500 characters.
pub fn base_url(s: &str) -> Result<String, AppError> {
    let s = domain::values::single_line("base_url", s, 500)?;
    let u =
        url::Url::parse(&s).map_err(|_| invalid("base_url: must be an http, https or unix URL"))?;
    let ok_scheme = match u.scheme() {
        "http" | "https" => u.host().is_some(),
        "unix" => !u.path().is_empty() && u.path() != "/",
        _ => false,
    };
    if !ok_scheme {
        return Err(invalid("base_url: must be an http, https or unix URL"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(invalid(
            "base_url: must not carry credentials (use the API key)",
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(invalid("base_url: must not have a query or fragment"));
    }
    Ok(s)
}

/// Checks a model name (1–200 characters, one line).
pub fn model(s: &str) -> Result<String, AppError> {
    Ok(domain::values::single_line("model", s, 200)?)
}

/// Checks a hosting kind.
pub fn hosting(s: &str) -> Result<String, AppError> {
    match s {
        "vendor" | "self_hosted" => Ok(s.to_owned()),
        _ => Err(invalid("hosting: must be vendor or self_hosted")),
    }
}

/// Checks a vendor name (1–120 characters, one line).
pub fn vendor(s: &str) -> Result<String, AppError> {
    Ok(domain::values::single_line("vendor", s, 120)?)
}

/// Checks a BAA document reference (1–200 characters, one line).
pub fn document_ref(s: &str) -> Result<String, AppError> {
    Ok(domain::values::single_line("baa_document_ref", s, 200)?)
}

fn optional_line(field: &'static str, s: &str, max: usize) -> Result<String, AppError> {
    if s.trim().is_empty() {
        return Ok(String::new());
    }
    Ok(domain::values::single_line(field, s, max)?)
}

/// Checks a retention statement (empty, or one line of at most 200 characters).
pub fn retention(s: &str) -> Result<String, AppError> {
    optional_line("retention", s, 200)
}

/// Checks a region (empty, or one line of at most 80 characters).
pub fn region(s: &str) -> Result<String, AppError> {
    optional_line("region", s, 80)
}

/// Checks an API key: one line of printable ASCII, at most [`API_KEY_MAX`] bytes.
pub fn api_key(s: &str) -> Result<Zeroizing<String>, AppError> {
    let t = s.trim();
    if t.is_empty() || t.len() > API_KEY_MAX || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "api_key: must be printable characters without spaces, at most 1024",
        ));
    }
    Ok(Zeroizing::new(t.to_owned()))
}

/// The text fields of a registration, as both faces receive them.
#[derive(Debug, Default, Clone)]
pub struct ProviderForm {
    /// Label.
    pub label: String,
    /// Adapter.
    pub adapter: String,
    /// Base URL.
    pub base_url: String,
    /// Model.
    pub model: String,
    /// `vendor` or `self_hosted`.
    pub hosting: String,
    /// Vendor name.
    pub vendor: String,
    /// BAA document reference (empty: none).
    pub baa_document_ref: String,
    /// Training disabled.
    pub training_disabled: bool,
    /// Retention.
    pub retention: String,
    /// Region.
    pub region: String,
    /// API key (empty: none).
    pub api_key: String,
    /// Enabled.
    pub enabled: bool,
}

/// Checks a registration (shared with the web pages, [`crate::rules::providers`]).
pub fn provider_input(f: &ProviderForm) -> Result<NewProvider, AppError> {
    Ok(NewProvider {
        label: label(&f.label)?,
        adapter: adapter(&f.adapter)?,
        base_url: base_url(&f.base_url)?,
        model: model(&f.model)?,
        hosting: hosting(&f.hosting)?,
        vendor: vendor(&f.vendor)?,
        baa_document_ref: if f.baa_document_ref.trim().is_empty() {
            None
        } else {
            Some(document_ref(&f.baa_document_ref)?)
        },
        training_disabled: f.training_disabled,
        retention: retention(&f.retention)?,
        region: region(&f.region)?,
        api_key: if f.api_key.trim().is_empty() {
            None
        } else {
            Some(api_key(&f.api_key)?)
        },
        enabled: f.enabled,
    })
}

fn change_input(p: &ProviderPatch) -> Result<ProviderChange, AppError> {
    if p.withdraw_baa && p.attest_baa.is_some() {
        return Err(invalid("attest_baa: cannot attest and withdraw at once"));
    }
    if p.remove_api_key && p.api_key.is_some() {
        return Err(invalid("api_key: cannot replace and remove at once"));
    }
    Ok(ProviderChange {
        label: p.label.as_deref().map(label).transpose()?,
        base_url: p.base_url.as_deref().map(base_url).transpose()?,
        model: p.model.as_deref().map(model).transpose()?,
        hosting: p.hosting.as_deref().map(hosting).transpose()?,
        vendor: p.vendor.as_deref().map(vendor).transpose()?,
        baa_document_ref: if p.withdraw_baa {
            Some(None)
        } else {
            p.attest_baa
                .as_deref()
                .map(document_ref)
                .transpose()?
                .map(Some)
        },
        training_disabled: p.training_disabled,
        retention: p.retention.as_deref().map(retention).transpose()?,
        region: p.region.as_deref().map(region).transpose()?,
        api_key: if p.remove_api_key {
            Some(None)
        } else {
            p.api_key.as_deref().map(api_key).transpose()?.map(Some)
        },
        enabled: p.enabled,
    })
}

/// The practice's AI providers and their posture (clinicians, owners and admins).
#[utoipa::path(get, path = "/api/v1/practices/{practice_id}/ai-providers", tag = "ai providers",
    params(("practice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<ProviderView>), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn ai_provider_list(
    State(state): State<AppState>,
    ctx: Ctx<ClinicalOrManage>,
    ApiPath(_): ApiPath<PracticeId>,
) -> Result<Json<Vec<ProviderView>>, AppError> {
    let mut tx = ctx.tx;
    let providers = list_providers(&mut tx).await?;
    tx.commit().await?;
    let hosts = &state.assistant.operator_hosts;
    Ok(Json(
        providers
            .into_iter()
            .map(|p| ProviderView::new(p, hosts))
            .collect(),
    ))
}

/// Registers an AI provider (owners and admins). A `baa_document_ref` records the caller's
/// BAA attestation now.
#[utoipa::path(post, path = "/api/v1/practices/{practice_id}/ai-providers", tag = "ai providers",
    params(("practice_id" = String, Path, format = Uuid)), request_body = ProviderCreate,
    responses((status = 201, body = ProviderView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn ai_provider_register(
    State(state): State<AppState>,
    ctx: Ctx<Manage>,
    ApiPath(_): ApiPath<PracticeId>,
    ApiJson(req): ApiJson<ProviderCreate>,
) -> Result<(StatusCode, Json<ProviderView>), AppError> {
    let form = ProviderForm {
        label: req.label,
        adapter: req.adapter,
        base_url: req.base_url,
        model: req.model,
        hosting: req.hosting,
        vendor: req.vendor,
        baa_document_ref: req.baa_document_ref.unwrap_or_default(),
        training_disabled: req.training_disabled,
        retention: req.retention,
        region: req.region,
        api_key: req.api_key.unwrap_or_default(),
        enabled: req.enabled,
    };
    let p = provider_input(&form)?;
    let mut tx = ctx.tx;
    let p = register_provider(&mut tx, state.store.keyring()?, &p).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(ProviderView::new(p, &state.assistant.operator_hosts)),
    ))
}

/// Changes an AI provider's posture (owners and admins). `attest_baa` records the caller's
/// attestation now; `withdraw_baa` removes it.
#[utoipa::path(patch, path = "/api/v1/practices/{practice_id}/ai-providers/{provider_id}", tag = "ai providers",
    params(("practice_id" = String, Path, format = Uuid), ("provider_id" = String, Path, format = Uuid)),
    request_body = ProviderPatch,
    responses((status = 200, body = ProviderView), (status = 400, body = E), (status = 401, body = E), (status = 403, body = E), (status = 404, body = E)))]
pub(crate) async fn ai_provider_change(
    State(state): State<AppState>,
    ctx: Ctx<Manage>,
    ApiPath((_, id)): ApiPath<(PracticeId, ProviderId)>,
    ApiJson(req): ApiJson<ProviderPatch>,
) -> Result<Json<ProviderView>, AppError> {
    let c = change_input(&req)?;
    let mut tx = ctx.tx;
    let p = change_provider(&mut tx, state.store.keyring()?, id, &c).await?;
    tx.commit().await?;
    Ok(Json(ProviderView::new(p, &state.assistant.operator_hosts)))
}

fn posture_flags(p: &Provider) -> serde_json::Value {
    serde_json::json!({
        "adapter": p.adapter,
        "hosting": p.hosting,
        "baa": p.baa.is_some(),
        "training_disabled": p.training_disabled,
        "enabled": p.enabled,
        "api_key": p.has_api_key,
        "gate": gate_verdict(p),
    })
}

/// Registers a provider (rules checked with [`provider_input`]; the caller checked the owner
/// or admin role, RLS checks it again) and audits `ai_provider.register` with its posture
/// flags: the one path of the API and the web pages. The caller commits.
pub async fn register_provider(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    p: &NewProvider,
) -> Result<Provider, AppError> {
    let p = store::providers::register(tx, keyring, p).await?;
    tx.audit_details(
        AuditAction::AiProviderRegister,
        None,
        Some(AuditObject::new(
            ObjectKind::AiProvider,
            p.provider_id.as_uuid(),
        )),
        Some(posture_flags(&p)),
    )
    .await?;
    Ok(p)
}

/// Changes a provider and audits `ai_provider.update` naming the fields that changed
/// (`changed`: names joined by `:`, or `none`; and the posture flags after it), never a value or the key: the one path of the API and the web
/// pages. `404` for a provider not of this practice. The caller commits.
pub async fn change_provider(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    id: ProviderId,
    c: &ProviderChange,
) -> Result<Provider, AppError> {
    let changed = store::providers::change(tx, keyring, id, c)
        .await?
        .ok_or(AppError::NotFound("ai provider"))?;
    let mut details = posture_flags(&changed.provider);
    if let Some(m) = details.as_object_mut() {
        // Field names joined by `:` (audit detail values are single machine strings).
        let fields = if changed.fields.is_empty() {
            "none".to_owned()
        } else {
            changed.fields.join(":")
        };
        m.insert("changed".into(), serde_json::Value::String(fields));
    }
    tx.audit_details(
        AuditAction::AiProviderUpdate,
        None,
        Some(AuditObject::new(ObjectKind::AiProvider, id.as_uuid())),
        Some(details),
    )
    .await?;
    Ok(changed.provider)
}

/// The practice's providers, audited `ai_provider.list` with how many were read: the one path
/// of the API and the web pages. The caller commits.
pub async fn list_providers(tx: &mut store::TenantTx) -> Result<Vec<Provider>, AppError> {
    let providers = store::providers::list(tx).await?;
    tx.audit_details(
        AuditAction::AiProviderList,
        None,
        None,
        Some(serde_json::json!({ "providers": providers.len() })),
    )
    .await?;
    Ok(providers)
}
