//! Issue 19.7, the templates preview `/app/practices/{p}/templates`: reception, owners and
//! admins see every template of the catalogue exactly as it would be sent, with the
//! practice's name and sample slots, the SMS size in parts and the scanner's verdict (built
//! with the practice's own clients, for every role the page admits — owners and admins too,
//! who read no client record themselves: a client whose name is in a template's text makes
//! it refused, exactly as the outbox would); anonymous → sign-in, password only → second
//! factor, another practice → 404, a clinician → 403 (audited); the page carries the CSP and
//! names no client.

use reqwest::header::{CACHE_CONTROL, LOCATION};
use reqwest::{Method, StatusCode};
use testkit::{TestApp, TestDb, World};

use crate::web_pages::{client, request, request_id};

async fn audit(su: &mut sqlx::PgConnection, p: domain::PracticeId, id: &str) -> Vec<String> {
    sqlx::query_scalar(
        "select action || ':' || outcome from audit_event where practice_id = $1 and request_id = $2 order by action",
    )
    .bind(p)
    .bind(uuid::Uuid::parse_str(id).unwrap())
    .fetch_all(su)
    .await
    .unwrap()
}

// req: EGR-01, EGR-04 — the authorization matrix of the templates preview, what it shows and
// what it never shows.
#[tokio::test]
async fn the_templates_preview_shows_every_template_to_the_front_desk_only() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = w.a.id;
    let path = format!("/app/practices/{p}/templates");
    let mut su = db.superuser_unsafe().await;
    // A client whose family name is the sample vendor's: the subprocessor notice is refused.
    let owner_store = db.owner().await;
    owner_store
        .seed_patient(
            p,
            &store::patients::NewPatient {
                given_name: "Rowan".into(),
                family_name: "Telnyx".into(),
                date_of_birth: None,
                phone: Some("+15550100188".into()),
                email: Some("rowan.t@patients.example.invalid".into()),
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let seeded = domain::synthetic::Generator::new(u64::from(b'a')).patient();

    let res = request(&http, &app, Method::GET, &path, None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/app/sign-in");
    let half = app.password_only_token(w.a.user("reception")).await;
    let res = request(&http, &app, Method::GET, &path, Some(&half))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/app/sign-in/second-factor");
    for token in [
        app.token(w.b.user("owner")).await,
        app.token(w.nobody).await,
    ] {
        let res = request(&http, &app, Method::GET, &path, Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    let clinician = app.token(w.a.user("clinician")).await;
    let res = request(&http, &app, Method::GET, &path, Some(&clinician))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let id = request_id(&res);
    assert_eq!(audit(&mut su, p, &id).await, ["access.denied:denied"]);

    for role in ["reception", "owner", "admin"] {
        let token = app.token(w.a.user(role)).await;
        let res = request(&http, &app, Method::GET, &path, Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{role}");
        assert_eq!(
            res.headers()["content-security-policy"],
            web::CONTENT_SECURITY_POLICY
        );
        assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
        let id = request_id(&res);
        assert_eq!(
            audit(&mut su, p, &id).await,
            ["outbox.preview:success"],
            "{role}"
        );
        let body = res.text().await.unwrap();
        for t in outbound::Message::TEMPLATES {
            assert!(
                body.contains(&format!("id=\"template-{t}\"")),
                "{role}: {t}"
            );
        }
        // The bytes as sent: the practice's name, sample slots on the practice's origin.
        assert!(body.contains("Practice a: your appointment is booked for Tue 4 Jun at 09:30."));
        assert!(body.contains("Subject: <span id=\"template-booking_confirmed-subject\">Your appointment is booked - Practice a</span>"));
        assert!(body.contains(&format!(
            "https://localhost/manage/{}",
            server::outbox_preview::SAMPLE_TOKEN
        )));
        assert!(body.contains("https://localhost/subprocessors"));
        assert!(body.contains("GSM-7 characters, 1 part"));
        // The scanner's verdicts, the same for every role (the outbox job's client list):
        // everything passes but the notice naming the client's name, SMS and email.
        let refused = 2;
        assert_eq!(
            body.matches("Passes the scanner.").count(),
            2 * outbound::Message::TEMPLATES.len() - refused,
            "{role}"
        );
        assert_eq!(
            body.matches("Refused by the scanner: client_name").count(),
            refused,
            "{role}"
        );
        for secret in [
            "Rowan",
            "rowan.t@",
            "0188",
            seeded.given_name.as_str(),
            seeded.family_name.as_str(),
            seeded.email.as_str(),
        ] {
            assert!(!body.contains(secret), "{role} sees {secret}");
        }
    }
}

// req: EGR-01 — the preview's scanner is the real sends' scanner with the practice's own
// client list, whoever looks: with the practice's name (a slot of every template) equal to a
// synthetic client's full name, every template is flagged for owners and admins as for
// reception, and no role's page shows the client's contacts.
#[tokio::test]
async fn a_preview_whose_slot_is_a_clients_name_is_flagged_for_every_role() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let http = client();
    let p = w.a.id;
    let path = format!("/app/practices/{p}/templates");
    // A synthetic client whose given and family names the practice's name then spells.
    let s = (1..100u64)
        .map(|seed| domain::synthetic::Generator::new(seed).patient())
        .find(|s| {
            outbound::PracticeName::new(&format!("{} {}", s.given_name, s.family_name)).is_ok()
        })
        .unwrap();
    db.owner()
        .await
        .seed_patient(p, &s.clone().into(), chrono::Utc::now())
        .await
        .unwrap();
    let name = format!("{} {}", s.given_name, s.family_name);
    let mut su = db.superuser_unsafe().await;
    sqlx::query("update practice set name = $2 where practice_id = $1")
        .bind(p)
        .bind(&name)
        .execute(&mut su)
        .await
        .unwrap();
    let all = outbound::Message::TEMPLATES.len() * 2;
    for role in ["owner", "admin", "reception"] {
        let token = app.token(w.a.user(role)).await;
        let res = request(&http, &app, Method::GET, &path, Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{role}");
        let id = request_id(&res);
        let body = res.text().await.unwrap();
        assert_eq!(
            body.matches("Refused by the scanner: client_name").count(),
            all,
            "{role}: every SMS and every email carries the name"
        );
        assert_eq!(body.matches("Passes the scanner.").count(), 0, "{role}");
        for secret in [s.phone.as_str(), s.email.as_str()] {
            assert!(!body.contains(secret), "{role} sees a client's contact");
        }
        // The opening of the client list is audited, with the count and no client named.
        let details: serde_json::Value = sqlx::query_scalar(
            "select details from audit_event where practice_id = $1 and request_id = $2
                and action = 'outbox.preview'",
        )
        .bind(p)
        .bind(uuid::Uuid::parse_str(&id).unwrap())
        .fetch_one(&mut su)
        .await
        .unwrap();
        assert_eq!(details, serde_json::json!({"clients": 2}), "{role}");
    }
}
