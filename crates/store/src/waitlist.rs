//! The booking waitlist: clients waiting for a time of a service; a cancelled appointment's
//! freed slot is offered to several of them at once, and the first to accept books it.
//!
//! # Guarantees
//! - **Staff keep it.** Reception, owners and admins add, list and remove entries ([`add`],
//!   [`list`], [`remove`]; RLS refuses other roles). An entry is ids, a service, an optional
//!   clinician, a window of start times and a state: nothing to decrypt. Each is audited.
//! - **Clients join by themselves.** On the public booking page ([`PublicBooking::join_waitlist`],
//!   the `online_booking` entry) a client joins for a service and a range of days: recognised
//!   by mobile number and date of birth or recorded as new, exactly as a booking there. The
//!   entry is marked self-joined (and new-client), and its `waitlist_joined` confirmation
//!   (email and SMS, an opaque link only) carries a `waitlist` link whose holder
//!   ([`WaitlistHolder`]) sees the practice, the service and the days and may leave. A new
//!   client's accepted offer is a request for reception when the practice approves new
//!   clients first ([`AcceptOutcome::Requested`]).
//! - **Offered with the cancellation.** [`offer_freed_slot`] runs in the cancelling
//!   transaction (staff through the API or the schedule page, the client through a manage
//!   link): when the slot is still bookable for a service under the practice's rules
//!   ([`domain::booking::slot_is_free`]), it offers it to the oldest matching waiting entries,
//!   at most the practice's `waitlist_offers` (default 3): each offer gets its own `offer`
//!   client link (token hashed, expiring at the earlier of 12 hours and the slot's start less
//!   the minimum notice) and its `waitlist_offer` messages queued in the outbox. It reads the
//!   entries and their patients' contacts only under the `waitlist_release` pseudo-role
//!   (`crate::entry::enter_waitlist_release`), given back right after. Each offer appends
//!   `waitlist.offer` (ids and a count, never a contact or a token).
//! - **First to accept books it.** An offer's holder ([`OfferHolder`], entered through
//!   `app.enter_link` with purpose `offer`) sees the practice, the time and the service only.
//!   Accepting claims the slot through the same claim as online booking and reschedule
//!   (`crate::booking::claim_slot`: a lock per clinician, the busy times read again), so one
//!   slot is never booked twice; the loser's offer is closed as taken. Either way the link is
//!   used up and `waitlist.accept` is appended (its result in the details). A booked offer
//!   gets its online booking, its confirmation and a manage link, as a booking made online.
//!   An offer of a service paid for at booking (deposit, prepayment, card on file) is never
//!   booked without the payment: it is *held* ([`AcceptOutcome::Held`]) with the same
//!   `booking_payment` hold and Checkout Session as a booking on the public page, and booked
//!   (its confirmation queued) only when the processor's webhook settles it.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use crypto::Keyring;
use domain::booking::{PaymentPolicy, Slot, slot_is_free};
use domain::{
    AppointmentId, AuditAction, AuditObject, BookingId, PatientId, PracticeId, RequestId,
    ServiceId, UserId, WaitlistEntryId, WaitlistOfferId,
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::append::NewEvent;
use crate::booking::{
    BookedAppointment, BookingRefused, ClientDetails, NewClients, PublicBooking, Service,
    claim_slot, clinician_week, practice_time_zone, query, queue_confirmation, read_services,
    read_settings,
};
use crate::entry::{Audited, EnteredLink, Opener};
use crate::outbox::{Contacts, QueueTx};
use crate::{StoreError, TenantTx};

/// An offer works for at most this long (and never past the slot's start less the minimum
/// notice).
pub const OFFER_TTL_HOURS: i64 = 12;

/// A window of acceptable start times spans at most this many days.
pub const MAX_WINDOW_DAYS: i64 = 366;

/// The states of an entry.
pub const STATES: [&str; 3] = ["waiting", "booked", "removed"];

/// A waitlist entry as staff see it (ids, service, window, state; no contact details).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Entry {
    /// Id.
    pub entry_id: WaitlistEntryId,
    /// The client.
    pub patient_id: PatientId,
    /// The service wanted.
    pub service_id: ServiceId,
    /// The preferred clinician (none: any who offers the service).
    pub clinician_id: Option<UserId>,
    /// The earliest acceptable start.
    pub earliest: DateTime<Utc>,
    /// The latest acceptable start.
    pub latest: DateTime<Utc>,
    /// `waiting`, `booked` or `removed`.
    pub state: String,
    /// The appointment an accepted offer booked.
    pub booked_appointment_id: Option<AppointmentId>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// How many offers it has had.
    pub offers: i64,
    /// The client joined on the public booking page (no member added it).
    pub self_joined: bool,
    /// A self-joined client the page did not recognise (a new record): under the practice's
    /// approved-only option, an offer they accept becomes a request for reception.
    pub new_client: bool,
}

/// A new entry (validated by [`add`]).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    /// The client (a patient of the practice).
    pub patient_id: PatientId,
    /// The service wanted (one of the practice's active services).
    pub service_id: ServiceId,
    /// The preferred clinician (one who offers the service), if any.
    #[serde(default)]
    pub clinician_id: Option<UserId>,
    /// The earliest acceptable start.
    pub earliest: DateTime<Utc>,
    /// The latest acceptable start (after `earliest`, in the future, at most 366 days later).
    pub latest: DateTime<Utc>,
}

const ENTRY_COLUMNS: &str = "e.entry_id, e.patient_id, e.service_id, e.clinician_id, e.earliest,
    e.latest, e.state, e.booked_appointment_id, e.created_at,
    (select count(*) from waitlist_offer o
      where o.practice_id = e.practice_id and o.entry_id = e.entry_id) as offers,
    e.self_joined, e.new_client";

async fn entries(
    tx: &mut TenantTx,
    entry: Option<WaitlistEntryId>,
    state: Option<&str>,
) -> Result<Vec<Entry>, StoreError> {
    let practice = tx.practice();
    Ok(sqlx::query_as(&format!(
        "select {ENTRY_COLUMNS} from waitlist_entry e
          where e.practice_id = $1 and ($2::uuid is null or e.entry_id = $2)
            and ($3::text is null or e.state = $3)
          order by e.created_at, e.entry_id limit 500"
    ))
    .bind(practice)
    .bind(entry)
    .bind(state)
    .fetch_all(tx.conn())
    .await?)
}

/// Puts a client on the waitlist (reception, owners, admins); audited `waitlist.add`.
///
/// # Errors
/// [`StoreError::Invalid`] naming the field: an unknown patient or service, a clinician who
/// does not offer the service, a window that is empty, past or longer than
/// [`MAX_WINDOW_DAYS`].
pub async fn add(tx: &mut TenantTx, new: &NewEntry) -> Result<Entry, StoreError> {
    let now = tx.now();
    if new.latest <= new.earliest {
        return Err(StoreError::Invalid("latest: must be after earliest".into()));
    }
    if new.latest <= now {
        return Err(StoreError::Invalid("latest: must be in the future".into()));
    }
    if new.latest - new.earliest > Duration::days(MAX_WINDOW_DAYS) {
        return Err(StoreError::Invalid(format!(
            "latest: the window spans at most {MAX_WINDOW_DAYS} days"
        )));
    }
    let practice = tx.practice();
    let service = read_services(tx.conn(), practice, true)
        .await?
        .into_iter()
        .find(|s| s.service_id == new.service_id)
        .ok_or_else(|| StoreError::Invalid("service_id: no such active service".into()))?;
    if let Some(c) = new.clinician_id
        && !service.clinicians.contains(&c)
    {
        return Err(StoreError::Invalid(
            "clinician_id: this clinician does not offer the service".into(),
        ));
    }
    let id = WaitlistEntryId::new();
    let inserted = sqlx::query(
        "insert into waitlist_entry (practice_id, entry_id, patient_id, service_id, clinician_id,
                earliest, latest, state, created_by, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, 'waiting', $8, $9, $9)",
    )
    .bind(practice)
    .bind(id)
    .bind(new.patient_id)
    .bind(new.service_id)
    .bind(new.clinician_id)
    .bind(new.earliest)
    .bind(new.latest)
    .bind(tx.actor())
    .bind(now)
    .execute(tx.conn())
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) => {
            let e = StoreError::from(e);
            return Err(match e {
                StoreError::Conflict(c) if c == "waitlist_entry_patient_fkey" => {
                    StoreError::Invalid("patient_id: no such patient".into())
                }
                other => other,
            });
        }
    }
    tx.audit(
        AuditAction::WaitlistAdd,
        Some(new.patient_id),
        Some(AuditObject::waitlist_entry(id)),
    )
    .await?;
    entries(tx, Some(id), None)
        .await?
        .into_iter()
        .next()
        .ok_or(StoreError::Corrupt("waitlist_entry"))
}

/// The waitlist, oldest first, optionally of one state (at most 500); audited
/// `waitlist.list`.
pub async fn list(tx: &mut TenantTx, state: Option<&str>) -> Result<Vec<Entry>, StoreError> {
    if state.is_some_and(|s| !STATES.contains(&s)) {
        return Err(StoreError::Invalid(
            "state: must be one of waiting, booked, removed".into(),
        ));
    }
    let rows = entries(tx, None, state).await?;
    let practice = tx.practice();
    tx.audit(
        AuditAction::WaitlistList,
        None,
        Some(AuditObject::practice(practice)),
    )
    .await?;
    Ok(rows)
}

/// Takes a waiting entry off the waitlist (`removed`; its open offers stay as they are until
/// they expire or are taken); audited `waitlist.remove`. `None` when there is no such entry.
///
/// # Errors
/// [`StoreError::Conflict`] (`waitlist_not_waiting`) when it is not waiting.
pub async fn remove(tx: &mut TenantTx, id: WaitlistEntryId) -> Result<Option<Entry>, StoreError> {
    let practice = tx.practice();
    let now = tx.now();
    let cur: Option<(String, PatientId)> = sqlx::query_as(
        "select state, patient_id from waitlist_entry
          where practice_id = $1 and entry_id = $2 for update",
    )
    .bind(practice)
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let Some((state, patient)) = cur else {
        return Ok(None);
    };
    if state != "waiting" {
        return Err(StoreError::Conflict("waitlist_not_waiting".into()));
    }
    sqlx::query(
        "update waitlist_entry set state = 'removed', updated_at = $3
          where practice_id = $1 and entry_id = $2",
    )
    .bind(practice)
    .bind(id)
    .bind(now)
    .execute(tx.conn())
    .await?;
    tx.audit(
        AuditAction::WaitlistRemove,
        Some(patient),
        Some(AuditObject::waitlist_entry(id)),
    )
    .await?;
    Ok(entries(tx, Some(id), None).await?.into_iter().next())
}

// ---------------------------------------------------------------------------------------
// The release: a cancellation offers its freed slot.
// ---------------------------------------------------------------------------------------

/// A transaction that can cancel an appointment and so release its slot: the staff's
/// [`TenantTx`] and a manage link holder's [`crate::booking::ManageBooking`].
pub(crate) trait ReleaseTx: QueueTx {
    /// The opener for sealed fields (the transaction must then audit).
    fn opener_for<'k>(&mut self, keyring: &'k Keyring) -> Opener<'k>;

    /// Appends `waitlist.offer` for `offer` made to `patient`'s entry.
    async fn audit_offer(
        &mut self,
        offer: WaitlistOfferId,
        patient: PatientId,
        details: serde_json::Value,
    ) -> Result<(), StoreError>;
}

impl ReleaseTx for TenantTx {
    fn opener_for<'k>(&mut self, keyring: &'k Keyring) -> Opener<'k> {
        self.opener(keyring)
    }

    async fn audit_offer(
        &mut self,
        offer: WaitlistOfferId,
        patient: PatientId,
        details: serde_json::Value,
    ) -> Result<(), StoreError> {
        self.audit_details(
            AuditAction::WaitlistOffer,
            Some(patient),
            Some(AuditObject::waitlist_offer(offer)),
            Some(details),
        )
        .await
    }
}

/// The owner role's transaction (the payments job releasing a held booking nobody paid for):
/// its policies already reach the practice's rows, so it offers without the pseudo-role.
impl ReleaseTx for crate::OwnerTx {
    fn opener_for<'k>(&mut self, keyring: &'k Keyring) -> Opener<'k> {
        self.opener(keyring)
    }

    async fn audit_offer(
        &mut self,
        offer: WaitlistOfferId,
        patient: PatientId,
        details: serde_json::Value,
    ) -> Result<(), StoreError> {
        self.audit(
            AuditAction::WaitlistOffer,
            Some(AuditObject::waitlist_offer(offer)),
            Some(patient),
            Some(details),
        )
        .await
    }
}

/// The cancelled appointment whose slot is freed.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Freed {
    patient_id: PatientId,
    clinician_id: UserId,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    status: String,
}

/// A waiting entry the freed slot fits (named as the columns it is read from).
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
#[expect(
    clippy::struct_field_names,
    reason = "the fields are the columns of the same names"
)]
struct Candidate {
    entry_id: WaitlistEntryId,
    patient_id: PatientId,
    service_id: ServiceId,
}

/// The services of the practice the freed slot of `clinician` at `[starts_at, ends_at)` can
/// be booked as under the practice's rules now (the same check as the public page's).
async fn fitting_services(
    conn: &mut PgConnection,
    practice: PracticeId,
    freed: &Freed,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Vec<Service>, StoreError> {
    let settings = read_settings(&mut *conn, practice).await?;
    let length = freed.ends_at - freed.starts_at;
    let mut out = Vec::new();
    for mut service in read_services(&mut *conn, practice, true).await? {
        if !service.clinicians.contains(&freed.clinician_id)
            || Duration::minutes(i64::from(service.duration_minutes)) > length
        {
            continue;
        }
        service.clinicians = vec![freed.clinician_id];
        let today = now.with_timezone(&tz).date_naive();
        let q = query(&settings, &service, tz, now, today, 1);
        let week = clinician_week(
            &mut *conn,
            practice,
            freed.clinician_id,
            freed.starts_at - Duration::days(1),
            freed.starts_at + Duration::days(1),
        )
        .await?;
        if slot_is_free(&q, &week, freed.starts_at) {
            out.push(service);
        }
    }
    Ok(out)
}

/// Offers the slot `appointment` freed (it was cancelled in this transaction) to the oldest
/// matching waiting entries, one per client: the entry's service can be booked then with that clinician under
/// the practice's rules, its preferred clinician (if any) is that one, the start is inside its
/// window, and it is not the cancelling client's. At most the practice's `waitlist_offers`.
/// Each offer: an `offer` link for the entry's patient, the offer row, the `waitlist_offer`
/// message by email and SMS to the patient's contacts on record, and `waitlist.offer`.
/// Returns how many offers were made (0 when the slot has passed, is too soon to offer, or
/// nobody matches). Runs in the caller's transaction; gives its roles back before returning.
pub(crate) async fn offer_freed_slot(
    tx: &mut impl ReleaseTx,
    keyring: &Keyring,
    appointment: AppointmentId,
    actor: Option<UserId>,
) -> Result<u32, StoreError> {
    let (freed, settings, tz, services, now, practice) = {
        let (conn, practice, now) = crate::outbox::tx_parts(tx);
        let freed: Option<Freed> = sqlx::query_as(
            "select patient_id, clinician_id, starts_at, ends_at, status from appointment
              where practice_id = $1 and appointment_id = $2",
        )
        .bind(practice)
        .bind(appointment)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(freed) = freed else {
            return Ok(0);
        };
        if freed.status != "cancelled" || freed.starts_at <= now {
            return Ok(0);
        }
        let settings = read_settings(&mut *conn, practice).await?;
        let tz = practice_time_zone(&mut *conn, practice).await?;
        let services = fitting_services(&mut *conn, practice, &freed, tz, now).await?;
        (freed, settings, tz, services, now, practice)
    };
    let expires_at = (now + Duration::hours(OFFER_TTL_HOURS))
        .min(freed.starts_at - Duration::minutes(i64::from(settings.min_notice_minutes)));
    if services.is_empty() || expires_at <= now {
        return Ok(0);
    }
    let service_ids: Vec<uuid::Uuid> = services.iter().map(|s| s.service_id.as_uuid()).collect();
    // The owner role (a held booking released by the payments job) reads the entries under
    // its own policies; a member or a link holder enters the release pseudo-role.
    let owner = crate::outbox::is_owner(&*tx);
    let candidates: Vec<Candidate> = {
        let (conn, _, _) = crate::outbox::tx_parts(tx);
        if !owner && !crate::entry::enter_waitlist_release(&mut *conn, appointment).await? {
            return Ok(0);
        }
        // One offer per client (their oldest matching entry), however often they joined.
        sqlx::query_as(
            "select c.entry_id, c.patient_id, c.service_id from (
                select distinct on (e.patient_id) e.entry_id, e.patient_id, e.service_id,
                       e.created_at
                  from waitlist_entry e
                  join patient p on p.practice_id = e.practice_id and p.patient_id = e.patient_id
                 where e.practice_id = $1 and e.state = 'waiting'
                   and e.service_id = any($2)
                   and (e.clinician_id is null or e.clinician_id = $3)
                   and e.earliest <= $4 and e.latest >= $4
                   and e.patient_id <> $5
                 order by e.patient_id, e.created_at, e.entry_id) c
              order by c.created_at, c.entry_id
              limit $6",
        )
        .bind(practice)
        .bind(&service_ids)
        .bind(freed.clinician_id)
        .bind(freed.starts_at)
        .bind(freed.patient_id)
        .bind(i64::from(settings.waitlist_offers))
        .fetch_all(&mut *conn)
        .await?
    };
    let mut made = 0u32;
    let mut result = Ok(());
    for c in candidates {
        let Some(service) = services.iter().find(|s| s.service_id == c.service_id) else {
            continue;
        };
        if let Err(e) = offer_one(
            tx,
            keyring,
            appointment,
            &freed,
            service,
            &c,
            tz,
            actor,
            expires_at,
        )
        .await
        {
            result = Err(e);
            break;
        }
        made += 1;
    }
    if !owner {
        let (conn, _, _) = crate::outbox::tx_parts(tx);
        crate::entry::leave_waitlist_release(conn).await?;
    }
    result?;
    Ok(made)
}

/// One offer of the freed slot to one entry (see [`offer_freed_slot`]).
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one offer, called by offer_freed_slot only"
)]
async fn offer_one(
    tx: &mut impl ReleaseTx,
    keyring: &Keyring,
    appointment: AppointmentId,
    freed: &Freed,
    service: &Service,
    c: &Candidate,
    tz: Tz,
    actor: Option<UserId>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    use crate::outbox::{Cause, Channel, NewMessage, Recipient, Slots, enqueue};
    let offer = WaitlistOfferId::new();
    let ends_at = freed.starts_at + Duration::minutes(i64::from(service.duration_minutes));
    let opener = tx.opener_for(keyring);
    let (link, contacts) = {
        let (conn, practice, now) = crate::outbox::tx_parts(tx);
        let patient =
            crate::patients::read_opened(&mut *conn, &opener, practice, c.patient_id).await?;
        let link = crate::links::insert(
            &mut *conn,
            practice,
            crate::links::Purpose::Offer,
            c.patient_id,
            offer.as_uuid(),
            actor,
            now,
            expires_at,
        )
        .await?;
        sqlx::query(
            "insert into waitlist_offer (practice_id, offer_id, entry_id, patient_id, service_id,
                    clinician_id, freed_appointment_id, starts_at, ends_at, link_id, state,
                    created_at, expires_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'open', $11, $12)",
        )
        .bind(practice)
        .bind(offer)
        .bind(c.entry_id)
        .bind(c.patient_id)
        .bind(service.service_id)
        .bind(freed.clinician_id)
        .bind(appointment)
        .bind(freed.starts_at)
        .bind(ends_at)
        .bind(link.link_id)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *conn)
        .await?;
        let contacts: Vec<(Channel, String)> = patient
            .map(|p| {
                let contacts = Contacts {
                    phone: p.phone.as_deref(),
                    email: p.email.as_deref(),
                };
                [Channel::Email, Channel::Sms]
                    .into_iter()
                    .filter_map(|ch| crate::outbox::address(ch, contacts).map(|a| (ch, a)))
                    .collect()
            })
            .unwrap_or_default();
        (link, contacts)
    };
    let slots = Slots {
        time: Some(freed.starts_at.with_timezone(&tz).naive_local()),
        link_token: Some(link.token.expose_for_sealing().to_owned()),
        ..Slots::default()
    };
    let mut queued = 0u32;
    for (channel, to) in contacts {
        let sent = enqueue(
            tx,
            keyring,
            &NewMessage {
                patient: Some(c.patient_id),
                template: "waitlist_offer",
                channel,
                cause: Cause::Waitlist,
                cause_id: offer.as_uuid(),
                recipient: Recipient(to),
                slots: slots.clone(),
                time_zone: None,
                not_before: None,
            },
        )
        .await?;
        queued += u32::from(sent);
    }
    tx.audit_offer(
        offer,
        c.patient_id,
        serde_json::json!({ "messages": queued }),
    )
    .await
}

// ---------------------------------------------------------------------------------------
// The offer link.
// ---------------------------------------------------------------------------------------

/// An offer link holder's transaction: entered through `app.enter_link` with purpose `offer`
/// (the `client_link` pseudo-role, no actor). Dropping it rolls back.
#[derive(Debug)]
pub struct OfferHolder {
    inner: Audited,
    link: EnteredLink,
    offer: WaitlistOfferId,
    request: RequestId,
}

/// An offer as its holder sees it: the practice, the time and the service (nothing else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferView {
    /// The practice's name.
    pub practice_name: String,
    /// The practice's time zone.
    pub tz: Tz,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End.
    pub ends_at: DateTime<Utc>,
    /// The service's catalogue name.
    pub service: String,
    /// Whether it can still be accepted: open and the time still free.
    pub open: bool,
}

/// What accepting an offer did.
#[derive(Debug, Clone)]
pub enum AcceptOutcome {
    /// The slot is booked for the holder.
    Booked(Slot),
    /// The service is paid for at booking (deposit, prepayment or card on file): the slot is
    /// *held* for the holder as a booking on the public page is, and booked once the payment
    /// settles. The caller must create the hold's Checkout Session before it commits
    /// (`server::payments::commit_held`), and roll back when it cannot.
    Held(Box<HeldOffer>),
    /// The holder joined the waitlist as a new client and the practice approves new clients'
    /// bookings first: the slot is claimed as a request that reception approves or declines
    /// (as a new client's booking on the public page).
    Requested(Slot),
    /// Someone else was first (or the time is no longer bookable): the offer is closed.
    Taken,
}

/// An accepted offer of a paid service, waiting for its payment.
#[derive(Debug, Clone)]
pub struct HeldOffer {
    /// The slot held.
    pub slot: Slot,
    /// What is due, until when, and the return page's token.
    pub hold: crate::payments::Hold,
    /// The holder's own name, phone and email from the chart: what the payment request's
    /// scanner must not let through.
    pub client: outbound::KnownClient,
}

/// The offer row the holder reads.
#[derive(Debug, Clone, sqlx::FromRow)]
struct OfferRow {
    entry_id: WaitlistEntryId,
    service_id: ServiceId,
    clinician_id: UserId,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    state: String,
}

impl crate::Store {
    /// Enters the practice of an offer link's `token`: `None` when the link is unknown,
    /// expired, used, revoked or of another purpose (the page answers all the same).
    pub async fn offer_link(
        &self,
        token: &outbound::LinkToken,
        request: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<OfferHolder>, StoreError> {
        crate::entry::link_holder(
            &self.pool,
            token,
            crate::links::Purpose::Offer,
            now,
            |inner, link| OfferHolder {
                inner,
                offer: WaitlistOfferId::from_uuid(link.subject),
                link,
                request,
            },
        )
        .await
    }
}

impl OfferHolder {
    /// The connection, practice and time, for queueing messages in this transaction.
    pub(crate) fn queue_parts(&mut self) -> (&mut PgConnection, PracticeId, DateTime<Utc>) {
        let (p, now) = (self.inner.practice(), self.inner.now());
        (self.inner.conn(), p, now)
    }

    /// The request time.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    async fn row(&mut self, lock: bool) -> Result<Option<OfferRow>, StoreError> {
        let practice = self.inner.practice();
        let sql = if lock {
            "select entry_id, service_id, clinician_id, starts_at, ends_at, state from waitlist_offer
              where practice_id = $1 and offer_id = $2 for update"
        } else {
            "select entry_id, service_id, clinician_id, starts_at, ends_at, state from waitlist_offer
              where practice_id = $1 and offer_id = $2"
        };
        Ok(sqlx::query_as(sql)
            .bind(practice)
            .bind(self.offer)
            .fetch_optional(self.inner.conn())
            .await?)
    }

    /// The offered service, held to the offered clinician only.
    async fn service(&mut self, row: &OfferRow) -> Result<Option<Service>, StoreError> {
        let practice = self.inner.practice();
        Ok(read_services(self.inner.conn(), practice, false)
            .await?
            .into_iter()
            .find(|s| s.service_id == row.service_id)
            .map(|mut s| {
                s.clinicians = vec![row.clinician_id];
                s
            }))
    }

    /// The offer, its practice and service; `None` when it is gone. Reads no PHI and changes
    /// nothing.
    pub async fn offer(&mut self) -> Result<Option<OfferView>, StoreError> {
        let Some(row) = self.row(false).await? else {
            return Ok(None);
        };
        let practice = self.inner.practice();
        let now = self.now();
        let practice_name = self.inner.practice_name().await?;
        let tz = practice_time_zone(self.inner.conn(), practice).await?;
        let service = self.service(&row).await?;
        let mut open = row.state == "open" && row.starts_at > now;
        if open && let Some(s) = &service {
            let settings = read_settings(self.inner.conn(), practice).await?;
            let today: NaiveDate = now.with_timezone(&tz).date_naive();
            let q = query(&settings, s, tz, now, today, 1);
            let week = clinician_week(
                self.inner.conn(),
                practice,
                row.clinician_id,
                row.starts_at - Duration::days(1),
                row.starts_at + Duration::days(1),
            )
            .await?;
            open = slot_is_free(&q, &week, row.starts_at);
        }
        Ok(Some(OfferView {
            practice_name,
            tz,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            service: service.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
            open: open && service.is_some(),
        }))
    }

    async fn audit(&mut self, result: &str, extra: Option<NewEvent>) -> Result<(), StoreError> {
        let mut e = NewEvent::new(self.now(), AuditAction::WaitlistAccept);
        e.object = Some(AuditObject::waitlist_offer(self.offer));
        e.patient = Some(self.link.patient);
        e.request = Some(self.request);
        e.details = Some(serde_json::json!({ "result": result }));
        let mut events = vec![e];
        events.extend(extra);
        self.inner.append(&events).await.map(|_| ())
    }

    /// Closes the offer as taken and uses the link up.
    async fn close_taken(&mut self) -> Result<AcceptOutcome, StoreError> {
        let practice = self.inner.practice();
        let now = self.now();
        sqlx::query(
            "update waitlist_offer set state = 'taken', closed_at = $3
              where practice_id = $1 and offer_id = $2 and state = 'open'",
        )
        .bind(practice)
        .bind(self.offer)
        .bind(now)
        .execute(self.inner.conn())
        .await?;
        crate::links::mark_used(self.inner.conn(), practice, self.link.link, now).await?;
        self.audit("taken", None).await?;
        Ok(AcceptOutcome::Taken)
    }

    /// Accepts the offer: claims the slot through the online booking's claim (one booking
    /// per slot, whoever is first), books it for the holder's patient (appointment, online
    /// booking, the entry marked booked), queues the confirmation with a new manage link, and
    /// uses the offer link up; audited `waitlist.accept` and `booking.create`. When the slot
    /// is no longer free the offer is closed as [`AcceptOutcome::Taken`]. The caller commits.
    #[expect(
        clippy::too_many_lines,
        reason = "one transaction in order: the offer, the claim, the appointment, the booking, the confirmation, the audit"
    )]
    pub async fn accept(&mut self, keyring: &Keyring) -> Result<AcceptOutcome, StoreError> {
        let now = self.now();
        let practice = self.inner.practice();
        let Some(row) = self.row(true).await? else {
            return self.close_taken().await;
        };
        if row.state != "open" || row.starts_at <= now {
            return self.close_taken().await;
        }
        let Some(service) = self.service(&row).await? else {
            return self.close_taken().await;
        };
        let settings = read_settings(self.inner.conn(), practice).await?;
        let tz = practice_time_zone(self.inner.conn(), practice).await?;
        let Some(slot) = claim_slot(
            self.inner.conn(),
            practice,
            &settings,
            &service,
            tz,
            now,
            row.starts_at,
        )
        .await?
        else {
            return self.close_taken().await;
        };
        let patient = self.link.patient;
        // A new client who joined by themselves books under the practice's approved-only
        // option exactly as on the public page: a request for reception.
        let new_client: bool = sqlx::query_scalar(
            "select new_client from waitlist_entry where practice_id = $1 and entry_id = $2",
        )
        .bind(practice)
        .bind(row.entry_id)
        .fetch_optional(self.inner.conn())
        .await?
        .unwrap_or(false);
        let then_status = if new_client && settings.new_clients == NewClients::Approval {
            "requested"
        } else {
            "booked"
        };
        // A service paid for at booking is held until the payment settles, exactly as on the
        // public page (`crate::payments`): no confirmation until then.
        let payment_kind = crate::payments::PaymentKind::at_booking(service.payment);
        let status = if payment_kind.is_some() {
            "held"
        } else {
            then_status
        };
        let appointment = AppointmentId::new();
        sqlx::query(
            "insert into appointment (practice_id, appointment_id, patient_id, clinician_id,
                    starts_at, ends_at, status, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(practice)
        .bind(appointment)
        .bind(patient)
        .bind(slot.clinician)
        .bind(slot.starts_at)
        .bind(slot.ends_at)
        .bind(status)
        .bind(now)
        .execute(self.inner.conn())
        .await?;
        let booking = BookingId::new();
        let due_now = service.payment.due_now();
        sqlx::query(
            "insert into online_booking (practice_id, booking_id, appointment_id, service_id,
                    patient_id, client_kind, status, payment, amount_minor, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(practice)
        .bind(booking)
        .bind(appointment)
        .bind(service.service_id)
        .bind(patient)
        .bind(if new_client { "new" } else { "existing" })
        .bind(status)
        .bind(if service.payment == PaymentPolicy::None {
            "none"
        } else {
            "pending"
        })
        .bind(i32::try_from(due_now.unwrap_or(0)).unwrap_or(i32::MAX))
        .bind(now)
        .execute(self.inner.conn())
        .await?;
        let hold = match payment_kind {
            Some((kind, amount)) => Some(
                crate::payments::hold(
                    self.inner.conn(),
                    practice,
                    booking,
                    patient,
                    kind,
                    amount,
                    &settings.currency,
                    then_status,
                    now,
                )
                .await?,
            ),
            None => None,
        };
        sqlx::query(
            "update waitlist_offer set state = 'accepted', booked_appointment_id = $3, closed_at = $4
              where practice_id = $1 and offer_id = $2",
        )
        .bind(practice)
        .bind(self.offer)
        .bind(appointment)
        .bind(now)
        .execute(self.inner.conn())
        .await?;
        sqlx::query(
            "update waitlist_entry set state = 'booked', booked_appointment_id = $3, updated_at = $4
              where practice_id = $1 and entry_id = $2",
        )
        .bind(practice)
        .bind(row.entry_id)
        .bind(appointment)
        .bind(now)
        .execute(self.inner.conn())
        .await?;
        crate::links::mark_used(self.inner.conn(), practice, self.link.link, now).await?;
        let opener = self.inner.opener(keyring);
        let record =
            crate::patients::read_opened(self.inner.conn(), &opener, practice, patient).await?;
        let mut created = NewEvent::new(now, AuditAction::BookingCreate);
        created.object = Some(AuditObject::online_booking(booking));
        created.patient = Some(patient);
        created.request = Some(self.request);
        if let Some(hold) = hold {
            created.details = Some(serde_json::json!({
                "hold": hold.kind.as_str(), "payment_id": hold.payment_id,
            }));
            self.audit("held", Some(created)).await?;
            let client =
                record.map_or_else(outbound::KnownClient::default, |p| outbound::KnownClient {
                    given: p.given_name,
                    family: p.family_name,
                    phones: p.phone.into_iter().collect(),
                    emails: p.email.into_iter().collect(),
                    ..outbound::KnownClient::default()
                });
            return Ok(AcceptOutcome::Held(Box::new(HeldOffer {
                slot,
                hold,
                client,
            })));
        }
        if status == "requested" {
            self.audit("requested", Some(created)).await?;
            return Ok(AcceptOutcome::Requested(slot));
        }
        if let Some(p) = record {
            let contacts = Contacts {
                phone: p.phone.as_deref(),
                email: p.email.as_deref(),
            };
            let booked = BookedAppointment {
                appointment_id: appointment,
                patient_id: patient,
                starts_at: slot.starts_at,
                ends_at: slot.ends_at,
            };
            queue_confirmation(self, keyring, booking, &booked, tz, contacts).await?;
        }
        self.audit("booked", Some(created)).await?;
        Ok(AcceptOutcome::Booked(slot))
    }

    /// The practice.
    #[must_use]
    pub fn practice(&self) -> PracticeId {
        self.inner.practice()
    }

    /// The practice's name (for the payment request's scanner).
    pub async fn practice_name(&mut self) -> Result<String, StoreError> {
        self.inner.practice_name().await
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.inner.commit().await
    }
}

/// A booking made by accepting an offer did not happen after all: its hold was released
/// unpaid (the payments job or the processor's webhook, as the owner role) or reception
/// declined its request. In the caller's transaction, the entry it had booked with
/// `appointment` is `waiting` again, so later freed slots are offered to it. Nothing happens
/// when no entry was booked with that appointment (or the caller's role may not change
/// entries).
pub(crate) async fn unbook_released(
    conn: &mut PgConnection,
    practice: PracticeId,
    appointment: AppointmentId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "update waitlist_entry set state = 'waiting', booked_appointment_id = null, updated_at = $3
          where practice_id = $1 and booked_appointment_id = $2 and state = 'booked'",
    )
    .bind(practice)
    .bind(appointment)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Staff cancelled `appointment` in `tx` (the API's update, the schedule page): offers its
/// freed slot to the waitlist in the same transaction ([`offer_freed_slot`]). Returns how many
/// offers were made.
pub async fn offer_cancelled_slot(
    tx: &mut TenantTx,
    keyring: &Keyring,
    appointment: AppointmentId,
) -> Result<u32, StoreError> {
    let actor = tx.actor();
    offer_freed_slot(tx, keyring, appointment, Some(actor)).await
}

/// The practice's time zone (its `time_zone` setting; UTC when unset or unknown), for the
/// waitlist screen's windows.
pub async fn time_zone(tx: &mut TenantTx) -> Result<Tz, StoreError> {
    let practice = tx.practice();
    practice_time_zone(tx.conn(), practice).await
}

// ---------------------------------------------------------------------------------------
// Joining from the public booking page, and the link to leave.
// ---------------------------------------------------------------------------------------

/// What a client asks for when they join the waitlist on the public page.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The service wanted (one the practice offers online).
    pub service_id: ServiceId,
    /// The first day they can come (the practice's local date: today or later).
    pub first_day: NaiveDate,
    /// The last day they can come (on or after `first_day`, no further ahead than the
    /// practice books online).
    pub last_day: NaiveDate,
    /// Who they are: as for a booking (an existing client is recognised by mobile number and
    /// date of birth).
    pub client: ClientDetails,
}

/// A client put on the waitlist by the public page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The entry.
    pub entry_id: WaitlistEntryId,
    /// The client's record (new or matched).
    pub patient_id: PatientId,
    /// Whether the client was recognised.
    pub existing: bool,
    /// The earliest start the entry accepts (start of the first day, practice time).
    pub earliest: DateTime<Utc>,
    /// The latest (end of the last day).
    pub latest: DateTime<Utc>,
}

/// The start of local day `day` in `tz`, in UTC (`None` for a day that does not exist there).
fn day_start(tz: Tz, day: NaiveDate) -> Option<DateTime<Utc>> {
    use chrono::TimeZone as _;
    tz.from_local_datetime(&day.and_time(chrono::NaiveTime::MIN))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// Queues the `waitlist_joined` confirmation of `entry` by email and SMS to `contacts`, each
/// carrying the entry's `waitlist` link `token` (sealed in the message); how many were queued.
async fn queue_joined(
    tx: &mut impl crate::outbox::QueueTx,
    keyring: &Keyring,
    patient: PatientId,
    entry: WaitlistEntryId,
    token: &outbound::LinkToken,
    contacts: Contacts<'_>,
) -> Result<u32, StoreError> {
    use crate::outbox::{Cause, Channel, NewMessage, Recipient, Slots, enqueue};
    let slots = Slots {
        link_token: Some(token.expose_for_sealing().to_owned()),
        ..Slots::default()
    };
    let mut queued = 0u32;
    for channel in [Channel::Email, Channel::Sms] {
        let Some(to) = crate::outbox::address(channel, contacts) else {
            continue;
        };
        let sent = enqueue(
            tx,
            keyring,
            &NewMessage {
                patient: Some(patient),
                template: "waitlist_joined",
                channel,
                cause: Cause::Waitlist,
                cause_id: entry.as_uuid(),
                recipient: Recipient(to),
                slots: slots.clone(),
                time_zone: None,
                not_before: None,
            },
        )
        .await?;
        queued += u32::from(sent);
    }
    Ok(queued)
}

impl PublicBooking {
    /// Puts the client on the waitlist for `join.service_id` from the start of
    /// `join.first_day` to the end of `join.last_day` in the practice's time zone `tz`:
    /// recognises an existing client by mobile number and date of birth, or records a new one
    /// (as [`PublicBooking::book`] does); inserts a `waiting` entry marked self-joined (and
    /// `new_client` when not recognised, so the practice's approved-only option applies when
    /// they accept an offer), makes its `waitlist` link (live until the window ends) and
    /// queues the `waitlist_joined` confirmation carrying it by email and SMS to the contacts
    /// given. Appends `waitlist.add` (ids; `self_joined` in the details). The caller commits.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] naming the field (`client.…`, `waitlist.first_day`,
    /// `waitlist.last_day`); nothing is written then.
    pub async fn join_waitlist(
        &mut self,
        keyring: &Keyring,
        tz: Tz,
        join: &JoinRequest,
    ) -> Result<Result<Joined, BookingRefused>, StoreError> {
        let now = self.now();
        let today = now.with_timezone(&tz).date_naive();
        let new_patient = join.client.validate(today)?;
        let (settings, services) = self.catalogue().await?;
        let Some(service) = services
            .into_iter()
            .find(|s| s.service_id == join.service_id && !s.clinicians.is_empty())
        else {
            return Ok(Err(BookingRefused::NoService));
        };
        let horizon = today + Duration::days(i64::from(settings.max_days_ahead));
        if join.first_day < today || join.first_day > horizon {
            return Err(StoreError::Invalid("waitlist.first_day".into()));
        }
        if join.last_day < join.first_day || join.last_day > horizon {
            return Err(StoreError::Invalid("waitlist.last_day".into()));
        }
        let (Some(earliest), Some(latest)) = (
            day_start(tz, join.first_day),
            join.last_day.succ_opt().and_then(|d| day_start(tz, d)),
        ) else {
            return Err(StoreError::Invalid("waitlist.last_day".into()));
        };
        let (patient, existing) = self
            .client_record(keyring, &join.client, &new_patient)
            .await?;
        let practice = self.practice();
        let id = WaitlistEntryId::new();
        let link = {
            let conn = self.audited().conn();
            sqlx::query(
                "insert into waitlist_entry (practice_id, entry_id, patient_id, service_id,
                        clinician_id, earliest, latest, state, created_by, created_at, updated_at,
                        self_joined, new_client)
                 values ($1, $2, $3, $4, null, $5, $6, 'waiting', null, $7, $7, true, $8)",
            )
            .bind(practice)
            .bind(id)
            .bind(patient)
            .bind(service.service_id)
            .bind(earliest)
            .bind(latest)
            .bind(now)
            .bind(!existing)
            .execute(&mut *conn)
            .await?;
            crate::links::insert(
                conn,
                practice,
                crate::links::Purpose::Waitlist,
                patient,
                id.as_uuid(),
                None,
                now,
                latest.max(now + Duration::hours(1)),
            )
            .await?
        };
        let contacts = Contacts {
            phone: Some(join.client.phone.as_str()),
            email: Some(join.client.email.as_str()),
        };
        let queued = queue_joined(self, keyring, patient, id, &link.token, contacts).await?;
        let mut e = NewEvent::new(now, AuditAction::WaitlistAdd);
        e.object = Some(AuditObject::waitlist_entry(id));
        e.patient = Some(patient);
        e.request = Some(self.request());
        e.details = Some(serde_json::json!({ "self_joined": true, "messages": queued }));
        self.audited().append(&[e]).await?;
        Ok(Ok(Joined {
            entry_id: id,
            patient_id: patient,
            existing,
            earliest,
            latest,
        }))
    }
}

/// A `waitlist` link holder's transaction: entered through `app.enter_link` with purpose
/// `waitlist` (the `client_link` pseudo-role, no actor); it reads its own entry and may take
/// it off the waitlist, nothing else. Dropping it rolls back.
#[derive(Debug)]
pub struct WaitlistHolder {
    inner: Audited,
    link: EnteredLink,
    entry: WaitlistEntryId,
    request: RequestId,
}

/// A self-joined entry as its holder sees it: the practice, the service, the days and the
/// state (nothing else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryView {
    /// The practice's name.
    pub practice_name: String,
    /// The practice's time zone.
    pub tz: Tz,
    /// The service's catalogue name.
    pub service: String,
    /// The earliest acceptable start.
    pub earliest: DateTime<Utc>,
    /// The latest acceptable start.
    pub latest: DateTime<Utc>,
    /// `waiting`, `booked` or `removed`.
    pub state: String,
}

impl crate::Store {
    /// Enters the practice of a `waitlist` link's `token`: `None` when the link is unknown,
    /// expired, used, revoked or of another purpose (the page answers all the same).
    pub async fn waitlist_link(
        &self,
        token: &outbound::LinkToken,
        request: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<WaitlistHolder>, StoreError> {
        crate::entry::link_holder(
            &self.pool,
            token,
            crate::links::Purpose::Waitlist,
            now,
            |inner, link| WaitlistHolder {
                inner,
                entry: WaitlistEntryId::from_uuid(link.subject),
                link,
                request,
            },
        )
        .await
    }
}

impl WaitlistHolder {
    /// The entry, its practice and service; `None` when it is gone. Reads no PHI and changes
    /// nothing.
    pub async fn entry(&mut self) -> Result<Option<EntryView>, StoreError> {
        let practice = self.inner.practice();
        let row: Option<(ServiceId, DateTime<Utc>, DateTime<Utc>, String)> = sqlx::query_as(
            "select service_id, earliest, latest, state from waitlist_entry
              where practice_id = $1 and entry_id = $2",
        )
        .bind(practice)
        .bind(self.entry)
        .fetch_optional(self.inner.conn())
        .await?;
        let Some((service_id, earliest, latest, state)) = row else {
            return Ok(None);
        };
        let practice_name = self.inner.practice_name().await?;
        let tz = practice_time_zone(self.inner.conn(), practice).await?;
        let service = read_services(self.inner.conn(), practice, false)
            .await?
            .into_iter()
            .find(|s| s.service_id == service_id)
            .map(|s| s.name)
            .unwrap_or_default();
        Ok(Some(EntryView {
            practice_name,
            tz,
            service,
            earliest,
            latest,
            state,
        }))
    }

    /// Takes the entry off the waitlist (`removed`) when it is waiting, and uses the link up;
    /// audited `waitlist.remove` (`by: client` in the details). `false` when it was not
    /// waiting (booked, or already removed): nothing changes. The caller commits.
    pub async fn leave(&mut self) -> Result<bool, StoreError> {
        let practice = self.inner.practice();
        let now = self.inner.now();
        let left = sqlx::query(
            "update waitlist_entry set state = 'removed', updated_at = $3
              where practice_id = $1 and entry_id = $2 and state = 'waiting'",
        )
        .bind(practice)
        .bind(self.entry)
        .bind(now)
        .execute(self.inner.conn())
        .await?
        .rows_affected()
            == 1;
        if !left {
            return Ok(false);
        }
        crate::links::mark_used(self.inner.conn(), practice, self.link.link, now).await?;
        let mut e = NewEvent::new(now, AuditAction::WaitlistRemove);
        e.object = Some(AuditObject::waitlist_entry(self.entry));
        e.patient = Some(self.link.patient);
        e.request = Some(self.request);
        e.details = Some(serde_json::json!({ "by": "client" }));
        self.inner.append(&[e]).await?;
        Ok(true)
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.inner.commit().await
    }
}
