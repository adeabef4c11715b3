//! The scribe's capture path (`migrations/0024_scribe.sql`): the practice's scribe policy, a
//! recording consent per visit, captures whose state lives here, and their audio chunks, each
//! an encrypted blob of the blob store ([`crypto::BlobStore`], streaming AEAD) registered in
//! `blob_object`.
//!
//! # Guarantees
//! - **Consent first.** [`start`] takes the visit's consent in force; the routes refuse a
//!   start without one. [`withdraw_consent`] marks the consent withdrawn; the caller stops the
//!   open capture ([`stop`]) and purges its audio ([`purge_audio`]) in the same transaction.
//! - **State on the server.** A capture is `live`, `paused` or `stopped` (with a reason);
//!   `elapsed_ms` holds the recorded time before the current live stretch, so the elapsed time
//!   anywhere is [`Capture::elapsed_ms_at`]. Every change locks the row first
//!   ([`get_for_update`]), so concurrent changes apply one after the other.
//! - **Chunks in order, idempotent.** [`store_chunk`] accepts `seq` = the capture's chunk count
//!   (the next one) and stores it; an already-accepted `seq` with the same SHA-256 is a no-op
//!   ([`ChunkStored::Repeat`]); anything else is refused before a byte is written. Audio is
//!   validated as WAV, 16 kHz mono 16-bit PCM ([`parse_wav`]), and stored only encrypted.
//! - **Audio purge.** [`purge_audio`] deletes every chunk's blob (registry row, then the object
//!   in the blob store) and marks the capture `audio_purged_at` with the reason. Objects are
//!   deleted before the caller commits: a failed commit can leave a capture that reads as not
//!   purged with its objects gone (a retry purges it), never audio that reads as purged.
//! - Nothing here is PHI in the clear: rows hold ids, states, times, sizes and hashes; the
//!   audio is a blob sealed with the practice's data key.
//!
//! Every function on a [`TenantTx`] runs in the caller's practice, under RLS (clinical
//! visibility of the patient); the caller audits in the same transaction. The owner-role
//! functions ([`OwnerStore::sweep_captures`], [`OwnerStore::purge_expired_audio`]) audit
//! themselves.
//!
//! # Example
//! ```no_run
//! # async fn f(tx: &mut store::TenantTx, blobs: &store::crypto::BlobStore,
//! #            capture: domain::CaptureId, wav: &[u8])
//! #            -> Result<(), Box<dyn std::error::Error>> {
//! let c = store::capture::get_for_update(tx, capture).await?.ok_or("no such capture")?;
//! // The next chunk (or a resend of an accepted one), encrypted into a blob:
//! let stored = store::capture::store_chunk(tx, blobs, &c, c.chunks, wav).await?;
//! // What the transcription job reads back:
//! let back = store::capture::read_chunk_wav(tx, blobs, capture, stored.chunk().seq).await?;
//! assert_eq!(back.as_deref(), Some(wav));
//! # Ok(()) }
//! ```

use chrono::{DateTime, Utc};
use crypto::{BlobId, BlobStore};
use domain::{
    AuditAction, AuditObject, CaptureId, ConsentId, PatientId, PracticeId, UserId, VisitId,
};
use futures::TryStreamExt as _;
use sha2::{Digest as _, Sha256};
use sqlx::PgConnection;

use crate::sealed_columns::crypto_error;
use crate::{OwnerStore, StoreError, TenantTx};

/// The sample rate every chunk must have (Hz).
pub const SAMPLE_RATE: u32 = 16_000;
/// Largest chunk accepted (bytes): one minute of 16 kHz mono 16-bit PCM is 1,920,044 bytes;
/// the browser sends about 5 s (160 KiB). The routes hold bodies to this before reading.
pub const CHUNK_MAX_BYTES: usize = 1024 * 1024;
/// Longest chunk accepted (ms; the schema's bound on `duration_ms` is 120 s).
pub const CHUNK_MAX_MS: u32 = 60_000;
/// Most rows one list returns.
pub const LIST_MAX: i64 = 100;

macro_rules! closed_set {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant,)*
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The stable name stored in the database.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s,)* }
            }

            /// The value named `s`, if any.
            #[must_use]
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$variant),)* _ => None }
            }
        }
    };
}

closed_set! {
    /// The practice's consent rule (its jurisdiction's recording law).
    ConsentRule {
        /// Everyone recorded consents (all-party states).
        AllParty => "all_party",
        /// One party's consent suffices.
        OneParty => "one_party",
    }
}

closed_set! {
    /// Who consented to the recording.
    ConsentedBy {
        /// The patient.
        Patient => "patient",
        /// The patient's guardian.
        Guardian => "guardian",
    }
}

closed_set! {
    /// How the consent was given.
    ConsentMethod {
        /// Said aloud.
        Verbal => "verbal",
        /// In writing.
        Written => "written",
        /// On the practice's form.
        Form => "form",
    }
}

closed_set! {
    /// Where a capture is in its life.
    CaptureState {
        /// Recording.
        Live => "live",
        /// Paused by the clinician.
        Paused => "paused",
        /// Ended (for good).
        Stopped => "stopped",
    }
}

closed_set! {
    /// Why a capture stopped.
    StopReason {
        /// The clinician stopped it.
        Clinician => "clinician",
        /// The consent was withdrawn.
        ConsentWithdrawn => "consent_withdrawn",
        /// It reached the practice's longest capture.
        MaxDuration => "max_duration",
        /// No audio arrived for a while (the browser went away).
        Abandoned => "abandoned",
    }
}

closed_set! {
    /// Why a capture's audio was deleted.
    PurgeReason {
        /// The practice's audio retention after the note was signed.
        Retention => "retention",
        /// The consent was withdrawn.
        ConsentWithdrawn => "consent_withdrawn",
        /// The patient was deleted.
        PatientDeleted => "patient_deleted",
    }
}

fn parse_or<T>(v: Option<T>, what: &'static str) -> Result<T, StoreError> {
    v.ok_or(StoreError::Corrupt(what))
}

// ----------------------------------------------------------------------------------------
// Policy

/// The practice's scribe policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The consent rule recorded with each consent.
    pub consent_rule: ConsentRule,
    /// Days audio is kept after the visit's note is signed (0–3650).
    pub audio_retention_days: i32,
    /// The longest capture (60–14400 s).
    pub max_capture_seconds: i32,
}

impl Default for Policy {
    /// The schema's defaults: all-party consent, 30 days, 2 hours.
    fn default() -> Self {
        Self {
            consent_rule: ConsentRule::AllParty,
            audio_retention_days: 30,
            max_capture_seconds: 7200,
        }
    }
}

async fn policy_on(conn: &mut PgConnection, practice: PracticeId) -> Result<Policy, StoreError> {
    let r: Option<(String, i32, i32)> = sqlx::query_as(
        "select consent_rule, audio_retention_days, max_capture_seconds from scribe_policy
          where practice_id = $1",
    )
    .bind(practice)
    .fetch_optional(conn)
    .await?;
    Ok(match r {
        None => Policy::default(),
        Some((rule, days, max)) => Policy {
            consent_rule: parse_or(ConsentRule::parse(&rule), "scribe_policy.consent_rule")?,
            audio_retention_days: days,
            max_capture_seconds: max,
        },
    })
}

/// The practice's scribe policy (the defaults when none was set). Any member may read it.
pub async fn policy(tx: &mut TenantTx) -> Result<Policy, StoreError> {
    let practice = tx.practice();
    policy_on(tx.conn(), practice).await
}

/// Sets the practice's scribe policy (owners and admins: RLS refuses anyone else). Values out
/// of the schema's ranges are refused by its checks ([`StoreError::Invalid`]).
pub async fn set_policy(tx: &mut TenantTx, p: &Policy) -> Result<(), StoreError> {
    let now = tx.now();
    let actor = tx.actor();
    sqlx::query(
        "insert into scribe_policy (practice_id, consent_rule, audio_retention_days,
                                    max_capture_seconds, updated_by, updated_at)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (practice_id) do update
            set consent_rule = excluded.consent_rule,
                audio_retention_days = excluded.audio_retention_days,
                max_capture_seconds = excluded.max_capture_seconds,
                updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(tx.practice())
    .bind(p.consent_rule.as_str())
    .bind(p.audio_retention_days)
    .bind(p.max_capture_seconds)
    .bind(actor)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(())
}

// ----------------------------------------------------------------------------------------
// Visits and consents

/// The patient of `visit` when the visit exists here and is clinically visible to the actor
/// (RLS); `None` otherwise (answer 404).
pub async fn visit_patient(
    tx: &mut TenantTx,
    visit: VisitId,
) -> Result<Option<PatientId>, StoreError> {
    Ok(sqlx::query_scalar(
        "select patient_id from visit where practice_id = $1 and visit_id = $2
            and app.clinical_visible(patient_id)",
    )
    .bind(tx.practice())
    .bind(visit)
    .fetch_optional(tx.conn())
    .await?)
}

/// A recording consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consent {
    /// Id.
    pub consent_id: ConsentId,
    /// The visit.
    pub visit_id: VisitId,
    /// The patient.
    pub patient_id: PatientId,
    /// Who consented.
    pub consented_by: ConsentedBy,
    /// How.
    pub method: ConsentMethod,
    /// The practice's rule when it was recorded.
    pub consent_rule: ConsentRule,
    /// The clinician who recorded it.
    pub recorded_by: UserId,
    /// When.
    pub recorded_at: DateTime<Utc>,
    /// When it was withdrawn, and by whom.
    pub withdrawn: Option<(DateTime<Utc>, UserId)>,
}

type ConsentRow = (
    ConsentId,
    VisitId,
    PatientId,
    String,
    String,
    String,
    UserId,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<UserId>,
);

const CONSENT_COLUMNS: &str = "consent_id, visit_id, patient_id, consented_by, method, \
    consent_rule, recorded_by, recorded_at, withdrawn_at, withdrawn_by";

fn consent(r: &ConsentRow) -> Result<Consent, StoreError> {
    Ok(Consent {
        consent_id: r.0,
        visit_id: r.1,
        patient_id: r.2,
        consented_by: parse_or(ConsentedBy::parse(&r.3), "recording_consent.consented_by")?,
        method: parse_or(ConsentMethod::parse(&r.4), "recording_consent.method")?,
        consent_rule: parse_or(ConsentRule::parse(&r.5), "recording_consent.consent_rule")?,
        recorded_by: r.6,
        recorded_at: r.7,
        withdrawn: r.8.zip(r.9),
    })
}

/// Records a consent for `visit` of `patient` by the actor, now, under the practice's
/// current rule. A visit with a consent in force already: [`StoreError::Conflict`]
/// (`recording_consent_active_idx`).
pub async fn record_consent(
    tx: &mut TenantTx,
    visit: VisitId,
    patient: PatientId,
    by: ConsentedBy,
    method: ConsentMethod,
) -> Result<Consent, StoreError> {
    let rule = policy(tx).await?.consent_rule;
    let c = Consent {
        consent_id: ConsentId::new(),
        visit_id: visit,
        patient_id: patient,
        consented_by: by,
        method,
        consent_rule: rule,
        recorded_by: tx.actor(),
        recorded_at: tx.now(),
        withdrawn: None,
    };
    sqlx::query(
        "insert into recording_consent (practice_id, consent_id, visit_id, patient_id,
            consented_by, method, consent_rule, recorded_by, recorded_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tx.practice())
    .bind(c.consent_id)
    .bind(visit)
    .bind(patient)
    .bind(by.as_str())
    .bind(method.as_str())
    .bind(rule.as_str())
    .bind(c.recorded_by)
    .bind(c.recorded_at)
    .execute(tx.conn())
    .await?;
    Ok(c)
}

/// The consents of `visit`, newest first (at most [`LIST_MAX`]).
pub async fn consents(tx: &mut TenantTx, visit: VisitId) -> Result<Vec<Consent>, StoreError> {
    let rows: Vec<ConsentRow> = sqlx::query_as(&format!(
        "select {CONSENT_COLUMNS} from recording_consent where practice_id = $1 and visit_id = $2
          order by recorded_at desc, consent_id desc limit $3"
    ))
    .bind(tx.practice())
    .bind(visit)
    .bind(LIST_MAX)
    .fetch_all(tx.conn())
    .await?;
    rows.iter().map(consent).collect()
}

/// The consent in force for `visit`, locked for the rest of the transaction.
pub async fn active_consent(
    tx: &mut TenantTx,
    visit: VisitId,
) -> Result<Option<Consent>, StoreError> {
    let r: Option<ConsentRow> = sqlx::query_as(&format!(
        "select {CONSENT_COLUMNS} from recording_consent
          where practice_id = $1 and visit_id = $2 and withdrawn_at is null for update"
    ))
    .bind(tx.practice())
    .bind(visit)
    .fetch_optional(tx.conn())
    .await?;
    r.as_ref().map(consent).transpose()
}

/// Marks `consent` withdrawn by the actor, now. Returns `false` when it was not in force.
pub async fn withdraw_consent(tx: &mut TenantTx, consent: ConsentId) -> Result<bool, StoreError> {
    let now = tx.now();
    let actor = tx.actor();
    let n = sqlx::query(
        "update recording_consent set withdrawn_at = $3, withdrawn_by = $4
          where practice_id = $1 and consent_id = $2 and withdrawn_at is null",
    )
    .bind(tx.practice())
    .bind(consent)
    .bind(now)
    .bind(actor)
    .execute(tx.conn())
    .await?
    .rows_affected();
    Ok(n == 1)
}

// ----------------------------------------------------------------------------------------
// Captures

/// A capture and its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capture {
    /// Id.
    pub capture_id: CaptureId,
    /// The visit.
    pub visit_id: VisitId,
    /// The patient.
    pub patient_id: PatientId,
    /// The consent it was started under.
    pub consent_id: ConsentId,
    /// The clinician recording.
    pub clinician_id: UserId,
    /// State.
    pub state: CaptureState,
    /// Why it stopped (when stopped).
    pub stop_reason: Option<StopReason>,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Since when it is live (when live).
    pub live_since: Option<DateTime<Utc>>,
    /// Recorded time before `live_since`.
    pub elapsed_ms: i64,
    /// Stopped (when stopped).
    pub stopped_at: Option<DateTime<Utc>>,
    /// The longest capture (from the policy when it started).
    pub max_seconds: i32,
    /// Chunks accepted (also the next `seq`).
    pub chunks: i32,
    /// Audio bytes accepted.
    pub audio_bytes: i64,
    /// When the audio was deleted, and why.
    pub audio_purged: Option<(DateTime<Utc>, PurgeReason)>,
}

impl Capture {
    /// The recorded time at `now`: the time before the current live stretch plus the stretch.
    #[must_use]
    pub fn elapsed_ms_at(&self, now: DateTime<Utc>) -> i64 {
        let live = self
            .live_since
            .map_or(0, |s| (now - s).num_milliseconds().max(0));
        self.elapsed_ms.saturating_add(live)
    }

    /// The longest capture in milliseconds.
    #[must_use]
    pub fn max_ms(&self) -> i64 {
        i64::from(self.max_seconds) * 1000
    }
}

#[derive(sqlx::FromRow)]
struct CaptureRow {
    capture_id: CaptureId,
    visit_id: VisitId,
    patient_id: PatientId,
    consent_id: ConsentId,
    clinician_id: UserId,
    state: String,
    stop_reason: Option<String>,
    started_at: DateTime<Utc>,
    live_since: Option<DateTime<Utc>>,
    elapsed_ms: i64,
    stopped_at: Option<DateTime<Utc>>,
    max_seconds: i32,
    chunks: i32,
    audio_bytes: i64,
    audio_purged_at: Option<DateTime<Utc>>,
    audio_purge_reason: Option<String>,
}

const CAPTURE_COLUMNS: &str = "capture_id, visit_id, patient_id, consent_id, clinician_id, \
    state, stop_reason, started_at, live_since, elapsed_ms, stopped_at, max_seconds, chunks, \
    audio_bytes, audio_purged_at, audio_purge_reason";

impl TryFrom<CaptureRow> for Capture {
    type Error = StoreError;
    fn try_from(r: CaptureRow) -> Result<Self, StoreError> {
        let reason = match r.audio_purge_reason.as_deref() {
            Some(s) => Some(parse_or(
                PurgeReason::parse(s),
                "capture.audio_purge_reason",
            )?),
            None => None,
        };
        Ok(Self {
            capture_id: r.capture_id,
            visit_id: r.visit_id,
            patient_id: r.patient_id,
            consent_id: r.consent_id,
            clinician_id: r.clinician_id,
            state: parse_or(CaptureState::parse(&r.state), "capture.state")?,
            stop_reason: match r.stop_reason.as_deref() {
                Some(s) => Some(parse_or(StopReason::parse(s), "capture.stop_reason")?),
                None => None,
            },
            started_at: r.started_at,
            live_since: r.live_since,
            elapsed_ms: r.elapsed_ms,
            stopped_at: r.stopped_at,
            max_seconds: r.max_seconds,
            chunks: r.chunks,
            audio_bytes: r.audio_bytes,
            audio_purged: r.audio_purged_at.zip(reason),
        })
    }
}

fn captures(rows: Vec<CaptureRow>) -> Result<Vec<Capture>, StoreError> {
    rows.into_iter().map(Capture::try_from).collect()
}

/// Starts a live capture of `consent`'s visit by the actor, now, with the policy's longest
/// capture. A visit with an open capture already: [`StoreError::Conflict`]
/// (`capture_open_visit_idx`).
pub async fn start(tx: &mut TenantTx, consent: &Consent) -> Result<Capture, StoreError> {
    let max = policy(tx).await?.max_capture_seconds;
    let now = tx.now();
    let row: CaptureRow = sqlx::query_as(&format!(
        "insert into capture (practice_id, capture_id, visit_id, patient_id, consent_id,
            clinician_id, state, started_at, live_since, max_seconds)
         values ($1, $2, $3, $4, $5, $6, 'live', $7, $7, $8)
         returning {CAPTURE_COLUMNS}"
    ))
    .bind(tx.practice())
    .bind(CaptureId::new())
    .bind(consent.visit_id)
    .bind(consent.patient_id)
    .bind(consent.consent_id)
    .bind(tx.actor())
    .bind(now)
    .bind(max)
    .fetch_one(tx.conn())
    .await?;
    row.try_into()
}

/// A capture visible here (RLS), not locked.
pub async fn get(tx: &mut TenantTx, capture: CaptureId) -> Result<Option<Capture>, StoreError> {
    let r: Option<CaptureRow> = sqlx::query_as(&format!(
        "select {CAPTURE_COLUMNS} from capture where practice_id = $1 and capture_id = $2"
    ))
    .bind(tx.practice())
    .bind(capture)
    .fetch_optional(tx.conn())
    .await?;
    r.map(TryInto::try_into).transpose()
}

/// A capture visible here (RLS), locked for the rest of the transaction.
pub async fn get_for_update(
    tx: &mut TenantTx,
    capture: CaptureId,
) -> Result<Option<Capture>, StoreError> {
    let r: Option<CaptureRow> = sqlx::query_as(&format!(
        "select {CAPTURE_COLUMNS} from capture where practice_id = $1 and capture_id = $2
          for update"
    ))
    .bind(tx.practice())
    .bind(capture)
    .fetch_optional(tx.conn())
    .await?;
    r.map(TryInto::try_into).transpose()
}

/// The open (live or paused) capture of `visit`, locked.
pub async fn open_for_visit(
    tx: &mut TenantTx,
    visit: VisitId,
) -> Result<Option<Capture>, StoreError> {
    let r: Option<CaptureRow> = sqlx::query_as(&format!(
        "select {CAPTURE_COLUMNS} from capture
          where practice_id = $1 and visit_id = $2 and state <> 'stopped' for update"
    ))
    .bind(tx.practice())
    .bind(visit)
    .fetch_optional(tx.conn())
    .await?;
    r.map(TryInto::try_into).transpose()
}

/// The actor's open (live or paused) capture in this practice, the newest if several: what
/// the live indicator shows. Reads ids, states and times only.
pub async fn open_for_actor(tx: &mut TenantTx) -> Result<Option<Capture>, StoreError> {
    let r: Option<CaptureRow> = sqlx::query_as(&format!(
        "select {CAPTURE_COLUMNS} from capture
          where practice_id = $1 and clinician_id = $2 and state <> 'stopped'
          order by started_at desc limit 1"
    ))
    .bind(tx.practice())
    .bind(tx.actor())
    .fetch_optional(tx.conn())
    .await?;
    r.map(TryInto::try_into).transpose()
}

/// The captures of `visit`, newest first (at most [`LIST_MAX`]).
pub async fn list_for_visit(tx: &mut TenantTx, visit: VisitId) -> Result<Vec<Capture>, StoreError> {
    let rows: Vec<CaptureRow> = sqlx::query_as(&format!(
        "select {CAPTURE_COLUMNS} from capture where practice_id = $1 and visit_id = $2
          order by started_at desc limit $3"
    ))
    .bind(tx.practice())
    .bind(visit)
    .bind(LIST_MAX)
    .fetch_all(tx.conn())
    .await?;
    captures(rows)
}

async fn write_state(
    conn: &mut PgConnection,
    practice: PracticeId,
    c: &Capture,
) -> Result<(), StoreError> {
    sqlx::query(
        "update capture set state = $3, stop_reason = $4, live_since = $5, elapsed_ms = $6,
                stopped_at = $7
          where practice_id = $1 and capture_id = $2",
    )
    .bind(practice)
    .bind(c.capture_id)
    .bind(c.state.as_str())
    .bind(c.stop_reason.map(StopReason::as_str))
    .bind(c.live_since)
    .bind(c.elapsed_ms)
    .bind(c.stopped_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// `c` paused at `now` (the live stretch added to its elapsed time); unchanged unless live.
#[must_use]
pub fn paused(c: &Capture, now: DateTime<Utc>) -> Capture {
    if c.state != CaptureState::Live {
        return *c;
    }
    Capture {
        state: CaptureState::Paused,
        elapsed_ms: c.elapsed_ms_at(now).min(c.max_ms()),
        live_since: None,
        ..*c
    }
}

/// `c` resumed at `now`; unchanged unless paused.
#[must_use]
pub fn resumed(c: &Capture, now: DateTime<Utc>) -> Capture {
    if c.state != CaptureState::Paused {
        return *c;
    }
    Capture {
        state: CaptureState::Live,
        live_since: Some(now),
        ..*c
    }
}

/// `c` stopped at `now` for `reason`; unchanged when stopped already.
#[must_use]
pub fn stopped(c: &Capture, now: DateTime<Utc>, reason: StopReason) -> Capture {
    if c.state == CaptureState::Stopped {
        return *c;
    }
    Capture {
        state: CaptureState::Stopped,
        stop_reason: Some(reason),
        elapsed_ms: c.elapsed_ms_at(now).min(c.max_ms()),
        live_since: None,
        stopped_at: Some(now),
        ..*c
    }
}

/// Writes `next` (from [`paused`], [`resumed`] or [`stopped`] of a capture read with
/// [`get_for_update`]).
pub async fn set_state(tx: &mut TenantTx, next: &Capture) -> Result<(), StoreError> {
    let practice = tx.practice();
    write_state(tx.conn(), practice, next).await
}

/// Stops `c` now for `reason` and writes it; returns the stopped capture.
pub async fn stop(
    tx: &mut TenantTx,
    c: &Capture,
    reason: StopReason,
) -> Result<Capture, StoreError> {
    let next = stopped(c, tx.now(), reason);
    set_state(tx, &next).await?;
    Ok(next)
}

// ----------------------------------------------------------------------------------------
// Audio chunks

/// What a WAV header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavInfo {
    /// Samples (16-bit, mono).
    pub samples: u32,
    /// Duration in milliseconds (rounded up).
    pub duration_ms: u32,
}

/// Why a body is not an acceptable chunk. Messages say what was expected, never echo bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// Not a RIFF/WAVE file.
    #[error("not a WAV file (expected a RIFF/WAVE header)")]
    NotWav,
    /// No `fmt ` chunk before the data, or a malformed one.
    #[error("the WAV file has no valid fmt chunk before its data")]
    NoFormat,
    /// Not 16 kHz mono 16-bit PCM.
    #[error("the audio must be PCM, 16 kHz, mono, 16-bit")]
    WrongFormat,
    /// No `data` chunk, or a truncated one.
    #[error("the WAV file's data chunk is missing or truncated")]
    NoData,
    /// No samples, or longer than [`CHUNK_MAX_MS`].
    #[error("a chunk holds 1 ms to 60 s of audio")]
    Length,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([*s.first()?, *s.get(1)?]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([
        *s.first()?,
        *s.get(1)?,
        *s.get(2)?,
        *s.get(3)?,
    ]))
}

/// Checks that `b` is a WAV file of 16 kHz mono 16-bit PCM (RIFF chunks walked in order; a
/// `fmt ` chunk must come before `data`; other chunks are skipped) and returns its sample
/// count and duration.
///
/// ```
/// let mut wav = b"RIFF\x2c\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00".to_vec();
/// wav.extend_from_slice(&16_000u32.to_le_bytes());
/// wav.extend_from_slice(&32_000u32.to_le_bytes());
/// wav.extend_from_slice(b"\x02\x00\x10\x00data\x08\x00\x00\x00");
/// wav.extend_from_slice(&[0; 8]);
/// let info = store::capture::parse_wav(&wav).unwrap();
/// assert_eq!((info.samples, info.duration_ms), (4, 1));
/// assert!(store::capture::parse_wav(b"RIFF").is_err());
/// ```
pub fn parse_wav(b: &[u8]) -> Result<WavInfo, WavError> {
    if b.get(0..4) != Some(b"RIFF") || b.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWav);
    }
    let mut at = 12usize;
    let mut format_ok = None;
    loop {
        let (Some(id), Some(len)) = (b.get(at..at + 4), u32_at(b, at + 4)) else {
            return Err(WavError::NoData);
        };
        let body = at + 8;
        let len = usize::try_from(len).map_err(|_| WavError::NoData)?;
        if id == b"fmt " {
            if len < 16 {
                return Err(WavError::NoFormat);
            }
            let tag = u16_at(b, body).ok_or(WavError::NoFormat)?;
            let channels = u16_at(b, body + 2).ok_or(WavError::NoFormat)?;
            let rate = u32_at(b, body + 4).ok_or(WavError::NoFormat)?;
            let bits = u16_at(b, body + 14).ok_or(WavError::NoFormat)?;
            format_ok = Some(tag == 1 && channels == 1 && rate == SAMPLE_RATE && bits == 16);
        } else if id == b"data" {
            match format_ok {
                None => return Err(WavError::NoFormat),
                Some(false) => return Err(WavError::WrongFormat),
                Some(true) => {}
            }
            let end = body.checked_add(len).ok_or(WavError::NoData)?;
            if end > b.len() || len % 2 != 0 {
                return Err(WavError::NoData);
            }
            let samples = u32::try_from(len / 2).map_err(|_| WavError::Length)?;
            let duration_ms =
                u32::try_from((u64::from(samples) * 1000).div_ceil(u64::from(SAMPLE_RATE)))
                    .map_err(|_| WavError::Length)?;
            if samples == 0 || duration_ms > CHUNK_MAX_MS {
                return Err(WavError::Length);
            }
            return Ok(WavInfo {
                samples,
                duration_ms,
            });
        }
        // RIFF chunks are padded to an even length.
        at = body
            .checked_add(len)
            .and_then(|e| e.checked_add(len % 2))
            .ok_or(WavError::NoData)?;
    }
}

/// A stored audio chunk (ids, sizes, times and the transcription state; the audio is the
/// blob).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The capture.
    pub capture_id: CaptureId,
    /// Its place, from 0 without gaps.
    pub seq: i32,
    /// The encrypted audio (`None` once purged).
    pub blob_id: Option<BlobId>,
    /// SHA-256 of the WAV bytes as uploaded.
    pub sha256: [u8; 32],
    /// WAV bytes.
    pub bytes: i32,
    /// Audio duration.
    pub duration_ms: i32,
    /// Where it starts in the capture's audio (sum of the earlier chunks' durations).
    pub offset_ms: i64,
    /// When it was accepted.
    pub received_at: DateTime<Utc>,
    /// `pending`, `done`, `silent`, `failed` or `refused` (the transcription job's).
    pub transcription: String,
    /// Transcription attempts so far.
    pub attempts: i16,
}

type ChunkRow = (
    CaptureId,
    i32,
    Option<uuid::Uuid>,
    Vec<u8>,
    i32,
    i32,
    i64,
    DateTime<Utc>,
    String,
    i16,
);

const CHUNK_COLUMNS: &str = "capture_id, seq, blob_id, sha256, bytes, duration_ms, offset_ms, \
    received_at, transcription, attempts";

fn chunk(r: ChunkRow) -> Result<Chunk, StoreError> {
    Ok(Chunk {
        capture_id: r.0,
        seq: r.1,
        blob_id: r.2.map(BlobId::from_uuid),
        sha256: r
            .3
            .try_into()
            .map_err(|_| StoreError::Corrupt("capture_chunk.sha256"))?,
        bytes: r.4,
        duration_ms: r.5,
        offset_ms: r.6,
        received_at: r.7,
        transcription: r.8,
        attempts: r.9,
    })
}

/// One chunk of a capture visible here.
pub async fn chunk_at(
    tx: &mut TenantTx,
    capture: CaptureId,
    seq: i32,
) -> Result<Option<Chunk>, StoreError> {
    let r: Option<ChunkRow> = sqlx::query_as(&format!(
        "select {CHUNK_COLUMNS} from capture_chunk
          where practice_id = $1 and capture_id = $2 and seq = $3"
    ))
    .bind(tx.practice())
    .bind(capture)
    .bind(seq)
    .fetch_optional(tx.conn())
    .await?;
    r.map(chunk).transpose()
}

/// The chunks of a capture visible here, in order.
pub async fn chunks(tx: &mut TenantTx, capture: CaptureId) -> Result<Vec<Chunk>, StoreError> {
    let rows: Vec<ChunkRow> = sqlx::query_as(&format!(
        "select {CHUNK_COLUMNS} from capture_chunk where practice_id = $1 and capture_id = $2
          order by seq"
    ))
    .bind(tx.practice())
    .bind(capture)
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(chunk).collect()
}

/// What [`store_chunk`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkStored {
    /// The chunk was new: encrypted, registered and counted.
    New(Chunk),
    /// The same bytes were accepted before under this `seq` (a resend after a network drop):
    /// nothing changed.
    Repeat(Chunk),
}

impl ChunkStored {
    /// The chunk.
    #[must_use]
    pub fn chunk(&self) -> &Chunk {
        match self {
            ChunkStored::New(c) | ChunkStored::Repeat(c) => c,
        }
    }
}

/// Why [`store_chunk`] refused a chunk (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum ChunkRefused {
    /// The capture is not live (paused or stopped).
    #[error("the capture is {0}: chunks are accepted only while it is live")]
    NotLive(&'static str),
    /// `seq` is neither the next one nor an accepted one.
    #[error("chunk {got} is out of order: the next chunk is {next}")]
    OutOfOrder {
        /// The `seq` sent.
        got: i32,
        /// The next `seq` expected.
        next: i32,
    },
    /// An accepted `seq` was sent again with different bytes.
    #[error("chunk {0} was accepted with different audio")]
    Different(i32),
    /// Not an acceptable WAV body.
    #[error(transparent)]
    Wav(#[from] WavError),
    /// The capture has reached its longest duration (it is stopped now).
    #[error("the capture reached its maximum duration")]
    MaxDuration,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores audio chunk `seq` of capture `c` (read with [`get_for_update`] in this
/// transaction): the public entry point of the capture path for the routes.
///
/// - A `seq` accepted before with the same SHA-256 returns [`ChunkStored::Repeat`] whatever
///   the capture's state (a resend after a network drop); with other bytes,
///   [`ChunkRefused::Different`].
/// - Otherwise the capture must be live ([`ChunkRefused::NotLive`]) and `seq` must be the
///   next one (`c.chunks`; else [`ChunkRefused::OutOfOrder`]); `wav` must pass
///   [`parse_wav`].
/// - A capture whose audio already reaches its longest duration is stopped with
///   `max_duration` (written here) and the chunk refused ([`ChunkRefused::MaxDuration`]; the
///   caller audits the stop and commits). A chunk that crosses the limit is stored and the
///   caller stops the capture (see [`Capture::max_ms`]).
///
/// The WAV bytes are encrypted into a new blob of the practice (streaming AEAD, the practice's
/// active data key), registered in `blob_object`, and the chunk row inserted with its
/// SHA-256, size, duration and offset, transcription `pending`; the capture's `chunks` and
/// `audio_bytes` grow. The caller audits (`capture.chunk`) and commits; if the transaction
/// rolls back, the blob object is left orphaned (unreferenced, sealed).
pub async fn store_chunk(
    tx: &mut TenantTx,
    blobs: &BlobStore,
    c: &Capture,
    seq: i32,
    wav: &[u8],
) -> Result<ChunkStored, ChunkRefused> {
    let sha: [u8; 32] = Sha256::digest(wav).into();
    if let Some(prev) = chunk_at(tx, c.capture_id, seq).await? {
        return if prev.sha256 == sha {
            Ok(ChunkStored::Repeat(prev))
        } else {
            Err(ChunkRefused::Different(seq))
        };
    }
    if c.state != CaptureState::Live {
        return Err(ChunkRefused::NotLive(c.state.as_str()));
    }
    if seq != c.chunks {
        return Err(ChunkRefused::OutOfOrder {
            got: seq,
            next: c.chunks,
        });
    }
    let info = parse_wav(wav)?;
    let practice = tx.practice();
    let (offset,): (i64,) = sqlx::query_as(
        "select coalesce(sum(duration_ms), 0)::int8 from capture_chunk
          where practice_id = $1 and capture_id = $2",
    )
    .bind(practice)
    .bind(c.capture_id)
    .fetch_one(tx.conn())
    .await
    .map_err(StoreError::from)?;
    if offset >= c.max_ms() {
        stop(tx, c, StopReason::MaxDuration).await?;
        return Err(ChunkRefused::MaxDuration);
    }
    let stored = blobs
        .put_stream(practice, wav)
        .await
        .map_err(|e| crypto_error(&e))?;
    let blob = tx.register_blob(&stored).await?;
    let bytes = i32::try_from(wav.len()).map_err(|_| WavError::Length)?;
    let duration = i32::try_from(info.duration_ms).map_err(|_| WavError::Length)?;
    let now = tx.now();
    let row: ChunkRow = sqlx::query_as(&format!(
        "insert into capture_chunk (practice_id, capture_id, patient_id, seq, blob_id, sha256,
            bytes, duration_ms, offset_ms, received_at)
         values ($1, $2, $10, $3, $4, $5, $6, $7, $8, $9)
         returning {CHUNK_COLUMNS}"
    ))
    .bind(practice)
    .bind(c.capture_id)
    .bind(seq)
    .bind(blob.as_uuid())
    .bind(&sha[..])
    .bind(bytes)
    .bind(duration)
    .bind(offset)
    .bind(now)
    .bind(c.patient_id)
    .fetch_one(tx.conn())
    .await
    .map_err(StoreError::from)?;
    sqlx::query(
        "update capture set chunks = chunks + 1, audio_bytes = audio_bytes + $3
          where practice_id = $1 and capture_id = $2",
    )
    .bind(practice)
    .bind(c.capture_id)
    .bind(i64::from(bytes))
    .execute(tx.conn())
    .await
    .map_err(StoreError::from)?;
    Ok(ChunkStored::New(chunk(row)?))
}

/// The audio bytes stored so far for a capture (sum of its chunks' durations, ms).
pub async fn audio_ms(tx: &mut TenantTx, capture: CaptureId) -> Result<i64, StoreError> {
    let (ms,): (i64,) = sqlx::query_as(
        "select coalesce(sum(duration_ms), 0)::int8 from capture_chunk
          where practice_id = $1 and capture_id = $2",
    )
    .bind(tx.practice())
    .bind(capture)
    .fetch_one(tx.conn())
    .await?;
    Ok(ms)
}

/// The WAV bytes of chunk `seq` of `capture`, decrypted from its blob (for the transcription
/// job): `None` when the chunk does not exist here or its audio was purged. Every segment's
/// tag is verified; a blob altered, truncated or moved from another practice is an error.
/// Decrypts audio: the caller audits the use (e.g. the transcription turn) in this
/// transaction. Memory: the chunk (at most [`CHUNK_MAX_BYTES`]).
pub async fn read_chunk_wav(
    tx: &mut TenantTx,
    blobs: &BlobStore,
    capture: CaptureId,
    seq: i32,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(Chunk {
        blob_id: Some(blob),
        ..
    }) = chunk_at(tx, capture, seq).await?
    else {
        return Ok(None);
    };
    let Some(row) = tx.blob(blob).await? else {
        return Ok(None);
    };
    read_blob(blobs, tx.practice(), row.object_id)
        .await
        .map(Some)
}

async fn read_blob(
    blobs: &BlobStore,
    practice: PracticeId,
    object: BlobId,
) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    let mut s = blobs
        .get_stream(practice, object)
        .await
        .map_err(|e| crypto_error(&e))?;
    while let Some(part) = s.try_next().await.map_err(|e| crypto_error(&e))? {
        if out.len() + part.len() > CHUNK_MAX_BYTES {
            return Err(StoreError::Corrupt(
                "a stored chunk is larger than a chunk may be",
            ));
        }
        out.extend_from_slice(&part);
    }
    Ok(out)
}

/// Deletes every blob of `capture`'s chunks (rows, then objects) and marks the capture purged
/// for `reason`; returns how many blobs. Runs on `conn` in `practice` (runtime or owner
/// role).
async fn purge_audio_on(
    conn: &mut PgConnection,
    practice: PracticeId,
    blobs: &BlobStore,
    capture: CaptureId,
    reason: PurgeReason,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let objects: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "select b.blob_id, b.object_id from capture_chunk k
           join blob_object b on b.practice_id = k.practice_id and b.blob_id = k.blob_id
          where k.practice_id = $1 and k.capture_id = $2",
    )
    .bind(practice)
    .bind(capture)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<uuid::Uuid> = objects.iter().map(|o| o.0).collect();
    sqlx::query(
        "update capture_chunk set blob_id = null
          where practice_id = $1 and capture_id = $2 and blob_id is not null",
    )
    .bind(practice)
    .bind(capture)
    .execute(&mut *conn)
    .await?;
    sqlx::query("delete from blob_object where practice_id = $1 and blob_id = any($2)")
        .bind(practice)
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "update capture set audio_purged_at = $3, audio_purge_reason = $4
          where practice_id = $1 and capture_id = $2 and audio_purged_at is null",
    )
    .bind(practice)
    .bind(capture)
    .bind(now)
    .bind(reason.as_str())
    .execute(&mut *conn)
    .await?;
    for (_, object) in &objects {
        blobs
            .delete(BlobId::from_uuid(*object))
            .await
            .map_err(|e| crypto_error(&e))?;
    }
    Ok(objects.len() as u64)
}

/// Deletes the audio of `capture` (see the module docs) for `reason`, in the caller's
/// transaction; returns how many chunk blobs were deleted. The caller audits
/// (`capture.audio_purge`) and commits.
pub async fn purge_audio(
    tx: &mut TenantTx,
    blobs: &BlobStore,
    capture: CaptureId,
    reason: PurgeReason,
) -> Result<u64, StoreError> {
    let practice = tx.practice();
    let now = tx.now();
    purge_audio_on(tx.conn(), practice, blobs, capture, reason, now).await
}

// ----------------------------------------------------------------------------------------
// Owner-role passes (jobs)

/// What [`OwnerStore::sweep_captures`] did in one practice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Live captures stopped as abandoned (no chunk for longer than the idle limit).
    pub abandoned: Vec<CaptureId>,
    /// Open captures stopped at their longest duration.
    pub max_duration: Vec<CaptureId>,
}

/// What [`OwnerStore::purge_expired_audio`] did in one practice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AudioPurgeReport {
    /// Captures whose audio was deleted.
    pub purged: Vec<CaptureId>,
    /// Blobs deleted.
    pub blobs: u64,
    /// Captures past retention kept because their patient is under legal hold.
    pub held: u64,
}

impl OwnerStore {
    /// Stops, in `practice` at `now`, every live capture whose last chunk (or start, or
    /// resume, when it has no chunk since) is older than `idle` (`abandoned`, so the
    /// indicator never shows a recording nobody is making), and every open capture past its
    /// longest duration (`max_duration`). Each stop is audited `capture.stop` with its reason,
    /// as the owner role (no actor).
    pub async fn sweep_captures(
        &self,
        practice: PracticeId,
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> Result<SweepReport, StoreError> {
        let mut tx = self.begin_at(practice, now).await?;
        let rows: Vec<CaptureRow> = sqlx::query_as(&format!(
            "select {CAPTURE_COLUMNS} from capture c
              where c.practice_id = $1 and c.state <> 'stopped'
              order by c.capture_id for update skip locked"
        ))
        .bind(practice)
        .fetch_all(tx.conn())
        .await?;
        let mut report = SweepReport::default();
        for c in captures(rows)? {
            let last: Option<DateTime<Utc>> = sqlx::query_scalar(
                "select max(received_at) from capture_chunk
                  where practice_id = $1 and capture_id = $2",
            )
            .bind(practice)
            .bind(c.capture_id)
            .fetch_one(tx.conn())
            .await?;
            let reason = if c.elapsed_ms_at(now) >= c.max_ms() {
                StopReason::MaxDuration
            } else if c.state == CaptureState::Live
                && [last, c.live_since]
                    .into_iter()
                    .flatten()
                    .max()
                    .is_some_and(|t| now - t > idle)
            {
                StopReason::Abandoned
            } else {
                continue;
            };
            let next = stopped(&c, now, reason);
            write_state(tx.conn(), practice, &next).await?;
            tx.audit(
                AuditAction::CaptureStop,
                Some(AuditObject::capture(c.capture_id)),
                Some(c.patient_id),
                Some(serde_json::json!({ "reason": reason.as_str(), "by": "sweep" })),
            )
            .await?;
            match reason {
                StopReason::MaxDuration => report.max_duration.push(c.capture_id),
                _ => report.abandoned.push(c.capture_id),
            }
        }
        tx.commit().await?;
        Ok(report)
    }

    /// Deletes, in `practice` at `now`, the audio of every stopped capture whose visit has a
    /// note signed more than the policy's `audio_retention_days` ago (reason `retention`), or
    /// whose patient was deleted (reason `patient_deleted`), unless the patient is under legal
    /// hold (counted in [`AudioPurgeReport::held`]). Each purge is audited
    /// `capture.audio_purge` (the reason, the blob count), as the owner role.
    pub async fn purge_expired_audio(
        &self,
        practice: PracticeId,
        now: DateTime<Utc>,
        blobs: &BlobStore,
    ) -> Result<AudioPurgeReport, StoreError> {
        let mut tx = self.begin_at(practice, now).await?;
        let policy = policy_on(tx.conn(), practice).await?;
        let cutoff = now
            .checked_sub_signed(chrono::Duration::days(i64::from(
                policy.audio_retention_days,
            )))
            .ok_or(StoreError::Corrupt("audio retention cut-off out of range"))?;
        let due: Vec<(CaptureId, PatientId, bool, bool)> = sqlx::query_as(
            "select c.capture_id, c.patient_id,
                    exists (select 1 from legal_hold h
                             where h.practice_id = c.practice_id and h.patient_id = c.patient_id),
                    p.deleted_at is not null
               from capture c
               join patient p on p.practice_id = c.practice_id and p.patient_id = c.patient_id
              where c.practice_id = $1 and c.state = 'stopped' and c.audio_purged_at is null
                and (p.deleted_at is not null
                     or exists (select 1 from clinical_note n
                                  join clinical_note_version v
                                    on v.practice_id = n.practice_id and v.note_id = n.note_id
                                 where n.practice_id = c.practice_id and n.visit_id = c.visit_id
                                   and v.kind = 'signed' and v.signed_at <= $2))
              order by c.capture_id
              for update of c",
        )
        .bind(practice)
        .bind(cutoff)
        .fetch_all(tx.conn())
        .await?;
        let mut report = AudioPurgeReport::default();
        for (capture, patient, held, deleted) in due {
            if held {
                report.held += 1;
                continue;
            }
            let reason = if deleted {
                PurgeReason::PatientDeleted
            } else {
                PurgeReason::Retention
            };
            let n = purge_audio_on(tx.conn(), practice, blobs, capture, reason, now).await?;
            tx.audit(
                AuditAction::CaptureAudioPurge,
                Some(AuditObject::capture(capture)),
                Some(patient),
                Some(serde_json::json!({
                    "reason": reason.as_str(),
                    "blobs": n,
                    "audio_retention_days": policy.audio_retention_days,
                })),
            )
            .await?;
            report.blobs += n;
            report.purged.push(capture);
        }
        tx.commit().await?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, channels: u16, bits: u16, data: usize) -> Vec<u8> {
        let mut w = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0".to_vec();
        w.extend_from_slice(&channels.to_le_bytes());
        w.extend_from_slice(&rate.to_le_bytes());
        w.extend_from_slice(&(rate * 2).to_le_bytes());
        w.extend_from_slice(&2u16.to_le_bytes());
        w.extend_from_slice(&bits.to_le_bytes());
        w.extend_from_slice(b"LIST\x03\0\0\0abc\0");
        w.extend_from_slice(b"data");
        w.extend_from_slice(&u32::try_from(data).unwrap().to_le_bytes());
        w.extend(std::iter::repeat_n(0u8, data));
        w
    }

    // issue 18 — chunks are WAV, 16 kHz mono 16-bit PCM; the duration comes from the samples.
    #[test]
    fn wav_headers_are_checked() {
        assert_eq!(
            parse_wav(&wav(16_000, 1, 16, 32_000)),
            Ok(WavInfo {
                samples: 16_000,
                duration_ms: 1000
            })
        );
        assert_eq!(
            parse_wav(&wav(44_100, 1, 16, 100)),
            Err(WavError::WrongFormat)
        );
        assert_eq!(
            parse_wav(&wav(16_000, 2, 16, 100)),
            Err(WavError::WrongFormat)
        );
        assert_eq!(
            parse_wav(&wav(16_000, 1, 8, 100)),
            Err(WavError::WrongFormat)
        );
        assert_eq!(parse_wav(&wav(16_000, 1, 16, 0)), Err(WavError::Length));
        let mut cut = wav(16_000, 1, 16, 100);
        cut.truncate(cut.len() - 10);
        assert_eq!(parse_wav(&cut), Err(WavError::NoData));
        assert_eq!(parse_wav(b"RIFF\0\0\0\0WAVX"), Err(WavError::NotWav));
        assert_eq!(parse_wav(b""), Err(WavError::NotWav));
        assert_eq!(
            parse_wav(&wav(16_000, 1, 16, 16_000 * 2 * 61)),
            Err(WavError::Length)
        );
    }

    // issue 18 — elapsed time adds the live stretch; pause and stop fold it in.
    #[test]
    fn elapsed_time_follows_the_state() {
        let t0 = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let c = Capture {
            capture_id: CaptureId::new(),
            visit_id: VisitId::new(),
            patient_id: PatientId::new(),
            consent_id: ConsentId::new(),
            clinician_id: UserId::new(),
            state: CaptureState::Live,
            stop_reason: None,
            started_at: t0,
            live_since: Some(t0),
            elapsed_ms: 0,
            stopped_at: None,
            max_seconds: 60,
            chunks: 0,
            audio_bytes: 0,
            audio_purged: None,
        };
        let t1 = t0 + chrono::Duration::seconds(10);
        assert_eq!(c.elapsed_ms_at(t1), 10_000);
        let p = paused(&c, t1);
        assert_eq!(
            (p.state, p.elapsed_ms, p.live_since),
            (CaptureState::Paused, 10_000, None)
        );
        assert_eq!(p.elapsed_ms_at(t1 + chrono::Duration::seconds(99)), 10_000);
        let r = resumed(&p, t1 + chrono::Duration::seconds(20));
        assert_eq!(r.elapsed_ms_at(t1 + chrono::Duration::seconds(25)), 15_000);
        let s = stopped(
            &r,
            t1 + chrono::Duration::seconds(200),
            StopReason::Clinician,
        );
        assert_eq!(s.elapsed_ms, 60_000, "capped at the longest capture");
        assert_eq!(s.stop_reason, Some(StopReason::Clinician));
        assert_eq!(stopped(&s, t1, StopReason::Abandoned), s);
        assert_eq!(resumed(&s, t1), s);
        assert_eq!(paused(&s, t1), s);
    }
}
