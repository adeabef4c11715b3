//! Online booking: the practice's rules, services and clinicians' hours (owners and admins set
//! them), the public page's transaction ([`PublicBooking`]) and the review of bookings that
//! wait for approval (the scheduling roles).
//!
//! # Guarantees
//! - The public page enters a practice only through `app.enter_online_booking`, which admits a
//!   practice whose online booking is on and gives the transaction the `online_booking`
//!   pseudo-role: it reads the catalogue and the hours, learns busy *times* (never who), and
//!   inserts a patient, an appointment and a booking; it reads no existing patient.
//! - Two clients racing for one slot cannot both get it: a booking or a reschedule claims the
//!   slot in one place (`claim_slot`): a transaction lock per clinician, the busy times read
//!   again and the slot re-checked ([`domain::booking::slot_is_free`]) before it inserts or
//!   moves the appointment.
//! - A manage link's holder ([`ManageBooking`], entered through `app.enter_link` with purpose
//!   `booking_manage`) sees its appointment's time, practice and service only, and may
//!   confirm, reschedule to a free time of the same service, or cancel; a cancellation inside
//!   the practice's window is recorded as late. Each change appends `booking.manage`.
//! - An existing client is recognised by phone number *and* date of birth through the blind
//!   indexes (`app.online_booking_match`); the page answers the same either way.
//! - Every booking, setup change and decision appends an audit event (ids only).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use crypto::Keyring;
use domain::booking::{
    Availability, CancellationPolicy, ClinicianWeek, PaymentPolicy, Slot, WeeklyHours, slot_is_free,
};
use domain::{
    AppointmentId, AuditAction, AuditObject, BookingId, PatientId, PracticeId, RequestId,
    ServiceId, UserId,
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::append::NewEvent;
use crate::entry::Audited;
use crate::outbox::Contacts;
use crate::patients::{DEFAULT_COUNTRY_CODE, NewPatient};
use crate::sealed_columns::write_keys;
use crate::{StoreError, TenantTx};

/// Whether new clients' bookings are made at once or wait for the practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NewClients {
    /// Booked at once, like existing clients.
    Allowed,
    /// Held as a request until reception approves it.
    Approval,
}

impl NewClients {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Approval => "approval",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "allowed" => Ok(Self::Allowed),
            "approval" => Ok(Self::Approval),
            _ => Err(StoreError::Corrupt("booking_settings.new_clients")),
        }
    }
}

/// The currencies a practice may charge in.
pub const CURRENCIES: [&str; 6] = ["usd", "cad", "eur", "gbp", "aud", "nzd"];

/// A practice's online-booking rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingSettings {
    /// Whether the public page takes bookings.
    pub enabled: bool,
    /// New clients: booked at once or held for approval.
    pub new_clients: NewClients,
    /// Nothing can be booked sooner than this (0–20160 minutes).
    pub min_notice_minutes: u32,
    /// Nor further ahead than this (1–365 days).
    pub max_days_ahead: u32,
    /// Slot starts are this far apart: 5, 10, 15, 20, 30 or 60 minutes.
    pub step_minutes: u32,
    /// The cancellation window and its fees.
    pub cancellation: CancellationPolicy,
    /// The currency of fees, deposits and prepayments (ISO 4217, lower case).
    pub currency: String,
    /// How many waitlist entries a freed slot is offered to at once (1–10; default 3).
    #[serde(default = "default_waitlist_offers")]
    pub waitlist_offers: u32,
}

/// A freed slot is offered to this many waitlist entries unless the practice says otherwise.
pub const DEFAULT_WAITLIST_OFFERS: u32 = 3;

const fn default_waitlist_offers() -> u32 {
    DEFAULT_WAITLIST_OFFERS
}

impl Default for BookingSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            new_clients: NewClients::Approval,
            min_notice_minutes: 120,
            max_days_ahead: 60,
            step_minutes: 15,
            cancellation: CancellationPolicy {
                window_hours: 24,
                late_cancel_fee_minor: 0,
                no_show_fee_minor: 0,
            },
            currency: "usd".to_owned(),
            waitlist_offers: DEFAULT_WAITLIST_OFFERS,
        }
    }
}

impl BookingSettings {
    /// Checks every number against its range (the schema checks the same).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] naming the field.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |f: &str| Err(StoreError::Invalid(format!("booking_settings.{f}")));
        if self.min_notice_minutes > 20_160 {
            return bad("min_notice_minutes");
        }
        if !(1..=365).contains(&self.max_days_ahead) {
            return bad("max_days_ahead");
        }
        if ![5, 10, 15, 20, 30, 60].contains(&self.step_minutes) {
            return bad("step_minutes");
        }
        if self.cancellation.window_hours > 168 {
            return bad("cancellation.window_hours");
        }
        if self.cancellation.late_cancel_fee_minor > 100_000 {
            return bad("cancellation.late_cancel_fee_minor");
        }
        if self.cancellation.no_show_fee_minor > 100_000 {
            return bad("cancellation.no_show_fee_minor");
        }
        if !CURRENCIES.contains(&self.currency.as_str()) {
            return bad("currency");
        }
        if !(1..=10).contains(&self.waitlist_offers) {
            return bad("waitlist_offers");
        }
        Ok(())
    }
}

/// A bookable service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Service {
    /// Id.
    pub service_id: ServiceId,
    /// The catalogue name.
    pub name: String,
    /// Length in minutes.
    pub duration_minutes: u32,
    /// What is paid when booking.
    pub payment: PaymentPolicy,
    /// Offered online.
    pub active: bool,
    /// The clinicians who offer it.
    pub clinicians: Vec<UserId>,
}

/// A service as an owner or admin writes it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceInput {
    /// The catalogue name (1–80 characters, no control characters).
    pub name: String,
    /// Length in minutes (5–480).
    pub duration_minutes: u32,
    /// What is paid when booking.
    pub payment: PaymentPolicy,
    /// Offered online.
    pub active: bool,
    /// The clinicians who offer it (members holding `clinician`).
    pub clinicians: Vec<UserId>,
}

impl ServiceInput {
    fn validate(&self) -> Result<(), StoreError> {
        let bad = |f: &str| Err(StoreError::Invalid(format!("service.{f}")));
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
            return bad("name");
        }
        if !(5..=480).contains(&self.duration_minutes) {
            return bad("duration_minutes");
        }
        match self.payment {
            PaymentPolicy::Deposit { amount_minor } | PaymentPolicy::Prepay { amount_minor }
                if amount_minor == 0 || amount_minor > 1_000_000 =>
            {
                return bad("payment.amount_minor");
            }
            _ => {}
        }
        if self.clinicians.len() > 50 {
            return bad("clinicians");
        }
        Ok(())
    }
}

fn payment_columns(p: PaymentPolicy) -> (&'static str, i32) {
    match p {
        PaymentPolicy::None => ("none", 0),
        PaymentPolicy::Deposit { amount_minor } => {
            ("deposit", i32::try_from(amount_minor).unwrap_or(i32::MAX))
        }
        PaymentPolicy::Prepay { amount_minor } => {
            ("prepay", i32::try_from(amount_minor).unwrap_or(i32::MAX))
        }
        PaymentPolicy::CardOnFile => ("card_on_file", 0),
    }
}

fn payment_policy(kind: &str, amount: i32) -> Result<PaymentPolicy, StoreError> {
    let amount_minor = u32::try_from(amount).map_err(|_| StoreError::Corrupt("booking_service"))?;
    Ok(match kind {
        "none" => PaymentPolicy::None,
        "deposit" => PaymentPolicy::Deposit { amount_minor },
        "prepay" => PaymentPolicy::Prepay { amount_minor },
        "card_on_file" => PaymentPolicy::CardOnFile,
        _ => return Err(StoreError::Corrupt("booking_service.payment")),
    })
}

fn to_u32(v: i32, what: &'static str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(what))
}

type SettingsRow = (bool, String, i32, i32, i32, i32, i32, i32, String, i32);

pub(crate) async fn read_settings(
    conn: &mut PgConnection,
    practice: PracticeId,
) -> Result<BookingSettings, StoreError> {
    let row: Option<SettingsRow> = sqlx::query_as(
        "select enabled, new_clients, min_notice_minutes, max_days_ahead, step_minutes,
                cancel_window_hours, late_cancel_fee_minor, no_show_fee_minor, currency,
                waitlist_offers
           from booking_settings where practice_id = $1",
    )
    .bind(practice)
    .fetch_optional(conn)
    .await?;
    let Some((enabled, new_clients, notice, ahead, step, window, late, no_show, currency, offers)) =
        row
    else {
        return Ok(BookingSettings::default());
    };
    Ok(BookingSettings {
        enabled,
        new_clients: NewClients::parse(&new_clients)?,
        min_notice_minutes: to_u32(notice, "booking_settings")?,
        max_days_ahead: to_u32(ahead, "booking_settings")?,
        step_minutes: to_u32(step, "booking_settings")?,
        cancellation: CancellationPolicy {
            window_hours: to_u32(window, "booking_settings")?,
            late_cancel_fee_minor: to_u32(late, "booking_settings")?,
            no_show_fee_minor: to_u32(no_show, "booking_settings")?,
        },
        currency,
        waitlist_offers: to_u32(offers, "booking_settings")?,
    })
}

type ServiceRow = (ServiceId, String, i32, String, i32, bool, Vec<uuid::Uuid>);

pub(crate) async fn read_services(
    conn: &mut PgConnection,
    practice: PracticeId,
    only_active: bool,
) -> Result<Vec<Service>, StoreError> {
    let rows: Vec<ServiceRow> = sqlx::query_as(
        "select s.service_id, s.name, s.duration_minutes, s.payment, s.amount_minor, s.active,
                coalesce(array_agg(c.clinician_id order by c.clinician_id)
                         filter (where c.clinician_id is not null), '{}')
           from booking_service s
           left join booking_service_clinician c
             on c.practice_id = s.practice_id and c.service_id = s.service_id
          where s.practice_id = $1 and (s.active or not $2)
          group by s.service_id, s.name, s.duration_minutes, s.payment, s.amount_minor,
                   s.active, s.position
          order by s.position, s.name, s.service_id",
    )
    .bind(practice)
    .bind(only_active)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(
            |(id, name, duration, payment, amount, active, clinicians)| {
                Ok(Service {
                    service_id: id,
                    name,
                    duration_minutes: to_u32(duration, "booking_service")?,
                    payment: payment_policy(&payment, amount)?,
                    active,
                    clinicians: clinicians.into_iter().map(UserId::from_uuid).collect(),
                })
            },
        )
        .collect()
}

pub(crate) async fn read_hours(
    conn: &mut PgConnection,
    practice: PracticeId,
    clinician: UserId,
) -> Result<Vec<WeeklyHours>, StoreError> {
    let rows: Vec<(i16, NaiveTime, NaiveTime)> = sqlx::query_as(
        "select weekday, opens, closes from clinician_hours
          where practice_id = $1 and clinician_id = $2 order by weekday, opens",
    )
    .bind(practice)
    .bind(clinician)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(d, opens, closes)| {
            let day = u8::try_from(d)
                .ok()
                .and_then(|d| Weekday::try_from(d.wrapping_sub(1)).ok())
                .ok_or(StoreError::Corrupt("clinician_hours.weekday"))?;
            WeeklyHours::new(day, opens, closes).map_err(|_| StoreError::Corrupt("clinician_hours"))
        })
        .collect()
}

pub(crate) async fn read_busy(
    conn: &mut PgConnection,
    clinician: UserId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>, StoreError> {
    Ok(
        sqlx::query_as("select starts_at, ends_at from app.online_booking_busy($1, $2, $3)")
            .bind(clinician)
            .bind(from)
            .bind(to)
            .fetch_all(conn)
            .await?,
    )
}

/// One clinician's week: hours and busy times in `[from, to)`.
pub(crate) async fn clinician_week(
    conn: &mut PgConnection,
    practice: PracticeId,
    clinician: UserId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<ClinicianWeek, StoreError> {
    Ok(ClinicianWeek {
        clinician,
        hours: read_hours(&mut *conn, practice, clinician).await?,
        busy: read_busy(&mut *conn, clinician, from, to).await?,
    })
}

/// The weeks of `service`'s clinicians with their busy times in `[from, to)`.
async fn weeks(
    conn: &mut PgConnection,
    practice: PracticeId,
    service: &Service,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<ClinicianWeek>, StoreError> {
    let mut out = Vec::with_capacity(service.clinicians.len());
    for &clinician in &service.clinicians {
        out.push(ClinicianWeek {
            clinician,
            hours: read_hours(&mut *conn, practice, clinician).await?,
            busy: read_busy(&mut *conn, clinician, from, to).await?,
        });
    }
    Ok(out)
}

pub(crate) fn query(
    settings: &BookingSettings,
    service: &Service,
    tz: Tz,
    now: DateTime<Utc>,
    from: NaiveDate,
    days: u32,
) -> Availability {
    Availability {
        tz,
        now,
        from,
        days,
        duration_minutes: service.duration_minutes,
        step_minutes: settings.step_minutes,
        min_notice_minutes: settings.min_notice_minutes,
        max_days_ahead: settings.max_days_ahead,
    }
}

// ---------------------------------------------------------------------------------------
// The practice's side (owners and admins set up; the scheduling roles review).
// ---------------------------------------------------------------------------------------

/// The practice's booking rules (the defaults when never set).
pub async fn settings(tx: &mut TenantTx) -> Result<BookingSettings, StoreError> {
    let practice = tx.practice();
    read_settings(tx.conn(), practice).await
}

/// Sets the practice's booking rules (owners and admins; RLS refuses others) and audits it.
pub async fn put_settings(tx: &mut TenantTx, s: &BookingSettings) -> Result<(), StoreError> {
    s.validate()?;
    let practice = tx.practice();
    let (actor, now) = (tx.actor(), tx.now());
    sqlx::query(
        "insert into booking_settings (practice_id, enabled, new_clients, min_notice_minutes,
                max_days_ahead, step_minutes, cancel_window_hours, late_cancel_fee_minor,
                no_show_fee_minor, currency, updated_by, updated_at, waitlist_offers)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         on conflict (practice_id) do update set enabled = excluded.enabled,
                new_clients = excluded.new_clients, min_notice_minutes = excluded.min_notice_minutes,
                max_days_ahead = excluded.max_days_ahead, step_minutes = excluded.step_minutes,
                cancel_window_hours = excluded.cancel_window_hours,
                late_cancel_fee_minor = excluded.late_cancel_fee_minor,
                no_show_fee_minor = excluded.no_show_fee_minor, currency = excluded.currency,
                updated_by = excluded.updated_by, updated_at = excluded.updated_at,
                waitlist_offers = excluded.waitlist_offers",
    )
    .bind(practice)
    .bind(s.enabled)
    .bind(s.new_clients.as_str())
    .bind(i32::try_from(s.min_notice_minutes).unwrap_or(i32::MAX))
    .bind(i32::try_from(s.max_days_ahead).unwrap_or(i32::MAX))
    .bind(i32::try_from(s.step_minutes).unwrap_or(i32::MAX))
    .bind(i32::try_from(s.cancellation.window_hours).unwrap_or(i32::MAX))
    .bind(i32::try_from(s.cancellation.late_cancel_fee_minor).unwrap_or(i32::MAX))
    .bind(i32::try_from(s.cancellation.no_show_fee_minor).unwrap_or(i32::MAX))
    .bind(&s.currency)
    .bind(actor)
    .bind(now)
    .bind(i32::try_from(s.waitlist_offers).unwrap_or(i32::MAX))
    .execute(tx.conn())
    .await?;
    tx.audit(
        AuditAction::BookingSetup,
        None,
        Some(AuditObject::practice(practice)),
    )
    .await
}

/// Every service (active or not), for the practice's setup screen.
pub async fn services(tx: &mut TenantTx) -> Result<Vec<Service>, StoreError> {
    let practice = tx.practice();
    read_services(tx.conn(), practice, false).await
}

/// Whether every id is a member of the practice holding `clinician`.
async fn all_clinicians(tx: &mut TenantTx, ids: &[UserId]) -> Result<bool, StoreError> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(UserId::as_uuid).collect();
    let found: i64 = sqlx::query_scalar(
        "select count(distinct user_id) from membership
          where practice_id = $1 and user_id = any($2) and 'clinician' = any(roles)",
    )
    .bind(tx.practice())
    .bind(&ids)
    .fetch_one(tx.conn())
    .await?;
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    Ok(usize::try_from(found).ok() == Some(distinct.len()))
}

/// Creates (`id` `None`) or replaces a service; its clinicians must be the practice's
/// clinicians. `None` when `id` names no service of the practice.
pub async fn put_service(
    tx: &mut TenantTx,
    id: Option<ServiceId>,
    input: &ServiceInput,
) -> Result<Option<ServiceId>, StoreError> {
    input.validate()?;
    if !all_clinicians(tx, &input.clinicians).await? {
        return Err(StoreError::Invalid("service.clinicians".into()));
    }
    let practice = tx.practice();
    let now = tx.now();
    let (payment, amount) = payment_columns(input.payment);
    let service = match id {
        None => {
            let id = ServiceId::new();
            sqlx::query(
                "insert into booking_service (practice_id, service_id, name, duration_minutes,
                        payment, amount_minor, active, position, created_at, updated_at)
                 values ($1, $2, $3, $4, $5, $6, $7,
                        (select coalesce(max(position) + 1, 0) from booking_service where practice_id = $1),
                        $8, $8)",
            )
            .bind(practice)
            .bind(id)
            .bind(input.name.trim())
            .bind(i32::try_from(input.duration_minutes).unwrap_or(i32::MAX))
            .bind(payment)
            .bind(amount)
            .bind(input.active)
            .bind(now)
            .execute(tx.conn())
            .await?;
            id
        }
        Some(id) => {
            let n = sqlx::query(
                "update booking_service set name = $3, duration_minutes = $4, payment = $5,
                        amount_minor = $6, active = $7, updated_at = $8
                  where practice_id = $1 and service_id = $2",
            )
            .bind(practice)
            .bind(id)
            .bind(input.name.trim())
            .bind(i32::try_from(input.duration_minutes).unwrap_or(i32::MAX))
            .bind(payment)
            .bind(amount)
            .bind(input.active)
            .bind(now)
            .execute(tx.conn())
            .await?
            .rows_affected();
            if n == 0 {
                return Ok(None);
            }
            sqlx::query(
                "delete from booking_service_clinician where practice_id = $1 and service_id = $2",
            )
            .bind(practice)
            .bind(id)
            .execute(tx.conn())
            .await?;
            id
        }
    };
    let clinicians: Vec<uuid::Uuid> = input.clinicians.iter().map(UserId::as_uuid).collect();
    sqlx::query(
        "insert into booking_service_clinician (practice_id, service_id, clinician_id)
         select $1, $2, c from unnest($3::uuid[]) c on conflict do nothing",
    )
    .bind(practice)
    .bind(service)
    .bind(&clinicians)
    .execute(tx.conn())
    .await?;
    tx.audit(
        AuditAction::BookingSetup,
        None,
        Some(AuditObject::practice(practice)),
    )
    .await?;
    Ok(Some(service))
}

/// A clinician's weekly hours.
pub async fn hours(tx: &mut TenantTx, clinician: UserId) -> Result<Vec<WeeklyHours>, StoreError> {
    let practice = tx.practice();
    read_hours(tx.conn(), practice, clinician).await
}

/// Replaces a clinician's weekly hours (at most 28 openings, none overlapping on a day).
pub async fn put_hours(
    tx: &mut TenantTx,
    clinician: UserId,
    hours: &[WeeklyHours],
) -> Result<(), StoreError> {
    if hours.len() > 28 {
        return Err(StoreError::Invalid("hours".into()));
    }
    let mut sorted = hours.to_vec();
    sorted.sort_by_key(|h| (h.weekday.number_from_monday(), h.start));
    if sorted
        .windows(2)
        .any(|w| matches!(w, [a, b] if a.weekday == b.weekday && b.start < a.end))
    {
        return Err(StoreError::Invalid("hours.overlap".into()));
    }
    if !all_clinicians(tx, &[clinician]).await? {
        return Err(StoreError::Invalid("hours.clinician".into()));
    }
    let practice = tx.practice();
    sqlx::query("delete from clinician_hours where practice_id = $1 and clinician_id = $2")
        .bind(practice)
        .bind(clinician)
        .execute(tx.conn())
        .await?;
    for h in &sorted {
        sqlx::query(
            "insert into clinician_hours (practice_id, clinician_id, weekday, opens, closes)
             values ($1, $2, $3, $4, $5)",
        )
        .bind(practice)
        .bind(clinician)
        .bind(i16::try_from(h.weekday.number_from_monday()).unwrap_or(1))
        .bind(h.start)
        .bind(h.end)
        .execute(tx.conn())
        .await?;
    }
    tx.audit(
        AuditAction::BookingSetup,
        None,
        Some(AuditObject::practice(practice)),
    )
    .await
}

/// An online booking as the practice reviews it (ids, states, times; no contact details).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct OnlineBooking {
    /// Id.
    pub booking_id: BookingId,
    /// The appointment it made.
    pub appointment_id: AppointmentId,
    /// The service.
    pub service_id: ServiceId,
    /// The client.
    pub patient_id: PatientId,
    /// `new` or `existing`.
    pub client_kind: String,
    /// `held` (waiting for its payment), `expired` (not paid in time), `requested`,
    /// `booked`, `declined` or `cancelled`.
    pub status: String,
    /// `none`, `pending`, `paid`, `card_on_file`, `failed`, `expired` or `refunded`.
    pub payment: String,
    /// When a pending payment's hold is released if unpaid.
    pub payment_due_by: Option<DateTime<Utc>>,
    /// Start of the appointment.
    pub starts_at: DateTime<Utc>,
    /// The clinician.
    pub clinician_id: UserId,
    /// When the client booked.
    pub created_at: DateTime<Utc>,
}

/// Online bookings, newest first, optionally only one status (at most 200), audited as a list.
pub async fn list(
    tx: &mut TenantTx,
    status: Option<&str>,
) -> Result<Vec<OnlineBooking>, StoreError> {
    if status.is_some_and(|s| {
        ![
            "held",
            "expired",
            "requested",
            "booked",
            "declined",
            "cancelled",
        ]
        .contains(&s)
    }) {
        return Err(StoreError::Invalid("status".into()));
    }
    let practice = tx.practice();
    let rows = bookings(tx, None, status).await?;
    tx.audit(
        AuditAction::BookingList,
        None,
        Some(AuditObject::practice(practice)),
    )
    .await?;
    Ok(rows)
}

/// Approves (the appointment is booked) or declines (it is cancelled) a requested booking.
/// `None` when there is no such booking; [`StoreError::Conflict`] when it is not a request.
///
/// An approval queues the booking confirmation (email and SMS, to the client's contacts on
/// record) in the same transaction ([`queue_confirmation`]).
pub async fn decide(
    tx: &mut TenantTx,
    keyring: &Keyring,
    booking: BookingId,
    approve: bool,
) -> Result<Option<OnlineBooking>, StoreError> {
    let practice = tx.practice();
    let (actor, now) = (tx.actor(), tx.now());
    let current: Option<(String, AppointmentId)> = sqlx::query_as(
        "select status, appointment_id from online_booking
          where practice_id = $1 and booking_id = $2 for update",
    )
    .bind(practice)
    .bind(booking)
    .fetch_optional(tx.conn())
    .await?;
    let Some((status, appointment)) = current else {
        return Ok(None);
    };
    if status != "requested" {
        return Err(StoreError::Conflict("booking_not_requested".into()));
    }
    let (booking_status, appointment_status) = if approve {
        ("booked", "booked")
    } else {
        ("declined", "cancelled")
    };
    sqlx::query(
        "update online_booking set status = $3, decided_by = $4, updated_at = $5
          where practice_id = $1 and booking_id = $2",
    )
    .bind(practice)
    .bind(booking)
    .bind(booking_status)
    .bind(actor)
    .bind(now)
    .execute(tx.conn())
    .await?;
    sqlx::query(
        "update appointment set status = $3, updated_at = $4
          where practice_id = $1 and appointment_id = $2",
    )
    .bind(practice)
    .bind(appointment)
    .bind(appointment_status)
    .bind(now)
    .execute(tx.conn())
    .await?;
    if !approve {
        // A declined request made by accepting a waitlist offer: the entry waits again.
        crate::waitlist::unbook_released(tx.conn(), practice, appointment, now).await?;
    }
    if approve {
        let booked: BookedAppointment = sqlx::query_as(
            "select appointment_id, patient_id, starts_at, ends_at from appointment
              where practice_id = $1 and appointment_id = $2",
        )
        .bind(practice)
        .bind(appointment)
        .fetch_one(tx.conn())
        .await?;
        if let Some(p) = crate::patients::get(tx, keyring, booked.patient_id).await? {
            let tz = practice_time_zone(tx.conn(), practice).await?;
            let contacts = Contacts {
                phone: p.phone.as_deref(),
                email: p.email.as_deref(),
            };
            queue_confirmation(tx, keyring, booking, &booked, tz, contacts).await?;
        }
    }
    tx.audit(
        AuditAction::BookingDecide,
        None,
        Some(AuditObject::online_booking(booking)),
    )
    .await?;
    Ok(bookings(tx, Some(booking), None).await?.into_iter().next())
}

/// Online bookings joined with their appointments: one booking, or the newest 200 (of one
/// status, when given). Reads ids, states and times only; the callers audit.
async fn bookings(
    tx: &mut TenantTx,
    booking: Option<BookingId>,
    status: Option<&str>,
) -> Result<Vec<OnlineBooking>, StoreError> {
    let practice = tx.practice();
    Ok(sqlx::query_as(
        "select b.booking_id, b.appointment_id, b.service_id, b.patient_id, b.client_kind,
                b.status, b.payment,
                (select min(p.hold_expires_at) from booking_payment p
                  where p.practice_id = b.practice_id and p.booking_id = b.booking_id
                    and p.state = 'pending') as payment_due_by,
                a.starts_at, a.clinician_id, b.created_at
           from online_booking b
           join appointment a on a.practice_id = b.practice_id and a.appointment_id = b.appointment_id
          where b.practice_id = $1
            and ($2::uuid is null or b.booking_id = $2)
            and ($3::text is null or b.status = $3)
          order by b.created_at desc, b.booking_id limit 200",
    )
    .bind(practice)
    .bind(booking)
    .bind(status)
    .fetch_all(tx.conn())
    .await?)
}

/// The practice's time zone (its `time_zone` setting; UTC when unset or unknown).
pub(crate) async fn practice_time_zone(
    conn: &mut PgConnection,
    practice: PracticeId,
) -> Result<Tz, StoreError> {
    let name: Option<String> =
        sqlx::query_scalar("select settings ->> 'time_zone' from practice where practice_id = $1")
            .bind(practice)
            .fetch_one(conn)
            .await?;
    Ok(name.and_then(|n| n.parse().ok()).unwrap_or(chrono_tz::UTC))
}

/// The appointment a confirmation is about.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct BookedAppointment {
    /// The appointment.
    pub appointment_id: AppointmentId,
    /// Its patient.
    pub patient_id: PatientId,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End (the manage link lives until then).
    pub ends_at: DateTime<Utc>,
}

/// Queues a booked appointment's confirmation in the caller's transaction: an email to a
/// valid address and an SMS to a valid mobile number, each once per booking, both carrying
/// the same new manage link (its token sealed in the message, its digest in `client_link`,
/// live until the appointment ends) and the local start time in `tz`.
pub async fn queue_confirmation(
    tx: &mut impl crate::outbox::QueueTx,
    keyring: &Keyring,
    booking: BookingId,
    appointment: &BookedAppointment,
    tz: Tz,
    contacts: Contacts<'_>,
) -> Result<(), StoreError> {
    use crate::outbox::{Cause, Channel, NewMessage, Recipient, Slots, enqueue};
    let (patient, starts_at) = (appointment.patient_id, appointment.starts_at);
    let token = {
        let (conn, practice, now) = crate::outbox::tx_parts(tx);
        crate::links::manage_link_for_new_booking(
            conn,
            practice,
            patient,
            appointment.appointment_id,
            now,
            appointment.ends_at,
        )
        .await?
    };
    let slots = Slots {
        time: Some(starts_at.with_timezone(&tz).naive_local()),
        link_token: Some(token.expose_for_sealing().to_owned()),
        ..Slots::default()
    };
    for channel in [Channel::Email, Channel::Sms] {
        let Some(to) = crate::outbox::address(channel, contacts) else {
            continue;
        };
        enqueue(
            tx,
            keyring,
            &NewMessage {
                patient: Some(patient),
                template: "booking_confirmed",
                channel,
                cause: Cause::OnlineBooking,
                cause_id: booking.as_uuid(),
                recipient: Recipient(to),
                slots: slots.clone(),
                time_zone: None,
                not_before: None,
            },
        )
        .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The public page.
// ---------------------------------------------------------------------------------------

/// Claims the slot at `starts_at` for `service`: the one home of the "never double-booked"
/// rule, used by the public booking page and by a manage link's reschedule. Takes a
/// transaction lock per clinician of the service (so two claims of one clinician's time run
/// one after the other), re-reads their busy times and re-checks the slot under the practice's
/// rules ([`slot_is_free`]); returns the first clinician free then, or `None` when the slot is
/// not (or no longer) free. The caller inserts or moves the appointment in the same
/// transaction, before the locks go.
pub(crate) async fn claim_slot(
    conn: &mut PgConnection,
    practice: PracticeId,
    settings: &BookingSettings,
    service: &Service,
    tz: Tz,
    now: DateTime<Utc>,
    starts_at: DateTime<Utc>,
) -> Result<Option<Slot>, StoreError> {
    for c in &service.clinicians {
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 19))")
            .bind(format!("{practice}/{c}"))
            .execute(&mut *conn)
            .await?;
    }
    let today = now.with_timezone(&tz).date_naive();
    let q = query(settings, service, tz, now, today, 1);
    let weeks = weeks(
        &mut *conn,
        practice,
        service,
        starts_at - Duration::days(1),
        starts_at + Duration::days(1),
    )
    .await?;
    Ok(weeks
        .iter()
        .find(|w| slot_is_free(&q, w, starts_at))
        .map(|w| Slot {
            clinician: w.clinician,
            starts_at,
            ends_at: starts_at + Duration::minutes(i64::from(service.duration_minutes)),
        }))
}

/// A transaction of the practice's public booking page: entered through
/// `app.enter_online_booking` with the `online_booking` pseudo-role and no actor. Dropping it
/// rolls back.
#[derive(Debug)]
pub struct PublicBooking {
    inner: Audited,
    request: RequestId,
}

/// What a client enters on the public page (validated by [`ClientDetails::validate`]).
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientDetails {
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Date of birth.
    pub date_of_birth: NaiveDate,
    /// Mobile number.
    pub phone: String,
    /// Email address.
    pub email: String,
}

impl std::fmt::Debug for ClientDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientDetails(…)")
    }
}

impl ClientDetails {
    /// The record a new client gets, every field checked by the patient rules.
    pub(crate) fn validate(&self, today: NaiveDate) -> Result<NewPatient, StoreError> {
        let bad = |f: &str| StoreError::Invalid(format!("client.{f}"));
        let name_ok = |s: &str| {
            let t = s.trim();
            !t.is_empty() && t.chars().count() <= 100 && !t.chars().any(char::is_control)
        };
        if !name_ok(&self.given_name) {
            return Err(bad("given_name"));
        }
        if !name_ok(&self.family_name) {
            return Err(bad("family_name"));
        }
        if self.date_of_birth > today || today.year() - self.date_of_birth.year() > 130 {
            return Err(bad("date_of_birth"));
        }
        crypto::blind_index::normalize_phone(&self.phone, DEFAULT_COUNTRY_CODE)
            .map_err(|_| bad("phone"))?;
        egress::send::EmailAddress::parse(&self.email).map_err(|_| bad("email"))?;
        Ok(NewPatient {
            given_name: self.given_name.trim().to_owned(),
            family_name: self.family_name.trim().to_owned(),
            date_of_birth: Some(self.date_of_birth),
            phone: Some(self.phone.trim().to_owned()),
            email: Some(self.email.trim().to_owned()),
        })
    }
}

/// The result of a booking made on the public page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booked {
    /// The booking.
    pub booking_id: BookingId,
    /// Its appointment.
    pub appointment_id: AppointmentId,
    /// The client's record (new or matched).
    pub patient_id: PatientId,
    /// Whether the client was recognised.
    pub existing: bool,
    /// `booked`; `requested` when it waits for the practice; `held` when it waits for its
    /// payment ([`Booked::hold`]).
    pub status: &'static str,
    /// The slot.
    pub slot: Slot,
    /// What is due now (deposit or prepayment), in minor units.
    pub due_now_minor: Option<u32>,
    /// The payment hold, when the service is paid for at booking (deposit, prepayment, card
    /// on file): the caller sends the client to the processor with it.
    pub hold: Option<crate::payments::Hold>,
}

/// Why a booking was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BookingRefused {
    /// No such active service.
    #[error("no such service")]
    NoService,
    /// The slot is not (or no longer) free.
    #[error("that time is no longer free")]
    SlotTaken,
}

impl crate::Store {
    /// Enters `practice`'s public booking page; `None` when the practice does not take
    /// online bookings (or does not exist: the two are not told apart).
    pub async fn online_booking(
        &self,
        practice: PracticeId,
        request: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<PublicBooking>, StoreError> {
        Ok(
            crate::entry::enter_online_booking(&self.pool, practice, now)
                .await?
                .map(|inner| PublicBooking { inner, request }),
        )
    }
}

impl PublicBooking {
    /// The practice.
    #[must_use]
    pub fn practice(&self) -> PracticeId {
        self.inner.practice()
    }

    /// The audited transaction, for the public page's other writes in this crate (joining the
    /// waitlist, [`crate::waitlist`]).
    pub(crate) fn audited(&mut self) -> &mut Audited {
        &mut self.inner
    }

    /// The request's id (for its audit events).
    pub(crate) fn request(&self) -> RequestId {
        self.request
    }

    /// The request time.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    /// The practice's name (shown on its public page).
    pub async fn practice_name(&mut self) -> Result<String, StoreError> {
        self.inner.practice_name().await
    }

    /// The practice's time zone (its `time_zone` setting; UTC when unset or unknown).
    pub async fn time_zone(&mut self) -> Result<Tz, StoreError> {
        let practice = self.practice();
        let name: Option<String> = sqlx::query_scalar(
            "select settings ->> 'time_zone' from practice where practice_id = $1",
        )
        .bind(practice)
        .fetch_one(self.inner.conn())
        .await?;
        Ok(name.and_then(|n| n.parse().ok()).unwrap_or(chrono_tz::UTC))
    }

    /// The rules and the active services.
    pub async fn catalogue(&mut self) -> Result<(BookingSettings, Vec<Service>), StoreError> {
        let practice = self.practice();
        let settings = read_settings(self.inner.conn(), practice).await?;
        let services = read_services(self.inner.conn(), practice, true).await?;
        Ok((settings, services))
    }

    async fn service(
        &mut self,
        id: ServiceId,
    ) -> Result<(BookingSettings, Option<Service>), StoreError> {
        let (settings, services) = self.catalogue().await?;
        Ok((settings, services.into_iter().find(|s| s.service_id == id)))
    }

    /// The free slots of `service` over `days` local days from `from` in the practice's time
    /// zone `tz` (no clinician is named to the client; the slot carries the id for booking).
    pub async fn availability(
        &mut self,
        service: ServiceId,
        tz: Tz,
        from: NaiveDate,
        days: u32,
    ) -> Result<Option<Vec<Slot>>, StoreError> {
        let (settings, Some(service)) = self.service(service).await? else {
            return Ok(None);
        };
        let now = self.now();
        let q = query(&settings, &service, tz, now, from, days);
        let (lo, hi) = (
            now - Duration::days(1),
            now + Duration::days(i64::from(settings.max_days_ahead) + 2),
        );
        let practice = self.practice();
        let weeks = weeks(self.inner.conn(), practice, &service, lo, hi).await?;
        Ok(Some(q.slots(&weeks)))
    }

    /// The client's record: the one existing patient with this phone number and date of birth,
    /// or a new sealed record. `true` when it existed.
    pub(crate) async fn client_record(
        &mut self,
        keyring: &Keyring,
        client: &ClientDetails,
        new_patient: &NewPatient,
    ) -> Result<(PatientId, bool), StoreError> {
        let practice = self.practice();
        let now = self.now();
        let keys = write_keys(keyring, practice).await?;
        let phone_tags: Vec<Vec<u8>> = keys
            .phone_query_tags(&client.phone, DEFAULT_COUNTRY_CODE)
            .map_err(|_| StoreError::Invalid("client.phone".into()))?
            .iter()
            .map(|t| t.as_bytes().to_vec())
            .collect();
        let dob_tags: Vec<Vec<u8>> = keys
            .date_of_birth_query_tags(client.date_of_birth)
            .iter()
            .map(|t| t.as_bytes().to_vec())
            .collect();
        let matched: Option<PatientId> =
            sqlx::query_scalar("select app.online_booking_match($1, $2)")
                .bind(&phone_tags)
                .bind(&dob_tags)
                .fetch_one(self.inner.conn())
                .await?;
        if let Some(p) = matched {
            return Ok((p, true));
        }
        let id = PatientId::new();
        let sealed = crate::patients::seal(&keys, id, new_patient)?;
        crate::patients::insert_sealed(self.inner.conn(), practice, id, &sealed, now).await?;
        Ok((id, false))
    }

    /// Books `starts_at` for the client: recognises an existing client by phone and date of
    /// birth, or records a new one; picks the first of the service's clinicians free then;
    /// holds new clients' bookings for approval when the practice says so. A booking made at
    /// once queues its confirmation (email and SMS to the contacts given) in this transaction
    /// ([`queue_confirmation`]). Appends the audit event; the caller commits.
    #[expect(
        clippy::too_many_lines,
        reason = "one transaction in order: the slot, the client, the appointment, the booking, its confirmation, the audit event"
    )]
    pub async fn book(
        &mut self,
        keyring: &Keyring,
        service: ServiceId,
        tz: Tz,
        starts_at: DateTime<Utc>,
        client: &ClientDetails,
    ) -> Result<Result<Booked, BookingRefused>, StoreError> {
        let now = self.now();
        let today = now.with_timezone(&tz).date_naive();
        let new_patient = client.validate(today)?;
        let (settings, Some(service)) = self.service(service).await? else {
            return Ok(Err(BookingRefused::NoService));
        };
        let practice = self.practice();
        let Some(Slot {
            clinician, ends_at, ..
        }) = claim_slot(
            self.inner.conn(),
            practice,
            &settings,
            &service,
            tz,
            now,
            starts_at,
        )
        .await?
        else {
            return Ok(Err(BookingRefused::SlotTaken));
        };

        let (patient, existing) = self.client_record(keyring, client, &new_patient).await?;
        let status = if !existing && settings.new_clients == NewClients::Approval {
            "requested"
        } else {
            "booked"
        };
        let due_now = service.payment.due_now();
        // A service paid for at booking holds the slot until the payment is settled
        // (`crate::payments`): the booking becomes `status` then.
        let payment_kind = crate::payments::PaymentKind::at_booking(service.payment);
        let then_status = status;
        let status = if payment_kind.is_some() {
            "held"
        } else {
            status
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
        .bind(clinician)
        .bind(starts_at)
        .bind(ends_at)
        .bind(status)
        .bind(now)
        .execute(self.inner.conn())
        .await?;
        let booking = BookingId::new();
        let payment = if service.payment == PaymentPolicy::None {
            "none"
        } else {
            "pending"
        };
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
        .bind(if existing { "existing" } else { "new" })
        .bind(status)
        .bind(payment)
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
        if status == "booked" {
            let contacts = Contacts {
                phone: Some(client.phone.as_str()),
                email: Some(client.email.as_str()),
            };
            let booked = BookedAppointment {
                appointment_id: appointment,
                patient_id: patient,
                starts_at,
                ends_at,
            };
            queue_confirmation(self, keyring, booking, &booked, tz, contacts).await?;
        }
        let mut event = NewEvent::new(now, AuditAction::BookingCreate);
        event.object = Some(AuditObject::online_booking(booking));
        event.patient = Some(patient);
        event.request = Some(self.request);
        if let Some(h) = &hold {
            event.details = Some(serde_json::json!({
                "hold": h.kind.as_str(), "payment_id": h.payment_id,
            }));
        }
        self.inner.append(&[event]).await?;
        Ok(Ok(Booked {
            booking_id: booking,
            appointment_id: appointment,
            patient_id: patient,
            existing,
            status,
            slot: Slot {
                clinician,
                starts_at,
                ends_at,
            },
            due_now_minor: due_now,
            hold,
        }))
    }

    /// The manage link of a booking this transaction just made (confirm, cancel,
    /// reschedule), live until its appointment ends; for the confirmation message, queued in
    /// the same transaction. The token is never stored.
    pub async fn create_booking_manage_link(
        &mut self,
        booked: &Booked,
    ) -> Result<outbound::LinkToken, StoreError> {
        let practice = self.practice();
        let now = self.now();
        crate::links::manage_link_for_new_booking(
            self.inner.conn(),
            practice,
            booked.patient_id,
            booked.appointment_id,
            now,
            booked.slot.ends_at,
        )
        .await
    }

    /// Records that the outbound scanner refused the payment request of a hold (the
    /// booking's own transaction was rolled back: nothing is held): `payment.refused` with the
    /// finding's kind, never the payload. Commit after it.
    pub async fn record_payment_refused(&mut self, finding: &str) -> Result<(), StoreError> {
        let mut event = NewEvent::new(self.now(), AuditAction::PaymentRefused);
        event.object = Some(AuditObject::practice(self.practice()));
        event.request = Some(self.request);
        event.details = Some(serde_json::json!({ "finding": finding }));
        self.inner.append(&[event]).await.map(|_| ())
    }

    /// The connection, practice and time, for queueing messages in this transaction
    /// ([`crate::outbox::enqueue`]).
    pub(crate) fn queue_parts(&mut self) -> (&mut PgConnection, PracticeId, DateTime<Utc>) {
        let (p, now) = (self.inner.practice(), self.inner.now());
        (self.inner.conn(), p, now)
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.inner.commit().await
    }
}

// ---------------------------------------------------------------------------------------
// The manage link (confirm, cancel, reschedule).
// ---------------------------------------------------------------------------------------

/// A manage link holder's transaction: entered through `app.enter_link` with purpose
/// `booking_manage` (the `client_link` pseudo-role, no actor); it reads and changes its own
/// appointment only. Dropping it rolls back.
#[derive(Debug)]
pub struct ManageBooking {
    inner: Audited,
    link: crate::entry::EnteredLink,
    appointment: AppointmentId,
    request: RequestId,
}

/// The appointment as its manage link shows it: times, the practice, the service's name and
/// states (no other PHI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedAppointment {
    /// The practice's name.
    pub practice_name: String,
    /// The practice's time zone.
    pub tz: Tz,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End.
    pub ends_at: DateTime<Utc>,
    /// `requested`, `booked`, `cancelled`, …
    pub status: String,
    /// The online service booked, when it was booked online (rescheduling needs it).
    pub service: Option<Service>,
    /// When the client confirmed it.
    pub client_confirmed_at: Option<DateTime<Utc>>,
    /// The cancellation window and fees.
    pub cancellation: CancellationPolicy,
}

impl ManagedAppointment {
    /// Whether the client may still change it (confirm, cancel, reschedule): it is booked or
    /// requested and has not started.
    #[must_use]
    pub fn changeable(&self, now: DateTime<Utc>) -> bool {
        matches!(self.status.as_str(), "booked" | "requested") && self.starts_at > now
    }

    /// Whether cancelling at `now` is late (inside the cancellation window).
    #[must_use]
    pub fn cancel_is_late(&self, now: DateTime<Utc>) -> bool {
        self.starts_at - now < Duration::hours(i64::from(self.cancellation.window_hours))
    }
}

/// What the client did through a manage link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManageOutcome {
    /// Confirmed.
    Confirmed,
    /// Cancelled; `late` when inside the cancellation window (recorded as such).
    Cancelled {
        /// Inside the window.
        late: bool,
    },
    /// Moved to the slot.
    Rescheduled(Slot),
    /// Not changeable any more (cancelled, past), or the slot was taken / not offered.
    Refused(BookingRefused),
}

impl crate::Store {
    /// Enters the practice of a manage link's `token`: `None` when the link is unknown,
    /// expired, used, revoked or of another purpose (the page answers all the same).
    pub async fn manage_link(
        &self,
        token: &outbound::LinkToken,
        request: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<ManageBooking>, StoreError> {
        crate::entry::link_holder(
            &self.pool,
            token,
            crate::links::Purpose::BookingManage,
            now,
            |inner, link| ManageBooking {
                inner,
                appointment: AppointmentId::from_uuid(link.subject),
                link,
                request,
            },
        )
        .await
    }
}

/// An appointment's start, end, status and client confirmation.
type AppointmentRow = (DateTime<Utc>, DateTime<Utc>, String, Option<DateTime<Utc>>);

impl crate::waitlist::ReleaseTx for ManageBooking {
    fn opener_for<'k>(&mut self, keyring: &'k Keyring) -> crate::entry::Opener<'k> {
        self.inner.opener(keyring)
    }

    async fn audit_offer(
        &mut self,
        offer: domain::WaitlistOfferId,
        patient: PatientId,
        details: serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut e = NewEvent::new(self.now(), AuditAction::WaitlistOffer);
        e.object = Some(AuditObject::waitlist_offer(offer));
        e.patient = Some(patient);
        e.request = Some(self.request);
        e.details = Some(details);
        self.inner.append(&[e]).await.map(|_| ())
    }
}

impl ManageBooking {
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

    /// The appointment, its practice and service; `None` when it is gone.
    pub async fn appointment(&mut self) -> Result<Option<ManagedAppointment>, StoreError> {
        let practice = self.inner.practice();
        let row: Option<AppointmentRow> = sqlx::query_as(
            "select starts_at, ends_at, status, client_confirmed_at from appointment
                  where practice_id = $1 and appointment_id = $2",
        )
        .bind(practice)
        .bind(self.appointment)
        .fetch_optional(self.inner.conn())
        .await?;
        let Some((starts_at, ends_at, status, client_confirmed_at)) = row else {
            return Ok(None);
        };
        let service_id: Option<ServiceId> = sqlx::query_scalar(
            "select service_id from online_booking where practice_id = $1 and appointment_id = $2",
        )
        .bind(practice)
        .bind(self.appointment)
        .fetch_optional(self.inner.conn())
        .await?;
        let settings = read_settings(self.inner.conn(), practice).await?;
        let service = match service_id {
            Some(id) => read_services(self.inner.conn(), practice, false)
                .await?
                .into_iter()
                .find(|s| s.service_id == id),
            None => None,
        };
        let (practice_name, tz): (String, Option<String>) = sqlx::query_as(
            "select name, settings ->> 'time_zone' from practice where practice_id = $1",
        )
        .bind(practice)
        .fetch_one(self.inner.conn())
        .await?;
        Ok(Some(ManagedAppointment {
            practice_name,
            tz: tz.and_then(|n| n.parse().ok()).unwrap_or(chrono_tz::UTC),
            starts_at,
            ends_at,
            status,
            service,
            client_confirmed_at,
            cancellation: settings.cancellation,
        }))
    }

    /// Free slots of the appointment's service to move to (`None` when it was not booked
    /// online or cannot be changed).
    pub async fn availability(
        &mut self,
        from: NaiveDate,
        days: u32,
    ) -> Result<Option<(Tz, Vec<Slot>)>, StoreError> {
        let now = self.now();
        let Some(a) = self.appointment().await? else {
            return Ok(None);
        };
        let (true, Some(service)) = (a.changeable(now), a.service.as_ref()) else {
            return Ok(None);
        };
        let practice = self.inner.practice();
        let settings = read_settings(self.inner.conn(), practice).await?;
        let q = query(&settings, service, a.tz, now, from, days);
        let (lo, hi) = (
            now - Duration::days(1),
            now + Duration::days(i64::from(settings.max_days_ahead) + 2),
        );
        let weeks = weeks(self.inner.conn(), practice, service, lo, hi).await?;
        Ok(Some((a.tz, q.slots(&weeks))))
    }

    async fn audit(&mut self, change: &str, late: Option<bool>) -> Result<(), StoreError> {
        let mut e = NewEvent::new(self.now(), AuditAction::BookingManage);
        e.object = Some(AuditObject::appointment(self.appointment));
        e.patient = Some(self.link.patient);
        e.request = Some(self.request);
        let mut d = serde_json::json!({ "change": change });
        if let (Some(late), Some(m)) = (late, d.as_object_mut()) {
            m.insert("late".into(), late.into());
        }
        e.details = Some(d);
        self.inner.append(&[e]).await.map(|_| ())
    }

    /// Confirms the appointment (`client_confirmed_at`); audited `booking.manage`.
    pub async fn confirm(&mut self) -> Result<ManageOutcome, StoreError> {
        let now = self.now();
        match self.appointment().await? {
            Some(a) if a.changeable(now) => {}
            _ => return Ok(ManageOutcome::Refused(BookingRefused::SlotTaken)),
        }
        let practice = self.inner.practice();
        sqlx::query(
            "update appointment set client_confirmed_at = $3, updated_at = $3
              where practice_id = $1 and appointment_id = $2",
        )
        .bind(practice)
        .bind(self.appointment)
        .bind(now)
        .execute(self.inner.conn())
        .await?;
        sqlx::query(
            "update online_booking set client_confirmed_at = $3, updated_at = $3
              where practice_id = $1 and appointment_id = $2",
        )
        .bind(practice)
        .bind(self.appointment)
        .bind(now)
        .execute(self.inner.conn())
        .await?;
        self.audit("confirm", None).await?;
        Ok(ManageOutcome::Confirmed)
    }

    /// Cancels the appointment: inside the practice's cancellation window it is recorded as a
    /// late cancellation (`appointment.client_cancelled_late`, `online_booking.late_cancel`)
    /// and its fee queued; outside it, what the booking paid is queued for a refund; the link
    /// is used up; audited `booking.manage` with `late`. The freed slot is offered to
    /// the waitlist in the same transaction ([`crate::waitlist`]).
    pub async fn cancel(&mut self, keyring: &Keyring) -> Result<ManageOutcome, StoreError> {
        let now = self.now();
        let late = match self.appointment().await? {
            Some(a) if a.changeable(now) => a.cancel_is_late(now),
            _ => return Ok(ManageOutcome::Refused(BookingRefused::SlotTaken)),
        };
        let practice = self.inner.practice();
        sqlx::query(
            "update appointment set status = 'cancelled', client_cancelled_late = $3,
                    client_cancelled_at = $4, updated_at = $4
              where practice_id = $1 and appointment_id = $2",
        )
        .bind(practice)
        .bind(self.appointment)
        .bind(late)
        .bind(now)
        .execute(self.inner.conn())
        .await?;
        sqlx::query(
            "update online_booking set status = 'cancelled', cancelled_at = $3, late_cancel = $4,
                    updated_at = $3
              where practice_id = $1 and appointment_id = $2",
        )
        .bind(practice)
        .bind(self.appointment)
        .bind(now)
        .bind(late)
        .execute(self.inner.conn())
        .await?;
        self.queue_fee_or_refund(late, now).await?;
        crate::links::mark_used(self.inner.conn(), practice, self.link.link, now).await?;
        self.audit("cancel", Some(late)).await?;
        let appointment = self.appointment;
        crate::waitlist::offer_freed_slot(self, keyring, appointment, None).await?;
        Ok(ManageOutcome::Cancelled { late })
    }

    /// What a cancellation owes or is owed, queued for the payments job against the online
    /// booking of this appointment: inside the window, the practice's late-cancellation fee
    /// (when it has one; charged off session with the card saved at booking); outside it, the
    /// refund of what the booking paid (a deposit or prepayment), if anything.
    async fn queue_fee_or_refund(
        &mut self,
        late: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let practice = self.inner.practice();
        let settings = read_settings(self.inner.conn(), practice).await?;
        let booking: Option<BookingId> = sqlx::query_scalar(
            "select booking_id from online_booking where practice_id = $1 and appointment_id = $2",
        )
        .bind(practice)
        .bind(self.appointment)
        .fetch_optional(self.inner.conn())
        .await?;
        let Some(booking) = booking else {
            return Ok(());
        };
        let fee = settings.cancellation.late_cancel_fee_minor;
        if late && fee > 0 {
            crate::payments::record_fee(
                self.inner.conn(),
                practice,
                booking,
                self.link.patient,
                crate::payments::PaymentKind::LateCancelFee,
                fee,
                &settings.currency,
                now,
            )
            .await?;
        } else if !late {
            crate::payments::queue_refund(
                self.inner.conn(),
                practice,
                booking,
                self.link.patient,
                &settings.currency,
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// Moves the appointment to `starts_at` of the same service, through the same slot claim
    /// as booking ([`claim_slot`]: never double-booked); audited `booking.manage`.
    pub async fn reschedule(
        &mut self,
        starts_at: DateTime<Utc>,
    ) -> Result<ManageOutcome, StoreError> {
        let now = self.now();
        let Some(a) = self.appointment().await? else {
            return Ok(ManageOutcome::Refused(BookingRefused::NoService));
        };
        let (true, Some(service)) = (a.changeable(now), a.service.clone()) else {
            return Ok(ManageOutcome::Refused(BookingRefused::NoService));
        };
        let practice = self.inner.practice();
        let settings = read_settings(self.inner.conn(), practice).await?;
        let Some(slot) = claim_slot(
            self.inner.conn(),
            practice,
            &settings,
            &service,
            a.tz,
            now,
            starts_at,
        )
        .await?
        else {
            return Ok(ManageOutcome::Refused(BookingRefused::SlotTaken));
        };
        sqlx::query(
            "update appointment set starts_at = $3, ends_at = $4, clinician_id = $5,
                    client_confirmed_at = null, updated_at = $6
              where practice_id = $1 and appointment_id = $2",
        )
        .bind(practice)
        .bind(self.appointment)
        .bind(slot.starts_at)
        .bind(slot.ends_at)
        .bind(slot.clinician)
        .bind(now)
        .execute(self.inner.conn())
        .await?;
        self.audit("reschedule", None).await?;
        Ok(ManageOutcome::Rescheduled(slot))
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.inner.commit().await
    }
}
