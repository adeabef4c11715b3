//! Issue 19, BENCHMARKS.md: the outbox throughput benchmark's driver (`chartroom-bench
//! outbox`, `testkit::outbox_bench`) runs briefly: every queued message is sent by the real
//! outbox job, the adapters-only and raw paths send the same number, and the stand-ins
//! receive exactly what the three paths sent. Its figures come from the release run.

#[tokio::test]
async fn the_outbox_benchmark_runs_all_three_paths_and_every_message_arrives() {
    let report = testkit::outbox_bench::run(testkit::outbox_bench::OutboxBenchOptions {
        messages: 60,
        clients: 20,
        rounds: 2,
    })
    .await
    .unwrap();
    println!("{report}");
    assert_eq!(report.rounds.len(), 2);
    // 60 messages at 50 a pass: two passes that send and one that finds nothing due.
    assert!(report.rounds.iter().all(|r| r.passes == 3), "{report}");
    assert_eq!(report.received, (30 * 3 * 2, 30 * 3 * 2));
    assert!(report.outbox_rate() > 0.0);
}
