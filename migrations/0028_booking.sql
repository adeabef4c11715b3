-- Online booking (issue 19): a practice's bookable services, its clinicians' weekly hours,
-- its booking rules, and the bookings clients make on its public page.
--
-- The public page has no session. It enters a practice through `app.enter_online_booking`,
-- which admits only a practice whose online booking is switched on and gives the transaction
-- one pseudo-role, `online_booking`, that no member ever holds (roles are a closed set of
-- member roles, so it cannot be granted). The policies below give that role what booking
-- needs and nothing more: read the catalogue and the hours, learn busy times without learning
-- who is booked (`app.online_booking_busy`), and insert a patient, an appointment and an
-- online booking. It cannot read or change any existing patient or appointment.
--
-- Nothing here is PHI in the clear: services and hours are the practice's public catalogue;
-- the booking row holds ids, states, times and amounts.

create table booking_settings (
    practice_id uuid not null references practice (practice_id),
    enabled boolean not null default false,
    -- Whether new clients' online bookings are made at once or held as requests until the
    -- practice approves them (existing clients, matched by phone and date of birth, book at once).
    new_clients text not null default 'approval'
        constraint booking_settings_new_clients check (new_clients in ('allowed', 'approval')),
    min_notice_minutes int4 not null default 120
        constraint booking_settings_min_notice check (min_notice_minutes between 0 and 20160),
    max_days_ahead int4 not null default 60
        constraint booking_settings_max_days check (max_days_ahead between 1 and 365),
    step_minutes int4 not null default 15
        constraint booking_settings_step check (step_minutes in (5, 10, 15, 20, 30, 60)),
    cancel_window_hours int4 not null default 24
        constraint booking_settings_window check (cancel_window_hours between 0 and 168),
    late_cancel_fee_minor int4 not null default 0
        constraint booking_settings_late_fee check (late_cancel_fee_minor between 0 and 100000),
    no_show_fee_minor int4 not null default 0
        constraint booking_settings_no_show_fee check (no_show_fee_minor between 0 and 100000),
    currency text not null default 'usd'
        constraint booking_settings_currency check (currency in ('usd', 'cad', 'eur', 'gbp', 'aud', 'nzd')),
    updated_by uuid references app_user (user_id),
    updated_at timestamptz not null,
    primary key (practice_id)
);

create table booking_service (
    practice_id uuid not null references practice (practice_id),
    service_id uuid not null,
    -- The practice's public catalogue name ("Cleaning", "60-minute massage"): not PHI.
    name text not null constraint booking_service_name check (length(name) between 1 and 80),
    duration_minutes int4 not null
        constraint booking_service_duration check (duration_minutes between 5 and 480),
    payment text not null default 'none'
        constraint booking_service_payment check (payment in ('none', 'deposit', 'prepay', 'card_on_file')),
    amount_minor int4 not null default 0
        constraint booking_service_amount check (amount_minor between 0 and 1000000),
    active boolean not null default true,
    position int4 not null default 0,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    primary key (practice_id, service_id),
    constraint booking_service_amount_needed
        check ((payment in ('deposit', 'prepay')) = (amount_minor > 0))
);

-- Which clinicians offer a service.
create table booking_service_clinician (
    practice_id uuid not null,
    service_id uuid not null,
    clinician_id uuid not null references app_user (user_id),
    primary key (practice_id, service_id, clinician_id),
    constraint booking_service_clinician_service_fkey foreign key (practice_id, service_id)
        references booking_service (practice_id, service_id) on delete cascade
);

-- A clinician's weekly openings in the practice's local time (ISO weekday 1 = Monday).
create table clinician_hours (
    practice_id uuid not null references practice (practice_id),
    clinician_id uuid not null references app_user (user_id),
    weekday int2 not null constraint clinician_hours_weekday check (weekday between 1 and 7),
    opens time not null,
    closes time not null,
    primary key (practice_id, clinician_id, weekday, opens),
    constraint clinician_hours_order check (opens < closes)
);

-- Appointments made online may wait for the practice's approval.
alter table appointment drop constraint appointment_status_check;
alter table appointment add constraint appointment_status_check
    check (status in ('requested', 'booked', 'arrived', 'completed', 'cancelled', 'no_show'));

create table online_booking (
    practice_id uuid not null references practice (practice_id),
    booking_id uuid not null,
    appointment_id uuid not null,
    service_id uuid not null,
    patient_id uuid not null,
    client_kind text not null constraint online_booking_client_kind check (client_kind in ('new', 'existing')),
    status text not null
        constraint online_booking_status check (status in ('requested', 'booked', 'declined', 'cancelled')),
    payment text not null default 'none'
        constraint online_booking_payment check (payment in ('none', 'pending', 'paid', 'card_on_file', 'failed', 'refunded')),
    amount_minor int4 not null default 0,
    client_confirmed_at timestamptz,
    cancelled_at timestamptz,
    late_cancel boolean not null default false,
    decided_by uuid references app_user (user_id),
    created_at timestamptz not null,
    updated_at timestamptz not null,
    primary key (practice_id, booking_id),
    constraint online_booking_appointment_fkey foreign key (practice_id, appointment_id)
        references appointment (practice_id, appointment_id),
    constraint online_booking_service_fkey foreign key (practice_id, service_id)
        references booking_service (practice_id, service_id),
    constraint online_booking_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id)
);
create unique index online_booking_appointment_idx on online_booking (practice_id, appointment_id);
create index online_booking_status_idx on online_booking (practice_id, status, created_at);

alter table booking_settings enable row level security;
alter table booking_settings force row level security;
alter table booking_service enable row level security;
alter table booking_service force row level security;
alter table booking_service_clinician enable row level security;
alter table booking_service_clinician force row level security;
alter table clinician_hours enable row level security;
alter table clinician_hours force row level security;
alter table online_booking enable row level security;
alter table online_booking force row level security;

-- The catalogue, the rules and the hours: every member and the public page read them;
-- owners and admins change them.
create policy booking_settings_read on booking_settings for select to chartroom_runtime
    using (practice_id = (select app.practice()));
create policy booking_settings_manage on booking_settings for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);
create policy booking_service_read on booking_service for select to chartroom_runtime
    using (practice_id = (select app.practice()));
create policy booking_service_manage on booking_service for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);
create policy booking_service_clinician_read on booking_service_clinician for select to chartroom_runtime
    using (practice_id = (select app.practice()));
create policy booking_service_clinician_manage on booking_service_clinician for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);
create policy clinician_hours_read on clinician_hours for select to chartroom_runtime
    using (practice_id = (select app.practice()));
create policy clinician_hours_manage on clinician_hours for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);

-- Bookings: the scheduling roles see and decide them; the public page only inserts.
create policy online_booking_scheduling on online_booking for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception']);
create policy online_booking_public on online_booking for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['online_booking']
                and status in ('requested', 'booked'));

-- The public page inserts a new client and their appointment, never reads or changes others.
create policy patient_online_booking on patient for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['online_booking']);
create policy patient_search_token_online_booking on patient_search_token for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['online_booking']);
create policy appointment_online_booking on appointment for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['online_booking']
                and status in ('requested', 'booked'));

create policy owner_all on booking_settings for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on booking_service for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on booking_service_clinician for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on clinician_hours for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on online_booking for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));

grant select, insert, update, delete on booking_settings, booking_service, booking_service_clinician,
    clinician_hours to chartroom_runtime;
grant select, insert on online_booking to chartroom_runtime;
grant update (status, payment, client_confirmed_at, cancelled_at, late_cancel, decided_by, updated_at)
    on online_booking to chartroom_runtime;

-- The public page's entry: admits `p_practice` only when its online booking is on, and gives
-- the transaction the `online_booking` pseudo-role and no actor. SECURITY DEFINER because it
-- must read `booking_settings`, which the runtime role reads only inside a practice it entered.
create function app.enter_online_booking(p_practice uuid) returns boolean
    language plpgsql volatile security definer
    set search_path = pg_catalog, public
    as $$
    begin
        -- The owner role's policy reads the entered practice only: enter, then check.
        perform set_config('chartroom.practice_id', p_practice::text, true);
        perform set_config('chartroom.actor_id', '', true);
        if not exists (select 1 from public.booking_settings s
                        where s.practice_id = p_practice and s.enabled) then
            perform set_config('chartroom.practice_id', '', true);
            perform set_config('chartroom.roles', '', true);
            return false;
        end if;
        perform set_config('chartroom.roles', '{online_booking}', true);
        return true;
    end
    $$;
alter function app.enter_online_booking(uuid) owner to chartroom_owner;
revoke all on function app.enter_online_booking(uuid) from public;
grant execute on function app.enter_online_booking(uuid) to chartroom_runtime;

-- Busy intervals of a clinician for the public page: times only, never who. SECURITY DEFINER
-- because the `online_booking` role may not read appointments; it answers only inside an
-- entered practice, for the online-booking or scheduling roles.
create function app.online_booking_busy(p_clinician uuid, p_from timestamptz, p_to timestamptz)
    returns table (starts_at timestamptz, ends_at timestamptz)
    language sql stable security definer
    set search_path = pg_catalog, public
    as $$
        select a.starts_at, a.ends_at from public.appointment a
         where a.practice_id = app.practice()
           and app.actor_roles() && array['online_booking', 'clinician', 'reception']
           and a.clinician_id = p_clinician
           and a.status not in ('cancelled', 'no_show')
           and a.starts_at < p_to and a.ends_at > p_from
    $$;
alter function app.online_booking_busy(uuid, timestamptz, timestamptz) owner to chartroom_owner;
revoke all on function app.online_booking_busy(uuid, timestamptz, timestamptz) from public;
grant execute on function app.online_booking_busy(uuid, timestamptz, timestamptz) to chartroom_runtime;

-- The existing client a public booking names, by phone number and date of birth: the one
-- patient whose phone tag and date-of-birth tag both match (under any key version), else
-- null. SECURITY DEFINER because the `online_booking` role reads no patient data; it answers
-- an id only, inside an entered practice, for that role.
create function app.online_booking_match(p_phone_tags bytea[], p_dob_tags bytea[]) returns uuid
    language sql stable security definer
    set search_path = pg_catalog, public
    as $$
        select case when count(*) = 1 then min(m.patient_id::text)::uuid end
          from (select distinct t1.patient_id
                  from public.patient_search_token t1
                  join public.patient_search_token t2
                    on t2.practice_id = t1.practice_id and t2.patient_id = t1.patient_id
                  join public.patient p
                    on p.practice_id = t1.practice_id and p.patient_id = t1.patient_id
                 where t1.practice_id = app.practice()
                   and app.actor_roles() && array['online_booking']
                   and p.deleted_at is null
                   and t1.kind = 3 and t1.tag = any (p_phone_tags)
                   and t2.kind = 2 and t2.tag = any (p_dob_tags)) m
    $$;
alter function app.online_booking_match(bytea[], bytea[]) owner to chartroom_owner;
revoke all on function app.online_booking_match(bytea[], bytea[]) from public;
grant execute on function app.online_booking_match(bytea[], bytea[]) to chartroom_runtime;
