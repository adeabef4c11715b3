//! Issue 20.8 in a real browser (Chromium through chromedriver, as `web_browser`): an admin
//! opens Patient requests from the menu, sees the open requests with their deadlines (one
//! overdue), and walks an amendment request from open to extended, denied with its reason,
//! the patient's statement of disagreement and the practice's rebuttal with its author;
//! every page with zero CSP violations and zero serious or critical axe-core violations.
//! req: WEB-01

use chrono::{Duration, DurationRound as _};
use domain::Clock as _;
use serde_json::json;
use testkit::{TestDb, World};
use thirtyfour::prelude::*;

use crate::web_browser::{Browser, in_browser, screenshot_dir, sign_in_enrolling};
use crate::web_requests::{api_access, api_amendment, signed_note};

// req: SIG-07, SIG-08 — in Chromium: the list shows the requests soonest due first with the
// days left and the overdue one marked; the amendment request's page is extended once (the
// form then gone), denied with a written reason, and carries the patient's statement of
// disagreement and the practice's rebuttal "by" its author, linked to the note; each page
// clean (CSP and axe), also at 360 px.
#[tokio::test]
async fn an_admin_walks_an_amendment_request_to_denied_with_disagreement_and_rebuttal() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = testkit::TestApp::start(&db).await;
    let p = w.a.id;
    let admin = w.a.user("admin");
    let email = crate::util::email_of(&db, admin).await;
    let token = app.token(admin).await;
    let now = app
        .clock
        .now()
        .duration_trunc(Duration::seconds(1))
        .unwrap();
    let note = signed_note(&app, &w, "Sensitivity upper right").await;
    let overdue = api_access(
        &app,
        &token,
        p,
        &json!({"patient_id": w.a.patient, "form": "paper", "received_at": now - Duration::days(31)}),
    )
    .await;
    let id = api_amendment(
        &app,
        &token,
        p,
        &json!({"patient_id": w.a.patient, "record_kind": "note", "note_id": note,
                "received_at": now - Duration::days(5) + Duration::hours(1),
                "requested_change": "Remove the sensitivity entry: I never had it"}),
    )
    .await;
    println!("browser screenshots: {}", screenshot_dir().display());
    in_browser(async |b: &mut Browser| {
        b.driver.goto(app.url("/app")).await.unwrap();
        sign_in_enrolling(
            b,
            &app,
            &email,
            [
                "requests-01-enroll-start",
                "requests-02-enroll-qr",
                "requests-03-recovery-codes",
                "requests-04-home",
            ],
        )
        .await;
        let list = format!("/app/practices/{p}/requests");
        b.driver.goto(app.url(&list)).await.unwrap();
        b.wait_for_text("h1", "Patient requests").await;
        let menu = b
            .driver
            .find(By::Css(format!("nav.menu a[href=\"{list}\"]")))
            .await
            .unwrap();
        assert_eq!(menu.text().await.unwrap(), "Patient requests");
        b.wait_for_text(&format!("#access-{overdue}"), "overdue by 1 day")
            .await;
        b.wait_for_text(&format!("#amendment-{id}"), "55 days left")
            .await;
        b.wait_for_text("#overdue-count", "1 overdue").await;
        b.check_page("requests-05-list").await;

        let page = format!("{list}/amendment/{id}");
        b.click(&format!("#amendment-{id} a")).await;
        b.wait_for_path(&page).await;
        b.wait_for_text("#request-status", "open").await;
        b.wait_for_text("#requested-change", "never had it").await;
        b.wait_for_text("#time-left", "55 days left").await;
        b.check_page("requests-06-amendment-open").await;

        b.fill(
            "#extend_reason",
            "The treating clinician is away until next month",
        )
        .await;
        b.click("form[action$=\"/extend\"] button[type=submit]")
            .await;
        b.wait_for_text("main .done", "Deadline extended").await;
        b.wait_for_text("#due", "extended once").await;
        b.wait_for_text("#time-left", "85 days left").await;
        assert!(
            b.driver
                .find_all(By::Css("form[action$=\"/extend\"]"))
                .await
                .unwrap()
                .is_empty(),
            "one extension only"
        );
        b.check_page("requests-07-amendment-extended").await;

        b.fill(
            "#deny_reason",
            "The note is accurate and complete as recorded",
        )
        .await;
        b.click("form[action$=\"/deny\"] button[type=submit]").await;
        b.wait_for_text("#request-status", "denied").await;
        b.wait_for_text("#denial-reason", "accurate and complete")
            .await;
        b.check_page("requests-08-amendment-denied").await;

        b.fill(
            "#disagreement_text",
            "I disagree: the sensitivity was never there",
        )
        .await;
        b.click("form[action$=\"/disagreement\"] button[type=submit]")
            .await;
        b.wait_for_text("#disagreement", "never there").await;
        b.check_page("requests-09-amendment-disagreement").await;

        b.fill(
            "#rebuttal_text",
            "Sensitivity was recorded at two visits by the hygienist",
        )
        .await;
        b.click("form[action$=\"/rebuttal\"] button[type=submit]")
            .await;
        b.wait_for_text("#rebuttal", "recorded at two visits").await;
        b.wait_for_text("#rebuttal-by", "rebuttal by admin a").await;
        assert!(
            b.driver
                .find_all(By::Css(format!("main form[action^=\"{page}/\"]")))
                .await
                .unwrap()
                .is_empty(),
            "nothing left to do"
        );
        b.check_page("requests-10-amendment-rebuttal").await;

        // The list: the request is answered now; the page at 360 px.
        b.driver.goto(app.url(&list)).await.unwrap();
        b.wait_for_text("#closed-requests", "denied").await;
        b.check_page("requests-11-list-answered").await;
        b.driver.set_window_rect(0, 0, 360, 800).await.unwrap();
        b.driver.goto(app.url(&page)).await.unwrap();
        b.wait_for_text("#rebuttal-by", "rebuttal by").await;
        b.check_page("requests-12-amendment-360px").await;
        b.driver.set_window_rect(0, 0, 1280, 900).await.unwrap();
    })
    .await;
    let (_, v) = crate::util::call(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/practices/{p}/amendment-requests/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(v["status"], "denied");
    assert_eq!(v["rebuttal_by"], admin.to_string());
}
