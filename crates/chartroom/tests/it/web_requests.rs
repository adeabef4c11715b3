//! Issue 20.8, patients' requests in the web app (req PR-01, SIG-07, SIG-08): the list of
//! open right-of-access and amendment requests with their deadlines, each request's page and
//! its actions, over real HTTP. Every route in the authorization matrix (anonymous → sign-in,
//! another practice → 404, reception → 403 audited, owners and admins → 403 on the clinical
//! routes, the right roles → 200/303 with the API's audit events); what each role must not
//! see; deadlines, overdue and extended as the list shows them on the injected clock;
//! refusals answered on the page with nothing changed; accepting onto the note with step-up;
//! the rebuttal's author.

use chrono::{Duration, DurationRound as _};
use domain::Clock as _;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};

use crate::util::call;
use crate::web_pages::{client, get_page, post_form, request, request_id};

/// Distinct audit actions of one request in practice `p`, sorted, each a success.
async fn actions(su: &mut sqlx::PgConnection, p: domain::PracticeId, req: &str) -> Vec<String> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select action, outcome from audit_event where practice_id = $1 and request_id = $2",
    )
    .bind(p)
    .bind(uuid::Uuid::parse_str(req).unwrap())
    .fetch_all(su)
    .await
    .unwrap();
    let mut a: Vec<String> = rows
        .into_iter()
        .map(|(action, outcome)| {
            assert_eq!(outcome, "success", "{action}");
            action
        })
        .collect();
    a.sort();
    a.dedup();
    a
}

/// The audit rows of one request in practice `p`: (action, outcome).
async fn audit_rows(
    su: &mut sqlx::PgConnection,
    p: domain::PracticeId,
    req: &str,
) -> Vec<(String, String)> {
    sqlx::query_as(
        "select action, outcome from audit_event where practice_id = $1 and request_id = $2",
    )
    .bind(p)
    .bind(uuid::Uuid::parse_str(req).unwrap())
    .fetch_all(su)
    .await
    .unwrap()
}

/// Records a right-of-access request through the API; its id.
pub(crate) async fn api_access(
    app: &TestApp,
    token: &str,
    p: domain::PracticeId,
    body: &Value,
) -> String {
    let (s, v) = call(
        app,
        Method::POST,
        &format!("/api/v1/practices/{p}/access-requests"),
        Some(token),
        Some(body),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["request_id"].as_str().unwrap().to_owned()
}

/// Records an amendment request through the API; its id.
pub(crate) async fn api_amendment(
    app: &TestApp,
    token: &str,
    p: domain::PracticeId,
    body: &Value,
) -> String {
    let (s, v) = call(
        app,
        Method::POST,
        &format!("/api/v1/practices/{p}/amendment-requests"),
        Some(token),
        Some(body),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["request_id"].as_str().unwrap().to_owned()
}

/// A request as the API reads it.
async fn api_state(
    app: &TestApp,
    token: &str,
    p: domain::PracticeId,
    kind: &str,
    id: &str,
) -> Value {
    let (s, v) = call(
        app,
        Method::GET,
        &format!("/api/v1/practices/{p}/{kind}-requests/{id}"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

async fn api_post(app: &TestApp, token: &str, url: &str, body: &Value) {
    let (s, v) = call(app, Method::POST, url, Some(token), Some(body)).await;
    assert!(s.is_success(), "{url}: {v}");
}

/// A signed note of the practice's patient by its clinician; its id.
pub(crate) async fn signed_note(app: &TestApp, w: &World, text: &str) -> String {
    let p = w.a.id;
    let clin = app.token(w.a.user("clinician")).await;
    let (s, v) = call(
        app,
        Method::POST,
        &format!("/api/v1/practices/{p}/patients/{}/notes", w.a.patient),
        Some(&clin),
        Some(&json!({"content": {"subjective": text}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let note = v["note_id"].as_str().unwrap().to_owned();
    api_post(
        app,
        &clin,
        &format!("/api/v1/practices/{p}/notes/{note}/sign"),
        &json!({}),
    )
    .await;
    note
}

/// What a fresh object of a matrix route is.
#[derive(Clone, Copy, Debug)]
enum Object {
    /// No object: the list.
    List,
    /// An open access request.
    Access,
    /// An open amendment request naming a signed note.
    NoteAmendment,
    /// A denied amendment request.
    Denied,
    /// A denied amendment request with the patient's statement.
    Disagreed,
}

/// A route of the matrix.
struct Case {
    method: Method,
    object: Object,
    tail: &'static str,
    form: &'static [(&'static str, &'static str)],
    /// Clinicians only (the API's `Clinical`): owners and admins get 403.
    clinical: bool,
    ok: StatusCode,
    audit: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        method: Method::GET,
        object: Object::List,
        tail: "",
        form: &[],
        clinical: false,
        ok: StatusCode::OK,
        audit: &["access_request.list", "amendment_request.list"],
    },
    Case {
        method: Method::GET,
        object: Object::Access,
        tail: "",
        form: &[],
        clinical: false,
        ok: StatusCode::OK,
        audit: &["access_request.read", "membership.list"],
    },
    Case {
        method: Method::POST,
        object: Object::Access,
        tail: "/extend",
        form: &[("reason", "Records are in off-site storage")],
        clinical: false,
        ok: StatusCode::SEE_OTHER,
        audit: &["access_request.extend"],
    },
    Case {
        method: Method::POST,
        object: Object::Access,
        tail: "/deny",
        form: &[("reason", "Psychotherapy notes are excluded")],
        clinical: false,
        ok: StatusCode::SEE_OTHER,
        audit: &["access_request.deny"],
    },
    Case {
        method: Method::POST,
        object: Object::Access,
        tail: "/fulfil",
        form: &[],
        clinical: true,
        ok: StatusCode::OK,
        audit: &["access_request.fulfil", "patient.export"],
    },
    Case {
        method: Method::GET,
        object: Object::NoteAmendment,
        tail: "",
        form: &[],
        clinical: false,
        ok: StatusCode::OK,
        audit: &["amendment_request.read", "membership.list"],
    },
    Case {
        method: Method::POST,
        object: Object::NoteAmendment,
        tail: "/extend",
        form: &[("reason", "The treating clinician is away")],
        clinical: false,
        ok: StatusCode::SEE_OTHER,
        audit: &["amendment_request.extend"],
    },
    Case {
        method: Method::POST,
        object: Object::NoteAmendment,
        tail: "/deny",
        form: &[("reason", "The note is accurate and complete")],
        clinical: false,
        ok: StatusCode::SEE_OTHER,
        audit: &["amendment_request.deny"],
    },
    Case {
        method: Method::GET,
        object: Object::NoteAmendment,
        tail: "/accept",
        form: &[],
        clinical: true,
        ok: StatusCode::OK,
        audit: &["amendment_request.read", "note.read"],
    },
    Case {
        method: Method::POST,
        object: Object::NoteAmendment,
        tail: "/accept",
        form: &[
            ("kind", "addendum"),
            ("version", "2"),
            (
                "text",
                "Patient reports the pain began after the extraction",
            ),
            ("addendum_reason", "Patient's amendment request"),
        ],
        clinical: true,
        ok: StatusCode::SEE_OTHER,
        audit: &["amendment_request.accept", "note.addendum"],
    },
    Case {
        method: Method::POST,
        object: Object::Denied,
        tail: "/disagreement",
        form: &[("text", "I never had sensitivity there")],
        clinical: false,
        ok: StatusCode::SEE_OTHER,
        audit: &["amendment_request.disagreement"],
    },
    Case {
        method: Method::POST,
        object: Object::Disagreed,
        tail: "/rebuttal",
        form: &[("text", "Sensitivity was recorded at two visits")],
        clinical: false,
        ok: StatusCode::SEE_OTHER,
        audit: &["amendment_request.rebuttal"],
    },
];

/// The matrix's world: practice A with a signed note, the tokens of every role.
struct Fixture {
    app: TestApp,
    w: World,
    note: String,
    admin: String,
}

impl Fixture {
    /// A fresh object of `kind` in practice A; the page path of `case` on it.
    async fn path(&self, case: &Case) -> String {
        let p = self.w.a.id;
        let patient = self.w.a.patient;
        let (kind, id) = match case.object {
            Object::List => return format!("/app/practices/{p}/requests"),
            Object::Access => (
                "access",
                api_access(
                    &self.app,
                    &self.admin,
                    p,
                    &json!({"patient_id": patient, "form": "fhir_json"}),
                )
                .await,
            ),
            Object::NoteAmendment | Object::Denied | Object::Disagreed => {
                let id = api_amendment(
                    &self.app,
                    &self.admin,
                    p,
                    &json!({"patient_id": patient, "record_kind": "note", "note_id": self.note,
                            "note_version": 1, "requested_change": "The pain was lower right"}),
                )
                .await;
                let api = format!("/api/v1/practices/{p}/amendment-requests/{id}");
                if matches!(case.object, Object::Denied | Object::Disagreed) {
                    api_post(
                        &self.app,
                        &self.admin,
                        &format!("{api}/deny"),
                        &json!({"reason": "accurate"}),
                    )
                    .await;
                }
                if matches!(case.object, Object::Disagreed) {
                    api_post(
                        &self.app,
                        &self.admin,
                        &format!("{api}/disagreement"),
                        &json!({"text": "I disagree"}),
                    )
                    .await;
                }
                ("amendment", id)
            }
        };
        format!("/app/practices/{p}/requests/{kind}/{id}{}", case.tail)
    }
}

async fn send(
    http: &reqwest::Client,
    app: &TestApp,
    case: &Case,
    path: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut r = request(http, app, case.method.clone(), path, token);
    if case.method != Method::GET {
        r = r.form(case.form);
    }
    r.send().await.unwrap()
}

// req: PR-01, SIG-08 — every request page and action: anonymous → the sign-in page, another
// practice (and another practice's request under its own id) → 404, reception → 403 with the
// denial audited and nothing changed, owners and admins → 403 on fulfilling and accepting
// (clinical records), each right role → 200 or 303 with exactly the API's audit events; a
// cross-site post is refused before any handler.
#[tokio::test]
async fn request_pages_authorization_matrix() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = w.a.id;
    let admin = app.token(w.a.user("admin")).await;
    let note = signed_note(&app, &w, "Pain lower left").await;
    let reception = app.token(w.a.user("reception")).await;
    let other = app.token(w.b.user("owner")).await;
    let b_clinician = app.token(w.b.user("clinician")).await;
    let half = app.password_only_token(w.a.user("owner")).await;
    let mut su = db.superuser_unsafe().await;
    let f = Fixture {
        app,
        w,
        note,
        admin,
    };
    let app = &f.app;
    for case in CASES {
        let path = f.path(case).await;
        let what = format!("{} {path}", case.method);
        let res = send(&http, app, case, &path, None).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "anonymous {what}");
        assert_eq!(res.headers()[LOCATION], "/app/sign-in", "anonymous {what}");
        let res = send(&http, app, case, &path, Some(&half)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "password only {what}");
        assert_eq!(res.headers()[LOCATION], "/app/sign-in/second-factor");
        let res = send(&http, app, case, &path, Some(&other)).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "other practice {what}");
        let cross = path.replace(&p.to_string(), &f.w.b.id.to_string());
        // B's clinician (who holds every privilege the routes ask for), in B's own practice,
        // naming A's request: unknown there.
        let res = send(&http, app, case, &cross, Some(&b_clinician)).await;
        let want = if matches!(case.object, Object::List) {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(res.status(), want, "B naming A's request: {cross}");
        let mut wrong = vec![("reception", reception.clone())];
        if case.clinical {
            for role in ["owner", "admin"] {
                wrong.push((role, app.token(f.w.a.user(role)).await));
            }
        }
        for (who, token) in &wrong {
            let res = send(&http, app, case, &path, Some(token)).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{who} {what}");
            let id = request_id(&res);
            assert!(res.text().await.unwrap().contains("AUTHZ-0001"));
            assert_eq!(
                audit_rows(&mut su, p, &id).await,
                [("access.denied".to_owned(), "denied".to_owned())],
                "{who} {what}"
            );
        }
        if case.method != Method::GET {
            // A cross-site post: refused before any handler (nothing read, nothing audited).
            let res = http
                .post(app.url(&path))
                .header(reqwest::header::COOKIE, crate::web_pages::cookie(&f.admin))
                .header("sec-fetch-site", "cross-site")
                .form(case.form)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "cross-site {what}");
        }
        let right: &[&str] = if case.clinical {
            &["clinician"]
        } else {
            &["owner", "admin", "clinician"]
        };
        for (i, role) in right.iter().enumerate() {
            // Actions consume their object: each role acts on a fresh one.
            let path = if i == 0 {
                path.clone()
            } else {
                f.path(case).await
            };
            let token = app.token(f.w.a.user(role)).await;
            let res = send(&http, app, case, &path, Some(&token)).await;
            assert_eq!(res.status(), case.ok, "{role} {what}");
            let id = request_id(&res);
            assert_eq!(
                actions(&mut su, p, &id).await,
                case.audit,
                "{role} {what}: the API's audit events"
            );
        }
    }
}

// req: PR-01, SIG-07 — what each role must not see: reception has no menu entry for the
// requests; owners and admins see a request's deadline and its extend and deny forms but no
// way to fulfil or accept (clinical records) and no link into the chart or the note;
// clinicians see both, and the note links back to the request.
#[tokio::test]
async fn request_pages_show_each_role_only_what_it_may_do() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = w.a.id;
    let admin = app.token(w.a.user("admin")).await;
    let note = signed_note(&app, &w, "Pain lower left").await;
    let access = api_access(
        &app,
        &admin,
        p,
        &json!({"patient_id": w.a.patient, "form": "html"}),
    )
    .await;
    let amendment = api_amendment(
        &app,
        &admin,
        p,
        &json!({"patient_id": w.a.patient, "record_kind": "note", "note_id": note,
                "requested_change": "The pain was lower right"}),
    )
    .await;
    let list = format!("/app/practices/{p}/requests");
    let access_page = format!("{list}/access/{access}");
    let amendment_page = format!("{list}/amendment/{amendment}");
    let note_href = format!("/app/practices/{p}/notes/{note}");

    let reception = app.token(w.a.user("reception")).await;
    let home = get_page(
        &http,
        &app,
        &format!("/app/practices/{p}/patients"),
        &reception,
    )
    .await;
    assert!(!home.contains(&list), "reception has no menu entry");
    assert!(!home.contains("Patient requests"));

    for role in ["owner", "admin"] {
        let t = app.token(w.a.user(role)).await;
        let body = get_page(&http, &app, &list, &t).await;
        assert!(body.contains(&format!("href=\"{list}\"")), "{role}: menu");
        assert!(body.contains(&format!("id=\"access-{access}\"")), "{role}");
        assert!(
            body.contains(&format!("id=\"amendment-{amendment}\"")),
            "{role}"
        );
        let body = get_page(&http, &app, &access_page, &t).await;
        assert!(
            body.contains("action=\"") && body.contains("/extend\""),
            "{role}"
        );
        assert!(
            body.contains(&format!("action=\"{access_page}/deny\"")),
            "{role}"
        );
        assert!(!body.contains("/fulfil"), "{role}: no fulfil form");
        assert!(!body.contains("/chart"), "{role}: no chart link");
        let body = get_page(&http, &app, &amendment_page, &t).await;
        assert!(
            body.contains(&format!("action=\"{amendment_page}/extend\"")),
            "{role}"
        );
        assert!(!body.contains("/accept"), "{role}: no accept");
        assert!(!body.contains("/notes/"), "{role}: no note link");
        assert!(body.contains(&note), "{role}: the note is named");
        assert!(body.contains("The pain was lower right"), "{role}");
    }
    let clin = app.token(w.a.user("clinician")).await;
    let body = get_page(&http, &app, &access_page, &clin).await;
    assert!(body.contains(&format!("action=\"{access_page}/fulfil\"")));
    assert!(body.contains(&format!("/patients/{}/chart", w.a.patient)));
    let body = get_page(&http, &app, &amendment_page, &clin).await;
    assert!(body.contains(&format!("href=\"{amendment_page}/accept\"")));
    assert!(body.contains(&format!("href=\"{note_href}\"")));
    let body = get_page(&http, &app, &note_href, &clin).await;
    assert!(
        body.contains(&format!("href=\"{amendment_page}\"")),
        "the note links its request"
    );
}

// req: PR-01, SIG-08 — the list on the injected clock: open requests of both kinds soonest
// due first with their due date and the days left, an overdue one marked (and counted) from
// exactly its deadline, an extended one marked with its new date; answered ones listed apart;
// the same page a day later counts the days on.
#[tokio::test]
async fn the_list_shows_deadlines_overdue_and_extended() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = w.a.id;
    let admin = app.token(w.a.user("admin")).await;
    let now = app
        .clock
        .now()
        .duration_trunc(Duration::seconds(1))
        .unwrap();
    let overdue = api_access(
        &app,
        &admin,
        p,
        &json!({"patient_id": w.a.patient, "form": "paper", "received_at": now - Duration::days(30)}),
    )
    .await;
    let extended = api_amendment(
        &app,
        &admin,
        p,
        &json!({"patient_id": w.a.patient, "record_kind": "demographics",
                "received_at": now - Duration::days(3) + Duration::hours(1), "requested_change": "Middle name"}),
    )
    .await;
    api_post(
        &app,
        &admin,
        &format!("/api/v1/practices/{p}/amendment-requests/{extended}/extend"),
        &json!({"reason": "records off site"}),
    )
    .await;
    let fresh = api_amendment(
        &app,
        &admin,
        p,
        &json!({"patient_id": w.a.patient, "record_kind": "other",
                "received_at": now - Duration::days(10) - Duration::hours(1), "requested_change": "Allergy list"}),
    )
    .await;
    let denied = api_access(
        &app,
        &admin,
        p,
        &json!({"patient_id": w.a.patient, "form": "html"}),
    )
    .await;
    api_post(
        &app,
        &admin,
        &format!("/api/v1/practices/{p}/access-requests/{denied}/deny"),
        &json!({"reason": "not the designated record set"}),
    )
    .await;
    let list = format!("/app/practices/{p}/requests");
    let body = get_page(&http, &app, &list, &admin).await;
    let (open, closed) = body.split_once("id=\"closed-requests\"").unwrap();
    let row = |id: &str| {
        let at = open
            .find(id)
            .unwrap_or_else(|| panic!("{id} in the open list"));
        let rest = &open[at..];
        rest[..rest.find("</tr>").unwrap()].to_owned()
    };
    let o = row(&format!("access-{overdue}"));
    assert!(
        o.contains("<span class=\"status-tag overdue\">overdue (less than a day)</span>"),
        "{o}"
    );
    let f = row(&format!("amendment-{fresh}"));
    assert!(f.contains("49 days left"), "{f}");
    assert!(
        !f.contains("overdue") && !f.contains("extended once"),
        "{f}"
    );
    let e = row(&format!("amendment-{extended}"));
    assert!(
        e.contains("87 days left") && e.contains("extended once"),
        "{e}"
    );
    let due = (now - Duration::days(3) + Duration::hours(1) + Duration::days(90))
        .format("%Y-%m-%d %H:%M UTC")
        .to_string();
    assert!(e.contains(&due), "{e}");
    // Soonest due first.
    let pos = |id: &str| open.find(id).unwrap();
    assert!(pos(&overdue) < pos(&fresh) && pos(&fresh) < pos(&extended));
    assert!(body.contains("1 overdue"));
    assert!(closed.contains(&denied) && !open.contains(&denied));
    assert!(closed.contains("denied"));
    app.clock.advance(Duration::days(1));
    let admin = app.token(w.a.user("admin")).await;
    let body = get_page(&http, &app, &list, &admin).await;
    assert!(body.contains("overdue by 1 day<"), "a day later");
    assert!(body.contains("48 days left") && body.contains("86 days left"));
    // The request's own page shows the same deadline.
    let page = get_page(&http, &app, &format!("{list}/amendment/{extended}"), &admin).await;
    assert!(page.contains(&due) && page.contains("extended once"));
    assert!(page.contains("records off site"), "the extension's reason");
    assert!(!page.contains("/extend\""), "no second extension offered");
}

// req: SIG-07, SIG-08 — an amendment request walked through the pages: a second extension is
// refused (409, RIGHTS-0001) and a denial without a reason (400) with the page saying why and
// nothing changed; denied with its reason, the patient's statement and the practice's
// rebuttal are linked (a second statement → 409), the rebuttal shown with its author; no
// written text reaches the audit log.
#[tokio::test]
async fn an_amendment_request_is_denied_with_disagreement_and_rebuttal_through_the_pages() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = w.a.id;
    let admin = app.token(w.a.user("admin")).await;
    let owner = app.token(w.a.user("owner")).await;
    let note = signed_note(&app, &w, "Sensitivity upper right").await;
    let id = api_amendment(
        &app,
        &admin,
        p,
        &json!({"patient_id": w.a.patient, "record_kind": "note", "note_id": note,
                "requested_change": "canary-change remove the sensitivity entry"}),
    )
    .await;
    let page = format!("/app/practices/{p}/requests/amendment/{id}");
    let res = post_form(
        &http,
        &app,
        &format!("{page}/extend"),
        &admin,
        &[("reason", "canary-ext clinician away")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], format!("{page}?done=extended"));
    let res = post_form(
        &http,
        &app,
        &format!("{page}/extend"),
        &admin,
        &[("reason", "again")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("RIGHTS-0001") && body.contains("Nothing was changed"),
        "{body}"
    );
    let res = post_form(
        &http,
        &app,
        &format!("{page}/deny"),
        &admin,
        &[("reason", "  ")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        api_state(&app, &admin, p, "amendment", &id).await["status"],
        "extended"
    );
    let res = post_form(
        &http,
        &app,
        &format!("{page}/rebuttal"),
        &admin,
        &[("text", "early")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);

    let res = post_form(
        &http,
        &app,
        &format!("{page}/deny"),
        &admin,
        &[("reason", "canary-deny accurate and complete")],
    )
    .await;
    assert_eq!(res.headers()[LOCATION], format!("{page}?done=denied"));
    let body = get_page(&http, &app, &format!("{page}?done=denied"), &admin).await;
    assert!(body.contains("canary-deny accurate and complete"));
    assert!(body.contains(&format!("action=\"{page}/disagreement\"")));
    assert!(
        !body.contains("/rebuttal\""),
        "no rebuttal before the statement"
    );
    assert!(
        !body.contains("/deny\"") && !body.contains("/extend\""),
        "closed"
    );
    let res = post_form(
        &http,
        &app,
        &format!("{page}/disagreement"),
        &admin,
        &[("text", "canary-dis never had it")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = post_form(
        &http,
        &app,
        &format!("{page}/disagreement"),
        &admin,
        &[("text", "again")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let res = post_form(
        &http,
        &app,
        &format!("{page}/rebuttal"),
        &owner,
        &[("text", "canary-reb recorded at two visits")],
    )
    .await;
    assert_eq!(res.headers()[LOCATION], format!("{page}?done=rebuttal"));
    let body = get_page(&http, &app, &page, &admin).await;
    assert!(body.contains("canary-dis never had it"));
    assert!(body.contains("canary-reb recorded at two visits"));
    let by = body.split("id=\"rebuttal-by\"").nth(1).unwrap();
    assert!(by.contains("rebuttal by owner a"), "{by}");
    assert!(
        !body.contains(&format!("action=\"{page}/")),
        "nothing left to do: {body}"
    );
    let v = api_state(&app, &admin, p, "amendment", &id).await;
    assert_eq!(v["status"], "denied");
    assert_eq!(v["rebuttal_by"], w.a.user("owner").to_string());

    let mut su = db.superuser_unsafe().await;
    let details: Vec<String> = sqlx::query_scalar(
        "select coalesce(details::text, '') from audit_event where practice_id = $1",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(
        details.iter().all(|d| !d.contains("canary")),
        "free text in the audit log"
    );
    let by: Option<uuid::Uuid> =
        sqlx::query_scalar("select rebuttal_by from amendment_request where request_id = $1::uuid")
            .bind(&id)
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert_eq!(by, Some(w.a.user("owner").as_uuid()));
}

// req: SIG-07 — accepting from the pages lands the change on the note through the notes' own
// path: past the step-up window the accept form answers the re-authentication form (401)
// carrying the change, nothing signed; a form without a reason is refused (400) with the
// accept page again; with a fresh second factor an amendment lands as a new signed version
// and the request names it; a request for another kind of record is accepted from its page
// without a change; a closed request's accept page is 409.
#[tokio::test]
async fn an_amendment_request_is_accepted_onto_the_note_with_step_up() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = w.a.id;
    let admin = app.token(w.a.user("admin")).await;
    let note = signed_note(&app, &w, "Pain lower left").await;
    let id = api_amendment(
        &app,
        &admin,
        p,
        &json!({"patient_id": w.a.patient, "record_kind": "note", "note_id": note,
                "requested_change": "It was lower right"}),
    )
    .await;
    let page = format!("/app/practices/{p}/requests/amendment/{id}");
    let accept = format!("{page}/accept");
    let clin = app.token(w.a.user("clinician")).await;
    let form = get_page(&http, &app, &accept, &clin).await;
    assert!(form.contains("It was lower right") && form.contains("Pain lower left"));
    let version = form
        .split("name=\"version\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let amend = [
        ("kind", "amendment"),
        ("version", version.as_str()),
        ("subjective", "Pain lower right"),
        ("reason", "Patient's amendment request"),
    ];
    app.clock
        .advance(app.identity.step_up_window + Duration::seconds(1));
    let res = post_form(&http, &app, &accept, &clin, &amend).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body = res.text().await.unwrap();
    assert!(body.contains("action=\"/app/step-up\""), "{body}");
    assert!(
        body.contains(&format!("name=\"then\" value=\"{accept}\"")),
        "{body}"
    );
    assert!(body.contains("name=\"kind\" value=\"amendment\""), "{body}");
    assert_eq!(
        api_state(&app, &admin, p, "amendment", &id).await["status"],
        "open"
    );

    let clin = app.token(w.a.user("clinician")).await;
    let res = post_form(
        &http,
        &app,
        &accept,
        &clin,
        &[
            ("kind", "amendment"),
            ("version", version.as_str()),
            ("subjective", "x"),
            ("reason", ""),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("reason-error"));
    assert_eq!(
        api_state(&app, &admin, p, "amendment", &id).await["status"],
        "open"
    );
    let res = post_form(&http, &app, &accept, &clin, &amend).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], format!("{page}?done=accepted"));
    let v = api_state(&app, &admin, p, "amendment", &id).await;
    assert_eq!(v["status"], "granted");
    assert_eq!(v["landed_kind"], "amendment");
    let body = get_page(&http, &app, &page, &clin).await;
    assert!(
        body.contains(&format!(
            "made as the amendment of version {} of the note",
            v["landed_version"]
        )),
        "{body}"
    );
    let (_, n) = call(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{p}/notes/{note}"),
        Some(&clin),
        None,
    )
    .await;
    assert_eq!(n["content"]["subjective"], "Pain lower right");
    assert_eq!(n["signed_content"]["subjective"], "Pain lower left");
    let res = request(&http, &app, Method::GET, &accept, Some(&clin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);

    // Another kind of record: accepted from its page, without a change or a step-up.
    let other = api_amendment(
        &app,
        &admin,
        p,
        &json!({"patient_id": w.a.patient, "record_kind": "demographics",
                "requested_change": "Middle name missing"}),
    )
    .await;
    let other_page = format!("/app/practices/{p}/requests/amendment/{other}");
    let body = get_page(&http, &app, &other_page, &clin).await;
    assert!(body.contains("name=\"kind\" value=\"none\""));
    app.clock
        .advance(app.identity.step_up_window + Duration::seconds(1));
    let res = post_form(
        &http,
        &app,
        &format!("{other_page}/accept"),
        &clin,
        &[("kind", "none")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let v = api_state(&app, &admin, p, "amendment", &other).await;
    assert_eq!(v["status"], "granted");
    assert!(v["landed_version"].is_null());
}

// req: PR-01, PR-02 — fulfilling from the page produces the copy in the form asked for as a
// download named by the request (a FHIR R4 Bundle of the patient), marks the request
// fulfilled and audits the export; a second fulfil is refused on the page (409).
#[tokio::test]
async fn an_access_request_is_fulfilled_as_a_download() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = w.a.id;
    let admin = app.token(w.a.user("admin")).await;
    let id = api_access(
        &app,
        &admin,
        p,
        &json!({"patient_id": w.a.patient, "form": "fhir_json"}),
    )
    .await;
    let page = format!("/app/practices/{p}/requests/access/{id}");
    let clin = app.token(w.a.user("clinician")).await;
    let res = post_form(&http, &app, &format!("{page}/fulfil"), &clin, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "application/fhir+json");
    assert_eq!(
        res.headers()[CONTENT_DISPOSITION],
        format!("attachment; filename=\"access-request-{id}.json\"").as_str()
    );
    let bundle: Value = res.json().await.unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert!(
        bundle.to_string().contains(&w.a.patient.to_string()),
        "the patient's own record"
    );
    assert!(!bundle.to_string().contains(&w.b.patient.to_string()));
    let v = api_state(&app, &admin, p, "access", &id).await;
    assert_eq!(v["status"], "granted");
    let body = get_page(&http, &app, &page, &admin).await;
    assert!(body.contains("fulfilled"));
    assert!(body.contains("by clinician a"), "{body}");
    let res = post_form(&http, &app, &format!("{page}/fulfil"), &clin, &[]).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().await.unwrap().contains("RIGHTS-0003"));
}
