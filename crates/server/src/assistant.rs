//! AI calls end to end: choose the provider, ask the gate, call the adapter, record the turn.
//!
//! # Guarantees
//! - Every AI call goes through [`run_turn`] (a request's transaction) or [`run_chunk_turn`]
//!   (the transcription job's owner transaction): the provider gate first
//!   ([`egress::gate_with_hosts`], with the operator's own hosts of [`OperatorHosts`]) — a
//!   refusal opens no connection and is recorded as a turn with outcome
//!   `refused` —, then the adapter, then exactly one `assistant_turn` row and one
//!   `assistant.turn` audit event, in the caller's transaction (req SCR-03, SCR-04).
//! - The prompt and the output are sealed in the turn; nothing of them is logged.
//! - A truncated reply is an error ([`egress::EgressError::Truncated`], outcome `truncated`),
//!   never a result.

use std::sync::Arc;
use std::time::Instant;

use domain::{CaptureId, PatientId, VisitId};
use egress::{
    Cleared, Drafter, EgressError, Hosting, ProviderPosture, Transcriber, Usage,
    gate::BaaAttestation,
};
use store::turns::{NewTurn, Purpose, RegisteredProvider, TurnOutcome};

/// Builds the adapter for a provider of the registry (its `adapter` names the wire format).
pub trait Adapters: Send + Sync + std::fmt::Debug {
    /// The transcription adapter for `provider`, if this installation has one for its kind.
    fn transcriber(&self, provider: &RegisteredProvider) -> Option<Arc<dyn Transcriber>>;
    /// The drafting adapter for `provider`, if this installation has one for its kind.
    fn drafter(&self, provider: &RegisteredProvider) -> Option<Arc<dyn Drafter>>;
}

/// No adapters: every registered provider is unusable (its calls fail as `error` turns).
#[derive(Debug, Default)]
pub struct NoAdapters;

impl Adapters for NoAdapters {
    fn transcriber(&self, _: &RegisteredProvider) -> Option<Arc<dyn Transcriber>> {
        None
    }
    fn drafter(&self, _: &RegisteredProvider) -> Option<Arc<dyn Drafter>> {
        None
    }
}

/// Where the local default's posture comes from.
#[derive(Debug, Clone)]
pub enum LocalSource {
    /// A fixed address (a service the operator runs, or a test's).
    Fixed(ProviderPosture),
    /// The sidecar Chartroom supervises: its port changes when it restarts, so the posture is
    /// asked for at each call (waiting for the model to load on first use).
    Supervised(egress::local::LocalHandle),
}

/// How long a transcription waits for the supervised sidecar to be ready (the model loads on
/// first use).
const LOCAL_READY_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// The installation's built-in local transcription: its posture (self-hosted, loopback) and
/// its adapter.
#[derive(Clone)]
pub struct LocalTranscription {
    /// Where the posture the gate checks (provider id `None`) comes from.
    pub source: LocalSource,
    /// The adapter.
    pub transcriber: Arc<dyn Transcriber>,
}

impl LocalTranscription {
    /// The supervised local Whisper, spoken to through the OpenAI-compatible adapter.
    pub fn supervised(handle: egress::local::LocalHandle) -> Result<Self, EgressError> {
        Ok(Self {
            source: LocalSource::Supervised(handle),
            transcriber: Arc::new(egress::OpenAiTranscriber::new(None)?),
        })
    }

    /// The posture for one call now; `None` when the supervised sidecar is not ready in time.
    pub async fn posture(&self) -> Option<ProviderPosture> {
        match &self.source {
            LocalSource::Fixed(p) => Some(p.clone()),
            LocalSource::Supervised(h) => match h.wait_ready(LOCAL_READY_WAIT).await {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(error = %e, "the local transcription default is not ready");
                    None
                }
            },
        }
    }
}

impl std::fmt::Debug for LocalTranscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTranscription")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The egress crate's adapters, by the registry's `adapter` name: OpenAI-compatible
/// transcription (`openai_transcription`) and chat drafting (`openai_chat`), Anthropic
/// Messages drafting (`anthropic_messages`); each with the provider's API key. Built with the
/// cargo feature `aws`: Bedrock Converse drafting (`bedrock_converse`) and Transcribe Medical
/// transcription (`aws_transcribe_medical`, a clinician–patient conversation with speaker
/// labels), with the AWS credentials and region of the environment. Without it those kinds
/// have no adapter: their calls fail as `error` turns.
#[derive(Debug, Default)]
pub struct EgressAdapters {
    /// The AWS configuration, loaded from the environment on first use.
    #[cfg(feature = "aws")]
    aws: egress::AwsEnv,
}

fn api_key(p: &RegisteredProvider) -> Option<egress::ApiKey> {
    p.api_key
        .as_ref()
        .map(|k| egress::ApiKey::new(k.expose_secret().clone()))
}

impl Adapters for EgressAdapters {
    fn transcriber(&self, provider: &RegisteredProvider) -> Option<Arc<dyn Transcriber>> {
        match provider.adapter.as_str() {
            "openai_transcription" => egress::OpenAiTranscriber::new(api_key(provider))
                .ok()
                .map(|t| Arc::new(t) as Arc<dyn Transcriber>),
            #[cfg(feature = "aws")]
            "aws_transcribe_medical" => Some(Arc::new(egress::TranscribeMedical::new(
                self.aws.clone(),
                None,
                egress::MedicalKind::Conversation,
                egress::Limits::default(),
            ))),
            _ => None,
        }
    }

    fn drafter(&self, provider: &RegisteredProvider) -> Option<Arc<dyn Drafter>> {
        match provider.adapter.as_str() {
            "openai_chat" => egress::OpenAiDrafter::new(api_key(provider))
                .ok()
                .map(|d| Arc::new(d) as Arc<dyn Drafter>),
            "anthropic_messages" => egress::AnthropicDrafter::new(api_key(provider))
                .ok()
                .map(|d| Arc::new(d) as Arc<dyn Drafter>),
            #[cfg(feature = "aws")]
            "bedrock_converse" => Some(Arc::new(egress::BedrockDrafter::new(
                self.aws.clone(),
                None,
                egress::Limits::default(),
            ))),
            _ => None,
        }
    }
}

/// What the scribe's AI calls need: the adapters for registered providers, the
/// installation's local default and the operator's own hosts.
#[derive(Debug, Clone)]
pub struct Assistant {
    /// Adapters for the registry's providers.
    pub adapters: Arc<dyn Adapters>,
    /// The built-in local transcription, when this installation runs one.
    pub local_transcription: Option<LocalTranscription>,
    /// Hosts the operator runs (`--ai-self-hosted-host`), cleared for self-hosted providers.
    pub operator_hosts: OperatorHosts,
}

/// The egress adapters, no local default, no operator hosts.
impl Default for Assistant {
    fn default() -> Self {
        Self {
            adapters: Arc::new(EgressAdapters::default()),
            local_transcription: None,
            operator_hosts: OperatorHosts::default(),
        }
    }
}

/// The hosts the operator runs itself (the installation's configuration,
/// `--ai-self-hosted-host`): a provider marked self-hosted at one of them is cleared by the
/// gate like one on loopback or a Unix socket. Empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorHosts(Arc<[String]>);

impl OperatorHosts {
    /// The listed hosts, each a host name or IP address (checked, lower-cased, without a
    /// trailing dot); an empty or unusable entry is an error naming it.
    pub fn new<I, S>(hosts: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out: Vec<String> = Vec::new();
        for h in hosts {
            let raw = h.as_ref().trim();
            let name = raw.trim_end_matches('.').to_ascii_lowercase();
            let parsed = if name.starts_with('[') {
                url::Host::parse(&name)
            } else if name.contains(':') {
                url::Host::parse(&format!("[{name}]"))
            } else {
                url::Host::parse(&name)
            };
            if name.is_empty() || name.len() > 253 || parsed.is_err() {
                return Err(format!("not a host name or IP address: {raw:?}"));
            }
            if !out.contains(&name) {
                out.push(name);
            }
        }
        Ok(Self(out.into()))
    }

    /// The hosts.
    #[must_use]
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// The gate with these hosts ([`egress::gate_with_hosts`]).
    pub fn gate(&self, posture: &ProviderPosture) -> Result<Cleared, egress::Refusal> {
        egress::gate_with_hosts(posture, &self.0)
    }
}

/// The gate's view of a registered provider.
#[must_use]
pub fn posture(p: &RegisteredProvider) -> ProviderPosture {
    ProviderPosture {
        provider_id: Some(p.provider_id),
        label: p.label.clone(),
        base_url: p.base_url.clone(),
        model: p.model.clone(),
        hosting: if p.hosting == "self_hosted" {
            Hosting::SelfHosted
        } else {
            Hosting::Vendor
        },
        baa: p.baa.as_ref().map(|(by, at, doc)| BaaAttestation {
            attested_by: *by,
            attested_at: *at,
            document_ref: doc.clone(),
        }),
        training_disabled: p.training_disabled,
        enabled: p.enabled,
    }
}

/// What a turn is about.
#[derive(Debug, Clone, Copy)]
pub struct TurnSubject {
    /// The patient.
    pub patient: PatientId,
    /// The visit.
    pub visit: Option<VisitId>,
    /// The capture (transcription).
    pub capture: Option<CaptureId>,
    /// Why.
    pub purpose: Purpose,
}

/// A call's result with its recorded turn.
#[derive(Debug)]
pub struct Called<T> {
    /// The turn recorded for it.
    pub turn: domain::AssistantTurnId,
    /// What the adapter returned.
    pub result: Result<T, EgressError>,
}

/// What a reply is, for its turn.
pub trait Reply {
    /// The output to seal in the turn.
    fn output(&self) -> Vec<u8>;
    /// Token counts.
    fn usage(&self) -> Usage;
}

impl Reply for egress::TranscriptionReply {
    fn output(&self) -> Vec<u8> {
        let segs: Vec<serde_json::Value> = self
            .segments
            .iter()
            .map(|s| {
                serde_json::json!({"start_ms": s.start_ms, "end_ms": s.end_ms,
                    "speaker": s.speaker, "text": s.text})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "segments": segs })).unwrap_or_default()
    }
    fn usage(&self) -> Usage {
        self.usage
    }
}

impl Reply for egress::DraftReply {
    fn output(&self) -> Vec<u8> {
        let s: Vec<serde_json::Value> = self
            .sentences
            .iter()
            .map(|s| serde_json::json!({"section": s.section, "text": s.text, "evidence": s.evidence}))
            .collect();
        serde_json::to_vec(&serde_json::json!({ "sentences": s })).unwrap_or_default()
    }
    fn usage(&self) -> Usage {
        self.usage
    }
}

/// Plain text replies (an assistant edit).
impl Reply for String {
    fn output(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
    fn usage(&self) -> Usage {
        Usage::default()
    }
}

fn outcome_of<T>(r: &Result<T, EgressError>) -> TurnOutcome {
    match r {
        Ok(_) => TurnOutcome::Ok,
        Err(EgressError::Refused(_)) => TurnOutcome::Refused,
        Err(EgressError::Truncated) => TurnOutcome::Truncated,
        Err(EgressError::RateLimited { .. }) => TurnOutcome::RateLimited,
        Err(_) => TurnOutcome::Error,
    }
}

/// Gates `posture` (with the operator's hosts), then (only if cleared) runs `call`; the
/// result and its latency.
async fn gated<T, F, Fut>(
    hosts: &OperatorHosts,
    posture: &ProviderPosture,
    call: F,
) -> (Result<T, EgressError>, u32)
where
    F: FnOnce(Cleared) -> Fut,
    Fut: std::future::Future<Output = Result<T, EgressError>>,
{
    let cleared = match hosts.gate(posture) {
        Ok(c) => c,
        Err(refusal) => return (Err(EgressError::Refused(refusal)), 0),
    };
    let started = Instant::now();
    let r = call(cleared).await;
    let ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
    (r, ms)
}

fn new_turn<'a, T: Reply>(
    subject: TurnSubject,
    posture: &'a ProviderPosture,
    prompt: &'a [u8],
    output: Option<&'a [u8]>,
    result: &Result<T, EgressError>,
    latency_ms: u32,
) -> NewTurn<'a> {
    let usage = result.as_ref().map(Reply::usage).unwrap_or_default();
    NewTurn {
        patient: subject.patient,
        visit: subject.visit,
        capture: subject.capture,
        provider: posture.provider_id,
        provider_label: &posture.label,
        model: &posture.model,
        purpose: subject.purpose,
        prompt: Some(prompt),
        output,
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        latency_ms,
        outcome: outcome_of(result),
    }
}

/// Runs one AI call for a request, end to end: the gate, then `call` (only if the gate cleared
/// the provider), then the turn with its audit event in `tx` (req: SCR-04 — exactly one turn
/// and one audit event per call). `prompt` is what is sent, sealed in the turn. The caller
/// commits, also when the call failed (the turn must stay).
pub async fn run_turn<T, F, Fut>(
    tx: &mut store::TenantTx,
    keyring: &store::crypto::Keyring,
    hosts: &OperatorHosts,
    subject: TurnSubject,
    posture: &ProviderPosture,
    prompt: &[u8],
    call: F,
) -> Result<Called<T>, store::StoreError>
where
    T: Reply,
    F: FnOnce(Cleared) -> Fut,
    Fut: std::future::Future<Output = Result<T, EgressError>>,
{
    let (result, latency) = gated(hosts, posture, call).await;
    let output = result.as_ref().ok().map(Reply::output);
    let turn = new_turn(
        subject,
        posture,
        prompt,
        output.as_deref(),
        &result,
        latency,
    );
    let id = store::turns::record(tx, keyring, &turn).await?;
    Ok(Called { turn: id, result })
}

/// [`run_turn`] for the transcription job, in the claimed chunk's owner transaction.
pub async fn run_chunk_turn<T, F, Fut>(
    work: &mut store::transcripts::ChunkWork,
    keyring: &store::crypto::Keyring,
    hosts: &OperatorHosts,
    subject: TurnSubject,
    posture: &ProviderPosture,
    prompt: &[u8],
    call: F,
) -> Result<Called<T>, store::StoreError>
where
    T: Reply,
    F: FnOnce(Cleared) -> Fut,
    Fut: std::future::Future<Output = Result<T, EgressError>>,
{
    let (result, latency) = gated(hosts, posture, call).await;
    let output = result.as_ref().ok().map(Reply::output);
    let turn = new_turn(
        subject,
        posture,
        prompt,
        output.as_deref(),
        &result,
        latency,
    );
    let id = work.record_turn(keyring, &turn).await?;
    Ok(Called { turn: id, result })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vendor(baa: bool, training_disabled: bool) -> ProviderPosture {
        ProviderPosture {
            provider_id: None,
            label: "stand-in".into(),
            base_url: "https://127.0.0.1:9/".into(),
            model: "m".into(),
            hosting: Hosting::Vendor,
            baa: baa.then(|| BaaAttestation {
                attested_by: domain::UserId::new(),
                attested_at: chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
                document_ref: "BAA-1".into(),
            }),
            training_disabled,
            enabled: true,
        }
    }

    // req: SCR-03 — a refused provider is never called.
    #[tokio::test]
    async fn the_gate_comes_before_the_call() {
        let called = std::sync::atomic::AtomicUsize::new(0);
        for (p, ok) in [
            (vendor(false, true), false),
            (vendor(true, false), false),
            (vendor(true, true), true),
        ] {
            let (r, _) = gated(&OperatorHosts::default(), &p, |_| async {
                called.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, EgressError>("x".to_owned())
            })
            .await;
            assert_eq!(r.is_ok(), ok);
            if !ok {
                assert_eq!(outcome_of(&r), TurnOutcome::Refused);
            }
        }
        assert_eq!(called.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn the_aws_kinds_have_adapters_only_with_the_feature() {
        let provider = |adapter: &str| RegisteredProvider {
            provider_id: domain::ProviderId::new(),
            label: "aws".into(),
            adapter: adapter.into(),
            base_url: "https://transcribestreaming.us-east-1.amazonaws.com".into(),
            model: "medical".into(),
            hosting: "vendor".into(),
            baa: None,
            training_disabled: true,
            enabled: true,
            api_key: None,
        };
        let a = EgressAdapters::default();
        assert_eq!(
            a.transcriber(&provider("aws_transcribe_medical")).is_some(),
            cfg!(feature = "aws")
        );
        assert_eq!(
            a.drafter(&provider("bedrock_converse")).is_some(),
            cfg!(feature = "aws")
        );
        assert!(a.transcriber(&provider("openai_transcription")).is_some());
        assert!(a.drafter(&provider("openai_chat")).is_some());
    }

    // req: SCR-03 — the operator's own hosts are self-hosted; nothing else is.
    #[test]
    fn operator_hosts_are_checked_and_feed_the_gate() {
        let hosts =
            OperatorHosts::new(["GPU1.internal.", " 10.0.0.7", "::1", "gpu1.internal"]).unwrap();
        assert_eq!(hosts.as_slice(), ["gpu1.internal", "10.0.0.7", "::1"]);
        for bad in ["", "gpu1 internal", "http://gpu1.internal", "a/b"] {
            assert!(OperatorHosts::new([bad]).is_err(), "{bad:?}");
        }
        let p = ProviderPosture {
            base_url: "http://gpu1.internal:8000".into(),
            hosting: Hosting::SelfHosted,
            ..vendor(false, false)
        };
        assert_eq!(
            OperatorHosts::default().gate(&p).map(|_| ()),
            Err(egress::Refusal::NotLocal)
        );
        assert_eq!(
            hosts.gate(&p).map(|c| c.local()),
            Ok(Some(egress::Local::OperatorHost))
        );
    }

    #[test]
    fn outcomes_follow_the_error() {
        let t: Result<String, _> = Err(EgressError::Truncated);
        assert_eq!(outcome_of(&t), TurnOutcome::Truncated);
        let r: Result<String, _> = Err(EgressError::RateLimited {
            retry_after_secs: Some(3),
        });
        assert_eq!(outcome_of(&r), TurnOutcome::RateLimited);
        let e: Result<String, _> = Err(EgressError::Status(500));
        assert_eq!(outcome_of(&e), TurnOutcome::Error);
    }
}
