//! Issue 18 (items 4 job side, 7, 8): assistant turns, the transcription job, transcripts and
//! evidence-linked note drafts, over real PostgreSQL and the real server.
//!
//! The AI adapters here are scripted test doubles of the `egress` traits (they count calls and
//! answer as told); the wire contracts of the real adapters are tested against loopback
//! stand-ins of the providers' APIs in the egress work. Audio is a synthetic WAV in a real
//! encrypted blob.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use egress::{
    Cleared, DraftReply, DraftRequest, DraftSection, DraftSentence, Drafter, EgressError, Hosting,
    ProviderPosture, Segment, Transcriber, TranscriptionReply, TranscriptionRequest, Usage,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server::assistant::{Adapters, Assistant, LocalTranscription};
use store::turns::RegisteredProvider;
use testkit::{TestApp, TestDb, World};

use crate::util::call;

type DraftScript = dyn Fn(&DraftRequest) -> Result<DraftReply, EgressError> + Send + Sync;

/// A scripted drafting adapter: counts its calls, answers with `script`.
struct ScriptedDrafter {
    calls: AtomicUsize,
    script: Box<DraftScript>,
}

#[async_trait::async_trait]
impl Drafter for ScriptedDrafter {
    async fn draft(
        &self,
        _provider: &Cleared,
        request: DraftRequest,
    ) -> Result<DraftReply, EgressError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        (self.script)(&request)
    }
}

/// A scripted transcription adapter: counts its calls, answers with fixed segments.
struct ScriptedTranscriber {
    calls: AtomicUsize,
    segments: Vec<(u64, u64, &'static str)>,
}

#[async_trait::async_trait]
impl Transcriber for ScriptedTranscriber {
    async fn transcribe(
        &self,
        _provider: &Cleared,
        request: TranscriptionRequest,
    ) -> Result<TranscriptionReply, EgressError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        assert!(request.wav.starts_with(b"RIFF"), "the decrypted WAV");
        Ok(TranscriptionReply {
            segments: self
                .segments
                .iter()
                .enumerate()
                .map(|(i, (s, e, t))| Segment {
                    start_ms: *s,
                    end_ms: *e,
                    text: (*t).to_owned(),
                    speaker: Some(format!("SPEAKER_{i:02}")),
                    no_speech_prob: None,
                    avg_logprob: None,
                })
                .collect(),
            usage: Usage::default(),
        })
    }
}

#[derive(Debug)]
struct Doubles {
    drafter: Arc<ScriptedDrafterHandle>,
    transcriber: Arc<ScriptedTranscriberHandle>,
}

/// `Debug` wrappers (the adapters' closures have none).
struct ScriptedDrafterHandle(ScriptedDrafter);
struct ScriptedTranscriberHandle(ScriptedTranscriber);
impl std::fmt::Debug for ScriptedDrafterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScriptedDrafter")
    }
}
impl std::fmt::Debug for ScriptedTranscriberHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScriptedTranscriber")
    }
}
#[async_trait::async_trait]
impl Drafter for ScriptedDrafterHandle {
    async fn draft(&self, p: &Cleared, r: DraftRequest) -> Result<DraftReply, EgressError> {
        self.0.draft(p, r).await
    }
}
#[async_trait::async_trait]
impl Transcriber for ScriptedTranscriberHandle {
    async fn transcribe(
        &self,
        p: &Cleared,
        r: TranscriptionRequest,
    ) -> Result<TranscriptionReply, EgressError> {
        self.0.transcribe(p, r).await
    }
}

impl Adapters for Doubles {
    fn transcriber(&self, _: &RegisteredProvider) -> Option<Arc<dyn Transcriber>> {
        Some(self.transcriber.clone())
    }
    fn drafter(&self, _: &RegisteredProvider) -> Option<Arc<dyn Drafter>> {
        Some(self.drafter.clone())
    }
}

/// The transcript every fixture visit gets (times within its one chunk).
const HEARD: [(u64, u64, &str); 3] = [
    (0, 2_000, "My gums bleed a little when I floss."),
    (2_000, 5_000, "Probing depth five millimeters on tooth 14."),
    (5_000, 8_000, "We will see you again in six months."),
];

/// The drafter's usual answer: three supported sentences and one that cites nothing and
/// names a drug and a number nobody said.
#[allow(clippy::unnecessary_wraps, reason = "the shape of a drafting script")]
fn honest_and_one_invented(r: &DraftRequest) -> Result<DraftReply, EgressError> {
    let id = |i: usize| r.segments[i].0;
    Ok(DraftReply {
        sentences: vec![
            DraftSentence {
                section: DraftSection::Subjective,
                text: "Patient reports gums bleed when flossing.".into(),
                evidence: vec![id(0)],
            },
            DraftSentence {
                section: DraftSection::Objective,
                text: "Probing depth 5 mm on tooth 14.".into(),
                evidence: vec![id(1)],
            },
            DraftSentence {
                section: DraftSection::Plan,
                text: "Prescribed amoxicillin 500 mg.".into(),
                evidence: vec![],
            },
            DraftSentence {
                section: DraftSection::Plan,
                text: "Recall in six months.".into(),
                evidence: vec![id(2)],
            },
        ],
        usage: Usage {
            input_tokens: Some(321),
            output_tokens: Some(54),
        },
    })
}

struct Fx {
    db: TestDb,
    w: World,
    app: TestApp,
    clin: String,
    doubles: Arc<Doubles>,
    blob_dir: std::path::PathBuf,
    assistant: Assistant,
}

fn local_posture() -> ProviderPosture {
    ProviderPosture {
        provider_id: None,
        label: "Built-in local transcription".into(),
        base_url: "http://127.0.0.1:9/".into(),
        model: "whisper-base".into(),
        hosting: Hosting::SelfHosted,
        baa: None,
        training_disabled: true,
        enabled: true,
    }
}

async fn fx(script: Box<DraftScript>) -> Fx {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let doubles = Arc::new(Doubles {
        drafter: Arc::new(ScriptedDrafterHandle(ScriptedDrafter {
            calls: AtomicUsize::new(0),
            script,
        })),
        transcriber: Arc::new(ScriptedTranscriberHandle(ScriptedTranscriber {
            calls: AtomicUsize::new(0),
            segments: HEARD.to_vec(),
        })),
    });
    let assistant = Assistant {
        adapters: doubles.clone(),
        local_transcription: Some(LocalTranscription {
            source: server::assistant::LocalSource::Fixed(local_posture()),
            transcriber: doubles.transcriber.clone(),
        }),
        operator_hosts: server::assistant::OperatorHosts::default(),
    };
    let app = TestApp::start_with_assistant(db.store().await, assistant.clone()).await;
    let clin = app.token(w.a.user("clinician")).await;
    let blob_dir = std::env::temp_dir().join(format!(
        "chartroom-scribe-{}",
        uuid::Uuid::new_v4().simple()
    ));
    Fx {
        db,
        w,
        app,
        clin,
        doubles,
        blob_dir,
        assistant,
    }
}

impl Drop for Fx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.blob_dir);
    }
}

/// A synthetic WAV: 16 kHz mono 16-bit, one second of silence.
fn wav() -> Vec<u8> {
    let samples = 16_000u32;
    let data = samples * 2;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&16_000u32.to_le_bytes());
    w.extend_from_slice(&32_000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    w.resize(w.len() + data as usize, 0);
    w
}

impl Fx {
    fn base(&self) -> String {
        format!("/api/v1/practices/{}", self.w.a.id)
    }

    fn blobs(&self, keyring: Arc<store::crypto::Keyring>) -> store::crypto::BlobStore {
        store::crypto::BlobStore::local(&self.blob_dir, keyring).unwrap()
    }

    /// A visit of A's patient with a stopped capture whose one chunk (offset `offset_ms`)
    /// waits for transcription: the consent, capture and chunk rows as the capture flow leaves
    /// them, the audio a real encrypted blob registered through the runtime role.
    async fn captured_visit(&self, offset_ms: i64) -> (String, uuid::Uuid) {
        let (s, v) = call(
            &self.app,
            Method::POST,
            &format!("{}/patients/{}/visits", self.base(), self.w.a.patient),
            Some(&self.clin),
            Some(&json!({})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let visit = v["visit_id"].as_str().unwrap().to_owned();
        let runtime = self.db.store().await;
        let blobs = self.blobs(runtime.keyring().unwrap().clone());
        let audio = wav();
        let b = blobs.put_stream(self.w.a.id, &audio[..]).await.unwrap();
        let store::Entry::Member(mut tx, _) = runtime
            .enter_practice(
                &store::TokenHash::from_presented(&self.clin).unwrap(),
                self.w.a.id,
                chrono::Utc::now(),
                &store::SessionPolicy::default(),
                domain::RequestId::new(),
                store::Access::Write,
            )
            .await
            .unwrap()
        else {
            panic!("member")
        };
        let blob = tx.register_blob(&b).await.unwrap();
        tx.commit().await.unwrap();
        let mut su = self.db.superuser_unsafe().await;
        let consent = uuid::Uuid::new_v4();
        let capture = uuid::Uuid::new_v4();
        sqlx::query(
            "insert into recording_consent (practice_id, consent_id, visit_id, patient_id,
                consented_by, method, consent_rule, recorded_by, recorded_at)
             values ($1, $2, $3::uuid, $4, 'patient', 'verbal', 'all_party', $5, now())",
        )
        .bind(self.w.a.id)
        .bind(consent)
        .bind(&visit)
        .bind(self.w.a.patient)
        .bind(self.w.a.user("clinician"))
        .execute(&mut su)
        .await
        .unwrap();
        sqlx::query(
            "insert into capture (practice_id, capture_id, visit_id, patient_id, consent_id,
                clinician_id, state, stop_reason, started_at, stopped_at, elapsed_ms, max_seconds,
                chunks, audio_bytes)
             values ($1, $2, $3::uuid, $4, $5, $6, 'stopped', 'clinician', now(), now(), 1000,
                7200, 1, $7)",
        )
        .bind(self.w.a.id)
        .bind(capture)
        .bind(&visit)
        .bind(self.w.a.patient)
        .bind(consent)
        .bind(self.w.a.user("clinician"))
        .bind(i64::try_from(audio.len()).unwrap())
        .execute(&mut su)
        .await
        .unwrap();
        sqlx::query(
            "insert into capture_chunk (practice_id, capture_id, patient_id, seq, blob_id, sha256,
                bytes, duration_ms, offset_ms, received_at)
             values ($1, $2, $7, 0, $3, sha256($4), $5, 8000, $6, now())",
        )
        .bind(self.w.a.id)
        .bind(capture)
        .bind(blob.as_uuid())
        .bind(&audio)
        .bind(i32::try_from(audio.len()).unwrap())
        .bind(offset_ms)
        .bind(self.w.a.patient)
        .execute(&mut su)
        .await
        .unwrap();
        (visit, capture)
    }

    /// One pass of the transcription job over practice A (owner role).
    async fn transcribe(&self) -> server::jobs::transcription::PassReport {
        let owner = self.db.owner().await;
        let blobs = self.blobs(owner.keyring().unwrap().clone());
        let r = server::jobs::transcription::transcribe_pending(
            &owner,
            &blobs,
            &self.assistant,
            Some(self.w.a.id),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        owner.close().await;
        r
    }

    /// Registers a provider for `purpose` in A (as the registry would hold it).
    async fn provider(&self, purpose: &str, baa: bool, training_disabled: bool) -> uuid::Uuid {
        let mut su = self.db.superuser_unsafe().await;
        let id = uuid::Uuid::new_v4();
        let owner = self.w.a.user("owner");
        sqlx::query(
            "insert into ai_provider (practice_id, provider_id, label, adapter, purpose, base_url,
                model, hosting, vendor, baa_attested_by, baa_attested_at, baa_document_ref,
                training_disabled, enabled, created_at, updated_at)
             values ($1, $2, 'Stand-in vendor', $3, $4, 'https://127.0.0.1:9/v1', 'model-x',
                'vendor', 'Stand-in Inc.', $5, case when $5::uuid is null then null else now() end,
                case when $5::uuid is null then null else 'BAA-2026-01' end, $6, true, now(), now())",
        )
        .bind(self.w.a.id)
        .bind(id)
        .bind(if purpose == "drafting" {
            "openai_chat"
        } else {
            "openai_transcription"
        })
        .bind(purpose)
        .bind(baa.then_some(owner))
        .bind(training_disabled)
        .execute(&mut su)
        .await
        .unwrap();
        id
    }

    async fn count(&self, sql: &str) -> i64 {
        let mut su = self.db.superuser_unsafe().await;
        sqlx::query_scalar(sql)
            .bind(self.w.a.id)
            .fetch_one(&mut su)
            .await
            .unwrap()
    }

    async fn draft(&self, visit: &str) -> (StatusCode, Value) {
        call(
            &self.app,
            Method::POST,
            &format!("{}/visits/{visit}/drafts", self.base()),
            Some(&self.clin),
            Some(&json!({"template": "dental_hygiene"})),
        )
        .await
    }
}

/// A turn as the tests read it: provider, purpose, outcome, actor, label.
type TurnRow = (
    Option<uuid::Uuid>,
    String,
    String,
    Option<uuid::Uuid>,
    String,
);

/// An API route of the matrix: method, path, body, success status, audit events.
type ApiRoute = (Method, String, Option<Value>, StatusCode, Vec<&'static str>);

/// A page of the matrix: method, path, form, success status, audit actions.
type PageRoute = (
    Method,
    String,
    Vec<(&'static str, String)>,
    StatusCode,
    Vec<&'static str>,
);

fn script(f: fn(&DraftRequest) -> Result<DraftReply, EgressError>) -> Box<DraftScript> {
    Box::new(f)
}

// req: SCR-04 — the transcription job: one turn and one `assistant.turn` event per chunk;
// segments stored encrypted with times offset by the chunk's place in the capture; the
// transcript readable (audited) and correctable with its history kept.
#[tokio::test]
async fn transcription_job_stores_encrypted_timed_segments_with_one_turn_per_chunk() {
    let f = fx(script(honest_and_one_invented)).await;
    let (_, capture) = f.captured_visit(60_000).await;
    let r = f.transcribe().await;
    assert_eq!((r.done, r.failed, r.refused), (1, 0, 0), "{r:?}");
    assert_eq!(f.doubles.transcriber.0.calls.load(Ordering::SeqCst), 1);
    // Nothing left to do.
    assert_eq!(f.transcribe().await.done, 0);
    assert_eq!(f.doubles.transcriber.0.calls.load(Ordering::SeqCst), 1);

    let mut su = f.db.superuser_unsafe().await;
    let turns: Vec<TurnRow> = sqlx::query_as(
        "select provider_id, purpose, outcome, actor_id, provider_label from assistant_turn
              where practice_id = $1",
    )
    .bind(f.w.a.id)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(turns.len(), 1);
    assert_eq!(
        (
            turns[0].0,
            turns[0].1.as_str(),
            turns[0].2.as_str(),
            turns[0].3
        ),
        (None, "transcription", "ok", None),
        "the local default, no actor (a job)"
    );
    assert_eq!(
        f.count(
            "select count(*) from audit_event where practice_id = $1 and action = 'assistant.turn'"
        )
        .await,
        1
    );
    let rows: Vec<(i64, i64, Option<String>, Vec<u8>)> = sqlx::query_as(
        "select start_ms, end_ms, speaker, text_enc from transcript_segment
          where practice_id = $1 order by start_ms",
    )
    .bind(f.w.a.id)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(
        rows.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
        [(60_000, 62_000), (62_000, 65_000), (65_000, 68_000)]
    );
    assert_eq!(rows[0].2.as_deref(), Some("speaker_00"));
    for (_, _, _, enc) in &rows {
        for (_, _, plain) in HEARD {
            assert!(
                !enc.windows(8)
                    .any(|w| plain.as_bytes().windows(8).any(|p| p == w)),
                "segment text is sealed"
            );
        }
    }
    let state: String = sqlx::query_scalar(
        "select transcription from capture_chunk where practice_id = $1 and capture_id = $2",
    )
    .bind(f.w.a.id)
    .bind(capture)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(state, "done");

    // The transcript, through the API.
    let path = format!("{}/captures/{capture}/transcript", f.base());
    let (s, t) = call(&f.app, Method::GET, &path, Some(&f.clin), None).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["segments"][1]["text"], HEARD[1].2);
    assert_eq!(t["progress"]["done"], 1);
    // A correction is a new revision; the history keeps both texts.
    let seg = t["segments"][1]["segment_id"].as_str().unwrap().to_owned();
    let seg_path = format!("{}/transcript-segments/{seg}", f.base());
    let (s, c) = call(
        &f.app,
        Method::PUT,
        &seg_path,
        Some(&f.clin),
        Some(&json!({"text": "Probing depth six millimeters on tooth 14.", "revision": 0})),
    )
    .await;
    assert_eq!(
        (s, c["revision"].as_i64()),
        (StatusCode::OK, Some(1)),
        "{c}"
    );
    // A correction against the old revision is stale.
    let (s, _) = call(
        &f.app,
        Method::PUT,
        &seg_path,
        Some(&f.clin),
        Some(&json!({"text": "Something else.", "revision": 0})),
    )
    .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED);
    let (s, h) = call(
        &f.app,
        Method::GET,
        &format!("{seg_path}/revisions"),
        Some(&f.clin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.as_array()
            .unwrap()
            .iter()
            .map(|r| r["text"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [HEARD[1].2, "Probing depth six millimeters on tooth 14."]
    );
    assert_eq!(h[0]["revised_by"], Value::Null);
    let (_, t) = call(&f.app, Method::GET, &path, Some(&f.clin), None).await;
    assert_eq!(t["segments"][1]["revision"], 1);
}

// req: SCR-03 — a registered transcription provider the gate refuses (a vendor without a
// BAA) is never called: the chunk is `refused`, the refusal is a turn, audited.
#[tokio::test]
async fn a_refused_transcription_provider_is_never_called_and_the_refusal_is_a_turn() {
    let f = fx(script(honest_and_one_invented)).await;
    f.provider("transcription", false, true).await;
    let (_, capture) = f.captured_visit(0).await;
    let r = f.transcribe().await;
    assert_eq!(r.refused, 1, "{r:?}");
    assert_eq!(
        f.doubles.transcriber.0.calls.load(Ordering::SeqCst),
        0,
        "no request reached the provider"
    );
    let mut su = f.db.superuser_unsafe().await;
    let (outcome, output): (String, Option<Vec<u8>>) = sqlx::query_as(
        "select outcome, output_enc from assistant_turn where practice_id = $1 and capture_id = $2",
    )
    .bind(f.w.a.id)
    .bind(capture)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!((outcome.as_str(), output), ("refused", None));
    let details: Value = sqlx::query_scalar(
        "select details from audit_event where practice_id = $1 and action = 'assistant.turn'",
    )
    .bind(f.w.a.id)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(details["outcome"], "refused");
    assert_eq!(details["purpose"], "transcription");
    assert_eq!(
        f.count("select count(*) from transcript_segment where practice_id = $1")
            .await,
        0
    );
}

// req: SCR-04, SCR-05 — drafting through a registered provider: one turn, one
// `assistant.turn` event; every sentence checked against its evidence, the unsupported one
// flagged; signing the note made from the draft is refused (409) until it is accepted; the
// signed note shows its changes from the AI draft.
#[tokio::test]
async fn an_ai_draft_flags_the_unsupported_sentence_and_signing_waits_for_its_acceptance() {
    let f = fx(script(honest_and_one_invented)).await;
    f.provider("drafting", true, true).await;
    let (visit, _) = f.captured_visit(0).await;
    f.transcribe().await;
    let turns_before = f
        .count(
            "select count(*) from audit_event where practice_id = $1 and action = 'assistant.turn'",
        )
        .await;
    let (s, d) = f.draft(&visit).await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    assert_eq!(f.doubles.drafter.0.calls.load(Ordering::SeqCst), 1);
    assert_eq!(d["ai_written"], true);
    assert_eq!(
        f.count(
            "select count(*) from assistant_turn where practice_id = $1 and purpose = 'drafting'"
        )
        .await,
        1
    );
    assert_eq!(
        f.count(
            "select count(*) from audit_event where practice_id = $1 and action = 'assistant.turn'"
        )
        .await,
        turns_before + 1,
        "one audit event for the one drafting call"
    );
    let flags: Vec<Value> = d["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["flags"].clone())
        .collect();
    assert_eq!(
        flags,
        [
            json!([]),
            json!([]),
            json!(["no_evidence", "number", "drug"]),
            json!([])
        ]
    );
    assert_eq!(d["unreviewed"], 1);
    let draft = d["draft_id"].as_str().unwrap().to_owned();
    let draft_path = format!("{}/drafts/{draft}", f.base());
    let (s, n) = call(
        &f.app,
        Method::POST,
        &format!("{draft_path}/note"),
        Some(&f.clin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{n}");
    assert!(
        n["content"]["plan"]
            .as_str()
            .unwrap()
            .contains("Recall in six months."),
        "{n}"
    );
    let note = n["note_id"].as_str().unwrap().to_owned();
    let sign = format!("{}/notes/{note}/sign", f.base());
    let (s, e) = call(&f.app, Method::POST, &sign, Some(&f.clin), None).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("NOTE-0001")),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("flagged sentence"),
        "{e}"
    );
    // Edit the second sentence (unflagged) and accept the flagged one: now it signs.
    let (s, _) = call(
        &f.app,
        Method::PUT,
        &format!("{draft_path}/sentences/1"),
        Some(&f.clin),
        Some(&json!({"text": "Probing depth 5 mm on tooth 14, bleeding."})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, d) = call(
        &f.app,
        Method::POST,
        &format!("{draft_path}/sentences/2/accept"),
        Some(&f.clin),
        None,
    )
    .await;
    assert_eq!(
        (s, d["unreviewed"].as_i64()),
        (StatusCode::OK, Some(0)),
        "{d}"
    );
    // The clinician also changes the note itself before signing.
    let (_, cur) = call(
        &f.app,
        Method::GET,
        &format!("{}/notes/{note}", f.base()),
        Some(&f.clin),
        None,
    )
    .await;
    let mut content = cur["content"].clone();
    content["plan"] = json!("Recall in six months.");
    let res = f
        .app
        .http
        .put(f.app.url(&format!("{}/notes/{note}", f.base())))
        .bearer_auth(&f.clin)
        .header("if-match", "\"1\"")
        .json(&json!({ "content": content }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (s, signed) = call(&f.app, Method::POST, &sign, Some(&f.clin), None).await;
    assert_eq!(s, StatusCode::OK, "{signed}");
    // After signing, the draft no longer changes.
    let (s, _) = call(
        &f.app,
        Method::POST,
        &format!("{draft_path}/sentences/0/accept"),
        Some(&f.clin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // The signed note shows what the clinician changed from the AI draft.
    let (s, c) = call(
        &f.app,
        Method::GET,
        &format!("{}/notes/{note}/draft-changes", f.base()),
        Some(&f.clin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(
        (c["ai_written"].as_bool(), c["signed"].as_bool()),
        (Some(true), Some(true))
    );
    let deleted: String = c["diff"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["op"] == "delete")
        .map(|d| d["text"].as_str().unwrap())
        .collect();
    assert!(deleted.contains("amoxicillin"), "{c}");
}

// req: SCR-05 — a reply cut at the token limit is an error, not a note: 502, the turn kept
// (outcome truncated, audited), no draft.
#[tokio::test]
async fn a_truncated_draft_is_an_error_and_no_draft() {
    let f = fx(script(|_| Err(EgressError::Truncated))).await;
    f.provider("drafting", true, true).await;
    let (visit, _) = f.captured_visit(0).await;
    f.transcribe().await;
    let (s, e) = f.draft(&visit).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("AI-0001")),
        "{e}"
    );
    assert_eq!(
        f.count("select count(*) from note_draft where practice_id = $1")
            .await,
        0
    );
    assert_eq!(
        f.count("select count(*) from assistant_turn where practice_id = $1 and purpose = 'drafting' and outcome = 'truncated'")
            .await,
        1
    );
    assert_eq!(
        f.count("select count(*) from audit_event where practice_id = $1 and action = 'assistant.turn' and details->>'outcome' = 'truncated'")
            .await,
        1
    );
}

// req: SCR-03 — a drafting provider the gate refuses (training not disabled) is never called;
// the refusal is a turn and an audit event; no draft.
#[tokio::test]
async fn a_refused_drafting_provider_is_never_called() {
    let f = fx(script(honest_and_one_invented)).await;
    f.provider("drafting", true, false).await;
    let (visit, _) = f.captured_visit(0).await;
    f.transcribe().await;
    let (s, e) = f.draft(&visit).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("AI-0002")),
        "{e}"
    );
    assert_eq!(f.doubles.drafter.0.calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        f.count("select count(*) from assistant_turn where practice_id = $1 and purpose = 'drafting' and outcome = 'refused'")
            .await,
        1
    );
    assert_eq!(
        f.count("select count(*) from note_draft where practice_id = $1")
            .await,
        0
    );
}

// Issue 18.7 — with no drafting provider, the default draft: transcript excerpts grouped by
// section, each citing its segment, labelled not AI-written; no AI call.
#[tokio::test]
async fn the_default_draft_without_a_provider_is_not_ai_written() {
    let f = fx(script(honest_and_one_invented)).await;
    let (visit, _) = f.captured_visit(0).await;
    f.transcribe().await;
    let (s, d) = f.draft(&visit).await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    assert_eq!(d["ai_written"], false);
    assert_eq!(d["turn_id"], Value::Null);
    assert!(d["label"].as_str().unwrap().contains("not AI-written"));
    assert_eq!(f.doubles.drafter.0.calls.load(Ordering::SeqCst), 0);
    let got: Vec<(String, String, usize, usize)> = d["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["section"].as_str().unwrap().to_owned(),
                s["text"].as_str().unwrap().to_owned(),
                s["evidence"].as_array().unwrap().len(),
                s["flags"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "objective".to_owned(),
                format!("\u{201c}{}\u{201d}", HEARD[1].2),
                1,
                0
            ),
            (
                "plan".to_owned(),
                format!("\u{201c}{}\u{201d}", HEARD[0].2),
                1,
                0
            ),
            (
                "plan".to_owned(),
                format!("\u{201c}{}\u{201d}", HEARD[2].2),
                1,
                0
            ),
        ]
    );
    assert_eq!(
        f.count(
            "select count(*) from assistant_turn where practice_id = $1 and purpose = 'drafting'"
        )
        .await,
        0
    );
}

// req: SCR-04 — an AI-assisted amendment names a real assistant turn of the practice:
// another practice's turn is not found (404) and nothing is written; the practice's own turn
// about the patient is accepted.
#[tokio::test]
async fn an_amendment_names_only_a_turn_of_its_own_practice() {
    let f = fx(script(honest_and_one_invented)).await;
    let (visit, _) = f.captured_visit(0).await;
    f.transcribe().await;
    let (_, d) = f.draft(&visit).await;
    let draft = d["draft_id"].as_str().unwrap().to_owned();
    let (_, n) = call(
        &f.app,
        Method::POST,
        &format!("{}/drafts/{draft}/note", f.base()),
        Some(&f.clin),
        None,
    )
    .await;
    let note = n["note_id"].as_str().unwrap().to_owned();
    let (s, signed) = call(
        &f.app,
        Method::POST,
        &format!("{}/notes/{note}/sign", f.base()),
        Some(&f.clin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{signed}");
    let mut su = f.db.superuser_unsafe().await;
    let ours: uuid::Uuid =
        sqlx::query_scalar("select turn_id from assistant_turn where practice_id = $1 limit 1")
            .bind(f.w.a.id)
            .fetch_one(&mut su)
            .await
            .unwrap();
    // A turn of practice B (its own patient).
    let theirs = uuid::Uuid::new_v4();
    sqlx::query(
        "insert into assistant_turn (practice_id, turn_id, patient_id, provider_label, model,
            purpose, latency_ms, outcome, created_at)
         values ($1, $2, $3, 'x', 'm', 'amendment_edit', 1, 'ok', now())",
    )
    .bind(f.w.b.id)
    .bind(theirs)
    .bind(f.w.b.patient)
    .execute(&mut su)
    .await
    .unwrap();
    let amend = format!("{}/notes/{note}/amendments", f.base());
    let body = |turn: uuid::Uuid| {
        json!({"content": {"subjective": "Amended with help."}, "reason": "Clarified",
               "ai_assisted": true, "assistant_turn_id": turn})
    };
    let versions = "select count(*) from clinical_note_version where practice_id = $1";
    let before = f.count(versions).await;
    let (s, e) = call(
        &f.app,
        Method::POST,
        &amend,
        Some(&f.clin),
        Some(&body(theirs)),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("NOT-FOUND")),
        "{e}"
    );
    assert_eq!(f.count(versions).await, before, "nothing written");
    let (s, a) = call(
        &f.app,
        Method::POST,
        &amend,
        Some(&f.clin),
        Some(&body(ours)),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    assert_eq!(
        a["amendments"][0]["assistant_turn_id"].as_str(),
        Some(ours.to_string().as_str())
    );
}

/// The actions audited for one request (by its id), sorted.
async fn audited(
    su: &mut sqlx::PgConnection,
    p: domain::PracticeId,
    res: &reqwest::Response,
) -> Vec<String> {
    let id: uuid::Uuid = res.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut a: Vec<String> = sqlx::query_scalar(
        "select action || ':' || outcome from audit_event where practice_id = $1 and request_id = $2",
    )
    .bind(p)
    .bind(id)
    .fetch_all(su)
    .await
    .unwrap();
    a.sort();
    a.dedup();
    a
}

// The authorization matrix of every scribe route: anonymous 401, another practice 404 (also
// for A's object through B's practice), reception 403 (audited `access.denied`), the
// clinician 2xx with the route's audit events.
#[tokio::test]
async fn scribe_routes_authorization_matrix() {
    let f = fx(script(honest_and_one_invented)).await;
    let (visit, capture) = f.captured_visit(0).await;
    f.transcribe().await;
    let (_, t) = call(
        &f.app,
        Method::GET,
        &format!("{}/captures/{capture}/transcript", f.base()),
        Some(&f.clin),
        None,
    )
    .await;
    let seg = t["segments"][0]["segment_id"].as_str().unwrap().to_owned();
    let (_, d) = f.draft(&visit).await;
    let draft = d["draft_id"].as_str().unwrap().to_owned();
    // A second draft, to make its note in the matrix; a third whose note exists for the diff.
    let (_, d2) = f.draft(&visit).await;
    let draft2 = d2["draft_id"].as_str().unwrap().to_owned();
    let (_, d3) = f.draft(&visit).await;
    let (_, n3) = call(
        &f.app,
        Method::POST,
        &format!(
            "{}/drafts/{}/note",
            f.base(),
            d3["draft_id"].as_str().unwrap()
        ),
        Some(&f.clin),
        None,
    )
    .await;
    let note3 = n3["note_id"].as_str().unwrap().to_owned();

    let base = f.base();
    let routes: Vec<ApiRoute> = vec![
        (
            Method::GET,
            format!("{base}/captures/{capture}/transcript"),
            None,
            StatusCode::OK,
            vec!["transcript.read:success"],
        ),
        (
            Method::PUT,
            format!("{base}/transcript-segments/{seg}"),
            Some(json!({"text": "My gums bleed when I floss."})),
            StatusCode::OK,
            vec!["transcript.correct:success"],
        ),
        (
            Method::GET,
            format!("{base}/transcript-segments/{seg}/revisions"),
            None,
            StatusCode::OK,
            vec!["transcript.read:success"],
        ),
        (
            Method::GET,
            format!("{base}/visits/{visit}/drafts"),
            None,
            StatusCode::OK,
            vec!["note_draft.read:success"],
        ),
        (
            Method::POST,
            format!("{base}/visits/{visit}/drafts"),
            Some(json!({})),
            StatusCode::CREATED,
            vec!["note_draft.create:success"],
        ),
        (
            Method::GET,
            format!("{base}/drafts/{draft}"),
            None,
            StatusCode::OK,
            vec!["note_draft.read:success"],
        ),
        (
            Method::POST,
            format!("{base}/drafts/{draft}/sentences/0/accept"),
            None,
            StatusCode::OK,
            vec!["note_draft.read:success", "note_draft.update:success"],
        ),
        (
            Method::PUT,
            format!("{base}/drafts/{draft}/sentences/1"),
            Some(json!({"text": "Edited."})),
            StatusCode::OK,
            vec!["note_draft.read:success", "note_draft.update:success"],
        ),
        (
            Method::POST,
            format!("{base}/drafts/{draft2}/note"),
            None,
            StatusCode::CREATED,
            vec!["note.create:success", "note_draft.update:success"],
        ),
        (
            Method::GET,
            format!("{base}/notes/{note3}/draft-changes"),
            None,
            StatusCode::OK,
            vec!["note.read:success", "note_draft.read:success"],
        ),
    ];
    let reception = f.app.token(f.w.a.user("reception")).await;
    let other = f.app.token(f.w.b.user("clinician")).await;
    let b = f.w.b.id.to_string();
    let a = f.w.a.id.to_string();
    let mut su = f.db.superuser_unsafe().await;
    for (method, path, body, ok, audit) in &routes {
        let what = format!("{method} {path}");
        let send = |token: Option<String>, path: String| {
            let (app, method, body) = (&f.app, method.clone(), body.clone());
            async move {
                let mut r = app.http.request(method, app.url(&path));
                if let Some(t) = token {
                    r = r.bearer_auth(t);
                }
                if let Some(b) = body {
                    r = r.json(&b);
                }
                r.send().await.unwrap()
            }
        };
        assert_eq!(
            send(None, path.clone()).await.status(),
            StatusCode::UNAUTHORIZED,
            "anonymous {what}"
        );
        assert_eq!(
            send(Some(other.clone()), path.clone()).await.status(),
            StatusCode::NOT_FOUND,
            "B's clinician in A: {what}"
        );
        assert_eq!(
            send(Some(other.clone()), path.replacen(&a, &b, 1))
                .await
                .status(),
            StatusCode::NOT_FOUND,
            "A's object through B: {what}"
        );
        let res = send(Some(reception.clone()), path.clone()).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "reception {what}");
        assert_eq!(
            audited(&mut su, f.w.a.id, &res).await,
            ["access.denied:denied"],
            "{what}"
        );
        let res = send(Some(f.clin.clone()), path.clone()).await;
        assert_eq!(res.status(), *ok, "clinician {what}");
        assert_eq!(
            audited(&mut su, f.w.a.id, &res).await,
            *audit,
            "clinician {what}"
        );
    }
}

/// A browser-like client that does not follow redirects.
fn page_client() -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(
            reqwest::Certificate::from_pem(testkit::test_certificate().0.as_bytes()).unwrap(),
        )
        .build()
        .unwrap()
}

// The authorization matrix of every scribe page: anonymous → sign-in, another practice 404
// (also for A's object through B's practice), reception, owner and admin 403 (audited
// `access.denied`, no transcript or draft text shown), the clinician with the API's audit
// events. The draft screen links each sentence to the segments it cites, shows the flags and
// the accept control; the note page shows the changes from the draft once signed.
#[tokio::test]
async fn scribe_pages_authorization_matrix() {
    let f = fx(script(honest_and_one_invented)).await;
    f.provider("drafting", true, true).await;
    let (visit, capture) = f.captured_visit(0).await;
    f.transcribe().await;
    let (_, t) = call(
        &f.app,
        Method::GET,
        &format!("{}/captures/{capture}/transcript", f.base()),
        Some(&f.clin),
        None,
    )
    .await;
    let seg = t["segments"][0]["segment_id"].as_str().unwrap().to_owned();
    let (_, d) = f.draft(&visit).await;
    let draft = d["draft_id"].as_str().unwrap().to_owned();
    let (_, d2) = f.draft(&visit).await;
    let draft2 = d2["draft_id"].as_str().unwrap().to_owned();
    let p = f.w.a.id;
    let app = format!("/app/practices/{p}");
    let routes: Vec<PageRoute> = vec![
        (
            Method::GET,
            format!("{app}/captures/{capture}/transcript"),
            vec![],
            StatusCode::OK,
            vec!["transcript.read"],
        ),
        (
            Method::POST,
            format!("{app}/transcript-segments/{seg}"),
            vec![
                ("text", "My gums bleed when I floss.".to_owned()),
                ("revision", "0".to_owned()),
                ("capture_id", capture.to_string()),
            ],
            StatusCode::SEE_OTHER,
            vec!["transcript.correct"],
        ),
        (
            Method::GET,
            format!("{app}/transcript-segments/{seg}"),
            vec![],
            StatusCode::OK,
            vec!["transcript.read"],
        ),
        (
            Method::GET,
            format!("{app}/visits/{visit}/drafts"),
            vec![],
            StatusCode::OK,
            vec!["note_draft.read"],
        ),
        (
            Method::POST,
            format!("{app}/visits/{visit}/drafts"),
            vec![("template", "free".to_owned())],
            StatusCode::SEE_OTHER,
            vec!["assistant.turn", "note_draft.create"],
        ),
        (
            Method::GET,
            format!("{app}/drafts/{draft}"),
            vec![],
            StatusCode::OK,
            vec!["note_draft.read", "transcript.read"],
        ),
        (
            Method::POST,
            format!("{app}/drafts/{draft}/sentences/2/accept"),
            vec![],
            StatusCode::SEE_OTHER,
            vec!["note_draft.update"],
        ),
        (
            Method::POST,
            format!("{app}/drafts/{draft}/sentences/1"),
            vec![(
                "text",
                "Probing depth 5 mm on tooth 14, bleeding.".to_owned(),
            )],
            StatusCode::SEE_OTHER,
            vec!["note_draft.update"],
        ),
        (
            Method::POST,
            format!("{app}/drafts/{draft2}/note"),
            vec![],
            StatusCode::SEE_OTHER,
            vec!["note.create", "note_draft.update"],
        ),
    ];
    let http = page_client();
    let cookie = |t: &str| format!("{}={t}", server::extract::SESSION_COOKIE);
    let reception = f.app.token(f.w.a.user("reception")).await;
    let owner = f.app.token(f.w.a.user("owner")).await;
    let other = f.app.token(f.w.b.user("clinician")).await;
    let (a, b) = (p.to_string(), f.w.b.id.to_string());
    let mut su = f.db.superuser_unsafe().await;
    for (method, path, form, ok, audit) in &routes {
        let what = format!("{method} {path}");
        let send = |token: Option<String>, path: String| {
            let (http, app, method, form) = (&http, &f.app, method.clone(), form.clone());
            async move {
                let post = method == Method::POST;
                let mut r = http.request(method, app.url(&path));
                if let Some(t) = token {
                    r = r.header(reqwest::header::COOKIE, cookie(&t));
                }
                if post {
                    r = r.header("sec-fetch-site", "same-origin").form(&form);
                }
                r.send().await.unwrap()
            }
        };
        let res = send(None, path.clone()).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "anonymous {what}");
        assert_eq!(res.headers()[reqwest::header::LOCATION], "/app/sign-in");
        let res = send(Some(other.clone()), path.clone()).await;
        assert_eq!(
            res.status(),
            StatusCode::NOT_FOUND,
            "B's clinician in A: {what}"
        );
        let res = send(Some(other.clone()), path.replacen(&a, &b, 1)).await;
        assert_eq!(
            res.status(),
            StatusCode::NOT_FOUND,
            "A's object through B: {what}"
        );
        for (who, token) in [("reception", &reception), ("owner", &owner)] {
            let res = send(Some(token.clone()), path.clone()).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{who} {what}");
            let actions = audited(&mut su, p, &res).await;
            let body = res.text().await.unwrap();
            for secret in [HEARD[0].2, "amoxicillin", "Probing depth"] {
                assert!(!body.contains(secret), "{who} {what} shows clinical text");
            }
            assert_eq!(actions, ["access.denied:denied"], "{who} {what}");
        }
        let res = send(Some(f.clin.clone()), path.clone()).await;
        assert_eq!(res.status(), *ok, "clinician {what}");
        let want: Vec<String> = audit.iter().map(|a| format!("{a}:success")).collect();
        assert_eq!(audited(&mut su, p, &res).await, want, "clinician {what}");
    }
    // The draft screen: evidence links to the segments on the same page, the flags, and
    // the accept control of the flagged sentence (accepted above now).
    let html = http
        .get(f.app.url(&format!("{app}/drafts/{draft2}")))
        .header(reqwest::header::COOKIE, cookie(&f.clin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let cited = d2["sentences"][0]["evidence"][0].as_str().unwrap();
    assert!(html.contains(&format!("href=\"#seg-{cited}\"")), "{html}");
    assert!(html.contains(&format!("id=\"seg-{cited}\"")), "{html}");
    assert!(
        html.contains("names a drug the cited transcript does not name"),
        "{html}"
    );
    assert!(html.contains("Accept this sentence"), "{html}");
    assert!(html.contains("AI-written draft"), "{html}");
    assert!(!html.contains("style="), "no inline style");
}
