//! The CSP violation report endpoint: accepts both the `report-uri` format
//! (`application/csp-report`, CSP Level 2 §7.1) and the Reporting API format
//! (`application/reports+json`, a list of `csp-violation` reports) and logs each violation
//! as its directive and the origin of what was blocked — never a full URL, a sample, or
//! anything else from the page, which could carry PHI.

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::Value;

/// Largest accepted report body (bytes); bigger ones are refused with `413` unread.
pub const CSP_REPORT_MAX_BYTES: usize = 16 * 1024;

/// At most this many violations are logged from one body.
const MAX_PER_BODY: usize = 10;

/// `POST /app/csp-report`: logs the violations (target `security.csp`) and answers `204`;
/// a body that is not a report is `400`.
pub(crate) async fn csp_report(body: Bytes) -> StatusCode {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let violations = violations(&v);
    if violations.is_empty() {
        return StatusCode::BAD_REQUEST;
    }
    for (directive, blocked) in violations.into_iter().take(MAX_PER_BODY) {
        tracing::warn!(target: "security.csp", %directive, %blocked, "content security policy violation");
    }
    StatusCode::NO_CONTENT
}

/// (directive, blocked origin) of each violation in a report body.
fn violations(v: &Value) -> Vec<(String, String)> {
    let one = |r: &Value, directive: &[&str], blocked: &[&str]| {
        let pick = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| r.get(*k).and_then(Value::as_str))
                .unwrap_or("")
                .to_owned()
        };
        (keyword(&pick(directive)), origin_of(&pick(blocked)))
    };
    if let Some(r) = v.get("csp-report") {
        return vec![one(
            r,
            &["effective-directive", "violated-directive"],
            &["blocked-uri"],
        )];
    }
    v.as_array()
        .map(|list| {
            list.iter()
                .filter(|r| r.get("type").and_then(Value::as_str) == Some("csp-violation"))
                .filter_map(|r| r.get("body"))
                .map(|b| one(b, &["effectiveDirective"], &["blockedURL"]))
                .collect()
        })
        .unwrap_or_default()
}

/// A directive name or a keyword (`inline`, `eval`, `trusted-types-sink`): letters, digits
/// and `-` only, at most 40 characters.
fn keyword(s: &str) -> String {
    let k: String = s
        .split_whitespace()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect();
    if k.is_empty() {
        "unknown".to_owned()
    } else {
        k
    }
}

/// The origin (`scheme://host[:port]`) of a blocked URL, or the keyword the browser sent in
/// its place; never a path or query.
fn origin_of(s: &str) -> String {
    match s.split_once("://") {
        Some((scheme, rest)) => {
            let host: String = rest
                .split(['/', '?', '#'])
                .next()
                .unwrap_or("")
                .rsplit('@')
                .next()
                .unwrap_or("")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
                .take(100)
                .collect();
            format!("{}://{host}", keyword(scheme))
        }
        None => keyword(s.split(':').next().unwrap_or("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // issue 17 — only the directive and the blocked origin are kept.
    #[test]
    fn reports_keep_directive_and_origin_only() {
        let legacy = json!({"csp-report": {
            "document-uri": "https://x.test/app/practices/1/patients?name=Smith",
            "effective-directive": "script-src-elem",
            "blocked-uri": "https://user:pw@cdn.evil.test:8443/a/Smith.js?q=1",
            "script-sample": "alert('Smith')"
        }});
        assert_eq!(
            violations(&legacy),
            vec![(
                "script-src-elem".to_owned(),
                "https://cdn.evil.test:8443".to_owned()
            )]
        );
        let modern = json!([
            {"type": "csp-violation", "body": {"effectiveDirective": "style-src-attr", "blockedURL": "inline", "sample": "color: red"}},
            {"type": "deprecation", "body": {}},
            {"type": "csp-violation", "body": {"effectiveDirective": "require-trusted-types-for", "blockedURL": "trusted-types-sink"}}
        ]);
        assert_eq!(
            violations(&modern),
            vec![
                ("style-src-attr".to_owned(), "inline".to_owned()),
                (
                    "require-trusted-types-for".to_owned(),
                    "trusted-types-sink".to_owned()
                )
            ]
        );
        assert!(violations(&json!({"hello": 1})).is_empty());
        assert_eq!(origin_of("data:text/html,<b>Smith</b>"), "data");
    }
}
