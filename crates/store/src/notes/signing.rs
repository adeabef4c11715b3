//! Signed changes: signing a note, amending it and adding an addendum. Each appends the
//! note's next version signed by the transaction's actor, with the signature manifestation
//! (printed name and credential read from their account, time, time zone, meaning).
//!
//! # Guarantees
//! - The caller checked step-up; this module checks the note's state and version
//!   ([`super::write`]) before anything is written.
//! - Signing copies the last draft into a signed version and locks the note; nothing empty is
//!   signed or amended ([`Refusal::Empty`]); a note made from a scribe draft is not signed
//!   while a flagged sentence of it is unaccepted ([`Refusal::Unreviewed`]). An amendment is validated against the note's
//!   template.
//! - The signed time is the transaction's clock cut to microseconds, so the stored
//!   manifestation hashes the same when read back.

use crypto::Keyring;
use domain::NoteId;
use domain::notes::{NoteContent, SIGNATURE_MEANING, Signature, VersionKind};

use super::Refusal;
use super::read::{Note, assemble_id};
use super::stored::{Header, legacy_content, micros, versions};
use super::write::{NewVersion, advance, for_change, insert_version};
use crate::{StoreError, TenantTx};

/// What the signer is, read from their account.
#[derive(Debug, Clone)]
struct Signer {
    name: String,
    credential: Option<String>,
}

async fn signer(tx: &mut TenantTx) -> Result<Signer, StoreError> {
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("select display_name, credential from app_user where user_id = $1")
            .bind(tx.actor())
            .fetch_optional(tx.conn())
            .await?;
    let (name, credential) =
        row.ok_or(StoreError::Corrupt("the signer's account is not readable"))?;
    Ok(Signer { name, credential })
}

async fn signature(tx: &mut TenantTx) -> Result<Signature, StoreError> {
    let s = signer(tx).await?;
    Ok(Signature {
        signer_id: tx.actor().as_uuid(),
        printed_name: s.name,
        credential: s.credential,
        signed_at: micros(tx.now()),
        time_zone: "UTC".to_owned(),
        meaning: SIGNATURE_MEANING.to_owned(),
    })
}

/// Signs the note as the transaction's actor (the caller checked step-up): the last draft is
/// copied into a signed version and the note locks.
pub async fn sign(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: NoteId,
    expected: Option<i32>,
) -> Result<Result<Note, Refusal>, StoreError> {
    let h = match for_change(tx, id, expected, domain::notes::NoteAction::Sign).await? {
        Ok(h) => h,
        Err(r) => return Ok(Err(r)),
    };
    let practice = tx.practice();
    let content = if h.current_version == 0 {
        legacy_content(&tx.opener(keyring), practice, &h).await?
    } else {
        let rows = versions(tx, id, &format!("version = {}", h.current_version)).await?;
        let row = rows
            .into_iter()
            .next()
            .ok_or(StoreError::Corrupt("a note's current version is missing"))?;
        row.open(&tx.opener(keyring), practice, &h.note_ref()?)
            .await?
            .content
    };
    if content.is_empty() {
        return Ok(Err(Refusal::Empty));
    }
    // req: SCR-05 — a note made from a draft is signed only once every flagged sentence of
    // that draft was accepted (or edited) by a clinician.
    if crate::drafts::unreviewed_for_note(tx, id).await? > 0 {
        return Ok(Err(Refusal::Unreviewed));
    }
    append_signed(
        tx,
        keyring,
        &h,
        NewVersion {
            kind: VersionKind::Signed,
            canonical: content.canonical(),
            reason: None,
            ai_assisted: false,
            assistant_turn_id: None,
            signature: None,
        },
    )
    .await
    .map(Ok)
}

/// Appends the note's next version signed by the actor (signing, amending, an addendum),
/// advances the header (and locks it when `v` is the signed copy), and reads the note back.
async fn append_signed(
    tx: &mut TenantTx,
    keyring: &Keyring,
    h: &Header,
    mut v: NewVersion<'_>,
) -> Result<Note, StoreError> {
    let next = h.current_version + 1;
    let locks = v.kind == VersionKind::Signed;
    v.signature = Some(signature(tx).await?);
    insert_version(tx, keyring, &h.note_ref()?, next, v).await?;
    advance(tx, h.note_id, next, locks.then_some(next)).await?;
    assemble_id(tx, keyring, h.note_id).await
}

/// An amendment's inputs.
#[derive(Debug, Clone)]
pub struct AmendmentInput<'a> {
    /// The new content.
    pub content: &'a NoteContent,
    /// Why.
    pub reason: &'a str,
    /// Whether an AI assistant drafted it.
    pub ai_assisted: bool,
    /// The assistant turn it came from (required when AI-assisted).
    pub assistant_turn_id: Option<uuid::Uuid>,
}

/// Amends a signed note as the transaction's actor (the caller checked step-up).
pub async fn amend(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: NoteId,
    expected: Option<i32>,
    a: &AmendmentInput<'_>,
) -> Result<Result<Note, Refusal>, StoreError> {
    let h = match for_change(tx, id, expected, domain::notes::NoteAction::Amend).await? {
        Ok(h) => h,
        Err(r) => return Ok(Err(r)),
    };
    a.content
        .validate(h.template()?)
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    if a.content.is_empty() {
        return Ok(Err(Refusal::Empty));
    }
    append_signed(
        tx,
        keyring,
        &h,
        NewVersion {
            kind: VersionKind::Amendment,
            canonical: a.content.canonical(),
            reason: Some(a.reason),
            ai_assisted: a.ai_assisted,
            assistant_turn_id: a.assistant_turn_id,
            signature: None,
        },
    )
    .await
    .map(Ok)
}

/// Adds a signed addendum to a signed note (the caller checked step-up).
pub async fn add_addendum(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: NoteId,
    expected: Option<i32>,
    text: &str,
    reason: &str,
) -> Result<Result<Note, Refusal>, StoreError> {
    let h = match for_change(tx, id, expected, domain::notes::NoteAction::Addendum).await? {
        Ok(h) => h,
        Err(r) => return Ok(Err(r)),
    };
    append_signed(
        tx,
        keyring,
        &h,
        NewVersion {
            kind: VersionKind::Addendum,
            canonical: text.as_bytes().to_vec(),
            reason: Some(reason),
            ai_assisted: false,
            assistant_turn_id: None,
            signature: None,
        },
    )
    .await
    .map(Ok)
}
