//! AWS Bedrock `Converse` drafting through the official SDK (cargo feature `aws`): the draft
//! comes back as the input of a forced tool whose input schema is the draft's schema, exactly
//! as with the Anthropic adapter. The SDK is pointed at the cleared provider's base URL (the
//! regional `bedrock-runtime` endpoint, or a VPC endpoint), so the gate's decision is the
//! address called; credentials come from the standard AWS chain (instance role, environment).
//!
//! AWS Transcribe Medical is [`crate::aws_transcribe`] (the streaming API, same feature).
//!
//! [`AwsEnv`] is the AWS configuration both share: loaded from the environment on first use
//! (so a server with no AWS provider never looks for credentials or a region).

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message, SpecificToolChoice,
    StopReason, SystemContentBlock, Tool, ToolChoice, ToolConfiguration, ToolInputSchema,
    ToolSpecification,
};
use aws_smithy_types::{Document, Number};

use crate::draft::{self, DraftReply, DraftRequest, Drafter};
use crate::http::Limits;
use crate::{Cleared, EgressError, Usage};

/// The AWS configuration from the environment (the standard credentials chain, the
/// configured region), loaded once on first use and shared by clones.
#[derive(Debug, Clone, Default)]
pub struct AwsEnv(Arc<tokio::sync::OnceCell<aws_config::SdkConfig>>);

impl AwsEnv {
    /// Loaded from the environment on first use.
    #[must_use]
    pub fn from_env() -> Self {
        Self::default()
    }

    /// An explicit configuration (tests, or an operator's own loading).
    #[must_use]
    pub fn with_config(sdk: aws_config::SdkConfig) -> Self {
        Self(Arc::new(tokio::sync::OnceCell::new_with(Some(sdk))))
    }

    /// The configuration, with `region` when given.
    pub(crate) async fn config(&self, region: Option<&str>) -> aws_config::SdkConfig {
        let sdk = self
            .0
            .get_or_init(|| aws_config::load_defaults(aws_config::BehaviorVersion::latest()))
            .await;
        match region.filter(|r| !r.is_empty()) {
            Some(r) => sdk
                .to_builder()
                .region(aws_config::Region::new(r.to_owned()))
                .build(),
            None => sdk.clone(),
        }
    }
}

/// Drafting through Bedrock `Converse`.
#[derive(Debug, Clone)]
pub struct BedrockDrafter {
    env: AwsEnv,
    region: Option<String>,
    limits: Limits,
}

impl BedrockDrafter {
    /// An adapter with `env` (loaded on first use) and, when given, `region`.
    #[must_use]
    pub fn new(env: AwsEnv, region: Option<String>, limits: Limits) -> Self {
        Self {
            env,
            region,
            limits,
        }
    }
}

/// JSON into the SDK's document type.
fn to_document(v: &serde_json::Value) -> Document {
    match v {
        serde_json::Value::Null => Document::Null,
        serde_json::Value::Bool(b) => Document::Bool(*b),
        serde_json::Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or_default())
        }),
        serde_json::Value::String(s) => Document::String(s.clone()),
        serde_json::Value::Array(a) => Document::Array(a.iter().map(to_document).collect()),
        serde_json::Value::Object(o) => Document::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), to_document(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

/// The SDK's document type into JSON (a non-finite number becomes `null`, which no schema
/// field accepts).
fn to_json(d: &Document) -> serde_json::Value {
    match d {
        Document::Null => serde_json::Value::Null,
        Document::Bool(b) => serde_json::Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => serde_json::Value::from(*u),
        Document::Number(Number::NegInt(i)) => serde_json::Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Document::String(s) => serde_json::Value::String(s.clone()),
        Document::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Document::Object(o) => {
            serde_json::Value::Object(o.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

fn build_error<E>(_: E) -> EgressError {
    EgressError::Malformed("the Bedrock request could not be built".into())
}

fn map_error(e: &SdkError<ConverseError, HttpResponse>) -> EgressError {
    match e {
        // A success status whose body the SDK could not read is a malformed reply, not an
        // HTTP error.
        SdkError::ServiceError(s) if s.raw().status().is_success() => {
            EgressError::Malformed("the Bedrock reply could not be read".into())
        }
        SdkError::ServiceError(s) => match s.err() {
            ConverseError::ThrottlingException(_)
            | ConverseError::ServiceUnavailableException(_) => EgressError::RateLimited {
                retry_after_secs: None,
            },
            ConverseError::ModelTimeoutException(_) => EgressError::Unreachable,
            other => match other.code() {
                Some("ValidationException") => EgressError::Status(400),
                Some("AccessDeniedException") => EgressError::Status(403),
                Some("ResourceNotFoundException") => EgressError::Status(404),
                _ => EgressError::Status(s.raw().status().as_u16()),
            },
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => EgressError::Unreachable,
        _ => EgressError::Malformed("the Bedrock reply could not be read".into()),
    }
}

#[async_trait::async_trait]
impl Drafter for BedrockDrafter {
    async fn draft(
        &self,
        provider: &Cleared,
        request: DraftRequest,
    ) -> Result<DraftReply, EgressError> {
        let base = provider.base_url();
        if base.scheme() != "https" && base.scheme() != "http" {
            return Err(EgressError::Unreachable);
        }
        let sdk = self.env.config(self.region.as_deref()).await;
        let config = aws_sdk_bedrockruntime::config::Builder::from(&sdk)
            .endpoint_url(base.as_str().trim_end_matches('/'))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(self.limits.timeout)
                    .connect_timeout(self.limits.connect_timeout)
                    .build(),
            )
            .build();
        let client = aws_sdk_bedrockruntime::Client::from_conf(config);
        let tool = ToolSpecification::builder()
            .name(draft::SCHEMA_NAME)
            .description("Record the drafted SOAP note, every sentence with its evidence.")
            .input_schema(ToolInputSchema::Json(to_document(&draft::schema())))
            .build()
            .map_err(build_error)?;
        let tools = ToolConfiguration::builder()
            .tools(Tool::ToolSpec(tool))
            .tool_choice(ToolChoice::Tool(
                SpecificToolChoice::builder()
                    .name(draft::SCHEMA_NAME)
                    .build()
                    .map_err(build_error)?,
            ))
            .build()
            .map_err(build_error)?;
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(draft::user_message(&request)))
            .build()
            .map_err(build_error)?;
        let out = client
            .converse()
            .model_id(&provider.posture().model)
            .system(SystemContentBlock::Text(
                draft::instructions(&request).to_owned(),
            ))
            .messages(message)
            .tool_config(tools)
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(i32::try_from(self.limits.max_output_tokens).unwrap_or(i32::MAX))
                    .temperature(0.0)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| map_error(&e))?;
        match out.stop_reason() {
            StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => {
                return Err(EgressError::Truncated);
            }
            StopReason::ToolUse | StopReason::EndTurn => {}
            _ => {
                return Err(EgressError::Malformed(
                    "the model stopped for an unexpected reason".into(),
                ));
            }
        }
        let Some(message) = out.output().and_then(|o| o.as_message().ok()) else {
            return Err(EgressError::Malformed("the reply has no message".into()));
        };
        let mut drafts = message.content().iter().filter_map(|b| match b {
            ContentBlock::ToolUse(t) if t.name() == draft::SCHEMA_NAME => Some(t.input()),
            _ => None,
        });
        let (Some(input), None) = (drafts.next(), drafts.next()) else {
            return Err(EgressError::Malformed(
                "the reply does not have exactly one draft".into(),
            ));
        };
        let sentences = draft::parse_sentences(&to_json(input))?;
        let usage = out.usage().map_or_else(Usage::default, |u| Usage {
            input_tokens: u32::try_from(u.input_tokens()).ok(),
            output_tokens: u32::try_from(u.output_tokens()).ok(),
        });
        Ok(DraftReply { sentences, usage })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip_the_draft_schema() {
        let schema = draft::schema();
        assert_eq!(to_json(&to_document(&schema)), schema);
        let v = serde_json::json!({"a": [1, -2, 1.5, null, true, "x"]});
        assert_eq!(to_json(&to_document(&v)), v);
    }
}
