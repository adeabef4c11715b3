//! Issue 19.5, clients join the waitlist themselves: from the public booking page
//! (`/book/{p}/services/{s}/waitlist`) or its API (`POST /api/v1/public/practices/{p}/waitlist`,
//! no session), recognised by mobile number and date of birth or recorded as new, exactly as a
//! booking there; bad input is refused with a clear message and stores nothing; the
//! `waitlist_joined` confirmation (email and SMS) carries only an opaque `waitlist` link, whose
//! page shows the practice, the service and the days and lets the client leave; staff see the
//! entry marked self-joined; a freed slot is offered to it; a new client's accepted offer
//! waits for reception under the approved-only option; and a held offer that expires unpaid
//! puts its entry back on the waitlist.

use chrono::{Duration, NaiveDate};
use domain::{Clock as _, RequestId};
use reqwest::header::CONTENT_SECURITY_POLICY;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::TestApp;

use crate::outbox::{Harness, ORIGIN, tomorrow_at};
use crate::util::call;
use crate::waitlist::{add_entry, appointment, at, cancel, clients, send_offers};
use crate::web_pages::{client, request};

fn today(app: &TestApp) -> NaiveDate {
    app.clock.now().date_naive()
}

fn person(seed: u64) -> domain::synthetic::SyntheticPatient {
    domain::synthetic::Generator::new(seed).patient()
}

fn client_json(p: &domain::synthetic::SyntheticPatient) -> Value {
    json!({"given_name": p.given_name, "family_name": p.family_name,
           "date_of_birth": p.date_of_birth, "phone": p.phone, "email": p.email})
}

/// Rows the public page may create: entries, patients, links and messages.
async fn stored(su: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "select (select count(*) from waitlist_entry) + (select count(*) from patient)
              + (select count(*) from client_link) + (select count(*) from outbox_message)",
    )
    .fetch_one(su)
    .await
    .unwrap()
}

/// The tokens of `purpose` links in the SMS the stand-in received, in order.
fn sms_links(h: &Harness, purpose: &str) -> Vec<String> {
    let prefix = format!("{ORIGIN}/{purpose}/");
    h.telnyx
        .messages()
        .into_iter()
        .filter_map(|m| {
            let at = m.text.find(&prefix)?;
            Some(
                m.text[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect(),
            )
        })
        .collect()
}

/// Every audit row's details, patient and actor as text (for the no-PHI check).
async fn audit_text(su: &mut sqlx::PgConnection) -> String {
    let rows: Vec<Option<String>> = sqlx::query_scalar(
        "select coalesce(details::text, '') || ' ' || action from audit_event order by occurred_at",
    )
    .fetch_all(su)
    .await
    .unwrap();
    rows.into_iter().flatten().collect::<Vec<_>>().join("\n")
}

// req: EGR-05 — a client joins the waitlist on the public booking page (bad input refused
// with its message and nothing stored, a cross-site post refused, a practice without online
// booking a 404); the confirmation carries only a `waitlist` link; staff see the entry marked
// self-joined; the client leaves through the link, which is then used up; no PHI in URLs or
// audit rows.
#[tokio::test]
async fn a_client_joins_the_waitlist_on_the_booking_page_and_leaves_by_its_link() {
    let h = Harness::new().await;
    let app = TestApp::start(&h.db).await;
    let w = &h.w;
    let p = w.a.id;
    let service = crate::booking_api::set_up_for(&app, &w.a, "allowed").await;
    let http = client();
    let mut su = h.su().await;

    // The times page offers the waitlist; its form has the strict CSP.
    let times = http
        .get(app.url(&format!("/book/{p}/services/{service}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form_path = format!("/book/{p}/services/{service}/waitlist");
    assert!(times.contains(&format!("href=\"{form_path}\"")), "{times}");
    let res = http.get(app.url(&form_path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let page = res.text().await.unwrap();
    assert!(page.contains("Join the waitlist for Cleaning"), "{page}");
    assert!(!page.contains("clinician a"), "no clinician is named");

    let someone = person(5151);
    let first = (today(&app) + Duration::days(1)).to_string();
    let last = (today(&app) + Duration::days(5)).to_string();
    let form = |changes: &[(&str, &str)]| {
        let mut f: Vec<(String, String)> = vec![
            ("first_day".into(), first.clone()),
            ("last_day".into(), last.clone()),
            ("given_name".into(), someone.given_name.clone()),
            ("family_name".into(), someone.family_name.clone()),
            ("date_of_birth".into(), someone.date_of_birth.to_string()),
            ("phone".into(), someone.phone.clone()),
            ("email".into(), someone.email.clone()),
        ];
        for (k, v) in changes {
            f.iter_mut().find(|(n, _)| n == k).unwrap().1 = (*v).to_owned();
        }
        f
    };
    let post = |f: Vec<(String, String)>| {
        request(&http, &app, Method::POST, &form_path, None)
            .form(&f)
            .send()
    };

    // Refused forms: 400 saying what to correct, nothing stored.
    let before = stored(&mut su).await;
    let yesterday = (today(&app) - Duration::days(1)).to_string();
    let too_far = (today(&app) + Duration::days(60)).to_string();
    let long = "x".repeat(101);
    for (changes, says) in [
        (
            vec![("first_day", "soon")],
            "First day: enter it as YYYY-MM-DD.",
        ),
        (
            vec![("first_day", yesterday.as_str())],
            "First day: choose today",
        ),
        (
            vec![("first_day", last.as_str()), ("last_day", first.as_str())],
            "Last day: choose the first day or a later day",
        ),
        (vec![("last_day", too_far.as_str())], "Last day: choose"),
        (vec![("given_name", long.as_str())], "Given name"),
        (vec![("phone", "not a phone")], "Mobile number"),
        (vec![("email", "nobody")], "Email"),
        (vec![("date_of_birth", "2999-01-01")], "Date of birth"),
    ] {
        let res = post(form(&changes)).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{changes:?}");
        let body = res.text().await.unwrap();
        assert!(body.contains(says), "{changes:?}: {body}");
    }
    // A cross-site post is refused before anything runs; practice B does not take bookings.
    let res = http
        .post(app.url(&form_path))
        .header("origin", "https://elsewhere.example")
        .form(&form(&[]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = request(
        &http,
        &app,
        Method::POST,
        &format!("/book/{}/services/{service}/waitlist", w.b.id),
        None,
    )
    .form(&form(&[]))
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = request(
        &http,
        &app,
        Method::POST,
        &format!("/book/{p}/services/{}/waitlist", uuid::Uuid::new_v4()),
        None,
    )
    .form(&form(&[]))
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(stored(&mut su).await, before, "nothing stored");

    // Joined: the same answer for a new client …
    let res = post(form(&[])).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.text().await.unwrap();
    assert!(body.contains("id=\"joined\""), "{body}");
    let (state, self_joined, new_client, created_by): (String, bool, bool, Option<uuid::Uuid>) =
        sqlx::query_as(
            "select state, self_joined, new_client, created_by from waitlist_entry
              where practice_id = $1",
        )
        .bind(p)
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(
        (state.as_str(), self_joined, new_client, created_by),
        ("waiting", true, true, None)
    );
    let queued: Vec<(String, String)> = sqlx::query_as(
        "select template, channel from outbox_message where practice_id = $1 order by channel",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(
        queued,
        [
            ("waitlist_joined".to_owned(), "email".to_owned()),
            ("waitlist_joined".to_owned(), "sms".to_owned())
        ]
    );
    // … and for the same client again (recognised by mobile number and date of birth).
    let res = post(form(&[])).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.text().await.unwrap().contains("id=\"joined\""),
        "the same page either way"
    );
    let kinds: Vec<bool> = sqlx::query_scalar(
        "select new_client from waitlist_entry where practice_id = $1 order by new_client desc",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(kinds, [true, false]);
    let patients: i64 = sqlx::query_scalar(
        "select count(distinct patient_id) from waitlist_entry where practice_id = $1",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(patients, 1);

    // The confirmations go out through the scanner, carrying a `waitlist` link and nothing of
    // the client.
    let report = h.job().pass(Some(p), tomorrow_at(12)).await.unwrap();
    assert_eq!(report.refused, 0, "{report:?}");
    let tokens = sms_links(&h, "waitlist");
    assert_eq!(tokens.len(), 2, "{:?}", h.telnyx.messages());
    for m in h.telnyx.messages() {
        for leak in [&someone.given_name, &someone.family_name, &someone.email] {
            assert!(!m.text.contains(leak.as_str()), "{}", m.text);
        }
    }

    // Staff see both entries, marked self-joined (the API says so too).
    let reception = app.token(w.a.user("reception")).await;
    let screen = request(
        &http,
        &app,
        Method::GET,
        &format!("/app/practices/{p}/waitlist"),
        Some(&reception),
    )
    .send()
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(screen.contains("Self-joined, new client"), "{screen}");
    assert!(screen.contains(">Self-joined<"), "{screen}");
    let (s, entries) = call(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{p}/waitlist"),
        Some(&reception),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{entries}");
    assert!(
        entries
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["self_joined"] == json!(true))
    );

    // The link's page: the practice, the service and the days; a wrong-purpose path opens
    // nothing.
    let link = format!("/waitlist/{}", tokens[0]);
    let res = http.get(app.url(&link)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Practice a") && page.contains("Cleaning") && page.contains("id=\"leave\""),
        "{page}"
    );
    assert!(!page.contains(&someone.family_name));
    for other in ["offer", "manage", "intake"] {
        let res = http
            .get(app.url(&format!("/{other}/{}", tokens[0])))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{other}");
    }

    // Leaving: the entry is removed, audited as the client's, and the link is used up.
    let res = request(&http, &app, Method::POST, &format!("{link}/leave"), None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("id=\"left\""));
    let states: Vec<String> = sqlx::query_scalar(
        "select state from waitlist_entry where practice_id = $1 order by created_at",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    let mut sorted = states.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["removed", "waiting"],
        "only the link's own entry left"
    );
    let res = http.get(app.url(&link)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "used up");
    let res = request(&http, &app, Method::POST, &format!("{link}/leave"), None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let events: Vec<(String, Option<uuid::Uuid>, Option<Value>)> = sqlx::query_as(
        "select action, actor_id, details from audit_event
          where practice_id = $1 and action in ('waitlist.add', 'waitlist.remove')
          order by occurred_at",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events.iter().all(|(_, actor, _)| actor.is_none()));
    let of = |action: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|(a, ..)| a == action)
            .map(|(.., d)| d.clone().unwrap())
            .collect()
    };
    assert!(
        of("waitlist.add")
            .iter()
            .all(|d| d["self_joined"] == json!(true)),
        "{events:?}"
    );
    assert_eq!(of("waitlist.remove"), [json!({"by": "client"})]);
    let audit = audit_text(&mut su).await.to_lowercase();
    for leak in [
        &someone.given_name,
        &someone.family_name,
        &someone.email,
        &tokens[0],
    ] {
        assert!(!audit.contains(&leak.to_lowercase()), "{leak} in the audit");
    }
}

// req: EGR-05 — the public API joins a new and an existing client alike (`202 received`, the
// existing client's own record); bad input and unknown fields are `400` naming the field, an
// unknown service or a practice without online booking `404`; nothing is stored on a refusal;
// a session gives no other answer (the route is public); the public page's role still reads
// no entry.
#[tokio::test]
async fn the_public_waitlist_route_joins_new_and_existing_clients_alike() {
    let h = Harness::new().await;
    let app = TestApp::start(&h.db).await;
    let w = &h.w;
    let p = w.a.id;
    let service = crate::booking_api::set_up_for(&app, &w.a, "approval").await;
    let path = format!("/api/v1/public/practices/{p}/waitlist");
    let first = today(&app) + Duration::days(1);
    let join = |c: Value| {
        json!({"service_id": service, "first_day": first, "last_day": first + Duration::days(3),
               "client": c})
    };
    let mut su = h.su().await;
    let before = stored(&mut su).await;
    for (field, value) in [
        ("given_name", json!("")),
        ("family_name", json!("A\u{0}B")),
        ("phone", json!("12")),
        ("email", json!("nobody")),
    ] {
        let mut c = client_json(&person(808));
        c[field] = value;
        let (s, b) = call(&app, Method::POST, &path, None, Some(&join(c))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{field}: {b}");
        assert!(
            b["error"]["message"].as_str().unwrap().contains(field),
            "{b}"
        );
    }
    let mut bad = join(client_json(&person(808)));
    bad["first_day"] = json!(today(&app) - Duration::days(1));
    let (s, b) = call(&app, Method::POST, &path, None, Some(&bad)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("waitlist.first_day"),
        "{b}"
    );
    let mut bad = join(client_json(&person(808)));
    bad["last_day"] = json!(today(&app) + Duration::days(45));
    let (s, _) = call(&app, Method::POST, &path, None, Some(&bad)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let mut bad = join(client_json(&person(808)));
    bad["clinician_id"] = json!(w.a.user("clinician"));
    let (s, _) = call(&app, Method::POST, &path, None, Some(&bad)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown fields are refused");
    let mut bad = join(client_json(&person(808)));
    bad["service_id"] = json!(uuid::Uuid::new_v4());
    let (s, _) = call(&app, Method::POST, &path, None, Some(&bad)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for other in [w.b.id.to_string(), uuid::Uuid::new_v4().to_string()] {
        let (s, b) = call(
            &app,
            Method::POST,
            &format!("/api/v1/public/practices/{other}/waitlist"),
            None,
            Some(&join(client_json(&person(808)))),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    }
    assert_eq!(stored(&mut su).await, before, "nothing stored");

    // An existing client (mobile number and date of birth on record) and a new one: the same
    // answer; a staff session changes nothing.
    let known = clients(&h, p, 1, 71).await;
    let dob: NaiveDate = person(71).date_of_birth;
    let existing = json!({"given_name": known[0].given, "family_name": known[0].family,
                          "date_of_birth": dob, "phone": known[0].phone,
                          "email": "known@patients.example.invalid"});
    let reception = app.token(w.a.user("reception")).await;
    let (s, b) = call(&app, Method::POST, &path, None, Some(&join(existing))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b, json!({"status": "received"}));
    let (s, b2) = call(
        &app,
        Method::POST,
        &path,
        Some(&reception),
        Some(&join(client_json(&person(809)))),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b2}");
    assert_eq!(b2, b);
    let rows: Vec<(uuid::Uuid, bool, bool)> = sqlx::query_as(
        "select patient_id, new_client, self_joined from waitlist_entry
          where practice_id = $1 order by created_at",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.contains(&(known[0].id.as_uuid(), false, true)),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.0 != known[0].id.as_uuid() && r.1 && r.2),
        "{rows:?}"
    );

    // The public page's role reads no entry (only inserts).
    let mut rt = h.db.runtime_conn().await;
    let n: i64 = {
        let mut tx = sqlx::Connection::begin(&mut rt).await.unwrap();
        let entered: bool = sqlx::query_scalar("select app.enter_online_booking($1)")
            .bind(p)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert!(entered);
        sqlx::query_scalar("select count(*) from waitlist_entry")
            .fetch_one(&mut *tx)
            .await
            .unwrap()
    };
    assert_eq!(n, 0, "the public page reads no entry");
}

async fn accept(app: &TestApp, token: &str) -> store::waitlist::AcceptOutcome {
    let token = outbound::LinkToken::parse(token).unwrap();
    let mut tx = app
        .store
        .offer_link(&token, RequestId::new(), app.clock.now())
        .await
        .unwrap()
        .expect("a live offer link");
    let out = tx.accept(app.store.keyring().unwrap()).await.unwrap();
    tx.commit().await.unwrap();
    out
}

// req: EGR-05 — a freed slot is offered to a self-joined client (once, though they joined
// twice); under the approved-only option a new client's accepted offer is a request that
// reception approves or declines (declined: the entry waits again), with no confirmation
// before that.
#[tokio::test]
async fn a_self_joined_new_client_is_offered_a_slot_and_waits_for_approval() {
    let h = Harness::new().await;
    let app = TestApp::start(&h.db).await;
    let w = &h.w;
    let p = w.a.id;
    let service = crate::booking_api::set_up_for(&app, &w.a, "approval").await;
    let path = format!("/api/v1/public/practices/{p}/waitlist");
    let newcomer = client_json(&person(4040));
    let first = today(&app) + Duration::days(1);
    for _ in 0..2 {
        let (s, b) = call(
            &app,
            Method::POST,
            &path,
            None,
            Some(&json!({"service_id": service, "first_day": first,
                          "last_day": first + Duration::days(4), "client": newcomer})),
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    }
    let mut su = h.su().await;
    // The client's own two confirmations count towards the daily cap per client: room for
    // the offer too.
    sqlx::query(
        "insert into outbox_settings (practice_id, daily_cap, updated_at) values ($1, 10, now())",
    )
    .bind(p)
    .execute(&mut su)
    .await
    .unwrap();
    let reception = app.token(w.a.user("reception")).await;
    let appt = appointment(&app, &reception, w, at(&app, 3, 10)).await;
    cancel(&app, &reception, p, &appt).await;
    let offers: i64 =
        sqlx::query_scalar("select count(*) from waitlist_offer where practice_id = $1")
            .bind(p)
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert_eq!(offers, 1, "one offer per client, however often they joined");
    let tokens = send_offers(&h).await;
    assert_eq!(tokens.len(), 1);

    let out = accept(&app, &tokens[0].1).await;
    assert!(
        matches!(out, store::waitlist::AcceptOutcome::Requested(_)),
        "{out:?}"
    );
    let (booking, status, kind, appt_status): (uuid::Uuid, String, String, String) =
        sqlx::query_as(
            "select b.booking_id, b.status, b.client_kind, a.status from online_booking b
               join appointment a on a.practice_id = b.practice_id and a.appointment_id = b.appointment_id
              where b.practice_id = $1",
        )
        .bind(p)
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(
        (status.as_str(), kind.as_str(), appt_status.as_str()),
        ("requested", "new", "requested")
    );
    let confirmations: i64 = sqlx::query_scalar(
        "select count(*) from outbox_message where practice_id = $1 and template = 'booking_confirmed'",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(
        confirmations, 0,
        "nothing confirmed before reception decides"
    );
    let result: Value = sqlx::query_scalar(
        "select details from audit_event where practice_id = $1 and action = 'waitlist.accept'",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(result["result"], "requested");

    // Reception declines it: the slot is free and the entry waits again.
    let (s, b) = call(
        &app,
        Method::POST,
        &format!("/api/v1/practices/{p}/booking/bookings/{booking}/decision"),
        Some(&reception),
        Some(&json!({"approve": false})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let entries: Vec<(String, Option<uuid::Uuid>)> = sqlx::query_as(
        "select state, booked_appointment_id from waitlist_entry
          where practice_id = $1 order by created_at",
    )
    .bind(p)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(
        entries,
        [("waiting".to_owned(), None), ("waiting".to_owned(), None)]
    );
}

// req: EGR-05 — a held offer of a paid service whose payment never comes: when the payments
// job releases the hold (on the injected clock, at its end and not before), the entry it
// booked is `waiting` again and the next freed slot is offered to it.
#[tokio::test]
async fn a_held_offer_that_expires_unpaid_puts_its_entry_back_on_the_waitlist() {
    let h = Harness::new().await;
    let app = TestApp::start(&h.db).await;
    let w = &h.w;
    let p = w.a.id;
    let service =
        crate::payments::paid_service(&app, &w.a, json!({"kind": "deposit", "amount_minor": 4000}))
            .await;
    let reception = app.token(w.a.user("reception")).await;
    let cs = clients(&h, p, 2, 83).await;
    let entry = add_entry(
        &app,
        &reception,
        p,
        cs[0].id,
        &service,
        at(&app, 1, 0),
        at(&app, 6, 0),
    )
    .await;
    let appt = appointment(&app, &reception, w, at(&app, 2, 15)).await;
    cancel(&app, &reception, p, &appt).await;
    let tokens = send_offers(&h).await;
    assert_eq!(tokens.len(), 1);
    let out = accept(&app, &tokens[0].1).await;
    assert!(
        matches!(out, store::waitlist::AcceptOutcome::Held(_)),
        "{out:?}"
    );
    let mut su = h.su().await;
    let entry_state = async |su: &mut sqlx::PgConnection| -> (String, Option<uuid::Uuid>) {
        sqlx::query_as(
            "select state, booked_appointment_id from waitlist_entry
              where practice_id = $1 and entry_id = $2::uuid",
        )
        .bind(p)
        .bind(&entry)
        .fetch_one(su)
        .await
        .unwrap()
    };
    let (state, booked) = entry_state(&mut su).await;
    assert_eq!(state, "booked");
    assert!(booked.is_some());
    // A second client waits for the same days: the held slot, once released, is theirs to take.
    let other = add_entry(
        &app,
        &reception,
        p,
        cs[1].id,
        &service,
        at(&app, 1, 0),
        at(&app, 6, 0),
    )
    .await;
    let offers_to = async |su: &mut sqlx::PgConnection, entry: &str| -> i64 {
        sqlx::query_scalar(
            "select count(*) from waitlist_offer where practice_id = $1 and entry_id = $2::uuid",
        )
        .bind(p)
        .bind(entry)
        .fetch_one(su)
        .await
        .unwrap()
    };
    assert_eq!(offers_to(&mut su, &other).await, 0);
    let ends: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "select hold_expires_at from booking_payment where practice_id = $1 and state = 'pending'",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();

    let job =
        server::jobs::payments::ExpiredHolds::new(h.owner.clone(), server::jobs::payments::EVERY);
    assert_eq!(
        job.pass(Some(p), ends - Duration::seconds(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(entry_state(&mut su).await.0, "booked", "not before the end");
    assert_eq!(
        offers_to(&mut su, &other).await,
        0,
        "nothing offered while held"
    );
    assert_eq!(job.pass(Some(p), ends).await.unwrap(), 1);
    assert_eq!(entry_state(&mut su).await, ("waiting".to_owned(), None));
    // The released slot is offered to the waitlist like a cancelled one (not back to the
    // client who let it lapse).
    assert_eq!(offers_to(&mut su, &other).await, 1);
    let offered_by: Option<uuid::Uuid> = sqlx::query_scalar(
        "select e.actor_id from audit_event e
          where e.practice_id = $1 and e.action = 'waitlist.offer'
          order by e.occurred_at desc limit 1",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(offered_by, None, "offered by the payments job, no actor");

    // Waiting again: the next freed slot is offered to it.
    let appt = appointment(&app, &reception, w, at(&app, 4, 9)).await;
    cancel(&app, &reception, p, &appt).await;
    assert_eq!(offers_to(&mut su, &entry).await, 2);
}
