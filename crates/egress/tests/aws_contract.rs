//! The Bedrock `Converse` drafter against a loopback stand-in of the Bedrock Runtime API
//! (real HTTP through the official SDK, the documented REST shape): a good draft and the
//! request it sent, truncation, throttling (with the SDK's own retry), and malformed replies.
#![cfg(feature = "aws")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    clippy::panic,
    clippy::many_single_char_names,
    clippy::too_many_lines,
    reason = "integration tests: failures must be loud, fixtures use the wall clock"
)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use aws_sdk_bedrockruntime::config::{Credentials, SharedCredentialsProvider};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use egress::{
    AwsEnv, BaaAttestation, BedrockDrafter, DraftRequest, DraftSection, Drafter, EgressError,
    Hosting, Limits, ProviderPosture, gate,
};
use serde_json::{Value, json};

const MODEL: &str = "anthropic.claude-standin-v1:0";

/// A scripted answer of the Bedrock stand-in.
#[derive(Debug, Clone)]
enum Reply {
    /// A `Converse` answer: the draft as the forced tool's input, with this stop reason.
    Draft { input: Value, stop_reason: String },
    /// An AWS JSON error (`x-amzn-ErrorType` header and `__type` in the body).
    Error { status: u16, error_type: String },
    /// A 200 whose body is not JSON.
    Garbage,
}

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    recorded: Vec<Recorded>,
}

/// A stand-in of the Bedrock Runtime `Converse` API (`POST /model/{modelId}/converse`) on
/// `127.0.0.1:0`, for tests only: it counts and records every request, valid or not, and
/// answers from its script (first in first out).
#[derive(Clone)]
struct BedrockStandIn {
    url: String,
    inner: Arc<Mutex<Inner>>,
}

impl BedrockStandIn {
    async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().fallback(answer).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, inner }
    }

    fn script(&self, r: Reply) {
        self.inner.lock().unwrap().script.push_back(r);
    }

    fn requests(&self) -> usize {
        self.inner.lock().unwrap().recorded.len()
    }

    fn recorded(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().recorded.clone()
    }
}

async fn answer(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut g = inner.lock().unwrap();
        g.recorded.push(Recorded {
            method: method.clone(),
            path: uri.path().to_owned(),
            headers,
            body,
        });
        g.script.pop_front()
    };
    // The one operation this stand-in speaks; anything else is the service's 404.
    let is_converse = method == Method::POST
        && uri.path().starts_with("/model/")
        && uri.path().ends_with("/converse");
    let reply = match reply {
        _ if !is_converse => Reply::Error {
            status: 404,
            error_type: "UnknownOperationException".into(),
        },
        Some(r) => r,
        None => Reply::Error {
            status: 500,
            error_type: "InternalServerException".into(),
        },
    };
    let json_headers = [
        ("content-type", "application/json"),
        ("x-amzn-requestid", "00000000-0000-4000-8000-000000000000"),
    ];
    match reply {
        Reply::Draft { input, stop_reason } => (
            StatusCode::OK,
            json_headers,
            json!({
                "output": {"message": {"role": "assistant", "content": [
                    {"toolUse": {"toolUseId": "tooluse_standin1", "name": "soap_draft", "input": input}}
                ]}},
                "stopReason": stop_reason,
                "usage": {"inputTokens": 321, "outputTokens": 54, "totalTokens": 375},
                "metrics": {"latencyMs": 42}
            })
            .to_string(),
        )
            .into_response(),
        Reply::Error { status, error_type } => {
            let mut r = (
                StatusCode::from_u16(status).unwrap(),
                json_headers,
                json!({"__type": error_type, "message": "stand-in error"}).to_string(),
            )
                .into_response();
            r.headers_mut()
                .insert("x-amzn-errortype", error_type.parse().unwrap());
            r
        }
        Reply::Garbage => (StatusCode::OK, json_headers, "{\"output\": [").into_response(),
    }
}

/// A covered vendor at `url` (loopback `http` is allowed for a vendor on loopback only).
fn bedrock_posture(url: &str) -> ProviderPosture {
    ProviderPosture {
        provider_id: Some(domain::ProviderId::new()),
        label: "Bedrock stand-in".into(),
        base_url: url.into(),
        model: MODEL.into(),
        hosting: Hosting::Vendor,
        baa: Some(BaaAttestation {
            attested_by: domain::UserId::new(),
            attested_at: chrono::Utc::now(),
            document_ref: "BAA-TEST-AWS".into(),
        }),
        training_disabled: true,
        enabled: true,
    }
}

/// Static test credentials and a region; the SDK's standard retry with two attempts and a
/// millisecond backoff, so a throttle is retried once and the test stays fast.
fn test_env() -> AwsEnv {
    AwsEnv::with_config(
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "AKIDSTANDIN",
                "standin-secret",
                None,
                None,
                "aws-contract-test",
            )))
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(2)
                    .with_initial_backoff(std::time::Duration::from_millis(1))
                    .with_max_backoff(std::time::Duration::from_millis(5)),
            )
            .build(),
    )
}

fn drafter() -> BedrockDrafter {
    BedrockDrafter::new(
        test_env(),
        None,
        Limits {
            max_output_tokens: 900,
            ..Limits::default()
        },
    )
}

fn draft_request() -> (DraftRequest, domain::SegmentId, domain::SegmentId) {
    let (a, b) = (domain::SegmentId::new(), domain::SegmentId::new());
    (
        DraftRequest {
            template: "dental_hygiene".into(),
            segments: vec![
                (a, "Bleeding on probing at three.".into()),
                (b, "Patient flosses twice a week.".into()),
            ],
            findings: vec!["Probing depths: 3 MB 4 mm".into()],
            edit: None,
        },
        a,
        b,
    )
}

fn good_draft(a: domain::SegmentId, b: domain::SegmentId) -> Reply {
    Reply::Draft {
        input: json!({"sentences": [
            {"section": "objective", "text": "Bleeding on probing at three.", "evidence": [a.to_string()]},
            {"section": "subjective", "text": "Patient flosses twice a week.", "evidence": [b.to_string()]}
        ]}),
        stop_reason: "tool_use".into(),
    }
}

// req: SCR-03
#[tokio::test]
async fn bedrock_converse_drafts_through_a_forced_tool() {
    let s = BedrockStandIn::start().await;
    let cleared = gate(&bedrock_posture(&s.url)).unwrap();
    let (request, a, b) = draft_request();
    s.script(good_draft(a, b));

    let reply = drafter().draft(&cleared, request).await.unwrap();
    assert_eq!(reply.sentences.len(), 2);
    assert_eq!(reply.sentences[0].section, DraftSection::Objective);
    assert_eq!(reply.sentences[0].text, "Bleeding on probing at three.");
    assert_eq!(reply.sentences[0].evidence, vec![a]);
    assert_eq!(reply.sentences[1].section, DraftSection::Subjective);
    assert_eq!(reply.sentences[1].evidence, vec![b]);
    assert_eq!(reply.usage.input_tokens, Some(321));
    assert_eq!(reply.usage.output_tokens, Some(54));

    // The request: the documented REST path, SigV4-signed, the forced tool with the draft's
    // schema, the system instructions, and the transcript segments with their ids.
    assert_eq!(s.requests(), 1);
    let r = &s.recorded()[0];
    assert_eq!(r.method, Method::POST);
    assert_eq!(
        r.path, "/model/anthropic.claude-standin-v1%3A0/converse",
        "the model id is percent-encoded into the path"
    );
    let auth = r.headers["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDSTANDIN/"),
        "{auth}"
    );
    assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
    assert!(!auth.contains("standin-secret"));
    assert!(r.headers.contains_key("x-amz-date"));
    assert_eq!(r.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "soap_draft"}})
    );
    let tools = body["toolConfig"]["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["toolSpec"]["name"], "soap_draft");
    assert_eq!(
        tools[0]["toolSpec"]["inputSchema"]["json"],
        egress::draft::schema()
    );
    assert_eq!(body["inferenceConfig"]["maxTokens"], 900);
    assert_eq!(body["inferenceConfig"]["temperature"], 0.0);
    assert_eq!(
        body["system"][0]["text"].as_str().unwrap(),
        egress::draft::INSTRUCTIONS
    );
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["role"], "user");
    let text = messages[0]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("id={a}: Bleeding on probing at three.")),
        "{text}"
    );
    assert!(
        text.contains(&format!("id={b}: Patient flosses twice a week.")),
        "{text}"
    );
    assert!(text.contains("Probing depths: 3 MB 4 mm"), "{text}");
}

// req: SCR-03
#[tokio::test]
async fn bedrock_converse_truncation_throttling_and_errors() {
    let s = BedrockStandIn::start().await;
    let cleared = gate(&bedrock_posture(&s.url)).unwrap();
    let d = drafter();
    let (request, a, b) = draft_request();

    // The token limit: the draft may be incomplete, so it is refused.
    s.script(Reply::Draft {
        input: json!({"sentences": [{"section": "objective", "text": "Bleeding on", "evidence": []}]}),
        stop_reason: "max_tokens".into(),
    });
    let e = d.draft(&cleared, request.clone()).await.unwrap_err();
    assert!(matches!(e, EgressError::Truncated), "{e:?}");
    assert_eq!(s.requests(), 1);

    // Throttling (HTTP 429, ThrottlingException): the SDK retries once, then rate limited.
    for _ in 0..2 {
        s.script(Reply::Error {
            status: 429,
            error_type: "ThrottlingException".into(),
        });
    }
    let e = d.draft(&cleared, request.clone()).await.unwrap_err();
    assert!(
        matches!(
            e,
            EgressError::RateLimited {
                retry_after_secs: None
            }
        ),
        "{e:?}"
    );
    assert_eq!(s.requests(), 3, "one request and one retry");

    // A throttle then a good draft: the retry recovers.
    s.script(Reply::Error {
        status: 429,
        error_type: "ThrottlingException".into(),
    });
    s.script(good_draft(a, b));
    let reply = d.draft(&cleared, request.clone()).await.unwrap();
    assert_eq!(reply.sentences.len(), 2);
    assert_eq!(s.requests(), 5);

    // A validation error is the service's 400, not retried.
    s.script(Reply::Error {
        status: 400,
        error_type: "ValidationException".into(),
    });
    let e = d.draft(&cleared, request.clone()).await.unwrap_err();
    assert!(matches!(e, EgressError::Status(400)), "{e:?}");
    assert_eq!(s.requests(), 6);

    // Malformed replies: not JSON; a draft off its schema; no draft at all.
    s.script(Reply::Garbage);
    let e = d.draft(&cleared, request.clone()).await.unwrap_err();
    assert!(matches!(e, EgressError::Malformed(_)), "{e:?}");
    s.script(Reply::Draft {
        input: json!({"sentences": [{"section": "history", "text": "Invented."}]}),
        stop_reason: "tool_use".into(),
    });
    let e = d.draft(&cleared, request.clone()).await.unwrap_err();
    assert!(matches!(e, EgressError::Malformed(_)), "{e:?}");
    s.script(Reply::Draft {
        input: json!({"sentences": []}),
        stop_reason: "content_filtered".into(),
    });
    let e = d.draft(&cleared, request).await.unwrap_err();
    assert!(matches!(e, EgressError::Malformed(_)), "{e:?}");
    assert_eq!(s.requests(), 9);
}
