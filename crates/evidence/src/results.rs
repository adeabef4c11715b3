//! The results of this run, from the output of `cargo test` (libtest's default format, with
//! cargo's `Running …` lines on stderr merged in).
//!
//! ```text
//!      Running unittests src/lib.rs (/…/target/debug/deps/domain-0123abcd)
//! test rights::tests::deadline ... ok
//!      Running tests/it/main.rs (/…/target/debug/deps/it-4567ef01)
//! test access_requests::pr_01_access_request_deadline_extension_and_denial ... FAILED
//! test web_browser_visit::axe ... ignored, needs chromium
//!    Doc-tests domain
//! ```
//!
//! A result line names its test relative to its binary; the `Running` line before it names
//! the binary's root source file (`src/lib.rs`, `tests/it/main.rs`). Doc tests are skipped (no
//! test function carries a tag). When a test's own output splits its line (`test x ... ` then
//! output, then `ok`), the outcome on a later line of its own still counts.

use serde::Serialize;

/// A test's outcome in this run, ordered by precedence when one name has several results
/// (a failure anywhere wins, then a pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// `FAILED`.
    Failed,
    /// `ok`.
    Passed,
    /// `ignored`.
    Ignored,
    /// Not in the log: not built, filtered out, or never reached.
    NotRun,
}

impl Outcome {
    /// As the pack writes it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Ignored => "ignored",
            Self::NotRun => "not_run",
        }
    }
}

/// One result line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The binary's root source file as cargo printed it (`tests/it/main.rs`), if a
    /// `Running` line came before.
    pub target_root: Option<String>,
    /// The libtest name.
    pub name: String,
    /// The outcome.
    pub outcome: Outcome,
}

fn outcome_word(text: &str) -> Option<Outcome> {
    let word = text.split([',', ' ']).next().unwrap_or_default();
    match word {
        "ok" => Some(Outcome::Passed),
        "FAILED" => Some(Outcome::Failed),
        "ignored" => Some(Outcome::Ignored),
        _ => None,
    }
}

/// The `Running` line's root file: `Running unittests src/lib.rs (…)` → `src/lib.rs`.
fn running_root(line: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix("Running ")?;
    let rest = rest.strip_prefix("unittests ").unwrap_or(rest);
    let path = rest.split(" (").next()?.trim();
    (!path.is_empty()).then(|| path.to_owned())
}

/// Every test result in `log`, in order.
#[must_use]
pub fn parse_log(log: &str) -> Vec<TestResult> {
    let mut out = Vec::new();
    let mut target: Option<String> = None;
    let mut in_doc = false;
    // A `test x ... ` line whose outcome did not follow on the same line.
    let mut dangling: Option<String> = None;
    for line in log.lines() {
        if let Some(root) = running_root(line) {
            target = Some(root);
            in_doc = false;
            dangling = None;
            continue;
        }
        if line.trim_start().starts_with("Doc-tests ") {
            in_doc = true;
            dangling = None;
            continue;
        }
        if in_doc {
            continue;
        }
        if let Some(rest) = line.strip_prefix("test ")
            && let Some((name, after)) = rest.split_once(" ... ")
        {
            let name = name.trim();
            if name.contains(' ') {
                continue;
            }
            match outcome_word(after.trim()) {
                Some(outcome) => {
                    out.push(TestResult {
                        target_root: target.clone(),
                        name: name.to_owned(),
                        outcome,
                    });
                    dangling = None;
                }
                None => dangling = Some(name.to_owned()),
            }
            continue;
        }
        if let Some(outcome) = outcome_word(line.trim()).filter(|_| line.trim().len() <= 40)
            && let Some(name) = dangling.take()
        {
            out.push(TestResult {
                target_root: target.clone(),
                name,
                outcome,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // req: OPS-07 — results come from this run's log, labelled with their binary.
    #[test]
    fn reads_results_with_their_binary_and_skips_doc_tests() {
        let log = "\
   Compiling domain v0.1.0
     Running unittests src/lib.rs (/t/debug/deps/domain-0123abcd)

running 2 tests
test rights::tests::deadline ... ok
test rights::tests::slow ... ignored, needs a cluster
test result: ok. 1 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out

     Running tests/it/main.rs (/t/debug/deps/it-4567ef01)
test access_requests::deadline_is_30_days ... FAILED
test outbox::noisy ... child process says hello
ok
test a::b has no result
   Doc-tests domain
test crates/domain/src/lib.rs - x (line 3) ... ok
";
        let r = parse_log(log);
        let got: Vec<(Option<&str>, &str, Outcome)> = r
            .iter()
            .map(|t| (t.target_root.as_deref(), t.name.as_str(), t.outcome))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    Some("src/lib.rs"),
                    "rights::tests::deadline",
                    Outcome::Passed
                ),
                (Some("src/lib.rs"), "rights::tests::slow", Outcome::Ignored),
                (
                    Some("tests/it/main.rs"),
                    "access_requests::deadline_is_30_days",
                    Outcome::Failed
                ),
                (Some("tests/it/main.rs"), "outbox::noisy", Outcome::Passed),
            ]
        );
    }
}
