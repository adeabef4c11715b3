//! The SPEC fixtures (`shared/perio/*.jsonl`) run through `perio::fixtures`, as they are.

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

fn failures(results: &[CaseResult]) -> Vec<String> {
    results
        .iter()
        .filter(|r| !r.passed())
        .map(ToString::to_string)
        .collect()
}

#[test]
fn all_shared_fixtures_pass() {
    let mut totals = Totals::default();
    let examples = evaluate_jsonl(&shared("examples.jsonl"));
    let sessions = evaluate_jsonl(&shared("sessions.jsonl"));
    assert_eq!(failures(&examples), Vec::<String>::new());
    assert_eq!(failures(&sessions), Vec::<String>::new());
    totals.add(&examples);
    totals.add(&sessions);
    assert_eq!(totals.to_string(), "43 passed, 0 failed");
}

/// SPEC rule P4: a run whose length is not a multiple of 3 that started at a tooth's first
/// site carries `run_not_triplet`; a fixture that leaves the warning out fails on it.
#[test]
fn a_case_without_the_p4_warning_fails_on_exactly_that_warning() {
    let examples = shared("examples.jsonl");
    let case19 = examples
        .lines()
        .find(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"] == 19)
        .expect("case 19");
    let mut case: serde_json::Value = serde_json::from_str(case19).unwrap();
    assert_eq!(
        case["expect"]["warnings"],
        serde_json::json!(["repair:4->3", "run_not_triplet"])
    );
    case["expect"]["warnings"] = serde_json::json!(["repair:4->3"]);
    let results = evaluate_jsonl(&case.to_string());
    assert_eq!(
        failures(&results),
        vec![r#"case 19: warnings: missing [], unexpected ["run_not_triplet"]"#.to_owned()]
    );
}
