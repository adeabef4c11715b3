use super::*;
use crate::{
    AppointmentTime, LinkOrigin, LinkPurpose, LinkToken, Message, OpaqueLink, PracticeName,
    PracticePhone,
};

fn clients() -> Vec<KnownClient> {
    vec![
        KnownClient {
            given: "Maren".into(),
            family: "Quillfeather".into(),
            phones: vec!["+1 (555) 013-2267".into()],
            emails: vec!["maren.q@example.test".into()],
            address_lines: vec!["48 Larchmont Crescent".into()],
        },
        KnownClient {
            given: "Ode".into(),
            family: "Ng".into(),
            phones: vec!["555-014-9921".into()],
            emails: vec![],
            address_lines: vec!["Flat 2, Weir Court".into()],
        },
        // A client whose family name is an everyday word.
        KnownClient {
            given: "Tamsin".into(),
            family: "Book".into(),
            ..KnownClient::default()
        },
    ]
}

fn practice() -> PracticeName {
    PracticeName::new("Harbour Dental").unwrap()
}

fn own_phone() -> PracticePhone {
    PracticePhone::new("+15550100199").unwrap()
}

fn scanner() -> Scanner {
    Scanner::new(
        &clients(),
        ["book.harbour.test".to_owned()],
        &[own_phone()],
        &["front@harbour.test".to_owned()],
        Some(&practice()),
    )
    .unwrap()
}

fn link(p: LinkPurpose) -> OpaqueLink {
    OpaqueLink::new(
        &LinkOrigin::parse("https://book.harbour.test").unwrap(),
        p,
        &LinkToken::generate(),
    )
}

fn time() -> AppointmentTime {
    AppointmentTime::new(
        chrono::NaiveDate::from_ymd_opt(2026, 12, 8)
            .unwrap()
            .and_hms_opt(9, 5, 0)
            .unwrap(),
    )
}

fn every_message(practice: &PracticeName) -> Vec<Message> {
    let p = || practice.clone();
    vec![
        Message::BookingConfirmed {
            practice: p(),
            time: time(),
            link: link(LinkPurpose::Manage),
        },
        Message::BookingReminder {
            practice: p(),
            time: time(),
            link: link(LinkPurpose::Manage),
        },
        Message::BookingRescheduled {
            practice: p(),
            time: time(),
            link: link(LinkPurpose::Manage),
        },
        Message::BookingCancelled {
            practice: p(),
            time: time(),
            phone: own_phone(),
        },
        Message::IntakeRequest {
            practice: p(),
            link: link(LinkPurpose::Intake),
        },
        Message::WaitlistOffer {
            practice: p(),
            time: time(),
            link: link(LinkPurpose::Offer),
        },
        Message::PaymentRequest {
            practice: p(),
            link: link(LinkPurpose::Pay),
        },
        Message::StopConfirmed { practice: p() },
        Message::StartConfirmed { practice: p() },
        Message::Help {
            practice: p(),
            phone: own_phone(),
        },
        Message::SubprocessorChange {
            practice: p(),
            vendor: crate::SubprocessorName::from_registry("Amazon Web Services (Bedrock)")
                .unwrap(),
            effective: crate::NoticeDate::new(chrono::NaiveDate::from_ymd_opt(2027, 1, 6).unwrap()),
            link: crate::PublicPageLink::new(
                &LinkOrigin::parse("https://book.harbour.test").unwrap(),
                crate::PublicPage::Subprocessors,
            ),
        },
        Message::WaitlistJoined {
            practice: p(),
            link: link(LinkPurpose::Waitlist),
        },
    ]
}

// req: EGR-01 — every template, rendered, passes the scanner in every encoding.
#[test]
fn every_template_is_clean_in_every_encoding() {
    let s = scanner();
    let msgs = every_message(&practice());
    assert_eq!(
        msgs.iter().map(Message::template).collect::<Vec<_>>(),
        Message::TEMPLATES.to_vec()
    );
    for m in &msgs {
        let r = m.render();
        for body in [r.sms().as_str(), r.email().subject(), r.email().text()] {
            assert!(body.len() < 1000);
            assert_eq!(
                s.scan(body.as_bytes(), None),
                Ok(()),
                "{}: {body}",
                m.template()
            );
            let json = serde_json::to_vec(&serde_json::json!({
                "from": "+15550100199", "to": "+15550132267", "text": body,
                "messaging_profile_id": "40017f3b-1234-4bcd-9123-567812345678"
            }))
            .unwrap();
            assert_eq!(
                s.scan(&json, Some("+1 555 013 2267")),
                Ok(()),
                "{}",
                m.template()
            );
            let form: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("To", "+15550132267")
                .append_pair("Body", body)
                .finish();
            assert_eq!(s.scan(form.as_bytes(), Some("+15550132267")), Ok(()));
        }
    }
}

#[test]
fn client_data_is_found_in_every_encoding() {
    let s = scanner();
    let cases: &[(&str, Finding)] = &[
        ("Hello Maren Quillfeather, see you", Finding::ClientName),
        ("QUILLFEATHER, MAREN", Finding::ClientName),
        ("for quillfeather", Finding::ClientName),
        ("Dear Ode Ng", Finding::ClientName),
        ("Tamsin Book booked", Finding::ClientName),
        ("call 555.013.2267", Finding::ClientPhone),
        ("call (555) 014-9921", Finding::ClientPhone),
        ("write maren.q@example.test", Finding::ClientEmail),
        ("write someone@else.test", Finding::EmailAddress),
        ("at 48 Larchmont Crescent", Finding::ClientAddress),
        ("card 4242 4242 4242 4242", Finding::CardNumber),
        ("card 4000-0566-5566-5556", Finding::CardNumber),
        ("ssn 123-45-6789", Finding::SsnLike),
        ("chart 123456789", Finding::LongDigitRun),
        ("see https://evil.test/x", Finding::LinkHost),
        ("see www.evil.test", Finding::LinkHost),
        (
            "see https://book.harbour.test/chart?patient=7",
            Finding::LinkPath,
        ),
        (
            "see https://book.harbour.test/intake/short",
            Finding::LinkPath,
        ),
        // The public page passes only as itself: no sub-path, query or other page.
        (
            "see https://book.harbour.test/subprocessors/7",
            Finding::LinkPath,
        ),
        (
            "see https://book.harbour.test/subprocessors?patient=7",
            Finding::LinkPath,
        ),
        ("see https://book.harbour.test/patients", Finding::LinkPath),
        ("see https://evil.test/subprocessors", Finding::LinkHost),
    ];
    for (text, want) in cases {
        assert_eq!(s.scan(text.as_bytes(), None), Err(*want), "{text}");
        let json = serde_json::to_string(&serde_json::json!({ "text": text })).unwrap();
        // JSON with every non-ASCII-alphanumeric character escaped as \u00XX.
        let escaped: String = json
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "{}\":".contains(c) {
                    c.to_string()
                } else {
                    format!("\\u{:04x}", u32::from(c))
                }
            })
            .collect();
        assert_eq!(s.scan(escaped.as_bytes(), None), Err(*want), "json {text}");
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("Body", text)
            .finish();
        assert_eq!(s.scan(form.as_bytes(), None), Err(*want), "form {text}");
        let b64 =
            base64::engine::general_purpose::STANDARD.encode(format!("Body line\r\n{text}\r\n"));
        let mime = format!("Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n");
        assert_eq!(s.scan(mime.as_bytes(), None), Err(*want), "base64 {text}");
        let qp = text.bytes().fold(String::new(), |mut acc, b| {
            let _ = std::fmt::Write::write_fmt(&mut acc, format_args!("={b:02X}"));
            acc
        });
        assert_eq!(s.scan(qp.as_bytes(), None), Err(*want), "qp {text}");
    }
}

#[test]
fn what_may_be_sent_is_not_refused() {
    let s = scanner();
    for ok in [
        "Harbour Dental: call +1 555 010 0199",
        "write front@harbour.test",
        "ids 40017f3b-1234-4bcd-9123-567812345678 cus_9f31234567890abc",
        "amount=5000&currency=usd",
        "Book your next visit",
        "Tue 8 Dec at 09:05",
        "",
    ] {
        assert_eq!(s.scan(ok.as_bytes(), None), Ok(()), "{ok}");
    }
    // The recipient's own number and address may appear (the envelope).
    assert_eq!(s.scan(b"to=+15550132267", Some("+1 555 013 2267")), Ok(()));
    assert_eq!(
        s.scan(b"To: maren.q@example.test", Some("maren.q@example.test")),
        Ok(())
    );
    // …but not another client's.
    assert_eq!(
        s.scan(b"to=+15550149921", Some("+1 555 013 2267")),
        Err(Finding::ClientPhone)
    );
    assert_eq!(
        s.scan(&vec![b'a'; MAX_PAYLOAD_BYTES + 1], None),
        Err(Finding::TooLarge)
    );
}

// req: EGR-01 — adversarial values cannot get into a slot, and what the scanner must catch
// is caught even when a slot is abused.
#[test]
fn adversarial_slot_values_are_refused_at_the_slot_or_by_the_scanner() {
    let s = scanner();
    for bad in [
        "Maren Quillfeather",
        "Quillfeather Dental",
        "Ng & Quillfeather",
    ] {
        // A practice name may only be letters: it can spell a client's name; the scanner
        // still refuses every message that carries it.
        let name = PracticeName::new(bad).unwrap();
        for m in every_message(&name) {
            let r = m.render();
            assert_eq!(
                s.scan(r.sms().as_str().as_bytes(), None),
                Err(Finding::ClientName),
                "{bad}"
            );
        }
    }
    for bad in [
        "maren.q@example.test",
        "https://evil.test",
        "Call 555 013 2267",
        "Line\nbreak",
        "x\u{202e}y",
        "4242424242424242",
    ] {
        let refused = PracticeName::new(bad).is_err()
            || every_message(&PracticeName::new(bad).unwrap())
                .iter()
                .all(|m| s.scan(m.render().sms().as_str().as_bytes(), None).is_err());
        assert!(refused, "{bad:?}");
    }
}

#[test]
fn luhn_and_shapes() {
    assert!(luhn("4242424242424242"));
    assert!(!luhn("4242424242424241"));
    assert!(ssn_like("123-45-6789"));
    assert!(!ssn_like("1234-5-6789"));
    assert!(is_uuid(b"40017f3b-1234-4bcd-9123-567812345678"));
}

#[test]
fn links_in_form_bodies_end_at_the_field_separator() {
    let l = link(LinkPurpose::Pay);
    let form = format!(
        "success_url={0}&cancel_url={0}&metadata%5Bref%5D=40017f3b-1234-4bcd-9123-567812345678",
        l.as_str().replace(':', "%3A").replace('/', "%2F")
    );
    assert_eq!(scanner().scan(form.as_bytes(), None), Ok(()));
    // What follows the separator is still read.
    let leaky = format!("success_url={}&name=Maren+Quillfeather", l.as_str());
    assert_eq!(
        scanner().scan(leaky.as_bytes(), None),
        Err(Finding::ClientName)
    );
}

#[test]
fn a_scanner_needs_a_host() {
    let err = Scanner::new(&[], Vec::<String>::new(), &[], &[], None).unwrap_err();
    assert_eq!(err, ScannerError::NoHosts);
}

proptest::proptest! {
    #[test]
    fn scanning_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
        let _ = scanner().scan(&bytes, None);
    }

    #[test]
    fn scanning_text_never_panics(text in "\\PC{0,400}") {
        let _ = scanner().scan(text.as_bytes(), Some("+15550132267"));
    }
}
