//! Issue 17, over real HTTP: the web app's pages (`/app`) served beside the API. Every page
//! route in the authorization matrix; cross-site state changes refused with nothing changed;
//! the security headers and CSP on every response; the template lint.

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION};
use reqwest::{Method, StatusCode};
use testkit::{TestApp, TestDb, World};

/// An HTTPS client that does not follow redirects (so a test sees them).
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

fn cookie(token: &str) -> String {
    format!("{}={token}", server::extract::SESSION_COOKIE)
}

/// A page request as a browser sends it from one of Chartroom's own pages: the session
/// cookie, and `Sec-Fetch-Site: same-origin` on state changes.
fn request(
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

/// A page route for the matrix: method, path, form body, whether it is an htmx fragment.
struct Route {
    method: Method,
    path: String,
    form: Option<&'static [(&'static str, &'static str)]>,
    fragment: bool,
}

async fn send(
    http: &reqwest::Client,
    app: &TestApp,
    route: &Route,
    token: Option<&str>,
) -> reqwest::Response {
    let mut r = request(http, app, route.method.clone(), &route.path, token);
    if let Some(f) = route.form {
        r = r.form(f);
    }
    if route.fragment {
        r = r.header("hx-request", "true");
    }
    r.send().await.unwrap()
}

// issue 17 — every practice page: anonymous → the sign-in page, password only → the second
// factor, another practice → 404, wrong role → 403, right role → 200; the page shows
// demographics only, and a denial leaves its audit row.
#[tokio::test]
async fn page_routes_authorization_matrix() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let a = &world.a;
    let p = a.id;
    let routes = [
        Route {
            method: Method::GET,
            path: format!("/app/practices/{p}/patients"),
            form: None,
            fragment: false,
        },
        Route {
            method: Method::POST,
            path: format!("/app/practices/{p}/patients/search"),
            form: Some(&[("q", "zz")]),
            fragment: false,
        },
        Route {
            method: Method::POST,
            path: format!("/app/practices/{p}/patients/search/rows"),
            form: Some(&[("q", "zz")]),
            fragment: true,
        },
    ];
    let reception = app.token(a.user("reception")).await;
    let clinician = app.token(a.user("clinician")).await;
    let owner = app.token(a.user("owner")).await;
    let admin = app.token(a.user("admin")).await;
    let other = app.token(world.b.user("reception")).await;
    let nobody = app.token(world.nobody).await;
    let half = app.password_only_token(a.user("reception")).await;
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
        for (who, token) in [("reception", &reception), ("clinician", &clinician)] {
            let res = send(&http, &app, route, Some(token)).await;
            assert_eq!(res.status(), StatusCode::OK, "{who} {what}");
            let id = request_id(&res);
            if route.method == Method::GET {
                // Every patient shown is audited in the read's transaction.
                assert_eq!(
                    audit(&mut su, p, &id).await,
                    [("patient.list".to_owned(), "success".to_owned())],
                    "{who} {what}"
                );
            }
            let body = res.text().await.unwrap();
            for clinical in [
                "/notes", "/perio", "/visits", "/chart", ">Chart<", "Notes", "Perio", "Clinical",
            ] {
                assert!(!body.contains(clinical), "{who} {what} shows {clinical}");
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
    // opens (none yet for an owner).
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
    let home = request(&http, &app, Method::GET, "/app", Some(&owner))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!home.contains("/patients"));
}

fn request_id(res: &reqwest::Response) -> String {
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
    let cases: Vec<(&str, Option<&str>, StatusCode)> = vec![
        ("/app/sign-in", None, StatusCode::OK),
        ("/app", None, StatusCode::SEE_OTHER),
        ("/app", Some(&reception), StatusCode::OK),
        (&patients, Some(&reception), StatusCode::OK),
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
