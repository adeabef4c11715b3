//! The AWS adapters against loopback stand-ins of the real APIs, through the official SDKs:
//! - Bedrock `Converse` (REST JSON over HTTP/1.1): a good draft and the request it sent,
//!   truncation, throttling (with the SDK's own retry), errors and malformed replies;
//! - Transcribe Medical `StartMedicalStreamTranscription` (HTTP/2 over TLS, AWS event-stream
//!   framing, every frame signed): the audio events and request headers, speaker turns,
//!   rate limiting before and inside the stream, a bad request and the reply size limit.
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

// ---------------------------------------------------------------------------------------------
// Transcribe Medical streaming (`StartMedicalStreamTranscription`): HTTP/2 over TLS (the SDK
// speaks HTTP/2 only after ALPN), the audio and the transcript as AWS event-stream messages.

mod transcribe {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use aws_sdk_bedrockruntime::config::{Credentials, SharedCredentialsProvider};
    use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder, write_message_to};
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    use bytes::{Bytes, BytesMut};
    use egress::{
        AwsEnv, BaaAttestation, EgressError, Hosting, Limits, MedicalKind, ProviderPosture,
        TranscribeMedical, Transcriber, TranscriptionRequest, gate,
    };
    use http_body_util::{BodyExt as _, Full};
    use hyper::body::Incoming;
    use hyper::{Request, Response};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use serde_json::{Value, json};

    /// What the stand-in answers the next stream with.
    #[derive(Debug, Clone)]
    enum Answer {
        /// `TranscriptEvent`s with these `Transcript` bodies.
        Events(Vec<Value>),
        /// An HTTP error before the stream (`x-amzn-ErrorType`).
        Error { status: u16, error_type: String },
        /// An exception message inside the stream.
        StreamException(String),
    }

    /// One stream the stand-in received: the request headers and the audio it carried.
    #[derive(Debug, Clone, Default)]
    struct Stream {
        path: String,
        headers: Vec<(String, String)>,
        audio_events: usize,
        audio: Vec<u8>,
        end_frame: bool,
    }

    /// A stand-in of the Transcribe streaming API (`POST /medical-stream-transcription`,
    /// HTTP/2 over TLS on `127.0.0.1:0` with a throwaway certificate for `localhost`), for
    /// tests only. It reads the whole signed audio stream, then answers from its script.
    struct TranscribeStandIn {
        url: String,
        ca_pem: String,
        answers: Arc<Mutex<Vec<Answer>>>,
        streams: Arc<Mutex<Vec<Stream>>>,
    }

    fn header(m: &Message, name: &str) -> Option<String> {
        m.headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str().to_owned())
    }

    fn message(headers: &[(&str, &str)], payload: Vec<u8>) -> Bytes {
        let mut m = Message::new(payload);
        for (k, v) in headers {
            m = m.add_header(Header::new(
                (*k).to_owned(),
                HeaderValue::String((*v).to_owned().into()),
            ));
        }
        let mut out = Vec::new();
        write_message_to(&m, &mut out).unwrap();
        out.into()
    }

    async fn serve(
        req: Request<Incoming>,
        answers: Arc<Mutex<Vec<Answer>>>,
        streams: Arc<Mutex<Vec<Stream>>>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let mut stream = Stream {
            path: req.uri().path().to_owned(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            ..Stream::default()
        };
        let answer = {
            let mut a = answers.lock().unwrap();
            if a.is_empty() {
                None
            } else {
                Some(a.remove(0))
            }
        };
        let body = req.into_body().collect().await.unwrap().to_bytes();
        // Each frame is a signed envelope (`:date`, `:chunk-signature`) whose payload is the
        // event message; an empty payload ends the stream.
        let mut buf = BytesMut::from(&body[..]);
        let mut decoder = MessageFrameDecoder::new();
        while let DecodedFrame::Complete(outer) = decoder.decode_frame(&mut buf).unwrap() {
            assert!(
                outer
                    .headers()
                    .iter()
                    .any(|h| h.name().as_str() == ":chunk-signature"),
                "every frame is signed"
            );
            if outer.payload().is_empty() {
                stream.end_frame = true;
                continue;
            }
            let inner =
                aws_smithy_eventstream::frame::read_message_from(outer.payload().clone()).unwrap();
            assert_eq!(header(&inner, ":event-type").as_deref(), Some("AudioEvent"));
            stream.audio_events += 1;
            stream.audio.extend_from_slice(inner.payload());
        }
        streams.lock().unwrap().push(stream);
        let reply = match answer {
            Some(Answer::Events(transcripts)) => {
                let mut out = BytesMut::new();
                for t in transcripts {
                    out.extend_from_slice(&message(
                        &[
                            (":message-type", "event"),
                            (":event-type", "TranscriptEvent"),
                            (":content-type", "application/json"),
                        ],
                        json!({"Transcript": t}).to_string().into_bytes(),
                    ));
                }
                Response::builder()
                    .status(200)
                    .header("content-type", "application/vnd.amazon.eventstream")
                    .header("x-amzn-request-id", "00000000-0000-4000-8000-000000000001")
                    .body(Full::new(out.freeze()))
            }
            Some(Answer::StreamException(kind)) => Response::builder()
                .status(200)
                .header("content-type", "application/vnd.amazon.eventstream")
                .body(Full::new(message(
                    &[
                        (":message-type", "exception"),
                        (":exception-type", &kind),
                        (":content-type", "application/json"),
                    ],
                    json!({"Message": "stand-in exception"})
                        .to_string()
                        .into_bytes(),
                ))),
            Some(Answer::Error { status, error_type }) => Response::builder()
                .status(status)
                .header("content-type", "application/x-amz-json-1.1")
                .header("x-amzn-errortype", error_type.as_str())
                .body(Full::new(
                    json!({"__type": error_type, "Message": "stand-in error"})
                        .to_string()
                        .into(),
                )),
            None => Response::builder()
                .status(500)
                .header("x-amzn-errortype", "InternalFailureException")
                .body(Full::new(Bytes::from_static(b"{}"))),
        };
        Ok(reply.unwrap())
    }

    impl TranscribeStandIn {
        async fn start() -> Self {
            let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
            let ca_pem = cert.cert.pem();
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![cert.cert.der().clone()],
                    rustls::pki_types::PrivateKeyDer::Pkcs8(
                        cert.signing_key.serialize_der().into(),
                    ),
                )
                .unwrap();
            config.alpn_protocols = vec![b"h2".to_vec()];
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!(
                "https://localhost:{}",
                listener.local_addr().unwrap().port()
            );
            let answers = Arc::new(Mutex::new(Vec::new()));
            let streams = Arc::new(Mutex::new(Vec::new()));
            let (a, s) = (answers.clone(), streams.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let (acceptor, a, s) = (acceptor.clone(), a.clone(), s.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service =
                            hyper::service::service_fn(move |req| serve(req, a.clone(), s.clone()));
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            });
            Self {
                url,
                ca_pem,
                answers,
                streams,
            }
        }

        fn script(&self, a: Answer) {
            self.answers.lock().unwrap().push(a);
        }

        fn streams(&self) -> Vec<Stream> {
            self.streams.lock().unwrap().clone()
        }

        /// The SDK's HTTPS client trusting only this stand-in's certificate.
        fn env(&self) -> AwsEnv {
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .tls_context(
                    TlsContext::builder()
                        .with_trust_store(
                            TrustStore::empty().with_pem_certificate(self.ca_pem.as_bytes()),
                        )
                        .build()
                        .unwrap(),
                )
                .build_https();
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
                    .retry_config(aws_config::retry::RetryConfig::disabled())
                    .http_client(http)
                    .build(),
            )
        }
    }

    fn posture(url: &str) -> ProviderPosture {
        ProviderPosture {
            provider_id: Some(domain::ProviderId::new()),
            label: "Transcribe Medical stand-in".into(),
            base_url: url.into(),
            model: "transcribe-medical".into(),
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

    /// A 16 kHz 16-bit mono WAV of `samples` samples of a synthetic ramp.
    fn wav(samples: usize) -> TranscriptionRequest {
        let data: Vec<u8> = (0..samples)
            .flat_map(|i| u16::try_from(i % 4096).unwrap().to_le_bytes())
            .collect();
        let mut w = b"RIFF".to_vec();
        w.extend_from_slice(&u32::try_from(36 + data.len()).unwrap().to_le_bytes());
        w.extend_from_slice(b"WAVEfmt ");
        w.extend_from_slice(&16u32.to_le_bytes());
        w.extend_from_slice(&1u16.to_le_bytes());
        w.extend_from_slice(&1u16.to_le_bytes());
        w.extend_from_slice(&16_000u32.to_le_bytes());
        w.extend_from_slice(&32_000u32.to_le_bytes());
        w.extend_from_slice(&2u16.to_le_bytes());
        w.extend_from_slice(&16u16.to_le_bytes());
        w.extend_from_slice(b"data");
        w.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        w.extend_from_slice(&data);
        TranscriptionRequest {
            wav: w.into(),
            prompt: None,
            language: Some("en-US".into()),
        }
    }

    fn item(content: &str, start: f64, end: f64, speaker: &str) -> Value {
        json!({"StartTime": start, "EndTime": end, "Type": "pronunciation", "Content": content,
               "Confidence": 0.98, "Speaker": speaker})
    }

    // req: SCR-03
    #[tokio::test]
    async fn transcribe_medical_streams_audio_and_reads_speaker_turns() {
        let s = TranscribeStandIn::start().await;
        let cleared = gate(&posture(&s.url)).unwrap();
        let t = TranscribeMedical::new(s.env(), None, MedicalKind::Conversation, Limits::default());
        s.script(Answer::Events(vec![
            // A partial result is ignored; the final one is split at the speaker change.
            json!({"Results": [{"ResultId": "r1", "StartTime": 0.0, "EndTime": 0.5,
                "IsPartial": true, "ChannelId": "ch_0",
                "Alternatives": [{"Transcript": "Bleeding", "Items": []}]}]}),
            json!({"Results": [{"ResultId": "r1", "StartTime": 0.0, "EndTime": 2.0,
                "IsPartial": false, "ChannelId": "ch_0",
                "Alternatives": [{"Transcript": "Bleeding on three. Okay.", "Items": [
                    item("Bleeding", 0.0, 0.4, "0"), item("on", 0.4, 0.6, "0"),
                    item("three", 0.6, 1.0, "0"),
                    {"StartTime": 1.0, "EndTime": 1.0, "Type": "punctuation", "Content": ".", "Speaker": "0"},
                    item("Okay", 1.4, 2.0, "1")
                ]}]}]}),
        ]));
        // 0.25 s of audio: three events of at most 100 ms.
        let reply = t.transcribe(&cleared, wav(4000)).await.unwrap();
        let texts: Vec<(&str, Option<&str>, u64, u64)> = reply
            .segments
            .iter()
            .map(|g| (g.text.as_str(), g.speaker.as_deref(), g.start_ms, g.end_ms))
            .collect();
        assert_eq!(
            texts,
            vec![
                ("Bleeding on three.", Some("0"), 0, 1000),
                ("Okay", Some("1"), 1400, 2000)
            ]
        );

        let streams = s.streams();
        assert_eq!(streams.len(), 1);
        let st = &streams[0];
        assert_eq!(st.path, "/medical-stream-transcription");
        let h = |k: &str| {
            st.headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(h("x-amzn-transcribe-language-code"), Some("en-US"));
        assert_eq!(h("x-amzn-transcribe-sample-rate"), Some("16000"));
        assert_eq!(h("x-amzn-transcribe-media-encoding"), Some("pcm"));
        assert_eq!(h("x-amzn-transcribe-specialty"), Some("PRIMARYCARE"));
        assert_eq!(h("x-amzn-transcribe-type"), Some("CONVERSATION"));
        assert_eq!(h("x-amzn-transcribe-show-speaker-label"), Some("true"));
        let auth = h("authorization").unwrap();
        assert!(
            auth.contains("/us-east-1/transcribe/aws4_request"),
            "{auth}"
        );
        assert_eq!(st.audio_events, 3);
        assert!(st.end_frame, "the stream ends with the empty signed frame");
        assert_eq!(st.audio.len(), 8000);
    }

    // req: SCR-03
    #[tokio::test]
    async fn transcribe_medical_limits_and_exceptions() {
        let s = TranscribeStandIn::start().await;
        let cleared = gate(&posture(&s.url)).unwrap();
        let t = TranscribeMedical::new(s.env(), None, MedicalKind::Dictation, Limits::default());
        // Too many concurrent streams: HTTP 429 LimitExceededException.
        s.script(Answer::Error {
            status: 429,
            error_type: "LimitExceededException".into(),
        });
        let e = t.transcribe(&cleared, wav(1600)).await.unwrap_err();
        assert!(matches!(e, EgressError::RateLimited { .. }), "{e:?}");
        // The same inside the stream.
        s.script(Answer::StreamException("LimitExceededException".into()));
        let e = t.transcribe(&cleared, wav(1600)).await.unwrap_err();
        assert!(matches!(e, EgressError::RateLimited { .. }), "{e:?}");
        // A bad request.
        s.script(Answer::Error {
            status: 400,
            error_type: "BadRequestException".into(),
        });
        let e = t.transcribe(&cleared, wav(1600)).await.unwrap_err();
        assert!(matches!(e, EgressError::Status(400)), "{e:?}");
        // A transcript over the reply limit is refused whole.
        let small = TranscribeMedical::new(
            s.env(),
            None,
            MedicalKind::Dictation,
            Limits {
                max_reply_bytes: 16,
                ..Limits::default()
            },
        );
        s.script(Answer::Events(vec![json!({"Results": [{"ResultId": "r1",
            "StartTime": 0.0, "EndTime": 1.0, "IsPartial": false,
            "Alternatives": [{"Transcript": "Mesial furcation involvement on nineteen.", "Items": []}]}]})]));
        let e = small.transcribe(&cleared, wav(1600)).await.unwrap_err();
        assert!(matches!(e, EgressError::Malformed(_)), "{e:?}");
        // Another language is refused before any connection.
        let mut other = wav(1600);
        other.language = Some("de".into());
        let e = t.transcribe(&cleared, other).await.unwrap_err();
        assert!(matches!(e, EgressError::Malformed(_)), "{e:?}");
        assert_eq!(s.streams().len(), 4);
    }
}
