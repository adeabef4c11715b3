//! Issue 19.7 in Chromium: the outbox and the templates preview, signed in as reception — no
//! CSP violation and no serious or critical axe-core violation on either page.

use testkit::{TestApp, TestDb, World};

use crate::util::email_of;
use crate::web_browser::{in_browser, sign_in_enrolling};

#[tokio::test]
async fn the_outbox_and_the_templates_preview_pass_csp_and_axe() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = w.a.id;
    let reception = email_of(&db, w.a.user("reception")).await;
    in_browser(async |b| {
        b.driver.goto(app.url("/app")).await.unwrap();
        sign_in_enrolling(
            b,
            &app,
            &reception,
            [
                "templates-01-enroll",
                "templates-02-qr",
                "templates-03-codes",
                "templates-04-home",
            ],
        )
        .await;
        b.driver
            .goto(app.url(&format!("/app/practices/{p}/outbox")))
            .await
            .unwrap();
        b.wait_for_text("h1", "Outbox").await;
        b.check_page("templates-05-outbox").await;
        b.click("main p.hint a").await;
        b.wait_for_text("h1", "Message templates").await;
        b.wait_for_count(
            "section.template-preview",
            outbound::Message::TEMPLATES.len(),
        )
        .await;
        b.check_page("templates-06-preview").await;
    })
    .await;
}
