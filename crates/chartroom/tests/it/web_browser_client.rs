//! Issue 19 in Chromium, end to end: a client books on the practice's public page; the outbox
//! sends the confirmation through a real SMTP server process and the Telnyx stand-in; the
//! client follows the emailed manage link and confirms; reception requests an intake form;
//! the client follows the emailed intake link, fills it in and signs it; reception reviews it
//! and accepts it onto the chart. Another client finds no time that suits them and joins the
//! waitlist from the booking page; reception sees the entry marked self-joined; the client
//! leaves through the emailed link. Every public and staff page on the way passes the CSP and
//! accessibility checks, and no message carries the client's name, phone or email.

use std::sync::Arc;
use std::time::Duration;

use chrono::Timelike as _;
use domain::Clock as _;
use egress::outbound::{LinkOrigin, PracticePhone};
use egress::send::EmailAddress;
use egress::smtp::{SmtpConfig, SmtpMailer, SmtpSecurity};
use reqwest::Method;
use serde_json::json;
use server::jobs::outbox::{Channels, Outbox, OwnContacts};
use testkit::TestApp;
use testkit::mailpay_standins::SmtpServer;
use thirtyfour::By;

use crate::outbox::{Harness, OWN_NUMBER, SENDER};
use crate::util::{call, email_of};
use crate::web_browser::{in_browser, sign_in_enrolling};

/// A fixed-offset zone in which the app's clock reads about midday, so that the outbox's
/// quiet hours (08:00–20:00 in the client's zone) never hold these messages back.
fn midday_zone(now: chrono::DateTime<chrono::Utc>) -> String {
    let shift = 12 - i64::from(now.hour());
    match shift {
        0 => "Etc/GMT".to_owned(),
        s if s > 0 => format!("Etc/GMT-{s}"),
        s => format!("Etc/GMT+{}", -s),
    }
}

/// The link of `purpose` in `text` (a message body, quoted-printable soft breaks removed).
fn link_in(text: &str, origin: &str, purpose: &str) -> Option<String> {
    let text = text.replace("=\r\n", "").replace("=\n", "");
    let prefix = format!("{origin}/{purpose}/");
    let at = text.find(&prefix)?;
    let token: String = text[at + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (token.len() == 43).then(|| format!("{prefix}{token}"))
}

/// Runs outbox passes (bounded) until `done` holds; on failure, says where each message is.
async fn drain(
    job: &Outbox,
    app: &TestApp,
    su: &mut sqlx::PgConnection,
    practice: domain::PracticeId,
    done: impl Fn() -> bool,
) {
    for _ in 0..20 {
        job.pass(Some(practice), app.clock.now()).await.unwrap();
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "select template, channel, status, last_error from outbox_message where practice_id = $1",
    )
    .bind(practice)
    .fetch_all(su)
    .await
    .unwrap();
    panic!("the outbox never delivered: {rows:?}");
}

// req: EGR-01, EGR-04, EGR-05 — issue 19's browser walk.
#[tokio::test]
async fn a_client_books_confirms_and_signs_intake_and_reception_accepts_it() {
    let h = Harness::new().await;
    let app = TestApp::start(&h.db).await;
    let (w, p) = (&h.w, h.w.a.id);
    let origin = app.url("").trim_end_matches('/').to_owned();
    let mut su = h.su().await;
    sqlx::query("update practice set settings = settings || jsonb_build_object('time_zone', $2::text) where practice_id = $1")
        .bind(p)
        .bind(midday_zone(app.clock.now()))
        .execute(&mut su)
        .await
        .unwrap();

    // Online booking: one service, every day, new clients book at once.
    let owner = app.token(w.a.user("owner")).await;
    let hours: Vec<serde_json::Value> = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        .iter()
        .map(|d| json!({"weekday": d, "start": "00:00:00", "end": "23:30:00"}))
        .collect();
    for (method, path, body) in [
        (
            Method::PUT,
            format!("/api/v1/practices/{p}/booking/settings"),
            json!({
            "enabled": true, "new_clients": "allowed", "min_notice_minutes": 0,
            "max_days_ahead": 30, "step_minutes": 30, "currency": "usd",
            "cancellation": {"window_hours": 24, "late_cancel_fee_minor": 0, "no_show_fee_minor": 0}}),
        ),
        (
            Method::POST,
            format!("/api/v1/practices/{p}/booking/services"),
            json!({
            "name": "Relaxation massage", "duration_minutes": 60, "payment": {"kind": "none"},
            "active": true, "clinicians": [w.a.user("clinician")]}),
        ),
        (
            Method::PUT,
            format!(
                "/api/v1/practices/{p}/booking/hours/{}",
                w.a.user("clinician")
            ),
            json!({ "hours": hours }),
        ),
    ] {
        let (s, b) = call(&app, method, &path, Some(&owner), Some(&body)).await;
        assert!(s.is_success(), "{path}: {b}");
    }

    // The outbox, sending email through a real SMTP server and SMS through the Telnyx stand-in.
    let smtp = SmtpServer::start().await;
    let mailer = SmtpMailer::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port: smtp.port(),
        security: SmtpSecurity::PlainLoopbackOnly,
        credentials: None,
        sender: EmailAddress::parse(SENDER).unwrap(),
        dkim: None,
        extra_roots_pem: Vec::new(),
        timeout: Duration::from_secs(20),
    })
    .unwrap();
    let job = Outbox::new(
        h.owner.clone(),
        Channels {
            sms: Some(h.sms()),
            email: Some(Arc::new(mailer)),
            push: None,
        },
        LinkOrigin::parse(&origin).unwrap(),
        OwnContacts {
            phones: vec![PracticePhone::new(OWN_NUMBER).unwrap()],
            emails: vec![SENDER.into()],
        },
        Duration::from_secs(1),
    );
    let person = domain::synthetic::Generator::new(1919).patient();
    let reception_email = email_of(&h.db, w.a.user("reception")).await;
    let mails = |purpose: &str| -> Vec<String> {
        smtp.messages()
            .iter()
            .filter_map(|m| link_in(&String::from_utf8_lossy(&m.data), &origin, purpose))
            .collect()
    };

    in_browser(async |b| {
        // 1. The client books: service → time → details → received.
        b.driver.goto(app.url(&format!("/book/{p}"))).await.unwrap();
        b.check_page("client-01-services").await;
        b.click("#services a").await;
        b.wait_for_text("h1", "").await;
        b.check_page("client-02-times").await;
        b.click("ul.times a").await;
        b.wait_for_text("#details-title", "Your details").await;
        b.fill("#given_name", &person.given_name).await;
        b.fill("#family_name", &person.family_name).await;
        b.type_keys(
            "#date_of_birth",
            &person.date_of_birth.format("%m%d%Y").to_string(),
        )
        .await;
        b.fill("#phone", &person.phone).await;
        b.fill("#email", &person.email).await;
        b.check_page("client-03-details").await;
        b.click("main form button[type=submit]").await;
        b.wait_for_text("main", "We have received your booking")
            .await;
        b.check_page("client-04-received").await;

        // 2. The confirmation goes out by email and SMS, each with a manage link and nothing
        //    of the client.
        drain(&job, &app, &mut su, p, || {
            !mails("manage").is_empty() && !h.telnyx.messages().is_empty()
        })
        .await;
        let sms = h.telnyx.messages();
        assert!(
            sms.iter()
                .any(|m| link_in(&m.text, &origin, "manage").is_some()),
            "{sms:?}"
        );
        for m in &smtp.messages() {
            // The body and every header but the one naming the recipient's own address.
            let raw = String::from_utf8_lossy(&m.data).to_lowercase();
            let rest: Vec<&str> = raw.lines().filter(|l| !l.starts_with("to:")).collect();
            let rest = rest.join("\n");
            for leak in [&person.given_name, &person.family_name, &person.phone] {
                assert!(
                    !rest.contains(&leak.to_lowercase()),
                    "the email carries client data: {rest}"
                );
            }
        }
        for m in &sms {
            assert!(!m.text.contains(&person.family_name) && !m.text.contains(&person.email));
        }
        let manage = mails("manage").remove(0);

        // 3. The client follows the link and confirms.
        b.driver.goto(&manage).await.unwrap();
        b.wait_for_text("h1", "Your appointment").await;
        b.check_page("client-05-manage").await;
        b.click("#confirm").await;
        b.wait_for_text("#state", "confirmed by you").await;
        b.check_page("client-06-confirmed").await;

        // 4. Reception requests the consent form for the new client.
        let patient: uuid::Uuid =
            sqlx::query_scalar("select patient_id from online_booking where practice_id = $1")
                .bind(p)
                .fetch_one(&mut su)
                .await
                .unwrap();
        b.driver.goto(app.url("/app")).await.unwrap();
        sign_in_enrolling(
            b,
            &app,
            &reception_email,
            [
                "staff-01-enroll",
                "staff-02-qr",
                "staff-03-codes",
                "staff-04-home",
            ],
        )
        .await;
        b.driver
            .goto(app.url(&format!("/app/practices/{p}/patients/{patient}/intake")))
            .await
            .unwrap();
        b.driver
            .find(By::Css("#form_id option[value=consent_to_treatment]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.check_page("staff-05-intake-request").await;
        b.click("main form button[type=submit]").await;
        b.wait_for_text("[role=status]", "queued to the patient")
            .await;
        drain(&job, &app, &mut su, p, || !mails("intake").is_empty()).await;
        let intake = mails("intake").remove(0);

        // 5. The client fills in and signs the form (name and date of birth prefilled).
        b.driver.goto(&intake).await.unwrap();
        b.wait_for_text("h1", "Consent to treatment").await;
        assert_eq!(
            b.value("#full_name").await,
            format!("{} {}", person.given_name, person.family_name)
        );
        b.check_page("client-07-intake").await;
        for check in [
            "#understand_treatment",
            "#consent_treatment",
            "#withdraw",
            "#esign_consent",
        ] {
            b.click(check).await;
        }
        b.fill(
            "#signer_name",
            &format!("{} {}", person.given_name, person.family_name),
        )
        .await;
        b.click("#intake-form button[type=submit]").await;
        b.wait_for_text("main", "Your signed form was sent").await;
        b.check_page("client-08-signed").await;

        // 6. Reception reviews it and accepts it onto the chart.
        b.driver
            .goto(app.url(&format!("/app/practices/{p}/intake")))
            .await
            .unwrap();
        b.check_page("staff-06-intake-queue").await;
        b.click("main table a").await;
        b.wait_for_text("#intake-status", "Waiting for review")
            .await;
        assert!(
            b.driver.find(By::Id("evidence-ok")).await.is_ok(),
            "the signature evidence verifies"
        );
        b.check_page("staff-07-intake-review").await;
        b.click("#accept").await;
        b.wait_for_text("[role=status]", "accepted").await;
        b.check_page("staff-08-accepted").await;

        // 7. Another client finds no time that suits them and joins the waitlist from the
        //    booking page; the confirmation carries a link to leave and nothing of them;
        //    reception sees the entry marked self-joined; the client leaves through the link.
        let waiting = domain::synthetic::Generator::new(2020).patient();
        let day = |n: i64| {
            (app.clock.now().date_naive() + chrono::Duration::days(n))
                .format("%m%d%Y")
                .to_string()
        };
        b.driver.goto(app.url(&format!("/book/{p}"))).await.unwrap();
        b.click("#services a").await;
        b.wait_for_text("#join-waitlist", "Join the waitlist").await;
        b.click("#join-waitlist").await;
        b.wait_for_text("#waitlist-title", "The days you can come")
            .await;
        b.type_keys("#first_day", &day(2)).await;
        b.type_keys("#last_day", &day(6)).await;
        b.fill("#given_name", &waiting.given_name).await;
        b.fill("#family_name", &waiting.family_name).await;
        b.type_keys(
            "#date_of_birth",
            &waiting.date_of_birth.format("%m%d%Y").to_string(),
        )
        .await;
        b.fill("#phone", &waiting.phone).await;
        b.fill("#email", &waiting.email).await;
        b.check_page("client-09-waitlist-form").await;
        b.click("#join").await;
        b.wait_for_text("#joined", "on the waitlist").await;
        b.check_page("client-10-waitlist-joined").await;
        let texted = || -> Vec<String> {
            h.telnyx
                .messages()
                .iter()
                .filter_map(|m| link_in(&m.text, &origin, "waitlist"))
                .collect()
        };
        drain(&job, &app, &mut su, p, || !texted().is_empty()).await;
        for m in &smtp.messages() {
            let raw = String::from_utf8_lossy(&m.data).to_lowercase();
            let rest: Vec<&str> = raw.lines().filter(|l| !l.starts_with("to:")).collect();
            let rest = rest.join("\n");
            for leak in [&waiting.given_name, &waiting.family_name, &waiting.phone] {
                assert!(
                    !rest.contains(&leak.to_lowercase()),
                    "the email carries client data: {rest}"
                );
            }
        }
        let leave = texted().remove(0);

        b.driver
            .goto(app.url(&format!("/app/practices/{p}/waitlist")))
            .await
            .unwrap();
        b.wait_for_text("#waitlist", "Self-joined, new client")
            .await;
        b.check_page("staff-09-waitlist").await;

        b.driver.goto(&leave).await.unwrap();
        b.wait_for_text("#state", "Waiting for a time").await;
        b.check_page("client-11-waitlist-entry").await;
        b.click("#leave").await;
        b.wait_for_text("#left", "will not be sent").await;
        b.check_page("client-12-waitlist-left").await;
    })
    .await;

    let left: String = sqlx::query_scalar(
        "select state from waitlist_entry where practice_id = $1 and self_joined",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(left, "removed");

    let status: String =
        sqlx::query_scalar("select status from intake_request where practice_id = $1")
            .bind(p)
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert_eq!(status, "accepted");
    let confirmed: bool = sqlx::query_scalar(
        "select client_confirmed_at is not null from online_booking where practice_id = $1",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert!(confirmed);
}
