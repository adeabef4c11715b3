//! Issue 18 item 5, over real HTTP: the perio dictation route of the API
//! (`POST …/perio-exams/{exam_id}/voice`) and of the perio page (`POST …/perio/{exam_id}/voice`),
//! with the practice's transcription provider a loopback stand-in of the `OpenAI` API (scripted
//! replies, so held and charted finals are deterministic). The authorization matrix of both;
//! bad audio refused with nothing changed; no recognizer → 503 with nothing changed; a held
//! final charts nothing; a charted one is exactly the typed final; one assistant turn and one
//! `assistant.turn` audit event per recognizer call.

use reqwest::header::{COOKIE, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::standins::{Reply, StandIn, StandInSegment};
use testkit::{TestApp, TestDb, World};

use crate::capture_api::tone_wav;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(
            reqwest::Certificate::from_pem(testkit::test_certificate().0.as_bytes()).unwrap(),
        )
        .build()
        .unwrap()
}

/// Registers the stand-in as practice A's transcription provider (self-hosted, loopback).
async fn register(db: &TestDb, world: &World, url: &str) {
    let mut su = db.superuser_unsafe().await;
    sqlx::query(
        "insert into ai_provider (practice_id, provider_id, label, adapter, purpose, base_url,
            model, hosting, vendor, training_disabled, enabled, created_at, updated_at)
         values ($1, gen_random_uuid(), 'Practice server', 'openai_transcription', 'transcription',
            $2, 'whisper-x', 'self_hosted', 'Operator', true, true, now(), now())",
    )
    .bind(world.a.id)
    .bind(url)
    .execute(&mut su)
    .await
    .unwrap();
}

/// A scripted recognizer reply: `text`, confident or not.
fn heard(text: &str, confident: bool) -> Reply {
    let mut s = StandInSegment::speech(0.0, 1.5, text);
    if !confident {
        s.avg_logprob = -2.5;
    }
    Reply::Transcript(vec![s])
}

struct Fx {
    db: TestDb,
    world: World,
    app: TestApp,
    http: reqwest::Client,
    clinician: String,
    ear: StandIn,
}

impl Fx {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let world = World::build(&db).await;
        let app = TestApp::start(&db).await;
        let clinician = app.token(world.a.user("clinician")).await;
        let ear = StandIn::openai().await;
        register(&db, &world, &ear.url()).await;
        Self {
            db,
            world,
            app,
            http: client(),
            clinician,
            ear,
        }
    }

    fn api_exams(&self) -> String {
        format!(
            "/api/v1/practices/{}/patients/{}/perio-exams",
            self.world.a.id, self.world.a.patient
        )
    }

    fn page_exam(&self, exam: &str) -> String {
        format!(
            "/app/practices/{}/patients/{}/perio/{exam}",
            self.world.a.id, self.world.a.patient
        )
    }

    async fn create(&self) -> String {
        let (s, v) = crate::util::call(
            &self.app,
            Method::POST,
            &self.api_exams(),
            Some(&self.clinician),
            Some(&json!({})),
        )
        .await;
        assert!(s.is_success(), "{v}");
        v["exam_id"].as_str().unwrap().to_owned()
    }

    async fn get(&self, exam: &str) -> Value {
        let (s, v) = crate::util::call(
            &self.app,
            Method::GET,
            &format!("{}/{exam}", self.api_exams()),
            Some(&self.clinician),
            None,
        )
        .await;
        assert!(s.is_success(), "{v}");
        v
    }

    /// The API's voice route: status, `ETag` and body.
    async fn voice(
        &self,
        exam: &str,
        token: Option<&str>,
        wav: Vec<u8>,
        if_match: Option<&str>,
    ) -> (StatusCode, Option<String>, Value) {
        let mut r = self
            .app
            .http
            .post(self.app.url(&format!("{}/{exam}/voice", self.api_exams())))
            .header("content-type", "audio/wav")
            .body(wav);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(m) = if_match {
            r = r.header("if-match", m);
        }
        let res = r.send().await.unwrap();
        let status = res.status();
        let etag = res
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.json().await.unwrap_or(Value::Null);
        (status, etag, body)
    }

    /// The page's voice route, as `perio.js` sends it.
    async fn page_voice(
        &self,
        exam: &str,
        token: Option<&str>,
        version: &str,
    ) -> reqwest::Response {
        let mut r = self
            .http
            .post(self.app.url(&format!(
                "{}/voice?version={version}&previous=",
                self.page_exam(exam)
            )))
            .header("content-type", "audio/wav")
            .header("sec-fetch-site", "same-origin")
            .header("hx-request", "true")
            .body(tone_wav(1500, 1));
        if let Some(t) = token {
            r = r.header(COOKIE, format!("{}={t}", server::extract::SESSION_COOKIE));
        }
        r.send().await.unwrap()
    }

    /// Assistant turns of practice A (purpose, outcome) and `assistant.turn` audit events.
    async fn turns(&self) -> (Vec<(String, String)>, i64) {
        let mut su = self.db.superuser_unsafe().await;
        let turns = sqlx::query_as(
            "select purpose, outcome from assistant_turn where practice_id = $1 order by created_at",
        )
        .bind(self.world.a.id)
        .fetch_all(&mut su)
        .await
        .unwrap();
        let audits: i64 = sqlx::query_scalar(
            "select count(*) from audit_event where practice_id = $1 and action = 'assistant.turn'",
        )
        .bind(self.world.a.id)
        .fetch_one(&mut su)
        .await
        .unwrap();
        (turns, audits)
    }
}

fn voice_turns(n: usize) -> Vec<(String, String)> {
    vec![("perio_voice".to_owned(), "ok".to_owned()); n]
}

// req: SCR-04 — a confident final is charted exactly as the same typed final (outcome,
// version, ETag, chart); a cross-checked final costs two recognizer calls: two turns, two
// `assistant.turn` events; the recognizer is prompted with the perio vocabulary.
#[tokio::test]
async fn a_confident_clip_charts_as_the_typed_final_with_one_turn_per_call() {
    let f = Fx::new().await;
    let exam = f.create().await;
    let typed = f.create().await;
    f.ear.script(heard("Three, two, three.", true));
    f.ear.script(heard("Three two three.", true));
    let (s, etag, v) = f
        .voice(&exam, Some(&f.clinician), tone_wav(1500, 1), Some("\"1\""))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["held"], false, "{v}");
    assert_eq!(v["heard"], "three, two, three", "{v}");
    assert_eq!(v["changed"], true);
    assert_eq!(v["version"], 2);
    assert_eq!(etag.as_deref(), Some("\"2\""));
    assert_eq!(v["readings"], 2, "{v}");
    assert_eq!(v["turns"].as_array().unwrap().len(), 2);
    // The same final typed: the same outcome and chart.
    let (_, t) = crate::util::call(
        &f.app,
        Method::POST,
        &format!("{}/{typed}/finals", f.api_exams()),
        Some(&f.clinician),
        Some(&json!({"text": v["text"]})),
    )
    .await;
    assert_eq!(v["outcome"], t["outcome"], "voice and typed finals agree");
    assert_eq!(f.get(&exam).await["chart"], f.get(&typed).await["chart"]);
    assert_eq!(f.get(&exam).await["chart"]["teeth"]["1"]["pd"]["DB"], 3);
    assert_eq!(f.turns().await, (voice_turns(2), 2));
    let sent = f.ear.recorded();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].field("prompt").as_deref(),
        Some(perio::voice::prompt().as_str())
    );
    assert_eq!(
        sent[1].field("prompt").as_deref(),
        Some(perio::voice::check_prompt().as_str())
    );
    // The turn seals the prompt: nothing of it in the audit row.
    let mut su = f.db.superuser_unsafe().await;
    let details: Vec<Option<Value>> = sqlx::query_scalar(
        "select details from audit_event where practice_id = $1 and action in ('assistant.turn', 'perio_exam.update')",
    )
    .bind(f.world.a.id)
    .fetch_all(&mut su)
    .await
    .unwrap();
    for d in details.iter().flatten() {
        assert!(!d.to_string().contains("three"), "{d}");
    }
}

// A held final charts nothing: 200 with `held`, the reasons, the final, the preview; the
// exam's version and chart unchanged; one turn per recognizer call (the first reading, and
// the third a held final gets, itself unsure here). Confirming it is sending the shown final
// to the typed route.
#[tokio::test]
async fn a_held_clip_charts_nothing_until_the_shown_final_is_sent() {
    let f = Fx::new().await;
    let exam = f.create().await;
    f.ear.script(heard("Three two three.", false));
    let (s, etag, v) = f
        .voice(&exam, Some(&f.clinician), tone_wav(1500, 2), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["held"], true, "{v}");
    assert!(
        v["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("low_confidence")),
        "{v}"
    );
    assert_eq!(v["text"], "three two three");
    assert_eq!(v["preview"]["status"], "ok", "{v}");
    assert_eq!(v["changed"], false);
    assert_eq!(v["outcome"], Value::Null);
    assert_eq!(etag.as_deref(), Some("\"1\""));
    let e = f.get(&exam).await;
    assert_eq!(e["version"], 1);
    assert_eq!(e["chart"]["teeth"], json!({}));
    assert_eq!(
        f.ear.recorded().len(),
        2,
        "first reading and the tie-breaking third"
    );
    assert_eq!(f.turns().await, (voice_turns(2), 2));
    // The page's "Chart it": the shown final through the typed route.
    let (s, t) = crate::util::call(
        &f.app,
        Method::POST,
        &format!("{}/{exam}/finals", f.api_exams()),
        Some(&f.clinician),
        Some(&json!({"text": v["text"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(f.get(&exam).await["chart"]["teeth"]["1"]["pd"]["B"], 2);
}

// Refused before anything is sent, read or written: not a WAV, the wrong format, too long,
// too large (422 / 413), a stale If-Match (409); no recognizer at all (503 AI-0003). The
// stand-in saw no request, no turn, the exam unchanged.
#[tokio::test]
async fn bad_audio_and_no_recognizer_change_nothing() {
    let f = Fx::new().await;
    let exam = f.create().await;
    let mut stereo = tone_wav(1000, 3);
    stereo[22] = 2;
    let mut rate = tone_wav(1000, 3);
    rate[24..28].copy_from_slice(&44_100u32.to_le_bytes());
    for (what, wav, status) in [
        (
            "not a WAV",
            b"hello, not audio".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("stereo", stereo, StatusCode::UNPROCESSABLE_ENTITY),
        ("44.1 kHz", rate, StatusCode::UNPROCESSABLE_ENTITY),
        (
            "16 s",
            tone_wav(16_000, 3),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("empty", Vec::new(), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "over 1 MiB",
            vec![0; 1024 * 1024 + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let (s, _, v) = f.voice(&exam, Some(&f.clinician), wav, None).await;
        assert_eq!(s, status, "{what}: {v}");
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(v["error"]["code"], "INPUT-0006", "{what}: {v}");
        }
    }
    let (s, _, v) = f
        .voice(&exam, Some(&f.clinician), tone_wav(1000, 3), Some("\"7\""))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(f.ear.requests(), 0);
    assert_eq!(f.turns().await, (vec![], 0));
    assert_eq!(f.get(&exam).await["version"], 1);

    // No provider registered and no local default: 503, nothing changed.
    let mut su = f.db.superuser_unsafe().await;
    sqlx::query("delete from ai_provider where practice_id = $1")
        .bind(f.world.a.id)
        .execute(&mut su)
        .await
        .unwrap();
    let (s, _, v) = f
        .voice(&exam, Some(&f.clinician), tone_wav(1000, 3), None)
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "AI-0003", "{v}");
    let page = f.page_voice(&exam, Some(&f.clinician), "1").await;
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = page.text().await.unwrap();
    assert!(body.contains("id=\"perio-exam\""), "the exam as it is");
    assert!(body.contains("speech recognizer"), "{body}");
    assert_eq!(f.turns().await, (vec![], 0));
    assert_eq!(f.get(&exam).await["version"], 1);
}

// A recognizer failure is recorded as its turn (outcome error) and charts nothing (502).
#[tokio::test]
async fn a_failed_recognizer_call_keeps_its_turn_and_charts_nothing() {
    let f = Fx::new().await;
    let exam = f.create().await;
    f.ear.script(Reply::Status(500));
    let (s, _, v) = f
        .voice(&exam, Some(&f.clinician), tone_wav(1000, 4), None)
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{v}");
    assert_eq!(v["error"]["code"], "AI-0001");
    assert_eq!(
        f.turns().await,
        (vec![("perio_voice".to_owned(), "error".to_owned())], 1)
    );
    assert_eq!(f.get(&exam).await["version"], 1);
}

/// The practice's audit actions of one request (sorted, deduplicated), with their outcome.
async fn actions(su: &mut sqlx::PgConnection, p: domain::PracticeId, id: &str) -> Vec<String> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select action, outcome from audit_event where practice_id = $1 and request_id = $2",
    )
    .bind(p)
    .bind(uuid::Uuid::parse_str(id).unwrap())
    .fetch_all(su)
    .await
    .unwrap();
    let mut a: Vec<String> = rows.into_iter().map(|(a, o)| format!("{a}:{o}")).collect();
    a.sort();
    a.dedup();
    a
}

// req: AC-02, AC-03, AC-04 — both voice routes: anonymous → 401 / the sign-in page, another
// practice (and A's member naming B's exam) → 404, reception, owner and admin → 403 with the
// denial audited, the clinician → 200 with the turns and the exam's update audited. The
// refused requests reached no recognizer.
#[tokio::test]
async fn voice_routes_authorization_matrix() {
    let f = Fx::new().await;
    let (a, p) = (&f.world.a, f.world.a.id);
    let exam = f.create().await;
    let other = f.app.token(f.world.b.user("clinician")).await;
    let nobody = f.app.token(f.world.nobody).await;
    let foreign = {
        let t = f.app.token(f.world.b.user("clinician")).await;
        let (s, v) = crate::util::call(
            &f.app,
            Method::POST,
            &format!(
                "/api/v1/practices/{}/patients/{}/perio-exams",
                f.world.b.id, f.world.b.patient
            ),
            Some(&t),
            Some(&json!({})),
        )
        .await;
        assert!(s.is_success(), "{v}");
        v["exam_id"].as_str().unwrap().to_owned()
    };
    let mut su = f.db.superuser_unsafe().await;
    let request_id =
        |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_owned();

    // The API route.
    let url = |exam: &str| f.app.url(&format!("{}/{exam}/voice", f.api_exams()));
    let send = |token: Option<String>, exam: String| {
        let mut r = f
            .app
            .http
            .post(url(&exam))
            .header("content-type", "audio/wav")
            .body(tone_wav(1000, 5));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(
        send(None, exam.clone()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let half = f.app.password_only_token(a.user("clinician")).await;
    assert_eq!(
        send(Some(half.clone()), exam.clone())
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    for token in [&other, &nobody] {
        let res = send(Some(token.clone()), exam.clone()).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    let res = send(Some(f.clinician.clone()), foreign.clone())
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "A's clinician, B's exam"
    );
    for role in ["reception", "owner", "admin"] {
        let token = f.app.token(a.user(role)).await;
        let res = send(Some(token), exam.clone()).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{role}");
        let id = request_id(&res);
        assert_eq!(
            actions(&mut su, p, &id).await,
            ["access.denied:denied"],
            "{role}"
        );
    }
    assert_eq!(
        f.ear.requests(),
        0,
        "no refused request reached the recognizer"
    );
    f.ear.script(heard("Jump to tooth 14.", true));
    f.ear.script(heard("Jump to tooth 14.", true));
    let res = send(Some(f.clinician.clone()), exam.clone()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let id = request_id(&res);
    assert_eq!(
        actions(&mut su, p, &id).await,
        ["assistant.turn:success", "perio_exam.update:success"]
    );

    // The page route.
    let res = f.page_voice(&exam, None, "").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/app/sign-in");
    let res = f.page_voice(&exam, Some(&half), "").await;
    assert_eq!(res.headers()[LOCATION], "/app/sign-in/second-factor");
    for token in [&other, &nobody] {
        assert_eq!(
            f.page_voice(&exam, Some(token.as_str()), "").await.status(),
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        f.page_voice(&foreign, Some(&f.clinician), "")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    for role in ["reception", "owner", "admin"] {
        let token = f.app.token(a.user(role)).await;
        let res = f.page_voice(&exam, Some(&token), "").await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{role}");
        let id = request_id(&res);
        let body = res.text().await.unwrap();
        assert!(!body.contains("Heard"), "{role}");
        assert_eq!(
            actions(&mut su, p, &id).await,
            ["access.denied:denied"],
            "{role}"
        );
    }
    // A cross-site post is refused before anything runs.
    let res = f
        .http
        .post(f.app.url(&format!("{}/voice", f.page_exam(&exam))))
        .header("sec-fetch-site", "cross-site")
        .header(
            COOKIE,
            format!("{}={}", server::extract::SESSION_COOKIE, f.clinician),
        )
        .body(tone_wav(1000, 7))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(f.ear.requests(), 2, "only the clinician's clip was heard");
    // The clinician: the region with the read-back.
    f.ear.script(heard("Three two three.", false));
    let res = f.page_voice(&exam, Some(&f.clinician), "").await;
    assert_eq!(res.status(), StatusCode::OK);
    let id = request_id(&res);
    let body = res.text().await.unwrap();
    assert!(body.contains("id=\"voice-heard\""), "{body}");
    assert!(body.contains(">three two three</q>"), "{body}");
    assert!(body.contains("id=\"voice-chart\""), "held: the question");
    assert_eq!(
        actions(&mut su, p, &id).await,
        ["assistant.turn:success", "perio_exam.read:success"]
    );
    assert_eq!(
        f.get(&exam).await["version"],
        2,
        "the held final charted nothing"
    );
}

// req: SCR-03 — the provider gate comes first: a vendor provider without a BAA on record is
// refused before any connection (the stand-in counts zero requests), the refusal is its turn
// (outcome `refused`, audited), nothing is charted (409 AI-0002).
#[tokio::test]
async fn a_vendor_without_a_baa_is_refused_before_any_connection() {
    let f = Fx::new().await;
    let exam = f.create().await;
    let mut su = f.db.superuser_unsafe().await;
    sqlx::query("update ai_provider set hosting = 'vendor' where practice_id = $1")
        .bind(f.world.a.id)
        .execute(&mut su)
        .await
        .unwrap();
    let (s, _, v) = f
        .voice(&exam, Some(&f.clinician), tone_wav(1000, 8), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "AI-0002", "{v}");
    assert_eq!(f.ear.requests(), 0, "nothing was sent");
    assert_eq!(
        f.turns().await,
        (vec![("perio_voice".to_owned(), "refused".to_owned())], 1)
    );
    assert_eq!(f.get(&exam).await["version"], 1);
}
