//! The pack for people: one self-contained HTML page (no script, inline style only, every
//! value escaped by the template engine).

use askama::Template;

use crate::pack::{Pack, Row, Status};

#[derive(Template)]
#[template(path = "pack.html")]
struct PackPage<'a> {
    pack: &'a Pack,
    sha256: &'a str,
    note: &'a str,
    verifier_key: &'a str,
}

impl PackPage<'_> {
    /// How the page names a row's status.
    #[allow(clippy::unused_self, reason = "called from the template as a method")]
    fn label(&self, row: &Row) -> &'static str {
        match row.status {
            Status::Proven => "proven",
            Status::Failed => "FAILED",
            Status::Pending => "not proven yet",
            Status::Unproven => "no passing test",
        }
    }
}

/// Renders the pack's HTML page.
pub fn render(pack: &Pack, sha256: &str, note: &str, verifier_key: &str) -> Result<String, String> {
    PackPage {
        pack,
        sha256,
        note,
        verifier_key,
    }
    .render()
    .map_err(|e| e.to_string())
}
