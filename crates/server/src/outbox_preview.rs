//! The templates preview: every template of the fixed catalogue ([`outbound::Message`])
//! rendered with the practice's own name and clearly synthetic sample slot values, exactly as
//! the outbox would send it (the SMS text with its encoding and parts, the email subject and
//! body), and the outbound scanner's verdict on each part — the same scanner the outbox job
//! builds ([`crate::jobs::outbox::practice_scanner`]), with the practice's own clients.
//!
//! Sample values: an appointment time on a fixed date far ahead, a link on the practice's
//! public origin whose token spells `SAMPLE` (not a link that opens anything), the fictional
//! phone number `+1 555 0100 123` (Chartroom stores no practice phone; the outbox does not
//! send the two templates that carry one), the registry's Telnyx name and a notice date.
//! Nothing about a client is shown.

use outbound::{
    AppointmentTime, LinkOrigin, LinkToken, Message, NoticeDate, PracticeName, PracticePhone,
    SampleSlots, Scanner, SmsSegments, SubprocessorName,
};

use crate::jobs::outbox::OwnContacts;

/// The sample phone number (NANP fictional range 555-0100 to 555-0199).
pub const SAMPLE_PHONE: &str = "+15550100123";

/// The sample link token: URL-safe, 43 characters, visibly not random.
pub const SAMPLE_TOKEN: &str = "SAMPLE-link-not-a-real-token-00000000000000";

/// One template, rendered and scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplatePreview {
    /// The template's stable name.
    pub template: &'static str,
    /// Who it goes to.
    pub audience: &'static str,
    /// The SMS text, as sent.
    pub sms: String,
    /// Its encoding and parts.
    pub segments: SmsSegments,
    /// The email subject, as sent.
    pub subject: String,
    /// The email's plain-text body, as sent.
    pub text: String,
    /// The scanner's finding on the SMS text (`None`: passes).
    pub sms_finding: Option<&'static str>,
    /// The scanner's finding on the email subject and body (`None`: passes).
    pub email_finding: Option<&'static str>,
}

/// Why no preview could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PreviewError {
    /// The practice's name is not one a template may carry (the outbox would not send).
    #[error(
        "the practice's name cannot be used in messages (letters, digits, spaces and & ' . , - ( ) only)"
    )]
    PracticeName,
    /// The public origin is not an `https` origin.
    #[error("the public origin is not an https origin")]
    Origin,
    /// The scanner could not be built (the outbox would not send either).
    #[error("the outbound scanner could not be built")]
    Scanner,
}

fn sample_messages(practice: &PracticeName, origin: &LinkOrigin) -> Option<Vec<Message>> {
    let token = LinkToken::parse(SAMPLE_TOKEN).ok()?;
    let slots = SampleSlots {
        practice: practice.clone(),
        origin: origin.clone(),
        phone: PracticePhone::new(SAMPLE_PHONE).ok()?,
        time: AppointmentTime::new(
            chrono::NaiveDate::from_ymd_opt(2030, 6, 4)?.and_hms_opt(9, 30, 0)?,
        ),
        vendor: SubprocessorName::from_registry(egress::registry::Vendor::Telnyx.display_name())
            .ok()?,
        effective: NoticeDate::new(chrono::NaiveDate::from_ymd_opt(2030, 7, 1)?),
    };
    Some(slots.every_template(|| token.clone()))
}

/// Every template of the catalogue for the practice `name` with links on `origin`, scanned
/// with the practice's own `clients` (opened by the caller's audited store call).
///
/// # Errors
/// [`PreviewError`] when the name or origin cannot be used or the scanner cannot be built.
pub fn preview(
    name: &str,
    origin: &str,
    clients: &[store::patients::Patient],
) -> Result<Vec<TemplatePreview>, PreviewError> {
    let practice = PracticeName::new(name).map_err(|_| PreviewError::PracticeName)?;
    let origin = LinkOrigin::parse(origin).map_err(|_| PreviewError::Origin)?;
    let own = OwnContacts {
        phones: vec![PracticePhone::new(SAMPLE_PHONE).map_err(|_| PreviewError::Scanner)?],
        emails: Vec::new(),
    };
    let scanner: Scanner =
        crate::jobs::outbox::practice_scanner(clients, &origin, &own, Some(&practice))
            .ok_or(PreviewError::Scanner)?;
    let messages = sample_messages(&practice, &origin).ok_or(PreviewError::Scanner)?;
    Ok(messages
        .iter()
        .map(|m| {
            let r = m.render();
            let email = r.email();
            let finding =
                |bytes: &[u8]| scanner.scan(bytes, None).err().map(outbound::Finding::name);
            TemplatePreview {
                template: m.template(),
                audience: if matches!(m, Message::SubprocessorChange { .. }) {
                    "owners"
                } else {
                    "clients"
                },
                sms: r.sms().as_str().to_owned(),
                segments: r.sms().segments(),
                subject: email.subject().to_owned(),
                text: email.text().to_owned(),
                sms_finding: finding(r.sms().as_str().as_bytes()),
                email_finding: finding(email.subject().as_bytes())
                    .or_else(|| finding(email.text().as_bytes())),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_is_previewed_and_passes_with_no_clients() {
        assert_eq!(SAMPLE_TOKEN.len(), 43);
        let all = preview("Harbour Dental", "https://book.harbour.test", &[]).unwrap();
        assert_eq!(
            all.iter().map(|p| p.template).collect::<Vec<_>>(),
            Message::TEMPLATES.to_vec()
        );
        for p in &all {
            assert_eq!((p.sms_finding, p.email_finding), (None, None), "{p:?}");
            assert!(p.sms.starts_with("Harbour Dental: "));
            assert!(p.segments.gsm7 && p.segments.parts >= 1);
        }
        assert_eq!(
            preview("Harbour@Dental", "https://book.harbour.test", &[]),
            Err(PreviewError::PracticeName)
        );
    }
}
