//! `chartroom-bench audit-checkpoints`: what signing audit checkpoints often costs (issue 14.2).
//!
//! 8 writers spread over 8 practices register synthetic patients (each with its audit event)
//! while `serve`'s own sequencer job ([`server::jobs::sequencer`], 250 ms) runs: without a
//! checkpointer, at the former cadence (1000 events or 60 s) and at the current one (100
//! events or 5 s, with a mirror directory). Modes alternate within each round, in an order
//! that rotates from round to round; the best of each is reported, with the checkpoints
//! signed. Then the latency of one checkpoint (tree head, consistency proof against the last
//! one, signature, two durable file writes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use audit::checkpoint::Signer;
use audit::store::DirStore;
use server::checkpoint::{Checkpointer, Place};
use testkit::{TestDb, World};

use crate::{audited_writes, eight_practices, run_for};

/// How checkpoints are signed in one mode: the cadence (events, seconds) and whether a
/// mirror directory gets a copy.
type Mode = ((u64, u64), bool);

/// A checkpointer signing into fresh directories under `root`, at `cadence` (events,
/// seconds), with a mirror directory when `mirror`.
fn checkpointer(
    root: &std::path::Path,
    cadence: (u64, u64),
    mirror: bool,
) -> anyhow::Result<Checkpointer> {
    let cp = Checkpointer::new(
        Arc::new(Signer::generate("chartroom-bench")?),
        DirStore::new(root.join("checkpoints")),
        "bench/audit",
    )
    .with_cadence(cadence.0, Duration::from_secs(cadence.1));
    Ok(if mirror {
        cp.with_mirrors(vec![Place::Dir(DirStore::new(root.join("mirror")))])
    } else {
        cp
    })
}

/// Checkpoint files signed under `root` for `practices`.
fn signed(root: &std::path::Path, practices: &[(domain::PracticeId, domain::UserId)]) -> usize {
    let dir = DirStore::new(root.join("checkpoints"));
    practices
        .iter()
        .map(|(p, _)| dir.sizes(p.as_uuid()).map_or(0, |s| s.len()))
        .sum()
}

pub(crate) async fn audit_checkpoints(seconds: u64, rounds: usize) -> anyhow::Result<()> {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let practices = Arc::new(eight_practices(&db, &w).await?);
    let store = store::Store::connect_runtime(db.runtime_options().await, 16)
        .await?
        .with_keyring(db.keyring(pgcluster::DbRole::Runtime).await);
    store.sequence_pending(chrono::Utc::now()).await?;
    // Each writer enters its practice through a real session, as `POST …/patients` does.
    let mut sessions = Vec::new();
    for (p, u) in practices.iter() {
        sessions.push((*p, testkit::session_token(&store, *u).await));
    }
    let sessions = Arc::new(sessions);
    let tmp = std::env::temp_dir().join(format!(
        "chartroom-bench-cp-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let modes: [(&str, Option<Mode>); 3] = [
        ("sequencer, no checkpoints", None),
        ("1000 events / 60 s", Some(((1000, 60), false))),
        ("100 events / 5 s + mirror", Some(((100, 5), true))),
    ];
    let mut best = [(0.0_f64, 0_usize); 3];
    println!(
        "audited writes (patient create + audit event + commit), 8 writers over 8 practices, serve's sequencer every 250 ms, {seconds} s per run, {rounds} rounds"
    );
    for round in 0..rounds {
        // The order rotates from round to round, so a growing table or a busy neighbour does
        // not always fall on the same mode.
        for k in 0..modes.len() {
            let i = (round + k) % modes.len();
            let mode = modes[i].1;
            let root = tmp.join(format!("{round}-{i}"));
            let cp = mode
                .map(|(cadence, mirror)| checkpointer(&root, cadence, mirror))
                .transpose()?;
            let mut jobs = server::jobs::Jobs::new(Arc::new(domain::SystemClock));
            jobs.start(server::jobs::sequencer::Sequencer::new(
                store.clone(),
                Duration::from_millis(250),
                cp,
            ));
            let rate = run_for(
                8,
                seconds,
                audited_writes(store.clone(), Arc::clone(&sessions), 8),
            )
            .await;
            let during = signed(&root, &practices);
            jobs.stop().await;
            println!("  round {round}: {:>28} {rate:>8.0}/s", modes[i].0);
            if rate > best[i].0 {
                best[i] = (rate, during);
            }
        }
    }
    println!(
        "{:>28} {:>10} {:>8} {:>26}",
        "mode", "writes/s", "cost", "checkpoints signed in run"
    );
    let base = best[0].0;
    for ((name, _), (rate, during)) in modes.iter().zip(best) {
        println!(
            "{name:>28} {rate:>10.0} {:>7.1}% {during:>26}",
            100.0 * (1.0 - rate / base)
        );
    }

    // One checkpoint after one more event: tree head + consistency proof, signature, the file
    // in the checkpoint directory and in the mirror (each fsynced with its directory).
    let root = tmp.join("latency");
    let cp = checkpointer(&root, (1, 1), true)?;
    let p = practices[0].0;
    let write = audited_writes(store.clone(), Arc::clone(&sessions), 1);
    let mut times = Vec::new();
    for i in 0..201_u64 {
        anyhow::ensure!(write(0, i).await, "an audited write failed");
        store.sequence_practice(p, chrono::Utc::now()).await?;
        let t = Instant::now();
        cp.checkpoint(&store, p).await?;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "one checkpoint (log grew by one event; with a mirror directory): median {:?}, p95 {:?}",
        times[100], times[190]
    );
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
