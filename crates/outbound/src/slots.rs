//! The typed values a message template may carry. Each is validated when made; none can hold
//! arbitrary text.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::Digest as _;

/// Why a slot value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// A practice name must be 1–60 characters of letters, digits, spaces and `&'.,-()`.
    #[error("a practice name must be 1–60 letters, digits, spaces or & ' . , - ( )")]
    PracticeName,
    /// A phone number must be E.164 (`+` and 8–15 digits).
    #[error("a practice phone must be an E.164 number: + and 8–15 digits")]
    PracticePhone,
    /// A link origin must be `https://host[:port]` (plain `http` on loopback only), no path.
    #[error("a link origin must be https://host[:port] with nothing after it")]
    LinkOrigin,
    /// A link token must be 43 URL-safe base64 characters (256 bits).
    #[error("a link token must be 43 URL-safe base64 characters")]
    LinkToken,
    /// A subprocessor's name must be 1–60 letters, digits, spaces or `&'.,-()`.
    #[error("a subprocessor name must be 1–60 letters, digits, spaces or & ' . , - ( )")]
    SubprocessorName,
}

/// Longest practice name, in characters.
pub const MAX_PRACTICE_NAME_CHARS: usize = 60;

/// The practice's name as the practice set it (operational metadata, not PHI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PracticeName(String);

/// Whether `name` (trimmed) is 1–60 characters of letters, digits, single spaces and
/// `&'.,-()`: the shape of a name a template may print.
fn is_plain_name(name: &str) -> bool {
    let n = name.chars().count();
    (1..=MAX_PRACTICE_NAME_CHARS).contains(&n)
        && name.chars().all(|c| {
            c.is_alphanumeric() || c == ' ' || matches!(c, '&' | '\'' | '.' | ',' | '-' | '(' | ')')
        })
        && !name.contains("  ")
}

impl PracticeName {
    /// A practice name: 1–60 characters of letters, digits, spaces and `&'.,-()`, trimmed.
    ///
    /// # Errors
    /// [`SlotError::PracticeName`] for anything else (an `@`, a `/`, a colon, a newline…).
    pub fn new(name: &str) -> Result<Self, SlotError> {
        let name = name.trim();
        if is_plain_name(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(SlotError::PracticeName)
        }
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The practice's own phone number, E.164.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PracticePhone(String);

impl PracticePhone {
    /// An E.164 number: `+` then 8–15 digits (spaces and dashes are removed first).
    ///
    /// # Errors
    /// [`SlotError::PracticePhone`] otherwise.
    pub fn new(phone: &str) -> Result<Self, SlotError> {
        let compact: String = phone.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let digits = compact.strip_prefix('+').ok_or(SlotError::PracticePhone)?;
        if (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
        {
            Ok(Self(compact))
        } else {
            Err(SlotError::PracticePhone)
        }
    }

    /// The number, E.164.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its digits (no `+`).
    #[must_use]
    pub fn digits(&self) -> &str {
        self.0.trim_start_matches('+')
    }
}

/// Where links point: the practice's public origin (`https://host[:port]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOrigin {
    origin: String,
    host: String,
}

impl LinkOrigin {
    /// Parses `https://host[:port]` (a trailing `/` is allowed); plain `http` only for a
    /// loopback host (tests and local stand-ins).
    ///
    /// # Errors
    /// [`SlotError::LinkOrigin`] for anything with a path, query, fragment or credentials.
    pub fn parse(origin: &str) -> Result<Self, SlotError> {
        let url = url::Url::parse(origin).map_err(|_| SlotError::LinkOrigin)?;
        let host = url
            .host_str()
            .ok_or(SlotError::LinkOrigin)?
            .to_ascii_lowercase();
        let loopback = host == "localhost"
            || host
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        if !scheme_ok
            || url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(SlotError::LinkOrigin);
        }
        let origin = url.as_str().trim_end_matches('/').to_owned();
        Ok(Self { origin, host })
    }

    /// The origin, without a trailing `/`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.origin
    }

    /// The host (lower case), for the scanner's allow-list.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// What a link is for; the token is bound to it on the server, and the path says only this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkPurpose {
    /// Fill in an intake form.
    Intake,
    /// Manage a booking (confirm, cancel, reschedule).
    Manage,
    /// Accept a waitlist offer.
    Offer,
    /// Pay a deposit or a fee.
    Pay,
    /// Leave the waitlist one joined.
    Waitlist,
}

impl LinkPurpose {
    /// Every purpose.
    pub const ALL: [Self; 5] = [
        Self::Intake,
        Self::Manage,
        Self::Offer,
        Self::Pay,
        Self::Waitlist,
    ];

    /// The path segment.
    #[must_use]
    pub const fn segment(self) -> &'static str {
        match self {
            Self::Intake => "intake",
            Self::Manage => "manage",
            Self::Offer => "offer",
            Self::Pay => "pay",
            Self::Waitlist => "waitlist",
        }
    }
}

/// Length of a link token in characters (32 random bytes, URL-safe base64 without padding).
pub const LINK_TOKEN_CHARS: usize = 43;

/// A link token: 256 random bits from the OS CSPRNG (req EGR-05: ≥ 128 bits). Stored only as
/// its [`LinkToken::digest`]; it never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkToken(String);

impl LinkToken {
    /// A new random token.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token presented back (from a link's path).
    ///
    /// # Errors
    /// [`SlotError::LinkToken`] unless it is exactly 43 URL-safe base64 characters.
    pub fn parse(token: &str) -> Result<Self, SlotError> {
        if is_token(token) {
            Ok(Self(token.to_owned()))
        } else {
            Err(SlotError::LinkToken)
        }
    }

    /// SHA-256 of the token: what the database keeps.
    #[must_use]
    pub fn digest(&self) -> [u8; 32] {
        sha2::Sha256::digest(self.0.as_bytes()).into()
    }

    fn as_str(&self) -> &str {
        &self.0
    }

    /// The token's text, for sealing it into a queued message (the outbox keeps it sealed
    /// with the practice's key until the message is rendered). Never log or display it.
    #[must_use]
    pub fn expose_for_sealing(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkToken(***)")
    }
}

/// Whether `s` has the shape of a link token.
pub(crate) fn is_token(s: &str) -> bool {
    s.len() == LINK_TOKEN_CHARS
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A link that names nothing but its purpose and an opaque token:
/// `{origin}/{purpose}/{token}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpaqueLink(String);

impl OpaqueLink {
    /// The link for `token` on `origin`.
    #[must_use]
    pub fn new(origin: &LinkOrigin, purpose: LinkPurpose, token: &LinkToken) -> Self {
        Self(format!(
            "{}/{}/{}",
            origin.as_str(),
            purpose.segment(),
            token.as_str()
        ))
    }

    /// The URL.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A subprocessor's published name, from the registry's fixed list of vendors
/// (`egress::registry::Vendor::display_name`): only a `&'static str` can become one, so no
/// text read at run time (a configuration value, a database column) can reach a message
/// through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubprocessorName(&'static str);

impl SubprocessorName {
    /// The registry's name for a vendor.
    ///
    /// # Errors
    /// [`SlotError::SubprocessorName`] unless it has the shape of a plain name (1–60 letters,
    /// digits, spaces or `&'.,-()`).
    pub fn from_registry(name: &'static str) -> Result<Self, SlotError> {
        if name == name.trim() && is_plain_name(name) {
            Ok(Self(name))
        } else {
            Err(SlotError::SubprocessorName)
        }
    }

    /// The name.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        self.0
    }
}

/// A date a notice takes effect, rendered e.g. `8 January 2027` (a calendar date in UTC: an
/// operational fact about the installation, not about a client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeDate(chrono::NaiveDate);

impl NoticeDate {
    /// The date.
    #[must_use]
    pub const fn new(date: chrono::NaiveDate) -> Self {
        Self(date)
    }

    /// The rendered date.
    #[must_use]
    pub fn render(&self) -> String {
        self.0.format("%-d %B %Y").to_string()
    }
}

/// A public page of the installation a message may link to (no token, nothing about the
/// recipient): the path is one fixed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublicPage {
    /// The published subprocessor list and its dated history (`/subprocessors`).
    Subprocessors,
}

impl PublicPage {
    /// Every public page.
    pub const ALL: [Self; 1] = [Self::Subprocessors];

    /// The path segment.
    #[must_use]
    pub const fn segment(self) -> &'static str {
        match self {
            Self::Subprocessors => "subprocessors",
        }
    }
}

/// A link to a [`PublicPage`] on the link origin: `{origin}/{page}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicPageLink(String);

impl PublicPageLink {
    /// The link to `page` on `origin`.
    #[must_use]
    pub fn new(origin: &LinkOrigin, page: PublicPage) -> Self {
        Self(format!("{}/{}", origin.as_str(), page.segment()))
    }

    /// The URL.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// When an appointment is, as the client reads it: the wall-clock time in the client's time
/// zone (the booking layer converts), rendered as e.g. `Tue 8 Dec at 14:30`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppointmentTime(chrono::NaiveDateTime);

impl AppointmentTime {
    /// The local wall-clock time of the appointment.
    #[must_use]
    pub const fn new(local: chrono::NaiveDateTime) -> Self {
        Self(local)
    }

    /// The rendered time.
    #[must_use]
    pub fn render(&self) -> String {
        self.0.format("%a %-d %b at %H:%M").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn practice_names() {
        for ok in [
            "Harbour Dental",
            "Smith & Jones (Hygiene)",
            "Dr. O'Neil's Clinic",
            "Zahnarzt Müller",
        ] {
            assert!(PracticeName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "   ",
            "a@b.test",
            "https://x.test",
            "Line\nbreak",
            "Tab\there",
            "50% off",
            "two  spaces",
            &"x".repeat(61),
        ] {
            assert_eq!(
                PracticeName::new(bad),
                Err(SlotError::PracticeName),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn practice_phones() {
        assert_eq!(
            PracticePhone::new("+1 555-010-0199").unwrap().as_str(),
            "+15550100199"
        );
        for bad in [
            "5550100199",
            "+1",
            "+1555010019912345",
            "+1 (555) 010",
            "+0555010019",
            "+1555abc0199",
        ] {
            assert_eq!(
                PracticePhone::new(bad),
                Err(SlotError::PracticePhone),
                "{bad}"
            );
        }
    }

    #[test]
    fn link_origins() {
        let o = LinkOrigin::parse("https://Book.Example.test/").unwrap();
        assert_eq!(
            (o.as_str(), o.host()),
            ("https://book.example.test", "book.example.test")
        );
        assert!(LinkOrigin::parse("http://127.0.0.1:8443").is_ok());
        for bad in [
            "http://book.example.test",
            "https://book.example.test/p",
            "https://book.example.test/?q=1",
            "https://u:p@book.example.test",
            "ftp://book.example.test",
            "book.example.test",
        ] {
            assert_eq!(LinkOrigin::parse(bad), Err(SlotError::LinkOrigin), "{bad}");
        }
    }

    #[test]
    fn tokens_are_random_opaque_and_never_print() {
        let (a, b) = (LinkToken::generate(), LinkToken::generate());
        assert_ne!(a, b);
        assert!(is_token(a.as_str()));
        assert_eq!(LinkToken::parse(a.as_str()).unwrap(), a);
        assert_eq!(format!("{a:?}"), "LinkToken(***)");
        assert_ne!(a.digest(), b.digest());
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}=", &"a".repeat(42)),
        ] {
            assert_eq!(LinkToken::parse(bad), Err(SlotError::LinkToken));
        }
        let origin = LinkOrigin::parse("https://book.example.test").unwrap();
        let link = OpaqueLink::new(&origin, LinkPurpose::Manage, &a);
        assert_eq!(
            link.as_str(),
            format!("https://book.example.test/manage/{}", a.as_str())
        );
    }

    #[test]
    fn subprocessor_names_dates_and_public_links() {
        assert_eq!(
            SubprocessorName::from_registry("Amazon Web Services (Bedrock)")
                .unwrap()
                .as_str(),
            "Amazon Web Services (Bedrock)"
        );
        for bad in ["", " Telnyx", "a@b.test", "https://x.test", "Line\nbreak"] {
            assert_eq!(
                SubprocessorName::from_registry(bad),
                Err(SlotError::SubprocessorName),
                "{bad:?}"
            );
        }
        let d = chrono::NaiveDate::from_ymd_opt(2027, 1, 8).unwrap();
        assert_eq!(NoticeDate::new(d).render(), "8 January 2027");
        let origin = LinkOrigin::parse("https://book.example.test").unwrap();
        assert_eq!(
            PublicPageLink::new(&origin, PublicPage::Subprocessors).as_str(),
            "https://book.example.test/subprocessors"
        );
    }

    #[test]
    fn appointment_times_render_in_wall_clock() {
        let t = chrono::NaiveDate::from_ymd_opt(2026, 12, 8)
            .unwrap()
            .and_hms_opt(14, 30, 0)
            .unwrap();
        assert_eq!(AppointmentTime::new(t).render(), "Tue 8 Dec at 14:30");
    }
}
