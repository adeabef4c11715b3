//! Fixture evaluation (SPEC §6): utterance cases (`examples.jsonl`) and session cases
//! (`sessions.jsonl`), one JSON object per line. `chartroom perio eval` is a thin wrapper
//! around [`evaluate_jsonl`].
//!
//! An utterance case passes when `status`, `events` (in order), `cursor_after`,
//! `last_site` (when given), `alternatives` (when given; each alternative compared on the
//! keys it gives), `reject.reason` (when given), `derived` (when given) and the *set* of
//! `warnings` match. `labels` and `reverts` are compared too when the case gives them. A
//! session case passes when every final's status matches and the final chart equals
//! `expect_chart` exactly; a `needs_confirmation` final is declined.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use crate::outcome::Status;
use crate::session::{Session, chart_to_json};

/// Most differences listed per field, so one broken case stays one readable line.
const MAX_DIFFS_PER_FIELD: usize = 4;

/// The verdict on one fixture case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseResult {
    /// The case id (`id` field, or `line N` when absent).
    pub id: String,
    /// What differed; empty when the case passed.
    pub failures: Vec<String>,
}

impl CaseResult {
    /// Whether the case passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for CaseResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed() {
            write!(f, "case {}: ok", self.id)
        } else {
            write!(f, "case {}: {}", self.id, self.failures.join("; "))
        }
    }
}

/// Totals over any number of cases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
}

impl Totals {
    /// Adds results.
    pub fn add(&mut self, results: &[CaseResult]) {
        for r in results {
            if r.passed() {
                self.passed += 1;
            } else {
                self.failed += 1;
            }
        }
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

/// Evaluates every non-blank line of a JSONL fixture file.
#[must_use]
pub fn evaluate_jsonl(contents: &str) -> Vec<CaseResult> {
    contents
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| match serde_json::from_str::<Value>(line) {
            Ok(v) => evaluate_case(&v),
            Err(e) => CaseResult {
                id: format!("line {}", i + 1),
                failures: vec![format!("not JSON: {e}")],
            },
        })
        .collect()
}

/// Evaluates one case; the kind is told by the presence of `utterances`.
#[must_use]
pub fn evaluate_case(case: &Value) -> CaseResult {
    let id = match case.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "?".to_owned(),
    };
    let failures = if case.get("utterances").is_some() {
        session_case(case)
    } else {
        utterance_case(case)
    };
    CaseResult { id, failures }
}

fn session_from(case: &Value) -> Result<Session, String> {
    let empty = Value::Object(serde_json::Map::new());
    Session::from_ctx(case.get("ctx").unwrap_or(&empty)).map_err(|e| format!("ctx: {e}"))
}

fn utterance_case(case: &Value) -> Vec<String> {
    let mut session = match session_from(case) {
        Ok(s) => s,
        Err(e) => return vec![e],
    };
    let Some(text) = case.get("utterance").and_then(Value::as_str) else {
        return vec!["no utterance".to_owned()];
    };
    match case.get("input_form").and_then(Value::as_str) {
        None | Some("lexical" | "display") => {}
        Some(other) => {
            return vec![format!(
                "input_form {other:?} is neither lexical nor display"
            )];
        }
    }
    let Some(expect) = case.get("expect") else {
        return vec!["no expect".to_owned()];
    };
    let actual = session.apply_final(text).to_json();
    compare_outcome(expect, &actual)
}

/// Compares an outcome (as JSON) with an `expect` object; returns the differences.
#[must_use]
pub fn compare_outcome(expect: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let empty = Value::Array(Vec::new());
    for key in [
        "status",
        "events",
        "cursor_after",
        "last_site",
        "derived",
        "reverts",
    ] {
        if let Some(e) = expect.get(key) {
            let a = match key {
                "events" | "reverts" => actual.get(key).unwrap_or(&empty),
                _ => actual.get(key).unwrap_or(&Value::Null),
            };
            diff(key, e, a, &mut out);
        }
    }
    if let Some(Value::Array(alts)) = expect.get("alternatives") {
        let actual_alts = actual
            .get("alternatives")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        if alts.len() == actual_alts.len() {
            for (i, (e, a)) in alts.iter().zip(actual_alts).enumerate() {
                subset_diff(&format!("alternatives[{i}]"), e, a, &mut out);
            }
        } else {
            out.push(format!(
                "alternatives: expected {} readings, got {}",
                alts.len(),
                actual_alts.len()
            ));
        }
    }
    if let Some(reason) = expect.get("reject").and_then(|r| r.get("reason")) {
        let got = actual
            .get("reject")
            .and_then(|r| r.get("reason"))
            .unwrap_or(&Value::Null);
        diff("reject.reason", reason, got, &mut out);
    }
    if let Some(labels) = expect.get("labels") {
        subset_diff(
            "labels",
            labels,
            actual.get("labels").unwrap_or(&Value::Null),
            &mut out,
        );
    }
    if let Some(Value::Array(want)) = expect.get("warnings") {
        let want: BTreeSet<String> = want
            .iter()
            .map(|w| w.as_str().map_or_else(|| w.to_string(), str::to_owned))
            .collect();
        let got: BTreeSet<String> = actual
            .get("warnings")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|w| w.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if want != got {
            let missing: Vec<&String> = want.difference(&got).collect();
            let extra: Vec<&String> = got.difference(&want).collect();
            out.push(format!(
                "warnings: missing {missing:?}, unexpected {extra:?}"
            ));
        }
    }
    out
}

fn session_case(case: &Value) -> Vec<String> {
    let mut session = match session_from(case) {
        Ok(s) => s,
        Err(e) => return vec![e],
    };
    let utterances = case
        .get("utterances")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let statuses = case
        .get("expect_statuses")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut out = Vec::new();
    if utterances.len() != statuses.len() {
        out.push(format!(
            "{} utterances but {} expect_statuses",
            utterances.len(),
            statuses.len()
        ));
    }
    for (i, u) in utterances.iter().enumerate() {
        let Some(text) = u.as_str() else {
            out.push(format!("utterances[{i}] is not a string"));
            continue;
        };
        let outcome = session.apply_final(text);
        if outcome.status == Status::NeedsConfirmation {
            session.decline();
        }
        let got = serde_json::to_value(outcome.status).unwrap_or(Value::Null);
        if let Some(want) = statuses.get(i).filter(|w| **w != got) {
            out.push(format!(
                "utterances[{i}] {text:?}: status expected {want}, got {got}"
            ));
        }
    }
    match case.get("expect_chart") {
        Some(want) => diff("chart", want, &chart_to_json(session.chart()), &mut out),
        None => out.push("no expect_chart".to_owned()),
    }
    out
}

/// Compares only the keys `expect` gives (recursively for objects).
fn subset_diff(path: &str, expect: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expect, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                subset_diff(
                    &format!("{path}.{k}"),
                    ev,
                    a.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ => diff(path, expect, actual, out),
    }
}

/// A readable structural diff: one entry per differing leaf, at most
/// [`MAX_DIFFS_PER_FIELD`] per top-level field.
fn diff(path: &str, expect: &Value, actual: &Value, out: &mut Vec<String>) {
    let mut found = Vec::new();
    diff_into(path, expect, actual, &mut found);
    let extra = found.len().saturating_sub(MAX_DIFFS_PER_FIELD);
    out.extend(found.into_iter().take(MAX_DIFFS_PER_FIELD));
    if extra > 0 {
        out.push(format!("{path}: {extra} more differences"));
    }
}

fn diff_into(path: &str, expect: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expect, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let keys: BTreeSet<&String> = e.keys().chain(a.keys()).collect();
            for k in keys {
                match (e.get(k), a.get(k)) {
                    (Some(ev), Some(av)) => diff_into(&format!("{path}.{k}"), ev, av, out),
                    (Some(ev), None) => out.push(format!("{path}.{k}: expected {ev}, missing")),
                    (None, Some(av)) => out.push(format!("{path}.{k}: unexpected {av}")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                diff_into(&format!("{path}[{i}]"), ev, av, out);
            }
            if e.len() != a.len() {
                let (more, which) = if e.len() > a.len() {
                    (e.get(a.len()..).unwrap_or_default(), "missing")
                } else {
                    (a.get(e.len()..).unwrap_or_default(), "unexpected")
                };
                let items: Vec<String> = more.iter().map(Value::to_string).collect();
                out.push(format!("{path}: {which} {}", items.join(", ")));
            }
        }
        _ if expect != actual => out.push(format!("{path}: expected {expect}, got {actual}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn readable_diffs() {
        let mut out = Vec::new();
        diff(
            "events",
            &json!([{"type": "pd", "mm": 3}, {"type": "pd"}]),
            &json!([{"type": "pd", "mm": 4}]),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                "events[0].mm: expected 3, got 4",
                r#"events: missing {"type":"pd"}"#
            ]
        );
    }

    #[test]
    fn warnings_compare_as_sets() {
        let expect = json!({"status": "ok", "warnings": ["a", "b"]});
        assert!(
            compare_outcome(
                &expect,
                &json!({"status": "ok", "warnings": ["b", "a", "a"]})
            )
            .is_empty()
        );
        assert_eq!(
            compare_outcome(&expect, &json!({"status": "ok", "warnings": ["a", "c"]})),
            vec![r#"warnings: missing ["b"], unexpected ["c"]"#]
        );
    }

    #[test]
    fn malformed_lines_fail_with_a_reason() {
        let r = evaluate_jsonl(
            "{\"id\": 1, \"utterance\": \"three\", \"ctx\": {\"numbering\": \"roman\"}, \"expect\": {}}\nnot json\n",
        );
        assert_eq!(r.len(), 2);
        assert!(
            r[0].failures[0].starts_with("ctx: invalid session context: unknown variant `roman`"),
            "{:?}",
            r[0]
        );
        assert!(r[1].failures[0].starts_with("not JSON"), "{:?}", r[1]);
    }
}
