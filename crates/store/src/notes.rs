//! Clinical notes with versions, signatures, amendments and addenda
//! (`migrations/0007_clinical_notes.sql`). Visibility is RLS (`app.clinical_visible`); the
//! caller audits.
//!
//! - Every save of a draft is a new row in `clinical_note_version`; signing copies the last
//!   draft into a `signed` version carrying the signature manifestation and locks the note;
//!   an amendment is a new signed version with a reason (and whether it was AI-assisted); an
//!   addendum is signed text appended to the note. No version is ever updated.
//! - Each version stores a SHA-256 over everything a reader is shown of it: the note (practice,
//!   id, patient, template), the version (number, kind, author, time), its reason and AI flags,
//!   the whole signature manifestation (signer, printed name, credential, signed time, time
//!   zone, meaning) and the exact content ([`domain::notes::VersionBinding`], hash scheme 2);
//!   [`verify`] recomputes them. Versions written before scheme 2 keep scheme 1
//!   (`hash_scheme = 1`), which does not bind the printed name, credential, time zone or
//!   creation time; verification reports them as such.
//! - Content and reasons are field ciphertexts bound to (practice, `clinical_note_version`,
//!   column, note id ‖ version). Notes written before versions existed keep their body in
//!   `clinical_note.body_enc` (version 0) until they are next saved or signed.
//! - Concurrency: changes name the version they were made against (`If-Match`); the header's
//!   `current_version` is compared and advanced in one UPDATE, so of two writers exactly one
//!   wins and the other gets [`Refusal::Stale`].
//!
//! # Layout
//! - `stored`: the rows as stored, the column lists, and opening a version (decrypting it and
//!   recomputing its hash).
//! - `read`: a note as a reader sees it (current content, signature, amendments, addenda),
//!   lists and history.
//! - `write`: creating a note, saving a draft and deleting it; the version insert and the
//!   header check-and-advance every change goes through.
//! - `signing`: signing, amending and adding an addendum, each a version signed by the actor.
//! - `verification`: recomputing the hashes of a note's versions (INT-01), per note and for a
//!   whole practice.
//! - `visits`: the visits (encounters) a note documents.

mod read;
mod signing;
mod stored;
mod verification;
mod visits;
mod write;

pub use read::{Addendum, Amendment, Note, exists, get, history, list_for_patient};
pub use signing::{AmendmentInput, add_addendum, amend, sign};
pub use stored::Version;
pub use verification::{PracticeVerification, Verification, verify};
pub use visits::{Visit, create_visit, list_visits, visit_of};
pub use write::{create, delete, save_draft};

use crate::sealed_columns::{CLINICAL_NOTE, CLINICAL_NOTE_VERSION};

/// The legacy table name bound into pre-version note bodies.
pub const TABLE: &str = CLINICAL_NOTE.table;
/// The table name bound into version ciphertexts (row id: note id ‖ version,
/// [`crate::sealed_columns::version_row_id`]).
pub const VERSION_TABLE: &str = CLINICAL_NOTE_VERSION.table;

/// Why a note change was refused (the API maps each to a status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such note here (or not visible).
    NotFound,
    /// The note was deleted (410).
    Deleted,
    /// The change was made against an older version (412).
    Stale,
    /// Not allowed in the note's state (409): signed notes are locked; drafts have no
    /// amendments.
    Locked,
    /// Nothing to sign (409).
    Empty,
    /// The note was made from a draft with flagged sentences no clinician has accepted yet
    /// (409; req SCR-05).
    Unreviewed,
}
