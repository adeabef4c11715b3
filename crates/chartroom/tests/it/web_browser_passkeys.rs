//! Issue 17, in a real browser: passkeys and recovery codes, and My account's sessions, in
//! Debian's Chromium through chromedriver (see `web_browser`). Passkeys are made by a
//! `WebDriver` virtual authenticator (W3C WebAuthn Level 2 §11, "`WebDriver` Extension
//! Capability": CTAP2, internal transport, resident keys, user verification that succeeds),
//! so the page's own `passkey.js` runs the real browser ceremony. Every page visited has zero
//! CSP violations and zero serious or critical axe-core violations; screenshots go where the
//! other browser tests' go.

use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};
use thirtyfour::prelude::*;

use crate::web_browser::{Browser, screenshot_dir, sign_in_enrolling};

/// Adds a virtual authenticator to the browser session: a platform authenticator (CTAP2,
/// `internal`) that stores discoverable credentials and verifies the user.
async fn add_virtual_authenticator(b: &Browser) -> String {
    let url = format!(
        "{}/session/{}/webauthn/authenticator",
        b.driver_url,
        b.driver.session_id()
    );
    let res: Value = reqwest::Client::new()
        .post(url)
        .json(&json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    res["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no virtual authenticator: {res}"))
        .to_owned()
}

/// The credentials the virtual authenticator holds.
async fn stored_credentials(b: &Browser, authenticator: &str) -> Vec<Value> {
    let url = format!(
        "{}/session/{}/webauthn/authenticator/{authenticator}/credentials",
        b.driver_url,
        b.driver.session_id()
    );
    let res: Value = reqwest::Client::new()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    res["value"].as_array().cloned().unwrap_or_default()
}

/// Closes the browser whatever the flow's `outcome` (a panic would leave Chromium running),
/// then passes the panic on.
async fn close(b: Browser, outcome: std::thread::Result<()>) {
    let quit = b.driver.quit().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    quit.unwrap();
}

/// The app's address under the relying party's host (`localhost`: WebAuthn refuses IP
/// addresses as relying party ids).
fn at(app: &TestApp, path: &str) -> String {
    format!("https://localhost:{}{path}", app.addr.port())
}

async fn sign_out(b: &mut Browser) {
    b.click("form.sign-out button").await;
    b.wait_for_path("/app/sign-in").await;
}

async fn password_step(b: &mut Browser, email: &str) {
    b.fill("#email", email).await;
    b.fill("#password", testkit::PASSWORD).await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_path("/app/sign-in/second-factor").await;
}

// issue 17 — in Chromium with a virtual authenticator: a user (TOTP enrolled at first sign-in)
// registers a passkey on My account and gets new recovery codes there; signs out and signs in
// with the passkey alone; signs out and signs in with the password and a recovery code, which
// then fails a second time; and completes a password sign-in with the passkey as the second
// factor. Every page has zero CSP violations and zero serious/critical axe violations.
#[tokio::test]
async fn passkeys_and_recovery_codes_in_chromium() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let user = world.a.user("reception");
    let email = crate::util::email_of(&db, user).await;
    let mut b = Browser::start().await;
    println!("browser screenshots: {}", screenshot_dir().display());
    let outcome = AssertUnwindSafe(passkey_flow(&mut b, &app, &email))
        .catch_unwind()
        .await;
    close(b, outcome).await;
}

async fn passkey_flow(b: &mut Browser, app: &TestApp, email: &str) {
    let authenticator = add_virtual_authenticator(b).await;
    b.driver.goto(at(app, "/app")).await.unwrap();
    b.wait_for_path("/app/sign-in").await;
    b.wait_for_text("#passkey-sign-in button", "Sign in with a passkey")
        .await;
    b.check_page("pk-01-sign-in").await;
    sign_in_enrolling(
        b,
        app,
        email,
        [
            "pk-02-enroll-start",
            "pk-03-enroll-qr",
            "pk-04-recovery-codes",
            "pk-05-home",
        ],
    )
    .await;

    // My account: register a passkey (the second factor was just presented: no step-up).
    b.driver.goto(at(app, "/app/account")).await.unwrap();
    b.wait_for_text("#passkey-register button", "Add a passkey")
        .await;
    b.check_page("pk-06-account").await;
    b.fill("#passkey-name", "This laptop").await;
    b.click("#passkey-register button[type=submit]").await;
    b.wait_for_text("p.done", "Your new passkey was added.")
        .await;
    b.wait_for_text("#passkeys", "This laptop").await;
    b.check_page("pk-07-account-passkey-added").await;
    let held = stored_credentials(b, &authenticator).await;
    assert_eq!(held.len(), 1, "{held:#?}");
    assert_eq!(
        held[0]["isResidentCredential"], true,
        "a discoverable passkey"
    );

    // New recovery codes, shown once.
    b.click("#recovery-regenerate button").await;
    b.wait_for_text("h1", "Save your recovery codes").await;
    let mut codes = Vec::new();
    for li in b
        .driver
        .find_all(By::Css("#recovery-codes li"))
        .await
        .unwrap()
    {
        codes.push(li.text().await.unwrap());
    }
    assert_eq!(codes.len(), 10);
    b.check_page("pk-08-new-recovery-codes").await;
    b.click("main a.button").await;
    b.wait_for_path("/app/account").await;

    // Passwordless: the passkey alone.
    sign_out(b).await;
    b.click("#passkey-sign-in button[type=submit]").await;
    b.wait_for_path("/app").await;
    b.check_page("pk-09-home-after-passkey").await;
    let header = b.driver.find(By::Css("header.top")).await.unwrap();
    assert!(header.text().await.unwrap().contains("reception a"));

    // The password and a recovery code.
    sign_out(b).await;
    password_step(b, email).await;
    b.wait_for_text("#passkey-second-factor button", "Use a passkey")
        .await;
    b.check_page("pk-10-second-factor").await;
    b.click("#use-recovery-code").await;
    b.wait_for_path("/app/sign-in/recovery").await;
    b.check_page("pk-11-recovery-code").await;
    b.fill("#recovery-code", &codes[0]).await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_path("/app").await;
    b.check_page("pk-12-home-after-recovery-code").await;

    // The same code a second time: refused.
    sign_out(b).await;
    password_step(b, email).await;
    b.click("#use-recovery-code").await;
    b.wait_for_path("/app/sign-in/recovery").await;
    b.fill("#recovery-code", &codes[0]).await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_text("[role=alert]", "Each recovery code works once")
        .await;
    b.check_page("pk-13-recovery-code-used").await;

    // The passkey as the second factor after the password.
    b.driver
        .find(By::LinkText("Use another second factor"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_path("/app/sign-in/second-factor").await;
    b.click("#passkey-second-factor button[type=submit]").await;
    b.wait_for_path("/app").await;
    b.check_page("pk-14-home-after-passkey-second-factor").await;
    b.driver.goto(at(app, "/app/account")).await.unwrap();
    b.wait_for_text("main", "Recovery codes left: 9").await;
    b.check_page("pk-15-account").await;
}

// issue 17 — in Chromium with a virtual authenticator: at a first sign-in the user sets up a
// passkey instead of an authenticator app; the recovery codes are shown once on the same page;
// My account then lists the passkey and no authenticator app.
#[tokio::test]
async fn a_first_sign_in_enrolls_a_passkey_in_chromium() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let user = world.a.user("clinician");
    let email = crate::util::email_of(&db, user).await;
    let mut b = Browser::start().await;
    let outcome = AssertUnwindSafe(enroll_passkey_flow(&mut b, &app, &email))
        .catch_unwind()
        .await;
    close(b, outcome).await;
}

async fn enroll_passkey_flow(b: &mut Browser, app: &TestApp, email: &str) {
    let authenticator = add_virtual_authenticator(b).await;
    b.driver.goto(at(app, "/app")).await.unwrap();
    b.wait_for_path("/app/sign-in").await;
    b.fill("#email", email).await;
    b.fill("#password", testkit::PASSWORD).await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_path("/app/sign-in/enroll").await;
    b.wait_for_text("#passkey-enroll button", "Set up a passkey")
        .await;
    b.check_page("pke-01-enroll-choice").await;
    b.fill("#passkey-name", "Desk computer").await;
    b.click("#passkey-enroll button[type=submit]").await;
    b.wait_for_text("#passkey-codes-heading", "Save your recovery codes")
        .await;
    b.wait_for_count("#passkey-recovery-codes li", 10).await;
    let setup = b
        .driver
        .find(By::Id("passkey-enroll"))
        .await
        .unwrap()
        .is_displayed()
        .await
        .unwrap();
    assert!(!setup, "the set-up forms are gone once the codes show");
    b.check_page("pke-02-enroll-recovery-codes").await;
    assert_eq!(stored_credentials(b, &authenticator).await.len(), 1);
    b.click("section a.button").await;
    b.wait_for_path("/app").await;
    b.check_page("pke-03-home").await;
    b.driver.goto(at(app, "/app/account")).await.unwrap();
    b.wait_for_text("#passkeys", "Desk computer").await;
    let main = b
        .wait_for_text("main", "Authenticator app: not set up")
        .await;
    assert!(main.contains("Passkeys: 1"), "{main}");
    b.check_page("pke-04-account").await;
}

// issue 17 — in Chromium, My account: the user signed in on another device ends that session
// from the list; the list then shows this session only, and the other device's token no
// longer works. Every page has zero CSP violations and zero serious/critical axe violations.
#[tokio::test]
async fn another_session_is_ended_from_my_account_in_chromium() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let user = world.a.user("clinician");
    let email = crate::util::email_of(&db, user).await;
    let mut b = Browser::start().await;
    let outcome = AssertUnwindSafe(end_session_flow(&mut b, &app, user, &email))
        .catch_unwind()
        .await;
    close(b, outcome).await;
}

async fn end_session_flow(b: &mut Browser, app: &TestApp, user: domain::UserId, email: &str) {
    b.driver.goto(at(app, "/app")).await.unwrap();
    b.wait_for_path("/app/sign-in").await;
    sign_in_enrolling(
        b,
        app,
        email,
        [
            "acct-01-enroll-start",
            "acct-02-enroll-qr",
            "acct-03-recovery-codes",
            "acct-04-home",
        ],
    )
    .await;
    let elsewhere = app.token(user).await;
    let (status, _) = crate::util::call(
        app,
        reqwest::Method::GET,
        "/api/v1/me",
        Some(&elsewhere),
        None,
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    b.driver.goto(at(app, "/app/account")).await.unwrap();
    let rows = "section[aria-labelledby=sessions-heading] tbody tr";
    b.wait_for_count(rows, 2).await;
    b.check_page("acct-05-two-sessions").await;
    b.click(&format!("{rows}:not([aria-current]) button[type=submit]"))
        .await;
    b.wait_for_text("p.done", "The session was ended.").await;
    b.wait_for_count(rows, 1).await;
    b.wait_for_text(rows, "(this session)").await;
    b.check_page("acct-06-session-ended").await;
    let (status, _) = crate::util::call(
        app,
        reqwest::Method::GET,
        "/api/v1/me",
        Some(&elsewhere),
        None,
    )
    .await;
    assert_eq!(
        status,
        reqwest::StatusCode::UNAUTHORIZED,
        "the other device is signed out"
    );
}
