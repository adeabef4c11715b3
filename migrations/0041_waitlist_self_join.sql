-- Issue 19: clients join the waitlist themselves from the public booking page, and leave it
-- through a link.
--
-- 1. The public page (`online_booking` pseudo-role, no actor) inserts a `waiting` entry for
-- the client it recognised (phone and date of birth) or recorded as new, marked
-- `self_joined` (and `new_client` when it was not recognised), with no `created_by`; it
-- makes the entry's `waitlist` link (to leave the waitlist) and queues the `waitlist_joined`
-- confirmation. It still reads no entry, no patient and no appointment.
--
-- 2. The `waitlist` link's holder (`client_link` entered with purpose `waitlist`) reads its
-- own entry and may move it from `waiting` to `removed`, nothing else.
--
-- 3. A new client who joined by themselves is under the practice's approved-only option as on
-- the public page: when the practice holds new clients' bookings for approval, their accepted
-- offer becomes a `requested` booking (reception approves it on the requests screen), so the
-- offer holder may insert a `requested` appointment and booking as well.
--
-- No column here is PHI in the clear (flags, states, ids).

alter table waitlist_entry
    add column self_joined boolean not null default false,
    add column new_client boolean not null default false,
    add constraint waitlist_entry_new_client check (self_joined or not new_client),
    add constraint waitlist_entry_self_joined check (not self_joined or created_by is null);

alter table client_link drop constraint client_link_purpose;
alter table client_link add constraint client_link_purpose
    check (purpose in ('intake', 'booking_manage', 'offer', 'booking_pay', 'waitlist'));

alter table outbox_message drop constraint outbox_message_template;
alter table outbox_message add constraint outbox_message_template check (template in (
    'booking_confirmed', 'booking_reminder', 'booking_rescheduled', 'booking_cancelled',
    'intake_request', 'waitlist_offer', 'payment_request', 'stop_confirmed',
    'start_confirmed', 'help', 'push_update', 'subprocessor_change', 'waitlist_joined'));

-- The public page: a self-joined waiting entry, and its `waitlist` link.
create policy waitlist_entry_public on waitlist_entry for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['online_booking']
                and state = 'waiting' and self_joined and created_by is null
                and booked_appointment_id is null);
drop policy client_link_online_booking on client_link;
create policy client_link_online_booking on client_link for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['online_booking']
                and purpose in ('booking_manage', 'booking_pay', 'waitlist'));

-- The `waitlist` link's holder: its own entry; leaving takes it off the waitlist.
create policy waitlist_entry_link_holder on waitlist_entry for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
           and patient_id = (select app.link_patient())
           and entry_id in (select l.subject_id from client_link l
                             where l.practice_id = waitlist_entry.practice_id
                               and l.link_id = (select app.link()) and l.purpose = 'waitlist'));
create policy waitlist_entry_link_holder_leave on waitlist_entry for update to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
           and patient_id = (select app.link_patient()) and state = 'waiting'
           and entry_id in (select l.subject_id from client_link l
                             where l.practice_id = waitlist_entry.practice_id
                               and l.link_id = (select app.link()) and l.purpose = 'waitlist'))
    with check (practice_id = (select app.practice()) and patient_id = (select app.link_patient())
                and state = 'removed');

-- An accepted offer of a self-joined new client may be a request under the approved-only
-- option.
drop policy appointment_offer_holder on appointment;
create policy appointment_offer_holder on appointment for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
                and patient_id = (select app.link_patient()) and status in ('booked', 'held', 'requested')
                and exists (select 1 from client_link l
                             where l.practice_id = appointment.practice_id
                               and l.link_id = (select app.link()) and l.purpose = 'offer'));
drop policy online_booking_offer_holder on online_booking;
create policy online_booking_offer_holder on online_booking for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
                and patient_id = (select app.link_patient()) and status in ('booked', 'held', 'requested')
                and exists (select 1 from client_link l
                             where l.practice_id = online_booking.practice_id
                               and l.link_id = (select app.link()) and l.purpose = 'offer'));
