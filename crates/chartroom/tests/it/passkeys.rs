//! Passkeys end to end over HTTPS with a software authenticator: registration as the first
//! factor, a passkey as the second factor, passwordless sign-in, refusals (tampered, replayed,
//! unknown), removal with step-up, and practices that require passkeys for managers.
//!
//! The software authenticator (`SoftPasskey`) has no resident storage and claims user
//! verification it cannot do (`SoftPasskey::new(true)`). For passwordless sign-in the test
//! plays the discoverable authenticator's part: it names the credential the user picked and
//! returns the user handle, exactly what a platform authenticator adds (neither is signed).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use domain::UserId;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{PASSWORD, TestApp, TestDb, World};
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, RequestChallengeResponse, Url, WebauthnAuthenticator as _,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::util::{call, email_of};

const SYSTEM_PRACTICE: &str = "00000000-0000-0000-0000-000000000000";

fn origin(app: &TestApp) -> Url {
    Url::parse(&format!("https://localhost:{}", app.addr.port())).unwrap()
}

fn authenticator() -> SoftPasskey {
    SoftPasskey::new(true)
}

/// Signs in with the password: the password-only token and the response.
async fn password_sign_in(app: &TestApp, email: &str) -> (String, Value) {
    let (s, body) = call(
        app,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(&json!({"email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    (body["token"].as_str().unwrap().to_owned(), body)
}

/// Registers a passkey on `token`'s session: status and body of `…/register/finish`.
async fn register(
    app: &TestApp,
    token: &str,
    key: &mut SoftPasskey,
    name: &str,
) -> (StatusCode, Value) {
    let (s, begin) = call(
        app,
        Method::POST,
        "/api/v1/auth/passkeys/register/begin",
        Some(token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{begin}");
    assert_eq!(
        begin["options"]["publicKey"]["authenticatorSelection"]["residentKey"],
        "preferred"
    );
    assert_eq!(
        begin["options"]["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    let options: CreationChallengeResponse =
        serde_json::from_value(begin["options"].clone()).unwrap();
    let credential = key.do_registration(origin(app), options).unwrap();
    call(
        app,
        Method::POST,
        "/api/v1/auth/passkeys/register/finish",
        Some(token),
        Some(&json!({
            "challenge_id": begin["challenge_id"],
            "name": name,
            "credential": credential,
        })),
    )
    .await
}

/// Registers a passkey as the user's first factor on a password-only session; the new
/// full-session token.
async fn enroll_first(app: &TestApp, user: UserId, key: &mut SoftPasskey) -> String {
    let t0 = app.password_only_token(user).await;
    let (s, body) = register(app, &t0, key, "Laptop").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// A second-factor assertion on `token`'s session: the finish body to send.
async fn second_factor_assertion(app: &TestApp, token: &str, key: &mut SoftPasskey) -> Value {
    let (s, begin) = call(
        app,
        Method::POST,
        "/api/v1/auth/second-factor/passkey/begin",
        Some(token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{begin}");
    let options: RequestChallengeResponse =
        serde_json::from_value(begin["options"].clone()).unwrap();
    let credential = key.do_authentication(origin(app), options).unwrap();
    json!({"challenge_id": begin["challenge_id"], "credential": credential})
}

/// A passwordless assertion with the user's discoverable credential `credential_id`: the
/// finish body to send.
async fn passwordless_assertion(
    app: &TestApp,
    key: &mut SoftPasskey,
    credential_id: &str,
    user: UserId,
) -> Value {
    let (s, begin) = call(app, Method::POST, "/api/v1/auth/passkey/begin", None, None).await;
    assert_eq!(s, StatusCode::OK, "{begin}");
    let mut options = begin["options"].clone();
    assert_eq!(
        options["publicKey"]["allowCredentials"],
        json!([]),
        "a discoverable ceremony names no credential"
    );
    // The authenticator's discovery: the user picks this credential.
    options["publicKey"]["allowCredentials"] = json!([{"type": "public-key", "id": credential_id}]);
    let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    let credential = key.do_authentication(origin(app), options).unwrap();
    let mut credential = serde_json::to_value(credential).unwrap();
    // A discoverable credential returns the user handle it was created with.
    credential["response"]["userHandle"] = json!(URL_SAFE_NO_PAD.encode(user.as_uuid().as_bytes()));
    json!({"challenge_id": begin["challenge_id"], "credential": credential})
}

/// Flips one byte of the assertion's signature.
fn tamper_signature(body: &mut Value) {
    let sig = body["credential"]["response"]["signature"]
        .as_str()
        .unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bytes[10] ^= 0x01;
    body["credential"]["response"]["signature"] = json!(URL_SAFE_NO_PAD.encode(bytes));
}

async fn credential_ids(app: &TestApp, token: &str) -> Vec<String> {
    let (s, list) = call(app, Method::GET, "/api/v1/auth/passkeys", Some(token), None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["credential_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn system_events(db: &TestDb, user: UserId, action: &str, outcome: &str) -> Vec<Value> {
    let mut su = db.superuser_unsafe().await;
    sqlx::query_scalar(
        "select details from audit_event
          where practice_id = $1::uuid and actor_id = $2 and action = $3 and outcome = $4
          order by occurred_at",
    )
    .bind(SYSTEM_PRACTICE)
    .bind(user)
    .bind(action)
    .bind(outcome)
    .fetch_all(&mut su)
    .await
    .unwrap()
}

// req: AU-01, AC-12
#[tokio::test]
async fn a_passkey_as_first_factor_gives_recovery_codes_and_a_new_token() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let user = w.a.user("clinician");
    let (t0, login) = password_sign_in(&app, &email_of(&db, user).await).await;
    assert_eq!(login["next"], "enroll_second_factor");
    let patients = format!("/api/v1/practices/{}/patients", w.a.id);
    let (s, _) = call(&app, Method::GET, &patients, Some(&t0), None).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a password alone opens no practice"
    );

    let mut key = authenticator();
    // A bad name is refused before the ceremony is used up.
    let (s, begin) = call(
        &app,
        Method::POST,
        "/api/v1/auth/passkeys/register/begin",
        Some(&t0),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let options: CreationChallengeResponse =
        serde_json::from_value(begin["options"].clone()).unwrap();
    let credential = key.do_registration(origin(&app), options).unwrap();
    let mut finish = json!({
        "challenge_id": begin["challenge_id"],
        "name": "two\nlines",
        "credential": credential,
    });
    let (s, body) = call(
        &app,
        Method::POST,
        "/api/v1/auth/passkeys/register/finish",
        Some(&t0),
        Some(&finish),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "INPUT-0001");
    finish["extra"] = json!(1);
    let (s, _) = call(
        &app,
        Method::POST,
        "/api/v1/auth/passkeys/register/finish",
        Some(&t0),
        Some(&finish),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown fields are refused");
    finish.as_object_mut().unwrap().remove("extra");
    finish["name"] = json!("Work laptop");
    let (s, done) = call(
        &app,
        Method::POST,
        "/api/v1/auth/passkeys/register/finish",
        Some(&t0),
        Some(&finish),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["recovery_codes"].as_array().unwrap().len(), 10);
    let t1 = done["token"].as_str().unwrap();
    assert_ne!(t1, t0);

    // AC-12: the old token is gone, the new one is a full session.
    let (s, _) = call(&app, Method::GET, "/api/v1/me", Some(&t0), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, body) = call(&app, Method::GET, &patients, Some(t1), None).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    let (s, list) = call(&app, Method::GET, "/api/v1/auth/passkeys", Some(t1), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "Work laptop");
    assert!(list[0]["credential_id"].as_str().unwrap().len() >= 22);

    let enrolled = system_events(&db, user, "mfa.enroll", "success").await;
    assert_eq!(enrolled.len(), 1);
    assert_eq!(enrolled[0]["method"], "passkey");

    // The ceremony was single use.
    let (s, _) = call(
        &app,
        Method::POST,
        "/api/v1/auth/passkeys/register/finish",
        Some(t1),
        Some(&finish),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

// req: AU-01, AC-12
#[tokio::test]
async fn a_passkey_completes_sign_in_after_a_password() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let user = w.a.user("reception");
    let mut key = authenticator();
    enroll_first(&app, user, &mut key).await;

    let (t1, login) = password_sign_in(&app, &email_of(&db, user).await).await;
    assert_eq!(login["next"], "second_factor");
    assert!(
        login["methods"]
            .as_array()
            .unwrap()
            .contains(&json!("passkey"))
    );
    let finish = second_factor_assertion(&app, &t1, &mut key).await;
    let (s, body) = call(
        &app,
        Method::POST,
        "/api/v1/auth/second-factor/passkey/finish",
        Some(&t1),
        Some(&finish),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["next"], "done");
    let t2 = body["token"].as_str().unwrap();
    let (s, _) = call(&app, Method::GET, "/api/v1/me", Some(&t1), None).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "the password-only token is gone"
    );
    let patients = format!("/api/v1/practices/{}/patients", w.a.id);
    let (s, _) = call(&app, Method::GET, &patients, Some(t2), None).await;
    assert_eq!(s, StatusCode::OK);
    let (_, sessions) = call(&app, Method::GET, "/api/v1/auth/sessions", Some(t2), None).await;
    let current = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap();
    let mut amr: Vec<_> = current["methods"].as_array().unwrap().clone();
    amr.sort_by_key(ToString::to_string);
    assert_eq!(amr, [json!("hwk"), json!("pwd")]);

    let (_, list) = call(&app, Method::GET, "/api/v1/auth/passkeys", Some(t2), None).await;
    assert!(!list[0]["last_used_at"].is_null(), "the use is recorded");
    let ok = system_events(&db, user, "auth.second_factor", "success").await;
    assert_eq!(ok.last().unwrap()["method"], "hwk");
}

// req: AU-01
#[tokio::test]
async fn passwordless_sign_in_with_a_discoverable_passkey() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let user = w.a.user("clinician");
    let mut key = authenticator();
    let t = enroll_first(&app, user, &mut key).await;
    let id = credential_ids(&app, &t).await.remove(0);

    for _ in 0..2 {
        // Twice: the stored counter follows the authenticator's.
        let finish = passwordless_assertion(&app, &mut key, &id, user).await;
        let (s, body) = call(
            &app,
            Method::POST,
            "/api/v1/auth/passkey/finish",
            None,
            Some(&finish),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["next"], "done");
        assert_eq!(body["user_id"], json!(user));
        let token = body["token"].as_str().unwrap();
        let patients = format!("/api/v1/practices/{}/patients", w.a.id);
        let (s, _) = call(&app, Method::GET, &patients, Some(token), None).await;
        assert_eq!(s, StatusCode::OK);
        let (_, sessions) = call(
            &app,
            Method::GET,
            "/api/v1/auth/sessions",
            Some(token),
            None,
        )
        .await;
        let current = sessions
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["current"] == true)
            .unwrap()
            .clone();
        assert_eq!(current["methods"], json!(["hwk"]));
    }
    let signed_in = system_events(&db, user, "auth.sign_in", "success").await;
    assert_eq!(signed_in.len(), 2);
    assert!(signed_in.iter().all(|d| d["method"] == "hwk"));
}

// req: AU-01
#[tokio::test]
async fn tampered_replayed_and_unknown_assertions_are_refused() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let user = w.a.user("clinician");
    let email = email_of(&db, user).await;
    let mut key = authenticator();
    let t = enroll_first(&app, user, &mut key).await;
    let id = credential_ids(&app, &t).await.remove(0);

    // Second factor: a tampered signature is 401 AUTH-0005 and recorded.
    let (t1, _) = password_sign_in(&app, &email).await;
    let mut finish = second_factor_assertion(&app, &t1, &mut key).await;
    tamper_signature(&mut finish);
    let (s, body) = call(
        &app,
        Method::POST,
        "/api/v1/auth/second-factor/passkey/finish",
        Some(&t1),
        Some(&finish),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "AUTH-0005");
    let denied = system_events(&db, user, "auth.second_factor", "denied").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["method"], "hwk");
    // The challenge was used up by the failed attempt: the untampered assertion fails too.
    tamper_signature(&mut finish);
    let (s, _) = call(
        &app,
        Method::POST,
        "/api/v1/auth/second-factor/passkey/finish",
        Some(&t1),
        Some(&finish),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The session is still password-only.
    let patients = format!("/api/v1/practices/{}/patients", w.a.id);
    let (s, body) = call(&app, Method::GET, &patients, Some(&t1), None).await;
    assert_eq!(
        (s, &body["error"]["code"]),
        (StatusCode::UNAUTHORIZED, &json!("AUTH-0003"))
    );

    // The reference: a wrong password.
    let (s, wrong) = call(
        &app,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(&json!({"email": email, "password": "not the password at all"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let same_as_wrong_password = |body: &Value| {
        assert_eq!(body["error"]["code"], wrong["error"]["code"]);
        assert_eq!(body["error"]["message"], wrong["error"]["message"]);
    };

    // Passwordless: tampered.
    let mut finish = passwordless_assertion(&app, &mut key, &id, user).await;
    tamper_signature(&mut finish);
    let (s, body) = call(
        &app,
        Method::POST,
        "/api/v1/auth/passkey/finish",
        None,
        Some(&finish),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    same_as_wrong_password(&body);

    // Passwordless: replayed (a valid assertion, its challenge already used).
    let finish = passwordless_assertion(&app, &mut key, &id, user).await;
    let (s, _) = call(
        &app,
        Method::POST,
        "/api/v1/auth/passkey/finish",
        None,
        Some(&finish),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = call(
        &app,
        Method::POST,
        "/api/v1/auth/passkey/finish",
        None,
        Some(&finish),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    same_as_wrong_password(&body);

    // Passwordless: an unknown credential.
    let mut finish = passwordless_assertion(&app, &mut key, &id, user).await;
    let unknown = URL_SAFE_NO_PAD.encode([7_u8; 32]);
    finish["credential"]["id"] = json!(unknown);
    finish["credential"]["rawId"] = json!(unknown);
    let (s, body) = call(
        &app,
        Method::POST,
        "/api/v1/auth/passkey/finish",
        None,
        Some(&finish),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    same_as_wrong_password(&body);

    // Passwordless: someone else's user handle on this credential.
    let mut finish = passwordless_assertion(&app, &mut key, &id, user).await;
    finish["credential"]["response"]["userHandle"] =
        json!(URL_SAFE_NO_PAD.encode(w.a.user("owner").as_uuid().as_bytes()));
    let (s, body) = call(
        &app,
        Method::POST,
        "/api/v1/auth/passkey/finish",
        None,
        Some(&finish),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    same_as_wrong_password(&body);

    // Every refusal is on the installation's log.
    let mut su = db.superuser_unsafe().await;
    let refused: i64 = sqlx::query_scalar(
        "select count(*) from audit_event
          where practice_id = $1::uuid and action = 'auth.sign_in' and outcome = 'denied'
            and details->>'method' = 'hwk'",
    )
    .bind(SYSTEM_PRACTICE)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(refused, 4);
}

// req: AU-01
#[tokio::test]
async fn removing_a_passkey_needs_step_up_and_never_takes_the_last_factor() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let user = w.a.user("admin");
    let mut first = authenticator();
    let t = enroll_first(&app, user, &mut first).await;
    let ids = credential_ids(&app, &t).await;
    let path = |id: &str| format!("/api/v1/auth/passkeys/{id}");

    let (s, body) = call(&app, Method::DELETE, &path(&ids[0]), Some(&t), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");

    // A second passkey (the session is fresh from the first registration).
    let mut second = authenticator();
    let (s, body) = register(&app, &t, &mut second, "Phone").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        body["recovery_codes"].is_null(),
        "codes only for a first factor"
    );
    let t = body["token"].as_str().unwrap().to_owned();
    let ids = credential_ids(&app, &t).await;
    assert_eq!(ids.len(), 2);

    // Six minutes later the step-up has lapsed.
    app.clock.advance(Duration::minutes(6));
    let (s, body) = call(&app, Method::DELETE, &path(&ids[0]), Some(&t), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "AUTH-0004");
    let (s, body) = call(
        &app,
        Method::POST,
        "/api/v1/auth/passkeys/register/begin",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(
        (s, &body["error"]["code"]),
        (StatusCode::UNAUTHORIZED, &json!("AUTH-0004")),
        "adding one needs a step-up too once the user has a factor"
    );

    // Step up with the second passkey, then remove the first.
    let finish = second_factor_assertion(&app, &t, &mut second).await;
    let (s, body) = call(
        &app,
        Method::POST,
        "/api/v1/auth/second-factor/passkey/finish",
        Some(&t),
        Some(&finish),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let t = body["token"].as_str().unwrap().to_owned();
    let (s, body) = call(&app, Method::DELETE, &path(&ids[0]), Some(&t), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(credential_ids(&app, &t).await, [ids[1].clone()]);
    let removed = system_events(&db, user, "mfa.remove", "success").await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["method"], "passkey");

    // The removed passkey is no longer offered.
    let (t2, _) = password_sign_in(&app, &email_of(&db, user).await).await;
    let (s, begin) = call(
        &app,
        Method::POST,
        "/api/v1/auth/second-factor/passkey/begin",
        Some(&t2),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        begin["options"]["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The last one stays; unknown ids are 404.
    let (s, _) = call(&app, Method::DELETE, &path(&ids[1]), Some(&t), None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = call(&app, Method::DELETE, &path(&ids[0]), Some(&t), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(&app, Method::DELETE, &path("not*base64"), Some(&t), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

// req: AU-01
#[tokio::test]
async fn a_practice_can_require_passkeys_for_its_managers() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let mut su = db.superuser_unsafe().await;
    sqlx::query("update practice set require_passkey_for_managers = true where practice_id = $1")
        .bind(w.a.id)
        .execute(&mut su)
        .await
        .unwrap();
    let practice = format!("/api/v1/practices/{}", w.a.id);
    let owner = w.a.user("owner");

    let totp_session = app.token(owner).await;
    let (s, body) = call(&app, Method::GET, &practice, Some(&totp_session), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "AUTH-0006");

    let mut key = authenticator();
    let passkey_session = enroll_first(&app, owner, &mut key).await;
    let (s, body) = call(&app, Method::GET, &practice, Some(&passkey_session), None).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    // Not a manager: a TOTP session is enough.
    let clinician = app.token(w.a.user("clinician")).await;
    let patients = format!("/api/v1/practices/{}/patients", w.a.id);
    let (s, _) = call(&app, Method::GET, &patients, Some(&clinician), None).await;
    assert_eq!(s, StatusCode::OK);
    // Another practice's owner is not affected.
    let other = app.token(w.b.user("owner")).await;
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{}", w.b.id),
        Some(&other),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}
