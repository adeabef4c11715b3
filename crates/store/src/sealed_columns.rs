//! The sealed-column registry: the one list of the text, varchar and jsonb columns of tenant
//! tables that may hold cleartext, each with its reason.
//!
//! Every other column of a tenant table (a table in schema `public` with a `practice_id`
//! column) that could hold text a person typed is a field ciphertext: a `bytea` `*_enc`
//! column sealed with the practice's data key and bound to (practice, table, column, row)
//! (`crypto::encrypt_field`). The integration test `sealed_columns` reads the catalog and
//! fails on any text, varchar, char, json, jsonb or xml column (or array of them) of a tenant
//! table that is not listed here, and on any entry here that no longer exists.
//!
//! Add an entry only for a value that is not PHI — a closed category the database checks, an
//! id-like name, a staff member's own name — and say why in one line. Legacy plaintext columns
//! (written before encryption at rest) are listed too: nothing writes them any more, and
//! `chartroom keys encrypt-existing` (run by `serve` at start-up) seals and empties them.

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

/// A legacy plaintext column, replaced by the ciphertext column `sealed_in`.
const fn legacy(
    table: &'static str,
    column: &'static str,
    sealed_in: &'static str,
) -> PlaintextColumn {
    PlaintextColumn {
        table,
        column,
        reason: "legacy plaintext from before its column was sealed: never written now; `keys encrypt-existing` seals and empties it",
        sealed_in: Some(sealed_in),
    }
}

const CLOSED: &str = "closed category, enforced by a check constraint: no free text";

/// Every text-like column of a tenant table that is allowed to hold cleartext.
pub const PLAINTEXT_COLUMNS: &[PlaintextColumn] = &[
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
    legacy("patient", "given_name", "given_name_enc"),
    legacy("patient", "family_name", "family_name_enc"),
    legacy("patient", "phone", "phone_enc"),
    legacy("patient", "email", "email_enc"),
    col("appointment", "status", CLOSED),
    legacy("clinical_note", "body", "body_enc"),
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
    legacy("disclosure", "recipient", "recipient_enc"),
    legacy("disclosure", "description", "description_enc"),
    legacy("disclosure", "purpose", "purpose_enc"),
    col("disclosure", "kind", CLOSED),
    col(
        "practice_data_key",
        "kek_id",
        "the key-encryption key's name at the key provider: key metadata, no patient data",
    ),
    col("legal_hold", "category", CLOSED),
    col("support_grant", "scope", CLOSED),
];

/// The entry for `table.column`, if that column may hold cleartext.
#[must_use]
pub fn plaintext_allowed(table: &str, column: &str) -> Option<&'static PlaintextColumn> {
    PLAINTEXT_COLUMNS
        .iter()
        .find(|c| c.table == table && c.column == column)
}

/// A table whose sealed columns are each bound to one uuid row id (`FieldContext` row =
/// the id's 16 bytes); the re-encryption passes ([`crate::OwnerStore::encrypt_existing`],
/// [`crate::OwnerStore::rotate_data_key_audited`]) walk these generically. Patients, notes,
/// note versions and perio exams have passes of their own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowSealed {
    /// The table (also bound into each ciphertext).
    pub(crate) table: &'static str,
    /// The uuid id column.
    pub(crate) id: &'static str,
    /// The sealed columns: `<name>_enc` holds the ciphertext, `<name>` is bound into it.
    pub(crate) columns: &'static [&'static str],
    /// Whether legacy plaintext columns `<name>` exist (sealed by `encrypt-existing`).
    pub(crate) legacy: bool,
}

/// The tables [`RowSealed`] describes.
pub(crate) const ROW_SEALED: &[RowSealed] = &[
    RowSealed {
        table: crate::disclosures::TABLE,
        id: "disclosure_id",
        columns: &crate::disclosures::SEALED,
        legacy: true,
    },
    RowSealed {
        table: crate::break_glass::TABLE,
        id: "grant_id",
        columns: &["reason"],
        legacy: false,
    },
    RowSealed {
        table: crate::support::TABLE,
        id: "grant_id",
        columns: &["reason"],
        legacy: false,
    },
];
