//! The SPEC fixtures (`shared/perio/*.jsonl`) run through `perio::fixtures`.
//!
//! `shared/perio/examples.jsonl` case 19 ("four no three") contradicts SPEC rule P4: a
//! one-value run that starts at a tooth's first site must carry `run_not_triplet`, and the
//! fixture lists only `repair:4->3`. The engine follows the SPEC (which is normative), so the
//! suite runs a corrected copy, `tests/fixtures/examples.jsonl`, whose only change is that
//! warning (the line also carries a `correction` note). The tests below pin both facts, so the
//! copy is dropped as soon as the shared file is fixed.

use perio::fixtures::{CaseResult, Totals, evaluate_jsonl};

/// `shared/perio/` sits beside the project root (`shared/README.md`: every engineer and CI
/// run has it at `../shared`).
fn shared(name: &str) -> String {
    let path = format!(
        "{}/../../../shared/perio/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{path}: {e} (the SPEC fixtures must be at ../shared/perio from the project root)")
    })
}

fn corrected(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Ids of shared example cases that the corrected copy changes.
const CORRECTED_CASES: &[u64] = &[19];

fn failures(results: &[CaseResult]) -> Vec<String> {
    results
        .iter()
        .filter(|r| !r.passed())
        .map(ToString::to_string)
        .collect()
}

#[test]
fn all_fixtures_pass_with_the_corrected_examples() {
    let mut totals = Totals::default();
    let examples = evaluate_jsonl(&corrected("examples.jsonl"));
    let sessions = evaluate_jsonl(&shared("sessions.jsonl"));
    assert_eq!(failures(&examples), Vec::<String>::new());
    assert_eq!(failures(&sessions), Vec::<String>::new());
    totals.add(&examples);
    totals.add(&sessions);
    assert_eq!(totals.to_string(), "43 passed, 0 failed");
}

#[test]
fn shared_examples_fail_only_where_they_contradict_the_spec() {
    let results = evaluate_jsonl(&shared("examples.jsonl"));
    assert_eq!(results.len(), 40);
    assert_eq!(
        failures(&results),
        vec![r#"case 19: warnings: missing [], unexpected ["run_not_triplet"]"#.to_owned()]
    );
}

#[test]
fn corrected_copy_differs_from_shared_only_in_the_documented_cases() {
    let shared = shared("examples.jsonl");
    let copy = corrected("examples.jsonl");
    let (a, b): (Vec<&str>, Vec<&str>) = (shared.lines().collect(), copy.lines().collect());
    assert_eq!(a.len(), b.len());
    for (sa, sb) in a.iter().zip(&b) {
        let va: serde_json::Value = serde_json::from_str(sa).unwrap();
        let mut vb: serde_json::Value = serde_json::from_str(sb).unwrap();
        let id = va["id"].as_u64().unwrap();
        if CORRECTED_CASES.contains(&id) {
            assert!(
                vb["correction"]
                    .as_str()
                    .is_some_and(|c| c.contains("rule P4")),
                "case {id} must explain itself"
            );
            vb.as_object_mut().unwrap().remove("correction");
            vb["expect"]["warnings"] = serde_json::json!(["repair:4->3"]);
        }
        assert_eq!(va, vb, "case {id}");
    }
}
