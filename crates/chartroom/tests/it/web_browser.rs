//! Issue 17, in a real browser: Debian's Chromium driven through its own chromedriver over
//! `WebDriver` (thirtyfour, no driver download; `./dev test` installs both packages). Each page
//! visited must record zero CSP violations (a `securitypolicyviolation` listener installed
//! before any page script runs) and zero serious or critical axe-core violations (axe
//! vendored under `crates/web/test-fixtures`, injected through `WebDriver`). Screenshots of every
//! screen go to `target/tmp/web-screenshots/` (the path is printed).
//! req: WEB-01

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use domain::Clock as _;
use futures::FutureExt as _;
use serde_json::{Value, json};
use server::identity::totp::TotpKey;
use testkit::{TestApp, TestDb, World};
use thirtyfour::prelude::*;

const CHROMIUM: &str = "/usr/bin/chromium";
/// What reception must never see: a clinical link, tab, heading or count.
const CLINICAL: [&str; 8] = [
    "/notes", "/perio", "/visits", "/chart", ">Chart<", "Notes", "Perio", "Clinical",
];
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The axe-core build the tests inject (MPL-2.0; see crates/web/static/vendor/VENDOR.md).
const AXE: &str =
    include_str!("../../../web/test-fixtures/vendor/axe-core-4.14.1/axe-4.14.1.min.js");

/// Installed before every document's own scripts (CDP `Page.addScriptToEvaluateOnNewDocument`,
/// which the page's CSP does not govern): keeps each CSP violation of the document.
pub(crate) const COLLECTOR: &str = "window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push({directive: e.effectiveDirective, blocked: e.blockedURI,
    source: e.sourceFile + ':' + e.lineNumber, sample: e.sample});
});";

/// Chromium's sandbox does not run as root; the tests' container often is.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Where the screenshots go.
pub(crate) fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots")
}

/// chromedriver on a free loopback port, and a headless Chromium session through it.
pub(crate) struct Browser {
    pub(crate) driver: WebDriver,
    /// chromedriver's URL (for `WebDriver` extension commands thirtyfour has no method for).
    pub(crate) driver_url: String,
    _chromedriver: tokio::process::Child,
    visited: Vec<String>,
}

impl Browser {
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// [`Browser::start`] with further Chromium switches (e.g. a fake microphone fed from a
    /// file: `--use-fake-device-for-media-stream`, `--use-file-for-fake-audio-capture=…`).
    pub(crate) async fn start_with(extra: &[&str]) -> Self {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: run ./dev test (it installs Debian's chromium and chromium-driver) \
                 or apt-get install -y chromium chromium-driver"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        // Poll its status endpoint until it answers (bounded).
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http
                .get(format!("{url}/status"))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if ready.is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(CHROMIUM).unwrap();
        for arg in [
            "--headless=new",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            "--ignore-certificate-errors",
            // Date and time inputs take their segments in the locale's order (month, day,
            // year; hours, minutes, AM/PM): fixed so typing into them is reproducible.
            "--lang=en-US",
        ] {
            caps.add_arg(arg).unwrap();
        }
        for arg in extra {
            caps.add_arg(arg).unwrap();
        }
        if running_as_root() {
            caps.add_arg("--no-sandbox").unwrap();
        }
        caps.accept_insecure_certs(true).unwrap();
        let driver = WebDriver::new(url.clone(), caps)
            .await
            .expect("chromium session");
        driver
            .cdp()
            .send_raw(
                "Page.addScriptToEvaluateOnNewDocument",
                json!({ "source": COLLECTOR }),
            )
            .await
            .expect("install the CSP violation collector");
        std::fs::create_dir_all(screenshot_dir()).unwrap();
        Self {
            driver,
            driver_url: url,
            _chromedriver: child,
            visited: Vec::new(),
        }
    }

    /// The CSP violations the current document has recorded.
    async fn csp_violations(&self) -> Vec<Value> {
        let v = self
            .driver
            .execute("return window.__cspViolations || null;", vec![])
            .await
            .unwrap();
        v.json()
            .as_array()
            .cloned()
            .expect("the collector runs in every document")
    }

    /// Checks the current page: zero CSP violations, then zero serious or critical axe-core
    /// violations; saves a screenshot named `name`.
    pub(crate) async fn check_page(&mut self, name: &str) {
        let started = Instant::now();
        let violations = self.csp_violations().await;
        assert!(
            violations.is_empty(),
            "{name}: CSP violations: {violations:#?}"
        );
        self.driver
            .screenshot(&screenshot_dir().join(format!("{name}.png")))
            .await
            .unwrap();
        self.driver
            .execute(format!("{AXE}\n;return true;"), vec![])
            .await
            .expect("inject axe-core");
        let result = self
            .driver
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                   .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
                      targets: v.nodes.map(n => n.target.join(' ')) }))))
                   .catch(e => done({ error: String(e) }));",
                vec![],
            )
            .await
            .unwrap();
        let list = result
            .json()
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("{name}: axe failed: {}", result.json()));
        let serious: Vec<&Value> = list
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(
            serious.is_empty(),
            "{name}: serious accessibility violations: {serious:#?}"
        );
        println!("checked {name} in {} ms", started.elapsed().as_millis());
        self.visited.push(name.to_owned());
    }

    pub(crate) async fn path(&self) -> String {
        self.driver.current_url().await.unwrap().path().to_owned()
    }

    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let e = self.driver.find(By::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    pub(crate) async fn click(&self, css: &str) {
        self.driver
            .find(By::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Waits (bounded, polling) until exactly `n` elements match `css` (htmx may still be
    /// swapping: the rows shown before a search are not its result).
    pub(crate) async fn wait_for_count(&self, css: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found = self
                .driver
                .find_all(By::Css(css))
                .await
                .map_or(usize::MAX, |all| all.len());
            if found == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css}: {found} elements, never {n}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `keys` into the input (focused first, as a keyboard user would), without
    /// clearing it: date and time inputs take their segments in order and overwrite them.
    pub(crate) async fn type_keys(&self, css: &str, keys: &str) {
        self.driver
            .find(By::Css(css))
            .await
            .unwrap()
            .send_keys(keys)
            .await
            .unwrap();
    }

    /// The current value of an input.
    pub(crate) async fn value(&self, css: &str) -> String {
        self.driver
            .find(By::Css(css))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// [`Browser::check_page`], and the page has no clinical content.
    async fn check_clean(&mut self, name: &str) {
        self.check_page(name).await;
        self.assert_no_clinical_content(name).await;
    }

    /// The page source has no clinical link, tab, heading or count.
    async fn assert_no_clinical_content(&self, name: &str) {
        let source = self.driver.source().await.unwrap();
        for clinical in CLINICAL {
            assert!(
                !source.contains(clinical),
                "{name}: reception sees {clinical}"
            );
        }
    }

    /// Waits (bounded, polling) until the browser is at `want` (a click on a submit button
    /// may return before the navigation it starts has finished).
    pub(crate) async fn wait_for_path(&self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = match self.driver.current_url().await {
                Ok(url) => url.path().to_owned(),
                Err(_) => String::new(),
            };
            if now == want {
                return;
            }
            assert!(Instant::now() < deadline, "never reached {want}: at {now}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded, polling) until the element's text contains `want`.
    pub(crate) async fn wait_for_text(&self, css: &str, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            // The page may be navigating or htmx swapping: an element that is missing or
            // went stale between the find and the read is "not yet", not a failure.
            let text = match self.driver.find(By::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(want) {
                return text;
            }
            if Instant::now() > deadline {
                let state = self
                    .driver
                    .execute(
                        "const main = document.querySelector('main');
                         return { htmx: typeof htmx, csp: window.__cspViolations || null,
                           path: location.pathname,
                           main: main ? main.innerText.slice(0, 600) : null };",
                        vec![],
                    )
                    .await
                    .unwrap();
                panic!(
                    "{css} never showed {want:?}: {text:?}; page state: {:#}",
                    state.json()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Signs in with the password and enrolls TOTP (the account has no second factor yet): the
/// QR code is drawn, the code comes from the secret the page shows, the ten recovery codes
/// are shown once; ends on the home page. Each of the four screens is checked and saved
/// under the given names. Returns the authenticator (for a later step-up).
pub(crate) async fn sign_in_enrolling(
    b: &mut Browser,
    app: &TestApp,
    email: &str,
    shots: [&str; 4],
) -> TotpKey {
    b.fill("#email", email).await;
    b.fill("#password", testkit::PASSWORD).await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_path("/app/sign-in/enroll").await;
    b.check_page(shots[0]).await;
    b.click("main form button[type=submit]").await;
    b.wait_for_text("h1", "Scan the QR code").await;
    let svg = b.driver.find(By::Css(".qr svg")).await.unwrap();
    assert!(svg.is_displayed().await.unwrap(), "the QR code is drawn");
    b.check_page(shots[1]).await;
    let uri = b
        .driver
        .find(By::Id("otpauth-link"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let shown = b.driver.find(By::Id("totp-secret")).await.unwrap();
    assert!(uri.contains(&format!("secret={}", shown.text().await.unwrap())));
    let key = TotpKey::from_uri(&uri).unwrap();
    b.fill("#code", &key.code_at(app.clock.now())).await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_text("h1", "Save your recovery codes").await;
    let codes = b
        .driver
        .find_all(By::Css("#recovery-codes li"))
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    b.check_page(shots[2]).await;
    b.click("main a.button").await;
    b.wait_for_path("/app").await;
    b.check_page(shots[3]).await;
    key
}

// issue 17 — in Chromium: a reception member's first sign-in enrolls TOTP (QR as server SVG,
// the code computed from the secret the page shows), sees the recovery codes once, opens the
// patients page and searches it with htmx, finds nothing clinical, and signs out; every page
// has zero CSP violations and zero serious/critical axe violations.
#[tokio::test]
async fn reception_signs_in_with_totp_enrollment_and_sees_no_clinical_content() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let user = world.a.user("reception");
    let email = crate::util::email_of(&db, user).await;
    let token = app.token(user).await;
    let patient = testkit::read_patient(&app.store, &token, world.a.id, world.a.patient)
        .await
        .unwrap()
        .unwrap();
    let mut b = Browser::start().await;
    println!("browser screenshots: {}", screenshot_dir().display());
    // The browser is closed whatever happens (a panic would leave Chromium running).
    let outcome = AssertUnwindSafe(reception_flow(&mut b, &app, &world, &email, &patient))
        .catch_unwind()
        .await;
    let quit = b.driver.quit().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    quit.unwrap();
}

async fn reception_flow(
    b: &mut Browser,
    app: &TestApp,
    world: &World,
    email: &str,
    patient: &store::patients::Patient,
) {
    // Anonymous → the sign-in page.
    b.driver.goto(app.url("/app")).await.unwrap();
    assert_eq!(b.path().await, "/app/sign-in");
    b.check_page("01-sign-in").await;
    // A wrong password: the generic message.
    b.fill("#email", email).await;
    b.fill("#password", "not the password at all").await;
    b.click("form.stack button[type=submit]").await;
    let alert = b.wait_for_text("[role=alert]", "incorrect").await;
    assert_eq!(alert, "the email or password is incorrect");
    b.check_page("02-sign-in-failed").await;
    // The password, then enrollment (no second factor yet).
    sign_in_enrolling(
        b,
        app,
        email,
        [
            "03-enroll-start",
            "04-enroll-qr",
            "05-recovery-codes",
            "06-home",
        ],
    )
    .await;

    // The patients page, as reception: demographics only.
    b.driver
        .find(By::LinkText("Patients"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_path(&format!("/app/practices/{}/patients", world.a.id))
        .await;
    let rows = b.wait_for_text("#patient-rows", &patient.family_name).await;
    assert!(rows.contains(&patient.given_name));
    let header = b.driver.find(By::Css("header.top")).await.unwrap();
    let header = header.text().await.unwrap();
    assert!(header.contains("Practice a"), "{header}");
    assert!(header.contains("reception a"), "{header}");
    b.check_page("07-patients").await;
    // Search with htmx: the rows are swapped in (Trusted Types through the default policy).
    let prefix: String = patient.family_name.chars().take(3).collect();
    b.fill("#q", "zz").await;
    b.wait_for_text("#patient-rows", "No patient matches").await;
    b.fill("#q", &prefix).await;
    b.wait_for_text("#patient-rows", &patient.family_name).await;
    b.check_page("08-patients-search").await;
    b.assert_no_clinical_content("patients").await;
    // At 360 px wide.
    b.driver.set_window_rect(0, 0, 360, 800).await.unwrap();
    b.check_page("09-patients-360px").await;
    b.driver.set_window_rect(0, 0, 1280, 900).await.unwrap();

    // The collector and Trusted Types work: an HTML sink outside htmx's parser is blocked
    // and recorded.
    let blocked = b
        .driver
        .execute(
            "try { document.body.insertAdjacentHTML('beforeend', '<b>x</b>'); return false; }
             catch (e) { return e instanceof TypeError; }",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(blocked.json(), &json!(true), "Trusted Types are enforced");
    let recorded = b.csp_violations().await;
    assert!(
        recorded
            .iter()
            .any(|v| v["directive"] == "require-trusted-types-for"),
        "{recorded:#?}"
    );

    // Sign out: back to the sign-in page, and the app is closed again.
    b.click("form.sign-out button").await;
    b.wait_for_path("/app/sign-in").await;
    b.check_page("10-signed-out").await;
    b.driver.goto(app.url("/app")).await.unwrap();
    assert_eq!(b.path().await, "/app/sign-in");
    println!(
        "browser screenshots: {} ({} screens)",
        screenshot_dir().display(),
        b.visited.len()
    );
}

// issue 17 — in Chromium, as reception: create a patient (a refused form first, its messages
// next to the fields), find them by date of birth, book them in a clinician's week view
// (finding them again by date of birth), move the appointment, cancel it — keyboard
// activation on the way — and meet no clinical content; every page has zero CSP violations
// and zero serious/critical axe violations, and the week view works at 360 px.
#[tokio::test]
async fn reception_books_moves_and_cancels_an_appointment_and_sees_no_clinical_content() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let user = world.a.user("reception");
    let email = crate::util::email_of(&db, user).await;
    let mut b = Browser::start().await;
    println!("browser screenshots: {}", screenshot_dir().display());
    let outcome = AssertUnwindSafe(schedule_flow(&mut b, &app, &world, &email))
        .catch_unwind()
        .await;
    let quit = b.driver.quit().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    quit.unwrap();
}

async fn schedule_flow(b: &mut Browser, app: &TestApp, world: &World, email: &str) {
    let p = world.a.id;
    b.driver.goto(app.url("/app")).await.unwrap();
    assert_eq!(b.path().await, "/app/sign-in");
    sign_in_enrolling(
        b,
        app,
        email,
        [
            "20-enroll-start",
            "21-enroll-qr",
            "22-recovery-codes",
            "23-home",
        ],
    )
    .await;

    // A new patient: a refused form first (no family name, a malformed email).
    b.driver
        .find(By::LinkText("Patients"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_path(&format!("/app/practices/{p}/patients"))
        .await;
    b.driver
        .find(By::LinkText("New patient"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_path(&format!("/app/practices/{p}/patients/new"))
        .await;
    b.check_clean("24-patient-new").await;
    b.fill("#given_name", "Marisol").await;
    b.fill("#email", "marisol-at-example").await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_text("#family_name-error", "Family name: must not be empty.")
        .await;
    b.wait_for_text("#email-error", "Email:").await;
    let family = b.driver.find(By::Id("family_name")).await.unwrap();
    assert_eq!(
        family.attr("aria-describedby").await.unwrap().as_deref(),
        Some("family_name-error")
    );
    assert_eq!(
        family.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    assert_eq!(
        b.value("#given_name").await,
        "Marisol",
        "what was typed stays"
    );
    b.check_clean("25-patient-new-refused").await;
    b.fill("#family_name", "Thistlewood").await;
    b.fill("#email", "marisol@test.example.invalid").await;
    b.type_keys("#date_of_birth", "07141991").await;
    assert_eq!(b.value("#date_of_birth").await, "1991-07-14");
    b.fill("#phone", "(555) 010-3141").await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_text("main .done", "Patient created.").await;
    assert!(
        b.path()
            .await
            .starts_with(&format!("/app/practices/{p}/patients/"))
    );
    b.check_clean("26-patient-created").await;

    // Found by date of birth on the patients page (htmx swaps the rows).
    b.driver
        .find(By::LinkText("Back to patients"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_path(&format!("/app/practices/{p}/patients"))
        .await;
    b.type_keys("#dob", "07141991").await;
    // Only the patient born that day (the list before the search showed every patient).
    b.wait_for_count("#patient-rows tr", 1).await;
    b.wait_for_text("#patient-rows", "Thistlewood, Marisol")
        .await;
    b.check_clean("27-patients-by-date-of-birth").await;

    // The schedule: the clinician's week; next week's Wednesday, Book.
    b.driver
        .find(By::LinkText("Schedule"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_path(&format!("/app/practices/{p}/schedule"))
        .await;
    b.wait_for_text("h1", "clinician a").await;
    b.check_clean("28-schedule-week").await;
    // From the keyboard: the first Tab reaches the skip link, drawn with a visible focus ring.
    b.driver
        .action_chain()
        .send_keys(Key::Tab)
        .perform()
        .await
        .unwrap();
    let focus = b
        .driver
        .execute(
            "const e = document.activeElement; const s = getComputedStyle(e);
             return { text: e.textContent, outline: s.outlineStyle, width: s.outlineWidth };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        focus.json()["text"],
        "Skip to main content",
        "{}",
        focus.json()
    );
    assert_eq!(focus.json()["outline"], "solid", "{}", focus.json());
    assert_eq!(focus.json()["width"], "3px", "{}", focus.json());
    let monday = app
        .clock
        .now()
        .date_naive()
        .week(chrono::Weekday::Mon)
        .first_day()
        + chrono::Duration::days(7);
    let wednesday = monday + chrono::Duration::days(2);
    b.driver
        .find(By::LinkText("Next week"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_text("h1", &format!("Week of {}", monday.format("%a %-d %b %Y")))
        .await;
    b.click(&format!(".book a[href$=\"date={wednesday}\"]"))
        .await;
    b.wait_for_text("h1", "Book an appointment").await;
    b.check_clean("29-book").await;
    b.type_keys("#dob", "07141991").await;
    b.click("form[role=search] button[type=submit]").await;
    b.wait_for_text("fieldset", "Thistlewood, Marisol").await;
    let choice = b
        .driver
        .find(By::Css("input[name=patient_id]"))
        .await
        .unwrap();
    assert!(
        choice.is_selected().await.unwrap(),
        "the one match is chosen"
    );
    assert_eq!(b.value("#date").await, wednesday.to_string());
    b.check_clean("30-book-patient-found").await;
    b.type_keys("#start", "0930AM").await;
    assert_eq!(b.value("#start").await, "09:30");
    // Enter in a field submits the form, as for any keyboard user.
    b.driver
        .find(By::Id("minutes"))
        .await
        .unwrap()
        .send_keys(Key::Enter)
        .await
        .unwrap();
    let week = b.wait_for_text(".days", "09:30–10:00").await;
    assert!(week.contains("Thistlewood, Marisol"), "{week}");
    assert_eq!(b.path().await, format!("/app/practices/{p}/schedule"));
    b.check_clean("31-week-booked").await;

    // Move it, following the link from the keyboard.
    b.driver
        .find(By::Css(".slot a[href$=\"/move\"]"))
        .await
        .unwrap()
        .send_keys(Key::Enter)
        .await
        .unwrap();
    b.wait_for_text("h1", "Move the appointment").await;
    assert_eq!(b.value("#start").await, "09:30");
    b.check_clean("32-move").await;
    b.type_keys("#start", "1100AM").await;
    assert_eq!(b.value("#start").await, "11:00");
    b.click("form.stack button[type=submit]").await;
    let week = b.wait_for_text(".days", "11:00–11:30").await;
    assert!(!week.contains("09:30–10:00"), "{week}");
    b.check_clean("33-week-moved").await;
    // The day view of that Wednesday.
    b.click(&format!("h2 a[href$=\"date={wednesday}\"]")).await;
    b.wait_for_path(&format!("/app/practices/{p}/schedule/day"))
        .await;
    b.wait_for_text(".days", "11:00–11:30").await;
    b.check_clean("34-schedule-day").await;

    // Cancel it, after the confirmation, pressing the button from the keyboard.
    b.click(".slot a[href$=\"/cancel\"]").await;
    b.wait_for_text("h1", "Cancel the appointment?").await;
    b.wait_for_text("main dl", "Marisol Thistlewood").await;
    b.check_clean("35-cancel-confirm").await;
    b.driver
        .find(By::Css("form.confirm button[type=submit]"))
        .await
        .unwrap()
        .send_keys(Key::Enter)
        .await
        .unwrap();
    let week = b.wait_for_text(".days", "cancelled").await;
    assert!(
        week.contains("11:00–11:30"),
        "a cancelled appointment stays, marked"
    );
    assert!(
        b.driver
            .find_all(By::Css(".slot a"))
            .await
            .unwrap()
            .is_empty(),
        "no move or cancel on a cancelled appointment"
    );
    b.check_clean("36-week-cancelled").await;
    // At 360 px wide.
    b.driver.set_window_rect(0, 0, 360, 800).await.unwrap();
    b.check_clean("37-week-360px").await;
    b.driver.set_window_rect(0, 0, 1280, 900).await.unwrap();

    // The API sees the same appointment: Wednesday 11:00–11:30 UTC, cancelled.
    let token = app.token(world.a.user("reception")).await;
    let from = monday.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let (status, list) = crate::util::call(
        app,
        reqwest::Method::GET,
        &format!(
            "/api/v1/practices/{p}/appointments?from={}&to={}",
            from.format("%Y-%m-%dT%H:%M:%SZ"),
            (from + chrono::Duration::days(7)).format("%Y-%m-%dT%H:%M:%SZ")
        ),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{list}");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["status"], "cancelled");
    assert_eq!(list[0]["starts_at"], format!("{wednesday}T11:00:00Z"));
    println!(
        "browser screenshots: {} ({} screens)",
        screenshot_dir().display(),
        b.visited.len()
    );
}

// issue 17 — in Chromium: an owner's first sign-in enrolls TOTP; six minutes later the
// support access form asks for the code again (the API's step-up); the owner approves a
// support grant with the code from the authenticator, sees it listed, and revokes it; the
// members page is in the owner's menu; every page has zero CSP violations and zero serious
// or critical axe violations.
#[tokio::test]
async fn owner_approves_a_support_grant_with_step_up_and_revokes_it() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let email = crate::util::email_of(&db, world.a.user("owner")).await;
    let support = format!(
        "support.{}@test.example.invalid",
        uuid::Uuid::new_v4().simple()
    );
    let owner = db.owner().await;
    owner
        .create_support_user(
            &support,
            "Vendor Support",
            testkit::password_hash(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    owner.close().await;
    let mut b = Browser::start().await;
    println!("browser screenshots: {}", screenshot_dir().display());
    let outcome = AssertUnwindSafe(owner_flow(&mut b, &app, &world, &email, &support))
        .catch_unwind()
        .await;
    let quit = b.driver.quit().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    quit.unwrap();
}

async fn owner_flow(b: &mut Browser, app: &TestApp, world: &World, email: &str, support: &str) {
    let p = world.a.id;
    b.driver.goto(app.url("/app")).await.unwrap();
    assert_eq!(b.path().await, "/app/sign-in");
    let key = sign_in_enrolling(
        b,
        app,
        email,
        [
            "owner-01-enroll-start",
            "owner-02-enroll-qr",
            "owner-03-recovery-codes",
            "owner-04-home",
        ],
    )
    .await;
    // The owner's menu holds the owner screens, and nothing of reception's.
    let home = b.driver.source().await.unwrap();
    assert!(home.contains(&format!("/app/practices/{p}/members")));
    assert!(home.contains(&format!("/app/practices/{p}/support")));
    assert!(!home.contains("/patients"));
    b.driver
        .goto(app.url(&format!("/app/practices/{p}/members")))
        .await
        .unwrap();
    b.wait_for_text("h1", "Members").await;
    b.check_page("owner-05-members").await;

    // Six minutes on, the approve form asks for the code again.
    app.clock.advance(chrono::Duration::minutes(6));
    let support_page = format!("/app/practices/{p}/support");
    b.driver.goto(app.url(&support_page)).await.unwrap();
    b.wait_for_text("h1", "Support access").await;
    assert!(
        b.driver.find(By::Id("code")).await.is_ok(),
        "the step-up field"
    );
    b.check_page("owner-06-support-step-up").await;
    b.fill("#support_email", support).await;
    b.fill("#reason", "Help with the appointment import").await;
    b.fill("#hours", "2").await;
    b.fill("#code", &key.code_at(app.clock.now())).await;
    b.click("form[action$='/support-grants'] button[type=submit]")
        .await;
    b.wait_for_text("main", "Support access approved.").await;
    assert_eq!(b.path().await, support_page);
    let row = b.wait_for_text("#grants tbody", "active").await;
    assert!(row.contains("Help with the appointment import"), "{row}");
    assert!(
        b.driver.find(By::Id("code")).await.is_err(),
        "the step-up is fresh again"
    );
    b.check_page("owner-07-support-approved").await;

    // Revoke: the grant is listed as revoked and offers no action any more.
    b.click("#grants form button[type=submit]").await;
    b.wait_for_text("main", "Support access revoked.").await;
    b.wait_for_text("#grants tbody", "revoked").await;
    assert!(b.driver.find(By::Css("#grants form")).await.is_err());
    b.check_page("owner-08-support-revoked").await;

    // The audit log, filtered by action: the approval and the revocation are there.
    let audit = format!("/app/practices/{p}/audit");
    b.driver.goto(app.url(&audit)).await.unwrap();
    b.wait_for_text("h1", "Audit log").await;
    b.check_page("owner-09-audit").await;
    b.click("#action option[value='support_grant.revoke']")
        .await;
    b.click("form[action$='/audit'] button[type=submit]").await;
    let rows = b
        .wait_for_text("#events tbody", "support_grant.revoke")
        .await;
    assert!(!rows.contains("support_grant.approve"), "{rows}");
    assert!(rows.contains("owner a"), "{rows}");
    let url = b.driver.current_url().await.unwrap();
    assert_eq!(url.path(), audit);
    assert!(
        url.query()
            .unwrap_or("")
            .contains("action=support_grant.revoke"),
        "{url}"
    );
    b.check_page("owner-10-audit-filtered").await;

    // The other owner screens, each clean.
    for (path, heading, shot) in [
        ("settings", "Practice settings", "owner-11-settings"),
        ("break-glass", "Break-glass review", "owner-12-break-glass"),
        (
            "retention",
            "Retention and legal holds",
            "owner-13-retention",
        ),
    ] {
        b.driver
            .goto(app.url(&format!("/app/practices/{p}/{path}")))
            .await
            .unwrap();
        b.wait_for_text("h1", heading).await;
        b.check_page(shot).await;
    }
    // At 360 px wide the lists stack and stay usable.
    b.driver.set_window_rect(0, 0, 360, 800).await.unwrap();
    b.driver.goto(app.url(&support_page)).await.unwrap();
    b.wait_for_text("h1", "Support access").await;
    b.check_page("owner-14-support-360px").await;
}

// issue 17 — in Chromium: reception records a disclosure for a patient and sees it in the
// patient's accounting of disclosures; both pages have zero CSP violations, zero serious or
// critical axe violations and nothing clinical.
#[tokio::test]
async fn reception_records_a_disclosure_and_sees_the_accounting() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let email = crate::util::email_of(&db, world.a.user("reception")).await;
    let mut b = Browser::start().await;
    let outcome = AssertUnwindSafe(disclosure_flow(&mut b, &app, &world, &email))
        .catch_unwind()
        .await;
    let quit = b.driver.quit().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    quit.unwrap();
}

async fn disclosure_flow(b: &mut Browser, app: &TestApp, world: &World, email: &str) {
    let p = world.a.id;
    b.driver.goto(app.url("/app")).await.unwrap();
    sign_in_enrolling(
        b,
        app,
        email,
        [
            "disclosure-01-enroll-start",
            "disclosure-02-enroll-qr",
            "disclosure-03-recovery-codes",
            "disclosure-04-home",
        ],
    )
    .await;
    let url = format!(
        "/app/practices/{p}/patients/{}/disclosures",
        world.a.patient
    );
    b.driver.goto(app.url(&url)).await.unwrap();
    b.wait_for_text("h1", "Accounting of disclosures").await;
    b.wait_for_text("main", "No disclosure in this window.")
        .await;
    b.check_clean("disclosure-05-accounting-empty").await;
    b.fill("#recipient", "County Health Department").await;
    b.fill("#description", "Immunization record").await;
    b.fill("#purpose", "Public health reporting").await;
    b.click("form[action$='/disclosures'][method=post] button[type=submit]")
        .await;
    b.wait_for_text("main", "Disclosure recorded.").await;
    let rows = b
        .wait_for_text("#disclosure-list tbody", "County Health Department")
        .await;
    assert!(rows.contains("Public health reporting"), "{rows}");
    b.check_clean("disclosure-06-accounting").await;
}

/// A clinician of practice A who is not on the care team of A's patient (synthetic); their id
/// and email.
async fn second_clinician(db: &TestDb, practice: domain::PracticeId) -> (domain::UserId, String) {
    let owner = db.owner().await;
    let email = format!(
        "second.{}@test.example.invalid",
        uuid::Uuid::new_v4().simple()
    );
    let user = owner
        .create_user(
            &email,
            "Second Clinician",
            testkit::password_hash(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    owner
        .add_member(
            practice,
            user,
            domain::RoleSet::from_iter([domain::Role::Clinician]),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    owner.close().await;
    (user, email)
}

// issue 17 — in Chromium: a clinician opens the visit from an appointment in the schedule,
// starts a note from a template and writes it (the autosave is seen), signs it with step-up
// (past the window the page asks for the authenticator code), sees the locked note with its
// signature manifestation, amends it and sees the word diff (<ins>/<del> with screen-reader
// text), the version history and the integrity check; every page has zero CSP violations and
// zero serious/critical axe violations.
#[tokio::test]
async fn a_clinician_writes_signs_with_step_up_and_amends_a_note() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let user = world.a.user("clinician");
    let email = crate::util::email_of(&db, user).await;
    let mut b = Browser::start().await;
    println!("browser screenshots: {}", screenshot_dir().display());
    let outcome = AssertUnwindSafe(note_flow(&mut b, &app, &world, &email))
        .catch_unwind()
        .await;
    let quit = b.driver.quit().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    quit.unwrap();
}

async fn note_flow(b: &mut Browser, app: &TestApp, world: &World, email: &str) {
    let p = world.a.id;
    let clinician = world.a.user("clinician");
    let reception = app.token(world.a.user("reception")).await;
    let patient = world.a.patient.to_string();
    let appt = crate::web_pages::api_appointment(app, &reception, p, &patient, clinician).await;
    b.driver.goto(app.url("/app")).await.unwrap();
    let key = sign_in_enrolling(
        b,
        app,
        email,
        [
            "50-clinician-enroll-start",
            "51-clinician-enroll-qr",
            "52-clinician-recovery-codes",
            "53-clinician-home",
        ],
    )
    .await;
    // The schedule's day view opens the visit of the appointment.
    let day = (app.clock.now().date_naive() + chrono::Duration::days(1)).to_string();
    b.driver
        .goto(app.url(&format!(
            "/app/practices/{p}/schedule/day?clinician={clinician}&date={day}"
        )))
        .await
        .unwrap();
    let chart = format!("/app/practices/{p}/patients/{patient}/chart");
    b.click(&format!("a[href=\"{chart}?appointment={appt}\"]"))
        .await;
    b.wait_for_path(&chart).await;
    b.wait_for_text("h1", "Chart").await;
    b.check_page("54-chart-from-appointment").await;
    b.click("form.open-visit button[type=submit]").await;
    b.wait_for_text("main .done", "Visit started").await;
    b.check_page("55-chart-visit-started").await;
    // A note from the dental hygiene template, for that visit.
    b.driver
        .find(By::Css("#template option[value=dental_hygiene]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.click("form.new-note button[type=submit]").await;
    b.wait_for_text("h1", "hygiene").await;
    assert!(
        b.path()
            .await
            .starts_with(&format!("/app/practices/{p}/notes/"))
    );
    let note_path = b.path().await;
    b.check_page("56-note-new-draft").await;
    // Typing autosaves (htmx, If-Match), and the page says so.
    b.type_keys("#subjective", "Gums tender on the lower left.")
        .await;
    b.driver
        .find(By::Css("#f-calculus option[value=light]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let saved = b.wait_for_text("#save-state", "Draft saved (version").await;
    println!("autosave: {saved}");
    b.type_keys("#plan", "Recall in six months.").await;
    // The API reads what the page autosaved (bounded polling: saves follow typing).
    let token = app.token(clinician).await;
    let note_id = note_path.rsplit('/').next().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    let api_note = loop {
        let (_, n) = crate::util::call(
            app,
            reqwest::Method::GET,
            &format!("/api/v1/practices/{p}/notes/{note_id}"),
            Some(&token),
            None,
        )
        .await;
        if n["content"]["plan"] == "Recall in six months." {
            break n;
        }
        assert!(Instant::now() < deadline, "never autosaved: {n}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        api_note["content"]["subjective"],
        "Gums tender on the lower left."
    );
    assert_eq!(api_note["content"]["fields"]["calculus"], "light");
    let version = api_note["version"].as_i64().unwrap();
    b.wait_for_text("#save-state", &format!("Draft saved (version {version})"))
        .await;
    b.check_page("57-note-autosaved").await;
    // Past the step-up window, signing asks for the authenticator code first.
    app.clock
        .advance(app.identity.step_up_window + chrono::Duration::seconds(31));
    b.click("form.sign button[type=submit]").await;
    b.wait_for_text("h1", "Confirm it is you").await;
    b.check_page("58-note-sign-step-up").await;
    b.fill("#code", &key.code_at(app.clock.now())).await;
    b.click("main form button[type=submit]").await;
    b.wait_for_path(&note_path).await;
    b.wait_for_text("#note-status", "Signed").await;
    let manifestation = b
        .wait_for_text(".signed .signature", "Electronically signed by")
        .await;
    assert!(manifestation.contains("clinician a"), "{manifestation}");
    assert!(
        manifestation.contains("Meaning: authored and approved"),
        "{manifestation}"
    );
    assert!(
        b.driver
            .find_all(By::Css("#note-form"))
            .await
            .unwrap()
            .is_empty(),
        "a signed note has no editor"
    );
    b.check_page("59-note-signed-locked").await;
    // An amendment: a new signed version with its reason and the word diff.
    b.click("main .actions a").await;
    b.wait_for_text("h1", "Amend").await;
    b.check_page("60-note-amend-form").await;
    b.fill("#subjective", "Gums tender on the upper left.")
        .await;
    b.fill("#reason", "Wrong quadrant recorded.").await;
    b.click("form[action$=\"/amend\"] button[type=submit]")
        .await;
    b.wait_for_text("#note-status", "Signed, amended").await;
    let del = b.wait_for_text(".amendment .diff del", "lower").await;
    assert!(del.contains("lower"), "{del}");
    let ins = b.wait_for_text(".amendment .diff ins", "upper").await;
    assert!(ins.contains("upper"), "{ins}");
    let hidden = b
        .driver
        .find(By::Css(".amendment .diff ins .visually-hidden"))
        .await
        .unwrap()
        .attr("class")
        .await
        .unwrap();
    assert_eq!(hidden.as_deref(), Some("visually-hidden"));
    let source = b.driver.source().await.unwrap();
    assert!(
        source.contains("[added: </span>upper"),
        "screen-reader text"
    );
    assert!(source.contains("Wrong quadrant recorded."));
    b.check_page("61-note-amended-diff").await;
    // An addendum (the step-up is still fresh).
    b.click("main .actions a").await;
    b.wait_for_text("h1", "Amend").await;
    b.fill("#text", "Radiograph reviewed: no change.").await;
    b.fill("#addendum_reason", "Late result.").await;
    b.click("form[action$=\"/addenda\"] button[type=submit]")
        .await;
    b.wait_for_text(".addendum", "Radiograph reviewed").await;
    b.check_page("62-note-addendum").await;
    // History and the integrity check.
    b.click("a[href$=\"/history\"]").await;
    b.wait_for_text("h1", "Version history").await;
    // Every save, the signature, the amendment and the addendum.
    b.wait_for_count("ol.versions > li", usize::try_from(version).unwrap() + 3)
        .await;
    b.check_page("63-note-history").await;
    b.driver
        .goto(app.url(&format!("{note_path}/verify")))
        .await
        .unwrap();
    b.wait_for_text(
        "#verify-result",
        &format!("All {} versions match", version + 3),
    )
    .await;
    b.check_page("64-note-verified").await;
    // The chart and the locked note at 360 px wide.
    b.driver.set_window_rect(0, 0, 360, 800).await.unwrap();
    b.driver.goto(app.url(&chart)).await.unwrap();
    b.wait_for_text("h1", "Chart").await;
    b.check_page("65-chart-360px").await;
    b.driver.goto(app.url(&note_path)).await.unwrap();
    b.wait_for_text("#note-status", "Signed").await;
    b.check_page("66-note-360px").await;
    b.driver.set_window_rect(0, 0, 1280, 900).await.unwrap();
}

// issue 17 — in Chromium: a clinician off the patient's care team opens the chart from the
// patient page, gets the break-glass offer, gives a reason, and every chart page shows the
// banner (role=alert) with the time the window ends; each page has zero CSP violations and
// zero serious/critical axe violations.
#[tokio::test]
async fn a_clinician_off_the_care_team_opens_a_chart_through_break_glass() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let (_, email) = second_clinician(&db, world.a.id).await;
    let app = TestApp::start(&db).await;
    let mut b = Browser::start().await;
    println!("browser screenshots: {}", screenshot_dir().display());
    let outcome = AssertUnwindSafe(break_glass_flow(&mut b, &app, &world, &email))
        .catch_unwind()
        .await;
    let quit = b.driver.quit().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    quit.unwrap();
}

async fn break_glass_flow(b: &mut Browser, app: &TestApp, world: &World, email: &str) {
    let p = world.a.id;
    let patient = world.a.patient;
    // The care-team clinician's signed note.
    let care = app.token(world.a.user("clinician")).await;
    let (status, note) = crate::util::call(
        app,
        reqwest::Method::POST,
        &format!("/api/v1/practices/{p}/patients/{patient}/notes"),
        Some(&care),
        Some(&json!({ "content": { "subjective": "Care-team note." } })),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{note}");
    let note_id = note["note_id"].as_str().unwrap().to_owned();
    b.driver.goto(app.url("/app")).await.unwrap();
    sign_in_enrolling(
        b,
        app,
        email,
        [
            "70-second-clinician-enroll-start",
            "71-second-clinician-enroll-qr",
            "72-second-clinician-recovery-codes",
            "73-second-clinician-home",
        ],
    )
    .await;
    b.driver
        .goto(app.url(&format!("/app/practices/{p}/patients/{patient}")))
        .await
        .unwrap();
    b.wait_for_text("h1", "Patient details").await;
    b.check_page("74-patient-with-chart-link").await;
    b.click("main .actions a[href$=\"/chart\"]").await;
    b.wait_for_text("h1", "not on your care team").await;
    assert!(
        !b.driver.source().await.unwrap().contains("Care-team note."),
        "nothing clinical before break-glass"
    );
    b.check_page("75-break-glass-offer").await;
    // No reason: refused, nothing opened.
    b.click("main form button[type=submit]").await;
    b.wait_for_text("#reason-error", "Reason").await;
    b.check_page("76-break-glass-refused").await;
    b.fill(
        "#reason",
        "Covering for an absent colleague; patient in pain.",
    )
    .await;
    b.fill("#minutes", "30").await;
    b.click("main form button[type=submit]").await;
    b.wait_for_path(&format!("/app/practices/{p}/patients/{patient}/chart"))
        .await;
    let ends = (app.clock.now() + chrono::Duration::minutes(30))
        .format("%Y-%m-%d %H:%M UTC")
        .to_string();
    let banner = b.wait_for_text("#break-glass-banner", "ends at").await;
    assert!(banner.contains(&ends), "{banner}");
    let role = b
        .driver
        .find(By::Id("break-glass-banner"))
        .await
        .unwrap()
        .attr("role")
        .await
        .unwrap();
    assert_eq!(role.as_deref(), Some("alert"));
    b.check_page("77-chart-break-glass-banner").await;
    // The note, its history and its check carry the banner too.
    b.click(&format!("a[href=\"/app/practices/{p}/notes/{note_id}\"]"))
        .await;
    b.wait_for_text("#subjective", "").await;
    let banner = b.wait_for_text("#break-glass-banner", "ends at").await;
    assert!(banner.contains(&ends), "{banner}");
    b.check_page("78-note-break-glass-banner").await;
    b.click("a[href$=\"/history\"]").await;
    b.wait_for_text("h1", "Version history").await;
    b.wait_for_text("#break-glass-banner", &ends).await;
    b.check_page("79-history-break-glass-banner").await;
}

/// Runs `flow` in a fresh Chromium and quits it, also when the flow panics.
pub(crate) async fn in_browser(flow: impl AsyncFnOnce(&mut Browser)) {
    let mut b = Browser::start().await;
    let outcome = AssertUnwindSafe(flow(&mut b)).catch_unwind().await;
    let quit = b.driver.quit().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    quit.unwrap();
}

/// Visits each `(path, heading, screenshot)`: the page opens (its `h1` says `heading`, so it
/// is not an error page) and passes [`Browser::check_page`].
async fn tour(b: &mut Browser, app: &TestApp, stops: &[(String, &str, &str)]) {
    for (path, heading, shot) in stops {
        b.driver.goto(app.url(path)).await.unwrap();
        let h1 = b.wait_for_text("h1", heading).await;
        assert!(!h1.contains("(40"), "{path}: {h1}");
        b.check_page(shot).await;
    }
}

// issue 17 — every screen for a second role: an admin walks the screens the role opens (the
// owner's management screens and the account page; no patient or schedule screen, which the
// role does not open), each with zero CSP and zero serious axe violations, and a screenshot
// of each; at 360 px too.
#[tokio::test]
async fn an_admin_sees_every_practice_screen_clean() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let admin = world.a.user("admin");
    let email = crate::util::email_of(&db, admin).await;
    in_browser(async |b: &mut Browser| {
        let p = world.a.id;
        let clinician = world.a.user("clinician");
        b.driver.goto(app.url("/app")).await.unwrap();
        sign_in_enrolling(
            b,
            &app,
            &email,
            [
                "admin-01-enroll-start",
                "admin-02-enroll-qr",
                "admin-03-recovery-codes",
                "admin-04-home",
            ],
        )
        .await;
        let at = |s: &str| format!("/app/practices/{p}/{s}");
        let stops = [
            (at("members"), "Members", "admin-05-members"),
            (
                at(&format!("members/{clinician}")),
                "Roles of",
                "admin-06-member",
            ),
            (at("settings"), "Practice settings", "admin-07-settings"),
            (at("support"), "Support access", "admin-08-support"),
            (at("audit"), "Audit log", "admin-09-audit"),
            (
                at("break-glass"),
                "Break-glass review",
                "admin-10-break-glass",
            ),
            (
                at("retention"),
                "Retention and legal holds",
                "admin-11-retention",
            ),
            ("/app/account".to_owned(), "My account", "admin-12-account"),
        ];
        tour(b, &app, &stops).await;
        b.driver.set_window_rect(0, 0, 360, 800).await.unwrap();
        let narrow = [
            (at("members"), "Members", "admin-13-members-360px"),
            (at("audit"), "Audit log", "admin-14-audit-360px"),
            (
                "/app/account".to_owned(),
                "My account",
                "admin-15-account-360px",
            ),
        ];
        tour(b, &app, &narrow).await;
    })
    .await;
}

// issue 17 — the clinical screens for a second role: a practice owner who is also a clinician
// on the patient's care team (the dentist who owns the practice) opens the chart, a signed
// note, its amendment form, history and integrity check, the perio exams, and the patient and
// schedule screens, all clean.
#[tokio::test]
async fn an_owner_who_is_a_clinician_sees_the_clinical_screens_clean() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let p = world.a.id;
    let patient = world.a.patient;
    let owner = db.owner().await;
    let now = chrono::Utc::now();
    let email = format!(
        "owner.clinician.{}@test.example.invalid",
        uuid::Uuid::new_v4().simple()
    );
    let user = owner
        .create_user(&email, "owner clinician a", testkit::password_hash(), now)
        .await
        .unwrap();
    owner
        .add_member(
            p,
            user,
            domain::RoleSet::from_iter([domain::Role::Owner, domain::Role::Clinician]),
            now,
        )
        .await
        .unwrap();
    owner.assign_clinician(p, patient, user).await.unwrap();
    owner.close().await;
    let token = app.token(user).await;
    let (status, body) = crate::util::call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/practices/{p}/patients/{patient}/notes"),
        Some(&token),
        Some(&json!({ "content": { "subjective": "Sensitivity lower left after cold drinks." } })),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let note = body["note_id"].as_str().unwrap().to_owned();
    let res = app
        .http
        .post(app.url(&format!("/api/v1/practices/{p}/notes/{note}/sign")))
        .bearer_auth(&token)
        .header("if-match", format!("\"{}\"", body["version"]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    let (status, body) = crate::util::call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/practices/{p}/patients/{patient}/perio-exams"),
        Some(&token),
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let exam = body["exam_id"].as_str().unwrap().to_owned();
    in_browser(async |b: &mut Browser| {
        b.driver.goto(app.url("/app")).await.unwrap();
        sign_in_enrolling(
            b,
            &app,
            &email,
            [
                "owner-clinician-01-enroll-start",
                "owner-clinician-02-enroll-qr",
                "owner-clinician-03-recovery-codes",
                "owner-clinician-04-home",
            ],
        )
        .await;
        let at = |s: &str| format!("/app/practices/{p}/{s}");
        let stops = [
            (
                at(&format!("patients/{patient}/chart")),
                "Chart",
                "owner-clinician-05-chart",
            ),
            (
                at(&format!("notes/{note}")),
                "",
                "owner-clinician-06-note-signed",
            ),
            (
                at(&format!("notes/{note}/amend")),
                "Amend or add to",
                "owner-clinician-07-amend",
            ),
            (
                at(&format!("notes/{note}/history")),
                "Version history",
                "owner-clinician-08-history",
            ),
            (
                at(&format!("notes/{note}/verify")),
                "Integrity check",
                "owner-clinician-09-verify",
            ),
            (at("patients"), "Patients", "owner-clinician-10-patients"),
            (
                at("patients/new"),
                "New patient",
                "owner-clinician-11-patient-new",
            ),
            (
                at(&format!("patients/{patient}")),
                "Patient details",
                "owner-clinician-12-patient",
            ),
            (
                at(&format!("patients/{patient}/disclosures")),
                "Accounting of disclosures",
                "owner-clinician-13-disclosures",
            ),
            (at("schedule"), "", "owner-clinician-14-schedule-week"),
            (at("schedule/day"), "", "owner-clinician-15-schedule-day"),
            (
                at("appointments/new"),
                "Book an appointment",
                "owner-clinician-16-book",
            ),
            (at("members"), "Members", "owner-clinician-17-members"),
            (
                "/app/account".to_owned(),
                "My account",
                "owner-clinician-18-account",
            ),
            (
                at(&format!("patients/{patient}/perio")),
                "Periodontal exams",
                "owner-clinician-20-perio-exams",
            ),
            (
                at(&format!("patients/{patient}/perio/{exam}")),
                "Periodontal exam:",
                "owner-clinician-21-perio-exam",
            ),
        ];
        tour(b, &app, &stops).await;
        b.driver.set_window_rect(0, 0, 360, 800).await.unwrap();
        let narrow = [(
            at(&format!("notes/{note}")),
            "",
            "owner-clinician-19-note-360px",
        )];
        tour(b, &app, &narrow).await;
    })
    .await;
}

// issue 17 — the idle timeout in the browser: the notice appears before the session's idle
// timeout runs out (shortened here through the page's own data attribute, which the script
// reads on every tick), passes the CSP and axe checks while shown, "Stay signed in" reaches
// the server as activity, and when the time has run out the page signs out by itself, says
// why, and the session is over.
#[tokio::test]
async fn the_idle_timeout_warns_then_signs_out() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let user = world.a.user("reception");
    let email = crate::util::email_of(&db, user).await;
    in_browser(async |b: &mut Browser| {
        let p = world.a.id;
        b.driver.goto(app.url("/app")).await.unwrap();
        sign_in_enrolling(
            b,
            &app,
            &email,
            [
                "idle-01-enroll-start",
                "idle-02-enroll-qr",
                "idle-03-recovery-codes",
                "idle-04-home",
            ],
        )
        .await;
        let patients = format!("/app/practices/{p}/patients");
        b.driver.goto(app.url(&patients)).await.unwrap();
        b.wait_for_text("h1", "Patients").await;
        let warning = b.driver.find(By::Id("idle-warning")).await.unwrap();
        assert!(!warning.is_displayed().await.unwrap(), "no notice at first");
        let idle = b
            .driver
            .execute("return document.body.dataset.idleSeconds;", vec![])
            .await
            .unwrap();
        assert_eq!(
            idle.json().as_str(),
            Some(app.sessions.idle.num_seconds().to_string().as_str())
        );
        // 40 s of idle timeout: less the page's 10 s margin, the notice shows from 10 s after
        // the last activity (half the timeout before it ends) and the page signs out at 30 s.
        b.driver
            .execute("document.body.dataset.idleSeconds = '40';", vec![])
            .await
            .unwrap();
        b.wait_for_text("#idle-warning", "Still there?").await;
        b.check_page("idle-05-warning").await;
        // Stay signed in (the notice hides: the timer counts from now again): the keep-alive reaches the server as activity.
        app.clock.advance(chrono::Duration::seconds(30));
        b.click("#idle-stay").await;
        let mut su = db.superuser_unsafe().await;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let seen: Vec<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
                "select last_seen_at from session where user_id = $1 and revoked_at is null",
            )
            .bind(user)
            .fetch_all(&mut su)
            .await
            .unwrap();
            if seen.contains(&chrono::SubsecRound::trunc_subsecs(app.clock.now(), 6)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the keep-alive never arrived: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The time runs out: the page signs out and says why.
        b.driver
            .execute("document.body.dataset.idleSeconds = '1';", vec![])
            .await
            .unwrap();
        b.wait_for_path("/app/signed-out").await;
        b.wait_for_text("main", "nothing happened on this page for a while")
            .await;
        b.check_page("idle-06-signed-out").await;
        let open: i64 = sqlx::query_scalar(
            "select count(*) from session where user_id = $1 and revoked_at is null",
        )
        .bind(user)
        .fetch_one(&mut su)
        .await
        .unwrap();
        assert_eq!(open, 0, "the session was ended");
        b.driver.goto(app.url(&patients)).await.unwrap();
        b.wait_for_path("/app/sign-in").await;
    })
    .await;
}
