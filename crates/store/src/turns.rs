//! Assistant turns (`assistant_turn`, `migrations/0024_scribe.sql`): one row per AI call —
//! transcription, drafting, an assistant edit of a draft or an amendment, voice perio.
//!
//! # Guarantees
//! - Recording a turn ([`record`], [`record_as_owner`]) appends its `assistant.turn` audit
//!   event in the same transaction: one turn, one event (req SCR-04). The event carries ids,
//!   the purpose, the outcome, token counts and latency — never the prompt, the output, the
//!   provider's label or its address.
//! - The prompt and the output are field ciphertexts bound to (practice, `assistant_turn`,
//!   `prompt`/`output`, turn id); a turn is never updated.
//! - A refused call (the provider gate said no) is a turn too, with outcome `refused` and no
//!   output: nothing was sent.

use crypto::Keyring;
use domain::{
    AssistantTurnId, AuditAction, AuditObject, CaptureId, PatientId, PracticeId, ProviderId,
    VisitId,
};

use crate::sealed_columns::{ASSISTANT_TURN, seal_field};
use crate::{OwnerTx, StoreError, TenantTx};

/// The purpose of an AI call (`assistant_turn.purpose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Transcribing a chunk of a capture.
    Transcription,
    /// Drafting a note from a transcript.
    Drafting,
    /// Rewriting a sentence of a draft on request.
    DraftEdit,
    /// Rewriting an amendment on request.
    AmendmentEdit,
    /// Recognizing a perio dictation clip.
    PerioVoice,
}

impl Purpose {
    /// The stable name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Purpose::Transcription => "transcription",
            Purpose::Drafting => "drafting",
            Purpose::DraftEdit => "draft_edit",
            Purpose::AmendmentEdit => "amendment_edit",
            Purpose::PerioVoice => "perio_voice",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Purpose::Transcription,
            Purpose::Drafting,
            Purpose::DraftEdit,
            Purpose::AmendmentEdit,
            Purpose::PerioVoice,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// How an AI call ended (`assistant_turn.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnOutcome {
    /// The provider answered.
    Ok,
    /// The provider gate refused the provider: no connection was opened.
    Refused,
    /// The call failed (HTTP error, malformed reply, unreachable).
    Error,
    /// The reply stopped at the provider's token limit (an error, never a note).
    Truncated,
    /// The provider asked us to slow down.
    RateLimited,
}

impl TurnOutcome {
    /// The stable name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            TurnOutcome::Ok => "ok",
            TurnOutcome::Refused => "refused",
            TurnOutcome::Error => "error",
            TurnOutcome::Truncated => "truncated",
            TurnOutcome::RateLimited => "rate_limited",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            TurnOutcome::Ok,
            TurnOutcome::Refused,
            TurnOutcome::Error,
            TurnOutcome::Truncated,
            TurnOutcome::RateLimited,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// A turn to record.
#[derive(Debug, Clone)]
pub struct NewTurn<'a> {
    /// The patient the call was about.
    pub patient: PatientId,
    /// The visit, when there is one.
    pub visit: Option<VisitId>,
    /// The capture, for a transcription.
    pub capture: Option<CaptureId>,
    /// The registered provider (`None`: the installation's built-in local default).
    pub provider: Option<ProviderId>,
    /// The provider's label (not PHI).
    pub provider_label: &'a str,
    /// The model asked.
    pub model: &'a str,
    /// Why.
    pub purpose: Purpose,
    /// What was sent (sealed), if anything.
    pub prompt: Option<&'a [u8]>,
    /// What came back (sealed), if anything.
    pub output: Option<&'a [u8]>,
    /// Prompt tokens, when reported.
    pub input_tokens: Option<u32>,
    /// Output tokens, when reported.
    pub output_tokens: Option<u32>,
    /// Wall time of the call.
    pub latency_ms: u32,
    /// How it ended.
    pub outcome: TurnOutcome,
}

/// A stored turn, as a reader sees it (prompt and output opened).
#[derive(Debug, Clone)]
pub struct Turn {
    /// Its id.
    pub turn_id: AssistantTurnId,
    /// The patient.
    pub patient_id: PatientId,
    /// The visit.
    pub visit_id: Option<VisitId>,
    /// The provider (`None`: the local default).
    pub provider_id: Option<ProviderId>,
    /// The provider's label.
    pub provider_label: String,
    /// The model.
    pub model: String,
    /// Why.
    pub purpose: Purpose,
    /// How it ended.
    pub outcome: TurnOutcome,
    /// Latency.
    pub latency_ms: i32,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

fn tokens(n: Option<u32>) -> Option<i32> {
    n.map(|v| i32::try_from(v).unwrap_or(i32::MAX))
}

/// Inserts the turn row (prompt and output sealed); the caller audits.
async fn insert(
    conn: &mut sqlx::PgConnection,
    keyring: &Keyring,
    practice: PracticeId,
    actor: Option<domain::UserId>,
    now: chrono::DateTime<chrono::Utc>,
    t: &NewTurn<'_>,
) -> Result<AssistantTurnId, StoreError> {
    let id = AssistantTurnId::new();
    let row = id.as_uuid();
    let row = row.as_bytes();
    let prompt = match t.prompt {
        Some(p) => {
            Some(seal_field(keyring, &ASSISTANT_TURN.context(practice, "prompt", row), p).await?)
        }
        None => None,
    };
    let output = match t.output {
        Some(o) => {
            Some(seal_field(keyring, &ASSISTANT_TURN.context(practice, "output", row), o).await?)
        }
        None => None,
    };
    sqlx::query(
        "insert into assistant_turn (practice_id, turn_id, patient_id, visit_id, capture_id,
            provider_id, provider_label, model, purpose, prompt_enc, output_enc, input_tokens,
            output_tokens, latency_ms, outcome, actor_id, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(practice)
    .bind(id)
    .bind(t.patient)
    .bind(t.visit)
    .bind(t.capture)
    .bind(t.provider)
    .bind(label(t.provider_label, 80))
    .bind(label(t.model, 200))
    .bind(t.purpose.as_str())
    .bind(prompt)
    .bind(output)
    .bind(tokens(t.input_tokens))
    .bind(tokens(t.output_tokens))
    .bind(i32::try_from(t.latency_ms).unwrap_or(i32::MAX))
    .bind(t.outcome.as_str())
    .bind(actor)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(id)
}

/// A label cut to the column's limit (whole characters), never empty.
fn label(s: &str, max: usize) -> String {
    let cut: String = s.chars().take(max).collect();
    if cut.trim().is_empty() {
        "unnamed".to_owned()
    } else {
        cut
    }
}

fn details(t: &NewTurn<'_>) -> serde_json::Value {
    serde_json::json!({
        "purpose": t.purpose.as_str(),
        "outcome": t.outcome.as_str(),
        "provider_id": t.provider,
        "local_default": t.provider.is_none(),
        "capture_id": t.capture,
        "visit_id": t.visit,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "latency_ms": t.latency_ms,
    })
}

/// Records a turn made by the transaction's actor and audits it `assistant.turn` (same
/// transaction): runs in the transaction's practice; seals prompt and output; decrypts
/// nothing.
pub async fn record(
    tx: &mut TenantTx,
    keyring: &Keyring,
    t: &NewTurn<'_>,
) -> Result<AssistantTurnId, StoreError> {
    let (practice, actor, now) = (tx.practice(), tx.actor(), tx.now());
    let id = insert(tx.conn(), keyring, practice, Some(actor), now, t).await?;
    tx.audit_details(
        AuditAction::AssistantTurn,
        Some(t.patient),
        Some(AuditObject::assistant_turn(id)),
        Some(details(t)),
    )
    .await?;
    Ok(id)
}

/// [`record`] for a job of the owner role (transcription): no actor.
pub async fn record_as_owner(
    tx: &mut OwnerTx,
    keyring: &Keyring,
    t: &NewTurn<'_>,
) -> Result<AssistantTurnId, StoreError> {
    let (practice, now) = (tx.practice(), tx.now());
    let id = insert(tx.conn(), keyring, practice, None, now, t).await?;
    tx.audit(
        AuditAction::AssistantTurn,
        Some(AuditObject::assistant_turn(id)),
        Some(t.patient),
        Some(details(t)),
    )
    .await?;
    Ok(id)
}

type TurnRow = (
    uuid::Uuid,
    uuid::Uuid,
    Option<uuid::Uuid>,
    Option<uuid::Uuid>,
    String,
    String,
    String,
    String,
    i32,
    chrono::DateTime<chrono::Utc>,
);

/// Turn `id` of this practice, if visible here (its patient clinically visible), without its
/// prompt and output (nothing decrypted, nothing audited).
pub async fn get(tx: &mut TenantTx, id: AssistantTurnId) -> Result<Option<Turn>, StoreError> {
    let r: Option<TurnRow> = sqlx::query_as(
        "select turn_id, patient_id, visit_id, provider_id, provider_label, model, purpose,
                outcome, latency_ms, created_at
           from assistant_turn where practice_id = $1 and turn_id = $2",
    )
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    r.map(|r| {
        Ok(Turn {
            turn_id: AssistantTurnId::from_uuid(r.0),
            patient_id: PatientId::from_uuid(r.1),
            visit_id: r.2.map(VisitId::from_uuid),
            provider_id: r.3.map(ProviderId::from_uuid),
            provider_label: r.4,
            model: r.5,
            purpose: Purpose::parse(&r.6).ok_or(StoreError::Corrupt("assistant_turn.purpose"))?,
            outcome: TurnOutcome::parse(&r.7)
                .ok_or(StoreError::Corrupt("assistant_turn.outcome"))?,
            latency_ms: r.8,
            created_at: r.9,
        })
    })
    .transpose()
}

/// The output of turn `id`, opened (the caller audits: the transaction refuses to commit
/// otherwise). `None` when the turn is not visible or has no output.
pub async fn output(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: AssistantTurnId,
) -> Result<Option<Vec<u8>>, StoreError> {
    let r: Option<Option<Vec<u8>>> = sqlx::query_scalar(
        "select output_enc from assistant_turn where practice_id = $1 and turn_id = $2",
    )
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let Some(Some(ct)) = r else {
        return Ok(None);
    };
    let practice = tx.practice();
    let row = id.as_uuid();
    let opened = tx
        .opener(keyring)
        .open(
            &ASSISTANT_TURN.context(practice, "output", row.as_bytes()),
            &ct,
        )
        .await?;
    Ok(Some(opened))
}

/// A provider of the practice's registry as the scribe uses it: its posture (everything the
/// provider gate decides on), its adapter and its API key (opened).
#[derive(Debug)]
pub struct RegisteredProvider {
    /// Its id.
    pub provider_id: ProviderId,
    /// Label shown to staff.
    pub label: String,
    /// Which adapter speaks to it (`openai_transcription`, `openai_chat`, …).
    pub adapter: String,
    /// Base URL.
    pub base_url: String,
    /// Model.
    pub model: String,
    /// `vendor` or `self_hosted`.
    pub hosting: String,
    /// When and by whom a BAA was attested, with its document reference.
    pub baa: Option<(domain::UserId, chrono::DateTime<chrono::Utc>, String)>,
    /// Whether training on inputs is disabled.
    pub training_disabled: bool,
    /// Whether the practice has it switched on.
    pub enabled: bool,
    /// The API key, when there is one.
    pub api_key: Option<crypto::Secret<String>>,
}

type ProviderRow = (
    uuid::Uuid,
    String,
    String,
    String,
    String,
    String,
    Option<uuid::Uuid>,
    Option<chrono::DateTime<chrono::Utc>>,
    Option<String>,
    bool,
    bool,
    Option<Vec<u8>>,
);

async fn provider_row(
    conn: &mut sqlx::PgConnection,
    practice: PracticeId,
    purpose: &str,
) -> Result<Option<ProviderRow>, StoreError> {
    Ok(sqlx::query_as(
        "select provider_id, label, adapter, base_url, model, hosting, baa_attested_by,
                baa_attested_at, baa_document_ref, training_disabled, enabled, api_key_enc
           from ai_provider
          where practice_id = $1 and purpose = $2 and enabled
          order by updated_at desc, provider_id limit 1",
    )
    .bind(practice)
    .bind(purpose)
    .fetch_optional(conn)
    .await?)
}

async fn open_provider(
    opener: crate::entry::Opener<'_>,
    practice: PracticeId,
    r: ProviderRow,
) -> Result<RegisteredProvider, StoreError> {
    let api_key = match &r.11 {
        Some(ct) => {
            let ctx =
                crate::sealed_columns::AI_PROVIDER.context(practice, "api_key", r.0.as_bytes());
            Some(crypto::Secret::new(opener.open_text(&ctx, ct).await?))
        }
        None => None,
    };
    let baa = match (r.6, r.7, r.8) {
        (Some(by), Some(at), Some(doc)) => Some((domain::UserId::from_uuid(by), at, doc)),
        _ => None,
    };
    Ok(RegisteredProvider {
        provider_id: ProviderId::from_uuid(r.0),
        label: r.1,
        adapter: r.2,
        base_url: r.3,
        model: r.4,
        hosting: r.5,
        baa,
        training_disabled: r.9,
        enabled: r.10,
        api_key,
    })
}

/// The practice's enabled provider for `purpose` (`transcription` or `drafting`; the most
/// recently changed when there are several), its API key opened (the AI call's turn audits);
/// `None`: no provider registered, use the installation's default.
pub async fn provider_for(
    tx: &mut TenantTx,
    keyring: &Keyring,
    purpose: &str,
) -> Result<Option<RegisteredProvider>, StoreError> {
    let practice = tx.practice();
    let Some(r) = provider_row(tx.conn(), practice, purpose).await? else {
        return Ok(None);
    };
    let opener = tx.opener(keyring);
    open_provider(opener, practice, r).await.map(Some)
}

impl crate::transcripts::ChunkWork {
    /// [`provider_for`] `transcription` in the chunk's practice (the job's turn audits).
    pub async fn transcription_provider(
        &mut self,
        keyring: &Keyring,
    ) -> Result<Option<RegisteredProvider>, StoreError> {
        let practice = self.practice();
        let Some(r) = provider_row(self.tx_mut().conn(), practice, "transcription").await? else {
            return Ok(None);
        };
        let opener = self.tx_mut().opener(keyring);
        open_provider(opener, practice, r).await.map(Some)
    }
}
