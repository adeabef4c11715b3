//! AI providers (owners and admins): each provider's posture (vendor or self-hosted, the BAA
//! attestation by whom, when and which document, training disabled, retention, region,
//! enabled, and the gate's verdict), registering one, changing one, and the history of posture
//! changes from the practice's audit log — over the API's service steps
//! ([`server::actions::providers`]), its input rules ([`server::rules::providers`]) and the
//! same audit events (`ai_provider.list`, `ai_provider.register`, `ai_provider.update`).
//! API keys are write-only: the page says whether one is stored, never shows it.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use domain::{PracticeId, ProviderId};
use serde::Deserialize;
use server::extract::Manage;
use server::rules::providers as rules;
use server::{AppError, AppState};
use store::TenantTx;
use store::providers::{Provider, ProviderChange};

use super::{Chrome, Member, chrome, html, html_status, path_id, redirect};
use crate::{Assets, WebError, assets};

/// One provider as shown.
#[allow(
    clippy::struct_excessive_bools,
    reason = "a view model: each flag is one fact of the posture the page shows"
)]
pub(crate) struct ProviderRow {
    id: ProviderId,
    label: String,
    adapter: String,
    purpose: String,
    base_url: String,
    model: String,
    self_hosted: bool,
    /// Cleared as self-hosted because its host is one the operator listed.
    operator_host: bool,
    vendor: String,
    has_baa: bool,
    baa_by: String,
    baa_at: String,
    baa_doc: String,
    training_disabled: bool,
    retention: String,
    region: String,
    has_api_key: bool,
    enabled: bool,
    gate: &'static str,
    /// Why this provider's change was refused, when it was.
    change_error: Option<String>,
}

/// One adapter in the register form's list.
pub(crate) struct AdapterOption {
    value: &'static str,
    purpose: &'static str,
    selected: bool,
}

/// One posture change from the audit log.
pub(crate) struct HistoryRow {
    when: String,
    actor: String,
    provider: String,
    what: String,
}

/// The register form as typed.
#[derive(Deserialize, Default)]
pub(crate) struct RegisterForm {
    #[serde(default)]
    label: String,
    #[serde(default)]
    adapter: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    hosting: String,
    #[serde(default)]
    vendor: String,
    #[serde(default)]
    baa_document_ref: String,
    #[serde(default)]
    training_disabled: Option<String>,
    #[serde(default)]
    retention: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    enabled: Option<String>,
}

/// The change form as typed (prefilled with the current posture).
#[derive(Deserialize, Default)]
pub(crate) struct ChangeForm {
    #[serde(default)]
    label: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    hosting: String,
    #[serde(default)]
    vendor: String,
    #[serde(default)]
    attest_baa: String,
    #[serde(default)]
    withdraw_baa: Option<String>,
    #[serde(default)]
    training_disabled: Option<String>,
    #[serde(default)]
    retention: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    remove_api_key: Option<String>,
    #[serde(default)]
    enabled: Option<String>,
}

/// The AI providers page.
#[derive(Template)]
#[template(path = "providers.html")]
pub(crate) struct ProvidersPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    providers: Vec<ProviderRow>,
    history: Vec<HistoryRow>,
    adapters: Vec<AdapterOption>,
    form: RegisterForm,
    error: Option<String>,
    done: Option<&'static str>,
}

/// `?done=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DoneQuery {
    done: Option<String>,
}

fn done_message(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "registered" => Some("Provider registered."),
        "changed" => Some("Provider changed."),
        _ => None,
    }
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn row(
    p: Provider,
    change_error: Option<&(ProviderId, String)>,
    hosts: &server::assistant::OperatorHosts,
) -> ProviderRow {
    let gate = server::rules::providers::gate_verdict_with(&p, hosts);
    let operator_host = server::rules::providers::on_operator_host(&p, hosts);
    let change_error = change_error
        .filter(|(id, _)| *id == p.provider_id)
        .map(|(_, m)| m.clone());
    let (has_baa, baa_by, baa_at, baa_doc) = match &p.baa {
        Some(b) => (
            true,
            b.attested_by.to_string(),
            when(b.attested_at),
            b.document_ref.clone(),
        ),
        None => (false, String::new(), String::new(), String::new()),
    };
    ProviderRow {
        change_error,
        has_baa,
        baa_by,
        baa_at,
        baa_doc,
        id: p.provider_id,
        self_hosted: p.hosting == "self_hosted",
        operator_host,
        gate: match gate {
            "cleared" => "cleared",
            "disabled" => "refused: disabled",
            "no_baa" => "refused: vendor without a BAA",
            "training_enabled" => "refused: training not disabled",
            "not_local" => "refused: self-hosted but not local",
            _ => "refused: unusable address",
        },
        label: p.label,
        adapter: p.adapter,
        purpose: p.purpose,
        base_url: p.base_url,
        model: p.model,
        vendor: p.vendor,
        training_disabled: p.training_disabled,
        retention: p.retention,
        region: p.region,
        has_api_key: p.has_api_key,
        enabled: p.enabled,
    }
}

fn history_what(action: &str, details: Option<&serde_json::Value>) -> String {
    if action == "ai_provider.register" {
        return "registered".into();
    }
    let fields: Vec<&str> = details
        .and_then(|d| d.get("changed"))
        .and_then(serde_json::Value::as_str)
        .map(|s| {
            s.split(':')
                .filter(|f| !f.is_empty() && *f != "none")
                .collect()
        })
        .unwrap_or_default();
    if fields.is_empty() {
        "saved without changes".into()
    } else {
        format!("changed {}", fields.join(", "))
    }
}

/// The page's data: the providers (audited `ai_provider.list`) and the posture history.
async fn page(
    tx: &mut TenantTx,
    hosts: &server::assistant::OperatorHosts,
    form: RegisterForm,
    error: Option<String>,
    change_error: Option<(ProviderId, String)>,
    done: Option<&'static str>,
) -> Result<ProvidersPage, WebError> {
    let practice_id = tx.practice();
    let chrome = chrome(tx).await?;
    let list = server::actions::providers::list_providers(tx).await?;
    let labels: Vec<(uuid::Uuid, String)> = list
        .iter()
        .map(|p| (p.provider_id.as_uuid(), p.label.clone()))
        .collect();
    let history = store::providers::history(tx)
        .await?
        .into_iter()
        .map(|h| HistoryRow {
            when: when(h.occurred_at),
            actor: h.actor_id.map(|a| a.to_string()).unwrap_or_default(),
            provider: h
                .object_id
                .and_then(|id| labels.iter().find(|(i, _)| *i == id))
                .map(|(_, l)| l.clone())
                .unwrap_or_default(),
            what: history_what(&h.action, h.details.as_ref()),
        })
        .collect();
    Ok(ProvidersPage {
        assets: assets(),
        chrome: Some(chrome),
        practice_id,
        providers: list
            .into_iter()
            .map(|p| row(p, change_error.as_ref(), hosts))
            .collect(),
        history,
        adapters: store::providers::ADAPTERS
            .iter()
            .map(|(value, purpose)| AdapterOption {
                value,
                purpose,
                selected: form.adapter == *value,
            })
            .collect(),
        form,
        error,
        done,
    })
}

/// `GET /app/practices/{practice_id}/ai-providers`: the providers, the history, the forms.
pub(crate) async fn providers_page(
    axum::extract::State(state): axum::extract::State<AppState>,
    Member(ctx): Member<Manage>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let p = page(
        &mut tx,
        &state.assistant.operator_hosts,
        RegisterForm {
            hosting: "self_hosted".into(),
            enabled: Some("on".into()),
            ..RegisterForm::default()
        },
        None,
        None,
        done_message(q.done.as_deref()),
    )
    .await?;
    tx.commit().await?;
    html(&p)
}

/// `POST /app/practices/{practice_id}/ai-providers`: registers a provider as the API does
/// ([`server::rules::providers::provider_input`],
/// [`server::actions::providers::register_provider`], audited `ai_provider.register`), then
/// the page (`303`). Refused: the page again (`400`) with what was typed (never the key),
/// nothing registered.
pub(crate) async fn provider_register(
    axum::extract::State(state): axum::extract::State<AppState>,
    Member(ctx): Member<Manage>,
    Form(form): Form<RegisterForm>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let input = rules::provider_input(&rules::ProviderForm {
        label: form.label.clone(),
        adapter: form.adapter.clone(),
        base_url: form.base_url.clone(),
        model: form.model.clone(),
        hosting: form.hosting.clone(),
        vendor: form.vendor.clone(),
        baa_document_ref: form.baa_document_ref.clone(),
        training_disabled: form.training_disabled.is_some(),
        retention: form.retention.clone(),
        region: form.region.clone(),
        api_key: form.api_key.clone(),
        enabled: form.enabled.is_some(),
    });
    let e = match input {
        Ok(p) => {
            server::actions::providers::register_provider(&mut tx, state.store.keyring()?, &p)
                .await?;
            tx.commit().await?;
            return Ok(redirect(&format!(
                "/app/practices/{practice_id}/ai-providers?done=registered"
            )));
        }
        Err(e) => e,
    };
    let form = RegisterForm {
        api_key: String::new(),
        ..form
    };
    let p = page(
        &mut tx,
        &state.assistant.operator_hosts,
        form,
        Some(format!("Nothing was registered: {e}.")),
        None,
        None,
    )
    .await?;
    tx.commit().await?;
    html_status(e.status(), &p)
}

fn change_input(form: &ChangeForm) -> Result<ProviderChange, AppError> {
    let withdraw = form.withdraw_baa.is_some();
    let attest = form.attest_baa.trim();
    if withdraw && !attest.is_empty() {
        return Err(AppError::Invalid(
            "attest_baa: cannot attest and withdraw at once".into(),
        ));
    }
    let remove_key = form.remove_api_key.is_some();
    if remove_key && !form.api_key.trim().is_empty() {
        return Err(AppError::Invalid(
            "api_key: cannot replace and remove at once".into(),
        ));
    }
    Ok(ProviderChange {
        label: Some(rules::label(&form.label)?),
        base_url: Some(rules::base_url(&form.base_url)?),
        model: Some(rules::model(&form.model)?),
        hosting: Some(rules::hosting(&form.hosting)?),
        vendor: Some(rules::vendor(&form.vendor)?),
        baa_document_ref: if withdraw {
            Some(None)
        } else if attest.is_empty() {
            None
        } else {
            Some(Some(rules::document_ref(attest)?))
        },
        training_disabled: Some(form.training_disabled.is_some()),
        retention: Some(rules::retention(&form.retention)?),
        region: Some(rules::region(&form.region)?),
        api_key: if remove_key {
            Some(None)
        } else if form.api_key.trim().is_empty() {
            None
        } else {
            Some(Some(rules::api_key(&form.api_key)?))
        },
        enabled: Some(form.enabled.is_some()),
    })
}

/// `POST /app/practices/{practice_id}/ai-providers/{provider_id}`: changes the provider's
/// posture as the API does ([`server::actions::providers::change_provider`], audited
/// `ai_provider.update` naming the changed fields), then the page (`303`). Refused: the page
/// again (`400`) with the message next to that provider, nothing changed; a provider of
/// another practice is `404`.
pub(crate) async fn provider_change(
    axum::extract::State(state): axum::extract::State<AppState>,
    Member(ctx): Member<Manage>,
    Path((_, provider)): Path<(String, String)>,
    Form(form): Form<ChangeForm>,
) -> Result<Response, WebError> {
    let provider: ProviderId = path_id(&provider, "ai provider")?;
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let e = match change_input(&form) {
        Ok(c) => {
            server::actions::providers::change_provider(
                &mut tx,
                state.store.keyring()?,
                provider,
                &c,
            )
            .await?;
            tx.commit().await?;
            return Ok(redirect(&format!(
                "/app/practices/{practice_id}/ai-providers?done=changed"
            )));
        }
        Err(e) => e,
    };
    // Unknown provider first: a refusal must not reveal another practice's provider.
    if store::providers::get(&mut tx, provider).await?.is_none() {
        return Err(AppError::NotFound("ai provider").into());
    }
    let p = page(
        &mut tx,
        &state.assistant.operator_hosts,
        RegisterForm {
            hosting: "self_hosted".into(),
            enabled: Some("on".into()),
            ..RegisterForm::default()
        },
        None,
        Some((provider, format!("Nothing was changed: {e}."))),
        None,
    )
    .await?;
    tx.commit().await?;
    html_status(StatusCode::BAD_REQUEST, &p)
}
