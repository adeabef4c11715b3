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

// issue 16.4 — the load benchmark's driver, briefly, against the real binary: every kind of
// request in the mix is sent and answered as expected (no errors), the server's memory is
// read, it stops cleanly and the audit log it wrote verifies. (Its figures come from
// `chartroom-bench load`, minutes per phase; this only proves the driver and the mix work.)
#[tokio::test]
async fn the_load_driver_runs_its_whole_mix_against_the_real_binary_without_errors() {
    let report = testkit::load::run(&testkit::load::LoadOptions {
        server: env!("CARGO_BIN_EXE_chartroom").into(),
        clients: vec![8],
        duration: std::time::Duration::from_secs(6),
        // No warm-up: a clinician creates a perio exam only at its eighth step and then after
        // every 48 finals, so with a warm-up a fast machine creates its exams before the
        // measured phase and a slow one may not reach the next within it. Measured from the
        // first step, every kind of the mix is sent within the phase whatever the speed.
        warmup: std::time::Duration::ZERO,
        patients: 12,
        window: std::time::Duration::from_secs(2),
    })
    .await
    .unwrap();
    println!("{report}");
    let phase = &report.phases[0];
    assert_eq!(phase.overall.errors, 0, "{:?}", phase.error_samples);
    let sent: Vec<testkit::load::Kind> = phase.kinds.iter().map(|(k, _)| *k).collect();
    for kind in [
        testkit::load::Kind::ScheduleDay,
        testkit::load::Kind::ScheduleWeek,
        testkit::load::Kind::SearchName,
        testkit::load::Kind::SearchDob,
        testkit::load::Kind::PatientRead,
        testkit::load::Kind::Book,
        testkit::load::Kind::Cancel,
        testkit::load::Kind::NoteRead,
        testkit::load::Kind::NoteList,
        testkit::load::Kind::NoteSave,
        testkit::load::Kind::PerioExam,
        testkit::load::Kind::PerioFinal,
        testkit::load::Kind::AuditReport,
    ] {
        assert!(sent.contains(&kind), "{} never sent: {sent:?}", kind.name());
    }
    assert!(phase.rss_start_kib > 0 && phase.rss_end_kib > 0);
    assert_eq!(phase.windows.len(), 3);
    assert!(report.clean_stop, "the server did not stop cleanly");
    assert!(
        report.audit_verified,
        "audit verify: {}",
        report.audit_verify_output
    );
}
