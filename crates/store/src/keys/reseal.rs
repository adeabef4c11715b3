//! Re-encryption passes: the rows of the registered sealed tables
//! ([`crate::sealed_columns::TABLES`]) of one practice that still hold plaintext, or (for a
//! data-key rotation) a ciphertext under another data-key version, sealed again with the
//! active key, batch by batch.
//!
//! # Guarantees
//! - The passes take their tables, columns, row keys and field contexts from the registry;
//!   they write no sealed table's SQL by hand. Every table a rotation re-encrypts is counted
//!   in [`ResealReport`] (checked by this module's tests).
//! - Each batch is one transaction with its rows locked (`for update`); a ciphertext is
//!   re-sealed under the same field context, legacy plaintext is sealed and its column
//!   emptied in the same update. A rerun continues where an interrupted pass stopped.
//! - The passes decrypt without auditing (the opener is the `_unaudited_for_reseal` one);
//!   the audited commands that run them ([`super::commands`]) record the counts.

use std::fmt::Write as _;

use crypto::DekVersion;
use domain::PracticeId;

use crate::StoreError;
use crate::sealed_columns::{
    self, Plain, Reencrypt, SealedTable, TABLES, crypto_error, write_keys,
};

/// What a re-encryption pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Patient rows sealed (or re-sealed) with the active key.
    pub patients: u64,
    /// Note rows sealed (or re-sealed) with the active key.
    pub notes: u64,
    /// Blobs re-encrypted under the active key (into new objects).
    pub blobs: u64,
    /// Perio exam sessions re-sealed with the active key.
    pub perio_exams: u64,
    /// Disclosures sealed (or re-sealed) with the active key.
    pub disclosures: u64,
    /// Break-glass and support-grant reasons re-sealed with the active key.
    pub grant_reasons: u64,
    /// Scribe rows (assistant turns, transcript segments and revisions, note drafts and their
    /// sentences) re-sealed with the active key.
    pub scribe: u64,
    /// AI provider API keys re-sealed with the active key.
    pub provider_keys: u64,
    /// Incidents (their notes and assessments) re-sealed with the active key.
    pub incidents: u64,
    /// Intake records (answers, signatures, client addresses, rejection reasons) re-sealed
    /// with the active key.
    pub intake: u64,
    /// Outbox messages (recipient and slots) re-sealed with the active key.
    pub outbox_messages: u64,
    /// Right-of-access requests (recipient and written reasons) re-sealed with the active key.
    pub access_requests: u64,
    /// Amendment requests (the change asked for, written reasons, statements of disagreement
    /// and rebuttals) re-sealed with the active key.
    pub amendment_requests: u64,
    /// Web Push subscriptions (endpoint and keys) re-sealed with the active key.
    pub push_subscriptions: u64,
}

impl ResealReport {
    /// The sum of the reports of several practices.
    pub fn total<'a>(reports: impl IntoIterator<Item = &'a ResealReport>) -> Self {
        reports.into_iter().fold(Self::default(), |t, r| Self {
            patients: t.patients + r.patients,
            notes: t.notes + r.notes,
            blobs: t.blobs + r.blobs,
            perio_exams: t.perio_exams + r.perio_exams,
            disclosures: t.disclosures + r.disclosures,
            grant_reasons: t.grant_reasons + r.grant_reasons,
            scribe: t.scribe + r.scribe,
            provider_keys: t.provider_keys + r.provider_keys,
            incidents: t.incidents + r.incidents,
            intake: t.intake + r.intake,
            outbox_messages: t.outbox_messages + r.outbox_messages,
            access_requests: t.access_requests + r.access_requests,
            amendment_requests: t.amendment_requests + r.amendment_requests,
            push_subscriptions: t.push_subscriptions + r.push_subscriptions,
        })
    }

    /// The counter of the rows of the registered table `t` (every table a rotation re-encrypts
    /// has one: this module's tests check it).
    fn counter(&mut self, t: &SealedTable) -> Option<&mut u64> {
        let name = t.table;
        if name == sealed_columns::PATIENT.table {
            Some(&mut self.patients)
        } else if name == sealed_columns::CLINICAL_NOTE.table
            || name == sealed_columns::CLINICAL_NOTE_VERSION.table
        {
            Some(&mut self.notes)
        } else if name == sealed_columns::PERIO_EXAM.table {
            Some(&mut self.perio_exams)
        } else if name == sealed_columns::DISCLOSURE.table {
            Some(&mut self.disclosures)
        } else if name == sealed_columns::BREAK_GLASS.table
            || name == sealed_columns::SUPPORT_GRANT.table
        {
            Some(&mut self.grant_reasons)
        } else if name == sealed_columns::BLOB_OBJECT.table {
            Some(&mut self.blobs)
        } else if [
            sealed_columns::DRAFT_SENTENCE.table,
            sealed_columns::NOTE_DRAFT.table,
            sealed_columns::TRANSCRIPT_REVISION.table,
            sealed_columns::TRANSCRIPT_SEGMENT.table,
            sealed_columns::ASSISTANT_TURN.table,
        ]
        .contains(&name)
        {
            Some(&mut self.scribe)
        } else if name == sealed_columns::AI_PROVIDER.table {
            Some(&mut self.provider_keys)
        } else if name == sealed_columns::INCIDENT.table {
            Some(&mut self.incidents)
        } else if name == sealed_columns::INTAKE_RESPONSE.table
            || name == sealed_columns::INTAKE_REQUEST.table
        {
            Some(&mut self.intake)
        } else if name == sealed_columns::OUTBOX_MESSAGE.table {
            Some(&mut self.outbox_messages)
        } else if name == sealed_columns::ACCESS_REQUEST.table {
            Some(&mut self.access_requests)
        } else if name == sealed_columns::AMENDMENT_REQUEST.table {
            Some(&mut self.amendment_requests)
        } else if name == sealed_columns::PUSH_SUBSCRIPTION.table {
            Some(&mut self.push_subscriptions)
        } else {
            None
        }
    }
}

/// Which rows a re-encryption pass takes.
#[derive(Clone, Copy, Debug)]
pub(super) enum Reseal {
    /// Rows that still hold plaintext.
    Plaintext,
    /// Rows with plaintext or with a ciphertext sealed by a version other than this one.
    NotVersion(DekVersion),
}

impl Reseal {
    /// For a rotation, the 4 header bytes naming the target version (`$2` of [`todo`]);
    /// `None` for the plaintext pass.
    fn header_bytes(self) -> Option<Vec<u8>> {
        match self {
            Self::Plaintext => None,
            Self::NotVersion(v) => Some(v.get().to_be_bytes().to_vec()),
        }
    }

    /// Whether the pass walks table `t`: a rotation every table re-encrypted row by row, the
    /// plaintext pass those with legacy plaintext columns.
    pub(super) fn walks(self, t: &SealedTable) -> bool {
        t.resealed_by_row() && (matches!(self, Self::NotVersion(_)) || t.has_legacy())
    }
}

/// The condition selecting rows of `t` that need work: a legacy plaintext column set, or (for
/// a rotation, `$2` = the version's 4 header bytes) a ciphertext whose header names another
/// data-key version (`format ‖ version u32be ‖ …`).
fn todo(t: &SealedTable) -> String {
    let mut parts = Vec::new();
    for c in t.columns {
        if c.legacy.is_some() {
            parts.push(format!("{} is not null", c.name));
        }
        parts.push(format!(
            "($2::bytea is not null and substring({} from 2 for 4) <> $2)",
            c.enc
        ));
    }
    format!("({})", parts.join(" or "))
}

/// ` <head> from <table> where practice_id = $1 and <todo>)` for each of `tables`: the terms
/// of a whole-practice check.
pub(super) fn terms<'a>(tables: impl Iterator<Item = &'a SealedTable>, head: &str) -> String {
    tables.fold(String::new(), |mut out, t| {
        let _ = write!(
            out,
            " {head} from {} where practice_id = $1 and {})",
            t.table,
            todo(t)
        );
        out
    })
}

/// The key of one row of a registered table (see [`sealed_columns::RowId`]).
enum RowKey {
    Id(uuid::Uuid),
    IdVersion(uuid::Uuid, i32),
}

impl RowKey {
    /// The row id bound into the row's ciphertexts.
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Id(id) => id.as_bytes().to_vec(),
            Self::IdVersion(id, v) => sealed_columns::version_row_id(*id, *v).to_vec(),
        }
    }
}

impl crate::OwnerStore {
    /// One batch of patient records of `practice` sealed with the active key, search tokens
    /// rewritten; returns how many.
    async fn reseal_patients(
        &self,
        practice: PracticeId,
        which: Reseal,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let keyring = self.keyring()?;
        let version = which.header_bytes();
        let mut tx = self.begin_in(practice).await?;
        let opener = tx.opener_unaudited_for_reseal(keyring);
        let n = crate::patients::reseal_batch(
            tx.conn(),
            keyring,
            &opener,
            practice,
            &todo(&sealed_columns::PATIENT),
            version.as_deref(),
            batch,
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    pub(super) async fn reseal_practice(
        &self,
        practice: PracticeId,
        which: Reseal,
        batch: i64,
        progress: &mut (dyn FnMut(PracticeId, ResealReport) + Send),
    ) -> Result<ResealReport, StoreError> {
        let mut report = ResealReport::default();
        let full = u64::try_from(batch).unwrap_or(0);
        for t in TABLES.iter().filter(|t| which.walks(t)) {
            loop {
                let n = match t.reencrypt {
                    Reencrypt::PatientRecord => {
                        self.reseal_patients(practice, which, batch).await?
                    }
                    Reencrypt::Fields => self.reseal_rows(practice, t, which, batch).await?,
                    Reencrypt::NewObjects | Reencrypt::Nothing => 0,
                };
                if let Some(c) = report.counter(t) {
                    *c += n;
                }
                if n > 0 {
                    progress(practice, report);
                }
                if n < full {
                    break;
                }
            }
        }
        Ok(report)
    }

    /// One batch of rows of the registered table `t` of `practice` sealed with the active key
    /// (legacy plaintext sealed and emptied, other ciphertexts re-encrypted with the same
    /// context); returns how many. For note versions the plaintext and hash are unchanged,
    /// which the version trigger allows only the owner role to do.
    async fn reseal_rows(
        &self,
        practice: PracticeId,
        t: &SealedTable,
        which: Reseal,
        batch: i64,
    ) -> Result<u64, StoreError> {
        use sqlx::Row as _;
        let keyring = self.keyring()?;
        let keys = write_keys(keyring, practice).await?;
        let version = which.header_bytes();
        let table = t.table;
        let (key, key_where, keyed) = match t.row.version {
            Some(v) => (
                format!("{}, {v}", t.row.id),
                format!("{} = $2 and {v} = $3", t.row.id),
                2,
            ),
            None => (t.row.id.to_owned(), format!("{} = $2", t.row.id), 1),
        };
        // The update binds the practice, the key, then the new ciphertexts.
        let first = keyed + 2;
        let mut select = Vec::new();
        let mut set = Vec::new();
        for (i, c) in t.columns.iter().enumerate() {
            select.push(c.enc.to_owned());
            select.push(match c.legacy {
                Some(Plain::Text) => c.name.to_owned(),
                Some(Plain::Date) => format!("to_char({}, 'YYYY-MM-DD')", c.name),
                None => "null::text".to_owned(),
            });
            set.push(format!("{} = ${}", c.enc, first + i));
            if c.legacy.is_some() {
                set.push(format!("{} = null", c.name));
            }
        }
        let (select, set) = (select.join(", "), set.join(", "));
        let mut tx = self.begin_in(practice).await?;
        let opener = tx.opener_unaudited_for_reseal(keyring);
        let rows = sqlx::query(&format!(
            "select {key}, {select} from {table} where practice_id = $1 and {}
              order by {key} limit $3 for update",
            todo(t)
        ))
        .bind(practice)
        .bind(&version)
        .bind(batch)
        .fetch_all(tx.conn())
        .await?;
        let n = rows.len() as u64;
        let update = format!("update {table} set {set} where practice_id = $1 and {key_where}");
        for row in rows {
            let id: uuid::Uuid = row.try_get(0)?;
            let key = match t.row.version {
                Some(_) => RowKey::IdVersion(id, row.try_get(1)?),
                None => RowKey::Id(id),
            };
            let row_id = key.bytes();
            let mut fresh: Vec<Option<Vec<u8>>> = Vec::with_capacity(t.columns.len());
            for (i, c) in t.columns.iter().enumerate() {
                let enc: Option<Vec<u8>> = row.try_get(keyed + 2 * i)?;
                let plain: Option<String> = row.try_get(keyed + 1 + 2 * i)?;
                let ctx = t.context(practice, c.name, &row_id);
                fresh.push(match (enc, plain) {
                    (Some(ct), _) => Some(opener.reseal(&keys, &ctx, &ct).await?),
                    (None, Some(p)) => Some(
                        crypto::encrypt_field(keys.active(), &ctx, p.as_bytes())
                            .map_err(|e| crypto_error(&e))?,
                    ),
                    (None, None) => None,
                });
            }
            let mut q = sqlx::query(&update).bind(practice);
            q = match key {
                RowKey::Id(id) => q.bind(id),
                RowKey::IdVersion(id, v) => q.bind(id).bind(v),
            };
            for v in &fresh {
                q = q.bind(v);
            }
            q.execute(tx.conn()).await?;
        }
        tx.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 15.3 — every table a rotation re-encrypts is counted in the report, under its own
    // heading, and the plaintext pass walks exactly the tables with legacy columns.
    #[test]
    fn every_reencrypted_table_is_counted() {
        for t in TABLES {
            let mut r = ResealReport::default();
            let counted = r.counter(t).is_some();
            assert_eq!(
                counted,
                t.reencrypt != Reencrypt::Nothing,
                "{}: a re-encrypted table needs a counter",
                t.table
            );
        }
        let legacy: Vec<&str> = TABLES
            .iter()
            .filter(|t| Reseal::Plaintext.walks(t))
            .map(|t| t.table)
            .collect();
        assert_eq!(legacy, ["clinical_note", "disclosure", "patient"]);
    }

    #[test]
    fn the_condition_covers_legacy_plaintext_and_other_versions() {
        assert_eq!(
            todo(&sealed_columns::CLINICAL_NOTE),
            "(body is not null or ($2::bytea is not null and substring(body_enc from 2 for 4) <> $2))"
        );
        assert_eq!(
            todo(&sealed_columns::PERIO_EXAM),
            "(($2::bytea is not null and substring(session_enc from 2 for 4) <> $2))"
        );
    }
}
