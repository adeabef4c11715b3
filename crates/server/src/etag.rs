//! Optimistic concurrency over HTTP (req INT-03): a versioned resource answers with its
//! version as a strong `ETag` (`"3"`), and a change names the version it was made against in
//! `If-Match`. One parser and one header writer for every such route.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::AppError;

/// `If-Match` as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfMatch {
    /// No header.
    Absent,
    /// `*`: any current version (an explicit choice to overwrite).
    Any,
    /// One version (`"3"`, `W/"3"` or `3`).
    Version(i64),
}

impl IfMatch {
    /// Reads the header; a value that names no version is a 400 naming `what`'s `ETag`.
    pub(crate) fn from_headers(headers: &HeaderMap, what: &str) -> Result<Self, AppError> {
        let Some(v) = headers.get(header::IF_MATCH) else {
            return Ok(Self::Absent);
        };
        let v = v.to_str().unwrap_or("").trim();
        if v == "*" {
            return Ok(Self::Any);
        }
        v.trim_start_matches("W/")
            .trim_matches('"')
            .parse::<i64>()
            .map(Self::Version)
            .map_err(|_| AppError::Invalid(format!("If-Match: send the {what}'s ETag, e.g. \"3\"")))
    }

    /// The version asked for, if one was named.
    pub(crate) const fn version(self) -> Option<i64> {
        match self {
            Self::Version(v) => Some(v),
            Self::Absent | Self::Any => None,
        }
    }
}

/// `response` with `ETag: "<version>"`.
pub(crate) fn with_etag(version: impl Into<i64>, response: impl IntoResponse) -> Response {
    let mut res = response.into_response();
    let version: i64 = version.into();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Option<&str>) -> Result<IfMatch, AppError> {
        let mut h = HeaderMap::new();
        if let Some(v) = v {
            h.insert(header::IF_MATCH, HeaderValue::from_str(v).expect("header"));
        }
        IfMatch::from_headers(&h, "note")
    }

    #[test]
    fn if_match_forms() {
        assert_eq!(parse(None).ok(), Some(IfMatch::Absent));
        assert_eq!(parse(Some("*")).ok(), Some(IfMatch::Any));
        assert_eq!(parse(Some("\"3\"")).ok(), Some(IfMatch::Version(3)));
        assert_eq!(parse(Some("W/\"4\"")).ok(), Some(IfMatch::Version(4)));
        assert!(parse(Some("\"abc\"")).is_err());
        let res = with_etag(7_i32, "x");
        assert_eq!(res.headers()[header::ETAG], "\"7\"");
    }
}
