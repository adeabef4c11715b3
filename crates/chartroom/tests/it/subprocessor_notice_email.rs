//! Issue 19.4, owners hear of subprocessor changes by email as well as in the app: each
//! recorded registry change queues, in its own transaction, one `subprocessor_change` email
//! per active owner of each practice (not to admins, clinicians or reception), once per owner
//! per change; a recording with no change queues nothing; the outbox job sends them through
//! the scanner to a real SMTP server (aiosmtpd), with the vendor's registry name, the date the
//! change takes effect and the link to `/subprocessors`, and nothing else.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound as _, Utc};
use domain::{Role, RoleSet};
use egress::outbound::{LinkOrigin, PracticePhone};
use egress::registry::Integrations;
use egress::send::EmailAddress;
use egress::smtp::{SmtpConfig, SmtpMailer, SmtpSecurity};
use server::jobs::outbox::{Channels, Outbox, OwnContacts};
use testkit::mailpay_standins::{ReceivedMail, SmtpServer};
use testkit::messaging_standins::TelnyxStandIn;
use testkit::{TestDb, World};

use crate::embedded_binary::{client_for, launch, stop};
use crate::outbox::tomorrow_at;
use crate::outbox_serve::{
    Scratch, attempts, body_text, book, demo_data, free_slots, integrations, serve_command,
    set_up_booking, temp_dir, wait_for,
};
use crate::util::email_of;

const ORIGIN: &str = "https://chartroom.practice-a.example.invalid";
const SENDER: &str = "notices@practice-a.example.invalid";

/// Telnyx (PHI, BAA signed: effective after the notice period) and Stripe (no PHI: at once).
fn registry() -> Integrations {
    Integrations::parse(
        r#"
[[integration]]
kind = "sms"
vendor = "telnyx"
base_url = "https://api.telnyx.com/v2"
added = 2026-11-02
location = { country = "US", region = "us-east" }
credentials = { api_key_file = "/etc/chartroom/telnyx-key" }
sender = { sms_number = "+15555550100" }
baa = { status = "signed", signed_on = 2026-10-30, document = "Telnyx BAA 2026-10" }

[[integration]]
kind = "payments"
vendor = "stripe"
base_url = "https://api.stripe.com"
added = 2026-11-03
location = { country = "US" }
credentials = { api_key_file = "/etc/chartroom/stripe-key" }
"#,
        "integrations.toml",
    )
    .unwrap()
}

/// Queued notice emails per practice.
async fn queued(db: &TestDb) -> BTreeMap<domain::PracticeId, i64> {
    let mut su = db.superuser_unsafe().await;
    let rows: Vec<(domain::PracticeId, i64)> = sqlx::query_as(
        "select practice_id, count(*) from outbox_message
          where cause = 'subprocessor_change' and template = 'subprocessor_change'
            and channel = 'email' and patient_id is null
          group by practice_id",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    rows.into_iter().collect()
}

fn recipients(mail: &[ReceivedMail]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for m in mail {
        for r in &m.rcpt_to {
            *out.entry(r.clone()).or_default() += 1;
        }
    }
    out
}

// req: EGR-04 — a registry change queues one email per owner per change (in the recording's
// transaction), none to other roles; the same configuration again queues none; the job sends
// them through the scanner to the SMTP server, operational text only.
#[tokio::test]
async fn a_registry_change_emails_each_owner_once_and_a_repeat_emails_nobody() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let owner = db.owner().await;
    let now = Utc::now().trunc_subsecs(6);
    // A second owner in practice A (also a clinician), and the admin made a clinician too: roles
    // other than owner never get the email.
    let second = owner
        .create_user(
            &format!(
                "second.owner.{}@test.example.invalid",
                uuid::Uuid::new_v4().simple()
            ),
            "second owner",
            testkit::password_hash(),
            now,
        )
        .await
        .unwrap();
    owner
        .add_member(
            w.a.id,
            second,
            RoleSet::from_iter([Role::Owner, Role::Clinician]),
            now,
        )
        .await
        .unwrap();

    let first = owner
        .record_subprocessors_notifying(&registry().entries(), now, chrono::Duration::days(30))
        .await
        .unwrap();
    assert_eq!(first.changes.len(), 2);
    // Practice A: 2 owners × 2 changes; practice B: 1 × 2.
    assert_eq!(first.emails_queued, 6);
    assert_eq!(
        queued(&db).await,
        BTreeMap::from([(w.a.id, 4), (w.b.id, 2)])
    );

    // A restart with the same configuration: no change, no email.
    let again = owner
        .record_subprocessors_notifying(
            &registry().entries(),
            now + chrono::Duration::hours(1),
            chrono::Duration::days(30),
        )
        .await
        .unwrap();
    assert!(again.changes.is_empty());
    assert_eq!(again.emails_queued, 0);
    assert_eq!(
        queued(&db).await,
        BTreeMap::from([(w.a.id, 4), (w.b.id, 2)])
    );

    // The job sends them to the real SMTP server, through the scanner.
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
        owner.clone(),
        Channels {
            sms: None,
            email: Some(Arc::new(mailer)),
            push: None,
        },
        LinkOrigin::parse(ORIGIN).unwrap(),
        OwnContacts {
            phones: vec![PracticePhone::new("+15550100999").unwrap()],
            emails: vec![SENDER.into()],
        },
        Duration::from_secs(1),
    );
    let noon = tomorrow_at(12);
    let report = job.pass(None, noon).await.unwrap();
    assert_eq!((report.sent, report.refused, report.failed), (6, 0, 0));
    assert_eq!(job.pass(None, noon).await.unwrap().sent, 0, "sent once");

    let mail = smtp.messages();
    let (a_owner, b_owner) = (
        email_of(&db, w.a.user("owner")).await,
        email_of(&db, w.b.user("owner")).await,
    );
    let second_email = email_of(&db, second).await;
    assert_eq!(
        recipients(&mail),
        BTreeMap::from([(a_owner.clone(), 2), (b_owner, 2), (second_email, 2)])
    );
    for role in ["admin", "clinician", "reception"] {
        let other = email_of(&db, w.a.user(role)).await;
        assert!(mail.iter().all(|m| !m.rcpt_to.contains(&other)), "{role}");
    }
    let effective = (now + chrono::Duration::days(30)).date_naive();
    let mut vendors = Vec::new();
    for m in mail.iter().filter(|m| m.rcpt_to == [a_owner.clone()]) {
        let raw = String::from_utf8_lossy(&m.data).into_owned();
        assert!(
            raw.contains("Subprocessor list changed - Practice a"),
            "{raw}"
        );
        let body = body_text(m);
        assert!(body.contains(&format!("{ORIGIN}/subprocessors")), "{body}");
        assert!(
            !body.contains(&format!("{ORIGIN}/subprocessors/")),
            "{body}"
        );
        assert!(
            !body.contains(&a_owner) && !body.contains("owner a"),
            "{body}"
        );
        if body.contains("Telnyx") {
            vendors.push("Telnyx");
            assert!(
                body.contains(&format!("effective {}", effective.format("%-d %B %Y"))),
                "the PHI-touching vendor after the notice period: {body}"
            );
        }
        if body.contains("Stripe") {
            vendors.push("Stripe");
            assert!(
                body.contains(&format!("effective {}", now.format("%-d %B %Y"))),
                "{body}"
            );
        }
    }
    vendors.sort_unstable();
    assert_eq!(vendors, ["Stripe", "Telnyx"]);
}

// req: EGR-04 — through the real binary: the first start with an integrations file records
// its changes and emails the demo practices' owners (one per owner per change) through the
// SMTP server; a restart with the same file emails nobody (a booking made after it is
// confirmed, and no further notice arrives).
#[tokio::test]
async fn serve_emails_the_owners_at_a_registry_change_and_not_at_a_plain_restart() {
    let scratch = Scratch(temp_dir("subprocessor-notice"));
    let dir = scratch.0.clone();
    let smtp = SmtpServer::start().await;
    let telnyx = TelnyxStandIn::start("KEY_SYNTHETIC_subprocessor_notice_0123").await;
    let file = dir.join("integrations.toml");
    let smtp_url = format!("smtp://127.0.0.1:{}", smtp.port());
    std::fs::write(&file, integrations(&dir, &smtp_url, &telnyx)).unwrap();
    let data = demo_data(&dir).await;
    let owners = [
        "owner@harbor.demo.invalid".to_owned(),
        "owner@willow.demo.invalid".to_owned(),
    ];
    let is_notice = |m: &ReceivedMail| owners.contains(&m.rcpt_to.join(","));

    // Two integrations added (the SMTP relay and Telnyx): 2 practices × 1 owner × 2 changes.
    let server = launch(serve_command(&data, &file)).await;
    let (mail, _) = wait_for(&smtp, &telnyx, Duration::from_secs(60), |m, _| {
        m.iter().filter(|m| is_notice(m)).count() >= 4
    })
    .await;
    assert_eq!(
        recipients(&mail),
        BTreeMap::from([(owners[0].clone(), 2), (owners[1].clone(), 2)]),
        "only the owners, once per change"
    );
    for m in &mail {
        let body = body_text(m);
        assert!(
            body.contains("https://book.harbour-dental.test/subprocessors"),
            "{body}"
        );
    }
    stop(server).await;

    // Restart: no change, so no notice; a booking's confirmation arrives after the restart,
    // and by then no further notice has.
    let server = launch(serve_command(&data, &file)).await;
    let base = server.base.clone();
    let (practice, service) = set_up_booking(&data, &base).await;
    let http = client_for(&data);
    let slots = free_slots(&http, &base, &practice, &service, 4).await;
    let a = &attempts(&slots, 1)[0];
    let (status, client) = book(&http, &base, &practice, &service, &a.slot_text, a.seed).await;
    assert_eq!(status, Ok(202));
    let (mail, _) = wait_for(&smtp, &telnyx, Duration::from_secs(60), |m, _| {
        m.iter().any(|m| m.rcpt_to == [client.email.clone()])
    })
    .await;
    assert_eq!(mail.iter().filter(|m| is_notice(m)).count(), 4);
    assert_eq!(mail.len(), 5);
    stop(server).await;
    let _ = std::fs::remove_dir_all(&dir);
}
