//! Static assets, compiled into the binary and served under content-hashed URLs.
//!
//! Each asset's URL carries the first 64 bits of the SHA-256 of its bytes
//! (`/app/static/app.1a2b3c4d5e6f7081.css`), computed once at startup, so a changed file gets
//! a new URL and every URL can be cached forever (`immutable`). Scripts also carry their SRI
//! digest (SHA-384, W3C Subresource Integrity §3.1) for the `integrity` attribute.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest as _, Sha256, Sha384};

use crate::WebError;

/// Where the assets are served.
pub const ASSET_PREFIX: &str = "/app/static/";

/// One year, the longest `max-age` caches honour (RFC 9111 §5.2.2.1), for hashed URLs only.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A static file with its hashed URL and SRI digest.
#[derive(Debug)]
pub struct Asset {
    /// The file name in the URL: `stem.HASH.ext`.
    pub file: String,
    /// The full URL path.
    pub url: String,
    /// `sha384-…` for the `integrity` attribute.
    pub sri: String,
    /// The bytes.
    pub bytes: &'static [u8],
    /// The media type.
    pub content_type: &'static str,
}

impl Asset {
    fn new(name: &str, bytes: &'static [u8], content_type: &'static str) -> Self {
        let digest = Sha256::digest(bytes);
        let short = digest.iter().take(8).fold(String::new(), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        });
        let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
        let file = format!("{stem}.{short}.{ext}");
        let sri = format!(
            "sha384-{}",
            base64::engine::general_purpose::STANDARD.encode(Sha384::digest(bytes))
        );
        Self {
            url: format!("{ASSET_PREFIX}{file}"),
            file,
            sri,
            bytes,
            content_type,
        }
    }
}

/// The app's static assets.
#[derive(Debug)]
pub struct Assets {
    /// The stylesheet.
    pub css: Asset,
    /// The Trusted Types default policy (a classic script, loaded first).
    pub tt_policy: Asset,
    /// htmx 2.0.11 (vendored from the npm package `htmx.org`, 0BSD license).
    pub htmx: Asset,
    /// The app's own module.
    pub app: Asset,
    /// The perio exam page's keyboard module (loaded by that page only).
    pub perio: Asset,
    /// The passkey ceremonies (WebAuthn), a module.
    pub passkey: Asset,
    /// The live recording indicator (every signed-in page).
    pub indicator: Asset,
    /// The visit page's recorder.
    pub recorder: Asset,
    /// Microphone capture and the WAV encoder, shared by the recorder and the perio page's
    /// dictation control (a classic script, loaded before them).
    pub audio: Asset,
}

impl Assets {
    fn all(&self) -> [&Asset; 9] {
        [
            &self.css,
            &self.tt_policy,
            &self.htmx,
            &self.app,
            &self.perio,
            &self.passkey,
            &self.indicator,
            &self.recorder,
            &self.audio,
        ]
    }

    /// The asset served as `file` (its hashed name), if any.
    #[must_use]
    pub fn find(&self, file: &str) -> Option<&Asset> {
        self.all().into_iter().find(|a| a.file == file)
    }
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets {
    css: Asset::new(
        "app.css",
        include_bytes!("../static/app.css"),
        "text/css; charset=utf-8",
    ),
    tt_policy: Asset::new(
        "tt-policy.js",
        include_bytes!("../static/js/tt-policy.js"),
        "text/javascript; charset=utf-8",
    ),
    htmx: Asset::new(
        "htmx-2.0.11.min.js",
        include_bytes!("../static/vendor/htmx-2.0.11/htmx-2.0.11.min.js"),
        "text/javascript; charset=utf-8",
    ),
    app: Asset::new(
        "app.js",
        include_bytes!("../static/js/app.js"),
        "text/javascript; charset=utf-8",
    ),
    perio: Asset::new(
        "perio.js",
        include_bytes!("../static/js/perio.js"),
        "text/javascript; charset=utf-8",
    ),
    passkey: Asset::new(
        "passkey.js",
        include_bytes!("../static/js/passkey.js"),
        "text/javascript; charset=utf-8",
    ),
    indicator: Asset::new(
        "indicator.js",
        include_bytes!("../static/js/indicator.js"),
        "text/javascript; charset=utf-8",
    ),
    recorder: Asset::new(
        "recorder.js",
        include_bytes!("../static/js/recorder.js"),
        "text/javascript; charset=utf-8",
    ),
    audio: Asset::new(
        "audio.js",
        include_bytes!("../static/js/audio.js"),
        "text/javascript; charset=utf-8",
    ),
});

/// The assets (hashed once, on first use).
#[must_use]
pub fn assets() -> &'static Assets {
    &ASSETS
}

/// `GET /app/static/{file}`: the asset with that hashed name, cached as immutable; `404` for
/// any other name (an old hash included).
pub(crate) async fn serve(Path(file): Path<String>) -> Result<Response, WebError> {
    let asset = assets()
        .find(&file)
        .ok_or(WebError(server::AppError::NotFound("file")))?;
    let mut res = asset.bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 17 — URLs change with the bytes; SRI is the SHA-384 of the bytes.
    #[test]
    fn urls_are_content_hashed() {
        let a = Asset::new("x.js", b"one", "text/javascript");
        let b = Asset::new("x.js", b"two", "text/javascript");
        assert_ne!(a.url, b.url);
        assert!(a.url.starts_with("/app/static/x."));
        assert_eq!(a.url.rsplit('.').next(), Some("js"));
        assert_eq!(a.file.len(), "x..js".len() + 16);
        assert_eq!(
            a.sri,
            "sha384-Xby+2wDRMaKeBZP5dvK0N5QpOSORmtQnZt6Bf+yCSmJieZ/sjQTLmxfEjo6ukSZY"
        );
        for asset in assets().all() {
            assert_eq!(
                assets().find(&asset.file).map(|a| a.url.as_str()),
                Some(asset.url.as_str())
            );
        }
        assert!(assets().find("app.css").is_none());
    }

    // issue 17 — the page-weight budget: every page loads the app's assets (the base
    // template) and nothing else, the perio exam page its keyboard module and the shared
    // microphone script besides; all of
    // them together stay within 100 KB even uncompressed (they are served as they are), so
    // within the budget of 100 KB compressed including htmx.
    #[test]
    fn every_page_ships_at_most_100_kb_of_script_and_style() {
        let total: usize = assets().all().iter().map(|x| x.bytes.len()).sum();
        assert!(total > 50_000, "htmx is part of it: {total} bytes");
        assert!(
            total <= 100_000,
            "{total} bytes of script and style per page"
        );
        // Nothing else is loaded: every script and stylesheet of the base page is one of them.
        let base = include_str!("../templates/base.html");
        let loaded = base.matches("<script").count() + base.matches("rel=\"stylesheet\"").count();
        assert_eq!(loaded, base.matches("{{ assets.").count() / 2, "{base}");
        let perio = include_str!("../templates/perio_exam.html");
        assert_eq!(perio.matches("<script").count(), 2, "{perio}");
        assert!(perio.contains("{{ assets.perio.url }}"), "{perio}");
        assert!(perio.contains("{{ assets.audio.url }}"), "{perio}");
    }
}
