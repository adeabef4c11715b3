//! Outbound messages and payments: the only shapes Chartroom can send to an SMS carrier, an
//! email service, a push service or a payment processor, and the scanner every payload passes
//! before it leaves (req EGR-01, EGR-02, EGR-03).
//!
//! # Guarantees
//! - **No free text.** A message body exists only as a [`Rendered`] message, and the only way
//!   to get one is [`Message::render`] over the fixed catalogue of [`Message`] templates. Their
//!   slots are typed values — [`PracticeName`], [`PracticePhone`], [`OpaqueLink`],
//!   [`AppointmentTime`], and for the owners' subprocessor notice [`SubprocessorName`] (the
//!   registry's fixed names only), [`NoticeDate`] and [`PublicPageLink`] — each validated
//!   when made; no `String` can become an SMS body, an
//!   email subject or body, or a payment description (a compile-fail test proves it).
//! - **Operational subjects only.** Email subjects are fixed per template and carry at most
//!   the practice name; push payloads are one content-free sentence ([`PushPayload`]).
//! - **Payments are typed** ([`payment`]): an amount in minor units, a currency, opaque ids and
//!   a description from a fixed list; nothing about the visit, the patient or the treatment.
//! - **A second line that fails closed.** [`Scanner::scan`] runs on the final bytes of every
//!   payload (after the wire encoding: JSON, form or MIME) and refuses the practice's own
//!   patients' names, phone numbers, email addresses and street addresses, card numbers that
//!   pass the Luhn check, SSN-like numbers, long digit runs, any email address but the
//!   practice's own, and links whose host is not on the allow-list or whose path is not an
//!   opaque link. A refusal names the kind of finding, never the matched text.
//! - **One address rule.** [`AddressGate`] decides whether a street address may leave (a
//!   geocoding query): a client's address, a neighbour's (same street, a house number within
//!   [`NEAR_HOUSE_NUMBERS`]), a client's street without a number, or the same street and
//!   postcode is refused.
//!
//! # Example
//! ```
//! use outbound::{Message, OpaqueLink, LinkOrigin, LinkPurpose, LinkToken, PracticeName};
//! let origin = LinkOrigin::parse("https://book.example-dental.test").unwrap();
//! let token = LinkToken::generate();
//! let msg = Message::IntakeRequest {
//!     practice: PracticeName::new("Harbour Dental").unwrap(),
//!     link: OpaqueLink::new(&origin, LinkPurpose::Intake, &token),
//! };
//! let rendered = msg.render();
//! assert!(rendered.sms().as_str().starts_with("Harbour Dental: "));
//! ```

mod address;
pub mod payment;
mod render;
mod samples;
mod scan;
mod slots;

pub use address::{AddressGate, AddressRefusal, ClientAddress, NEAR_HOUSE_NUMBERS};
pub use render::{EmailBody, Message, PushPayload, Rendered, SmsBody, SmsSegments};
pub use samples::SampleSlots;
pub use scan::{Finding, KnownClient, Scanner, ScannerError};
pub use slots::{
    AppointmentTime, LinkOrigin, LinkPurpose, LinkToken, NoticeDate, OpaqueLink, PracticeName,
    PracticePhone, PublicPage, PublicPageLink, SlotError, SubprocessorName,
};
