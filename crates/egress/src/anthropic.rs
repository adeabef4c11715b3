//! The Anthropic Messages adapter (`POST /v1/messages`): the draft comes back as the input of
//! a forced tool call whose `input_schema` is the draft's schema.

use serde::Deserialize;

use crate::draft::{self, DraftReply, DraftRequest, Drafter};
use crate::http::{self, ApiKey, Limits};
use crate::{Cleared, EgressError, Usage};

/// The API version header value this adapter speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Drafting through Anthropic's Messages API.
#[derive(Debug, Clone)]
pub struct AnthropicDrafter {
    client: reqwest::Client,
    api_key: Option<ApiKey>,
    limits: Limits,
}

impl AnthropicDrafter {
    /// An adapter with the default [`Limits`]; `api_key` is sent as `x-api-key` when given.
    pub fn new(api_key: Option<ApiKey>) -> Result<Self, EgressError> {
        Self::with_limits(api_key, Limits::default())
    }

    /// An adapter with explicit limits.
    pub fn with_limits(api_key: Option<ApiKey>, limits: Limits) -> Result<Self, EgressError> {
        Ok(Self {
            client: http::client(&limits)?,
            api_key,
            limits,
        })
    }
}

#[derive(Deserialize)]
struct MessagesReply {
    content: Vec<ContentBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u32>,
    #[serde(default)]
    output_tokens: Option<u32>,
}

/// Parses a Messages reply into a draft.
pub(crate) fn parse_messages(body: &[u8]) -> Result<DraftReply, EgressError> {
    let reply: MessagesReply = http::parse_json(body, "the message")?;
    match reply.stop_reason.as_deref() {
        Some("max_tokens") => return Err(EgressError::Truncated),
        Some("tool_use" | "end_turn") => {}
        _ => {
            return Err(EgressError::Malformed(
                "the message stopped for an unexpected reason".into(),
            ));
        }
    }
    let mut tool_uses = reply
        .content
        .iter()
        .filter(|b| b.kind == "tool_use" && b.name.as_deref() == Some(draft::SCHEMA_NAME));
    let (Some(block), None) = (tool_uses.next(), tool_uses.next()) else {
        return Err(EgressError::Malformed(
            "the message does not have exactly one draft".into(),
        ));
    };
    let Some(input) = &block.input else {
        return Err(EgressError::Malformed(
            "the draft tool call has no input".into(),
        ));
    };
    let sentences = draft::parse_sentences(input)?;
    let usage = reply
        .usage
        .map(|u| Usage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
        })
        .unwrap_or_default();
    Ok(DraftReply { sentences, usage })
}

#[async_trait::async_trait]
impl Drafter for AnthropicDrafter {
    async fn draft(
        &self,
        provider: &Cleared,
        request: DraftRequest,
    ) -> Result<DraftReply, EgressError> {
        let url = http::endpoint(provider, "/v1/messages")?;
        let body = serde_json::json!({
            "model": provider.posture().model,
            "max_tokens": self.limits.max_output_tokens,
            "temperature": 0,
            "system": draft::instructions(&request),
            "messages": [{"role": "user", "content": draft::user_message(&request)}],
            "tools": [{
                "name": draft::SCHEMA_NAME,
                "description": "Record the drafted SOAP note, every sentence with its evidence.",
                "input_schema": draft::schema(),
            }],
            "tool_choice": {"type": "tool", "name": draft::SCHEMA_NAME},
        });
        let mut req = self
            .client
            .post(url)
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(&body);
        if let Some(key) = &self.api_key {
            req = req.header("x-api-key", key.expose());
        }
        // 529: Anthropic's "overloaded", handled like rate limiting.
        let body = http::send(req, &self.limits, &[529]).await?;
        parse_messages(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_input_is_the_draft() {
        let id = domain::SegmentId::new();
        let body = serde_json::json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "soap_draft",
                "input": {"sentences": [{"section": "subjective", "text": "Sensitivity on 14.", "evidence": [id.to_string()]}]}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 120, "output_tokens": 30}
        });
        let reply = parse_messages(body.to_string().as_bytes()).unwrap();
        assert_eq!(reply.sentences.len(), 1);
        assert_eq!(reply.usage.input_tokens, Some(120));
    }

    #[test]
    fn max_tokens_is_truncation() {
        let body = serde_json::json!({"content": [], "stop_reason": "max_tokens"});
        assert!(matches!(
            parse_messages(body.to_string().as_bytes()),
            Err(EgressError::Truncated)
        ));
    }

    #[test]
    fn text_instead_of_the_tool_is_malformed() {
        let body = serde_json::json!({"content": [{"type": "text", "text": "Here is a note"}], "stop_reason": "end_turn"});
        assert!(matches!(
            parse_messages(body.to_string().as_bytes()),
            Err(EgressError::Malformed(_))
        ));
    }
}
