-- The booking waitlist (issue 19): clients waiting for a time of a service; when an
-- appointment is cancelled, the freed slot is offered to several of them at once, and the
-- first to accept books it.
--
-- An entry names a patient, a service, optionally a preferred clinician, and the window of
-- start times the client accepts. Reception, owners and admins add, list and remove entries.
--
-- The cancellation that frees a slot (staff, or the client through a manage link) offers it in
-- the same transaction: it passes through `app.enter_waitlist_release(appointment)`, which
-- admits only a cancelled appointment of the entered practice (the manage link's own one for a
-- link holder) and gives the transaction, until `app.leave_waitlist_release()`, the
-- `waitlist_release` pseudo-role that no member holds. That role reads the waiting entries and
-- their patients (to address the offers), inserts offers and their `offer` client links, and
-- queues the `waitlist_offer` messages; nothing else.
--
-- The offer link's holder (`client_link` entered with purpose `offer`) reads its own offer,
-- and accepting it books the slot through the same slot claim as online booking: it inserts
-- its own patient's appointment and online booking and that booking's manage link, and
-- queues the confirmation. No column here is PHI in the clear (ids, times, states).

alter table booking_settings add column waitlist_offers int4 not null default 3
    constraint booking_settings_waitlist_offers check (waitlist_offers between 1 and 10);

alter table client_link drop constraint client_link_purpose;
alter table client_link add constraint client_link_purpose
    check (purpose in ('intake', 'booking_manage', 'offer'));

create table waitlist_entry (
    practice_id uuid not null references practice (practice_id),
    entry_id uuid not null,
    patient_id uuid not null,
    service_id uuid not null,
    -- The preferred clinician (null: any who offers the service).
    clinician_id uuid references app_user (user_id),
    -- The start times the client accepts.
    earliest timestamptz not null,
    latest timestamptz not null,
    state text not null constraint waitlist_entry_state check (state in ('waiting', 'booked', 'removed')),
    booked_appointment_id uuid,
    created_by uuid references app_user (user_id),
    created_at timestamptz not null,
    updated_at timestamptz not null,
    primary key (practice_id, entry_id),
    constraint waitlist_entry_window check (earliest < latest),
    constraint waitlist_entry_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id) on delete cascade,
    constraint waitlist_entry_service_fkey foreign key (practice_id, service_id)
        references booking_service (practice_id, service_id)
);
create index waitlist_entry_state_idx on waitlist_entry (practice_id, state, created_at);
create index waitlist_entry_patient_idx on waitlist_entry (practice_id, patient_id);

create table waitlist_offer (
    practice_id uuid not null references practice (practice_id),
    offer_id uuid not null,
    entry_id uuid not null,
    patient_id uuid not null,
    service_id uuid not null,
    clinician_id uuid not null references app_user (user_id),
    -- The cancelled appointment that freed the slot.
    freed_appointment_id uuid not null,
    starts_at timestamptz not null,
    ends_at timestamptz not null,
    link_id uuid not null,
    state text not null constraint waitlist_offer_state check (state in ('open', 'accepted', 'taken')),
    booked_appointment_id uuid,
    created_at timestamptz not null,
    expires_at timestamptz not null,
    closed_at timestamptz,
    primary key (practice_id, offer_id),
    constraint waitlist_offer_times check (starts_at < ends_at and created_at < expires_at),
    constraint waitlist_offer_entry_fkey foreign key (practice_id, entry_id)
        references waitlist_entry (practice_id, entry_id) on delete cascade,
    constraint waitlist_offer_link_fkey foreign key (practice_id, link_id)
        references client_link (practice_id, link_id) on delete cascade
);
create index waitlist_offer_entry_idx on waitlist_offer (practice_id, entry_id);
create index waitlist_offer_freed_idx on waitlist_offer (practice_id, freed_appointment_id);
create unique index waitlist_offer_link_idx on waitlist_offer (practice_id, link_id);

alter table waitlist_entry enable row level security;
alter table waitlist_entry force row level security;
alter table waitlist_offer enable row level security;
alter table waitlist_offer force row level security;

-- Staff: reception, owners and admins keep the waitlist and see its offers.
create policy waitlist_entry_staff on waitlist_entry for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['reception', 'owner', 'admin'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['reception', 'owner', 'admin']);
create policy waitlist_offer_staff on waitlist_offer for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['reception', 'owner', 'admin']);

-- The cancellation's release: reads waiting entries, inserts offers.
create policy waitlist_entry_release on waitlist_entry for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['waitlist_release']
           and state = 'waiting');
create policy waitlist_offer_release on waitlist_offer for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['waitlist_release']
                and state = 'open');
create policy client_link_release on client_link for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['waitlist_release']
                and purpose = 'offer');
create policy patient_waitlist_release on patient for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['waitlist_release']
           and deleted_at is null
           and patient_id in (select w.patient_id from waitlist_entry w
                               where w.practice_id = patient.practice_id and w.state = 'waiting'));

-- The offer link's holder: its own offer and entry; booking for its own patient.
create policy waitlist_offer_holder on waitlist_offer for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
           and link_id = (select app.link()));
create policy waitlist_offer_holder_close on waitlist_offer for update to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
           and link_id = (select app.link()) and state = 'open')
    with check (practice_id = (select app.practice()) and link_id = (select app.link()));
create policy waitlist_entry_holder on waitlist_entry for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
           and patient_id = (select app.link_patient())
           and entry_id in (select o.entry_id from waitlist_offer o
                             where o.practice_id = waitlist_entry.practice_id and o.link_id = (select app.link())));
create policy waitlist_entry_holder_book on waitlist_entry for update to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
           and patient_id = (select app.link_patient())
           and entry_id in (select o.entry_id from waitlist_offer o
                             where o.practice_id = waitlist_entry.practice_id and o.link_id = (select app.link())))
    with check (practice_id = (select app.practice()) and patient_id = (select app.link_patient()));
create policy appointment_offer_holder on appointment for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
                and patient_id = (select app.link_patient()) and status = 'booked'
                and exists (select 1 from client_link l
                             where l.practice_id = appointment.practice_id
                               and l.link_id = (select app.link()) and l.purpose = 'offer'));
create policy online_booking_offer_holder on online_booking for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
                and patient_id = (select app.link_patient()) and status = 'booked'
                and exists (select 1 from client_link l
                             where l.practice_id = online_booking.practice_id
                               and l.link_id = (select app.link()) and l.purpose = 'offer'));
create policy client_link_offer_holder on client_link for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['client_link']
                and purpose = 'booking_manage' and patient_id = (select app.link_patient()));

create policy owner_all on waitlist_entry for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on waitlist_offer for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));

grant select, insert on waitlist_entry to chartroom_runtime;
grant update (state, booked_appointment_id, updated_at) on waitlist_entry to chartroom_runtime;
grant select, insert on waitlist_offer to chartroom_runtime;
grant update (state, booked_appointment_id, closed_at) on waitlist_offer to chartroom_runtime;

-- The release's entry: admits a cancelled appointment of the entered practice (for a manage
-- link's holder, only the link's own appointment) and gives the transaction the
-- `waitlist_release` pseudo-role, keeping the caller's roles to give back. SECURITY DEFINER
-- because a link holder cannot read its link's purpose row by row through other policies.
create function app.enter_waitlist_release(p_appointment uuid) returns boolean
    language plpgsql volatile security definer
    set search_path = pg_catalog, public
    as $$
    begin
        if app.practice() is null or not (app.actor_roles()
                && array['clinician', 'reception', 'owner', 'admin', 'client_link']) then
            return false;
        end if;
        if not exists (select 1 from public.appointment a
                        where a.practice_id = app.practice() and a.appointment_id = p_appointment
                          and a.status = 'cancelled') then
            return false;
        end if;
        if app.actor_roles() && array['client_link'] and not exists (
                select 1 from public.client_link l
                 where l.practice_id = app.practice() and l.link_id = app.link()
                   and l.purpose = 'booking_manage' and l.subject_id = p_appointment) then
            return false;
        end if;
        perform set_config('chartroom.saved_roles', current_setting('chartroom.roles', true), true);
        perform set_config('chartroom.roles', '{waitlist_release}', true);
        return true;
    end
    $$;
alter function app.enter_waitlist_release(uuid) owner to chartroom_owner;
revoke all on function app.enter_waitlist_release(uuid) from public;
grant execute on function app.enter_waitlist_release(uuid) to chartroom_runtime;

-- Gives the caller's roles back after the release.
create function app.leave_waitlist_release() returns void
    language plpgsql volatile
    set search_path = pg_catalog, public
    as $$
    begin
        if app.actor_roles() && array['waitlist_release'] then
            perform set_config('chartroom.roles', coalesce(current_setting('chartroom.saved_roles', true), ''), true);
            perform set_config('chartroom.saved_roles', '', true);
        end if;
    end
    $$;
revoke all on function app.leave_waitlist_release() from public;
grant execute on function app.leave_waitlist_release() to chartroom_runtime;

-- The release queues offers, and an offer's holder queues its booking's confirmation.
create or replace function app.outbox_enqueue(
    p_message uuid, p_patient uuid, p_template text, p_channel text, p_cause text,
    p_cause_id uuid, p_recipient bytea, p_slots bytea, p_time_zone text,
    p_next_attempt_at timestamptz, p_key uuid, p_now timestamptz) returns boolean
    language plpgsql volatile security definer
    set search_path = pg_catalog, public
    as $$
    declare
        n int;
    begin
        if app.practice() is null or not (app.actor_roles()
                && array['owner', 'admin', 'reception', 'clinician', 'online_booking',
                         'waitlist_release', 'client_link']) then
            raise exception 'outbox: no practice entered, or a role that cannot queue messages'
                using errcode = '42501';
        end if;
        if app.actor_roles() && array['client_link'] and not (p_template = 'booking_confirmed'
                and p_patient = app.link_patient()) then
            raise exception 'outbox: a link holder queues only its own booking confirmation'
                using errcode = '42501';
        end if;
        if app.actor_roles() && array['waitlist_release'] and p_template <> 'waitlist_offer' then
            raise exception 'outbox: the waitlist release queues only offers'
                using errcode = '42501';
        end if;
        insert into public.outbox_message (practice_id, message_id, patient_id, template, channel,
                cause, cause_id, recipient_enc, slots_enc, time_zone, status, attempts,
                next_attempt_at, idempotency_key, created_at, updated_at)
        values (app.practice(), p_message, p_patient, p_template, p_channel, p_cause, p_cause_id,
                p_recipient, p_slots, p_time_zone, 'queued', 0, p_next_attempt_at, p_key, p_now, p_now)
        on conflict (practice_id, cause, cause_id, template, channel) do nothing;
        get diagnostics n = row_count;
        return n = 1;
    end
    $$;
