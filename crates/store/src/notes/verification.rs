//! Verification of note versions (INT-01): every version's hash recomputed from its stored
//! content, per note ([`verify`]) and for a whole practice
//! ([`crate::OwnerStore::verify_notes`]).
//!
//! # Guarantees
//! - A version whose ciphertext no longer decrypts counts as mismatched, never as intact.
//! - Versions hashed under scheme 1 are reported as such: their hash does not bind the
//!   printed name, credential, time zone or creation time.
//! - The practice-wide pass audits every note it decrypted (`note.verify`) in the
//!   transaction that decrypted it.

use crypto::Keyring;
use domain::notes::{HashScheme, Template};
use domain::{NoteId, PatientId, PracticeId};
use serde::Serialize;

use super::stored::{NoteRef, VERSION, VersionRow, header, versions};
use crate::entry::Opener;
use crate::{StoreError, TenantTx};

/// What [`verify`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Versions checked.
    pub versions: usize,
    /// Versions whose content no longer matches their hash (or does not decrypt).
    pub mismatched: Vec<i32>,
    /// Versions hashed under scheme 1 (written before scheme 2): their hash does not bind the
    /// printed name, credential, time zone or creation time, so a change to those is not
    /// detected.
    pub manifestation_not_bound: Vec<i32>,
}

/// Recomputes every version's hash (INT-01). A version whose ciphertext no longer decrypts
/// counts as mismatched.
pub async fn verify(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: NoteId,
) -> Result<Option<Verification>, StoreError> {
    let Some(h) = header(tx, id, false).await? else {
        return Ok(None);
    };
    let n = h.note_ref()?;
    let practice = tx.practice();
    let rows = versions(tx, id, "true").await?;
    Ok(Some(check(&tx.opener(keyring), practice, &n, rows).await?))
}

/// Checks `rows` (versions of note `n`): which no longer match their hash or no longer
/// decrypt, and which were hashed under scheme 1.
async fn check(
    opener: &Opener<'_>,
    practice: PracticeId,
    n: &NoteRef,
    rows: Vec<VersionRow>,
) -> Result<Verification, StoreError> {
    let mut out = Verification {
        versions: rows.len(),
        mismatched: Vec::new(),
        manifestation_not_bound: Vec::new(),
    };
    for r in rows {
        let number = r.version;
        if HashScheme::from_i16(r.hash_scheme).is_some_and(|s| !s.binds_manifestation()) {
            out.manifestation_not_bound.push(number);
        }
        match r.open(opener, practice, n).await {
            Ok(version) if version.hash_ok => {}
            Ok(_) | Err(StoreError::Corrupt(_)) => out.mismatched.push(number),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// What [`crate::OwnerStore::verify_notes`] found in one practice.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PracticeVerification {
    /// Notes checked.
    pub notes: usize,
    /// Versions checked.
    pub versions: usize,
    /// Notes with versions whose content no longer matches their hash (or no longer
    /// decrypts), with those version numbers.
    pub mismatched: Vec<(NoteId, Vec<i32>)>,
    /// Versions hashed under scheme 1 (written before scheme 2), whose hash does not bind the
    /// printed name, credential, time zone or creation time.
    pub manifestation_not_bound: usize,
}

impl crate::OwnerStore {
    /// `chartroom notes verify`: recomputes the hash of every version of every note of
    /// `practice` (INT-01), as the owner role, in pages of 200 notes, one transaction each.
    /// Decrypts every version; each note checked gets a `note.verify` event (no actor; its
    /// patient and note, `via: cli`, whether it is intact, how many versions and how many
    /// mismatched) in the transaction that decrypted it.
    pub async fn verify_notes(
        &self,
        practice: PracticeId,
    ) -> Result<PracticeVerification, StoreError> {
        let keyring = self.keyring()?;
        let mut out = PracticeVerification::default();
        let mut after = uuid::Uuid::nil();
        loop {
            let mut tx = self.begin_in(practice).await?;
            let ids: Vec<(uuid::Uuid, uuid::Uuid, String)> = sqlx::query_as(
                "select note_id, patient_id, template from clinical_note
                  where practice_id = $1 and note_id > $2 order by note_id limit 200",
            )
            .bind(practice)
            .bind(after)
            .fetch_all(tx.conn())
            .await?;
            let Some(last) = ids.last() else {
                tx.commit().await?;
                break;
            };
            after = last.0;
            let opener = tx.opener(keyring);
            let mut events = Vec::with_capacity(ids.len());
            for (note, patient, template) in ids {
                out.notes += 1;
                let n = NoteRef {
                    id: note,
                    patient,
                    template: Template::parse(&template)
                        .ok_or(StoreError::Corrupt("clinical_note.template"))?,
                };
                let rows: Vec<VersionRow> = sqlx::query_as(&format!(
                    "select {VERSION} from clinical_note_version
                      where practice_id = $1 and note_id = $2 order by version"
                ))
                .bind(practice)
                .bind(note)
                .fetch_all(tx.conn())
                .await?;
                let v = check(&opener, practice, &n, rows).await?;
                let mut e = tx.event(domain::AuditAction::NoteVerify);
                e.patient = Some(PatientId::from_uuid(patient));
                e.object = Some(domain::AuditObject::note(NoteId::from_uuid(note)));
                e.details = Some(serde_json::json!({
                    "via": "cli",
                    "ok": v.mismatched.is_empty(),
                    "versions": v.versions,
                    "mismatched": v.mismatched.len(),
                }));
                events.push(e);
                out.versions += v.versions;
                out.manifestation_not_bound += v.manifestation_not_bound.len();
                if !v.mismatched.is_empty() {
                    out.mismatched.push((NoteId::from_uuid(note), v.mismatched));
                }
            }
            tx.append(&events).await?;
            tx.commit().await?;
        }
        Ok(out)
    }
}
