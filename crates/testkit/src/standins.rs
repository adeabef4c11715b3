//! Stand-ins for the paid AI APIs (`OpenAI` and Anthropic), for tests only.
//!
//! Each stand-in is a real HTTP server on `127.0.0.1:0` speaking the providers' documented
//! request and response shapes:
//! - `OpenAI` `POST /v1/audio/transcriptions` (multipart; `response_format=verbose_json` gives
//!   segments with `start`/`end` seconds, `avg_logprob`, `compression_ratio`, `no_speech_prob`),
//! - `OpenAI` `POST /v1/chat/completions` (`choices[0].message.content` holding the JSON the
//!   request's `response_format` asked for, `finish_reason`, `usage`),
//! - Anthropic `POST /v1/messages` (`anthropic-version` header, a forced tool call whose
//!   `input` is the structured answer, `stop_reason`, `usage`).
//!
//! Replies are scripted ([`StandIn::script`], first in first out); with nothing scripted a
//! stand-in gives its [`Reply::Normal`] answer. Every request that reaches the server, valid or
//! not, is counted ([`StandIn::requests`]) and recorded ([`StandIn::recorded`]), so a test can
//! prove that a refused call never connected.
//!
//! ```ignore
//! let openai = StandIn::openai().await;
//! openai.script(Reply::RateLimited { retry_after_secs: 7 });
//! // … point an adapter at openai.url() …
//! assert_eq!(openai.requests(), 1);
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// Which API a stand-in speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `OpenAI` (transcriptions and chat completions).
    OpenAi,
    /// Anthropic (messages).
    Anthropic,
}

/// One transcript segment a transcription stand-in answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct StandInSegment {
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// The text (synthetic only).
    pub text: String,
    /// `no_speech_prob`.
    pub no_speech_prob: f64,
    /// `avg_logprob`.
    pub avg_logprob: f64,
    /// `compression_ratio`.
    pub compression_ratio: f64,
}

impl StandInSegment {
    /// A confident speech segment.
    #[must_use]
    pub fn speech(start: f64, end: f64, text: &str) -> Self {
        Self {
            start,
            end,
            text: text.to_owned(),
            no_speech_prob: 0.01,
            avg_logprob: -0.2,
            compression_ratio: 1.2,
        }
    }
}

/// A scripted reply.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The stand-in's ordinary answer: for a transcription two synthetic segments, for a draft
    /// one objective sentence per transcript segment in the request (its text, citing its id).
    Normal,
    /// A transcription with these segments.
    Transcript(Vec<StandInSegment>),
    /// A draft with this structured answer (`{"sentences": [...]}`), in the API's envelope.
    Draft(Value),
    /// The [`Reply::Normal`] draft (each transcript segment of the request as a sentence
    /// citing it) followed by these sentences (`{"section", "text", "evidence"}`), e.g. one the
    /// transcript does not support: for callers that cannot know the segment ids in advance.
    DraftPlus(Vec<Value>),
    /// Cut at the token limit (`finish_reason: "length"` / `stop_reason: "max_tokens"`); a
    /// transcription answers normally.
    Truncated,
    /// HTTP 429 with `Retry-After`.
    RateLimited {
        /// The `Retry-After` seconds.
        retry_after_secs: u64,
    },
    /// Anthropic's HTTP 529 "overloaded".
    Overloaded,
    /// A well-formed envelope whose content does not match the requested schema (no segments;
    /// a draft with an unknown section and no evidence).
    Malformed,
    /// A normal answer padded with an ignored field to at least this many bytes.
    Oversized(usize),
    /// An HTTP error status with the API's error envelope.
    Status(u16),
}

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request path.
    pub path: String,
    /// The request headers (names in lower case).
    pub headers: Vec<(String, String)>,
    /// The JSON body (chat, messages), if it was JSON.
    pub json: Option<Value>,
    /// The multipart form fields (transcriptions): name and bytes.
    pub form: Vec<(String, Vec<u8>)>,
}

impl Recorded {
    /// A header's value.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A form field's value as text.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<String> {
        self.form
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    recorded: Vec<Recorded>,
    required_key: Option<String>,
}

struct Shared {
    api: Api,
    inner: Mutex<Inner>,
}

/// A running stand-in; stops when dropped.
pub struct StandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    /// A stand-in for `OpenAI`'s `/v1/audio/transcriptions` and `/v1/chat/completions`.
    pub async fn openai() -> Self {
        Self::start(Api::OpenAi).await
    }

    /// A stand-in for Anthropic's `/v1/messages`.
    pub async fn anthropic() -> Self {
        Self::start(Api::Anthropic).await
    }

    async fn start(api: Api) -> Self {
        let shared = Arc::new(Shared {
            api,
            inner: Mutex::new(Inner::default()),
        });
        let router = Router::new()
            .route("/v1/audio/transcriptions", post(transcriptions))
            .route("/v1/chat/completions", post(chat))
            .route("/v1/messages", post(messages))
            .fallback(fallback)
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the stand-in");
        let addr = listener.local_addr().expect("the stand-in's address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { addr, shared, task }
    }

    /// The base URL (`http://127.0.0.1:<port>`), without a trailing slash.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a reply for the next request (first in, first out).
    pub fn script(&self, reply: Reply) {
        self.lock().script.push_back(reply);
    }

    /// Requires this API key (bearer for `OpenAI`, `x-api-key` for Anthropic); requests without
    /// it get 401.
    pub fn require_key(&self, key: &str) {
        self.lock().required_key = Some(key.to_owned());
    }

    /// How many requests reached the server (any path, valid or not).
    #[must_use]
    pub fn requests(&self) -> usize {
        self.lock().recorded.len()
    }

    /// The requests received, in order.
    #[must_use]
    pub fn recorded(&self) -> Vec<Recorded> {
        self.lock().recorded.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().expect("stand-in state")
    }
}

impl Shared {
    fn record(&self, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Recorded {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let json = serde_json::from_slice(body).ok();
        let form = content_type
            .split(';')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("boundary="))
            .filter(|_| content_type.starts_with("multipart/form-data"))
            .map(|b| parse_multipart(body, b.trim_matches('"')))
            .unwrap_or_default();
        let rec = Recorded {
            path: uri.path().to_owned(),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            json,
            form,
        };
        self.inner
            .lock()
            .expect("stand-in state")
            .recorded
            .push(rec.clone());
        rec
    }

    fn next(&self) -> (Reply, Option<String>) {
        let mut inner = self.inner.lock().expect("stand-in state");
        (
            inner.script.pop_front().unwrap_or(Reply::Normal),
            inner.required_key.clone(),
        )
    }
}

/// The fields of a multipart body (enough for the stand-in; not a general parser).
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let mut fields = Vec::new();
    let mut rest = body;
    while let Some(pos) = find(rest, delim.as_bytes()) {
        rest = &rest[pos + delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let Some(head_end) = find(rest, b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let content = &rest[head_end + 4..];
        let Some(end) = find(content, format!("\r\n{delim}").as_bytes()) else {
            break;
        };
        let name = head
            .split(';')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("name="))
            .map(|n| n.trim_matches('"').to_owned())
            .unwrap_or_default();
        fields.push((name, content[..end].to_vec()));
        rest = &content[end + 2..];
    }
    fields
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn openai_error(status: StatusCode, message: &str) -> Response {
    let kind = match status.as_u16() {
        429 => "rate_limit_exceeded",
        401 => "invalid_api_key",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    };
    (
        status,
        axum::Json(
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
        ),
    )
        .into_response()
}

fn anthropic_error(status: StatusCode, message: &str) -> Response {
    let kind = match status.as_u16() {
        429 => "rate_limit_error",
        529 => "overloaded_error",
        401 => "authentication_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    };
    (
        status,
        axum::Json(json!({"type": "error", "error": {"type": kind, "message": message}})),
    )
        .into_response()
}

fn json_reply(value: &Value, pad_to: Option<usize>) -> Response {
    let mut value = value.clone();
    if let (Some(n), Some(obj)) = (pad_to, value.as_object_mut()) {
        obj.insert("padding".into(), Value::String("x".repeat(n)));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn common_failure(reply: &Reply, error: fn(StatusCode, &str) -> Response) -> Option<Response> {
    match reply {
        Reply::RateLimited { retry_after_secs } => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit reached.");
            r.headers_mut().insert(
                header::RETRY_AFTER,
                retry_after_secs
                    .to_string()
                    .parse()
                    .expect("a number header"),
            );
            Some(r)
        }
        Reply::Overloaded => Some(error(StatusCode::from_u16(529).expect("529"), "Overloaded")),
        Reply::Status(code) => Some(error(
            StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "Scripted error.",
        )),
        _ => None,
    }
}

fn bearer_ok(headers: &HeaderMap, key: Option<&String>) -> bool {
    key.is_none_or(|k| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(format!("Bearer {k}").as_str())
    })
}

async fn fallback(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.record(&uri, &headers, &body);
    StatusCode::NOT_FOUND.into_response()
}

async fn transcriptions(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rec = s.record(&uri, &headers, &body);
    let (reply, key) = s.next();
    if s.api != Api::OpenAi {
        return StatusCode::NOT_FOUND.into_response();
    }
    if !bearer_ok(&headers, key.as_ref()) {
        return openai_error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.");
    }
    let file_ok = rec.form.iter().any(|(n, v)| n == "file" && !v.is_empty());
    if rec.field("model").is_none_or(|m| m.is_empty()) || !file_ok {
        return openai_error(StatusCode::BAD_REQUEST, "model and file are required.");
    }
    if rec.field("response_format").as_deref() != Some("verbose_json") {
        return openai_error(
            StatusCode::BAD_REQUEST,
            "This stand-in answers response_format=verbose_json only.",
        );
    }
    if let Some(r) = common_failure(&reply, openai_error) {
        return r;
    }
    let segments = match &reply {
        Reply::Transcript(segs) => segs.clone(),
        _ => vec![
            StandInSegment::speech(0.0, 2.4, "Probing depths four four three on tooth three."),
            StandInSegment::speech(2.4, 4.8, "Bleeding on probing at the mesial."),
        ],
    };
    if matches!(reply, Reply::Malformed) {
        return json_reply(
            &json!({"task": "transcribe", "text": "no segments here"}),
            None,
        );
    }
    let text: String = segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let duration = segments.last().map_or(0.0, |s| s.end);
    let body = json!({
        "task": "transcribe",
        "language": "english",
        "duration": duration,
        "text": text,
        "segments": segments.iter().enumerate().map(|(i, seg)| json!({
            "id": i, "seek": 0, "start": seg.start, "end": seg.end, "text": format!(" {}", seg.text),
            "tokens": [50364, 400], "temperature": 0.0, "avg_logprob": seg.avg_logprob,
            "compression_ratio": seg.compression_ratio, "no_speech_prob": seg.no_speech_prob,
        })).collect::<Vec<_>>(),
        "usage": {"type": "duration", "seconds": duration.ceil()},
    });
    let pad = if let Reply::Oversized(n) = reply {
        Some(n)
    } else {
        None
    };
    json_reply(&body, pad)
}

/// The transcript segment ids and texts in a drafting request's user message
/// (`[n] id=<uuid>: text` lines, as the drafting adapters write them).
fn segments_in(message: &str) -> Vec<(String, String)> {
    message
        .lines()
        .filter(|l| l.starts_with('['))
        .filter_map(|l| {
            let rest = &l[l.find("] id=")? + 5..];
            let (id, text) = rest.split_once(": ")?;
            Some((id.to_owned(), text.to_owned()))
        })
        .collect()
}

fn normal_draft(user_message: &str) -> Value {
    let segs = segments_in(user_message);
    if segs.is_empty() {
        return json!({"sentences": [{"section": "plan", "text": "Review the findings.", "evidence": []}]});
    }
    json!({"sentences": segs.into_iter().map(|(id, text)| json!({
        "section": "objective", "text": text, "evidence": [id]
    })).collect::<Vec<_>>()})
}

fn malformed_draft() -> Value {
    json!({"sentences": [{"section": "history", "text": "Invented."}]})
}

fn user_text(request: &Value) -> String {
    request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn chat(State(s): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let rec = s.record(&uri, &headers, &body);
    let (reply, key) = s.next();
    if s.api != Api::OpenAi {
        return StatusCode::NOT_FOUND.into_response();
    }
    if !bearer_ok(&headers, key.as_ref()) {
        return openai_error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.");
    }
    let Some(req) = rec.json else {
        return openai_error(StatusCode::BAD_REQUEST, "The body is not JSON.");
    };
    if !req["model"].is_string() || req["messages"].as_array().is_none_or(Vec::is_empty) {
        return openai_error(StatusCode::BAD_REQUEST, "model and messages are required.");
    }
    if let Some(r) = common_failure(&reply, openai_error) {
        return r;
    }
    let (content, finish) = match &reply {
        Reply::Draft(v) => (v.to_string(), "stop"),
        Reply::Truncated => (
            r#"{"sentences":[{"section":"subjective","text":"Patient rep"#.to_owned(),
            "length",
        ),
        Reply::Malformed => (malformed_draft().to_string(), "stop"),
        Reply::DraftPlus(extra) => {
            let mut draft = normal_draft(&user_text(&req));
            if let Some(sentences) = draft["sentences"].as_array_mut() {
                sentences.extend(extra.iter().cloned());
            }
            (draft.to_string(), "stop")
        }
        _ => (normal_draft(&user_text(&req)).to_string(), "stop"),
    };
    let body = json!({
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": 1_765_000_000,
        "model": req["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": finish,
        }],
        "usage": {"prompt_tokens": 420, "completion_tokens": 64, "total_tokens": 484},
    });
    let pad = if let Reply::Oversized(n) = reply {
        Some(n)
    } else {
        None
    };
    json_reply(&body, pad)
}

async fn messages(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rec = s.record(&uri, &headers, &body);
    let (reply, key) = s.next();
    if s.api != Api::Anthropic {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Some(k) = key
        && rec.header("x-api-key") != Some(k.as_str())
    {
        return anthropic_error(StatusCode::UNAUTHORIZED, "invalid x-api-key");
    }
    if rec.header("anthropic-version").is_none() {
        return anthropic_error(
            StatusCode::BAD_REQUEST,
            "anthropic-version header is required",
        );
    }
    let Some(req) = rec.json else {
        return anthropic_error(StatusCode::BAD_REQUEST, "The body is not JSON.");
    };
    if !req["model"].is_string()
        || !req["max_tokens"].is_u64()
        || req["messages"].as_array().is_none_or(Vec::is_empty)
    {
        return anthropic_error(
            StatusCode::BAD_REQUEST,
            "model, max_tokens and messages are required.",
        );
    }
    if let Some(r) = common_failure(&reply, anthropic_error) {
        return r;
    }
    let tool = req["tool_choice"]["name"]
        .as_str()
        .unwrap_or("answer")
        .to_owned();
    let tool_use = |input: Value| json!({"type": "tool_use", "id": "toolu_standin", "name": tool, "input": input});
    let (content, stop) = match &reply {
        Reply::Draft(v) => (vec![tool_use(v.clone())], "tool_use"),
        Reply::Truncated => (vec![tool_use(json!({}))], "max_tokens"),
        Reply::Malformed => (vec![tool_use(malformed_draft())], "tool_use"),
        _ => (vec![tool_use(normal_draft(&user_text(&req)))], "tool_use"),
    };
    let body = json!({
        "id": "msg_standin",
        "type": "message",
        "role": "assistant",
        "model": req["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": {"input_tokens": 420, "output_tokens": 64},
    });
    let pad = if let Reply::Oversized(n) = reply {
        Some(n)
    } else {
        None
    };
    json_reply(&body, pad)
}
