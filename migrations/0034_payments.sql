-- Payments for online bookings (issue 19, parts 1, 3 and 5): deposits, prepayment and a card
-- on file through Stripe, which never sees PHI.
--
-- A booking of a service whose policy asks for a payment is *held*: its appointment claims the
-- slot with status `held`, its booking row is `held`, and one `booking_payment` row records
-- what is due, until when (`hold_expires_at`), and the booking status it becomes once paid
-- (`then_status`: `booked`, or `requested` where new clients wait for approval). The client
-- pays on Stripe Checkout, created with typed fields only (amount, currency, this row's id as
-- the opaque reference, a fixed description); the verified `Stripe-Signature` webhook settles
-- the row (the owner role, in the practice the reference names). A hold not paid in time is
-- released by a job (appointment and booking cancelled/expired: the slot is free again).
--
-- The row holds ids, states, amounts and Stripe's own ids; nothing about the client or the
-- visit. The client's return page (`/pay/{token}`) is a client link of purpose `booking_pay`
-- whose subject is the payment row.

-- A held appointment claims its slot (the busy-time function counts every status but
-- cancelled and no_show).
alter table appointment drop constraint appointment_status_check;
alter table appointment add constraint appointment_status_check
    check (status in ('held', 'requested', 'booked', 'arrived', 'completed', 'cancelled', 'no_show'));
drop policy appointment_online_booking on appointment;
create policy appointment_online_booking on appointment for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['online_booking']
                and status in ('held', 'requested', 'booked'));

alter table online_booking drop constraint online_booking_status;
alter table online_booking add constraint online_booking_status
    check (status in ('held', 'expired', 'requested', 'booked', 'declined', 'cancelled'));
alter table online_booking drop constraint online_booking_payment;
alter table online_booking add constraint online_booking_payment
    check (payment in ('none', 'pending', 'paid', 'card_on_file', 'failed', 'expired', 'refunded'));
drop policy online_booking_public on online_booking;
create policy online_booking_public on online_booking for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['online_booking']
                and status in ('held', 'requested', 'booked'));

-- The return page's link.
alter table client_link drop constraint client_link_purpose;
alter table client_link add constraint client_link_purpose
    check (purpose in ('intake', 'booking_manage', 'offer', 'booking_pay'));
drop policy client_link_online_booking on client_link;
create policy client_link_online_booking on client_link for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['online_booking']
                and purpose in ('booking_manage', 'booking_pay'));

create table booking_payment (
    practice_id uuid not null references practice (practice_id),
    -- The opaque reference Stripe is given (`client_reference_id`, `metadata[ref]`).
    payment_id uuid not null,
    booking_id uuid not null,
    -- The booking's client (the retention job purges a patient's payments with them).
    patient_id uuid not null,
    kind text not null
        constraint booking_payment_kind check (kind in ('deposit', 'prepay', 'card_on_file', 'late_cancel_fee', 'no_show_fee')),
    -- pending: waiting for the client; paid / card_saved: settled by a verified webhook;
    -- failed / expired: the hold was released; paid_after_release: the money arrived after the
    -- hold was released (the practice refunds it); recorded: a fee noted, not charged.
    state text not null
        constraint booking_payment_state check (state in ('pending', 'paid', 'card_saved', 'failed', 'expired', 'paid_after_release', 'recorded')),
    amount_minor int4 not null default 0
        constraint booking_payment_amount check (amount_minor between 0 and 1000000),
    currency text not null constraint booking_payment_currency check (currency ~ '^[a-z]{3}$'),
    then_status text constraint booking_payment_then check (then_status in ('booked', 'requested')),
    hold_expires_at timestamptz,
    -- Stripe's own ids, as its webhooks name them.
    stripe_session text constraint booking_payment_session check (stripe_session ~ '^cs_[A-Za-z0-9_]{1,250}$'),
    stripe_payment_intent text constraint booking_payment_pi check (stripe_payment_intent ~ '^pi_[A-Za-z0-9_]{1,250}$'),
    stripe_setup_intent text constraint booking_payment_seti check (stripe_setup_intent ~ '^seti_[A-Za-z0-9_]{1,250}$'),
    stripe_customer text constraint booking_payment_customer check (stripe_customer ~ '^cus_[A-Za-z0-9_]{1,250}$'),
    stripe_payment_method text constraint booking_payment_pm check (stripe_payment_method ~ '^pm_[A-Za-z0-9_]{1,250}$'),
    received_minor int4,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    settled_at timestamptz,
    primary key (practice_id, payment_id),
    constraint booking_payment_booking_fkey foreign key (practice_id, booking_id)
        references online_booking (practice_id, booking_id),
    constraint booking_payment_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id),
    constraint booking_payment_hold check ((state = 'pending') <= (hold_expires_at is not null))
);
create index booking_payment_booking_idx on booking_payment (practice_id, booking_id);
create index booking_payment_patient_idx on booking_payment (practice_id, patient_id);
create index booking_payment_due_idx on booking_payment (practice_id, hold_expires_at)
    where state = 'pending';
-- The webhook's lookup by reference, across practices by nature (only the owner role's
-- `owner_payment_lookup` reads it); non-unique so it need not lead with the distribution column.
create index booking_payment_ref_idx on booking_payment (payment_id);

alter table booking_payment enable row level security;
alter table booking_payment force row level security;

-- Staff who see online bookings see their payments.
create policy booking_payment_scheduling on booking_payment for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception']);
-- The public page inserts the payment of the booking it holds, pending only.
create policy booking_payment_public on booking_payment for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['online_booking']
                and state = 'pending');
-- The return page's holder reads its own payment only.
create policy booking_payment_holder on booking_payment for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
           and payment_id in (select l.subject_id from client_link l
                               where l.practice_id = booking_payment.practice_id
                                 and l.link_id = (select app.link())
                                 and l.purpose = 'booking_pay'));
-- A manage link's holder who cancels inside the window records the late-cancellation fee of
-- their own booking (recorded, not charged: charging a saved card off session is the
-- practice's decision).
create policy booking_payment_holder_fee on booking_payment for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
                and state = 'recorded' and kind = 'late_cancel_fee'
                and booking_id in (select b.booking_id from online_booking b
                                    where b.practice_id = booking_payment.practice_id
                                      and b.patient_id = (select app.link_patient())));
create policy owner_all on booking_payment for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
-- The webhook's lookup of a reference's practice (owner role, keyed by the setting the
-- lookup sets and clears in its own transaction).
create policy owner_payment_lookup on booking_payment for select to chartroom_owner
    using (payment_id = nullif(current_setting('chartroom.payment_ref', true), '')::uuid);

grant select, insert on booking_payment to chartroom_runtime;
