//! Mutation tests: build a valid sequenced log in memory, tamper with it the way a database
//! superuser with triggers disabled could, and check that `verify` names the right first
//! sequence number and the right kind of problem.

use audit::chain::GENESIS;
use audit::checkpoint::{Checkpoint, origin};
use audit::merkle::{nodes_needed_for_root, root};
use audit::verify::{
    Problem, ProblemKind, StoredEvent, VerifyStart, checkpoints_consistent, verify,
};
use proptest::prelude::*;

use crate::support::{
    PREFIX, SequencedLog, event, log_origin, other_practice, practice, rehash, run, sequence,
    sequenced,
};

/// A 40-event log with checkpoints signed at 10, 20 and 32.
fn world() -> (SequencedLog, Vec<Checkpoint>) {
    let s = sequenced(40);
    let cps = vec![s.checkpoint(10), s.checkpoint(20), s.checkpoint(32)];
    (s, cps)
}

fn problem(log: &[StoredEvent], cps: &[Checkpoint]) -> Problem {
    let report = run(log, cps);
    let shown = report.to_string();
    report
        .problem
        .unwrap_or_else(|| panic!("no problem found: {shown}"))
}

fn p(seq: u64, kind: ProblemKind) -> Problem {
    Problem { seq, kind }
}

#[test]
fn intact_log_verifies() {
    let (s, cps) = world();
    let report = run(&s.log, &cps);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.events_checked, 40);
    assert_eq!(report.tree_size, 40);
    assert_eq!(report.root, root(&s.leaves()));
    assert_eq!(report.chain_head, s.chains[39]);
    assert_eq!(report.checkpoints_matched, 3);
    assert_eq!(report.largest_checkpoint, Some(32));
    // Checkpoint order does not matter; a checkpoint at the very end is fine.
    let mut shuffled = cps.clone();
    shuffled.reverse();
    shuffled.push(s.checkpoint(40));
    assert!(run(&s.log, &shuffled).is_ok());
}

#[test]
fn empty_log_verifies() {
    let s = sequenced(0);
    let report = run(&s.log, &[s.checkpoint(0)]);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.root, audit::merkle::EMPTY_ROOT);
    assert_eq!(report.chain_head, GENESIS);
}

// req: AUD-02 — tamper: event changed
#[test]
fn changed_event_is_content_changed() {
    let (mut s, cps) = world();
    s.log[5].event.action = "patient.update".to_owned();
    assert_eq!(problem(&s.log, &cps), p(5, ProblemKind::ContentChanged));
    let report = run(&s.log, &cps);
    assert_eq!(report.events_checked, 5);
    assert_eq!(report.tree_size, 5);
}

#[test]
fn changed_event_after_last_checkpoint_is_content_changed() {
    let (mut s, cps) = world();
    s.log[37].event.patient_id = None;
    assert_eq!(problem(&s.log, &cps), p(37, ProblemKind::ContentChanged));
}

#[test]
fn changed_stored_leaf_hash_is_content_changed() {
    let (mut s, cps) = world();
    s.log[7].leaf_hash[0] ^= 1;
    assert_eq!(problem(&s.log, &cps), p(7, ProblemKind::ContentChanged));
}

#[test]
fn changed_stored_chain_hash_is_chain_break() {
    let (mut s, cps) = world();
    s.log[7].chain_hash[31] ^= 1;
    assert_eq!(problem(&s.log, &cps), p(7, ProblemKind::ChainBreak));
}

#[test]
fn changed_event_with_its_own_hashes_recomputed_breaks_the_chain_after_it() {
    let (mut s, cps) = world();
    s.log[5].event.actor_id = None;
    let prev = s.chains[4];
    let bytes = audit::event::canonical(&s.log[5].event).unwrap();
    s.log[5].leaf_hash = audit::merkle::leaf_hash(&bytes);
    s.log[5].chain_hash = audit::chain::chain_hash(&prev, &bytes);
    assert_eq!(problem(&s.log, &cps), p(6, ProblemKind::ChainBreak));
}

#[test]
fn changed_event_with_every_hash_recomputed_is_caught_by_the_checkpoint() {
    let (mut s, cps) = world();
    s.log[15].event.actor_id = None;
    rehash(&mut s.log);
    // Internally consistent again; the signed root at 20 disagrees; 10 still matched.
    assert_eq!(
        problem(&s.log, &cps),
        p(10, ProblemKind::CheckpointRootMismatch { size: 20 })
    );
    s.log[3].event.actor_id = None;
    rehash(&mut s.log);
    assert_eq!(
        problem(&s.log, &cps),
        p(0, ProblemKind::CheckpointRootMismatch { size: 10 })
    );
}

/// The documented limit: after the last checkpoint, a superuser who recomputes every hash
/// is not detected until the next checkpoint is signed. This test pins the limit so that a
/// change in it is noticed.
#[test]
fn tamper_after_the_last_checkpoint_with_hashes_recomputed_is_undetectable() {
    let (mut s, cps) = world();
    s.log[35].event.actor_id = None;
    rehash(&mut s.log);
    assert!(run(&s.log, &cps).is_ok());
}

// req: AUD-02 — tamper: event deleted
#[test]
fn deleted_event_is_a_gap() {
    let (mut s, cps) = world();
    s.log.remove(5);
    assert_eq!(problem(&s.log, &cps), p(5, ProblemKind::Gap { found: 6 }));
    s.log.drain(5..9);
    assert_eq!(problem(&s.log, &cps), p(5, ProblemKind::Gap { found: 10 }));
}

#[test]
fn deleted_first_event_is_a_gap_at_zero() {
    let (mut s, cps) = world();
    s.log.remove(0);
    assert_eq!(problem(&s.log, &cps), p(0, ProblemKind::Gap { found: 1 }));
}

#[test]
fn deleted_event_with_sequence_renumbered_is_a_chain_break() {
    let (mut s, cps) = world();
    s.log.remove(5);
    for (i, stored) in s.log.iter_mut().enumerate() {
        stored.event.seq = i as u64;
    }
    assert_eq!(problem(&s.log, &cps), p(5, ProblemKind::ChainBreak));
}

#[test]
fn deleted_event_with_everything_recomputed_is_caught_by_the_checkpoint() {
    let (mut s, cps) = world();
    s.log.remove(5);
    for (i, stored) in s.log.iter_mut().enumerate() {
        stored.event.seq = i as u64;
    }
    rehash(&mut s.log);
    assert_eq!(
        problem(&s.log, &cps),
        p(0, ProblemKind::CheckpointRootMismatch { size: 10 })
    );
}

// req: AUD-02 — tamper: event inserted
#[test]
fn inserted_event_with_a_used_seq_is_a_duplicate() {
    let (mut s, cps) = world();
    let mut forged = s.log[5].clone();
    forged.event.event_id = uuid::Uuid::from_u128(0xdead);
    s.log.insert(6, forged);
    assert_eq!(problem(&s.log, &cps), p(5, ProblemKind::Duplicate));
}

#[test]
fn repeated_row_is_a_duplicate() {
    let (mut s, cps) = world();
    let copy = s.log[12].clone();
    s.log.insert(13, copy);
    assert_eq!(problem(&s.log, &cps), p(12, ProblemKind::Duplicate));
}

#[test]
fn inserted_event_with_correct_hashes_and_renumbering_breaks_the_chain_after_it() {
    let (mut s, cps) = world();
    let mut forged = event(practice(), 5);
    forged.event_id = uuid::Uuid::from_u128(0xbad);
    forged.action = "note.read".to_owned();
    let bytes = audit::event::canonical(&forged).unwrap();
    let chain = audit::chain::chain_hash(&s.chains[4], &bytes);
    let leaf = audit::merkle::leaf_hash(&bytes);
    s.log.insert(
        5,
        StoredEvent {
            event: forged,
            chain_hash: chain,
            leaf_hash: leaf,
        },
    );
    for (i, stored) in s.log.iter_mut().enumerate() {
        stored.event.seq = i as u64;
    }
    assert_eq!(problem(&s.log, &cps), p(6, ProblemKind::ChainBreak));
}

#[test]
fn inserted_event_with_everything_recomputed_is_caught_by_the_checkpoint() {
    let (mut s, cps) = world();
    let mut forged = event(practice(), 25);
    forged.event_id = uuid::Uuid::from_u128(0xbad);
    let at = 25;
    s.log.insert(
        at,
        StoredEvent {
            event: forged,
            chain_hash: [0; 32],
            leaf_hash: [0; 32],
        },
    );
    for (i, stored) in s.log.iter_mut().enumerate() {
        stored.event.seq = i as u64;
    }
    rehash(&mut s.log);
    assert_eq!(
        problem(&s.log, &cps),
        p(20, ProblemKind::CheckpointRootMismatch { size: 32 })
    );
}

#[test]
fn event_of_another_practice_is_reported() {
    let (mut s, cps) = world();
    let foreign = sequence((0..10).map(|seq| event(other_practice(), seq)).collect());
    s.log[5] = foreign.log[5].clone();
    assert_eq!(
        problem(&s.log, &cps),
        p(
            5,
            ProblemKind::OtherPractice {
                found: other_practice()
            }
        )
    );
}

// req: AUD-02 — tamper: events reordered
#[test]
fn swapped_events_with_seq_swapped_too_is_a_chain_break() {
    let (mut s, cps) = world();
    s.log.swap(5, 6);
    s.log[5].event.seq = 5;
    s.log[6].event.seq = 6;
    assert_eq!(problem(&s.log, &cps), p(5, ProblemKind::ChainBreak));
}

#[test]
fn rows_delivered_out_of_order_are_out_of_order() {
    let (mut s, cps) = world();
    s.log.swap(5, 6);
    assert_eq!(
        problem(&s.log, &cps),
        p(5, ProblemKind::OutOfOrder { found: 6 })
    );
}

#[test]
fn event_moved_backwards_is_out_of_order() {
    let (mut s, cps) = world();
    let moved = s.log.remove(2);
    s.log.insert(9, moved);
    // 0 1 3 4 … : at 2 comes 3, followed by 4 — looks like a gap until 2 shows up later;
    // a streaming verifier reports the first anomaly it can name.
    assert_eq!(problem(&s.log, &cps), p(2, ProblemKind::Gap { found: 3 }));
    let (mut s, cps) = world();
    let moved = s.log.remove(9);
    s.log.insert(2, moved);
    // 0 1 9 2 …: the following seq is smaller, so this is a shuffle, not a deletion.
    assert_eq!(
        problem(&s.log, &cps),
        p(2, ProblemKind::OutOfOrder { found: 9 })
    );
}

#[test]
fn reordered_with_everything_recomputed_is_caught_by_the_checkpoint() {
    let (mut s, cps) = world();
    s.log.swap(21, 27);
    for (i, stored) in s.log.iter_mut().enumerate() {
        stored.event.seq = i as u64;
    }
    rehash(&mut s.log);
    assert_eq!(
        problem(&s.log, &cps),
        p(20, ProblemKind::CheckpointRootMismatch { size: 32 })
    );
}

// req: AUD-02 — tamper: tail truncated
#[test]
fn truncated_tail_is_reported_against_the_largest_checkpoint() {
    let (mut s, cps) = world();
    s.log.truncate(25);
    assert_eq!(
        problem(&s.log, &cps),
        p(
            25,
            ProblemKind::Truncated {
                checkpoint_size: 32
            }
        )
    );
    let report = run(&s.log, &cps);
    assert_eq!(report.events_checked, 25);
    assert_eq!(report.checkpoints_matched, 2);
}

#[test]
fn truncation_back_to_an_earlier_consistent_state_is_reported() {
    // What is left matches the checkpoints at 10 and 20 exactly; only the signed
    // checkpoint at 32, kept outside the database, shows that the log was longer.
    let (mut s, cps) = world();
    s.log.truncate(20);
    assert_eq!(
        problem(&s.log, &cps),
        p(
            20,
            ProblemKind::Truncated {
                checkpoint_size: 32
            }
        )
    );
    s.log.clear();
    assert_eq!(
        problem(&s.log, &cps),
        p(
            0,
            ProblemKind::Truncated {
                checkpoint_size: 32
            }
        )
    );
}

#[test]
fn truncation_then_new_history_is_a_root_mismatch() {
    // Cut back to 20 and write a different history in its place, all hashes recomputed.
    let (s, cps) = world();
    let mut events: Vec<_> = s.log[..20].iter().map(|x| x.event.clone()).collect();
    for seq in 20..40 {
        let mut e = event(practice(), seq);
        e.event_id = uuid::Uuid::from_u128(0xf00 + u128::from(seq));
        events.push(e);
    }
    let forged = sequence(events);
    assert_eq!(
        problem(&forged.log, &cps),
        p(20, ProblemKind::CheckpointRootMismatch { size: 32 })
    );
}

// req: AUD-02 — tamper: checkpoints not consistent with each other
#[test]
fn checkpoints_of_two_histories_are_inconsistent() {
    let (s, mut cps) = world();
    let mut events: Vec<_> = s.log.iter().map(|x| x.event.clone()).collect();
    events[3].actor_id = None;
    let fork = sequence(events);
    cps[0] = fork.checkpoint(10);
    assert_eq!(
        problem(&s.log, &cps),
        p(
            10,
            ProblemKind::CheckpointsInconsistent {
                first: 10,
                second: 20
            }
        )
    );
}

#[test]
fn two_checkpoints_of_one_size_with_different_roots_are_inconsistent() {
    let (s, mut cps) = world();
    let mut events: Vec<_> = s.log.iter().map(|x| x.event.clone()).collect();
    events[3].actor_id = None;
    cps.push(sequence(events).checkpoint(20));
    assert_eq!(
        problem(&s.log, &cps),
        p(
            20,
            ProblemKind::CheckpointsInconsistent {
                first: 20,
                second: 20
            }
        )
    );
    // The same checkpoint twice is fine.
    let (s, mut cps) = world();
    cps.push(cps[1].clone());
    assert!(run(&s.log, &cps).is_ok());
}

#[test]
fn checkpoint_of_another_practice_is_refused() {
    let (s, mut cps) = world();
    cps[1].origin = origin(PREFIX, other_practice());
    assert_eq!(
        problem(&s.log, &cps),
        p(
            0,
            ProblemKind::CheckpointOrigin {
                size: 20,
                origin: cps[1].origin.clone()
            }
        )
    );
}

#[test]
fn wrong_chain_head_in_a_checkpoint_is_reported() {
    let (s, mut cps) = world();
    cps[1] = Checkpoint::new(log_origin(), 20, cps[1].root).with_chain_head(&s.chains[18]);
    assert_eq!(
        problem(&s.log, &cps),
        p(10, ProblemKind::CheckpointChainMismatch { size: 20 })
    );
}

#[test]
fn checkpoint_of_size_zero_must_have_the_empty_root() {
    let (s, mut cps) = world();
    cps.push(Checkpoint::new(log_origin(), 0, [1; 32]));
    assert_eq!(
        problem(&s.log, &cps),
        p(0, ProblemKind::CheckpointRootMismatch { size: 0 })
    );
}

#[test]
fn unencodable_event_is_reported() {
    let (mut s, cps) = world();
    s.log[4].event.details = vec![("a".into(), "1".into()), ("a".into(), "2".into())];
    let got = problem(&s.log, &cps);
    assert_eq!(got.seq, 4);
    assert!(
        matches!(got.kind, ProblemKind::Unencodable { .. }),
        "{got:?}"
    );
}

#[test]
fn read_errors_are_reported_at_their_position() {
    let (s, cps) = world();
    let events = s
        .log
        .iter()
        .take(8)
        .map(Ok)
        .chain(std::iter::once(Err("connection reset")));
    let report = verify(
        practice(),
        &log_origin(),
        &VerifyStart::genesis(),
        events,
        &cps,
    );
    assert_eq!(
        report.problem,
        Some(p(
            8,
            ProblemKind::ReadFailed {
                error: "connection reset".to_owned()
            }
        ))
    );
}

/// After a retention prune at 16: the chain continues from the chain hash at 15 and the
/// tree from its right edge at 16, both vouched for by the checkpoint of size 16.
fn pruned_start(s: &SequencedLog) -> VerifyStart {
    VerifyStart {
        seq: 16,
        prev_chain: s.chains[15],
        right_edge: nodes_needed_for_root(16)
            .iter()
            .map(|k| s.nodes[k])
            .collect(),
    }
}

#[test]
fn verification_after_a_prune_starts_from_the_vouched_point() {
    let s = sequenced(40);
    let cps = vec![s.checkpoint(10), s.checkpoint(16), s.checkpoint(32)];
    let start = pruned_start(&s);
    let events = s.log[16..].iter().map(Ok::<_, std::convert::Infallible>);
    let report = verify(practice(), &log_origin(), &start, events, &cps);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.events_checked, 24);
    assert_eq!(report.root, root(&s.leaves()));
    assert_eq!(report.checkpoints_matched, 2);
}

#[test]
fn unvouched_prune_point_is_reported() {
    let s = sequenced(40);
    let cps = vec![s.checkpoint(16), s.checkpoint(32)];
    let run_from = |start: &VerifyStart, cps: &[Checkpoint]| {
        let events = s.log[16..].iter().map(Ok::<_, std::convert::Infallible>);
        verify(practice(), &log_origin(), start, events, cps).problem
    };
    // A forged chain hash at the prune point.
    let mut start = pruned_start(&s);
    start.prev_chain[0] ^= 1;
    assert_eq!(
        run_from(&start, &cps),
        Some(p(16, ProblemKind::StartNotVouched))
    );
    // A forged right edge.
    let mut start = pruned_start(&s);
    start.right_edge[0][0] ^= 1;
    assert_eq!(
        run_from(&start, &cps),
        Some(p(16, ProblemKind::StartNotVouched))
    );
    // No checkpoint at the prune point.
    assert_eq!(
        run_from(&pruned_start(&s), &cps[1..]),
        Some(p(16, ProblemKind::StartNotVouched))
    );
    // A malformed edge.
    let mut start = pruned_start(&s);
    start.right_edge.push([0; 32]);
    assert_eq!(
        run_from(&start, &cps),
        Some(p(16, ProblemKind::StartNotVouched))
    );
    // Genesis must really be genesis.
    let bad = VerifyStart {
        seq: 0,
        prev_chain: [0; 32],
        right_edge: vec![],
    };
    assert!(matches!(
        run_from(&bad, &cps).map(|x| x.kind),
        Some(ProblemKind::BadStart { .. })
    ));
}

#[test]
fn checkpoints_consistent_from_stored_nodes() {
    let s = sequenced(40);
    let cps = vec![
        s.checkpoint(32),
        s.checkpoint(10),
        s.checkpoint(16),
        s.checkpoint(40),
    ];
    checkpoints_consistent(&cps, &s.nodes).unwrap();
    let mut events: Vec<_> = s.log.iter().map(|x| x.event.clone()).collect();
    events[3].actor_id = None;
    let fork = sequence(events);
    let cps = vec![fork.checkpoint(10), s.checkpoint(16)];
    let (a, b, _) = checkpoints_consistent(&cps, &s.nodes).unwrap_err();
    assert_eq!((a, b), (10, 16));
}

#[test]
fn problems_read_as_plain_language() {
    let cases = [
        (
            p(5, ProblemKind::ContentChanged),
            "event 5: content changed — it no longer matches the hash recorded for it",
        ),
        (
            p(5, ProblemKind::Gap { found: 8 }),
            "events 5 to 7 are missing (deleted): the next event found is 8",
        ),
        (
            p(5, ProblemKind::Duplicate),
            "event 5 appears twice: an event was inserted with a sequence number already in use",
        ),
        (
            p(5, ProblemKind::OutOfOrder { found: 9 }),
            "event 9 came where event 5 was expected: events are out of order (reordered or inserted)",
        ),
        (
            p(5, ProblemKind::ChainBreak),
            "chain break at event 5: it does not follow the event before it — an event was inserted, deleted or moved just before 5 and the sequence renumbered",
        ),
        (
            p(10, ProblemKind::CheckpointRootMismatch { size: 20 }),
            "checkpoint root mismatch at size 20: events 10 to 19 are not the events that were signed — changed, inserted, deleted or reordered, with the stored hashes recomputed",
        ),
        (
            p(
                25,
                ProblemKind::Truncated {
                    checkpoint_size: 32,
                },
            ),
            "log truncated: it ends at event 24, but a signed checkpoint covers 32 events — events 25 to 31 were removed",
        ),
        (
            p(
                0,
                ProblemKind::Truncated {
                    checkpoint_size: 32,
                },
            ),
            "log truncated: it ends at event (none), but a signed checkpoint covers 32 events — events 0 to 31 were removed",
        ),
        (
            p(
                10,
                ProblemKind::CheckpointsInconsistent {
                    first: 10,
                    second: 20,
                },
            ),
            "signed checkpoints of sizes 10 and 20 are not consistent with each other: they describe different histories (forked log or misused signing key)",
        ),
        (
            p(16, ProblemKind::StartNotVouched),
            "verification starts at event 16 (after a retention prune), but no signed checkpoint of size 16 vouches for the chain and tree at that point",
        ),
    ];
    for (problem, text) in cases {
        assert_eq!(problem.to_string(), text);
    }
    let (mut s, cps) = world();
    s.log.truncate(25);
    let report = run(&s.log, &cps).to_string();
    assert!(
        report.contains("25 events checked from 0 (tree size 25"),
        "{report}"
    );
    assert!(report.contains("FIRST PROBLEM: log truncated"), "{report}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever single event is changed, the first problem is at that event.
    #[test]
    fn any_single_change_is_found_at_its_seq(n in 1u64..120, at in any::<u64>(), field in 0u8..6) {
        let s = sequenced(n);
        let cps = vec![s.checkpoint(n / 2), s.checkpoint(n)];
        let at = at % n;
        let mut log = s.log.clone();
        let e = &mut log[usize::try_from(at).unwrap()].event;
        match field {
            0 => e.action.push('x'),
            1 => e.actor_id = Some(uuid::Uuid::from_u128(0xeeee)),
            2 => e.occurred_at += chrono::Duration::microseconds(1),
            3 => e.details.push(("zz".into(), "1".into())),
            4 => e.object_type = None.or(Some("x".into())).filter(|_| e.object_type.is_none()),
            _ => e.request_id = None.or(Some(uuid::Uuid::from_u128(1))).filter(|_| e.request_id.is_none()),
        }
        let got = run(&log, &cps).problem;
        prop_assert_eq!(got, Some(p(at, ProblemKind::ContentChanged)));
    }

    /// Whatever suffix is cut, the truncation is found at the cut.
    #[test]
    fn any_truncation_below_a_checkpoint_is_found(n in 1u64..120, cut in any::<u64>()) {
        let s = sequenced(n);
        let cps = vec![s.checkpoint(n)];
        let cut = cut % n;
        let got = run(&s.log[..usize::try_from(cut).unwrap()], &cps).problem;
        prop_assert_eq!(got, Some(p(cut, ProblemKind::Truncated { checkpoint_size: n })));
    }
}
