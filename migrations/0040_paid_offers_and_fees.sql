-- Issue 19: paid waitlist offers, and fees and refunds charged through Stripe.
--
-- 1. A waitlist offer of a paid service is held until paid: accepting an offer for a
-- service whose policy asks for a deposit, a prepayment or a card on file goes through the
-- same hold and Checkout as a booking on the public page (0034), never straight to `booked`.
--
-- The offer link's holder (`client_link` pseudo-role, link purpose `offer`) may therefore
-- insert, for its own patient only: a `held` appointment and booking, the `pending` payment
-- row of that booking, and the return page's `booking_pay` link.

drop policy appointment_offer_holder on appointment;
create policy appointment_offer_holder on appointment for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
                and patient_id = (select app.link_patient()) and status in ('booked', 'held')
                and exists (select 1 from client_link l
                             where l.practice_id = appointment.practice_id
                               and l.link_id = (select app.link()) and l.purpose = 'offer'));

drop policy online_booking_offer_holder on online_booking;
create policy online_booking_offer_holder on online_booking for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
                and patient_id = (select app.link_patient()) and status in ('booked', 'held')
                and exists (select 1 from client_link l
                             where l.practice_id = online_booking.practice_id
                               and l.link_id = (select app.link()) and l.purpose = 'offer'));

drop policy client_link_offer_holder on client_link;
create policy client_link_offer_holder on client_link for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
                and purpose in ('booking_manage', 'booking_pay') and patient_id = (select app.link_patient()));

create policy booking_payment_offer_holder on booking_payment for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
                and state = 'pending' and patient_id = (select app.link_patient())
                and exists (select 1 from client_link l
                             where l.practice_id = booking_payment.practice_id
                               and l.link_id = (select app.link()) and l.purpose = 'offer')
                and booking_id in (select b.booking_id from online_booking b
                                    where b.practice_id = booking_payment.practice_id
                                      and b.patient_id = (select app.link_patient())
                                      and b.status = 'held'));

-- 2. Late-cancellation and no-show fees are charged off session with the card saved at
-- booking, and a deposit or prepayment is refunded when the client cancels outside the
-- cancellation window. Each is a `booking_payment` row queued `due` in the transaction of its
-- cause (the manage link's cancellation, staff marking a no-show) and worked by the payments
-- job (the owner role) with the row's id as Stripe's idempotency key: `paid` (a fee charged),
-- `processing`, `requires_action` (the bank wants the client: not retried), `declined`,
-- `refund_pending`, `refunded`, `recorded` (no card on file: noted, not charged), or `failed`
-- after the last attempt. `last_error` says why, in a closed vocabulary; the processor's
-- webhooks settle what was left in flight.
alter table booking_payment drop constraint booking_payment_kind;
alter table booking_payment add constraint booking_payment_kind
    check (kind in ('deposit', 'prepay', 'card_on_file', 'late_cancel_fee', 'no_show_fee', 'refund'));
alter table booking_payment drop constraint booking_payment_state;
alter table booking_payment add constraint booking_payment_state
    check (state in ('pending', 'paid', 'card_saved', 'failed', 'expired', 'paid_after_release', 'recorded',
                     'due', 'processing', 'requires_action', 'declined', 'refund_pending', 'refunded'));
alter table booking_payment
    add column attempts int4 not null default 0
        constraint booking_payment_attempts check (attempts between 0 and 100),
    add column next_attempt_at timestamptz,
    add column last_error text
        constraint booking_payment_last_error check (last_error in ('card_declined', 'requires_action',
            'no_card', 'nothing_paid', 'processor_unavailable', 'processor_rejected', 'scanner_refused')),
    add column stripe_refund text
        constraint booking_payment_refund check (stripe_refund ~ '^re_[A-Za-z0-9_]{1,250}$'),
    add constraint booking_payment_due check ((state = 'due') <= (next_attempt_at is not null)),
    add constraint booking_payment_queued check (state <> 'due' or kind in ('late_cancel_fee', 'no_show_fee', 'refund'));
create index booking_payment_work_idx on booking_payment (practice_id, next_attempt_at)
    where state = 'due';

-- The manage link's holder queues, for its own booking only, the late-cancellation fee or the
-- refund of what it paid (nothing else, and `due` only).
drop policy booking_payment_holder_fee on booking_payment;
create policy booking_payment_holder_fee on booking_payment for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
                and state = 'due' and kind in ('late_cancel_fee', 'refund')
                and booking_id in (select b.booking_id from online_booking b
                                    where b.practice_id = booking_payment.practice_id
                                      and b.patient_id = (select app.link_patient())));
-- Staff who mark an appointment a no-show queue its fee.
create policy booking_payment_no_show on booking_payment for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception']
                and state = 'due' and kind = 'no_show_fee');

-- `charge.refunded` names the refunded charge's PaymentIntent, not our reference: the
-- webhook's lookup of its practice (owner role, keyed by the setting the lookup sets and
-- clears in its own transaction), as `owner_payment_lookup` does for references.
create index booking_payment_intent_idx on booking_payment (stripe_payment_intent)
    where stripe_payment_intent is not null;
create policy owner_payment_intent_lookup on booking_payment for select to chartroom_owner
    using (stripe_payment_intent = nullif(current_setting('chartroom.payment_intent', true), ''));
