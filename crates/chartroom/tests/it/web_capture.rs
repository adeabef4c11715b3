//! Issue 18, over real HTTP: the visit page (consent and recorder), its chart panels, the
//! patient-facing status screen and the scribe policy page. Each in the authorization matrix
//! with the API's audit events; the live indicator rendered from the server's state on the
//! first paint of every practice page (clinicians only); refused forms change nothing.

use reqwest::header::{COOKIE, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::{TestApp, World};

use crate::capture_api::{fx, tone_wav};

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

async fn page(
    http: &reqwest::Client,
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    form: &[(&str, &str)],
    htmx: bool,
) -> (StatusCode, String, Option<String>, uuid::Uuid) {
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
    let res = r.send().await.unwrap();
    let status = res.status();
    let location = res
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let id = res.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (status, res.text().await.unwrap(), location, id)
}

async fn actions(su: &mut sqlx::PgConnection, w: &World, id: uuid::Uuid) -> Vec<String> {
    let mut a: Vec<String> = sqlx::query_scalar(
        "select action || ':' || outcome from audit_event where practice_id = $1 and request_id = $2",
    )
    .bind(w.a.id)
    .bind(id)
    .fetch_all(su)
    .await
    .unwrap();
    a.sort();
    a.dedup();
    a
}

// issue 18 — the visit page, its panels, the status screen and the scribe policy page:
// anonymous → sign-in, another practice → 404, wrong role → 403 (audited), right role → 200
// with the API's audit events; consent recorded and withdrawn through the page.
// req: SCR-02 — the first paint of every practice page carries the live state
#[tokio::test]
async fn capture_pages_matrix() {
    let f = fx().await;
    let http = client();
    let app = &f.app;
    let w = &f.w;
    let mut su = f.db.superuser_unsafe().await;
    let tok = |role: &'static str, b: bool| {
        let user = if b { w.b.user(role) } else { w.a.user(role) };
        async move { app.token(user).await }
    };
    let clin = tok("clinician", false).await;
    let rec = tok("reception", false).await;
    let own = tok("owner", false).await;
    let b_clin = tok("clinician", true).await;
    let b_own = tok("owner", true).await;
    let visit = f.visit().await;
    let p = w.a.id;
    let visit_page = format!("/app/practices/{p}/visits/{visit}");

    // Anonymous → sign-in.
    let (s, _, loc, _) = page(&http, app, Method::GET, &visit_page, None, &[], false).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(loc.unwrap().starts_with("/app/sign-in"));
    // Another practice's clinician → 404; reception → 403, audited.
    let (s, ..) = page(
        &http,
        app,
        Method::GET,
        &visit_page,
        Some(&b_clin),
        &[],
        false,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _, id) = page(&http, app, Method::GET, &visit_page, Some(&rec), &[], false).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(actions(&mut su, w, id).await, ["access.denied:denied"]);
    // The clinician: the page, no consent yet, the recorder, the indicator hidden.
    let (s, body, _, id) = page(
        &http,
        app,
        Method::GET,
        &visit_page,
        Some(&clin),
        &[],
        false,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("id=\"consent-none\""));
    assert!(body.contains("id=\"recorder\""));
    assert!(body.contains("id=\"rec-indicator\""));
    assert!(body.contains("data-state=\"none\" data-elapsed-ms=\"0\" hidden"));
    assert!(!body.contains("<script>"), "no inline script");
    assert!(
        actions(&mut su, w, id)
            .await
            .contains(&"patient.read:success".to_owned())
    );

    // Consent through the page: a refused form changes nothing; a good one is audited.
    let consents = format!("{visit_page}/consents");
    let (s, body, ..) = page(
        &http,
        app,
        Method::POST,
        &consents,
        Some(&clin),
        &[("consented_by", "neighbour"), ("method", "verbal")],
        false,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("consented_by: must be"));
    let (s, ..) = page(
        &http,
        app,
        Method::POST,
        &consents,
        Some(&rec),
        &[("consented_by", "patient"), ("method", "verbal")],
        false,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, loc, id) = page(
        &http,
        app,
        Method::POST,
        &consents,
        Some(&clin),
        &[("consented_by", "guardian"), ("method", "written")],
        false,
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(loc.unwrap(), format!("{visit_page}?done=consent"));
    assert_eq!(
        actions(&mut su, w, id).await,
        ["recording_consent.record:success"]
    );
    // Cross-site post refused before any handler.
    let res = http
        .post(app.url(&consents))
        .header(
            COOKIE,
            format!("{}={clin}", server::extract::SESSION_COOKIE),
        )
        .header("sec-fetch-site", "cross-site")
        .form(&[("consented_by", "patient"), ("method", "verbal")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Start recording through the API (as recorder.js does): every practice page of the
    // clinician shows the indicator at first paint; reception's pages have none.
    let base = format!("/api/v1/practices/{p}");
    let (s, c) = crate::util::call(
        app,
        Method::POST,
        &format!("{base}/visits/{visit}/captures"),
        Some(&clin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let capture = c["capture_id"].as_str().unwrap().to_owned();
    let (s, _) =
        crate::capture_api::put_chunk(app, &base, &clin, &capture, 0, &tone_wav(1000, 0)).await;
    assert_eq!(s, StatusCode::CREATED);
    // SCR-02: the first paint of every practice page carries the live state.
    for path in [
        format!("/app/practices/{p}/patients"),
        format!("/app/practices/{p}/schedule"),
        format!("/app/practices/{p}/patients/{}/chart", w.a.patient),
        visit_page.clone(),
    ] {
        let (s, body, ..) = page(&http, app, Method::GET, &path, Some(&clin), &[], false).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert!(body.contains("id=\"rec-indicator\""), "{path}");
        assert!(body.contains("data-state=\"live\""), "{path}");
        assert!(body.contains(">Recording<"), "{path}");
    }
    let (_, body, ..) = page(
        &http,
        app,
        Method::GET,
        &format!("/app/practices/{p}/patients"),
        Some(&rec),
        &[],
        false,
    )
    .await;
    assert!(
        !body.contains("rec-indicator"),
        "reception has no indicator"
    );

    // Panels (htmx only): notes and perio, audited as the API's lists.
    for (panel, action) in [
        ("notes", "note.list:success"),
        ("perio", "perio_exam.list:success"),
    ] {
        let path = format!("{visit_page}/panels/{panel}");
        let (s, ..) = page(&http, app, Method::GET, &path, Some(&clin), &[], false).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "fragments need htmx");
        let (s, ..) = page(&http, app, Method::GET, &path, Some(&rec), &[], true).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, ..) = page(&http, app, Method::GET, &path, Some(&b_clin), &[], true).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, body, _, id) = page(&http, app, Method::GET, &path, Some(&clin), &[], true).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(actions(&mut su, w, id).await, [action.to_owned()]);
    }

    // The status screen: no patient data, audited as a capture read.
    let status = format!("/app/practices/{p}/captures/{capture}/status");
    let (s, ..) = page(&http, app, Method::GET, &status, Some(&rec), &[], false).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, ..) = page(&http, app, Method::GET, &status, Some(&b_clin), &[], false).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, body, _, id) = page(&http, app, Method::GET, &status, Some(&clin), &[], false).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains(">Recording<"));
    assert!(!body.contains(&w.a.patient.to_string()));
    assert!(!body.contains("class=\"who\""), "no chrome, no names");
    assert_eq!(actions(&mut su, w, id).await, ["capture.read:success"]);

    // Withdrawal through the page: the capture stops, its audio goes, the indicator too.
    let (_, consents_json) = crate::util::call(
        app,
        Method::GET,
        &format!("{base}/visits/{visit}/consents"),
        Some(&clin),
        None,
    )
    .await;
    let consent = consents_json[0]["consent_id"].as_str().unwrap().to_owned();
    let (s, _, loc, id) = page(
        &http,
        app,
        Method::POST,
        &format!("{visit_page}/consents/{consent}/withdraw"),
        Some(&clin),
        &[],
        false,
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(loc.unwrap(), format!("{visit_page}?done=withdrawn"));
    assert_eq!(
        actions(&mut su, w, id).await,
        [
            "capture.audio_purge:success",
            "capture.stop:success",
            "recording_consent.withdraw:success"
        ]
    );
    let (_, body, ..) = page(
        &http,
        app,
        Method::GET,
        &visit_page,
        Some(&clin),
        &[],
        false,
    )
    .await;
    assert!(body.contains("data-state=\"none\""));
    assert!(body.contains("consent_withdrawn"));

    // The scribe policy page: owners and admins.
    let policy = format!("/app/practices/{p}/scribe");
    let (s, ..) = page(&http, app, Method::GET, &policy, Some(&clin), &[], false).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, ..) = page(&http, app, Method::GET, &policy, Some(&b_own), &[], false).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, body, ..) = page(&http, app, Method::GET, &policy, Some(&own), &[], false).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("value=\"30\""));
    let (s, body, ..) = page(
        &http,
        app,
        Method::POST,
        &policy,
        Some(&own),
        &[
            ("consent_rule", "one_party"),
            ("audio_retention_days", "9999"),
            ("max_capture_seconds", "600"),
        ],
        false,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("audio_retention_days: must be 0 to 3650"));
    let (s, _, _, id) = page(
        &http,
        app,
        Method::POST,
        &policy,
        Some(&own),
        &[
            ("consent_rule", "one_party"),
            ("audio_retention_days", "14"),
            ("max_capture_seconds", "600"),
        ],
        false,
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(
        actions(&mut su, w, id).await,
        ["scribe_policy.update:success"]
    );
    let (_, v) = crate::util::call(
        app,
        Method::GET,
        &format!("{base}/scribe-policy"),
        Some(&rec),
        None,
    )
    .await;
    assert_eq!(
        v,
        json!({"consent_rule": "one_party", "audio_retention_days": 14, "max_capture_seconds": 600})
    );
}
