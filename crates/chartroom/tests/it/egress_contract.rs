//! The egress adapters against the provider stand-ins (real HTTP on loopback, the providers'
//! request and response shapes): normal replies, truncation, rate limiting, malformed and
//! oversized replies; and the gate refusing providers before any connection opens.

use egress::{
    AnthropicDrafter, ApiKey, BaaAttestation, DraftRequest, DraftSection, Drafter, EgressError,
    Hosting, Limits, OpenAiDrafter, OpenAiTranscriber, ProviderPosture, Refusal, Transcriber,
    TranscriptionRequest, gate, gate_with_hosts,
};
use serde_json::json;
use testkit::standins::{Reply, StandIn, StandInSegment};

const KEY: &str = "sk-standin-key";

fn posture(url: &str, hosting: Hosting) -> ProviderPosture {
    ProviderPosture {
        provider_id: Some(domain::ProviderId::new()),
        label: "Stand-in".into(),
        base_url: url.into(),
        model: "standin-model".into(),
        hosting,
        baa: None,
        training_disabled: false,
        enabled: true,
    }
}

/// A vendor with everything the gate asks for.
fn covered_vendor(url: &str) -> ProviderPosture {
    ProviderPosture {
        baa: Some(BaaAttestation {
            attested_by: domain::UserId::new(),
            attested_at: chrono::Utc::now(),
            document_ref: "BAA-TEST-1".into(),
        }),
        training_disabled: true,
        ..posture(url, Hosting::Vendor)
    }
}

fn clip() -> TranscriptionRequest {
    // A synthetic 16-bit mono WAV header plus a little silence.
    let mut wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    wav.extend_from_slice(&[0; 64]);
    TranscriptionRequest {
        wav: wav.into(),
        prompt: Some("furcation suppuration mesial".into()),
        language: Some("en".into()),
    }
}

fn draft_request() -> DraftRequest {
    DraftRequest {
        template: "dental_hygiene".into(),
        segments: vec![
            (
                domain::SegmentId::new(),
                "Bleeding on probing at three.".into(),
            ),
            (
                domain::SegmentId::new(),
                "Patient flosses twice a week.".into(),
            ),
        ],
        findings: vec!["Probing depths: 3 MB 4 mm".into()],
        edit: None,
    }
}

fn small_limits() -> Limits {
    Limits {
        max_reply_bytes: 64 * 1024,
        ..Limits::default()
    }
}

// req: SCR-03
#[tokio::test]
async fn openai_transcription_speaks_verbose_json_and_filters_invented_text() {
    let s = StandIn::openai().await;
    s.require_key(KEY);
    let t = OpenAiTranscriber::new(Some(ApiKey::new(KEY.into()))).unwrap();
    let cleared = gate(&posture(&s.url(), Hosting::SelfHosted)).unwrap();

    let reply = t.transcribe(&cleared, clip()).await.unwrap();
    let texts: Vec<_> = reply.segments.iter().map(|x| x.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Probing depths four four three on tooth three.",
            "Bleeding on probing at the mesial."
        ]
    );
    assert_eq!(
        (reply.segments[1].start_ms, reply.segments[1].end_ms),
        (2400, 4800)
    );
    let rec = &s.recorded()[0];
    assert_eq!(rec.path, "/v1/audio/transcriptions");
    assert_eq!(
        rec.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(rec.field("model").as_deref(), Some("standin-model"));
    assert_eq!(
        rec.field("response_format").as_deref(),
        Some("verbose_json")
    );
    assert_eq!(rec.field("language").as_deref(), Some("en"));
    assert_eq!(
        rec.field("prompt").as_deref(),
        Some("furcation suppuration mesial")
    );
    assert_eq!(rec.field("file").map(|f| f.len()), Some(clip().wav.len()));

    // Silence hallucinations, no-speech segments and repetition loops are dropped.
    s.script(Reply::Transcript(vec![
        StandInSegment::speech(0.0, 1.0, "Recession on eight."),
        StandInSegment::speech(1.0, 2.0, "Thank you for watching."),
        StandInSegment {
            no_speech_prob: 0.92,
            avg_logprob: -1.6,
            ..StandInSegment::speech(2.0, 3.0, "Floss.")
        },
        StandInSegment {
            compression_ratio: 3.4,
            ..StandInSegment::speech(3.0, 4.0, "four four four four four four")
        },
        StandInSegment::speech(4.0, 5.0, "you"),
        StandInSegment::speech(5.0, 6.0, "Subtitles by the Amara.org community"),
    ]));
    let reply = t.transcribe(&cleared, clip()).await.unwrap();
    let texts: Vec<_> = reply.segments.iter().map(|x| x.text.as_str()).collect();
    assert_eq!(texts, ["Recession on eight."]);
}

#[tokio::test]
async fn openai_transcription_failures_are_errors() {
    let s = StandIn::openai().await;
    let t = OpenAiTranscriber::with_limits(None, small_limits()).unwrap();
    let cleared = gate(&posture(&s.url(), Hosting::SelfHosted)).unwrap();

    s.script(Reply::RateLimited {
        retry_after_secs: 7,
    });
    let e = t.transcribe(&cleared, clip()).await.unwrap_err();
    assert!(
        matches!(
            e,
            EgressError::RateLimited {
                retry_after_secs: Some(7)
            }
        ),
        "{e:?}"
    );

    s.script(Reply::Malformed);
    let e = t.transcribe(&cleared, clip()).await.unwrap_err();
    assert!(matches!(e, EgressError::Malformed(_)), "{e:?}");

    s.script(Reply::Oversized(200_000));
    let e = t.transcribe(&cleared, clip()).await.unwrap_err();
    assert!(
        matches!(e, EgressError::Malformed(ref m) if m.contains("larger")),
        "{e:?}"
    );

    s.script(Reply::Status(500));
    let e = t.transcribe(&cleared, clip()).await.unwrap_err();
    assert!(matches!(e, EgressError::Status(500)), "{e:?}");

    // A wrong key: the provider's 401 is an HTTP error, and the key is not in the error.
    s.require_key(KEY);
    let wrong = OpenAiTranscriber::new(Some(ApiKey::new("sk-wrong-one".into()))).unwrap();
    let e = wrong.transcribe(&cleared, clip()).await.unwrap_err();
    assert!(matches!(e, EgressError::Status(401)), "{e:?}");
    assert!(!format!("{e} {e:?} {wrong:?}").contains("sk-wrong-one"));
    assert_eq!(s.requests(), 5);
}

// req: SCR-03
#[tokio::test]
async fn openai_drafting_asks_for_strict_json_and_returns_cited_sentences() {
    let s = StandIn::openai().await;
    s.require_key(KEY);
    let d = OpenAiDrafter::new(Some(ApiKey::new(KEY.into()))).unwrap();
    let cleared = gate(&covered_vendor(&s.url())).unwrap();
    let request = draft_request();

    let reply = d.draft(&cleared, request.clone()).await.unwrap();
    assert_eq!(reply.sentences.len(), 2);
    for (sentence, (id, text)) in reply.sentences.iter().zip(&request.segments) {
        assert_eq!(sentence.evidence, vec![*id]);
        assert_eq!(&sentence.text, text);
        assert_eq!(sentence.section, DraftSection::Objective);
    }
    assert_eq!(reply.usage.input_tokens, Some(420));
    assert_eq!(reply.usage.output_tokens, Some(64));
    let rec = &s.recorded()[0];
    assert_eq!(rec.path, "/v1/chat/completions");
    let body = rec.json.as_ref().unwrap();
    assert_eq!(body["model"], "standin-model");
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(
        body["response_format"]["json_schema"]["schema"]["required"],
        json!(["sentences"])
    );
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains(&format!(
        "[1] id={}: Bleeding on probing at three.",
        request.segments[0].0
    )));
    assert!(user.contains("Template: dental_hygiene"));
    assert!(user.contains("- Probing depths: 3 MB 4 mm"));

    // Evidence ids that were not in the request are kept (the evidence check flags them).
    let stranger = domain::SegmentId::new();
    s.script(Reply::Draft(json!({"sentences": [
        {"section": "assessment", "text": "Localized gingivitis.", "evidence": [stranger.to_string()]}
    ]})));
    let reply = d.draft(&cleared, request).await.unwrap();
    assert_eq!(reply.sentences[0].evidence, vec![stranger]);
}

#[tokio::test]
async fn openai_drafting_failures_are_errors_never_partial_notes() {
    let s = StandIn::openai().await;
    let d = OpenAiDrafter::with_limits(None, small_limits()).unwrap();
    let cleared = gate(&covered_vendor(&s.url())).unwrap();

    s.script(Reply::Truncated);
    let e = d.draft(&cleared, draft_request()).await.unwrap_err();
    assert!(matches!(e, EgressError::Truncated), "{e:?}");

    s.script(Reply::RateLimited {
        retry_after_secs: 30,
    });
    let e = d.draft(&cleared, draft_request()).await.unwrap_err();
    assert!(
        matches!(
            e,
            EgressError::RateLimited {
                retry_after_secs: Some(30)
            }
        ),
        "{e:?}"
    );

    s.script(Reply::Malformed);
    let e = d.draft(&cleared, draft_request()).await.unwrap_err();
    assert!(matches!(e, EgressError::Malformed(_)), "{e:?}");

    // One good sentence and one off-schema sentence: the whole reply is refused.
    let id = draft_request().segments[0].0;
    s.script(Reply::Draft(json!({"sentences": [
        {"section": "plan", "text": "Recall in three months.", "evidence": [id.to_string()]},
        {"section": "plan", "text": "Floss.", "evidence": ["segment one"]}
    ]})));
    let e = d.draft(&cleared, draft_request()).await.unwrap_err();
    assert!(matches!(e, EgressError::Malformed(_)), "{e:?}");

    s.script(Reply::Oversized(100_000));
    let e = d.draft(&cleared, draft_request()).await.unwrap_err();
    assert!(
        matches!(e, EgressError::Malformed(ref m) if m.contains("larger")),
        "{e:?}"
    );
    assert_eq!(s.requests(), 5);
}

// req: SCR-03
#[tokio::test]
async fn anthropic_drafting_uses_a_forced_tool_and_maps_failures() {
    let s = StandIn::anthropic().await;
    s.require_key(KEY);
    let d = AnthropicDrafter::with_limits(Some(ApiKey::new(KEY.into())), small_limits()).unwrap();
    let cleared = gate(&covered_vendor(&s.url())).unwrap();
    let request = draft_request();

    let reply = d.draft(&cleared, request.clone()).await.unwrap();
    let cited: Vec<_> = reply
        .sentences
        .iter()
        .flat_map(|x| x.evidence.clone())
        .collect();
    assert_eq!(
        cited,
        request.segments.iter().map(|x| x.0).collect::<Vec<_>>()
    );
    let rec = &s.recorded()[0];
    assert_eq!(rec.path, "/v1/messages");
    assert_eq!(rec.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(rec.header("x-api-key"), Some(KEY));
    let body = rec.json.as_ref().unwrap();
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "soap_draft"})
    );
    assert_eq!(
        body["tools"][0]["input_schema"]["required"],
        json!(["sentences"])
    );
    assert!(body["max_tokens"].is_u64());

    for (scripted, check) in [
        (
            Reply::Truncated,
            (|e: &EgressError| matches!(e, EgressError::Truncated)) as fn(&EgressError) -> bool,
        ),
        (
            Reply::RateLimited {
                retry_after_secs: 12,
            },
            |e: &EgressError| {
                matches!(
                    e,
                    EgressError::RateLimited {
                        retry_after_secs: Some(12)
                    }
                )
            },
        ),
        (Reply::Overloaded, |e: &EgressError| {
            matches!(e, EgressError::RateLimited { .. })
        }),
        (Reply::Malformed, |e: &EgressError| {
            matches!(e, EgressError::Malformed(_))
        }),
        (
            Reply::Oversized(100_000),
            |e: &EgressError| matches!(e, EgressError::Malformed(m) if m.contains("larger")),
        ),
        (Reply::Status(500), |e: &EgressError| {
            matches!(e, EgressError::Status(500))
        }),
    ] {
        s.script(scripted.clone());
        let e = d.draft(&cleared, request.clone()).await.unwrap_err();
        assert!(check(&e), "{scripted:?} gave {e:?}");
    }
    assert_eq!(s.requests(), 7);
}

// req: SCR-03
#[tokio::test]
async fn the_gate_refuses_before_any_connection() {
    let openai = StandIn::openai().await;
    let anthropic = StandIn::anthropic().await;
    let t = OpenAiTranscriber::new(None).unwrap();
    let o = OpenAiDrafter::new(None).unwrap();
    let a = AnthropicDrafter::new(None).unwrap();
    let port = |s: &StandIn| s.url().rsplit(':').next().unwrap().to_owned();

    let no_baa = ProviderPosture {
        baa: None,
        ..covered_vendor(&openai.url())
    };
    let training = ProviderPosture {
        training_disabled: false,
        ..covered_vendor(&openai.url())
    };
    let disabled = ProviderPosture {
        enabled: false,
        ..posture(&openai.url(), Hosting::SelfHosted)
    };
    // A public host name marked self-hosted, not listed by the operator.
    let public = posture(
        &format!("http://api.openai.com:{}", port(&openai)),
        Hosting::SelfHosted,
    );
    let cases = [
        (no_baa, Refusal::NoBaa),
        (training, Refusal::TrainingEnabled),
        (disabled, Refusal::Disabled),
        (public.clone(), Refusal::NotLocal),
    ];
    for (p, want) in &cases {
        for base in [openai.url(), anthropic.url()] {
            let p = ProviderPosture {
                base_url: if *want == Refusal::NotLocal {
                    p.base_url.clone()
                } else {
                    base
                },
                ..p.clone()
            };
            // The adapters take only a cleared provider: a refusal means no call at all.
            match gate(&p) {
                Ok(cleared) => {
                    let _ = t.transcribe(&cleared, clip()).await;
                    let _ = o.draft(&cleared, draft_request()).await;
                    let _ = a.draft(&cleared, draft_request()).await;
                    panic!("{p:?} was cleared");
                }
                Err(r) => assert_eq!(&r, want),
            }
        }
    }
    assert_eq!(openai.requests(), 0);
    assert_eq!(anthropic.requests(), 0);

    // Listed by the operator, the same host is its own; the stand-ins are reachable when cleared.
    assert!(gate_with_hosts(&public, &["api.openai.com".into()]).is_ok());
    let cleared = gate(&posture(&openai.url(), Hosting::SelfHosted)).unwrap();
    t.transcribe(&cleared, clip()).await.unwrap();
    assert_eq!(openai.requests(), 1);
}
