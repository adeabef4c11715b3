//! The web app's server render time against the same data as JSON from the API (issue 17's
//! figures): each page and its JSON twin alternate in slices at the same client count, over
//! the same HTTPS stack, with the same session; reported: p50 and p95 of each and the ratio.
//!
//! - **Schedule week**: `GET /app/practices/{p}/schedule?clinician=…&date=…` (reception's
//!   cookie) vs `GET /api/v1/practices/{p}/appointments?from=…&to=…` for the same week.
//! - **Patient chart**: `GET /app/practices/{p}/patients/{id}/chart` (the clinician's cookie)
//!   vs the API's visits and notes list of the same patient (two requests: what the page shows).
//! - **Perio grid**: `GET /app/practices/{p}/patients/{id}/perio/{exam}` (the full-mouth grid
//!   of a charted exam, with the previous exam's depths) vs the API's `GET` of the same exam.
//!
//! Both sides pay the session check, the audit events of what they show and TLS; the
//! difference is rendering HTML with askama against serializing JSON (and, for the chart,
//! one request against two).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Datelike as _, Duration as Days, NaiveTime, TimeZone as _, Utc};
use testkit::{TestApp, TestDb, World};

/// One request of a path: whether it was answered 200.
type Request = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + Send + Sync,
>;

/// `clients` loops of `f` for `slice`; every latency.
async fn slice_of(clients: usize, slice: Duration, f: &Request) -> Vec<Duration> {
    let deadline = Instant::now() + slice;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let f = Arc::clone(f);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                assert!(f().await, "request failed");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all
}

#[allow(clippy::cast_precision_loss, reason = "microseconds")]
fn ms(sorted: &[Duration], q: f64) -> f64 {
    testkit::load::quantile(sorted, q).map_or(0.0, |d| d.as_micros() as f64 / 1000.0)
}

/// A GET with the session as cookie (a page) or bearer token (the API).
fn get(app: &Arc<TestApp>, path: String, token: &Arc<String>, cookie: bool) -> Request {
    let (app, token) = (Arc::clone(app), Arc::clone(token));
    Arc::new(move || {
        let (app, token, path) = (Arc::clone(&app), Arc::clone(&token), path.clone());
        Box::pin(async move {
            let req = app.http.get(app.url(&path));
            let req = if cookie {
                req.header(
                    "cookie",
                    format!("{}={}", server::extract::SESSION_COOKIE, token.as_str()),
                )
            } else {
                req.bearer_auth(token.as_str())
            };
            match req.send().await {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            }
        })
    })
}

/// Both requests of `a` then `b`, in turn (the chart's JSON twin).
fn both(a: Request, b: Request) -> Request {
    Arc::new(move || {
        let (a, b) = (Arc::clone(&a), Arc::clone(&b));
        Box::pin(async move { a().await && b().await })
    })
}

/// Two perio exams of `patient` charted through the API from the synthetic full-mouth
/// dictation (the newer shows the older's depths beside its own); the newer's id.
async fn perio_exams(
    app: &TestApp,
    p: domain::PracticeId,
    patient: domain::PatientId,
    token: &str,
) -> anyhow::Result<String> {
    let base = format!("/api/v1/practices/{p}/patients/{patient}/perio-exams");
    let mut exam = String::new();
    for seed in [16, 17] {
        let v: serde_json::Value = app
            .http
            .post(app.url(&base))
            .bearer_auth(token)
            .json(&serde_json::json!({}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        exam = v["exam_id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no exam id"))?
            .to_owned();
        for text in testkit::perio::full_mouth_finals(seed) {
            app.http
                .post(app.url(&format!("{base}/{exam}/finals")))
                .bearer_auth(token)
                .json(&serde_json::json!({ "text": text }))
                .send()
                .await?
                .error_for_status()?;
        }
    }
    Ok(exam)
}

/// The benchmark: `pairs` alternating slices of `slice_ms` per path at `clients` clients.
pub(crate) async fn web_render(clients: usize, pairs: usize, slice_ms: u64) -> anyhow::Result<()> {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let (p, clinician) = (w.a.id, w.a.user("clinician"));
    let owner = db.owner().await;
    let now = Utc::now();
    let today = now.date_naive();
    let monday = today - Days::days(i64::from(today.weekday().num_days_from_monday()));
    let mut people = domain::synthetic::Generator::new(17);
    // A busy clinician's week: eight 45-minute appointments a day, Monday to Friday, each a
    // different synthetic patient.
    for day in 0..5 {
        for slot in 0..8 {
            let patient = owner.seed_patient(p, &people.patient().into(), now).await?;
            let start = Utc.from_utc_datetime(
                &(monday + Days::days(day))
                    .and_time(NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default()),
            ) + Days::minutes(60 * slot);
            owner
                .seed_appointment(p, patient, clinician, start, 45, now)
                .await?;
        }
    }
    // A chart with a history: twelve notes on the fixture's patient, on the care team.
    let patient = w.a.patient;
    owner
        .seed_appointment(p, patient, clinician, now + Days::days(1), 30, now)
        .await?;
    for i in 0..12 {
        owner
            .seed_note(
                p,
                patient,
                clinician,
                &format!("Synthetic recall note {i}: generalized mild inflammation; oral hygiene instructions given."),
                now,
            )
            .await?;
    }
    owner.close().await;
    let app = Arc::new(TestApp::start(&db).await);
    let reception = Arc::new(app.token(w.a.user("reception")).await);
    let doctor = Arc::new(app.token(clinician).await);
    let exam = perio_exams(&app, p, patient, &doctor).await?;
    let from = Utc.from_utc_datetime(&monday.and_time(NaiveTime::MIN));
    let to = from + Days::days(7);
    let fmt = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cases: Vec<(&str, Request, Request)> = vec![
        (
            "schedule week (40 appointments)",
            get(
                &app,
                format!("/app/practices/{p}/schedule?clinician={clinician}&date={monday}"),
                &reception,
                true,
            ),
            get(
                &app,
                format!(
                    "/api/v1/practices/{p}/appointments?from={}&to={}",
                    fmt(from),
                    fmt(to)
                ),
                &reception,
                false,
            ),
        ),
        (
            "patient chart (12 notes)",
            get(
                &app,
                format!("/app/practices/{p}/patients/{patient}/chart"),
                &doctor,
                true,
            ),
            both(
                get(
                    &app,
                    format!("/api/v1/practices/{p}/patients/{patient}/visits"),
                    &doctor,
                    false,
                ),
                get(
                    &app,
                    format!("/api/v1/practices/{p}/patients/{patient}/notes"),
                    &doctor,
                    false,
                ),
            ),
        ),
        (
            "perio grid (full mouth, 2 exams)",
            get(
                &app,
                format!("/app/practices/{p}/patients/{patient}/perio/{exam}"),
                &doctor,
                true,
            ),
            get(
                &app,
                format!("/api/v1/practices/{p}/patients/{patient}/perio-exams/{exam}"),
                &doctor,
                false,
            ),
        ),
    ];
    let slice = Duration::from_millis(slice_ms.max(100));
    println!(
        "web pages vs the same data as JSON from the API, {clients} clients, {pairs} alternating slices of {} ms per path",
        slice.as_millis()
    );
    println!(
        "{:<34} {:>16} {:>16} {:>10} {:>10}",
        "page", "page p50/p95 ms", "JSON p50/p95 ms", "p50 ratio", "p95 ratio"
    );
    for (name, page, json) in cases {
        // Warm-up, not counted.
        slice_of(clients, slice, &page).await;
        slice_of(clients, slice, &json).await;
        let (mut pl, mut jl) = (Vec::new(), Vec::new());
        for k in 0..pairs {
            if k % 2 == 0 {
                pl.extend(slice_of(clients, slice, &page).await);
                jl.extend(slice_of(clients, slice, &json).await);
            } else {
                jl.extend(slice_of(clients, slice, &json).await);
                pl.extend(slice_of(clients, slice, &page).await);
            }
        }
        pl.sort();
        jl.sort();
        println!(
            "{name:<34} {:>16} {:>16} {:>9.2}× {:>9.2}×",
            format!("{:.1} / {:.1}", ms(&pl, 0.5), ms(&pl, 0.95)),
            format!("{:.1} / {:.1}", ms(&jl, 0.5), ms(&jl, 0.95)),
            ms(&pl, 0.5) / ms(&jl, 0.5).max(1e-9),
            ms(&pl, 0.95) / ms(&jl, 0.95).max(1e-9)
        );
    }
    Ok(())
}
