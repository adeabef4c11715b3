//! Issue 18 (items 7–8): assistant edits of a note draft and of an amendment, over the real
//! HTTPS server on real PostgreSQL, the practice's drafting provider a loopback stand-in of
//! `OpenAI` chat completions spoken to by the real adapter: a draft edit is a proposal (diff
//! and flags) until accepted, accepting makes the revised draft whose flagged sentences are
//! accepted one by one before signing; an amendment proposal becomes an AI-assisted amendment
//! naming its real turn; exactly one turn and one audit event per call; a gate refusal opens
//! no connection; a truncated reply changes nothing; the authorization matrix of every new
//! route and page.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::standins::{Reply, StandIn, StandInSegment};
use testkit::{TestApp, TestDb, World};

use crate::capture_api::{put_chunk, tone_wav};
use crate::util::call;

/// The transcript every fixture visit gets.
const HEARD: [&str; 2] = [
    "Gums are tender on the lower left.",
    "Light calculus on the lower incisors.",
];

pub(crate) struct Fx {
    pub db: TestDb,
    pub w: World,
    pub app: TestApp,
    pub clin: String,
    pub transcriber: StandIn,
    pub drafter: StandIn,
}

/// Registers a self-hosted provider of A for `purpose` at `url`.
pub(crate) async fn register(db: &TestDb, world: &World, purpose: &str, adapter: &str, url: &str) {
    let mut su = db.superuser_unsafe().await;
    sqlx::query(
        "insert into ai_provider (practice_id, provider_id, label, adapter, purpose, base_url,
            model, hosting, vendor, training_disabled, enabled, created_at, updated_at)
         values ($1, gen_random_uuid(), 'Practice server', $2, $3, $4, 'model-x', 'self_hosted',
            'Operator', true, true, now(), now())",
    )
    .bind(world.a.id)
    .bind(adapter)
    .bind(purpose)
    .bind(url)
    .execute(&mut su)
    .await
    .unwrap();
}

pub(crate) async fn fx() -> Fx {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let clin = app.token(w.a.user("clinician")).await;
    let transcriber = StandIn::openai().await;
    let drafter = StandIn::openai().await;
    register(
        &db,
        &w,
        "transcription",
        "openai_transcription",
        &transcriber.url(),
    )
    .await;
    register(&db, &w, "drafting", "openai_chat", &drafter.url()).await;
    Fx {
        db,
        w,
        app,
        clin,
        transcriber,
        drafter,
    }
}

impl Fx {
    pub(crate) fn base(&self) -> String {
        format!("/api/v1/practices/{}", self.w.a.id)
    }

    pub(crate) async fn ok(&self, method: Method, path: &str, body: Option<&Value>) -> Value {
        let (s, v) = call(&self.app, method, path, Some(&self.clin), body).await;
        assert!(s.is_success(), "{path}: {s} {v}");
        v
    }

    /// A visit of A's patient, recorded and transcribed (the capture routes, then the
    /// transcription job's pass through the transcription stand-in): the visit and the ids of
    /// its two segments.
    pub(crate) async fn transcribed_visit(&self) -> (String, Vec<String>) {
        let base = self.base();
        let v = self
            .ok(
                Method::POST,
                &format!("{base}/patients/{}/visits", self.w.a.patient),
                Some(&json!({})),
            )
            .await;
        let visit = v["visit_id"].as_str().unwrap().to_owned();
        self.ok(
            Method::POST,
            &format!("{base}/visits/{visit}/consents"),
            Some(&json!({"consented_by": "patient", "method": "verbal"})),
        )
        .await;
        let c = self
            .ok(
                Method::POST,
                &format!("{base}/visits/{visit}/captures"),
                None,
            )
            .await;
        let capture = c["capture_id"].as_str().unwrap().to_owned();
        let (s, _) = put_chunk(
            &self.app,
            &base,
            &self.clin,
            &capture,
            0,
            &tone_wav(4_000, 7),
        )
        .await;
        assert!(s.is_success());
        self.ok(
            Method::POST,
            &format!("{base}/captures/{capture}/stop"),
            None,
        )
        .await;
        self.transcriber.script(Reply::Transcript(vec![
            StandInSegment::speech(0.0, 1.8, HEARD[0]),
            StandInSegment::speech(1.8, 3.9, HEARD[1]),
        ]));
        let owner = self.db.owner().await;
        server::jobs::transcription::transcribe_pending(
            &owner,
            self.app.blobs.as_ref().unwrap(),
            &server::assistant::Assistant::default(),
            Some(self.w.a.id),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        owner.close().await;
        let t = self
            .ok(
                Method::GET,
                &format!("{base}/captures/{capture}/transcript"),
                None,
            )
            .await;
        let segments: Vec<String> = t["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["segment_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(segments.len(), 2, "{t}");
        (visit, segments)
    }

    /// The visit's AI draft: two supported sentences.
    pub(crate) async fn draft(&self, visit: &str, segments: &[String]) -> Value {
        self.drafter.script(Reply::Draft(json!({"sentences": [
            {"section": "subjective", "text": HEARD[0], "evidence": [segments[0]]},
            {"section": "objective", "text": HEARD[1], "evidence": [segments[1]]}
        ]})));
        self.ok(
            Method::POST,
            &format!("{}/visits/{visit}/drafts", self.base()),
            Some(&json!({"template": "free"})),
        )
        .await
    }

    /// A signed note made from a fresh draft of `visit`.
    pub(crate) async fn signed_note(&self, visit: &str, segments: &[String]) -> String {
        let d = self.draft(visit, segments).await;
        let draft = d["draft_id"].as_str().unwrap();
        let n = self
            .ok(
                Method::POST,
                &format!("{}/drafts/{draft}/note", self.base()),
                None,
            )
            .await;
        let note = n["note_id"].as_str().unwrap().to_owned();
        self.ok(
            Method::POST,
            &format!("{}/notes/{note}/sign", self.base()),
            None,
        )
        .await;
        note
    }

    async fn scalar(&self, sql: &str) -> i64 {
        let mut su = self.db.superuser_unsafe().await;
        sqlx::query_scalar(sql)
            .bind(self.w.a.id)
            .fetch_one(&mut su)
            .await
            .unwrap()
    }

    /// (turns, `assistant.turn` audit events) of A.
    async fn turns_and_events(&self) -> (i64, i64) {
        (
            self.scalar("select count(*) from assistant_turn where practice_id = $1")
                .await,
            self.scalar(
                "select count(*) from audit_event where practice_id = $1 and action = 'assistant.turn'",
            )
            .await,
        )
    }

    async fn turn(&self, id: &str) -> (String, String) {
        let mut su = self.db.superuser_unsafe().await;
        sqlx::query_as("select purpose, outcome from assistant_turn where turn_id = $1::uuid")
            .bind(id)
            .fetch_one(&mut su)
            .await
            .unwrap()
    }

    async fn turn_ids(&self) -> Vec<String> {
        let mut su = self.db.superuser_unsafe().await;
        sqlx::query_scalar("select turn_id::text from assistant_turn where practice_id = $1")
            .bind(self.w.a.id)
            .fetch_all(&mut su)
            .await
            .unwrap()
    }

    /// The one turn recorded since `before` (the turn ids then): id, purpose, outcome.
    async fn new_turn(&self, before: &[String]) -> (String, String, String) {
        let new: Vec<String> = self
            .turn_ids()
            .await
            .into_iter()
            .filter(|t| !before.contains(t))
            .collect();
        assert_eq!(new.len(), 1, "{new:?}");
        let (purpose, outcome) = self.turn(&new[0]).await;
        (new[0].clone(), purpose, outcome)
    }
}

fn texts(v: &Value) -> Vec<String> {
    v["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_owned())
        .collect()
}

fn ops(diff: &Value, op: &str) -> String {
    diff.as_array()
        .unwrap()
        .iter()
        .filter(|d| d["op"] == op)
        .map(|d| d["text"].as_str().unwrap())
        .collect()
}

// req: SCR-04, SCR-05 — a draft edit is one turn (`draft_edit`) and one audit event; the
// proposal is a diff with the evidence check's flags and changes nothing; accepting makes the
// revised draft, whose flagged sentence must be accepted before its note is signed; the
// signed note's changes from the AI draft start from the accepted revision.
#[tokio::test]
#[allow(clippy::too_many_lines, reason = "one flow, step by step")]
async fn a_draft_edit_is_a_proposal_until_accepted() {
    let f = fx().await;
    let (visit, segs) = f.transcribed_visit().await;
    let d = f.draft(&visit, &segs).await;
    let draft = d["draft_id"].as_str().unwrap().to_owned();
    let before = f.turns_and_events().await;
    let requests = f.drafter.requests();

    f.drafter.script(Reply::Draft(json!({"sentences": [
        {"section": "subjective", "text": "Tender gums, lower left.", "evidence": [segs[0]]},
        {"section": "plan", "text": "Rinse with chlorhexidine 0.12% twice daily.", "evidence": [segs[1]]}
    ]})));
    let assist = format!("{}/drafts/{draft}/assist", f.base());
    let p = f
        .ok(
            Method::POST,
            &assist,
            Some(&json!({"instruction": "Shorter, and add the home-care advice."})),
        )
        .await;
    assert_eq!(f.drafter.requests(), requests + 1);
    let after = f.turns_and_events().await;
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 1),
        "one turn, one event"
    );
    let turn = p["turn_id"].as_str().unwrap().to_owned();
    assert_eq!(f.turn(&turn).await, ("draft_edit".into(), "ok".into()));
    // What the adapter sent: the edit instructions, the transcript, the draft as it stands
    // and the instruction, under the strict schema.
    let sent = f.drafter.recorded().last().unwrap().json.clone().unwrap();
    assert_eq!(
        sent["messages"][0]["content"],
        egress::draft::EDIT_INSTRUCTIONS
    );
    let user = sent["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains(&format!("id={}: {}", segs[0], HEARD[0])),
        "{user}"
    );
    assert!(
        user.contains(&format!("- subjective (cites {}): {}", segs[0], HEARD[0])),
        "{user}"
    );
    assert!(
        user.contains("The clinician's instruction: Shorter, and add the home-care advice."),
        "{user}"
    );
    assert_eq!(sent["response_format"]["json_schema"]["strict"], true);
    // The proposal: its sentences with flags (a drug and a number the cited segment does not
    // name), a diff against the draft as it stands.
    assert_eq!(
        texts(&p),
        [
            "Tender gums, lower left.",
            "Rinse with chlorhexidine 0.12% twice daily."
        ]
    );
    assert_eq!(p["flagged"], 1);
    let flags = p["sentences"][1]["flags"].as_array().unwrap();
    assert!(flags.contains(&json!("drug")), "{p}");
    assert!(p["sentences"][0]["flags"].as_array().unwrap().is_empty());
    assert!(ops(&p["diff"], "insert").contains("chlorhexidine"), "{p}");
    assert!(ops(&p["diff"], "delete").contains("calculus"), "{p}");
    // Nothing changed yet.
    let (_, now) = call(
        &f.app,
        Method::GET,
        &format!("{}/drafts/{draft}", f.base()),
        Some(&f.clin),
        None,
    )
    .await;
    assert_eq!(texts(&now), [HEARD[0], HEARD[1]]);
    let list = f
        .ok(
            Method::GET,
            &format!("{}/visits/{visit}/drafts", f.base()),
            None,
        )
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Accept: the revised draft, its turn the edit's, its flagged sentence still to accept.
    let accept = format!("{assist}/{turn}/accept");
    let (s, r) = call(&f.app, Method::POST, &accept, Some(&f.clin), None).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["turn_id"].as_str(), Some(turn.as_str()));
    assert_eq!(r["ai_written"], true);
    assert_eq!(r["unreviewed"], 1);
    assert_eq!(
        texts(&r),
        [
            "Tender gums, lower left.",
            "Rinse with chlorhexidine 0.12% twice daily."
        ]
    );
    let revised = r["draft_id"].as_str().unwrap().to_owned();
    assert_ne!(revised, draft);
    // Once only; no AI call for it.
    let (s, e) = call(&f.app, Method::POST, &accept, Some(&f.clin), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(f.drafter.requests(), requests + 1);
    assert_eq!(f.turns_and_events().await, after);

    // The note made from the revision is signed only once the flagged sentence is accepted.
    let n = f
        .ok(
            Method::POST,
            &format!("{}/drafts/{revised}/note", f.base()),
            None,
        )
        .await;
    let note = n["note_id"].as_str().unwrap().to_owned();
    let sign = format!("{}/notes/{note}/sign", f.base());
    let (s, e) = call(&f.app, Method::POST, &sign, Some(&f.clin), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    f.ok(
        Method::POST,
        &format!("{}/drafts/{revised}/sentences/1/accept", f.base()),
        None,
    )
    .await;
    f.ok(Method::POST, &sign, None).await;
    // A draft whose note exists is not revised (nothing called).
    let (s, e) = call(
        &f.app,
        Method::POST,
        &format!("{}/drafts/{revised}/assist", f.base()),
        Some(&f.clin),
        Some(&json!({"instruction": "shorter"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(f.drafter.requests(), requests + 1);
    // The signed note's changes from the AI draft: from the accepted revision.
    let c = f
        .ok(
            Method::GET,
            &format!("{}/notes/{note}/draft-changes", f.base()),
            None,
        )
        .await;
    assert_eq!(c["turn_id"].as_str(), Some(turn.as_str()));
    assert_eq!(c["signed"], true);
    assert!(ops(&c["diff"], "insert").is_empty(), "{c}");
}

// req: SCR-03, SCR-04 — a truncated reply is an error (502), a turn `truncated`, and nothing
// else; a provider the gate refuses is never connected (the stand-in counts no request) and
// is a `refused` turn; each call one turn and one audit event. Bad instructions call nothing.
#[tokio::test]
async fn a_truncated_or_refused_edit_changes_nothing() {
    let f = fx().await;
    let (visit, segs) = f.transcribed_visit().await;
    let d = f.draft(&visit, &segs).await;
    let draft = d["draft_id"].as_str().unwrap().to_owned();
    let assist = format!("{}/drafts/{draft}/assist", f.base());
    let drafts = "select count(*) from note_draft where practice_id = $1";
    let n_drafts = f.scalar(drafts).await;

    // Refused before anything: empty, too long, unknown fields; nothing called, no turn.
    let requests = f.drafter.requests();
    let before = f.turns_and_events().await;
    for bad in [
        json!({"instruction": "  "}),
        json!({"instruction": "x".repeat(501)}),
        json!({"instruction": "shorter", "model": "other"}),
        json!({}),
    ] {
        let (s, e) = call(&f.app, Method::POST, &assist, Some(&f.clin), Some(&bad)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {e}");
    }
    assert_eq!(f.drafter.requests(), requests);
    assert_eq!(f.turns_and_events().await, before);

    // Truncated.
    let ids = f.turn_ids().await;
    f.drafter.script(Reply::Truncated);
    let (s, e) = call(
        &f.app,
        Method::POST,
        &assist,
        Some(&f.clin),
        Some(&json!({"instruction": "shorter"})),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("AI-0001")),
        "{e}"
    );
    let after = f.turns_and_events().await;
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1));
    let (turn, purpose, outcome) = f.new_turn(&ids).await;
    assert_eq!(
        (purpose.as_str(), outcome.as_str()),
        ("draft_edit", "truncated")
    );
    assert_eq!(f.scalar(drafts).await, n_drafts, "no draft made");
    // A failed turn cannot be accepted.
    let (s, _) = call(
        &f.app,
        Method::POST,
        &format!("{assist}/{turn}/accept"),
        Some(&f.clin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(f.scalar(drafts).await, n_drafts);

    // The provider becomes a vendor without a BAA: refused before any connection, for a
    // draft edit and for an amendment edit.
    let mut su = f.db.superuser_unsafe().await;
    sqlx::query(
        "update ai_provider set hosting = 'vendor', training_disabled = false
          where practice_id = $1 and purpose = 'drafting'",
    )
    .bind(f.w.a.id)
    .execute(&mut su)
    .await
    .unwrap();
    let requests = f.drafter.requests();
    let refused = |path: String| {
        let f = &f;
        async move {
            let before = f.turns_and_events().await;
            let ids = f.turn_ids().await;
            let (s, e) = call(
                &f.app,
                Method::POST,
                &path,
                Some(&f.clin),
                Some(&json!({"instruction": "shorter"})),
            )
            .await;
            assert_eq!(
                (s, e["error"]["code"].as_str()),
                (StatusCode::CONFLICT, Some("AI-0002")),
                "{e}"
            );
            let after = f.turns_and_events().await;
            assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1));
            let (_, purpose, outcome) = f.new_turn(&ids).await;
            (purpose, outcome)
        }
    };
    assert_eq!(
        refused(assist.clone()).await,
        ("draft_edit".to_owned(), "refused".to_owned())
    );
    assert_eq!(f.scalar(drafts).await, n_drafts, "no draft made");
    let n = f
        .ok(
            Method::POST,
            &format!("{}/drafts/{draft}/note", f.base()),
            None,
        )
        .await;
    let note = n["note_id"].as_str().unwrap().to_owned();
    f.ok(
        Method::POST,
        &format!("{}/notes/{note}/sign", f.base()),
        None,
    )
    .await;
    assert_eq!(
        refused(format!("{}/notes/{note}/assist", f.base())).await,
        ("amendment_edit".to_owned(), "refused".to_owned())
    );
    assert_eq!(f.drafter.requests(), requests, "no connection opened");
}

// req: SCR-04 — an amendment edit proposes content with a diff against the signed text (one
// turn, `amendment_edit`); the clinician edits and signs it as AI-assisted naming that turn;
// the note shows the amendment's diff, marked AI-assisted with its turn. A draft note is not
// amended (409, nothing called).
#[tokio::test]
async fn an_ai_assisted_amendment_names_its_real_turn() {
    let f = fx().await;
    let (visit, segs) = f.transcribed_visit().await;
    let note = f.signed_note(&visit, &segs).await;
    let before = f.turns_and_events().await;
    f.drafter.script(Reply::Draft(json!({"sentences": [
        {"section": "subjective", "text": HEARD[0], "evidence": [segs[0]]},
        {"section": "objective", "text": "Light calculus on the lower incisors, removed.", "evidence": [segs[1]]}
    ]})));
    let p = f
        .ok(
            Method::POST,
            &format!("{}/notes/{note}/assist", f.base()),
            Some(&json!({"instruction": "say the calculus was removed"})),
        )
        .await;
    let after = f.turns_and_events().await;
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1));
    let turn = p["turn_id"].as_str().unwrap().to_owned();
    assert_eq!(f.turn(&turn).await, ("amendment_edit".into(), "ok".into()));
    assert!(ops(&p["diff"], "insert").contains("removed."), "{p}");
    assert_eq!(
        p["content"]["objective"],
        "Light calculus on the lower incisors, removed."
    );
    let sent = f.drafter.recorded().last().unwrap().json.clone().unwrap();
    let user = sent["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains(&format!("- objective (cites none): {}", HEARD[1])),
        "{user}"
    );

    // The clinician edits the proposal and signs it as AI-assisted, naming the turn.
    let mut content = p["content"].clone();
    content["plan"] = json!("Recall in six months.");
    let (s, a) = call(
        &f.app,
        Method::POST,
        &format!("{}/notes/{note}/amendments", f.base()),
        Some(&f.clin),
        Some(
            &json!({"content": content, "reason": "Calculus removal recorded",
                     "ai_assisted": true, "assistant_turn_id": turn}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let n = f
        .ok(Method::GET, &format!("{}/notes/{note}", f.base()), None)
        .await;
    let am = &n["amendments"][0];
    assert_eq!(am["ai_assisted"], true);
    assert_eq!(am["assistant_turn_id"].as_str(), Some(turn.as_str()));
    assert!(ops(&am["diff"], "insert").contains("removed."), "{am}");
    let mut su = f.db.superuser_unsafe().await;
    let stored: (String, String) = sqlx::query_as(
        "select t.purpose, t.outcome from clinical_note_version v
           join assistant_turn t on t.practice_id = v.practice_id and t.turn_id = v.assistant_turn_id
          where v.practice_id = $1 and v.note_id = $2::uuid and v.kind = 'amendment'",
    )
    .bind(f.w.a.id)
    .bind(&note)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(stored, ("amendment_edit".into(), "ok".into()));

    // A draft note is edited, not amended: 409 before any call.
    let d = f.draft(&visit, &segs).await;
    let requests = f.drafter.requests();
    let draft_note = f
        .ok(
            Method::POST,
            &format!(
                "{}/drafts/{}/note",
                f.base(),
                d["draft_id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let before = f.turns_and_events().await;
    let (s, e) = call(
        &f.app,
        Method::POST,
        &format!(
            "{}/notes/{}/assist",
            f.base(),
            draft_note["note_id"].as_str().unwrap()
        ),
        Some(&f.clin),
        Some(&json!({"instruction": "shorter"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(f.drafter.requests(), requests);
    assert_eq!(f.turns_and_events().await, before);
}

/// The actions audited for one request (by its id), sorted, deduplicated.
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

type Route = (Method, String, Option<Value>, StatusCode, Vec<&'static str>);

// The authorization matrix of the assistant-edit routes: anonymous 401, another practice 404
// (also A's object through B's practice), reception and owner 403 (audited `access.denied`,
// nothing called), the clinician 2xx with the route's audit events.
#[tokio::test]
async fn assist_routes_authorization_matrix() {
    let f = fx().await;
    let (visit, segs) = f.transcribed_visit().await;
    let note = f.signed_note(&visit, &segs).await;
    let d = f.draft(&visit, &segs).await;
    let draft = d["draft_id"].as_str().unwrap().to_owned();
    // A proposal to accept.
    let p = f
        .ok(
            Method::POST,
            &format!("{}/drafts/{draft}/assist", f.base()),
            Some(&json!({"instruction": "shorter"})),
        )
        .await;
    let turn = p["turn_id"].as_str().unwrap().to_owned();
    let base = f.base();
    let ask = Some(json!({"instruction": "shorter"}));
    let routes: Vec<Route> = vec![
        (
            Method::POST,
            format!("{base}/drafts/{draft}/assist"),
            ask.clone(),
            StatusCode::OK,
            vec!["assistant.turn:success", "note_draft.read:success"],
        ),
        (
            Method::POST,
            format!("{base}/drafts/{draft}/assist/{turn}/accept"),
            None,
            StatusCode::CREATED,
            vec!["note_draft.create:success"],
        ),
        (
            Method::POST,
            format!("{base}/notes/{note}/assist"),
            ask,
            StatusCode::OK,
            vec!["assistant.turn:success", "note.read:success"],
        ),
    ];
    let reception = f.app.token(f.w.a.user("reception")).await;
    let owner = f.app.token(f.w.a.user("owner")).await;
    let other = f.app.token(f.w.b.user("clinician")).await;
    let (a, b) = (f.w.a.id.to_string(), f.w.b.id.to_string());
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
        let requests = f.drafter.requests();
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
        for (who, token) in [("reception", &reception), ("owner", &owner)] {
            let res = send(Some(token.clone()), path.clone()).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{who} {what}");
            assert_eq!(
                audited(&mut su, f.w.a.id, &res).await,
                ["access.denied:denied"],
                "{who} {what}"
            );
        }
        assert_eq!(f.drafter.requests(), requests, "nothing called: {what}");
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

type PageRoute = (
    Method,
    String,
    Vec<(&'static str, String)>,
    StatusCode,
    Vec<&'static str>,
);

// The authorization matrix of the assistant-edit pages: anonymous → sign-in, another
// practice 404 (also A's object through B's practice), reception and owner 403 (audited
// `access.denied`, no clinical text shown), the clinician with the API's audit events. The
// proposal page shows the diff and the accept control; the amendment form carries the turn.
#[tokio::test]
#[allow(clippy::too_many_lines, reason = "one table, then the pages' content")]
async fn assist_pages_authorization_matrix() {
    let f = fx().await;
    let (visit, segs) = f.transcribed_visit().await;
    let note = f.signed_note(&visit, &segs).await;
    let d = f.draft(&visit, &segs).await;
    let draft = d["draft_id"].as_str().unwrap().to_owned();
    let p = f
        .ok(
            Method::POST,
            &format!("{}/drafts/{draft}/assist", f.base()),
            Some(&json!({"instruction": "shorter"})),
        )
        .await;
    let turn = p["turn_id"].as_str().unwrap().to_owned();
    let app = format!("/app/practices/{}", f.w.a.id);
    let ask = vec![("instruction", "Shorter, please.".to_owned())];
    let routes: Vec<PageRoute> = vec![
        (
            Method::POST,
            format!("{app}/drafts/{draft}/assist"),
            ask.clone(),
            StatusCode::OK,
            vec!["assistant.turn", "note_draft.read"],
        ),
        (
            Method::POST,
            format!("{app}/drafts/{draft}/assist/{turn}/accept"),
            vec![],
            StatusCode::SEE_OTHER,
            vec!["note_draft.create"],
        ),
        (
            Method::POST,
            format!("{app}/notes/{note}/amend/assist"),
            ask,
            StatusCode::OK,
            vec!["assistant.turn", "note.read"],
        ),
    ];
    let http = page_client();
    let cookie = |t: &str| format!("{}={t}", server::extract::SESSION_COOKIE);
    let reception = f.app.token(f.w.a.user("reception")).await;
    let owner = f.app.token(f.w.a.user("owner")).await;
    let other = f.app.token(f.w.b.user("clinician")).await;
    let (a, b) = (f.w.a.id.to_string(), f.w.b.id.to_string());
    let mut su = f.db.superuser_unsafe().await;
    let mut bodies = Vec::new();
    for (method, path, form, ok, audit) in &routes {
        let what = format!("{method} {path}");
        let send = |token: Option<String>, path: String| {
            let (http, app, method, form) = (&http, &f.app, method.clone(), form.clone());
            async move {
                let mut r = http
                    .request(method, app.url(&path))
                    .header("sec-fetch-site", "same-origin")
                    .form(&form);
                if let Some(t) = token {
                    r = r.header(reqwest::header::COOKIE, cookie(&t));
                }
                r.send().await.unwrap()
            }
        };
        let requests = f.drafter.requests();
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
            let actions = audited(&mut su, f.w.a.id, &res).await;
            let body = res.text().await.unwrap();
            for secret in HEARD {
                assert!(!body.contains(secret), "{who} {what} shows clinical text");
            }
            assert_eq!(actions, ["access.denied:denied"], "{who} {what}");
        }
        assert_eq!(f.drafter.requests(), requests, "nothing called: {what}");
        let res = send(Some(f.clin.clone()), path.clone()).await;
        assert_eq!(res.status(), *ok, "clinician {what}");
        let want: Vec<String> = audit.iter().map(|a| format!("{a}:success")).collect();
        assert_eq!(
            audited(&mut su, f.w.a.id, &res).await,
            want,
            "clinician {what}"
        );
        bodies.push(res.text().await.unwrap());
    }
    // The proposal page: the diff, the accept control, nothing inline.
    let proposal = &bodies[0];
    assert!(proposal.contains("class=\"diff\""), "{proposal}");
    assert!(proposal.contains("/accept\""), "{proposal}");
    assert!(proposal.contains("Shorter, please."), "{proposal}");
    // The amendment form with the proposal and its turn.
    let amend = &bodies[2];
    assert!(amend.contains("name=\"assistant_turn_id\""), "{amend}");
    assert!(amend.contains("AI-proposed amendment"), "{amend}");
    for b in &bodies {
        assert!(!b.contains("style="), "no inline style");
    }
}
