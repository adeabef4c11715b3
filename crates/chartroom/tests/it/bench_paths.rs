//! The product crates keep production paths only: benchmark baselines are raw SQL in the
//! harness (`crates/testkit/src/bin/bench_baseline`), and its measured paths call the public
//! API.

use std::path::Path;

use crate::util::source_files;

// issue 15.4: no benchmark function, no unchecked tenant entry and no unauthenticated route
// in `store` or `server` (the old `bench_note_save(full = false)` wrote plaintext into
// `content_enc` without an audit event).
#[test]
fn store_and_server_have_no_benchmark_paths() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in ["store", "server"] {
        source_files(&crates.join(krate).join("src"), &["rs"], &mut files);
    }
    assert!(files.len() > 10, "sources not found: {files:?}");
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let bench_fn = code.match_indices("fn ").any(|(at, _)| {
                code[at + 3..]
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .is_some_and(|name| name.to_ascii_lowercase().contains("bench"))
            });
            if bench_fn || code.contains("begin_unchecked") || code.contains("/bench/") {
                found.push(format!("{}:{}: {code}", f.display(), i + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "benchmark paths in the product:\n{}",
        found.join("\n")
    );
}
