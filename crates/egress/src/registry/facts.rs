//! What Chartroom knows about each vendor that is not configuration: its role, the data it
//! sees, whether that is PHI, and its training and retention posture. These facts are code so
//! an operator cannot configure a PHI-touching vendor into a non-PHI one.

use serde::{Deserialize, Serialize};

/// What an integration is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Text messages to clients.
    Sms,
    /// Operational email to clients.
    Email,
    /// Web Push notifications.
    Push,
    /// Deposits, prepayment, cards on file.
    Payments,
    /// Address to coordinates.
    Geocoding,
    /// AI transcription and drafting.
    Ai,
}

impl Kind {
    /// The stable name (`sms`, `email`, …).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Sms => "sms",
            Kind::Email => "email",
            Kind::Push => "push",
            Kind::Payments => "payments",
            Kind::Geocoding => "geocoding",
            Kind::Ai => "ai",
        }
    }
}

/// A vendor Chartroom has an adapter for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vendor {
    /// Telnyx Messaging v2.
    Telnyx,
    /// Twilio Messaging.
    Twilio,
    /// An SMTP relay (with DKIM).
    Smtp,
    /// Resend.
    Resend,
    /// The browsers' Web Push services (RFC 8030 / RFC 8291).
    Webpush,
    /// Stripe.
    Stripe,
    /// A Nominatim-compatible geocoder.
    Nominatim,
    /// `OpenAI` (drafting, transcription).
    Openai,
    /// Anthropic (drafting).
    Anthropic,
    /// AWS Bedrock (drafting).
    AwsBedrock,
    /// AWS Transcribe Medical (transcription).
    AwsTranscribeMedical,
}

impl Vendor {
    /// The stable name used in the configuration (`telnyx`, `aws_bedrock`, …).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Vendor::Telnyx => "telnyx",
            Vendor::Twilio => "twilio",
            Vendor::Smtp => "smtp",
            Vendor::Resend => "resend",
            Vendor::Webpush => "webpush",
            Vendor::Stripe => "stripe",
            Vendor::Nominatim => "nominatim",
            Vendor::Openai => "openai",
            Vendor::Anthropic => "anthropic",
            Vendor::AwsBedrock => "aws_bedrock",
            Vendor::AwsTranscribeMedical => "aws_transcribe_medical",
        }
    }

    /// The name shown on the published list.
    #[must_use]
    pub const fn display_name(self) -> &'static str {
        match self {
            Vendor::Telnyx => "Telnyx",
            Vendor::Twilio => "Twilio",
            Vendor::Smtp => "SMTP relay",
            Vendor::Resend => "Resend",
            Vendor::Webpush => "Web Push services of the browser vendors",
            Vendor::Stripe => "Stripe",
            Vendor::Nominatim => "Nominatim geocoder",
            Vendor::Openai => "OpenAI",
            Vendor::Anthropic => "Anthropic",
            Vendor::AwsBedrock => "Amazon Web Services (Bedrock)",
            Vendor::AwsTranscribeMedical => "Amazon Web Services (Transcribe Medical)",
        }
    }

    /// The kind of integration this vendor serves.
    #[must_use]
    pub const fn kind(self) -> Kind {
        match self {
            Vendor::Telnyx | Vendor::Twilio => Kind::Sms,
            Vendor::Smtp | Vendor::Resend => Kind::Email,
            Vendor::Webpush => Kind::Push,
            Vendor::Stripe => Kind::Payments,
            Vendor::Nominatim => Kind::Geocoding,
            Vendor::Openai
            | Vendor::Anthropic
            | Vendor::AwsBedrock
            | Vendor::AwsTranscribeMedical => Kind::Ai,
        }
    }

    /// Whether the operator may run this one on its own host (then it is listed, but it is not
    /// a subprocessor and needs no BAA).
    #[must_use]
    pub const fn may_be_self_hosted(self) -> bool {
        matches!(self, Vendor::Smtp | Vendor::Nominatim)
    }
}

/// Whether a vendor sees PHI, and why (or why not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phi {
    /// It sees PHI: a vendor-hosted one needs a signed BAA.
    Touches(&'static str),
    /// It sees none.
    None(&'static str),
}

/// The facts about one vendor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// What it does for the practice.
    pub role: &'static str,
    /// The categories of data it receives.
    pub data_categories: &'static [&'static str],
    /// PHI or not, with the reason.
    pub phi: Phi,
    /// Training posture.
    pub training: &'static str,
    /// Retention posture.
    pub retention: &'static str,
    /// Hosts it is reached at when the configuration names no base URL (Web Push: the
    /// browser vendors' push services).
    pub default_hosts: &'static [&'static str],
}

const SMS_PHI: &str = "sees the client's phone number and, from the sender, that the client has a relationship with the practice";
const EMAIL_PHI: &str = "sees the client's email address and, from the sender, that the client has a relationship with the practice";
const AI_PHI: &str = "receives visit audio, transcripts and draft notes";
const CARRIER_TRAINING: &str =
    "no training or other secondary use of message data (barred by the BAA)";
const AI_TRAINING: &str =
    "training on inputs disabled (the provider gate refuses a provider without it)";

/// The facts about `vendor`.
#[must_use]
pub const fn facts(vendor: Vendor) -> Facts {
    match vendor {
        Vendor::Telnyx | Vendor::Twilio => Facts {
            role: "SMS carrier: delivers booking confirmations, reminders and intake links by text message",
            data_categories: &[
                "client phone number",
                "message text from fixed templates (practice name and phone, appointment time, opaque link)",
                "delivery status",
            ],
            phi: Phi::Touches(SMS_PHI),
            training: CARRIER_TRAINING,
            retention: "message records kept by the carrier for delivery and billing, as its BAA allows",
            default_hosts: &[],
        },
        Vendor::Smtp | Vendor::Resend => Facts {
            role: "Email delivery: sends operational emails (confirmations, reminders, intake links)",
            data_categories: &[
                "client email address",
                "email text from fixed templates (practice name and phone, appointment time, opaque link)",
                "delivery status",
            ],
            phi: Phi::Touches(EMAIL_PHI),
            training: CARRIER_TRAINING,
            retention: "message logs kept for delivery and abuse handling, as the BAA allows",
            default_hosts: &[],
        },
        Vendor::Webpush => Facts {
            role: "Push delivery: the browser vendors' push services carry a content-free \"you have an update\" signal",
            data_categories: &[
                "opaque push subscription endpoint",
                "encrypted content-free payload",
            ],
            phi: Phi::None(
                "the payload is content-free and encrypted end to end (RFC 8291); the push service sees only an opaque subscription endpoint",
            ),
            training: "receives no PHI: nothing to train on",
            retention: "the push service holds an undelivered message until it expires",
            default_hosts: &[
                "fcm.googleapis.com",
                "updates.push.services.mozilla.com",
                "web.push.apple.com",
            ],
        },
        Vendor::Stripe => Facts {
            role: "Payment processor: deposits, prepayment and cards on file",
            data_categories: &[
                "amount and currency",
                "opaque Chartroom reference ids",
                "fixed generic descriptions",
                "card details the client types on the processor's own page",
            ],
            phi: Phi::None(
                "no PHI by construction: every request is built from typed amounts, currencies, opaque ids and fixed generic descriptions (egress::outbound::payment), so no name, note or service detail can be sent",
            ),
            training: "receives no PHI from Chartroom",
            retention: "payment records kept by the processor as financial regulation requires",
            default_hosts: &[],
        },
        Vendor::Nominatim => Facts {
            role: "Geocoding: turns an address the practice enters into coordinates (off by default)",
            data_categories: &["address text that is not a known client address"],
            phi: Phi::None(
                "the geocoding gate refuses every known client address and anything near one",
            ),
            training: "receives no PHI",
            retention: "request logs as the geocoder keeps them",
            default_hosts: &[],
        },
        Vendor::Openai => Facts {
            role: "AI transcription and drafting: turns visit audio into transcripts and drafts notes for the clinician to edit and sign",
            data_categories: &["visit audio", "visit transcripts", "draft notes"],
            phi: Phi::Touches(AI_PHI),
            training: AI_TRAINING,
            retention: "inputs and outputs kept only as the BAA allows",
            default_hosts: &[],
        },
        Vendor::Anthropic | Vendor::AwsBedrock => Facts {
            role: "AI drafting: drafts clinical notes from visit transcripts for the clinician to edit and sign",
            data_categories: &["visit transcripts", "draft notes"],
            phi: Phi::Touches(AI_PHI),
            training: AI_TRAINING,
            retention: "inputs and outputs kept only as the BAA allows",
            default_hosts: &[],
        },
        Vendor::AwsTranscribeMedical => Facts {
            role: "AI transcription: turns recorded visit audio into transcripts",
            data_categories: &["visit audio", "transcripts"],
            phi: Phi::Touches(AI_PHI),
            training: AI_TRAINING,
            retention: "inputs and outputs kept only as the BAA allows",
            default_hosts: &[],
        },
    }
}
