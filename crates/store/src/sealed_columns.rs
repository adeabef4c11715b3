//! The sealed-column registry: the one description of the tenant tables that hold field
//! ciphertexts or belong to a patient ([`TABLES`]), and the one list of the text, varchar and
//! jsonb columns of tenant tables that may hold cleartext ([`PLAINTEXT_COLUMNS`]).
//!
//! # Sealed tables
//! Text a person typed about a patient is stored only as a field ciphertext: a `bytea`
//! `<column>_enc` column sealed with the practice's data key and bound to (practice, table,
//! column, row id) ([`crypto::encrypt_field`]). Each such table is described once, here
//! ([`SealedTable`]): its sealed columns and the legacy plaintext column each one replaced, how
//! the row id bound into its ciphertexts is formed, what a data-key rotation re-encrypts and
//! how, and when the retention job purges its rows (the order of [`TABLES`] is the purge
//! order: a table comes before every table it refers to). Tables that belong to a patient but
//! hold no sealed column (visits, appointments, legal holds) are listed too, for the purge.
//!
//! The table modules build their field contexts from these entries; the re-encryption passes
//! ([`crate::OwnerStore::rotate_data_key_audited`], [`crate::OwnerStore::encrypt_existing`],
//! [`crate::OwnerStore::retire_data_keys_audited`]) and the retention purge
//! ([`crate::OwnerStore::purge_expired`]) iterate them. The integration tests in
//! `sealed_columns` read the catalog and fail on a `*_enc` column of a tenant table that is not
//! listed here, on a listed column (sealed, legacy or row id) the database lacks, on a purge
//! order that breaks a foreign key, and on a table referring to a purged one that is neither
//! listed here nor deleted by cascade.
//!
//! This module is a leaf: it uses no other module of the store, so every table module, the key
//! commands and the retention job can use it without using each other. It also holds the
//! field helpers they share for sealing (`seal_field`, `write_keys`, the crypto error mapping);
//! opening goes through the transaction's opener (`crate::entry`), which obliges the
//! transaction to audit.
//!
//! # Plaintext columns
//! Every other column of a tenant table (a table in schema `public` with a `practice_id`
//! column) that could hold text a person typed is a field ciphertext. The integration test
//! `sealed_columns` reads the catalog and fails on any text, varchar, char, json, jsonb or xml
//! column (or array of them) of a tenant table that is not on [`PLAINTEXT_COLUMNS`], and on any
//! entry there that no longer exists.
//!
//! Add an entry only for a value that is not PHI — a closed category the database checks, an
//! id-like name, a staff member's own name — and say why in one line. Legacy plaintext columns
//! (written before encryption at rest) are on the list too, taken from the sealed tables
//! ([`SealedColumn::legacy`]): nothing writes them any more, and `chartroom keys
//! encrypt-existing` (run by `serve` at start-up) seals and empties them.

use std::sync::Arc;

use crypto::{CryptoError, FieldContext, Keyring, PracticeKeys};
use domain::{ObjectKind, PracticeId};

use crate::StoreError;

/// The type of a legacy plaintext column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plain {
    /// `text`.
    Text,
    /// `date`, sealed as its `YYYY-MM-DD` text.
    Date,
}

/// One sealed column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedColumn {
    /// The name bound into each ciphertext (the column's name without `_enc`).
    pub name: &'static str,
    /// The `bytea` column holding the ciphertext: `<name>_enc`.
    pub enc: &'static str,
    /// The legacy plaintext column `<name>` from before the column was sealed, if there is one.
    pub legacy: Option<Plain>,
}

/// `SealedColumn { name, enc: "<name>_enc", legacy }`.
macro_rules! sealed {
    ($name:literal) => {
        SealedColumn {
            name: $name,
            enc: concat!($name, "_enc"),
            legacy: None,
        }
    };
    ($name:literal, legacy $plain:ident) => {
        SealedColumn {
            name: $name,
            enc: concat!($name, "_enc"),
            legacy: Some(Plain::$plain),
        }
    };
}

/// The row id bound into a table's ciphertexts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowId {
    /// The uuid id column: its 16 bytes.
    pub id: &'static str,
    /// An `int4` version column, for a table with a row per version: its 4 bytes, big-endian,
    /// follow the id's ([`version_row_id`]).
    pub version: Option<&'static str>,
}

const fn id(id: &'static str) -> RowId {
    RowId { id, version: None }
}

/// The row id bound into a version's ciphertexts: id ‖ version (big-endian).
#[must_use]
pub fn version_row_id(id: uuid::Uuid, version: i32) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (d, s) in out
        .iter_mut()
        .zip(id.as_bytes().iter().chain(version.to_be_bytes().iter()))
    {
        *d = *s;
    }
    out
}

/// What a data-key rotation re-encrypts in a table, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reencrypt {
    /// Each sealed column, row by row: decrypted and sealed again under the active key with the
    /// same context (legacy plaintext sealed, and emptied, by `encrypt-existing`).
    Fields,
    /// The whole patient record: its fields sealed again and its blind-index search tokens
    /// (`patient_search_token`) rewritten under the active key.
    PatientRecord,
    /// Each blob into a new object of the blob store, the row repointed
    /// ([`crate::OwnerStore::reencrypt_blobs`]); only when the blob store is given.
    NewObjects,
    /// Nothing: the table holds no ciphertext.
    Nothing,
}

/// When the retention job ([`crate::OwnerStore::purge_expired`]) deletes a table's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    /// With the notes it purges (rows whose `note_id` is one of them); `audit_as` names the
    /// object type of the `retention.purge` event each row gets (`None`: counted only).
    WithNotes {
        /// The audited object type.
        audit_as: Option<ObjectKind>,
    },
    /// With the patients it purges (rows whose `patient_id` is one of them).
    WithPatients {
        /// The audited object type (`None`: counted only).
        audit_as: Option<ObjectKind>,
    },
    /// Never, for the reason given.
    Never(&'static str),
}

/// A tenant table holding sealed columns, or belonging to a patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedTable {
    /// The table (also bound into each ciphertext).
    pub table: &'static str,
    /// How the row id bound into its ciphertexts is formed (the row's key).
    pub row: RowId,
    /// The sealed columns.
    pub columns: &'static [SealedColumn],
    /// What a data-key rotation re-encrypts.
    pub reencrypt: Reencrypt,
    /// When the retention job deletes its rows.
    pub purge: Purge,
}

impl SealedTable {
    /// The field context of `column` of the row whose id bytes are `row`.
    #[must_use]
    pub fn context<'a>(
        &self,
        practice: PracticeId,
        column: &'a str,
        row: &'a [u8],
    ) -> FieldContext<'a> {
        FieldContext::new(practice, self.table, column, row)
    }

    /// Whether a column has a legacy plaintext column (sealed by `encrypt-existing`).
    #[must_use]
    pub fn has_legacy(&self) -> bool {
        self.columns.iter().any(|c| c.legacy.is_some())
    }

    /// Whether the field passes of a data-key rotation walk this table row by row.
    #[must_use]
    pub fn resealed_by_row(&self) -> bool {
        matches!(self.reencrypt, Reencrypt::Fields | Reencrypt::PatientRecord)
    }
}

/// Patients (`patients`): demographics and contact details. Re-encrypting rewrites the search
/// tokens too.
pub const PATIENT: SealedTable = SealedTable {
    table: "patient",
    row: id("patient_id"),
    columns: &[
        sealed!("given_name", legacy Text),
        sealed!("family_name", legacy Text),
        sealed!("date_of_birth", legacy Date),
        sealed!("phone", legacy Text),
        sealed!("email", legacy Text),
    ],
    reencrypt: Reencrypt::PatientRecord,
    purge: Purge::WithPatients {
        audit_as: Some(ObjectKind::Patient),
    },
};

/// Note versions (`notes`): content and reason, bound to note id ‖ version. Counted, not
/// audited, when purged: their note's event covers them.
pub const CLINICAL_NOTE_VERSION: SealedTable = SealedTable {
    table: "clinical_note_version",
    row: RowId {
        id: "note_id",
        version: Some("version"),
    },
    columns: &[sealed!("content"), sealed!("reason")],
    reencrypt: Reencrypt::Fields,
    purge: Purge::WithNotes { audit_as: None },
};

/// Note headers (`notes`): the body of a note written before versions existed.
pub const CLINICAL_NOTE: SealedTable = SealedTable {
    table: "clinical_note",
    row: id("note_id"),
    columns: &[sealed!("body", legacy Text)],
    reencrypt: Reencrypt::Fields,
    purge: Purge::WithNotes {
        audit_as: Some(ObjectKind::Note),
    },
};

/// Perio exams (`perio`): the whole charting session.
pub const PERIO_EXAM: SealedTable = SealedTable {
    table: "perio_exam",
    row: id("exam_id"),
    columns: &[sealed!("session")],
    reencrypt: Reencrypt::Fields,
    purge: Purge::WithPatients {
        audit_as: Some(ObjectKind::PerioExam),
    },
};

/// Break-glass grants (`break_glass`): the reason a clinician typed.
pub const BREAK_GLASS: SealedTable = SealedTable {
    table: "break_glass",
    row: id("grant_id"),
    columns: &[sealed!("reason")],
    reencrypt: Reencrypt::Fields,
    purge: Purge::WithPatients {
        audit_as: Some(ObjectKind::BreakGlass),
    },
};

/// Disclosures (`disclosures`): recipient, description and purpose.
pub const DISCLOSURE: SealedTable = SealedTable {
    table: "disclosure",
    row: id("disclosure_id"),
    columns: &[
        sealed!("recipient", legacy Text),
        sealed!("description", legacy Text),
        sealed!("purpose", legacy Text),
    ],
    reencrypt: Reencrypt::Fields,
    purge: Purge::WithPatients {
        audit_as: Some(ObjectKind::Disclosure),
    },
};

/// Visits (`notes`): ids and times only.
pub const VISIT: SealedTable = SealedTable {
    table: "visit",
    row: id("visit_id"),
    columns: &[],
    reencrypt: Reencrypt::Nothing,
    purge: Purge::WithPatients {
        audit_as: Some(ObjectKind::Visit),
    },
};

/// Payments of online bookings (`payments`): ids, states, amounts, the processor's ids;
/// purged with their patient, before their booking.
pub const BOOKING_PAYMENT: SealedTable = SealedTable {
    table: "booking_payment",
    row: id("payment_id"),
    columns: &[],
    reencrypt: Reencrypt::Nothing,
    purge: Purge::WithPatients {
        audit_as: Some(ObjectKind::BookingPayment),
    },
};

/// Online bookings (`booking`): ids, states, an amount; purged before their appointment.
pub const ONLINE_BOOKING: SealedTable = SealedTable {
    table: "online_booking",
    row: id("booking_id"),
    columns: &[],
    reencrypt: Reencrypt::Nothing,
    purge: Purge::WithPatients {
        audit_as: Some(ObjectKind::OnlineBooking),
    },
};

/// Intake responses (`intake`): the answers, the name typed as the signature and the
/// client's address, sealed, bound to the request id; counted, not audited, when purged: their
/// request's event covers them.
pub const INTAKE_RESPONSE: SealedTable = SealedTable {
    table: "intake_response",
    row: id("request_id"),
    columns: &[
        sealed!("answers"),
        sealed!("signer_name"),
        sealed!("client_address"),
    ],
    reencrypt: Reencrypt::Fields,
    purge: Purge::WithPatients { audit_as: None },
};

/// Outbox messages (`outbox`): the recipient and the template's slot values, bound to the
/// message id; purged with their client.
pub const OUTBOX_MESSAGE: SealedTable = SealedTable {
    table: "outbox_message",
    row: id("message_id"),
    columns: &[sealed!("recipient"), sealed!("slots")],
    reencrypt: Reencrypt::Fields,
    purge: Purge::WithPatients { audit_as: None },
};

/// Intake requests (`intake`): a form sent to a patient, its state, the reason a rejection
/// gave (sealed).
pub const INTAKE_REQUEST: SealedTable = SealedTable {
    table: "intake_request",
    row: id("request_id"),
    columns: &[sealed!("reject_reason")],
    reencrypt: Reencrypt::Fields,
    purge: Purge::WithPatients {
        audit_as: Some(ObjectKind::IntakeRequest),
    },
};

/// Client links (`links`): a digest, a purpose, ids and times; purged after the requests that
/// name them, counted only.
pub const CLIENT_LINK: SealedTable = SealedTable {
    table: "client_link",
    row: id("link_id"),
    columns: &[],
    reencrypt: Reencrypt::Nothing,
    purge: Purge::WithPatients { audit_as: None },
};

/// Members' Web Push subscriptions (`push`): the endpoint and its RFC 8291 keys, sealed as one
/// JSON value; no patient in them, so the retention job leaves them (they go with the
/// membership, or when the push service says they are gone).
pub const PUSH_SUBSCRIPTION: SealedTable = SealedTable {
    table: "push_subscription",
    row: id("subscription_id"),
    columns: &[sealed!("subscription")],
    reencrypt: Reencrypt::Fields,
    purge: Purge::Never(
        "a staff member's browser subscription: no patient data; removed with the membership or when the push service answers that it is gone",
    ),
};

/// Appointments (`appointments`): ids, times and a status.
pub const APPOINTMENT: SealedTable = SealedTable {
    table: "appointment",
    row: id("appointment_id"),
    columns: &[],
    reencrypt: Reencrypt::Nothing,
    purge: Purge::WithPatients {
        audit_as: Some(ObjectKind::Appointment),
    },
};

/// Audio chunks of captures (`capture`): ids, sizes, times and a hash; the audio is a blob.
/// Counted, not audited, when purged: their capture's event covers them. (The retention job
/// deletes a deleted patient's audio blobs before this: `capture.audio_purge`.)
pub const CAPTURE_CHUNK: SealedTable = SealedTable {
    table: "capture_chunk",
    row: id("capture_id"),
    columns: &[],
    reencrypt: Reencrypt::Nothing,
    purge: Purge::WithPatients { audit_as: None },
};

/// Captures (`capture`): ids, states and times.
pub const CAPTURE: SealedTable = SealedTable {
    table: "capture",
    row: id("capture_id"),
    columns: &[],
    reencrypt: Reencrypt::Nothing,
    purge: Purge::WithPatients {
        audit_as: Some(ObjectKind::Capture),
    },
};

/// Recording consents (`capture`): roles, methods and times, no names.
pub const RECORDING_CONSENT: SealedTable = SealedTable {
    table: "recording_consent",
    row: id("consent_id"),
    columns: &[],
    reencrypt: Reencrypt::Nothing,
    purge: Purge::WithPatients {
        audit_as: Some(ObjectKind::RecordingConsent),
    },
};

/// Legal holds (`retention`): a category code, no free text.
pub const LEGAL_HOLD: SealedTable = SealedTable {
    table: "legal_hold",
    row: id("patient_id"),
    columns: &[],
    reencrypt: Reencrypt::Nothing,
    purge: Purge::Never("a held patient is never purged: the hold is what keeps the record"),
};

/// Support grants (`support`): the reason an owner typed.
pub const SUPPORT_GRANT: SealedTable = SealedTable {
    table: "support_grant",
    row: id("grant_id"),
    columns: &[sealed!("reason")],
    reencrypt: Reencrypt::Fields,
    purge: Purge::Never("a grant to vendor support belongs to the practice, not to a patient"),
};

/// The blob registry (`blobs`): each blob is sealed in the blob store, the row names its
/// object and the data-key version.
pub const BLOB_OBJECT: SealedTable = SealedTable {
    table: "blob_object",
    row: id("blob_id"),
    columns: &[],
    reencrypt: Reencrypt::NewObjects,
    purge: Purge::Never(
        "a capture's audio blobs are deleted by the audio retention pass (capture.audio_purge), which also runs for deleted patients; other blobs belong to no patient",
    ),
};

/// Draft sentences (`drafts`): each sentence's text, bound to draft id ‖ index. Counted with
/// the scribe's records when purged.
pub const DRAFT_SENTENCE: SealedTable = SealedTable {
    table: "draft_sentence",
    row: RowId {
        id: "draft_id",
        version: Some("idx"),
    },
    columns: &[sealed!("text")],
    reencrypt: Reencrypt::Fields,
    purge: Purge::WithPatients { audit_as: None },
};

/// Note drafts (`drafts`): the draft as produced (its canonical note content), kept so the
/// signed note can show what the clinician changed.
pub const NOTE_DRAFT: SealedTable = SealedTable {
    table: "note_draft",
    row: id("draft_id"),
    columns: &[sealed!("content")],
    reencrypt: Reencrypt::Fields,
    purge: Purge::WithPatients {
        audit_as: Some(ObjectKind::NoteDraft),
    },
};

/// Transcript revisions (`transcripts`): every text a segment has had, bound to segment id ‖
/// revision.
pub const TRANSCRIPT_REVISION: SealedTable = SealedTable {
    table: "transcript_revision",
    row: RowId {
        id: "segment_id",
        version: Some("revision"),
    },
    columns: &[sealed!("text")],
    reencrypt: Reencrypt::Fields,
    purge: Purge::WithPatients { audit_as: None },
};

/// Transcript segments (`transcripts`): the current text of each segment.
pub const TRANSCRIPT_SEGMENT: SealedTable = SealedTable {
    table: "transcript_segment",
    row: id("segment_id"),
    columns: &[sealed!("text")],
    reencrypt: Reencrypt::Fields,
    purge: Purge::WithPatients { audit_as: None },
};

/// Assistant turns (`turns`): the prompt sent and the output received.
pub const ASSISTANT_TURN: SealedTable = SealedTable {
    table: "assistant_turn",
    row: id("turn_id"),
    columns: &[sealed!("prompt"), sealed!("output")],
    reencrypt: Reencrypt::Fields,
    purge: Purge::WithPatients {
        audit_as: Some(ObjectKind::AssistantTurn),
    },
};

/// AI providers (`providers`): the API key a practice stores for a vendor.
pub const AI_PROVIDER: SealedTable = SealedTable {
    table: "ai_provider",
    row: id("provider_id"),
    columns: &[sealed!("api_key")],
    reencrypt: Reencrypt::Fields,
    purge: Purge::Never("a provider's registration belongs to the practice, not to a patient"),
};

/// Security incidents (`incidents`): the description, the response and outcome notes and the
/// four factors of the risk assessment.
pub const INCIDENT: SealedTable = SealedTable {
    table: "incident",
    row: id("incident_id"),
    columns: &[
        sealed!("description"),
        sealed!("response"),
        sealed!("outcome"),
        sealed!("nature"),
        sealed!("person"),
        sealed!("acquired"),
        sealed!("mitigation"),
    ],
    reencrypt: Reencrypt::Fields,
    purge: Purge::Never(
        "an incident belongs to the practice and is kept as breach-notification evidence",
    ),
};

/// Patients' right-of-access requests (`rights`): the third-party recipient and the written
/// reasons of an extension or a denial.
pub const ACCESS_REQUEST: SealedTable = SealedTable {
    table: "access_request",
    row: id("request_id"),
    columns: &[
        sealed!("recipient"),
        sealed!("extension_reason"),
        sealed!("denial_reason"),
    ],
    reencrypt: Reencrypt::Fields,
    purge: Purge::WithPatients {
        audit_as: Some(ObjectKind::AccessRequest),
    },
};

/// Patients' amendment requests (`amendments`): the change asked for, the written reasons of
/// an extension or a denial, the patient's statement of disagreement and the practice's
/// rebuttal.
pub const AMENDMENT_REQUEST: SealedTable = SealedTable {
    table: "amendment_request",
    row: id("request_id"),
    columns: &[
        sealed!("requested_change"),
        sealed!("extension_reason"),
        sealed!("denial_reason"),
        sealed!("disagreement"),
        sealed!("rebuttal"),
    ],
    reencrypt: Reencrypt::Fields,
    purge: Purge::WithPatients {
        audit_as: Some(ObjectKind::AmendmentRequest),
    },
};

/// Every sealed or patient-owned tenant table, in purge order (a table before every table it
/// refers to).
pub const TABLES: &[SealedTable] = &[
    DRAFT_SENTENCE,
    NOTE_DRAFT,
    TRANSCRIPT_REVISION,
    TRANSCRIPT_SEGMENT,
    ASSISTANT_TURN,
    AMENDMENT_REQUEST,
    CLINICAL_NOTE_VERSION,
    CLINICAL_NOTE,
    PERIO_EXAM,
    BREAK_GLASS,
    DISCLOSURE,
    CAPTURE_CHUNK,
    CAPTURE,
    RECORDING_CONSENT,
    VISIT,
    INTAKE_RESPONSE,
    INTAKE_REQUEST,
    CLIENT_LINK,
    OUTBOX_MESSAGE,
    BOOKING_PAYMENT,
    ONLINE_BOOKING,
    APPOINTMENT,
    LEGAL_HOLD,
    ACCESS_REQUEST,
    PATIENT,
    SUPPORT_GRANT,
    BLOB_OBJECT,
    AI_PROVIDER,
    INCIDENT,
    PUSH_SUBSCRIPTION,
];

/// The registered sealed column `table.enc` (`enc` is the ciphertext column, `<name>_enc`).
#[must_use]
pub fn sealed_column(
    table: &str,
    enc: &str,
) -> Option<(&'static SealedTable, &'static SealedColumn)> {
    TABLES
        .iter()
        .filter(|t| t.table == table)
        .find_map(|t| t.columns.iter().find(|c| c.enc == enc).map(|c| (t, c)))
}

/// Maps a crypto failure to a [`StoreError`] without losing what an operator needs: the full
/// error (ids, versions, the `CRYPTO-00xx` code; never plaintext or key material) is logged,
/// and the returned error names the code and what it means. Always a server fault (500).
pub(crate) fn crypto_error(e: &CryptoError) -> StoreError {
    tracing::error!(code = e.code(), error = %e, "encryption at rest failed");
    StoreError::Corrupt(match e {
        CryptoError::Decrypt | CryptoError::Truncated { .. } => {
            "CRYPTO-0001: a ciphertext failed to decrypt: it was altered, or copied from another row or practice"
        }
        CryptoError::UnknownFormat { .. } => "CRYPTO-0003: unknown ciphertext format",
        CryptoError::UnknownDataKey { .. } => {
            "CRYPTO-0004: the data key version that sealed this value is not available"
        }
        CryptoError::KeyDestroyed { .. } => {
            "CRYPTO-0005: the practice's keys were destroyed; its encrypted data can no longer be read"
        }
        CryptoError::NoDataKey { .. } => "CRYPTO-0006: the practice has no data key",
        CryptoError::InstallationKey { .. } => {
            "CRYPTO-0009: the installation data key is rotated with the KEK only and never destroyed"
        }
        CryptoError::KekUnwrap { .. } => {
            "CRYPTO-0010: the key-encryption key could not unwrap the practice's data key (wrong KEK?)"
        }
        CryptoError::UnknownKek { .. } => {
            "CRYPTO-0011: the key-encryption key is not available to this key provider (wrong KEK?)"
        }
        CryptoError::KeyStore(_) => "CRYPTO-0040: the wrapped-key store failed",
        CryptoError::Provider { .. } => "CRYPTO-0030: the key provider failed",
        _ => "CRYPTO: encryption at rest failed (see the server log)",
    })
}

/// The practice's keys for writing: provisioned on first use.
pub(crate) async fn write_keys(
    keyring: &Keyring,
    practice: PracticeId,
) -> Result<Arc<PracticeKeys>, StoreError> {
    match keyring.keys(practice).await {
        Ok(k) => Ok(k),
        Err(CryptoError::NoDataKey { .. }) => {
            keyring
                .ensure_practice_keys(practice)
                .await
                .map_err(|e| crypto_error(&e))?;
            keyring.keys(practice).await.map_err(|e| crypto_error(&e))
        }
        Err(e) => Err(crypto_error(&e)),
    }
}

/// Seals one value with the practice's active data key (provisioned on first use), bound to
/// `ctx`.
pub(crate) async fn seal_field(
    keyring: &Keyring,
    ctx: &FieldContext<'_>,
    plain: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let keys = write_keys(keyring, ctx.practice).await?;
    crypto::encrypt_field(keys.active(), ctx, plain).map_err(|e| crypto_error(&e))
}

/// A text-like column of a tenant table that may hold cleartext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaintextColumn {
    /// The table.
    pub table: &'static str,
    /// The column.
    pub column: &'static str,
    /// Why it may stay in the clear.
    pub reason: &'static str,
    /// For a legacy plaintext column: the `bytea` column that holds its value sealed now.
    pub sealed_in: Option<&'static str>,
}

const fn col(table: &'static str, column: &'static str, reason: &'static str) -> PlaintextColumn {
    PlaintextColumn {
        table,
        column,
        reason,
        sealed_in: None,
    }
}

const CLOSED: &str = "closed category, enforced by a check constraint: no free text";
const STRIPE_ID: &str = "the payment processor's own object id (its prefix and shape enforced by a check constraint): names no patient, and the processor never learns who it is";
const LEGACY: &str = "legacy plaintext from before its column was sealed: never written now; `keys encrypt-existing` seals and empties it";

/// The columns that are in the clear by design (the legacy ones come from [`TABLES`]).
const CLEAR: &[PlaintextColumn] = &[
    col(
        "practice",
        "name",
        "the practice's business name, shown to its staff: not about a patient",
    ),
    col(
        "practice",
        "settings",
        "practice configuration: the closed, typed set of domain::practice::PracticeSettings (schema check practice_settings_shape), no patient data",
    ),
    col("practice", "kind", CLOSED),
    col("membership", "roles", CLOSED),
    col("membership_invitation", "roles", CLOSED),
    col("appointment", "status", CLOSED),
    col(
        "booking_service",
        "name",
        "the practice's public catalogue name of a service (\"Cleaning\"), shown on its booking page: not about a patient",
    ),
    col("booking_service", "payment", CLOSED),
    col("booking_settings", "currency", CLOSED),
    col("booking_settings", "new_clients", CLOSED),
    col("booking_payment", "kind", CLOSED),
    col("booking_payment", "state", CLOSED),
    col("booking_payment", "currency", CLOSED),
    col("booking_payment", "then_status", CLOSED),
    col("booking_payment", "stripe_session", STRIPE_ID),
    col("booking_payment", "stripe_payment_intent", STRIPE_ID),
    col("booking_payment", "stripe_setup_intent", STRIPE_ID),
    col("booking_payment", "stripe_customer", STRIPE_ID),
    col("booking_payment", "stripe_payment_method", STRIPE_ID),
    col("booking_payment", "stripe_refund", STRIPE_ID),
    col("booking_payment", "last_error", CLOSED),
    col("online_booking", "client_kind", CLOSED),
    col("online_booking", "payment", CLOSED),
    col("online_booking", "status", CLOSED),
    col("outbox_message", "template", CLOSED),
    col("outbox_message", "channel", CLOSED),
    col("outbox_message", "cause", CLOSED),
    col("outbox_message", "status", CLOSED),
    col("outbox_message", "last_error", CLOSED),
    col(
        "outbox_message",
        "time_zone",
        "an IANA time-zone name (checked shape) for quiet hours: not about a patient",
    ),
    col(
        "outbox_message",
        "provider",
        "the vendor's registry name (checked shape): not about a patient",
    ),
    col(
        "outbox_message",
        "provider_message_id",
        "the provider's opaque message id (checked shape), for delivery webhooks",
    ),
    col("clinical_note", "template", CLOSED),
    col("clinical_note", "status", CLOSED),
    col("clinical_note_version", "kind", CLOSED),
    col(
        "clinical_note_version",
        "signer_name",
        "the signing staff member's printed name (not a patient's), shown in every signature and bound by the version hash",
    ),
    col(
        "clinical_note_version",
        "signer_credential",
        "the signer's credential (RDH, DDS …), shown in every signature and bound by the version hash",
    ),
    col(
        "clinical_note_version",
        "signed_tz",
        "the IANA time-zone name a signature is shown in, bound by the version hash",
    ),
    col(
        "clinical_note_version",
        "signature_meaning",
        "the fixed meaning of a signature (`authored and approved`), bound by the version hash",
    ),
    col("audit_event", "action", CLOSED),
    col("audit_event", "outcome", CLOSED),
    col(
        "audit_event",
        "object_type",
        "the name of the kind of record an event names (`note`, `patient` …): no free text",
    ),
    col(
        "audit_event",
        "details",
        "ids, counts, flags and filter names only, never a value a person typed (`TenantTx::audit_details`)",
    ),
    col(
        "audit_forward",
        "sink",
        "the operator's name for an audit log sink (`otlp`), checked against a fixed pattern: configuration",
    ),
    col("disclosure", "kind", CLOSED),
    col(
        "practice_data_key",
        "kek_id",
        "the key-encryption key's name at the key provider: key metadata, no patient data",
    ),
    col("legal_hold", "category", CLOSED),
    col("support_grant", "scope", CLOSED),
    col(
        "assistant_turn",
        "provider_label",
        "the label an owner gave an AI provider (or the built-in default's name): configuration, not about a patient",
    ),
    col(
        "assistant_turn",
        "model",
        "the provider's model name (`whisper-1`, `gpt-4o` …): configuration, not about a patient",
    ),
    col("assistant_turn", "purpose", CLOSED),
    col("assistant_turn", "outcome", CLOSED),
    col(
        "transcript_segment",
        "speaker",
        "a diarization label kept only as `speaker_<n>` (a number or one letter; `transcripts`): never a name",
    ),
    col("note_draft", "template", CLOSED),
    col("draft_sentence", "section", CLOSED),
    col("draft_sentence", "flags", CLOSED),
    col(
        "ai_provider",
        "label",
        "the name staff give an AI service (`Hygiene scribe`): configuration, not about a patient",
    ),
    col("ai_provider", "adapter", CLOSED),
    col("ai_provider", "purpose", CLOSED),
    col("ai_provider", "hosting", CLOSED),
    col(
        "ai_provider",
        "base_url",
        "the AI service's address, checked by the egress gate: configuration, no patient data",
    ),
    col(
        "ai_provider",
        "model",
        "the model name sent to the AI service: configuration, no patient data",
    ),
    col(
        "ai_provider",
        "vendor",
        "the subprocessor's business name, shown in the practice's posture: not about a patient",
    ),
    col(
        "ai_provider",
        "baa_document_ref",
        "the BAA's contract number or file name: compliance metadata, not about a patient",
    ),
    col(
        "ai_provider",
        "retention",
        "the vendor's stated retention (`zero retention`, `30 days`): compliance metadata",
    ),
    col(
        "ai_provider",
        "region",
        "where the vendor processes data (`us-east-1`): compliance metadata",
    ),
    col("scribe_policy", "consent_rule", CLOSED),
    col("recording_consent", "consented_by", CLOSED),
    col("recording_consent", "method", CLOSED),
    col("recording_consent", "consent_rule", CLOSED),
    col("capture", "state", CLOSED),
    col("capture", "stop_reason", CLOSED),
    col("capture", "audio_purge_reason", CLOSED),
    col("capture_chunk", "transcription", CLOSED),
    col("access_request", "form", CLOSED),
    col("access_request", "status", CLOSED),
    col("amendment_request", "record_kind", CLOSED),
    col("amendment_request", "status", CLOSED),
    col("amendment_request", "landed_kind", CLOSED),
    col("incident", "detection_source", CLOSED),
    col("incident", "status", CLOSED),
    col("incident", "scope_kind", CLOSED),
    col(
        "incident_affected",
        "state",
        "a two-letter state code, checked: not an identifier by itself (164.514(b)(2)(i)(B))",
    ),
    col("incident_letter", "recipient_kind", CLOSED),
    col(
        "incident_alert",
        "clock",
        "the name of a breach clock (`alert_24h`, `individuals`), checked: no free text",
    ),
    col(
        "patient_residence",
        "state",
        "a two-letter state code, checked: not an identifier by itself (164.514(b)(2)(i)(B))",
    ),
    col("client_link", "purpose", CLOSED),
    col("waitlist_entry", "state", CLOSED),
    col("waitlist_offer", "state", CLOSED),
    col(
        "push_subscription",
        "endpoint_host",
        "the host name of a browser vendor's push service (`fcm.googleapis.com`), checked against the subprocessor registry: not about a patient",
    ),
    col("intake_request", "status", CLOSED),
    col(
        "intake_request",
        "form_id",
        "the id of a form definition shipped with Chartroom (`dental_health_history`): checked by a constraint, not about a patient",
    ),
];

/// How many legacy `text` columns the sealed tables have.
const fn legacy_text_count() -> usize {
    let mut n = 0;
    let mut tables = TABLES;
    while let [t, rest @ ..] = tables {
        let mut columns = t.columns;
        while let [c, more @ ..] = columns {
            if matches!(c.legacy, Some(Plain::Text)) {
                n += 1;
            }
            columns = more;
        }
        tables = rest;
    }
    n
}

/// [`CLEAR`], then one entry per legacy `text` column of [`TABLES`] (evaluated at compile
/// time: `N` is exactly their number).
const fn plaintext_columns<const N: usize>() -> [PlaintextColumn; N] {
    let mut out = [col("", "", ""); N];
    let mut slots: &mut [PlaintextColumn] = &mut out;
    let mut clear = CLEAR;
    while let [c, rest @ ..] = clear {
        if let [slot, more @ ..] = slots {
            *slot = *c;
            slots = more;
        }
        clear = rest;
    }
    let mut tables = TABLES;
    while let [t, rest @ ..] = tables {
        let mut columns = t.columns;
        while let [c, more @ ..] = columns {
            if matches!(c.legacy, Some(Plain::Text))
                && let [slot, free @ ..] = slots
            {
                *slot = PlaintextColumn {
                    table: t.table,
                    column: c.name,
                    reason: LEGACY,
                    sealed_in: Some(c.enc),
                };
                slots = free;
            }
            columns = more;
        }
        tables = rest;
    }
    out
}

const PLAINTEXT: [PlaintextColumn; CLEAR.len() + legacy_text_count()] = plaintext_columns();

/// Every text-like column of a tenant table that is allowed to hold cleartext.
pub const PLAINTEXT_COLUMNS: &[PlaintextColumn] = &PLAINTEXT;

/// The entry for `table.column`, if that column may hold cleartext.
#[must_use]
pub fn plaintext_allowed(table: &str, column: &str) -> Option<&'static PlaintextColumn> {
    PLAINTEXT_COLUMNS
        .iter()
        .find(|c| c.table == table && c.column == column)
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 15.3 — the registry's own invariants: one entry per table, ciphertext columns named
    // `<name>_enc`, columns exactly where something is re-encrypted row by row.
    #[test]
    fn the_registry_is_consistent() {
        for (i, t) in TABLES.iter().enumerate() {
            assert!(
                TABLES.iter().skip(i + 1).all(|o| o.table != t.table),
                "{} is registered twice",
                t.table
            );
            assert_eq!(
                t.resealed_by_row(),
                !t.columns.is_empty(),
                "{}: sealed columns exactly when the field passes walk it",
                t.table
            );
            for c in t.columns {
                assert_eq!(c.enc, format!("{}_enc", c.name), "{}", t.table);
                assert_eq!(sealed_column(t.table, c.enc), Some((t, c)));
            }
        }
        assert_eq!(sealed_column("patient", "given_name"), None);
    }

    // issue 15.3 — the legacy plaintext columns on the allow-list come from the sealed tables:
    // each legacy text column once, with its ciphertext column, and nothing left unfilled.
    #[test]
    fn legacy_plaintext_columns_come_from_the_sealed_tables() {
        let legacy: Vec<(&str, &str, Option<&str>)> = PLAINTEXT_COLUMNS
            .iter()
            .filter(|c| c.sealed_in.is_some())
            .map(|c| (c.table, c.column, c.sealed_in))
            .collect();
        assert_eq!(
            legacy,
            vec![
                ("clinical_note", "body", Some("body_enc")),
                ("disclosure", "recipient", Some("recipient_enc")),
                ("disclosure", "description", Some("description_enc")),
                ("disclosure", "purpose", Some("purpose_enc")),
                ("patient", "given_name", Some("given_name_enc")),
                ("patient", "family_name", Some("family_name_enc")),
                ("patient", "phone", Some("phone_enc")),
                ("patient", "email", Some("email_enc")),
            ]
        );
        assert_eq!(PLAINTEXT_COLUMNS.len(), CLEAR.len() + legacy.len());
        assert!(PLAINTEXT_COLUMNS.iter().all(|c| !c.table.is_empty()));
        assert!(
            plaintext_allowed("patient", "date_of_birth").is_none(),
            "a date is not text"
        );
    }

    #[test]
    fn a_version_row_id_is_the_id_then_the_version_big_endian() {
        let id = uuid::Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        let row = version_row_id(id, 0x0a0b_0c0d);
        assert_eq!(&row[..16], id.as_bytes());
        assert_eq!(&row[16..], &[0x0a, 0x0b, 0x0c, 0x0d]);
    }

    /// The store modules `source` names as `crate::<module>` (outside comments).
    fn uses(source: &str) -> Vec<String> {
        let mut out: Vec<String> = source
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .flat_map(|l| l.split("crate::").skip(1))
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect::<String>()
            })
            .filter(|m| !m.is_empty())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    // issue 15.3 — the registry is a leaf, and the modules that used to import each other in a
    // circle (admin, keys, notes, patients, perio) no longer do.
    #[test]
    fn the_registry_is_a_leaf_and_the_store_circle_is_gone() {
        let modules = [
            ("sealed_columns", include_str!("sealed_columns.rs")),
            ("admin", include_str!("admin.rs")),
            ("keys", include_str!("keys.rs")),
            ("notes", include_str!("notes.rs")),
            ("patients", include_str!("patients.rs")),
            ("perio", include_str!("perio.rs")),
            ("retention", include_str!("retention.rs")),
        ];
        let leaf = uses(modules[0].1);
        assert!(
            leaf.is_empty(),
            "the registry must use no other store module: {leaf:?}"
        );
        let edges: Vec<(&str, Vec<String>)> = modules
            .iter()
            .map(|(name, src)| (*name, uses(src)))
            .collect();
        // Depth-first search for a path from each module back to itself.
        for (start, _) in &edges {
            let mut stack = vec![vec![(*start).to_owned()]];
            while let Some(path) = stack.pop() {
                let last = path.last().cloned().unwrap_or_default();
                let next = edges
                    .iter()
                    .find(|(n, _)| *n == last)
                    .map(|(_, e)| e.clone())
                    .unwrap_or_default();
                for n in next {
                    assert!(
                        n != *start,
                        "a circle of store modules: {} -> {n}",
                        path.join(" -> ")
                    );
                    if !path.contains(&n) {
                        let mut longer = path.clone();
                        longer.push(n);
                        stack.push(longer);
                    }
                }
            }
        }
    }
}
