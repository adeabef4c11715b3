//! Issue 17, over real HTTP: passkeys and recovery codes in the web app (`/app`). The passkey
//! ceremonies run through the pages' JSON routes with the software authenticator the API's
//! own passkey tests use (`SoftPasskey`); the authorization matrix of every new route;
//! cross-site posts refused with nothing changed; a recovery code works once; bad JSON is
//! refused clearly with nothing changed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use domain::UserId;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, RequestChallengeResponse, Url, WebauthnAuthenticator as _,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::web_pages::{client, get_page, post_form, request};

fn origin(app: &TestApp) -> Url {
    Url::parse(&format!("https://localhost:{}", app.addr.port())).unwrap()
}

/// A post to a page route from a page of `site` (the `Sec-Fetch-Site` the browser sends),
/// with the session cookie of `token`.
fn post_from(
    http: &reqwest::Client,
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    site: &str,
) -> reqwest::RequestBuilder {
    let mut r = http.post(app.url(path)).header("sec-fetch-site", site);
    if let Some(t) = token {
        r = r.header(COOKIE, format!("{}={t}", server::extract::SESSION_COOKIE));
    }
    r
}

/// A JSON post to a page route as `passkey.js` sends it (`fetch`, same origin unless `site`
/// says otherwise).
async fn post_json(
    http: &reqwest::Client,
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    body: &Value,
    site: &str,
) -> reqwest::Response {
    post_from(http, app, path, token, site)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Status and JSON body of a same-origin JSON post.
async fn json_call(
    http: &reqwest::Client,
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (StatusCode, Value, Option<String>) {
    let res = post_json(http, app, path, token, body, "same-origin").await;
    let status = res.status();
    let token = new_token(&res);
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body, token)
}

/// The session token a response hands the browser, if any.
fn new_token(res: &reqwest::Response) -> Option<String> {
    let set = res.headers().get("set-cookie")?.to_str().ok()?;
    let first = set.split(';').next()?;
    let (_, token) = first.split_once('=')?;
    (!token.is_empty()).then(|| token.to_owned())
}

/// Registers a passkey through the account pages' ceremony on `token`'s session: status, body
/// and new token of `…/finish`.
async fn register(
    http: &reqwest::Client,
    app: &TestApp,
    token: &str,
    key: &mut SoftPasskey,
    name: &str,
) -> (StatusCode, Value, Option<String>) {
    let (s, begin, _) = json_call(
        http,
        app,
        "/app/account/passkeys/begin",
        Some(token),
        &json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{begin}");
    let options: CreationChallengeResponse =
        serde_json::from_value(begin["options"].clone()).unwrap();
    let credential = key.do_registration(origin(app), options).unwrap();
    json_call(
        http,
        app,
        "/app/account/passkeys/finish",
        Some(token),
        &json!({"challenge_id": begin["challenge_id"], "name": name, "credential": credential}),
    )
    .await
}

/// A user's first second factor, a passkey registered through the pages: the recovery codes
/// shown once.
async fn enroll(
    http: &reqwest::Client,
    app: &TestApp,
    user: UserId,
    key: &mut SoftPasskey,
) -> Vec<String> {
    let t0 = app.password_only_token(user).await;
    let (s, done, t1) = register(http, app, &t0, key, "Laptop").await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["next"], "/app");
    assert!(t1.is_some_and(|t| t != t0), "a new session cookie");
    done["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

/// The finish body of a passwordless sign-in through the pages with the user's discoverable
/// credential `credential_id` (the test plays the discoverable authenticator's part, as the
/// API's passkey tests do: it names the credential and returns the user handle).
async fn passwordless(
    http: &reqwest::Client,
    app: &TestApp,
    key: &mut SoftPasskey,
    credential_id: &str,
    user: UserId,
) -> Value {
    let (s, begin, _) = json_call(http, app, "/app/sign-in/passkey/begin", None, &json!({})).await;
    assert_eq!(s, StatusCode::OK, "{begin}");
    let mut options = begin["options"].clone();
    options["publicKey"]["allowCredentials"] = json!([{"type": "public-key", "id": credential_id}]);
    let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    let credential = key.do_authentication(origin(app), options).unwrap();
    let mut credential = serde_json::to_value(credential).unwrap();
    credential["response"]["userHandle"] = json!(URL_SAFE_NO_PAD.encode(user.as_uuid().as_bytes()));
    json!({"challenge_id": begin["challenge_id"], "credential": credential})
}

/// The finish body of a passkey as the second factor (or step-up) on `token`'s session.
async fn second_factor(
    http: &reqwest::Client,
    app: &TestApp,
    token: &str,
    key: &mut SoftPasskey,
) -> Value {
    let (s, begin, _) = json_call(
        http,
        app,
        "/app/sign-in/second-factor/passkey/begin",
        Some(token),
        &json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{begin}");
    let options: RequestChallengeResponse =
        serde_json::from_value(begin["options"].clone()).unwrap();
    let credential = key.do_authentication(origin(app), options).unwrap();
    json!({"challenge_id": begin["challenge_id"], "credential": credential})
}

/// The user's credential ids, as the API lists them (a fresh full session of the test's).
async fn credential_ids(app: &TestApp, user: UserId) -> Vec<String> {
    let token = app.token(user).await;
    let (s, list) = crate::util::call(
        app,
        Method::GET,
        "/api/v1/auth/passkeys",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["credential_id"].as_str().unwrap().to_owned())
        .collect()
}

/// "Recovery codes left: N" as My account shows it.
async fn codes_left(http: &reqwest::Client, app: &TestApp, user: UserId) -> String {
    let token = app.token(user).await;
    let body = get_page(http, app, "/app/account", &token).await;
    let at = body.find("Recovery codes left: ").unwrap();
    body[at..].split('<').next().unwrap().to_owned()
}

/// The details of `user`'s account events (`action`, `outcome`) on the installation's log,
/// oldest first.
async fn account_events(db: &TestDb, user: UserId, action: &str, outcome: &str) -> Vec<Value> {
    let mut su = db.superuser_unsafe().await;
    sqlx::query_scalar(
        "select details from audit_event
          where practice_id = '00000000-0000-0000-0000-000000000000'::uuid
            and actor_id = $1 and action = $2 and outcome = $3
          order by occurred_at",
    )
    .bind(user)
    .bind(action)
    .bind(outcome)
    .fetch_all(&mut su)
    .await
    .unwrap()
}

fn location(res: &reqwest::Response) -> &str {
    res.headers()[LOCATION].to_str().unwrap()
}

// issue 17 — passkeys through the pages: a first passkey at enrollment (recovery codes once,
// new cookie), passwordless sign-in (a full session at once; a replayed ceremony and an
// unknown passkey get the API's one generic answer), a passkey as the second factor (the
// password-only cookie stops working), a second passkey on My account, listed, then removed.
#[tokio::test]
async fn passkeys_sign_in_and_are_managed_through_the_pages() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let user = w.a.user("clinician");
    let mut key = SoftPasskey::new(true);
    let codes = enroll(&http, &app, user, &mut key).await;
    assert_eq!(codes.len(), 10);
    let ids = credential_ids(&app, user).await;
    assert_eq!(ids.len(), 1);

    // Passwordless: a full session at once.
    let finish = passwordless(&http, &app, &mut key, &ids[0], user).await;
    let (s, body, token) =
        json_call(&http, &app, "/app/sign-in/passkey/finish", None, &finish).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["next"], "/app");
    let token = token.unwrap();
    let account = get_page(&http, &app, "/app/account", &token).await;
    assert!(account.contains(">Laptop<"), "{account}");
    // The ceremony was single use: a replay is the generic refusal, no cookie.
    let (s, body, again) =
        json_call(&http, &app, "/app/sign-in/passkey/finish", None, &finish).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "AUTH-0002");
    assert_eq!(
        body["error"]["message"],
        "the email or password is incorrect"
    );
    assert!(again.is_none());
    // An unknown passkey (made for this site, never stored) answers exactly the same.
    let mut stranger = SoftPasskey::new(true);
    let other = w.b.user("clinician");
    let t = app.token(other).await;
    let (s, begin, _) = json_call(
        &http,
        &app,
        "/app/account/passkeys/begin",
        Some(&t),
        &json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{begin}");
    let options: CreationChallengeResponse =
        serde_json::from_value(begin["options"].clone()).unwrap();
    let never_stored = stranger.do_registration(origin(&app), options).unwrap();
    let unknown = passwordless(&http, &app, &mut stranger, &never_stored.id, other).await;
    let (s, body2, _) = json_call(&http, &app, "/app/sign-in/passkey/finish", None, &unknown).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body2, body, "the same answer whatever was wrong");

    // After a password: the passkey as the second factor; the password-only cookie is gone.
    let half = app.password_only_token(user).await;
    let page = get_page(&http, &app, "/app/sign-in/second-factor", &half).await;
    assert!(page.contains("data-passkey=\"get\""), "{page}");
    assert!(page.contains("Use a recovery code"), "{page}");
    assert!(
        !page.contains("name=\"code\""),
        "no authenticator app: no code form"
    );
    let finish = second_factor(&http, &app, &half, &mut key).await;
    let (s, body, full) = json_call(
        &http,
        &app,
        "/app/sign-in/second-factor/passkey/finish",
        Some(&half),
        &finish,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let full = full.unwrap();
    get_page(&http, &app, "/app/account", &full).await;
    let res = request(&http, &app, Method::GET, "/app/account", Some(&half))
        .send()
        .await
        .unwrap();
    assert_eq!(
        location(&res),
        "/app/sign-in",
        "the old cookie no longer works"
    );

    // A second passkey on My account (fresh second factor): no new recovery codes.
    let mut phone = SoftPasskey::new(true);
    let (s, body, renewed) = register(&http, &app, &full, &mut phone, "Phone").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["next"], "/app/account?done=passkey");
    assert!(body["recovery_codes"].is_null());
    let full = renewed.unwrap();
    let account = get_page(&http, &app, "/app/account?done=passkey", &full).await;
    assert!(account.contains("Your new passkey was added."));
    assert!(account.contains(">Phone<") && account.contains(">Laptop<"));
    assert!(account.contains("Passkeys: 2"));
    // Removed again.
    let ids = credential_ids(&app, user).await;
    let res = post_form(
        &http,
        &app,
        &format!("/app/account/passkeys/{}/remove", ids[1]),
        &full,
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/app/account?done=passkey-removed");
    assert_eq!(credential_ids(&app, user).await, vec![ids[0].clone()]);
    // The API's audit events: two enrollments, one removal.
    let enrolled = account_events(&db, user, "mfa.enroll", "success").await;
    assert_eq!(enrolled.len(), 2);
    assert!(enrolled.iter().all(|d| d["method"] == "passkey"));
    let removed = account_events(&db, user, "mfa.remove", "success").await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["method"], "passkey");
    // The replay and the unknown passkey: recorded on the installation's log, no user named.
    let mut su = db.superuser_unsafe().await;
    let denied: i64 = sqlx::query_scalar(
        "select count(*) from audit_event
          where practice_id = '00000000-0000-0000-0000-000000000000'::uuid
            and actor_id is null and action = 'auth.sign_in' and outcome = 'denied'
            and details->>'method' = 'hwk'",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(denied, 2);
}

// issue 17 — the authorization matrix of the passkey and recovery-code routes: anonymous →
// sign-in (the public passwordless routes excepted); a password-only session → the second
// factor for My account's changes; a stale second factor → 401 with the step-up asked for
// and nothing changed; someone else's passkey → 404; the only second factor → 409; a full,
// fresh session → done. (No role applies: these are the user's own account.)
#[tokio::test]
async fn passkey_routes_authorization_matrix() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let user = w.a.user("reception");
    let mut key = SoftPasskey::new(true);
    let codes = enroll(&http, &app, user, &mut key).await;
    let cred = credential_ids(&app, user).await.remove(0);
    let remove = format!("/app/account/passkeys/{cred}/remove");
    let json_routes = [
        "/app/sign-in/second-factor/passkey/begin",
        "/app/sign-in/second-factor/passkey/finish",
        "/app/account/passkeys/begin",
        "/app/account/passkeys/finish",
    ];
    let form_routes = [
        (Method::GET, "/app/sign-in/recovery".to_owned()),
        (Method::POST, "/app/sign-in/recovery".to_owned()),
        (Method::POST, remove.clone()),
        (Method::POST, "/app/account/recovery-codes".to_owned()),
        (Method::POST, "/app/account/confirm".to_owned()),
    ];
    // Anonymous: the sign-in page.
    for path in json_routes {
        let res = post_json(&http, &app, path, None, &json!({}), "same-origin").await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&res), "/app/sign-in", "{path}");
    }
    for (method, path) in &form_routes {
        let res = request(&http, &app, method.clone(), path, None)
            .form(&[("code", codes[0].as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&res), "/app/sign-in", "{path}");
    }
    // The passwordless routes are public: a ceremony starts for anyone.
    let (s, begin, _) =
        json_call(&http, &app, "/app/sign-in/passkey/begin", None, &json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(begin["challenge_id"].is_string());
    assert!(begin["options"]["publicKey"]["challenge"].is_string());

    // Password only (the user has a passkey): the second factor's own routes work; My
    // account's changes send to the second factor.
    let half = app.password_only_token(user).await;
    let (s, begin, _) = json_call(
        &http,
        &app,
        "/app/sign-in/second-factor/passkey/begin",
        Some(&half),
        &json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{begin}");
    let page = get_page(&http, &app, "/app/sign-in/recovery", &half).await;
    assert!(page.contains("name=\"code\""));
    let res = post_json(
        &http,
        &app,
        "/app/account/passkeys/begin",
        Some(&half),
        &json!({}),
        "same-origin",
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/app/sign-in/second-factor");
    for path in [
        remove.as_str(),
        "/app/account/recovery-codes",
        "/app/account/confirm",
    ] {
        let res = post_form(&http, &app, path, &half, &[]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&res), "/app/sign-in/second-factor", "{path}");
    }

    // A full session goes on past the recovery-code form, and uses no code.
    let full = app.token(user).await;
    let res = request(
        &http,
        &app,
        Method::GET,
        "/app/sign-in/recovery",
        Some(&full),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(location(&res), "/app");
    let res = post_form(
        &http,
        &app,
        "/app/sign-in/recovery",
        &full,
        &[("code", &codes[0])],
    )
    .await;
    assert_eq!(location(&res), "/app");
    assert_eq!(
        codes_left(&http, &app, user).await,
        "Recovery codes left: 10"
    );

    // The only second factor is not removed (409, the page again, nothing changed).
    let res = post_form(&http, &app, &remove, &full, &[]).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let body = res.text().await.unwrap();
    assert!(body.contains("only second factor"), "{body}");
    assert!(body.contains("nothing was changed"), "{body}");
    // Someone else's passkey is not found.
    let other = w.b.user("reception");
    let mut theirs = SoftPasskey::new(true);
    enroll(&http, &app, other, &mut theirs).await;
    let their_cred = credential_ids(&app, other).await.remove(0);
    let res = post_form(
        &http,
        &app,
        &format!("/app/account/passkeys/{their_cred}/remove"),
        &full,
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(credential_ids(&app, other).await.len(), 1);
    let res = post_form(
        &http,
        &app,
        "/app/account/passkeys/not-base64!/remove",
        &full,
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // A stale second factor: the step-up is asked for, nothing changes.
    app.clock.advance(Duration::minutes(6));
    let body = get_page(&http, &app, "/app/account", &full).await;
    assert!(body.contains("Confirm it is you"), "{body}");
    assert!(body.contains("id=\"passkey-confirm\""), "{body}");
    assert!(!body.contains("id=\"passkey-register\""), "{body}");
    assert!(!body.contains("/remove\""), "{body}");
    for path in [
        remove.as_str(),
        "/app/account/recovery-codes",
        "/app/account/confirm",
    ] {
        let res = post_form(&http, &app, path, &full, &[]).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body = res.text().await.unwrap();
        assert!(body.contains("Confirm it is you first"), "{path}: {body}");
    }
    let (s, body, _) = json_call(
        &http,
        &app,
        "/app/account/passkeys/begin",
        Some(&full),
        &json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "AUTH-0004");
    assert_eq!(credential_ids(&app, user).await.len(), 1);
    assert_eq!(
        codes_left(&http, &app, user).await,
        "Recovery codes left: 10"
    );
    // The passkey step-up opens them again (the same ceremony routes as the second factor).
    let finish = second_factor(&http, &app, &full, &mut key).await;
    let (s, _, fresh) = json_call(
        &http,
        &app,
        "/app/sign-in/second-factor/passkey/finish",
        Some(&full),
        &finish,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let fresh = fresh.unwrap();
    let body = get_page(&http, &app, "/app/account", &fresh).await;
    assert!(!body.contains("Confirm it is you"), "{body}");
    assert!(body.contains("id=\"passkey-register\""), "{body}");
    // New recovery codes, shown once; the old ones stop working.
    let res = post_form(&http, &app, "/app/account/recovery-codes", &fresh, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.text().await.unwrap();
    assert_eq!(body.matches("<li><code>").count(), 10, "{body}");
    assert!(!body.contains(&codes[0]));
    assert!(body.contains("href=\"/app/account\""));
    let half = app.password_only_token(user).await;
    let res = post_form(
        &http,
        &app,
        "/app/sign-in/recovery",
        &half,
        &[("code", &codes[0])],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

// issue 17 — a recovery code completes sign-in once (new cookie, the password-only one
// gone, one code fewer); the same code again, or a wrong one, is refused (401, the API's
// message) and the session stays password-only.
#[tokio::test]
async fn a_recovery_code_signs_in_once() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let user = w.a.user("reception");
    let mut key = SoftPasskey::new(true);
    let codes = enroll(&http, &app, user, &mut key).await;

    let half = app.password_only_token(user).await;
    let page = get_page(&http, &app, "/app/sign-in/second-factor", &half).await;
    assert!(page.contains("href=\"/app/sign-in/recovery\""), "{page}");
    let res = post_form(
        &http,
        &app,
        "/app/sign-in/recovery",
        &half,
        &[("code", &codes[3])],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/app");
    let full = new_token(&res).unwrap();
    assert_ne!(full, half);
    let account = get_page(&http, &app, "/app/account", &full).await;
    assert!(account.contains("Recovery codes left: 9"), "{account}");
    let res = request(&http, &app, Method::GET, "/app/account", Some(&half))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/app/sign-in");

    for code in [codes[3].as_str(), "AAAA-BBBB-CCCC", ""] {
        let again = app.password_only_token(user).await;
        let res = post_form(
            &http,
            &app,
            "/app/sign-in/recovery",
            &again,
            &[("code", code)],
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{code}");
        assert!(new_token(&res).is_none());
        let body = res.text().await.unwrap();
        assert!(body.contains("Each recovery code works once"), "{body}");
        let res = request(&http, &app, Method::GET, "/app/account", Some(&again))
            .send()
            .await
            .unwrap();
        assert_eq!(
            location(&res),
            "/app/sign-in/second-factor",
            "still password-only"
        );
    }
    assert_eq!(
        codes_left(&http, &app, user).await,
        "Recovery codes left: 9"
    );
    // The API's audit events: one code used, three refusals (never the code itself).
    let consumed = account_events(&db, user, "mfa.recovery_used", "success").await;
    assert_eq!(consumed.len(), 1);
    let refused = account_events(&db, user, "auth.second_factor", "denied").await;
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused.iter().all(|d| d["method"] == "rec"));
    assert!(!format!("{consumed:?}{refused:?}").contains(&codes[3]));
}

// issue 17 — every passkey and recovery-code post from another site is refused (403) before
// anything runs: no passkey added or removed, no code consumed or replaced, no session made.
#[tokio::test]
async fn cross_site_passkey_posts_change_nothing() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let user = w.a.user("reception");
    let mut key = SoftPasskey::new(true);
    let codes = enroll(&http, &app, user, &mut key).await;
    let cred = credential_ids(&app, user).await.remove(0);
    let full = app.token(user).await;
    let half = app.password_only_token(user).await;

    // A complete, valid registration and sign-in, sent cross-site.
    let (s, begin, _) = json_call(
        &http,
        &app,
        "/app/account/passkeys/begin",
        Some(&full),
        &json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let options: CreationChallengeResponse =
        serde_json::from_value(begin["options"].clone()).unwrap();
    let mut other = SoftPasskey::new(true);
    let credential = other.do_registration(origin(&app), options).unwrap();
    let registration =
        json!({"challenge_id": begin["challenge_id"], "name": "Evil", "credential": credential});
    let sign_in = passwordless(&http, &app, &mut key, &cred, user).await;
    for site in ["cross-site", "same-site", "none"] {
        for (path, token, body) in [
            ("/app/account/passkeys/finish", Some(&full), &registration),
            ("/app/sign-in/passkey/finish", None, &sign_in),
            ("/app/account/passkeys/begin", Some(&full), &json!({})),
            ("/app/sign-in/passkey/begin", None, &json!({})),
            (
                "/app/sign-in/second-factor/passkey/begin",
                Some(&half),
                &json!({}),
            ),
        ] {
            let res = post_json(&http, &app, path, token.map(String::as_str), body, site).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{site} {path}");
            assert!(new_token(&res).is_none());
        }
        for (path, token) in [
            (format!("/app/account/passkeys/{cred}/remove"), &full),
            ("/app/account/recovery-codes".to_owned(), &full),
            ("/app/account/confirm".to_owned(), &full),
            ("/app/sign-in/recovery".to_owned(), &half),
        ] {
            let res = post_from(&http, &app, &path, Some(token), site)
                .form(&[("code", codes[0].as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{site} {path}");
            assert!(new_token(&res).is_none());
        }
    }
    // Nothing changed: one passkey, ten codes, the code still works, and both ceremonies
    // were never used (they still finish, from the pages).
    assert_eq!(credential_ids(&app, user).await, vec![cred.clone()]);
    assert_eq!(
        codes_left(&http, &app, user).await,
        "Recovery codes left: 10"
    );
    let (s, body, _) = json_call(&http, &app, "/app/sign-in/passkey/finish", None, &sign_in).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body, _) = json_call(
        &http,
        &app,
        "/app/account/passkeys/finish",
        Some(&full),
        &registration,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let res = post_form(
        &http,
        &app,
        "/app/sign-in/recovery",
        &half,
        &[("code", &codes[0])],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

// issue 17 — a malformed ceremony post is refused with a clear message (the API's codes,
// naming the field, never echoing it) and nothing changes: the ceremony is not used up, no
// passkey is stored, no session is made.
#[tokio::test]
async fn bad_json_is_refused_clearly_with_nothing_changed() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let user = w.a.user("clinician");
    let full = app.token(user).await;
    let (s, begin, _) = json_call(
        &http,
        &app,
        "/app/account/passkeys/begin",
        Some(&full),
        &json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{begin}");
    let options: CreationChallengeResponse =
        serde_json::from_value(begin["options"].clone()).unwrap();
    let mut key = SoftPasskey::new(true);
    let credential = key.do_registration(origin(&app), options).unwrap();
    let good =
        json!({"challenge_id": begin["challenge_id"], "name": "Laptop", "credential": credential});

    for path in [
        "/app/account/passkeys/finish",
        "/app/sign-in/passkey/finish",
        "/app/sign-in/second-factor/passkey/finish",
    ] {
        // Not JSON at all.
        let res = request(&http, &app, Method::POST, path, Some(&full))
            .header(CONTENT_TYPE, "application/json")
            .body("{\"challenge_id\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(
            res.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "INPUT-0002", "{path}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not valid JSON"),
            "{path}: {body}"
        );
        // The wrong media type.
        let res = request(&http, &app, Method::POST, path, Some(&full))
            .header(CONTENT_TYPE, "text/plain")
            .body(good.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
        assert!(new_token(&res).is_none());
    }
    // A credential that is not one, and an unknown field: the field is named, not echoed.
    let mut bad = good.clone();
    bad["credential"] = json!("secret-looking-value");
    let (s, body, t) = json_call(
        &http,
        &app,
        "/app/account/passkeys/finish",
        Some(&full),
        &bad,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("credential"), "{message}");
    assert!(!message.contains("secret-looking-value"), "{message}");
    assert!(t.is_none());
    let mut bad = good.clone();
    bad["extra"] = json!(true);
    let (s, _, _) = json_call(
        &http,
        &app,
        "/app/account/passkeys/finish",
        Some(&full),
        &bad,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // A bad name is refused by the API's rule, before the ceremony is used.
    let mut bad = good.clone();
    bad["name"] = json!("two\nlines");
    let (s, body, _) = json_call(
        &http,
        &app,
        "/app/account/passkeys/finish",
        Some(&full),
        &bad,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "INPUT-0001");
    assert!(credential_ids(&app, user).await.is_empty());
    // The ceremony is intact: the good post still registers the passkey.
    let (s, body, _) = json_call(
        &http,
        &app,
        "/app/account/passkeys/finish",
        Some(&full),
        &good,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(credential_ids(&app, user).await.len(), 1);
}
