//! `egress::smtp` against a real SMTP server process (aiosmtpd), DKIM checked by dkimpy.

use std::time::Duration;

use base64::Engine as _;
use egress::ApiKey;
use egress::outbound::{Finding, PracticeName};
use egress::send::{EmailAddress, EmailRequest, Idempotency, Mailer, SendError};
use egress::smtp::{Dkim, DkimKey, SmtpConfig, SmtpConfigError, SmtpMailer, SmtpSecurity};
use rcgen::PublicKeyData as _;
use testkit::mailpay_standins::{SmtpServer, dkim_verify};

use super::{SENDER, client_email, confirmation, key, practice, scanner, send_to_client};

fn config(port: u16, security: SmtpSecurity, dkim: Option<Dkim>) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security,
        credentials: None,
        sender: EmailAddress::parse(SENDER).unwrap(),
        dkim,
        extra_roots_pem: Vec::new(),
        timeout: Duration::from_secs(20),
    }
}

/// An Ed25519 DKIM key (PKCS#8 PEM) and its DNS record.
fn ed25519_key() -> (Dkim, String) {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let record = format!(
        "v=DKIM1; k=ed25519; p={}",
        base64::engine::general_purpose::STANDARD.encode(kp.public_key_raw())
    );
    let key = DkimKey::from_pem(&kp.serialize_pem()).unwrap();
    assert!(key.is_ed25519());
    (
        Dkim {
            selector: "cr2026".into(),
            domain: "harbour-dental.test".into(),
            key,
        },
        record,
    )
}

/// An RSA-2048 DKIM key (PKCS#8 PEM, as `openssl genrsa` writes it) and its DNS record.
fn rsa_key() -> (Dkim, String) {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let record = format!(
        "v=DKIM1; k=rsa; p={}",
        base64::engine::general_purpose::STANDARD.encode(kp.subject_public_key_info())
    );
    let key = DkimKey::from_pem(&kp.serialize_pem()).unwrap();
    assert!(!key.is_ed25519());
    (
        Dkim {
            selector: "rsa1".into(),
            domain: "harbour-dental.test".into(),
            key,
        },
        record,
    )
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    let head = message.split("\r\n\r\n").next()?;
    head.split("\r\n")
        .find(|l| {
            l.len() > name.len()
                && l[..name.len()].eq_ignore_ascii_case(name)
                && l.as_bytes()[name.len()] == b':'
        })
        .map(|l| l[name.len() + 1..].trim())
}

/// The decoded body of a received message (7bit or base64).
fn body_text(message: &str) -> String {
    let body = message.split("\r\n\r\n").nth(1).unwrap();
    let decoded = match header(message, "Content-Transfer-Encoding") {
        Some("base64") => {
            let b64: String = body.split_whitespace().collect();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
            )
            .unwrap()
        }
        Some("7bit") => body.to_owned(),
        other => panic!("unexpected encoding {other:?}"),
    };
    decoded.trim_end().replace("\r\n", "\n")
}

// req: EGR-01
#[tokio::test]
async fn a_signed_text_message_reaches_the_server_and_its_dkim_verifies() {
    let server = SmtpServer::start().await;
    let (dkim, record) = ed25519_key();
    let mailer = SmtpMailer::new(&config(
        server.port(),
        SmtpSecurity::PlainLoopbackOnly,
        Some(dkim),
    ))
    .unwrap();
    assert_eq!(mailer.vendor(), "smtp");
    assert_eq!(mailer.idempotency(), Idempotency::None);
    let rendered = confirmation(practice()).render();
    let to = client_email();
    let k = key();
    let receipt = mailer
        .send_email(
            &scanner(),
            EmailRequest {
                to: &to,
                body: rendered.email(),
                key: k,
            },
        )
        .await
        .unwrap();
    let message_id = format!("<{}@harbour-dental.test>", k.0.as_hyphenated());
    // The receipt is the Message-ID's unique part, in the outbox's provider id alphabet.
    assert_eq!(receipt.provider_id, k.0.as_hyphenated().to_string());

    let got = server.messages();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.mail_from, SENDER);
    assert_eq!(m.rcpt_to, vec![to.as_str().to_owned()]);
    let text = String::from_utf8(m.data.clone()).unwrap();
    assert_eq!(header(&text, "From"), Some(SENDER));
    assert_eq!(header(&text, "To"), Some(to.as_str()));
    assert_eq!(header(&text, "Subject"), Some(rendered.email().subject()));
    assert_eq!(header(&text, "Message-ID"), Some(message_id.as_str()));
    assert!(
        header(&text, "Content-Type").is_some_and(|v| v.starts_with("text/plain")),
        "{text}"
    );
    // The link line is longer than 78 characters: base64, not quoted-printable.
    assert_eq!(header(&text, "Content-Transfer-Encoding"), Some("base64"));
    assert_eq!(body_text(&text), rendered.email().text().trim_end());
    assert!(
        text.contains("DKIM-Signature: v=1; a=ed25519-sha256;"),
        "{text}"
    );
    assert!(text.contains("d=harbour-dental.test;") && text.contains("s=cr2026;"));

    let (ok, out) = dkim_verify(&m.path, &record);
    assert!(ok, "DKIM did not verify: {out}");
    assert!(
        out.contains("cr2026._domainkey.harbour-dental.test"),
        "{out}"
    );
    // A changed body no longer verifies (the check is real).
    let tampered = m.path.with_extension("tampered");
    std::fs::write(
        &tampered,
        text.replace("Subject: Your appointment", "Subject: Your appointmen7"),
    )
    .unwrap();
    assert!(!dkim_verify(&tampered, &record).0);
    // Nor does another key's record.
    let (_, other_record) = ed25519_key();
    assert!(!dkim_verify(&m.path, &other_record).0);
}

// req: EGR-01
#[tokio::test]
async fn rsa_keys_sign_too_and_non_ascii_bodies_go_as_base64() {
    let server = SmtpServer::start().await;
    let (dkim, record) = rsa_key();
    let mailer = SmtpMailer::new(&config(
        server.port(),
        SmtpSecurity::PlainLoopbackOnly,
        Some(dkim),
    ))
    .unwrap();
    let rendered = confirmation(PracticeName::new("Zahnarzt Müller").unwrap()).render();
    send_to_client(&mailer, rendered.email()).await.unwrap();
    let got = server.messages();
    assert_eq!(got.len(), 1);
    let text = String::from_utf8(got[0].data.clone()).unwrap();
    assert_eq!(header(&text, "Content-Transfer-Encoding"), Some("base64"));
    assert!(text.contains("a=rsa-sha256"));
    assert_eq!(body_text(&text), rendered.email().text().trim_end());
    let (ok, out) = dkim_verify(&got[0].path, &record);
    assert!(ok, "DKIM did not verify: {out}");
}

// req: EGR-01
#[tokio::test]
async fn a_scanner_finding_opens_no_smtp_session() {
    let server = SmtpServer::start().await;
    let (dkim, _) = ed25519_key();
    let mailer = SmtpMailer::new(&config(
        server.port(),
        SmtpSecurity::PlainLoopbackOnly,
        Some(dkim),
    ))
    .unwrap();
    // An adversarial practice-name slot carrying one of the practice's own clients' names.
    let leaky = super::leaky_practice(3);
    let rendered = confirmation(leaky).render();
    let err = send_to_client(&mailer, rendered.email()).await.unwrap_err();
    assert!(
        matches!(err, SendError::Refused(Finding::ClientName)),
        "{err:?}"
    );
    assert_eq!(server.sessions(), 0);
    assert!(server.messages().is_empty());
}

// req: EGR-01
#[tokio::test]
async fn replies_map_to_retry_reject_and_unreachable() {
    let server = SmtpServer::start().await;
    let mailer = SmtpMailer::new(&config(
        server.port(),
        SmtpSecurity::PlainLoopbackOnly,
        None,
    ))
    .unwrap();
    let rendered = confirmation(practice()).render();
    let to = client_email();
    let sc = scanner();
    let send = |k| {
        mailer.send_email(
            &sc,
            EmailRequest {
                to: &to,
                body: rendered.email(),
                key: k,
            },
        )
    };
    server.script("451 4.3.0 Try again later");
    let e = send(key()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { .. }), "{e:?}");
    assert!(e.is_retryable());
    server.script("550 5.1.1 Mailbox unavailable");
    let e = send(key()).await.unwrap_err();
    assert!(matches!(e, SendError::Rejected { status: 550 }), "{e:?}");
    assert!(!e.is_retryable());
    assert!(server.messages().is_empty());

    // A repeat with the same key sends again, with the same Message-ID (no provider key).
    let k = key();
    send(k).await.unwrap();
    send(k).await.unwrap();
    let got = server.messages();
    assert_eq!(got.len(), 2);
    let id = |m: &testkit::mailpay_standins::ReceivedMail| {
        header(&String::from_utf8_lossy(&m.data), "Message-ID").map(str::to_owned)
    };
    assert_eq!(id(&got[0]), id(&got[1]));

    // Nothing listening: unreachable, and retryable.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = SmtpMailer::new(&config(port, SmtpSecurity::PlainLoopbackOnly, None)).unwrap();
    let e = send_to_client(&gone, rendered.email()).await.unwrap_err();
    assert!(matches!(e, SendError::Unreachable), "{e:?}");
}

// req: EGR-01
#[tokio::test]
async fn starttls_is_required_and_verified() {
    let rendered = confirmation(practice()).render();

    // A relay that offers no STARTTLS: refused before anything is handed over.
    let plain = SmtpServer::start().await;
    let mailer = SmtpMailer::new(&config(plain.port(), SmtpSecurity::StartTls, None)).unwrap();
    let e = send_to_client(&mailer, rendered.email()).await.unwrap_err();
    assert!(matches!(e, SendError::Unreachable), "{e:?}");
    assert!(plain.messages().is_empty());

    // A relay with a certificate from a CA the operator added: delivered over TLS.
    let ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let tls =
        SmtpServer::start_with_starttls(&ca.cert.pem(), &ca.signing_key.serialize_pem()).await;
    let mut c = config(tls.port(), SmtpSecurity::StartTls, None);
    c.extra_roots_pem = vec![ca.cert.pem().into_bytes()];
    c.credentials = None;
    let mailer = SmtpMailer::new(&c).unwrap();
    send_to_client(&mailer, rendered.email()).await.unwrap();
    assert_eq!(tls.messages().len(), 1);

    // Without that CA the certificate is not trusted: nothing is sent.
    let untrusting = SmtpMailer::new(&config(tls.port(), SmtpSecurity::StartTls, None)).unwrap();
    let e = send_to_client(&untrusting, rendered.email())
        .await
        .unwrap_err();
    assert!(matches!(e, SendError::Unreachable), "{e:?}");
    assert_eq!(tls.messages().len(), 1);
}

#[test]
fn plain_smtp_only_to_loopback_and_keys_are_checked() {
    let mut c = config(25, SmtpSecurity::PlainLoopbackOnly, None);
    c.host = "smtp.example.test".into();
    assert_eq!(
        SmtpMailer::new(&c).map(|_| ()).unwrap_err(),
        SmtpConfigError::PlainNotLoopback
    );
    let mut c = config(587, SmtpSecurity::StartTls, None);
    c.host = "smtp.example.test".into();
    c.credentials = Some(("relay-user".into(), ApiKey::new("relay-password".into())));
    let mailer = SmtpMailer::new(&c).unwrap();
    assert!(!format!("{mailer:?}").contains("relay-password"));
    assert_eq!(
        DkimKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
            .unwrap_err(),
        SmtpConfigError::DkimKey
    );
    let (mut dkim, _) = ed25519_key();
    dkim.selector = "bad selector".into();
    assert_eq!(
        SmtpMailer::new(&config(25, SmtpSecurity::PlainLoopbackOnly, Some(dkim)))
            .map(|_| ())
            .unwrap_err(),
        SmtpConfigError::DkimName
    );
}
