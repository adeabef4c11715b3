//! The one tenant entry, and the audited transaction both roles share.
//!
//! - [`set_practice`] is the only place a practice is entered (`chartroom.practice_id`, set
//!   transaction-locally, which row-level security reads). The request path enters through the
//!   session check in the database (`app.enter`), which sets the same setting.
//! - [`Audited`] is a transaction inside one practice with its time (from the injected clock)
//!   and a ledger of what it did: the request path's [`crate::TenantTx`] and the owner role's
//!   [`OwnerTx`] are both one. Sealed fields are opened only through an [`Opener`], which only
//!   such a transaction hands out; from then on the transaction refuses to commit until it
//!   has appended an audit event ([`crate::append`]). So no transaction that decrypted
//!   patient data commits without its audit event, by construction.
//! - The session-less entries live here too, next to the member's: the public booking page
//!   ([`enter_online_booking`], `app.enter_online_booking`) and a client link's holder
//!   ([`enter_link`], `app.enter_link`). Each gives the transaction a pseudo-role no member
//!   holds and no actor; each is an [`Audited`] transaction, so what it opens it audits.
//! - So does the one role switch inside an entered transaction: a cancellation's release of
//!   its freed slot to the waitlist ([`enter_waitlist_release`], `app.enter_waitlist_release`,
//!   given back by [`leave_waitlist_release`]).
//! - A read ([`Access::Read`]) is a read-only transaction whose audit events go to the
//!   group-commit writer ([`crate::group_commit`]) when it commits; its commit returns only
//!   once they are durable, and fails if they cannot be made so.

use chrono::{DateTime, Utc};
use crypto::{FieldContext, Keyring, PracticeKeys};
use domain::{AppointmentId, AuditAction, AuditObject, ClientLinkId, PatientId, PracticeId};
use outbound::LinkToken;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::append::{NewEvent, append, resolve};
use crate::group_commit::AuditWriter;
use crate::links::Purpose;
use crate::sealed_columns::crypto_error;
use crate::{OwnerStore, StoreError};

/// Enters `practice` (or, with `None`, leaves any practice: the setting reads back as `''`,
/// which matches no row) for the rest of the transaction on `conn`. The one place the tenant
/// setting is written.
pub(crate) async fn set_practice(
    conn: &mut PgConnection,
    practice: Option<PracticeId>,
) -> Result<(), sqlx::Error> {
    sqlx::query("select set_config('chartroom.practice_id', $1, true)")
        .bind(practice.map(|p| p.to_string()).unwrap_or_default())
        .execute(conn)
        .await?;
    Ok(())
}

/// A transaction on `pool` that has entered `practice`, for work that neither decrypts nor
/// audits (key-table statements, the sequencer, reads of ids and hashes).
pub(crate) async fn begin_in(
    pool: &PgPool,
    practice: PracticeId,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    set_practice(&mut tx, Some(practice)).await?;
    Ok(tx)
}

/// The public booking page's entry: a transaction on `pool` inside `practice` with the
/// `online_booking` pseudo-role and no actor, through `app.enter_online_booking`; `None` when
/// the practice does not take online bookings (or does not exist: the two are not told apart).
pub(crate) async fn enter_online_booking(
    pool: &PgPool,
    practice: PracticeId,
    now: DateTime<Utc>,
) -> Result<Option<Audited>, StoreError> {
    let mut tx = pool.begin().await?;
    let entered: bool = sqlx::query_scalar("select app.enter_online_booking($1)")
        .bind(practice)
        .fetch_one(&mut *tx)
        .await?;
    Ok(entered.then(|| Audited::entered(tx, practice, now)))
}

/// The waitlist release's entry, inside the caller's transaction on `conn` (staff, or a manage
/// link's holder, that has just cancelled `appointment`): through
/// `app.enter_waitlist_release`, which admits only a cancelled appointment of the entered
/// practice (a link holder's own one) and gives the transaction the `waitlist_release`
/// pseudo-role, keeping the caller's roles to give back. `false` when it is not admitted
/// (nothing changed). The caller gives the roles back with [`leave_waitlist_release`] before
/// anything else runs in the transaction, whatever happened in between.
pub(crate) async fn enter_waitlist_release(
    conn: &mut PgConnection,
    appointment: AppointmentId,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar("select app.enter_waitlist_release($1)")
        .bind(appointment)
        .fetch_one(conn)
        .await?)
}

/// Gives the caller's roles back after [`enter_waitlist_release`] (`app.leave_waitlist_release`;
/// nothing happens when the release was not entered).
pub(crate) async fn leave_waitlist_release(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("select app.leave_waitlist_release()")
        .execute(conn)
        .await?;
    Ok(())
}

/// The live client link a holder presented, as `app.enter_link` resolved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EnteredLink {
    /// The link.
    pub(crate) link: ClientLinkId,
    /// Its patient.
    pub(crate) patient: PatientId,
    /// What it opens (an intake request, an appointment).
    pub(crate) subject: uuid::Uuid,
    /// When it stops working.
    pub(crate) expires_at: DateTime<Utc>,
}

/// A client link holder's entry: resolves `token` through `app.enter_link` to its practice and
/// link, only when the link was made for `purpose` and is live at `now` (not expired, used or
/// revoked), and enters that practice with the `client_link` pseudo-role, no actor, and the
/// link and its patient as the transaction's own. `None` otherwise: unknown, expired, used,
/// revoked and wrong-purpose links are not told apart. Only the token's digest is sent.
pub(crate) async fn enter_link(
    pool: &PgPool,
    token: &LinkToken,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<Option<(Audited, EnteredLink)>, StoreError> {
    let mut tx = pool.begin().await?;
    let row: Option<(
        PracticeId,
        ClientLinkId,
        PatientId,
        uuid::Uuid,
        DateTime<Utc>,
    )> = sqlx::query_as(
        "select practice_id, link_id, patient_id, subject_id, expires_at
               from app.enter_link($1, $2, $3)",
    )
    .bind(token.digest().as_slice())
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(|(practice, link, patient, subject, expires_at)| {
        (
            Audited::entered(tx, practice, now),
            EnteredLink {
                link,
                patient,
                subject,
                expires_at,
            },
        )
    }))
}

/// A link holder's transaction of one kind: [`enter_link`] for `purpose`, wrapped by `wrap`
/// (which reads what the link opens from [`EnteredLink::subject`]). The one way the manage,
/// offer and return-page holders are made; `None` as for [`enter_link`].
pub(crate) async fn link_holder<T>(
    pool: &PgPool,
    token: &LinkToken,
    purpose: Purpose,
    now: DateTime<Utc>,
    wrap: impl FnOnce(Audited, EnteredLink) -> T,
) -> Result<Option<T>, StoreError> {
    Ok(enter_link(pool, token, purpose, now)
        .await?
        .map(|(inner, link)| wrap(inner, link)))
}

/// What an [`Audited`] transaction did: how many audit events it appended, and how many it
/// had appended when it last handed out an [`Opener`].
#[derive(Debug, Default, Clone, Copy)]
struct Ledger {
    appended: u64,
    opened_at: Option<u64>,
}

impl Ledger {
    /// Whether the transaction may commit: it opened nothing, or appended an audit event
    /// after it last did.
    fn may_commit(self) -> bool {
        self.opened_at.is_none_or(|at| self.appended > at)
    }
}

/// Opens sealed fields of one practice. Only an [`Audited`] transaction hands one out, and
/// doing so obliges it to append an audit event before it commits.
#[derive(Clone, Copy)]
pub(crate) struct Opener<'k> {
    keyring: &'k Keyring,
}

impl Opener<'_> {
    /// Opens one value sealed with [`crate::sealed_columns`]' `seal_field` (under any live key
    /// version of the practice) with the same context.
    pub(crate) async fn open(
        &self,
        ctx: &FieldContext<'_>,
        ct: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        self.keyring
            .decrypt_field(ctx, ct)
            .await
            .map_err(|e| crypto_error(&e))
    }

    /// [`Opener::open`] for a text value.
    pub(crate) async fn open_text(
        &self,
        ctx: &FieldContext<'_>,
        ct: &[u8],
    ) -> Result<String, StoreError> {
        String::from_utf8(self.open(ctx, ct).await?)
            .map_err(|_| StoreError::Corrupt("an encrypted text field is not UTF-8"))
    }

    /// Opens `ct` and seals it again under the active key of `keys`, same context; the
    /// plaintext is wiped and never returned.
    pub(crate) async fn reseal(
        &self,
        keys: &PracticeKeys,
        ctx: &FieldContext<'_>,
        ct: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let plain = zeroize::Zeroizing::new(self.open(ctx, ct).await?);
        crypto::encrypt_field(keys.active(), ctx, &plain).map_err(|e| crypto_error(&e))
    }
}

/// What a request may do in its practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and change: audit events are appended in the transaction itself.
    Write,
    /// Read only: the database refuses any change (the transaction is read-only), and the
    /// audit events are made durable by the group-commit writer when the read commits.
    Read,
}

/// A transaction inside one practice, with its time and its audit ledger: the shape the
/// request path ([`crate::TenantTx`]) and the owner role ([`OwnerTx`]) share. Dropping it
/// rolls back.
#[derive(Debug)]
pub(crate) struct Audited {
    tx: Transaction<'static, Postgres>,
    practice: PracticeId,
    now: DateTime<Utc>,
    ledger: Ledger,
    /// For a read: the writer, and the events it will make durable at commit.
    deferred: Option<(AuditWriter, Vec<NewEvent>)>,
}

impl Audited {
    /// Wraps a transaction that has already entered `practice` (through `app.enter`).
    pub(crate) fn entered(
        tx: Transaction<'static, Postgres>,
        practice: PracticeId,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            tx,
            practice,
            now,
            ledger: Ledger::default(),
            deferred: None,
        }
    }

    /// The same transaction as a read: its audit events go to `writer` at commit. The
    /// transaction must already be read-only (`transaction_read_only`, set by the session
    /// check).
    pub(crate) fn deferring_to(mut self, writer: AuditWriter) -> Self {
        self.deferred = Some((writer, Vec::new()));
        self
    }

    /// Whether this is a read (audit events made durable by the group-commit writer).
    pub(crate) fn is_read(&self) -> bool {
        self.deferred.is_some()
    }

    /// Begins a transaction on `pool` and enters `practice`; `now` stamps its audit events.
    pub(crate) async fn begin(
        pool: &PgPool,
        practice: PracticeId,
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        Ok(Self::entered(
            begin_in(pool, practice).await?,
            practice,
            now,
        ))
    }

    /// The practice.
    pub(crate) fn practice(&self) -> PracticeId {
        self.practice
    }

    /// The practice's name (what a client page shows; no PHI).
    pub(crate) async fn practice_name(&mut self) -> Result<String, StoreError> {
        let practice = self.practice;
        Ok(
            sqlx::query_scalar("select name from practice where practice_id = $1")
                .bind(practice)
                .fetch_one(self.conn())
                .await?,
        )
    }

    /// The transaction's time.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The connection.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// An event of this transaction: its time, `action`, success.
    pub(crate) fn event(&self, action: AuditAction) -> NewEvent {
        NewEvent::new(self.now, action)
    }

    /// Appends `events` to the practice's log in this transaction ([`crate::append`]); for a
    /// read, validates and resolves them here and keeps them for the writer (they are
    /// durable when [`Audited::commit`] returns).
    pub(crate) async fn append(&mut self, events: &[NewEvent]) -> Result<u64, StoreError> {
        let n = if let Some((_, pending)) = &mut self.deferred {
            let resolved = resolve(&mut self.tx, self.practice, events).await?;
            let n = resolved.len() as u64;
            pending.extend(resolved);
            n
        } else {
            append(&mut self.tx, self.practice, events).await?
        };
        self.ledger.appended += n;
        Ok(n)
    }

    /// The opener for sealed fields of this practice: from now on the transaction commits only
    /// after it has appended an audit event.
    pub(crate) fn opener<'k>(&mut self, keyring: &'k Keyring) -> Opener<'k> {
        self.ledger.opened_at = Some(self.ledger.appended);
        Opener { keyring }
    }

    /// Commits, unless sealed fields were opened since the last audit event appended
    /// ([`StoreError::AuditFailed`]; the transaction rolls back). A read returns only once
    /// its events are durable, and fails if they cannot be made so (the read-only
    /// transaction's commit and the writer's batch run side by side).
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        if !self.ledger.may_commit() {
            return Err(StoreError::AuditFailed(
                "the transaction opened sealed patient data and appended no audit event".into(),
            ));
        }
        match self.deferred {
            None => self.tx.commit().await?,
            Some((writer, pending)) => {
                let (read, audit) =
                    tokio::join!(self.tx.commit(), writer.write(self.practice, pending));
                audit?;
                read?;
            }
        }
        Ok(())
    }

    /// Rolls back.
    pub(crate) async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

/// A transaction of the owner role inside one practice — the administrative commands, jobs
/// and seeding — with the same shape as [`crate::TenantTx`]: entered once at the start,
/// stamped by the owner store's clock (or the caller's time), audited through the one append
/// (without an actor), and unable to commit after decrypting patient data without an audit
/// event. Dropping it rolls back.
#[derive(Debug)]
pub struct OwnerTx {
    inner: Audited,
}

impl OwnerStore {
    /// An owner transaction in `practice` whose events are stamped `now` (the caller's
    /// injected time).
    pub(crate) async fn begin_at(
        &self,
        practice: PracticeId,
        now: DateTime<Utc>,
    ) -> Result<OwnerTx, StoreError> {
        Ok(OwnerTx {
            inner: Audited::begin(&self.pool, practice, now).await?,
        })
    }

    /// An owner transaction in `practice`, stamped by this store's clock.
    pub(crate) async fn begin_in(&self, practice: PracticeId) -> Result<OwnerTx, StoreError> {
        self.begin_at(practice, self.clock.now()).await
    }
}

impl OwnerTx {
    /// The practice.
    #[must_use]
    pub fn practice(&self) -> PracticeId {
        self.inner.practice()
    }

    /// The transaction's time.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    /// The connection, for queries in this crate.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        self.inner.conn()
    }

    /// An event of this transaction (its time, `action`, success, no actor), to fill in and
    /// pass to [`OwnerTx::append`].
    pub(crate) fn event(&self, action: AuditAction) -> NewEvent {
        self.inner.event(action)
    }

    /// Appends one administrative event: `action` on `object`, about `patient`, with
    /// `details` (ids, counts and flags only).
    pub(crate) async fn audit(
        &mut self,
        action: AuditAction,
        object: Option<AuditObject>,
        patient: Option<PatientId>,
        details: Option<serde_json::Value>,
    ) -> Result<(), StoreError> {
        let mut e = self.event(action);
        e.object = object;
        e.patient = patient;
        e.details = details;
        self.append(&[e]).await.map(|_| ())
    }

    /// Appends `events` in one statement.
    pub(crate) async fn append(&mut self, events: &[NewEvent]) -> Result<u64, StoreError> {
        self.inner.append(events).await
    }

    /// The opener for sealed fields (see [`Audited::opener`]).
    pub(crate) fn opener<'k>(&mut self, keyring: &'k Keyring) -> Opener<'k> {
        self.inner.opener(keyring)
    }

    /// An opener for re-encryption in place, which does not oblige this transaction to audit:
    /// each value opened goes straight back into a ciphertext of the same row and is never
    /// returned. The re-encryption pass is audited per practice (`key.reencrypt`,
    /// `key.encrypt_existing`).
    #[expect(
        clippy::unused_self,
        reason = "only a transaction of the owner role hands one out"
    )]
    pub(crate) fn opener_unaudited_for_reseal<'k>(&mut self, keyring: &'k Keyring) -> Opener<'k> {
        Opener { keyring }
    }

    /// Commits (refused when sealed fields were opened and no audit event followed).
    pub async fn commit(self) -> Result<(), StoreError> {
        self.inner.commit().await
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.inner.rollback().await
    }
}

#[cfg(test)]
mod tests {
    use super::Ledger;

    /// Every Rust source file under `dir`, with its path.
    fn sources(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }

    // issue 15.1 — the opener is the only way the store decrypts a field: no other source
    // file calls the keyring's decryption, so every opening goes through a transaction that
    // must then audit.
    #[test]
    fn only_the_opener_decrypts_fields() {
        let mut files = Vec::new();
        sources(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        assert!(files.len() > 20, "the store's sources were not found");
        let needle = concat!("decrypt_", "field(");
        for (path, src) in files {
            let calls = src
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .filter(|l| l.contains(needle))
                .count();
            let expected = usize::from(path.ends_with("src/entry.rs"));
            assert_eq!(calls, expected, "{}", path.display());
        }
    }

    // issue 15.1 — the commit-time rule: nothing opened, or an audit event after the last
    // opening.
    #[test]
    fn a_transaction_that_opened_sealed_data_commits_only_after_an_audit_event() {
        let cases = [
            (Ledger::default(), true),
            (
                Ledger {
                    appended: 2,
                    opened_at: None,
                },
                true,
            ),
            (
                Ledger {
                    appended: 0,
                    opened_at: Some(0),
                },
                false,
            ),
            (
                Ledger {
                    appended: 1,
                    opened_at: Some(0),
                },
                true,
            ),
            (
                Ledger {
                    appended: 1,
                    opened_at: Some(1),
                },
                false,
            ),
        ];
        for (ledger, ok) in cases {
            assert_eq!(ledger.may_commit(), ok, "{ledger:?}");
        }
    }
}
