//! The catalogue of outbound messages and their rendering.

use super::slots::{
    AppointmentTime, NoticeDate, OpaqueLink, PracticeName, PracticePhone, PublicPageLink,
    SubprocessorName,
};

/// Every message Chartroom can send to a client, with its typed slots. There is no variant
/// with free text, and no other way to make a [`Rendered`] message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A booking was made; the link manages it.
    BookingConfirmed {
        /// The practice.
        practice: PracticeName,
        /// When.
        time: AppointmentTime,
        /// The manage link.
        link: OpaqueLink,
    },
    /// A booking is coming up; the link confirms, cancels or reschedules it.
    BookingReminder {
        /// The practice.
        practice: PracticeName,
        /// When.
        time: AppointmentTime,
        /// The manage link.
        link: OpaqueLink,
    },
    /// A booking was moved.
    BookingRescheduled {
        /// The practice.
        practice: PracticeName,
        /// The new time.
        time: AppointmentTime,
        /// The manage link.
        link: OpaqueLink,
    },
    /// A booking was cancelled.
    BookingCancelled {
        /// The practice.
        practice: PracticeName,
        /// The time that was booked.
        time: AppointmentTime,
        /// The practice's phone, to book again.
        phone: PracticePhone,
    },
    /// A form to fill in before the visit.
    IntakeRequest {
        /// The practice.
        practice: PracticeName,
        /// The intake link.
        link: OpaqueLink,
    },
    /// A freed slot offered to clients on the waitlist; the first to accept books it.
    WaitlistOffer {
        /// The practice.
        practice: PracticeName,
        /// The slot.
        time: AppointmentTime,
        /// The offer link.
        link: OpaqueLink,
    },
    /// A client put themselves on the waitlist; the link takes them off it.
    WaitlistJoined {
        /// The practice.
        practice: PracticeName,
        /// The link to leave the waitlist.
        link: OpaqueLink,
    },
    /// A deposit or fee to pay.
    PaymentRequest {
        /// The practice.
        practice: PracticeName,
        /// The payment link.
        link: OpaqueLink,
    },
    /// The answer to an SMS `STOP`.
    StopConfirmed {
        /// The practice.
        practice: PracticeName,
    },
    /// The answer to an SMS `START`.
    StartConfirmed {
        /// The practice.
        practice: PracticeName,
    },
    /// The answer to an SMS `HELP`.
    Help {
        /// The practice.
        practice: PracticeName,
        /// The practice's phone.
        phone: PracticePhone,
    },
    /// To a practice's owners (not to clients): the installation's subprocessor list changed.
    /// Operational, no PHI: the vendor's registry name, the date it takes effect and the
    /// published list.
    SubprocessorChange {
        /// The practice.
        practice: PracticeName,
        /// The vendor whose entry changed.
        vendor: SubprocessorName,
        /// When the change takes effect.
        effective: NoticeDate,
        /// The published list (`/subprocessors`).
        link: PublicPageLink,
    },
}

/// An SMS body, made only by [`Message::render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsBody(String);

impl SmsBody {
    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How an SMS body travels: its encoding, its length in that encoding's units and the
/// number of message parts a carrier bills (3GPP TS 23.038 and 23.040: GSM 7-bit 160 units
/// alone or 153 per part when concatenated, an extension character counting 2; otherwise
/// UCS-2, 70 UTF-16 units alone or 67 per part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsSegments {
    /// `true`: GSM 7-bit; `false`: UCS-2.
    pub gsm7: bool,
    /// Length in septets (GSM) or UTF-16 units (UCS-2).
    pub units: usize,
    /// Message parts.
    pub parts: usize,
}

/// The GSM 03.38 basic character set (3GPP TS 23.038 §6.2.1), without the escape.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The GSM 03.38 extension table (each costs 2 septets).
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{c}";

impl SmsBody {
    /// Its encoding and the number of parts it is sent as.
    #[must_use]
    pub fn segments(&self) -> SmsSegments {
        let gsm: Option<usize> = self.0.chars().try_fold(0usize, |n, c| {
            if GSM7_BASIC.contains(c) {
                Some(n + 1)
            } else if GSM7_EXTENSION.contains(c) {
                Some(n + 2)
            } else {
                None
            }
        });
        let (gsm7, units, single, multi) = match gsm {
            Some(n) => (true, n, 160, 153),
            None => (false, self.0.encode_utf16().count(), 70, 67),
        };
        let parts = if units <= single {
            1
        } else {
            units.div_ceil(multi)
        };
        SmsSegments { gsm7, units, parts }
    }
}

/// An email's subject and plain-text body, made only by [`Message::render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailBody {
    subject: String,
    text: String,
}

impl EmailBody {
    /// The subject (operational: the practice name at most).
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The plain-text body.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// A message rendered for each channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    template: &'static str,
    sms: SmsBody,
    email: EmailBody,
}

impl Rendered {
    /// The template's stable name (for the outbox and the audit trail).
    #[must_use]
    pub const fn template(&self) -> &'static str {
        self.template
    }

    /// The SMS body.
    #[must_use]
    pub const fn sms(&self) -> &SmsBody {
        &self.sms
    }

    /// The email.
    #[must_use]
    pub const fn email(&self) -> &EmailBody {
        &self.email
    }
}

/// A Web Push payload: always the same content-free sentence (req EGR-03).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushPayload(&'static str);

impl PushPayload {
    /// The only push payload there is.
    #[must_use]
    pub const fn update() -> Self {
        Self(r#"{"title":"Update","body":"You have an update."}"#)
    }

    /// Its JSON bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &'static [u8] {
        self.0.as_bytes()
    }
}

const FOOTER: &str = "This is an automated message. Please do not reply with health information.";

impl Message {
    /// Every template's stable name.
    pub const TEMPLATES: [&'static str; 12] = [
        "booking_confirmed",
        "booking_reminder",
        "booking_rescheduled",
        "booking_cancelled",
        "intake_request",
        "waitlist_offer",
        "payment_request",
        "stop_confirmed",
        "start_confirmed",
        "help",
        "subprocessor_change",
        "waitlist_joined",
    ];

    /// The template's stable name.
    #[must_use]
    pub const fn template(&self) -> &'static str {
        match self {
            Self::BookingConfirmed { .. } => "booking_confirmed",
            Self::BookingReminder { .. } => "booking_reminder",
            Self::BookingRescheduled { .. } => "booking_rescheduled",
            Self::BookingCancelled { .. } => "booking_cancelled",
            Self::IntakeRequest { .. } => "intake_request",
            Self::WaitlistOffer { .. } => "waitlist_offer",
            Self::PaymentRequest { .. } => "payment_request",
            Self::StopConfirmed { .. } => "stop_confirmed",
            Self::StartConfirmed { .. } => "start_confirmed",
            Self::Help { .. } => "help",
            Self::SubprocessorChange { .. } => "subprocessor_change",
            Self::WaitlistJoined { .. } => "waitlist_joined",
        }
    }

    /// Renders the message for SMS and email.
    #[must_use]
    #[expect(
        clippy::too_many_lines,
        reason = "one arm per template: the catalogue reads as one table"
    )]
    pub fn render(&self) -> Rendered {
        let (p, sms, subject, text) = match self {
            Self::BookingConfirmed {
                practice,
                time,
                link,
            } => (
                practice,
                format!(
                    "your appointment is booked for {}. Confirm, cancel or reschedule: {}",
                    time.render(),
                    link.as_str()
                ),
                "Your appointment is booked",
                format!(
                    "Your appointment is booked for {}.\n\nTo confirm, cancel or reschedule, open:\n{}",
                    time.render(),
                    link.as_str()
                ),
            ),
            Self::BookingReminder {
                practice,
                time,
                link,
            } => (
                practice,
                format!(
                    "reminder of your appointment on {}. Confirm, cancel or reschedule: {}",
                    time.render(),
                    link.as_str()
                ),
                "Appointment reminder",
                format!(
                    "A reminder of your appointment on {}.\n\nTo confirm, cancel or reschedule, open:\n{}",
                    time.render(),
                    link.as_str()
                ),
            ),
            Self::BookingRescheduled {
                practice,
                time,
                link,
            } => (
                practice,
                format!(
                    "your appointment is now on {}. Manage it: {}",
                    time.render(),
                    link.as_str()
                ),
                "Your appointment was moved",
                format!(
                    "Your appointment is now on {}.\n\nTo manage it, open:\n{}",
                    time.render(),
                    link.as_str()
                ),
            ),
            Self::BookingCancelled {
                practice,
                time,
                phone,
            } => (
                practice,
                format!(
                    "your appointment on {} is cancelled. To book again call {}",
                    time.render(),
                    phone.as_str()
                ),
                "Your appointment was cancelled",
                format!(
                    "Your appointment on {} is cancelled.\n\nTo book again, call {}.",
                    time.render(),
                    phone.as_str()
                ),
            ),
            Self::IntakeRequest { practice, link } => (
                practice,
                format!(
                    "please fill in your forms before your visit: {}",
                    link.as_str()
                ),
                "Forms to fill in before your visit",
                format!(
                    "Please fill in your forms before your visit:\n{}",
                    link.as_str()
                ),
            ),
            Self::WaitlistOffer {
                practice,
                time,
                link,
            } => (
                practice,
                format!(
                    "a time opened up on {}. First to accept gets it: {}",
                    time.render(),
                    link.as_str()
                ),
                "A time opened up",
                format!(
                    "A time opened up on {}. It goes to the first to accept:\n{}",
                    time.render(),
                    link.as_str()
                ),
            ),
            Self::WaitlistJoined { practice, link } => (
                practice,
                format!(
                    "you are on the waitlist. We will send you any time that opens up. To leave the waitlist: {}",
                    link.as_str()
                ),
                "You are on the waitlist",
                format!(
                    "You are on the waitlist. When a time opens up we will send it to you; the first to accept gets it.\n\nTo leave the waitlist, open:\n{}",
                    link.as_str()
                ),
            ),
            Self::PaymentRequest { practice, link } => (
                practice,
                format!("you have a payment to make: {}", link.as_str()),
                "A payment to make",
                format!("You have a payment to make:\n{}", link.as_str()),
            ),
            Self::StopConfirmed { practice } => (
                practice,
                "you will get no more texts. Reply START to resume.".to_owned(),
                "Text messages stopped",
                "You will get no more text messages. Reply START to a text to resume.".to_owned(),
            ),
            Self::StartConfirmed { practice } => (
                practice,
                "texts resumed. Reply STOP to stop, HELP for help.".to_owned(),
                "Text messages resumed",
                "Text messages resumed. Reply STOP to stop, HELP for help.".to_owned(),
            ),
            Self::Help { practice, phone } => (
                practice,
                format!(
                    "appointment messages. Call {} for help. Reply STOP to stop.",
                    phone.as_str()
                ),
                "Help with appointment messages",
                format!(
                    "These are appointment messages. Call {} for help.",
                    phone.as_str()
                ),
            ),
            Self::SubprocessorChange {
                practice,
                vendor,
                effective,
                link,
            } => (
                practice,
                format!(
                    "the subprocessor list changed ({}), effective {}. Details: {}",
                    vendor.as_str(),
                    effective.render(),
                    link.as_str()
                ),
                "Subprocessor list changed",
                format!(
                    "The list of subprocessors this installation of Chartroom uses has changed: {}, effective {}.\n\nThe published list and its dated history:\n{}",
                    vendor.as_str(),
                    effective.render(),
                    link.as_str()
                ),
            ),
        };
        let name = p.as_str();
        Rendered {
            template: self.template(),
            sms: SmsBody(format!("{name}: {sms}")),
            email: EmailBody {
                subject: format!("{subject} - {name}"),
                text: format!("{text}\n\n{name}\n\n{FOOTER}\n"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_segments_follow_the_gsm_and_ucs2_limits() {
        let seg = |s: &str| SmsBody(s.to_owned()).segments();
        let gsm = |units, parts| SmsSegments {
            gsm7: true,
            units,
            parts,
        };
        let ucs2 = |units, parts| SmsSegments {
            gsm7: false,
            units,
            parts,
        };
        assert_eq!(seg(&"a".repeat(160)), gsm(160, 1));
        assert_eq!(seg(&"a".repeat(161)), gsm(161, 2));
        assert_eq!(seg(&"a".repeat(307)), gsm(307, 3));
        assert_eq!(seg(&"€".repeat(80)), gsm(160, 1));
        assert_eq!(seg("Zahnarzt Müller: ok"), gsm(19, 1));
        assert_eq!(seg(&"ł".repeat(70)), ucs2(70, 1));
        assert_eq!(seg(&"ł".repeat(71)), ucs2(71, 2));
    }
}
