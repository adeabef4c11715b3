//! The AI provider registry (`ai_provider`, `migrations/0024_scribe.sql`): which transcription
//! and drafting services a practice may call, and their posture — vendor or self-hosted, the
//! BAA attestation (who, when, which document), training disabled, retention, region, enabled.
//! [`posture`] is what `egress::gate` decides on before any AI call.
//!
//! # Guarantees
//! - Owners and admins register and change providers; any member of the practice may read
//!   them (RLS enforces both, the server narrows reading to clinicians, owners and admins).
//! - A BAA attestation is always the acting user's, at the transaction's time: nobody attests
//!   in someone else's name.
//! - The API key is a field ciphertext sealed with the practice's data key, bound to
//!   (practice, `ai_provider`, `api_key`, provider id); it is never returned by [`list`] or
//!   [`get`] (only whether there is one) and opened only by [`api_key`].
//! - These functions do not audit: the server's service steps do, naming the changed fields
//!   ([`Changed::fields`]), never a value.

use chrono::{DateTime, Utc};
use crypto::Keyring;
use domain::{ProviderId, UserId};
use serde::Serialize;

use crate::sealed_columns::{AI_PROVIDER, seal_field};
use crate::{StoreError, TenantTx};

/// The adapters a provider can use, with the purpose each serves.
pub const ADAPTERS: &[(&str, &str)] = &[
    ("openai_transcription", "transcription"),
    ("openai_chat", "drafting"),
    ("anthropic_messages", "drafting"),
    ("bedrock_converse", "drafting"),
    ("aws_transcribe_medical", "transcription"),
];

/// A BAA attestation on record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Baa {
    /// Who attested it.
    pub attested_by: UserId,
    /// When.
    pub attested_at: DateTime<Utc>,
    /// The document reference.
    pub document_ref: String,
}

/// A registered provider (never its API key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provider {
    /// Id.
    pub provider_id: ProviderId,
    /// Label shown to staff.
    pub label: String,
    /// One of [`ADAPTERS`].
    pub adapter: String,
    /// `transcription` or `drafting`.
    pub purpose: String,
    /// Base URL.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// `vendor` or `self_hosted`.
    pub hosting: String,
    /// The vendor's (or the operator's) name.
    pub vendor: String,
    /// The BAA attestation, if any.
    pub baa: Option<Baa>,
    /// Whether training on inputs is disabled.
    pub training_disabled: bool,
    /// What the provider keeps and for how long (free text, e.g. `zero retention`).
    pub retention: String,
    /// Where it processes data (e.g. `us-east-1`).
    pub region: String,
    /// Whether an API key is stored.
    pub has_api_key: bool,
    /// Whether the practice has it switched on.
    pub enabled: bool,
    /// Registered at.
    pub created_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
}

impl Provider {
    /// The posture the gate decides on.
    #[must_use]
    pub fn posture(&self) -> egress::ProviderPosture {
        egress::ProviderPosture {
            provider_id: Some(self.provider_id),
            label: self.label.clone(),
            base_url: self.base_url.clone(),
            model: self.model.clone(),
            hosting: if self.hosting == "self_hosted" {
                egress::Hosting::SelfHosted
            } else {
                egress::Hosting::Vendor
            },
            baa: self.baa.as_ref().map(|b| egress::gate::BaaAttestation {
                attested_by: b.attested_by,
                attested_at: b.attested_at,
                document_ref: b.document_ref.clone(),
            }),
            training_disabled: self.training_disabled,
            enabled: self.enabled,
        }
    }
}

/// A provider to register (values already checked by the caller's rules).
#[derive(Debug, Clone)]
pub struct NewProvider {
    /// Label.
    pub label: String,
    /// One of [`ADAPTERS`]; the purpose follows from it.
    pub adapter: String,
    /// Base URL.
    pub base_url: String,
    /// Model.
    pub model: String,
    /// `vendor` or `self_hosted`.
    pub hosting: String,
    /// Vendor name.
    pub vendor: String,
    /// A BAA document reference: the acting user attests it now.
    pub baa_document_ref: Option<String>,
    /// Training disabled.
    pub training_disabled: bool,
    /// Retention.
    pub retention: String,
    /// Region.
    pub region: String,
    /// The API key, sealed on write.
    pub api_key: Option<zeroize::Zeroizing<String>>,
    /// Enabled.
    pub enabled: bool,
}

/// What to change about a provider (`None`: leave as is).
#[derive(Debug, Clone, Default)]
pub struct ProviderChange {
    /// Label.
    pub label: Option<String>,
    /// Base URL.
    pub base_url: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// `vendor` or `self_hosted`.
    pub hosting: Option<String>,
    /// Vendor name.
    pub vendor: Option<String>,
    /// `Some(Some(doc))`: the acting user attests a BAA now; `Some(None)`: withdraw it.
    pub baa_document_ref: Option<Option<String>>,
    /// Training disabled.
    pub training_disabled: Option<bool>,
    /// Retention.
    pub retention: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// `Some(Some(key))`: replace the key; `Some(None)`: remove it.
    pub api_key: Option<Option<zeroize::Zeroizing<String>>>,
    /// Enabled.
    pub enabled: Option<bool>,
}

/// A change made: the provider after it and the names of the fields that changed (`baa`,
/// `api_key`, `training_disabled` …; never values).
#[derive(Debug, Clone)]
pub struct Changed {
    /// The provider now.
    pub provider: Provider,
    /// The fields whose value changed, in a stable order.
    pub fields: Vec<&'static str>,
}

/// The purpose an adapter serves.
#[must_use]
pub fn purpose_of(adapter: &str) -> Option<&'static str> {
    ADAPTERS
        .iter()
        .find(|(a, _)| *a == adapter)
        .map(|(_, p)| *p)
}

#[derive(sqlx::FromRow)]
struct Row {
    provider_id: ProviderId,
    label: String,
    adapter: String,
    purpose: String,
    base_url: String,
    model: String,
    hosting: String,
    vendor: String,
    baa_attested_by: Option<UserId>,
    baa_attested_at: Option<DateTime<Utc>>,
    baa_document_ref: Option<String>,
    training_disabled: bool,
    retention: String,
    region: String,
    has_api_key: bool,
    enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "provider_id, label, adapter, purpose, base_url, model, hosting, vendor,
    baa_attested_by, baa_attested_at, baa_document_ref, training_disabled, retention, region,
    api_key_enc is not null as has_api_key, enabled, created_at, updated_at";

fn from_row(r: Row) -> Provider {
    let baa = match (r.baa_attested_by, r.baa_attested_at, r.baa_document_ref) {
        (Some(by), Some(at), Some(doc)) => Some(Baa {
            attested_by: by,
            attested_at: at,
            document_ref: doc,
        }),
        _ => None,
    };
    Provider {
        provider_id: r.provider_id,
        label: r.label,
        adapter: r.adapter,
        purpose: r.purpose,
        base_url: r.base_url,
        model: r.model,
        hosting: r.hosting,
        vendor: r.vendor,
        baa,
        training_disabled: r.training_disabled,
        retention: r.retention,
        region: r.region,
        has_api_key: r.has_api_key,
        enabled: r.enabled,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

async fn seal_key(
    tx: &TenantTx,
    keyring: &Keyring,
    id: ProviderId,
    key: &str,
) -> Result<Vec<u8>, StoreError> {
    seal_field(
        keyring,
        &AI_PROVIDER.context(tx.practice(), "api_key", id.as_uuid().as_bytes()),
        key.as_bytes(),
    )
    .await
}

/// Registers a provider (owner or admin; RLS checks it). A BAA document reference is attested
/// by the acting user at the transaction's time.
pub async fn register(
    tx: &mut TenantTx,
    keyring: &Keyring,
    p: &NewProvider,
) -> Result<Provider, StoreError> {
    let purpose =
        purpose_of(&p.adapter).ok_or_else(|| StoreError::Invalid("ai_provider_adapter".into()))?;
    let id = ProviderId::new();
    let key_enc = match &p.api_key {
        Some(k) => Some(seal_key(tx, keyring, id, k).await?),
        None => None,
    };
    let now = tx.now();
    let (by, at) = if p.baa_document_ref.is_some() {
        (Some(tx.actor()), Some(now))
    } else {
        (None, None)
    };
    let row: Row = sqlx::query_as(&format!(
        "insert into ai_provider (practice_id, provider_id, label, adapter, purpose, base_url, model,
             hosting, vendor, baa_attested_by, baa_attested_at, baa_document_ref, training_disabled,
             retention, region, api_key_enc, enabled, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18)
         returning {COLUMNS}"
    ))
    .bind(tx.practice())
    .bind(id)
    .bind(&p.label)
    .bind(&p.adapter)
    .bind(purpose)
    .bind(&p.base_url)
    .bind(&p.model)
    .bind(&p.hosting)
    .bind(&p.vendor)
    .bind(by)
    .bind(at)
    .bind(&p.baa_document_ref)
    .bind(p.training_disabled)
    .bind(&p.retention)
    .bind(&p.region)
    .bind(key_enc)
    .bind(p.enabled)
    .bind(now)
    .fetch_one(tx.conn())
    .await?;
    Ok(from_row(row))
}

/// The practice's providers, oldest first (at most 200).
pub async fn list(tx: &mut TenantTx) -> Result<Vec<Provider>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from ai_provider where practice_id = $1
          order by created_at, provider_id limit 200"
    ))
    .bind(tx.practice())
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// One provider of the practice.
pub async fn get(tx: &mut TenantTx, id: ProviderId) -> Result<Option<Provider>, StoreError> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from ai_provider where practice_id = $1 and provider_id = $2"
    ))
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(from_row))
}

/// The posture `egress::gate` decides on; `None` for a provider not registered here (which
/// the caller refuses like any other ungated provider).
pub async fn posture(
    tx: &mut TenantTx,
    id: ProviderId,
) -> Result<Option<egress::ProviderPosture>, StoreError> {
    Ok(get(tx, id).await?.map(|p| p.posture()))
}

/// The provider's API key, opened (`None`: no such provider or no key). Opening obliges the
/// transaction to append an audit event before it commits (the AI call's assistant turn).
pub async fn api_key(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: ProviderId,
) -> Result<Option<egress::ApiKey>, StoreError> {
    let practice = tx.practice();
    let enc: Option<(Option<Vec<u8>>,)> = sqlx::query_as(
        "select api_key_enc from ai_provider where practice_id = $1 and provider_id = $2",
    )
    .bind(practice)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let Some((Some(enc),)) = enc else {
        return Ok(None);
    };
    let key = tx
        .opener(keyring)
        .open_text(
            &AI_PROVIDER.context(practice, "api_key", id.as_uuid().as_bytes()),
            &enc,
        )
        .await?;
    Ok(Some(egress::ApiKey::new(key)))
}

/// `before` with the change `c` applied (a BAA attested by `actor` at `now`), and the names of
/// the fields whose value changed (the API key is the caller's).
fn apply(
    before: &Provider,
    c: &ProviderChange,
    actor: UserId,
    now: DateTime<Utc>,
) -> (Provider, Vec<&'static str>) {
    let mut fields = Vec::new();
    let mut after = before.clone();
    let mut set = |name: &'static str, changed: bool| {
        if changed {
            fields.push(name);
        }
    };
    if let Some(v) = &c.label {
        set("label", *v != before.label);
        after.label.clone_from(v);
    }
    if let Some(v) = &c.base_url {
        set("base_url", *v != before.base_url);
        after.base_url.clone_from(v);
    }
    if let Some(v) = &c.model {
        set("model", *v != before.model);
        after.model.clone_from(v);
    }
    if let Some(v) = &c.hosting {
        set("hosting", *v != before.hosting);
        after.hosting.clone_from(v);
    }
    if let Some(v) = &c.vendor {
        set("vendor", *v != before.vendor);
        after.vendor.clone_from(v);
    }
    if let Some(doc) = &c.baa_document_ref {
        // A new attestation is always recorded (a renewed contract), a withdrawal only if
        // there was one.
        set("baa", doc.is_some() || before.baa.is_some());
        after.baa = doc.as_ref().map(|d| Baa {
            attested_by: actor,
            attested_at: now,
            document_ref: d.clone(),
        });
    }
    if let Some(v) = c.training_disabled {
        set("training_disabled", v != before.training_disabled);
        after.training_disabled = v;
    }
    if let Some(v) = &c.retention {
        set("retention", *v != before.retention);
        after.retention.clone_from(v);
    }
    if let Some(v) = &c.region {
        set("region", *v != before.region);
        after.region.clone_from(v);
    }
    if let Some(v) = c.enabled {
        set("enabled", v != before.enabled);
        after.enabled = v;
    }
    (after, fields)
}

/// Changes a provider (owner or admin; RLS checks it). `None` if there is no such provider
/// here. Attesting a BAA records the acting user and the transaction's time; the key is sealed
/// again on replacement.
pub async fn change(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: ProviderId,
    c: &ProviderChange,
) -> Result<Option<Changed>, StoreError> {
    // Lock the row so two changes cannot interleave their "what changed" comparisons.
    let before: Option<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from ai_provider where practice_id = $1 and provider_id = $2 for update"
    ))
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let Some(before) = before.map(from_row) else {
        return Ok(None);
    };
    let now = tx.now();
    let (mut after, mut fields) = apply(&before, c, tx.actor(), now);
    let key_enc = match &c.api_key {
        Some(Some(k)) => {
            fields.push("api_key");
            after.has_api_key = true;
            Some(Some(seal_key(tx, keyring, id, k).await?))
        }
        Some(None) => {
            if before.has_api_key {
                fields.push("api_key");
            }
            after.has_api_key = false;
            Some(None)
        }
        None => None,
    };
    if fields.is_empty() {
        return Ok(Some(Changed {
            provider: before,
            fields,
        }));
    }
    let row: Row = sqlx::query_as(&format!(
        "update ai_provider set label = $3, base_url = $4, model = $5, hosting = $6, vendor = $7,
                baa_attested_by = $8, baa_attested_at = $9, baa_document_ref = $10,
                training_disabled = $11, retention = $12, region = $13, enabled = $14,
                api_key_enc = case when $15 then $16 else api_key_enc end, updated_at = $17
          where practice_id = $1 and provider_id = $2
          returning {COLUMNS}"
    ))
    .bind(tx.practice())
    .bind(id)
    .bind(&after.label)
    .bind(&after.base_url)
    .bind(&after.model)
    .bind(&after.hosting)
    .bind(&after.vendor)
    .bind(after.baa.as_ref().map(|b| b.attested_by))
    .bind(after.baa.as_ref().map(|b| b.attested_at))
    .bind(after.baa.as_ref().map(|b| b.document_ref.clone()))
    .bind(after.training_disabled)
    .bind(&after.retention)
    .bind(&after.region)
    .bind(after.enabled)
    .bind(key_enc.is_some())
    .bind(key_enc.flatten())
    .bind(now)
    .fetch_one(tx.conn())
    .await?;
    Ok(Some(Changed {
        provider: from_row(row),
        fields,
    }))
}

/// One posture change as the audit log recorded it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct HistoryEntry {
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// Who.
    pub actor_id: Option<UserId>,
    /// `ai_provider.register` or `ai_provider.update`.
    pub action: String,
    /// The provider.
    pub object_id: Option<uuid::Uuid>,
    /// The event's details (the changed field names and flags).
    pub details: Option<serde_json::Value>,
}

/// The practice's provider registrations and changes from its audit log, newest first (at
/// most 200; owners and admins, as RLS on the log allows).
pub async fn history(tx: &mut TenantTx) -> Result<Vec<HistoryEntry>, StoreError> {
    Ok(sqlx::query_as(
        "select occurred_at, actor_id, action, object_id, details from audit_event
          where practice_id = $1 and object_type = 'ai_provider'
            and action in ('ai_provider.register', 'ai_provider.update')
          order by occurred_at desc, event_id desc limit 200",
    )
    .bind(tx.practice())
    .fetch_all(tx.conn())
    .await?)
}
