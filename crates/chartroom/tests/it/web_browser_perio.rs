//! Issue 17, in Chromium: a clinician charts a full-mouth perio exam by typed dictation on the
//! exam page (htmx), from the keyboard too, and the grid shows exactly the API's chart of the
//! exam. Each screen: zero CSP violations, zero serious or critical axe-core violations, a
//! screenshot (helpers of `web_browser`).

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use reqwest::Method;
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};
use thirtyfour::prelude::*;

use crate::web_browser::{Browser, screenshot_dir, sign_in_enrolling};

/// The exam's version the page shows (the dictation form's version field).
async fn version(b: &Browser) -> i64 {
    b.driver
        .execute(
            "const v = document.querySelector('input[name=version][form=dictation]');
             return v ? Number(v.value) : -1;",
            vec![],
        )
        .await
        .unwrap()
        .json()
        .as_i64()
        .unwrap_or(-1)
}

/// Waits (bounded, polling) until the page shows a version other than `before` (htmx has
/// swapped the exam region in).
async fn wait_for_new_version(b: &Browser, before: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = version(b).await;
        if v != before && v > 0 {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "the exam stayed at version {before}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Types `text` into the dictation box and presses Enter, as a keyboard user; waits for the
/// swap.
async fn dictate(b: &Browser, text: &str) -> i64 {
    let before = version(b).await;
    let input = b.driver.find(By::Id("final")).await.unwrap();
    input.send_keys(text).await.unwrap();
    input.send_keys(Key::Enter).await.unwrap();
    let v = wait_for_new_version(b, before).await;
    let msg = b.driver.find(By::Id("perio-message")).await.unwrap();
    let said = msg.text().await.unwrap();
    assert!(!said.contains("Not charted"), "{text}: {said}");
    v
}

/// Every grid cell of the page: (row, tooth, site, text, class, current).
async fn cells(b: &Browser) -> Vec<Value> {
    b.driver
        .execute(
            "return Array.from(document.querySelectorAll('td[data-row][data-site]')).map(c => ({
               row: c.dataset.row, tooth: Number(c.dataset.tooth), site: c.dataset.site,
               text: c.textContent, class: c.className,
               current: c.getAttribute('aria-current') === 'location' }));",
            vec![],
        )
        .await
        .unwrap()
        .json()
        .as_array()
        .cloned()
        .unwrap()
}

// issue 17 — a clinician charts a full-mouth perio exam by typed dictation and the grid
// matches the API's chart: from the chart's link, a new exam; the synthetic full-mouth
// finals typed into the dictation box (Enter sends, htmx swaps the grid), a site picked from
// the grid with the arrow keys and Enter, depths typed as digits from the grid, a deep pocket
// held and confirmed, a final undone; then every cell (depth, margin, CAL, bleeding and
// suppuration marks, the ≥ 4 / ≥ 6 mm highlights, the cursor) equals the API's JSON of the
// exam, and the derived values are the API's. CSP and axe clean on every screen, at 360 px
// too (the grid scrolls inside its region); the print stylesheet hides the forms.
#[tokio::test]
async fn a_clinician_charts_a_full_mouth_perio_exam_by_typed_dictation() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let email = crate::util::email_of(&db, world.a.user("clinician")).await;
    let mut b = Browser::start().await;
    println!("browser screenshots: {}", screenshot_dir().display());
    let outcome = AssertUnwindSafe(perio_flow(&mut b, &app, &world, &email))
        .catch_unwind()
        .await;
    let quit = b.driver.quit().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    quit.unwrap();
}

#[allow(clippy::too_many_lines, reason = "one flow, step by step")]
async fn perio_flow(b: &mut Browser, app: &TestApp, world: &World, email: &str) {
    let p = world.a.id;
    let patient = world.a.patient;
    b.driver.goto(app.url("/app")).await.unwrap();
    sign_in_enrolling(
        b,
        app,
        email,
        [
            "80-perio-enroll-start",
            "81-perio-enroll-qr",
            "82-perio-recovery-codes",
            "83-perio-home",
        ],
    )
    .await;
    let chart = format!("/app/practices/{p}/patients/{patient}/chart");
    b.driver.goto(app.url(&chart)).await.unwrap();
    b.click(&format!(
        "a[href=\"/app/practices/{p}/patients/{patient}/perio\"]"
    ))
    .await;
    b.wait_for_text("h1", "Periodontal exams").await;
    b.check_page("84-perio-exams").await;
    b.click("main form.inline button[type=submit]").await;
    b.wait_for_text("h1", "Periodontal exam:").await;
    let exam = b.path().await.rsplit('/').next().unwrap().to_owned();
    b.check_page("85-perio-new-exam").await;

    for text in testkit::perio::full_mouth_finals(17) {
        dictate(b, &text).await;
    }
    b.check_page("86-perio-full-mouth").await;

    // From the keyboard: into the grid, three cells right and one down, Enter picks the site
    // (the box says which), Enter sends it; the cursor moves there.
    b.driver
        .execute(
            "document.querySelector('#perio-upper td[data-row=pd][data-tooth=\"2\"][data-site=DB]').focus();",
            vec![],
        )
        .await
        .unwrap();
    b.driver
        .action_chain()
        .send_keys(Key::Right)
        .send_keys(Key::Right)
        .send_keys(Key::Right)
        .send_keys(Key::Enter)
        .perform()
        .await
        .unwrap();
    let picked = b
        .driver
        .find(By::Id("final"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(picked.trim(), "select tooth 3 facial distal");
    let before = version(b).await;
    b.driver
        .action_chain()
        .send_keys(Key::Enter)
        .perform()
        .await
        .unwrap();
    wait_for_new_version(b, before).await;
    let current: Vec<Value> = cells(b)
        .await
        .into_iter()
        .filter(|c| c["current"] == true)
        .collect();
    assert_eq!(current.len(), 1, "{current:?}");
    assert_eq!(
        (current[0]["tooth"].as_i64(), current[0]["site"].as_str()),
        (Some(3), Some("DB"))
    );
    // Digits typed in the grid go to the dictation box.
    b.driver
        .execute(
            "document.querySelector('td[aria-current]').focus();",
            vec![],
        )
        .await
        .unwrap();
    b.driver
        .action_chain()
        .send_keys("5")
        .perform()
        .await
        .unwrap();
    let typed = b
        .driver
        .find(By::Id("final"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(
        typed, "5 ",
        "the digit went to the dictation box, which has the focus"
    );
    b.driver
        .action_chain()
        .send_keys("3 4")
        .perform()
        .await
        .unwrap();
    let typed = b
        .driver
        .find(By::Id("final"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(typed, "5 3 4");
    let before = version(b).await;
    b.driver
        .action_chain()
        .send_keys(Key::Enter)
        .perform()
        .await
        .unwrap();
    wait_for_new_version(b, before).await;

    // A deep pocket is held: shown, then confirmed.
    let before = version(b).await;
    let input = b.driver.find(By::Id("final")).await.unwrap();
    input
        .send_keys("tooth 2 buccal five thirteen four")
        .await
        .unwrap();
    input.send_keys(Key::Enter).await.unwrap();
    wait_for_new_version(b, before).await;
    b.wait_for_text(".pending", "depth 13").await;
    b.check_page("87-perio-held").await;
    let before = version(b).await;
    b.click(".pending form button[type=submit]").await;
    wait_for_new_version(b, before).await;
    assert!(
        b.driver.find(By::Css(".pending")).await.is_err(),
        "confirmed"
    );
    // A final, undone.
    dictate(b, "tooth 5 buccal nine nine nine").await;
    let before = version(b).await;
    b.click(".perio-tools form button[type=submit]").await;
    wait_for_new_version(b, before).await;

    // The grid is the API's chart.
    let token = app.token(world.a.user("clinician")).await;
    let (status, api) = crate::util::call(
        app,
        Method::GET,
        &format!("/api/v1/practices/{p}/patients/{patient}/perio-exams/{exam}"),
        Some(&token),
        None,
    )
    .await;
    assert!(status.is_success(), "{api}");
    assert_eq!(api["version"].as_i64(), Some(version(b).await));
    assert_eq!(api["chart"]["teeth"]["2"]["pd"]["B"], 13);
    assert_eq!(
        api["chart"]["teeth"]["5"]["pd"]["B"]
            .as_i64()
            .map(|v| v != 9),
        Some(true)
    );
    let teeth = api["chart"]["teeth"].as_object().unwrap();
    let derived = api["derived"]["teeth"].as_array().unwrap();
    let all = cells(b).await;
    let mut compared = 0;
    for c in &all {
        let tooth = c["tooth"].as_i64().unwrap();
        let site = c["site"].as_str().unwrap();
        let rec = teeth.get(&tooth.to_string());
        let status = rec.map_or("present", |r| r["status"].as_str().unwrap());
        let text = c["text"].as_str().unwrap();
        let class = c["class"].as_str().unwrap();
        let value = |m: &str| rec.and_then(|r| r[m][site].as_i64());
        let shown = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        let what = format!("{} {tooth} {site}", c["row"]);
        if status == "missing" {
            assert_eq!(text, "", "{what}");
            assert!(class.contains("absent"), "{what}");
            continue;
        }
        match c["row"].as_str().unwrap() {
            "pd" => {
                let pd = value("pd");
                assert_eq!(text, shown(pd), "{what}");
                let want = match pd {
                    Some(v) if v >= 6 => "deep6",
                    Some(v) if v >= 4 => "deep4",
                    _ => "",
                };
                for k in ["deep4", "deep6"] {
                    assert_eq!(
                        class.split(' ').any(|x| x == k),
                        want == k,
                        "{what} {class}"
                    );
                }
                let at = api["cursor"]["tooth"] == tooth && api["cursor"]["site"] == site;
                assert_eq!(c["current"] == true, at, "{what}: the cursor");
            }
            "gm" => assert_eq!(text, shown(value("recession")), "{what}"),
            "cal" => {
                let cal = derived
                    .iter()
                    .find(|t| t["tooth"] == tooth)
                    .and_then(|t| t["cal"][site].as_i64());
                assert_eq!(text, shown(cal), "{what}");
            }
            "marks" => {
                let has = |flag: &str| {
                    rec.is_some_and(|r| r[flag].as_array().unwrap().iter().any(|s| s == site))
                };
                let want = format!(
                    "{}{}",
                    if has("bleeding") { "B" } else { "" },
                    if has("suppuration") { "S" } else { "" }
                );
                assert_eq!(text, want, "{what}");
            }
            "fur" => {
                let entrance = match site {
                    "B" => "B",
                    "L" => "L",
                    "ML" => "M",
                    "DL" => "D",
                    _ => "",
                };
                let grade = rec
                    .and_then(|r| r.get("furcation"))
                    .and_then(|f| f.get(entrance))
                    .and_then(|g| g.get("grade").or(Some(g)))
                    .and_then(Value::as_i64);
                assert_eq!(text, shown(grade), "{what}");
            }
            _ => continue,
        }
        compared += 1;
    }
    // Five rows of six sites on 28 present teeth.
    assert_eq!(compared, 5 * 6 * 28, "cells compared");
    for (id, key) in [
        ("perio-ge4", "sites_pd_ge_4"),
        ("perio-ge6", "sites_pd_ge_6"),
    ] {
        let shown = b
            .driver
            .find(By::Id(id))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(shown, api["derived"][key].to_string(), "{key}");
    }
    let bop = b
        .driver
        .find(By::Id("perio-bop"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        bop,
        format!("{:.1} %", api["derived"]["bop_percent"].as_f64().unwrap())
    );
    b.check_page("88-perio-charted").await;

    // At 360 px the grid scrolls inside its labelled region, not the page.
    b.driver.set_window_rect(0, 0, 360, 800).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while b
        .driver
        .execute("return window.innerWidth;", vec![])
        .await
        .unwrap()
        .json()
        .as_i64()
        .is_none_or(|w| w > 360)
    {
        assert!(
            Instant::now() < deadline,
            "the window never became 360 px wide"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let widths = b
        .driver
        .execute(
            "const r = document.querySelector('.perio-grid');
             return { region: r.clientWidth, grid: r.scrollWidth,
                      page: document.documentElement.scrollWidth,
                      viewport: document.documentElement.clientWidth };",
            vec![],
        )
        .await
        .unwrap()
        .json()
        .clone();
    assert!(
        widths["grid"].as_i64() > widths["region"].as_i64(),
        "{widths}"
    );
    b.check_page("89-perio-360px").await;
    b.driver.set_window_rect(0, 0, 1280, 900).await.unwrap();

    // Printed: no forms or navigation, the grid shown.
    b.driver
        .cdp()
        .send_raw("Emulation.setEmulatedMedia", json!({ "media": "print" }))
        .await
        .unwrap();
    let shown = b
        .driver
        .execute(
            "const d = s => getComputedStyle(document.querySelector(s)).display;
             return { form: d('#dictation'), menu: d('header.top'), grid: d('table.perio') };",
            vec![],
        )
        .await
        .unwrap()
        .json()
        .clone();
    assert_eq!(
        shown,
        json!({ "form": "none", "menu": "none", "grid": "table" })
    );
    b.check_page("90-perio-print").await;
    b.driver
        .cdp()
        .send_raw("Emulation.setEmulatedMedia", json!({ "media": "" }))
        .await
        .unwrap();
}
