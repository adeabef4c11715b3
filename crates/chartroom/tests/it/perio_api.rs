//! Perio exams over the real HTTPS server on real PostgreSQL: create, dictate finals, confirm
//! and decline held finals, undo, the chart with derived values, the FHIR export, the size
//! limits, encryption at rest, isolation and care-team scope, and the atomicity of a final
//! with its audit event.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::Utc;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};

struct Fx {
    db: TestDb,
    w: World,
    app: TestApp,
    clin: String,
}

async fn fx() -> Fx {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let clin = app.token(w.a.user("clinician")).await;
    Fx { db, w, app, clin }
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Resp {
    fn etag(&self) -> &str {
        self.headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn request_id(&self) -> uuid::Uuid {
        self.headers["x-request-id"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
    if_match: Option<&str>,
) -> Resp {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    if let Some(v) = if_match {
        req = req.header("if-match", v);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Resp {
        status,
        headers,
        body,
    }
}

impl Fx {
    fn exams(&self) -> String {
        format!(
            "/api/v1/practices/{}/patients/{}/perio-exams",
            self.w.a.id, self.w.a.patient
        )
    }

    async fn create(&self, settings: Option<Value>) -> String {
        let body = settings.map_or_else(|| json!({}), |s| json!({ "settings": s }));
        let r = send(
            &self.app,
            Method::POST,
            &self.exams(),
            &self.clin,
            Some(&body),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["exam_id"].as_str().unwrap().to_owned()
    }

    async fn post(&self, exam: &str, action: &str, body: Option<&Value>) -> Resp {
        send(
            &self.app,
            Method::POST,
            &format!("{}/{exam}/{action}", self.exams()),
            &self.clin,
            body,
            None,
        )
        .await
    }

    async fn final_(&self, exam: &str, text: &str) -> Value {
        let r = self
            .post(exam, "finals", Some(&json!({ "text": text })))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{text}: {}", r.body);
        assert_eq!(r.etag(), format!("\"{}\"", r.body["version"]));
        r.body
    }

    async fn get(&self, exam: &str) -> Resp {
        send(
            &self.app,
            Method::GET,
            &format!("{}/{exam}", self.exams()),
            &self.clin,
            None,
            None,
        )
        .await
    }

    async fn chart(&self, exam: &str) -> Value {
        let r = self.get(exam).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }
}

/// `(tooth, site) -> mm` for one measure of a chart in the SPEC §6 shape.
fn sites(chart: &Value, measure: &str) -> BTreeMap<(u8, String), i64> {
    let mut out = BTreeMap::new();
    for (tooth, rec) in chart["teeth"].as_object().unwrap() {
        for (site, v) in rec[measure].as_object().unwrap() {
            out.insert((tooth.parse().unwrap(), site.clone()), v.as_i64().unwrap());
        }
    }
    out
}

/// The chart the dictation in `dictation_end_to_end` must leave (SPEC §6 shape).
fn expected_chart() -> Value {
    let tooth = |pd: Value, recession: Value, bleeding: Value| {
        json!({"status": "present", "pd": pd, "recession": recession, "kg_width": {},
               "bleeding": bleeding, "suppuration": [], "plaque": [], "calculus": []})
    };
    json!({"teeth": {
        "3": tooth(json!({"MB": 4, "B": 2, "DB": 3}), json!({"B": 2}), json!(["DB"])),
        "4": tooth(json!({"MB": 5, "B": 6, "DB": 5}), json!({}), json!(["MB"])),
        "5": tooth(json!({"MB": 4, "B": 14, "DB": 3}), json!({}), json!([])),
        "6": tooth(json!({"MB": 2, "B": 3, "DB": 2}), json!({}), json!([])),
    }})
}

/// Derived values computed here from a chart, independently of the engine: BOP % over sites
/// with a depth or a bleeding mark, sites with PD ≥ 4 and ≥ 6 mm, CAL = PD + recession.
struct Derived {
    bop_percent: f64,
    ge4: usize,
    ge6: usize,
    cal: BTreeMap<(u8, String), i64>,
    max_pd: BTreeMap<u8, i64>,
}

fn derive(chart: &Value) -> Derived {
    let pd = sites(chart, "pd");
    let rec = sites(chart, "recession");
    let mut examined = 0_u32;
    let mut bleeding = 0_u32;
    for (tooth, r) in chart["teeth"].as_object().unwrap() {
        let bleeds: Vec<&str> = r["bleeding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        for site in ["MB", "B", "DB", "ML", "L", "DL"] {
            let has_pd = pd.contains_key(&(tooth.parse().unwrap(), site.to_owned()));
            if has_pd || bleeds.contains(&site) {
                examined += 1;
                bleeding += u32::from(bleeds.contains(&site));
            }
        }
    }
    let mut max_pd = BTreeMap::new();
    for ((t, _), v) in &pd {
        let m = max_pd.entry(*t).or_insert(0);
        *m = (*m).max(*v);
    }
    Derived {
        bop_percent: (1000.0 * f64::from(bleeding) / f64::from(examined)).round() / 10.0,
        ge4: pd.values().filter(|v| **v >= 4).count(),
        ge6: pd.values().filter(|v| **v >= 6).count(),
        cal: rec
            .iter()
            .filter_map(|(k, r)| Some((k.clone(), pd.get(k)? + r)))
            .collect(),
        max_pd,
    }
}

/// An audit row about an exam: (action, patient, object id, details).
type ExamAuditRow = (
    String,
    Option<uuid::Uuid>,
    Option<uuid::Uuid>,
    Option<Value>,
);

/// The audit rows of one request: (action, patient, object type, object id, details).
async fn audit_of(
    su: &mut sqlx::PgConnection,
    request: uuid::Uuid,
) -> Vec<(
    String,
    Option<uuid::Uuid>,
    Option<String>,
    Option<uuid::Uuid>,
    Option<Value>,
)> {
    sqlx::query_as(
        "select action, patient_id, object_type, object_id, details from audit_event where request_id = $1",
    )
    .bind(request)
    .fetch_all(su)
    .await
    .unwrap()
}

#[tokio::test]
async fn perio_dictation_end_to_end() {
    let f = fx().await;
    let mut su = f.db.superuser_unsafe().await;
    let r = send(
        &f.app,
        Method::POST,
        &f.exams(),
        &f.clin,
        Some(&json!({})),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.etag(), "\"1\"");
    let exam = r.body["exam_id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.body["chart"], json!({"teeth": {}}));
    assert_eq!(
        r.body["cursor"],
        json!({"tooth": 1, "surface": "F", "site": "DB"})
    );
    assert_eq!(r.body["settings"]["numbering"], "universal");
    assert_eq!(r.body["can_undo"], false);
    let rows = audit_of(&mut su, r.request_id()).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "perio_exam.create");
    assert_eq!(rows[0].1, Some(f.w.a.patient.as_uuid()));
    assert_eq!(rows[0].3.unwrap().to_string(), exam);

    // Nothing to undo or confirm on a fresh exam; declining nothing changes nothing.
    assert_eq!(
        f.post(&exam, "undo", None).await.status,
        StatusCode::CONFLICT
    );
    let r = f.post(&exam, "confirm", None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["error"]["code"], "CONFLICT-0001");
    let r = f.post(&exam, "decline", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["changed"], false);
    assert_eq!(r.body["outcome"]["status"], "ignored");

    // Finals that apply.
    let o = f
        .final_(&exam, "tooth three buccal three two four bleeding distal")
        .await;
    assert_eq!(o["outcome"]["status"], "ok", "{o}");
    assert_eq!(o["changed"], true);
    assert_eq!(o["version"], 2);
    assert!(
        o["outcome"]["events"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "pd", "tooth": 3, "site": "DB", "mm": 3})),
        "{o}"
    );
    let o = f.final_(&exam, "five six five bleeding").await;
    assert_eq!(o["outcome"]["status"], "ok", "{o}");
    let o = f.final_(&exam, "recession two on tooth three facial").await;
    assert_eq!(o["outcome"]["status"], "ok", "{o}");

    // A deep pocket is held for confirmation (rule N5), then confirmed.
    let before = f.chart(&exam).await;
    let o = f.final_(&exam, "three fourteen four").await;
    assert_eq!(o["outcome"]["status"], "needs_confirmation", "{o}");
    assert_eq!(o["pending"], true);
    let held = f.chart(&exam).await;
    assert_eq!(
        held["chart"], before["chart"],
        "a held final changes no chart value"
    );
    assert_eq!(held["pending"].as_array().unwrap().len(), 1);
    let r = f.post(&exam, "confirm", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["outcome"]["status"], "ok");
    assert_eq!(r.body["pending"], false);
    assert_eq!(
        sites(&f.chart(&exam).await["chart"], "pd")[&(5, "B".to_owned())],
        14
    );
    assert_eq!(
        f.post(&exam, "confirm", None).await.status,
        StatusCode::CONFLICT
    );

    let o = f.final_(&exam, "two three two").await;
    assert_eq!(o["outcome"]["status"], "ok", "{o}");

    // Another deep pocket, declined: nothing of it is charted.
    let before = f.chart(&exam).await;
    let o = f.final_(&exam, "three fifteen four").await;
    assert_eq!(o["outcome"]["status"], "needs_confirmation", "{o}");
    let r = f.post(&exam, "decline", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["outcome"]["status"], "ok");
    assert_eq!(
        r.body["outcome"]["warnings"],
        json!(["confirmation_declined"])
    );
    let after = f.chart(&exam).await;
    assert_eq!(after["chart"], before["chart"]);
    assert_eq!(after["pending"], Value::Null);

    // An ambiguous tooth number offers two readings (rule A2); the second is tooth 20.
    let o = f.final_(&exam, "tooth twenty three two four").await;
    assert_eq!(o["outcome"]["status"], "needs_confirmation", "{o}");
    assert_eq!(o["outcome"]["alternatives"].as_array().unwrap().len(), 2);
    let r = send(
        &f.app,
        Method::POST,
        &format!("{}/{exam}/confirm?alternative=5", f.exams()),
        &f.clin,
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = send(
        &f.app,
        Method::POST,
        &format!("{}/{exam}/confirm?alternative=1", f.exams()),
        &f.clin,
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let with_20 = f.chart(&exam).await;
    assert_eq!(
        with_20["chart"]["teeth"]["20"]["pd"],
        json!({"MB": 4, "B": 2, "DB": 3})
    );

    // Conversation is refused with a reason and changes nothing.
    let v = with_20["version"].clone();
    let o = f.final_(&exam, "your gums are bleeding a little").await;
    assert_eq!(o["outcome"]["status"], "rejected");
    assert_eq!(o["outcome"]["reject"]["reason"], "out_of_vocabulary");
    assert_eq!(o["changed"], false);
    assert_eq!(o["version"], v);

    // Undo takes back the previous applied final (the confirmed tooth 20 reading).
    let r = f.post(&exam, "undo", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["outcome"]["status"], "ok");
    assert!(
        r.body["outcome"]["reverts"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "pd", "tooth": 20, "site": "B", "mm": 2})),
        "{}",
        r.body
    );

    // The chart and its derived values, checked against values computed here.
    let got = f.chart(&exam).await;
    assert_eq!(got["chart"], expected_chart(), "{}", got["chart"]);
    let d = derive(&expected_chart());
    assert_eq!((d.ge4, d.ge6), (6, 2), "the fixture itself");
    let derived = &got["derived"];
    assert!((derived["bop_percent"].as_f64().unwrap() - d.bop_percent).abs() < 1e-9);
    assert_eq!(derived["bop"]["bleeding_sites"], 2);
    assert_eq!(derived["bop"]["examined_sites"], 12);
    assert_eq!(derived["sites_pd_ge_4"], d.ge4);
    assert_eq!(derived["sites_pd_ge_6"], d.ge6);
    let mut cal = BTreeMap::new();
    let mut max_pd = BTreeMap::new();
    for t in derived["teeth"].as_array().unwrap() {
        let tooth = u8::try_from(t["tooth"].as_u64().unwrap()).unwrap();
        for (site, v) in t["cal"].as_object().unwrap() {
            cal.insert((tooth, site.clone()), v.as_i64().unwrap());
        }
        max_pd.insert(tooth, t["max_pd"].as_i64().unwrap());
        let pd_ge_4 = sites(&expected_chart(), "pd")
            .iter()
            .filter(|((tt, _), v)| *tt == tooth && **v >= 4)
            .count();
        assert_eq!(t["sites_pd_ge_4"], pd_ge_4, "tooth {tooth}");
    }
    assert_eq!(cal, d.cal);
    assert_eq!(cal, BTreeMap::from([((3, "B".to_owned()), 4)]));
    assert_eq!(max_pd, d.max_pd);
    assert_eq!(got["can_undo"], true);
    assert_eq!(got["labels"]["3"], "Universal 3");

    // The list shows the exam, without chart values.
    let r = send(&f.app, Method::GET, &f.exams(), &f.clin, None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["exam_id"], exam.as_str());
    assert_eq!(list[0]["version"], got["version"]);
    assert!(list[0].get("chart").is_none());

    // Every action left one audit row naming the patient and the exam, with ids, the action
    // and the outcome status only.
    let rows: Vec<ExamAuditRow> = sqlx::query_as(
        "select action, patient_id, object_id, details from audit_event
              where practice_id = $1 and action like 'perio_exam.%' order by occurred_at, event_id",
    )
    .bind(f.w.a.id)
    .fetch_all(&mut su)
    .await
    .unwrap();
    let updates: Vec<&Value> = rows
        .iter()
        .filter(|r| r.0 == "perio_exam.update")
        .map(|r| r.3.as_ref().unwrap())
        .collect();
    // 8 finals, 2 declines, 2 confirmations, 1 undo; refused requests (409, 400) leave none.
    assert_eq!(updates.len(), 13, "{updates:?}");
    for d in &updates {
        let keys: Vec<&String> = d.as_object().unwrap().keys().collect();
        for k in keys {
            assert!(
                ["op", "status", "changed", "version", "reason"].contains(&k.as_str()),
                "audit details carry only ids and statuses: {d}"
            );
        }
    }
    assert!(
        updates
            .iter()
            .any(|d| d["op"] == "final" && d["reason"] == "out_of_vocabulary")
    );
    for r in &rows {
        assert_eq!(r.1, Some(f.w.a.patient.as_uuid()), "{}", r.0);
        if r.0 != "perio_exam.list" {
            assert_eq!(r.2.unwrap().to_string(), exam, "{}", r.0);
        }
    }
    assert!(rows.iter().any(|r| r.0 == "perio_exam.read"));
    assert!(rows.iter().any(|r| r.0 == "perio_exam.list"));
}

#[tokio::test]
async fn perio_exam_settings_are_validated_and_kept() {
    let f = fx().await;
    let r = send(
        &f.app,
        Method::POST,
        &f.exams(),
        &f.clin,
        Some(&json!({"settings": {"numbering": "fdi", "path": "per_tooth", "compat": {"od_plus": true}}})),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["settings"]["numbering"], "fdi");
    assert_eq!(r.body["settings"]["path"], "per_tooth");
    assert_eq!(r.body["settings"]["compat"]["od_plus"], true);
    let exam = r.body["exam_id"].as_str().unwrap().to_owned();
    let o = f.final_(&exam, "tooth one six three two three").await;
    assert_eq!(o["outcome"]["labels"]["3"], "FDI 16", "{o}");
    assert_eq!(f.chart(&exam).await["labels"]["3"], "FDI 16");

    for (settings, needle) in [
        (json!({"numbering": "klingon"}), "numbering"),
        (json!({"nonsense": 1}), "unknown field `nonsense`"),
        (json!({"compat": {"x": true}}), "unknown field `compat.x`"),
        (json!({"max_unconfirmed_depth": 0}), "max_unconfirmed_depth"),
        (json!([1, 2]), "JSON object"),
    ] {
        let r = send(
            &f.app,
            Method::POST,
            &f.exams(),
            &f.clin,
            Some(&json!({ "settings": settings })),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{settings}");
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{settings}: {msg}");
        assert!(!msg.contains("klingon"), "no value echoed: {msg}");
    }
}

#[tokio::test]
async fn perio_final_limits_are_refused_with_a_reason_and_change_nothing() {
    let f = fx().await;
    let exam = f.create(None).await;
    f.final_(&exam, "tooth three buccal three two four").await;
    let before = f.chart(&exam).await;
    let mut su = f.db.superuser_unsafe().await;
    let long = "three ".repeat(700); // 4200 bytes
    let many = "one ".repeat(257); // 1028 bytes, 257 tokens
    for (body, field, reason) in [
        (json!({"text": long}), "text", "too_long"),
        (json!({"text": many}), "text", "too_many_tokens"),
        (
            json!({"text": "three two three", "lexical": long}),
            "lexical",
            "too_long",
        ),
        (
            json!({"text": "three two three", "lexical": many}),
            "lexical",
            "too_many_tokens",
        ),
    ] {
        let r = f.post(&exam, "finals", Some(&body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field} {reason}");
        assert_eq!(r.body["error"]["code"], "INPUT-0001");
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with(&format!("{field}: {reason}:")),
            "{field} {reason}: {msg}"
        );
        assert!(audit_of(&mut su, r.request_id()).await.is_empty());
    }
    // Exactly at the limits the final is read by the engine (and refused by it, here, as
    // a value run longer than the path allows), still without changing anything.
    let at = "one ".repeat(256);
    let r = f.post(&exam, "finals", Some(&json!({ "text": at }))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["changed"], false, "{}", r.body);
    let after = f.chart(&exam).await;
    assert_eq!(after["chart"], before["chart"]);
    assert_eq!(after["version"], before["version"]);
}

/// The engine's state is one ciphertext bound to its exam: a database reader sees no chart
/// value, no setting and no dictated word, and a ciphertext moved to another exam fails.
// req: ENC-01
#[tokio::test]
async fn perio_chart_is_stored_encrypted() {
    let f = fx().await;
    let exam = f.create(Some(json!({"numbering": "palmer"}))).await;
    f.final_(&exam, "tooth three buccal three two four bleeding distal")
        .await;
    f.final_(&exam, "mobility class two on tooth three").await;
    f.final_(&exam, "three fourteen four").await;
    let other = f.create(None).await;
    let mut su = f.db.superuser_unsafe().await;
    let rows: Vec<String> = sqlx::query_scalar("select t::text from perio_exam t")
        .fetch_all(&mut su)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let enc: Vec<Vec<u8>> = sqlx::query_scalar("select session_enc from perio_exam")
        .fetch_all(&mut su)
        .await
        .unwrap();
    let plaintexts = [
        "teeth", "bleeding", "palmer", "mobility", "history", "pending", "settings", "\"pd\"",
        "\"mm\"", "fourteen",
    ];
    for text in &rows {
        for p in plaintexts {
            assert!(!text.contains(p), "perio_exam row holds plaintext {p}");
            let hex = p.bytes().fold(String::new(), |mut h, b| {
                let _ = write!(h, "{b:02x}");
                h
            });
            assert!(!text.contains(&hex), "perio_exam row holds {p} as bytes");
        }
    }
    for ct in &enc {
        // JSON member names of the session, not a 2-byte pattern random ciphertext contains
        // by chance (about once in 65,536 positions).
        for marker in [&b"\"settings\""[..], b"\"teeth\"", b"\"history\""] {
            assert!(
                !ct.windows(marker.len()).any(|w| w == marker),
                "no JSON in the ciphertext"
            );
        }
        assert!(ct.len() > 16);
    }
    let audit: String =
        sqlx::query_scalar("select coalesce(string_agg(t::text, E'\\n'), '') from audit_event t")
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert!(
        audit.contains(&exam),
        "the audit trail names the exam by id"
    );
    for p in ["bleeding", "fourteen", "mobility", "buccal", "\"mm\""] {
        assert!(!audit.contains(p), "audit rows hold dictated content ({p})");
    }

    // Bound to its row: the first exam's ciphertext copied over the second does not open.
    sqlx::query(
        "update perio_exam set session_enc = (select session_enc from perio_exam where exam_id = $1) where exam_id = $2",
    )
    .bind(uuid::Uuid::parse_str(&exam).unwrap())
    .bind(uuid::Uuid::parse_str(&other).unwrap())
    .execute(&mut su)
    .await
    .unwrap();
    let r = f.get(&other).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body["error"]["message"], "internal error");
    assert!(!r.body.to_string().contains("teeth"));
    assert_eq!(f.get(&exam).await.status, StatusCode::OK);
}

/// Another practice's exam, another patient's exam and an invisible patient are all 404;
/// members without the clinician role get the refusal every clinical route gives.
// req: AC-03, AC-04
#[tokio::test]
async fn perio_isolation_roles_and_care_team_scope() {
    let f = fx().await;
    let exam = f.create(None).await;
    f.final_(&exam, "tooth three buccal three two four").await;
    let clin_b = f.app.token(f.w.b.user("clinician")).await;
    let b_exams = format!(
        "/api/v1/practices/{}/patients/{}/perio-exams",
        f.w.b.id, f.w.b.patient
    );
    let r = send(
        &f.app,
        Method::POST,
        &b_exams,
        &clin_b,
        Some(&json!({})),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let b_exam = r.body["exam_id"].as_str().unwrap().to_owned();

    let a = format!("/api/v1/practices/{}", f.w.a.id);
    let own = format!("{a}/patients/{}/perio-exams/{exam}", f.w.a.patient);
    let paths = |p: &str| {
        vec![
            (Method::GET, p.to_owned(), None),
            (Method::GET, format!("{p}/fhir"), None),
            (
                Method::POST,
                format!("{p}/finals"),
                Some(json!({"text": "three two three"})),
            ),
            (Method::POST, format!("{p}/undo"), None),
            (Method::POST, format!("{p}/decline"), None),
            (Method::POST, format!("{p}/confirm"), None),
        ]
    };
    // B's clinician on A's exam: the practice is not theirs.
    for (m, p, body) in paths(&own) {
        let r = send(&f.app, m.clone(), &p, &clin_b, body.as_ref(), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {p}");
        assert_eq!(r.body["error"]["code"], "NOT-FOUND");
    }
    // A's clinician naming B's exam (with B's or A's patient), or A's exam under A's other
    // patient.
    let owner = f.db.owner().await;
    let other_patient = owner
        .seed_patient(
            f.w.a.id,
            &domain::synthetic::Generator::new(7).patient().into(),
            Utc::now(),
        )
        .await
        .unwrap();
    for p in [
        format!("{a}/patients/{}/perio-exams/{b_exam}", f.w.b.patient),
        format!("{a}/patients/{}/perio-exams/{b_exam}", f.w.a.patient),
        format!("{a}/patients/{other_patient}/perio-exams/{exam}"),
    ] {
        for (m, p, body) in paths(&p) {
            let r = send(&f.app, m.clone(), &p, &f.clin, body.as_ref(), None).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {p}");
        }
    }
    let r = send(
        &f.app,
        Method::POST,
        &format!("{a}/patients/{}/perio-exams", f.w.b.patient),
        &f.clin,
        Some(&json!({})),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "B's patient in A's path");

    // Reception, owner and admin: the same answer the notes routes give them.
    for role in ["reception", "owner", "admin"] {
        let t = f.app.token(f.w.a.user(role)).await;
        let notes = send(
            &f.app,
            Method::GET,
            &format!("{a}/patients/{}/notes", f.w.a.patient),
            &t,
            None,
            None,
        )
        .await;
        assert_eq!(notes.status, StatusCode::FORBIDDEN);
        for (m, p, body) in paths(&own).into_iter().chain([
            (Method::GET, f.exams(), None),
            (Method::POST, f.exams(), Some(json!({}))),
        ]) {
            let r = send(&f.app, m.clone(), &p, &t, body.as_ref(), None).await;
            assert_eq!(r.status, notes.status, "{role}: {m} {p}");
            assert_eq!(r.body["error"]["code"], notes.body["error"]["code"]);
        }
    }

    // Row-level security says the same, whatever the route does: a reception member of A
    // sees no exam row, A's clinician sees A's only.
    let mut conn = f.db.runtime_conn().await;
    assert_eq!(
        visible_exams(&mut conn, f.w.a.id, f.w.a.user("reception")).await,
        0
    );
    assert_eq!(
        visible_exams(&mut conn, f.w.a.id, f.w.a.user("owner")).await,
        0
    );
    assert_eq!(
        visible_exams(&mut conn, f.w.a.id, f.w.a.user("clinician")).await,
        1
    );

    // Care-team scope lives in one function: narrowed (as the care-team work will do), a
    // patient outside it is as absent as another practice's.
    let mut su = f.db.superuser_unsafe().await;
    sqlx::query(&format!(
        "create or replace function app.clinical_visible(p_patient uuid) returns boolean
             language sql stable parallel safe
             as $$ select p_patient <> '{}'::uuid and (select app.actor_roles()) && array['clinician'] $$",
        f.w.a.patient
    ))
    .execute(&mut su)
    .await
    .unwrap();
    for (m, p, body) in paths(&own).into_iter().chain([
        (Method::GET, f.exams(), None),
        (Method::POST, f.exams(), Some(json!({}))),
    ]) {
        let r = send(&f.app, m.clone(), &p, &f.clin, body.as_ref(), None).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "invisible patient: {m} {p}"
        );
    }
    let r = send(
        &f.app,
        Method::POST,
        &format!("{a}/patients/{other_patient}/perio-exams"),
        &f.clin,
        Some(&json!({})),
        None,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "a visible patient still works"
    );
}

/// Exam rows the runtime role sees as `actor` in `practice`.
async fn visible_exams(
    conn: &mut sqlx::PgConnection,
    practice: domain::PracticeId,
    actor: domain::UserId,
) -> i64 {
    let mut tx = sqlx::Connection::begin(conn).await.unwrap();
    testkit::enter_as(
        &mut tx,
        Some(practice.as_uuid()),
        Some(actor.as_uuid()),
        true,
    )
    .await;
    let n: i64 = sqlx::query_scalar("select count(*) from perio_exam")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    n
}

/// A final and its audit event commit together or not at all.
// req: AUD-01
#[tokio::test]
async fn perio_final_and_its_audit_event_are_atomic() {
    let f = fx().await;
    let exam = f.create(None).await;
    f.final_(&exam, "tooth three buccal three two four").await;
    let before = f.chart(&exam).await;
    let mut su = f.db.superuser_unsafe().await;
    sqlx::query("revoke insert on audit_event from chartroom_runtime")
        .execute(&mut su)
        .await
        .unwrap();
    for (action, body) in [
        ("finals", Some(json!({"text": "five six five"}))),
        ("undo", None),
    ] {
        let r = f.post(&exam, action, body.as_ref()).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{action}");
        assert_eq!(r.body["error"]["message"], "internal error");
    }
    assert_eq!(
        f.get(&exam).await.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "no chart leaves without its audit row"
    );
    sqlx::query("grant insert on audit_event to chartroom_runtime")
        .execute(&mut su)
        .await
        .unwrap();
    let after = f.chart(&exam).await;
    assert_eq!(
        after["chart"], before["chart"],
        "the refused final left no trace"
    );
    assert_eq!(after["version"], before["version"]);
}

/// Finals on one exam apply one after the other; with `If-Match`, exactly one of two
/// writers on the same version wins.
// req: INT-03
#[tokio::test]
async fn perio_concurrent_finals() {
    let f = fx().await;
    let exam = f.create(None).await;
    let path = format!("{}/{exam}/finals", f.exams());
    let a = json!({"text": "tooth three buccal three two four"});
    let b = json!({"text": "tooth five buccal two two two"});
    let (ra, rb) = tokio::join!(
        send(
            &f.app,
            Method::POST,
            &path,
            &f.clin,
            Some(&a),
            Some("\"1\"")
        ),
        send(
            &f.app,
            Method::POST,
            &path,
            &f.clin,
            Some(&b),
            Some("\"1\"")
        ),
    );
    let mut statuses = [ra.status, rb.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    let got = f.chart(&exam).await;
    assert_eq!(got["version"], 2);
    assert_eq!(got["chart"]["teeth"].as_object().unwrap().len(), 1);

    let (ra, rb) = tokio::join!(
        send(&f.app, Method::POST, &path, &f.clin, Some(&a), None),
        send(&f.app, Method::POST, &path, &f.clin, Some(&b), None),
    );
    assert_eq!((ra.status, rb.status), (StatusCode::OK, StatusCode::OK));
    let got = f.chart(&exam).await;
    assert_eq!(got["version"], 4);
    let teeth = got["chart"]["teeth"].as_object().unwrap();
    assert_eq!(teeth["3"]["pd"], json!({"MB": 4, "B": 2, "DB": 3}));
    assert_eq!(teeth["5"]["pd"], json!({"MB": 2, "B": 2, "DB": 2}));
    let r = send(
        &f.app,
        Method::POST,
        &path,
        &f.clin,
        Some(&a),
        Some("not-an-etag"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = send(
        &f.app,
        Method::POST,
        &path,
        &f.clin,
        Some(&a),
        Some("\"4\""),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.etag(), "\"5\"");
}

/// The FHIR export: one Observation per probing depth (LOINC 32910-2) and per attachment
/// loss (LOINC 32881-5), each with its tooth and site, values as charted.
#[tokio::test]
async fn perio_fhir_bundle() {
    let f = fx().await;
    let exam = f.create(None).await;
    for text in [
        "tooth one missing",
        "tooth three buccal three two four bleeding distal",
        "jump to tooth three facial",
        "gingival margin one zero two",
        "start pocket depths",
        "five six five",
        "tooth fourteen lingual four four five",
    ] {
        let o = f.final_(&exam, text).await;
        assert_eq!(o["outcome"]["status"], "ok", "{text}: {o}");
    }
    let chart = f.chart(&exam).await["chart"].clone();
    let pd = sites(&chart, "pd");
    let rec = sites(&chart, "recession");
    assert!(!rec.is_empty() && pd.len() >= 9, "{chart}");

    let res = f
        .app
        .http
        .get(f.app.url(&format!("{}/{exam}/fhir", f.exams())))
        .bearer_auth(&f.clin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/fhir+json");
    let request_id: uuid::Uuid = res.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bundle: Value = res.json().await.unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    assert_eq!(bundle["identifier"]["value"], exam.as_str());
    let mut got_pd = BTreeMap::new();
    let mut got_cal = BTreeMap::new();
    let mut ids = std::collections::BTreeSet::new();
    for e in bundle["entry"].as_array().unwrap() {
        let o = &e["resource"];
        assert_eq!(o["resourceType"], "Observation");
        assert_eq!(o["status"], "final");
        assert!(
            ids.insert(o["id"].as_str().unwrap().to_owned()),
            "ids are unique"
        );
        assert_eq!(
            e["fullUrl"],
            format!("urn:uuid:{}", o["id"].as_str().unwrap())
        );
        assert_eq!(o["code"]["coding"][0]["system"], "http://loinc.org");
        assert_eq!(
            o["subject"]["identifier"],
            json!({"system": "urn:chartroom:patient", "value": f.w.a.patient.to_string()})
        );
        assert_eq!(
            o["valueQuantity"]["system"], "http://unitsofmeasure.org",
            "UCUM"
        );
        assert_eq!(o["valueQuantity"]["code"], "mm");
        let tooth = &o["bodySite"]["coding"][0];
        assert_eq!(
            tooth["system"],
            "http://terminology.hl7.org/CodeSystem/ADAUniversalToothDesignationSystem"
        );
        let site = &o["bodySite"]["extension"][0];
        assert_eq!(site["url"], "urn:chartroom:fhir:perio-site");
        let key = (
            tooth["code"].as_str().unwrap().parse::<u8>().unwrap(),
            site["valueCoding"]["code"].as_str().unwrap().to_owned(),
        );
        let value = o["valueQuantity"]["value"].as_i64().unwrap();
        match o["code"]["coding"][0]["code"].as_str().unwrap() {
            "32910-2" => assert!(got_pd.insert(key, value).is_none()),
            "32881-5" => assert!(got_cal.insert(key, value).is_none()),
            other => panic!("unexpected code {other}"),
        }
    }
    assert_eq!(got_pd, pd);
    let cal: BTreeMap<(u8, String), i64> = rec
        .iter()
        .filter_map(|(k, r)| Some((k.clone(), pd.get(k)? + r)))
        .collect();
    assert!(!cal.is_empty());
    assert_eq!(got_cal, cal);
    assert!(
        !got_pd.keys().any(|(t, _)| *t == 1),
        "missing tooth 1 exports nothing"
    );

    let mut su = f.db.superuser_unsafe().await;
    let rows = audit_of(&mut su, request_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "perio_exam.export");
    assert_eq!(rows[0].1, Some(f.w.a.patient.as_uuid()));
    assert_eq!(
        rows[0].4.as_ref().unwrap()["observations"],
        got_pd.len() + got_cal.len()
    );
}
