//! Patients: demographics and contact details (clinician or reception; enforced by RLS).
//! Every function runs inside the caller's [`TenantTx`]; the caller audits.
//!
//! # Encryption at rest
//! Given name, family name, date of birth, phone and email are stored only as field
//! ciphertexts (`*_enc` columns), each bound to (practice, `patient`, column, patient id), so
//! a value copied to another row, column or practice fails to decrypt instead of reading as
//! another patient's data. Functions here encrypt on write and decrypt on read with the
//! practice's keys from the [`Keyring`]; callers see plaintext [`Patient`]s. Rows written
//! before encryption (legacy plaintext columns) are read as they are until the start-up job
//! ([`crate::OwnerStore::encrypt_existing`]) seals them.
//!
//! Search ([`search`]) never uses plaintext: it matches blind-index tags
//! (`patient_search_token`) of name prefixes, the date of birth and the phone number under
//! every live data-key version, then decrypts the candidates and checks them exactly.
//!
//! # Deletion
//! Deleting is soft ([`delete`] sets `deleted_at`): [`get`], [`update`], [`list`] and
//! [`search`] skip deleted patients, [`is_deleted`] tells a deleted patient from an unknown
//! one (410 rather than 404). The record is purged later by the retention job
//! ([`crate::retention`]).
#![allow(
    clippy::option_option,
    reason = "a PATCH tells an absent field (keep) from null (clear)"
)]

use chrono::{DateTime, NaiveDate, Utc};
use crypto::blind_index::{normalize_name, normalize_phone};
use crypto::{BlindTag, CryptoError, DataKey, FieldContext, IndexKind, Keyring, PracticeKeys};
use domain::{PatientId, PracticeId};
use serde::Serialize;
use sqlx::PgConnection;

use crate::entry::Opener;
use crate::sealed_columns::{PATIENT, crypto_error, write_keys};
use crate::{StoreError, TenantTx};

/// The table name bound into every patient ciphertext.
pub const TABLE: &str = PATIENT.table;
/// Country calling code assumed for phone numbers written without one, for the phone blind
/// index (ITU-T E.164; `1` = NANP).
pub const DEFAULT_COUNTRY_CODE: u16 = 1;
/// Most patients a practice-wide list or search decrypts and sorts in one request.
const MAX_SCAN: i64 = 100_000;

/// A patient row.
#[derive(Debug, Clone, Serialize)]
pub struct Patient {
    /// Id.
    pub patient_id: PatientId,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Date of birth.
    pub date_of_birth: Option<NaiveDate>,
    /// Phone.
    pub phone: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Fields of a new patient (already validated by the caller).
#[derive(Debug, Clone)]
pub struct NewPatient {
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Date of birth.
    pub date_of_birth: Option<NaiveDate>,
    /// Phone.
    pub phone: Option<String>,
    /// Email.
    pub email: Option<String>,
}

/// A partial update; `None` leaves a field as it is, `Some(None)` clears an optional field.
#[derive(Debug, Clone, Default)]
pub struct PatientPatch {
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Date of birth.
    pub date_of_birth: Option<Option<NaiveDate>>,
    /// Phone.
    pub phone: Option<Option<String>>,
    /// Email.
    pub email: Option<Option<String>>,
}

/// Search criteria (all given criteria must match). Values are matched through blind
/// indexes, never sent to the database in the clear.
#[derive(Debug, Clone, Default)]
pub struct PatientSearch {
    /// Name prefix: every word must start a word of the given or family name
    /// (case-, accent- and punctuation-insensitive, at least two characters per word).
    pub name_prefix: Option<String>,
    /// Exact date of birth.
    pub date_of_birth: Option<NaiveDate>,
    /// Phone number (any formatting; national numbers use [`DEFAULT_COUNTRY_CODE`]).
    pub phone: Option<String>,
}

/// The stored row: ciphertext columns, plus legacy plaintext until it is migrated.
#[derive(sqlx::FromRow)]
struct Row {
    patient_id: PatientId,
    given_name: Option<String>,
    family_name: Option<String>,
    date_of_birth: Option<NaiveDate>,
    phone: Option<String>,
    email: Option<String>,
    given_name_enc: Option<Vec<u8>>,
    family_name_enc: Option<Vec<u8>>,
    date_of_birth_enc: Option<Vec<u8>>,
    phone_enc: Option<Vec<u8>>,
    email_enc: Option<Vec<u8>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "patient_id, given_name, family_name, date_of_birth, phone, email, \
     given_name_enc, family_name_enc, date_of_birth_enc, phone_enc, email_enc, created_at, updated_at";

fn ctx<'a>(practice: PracticeId, column: &'a str, id: &'a uuid::Uuid) -> FieldContext<'a> {
    PATIENT.context(practice, column, id.as_bytes())
}

async fn open_text(
    opener: &Opener<'_>,
    practice: PracticeId,
    id: PatientId,
    column: &str,
    enc: Option<&[u8]>,
    legacy: Option<String>,
) -> Result<Option<String>, StoreError> {
    let Some(ct) = enc else { return Ok(legacy) };
    let uuid = id.as_uuid();
    opener
        .open_text(&ctx(practice, column, &uuid), ct)
        .await
        .map(Some)
}

impl Row {
    /// Decrypts the row (ciphertext first, legacy plaintext as a fallback).
    async fn open(self, opener: &Opener<'_>, practice: PracticeId) -> Result<Patient, StoreError> {
        let id = self.patient_id;
        let given_name = open_text(
            opener,
            practice,
            id,
            "given_name",
            self.given_name_enc.as_deref(),
            self.given_name,
        )
        .await?
        .ok_or(StoreError::Corrupt("patient without a given name"))?;
        let family_name = open_text(
            opener,
            practice,
            id,
            "family_name",
            self.family_name_enc.as_deref(),
            self.family_name,
        )
        .await?
        .ok_or(StoreError::Corrupt("patient without a family name"))?;
        let dob_text = open_text(
            opener,
            practice,
            id,
            "date_of_birth",
            self.date_of_birth_enc.as_deref(),
            None,
        )
        .await?;
        let date_of_birth = match dob_text {
            Some(t) => Some(
                NaiveDate::parse_from_str(&t, "%Y-%m-%d")
                    .map_err(|_| StoreError::Corrupt("an encrypted date of birth is malformed"))?,
            ),
            None => self.date_of_birth,
        };
        let phone = open_text(
            opener,
            practice,
            id,
            "phone",
            self.phone_enc.as_deref(),
            self.phone,
        )
        .await?;
        let email = open_text(
            opener,
            practice,
            id,
            "email",
            self.email_enc.as_deref(),
            self.email,
        )
        .await?;
        Ok(Patient {
            patient_id: id,
            given_name,
            family_name,
            date_of_birth,
            phone,
            email,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The plaintext fields of a patient, sealed for one row.
pub(crate) struct Sealed {
    given_name: Vec<u8>,
    family_name: Vec<u8>,
    date_of_birth: Option<Vec<u8>>,
    phone: Option<Vec<u8>>,
    email: Option<Vec<u8>>,
    tags: Vec<(i16, BlindTag)>,
}

/// The blind-index tags of a patient under `key`.
fn tags(key: &DataKey, p: &NewPatient) -> Vec<(i16, BlindTag)> {
    let mut out: Vec<(i16, BlindTag)> = Vec::new();
    let mut names = key.name_index_tags(&p.given_name);
    names.extend(key.name_index_tags(&p.family_name));
    names.sort_unstable();
    names.dedup();
    out.extend(names.into_iter().map(|t| (IndexKind::NamePrefix as i16, t)));
    if let Some(d) = p.date_of_birth {
        out.push((IndexKind::DateOfBirth as i16, key.date_of_birth_tag(d)));
    }
    if let Some(t) = p
        .phone
        .as_deref()
        .and_then(|ph| key.phone_tag(ph, DEFAULT_COUNTRY_CODE).ok())
    {
        out.push((IndexKind::Phone as i16, t));
    }
    out
}

/// Seals every field of `p` for row `id` with the practice's active key.
pub(crate) fn seal(
    keys: &PracticeKeys,
    id: PatientId,
    p: &NewPatient,
) -> Result<Sealed, StoreError> {
    let practice = keys.practice();
    let key = keys.active();
    let uuid = id.as_uuid();
    let enc = |column: &str, v: &[u8]| {
        crypto::encrypt_field(key, &ctx(practice, column, &uuid), v).map_err(|e| crypto_error(&e))
    };
    Ok(Sealed {
        given_name: enc("given_name", p.given_name.as_bytes())?,
        family_name: enc("family_name", p.family_name.as_bytes())?,
        date_of_birth: p
            .date_of_birth
            .map(|d| enc("date_of_birth", d.format("%Y-%m-%d").to_string().as_bytes()))
            .transpose()?,
        phone: p
            .phone
            .as_deref()
            .map(|v| enc("phone", v.as_bytes()))
            .transpose()?,
        email: p
            .email
            .as_deref()
            .map(|v| enc("email", v.as_bytes()))
            .transpose()?,
        tags: tags(key, p),
    })
}

/// Writes sealed fields over row `id` (plaintext columns emptied) and replaces its search
/// tokens. The row must exist.
async fn write_sealed(
    conn: &mut PgConnection,
    practice: PracticeId,
    id: PatientId,
    s: &Sealed,
    now: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    sqlx::query(
        "update patient set given_name = null, family_name = null, date_of_birth = null,
                phone = null, email = null,
                given_name_enc = $3, family_name_enc = $4, date_of_birth_enc = $5,
                phone_enc = $6, email_enc = $7, updated_at = coalesce($8, updated_at)
          where practice_id = $1 and patient_id = $2",
    )
    .bind(practice)
    .bind(id)
    .bind(&s.given_name)
    .bind(&s.family_name)
    .bind(&s.date_of_birth)
    .bind(&s.phone)
    .bind(&s.email)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    write_tags(conn, practice, id, &s.tags).await
}

async fn write_tags(
    conn: &mut PgConnection,
    practice: PracticeId,
    id: PatientId,
    tags: &[(i16, BlindTag)],
) -> Result<(), StoreError> {
    sqlx::query("delete from patient_search_token where practice_id = $1 and patient_id = $2")
        .bind(practice)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let kinds: Vec<i16> = tags.iter().map(|t| t.0).collect();
    let values: Vec<Vec<u8>> = tags.iter().map(|t| t.1.as_bytes().to_vec()).collect();
    sqlx::query(
        "insert into patient_search_token (practice_id, patient_id, kind, tag)
         select $1, $2, k, t from unnest($3::int2[], $4::bytea[]) as x(k, t)
         on conflict do nothing",
    )
    .bind(practice)
    .bind(id)
    .bind(&kinds)
    .bind(&values)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Seals again, under the practice's active key, up to `batch` patient rows of `practice`
/// that match `todo` (a condition on `patient` in which `$2` is `todo_arg`), rewriting their
/// search tokens; legacy plaintext is sealed and emptied. Returns how many. The re-encryption
/// pass of a patient record ([`crate::sealed_columns::Reencrypt::PatientRecord`]); the caller
/// (the owner role) commits.
pub(crate) async fn reseal_batch(
    conn: &mut PgConnection,
    keyring: &Keyring,
    opener: &Opener<'_>,
    practice: PracticeId,
    todo: &str,
    todo_arg: Option<&[u8]>,
    batch: i64,
) -> Result<u64, StoreError> {
    let keys = write_keys(keyring, practice).await?;
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from patient where practice_id = $1 and {todo}
          order by patient_id limit $3 for update"
    ))
    .bind(practice)
    .bind(todo_arg)
    .bind(batch)
    .fetch_all(&mut *conn)
    .await?;
    let n = rows.len() as u64;
    for r in rows {
        let id = r.patient_id;
        let p = r.open(opener, practice).await?;
        let new = NewPatient {
            given_name: p.given_name,
            family_name: p.family_name,
            date_of_birth: p.date_of_birth,
            phone: p.phone,
            email: p.email,
        };
        let sealed = seal(&keys, id, &new)?;
        write_sealed(conn, practice, id, &sealed, None).await?;
    }
    Ok(n)
}

/// Inserts a sealed patient row and its search tokens.
pub(crate) async fn insert_sealed(
    conn: &mut PgConnection,
    practice: PracticeId,
    id: PatientId,
    s: &Sealed,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into patient (practice_id, patient_id, given_name_enc, family_name_enc,
                date_of_birth_enc, phone_enc, email_enc, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(practice)
    .bind(id)
    .bind(&s.given_name)
    .bind(&s.family_name)
    .bind(&s.date_of_birth)
    .bind(&s.phone)
    .bind(&s.email)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    write_tags(conn, practice, id, &s.tags).await
}

/// Reads and decrypts one patient of the transaction's practice; `None` when there is no such
/// patient or the patient was deleted (tell the two apart with [`is_deleted`]).
pub async fn get(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: PatientId,
) -> Result<Option<Patient>, StoreError> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from patient where practice_id = $1 and patient_id = $2 and deleted_at is null"
    ))
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    match row {
        Some(r) => {
            let practice = tx.practice();
            Ok(Some(r.open(&tx.opener(keyring), practice).await?))
        }
        None => Ok(None),
    }
}

/// Reads and opens one live patient of `practice` on `conn` with `opener` (whose transaction
/// must then audit): for transactions other than a member's (a client link's prefill).
pub(crate) async fn read_opened(
    conn: &mut PgConnection,
    opener: &Opener<'_>,
    practice: PracticeId,
    id: PatientId,
) -> Result<Option<Patient>, StoreError> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from patient where practice_id = $1 and patient_id = $2 and deleted_at is null"
    ))
    .bind(practice)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    match row {
        Some(r) => Ok(Some(r.open(opener, practice).await?)),
        None => Ok(None),
    }
}

/// Whether the patient exists in the transaction's practice, deleted or not: their history
/// (disclosures, care team) stays reachable (nothing is decrypted).
pub async fn exists(tx: &mut TenantTx, id: PatientId) -> Result<bool, StoreError> {
    let row: Option<(PatientId,)> =
        sqlx::query_as("select patient_id from patient where practice_id = $1 and patient_id = $2")
            .bind(tx.practice())
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
    Ok(row.is_some())
}

fn sort(patients: &mut [Patient]) {
    patients.sort_by_cached_key(|p| {
        (
            p.family_name.to_lowercase(),
            p.given_name.to_lowercase(),
            p.patient_id.as_uuid(),
        )
    });
}

/// Lists patients by family name, given name, id (stable order), `limit` ≤ 100 from `offset`.
/// Names are encrypted, so the practice's patients are decrypted and sorted in memory (at
/// most 100 000).
pub async fn list(
    tx: &mut TenantTx,
    keyring: &Keyring,
    offset: i64,
    limit: i64,
) -> Result<Vec<Patient>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from patient where practice_id = $1 and deleted_at is null
          order by patient_id limit $2"
    ))
    .bind(tx.practice())
    .bind(MAX_SCAN)
    .fetch_all(tx.conn())
    .await?;
    let mut all = Vec::with_capacity(rows.len());
    let practice = tx.practice();
    let opener = tx.opener(keyring);
    for r in rows {
        all.push(r.open(&opener, practice).await?);
    }
    sort(&mut all);
    let skip = usize::try_from(offset.max(0)).unwrap_or(usize::MAX);
    let take = usize::try_from(limit.clamp(1, 100)).unwrap_or(100);
    Ok(all.into_iter().skip(skip).take(take).collect())
}

/// One patient of the owner transaction's practice (not deleted), opened; the caller appends
/// the audit event that covers the opening before it commits.
pub(crate) async fn get_as_owner(
    tx: &mut crate::OwnerTx,
    keyring: &Keyring,
    id: PatientId,
) -> Result<Option<Patient>, StoreError> {
    let practice = tx.practice();
    let row: Option<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from patient where practice_id = $1 and patient_id = $2 and deleted_at is null"
    ))
    .bind(practice)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    match row {
        Some(r) => Ok(Some(r.open(&tx.opener(keyring), practice).await?)),
        None => Ok(None),
    }
}

/// The transactions that may open the practice's whole client list for the outbound
/// scanner: the outbox job's owner transaction and a member's (the templates preview).
pub(crate) trait ScannerTx {
    /// Where the client list is read from: the `patient` table for the owner role (the
    /// outbox job); for a member, `app.scanner_clients()` (migration 0042), the same rows
    /// and sealed contact columns for the roles the templates preview admits, whom
    /// row-level security would otherwise show none (owners, admins): one list, one scanner.
    const SOURCE: &'static str;
    /// The practice.
    fn scan_practice(&self) -> PracticeId;
    /// The connection.
    fn scan_conn(&mut self) -> &mut sqlx::PgConnection;
    /// The opener (the transaction then commits only after an audit event).
    fn scan_opener<'k>(&mut self, keyring: &'k Keyring) -> crate::entry::Opener<'k>;
}

impl ScannerTx for crate::OwnerTx {
    const SOURCE: &'static str = "patient";
    fn scan_practice(&self) -> PracticeId {
        self.practice()
    }
    fn scan_conn(&mut self) -> &mut sqlx::PgConnection {
        self.conn()
    }
    fn scan_opener<'k>(&mut self, keyring: &'k Keyring) -> crate::entry::Opener<'k> {
        self.opener(keyring)
    }
}

impl ScannerTx for crate::TenantTx {
    const SOURCE: &'static str = "app.scanner_clients()";
    fn scan_practice(&self) -> PracticeId {
        self.practice()
    }
    fn scan_conn(&mut self) -> &mut sqlx::PgConnection {
        self.conn()
    }
    fn scan_opener<'k>(&mut self, keyring: &'k Keyring) -> crate::entry::Opener<'k> {
        self.opener(keyring)
    }
}

/// Every patient of the practice, deleted ones too (at most 100 000), opened in `tx`: the
/// outbound scanner's list of the practice's own clients. The caller appends the audit event
/// that covers the opening before it commits.
pub(crate) async fn all_for_scanner<T: ScannerTx>(
    tx: &mut T,
    keyring: &Keyring,
) -> Result<Vec<Patient>, StoreError> {
    let practice = tx.scan_practice();
    let source = T::SOURCE;
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from {source} where practice_id = $1 order by patient_id limit $2"
    ))
    .bind(practice)
    .bind(MAX_SCAN)
    .fetch_all(tx.scan_conn())
    .await?;
    let opener = tx.scan_opener(keyring);
    let mut all = Vec::with_capacity(rows.len());
    for r in rows {
        all.push(r.open(&opener, practice).await?);
    }
    Ok(all)
}

/// Whether a name query has a usable word (two or more characters after normalization).
#[must_use]
pub fn name_query_usable(query: &str) -> bool {
    normalize_name(query)
        .iter()
        .any(|w| w.chars().count() >= crypto::blind_index::MIN_PREFIX)
}

/// Whether a phone number can be searched (normalizes to a valid E.164-like number).
#[must_use]
pub fn phone_searchable(phone: &str) -> bool {
    normalize_phone(phone, DEFAULT_COUNTRY_CODE).is_ok()
}

fn name_matches(query: &[String], p: &Patient) -> bool {
    let mut words = normalize_name(&p.given_name);
    words.extend(normalize_name(&p.family_name));
    query
        .iter()
        .all(|q| words.iter().any(|w| w.starts_with(q.as_str())))
}

/// The practice's keys for a search, including a version another process may have added
/// since they were cached; `None` when the practice has no key yet (nothing can match).
async fn search_keys(
    tx: &mut TenantTx,
    keyring: &Keyring,
) -> Result<Option<std::sync::Arc<PracticeKeys>>, StoreError> {
    let practice = tx.practice();
    let mut keys = match keyring.keys(practice).await {
        Ok(k) => k,
        // No key yet: the practice has no encrypted patient, so nothing can match.
        Err(CryptoError::NoDataKey { .. }) => return Ok(None),
        Err(e) => return Err(crypto_error(&e)),
    };
    // Tags are written under the active version: if another process rotated the data key
    // since these keys were cached, reload so the query covers the new version too.
    let newest: Option<i32> =
        sqlx::query_scalar("select max(dek_version) from practice_data_key where practice_id = $1")
            .bind(practice)
            .fetch_one(tx.conn())
            .await?;
    if let Some(v) = newest
        .and_then(|v| u32::try_from(v).ok())
        .and_then(|v| crypto::DekVersion::new(v).ok())
        .filter(|v| !keys.contains(*v))
    {
        keys = keyring
            .keys_including(practice, v)
            .await
            .map_err(|e| crypto_error(&e))?;
    }
    Ok(Some(keys))
}

/// Finds patients of the transaction's practice matching every given criterion, through
/// the blind indexes (at most `limit` ≤ 100, ordered like [`list`]). Candidates are
/// decrypted and checked exactly (an index prefix is cut at 12 characters). Fails with
/// [`StoreError::Invalid`] when no criterion is usable (no name word of two or more
/// characters, or a phone number that is not a valid number).
pub async fn search(
    tx: &mut TenantTx,
    keyring: &Keyring,
    q: &PatientSearch,
    limit: i64,
) -> Result<Vec<Patient>, StoreError> {
    let practice = tx.practice();
    let Some(keys) = search_keys(tx, keyring).await? else {
        return Ok(Vec::new());
    };
    let query_words: Vec<String> = q
        .name_prefix
        .as_deref()
        .map(normalize_name)
        .unwrap_or_default()
        .into_iter()
        .filter(|w| w.chars().count() >= crypto::blind_index::MIN_PREFIX)
        .collect();
    if q.name_prefix.is_some() && query_words.is_empty() {
        return Err(StoreError::Invalid("patient_search_name".into()));
    }
    let (mut name_tags, mut name_word) = (Vec::<Vec<u8>>::new(), Vec::<i32>::new());
    if let Some(n) = &q.name_prefix {
        for (i, any_of) in keys.name_query_tags(n).into_iter().enumerate() {
            for t in any_of {
                name_tags.push(t.as_bytes().to_vec());
                name_word.push(i32::try_from(i).unwrap_or(i32::MAX));
            }
        }
    }
    let words = i32::try_from(query_words.len()).unwrap_or(i32::MAX);
    let dob_tags: Option<Vec<Vec<u8>>> = q.date_of_birth.map(|d| {
        keys.date_of_birth_query_tags(d)
            .iter()
            .map(|t| t.as_bytes().to_vec())
            .collect()
    });
    let phone_norm = match q.phone.as_deref() {
        Some(p) => Some(
            normalize_phone(p, DEFAULT_COUNTRY_CODE)
                .map_err(|_| StoreError::Invalid("patient_search_phone".into()))?,
        ),
        None => None,
    };
    let phone_tags: Option<Vec<Vec<u8>>> = match q.phone.as_deref() {
        Some(p) => Some(
            keys.phone_query_tags(p, DEFAULT_COUNTRY_CODE)
                .map_err(|_| StoreError::Invalid("patient_search_phone".into()))?
                .iter()
                .map(|t| t.as_bytes().to_vec())
                .collect(),
        ),
        None => None,
    };
    if q.name_prefix.is_none() && dob_tags.is_none() && phone_tags.is_none() {
        return Err(StoreError::Invalid("patient_search_empty".into()));
    }
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from patient p
          where p.practice_id = $1 and p.deleted_at is null
            and ($2 = 0 or p.patient_id in (
                  select t.patient_id from patient_search_token t
                    join unnest($3::bytea[], $4::int4[]) as q(tag, word) on t.tag = q.tag
                   where t.practice_id = $1 and t.kind = 1
                   group by t.patient_id having count(distinct q.word) = $2))
            and ($5::bytea[] is null or exists (
                  select 1 from patient_search_token t
                   where t.practice_id = $1 and t.patient_id = p.patient_id
                     and t.kind = 2 and t.tag = any($5)))
            and ($6::bytea[] is null or exists (
                  select 1 from patient_search_token t
                   where t.practice_id = $1 and t.patient_id = p.patient_id
                     and t.kind = 3 and t.tag = any($6)))
          limit $7"
    ))
    .bind(practice)
    .bind(words)
    .bind(&name_tags)
    .bind(&name_word)
    .bind(&dob_tags)
    .bind(&phone_tags)
    .bind(MAX_SCAN)
    .fetch_all(tx.conn())
    .await?;
    let mut found = Vec::new();
    let opener = tx.opener(keyring);
    for r in rows {
        let p = r.open(&opener, practice).await?;
        let ok = name_matches(&query_words, &p)
            && q.date_of_birth.is_none_or(|d| p.date_of_birth == Some(d))
            && phone_norm.as_deref().is_none_or(|want| {
                p.phone
                    .as_deref()
                    .and_then(|ph| normalize_phone(ph, DEFAULT_COUNTRY_CODE).ok())
                    .is_some_and(|got| got == want)
            });
        if ok {
            found.push(p);
        }
    }
    sort(&mut found);
    found.truncate(usize::try_from(limit.clamp(1, 100)).unwrap_or(100));
    Ok(found)
}

/// Creates a patient (fields encrypted, search tokens written).
pub async fn create(
    tx: &mut TenantTx,
    keyring: &Keyring,
    new: &NewPatient,
) -> Result<Patient, StoreError> {
    let now = tx.now();
    let practice = tx.practice();
    let id = PatientId::new();
    let keys = write_keys(keyring, practice).await?;
    let sealed = seal(&keys, id, new)?;
    insert_sealed(tx.conn(), practice, id, &sealed, now).await?;
    Ok(Patient {
        patient_id: id,
        given_name: new.given_name.clone(),
        family_name: new.family_name.clone(),
        date_of_birth: new.date_of_birth,
        phone: new.phone.clone(),
        email: new.email.clone(),
        created_at: now,
        updated_at: now,
    })
}

/// Applies a partial update (the whole record is re-sealed with the active key and its
/// search tokens rewritten). `None` when there is no such patient or they were deleted.
pub async fn update(
    tx: &mut TenantTx,
    keyring: &Keyring,
    id: PatientId,
    patch: &PatientPatch,
) -> Result<Option<Patient>, StoreError> {
    let now = tx.now();
    let practice = tx.practice();
    let row: Option<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from patient
          where practice_id = $1 and patient_id = $2 and deleted_at is null for update"
    ))
    .bind(practice)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let cur = row.open(&tx.opener(keyring), practice).await?;
    let next = NewPatient {
        given_name: patch.given_name.clone().unwrap_or(cur.given_name),
        family_name: patch.family_name.clone().unwrap_or(cur.family_name),
        date_of_birth: patch.date_of_birth.unwrap_or(cur.date_of_birth),
        phone: patch.phone.clone().unwrap_or(cur.phone),
        email: patch.email.clone().unwrap_or(cur.email),
    };
    let keys = write_keys(keyring, practice).await?;
    let sealed = seal(&keys, id, &next)?;
    write_sealed(tx.conn(), practice, id, &sealed, Some(now)).await?;
    Ok(Some(Patient {
        patient_id: id,
        given_name: next.given_name,
        family_name: next.family_name,
        date_of_birth: next.date_of_birth,
        phone: next.phone,
        email: next.email,
        created_at: cur.created_at,
        updated_at: now,
    }))
}

/// Soft-deletes a patient at the transaction's time: reads, lists and search leave them out;
/// their appointments, notes, exams, disclosures and audit trail stay, and the retention job
/// ([`crate::OwnerStore::purge_expired`]) purges the record once the practice's windows have
/// passed. `false` when there is no such patient or they were already deleted.
pub async fn delete(tx: &mut TenantTx, id: PatientId) -> Result<bool, StoreError> {
    let now = tx.now();
    let done = sqlx::query(
        "update patient set deleted_at = $3
          where practice_id = $1 and patient_id = $2 and deleted_at is null",
    )
    .bind(tx.practice())
    .bind(id)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the patient exists in the transaction's practice and was deleted (the caller
/// answers 410 Gone rather than 404).
pub async fn is_deleted(tx: &mut TenantTx, id: PatientId) -> Result<bool, StoreError> {
    let row: Option<(i32,)> = sqlx::query_as(
        "select 1 from patient where practice_id = $1 and patient_id = $2 and deleted_at is not null",
    )
    .bind(tx.practice())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.is_some())
}

impl From<domain::synthetic::SyntheticPatient> for NewPatient {
    fn from(p: domain::synthetic::SyntheticPatient) -> Self {
        Self {
            given_name: p.given_name,
            family_name: p.family_name,
            date_of_birth: Some(p.date_of_birth),
            phone: Some(p.phone),
            email: Some(p.email),
        }
    }
}
