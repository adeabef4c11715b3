//! `chartroom audit verify`, the pure part: stream a practice's sequenced events, recompute
//! every hash, compare with what the database stored and with the signed checkpoints, and
//! report the first problem.
//!
//! Per event (in ascending stored `seq` order) [`verify`] checks, in this order:
//!
//! 1. it belongs to the practice being verified;
//! 2. its `seq` is the next expected one (else: sequence gap = deleted events; a repeat of
//!    the previous `seq` = duplicate; a smaller or shuffled `seq` = out of order);
//! 3. `leaf_hash(canonical(event))` equals the stored leaf hash (else: content changed);
//! 4. `chain_hash(previous, canonical(event))` equals the stored chain hash (else: chain
//!    break — an event inserted, deleted or moved, with the sequence renumbered);
//! 5. whenever the recomputed tree reaches the size of a signed checkpoint: the root (and
//!    the chain head, when the checkpoint states one) equals the signed values.
//!
//! After the last event, sequenced positions whose event rows are gone mean the newest
//! events were deleted ([`ProblemKind::SequencedEventsMissing`]), and a checkpoint larger than
//! the log means the tail was truncated — also when what is left is internally consistent, which
//! only a checkpoint kept outside the database can reveal. Memory is O(log n): the tree is
//! kept as its right edge.
//!
//! [`extends`] is the rule the checkpointer applies before it signs: a new checkpoint must
//! not be smaller than, or inconsistent with, the last one signed.
//!
//! A root mismatch at checkpoint `m` is classified once the next checkpoint `n` is reached:
//! if the log matches `n`, its prefix at `m` is fixed by `n`'s root, so checkpoint `m`
//! signed a different history ([`ProblemKind::CheckpointsInconsistent`]); otherwise the
//! log itself was changed ([`ProblemKind::CheckpointRootMismatch`]).

use std::borrow::Borrow;
use std::fmt;

use uuid::Uuid;

use crate::chain::{GENESIS, Hash, chain_hash};
use crate::checkpoint::Checkpoint;
use crate::event::{EncodeError, Event, encode_into};
use crate::merkle::{
    MerkleError, NodeSource, TreeBuilder, consistency_proof_from, leaf_hash, verify_consistency,
};

/// One sequenced event as read back from the database: the event plus the hashes the
/// sequencer stored for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// The event (with its sequenced `seq`).
    pub event: Event,
    /// Stored chain hash (`audit_sequence.chain_hash`).
    pub chain_hash: Hash,
    /// Stored leaf hash (`audit_sequence.leaf_hash`).
    pub leaf_hash: Hash,
}

/// Where verification starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyStart {
    /// First `seq` to expect: 0, or the retention pruning point.
    pub seq: u64,
    /// Chain hash of event `seq - 1`: [`GENESIS`] at 0; after a prune, the chain hash at
    /// the pruning point (`audit_prune.chain_hash`), which the checkpoint of size `seq`
    /// vouches for through its chain-head line.
    pub prev_chain: Hash,
    /// The tree's right edge at size `seq`: the stored nodes
    /// [`crate::merkle::nodes_needed_for_root`]`(seq)`, in that order (empty at 0). The
    /// checkpoint of size `seq` vouches for it through its root.
    pub right_edge: Vec<Hash>,
}

impl VerifyStart {
    /// Start of an unpruned log.
    #[must_use]
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            prev_chain: GENESIS,
            right_edge: Vec::new(),
        }
    }
}

/// What went wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The first sequence number affected (see each [`ProblemKind`]).
    pub seq: u64,
    /// What kind of problem.
    pub kind: ProblemKind,
}

/// The kinds of problem verification reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// The event at `seq` does not hash to its stored leaf hash: its content was changed
    /// (or another event was put in its place).
    ContentChanged,
    /// Events `seq` to `found - 1` are missing: deleted.
    Gap {
        /// The `seq` found where `seq` was expected.
        found: u64,
    },
    /// `seq` appears twice: an event was inserted with a used sequence number.
    Duplicate,
    /// Where `seq` was expected, `found` came, and the order is not ascending: reordered.
    OutOfOrder {
        /// The `seq` found.
        found: u64,
    },
    /// The stored chain hash at `seq` does not follow from the previous event: an event was
    /// inserted, deleted or moved just before `seq` and the sequence renumbered.
    ChainBreak,
    /// The event at `seq` belongs to another practice.
    OtherPractice {
        /// Its `practice_id`.
        found: Uuid,
    },
    /// The event at `seq` has no canonical encoding (e.g. repeated detail keys), so it can
    /// never have been sequenced as it is now.
    Unencodable {
        /// Why.
        reason: String,
    },
    /// The events up to checkpoint `size` do not hash to its signed root; something in
    /// `[seq, size)` was changed, inserted, deleted or reordered and the stored hashes
    /// recomputed (`seq` is the last size that matched).
    CheckpointRootMismatch {
        /// The checkpoint's tree size.
        size: u64,
    },
    /// The chain head stated by checkpoint `size` differs from the recomputed chain.
    CheckpointChainMismatch {
        /// The checkpoint's tree size.
        size: u64,
    },
    /// A signed checkpoint covers `checkpoint_size` events but the log ends at `seq`: the
    /// tail was truncated (perhaps back to an earlier consistent state).
    Truncated {
        /// The largest checkpoint size.
        checkpoint_size: u64,
    },
    /// Two signed checkpoints describe different histories (a fork or a misused key).
    CheckpointsInconsistent {
        /// The smaller size.
        first: u64,
        /// The larger (or equal) size.
        second: u64,
    },
    /// A checkpoint names another log in its origin line.
    CheckpointOrigin {
        /// The checkpoint's size.
        size: u64,
        /// Its origin line.
        origin: String,
    },
    /// Verification starts after a prune at `seq`, but no checkpoint of that size vouches
    /// for the starting chain hash and right edge (or the one there disagrees).
    StartNotVouched,
    /// The starting point is not well formed (edge length, or genesis at 0).
    BadStart {
        /// What is wrong.
        reason: String,
    },
    /// Events `seq` to `last` are sequenced (their sequence rows are stored) but the event
    /// rows are gone, and no later event follows: the newest events were deleted.
    SequencedEventsMissing {
        /// The last sequenced position whose event is missing.
        last: u64,
    },
    /// Reading the events failed at `seq`.
    ReadFailed {
        /// The reader's error.
        error: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.seq;
        match &self.kind {
            ProblemKind::ContentChanged => write!(
                f,
                "event {seq}: content changed — it no longer matches the hash recorded for it"
            ),
            ProblemKind::Gap { found } => write!(
                f,
                "events {seq} to {} are missing (deleted): the next event found is {found}",
                found - 1
            ),
            ProblemKind::Duplicate => write!(
                f,
                "event {seq} appears twice: an event was inserted with a sequence number already in use"
            ),
            ProblemKind::OutOfOrder { found } => write!(
                f,
                "event {found} came where event {seq} was expected: events are out of order (reordered or inserted)"
            ),
            ProblemKind::ChainBreak => write!(
                f,
                "chain break at event {seq}: it does not follow the event before it — an event was inserted, deleted or moved just before {seq} and the sequence renumbered"
            ),
            ProblemKind::OtherPractice { found } => write!(
                f,
                "event {seq} belongs to another practice ({found}): it was inserted into this log"
            ),
            ProblemKind::Unencodable { reason } => write!(
                f,
                "event {seq} cannot have been sequenced as it is now ({reason}): its content was changed"
            ),
            ProblemKind::CheckpointRootMismatch { size } => write!(
                f,
                "checkpoint root mismatch at size {size}: events {seq} to {} are not the events that were signed — changed, inserted, deleted or reordered, with the stored hashes recomputed",
                size.saturating_sub(1)
            ),
            ProblemKind::CheckpointChainMismatch { size } => write!(
                f,
                "checkpoint chain mismatch at size {size}: the chain of events {seq} to {} differs from the signed chain head",
                size.saturating_sub(1)
            ),
            ProblemKind::Truncated { checkpoint_size } => write!(
                f,
                "log truncated: it ends at event {}, but a signed checkpoint covers {checkpoint_size} events — events {seq} to {} were removed",
                seq.checked_sub(1)
                    .map_or_else(|| "(none)".to_owned(), |s| s.to_string()),
                checkpoint_size - 1
            ),
            ProblemKind::CheckpointsInconsistent { first, second } => write!(
                f,
                "signed checkpoints of sizes {first} and {second} are not consistent with each other: they describe different histories (forked log or misused signing key)"
            ),
            ProblemKind::CheckpointOrigin { size, origin } => write!(
                f,
                "checkpoint of size {size} is for another log ({origin:?})"
            ),
            ProblemKind::StartNotVouched => write!(
                f,
                "verification starts at event {seq} (after a retention prune), but no signed checkpoint of size {seq} vouches for the chain and tree at that point"
            ),
            ProblemKind::BadStart { reason } => {
                write!(f, "bad starting point at event {seq}: {reason}")
            }
            ProblemKind::SequencedEventsMissing { last } => write!(
                f,
                "events {seq} to {last} are sequenced but their rows are missing: the newest events were deleted"
            ),
            ProblemKind::ReadFailed { error } => {
                write!(f, "reading the log failed at event {seq}: {error}")
            }
        }
    }
}

/// The outcome of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The practice verified.
    pub practice: Uuid,
    /// The first `seq` expected.
    pub start: u64,
    /// Events that passed every check.
    pub events_checked: u64,
    /// Tree size reached (`start + events_checked`).
    pub tree_size: u64,
    /// Root recomputed at `tree_size`.
    pub root: Hash,
    /// Chain hash of event `tree_size - 1` (the start's `prev_chain` if none).
    pub chain_head: Hash,
    /// Signed checkpoints whose root (and chain head) matched.
    pub checkpoints_matched: usize,
    /// The largest signed checkpoint size given.
    pub largest_checkpoint: Option<u64>,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

impl Report {
    /// No problem found.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "practice {}: {} events checked from {} (tree size {}, root {}), {} signed checkpoints matched",
            self.practice,
            self.events_checked,
            self.start,
            self.tree_size,
            hex::encode(self.root),
            self.checkpoints_matched
        )?;
        match &self.problem {
            None => write!(f, "; no problems found"),
            Some(p) => write!(f, "; FIRST PROBLEM: {p}"),
        }
    }
}

/// Verifies one practice's sequenced log.
///
/// * `origin`: the origin line this practice's checkpoints must carry
///   ([`crate::checkpoint::origin`]).
/// * `events`: the sequenced events from `start.seq` on, in ascending stored `seq` order
///   (`ORDER BY seq`), as they are read — nothing is buffered.
/// * `checkpoints`: every signed checkpoint of the practice, already opened with the
///   [`crate::checkpoint::Verifier`], in any order. Those smaller than `start.seq` (before a
///   retention prune) are checked only for their origin and against same-size conflicts;
///   vouch for them with [`checkpoints_consistent`] and the stored nodes.
///
/// Runs on no database and decrypts nothing; it reads ids and hashes only. The same checks
/// as feeding a [`Verification`] one item at a time.
pub fn verify<I, S, E>(
    practice: Uuid,
    origin: &str,
    start: &VerifyStart,
    events: I,
    checkpoints: &[Checkpoint],
) -> Report
where
    I: IntoIterator<Item = Result<S, E>>,
    S: Borrow<StoredEvent>,
    E: fmt::Display,
{
    let mut v = Verification::new(practice, origin, start, checkpoints);
    for item in events {
        if v.is_done() {
            break;
        }
        match item {
            Ok(stored) => v.push_event(stored.borrow()),
            Err(e) => v.push_error(e),
        }
    }
    v.finish()
}

/// One sequenced event in canonical form, for [`Verification::push`]: what a reader that
/// encodes rows itself (straight from a database buffer, on another thread) hands over,
/// so the verifier does not build an [`Event`] or encode it again.
#[derive(Clone, Copy, Debug)]
pub struct Sequenced<'a> {
    /// The stored sequence number (`audit_sequence.seq`).
    pub seq: u64,
    /// The practice the event row belongs to.
    pub practice_id: Uuid,
    /// The event's canonical encoding, or why it has none.
    pub encoding: Result<Encoded<'a>, &'a EncodeError>,
    /// Stored chain hash (`audit_sequence.chain_hash`).
    pub chain_hash: Hash,
    /// Stored leaf hash (`audit_sequence.leaf_hash`).
    pub leaf_hash: Hash,
}

/// Canonical bytes with their leaf hash.
#[derive(Clone, Copy, Debug)]
pub struct Encoded<'a> {
    /// [`crate::event::canonical`] of the event.
    pub bytes: &'a [u8],
    /// [`leaf_hash`]`(bytes)`, computed by the caller (possibly on another thread). The
    /// verifier compares it with the stored leaf hash and puts it in the tree; a caller that
    /// passes anything else verifies nothing.
    pub leaf: Hash,
}

impl<'a> Encoded<'a> {
    /// `bytes` with their leaf hash computed here.
    #[must_use]
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            leaf: leaf_hash(bytes),
        }
    }
}

/// [`verify`] one item at a time, for readers that cannot hand over an iterator of
/// [`StoredEvent`]s (events decoded into reused buffers, matched with their sequence rows on
/// the fly). Feed the sequenced events from `start.seq` on in stored `seq` order with
/// [`push`](Self::push) or [`push_event`](Self::push_event), a read failure with
/// [`push_error`](Self::push_error), then call [`finish`](Self::finish). Once
/// [`is_done`](Self::is_done), further items are ignored: the first problem is final.
///
/// A `seq` that skips ahead is classified (gap or reordering) by the `seq` of the item after
/// it, so that problem is only reported at the next push (or at `finish`).
pub struct Verification<'c> {
    run: Run,
    practice: Uuid,
    /// Checkpoints larger than the start, smallest first.
    upcoming: std::iter::Peekable<std::vec::IntoIter<&'c Checkpoint>>,
    /// The largest signed checkpoint size.
    largest: Option<u64>,
    /// A `seq` that skipped ahead, waiting for the next item's `seq`.
    skipped: Option<u64>,
    /// Sequenced positions `first..=last` (from the expected one on) whose events are gone.
    missing: Option<(u64, u64)>,
    /// The report, once a problem ended the run.
    done: Option<Report>,
}

impl fmt::Debug for Verification<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verification")
            .field("practice", &self.practice)
            .field("next", &self.run.next)
            .field("done", &self.done.is_some())
            .finish_non_exhaustive()
    }
}

impl<'c> Verification<'c> {
    /// Starts verifying `practice`'s log (arguments as for [`verify`]). The checks that need
    /// no events run here; if one fails, the verification is already done.
    #[must_use]
    pub fn new(
        practice: Uuid,
        origin: &str,
        start: &VerifyStart,
        checkpoints: &'c [Checkpoint],
    ) -> Self {
        let mut cps: Vec<&Checkpoint> = checkpoints.iter().collect();
        cps.sort_by_key(|c| c.size);
        let largest = cps.last().map(|c| c.size);
        let mut run = Run {
            report: Report {
                practice,
                start: start.seq,
                events_checked: 0,
                tree_size: start.seq,
                root: crate::merkle::EMPTY_ROOT,
                chain_head: start.prev_chain,
                checkpoints_matched: 0,
                largest_checkpoint: largest,
                problem: None,
            },
            tree: TreeBuilder::new(),
            chain: start.prev_chain,
            next: start.seq,
            buf: Vec::with_capacity(512),
            pending: None,
            last_good: start.seq,
        };
        let mut done = None;
        if let Some(problem) = check_anchors(origin, start, &cps) {
            done = Some(run.finish(Some(problem)));
        } else {
            match TreeBuilder::from_right_edge(start.seq, start.right_edge.clone()) {
                Ok(t) => {
                    run.tree = t;
                    // check_anchors vouched for every checkpoint at the starting size.
                    run.report.checkpoints_matched +=
                        cps.iter().filter(|c| c.size == start.seq).count();
                }
                Err(e) => {
                    let reason = e.to_string();
                    done = Some(run.fail(start.seq, ProblemKind::BadStart { reason }));
                }
            }
        }
        cps.retain(|c| c.size > start.seq);
        Self {
            run,
            practice,
            upcoming: cps.into_iter().peekable(),
            largest,
            skipped: None,
            missing: None,
            done,
        }
    }

    /// Whether a problem was found (nothing more is checked).
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.done.is_some()
    }

    /// The `seq` expected next.
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        self.run.next
    }

    /// Checks the next sequenced event, given as an [`Event`] (encoded here).
    pub fn push_event(&mut self, stored: &StoredEvent) {
        let event = &stored.event;
        if !self.before_item(event.seq) {
            return;
        }
        let result = self
            .run
            .check_position(self.practice, event.practice_id, event.seq);
        let result = result.and_then(|()| {
            let mut buf = std::mem::take(&mut self.run.buf);
            buf.clear();
            let r = match encode_into(event, &mut buf) {
                Ok(()) => {
                    self.run
                        .check_hashes(Encoded::new(&buf), &stored.chain_hash, &stored.leaf_hash)
                }
                Err(e) => Err(ProblemKind::Unencodable {
                    reason: e.to_string(),
                }),
            };
            self.run.buf = buf;
            r
        });
        self.after_item(event.seq, result);
    }

    /// Checks the next sequenced event, given in canonical form.
    pub fn push(&mut self, item: &Sequenced<'_>) {
        if !self.before_item(item.seq) {
            return;
        }
        let result = self
            .run
            .check_position(self.practice, item.practice_id, item.seq)
            .and_then(|()| match item.encoding {
                Ok(enc) => self
                    .run
                    .check_hashes(enc, &item.chain_hash, &item.leaf_hash),
                Err(e) => Err(ProblemKind::Unencodable {
                    reason: e.to_string(),
                }),
            });
        self.after_item(item.seq, result);
    }

    /// The next sequenced position, `seq`, has no event: its sequence row is stored but the
    /// event row is gone. Followed by a sequenced event, this is the gap that event reports
    /// (as if the sequence row were gone too); at the end of the log,
    /// [`finish`](Self::finish) reports [`ProblemKind::SequencedEventsMissing`] — the newest
    /// events were deleted, which no later event can reveal.
    pub fn push_missing(&mut self, seq: u64) {
        if !self.before_item(seq) {
            return;
        }
        if let Some((first, last)) = self.missing {
            if last.checked_add(1) == Some(seq) {
                self.missing = Some((first, seq));
            }
            return;
        }
        match self.run.check_position(self.practice, self.practice, seq) {
            Ok(()) => self.missing = Some((seq, seq)),
            Err(kind) => self.after_item(seq, Err(kind)),
        }
    }

    /// Reading the log failed before the next event: that is the problem (unless one was
    /// found already).
    pub fn push_error(&mut self, error: impl fmt::Display) {
        if self.done.is_some() {
            return;
        }
        if self.skipped.is_some() {
            self.classify_skip(None);
            return;
        }
        let error = error.to_string();
        let seq = self.run.next;
        self.done = Some(self.run.fail(seq, ProblemKind::ReadFailed { error }));
    }

    /// The log ended: the report.
    #[must_use]
    pub fn finish(mut self) -> Report {
        if self.done.is_none() && self.skipped.is_some() {
            self.classify_skip(None);
        }
        if let Some(report) = self.done.take() {
            return report;
        }
        if let Some(pending) = self.run.pending.take() {
            return self.run.finish(Some(pending.0));
        }
        if let Some((first, last)) = self.missing.filter(|&(first, _)| first == self.run.next) {
            return self
                .run
                .fail(first, ProblemKind::SequencedEventsMissing { last });
        }
        if let Some(checkpoint_size) = self.largest.filter(|&size| size > self.run.next) {
            let seq = self.run.next;
            return self
                .run
                .fail(seq, ProblemKind::Truncated { checkpoint_size });
        }
        self.run.finish(None)
    }

    /// Whether the item with `seq` is to be checked (a pending skip is classified by it).
    fn before_item(&mut self, seq: u64) -> bool {
        if self.done.is_some() {
            return false;
        }
        if self.skipped.is_some() {
            self.classify_skip(Some(seq));
            return false;
        }
        true
    }

    /// A skipped `seq` is a reordering if the item after it goes back, else a gap.
    fn classify_skip(&mut self, following: Option<u64>) {
        if let Some(found) = self.skipped.take() {
            let kind = if following.is_some_and(|f| f < found) {
                ProblemKind::OutOfOrder { found }
            } else {
                ProblemKind::Gap { found }
            };
            let seq = self.run.next;
            self.done = Some(self.run.fail(seq, kind));
        }
    }

    fn after_item(&mut self, seq: u64, result: Result<(), ProblemKind>) {
        match result {
            Ok(()) => {
                while let Some(cp) = self.upcoming.next_if(|c| c.size == self.run.next) {
                    if let Some(problem) = self.run.at_checkpoint(cp) {
                        self.done = Some(self.run.finish(Some(problem)));
                        return;
                    }
                }
            }
            Err(ProblemKind::Gap { found }) => self.skipped = Some(found),
            Err(kind) => {
                let at = if kind == ProblemKind::Duplicate {
                    seq
                } else {
                    self.run.next
                };
                self.done = Some(self.run.fail(at, kind));
            }
        }
    }
}

/// Streaming state shared by the checks.
struct Run {
    report: Report,
    tree: TreeBuilder,
    /// Chain hash of event `next - 1`.
    chain: Hash,
    /// The `seq` expected next (= tree size).
    next: u64,
    /// Reused canonical-encoding buffer.
    buf: Vec<u8>,
    /// A root mismatch waiting for the next checkpoint to classify it, with its size.
    pending: Option<(Problem, u64)>,
    /// Size of the last checkpoint that matched (or the start).
    last_good: u64,
}

impl Run {
    /// Checks that the event belongs to `practice` and comes at the expected position. A
    /// `seq` that skips ahead is returned as [`ProblemKind::Gap`] for the caller to
    /// classify with the next item.
    fn check_position(&self, practice: Uuid, found: Uuid, seq: u64) -> Result<(), ProblemKind> {
        if found != practice {
            return Err(ProblemKind::OtherPractice { found });
        }
        if seq != self.next {
            return Err(if seq.checked_add(1) == Some(self.next) {
                ProblemKind::Duplicate
            } else if seq < self.next {
                ProblemKind::OutOfOrder { found: seq }
            } else {
                ProblemKind::Gap { found: seq }
            });
        }
        Ok(())
    }

    /// Checks the event at `next` against its stored hashes, and on success appends it to
    /// the chain and the tree.
    fn check_hashes(
        &mut self,
        enc: Encoded<'_>,
        stored_chain: &Hash,
        stored_leaf: &Hash,
    ) -> Result<(), ProblemKind> {
        if enc.leaf != *stored_leaf {
            return Err(ProblemKind::ContentChanged);
        }
        let linked = chain_hash(&self.chain, enc.bytes);
        if linked != *stored_chain {
            return Err(ProblemKind::ChainBreak);
        }
        self.tree
            .push_with(enc.leaf, |_, _, _| {})
            .map_err(|e| ProblemKind::BadStart {
                reason: e.to_string(), // only a tree of 2^64 − 1 leaves can get here
            })?;
        self.chain = linked;
        self.next += 1;
        self.report.events_checked += 1;
        self.report.chain_head = linked;
        Ok(())
    }

    fn fail(&mut self, seq: u64, kind: ProblemKind) -> Report {
        let problem = match self.pending.take() {
            Some((earlier, _)) => earlier,
            None => Problem { seq, kind },
        };
        self.finish(Some(problem))
    }

    fn finish(&mut self, problem: Option<Problem>) -> Report {
        let mut report = self.report.clone();
        report.tree_size = report.start + report.events_checked;
        if self.tree.size() == report.tree_size {
            report.root = self.tree.root();
        }
        report.problem = problem;
        report
    }

    /// The tree just reached `cp.size`.
    fn at_checkpoint(&mut self, cp: &Checkpoint) -> Option<Problem> {
        let matches = self.tree.root() == cp.root;
        match (&self.pending, matches) {
            (Some((_, first)), true) => Some(Problem {
                seq: *first,
                kind: ProblemKind::CheckpointsInconsistent {
                    first: *first,
                    second: cp.size,
                },
            }),
            (Some((earlier, _)), false) => Some(earlier.clone()),
            (None, false) => {
                self.pending = Some((
                    Problem {
                        seq: self.last_good,
                        kind: ProblemKind::CheckpointRootMismatch { size: cp.size },
                    },
                    cp.size,
                ));
                None
            }
            (None, true) => {
                if let Ok(Some(head)) = cp.chain_head()
                    && head != self.chain
                {
                    return Some(Problem {
                        seq: self.last_good,
                        kind: ProblemKind::CheckpointChainMismatch { size: cp.size },
                    });
                }
                self.report.checkpoints_matched += 1;
                self.last_good = cp.size;
                None
            }
        }
    }
}

/// Checks that need no events: origins, same-size conflicts, the starting point.
fn check_anchors(origin: &str, start: &VerifyStart, cps: &[&Checkpoint]) -> Option<Problem> {
    for cp in cps {
        if cp.origin != origin {
            return Some(Problem {
                seq: start.seq,
                kind: ProblemKind::CheckpointOrigin {
                    size: cp.size,
                    origin: cp.origin.clone(),
                },
            });
        }
    }
    for pair in cps.windows(2) {
        if let [a, b] = pair
            && a.size == b.size
            && (a.root != b.root || chain_heads_differ(a, b))
        {
            return Some(Problem {
                seq: a.size,
                kind: ProblemKind::CheckpointsInconsistent {
                    first: a.size,
                    second: b.size,
                },
            });
        }
    }
    if start.seq == 0 {
        if start.prev_chain != GENESIS || !start.right_edge.is_empty() {
            return Some(Problem {
                seq: 0,
                kind: ProblemKind::BadStart {
                    reason: "a log starting at 0 starts from GENESIS with an empty tree".to_owned(),
                },
            });
        }
        if cps
            .iter()
            .any(|c| c.size == 0 && c.root != crate::merkle::EMPTY_ROOT)
        {
            return Some(Problem {
                seq: 0,
                kind: ProblemKind::CheckpointRootMismatch { size: 0 },
            });
        }
        return None;
    }
    let vouched = cps.iter().find(|c| c.size == start.seq).is_some_and(|cp| {
        let tree_ok = TreeBuilder::from_right_edge(start.seq, start.right_edge.clone())
            .is_ok_and(|t| t.root() == cp.root);
        let chain_ok = matches!(cp.chain_head(), Ok(Some(head)) if head == start.prev_chain);
        tree_ok && chain_ok
    });
    if vouched {
        None
    } else {
        Some(Problem {
            seq: start.seq,
            kind: ProblemKind::StartNotVouched,
        })
    }
}

fn chain_heads_differ(a: &Checkpoint, b: &Checkpoint) -> bool {
    match (a.chain_head(), b.chain_head()) {
        (Ok(Some(x)), Ok(Some(y))) => x != y,
        _ => false,
    }
}

/// Checks that consecutive signed checkpoints are consistent with each other using stored
/// nodes (`audit_node` plus leaf hashes) — the way to vouch for checkpoints older than a
/// retention prune, whose events are gone. Fetch
/// [`crate::merkle::nodes_needed_for_consistency`] for each consecutive pair.
///
/// A failure means the two checkpoints describe different histories *or* the stored nodes
/// were altered; either way the pair is reported. The proof itself cannot be forged: it is
/// checked against both signed roots.
pub fn checkpoints_consistent(
    checkpoints: &[Checkpoint],
    nodes: &impl NodeSource,
) -> Result<(), (u64, u64, MerkleError)> {
    let mut cps: Vec<&Checkpoint> = checkpoints.iter().collect();
    cps.sort_by_key(|c| c.size);
    for pair in cps.windows(2) {
        if let [a, b] = pair {
            let proof =
                consistency_proof_from(nodes, a.size, b.size).map_err(|e| (a.size, b.size, e))?;
            verify_consistency(a.size, b.size, &a.root, &b.root, &proof)
                .map_err(|e| (a.size, b.size, e))?;
        }
    }
    Ok(())
}

/// Why a checkpoint of the log as it is now must not be signed after the last one signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotAnExtension {
    /// The log is smaller than the last signed checkpoint: events were removed.
    #[error(
        "the log has {size} sequenced events, but a checkpoint of {signed} events was signed: the log was shortened"
    )]
    Shorter {
        /// The last signed size.
        signed: u64,
        /// The log's size now.
        size: u64,
    },
    /// The log is not the signed log extended: events at or below the signed size differ.
    #[error(
        "the log of {size} sequenced events does not extend the signed checkpoint of {signed} events ({reason}): its history was rewritten"
    )]
    Forked {
        /// The last signed size.
        signed: u64,
        /// The log's size now.
        size: u64,
        /// What did not match.
        reason: String,
    },
}

/// Whether the log as `next` describes it extends the last signed checkpoint `signed`: not
/// smaller; at the same size the same root (and chain head, when both state one); at a larger
/// size, `proof` (an RFC 6962 consistency proof from `signed.size` to `next.size`, read from
/// the stored tree) proves that `signed`'s tree is a prefix of `next`'s (RFC 9162 §2.1.4.2).
///
/// This is the rule the checkpointer applies before it signs, so a shortened or rewritten log
/// is never vouched for by a new signature. The proof cannot be forged: it is checked against
/// both roots, and `signed.root` comes from the signed note, not from the database.
pub fn extends(
    signed: &Checkpoint,
    next: &Checkpoint,
    proof: &[Hash],
) -> Result<(), NotAnExtension> {
    let (s, n) = (signed.size, next.size);
    if n < s {
        return Err(NotAnExtension::Shorter { signed: s, size: n });
    }
    let forked = |reason: String| NotAnExtension::Forked {
        signed: s,
        size: n,
        reason,
    };
    if n == s && chain_heads_differ(signed, next) {
        return Err(forked("chain head differs".to_owned()));
    }
    verify_consistency(s, n, &signed.root, &next.root, proof).map_err(|e| forked(e.to_string()))
}
