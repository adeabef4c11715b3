//! Synthetic logs (ids and action names only; no patient data) and a sequencer.

use std::collections::HashMap;

use audit::chain::{GENESIS, Hash, chain_hash};
use audit::checkpoint::{Checkpoint, origin};
use audit::event::{Event, canonical};
use audit::merkle::{TreeBuilder, leaf_hash, root_from};
use audit::verify::{
    Encoded, Report, Sequenced as SequencedItem, StoredEvent, Verification, VerifyStart, verify,
};
use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

pub const PREFIX: &str = "clinic.example/chartroom/audit";

pub fn practice() -> Uuid {
    Uuid::from_u128(0x0190_a0c4_7c9f_7d9a_9a3e_4b1c_2d3e_4f50)
}

pub fn other_practice() -> Uuid {
    Uuid::from_u128(0x0190_a0c4_7c9f_7d9a_9a3e_4b1c_2d3e_ffff)
}

pub fn log_origin() -> String {
    origin(PREFIX, practice())
}

pub fn at(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros).unwrap()
}

const ACTIONS: [&str; 6] = [
    "patient.read",
    "note.read",
    "note.create",
    "appointment.list",
    "practice.read",
    "access.denied",
];

/// A deterministic synthetic event: ids derived from `seq`.
pub fn event(practice: Uuid, seq: u64) -> Event {
    let n = u128::from(seq);
    let action = ACTIONS[usize::try_from(seq % 6).unwrap()];
    Event {
        practice_id: practice,
        seq,
        event_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n),
        occurred_at: at(1_714_979_289_123_456 + i64::try_from(seq).unwrap() * 1_000),
        actor_id: Some(Uuid::from_u128(0xa000 + n % 7)),
        patient_id: (!seq.is_multiple_of(3)).then(|| Uuid::from_u128(0xb000 + n % 11)),
        action: action.to_owned(),
        outcome: if action == "access.denied" {
            "denied"
        } else {
            "success"
        }
        .to_owned(),
        object_type: seq.is_multiple_of(2).then(|| "note".to_owned()),
        object_id: seq.is_multiple_of(2).then(|| Uuid::from_u128(0xc000 + n)),
        request_id: Some(Uuid::from_u128(0xd000 + n)),
        details: if seq.is_multiple_of(5) {
            vec![
                ("mfa".to_owned(), "totp".to_owned()),
                ("via".to_owned(), "api".to_owned()),
            ]
        } else {
            Vec::new()
        },
    }
}

/// A sequenced log as the database would hold it.
pub struct SequencedLog {
    pub log: Vec<StoredEvent>,
    /// Every complete aligned subtree, level 0 included.
    pub nodes: HashMap<(u8, u64), Hash>,
    /// `chains[i]` = chain hash of event i.
    pub chains: Vec<Hash>,
}

impl SequencedLog {
    pub fn leaves(&self) -> Vec<Hash> {
        self.log.iter().map(|s| s.leaf_hash).collect()
    }

    /// The checkpoint the sequencer would sign at `size` (with chain head).
    pub fn checkpoint(&self, size: u64) -> Checkpoint {
        let root = root_from(&self.nodes, size).unwrap();
        let head = match size {
            0 => GENESIS,
            n => self.chains[usize::try_from(n - 1).unwrap()],
        };
        Checkpoint::new(log_origin(), size, root).with_chain_head(&head)
    }
}

/// Sequences `events` (assigning nothing: their `seq` is kept) as the sequencer would.
pub fn sequence(events: Vec<Event>) -> SequencedLog {
    let mut chain = GENESIS;
    let mut tree = TreeBuilder::new();
    let mut nodes = HashMap::new();
    let mut log = Vec::with_capacity(events.len());
    let mut chains = Vec::with_capacity(events.len());
    for event in events {
        let bytes = canonical(&event).unwrap();
        chain = chain_hash(&chain, &bytes);
        let leaf = leaf_hash(&bytes);
        nodes.insert((0, tree.size()), leaf);
        for (level, index, hash) in tree.push(leaf).unwrap() {
            nodes.insert((level, index), hash);
        }
        chains.push(chain);
        log.push(StoredEvent {
            event,
            chain_hash: chain,
            leaf_hash: leaf,
        });
    }
    SequencedLog { log, nodes, chains }
}

/// A sequenced log of `n` synthetic events of the test practice.
pub fn sequenced(n: u64) -> SequencedLog {
    sequence((0..n).map(|seq| event(practice(), seq)).collect())
}

/// What a superuser does after tampering: recompute every stored hash from the events as
/// they now are (keeping their `seq`).
pub fn rehash(log: &mut [StoredEvent]) {
    let rehashed = sequence(log.iter().map(|s| s.event.clone()).collect());
    for (dst, src) in log.iter_mut().zip(rehashed.log) {
        *dst = src;
    }
}

/// Verifies `log` from genesis against `checkpoints` (and checks that feeding the same log
/// in canonical form, as the database reader does, reports exactly the same).
pub fn run(log: &[StoredEvent], checkpoints: &[Checkpoint]) -> Report {
    let report = verify(
        practice(),
        &log_origin(),
        &VerifyStart::genesis(),
        log.iter().map(Ok::<_, std::convert::Infallible>),
        checkpoints,
    );
    assert_eq!(run_encoded(log, checkpoints), report);
    report
}

/// [`run`] through [`Verification::push`]: events encoded (and leaf-hashed) beforehand.
pub fn run_encoded(log: &[StoredEvent], checkpoints: &[Checkpoint]) -> Report {
    let start = VerifyStart::genesis();
    let mut v = Verification::new(practice(), &log_origin(), &start, checkpoints);
    for s in log {
        let encoding = canonical(&s.event);
        v.push(&SequencedItem {
            seq: s.event.seq,
            practice_id: s.event.practice_id,
            encoding: encoding.as_deref().map(Encoded::new),
            chain_hash: s.chain_hash,
            leaf_hash: s.leaf_hash,
        });
    }
    v.finish()
}
