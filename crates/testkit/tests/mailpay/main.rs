//! The mail, payment and geocoding adapters (`egress::{smtp, resend, stripe, geocode}`)
//! against their loopback stand-ins and a real SMTP server process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::missing_panics_doc,
    clippy::must_use_candidate,
    clippy::too_many_lines,
    missing_docs,
    reason = "tests"
)]

mod geocode;
mod resend;
mod smtp;
mod stripe;

use domain::synthetic::Generator;
use egress::outbound::EmailBody;
use egress::outbound::{
    AppointmentTime, KnownClient, LinkOrigin, LinkPurpose, LinkToken, Message, OpaqueLink,
    PracticeName, PracticePhone, Scanner,
};
use egress::send::{EmailAddress, EmailRequest, IdempotencyKey, Mailer, Receipt, SendError};

/// The practice's public origin (the only link host allowed).
pub const ORIGIN: &str = "https://book.harbour-dental.test";
/// The practice's sender address.
pub const SENDER: &str = "appointments@harbour-dental.test";

pub fn practice() -> PracticeName {
    PracticeName::new("Harbour Dental").unwrap()
}

/// The practice's own synthetic clients, as the scanner knows them.
pub fn clients() -> Vec<KnownClient> {
    let mut g = Generator::new(19);
    (0..12)
        .map(|i| {
            let p = g.patient();
            KnownClient {
                given: p.given_name,
                family: p.family_name,
                phones: vec![p.phone],
                emails: vec![p.email],
                address_lines: vec![format!("{} Larchmont Crescent", 10 + i * 40)],
            }
        })
        .collect()
}

pub fn scanner() -> Scanner {
    Scanner::new(
        &clients(),
        [url::Url::parse(ORIGIN)
            .unwrap()
            .host_str()
            .unwrap()
            .to_owned()],
        &[PracticePhone::new("+15550100199").unwrap()],
        &[SENDER.to_owned()],
        Some(&practice()),
    )
    .unwrap()
}

pub fn link(purpose: LinkPurpose) -> OpaqueLink {
    OpaqueLink::new(
        &LinkOrigin::parse(ORIGIN).unwrap(),
        purpose,
        &LinkToken::generate(),
    )
}

pub fn confirmation(practice: PracticeName) -> Message {
    Message::BookingConfirmed {
        practice,
        time: AppointmentTime::new(
            chrono::NaiveDate::from_ymd_opt(2026, 12, 8)
                .unwrap()
                .and_hms_opt(9, 30, 0)
                .unwrap(),
        ),
        link: link(LinkPurpose::Manage),
    }
}

/// A client's address (synthetic).
pub fn client_email() -> EmailAddress {
    EmailAddress::parse(&clients()[0].emails[0]).unwrap()
}

pub fn key() -> IdempotencyKey {
    IdempotencyKey(uuid::Uuid::new_v4())
}

/// Every client datum the scanner knows, for "none of it left" checks on captured bytes.
pub fn client_data() -> Vec<String> {
    clients()
        .into_iter()
        .flat_map(|c| {
            let mut v = vec![c.family.clone(), format!("{} {}", c.given, c.family)];
            v.extend(c.phones.iter().map(|p| p.replace(' ', "")));
            v.extend(c.address_lines);
            v
        })
        .collect()
}

/// The instant webhooks are checked at (a fixed clock, as the server's injected one).
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_796_637_600, 0).unwrap()
}

/// An adversarial practice-name slot that carries the name of the practice's client `i`.
pub fn leaky_practice(i: usize) -> PracticeName {
    let c = &clients()[i];
    PracticeName::new(&format!("{} {} Dental", c.given, c.family)).unwrap()
}

/// Sends `body` to the synthetic client through `mailer`, with the practice's scanner and a
/// fresh idempotency key.
pub async fn send_to_client(mailer: &dyn Mailer, body: &EmailBody) -> Result<Receipt, SendError> {
    mailer
        .send_email(
            &scanner(),
            EmailRequest {
                to: &client_email(),
                body,
                key: key(),
            },
        )
        .await
}
