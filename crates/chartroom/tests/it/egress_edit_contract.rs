//! Assistant edits through the real drafting adapters against the provider stand-ins (real
//! HTTP on loopback, the providers' request and response shapes): the edit request carries the
//! edit instructions, the transcript segments, the current text with the segments each
//! sentence cites and the clinician's instruction, under the same strict structured output as
//! a draft; the revised sentences come back with their evidence; truncation and malformed
//! replies are errors, never a partial edit.

use egress::draft::{EDIT_INSTRUCTIONS, EditRequest, INSTRUCTIONS};
use egress::{
    AnthropicDrafter, ApiKey, DraftRequest, DraftSection, DraftSentence, Drafter, EgressError,
    Hosting, Limits, OpenAiDrafter, ProviderPosture, gate,
};
use serde_json::json;
use testkit::standins::{Reply, StandIn};

const KEY: &str = "sk-standin-key";

fn self_hosted(url: &str) -> ProviderPosture {
    ProviderPosture {
        provider_id: Some(domain::ProviderId::new()),
        label: "Stand-in".into(),
        base_url: url.into(),
        model: "standin-model".into(),
        hosting: Hosting::SelfHosted,
        baa: None,
        training_disabled: true,
        enabled: true,
    }
}

fn edit_request() -> (DraftRequest, [domain::SegmentId; 2]) {
    let ids = [domain::SegmentId::new(), domain::SegmentId::new()];
    let request = DraftRequest {
        template: "dental_hygiene".into(),
        segments: vec![
            (ids[0], "Bleeding on probing at three.".into()),
            (ids[1], "Patient flosses twice a week.".into()),
        ],
        findings: vec!["Probing depths: 3 MB 4 mm".into()],
        edit: Some(EditRequest {
            current: vec![
                DraftSentence {
                    section: DraftSection::Objective,
                    text: "Bleeding on probing at tooth 3.".into(),
                    evidence: vec![ids[0]],
                },
                DraftSentence {
                    section: DraftSection::Subjective,
                    text: "Flosses twice a week.".into(),
                    evidence: vec![ids[1]],
                },
            ],
            instruction: "Add the home-care advice.".into(),
        }),
    };
    (request, ids)
}

fn revised(ids: &[domain::SegmentId; 2]) -> serde_json::Value {
    json!({"sentences": [
        {"section": "objective", "text": "BOP at 3.", "evidence": [ids[0].to_string()]},
        {"section": "plan", "text": "Keep flossing twice a week.", "evidence": [ids[1].to_string()]}
    ]})
}

fn limits() -> Limits {
    Limits {
        max_reply_bytes: 64 * 1024,
        ..Limits::default()
    }
}

fn assert_edit_message(user: &str, ids: &[domain::SegmentId; 2]) {
    assert!(
        user.contains(&format!("[1] id={}: Bleeding on probing at three.", ids[0])),
        "{user}"
    );
    assert!(user.contains("Current text to revise:"), "{user}");
    assert!(
        user.contains(&format!(
            "- objective (cites {}): Bleeding on probing at tooth 3.",
            ids[0]
        )),
        "{user}"
    );
    assert!(
        user.contains("The clinician's instruction: Add the home-care advice."),
        "{user}"
    );
}

// req: SCR-03, SCR-05 — the OpenAI-compatible adapter asks for the edit under the strict
// JSON schema and returns the revised sentences with their evidence; truncation and a reply
// off the schema are errors.
#[tokio::test]
async fn openai_edits_ask_for_strict_json_with_the_current_text_and_instruction() {
    let s = StandIn::openai().await;
    s.require_key(KEY);
    let d = OpenAiDrafter::with_limits(Some(ApiKey::new(KEY.into())), limits()).unwrap();
    let cleared = gate(&self_hosted(&s.url())).unwrap();
    let (request, ids) = edit_request();
    s.script(Reply::Draft(revised(&ids)));
    let reply = d.draft(&cleared, request.clone()).await.unwrap();
    assert_eq!(
        reply
            .sentences
            .iter()
            .map(|x| (x.section, x.text.as_str(), x.evidence.clone()))
            .collect::<Vec<_>>(),
        [
            (DraftSection::Objective, "BOP at 3.", vec![ids[0]]),
            (
                DraftSection::Plan,
                "Keep flossing twice a week.",
                vec![ids[1]]
            ),
        ]
    );
    let rec = &s.recorded()[0];
    assert_eq!(rec.path, "/v1/chat/completions");
    let body = rec.json.as_ref().unwrap();
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][0]["content"], EDIT_INSTRUCTIONS);
    assert_edit_message(body["messages"][1]["content"].as_str().unwrap(), &ids);
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(
        body["response_format"]["json_schema"]["schema"],
        egress::draft::schema()
    );
    assert_eq!(body["temperature"], 0);

    // A draft (no edit) still gets the drafting instructions and no edit part.
    let mut plain = request.clone();
    plain.edit = None;
    d.draft(&cleared, plain).await.unwrap();
    let body = s.recorded()[1].json.clone().unwrap();
    assert_eq!(body["messages"][0]["content"], INSTRUCTIONS);
    assert!(
        !body["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("instruction")
    );

    s.script(Reply::Truncated);
    assert!(matches!(
        d.draft(&cleared, request.clone()).await,
        Err(EgressError::Truncated)
    ));
    s.script(Reply::Malformed);
    assert!(matches!(
        d.draft(&cleared, request).await,
        Err(EgressError::Malformed(_))
    ));
}

// req: SCR-03, SCR-05 — the Anthropic adapter asks for the edit through the forced tool whose
// input schema is the draft's, with the edit instructions as the system prompt.
#[tokio::test]
async fn anthropic_edits_use_the_forced_tool_with_the_current_text_and_instruction() {
    let s = StandIn::anthropic().await;
    s.require_key(KEY);
    let d = AnthropicDrafter::with_limits(Some(ApiKey::new(KEY.into())), limits()).unwrap();
    let cleared = gate(&self_hosted(&s.url())).unwrap();
    let (request, ids) = edit_request();
    s.script(Reply::Draft(revised(&ids)));
    let reply = d.draft(&cleared, request.clone()).await.unwrap();
    assert_eq!(reply.sentences.len(), 2);
    assert_eq!(reply.sentences[1].evidence, vec![ids[1]]);
    let rec = &s.recorded()[0];
    assert_eq!(rec.path, "/v1/messages");
    let body = rec.json.as_ref().unwrap();
    assert_eq!(body["system"], EDIT_INSTRUCTIONS);
    assert_edit_message(body["messages"][0]["content"].as_str().unwrap(), &ids);
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "soap_draft"})
    );
    assert_eq!(body["tools"][0]["input_schema"], egress::draft::schema());

    s.script(Reply::Truncated);
    assert!(matches!(
        d.draft(&cleared, request.clone()).await,
        Err(EgressError::Truncated)
    ));
    s.script(Reply::RateLimited {
        retry_after_secs: 4,
    });
    assert!(matches!(
        d.draft(&cleared, request).await,
        Err(EgressError::RateLimited {
            retry_after_secs: Some(4)
        })
    ));
}
