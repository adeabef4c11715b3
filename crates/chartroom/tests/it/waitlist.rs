//! Issue 19.5, the booking waitlist: a cancellation (staff, or the client through a manage
//! link, late or not) offers the freed slot in its own transaction to at most N matching
//! entries (N a practice setting, default 3) by queueing `waitlist_offer` messages with an
//! `offer` link each; the first client to accept books the slot through the online booking's
//! slot claim, the others find it taken; an expired, used or wrong-purpose link changes
//! nothing; nothing crosses practices; the offer messages pass the outbound scanner and carry
//! no name or phone; the staff routes' authorization matrix.

use chrono::{DateTime, Duration, Utc};
use domain::{Clock as _, PatientId, RequestId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::TestApp;

use crate::outbox::{Harness, ORIGIN, tomorrow_at};
use crate::util::call;

/// A client of practice A (or B) with synthetic name, a valid mobile number and an email.
pub(crate) struct Client {
    pub id: PatientId,
    pub given: String,
    pub family: String,
    pub phone: String,
}

pub(crate) async fn clients(
    h: &Harness,
    p: domain::PracticeId,
    n: usize,
    seed: u64,
) -> Vec<Client> {
    let mut g = domain::synthetic::Generator::new(seed);
    let mut out = Vec::new();
    for i in 0..n {
        let s = g.patient();
        let phone = format!(
            "+1555010{:04}",
            2000 + (seed % 1000) * 10 + u64::try_from(i).unwrap()
        );
        let id = h
            .owner
            .seed_patient(
                p,
                &store::patients::NewPatient {
                    given_name: s.given_name.clone(),
                    family_name: s.family_name.clone(),
                    date_of_birth: Some(s.date_of_birth),
                    phone: Some(phone.clone()),
                    email: Some(s.email.clone()),
                },
                Utc::now(),
            )
            .await
            .unwrap();
        out.push(Client {
            id,
            given: s.given_name,
            family: s.family_name,
            phone,
        });
    }
    out
}

/// `days` days from the app's today at `hour`:00 UTC.
pub(crate) fn at(app: &TestApp, days: i64, hour: u32) -> DateTime<Utc> {
    (app.clock.now().date_naive() + Duration::days(days))
        .and_hms_opt(hour, 0, 0)
        .unwrap()
        .and_utc()
}

/// Puts `patient` on A's waitlist for `service` from `from` to `to` (as reception); its id.
pub(crate) async fn add_entry(
    app: &TestApp,
    token: &str,
    p: domain::PracticeId,
    patient: PatientId,
    service: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> String {
    let (s, b) = call(
        app,
        Method::POST,
        &format!("/api/v1/practices/{p}/waitlist"),
        Some(token),
        Some(
            &json!({"patient_id": patient, "service_id": service, "earliest": from, "latest": to}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["state"], "waiting");
    b["entry_id"].as_str().unwrap().to_owned()
}

/// A staff appointment of the fixture patient with A's clinician at `starts`, one hour.
pub(crate) async fn appointment(
    app: &TestApp,
    token: &str,
    w: &testkit::World,
    starts: DateTime<Utc>,
) -> String {
    let (s, b) = call(
        app,
        Method::POST,
        &format!("/api/v1/practices/{}/appointments", w.a.id),
        Some(token),
        Some(
            &json!({"patient_id": w.a.patient, "clinician_id": w.a.user("clinician"),
                     "starts_at": starts, "ends_at": starts + Duration::hours(1)}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["appointment_id"].as_str().unwrap().to_owned()
}

pub(crate) async fn cancel(app: &TestApp, token: &str, p: domain::PracticeId, appt: &str) {
    let (s, b) = call(
        app,
        Method::PATCH,
        &format!("/api/v1/practices/{p}/appointments/{appt}"),
        Some(token),
        Some(&json!({"status": "cancelled"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn scalar(su: &mut sqlx::PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(su).await.unwrap()
}

/// The offers' patients, oldest entry first.
async fn offered(su: &mut sqlx::PgConnection) -> Vec<PatientId> {
    sqlx::query_scalar(
        "select o.patient_id from waitlist_offer o
           join waitlist_entry e on e.practice_id = o.practice_id and e.entry_id = o.entry_id
          order by e.created_at, e.entry_id",
    )
    .fetch_all(su)
    .await
    .unwrap()
}

/// Sends every due message through the stand-ins; the offer tokens the SMS carried, by phone.
pub(crate) async fn send_offers(h: &Harness) -> Vec<(String, String)> {
    let report = h.job().pass(Some(h.w.a.id), tomorrow_at(12)).await.unwrap();
    assert_eq!(report.refused, 0, "{report:?}");
    let prefix = format!("{ORIGIN}/offer/");
    h.telnyx
        .messages()
        .into_iter()
        .filter_map(|m| {
            let at = m.text.find(&prefix)?;
            let token: String = m.text[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            Some((m.to, token))
        })
        .collect()
}

/// Accepts the offer of `token` in the store at `now`; `None` when the link opens nothing.
async fn accept(
    app: &TestApp,
    token: &str,
    now: DateTime<Utc>,
) -> Option<store::waitlist::AcceptOutcome> {
    let token = outbound::LinkToken::parse(token).unwrap();
    let mut tx = app
        .store
        .offer_link(&token, RequestId::new(), now)
        .await
        .unwrap()?;
    let out = tx.accept(app.store.keyring().unwrap()).await.unwrap();
    tx.commit().await.unwrap();
    Some(out)
}

// req: EGR-05 — a staff cancellation offers the freed slot, in its transaction, to the three
// oldest matching entries only (not the fourth, not one whose window or service does not fit,
// not another practice's); each offer has its own hashed, expiring `offer` link and its
// messages; the audit rows carry no contact.
#[tokio::test]
async fn a_cancellation_offers_the_slot_to_the_oldest_matching_entries() {
    let h = Harness::new().await;
    let app = TestApp::start(&h.db).await;
    let w = &h.w;
    let service = crate::booking_api::set_up_for(&app, &w.a, "allowed").await;
    let service_b = crate::booking_api::set_up_for(&app, &w.b, "allowed").await;
    let reception = app.token(w.a.user("reception")).await;
    let reception_b = app.token(w.b.user("reception")).await;
    let cs = clients(&h, w.a.id, 6, 41).await;
    let cs_b = clients(&h, w.b.id, 1, 42).await;
    let slot = at(&app, 3, 10);
    let appt = appointment(&app, &reception, w, slot).await;
    let (from, to) = (at(&app, 1, 0), at(&app, 6, 0));
    for c in &cs[..4] {
        add_entry(&app, &reception, w.a.id, c.id, &service, from, to).await;
    }
    // A window that misses the slot; a window that ends before it.
    add_entry(
        &app,
        &reception,
        w.a.id,
        cs[4].id,
        &service,
        at(&app, 4, 0),
        to,
    )
    .await;
    add_entry(
        &app,
        &reception,
        w.a.id,
        cs[5].id,
        &service,
        from,
        at(&app, 2, 0),
    )
    .await;
    // Practice B's client waits for the same times.
    add_entry(&app, &reception_b, w.b.id, cs_b[0].id, &service_b, from, to).await;

    let mut su = h.su().await;
    assert_eq!(
        scalar(&mut su, "select count(*) from waitlist_offer").await,
        0
    );
    cancel(&app, &reception, w.a.id, &appt).await;

    let got = offered(&mut su).await;
    assert_eq!(got, vec![cs[0].id, cs[1].id, cs[2].id]);
    assert_eq!(
        scalar(&mut su, "select count(*) from waitlist_offer where practice_id <> (select practice_id from waitlist_offer limit 1)").await,
        0
    );
    let links: Vec<(DateTime<Utc>, DateTime<Utc>, i32)> = sqlx::query_as(
        "select created_at, expires_at, octet_length(digest) from client_link where purpose = 'offer'",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(links.len(), 3);
    for (created, expires, digest) in links {
        assert_eq!(digest, 32);
        assert_eq!(
            expires - created,
            Duration::hours(12),
            "the earlier of 12 h and the start"
        );
    }
    let messages: Vec<(String, String, PatientId)> = sqlx::query_as(
        "select channel, cause, patient_id from outbox_message where template = 'waitlist_offer' order by 3, 1",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(messages.len(), 6, "email and SMS per offer");
    for (_, cause, patient) in &messages {
        assert_eq!(cause, "waitlist");
        assert!(got.contains(patient));
    }
    let audit: Vec<Value> = sqlx::query_scalar(
        "select to_jsonb(a) from audit_event a where action = 'waitlist.offer' order by occurred_at",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(audit.len(), 3);
    for a in &audit {
        let t = a.to_string();
        for c in &cs {
            assert!(!t.contains(&c.phone[2..]) && !t.contains(&c.family), "{t}");
        }
        assert_eq!(a["actor_id"], json!(w.a.user("reception")));
    }

    // A second cancellation, at a time no waiting entry accepts: no offer.
    let late = appointment(&app, &reception, w, at(&app, 8, 10)).await;
    cancel(&app, &reception, w.a.id, &late).await;
    assert_eq!(
        scalar(&mut su, "select count(*) from waitlist_offer").await,
        3
    );
    // Cancelling what is already cancelled offers nothing again.
    cancel(&app, &reception, w.a.id, &appt).await;
    assert_eq!(
        scalar(&mut su, "select count(*) from waitlist_offer").await,
        3
    );
}

// req: EGR-05 — N is the practice's setting.
#[tokio::test]
async fn the_number_of_offers_is_a_practice_setting() {
    let h = Harness::new().await;
    let app = TestApp::start(&h.db).await;
    let w = &h.w;
    let service = crate::booking_api::set_up_for(&app, &w.a, "allowed").await;
    let owner = app.token(w.a.user("owner")).await;
    let (s, mut settings) = call(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{}/booking/settings", w.a.id),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(settings["waitlist_offers"], 3);
    settings["waitlist_offers"] = json!(0);
    let path = format!("/api/v1/practices/{}/booking/settings", w.a.id);
    let (s, _) = call(&app, Method::PUT, &path, Some(&owner), Some(&settings)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "0 is out of range");
    settings["waitlist_offers"] = json!(1);
    let (s, b) = call(&app, Method::PUT, &path, Some(&owner), Some(&settings)).await;
    assert!(s.is_success(), "{b}");

    let reception = app.token(w.a.user("reception")).await;
    let cs = clients(&h, w.a.id, 2, 43).await;
    let slot = at(&app, 2, 9);
    let appt = appointment(&app, &reception, w, slot).await;
    for c in &cs {
        add_entry(
            &app,
            &reception,
            w.a.id,
            c.id,
            &service,
            at(&app, 1, 0),
            at(&app, 5, 0),
        )
        .await;
    }
    cancel(&app, &reception, w.a.id, &appt).await;
    let mut su = h.su().await;
    assert_eq!(offered(&mut su).await, vec![cs[0].id]);
}

// req: EGR-05 — two clients accepting at once: exactly one booking; the other's offer is
// closed as taken; a third who comes later sees the time taken and changes nothing; the
// winner's link is used up; the booking gets its confirmation and manage link. The offer
// messages passed the scanner and carry no name or phone.
#[tokio::test]
async fn the_first_to_accept_books_the_slot_and_the_others_find_it_taken() {
    let h = Harness::new().await;
    let app = TestApp::start(&h.db).await;
    let w = &h.w;
    let service = crate::booking_api::set_up_for(&app, &w.a, "allowed").await;
    let reception = app.token(w.a.user("reception")).await;
    let cs = clients(&h, w.a.id, 3, 44).await;
    let slot = at(&app, 3, 11);
    let appt = appointment(&app, &reception, w, slot).await;
    for c in &cs {
        add_entry(
            &app,
            &reception,
            w.a.id,
            c.id,
            &service,
            at(&app, 1, 0),
            at(&app, 6, 0),
        )
        .await;
    }
    cancel(&app, &reception, w.a.id, &appt).await;

    let tokens = send_offers(&h).await;
    assert_eq!(tokens.len(), 3, "one SMS per offer");
    for m in h.telnyx.messages() {
        for c in &cs {
            assert!(
                !m.text.contains(&c.given) && !m.text.contains(&c.family),
                "{}",
                m.text
            );
            assert!(!m.text.contains(&c.phone[2..]), "{}", m.text);
        }
    }
    let emails = h.resend.emails();
    assert_eq!(emails.len(), 3);
    for e in emails {
        assert!(e.text.contains("/offer/"), "{}", e.text);
        for c in &cs {
            assert!(!e.text.contains(&c.family) && !e.subject.contains(&c.family));
        }
    }
    let token_of = |c: &Client| {
        tokens
            .iter()
            .find(|(to, _)| *to == c.phone)
            .map(|(_, t)| t.clone())
            .unwrap()
    };
    let (t0, t1, t2) = (token_of(&cs[0]), token_of(&cs[1]), token_of(&cs[2]));

    let now = app.clock.now();
    let (a, b) = tokio::join!(accept(&app, &t0, now), accept(&app, &t1, now));
    let booked = |o: &Option<store::waitlist::AcceptOutcome>| {
        matches!(o, Some(store::waitlist::AcceptOutcome::Booked(_)))
    };
    assert!(booked(&a) ^ booked(&b), "exactly one wins: {a:?} {b:?}");
    let (winner, loser) = if booked(&a) {
        (&cs[0], &cs[1])
    } else {
        (&cs[1], &cs[0])
    };
    let mut su = h.su().await;
    let at_slot: Vec<(PatientId, String)> = sqlx::query_as(
        "select patient_id, status from appointment where practice_id = $1 and starts_at = $2 order by status",
    )
    .bind(w.a.id)
    .bind(slot)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(
        at_slot,
        vec![
            (winner.id, "booked".to_owned()),
            (w.a.patient, "cancelled".to_owned())
        ]
    );
    let states: Vec<(PatientId, String, String)> = sqlx::query_as(
        "select o.patient_id, o.state, e.state from waitlist_offer o
           join waitlist_entry e on e.practice_id = o.practice_id and e.entry_id = o.entry_id",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    for (p, offer, entry) in states {
        if p == winner.id {
            assert_eq!((offer.as_str(), entry.as_str()), ("accepted", "booked"));
        } else if p == loser.id {
            assert_eq!((offer.as_str(), entry.as_str()), ("taken", "waiting"));
        } else {
            assert_eq!((offer.as_str(), entry.as_str()), ("open", "waiting"));
        }
    }
    // The booking: an online booking, its confirmation and a manage link.
    let confirmations = scalar(
        &mut su,
        "select count(*) from outbox_message where template = 'booking_confirmed'",
    )
    .await;
    assert_eq!(confirmations, 2, "email and SMS to the winner");
    let online = scalar(
        &mut su,
        "select count(*) from online_booking where status = 'booked'",
    )
    .await;
    assert_eq!(online, 1);
    let manage = scalar(
        &mut su,
        "select count(*) from client_link where purpose = 'booking_manage'",
    )
    .await;
    assert_eq!(manage, 1);

    // The third client: the page says taken; accepting changes nothing but closing their offer.
    let third = outbound::LinkToken::parse(&t2).unwrap();
    let mut tx = app
        .store
        .offer_link(&third, RequestId::new(), now)
        .await
        .unwrap()
        .unwrap();
    let view = tx.offer().await.unwrap().unwrap();
    assert!(!view.open);
    assert_eq!(view.service, "Cleaning");
    drop(tx);
    let before = scalar(&mut su, "select count(*) from appointment").await;
    assert!(matches!(
        accept(&app, &t2, now).await,
        Some(store::waitlist::AcceptOutcome::Taken)
    ));
    assert_eq!(
        scalar(&mut su, "select count(*) from appointment").await,
        before
    );
    // Used links open nothing any more.
    for t in [&t0, &t1, &t2] {
        assert!(accept(&app, t, now).await.is_none());
    }
    let results: Vec<Value> = sqlx::query_scalar(
        "select details from audit_event where action = 'waitlist.accept' order by occurred_at",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results.iter().filter(|d| d["result"] == "booked").count(),
        1
    );
    assert_eq!(results.iter().filter(|d| d["result"] == "taken").count(), 2);
}

// req: EGR-05 — an expired offer link, an offer token presented as a manage link, and a manage
// token presented as an offer: each opens nothing and changes nothing.
#[tokio::test]
async fn expired_or_wrong_purpose_offer_links_change_nothing() {
    let h = Harness::new().await;
    let app = TestApp::start(&h.db).await;
    let w = &h.w;
    let service = crate::booking_api::set_up_for(&app, &w.a, "allowed").await;
    let reception = app.token(w.a.user("reception")).await;
    let cs = clients(&h, w.a.id, 1, 45).await;
    let slot = at(&app, 3, 14);
    let appt = appointment(&app, &reception, w, slot).await;
    add_entry(
        &app,
        &reception,
        w.a.id,
        cs[0].id,
        &service,
        at(&app, 1, 0),
        at(&app, 6, 0),
    )
    .await;
    cancel(&app, &reception, w.a.id, &appt).await;
    let tokens = send_offers(&h).await;
    let t = tokens[0].1.clone();
    let mut su = h.su().await;
    let count = "select (select count(*) from appointment) + (select count(*) from online_booking)
                 + (select count(*) from waitlist_offer where state <> 'open')";
    let before = scalar(&mut su, count).await;

    let later = app.clock.now() + Duration::hours(12) + Duration::seconds(1);
    assert!(accept(&app, &t, later).await.is_none(), "expired");
    let parsed = outbound::LinkToken::parse(&t).unwrap();
    assert!(
        app.store
            .manage_link(&parsed, RequestId::new(), app.clock.now())
            .await
            .unwrap()
            .is_none(),
        "an offer link is no manage link"
    );
    let manage = outbound::LinkToken::generate();
    assert!(
        accept(&app, manage.expose_for_sealing(), app.clock.now())
            .await
            .is_none()
    );
    assert_eq!(scalar(&mut su, count).await, before);
    // Still open and acceptable in time.
    assert!(matches!(
        accept(&app, &t, app.clock.now()).await,
        Some(store::waitlist::AcceptOutcome::Booked(_))
    ));
}

// req: EGR-05 — a client's late cancellation through the manage link offers the slot too,
// in the same transaction.
#[tokio::test]
async fn a_client_cancelling_through_the_manage_link_frees_the_slot_for_the_waitlist() {
    let h = Harness::new().await;
    let app = TestApp::start(&h.db).await;
    let w = &h.w;
    let service = crate::booking_api::set_up_for(&app, &w.a, "allowed").await;
    let reception = app.token(w.a.user("reception")).await;
    let cs = clients(&h, w.a.id, 2, 46).await;
    // Inside the 24-hour window: a late cancellation.
    // A whole hour between 2 and 23 hours from now, inside the clinician's 00:00–23:59.
    let now = app.clock.now();
    let slot = (2..24)
        .map(|h| now + Duration::hours(h))
        .map(|t| {
            t.date_naive()
                .and_hms_opt(chrono::Timelike::hour(&t), 0, 0)
                .unwrap()
                .and_utc()
        })
        .find(|t| (1..=21).contains(&chrono::Timelike::hour(t)) && *t > now + Duration::hours(1))
        .unwrap();
    let person = domain::synthetic::Generator::new(47).patient();
    let mut tx = app
        .store
        .online_booking(w.a.id, RequestId::new(), app.clock.now())
        .await
        .unwrap()
        .unwrap();
    let tz = tx.time_zone().await.unwrap();
    let booked = tx
        .book(
            app.store.keyring().unwrap(),
            service.parse().unwrap(),
            tz,
            slot,
            &store::booking::ClientDetails {
                given_name: person.given_name.clone(),
                family_name: person.family_name.clone(),
                date_of_birth: person.date_of_birth,
                phone: "+15550104999".into(),
                email: person.email.clone(),
            },
        )
        .await
        .unwrap()
        .unwrap();
    let token = tx.create_booking_manage_link(&booked).await.unwrap();
    tx.commit().await.unwrap();
    for c in &cs {
        add_entry(
            &app,
            &reception,
            w.a.id,
            c.id,
            &service,
            at(&app, 0, 0),
            at(&app, 3, 0),
        )
        .await;
    }
    let url = outbound::OpaqueLink::new(
        &outbound::LinkOrigin::parse(ORIGIN).unwrap(),
        outbound::LinkPurpose::Manage,
        &token,
    );
    let m = url.as_str().rsplit('/').next().unwrap().to_owned();
    let http = crate::web_pages::client();
    let res = http
        .post(app.url(&format!("/manage/{m}/cancel")))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut su = h.su().await;
    let late: bool = sqlx::query_scalar(
        "select client_cancelled_late from appointment where appointment_id = $1",
    )
    .bind(booked.appointment_id)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert!(late);
    assert_eq!(offered(&mut su).await, vec![cs[0].id, cs[1].id]);
    let expiries: Vec<DateTime<Utc>> = sqlx::query_scalar("select expires_at from waitlist_offer")
        .fetch_all(&mut su)
        .await
        .unwrap();
    for e in expiries {
        assert!(
            e <= slot,
            "an offer expires by the slot's start (no notice)"
        );
    }
    let actors: Vec<Option<uuid::Uuid>> =
        sqlx::query_scalar("select actor_id from audit_event where action = 'waitlist.offer'")
            .fetch_all(&mut su)
            .await
            .unwrap();
    assert_eq!(actors, vec![None, None], "no member acted");
}

// req: EGR-05 — the staff routes' matrix: anonymous 401, another practice 404, a clinician 403
// (audited), reception, owners and admins 2xx with their audit events; bad input 400 with
// nothing stored; another practice's entry is 404.
#[tokio::test]
async fn waitlist_routes_authorization_matrix() {
    let h = Harness::new().await;
    let app = TestApp::start(&h.db).await;
    let w = &h.w;
    let service = crate::booking_api::set_up_for(&app, &w.a, "allowed").await;
    let p = w.a.id;
    let list = format!("/api/v1/practices/{p}/waitlist");
    let body = json!({"patient_id": w.a.patient, "service_id": service,
                      "earliest": at(&app, 1, 0), "latest": at(&app, 5, 0)});
    let mut su = h.su().await;

    let (s, _) = call(&app, Method::GET, &list, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(&app, Method::POST, &list, None, Some(&body)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let other = app.token(w.b.user("owner")).await;
    let (s, _) = call(&app, Method::GET, &list, Some(&other), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(&app, Method::POST, &list, Some(&other), Some(&body)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let clinician = app.token(w.a.user("clinician")).await;
    let (s, _) = call(&app, Method::GET, &list, Some(&clinician), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(&app, Method::POST, &list, Some(&clinician), Some(&body)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let denied: i64 = sqlx::query_scalar(
        "select count(*) from audit_event where practice_id = $1 and action = 'access.denied' and actor_id = $2",
    )
    .bind(p)
    .bind(w.a.user("clinician"))
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(denied, 2);
    assert_eq!(
        scalar(&mut su, "select count(*) from waitlist_entry").await,
        0
    );

    for role in ["reception", "owner", "admin"] {
        let t = app.token(w.a.user(role)).await;
        let (s, b) = call(&app, Method::POST, &list, Some(&t), Some(&body)).await;
        assert_eq!(s, StatusCode::CREATED, "{role}: {b}");
        let id = b["entry_id"].as_str().unwrap().to_owned();
        let (s, b) = call(&app, Method::GET, &list, Some(&t), None).await;
        assert_eq!(s, StatusCode::OK, "{role}");
        assert!(
            b.as_array()
                .unwrap()
                .iter()
                .any(|e| e["entry_id"] == id.as_str())
        );
        let one = format!("{list}/{id}");
        // Another practice's staff, and a clinician, cannot remove it.
        let (s, _) = call(&app, Method::DELETE, &one, Some(&other), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let other_path = format!("/api/v1/practices/{}/waitlist/{id}", w.b.id);
        let (s, _) = call(&app, Method::DELETE, &other_path, Some(&other), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "A's entry is not in B");
        let (s, _) = call(&app, Method::DELETE, &one, Some(&clinician), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, b) = call(&app, Method::DELETE, &one, Some(&t), None).await;
        assert_eq!(s, StatusCode::OK, "{role}: {b}");
        assert_eq!(b["state"], "removed");
        let (s, _) = call(&app, Method::DELETE, &one, Some(&t), None).await;
        assert_eq!(s, StatusCode::CONFLICT, "not waiting any more");
    }
    for action in ["waitlist.add", "waitlist.list", "waitlist.remove"] {
        let n = sqlx::query_scalar::<_, i64>(
            "select count(*) from audit_event where practice_id = $1 and action = $2",
        )
        .bind(p)
        .bind(action)
        .fetch_one(&mut su)
        .await
        .unwrap();
        assert_eq!(n, 3, "{action}");
    }

    // Bad input: a clear 400, nothing stored.
    let reception = app.token(w.a.user("reception")).await;
    let before = scalar(&mut su, "select count(*) from waitlist_entry").await;
    for bad in [
        json!({"patient_id": w.a.patient, "service_id": service, "earliest": at(&app, 5, 0), "latest": at(&app, 1, 0)}),
        json!({"patient_id": w.a.patient, "service_id": service, "earliest": at(&app, -9, 0), "latest": at(&app, -2, 0)}),
        json!({"patient_id": w.a.patient, "service_id": uuid::Uuid::new_v4(), "earliest": at(&app, 1, 0), "latest": at(&app, 2, 0)}),
        json!({"patient_id": w.b.patient, "service_id": service, "earliest": at(&app, 1, 0), "latest": at(&app, 2, 0)}),
        json!({"patient_id": w.a.patient, "service_id": service, "clinician_id": w.a.user("reception"), "earliest": at(&app, 1, 0), "latest": at(&app, 2, 0)}),
        json!({"patient_id": w.a.patient, "service_id": service, "earliest": at(&app, 1, 0), "latest": at(&app, 400, 0)}),
        json!({"patient_id": w.a.patient}),
    ] {
        let (s, b) = call(&app, Method::POST, &list, Some(&reception), Some(&bad)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
    }
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("{list}?state=bogus"),
        Some(&reception),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        scalar(&mut su, "select count(*) from waitlist_entry").await,
        before
    );
}
