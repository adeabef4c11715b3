//! Audit verification benchmark: `cargo run --release -p audit --example bench`.
//!
//! Builds 1,000,000 synthetic events of one practice (ids and action names only, no patient
//! data), sequences them (canonical encoding, chain hash, leaf hash, tree update, every completed
//! node kept in a `HashMap` as the server keeps `audit_node`), then on one thread times
//! * `verify` over the whole log with a signed checkpoint every 100,000 events (events/s);
//! * the same-run baselines: one raw SHA-256 of each event's canonical bytes, and the
//!   canonical encoding alone — so the figure reads as a ratio on any machine;
//! * building + verifying one inclusion proof and one consistency proof from the stored
//!   nodes of the 1M-event tree (median of many, each including the `nodes_needed_*` list,
//!   the lookups and the RFC 9162 verification).
//!
//! Target (issue): ≥ 500,000 events/s verified.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use audit::chain::{GENESIS, Hash, chain_hash};
use audit::checkpoint::{Checkpoint, origin};
use audit::event::{Event, canonical, encode_into};
use audit::merkle::{
    TreeBuilder, consistency_proof_from, inclusion_proof_from, leaf_hash,
    nodes_needed_for_consistency, nodes_needed_for_inclusion, verify_consistency, verify_inclusion,
};
use audit::verify::{StoredEvent, VerifyStart, verify};
use chrono::{TimeZone, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const EVENTS: u64 = 1_000_000;
const CHECKPOINT_EVERY: u64 = 100_000;

const ACTIONS: [&str; 5] = [
    "patient.read",
    "note.read",
    "note.create",
    "appointment.list",
    "practice.read",
];

fn synthetic(practice: Uuid, seq: u64) -> Event {
    let n = u128::from(seq);
    let micros = 1_714_979_289_123_456 + i64::try_from(seq).unwrap_or(0) * 1_000;
    Event {
        practice_id: practice,
        seq,
        event_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n),
        occurred_at: Utc.timestamp_micros(micros).single().unwrap_or_default(),
        actor_id: Some(Uuid::from_u128(0xa000 + n % 17)),
        patient_id: Some(Uuid::from_u128(0xb000 + n % 1_009)),
        action: ACTIONS
            .get(usize::try_from(seq % 5).unwrap_or(0))
            .copied()
            .unwrap_or("patient.read")
            .to_owned(),
        outcome: "success".to_owned(),
        object_type: Some("note".to_owned()),
        object_id: Some(Uuid::from_u128(0xc000 + n)),
        request_id: Some(Uuid::from_u128(0xd000 + n)),
        details: if seq.is_multiple_of(10) {
            vec![("mfa".to_owned(), "totp".to_owned())]
        } else {
            Vec::new()
        },
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// A small deterministic generator for proof positions (no OS randomness needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) % bound
    }
}

type BoxError = Box<dyn std::error::Error>;

/// What the sequencer leaves behind: the log, every stored node, the signed tree heads.
struct World {
    practice: Uuid,
    origin: String,
    log: Vec<StoredEvent>,
    nodes: HashMap<(u8, u64), Hash>,
    checkpoints: Vec<Checkpoint>,
    root: Hash,
}

fn main() -> Result<(), BoxError> {
    let world = sequence()?;
    verify_throughput(&world)?;
    proofs(&world)
}

fn sequence() -> Result<World, BoxError> {
    let practice = Uuid::from_u128(0x0190_a0c4_7c9f_7d9a_9a3e_4b1c_2d3e_4f50);
    let log_origin = origin("bench.example/chartroom/audit", practice);
    let started = Instant::now();
    let mut chain = GENESIS;
    let mut tree = TreeBuilder::new();
    let mut nodes: HashMap<(u8, u64), Hash> = HashMap::with_capacity(2 * 1_048_576);
    let mut log = Vec::with_capacity(1_000_000);
    let mut checkpoints = Vec::new();
    for seq in 0..EVENTS {
        let event = synthetic(practice, seq);
        let bytes = canonical(&event)?;
        chain = chain_hash(&chain, &bytes);
        let leaf = leaf_hash(&bytes);
        nodes.insert((0, seq), leaf);
        tree.push_with(leaf, |level, index, hash| {
            nodes.insert((level, index), *hash);
        })?;
        log.push(StoredEvent {
            event,
            chain_hash: chain,
            leaf_hash: leaf,
        });
        if tree.size().is_multiple_of(CHECKPOINT_EVERY) {
            checkpoints.push(
                Checkpoint::new(&log_origin, tree.size(), tree.root()).with_chain_head(&chain),
            );
        }
    }
    let sequence_time = started.elapsed();
    let root_1m = tree.root();
    println!(
        "sequenced {EVENTS} events in {:.2?} ({:.0} events/s, building events included); {} stored nodes",
        sequence_time,
        rate(EVENTS, sequence_time),
        nodes.len()
    );
    Ok(World {
        practice,
        origin: log_origin,
        log,
        nodes,
        checkpoints,
        root: root_1m,
    })
}

fn verify_throughput(world: &World) -> Result<(), BoxError> {
    let World {
        practice,
        origin: log_origin,
        log,
        checkpoints,
        root: root_1m,
        ..
    } = world;
    // Baselines: the canonical bytes alone, and one SHA-256 over them.
    let encoded: Vec<Vec<u8>> = log
        .iter()
        .map(|s| canonical(&s.event))
        .collect::<Result<_, _>>()?;
    let avg_len = encoded.iter().map(Vec::len).sum::<usize>() / encoded.len().max(1);
    let mut encode_runs = Vec::new();
    let mut sha_runs = Vec::new();
    let mut verify_runs = Vec::new();
    let mut buf = Vec::with_capacity(512);
    for _ in 0..5 {
        let t = Instant::now();
        for s in log {
            buf.clear();
            encode_into(&s.event, &mut buf)?;
            black_box(&buf);
        }
        encode_runs.push(t.elapsed());

        let t = Instant::now();
        for bytes in &encoded {
            black_box(Sha256::digest(bytes));
        }
        sha_runs.push(t.elapsed());

        let t = Instant::now();
        let report = verify(
            *practice,
            log_origin,
            &VerifyStart::genesis(),
            log.iter().map(Ok::<_, std::convert::Infallible>),
            checkpoints,
        );
        verify_runs.push(t.elapsed());
        if !report.is_ok() || report.root != *root_1m {
            return Err(format!("verification failed: {report}").into());
        }
    }
    let (encode_t, sha_t, verify_t) = (median(encode_runs), median(sha_runs), median(verify_runs));
    let sha_mb_s = rate(EVENTS * avg_len as u64, sha_t) / 1e6;
    println!("canonical bytes per event (average): {avg_len}");
    println!(
        "baseline, canonical encoding only:   {:>8.2?}  {:>10.0} events/s",
        encode_t,
        rate(EVENTS, encode_t)
    );
    println!(
        "baseline, one SHA-256 per event:     {:>8.2?}  {:>10.0} events/s  ({sha_mb_s:.0} MB/s)",
        sha_t,
        rate(EVENTS, sha_t)
    );
    println!(
        "verify (encode, leaf, chain, tree, {} checkpoints): {:>8.2?}  {:>10.0} events/s  = {:.2}x one SHA-256 per event (median of 5)",
        checkpoints.len(),
        verify_t,
        rate(EVENTS, verify_t),
        verify_t.as_secs_f64() / sha_t.as_secs_f64()
    );
    Ok(())
}

fn proofs(world: &World) -> Result<(), BoxError> {
    let World {
        nodes,
        checkpoints,
        root: root_1m,
        ..
    } = world;
    let mut lcg = Lcg(0x5eed);
    let mut inclusion_runs = Vec::new();
    let mut lookups = 0;
    for _ in 0..2_001 {
        let index = lcg.next(EVENTS);
        let t = Instant::now();
        let needed = nodes_needed_for_inclusion(index, EVENTS);
        let fetched: HashMap<(u8, u64), Hash> = needed
            .iter()
            .filter_map(|k| nodes.get(k).map(|h| (*k, *h)))
            .collect();
        let proof = inclusion_proof_from(&fetched, index, EVENTS)?;
        let leaf = nodes.get(&(0, index)).copied().unwrap_or_default();
        verify_inclusion(&leaf, index, EVENTS, &proof, root_1m)?;
        inclusion_runs.push(t.elapsed());
        lookups = needed.len();
    }
    println!(
        "inclusion proof, 1M-event tree: build + verify {:.2?} (median of 2001; ~{lookups} node lookups)",
        median(inclusion_runs)
    );

    let mut consistency_runs = Vec::new();
    let roots: HashMap<u64, Hash> = checkpoints.iter().map(|c| (c.size, c.root)).collect();
    for _ in 0..2_001 {
        let first = CHECKPOINT_EVERY * (1 + lcg.next(EVENTS / CHECKPOINT_EVERY - 1));
        let first_root = roots.get(&first).copied().unwrap_or_default();
        let t = Instant::now();
        let needed = nodes_needed_for_consistency(first, EVENTS);
        let fetched: HashMap<(u8, u64), Hash> = needed
            .iter()
            .filter_map(|k| nodes.get(k).map(|h| (*k, *h)))
            .collect();
        let proof = consistency_proof_from(&fetched, first, EVENTS)?;
        verify_consistency(first, EVENTS, &first_root, root_1m, &proof)?;
        consistency_runs.push(t.elapsed());
        lookups = needed.len();
    }
    println!(
        "consistency proof, checkpoint → 1M: build + verify {:.2?} (median of 2001; ~{lookups} node lookups)",
        median(consistency_runs)
    );
    let t = Instant::now();
    for _ in 0..10_000 {
        black_box(Sha256::digest(black_box(&[0u8; 65])));
    }
    println!(
        "baseline, one 65-byte SHA-256 (a node hash): {:.2?}",
        t.elapsed() / 10_000
    );
    Ok(())
}

#[expect(clippy::cast_precision_loss, reason = "figures for display")]
fn rate(n: u64, t: Duration) -> f64 {
    n as f64 / t.as_secs_f64()
}
