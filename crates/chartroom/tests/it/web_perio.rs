//! Issue 17, over real HTTP: the perio exam pages (`/app/…/perio`). Every route in the
//! authorization matrix with the API's audit events; cross-site posts refused with nothing
//! changed; refused dictation answered with its reason and nothing changed; a dictation typed
//! through the page charts what the same finals charted through the API do.

use reqwest::header::{COOKIE, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};

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

/// A page request as the browser sends it from Chartroom's own page (`same-origin` on a
/// post), as htmx when `htmx`.
async fn page(
    http: &reqwest::Client,
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    form: &[(&str, &str)],
    htmx: bool,
) -> reqwest::Response {
    let post = method == Method::POST;
    let mut r = http.request(method, app.url(path));
    if let Some(t) = token {
        r = r.header(COOKIE, format!("{}={t}", server::extract::SESSION_COOKIE));
    }
    if post {
        r = r.header("sec-fetch-site", "same-origin").form(form);
    }
    if htmx {
        r = r.header("hx-request", "true");
    }
    r.send().await.unwrap()
}

fn request_id(res: &reqwest::Response) -> uuid::Uuid {
    res.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The practice's audit actions of one request (sorted, deduplicated), each a success.
async fn actions(
    su: &mut sqlx::PgConnection,
    p: domain::PracticeId,
    id: uuid::Uuid,
) -> Vec<String> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select action, outcome from audit_event where practice_id = $1 and request_id = $2",
    )
    .bind(p)
    .bind(id)
    .fetch_all(su)
    .await
    .unwrap();
    let mut a: Vec<String> = rows.into_iter().map(|(a, o)| format!("{a}:{o}")).collect();
    a.sort();
    a.dedup();
    a
}

async fn api(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
    let (status, body) = crate::util::call(app, method, path, Some(token), body.as_ref()).await;
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// A page route of the matrix: method, path, form, whether htmx sends it, the clinician's
/// status and the audit actions of the clinician's request.
type PageRoute<'a> = (
    Method,
    String,
    Vec<(&'a str, &'a str)>,
    bool,
    StatusCode,
    Vec<&'a str>,
);

struct Fx {
    db: TestDb,
    world: World,
    app: TestApp,
    http: reqwest::Client,
    clinician: String,
}

impl Fx {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let world = World::build(&db).await;
        let app = TestApp::start(&db).await;
        let clinician = app.token(world.a.user("clinician")).await;
        Self {
            db,
            world,
            app,
            http: client(),
            clinician,
        }
    }

    fn api_exams(&self) -> String {
        format!(
            "/api/v1/practices/{}/patients/{}/perio-exams",
            self.world.a.id, self.world.a.patient
        )
    }

    fn page_exams(&self) -> String {
        format!(
            "/app/practices/{}/patients/{}/perio",
            self.world.a.id, self.world.a.patient
        )
    }

    async fn create(&self) -> String {
        let v = api(
            &self.app,
            Method::POST,
            &self.api_exams(),
            &self.clinician,
            Some(json!({})),
        )
        .await;
        v["exam_id"].as_str().unwrap().to_owned()
    }

    async fn api_final(&self, exam: &str, text: &str) -> Value {
        api(
            &self.app,
            Method::POST,
            &format!("{}/{exam}/finals", self.api_exams()),
            &self.clinician,
            Some(json!({ "text": text })),
        )
        .await
    }

    async fn get(&self, exam: &str) -> Value {
        api(
            &self.app,
            Method::GET,
            &format!("{}/{exam}", self.api_exams()),
            &self.clinician,
            None,
        )
        .await
    }
}

// issue 17 — every perio page route (exam list, start an exam, the exam page, a typed final,
// confirm, decline, undo): anonymous → the sign-in page, password only → the second factor,
// another practice (or its object) → 404, reception, owner and admin → 403 with the denial
// audited and nothing clinical in the answer, the clinician on the care team → 200 (303 after
// creating) with the API's audit events; off the care team → the break-glass offer (403).
// The chart links the perio exams.
#[tokio::test]
async fn perio_routes_authorization_matrix() {
    let f = Fx::new().await;
    let (a, p, b) = (&f.world.a, f.world.a.id, f.world.b.id);
    let pat = a.patient;
    let reception = f.app.token(a.user("reception")).await;
    let owner = f.app.token(a.user("owner")).await;
    let admin = f.app.token(a.user("admin")).await;
    let other = f.app.token(f.world.b.user("clinician")).await;
    let nobody = f.app.token(f.world.nobody).await;
    let half = f.app.password_only_token(a.user("clinician")).await;
    let exam = f.create().await;
    // A held final to confirm, an applied one to undo.
    let held = f.create().await;
    assert_eq!(
        f.api_final(&held, "three fourteen four").await["outcome"]["status"],
        "needs_confirmation"
    );
    let undone = f.create().await;
    f.api_final(&undone, "three two three").await;
    let base = f.page_exams();
    let cross = |path: &str| path.replacen(&p.to_string(), &b.to_string(), 1);
    let routes: Vec<PageRoute> = vec![
        (
            Method::GET,
            base.clone(),
            vec![],
            false,
            StatusCode::OK,
            vec!["patient.read", "perio_exam.list"],
        ),
        (
            Method::POST,
            base.clone(),
            vec![],
            false,
            StatusCode::SEE_OTHER,
            vec!["perio_exam.create"],
        ),
        (
            Method::GET,
            format!("{base}/{exam}"),
            vec![],
            false,
            StatusCode::OK,
            vec!["patient.read", "perio_exam.list", "perio_exam.read"],
        ),
        (
            Method::POST,
            format!("{base}/{exam}/finals"),
            vec![("text", "tooth three buccal three two four")],
            true,
            StatusCode::OK,
            vec!["perio_exam.update"],
        ),
        (
            Method::POST,
            format!("{base}/{held}/confirm"),
            vec![],
            true,
            StatusCode::OK,
            vec!["perio_exam.update"],
        ),
        (
            Method::POST,
            format!("{base}/{exam}/decline"),
            vec![],
            true,
            StatusCode::OK,
            vec!["perio_exam.update"],
        ),
        (
            Method::POST,
            format!("{base}/{undone}/undo"),
            vec![],
            true,
            StatusCode::OK,
            vec!["perio_exam.update"],
        ),
    ];
    let mut su = f.db.superuser_unsafe().await;
    for (method, path, form, htmx, ok, audit) in &routes {
        let what = format!("{method} {path}");
        let send = |token: Option<String>, path: String| {
            let (http, app, method, form) = (&f.http, &f.app, method.clone(), form.clone());
            async move { page(http, app, method, &path, token.as_deref(), &form, *htmx).await }
        };
        let res = send(None, path.clone()).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "anonymous {what}");
        assert_eq!(res.headers()[LOCATION], "/app/sign-in", "anonymous {what}");
        let res = send(Some(half.clone()), path.clone()).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "password only {what}");
        assert_eq!(res.headers()[LOCATION], "/app/sign-in/second-factor");
        for (who, token) in [("other practice", &other), ("no practice", &nobody)] {
            let res = send(Some(token.clone()), path.clone()).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{who} {what}");
        }
        let res = send(Some(other.clone()), cross(path)).await;
        assert_eq!(
            res.status(),
            StatusCode::NOT_FOUND,
            "B's member, A's exam: {what}"
        );
        for (who, token) in [
            ("reception", &reception),
            ("owner", &owner),
            ("admin", &admin),
        ] {
            let res = send(Some(token.clone()), path.clone()).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{who} {what}");
            let id = request_id(&res);
            let body = res.text().await.unwrap();
            assert!(body.contains("AUTHZ-0001"), "{who} {what}");
            for clinical in ["probing depth", "Dictation", "Bleeding on probing", "Perio"] {
                assert!(!body.contains(clinical), "{who} {what} shows {clinical}");
            }
            assert_eq!(
                actions(&mut su, p, id).await,
                ["access.denied:denied"],
                "{who} {what}"
            );
        }
        let res = send(Some(f.clinician.clone()), path.clone()).await;
        assert_eq!(res.status(), *ok, "clinician {what}");
        let id = request_id(&res);
        let want: Vec<String> = audit.iter().map(|a| format!("{a}:success")).collect();
        assert_eq!(actions(&mut su, p, id).await, want, "clinician {what}");
    }
    // The refused requests changed nothing; the clinician's did, once each.
    assert_eq!(
        f.get(&exam).await["version"],
        2,
        "one final, a decline of nothing"
    );
    assert_eq!(f.get(&held).await["pending"], Value::Null);
    assert_eq!(f.get(&held).await["chart"]["teeth"]["1"]["pd"]["B"], 14);
    assert_eq!(f.get(&undone).await["chart"]["teeth"], json!({}));
    // The exam page reads as the API's GET: `perio_exam.read` on the exam shown.
    let object: Vec<(String, Option<uuid::Uuid>)> = sqlx::query_as(
        "select action, object_id from audit_event where practice_id = $1 and action = 'perio_exam.read' and actor_id = $2",
    )
    .bind(p)
    .bind(a.user("clinician"))
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(
        object
            .iter()
            .any(|(_, o)| o.map(|o| o.to_string()) == Some(exam.clone())),
        "{object:?}"
    );
    // The chart links the perio exams; off the care team the page offers break-glass.
    let chart = page(
        &f.http,
        &f.app,
        Method::GET,
        &format!("/app/practices/{p}/patients/{pat}/chart"),
        Some(&f.clinician),
        &[],
        false,
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(chart.contains(&format!("href=\"{base}\"")), "{chart}");
    let stranger = crate::web_pages::api_patient(&f.app, &reception, p, "Outsidecare").await;
    for path in [
        format!("/app/practices/{p}/patients/{stranger}/perio"),
        format!("/app/practices/{p}/patients/{stranger}/perio/{exam}"),
    ] {
        let res = page(
            &f.http,
            &f.app,
            Method::GET,
            &path,
            Some(&f.clinician),
            &[],
            false,
        )
        .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
        let body = res.text().await.unwrap();
        assert!(body.contains("not on your care team"), "{body}");
        assert!(body.contains("/break-glass"), "{body}");
        assert!(!body.contains("probing depth"), "{body}");
    }
}

// issue 17 — a cross-site post of a final, a confirmation, a decline or an undo is refused
// (403) and changes nothing.
#[tokio::test]
async fn cross_site_perio_posts_change_nothing() {
    let f = Fx::new().await;
    let exam = f.create().await;
    f.api_final(&exam, "three two three").await;
    f.api_final(&exam, "three fourteen four").await;
    let before = f.get(&exam).await;
    let base = format!("{}/{exam}", f.page_exams());
    for action in ["finals", "confirm", "decline", "undo"] {
        for (site, origin) in [
            (Some("cross-site"), None),
            (Some("same-site"), None),
            (None, Some("https://evil.test.example.invalid")),
            (None, None),
        ] {
            let mut r = f
                .http
                .post(f.app.url(&format!("{base}/{action}")))
                .header(
                    COOKIE,
                    format!("{}={}", server::extract::SESSION_COOKIE, f.clinician),
                )
                .header("hx-request", "true")
                .form(&[("text", "tooth five buccal four four four")]);
            if let Some(s) = site {
                r = r.header("sec-fetch-site", s);
            }
            if let Some(o) = origin {
                r = r.header("origin", o);
            }
            let res = r.send().await.unwrap();
            assert_eq!(
                res.status(),
                StatusCode::FORBIDDEN,
                "{action} {site:?} {origin:?}"
            );
            assert!(res.text().await.unwrap().contains("CSRF-0001"));
        }
    }
    assert_eq!(f.get(&exam).await, before, "nothing changed");
}

// issue 17 — refused dictation through the page: a final over 4 KiB (400, `too_long`), a
// final the engine rejects (200 with its reason code and the words it is about), a stale
// version (409), a malformed alternative (400), a confirmation with nothing held (409) —
// each answers the exam with the reason, and nothing changed.
#[tokio::test]
async fn refused_dictation_says_why_and_changes_nothing() {
    let f = Fx::new().await;
    let exam = f.create().await;
    f.api_final(&exam, "tooth three buccal three two four")
        .await;
    let before = f.get(&exam).await;
    let base = format!("{}/{exam}", f.page_exams());
    let long = "three ".repeat(800);
    for (action, form, htmx, status, says) in [
        (
            "finals",
            vec![("text", long.as_str())],
            true,
            StatusCode::BAD_REQUEST,
            "too_long",
        ),
        (
            "finals",
            vec![("text", long.as_str())],
            false,
            StatusCode::BAD_REQUEST,
            "too_long",
        ),
        (
            "finals",
            vec![("text", "your gums are bleeding a little")],
            true,
            StatusCode::OK,
            "Not charted (out_of_vocabulary) at “your”; nothing changed.",
        ),
        (
            "finals",
            vec![("text", "three two three"), ("version", "1")],
            true,
            StatusCode::CONFLICT,
            "the exam is at version 2 now",
        ),
        (
            "finals",
            vec![("text", "three two three"), ("version", "two")],
            false,
            StatusCode::BAD_REQUEST,
            "version: must be a whole number",
        ),
        (
            "confirm",
            vec![("alternative", "x")],
            true,
            StatusCode::BAD_REQUEST,
            "alternative",
        ),
        (
            "confirm",
            vec![],
            true,
            StatusCode::CONFLICT,
            "nothing is waiting for confirmation",
        ),
    ] {
        let res = page(
            &f.http,
            &f.app,
            Method::POST,
            &format!("{base}/{action}"),
            Some(&f.clinician),
            &form,
            htmx,
        )
        .await;
        assert_eq!(res.status(), status, "{action} {says}");
        let body = res.text().await.unwrap();
        assert!(body.contains(says), "{action}: {says} in {body}");
        // The exam as it is: the grid with tooth 3's depths.
        assert!(
            body.contains("data-row=\"pd\" data-tooth=\"3\" data-site=\"MB\""),
            "{body}"
        );
        assert_eq!(
            htmx,
            !body.contains("<html"),
            "{action}: a fragment for htmx only"
        );
    }
    let after = f.get(&exam).await;
    assert_eq!(after["version"], before["version"]);
    assert_eq!(after["chart"], before["chart"]);
}

/// The values of the grid's cells in a page: (row, tooth, site) → text.
fn grid_cells(html: &str) -> std::collections::BTreeMap<(String, u8, String), String> {
    let mut out = std::collections::BTreeMap::new();
    for part in html.split("<td").skip(1) {
        let attr = |name: &str| {
            part.split_once(&format!("{name}=\""))
                .and_then(|(_, r)| r.split_once('"'))
                .map(|(v, _)| v.to_owned())
        };
        let (Some(row), Some(tooth), Some(site)) =
            (attr("data-row"), attr("data-tooth"), attr("data-site"))
        else {
            continue;
        };
        let text = part
            .split_once('>')
            .and_then(|(_, r)| r.split_once("</td>"))
            .map(|(t, _)| t.to_owned())
            .unwrap_or_default();
        out.insert((row, tooth.parse().unwrap(), site), text);
    }
    out
}

// issue 17 — a full-mouth dictation typed through the page (plain form posts and htmx,
// with a held deep pocket confirmed and a final undone) charts exactly what the same finals
// through the API chart: the API's GET of both exams gives the same chart and derived
// values, and the page's grid shows the API's depths, margins, CAL and marks.
#[tokio::test]
async fn typed_dictation_through_the_page_matches_the_api() {
    let f = Fx::new().await;
    let by_page = f.create().await;
    let by_api = f.create().await;
    let base = format!("{}/{by_page}", f.page_exams());
    let mut finals = testkit::perio::full_mouth_finals(7);
    finals.push("tooth 2 buccal five thirteen four".to_owned());
    for (i, text) in finals.iter().enumerate() {
        let res = page(
            &f.http,
            &f.app,
            Method::POST,
            &format!("{base}/finals"),
            Some(&f.clinician),
            &[("text", text)],
            i % 2 == 0,
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "{text}");
        let body = res.text().await.unwrap();
        assert!(!body.contains("Not charted"), "{text}: {body}");
        f.api_final(&by_api, text).await;
    }
    // The deep pocket is held on both; the page shows it and confirms it.
    let body = page(
        &f.http,
        &f.app,
        Method::GET,
        &base,
        Some(&f.clinician),
        &[],
        false,
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(body.contains("Waiting for your confirmation"), "{body}");
    assert!(body.contains("depth 13"), "{body}");
    let res = page(
        &f.http,
        &f.app,
        Method::POST,
        &format!("{base}/confirm"),
        Some(&f.clinician),
        &[("alternative", "0")],
        true,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    api(
        &f.app,
        Method::POST,
        &format!("{}/{by_api}/confirm", f.api_exams()),
        &f.clinician,
        None,
    )
    .await;
    // One more final, undone on both.
    for text in ["tooth 5 buccal nine nine nine"] {
        page(
            &f.http,
            &f.app,
            Method::POST,
            &format!("{base}/finals"),
            Some(&f.clinician),
            &[("text", text)],
            false,
        )
        .await;
        f.api_final(&by_api, text).await;
    }
    let res = page(
        &f.http,
        &f.app,
        Method::POST,
        &format!("{base}/undo"),
        Some(&f.clinician),
        &[],
        false,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    api(
        &f.app,
        Method::POST,
        &format!("{}/{by_api}/undo", f.api_exams()),
        &f.clinician,
        None,
    )
    .await;
    let (pg, ap) = (f.get(&by_page).await, f.get(&by_api).await);
    for key in ["chart", "derived", "cursor", "mode", "pending", "can_undo"] {
        assert_eq!(pg[key], ap[key], "{key}");
    }
    assert_eq!(pg["chart"]["teeth"]["2"]["pd"]["B"], 13);
    // The page's grid shows the API's chart.
    let html = page(
        &f.http,
        &f.app,
        Method::GET,
        &base,
        Some(&f.clinician),
        &[],
        false,
    )
    .await
    .text()
    .await
    .unwrap();
    let cells = grid_cells(&html);
    let teeth = pg["chart"]["teeth"].as_object().unwrap();
    let mut checked = 0;
    for tooth in 1..=32_u8 {
        let rec = teeth.get(&tooth.to_string());
        let status = rec.map_or("present", |r| r["status"].as_str().unwrap());
        for site in ["MB", "B", "DB", "ML", "L", "DL"] {
            let cell = |row: &str| {
                cells
                    .get(&(row.to_owned(), tooth, site.to_owned()))
                    .cloned()
            };
            let want = |m: &str| {
                rec.and_then(|r| r[m][site].as_i64())
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            };
            if status == "missing" {
                assert_eq!(cell("pd").as_deref(), Some(""), "{tooth} {site}");
                continue;
            }
            assert_eq!(cell("pd"), Some(want("pd")), "pd {tooth} {site}");
            assert_eq!(cell("gm"), Some(want("recession")), "gm {tooth} {site}");
            let bleeds =
                rec.is_some_and(|r| r["bleeding"].as_array().unwrap().iter().any(|s| s == site));
            let sup = rec.is_some_and(|r| {
                r["suppuration"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s == site)
            });
            let marks = format!(
                "{}{}",
                if bleeds { "B" } else { "" },
                if sup { "S" } else { "" }
            );
            assert_eq!(cell("marks"), Some(marks), "marks {tooth} {site}");
            let cal = pg["derived"]["teeth"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["tooth"] == tooth)
                .and_then(|t| t["cal"][site].as_i64())
                .map(|v| v.to_string())
                .unwrap_or_default();
            assert_eq!(cell("cal"), Some(cal), "cal {tooth} {site}");
            checked += 1;
        }
    }
    assert_eq!(checked, 28 * 6);
    assert!(html.contains(&format!(
        "<dd id=\"perio-ge4\">{}</dd>",
        pg["derived"]["sites_pd_ge_4"]
    )));
    assert!(html.contains(&format!(
        "<dd id=\"perio-ge6\">{}</dd>",
        pg["derived"]["sites_pd_ge_6"]
    )));
    assert!(html.contains(&format!(
        "<dd id=\"perio-bop\">{:.1} %</dd>",
        pg["derived"]["bop_percent"].as_f64().unwrap()
    )));
    assert_eq!(html.matches("aria-current=\"location\"").count(), 1);
    // A newer exam shows the previous exam's depths (the same chart on both).
    f.app.clock.advance(chrono::Duration::minutes(1));
    let newer = f.create().await;
    let html = page(
        &f.http,
        &f.app,
        Method::GET,
        &format!("{}/{newer}", f.page_exams()),
        Some(&f.clinician),
        &[],
        false,
    )
    .await
    .text()
    .await
    .unwrap();
    let cells = grid_cells(&html);
    assert_eq!(
        cells
            .get(&("prev".to_owned(), 2, "B".to_owned()))
            .map(String::as_str),
        Some("13"),
    );
    assert!(
        [&by_page, &by_api]
            .iter()
            .any(|e| html.contains(&format!("{}/{e}\"", f.page_exams()))),
        "links the previous exam"
    );
}
