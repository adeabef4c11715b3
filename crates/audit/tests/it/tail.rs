//! The tail of the log (issue 14.2): sequenced positions whose events were deleted, and the
//! rule that a checkpoint is never signed for a log that is shorter than, or inconsistent
//! with, the last signed one.
//! req: AUD-02

use audit::merkle::consistency_proof_from;
use audit::verify::{
    Encoded, NotAnExtension, Problem, ProblemKind, Sequenced as SequencedItem, Verification,
    VerifyStart, extends,
};

use crate::support::{SequencedLog, log_origin, practice, rehash, sequenced};

/// Feeds `s`'s events to a verifier in canonical form, except those in `missing`, which are
/// fed as sequenced positions without an event (what the database reader does when a
/// sequence row's event row is gone).
fn verify_with_missing(
    s: &SequencedLog,
    missing: &[u64],
    cps: &[audit::Checkpoint],
) -> Option<Problem> {
    let start = VerifyStart::genesis();
    let mut v = Verification::new(practice(), &log_origin(), &start, cps);
    for item in &s.log {
        let seq = item.event.seq;
        if missing.contains(&seq) {
            v.push_missing(seq);
            continue;
        }
        let encoding = audit::canonical(&item.event);
        v.push(&SequencedItem {
            seq,
            practice_id: item.event.practice_id,
            encoding: encoding.as_deref().map(Encoded::new),
            chain_hash: item.chain_hash,
            leaf_hash: item.leaf_hash,
        });
    }
    v.finish().problem
}

// issue 14.2: deleting the newest events (their sequence rows left) is caught without any
// checkpoint.
#[test]
fn newest_events_deleted_from_under_their_sequence_rows_are_reported() {
    let s = sequenced(12);
    assert_eq!(
        verify_with_missing(&s, &[9, 10, 11], &[]),
        Some(Problem {
            seq: 9,
            kind: ProblemKind::SequencedEventsMissing { last: 11 }
        })
    );
    assert_eq!(
        verify_with_missing(&s, &[11], &[s.checkpoint(4)]),
        Some(Problem {
            seq: 11,
            kind: ProblemKind::SequencedEventsMissing { last: 11 }
        })
    );
    // In the middle of the log the next event reports the gap, as before.
    assert_eq!(
        verify_with_missing(&s, &[5, 6], &[]),
        Some(Problem {
            seq: 5,
            kind: ProblemKind::Gap { found: 7 }
        })
    );
    assert_eq!(verify_with_missing(&s, &[], &[s.checkpoint(12)]), None);
    let shown = Problem {
        seq: 9,
        kind: ProblemKind::SequencedEventsMissing { last: 11 },
    }
    .to_string();
    assert_eq!(
        shown,
        "events 9 to 11 are sequenced but their rows are missing: the newest events were deleted"
    );
}

fn proof(s: &SequencedLog, first: u64, second: u64) -> Vec<audit::Hash> {
    consistency_proof_from(&s.nodes, first, second).unwrap()
}

// issue 14.2: the checkpointer's rule — never sign a smaller or inconsistent log.
#[test]
fn only_an_extension_of_the_signed_log_may_be_signed() {
    let s = sequenced(40);
    let signed = s.checkpoint(20);
    // Growing, or the same log again: fine.
    assert_eq!(
        extends(&signed, &s.checkpoint(33), &proof(&s, 20, 33)),
        Ok(())
    );
    assert_eq!(extends(&signed, &s.checkpoint(20), &[]), Ok(()));
    assert_eq!(extends(&s.checkpoint(0), &s.checkpoint(5), &[]), Ok(()));
    // Shorter: refused whatever the proof.
    assert_eq!(
        extends(&signed, &s.checkpoint(19), &[]),
        Err(NotAnExtension::Shorter {
            signed: 20,
            size: 19
        })
    );
    // A rewritten history (one event changed, every hash recomputed) does not extend it,
    // neither at the same size nor beyond, even with a proof made from its own nodes.
    let mut log = s.log.clone();
    log[7].event.action = "note.sign".to_owned();
    rehash(&mut log);
    let forged = crate::support::sequence(log.iter().map(|e| e.event.clone()).collect());
    for (size, p) in [(20, Vec::new()), (33, proof(&forged, 20, 33))] {
        let got = extends(&signed, &forged.checkpoint(size), &p);
        assert!(
            matches!(got, Err(NotAnExtension::Forked { signed: 20, size: n, .. }) if n == size),
            "{got:?}"
        );
    }
    // A proof that does not belong to the sizes is refused too.
    assert!(matches!(
        extends(&signed, &s.checkpoint(33), &proof(&s, 21, 33)),
        Err(NotAnExtension::Forked { .. })
    ));
    // Same size, same root, another chain head: refused.
    let other_head =
        audit::Checkpoint::new(log_origin(), 20, signed.root).with_chain_head(&[9; 32]);
    assert!(matches!(
        extends(&signed, &other_head, &[]),
        Err(NotAnExtension::Forked { .. })
    ));
}
