//! What the messaging adapters ([`crate::telnyx`], [`crate::twilio`], [`crate::webpush`])
//! share: address checks on their configuration, the scan of the final request bytes, the
//! HTTP call (no redirects, the limits' timeouts, a capped reply) with the mapping of its
//! outcome to [`SendError`], the status-callback URL that carries the outbox key, and the
//! SMS keyword sets.

use std::time::Duration;

use outbound::Scanner;

use crate::Limits;
use crate::send::{IdempotencyKey, Keyword, SendError};

/// The largest webhook body read (a messaging provider's events are a few KiB).
pub(crate) const MAX_WEBHOOK_BYTES: usize = 64 * 1024;

/// The query parameter of a status-callback URL that carries the outbox key.
const KEY_PARAM: &str = "key";

/// A messaging adapter's configuration is not usable (the message says which part, never a
/// secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("messaging configuration refused: {0}")]
pub struct ConfigError(pub &'static str);

/// Limits that suit a messaging provider: 30 s for the whole call, 10 s to connect, replies up
/// to 64 KiB.
#[must_use]
pub fn messaging_limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(10),
        max_reply_bytes: 64 * 1024,
        max_output_tokens: 0,
    }
}

/// Whether the URL's host is a loopback address or `localhost`.
pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Checks a provider's base URL or our own callback URL: `https` (plain `http` only on
/// loopback, for the stand-ins), a host, no credentials, no query or fragment.
pub(crate) fn check_url(url: &url::Url, what: &'static str) -> Result<(), ConfigError> {
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(url));
    if !scheme_ok
        || url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(ConfigError(what));
    }
    Ok(())
}

/// `{base}{path}` (`path` starts with `/`).
pub(crate) fn join(base: &url::Url, path: &str) -> Result<url::Url, ConfigError> {
    url::Url::parse(&format!("{}{path}", base.as_str().trim_end_matches('/')))
        .map_err(|_| ConfigError("the provider's base URL"))
}

/// Our status-callback URL for one message: the configured callback with `?key={uuid}`.
pub(crate) fn callback_url(callback: &url::Url, key: IdempotencyKey) -> url::Url {
    let mut url = callback.clone();
    url.query_pairs_mut()
        .clear()
        .append_pair(KEY_PARAM, &key.0.to_string());
    url
}

/// The outbox key in a callback URL's query, if it carries one.
pub(crate) fn key_in_url(url: &str) -> Option<IdempotencyKey> {
    let url = url::Url::parse(url).ok()?;
    let (_, value) = url.query_pairs().find(|(name, _)| name == KEY_PARAM)?;
    uuid::Uuid::parse_str(&value).ok().map(IdempotencyKey)
}

/// Scans the final request bytes with the practice's scanner, the recipient's own number
/// allowed. `own_callback` is the exact encoded text of this adapter's status-callback URL in
/// the body: it is blanked for the scan, because it is built here from the configured origin
/// and the outbox key (a UUID), and it is the one link the scanner would otherwise refuse for
/// not being a client link (`/{purpose}/{token}`). Everything else in the body is scanned
/// as sent. A finding is [`SendError::Refused`] and nothing is sent.
pub(crate) fn scan(
    scanner: &Scanner,
    body: &[u8],
    own_callback: &str,
    recipient: &str,
) -> Result<(), SendError> {
    let needle = own_callback.as_bytes();
    let masked: Option<Vec<u8>> = (!needle.is_empty())
        .then(|| {
            body.windows(needle.len())
                .position(|w| w == needle)
                .map(|at| {
                    let mut copy = body.to_vec();
                    if let Some(span) = copy.get_mut(at..at + needle.len()) {
                        span.fill(b' ');
                    }
                    copy
                })
        })
        .flatten();
    scanner
        .scan(masked.as_deref().unwrap_or(body), Some(recipient))
        .map_err(SendError::Refused)
}

/// What a provider's reply status means when it is not a success: 429 and 5xx are
/// [`SendError::Retry`] with the `Retry-After` seconds, 404 and 410 and every other 4xx (and
/// a redirect, which is never followed) are [`SendError::Rejected`].
pub(crate) fn status_error(status: u16, retry_after: Option<&str>) -> Option<SendError> {
    if (200..300).contains(&status) {
        return None;
    }
    if status == 429 || status >= 500 {
        let retry_after_secs = retry_after.and_then(|v| v.trim().parse::<u64>().ok());
        return Some(SendError::Retry { retry_after_secs });
    }
    Some(SendError::Rejected { status })
}

/// A successful reply: its headers and body.
pub(crate) struct Reply {
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: bytes::Bytes,
}

/// Sends the request and reads a 2xx reply up to `limits.max_reply_bytes`.
///
/// A connection that could not be made is [`SendError::Unreachable`] (nothing arrived); a
/// timeout or a connection lost after the request went out is [`SendError::Retry`] (it may
/// have arrived); a reply larger than the cap is [`SendError::Malformed`].
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    limits: &Limits,
) -> Result<Reply, SendError> {
    let mut response = request.send().await.map_err(|e| {
        if e.is_connect() {
            SendError::Unreachable
        } else {
            SendError::Retry {
                retry_after_secs: None,
            }
        }
    })?;
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok());
    if let Some(e) = status_error(response.status().as_u16(), retry_after) {
        return Err(e);
    }
    if response
        .content_length()
        .is_some_and(|n| n > limits.max_reply_bytes as u64)
    {
        return Err(SendError::Malformed);
    }
    let mut body = bytes::BytesMut::new();
    loop {
        let chunk = response.chunk().await.map_err(|_| SendError::Retry {
            retry_after_secs: None,
        })?;
        let Some(chunk) = chunk else { break };
        if body.len().saturating_add(chunk.len()) > limits.max_reply_bytes {
            return Err(SendError::Malformed);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Reply {
        headers: response.headers().clone(),
        body: body.freeze(),
    })
}

/// An HTTP client that never follows redirects and gives up after the limits' timeouts.
pub(crate) fn client(limits: &Limits) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(limits.timeout)
        .connect_timeout(limits.connect_timeout)
        .build()
        .map_err(|_| ConfigError("the HTTP client could not be built"))
}

/// Whether `id` is an opaque provider id we keep: 1–128 ASCII letters, digits, `-`, `_`,
/// `:` or `.`.
pub(crate) fn is_opaque_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
}

/// Which keyword list a carrier documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Carrier {
    Telnyx,
    Twilio,
}

/// Opt-out words: Telnyx's default list (STOP, STOPALL, STOP ALL, UNSUBSCRIBE, CANCEL, END,
/// QUIT) and Twilio's (the same plus REVOKE and OPTOUT). Both carriers' words are honoured
/// on either: mirroring a STOP the carrier did not act on errs on the side of the client.
const STOP_WORDS: [&str; 10] = [
    "STOP",
    "STOPALL",
    "STOP ALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    "OPT OUT",
];
/// Telnyx's default opt-in words (they remove its block rule).
const TELNYX_START_WORDS: [&str; 2] = ["START", "UNSTOP"];
/// Twilio's default opt-in words.
const TWILIO_START_WORDS: [&str; 3] = ["START", "YES", "UNSTOP"];
/// Help words (both carriers).
const HELP_WORDS: [&str; 2] = ["HELP", "INFO"];

/// The keyword a whole inbound text is, if it is one: the text alone, any case, surrounding
/// white space and trailing punctuation ignored, inner white space collapsed. Opt-in words
/// are the carrier's own (a START the carrier does not honour would not lift its block).
/// Anything else is not a keyword and is not kept.
pub(crate) fn keyword(text: &str, carrier: Carrier) -> Option<Keyword> {
    if text.len() > 64 {
        return None;
    }
    let words: Vec<&str> = text
        .trim()
        .trim_end_matches(['.', '!', '?'])
        .split_whitespace()
        .collect();
    let word = words.join(" ").to_uppercase();
    let starts: &[&str] = match carrier {
        Carrier::Telnyx => &TELNYX_START_WORDS,
        Carrier::Twilio => &TWILIO_START_WORDS,
    };
    if STOP_WORDS.contains(&word.as_str()) {
        Some(Keyword::Stop)
    } else if starts.contains(&word.as_str()) {
        Some(Keyword::Start)
    } else if HELP_WORDS.contains(&word.as_str()) {
        Some(Keyword::Help)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_whole_messages_in_any_case() {
        assert_eq!(keyword(" stop ", Carrier::Telnyx), Some(Keyword::Stop));
        assert_eq!(keyword("Stop all", Carrier::Telnyx), Some(Keyword::Stop));
        assert_eq!(keyword("REVOKE", Carrier::Twilio), Some(Keyword::Stop));
        assert_eq!(keyword("unstop!", Carrier::Twilio), Some(Keyword::Start));
        assert_eq!(keyword("yes", Carrier::Twilio), Some(Keyword::Start));
        assert_eq!(keyword("yes", Carrier::Telnyx), None);
        assert_eq!(keyword("info", Carrier::Telnyx), Some(Keyword::Help));
        assert_eq!(keyword("please stop texting me", Carrier::Twilio), None);
        assert_eq!(keyword("stopp", Carrier::Twilio), None);
        assert_eq!(keyword("", Carrier::Twilio), None);
    }

    #[test]
    fn the_callback_carries_the_key_and_gives_it_back() {
        let key = IdempotencyKey(uuid::Uuid::new_v4());
        let base = url::Url::parse("https://chartroom.example/webhooks/telnyx").unwrap();
        let url = callback_url(&base, key);
        assert_eq!(key_in_url(url.as_str()), Some(key));
        assert_eq!(key_in_url(base.as_str()), None);
    }

    #[test]
    fn statuses_map_to_send_errors() {
        assert!(status_error(200, None).is_none());
        assert!(matches!(
            status_error(429, Some("7")),
            Some(SendError::Retry {
                retry_after_secs: Some(7)
            })
        ));
        assert!(matches!(
            status_error(503, None),
            Some(SendError::Retry { .. })
        ));
        assert!(matches!(
            status_error(410, None),
            Some(SendError::Rejected { status: 410 })
        ));
        assert!(matches!(
            status_error(302, None),
            Some(SendError::Rejected { status: 302 })
        ));
    }
}
