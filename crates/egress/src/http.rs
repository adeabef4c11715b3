//! What every HTTP adapter shares: the secret API key, limits, the client (no redirects, a
//! timeout), the transport (TCP, or a Unix socket for `unix:` providers) and capped reading
//! of replies.

use std::fmt;
use std::time::Duration;

use crate::{Cleared, EgressError};

/// A provider's API key. It never prints (`Debug` shows `ApiKey(…)`, there is no `Display`)
/// and is wiped from memory when dropped.
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key (from the sealed column or the installation's configuration).
    #[must_use]
    pub fn new(key: String) -> Self {
        Self(key)
    }

    /// The key, for the one header that carries it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(…)")
    }
}

/// Limits on one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The whole call, connection to last byte.
    pub timeout: Duration,
    /// Connecting.
    pub connect_timeout: Duration,
    /// The largest reply body read; a larger one is [`EgressError::Malformed`].
    pub max_reply_bytes: usize,
    /// The most output tokens a drafting call asks for.
    pub max_output_tokens: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            max_reply_bytes: 2 * 1024 * 1024,
            max_output_tokens: 4096,
        }
    }
}

/// An HTTP client that never follows redirects (the gate cleared one address, not wherever
/// it points) and gives up after the limits' timeouts.
pub(crate) fn client(limits: &Limits) -> Result<reqwest::Client, EgressError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(limits.timeout)
        .connect_timeout(limits.connect_timeout)
        .build()
        .map_err(|_| EgressError::Unreachable)
}

/// `{base}{path}` for a cleared `http(s)` provider (`path` starts with `/`); a Unix-socket
/// provider is not reachable this way ([`Transport::post`] reaches both).
pub(crate) fn endpoint(provider: &Cleared, path: &str) -> Result<String, EgressError> {
    let base = provider.base_url();
    if !matches!(base.scheme(), "http" | "https") {
        return Err(EgressError::Unreachable);
    }
    let mut base = base.clone();
    base.set_query(None);
    base.set_fragment(None);
    Ok(format!("{}{path}", base.as_str().trim_end_matches('/')))
}

/// The error a reply's status means, if it is not a success: rate limiting (429, and
/// `also_rate_limited`) is [`EgressError::RateLimited`] with the `Retry-After` seconds, any
/// other non-2xx (a redirect too: none is followed) is [`EgressError::Status`].
pub(crate) fn status_error(
    status: u16,
    retry_after: Option<&str>,
    also_rate_limited: &[u16],
) -> Option<EgressError> {
    if status == 429 || also_rate_limited.contains(&status) {
        let retry_after_secs = retry_after.and_then(|v| v.trim().parse::<u64>().ok());
        return Some(EgressError::RateLimited { retry_after_secs });
    }
    (!(200..300).contains(&status)).then_some(EgressError::Status(status))
}

/// How the OpenAI-compatible adapters reach a cleared provider: over TCP (`http`, `https`:
/// reqwest, no redirects, the limits' timeouts) or, for `unix:/path/to.sock`, HTTP/1.1 over
/// that Unix socket with the same limits ([`crate::unix`]). The adapter's code is the same
/// either way.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    client: reqwest::Client,
    limits: Limits,
}

impl Transport {
    /// A transport with `limits`.
    pub(crate) fn new(limits: Limits) -> Result<Self, EgressError> {
        Ok(Self {
            client: client(&limits)?,
            limits,
        })
    }

    /// Its limits.
    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// POSTs `body` (of `content_type`) to `path` under the provider's base, with the API key
    /// as a bearer token when given; the body of a 2xx reply, read up to the cap.
    pub(crate) async fn post(
        &self,
        provider: &Cleared,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        api_key: Option<&ApiKey>,
    ) -> Result<bytes::Bytes, EgressError> {
        if let Some(socket) = crate::unix::socket_of(provider)? {
            let mut headers = vec![(reqwest::header::CONTENT_TYPE, content_type.to_owned())];
            if let Some(key) = api_key {
                headers.push((
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {}", key.expose()),
                ));
            }
            return crate::unix::call(
                &socket,
                reqwest::Method::POST,
                path,
                &headers,
                body,
                &self.limits,
                &[],
            )
            .await;
        }
        let mut request = self
            .client
            .post(endpoint(provider, path)?)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(key) = api_key {
            request = request.bearer_auth(key.expose());
        }
        send(request, &self.limits, &[]).await
    }
}

/// Sends a request and returns the body of a 2xx reply, read up to the cap (status rules:
/// [`status_error`]).
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    limits: &Limits,
    also_rate_limited: &[u16],
) -> Result<bytes::Bytes, EgressError> {
    let mut response = request.send().await.map_err(|_| EgressError::Unreachable)?;
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok());
    if let Some(e) = status_error(response.status().as_u16(), retry_after, also_rate_limited) {
        return Err(e);
    }
    if response
        .content_length()
        .is_some_and(|n| n > limits.max_reply_bytes as u64)
    {
        return Err(too_large(limits));
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| EgressError::Unreachable)?
    {
        if body.len().saturating_add(chunk.len()) > limits.max_reply_bytes {
            return Err(too_large(limits));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub(crate) fn too_large(limits: &Limits) -> EgressError {
    EgressError::Malformed(format!(
        "the reply is larger than {} bytes",
        limits.max_reply_bytes
    ))
}

/// Parses a JSON reply; the error names the reply kind, never its content.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, EgressError> {
    serde_json::from_slice(body).map_err(|e| {
        EgressError::Malformed(format!(
            "{what} does not have the expected shape (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_never_prints() {
        let key = ApiKey::new("sk-very-secret".into());
        assert_eq!(format!("{key:?}"), "ApiKey(…)");
        assert!(!format!("{:?}", Some(&key)).contains("secret"));
    }
}
