//! Issue 18, in Chromium: assistant edits. On the draft screen the clinician asks the
//! practice's drafting provider (a loopback stand-in of `OpenAI` chat completions, spoken to by
//! the real adapter) to revise the draft, sees the proposal as a diff with its flagged
//! sentence, accepts it, accepts the flagged sentence, makes the note and signs it; then asks
//! for an amendment, sees the proposal as a diff in the amendment form, signs it, and the note
//! shows the amendment's diff marked AI-assisted with its assistant turn. Each page: zero CSP
//! violations, zero serious axe-core findings, a screenshot.

use std::panic::AssertUnwindSafe;

use domain::Clock as _;
use futures::FutureExt as _;
use reqwest::Method;
use serde_json::json;
use testkit::standins::Reply;
use thirtyfour::By;

use crate::scribe_assist::{Fx, fx};
use crate::web_browser::{Browser, screenshot_dir, sign_in_enrolling};

// req: SCR-04, SCR-05 — in the browser: a draft edit proposed as a diff and accepted, its
// flagged sentence accepted before signing; an AI-assisted amendment shown as a diff with its
// turn.
#[tokio::test]
async fn a_clinician_revises_a_draft_and_amends_with_the_assistant() {
    let f = fx().await;
    let email = crate::util::email_of(&f.db, f.w.a.user("clinician")).await;
    let mut b = Browser::start().await;
    println!("browser screenshots: {}", screenshot_dir().display());
    let outcome = AssertUnwindSafe(flow(&mut b, &f, &email))
        .catch_unwind()
        .await;
    let quit = b.driver.quit().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    quit.unwrap();
}

async fn wait_for_path_containing(b: &Browser, part: &str, not: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let path = b.path().await;
        // Not the page the click was made on (a proposal page is `…/drafts/{id}/assist`).
        if path.contains(part) && path != not && !path.ends_with("/assist") {
            return path;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {part} page: {path}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[allow(clippy::too_many_lines, reason = "one flow, step by step")]
async fn flow(b: &mut Browser, f: &Fx, email: &str) {
    let p = f.w.a.id;
    let (visit, segs) = f.transcribed_visit().await;
    let d = f.draft(&visit, &segs).await;
    let draft = d["draft_id"].as_str().unwrap().to_owned();

    b.driver.goto(f.app.url("/app")).await.unwrap();
    let key = sign_in_enrolling(
        b,
        &f.app,
        email,
        [
            "120-assist-enroll-start",
            "121-assist-enroll-qr",
            "122-assist-recovery-codes",
            "123-assist-home",
        ],
    )
    .await;
    let draft_path = format!("/app/practices/{p}/drafts/{draft}");
    b.driver.goto(f.app.url(&draft_path)).await.unwrap();
    b.wait_for_text("h1", "Note draft").await;
    b.check_page("124-assist-draft").await;

    // Ask for a revision: the proposal is a diff; one sentence is flagged (a drug and a
    // number the cited segment does not name).
    f.drafter.script(Reply::Draft(json!({"sentences": [
        {"section": "subjective", "text": "Tender gums, lower left.", "evidence": [segs[0]]},
        {"section": "plan", "text": "Rinse with chlorhexidine 0.12% twice daily.", "evidence": [segs[1]]}
    ]})));
    let requests = f.drafter.requests();
    b.fill("#instruction", "Shorter, and add the home-care advice.")
        .await;
    b.click("form[action$='/assist'] button[type=submit]").await;
    b.wait_for_text("h1", "Proposed revision").await;
    assert_eq!(f.drafter.requests(), requests + 1);
    b.wait_for_text(".proposal .diff", "chlorhexidine").await;
    b.wait_for_text(".proposal .diff", "calculus").await;
    b.wait_for_count("li.sentence.flagged", 1).await;
    b.check_page("125-assist-proposal").await;
    b.click("form[action$='/accept'] button[type=submit]").await;
    let revised_path = wait_for_path_containing(b, "/drafts/", &draft_path).await;
    b.wait_for_text("h1", "Note draft").await;
    b.wait_for_text(".notice", "1 flagged sentence").await;
    b.check_page("126-assist-revised-draft").await;

    // The flagged sentence one by one, then the note, signed with a fresh code.
    b.click("li.sentence.flagged form button[type=submit]")
        .await;
    b.wait_for_path(&revised_path).await;
    b.wait_for_text("li.sentence.flagged .accepted", "Accepted")
        .await;
    b.click("form[action$='/note'] button[type=submit]").await;
    let note_path = wait_for_path_containing(b, "/notes/", "").await;
    f.app
        .clock
        .advance(f.app.identity.step_up_window + chrono::Duration::seconds(31));
    b.click("form.sign button[type=submit]").await;
    b.wait_for_text("h1", "Confirm it is you").await;
    b.fill("#code", &key.code_at(f.app.clock.now())).await;
    b.click("main form button[type=submit]").await;
    b.wait_for_path(&note_path).await;
    b.wait_for_text("#note-status", "Signed").await;
    b.wait_for_text("#from-draft-heading", "AI-written").await;

    // Ask for an amendment: the proposal is in the form, with its diff against the signed
    // text and its turn.
    f.drafter.script(Reply::Draft(json!({"sentences": [
        {"section": "subjective", "text": "Tender gums, lower left.", "evidence": [segs[0]]},
        {"section": "plan", "text": "Rinse with chlorhexidine 0.12% twice daily.", "evidence": [segs[1]]},
        {"section": "plan", "text": "Light calculus removed from the lower incisors.", "evidence": [segs[1]]}
    ]})));
    b.driver
        .goto(f.app.url(&format!("{note_path}/amend")))
        .await
        .unwrap();
    b.wait_for_text("h1", "Amend").await;
    b.fill("#instruction", "Record that the calculus was removed.")
        .await;
    b.click("form[action$='/amend/assist'] button[type=submit]")
        .await;
    b.wait_for_text("#proposal-heading", "AI-proposed amendment")
        .await;
    b.wait_for_text(".proposal .diff", "removed").await;
    let turn = b
        .driver
        .find(By::Css("input[name=assistant_turn_id]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    let plan = b
        .driver
        .find(By::Css("#plan"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(plan.contains("calculus removed"), "{plan}");
    b.check_page("127-assist-amend-proposal").await;
    b.fill("#reason", "Calculus removal recorded").await;
    // Signed with the code presented for the note's signature a moment ago (still in the
    // step-up window).
    b.click("form[action$='/amend'] button[type=submit]").await;
    b.wait_for_path(&note_path).await;
    b.wait_for_text("#note-status", "Signed, amended").await;
    b.wait_for_text(".amendment .badge.ai", "AI-assisted").await;
    b.wait_for_text(".amendment .turn", &turn).await;
    b.wait_for_text(".amendment .diff", "removed").await;
    b.check_page("128-assist-amended-note").await;

    // The amendment names the real turn (purpose `amendment_edit`).
    let n = f
        .ok(
            Method::GET,
            &format!(
                "{}/notes/{}",
                f.base(),
                note_path.rsplit('/').next().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(
        n["amendments"][0]["assistant_turn_id"].as_str(),
        Some(turn.as_str())
    );
}
