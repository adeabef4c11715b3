-- Chartroom foundation: practices, users, sessions, memberships, patients, appointments, a
-- first clinical table, and the first layer of the audit log.
--
-- Runs as the owner role (chartroom_owner). Two other roles are involved:
--   chartroom_runtime  NOLOGIN group role holding every privilege the server has;
--   chartroom_app      the server's LOGIN role, a member of chartroom_runtime, owning nothing.
-- Rules (see design/ARCHITECTURE.md, "Database rules"):
--   * every tenant table has practice_id leading its primary key, foreign keys and indexes,
--     and ENABLE + FORCE ROW LEVEL SECURITY with policies keyed on the transaction-local
--     setting chartroom.practice_id (an unset tenant matches nothing);
--   * role scoping is enforced here too: policies read the actor's roles from membership;
--   * the audit table is INSERT + SELECT only for the runtime role, and triggers reject
--     UPDATE, DELETE and TRUNCATE for everyone.

do $$
begin
    if not exists (select from pg_roles where rolname = 'chartroom_runtime') then
        create role chartroom_runtime nologin nosuperuser nobypassrls;
    end if;
end
$$;

create schema app;
grant usage on schema app to chartroom_runtime;
grant usage on schema public to chartroom_runtime;

-- Context readers. Always used as `(select app.x())` in policies so PostgreSQL evaluates them
-- once per statement (an InitPlan), not once per row.
create function app.practice() returns uuid
    language sql stable parallel safe
    as $$ select nullif(current_setting('chartroom.practice_id', true), '')::uuid $$;

create function app.actor() returns uuid
    language sql stable parallel safe
    as $$ select nullif(current_setting('chartroom.actor_id', true), '')::uuid $$;

create function app.session_hash() returns bytea
    language sql stable parallel safe
    as $$ select decode(nullif(current_setting('chartroom.session_hash', true), ''), 'hex') $$;

create function app.lookup_email() returns text
    language sql stable parallel safe
    as $$ select nullif(current_setting('chartroom.lookup_email', true), '') $$;

create table practice (
    practice_id uuid primary key,
    name text not null check (length(name) between 1 and 200),
    settings jsonb not null default '{}'::jsonb check (jsonb_typeof(settings) = 'object'),
    created_at timestamptz not null default now()
);

create table app_user (
    user_id uuid primary key,
    email text not null check (length(email) between 3 and 254 and email = lower(email)),
    display_name text not null check (length(display_name) between 1 and 200),
    status text not null default 'active' check (status in ('active', 'deactivated')),
    created_at timestamptz not null default now()
);
-- An email names one active account; a deactivated account keeps its id forever and a new
-- account for the same email gets a new id (ids are never reused).
create unique index app_user_active_email_key on app_user (email) where status = 'active';

create table user_password (
    user_id uuid primary key references app_user (user_id),
    hash text not null check (hash like '$argon2id$%'),
    updated_at timestamptz not null default now()
);

create table session (
    token_hash bytea primary key check (length(token_hash) = 32),
    user_id uuid not null references app_user (user_id),
    created_at timestamptz not null,
    last_seen_at timestamptz not null,
    expires_at timestamptz not null,
    revoked_at timestamptz,
    check (expires_at > created_at)
);
create index session_user_idx on session (user_id);

create table membership (
    practice_id uuid not null references practice (practice_id),
    user_id uuid not null references app_user (user_id),
    roles text[] not null check (
        cardinality(roles) between 1 and 4
        and roles <@ array['owner', 'admin', 'clinician', 'reception']
    ),
    created_at timestamptz not null default now(),
    primary key (practice_id, user_id)
);

-- The actor's roles in the current practice, read from membership (whose own policy lets a
-- member see the practice's rows). Empty when the actor is not a member.
create function app.actor_roles() returns text[]
    language sql stable parallel safe
    as $$
        select coalesce(
            (select m.roles from public.membership m
              where m.practice_id = app.practice() and m.user_id = app.actor()),
            '{}'::text[])
    $$;

create table patient (
    practice_id uuid not null references practice (practice_id),
    patient_id uuid not null,
    given_name text not null,
    family_name text not null,
    date_of_birth date,
    phone text,
    email text,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    primary key (practice_id, patient_id)
);

create table appointment (
    practice_id uuid not null references practice (practice_id),
    appointment_id uuid not null,
    patient_id uuid not null,
    clinician_id uuid not null,
    starts_at timestamptz not null,
    ends_at timestamptz not null,
    status text not null default 'booked'
        check (status in ('booked', 'arrived', 'completed', 'cancelled', 'no_show')),
    created_at timestamptz not null,
    updated_at timestamptz not null,
    primary key (practice_id, appointment_id),
    constraint appointment_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id) on delete cascade,
    constraint appointment_clinician_fkey foreign key (practice_id, clinician_id)
        references membership (practice_id, user_id),
    constraint appointment_time_range check (ends_at > starts_at and ends_at - starts_at <= interval '24 hours')
);
create index appointment_start_idx on appointment (practice_id, starts_at);
create index appointment_patient_idx on appointment (practice_id, patient_id);
create index appointment_clinician_idx on appointment (practice_id, clinician_id);

-- The first clinical table (completed by the clinical-notes work): proves role scoping now.
create table clinical_note (
    practice_id uuid not null references practice (practice_id),
    note_id uuid not null,
    patient_id uuid not null,
    author_id uuid not null references app_user (user_id),
    body text not null,
    created_at timestamptz not null,
    primary key (practice_id, note_id),
    constraint clinical_note_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id)
);
create index clinical_note_patient_idx on clinical_note (practice_id, patient_id, created_at);

-- Audit, first layer. No foreign keys: the trail outlives the records it names.
create table audit_event (
    practice_id uuid not null,
    event_id uuid not null,
    occurred_at timestamptz not null,
    actor_id uuid,
    patient_id uuid,
    action text not null check (action ~ '^[a-z_]+\.[a-z_]+$'),
    outcome text not null check (outcome in ('success', 'denied')),
    object_type text check (object_type ~ '^[a-z_]+$'),
    object_id uuid,
    request_id uuid,
    primary key (practice_id, event_id)
);
create index audit_event_patient_idx on audit_event (practice_id, patient_id, occurred_at)
    where patient_id is not null;
create index audit_event_actor_idx on audit_event (practice_id, actor_id, occurred_at);

create function app.reject_audit_change() returns trigger
    language plpgsql
    as $$
    begin
        raise exception 'audit_event is append-only: % is not allowed', tg_op
            using errcode = 'insufficient_privilege';
    end
    $$;
create trigger audit_event_no_update_delete before update or delete on audit_event
    for each row execute function app.reject_audit_change();
create trigger audit_event_no_truncate before truncate on audit_event
    for each statement execute function app.reject_audit_change();

-- Row-level security: ENABLE + FORCE everywhere (the owner is subject to it too).
alter table practice enable row level security;
alter table practice force row level security;
alter table app_user enable row level security;
alter table app_user force row level security;
alter table user_password enable row level security;
alter table user_password force row level security;
alter table session enable row level security;
alter table session force row level security;
alter table membership enable row level security;
alter table membership force row level security;
alter table patient enable row level security;
alter table patient force row level security;
alter table appointment enable row level security;
alter table appointment force row level security;
alter table clinical_note enable row level security;
alter table clinical_note force row level security;
alter table audit_event enable row level security;
alter table audit_event force row level security;

-- Runtime policies (the server).
create policy practice_read on practice for select to chartroom_runtime
    using (practice_id = (select app.practice())
           or practice_id in (select m.practice_id from membership m where m.user_id = (select app.actor())));
create policy practice_manage on practice for update to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin'])
    with check (practice_id = (select app.practice()));

create policy app_user_read on app_user for select to chartroom_runtime
    using (user_id = (select app.actor())
           or email = (select app.lookup_email())
           or exists (select 1 from membership m
                       where m.user_id = app_user.user_id and m.practice_id = (select app.practice())));
create policy app_user_self on app_user for update to chartroom_runtime
    using (user_id = (select app.actor())) with check (user_id = (select app.actor()));

create policy user_password_self on user_password for all to chartroom_runtime
    using (user_id = (select app.actor())) with check (user_id = (select app.actor()));

create policy session_own on session for all to chartroom_runtime
    using (token_hash = (select app.session_hash()) or user_id = (select app.actor()))
    with check (token_hash = (select app.session_hash()) or user_id = (select app.actor()));

create policy membership_read on membership for select to chartroom_runtime
    using (practice_id = (select app.practice()) or user_id = (select app.actor()));
create policy membership_insert on membership for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);
create policy membership_update on membership for update to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin'])
    with check (practice_id = (select app.practice()));
create policy membership_delete on membership for delete to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);

-- Authenticates a session and enters its user (and, when given, a practice) for the rest of
-- the transaction, in one round trip. SECURITY INVOKER: every read below goes through the
-- caller's row-level security. Returns no row when the session is unknown, revoked, idle for
-- longer than p_idle or past its absolute lifetime; otherwise the user and their roles in
-- p_practice (null when not a member). Activity is recorded at most every p_touch_after, so
-- concurrent requests on one session do not queue on its row; the idle timeout therefore
-- errs early, never late, by at most p_touch_after.
create function app.enter(p_token bytea, p_practice uuid, p_now timestamptz, p_idle interval, p_touch_after interval)
    returns table (user_id uuid, roles text[])
    language plpgsql volatile
    as $$
    declare
        v_user uuid;
        v_seen timestamptz;
    begin
        perform set_config('chartroom.session_hash', encode(p_token, 'hex'), true);
        select s.user_id, s.last_seen_at into v_user, v_seen
          from public.session s
         where s.token_hash = p_token and s.revoked_at is null
           and s.expires_at > p_now and s.last_seen_at > p_now - p_idle;
        if v_user is null then
            return;
        end if;
        if p_now - v_seen >= p_touch_after then
            update public.session s set last_seen_at = p_now
             where s.token_hash = p_token and s.last_seen_at < p_now;
        end if;
        perform set_config('chartroom.actor_id', v_user::text, true),
                set_config('chartroom.practice_id', coalesce(p_practice::text, ''), true);
        return query
            select v_user, (select m.roles from public.membership m
                             where m.practice_id = p_practice and m.user_id = v_user);
    end
    $$;

-- Demographics, contact details and scheduling: clinician or reception.
create policy patient_scheduling on patient for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception']);
create policy appointment_scheduling on appointment for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception']);

-- Clinical content: clinician only (owner/admin only if they also hold clinician).
create policy clinical_note_clinician on clinical_note for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician']);

create policy audit_event_tenant on audit_event for select to chartroom_runtime
    using (practice_id = (select app.practice()));
create policy audit_event_append on audit_event for insert to chartroom_runtime
    with check (practice_id = (select app.practice()));

-- Owner policies: administrative commands (bootstrap a practice, add its first owner, seed the
-- demo) run as the owner role. They are still tenant-bound: the practice must be set.
create policy owner_all on practice for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
-- The operator may list practices (names and ids, no PHI) without entering each one.
create policy owner_directory on practice for select to chartroom_owner using (true);
create policy owner_all on app_user for all to chartroom_owner using (true) with check (true);
create policy owner_all on user_password for all to chartroom_owner using (true) with check (true);
create policy owner_all on session for all to chartroom_owner using (true) with check (true);
create policy owner_all on membership for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on patient for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on appointment for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on clinical_note for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_read on audit_event for select to chartroom_owner
    using (practice_id = (select app.practice()));
create policy owner_append on audit_event for insert to chartroom_owner
    with check (practice_id = (select app.practice()));

-- Privileges: least privilege per table; no TRUNCATE, no DDL, nothing owned.
grant select, update on practice to chartroom_runtime;
grant select on app_user to chartroom_runtime;
grant update (display_name) on app_user to chartroom_runtime;
grant select, update on user_password to chartroom_runtime;
grant select, insert, update on session to chartroom_runtime;
grant select, insert, update, delete on membership to chartroom_runtime;
grant select, insert, update, delete on patient to chartroom_runtime;
grant select, insert, update, delete on appointment to chartroom_runtime;
grant select, insert on clinical_note to chartroom_runtime;
grant select, insert on audit_event to chartroom_runtime;
