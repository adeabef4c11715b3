//! Chartroom's tamper-evident audit log: the pure core.
//!
//! Every practice (tenant) has an append-only log of audit events in PostgreSQL. Requests
//! insert events; a background sequencer later gives each practice's events a gapless
//! sequence number (`seq` 0, 1, 2, …), a hash chain and an RFC 6962 Merkle tree, and signs
//! checkpoints that are stored outside the database. `chartroom audit verify` recomputes
//! everything and names the first event where the log and its hashes or its signed
//! checkpoints disagree. This crate is that arithmetic: no database, no network, no async —
//! pure functions plus small file IO for the signing key and the checkpoint directory.
//!
//! | Module | What it holds |
//! |---|---|
//! | [`event`] | [`Event`] and its versioned canonical encoding (the bytes every hash covers) |
//! | [`chain`] | the per-practice hash chain |
//! | [`merkle`] | RFC 6962 hashes, inclusion and consistency proofs from stored nodes, the sequencer's incremental builder |
//! | [`checkpoint`] | C2SP `tlog-checkpoint` bodies, C2SP `signed-note` Ed25519 signing and verification, the key file |
//! | [`store`] | the checkpoint directory outside PostgreSQL |
//! | [`verify`](mod@verify) | streaming verification and its report |
//!
//! # What is hashed, and how
//!
//! For the event with sequence number `i` of a practice:
//!
//! ```text
//! bytes[i]  = canonical(event i)                              see `event` (version byte 0x01)
//! leaf[i]   = SHA-256(0x00 || bytes[i])                       RFC 6962 leaf hash
//! chain[i]  = SHA-256("chartroom audit chain v1" 0x00 || chain[i-1] || bytes[i])
//! chain[-1] = GENESIS = SHA-256("chartroom audit chain genesis v1")
//! root(n)   = RFC 6962 Merkle tree hash over leaf[0..n)       node = SHA-256(0x01 || l || r)
//! ```
//!
//! The sequencer stores `chain[i]` and `leaf[i]` with each event and every complete
//! aligned subtree hash (`audit_node`), so inclusion and consistency proofs cost O(log n)
//! row reads. At intervals it signs a checkpoint of `(origin, n, root(n), chain[n-1])` and
//! puts it in the [`store::DirStore`].
//!
//! # Checkpoints
//!
//! A checkpoint is a C2SP signed note whose text is a C2SP tlog-checkpoint body: origin
//! line (`<prefix>/<practice uuid>`), tree size, base64 root, and Chartroom's one extension
//! line with the chain head; then an empty line and an Ed25519 signature line starting
//! with an em dash. Go's `golang.org/x/mod/sumdb/note` opens it with the same verifier
//! key string. A real note, signed by the test key whose seed is 32 bytes of `0x07`:
//!
//! ```text
//! clinic.example/chartroom/audit/0190a0c4-7c9f-7d9a-9a3e-4b1c2d3e4f50
//! 20
//! dm+0aRQ2hVoujVRnqc2/Ml7kAxiWohs6I9Wk4vy5TFk=
//! chartroom-chain-head WlyaM1m3R6cEYVTV8vqrFtO+sjkECEuaodKiMdELqzY=
//!
//! — clinic.example/chartroom hNI4LXhGPDM2VqI+N6kJddJbTppOeH6R0kBnaIOUirueIeuecDFvA33U9Am1A7DbWA04EIOk5wszEJr4k7pOQPF20Ac=
//! ```
//!
//! It opens with the verifier key: `clinic.example/chartroom+84d2382d+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs`
//! (key name `clinic.example/chartroom`, key ID `84d2382d`). The signature line is
//! `— `, the key name, a space and base64 of the 4-byte key ID followed by the 64-byte
//! Ed25519 signature over the four body lines (including the last newline).
//!
//! # Threat model
//!
//! The adversary is anyone who can rewrite the database: a compromised application (which
//! has INSERT and SELECT only and meets append-only triggers), an operator, or a PostgreSQL
//! superuser who disables the triggers and edits rows at will, including the stored hashes
//! and tree nodes, since the hash functions are public.
//!
//! * **Changed, deleted, inserted or reordered events** are caught by recomputation alone as
//!   long as the stored hashes were left as they were: a leaf hash that no longer matches
//!   (changed), a missing `seq` (deleted), a repeated or descending `seq` (inserted,
//!   reordered), or a chain hash that does not follow from its predecessor (moved, with the
//!   sequence renumbered).
//! * **A superuser who recomputes the hashes** can make the database internally consistent
//!   again. The signed checkpoints stop that: the recomputed tree no longer has the signed
//!   root at the checkpoint's size. Every sequenced event older than the latest checkpoint
//!   is pinned; events sequenced after it are protected only by the chain until the next
//!   checkpoint (so checkpoint often — each is a few hundred bytes).
//! * **Truncating the tail**, even back to an earlier state that is perfectly consistent and
//!   matches older checkpoints, leaves no trace *inside* the database. Only a checkpoint kept
//!   where the database superuser cannot reach — another machine, write-once storage, a
//!   witness — shows that the log once was longer. That is why checkpoints live outside
//!   PostgreSQL, and why the signing key must not be readable by the database's host
//!   accounts either (a thief of both could re-sign a shortened log; keep the verifier key
//!   and old checkpoints with someone else). The signer must also never vouch for a
//!   shortened log itself: [`verify::extends`] is the rule it checks first (not smaller than,
//!   and RFC 6962-consistent with, the last checkpoint signed). Deleting the newest events
//!   while leaving their sequence rows is caught without a checkpoint
//!   ([`verify::ProblemKind::SequencedEventsMissing`]); deleting them with their sequence
//!   rows and tree nodes only by a checkpoint signed after them, so what can be cut unnoticed
//!   is what was sequenced since the last checkpoint.
//! * **Not covered:** events that were never written (the application must write them in
//!   the transaction of the action), and events inserted but not yet sequenced (the
//!   verifier's caller reports unsequenced events older than the sequencing bound).
//!
//! # What this crate never does
//!
//! It never sees protected health information. Events carry ids, stable action and
//! outcome names, object types, times, and `details` that are ids and flags only — never
//! names, note text, contact details, free text or tokens ([`event::validate`] enforces the
//! character sets when events are written). It opens no database or network connection,
//! decrypts nothing, and never prints key material (`Debug` of a [`checkpoint::Signer`]
//! shows its name and key ID only; the seed is zeroized on drop).
//!
//! # Example
//!
//! ```
//! use audit::chain::{GENESIS, chain_hash};
//! use audit::checkpoint::{Checkpoint, Signer, origin};
//! use audit::event::{Event, canonical};
//! use audit::merkle::{TreeBuilder, leaf_hash};
//! use audit::verify::{StoredEvent, VerifyStart, verify};
//! use chrono::{TimeZone, Utc};
//! use uuid::Uuid;
//!
//! let practice = Uuid::from_u128(1);
//! let origin = origin("clinic.example/chartroom/audit", practice);
//!
//! // The sequencer: chain, leaf and tree for each event, then a signed checkpoint.
//! let (mut chain, mut tree, mut log) = (GENESIS, TreeBuilder::new(), Vec::new());
//! for seq in 0..5 {
//!     let event = Event {
//!         practice_id: practice,
//!         seq,
//!         event_id: Uuid::from_u128(100 + u128::from(seq)),
//!         occurred_at: Utc.timestamp_micros(1_700_000_000_000_000).unwrap(),
//!         actor_id: Some(Uuid::from_u128(7)),
//!         patient_id: None,
//!         action: "practice.read".into(),
//!         outcome: "success".into(),
//!         object_type: None,
//!         object_id: None,
//!         request_id: None,
//!         details: vec![],
//!     };
//!     let bytes = canonical(&event)?;
//!     chain = chain_hash(&chain, &bytes);
//!     let leaf = leaf_hash(&bytes);
//!     let _new_nodes = tree.push(leaf)?; // the sequencer stores these in audit_node
//!     log.push(StoredEvent { event, chain_hash: chain, leaf_hash: leaf });
//! }
//! let signer = Signer::from_seed("clinic.example/chartroom", &[7; 32])?;
//! let note = signer.sign(&Checkpoint::new(&origin, tree.size(), tree.root()).with_chain_head(&chain))?;
//!
//! // The verifier: open the note with the verifier key, stream the log.
//! let checkpoint = signer.verifier().open(&note)?;
//! let events = log.iter().map(Ok::<_, std::convert::Infallible>);
//! let report = verify(practice, &origin, &VerifyStart::genesis(), events, &[checkpoint.clone()]);
//! assert!(report.is_ok(), "{report}");
//!
//! // Truncate the tail: only the checkpoint can tell.
//! let events = log[..3].iter().map(Ok::<_, std::convert::Infallible>);
//! let report = verify(practice, &origin, &VerifyStart::genesis(), events, &[checkpoint]);
//! assert_eq!(report.problem.unwrap().seq, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod chain;
pub mod checkpoint;
pub mod event;
pub mod merkle;
pub mod store;
pub mod verify;

pub use chain::{GENESIS, Hash};
pub use checkpoint::{Checkpoint, Signer, Verifier};
pub use event::{Event, canonical};
pub use store::{CheckpointStore, DirStore};
pub use verify::{Report, StoredEvent, VerifyStart, verify};
