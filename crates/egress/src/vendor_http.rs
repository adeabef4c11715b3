//! What the mail and payment vendor adapters (Resend, Stripe) share: the base URL rule, one
//! POST with an `Idempotency-Key`, the mapping of a reply's status to a [`SendError`], capped
//! reading of the reply, and webhook signature helpers (HMAC-SHA256, constant-time compare).

use std::time::Duration;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::http::ApiKey;
use crate::send::SendError;

/// Largest reply body read from a vendor, bytes.
pub(crate) const MAX_REPLY_BYTES: usize = 64 * 1024;
/// Largest webhook body read, bytes.
pub(crate) const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

/// Why a vendor base URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a vendor's base URL must be https (http only on loopback), without credentials, query or fragment"
)]
pub struct BaseUrlError;

/// Checks a vendor base URL: `https`, or `http` on a loopback address (the stand-ins); no
/// user info, query or fragment. Returns it without a trailing slash.
pub(crate) fn base_url(raw: &str) -> Result<String, BaseUrlError> {
    let url = url::Url::parse(raw).map_err(|_| BaseUrlError)?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => return Err(BaseUrlError),
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(BaseUrlError);
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A client that never follows redirects and gives up after `timeout`.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, SendError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|_| SendError::Unreachable)
}

/// POSTs `body` with the bearer key and the idempotency key; the body of a 2xx reply, read up
/// to [`MAX_REPLY_BYTES`]. Status mapping: 408, 409 (a concurrent request with the same key),
/// 429 and 5xx → [`SendError::Retry`] (with `Retry-After` seconds); other non-2xx →
/// [`SendError::Rejected`]; no connection → [`SendError::Unreachable`]; a timeout or a reply
/// cut short after the request was sent → [`SendError::Retry`].
pub(crate) async fn post(
    client: &reqwest::Client,
    url: &str,
    key: &ApiKey,
    idempotency_key: &str,
    content_type: &str,
    body: Vec<u8>,
    extra_headers: &[(&str, &str)],
) -> Result<bytes::Bytes, SendError> {
    post_reply(
        client,
        url,
        key,
        idempotency_key,
        content_type,
        body,
        extra_headers,
        &[],
    )
    .await
    .map(|(_, reply)| reply)
}

/// As [`post`], except that a reply whose status is in `keep` (e.g. Stripe's `402`, whose
/// body says how a card failed) is read like a 2xx one: its status and body.
#[expect(
    clippy::too_many_arguments,
    reason = "the request's parts, as `post` takes them, and the statuses kept"
)]
pub(crate) async fn post_reply(
    client: &reqwest::Client,
    url: &str,
    key: &ApiKey,
    idempotency_key: &str,
    content_type: &str,
    body: Vec<u8>,
    extra_headers: &[(&str, &str)],
    keep: &[u16],
) -> Result<(u16, bytes::Bytes), SendError> {
    let mut request = client
        .post(url)
        .bearer_auth(key.expose())
        .header("Idempotency-Key", idempotency_key)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body);
    for (name, value) in extra_headers {
        request = request.header(*name, *value);
    }
    let mut response = request.send().await.map_err(|e| {
        if e.is_connect() {
            SendError::Unreachable
        } else {
            SendError::Retry {
                retry_after_secs: None,
            }
        }
    })?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) && !keep.contains(&status) {
        let retry_after_secs = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        return Err(if matches!(status, 408 | 409 | 429) || status >= 500 {
            SendError::Retry { retry_after_secs }
        } else {
            SendError::Rejected { status }
        });
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_REPLY_BYTES as u64)
    {
        return Err(SendError::Malformed);
    }
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(|_| SendError::Retry {
        retry_after_secs: None,
    })? {
        if out.len().saturating_add(chunk.len()) > MAX_REPLY_BYTES {
            return Err(SendError::Malformed);
        }
        out.extend_from_slice(&chunk);
    }
    Ok((status, out.freeze()))
}

/// HMAC-SHA256 of `parts` (concatenated) under `secret` (`None` never happens: HMAC takes
/// keys of any length).
pub(crate) fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> Option<[u8; 32]> {
    let mut mac = <Hmac<Sha256>>::new_from_slice(secret).ok()?;
    for p in parts {
        mac.update(p);
    }
    Some(mac.finalize().into_bytes().into())
}

/// Lower-case hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Constant-time equality of two byte strings (lengths are not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A header's value as text, when present once and ASCII.
pub(crate) fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            base_url("https://api.stripe.com/").as_deref(),
            Ok("https://api.stripe.com")
        );
        assert!(base_url("http://127.0.0.1:9/").is_ok());
        assert!(base_url("http://api.stripe.com").is_err());
        assert!(base_url("https://u:p@api.stripe.com").is_err());
        assert!(base_url("https://api.stripe.com/?x=1").is_err());
        assert!(base_url("not a url").is_err());
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]).unwrap();
        assert_eq!(
            to_hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
