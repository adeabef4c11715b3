//! Issue 17, over real HTTP: the web app's pages (`/app`) served beside the API. Every page
//! route in the authorization matrix; cross-site state changes refused with nothing changed;
//! the security headers and CSP on every response; the template lint.

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION};
use reqwest::{Method, StatusCode};
use testkit::{TestApp, TestDb, World};

/// An HTTPS client that does not follow redirects (so a test sees them).
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(
            reqwest::Certificate::from_pem(testkit::test_certificate().0.as_bytes()).unwrap(),
        )
        .build()
        .unwrap()
}

pub(crate) fn cookie(token: &str) -> String {
    format!("{}={token}", server::extract::SESSION_COOKIE)
}

/// A page request as a browser sends it from one of Chartroom's own pages: the session
/// cookie, and `Sec-Fetch-Site: same-origin` on state changes.
pub(crate) fn request(
    http: &reqwest::Client,
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    let changes = method != Method::GET;
    let mut r = http.request(method, app.url(path));
    if let Some(t) = token {
        r = r.header(COOKIE, cookie(t));
    }
    if changes {
        r = r.header("sec-fetch-site", "same-origin");
    }
    r
}

/// A page route for the matrix: method, path, form body, whether it is an htmx fragment;
/// for the right roles (reception, clinician): their own paths when the route consumes its
/// object (a delete), the status they get and the audit actions their request leaves.
struct Route {
    method: Method,
    path: String,
    form: Vec<(&'static str, String)>,
    fragment: bool,
    ok_paths: Option<[String; 2]>,
    ok_status: StatusCode,
    audit: &'static [&'static str],
    /// The same route under practice B with A's object in it (another practice's object).
    cross: Option<String>,
    /// Only owners may (admins get 403, as in the API).
    owner_only: bool,
}

impl Route {
    fn get(path: String, audit: &'static [&'static str]) -> Self {
        Self {
            method: Method::GET,
            path,
            form: Vec::new(),
            fragment: false,
            ok_paths: None,
            ok_status: StatusCode::OK,
            audit,
            cross: None,
            owner_only: false,
        }
    }

    fn post(path: String, form: &[(&'static str, &str)], audit: &'static [&'static str]) -> Self {
        Self {
            method: Method::POST,
            path,
            form: form.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            fragment: false,
            ok_paths: None,
            ok_status: StatusCode::SEE_OTHER,
            audit,
            cross: None,
            owner_only: false,
        }
    }

    fn status(mut self, s: StatusCode) -> Self {
        self.ok_status = s;
        self
    }

    fn fragment(mut self) -> Self {
        self.fragment = true;
        self
    }

    fn cross(mut self, path: String) -> Self {
        self.cross = Some(path);
        self
    }

    fn owner_only(mut self) -> Self {
        self.owner_only = true;
        self
    }

    fn ok_paths(mut self, paths: [String; 2]) -> Self {
        self.ok_paths = Some(paths);
        self
    }
}

async fn send_to(
    http: &reqwest::Client,
    app: &TestApp,
    route: &Route,
    path: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut r = request(http, app, route.method.clone(), path, token);
    if route.method != Method::GET {
        r = r.form(&route.form);
    }
    if route.fragment {
        r = r.header("hx-request", "true");
    }
    r.send().await.unwrap()
}

async fn send(
    http: &reqwest::Client,
    app: &TestApp,
    route: &Route,
    token: Option<&str>,
) -> reqwest::Response {
    send_to(http, app, route, &route.path, token).await
}

/// A patient of practice `p` made through the API (synthetic data); its id.
pub(crate) async fn api_patient(
    app: &TestApp,
    token: &str,
    p: domain::PracticeId,
    family: &str,
) -> String {
    let (status, body) = crate::util::call(
        app,
        Method::POST,
        &format!("/api/v1/practices/{p}/patients"),
        Some(token),
        Some(&serde_json::json!({
            "given_name": "Wren", "family_name": family,
            "date_of_birth": "1984-03-09", "phone": "(555) 010-4477",
            "email": "wren@test.example.invalid"
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["patient_id"].as_str().unwrap().to_owned()
}

/// An appointment of practice `p` made through the API, tomorrow at 09:00 UTC, 30 minutes;
/// its id.
pub(crate) async fn api_appointment(
    app: &TestApp,
    token: &str,
    p: domain::PracticeId,
    patient: &str,
    clinician: domain::UserId,
) -> String {
    use domain::Clock as _;
    let day = app.clock.now().date_naive() + chrono::Duration::days(1);
    let starts = day.and_hms_opt(9, 0, 0).unwrap().and_utc();
    let (status, body) = crate::util::call(
        app,
        Method::POST,
        &format!("/api/v1/practices/{p}/appointments"),
        Some(token),
        Some(&serde_json::json!({
            "patient_id": patient, "clinician_id": clinician,
            "starts_at": starts, "ends_at": starts + chrono::Duration::minutes(30)
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["appointment_id"].as_str().unwrap().to_owned()
}

/// Distinct audit actions of one request in the practice, sorted.
async fn actions(
    su: &mut sqlx::PgConnection,
    practice: domain::PracticeId,
    id: &str,
) -> Vec<String> {
    let mut a: Vec<String> = audit(su, practice, id)
        .await
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

/// What reception must never see on a page: a clinical link, tab, heading or count.
const CLINICAL: [&str; 8] = [
    "/notes", "/perio", "/visits", "/chart", ">Chart<", "Notes", "Perio", "Clinical",
];

// issue 17 — every practice page and fragment (patients list, search, create, edit, delete;
// schedule week and day, book, move, cancel): anonymous → the sign-in page, password only →
// the second factor, another practice (or another practice's object) → 404, wrong role →
// 403 with nothing changed and the denial audited, right role → 200 (or 303 after a change)
// with the API's audit events; reception sees demographics only.
#[tokio::test]
async fn page_routes_authorization_matrix() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let a = &world.a;
    let p = a.id;
    let b = world.b.id;
    let reception = app.token(a.user("reception")).await;
    let clinician = app.token(a.user("clinician")).await;
    let owner = app.token(a.user("owner")).await;
    let admin = app.token(a.user("admin")).await;
    let other = app.token(world.b.user("reception")).await;
    let nobody = app.token(world.nobody).await;
    let half = app.password_only_token(a.user("reception")).await;
    // Objects the routes act on; a delete consumes its patient, so each right role has one.
    let pat = api_patient(&app, &reception, p, "Matrixfield").await;
    let del_r = api_patient(&app, &reception, p, "Deletefirst").await;
    let del_c = api_patient(&app, &reception, p, "Deletesecond").await;
    let appt = api_appointment(&app, &reception, p, &pat, a.user("clinician")).await;
    let c = a.user("clinician");
    let patient_form: &[(&str, &str)] = &[
        ("given_name", "Wren"),
        ("family_name", "Matrixfield"),
        ("date_of_birth", "1984-03-09"),
        ("phone", "(555) 010-4477"),
        ("email", "wren@test.example.invalid"),
    ];
    let day = {
        use domain::Clock as _;
        (app.clock.now().date_naive() + chrono::Duration::days(2)).to_string()
    };
    let c_s = c.to_string();
    let booking: Vec<(&str, &str)> = vec![
        ("patient_id", pat.as_str()),
        ("clinician", c_s.as_str()),
        ("date", day.as_str()),
        ("start", "10:30"),
        ("minutes", "45"),
    ];
    let moving: Vec<(&str, &str)> = booking[1..].to_vec();
    let routes = [
        Route::get(format!("/app/practices/{p}/patients"), &["patient.list"]),
        Route::post(
            format!("/app/practices/{p}/patients/search"),
            &[("q", "zz")],
            &["patient.list"],
        )
        .status(StatusCode::OK),
        Route::post(
            format!("/app/practices/{p}/patients/search/rows"),
            &[("q", "zz")],
            &["patient.list"],
        )
        .status(StatusCode::OK)
        .fragment(),
        Route::get(format!("/app/practices/{p}/patients/new"), &[]),
        Route::post(
            format!("/app/practices/{p}/patients"),
            patient_form,
            &["patient.create"],
        ),
        Route::get(
            format!("/app/practices/{p}/patients/{pat}"),
            &["patient.read"],
        )
        .cross(format!("/app/practices/{b}/patients/{pat}")),
        Route::post(
            format!("/app/practices/{p}/patients/{pat}"),
            patient_form,
            &["patient.update"],
        )
        .cross(format!("/app/practices/{b}/patients/{pat}")),
        Route::get(
            format!("/app/practices/{p}/patients/{pat}/delete"),
            &["patient.read"],
        )
        .cross(format!("/app/practices/{b}/patients/{pat}/delete")),
        Route::post(
            format!("/app/practices/{p}/patients/{del_r}/delete"),
            &[],
            &["patient.delete"],
        )
        .ok_paths([
            format!("/app/practices/{p}/patients/{del_r}/delete"),
            format!("/app/practices/{p}/patients/{del_c}/delete"),
        ])
        .cross(format!("/app/practices/{b}/patients/{pat}/delete")),
        Route::get(
            format!("/app/practices/{p}/schedule"),
            &["appointment.list", "membership.list"],
        ),
        Route::get(
            format!("/app/practices/{p}/schedule/day?clinician={c}&date={day}"),
            &["appointment.list", "membership.list"],
        ),
        Route::get(
            format!("/app/practices/{p}/appointments/new?clinician={c}&date={day}&patient={pat}"),
            &["membership.list", "patient.read"],
        ),
        Route::post(
            format!("/app/practices/{p}/appointments/new"),
            &[
                ("dob", "1984-03-09"),
                ("clinician", c_s.as_str()),
                ("date", day.as_str()),
            ],
            &["membership.list", "patient.list"],
        )
        .status(StatusCode::OK),
        Route::post(
            format!("/app/practices/{p}/appointments"),
            &booking,
            &["appointment.create"],
        ),
        Route::get(
            format!("/app/practices/{p}/appointments/{appt}/move"),
            &["appointment.read", "membership.list"],
        )
        .cross(format!("/app/practices/{b}/appointments/{appt}/move")),
        Route::post(
            format!("/app/practices/{p}/appointments/{appt}/move"),
            &moving,
            &["appointment.update"],
        )
        .cross(format!("/app/practices/{b}/appointments/{appt}/move")),
        Route::get(
            format!("/app/practices/{p}/appointments/{appt}/cancel"),
            &["appointment.read"],
        )
        .cross(format!("/app/practices/{b}/appointments/{appt}/cancel")),
        Route::post(
            format!("/app/practices/{p}/appointments/{appt}/cancel"),
            &[],
            &["appointment.update"],
        )
        .cross(format!("/app/practices/{b}/appointments/{appt}/cancel")),
    ];
    let mut su = db.superuser_unsafe().await;
    for route in &routes {
        let what = format!("{} {}", route.method, route.path);
        let res = send(&http, &app, route, None).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "anonymous {what}");
        assert_eq!(res.headers()[LOCATION], "/app/sign-in", "anonymous {what}");
        let res = send(&http, &app, route, Some(&half)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "password only {what}");
        assert_eq!(res.headers()[LOCATION], "/app/sign-in/second-factor");
        for (who, token) in [("other practice", &other), ("no practice", &nobody)] {
            let res = send(&http, &app, route, Some(token)).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{who} {what}");
            let body = res.text().await.unwrap();
            assert!(body.contains("NOT-FOUND"), "{who} {what}: {body}");
        }
        if let Some(cross) = &route.cross {
            // B's own member, in B's own practice, naming A's object: unknown there.
            let res = send_to(&http, &app, route, cross, Some(&other)).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "B's member: {cross}");
        }
        for (who, token) in [("owner", &owner), ("admin", &admin)] {
            let res = send(&http, &app, route, Some(token)).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{who} {what}");
            // The denial is on the practice's audit trail, as through the API (req AUD-01).
            let id = request_id(&res);
            assert!(res.text().await.unwrap().contains("AUTHZ-0001"));
            assert_eq!(
                audit(&mut su, p, &id).await,
                [("access.denied".to_owned(), "denied".to_owned())],
                "{who} {what}"
            );
        }
        for (i, (who, token)) in [("reception", &reception), ("clinician", &clinician)]
            .into_iter()
            .enumerate()
        {
            let path = route
                .ok_paths
                .as_ref()
                .map_or(route.path.as_str(), |paths| paths[i].as_str());
            let res = send_to(&http, &app, route, path, Some(token)).await;
            assert_eq!(res.status(), route.ok_status, "{who} {what}");
            let id = request_id(&res);
            assert_eq!(
                actions(&mut su, p, &id).await,
                route.audit,
                "{who} {what}: the API's audit events"
            );
            let body = res.text().await.unwrap();
            // Reception sees nothing clinical; a clinician's pages may link the chart.
            if who == "reception" {
                for clinical in CLINICAL {
                    assert!(!body.contains(clinical), "{who} {what} shows {clinical}");
                }
            }
        }
    }
    // The full page names the practice and the user, and lists the practice's patient.
    let page = request(&http, &app, Method::GET, &routes[0].path, Some(&reception))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Practice a"), "{page}");
    assert!(page.contains("reception a"), "{page}");
    assert!(page.contains("/app/sign-out"));
    assert!(page.contains("/app/practices/"));
    // A fragment route without HX-Request is refused before anything is read.
    let res = request(&http, &app, Method::POST, &routes[2].path, Some(&reception))
        .form(&[("q", "zz")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // The home page: anonymous → sign-in; signed in → the practice with the entries the role
    // opens (patients and schedule for reception; none yet for an owner).
    let res = request(&http, &app, Method::GET, "/app", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/app/sign-in");
    let home = request(&http, &app, Method::GET, "/app", Some(&reception))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains(&format!("/app/practices/{p}/patients")));
    assert!(home.contains(&format!("/app/practices/{p}/schedule")));
    let home = request(&http, &app, Method::GET, "/app", Some(&owner))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!home.contains("/patients"));
    assert!(!home.contains("/schedule"));
}

pub(crate) fn request_id(res: &reqwest::Response) -> String {
    res.headers()["x-request-id"].to_str().unwrap().to_owned()
}

/// (action, outcome) of the practice's audit events of one request.
async fn audit(
    su: &mut sqlx::PgConnection,
    practice: domain::PracticeId,
    request_id: &str,
) -> Vec<(String, String)> {
    sqlx::query_as(
        "select action, outcome from audit_event where practice_id = $1 and request_id = $2",
    )
    .bind(practice)
    .bind(uuid::Uuid::parse_str(request_id).unwrap())
    .fetch_all(su)
    .await
    .unwrap()
}

// req: WEB-02
// issue 17 — a cross-site POST is refused with 403 and changes nothing: sign-out leaves the
// session working; a sign-in sets no cookie and opens no session.
#[tokio::test]
async fn cross_site_state_changes_are_refused() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let user = world.a.user("reception");
    let token = app.token(user).await;
    let email = crate::util::email_of(&db, user).await;
    let mut su = db.superuser_unsafe().await;
    let before = sessions_of(&mut su, user).await;
    for (site, origin) in [
        (Some("cross-site"), None),
        (Some("same-site"), None),
        (Some("cross-site"), Some(app.base.as_str())),
        (None, Some("https://evil.test.example.invalid")),
        (None, None),
    ] {
        let mut sign_out = http
            .post(app.url("/app/sign-out"))
            .header(COOKIE, cookie(&token));
        let mut sign_in = http
            .post(app.url("/app/sign-in"))
            .form(&[("email", email.as_str()), ("password", testkit::PASSWORD)]);
        if let Some(s) = site {
            sign_out = sign_out.header("sec-fetch-site", s);
            sign_in = sign_in.header("sec-fetch-site", s);
        }
        if let Some(o) = origin {
            sign_out = sign_out.header("origin", o);
            sign_in = sign_in.header("origin", o);
        }
        let res = sign_out.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{site:?} {origin:?}");
        assert!(res.headers().get("set-cookie").is_none());
        assert!(res.text().await.unwrap().contains("CSRF-0001"));
        let res = sign_in.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{site:?} {origin:?}");
        assert!(res.headers().get("set-cookie").is_none());
    }
    // Nothing changed: the session still opens the app, and no session was added.
    let res = request(&http, &app, Method::GET, "/app", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(sessions_of(&mut su, user).await, before);
    // The same sign-out from Chartroom's own page (by Origin alone, too) works.
    let res = http
        .post(app.url("/app/sign-out"))
        .header(COOKIE, cookie(&token))
        .header("origin", app.base.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = request(&http, &app, Method::GET, "/app", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "signed out");
}

async fn sessions_of(su: &mut sqlx::PgConnection, user: domain::UserId) -> i64 {
    sqlx::query_scalar("select count(*) from session where user_id = $1")
        .bind(user)
        .fetch_one(su)
        .await
        .unwrap()
}

// issue 17 — the sign-in form: the API's one generic failure, and success goes on to the
// second factor with the `__Host-` session cookie.
#[tokio::test]
async fn sign_in_page_answers_like_the_api() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let email = crate::util::email_of(&db, world.a.user("clinician")).await;
    let res = request(&http, &app, Method::POST, "/app/sign-in", None)
        .form(&[
            ("email", email.as_str()),
            ("password", "wrong password here"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get("set-cookie").is_none());
    let wrong = res.text().await.unwrap();
    let res = request(&http, &app, Method::POST, "/app/sign-in", None)
        .form(&[
            ("email", "nobody-here@test.example.invalid"),
            ("password", "wrong password here"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let unknown = res.text().await.unwrap();
    assert!(wrong.contains("the email or password is incorrect"));
    assert_eq!(wrong, unknown, "no enumeration");
    let res = request(&http, &app, Method::POST, "/app/sign-in", None)
        .form(&[("email", email.as_str()), ("password", testkit::PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/app/sign-in/enroll");
    let set = res.headers()["set-cookie"].to_str().unwrap();
    assert!(set.starts_with("__Host-chartroom_session="), "{set}");
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Domain"));
}

/// The security headers every web response carries.
fn assert_security_headers(res: &reqwest::Response, what: &str) {
    let h = res.headers();
    assert_eq!(
        h["content-security-policy"],
        web::CONTENT_SECURITY_POLICY,
        "{what}"
    );
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert!(
        h["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age="),
        "{what}"
    );
    assert!(h.contains_key("x-request-id"), "{what}");
    assert_eq!(h["cross-origin-opener-policy"], "same-origin", "{what}");
}

// issue 17 — the CSP and security headers on every page response (pages, redirects, error
// pages, assets); pages are no-store, hashed assets immutable; scripts carry SRI; an error
// page shows the request id.
#[tokio::test]
async fn every_page_response_carries_the_security_headers() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let reception = app.token(world.a.user("reception")).await;
    let owner = app.token(world.a.user("owner")).await;
    let patients = format!("/app/practices/{p}/patients");
    let pat = world.a.patient;
    let appt = api_appointment(
        &app,
        &reception,
        p,
        &pat.to_string(),
        world.a.user("clinician"),
    )
    .await;
    let pages = [
        format!("/app/practices/{p}/patients/new"),
        format!("/app/practices/{p}/patients/{pat}"),
        format!("/app/practices/{p}/patients/{pat}/delete"),
        format!("/app/practices/{p}/schedule"),
        format!("/app/practices/{p}/schedule/day"),
        format!("/app/practices/{p}/appointments/new"),
        format!("/app/practices/{p}/appointments/{appt}/move"),
        format!("/app/practices/{p}/appointments/{appt}/cancel"),
    ];
    let unknown_patient = format!("/app/practices/{p}/patients/{}", uuid::Uuid::new_v4());
    let malformed_patient = format!("/app/practices/{p}/patients/not-an-id/delete");
    let mut cases: Vec<(&str, Option<&str>, StatusCode)> = vec![
        ("/app/sign-in", None, StatusCode::OK),
        ("/app", None, StatusCode::SEE_OTHER),
        ("/app", Some(&reception), StatusCode::OK),
        (&patients, Some(&reception), StatusCode::OK),
        (&unknown_patient, Some(&reception), StatusCode::NOT_FOUND),
        (&malformed_patient, Some(&reception), StatusCode::NOT_FOUND),
        (&patients, Some(&owner), StatusCode::FORBIDDEN),
        (&patients, None, StatusCode::SEE_OTHER),
        ("/app/no-such-page", None, StatusCode::NOT_FOUND),
        (
            "/app/practices/not-a-uuid/patients",
            Some(&reception),
            StatusCode::NOT_FOUND,
        ),
        (
            "/app/static/app.0000000000000000.css",
            None,
            StatusCode::NOT_FOUND,
        ),
        ("/", None, StatusCode::SEE_OTHER),
    ];
    for page in &pages {
        cases.push((page.as_str(), Some(&reception), StatusCode::OK));
        cases.push((page.as_str(), Some(&owner), StatusCode::FORBIDDEN));
        cases.push((page.as_str(), None, StatusCode::SEE_OTHER));
    }
    for (path, token, status) in cases {
        let res = request(&http, &app, Method::GET, path, token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{path}");
        assert_security_headers(&res, path);
        assert_eq!(res.headers()[CACHE_CONTROL], "no-store", "{path}");
        if res.status().is_client_error() {
            let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
            assert!(
                res.headers()[CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html"),
                "{path}"
            );
            let body = res.text().await.unwrap();
            assert!(
                body.contains(&id),
                "{path}: the error page shows the request id"
            );
        } else if status == StatusCode::OK {
            let body = res.text().await.unwrap();
            assert_page_is_clean(&body, path);
            // Every asset the page links is served, immutable, with the same headers.
            for url in asset_urls(&body) {
                let res = http.get(app.url(&url)).send().await.unwrap();
                assert_eq!(res.status(), StatusCode::OK, "{url}");
                assert_security_headers(&res, &url);
                assert_eq!(
                    res.headers()[CACHE_CONTROL],
                    "public, max-age=31536000, immutable",
                    "{url}"
                );
            }
        }
    }
    // A cross-site refusal and a method the route does not take are pages with the headers.
    let res = http
        .post(app.url("/app/sign-out"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_security_headers(&res, "cross-site");
    let res = request(&http, &app, Method::DELETE, "/app/sign-in", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_security_headers(&res, "405");
    // The API keeps its own headers and JSON errors beside the pages.
    let res = http.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

/// The hashed asset URLs a page links.
fn asset_urls(body: &str) -> Vec<String> {
    body.split(['"', '\''])
        .filter(|s| s.starts_with(web::ASSET_PREFIX))
        .map(str::to_owned)
        .collect()
}

/// A rendered page has no inline script or style, no handler attributes, and every script
/// is from this origin with SRI.
fn assert_page_is_clean(body: &str, what: &str) {
    assert!(!body.contains(" style="), "{what}");
    assert!(!body.contains("<style"), "{what}");
    assert!(!body.contains("hx-on"), "{what}");
    for tag in body.split("<script").skip(1) {
        let open = tag.split('>').next().unwrap();
        assert!(open.contains(" src=\"/app/static/"), "{what}: {open}");
        assert!(open.contains(" integrity=\"sha384-"), "{what}: {open}");
        assert!(
            tag.split('>').nth(1).unwrap().starts_with("</script"),
            "{what}"
        );
    }
    assert!(body.contains("\"allowEval\":false"));
    assert!(body.contains("\"allowScriptTags\":false"));
    assert!(body.contains("\"includeIndicatorStyles\":false"));
    assert!(body.contains("\"historyCacheSize\":0"));
}

// issue 17 — the report endpoint takes both report formats, refuses junk and big bodies.
#[tokio::test]
async fn csp_reports_are_accepted_and_bounded() {
    let db = TestDb::new().await;
    let app = TestApp::start(&db).await;
    let http = client();
    let res = http
        .post(app.url(web::CSP_REPORT_PATH))
        .header(CONTENT_TYPE, "application/csp-report")
        .header("sec-fetch-site", "same-origin")
        .body(r#"{"csp-report":{"effective-directive":"style-src-attr","blocked-uri":"inline"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = http
        .post(app.url(web::CSP_REPORT_PATH))
        .header(CONTENT_TYPE, "application/reports+json")
        .body(r#"[{"type":"csp-violation","body":{"effectiveDirective":"script-src-elem","blockedURL":"https://x.test/a.js"}}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = http
        .post(app.url(web::CSP_REPORT_PATH))
        .body("not a report")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let big = format!(
        r#"{{"csp-report":{{"blocked-uri":"{}"}}}}"#,
        "a".repeat(web::CSP_REPORT_MAX_BYTES)
    );
    let res = http
        .post(app.url(web::CSP_REPORT_PATH))
        .header(CONTENT_TYPE, "application/csp-report")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

// issue 17 — the template lint: no inline script, no style attribute or element, no `on…=`
// handler attribute, no `hx-on` in any template.
#[test]
fn templates_have_no_inline_script_style_or_handlers() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/templates");
    let mut files = Vec::new();
    crate::util::source_files(&dir, &["html"], &mut files);
    assert!(files.len() >= 5, "templates found in {}", dir.display());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lower = text.to_ascii_lowercase();
        let name = f.display();
        assert!(!lower.contains("hx-on"), "{name}: hx-on");
        assert!(!lower.contains("style="), "{name}: style attribute");
        assert!(!lower.contains("<style"), "{name}: style element");
        assert!(!lower.contains("javascript:"), "{name}: javascript: URL");
        for tag in lower.split("<script").skip(1) {
            let (open, rest) = tag.split_once('>').unwrap();
            assert!(open.contains(" src="), "{name}: inline script");
            assert!(open.contains(" integrity="), "{name}: script without SRI");
            assert!(rest.starts_with("</script"), "{name}: script body");
        }
        // ` on…=` handler attributes, in any spacing.
        let bytes = lower.as_bytes();
        for (i, w) in bytes.windows(3).enumerate() {
            if w[0].is_ascii_whitespace() && &w[1..] == b"on" {
                let attr: String = lower[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                let after = lower[i + 1 + attr.len()..].trim_start();
                assert!(
                    !(attr.len() > 2 && after.starts_with('=')),
                    "{name}: handler attribute {attr}"
                );
            }
        }
    }
}

/// A form post from one of Chartroom's own pages, as `token`.
pub(crate) async fn post_form(
    http: &reqwest::Client,
    app: &TestApp,
    path: &str,
    token: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    request(http, app, Method::POST, path, Some(token))
        .form(form)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn get_page(
    http: &reqwest::Client,
    app: &TestApp,
    path: &str,
    token: &str,
) -> String {
    let res = request(http, app, Method::GET, path, Some(token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.text().await.unwrap()
}

/// The appointment as the API reads it (its JSON view).
async fn appointment_state(
    app: &TestApp,
    token: &str,
    p: domain::PracticeId,
    appt: &str,
) -> serde_json::Value {
    let (status, body) = crate::util::call(
        app,
        Method::GET,
        &format!("/api/v1/practices/{p}/appointments/{appt}"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The patient as the API reads it: status and JSON view.
async fn patient_state(
    app: &TestApp,
    token: &str,
    p: domain::PracticeId,
    id: &str,
) -> (StatusCode, serde_json::Value) {
    crate::util::call(
        app,
        Method::GET,
        &format!("/api/v1/practices/{p}/patients/{id}"),
        Some(token),
        None,
    )
    .await
}

async fn count(su: &mut sqlx::PgConnection, table: &str, p: domain::PracticeId) -> i64 {
    sqlx::query_scalar(&format!(
        "select count(*) from {table} where practice_id = $1"
    ))
    .bind(p)
    .fetch_one(su)
    .await
    .unwrap()
}

// issue 17 — a cross-site POST to each new form (create, edit and delete a patient; book,
// find, move and cancel an appointment) is refused with 403 before any handler runs, and
// nothing changed.
#[tokio::test]
async fn cross_site_posts_on_patient_and_schedule_forms_change_nothing() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let token = app.token(world.a.user("reception")).await;
    let c = world.a.user("clinician").to_string();
    let pat = api_patient(&app, &token, p, "Crosswind").await;
    let appt = api_appointment(&app, &token, p, &pat, world.a.user("clinician")).await;
    let mut su = db.superuser_unsafe().await;
    let patients = count(&mut su, "patient", p).await;
    let appointments = count(&mut su, "appointment", p).await;
    let events = count(&mut su, "audit_event", p).await;
    let before_patient = patient_state(&app, &token, p, &pat).await;
    let before_appt = appointment_state(&app, &token, p, &appt).await;
    let booking: &[(&str, &str)] = &[
        ("patient_id", pat.as_str()),
        ("clinician", c.as_str()),
        ("date", "2030-01-07"),
        ("start", "08:00"),
        ("minutes", "30"),
        ("given_name", "Mallory"),
        ("family_name", "Forged"),
    ];
    let posts = [
        format!("/app/practices/{p}/patients"),
        format!("/app/practices/{p}/patients/{pat}"),
        format!("/app/practices/{p}/patients/{pat}/delete"),
        format!("/app/practices/{p}/appointments"),
        format!("/app/practices/{p}/appointments/new"),
        format!("/app/practices/{p}/appointments/{appt}/move"),
        format!("/app/practices/{p}/appointments/{appt}/cancel"),
    ];
    let events = events + 2; // the two API reads above
    for path in &posts {
        for (site, origin) in [
            (Some("cross-site"), None),
            (Some("same-site"), None),
            (None, Some("https://evil.test.example.invalid")),
            (None, None),
        ] {
            let mut r = http
                .post(app.url(path))
                .header(COOKIE, cookie(&token))
                .form(booking);
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
                "{path} {site:?} {origin:?}"
            );
            assert_security_headers(&res, path);
            assert!(res.text().await.unwrap().contains("CSRF-0001"));
        }
    }
    assert_eq!(count(&mut su, "patient", p).await, patients);
    assert_eq!(count(&mut su, "appointment", p).await, appointments);
    assert_eq!(
        count(&mut su, "audit_event", p).await,
        events,
        "no handler ran"
    );
    assert_eq!(patient_state(&app, &token, p, &pat).await, before_patient);
    assert_eq!(appointment_state(&app, &token, p, &appt).await, before_appt);
}

// issue 17 — patients through the pages: create, edit (an emptied field is cleared), search
// by name prefix, date of birth and phone through the blind indexes, soft delete after a
// confirmation page; refused input answers 400 with each message next to its field
// (aria-describedby) and changes nothing.
#[tokio::test]
async fn patients_are_created_edited_searched_and_deleted_through_the_pages() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let token = app.token(world.a.user("reception")).await;
    let mut su = db.superuser_unsafe().await;
    let base = format!("/app/practices/{p}/patients");

    // Refused: no given name, a date of birth in the future, a malformed email.
    let before = count(&mut su, "patient", p).await;
    let res = post_form(
        &http,
        &app,
        &base,
        &token,
        &[
            ("given_name", "  "),
            ("family_name", "Quillfeather"),
            ("date_of_birth", "2999-01-01"),
            ("phone", "555 010 9911"),
            ("email", "not-an-email"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body = res.text().await.unwrap();
    for field in ["given_name", "date_of_birth", "email"] {
        assert!(
            body.contains(&format!("aria-describedby=\"{field}-error\"")),
            "{field}: {body}"
        );
        assert!(body.contains(&format!("id=\"{field}-error\"")), "{field}");
    }
    assert!(body.contains("Given name: must not be empty."), "{body}");
    assert!(body.contains("Date of birth: must be between 1900-01-01 and today."));
    assert!(!body.contains("aria-describedby=\"family_name-error\""));
    assert!(
        body.contains("value=\"Quillfeather\""),
        "what was typed stays"
    );
    assert_eq!(
        count(&mut su, "patient", p).await,
        before,
        "nothing created"
    );

    // Created: 303 to the patient's page, which shows what was saved.
    let res = post_form(
        &http,
        &app,
        &base,
        &token,
        &[
            ("given_name", "Ottilie"),
            ("family_name", "Quillfeather"),
            ("date_of_birth", "1979-11-23"),
            ("phone", "(555) 010-9911"),
            ("email", "Ottilie@Test.Example.Invalid"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{base}/")), "{location}");
    assert!(location.ends_with("?done=created"), "{location}");
    let id = location
        .trim_start_matches(&format!("{base}/"))
        .trim_end_matches("?done=created")
        .to_owned();
    assert!(!location.contains("Quillfeather"), "no PHI in URLs");
    let page = get_page(&http, &app, &location, &token).await;
    assert!(page.contains("Patient created."));
    assert!(page.contains("value=\"Ottilie\""));
    assert!(page.contains("value=\"1979-11-23\""));
    assert!(
        page.contains("value=\"ottilie@test.example.invalid\""),
        "normalized as the API does"
    );

    // Search: by date of birth, by phone in another format, by name prefix, and all three.
    for form in [
        vec![("dob", "1979-11-23")],
        vec![("phone", "555.010.9911")],
        vec![("q", "quill")],
        vec![("q", "Ott"), ("dob", "1979-11-23"), ("phone", "5550109911")],
    ] {
        let res = post_form(&http, &app, &format!("{base}/search"), &token, &form).await;
        assert_eq!(res.status(), StatusCode::OK, "{form:?}");
        let body = res.text().await.unwrap();
        assert!(body.contains("Quillfeather, Ottilie"), "{form:?}");
        assert!(
            body.contains(&format!("{base}/{id}")),
            "{form:?}: a link to the patient"
        );
        let rows = request(
            &http,
            &app,
            Method::POST,
            &format!("{base}/search/rows"),
            Some(&token),
        )
        .header("hx-request", "true")
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        assert!(rows.contains("Quillfeather, Ottilie"), "{form:?}: {rows}");
        assert!(!rows.contains("<html"), "a fragment");
    }
    for (form, message) in [
        (vec![("dob", "1979-11-24")], "No patient matches."),
        (
            vec![("q", "quill"), ("dob", "1980-11-23")],
            "No patient matches.",
        ),
    ] {
        let res = post_form(&http, &app, &format!("{base}/search"), &token, &form).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.text().await.unwrap();
        assert!(!body.contains("Quillfeather"), "{form:?}");
        assert!(body.contains(message), "{form:?}");
    }
    for (form, message, field) in [
        (
            vec![],
            "Give a name, a date of birth or a phone number.",
            None,
        ),
        (
            vec![("phone", "12")],
            "Phone: must be 5 to 32 characters.",
            Some("phone"),
        ),
        (
            vec![("phone", "000 0000 0")],
            "Phone: not a valid phone number.",
            Some("phone"),
        ),
        (
            vec![("dob", "23/11/1979")],
            "Date of birth: enter a full date (YYYY-MM-DD).",
            Some("dob"),
        ),
        (
            vec![("q", "q")],
            "Type at least two letters of a name.",
            Some("q"),
        ),
    ] {
        let res = post_form(&http, &app, &format!("{base}/search"), &token, &form).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{form:?}");
        let body = res.text().await.unwrap();
        assert!(body.contains(message), "{form:?}: {body}");
        if let Some(f) = field {
            assert!(
                body.contains(&format!("aria-describedby=\"{f}-error\"")),
                "{form:?}"
            );
        }
    }

    // Edit: refused input changes nothing; accepted input saves, an emptied phone is cleared.
    let patient = format!("{base}/{id}");
    let before = patient_state(&app, &token, p, &id).await;
    let res = post_form(
        &http,
        &app,
        &patient,
        &token,
        &[
            ("given_name", "Ottilie"),
            ("family_name", "Quillfeather"),
            ("date_of_birth", "1979-13-40"),
            ("phone", "call me"),
            ("email", ""),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body = res.text().await.unwrap();
    assert!(body.contains("aria-describedby=\"date_of_birth-error\""));
    assert!(body.contains("aria-describedby=\"phone-error\""));
    assert!(body.contains("Phone: may contain only digits"), "{body}");
    assert_eq!(
        patient_state(&app, &token, p, &id).await,
        before,
        "nothing changed"
    );
    let res = post_form(
        &http,
        &app,
        &patient,
        &token,
        &[
            ("given_name", "Ottilie"),
            ("family_name", "Quillfeather-Vane"),
            ("date_of_birth", "1979-11-23"),
            ("phone", ""),
            ("email", "ottilie@test.example.invalid"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()[LOCATION],
        format!("{patient}?done=saved").as_str()
    );
    let (_, now) = patient_state(&app, &token, p, &id).await;
    assert_eq!(now["family_name"], "Quillfeather-Vane");
    assert!(now["phone"].is_null(), "{now}");
    // The phone index went with the phone.
    let res = post_form(
        &http,
        &app,
        &format!("{base}/search"),
        &token,
        &[("phone", "555 010 9911")],
    )
    .await;
    assert!(!res.text().await.unwrap().contains("Quillfeather"));

    // Delete: a confirmation page, then the soft delete; reads answer 410, search leaves
    // the patient out.
    let confirm = get_page(&http, &app, &format!("{patient}/delete"), &token).await;
    assert!(
        confirm.contains("Delete Ottilie Quillfeather-Vane?"),
        "{confirm}"
    );
    assert!(confirm.contains(&format!("action=\"{patient}/delete\"")));
    assert_eq!(
        patient_state(&app, &token, p, &id).await.0,
        StatusCode::OK,
        "a GET deletes nothing"
    );
    let res = post_form(&http, &app, &format!("{patient}/delete"), &token, &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()[LOCATION],
        format!("{base}?done=deleted").as_str()
    );
    assert!(
        get_page(&http, &app, &format!("{base}?done=deleted"), &token)
            .await
            .contains("Patient deleted.")
    );
    assert_eq!(
        patient_state(&app, &token, p, &id).await.0,
        StatusCode::GONE
    );
    let res = request(&http, &app, Method::GET, &patient, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::GONE);
    let res = post_form(&http, &app, &format!("{patient}/delete"), &token, &[]).await;
    assert_eq!(res.status(), StatusCode::GONE, "deleted once");
    let res = post_form(
        &http,
        &app,
        &format!("{base}/search"),
        &token,
        &[("dob", "1979-11-23")],
    )
    .await;
    assert!(!res.text().await.unwrap().contains("Quillfeather"));
}

// issue 17 — the schedule through the pages: the week and day views of one clinician, book
// (finding the patient by date of birth), move and cancel; refused input answers 400 with
// its messages and books or moves nothing.
#[tokio::test]
async fn appointments_are_booked_moved_and_cancelled_through_the_pages() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let c = world.a.user("clinician");
    let token = app.token(world.a.user("reception")).await;
    let pat = api_patient(&app, &token, p, "Larkspur").await;
    let mut su = db.superuser_unsafe().await;
    let c_s = c.to_string();
    let monday = chrono::NaiveDate::from_ymd_opt(2031, 3, 3).unwrap();
    let wednesday = "2031-03-05";

    // The week view: seven days from Monday, each with its booking link.
    let week = get_page(
        &http,
        &app,
        &format!("/app/practices/{p}/schedule?clinician={c}&date={wednesday}"),
        &token,
    )
    .await;
    assert!(
        week.contains("Week of Mon 3 Mar 2031 · clinician a"),
        "{week}"
    );
    for d in 0..7 {
        let day = monday + chrono::Duration::days(d);
        assert!(
            week.contains(&format!(
                "/app/practices/{p}/appointments/new?clinician={c}&amp;date={day}"
            )),
            "{day}"
        );
    }
    assert!(week.contains("Times are in UTC."));
    // An unknown clinician, a malformed date.
    let res = request(
        &http,
        &app,
        Method::GET,
        &format!(
            "/app/practices/{p}/schedule?clinician={}",
            world.a.user("owner")
        ),
        Some(&token),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "not a clinician");
    let res = request(
        &http,
        &app,
        Method::GET,
        &format!("/app/practices/{p}/schedule?date=soon"),
        Some(&token),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // The booking form finds the patient by date of birth.
    let find = post_form(
        &http,
        &app,
        &format!("/app/practices/{p}/appointments/new"),
        &token,
        &[
            ("dob", "1984-03-09"),
            ("clinician", c_s.as_str()),
            ("date", wednesday),
        ],
    )
    .await;
    assert_eq!(find.status(), StatusCode::OK);
    let find = find.text().await.unwrap();
    assert!(find.contains("Larkspur, Wren"), "{find}");
    assert!(find.contains(&format!("value=\"{pat}\"")));

    // Refused: no patient chosen, a malformed time, a length over 24 hours.
    let before = count(&mut su, "appointment", p).await;
    for (form, fields) in [
        (
            vec![
                ("clinician", c_s.as_str()),
                ("date", wednesday),
                ("start", "09:00"),
                ("minutes", "30"),
            ],
            vec!["patient"],
        ),
        (
            vec![
                ("patient_id", pat.as_str()),
                ("clinician", c_s.as_str()),
                ("date", wednesday),
                ("start", "25:00"),
                ("minutes", "30"),
            ],
            vec!["start"],
        ),
        (
            vec![
                ("patient_id", pat.as_str()),
                ("clinician", c_s.as_str()),
                ("date", wednesday),
                ("start", "09:00"),
                ("minutes", "1445"),
            ],
            vec!["minutes"],
        ),
    ] {
        let res = post_form(
            &http,
            &app,
            &format!("/app/practices/{p}/appointments"),
            &token,
            &form,
        )
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{form:?}");
        let body = res.text().await.unwrap();
        for f in fields {
            assert!(body.contains(&format!("id=\"{f}-error\"")), "{f}: {body}");
            assert!(
                body.contains(&format!("aria-describedby=\"{f}-error\"")),
                "{f}"
            );
        }
    }
    assert_eq!(
        count(&mut su, "appointment", p).await,
        before,
        "nothing booked"
    );

    // Booked: back to the clinician's week, which shows it.
    let res = post_form(
        &http,
        &app,
        &format!("/app/practices/{p}/appointments"),
        &token,
        &[
            ("patient_id", pat.as_str()),
            ("clinician", c_s.as_str()),
            ("date", wednesday),
            ("start", "09:15"),
            ("minutes", "45"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let week_url = format!("/app/practices/{p}/schedule?clinician={c}&date={wednesday}");
    assert_eq!(res.headers()[LOCATION], week_url.as_str());
    let week = get_page(&http, &app, &week_url, &token).await;
    assert!(week.contains("09:15–10:00"), "{week}");
    assert!(week.contains("Larkspur, Wren"));
    let appt: String = sqlx::query_scalar(
        "select appointment_id::text from appointment where practice_id = $1 and patient_id = $2",
    )
    .bind(p)
    .bind(uuid::Uuid::parse_str(&pat).unwrap())
    .fetch_one(&mut su)
    .await
    .unwrap();
    let api = appointment_state(&app, &token, p, &appt).await;
    assert_eq!(api["starts_at"], "2031-03-05T09:15:00Z");
    assert_eq!(api["ends_at"], "2031-03-05T10:00:00Z");
    let day = get_page(
        &http,
        &app,
        &format!("/app/practices/{p}/schedule/day?clinician={c}&date={wednesday}"),
        &token,
    )
    .await;
    assert!(day.contains("09:15–10:00"));
    let other_day = get_page(
        &http,
        &app,
        &format!("/app/practices/{p}/schedule/day?clinician={c}&date=2031-03-06"),
        &token,
    )
    .await;
    assert!(!other_day.contains("Larkspur"));

    // Move: the form holds the current time; a refused move changes nothing; a move to
    // Friday 14:00 for 30 minutes is saved.
    let move_url = format!("/app/practices/{p}/appointments/{appt}/move");
    let form = get_page(&http, &app, &move_url, &token).await;
    assert!(form.contains("value=\"09:15\""), "{form}");
    assert!(form.contains("value=\"45\""));
    let res = post_form(
        &http,
        &app,
        &move_url,
        &token,
        &[
            ("clinician", c_s.as_str()),
            ("date", "2031-02-30"),
            ("start", "14:00"),
            ("minutes", "30"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("aria-describedby=\"date-error\"")
    );
    assert_eq!(
        appointment_state(&app, &token, p, &appt).await,
        api,
        "nothing moved"
    );
    let res = post_form(
        &http,
        &app,
        &move_url,
        &token,
        &[
            ("clinician", c_s.as_str()),
            ("date", "2031-03-07"),
            ("start", "14:00"),
            ("minutes", "30"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let moved = appointment_state(&app, &token, p, &appt).await;
    assert_eq!(moved["starts_at"], "2031-03-07T14:00:00Z");
    assert_eq!(moved["ends_at"], "2031-03-07T14:30:00Z");
    let week = get_page(&http, &app, &week_url, &token).await;
    assert!(week.contains("14:00–14:30"));
    assert!(!week.contains("09:15–10:00"));

    // Cancel: a confirmation page, then the status; the appointment stays, marked.
    let cancel_url = format!("/app/practices/{p}/appointments/{appt}/cancel");
    let confirm = get_page(&http, &app, &cancel_url, &token).await;
    assert!(
        confirm.contains("Fri 7 Mar 2031, 14:00–14:30 UTC"),
        "{confirm}"
    );
    assert_eq!(
        appointment_state(&app, &token, p, &appt).await["status"],
        "booked"
    );
    let res = post_form(&http, &app, &cancel_url, &token, &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        appointment_state(&app, &token, p, &appt).await["status"],
        "cancelled"
    );
    let week = get_page(&http, &app, &week_url, &token).await;
    assert!(week.contains("cancelled"));
    assert!(
        !week.contains(&format!("/appointments/{appt}/move")),
        "no actions on a cancelled one"
    );
    for clinical in CLINICAL {
        assert!(!week.contains(clinical), "{clinical}");
    }
}

/// Adds a member with `role` to practice `p` (as the database owner); their id.
async fn extra_member(db: &TestDb, p: domain::PracticeId, role: domain::Role) -> domain::UserId {
    let owner = db.owner().await;
    let now = chrono::Utc::now();
    let user = owner
        .create_user(
            &format!(
                "extra.{}@test.example.invalid",
                uuid::Uuid::new_v4().simple()
            ),
            "extra member",
            testkit::password_hash(),
            now,
        )
        .await
        .unwrap();
    owner
        .add_member(p, user, domain::RoleSet::from_iter([role]), now)
        .await
        .unwrap();
    owner.close().await;
    user
}

/// An invitation of practice `p` sent through the API (as a fresh owner or admin); its id.
async fn api_invitation(app: &TestApp, token: &str, p: domain::PracticeId) -> String {
    let (status, body) = crate::util::call(
        app,
        Method::POST,
        &format!("/api/v1/practices/{p}/invitations"),
        Some(token),
        Some(&serde_json::json!({
            "email": format!("invitee.{}@test.example.invalid", uuid::Uuid::new_v4().simple()),
            "roles": ["reception"]
        })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["invitation_id"].as_str().unwrap().to_owned()
}

/// A vendor support account (outside every practice); its sign-in email.
async fn support_user(db: &TestDb) -> String {
    let owner = db.owner().await;
    let email = format!(
        "support.{}@test.example.invalid",
        uuid::Uuid::new_v4().simple()
    );
    owner
        .create_support_user(
            &email,
            "Vendor Support",
            testkit::password_hash(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    owner.close().await;
    email
}

/// A support grant of practice `p` approved through the API (as a fresh owner); its id.
async fn api_support_grant(
    app: &TestApp,
    owner: &str,
    p: domain::PracticeId,
    email: &str,
) -> String {
    let (status, body) = crate::util::call(
        app,
        Method::POST,
        &format!("/api/v1/practices/{p}/support-grants"),
        Some(owner),
        Some(&serde_json::json!({
            "support_email": email, "scope": "scheduling", "reason": "Import help", "hours": 4
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["grant_id"].as_str().unwrap().to_owned()
}

/// Practice A's clinician opens a new patient (outside the care team) by break-glass through
/// the API with `reason`; the grant's id.
async fn api_break_glass(app: &TestApp, world: &World, reason: &str) -> String {
    let p = world.a.id;
    let reception = app.token(world.a.user("reception")).await;
    let clinician = app.token(world.a.user("clinician")).await;
    let patient = api_patient(app, &reception, p, "Glassfield").await;
    let (status, body) = crate::util::call(
        app,
        Method::POST,
        &format!("/api/v1/practices/{p}/patients/{patient}/break-glass"),
        Some(&clinician),
        Some(&serde_json::json!({ "reason": reason, "minutes": 30 })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["grant_id"].as_str().unwrap().to_owned()
}

/// The owner and admin routes of the matrix, with what each leaves on the audit trail.
async fn manage_routes(db: &TestDb, app: &TestApp, world: &World, owner: &str) -> Vec<Route> {
    let p = world.a.id;
    let b = world.b.id;
    let c = world.a.user("clinician");
    let gone = [
        extra_member(db, p, domain::Role::Reception).await,
        extra_member(db, p, domain::Role::Reception).await,
    ];
    let inv = [
        api_invitation(app, owner, p).await,
        api_invitation(app, owner, p).await,
    ];
    let support = support_user(db).await;
    let grants = [
        api_support_grant(app, owner, p, &support).await,
        api_support_grant(app, owner, p, &support).await,
    ];
    let pat = world.a.patient;
    let pat_s = pat.to_string();
    let mut routes = vec![
        Route::get(
            format!("/app/practices/{p}/retention"),
            &["membership.list", "retention.read"],
        ),
        Route::post(
            format!("/app/practices/{p}/legal-holds"),
            &[("patient_id", pat_s.as_str()), ("category", "litigation")],
            &["legal_hold.place"],
        )
        .cross(format!("/app/practices/{b}/legal-holds")),
        Route::post(
            format!("/app/practices/{p}/legal-holds/{pat}/release"),
            &[],
            &["legal_hold.release"],
        )
        .cross(format!("/app/practices/{b}/legal-holds/{pat}/release")),
    ];
    let glass = [
        api_break_glass(app, world, "Matrix one").await,
        api_break_glass(app, world, "Matrix two").await,
    ];
    routes.extend(vec![
        Route::get(
            format!("/app/practices/{p}/break-glass"),
            &["break_glass.review", "membership.list"],
        ),
        Route::get(
            format!("/app/practices/{p}/break-glass?all=1"),
            &["break_glass.review", "membership.list"],
        ),
        Route::post(
            format!("/app/practices/{p}/break-glass/{}/acknowledge", glass[0]),
            &[],
            &["break_glass.acknowledge"],
        )
        .ok_paths([
            format!("/app/practices/{p}/break-glass/{}/acknowledge", glass[0]),
            format!("/app/practices/{p}/break-glass/{}/acknowledge", glass[1]),
        ])
        .cross(format!(
            "/app/practices/{b}/break-glass/{}/acknowledge",
            glass[0]
        )),
        Route::get(format!("/app/practices/{p}/settings"), &["practice.read"]),
        Route::post(
            format!("/app/practices/{p}/settings"),
            &[("name", "Practice a"), ("clinical_scope", "care_team")],
            &["practice.update"],
        ),
        Route::post(
            format!("/app/practices/{p}/settings/security"),
            &[("idle_minutes", "15"), ("lifetime_hours", "")],
            &["practice.update"],
        ),
        Route::get(
            format!("/app/practices/{p}/audit"),
            &["audit.read", "membership.list"],
        ),
        Route::get(
            format!(
                "/app/practices/{p}/audit?patient_id={pat}&action=patient.read&from=2020-01-01"
            ),
            &["audit.read", "membership.list"],
        ),
        Route::get(
            format!("/app/practices/{p}/audit/fhir?from=2020-01-01"),
            &["audit.export"],
        ),
        Route::get(
            format!("/app/practices/{p}/support"),
            &["support_grant.list"],
        ),
        Route::post(
            format!("/app/practices/{p}/support-grants"),
            &[
                ("support_email", support.as_str()),
                ("scope", "scheduling"),
                ("reason", "Matrix check"),
                ("hours", "2"),
            ],
            &["support_grant.approve"],
        )
        .owner_only(),
        Route::post(
            format!("/app/practices/{p}/support-grants/{}/revoke", grants[0]),
            &[],
            &["support_grant.revoke"],
        )
        .ok_paths([
            format!("/app/practices/{p}/support-grants/{}/revoke", grants[0]),
            format!("/app/practices/{p}/support-grants/{}/revoke", grants[1]),
        ])
        .cross(format!(
            "/app/practices/{b}/support-grants/{}/revoke",
            grants[0]
        )),
        Route::get(
            format!("/app/practices/{p}/members"),
            &["invitation.list", "membership.list"],
        ),
        Route::get(
            format!("/app/practices/{p}/members/{c}"),
            &["membership.list"],
        )
        .cross(format!("/app/practices/{b}/members/{c}")),
        Route::post(
            format!("/app/practices/{p}/members/{c}"),
            &[("clinician", "on")],
            &["membership.update"],
        )
        .cross(format!("/app/practices/{b}/members/{c}")),
        Route::get(
            format!("/app/practices/{p}/members/{c}/remove"),
            &["membership.list"],
        )
        .cross(format!("/app/practices/{b}/members/{c}/remove")),
        Route::post(
            format!("/app/practices/{p}/members/{}/remove", gone[0]),
            &[],
            &["membership.delete"],
        )
        .ok_paths([
            format!("/app/practices/{p}/members/{}/remove", gone[0]),
            format!("/app/practices/{p}/members/{}/remove", gone[1]),
        ])
        .cross(format!("/app/practices/{b}/members/{}/remove", gone[0])),
        Route::post(
            format!("/app/practices/{p}/invitations"),
            &[
                ("email", "invitee.matrix@test.example.invalid"),
                ("reception", "on"),
            ],
            &["invitation.create"],
        ),
        Route::post(
            format!("/app/practices/{p}/invitations/{}/revoke", inv[0]),
            &[],
            &["invitation.revoke"],
        )
        .ok_paths([
            format!("/app/practices/{p}/invitations/{}/revoke", inv[0]),
            format!("/app/practices/{p}/invitations/{}/revoke", inv[1]),
        ])
        .cross(format!("/app/practices/{b}/invitations/{}/revoke", inv[0])),
    ]);
    routes.extend(incident_routes(app, world, owner).await);
    routes
}

/// The incident pages (req IR-01): one incident to read and change, two being assessed to
/// close (the owner's and the admin's), made through the API.
async fn incident_routes(app: &TestApp, world: &World, owner: &str) -> Vec<Route> {
    use domain::Clock as _;
    let (p, b) = (world.a.id, world.b.id);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, body) = crate::util::call(
            app,
            Method::POST,
            &format!("/api/v1/practices/{p}/incidents"),
            Some(owner),
            Some(&serde_json::json!({"detection_source": "other", "description": "Synthetic incident"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["incident_id"].as_str().unwrap().to_owned();
        let (status, _) = crate::util::call(
            app,
            Method::PATCH,
            &format!("/api/v1/practices/{p}/incidents/{id}"),
            Some(owner),
            Some(&serde_json::json!({"status": "assessing"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        ids.push(id);
    }
    let now = app.clock.now();
    let from = (now - chrono::Duration::days(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let to = (now + chrono::Duration::minutes(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let today = now.date_naive().to_string();
    let clinician = world.a.user("clinician").to_string();
    let at = |tail: &str| format!("/app/practices/{p}/incidents/{}{tail}", ids[0]);
    let cross = |tail: &str| format!("/app/practices/{b}/incidents/{}{tail}", ids[0]);
    vec![
        Route::get(format!("/app/practices/{p}/incidents"), &["incident.list"]),
        Route::post(
            format!("/app/practices/{p}/incidents"),
            &[
                ("detection_source", "staff_report"),
                ("description", "Synthetic incident from the page"),
            ],
            &["incident.create"],
        ),
        Route::get(at(""), &["incident.read"]).cross(cross("")),
        Route::post(
            at("/update"),
            &[("status", ""), ("response", "Synthetic response")],
            &["incident.update"],
        )
        .cross(cross("/update")),
        Route::post(
            at("/assessment"),
            &[
                ("nature", "Synthetic nature"),
                ("person", "Synthetic person"),
                ("acquired", "Synthetic acquired"),
                ("mitigation", "Synthetic mitigation"),
                ("low_probability", "on"),
            ],
            &["incident.assess"],
        )
        .cross(cross("/assessment")),
        Route::post(
            at("/scope"),
            &[
                ("kind", "user"),
                ("subject", clinician.as_str()),
                ("from", from.as_str()),
                ("to", to.as_str()),
            ],
            &["incident.scope"],
        )
        .cross(cross("/scope")),
        Route::post(
            at("/letters"),
            &[("recipient_kind", "hhs"), ("sent_on", today.as_str())],
            &["incident.letter"],
        )
        .cross(cross("/letters")),
        Route::post(
            format!("/app/practices/{p}/incidents/{}/close", ids[1]),
            &[("outcome", "breach")],
            &["incident.close"],
        )
        .ok_paths([
            format!("/app/practices/{p}/incidents/{}/close", ids[1]),
            format!("/app/practices/{p}/incidents/{}/close", ids[2]),
        ])
        .cross(format!("/app/practices/{b}/incidents/{}/close", ids[1])),
    ]
}

// issue 17 — every owner and admin page and form: anonymous → the sign-in page, password
// only → the second factor, another practice (or another practice's object) → 404, reception
// and clinicians → 403 with the denial audited and nothing changed, owners and admins → 200
// (or 303 after a change) with the API's audit events; the menu offers these screens to
// owners and admins only.
#[tokio::test]
async fn owner_pages_authorization_matrix() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let a = &world.a;
    let p = a.id;
    let reception = app.token(a.user("reception")).await;
    let clinician = app.token(a.user("clinician")).await;
    let owner = app.token(a.user("owner")).await;
    let admin = app.token(a.user("admin")).await;
    let other = app.token(world.b.user("owner")).await;
    let nobody = app.token(world.nobody).await;
    let half = app.password_only_token(a.user("owner")).await;
    let routes = manage_routes(&db, &app, &world, &owner).await;
    let mut su = db.superuser_unsafe().await;
    for route in &routes {
        let what = format!("{} {}", route.method, route.path);
        let res = send(&http, &app, route, None).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "anonymous {what}");
        assert_eq!(res.headers()[LOCATION], "/app/sign-in", "anonymous {what}");
        let res = send(&http, &app, route, Some(&half)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "password only {what}");
        assert_eq!(res.headers()[LOCATION], "/app/sign-in/second-factor");
        for (who, token) in [("other practice", &other), ("no practice", &nobody)] {
            let res = send(&http, &app, route, Some(token)).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{who} {what}");
            assert!(
                res.text().await.unwrap().contains("NOT-FOUND"),
                "{who} {what}"
            );
        }
        if let Some(cross) = &route.cross {
            // B's own owner, in B's own practice, naming A's object: unknown there.
            let res = send_to(&http, &app, route, cross, Some(&other)).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "B's owner: {cross}");
        }
        for (who, token) in [("reception", &reception), ("clinician", &clinician)] {
            let res = send(&http, &app, route, Some(token)).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{who} {what}");
            let id = request_id(&res);
            assert!(res.text().await.unwrap().contains("AUTHZ-0001"));
            assert_eq!(
                audit(&mut su, p, &id).await,
                [("access.denied".to_owned(), "denied".to_owned())],
                "{who} {what}"
            );
        }
        for (i, (who, token)) in [("owner", &owner), ("admin", &admin)]
            .into_iter()
            .enumerate()
        {
            let path = route
                .ok_paths
                .as_ref()
                .map_or(route.path.as_str(), |paths| paths[i].as_str());
            let res = send_to(&http, &app, route, path, Some(token)).await;
            if route.owner_only && who == "admin" {
                assert_eq!(res.status(), StatusCode::FORBIDDEN, "{who} {what}");
                let id = request_id(&res);
                assert!(actions(&mut su, p, &id).await.is_empty(), "{what}");
                continue;
            }
            assert_eq!(res.status(), route.ok_status, "{who} {what}");
            let id = request_id(&res);
            assert_eq!(
                actions(&mut su, p, &id).await,
                route.audit,
                "{who} {what}: the API's audit events"
            );
            let html = res
                .headers()
                .get(CONTENT_TYPE)
                .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
            if route.method == Method::GET && html {
                assert_page_is_clean(&res.text().await.unwrap(), &what);
            }
        }
    }
    // The menu: the owner and admin screens for owners and admins, none for the others.
    let members = format!("/app/practices/{p}/members");
    for (token, shown) in [
        (&owner, true),
        (&admin, true),
        (&reception, false),
        (&clinician, false),
    ] {
        for page in ["/app", &format!("/app/practices/{p}/schedule")] {
            let res = request(&http, &app, Method::GET, page, Some(token))
                .send()
                .await
                .unwrap();
            if res.status() != StatusCode::OK {
                continue;
            }
            let body = res.text().await.unwrap();
            assert_eq!(body.contains(&members), shown, "{page}");
        }
    }
}

// issue 17 — roles through the pages with the API's step-up: a second factor older than five
// minutes puts a code field in the form; a change without the code, or with a wrong one, is
// refused (401) with nothing changed; with the code from the authenticator it is saved, the
// session renewed; the last owner keeps `owner` (409, nothing changed); an invitation is sent
// and revoked; a member is removed after a confirmation page.
#[tokio::test]
async fn members_and_roles_change_with_step_up_through_the_pages() {
    use domain::Clock as _;
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let c = world.a.user("clinician");
    let email = crate::util::email_of(&db, world.a.user("owner")).await;
    let (key, token, _) = crate::identity::enroll(&app, &email).await;
    let member = format!("/app/practices/{p}/members/{c}");
    let roles_of = |user: domain::UserId| {
        let db = &db;
        async move {
            let mut su = db.superuser_unsafe().await;
            let r: Vec<String> = sqlx::query_scalar(
                "select roles from membership where practice_id = $1 and user_id = $2",
            )
            .bind(p)
            .bind(user)
            .fetch_one(&mut su)
            .await
            .unwrap();
            r
        }
    };

    // Fresh from sign-in: no code field.
    let page = get_page(&http, &app, &member, &token).await;
    assert!(page.contains("Roles of clinician a"), "{page}");
    assert!(page.contains("id=\"role-clinician\" name=\"clinician\" value=\"on\" checked"));
    assert!(!page.contains("name=\"code\""));

    // Six minutes on: the form asks for the code; without it nothing changes.
    app.clock.advance(chrono::Duration::minutes(6));
    let page = get_page(&http, &app, &member, &token).await;
    assert!(page.contains("name=\"code\""), "{page}");
    assert!(page.contains("autocomplete=\"one-time-code\""));
    let res = post_form(
        &http,
        &app,
        &member,
        &token,
        &[("clinician", "on"), ("admin", "on")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("aria-describedby=\"code-hint code-error\""),
        "{body}"
    );
    assert!(
        body.contains("id=\"role-admin\" name=\"admin\" value=\"on\" checked"),
        "what was ticked stays"
    );
    assert_eq!(roles_of(c).await, ["clinician"], "nothing changed");
    let res = post_form(
        &http,
        &app,
        &member,
        &token,
        &[("clinician", "on"), ("admin", "on"), ("code", "000000")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get("set-cookie").is_none());
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("the code is incorrect or was already used")
    );
    assert_eq!(roles_of(c).await, ["clinician"], "nothing changed");

    // With the code: saved, and the renewed session cookie replaces the old one.
    let code = key.code_at(app.clock.now());
    let res = post_form(
        &http,
        &app,
        &member,
        &token,
        &[
            ("clinician", "on"),
            ("admin", "on"),
            ("code", code.as_str()),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()[LOCATION],
        format!("{member}?done=roles").as_str()
    );
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("__Host-chartroom_session="), "{set}");
    let renewed = set
        .trim_start_matches("__Host-chartroom_session=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let mut roles = roles_of(c).await;
    roles.sort();
    assert_eq!(roles, ["admin", "clinician"]);
    let page = get_page(&http, &app, &format!("{member}?done=roles"), &renewed).await;
    assert!(page.contains("Roles saved."));
    assert!(!page.contains("name=\"code\""), "fresh again");
    let res = request(&http, &app, Method::GET, &member, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "the old token no longer works"
    );

    // The last owner keeps `owner`: refused with the store's reason, nothing changed.
    let me = format!("/app/practices/{p}/members/{}", world.a.user("owner"));
    let res = post_form(&http, &app, &me, &renewed, &[("admin", "on")]).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().await.unwrap().contains("Nothing was changed"));
    assert_eq!(roles_of(world.a.user("owner")).await, ["owner"]);
    // No role at all: refused.
    let res = post_form(&http, &app, &member, &renewed, &[]).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // Invitations: refused input sends nothing; then one is sent, listed and revoked.
    let mut su = db.superuser_unsafe().await;
    let members = format!("/app/practices/{p}/members");
    let invitations = format!("/app/practices/{p}/invitations");
    let before = count(&mut su, "membership_invitation", p).await;
    for form in [
        vec![("email", "not an email"), ("reception", "on")],
        vec![("email", "someone@test.example.invalid")],
    ] {
        let res = post_form(&http, &app, &invitations, &renewed, &form).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{form:?}");
        assert!(res.text().await.unwrap().contains("Nothing was sent"));
    }
    assert_eq!(count(&mut su, "membership_invitation", p).await, before);
    let res = post_form(
        &http,
        &app,
        &invitations,
        &renewed,
        &[
            ("email", "newcomer@test.example.invalid"),
            ("clinician", "on"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = get_page(&http, &app, &format!("{members}?done=invited"), &renewed).await;
    assert!(page.contains("Invitation sent."));
    assert!(!page.contains("newcomer@"), "the address is not kept");
    let id: String = sqlx::query_scalar(
        "select invitation_id::text from membership_invitation where practice_id = $1 order by created_at desc limit 1",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    let revoke = format!("{invitations}/{id}/revoke");
    assert!(page.contains(&format!("action=\"{revoke}\"")));
    let res = post_form(&http, &app, &revoke, &renewed, &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = post_form(&http, &app, &revoke, &renewed, &[]).await;
    assert_eq!(res.status(), StatusCode::CONFLICT, "revoked once");

    // Removing: a confirmation page, then gone from the list.
    let r = world.a.user("reception");
    let remove = format!("{members}/{r}/remove");
    let page = get_page(&http, &app, &remove, &renewed).await;
    assert!(
        page.contains("Remove reception a from the practice?"),
        "{page}"
    );
    let res = post_form(&http, &app, &remove, &renewed, &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = get_page(&http, &app, &format!("{members}?done=removed"), &renewed).await;
    assert!(page.contains("Member removed."));
    assert!(!page.contains("reception a"));
}

// issue 17 — a cross-site POST to each owner and admin form (roles, remove, invite, revoke an
// invitation, …) is refused with 403 before any handler runs: no audit event, nothing
// changed.
#[tokio::test]
async fn cross_site_posts_on_owner_forms_change_nothing() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let owner = app.token(world.a.user("owner")).await;
    let posts: Vec<String> = manage_routes(&db, &app, &world, &owner)
        .await
        .into_iter()
        .filter(|r| r.method == Method::POST)
        .map(|r| r.path)
        .collect();
    let posts: Vec<String> = posts
        .into_iter()
        .chain([format!(
            "/app/practices/{p}/patients/{}/disclosures",
            world.a.patient
        )])
        .collect();
    assert!(posts.len() >= 4);
    let mut su = db.superuser_unsafe().await;
    let members = count(&mut su, "membership", p).await;
    let invitations = count(&mut su, "membership_invitation", p).await;
    let events = count(&mut su, "audit_event", p).await;
    let form: &[(&str, &str)] = &[
        ("owner", "on"),
        ("admin", "on"),
        ("email", "mallory@test.example.invalid"),
        ("reception", "on"),
    ];
    for path in &posts {
        for (site, origin) in [
            (Some("cross-site"), None),
            (Some("same-site"), None),
            (None, Some("https://evil.test.example.invalid")),
            (None, None),
        ] {
            let mut r = http
                .post(app.url(path))
                .header(COOKIE, cookie(&owner))
                .form(form);
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
                "{path} {site:?} {origin:?}"
            );
            assert!(res.text().await.unwrap().contains("CSRF-0001"));
        }
    }
    assert_eq!(count(&mut su, "membership", p).await, members);
    assert_eq!(
        count(&mut su, "membership_invitation", p).await,
        invitations
    );
    assert_eq!(
        count(&mut su, "audit_event", p).await,
        events,
        "no handler ran"
    );
}

// issue 17 — support access through the pages: admins see the grants but no approve form
// (and a forged approval is 403); an owner's stale second factor puts a code field in the
// form and a post without it approves nothing (401); refused input approves nothing (400);
// with the code the grant is approved, listed and opens the practice to the support account;
// revoking it closes the practice on the support session's next request.
#[tokio::test]
async fn support_access_is_approved_with_step_up_and_revoked_through_the_pages() {
    use domain::Clock as _;
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let support = support_user(&db).await;
    let page_url = format!("/app/practices/{p}/support");
    let approve = format!("/app/practices/{p}/support-grants");
    let mut su = db.superuser_unsafe().await;
    let grants = || async {
        let mut su = db.superuser_unsafe().await;
        count(&mut su, "support_grant", p).await
    };
    let form = |code: Option<&str>| {
        let mut f = vec![
            ("support_email", support.clone()),
            ("scope", "scheduling".to_owned()),
            ("reason", "Help with an import".to_owned()),
            ("hours", "4".to_owned()),
        ];
        if let Some(c) = code {
            f.push(("code", c.to_owned()));
        }
        f
    };
    let admin = app.token(world.a.user("admin")).await;
    let page = get_page(&http, &app, &page_url, &admin).await;
    assert!(page.contains("Only an owner of the practice can approve support access."));
    assert!(!page.contains(&format!("action=\"{approve}\"")));
    let res = request(&http, &app, Method::POST, &approve, Some(&admin))
        .form(&form(None))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "admins do not approve");

    let email = crate::util::email_of(&db, world.a.user("owner")).await;
    let (key, token, _) = crate::identity::enroll(&app, &email).await;
    app.clock.advance(chrono::Duration::minutes(6));
    let page = get_page(&http, &app, &page_url, &token).await;
    assert!(page.contains("name=\"code\""), "{page}");
    let res = request(&http, &app, Method::POST, &approve, Some(&token))
        .form(&form(None))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains(">Help with an import</textarea>"),
        "what was typed stays"
    );
    assert_eq!(grants().await, 0, "nothing approved");
    let code = key.code_at(app.clock.now());
    let mut bad = form(Some(&code));
    bad[3].1 = "73".to_owned();
    let res = request(&http, &app, Method::POST, &approve, Some(&token))
        .form(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let renewed = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .trim_start_matches("__Host-chartroom_session=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body = res.text().await.unwrap();
    assert!(
        body.contains("Nothing was approved: hours: must be 1 to 72."),
        "{body}"
    );
    assert!(!body.contains("name=\"code\""), "the step-up was done");
    assert_eq!(grants().await, 0, "nothing approved");
    let mut other = form(None);
    other[0].1 = "nobody@test.example.invalid".to_owned();
    let res = post_form(
        &http,
        &app,
        &approve,
        &renewed,
        &other
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("no support staff account has that email")
    );
    let res = post_form(
        &http,
        &app,
        &approve,
        &renewed,
        &form(None)
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()[LOCATION],
        format!("{page_url}?done=approved").as_str()
    );
    let page = get_page(&http, &app, &format!("{page_url}?done=approved"), &renewed).await;
    assert!(page.contains("Support access approved."));
    assert!(page.contains("Help with an import"));
    let grant: String =
        sqlx::query_scalar("select grant_id::text from support_grant where practice_id = $1")
            .bind(p)
            .fetch_one(&mut su)
            .await
            .unwrap();
    let support_id: domain::UserId =
        sqlx::query_scalar("select user_id from app_user where email = $1")
            .bind(&support)
            .fetch_one(&mut su)
            .await
            .map(domain::UserId::from_uuid)
            .unwrap();
    let sup = app.token(support_id).await;
    let patient = format!("/api/v1/practices/{p}/patients/{}", world.a.patient);
    let (s, _) = crate::util::call(&app, Method::GET, &patient, Some(&sup), None).await;
    assert_eq!(s, StatusCode::OK, "the grant opens the practice");
    let revoke = format!("{approve}/{grant}/revoke");
    assert!(page.contains(&format!("action=\"{revoke}\"")));
    let res = post_form(&http, &app, &revoke, &admin, &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (s, _) = crate::util::call(&app, Method::GET, &patient, Some(&sup), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "revoked: closed at once");
    let page = get_page(&http, &app, &format!("{page_url}?done=revoked"), &admin).await;
    assert!(page.contains("Support access revoked."));
    assert!(page.contains(">revoked<"));
    assert!(!page.contains(&format!("action=\"{revoke}\"")));
    let res = post_form(&http, &app, &revoke, &admin, &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "revoked once");
}

// issue 17 — the audit log viewer: events newest first with the actor's name, filtered by
// patient (an id), actor, action and day, 50 a page with a link to older events that keeps
// the filters (ids only in the URL, no PHI); a malformed filter is refused by field (400)
// and reads nothing; the FHIR R4 export downloads as NDJSON, itself audited.
#[tokio::test]
async fn the_audit_log_is_filtered_paged_and_exported_through_the_pages() {
    use domain::Clock as _;
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let pat = world.a.patient;
    let reception = app.token(world.a.user("reception")).await;
    let admin = app.token(world.a.user("admin")).await;
    for _ in 0..55 {
        let (s, _) = crate::util::call(
            &app,
            Method::GET,
            &format!("/api/v1/practices/{p}/patients/{pat}"),
            Some(&reception),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
    let other = api_patient(&app, &reception, p, "Otherfield").await;
    let base = format!("/app/practices/{p}/audit");
    let page = get_page(&http, &app, &base, &admin).await;
    assert!(page.contains("patient.read"), "{page}");
    assert!(page.contains("reception a"), "the actor's name");
    assert!(page.contains(&other), "the newest first");
    let today = app.clock.now().date_naive();
    let filtered = format!(
        "{base}?patient_id={pat}&actor_id={}&action=patient.read&from={today}&to={today}",
        world.a.user("reception")
    );
    let page = get_page(&http, &app, &filtered, &admin).await;
    assert_eq!(page.matches("<td>patient.read</td>").count(), 50, "a page");
    assert!(!page.contains(&other), "only the patient asked for");
    assert!(page.contains("Clear the filters"));
    let older = page
        .split("<a href=\"")
        .find(|s| s.contains("cursor="))
        .and_then(|s| s.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    assert!(older.contains(&format!("patient_id={pat}")), "{older}");
    assert!(older.contains("action=patient.read"));
    let page = get_page(&http, &app, &older, &admin).await;
    assert_eq!(page.matches("<td>patient.read</td>").count(), 5, "the rest");
    assert!(!page.contains("cursor="));
    // A malformed filter: 400, by field, nothing read.
    let mut su = db.superuser_unsafe().await;
    let res = request(
        &http,
        &app,
        Method::GET,
        &format!("{base}?patient_id=not-an-id&action=patient.peek"),
        Some(&admin),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let id = request_id(&res);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("aria-describedby=\"patient_id-error\""),
        "{body}"
    );
    assert!(body.contains("aria-describedby=\"action-error\""));
    assert!(
        !actions(&mut su, p, &id)
            .await
            .contains(&"audit.read".to_owned())
    );
    // The FHIR export, as a download.
    let res = request(
        &http,
        &app,
        Method::GET,
        &format!("{base}/fhir?from={today}"),
        Some(&admin),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "application/fhir+ndjson");
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"chartroom-audit-"),
        "{disposition}"
    );
    assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
    let body = res.text().await.unwrap();
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() > 55, "{}", lines.len());
    assert!(lines.iter().all(|l| l["resourceType"] == "AuditEvent"));
    let res = request(
        &http,
        &app,
        Method::GET,
        &format!("{base}/fhir?from=someday"),
        Some(&admin),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

// issue 17 — practice settings through the pages: the name and clinical scope (no step-up,
// as in the API); the security settings with the API's step-up (a stale second factor needs
// the code, a post without it changes nothing) and its ranges (refused: 400, nothing
// changed); what is saved is what the API reads back.
#[tokio::test]
async fn practice_and_security_settings_change_through_the_pages() {
    use domain::Clock as _;
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let email = crate::util::email_of(&db, world.a.user("owner")).await;
    let (key, token, _) = crate::identity::enroll(&app, &email).await;
    let page_url = format!("/app/practices/{p}/settings");
    let security_url = format!("{page_url}/security");
    let api = |token: String| {
        let app = &app;
        async move {
            let (s, v) = crate::util::call(
                app,
                Method::GET,
                &format!("/api/v1/practices/{p}/security"),
                Some(&token),
                None,
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
    let page = get_page(&http, &app, &page_url, &token).await;
    assert!(page.contains("value=\"Practice a\""), "{page}");
    assert!(!page.contains("name=\"code\""));
    // Name and scope: refused input changes nothing; then saved.
    for form in [
        vec![("name", " "), ("clinical_scope", "practice")],
        vec![("name", "Harbour Dental"), ("clinical_scope", "everyone")],
    ] {
        let res = post_form(&http, &app, &page_url, &token, &form).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{form:?}");
        assert!(res.text().await.unwrap().contains("Nothing was saved"));
    }
    let res = post_form(
        &http,
        &app,
        &page_url,
        &token,
        &[("name", "Harbour Dental"), ("clinical_scope", "practice")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = get_page(&http, &app, &format!("{page_url}?done=practice"), &token).await;
    assert!(page.contains("Practice settings saved."));
    assert!(page.contains("value=\"Harbour Dental\""));
    assert!(page.contains("value=\"practice\" checked"));

    // Security: stale second factor → the code field; without it nothing changes.
    let before = api(token.clone()).await;
    app.clock.advance(chrono::Duration::minutes(6));
    let page = get_page(&http, &app, &page_url, &token).await;
    assert!(page.contains("name=\"code\""));
    let res = post_form(
        &http,
        &app,
        &security_url,
        &token,
        &[("idle_minutes", "10")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.text().await.unwrap().contains("value=\"10\""),
        "what was typed stays"
    );
    assert_eq!(api(token.clone()).await, before);
    let code = key.code_at(app.clock.now());
    let res = post_form(
        &http,
        &app,
        &security_url,
        &token,
        &[("idle_minutes", "1"), ("code", code.as_str())],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let renewed = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .trim_start_matches("__Host-chartroom_session=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Nothing was saved: session_idle_minutes: must be between 2 and 60.")
    );
    assert_eq!(api(renewed.clone()).await, before);
    let res = post_form(
        &http,
        &app,
        &security_url,
        &renewed,
        &[("idle_minutes", "10"), ("lifetime_hours", "8")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let after = api(renewed.clone()).await;
    assert_eq!(after["session_idle_minutes"], 10);
    assert_eq!(after["session_lifetime_hours"], 8);
    assert_eq!(after["require_passkey_for_managers"], false);
    let page = get_page(&http, &app, &format!("{page_url}?done=security"), &renewed).await;
    assert!(page.contains("Security settings saved."));
    assert!(page.contains("value=\"10\""));
}

// issue 17 — the break-glass review queue through the pages: a clinician's break-glass
// access appears with its reason and the clinician's name (the patient by id only); an
// acknowledgement takes it off the queue, the full list shows who acknowledged it, and it
// cannot be acknowledged twice.
#[tokio::test]
async fn break_glass_access_is_reviewed_and_acknowledged_through_the_pages() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let admin = app.token(world.a.user("admin")).await;
    let queue = format!("/app/practices/{p}/break-glass");
    let page = get_page(&http, &app, &queue, &admin).await;
    assert!(page.contains("Nothing awaits review."), "{page}");
    let grant = api_break_glass(&app, &world, "Collapsed in the waiting room").await;
    let page = get_page(&http, &app, &queue, &admin).await;
    assert!(page.contains("Collapsed in the waiting room"), "{page}");
    assert!(page.contains("<td>clinician a</td>"));
    assert!(!page.contains("Glassfield"), "no patient name");
    let ack = format!("{queue}/{grant}/acknowledge");
    assert!(page.contains(&format!("action=\"{ack}\"")));
    let res = post_form(&http, &app, &ack, &admin, &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = get_page(&http, &app, &format!("{queue}?done=acknowledged"), &admin).await;
    assert!(page.contains("Acknowledged."));
    assert!(page.contains("Nothing awaits review."));
    let page = get_page(&http, &app, &format!("{queue}?all=1"), &admin).await;
    assert!(page.contains("Collapsed in the waiting room"));
    assert!(page.contains("by admin a"), "{page}");
    assert!(!page.contains(&format!("action=\"{ack}\"")));
    let res = post_form(&http, &app, &ack, &admin, &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "acknowledged once");
}

// issue 17 — retention and legal holds through the pages: the windows are shown; a hold is
// placed on a patient by id with a category (a malformed id 400, another practice's patient
// 404, no category 400 — nothing placed), listed with who placed it, and released.
#[tokio::test]
async fn legal_holds_are_placed_and_released_through_the_pages() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let pat = world.a.patient.to_string();
    let owner = app.token(world.a.user("owner")).await;
    let page_url = format!("/app/practices/{p}/retention");
    let holds = format!("/app/practices/{p}/legal-holds");
    let mut su = db.superuser_unsafe().await;
    let page = get_page(&http, &app, &page_url, &owner).await;
    assert!(page.contains("No patient is under legal hold."), "{page}");
    assert!(page.contains(" days, then purged by the retention job"));
    let b_patient = world.b.patient.to_string();
    for (form, status) in [
        (
            vec![("patient_id", "not-an-id"), ("category", "litigation")],
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![
                ("patient_id", b_patient.as_str()),
                ("category", "litigation"),
            ],
            StatusCode::NOT_FOUND,
        ),
        (
            vec![("patient_id", pat.as_str()), ("category", "gossip")],
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let res = post_form(&http, &app, &holds, &owner, &form).await;
        assert_eq!(res.status(), status, "{form:?}");
        assert!(res.text().await.unwrap().contains("Nothing was placed."));
    }
    assert_eq!(count(&mut su, "legal_hold", p).await, 0, "nothing placed");
    let res = post_form(
        &http,
        &app,
        &holds,
        &owner,
        &[
            ("patient_id", pat.as_str()),
            ("category", "records_request"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = get_page(&http, &app, &format!("{page_url}?done=placed"), &owner).await;
    assert!(page.contains("Legal hold placed"));
    assert!(page.contains(&pat));
    assert!(page.contains("Records request being fulfilled"));
    assert!(page.contains("<td>owner a</td>"));
    let release = format!("{holds}/{pat}/release");
    assert!(page.contains(&format!("action=\"{release}\"")));
    let res = post_form(&http, &app, &release, &owner, &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = get_page(&http, &app, &format!("{page_url}?done=released"), &owner).await;
    assert!(page.contains("Legal hold released."));
    assert!(page.contains("No patient is under legal hold."));
    assert_eq!(count(&mut su, "legal_hold", p).await, 0);
}

// issue 17 — the accounting of disclosures (the API's scheduling privilege, like its
// routes): anonymous → sign-in, password only → second factor, another practice (or its
// patient) → 404, owners and admins → 403 audited, reception and clinicians → 200 / 303 with
// the API's audit events; recorded disclosures are listed (TPO ones left out), repeated ones
// summarized, refused input records nothing; the patient page links the accounting.
#[tokio::test]
async fn disclosures_are_recorded_and_accounted_through_the_pages() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let b = world.b.id;
    let reception = app.token(world.a.user("reception")).await;
    let clinician = app.token(world.a.user("clinician")).await;
    let owner = app.token(world.a.user("owner")).await;
    let admin = app.token(world.a.user("admin")).await;
    let other = app.token(world.b.user("reception")).await;
    let half = app.password_only_token(world.a.user("reception")).await;
    let pat = api_patient(&app, &reception, p, "Disclosefield").await;
    let url = format!("/app/practices/{p}/patients/{pat}/disclosures");
    let record: &[(&str, &str)] = &[
        ("recipient", "County Health Department"),
        ("description", "Immunization record"),
        ("purpose", "Public health reporting"),
        ("kind", "sharing"),
    ];
    let routes = [
        Route::get(url.clone(), &["disclosure.report"])
            .cross(format!("/app/practices/{b}/patients/{pat}/disclosures")),
        Route::post(url.clone(), record, &["disclosure.create"])
            .cross(format!("/app/practices/{b}/patients/{pat}/disclosures")),
    ];
    let mut su = db.superuser_unsafe().await;
    for route in &routes {
        let what = format!("{} {}", route.method, route.path);
        let res = send(&http, &app, route, None).await;
        assert_eq!(res.headers()[LOCATION], "/app/sign-in", "anonymous {what}");
        let res = send(&http, &app, route, Some(&half)).await;
        assert_eq!(res.headers()[LOCATION], "/app/sign-in/second-factor");
        let res = send(&http, &app, route, Some(&other)).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "other practice {what}");
        let cross = route.cross.as_ref().unwrap();
        let res = send_to(&http, &app, route, cross, Some(&other)).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "B's member: {cross}");
        for (who, token) in [("owner", &owner), ("admin", &admin)] {
            let res = send(&http, &app, route, Some(token)).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{who} {what}");
            let id = request_id(&res);
            assert_eq!(
                audit(&mut su, p, &id).await,
                [("access.denied".to_owned(), "denied".to_owned())],
                "{who} {what}"
            );
        }
        for (who, token) in [("reception", &reception), ("clinician", &clinician)] {
            let res = send(&http, &app, route, Some(token)).await;
            assert_eq!(res.status(), route.ok_status, "{who} {what}");
            let id = request_id(&res);
            assert_eq!(actions(&mut su, p, &id).await, route.audit, "{who} {what}");
        }
    }
    // Two recorded above (reception and clinician): listed and summarized; a TPO one is not.
    let res = post_form(
        &http,
        &app,
        &url,
        &reception,
        &[
            ("recipient", "Acme Billing"),
            ("description", "Claim"),
            ("purpose", "Payment"),
            ("tpo", "on"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let before = count(&mut su, "disclosure", p).await;
    for form in [
        vec![("recipient", " "), ("description", "x"), ("purpose", "y")],
        vec![
            ("recipient", "x"),
            ("description", "x"),
            ("purpose", "y"),
            ("disclosed_on", "2999-01-01"),
        ],
        vec![
            ("recipient", "x"),
            ("description", "x"),
            ("purpose", "y"),
            ("kind", "gossip"),
        ],
    ] {
        let res = post_form(&http, &app, &url, &reception, &form).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{form:?}");
        assert!(res.text().await.unwrap().contains("Nothing was recorded"));
    }
    assert_eq!(
        count(&mut su, "disclosure", p).await,
        before,
        "nothing recorded"
    );
    let page = get_page(&http, &app, &format!("{url}?done=recorded"), &reception).await;
    assert!(page.contains("Disclosure recorded."));
    assert_eq!(
        page.matches("<td>County Health Department</td>").count(),
        3,
        "{page}"
    );
    assert!(page.contains("Repeated disclosures"));
    assert!(
        !page.contains("Acme Billing"),
        "TPO is not in the accounting"
    );
    let patient = get_page(
        &http,
        &app,
        &format!("/app/practices/{p}/patients/{pat}"),
        &reception,
    )
    .await;
    assert!(patient.contains(&format!("href=\"{url}\"")));
}

/// A note of practice `p` for `patient` made through the API as `token` (a clinician on the
/// care team), saved once with `text`; signed too when `sign`. Its id and version.
async fn api_note(
    app: &TestApp,
    token: &str,
    p: domain::PracticeId,
    patient: &str,
    text: &str,
    sign: bool,
) -> (String, i64) {
    let (status, body) = crate::util::call(
        app,
        Method::POST,
        &format!("/api/v1/practices/{p}/patients/{patient}/notes"),
        Some(token),
        Some(&serde_json::json!({ "content": { "subjective": text } })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["note_id"].as_str().unwrap().to_owned();
    let version = body["version"].as_i64().unwrap();
    if !sign {
        return (id, version);
    }
    let res = app
        .http
        .post(app.url(&format!("/api/v1/practices/{p}/notes/{id}/sign")))
        .bearer_auth(token)
        .header("if-match", format!("\"{version}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    (id, body["version"].as_i64().unwrap())
}

/// The note as the API reads it (its JSON view).
async fn note_state(
    app: &TestApp,
    token: &str,
    p: domain::PracticeId,
    id: &str,
) -> serde_json::Value {
    let (status, body) = crate::util::call(
        app,
        Method::GET,
        &format!("/api/v1/practices/{p}/notes/{id}"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

// issue 17 — every chart route (chart, start a visit, start a note, break-glass; a note, save,
// autosave, sign, amend page and amendment, addendum, history, verify): anonymous → the
// sign-in page, password only → the second factor, another practice (or its object) → 404,
// reception, owner and admin → 403 with the denial audited and nothing clinical in the
// answer, the clinician on the care team → 200 (or 303 after a change) with the API's audit
// events. The clinician's patient page links the chart; reception's does not.
#[tokio::test]
async fn chart_routes_authorization_matrix() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let a = &world.a;
    let p = a.id;
    let b = world.b.id;
    let pat = a.patient.to_string();
    let reception = app.token(a.user("reception")).await;
    let clinician = app.token(a.user("clinician")).await;
    let owner = app.token(a.user("owner")).await;
    let admin = app.token(a.user("admin")).await;
    let other = app.token(world.b.user("clinician")).await;
    let nobody = app.token(world.nobody).await;
    let half = app.password_only_token(a.user("clinician")).await;
    let (saved, v_saved) = api_note(&app, &clinician, p, &pat, "Draft to save.", false).await;
    let (auto, v_auto) = api_note(&app, &clinician, p, &pat, "Draft to autosave.", false).await;
    let (to_sign, v_sign) = api_note(&app, &clinician, p, &pat, "Draft to sign.", false).await;
    let (signed, v_signed) = api_note(&app, &clinician, p, &pat, "Signed note.", true).await;
    let (signed2, v_signed2) = api_note(&app, &clinician, p, &pat, "Signed too.", true).await;
    let (v_saved, v_auto, v_sign, v_signed, v_signed2) = (
        v_saved.to_string(),
        v_auto.to_string(),
        v_sign.to_string(),
        v_signed.to_string(),
        v_signed2.to_string(),
    );
    let routes = [
        Route::get(
            format!("/app/practices/{p}/patients/{pat}/chart"),
            &["note.list", "patient.read", "visit.list"],
        )
        .cross(format!("/app/practices/{b}/patients/{pat}/chart")),
        Route::post(
            format!("/app/practices/{p}/patients/{pat}/visits"),
            &[],
            &["visit.create"],
        )
        .cross(format!("/app/practices/{b}/patients/{pat}/visits")),
        Route::post(
            format!("/app/practices/{p}/patients/{pat}/notes"),
            &[("template", "dental_hygiene")],
            &["note.create"],
        )
        .cross(format!("/app/practices/{b}/patients/{pat}/notes")),
        Route::post(
            format!("/app/practices/{p}/patients/{pat}/break-glass"),
            &[("reason", "Covering an emergency."), ("minutes", "30")],
            &["break_glass.open"],
        )
        .cross(format!("/app/practices/{b}/patients/{pat}/break-glass")),
        Route::get(format!("/app/practices/{p}/notes/{saved}"), &["note.read"])
            .cross(format!("/app/practices/{b}/notes/{saved}")),
        Route::post(
            format!("/app/practices/{p}/notes/{saved}"),
            &[("version", &v_saved), ("subjective", "Saved by the page.")],
            &["note.update"],
        )
        .cross(format!("/app/practices/{b}/notes/{saved}")),
        Route::post(
            format!("/app/practices/{p}/notes/{auto}/autosave"),
            &[("version", &v_auto), ("subjective", "Autosaved.")],
            &["note.update"],
        )
        .status(StatusCode::OK)
        .fragment()
        .cross(format!("/app/practices/{b}/notes/{auto}/autosave")),
        Route::post(
            format!("/app/practices/{p}/notes/{to_sign}/sign"),
            &[("version", &v_sign)],
            &["note.sign"],
        )
        .cross(format!("/app/practices/{b}/notes/{to_sign}/sign")),
        Route::get(
            format!("/app/practices/{p}/notes/{signed}/amend"),
            &["note.read"],
        )
        .cross(format!("/app/practices/{b}/notes/{signed}/amend")),
        Route::post(
            format!("/app/practices/{p}/notes/{signed}/amend"),
            &[
                ("version", &v_signed),
                ("subjective", "Signed note, amended."),
                ("reason", "Corrected."),
            ],
            &["note.amend"],
        )
        .cross(format!("/app/practices/{b}/notes/{signed}/amend")),
        Route::post(
            format!("/app/practices/{p}/notes/{signed2}/addenda"),
            &[
                ("version", &v_signed2),
                ("text", "Added later."),
                ("addendum_reason", "Late result."),
            ],
            &["note.addendum"],
        )
        .cross(format!("/app/practices/{b}/notes/{signed2}/addenda")),
        Route::get(
            format!("/app/practices/{p}/notes/{signed}/history"),
            &["membership.list", "note.read"],
        )
        .cross(format!("/app/practices/{b}/notes/{signed}/history")),
        Route::get(
            format!("/app/practices/{p}/notes/{signed}/verify"),
            &["note.read", "note.verify"],
        )
        .cross(format!("/app/practices/{b}/notes/{signed}/verify")),
    ];
    let mut su = db.superuser_unsafe().await;
    for route in &routes {
        let what = format!("{} {}", route.method, route.path);
        let res = send(&http, &app, route, None).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "anonymous {what}");
        assert_eq!(res.headers()[LOCATION], "/app/sign-in", "anonymous {what}");
        let res = send(&http, &app, route, Some(&half)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "password only {what}");
        assert_eq!(res.headers()[LOCATION], "/app/sign-in/second-factor");
        for (who, token) in [("other practice", &other), ("no practice", &nobody)] {
            let res = send(&http, &app, route, Some(token)).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{who} {what}");
            assert!(
                res.text().await.unwrap().contains("NOT-FOUND"),
                "{who} {what}"
            );
        }
        if let Some(cross) = &route.cross {
            let res = send_to(&http, &app, route, cross, Some(&other)).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "B's member: {cross}");
        }
        for (who, token) in [
            ("reception", &reception),
            ("owner", &owner),
            ("admin", &admin),
        ] {
            let res = send(&http, &app, route, Some(token)).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{who} {what}");
            let id = request_id(&res);
            let body = res.text().await.unwrap();
            assert!(body.contains("AUTHZ-0001"), "{who} {what}");
            for clinical in ["Subjective", "Draft", "Signed", "Visits", "Notes"] {
                assert!(!body.contains(clinical), "{who} {what} shows {clinical}");
            }
            assert_eq!(
                audit(&mut su, p, &id).await,
                [("access.denied".to_owned(), "denied".to_owned())],
                "{who} {what}"
            );
        }
        let res = send(&http, &app, route, Some(&clinician)).await;
        assert_eq!(res.status(), route.ok_status, "clinician {what}");
        assert_security_headers(&res, &what);
        assert_eq!(res.headers()[CACHE_CONTROL], "no-store", "{what}");
        let id = request_id(&res);
        assert_eq!(
            actions(&mut su, p, &id).await,
            route.audit,
            "clinician {what}: the API's audit events"
        );
    }
    // Nothing was changed by the refused requests: each change happened once, by the
    // clinician.
    let note = note_state(&app, &clinician, p, &saved).await;
    assert_eq!(note["content"]["subjective"], "Saved by the page.");
    let note = note_state(&app, &clinician, p, &to_sign).await;
    assert_eq!(note["status"], "signed");
    // The chart is linked from the clinician's patient page (and the clinician's schedule
    // opens visits); reception's patient page links nothing clinical.
    let patient_page = format!("/app/practices/{p}/patients/{pat}");
    let page = get_page(&http, &app, &patient_page, &clinician).await;
    assert!(page.contains(&format!("{patient_page}/chart")), "{page}");
    let page = get_page(&http, &app, &patient_page, &reception).await;
    for clinical in CLINICAL {
        assert!(
            !page.contains(clinical),
            "reception's patient page shows {clinical}"
        );
    }
    let appt = api_appointment(&app, &reception, p, &pat, a.user("clinician")).await;
    let day = {
        use domain::Clock as _;
        (app.clock.now().date_naive() + chrono::Duration::days(1)).to_string()
    };
    let c = a.user("clinician");
    let schedule = format!("/app/practices/{p}/schedule/day?clinician={c}&date={day}");
    let page = get_page(&http, &app, &schedule, &clinician).await;
    assert!(
        page.contains(&format!("{patient_page}/chart?appointment={appt}")),
        "{page}"
    );
    let page = get_page(&http, &app, &schedule, &reception).await;
    for clinical in CLINICAL {
        assert!(
            !page.contains(clinical),
            "reception's schedule shows {clinical}"
        );
    }
    // The step-up form is no practice page: anonymous → sign-in.
    let res = request(&http, &app, Method::POST, "/app/step-up", None)
        .form(&[("code", "000000")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/app/sign-in");
}

// issue 17 — a clinician off the care team asking for a chart gets the break-glass offer
// (403, nothing clinical read); a refused reason opens nothing (400); with a reason the
// window opens (the API's audit event) and every chart page shows the banner with its end,
// until it ends.
#[tokio::test]
async fn break_glass_opens_a_chart_with_a_banner() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let pat = world.a.patient.to_string();
    let owner = db.owner().await;
    let second = owner
        .create_user(
            &format!(
                "second.{}@test.example.invalid",
                uuid::Uuid::new_v4().simple()
            ),
            "Second Clinician",
            testkit::password_hash(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    owner
        .add_member(
            p,
            second,
            domain::RoleSet::from_iter([domain::Role::Clinician]),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    owner.close().await;
    let token = app.token(second).await;
    let care = app.token(world.a.user("clinician")).await;
    let (note, _) = api_note(&app, &care, p, &pat, "Care-team note.", true).await;
    let chart = format!("/app/practices/{p}/patients/{pat}/chart");
    let mut su = db.superuser_unsafe().await;
    let res = request(&http, &app, Method::GET, &chart, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let id = request_id(&res);
    let body = res.text().await.unwrap();
    assert!(body.contains("not on your care team"), "{body}");
    assert!(body.contains(&format!(
        "action=\"/app/practices/{p}/patients/{pat}/break-glass\""
    )));
    assert!(!body.contains("Care-team note."));
    assert_eq!(actions(&mut su, p, &id).await, ["patient.read"]);
    // The note itself is unknown to them.
    let note_page = format!("/app/practices/{p}/notes/{note}");
    let res = request(&http, &app, Method::GET, &note_page, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let bg = format!("/app/practices/{p}/patients/{pat}/break-glass");
    let grants = count(&mut su, "break_glass", p).await;
    for (reason, minutes) in [("", "30"), ("Emergency cover.", "0"), ("Cover.", "x")] {
        let res = post_form(
            &http,
            &app,
            &bg,
            &token,
            &[("reason", reason), ("minutes", minutes)],
        )
        .await;
        assert_eq!(
            res.status(),
            StatusCode::BAD_REQUEST,
            "{reason:?} {minutes:?}"
        );
        let body = res.text().await.unwrap();
        assert!(body.contains("aria-invalid=\"true\""), "{body}");
    }
    assert_eq!(count(&mut su, "break_glass", p).await, grants);
    let res = post_form(
        &http,
        &app,
        &bg,
        &token,
        &[
            ("reason", "Covering for an absent colleague."),
            ("minutes", "30"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let id = request_id(&res);
    assert_eq!(actions(&mut su, p, &id).await, ["break_glass.open"]);
    let ends = {
        use domain::Clock as _;
        (app.clock.now() + chrono::Duration::minutes(30))
            .format("%Y-%m-%d %H:%M UTC")
            .to_string()
    };
    for page in [
        chart.clone(),
        note_page.clone(),
        format!("{note_page}/history"),
        format!("{note_page}/verify"),
        format!("{note_page}/amend"),
    ] {
        let body = get_page(&http, &app, &page, &token).await;
        assert!(body.contains("id=\"break-glass-banner\""), "{page}: {body}");
        assert!(body.contains("role=\"alert\""), "{page}");
        assert!(body.contains(&ends), "{page}: ends at {ends}");
    }
    assert!(
        get_page(&http, &app, &chart, &token)
            .await
            .contains("Signed")
    );
    // The care-team clinician sees no banner; nor does anyone once the window has ended.
    let body = get_page(&http, &app, &chart, &care).await;
    assert!(!body.contains("break-glass-banner"));
    app.clock.advance(chrono::Duration::minutes(31));
    let token = app.token(second).await;
    let res = request(&http, &app, Method::GET, &chart, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "the window ended");
    assert!(!res.text().await.unwrap().contains("break-glass-banner"));
}

// issue 17 — two saves against the same version (ETag): the first wins, the second is refused
// (412) and shows both versions (the user's text kept in the form, the saved one beside it),
// and the saved content is not overwritten; saving over the newer version is an explicit
// choice. The autosave names the version in If-Match and answers the new one in ETag.
#[tokio::test]
async fn a_stale_save_shows_the_conflict_and_overwrites_nothing() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let pat = world.a.patient.to_string();
    let token = app.token(world.a.user("clinician")).await;
    let (note, v) = api_note(&app, &token, p, &pat, "First words.", false).await;
    let autosave = format!("/app/practices/{p}/notes/{note}/autosave");
    let save = |text: &'static str, if_match: String| {
        request(&http, &app, Method::POST, &autosave, Some(&token))
            .header("hx-request", "true")
            .header("if-match", if_match)
            .form(&[("subjective", text)])
            .send()
    };
    let res = save("Saved from the first window.", format!("\"{v}\""))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let next = v + 1;
    assert_eq!(res.headers()["etag"], format!("\"{next}\"").as_str());
    let body = res.text().await.unwrap();
    assert!(
        body.contains(&format!("Draft saved (version {next})")),
        "{body}"
    );
    assert!(body.contains(&format!(
        "id=\"note-version\" name=\"version\" value=\"{next}\""
    )));
    // The second window still holds version v.
    let res = save("Typed in the second window.", format!("\"{v}\""))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    let body = res.text().await.unwrap();
    assert!(body.contains("role=\"alert\""), "{body}");
    assert!(body.contains(&format!("based on version {v}")), "{body}");
    assert!(
        body.contains(&format!("Version {next} was saved by you")),
        "{body}"
    );
    assert!(body.contains("Saved from the first window."), "{body}");
    assert!(
        !body.contains("note-version"),
        "the stale form keeps its version"
    );
    let state = note_state(&app, &token, p, &note).await;
    assert_eq!(
        state["content"]["subjective"],
        "Saved from the first window."
    );
    assert_eq!(state["version"], next);
    // The same through the plain form: 412, the user's text still in the form.
    let page = format!("/app/practices/{p}/notes/{note}");
    let vs = v.to_string();
    let res = post_form(
        &http,
        &app,
        &page,
        &token,
        &[
            ("version", &vs),
            ("subjective", "Typed in the second window."),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    let body = res.text().await.unwrap();
    assert!(
        body.contains(">Typed in the second window.</textarea>"),
        "{body}"
    );
    assert!(body.contains("Saved from the first window."));
    assert_eq!(
        note_state(&app, &token, p, &note).await["content"]["subjective"],
        "Saved from the first window."
    );
    // No version at all: 428, nothing saved.
    let res = request(&http, &app, Method::POST, &autosave, Some(&token))
        .header("hx-request", "true")
        .form(&[("subjective", "No version.")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PRECONDITION_REQUIRED);
    // Saving over the newer version, chosen explicitly.
    let over = next.to_string();
    let res = post_form(
        &http,
        &app,
        &page,
        &token,
        &[
            ("version", &vs),
            ("overwrite", &over),
            ("subjective", "Typed in the second window."),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let state = note_state(&app, &token, p, &note).await;
    assert_eq!(
        state["content"]["subjective"],
        "Typed in the second window."
    );
    assert_eq!(state["version"], next + 1);
}

// issue 17 — signing needs the API's step-up: past the window the sign form answers the
// re-authentication form (401) carrying the change, nothing signed; a wrong code is refused
// (401) and signs nothing; the form repeats only note changes of this app (400 otherwise).
#[tokio::test]
async fn signing_asks_for_a_recent_second_factor() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let pat = world.a.patient.to_string();
    let token = app.token(world.a.user("clinician")).await;
    let (note, v) = api_note(&app, &token, p, &pat, "Ready to sign.", false).await;
    app.clock
        .advance(app.identity.step_up_window + chrono::Duration::seconds(1));
    let sign = format!("/app/practices/{p}/notes/{note}/sign");
    let vs = v.to_string();
    let res = post_form(&http, &app, &sign, &token, &[("version", &vs)]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body = res.text().await.unwrap();
    assert!(body.contains("action=\"/app/step-up\""), "{body}");
    assert!(
        body.contains(&format!("name=\"then\" value=\"{sign}\"")),
        "{body}"
    );
    assert!(
        body.contains(&format!("name=\"version\" value=\"{v}\"")),
        "{body}"
    );
    assert!(body.contains("autocomplete=\"one-time-code\""));
    let res = post_form(
        &http,
        &app,
        "/app/step-up",
        &token,
        &[("then", &sign), ("version", &vs), ("code", "000000")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains(&format!("value=\"{sign}\""))
    );
    for then in ["https://evil.test.example.invalid/", "/app/sign-out"] {
        let res = post_form(
            &http,
            &app,
            "/app/step-up",
            &token,
            &[("then", then), ("code", "000000")],
        )
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{then}");
    }
    assert_eq!(note_state(&app, &token, p, &note).await["status"], "draft");
}

// issue 17 — a cross-site POST to each chart form (visit, note, break-glass, save, autosave,
// sign, amend, addendum, step-up) is refused with 403 before any handler runs; nothing changed.
#[tokio::test]
async fn cross_site_posts_on_chart_forms_change_nothing() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = world.a.id;
    let pat = world.a.patient.to_string();
    let token = app.token(world.a.user("clinician")).await;
    let (draft, v) = api_note(&app, &token, p, &pat, "Draft.", false).await;
    let (signed, sv) = api_note(&app, &token, p, &pat, "Signed.", true).await;
    let (vs, svs) = (v.to_string(), sv.to_string());
    let mut su = db.superuser_unsafe().await;
    let before = (
        note_state(&app, &token, p, &draft).await,
        note_state(&app, &token, p, &signed).await,
    );
    let events = count(&mut su, "audit_event", p).await;
    let tables = [
        "visit",
        "clinical_note",
        "clinical_note_version",
        "break_glass",
    ];
    let mut rows = Vec::new();
    for t in tables {
        rows.push(count(&mut su, t, p).await);
    }
    let forged: &[(&str, &str)] = &[
        ("version", &vs),
        ("subjective", "Forged."),
        ("reason", "Forged."),
        ("text", "Forged."),
        ("addendum_reason", "Forged."),
        ("template", "free"),
        ("code", "000000"),
    ];
    let posts = [
        format!("/app/practices/{p}/patients/{pat}/visits"),
        format!("/app/practices/{p}/patients/{pat}/notes"),
        format!("/app/practices/{p}/patients/{pat}/break-glass"),
        format!("/app/practices/{p}/notes/{draft}"),
        format!("/app/practices/{p}/notes/{draft}/autosave"),
        format!("/app/practices/{p}/notes/{draft}/sign"),
        format!("/app/practices/{p}/notes/{signed}/amend"),
        format!("/app/practices/{p}/notes/{signed}/addenda"),
        "/app/step-up".to_owned(),
    ];
    for path in &posts {
        for (site, origin) in [
            (Some("cross-site"), None),
            (Some("same-site"), None),
            (None, Some("https://evil.test.example.invalid")),
            (None, None),
        ] {
            let mut r = http
                .post(app.url(path))
                .header(COOKIE, cookie(&token))
                .header("hx-request", "true")
                .header("if-match", format!("\"{svs}\""))
                .form(forged);
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
                "{path} {site:?} {origin:?}"
            );
            assert!(res.text().await.unwrap().contains("CSRF-0001"));
        }
    }
    for (t, n) in tables.iter().zip(rows) {
        assert_eq!(count(&mut su, t, p).await, n, "{t}");
    }
    assert_eq!(
        count(&mut su, "audit_event", p).await,
        events,
        "no handler ran"
    );
    let after = (
        note_state(&app, &token, p, &draft).await,
        note_state(&app, &token, p, &signed).await,
    );
    assert_eq!(after, before);
}

/// The caller's sessions as the API lists them (`None` when the token no longer works).
async fn api_sessions(app: &TestApp, token: &str) -> Option<Vec<serde_json::Value>> {
    let res = client()
        .get(app.url("/api/v1/auth/sessions"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    if res.status() == StatusCode::UNAUTHORIZED {
        return None;
    }
    assert_eq!(res.status(), StatusCode::OK);
    Some(res.json().await.unwrap())
}

/// The public id of the session holding `token`.
async fn session_id_of(app: &TestApp, token: &str) -> String {
    let list = api_sessions(app, token).await.unwrap();
    let me = list.iter().find(|s| s["current"] == true).unwrap();
    me["session_id"].as_str().unwrap().to_owned()
}

// issue 17 — My account: anonymous → sign-in, password-only → the second factor, for every
// account route; a signed-in user sees their sessions (this one marked), their second
// factors and the password form; the header links to it.
#[tokio::test]
async fn the_account_page_needs_a_completed_second_factor() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let user = world.a.user("reception");
    let token = app.token(user).await;
    let other = app.token(user).await;
    let half = app.password_only_token(user).await;
    let other_id = session_id_of(&app, &other).await;
    let routes = [
        (Method::GET, "/app/account".to_owned()),
        (Method::POST, "/app/account/sessions/end-others".to_owned()),
        (
            Method::POST,
            format!("/app/account/sessions/{other_id}/end"),
        ),
        (Method::POST, "/app/account/password".to_owned()),
    ];
    for (method, path) in &routes {
        for (who, tok, to) in [
            ("anonymous", None, "/app/sign-in"),
            (
                "password only",
                Some(half.as_str()),
                "/app/sign-in/second-factor",
            ),
        ] {
            let res = request(&http, &app, method.clone(), path, tok)
                .form(&[
                    ("current_password", testkit::PASSWORD),
                    ("new_password", "a whole new passphrase 4821"),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::SEE_OTHER, "{who} {path}");
            assert_eq!(res.headers()[LOCATION], to, "{who} {path}");
        }
    }
    // Nothing changed: both full sessions still work, the password is the old one.
    assert!(api_sessions(&app, &other).await.is_some());
    let body = get_page(&http, &app, "/app/account", &token).await;
    assert!(body.contains("<h1>My account</h1>"), "{body}");
    assert_eq!(body.matches("(this session)").count(), 1, "{body}");
    assert!(body.contains(&format!("/app/account/sessions/{other_id}/end")));
    assert!(body.contains("End all other sessions"));
    // The test users' sessions are made without enrolling: the page says what the store has.
    assert!(body.contains("Authenticator app: not set up"), "{body}");
    assert!(body.contains("Passkeys: 0"));
    assert!(body.contains("Recovery codes left: 0"));
    assert!(body.contains("autocomplete=\"current-password\""));
    // The step-up field is asked for only when the second factor is not recent.
    assert!(!body.contains("autocomplete=\"one-time-code\""));
    let home = get_page(&http, &app, "/app", &token).await;
    assert!(home.contains("<a href=\"/app/account\">"), "{home}");
}

// issue 17 — ending one session really ends it (its token gets 401 from the API); "end all
// others" keeps the current one; ending the current one signs out; a cross-site post is
// refused with nothing changed; another user's session is not found.
#[tokio::test]
async fn sessions_are_ended_from_the_account_page() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let user = world.a.user("clinician");
    let me = app.token(user).await;
    let laptop = app.token(user).await;
    let phone = app.token(user).await;
    let tablet = app.token(user).await;
    let stranger = app.token(world.b.user("clinician")).await;
    let laptop_id = session_id_of(&app, &laptop).await;
    let stranger_id = session_id_of(&app, &stranger).await;
    // Cross-site: refused before anything runs.
    for path in [
        "/app/account/sessions/end-others".to_owned(),
        format!("/app/account/sessions/{laptop_id}/end"),
    ] {
        let res = http
            .post(app.url(&path))
            .header(COOKIE, cookie(&me))
            .header("sec-fetch-site", "cross-site")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
    for t in [&me, &laptop, &phone, &tablet] {
        assert!(api_sessions(&app, t).await.is_some(), "nothing changed");
    }
    // Another user's session: not found, still alive.
    let res = post_form(
        &http,
        &app,
        &format!("/app/account/sessions/{stranger_id}/end"),
        &me,
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(api_sessions(&app, &stranger).await.is_some());
    // One session.
    let res = post_form(
        &http,
        &app,
        &format!("/app/account/sessions/{laptop_id}/end"),
        &me,
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/app/account?done=session");
    assert!(api_sessions(&app, &laptop).await.is_none(), "ended");
    assert!(api_sessions(&app, &phone).await.is_some());
    // All others.
    let res = post_form(&http, &app, "/app/account/sessions/end-others", &me, &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(api_sessions(&app, &phone).await.is_none());
    assert!(api_sessions(&app, &tablet).await.is_none());
    let left = api_sessions(&app, &me).await.unwrap();
    assert_eq!(left.len(), 1, "the current one stays");
    let body = get_page(&http, &app, "/app/account?done=others", &me).await;
    assert!(body.contains("All your other sessions were ended."));
    assert!(!body.contains("End all other sessions"));
    assert!(api_sessions(&app, &stranger).await.is_some());
    // The current one: signs out.
    let me_id = session_id_of(&app, &me).await;
    let res = post_form(
        &http,
        &app,
        &format!("/app/account/sessions/{me_id}/end"),
        &me,
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/app/sign-in");
    assert!(api_sessions(&app, &me).await.is_none());
}

async fn api_login_status(app: &TestApp, email: &str, password: &str) -> StatusCode {
    client()
        .post(app.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

// issue 17 — the password change: a wrong current password is shown beside its field with
// nothing changed; a second factor older than the step-up window is asked for in the form;
// a cross-site post is refused; the right one changes it and ends the other sessions.
#[tokio::test]
async fn the_password_is_changed_from_the_account_page() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let user = world.a.user("reception");
    let email = crate::util::email_of(&db, user).await;
    let new = "a whole new passphrase 4821";
    let me = app.token(user).await;
    let other = app.token(user).await;
    let wrong = [
        ("current_password", "not-the-password-at-all"),
        ("new_password", new),
    ];
    let res = post_form(&http, &app, "/app/account/password", &me, &wrong).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("id=\"current_password-error\">The current password is incorrect"),
        "{body}"
    );
    assert!(body.contains("aria-describedby=\"current_password-error\""));
    assert!(!body.contains(new), "a password is never echoed");
    let right = [
        ("current_password", testkit::PASSWORD),
        ("new_password", new),
    ];
    let res = http
        .post(app.url("/app/account/password"))
        .header(COOKIE, cookie(&me))
        .header("sec-fetch-site", "cross-site")
        .form(&right)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(api_sessions(&app, &other).await.is_some());
    assert_eq!(
        api_login_status(&app, &email, testkit::PASSWORD).await,
        StatusCode::OK,
        "nothing changed"
    );
    // A stale second factor: the form asks for a code, nothing changed.
    app.clock
        .advance(app.identity.step_up_window + chrono::Duration::seconds(1));
    let res = post_form(&http, &app, "/app/account/password", &me, &right).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body = res.text().await.unwrap();
    assert!(body.contains("autocomplete=\"one-time-code\""), "{body}");
    assert_eq!(
        api_login_status(&app, &email, testkit::PASSWORD).await,
        StatusCode::OK
    );
    let me = app.token(user).await;
    let other = app.token(user).await;
    let res = post_form(&http, &app, "/app/account/password", &me, &right).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/app/account?done=password");
    assert!(api_sessions(&app, &other).await.is_none(), "others ended");
    assert!(api_sessions(&app, &me).await.is_some(), "this one stays");
    assert_eq!(
        api_login_status(&app, &email, testkit::PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(api_login_status(&app, &email, new).await, StatusCode::OK);
}

// issue 17 — the header's practice switcher: a user of two practices gets links (keyboard
// reachable, the current practice marked) to each practice's first page for their roles
// there, and the other practice opens; a user of one practice sees just its name.
#[tokio::test]
async fn a_user_of_two_practices_switches_in_the_header() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let (a, b) = (world.a.id, world.b.id);
    let user = world.a.user("clinician");
    let owner = db.owner().await;
    owner
        .add_member(
            b,
            user,
            domain::RoleSet::from_iter([domain::Role::Owner]),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    owner.close().await;
    let token = app.token(user).await;
    let body = get_page(&http, &app, &format!("/app/practices/{a}/schedule"), &token).await;
    assert!(
        body.contains("<nav class=\"where switcher\" aria-label=\"Switch practice\">"),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "<a href=\"/app/practices/{a}/patients\" aria-current=\"true\">"
        )),
        "{body}"
    );
    let to_b = format!("/app/practices/{b}/members");
    assert!(body.contains(&format!("<a href=\"{to_b}\">")), "{body}");
    assert_eq!(body.matches("aria-current=\"true\"").count(), 1);
    let there = get_page(&http, &app, &to_b, &token).await;
    assert!(
        there.contains(&format!("<a href=\"{to_b}\" aria-current=\"true\">")),
        "{there}"
    );
    // One practice: the name only, no switcher.
    let single = app.token(world.a.user("reception")).await;
    let body = get_page(
        &http,
        &app,
        &format!("/app/practices/{a}/patients"),
        &single,
    )
    .await;
    assert!(body.contains("<p class=\"where\"><span class=\"label\">Practice</span>"));
    assert!(!body.contains("Switch practice"));
    assert!(!body.contains(&format!("/app/practices/{b}/")));
}
