//! The pack: every requirement row joined with the tests that prove it and their results in
//! this run; its files, digest and signature; and loading a pack back (the trust page).
//!
//! # Files (in the output directory)
//!
//! - `evidence.json` — the [`Pack`].
//! - `evidence.json.sig` — a C2SP signed note (the audit log's checkpoint format, see
//!   [`audit::checkpoint`]) whose text is [`note_text`]: the format line and the SHA-256 of
//!   `evidence.json`'s bytes, signed with Ed25519.
//! - `evidence.pub` — the verifier key string `chartroom-evidence+<id>+<base64 key>`.
//! - `evidence.html` — the same facts for people, with the digest and the signed note.
//!
//! Nothing in a pack is PHI: requirement ids and text, test names, file positions, outcomes,
//! counts, the commit and the time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use audit::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::requirements::{Refinement, Requirement};
use crate::results::{Outcome, TestResult};
use crate::scan::{Scan, TaggedTest};

/// The pack format this crate writes.
pub const FORMAT: &str = "chartroom-evidence/1";
/// The signing key's name (in the key strings and the signature line).
pub const KEY_NAME: &str = "chartroom-evidence";
/// The pack's file name.
pub const JSON_FILE: &str = "evidence.json";
/// The signed note's file name.
pub const SIG_FILE: &str = "evidence.json.sig";
/// The verifier key's file name.
pub const PUB_FILE: &str = "evidence.pub";
/// The HTML rendering's file name.
pub const HTML_FILE: &str = "evidence.html";
/// The largest pack [`load`] reads.
pub const MAX_PACK_BYTES: u64 = 16 << 20;

/// Where a row stands in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// At least one tagged test passed and none failed.
    Proven,
    /// A tagged test failed.
    Failed,
    /// Listed as not proven yet, with its reason, and no tagged test passed.
    Pending,
    /// No tagged test passed, and the row is not listed as pending.
    Unproven,
}

impl Status {
    /// As written in the pack.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proven => "proven",
            Self::Failed => "failed",
            Self::Pending => "pending",
            Self::Unproven => "unproven",
        }
    }
}

/// A test that carries a row's id, with its outcome in this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowTest {
    /// The package (`chartroom`).
    pub package: String,
    /// The libtest name in its binary.
    pub name: String,
    /// `crates/…/file.rs:line`.
    pub location: String,
    /// `passed`, `failed`, `ignored` or `not_run`.
    pub outcome: String,
}

/// One requirement row of the pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// `AC-01`.
    pub id: String,
    /// What is required.
    pub requirement: String,
    /// The proof asked for (refined, when refined).
    pub proof: String,
    /// The sources.
    pub source: String,
    /// The refinement, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refinement: Option<Refinement>,
    /// Where it stands.
    pub status: Status,
    /// Why it is not proven yet (pending rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<String>,
    /// The tests tagged with it.
    pub tests: Vec<RowTest>,
}

/// The counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Requirement rows.
    pub rows: usize,
    /// Rows proven.
    pub proven: usize,
    /// Rows not proven yet (listed pending).
    pub pending: usize,
    /// Rows with a failed test.
    pub failed: usize,
    /// Rows without a passing test that are not pending.
    pub unproven: usize,
    /// Test functions carrying at least one tag.
    pub tagged_tests: usize,
    /// Test results in the log: passed.
    pub tests_passed: usize,
    /// Test results in the log: failed.
    pub tests_failed: usize,
    /// Test results in the log: ignored.
    pub tests_ignored: usize,
}

/// The evidence pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pack {
    /// [`FORMAT`].
    pub format: String,
    /// When it was made (RFC 3339, UTC).
    pub generated_at: String,
    /// The git commit tested (`unknown` when there is none).
    pub commit: String,
    /// SHA-256 (hex) of the requirement catalog read.
    pub requirements_sha256: String,
    /// The counts.
    pub summary: Summary,
    /// Every row, in the catalog's order.
    pub rows: Vec<Row>,
    /// What makes the pack fail besides its rows: tags off the convention, unknown ids, a
    /// pending row that is proven.
    pub problems: Vec<String>,
}

impl Pack {
    /// Whether the run passes: no problem, and every row proven or pending.
    #[must_use]
    pub fn passes(&self) -> bool {
        self.problems.is_empty()
            && self
                .rows
                .iter()
                .all(|r| matches!(r.status, Status::Proven | Status::Pending))
    }

    /// The count line (`61/102 requirements proven (41 pending, 0 failed, 0 unproven)`).
    #[must_use]
    pub fn count_line(&self) -> String {
        let s = &self.summary;
        format!(
            "{}/{} requirements proven ({} pending, {} failed, {} unproven)",
            s.proven, s.rows, s.pending, s.failed, s.unproven
        )
    }

    /// The rows not proven yet (pending, failed or unproven).
    pub fn not_done(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.status != Status::Proven)
    }
}

/// What the join reads.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The catalog's rows (refinements applied).
    pub requirements: &'a [Requirement],
    /// SHA-256 (hex) of the catalog's bytes.
    pub requirements_sha256: String,
    /// Pending rows: id → reason.
    pub pending: &'a BTreeMap<String, String>,
    /// The scan of the test sources.
    pub scan: &'a Scan,
    /// The results of this run.
    pub results: &'a [TestResult],
    /// The commit.
    pub commit: String,
    /// When (RFC 3339).
    pub generated_at: String,
}

/// A tagged test's outcome: every result with its name and binary (a binary root that is
/// the same in two packages, `tests/it/main.rs`, counts for both: a failure anywhere wins).
fn outcome_of(test: &TaggedTest, results: &[TestResult]) -> Outcome {
    results
        .iter()
        .filter(|r| {
            r.name == test.name
                && r.target_root
                    .as_deref()
                    .is_none_or(|root| root == test.target_root)
        })
        .map(|r| r.outcome)
        .min()
        .unwrap_or(Outcome::NotRun)
}

/// Joins requirements, tags and results into the pack.
#[must_use]
#[allow(
    clippy::too_many_lines,
    reason = "one pass: problems, counts, then each row in the catalog's order"
)]
pub fn build(inputs: &Inputs<'_>) -> Pack {
    let mut problems: Vec<String> = inputs
        .scan
        .problems
        .iter()
        .map(ToString::to_string)
        .collect();
    let known = |id: &str| inputs.requirements.iter().any(|r| r.id == id);
    for test in &inputs.scan.tests {
        for id in &test.ids {
            if !known(id) {
                problems.push(format!(
                    "{}:{}: {id} is not a requirement id of the catalog",
                    test.file, test.line
                ));
            }
        }
    }
    for id in inputs.pending.keys() {
        if !known(id) {
            problems.push(format!(
                "pending list: {id} is not a requirement id of the catalog"
            ));
        }
    }
    let mut rows = Vec::with_capacity(inputs.requirements.len());
    let mut summary = Summary {
        rows: inputs.requirements.len(),
        tagged_tests: inputs
            .scan
            .tests
            .iter()
            .filter(|t| !t.ids.is_empty())
            .count(),
        ..Summary::default()
    };
    for r in inputs.results {
        match r.outcome {
            Outcome::Passed => summary.tests_passed += 1,
            Outcome::Failed => summary.tests_failed += 1,
            Outcome::Ignored => summary.tests_ignored += 1,
            Outcome::NotRun => {}
        }
    }
    for req in inputs.requirements {
        let tagged: Vec<(&TaggedTest, Outcome)> = inputs
            .scan
            .tests
            .iter()
            .filter(|t| t.ids.contains(&req.id))
            .map(|t| (t, outcome_of(t, inputs.results)))
            .collect();
        let pending_reason = inputs.pending.get(&req.id).cloned();
        let any = |o: Outcome| tagged.iter().any(|(_, got)| *got == o);
        let status = if any(Outcome::Failed) {
            Status::Failed
        } else if any(Outcome::Passed) {
            if pending_reason.is_some() {
                problems.push(format!(
                    "{} is proven in this run: remove it from the pending list",
                    req.id
                ));
            }
            Status::Proven
        } else if pending_reason.is_some() {
            Status::Pending
        } else {
            Status::Unproven
        };
        match status {
            Status::Proven => summary.proven += 1,
            Status::Failed => summary.failed += 1,
            Status::Pending => summary.pending += 1,
            Status::Unproven => summary.unproven += 1,
        }
        rows.push(Row {
            id: req.id.clone(),
            requirement: req.requirement.clone(),
            proof: req.proof.clone(),
            source: req.source.clone(),
            refinement: req.refinement.clone(),
            status,
            pending_reason: pending_reason.filter(|_| status != Status::Proven),
            tests: tagged
                .iter()
                .map(|(t, o)| RowTest {
                    package: t.package.clone(),
                    name: t.name.clone(),
                    location: format!("{}:{}", t.file, t.line),
                    outcome: o.as_str().to_owned(),
                })
                .collect(),
        });
    }
    Pack {
        format: FORMAT.to_owned(),
        generated_at: inputs.generated_at.clone(),
        commit: inputs.commit.clone(),
        requirements_sha256: inputs.requirements_sha256.clone(),
        summary,
        rows,
        problems,
    }
}

/// SHA-256 of `bytes`, lowercase hex.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The signed note's text for a pack whose JSON has digest `sha256_hex`.
#[must_use]
pub fn note_text(sha256_hex: &str) -> String {
    format!("{FORMAT}\nsha256 {sha256_hex}\n")
}

/// What [`write`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// SHA-256 of `evidence.json`, hex.
    pub sha256: String,
    /// The verifier key string.
    pub verifier_key: String,
    /// The files, JSON first.
    pub files: Vec<PathBuf>,
}

/// Writes the pack's four files into `dir` (created if missing), signed by `signer`.
pub fn write(dir: &Path, pack: &Pack, signer: &Signer) -> Result<Written, String> {
    let io = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut json = serde_json::to_vec_pretty(pack).map_err(|e| e.to_string())?;
    json.push(b'\n');
    let sha256 = sha256_hex(&json);
    let note = signer
        .sign_note(&note_text(&sha256))
        .map_err(|e| e.to_string())?;
    let verifier_key = signer.verifier_key();
    let html = crate::html::render(pack, &sha256, &note, &verifier_key)?;
    let files = vec![
        dir.join(JSON_FILE),
        dir.join(SIG_FILE),
        dir.join(PUB_FILE),
        dir.join(HTML_FILE),
    ];
    let key_line = format!("{verifier_key}\n");
    let contents: [&[u8]; 4] = [&json, note.as_bytes(), key_line.as_bytes(), html.as_bytes()];
    for (path, bytes) in files.iter().zip(contents) {
        std::fs::write(path, bytes).map_err(|e| io(path, e))?;
    }
    Ok(Written {
        sha256,
        verifier_key,
        files,
    })
}

/// A pack read back and checked.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The pack.
    pub pack: Pack,
    /// SHA-256 of its JSON, hex.
    pub sha256: String,
    /// The verifier key beside it.
    pub verifier_key: String,
    /// The signed note.
    pub signature: String,
}

/// Reads `path` (the pack's directory, or its `evidence.json`) and checks the signature with
/// the key beside it: the note must be signed by that key and name this JSON's digest.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let dir = if path.is_dir() {
        path.to_owned()
    } else {
        path.parent().map(Path::to_owned).unwrap_or_default()
    };
    let read = |name: &str| -> Result<Vec<u8>, String> {
        let p = dir.join(name);
        let len = std::fs::metadata(&p)
            .map_err(|e| format!("{}: {e}", p.display()))?
            .len();
        if len > MAX_PACK_BYTES {
            return Err(format!(
                "{}: {len} bytes, more than {MAX_PACK_BYTES}",
                p.display()
            ));
        }
        std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
    };
    let json = read(JSON_FILE)?;
    let signature = String::from_utf8(read(SIG_FILE)?).map_err(|_| "signature: not UTF-8")?;
    let verifier_key = String::from_utf8(read(PUB_FILE)?)
        .map_err(|_| "verifier key: not UTF-8")?
        .trim()
        .to_owned();
    let verifier = Verifier::new(&verifier_key).map_err(|e| format!("verifier key: {e}"))?;
    let text = verifier
        .open_note(&signature)
        .map_err(|e| format!("signature: {e}"))?;
    let sha256 = sha256_hex(&json);
    if text != note_text(&sha256) {
        return Err("signature: the signed digest is not this pack's".into());
    }
    let pack: Pack = serde_json::from_slice(&json).map_err(|e| format!("{JSON_FILE}: {e}"))?;
    if pack.format != FORMAT {
        return Err(format!("{JSON_FILE}: format {}, not {FORMAT}", pack.format));
    }
    Ok(Loaded {
        pack,
        sha256,
        verifier_key,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requirements::parse_requirements;
    use crate::results::parse_log;
    use crate::scan::{FilePlace, scan_source};

    const TABLE: &str = "\
| ID | Requirement | Proof | Source |
|---|---|---|---|
| AC-01 | one | p | s |
| AC-02 | two | p | s |
| AC-03 | three | p | s |
| AC-04 | four | p | s |
| AC-05 | five | p | s |
";

    fn fixture(log: &str, pending: &[(&str, &str)]) -> Pack {
        let reqs = parse_requirements(TABLE).expect("rows");
        let mut scan = Scan::default();
        let src = "\
// req: AC-01
#[test]
fn proves_one() {}

// req: AC-02, AC-01
#[tokio::test]
async fn proves_two() {}

// req: AC-03
#[test]
fn fails_three() {}

// req: AC-04
#[test]
#[ignore]
fn ignored_four() {}

// req: ZZ-99
#[test]
fn unknown() {}
";
        let it = FilePlace {
            target_root: "tests/it/main.rs".into(),
            modules: vec!["rows".into()],
        };
        scan_source(
            src,
            "chartroom",
            &it,
            "crates/chartroom/tests/it/rows.rs",
            &mut scan,
        );
        // The same module path in a unit-test binary: results of `tests/it/main.rs` are not
        // its results.
        let lib = FilePlace {
            target_root: "src/lib.rs".into(),
            modules: vec!["rows".into()],
        };
        scan_source(
            "// req: AC-05\n#[test]\nfn proves_two() {}\n",
            "domain",
            &lib,
            "crates/domain/src/rows.rs",
            &mut scan,
        );
        let results = parse_log(log);
        let pending: BTreeMap<String, String> = pending
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        build(&Inputs {
            requirements: &reqs,
            requirements_sha256: sha256_hex(TABLE.as_bytes()),
            pending: &pending,
            scan: &scan,
            results: &results,
            commit: "abc".into(),
            generated_at: "2026-12-07T18:00:00Z".into(),
        })
    }

    const LOG: &str = "\
     Running tests/it/main.rs (/t/deps/it-1)
test rows::proves_one ... ok
test rows::proves_two ... ok
test rows::fails_three ... FAILED
test rows::ignored_four ... ignored
test rows::unknown ... ok
";

    fn statuses(p: &Pack) -> Vec<(&str, Status)> {
        p.rows.iter().map(|r| (r.id.as_str(), r.status)).collect()
    }

    // req: OPS-07 — the join: a row is proven by a passing tagged test of this run, fails
    // on a failed one, and is unproven when its tests were ignored or did not run.
    #[test]
    fn joins_rows_tags_and_results() {
        let p = fixture(LOG, &[("AC-04", "needs the reuse constraint")]);
        assert_eq!(
            statuses(&p),
            vec![
                ("AC-01", Status::Proven),
                ("AC-02", Status::Proven),
                ("AC-03", Status::Failed),
                ("AC-04", Status::Pending),
                ("AC-05", Status::Unproven),
            ]
        );
        let ac01 = p.rows.first().expect("AC-01");
        assert_eq!(
            ac01.tests
                .iter()
                .map(|t| (t.name.as_str(), t.outcome.as_str()))
                .collect::<Vec<_>>(),
            [
                ("rows::proves_one", "passed"),
                ("rows::proves_two", "passed")
            ]
        );
        assert_eq!(
            p.rows
                .get(4)
                .map(|r| r.tests.iter().map(|t| t.outcome.as_str()).collect()),
            Some(vec!["not_run"]),
            "a result of another binary is not this test's"
        );
        assert_eq!(p.summary.proven, 2);
        assert_eq!((p.summary.tests_passed, p.summary.tests_failed), (3, 1));
        assert_eq!(
            p.count_line(),
            "2/5 requirements proven (1 pending, 1 failed, 1 unproven)"
        );
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        assert!(p.problems.iter().any(|m| m.contains("ZZ-99")));
        assert!(!p.passes());
    }

    // req: OPS-07 — the pending list stays honest: a pending row that is proven fails.
    #[test]
    fn pending_rows_pass_until_proven() {
        let log = "\
     Running tests/it/main.rs (/t/deps/it-1)
test rows::proves_one ... ok
test rows::proves_two ... ok
test rows::fails_three ... ok
     Running unittests src/lib.rs (/t/deps/domain-2)
test rows::proves_two ... ok
";
        let ok = fixture(log, &[("AC-04", "reason")]);
        assert_eq!(
            ok.problems.len(),
            1,
            "only the unknown id: {:?}",
            ok.problems
        );
        assert_eq!(ok.summary.proven, 4);
        let stale = fixture(log, &[("AC-04", "reason"), ("AC-01", "reason")]);
        assert!(
            stale
                .problems
                .iter()
                .any(|m| m.contains("AC-01 is proven in this run")),
            "{:?}",
            stale.problems
        );
        assert_eq!(
            stale
                .rows
                .first()
                .map(|r| (r.status, r.pending_reason.is_some())),
            Some((Status::Proven, false))
        );
    }

    // req: OPS-07 — the written pack verifies; any change to its bytes does not.
    #[test]
    fn writes_signs_and_verifies() {
        let dir = std::env::temp_dir().join(format!(
            "chartroom-evidence-test-{}-{}",
            std::process::id(),
            sha256_hex(b"writes_signs_and_verifies")
                .get(..8)
                .unwrap_or("x")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let p = fixture(LOG, &[("AC-04", "reason <b>")]);
        let signer = Signer::generate(KEY_NAME).expect("key");
        let w = write(&dir, &p, &signer).expect("written");
        let loaded = load(&dir).expect("loads");
        assert_eq!(loaded.pack, p);
        assert_eq!(loaded.sha256, w.sha256);
        assert_eq!(loaded.verifier_key, signer.verifier_key());
        let html = std::fs::read_to_string(dir.join(HTML_FILE)).expect("html");
        assert!(html.contains(&w.sha256));
        assert!(html.contains("reason &lt;b&gt;") || html.contains("reason &#60;b&#62;"));
        assert!(!html.contains("reason <b>"));

        let json_path = dir.join(JSON_FILE);
        let mut json = std::fs::read(&json_path).expect("json");
        json.extend_from_slice(b" ");
        std::fs::write(&json_path, &json).expect("tamper");
        assert!(load(&dir).is_err(), "a changed pack is refused");

        // Signed by another key than the one beside it.
        std::fs::write(&json_path, serde_json::to_vec(&p).expect("json")).expect("rewrite");
        let other = Signer::generate(KEY_NAME).expect("key");
        write(&dir, &p, &other).expect("written");
        std::fs::write(dir.join(PUB_FILE), signer.verifier_key()).expect("swap key");
        assert!(load(&dir).is_err(), "a signature by another key is refused");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
