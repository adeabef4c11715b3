use perio::fixtures::{Totals, evaluate_jsonl};

fn shared(name: &str) -> String {
    let path = format!("{}/../../../shared/perio/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn shared_fixtures() {
    let mut totals = Totals::default();
    for name in ["examples.jsonl", "sessions.jsonl"] {
        let results = evaluate_jsonl(&shared(name));
        for r in &results {
            if !r.passed() {
                println!("{name}: {r}");
            }
        }
        totals.add(&results);
    }
    println!("{totals}");
    assert_eq!(totals.failed, 0);
}
