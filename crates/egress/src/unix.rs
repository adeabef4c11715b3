//! HTTP/1.1 over a Unix socket, for providers at `unix:/path/to.sock` (the supervised local
//! sidecar by default, or any OpenAI-compatible server the operator runs on a socket). One
//! connection per call; the same limits as over TCP: a connect timeout, a whole-call timeout,
//! a capped reply, no redirects (a 3xx is [`EgressError::Status`]).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};

use crate::http::{Limits, status_error, too_large};
use crate::{Cleared, EgressError};

/// The longest socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The socket path of a cleared `unix:` provider (`unix:/run/x.sock` or `unix:///run/x.sock`);
/// `None` for an `http(s)` provider.
pub(crate) fn socket_of(provider: &Cleared) -> Result<Option<PathBuf>, EgressError> {
    let base = provider.base_url();
    if base.scheme() != "unix" {
        return Ok(None);
    }
    socket_path(base).map(Some).ok_or(EgressError::Unreachable)
}

/// The absolute socket path a `unix:` URL names, if it names one.
pub(crate) fn socket_path(url: &url::Url) -> Option<PathBuf> {
    if url.scheme() != "unix" || url.host_str().is_some_and(|h| !h.is_empty()) {
        return None;
    }
    if url.query().is_some() || url.fragment().is_some() {
        return None;
    }
    let raw = url.path();
    if !raw.starts_with('/') || raw.len() < 2 {
        return None;
    }
    let decoded = percent_decode(raw)?;
    let path = PathBuf::from(decoded);
    (path.is_absolute() && path.as_os_str().len() <= MAX_SOCKET_PATH).then_some(path)
}

/// Percent-decodes a URL path (UTF-8 only).
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    let decoded = String::from_utf8(out).ok()?;
    (!decoded.contains('\0')).then_some(decoded)
}

/// Aborts the connection task when the call ends (finished, failed or timed out).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One HTTP request over the socket: `method path`, with `headers` and `body`; the body of a
/// 2xx reply, read up to the cap (the status rules are [`status_error`]'s, as over TCP).
pub(crate) async fn call(
    socket: &Path,
    method: hyper::Method,
    path: &str,
    headers: &[(hyper::header::HeaderName, String)],
    body: Vec<u8>,
    limits: &Limits,
    also_rate_limited: &[u16],
) -> Result<Bytes, EgressError> {
    let whole = async {
        let stream = tokio::time::timeout(
            limits.connect_timeout,
            tokio::net::UnixStream::connect(socket),
        )
        .await
        .map_err(|_| EgressError::Unreachable)?
        .map_err(|_| EgressError::Unreachable)?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|_| EgressError::Unreachable)?;
        let _connection = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "localhost")
            .header(hyper::header::CONTENT_LENGTH, body.len());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| EgressError::Malformed("the request could not be built".into()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|_| EgressError::Unreachable)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(e) = status_error(status, retry_after.as_deref(), also_rate_limited) {
            return Err(e);
        }
        let declared = response
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limits.max_reply_bytes as u64) {
            return Err(too_large(limits));
        }
        let mut body = response.into_body();
        let mut out = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| EgressError::Unreachable)?;
            if let Ok(chunk) = frame.into_data() {
                if out.len().saturating_add(chunk.len()) > limits.max_reply_bytes {
                    return Err(too_large(limits));
                }
                out.extend_from_slice(&chunk);
            }
        }
        Ok(out.freeze())
    };
    tokio::time::timeout(limits.timeout, whole)
        .await
        .map_err(|_| EgressError::Unreachable)?
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::http::{ApiKey, Transport};
    use crate::{Hosting, ProviderPosture};

    /// A one-shot HTTP server on a Unix socket: answers the first request with `reply` (or
    /// never, when `None`) and hands back the request it read.
    fn serve_once(reply: Option<Vec<u8>>) -> (PathBuf, tokio::task::JoinHandle<Vec<u8>>) {
        let dir =
            std::env::temp_dir().join(format!("egress-unix-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).unwrap();
        let socket = dir.join("s.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = stream.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            match reply {
                Some(reply) => stream.write_all(&reply).await.unwrap(),
                None => tokio::time::sleep(Duration::from_secs(30)).await,
            }
            request
        });
        (socket, task)
    }

    fn cleared(socket: &Path) -> Cleared {
        crate::gate(&ProviderPosture {
            provider_id: None,
            label: "socket".into(),
            base_url: format!("unix:{}", socket.display()),
            model: "m".into(),
            hosting: Hosting::SelfHosted,
            baa: None,
            training_disabled: true,
            enabled: true,
        })
        .unwrap()
    }

    fn limits() -> Limits {
        Limits {
            timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(200),
            max_reply_bytes: 64,
            ..Limits::default()
        }
    }

    async fn post(socket: &Path) -> Result<Bytes, EgressError> {
        Transport::new(limits())
            .unwrap()
            .post(
                &cleared(socket),
                "/v1/audio/transcriptions",
                "text/plain",
                b"hello".to_vec(),
                Some(&ApiKey::new("k-1".into())),
            )
            .await
    }

    #[tokio::test]
    async fn a_post_over_the_socket_carries_the_request_and_returns_the_body() {
        let (socket, server) = serve_once(Some(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nContent-Type: application/json\r\n\r\n{\"ok\":1}\n".to_vec(),
        ));
        assert_eq!(
            post(&socket).await.unwrap(),
            Bytes::from_static(b"{\"ok\":1}\n")
        );
        let request = String::from_utf8(server.await.unwrap())
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            request.starts_with("post /v1/audio/transcriptions http/1.1\r\n"),
            "{request}"
        );
        for header in [
            "host: localhost",
            "authorization: bearer k-1",
            "content-type: text/plain",
            "content-length: 5",
        ] {
            assert!(request.contains(header), "{header}: {request}");
        }
        assert!(request.ends_with("\r\n\r\nhello"));
    }

    #[tokio::test]
    async fn the_limits_and_status_rules_hold_over_the_socket() {
        let (socket, _) = serve_once(Some(
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        ));
        assert!(matches!(
            post(&socket).await,
            Err(EgressError::RateLimited {
                retry_after_secs: Some(7)
            })
        ));
        // A redirect is not followed.
        let (socket, _) = serve_once(Some(
            b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://example.com/\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ));
        assert!(matches!(post(&socket).await, Err(EgressError::Status(307))));
        // Larger than the cap: declared, or streamed without a length.
        let (socket, _) = serve_once(Some(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}",
                "x".repeat(100)
            )
            .into_bytes(),
        ));
        assert!(matches!(
            post(&socket).await,
            Err(EgressError::Malformed(_))
        ));
        let (socket, _) = serve_once(Some(
            format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{}",
                "x".repeat(100)
            )
            .into_bytes(),
        ));
        assert!(matches!(
            post(&socket).await,
            Err(EgressError::Malformed(_))
        ));
        // A provider that never answers: given up after the timeout.
        let (socket, _) = serve_once(None);
        let started = std::time::Instant::now();
        assert!(matches!(post(&socket).await, Err(EgressError::Unreachable)));
        assert!(started.elapsed() < Duration::from_secs(5));
        // No socket at all.
        let missing = socket.with_file_name("missing.sock");
        assert!(matches!(
            post(&missing).await,
            Err(EgressError::Unreachable)
        ));
    }

    #[test]
    fn socket_paths_come_from_unix_urls_only() {
        let path = |u: &str| socket_path(&url::Url::parse(u).unwrap());
        assert_eq!(path("unix:/run/a.sock"), Some(PathBuf::from("/run/a.sock")));
        assert_eq!(
            path("unix:///run/a.sock"),
            Some(PathBuf::from("/run/a.sock"))
        );
        assert_eq!(
            path("unix:/srv/a%20b/x.sock"),
            Some(PathBuf::from("/srv/a b/x.sock"))
        );
        assert_eq!(path("unix:/srv/a%00b"), None);
        assert_eq!(path("unix:/srv/a%zz"), None);
        assert_eq!(path("unix://host/run/a.sock"), None);
        assert_eq!(path("http://localhost/run/a.sock"), None);
        assert_eq!(path(&format!("unix:/{}", "a".repeat(107))), None);
    }
}
