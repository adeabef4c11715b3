//! Drafting adapters: a SOAP note drafted from transcript segments and structured findings,
//! every sentence citing the segments it rests on.

use crate::{Cleared, EgressError, Usage};

/// A SOAP section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftSection {
    /// Subjective.
    Subjective,
    /// Objective.
    Objective,
    /// Assessment.
    Assessment,
    /// Plan.
    Plan,
}

/// What the model gets.
#[derive(Debug, Clone)]
pub struct DraftRequest {
    /// The note template's name (`dental_hygiene`, `dental_exam`, `massage`, `free`).
    pub template: String,
    /// Transcript segments: (segment id, text).
    pub segments: Vec<(domain::SegmentId, String)>,
    /// Structured findings (e.g. the perio chart summary), as plain text lines.
    pub findings: Vec<String>,
}

/// One drafted sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftSentence {
    /// Its section.
    pub section: DraftSection,
    /// The sentence.
    pub text: String,
    /// The segments it cites.
    pub evidence: Vec<domain::SegmentId>,
}

/// A provider's draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftReply {
    /// Sentences in order.
    pub sentences: Vec<DraftSentence>,
    /// Token counts, when reported.
    pub usage: Usage,
}

/// A drafting provider.
#[async_trait::async_trait]
pub trait Drafter: Send + Sync {
    /// Drafts a note through a provider the gate cleared.
    async fn draft(
        &self,
        provider: &Cleared,
        request: DraftRequest,
    ) -> Result<DraftReply, EgressError>;
}
