-- Care-team scope and break-glass.
--
-- A clinician sees a patient's clinical records (notes, visits, perio exams — every policy
-- that calls app.clinical_visible) only when the patient is on their care team:
--   * the patient's assigned clinician is them, or
--   * they have a visit or a (not cancelled) appointment with the patient, or
--   * the practice widened the scope to the whole practice (settings.clinical_scope =
--     'practice'), or
--   * they opened the patient by break-glass (a reason, time-boxed, default 60 minutes);
--     every audit event of clinical access in that window is flagged as emergency access, and
--     each break-glass is a review item the practice's owners must acknowledge.
-- Reception never sees clinical records; owners and admins only when they are clinicians too.
--
-- Times: the server passes its (injected) clock to app.enter, which records it in
-- chartroom.now; expiry is checked against app.now(), so tests move time without sleeping.

alter table patient add column assigned_clinician_id uuid,
    add constraint patient_assigned_clinician_fkey foreign key (practice_id, assigned_clinician_id)
        references membership (practice_id, user_id);

create table break_glass (
    practice_id uuid not null references practice (practice_id),
    grant_id uuid not null,
    user_id uuid not null references app_user (user_id),
    patient_id uuid not null,
    reason_enc bytea not null check (length(reason_enc) between 1 and 16384),
    opened_at timestamptz not null,
    expires_at timestamptz not null,
    acknowledged_by uuid references app_user (user_id),
    acknowledged_at timestamptz,
    primary key (practice_id, grant_id),
    constraint break_glass_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id),
    constraint break_glass_window check (expires_at > opened_at and expires_at <= opened_at + interval '4 hours'),
    constraint break_glass_ack check ((acknowledged_by is null) = (acknowledged_at is null))
);
create index break_glass_actor_idx on break_glass (practice_id, user_id, patient_id, expires_at);
create index break_glass_review_idx on break_glass (practice_id, opened_at) where acknowledged_at is null;

alter table break_glass enable row level security;
alter table break_glass force row level security;
-- The clinician who opened it sees and creates their own; owners and admins see all of the
-- practice's and acknowledge them.
create policy break_glass_own on break_glass for select to chartroom_runtime
    using (practice_id = (select app.practice()) and user_id = (select app.actor()));
create policy break_glass_open on break_glass for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and user_id = (select app.actor())
                and (select app.actor_roles()) && array['clinician']);
create policy break_glass_review on break_glass for select to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);
create policy break_glass_acknowledge on break_glass for update to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin'])
    with check (practice_id = (select app.practice()));
create policy owner_all on break_glass for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
grant select, insert on break_glass to chartroom_runtime;
grant update (acknowledged_by, acknowledged_at) on break_glass to chartroom_runtime;

-- The request's time (the server's clock), or the transaction's when none was given.
create function app.now() returns timestamptz
    language sql stable parallel safe
    as $$ select coalesce(nullif(current_setting('chartroom.now', true), '')::timestamptz, now()) $$;

-- SECURITY DEFINER (owner) because it reads visit, appointment and patient rows, whose own
-- policies call app.clinical_visible: as the invoker the lookup would recurse. It answers one
-- boolean about the current practice (the owner's policies still bound every read to
-- app.practice()) and the current actor; it returns no rows.
create function app.care_team(p_patient uuid) returns boolean
    language sql stable security definer
    set search_path = pg_catalog, public
    as $$
        select exists (select 1 from public.patient p
                        where p.practice_id = app.practice() and p.patient_id = p_patient
                          and p.assigned_clinician_id = app.actor())
            or exists (select 1 from public.visit v
                        where v.practice_id = app.practice() and v.patient_id = p_patient
                          and v.clinician_id = app.actor())
            or exists (select 1 from public.appointment a
                        where a.practice_id = app.practice() and a.patient_id = p_patient
                          and a.clinician_id = app.actor() and a.status <> 'cancelled')
    $$;

-- The actor's open break-glass on the patient, if any (SECURITY DEFINER for the same reason).
create function app.break_glass_grant(p_patient uuid) returns uuid
    language sql stable security definer
    set search_path = pg_catalog, public
    as $$
        select b.grant_id from public.break_glass b
         where b.practice_id = app.practice() and b.user_id = app.actor()
           and b.patient_id = p_patient and b.opened_at <= app.now() and b.expires_at > app.now()
         order by b.expires_at desc limit 1
    $$;

-- Whether the practice shows every patient's clinical records to every clinician.
create function app.practice_wide_clinical() returns boolean
    language sql stable security definer
    set search_path = pg_catalog, public
    as $$
        select coalesce((select p.settings->>'clinical_scope' = 'practice'
                           from public.practice p where p.practice_id = app.practice()), false)
    $$;

create or replace function app.clinical_visible(p_patient uuid) returns boolean
    language sql stable parallel safe
    as $$
        select p_patient is not null
           and (select app.actor_roles()) && array['clinician']
           and ((select app.practice_wide_clinical())
                or app.care_team(p_patient)
                or app.break_glass_grant(p_patient) is not null)
    $$;

-- Audit details for clinical access: flagged as emergency access (with the grant) when the
-- actor sees the patient only through break-glass.
create function app.clinical_audit_details(p_details jsonb, p_patient uuid) returns jsonb
    language sql stable
    as $$
        select case
            when p_patient is null or (select app.practice_wide_clinical()) or app.care_team(p_patient)
                then p_details
            else coalesce(
                (select coalesce(p_details, '{}'::jsonb)
                        || jsonb_build_object('emergency', true, 'break_glass_id', g)
                   from app.break_glass_grant(p_patient) g where g is not null),
                p_details)
        end
    $$;

-- app.enter also records the server's clock for app.now().
create or replace function app.enter(p_token bytea, p_practice uuid, p_now timestamptz, p_idle interval, p_touch_after interval,
                          out user_id uuid, out roles text[], out amr text[], out mfa_at timestamptz,
                          out session_id uuid, out require_passkey boolean)
    returns setof record
    language plpgsql volatile
    as $$
    declare
        v_seen timestamptz;
        v_created timestamptz;
        v_idle interval;
        v_abs interval;
    begin
        perform set_config('chartroom.session_hash', encode(p_token, 'hex'), true),
                set_config('chartroom.practice_id', coalesce(p_practice::text, ''), true),
                set_config('chartroom.now', p_now::text, true);
        select s.user_id, s.last_seen_at, s.created_at, s.amr, s.mfa_at, s.session_id,
               m.roles,
               make_interval(secs => coalesce(p.session_idle_seconds, 0)),
               make_interval(secs => coalesce(p.session_absolute_seconds, 0)),
               coalesce(p.require_passkey_for_managers, false)
          into user_id, v_seen, v_created, amr, mfa_at, session_id, roles, v_idle, v_abs, require_passkey
          from public.session s
          left join public.membership m on m.practice_id = p_practice and m.user_id = s.user_id
          left join public.practice p on p.practice_id = m.practice_id
         where s.token_hash = p_token and s.revoked_at is null and s.expires_at > p_now;
        if user_id is null then
            return;
        end if;
        if roles is null or v_idle = interval '0' then
            v_idle := p_idle;
        end if;
        if roles is not null and v_abs <> interval '0' and v_created <= p_now - v_abs then
            return;
        end if;
        if v_seen <= p_now - v_idle then
            return;
        end if;
        perform set_config('chartroom.actor_id', user_id::text, true);
        if p_now - v_seen >= p_touch_after then
            update public.session s set last_seen_at = p_now
             where s.token_hash = p_token and s.last_seen_at < p_now;
        end if;
        return next;
    end
    $$;
