//! Drafting adapters: a SOAP note drafted from transcript segments and structured findings,
//! every sentence citing the segments it rests on.
//!
//! The same request, with an [`EditRequest`], asks for an assistant edit: the current text
//! (a draft's sentences, or a signed note's sections for an amendment) and the clinician's
//! instruction go with the transcript segments and findings, and the answer is the whole
//! revised text in the same strict structured shape, every sentence citing its segments — so
//! an edit goes through the same evidence check as a draft. The instruction never widens what
//! the model may use: the system instructions say facts come from the segments and findings
//! only.

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
    /// An assistant edit of existing text (`None`: a new draft).
    pub edit: Option<EditRequest>,
}

/// What an assistant edit revises, and how.
#[derive(Debug, Clone)]
pub struct EditRequest {
    /// The current text, sentence by sentence (or section by section), in order: its
    /// section, its text and the segments it cites.
    pub current: Vec<DraftSentence>,
    /// The clinician's instruction (e.g. "shorter", "add the home-care advice"); at most
    /// [`MAX_INSTRUCTION_CHARS`] are sent.
    pub instruction: String,
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

/// The most sentences a draft may have.
pub const MAX_SENTENCES: usize = 400;
/// The longest sentence accepted, in characters.
pub const MAX_SENTENCE_CHARS: usize = 2000;
/// The most segments one sentence may cite.
pub const MAX_EVIDENCE: usize = 64;

/// The name of the structured output (the JSON schema's name, the Anthropic tool's name).
pub const SCHEMA_NAME: &str = "soap_draft";

/// The system instructions every drafting adapter sends.
pub const INSTRUCTIONS: &str = "You draft a clinical SOAP note for a clinician to review. \
Use only what the transcript segments and the findings say; never add facts. \
Write short sentences, each in one section (subjective, objective, assessment, plan). \
Every sentence cites, in `evidence`, the ids of the transcript segments it rests on \
(copy the ids exactly as given after `id=`); a sentence resting only on findings cites none. \
Answer only with the structured draft.";

/// The longest instruction sent with an assistant edit, in characters.
pub const MAX_INSTRUCTION_CHARS: usize = 500;

/// The system instructions of an assistant edit.
pub const EDIT_INSTRUCTIONS: &str = "You revise a clinical SOAP note for a clinician to review, \
following the clinician's instruction. \
Use only what the transcript segments and the findings say; never add facts, even when the \
instruction asks for them. \
Answer with the whole revised note: every sentence to keep, changed or not, in order. \
Write short sentences, each in one section (subjective, objective, assessment, plan). \
Every sentence cites, in `evidence`, the ids of the transcript segments it rests on \
(copy the ids exactly as given after `id=`); a sentence resting only on findings cites none. \
Answer only with the structured draft.";

/// The system instructions for `request`: [`INSTRUCTIONS`] for a draft, [`EDIT_INSTRUCTIONS`]
/// for an assistant edit.
#[must_use]
pub fn instructions(request: &DraftRequest) -> &'static str {
    if request.edit.is_some() {
        EDIT_INSTRUCTIONS
    } else {
        INSTRUCTIONS
    }
}

/// The JSON schema of a draft: `{sentences: [{section, text, evidence: [segment id]}]}`,
/// strict (every property required, nothing else allowed).
#[must_use]
pub fn schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "sentences": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "section": {
                            "type": "string",
                            "enum": ["subjective", "objective", "assessment", "plan"]
                        },
                        "text": {"type": "string"},
                        "evidence": {"type": "array", "items": {"type": "string"}}
                    },
                    "required": ["section", "text", "evidence"],
                    "additionalProperties": false
                }
            }
        },
        "required": ["sentences"],
        "additionalProperties": false
    })
}

/// The user message: the template, the numbered transcript segments with their ids, and the
/// findings. One segment per line: `[n] id=<segment id>: <text>` (line breaks inside a
/// segment's text become spaces, so a line is always one segment). For an assistant edit,
/// then the current text, one sentence per line (`- <section> (cites <ids> | cites none):
/// <text>`), and the clinician's instruction on one line, cut to
/// [`MAX_INSTRUCTION_CHARS`].
#[must_use]
pub fn user_message(request: &DraftRequest) -> String {
    use std::fmt::Write as _;
    let mut m = String::new();
    let _ = writeln!(m, "Template: {}", one_line(&request.template));
    m.push_str("\nTranscript segments:\n");
    if request.segments.is_empty() {
        m.push_str("(none)\n");
    }
    for (n, (id, text)) in request.segments.iter().enumerate() {
        let _ = writeln!(m, "[{}] id={id}: {}", n.saturating_add(1), one_line(text));
    }
    m.push_str("\nFindings:\n");
    if request.findings.is_empty() {
        m.push_str("(none)\n");
    }
    for f in &request.findings {
        let _ = writeln!(m, "- {}", one_line(f));
    }
    if let Some(edit) = &request.edit {
        m.push_str("\nCurrent text to revise:\n");
        if edit.current.is_empty() {
            m.push_str("(none)\n");
        }
        for s in &edit.current {
            let cites = if s.evidence.is_empty() {
                "cites none".to_owned()
            } else {
                let ids: Vec<String> = s.evidence.iter().map(ToString::to_string).collect();
                format!("cites {}", ids.join(", "))
            };
            let _ = writeln!(
                m,
                "- {} ({cites}): {}",
                section_name(s.section),
                one_line(&s.text)
            );
        }
        let instruction: String = one_line(&edit.instruction)
            .chars()
            .take(MAX_INSTRUCTION_CHARS)
            .collect();
        let _ = writeln!(m, "\nThe clinician's instruction: {instruction}");
    }
    m
}

/// A section's name as the schema spells it.
#[must_use]
pub const fn section_name(s: DraftSection) -> &'static str {
    match s {
        DraftSection::Subjective => "subjective",
        DraftSection::Objective => "objective",
        DraftSection::Assessment => "assessment",
        DraftSection::Plan => "plan",
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WireDraft {
    sentences: Vec<WireSentence>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSentence {
    section: DraftSection,
    text: String,
    evidence: Vec<String>,
}

/// Checks a structured draft against [`schema`] and converts it; anything that does not match
/// is [`EgressError::Malformed`] and nothing of it is returned.
///
/// Evidence ids are kept as the model gave them, including ids that were not in the request:
/// the caller's evidence check flags those. An evidence entry that is not an id at all does not
/// match the schema's intent and makes the whole reply malformed.
pub fn parse_sentences(value: &serde_json::Value) -> Result<Vec<DraftSentence>, EgressError> {
    let wire = <WireDraft as serde::Deserialize>::deserialize(value)
        .map_err(|_| EgressError::Malformed("the draft does not match its schema".into()))?;
    if wire.sentences.len() > MAX_SENTENCES {
        return Err(EgressError::Malformed(format!(
            "the draft has more than {MAX_SENTENCES} sentences"
        )));
    }
    wire.sentences
        .into_iter()
        .map(|s| {
            let text = s.text.trim();
            if text.is_empty() || text.chars().count() > MAX_SENTENCE_CHARS {
                return Err(EgressError::Malformed(
                    "a draft sentence is empty or too long".into(),
                ));
            }
            if s.evidence.len() > MAX_EVIDENCE {
                return Err(EgressError::Malformed(
                    "a draft sentence cites too many segments".into(),
                ));
            }
            let evidence = s
                .evidence
                .iter()
                .map(|e| e.trim().parse::<domain::SegmentId>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    EgressError::Malformed("a draft sentence cites something not an id".into())
                })?;
            Ok(DraftSentence {
                section: s.section,
                text: text.to_owned(),
                evidence,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_message_numbers_segments_with_ids() {
        let a = domain::SegmentId::new();
        let b = domain::SegmentId::new();
        let m = user_message(&DraftRequest {
            template: "dental_hygiene".into(),
            segments: vec![
                (a, "Bleeding\non probing.".into()),
                (b, "Floss daily.".into()),
            ],
            findings: vec!["Probing depths 4 mm on 3 MB".into()],
            edit: None,
        });
        assert!(m.contains(&format!("[1] id={a}: Bleeding on probing.\n")));
        assert!(m.contains(&format!("[2] id={b}: Floss daily.\n")));
        assert!(m.contains("- Probing depths 4 mm on 3 MB\n"));
        assert!(!m.contains("instruction"));
    }

    #[test]
    fn an_edit_carries_the_current_text_and_the_instruction() {
        let a = domain::SegmentId::new();
        let request = DraftRequest {
            template: "free".into(),
            segments: vec![(a, "Floss daily.".into())],
            findings: vec![],
            edit: Some(EditRequest {
                current: vec![
                    DraftSentence {
                        section: DraftSection::Plan,
                        text: "Floss\ndaily.".into(),
                        evidence: vec![a],
                    },
                    DraftSentence {
                        section: DraftSection::Assessment,
                        text: "Gingivitis.".into(),
                        evidence: vec![],
                    },
                ],
                instruction: format!("Shorter,\nplease. {}", "x".repeat(MAX_INSTRUCTION_CHARS)),
            }),
        };
        assert_eq!(instructions(&request), EDIT_INSTRUCTIONS);
        let m = user_message(&request);
        assert!(m.contains(&format!("[1] id={a}: Floss daily.\n")));
        assert!(m.contains(&format!("- plan (cites {a}): Floss daily.\n")));
        assert!(m.contains("- assessment (cites none): Gingivitis.\n"));
        let line = m
            .lines()
            .find_map(|l| l.strip_prefix("The clinician's instruction: "))
            .unwrap();
        assert!(line.starts_with("Shorter, please. x"));
        assert_eq!(line.chars().count(), MAX_INSTRUCTION_CHARS);
        // Only transcript segments are written as `id=` lines (what evidence may cite).
        assert_eq!(m.matches("id=").count(), 1);
    }

    #[test]
    fn drafts_must_match_the_schema() {
        let id = domain::SegmentId::new();
        let unknown = domain::SegmentId::new();
        let good = serde_json::json!({"sentences": [
            {"section": "objective", "text": " BOP on 3. ", "evidence": [id.to_string(), unknown.to_string()]},
            {"section": "plan", "text": "Recall in 3 months.", "evidence": []}
        ]});
        let s = parse_sentences(&good).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].text, "BOP on 3.");
        // Ids not in any request are kept for the evidence check to flag.
        assert_eq!(s[0].evidence, vec![id, unknown]);

        for bad in [
            serde_json::json!({"sentence": []}),
            serde_json::json!({"sentences": [{"section": "history", "text": "x", "evidence": []}]}),
            serde_json::json!({"sentences": [{"section": "plan", "text": "x"}]}),
            serde_json::json!({"sentences": [{"section": "plan", "text": "x", "evidence": [], "extra": 1}]}),
            serde_json::json!({"sentences": [{"section": "plan", "text": "  ", "evidence": []}]}),
            serde_json::json!({"sentences": [{"section": "plan", "text": "x", "evidence": ["seg-1"]}]}),
            serde_json::json!({"sentences": [{"section": "plan", "text": "x", "evidence": [1]}]}),
            serde_json::json!([]),
        ] {
            assert!(
                matches!(parse_sentences(&bad), Err(EgressError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
